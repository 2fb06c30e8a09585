//! `liqd run`: the daemon around the engine.
//!
//! - [`config`]: the TOML configuration, validated with errors that name
//!   the key.
//! - [`pipeline`]: the gateway thread's half — sequence, journal, hand to
//!   the engine thread over an SPSC [`ring`], journal and publish what
//!   comes back.
//! - [`engine_thread`]: the engine thread (pinned, idle strategy).
//! - [`datadir`]: journals, metadata (`liqd-meta.toml`), restart recovery.
//! - [`sessions`]: each inbound stream's session, persisted beside the
//!   journal (`liqd-sessions.toml`) for restarts.
//! - [`shard`]: `k/n` account shards.
//! - [`metrics`]: counters, the Prometheus endpoint, the status line.
//!
//! README.md beside this crate's manifest describes the threads, rings,
//! what is journaled when, recovery and shards.

pub mod config;
pub mod datadir;
pub mod engine_thread;
pub mod metrics;
pub mod outbound;
pub mod pipeline;
pub mod ring;
pub mod ring_types;
pub mod run;
pub mod sessions;
pub mod shard;
pub mod startup;
