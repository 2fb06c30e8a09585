//! The pipeline in-process, without sockets: events in → input journal,
//! engine thread, output journal, publisher. Compared with `liqd replay
//! run`'s engine driving (replay::run) on the same JSONL scenarios.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use daemon::config::Idle;
use daemon::datadir::{JournalSettings, Meta};
use daemon::metrics::Metrics;
use daemon::pipeline::{OwnedOutbound, PipelineOptions, Submitted, VecPublish};
use daemon::shard::Shard;
use daemon::startup::{start, DaemonOptions, StopReport};
use engine::{Engine, Event, Limits, MarginEngine, Output, Seq, UnixNanos};
use journal::{InputJournal, InputReader, JournalOptions, OutputBody, OutputReader, SourceStream};
use replay::jsonl::EventReader;

fn scenarios() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/scenarios");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("scenarios")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".jsonl") && !name.ends_with(".expected.jsonl")
        })
        .collect();
    paths.sort();
    assert!(paths.len() >= 10, "scenario files found: {}", paths.len());
    paths
}

fn stream_of(event: &Event) -> SourceStream {
    match event {
        Event::Mark(_) | Event::Index(_) => SourceStream::MarketData,
        Event::Fill(_) | Event::Balance(_) | Event::Funding(_) => SourceStream::Orders,
        _ => SourceStream::Admin,
    }
}

/// The scenario's events with the stream and stream sequence each would
/// have arrived with.
fn arrivals(path: &Path) -> Vec<(SourceStream, u64, Event)> {
    let text = std::fs::read_to_string(path).expect("scenario");
    let mut reader = EventReader::new(text.as_bytes(), path.display().to_string());
    let mut next = [1u64; 4];
    let mut out = Vec::new();
    while let Some(event) = reader.read_event().expect("valid scenario") {
        let stream = stream_of(&event);
        let seq = &mut next[usize::from(stream.code())];
        out.push((stream, *seq, event));
        *seq += 1;
    }
    out
}

/// What `liqd replay run` computes: the fast engine, event n with seq n.
fn replayed(events: &[(SourceStream, u64, Event)], shard: Shard) -> (Vec<Output>, u64) {
    let mut engine = Engine::new(Limits::default());
    let mut sink = engine::VecSink::default();
    for (i, (_, _, event)) in events.iter().enumerate() {
        if shard.applies(event) {
            let _ = engine.apply(Seq(i as u64 + 1), event, &mut sink);
        }
    }
    (sink.outputs, engine.state_hash())
}

fn options(dir: &Path, shard: Shard) -> DaemonOptions {
    DaemonOptions {
        dir: dir.to_path_buf(),
        journal: JournalSettings {
            segment_bytes: 1 << 20,
            flush_every_records: 0,
            flush_interval: Duration::from_millis(20),
        },
        meta: Meta {
            shard,
            limits: Limits::default(),
        },
        snapshot_dir: journal::default_snapshot_dir(dir),
        snapshot_retain: 2,
        pipeline: PipelineOptions {
            shard,
            input_slots: 8,
            output_slots: 8,
            engine_core: None,
            // Tests share two cores: no spinning.
            engine_idle: Idle::Sleep(Duration::from_micros(20)),
            snapshot_interval_events: 0,
        },
        initial_events: Vec::new(),
    }
}

/// Runs `events` through a daemon pipeline on `dir`; returns what was
/// published and the stop report.
fn run(
    options: &DaemonOptions,
    events: &[(SourceStream, u64, Event)],
) -> (Vec<OwnedOutbound>, StopReport, Vec<Submitted>) {
    let mut publish = VecPublish::default();
    let metrics = Arc::new(Metrics::default());
    let mut running = start(options, metrics, &mut publish).expect("start");
    let mut submitted = Vec::new();
    for (stream, src_seq, event) in events {
        let outcome = running
            .pipeline
            .submit(
                *stream,
                *src_seq,
                UnixNanos(1),
                Instant::now(),
                event,
                &mut publish,
            )
            .expect("submit");
        submitted.push(outcome);
    }
    let report = running.stop(&mut publish).expect("stop");
    (publish.messages, report, submitted)
}

/// The engine decisions among published messages (no `S`).
fn decisions(messages: &[OwnedOutbound]) -> Vec<Output> {
    messages
        .iter()
        .filter_map(|m| match m {
            OwnedOutbound::Halt { halt, .. } => Some(Output::Halt(*halt)),
            OwnedOutbound::Liquidation {
                liquidation, legs, ..
            } => Some(Output::Liquidation(*liquidation, legs.clone())),
            OwnedOutbound::Status { .. } => None,
        })
        .collect()
}

/// The decisions in an output journal, with their output sequences.
fn journaled_decisions(dir: &Path) -> Vec<(Seq, Output)> {
    let reader = OutputReader::open(dir.join("output")).expect("output journal");
    reader
        .iter()
        .filter_map(|r| {
            let r = r.expect("record").to_owned();
            match r.output {
                OutputBody::Halt(h) => Some((r.seq, Output::Halt(h))),
                OutputBody::Liquidation { liquidation, legs } => {
                    Some((r.seq, Output::Liquidation(liquidation, legs)))
                }
                OutputBody::Status(_) => None,
            }
        })
        .collect()
}

fn output_seq(message: &OwnedOutbound) -> Seq {
    match message {
        OwnedOutbound::Halt { seq, .. }
        | OwnedOutbound::Liquidation { seq, .. }
        | OwnedOutbound::Status { seq, .. } => *seq,
    }
}

#[test]
fn every_scenario_gives_replays_outputs_and_journals() {
    let mut total_decisions = 0;
    for path in scenarios() {
        let events = arrivals(&path);
        let (expected, hash) = replayed(&events, Shard::ALL);
        let dir = tempfile::tempdir().expect("tempdir");
        let (published, report, _) = run(&options(dir.path(), Shard::ALL), &events);
        let name = path.display();
        assert_eq!(decisions(&published), expected, "{name}: published");
        let journaled = journaled_decisions(dir.path());
        let journaled_outputs: Vec<_> = journaled.iter().map(|(_, o)| o.clone()).collect();
        assert_eq!(journaled_outputs, expected, "{name}: output journal");
        // Published output sequences are the journal's, dense from 1.
        let seqs: Vec<_> = published.iter().map(output_seq).collect();
        let dense: Vec<_> = (1..=published.len() as u64).map(Seq).collect();
        assert_eq!(seqs, dense, "{name}: outbound sequence");
        // The input journal holds every event, in order, with its arrival.
        let reader = InputReader::open(dir.path()).expect("input journal");
        let inputs: Vec<_> = reader
            .iter()
            .map(|r| {
                let r = r.expect("record");
                let a = r.input();
                (a.src_stream.to_native(), a.src_seq.to_native(), r.event())
            })
            .collect();
        assert_eq!(inputs, events, "{name}: input journal");
        assert_eq!(report.last_input_seq, Seq(events.len() as u64));
        assert_eq!(report.state_hash, hash, "{name}: state hash");
        total_decisions += expected.len();
    }
    assert!(total_decisions > 20, "scenarios produce decisions");
}

#[test]
fn shards_together_equal_the_unsharded_daemon() {
    for path in scenarios() {
        let events = arrivals(&path);
        let by_seq = |outputs: Vec<Output>| {
            let mut map: BTreeMap<Seq, BTreeSet<String>> = BTreeMap::new();
            for o in outputs {
                let seq = match &o {
                    Output::Halt(h) => h.seq,
                    Output::Liquidation(l, _) => l.seq,
                };
                map.entry(seq).or_default().insert(format!("{o:?}"));
            }
            map
        };
        let whole = by_seq(replayed(&events, Shard::ALL).0);
        let mut union: BTreeMap<Seq, BTreeSet<String>> = BTreeMap::new();
        for index in 0..2 {
            let shard = Shard { index, count: 2 };
            let dir = tempfile::tempdir().expect("tempdir");
            let (published, _, submitted) = run(&options(dir.path(), shard), &events);
            // Other shards' order events are journaled but not applied.
            for ((_, _, event), outcome) in events.iter().zip(&submitted) {
                match outcome {
                    Submitted::Queued(_) => assert!(shard.applies(event)),
                    Submitted::Skipped(_) => assert!(!shard.applies(event)),
                    Submitted::Duplicate => panic!("no duplicates sent"),
                }
            }
            assert_eq!(
                decisions(&published),
                replayed(&events, shard).0,
                "{}: shard {shard} = replay with its filter",
                path.display()
            );
            for (seq, set) in by_seq(decisions(&published)) {
                union.entry(seq).or_default().extend(set);
            }
            let meta = Meta::load(dir.path()).expect("meta").expect("written");
            assert_eq!(meta.shard, shard);
        }
        assert_eq!(union, whole, "{}", path.display());
    }
}

#[test]
fn restart_applies_nothing_twice_and_continues_the_output_sequence() {
    for path in scenarios() {
        let events = arrivals(&path);
        let (expected, hash) = replayed(&events, Shard::ALL);
        let name = path.display();
        let cut = events.len() / 2;
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = options(dir.path(), Shard::ALL);
        let (first, stop1, _) = run(&opts, &events[..cut]);
        // The second run gets the last few events of the first again (a
        // re-sent packet), then the rest.
        let resend_from = cut.saturating_sub(3);
        let (second, stop2, submitted) = run(&opts, &events[resend_from..]);
        for outcome in &submitted[..cut - resend_from] {
            assert_eq!(*outcome, Submitted::Duplicate, "{name}");
        }
        let mut all = decisions(&first);
        all.extend(decisions(&second));
        assert_eq!(all, expected, "{name}: decisions across the restart");
        assert_eq!(stop2.state_hash, hash, "{name}: state after restart");
        assert_eq!(stop2.last_input_seq, Seq(events.len() as u64), "{name}");
        // The outbound sequence continues: dense across both runs (each
        // run ends with an S message).
        let seqs: Vec<_> = first.iter().chain(&second).map(output_seq).collect();
        let dense: Vec<_> = (1..=seqs.len() as u64).map(Seq).collect();
        assert_eq!(seqs, dense, "{name}");
        assert_eq!(stop1.next_output_seq, output_seq(&second[0]), "{name}");
    }
}

#[test]
fn restart_uses_the_snapshot_and_replays_only_the_tail() {
    let path = scenarios()
        .into_iter()
        .max_by_key(|p| arrivals(p).len())
        .expect("a scenario");
    let events = arrivals(&path);
    let (expected, hash) = replayed(&events, Shard::ALL);
    let cut = events.len() - 3;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = options(dir.path(), Shard::ALL);
    opts.pipeline.snapshot_interval_events = 4;
    let (first, stop1, _) = run(&opts, &events[..cut]);
    assert_eq!(stop1.snapshot_seq, Some(Seq(cut as u64)));
    let mut publish = VecPublish::default();
    let running = start(&opts, Arc::new(Metrics::default()), &mut publish).expect("restart");
    let report = running.report.clone();
    assert_eq!(report.snapshot.as_ref().map(|s| s.0), Some(Seq(cut as u64)));
    assert_eq!(
        report.replayed, 0,
        "the shutdown snapshot covers everything"
    );
    running.stop(&mut publish).expect("stop");
    let (second, stop3, _) = run(&opts, &events[cut..]);
    let mut all = decisions(&first);
    all.extend(decisions(&second));
    assert_eq!(all, expected);
    assert_eq!(stop3.state_hash, hash);
    // The periodic snapshots were written too (retain = 2 kept).
    let store =
        journal::SnapshotStore::open(journal::default_snapshot_dir(dir.path()), 0).expect("store");
    assert!(store.list().expect("list").len() >= 2);
}

#[test]
fn decisions_not_journaled_before_a_crash_are_journaled_at_restart() {
    for path in scenarios() {
        let events = arrivals(&path);
        let (expected, hash) = replayed(&events, Shard::ALL);
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = options(dir.path(), Shard::ALL);
        // A previous run journaled the inputs and died before any output.
        {
            let (_, _, _) = run(&opts, &[]);
            let mut input =
                InputJournal::open(dir.path(), JournalOptions::default()).expect("input journal");
            for (stream, src_seq, event) in &events {
                input
                    .append_event(UnixNanos(1), *stream, *src_seq, event)
                    .expect("append");
            }
            input.close().expect("close");
        }
        let mut publish = VecPublish::default();
        let running = start(&opts, Arc::new(Metrics::default()), &mut publish).expect("restart");
        assert_eq!(
            running.report.outputs_recovered,
            expected.len() as u64,
            "{}",
            path.display()
        );
        let stop = running.stop(&mut publish).expect("stop");
        assert_eq!(stop.state_hash, hash);
        let journaled: Vec<_> = journaled_decisions(dir.path())
            .into_iter()
            .map(|(_, o)| o)
            .collect();
        assert_eq!(journaled, expected, "{}", path.display());
        // Restarting again recovers nothing more.
        let running = start(&opts, Arc::new(Metrics::default()), &mut publish).expect("again");
        assert_eq!(running.report.outputs_recovered, 0);
        running.stop(&mut publish).expect("stop");
    }
}

#[test]
fn a_new_journal_starts_with_the_configuration_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = options(dir.path(), Shard::ALL);
    let config_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/liqd.toml");
    let (_, settings) = daemon::config::Config::load(config_path).expect("example");
    opts.initial_events = settings.initial_events.clone();
    let (_, report, _) = run(&opts, &[]);
    assert_eq!(
        report.last_input_seq,
        Seq(settings.initial_events.len() as u64)
    );
    let reader = InputReader::open(dir.path()).expect("input journal");
    for (record, event) in reader.iter().zip(&settings.initial_events) {
        let record = record.expect("record");
        assert_eq!(record.input().src_stream.to_native(), SourceStream::Config);
        assert_eq!(record.input().src_seq.to_native(), 0);
        assert_eq!(record.event(), *event);
    }
    // A restart does not journal them again.
    let (_, report, _) = run(&opts, &[]);
    assert_eq!(
        report.last_input_seq,
        Seq(settings.initial_events.len() as u64)
    );
}

#[test]
fn a_restart_with_another_shard_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = arrivals(&scenarios()[0]);
    run(&options(dir.path(), Shard::ALL), &events);
    let mut publish = VecPublish::default();
    let other = options(dir.path(), Shard { index: 1, count: 2 });
    let err = match start(&other, Arc::new(Metrics::default()), &mut publish) {
        Ok(_) => panic!("a shard change was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.starts_with("shard: \"1/2\" differs"), "{err}");
}

#[test]
fn the_final_status_counts_accounts_cooldowns_and_halts() {
    let mut checked_halted = false;
    let mut checked_liquidating = false;
    for path in scenarios() {
        let events = arrivals(&path);
        let dir = tempfile::tempdir().expect("tempdir");
        let (published, report, _) = run(&options(dir.path(), Shard::ALL), &events);
        let Some(OwnedOutbound::Status { status, .. }) = published.last() else {
            panic!("{}: the stop publishes an S last", path.display());
        };
        // The reference: a replayed engine and the halts it announced.
        let mut engine = Engine::new(Limits::default());
        let mut sink = engine::VecSink::default();
        for (i, (_, _, event)) in events.iter().enumerate() {
            let _ = engine.apply(Seq(i as u64 + 1), event, &mut sink);
        }
        let mut halts = BTreeMap::new();
        for output in &sink.outputs {
            if let Output::Halt(h) = output {
                halts.insert((h.instrument, h.reason), h.on);
            }
        }
        let halted: BTreeSet<_> = halts
            .iter()
            .filter(|(_, on)| **on)
            .map(|((instrument, _), _)| *instrument)
            .collect();
        let name = path.display();
        assert_eq!(status.seq, report.last_input_seq, "{name}");
        assert_eq!(status.accounts, engine.account_count() as u64, "{name}");
        assert_eq!(status.halted, halted.len() as u32, "{name}");
        assert_eq!(status.liquidating, engine.accounts_in_cooldown(), "{name}");
        checked_halted |= status.halted > 0;
        checked_liquidating |= status.liquidating > 0;
    }
    assert!(
        checked_halted && checked_liquidating,
        "some scenario ends halted and in cooldown"
    );
}

#[test]
fn a_new_session_restarts_a_stream_and_a_restart_resumes_from_the_last_record() {
    let events = arrivals(&scenarios()[0]);
    let orders: Vec<_> = events
        .iter()
        .filter(|(stream, _, _)| *stream == SourceStream::Orders)
        .map(|(_, _, event)| *event)
        .collect();
    assert!(orders.len() >= 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(dir.path(), Shard::ALL);
    let mut publish = VecPublish::default();
    let mut running = start(&opts, Arc::new(Metrics::default()), &mut publish).expect("start");
    let mut submit = |running: &mut daemon::startup::Running, seq: u64, event: &Event| {
        running
            .pipeline
            .submit(
                SourceStream::Orders,
                seq,
                UnixNanos(1),
                Instant::now(),
                event,
                &mut publish,
            )
            .expect("submit")
    };
    for (i, event) in orders.iter().take(3).enumerate() {
        assert!(matches!(
            submit(&mut running, i as u64 + 1, event),
            Submitted::Queued(_)
        ));
    }
    assert_eq!(submit(&mut running, 2, &orders[0]), Submitted::Duplicate);
    // The venue starts a new session: sequences start over at 1.
    running.pipeline.restart_stream(SourceStream::Orders);
    assert!(matches!(
        submit(&mut running, 1, &orders[0]),
        Submitted::Queued(_)
    ));
    assert_eq!(running.pipeline.next_expected(SourceStream::Orders), 2);
    running.stop(&mut VecPublish::default()).expect("stop");
    // A restart resumes after the last journaled record of the stream
    // (the new session's 1), not after the largest sequence (3).
    let running = start(
        &opts,
        Arc::new(Metrics::default()),
        &mut VecPublish::default(),
    )
    .expect("restart");
    assert_eq!(running.pipeline.next_expected(SourceStream::Orders), 2);
    running.stop(&mut VecPublish::default()).expect("stop");
}

/// `liqd-sessions.toml`: a stream's next expected message counts only the
/// records of its current session (from `first_input_seq` on), so a new
/// session recorded just before a crash expects its message 1.
#[test]
fn a_recorded_session_change_restarts_that_stream_at_one() {
    use daemon::sessions::Sessions;
    let path = scenarios()
        .into_iter()
        .find(|p| p.ends_with("funding.jsonl"))
        .expect("funding.jsonl");
    let events = arrivals(&path);
    let count = |stream| events.iter().filter(|(s, _, _)| *s == stream).count() as u64;
    let (md, orders) = (count(SourceStream::MarketData), count(SourceStream::Orders));
    assert!(md > 0 && orders > 0);
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(dir.path(), Shard::ALL);
    let (_, stop, _) = run(&opts, &events);
    let next_expected = |stream| {
        let mut publish = VecPublish::default();
        let running = start(&opts, Arc::new(Metrics::default()), &mut publish).expect("start");
        let next = running.report.streams.next_expected(stream);
        running.stop(&mut publish).expect("stop");
        next
    };
    // No file, or the first session adopted (from 0): after the last record.
    assert_eq!(next_expected(SourceStream::Orders), orders + 1);
    let mut sessions = Sessions::load(dir.path()).expect("load");
    sessions
        .set(SourceStream::Orders, *b"OLDO      ", Seq(0))
        .expect("set");
    assert_eq!(next_expected(SourceStream::Orders), orders + 1);
    // A change recorded, then a crash before its first event: message 1.
    let first_new = Seq(stop.last_input_seq.0 + 1);
    sessions
        .set(SourceStream::Orders, *b"NEWO      ", first_new)
        .expect("set");
    assert_eq!(next_expected(SourceStream::Orders), 1);
    assert_eq!(next_expected(SourceStream::MarketData), md + 1);
    // Message 1 of the new session is journaled (not a duplicate)…
    let fill = events
        .iter()
        .find(|(s, _, _)| *s == SourceStream::Orders)
        .expect("an order event")
        .2;
    let (_, _, submitted) = run(&opts, &[(SourceStream::Orders, 1, fill)]);
    assert_ne!(submitted[0], Submitted::Duplicate);
    // …and the next start expects message 2 of it.
    assert_eq!(next_expected(SourceStream::Orders), 2);
    let loaded = Sessions::load(dir.path()).expect("load");
    assert_eq!(
        loaded.get(SourceStream::Orders).map(|s| s.session),
        Some(*b"NEWO      ")
    );
}
