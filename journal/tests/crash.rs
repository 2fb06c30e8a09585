//! Crash test: a child process appending at full speed is killed with
//! SIGKILL at random moments; after each kill, recovery must yield exactly
//! a prefix of what was written, every record intact, and nothing the child
//! had reported durable may be missing.
//!
//! The child is this test binary itself, run with `JOURNAL_CRASH_DIR` set.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use journal::{FlushPolicy, InputJournal, JournalOptions};

const DIR_VAR: &str = "JOURNAL_CRASH_DIR";
/// Records one child appends before idling (bounds the disk used).
const RECORDS_PER_CHILD: u64 = 30_000;
const TRIALS: u64 = 24;

fn child_options() -> JournalOptions {
    JournalOptions {
        segment_bytes: 256 * 1024,
        flush: FlushPolicy {
            every_records: 64,
            interval: Duration::from_millis(1),
        },
        ..JournalOptions::default()
    }
}

/// The child: recover, append deterministic records as fast as it can,
/// print `durable N` whenever the syncer's msync has covered N.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(DIR_VAR) else {
        return; // not the child: nothing to do
    };
    let mut journal = InputJournal::open(&dir, child_options()).unwrap();
    let syncer = journal.syncer();
    let _thread = syncer.clone().spawn(Duration::from_millis(1)).unwrap();
    let start = journal.next_seq().0;
    println!("ready {start}");
    let mut reported = 0;
    for seq in start..start + RECORDS_PER_CHILD {
        journal.append(&record_for(seq)).unwrap();
        if seq % 16 == 0 {
            let durable = syncer.durable_seq().0;
            if durable > reported {
                reported = durable;
                println!("durable {durable}");
            }
        }
    }
    // Idle until killed (bounded, should the parent be gone).
    for _ in 0..10_000 {
        let durable = syncer.durable_seq().0;
        if durable > reported {
            reported = durable;
            println!("durable {durable}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs one child and kills it `delay` after it reported ready — or, with
/// `during_open`, `delay` after spawning it (recovery itself is killed).
fn run_trial(dir: &Path, delay: Duration, during_open: bool) -> (u64, u64) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(DIR_VAR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let durable = Arc::new(AtomicU64::new(0));
    let started = Arc::new(AtomicU64::new(0));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let lines = {
        let durable = durable.clone();
        let started = started.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("durable ") {
                    durable.fetch_max(n.parse().unwrap(), Ordering::SeqCst);
                } else if let Some((_, n)) = line.split_once("ready ") {
                    // libtest's "test crash_child ... " precedes it.
                    started.store(n.parse().unwrap(), Ordering::SeqCst);
                    let _ = ready_tx.send(());
                }
            }
        })
    };
    if !during_open {
        ready_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("child did not start");
    }
    std::thread::sleep(delay);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    lines.join().unwrap();
    (
        started.load(Ordering::SeqCst),
        durable.load(Ordering::SeqCst),
    )
}

#[test]
fn sigkill_at_random_moments_loses_nothing_durable() {
    let began = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0xC0FFEE ^ u64::from(std::process::id()));
    let mut previous_last = 0;
    let mut torn = 0;
    for trial in 0..TRIALS {
        let during_open = trial % 6 == 5;
        let delay = Duration::from_micros(rng.below(if during_open { 3_000 } else { 25_000 }));
        let (started, durable) = run_trial(dir.path(), delay, during_open);
        if started != 0 || !during_open {
            assert_eq!(
                started,
                previous_last + 1,
                "trial {trial}: child resumed at the wrong place"
            );
        }
        // Recovery: a prefix, every record intact, nothing durable lost.
        let journal = InputJournal::open(dir.path(), child_options()).unwrap();
        let recovery = journal.recovery().clone();
        if recovery.cut.is_some() {
            torn += 1;
        }
        let last = journal.last_seq().map_or(0, |s| s.0);
        journal.close().unwrap();
        let verified = verify_inputs(dir.path());
        assert_eq!(verified, last, "trial {trial}: {recovery}");
        assert!(
            last >= durable,
            "trial {trial}: durable {durable} but only {last} recovered"
        );
        assert!(
            last >= previous_last,
            "trial {trial}: lost records of an earlier trial"
        );
        assert!(journal::check(dir.path()).unwrap().is_intact());
        eprintln!(
            "trial {trial:2}: kill {:>5} us after {}: appended {:>6} (durable {:>6}), recovered to {last}; {recovery}",
            delay.as_micros(),
            if during_open { "spawn" } else { "ready" },
            last - previous_last,
            durable.saturating_sub(previous_last),
        );
        previous_last = last;
    }
    eprintln!(
        "{TRIALS} trials, {previous_last} records, {torn} torn tails cut, {:?}",
        began.elapsed()
    );
    assert!(previous_last > 0);
}
