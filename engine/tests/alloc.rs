//! No allocation per event in steady state: after a warm-up, a long run of
//! marks (crossing triggers, re-arming and liquidating accounts), index
//! prices and fills on existing positions allocates nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use engine::*;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the thread-locals may be gone while a thread exits.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counted<R>(f: impl FnOnce() -> R) -> (R, u64) {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    let r = f();
    COUNTING.with(|on| on.set(false));
    (r, ALLOCATIONS.with(Cell::get))
}

fn d(text: &str) -> Fixed8 {
    Fixed8::parse(text).unwrap()
}

/// A small deterministic generator (no allocation, no dependency).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

const ACCOUNTS: u64 = 1_000;

fn setup(engine: &mut Engine, seq: &mut u64) {
    let mut sink = CountingSink::default();
    let mut apply = |engine: &mut Engine, event: Event| {
        *seq += 1;
        engine.apply(Seq(*seq), &event, &mut sink).unwrap();
    };
    let tiers = Tiers::from_slice(&[
        Tier {
            notional_floor: d("0"),
            mmr: d("0.005"),
            imr: d("0.01"),
        },
        Tier {
            notional_floor: d("100000"),
            mmr: d("0.01"),
            imr: d("0.02"),
        },
    ]);
    for (id, price) in [(1, "50000"), (2, "3000")] {
        apply(
            engine,
            Event::InstrumentDef(InstrumentDef {
                ts: UnixNanos(0),
                instrument: InstrumentId(id),
                symbol: Symbol::new("PERP").unwrap(),
                multiplier: d("1"),
                liquidation_fee: d("0.001"),
                tiers,
            }),
        );
        apply(
            engine,
            Event::Mark(MarkPrice {
                ts: UnixNanos(0),
                instrument: InstrumentId(id),
                price: d(price),
            }),
        );
        // A vol factor that moves (1..3): vol-factor triggers pop too.
        apply(
            engine,
            Event::Risk(RiskParams {
                ts: UnixNanos(0),
                instrument: InstrumentId(id),
                vol_lambda: d("0.9"),
                vol_ref: d("0.0005"),
                vol_max_factor: d("3"),
                max_staleness_ns: 0,
                max_jump: d("0"),
            }),
        );
    }
    apply(
        engine,
        Event::AssetDef(AssetDef {
            ts: UnixNanos(0),
            asset: AssetId(1),
            symbol: Symbol::new("ETH").unwrap(),
            asset_weight: d("0.8"),
            liability_weight: d("1.1"),
        }),
    );
    apply(
        engine,
        Event::Index(IndexPrice {
            ts: UnixNanos(0),
            asset: AssetId(1),
            price: d("3000"),
        }),
    );
    for a in 0..ACCOUNTS {
        let balance = |asset: u32, amount: i64| {
            Event::Balance(BalanceChange {
                ts: UnixNanos(1),
                account: AccountId(a),
                asset: AssetId(asset),
                amount: Fixed8(amount),
                kind: BalanceKind::Deposit,
                ref_id: a,
            })
        };
        apply(
            engine,
            balance(0, (300 + (a as i64 % 40) * 100) * 100_000_000),
        );
        apply(
            engine,
            balance(1, if a % 3 == 0 { -10_000_000 } else { 20_000_000 }),
        );
        for (id, price) in [(1u32, "50000"), (2, "3000")] {
            let qty = if (a + u64::from(id)) % 2 == 0 {
                d("0.5")
            } else {
                d("-0.5")
            };
            apply(
                engine,
                Event::Fill(Fill {
                    ts: UnixNanos(1),
                    account: AccountId(a),
                    instrument: InstrumentId(id),
                    qty,
                    price: d(price),
                    fee: d("0"),
                    fill_id: a,
                }),
            );
        }
    }
}

/// Marks walking ±2 % (crossing triggers), index prices, and fills that
/// change existing positions without closing them.
fn run(
    engine: &mut Engine,
    rng: &mut Lcg,
    seq: &mut u64,
    ts: &mut u64,
    events: u64,
) -> CountingSink {
    let mut sink = CountingSink::default();
    let mut levels = [0i64, 0, 0];
    for _ in 0..events {
        *seq += 1;
        *ts += 1;
        let r = rng.next();
        let event = match r % 10 {
            0..=6 => {
                let id = 1 + (r / 10 % 2) as u32;
                let level = &mut levels[id as usize];
                *level = (*level + (r / 20 % 41) as i64 - 20).clamp(-200, 200);
                let base = if id == 1 { 50_000 } else { 3_000 };
                Event::Mark(MarkPrice {
                    ts: UnixNanos(*ts),
                    instrument: InstrumentId(id),
                    price: Fixed8(base * (10_000 + *level) * 10_000),
                })
            }
            7 => Event::Index(IndexPrice {
                ts: UnixNanos(*ts),
                asset: AssetId(1),
                price: Fixed8((3_000 * 10_000 + (r / 10 % 400) as i64 - 200) * 10_000),
            }),
            _ => {
                let account = r / 10 % ACCOUNTS;
                let id = 1 + (r / 10_000 % 2) as u32;
                // ±0.01 on a 0.5 position: never closes it.
                let qty = if (r / 20_000).is_multiple_of(2) {
                    d("0.01")
                } else {
                    d("-0.01")
                };
                Event::Fill(Fill {
                    ts: UnixNanos(*ts),
                    account: AccountId(account),
                    instrument: InstrumentId(id),
                    qty,
                    price: d(if id == 1 { "50000" } else { "3000" }),
                    fee: d("0.1"),
                    fill_id: *seq,
                })
            }
        };
        engine.apply(Seq(*seq), &event, &mut sink).unwrap();
    }
    sink
}

#[test]
fn steady_state_allocates_nothing() {
    // The counter counts.
    assert_eq!(counted(|| Vec::<u8>::with_capacity(8)).1, 1);
    for (mode, warm_up, events) in [
        (EvaluationMode::Triggers, 20_000, 50_000),
        (EvaluationMode::AllHolders, 5_000, 10_000),
    ] {
        let limits = Limits {
            accounts_max: 4 * ACCOUNTS as u32,
            ..Limits::default()
        };
        let config = EngineConfig {
            mode,
            positions_reserved: 4 * ACCOUNTS as u32,
            balances_reserved: 2 * ACCOUNTS as u32,
            check_invariant: false,
            // Little headroom: rises of f pop vol-factor triggers.
            vol_headroom: Fixed8(5_000_000),
            ..EngineConfig::default()
        };
        let mut engine = Engine::with_config(limits, config);
        let (mut seq, mut ts) = (0u64, 10u64);
        setup(&mut engine, &mut seq);
        let mut rng = Lcg(7);
        // Warm-up: every index, queue and scratch buffer reaches its size.
        run(&mut engine, &mut rng, &mut seq, &mut ts, warm_up);
        let before = engine.trigger_stats();
        let (sink, allocations) = counted(|| run(&mut engine, &mut rng, &mut seq, &mut ts, events));
        let after = engine.trigger_stats();
        assert_eq!(
            allocations, 0,
            "{mode:?}: {allocations} allocations in {events} events"
        );
        eprintln!("{mode:?}: {} liquidations, {:?}", sink.liquidations, after);
        // The run did real work: crossings, re-arms and liquidations.
        assert!(sink.liquidations > 0, "{mode:?}: no liquidation");
        if mode == EvaluationMode::Triggers {
            assert!(
                after.crossed > before.crossed + 1000,
                "{before:?} → {after:?}"
            );
            assert!(after.rearms > before.rearms + 1000);
            assert!(
                after.factor_crossed > before.factor_crossed,
                "{before:?} → {after:?}"
            );
        }
    }
}
