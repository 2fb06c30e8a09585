//! The gateway thread's half of the pipeline: sequence and journal each
//! input, hand it to the engine thread, journal and publish what comes
//! back.
//!
//! ```text
//! submit ─► input journal ─► input ring ─► engine thread ─► output ring ─► poll ─► output journal ─► Publish
//! ```
//!
//! Ordering guarantees, stated as absences:
//! - an input never reaches the engine before it is appended to the input
//!   journal, so a decision is never published for an event that is not
//!   journaled;
//! - a decision is never published before it is appended to the output
//!   journal (its output sequence is the outbound MoldUDP64 sequence);
//! - an input whose stream sequence is already journaled is never
//!   journaled or applied again;
//! - nothing is dropped when a ring is full: the producer waits (the
//!   gateway keeps draining the output ring meanwhile, so the two rings
//!   cannot deadlock).

use std::io;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use engine::{Engine, Event, Halt, Leg, Liquidation, Seq, UnixNanos};
use hdrhistogram::Histogram;
use journal::{InputJournal, JournalError, OutputJournal, SourceStream, Status};

use crate::config::Idle;
use crate::engine_thread::{self, SnapshotMessage};
use crate::metrics::{bump, Metrics, Sources};
use crate::ring::{ring, Consumer, Producer};
use crate::ring_types::{Command, EngineInput, EngineOutput, Origin, OutputKind};
use crate::shard::Shard;

/// The next expected MoldUDP64 sequence of each inbound stream, indexed by
/// [`SourceStream::code`] (the configuration stream's entry is unused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamPositions(pub [u64; 4]);

impl Default for StreamPositions {
    fn default() -> Self {
        StreamPositions([1; 4])
    }
}

impl StreamPositions {
    pub fn next_expected(&self, stream: SourceStream) -> u64 {
        self.0[usize::from(stream.code())]
    }

    /// Records that `src_seq` of `stream` is the last journaled (the last
    /// record wins: a session change restarts a stream at 1).
    pub fn advance(&mut self, stream: SourceStream, src_seq: u64) {
        self.0[usize::from(stream.code())] = src_seq.saturating_add(1);
    }
}

/// What an outbound message carries besides its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboundBody<'a> {
    Halt(&'a Halt),
    Liquidation {
        liquidation: &'a Liquidation,
        legs: &'a [Leg],
    },
    Status(&'a Status),
}

/// One journaled outbound message, for the publisher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outbound<'a> {
    /// Output journal sequence = the outbound stream's MoldUDP64 sequence.
    pub seq: Seq,
    /// The triggering input's journal sequence (a status: the last
    /// journaled input).
    pub input_seq: Seq,
    pub src_stream: SourceStream,
    pub src_seq: u64,
    pub body: OutboundBody<'a>,
}

/// Where journaled outputs go (the gateway's publisher; a collector in
/// tests). Called on the gateway thread, after the output journal append.
pub trait Publish {
    fn publish(&mut self, message: &Outbound<'_>);
}

/// Publishes nothing (replay, tests that only read the journals).
pub struct NoPublish;

impl Publish for NoPublish {
    fn publish(&mut self, _: &Outbound<'_>) {}
}

/// An owned outbound message (tests, tools).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnedOutbound {
    Halt {
        seq: Seq,
        src_stream: SourceStream,
        src_seq: u64,
        halt: Halt,
    },
    Liquidation {
        seq: Seq,
        src_stream: SourceStream,
        src_seq: u64,
        liquidation: Liquidation,
        legs: Vec<Leg>,
    },
    Status {
        seq: Seq,
        status: Status,
    },
}

/// Collects owned copies (allocates: tests and tools only).
#[derive(Debug, Default)]
pub struct VecPublish {
    pub messages: Vec<OwnedOutbound>,
}

impl Publish for VecPublish {
    fn publish(&mut self, m: &Outbound<'_>) {
        self.messages.push(match m.body {
            OutboundBody::Halt(halt) => OwnedOutbound::Halt {
                seq: m.seq,
                src_stream: m.src_stream,
                src_seq: m.src_seq,
                halt: *halt,
            },
            OutboundBody::Liquidation { liquidation, legs } => OwnedOutbound::Liquidation {
                seq: m.seq,
                src_stream: m.src_stream,
                src_seq: m.src_seq,
                liquidation: *liquidation,
                legs: legs.to_vec(),
            },
            OutboundBody::Status(status) => OwnedOutbound::Status {
                seq: m.seq,
                status: *status,
            },
        });
    }
}

/// Why the pipeline stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    #[error("the engine thread ended unexpectedly")]
    EngineGone,
    #[error("cannot start the engine thread: {0}")]
    Spawn(#[from] io::Error),
}

/// What [`Pipeline::submit`] did with an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// Journaled under this sequence and queued for the engine.
    Queued(Seq),
    /// Journaled under this sequence; another shard's account (not applied).
    Skipped(Seq),
    /// Its stream sequence is already journaled: neither journaled nor
    /// applied again.
    Duplicate,
}

/// How the pipeline runs.
#[derive(Clone, Copy, Debug)]
pub struct PipelineOptions {
    pub shard: Shard,
    pub input_slots: usize,
    pub output_slots: usize,
    pub engine_core: Option<usize>,
    pub engine_idle: Idle,
    /// Ask the engine for a snapshot every this many journaled inputs (0:
    /// never; needs a snapshot writer).
    pub snapshot_interval_events: u64,
}

/// The gateway thread's end of the pipeline (see the module docs).
pub struct Pipeline {
    input: InputJournal,
    output: OutputJournal,
    to_engine: Producer<EngineInput>,
    from_engine: Consumer<EngineOutput>,
    engine: Option<JoinHandle<Engine>>,
    shard: Shard,
    streams: StreamPositions,
    /// Commands pushed to the engine whose answer has not been popped.
    in_flight: u64,
    stopped: bool,
    snapshot_interval_events: u64,
    since_snapshot: u64,
    snapshots_taken: u64,
    epoch: Instant,
    latency: Histogram<u64>,
    /// Socket receive (wall clock) → engine done, when the receive time is
    /// a plausible recent wall-clock time.
    wire_latency: Histogram<u64>,
    metrics: Arc<Metrics>,
}

/// Largest latency the histogram resolves (larger values are clamped).
const LATENCY_NS_MAX: u64 = 60_000_000_000;

impl Pipeline {
    /// Starts the engine thread on `engine` (already restored: every input
    /// up to the input journal's last sequence applied).
    ///
    /// # Errors
    /// The engine thread cannot be spawned.
    pub fn start(
        engine: Engine,
        input: InputJournal,
        output: OutputJournal,
        streams: StreamPositions,
        options: PipelineOptions,
        metrics: Arc<Metrics>,
        snapshots: Option<Sender<SnapshotMessage>>,
    ) -> Result<Pipeline, PipelineError> {
        let snapshot_interval_events = if snapshots.is_some() {
            options.snapshot_interval_events
        } else {
            0
        };
        let (to_engine, engine_inputs) = ring(options.input_slots, EngineInput::empty);
        let (engine_outputs, from_engine) = ring(options.output_slots, EngineOutput::empty);
        let handle = engine_thread::spawn(
            engine,
            engine_inputs,
            engine_outputs,
            options.engine_core,
            options.engine_idle,
            snapshots,
        )?;
        metrics
            .input_last_seq
            .store(input.last_seq().map_or(0, |s| s.0), Ordering::Relaxed);
        metrics
            .output_last_seq
            .store(output.last_seq().map_or(0, |s| s.0), Ordering::Relaxed);
        let latency = Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let wire_latency = latency.clone();
        Ok(Pipeline {
            input,
            output,
            to_engine,
            from_engine,
            engine: Some(handle),
            shard: options.shard,
            streams,
            in_flight: 0,
            stopped: false,
            snapshot_interval_events,
            since_snapshot: 0,
            snapshots_taken: 0,
            epoch: Instant::now(),
            latency,
            wire_latency,
            metrics,
        })
    }

    /// The next sequence expected on `stream` (resume point after a
    /// restart: one past the last journaled message of that stream).
    pub fn next_expected(&self, stream: SourceStream) -> u64 {
        self.streams.next_expected(stream)
    }

    /// The stream started a new session (PROTOCOL.md §1): its sequences
    /// start over at 1.
    pub fn restart_stream(&mut self, stream: SourceStream) {
        self.streams.0[usize::from(stream.code())] = 1;
    }

    pub fn streams(&self) -> StreamPositions {
        self.streams
    }

    /// Last journaled input sequence.
    pub fn last_input_seq(&self) -> Seq {
        self.input.last_seq().unwrap_or(Seq(0))
    }

    /// Next outbound (output journal) sequence.
    pub fn next_output_seq(&self) -> Seq {
        self.output.next_seq()
    }

    /// Commands pushed to the engine whose answer has not come back.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// What the metrics endpoint reads.
    pub fn sources(&self) -> Sources {
        Sources {
            metrics: self.metrics.clone(),
            input_ring: self.to_engine.gauge(),
            output_ring: self.from_engine.gauge(),
            input_syncer: self.input.syncer(),
            output_syncer: self.output.syncer(),
        }
    }

    /// Journals an input and queues it for the engine.
    ///
    /// `recv_ts`: wall clock at receive (journaled); `recv`: the same moment
    /// on the monotonic clock (latency). A configuration event has
    /// `src_stream` Config and `src_seq` 0 and is never a duplicate.
    ///
    /// # Errors
    /// The journal append failed, or the engine thread is gone: the daemon
    /// must stop (nothing after this input may be applied).
    pub fn submit(
        &mut self,
        src_stream: SourceStream,
        src_seq: u64,
        recv_ts: UnixNanos,
        recv: Instant,
        event: &Event,
        publish: &mut dyn Publish,
    ) -> Result<Submitted, PipelineError> {
        if src_stream != SourceStream::Config {
            if src_seq < self.streams.next_expected(src_stream) {
                bump(&self.metrics.events_duplicate, 1);
                return Ok(Submitted::Duplicate);
            }
            self.streams.advance(src_stream, src_seq);
        }
        let seq = self
            .input
            .append_event(recv_ts, src_stream, src_seq, event)?;
        bump(&self.metrics.events_journaled, 1);
        self.metrics.input_last_seq.store(seq.0, Ordering::Relaxed);
        if !self.shard.applies(event) {
            bump(&self.metrics.events_skipped_shard, 1);
            return Ok(Submitted::Skipped(seq));
        }
        let origin = Origin {
            seq,
            src_stream,
            src_seq,
            recv_mono_ns: self.mono_ns(recv),
            recv_wall_ns: recv_ts.0,
        };
        self.push(publish, |slot| {
            slot.command = Command::Apply;
            slot.origin = origin;
            slot.event = *event;
        })?;
        self.since_snapshot += 1;
        if self.snapshot_interval_events != 0
            && self.since_snapshot >= self.snapshot_interval_events
        {
            self.request_snapshot(publish)?;
        }
        Ok(Submitted::Queued(seq))
    }

    /// Asks the engine for its counts; the `S` message is journaled and
    /// published when the answer comes back (in order with the decisions).
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    /// The `S` message's `seq` is the last input journaled now: every
    /// decision of the inputs up to it precedes the `S` in the output
    /// journal (a completeness watermark that restarts rely on).
    pub fn request_status(&mut self, publish: &mut dyn Publish) -> Result<(), PipelineError> {
        let origin = Origin {
            seq: self.last_input_seq(),
            ..Origin::NONE
        };
        self.push(publish, |slot| {
            slot.command = Command::Status;
            slot.origin = origin;
        })
    }

    /// Asks the engine thread for a snapshot of its state after the last
    /// journaled input (written by the snapshot writer thread).
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    pub fn request_snapshot(&mut self, publish: &mut dyn Publish) -> Result<(), PipelineError> {
        self.since_snapshot = 0;
        let origin = Origin {
            seq: self.last_input_seq(),
            ..Origin::NONE
        };
        self.push(publish, |slot| {
            slot.command = Command::Snapshot;
            slot.origin = origin;
        })
    }

    /// Snapshots the engine thread handed to the writer so far.
    pub fn snapshots_taken(&self) -> u64 {
        self.snapshots_taken
    }

    fn push(
        &mut self,
        publish: &mut dyn Publish,
        fill: impl Fn(&mut EngineInput),
    ) -> Result<(), PipelineError> {
        while !self.to_engine.try_push_with(&fill) {
            // Full: wait for the engine, draining its outputs meanwhile.
            bump(&self.metrics.input_ring_full_waits, 1);
            if self.poll(publish)? == 0 {
                self.check_engine()?;
                std::thread::yield_now();
            }
        }
        self.in_flight += 1;
        self.metrics
            .in_flight
            .store(self.in_flight, Ordering::Relaxed);
        Ok(())
    }

    fn check_engine(&self) -> Result<(), PipelineError> {
        match &self.engine {
            Some(handle) if !handle.is_finished() => Ok(()),
            _ => Err(PipelineError::EngineGone),
        }
    }

    fn mono_ns(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Pops every output the engine has produced so far: journals and
    /// publishes decisions and status answers, counts done inputs and their
    /// latency. Returns the number of ring messages handled.
    ///
    /// # Errors
    /// An output journal append failed (the daemon must stop).
    pub fn poll(&mut self, publish: &mut dyn Publish) -> Result<usize, PipelineError> {
        let mut handled = 0;
        loop {
            let Pipeline {
                from_engine,
                output,
                metrics,
                latency,
                wire_latency,
                epoch,
                in_flight,
                stopped,
                snapshots_taken,
                ..
            } = self;
            let popped = from_engine.try_pop_with(|slot| -> Result<(), PipelineError> {
                let origin = slot.origin;
                match slot.kind {
                    OutputKind::Halt => {
                        let seq = output.append_halt(origin.seq, &slot.halt)?;
                        bump(&metrics.halts, 1);
                        metrics.output_last_seq.store(seq.0, Ordering::Relaxed);
                        publish.publish(&outbound(seq, origin, OutboundBody::Halt(&slot.halt)));
                    }
                    OutputKind::Liquidation => {
                        let legs = slot.legs();
                        let seq = output.append_liquidation(origin.seq, &slot.liquidation, legs)?;
                        bump(&metrics.liquidations, 1);
                        metrics.output_last_seq.store(seq.0, Ordering::Relaxed);
                        let body = OutboundBody::Liquidation {
                            liquidation: &slot.liquidation,
                            legs,
                        };
                        publish.publish(&outbound(seq, origin, body));
                    }
                    OutputKind::Done { accepted } => {
                        *in_flight -= 1;
                        let counter = if accepted {
                            &metrics.events_applied
                        } else {
                            &metrics.events_rejected
                        };
                        bump(counter, 1);
                        let now = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
                        let ns = now.saturating_sub(origin.recv_mono_ns).max(1);
                        latency.saturating_record(ns.min(LATENCY_NS_MAX));
                        if origin.recv_wall_ns != 0 {
                            let wall = wall_clock().0;
                            let ns = wall.saturating_sub(origin.recv_wall_ns);
                            if wall >= origin.recv_wall_ns && ns < LATENCY_NS_MAX {
                                wire_latency.saturating_record(ns.max(1));
                            }
                        }
                    }
                    OutputKind::Status {
                        accounts,
                        liquidating,
                        halted,
                    } => {
                        *in_flight -= 1;
                        let status = Status {
                            ts: wall_clock(),
                            seq: origin.seq,
                            accounts,
                            liquidating,
                            halted,
                        };
                        let seq = output.append_status(&status)?;
                        bump(&metrics.status_messages, 1);
                        metrics.accounts.store(accounts, Ordering::Relaxed);
                        metrics
                            .accounts_liquidating
                            .store(liquidating, Ordering::Relaxed);
                        metrics
                            .instruments_halted
                            .store(u64::from(halted), Ordering::Relaxed);
                        metrics.output_last_seq.store(seq.0, Ordering::Relaxed);
                        let status_origin = Origin {
                            seq: status.seq,
                            ..Origin::NONE
                        };
                        publish.publish(&outbound(
                            seq,
                            status_origin,
                            OutboundBody::Status(&status),
                        ));
                    }
                    OutputKind::SnapshotTaken { sent } => {
                        *in_flight -= 1;
                        *snapshots_taken += u64::from(sent);
                    }
                    OutputKind::Stopped => {
                        *in_flight -= 1;
                        *stopped = true;
                    }
                }
                Ok(())
            });
            match popped {
                None => break,
                Some(result) => {
                    result?;
                    handled += 1;
                }
            }
        }
        if handled > 0 {
            self.metrics
                .in_flight
                .store(self.in_flight, Ordering::Relaxed);
        }
        Ok(handled)
    }

    /// Polls until every queued input is done.
    ///
    /// # Errors
    /// As [`poll`](Self::poll); the engine thread ended.
    pub fn drain(&mut self, publish: &mut dyn Publish) -> Result<(), PipelineError> {
        while self.in_flight > 0 {
            if self.poll(publish)? == 0 {
                self.check_engine()?;
                std::thread::yield_now();
            }
        }
        Ok(())
    }

    /// Publishes the latency percentiles into the metrics.
    pub fn update_latency_metrics(&self) {
        let h = &self.latency;
        let m = &self.metrics;
        m.latency_ns_p50
            .store(h.value_at_quantile(0.5), Ordering::Relaxed);
        m.latency_ns_p90
            .store(h.value_at_quantile(0.9), Ordering::Relaxed);
        m.latency_ns_p99
            .store(h.value_at_quantile(0.99), Ordering::Relaxed);
        m.latency_ns_p999
            .store(h.value_at_quantile(0.999), Ordering::Relaxed);
        m.latency_ns_max.store(h.max(), Ordering::Relaxed);
        m.latency_samples.store(h.len(), Ordering::Relaxed);
        let w = &self.wire_latency;
        m.wire_latency_ns_p50
            .store(w.value_at_quantile(0.5), Ordering::Relaxed);
        m.wire_latency_ns_p99
            .store(w.value_at_quantile(0.99), Ordering::Relaxed);
        m.wire_latency_ns_max.store(w.max(), Ordering::Relaxed);
        m.wire_latency_samples.store(w.len(), Ordering::Relaxed);
    }

    /// Forgets the latency samples so far (after a warm-up).
    pub fn reset_latency(&mut self) {
        self.latency.reset();
        self.wire_latency.reset();
    }

    /// The in-process latency histogram (receive → engine done), ns.
    pub fn latency(&self) -> &Histogram<u64> {
        &self.latency
    }

    /// Stops the engine after every queued input, journals and publishes
    /// the remaining outputs, flushes both journals and returns the engine
    /// (for the shutdown snapshot) and the journals.
    ///
    /// # Errors
    /// As [`poll`](Self::poll); a final flush failed.
    pub fn shutdown(
        mut self,
        publish: &mut dyn Publish,
    ) -> Result<(Engine, InputJournal, OutputJournal), PipelineError> {
        self.push(publish, |slot| {
            slot.command = Command::Stop;
            slot.origin = Origin::NONE;
        })?;
        while !self.stopped {
            if self.poll(publish)? == 0 {
                self.check_engine_or_stopped()?;
                std::thread::yield_now();
            }
        }
        self.update_latency_metrics();
        let engine = self
            .engine
            .take()
            .ok_or(PipelineError::EngineGone)?
            .join()
            .map_err(|_| PipelineError::EngineGone)?;
        self.input.flush()?;
        self.output.flush()?;
        Ok((engine, self.input, self.output))
    }

    fn check_engine_or_stopped(&self) -> Result<(), PipelineError> {
        match &self.engine {
            // A finished thread may still have its Stopped answer in the
            // ring; the caller polls once more before giving up.
            Some(handle) if handle.is_finished() && self.from_engine.gauge().is_empty() => {
                Err(PipelineError::EngineGone)
            }
            Some(_) => Ok(()),
            None => Err(PipelineError::EngineGone),
        }
    }
}

fn outbound<'a>(seq: Seq, origin: Origin, body: OutboundBody<'a>) -> Outbound<'a> {
    Outbound {
        seq,
        input_seq: origin.seq,
        src_stream: origin.src_stream,
        src_seq: origin.src_seq,
        body,
    }
}

/// Wall clock, ns since the Unix epoch (gateway thread only).
pub fn wall_clock() -> UnixNanos {
    let ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    UnixNanos(u64::try_from(ns).unwrap_or(u64::MAX))
}
