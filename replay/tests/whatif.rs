//! `replay::whatif`: unchanged definitions make no difference; known
//! changes add, remove and change exactly the expected liquidations; the
//! isolated model liquidates a silo where cross margin does not.

mod common;

use common::{events, limits, scenario, scenario_names, write_journal};
use engine::{AccountId, Dec8, InstrumentId, Seq};
use replay::input::Input;
use replay::overrides::Overrides;
use replay::progress::Progress;
use replay::whatif::{whatif, MarginMode, WhatIfReport};

fn run(input: &Input, keys: &[&str], mode: MarginMode) -> WhatIfReport {
    let overrides = Overrides::parse(keys.iter().copied()).expect("valid overrides");
    whatif(input, overrides, mode, limits(), &mut Progress::hidden()).expect("whatif runs")
}

fn keys(list: &[replay::whatif::LiquidationRecord]) -> Vec<(u64, u64)> {
    list.iter()
        .map(|r| (r.liquidation.account.0, r.liquidation.seq.0))
        .collect()
}

#[test]
fn unchanged_definitions_make_no_difference_on_any_scenario() {
    for name in scenario_names() {
        let input = Input::open(&scenario(&name));
        for overrides in [
            &[][..],
            &["instrument.*.mmr_scale=1", "instrument.*.imr_scale=1"][..],
        ] {
            let report = run(&input, overrides, MarginMode::Cross);
            assert!(report.no_difference(), "{name} {overrides:?}: {report}");
            assert_eq!(report.base, report.changed_run, "{name}");
            assert!(report.accounts_affected.is_empty());
        }
    }
}

#[test]
fn a_lower_haircut_weight_liquidates_one_mark_earlier() {
    let input = Input::open(&scenario("worked_example"));
    let report = run(&input, &["asset.ETH.weight=0.5"], MarginMode::Cross);
    assert_eq!(report.rewritten_events, 1, "{report}");
    assert!(report.unmatched_overrides.is_empty());
    // ETH counts 1500 instead of 2400: at mark 61900 (seq 9) E < 0 < MM;
    // the cooldown then covers seq 10, where the base liquidated.
    assert_eq!(keys(&report.added), [(7, 9)], "{report}");
    assert_eq!(keys(&report.removed), [(7, 10)], "{report}");
    assert!(report.changed.is_empty());
    assert_eq!(report.accounts_affected, [AccountId(7)]);
    let added = &report.added[0];
    assert_eq!(added.liquidation.equity, Dec8::parse("-603.25").unwrap());
    assert_eq!(
        added.notional,
        Dec8::parse("61900").unwrap(),
        "a full close: {report}"
    );
    assert_eq!(report.base.liquidations, 1);
    assert_eq!(report.changed_run.liquidations, 1);
}

#[test]
fn partial_off_changes_the_legs_of_the_same_liquidation() {
    let input = Input::open(&scenario("worked_example"));
    let report = run(&input, &["params.partial=false"], MarginMode::Cross);
    assert!(
        report.added.is_empty() && report.removed.is_empty(),
        "{report}"
    );
    assert_eq!(report.changed.len(), 1);
    let (before, after) = &report.changed[0];
    assert_eq!(before.legs[0].qty, Dec8::parse("-0.66783437").unwrap());
    assert_eq!(after.legs[0].qty, Dec8::parse("-1").unwrap());
    assert!(before.liquidation.partial && !after.liquidation.partial);
    assert_eq!(after.notional, Dec8::parse("61850").unwrap());
    assert_eq!(report.changed_run.notional, Dec8::parse("61850").unwrap());
}

#[test]
fn a_definition_the_engine_refuses_is_reported_as_rejected() {
    let input = Input::open(&scenario("worked_example"));
    let report = run(
        &input,
        &["instrument.BTC-PERP.imr_scale=200"],
        MarginMode::Cross,
    );
    // The definition is refused, and so is every later event naming it.
    assert!(
        report.changed_run.rejected > report.base.rejected,
        "{report}"
    );
    assert_eq!(keys(&report.removed), [(7, 10)]);
    assert!(report.to_string().contains("more rejected events"));
}

#[test]
fn params_and_risk_are_injected_when_the_history_has_none() {
    // No params event, no risk params: a 0 ns cooldown and a jump guard
    // need both injected.
    let history = events(
        r#"
{"type":"instrument","ts":0,"instrument":1,"symbol":"X","multiplier":"1","liquidation_fee":"0.001","tiers":[{"notional_floor":"0","mmr":"0.05","imr":"0.1"}]}
{"type":"balance","ts":1,"account":1,"asset":0,"amount":"100","kind":"deposit","ref_id":1}
{"type":"mark","ts":2,"instrument":1,"price":"100"}
{"type":"fill","ts":3,"account":1,"instrument":1,"qty":"10","price":"100","fee":"0","fill_id":1}
{"type":"mark","ts":4,"instrument":1,"price":"85"}
"#,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    write_journal(dir.path(), &history);
    let input = Input::Journal(dir.path().to_path_buf());
    let base = run(&input, &[], MarginMode::Cross);
    assert_eq!(base.base.liquidations, 1, "{base}");
    // A 10 % jump guard holds the 15 % drop: no liquidation.
    let guarded = run(&input, &["risk.X.max_jump=0.1"], MarginMode::Cross);
    assert_eq!(guarded.injected_events, 1);
    assert_eq!(keys(&guarded.removed), [(1, 5)], "{guarded}");
    assert_eq!(guarded.changed_run.halts, 1);
    let params = run(&input, &["params.cooldown_ns=0"], MarginMode::Cross);
    assert_eq!(params.injected_events, 1);
    assert!(params.no_difference());
}

#[test]
fn isolated_silos_liquidate_where_cross_margin_does_not() {
    // One account, two positions: A falls 8 %, B rises 10 %. Cross: the
    // gain on B covers the loss on A. Isolated: A's silo was funded with
    // A's IM (100) only, and 100 − 80 < MM 46.
    let history = events(
        r#"
{"type":"instrument","ts":0,"instrument":1,"symbol":"A","multiplier":"1","liquidation_fee":"0.001","tiers":[{"notional_floor":"0","mmr":"0.05","imr":"0.1"}]}
{"type":"instrument","ts":0,"instrument":2,"symbol":"B","multiplier":"1","liquidation_fee":"0.001","tiers":[{"notional_floor":"0","mmr":"0.05","imr":"0.1"}]}
{"type":"balance","ts":1,"account":9,"asset":0,"amount":"300","kind":"deposit","ref_id":1}
{"type":"mark","ts":2,"instrument":1,"price":"100"}
{"type":"mark","ts":2,"instrument":2,"price":"100"}
{"type":"fill","ts":3,"account":9,"instrument":1,"qty":"10","price":"100","fee":"0","fill_id":1}
{"type":"fill","ts":3,"account":9,"instrument":2,"qty":"10","price":"100","fee":"0","fill_id":2}
{"type":"mark","ts":4,"instrument":2,"price":"110"}
{"type":"mark","ts":5,"instrument":1,"price":"92"}
"#,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    write_journal(dir.path(), &history);
    let input = Input::Journal(dir.path().to_path_buf());
    let report = run(&input, &[], MarginMode::Isolated);
    let isolated = report.isolated.as_ref().expect("isolated report");
    assert_eq!(isolated.cross_liquidations, 0, "{report}");
    assert_eq!(isolated.isolated_liquidations, 1, "{report}");
    let silo = isolated.liquidations[0];
    assert_eq!(
        (silo.account, silo.instrument, silo.seq),
        (AccountId(9), InstrumentId(1), Seq(9))
    );
    assert_eq!(silo.equity, Dec8::parse("20").unwrap());
    assert_eq!(silo.maint_margin, Dec8::parse("46").unwrap());
    assert_eq!(silo.notional, Dec8::parse("920").unwrap());
    assert_eq!(silo.shortfall, Dec8::ZERO);
    assert_eq!(isolated.only_isolated, [AccountId(9)]);
    let text = report.to_string();
    assert!(text.contains("isolated"), "{text}");
}

#[test]
fn a_silo_is_funded_with_what_the_pool_has_when_it_has_less_than_im() {
    // 150 deposited: A's silo takes its IM of 100, B's gets the 50 left
    // (IM 100). B falling 1 %: 50 − 10 = 40 < MM 49.5 → B's silo goes;
    // cross: E 140 against MM 99.5, healthy.
    let history = events(
        r#"
{"type":"instrument","ts":0,"instrument":1,"symbol":"A","multiplier":"1","liquidation_fee":"0.001","tiers":[{"notional_floor":"0","mmr":"0.05","imr":"0.1"}]}
{"type":"instrument","ts":0,"instrument":2,"symbol":"B","multiplier":"1","liquidation_fee":"0.001","tiers":[{"notional_floor":"0","mmr":"0.05","imr":"0.1"}]}
{"type":"balance","ts":1,"account":3,"asset":0,"amount":"150","kind":"deposit","ref_id":1}
{"type":"mark","ts":2,"instrument":1,"price":"100"}
{"type":"mark","ts":2,"instrument":2,"price":"100"}
{"type":"fill","ts":3,"account":3,"instrument":1,"qty":"10","price":"100","fee":"0","fill_id":1}
{"type":"fill","ts":3,"account":3,"instrument":2,"qty":"10","price":"100","fee":"0","fill_id":2}
{"type":"mark","ts":4,"instrument":2,"price":"99"}
"#,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    write_journal(dir.path(), &history);
    let report = run(
        &Input::Journal(dir.path().to_path_buf()),
        &[],
        MarginMode::Isolated,
    );
    let isolated = report.isolated.as_ref().expect("isolated report");
    assert_eq!(isolated.cross_liquidations, 0, "{report}");
    assert_eq!(isolated.liquidations.len(), 1, "{report}");
    let silo = isolated.liquidations[0];
    assert_eq!((silo.instrument, silo.seq), (InstrumentId(2), Seq(8)));
    assert_eq!(silo.equity, Dec8::parse("40").unwrap());
    assert_eq!(silo.maint_margin, Dec8::parse("49.5").unwrap());
    assert_eq!(silo.qty, Dec8::parse("-10").unwrap());
    assert_eq!(isolated.shortfall, Dec8::ZERO);
}

#[test]
fn an_override_that_matches_nothing_is_reported() {
    let input = Input::open(&scenario("worked_example"));
    let report = run(
        &input,
        &[
            "asset.SOL.weight=0.5",
            "instrument.BTC-PERP.liquidation_fee=0.002",
        ],
        MarginMode::Cross,
    );
    assert_eq!(report.unmatched_overrides, ["asset.SOL.weight=0.5"]);
    assert!(report
        .to_string()
        .contains("no definition in the history matches `asset.SOL.weight=0.5`"));
}

/// A seeded history with two instruments (one with a vol factor and a jump
/// guard), funding, fills that open, add to, reduce and close positions,
/// deposits and withdrawals, and a mark walk with 1 % steps.
fn busy_history(seed: u64) -> Vec<engine::Event> {
    let mut x = seed | 1;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut lines = vec![
        r#"{"type":"params","ts":0,"partial_liquidation":true,"liquidation_cooldown_ns":10,"warn_ratio":"1.25"}"#.to_owned(),
        r#"{"type":"instrument","ts":0,"instrument":1,"symbol":"A","multiplier":"1","liquidation_fee":"0.001","tiers":[{"notional_floor":"0","mmr":"0.02","imr":"0.05"},{"notional_floor":"5000","mmr":"0.04","imr":"0.1"}]}"#.to_owned(),
        r#"{"type":"instrument","ts":0,"instrument":2,"symbol":"B","multiplier":"0.5","liquidation_fee":"0.002","tiers":[{"notional_floor":"0","mmr":"0.03","imr":"0.06"}]}"#.to_owned(),
        r#"{"type":"risk","ts":0,"instrument":2,"vol_lambda":"0.9","vol_ref":"0.005","vol_max_factor":"3","max_staleness_ns":0,"max_jump":"0.025"}"#.to_owned(),
    ];
    let mut marks = [100_000i64, 40_000i64]; // hundredths
    let mut ts = 1u64;
    for (i, mark) in marks.iter().enumerate() {
        lines.push(format!(
            r#"{{"type":"mark","ts":{ts},"instrument":{},"price":"{}.{:02}"}}"#,
            i + 1,
            mark / 100,
            mark % 100
        ));
    }
    for step in 0..3000u64 {
        ts += 1;
        let roll = next(100);
        let line = if roll < 70 {
            let i = next(2) as usize;
            let delta = (next(201) as i64 - 100) * marks[i] / 10_000; // ±1 %
            marks[i] = (marks[i] + delta).max(100);
            format!(
                r#"{{"type":"mark","ts":{ts},"instrument":{},"price":"{}.{:02}"}}"#,
                i + 1,
                marks[i] / 100,
                marks[i] % 100
            )
        } else if roll < 90 {
            let i = next(2) as usize;
            let qty = next(41) as i64 - 20;
            if qty == 0 {
                continue;
            }
            format!(
                r#"{{"type":"fill","ts":{ts},"account":{},"instrument":{},"qty":"{qty}","price":"{}.{:02}","fee":"0.1","fill_id":{step}}}"#,
                next(30),
                i + 1,
                marks[i] / 100,
                marks[i] % 100
            )
        } else if roll < 98 {
            let amount = next(3000) as i64 - 500;
            format!(
                r#"{{"type":"balance","ts":{ts},"account":{},"asset":0,"amount":"{amount}","kind":"adjustment","ref_id":{step}}}"#,
                next(30)
            )
        } else {
            format!(
                r#"{{"type":"funding","ts":{ts},"instrument":{},"rate":"0.001"}}"#,
                next(2) + 1
            )
        };
        lines.push(line);
    }
    events(&lines.join("\n"))
}

#[test]
fn the_trigger_index_finds_every_silo_liquidation_the_full_scan_finds() {
    let mut total = 0;
    for seed in [1u64, 7, 42, 1234, 99_991] {
        let dir = tempfile::tempdir().expect("tempdir");
        write_journal(dir.path(), &busy_history(seed));
        let input = Input::Journal(dir.path().to_path_buf());
        let indexed = replay::isolated::silo_liquidations(&input, limits(), false).expect("runs");
        let plain = replay::isolated::silo_liquidations(&input, limits(), true).expect("runs");
        assert_eq!(indexed, plain, "seed {seed}");
        total += plain.len();
    }
    assert!(
        total >= 20,
        "only {total} silo liquidations: the histories are too calm"
    );
}
