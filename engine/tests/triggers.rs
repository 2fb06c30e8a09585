//! The trigger index against the plain per-holder revaluation: the same
//! engine in `EvaluationMode::Triggers` (with every split strategy) and in
//! `EvaluationMode::AllHolders` must accept the same events, emit the same
//! outputs and report the same figures after every event. Debug builds also
//! assert the trigger invariant inside the engine after every event.

mod common;

use engine::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

fn config(mode: EvaluationMode, split: SplitStrategy) -> EngineConfig {
    EngineConfig {
        mode,
        split,
        ..EngineConfig::default()
    }
}

const SPLITS: [SplitStrategy; 3] = [
    SplitStrategy::Equal,
    SplitStrategy::Notional,
    SplitStrategy::NotionalVol,
];

/// Runs the plain engine and the trigger engines side by side; returns the
/// outputs and each trigger engine's stats, or the first divergence.
fn run_modes(events: &[Event]) -> Result<(Vec<Output>, Vec<TriggerStats>), String> {
    let mut plain = Engine::with_config(
        Limits::default(),
        config(EvaluationMode::AllHolders, SplitStrategy::Equal),
    );
    let mut fast: Vec<Engine> = SPLITS
        .iter()
        .map(|s| Engine::with_config(Limits::default(), config(EvaluationMode::Triggers, *s)))
        .collect();
    let mut all = Vec::new();
    for (n, event) in events.iter().enumerate() {
        let seq = Seq(n as u64 + 1);
        let mut expected = VecSink::default();
        let accepted = plain.apply(seq, event, &mut expected).is_ok();
        for (engine, split) in fast.iter_mut().zip(SPLITS) {
            let mut got = VecSink::default();
            let ok = engine.apply(seq, event, &mut got).is_ok();
            if ok != accepted {
                return Err(format!(
                    "seq {}: {event:?} accepted {ok} vs {accepted}",
                    n + 1
                ));
            }
            if got.outputs != expected.outputs {
                return Err(format!(
                    "seq {} ({split:?}): {event:?}\n triggers:    {:?}\n all holders: {:?}",
                    n + 1,
                    got.outputs,
                    expected.outputs
                ));
            }
            for id in plain.account_ids() {
                if engine.figures(id) != plain.figures(id) {
                    return Err(format!("seq {}: account {id} figures differ", n + 1));
                }
            }
        }
        all.extend(expected.outputs);
    }
    for engine in &fast {
        // (Once per stream: hashing walks the id tables' whole capacity.)
        if engine.state_hash() != plain.state_hash() {
            return Err("final state hashes differ".to_string());
        }
        if engine.stats() != plain.stats() {
            return Err(format!("stats {:?} vs {:?}", engine.stats(), plain.stats()));
        }
    }
    Ok((all, fast.iter().map(Engine::trigger_stats).collect()))
}

proptest! {
    #[test]
    fn triggers_match_all_holders_on_venue_streams(events in common::stream()) {
        if let Err(divergence) = run_modes(&events) {
            prop_assert!(false, "{}", divergence);
        }
    }

    #[test]
    fn triggers_match_all_holders_on_trigger_streams(events in common::trigger_stream()) {
        if let Err(divergence) = run_modes(&events) {
            prop_assert!(false, "{}", divergence);
        }
    }
}

/// The adversarial generator must actually cross triggers and liquidate,
/// or the comparison above proves little.
#[test]
fn trigger_streams_cross_triggers_and_liquidate() {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let strategy = common::trigger_stream();
    let (mut liquidations, mut crossed, mut rearms, mut marks) = (0usize, 0u64, 0u64, 0usize);
    let mut sweeps = 0;
    let mut factor_crossed = 0;
    for _ in 0..32 {
        let events = strategy.new_tree(&mut runner).unwrap().current();
        marks += events
            .iter()
            .filter(|e| matches!(e, Event::Mark(_)))
            .count();
        let (outputs, stats) = run_modes(&events).unwrap();
        liquidations += outputs
            .iter()
            .filter(|o| matches!(o, Output::Liquidation(..)))
            .count();
        crossed += stats[2].crossed;
        factor_crossed += stats[1].factor_crossed;
        sweeps += stats[2].holder_sweeps;
        rearms += stats[2].rearms;
    }
    eprintln!("liquidations {liquidations}, crossed {crossed} (vol factor {factor_crossed}), rearms {rearms}, marks {marks}, sweeps {sweeps}");
    assert!(
        factor_crossed > 20,
        "vol-factor triggers crossed: {factor_crossed}"
    );
    assert!(liquidations > 100, "liquidations {liquidations}");
    assert!(crossed > 150, "crossed {crossed} over {marks} marks");
    assert!(rearms > crossed, "rearms {rearms}");
}

fn d(text: &str) -> Fixed8 {
    Fixed8::parse(text).unwrap()
}

/// A book of accounts with positions; `mark` ticks around the entry price.
fn book(accounts: u64, config: EngineConfig) -> Engine {
    let mut engine = Engine::with_config(Limits::default(), config);
    let mut sink = CountingSink::default();
    let mut seq = 0;
    let mut apply = |engine: &mut Engine, event: Event| {
        seq += 1;
        engine.apply(Seq(seq), &event, &mut sink).unwrap();
    };
    let tiers = Tiers::from_slice(&[
        Tier {
            notional_floor: d("0"),
            mmr: d("0.005"),
            imr: d("0.01"),
        },
        Tier {
            notional_floor: d("100000"),
            mmr: d("0.01"),
            imr: d("0.02"),
        },
    ]);
    apply(
        &mut engine,
        Event::InstrumentDef(InstrumentDef {
            ts: UnixNanos(0),
            instrument: InstrumentId(1),
            symbol: Symbol::new("BTC-PERP").unwrap(),
            multiplier: d("1"),
            liquidation_fee: d("0.001"),
            tiers,
        }),
    );
    apply(
        &mut engine,
        Event::Mark(MarkPrice {
            ts: UnixNanos(1),
            instrument: InstrumentId(1),
            price: d("50000"),
        }),
    );
    for a in 0..accounts {
        // Leverage from 5× to 100×: deposits 500..10000 for 1 BTC.
        let deposit = 500 + (a % 20) * 500;
        apply(
            &mut engine,
            Event::Balance(BalanceChange {
                ts: UnixNanos(2),
                account: AccountId(a),
                asset: AssetId(0),
                amount: Fixed8(deposit as i64 * 100_000_000),
                kind: BalanceKind::Deposit,
                ref_id: a,
            }),
        );
        apply(
            &mut engine,
            Event::Fill(Fill {
                ts: UnixNanos(3),
                account: AccountId(a),
                instrument: InstrumentId(1),
                qty: if a % 2 == 0 { d("1") } else { d("-1") },
                price: d("50000"),
                fee: d("0"),
                fill_id: a,
            }),
        );
    }
    engine
}

/// Quiet ticks (a few dollars around the entry price) cross no trigger
/// once the book is armed: they evaluate no account at all.
#[test]
fn quiet_ticks_evaluate_nobody() {
    let mut engine = book(200, EngineConfig::default());
    let before = engine.trigger_stats();
    let mut sink = CountingSink::default();
    for n in 0..1000u64 {
        let price = Fixed8((50_000 * 100_000_000) + ((n % 7) as i64 - 3) * 100_000_000);
        engine
            .apply(
                Seq(1000 + n),
                &Event::Mark(MarkPrice {
                    ts: UnixNanos(10 + n),
                    instrument: InstrumentId(1),
                    price,
                }),
                &mut sink,
            )
            .unwrap();
    }
    let after = engine.trigger_stats();
    assert_eq!(after.crossed, before.crossed);
    assert_eq!(after.evaluations, before.evaluations);
    assert_eq!(sink.liquidations, 0);
    assert!(engine.armed_triggers() >= 200);
}

/// A fall crosses the longs' triggers in order of their leverage and
/// liquidates exactly the accounts the plain revaluation liquidates.
#[test]
fn a_fall_liquidates_like_the_plain_engine() {
    for split in SPLITS {
        let mut fast = book(400, config(EvaluationMode::Triggers, split));
        let mut plain = book(400, config(EvaluationMode::AllHolders, split));
        for n in 0..300u64 {
            let price = Fixed8((50_000 - 20 * n as i64) * 100_000_000);
            let event = Event::Mark(MarkPrice {
                ts: UnixNanos(10 + n),
                instrument: InstrumentId(1),
                price,
            });
            let (mut a, mut b) = (VecSink::default(), VecSink::default());
            fast.apply(Seq(1000 + n), &event, &mut a).unwrap();
            plain.apply(Seq(1000 + n), &event, &mut b).unwrap();
            assert_eq!(a.outputs, b.outputs);
        }
        assert!(fast.stats().liquidations > 50);
        let (t, p) = (fast.trigger_stats(), plain.trigger_stats());
        assert!(
            t.evaluations * 10 < p.evaluations,
            "{split:?}: {t:?} vs {p:?}"
        );
    }
}
