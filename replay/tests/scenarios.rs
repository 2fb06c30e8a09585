//! Data-driven scenarios: every `testdata/scenarios/NAME.jsonl` that has a
//! sibling `NAME.expected.jsonl` is replayed through each engine (event on
//! line n with seq n) and its outputs compared with the expected file as
//! values (decimals by value: "1.50" equals "1.5").
//! The comparison machinery is tested here too, independently of any engine.

use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use engine::{Limits, MarginEngine, Output};
use replay::compare::{compare_outputs, parse_outputs, read_outputs};
use replay::engines::{make_engine, EngineKind};
use replay::jsonl::EventReader;
use replay::run::replay_to_vec;

const EXPECTED_SUFFIX: &str = ".expected.jsonl";

struct Scenario {
    name: String,
    input: PathBuf,
    expected: PathBuf,
}

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/scenarios")
}

/// Every input with an expected file, by name.
fn scenarios() -> Vec<Scenario> {
    let dir = scenario_dir();
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut found: Vec<Scenario> = entries
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let file_name = path.file_name()?.to_str()?;
            if file_name.ends_with(EXPECTED_SUFFIX) {
                return None;
            }
            let name = file_name.strip_suffix(".jsonl")?.to_owned();
            let expected = dir.join(format!("{name}{EXPECTED_SUFFIX}"));
            expected.is_file().then_some(Scenario {
                name,
                input: path,
                expected,
            })
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// Small capacities: scenarios are small, and the engines allocate up front.
fn scenario_limits() -> Limits {
    Limits {
        accounts_max: 1024,
        instruments_max: 64,
        assets_max: 16,
        positions_per_account_max: 32,
        balances_per_account_max: 16,
    }
}

/// Replays one input file through `engine`, returning its outputs.
fn run_scenario(engine: &mut dyn MarginEngine, input: &Path) -> Result<Vec<Output>, String> {
    let file = File::open(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let mut reader = EventReader::new(BufReader::new(file), input.display().to_string());
    let (outputs, _summary) = replay_to_vec(&mut reader, engine).map_err(|e| e.to_string())?;
    Ok(outputs)
}

/// Runs one scenario through `engine` and compares with its expected file.
fn check_scenario(engine: &mut dyn MarginEngine, scenario: &Scenario) -> Result<(), String> {
    let expected = read_outputs(&scenario.expected).map_err(|e| e.to_string())?;
    let actual = run_scenario(engine, &scenario.input)?;
    compare_outputs(&expected, &actual).map_err(|diff| diff.to_string())
}

/// Every scenario through a fresh engine of `kind`; all failures reported
/// together.
fn check_all(kind: EngineKind) {
    let scenarios = scenarios();
    assert!(
        !scenarios.is_empty(),
        "no scenarios in {}",
        scenario_dir().display()
    );
    let mut failures = Vec::new();
    for scenario in &scenarios {
        let mut engine = make_engine(kind, scenario_limits());
        if let Err(message) = check_scenario(engine.margin_engine(), scenario) {
            failures.push(format!("{} [{kind}]: {message}", scenario.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn scenarios_fast_engine() {
    check_all(EngineKind::Fast);
}

#[test]
fn scenarios_reference_engine() {
    check_all(EngineKind::Reference);
}

// The comparison machinery, tested without an engine.

#[test]
fn scenario_files_are_valid_and_consistent() {
    let scenarios = scenarios();
    assert!(scenarios.len() >= 5, "the conformance cases are all there");
    for scenario in &scenarios {
        let file = File::open(&scenario.input).expect("input opens");
        let events: Vec<_> = EventReader::new(BufReader::new(file), scenario.name.clone())
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{e}"));
        let expected = read_outputs(&scenario.expected).unwrap_or_else(|e| panic!("{e}"));
        let mut last_seq = 0;
        for output in &expected {
            let (seq, ts) = match output {
                Output::Halt(h) => (h.seq.0, h.ts),
                Output::Liquidation(l, _) => (l.seq.0, l.ts),
            };
            assert!(
                (1..=events.len() as u64).contains(&seq),
                "{}: output seq {seq} names no input line",
                scenario.name
            );
            assert!(
                seq >= last_seq,
                "{}: outputs out of seq order",
                scenario.name
            );
            last_seq = seq;
            let event_ts = events[usize::try_from(seq - 1).expect("small")].ts();
            assert_eq!(
                ts, event_ts,
                "{}: output ts is its event's ts",
                scenario.name
            );
        }
    }
}

#[test]
fn every_expected_file_matches_itself_and_no_other() {
    let all: Vec<(String, Vec<Output>)> = scenarios()
        .iter()
        .map(|s| {
            let outputs = read_outputs(&s.expected).unwrap_or_else(|e| panic!("{e}"));
            (s.name.clone(), outputs)
        })
        .collect();
    for (name, outputs) in &all {
        assert!(!outputs.is_empty(), "{name}: no expected outputs");
        assert_eq!(compare_outputs(outputs, outputs), Ok(()), "{name}");
        for (other, other_outputs) in &all {
            if other != name {
                assert!(
                    compare_outputs(outputs, other_outputs).is_err(),
                    "{name} equals {other}"
                );
            }
        }
    }
}

const LIQUIDATION: &str = r#"{"type":"liquidation","ts":9,"seq":12,"account":7,"equity":"120.5","maint_margin":"130","partial":true,"bankrupt":false,"escalation":false,"legs":[{"instrument":1,"qty":"-0.2","limit_price":"63000.1"}]}"#;
const HALT: &str = r#"{"type":"halt","ts":9,"seq":13,"instrument":1,"reason":"stale","on":true}"#;

fn outputs(text: &str) -> Vec<Output> {
    parse_outputs(text, "test").unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn decimals_compare_by_value() {
    let base = outputs(&format!("{LIQUIDATION}\n{HALT}\n"));
    let padded = outputs(&format!(
        "{}\n{HALT}\n",
        LIQUIDATION
            .replace("\"120.5\"", "\"120.50\"")
            .replace("\"130\"", "\"130.00000000\"")
            .replace("\"-0.2\"", "\"-0.20\"")
    ));
    assert_eq!(compare_outputs(&base, &padded), Ok(()), "1.50 == 1.5");

    let one_fifty = outputs(&LIQUIDATION.replace("\"120.5\"", "\"1.50\""));
    let one_five = outputs(&LIQUIDATION.replace("\"120.5\"", "\"1.5\""));
    let one_six = outputs(&LIQUIDATION.replace("\"120.5\"", "\"1.6\""));
    assert_eq!(compare_outputs(&one_fifty, &one_five), Ok(()));
    assert!(compare_outputs(&one_five, &one_six).is_err(), "1.5 != 1.6");

    let leg_off_by_one = outputs(&LIQUIDATION.replace("\"63000.1\"", "\"63000.10000001\""));
    assert!(compare_outputs(&one_five, &leg_off_by_one).is_err());
}

#[test]
fn every_field_counts() {
    let base = outputs(LIQUIDATION);
    for (from, to) in [
        ("\"ts\":9", "\"ts\":10"),
        ("\"seq\":12", "\"seq\":11"),
        ("\"account\":7", "\"account\":8"),
        ("\"maint_margin\":\"130\"", "\"maint_margin\":\"131\""),
        ("\"partial\":true", "\"partial\":false"),
        ("\"bankrupt\":false", "\"bankrupt\":true"),
        ("\"escalation\":false", "\"escalation\":true"),
        ("\"instrument\":1", "\"instrument\":2"),
        ("\"qty\":\"-0.2\"", "\"qty\":\"0.2\""),
    ] {
        let changed = outputs(&LIQUIDATION.replace(from, to));
        assert!(compare_outputs(&base, &changed).is_err(), "{from} -> {to}");
    }
    let halt = outputs(HALT);
    for (from, to) in [
        ("\"reason\":\"stale\"", "\"reason\":\"jump\""),
        ("\"on\":true", "\"on\":false"),
    ] {
        let changed = outputs(&HALT.replace(from, to));
        assert!(compare_outputs(&halt, &changed).is_err(), "{from} -> {to}");
    }
    // Extra keys and key order do not count.
    let reordered = outputs(
        r#"{"on":true,"reason":"stale","instrument":1,"seq":13,"ts":9,"type":"halt","note":"x"}"#,
    );
    assert_eq!(compare_outputs(&halt, &reordered), Ok(()));
}

#[test]
fn differences_in_count_and_order_are_reported() {
    let both = outputs(&format!("{LIQUIDATION}\n{HALT}\n"));
    let swapped = outputs(&format!("{HALT}\n{LIQUIDATION}\n"));
    let first_only = outputs(LIQUIDATION);

    let diff = compare_outputs(&both, &swapped).expect_err("order matters");
    assert_eq!(diff.index, 0);

    let diff = compare_outputs(&both, &first_only).expect_err("one missing");
    assert_eq!((diff.index, diff.actual.is_none()), (1, true));
    let message = diff.to_string();
    assert!(
        message.contains("#2 (2 expected, 1 produced)")
            && message.contains(HALT)
            && message.contains("actual: (nothing)"),
        "{message}"
    );

    let diff = compare_outputs(&first_only, &both).expect_err("one extra");
    assert_eq!((diff.index, diff.expected.is_none()), (1, true));
    assert_eq!(compare_outputs(&[], &[]), Ok(()));
}

/// Plays back a fixed list of outputs, each when the event with its `seq`
/// is applied: an engine that is right by construction, to test the
/// harness itself (seq = line number, outputs collected in order).
struct ScriptedEngine {
    outputs: Vec<Output>,
}

impl MarginEngine for ScriptedEngine {
    fn apply(
        &mut self,
        seq: engine::Seq,
        _event: &engine::Event,
        sink: &mut dyn engine::Sink,
    ) -> Result<(), engine::Reject> {
        for output in &self.outputs {
            match output {
                Output::Halt(h) if h.seq == seq => sink.halt(h),
                Output::Liquidation(l, legs) if l.seq == seq => sink.liquidation(l, legs),
                _ => {}
            }
        }
        Ok(())
    }

    fn figures(&self, _account: engine::AccountId) -> Option<engine::Figures> {
        None
    }

    fn account_ids(&self) -> Vec<engine::AccountId> {
        Vec::new()
    }

    fn stats(&self) -> engine::Stats {
        engine::Stats::default()
    }
}

#[test]
fn harness_passes_a_correct_engine_and_fails_a_wrong_one() {
    for scenario in &scenarios() {
        let expected = read_outputs(&scenario.expected).unwrap_or_else(|e| panic!("{e}"));
        let mut right = ScriptedEngine {
            outputs: expected.clone(),
        };
        assert_eq!(
            check_scenario(&mut right, scenario),
            Ok(()),
            "{}",
            scenario.name
        );

        let mut silent = ScriptedEngine { outputs: vec![] };
        assert!(check_scenario(&mut silent, scenario).is_err());

        // Each output one event late: its seq is wrong.
        let late = expected
            .iter()
            .map(|o| match o.clone() {
                Output::Halt(mut h) => {
                    h.seq.0 += 1;
                    Output::Halt(h)
                }
                Output::Liquidation(mut l, legs) => {
                    l.seq.0 += 1;
                    Output::Liquidation(l, legs)
                }
            })
            .collect();
        let mut late = ScriptedEngine { outputs: late };
        assert!(check_scenario(&mut late, scenario).is_err());
    }
}
