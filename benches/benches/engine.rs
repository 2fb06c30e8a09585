//! Criterion micro-benchmarks: `apply` per event kind on a 10,000-account
//! book, with the trigger index and with per-holder revaluation; the trigger
//! index's operations on their own (`IndexedHeap` push, re-key, pop of a
//! crossed trigger at 10k and 1M entries); arming one account of the
//! `liqd bench engine` population at 10k and 1M accounts.
//!
//! `cargo bench -p liqd-bench --bench engine -- --test` runs each once (a
//! smoke test).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::triggers::{Handles, IndexedHeap, UP};
use engine::*;

fn d(text: &str) -> Fixed8 {
    Fixed8::parse(text).expect("decimal")
}

/// A one-instrument book: `accounts` accounts each long or short 1 at
/// 50,000, equity spread over 1,000..10,800; with `risk`, the instrument
/// has RiskParams (the engine then updates its variance and vol factor at
/// every mark).
fn book(accounts: u64, mode: EvaluationMode, risk: bool) -> (Engine, u64) {
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
    if risk {
        apply(
            &mut engine,
            Event::Risk(RiskParams {
                ts: UnixNanos(0),
                instrument: InstrumentId(1),
                vol_lambda: d("0.94"),
                vol_ref: d("0.001"),
                vol_max_factor: d("1"),
                max_staleness_ns: 0,
                max_jump: d("0"),
            }),
        );
    }
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
        let (mut engine, mut seq) = book(10_000, mode, false);
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
        let (mut engine, mut seq) = book(10_000, mode, false);
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

/// A quiet mark on an instrument with RiskParams: the variance and vol
/// factor update of every accepted mark.
fn quiet_mark_with_risk(c: &mut Criterion) {
    let (mut engine, mut seq) = book(10_000, EvaluationMode::Triggers, true);
    let mut sink = CountingSink::default();
    let mut n = 0i64;
    c.bench_function("apply/quiet_mark_risk/Triggers", |b| {
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
}

/// Where each element of the heap sits (what the engine's position slab
/// records per trigger side).
struct Table(Vec<u32>);

impl Handles for Table {
    fn set_handle(&mut self, slot: u32, _side: usize, at: u32) {
        self.0[slot as usize] = at;
    }
}

/// xorshift64: keys and picks without a dependency.
struct Xs(u64);

impl Xs {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A trigger priority: prices around 50,000 (mantissa) ± 5 %.
    fn key(&mut self) -> i64 {
        5_000_000_000_000 + (self.next() % 500_000_000_000) as i64 - 250_000_000_000
    }
}

/// A heap of `n` random keys over slots `0..n`, the table sized for
/// `extra` more slots.
fn heap(n: u32, extra: u32, rng: &mut Xs) -> (IndexedHeap<i64>, Table) {
    let mut heap = IndexedHeap::with_capacity(UP, (n + extra) as usize);
    let mut table = Table(vec![u32::MAX; (n + extra) as usize]);
    for slot in 0..n {
        heap.insert(rng.key(), slot, &mut table);
    }
    (heap, table)
}

/// The trigger index's operations: push (arming a new exposure), re-key
/// (re-arming an armed one), pop of the top (a crossed trigger), on heaps
/// of 10k and 1M entries. Each batch restores the heap's size untimed.
fn index_operations(c: &mut Criterion) {
    const BATCH: u32 = 4_096;
    let mut group = c.benchmark_group("index");
    group.throughput(Throughput::Elements(1));
    for n in [10_000u32, 1_000_000] {
        let mut rng = Xs(0x2545_f491_4f6c_dd1d);
        let (mut heap, mut table) = heap(n, BATCH, &mut rng);
        group.bench_function(BenchmarkId::new("push", n), |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let batch = left.min(u64::from(BATCH)) as u32;
                    let keys: Vec<i64> = (0..batch).map(|_| rng.key()).collect();
                    let start = Instant::now();
                    for (i, key) in keys.iter().enumerate() {
                        heap.insert(*key, n + i as u32, &mut table);
                    }
                    elapsed += start.elapsed();
                    for slot in (n..n + batch).rev() {
                        heap.remove(table.0[slot as usize], &mut table);
                    }
                    left -= u64::from(batch);
                }
                elapsed
            })
        });
        group.bench_function(BenchmarkId::new("rekey", n), |b| {
            b.iter(|| {
                // A re-arm moves an exposure's key by a small fraction.
                let slot = (rng.next() % u64::from(n)) as u32;
                let at = table.0[slot as usize];
                let key = heap.key_at(at) + (rng.next() % 2_000_000_000) as i64 - 1_000_000_000;
                heap.update(at, key, &mut table);
            })
        });
        group.bench_function(BenchmarkId::new("pop_crossed", n), |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                let mut popped = Vec::with_capacity(BATCH as usize);
                let mut left = iters;
                while left > 0 {
                    let batch = left.min(u64::from(BATCH));
                    let start = Instant::now();
                    for _ in 0..batch {
                        // What the engine does for each crossed trigger:
                        // look at the top, take it out.
                        let top = heap.peek().expect("non-empty");
                        heap.remove(0, &mut table);
                        popped.push(black_box(top));
                    }
                    elapsed += start.elapsed();
                    for top in popped.drain(..) {
                        heap.insert(top.key, top.slot, &mut table);
                    }
                    left -= batch;
                }
                elapsed
            })
        });
    }
    group.finish();
}

/// Arming one account (exact revaluation, slack split, two or three keys
/// per exposure re-keyed) of the `liqd bench engine` population: 4
/// instruments with RiskParams, 2 collateral assets, 1–4 positions per
/// account.
fn arm_account(c: &mut Criterion) {
    let mut group = c.benchmark_group("arm");
    group.throughput(Throughput::Elements(1));
    for accounts in [10_000u32, 1_000_000] {
        let opts = liqd_bench::Options {
            accounts,
            ..liqd_bench::Options::default()
        };
        let mut engine = liqd_bench::book(&opts);
        let mut rng = Xs(0x9e37_79b9_7f4a_7c15);
        group.bench_function(BenchmarkId::from_parameter(accounts), |b| {
            b.iter(|| {
                let account = liqd_bench::account_id((rng.next() % u64::from(accounts)) as u32);
                engine.rearm(account)
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    apply_per_event,
    walk_mark,
    quiet_mark_with_risk,
    index_operations,
    arm_account
);
criterion_main!(benches);
