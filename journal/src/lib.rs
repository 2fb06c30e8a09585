//! liqd's journal: append-only, memory-mapped segment files of
//! rkyv-archived records, crash recovery, zero-copy readers, snapshots.
//!
//! - [`Journal`] appends ([`InputJournal`] for the input events — the
//!   truth — and [`OutputJournal`] for the decisions); [`Syncer`] does the
//!   slow work (next segment, msync) off the appending thread.
//! - [`JournalReader`] iterates records in place from any sequence.
//! - Opening a journal for writing recovers it ([`RecoveryReport`]);
//!   [`check`] reports on a directory without changing it.
//! - [`SnapshotStore`] keeps checksummed snapshots by sequence;
//!   [`write_engine_snapshot`] / [`load_engine_snapshot`] put the engine's
//!   state in one and take it back (in `DIR/snapshots/`, beside the input
//!   journal's segments in `DIR`).
//!
//! FORMAT.md beside this crate's manifest is the on-disk format.
//!
//! Invariants, stated as absences: an append never allocates, locks or
//! makes a system call in steady state; a record's length word is never
//! visible before its payload and CRC; recovery never skips a damaged
//! record that is followed by valid data unless told to; no function panics
//! on the contents of a file.

mod check;
mod crc;
mod engine_snapshot;
mod error;
pub mod format;
mod reader;
pub mod record;
mod recovery;
mod scan;
mod snapshot;
mod writer;

pub use check::{check, segment_paths, CheckReport, Finding, SegmentSummary};
pub use engine_snapshot::{
    default_snapshot_dir, load_engine_snapshot, write_engine_snapshot, RestoredEngine,
    SNAPSHOTS_SUBDIR,
};
pub use error::{BadFrame, JournalError, Result};
pub use reader::{Iter, JournalReader, RecordRef};
pub use record::{
    ArchivedInputRecord, ArchivedOutputBody, ArchivedOutputRecord, ArchivedSourceStream,
    ArchivedStatus, InputRecord, JournalRecord, OutputBody, OutputRecord, RecordKind, SourceStream,
    Status,
};
pub use recovery::{Cut, CutKind, RecoveryReport};
pub use snapshot::{LatestSnapshot, Snapshot, SnapshotInfo, SnapshotStore};
pub use writer::{
    FlushPolicy, InputJournal, Journal, JournalOptions, OutputJournal, OutputSink, Syncer,
    SyncerThread, WriterStats,
};

/// Input journal reader.
pub type InputReader = JournalReader<InputRecord>;
/// Output journal reader.
pub type OutputReader = JournalReader<OutputRecord>;
