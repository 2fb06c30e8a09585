//! Engine snapshots through the store: a snapshot at any sequence plus the
//! journal's tail replays to the same state hash and the same outputs as a
//! replay from the start; damaged or foreign snapshot files are skipped
//! (and reported), never a panic.

mod common;

use std::path::Path;

use common::{small_options, Rng};
use engine::*;
use journal::{
    default_snapshot_dir, load_engine_snapshot, write_engine_snapshot, InputJournal, InputReader,
    SnapshotStore, SourceStream,
};

fn limits() -> Limits {
    Limits {
        accounts_max: 1024,
        ..Limits::default()
    }
}

fn f8(units: i64) -> Fixed8 {
    Fixed8(units * 100_000_000)
}

/// A small venue: two instruments with random-walk marks (and jumps),
/// 50 accounts trading at high leverage, deposits, withdrawals, funding,
/// RiskParams — liquidations, cooldowns and halts throughout.
fn venue(count: usize, seed: u64) -> Vec<Event> {
    let mut rng = Rng(seed);
    let tiers = Tiers::from_slice(&[
        Tier {
            notional_floor: Fixed8(0),
            mmr: Fixed8(1_000_000),
            imr: Fixed8(2_000_000),
        },
        Tier {
            notional_floor: f8(50_000),
            mmr: Fixed8(2_000_000),
            imr: Fixed8(4_000_000),
        },
    ]);
    let mut events = Vec::with_capacity(count);
    for id in 1..=2u32 {
        events.push(Event::InstrumentDef(InstrumentDef {
            ts: UnixNanos(0),
            instrument: InstrumentId(id),
            symbol: Symbol::new("PERP").unwrap(),
            multiplier: f8(1),
            liquidation_fee: Fixed8(100_000),
            tiers,
        }));
        events.push(Event::Risk(RiskParams {
            ts: UnixNanos(0),
            instrument: InstrumentId(id),
            vol_lambda: Fixed8(94_000_000),
            vol_ref: Fixed8(1_000_000),
            vol_max_factor: f8(3),
            max_staleness_ns: 50,
            max_jump: Fixed8(20_000_000),
        }));
    }
    let mut marks = [0i64, 1_000 * 100_000_000, 50 * 100_000_000];
    let mut ts = 1u64;
    while events.len() < count {
        ts += rng.below(3);
        let ts_now = UnixNanos(ts);
        let account = AccountId(rng.below(50));
        let id = 1 + rng.below(2) as u32;
        let event = match rng.below(10) {
            0..=4 => {
                let m = &mut marks[id as usize];
                let step = *m / 1000 * (rng.below(41) as i64 - 20);
                *m = (*m + step).max(1_000_000);
                if rng.below(200) == 0 {
                    *m = *m * 3 / 2;
                }
                Event::Mark(MarkPrice {
                    ts: ts_now,
                    instrument: InstrumentId(id),
                    price: Fixed8(*m),
                })
            }
            5..=6 => {
                let m = marks[id as usize];
                let qty = (rng.below(200) as i64 - 100) * 1_000_000 + 1;
                Event::Fill(Fill {
                    ts: ts_now,
                    account,
                    instrument: InstrumentId(id),
                    qty: Fixed8(qty * 100_000 / (m / 100_000_000).max(1)),
                    price: Fixed8(m),
                    fee: Fixed8(0),
                    fill_id: ts,
                })
            }
            7..=8 => Event::Balance(BalanceChange {
                ts: ts_now,
                account,
                asset: AssetId(0),
                amount: f8(rng.below(300) as i64 - 100),
                kind: BalanceKind::Deposit,
                ref_id: ts,
            }),
            _ => Event::Funding(Funding {
                ts: ts_now,
                instrument: InstrumentId(id),
                rate: Fixed8(rng.below(2001) as i64 - 1000),
            }),
        };
        events.push(event);
    }
    events
}

fn import(dir: &Path, events: &[Event]) {
    let mut journal = InputJournal::open(dir, small_options()).unwrap();
    for (n, event) in events.iter().enumerate() {
        journal
            .append_event(event.ts(), SourceStream::Orders, n as u64 + 1, event)
            .unwrap();
    }
    journal.close().unwrap();
}

/// Applies the journal's records from `from` on; returns the outputs.
fn replay(dir: &Path, engine: &mut Engine, from: Seq, to: Seq) -> Vec<Output> {
    let reader = InputReader::open(dir).unwrap();
    let mut sink = VecSink::default();
    for record in reader.iter_from(from) {
        let record = record.unwrap();
        if record.seq > to {
            break;
        }
        let _ = engine.apply(record.seq, &record.event(), &mut sink);
    }
    sink.outputs
}

fn output_seq(output: &Output) -> Seq {
    match output {
        Output::Halt(h) => h.seq,
        Output::Liquidation(l, _) => l.seq,
    }
}

#[test]
fn snapshot_plus_tail_equals_full_replay() {
    let dir = tempfile::tempdir().unwrap();
    let events = venue(4000, 7);
    import(dir.path(), &events);
    let mut full = Engine::new(limits());
    let all = replay(dir.path(), &mut full, Seq(1), Seq(u64::MAX));
    let liquidations = all
        .iter()
        .filter(|o| matches!(o, Output::Liquidation(..)))
        .count();
    assert!(
        liquidations > 20,
        "a venue with liquidations: {liquidations}"
    );
    assert!(all.iter().any(|o| matches!(o, Output::Halt(_))));

    let store = SnapshotStore::open(default_snapshot_dir(dir.path()), 0).unwrap();
    for at in [1u64, 5, 777, 1999, 2000, 3999, 4000] {
        let mut engine = Engine::new(limits());
        replay(dir.path(), &mut engine, Seq(1), Seq(at));
        write_engine_snapshot(&store, Seq(at), &engine).unwrap();
        let restored = load_engine_snapshot(&store, Seq(at), limits(), EngineConfig::default())
            .unwrap()
            .unwrap();
        assert_eq!(restored.seq, Seq(at));
        assert!(restored.skipped.is_empty());
        let mut engine = restored.engine;
        let tail = replay(dir.path(), &mut engine, Seq(at + 1), Seq(u64::MAX));
        let expected: Vec<Output> = all
            .iter()
            .filter(|o| output_seq(o).0 > at)
            .cloned()
            .collect();
        assert_eq!(tail, expected, "outputs after a snapshot at {at}");
        assert_eq!(engine.state_hash(), full.state_hash(), "snapshot at {at}");
        assert_eq!(engine.stats(), full.stats());
    }
    // At or before: the newest not after the requested sequence.
    let found = load_engine_snapshot(&store, Seq(1998), limits(), EngineConfig::default())
        .unwrap()
        .unwrap();
    assert_eq!(found.seq, Seq(777));
    assert!(
        load_engine_snapshot(&store, Seq(0), limits(), EngineConfig::default())
            .unwrap()
            .is_none()
    );
}

#[test]
fn damaged_and_foreign_snapshots_are_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let events = venue(600, 11);
    import(dir.path(), &events);
    let store = SnapshotStore::open(default_snapshot_dir(dir.path()), 0).unwrap();
    let mut engine = Engine::new(limits());
    // The definitions only: no accounts yet.
    replay(dir.path(), &mut engine, Seq(1), Seq(4));
    assert_eq!(engine.account_count(), 0);
    write_engine_snapshot(&store, Seq(4), &engine).unwrap();
    let hash_4 = engine.state_hash();
    // A checksummed payload that is not an engine snapshot.
    store.write(Seq(400), b"not an engine").unwrap();
    // An engine snapshot whose limits the loader cannot meet.
    replay(dir.path(), &mut engine, Seq(5), Seq(500));
    let small = Limits {
        accounts_max: 2,
        ..limits()
    };
    write_engine_snapshot(&store, Seq(500), &engine).unwrap();
    // A file with a damaged payload.
    let path = write_engine_snapshot(&store, Seq(550), &engine)
        .unwrap()
        .path;
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();

    let found = load_engine_snapshot(&store, Seq(u64::MAX), small, EngineConfig::default())
        .unwrap()
        .unwrap();
    assert_eq!(found.seq, Seq(4));
    assert_eq!(found.engine.state_hash(), hash_4);
    let reasons: Vec<&str> = found.skipped.iter().map(|(_, why)| why.as_str()).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains("checksum"), "{}", reasons[0]);
    assert!(reasons[1].contains("accounts_max"), "{}", reasons[1]);
    assert!(
        reasons[2].contains("not a valid engine snapshot"),
        "{}",
        reasons[2]
    );
}

/// Random snapshot files: wholly random bytes, and a valid store header
/// (correct checksums) over a random or bit-flipped engine payload so that
/// the engine's own validation is reached.
#[test]
fn random_snapshot_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let events = venue(400, 3);
    import(dir.path(), &events);
    let mut engine = Engine::new(limits());
    replay(dir.path(), &mut engine, Seq(1), Seq(400));
    let good = engine.snapshot();
    let mut rng = Rng(0xfeed);
    for case in 0..300u64 {
        let store = SnapshotStore::open(dir.path().join(format!("s{case}")), 0).unwrap();
        match case % 3 {
            0 => {
                let len = rng.below(4096) as usize;
                let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                std::fs::write(
                    store.dir().join("snapshot-00000000000000000001.snap"),
                    bytes,
                )
                .unwrap();
            }
            1 => {
                let len = rng.below(4096) as usize;
                let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                store.write(Seq(1), &bytes).unwrap();
            }
            _ => {
                let mut bytes = good.to_vec();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(bytes.len() as u64) as usize;
                    bytes[at] ^= 1 << rng.below(8);
                }
                if rng.below(4) == 0 {
                    bytes.truncate(rng.below(bytes.len() as u64) as usize);
                }
                store.write(Seq(1), &bytes).unwrap();
            }
        }
        if let Ok(Some(restored)) =
            load_engine_snapshot(&store, Seq(u64::MAX), limits(), EngineConfig::default())
        {
            let mut engine = restored.engine;
            let mut sink = VecSink::default();
            for (n, event) in events.iter().take(50).enumerate() {
                let _ = engine.apply(Seq(401 + n as u64), event, &mut sink);
            }
            let _ = engine.snapshot();
        }
    }
}
