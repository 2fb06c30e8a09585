//! `check(dir)`: what a journal directory holds and whether it is whole,
//! without changing it.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{BadFrame, JournalError, Result};
use crate::format::{FORMAT_VERSION, SEGMENT_SUFFIX};
use crate::record::{InputRecord, JournalRecord, OutputRecord, RecordKind};
use crate::scan::{detect_kind, list_dir, Outcome, Walker};

/// One segment as found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentSummary {
    pub path: PathBuf,
    pub first_seq: u64,
    pub records: u64,
    pub last_seq: Option<u64>,
    /// Bytes from the start of the file to the end of the last record.
    pub used_bytes: u64,
    pub segment_bytes: u64,
    pub file_bytes: u64,
    /// A started segment still under its `.prepared` name (recovery names it).
    pub unnamed: bool,
}

/// Where the whole data ends, when it ends early.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// A torn write at the end: recovery cuts it.
    TornTail {
        segment: PathBuf,
        offset: u64,
        bytes: u64,
        reason: BadFrame,
    },
    /// A damaged record followed by valid data: recovery refuses to open
    /// without `truncate_after_corruption`.
    Corrupt {
        segment: PathBuf,
        offset: u64,
        reason: BadFrame,
    },
    /// A segment is missing between two others.
    MissingSegment {
        after: PathBuf,
        expected: u64,
        next: PathBuf,
        found: u64,
    },
}

/// What `check` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    pub dir: PathBuf,
    /// `None` for a directory without segments.
    pub kind: Option<RecordKind>,
    pub segments: Vec<SegmentSummary>,
    /// Whole records readable from the start.
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub finding: Option<Finding>,
    /// Segments past the point where the whole data ends (not counted).
    pub unreachable_segments: usize,
    /// Prepared segment files never started.
    pub unused_prepared: Vec<PathBuf>,
}

impl CheckReport {
    /// No torn tail, no corruption, no gap.
    pub fn is_intact(&self) -> bool {
        self.finding.is_none()
    }

    /// A corruption or a missing segment: needs an operator's decision.
    pub fn needs_operator(&self) -> bool {
        matches!(
            self.finding,
            Some(Finding::Corrupt { .. } | Finding::MissingSegment { .. })
        )
    }
}

/// Checks the journal in `dir` (input or output, from its headers).
///
/// # Errors
/// I/O errors and structural errors that stop reading altogether: bad
/// magic, unsupported version, header checksum, mixed record kinds, a file
/// shorter than its header, two segments with the same start.
pub fn check(dir: impl AsRef<Path>) -> Result<CheckReport> {
    let dir = dir.as_ref();
    match detect_kind(dir)? {
        None | Some(RecordKind::Input) => check_as::<InputRecord>(dir),
        Some(RecordKind::Output) => check_as::<OutputRecord>(dir),
    }
}

fn check_as<R: JournalRecord>(dir: &Path) -> Result<CheckReport> {
    let listing = list_dir(dir, R::KIND, R::PAYLOAD_ALIGN)?;
    let segments = &listing.segments;
    let mut summaries: Vec<SegmentSummary> = segments
        .iter()
        .map(|s| SegmentSummary {
            path: s.path.clone(),
            first_seq: s.first_seq(),
            records: 0,
            last_seq: None,
            used_bytes: s.first_frame() as u64,
            segment_bytes: s.header.segment_bytes,
            file_bytes: s.bytes().len() as u64,
            unnamed: s.prepared,
        })
        .collect();
    let mut report = CheckReport {
        dir: dir.to_path_buf(),
        kind: (!segments.is_empty()).then_some(R::KIND),
        segments: Vec::new(),
        records: 0,
        first_seq: None,
        last_seq: None,
        finding: None,
        unreachable_segments: 0,
        unused_prepared: listing.unused_prepared.clone(),
    };
    let mut walker = Walker::<R>::new(segments, 0, false);
    for record in walker.by_ref() {
        let summary = &mut summaries[record.seg];
        summary.records += 1;
        summary.last_seq = Some(record.seq);
        summary.used_bytes = record.next as u64;
        report.first_seq.get_or_insert(record.seq);
        report.last_seq = Some(record.seq);
        report.records += 1;
    }
    let end_seg = match walker.outcome() {
        Some(Outcome::TornTail {
            seg,
            offset,
            reason,
            bytes,
        }) => {
            report.finding = Some(Finding::TornTail {
                segment: segments[seg].path.clone(),
                offset: offset as u64,
                bytes: bytes as u64,
                reason,
            });
            seg
        }
        Some(Outcome::Corrupt {
            seg,
            offset,
            reason,
        }) => {
            report.finding = Some(Finding::Corrupt {
                segment: segments[seg].path.clone(),
                offset: offset as u64,
                reason,
            });
            seg
        }
        Some(Outcome::Missing {
            seg,
            expected,
            found,
        }) => {
            report.finding = Some(Finding::MissingSegment {
                after: segments[seg].path.clone(),
                expected,
                next: segments[seg + 1].path.clone(),
                found,
            });
            seg
        }
        Some(Outcome::Complete) | None => segments.len().saturating_sub(1),
    };
    report.unreachable_segments = segments.len().saturating_sub(end_seg + 1);
    report.segments = summaries;
    Ok(report)
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind.map_or("no", RecordKind::name);
        writeln!(
            f,
            "journal {} ({kind} records, format version {FORMAT_VERSION})",
            self.dir.display()
        )?;
        writeln!(
            f,
            "  {:<28} {:>20} {:>10} {:>20} {:>12} {:>12}",
            "segment", "first seq", "records", "last seq", "used bytes", "size"
        )?;
        for s in &self.segments {
            let last = s
                .last_seq
                .map_or_else(|| "-".to_string(), |l| l.to_string());
            let name = if s.unnamed {
                format!("{} (unnamed)", file_name(&s.path))
            } else {
                file_name(&s.path)
            };
            writeln!(
                f,
                "  {name:<28} {:>20} {:>10} {last:>20} {:>12} {:>12}",
                s.first_seq, s.records, s.used_bytes, s.segment_bytes
            )?;
            if s.file_bytes < s.segment_bytes {
                writeln!(
                    f,
                    "    file is {} bytes, shorter than its segment size",
                    s.file_bytes
                )?;
            }
        }
        match (self.first_seq, self.last_seq) {
            (Some(first), Some(last)) => writeln!(
                f,
                "  total: {} segments, {} records, sequences {first}..={last}",
                self.segments.len(),
                self.records
            )?,
            _ => writeln!(f, "  total: {} segments, no records", self.segments.len())?,
        }
        match &self.finding {
            None => writeln!(f, "  integrity: ok")?,
            Some(Finding::TornTail {
                segment,
                offset,
                bytes,
                reason,
            }) => writeln!(
                f,
                "  integrity: torn tail in {} at offset {offset}: {bytes} bytes ({reason}); recovery cuts it",
                file_name(segment)
            )?,
            Some(Finding::Corrupt { segment, offset, reason }) => writeln!(
                f,
                "  integrity: CORRUPT record in {} at offset {offset}: {reason}; valid data follows",
                file_name(segment)
            )?,
            Some(Finding::MissingSegment {
                after,
                expected,
                next,
                found,
            }) => writeln!(
                f,
                "  integrity: MISSING SEGMENT: {} ends before sequence {expected}, {} starts at {found}",
                file_name(after),
                file_name(next)
            )?,
        }
        if self.unreachable_segments > 0 {
            writeln!(
                f,
                "  {} segment(s) after that point are not reachable",
                self.unreachable_segments
            )?;
        }
        for path in &self.unused_prepared {
            writeln!(
                f,
                "  unused prepared file {} (removed on open)",
                file_name(path)
            )?;
        }
        Ok(())
    }
}

/// Segment files in `dir` in name order (for tools).
///
/// # Errors
/// I/O errors reading the directory.
pub fn segment_paths(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(JournalError::io(dir))? {
        let path = entry.map_err(JournalError::io(dir))?.path();
        if path.to_str().is_some_and(|p| p.ends_with(SEGMENT_SUFFIX)) {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}
