//! Snapshots: an opaque payload (the engine's archived state) at a journal
//! sequence, written atomically, checksummed, with retention.
//!
//! File `snapshot-{seq:020}.snap`: a 64-byte header (magic `LIQDSNAP`,
//! version, sequence, payload length, payload CRC-32C, creation time,
//! header CRC-32C), then the payload. Written to a temporary file, fsynced,
//! renamed, and the directory fsynced: a crash leaves either the old set
//! of snapshots or the new one, never a partial file under a final name.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use engine::Seq;
use rkyv::util::AlignedVec;

use crate::error::{JournalError, Result};
use crate::format::unix_now_ns;
use crate::recovery::sync_dir;

pub const SNAPSHOT_MAGIC: [u8; 8] = *b"LIQDSNAP";
pub const SNAPSHOT_VERSION: u16 = 1;
pub const SNAPSHOT_HEADER_BYTES: usize = 64;

/// The snapshot header as laid out on disk (little-endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct SnapshotHeader {
    pub magic: [u8; 8],
    pub version: u16,
    pub reserved0: u16,
    pub header_bytes: u32,
    /// The journal sequence the state is at (every input ≤ seq applied).
    pub seq: u64,
    pub payload_bytes: u64,
    pub created_unix_ns: u64,
    /// CRC-32C of the payload.
    pub payload_crc: u32,
    pub reserved: [u8; 16],
    /// CRC-32C of bytes 0..60.
    pub header_crc: u32,
}

const _: () = assert!(core::mem::size_of::<SnapshotHeader>() == SNAPSHOT_HEADER_BYTES);

impl SnapshotHeader {
    fn encode(&self) -> [u8; SNAPSHOT_HEADER_BYTES] {
        let mut out = [0u8; SNAPSHOT_HEADER_BYTES];
        out[0..8].copy_from_slice(&self.magic);
        out[8..10].copy_from_slice(&self.version.to_le_bytes());
        out[12..16].copy_from_slice(&self.header_bytes.to_le_bytes());
        out[16..24].copy_from_slice(&self.seq.to_le_bytes());
        out[24..32].copy_from_slice(&self.payload_bytes.to_le_bytes());
        out[32..40].copy_from_slice(&self.created_unix_ns.to_le_bytes());
        out[40..44].copy_from_slice(&self.payload_crc.to_le_bytes());
        let crc = crc32c::crc32c(&out[0..60]);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
        out
    }

    fn decode(path: &Path, bytes: &[u8; SNAPSHOT_HEADER_BYTES]) -> Result<SnapshotHeader> {
        let bad = |what| JournalError::BadSnapshot {
            path: path.to_path_buf(),
            what,
        };
        let u32_at = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let u64_at = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(word)
        };
        if bytes[0..8] != SNAPSHOT_MAGIC {
            return Err(bad("has a bad magic"));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != SNAPSHOT_VERSION {
            return Err(bad("has an unsupported version"));
        }
        if crc32c::crc32c(&bytes[0..60]) != u32_at(60) {
            return Err(bad("header checksum mismatch"));
        }
        if u32_at(12) as usize != SNAPSHOT_HEADER_BYTES {
            return Err(bad("has a bad header length"));
        }
        Ok(SnapshotHeader {
            magic: SNAPSHOT_MAGIC,
            version,
            reserved0: 0,
            header_bytes: u32_at(12),
            seq: u64_at(16),
            payload_bytes: u64_at(24),
            created_unix_ns: u64_at(32),
            payload_crc: u32_at(40),
            reserved: [0; 16],
            header_crc: u32_at(60),
        })
    }
}

/// A snapshot file as listed (not yet verified).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub seq: Seq,
    pub path: PathBuf,
}

/// A loaded, verified snapshot.
#[derive(Debug)]
pub struct Snapshot {
    pub seq: Seq,
    pub created_unix_ns: u64,
    /// The payload, 16-byte aligned (for zero-copy rkyv access).
    pub payload: AlignedVec<16>,
    pub path: PathBuf,
}

/// What [`SnapshotStore::load_latest_at_or_before`] returns.
#[derive(Debug)]
pub struct LatestSnapshot {
    pub snapshot: Snapshot,
    /// Newer candidates that failed verification, with why.
    pub skipped: Vec<(PathBuf, String)>,
}

/// A directory of snapshots.
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
    /// Keep this many newest snapshots after each write (0 = keep all).
    retain: usize,
}

fn snapshot_file_name(seq: u64) -> String {
    format!("snapshot-{seq:020}.snap")
}

fn parse_snapshot_file_name(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let digits = name.strip_prefix("snapshot-")?.strip_suffix(".snap")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl SnapshotStore {
    /// Opens (creating) the snapshot directory `dir`; `retain` newest
    /// snapshots are kept after each write (0 keeps all).
    ///
    /// # Errors
    /// I/O errors creating the directory.
    pub fn open(dir: impl AsRef<Path>, retain: usize) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(JournalError::io(dir))?;
        Ok(SnapshotStore {
            dir: dir.to_path_buf(),
            retain,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `payload` as the snapshot at `seq`, atomically; then applies
    /// retention. A snapshot at the same `seq` is replaced.
    ///
    /// # Errors
    /// I/O errors (the temporary file is removed on failure).
    pub fn write(&self, seq: Seq, payload: &[u8]) -> Result<SnapshotInfo> {
        let header = SnapshotHeader {
            magic: SNAPSHOT_MAGIC,
            version: SNAPSHOT_VERSION,
            reserved0: 0,
            header_bytes: SNAPSHOT_HEADER_BYTES as u32,
            seq: seq.0,
            payload_bytes: payload.len() as u64,
            created_unix_ns: unix_now_ns(),
            payload_crc: crate::crc::crc32c_append(0, payload),
            reserved: [0; 16],
            header_crc: 0,
        };
        let tmp = self.dir.join(format!(".{}.tmp", snapshot_file_name(seq.0)));
        let path = self.dir.join(snapshot_file_name(seq.0));
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            file.write_all(&header.encode())?;
            file.write_all(payload)?;
            file.sync_all()
        })();
        if let Err(source) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(JournalError::Io { path: tmp, source });
        }
        std::fs::rename(&tmp, &path).map_err(JournalError::io(&path))?;
        sync_dir(&self.dir)?;
        if self.retain > 0 {
            self.retain_last(self.retain)?;
        }
        Ok(SnapshotInfo { seq, path })
    }

    /// Every snapshot file, by ascending sequence (not verified).
    ///
    /// # Errors
    /// I/O errors reading the directory.
    pub fn list(&self) -> Result<Vec<SnapshotInfo>> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(JournalError::io(&self.dir))? {
            let path = entry.map_err(JournalError::io(&self.dir))?.path();
            if let Some(seq) = parse_snapshot_file_name(&path) {
                found.push(SnapshotInfo {
                    seq: Seq(seq),
                    path,
                });
            }
        }
        found.sort_by_key(|s| s.seq);
        Ok(found)
    }

    /// Loads and verifies one snapshot file.
    ///
    /// # Errors
    /// I/O errors; [`JournalError::BadSnapshot`] for a bad magic, version,
    /// header or payload checksum, or a length that does not match.
    pub fn load(path: impl AsRef<Path>) -> Result<Snapshot> {
        let path = path.as_ref();
        let mut file = File::open(path).map_err(JournalError::io(path))?;
        let file_bytes = file.metadata().map_err(JournalError::io(path))?.len();
        let bad = |what| JournalError::BadSnapshot {
            path: path.to_path_buf(),
            what,
        };
        if file_bytes < SNAPSHOT_HEADER_BYTES as u64 {
            return Err(bad("is shorter than its header"));
        }
        let mut header_bytes = [0u8; SNAPSHOT_HEADER_BYTES];
        file.read_exact(&mut header_bytes)
            .map_err(JournalError::io(path))?;
        let header = SnapshotHeader::decode(path, &header_bytes)?;
        if header.payload_bytes != file_bytes - SNAPSHOT_HEADER_BYTES as u64 {
            return Err(bad("length does not match its header"));
        }
        let len = usize::try_from(header.payload_bytes).map_err(|_| bad("is too large"))?;
        let mut payload = AlignedVec::<16>::with_capacity(len);
        payload.resize(len, 0);
        file.read_exact(payload.as_mut_slice())
            .map_err(JournalError::io(path))?;
        if crate::crc::crc32c_append(0, payload.as_slice()) != header.payload_crc {
            return Err(bad("payload checksum mismatch"));
        }
        if parse_snapshot_file_name(path).is_some_and(|seq| seq != header.seq) {
            return Err(bad("sequence differs from its file name"));
        }
        Ok(Snapshot {
            seq: Seq(header.seq),
            created_unix_ns: header.created_unix_ns,
            payload,
            path: path.to_path_buf(),
        })
    }

    /// The newest valid snapshot at or before `seq`; newer candidates that
    /// fail verification are skipped and reported.
    ///
    /// # Errors
    /// I/O errors other than a damaged snapshot.
    pub fn load_latest_at_or_before(&self, seq: Seq) -> Result<Option<LatestSnapshot>> {
        let mut skipped = Vec::new();
        for info in self.list()?.into_iter().rev().filter(|s| s.seq <= seq) {
            match Self::load(&info.path) {
                Ok(snapshot) => return Ok(Some(LatestSnapshot { snapshot, skipped })),
                Err(e @ JournalError::BadSnapshot { .. }) => {
                    skipped.push((info.path, e.to_string()))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Deletes all but the `keep` newest snapshots (and leftover temporary
    /// files); returns what was removed.
    ///
    /// # Errors
    /// I/O errors deleting files.
    pub fn retain_last(&self, keep: usize) -> Result<Vec<PathBuf>> {
        let list = self.list()?;
        let mut removed = Vec::new();
        let excess = list.len().saturating_sub(keep);
        for info in list.into_iter().take(excess) {
            std::fs::remove_file(&info.path).map_err(JournalError::io(&info.path))?;
            removed.push(info.path);
        }
        for entry in std::fs::read_dir(&self.dir).map_err(JournalError::io(&self.dir))? {
            let path = entry.map_err(JournalError::io(&self.dir))?.path();
            let is_tmp = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".snapshot-") && n.ends_with(".tmp"));
            if is_tmp {
                std::fs::remove_file(&path).map_err(JournalError::io(&path))?;
                removed.push(path);
            }
        }
        if !removed.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }
}
