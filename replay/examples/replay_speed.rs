//! Replay speed: how much reading a history adds to the engine's own apply
//! time (BENCHMARKS.md, "Replay").
//!
//! `cargo run --release -p replay --example replay_speed -- [ACCOUNTS] [TICKS] [RUNS] [quiet]`
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
//!
//! `quiet`: the ticks are marks that cross nothing (±10⁻⁶), the engine's
//! cheapest event — the worst case for the relative cost of reading.

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

fn history(accounts: u64, ticks: u64, quiet: bool) -> Vec<Event> {
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
        let event = if quiet {
            // A tick that crosses nothing: ±10⁻⁶ of the base price.
            let i = (n % u64::from(INSTRUMENTS)) as usize;
            let base = BASES[i] * 100_000_000;
            let wiggle = if (n / u64::from(INSTRUMENTS)) % 2 == 0 {
                base / 1_000_000
            } else {
                0
            };
            Event::Mark(MarkPrice {
                ts,
                instrument: InstrumentId(i as u32 + 1),
                price: Fixed8(base + wiggle),
            })
        } else if roll < 90 {
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
    let quiet = std::env::args().any(|a| a == "quiet");
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let accounts = args.first().copied().unwrap_or(20_000);
    let ticks = args.get(1).copied().unwrap_or(500_000);
    let runs = args.get(2).copied().unwrap_or(5) as usize;
    let events = history(accounts, ticks, quiet);
    let n = events.len() as f64;
    let dir = tempfile::tempdir().expect("tempdir");
    // `keep`: leave the files (journal, outputs, JSONL) for profiling the
    // `liqd replay` commands on them.
    let keep = std::env::args().any(|a| a == "keep");
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

    let mut timings: Vec<(&str, Vec<Sample>)> = [
        "apply (engine alone, events in memory)",
        "read journal (no engine)",
        "read journal, trusted reader (no engine)",
        "replay journal (read + apply)",
        "replay journal, one thread (read + apply)",
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
        let started = Clock::start();
        for (i, e) in events.iter().enumerate() {
            let _ = engine.apply(Seq(i as u64 + 1), e, &mut sink);
        }
        timings[0].1.push(started.stop());
        black_box(engine.state_hash());

        let started = Clock::start();
        let reader = InputReader::open(&journal_dir).expect("open");
        for record in reader.iter() {
            black_box(record.expect("record").event());
        }
        timings[1].1.push(started.stop());

        let started = Clock::start();
        // SAFETY: the journal was written just above by this crate's writer.
        let reader = unsafe { InputReader::open_trusted(&journal_dir) }.expect("open");
        for record in reader.iter() {
            black_box(record.expect("record").event());
        }
        timings[2].1.push(started.stop());

        let replay = |input: &Input| {
            let mut engine = Engine::new(limits());
            let mut sink = CountingSink::default();
            let started = Clock::start();
            input
                .for_each(&mut Progress::hidden(), |seq, e| {
                    let _ = engine.apply(seq, e, &mut sink);
                    ControlFlow::Continue(())
                })
                .expect("replay");
            let seconds = started.stop();
            black_box(engine.state_hash());
            seconds
        };
        timings[3].1.push(replay(&input));

        let mut engine = Engine::new(limits());
        let mut sink = CountingSink::default();
        let started = Clock::start();
        let reader = InputReader::open(&journal_dir).expect("open");
        for record in reader.iter() {
            let record = record.expect("record");
            let _ = engine.apply(record.seq, &record.event(), &mut sink);
        }
        timings[4].1.push(started.stop());
        black_box(engine.state_hash());

        let started = Clock::start();
        let report = verify(
            &input,
            &Expected::beside(&input),
            false,
            limits(),
            &mut Progress::hidden(),
        )
        .expect("verify");
        timings[5].1.push(started.stop());
        assert!(report.is_ok(), "{report}");

        let jsonl_input = Input::Jsonl(jsonl.clone());
        let started = Clock::start();
        jsonl_input
            .for_each(&mut Progress::hidden(), |_, e| {
                black_box(e);
                ControlFlow::Continue(())
            })
            .expect("read");
        timings[6].1.push(started.stop());
        timings[7].1.push(replay(&jsonl_input));
    }
    let pick = |samples: &[Sample], f: fn(&Sample) -> f64| median(samples.iter().map(f).collect());
    if keep {
        eprintln!("kept {}", dir.keep().display());
    }
    let apply_cpu = pick(&timings[0].1, |x| x.thread);
    println!("| step | wall s (median) | this thread CPU ns/event | vs apply | all threads CPU ns/event |");
    println!("|---|---:|---:|---:|---:|");
    for (name, samples) in &timings {
        let thread = pick(samples, |x| x.thread);
        println!(
            "| {name} | {:.3} | {:.0} | {:+.1} % | {:.0} |",
            pick(samples, |x| x.wall),
            thread / n * 1e9,
            (thread - apply_cpu) / apply_cpu * 100.0,
            pick(samples, |x| x.process) / n * 1e9,
        );
    }
}

/// Wall time, this thread's CPU time and the process's CPU time: on a
/// shared machine the CPU time of the engine's thread is the figure that
/// other load does not inflate.
#[derive(Clone, Copy)]
struct Sample {
    wall: f64,
    thread: f64,
    process: f64,
}

struct Clock {
    wall: Instant,
    thread: f64,
    process: f64,
}

fn cpu_seconds(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

impl Clock {
    fn start() -> Clock {
        Clock {
            wall: Instant::now(),
            thread: cpu_seconds(libc::CLOCK_THREAD_CPUTIME_ID),
            process: cpu_seconds(libc::CLOCK_PROCESS_CPUTIME_ID),
        }
    }

    fn stop(&self) -> Sample {
        Sample {
            wall: self.wall.elapsed().as_secs_f64(),
            thread: cpu_seconds(libc::CLOCK_THREAD_CPUTIME_ID) - self.thread,
            process: cpu_seconds(libc::CLOCK_PROCESS_CPUTIME_ID) - self.process,
        }
    }
}
