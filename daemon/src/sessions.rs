//! `{journal.dir}/liqd-sessions.toml`: each inbound stream's current
//! MoldUDP64 session, so a restart resumes the right session.
//!
//! The input record has no session field (and adding one would change the
//! journal format), so the session lives beside the journal. For each
//! stream the file records the session name and `first_input_seq`, the
//! input journal sequence from which that stream's records belong to it:
//!
//! - when a stream **changes** session, the file is rewritten (temporary
//!   file, fsync, rename) **before** the first event of the new session is
//!   journaled, with `first_input_seq` = the next input sequence. A crash
//!   between the rewrite and that event leaves no record of the stream at
//!   or after `first_input_seq`: the restart expects message 1 of the new
//!   session (nothing is lost);
//! - when a stream **adopts** its first session (no session known), the
//!   records already journaled are taken to be of that session
//!   (`first_input_seq` 0): the behaviour of a journal written before this
//!   file existed.
//!
//! On restart ([`crate::datadir::restore`]) a stream's next expected
//! message is one past its last record at or after `first_input_seq` (1 if
//! none), and its receiver resumes in the recorded session: a packet of
//! another session (the venue started a new one while the daemon was down)
//! is a new session that starts over at 1, re-requested from its first
//! message, instead of being taken as the old one (which counted its
//! messages up to the old position as duplicates and lost them).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use engine::Seq;
use journal::SourceStream;
use serde::Deserialize;

use crate::datadir::DataDirError;

/// The sessions file's name inside the data directory.
pub const SESSIONS_FILE: &str = "liqd-sessions.toml";

/// The session bytes as on the wire (10 bytes, space padded).
pub const SESSION_BYTES: usize = 10;

/// One stream's current session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamSession {
    pub session: [u8; SESSION_BYTES],
    /// The stream's records from this input sequence on are of `session`.
    pub first_input_seq: Seq,
}

/// Every inbound stream's session (the configuration stream has none),
/// and the directory to persist them in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sessions {
    dir: PathBuf,
    streams: [Option<StreamSession>; 4],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStream {
    /// Hex of the 10 session bytes (they are not validated on receipt).
    session_hex: String,
    first_input_seq: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    md: Option<FileStream>,
    orders: Option<FileStream>,
    admin: Option<FileStream>,
}

const NAMES: [(SourceStream, &str); 3] = [
    (SourceStream::MarketData, "md"),
    (SourceStream::Orders, "orders"),
    (SourceStream::Admin, "admin"),
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(text: &str) -> Option<[u8; SESSION_BYTES]> {
    if text.len() != 2 * SESSION_BYTES || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; SESSION_BYTES];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl Sessions {
    /// No session known (a new journal, or none recorded yet).
    pub fn empty(dir: &Path) -> Sessions {
        Sessions {
            dir: dir.to_path_buf(),
            streams: [None; 4],
        }
    }

    /// Removes a sessions file left in the directory (a new journal).
    ///
    /// # Errors
    /// It exists and cannot be removed.
    pub fn clear(self) -> Result<Sessions, DataDirError> {
        let path = self.dir.join(SESSIONS_FILE);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(self),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(self),
            Err(e) => Err(DataDirError::Meta {
                path,
                message: e.to_string(),
            }),
        }
    }

    /// Reads `DIR/liqd-sessions.toml`; empty if there is none.
    ///
    /// # Errors
    /// Unreadable or not valid.
    pub fn load(dir: &Path) -> Result<Sessions, DataDirError> {
        let path = dir.join(SESSIONS_FILE);
        let bad = |message: String| DataDirError::Meta {
            path: path.clone(),
            message,
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Sessions::empty(dir)),
            Err(e) => return Err(bad(e.to_string())),
        };
        let file: File = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let mut sessions = Sessions::empty(dir);
        for ((stream, name), entry) in NAMES.iter().zip([file.md, file.orders, file.admin]) {
            if let Some(entry) = entry {
                let session = unhex(&entry.session_hex).ok_or_else(|| {
                    bad(format!("{name}.session_hex: not {SESSION_BYTES} hex bytes"))
                })?;
                sessions.streams[usize::from(stream.code())] = Some(StreamSession {
                    session,
                    first_input_seq: Seq(entry.first_input_seq),
                });
            }
        }
        Ok(sessions)
    }

    pub fn get(&self, stream: SourceStream) -> Option<StreamSession> {
        self.streams[usize::from(stream.code())]
    }

    /// Records `stream`'s session and persists the file (write a temporary
    /// file, fsync it, rename it over the old one, fsync the directory)
    /// before returning. Setting the session already recorded writes
    /// nothing.
    ///
    /// # Errors
    /// The file cannot be written (the caller must not journal the
    /// session's events then).
    pub fn set(
        &mut self,
        stream: SourceStream,
        session: [u8; SESSION_BYTES],
        first_input_seq: Seq,
    ) -> Result<(), DataDirError> {
        let entry = Some(StreamSession {
            session,
            first_input_seq,
        });
        let slot = &mut self.streams[usize::from(stream.code())];
        if *slot == entry {
            return Ok(());
        }
        let previous = std::mem::replace(slot, entry);
        let written = self.write();
        if written.is_err() {
            self.streams[usize::from(stream.code())] = previous;
        }
        written
    }

    fn to_toml(&self) -> String {
        let mut text = String::from(
            "# Written by `liqd run` whenever an inbound stream's session changes:\n\
             # the session (hex of its 10 bytes) and the input journal sequence from\n\
             # which the stream's records are of it. Do not edit.\n",
        );
        for (stream, name) in NAMES {
            if let Some(s) = self.get(stream) {
                let shown: String = s
                    .session
                    .iter()
                    .map(|&b| {
                        if (0x20..0x7f).contains(&b) {
                            char::from(b)
                        } else {
                            '?'
                        }
                    })
                    .collect();
                let _ = write!(
                    text,
                    "\n[{name}]   # {}\nsession_hex = \"{}\"\nfirst_input_seq = {}\n",
                    shown.trim_end(),
                    hex(&s.session),
                    s.first_input_seq.0
                );
            }
        }
        text
    }

    fn write(&self) -> Result<(), DataDirError> {
        crate::datadir::write_atomically(&self.dir, SESSIONS_FILE, &self.to_toml())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_atomic_rewrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sessions = Sessions::load(dir.path()).expect("load");
        assert_eq!(sessions, Sessions::empty(dir.path()));
        sessions
            .set(SourceStream::Orders, *b"E2EO      ", Seq(0))
            .expect("set");
        sessions
            .set(
                SourceStream::MarketData,
                [0, 1, 2, 0xff, 4, 5, 6, 7, 8, 9],
                Seq(17),
            )
            .expect("set");
        assert_eq!(Sessions::load(dir.path()).expect("load"), sessions);
        sessions
            .set(SourceStream::Orders, *b"NEXTO     ", Seq(40))
            .expect("set");
        let loaded = Sessions::load(dir.path()).expect("load");
        assert_eq!(
            loaded.get(SourceStream::Orders),
            Some(StreamSession {
                session: *b"NEXTO     ",
                first_input_seq: Seq(40)
            })
        );
        assert_eq!(loaded.get(SourceStream::Admin), None);
        assert!(!dir.path().join(format!(".{SESSIONS_FILE}.tmp")).exists());
    }

    #[test]
    fn a_bad_file_is_an_error_naming_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join(SESSIONS_FILE),
            "[md]\nsession_hex = \"zz\"\nfirst_input_seq = 1\n",
        )
        .expect("write");
        let error = Sessions::load(dir.path()).expect_err("bad hex");
        assert!(error.to_string().contains("md.session_hex"), "{error}");
    }
}
