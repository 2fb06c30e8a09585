//! The daemon's data directory: journals, metadata, and recovery.
//!
//! ```text
//! {journal.dir}/           the input journal's segments (the truth)
//!   liqd-meta.toml         written once when the journal is created: format, shard, limits
//!   liqd-sessions.toml     each inbound stream's current session (crate::sessions)
//!   output/                the output journal (decisions and S messages = the outbound stream)
//!   snapshots/             engine snapshots (default place; snapshot.dir overrides)
//! ```
//!
//! The directory is a journal directory as `liqd journal import` makes one
//! (segments at the top, `snapshots/` beside them), so every journal tool
//! works on it: `liqd replay run DIR`, `liqd journal export|check DIR`.
//!
//! `liqd-meta.toml` makes a journal self-describing: `liqd replay run DIR`
//! reads the shard and the capacities from it and reproduces the daemon's
//! decisions exactly. A restart with another shard or other capacities is
//! refused (start a new journal for that): the engine's decisions depend
//! on both.
//!
//! Restart ([`restore`]): the engine starts from a base (empty, or a
//! snapshot at `base_seq`) and every later input record is applied again
//! without publishing. Each stream resumes one past its last journaled
//! message. Decisions the previous run journaled are not journaled again;
//! decisions it had not journaled yet (it stopped between an input's append
//! and its outputs' append) are appended now: keepers get them by
//! re-request when they see the outbound sequence move on.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use engine::{Engine, Halt, Leg, Limits, Liquidation, MarginEngine, Seq, Sink};
use journal::{
    FlushPolicy, InputJournal, InputReader, JournalError, JournalOptions, OutputBody,
    OutputJournal, OutputReader, SourceStream,
};
use serde::Deserialize;

use crate::config::LimitsConfig;
use crate::pipeline::StreamPositions;
use crate::sessions::Sessions;
use crate::shard::Shard;

/// The metadata file's name inside the data directory.
pub const META_FILE: &str = "liqd-meta.toml";
/// Version of the data directory layout.
pub const META_FORMAT: u32 = 1;

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("{0}")]
    Journal(#[from] JournalError),
    #[error("{path}: {message}")]
    Meta { path: PathBuf, message: String },
    /// The configuration disagrees with the journal (the key is the
    /// configuration's).
    #[error("{key}: {message}")]
    Mismatch { key: String, message: String },
}

/// What `liqd-meta.toml` records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub shard: Shard,
    pub limits: Limits,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetaFile {
    format: u32,
    shard: String,
    limits: LimitsConfig,
}

impl Meta {
    fn to_toml(&self) -> String {
        let l = &self.limits;
        let mut text = String::from(
            "# Written by `liqd run` when it created this journal. `liqd replay run DIR`\n\
             # reads it to reproduce the daemon's decisions. Do not edit.\n",
        );
        let _ = write!(
            text,
            "format = {META_FORMAT}\nshard = \"{}\"\n\n[limits]\naccounts_max = {}\ninstruments_max = {}\nassets_max = {}\npositions_per_account_max = {}\nbalances_per_account_max = {}\n",
            self.shard,
            l.accounts_max,
            l.instruments_max,
            l.assets_max,
            l.positions_per_account_max,
            l.balances_per_account_max
        );
        text
    }

    /// Reads `DIR/liqd-meta.toml`; `None` if there is none.
    ///
    /// # Errors
    /// Unreadable, not valid, or another format version.
    pub fn load(dir: &Path) -> Result<Option<Meta>, DataDirError> {
        let path = dir.join(META_FILE);
        let bad = |message: String| DataDirError::Meta {
            path: path.clone(),
            message,
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(bad(e.to_string())),
        };
        let file: MetaFile = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if file.format != META_FORMAT {
            return Err(bad(format!(
                "format {} is not the supported {META_FORMAT}",
                file.format
            )));
        }
        let shard = Shard::parse(&file.shard).map_err(bad)?;
        let limits = file.limits.limits();
        limits.validate().map_err(|m| bad(m.to_owned()))?;
        Ok(Some(Meta { shard, limits }))
    }

    fn write(&self, dir: &Path) -> Result<(), DataDirError> {
        write_atomically(dir, META_FILE, &self.to_toml())
    }
}

/// Replaces `dir/name` with `contents` atomically: a temporary file, fsync,
/// rename, fsync of the directory (a crash leaves the old or the new file,
/// never a torn one).
pub(crate) fn write_atomically(dir: &Path, name: &str, contents: &str) -> Result<(), DataDirError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let io = |e: std::io::Error| DataDirError::Meta {
        path: path.clone(),
        message: e.to_string(),
    };
    std::fs::write(&tmp, contents).map_err(io)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(())
}

/// The input journal directory of a data directory (the directory itself).
pub fn input_dir(dir: &Path) -> PathBuf {
    dir.to_path_buf()
}

/// The output journal directory of a data directory.
pub fn output_dir(dir: &Path) -> PathBuf {
    dir.join("output")
}

/// How the journals are opened.
#[derive(Clone, Copy, Debug)]
pub struct JournalSettings {
    pub segment_bytes: u64,
    pub flush_every_records: u64,
    pub flush_interval: Duration,
}

impl JournalSettings {
    fn options(&self) -> JournalOptions {
        JournalOptions {
            segment_bytes: self.segment_bytes,
            flush: FlushPolicy {
                every_records: self.flush_every_records,
                interval: self.flush_interval,
            },
            ..JournalOptions::default()
        }
    }
}

/// An opened (and recovered) data directory.
pub struct DataDir {
    pub dir: PathBuf,
    pub input: InputJournal,
    pub output: OutputJournal,
    /// No input was ever journaled: the configuration's initial events go
    /// first.
    pub is_new: bool,
}

impl DataDir {
    /// Opens (creating) the data directory, recovering both journals (their
    /// recovery reports are logged to stderr), and checks or writes the
    /// metadata against `meta`.
    ///
    /// # Errors
    /// Journal errors (locked, corrupt…), unreadable metadata, or a shard
    /// or capacity different from the journal's.
    pub fn open(
        dir: &Path,
        meta: &Meta,
        settings: JournalSettings,
    ) -> Result<DataDir, DataDirError> {
        std::fs::create_dir_all(dir).map_err(|e| DataDirError::Meta {
            path: dir.to_path_buf(),
            message: format!("cannot create the data directory: {e}"),
        })?;
        let input = InputJournal::open(input_dir(dir), settings.options())?;
        let output = OutputJournal::open(output_dir(dir), settings.options())?;
        for (name, report) in [("input", input.recovery()), ("output", output.recovery())] {
            // A new, empty journal has nothing to report.
            if report.segments > 0 {
                eprintln!("liqd: {name} journal recovery: {report}");
            }
        }
        let is_new = input.last_seq().is_none();
        match Meta::load(dir)? {
            Some(found) => check_meta(&found, meta)?,
            None if is_new => meta.write(dir)?,
            None => {
                return Err(DataDirError::Meta {
                    path: dir.join(META_FILE),
                    message: "missing, but the input journal holds records".to_owned(),
                })
            }
        }
        Ok(DataDir {
            dir: dir.to_path_buf(),
            input,
            output,
            is_new,
        })
    }
}

fn check_meta(found: &Meta, wanted: &Meta) -> Result<(), DataDirError> {
    if found.shard != wanted.shard {
        return Err(DataDirError::Mismatch {
            key: "shard".to_owned(),
            message: format!(
                "\"{}\" differs from the journal's \"{}\" (its {META_FILE}); a shard change needs a new journal",
                wanted.shard, found.shard
            ),
        });
    }
    if found.limits != wanted.limits {
        return Err(DataDirError::Mismatch {
            key: "limits".to_owned(),
            message: format!(
                "{:?} differ from the journal's {:?} (its {META_FILE}); a capacity change needs a new journal",
                wanted.limits, found.limits
            ),
        });
    }
    Ok(())
}

/// What a restart restored.
pub struct Restored {
    pub engine: Engine,
    pub streams: StreamPositions,
    /// Input records applied again (after the base).
    pub replayed: u64,
    /// Input records of other shards passed over.
    pub skipped_shard: u64,
    /// Decisions the previous run had not journaled, appended now.
    pub outputs_recovered: u64,
    /// Last input sequence in the journal.
    pub last_seq: Seq,
}

/// Restores the engine state of the input journal in `data`: `base` holds
/// every input up to `base_seq` (an empty engine and 0, or a snapshot),
/// the records after it are applied again with `shard`'s filter. Each
/// stream's next expected message is one past its last record in its
/// current session (`sessions`). Outputs
/// are not published; those missing from the output journal are appended
/// (see the module docs).
///
/// # Errors
/// Reading either journal, appending a missing output.
pub fn restore(
    base: Engine,
    base_seq: Seq,
    data: &mut DataDir,
    shard: Shard,
    outputs: &OutputsInfo,
    sessions: &Sessions,
) -> Result<Restored, DataDirError> {
    let reader = InputReader::open(input_dir(&data.dir))?;
    let mut engine = base;
    let mut streams = StreamPositions::default();
    let (mut replayed, mut skipped_shard, mut last_seq) = (0, 0, Seq(0));
    let mut sink = CatchUp {
        output: &mut data.output,
        input_seq: Seq(0),
        journaled_upto: outputs.last_decision_input,
        skip: outputs.decisions_at_last,
        appended: 0,
        error: None,
    };
    for record in reader.iter() {
        let record = record?;
        let input = record.input();
        let stream = input.src_stream.to_native();
        // Records of a stream's earlier session do not count (see
        // `crate::sessions`): a stream whose current session has no record
        // yet expects its message 1.
        let current_from = sessions.get(stream).map_or(Seq(0), |s| s.first_input_seq);
        if stream != SourceStream::Config && record.seq >= current_from {
            streams.advance(stream, input.src_seq.to_native());
        }
        last_seq = record.seq;
        if record.seq <= base_seq {
            continue;
        }
        let event = record.event();
        if !shard.applies(&event) {
            skipped_shard += 1;
            continue;
        }
        sink.input_seq = record.seq;
        let _ = engine.apply(record.seq, &event, &mut sink);
        if let Some(e) = sink.error.take() {
            return Err(e.into());
        }
        replayed += 1;
    }
    Ok(Restored {
        engine,
        streams,
        replayed,
        skipped_shard,
        outputs_recovered: sink.appended,
        last_seq,
    })
}

/// What the output journal says about how far decisions are journaled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutputsInfo {
    /// Input sequence of the last decision journaled…
    pub last_decision_input: Seq,
    /// …and how many decisions of that input are journaled.
    pub decisions_at_last: u64,
    /// Every decision of every input up to this one is journaled: the last
    /// `S` message's `seq` (see `Pipeline::request_status`), or the input
    /// before the last decision's.
    pub complete_upto: Seq,
}

impl OutputsInfo {
    /// Reads the output journal in `dir`.
    ///
    /// # Errors
    /// The journal cannot be read.
    pub fn read(dir: &Path) -> Result<OutputsInfo, DataDirError> {
        let reader = OutputReader::open(dir)?;
        let mut info = OutputsInfo::default();
        for record in reader.iter() {
            let record = record?.to_owned();
            if let OutputBody::Status(status) = record.output {
                info.complete_upto = info.complete_upto.max(status.seq);
                continue;
            }
            if record.input_seq == info.last_decision_input {
                info.decisions_at_last += 1;
            } else {
                info.last_decision_input = record.input_seq;
                info.decisions_at_last = 1;
            }
            let before = Seq(record.input_seq.0.saturating_sub(1));
            info.complete_upto = info.complete_upto.max(before);
        }
        Ok(info)
    }
}

/// During a restore: drops the decisions already journaled, appends the
/// rest to the output journal.
struct CatchUp<'a> {
    output: &'a mut OutputJournal,
    input_seq: Seq,
    /// Decisions of inputs before this one are all journaled…
    journaled_upto: Seq,
    /// …and this many of this input's.
    skip: u64,
    appended: u64,
    error: Option<JournalError>,
}

impl CatchUp<'_> {
    /// Whether this decision is already in the output journal.
    fn journaled(&mut self) -> bool {
        if self.input_seq < self.journaled_upto {
            return true;
        }
        if self.input_seq == self.journaled_upto && self.skip > 0 {
            self.skip -= 1;
            return true;
        }
        false
    }

    fn record(&mut self, result: Result<Seq, JournalError>) {
        match result {
            Ok(_) => self.appended += 1,
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
    }
}

impl Sink for CatchUp<'_> {
    fn halt(&mut self, halt: &Halt) {
        if self.error.is_none() && !self.journaled() {
            let result = self.output.append_halt(self.input_seq, halt);
            self.record(result);
        }
    }

    fn liquidation(&mut self, liquidation: &Liquidation, legs: &[Leg]) {
        if self.error.is_none() && !self.journaled() {
            let result = self
                .output
                .append_liquidation(self.input_seq, liquidation, legs);
            self.record(result);
        }
    }
}
