//! Criterion micro-benchmarks: `apply` per event kind on a 10,000-account
//! book, with the trigger index and with per-holder revaluation.

use criterion::{criterion_group, criterion_main, Criterion};
use engine::*;

fn d(text: &str) -> Fixed8 {
    Fixed8::parse(text).expect("decimal")
}

fn book(accounts: u64, mode: EvaluationMode) -> (Engine, u64) {
    let config = EngineConfig {
        mode,
        check_invariant: false,
        ..EngineConfig::default()
    };
    let mut engine = Engine::with_config(Limits::default(), config);
    let mut sink = CountingSink::default();
    let mut seq = 0;
    let mut apply = |engine: &mut Engine, event: Event| {
        seq += 1;
        engine.apply(Seq(seq), &event, &mut sink).expect("valid");
    };
    let tiers = Tiers::from_slice(&[Tier {
        notional_floor: d("0"),
        mmr: d("0.005"),
        imr: d("0.01"),
    }]);
    apply(
        &mut engine,
        Event::InstrumentDef(InstrumentDef {
            ts: UnixNanos(0),
            instrument: InstrumentId(1),
            symbol: Symbol::new("BTC-PERP").expect("symbol"),
            multiplier: d("1"),
            liquidation_fee: d("0.001"),
            tiers,
        }),
    );
    apply(
        &mut engine,
        Event::Mark(MarkPrice {
            ts: UnixNanos(0),
            instrument: InstrumentId(1),
            price: d("50000"),
        }),
    );
    for a in 0..accounts {
        apply(
            &mut engine,
            Event::Balance(BalanceChange {
                ts: UnixNanos(0),
                account: AccountId(a),
                asset: AssetId(0),
                amount: Fixed8((1_000 + (a % 50) as i64 * 200) * 100_000_000),
                kind: BalanceKind::Deposit,
                ref_id: 0,
            }),
        );
        apply(
            &mut engine,
            Event::Fill(Fill {
                ts: UnixNanos(0),
                account: AccountId(a),
                instrument: InstrumentId(1),
                qty: if a % 2 == 0 { d("1") } else { d("-1") },
                price: d("50000"),
                fee: d("0"),
                fill_id: a,
            }),
        );
    }
    (engine, seq)
}

fn apply_per_event(c: &mut Criterion) {
    for mode in [EvaluationMode::Triggers, EvaluationMode::AllHolders] {
        let (mut engine, mut seq) = book(10_000, mode);
        let mut sink = CountingSink::default();
        let mut n = 0i64;
        c.bench_function(&format!("apply/quiet_mark/{mode:?}"), |b| {
            b.iter(|| {
                n += 1;
                seq += 1;
                let price = Fixed8(50_000 * 100_000_000 + (n % 2) * 1_000);
                let event = Event::Mark(MarkPrice {
                    ts: UnixNanos(1),
                    instrument: InstrumentId(1),
                    price,
                });
                engine.apply(Seq(seq), &event, &mut sink)
            })
        });
        c.bench_function(&format!("apply/fill/{mode:?}"), |b| {
            b.iter(|| {
                n += 1;
                seq += 1;
                let event = Event::Fill(Fill {
                    ts: UnixNanos(1),
                    account: AccountId((n % 10_000) as u64),
                    instrument: InstrumentId(1),
                    qty: if n % 4 < 2 { d("0.01") } else { d("-0.01") },
                    price: d("50000"),
                    fee: d("0"),
                    fill_id: 0,
                });
                engine.apply(Seq(seq), &event, &mut sink)
            })
        });
    }
}

/// A random walk of ±5 bp steps: crosses the triggers of the accounts
/// nearest to maintenance now and then.
fn walk_mark(c: &mut Criterion) {
    for mode in [EvaluationMode::Triggers, EvaluationMode::AllHolders] {
        let (mut engine, mut seq) = book(10_000, mode);
        let mut sink = CountingSink::default();
        let mut level = 0i64;
        let mut state = 88_172_645_463_325_252u64;
        c.bench_function(&format!("apply/walk_mark/{mode:?}"), |b| {
            b.iter(|| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                level = (level + (state % 1001) as i64 - 500).clamp(-50_000, 50_000);
                seq += 1;
                let event = Event::Mark(MarkPrice {
                    ts: UnixNanos(1),
                    instrument: InstrumentId(1),
                    price: Fixed8(5_000 * (1_000_000 + level)),
                });
                engine.apply(Seq(seq), &event, &mut sink)
            })
        });
    }
}

criterion_group!(benches, apply_per_event, walk_mark);
criterion_main!(benches);
