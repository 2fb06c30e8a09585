//! `liqd replay verify`: re-applies an input history with the fast engine
//! and compares every output, event by event, with the outputs recorded
//! when it first ran (an output journal, or a JSONL output file); with
//! `reference`, the reference model runs alongside and is compared after
//! every event (its outputs, and every account's figures).
//!
//! Outputs are grouped by the input sequence that produced them, so one
//! altered, missing or extra output is one divergent event and the rest of
//! the history still lines up. Status records of an output journal are not
//! engine outputs and are skipped.
//!
//! [`record_outputs`] writes the output journal of an input history (what
//! `liqd journal import --with-outputs` runs).

use core::fmt;
use std::fs::File;
use std::io::BufReader;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use engine::reference::ReferenceEngine;
use engine::{Engine, Limits, MarginEngine, Output, Seq, VecSink};
use journal::{JournalOptions, OutputBody, OutputJournal, OutputReader as JournalOutputReader};

use crate::input::{Input, InputError};
use crate::jsonl::{output_line, ErrorKind, JsonlError, OutputReader};
use crate::progress::Progress;
use crate::run::{apply_one, Summary};

/// Where the recorded outputs are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    /// An output journal directory.
    Journal(PathBuf),
    /// A JSONL output file (e.g. a scenario's `.expected.jsonl`).
    Jsonl(PathBuf),
}

impl Expected {
    /// The default place of the outputs of `input`: `DIR/output` for a
    /// journal directory, `NAME.expected.jsonl` beside `NAME.jsonl`.
    pub fn beside(input: &Input) -> Expected {
        match input {
            Input::Journal(dir) => Expected::Journal(dir.join(crate::input::OUTPUT_SUBDIR)),
            Input::Jsonl(file) => {
                let name = file.file_name().map_or_else(String::new, |n| {
                    let name = n.to_string_lossy();
                    let stem = name.strip_suffix(".jsonl").unwrap_or(&name);
                    format!("{stem}.expected.jsonl")
                });
                Expected::Jsonl(file.with_file_name(name))
            }
        }
    }

    /// A directory is an output journal, anything else a JSONL file.
    pub fn at(path: &Path) -> Expected {
        if path.is_dir() {
            Expected::Journal(path.to_path_buf())
        } else {
            Expected::Jsonl(path.to_path_buf())
        }
    }
}

/// One event whose outputs differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// The input sequence.
    pub seq: Seq,
    /// What was recorded for it.
    pub expected: Vec<Output>,
    /// What the replay produced.
    pub actual: Vec<Output>,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "first divergence at seq {}", self.seq)?;
        write_outputs(f, "expected", &self.expected)?;
        write_outputs(f, "  actual", &self.actual)
    }
}

fn write_outputs(f: &mut fmt::Formatter<'_>, label: &str, outputs: &[Output]) -> fmt::Result {
    if outputs.is_empty() {
        return writeln!(f, "  {label}: (nothing)");
    }
    for output in outputs {
        writeln!(f, "  {label}: {}", output_line(output, None).trim_end())?;
    }
    Ok(())
}

/// The reference model disagreeing with the fast engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferenceDivergence {
    pub seq: Seq,
    /// What differs, in words.
    pub what: String,
}

/// What a verification found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub summary: Summary,
    /// Outputs produced by the replay (and compared).
    pub outputs: u64,
    /// Events whose outputs differ from the recorded ones.
    pub divergent_events: u64,
    pub first: Option<Divergence>,
    /// Events after which the reference model disagrees (with `reference`).
    pub reference_divergences: u64,
    pub first_reference: Option<ReferenceDivergence>,
    /// The fast engine's state hash at the end.
    pub state_hash: u64,
}

impl VerifyReport {
    /// No divergence of any kind.
    pub fn is_ok(&self) -> bool {
        self.divergent_events == 0 && self.reference_divergences == 0
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(first) = &self.first {
            write!(f, "{first}")?;
        }
        if let Some(first) = &self.first_reference {
            writeln!(
                f,
                "first reference divergence at seq {}: {}",
                first.seq, first.what
            )?;
        }
        let verdict = if self.is_ok() { "OK" } else { "DIVERGED" };
        write!(
            f,
            "{verdict}: {} outputs={} divergent_events={} reference_divergences={} state_hash={:016x}",
            self.summary,
            self.outputs,
            self.divergent_events,
            self.reference_divergences,
            self.state_hash
        )
    }
}

/// Why a verification could not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("expected outputs: {0}")]
    Outputs(#[from] JsonlError),
    #[error("output journal: {0}")]
    OutputJournal(#[from] journal::JournalError),
    #[error(
        "{0} already holds an output journal: outputs are recorded once, from the first event"
    )]
    OutputsExist(PathBuf),
}

/// Replays `input` and compares with `expected`.
///
/// # Errors
/// A source cannot be read (a divergence is not an error: see the report).
pub fn verify(
    input: &Input,
    expected: &Expected,
    reference: bool,
    limits: Limits,
    progress: &mut Progress,
) -> Result<VerifyReport, VerifyError> {
    let journal_reader = match expected {
        Expected::Journal(dir) => Some(JournalOutputReader::open(dir)?),
        Expected::Jsonl(_) => None,
    };
    let source = match (&journal_reader, expected) {
        (Some(reader), _) => RecordedSource::Journal(reader),
        (None, Expected::Jsonl(path) | Expected::Journal(path)) => RecordedSource::Jsonl(path),
    };
    let mut recorded = Recorded::new(source)?;
    let mut engine = Engine::new(limits);
    let mut model = reference.then(|| ReferenceEngine::new(limits));
    let mut report = VerifyReport::default();
    let mut sink = VecSink::default();
    let mut model_sink = VecSink::default();
    let mut failure = None;
    input.for_each(progress, |seq, event| {
        sink.outputs.clear();
        let applied_before = report.summary.events_applied;
        apply_one(&mut engine, seq, event, &mut sink, &mut report.summary);
        let fast_accepted = report.summary.events_applied > applied_before;
        report.outputs += sink.outputs.len() as u64;
        let expected = match recorded.take_through(seq) {
            Ok(expected) => expected,
            Err(e) => {
                failure = Some(e);
                return ControlFlow::Break(());
            }
        };
        for (at, outputs) in expected {
            let actual = if at == seq { &sink.outputs[..] } else { &[] };
            if outputs != actual {
                note(&mut report, at, outputs, actual.to_vec());
            }
        }
        if !recorded.had(seq) && !sink.outputs.is_empty() {
            note(&mut report, seq, Vec::new(), sink.outputs.clone());
        }
        if let Some(model) = model.as_mut() {
            model_sink.outputs.clear();
            let model_accepted = model.apply(seq, event, &mut model_sink).is_ok();
            let what = if fast_accepted == model_accepted {
                compare_models(&engine, model, &sink, &model_sink)
            } else {
                Some(format!(
                    "accepted: fast {fast_accepted}, reference {model_accepted}"
                ))
            };
            if let Some(what) = what {
                report.reference_divergences += 1;
                if report.first_reference.is_none() {
                    report.first_reference = Some(ReferenceDivergence { seq, what });
                }
            }
        }
        ControlFlow::Continue(())
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    for (at, outputs) in recorded.take_rest()? {
        note(&mut report, at, outputs, Vec::new());
    }
    report.state_hash = engine.state_hash();
    Ok(report)
}

fn note(report: &mut VerifyReport, seq: Seq, expected: Vec<Output>, actual: Vec<Output>) {
    report.divergent_events += 1;
    if report.first.is_none() {
        report.first = Some(Divergence {
            seq,
            expected,
            actual,
        });
    }
}

/// The reference model against the fast engine after one event: outputs,
/// then every account's figures.
fn compare_models(
    engine: &Engine,
    model: &ReferenceEngine,
    fast: &VecSink,
    slow: &VecSink,
) -> Option<String> {
    if fast.outputs != slow.outputs {
        return Some(format!(
            "outputs: fast {:?}, reference {:?}",
            fast.outputs, slow.outputs
        ));
    }
    let ids = model.account_ids();
    if ids != engine.account_ids() {
        return Some("the account sets differ".to_owned());
    }
    ids.into_iter().find_map(|id| {
        let (a, b) = (engine.figures(id), model.figures(id));
        (a != b).then(|| format!("account {id}: fast {a:?}, reference {b:?}"))
    })
}

enum RecordedSource<'a> {
    Journal(&'a JournalOutputReader),
    Jsonl(&'a Path),
}

/// The recorded outputs, grouped by input sequence as they are consumed.
struct Recorded<'a> {
    stream: Box<dyn Iterator<Item = Result<(Seq, Output), VerifyError>> + 'a>,
    /// The next recorded output, read ahead.
    next: Option<(Seq, Output)>,
    /// The sequence of the last group taken.
    last_taken: Option<Seq>,
}

impl<'a> Recorded<'a> {
    fn new(source: RecordedSource<'a>) -> Result<Recorded<'a>, VerifyError> {
        let stream: Box<dyn Iterator<Item = Result<(Seq, Output), VerifyError>> + 'a> = match source
        {
            RecordedSource::Journal(reader) => Box::new(reader.iter().filter_map(|record| {
                let record = match record {
                    Ok(record) => record.to_owned(),
                    Err(e) => return Some(Err(VerifyError::from(e))),
                };
                let output = match record.output {
                    OutputBody::Halt(h) => Output::Halt(h),
                    OutputBody::Liquidation { liquidation, legs } => {
                        Output::Liquidation(liquidation, legs)
                    }
                    OutputBody::Status(_) => return None,
                };
                Some(Ok((record.input_seq, output)))
            })),
            RecordedSource::Jsonl(path) => {
                let name = path.display().to_string();
                let file =
                    File::open(path).map_err(|e| JsonlError::new(&name, 0, ErrorKind::Io(e)))?;
                let reader = OutputReader::new(BufReader::new(file), name);
                Box::new(reader.map(|output| {
                    let output = output?;
                    Ok((output_seq(&output), output))
                }))
            }
        };
        let mut recorded = Recorded {
            stream,
            next: None,
            last_taken: None,
        };
        recorded.next = recorded.stream.next().transpose()?;
        Ok(recorded)
    }

    /// Every recorded output with input sequence ≤ `seq`, grouped by
    /// sequence (outputs of sequences the input lacks come out too).
    fn take_through(&mut self, seq: Seq) -> Result<Vec<(Seq, Vec<Output>)>, VerifyError> {
        let mut groups: Vec<(Seq, Vec<Output>)> = Vec::new();
        while let Some((at, _)) = &self.next {
            if *at > seq {
                break;
            }
            let (at, output) = self.next.take().expect("peeked");
            match groups.last_mut() {
                Some((last, outputs)) if *last == at => outputs.push(output),
                _ => groups.push((at, vec![output])),
            }
            self.next = self.stream.next().transpose()?;
        }
        self.last_taken = groups.last().map(|g| g.0);
        Ok(groups)
    }

    /// Whether the last [`take_through`](Self::take_through) had outputs
    /// recorded for `seq`.
    fn had(&self, seq: Seq) -> bool {
        self.last_taken == Some(seq)
    }

    /// What is left after the last input event.
    fn take_rest(&mut self) -> Result<Vec<(Seq, Vec<Output>)>, VerifyError> {
        self.take_through(Seq(u64::MAX))
    }
}

fn output_seq(output: &Output) -> Seq {
    match output {
        Output::Halt(h) => h.seq,
        Output::Liquidation(l, _) => l.seq,
    }
}

/// Runs the fast engine over `input` and journals every output in a new
/// output journal at `dir` (what the daemon would have written).
///
/// # Errors
/// The input cannot be read, or the journal cannot be written.
pub fn record_outputs(
    input: &Input,
    dir: &Path,
    options: JournalOptions,
    limits: Limits,
    progress: &mut Progress,
) -> Result<(Summary, Option<Seq>), VerifyError> {
    if dir.exists() && !journal::segment_paths(dir)?.is_empty() {
        return Err(VerifyError::OutputsExist(dir.to_path_buf()));
    }
    let mut journal = OutputJournal::open(dir, options)?;
    let mut engine = Engine::new(limits);
    let mut summary = Summary::default();
    let mut failure = None;
    input.for_each(progress, |seq, event| {
        let mut sink = journal.sink(seq);
        apply_one(&mut engine, seq, event, &mut sink, &mut summary);
        match sink.finish() {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failure = Some(e);
                ControlFlow::Break(())
            }
        }
    })?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    let last = journal.close()?;
    Ok((summary, (last.0 > 0).then_some(last)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_outputs_sit_beside_the_input() {
        let beside = |p: &str| Expected::beside(&Input::Jsonl(PathBuf::from(p)));
        assert_eq!(
            beside("dir/a.b.jsonl"),
            Expected::Jsonl(PathBuf::from("dir/a.b.expected.jsonl"))
        );
        assert_eq!(
            beside("events"),
            Expected::Jsonl(PathBuf::from("events.expected.jsonl"))
        );
        assert_eq!(
            Expected::beside(&Input::Journal(PathBuf::from("j"))),
            Expected::Journal(PathBuf::from("j/output"))
        );
    }
}
