//! Where a replay's events come from: a JSONL event file (PROTOCOL.md §5)
//! or an input journal directory. One tiny API for every `liqd replay`
//! command: [`Input::open`] decides by the path (a directory is a journal),
//! [`Input::for_each`] streams `(seq, event)` in order.
//!
//! A JSONL file's event on line `n` has sequence `n`; a journal's records
//! carry their own. The journal is read zero-copy with every record's CRC
//! and archive validated (the safe reader): files from disk are outside
//! bytes.

use std::cell::Cell;
use std::fs::File;
use std::io::{BufReader, Read};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use engine::{Event, Seq};
use journal::{InputReader, JournalError};

use crate::jsonl::{ErrorKind, EventReader, JsonlError};
use crate::progress::Progress;

/// Read buffer of a JSONL file.
const READ_BUFFER_BYTES: usize = 1 << 16;

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
    /// # Errors
    /// The source cannot be opened, a JSONL line is not valid, a journal
    /// record is damaged: the events before it have been passed to `f`.
    pub fn for_each(
        &self,
        progress: &mut Progress,
        mut f: impl FnMut(Seq, &Event) -> ControlFlow<()>,
    ) -> Result<(), InputError> {
        match self {
            Input::Jsonl(path) => {
                let name = path.display().to_string();
                let file =
                    File::open(path).map_err(|e| JsonlError::new(&name, 0, ErrorKind::Io(e)))?;
                if let Ok(meta) = file.metadata() {
                    progress.set_total(meta.len());
                }
                let bytes = Rc::new(Cell::new(0));
                let counted = Counted {
                    inner: file,
                    bytes: Rc::clone(&bytes),
                };
                let mut reader =
                    EventReader::new(BufReader::with_capacity(READ_BUFFER_BYTES, counted), name);
                while let Some(event) = reader.read_event()? {
                    let seq = Seq(reader.line());
                    if f(seq, &event).is_break() {
                        break;
                    }
                    progress.tick_with(|| bytes.get());
                }
            }
            Input::Journal(dir) => {
                let reader = InputReader::open(dir)?;
                for record in reader.iter() {
                    let record = record?;
                    if f(record.seq, &record.event()).is_break() {
                        break;
                    }
                    progress.tick_with(|| record.seq.0);
                }
            }
        }
        progress.finish();
        Ok(())
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
