//! Reading JSONL: one line → one event (or one output), streaming.

use std::io::{BufRead, Read};

use engine::{
    AccountId, AssetDef, AssetId, BalanceChange, BalanceKind, EngineParams, Event, Fill, Funding,
    Halt, HaltReason, IndexPrice, InstrumentDef, InstrumentId, Leg, Liquidation, MarkPrice, Output,
    RiskParams, Seq, Tier, Tiers, UnixNanos,
};

use super::error::{ErrorKind, FormatError, JsonlError};
use super::fields::{parse_object, Object};
use super::{Source, SourceStream};

/// Longest line a reader accepts by default (bytes, newline excluded). An
/// instrument with 16 tiers takes well under 2 KiB; the bound only keeps a
/// corrupt file from growing one line without limit.
pub const LINE_BYTES_MAX_DEFAULT: usize = 1 << 20;

const INPUT_TYPES: [&str; 9] = [
    "asset",
    "instrument",
    "params",
    "risk",
    "index",
    "mark",
    "fill",
    "balance",
    "funding",
];
const OUTPUT_TYPES: [&str; 3] = ["liquidation", "halt", "status"];

/// Parses one input line (without its newline) into an event.
///
/// # Errors
/// The line is not valid for PROTOCOL.md §5 (see [`FormatError`]).
pub fn parse_event(line: &str) -> Result<Event, FormatError> {
    check_not_blank(line)?;
    let fields = parse_object(line)?;
    let object = Object::new(&fields);
    let kind = object.str("type")?;
    let ts = || object.u64("ts").map(UnixNanos);
    let event = match kind {
        "asset" => Event::AssetDef(AssetDef {
            ts: ts()?,
            asset: AssetId(object.u32("asset")?),
            symbol: object.symbol("symbol")?,
            asset_weight: object.fixed8("asset_weight")?,
            liability_weight: object.fixed8("liability_weight")?,
        }),
        "instrument" => Event::InstrumentDef(InstrumentDef {
            ts: ts()?,
            instrument: InstrumentId(object.u32("instrument")?),
            symbol: object.symbol("symbol")?,
            multiplier: object.fixed8("multiplier")?,
            liquidation_fee: object.fixed8("liquidation_fee")?,
            tiers: Tiers::from_slice(&object.list("tiers", parse_tier)?),
        }),
        "params" => Event::Params(EngineParams {
            ts: ts()?,
            partial_liquidation: object.bool("partial_liquidation")?,
            liquidation_cooldown_ns: object.u64("liquidation_cooldown_ns")?,
            warn_ratio: object.fixed8("warn_ratio")?,
        }),
        "risk" => Event::Risk(RiskParams {
            ts: ts()?,
            instrument: InstrumentId(object.u32("instrument")?),
            vol_lambda: object.fixed8("vol_lambda")?,
            vol_ref: object.fixed8("vol_ref")?,
            vol_max_factor: object.fixed8("vol_max_factor")?,
            max_staleness_ns: object.u64("max_staleness_ns")?,
            max_jump: object.fixed8("max_jump")?,
        }),
        "index" => Event::Index(IndexPrice {
            ts: ts()?,
            asset: AssetId(object.u32("asset")?),
            price: object.fixed8("price")?,
        }),
        "mark" => Event::Mark(MarkPrice {
            ts: ts()?,
            instrument: InstrumentId(object.u32("instrument")?),
            price: object.fixed8("price")?,
        }),
        "fill" => Event::Fill(Fill {
            ts: ts()?,
            account: AccountId(object.u64("account")?),
            instrument: InstrumentId(object.u32("instrument")?),
            qty: object.fixed8("qty")?,
            price: object.fixed8("price")?,
            fee: object.fixed8("fee")?,
            fill_id: object.u64("fill_id")?,
        }),
        "balance" => Event::Balance(BalanceChange {
            ts: ts()?,
            account: AccountId(object.u64("account")?),
            asset: AssetId(object.u32("asset")?),
            amount: object.fixed8("amount")?,
            kind: object.name_of(
                "kind",
                "deposit, withdrawal, transfer, adjustment",
                BalanceKind::from_name,
            )?,
            ref_id: object.u64("ref_id")?,
        }),
        "funding" => Event::Funding(Funding {
            ts: ts()?,
            instrument: InstrumentId(object.u32("instrument")?),
            rate: object.fixed8("rate")?,
        }),
        other => return Err(unknown_type(other, &OUTPUT_TYPES, "input events")),
    };
    Ok(event)
}

fn parse_tier(object: &Object<'_>) -> Result<Tier, FormatError> {
    Ok(Tier {
        notional_floor: object.fixed8("notional_floor")?,
        mmr: object.fixed8("mmr")?,
        imr: object.fixed8("imr")?,
    })
}

/// One line of an output file: an engine output and where its triggering
/// event came from, if the writer knew.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputLine {
    pub output: Output,
    pub source: Option<Source>,
}

/// Parses one output line. `status` lines are not engine outputs (the
/// gateway sends them; replay neither prints nor verifies them): they give
/// `Ok(None)` without their fields being checked.
///
/// # Errors
/// The line is not valid for PROTOCOL.md §5 (see [`FormatError`]).
pub fn parse_output(line: &str) -> Result<Option<OutputLine>, FormatError> {
    check_not_blank(line)?;
    let fields = parse_object(line)?;
    let object = Object::new(&fields);
    let kind = object.str("type")?;
    let ts = || object.u64("ts").map(UnixNanos);
    let seq = || object.u64("seq").map(Seq);
    let output = match kind {
        "halt" => Output::Halt(Halt {
            ts: ts()?,
            seq: seq()?,
            instrument: InstrumentId(object.u32("instrument")?),
            reason: object.name_of("reason", "stale, jump", HaltReason::from_name)?,
            on: object.bool("on")?,
        }),
        "liquidation" => Output::Liquidation(
            Liquidation {
                ts: ts()?,
                seq: seq()?,
                account: AccountId(object.u64("account")?),
                equity: object.dec8("equity")?,
                maint_margin: object.dec8("maint_margin")?,
                partial: object.bool("partial")?,
                bankrupt: object.bool("bankrupt")?,
                escalation: object.bool("escalation")?,
            },
            object.list("legs", parse_leg)?,
        ),
        "status" => return Ok(None),
        other => return Err(unknown_type(other, &INPUT_TYPES, "outputs")),
    };
    let source = parse_source(&object)?;
    Ok(Some(OutputLine { output, source }))
}

fn parse_leg(object: &Object<'_>) -> Result<Leg, FormatError> {
    Ok(Leg {
        instrument: InstrumentId(object.u32("instrument")?),
        qty: object.dec8("qty")?,
        limit_price: object.dec8("limit_price")?,
    })
}

fn parse_source(object: &Object<'_>) -> Result<Option<Source>, FormatError> {
    match (object.has("src_stream"), object.has("src_seq")) {
        (false, false) => Ok(None),
        (true, true) => Ok(Some(Source {
            stream: object.name_of(
                "src_stream",
                "md, orders, admin, config",
                SourceStream::from_name,
            )?,
            seq: object.u64("src_seq")?,
        })),
        _ => Err(FormatError::PartialSource),
    }
}

fn unknown_type(found: &str, other_direction: &[&str], expected: &'static str) -> FormatError {
    if other_direction.contains(&found) {
        FormatError::WrongDirection {
            found: found.to_owned(),
            expected,
        }
    } else {
        FormatError::UnknownType(found.to_owned())
    }
}

/// JSON's whitespace only: a line of other Unicode spaces is "not JSON".
fn check_not_blank(line: &str) -> Result<(), FormatError> {
    if line.trim_matches([' ', '\t', '\r', '\n']).is_empty() {
        Err(FormatError::BlankLine)
    } else {
        Ok(())
    }
}

/// Numbered lines of a `BufRead`, each bounded in length and checked to be
/// UTF-8. One buffer is reused for every line.
struct Lines<R> {
    input: R,
    file: String,
    /// Number of the line last read (0 before the first).
    line: u64,
    line_bytes_max: usize,
    buffer: Vec<u8>,
    /// Set by the first error: reading stops there.
    stopped: bool,
}

impl<R: BufRead> Lines<R> {
    fn new(input: R, file: String) -> Lines<R> {
        Lines {
            input,
            file,
            line: 0,
            line_bytes_max: LINE_BYTES_MAX_DEFAULT,
            buffer: Vec::new(),
            stopped: false,
        }
    }

    fn error(&mut self, kind: ErrorKind) -> JsonlError {
        self.stopped = true;
        JsonlError::new(&self.file, self.line, kind)
    }

    /// The next line without its `\n` (a final line may lack one), or
    /// `None` at the end of the input or after an error.
    fn next_line(&mut self) -> Result<Option<&str>, JsonlError> {
        if self.stopped {
            return Ok(None);
        }
        self.buffer.clear();
        // One byte beyond the bound tells a line of exactly the bound's
        // length (then its newline) from a longer one.
        let limit = u64::try_from(self.line_bytes_max)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let read = (&mut self.input)
            .take(limit)
            .read_until(b'\n', &mut self.buffer);
        match read {
            Ok(0) => {
                self.stopped = true;
                return Ok(None);
            }
            Ok(_) => {}
            Err(e) => {
                self.line += 1;
                return Err(self.error(ErrorKind::Io(e)));
            }
        }
        self.line += 1;
        if self.buffer.last() == Some(&b'\n') {
            self.buffer.pop();
        }
        if self.buffer.len() > self.line_bytes_max {
            let max = self.line_bytes_max;
            return Err(self.error(FormatError::LineTooLong(max).into()));
        }
        if let Err(e) = std::str::from_utf8(&self.buffer) {
            return Err(self.error(FormatError::NotUtf8(e.valid_up_to()).into()));
        }
        // Checked just above; the fallback is never taken.
        Ok(Some(std::str::from_utf8(&self.buffer).unwrap_or("")))
    }

    /// Reads the next line and parses it with `parse`.
    fn next_parsed<T>(
        &mut self,
        parse: impl Fn(&str) -> Result<T, FormatError>,
    ) -> Result<Option<T>, JsonlError> {
        let parsed = match self.next_line()? {
            None => return Ok(None),
            Some(line) => parse(line),
        };
        match parsed {
            Ok(value) => Ok(Some(value)),
            Err(e) => Err(self.error(e.into())),
        }
    }
}

/// Streams the events of a JSONL file, one line at a time.
///
/// Stops at the first line that is not valid for the format (or at an I/O
/// error): that call returns the error, every later one `Ok(None)`. The
/// event on line `n` is the file's `n`th event, so [`EventReader::line`]
/// after a successful read is the event's 1-based journal sequence.
pub struct EventReader<R> {
    lines: Lines<R>,
}

impl<R: BufRead> EventReader<R> {
    /// `file` names the input in error messages.
    pub fn new(input: R, file: impl Into<String>) -> EventReader<R> {
        EventReader {
            lines: Lines::new(input, file.into()),
        }
    }

    /// Overrides the longest accepted line ([`LINE_BYTES_MAX_DEFAULT`]).
    #[must_use]
    pub fn with_line_bytes_max(mut self, line_bytes_max: usize) -> EventReader<R> {
        self.lines.line_bytes_max = line_bytes_max;
        self
    }

    /// The next event, `Ok(None)` at the end.
    ///
    /// # Errors
    /// The next line is not valid for the format, or reading failed. The
    /// error names the file and line; reading stops there.
    pub fn read_event(&mut self) -> Result<Option<Event>, JsonlError> {
        self.lines.next_parsed(parse_event)
    }

    /// The number of the line last read (0 before the first).
    pub fn line(&self) -> u64 {
        self.lines.line
    }

    /// The file name used in errors.
    pub fn file(&self) -> &str {
        &self.lines.file
    }
}

impl<R: BufRead> Iterator for EventReader<R> {
    type Item = Result<Event, JsonlError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.read_event().transpose()
    }
}

/// Streams the engine outputs of a JSONL output file (e.g. a scenario's
/// expected outputs), skipping `status` lines. Stops at the first error,
/// like [`EventReader`].
pub struct OutputReader<R> {
    lines: Lines<R>,
}

impl<R: BufRead> OutputReader<R> {
    /// `file` names the input in error messages.
    pub fn new(input: R, file: impl Into<String>) -> OutputReader<R> {
        OutputReader {
            lines: Lines::new(input, file.into()),
        }
    }

    /// The next output line with its source, `Ok(None)` at the end.
    ///
    /// # Errors
    /// The next line is not valid for the format, or reading failed.
    pub fn read_output_line(&mut self) -> Result<Option<OutputLine>, JsonlError> {
        loop {
            match self.lines.next_parsed(parse_output)? {
                None => return Ok(None),
                Some(None) => continue,
                Some(Some(line)) => return Ok(Some(line)),
            }
        }
    }

    /// The number of the line last read (0 before the first).
    pub fn line(&self) -> u64 {
        self.lines.line
    }
}

impl<R: BufRead> Iterator for OutputReader<R> {
    type Item = Result<Output, JsonlError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.read_output_line()
            .map(|line| line.map(|l| l.output))
            .transpose()
    }
}
