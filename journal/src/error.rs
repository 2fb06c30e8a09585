//! The journal's errors: one variant per failure, each naming the file.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::record::RecordKind;

/// Why a frame is not a whole record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadFrame {
    /// The file ends inside the frame header.
    TruncatedHeader,
    /// The length runs past the end of the segment (or of the file).
    LengthOutOfBounds { len: u32 },
    /// The length is shorter than the record type's archived root.
    LengthTooShort { len: u32 },
    /// The CRC does not match the length and payload.
    Checksum { stored: u32, computed: u32 },
    /// The CRC matches but the payload is not a valid archive (bytecheck).
    InvalidArchive,
    /// A whole record with another sequence than its position implies.
    Sequence { expected: u64, found: u64 },
    /// A zero length (end of data) followed by non-zero bytes.
    UncommittedBytes,
}

impl fmt::Display for BadFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadFrame::TruncatedHeader => f.write_str("file ends inside a frame header"),
            BadFrame::LengthOutOfBounds { len } => {
                write!(f, "length {len} runs past the end of the segment")
            }
            BadFrame::LengthTooShort { len } => {
                write!(f, "length {len} is shorter than a record")
            }
            BadFrame::Checksum { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            BadFrame::InvalidArchive => f.write_str("payload is not a valid archived record"),
            BadFrame::Sequence { expected, found } => {
                write!(f, "record has sequence {found}, expected {expected}")
            }
            BadFrame::UncommittedBytes => {
                f.write_str("zero length (end of data) followed by non-zero bytes")
            }
        }
    }
}

/// Every failure of the journal and snapshot store.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: {source}", path = .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a liqd journal segment (bad magic)", path = .path.display())]
    BadMagic { path: PathBuf },
    #[error(
        "{path}: format version {found}, this build reads only version {supported}",
        path = .path.display()
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u16,
        supported: u16,
    },
    #[error("{path}: segment header checksum mismatch", path = .path.display())]
    HeaderChecksum { path: PathBuf },
    #[error("{path}: invalid segment header ({what})", path = .path.display())]
    BadHeader { path: PathBuf, what: &'static str },
    #[error(
        "{path}: file is {len} bytes, shorter than the {header} byte segment header",
        path = .path.display(),
        header = crate::format::HEADER_BYTES
    )]
    SegmentTooShort { path: PathBuf, len: u64 },
    #[error(
        "{path}: segment holds {found} records, this journal holds {expected} records",
        path = .path.display()
    )]
    WrongKind {
        path: PathBuf,
        expected: RecordKind,
        found: RecordKind,
    },
    #[error(
        "{path}: header says first sequence {header_seq}, file name says {name_seq}",
        path = .path.display()
    )]
    NameMismatch {
        path: PathBuf,
        header_seq: u64,
        name_seq: u64,
    },
    #[error(
        "two segments start at sequence {first_seq}: {a} and {b}",
        a = .a.display(),
        b = .b.display()
    )]
    DuplicateSegment {
        first_seq: u64,
        a: PathBuf,
        b: PathBuf,
    },
    #[error(
        "missing segment: {after} ends before sequence {expected}, but the next segment {next} starts at {found}",
        after = .after.display(),
        next = .next.display()
    )]
    MissingSegment {
        after: PathBuf,
        expected: u64,
        next: PathBuf,
        found: u64,
    },
    #[error(
        "corrupt record in {segment} at offset {offset}: {reason}; valid records follow, so this is not a torn tail (open with truncate_after_corruption to cut the journal here)",
        segment = .segment.display()
    )]
    Corrupt {
        segment: PathBuf,
        offset: u64,
        reason: BadFrame,
    },
    #[error("a record of {len} bytes does not fit in a segment of {segment_bytes} bytes")]
    RecordTooLarge { len: usize, segment_bytes: u64 },
    #[error("record has sequence {found}, the journal's next sequence is {expected}")]
    SequenceMismatch { expected: u64, found: u64 },
    #[error("invalid journal options: {0}")]
    InvalidOptions(&'static str),
    #[error("{path}: journal directory is locked by another writer", path = .path.display())]
    Locked { path: PathBuf },
    #[error("a syncer thread is already running for this journal")]
    SyncerRunning,
    #[error("background syncer failed: {0}")]
    Background(String),
    #[error("{path}: snapshot {what}", path = .path.display())]
    BadSnapshot { path: PathBuf, what: &'static str },
    #[error("{path}: engine snapshot refused: {source}", path = .path.display())]
    EngineSnapshot {
        path: PathBuf,
        source: engine::SnapshotError,
    },
}

impl JournalError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> JournalError {
        let path = path.into();
        move |source| JournalError::Io { path, source }
    }
}

pub type Result<T, E = JournalError> = std::result::Result<T, E>;
