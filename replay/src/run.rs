//! Driving an engine with events: each applied with its 1-based sequence,
//! outputs into a caller's sink, counts kept.

use std::fmt;
use std::io::BufRead;

use engine::{Event, Halt, Leg, Liquidation, MarginEngine, Output, Seq, Sink, VecSink};

use crate::jsonl::{EventReader, JsonlError};

/// What a replay did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub events_applied: u64,
    pub events_rejected: u64,
    pub liquidations: u64,
    pub halts: u64,
}

impl fmt::Display for Summary {
    /// `events_applied=… events_rejected=… liquidations=… halts=…`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "events_applied={} events_rejected={} liquidations={} halts={}",
            self.events_applied, self.events_rejected, self.liquidations, self.halts
        )
    }
}

/// Applies one event and counts what happened. A rejection is counted and
/// otherwise ignored: it changes nothing (PROTOCOL.md §5).
pub fn apply_one(
    engine: &mut dyn MarginEngine,
    seq: Seq,
    event: &Event,
    sink: &mut dyn Sink,
    summary: &mut Summary,
) {
    let mut counting = Counting {
        inner: sink,
        halts: 0,
        liquidations: 0,
    };
    match engine.apply(seq, event, &mut counting) {
        Ok(()) => summary.events_applied += 1,
        Err(_) => summary.events_rejected += 1,
    }
    summary.halts += counting.halts;
    summary.liquidations += counting.liquidations;
}

/// Applies every event of `reader` in order, event `n` (line `n`) with
/// sequence `n`, writing outputs to `sink`. `summary` holds the counts so
/// far also when reading stops early.
///
/// # Errors
/// A line that is not valid for the format, or a read error: events before
/// it have been applied.
pub fn replay<R: BufRead>(
    reader: &mut EventReader<R>,
    engine: &mut dyn MarginEngine,
    sink: &mut dyn Sink,
    summary: &mut Summary,
) -> Result<(), JsonlError> {
    while let Some(event) = reader.read_event()? {
        apply_one(engine, Seq(reader.line()), &event, sink, summary);
    }
    Ok(())
}

/// [`replay`] into a vector of owned outputs.
///
/// # Errors
/// As [`replay`].
pub fn replay_to_vec<R: BufRead>(
    reader: &mut EventReader<R>,
    engine: &mut dyn MarginEngine,
) -> Result<(Vec<Output>, Summary), JsonlError> {
    let mut sink = VecSink::default();
    let mut summary = Summary::default();
    replay(reader, engine, &mut sink, &mut summary)?;
    Ok((sink.outputs, summary))
}

/// Passes outputs through, counting them.
struct Counting<'a> {
    inner: &'a mut dyn Sink,
    halts: u64,
    liquidations: u64,
}

impl Sink for Counting<'_> {
    fn halt(&mut self, halt: &Halt) {
        self.halts += 1;
        self.inner.halt(halt);
    }

    fn liquidation(&mut self, liquidation: &Liquidation, legs: &[Leg]) {
        self.liquidations += 1;
        self.inner.liquidation(liquidation, legs);
    }
}

#[cfg(test)]
mod tests {
    use engine::{AccountId, Figures, HaltReason, InstrumentId, Reject, Stats, UnixNanos};

    use super::*;

    /// Rejects marks of price 1; emits a halt for every other mark, with
    /// the seq it was given.
    struct Toy;

    impl MarginEngine for Toy {
        fn apply(&mut self, seq: Seq, event: &Event, sink: &mut dyn Sink) -> Result<(), Reject> {
            if let Event::Mark(m) = event {
                if m.price.0 == 100_000_000 {
                    return Err(Reject::OutOfRange("price"));
                }
                sink.halt(&Halt {
                    ts: m.ts,
                    seq,
                    instrument: m.instrument,
                    reason: HaltReason::Stale,
                    on: true,
                });
            }
            Ok(())
        }

        fn figures(&self, _: AccountId) -> Option<Figures> {
            None
        }

        fn account_ids(&self) -> Vec<AccountId> {
            Vec::new()
        }

        fn stats(&self) -> Stats {
            Stats::default()
        }
    }

    #[test]
    fn events_get_their_line_number_and_are_counted() {
        let text = concat!(
            r#"{"type":"mark","ts":1,"instrument":1,"price":"2"}"#,
            "\n",
            r#"{"type":"mark","ts":2,"instrument":1,"price":"1"}"#,
            "\n",
            r#"{"type":"funding","ts":3,"instrument":1,"rate":"0"}"#,
            "\n",
            r#"{"type":"mark","ts":4,"instrument":5,"price":"3"}"#,
            "\n",
        );
        let mut reader = EventReader::new(text.as_bytes(), "t");
        let (outputs, summary) = replay_to_vec(&mut reader, &mut Toy).expect("valid");
        assert_eq!(
            summary,
            Summary {
                events_applied: 3,
                events_rejected: 1,
                liquidations: 0,
                halts: 2,
            }
        );
        let seqs: Vec<_> = outputs
            .iter()
            .map(|o| match o {
                Output::Halt(h) => (h.seq, h.ts, h.instrument),
                Output::Liquidation(l, _) => (l.seq, l.ts, InstrumentId(0)),
            })
            .collect();
        assert_eq!(
            seqs,
            [
                (Seq(1), UnixNanos(1), InstrumentId(1)),
                (Seq(4), UnixNanos(4), InstrumentId(5))
            ]
        );
        assert_eq!(
            summary.to_string(),
            "events_applied=3 events_rejected=1 liquidations=0 halts=2"
        );
    }

    #[test]
    fn counts_so_far_survive_a_format_error() {
        let text = concat!(
            r#"{"type":"mark","ts":1,"instrument":1,"price":"2"}"#,
            "\n",
            r#"{"type":"mark","ts":2}"#,
            "\n",
        );
        let mut reader = EventReader::new(text.as_bytes(), "t");
        let mut sink = VecSink::default();
        let mut summary = Summary::default();
        let err = replay(&mut reader, &mut Toy, &mut sink, &mut summary).expect_err("line 2");
        assert_eq!(err.line(), 2);
        assert_eq!((summary.events_applied, summary.halts), (1, 1));
        assert_eq!(sink.outputs.len(), 1);
    }
}
