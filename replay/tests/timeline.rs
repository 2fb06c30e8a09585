//! `replay::timeline`: points per touching event, markers, CSV and SVG; the
//! example chart in docs/ is what the command produces today.

mod common;

use std::path::Path;

use common::{limits, scenario};
use engine::AccountId;
use replay::input::Input;
use replay::progress::Progress;
use replay::timeline::{timeline, Marker};

#[test]
fn escalations_are_marked_and_every_point_is_in_the_csv() {
    let input = Input::open(&scenario("cooldown_escalation"));
    let line = timeline(&input, AccountId(1), limits(), &mut Progress::hidden()).expect("runs");
    let liquidations: Vec<(u64, bool)> = line
        .markers
        .iter()
        .filter_map(|m| match m {
            Marker::Liquidation {
                seq, escalation, ..
            } => Some((seq.0, *escalation)),
            Marker::Halt { .. } => None,
        })
        .collect();
    assert_eq!(liquidations, [(7, false), (10, true), (12, true)]);
    let csv = line.to_csv();
    assert_eq!(csv.lines().count(), line.points.len() + 1);
    assert!(csv.contains(",liquidation escalation\n"), "{csv}");
    let svg = line.to_svg();
    assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
    assert_eq!(svg.matches("fill=\"none\" stroke=").count(), 3, "E, MM, IM");
    assert_eq!(svg.matches("(seq ").count(), 3, "three liquidation markers");
}

#[test]
fn halts_of_held_instruments_are_marked() {
    let input = Input::open(&scenario("stale_halt"));
    let events = input.read_all().expect("reads");
    let account = events
        .iter()
        .find_map(|(_, e)| match e {
            engine::Event::Fill(f) => Some(f.account),
            _ => None,
        })
        .expect("a fill");
    let line = timeline(&input, account, limits(), &mut Progress::hidden()).expect("runs");
    assert!(
        line.markers
            .iter()
            .any(|m| matches!(m, Marker::Halt { on: true, .. })),
        "{:?}",
        line.markers
    );
    assert!(line.to_svg().contains("halt #"));
}

#[test]
fn the_example_chart_in_docs_is_up_to_date() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let input = Input::open(&docs.join("timeline-example.jsonl"));
    let line = timeline(&input, AccountId(42), limits(), &mut Progress::hidden()).expect("runs");
    let checked_in = std::fs::read_to_string(docs.join("timeline-example.svg")).expect("svg");
    assert!(
        line.to_svg() == checked_in,
        "regenerate: liqd replay timeline docs/timeline-example.jsonl --account 42 --svg docs/timeline-example.svg"
    );
}
