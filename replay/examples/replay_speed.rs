//! Replay speed: how much reading a history adds to the engine's own apply
//! time (BENCHMARKS.md, "Replay").
//!
//! `cargo run --release -p replay --example replay_speed -- [ACCOUNTS] [TICKS] [RUNS]`
//!
//! Builds a deterministic history (a population of accounts with 1–3
//! positions and some collateral, then a random-walk of marks and index
//! prices with sprinkled fills, balance changes and funding), writes it as
//! an input journal (and its output journal) and as JSONL in a temporary
//! directory, then times, median of RUNS (interleaved):
//! - `apply`: the events from memory into a fresh engine (the engine's own
//!   apply time, the baseline);
//! - `read journal`: iterating the journal's records into events, no engine;
//! - `replay journal`: `Input::for_each` over the journal + apply (what
//!   every `liqd replay` command does);
//! - `verify journal`: `replay::verify` (replay + comparing every output
//!   with the output journal);
//! - the same two for the JSONL file.

use std::hint::black_box;
use std::io::Write;
use std::ops::ControlFlow;
use std::time::Instant;

use engine::{
    AccountId, AssetDef, AssetId, BalanceChange, BalanceKind, CountingSink, Engine, EngineParams,
    Event, Fill, Fixed8, Funding, IndexPrice, InstrumentDef, InstrumentId, Limits, MarginEngine,
    MarkPrice, Params, RiskParams, Seq, Symbol, Tier, Tiers, UnixNanos,
};
use journal::{InputJournal, InputReader, JournalOptions, SourceStream};
use replay::input::Input;
use replay::jsonl::write_event;
use replay::progress::Progress;
use replay::verify::{record_outputs, verify, Expected};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const INSTRUMENTS: u32 = 4;
const BASES: [i64; 4] = [65_000, 3_000, 150, 20];

fn fx(units: i64) -> Fixed8 {
    Fixed8(units * 100_000_000)
}

fn history(accounts: u64, ticks: u64) -> Vec<Event> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut ts = 1u64;
    let mut events = Vec::new();
    let t = |ts: &mut u64| {
        *ts += 1_000_000;
        UnixNanos(*ts)
    };
    let d = Params::default();
    events.push(Event::Params(EngineParams {
        ts: t(&mut ts),
        partial_liquidation: d.partial_liquidation,
        liquidation_cooldown_ns: d.liquidation_cooldown_ns,
        warn_ratio: d.warn_ratio,
    }));
    let tiers = Tiers::from_slice(&[
        Tier {
            notional_floor: fx(0),
            mmr: Fixed8(500_000),
            imr: Fixed8(1_000_000),
        },
        Tier {
            notional_floor: fx(1_000_000),
            mmr: Fixed8(1_000_000),
            imr: Fixed8(2_000_000),
        },
        Tier {
            notional_floor: fx(10_000_000),
            mmr: Fixed8(2_500_000),
            imr: Fixed8(5_000_000),
        },
    ]);
    let mut marks = [0i64; INSTRUMENTS as usize];
    for i in 0..INSTRUMENTS {
        let instrument = InstrumentId(i + 1);
        events.push(Event::InstrumentDef(InstrumentDef {
            ts: t(&mut ts),
            instrument,
            symbol: Symbol::new(&format!("P{i}")).expect("symbol"),
            multiplier: fx(1),
            liquidation_fee: Fixed8(100_000),
            tiers,
        }));
        events.push(Event::Risk(RiskParams {
            ts: t(&mut ts),
            instrument,
            vol_lambda: Fixed8(94_000_000),
            vol_ref: Fixed8(100_000),
            vol_max_factor: fx(1),
            max_staleness_ns: 0,
            max_jump: Fixed8::ZERO,
        }));
        marks[i as usize] = BASES[i as usize] * 100_000_000;
        events.push(Event::Mark(MarkPrice {
            ts: t(&mut ts),
            instrument,
            price: Fixed8(marks[i as usize]),
        }));
    }
    events.push(Event::AssetDef(AssetDef {
        ts: t(&mut ts),
        asset: AssetId(1),
        symbol: Symbol::new("ETH").expect("symbol"),
        asset_weight: Fixed8(80_000_000),
        liability_weight: Fixed8(120_000_000),
    }));
    let mut eth = 3_000 * 100_000_000i64;
    events.push(Event::Index(IndexPrice {
        ts: t(&mut ts),
        asset: AssetId(1),
        price: Fixed8(eth),
    }));
    let mut fill_id = 0;
    let mut fill = |ts: UnixNanos, account: u64, i: u32, units_e8: i64, price: i64| {
        fill_id += 1;
        Event::Fill(Fill {
            ts,
            account: AccountId(account),
            instrument: InstrumentId(i + 1),
            qty: Fixed8(units_e8),
            price: Fixed8(price),
            fee: Fixed8::ZERO,
            fill_id,
        })
    };
    for a in 0..accounts {
        let positions = 1 + rng.below(3) as u32;
        let mut notional = 0i64;
        let mut list = Vec::new();
        for k in 0..positions {
            let i = (a as u32 + k) % INSTRUMENTS;
            let value = 1_000 + rng.below(50_000) as i64; // quote units
            let qty = value * 100_000_000 / BASES[i as usize];
            let qty = if rng.below(2) == 0 { qty } else { -qty };
            notional += value;
            list.push((i, qty));
        }
        // Leverage 2..50×, a few close to maintenance.
        let leverage = if rng.below(100) == 0 {
            150
        } else {
            2 + rng.below(48) as i64
        };
        let deposit = (notional / leverage).max(1);
        events.push(Event::Balance(BalanceChange {
            ts: t(&mut ts),
            account: AccountId(a),
            asset: AssetId(0),
            amount: fx(deposit),
            kind: BalanceKind::Deposit,
            ref_id: a,
        }));
        if rng.below(4) == 0 {
            events.push(Event::Balance(BalanceChange {
                ts: t(&mut ts),
                account: AccountId(a),
                asset: AssetId(1),
                amount: Fixed8(10_000_000),
                kind: BalanceKind::Deposit,
                ref_id: a,
            }));
        }
        for (i, qty) in list {
            events.push(fill(t(&mut ts), a, i, qty, marks[i as usize]));
        }
    }
    for n in 0..ticks {
        let roll = rng.below(100);
        let ts = t(&mut ts);
        let event = if roll < 90 {
            let i = rng.below(u64::from(INSTRUMENTS)) as usize;
            let step = (rng.below(101) as i64 - 50) * marks[i] / 1_000_000; // ±0.5 bp
            marks[i] = (marks[i] + step).max(1);
            Event::Mark(MarkPrice {
                ts,
                instrument: InstrumentId(i as u32 + 1),
                price: Fixed8(marks[i]),
            })
        } else if roll < 95 {
            eth = (eth + (rng.below(101) as i64 - 50) * eth / 200_000).max(1);
            Event::Index(IndexPrice {
                ts,
                asset: AssetId(1),
                price: Fixed8(eth),
            })
        } else if roll < 99 {
            let i = rng.below(u64::from(INSTRUMENTS)) as u32;
            let qty = (rng.below(200) as i64 - 100) * 100_000_000 / BASES[i as usize] + 1;
            fill(ts, rng.below(accounts), i, qty, marks[i as usize])
        } else if n % 100_000 == 99 {
            Event::Funding(Funding {
                ts,
                instrument: InstrumentId(1),
                rate: Fixed8(10_000),
            })
        } else {
            Event::Balance(BalanceChange {
                ts,
                account: AccountId(rng.below(accounts)),
                asset: AssetId(0),
                amount: fx(rng.below(200) as i64 - 50),
                kind: BalanceKind::Adjustment,
                ref_id: n,
            })
        };
        events.push(event);
    }
    events
}

fn limits() -> Limits {
    Limits::default()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let accounts = args.first().copied().unwrap_or(20_000);
    let ticks = args.get(1).copied().unwrap_or(500_000);
    let runs = args.get(2).copied().unwrap_or(5) as usize;
    let events = history(accounts, ticks);
    let n = events.len() as f64;
    let dir = tempfile::tempdir().expect("tempdir");
    let journal_dir = dir.path().join("journal");
    let mut journal = InputJournal::open(&journal_dir, JournalOptions::default()).expect("journal");
    for (i, e) in events.iter().enumerate() {
        journal
            .append_event(e.ts(), SourceStream::Orders, i as u64 + 1, e)
            .expect("append");
    }
    journal.close().expect("close");
    let jsonl = dir.path().join("history.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&jsonl).expect("create"));
    for e in &events {
        write_event(&mut out, e).expect("write");
    }
    out.flush().expect("flush");
    drop(out);
    let input = Input::Journal(journal_dir.clone());
    let (summary, _) = record_outputs(
        &input,
        &journal_dir.join("output"),
        JournalOptions::default(),
        limits(),
        &mut Progress::hidden(),
    )
    .expect("outputs");
    eprintln!(
        "{} events ({accounts} accounts, {ticks} ticks): {summary}",
        events.len()
    );

    let mut timings: Vec<(&str, Vec<f64>)> = [
        "apply (engine alone, events in memory)",
        "read journal (no engine)",
        "read journal, trusted reader (no engine)",
        "replay journal (read + apply)",
        "verify journal (read + apply + compare outputs)",
        "read JSONL (no engine)",
        "replay JSONL (read + apply)",
    ]
    .into_iter()
    .map(|name| (name, Vec::new()))
    .collect();
    for _ in 0..runs {
        let mut engine = Engine::new(limits());
        let mut sink = CountingSink::default();
        let started = Instant::now();
        for (i, e) in events.iter().enumerate() {
            let _ = engine.apply(Seq(i as u64 + 1), e, &mut sink);
        }
        timings[0].1.push(started.elapsed().as_secs_f64());
        black_box(engine.state_hash());

        let started = Instant::now();
        let reader = InputReader::open(&journal_dir).expect("open");
        for record in reader.iter() {
            black_box(record.expect("record").event());
        }
        timings[1].1.push(started.elapsed().as_secs_f64());

        let started = Instant::now();
        // SAFETY: the journal was written just above by this crate's writer.
        let reader = unsafe { InputReader::open_trusted(&journal_dir) }.expect("open");
        for record in reader.iter() {
            black_box(record.expect("record").event());
        }
        timings[2].1.push(started.elapsed().as_secs_f64());

        let replay = |input: &Input| {
            let mut engine = Engine::new(limits());
            let mut sink = CountingSink::default();
            let started = Instant::now();
            input
                .for_each(&mut Progress::hidden(), |seq, e| {
                    let _ = engine.apply(seq, e, &mut sink);
                    ControlFlow::Continue(())
                })
                .expect("replay");
            let seconds = started.elapsed().as_secs_f64();
            black_box(engine.state_hash());
            seconds
        };
        timings[3].1.push(replay(&input));

        let started = Instant::now();
        let report = verify(
            &input,
            &Expected::beside(&input),
            false,
            limits(),
            &mut Progress::hidden(),
        )
        .expect("verify");
        timings[4].1.push(started.elapsed().as_secs_f64());
        assert!(report.is_ok(), "{report}");

        let jsonl_input = Input::Jsonl(jsonl.clone());
        let started = Instant::now();
        jsonl_input
            .for_each(&mut Progress::hidden(), |_, e| {
                black_box(e);
                ControlFlow::Continue(())
            })
            .expect("read");
        timings[5].1.push(started.elapsed().as_secs_f64());
        timings[6].1.push(replay(&jsonl_input));
    }
    let apply = median(timings[0].1.clone());
    println!("| step | median s | events/s | ns/event | vs apply |");
    println!("|---|---:|---:|---:|---:|");
    for (name, samples) in &timings {
        let m = median(samples.clone());
        println!(
            "| {name} | {m:.3} | {:.2} M | {:.0} | {:+.1} % |",
            n / m / 1e6,
            m / n * 1e9,
            (m - apply) / apply * 100.0
        );
    }
}
