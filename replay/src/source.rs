//! Where events come from: a JSONL file (PROTOCOL.md §5; event `n` is line
//! `n` with sequence `n`) or a journal directory (the input journal's
//! records with their own sequences). `liqd journal import` gives line `n`
//! sequence `n`, so both name the same event by the same sequence.
//!
//! [`Source::open`] picks by what the path is (a directory is a journal;
//! `-` is standard input); [`Source::events`] iterates `(seq, event)` from a
//! sequence on. A journal also has snapshots (`DIR/snapshots/`):
//! [`Source::restore_latest`] gives the newest usable one, to replay only
//! the tail.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use engine::{Engine, EngineConfig, Event, Limits, Seq};
use journal::{InputReader, JournalError, RestoredEngine, SnapshotStore};

use crate::jsonl::{EventReader, JsonlError};

/// Read buffer of a JSONL file.
const READ_BUFFER_BYTES: usize = 1 << 16;

/// Why a source cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot open {path}: {source}", path = .path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Jsonl(#[from] JsonlError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{0} is not a journal directory: snapshots need one")]
    NotAJournal(String),
}

impl SourceError {
    /// A JSONL line that is not valid for the format.
    pub fn is_format(&self) -> bool {
        matches!(self, SourceError::Jsonl(e) if e.is_format())
    }
}

/// An event history to replay.
pub enum Source {
    Jsonl(EventReader<Box<dyn BufRead>>),
    Journal(InputReader),
}

impl Source {
    /// A journal if `path` is a directory; else a JSONL file (`-`: standard
    /// input).
    ///
    /// # Errors
    /// The file cannot be opened; the journal's segments are structurally
    /// damaged.
    pub fn open(path: &Path) -> Result<Source, SourceError> {
        if path == Path::new("-") {
            let input: Box<dyn BufRead> = Box::new(io::stdin().lock());
            return Ok(Source::Jsonl(EventReader::new(input, "<stdin>")));
        }
        if path.is_dir() {
            return Ok(Source::Journal(InputReader::open(path)?));
        }
        let file = File::open(path).map_err(|source| SourceError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let input: Box<dyn BufRead> = Box::new(BufReader::with_capacity(READ_BUFFER_BYTES, file));
        Ok(Source::Jsonl(EventReader::new(
            input,
            path.display().to_string(),
        )))
    }

    /// The events with sequence ≥ `from`, in order.
    pub fn events(&mut self, from: Seq) -> Events<'_> {
        match self {
            Source::Jsonl(reader) => Events::Jsonl { reader, from },
            Source::Journal(reader) => Events::Journal(reader.iter_from(from)),
        }
    }

    /// The name errors give the source.
    pub fn name(&self) -> String {
        match self {
            Source::Jsonl(reader) => reader.file().to_owned(),
            Source::Journal(reader) => reader.dir().display().to_string(),
        }
    }

    /// The newest snapshot (in `snapshots`, or the journal's `snapshots/`)
    /// that verifies and restores with `limits` and `config`; `None` if
    /// there is none.
    ///
    /// # Errors
    /// [`SourceError::NotAJournal`] for a JSONL source without `snapshots`;
    /// I/O errors other than a damaged snapshot.
    pub fn restore_latest(
        &self,
        snapshots: Option<&Path>,
        limits: Limits,
        config: EngineConfig,
    ) -> Result<Option<RestoredEngine>, SourceError> {
        let dir = match (snapshots, self) {
            (Some(dir), _) => dir.to_path_buf(),
            (None, Source::Journal(reader)) => journal::default_snapshot_dir(reader.dir()),
            (None, Source::Jsonl(_)) => return Err(SourceError::NotAJournal(self.name())),
        };
        if !dir.is_dir() {
            return Ok(None);
        }
        let store = SnapshotStore::open(&dir, 0)?;
        Ok(journal::load_engine_snapshot(
            &store,
            Seq(u64::MAX),
            limits,
            config,
        )?)
    }
}

/// `(seq, event)` from a [`Source`]; an error ends the iteration.
pub enum Events<'a> {
    Jsonl {
        reader: &'a mut EventReader<Box<dyn BufRead>>,
        from: Seq,
    },
    Journal(journal::Iter<'a, journal::InputRecord>),
}

impl Iterator for Events<'_> {
    type Item = Result<(Seq, Event), SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Events::Jsonl { reader, from } => loop {
                match reader.read_event() {
                    Ok(Some(_)) if reader.line() < from.0 => continue,
                    Ok(Some(event)) => return Some(Ok((Seq(reader.line()), event))),
                    Ok(None) => return None,
                    Err(e) => return Some(Err(e.into())),
                }
            },
            Events::Journal(iter) => iter
                .next()
                .map(|r| r.map(|r| (r.seq, r.event())).map_err(SourceError::from)),
        }
    }
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

/// The fast engine from the source's newest usable snapshot, or a new one
/// (from sequence 1) if there is none.
///
/// # Errors
/// As [`Source::restore_latest`].
pub fn resume(
    source: &Source,
    snapshots: Option<&Path>,
    limits: Limits,
    config: EngineConfig,
) -> Result<Resumed, SourceError> {
    Ok(match source.restore_latest(snapshots, limits, config)? {
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
    })
}
