//! The JSONL event and output files of PROTOCOL.md §5.
//!
//! - [`EventReader`] streams a file's events one line at a time;
//!   [`parse_event`] parses one line.
//! - [`write_event`] writes an event back (`parse_event(write_event(e)) == e`).
//! - [`write_halt`], [`write_liquidation`], [`write_output`] and
//!   [`JsonlSink`] write engine outputs; [`OutputReader`] and
//!   [`parse_output`] read them back (for expected-output files).
//!
//! A line that is not valid for the format stops a reader with a
//! [`JsonlError`] naming the file, the line and the reason. Validity here
//! is the format's only: values the engine refuses (unknown ids, a price of
//! 0, 20 tiers) are well-formed events.

mod error;
mod fields;
mod read;
mod write;

pub use error::{ErrorKind, Field, FormatError, JsonlError};
pub use read::{
    parse_event, parse_output, EventReader, OutputLine, OutputReader, LINE_BYTES_MAX_DEFAULT,
};
pub use write::{
    event_line, output_line, write_event, write_halt, write_liquidation, write_output, JsonlSink,
};

/// The stream an output's triggering event arrived on (PROTOCOL.md §4
/// `src_stream`): the journal's own type, named as in the JSONL
/// (`md`, `orders`, `admin`, `config`).
pub use journal::SourceStream;

/// Where an output's triggering event came from: known to the daemon,
/// absent in a JSONL replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Source {
    pub stream: SourceStream,
    /// The triggering message's MoldUDP64 sequence on its stream (0 for
    /// configuration).
    pub seq: u64,
}

#[cfg(test)]
mod tests;
