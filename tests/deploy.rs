//! deploy/: the systemd unit passes `systemd-analyze verify` (when the tool
//! exists), the sysctl file is well-formed, the runbook names only metrics
//! the daemon exports.

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name)
}

#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(deploy("liqd.service")).expect("deploy/liqd.service");
    for key in [
        "User=liqd",
        "CPUAffinity=",
        "LimitMEMLOCK=",
        "Restart=on-failure",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/liqd",
        "NoNewPrivileges=yes",
        "ExecStart=/usr/local/bin/liqd run --config /etc/liqd/liqd.toml",
    ] {
        assert!(unit.contains(key), "liqd.service lacks {key}");
    }
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    };
    if !probe.status.success() {
        eprintln!("skipped: systemd-analyze does not run here");
        return;
    }
    // verify checks that ExecStart exists: point it at the binary built
    // for these tests.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("deploy_unit");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let copy = dir.join("liqd.service");
    let unit = unit.replace("/usr/local/bin/liqd", env!("CARGO_BIN_EXE_liqd"));
    std::fs::write(&copy, unit).expect("write unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains(&*copy.to_string_lossy()),
        "warnings about the unit: {stderr}"
    );
}

#[test]
fn the_sysctl_file_is_key_equals_value() {
    let text = std::fs::read_to_string(deploy("sysctl.d/90-liqd.conf")).expect("sysctl file");
    let mut keys = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').expect("key = value");
        assert!(!value.trim().is_empty(), "{line}");
        keys.push(key.trim().to_owned());
    }
    for key in [
        "net.core.rmem_max",
        "net.core.wmem_max",
        "net.core.busy_poll",
        "net.core.busy_read",
    ] {
        assert!(keys.iter().any(|k| k == key), "missing {key}");
    }
}

/// Every `liqd_…` metric the runbook explains is one the daemon's sources
/// name (metrics.rs, run.rs), so the runbook cannot drift from the code.
#[test]
fn the_runbook_names_real_metrics() {
    let runbook = std::fs::read_to_string(deploy("RUNBOOK.md")).expect("RUNBOOK.md");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("daemon/src");
    let code: String = ["metrics.rs", "run.rs"]
        .iter()
        .map(|f| std::fs::read_to_string(root.join(f)).expect("daemon source"))
        .collect();
    let mut checked = 0;
    for word in runbook.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if !word.starts_with("liqd_") || word.len() <= 5 {
            continue;
        }
        // `_total`/`_count` suffixes and label-less forms appear in code as
        // the base name or the full one.
        let base = word.strip_suffix("_count").unwrap_or(word);
        let short = word.strip_prefix("liqd_").unwrap_or(word);
        assert!(
            code.contains(base) || code.contains(&format!("\"{short}")),
            "RUNBOOK.md names {word}, which the daemon does not export"
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} metric names in the runbook");
}
