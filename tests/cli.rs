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
