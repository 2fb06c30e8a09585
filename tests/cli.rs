//! The `liqd replay` command line, run as a process.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use replay::compare::{compare_outputs, parse_outputs, read_outputs};
use replay::engines::EngineKind;

fn liqd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_liqd"))
        .args(args)
        .output()
        .expect("liqd runs")
}

fn liqd_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_liqd"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("liqd runs");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(stdin.as_bytes())
        .expect("stdin");
    child.wait_with_output().expect("liqd finishes")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/scenarios")
        .join(name)
}

/// Writes a file under this test binary's temporary directory.
fn temp_file(name: &str, contents: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    fs::write(&path, contents).expect("temp file");
    path
}

const MARK: &str = r#"{"type":"mark","ts":1,"instrument":1,"price":"100"}"#;

#[test]
fn help_and_usage_errors() {
    let help = liqd(&["replay", "run", "--help"]);
    assert!(help.status.success());
    let help = text(&help.stdout);
    assert!(
        help.contains("--engine") && help.contains("reference"),
        "{help}"
    );

    for args in [
        &[][..],
        &["replay"][..],
        &["replay", "run"][..],
        &["replay", "frobnicate", "x"][..],
        &["replay", "run", "x.jsonl", "--engine", "turbo"][..],
        &["replay", "run", "x.jsonl", "--extra"][..],
    ] {
        let out = liqd(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let out = liqd(&["replay", "run", "x.jsonl", "--engine", "turbo"]);
    assert!(text(&out.stderr).contains("turbo"));
}

#[test]
fn a_missing_file_exits_1() {
    for sub in ["run", "check"] {
        let out = liqd(&["replay", sub, "/nonexistent/events.jsonl"]);
        assert_eq!(out.status.code(), Some(1), "{sub}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.starts_with("error: cannot open /nonexistent/events.jsonl: "),
            "{sub}: {stderr}"
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn check_accepts_every_scenario() {
    let path = scenario("worked_example.jsonl");
    let path_str = path.to_str().expect("utf-8 path");
    let out = liqd(&["replay", "check", path_str]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        format!("{path_str}: 10 events, format valid\n")
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn check_reports_a_malformed_line_and_exits_2() {
    let path = temp_file(
        "check_malformed.jsonl",
        &format!("{MARK}\n{MARK}\n{{\"type\":\"mark\",\"ts\":1,\"instrument\":1}}\n{MARK}\n"),
    );
    let path_str = path.to_str().expect("utf-8 path");
    let out = liqd(&["replay", "check", path_str]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!("error: {path_str}:3: missing field \"price\"\n")
    );

    let out = liqd_with_stdin(&["replay", "check", "-"], &format!("{MARK}\n\n"));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stderr), "error: <stdin>:2: blank line\n");
}

#[test]
fn run_prints_the_expected_outputs_and_a_summary() {
    for kind in EngineKind::ALL {
        for name in ["worked_example", "cooldown_escalation", "jump_confirmed"] {
            let input = scenario(&format!("{name}.jsonl"));
            let out = liqd(&[
                "replay",
                "run",
                input.to_str().expect("utf-8"),
                "--engine",
                kind.name(),
            ]);
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(0), "{name} [{kind}]: {stderr}");
            let expected = read_outputs(&scenario(&format!("{name}.expected.jsonl")))
                .unwrap_or_else(|e| panic!("{e}"));
            let actual =
                parse_outputs(&text(&out.stdout), "stdout").unwrap_or_else(|e| panic!("{e}"));
            if let Err(diff) = compare_outputs(&expected, &actual) {
                panic!("{name} [{kind}]: {diff}");
            }
            let lines: Vec<&str> = stderr.lines().collect();
            assert_eq!(lines.len(), 1, "one summary line: {stderr}");
            assert!(lines[0].starts_with("events_applied="), "{stderr}");
            let liquidations = expected
                .iter()
                .filter(|o| matches!(o, engine::Output::Liquidation(..)))
                .count();
            let halts = expected.len() - liquidations;
            assert!(
                lines[0].contains(&format!(" liquidations={liquidations} halts={halts} ")),
                "{stderr}"
            );
            let hash = lines[0].rsplit_once("state_hash=").map(|(_, h)| h);
            match kind {
                EngineKind::Reference => assert_eq!(hash, Some("n/a")),
                EngineKind::Fast => assert!(
                    hash.is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit())),
                    "{stderr}"
                ),
            }
        }
    }
}

#[test]
fn run_keeps_outputs_printed_before_a_malformed_line() {
    for kind in EngineKind::ALL {
        let events = fs::read_to_string(scenario("cooldown_escalation.jsonl")).expect("scenario");
        let path = temp_file(
            &format!("run_malformed_{kind}.jsonl"),
            &format!("{events}{{\"type\":\"mark\",\"ts\":3000,\"instrument\":1,\"price\":\"1.123456789\"}}\n{MARK}\n"),
        );
        let path_str = path.to_str().expect("utf-8");
        let out = liqd(&["replay", "run", path_str, "--engine", kind.name()]);
        assert_eq!(out.status.code(), Some(2), "[{kind}]");
        assert_eq!(
            text(&out.stderr),
            format!(
                "error: {path_str}:13: field \"price\": decimal has more than 8 places: \"1.123456789\"\n"
            )
        );
        let expected = read_outputs(&scenario("cooldown_escalation.expected.jsonl"))
            .unwrap_or_else(|e| panic!("{e}"));
        let actual = parse_outputs(&text(&out.stdout), "stdout").unwrap_or_else(|e| panic!("{e}"));
        if let Err(diff) = compare_outputs(&expected, &actual) {
            panic!("[{kind}]: {diff}");
        }
    }
}

/// Every scenario: import into a journal, check it, export it, and the
/// exported events replay to exactly the same outputs and state hash.
#[test]
fn journal_import_export_round_trips_every_scenario() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("journal_round_trip");
    let _ = fs::remove_dir_all(&root);
    let mut names: Vec<PathBuf> = fs::read_dir(scenario(""))
        .expect("scenario dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".jsonl"))
        .filter(|p| !p.to_string_lossy().ends_with(".expected.jsonl"))
        .collect();
    names.sort();
    assert!(names.len() >= 5);
    for input in names {
        let stem = input
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        let dir = root.join(&stem);
        let (input_str, dir_str) = (input.to_str().expect("utf-8"), dir.to_str().expect("utf-8"));
        let import = liqd(&[
            "journal",
            "import",
            input_str,
            dir_str,
            "--segment-mib",
            "1",
        ]);
        assert_eq!(
            import.status.code(),
            Some(0),
            "{stem}: {}",
            text(&import.stderr)
        );
        let check = liqd(&["journal", "check", dir_str]);
        assert_eq!(
            check.status.code(),
            Some(0),
            "{stem}: {}",
            text(&check.stdout)
        );
        assert!(text(&check.stdout).contains("integrity: ok"), "{stem}");
        let export = liqd(&["journal", "export", dir_str]);
        assert_eq!(
            export.status.code(),
            Some(0),
            "{stem}: {}",
            text(&export.stderr)
        );
        let exported = temp_file(&format!("{stem}.exported.jsonl"), &text(&export.stdout));
        let original = liqd(&["replay", "run", input_str]);
        let replayed = liqd(&["replay", "run", exported.to_str().expect("utf-8")]);
        assert_eq!(
            text(&original.stdout),
            text(&replayed.stdout),
            "{stem}: outputs"
        );
        assert_eq!(
            text(&original.stderr),
            text(&replayed.stderr),
            "{stem}: summary"
        );
    }
}

#[test]
fn journal_export_range_and_errors() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("journal_range");
    let _ = fs::remove_dir_all(&dir);
    let dir_str = dir.to_str().expect("utf-8");
    let input = scenario("worked_example.jsonl");
    let import = liqd(&["journal", "import", input.to_str().expect("utf-8"), dir_str]);
    assert_eq!(import.status.code(), Some(0));
    let export = liqd(&["journal", "export", dir_str, "--from", "3", "--to", "4"]);
    let lines: Vec<String> = text(&export.stdout).lines().map(str::to_owned).collect();
    let all = fs::read_to_string(&input).expect("scenario");
    let expected: Vec<&str> = all.lines().skip(2).take(2).collect();
    assert_eq!(lines, expected);
    // A missing journal and a malformed import are clear errors.
    let missing = liqd(&["journal", "check", "/nonexistent/liqd-journal"]);
    assert_eq!(missing.status.code(), Some(1));
    let bad = temp_file("bad_import.jsonl", &format!("{MARK}\nnot json\n"));
    let bad_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("journal_bad");
    let _ = fs::remove_dir_all(&bad_dir);
    let out = liqd(&[
        "journal",
        "import",
        bad.to_str().expect("utf-8"),
        bad_dir.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("imported 1 events"),
        "{}",
        text(&out.stderr)
    );
    // What was imported before the bad line stays, intact.
    let check = liqd(&["journal", "check", bad_dir.to_str().expect("utf-8")]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stdout));
}

fn scenario_inputs() -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = fs::read_dir(scenario(""))
        .expect("scenario dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".jsonl"))
        .filter(|p| !p.to_string_lossy().ends_with(".expected.jsonl"))
        .collect();
    names.sort();
    names
}

fn output_seq(output: &engine::Output) -> u64 {
    match output {
        engine::Output::Halt(h) => h.seq.0,
        engine::Output::Liquidation(l, _) => l.seq.0,
    }
}

fn state_hash_of(stderr: &str) -> String {
    let last = stderr.lines().last().unwrap_or_default();
    let hash = last.rsplit_once("state_hash=").map(|(_, h)| h.to_owned());
    hash.unwrap_or_else(|| panic!("no state hash in {stderr}"))
}

/// `replay run DIR` prints what `replay run FILE` prints; after `journal
/// snapshot DIR --at K`, `replay run DIR --from-snapshot` prints exactly the
/// outputs after K and the same final state hash, for every K of the
/// scenarios with cooldowns, jumps and staleness (the middle one elsewhere).
#[test]
fn replay_run_a_journal_and_resume_from_snapshots() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("replay_journal");
    let _ = fs::remove_dir_all(&root);
    for input in scenario_inputs() {
        let stem = input
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        let dir = root.join(&stem);
        let (input_str, dir_str) = (input.to_str().expect("utf-8"), dir.to_str().expect("utf-8"));
        let import = liqd(&[
            "journal",
            "import",
            input_str,
            dir_str,
            "--segment-mib",
            "1",
        ]);
        assert_eq!(
            import.status.code(),
            Some(0),
            "{stem}: {}",
            text(&import.stderr)
        );
        let file_run = liqd(&["replay", "run", input_str]);
        let dir_run = liqd(&["replay", "run", dir_str]);
        assert_eq!(
            dir_run.status.code(),
            Some(0),
            "{stem}: {}",
            text(&dir_run.stderr)
        );
        assert_eq!(
            text(&file_run.stdout),
            text(&dir_run.stdout),
            "{stem}: outputs"
        );
        assert_eq!(
            text(&file_run.stderr),
            text(&dir_run.stderr),
            "{stem}: summary"
        );
        let full_hash = state_hash_of(&text(&file_run.stderr));
        let all =
            parse_outputs(&text(&file_run.stdout), "stdout").unwrap_or_else(|e| panic!("{e}"));
        let events = fs::read_to_string(&input)
            .expect("scenario")
            .lines()
            .count() as u64;
        let every = ["cooldown", "jump", "stale", "funding_halt"]
            .iter()
            .any(|k| stem.contains(k));
        let cuts: Vec<u64> = if every {
            (0..=events).collect()
        } else {
            vec![events / 2]
        };
        for at in cuts {
            let _ = fs::remove_dir_all(dir.join("snapshots"));
            if at > 0 {
                let snap = liqd(&["journal", "snapshot", dir_str, "--at", &at.to_string()]);
                let stdout = text(&snap.stdout);
                assert_eq!(
                    snap.status.code(),
                    Some(0),
                    "{stem}@{at}: {}",
                    text(&snap.stderr)
                );
                assert!(
                    stdout.starts_with(&format!("snapshot seq={at} ")),
                    "{stdout}"
                );
            }
            let resumed = liqd(&["replay", "run", dir_str, "--from-snapshot"]);
            let stderr = text(&resumed.stderr);
            assert_eq!(resumed.status.code(), Some(0), "{stem}@{at}: {stderr}");
            if at > 0 {
                assert!(
                    stderr.contains(&format!("resumed from snapshot seq={at} ")),
                    "{stderr}"
                );
            } else {
                assert!(stderr.contains("no usable snapshot"), "{stderr}");
            }
            assert_eq!(state_hash_of(&stderr), full_hash, "{stem}@{at}");
            let tail =
                parse_outputs(&text(&resumed.stdout), "stdout").unwrap_or_else(|e| panic!("{e}"));
            let expected: Vec<engine::Output> =
                all.iter().filter(|o| output_seq(o) > at).cloned().collect();
            assert_eq!(tail, expected, "{stem}@{at}: tail outputs");
        }
    }
}

#[test]
fn journal_snapshot_continues_from_the_latest_and_errors_are_clear() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("journal_snapshot");
    let _ = fs::remove_dir_all(&dir);
    let dir_str = dir.to_str().expect("utf-8");
    let input = scenario("cooldown_escalation.jsonl");
    let input_str = input.to_str().expect("utf-8");
    assert_eq!(
        liqd(&["journal", "import", input_str, dir_str])
            .status
            .code(),
        Some(0)
    );
    let first = liqd(&["journal", "snapshot", dir_str, "--at", "4"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    // Beyond the end: at the last record, starting from the snapshot at 4.
    let second = liqd(&["journal", "snapshot", dir_str, "--at", "999"]);
    let stderr = text(&second.stderr);
    assert!(stderr.contains("starting from snapshot seq=4 "), "{stderr}");
    assert!(stderr.contains("the journal ends at seq 12"), "{stderr}");
    let incremental = text(&second.stdout);
    let full = liqd(&["journal", "snapshot", dir_str, "--full"]);
    assert_eq!(text(&full.stdout), incremental, "same seq, bytes and hash");
    // The journal itself is untouched by the snapshots beside it.
    let check = liqd(&["journal", "check", dir_str]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stdout));
    // A directory that is not a journal is an error, not an empty replay.
    let not_journal = Path::new(env!("CARGO_TARGET_TMPDIR")).join("not_a_journal");
    fs::create_dir_all(&not_journal).expect("dir");
    let not_journal = not_journal.to_str().expect("utf-8");
    for args in [
        &["replay", "run", not_journal][..],
        &["journal", "snapshot", not_journal][..],
    ] {
        let out = liqd(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains("no journal segment files"),
            "{args:?}"
        );
    }
    // --from-snapshot needs the fast engine; a JSONL file has no snapshots.
    let reference = liqd(&[
        "replay",
        "run",
        dir_str,
        "--from-snapshot",
        "--engine",
        "reference",
    ]);
    assert_eq!(reference.status.code(), Some(1));
    assert!(text(&reference.stderr).contains("fast engine"));
    let jsonl = liqd(&["replay", "run", input_str, "--from-snapshot"]);
    assert_eq!(jsonl.status.code(), Some(1));
    assert!(
        text(&jsonl.stderr).contains("not a journal directory"),
        "{}",
        text(&jsonl.stderr)
    );
    // A damaged snapshot is skipped with a warning, the older one used.
    let newest = dir.join("snapshots/snapshot-00000000000000000012.snap");
    let mut bytes = fs::read(&newest).expect("snapshot");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    fs::write(&newest, bytes).expect("write");
    let resumed = liqd(&["replay", "run", dir_str, "--from-snapshot"]);
    let stderr = text(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("warning: skipped snapshot"), "{stderr}");
    assert!(stderr.contains("resumed from snapshot seq=4 "), "{stderr}");
}

/// `liqd bench engine --json` at smoke size: one JSON object with the
/// stable fields, and sane values.
#[test]
fn bench_engine_prints_one_json_object_with_sane_figures() {
    let run = |path: &str, mix: &str| -> serde_json::Value {
        let out = liqd(&[
            "bench",
            "engine",
            "--accounts",
            "2000",
            "--events",
            "2000",
            "--path",
            path,
            "--mix",
            mix,
            "--json",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        serde_json::from_str(&stdout).expect("one JSON object")
    };
    let number = |v: &serde_json::Value, field: &str| -> f64 {
        v[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field} is a number in {v}"))
    };
    let latency = |v: &serde_json::Value, field: &str| -> [f64; 5] {
        ["mean", "p50", "p99", "p999", "max"].map(|q| {
            v[field][q]
                .as_f64()
                .unwrap_or_else(|| panic!("{field}.{q} in {v}"))
        })
    };

    let crash = run("crash", "marks=9,fills=1");
    assert!(number(&crash, "events_per_s") > 0.0);
    assert!(number(&crash, "liquidations") > 0.0, "{crash}");
    assert!(number(&crash, "rearms_per_mark") > 0.0);
    assert!(number(&crash, "ns_per_rearm") > 0.0);
    assert_eq!(number(&crash, "events"), 2000.0);
    assert_eq!(number(&crash, "marks") + number(&crash, "fills"), 2000.0);
    for field in ["ns_per_event", "ns_per_mark"] {
        let [mean, p50, p99, p999, max] = latency(&crash, field);
        assert!(
            0.0 < p50 && p50 <= p99 && p99 <= p999 && p999 <= max,
            "{crash}"
        );
        assert!(mean <= max);
    }
    let bytes = number(&crash, "bytes_per_account");
    assert!((100.0..10_000.0).contains(&bytes), "{bytes}");
    assert!(number(&crash, "bytes_per_position") > 0.0);

    // A quiet path crosses (almost) nothing; funding evaluates holders.
    let quiet = run("quiet", "marks=90,fills=8,funding=2");
    assert!(number(&quiet, "rearms_per_mark") < 0.01, "{quiet}");
    assert_eq!(number(&quiet, "fundings"), 40.0);
    assert_eq!(number(&quiet, "rejected"), 0.0);
    assert!(quiet["ns_per_funding"]["mean"].as_f64() > quiet["ns_per_mark"]["p50"].as_f64());
}

#[test]
fn bench_engine_usage_errors() {
    for args in [
        &["bench", "engine", "--mix", "marks=0"][..],
        &["bench", "engine", "--mix", "ticks=1"][..],
        &["bench", "engine", "--path", "sideways"][..],
        &["bench", "engine", "--engine", "turbo"][..],
        &["bench", "engine", "--instruments", "9"][..],
        &["bench", "engine", "--accounts", "0"][..],
        &["bench"][..],
    ] {
        let out = liqd(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let batch = liqd(&[
        "bench",
        "engine",
        "--accounts",
        "50",
        "--events",
        "600",
        "--timing",
        "batch",
        "--json",
    ]);
    assert!(batch.status.success(), "{}", text(&batch.stderr));
    let batch: serde_json::Value = serde_json::from_slice(&batch.stdout).expect("JSON");
    assert!(batch["events_per_s"].as_f64() > Some(0.0), "{batch}");
    assert_eq!(batch["timing"], "batch");
    let human = liqd(&["bench", "engine", "--accounts", "50", "--events", "100"]);
    assert!(human.status.success(), "{}", text(&human.stderr));
    let table = text(&human.stdout);
    assert!(
        table.contains("events/s") && table.contains("p99.9"),
        "{table}"
    );
}

/// `journal import --with-outputs` then `replay verify`: passes untouched,
/// fails (exit 1) naming the seq when the recorded outputs are altered.
#[test]
fn replay_verify_passes_untouched_and_pinpoints_an_altered_output() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("verify_worked_example");
    let _ = fs::remove_dir_all(&dir);
    let input = scenario("worked_example.jsonl");
    let (input_str, dir_str) = (input.to_str().expect("utf-8"), dir.to_str().expect("utf-8"));
    let import = liqd(&[
        "journal",
        "import",
        input_str,
        dir_str,
        "--segment-mib",
        "1",
        "--with-outputs",
    ]);
    assert_eq!(import.status.code(), Some(0), "{}", text(&import.stderr));
    assert!(dir.join("output").is_dir());
    let ok = liqd(&["replay", "verify", dir_str, "--reference"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}{}",
        text(&ok.stdout),
        text(&ok.stderr)
    );
    let report = text(&ok.stdout);
    assert!(
        report.starts_with("OK:") && report.contains("state_hash="),
        "{report}"
    );
    let expected = fs::read_to_string(scenario("worked_example.expected.jsonl")).expect("expected");
    let altered = temp_file(
        "worked_example.altered.jsonl",
        &expected.replace("-0.66783437", "-0.66783438"),
    );
    let bad = liqd(&[
        "replay",
        "verify",
        dir_str,
        "--outputs",
        altered.to_str().expect("utf-8"),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    let report = text(&bad.stdout);
    assert!(report.contains("first divergence at seq 10"), "{report}");
    assert!(
        report.contains("-0.66783438") && report.contains("-0.66783437"),
        "{report}"
    );
}

#[test]
fn replay_inspect_whatif_and_timeline_run() {
    let input = scenario("worked_example.jsonl");
    let input_str = input.to_str().expect("utf-8");
    let inspect = liqd(&[
        "replay",
        "inspect",
        input_str,
        "--account",
        "7",
        "--at",
        "10",
        "--json",
    ]);
    assert_eq!(inspect.status.code(), Some(0), "{}", text(&inspect.stderr));
    let json = text(&inspect.stdout);
    assert!(
        json.contains("\"equity\": \"246.75\"") && json.contains("\"tier\": 2"),
        "{json}"
    );
    let both = liqd(&[
        "replay",
        "inspect",
        input_str,
        "--account",
        "7",
        "--at",
        "1",
        "--at-time",
        "3",
    ]);
    assert_eq!(
        both.status.code(),
        Some(2),
        "--at and --at-time exclude each other"
    );
    let whatif = liqd(&[
        "replay",
        "whatif",
        input_str,
        "--set",
        "asset.ETH.weight=0.5",
    ]);
    assert_eq!(whatif.status.code(), Some(0), "{}", text(&whatif.stderr));
    let report = text(&whatif.stdout);
    assert!(
        report.contains("added 1:") && report.contains("removed 1:"),
        "{report}"
    );
    let params = temp_file("whatif.toml", "[params]\npartial = false\n");
    let from_file = liqd(&[
        "replay",
        "whatif",
        input_str,
        "--params",
        params.to_str().expect("utf-8"),
        "--json",
    ]);
    assert_eq!(
        from_file.status.code(),
        Some(0),
        "{}",
        text(&from_file.stderr)
    );
    assert!(text(&from_file.stdout).contains("\"changed\": ["));
    let bad_key = liqd(&["replay", "whatif", input_str, "--set", "params.colour=red"]);
    assert_eq!(bad_key.status.code(), Some(1));
    assert!(text(&bad_key.stderr).contains("params.colour"));
    let svg = Path::new(env!("CARGO_TARGET_TMPDIR")).join("timeline.svg");
    let timeline = liqd(&[
        "replay",
        "timeline",
        input_str,
        "--account",
        "7",
        "--svg",
        svg.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        timeline.status.code(),
        Some(0),
        "{}",
        text(&timeline.stderr)
    );
    assert!(fs::read_to_string(&svg)
        .expect("svg written")
        .starts_with("<svg"));
    assert!(text(&timeline.stdout).contains("1 liquidation(s)"));
}

/// `liqd bench pipeline` at smoke size: one JSON object per invocation
/// with a run per rate, the machine, and `.hgrm` files and an SVG plot
/// that parse back.
#[test]
fn bench_pipeline_sweeps_rates_and_writes_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hgrm = dir.path().join("hgrm");
    let svg = dir.path().join("plot.svg");
    let out = liqd(&[
        "bench",
        "pipeline",
        "--accounts",
        "300",
        "--instruments",
        "2",
        "--events",
        "2000",
        "--warmup",
        "200",
        "--rates",
        "5k,20k",
        "--path",
        "walk",
        "--no-pin",
        "--engine-idle",
        "yield",
        "--json",
        "--hgrm",
        hgrm.to_str().expect("utf-8"),
        "--svg",
        svg.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&text(&out.stdout)).expect("one JSON object");
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2);
    for (run, rate) in runs.iter().zip([5_000.0, 20_000.0]) {
        assert_eq!(run["offered_per_s"].as_f64(), Some(rate));
        assert_eq!(run["latency"]["count"], 2_000);
        assert!(run["latency"]["p50"].as_u64() <= run["latency"]["p99"].as_u64());
    }
    assert!(report["machine"]["kernel"].is_string());
    let files: Vec<_> = fs::read_dir(&hgrm).expect("hgrm dir").collect();
    assert_eq!(files.len(), 2);
    for file in files {
        let body = fs::read_to_string(file.expect("entry").path()).expect("hgrm");
        let parsed = liqd_bench::latency::hgrm::parse(&body).expect("valid .hgrm");
        assert_eq!(parsed.total_count, 2_000);
    }
    let plot = fs::read_to_string(&svg).expect("svg");
    assert_eq!(plot.matches("<polyline").count(), 2);
    let bad = liqd(&["bench", "pipeline", "--rates", "fast"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
}

/// `liqd bench wire` at smoke size: the daemon is started on a journaled
/// book, every ping is answered by one `H`, and the echo baseline runs.
#[test]
fn bench_wire_measures_the_daemon_and_the_echo() {
    let out = liqd(&[
        "bench",
        "wire",
        "--accounts",
        "200",
        "--instruments",
        "2",
        "--events",
        "1000",
        "--warmup",
        "100",
        "--rates",
        "2k",
        "--engine-idle",
        "sleep:50",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&text(&out.stdout)).expect("one JSON object");
    let runs = report["runs"].as_array().expect("runs");
    let kinds: Vec<_> = runs
        .iter()
        .map(|r| r["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["wire", "echo"], "{report}");
    for run in runs {
        // Loopback at 2k/s: every ping answered (lost ones are counted).
        let answered = run["events"].as_u64().expect("events");
        let lost = run["rejected"].as_u64().expect("lost");
        assert_eq!(answered + lost, 1_000, "{run}");
        assert!(answered >= 990, "{run}");
    }
    assert!(report["notes"].to_string().contains("the daemon adds"));
}

/// `replay inspect DIR --at SEQ` starts from the newest snapshot at or
/// before SEQ and gives the same figures as `--no-snapshot` (from the first
/// event); it lists only the events after the snapshot, and says so. A
/// snapshot after SEQ is not used.
#[test]
fn replay_inspect_from_a_snapshot_gives_the_same_figures() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("inspect_snapshot");
    let _ = fs::remove_dir_all(&root);
    for (stem, account) in [("worked_example", "7"), ("cooldown_escalation", "1")] {
        let input = scenario(&format!("{stem}.jsonl"));
        let dir = root.join(stem);
        let (input_str, dir_str) = (input.to_str().expect("utf-8"), dir.to_str().expect("utf-8"));
        let import = liqd(&[
            "journal",
            "import",
            input_str,
            dir_str,
            "--segment-mib",
            "1",
        ]);
        assert_eq!(import.status.code(), Some(0), "{}", text(&import.stderr));
        let events = fs::read_to_string(&input)
            .expect("scenario")
            .lines()
            .count() as u64;
        let inspect = |at: u64, extra: &[&str]| -> serde_json::Value {
            let at = at.to_string();
            let mut args = vec![
                "replay",
                "inspect",
                dir_str,
                "--account",
                account,
                "--at",
                &at,
                "--last",
                "1000",
                "--json",
            ];
            args.extend_from_slice(extra);
            let out = liqd(&args);
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
            serde_json::from_slice(&out.stdout).expect("JSON")
        };
        for k in 1..=events {
            let _ = fs::remove_dir_all(dir.join("snapshots"));
            let snap = liqd(&["journal", "snapshot", dir_str, "--at", &k.to_string()]);
            assert_eq!(snap.status.code(), Some(0), "{}", text(&snap.stderr));
            for at in 1..=events {
                let full = inspect(at, &["--no-snapshot"]);
                let fast = inspect(at, &[]);
                assert_eq!(full["snapshot"], serde_json::Value::Null);
                let used = (k <= at).then_some(k);
                assert_eq!(fast["snapshot"].as_u64(), used, "{stem} k={k} at={at}");
                let strip = |v: &serde_json::Value| {
                    let mut v = v.clone();
                    let o = v.as_object_mut().expect("object");
                    for key in ["events", "outputs", "snapshot"] {
                        o.remove(key);
                    }
                    v
                };
                assert_eq!(strip(&full), strip(&fast), "{stem} k={k} at={at}: figures");
                // The events listed are those of the full replay after the
                // snapshot.
                let after = |e: &serde_json::Value| e["seq"].as_u64().expect("seq") > k;
                let full_events = full["events"].as_array().expect("events");
                let fast_events = fast["events"].as_array().expect("events");
                let expected: Vec<_> = match used {
                    Some(_) => full_events.iter().filter(|e| after(e)).cloned().collect(),
                    None => full_events.clone(),
                };
                assert_eq!(fast_events, &expected, "{stem} k={k} at={at}: events");
            }
        }
        // The text says where it started.
        let at = events.to_string();
        let out = liqd(&[
            "replay",
            "inspect",
            dir_str,
            "--account",
            account,
            "--at",
            &at,
        ]);
        assert!(
            text(&out.stdout)
                .contains(&format!("started from the engine snapshot at seq {events}")),
            "{}",
            text(&out.stdout)
        );
    }
}
