//! Latency harnesses: `liqd bench pipeline` (the daemon's pipeline in
//! process, no sockets) and `liqd bench wire` (UDP loopback through a
//! running `liqd run`), with their reports: a table, JSON, HdrHistogram
//! `.hgrm` percentile files and an SVG percentile plot.
//!
//! Decisions taken (see `BENCHMARKS.md` § Latency for the figures):
//! - **Open loop.** The load generator follows a fixed schedule of
//!   intended send times (`start + i / rate`) and never waits for an
//!   answer before sending the next event. Every latency is measured from
//!   the event's *intended* send time, not from when it was actually sent,
//!   so a stall anywhere (the pipeline, the generator, the receiver, the
//!   host descheduling a thread) is charged to every event scheduled during
//!   it: no coordinated omission. The tests inject a stall and check that
//!   the events scheduled during it carry it.
//! - **Warm-up.** Each run first sends `warmup` events on the same
//!   schedule (page faults, caches, branch predictors), drains, and only
//!   then records.
//! - **Pinning.** Where the host allows, the generator/receiver thread and
//!   the engine thread are pinned to different cores (`core_affinity`);
//!   the report records whether pinning succeeded and the machine (CPU
//!   model, logical CPUs, kernel).
//! - Histograms are `hdrhistogram` with 3 significant digits from 1 ns to
//!   60 s; percentiles are its highest-equivalent values, clamped to the
//!   exact max.

pub mod hgrm;
pub mod pipeline;
pub mod svg;
pub mod wire;

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::Machine;

/// Largest latency a histogram resolves (larger values are clamped).
pub const LATENCY_NS_MAX: u64 = 60_000_000_000;

/// A fresh latency histogram (ns, 3 significant digits).
///
/// # Panics
/// Never: the bounds are constants that hdrhistogram accepts.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3).expect("valid histogram bounds")
}

/// Percentiles of one run, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let max = h.max();
        let at = |q: f64| h.value_at_quantile(q).min(max);
        Percentiles {
            count: h.len(),
            min: h.min(),
            mean: h.mean(),
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p999: at(0.999),
            p9999: at(0.9999),
            max,
        }
    }
}

/// One measured run (one rate of a sweep, or the echo baseline).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Run {
    /// Names the run in tables, file names and plot legends.
    pub label: String,
    /// `pipeline`, `wire` or `echo`.
    pub kind: String,
    pub path: String,
    pub accounts: u32,
    /// Offered rate, events per second.
    pub offered_per_s: f64,
    /// Events completed per second from the first intended send to the
    /// last completion.
    pub achieved_per_s: f64,
    /// Measured events (after the warm-up).
    pub events: u64,
    pub warmup_events: u64,
    /// Latency from the intended send time (open loop).
    pub latency: Percentiles,
    /// How late the generator actually sent, against the schedule
    /// (its own lag; already included in `latency`).
    pub send_lag: Percentiles,
    /// Decisions seen during the measured events.
    pub liquidations: u64,
    pub halts: u64,
    /// Pipeline: events the engine rejected (should be 0). Wire: pings
    /// sent and never answered (datagram loss, or later than the linger).
    pub rejected: u64,
    /// Engine apply time alone for the same stream (`liqd bench engine`
    /// on the same scenario), when measured.
    #[serde(default)]
    pub engine_only: Option<Percentiles>,
    /// How much the host let the harness's threads run during the
    /// measured events (Linux schedstat; None elsewhere).
    #[serde(default)]
    pub sched: Option<Sched>,
    /// The histogram behind `latency` (for `.hgrm` files and plots).
    #[serde(skip)]
    pub histogram: Option<Histogram<u64>>,
}

/// Time on CPU and time runnable but waiting for a CPU (the run queue),
/// in ms, of the generator/gateway thread and of the engine thread over the
/// measured events: on a shared host the tail latency is mostly the
/// second figure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sched {
    pub wall_ms: f64,
    pub generator_run_ms: f64,
    pub generator_wait_ms: f64,
    pub engine_run_ms: f64,
    pub engine_wait_ms: f64,
}

/// (on-CPU ns, run-queue wait ns) of a thread of this process, from
/// `/proc/self/task/TID/schedstat`; `None` for the calling thread means
/// `/proc/thread-self`.
pub(crate) fn schedstat(tid: Option<u32>) -> Option<(u64, u64)> {
    let path = match tid {
        Some(tid) => format!("/proc/self/task/{tid}/schedstat"),
        None => "/proc/thread-self/schedstat".to_owned(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    let mut it = text.split_whitespace().map(|x| x.parse::<u64>().ok());
    Some((it.next()??, it.next()??))
}

/// The id of this process's thread named `name`.
pub(crate) fn thread_named(name: &str) -> Option<u32> {
    std::fs::read_dir("/proc/self/task")
        .ok()?
        .find_map(|entry| {
            let entry = entry.ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (comm.trim() == name)
                .then(|| entry.file_name().to_str()?.parse().ok())
                .flatten()
        })
}

/// Where the threads ran.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Pinning {
    /// Core of the generator/receiver thread, if pinned.
    pub generator: Option<usize>,
    /// Core of the engine thread, if asked (the daemon warns when it
    /// cannot pin).
    pub engine: Option<usize>,
}

/// A whole benchmark invocation.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `pipeline` or `wire`.
    pub bench: String,
    /// The command line that produced it.
    pub command: String,
    pub machine: Machine,
    /// Load average when the runs started (1, 5, 15 min; Linux).
    pub load_average: [f64; 3],
    pub pinning: Pinning,
    pub runs: Vec<Run>,
    /// Free-text notes (what the figures mean, the wire echo ratio).
    pub notes: Vec<String>,
}

impl Report {
    /// The human table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let [l1, l5, l15] = self.load_average;
        let _ = writeln!(
            out,
            "liqd bench {} — {} ({} logical CPUs), kernel {}, {} build, load {l1:.2} {l5:.2} {l15:.2}; pinning: generator {:?}, engine {:?}",
            self.bench, m.cpu, m.cpus, m.kernel, m.build, self.pinning.generator, self.pinning.engine
        );
        let _ = writeln!(
            out,
            "latency from the intended send time (open loop), µs\n{:<28} {:>10} {:>10} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>7} {:>6}",
            "run", "offered/s", "achieved/s", "events", "p50", "p90", "p99", "p99.9", "p99.99", "max", "liq", "halts"
        );
        for r in &self.runs {
            let l = &r.latency;
            let _ = writeln!(
                out,
                "{:<28} {:>10} {:>10} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>7} {:>6}",
                r.label,
                rate(r.offered_per_s),
                rate(r.achieved_per_s),
                r.events,
                us(l.p50),
                us(l.p90),
                us(l.p99),
                us(l.p999),
                us(l.p9999),
                us(l.max),
                r.liquidations,
                r.halts,
            );
            if let Some(e) = &r.engine_only {
                let _ = writeln!(
                    out,
                    "{:<28} {:>10} {:>10} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}   (engine apply alone, same stream)",
                    "  engine share",
                    "",
                    "",
                    e.count,
                    us(e.p50),
                    us(e.p90),
                    us(e.p99),
                    us(e.p999),
                    us(e.p9999),
                    us(e.max),
                );
            }
            if let Some(sc) = &r.sched {
                let _ = writeln!(
                    out,
                    "{:<28} host: over {:.0} ms the generator ran {:.0} ms and waited {:.0} ms for a CPU; the engine thread ran {:.0} ms and waited {:.0} ms",
                    "", sc.wall_ms, sc.generator_run_ms, sc.generator_wait_ms, sc.engine_run_ms, sc.engine_wait_ms
                );
            }
            if r.send_lag.max > 0 {
                let _ = writeln!(
                    out,
                    "{:<28} send lag behind schedule p50 {} p99 {} max {} µs{}",
                    "",
                    us(r.send_lag.p50),
                    us(r.send_lag.p99),
                    us(r.send_lag.max),
                    if r.rejected > 0 {
                        let what = if r.kind == "pipeline" {
                            "rejected"
                        } else {
                            "unanswered (lost)"
                        };
                        format!("; {} {what}", r.rejected)
                    } else {
                        String::new()
                    }
                );
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "{note}");
        }
        out
    }

    /// One JSON object (histograms left out; see `--hgrm`).
    ///
    /// # Errors
    /// Never in practice (plain data); serde's error otherwise.
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }
}

/// Nanoseconds as microseconds with 2 decimals.
pub fn us(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1_000.0)
}

fn rate(per_s: f64) -> String {
    if per_s >= 1e6 {
        format!("{:.2}M", per_s / 1e6)
    } else if per_s >= 1e3 {
        format!("{:.1}k", per_s / 1e3)
    } else {
        format!("{per_s:.0}")
    }
}

/// Parses a rate: `5000`, `100k`, `1m`, `2.5M`.
pub fn parse_rate(text: &str) -> Option<f64> {
    let text = text.trim();
    let (number, scale) = match text.chars().last()? {
        'k' | 'K' => (&text[..text.len() - 1], 1e3),
        'm' | 'M' => (&text[..text.len() - 1], 1e6),
        _ => (text, 1.0),
    };
    let value: f64 = number.parse().ok()?;
    let value = value * scale;
    (value.is_finite() && (1.0..=1e9).contains(&value)).then_some(value)
}

/// Parses a comma-separated list of rates.
pub fn parse_rates(text: &str) -> Option<Vec<f64>> {
    text.split(',').map(parse_rate).collect()
}

/// The 1-, 5- and 15-minute load averages (zeros where unknown).
pub fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|x| x.parse().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

/// Pins the calling thread to `core` if the host offers it; returns
/// whether it did.
pub fn pin(core: usize) -> bool {
    let Some(ids) = core_affinity::get_core_ids() else {
        return false;
    };
    ids.iter()
        .find(|c| c.id == core)
        .is_some_and(|id| core_affinity::set_for_current(*id))
}

/// Asks for precise sleeps on this thread (Linux timer slack, default
/// 50 µs); best effort.
pub(crate) fn set_timer_slack_ns(ns: u64) {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and affects
    // only the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = ns;
}

/// The cores this process may run on.
pub fn cores() -> Vec<usize> {
    core_affinity::get_core_ids()
        .unwrap_or_default()
        .iter()
        .map(|c| c.id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_suffixes_and_reject_nonsense() {
        assert_eq!(
            parse_rates("100k,1m,5M,2500"),
            Some(vec![1e5, 1e6, 5e6, 2500.0])
        );
        assert_eq!(parse_rate("0"), None);
        assert_eq!(parse_rate("-5k"), None);
        assert_eq!(parse_rate("fast"), None);
        assert_eq!(parse_rates("1k,,2k"), None);
    }

    #[test]
    fn percentiles_are_clamped_to_the_exact_max() {
        let mut h = histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000 + 7).expect("in range");
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 1000);
        assert_eq!(p.max, h.max());
        assert!(p.p50 >= 499_000 && p.p50 <= 501_600, "{p:?}");
        assert!(p.p9999 <= p.max);
        assert!(p.p50 <= p.p90 && p.p90 <= p.p99 && p.p99 <= p.p999);
    }
}
