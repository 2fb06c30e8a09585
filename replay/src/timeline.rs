//! `liqd replay timeline`: an account's `E`, `MM` and `IM` over a history,
//! one point per event that touched it (see [`crate::inspect`] for
//! "touched") or that sent it an output, with liquidation and halt markers;
//! as CSV, and as a hand-written SVG line chart.
//!
//! The chart draws the figures as step lines (a figure holds its value
//! until the next event changes it), time on the x axis, with each
//! liquidation as a red marker line and each halt of a held instrument as a
//! grey band. Pixel coordinates are computed in `f64`: that is drawing, not
//! money; every figure printed (CSV, labels of points) is the exact
//! decimal.

use std::fmt::Write as _;
use std::ops::ControlFlow;

use engine::{
    AccountId, Dec8, Engine, Figures, InstrumentId, Limits, MarginEngine, Output, Seq, UnixNanos,
    VecSink,
};

use crate::input::{Input, InputError};
use crate::inspect::Holdings;
use crate::progress::Progress;

/// The account's figures after one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Point {
    pub seq: Seq,
    pub ts: UnixNanos,
    /// `None` while unpriced.
    pub figures: Option<Figures>,
}

/// Something that happened to the account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    Liquidation {
        seq: Seq,
        ts: UnixNanos,
        partial: bool,
        bankrupt: bool,
        escalation: bool,
    },
    Halt {
        seq: Seq,
        ts: UnixNanos,
        instrument: InstrumentId,
        on: bool,
    },
}

impl Marker {
    pub fn seq(&self) -> Seq {
        match self {
            Marker::Liquidation { seq, .. } | Marker::Halt { seq, .. } => *seq,
        }
    }

    pub fn ts(&self) -> UnixNanos {
        match self {
            Marker::Liquidation { ts, .. } | Marker::Halt { ts, .. } => *ts,
        }
    }

    fn label(&self) -> String {
        match self {
            Marker::Liquidation {
                partial,
                bankrupt,
                escalation,
                ..
            } => {
                let mut s = "liquidation".to_owned();
                for (flag, on) in [
                    ("partial", partial),
                    ("bankrupt", bankrupt),
                    ("escalation", escalation),
                ] {
                    if *on {
                        s.push(' ');
                        s.push_str(flag);
                    }
                }
                s
            }
            Marker::Halt { instrument, on, .. } => {
                format!("halt {} #{instrument}", if *on { "on" } else { "off" })
            }
        }
    }
}

/// An account's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    pub account: AccountId,
    pub points: Vec<Point>,
    pub markers: Vec<Marker>,
}

/// Replays `input` and follows `account`.
///
/// # Errors
/// The input cannot be read.
pub fn timeline(
    input: &Input,
    account: AccountId,
    limits: Limits,
    progress: &mut Progress,
) -> Result<Timeline, InputError> {
    let mut engine = Engine::new(limits);
    let mut holdings = Holdings::new(account);
    let mut sink = VecSink::default();
    let mut line = Timeline {
        account,
        points: Vec::new(),
        markers: Vec::new(),
    };
    input.for_each(progress, |seq, event| {
        sink.outputs.clear();
        let _ = engine.apply(seq, event, &mut sink);
        let ts = event.ts();
        let mut touched = holdings.touches(event);
        for output in &sink.outputs {
            if !holdings.receives(output) {
                continue;
            }
            touched = true;
            line.markers.push(match output {
                Output::Liquidation(l, _) => Marker::Liquidation {
                    seq,
                    ts,
                    partial: l.partial,
                    bankrupt: l.bankrupt,
                    escalation: l.escalation,
                },
                Output::Halt(h) => Marker::Halt {
                    seq,
                    ts,
                    instrument: h.instrument,
                    on: h.on,
                },
            });
        }
        holdings.after(&engine, event);
        if touched {
            line.points.push(Point {
                seq,
                ts,
                figures: engine.figures(account),
            });
        }
        ControlFlow::Continue(())
    })?;
    Ok(line)
}

impl Timeline {
    /// `seq,ts,equity,maint_margin,initial_margin,value,markers` — one row
    /// per point; figures empty while unpriced; markers `;`-separated.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("seq,ts,equity,maint_margin,initial_margin,value,markers\n");
        for p in &self.points {
            let markers: Vec<String> = self
                .markers
                .iter()
                .filter(|m| m.seq() == p.seq)
                .map(Marker::label)
                .collect();
            let f =
                |d: fn(&Figures) -> Dec8| p.figures.map_or_else(String::new, |x| d(&x).to_string());
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{}",
                p.seq,
                p.ts,
                f(|x| x.equity),
                f(|x| x.maint_margin),
                f(|x| x.initial_margin),
                f(|x| x.value),
                markers.join(";")
            );
        }
        out
    }

    /// A one-paragraph summary for the terminal.
    pub fn summary(&self) -> String {
        let liquidations = self
            .markers
            .iter()
            .filter(|m| matches!(m, Marker::Liquidation { .. }))
            .count();
        let halts = self
            .markers
            .iter()
            .filter(|m| matches!(m, Marker::Halt { on: true, .. }))
            .count();
        let lowest = self
            .points
            .iter()
            .filter_map(|p| {
                p.figures
                    .map(|f| (Dec8(f.equity.0 - f.maint_margin.0), p.seq))
            })
            .min();
        let mut s = format!(
            "account {}: {} points, {} liquidation(s), {} halt(s)",
            self.account,
            self.points.len(),
            liquidations,
            halts
        );
        if let Some((slack, seq)) = lowest {
            let _ = write!(s, ", lowest E − MM {slack} at seq {seq}");
        }
        s
    }

    /// The chart as a standalone SVG document.
    pub fn to_svg(&self) -> String {
        Chart::new(self).render()
    }
}

// ----- SVG -----

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 520.0;
const LEFT: f64 = 96.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 56.0;
const BOTTOM: f64 = 72.0;
const TICKS: usize = 6;

/// Pixel position of an 8-place decimal (drawing only).
fn to_f64(d: Dec8) -> f64 {
    d.0 as f64 / 1e8
}

struct Chart<'a> {
    line: &'a Timeline,
    t0: u64,
    t1: u64,
    y0: f64,
    y1: f64,
}

impl<'a> Chart<'a> {
    fn new(line: &'a Timeline) -> Chart<'a> {
        let t0 = line.points.first().map_or(0, |p| p.ts.0);
        let t1 = line.points.last().map_or(1, |p| p.ts.0).max(t0 + 1);
        let mut lo = 0.0f64;
        let mut hi = 0.0f64;
        for f in line.points.iter().filter_map(|p| p.figures) {
            for d in [f.equity, f.maint_margin, f.initial_margin] {
                lo = lo.min(to_f64(d));
                hi = hi.max(to_f64(d));
            }
        }
        if hi <= lo {
            hi = lo + 1.0;
        }
        let (y0, y1) = nice_range(lo, hi);
        Chart {
            line,
            t0,
            t1,
            y0,
            y1,
        }
    }

    fn x(&self, ts: u64) -> f64 {
        let span = (self.t1 - self.t0) as f64;
        LEFT + (ts.saturating_sub(self.t0)) as f64 / span * (WIDTH - LEFT - RIGHT)
    }

    fn y(&self, v: f64) -> f64 {
        TOP + (self.y1 - v) / (self.y1 - self.y0) * (HEIGHT - TOP - BOTTOM)
    }

    fn render(&self) -> String {
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="12">"##
        );
        let _ = writeln!(
            svg,
            r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
        );
        let _ = writeln!(
            svg,
            r##"<text x="{LEFT}" y="24" font-size="16" font-weight="bold">account {}: equity E, maintenance MM, initial IM</text>"##,
            self.line.account
        );
        self.halt_bands(&mut svg);
        self.axes(&mut svg);
        self.series(&mut svg, |f| f.initial_margin, "#e69f00", "6 4");
        self.series(&mut svg, |f| f.maint_margin, "#d55e00", "");
        self.series(&mut svg, |f| f.equity, "#0072b2", "");
        self.liquidations(&mut svg);
        self.legend(&mut svg);
        svg.push_str("</svg>\n");
        svg
    }

    fn axes(&self, svg: &mut String) {
        let (x0, x1) = (LEFT, WIDTH - RIGHT);
        let (top, bottom) = (TOP, HEIGHT - BOTTOM);
        for i in 0..=TICKS {
            let v = self.y0 + (self.y1 - self.y0) * i as f64 / TICKS as f64;
            let y = self.y(v);
            let _ = writeln!(
                svg,
                r##"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                x0 - 6.0,
                y + 4.0,
                tick_label(v, self.y0.abs().max(self.y1.abs()))
            );
            let t = self.t0 + ((self.t1 - self.t0) as f64 * i as f64 / TICKS as f64) as u64;
            let x = self.x(t);
            let _ = writeln!(
                svg,
                r##"<line x1="{x:.1}" y1="{bottom}" x2="{x:.1}" y2="{:.1}" stroke="#333"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                bottom + 5.0,
                bottom + 18.0,
                time_label(t, self.t1 - self.t0)
            );
        }
        if self.y0 < 0.0 && self.y1 > 0.0 {
            let y = self.y(0.0);
            let _ = writeln!(
                svg,
                r##"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#999" stroke-dasharray="2 2"/>"##
            );
        }
        let _ = writeln!(
            svg,
            r##"<line x1="{x0}" y1="{top}" x2="{x0}" y2="{bottom}" stroke="#333"/><line x1="{x0}" y1="{bottom}" x2="{x1}" y2="{bottom}" stroke="#333"/>"##
        );
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            (x0 + x1) / 2.0,
            HEIGHT - 24.0,
            time_axis_title(self.t0, self.t1)
        );
        let _ = writeln!(
            svg,
            r##"<text transform="translate(20 {:.1}) rotate(-90)" text-anchor="middle">quote units</text>"##,
            (top + bottom) / 2.0
        );
    }

    /// A step line through the points where the account is priced.
    fn series(&self, svg: &mut String, pick: fn(&Figures) -> Dec8, colour: &str, dash: &str) {
        let mut path = String::new();
        let mut last: Option<f64> = None;
        for p in &self.line.points {
            let Some(f) = p.figures else {
                last = None;
                continue;
            };
            let (x, y) = (self.x(p.ts.0), self.y(to_f64(pick(&f))));
            match last {
                None => {
                    let _ = write!(path, "M{x:.1},{y:.1}");
                }
                Some(prev) => {
                    let _ = write!(path, " L{x:.1},{prev:.1} L{x:.1},{y:.1}");
                }
            }
            last = Some(y);
        }
        if let (Some(y), Some(p)) = (last, self.line.points.last()) {
            // Hold the last value to the right edge.
            let _ = write!(path, " L{:.1},{y:.1}", self.x(p.ts.0).max(WIDTH - RIGHT));
        }
        let dash = if dash.is_empty() {
            String::new()
        } else {
            format!(r##" stroke-dasharray="{dash}""##)
        };
        let _ = writeln!(
            svg,
            r##"<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"##
        );
    }

    fn liquidations(&self, svg: &mut String) {
        for m in &self.line.markers {
            if let Marker::Liquidation { seq, ts, .. } = m {
                let x = self.x(ts.0);
                let _ = writeln!(
                    svg,
                    r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#cc0000" stroke-dasharray="4 3"/><path d="M{:.1},{:.1} l6,-10 l-12,0 z" fill="#cc0000"/><text x="{:.1}" y="{:.1}" fill="#cc0000" font-size="11">{} (seq {seq})</text>"##,
                    HEIGHT - BOTTOM,
                    x,
                    TOP,
                    x + 4.0,
                    TOP + 12.0,
                    m.label()
                );
            }
        }
    }

    /// Grey bands from each halt's start to its end (or the right edge).
    fn halt_bands(&self, svg: &mut String) {
        let mut open: Vec<(InstrumentId, u64)> = Vec::new();
        let mut bands = Vec::new();
        for m in &self.line.markers {
            if let Marker::Halt {
                ts, instrument, on, ..
            } = m
            {
                if *on {
                    open.push((*instrument, ts.0));
                } else if let Some(i) = open.iter().position(|(id, _)| id == instrument) {
                    let (id, start) = open.remove(i);
                    bands.push((id, start, ts.0));
                }
            }
        }
        bands.extend(open.into_iter().map(|(id, start)| (id, start, self.t1)));
        for (id, start, end) in bands {
            let (x0, x1) = (self.x(start), self.x(end));
            let _ = writeln!(
                svg,
                r##"<rect x="{x0:.1}" y="{TOP}" width="{:.1}" height="{:.1}" fill="#999999" fill-opacity="0.18"/><text x="{:.1}" y="{:.1}" fill="#555" font-size="11" text-anchor="end">halt #{id}</text>"##,
                (x1 - x0).max(2.0),
                HEIGHT - TOP - BOTTOM,
                x0 - 3.0,
                TOP + 28.0
            );
        }
    }

    fn legend(&self, svg: &mut String) {
        let x = WIDTH - RIGHT - 212.0;
        let items = [
            ("equity E", "#0072b2", ""),
            ("maintenance MM", "#d55e00", ""),
            ("initial IM", "#e69f00", "6 4"),
            ("liquidation", "#cc0000", "4 3"),
        ];
        let _ = writeln!(
            svg,
            r##"<rect x="{x}" y="{TOP}" width="204" height="{}" fill="#ffffff" fill-opacity="0.9" stroke="#ccc"/>"##,
            items.len() * 18 + 26
        );
        for (i, (name, colour, dash)) in items.iter().enumerate() {
            let y = TOP + 16.0 + i as f64 * 18.0;
            let _ = writeln!(
                svg,
                r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/><text x="{:.1}" y="{:.1}">{name}</text>"##,
                x + 8.0,
                x + 36.0,
                x + 44.0,
                y + 4.0
            );
        }
        let y = TOP + 16.0 + items.len() as f64 * 18.0;
        let _ = writeln!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="28" height="10" fill="#999999" fill-opacity="0.3"/><text x="{:.1}" y="{:.1}">halt of a held instrument</text>"##,
            x + 8.0,
            y - 5.0,
            x + 44.0,
            y + 4.0
        );
    }
}

/// A range covering [lo, hi] with round tick steps.
fn nice_range(lo: f64, hi: f64) -> (f64, f64) {
    let raw = (hi - lo) / TICKS as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let y0 = (lo / step).floor() * step;
    (y0, y0 + step * TICKS as f64)
}

/// A tick value, in the unit the whole axis uses (`extent`: its largest
/// absolute value).
fn tick_label(v: f64, extent: f64) -> String {
    if extent >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if extent >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if extent >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if extent >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Event times that look like Unix time (after 2001) print as UTC clock
/// times; small ones (synthetic histories) as plain nanoseconds.
const UNIX_NANOS_2001: u64 = 978_307_200_000_000_000;

fn time_label(ts: u64, span: u64) -> String {
    if ts < UNIX_NANOS_2001 {
        return format!("{ts}");
    }
    let secs = ts / 1_000_000_000;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    if span < 10_000_000_000 {
        format!("{h:02}:{m:02}:{s:02}.{:03}", (ts / 1_000_000) % 1000)
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

fn time_axis_title(t0: u64, t1: u64) -> String {
    if t0 < UNIX_NANOS_2001 {
        return "event time ts (ns)".to_owned();
    }
    let (y, mo, d) = civil_date(t0 / 1_000_000_000 / 86_400);
    let (y1, mo1, d1) = civil_date(t1 / 1_000_000_000 / 86_400);
    if (y, mo, d) == (y1, mo1, d1) {
        format!("event time, UTC, {y:04}-{mo:02}-{d:02}")
    } else {
        format!("event time, UTC, {y:04}-{mo:02}-{d:02} to {y1:04}-{mo1:02}-{d1:02}")
    }
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic
/// Gregorian; Howard Hinnant's algorithm).
fn civil_date(days: u64) -> (i64, u32, u32) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_ranges() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(20_416), (2025, 11, 24));
        assert_eq!(nice_range(-3.0, 97.0), (-20.0, 100.0));
        let (lo, hi) = nice_range(246.75, 3396.75);
        assert!(lo <= 246.75 && hi >= 3396.75, "{lo} {hi}");
        assert_eq!(tick_label(61_900.0, 70_000.0), "61.9k");
        assert_eq!(tick_label(8_000.0, 12_000.0), "8.0k");
        assert_eq!(time_label(1_700_000_000_123_000_000, 1_000), "22:13:20.123");
    }
}
