//! The reference model against the shared conformance cases and the
//! worked examples of MARGIN.md, plus hand-computed scenarios.

use serde_json::Value;

use super::exact::{cum_amount, dec, floor2, mmr, round16, round8, vol_factor, Rat};
use super::plan::{plan, PlanLeg};
use super::ReferenceEngine;
use crate::types::*;
use crate::{Limits, MarginEngine};

// ----- a small JSONL reader (PROTOCOL.md §5), for tests only -----

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing string {key} in {v}"))
}

fn uint(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("missing integer {key} in {v}"))
}

fn id32(v: &Value, key: &str) -> u32 {
    u32::try_from(uint(v, key)).unwrap_or_else(|_| panic!("{key} out of range in {v}"))
}

fn flag(v: &Value, key: &str) -> bool {
    v[key]
        .as_bool()
        .unwrap_or_else(|| panic!("missing boolean {key} in {v}"))
}

fn fixed8(v: &Value, key: &str) -> Fixed8 {
    Fixed8::parse(text(v, key)).unwrap_or_else(|e| panic!("{key}: {e} in {v}"))
}

fn dec8(v: &Value, key: &str) -> Dec8 {
    Dec8::parse(text(v, key)).unwrap_or_else(|e| panic!("{key}: {e} in {v}"))
}

fn ts(v: &Value) -> UnixNanos {
    UnixNanos(uint(v, "ts"))
}

fn parse_event(line: &str) -> Event {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    match text(&v, "type") {
        "asset" => Event::AssetDef(AssetDef {
            ts: ts(&v),
            asset: AssetId(id32(&v, "asset")),
            symbol: Symbol::new(text(&v, "symbol")).unwrap_or_else(|e| panic!("{e}")),
            asset_weight: fixed8(&v, "asset_weight"),
            liability_weight: fixed8(&v, "liability_weight"),
        }),
        "instrument" => {
            let list: Vec<Tier> = v["tiers"]
                .as_array()
                .unwrap_or_else(|| panic!("tiers in {line}"))
                .iter()
                .map(|t| Tier {
                    notional_floor: fixed8(t, "notional_floor"),
                    mmr: fixed8(t, "mmr"),
                    imr: fixed8(t, "imr"),
                })
                .collect();
            Event::InstrumentDef(InstrumentDef {
                ts: ts(&v),
                instrument: InstrumentId(id32(&v, "instrument")),
                symbol: Symbol::new(text(&v, "symbol")).unwrap_or_else(|e| panic!("{e}")),
                multiplier: fixed8(&v, "multiplier"),
                liquidation_fee: fixed8(&v, "liquidation_fee"),
                tiers: Tiers::from_slice(&list),
            })
        }
        "params" => Event::Params(EngineParams {
            ts: ts(&v),
            partial_liquidation: flag(&v, "partial_liquidation"),
            liquidation_cooldown_ns: uint(&v, "liquidation_cooldown_ns"),
            warn_ratio: fixed8(&v, "warn_ratio"),
        }),
        "risk" => Event::Risk(RiskParams {
            ts: ts(&v),
            instrument: InstrumentId(id32(&v, "instrument")),
            vol_lambda: fixed8(&v, "vol_lambda"),
            vol_ref: fixed8(&v, "vol_ref"),
            vol_max_factor: fixed8(&v, "vol_max_factor"),
            max_staleness_ns: uint(&v, "max_staleness_ns"),
            max_jump: fixed8(&v, "max_jump"),
        }),
        "index" => Event::Index(IndexPrice {
            ts: ts(&v),
            asset: AssetId(id32(&v, "asset")),
            price: fixed8(&v, "price"),
        }),
        "mark" => Event::Mark(MarkPrice {
            ts: ts(&v),
            instrument: InstrumentId(id32(&v, "instrument")),
            price: fixed8(&v, "price"),
        }),
        "fill" => Event::Fill(Fill {
            ts: ts(&v),
            account: AccountId(uint(&v, "account")),
            instrument: InstrumentId(id32(&v, "instrument")),
            qty: fixed8(&v, "qty"),
            price: fixed8(&v, "price"),
            fee: fixed8(&v, "fee"),
            fill_id: uint(&v, "fill_id"),
        }),
        "balance" => Event::Balance(BalanceChange {
            ts: ts(&v),
            account: AccountId(uint(&v, "account")),
            asset: AssetId(id32(&v, "asset")),
            amount: fixed8(&v, "amount"),
            kind: BalanceKind::from_name(text(&v, "kind"))
                .unwrap_or_else(|| panic!("kind in {line}")),
            ref_id: uint(&v, "ref_id"),
        }),
        "funding" => Event::Funding(Funding {
            ts: ts(&v),
            instrument: InstrumentId(id32(&v, "instrument")),
            rate: fixed8(&v, "rate"),
        }),
        other => panic!("unknown event type {other}"),
    }
}

fn parse_output(line: &str) -> Output {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    match text(&v, "type") {
        "halt" => Output::Halt(Halt {
            ts: ts(&v),
            seq: Seq(uint(&v, "seq")),
            instrument: InstrumentId(id32(&v, "instrument")),
            reason: HaltReason::from_name(text(&v, "reason"))
                .unwrap_or_else(|| panic!("reason in {line}")),
            on: flag(&v, "on"),
        }),
        "liquidation" => {
            let legs = v["legs"]
                .as_array()
                .unwrap_or_else(|| panic!("legs in {line}"))
                .iter()
                .map(|leg| Leg {
                    instrument: InstrumentId(id32(leg, "instrument")),
                    qty: dec8(leg, "qty"),
                    limit_price: dec8(leg, "limit_price"),
                })
                .collect();
            Output::Liquidation(
                Liquidation {
                    ts: ts(&v),
                    seq: Seq(uint(&v, "seq")),
                    account: AccountId(uint(&v, "account")),
                    equity: dec8(&v, "equity"),
                    maint_margin: dec8(&v, "maint_margin"),
                    partial: flag(&v, "partial"),
                    bankrupt: flag(&v, "bankrupt"),
                    escalation: flag(&v, "escalation"),
                },
                legs,
            )
        }
        other => panic!("unknown output type {other}"),
    }
}

/// Feeds JSONL events (seq = 1-based line number) and collects outputs.
fn run(engine: &mut ReferenceEngine, jsonl: &str) -> (Vec<Output>, Vec<bool>) {
    let mut sink = VecSink::default();
    let mut accepted = Vec::new();
    for (n, line) in jsonl.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let seq = Seq(n as u64 + 1);
        accepted.push(engine.apply(seq, &parse_event(line), &mut sink).is_ok());
    }
    (sink.outputs, accepted)
}

fn run_fresh(jsonl: &str) -> (ReferenceEngine, Vec<Output>) {
    let mut engine = ReferenceEngine::new(Limits::default());
    let (outputs, _) = run(&mut engine, jsonl);
    (engine, outputs)
}

// ----- the shared conformance cases (copied verbatim into testdata/scenarios) -----

fn check_case(name: &str) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/scenarios");
    let read = |file: String| {
        std::fs::read_to_string(format!("{dir}/{file}"))
            .unwrap_or_else(|e| panic!("{dir}/{file}: {e}"))
    };
    let input = read(format!("{name}.jsonl"));
    let expected: Vec<Output> = read(format!("{name}.expected.jsonl"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_output)
        .collect();
    let (engine, outputs) = run_fresh(&input);
    assert_eq!(outputs, expected, "case {name}");
    assert_eq!(engine.stats().events_rejected, 0, "case {name}");
}

#[test]
fn case_worked_example() {
    check_case("worked_example");
}

#[test]
fn case_multi_leg_plan() {
    check_case("multi_leg_plan");
}

#[test]
fn case_cooldown_escalation() {
    check_case("cooldown_escalation");
}

#[test]
fn case_jump_confirmed() {
    check_case("jump_confirmed");
}

#[test]
fn case_vol_factor() {
    check_case("vol_factor");
}

// ----- exact arithmetic -----

fn r(text: &str) -> Rat {
    dec(Dec8::parse(text).unwrap_or_else(|e| panic!("{e}: {text}")))
}

/// `n / 10^places` exactly.
fn small(n: i64, places: u32) -> Rat {
    Rat::new(n.into(), super::exact::pow10(places))
}

#[test]
fn round8_is_half_even() {
    assert_eq!(round8(&small(5, 9)), r("0"));
    assert_eq!(round8(&small(15, 9)), r("0.00000002"));
    assert_eq!(round8(&small(25, 9)), r("0.00000002"));
    assert_eq!(round8(&small(51, 10)), r("0.00000001"));
    assert_eq!(round8(&small(49, 10)), r("0"));
    assert_eq!(round8(&small(-5, 9)), r("0"));
    assert_eq!(round8(&small(-15, 9)), r("-0.00000002"));
    assert_eq!(round8(&small(-25, 9)), r("-0.00000002"));
    assert_eq!(round8(&small(-51, 10)), r("-0.00000001"));
    assert_eq!(round8(&small(1_234_567_895, 9)), r("1.2345679"));
    assert_eq!(round8(&small(1_234_567_885, 9)), r("1.23456788"));
    assert_eq!(round8(&r("65000.125")), r("65000.125"));
    // round16 likewise, at 16 places.
    assert_eq!(round16(&small(5, 17)), small(0, 0));
    assert_eq!(round16(&small(15, 17)), small(2, 16));
    // floor2 goes toward −∞.
    assert_eq!(floor2(&r("1.419")), r("1.41"));
    assert_eq!(floor2(&r("-1.411")), r("-1.42"));
}

#[test]
fn vol_factor_is_exact() {
    // var 0.0002, σ_ref 0.01: sqrt = 0.014142…, / 0.01 = 1.4142… → 1.41.
    let f = |var: &str, vol_ref: &str, cap: &str| {
        vol_factor(
            &r(var),
            Fixed8::parse(vol_ref).unwrap(),
            Fixed8::parse(cap).unwrap(),
        )
    };
    assert_eq!(f("0.0002", "0.01", "3"), r("1.41"));
    assert_eq!(f("0", "0.01", "3"), r("1"));
    assert_eq!(f("0.00005", "0.01", "3"), r("1"), "below 1 is lifted to 1");
    assert_eq!(f("1", "0.01", "2.5"), r("2.5"), "capped");
    // An exact square: var 0.0004 → sqrt 0.02 → exactly 2.
    assert_eq!(f("0.0004", "0.01", "3"), r("2"));
    // Just under a square at 16 places: 0.0003999999999999 → 1.99.
    let just_under = r("0.0004") - small(1, 16);
    assert_eq!(
        vol_factor(
            &just_under,
            Fixed8::parse("0.01").unwrap(),
            Fixed8::parse("3").unwrap()
        ),
        r("1.99")
    );
}

// ----- MARGIN.md §8, the worked example -----

const WORKED_SETUP: &str = r#"
{"type":"instrument","ts":0,"instrument":1,"symbol":"BTC-PERP","multiplier":"1","liquidation_fee":"0.001","tiers":[{"notional_floor":"0","mmr":"0.004","imr":"0.01"},{"notional_floor":"50000","mmr":"0.005","imr":"0.02"}]}
{"type":"asset","ts":0,"asset":1,"symbol":"ETH","asset_weight":"0.8","liability_weight":"1.2"}
{"type":"balance","ts":1,"account":7,"asset":0,"amount":"1000","kind":"deposit","ref_id":1}
{"type":"balance","ts":2,"account":7,"asset":1,"amount":"1","kind":"deposit","ref_id":2}
{"type":"index","ts":3,"asset":1,"price":"3000"}
{"type":"mark","ts":4,"instrument":1,"price":"65000"}
{"type":"fill","ts":5,"account":7,"instrument":1,"qty":"1","price":"65000","fee":"3.25","fill_id":1}
"#;

fn figures_of(engine: &ReferenceEngine, account: u64) -> crate::Figures {
    engine
        .figures(AccountId(account))
        .unwrap_or_else(|| panic!("account {account} has figures"))
}

fn d(text: &str) -> Dec8 {
    Dec8::parse(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn worked_example_figures_and_plan() {
    let (mut engine, outputs) = run_fresh(WORKED_SETUP);
    assert!(outputs.is_empty());
    let f = figures_of(&engine, 7);
    assert_eq!(
        (f.equity, f.maint_margin, f.initial_margin),
        (d("3396.75"), d("275"), d("800"))
    );
    assert_eq!(f.value, d("3996.75"));

    let (outputs, _) = run(
        &mut engine,
        r#"{"type":"mark","ts":6,"instrument":1,"price":"61900"}"#,
    );
    assert!(outputs.is_empty());
    let f = figures_of(&engine, 7);
    assert_eq!((f.equity, f.maint_margin), (d("296.75"), d("259.5")));

    let (outputs, _) = run(
        &mut engine,
        r#"{"type":"mark","ts":7,"instrument":1,"price":"61850"}"#,
    );
    let f = figures_of(&engine, 7);
    assert_eq!(
        (f.equity, f.maint_margin, f.value),
        (d("246.75"), d("259.25"), d("846.75"))
    );
    assert_eq!(f.initial_margin, d("737"));
    let [Output::Liquidation(liquidation, legs)] = outputs.as_slice() else {
        panic!("one liquidation expected, got {outputs:?}");
    };
    assert!(liquidation.partial && !liquidation.bankrupt && !liquidation.escalation);
    assert_eq!(
        legs.as_slice(),
        &[Leg {
            instrument: InstrumentId(1),
            qty: d("-0.66783437"),
            limit_price: d("61003.25")
        }]
    );
}

#[test]
fn worked_example_plan_directly() {
    let tiers = vec![
        Tier {
            notional_floor: Fixed8::parse("0").unwrap(),
            mmr: Fixed8::parse("0.004").unwrap(),
            imr: Fixed8::parse("0.01").unwrap(),
        },
        Tier {
            notional_floor: Fixed8::parse("50000").unwrap(),
            mmr: Fixed8::parse("0.005").unwrap(),
            imr: Fixed8::parse("0.02").unwrap(),
        },
    ];
    let leg = PlanLeg {
        instrument: InstrumentId(1),
        q: r("1"),
        mark: r("61850"),
        multiplier: r("1"),
        fee_rate: r("0.001"),
        factor: r("1"),
        tiers,
    };
    let p = plan(&r("246.75"), &[leg]);
    assert_eq!(p.closes, vec![(InstrumentId(1), r("0.66783437"))]);
    assert!(p.partial);
    // 0.66783437 is the first multiple of 10⁻⁸ at or above 371.75 / 556.65.
    let bound = r("371.75") / r("556.65");
    assert!(r("0.66783437") >= bound && r("0.66783436") < bound);
}

// ----- tiers -----

#[test]
fn three_tier_maintenance_amount() {
    let tier = |floor: &str, m: &str, i: &str| Tier {
        notional_floor: Fixed8::parse(floor).unwrap(),
        mmr: Fixed8::parse(m).unwrap(),
        imr: Fixed8::parse(i).unwrap(),
    };
    let tiers = [
        tier("0", "0.004", "0.01"),
        tier("50000", "0.005", "0.02"),
        tier("250000", "0.01", "0.05"),
    ];
    assert_eq!(cum_amount(&tiers, 0, mmr, true), r("0"));
    assert_eq!(cum_amount(&tiers, 1, mmr, true), r("50"));
    assert_eq!(cum_amount(&tiers, 2, mmr, true), r("1300"));

    // Through the engine: 1 contract at 300000 is in tier 3:
    // MM = 300000 × 0.01 − 1300 = 1700; IM = 300000 × 0.05 − (500 + 7500) = 7000.
    let (engine, _) = run_fresh(
        r#"
{"type":"instrument","ts":0,"instrument":1,"symbol":"BTC-PERP","multiplier":"1","liquidation_fee":"0.001","tiers":[{"notional_floor":"0","mmr":"0.004","imr":"0.01"},{"notional_floor":"50000","mmr":"0.005","imr":"0.02"},{"notional_floor":"250000","mmr":"0.01","imr":"0.05"}]}
{"type":"mark","ts":1,"instrument":1,"price":"300000"}
{"type":"balance","ts":2,"account":1,"asset":0,"amount":"10000","kind":"deposit","ref_id":1}
{"type":"fill","ts":3,"account":1,"instrument":1,"qty":"1","price":"300000","fee":"0","fill_id":1}
"#,
    );
    let f = figures_of(&engine, 1);
    assert_eq!((f.maint_margin, f.initial_margin), (d("1700"), d("7000")));
}

// ----- Binance's example -----

fn binance(mark: &str) -> Vec<Output> {
    let (_, outputs) = run_fresh(&format!(
        r#"
{{"type":"instrument","ts":0,"instrument":1,"symbol":"BTCUSDT","multiplier":"1","liquidation_fee":"0","tiers":[{{"notional_floor":"0","mmr":"0.004","imr":"0.01"}}]}}
{{"type":"mark","ts":1,"instrument":1,"price":"50000"}}
{{"type":"balance","ts":2,"account":1,"asset":0,"amount":"500","kind":"deposit","ref_id":1}}
{{"type":"fill","ts":3,"account":1,"instrument":1,"qty":"0.02","price":"50000","fee":"0","fill_id":1}}
{{"type":"mark","ts":4,"instrument":1,"price":"{mark}"}}
"#
    ));
    outputs
}

#[test]
fn binance_liquidation_price() {
    // E = −500 + 0.02·M, MM = 0.004·0.02·M: E < MM ⇔ M < 500 / 0.01992 = 25100.401…
    let outputs = binance("25100.40");
    let [Output::Liquidation(liquidation, _)] = outputs.as_slice() else {
        panic!("25100.40 liquidates: {outputs:?}");
    };
    assert_eq!(
        (liquidation.equity, liquidation.maint_margin),
        (d("2.008"), d("2.008032"))
    );
    assert!(
        binance("25100.41").is_empty(),
        "25100.41 does not liquidate"
    );
}

// ----- hand-computed scenarios of the other rules -----

const ONE_LONG: &str = r#"
{"type":"params","ts":0,"partial_liquidation":true,"liquidation_cooldown_ns":1000,"warn_ratio":"1.25"}
{"type":"instrument","ts":0,"instrument":1,"symbol":"X-PERP","multiplier":"1","liquidation_fee":"0.001","tiers":[{"notional_floor":"0","mmr":"0.01","imr":"0.02"}]}
{"type":"mark","ts":1,"instrument":1,"price":"100"}
{"type":"balance","ts":2,"account":1,"asset":0,"amount":"100","kind":"deposit","ref_id":1}
{"type":"fill","ts":3,"account":1,"instrument":1,"qty":"10","price":"100","fee":"0","fill_id":1}
"#;

#[test]
fn bankrupt_closes_every_leg() {
    // b0 = −900; at 89: U = E = −10 < 0 → bankrupt, full leg, limit 90.
    let (mut engine, _) = run_fresh(ONE_LONG);
    let (outputs, _) = run(
        &mut engine,
        r#"{"type":"mark","ts":4,"instrument":1,"price":"89"}"#,
    );
    let [Output::Liquidation(l, legs)] = outputs.as_slice() else {
        panic!("{outputs:?}");
    };
    assert!(l.bankrupt && !l.partial && !l.escalation);
    assert_eq!((l.equity, l.maint_margin), (d("-10"), d("8.9")));
    assert_eq!(legs[0].qty, d("-10"));
    assert_eq!(legs[0].limit_price, d("90"));
}

#[test]
fn partial_off_closes_every_leg() {
    let (mut engine, _) = run_fresh(ONE_LONG);
    let (outputs, _) = run(
        &mut engine,
        r#"
{"type":"params","ts":4,"partial_liquidation":false,"liquidation_cooldown_ns":1000,"warn_ratio":"1.25"}
{"type":"mark","ts":5,"instrument":1,"price":"90.9"}
"#,
    );
    let [Output::Liquidation(l, legs)] = outputs.as_slice() else {
        panic!("{outputs:?}");
    };
    assert!(!l.bankrupt && !l.partial && !l.escalation);
    assert_eq!(legs[0].qty, d("-10"));
}

#[test]
fn no_positions_and_negative_equity_liquidates_without_legs() {
    let (engine, outputs) = run_fresh(
        r#"
{"type":"asset","ts":0,"asset":1,"symbol":"ETH","asset_weight":"0.5","liability_weight":"1.5"}
{"type":"index","ts":0,"asset":1,"price":"10"}
{"type":"balance","ts":1,"account":3,"asset":1,"amount":"-1","kind":"withdrawal","ref_id":1}
"#,
    );
    let [Output::Liquidation(l, legs)] = outputs.as_slice() else {
        panic!("{outputs:?}");
    };
    assert!(legs.is_empty());
    assert!(l.bankrupt && !l.partial && !l.escalation);
    assert_eq!((l.equity, l.maint_margin), (d("-15"), d("0")));
    assert_eq!(engine.stats().liquidations, 1);
}

#[test]
fn unpriced_accounts_are_not_evaluated() {
    // A position before the instrument's first mark, and a balance in an
    // asset without a price: no figures, no liquidation until priced.
    let (mut engine, outputs) = run_fresh(
        r#"
{"type":"instrument","ts":0,"instrument":1,"symbol":"X-PERP","multiplier":"1","liquidation_fee":"0.001","tiers":[{"notional_floor":"0","mmr":"0.01","imr":"0.02"}]}
{"type":"fill","ts":1,"account":1,"instrument":1,"qty":"10","price":"100","fee":"0","fill_id":1}
"#,
    );
    assert!(outputs.is_empty());
    assert_eq!(engine.figures(AccountId(1)), None);
    let (outputs, _) = run(
        &mut engine,
        r#"{"type":"mark","ts":2,"instrument":1,"price":"99"}"#,
    );
    assert_eq!(outputs.len(), 1, "priced at last: E = −10 < MM");
}

#[test]
fn stale_halt_starts_and_ends() {
    let (mut engine, outputs) = run_fresh(
        r#"
{"type":"instrument","ts":0,"instrument":1,"symbol":"X-PERP","multiplier":"1","liquidation_fee":"0.001","tiers":[{"notional_floor":"0","mmr":"0.01","imr":"0.02"}]}
{"type":"risk","ts":0,"instrument":1,"vol_lambda":"0.5","vol_ref":"0.1","vol_max_factor":"3","max_staleness_ns":100,"max_jump":"0"}
{"type":"mark","ts":1,"instrument":1,"price":"100"}
{"type":"balance","ts":101,"account":1,"asset":0,"amount":"100","kind":"deposit","ref_id":1}
{"type":"balance","ts":102,"account":1,"asset":0,"amount":"100","kind":"deposit","ref_id":2}
{"type":"mark","ts":150,"instrument":1,"price":"100"}
"#,
    );
    let halt = |seq: u64, ts: u64, on: bool| {
        Output::Halt(Halt {
            ts: UnixNanos(ts),
            seq: Seq(seq),
            instrument: InstrumentId(1),
            reason: HaltReason::Stale,
            on,
        })
    };
    assert_eq!(outputs, vec![halt(5, 102, true), halt(6, 150, false)]);
    // A rejected event does not move `now`: no halt at ts 10000.
    let (outputs, accepted) = run(
        &mut engine,
        r#"
{"type":"mark","ts":10000,"instrument":9,"price":"100"}
{"type":"balance","ts":200,"account":1,"asset":0,"amount":"1","kind":"deposit","ref_id":3}
{"type":"risk","ts":200,"instrument":1,"vol_lambda":"0.5","vol_ref":"0.1","vol_max_factor":"3","max_staleness_ns":10,"max_jump":"0"}
{"type":"risk","ts":200,"instrument":1,"vol_lambda":"0.5","vol_ref":"0.1","vol_max_factor":"3","max_staleness_ns":0,"max_jump":"0"}
"#,
    );
    assert_eq!(accepted, vec![false, true, true, true]);
    assert_eq!(outputs, vec![halt(3, 200, true), halt(4, 200, false)]);
    assert_eq!(engine.stats().events_rejected, 1);
}

#[test]
fn jump_discarded_by_a_mark_near_the_current_one() {
    let (mut engine, outputs) = run_fresh(
        r#"
{"type":"instrument","ts":0,"instrument":1,"symbol":"X-PERP","multiplier":"1","liquidation_fee":"0.001","tiers":[{"notional_floor":"0","mmr":"0.01","imr":"0.02"}]}
{"type":"risk","ts":0,"instrument":1,"vol_lambda":"0.5","vol_ref":"0.1","vol_max_factor":"3","max_staleness_ns":0,"max_jump":"0.1"}
{"type":"mark","ts":1,"instrument":1,"price":"100"}
{"type":"balance","ts":2,"account":1,"asset":0,"amount":"100","kind":"deposit","ref_id":1}
{"type":"fill","ts":3,"account":1,"instrument":1,"qty":"10","price":"100","fee":"0","fill_id":1}
{"type":"mark","ts":4,"instrument":1,"price":"80"}
{"type":"mark","ts":5,"instrument":1,"price":"60"}
{"type":"mark","ts":6,"instrument":1,"price":"105"}
"#,
    );
    let halt = |seq: u64, ts: u64, on: bool| {
        Output::Halt(Halt {
            ts: UnixNanos(ts),
            seq: Seq(seq),
            instrument: InstrumentId(1),
            reason: HaltReason::Jump,
            on,
        })
    };
    // 80 is held (halt on; it is not applied, so the account, which 80
    // would make liquidatable, is healthy), 60 replaces it (neither within
    // 10 % of 80 nor of 100), 105 is within 10 % of 100 but not of 60:
    // 60 is discarded, 105 applied, halt off.
    assert_eq!(outputs, vec![halt(6, 4, true), halt(8, 6, false)]);
    let f = figures_of(&engine, 1);
    assert_eq!(f.equity, d("150"));
    // The variance saw only 100 → 105: r = 0.05, var = 0.5 × 0.0025.
    let variance = engine.instruments[&InstrumentId(1)].variance.clone();
    assert_eq!(variance, r("0.00125"));
    // max_jump 0 discards a held mark and ends the halt.
    let (outputs, _) = run(
        &mut engine,
        r#"
{"type":"mark","ts":7,"instrument":1,"price":"200"}
{"type":"risk","ts":8,"instrument":1,"vol_lambda":"0.5","vol_ref":"0.1","vol_max_factor":"3","max_staleness_ns":0,"max_jump":"0"}
"#,
    );
    assert_eq!(outputs, vec![halt(1, 7, true), halt(2, 8, false)]);
    assert_eq!(figures_of(&engine, 1).equity, d("150"));
}

#[test]
fn funding_moves_the_quote_balance() {
    let (mut engine, _) = run_fresh(ONE_LONG);
    let (outputs, accepted) = run(
        &mut engine,
        r#"
{"type":"funding","ts":4,"instrument":1,"rate":"0.001"}
{"type":"funding","ts":5,"instrument":1,"rate":"1.00000001"}
"#,
    );
    assert_eq!(accepted, vec![true, false]);
    assert!(outputs.is_empty());
    // Long 10 at 100 pays 0.001 × 1000 = 1.
    assert_eq!(figures_of(&engine, 1).equity, d("99"));
}

#[test]
fn a_fill_ends_a_cooldown_and_the_account_is_evaluated_as_usual() {
    let (mut engine, _) = run_fresh(ONE_LONG);
    let (outputs, _) = run(
        &mut engine,
        r#"
{"type":"mark","ts":4,"instrument":1,"price":"90.9"}
{"type":"mark","ts":5,"instrument":1,"price":"90.8"}
{"type":"fill","ts":6,"account":1,"instrument":1,"qty":"-1","price":"90.8","fee":"0","fill_id":2}
"#,
    );
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    let Output::Liquidation(l, _) = &outputs[1] else {
        panic!("{outputs:?}");
    };
    assert_eq!(l.seq, Seq(3));
    assert!(!l.escalation && l.partial);
}

#[test]
fn rejections_follow_the_brief() {
    let limits = Limits {
        accounts_max: 1,
        positions_per_account_max: 1,
        balances_per_account_max: 1,
        assets_max: 3,
        instruments_max: 2,
    };
    let mut engine = ReferenceEngine::new(limits);
    let (_, accepted) = run(
        &mut engine,
        r#"
{"type":"asset","ts":0,"asset":0,"symbol":"USD","asset_weight":"1","liability_weight":"1"}
{"type":"asset","ts":0,"asset":0,"symbol":"USD","asset_weight":"0.9","liability_weight":"1"}
{"type":"asset","ts":0,"asset":1,"symbol":"ETH","asset_weight":"0","liability_weight":"1"}
{"type":"asset","ts":0,"asset":1,"symbol":"ETH","asset_weight":"0.8","liability_weight":"100.00000001"}
{"type":"asset","ts":0,"asset":1,"symbol":"ETH","asset_weight":"0.8","liability_weight":"1.2"}
{"type":"asset","ts":0,"asset":2,"symbol":"SOL","asset_weight":"0.8","liability_weight":"1.2"}
{"type":"asset","ts":0,"asset":3,"symbol":"DOGE","asset_weight":"0.8","liability_weight":"1.2"}
{"type":"instrument","ts":0,"instrument":1,"symbol":"X","multiplier":"1","liquidation_fee":"0.01","tiers":[{"notional_floor":"0","mmr":"0.01","imr":"0.02"}]}
{"type":"instrument","ts":0,"instrument":1,"symbol":"X","multiplier":"1","liquidation_fee":"0","tiers":[{"notional_floor":"1","mmr":"0.01","imr":"0.02"}]}
{"type":"instrument","ts":0,"instrument":1,"symbol":"X","multiplier":"1","liquidation_fee":"0","tiers":[{"notional_floor":"0","mmr":"0.02","imr":"0.02"}]}
{"type":"instrument","ts":0,"instrument":1,"symbol":"X","multiplier":"10000.00000001","liquidation_fee":"0","tiers":[{"notional_floor":"0","mmr":"0.01","imr":"0.02"}]}
{"type":"instrument","ts":0,"instrument":1,"symbol":"X","multiplier":"1","liquidation_fee":"0","tiers":[{"notional_floor":"0","mmr":"0.01","imr":"0.02"},{"notional_floor":"10","mmr":"0.005","imr":"0.02"}]}
{"type":"instrument","ts":0,"instrument":1,"symbol":"X","multiplier":"1","liquidation_fee":"0","tiers":[{"notional_floor":"0","mmr":"0.01","imr":"0.02"},{"notional_floor":"10","mmr":"0.02","imr":"0.03"}]}
{"type":"instrument","ts":0,"instrument":2,"symbol":"Y","multiplier":"1","liquidation_fee":"0","tiers":[{"notional_floor":"0","mmr":"0.01","imr":"0.02"}]}
{"type":"instrument","ts":0,"instrument":3,"symbol":"Z","multiplier":"1","liquidation_fee":"0","tiers":[{"notional_floor":"0","mmr":"0.01","imr":"0.02"}]}
{"type":"params","ts":0,"partial_liquidation":true,"liquidation_cooldown_ns":1000,"warn_ratio":"0.99999999"}
{"type":"risk","ts":0,"instrument":1,"vol_lambda":"1","vol_ref":"0.1","vol_max_factor":"3","max_staleness_ns":0,"max_jump":"0"}
{"type":"risk","ts":0,"instrument":3,"vol_lambda":"0.5","vol_ref":"0.1","vol_max_factor":"3","max_staleness_ns":0,"max_jump":"0"}
{"type":"index","ts":0,"asset":0,"price":"1"}
{"type":"index","ts":0,"asset":1,"price":"0"}
{"type":"funding","ts":0,"instrument":1,"rate":"0.01"}
{"type":"mark","ts":0,"instrument":1,"price":"100"}
{"type":"fill","ts":0,"account":1,"instrument":1,"qty":"0","price":"100","fee":"0","fill_id":1}
{"type":"fill","ts":0,"account":1,"instrument":1,"qty":"1","price":"100","fee":"0","fill_id":1}
{"type":"fill","ts":0,"account":1,"instrument":2,"qty":"1","price":"100","fee":"0","fill_id":2}
{"type":"fill","ts":0,"account":2,"instrument":1,"qty":"1","price":"100","fee":"0","fill_id":3}
{"type":"balance","ts":0,"account":1,"asset":1,"amount":"1","kind":"deposit","ref_id":1}
{"type":"balance","ts":0,"account":1,"asset":2,"amount":"1","kind":"deposit","ref_id":2}
{"type":"balance","ts":0,"account":1,"asset":1,"amount":"-1","kind":"withdrawal","ref_id":3}
{"type":"balance","ts":0,"account":1,"asset":2,"amount":"1","kind":"deposit","ref_id":4}
{"type":"balance","ts":0,"account":1,"asset":0,"amount":"0","kind":"adjustment","ref_id":5}
{"type":"fill","ts":0,"account":1,"instrument":1,"qty":"-1","price":"100","fee":"0","fill_id":4}
{"type":"fill","ts":0,"account":1,"instrument":2,"qty":"1","price":"100","fee":"0","fill_id":5}
"#,
    );
    let expected = vec![
        true, false, false, false, true, true, false, // assets (capacity 3)
        false, false, false, false, false, true, true, false, // instruments
        false, false, false, // params, risk (λ = 1), risk (unknown)
        false, false, false, true, // index ×2, funding before a mark, mark
        false, true, false, false, // fills: qty 0, ok, 2nd position, 2nd account
        true, false, true, true, true, // balances: slot freed by reaching 0
        true, true, // closing frees the position slot
    ];
    assert_eq!(accepted, expected);
    assert_eq!(engine.account_ids(), vec![AccountId(1)]);
}

#[test]
fn account_limits_reject_the_whole_event() {
    let (mut engine, _) = run_fresh(ONE_LONG);
    let (_, accepted) = run(
        &mut engine,
        r#"
{"type":"fill","ts":4,"account":2,"instrument":1,"qty":"92233720368.54775807","price":"1","fee":"0","fill_id":2}
{"type":"fill","ts":4,"account":2,"instrument":1,"qty":"1","price":"1","fee":"0","fill_id":3}
{"type":"balance","ts":4,"account":3,"asset":0,"amount":"92233720368.54775807","kind":"deposit","ref_id":2}
{"type":"funding","ts":5,"instrument":1,"rate":"1"}
"#,
    );
    assert_eq!(accepted, vec![true, false, true, true]);
}

#[test]
fn limit_price_is_floored_and_capped() {
    // Heavily haircut collateral (weight 0.01): U is far above E, so the
    // price at which U reaches 0 lies beyond the price range.
    let setup = r#"
{"type":"instrument","ts":0,"instrument":1,"symbol":"X-PERP","multiplier":"1","liquidation_fee":"0","tiers":[{"notional_floor":"0","mmr":"0.01","imr":"0.02"}]}
{"type":"asset","ts":0,"asset":1,"symbol":"J","asset_weight":"0.01","liability_weight":"1"}
{"type":"index","ts":0,"asset":1,"price":"1000"}
{"type":"mark","ts":0,"instrument":1,"price":"100"}
{"type":"balance","ts":1,"account":1,"asset":1,"amount":"1000","kind":"deposit","ref_id":1}
"#;
    // Long 10: b0 = −10991, E = 10000 − 10991 + 1000 = 9 < MM = 10,
    // U = 990009: M − U/q < 0 → floored at 10⁻⁸.
    let (_, outputs) = run_fresh(&format!(
        "{setup}{}",
        r#"
{"type":"fill","ts":2,"account":1,"instrument":1,"qty":"10","price":"100","fee":"0","fill_id":1}
{"type":"balance","ts":3,"account":1,"asset":0,"amount":"-9991","kind":"withdrawal","ref_id":2}
"#
    ));
    let [Output::Liquidation(l, legs)] = outputs.as_slice() else {
        panic!("{outputs:?}");
    };
    assert_eq!((l.equity, l.maint_margin), (d("9"), d("10")));
    assert_eq!(legs[0].limit_price, Dec8::EPSILON);
    // Short 10⁻⁸: M + U/10⁻⁸ ≈ 9.9·10¹³ is beyond the largest price → capped
    // at the Fixed8 maximum.
    let (_, outputs) = run_fresh(&format!(
        "{setup}{}",
        r#"
{"type":"fill","ts":2,"account":1,"instrument":1,"qty":"-0.00000001","price":"100","fee":"0","fill_id":1}
{"type":"balance","ts":3,"account":1,"asset":0,"amount":"-10000.00000001","kind":"withdrawal","ref_id":2}
"#
    ));
    let [Output::Liquidation(l, legs)] = outputs.as_slice() else {
        panic!("{outputs:?}");
    };
    assert_eq!(
        (l.equity, l.maint_margin),
        (d("-0.00000001"), d("0.00000001"))
    );
    assert_eq!(legs[0].qty, d("0.00000001"));
    assert_eq!(legs[0].limit_price, Dec8(i128::from(i64::MAX)));
}
