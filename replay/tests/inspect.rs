//! `replay::inspect` against the reference model: at every sequence of
//! every scenario, every account's terms (per balance `c_a`, per position
//! `V`, `N`, tier, `MMraw`, `IMraw`, `f`, `MM`, `IM`) and figures (`E`,
//! `U`, `MM`, `IM`) equal the reference model's at that sequence.

mod common;

use common::{limits, scenario, scenario_events, scenario_names};
use engine::reference::ReferenceEngine;
use engine::{AccountId, MarginEngine, Seq, UnixNanos, VecSink};
use replay::input::Input;
use replay::inspect::{inspect, At, State};
use replay::progress::Progress;

#[test]
fn inspect_terms_equal_the_reference_model_at_every_sequence() {
    let mut checked = 0;
    for name in scenario_names() {
        let events = scenario_events(&name);
        let input = Input::open(&scenario(&name));
        let mut model = ReferenceEngine::new(limits());
        for (i, event) in events.iter().enumerate() {
            let seq = Seq(i as u64 + 1);
            let _ = model.apply(seq, event, &mut VecSink::default());
            for id in model.account_ids() {
                let seen = inspect(
                    &input,
                    id,
                    At::Seq(seq),
                    5,
                    limits(),
                    &mut Progress::hidden(),
                )
                .expect("inspect runs");
                let context = format!("{name} seq {seq} account {id}");
                assert_eq!(seen.seq, Some(seq), "{context}");
                assert_eq!(seen.figures, model.figures(id), "{context}");
                let detail = seen.detail.expect("the account exists");
                for b in &detail.balances {
                    let expected = model.collateral_term(id, b.asset);
                    assert_eq!(b.collateral, expected, "{context} asset {}", b.asset);
                }
                for p in &detail.positions {
                    assert_eq!(
                        p.figures,
                        model.position_terms(id, p.instrument),
                        "{context} instrument {}",
                        p.instrument
                    );
                    assert_eq!(
                        Some(p.market.vol_factor),
                        model.vol_factor(p.instrument),
                        "{context}"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} account moments checked");
}

#[test]
fn the_worked_example_reads_as_margin_md_says() {
    let input = Input::open(&scenario("worked_example"));
    let events = scenario_events("worked_example");
    // The moment just before the liquidating mark, and at it.
    let last = Seq(events.len() as u64);
    let before = inspect(
        &input,
        AccountId(7),
        At::Seq(Seq(last.0 - 1)),
        10,
        limits(),
        &mut Progress::hidden(),
    )
    .expect("inspect");
    let at = inspect(
        &input,
        AccountId(7),
        At::Seq(last),
        10,
        limits(),
        &mut Progress::hidden(),
    )
    .expect("inspect");
    let text = at.to_string();
    let json = at.to_json();
    assert_eq!(json["equity"], "246.75", "{text}");
    assert_eq!(json["maint_margin"], "259.25", "{text}");
    assert_eq!(json["initial_margin"], "737", "{text}");
    assert_eq!(json["positions"][0]["tier"], 2, "{text}");
    assert_eq!(at.state, State::CoolingDown, "{text}");
    assert_eq!(at.health, Some(State::Liquidatable));
    assert_eq!(at.outputs.len(), 1, "the liquidation: {text}");
    assert!(before.outputs.is_empty());
    assert_eq!(before.state, State::AtRisk, "{before}");
    // By time: the same moment as by sequence.
    let ts = events[events.len() - 1].ts();
    let by_time = inspect(
        &input,
        AccountId(7),
        At::Time(ts),
        10,
        limits(),
        &mut Progress::hidden(),
    )
    .expect("inspect");
    assert_eq!(by_time, at);
    let early = inspect(
        &input,
        AccountId(7),
        At::Time(UnixNanos(0)),
        10,
        limits(),
        &mut Progress::hidden(),
    )
    .expect("inspect");
    assert_eq!(early.state, State::Absent);
}
