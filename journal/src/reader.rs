//! Zero-copy reading of a journal, from any sequence, across segments.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use engine::{Event, Seq};

use crate::error::{JournalError, Result};
use crate::record::{ArchivedInputRecord, InputRecord, JournalRecord};
use crate::scan::{list_dir, Outcome, SegmentFile, Walker};

/// A read-only view of a journal directory. Opening it validates every
/// segment header; records are validated (CRC, and bytecheck unless
/// trusted) as they are read. It never modifies the directory: a torn tail
/// simply ends the iteration.
///
/// The files are mapped: a writer must not truncate them while a reader
/// has them open (liqd's writer never shrinks a file it has open).
pub struct JournalReader<R: JournalRecord> {
    dir: PathBuf,
    segments: Vec<SegmentFile>,
    trusted: bool,
    _record: PhantomData<fn() -> R>,
}

impl<R: JournalRecord> JournalReader<R> {
    /// Opens the journal in `dir` for reading, validating every record with
    /// bytecheck (for files from disk).
    ///
    /// # Errors
    /// I/O errors and structural errors of the segment files (bad magic,
    /// version, header checksum, record kind, short file, duplicate start).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let listing = list_dir(dir, R::KIND, R::PAYLOAD_ALIGN)?;
        Ok(JournalReader {
            dir: dir.to_path_buf(),
            segments: listing.segments,
            trusted: false,
            _record: PhantomData,
        })
    }

    /// Opens without bytecheck validation: each record's CRC is still
    /// checked, then the archive is accessed unchecked (faster).
    ///
    /// # Safety
    /// Every segment in `dir` must have been written by this crate's writer
    /// (and, ideally, verified once with a checked reader or `check`): a
    /// forged frame with a matching CRC would be read as a valid archive.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub unsafe fn open_trusted(dir: impl AsRef<Path>) -> Result<Self> {
        let mut reader = Self::open(dir)?;
        reader.trusted = true;
        Ok(reader)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The first sequence of the first segment (the journal's start).
    pub fn first_seq(&self) -> Option<Seq> {
        self.segments.first().map(|s| Seq(s.first_seq()))
    }

    /// Every record from the start.
    pub fn iter(&self) -> Iter<'_, R> {
        self.iter_from(Seq(0))
    }

    /// Records with sequence ≥ `from`.
    pub fn iter_from(&self, from: Seq) -> Iter<'_, R> {
        let seg = self
            .segments
            .partition_point(|s| s.first_seq() <= from.0)
            .saturating_sub(1);
        Iter {
            segments: &self.segments,
            walker: Walker::new(&self.segments, seg, self.trusted),
            from: from.0,
            finished: false,
        }
    }
}

/// One record read in place.
pub struct RecordRef<'a, R: JournalRecord> {
    pub seq: Seq,
    /// The segment file and the frame's offset in it.
    pub segment: &'a Path,
    pub offset: u64,
    /// The archived record, in the mapping.
    pub archived: &'a R::Archived,
}

impl<R: JournalRecord> RecordRef<'_, R> {
    /// The owned record (allocates for output records with legs).
    pub fn to_owned(&self) -> R {
        R::deserialize(self.archived)
    }
}

impl RecordRef<'_, InputRecord> {
    /// The archived input record.
    pub fn input(&self) -> &ArchivedInputRecord {
        self.archived
    }

    /// The event, deserialized (a `Copy` value, no allocation).
    pub fn event(&self) -> Event {
        self.archived.to_event()
    }
}

/// Iterates records; a corruption followed by valid data, or a missing
/// segment, ends the iteration with one `Err`. A torn tail ends it quietly.
pub struct Iter<'a, R: JournalRecord> {
    segments: &'a [SegmentFile],
    walker: Walker<'a, R>,
    from: u64,
    finished: bool,
}

impl<'a, R: JournalRecord> Iterator for Iter<'a, R> {
    type Item = Result<RecordRef<'a, R>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        for located in self.walker.by_ref() {
            if located.seq < self.from {
                continue;
            }
            return Some(Ok(RecordRef {
                seq: Seq(located.seq),
                segment: &self.segments[located.seg].path,
                offset: located.offset as u64,
                archived: located.archived,
            }));
        }
        self.finished = true;
        match self.walker.outcome() {
            Some(Outcome::Corrupt {
                seg,
                offset,
                reason,
            }) => Some(Err(JournalError::Corrupt {
                segment: self.segments[seg].path.clone(),
                offset: offset as u64,
                reason,
            })),
            Some(Outcome::Missing {
                seg,
                expected,
                found,
            }) => Some(Err(JournalError::MissingSegment {
                after: self.segments[seg].path.clone(),
                expected,
                next: self.segments[seg + 1].path.clone(),
                found,
            })),
            _ => None,
        }
    }
}
