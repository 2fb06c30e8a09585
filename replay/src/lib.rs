//! Tools over event histories (JSONL now; journals later).
//!
//! - [`jsonl`]: the PROTOCOL.md §5 text format, read and written.
//! - [`run`]: driving any [`engine::MarginEngine`] with a stream of events.
//! - [`compare`]: outputs compared as values (for scenario tests).
//! - [`engines`]: the one place that builds a named engine.
//! - [`input`]: events from a JSONL file or a journal directory (read ahead
//!   on a second thread), and resuming from the journal's engine snapshots.

pub mod compare;
pub mod engines;
pub mod input;
pub mod inspect;
pub mod isolated;
pub mod jsonl;
pub mod overrides;
pub mod progress;
pub mod run;
pub mod timeline;
pub mod verify;
pub mod whatif;
