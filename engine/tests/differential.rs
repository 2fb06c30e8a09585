//! The fast engine against the reference model: the same random streams
//! must give the same accept/reject decisions, the same outputs, and the
//! same figures for every account after every event.

mod common;

use engine::reference::ReferenceEngine;
use engine::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

/// Runs both engines over `events`; returns the outputs, or the first
/// divergence.
fn run_both(events: &[Event]) -> Result<Vec<Output>, String> {
    let mut fast = Engine::new(Limits::default());
    let mut reference = ReferenceEngine::new(Limits::default());
    let mut all = Vec::new();
    for (n, event) in events.iter().enumerate() {
        let seq = Seq(n as u64 + 1);
        let (mut a, mut b) = (VecSink::default(), VecSink::default());
        let fast_result = fast.apply(seq, event, &mut a);
        let reference_result = reference.apply(seq, event, &mut b);
        if fast_result.is_ok() != reference_result.is_ok() {
            return Err(format!(
                "seq {n}: {event:?}\n accepted differently: fast {fast_result:?}, reference {reference_result:?}"
            ));
        }
        if a.outputs != b.outputs {
            return Err(format!(
                "seq {}: {event:?}\n fast:      {:?}\n reference: {:?}",
                n + 1,
                a.outputs,
                b.outputs
            ));
        }
        let ids = reference.account_ids();
        if fast.account_ids() != ids {
            return Err(format!("seq {}: account sets differ", n + 1));
        }
        for id in ids {
            if fast.figures(id) != reference.figures(id) {
                return Err(format!(
                    "seq {}: account {id} figures differ\n fast:      {:?}\n reference: {:?}",
                    n + 1,
                    fast.figures(id),
                    reference.figures(id)
                ));
            }
        }
        all.extend(a.outputs);
    }
    if fast.stats() != reference.stats() {
        return Err(format!(
            "stats differ: {:?} vs {:?}",
            fast.stats(),
            reference.stats()
        ));
    }
    Ok(all)
}

proptest! {
    #[test]
    fn fast_engine_matches_reference(events in common::stream()) {
        if let Err(divergence) = run_both(&events) {
            prop_assert!(false, "{}", divergence);
        }
    }

    /// The adversarial streams of the trigger index (walking and crashing
    /// prices across the accounts' trigger prices, accounts opened near
    /// maintenance, funding storms, vol-factor steps, redefinitions, halts).
    #[test]
    fn fast_engine_matches_reference_on_trigger_streams(events in common::trigger_stream()) {
        if let Err(divergence) = run_both(&events) {
            prop_assert!(false, "{}", divergence);
        }
    }
}

/// The generator must reach every kind of decision, or the differential
/// test above proves little: over a fixed-seed batch of streams, count them.
#[test]
fn streams_exercise_every_rule() {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let strategy = common::stream();
    let (mut partial, mut full, mut bankrupt, mut escalation) = (0, 0, 0, 0);
    let (mut stale, mut jump, mut multi_leg) = (0, 0, 0);
    for _ in 0..48 {
        let events = strategy.new_tree(&mut runner).unwrap().current();
        for output in run_both(&events).unwrap() {
            match output {
                Output::Liquidation(l, legs) => {
                    partial += usize::from(l.partial);
                    full += usize::from(!l.partial && !l.bankrupt && !l.escalation);
                    bankrupt += usize::from(l.bankrupt);
                    escalation += usize::from(l.escalation);
                    multi_leg += usize::from(legs.len() > 1);
                }
                Output::Halt(h) => match h.reason {
                    HaltReason::Stale => stale += 1,
                    HaltReason::Jump => jump += 1,
                },
            }
        }
    }
    let counts = [partial, full, bankrupt, escalation, stale, jump, multi_leg];
    assert!(
        counts.iter().all(|c| *c > 0),
        "partial, full, bankrupt, escalation, stale, jump, multi-leg: {counts:?}"
    );
}
