//! Round trips, recovery, fault injection, snapshots, bad input.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use engine::Seq;
use journal::{
    check, BadFrame, CutKind, Finding, InputJournal, InputReader, JournalError, JournalOptions,
    OutputBody, OutputJournal, OutputReader, SnapshotStore, Status,
};

fn location_of(dir: &Path, seq: u64) -> (PathBuf, u64) {
    let reader = InputReader::open(dir).unwrap();
    let record = reader.iter_from(Seq(seq)).next().unwrap().unwrap();
    assert_eq!(record.seq.0, seq);
    (record.segment.to_path_buf(), record.offset)
}

fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, offset).unwrap();
}

fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let file = std::fs::File::open(path).unwrap();
    let mut out = vec![0; len];
    file.read_exact_at(&mut out, offset).unwrap();
    out
}

#[test]
fn round_trip_across_segments_and_from_any_seq() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path(), 3000, small_options());
    let segs = segments(dir.path());
    assert!(segs.len() >= 20, "{} segments", segs.len());
    assert_eq!(verify_inputs(dir.path()), 3000);
    let reader = InputReader::open(dir.path()).unwrap();
    for from in [1u64, 2, 133, 134, 1500, 2999, 3000] {
        let got: Vec<u64> = reader
            .iter_from(Seq(from))
            .map(|r| r.unwrap().seq.0)
            .collect();
        assert_eq!(got, (from..=3000).collect::<Vec<_>>());
    }
    assert_eq!(reader.iter_from(Seq(3001)).count(), 0);
    // Zero-copy access and the event convenience agree.
    let record = reader.iter_from(Seq(10)).next().unwrap().unwrap();
    assert_eq!(record.event(), event_for(10));
    assert_eq!(record.input().src_seq.to_native(), 30);
    let report = check(dir.path()).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(
        (report.records, report.first_seq, report.last_seq),
        (3000, Some(1), Some(3000))
    );
    assert_eq!(report.segments.iter().map(|s| s.records).sum::<u64>(), 3000);
    let text = report.to_string();
    assert!(
        text.contains("integrity: ok") && text.contains("sequences 1..=3000"),
        "{text}"
    );
}

#[test]
fn reopen_continues_the_sequence() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..4 {
        write_inputs(dir.path(), 250 + round * 7, small_options());
    }
    assert_eq!(verify_inputs(dir.path()), 250 * 4 + 7 * 6);
    let journal = InputJournal::open(dir.path(), small_options()).unwrap();
    assert_eq!(journal.next_seq(), Seq(1043));
    assert!(journal.recovery().is_clean());
    // Appending out of sequence is refused.
    let mut journal = journal;
    assert!(matches!(
        journal.append(&record_for(5)),
        Err(JournalError::SequenceMismatch {
            expected: 1043,
            found: 5
        })
    ));
}

#[test]
fn a_new_journal_can_start_at_any_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let options = JournalOptions {
        first_seq: Seq(1_000_000),
        ..small_options()
    };
    let mut journal = InputJournal::open(dir.path(), options).unwrap();
    for seq in 1_000_000..1_000_500 {
        journal.append(&record_for(seq)).unwrap();
    }
    journal.close().unwrap();
    let reader = InputReader::open(dir.path()).unwrap();
    assert_eq!(reader.first_seq(), Some(Seq(1_000_000)));
    let seqs: Vec<u64> = reader.iter().map(|r| r.unwrap().seq.0).collect();
    assert_eq!(seqs, (1_000_000..1_000_500).collect::<Vec<_>>());
}

#[test]
fn syncer_thread_prepares_ahead_and_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = InputJournal::open(dir.path(), small_options()).unwrap();
    let syncer = journal.syncer().spawn(Duration::from_millis(1)).unwrap();
    assert!(matches!(
        journal.syncer().spawn(Duration::from_millis(1)),
        Err(JournalError::SyncerRunning)
    ));
    for seq in 1..=5000 {
        journal.append(&record_for(seq)).unwrap();
        if seq % 500 == 0 {
            // Give the syncer a moment, as a real appender's pace would.
            std::thread::sleep(Duration::from_millis(3));
        }
    }
    let stats = journal.stats();
    assert!(stats.rolls >= 30, "{stats:?}");
    assert!(stats.inline_prepares < stats.rolls, "{stats:?}");
    assert_eq!(stats.inline_flushes, 0, "{stats:?}");
    syncer.stop().unwrap();
    assert_eq!(journal.durable_seq(), Seq(5000));
    assert_eq!(journal.close().unwrap(), Seq(5000));
    assert_eq!(verify_inputs(dir.path()), 5000);
    // Every segment got its final name; no prepared file was left.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "LOCK")
        .collect();
    assert!(names.iter().all(|n| n.ends_with(".seg")), "{names:?}");
}

#[test]
fn output_journal_round_trips_halts_liquidations_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = OutputJournal::open(dir.path(), small_options()).unwrap();
    let mut expected = Vec::new();
    for input_seq in 1..=600u64 {
        match input_seq % 3 {
            0 => {
                journal
                    .append_halt(Seq(input_seq), &halt_for(input_seq))
                    .unwrap();
                expected.push((input_seq, OutputBody::Halt(halt_for(input_seq))));
            }
            1 => {
                let (liquidation, legs) = liquidation_for(input_seq);
                let mut sink = journal.sink(Seq(input_seq));
                engine::Sink::liquidation(&mut sink, &liquidation, &legs);
                sink.finish().unwrap();
                expected.push((input_seq, OutputBody::Liquidation { liquidation, legs }));
            }
            _ => {
                let status = Status {
                    ts: engine::UnixNanos(input_seq),
                    seq: Seq(input_seq),
                    accounts: 10,
                    liquidating: 2,
                    halted: 1,
                };
                journal.append_status(&status).unwrap();
                expected.push((input_seq, OutputBody::Status(status)));
            }
        }
    }
    journal.close().unwrap();
    let reader = OutputReader::open(dir.path()).unwrap();
    let mut count = 0;
    for (record, (input_seq, body)) in reader.iter().zip(&expected) {
        let record = record.unwrap().to_owned();
        assert_eq!(record.seq.0, count + 1);
        assert_eq!(record.input_seq.0, *input_seq);
        assert_eq!(&record.output, body);
        count += 1;
    }
    assert_eq!(count, 600);
    assert!(check(dir.path()).unwrap().is_intact());
    // An output directory is not an input journal.
    assert!(matches!(
        InputReader::open(dir.path()),
        Err(JournalError::WrongKind { .. })
    ));
}

#[test]
fn a_record_larger_than_a_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = OutputJournal::open(dir.path(), small_options()).unwrap();
    let (liquidation, _) = liquidation_for(1);
    let legs = vec![liquidation_for(69).1[0]; 2000];
    assert!(matches!(
        journal.append_liquidation(Seq(1), &liquidation, &legs),
        Err(JournalError::RecordTooLarge { .. })
    ));
    // The journal is still usable.
    journal.append_halt(Seq(1), &halt_for(1)).unwrap();
    journal.close().unwrap();
    assert_eq!(OutputReader::open(dir.path()).unwrap().iter().count(), 1);
}

#[test]
fn a_second_writer_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let _journal = InputJournal::open(dir.path(), small_options()).unwrap();
    assert!(matches!(
        InputJournal::open(dir.path(), small_options()),
        Err(JournalError::Locked { .. })
    ));
}

/// Writes 1000 records, damages the file as `damage` says (given the last
/// record's segment and offset), recovers, and checks exactly 999 remain.
fn torn_tail_case(damage: impl FnOnce(&Path, u64)) -> journal::RecoveryReport {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path(), 1000, small_options());
    let (segment, offset) = location_of(dir.path(), 1000);
    damage(&segment, offset);
    let report = check(dir.path()).unwrap();
    assert!(
        matches!(report.finding, Some(Finding::TornTail { .. })),
        "{report}"
    );
    assert!(!report.needs_operator());
    assert_eq!(report.last_seq, Some(999));
    // A reader ends quietly before the torn record.
    assert_eq!(verify_inputs(dir.path()), 999);
    let mut journal = InputJournal::open(dir.path(), small_options()).unwrap();
    let recovery = journal.recovery().clone();
    let cut = recovery.cut.clone().expect("a cut");
    assert_eq!(cut.kind, CutKind::TornTail);
    assert_eq!(
        (cut.segment.as_path(), cut.offset),
        (segment.as_path(), offset)
    );
    assert!(cut.bytes > 0);
    assert_eq!(journal.next_seq(), Seq(1000));
    // Appending goes on from there, and the result is whole.
    for seq in 1000..1100 {
        journal.append(&record_for(seq)).unwrap();
    }
    journal.close().unwrap();
    assert_eq!(verify_inputs(dir.path()), 1099);
    assert!(check(dir.path()).unwrap().is_intact());
    recovery
}

#[test]
fn torn_tail_file_truncated_mid_record() {
    let report = torn_tail_case(|segment, offset| {
        let file = OpenOptions::new().write(true).open(segment).unwrap();
        file.set_len(offset + 100).unwrap();
    });
    assert!(matches!(
        report.cut.unwrap().reason,
        BadFrame::LengthOutOfBounds { .. }
    ));
}

#[test]
fn torn_tail_file_truncated_inside_frame_header() {
    let report = torn_tail_case(|segment, offset| {
        let file = OpenOptions::new().write(true).open(segment).unwrap();
        file.set_len(offset + 3).unwrap();
    });
    assert_eq!(report.cut.unwrap().reason, BadFrame::TruncatedHeader);
}

#[test]
fn torn_tail_payload_zero_filled() {
    let report = torn_tail_case(|segment, offset| patch(segment, offset + 200, &[0u8; 300]));
    assert!(matches!(
        report.cut.unwrap().reason,
        BadFrame::Checksum { .. }
    ));
}

#[test]
fn torn_tail_garbage_from_the_frame_on() {
    let mut rng = Rng(7);
    let garbage: Vec<u8> = (0..700).map(|_| rng.next() as u8).collect();
    let report = torn_tail_case(|segment, offset| patch(segment, offset, &garbage));
    assert!(report.cut.unwrap().bytes >= 700);
}

#[test]
fn torn_tail_uncommitted_payload() {
    // A kill between the payload copy and the length store: length 0,
    // payload bytes present.
    let report = torn_tail_case(|segment, offset| patch(segment, offset, &[0u8; 4]));
    assert_eq!(report.cut.unwrap().reason, BadFrame::UncommittedBytes);
}

#[test]
fn mid_file_corruption_is_refused_then_cut_on_request() {
    for (name, damage) in [
        ("flipped payload bit", 0u8),
        ("zeroed length", 1),
        ("huge length", 2),
    ] {
        let dir = tempfile::tempdir().unwrap();
        write_inputs(dir.path(), 1000, small_options());
        let (segment, offset) = location_of(dir.path(), 500);
        match damage {
            0 => {
                let byte = read_at(&segment, offset + 100, 1)[0];
                patch(&segment, offset + 100, &[byte ^ 0x10]);
            }
            1 => patch(&segment, offset, &[0; 4]),
            _ => patch(&segment, offset, &u32::MAX.to_le_bytes()),
        }
        let before = segments(dir.path());
        // check and the reader report it with segment and offset.
        let report = check(dir.path()).unwrap();
        match &report.finding {
            Some(Finding::Corrupt {
                segment: s,
                offset: o,
                ..
            }) => assert_eq!((s, *o), (&segment, offset), "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        assert!(report.needs_operator());
        let reader = InputReader::open(dir.path()).unwrap();
        let results: Vec<_> = reader.iter().collect();
        assert_eq!(results.len(), 500, "{name}");
        assert!(
            matches!(results.last(), Some(Err(JournalError::Corrupt { .. }))),
            "{name}"
        );
        drop(results);
        drop(reader);
        // Opening refuses, naming segment and offset; nothing changed.
        match InputJournal::open(dir.path(), small_options()) {
            Err(JournalError::Corrupt {
                segment: s,
                offset: o,
                reason,
            }) => {
                assert_eq!((&s, o), (&segment, offset), "{name}");
                let message = JournalError::Corrupt {
                    segment: s,
                    offset: o,
                    reason,
                }
                .to_string();
                assert!(
                    message.contains(&offset.to_string())
                        && message.contains("truncate_after_corruption")
                );
            }
            Err(e) => panic!("{name}: {e}"),
            Ok(_) => panic!("{name}: opened"),
        }
        assert_eq!(segments(dir.path()), before);
        // With the option: cut there, later segments set aside, bytes saved.
        let options = JournalOptions {
            truncate_after_corruption: true,
            ..small_options()
        };
        let mut journal = InputJournal::open(dir.path(), options).unwrap();
        let recovery = journal.recovery().clone();
        let cut = recovery.cut.clone().unwrap();
        assert_eq!(
            (cut.kind, &cut.segment, cut.offset),
            (CutKind::Corruption, &segment, offset)
        );
        assert!(cut.saved_to.as_ref().unwrap().exists());
        assert!(!recovery.segments_set_aside.is_empty());
        assert!(recovery.to_string().contains("corruption cut"));
        assert_eq!(journal.next_seq(), Seq(500));
        for seq in 500..600 {
            journal.append(&record_for(seq)).unwrap();
        }
        journal.close().unwrap();
        assert_eq!(verify_inputs(dir.path()), 599, "{name}");
    }
}

#[test]
fn structural_damage_gives_typed_errors() {
    let fresh = || {
        let dir = tempfile::tempdir().unwrap();
        write_inputs(dir.path(), 1000, small_options());
        let segs = segments(dir.path());
        (dir, segs)
    };
    // Wrong magic.
    let (dir, segs) = fresh();
    patch(&segs[3], 0, b"NOTLIQD!");
    assert!(
        matches!(InputJournal::open(dir.path(), small_options()), Err(JournalError::BadMagic { path }) if path == segs[3])
    );
    assert!(matches!(
        check(dir.path()),
        Err(JournalError::BadMagic { .. })
    ));
    // Wrong version (header otherwise intact).
    let (dir, segs) = fresh();
    patch(&segs[2], 8, &7u16.to_le_bytes());
    let error = InputJournal::open(dir.path(), small_options())
        .err()
        .unwrap();
    assert!(
        matches!(
            error,
            JournalError::UnsupportedVersion {
                found: 7,
                supported: 1,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("version 7"));
    // A damaged header field.
    let (dir, segs) = fresh();
    patch(&segs[1], 30, &[0xff]);
    assert!(matches!(
        InputReader::open(dir.path()),
        Err(JournalError::HeaderChecksum { .. })
    ));
    // A missing segment in the middle.
    let (dir, segs) = fresh();
    std::fs::remove_file(&segs[4]).unwrap();
    match InputJournal::open(dir.path(), small_options()) {
        Err(JournalError::MissingSegment {
            after,
            next,
            expected,
            found,
        }) => {
            assert_eq!((after, next), (segs[3].clone(), segs[5].clone()));
            assert!(found > expected);
        }
        other => panic!("{:?}", other.err()),
    }
    assert!(matches!(
        check(dir.path()).unwrap().finding,
        Some(Finding::MissingSegment { .. })
    ));
    let reader = InputReader::open(dir.path()).unwrap();
    assert!(matches!(
        reader.iter().last(),
        Some(Err(JournalError::MissingSegment { .. }))
    ));
    // A segment file shorter than its header.
    let (dir, segs) = fresh();
    OpenOptions::new()
        .write(true)
        .open(&segs[2])
        .unwrap()
        .set_len(10)
        .unwrap();
    assert!(matches!(
        InputJournal::open(dir.path(), small_options()),
        Err(JournalError::SegmentTooShort { len: 10, .. })
    ));
    // A file renamed to another segment's place.
    let (dir, segs) = fresh();
    let wrong = dir.path().join("00000000000000000002.seg");
    std::fs::rename(&segs[1], &wrong).unwrap();
    assert!(matches!(
        InputReader::open(dir.path()),
        Err(JournalError::NameMismatch { .. })
    ));
    // Invalid options.
    assert!(matches!(
        InputJournal::open(
            dir.path(),
            JournalOptions {
                segment_bytes: 1000,
                ..small_options()
            }
        ),
        Err(JournalError::InvalidOptions(_))
    ));
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x5eed);
    for case in 0..300 {
        let dir = tempfile::tempdir().unwrap();
        let len = 64 + rng.below(8192) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if case % 2 == 0 {
            // A valid header over a random body, to reach the frame reader.
            let header =
                journal::format::SegmentHeader::new(journal::RecordKind::Input, 8, 64 * 1024, 1)
                    .encode();
            bytes[..64].copy_from_slice(&header);
            if case % 4 == 0 {
                // Plausible lengths more often.
                let at = 64 + 8 * rng.below(((len - 64) / 8) as u64) as usize;
                if at + 4 <= len {
                    bytes[at..at + 4].copy_from_slice(&480u32.to_le_bytes());
                }
            }
        }
        std::fs::write(dir.path().join("00000000000000000001.seg"), &bytes).unwrap();
        if let Ok(reader) = InputReader::open(dir.path()) {
            for record in reader.iter() {
                let _ = record.map(|r| r.event());
            }
        }
        let _ = check(dir.path()).map(|r| r.to_string());
        let _ = InputJournal::open(dir.path(), small_options());
        let _ = OutputReader::open(dir.path()).map(|r| r.iter().count());
    }
}

#[test]
fn valid_records_with_random_damage_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path(), 300, small_options());
    let pristine: Vec<(PathBuf, Vec<u8>)> = segments(dir.path())
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    let mut rng = Rng(99);
    for _ in 0..200 {
        for (path, bytes) in &pristine {
            std::fs::write(path, bytes).unwrap();
        }
        let (path, bytes) = &pristine[rng.below(pristine.len() as u64) as usize];
        let mut damaged = bytes.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(20_000) as usize;
            damaged[at] ^= 1 << rng.below(8);
        }
        std::fs::write(path, &damaged).unwrap();
        let report = check(dir.path());
        if let Ok(reader) = InputReader::open(dir.path()) {
            let mut last = 0;
            for record in reader.iter() {
                match record {
                    Ok(record) => {
                        // Whatever is read is exactly what was written.
                        assert_eq!(record.to_owned(), record_for(record.seq.0));
                        last = record.seq.0;
                    }
                    Err(_) => break,
                }
            }
            if let Ok(report) = &report {
                assert_eq!(report.last_seq.unwrap_or(0), last);
            }
        }
    }
}

#[test]
fn snapshots_are_atomic_checked_and_retained() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path().join("snapshots"), 3).unwrap();
    for seq in [10u64, 20, 30, 40, 50] {
        let payload: Vec<u8> = (0..seq * 100).map(|i| (i * seq) as u8).collect();
        store.write(Seq(seq), &payload).unwrap();
    }
    let listed: Vec<u64> = store.list().unwrap().iter().map(|s| s.seq.0).collect();
    assert_eq!(listed, vec![30, 40, 50]);
    let latest = store.load_latest_at_or_before(Seq(45)).unwrap().unwrap();
    assert_eq!(latest.snapshot.seq, Seq(40));
    assert_eq!(
        latest.snapshot.payload.as_slice(),
        (0..4000u64).map(|i| (i * 40) as u8).collect::<Vec<_>>()
    );
    assert_eq!(latest.snapshot.payload.as_ptr() as usize % 16, 0);
    assert!(store.load_latest_at_or_before(Seq(29)).unwrap().is_none());
    // A damaged newest snapshot is skipped (and said so).
    let newest = store.list().unwrap().pop().unwrap().path;
    patch(&newest, 100, &[0xAA]);
    assert!(matches!(
        SnapshotStore::load(&newest),
        Err(JournalError::BadSnapshot { .. })
    ));
    let latest = store
        .load_latest_at_or_before(Seq(u64::MAX))
        .unwrap()
        .unwrap();
    assert_eq!(latest.snapshot.seq, Seq(40));
    assert_eq!(latest.skipped.len(), 1);
    // A leftover temporary file (a crash mid-write) is never listed and is
    // cleaned by retention.
    std::fs::write(
        store.dir().join(".snapshot-00000000000000000060.snap.tmp"),
        b"partial",
    )
    .unwrap();
    assert_eq!(store.list().unwrap().len(), 3);
    let removed = store.retain_last(1).unwrap();
    assert_eq!(removed.len(), 3);
    assert_eq!(store.list().unwrap().len(), 1);
    // Empty payloads are fine.
    store.write(Seq(70), &[]).unwrap();
    assert!(
        SnapshotStore::load(&store.list().unwrap().last().unwrap().path)
            .unwrap()
            .payload
            .is_empty()
    );
}
