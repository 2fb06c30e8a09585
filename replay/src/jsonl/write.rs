//! Writing JSONL: events and outputs, one line each, keys in the order of
//! the PROTOCOL.md §5 examples, decimals as plain strings.

use std::io::{self, Write};

use engine::{Event, Fixed8, Halt, Leg, Liquidation, Output, Sink, Symbol, Tier};

use super::Source;

/// Writes one event as a JSONL line (with its `\n`). Reading the line back
/// with [`parse_event`](super::parse_event) gives the same event, for every
/// event the reader can produce. A list of more than 16 tiers (which the
/// engine always rejects) keeps only its first 16 and its length: it is
/// written back with that length, the 16th tier repeated, so that it is
/// still rejected after a round trip.
///
/// # Errors
/// Writing failed, or the event holds a value the format cannot carry
/// (`Fixed8(i64::MIN)`, a symbol that is not printable ASCII):
/// `io::ErrorKind::InvalidInput`, nothing written.
pub fn write_event<W: Write + ?Sized>(out: &mut W, event: &Event) -> io::Result<()> {
    let line = event_line(event)?;
    out.write_all(line.as_bytes())
}

/// The JSONL line of one event, with its `\n`.
///
/// # Errors
/// As [`write_event`], for values the format cannot carry.
pub fn event_line(event: &Event) -> io::Result<String> {
    let mut line = String::with_capacity(160);
    let kind = event.type_name();
    let ts = event.ts();
    line.push_str(&format!("{{\"type\":\"{kind}\",\"ts\":{ts}"));
    match event {
        Event::AssetDef(e) => {
            push_uint(&mut line, "asset", e.asset.0);
            push_symbol(&mut line, "symbol", &e.symbol)?;
            push_fixed8(&mut line, "asset_weight", e.asset_weight)?;
            push_fixed8(&mut line, "liability_weight", e.liability_weight)?;
        }
        Event::InstrumentDef(e) => {
            push_uint(&mut line, "instrument", e.instrument.0);
            push_symbol(&mut line, "symbol", &e.symbol)?;
            push_fixed8(&mut line, "multiplier", e.multiplier)?;
            push_fixed8(&mut line, "liquidation_fee", e.liquidation_fee)?;
            line.push_str(",\"tiers\":[");
            let kept = e.tiers.as_slice();
            for index in 0..usize::from(e.tiers.count) {
                if index > 0 {
                    line.push(',');
                }
                push_tier(&mut line, &kept[index.min(kept.len() - 1)])?;
            }
            line.push(']');
        }
        Event::Params(e) => {
            push_bool(&mut line, "partial_liquidation", e.partial_liquidation);
            push_uint(
                &mut line,
                "liquidation_cooldown_ns",
                e.liquidation_cooldown_ns,
            );
            push_fixed8(&mut line, "warn_ratio", e.warn_ratio)?;
        }
        Event::Risk(e) => {
            push_uint(&mut line, "instrument", e.instrument.0);
            push_fixed8(&mut line, "vol_lambda", e.vol_lambda)?;
            push_fixed8(&mut line, "vol_ref", e.vol_ref)?;
            push_fixed8(&mut line, "vol_max_factor", e.vol_max_factor)?;
            push_uint(&mut line, "max_staleness_ns", e.max_staleness_ns);
            push_fixed8(&mut line, "max_jump", e.max_jump)?;
        }
        Event::Index(e) => {
            push_uint(&mut line, "asset", e.asset.0);
            push_fixed8(&mut line, "price", e.price)?;
        }
        Event::Mark(e) => {
            push_uint(&mut line, "instrument", e.instrument.0);
            push_fixed8(&mut line, "price", e.price)?;
        }
        Event::Fill(e) => {
            push_uint(&mut line, "account", e.account.0);
            push_uint(&mut line, "instrument", e.instrument.0);
            push_fixed8(&mut line, "qty", e.qty)?;
            push_fixed8(&mut line, "price", e.price)?;
            push_fixed8(&mut line, "fee", e.fee)?;
            push_uint(&mut line, "fill_id", e.fill_id);
        }
        Event::Balance(e) => {
            push_uint(&mut line, "account", e.account.0);
            push_uint(&mut line, "asset", e.asset.0);
            push_fixed8(&mut line, "amount", e.amount)?;
            push_name(&mut line, "kind", e.kind.name());
            push_uint(&mut line, "ref_id", e.ref_id);
        }
        Event::Funding(e) => {
            push_uint(&mut line, "instrument", e.instrument.0);
            push_fixed8(&mut line, "rate", e.rate)?;
        }
    }
    line.push_str("}\n");
    Ok(line)
}

fn push_tier(line: &mut String, tier: &Tier) -> io::Result<()> {
    line.push_str(&format!(
        "{{\"notional_floor\":\"{}\"",
        checked(tier.notional_floor)?
    ));
    push_fixed8(line, "mmr", tier.mmr)?;
    push_fixed8(line, "imr", tier.imr)?;
    line.push('}');
    Ok(())
}

fn push_uint(line: &mut String, key: &str, value: impl Into<u64>) {
    line.push_str(&format!(",\"{key}\":{}", value.into()));
}

fn push_bool(line: &mut String, key: &str, value: bool) {
    line.push_str(&format!(",\"{key}\":{value}"));
}

/// A value from a fixed set of plain names (no escaping needed).
fn push_name(line: &mut String, key: &str, name: &str) {
    line.push_str(&format!(",\"{key}\":\"{name}\""));
}

fn push_fixed8(line: &mut String, key: &str, value: Fixed8) -> io::Result<()> {
    line.push_str(&format!(",\"{key}\":\"{}\"", checked(value)?));
    Ok(())
}

fn checked(value: Fixed8) -> io::Result<Fixed8> {
    if value.0 == i64::MIN {
        return Err(invalid("Fixed8 -2^63 is not a valid wire decimal"));
    }
    Ok(value)
}

fn push_symbol(line: &mut String, key: &str, symbol: &Symbol) -> io::Result<()> {
    let text = symbol.as_str();
    if Symbol::new(text).ok().as_ref() != Some(symbol) {
        return Err(invalid("symbol is not printable ASCII"));
    }
    // Printable ASCII may hold `"` and `\`: let serde_json escape them.
    let quoted = serde_json::to_string(text).map_err(io::Error::other)?;
    line.push_str(&format!(",\"{key}\":{quoted}"));
    Ok(())
}

fn invalid(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Writes one halt as a JSONL line (with its `\n`).
///
/// # Errors
/// Writing failed.
pub fn write_halt<W: Write + ?Sized>(
    out: &mut W,
    halt: &Halt,
    source: Option<Source>,
) -> io::Result<()> {
    write!(
        out,
        "{{\"type\":\"halt\",\"ts\":{},\"seq\":{}",
        halt.ts, halt.seq
    )?;
    write_source(out, source)?;
    writeln!(
        out,
        ",\"instrument\":{},\"reason\":\"{}\",\"on\":{}}}",
        halt.instrument,
        halt.reason.name(),
        halt.on
    )
}

/// Writes one liquidation and its legs as one JSONL line (with its `\n`).
///
/// # Errors
/// Writing failed.
pub fn write_liquidation<W: Write + ?Sized>(
    out: &mut W,
    liquidation: &Liquidation,
    legs: &[Leg],
    source: Option<Source>,
) -> io::Result<()> {
    let l = liquidation;
    write!(
        out,
        "{{\"type\":\"liquidation\",\"ts\":{},\"seq\":{}",
        l.ts, l.seq
    )?;
    write_source(out, source)?;
    write!(
        out,
        ",\"account\":{},\"equity\":\"{}\",\"maint_margin\":\"{}\",\"partial\":{},\"bankrupt\":{},\"escalation\":{},\"legs\":[",
        l.account, l.equity, l.maint_margin, l.partial, l.bankrupt, l.escalation
    )?;
    for (index, leg) in legs.iter().enumerate() {
        let comma = if index > 0 { "," } else { "" };
        write!(
            out,
            "{comma}{{\"instrument\":{},\"qty\":\"{}\",\"limit_price\":\"{}\"}}",
            leg.instrument, leg.qty, leg.limit_price
        )?;
    }
    out.write_all(b"]}\n")
}

/// Writes one owned output as a JSONL line.
///
/// # Errors
/// Writing failed.
pub fn write_output<W: Write + ?Sized>(
    out: &mut W,
    output: &Output,
    source: Option<Source>,
) -> io::Result<()> {
    match output {
        Output::Halt(halt) => write_halt(out, halt, source),
        Output::Liquidation(liquidation, legs) => write_liquidation(out, liquidation, legs, source),
    }
}

/// The JSONL line of one output, with its `\n` (for messages and tests).
pub fn output_line(output: &Output, source: Option<Source>) -> String {
    let mut line = Vec::with_capacity(256);
    // Writing to a Vec cannot fail.
    let _ = write_output(&mut line, output, source);
    String::from_utf8_lossy(&line).into_owned()
}

fn write_source<W: Write + ?Sized>(out: &mut W, source: Option<Source>) -> io::Result<()> {
    match source {
        Some(source) => write!(
            out,
            ",\"src_stream\":\"{}\",\"src_seq\":{}",
            source.stream.name(),
            source.seq
        ),
        None => Ok(()),
    }
}

/// An engine [`Sink`] that writes each output as a JSONL line as it is
/// produced (no source fields: this is the replay's form).
///
/// A sink cannot return errors, so the first write error is kept, later
/// outputs are dropped, and [`JsonlSink::error`] / [`JsonlSink::finish`]
/// report it.
pub struct JsonlSink<W: Write> {
    out: W,
    error: Option<io::Error>,
}

impl<W: Write> JsonlSink<W> {
    pub fn new(out: W) -> JsonlSink<W> {
        JsonlSink { out, error: None }
    }

    /// The first write error so far, if any.
    pub fn error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }

    /// Flushes and gives the writer back.
    ///
    /// # Errors
    /// The first write error, or the flush's.
    pub fn finish(mut self) -> io::Result<W> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()?;
        Ok(self.out)
    }

    fn record(&mut self, result: io::Result<()>) {
        if let Err(e) = result {
            self.error.get_or_insert(e);
        }
    }
}

impl<W: Write> Sink for JsonlSink<W> {
    fn halt(&mut self, halt: &Halt) {
        if self.error.is_none() {
            let result = write_halt(&mut self.out, halt, None);
            self.record(result);
        }
    }

    fn liquidation(&mut self, liquidation: &Liquidation, legs: &[Leg]) {
        if self.error.is_none() {
            let result = write_liquidation(&mut self.out, liquidation, legs, None);
            self.record(result);
        }
    }
}
