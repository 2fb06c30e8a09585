//! Where a replay's events come from: a JSONL event file (PROTOCOL.md §5)
//! or an input journal directory. One tiny API for every `liqd replay`
//! command: [`Input::open`] decides by the path (a directory is a journal),
//! [`Input::for_each`] streams `(seq, event)` in order.
//!
//! A JSONL file's event on line `n` has sequence `n`; a journal's records
//! carry their own. The journal is read zero-copy with every record's CRC
//! and archive validated (the safe reader): files from disk are outside
//! bytes. Reading and decoding run on a second thread a few batches ahead
//! of the caller, so a replay costs about the engine's own apply time (see
//! BENCHMARKS.md, "Replay"). `-` as a JSONL path is standard input.
//!
//! `liqd journal import` gives line `n` sequence `n`, so both kinds name the
//! same event by the same sequence, and [`Input::for_each_from`] starts at
//! any sequence. A journal also has engine snapshots (`DIR/snapshots/`):
//! [`Input::restore_latest`] / [`resume`] give the newest usable one at or
//! before a sequence, to replay only the tail.
//!
//! (This module replaced an earlier `source` module that did the same job
//! without the read-ahead thread and progress.)

use std::cell::Cell;
use std::fs::File;
use std::io::{BufReader, Read};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc;

use engine::{Engine, EngineConfig, Event, Limits, Seq};
use journal::{InputReader, JournalError, RestoredEngine, SnapshotStore};

use crate::jsonl::{EventReader, JsonlError};
use crate::progress::Progress;

/// Read buffer of a JSONL file.
const READ_BUFFER_BYTES: usize = 1 << 16;

/// Events per batch handed from the reading thread.
pub const BATCH_EVENTS: usize = 256;
/// Batches read ahead at most.
pub const BATCHES_AHEAD: usize = 4;

/// Events read ahead, with the source position after the last (bytes of a
/// JSONL file, or the sequence).
struct Batch {
    events: Vec<(Seq, Event)>,
    position: u64,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            events: Vec::with_capacity(BATCH_EVENTS),
            position: 0,
        }
    }
}

/// The subdirectory of a journal directory that holds its output journal
/// (written by `liqd journal import --with-outputs`, read by `verify`).
pub const OUTPUT_SUBDIR: &str = "output";

/// Why events could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(transparent)]
    Jsonl(#[from] JsonlError),
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    #[error("cannot start the reading thread: {0}")]
    Thread(std::io::Error),
    #[error("{path}: no journal segment files (not an input journal directory)", path = .0.display())]
    NoSegments(PathBuf),
    #[error("cannot open {path}: {error}", path = .path.display())]
    Open {
        path: PathBuf,
        /// In the message, not a `source`: printed once in error chains.
        error: std::io::Error,
    },
    #[error("{0} is not a journal directory: snapshots need one")]
    NotAJournal(String),
    #[error("the journal starts at seq {first}, but the state resumes after seq {resumed}: the inputs between are missing")]
    Gap { first: u64, resumed: u64 },
}

impl InputError {
    /// A JSONL line that is not valid for the format.
    pub fn is_format(&self) -> bool {
        matches!(self, InputError::Jsonl(e) if e.is_format())
    }
}

/// A source of events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A JSONL event file.
    Jsonl(PathBuf),
    /// An input journal directory.
    Journal(PathBuf),
}

impl Input {
    /// A directory is an input journal, anything else a JSONL file. Nothing
    /// is opened yet.
    pub fn open(path: &Path) -> Input {
        if path.is_dir() {
            Input::Journal(path.to_path_buf())
        } else {
            Input::Jsonl(path.to_path_buf())
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            Input::Jsonl(p) | Input::Journal(p) => p,
        }
    }

    /// The name errors give the input.
    pub fn name(&self) -> String {
        self.path().display().to_string()
    }

    /// The first sequence the input holds (a journal may start after 1).
    ///
    /// # Errors
    /// The journal cannot be opened.
    pub fn first_seq(&self) -> Result<Seq, InputError> {
        match self {
            Input::Jsonl(_) => Ok(Seq(1)),
            Input::Journal(dir) => Ok(InputReader::open(dir)?.first_seq().unwrap_or(Seq(1))),
        }
    }

    /// The newest snapshot at or before `at` (in `snapshots`, or the
    /// journal's `snapshots/`) that verifies and restores with `limits` and
    /// `config`; `None` if there is none.
    ///
    /// # Errors
    /// [`InputError::NotAJournal`] for a JSONL input without `snapshots`;
    /// I/O errors other than a damaged snapshot.
    pub fn restore_latest(
        &self,
        snapshots: Option<&Path>,
        at: Seq,
        limits: Limits,
        config: EngineConfig,
    ) -> Result<Option<RestoredEngine>, InputError> {
        let dir = match (snapshots, self) {
            (Some(dir), _) => dir.to_path_buf(),
            (None, Input::Journal(dir)) => journal::default_snapshot_dir(dir),
            (None, Input::Jsonl(_)) => return Err(InputError::NotAJournal(self.name())),
        };
        if !dir.is_dir() {
            return Ok(None);
        }
        let store = SnapshotStore::open(&dir, 0)?;
        Ok(journal::load_engine_snapshot(&store, at, limits, config)?)
    }

    /// Calls `f` with every event in order until the end or until `f`
    /// breaks, ticking `progress` (a JSONL file's bar counts bytes).
    ///
    /// The source is read ahead on a second thread, in batches of
    /// [`BATCH_EVENTS`] (at most [`BATCHES_AHEAD`] waiting), so reading and
    /// decoding overlap the caller's work: the engine thread only takes
    /// events out of a batch. Order is the source's; nothing else crosses
    /// the threads.
    ///
    /// # Errors
    /// The source cannot be opened, a JSONL line is not valid, a journal
    /// record is damaged: the events before it have been passed to `f`.
    pub fn for_each(
        &self,
        progress: &mut Progress,
        f: impl FnMut(Seq, &Event) -> ControlFlow<()>,
    ) -> Result<(), InputError> {
        self.for_each_from(Seq(1), progress, f)
    }

    /// As [`for_each`](Self::for_each), with the events of sequence ≥
    /// `from` only (a journal seeks to it; a JSONL file reads and skips
    /// the lines before).
    ///
    /// # Errors
    /// As [`for_each`](Self::for_each).
    pub fn for_each_from(
        &self,
        from: Seq,
        progress: &mut Progress,
        mut f: impl FnMut(Seq, &Event) -> ControlFlow<()>,
    ) -> Result<(), InputError> {
        if let Input::Jsonl(path) = self {
            if let Some(meta) = (!is_stdin(path))
                .then(|| std::fs::metadata(path).ok())
                .flatten()
            {
                progress.set_total(meta.len());
            }
        }
        let (full_tx, full_rx) = mpsc::sync_channel::<Batch>(BATCHES_AHEAD);
        let (empty_tx, empty_rx) = mpsc::channel::<Batch>();
        let result = std::thread::scope(|scope| {
            let reader = std::thread::Builder::new()
                .name("replay-read".to_owned())
                .spawn_scoped(scope, move || self.read_ahead(from, &full_tx, &empty_rx));
            let reader = match reader {
                Ok(reader) => reader,
                Err(e) => return Err(InputError::Thread(e)),
            };
            'batches: for mut batch in full_rx.iter() {
                for (seq, event) in &batch.events {
                    if f(*seq, event).is_break() {
                        break 'batches;
                    }
                    progress.tick_with(|| batch.position);
                }
                batch.events.clear();
                // The reader may have finished: a recycled batch is then
                // simply dropped.
                let _ = empty_tx.send(batch);
            }
            // A reader blocked on a full channel sees it closed and stops.
            drop(full_rx);
            match reader.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        });
        progress.finish();
        result
    }

    /// The reading thread: fills batches and sends them; stops quietly
    /// when the receiving side is gone.
    fn read_ahead(
        &self,
        from: Seq,
        full: &mpsc::SyncSender<Batch>,
        empty: &mpsc::Receiver<Batch>,
    ) -> Result<(), InputError> {
        let mut batch = Batch::new();
        let mut push = |seq: Seq, event: Event, position: u64| -> bool {
            batch.events.push((seq, event));
            batch.position = position;
            if batch.events.len() < BATCH_EVENTS {
                return true;
            }
            let next = empty.try_recv().unwrap_or_else(|_| Batch::new());
            full.send(std::mem::replace(&mut batch, next)).is_ok()
        };
        let read = match self {
            Input::Jsonl(path) => {
                let (file, name): (Box<dyn Read>, String) = if is_stdin(path) {
                    (Box::new(std::io::stdin()), "<stdin>".to_owned())
                } else {
                    let file = File::open(path).map_err(|error| InputError::Open {
                        path: path.clone(),
                        error,
                    })?;
                    (Box::new(file), path.display().to_string())
                };
                let bytes = Rc::new(Cell::new(0));
                let counted = Counted {
                    inner: file,
                    bytes: Rc::clone(&bytes),
                };
                let mut reader =
                    EventReader::new(BufReader::with_capacity(READ_BUFFER_BYTES, counted), name);
                loop {
                    match reader.read_event() {
                        Ok(Some(_)) if reader.line() < from.0 => {}
                        Ok(Some(event)) => {
                            if !push(Seq(reader.line()), event, bytes.get()) {
                                return Ok(());
                            }
                        }
                        Ok(None) => break Ok(()),
                        Err(e) => break Err(InputError::from(e)),
                    }
                }
            }
            Input::Journal(dir) => {
                let reader = InputReader::open(dir)?;
                if reader.segment_count() == 0 {
                    return Err(InputError::NoSegments(dir.clone()));
                }
                let mut outcome = Ok(());
                for record in reader.iter_from(from) {
                    match record {
                        Ok(record) => {
                            if !push(record.seq, record.event(), record.seq.0) {
                                return Ok(());
                            }
                        }
                        Err(e) => {
                            outcome = Err(InputError::from(e));
                            break;
                        }
                    }
                }
                outcome
            }
        };
        // What was read before an error is delivered first.
        let _ = full.send(batch);
        read
    }

    /// Every event, in memory (tests, small files).
    ///
    /// # Errors
    /// As [`for_each`](Self::for_each).
    pub fn read_all(&self) -> Result<Vec<(Seq, Event)>, InputError> {
        let mut events = Vec::new();
        self.for_each(&mut Progress::hidden(), |seq, event| {
            events.push((seq, *event));
            ControlFlow::Continue(())
        })?;
        Ok(events)
    }
}

/// `-`: standard input.
fn is_stdin(path: &Path) -> bool {
    path == Path::new("-")
}

/// An engine restored from a snapshot (or new), and where to resume.
pub struct Resumed {
    pub engine: Engine,
    /// The first sequence still to apply.
    pub from: Seq,
    /// The snapshot used, if any, with the newer ones skipped and why.
    pub snapshot: Option<(Seq, PathBuf)>,
    pub skipped: Vec<(PathBuf, String)>,
}

/// The fast engine from the input's newest usable snapshot at or before
/// `at`, or a new one (from sequence 1) if there is none.
///
/// # Errors
/// As [`Input::restore_latest`]; [`InputError::Gap`] if the input starts
/// after the sequence the state resumes at (a journal that does not start
/// at 1 needs a snapshot at or after its start − 1).
pub fn resume(
    input: &Input,
    snapshots: Option<&Path>,
    at: Seq,
    limits: Limits,
    config: EngineConfig,
) -> Result<Resumed, InputError> {
    let resumed = match input.restore_latest(snapshots, at, limits, config)? {
        Some(restored) => Resumed {
            engine: restored.engine,
            from: Seq(restored.seq.0.saturating_add(1)),
            snapshot: Some((restored.seq, restored.path)),
            skipped: restored.skipped,
        },
        None => Resumed {
            engine: Engine::with_config(limits, config),
            from: Seq(1),
            snapshot: None,
            skipped: Vec::new(),
        },
    };
    let first = input.first_seq()?;
    if first > resumed.from {
        return Err(InputError::Gap {
            first: first.0,
            resumed: resumed.from.0 - 1,
        });
    }
    Ok(resumed)
}

/// Counts the bytes read through it (progress of a JSONL file).
struct Counted<R> {
    inner: R,
    bytes: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.set(self.bytes.get() + n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use engine::{InstrumentId, MarkPrice, UnixNanos};
    use journal::{InputJournal, JournalOptions, SourceStream};

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("replay-input-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn read_from(input: &Input, from: u64) -> Vec<(Seq, Event)> {
        let mut events = Vec::new();
        input
            .for_each_from(Seq(from), &mut Progress::hidden(), |seq, event| {
                events.push((seq, *event));
                ControlFlow::Continue(())
            })
            .unwrap();
        events
    }

    #[test]
    fn a_jsonl_file_and_its_journal_give_the_same_events_from_any_seq() {
        let events: Vec<Event> = (1..=5)
            .map(|n| {
                Event::Mark(MarkPrice {
                    ts: UnixNanos(n),
                    instrument: InstrumentId(1),
                    price: engine::Fixed8(n as i64 * 100_000_000),
                })
            })
            .collect();
        let file = scratch("events.jsonl");
        let mut text = Vec::new();
        for event in &events {
            crate::jsonl::write_event(&mut text, event).unwrap();
        }
        std::fs::write(&file, text).unwrap();
        let dir = scratch("journal");
        let mut journal = InputJournal::open(
            &dir,
            JournalOptions {
                segment_bytes: 64 * 1024,
                ..JournalOptions::default()
            },
        )
        .unwrap();
        for (n, event) in events.iter().enumerate() {
            journal
                .append_event(event.ts(), SourceStream::MarketData, n as u64 + 1, event)
                .unwrap();
        }
        journal.close().unwrap();
        for from in [1, 3, 5, 6] {
            let jsonl = Input::open(&file);
            let dir_input = Input::open(&dir);
            assert!(matches!(dir_input, Input::Journal(_)));
            let a = read_from(&jsonl, from);
            assert_eq!(a, read_from(&dir_input, from));
            let seqs: Vec<u64> = a.iter().map(|(s, _)| s.0).collect();
            assert_eq!(seqs, (from..=5).collect::<Vec<_>>());
        }
        // A directory without segments is not a journal.
        let empty = scratch("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(matches!(
            Input::open(&empty).read_all(),
            Err(InputError::NoSegments(_))
        ));
        let _ = std::fs::remove_dir_all(&empty);
        // No snapshots yet: nothing to resume from; a JSONL file has none.
        let limits = engine::Limits::default();
        let resumed = resume(
            &Input::open(&dir),
            None,
            Seq(u64::MAX),
            limits,
            EngineConfig::default(),
        );
        assert_eq!(resumed.unwrap().from, Seq(1));
        assert!(matches!(
            Input::open(&file).restore_latest(None, Seq(u64::MAX), limits, EngineConfig::default()),
            Err(InputError::NotAJournal(_))
        ));
        // A missing file names itself.
        let missing = Input::open(Path::new("/nonexistent/x.jsonl"));
        assert!(matches!(missing.read_all(), Err(InputError::Open { .. })));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(&file);
    }

    #[test]
    fn a_journal_starting_after_seq_1_needs_a_snapshot_and_at_bounds_it() {
        let dir = scratch("late");
        let options = JournalOptions {
            segment_bytes: 64 * 1024,
            first_seq: Seq(10),
            ..JournalOptions::default()
        };
        let mut journal = InputJournal::open(&dir, options).unwrap();
        let event = Event::Mark(MarkPrice {
            ts: UnixNanos(1),
            instrument: InstrumentId(1),
            price: engine::Fixed8(100_000_000),
        });
        journal
            .append_event(UnixNanos(1), SourceStream::MarketData, 1, &event)
            .unwrap();
        journal.close().unwrap();
        let input = Input::open(&dir);
        assert_eq!(input.first_seq().unwrap(), Seq(10));
        let limits = engine::Limits::default();
        let config = EngineConfig::default();
        assert!(matches!(
            resume(&input, None, Seq(u64::MAX), limits, config),
            Err(InputError::Gap {
                first: 10,
                resumed: 0
            })
        ));
        let store = SnapshotStore::open(journal::default_snapshot_dir(&dir), 0).unwrap();
        journal::write_engine_snapshot(&store, Seq(9), &Engine::new(limits)).unwrap();
        let resumed = resume(&input, None, Seq(u64::MAX), limits, config).unwrap();
        assert_eq!(resumed.from, Seq(10));
        // Only snapshots at or before `at` are used.
        let none = input.restore_latest(None, Seq(8), limits, config).unwrap();
        assert!(none.is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
