//! Helpers shared by the replay tool tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use engine::{Event, Limits};
use journal::{InputJournal, JournalOptions, SourceStream};
use replay::input::Input;

pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/scenarios")
        .join(format!("{name}.jsonl"))
}

/// Every scenario input that has an expected-output file, by name.
pub fn scenario_names() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/scenarios");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("scenario dir")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".expected.jsonl")?;
            Some(stem.to_owned())
        })
        .collect();
    names.sort();
    names
}

/// Small capacities: scenarios are small, and the engines allocate up front.
pub fn limits() -> Limits {
    Limits {
        accounts_max: 1024,
        instruments_max: 64,
        assets_max: 16,
        positions_per_account_max: 32,
        balances_per_account_max: 16,
    }
}

/// Writes `events` as an input journal in `dir` (seq n = event n).
pub fn write_journal(dir: &Path, events: &[Event]) {
    let mut journal = InputJournal::open(dir, small_segments()).expect("open journal");
    for (i, event) in events.iter().enumerate() {
        journal
            .append_event(event.ts(), SourceStream::Orders, i as u64 + 1, event)
            .expect("append");
    }
    journal.close().expect("close");
}

pub fn small_segments() -> JournalOptions {
    JournalOptions {
        segment_bytes: 1 << 20,
        ..JournalOptions::default()
    }
}

/// The events of a scenario file.
pub fn scenario_events(name: &str) -> Vec<Event> {
    Input::open(&scenario(name))
        .read_all()
        .expect("scenario reads")
        .into_iter()
        .map(|(_, e)| e)
        .collect()
}

/// Parses JSONL event lines (one per line).
pub fn events(text: &str) -> Vec<Event> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| replay::jsonl::parse_event(l.trim()).expect("valid event line"))
        .collect()
}
