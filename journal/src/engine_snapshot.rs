//! Engine snapshots in a [`SnapshotStore`]: the payload is
//! [`Engine::snapshot`]'s bytes, the store's header gives the sequence
//! (every input ≤ seq applied) and the checksums.
//!
//! Layout of a journal directory (as `liqd journal import` creates it):
//! the input journal's segment files directly in the directory, and its
//! engine snapshots in the `snapshots/` subdirectory
//! ([`default_snapshot_dir`]). Neither the journal's scan nor the store
//! looks at the other's files.

use std::path::{Path, PathBuf};

use engine::{Engine, EngineConfig, Limits, Seq};

use crate::error::{JournalError, Result};
use crate::snapshot::{SnapshotInfo, SnapshotStore};

/// Name of the snapshot subdirectory of a journal directory.
pub const SNAPSHOTS_SUBDIR: &str = "snapshots";

/// Where the snapshots of the journal in `journal_dir` live by default.
pub fn default_snapshot_dir(journal_dir: impl AsRef<Path>) -> PathBuf {
    journal_dir.as_ref().join(SNAPSHOTS_SUBDIR)
}

/// Writes `engine`'s snapshot as the one at `seq` (atomically; see
/// [`SnapshotStore::write`]).
///
/// # Errors
/// I/O errors.
pub fn write_engine_snapshot(
    store: &SnapshotStore,
    seq: Seq,
    engine: &Engine,
) -> Result<SnapshotInfo> {
    store.write(seq, engine.snapshot().as_slice())
}

/// An engine restored from a snapshot.
#[derive(Debug)]
pub struct RestoredEngine {
    /// Every input up to and including `seq` is applied: replay from `seq + 1`.
    pub seq: Seq,
    pub engine: Engine,
    pub path: PathBuf,
    /// Newer candidates (≤ the requested sequence) that failed, with why:
    /// damaged files, or payloads the engine refused.
    pub skipped: Vec<(PathBuf, String)>,
}

/// The engine of the newest snapshot at or before `seq` that verifies and
/// restores (with `limits` and `config`); `None` if there is none.
///
/// # Errors
/// I/O errors other than a damaged snapshot.
pub fn load_engine_snapshot(
    store: &SnapshotStore,
    seq: Seq,
    limits: Limits,
    config: EngineConfig,
) -> Result<Option<RestoredEngine>> {
    let mut skipped = Vec::new();
    for info in store.list()?.into_iter().rev().filter(|s| s.seq <= seq) {
        let snapshot = match SnapshotStore::load(&info.path) {
            Ok(snapshot) => snapshot,
            Err(e @ JournalError::BadSnapshot { .. }) => {
                skipped.push((info.path, e.to_string()));
                continue;
            }
            Err(e) => return Err(e),
        };
        match Engine::restore(snapshot.payload.as_slice(), limits, config) {
            Ok(engine) => {
                return Ok(Some(RestoredEngine {
                    seq: snapshot.seq,
                    engine,
                    path: snapshot.path,
                    skipped,
                }))
            }
            Err(source) => {
                let e = JournalError::EngineSnapshot {
                    path: snapshot.path,
                    source,
                };
                skipped.push((info.path, e.to_string()));
            }
        }
    }
    Ok(None)
}
