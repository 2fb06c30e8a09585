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
//! BENCHMARKS.md, "Replay").

use std::cell::Cell;
use std::fs::File;
use std::io::{BufReader, Read};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc;

use engine::{Event, Seq};
use journal::{InputReader, JournalError};

use crate::jsonl::{ErrorKind, EventReader, JsonlError};
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
        mut f: impl FnMut(Seq, &Event) -> ControlFlow<()>,
    ) -> Result<(), InputError> {
        if let Input::Jsonl(path) = self {
            if let Ok(meta) = std::fs::metadata(path) {
                progress.set_total(meta.len());
            }
        }
        let (full_tx, full_rx) = mpsc::sync_channel::<Batch>(BATCHES_AHEAD);
        let (empty_tx, empty_rx) = mpsc::channel::<Batch>();
        let result = std::thread::scope(|scope| {
            let reader = std::thread::Builder::new()
                .name("replay-read".to_owned())
                .spawn_scoped(scope, move || self.read_ahead(&full_tx, &empty_rx));
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
                let name = path.display().to_string();
                let file =
                    File::open(path).map_err(|e| JsonlError::new(&name, 0, ErrorKind::Io(e)))?;
                let bytes = Rc::new(Cell::new(0));
                let counted = Counted {
                    inner: file,
                    bytes: Rc::clone(&bytes),
                };
                let mut reader =
                    EventReader::new(BufReader::with_capacity(READ_BUFFER_BYTES, counted), name);
                loop {
                    match reader.read_event() {
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
                for record in reader.iter() {
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
