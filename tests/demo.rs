//! `liqd demo` in a small configuration: the whole pipeline over loopback
//! UDP, then the summary's claims checked against the journal it leaves.

use std::path::Path;
use std::process::Command;

fn number_after(text: &str, label: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{text}"));
    let rest = line.trim_start()[label.len()..].trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number in {line:?}"))
}

#[test]
fn a_small_demo_liquidates_and_its_journal_verifies() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("demo_small");
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_liqd"))
        .args([
            "demo",
            "--accounts",
            "300",
            "--ticks",
            "12000",
            "--seed",
            "3",
        ])
        .arg("--dir")
        .arg(&dir)
        .output()
        .expect("run liqd");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("replay verify passed"), "{stdout}");
    let liquidations = number_after(&stdout, "liquidations");
    assert!(liquidations > 0, "{stdout}");
    assert!(number_after(&stdout, "events") > 300, "{stdout}");
    // 12,000 ticks × 100 µs of event time outlast the 1 s cooldown.
    assert!(stdout.contains("escalation "), "{stdout}");
    let d = dir.display().to_string();
    assert!(
        stdout.contains(&format!("liqd replay inspect {d} --account ")),
        "{stdout}"
    );
    // The next commands work on the journal left behind.
    let account = stdout
        .lines()
        .find_map(|l| l.split("--account ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("an account in the next commands")
        .to_owned();
    let verify = Command::new(env!("CARGO_BIN_EXE_liqd"))
        .args(["replay", "verify"])
        .arg(&dir)
        .output()
        .expect("run liqd");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let inspect = Command::new(env!("CARGO_BIN_EXE_liqd"))
        .args(["replay", "inspect"])
        .arg(&dir)
        .args(["--account", &account])
        .output()
        .expect("run liqd");
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    // Progress lines go to stderr (not a terminal here: whole lines).
    assert!(stderr.contains("events/s"), "{stderr}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn demo_usage_errors() {
    for args in [
        &["demo", "--accounts", "0"][..],
        &["demo", "--scenario", "sideways"][..],
        &["demo", "--keep", "--discard"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_liqd"))
            .args(args)
            .output()
            .expect("run liqd");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}
