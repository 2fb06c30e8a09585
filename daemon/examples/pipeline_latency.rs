//! In-process latency of the daemon pipeline without sockets: submit
//! (journal append, input ring) → engine thread (apply) → output ring →
//! gateway side (Done popped), measured on the gateway thread's clock and
//! recorded in the pipeline's hdrhistogram, at a fixed offered rate.
//!
//! `cargo run --release -p daemon --example pipeline_latency [EVENTS] [INTERVAL_NS]`
//!
//! The stream: 1 instrument, 1000 accounts with a deposit and a position,
//! then marks walking around the entry price (some cross triggers). The
//! engine thread busy-spins (the production setting; `ENGINE_IDLE=yield`
//! or `sleep:MICROS` to compare); the gateway side busy-polls the output
//! ring while an input is in flight (as the daemon's loop does), then sleeps
//! until shortly before the next send time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use daemon::config::Idle;
use daemon::datadir::{JournalSettings, Meta};
use daemon::metrics::Metrics;
use daemon::pipeline::{NoPublish, PipelineOptions};
use daemon::shard::Shard;
use daemon::startup::{start, DaemonOptions};
use engine::{
    AccountId, BalanceChange, BalanceKind, EngineParams, Event, Fill, Fixed8, InstrumentDef,
    InstrumentId, Limits, MarkPrice, Symbol, Tier, Tiers, UnixNanos,
};
use journal::SourceStream;

const ACCOUNTS: u64 = 1000;

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
                liquidation_cooldown_ns: 1_000_000,
                warn_ratio: Fixed8(125_000_000),
            }),
        ),
        (
            SourceStream::Admin,
            Event::InstrumentDef(InstrumentDef {
                ts: UnixNanos(0),
                instrument: InstrumentId(1),
                symbol: Symbol::new("BTC-PERP").expect("symbol"),
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
    for account in 1..=ACCOUNTS {
        events.push((
            SourceStream::Orders,
            Event::Balance(BalanceChange {
                ts: UnixNanos(2),
                account: AccountId(account),
                asset: engine::AssetId(0),
                amount: fixed(10 + (account % 50) as i64),
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
                qty: if account % 2 == 0 {
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

/// The mark of tick `i`: a walk of ±0.05 % per tick with a slow drift.
fn mark(i: u64, price: &mut i64) -> Event {
    let step = if (i / 500).is_multiple_of(2) {
        50_000
    } else {
        -50_000
    };
    *price += step * if i.is_multiple_of(3) { -1 } else { 1 };
    Event::Mark(MarkPrice {
        ts: UnixNanos(10 + i),
        instrument: InstrumentId(1),
        price: Fixed8(*price),
    })
}

/// The same stream applied directly (no threads, no journal): the
/// engine's own cost per mark, for reference.
fn engine_only(events: u64) -> f64 {
    use engine::MarginEngine;
    let mut engine = engine::Engine::new(Limits {
        accounts_max: 4096,
        ..Limits::default()
    });
    let mut sink = engine::CountingSink::default();
    let mut seq = 0;
    for (_, event) in setup() {
        seq += 1;
        let _ = engine.apply(engine::Seq(seq), &event, &mut sink);
    }
    let mut price: i64 = 100 * 100_000_000;
    let started = Instant::now();
    for i in 0..events {
        seq += 1;
        let _ = engine.apply(engine::Seq(seq), &mark(i, &mut price), &mut sink);
    }
    started.elapsed().as_nanos() as f64 / events as f64
}

fn main() {
    let mut args = std::env::args().skip(1);
    let events: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let interval_ns: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    println!("engine alone: {:.0} ns per mark", engine_only(events));
    let dir = tempfile::tempdir().expect("tempdir");
    let options = DaemonOptions {
        dir: dir.path().to_path_buf(),
        journal: JournalSettings {
            segment_bytes: 256 << 20,
            flush_every_records: 4096,
            flush_interval: Duration::from_millis(5),
        },
        meta: Meta {
            shard: Shard::ALL,
            limits: Limits {
                accounts_max: 4096,
                ..Limits::default()
            },
        },
        snapshot_dir: dir.path().join("snapshots"),
        snapshot_retain: 1,
        pipeline: PipelineOptions {
            shard: Shard::ALL,
            input_slots: 4096,
            output_slots: 4096,
            engine_core: None,
            engine_idle: std::env::var("ENGINE_IDLE")
                .ok()
                .and_then(|text| Idle::parse(&text).ok())
                .unwrap_or(Idle::Spin),
            snapshot_interval_events: 0,
        },
        initial_events: Vec::new(),
    };
    let mut publish = NoPublish;
    let mut running = start(&options, Arc::new(Metrics::default()), &mut publish).expect("start");
    let pipeline = &mut running.pipeline;
    let mut seqs = [1u64; 4];
    let mut submit =
        |pipeline: &mut daemon::pipeline::Pipeline, stream: SourceStream, event: &Event| {
            let seq = &mut seqs[usize::from(stream.code())];
            pipeline
                .submit(
                    stream,
                    *seq,
                    UnixNanos(0),
                    Instant::now(),
                    event,
                    &mut NoPublish,
                )
                .expect("submit");
            *seq += 1;
        };
    for (stream, event) in setup() {
        submit(pipeline, stream, &event);
    }
    pipeline.drain(&mut publish).expect("drain");
    let warm = pipeline.latency().len();
    pipeline.reset_latency();
    let started = Instant::now();
    let mut price: i64 = 100 * 100_000_000;
    for i in 0..events {
        let due = started + Duration::from_nanos(i * interval_ns);
        // Sleep most of a long wait (leave the core to the engine thread on
        // a small host), poll the output ring for the rest.
        loop {
            pipeline.poll(&mut publish).expect("poll");
            let now = Instant::now();
            if now >= due {
                break;
            }
            if due - now > Duration::from_micros(200) {
                std::thread::sleep(due - now - Duration::from_micros(100));
            }
        }
        submit(pipeline, SourceStream::MarketData, &mark(i, &mut price));
        // As the daemon's loop does: busy-poll while inputs are in flight.
        while pipeline.in_flight() > 0 {
            pipeline.poll(&mut publish).expect("poll");
        }
    }
    pipeline.drain(&mut publish).expect("drain");
    let elapsed = started.elapsed();
    let h = pipeline.latency();
    let m = pipeline.metrics();
    println!(
        "{events} marks at one per {interval_ns} ns ({:.0}/s achieved), {} liquidations; latency samples {} (after {warm} warm-up)",
        events as f64 / elapsed.as_secs_f64(),
        m.liquidations.load(std::sync::atomic::Ordering::Relaxed),
        h.len(),
    );
    println!(
        "receive → engine done (ns): p50 {} p90 {} p99 {} p99.9 {} max {}",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
    running.stop(&mut publish).expect("stop");
}
