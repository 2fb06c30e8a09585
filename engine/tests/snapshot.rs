//! Engine snapshots: restore at any point of a random stream, then the
//! original and the restored engine must accept the same events, emit the
//! same outputs after every event and keep the same state hash; the
//! restored engine snapshots to the very bytes it came from. Damaged bytes
//! are an error or a valid engine, never a panic.

mod common;

use engine::*;
use proptest::prelude::*;
use proptest::sample::Index;

fn limits() -> Limits {
    Limits {
        accounts_max: 64,
        ..Limits::default()
    }
}

fn config(mode: EvaluationMode) -> EngineConfig {
    EngineConfig {
        mode,
        ..EngineConfig::default()
    }
}

fn engine_after(events: &[Event], config: EngineConfig) -> Engine {
    let mut engine = Engine::with_config(limits(), config);
    let mut sink = VecSink::default();
    for (n, event) in events.iter().enumerate() {
        let _ = engine.apply(Seq(n as u64 + 1), event, &mut sink);
    }
    engine
}

/// Snapshot after `split` events, restore, and run the rest on both.
fn check_split(events: &[Event], split: usize, config: EngineConfig) -> Result<(), TestCaseError> {
    let (head, tail) = events.split_at(split);
    let mut original = engine_after(head, config);
    let bytes = original.snapshot();
    let mut restored = Engine::restore(&bytes, limits(), config)
        .map_err(|e| TestCaseError::fail(format!("restore after {split} events: {e}")))?;
    prop_assert_eq!(restored.state_hash(), original.state_hash());
    prop_assert_eq!(restored.stats(), original.stats());
    prop_assert_eq!(restored.now(), original.now());
    prop_assert!(
        restored.snapshot().as_slice() == bytes.as_slice(),
        "re-snapshot differs"
    );
    for (n, event) in tail.iter().enumerate() {
        let seq = Seq((split + n) as u64 + 1);
        let mut want = VecSink::default();
        let mut got = VecSink::default();
        let accepted = original.apply(seq, event, &mut want).is_ok();
        let ok = restored.apply(seq, event, &mut got).is_ok();
        prop_assert_eq!(ok, accepted, "seq {}: {:?}", seq.0, event);
        prop_assert_eq!(&got.outputs, &want.outputs, "seq {}: {:?}", seq.0, event);
        prop_assert_eq!(
            restored.state_hash(),
            original.state_hash(),
            "seq {}",
            seq.0
        );
    }
    prop_assert_eq!(restored.stats(), original.stats());
    for id in original.account_ids() {
        prop_assert_eq!(restored.figures(id), original.figures(id));
    }
    prop_assert!(restored.snapshot().as_slice() == original.snapshot().as_slice());
    Ok(())
}

proptest! {
    #[test]
    fn restore_continues_like_the_original(events in common::stream(), at in any::<Index>()) {
        let split = at.index(events.len() + 1);
        check_split(&events, split, config(EvaluationMode::Triggers))?;
    }

    #[test]
    fn restore_continues_like_the_original_on_trigger_streams(
        events in common::trigger_stream(),
        at in any::<Index>(),
    ) {
        let split = at.index(events.len() + 1);
        check_split(&events, split, config(EvaluationMode::Triggers))?;
    }

    #[test]
    fn restore_continues_like_the_original_all_holders(
        events in common::trigger_stream(),
        at in any::<Index>(),
    ) {
        let split = at.index(events.len() + 1);
        check_split(&events, split, config(EvaluationMode::AllHolders))?;
    }

    /// Bit flips, byte overwrites and truncations: `restore` returns an
    /// error, or an engine that snapshots and keeps applying without panic
    /// (a flip can land on a value that is still valid).
    #[test]
    fn damaged_snapshots_never_panic(
        events in common::trigger_stream(),
        at in any::<Index>(),
        flips in prop::collection::vec((any::<Index>(), 0u8..8), 1..4),
        cut in prop::option::weighted(0.3, any::<Index>()),
    ) {
        let split = at.index(events.len() + 1);
        let (head, tail) = events.split_at(split);
        let bytes = engine_after(head, EngineConfig::default()).snapshot();
        let mut damaged = bytes.to_vec();
        for (at, bit) in &flips {
            let i = at.index(damaged.len());
            damaged[i] ^= 1 << bit;
        }
        if let Some(cut) = cut {
            damaged.truncate(cut.index(damaged.len()));
        }
        if let Ok(mut engine) = Engine::restore(&damaged, limits(), EngineConfig::default()) {
            let _ = engine.snapshot();
            let mut sink = VecSink::default();
            for (n, event) in tail.iter().enumerate() {
                let _ = engine.apply(Seq((split + n) as u64 + 1), event, &mut sink);
            }
            let _ = engine.state_hash();
        }
    }

    #[test]
    fn random_bytes_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert!(Engine::restore(&bytes, limits(), EngineConfig::default()).is_err());
    }
}

#[test]
fn empty_engine_round_trips() {
    let engine = Engine::new(limits());
    let bytes = engine.snapshot();
    let restored = Engine::restore(&bytes, limits(), EngineConfig::default()).unwrap();
    assert_eq!(restored.state_hash(), engine.state_hash());
    assert_eq!(restored.snapshot().as_slice(), bytes.as_slice());
}

#[test]
fn misaligned_bytes_are_copied_not_refused() {
    let engine = engine_after(&deposits(3), EngineConfig::default());
    let bytes = engine.snapshot();
    let mut shifted = vec![0u8; bytes.len() + 1];
    shifted[1..].copy_from_slice(&bytes);
    let restored = Engine::restore(&shifted[1..], limits(), EngineConfig::default()).unwrap();
    assert_eq!(restored.state_hash(), engine.state_hash());
}

#[test]
fn capacity_and_limits_are_checked() {
    let engine = engine_after(&deposits(5), EngineConfig::default());
    let bytes = engine.snapshot();
    let small = Limits {
        accounts_max: 4,
        ..limits()
    };
    assert_eq!(
        Engine::restore(&bytes, small, EngineConfig::default()).unwrap_err(),
        SnapshotError::Capacity("accounts_max")
    );
    let invalid = Limits {
        accounts_max: 0,
        ..limits()
    };
    assert!(matches!(
        Engine::restore(&bytes, invalid, EngineConfig::default()),
        Err(SnapshotError::Limits(_))
    ));
    assert!(matches!(
        Engine::restore(&bytes[..bytes.len() - 1], limits(), EngineConfig::default()),
        Err(SnapshotError::Malformed(_))
    ));
}

fn deposits(accounts: u64) -> Vec<Event> {
    (0..accounts)
        .map(|n| {
            Event::Balance(BalanceChange {
                ts: UnixNanos(n),
                account: AccountId(n * 3),
                asset: AssetId(0),
                amount: Fixed8(100_000_000 * n as i64),
                kind: BalanceKind::Deposit,
                ref_id: n,
            })
        })
        .collect()
}
