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
    #[error("{path}: no journal segment files (not a journal directory)", path = .0.display())]
    NoSegments(PathBuf),
    #[error("the journal starts at seq {first}, but the state resumes after seq {resumed}: the inputs between are missing")]
    Gap { first: u64, resumed: u64 },
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
            let reader = InputReader::open(path)?;
            if reader.segment_count() == 0 {
                return Err(SourceError::NoSegments(path.to_path_buf()));
            }
            return Ok(Source::Journal(reader));
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
    /// The first sequence the source holds (a journal may start after 1).
    pub fn first_seq(&self) -> Seq {
        match self {
            Source::Jsonl(_) => Seq(1),
            Source::Journal(reader) => reader.first_seq().unwrap_or(Seq(1)),
        }
    }

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
/// As [`Source::restore_latest`]; [`SourceError::Gap`] if the source
/// starts after the sequence the state resumes at (a journal that does not
/// start at 1 needs a snapshot at or after its start − 1).
pub fn resume(
    source: &Source,
    snapshots: Option<&Path>,
    limits: Limits,
    config: EngineConfig,
) -> Result<Resumed, SourceError> {
    let resumed = resume_unchecked(source, snapshots, limits, config)?;
    let first = source.first_seq();
    if first > resumed.from {
        return Err(SourceError::Gap {
            first: first.0,
            resumed: resumed.from.0 - 1,
        });
    }
    Ok(resumed)
}

fn resume_unchecked(
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

#[cfg(test)]
mod tests {
    use engine::{InstrumentId, MarkPrice, UnixNanos};
    use journal::{InputJournal, JournalOptions, SourceStream};

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("replay-source-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
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
            let mut jsonl = Source::open(&file).unwrap();
            let mut dir_source = Source::open(&dir).unwrap();
            assert!(matches!(dir_source, Source::Journal(_)));
            let a: Vec<(Seq, Event)> = jsonl.events(Seq(from)).map(Result::unwrap).collect();
            let b: Vec<(Seq, Event)> = dir_source.events(Seq(from)).map(Result::unwrap).collect();
            assert_eq!(a, b);
            let seqs: Vec<u64> = a.iter().map(|(s, _)| s.0).collect();
            assert_eq!(seqs, (from..=5).collect::<Vec<_>>());
        }
        // A directory without segments is not a journal.
        let empty = scratch("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(matches!(
            Source::open(&empty),
            Err(SourceError::NoSegments(_))
        ));
        let _ = std::fs::remove_dir_all(&empty);
        // No snapshots yet: nothing to resume from; a JSONL file has none.
        let dir_source = Source::open(&dir).unwrap();
        let resumed = resume(
            &dir_source,
            None,
            engine::Limits::default(),
            EngineConfig::default(),
        );
        assert_eq!(resumed.unwrap().from, Seq(1));
        let jsonl = Source::open(&file).unwrap();
        assert!(matches!(
            jsonl.restore_latest(None, engine::Limits::default(), EngineConfig::default()),
            Err(SourceError::NotAJournal(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(&file);
    }

    #[test]
    fn a_journal_starting_after_seq_1_needs_a_snapshot() {
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
        let source = Source::open(&dir).unwrap();
        assert_eq!(source.first_seq(), Seq(10));
        let limits = engine::Limits::default();
        assert!(matches!(
            resume(&source, None, limits, EngineConfig::default()),
            Err(SourceError::Gap {
                first: 10,
                resumed: 0
            })
        ));
        let store = SnapshotStore::open(journal::default_snapshot_dir(&dir), 0).unwrap();
        journal::write_engine_snapshot(&store, Seq(9), &Engine::new(limits)).unwrap();
        let resumed = resume(&source, None, limits, EngineConfig::default()).unwrap();
        assert_eq!(resumed.from, Seq(10));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
