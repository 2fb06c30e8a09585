//! Starting and stopping the pipeline: open and recover the data
//! directory, restore the engine (snapshot + tail), start the engine
//! thread, journal the configuration's initial events into a new journal;
//! at the end drain, write a final `S` and a snapshot, flush and close.
//!
//! Everything here is socket-free: the gateway (or a test) drives the
//! returned [`Running::pipeline`].

use std::fmt;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use engine::{Engine, EngineConfig, Event, Seq};
use journal::{SnapshotStore, SourceStream, SyncerThread};

use crate::config::{Config, Settings};
use crate::datadir::{
    output_dir, restore, DataDir, DataDirError, JournalSettings, Meta, OutputsInfo,
};
use crate::engine_thread::SnapshotMessage;
use crate::metrics::Metrics;
use crate::pipeline::{
    wall_clock, Pipeline, PipelineError, PipelineOptions, Publish, StreamPositions,
};
use crate::sessions::Sessions;

/// Everything [`start`] needs (from a configuration, or built by a test).
#[derive(Clone, Debug)]
pub struct DaemonOptions {
    pub dir: PathBuf,
    pub journal: JournalSettings,
    pub meta: Meta,
    pub snapshot_dir: PathBuf,
    pub snapshot_retain: usize,
    pub pipeline: PipelineOptions,
    /// Journaled first in a new journal (source stream 0).
    pub initial_events: Vec<Event>,
}

impl DaemonOptions {
    pub fn from_config(config: &Config, settings: &Settings) -> DaemonOptions {
        DaemonOptions {
            dir: config.journal.dir.clone(),
            journal: JournalSettings {
                segment_bytes: config.journal.segment_bytes,
                flush_every_records: config.journal.flush_every_records,
                flush_interval: Duration::from_millis(config.journal.flush_interval_ms),
            },
            meta: Meta {
                shard: settings.shard,
                limits: settings.limits,
            },
            snapshot_dir: settings.snapshot_dir.clone(),
            snapshot_retain: config.snapshot.retain,
            pipeline: PipelineOptions {
                shard: settings.shard,
                input_slots: config.rings.input_slots,
                output_slots: config.rings.output_slots,
                engine_core: config.threads.engine_core,
                engine_idle: settings.engine_idle,
                snapshot_interval_events: config.snapshot.interval_events,
            },
            initial_events: settings.initial_events.clone(),
        }
    }
}

/// Why the daemon could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("journal: {0}")]
    Journal(#[from] journal::JournalError),
}

/// What start-up found and did.
#[derive(Clone, Debug, Default)]
pub struct StartReport {
    pub new_journal: bool,
    /// The snapshot the engine started from (its sequence).
    pub snapshot: Option<(Seq, PathBuf)>,
    pub snapshots_skipped: Vec<(PathBuf, String)>,
    /// Input records applied again at start.
    pub replayed: u64,
    pub skipped_shard: u64,
    /// Decisions the previous run had not journaled, journaled now.
    pub outputs_recovered: u64,
    /// Last input sequence journaled before this run.
    pub last_input_seq: Seq,
    pub streams: StreamPositions,
    pub next_output_seq: Seq,
    pub restore_time: Duration,
}

impl fmt::Display for StartReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.new_journal {
            write!(f, "new journal")?;
        } else {
            match &self.snapshot {
                Some((seq, path)) => {
                    write!(f, "restored snapshot seq={} ({})", seq.0, path.display())?
                }
                None => write!(f, "no snapshot")?,
            }
            write!(
                f,
                "; replayed {} inputs up to seq {} ({} of other shards) in {:?}; {} unjournaled decisions recovered",
                self.replayed,
                self.last_input_seq.0,
                self.skipped_shard,
                self.restore_time,
                self.outputs_recovered
            )?;
        }
        let s = &self.streams;
        write!(
            f,
            "; next expected md={} orders={} admin={}; next output seq {}",
            s.next_expected(SourceStream::MarketData),
            s.next_expected(SourceStream::Orders),
            s.next_expected(SourceStream::Admin),
            self.next_output_seq.0
        )
    }
}

/// A started pipeline and its helpers.
pub struct Running {
    pub pipeline: Pipeline,
    pub report: StartReport,
    /// Each inbound stream's session (persisted; `liqd run` records
    /// changes here before journaling the new session's events).
    pub sessions: Sessions,
    store: SnapshotStore,
    writer: Option<JoinHandle<()>>,
    syncers: Vec<SyncerThread>,
}

/// Opens the data directory, restores the engine and starts the pipeline;
/// a new journal gets the initial events first (their outputs published).
///
/// # Errors
/// The data directory cannot be opened or recovered; a journal error; the
/// engine thread cannot start.
pub fn start(
    options: &DaemonOptions,
    metrics: Arc<Metrics>,
    publish: &mut dyn Publish,
) -> Result<Running, StartError> {
    let started = Instant::now();
    let mut data = DataDir::open(&options.dir, &options.meta, options.journal)?;
    let store = SnapshotStore::open(&options.snapshot_dir, options.snapshot_retain)?;
    let mut report = StartReport {
        new_journal: data.is_new,
        ..StartReport::default()
    };
    let limits = options.meta.limits;
    let sessions = if data.is_new {
        // A sessions file without a journal is stale (not ours).
        Sessions::empty(&options.dir).clear()?
    } else {
        Sessions::load(&options.dir)?
    };
    let (engine, streams) = if data.is_new {
        (Engine::new(limits), StreamPositions::default())
    } else {
        let outputs = OutputsInfo::read(&output_dir(&data.dir))?;
        let loaded = journal::load_engine_snapshot(
            &store,
            outputs.complete_upto,
            limits,
            EngineConfig::default(),
        )?;
        let (base, base_seq) = match loaded {
            Some(restored) => {
                report.snapshot = Some((restored.seq, restored.path));
                report.snapshots_skipped = restored.skipped;
                (restored.engine, restored.seq)
            }
            None => (Engine::new(limits), Seq(0)),
        };
        let restored = restore(
            base,
            base_seq,
            &mut data,
            options.meta.shard,
            &outputs,
            &sessions,
        )?;
        report.replayed = restored.replayed;
        report.skipped_shard = restored.skipped_shard;
        report.outputs_recovered = restored.outputs_recovered;
        report.last_input_seq = restored.last_seq;
        (restored.engine, restored.streams)
    };
    report.streams = streams;
    report.next_output_seq = data.output.next_seq();
    report.restore_time = started.elapsed();
    for (path, why) in &report.snapshots_skipped {
        eprintln!("liqd: warning: skipped snapshot {}: {why}", path.display());
    }
    let interval = options.journal.flush_interval;
    let syncers = vec![
        data.input.syncer().spawn(interval)?,
        data.output.syncer().spawn(interval)?,
    ];
    let (tx, rx) = mpsc::channel::<SnapshotMessage>();
    let writer = spawn_snapshot_writer(store.clone(), rx)?;
    let mut pipeline = Pipeline::start(
        engine,
        data.input,
        data.output,
        streams,
        options.pipeline,
        metrics,
        Some(tx),
    )?;
    if report.new_journal {
        let now = Instant::now();
        for event in &options.initial_events {
            pipeline.submit(SourceStream::Config, 0, wall_clock(), now, event, publish)?;
        }
        pipeline.drain(publish)?;
    }
    Ok(Running {
        pipeline,
        report,
        sessions,
        store,
        writer: Some(writer),
        syncers,
    })
}

fn spawn_snapshot_writer(
    store: SnapshotStore,
    rx: Receiver<SnapshotMessage>,
) -> Result<JoinHandle<()>, StartError> {
    std::thread::Builder::new()
        .name("liqd-snapshots".into())
        .spawn(move || {
            for (seq, bytes) in rx {
                match store.write(seq, bytes.as_slice()) {
                    Ok(info) => eprintln!(
                        "liqd: snapshot seq={} written ({} bytes) to {}",
                        seq.0,
                        bytes.len(),
                        info.path.display()
                    ),
                    Err(e) => eprintln!("liqd: error: snapshot seq={} not written: {e}", seq.0),
                }
            }
        })
        .map_err(|e| StartError::Pipeline(PipelineError::Spawn(e)))
}

/// What a clean stop did.
#[derive(Clone, Copy, Debug)]
pub struct StopReport {
    pub last_input_seq: Seq,
    pub next_output_seq: Seq,
    /// The shutdown snapshot's sequence (none if nothing was journaled).
    pub snapshot_seq: Option<Seq>,
    pub state_hash: u64,
}

impl Running {
    /// Drains the rings, journals and publishes a final `S`, stops the
    /// engine thread, writes a snapshot of its state, flushes and closes
    /// both journals.
    ///
    /// # Errors
    /// A journal or snapshot write failed; the engine thread died.
    pub fn stop(mut self, publish: &mut dyn Publish) -> Result<StopReport, StartError> {
        self.pipeline.request_status(publish)?;
        self.pipeline.drain(publish)?;
        let last_input_seq = self.pipeline.last_input_seq();
        let (engine, input, output) = self.pipeline.shutdown(publish)?;
        for syncer in self.syncers.drain(..) {
            syncer.stop()?;
        }
        let next_output_seq = output.next_seq();
        input.close()?;
        output.close()?;
        // The writer thread ends once the engine's sender is gone.
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        let snapshot_seq = if last_input_seq.0 > 0 {
            journal::write_engine_snapshot(&self.store, last_input_seq, &engine)?;
            Some(last_input_seq)
        } else {
            None
        };
        Ok(StopReport {
            last_input_seq,
            next_output_seq,
            snapshot_seq,
            state_hash: engine.state_hash(),
        })
    }
}
