//! `replay::verify` over the scenario journals: an untouched history
//! verifies (also with the reference model alongside), and a single altered,
//! dropped or added output is pinpointed by its input sequence.

mod common;

use common::{limits, scenario, scenario_events, scenario_names, small_segments, write_journal};
use engine::{Engine, MarginEngine, Output, Seq, VecSink};
use journal::{OutputBody, OutputJournal, OutputReader};
use replay::input::{Input, OUTPUT_SUBDIR};
use replay::progress::Progress;
use replay::verify::{record_outputs, verify, Expected};

/// A journal directory with the recorded outputs of a scenario.
fn recorded(name: &str) -> (tempfile::TempDir, Input) {
    let dir = tempfile::tempdir().expect("tempdir");
    write_journal(dir.path(), &scenario_events(name));
    let input = Input::Journal(dir.path().to_path_buf());
    record_outputs(
        &input,
        &dir.path().join(OUTPUT_SUBDIR),
        small_segments(),
        limits(),
        &mut Progress::hidden(),
    )
    .expect("record outputs");
    (dir, input)
}

#[test]
fn every_untouched_scenario_journal_verifies_with_the_reference_alongside() {
    let names = scenario_names();
    assert!(names.len() >= 20, "scenarios found: {names:?}");
    for name in names {
        let (_dir, input) = recorded(&name);
        let expected = Expected::beside(&input);
        let report = verify(&input, &expected, true, limits(), &mut Progress::hidden())
            .expect("verify runs");
        assert!(report.is_ok(), "{name}: {report}");
        // The JSONL file against its expected outputs: the same verdict and
        // the same final state.
        let jsonl = Input::open(&scenario(&name));
        let from_file = verify(
            &jsonl,
            &Expected::beside(&jsonl),
            false,
            limits(),
            &mut Progress::hidden(),
        )
        .expect("verify runs");
        assert!(from_file.is_ok(), "{name}: {from_file}");
        assert_eq!(from_file.state_hash, report.state_hash, "{name}");
    }
}

/// Every output of the fast engine over `events`, with its input seq.
fn outputs_of(events: &[engine::Event]) -> Vec<(Seq, Output)> {
    let mut engine = Engine::new(limits());
    let mut all = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let seq = Seq(i as u64 + 1);
        let mut sink = VecSink::default();
        let _ = engine.apply(seq, event, &mut sink);
        all.extend(sink.outputs.into_iter().map(|o| (seq, o)));
    }
    all
}

fn write_outputs(dir: &std::path::Path, outputs: &[(Seq, Output)]) {
    let mut journal = OutputJournal::open(dir, small_segments()).expect("open");
    for (seq, output) in outputs {
        match output {
            Output::Halt(h) => journal.append_halt(*seq, h),
            Output::Liquidation(l, legs) => journal.append_liquidation(*seq, l, legs),
        }
        .expect("append");
    }
    journal.close().expect("close");
}

#[test]
fn a_single_altered_output_is_pinpointed() {
    let events = scenario_events("multi_leg_plan");
    let outputs = outputs_of(&events);
    let at = outputs
        .iter()
        .position(|(_, o)| matches!(o, Output::Liquidation(_, legs) if !legs.is_empty()))
        .expect("the scenario liquidates");
    let mut altered = outputs.clone();
    if let Output::Liquidation(_, legs) = &mut altered[at].1 {
        legs[0].qty.0 += 1;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    write_journal(dir.path(), &events);
    let out = dir.path().join(OUTPUT_SUBDIR);
    write_outputs(&out, &altered);
    let input = Input::Journal(dir.path().to_path_buf());
    let report = verify(
        &input,
        &Expected::Journal(out),
        false,
        limits(),
        &mut Progress::hidden(),
    )
    .expect("verify runs");
    assert!(!report.is_ok());
    assert_eq!(report.divergent_events, 1, "{report}");
    let first = report.first.expect("a divergence");
    let seq = outputs[at].0;
    assert_eq!(first.seq, seq);
    let group = |list: &[(Seq, Output)]| -> Vec<Output> {
        list.iter()
            .filter(|(s, _)| *s == seq)
            .map(|(_, o)| o.clone())
            .collect()
    };
    assert_eq!(first.expected, group(&altered));
    assert_eq!(first.actual, group(&outputs));
    let text = first.to_string();
    assert!(text.contains(&format!("seq {seq}")), "{text}");
}

#[test]
fn a_missing_or_an_extra_output_is_a_divergence_at_its_seq() {
    let events = scenario_events("stale_halt");
    let outputs = outputs_of(&events);
    assert!(outputs.len() >= 2, "the scenario emits halts");
    let seq = outputs[1].0;
    for variant in ["missing", "extra"] {
        let mut changed = outputs.clone();
        if variant == "missing" {
            changed.remove(1);
        } else {
            let extra = changed[1].clone();
            changed.insert(1, extra);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        write_journal(dir.path(), &events);
        let out = dir.path().join(OUTPUT_SUBDIR);
        write_outputs(&out, &changed);
        let report = verify(
            &Input::Journal(dir.path().to_path_buf()),
            &Expected::Journal(out),
            false,
            limits(),
            &mut Progress::hidden(),
        )
        .expect("verify runs");
        assert_eq!(report.divergent_events, 1, "{variant}: {report}");
        assert_eq!(report.first.expect("divergence").seq, seq, "{variant}");
    }
}

#[test]
fn outputs_are_recorded_once() {
    let (dir, input) = recorded("worked_example");
    let again = record_outputs(
        &input,
        &dir.path().join(OUTPUT_SUBDIR),
        small_segments(),
        limits(),
        &mut Progress::hidden(),
    );
    assert!(again.is_err());
    let reader = OutputReader::open(dir.path().join(OUTPUT_SUBDIR)).expect("open");
    let bodies: Vec<_> = reader
        .iter()
        .map(|r| r.expect("record").to_owned())
        .collect();
    assert_eq!(bodies.len(), 1);
    assert!(matches!(bodies[0].output, OutputBody::Liquidation { .. }));
}

#[test]
fn a_directory_without_segments_is_an_error_not_an_empty_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = Input::Journal(dir.path().to_path_buf());
    let err = input.read_all().expect_err("no segments");
    assert!(
        err.to_string().contains("no journal segment files"),
        "{err}"
    );
}
