//! `liqd bench pipeline`: the daemon's own pipeline in process — the
//! gateway side (`daemon::pipeline::Pipeline`: sequence, input journal
//! append, input ring) → the engine thread (apply) → the output ring →
//! the gateway side again (output journal append for decisions, the
//! input's `Done` popped) — driven at a fixed offered rate by an open-loop
//! generator on the gateway thread, journaling on (a temporary directory,
//! both journals with their flusher threads).
//!
//! Latency of an event = the moment its `Done` is popped on the gateway
//! thread − its **intended** send time. The intended time is what is
//! handed to `Pipeline::submit` as the receive instant, so the pipeline's
//! own histogram (the one behind `/metrics`) records exactly this; the
//! generator's lateness is charged to the event (no coordinated omission).
//!
//! The generator: before each intended time it polls the output ring
//! (busy while an input is in flight, as the daemon's loop does; with
//! nothing in flight and the next send more than 20 µs away it sleeps, with
//! a 1 ns timer slack, so low rates leave the core to others on a small
//! host); at the intended time it submits the event (pre-generated
//! while waiting) and polls once. When it falls behind it sends back to
//! back until it has caught up with the schedule.
//!
//! The book is the seeded population of [`crate::scenario`], handed to the
//! pipeline already built (its set-up events are not journaled: only the
//! timed stream is); the stream is the one `liqd bench engine` times, so
//! [`Options::compare_engine`] can time the same events on the engine
//! alone and show the engine's share of the latency.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use daemon::config::Idle;
use daemon::datadir::{DataDir, JournalSettings, Meta};
use daemon::metrics::Metrics;
use daemon::pipeline::{
    Outbound, OutboundBody, Pipeline, PipelineOptions, Publish, StreamPositions,
};
use daemon::shard::Shard;
use engine::{CountingSink, Event, MarginEngine, Seq, UnixNanos};
use hdrhistogram::Histogram;
use journal::SourceStream;

use super::{histogram, Percentiles, Run};

/// A boxed error with a message (journal, thread, I/O).
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Faults injected on the gateway thread, to test the harness itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hook {
    /// Spin for `delay` right after submitting every `delay_every`-th
    /// measured event (0: never): that event's completion is seen at
    /// least `delay` late, as if a stage of the pipeline took that long.
    pub delay_every: u64,
    pub delay: Duration,
    /// Stop the gateway thread (receiver and generator) for `stall` once,
    /// right after submitting measured event number `stall_at`: every
    /// event scheduled during the stall must carry it.
    pub stall_at: Option<u64>,
    pub stall: Duration,
}

#[derive(Clone, Debug)]
pub struct Options {
    /// The book and the stream (accounts, instruments, assets, path, mix,
    /// seed; `events` is set to `warmup + events`).
    pub scenario: crate::Options,
    /// Offered rate, events per second.
    pub rate: f64,
    /// Measured events.
    pub events: u64,
    /// Events sent on the same schedule before measuring.
    pub warmup: u64,
    pub engine_core: Option<usize>,
    /// Pin the gateway (generator and receiver) thread here.
    pub generator_core: Option<usize>,
    pub engine_idle: Idle,
    /// Journal directory (default: a temporary directory).
    pub journal_dir: Option<PathBuf>,
    pub hook: Hook,
    /// Also time the same stream on the engine alone (a second book).
    pub compare_engine: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            scenario: crate::Options {
                accounts: 10_000,
                mix: crate::Mix::MARKS_ONLY,
                path: crate::Path::Quiet,
                ..crate::Options::default()
            },
            rate: 100_000.0,
            events: 100_000,
            warmup: 20_000,
            engine_core: None,
            generator_core: None,
            engine_idle: Idle::Spin,
            journal_dir: None,
            hook: Hook::default(),
            compare_engine: false,
        }
    }
}

/// Counts what the pipeline publishes.
#[derive(Default)]
struct Counter {
    liquidations: u64,
    halts: u64,
}

impl Publish for Counter {
    fn publish(&mut self, m: &Outbound<'_>) {
        match m.body {
            OutboundBody::Liquidation { .. } => self.liquidations += 1,
            OutboundBody::Halt(_) => self.halts += 1,
            OutboundBody::Status(_) => {}
        }
    }
}

/// The stream an event arrives on, as the gateway would assign it.
pub fn source_of(event: &Event) -> SourceStream {
    match event {
        Event::Mark(_) | Event::Index(_) => SourceStream::MarketData,
        Event::Fill(_) | Event::Balance(_) | Event::Funding(_) => SourceStream::Orders,
        _ => SourceStream::Admin,
    }
}

/// The generator's state across phases.
struct Generator {
    stream: crate::Stream,
    src_seqs: [u64; 4],
    ts: u64,
    send_lag: Histogram<u64>,
}

impl Generator {
    fn next(&mut self) -> (SourceStream, u64, Event) {
        self.ts += 1;
        let event = self.stream.next_event(UnixNanos(self.ts));
        let source = source_of(&event);
        let seq = &mut self.src_seqs[usize::from(source.code())];
        let src_seq = *seq;
        *seq += 1;
        (source, src_seq, event)
    }
}

/// Sends `n` events on the schedule `start + i / rate`; returns when every
/// one is done, with the moment the last was.
fn phase(
    pipeline: &mut Pipeline,
    generator: &mut Generator,
    publish: &mut Counter,
    n: u64,
    rate: f64,
    hook: Option<&Hook>,
) -> Result<(Instant, Instant), Error> {
    let start = Instant::now() + Duration::from_micros(200);
    let mut next = generator.next();
    for i in 0..n {
        let due = start + Duration::from_nanos((i as f64 * 1e9 / rate) as u64);
        loop {
            let now = Instant::now();
            if now >= due {
                break;
            }
            if pipeline.poll(publish)? == 0 {
                let wait = due - now;
                if pipeline.in_flight() == 0 && wait > Duration::from_micros(20) {
                    std::thread::sleep(wait - Duration::from_micros(10));
                } else {
                    std::hint::spin_loop();
                }
            }
        }
        let lag = Instant::now().saturating_duration_since(due);
        if hook.is_some() {
            generator
                .send_lag
                .saturating_record((lag.as_nanos() as u64).max(1));
        }
        let (source, src_seq, event) = next;
        pipeline.submit(source, src_seq, UnixNanos(0), due, &event, publish)?;
        if let Some(hook) = hook {
            if hook.delay_every > 0 && (i + 1).is_multiple_of(hook.delay_every) {
                let until = Instant::now() + hook.delay;
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
            }
            if hook.stall_at == Some(i) {
                std::thread::sleep(hook.stall);
            }
        }
        pipeline.poll(publish)?;
        if i + 1 < n {
            next = generator.next();
        }
    }
    pipeline.drain(publish)?;
    Ok((start, Instant::now()))
}

/// Runs the pipeline benchmark at one rate.
///
/// # Errors
/// The journal directory cannot be created or written; the engine thread
/// cannot start or died.
pub fn run(opts: &Options) -> Result<Run, Error> {
    if !(opts.rate.is_finite() && opts.rate >= 1.0) {
        return Err(format!("rate {} is not a positive rate", opts.rate).into());
    }
    let scenario = crate::Options {
        events: opts.warmup + opts.events,
        ..opts.scenario
    };
    let (engine, stream) = crate::scenario(&scenario);
    let temp = match &opts.journal_dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("liqd-bench-").tempdir()?),
    };
    let dir = match (&opts.journal_dir, &temp) {
        (Some(dir), _) => dir.clone(),
        (None, Some(t)) => t.path().to_path_buf(),
        (None, None) => unreachable!("a temporary directory was made"),
    };
    let settings = JournalSettings {
        segment_bytes: 64 << 20,
        flush_every_records: 4096,
        flush_interval: Duration::from_millis(5),
    };
    let meta = Meta {
        shard: Shard::ALL,
        limits: crate::population::limits(&scenario),
    };
    let data = DataDir::open(&dir, &meta, settings)?;
    let syncers = [
        data.input.syncer().spawn(settings.flush_interval)?,
        data.output.syncer().spawn(settings.flush_interval)?,
    ];
    let mut pipeline = Pipeline::start(
        engine,
        data.input,
        data.output,
        StreamPositions::default(),
        PipelineOptions {
            shard: Shard::ALL,
            input_slots: 4096,
            output_slots: 4096,
            engine_core: opts.engine_core,
            engine_idle: opts.engine_idle,
            snapshot_interval_events: 0,
        },
        Arc::new(Metrics::default()),
        None,
    )?;
    // Pinned after the journal and engine threads are started, so they do
    // not inherit this core.
    if let Some(core) = opts.generator_core {
        super::pin(core);
    }
    super::set_timer_slack_ns(1);
    let mut generator = Generator {
        stream,
        src_seqs: [1; 4],
        ts: 1_000,
        send_lag: histogram(),
    };
    let mut publish = Counter::default();
    let metrics = pipeline.metrics().clone();
    if opts.warmup > 0 {
        phase(
            &mut pipeline,
            &mut generator,
            &mut publish,
            opts.warmup,
            opts.rate,
            None,
        )?;
    }
    pipeline.reset_latency();
    let before = Counter {
        liquidations: publish.liquidations,
        halts: publish.halts,
    };
    let rejected_before = metrics
        .events_rejected
        .load(std::sync::atomic::Ordering::Relaxed);
    let engine_tid = super::thread_named("liqd-engine");
    let sched_before = (
        super::schedstat(None),
        engine_tid.and_then(|t| super::schedstat(Some(t))),
    );
    let (start, end) = phase(
        &mut pipeline,
        &mut generator,
        &mut publish,
        opts.events,
        opts.rate,
        Some(&opts.hook),
    )?;
    let sched_after = (
        super::schedstat(None),
        engine_tid.and_then(|t| super::schedstat(Some(t))),
    );
    let sched = match (sched_before, sched_after) {
        ((Some(g0), Some(e0)), (Some(g1), Some(e1))) => {
            let ms = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e6;
            Some(super::Sched {
                wall_ms: end.saturating_duration_since(start).as_secs_f64() * 1e3,
                generator_run_ms: ms(g0.0, g1.0),
                generator_wait_ms: ms(g0.1, g1.1),
                engine_run_ms: ms(e0.0, e1.0),
                engine_wait_ms: ms(e0.1, e1.1),
            })
        }
        _ => None,
    };
    let latency = pipeline.latency().clone();
    let rejected = metrics
        .events_rejected
        .load(std::sync::atomic::Ordering::Relaxed)
        - rejected_before;
    pipeline.shutdown(&mut publish)?;
    for syncer in syncers {
        syncer.stop()?;
    }
    drop(temp);
    let elapsed = end.saturating_duration_since(start).as_secs_f64();
    let engine_only = if opts.compare_engine {
        Some(engine_alone(&scenario, opts.warmup))
    } else {
        None
    };
    Ok(Run {
        label: format!("pipeline {} {}/s", scenario.path.name(), short(opts.rate)),
        kind: "pipeline".to_owned(),
        path: scenario.path.name().to_owned(),
        accounts: scenario.accounts,
        offered_per_s: opts.rate,
        achieved_per_s: opts.events as f64 / elapsed.max(1e-9),
        events: opts.events,
        warmup_events: opts.warmup,
        latency: Percentiles::of(&latency),
        send_lag: Percentiles::of(&generator.send_lag),
        liquidations: publish.liquidations - before.liquidations,
        halts: publish.halts - before.halts,
        rejected,
        engine_only,
        sched,
        histogram: Some(latency),
    })
}

/// Apply time of the same events on the engine alone (the same book,
/// built again; the first `warmup` events are not recorded).
fn engine_alone(scenario: &crate::Options, warmup: u64) -> Percentiles {
    let (mut engine, mut stream) = crate::scenario(scenario);
    let mut sink = CountingSink::default();
    let mut h = histogram();
    let mut ts = 1_000;
    for i in 0..scenario.events {
        ts += 1;
        let event = stream.next_event(UnixNanos(ts));
        let started = Instant::now();
        let _ = engine.apply(Seq(i + 1), &event, &mut sink);
        let ns = started.elapsed().as_nanos() as u64;
        if i >= warmup {
            h.saturating_record(ns.max(1));
        }
    }
    Percentiles::of(&h)
}

/// `1000000` → `1M`, `100000` → `100k`.
pub fn short(rate: f64) -> String {
    if rate >= 1e6 && (rate / 1e6).fract() == 0.0 {
        format!("{}M", rate / 1e6)
    } else if rate >= 1e3 && (rate / 1e3).fract() == 0.0 {
        format!("{}k", rate / 1e3)
    } else {
        format!("{rate}")
    }
}
