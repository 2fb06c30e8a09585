//! The outbound side: every published message can be fetched again for a
//! re-request — from the journals when it is no longer in the in-memory
//! ring — byte for byte what the publisher encoded, with the triggering
//! input's stream and stream sequence.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use daemon::config::Idle;
use daemon::datadir::{JournalSettings, Meta};
use daemon::metrics::Metrics;
use daemon::outbound::JournalRetention;
use daemon::pipeline::{OwnedOutbound, PipelineOptions, VecPublish};
use daemon::shard::Shard;
use daemon::startup::{start, DaemonOptions};
use engine::{Event, Limits, UnixNanos};
use feed_gateway::wire::{encode_halt, encode_liquidation_part, encode_status, Origin};
use feed_gateway::Retention;
use journal::SourceStream;
use replay::jsonl::EventReader;

#[test]
fn journal_retention_answers_every_published_message() {
    let scenarios = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/scenarios");
    let mut total = 0;
    for name in [
        "jump_halt.jsonl",
        "cooldown_fill_ends.jsonl",
        "bankrupt.jsonl",
    ] {
        let text = std::fs::read_to_string(scenarios.join(name)).expect("scenario");
        let dir = tempfile::tempdir().expect("tempdir");
        let options = DaemonOptions {
            dir: dir.path().to_path_buf(),
            journal: JournalSettings {
                segment_bytes: 1 << 20,
                flush_every_records: 0,
                flush_interval: Duration::from_millis(20),
            },
            meta: Meta {
                shard: Shard::ALL,
                limits: Limits::default(),
            },
            snapshot_dir: dir.path().join("snapshots"),
            snapshot_retain: 1,
            pipeline: PipelineOptions {
                shard: Shard::ALL,
                input_slots: 8,
                output_slots: 8,
                engine_core: None,
                engine_idle: Idle::Sleep(Duration::from_micros(20)),
                snapshot_interval_events: 0,
            },
            initial_events: Vec::new(),
        };
        let mut publish = VecPublish::default();
        let mut running =
            start(&options, Arc::new(Metrics::default()), &mut publish).expect("start");
        let mut reader = EventReader::new(text.as_bytes(), name);
        let mut next = [1u64; 4];
        while let Some(event) = reader.read_event().expect("valid") {
            let stream = match event {
                Event::Mark(_) | Event::Index(_) => SourceStream::MarketData,
                Event::Fill(_) | Event::Balance(_) | Event::Funding(_) => SourceStream::Orders,
                _ => SourceStream::Admin,
            };
            let seq = &mut next[usize::from(stream.code())];
            running
                .pipeline
                .submit(
                    stream,
                    *seq,
                    UnixNanos(1),
                    Instant::now(),
                    &event,
                    &mut publish,
                )
                .expect("submit");
            *seq += 1;
        }
        running.stop(&mut publish).expect("stop");
        // A fresh store: nothing in memory, everything from the journals.
        let mut retention = JournalRetention::new(dir.path().to_path_buf());
        let mut buffer = [0u8; 2048];
        for message in &publish.messages {
            let (seq, expected): (u64, Vec<u8>) = match message {
                OwnedOutbound::Halt {
                    seq,
                    src_stream,
                    src_seq,
                    halt,
                } => (
                    seq.0,
                    encode_halt(
                        halt,
                        Origin {
                            stream: *src_stream,
                            seq: *src_seq,
                        },
                    )
                    .to_vec(),
                ),
                OwnedOutbound::Liquidation {
                    seq,
                    src_stream,
                    src_seq,
                    liquidation,
                    legs,
                } => {
                    let origin = Origin {
                        stream: *src_stream,
                        seq: *src_seq,
                    };
                    let mut out = [0u8; 2048];
                    let (len, _) = encode_liquidation_part(liquidation, legs, origin, 0, &mut out)
                        .expect("encode");
                    (seq.0, out[..len].to_vec())
                }
                OwnedOutbound::Status { seq, status } => (seq.0, encode_status(status).to_vec()),
            };
            let len = retention
                .fetch(seq, &mut buffer)
                .unwrap_or_else(|| panic!("{name}: output {seq} not retained"));
            assert_eq!(&buffer[..len], &expected[..], "{name}: output {seq}");
            total += 1;
        }
        assert_eq!(retention.journal_fetches, publish.messages.len() as u64);
        let beyond = publish.messages.len() as u64 + 1;
        assert_eq!(
            retention.fetch(beyond, &mut buffer),
            None,
            "{name}: not yet sequenced"
        );
    }
    assert!(total >= 15, "messages checked: {total}");
}
