//! Recovery on open: find the last whole record, cut a torn tail, refuse
//! (or, when asked, cut at) a corruption in the middle.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{BadFrame, JournalError, Result};
use crate::format::segment_file_name;
use crate::record::JournalRecord;
use crate::scan::{list_dir, Outcome, SegmentFile, Walker};

/// Why bytes were cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutKind {
    /// A torn write at the end of the journal (nothing valid after it).
    TornTail,
    /// A corruption followed by valid data, cut because the journal was
    /// opened with `truncate_after_corruption`.
    Corruption,
}

/// Bytes removed from a segment by recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    pub kind: CutKind,
    pub segment: PathBuf,
    /// Offset of the first byte cut (the damaged frame).
    pub offset: u64,
    /// Bytes cut: from `offset` to the last non-zero byte of the segment.
    pub bytes: u64,
    pub reason: BadFrame,
    /// Where the cut bytes were saved (corruption cuts only).
    pub saved_to: Option<PathBuf>,
}

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub cut: Option<Cut>,
    /// Later segments set aside after a cut (renamed to `*.cut`), or emptied
    /// segments after a torn tail (removed).
    pub segments_set_aside: Vec<PathBuf>,
    /// Started `.prepared` segments given their final names.
    pub renamed: Vec<(PathBuf, PathBuf)>,
    /// Unused `.prepared` files removed.
    pub removed_prepared: Vec<PathBuf>,
}

impl RecoveryReport {
    /// True when recovery changed nothing on disk but unused prepared files.
    pub fn is_clean(&self) -> bool {
        self.cut.is_none() && self.segments_set_aside.is_empty()
    }
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.first_seq, self.last_seq) {
            (Some(first), Some(last)) => write!(
                f,
                "{} segments, {} records, sequences {first}..={last}",
                self.segments, self.records
            )?,
            _ => write!(f, "{} segments, no records", self.segments)?,
        }
        if let Some(cut) = &self.cut {
            let what = match cut.kind {
                CutKind::TornTail => "torn tail cut",
                CutKind::Corruption => "corruption cut",
            };
            write!(
                f,
                "; {what}: {} at offset {}, {} bytes ({})",
                cut.segment.display(),
                cut.offset,
                cut.bytes,
                cut.reason
            )?;
            if let Some(saved) = &cut.saved_to {
                write!(f, ", saved to {}", saved.display())?;
            }
        }
        for path in &self.segments_set_aside {
            write!(f, "; set aside {}", path.display())?;
        }
        for (from, to) in &self.renamed {
            write!(f, "; renamed {} to {}", from.display(), to.display())?;
        }
        Ok(())
    }
}

/// Where appending resumes after recovery.
pub(crate) struct Tail {
    pub path: PathBuf,
    pub segment_bytes: u64,
    pub offset: usize,
    pub next_seq: u64,
}

/// Recovers the journal in `dir` (which exists). Returns the report and,
/// if there is a segment, where appending resumes.
pub(crate) fn recover<R: JournalRecord>(
    dir: &Path,
    truncate_after_corruption: bool,
) -> Result<(RecoveryReport, Option<Tail>)> {
    let listing = list_dir(dir, R::KIND, R::PAYLOAD_ALIGN)?;
    let mut report = RecoveryReport::default();
    for path in &listing.unused_prepared {
        std::fs::remove_file(path).map_err(JournalError::io(path))?;
        report.removed_prepared.push(path.clone());
    }
    let segments = listing.segments;
    if segments.is_empty() {
        return Ok((report, None));
    }
    let mut walker = Walker::<R>::new(&segments, 0, false);
    for record in walker.by_ref() {
        report.first_seq.get_or_insert(record.seq);
        report.last_seq = Some(record.seq);
        report.records += 1;
    }
    let next_seq = walker.next_seq();
    let outcome = walker.outcome().unwrap_or(Outcome::Complete);
    // The end of the last whole record (or the first frame of its segment).
    let (last_seg, end) = match outcome {
        Outcome::Complete => walker.position(),
        Outcome::TornTail { seg, offset, .. } | Outcome::Corrupt { seg, offset, .. } => {
            (seg, offset)
        }
        Outcome::Missing {
            seg,
            expected,
            found,
        } => {
            return Err(JournalError::MissingSegment {
                after: segments[seg].path.clone(),
                expected,
                next: segments[seg + 1].path.clone(),
                found,
            })
        }
    };
    match outcome {
        Outcome::TornTail {
            seg,
            offset,
            reason,
            bytes,
        } => {
            zero_range(&segments[seg], offset, bytes)?;
            report.cut = Some(Cut {
                kind: CutKind::TornTail,
                segment: segments[seg].path.clone(),
                offset: offset as u64,
                bytes: bytes as u64,
                reason,
                saved_to: None,
            });
        }
        Outcome::Corrupt {
            seg,
            offset,
            reason,
        } => {
            if !truncate_after_corruption {
                return Err(JournalError::Corrupt {
                    segment: segments[seg].path.clone(),
                    offset: offset as u64,
                    reason,
                });
            }
            let bytes = crate::scan::nonzero_end(segments[seg].bytes(), offset) - offset;
            let saved = save_cut(&segments[seg], offset, bytes)?;
            zero_range(&segments[seg], offset, bytes)?;
            report.cut = Some(Cut {
                kind: CutKind::Corruption,
                segment: segments[seg].path.clone(),
                offset: offset as u64,
                bytes: bytes as u64,
                reason,
                saved_to: Some(saved),
            });
        }
        Outcome::Complete | Outcome::Missing { .. } => {}
    }
    // Segments after the cut hold nothing that follows the kept prefix.
    for segment in &segments[last_seg + 1..] {
        let aside = set_aside(&segment.path)?;
        report.segments_set_aside.push(aside);
    }
    let mut tail_path = segments[last_seg].path.clone();
    for segment in &segments[..=last_seg] {
        if segment.prepared {
            let named = dir.join(segment_file_name(segment.first_seq()));
            std::fs::rename(&segment.path, &named).map_err(JournalError::io(&named))?;
            if segment.path == tail_path {
                tail_path.clone_from(&named);
            }
            report.renamed.push((segment.path.clone(), named));
        }
    }
    if !report.renamed.is_empty() || !report.segments_set_aside.is_empty() {
        sync_dir(dir)?;
    }
    report.segments = last_seg + 1;
    let segment_bytes = segments[last_seg].header.segment_bytes;
    Ok((
        report,
        Some(Tail {
            path: tail_path,
            segment_bytes,
            offset: end,
            next_seq,
        }),
    ))
}

fn zero_range(segment: &SegmentFile, offset: usize, bytes: usize) -> Result<()> {
    if bytes == 0 {
        return Ok(());
    }
    let path = &segment.path;
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(JournalError::io(path))?;
    let zeros = vec![0u8; bytes.min(1 << 20)];
    let mut at = offset;
    let end = offset + bytes;
    while at < end {
        let n = zeros.len().min(end - at);
        file.write_all_at(&zeros[..n], at as u64)
            .map_err(JournalError::io(path))?;
        at += n;
    }
    file.sync_data().map_err(JournalError::io(path))
}

/// Saves the bytes about to be cut beside the segment:
/// `{segment}.cut-at-{offset}`.
fn save_cut(segment: &SegmentFile, offset: usize, bytes: usize) -> Result<PathBuf> {
    let mut name = segment.path.as_os_str().to_owned();
    name.push(format!(".cut-at-{offset}"));
    let path = PathBuf::from(name);
    let mut file = File::create(&path).map_err(JournalError::io(&path))?;
    file.write_all(&segment.bytes()[offset..offset + bytes])
        .map_err(JournalError::io(&path))?;
    file.sync_all().map_err(JournalError::io(&path))?;
    Ok(path)
}

/// Renames a segment to `{name}.cut` so no reader takes it for data.
fn set_aside(path: &Path) -> Result<PathBuf> {
    let mut name = path.as_os_str().to_owned();
    name.push(".cut");
    let aside = PathBuf::from(name);
    std::fs::rename(path, &aside).map_err(JournalError::io(path))?;
    Ok(aside)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(JournalError::io(dir))
}
