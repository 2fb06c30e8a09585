//! Reading segments: listing a directory, validating headers, walking
//! frames across segments, and classifying where and why the data ends.
//! Shared by recovery, the reader and `check`.

use std::fs::File;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::{BadFrame, JournalError, Result};
use crate::format::{
    first_frame_offset, frame_crc, is_prepared_file_name, next_frame_offset,
    parse_segment_file_name, HeaderProblem, SegmentHeader, FRAME_HEADER_BYTES, HEADER_BYTES,
};
use crate::record::{JournalRecord, RecordKind};

/// One segment file, mapped read-only.
pub(crate) struct SegmentFile {
    pub path: PathBuf,
    pub header: SegmentHeader,
    pub map: Mmap,
    /// A `.prepared` file whose header was written: a started segment whose
    /// rename to its final name had not happened yet.
    pub prepared: bool,
}

impl SegmentFile {
    pub fn first_seq(&self) -> u64 {
        self.header.first_seq
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The bytes that may hold frames: the file, cut at the header's size.
    pub fn data_end(&self) -> usize {
        self.map
            .len()
            .min(usize::try_from(self.header.segment_bytes).unwrap_or(usize::MAX))
    }

    pub fn first_frame(&self) -> usize {
        first_frame_offset(self.header.payload_align())
    }

    /// Maps `[from, from + POPULATE_WINDOW_BYTES)` (page-aligned, cut at
    /// the data end) into the page tables in one call
    /// (`MADV_POPULATE_READ`), instead of a page fault every few pages as
    /// a walk reaches them; returns where the window ends. Only a hint:
    /// an unsupported kernel (before 5.14) or a failure changes nothing.
    fn populate_from(&self, from: usize) -> usize {
        let start = from - from % crate::format::page_bytes();
        let end = (start + POPULATE_WINDOW_BYTES).min(self.data_end());
        if end > start {
            let _ = self
                .map
                .advise_range(memmap2::Advice::PopulateRead, start, end - start);
        }
        end.max(from + 1)
    }
}

/// How far ahead a walk maps a segment's pages.
const POPULATE_WINDOW_BYTES: usize = 4 << 20;

fn header_error(path: &Path, problem: HeaderProblem) -> JournalError {
    let path = path.to_path_buf();
    match problem {
        HeaderProblem::Magic => JournalError::BadMagic { path },
        HeaderProblem::Version(found) => JournalError::UnsupportedVersion {
            path,
            found,
            supported: crate::format::FORMAT_VERSION,
        },
        HeaderProblem::Checksum => JournalError::HeaderChecksum { path },
        HeaderProblem::Invalid(what) => JournalError::BadHeader { path, what },
    }
}

fn map_file(path: &Path) -> Result<(Mmap, u64)> {
    let file = File::open(path).map_err(JournalError::io(path))?;
    let len = file.metadata().map_err(JournalError::io(path))?.len();
    if len < HEADER_BYTES as u64 {
        return Err(JournalError::SegmentTooShort {
            path: path.to_path_buf(),
            len,
        });
    }
    // SAFETY: the mapping is read-only; journal files are only modified by
    // their single writer, which never shrinks a file it has opened.
    let map = unsafe { Mmap::map(&file) }.map_err(JournalError::io(path))?;
    Ok((map, len))
}

/// Opens and validates one segment file.
pub(crate) fn open_segment(
    path: &Path,
    kind: RecordKind,
    payload_align: usize,
) -> Result<SegmentFile> {
    let (map, _) = map_file(path)?;
    let header = SegmentHeader::decode(&map).map_err(|p| header_error(path, p))?;
    check_header(path, &header, kind, payload_align)?;
    if let Some(name_seq) = parse_segment_file_name(path) {
        if name_seq != header.first_seq {
            return Err(JournalError::NameMismatch {
                path: path.to_path_buf(),
                header_seq: header.first_seq,
                name_seq,
            });
        }
    }
    Ok(SegmentFile {
        path: path.to_path_buf(),
        header,
        map,
        prepared: false,
    })
}

fn check_header(
    path: &Path,
    header: &SegmentHeader,
    kind: RecordKind,
    payload_align: usize,
) -> Result<()> {
    let found = RecordKind::from_code(header.kind).ok_or(JournalError::BadHeader {
        path: path.to_path_buf(),
        what: "record kind",
    })?;
    if found != kind {
        return Err(JournalError::WrongKind {
            path: path.to_path_buf(),
            expected: kind,
            found,
        });
    }
    if header.payload_align() != payload_align {
        return Err(JournalError::BadHeader {
            path: path.to_path_buf(),
            what: "payload alignment differs from this record type's",
        });
    }
    Ok(())
}

/// The kind of the journal in `dir`, read from its first segment's header;
/// `None` if it has no segment.
pub(crate) fn detect_kind(dir: &Path) -> Result<Option<RecordKind>> {
    let Some(path) = sorted_segment_paths(dir)?.into_iter().next() else {
        return Ok(None);
    };
    let (map, _) = map_file(&path)?;
    let header = SegmentHeader::decode(&map).map_err(|p| header_error(&path, p))?;
    let kind = RecordKind::from_code(header.kind).ok_or(JournalError::BadHeader {
        path: path.clone(),
        what: "record kind",
    })?;
    Ok(Some(kind))
}

fn sorted_segment_paths(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(JournalError::io(dir))? {
        let path = entry.map_err(JournalError::io(dir))?.path();
        if parse_segment_file_name(&path).is_some() {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// What a directory holds.
pub(crate) struct Listing {
    /// Segments by first sequence (started `.prepared` files included).
    pub segments: Vec<SegmentFile>,
    /// `.prepared` files never started (zero header): safe to delete.
    pub unused_prepared: Vec<PathBuf>,
}

/// Lists and validates every segment of `dir`.
pub(crate) fn list_dir(dir: &Path, kind: RecordKind, payload_align: usize) -> Result<Listing> {
    let mut segments = Vec::new();
    let mut unused_prepared = Vec::new();
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(JournalError::io(dir))? {
        entries.push(entry.map_err(JournalError::io(dir))?.path());
    }
    entries.sort();
    for path in entries {
        if parse_segment_file_name(&path).is_some() {
            segments.push(open_segment(&path, kind, payload_align)?);
        } else if is_prepared_file_name(&path) {
            match open_prepared(&path, kind, payload_align)? {
                Some(segment) => segments.push(segment),
                None => unused_prepared.push(path),
            }
        }
    }
    segments.sort_by_key(SegmentFile::first_seq);
    for pair in segments.windows(2) {
        if pair[0].first_seq() == pair[1].first_seq() {
            return Err(JournalError::DuplicateSegment {
                first_seq: pair[0].first_seq(),
                a: pair[0].path.clone(),
                b: pair[1].path.clone(),
            });
        }
    }
    Ok(Listing {
        segments,
        unused_prepared,
    })
}

/// A prepared file: `None` if never started (short or zero header).
fn open_prepared(
    path: &Path,
    kind: RecordKind,
    payload_align: usize,
) -> Result<Option<SegmentFile>> {
    let len = std::fs::metadata(path)
        .map_err(JournalError::io(path))?
        .len();
    if len < HEADER_BYTES as u64 {
        return Ok(None);
    }
    let (map, _) = map_file(path)?;
    if map[..HEADER_BYTES].iter().all(|&b| b == 0) {
        return Ok(None);
    }
    let header = SegmentHeader::decode(&map).map_err(|p| header_error(path, p))?;
    check_header(path, &header, kind, payload_align)?;
    Ok(Some(SegmentFile {
        path: path.to_path_buf(),
        header,
        map,
        prepared: true,
    }))
}

/// One frame read at an offset.
pub(crate) enum Frame<'a, A> {
    /// A zero length, or the end of the segment.
    End,
    Record {
        archived: &'a A,
        seq: u64,
        next: usize,
    },
    Bad(BadFrame),
}

/// Reads the frame at `offset` of a segment's bytes (`data_end` bounds it).
pub(crate) fn read_frame<R: JournalRecord>(
    bytes: &[u8],
    data_end: usize,
    offset: usize,
    trusted: bool,
) -> Frame<'_, R::Archived> {
    if offset >= data_end {
        return Frame::End;
    }
    if offset + FRAME_HEADER_BYTES > data_end {
        return if bytes[offset..data_end].iter().all(|&b| b == 0) {
            Frame::End
        } else {
            Frame::Bad(BadFrame::TruncatedHeader)
        };
    }
    let word =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let len = word(offset);
    if len == 0 {
        return Frame::End;
    }
    let payload_start = offset + FRAME_HEADER_BYTES;
    let len_bytes = len as usize;
    if len_bytes > data_end - payload_start {
        return Frame::Bad(BadFrame::LengthOutOfBounds { len });
    }
    if len_bytes < R::PAYLOAD_BYTES_MIN {
        return Frame::Bad(BadFrame::LengthTooShort { len });
    }
    let payload = &bytes[payload_start..payload_start + len_bytes];
    let stored = word(offset + 4);
    let computed = frame_crc(len, payload);
    if stored != computed {
        return Frame::Bad(BadFrame::Checksum { stored, computed });
    }
    let archived = if trusted {
        // SAFETY: the caller vouches that these files were written by this
        // crate's writer; the CRC matched.
        unsafe { R::access_unchecked(payload) }
    } else {
        match R::access(payload) {
            Some(archived) => archived,
            None => return Frame::Bad(BadFrame::InvalidArchive),
        }
    };
    Frame::Record {
        archived,
        seq: R::archived_seq(archived).0,
        next: next_frame_offset(offset, len_bytes, R::PAYLOAD_ALIGN),
    }
}

/// True when a frame with a plausible length and a matching CRC starts at
/// some frame position after `offset` in `segment`.
fn valid_frame_after<R: JournalRecord>(segment: &SegmentFile, offset: usize) -> bool {
    let align = R::PAYLOAD_ALIGN;
    let bytes = segment.bytes();
    let end = segment.data_end();
    let mut at = next_frame_offset(offset, 0, align);
    if at <= offset {
        at += align;
    }
    while at + FRAME_HEADER_BYTES <= end {
        let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let len_bytes = len as usize;
        if len_bytes >= R::PAYLOAD_BYTES_MIN && len_bytes <= end - at - FRAME_HEADER_BYTES {
            let stored =
                u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]);
            let payload = &bytes[at + FRAME_HEADER_BYTES..at + FRAME_HEADER_BYTES + len_bytes];
            if frame_crc(len, payload) == stored {
                return true;
            }
        }
        at += align;
    }
    false
}

/// One past the last non-zero byte in `bytes[from..]` (or `from`).
pub(crate) fn nonzero_end(bytes: &[u8], from: usize) -> usize {
    let tail = &bytes[from.min(bytes.len())..];
    let mut end = tail.len();
    for chunk in tail.rchunks(4096) {
        if chunk.iter().all(|&b| b == 0) {
            end -= chunk.len();
        } else {
            let last = chunk.iter().rposition(|&b| b != 0).unwrap_or(0);
            end = end - chunk.len() + last + 1;
            break;
        }
    }
    from + end
}

/// Where the readable data of a journal ends, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Every segment read to a clean end.
    Complete,
    /// The data ends in a damaged frame (or uncommitted bytes) with nothing
    /// valid after it: a torn write. `bytes` = damaged bytes from `offset`
    /// to the last non-zero byte of the segment.
    TornTail {
        seg: usize,
        offset: usize,
        reason: BadFrame,
        bytes: usize,
    },
    /// A damaged frame followed by valid records.
    Corrupt {
        seg: usize,
        offset: usize,
        reason: BadFrame,
    },
    /// Segment `seg` ends cleanly before `expected`, but the next one
    /// starts at `found`.
    Missing {
        seg: usize,
        expected: u64,
        found: u64,
    },
}

/// A record found by the walker.
pub(crate) struct Located<'a, A> {
    pub seg: usize,
    pub offset: usize,
    /// Offset of the frame after this one.
    pub next: usize,
    pub seq: u64,
    pub archived: &'a A,
}

/// Walks frames across segments from the start of segment `seg`.
pub(crate) struct Walker<'a, R: JournalRecord> {
    segments: &'a [SegmentFile],
    seg: usize,
    offset: usize,
    expected: u64,
    trusted: bool,
    outcome: Option<Outcome>,
    /// Offset in the current segment up to which pages have been populated.
    populated_to: usize,
    _record: PhantomData<fn() -> R>,
}

impl<'a, R: JournalRecord> Walker<'a, R> {
    pub fn new(segments: &'a [SegmentFile], seg: usize, trusted: bool) -> Self {
        let (offset, expected, outcome) = match segments.get(seg) {
            Some(s) => (s.first_frame(), s.first_seq(), None),
            None => (0, 0, Some(Outcome::Complete)),
        };
        Walker {
            segments,
            seg,
            offset,
            expected,
            trusted,
            outcome,
            populated_to: 0,
            _record: PhantomData,
        }
    }

    /// Why the walk ended; `None` while records remain.
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }

    /// The segment and offset of the next frame (after a complete walk:
    /// where appending resumes).
    pub fn position(&self) -> (usize, usize) {
        (self.seg, self.offset)
    }

    /// The sequence the next record would have.
    pub fn next_seq(&self) -> u64 {
        self.expected
    }

    fn damaged(&self, offset: usize, reason: BadFrame) -> Outcome {
        let segment = &self.segments[self.seg];
        let follows = valid_frame_after::<R>(segment, offset)
            || self.segments[self.seg + 1..]
                .iter()
                .any(|s| valid_frame_after::<R>(s, s.first_frame().saturating_sub(1)));
        if follows {
            Outcome::Corrupt {
                seg: self.seg,
                offset,
                reason,
            }
        } else {
            Outcome::TornTail {
                seg: self.seg,
                offset,
                reason,
                bytes: nonzero_end(segment.bytes(), offset).max(offset) - offset,
            }
        }
    }

    /// At a clean end of the current segment: go on to the next one, or
    /// finish.
    fn segment_end(&mut self) -> Option<Outcome> {
        let segment = &self.segments[self.seg];
        let junk = nonzero_end(&segment.bytes()[..segment.data_end()], self.offset) > self.offset;
        if junk {
            return Some(self.damaged(self.offset, BadFrame::UncommittedBytes));
        }
        let Some(next) = self.segments.get(self.seg + 1) else {
            return Some(Outcome::Complete);
        };
        if next.first_seq() != self.expected {
            return Some(Outcome::Missing {
                seg: self.seg,
                expected: self.expected,
                found: next.first_seq(),
            });
        }
        self.seg += 1;
        self.offset = next.first_frame();
        self.populated_to = 0;
        None
    }
}

impl<'a, R: JournalRecord> Iterator for Walker<'a, R> {
    type Item = Located<'a, R::Archived>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.outcome.is_some() {
                return None;
            }
            let segment = &self.segments[self.seg];
            if self.offset >= self.populated_to {
                self.populated_to = segment.populate_from(self.offset);
            }
            let frame = read_frame::<R>(
                segment.bytes(),
                segment.data_end(),
                self.offset,
                self.trusted,
            );
            match frame {
                Frame::Record {
                    archived,
                    seq,
                    next,
                } => {
                    if seq != self.expected {
                        let reason = BadFrame::Sequence {
                            expected: self.expected,
                            found: seq,
                        };
                        self.outcome = Some(self.damaged(self.offset, reason));
                        return None;
                    }
                    let located = Located {
                        seg: self.seg,
                        offset: self.offset,
                        next,
                        seq,
                        archived,
                    };
                    self.offset = next;
                    self.expected += 1;
                    return Some(located);
                }
                Frame::Bad(reason) => {
                    self.outcome = Some(self.damaged(self.offset, reason));
                    return None;
                }
                Frame::End => {
                    self.outcome = self.segment_end();
                }
            }
        }
    }
}
