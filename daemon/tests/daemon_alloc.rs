//! No allocation per event on either hot thread in steady state: after a
//! warm-up, the engine thread (apply, output slots) and the gateway side
//! (input journal append, ring push, output journal append, latency
//! histogram) allocate nothing over a run of marks that cross triggers
//! and liquidate accounts, and fills on existing positions.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use daemon::config::Idle;
use daemon::datadir::{JournalSettings, Meta};
use daemon::engine_thread;
use daemon::metrics::Metrics;
use daemon::pipeline::{NoPublish, PipelineOptions};
use daemon::ring::ring;
use daemon::ring_types::{Command, EngineInput, EngineOutput, Origin, OutputKind};
use daemon::shard::Shard;
use daemon::startup::{start, DaemonOptions};
use engine::{
    AccountId, AssetId, BalanceChange, BalanceKind, Engine, EngineParams, Event, Fill, Fixed8,
    InstrumentDef, InstrumentId, Limits, MarkPrice, Seq, Symbol, Tier, Tiers, UnixNanos,
};
use journal::SourceStream;

struct Counting;

thread_local! {
    /// Which counter this thread's allocations go to (0: none). The two
    /// tests run in parallel: one counter each.
    static COUNTING: Cell<usize> = const { Cell::new(0) };
}
static ALLOCATIONS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];
const ENGINE_TEST: usize = 1;
const GATEWAY_TEST: usize = 2;

fn note() {
    // `try_with`: the thread-local may be gone while a thread exits.
    let counter = COUNTING.try_with(Cell::get).unwrap_or(0);
    if counter != 0 {
        ALLOCATIONS[counter].fetch_add(1, Ordering::Relaxed);
    }
}

fn allocations(counter: usize) -> u64 {
    ALLOCATIONS[counter].load(Ordering::Relaxed)
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

const ACCOUNTS: u64 = 200;

fn fixed(units: i64) -> Fixed8 {
    Fixed8(units * 100_000_000)
}

fn setup() -> Vec<(SourceStream, Event)> {
    let mut events = vec![
        (
            SourceStream::Admin,
            Event::Params(EngineParams {
                ts: UnixNanos(0),
                partial_liquidation: true,
                liquidation_cooldown_ns: 50,
                warn_ratio: Fixed8(125_000_000),
            }),
        ),
        (
            SourceStream::Admin,
            Event::InstrumentDef(InstrumentDef {
                ts: UnixNanos(0),
                instrument: InstrumentId(1),
                symbol: Symbol::new("A-PERP").expect("symbol"),
                multiplier: fixed(1),
                liquidation_fee: Fixed8(100_000),
                tiers: Tiers::from_slice(&[Tier {
                    notional_floor: Fixed8(0),
                    mmr: Fixed8(1_000_000),
                    imr: Fixed8(2_000_000),
                }]),
            }),
        ),
        (
            SourceStream::MarketData,
            Event::Mark(MarkPrice {
                ts: UnixNanos(1),
                instrument: InstrumentId(1),
                price: fixed(100),
            }),
        ),
    ];
    for account in 0..ACCOUNTS {
        events.push((
            SourceStream::Orders,
            Event::Balance(BalanceChange {
                ts: UnixNanos(2),
                account: AccountId(account),
                asset: AssetId(0),
                amount: fixed(20 + (account % 40) as i64),
                kind: BalanceKind::Deposit,
                ref_id: account,
            }),
        ));
        events.push((
            SourceStream::Orders,
            Event::Fill(Fill {
                ts: UnixNanos(3),
                account: AccountId(account),
                instrument: InstrumentId(1),
                qty: if account.is_multiple_of(2) {
                    fixed(10)
                } else {
                    fixed(-10)
                },
                price: fixed(100),
                fee: Fixed8(0),
                fill_id: account,
            }),
        ));
    }
    events
}

/// Event `i` of the steady stream: marks walking ±3 % around 100 (they
/// cross triggers both ways and liquidate), every 8th a small fill on an
/// existing position (never closing it).
fn steady(i: u64) -> (SourceStream, Event) {
    let ts = UnixNanos(10 + i);
    if i % 8 == 7 {
        let account = (i / 8) % ACCOUNTS;
        let qty = if account.is_multiple_of(2) {
            Fixed8(1_000_000)
        } else {
            Fixed8(-1_000_000)
        };
        return (
            SourceStream::Orders,
            Event::Fill(Fill {
                ts,
                account: AccountId(account),
                instrument: InstrumentId(1),
                qty,
                price: fixed(100),
                fee: Fixed8(0),
                fill_id: 1_000 + i,
            }),
        );
    }
    // A triangle wave: 97 → 103 → 97 over 120 ticks.
    let phase = (i % 120) as i64;
    let offset = if phase < 60 { phase } else { 120 - phase };
    (
        SourceStream::MarketData,
        Event::Mark(MarkPrice {
            ts,
            instrument: InstrumentId(1),
            price: Fixed8((97 * 100 + offset * 10) * 1_000_000),
        }),
    )
}

#[test]
fn the_engine_thread_allocates_nothing_per_event() {
    let (mut to_engine, inputs) = ring(64, EngineInput::empty);
    let (outputs, mut from_engine) = ring(64, EngineOutput::empty);
    let engine = Engine::new(Limits {
        accounts_max: 1024,
        ..Limits::default()
    });
    let thread = std::thread::spawn(move || {
        COUNTING.with(|on| on.set(ENGINE_TEST));
        let mut engine = engine;
        engine_thread::run(&mut engine, inputs, outputs, Idle::Yield, None);
        COUNTING.with(|on| on.set(0));
        engine
    });
    let mut liquidations = 0u64;
    let mut seq = 0u64;
    let mut send = |event: Option<Event>, liquidations: &mut u64| {
        seq += 1;
        let origin = Origin {
            seq: Seq(seq),
            src_stream: SourceStream::Config,
            src_seq: 0,
            recv_mono_ns: 0,
            recv_wall_ns: 0,
        };
        while !to_engine.try_push_with(|slot| {
            slot.origin = origin;
            match event {
                Some(event) => {
                    slot.command = Command::Apply;
                    slot.event = event;
                }
                None => slot.command = Command::Stop,
            }
        }) {
            std::thread::yield_now();
        }
        // Wait for this input's answer (its outputs come first).
        loop {
            match from_engine.try_pop_with(|slot| slot.kind) {
                Some(OutputKind::Liquidation) => *liquidations += 1,
                Some(OutputKind::Done { .. } | OutputKind::Stopped) => break,
                Some(_) => {}
                None => std::thread::yield_now(),
            }
        }
    };
    for (_, event) in setup() {
        send(Some(event), &mut liquidations);
    }
    for i in 0..5_000 {
        send(Some(steady(i).1), &mut liquidations);
    }
    let warm = allocations(ENGINE_TEST);
    let before = liquidations;
    for i in 5_000..25_000 {
        send(Some(steady(i).1), &mut liquidations);
    }
    let steady_allocations = allocations(ENGINE_TEST) - warm;
    send(None, &mut liquidations);
    thread.join().expect("engine thread");
    assert!(warm > 0, "the counter counts (the warm-up allocates)");
    assert!(
        liquidations > before + 100,
        "the run liquidated: {liquidations}"
    );
    assert_eq!(
        steady_allocations, 0,
        "engine thread allocations in 20 000 events"
    );
}

#[test]
fn the_gateway_side_allocates_nothing_per_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = DaemonOptions {
        dir: dir.path().to_path_buf(),
        journal: JournalSettings {
            segment_bytes: 64 << 20,
            flush_every_records: 0,
            flush_interval: Duration::from_millis(50),
        },
        meta: Meta {
            shard: Shard::ALL,
            limits: Limits {
                accounts_max: 1024,
                ..Limits::default()
            },
        },
        snapshot_dir: dir.path().join("snapshots"),
        snapshot_retain: 1,
        pipeline: PipelineOptions {
            shard: Shard::ALL,
            input_slots: 64,
            output_slots: 64,
            engine_core: None,
            engine_idle: Idle::Yield,
            snapshot_interval_events: 0,
        },
        initial_events: Vec::new(),
    };
    let metrics = Arc::new(Metrics::default());
    let mut running = start(&options, metrics.clone(), &mut NoPublish).expect("start");
    let pipeline = &mut running.pipeline;
    let mut stream_seqs = [1u64; 4];
    let mut submit = |pipeline: &mut daemon::pipeline::Pipeline,
                      (stream, event): (SourceStream, Event)| {
        let seq = &mut stream_seqs[usize::from(stream.code())];
        pipeline
            .submit(
                stream,
                *seq,
                UnixNanos(0),
                Instant::now(),
                &event,
                &mut NoPublish,
            )
            .expect("submit");
        *seq += 1;
        pipeline.poll(&mut NoPublish).expect("poll");
    };
    for event in setup() {
        submit(pipeline, event);
    }
    for i in 0..5_000 {
        submit(pipeline, steady(i));
    }
    pipeline.drain(&mut NoPublish).expect("drain");
    let before = metrics.liquidations.load(Ordering::Relaxed);
    COUNTING.with(|on| on.set(GATEWAY_TEST));
    // The counter counts.
    drop(Vec::<u8>::with_capacity(8));
    let warm = allocations(GATEWAY_TEST);
    for i in 5_000..25_000 {
        submit(pipeline, steady(i));
    }
    pipeline.drain(&mut NoPublish).expect("drain");
    COUNTING.with(|on| on.set(0));
    let steady_allocations = allocations(GATEWAY_TEST) - warm;
    assert_eq!(warm, 1, "the counter counts");
    let liquidations = metrics.liquidations.load(Ordering::Relaxed) - before;
    running.stop(&mut NoPublish).expect("stop");
    assert!(liquidations > 100, "the run liquidated: {liquidations}");
    assert_eq!(
        steady_allocations, 0,
        "gateway-side allocations in 20 000 events"
    );
}
