//! The engine benchmark behind `liqd bench engine`: a seeded population of
//! accounts (1..K positions each, some non-quote collateral and liabilities,
//! a leverage spread that puts about 1 % of accounts within 2 % of their
//! maintenance requirement) driven through a seeded stream of events —
//! marks and index prices along a price path, fills, funding — timing every
//! event, for the fast engine (trigger index or per-holder revaluation,
//! [`EvaluationMode`]) or the reference model.
//!
//! Paths: `quiet` oscillates every price by 10⁻⁶ of itself (a tick that
//! should cross nothing), `walk` is a random walk whose steps are uniform
//! in ±0.5 bp times a per-market factor (1..8), `crash` is the walk with a
//! −30 % fall over 300 ticks per market and a rebound to −10 %, `flash`
//! is the walk with one −20 % tick per market (instruments carry a 5 %
//! `max_jump`, so the jump guard holds the mark and halts the instrument
//! until the next tick confirms it) followed by a rebound to −5 %, and
//! `funding` is the walk with a funding storm: every
//! [`FUNDING_STORM_EVERY`]-th event is a 0.5 % funding payment (longs pay)
//! on the next instrument, whatever the mix. Every
//! instrument has RiskParams with `vol_max_factor` 1 by default: the engine
//! measures its volatility (for the `NotionalVol` split) while `f` stays 1.
//!
//! The stream interleaves the event kinds of a [`Mix`] by smooth weighted
//! round-robin (no randomness: `marks=90,fills=10` is 9 marks then a fill,
//! over and over). Prices go round-robin over the instruments' marks and
//! the assets' index prices; a fill trades ±0.00001 of a random account on
//! a random instrument at the current mark; funding goes round-robin over
//! the instruments at ±0.0001. Funding pays every holder, so it evaluates
//! every holder of the instrument: at 1M accounts one funding event costs
//! what ~10⁶ fills do (venues fund every 1–8 hours, not every 50 events).
//!
//! Decisions taken: latencies are hdrhistogram percentiles of the apply
//! time of each event (a timer around `apply`; its own cost, `timer_ns`,
//! is measured and reported, not subtracted); `events_per_s` is events per
//! second of summed apply time (so it includes one timer read per event);
//! memory is the engine's reserved capacity (`Engine::memory`) plus the
//! resident-set growth while building the population (Linux).

pub mod latency;
mod population;
mod recording;

pub use recording::population_events;

use std::fmt::{self, Write as _};
use std::str::FromStr;
use std::time::Instant;

use engine::reference::ReferenceEngine;
use engine::*;
use hdrhistogram::Histogram;
use serde::Serialize;

use population::{fast_engine, limits, populate, Feed, Rng, E8, INDEX_BASES, LANE_VOL, MARK_BASES};

/// What the benchmark drives: the fast engine (either mode) or the
/// reference model.
trait Subject: MarginEngine {
    fn trigger_stats(&self) -> TriggerStats {
        TriggerStats::default()
    }
    fn memory(&self) -> Option<MemoryUse> {
        None
    }
    fn armed_triggers(&self) -> usize {
        0
    }
}

impl Subject for Engine {
    fn trigger_stats(&self) -> TriggerStats {
        Engine::trigger_stats(self)
    }
    fn memory(&self) -> Option<MemoryUse> {
        Some(Engine::memory(self))
    }
    fn armed_triggers(&self) -> usize {
        Engine::armed_triggers(self)
    }
}

impl Subject for ReferenceEngine {}

/// A price path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Path {
    Quiet,
    Walk,
    Crash,
    /// The walk with a one-tick −20 % flash crash per market, held by the
    /// jump guard (halt), then a rebound.
    Flash,
    /// The walk with a 0.5 % funding payment every
    /// [`FUNDING_STORM_EVERY`] events.
    Funding,
}

/// One event in this many is a funding payment on [`Path::Funding`].
pub const FUNDING_STORM_EVERY: u64 = 5_000;

/// `max_jump` of every instrument on [`Path::Flash`] (5 %).
pub(crate) const FLASH_MAX_JUMP: Fixed8 = Fixed8(5_000_000);

impl Path {
    /// Every path, in the order of the docs.
    pub const ALL: [Path; 5] = [
        Path::Quiet,
        Path::Walk,
        Path::Crash,
        Path::Flash,
        Path::Funding,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Path::Quiet => "quiet",
            Path::Walk => "walk",
            Path::Crash => "crash",
            Path::Flash => "flash",
            Path::Funding => "funding",
        }
    }

    pub fn parse(text: &str) -> Option<Path> {
        match text {
            "quiet" => Some(Path::Quiet),
            "walk" => Some(Path::Walk),
            "crash" => Some(Path::Crash),
            "flash" => Some(Path::Flash),
            "funding" => Some(Path::Funding),
            _ => None,
        }
    }
}

/// Which implementation of MARGIN.md is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Subjects {
    /// `engine::Engine` (in the configured [`EvaluationMode`]).
    Fast,
    /// `engine::reference::ReferenceEngine`: every account after every
    /// event, in exact rationals. Keep the population small.
    Reference,
}

/// Relative weights of the event kinds in the timed stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mix {
    /// Marks and index prices (along the path).
    pub marks: u32,
    pub fills: u32,
    pub funding: u32,
}

/// Largest weight of one kind in a [`Mix`].
pub const MIX_WEIGHT_MAX: u32 = 1_000_000;

impl Mix {
    pub const MARKS_ONLY: Mix = Mix {
        marks: 1,
        fills: 0,
        funding: 0,
    };

    fn weights(&self) -> [u64; 3] {
        [
            u64::from(self.marks),
            u64::from(self.fills),
            u64::from(self.funding),
        ]
    }
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            marks: 90,
            fills: 10,
            funding: 0,
        }
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "marks={},fills={},funding={}",
            self.marks, self.fills, self.funding
        )
    }
}

impl FromStr for Mix {
    type Err = String;

    /// `marks=90,fills=8,funding=2`: each kind at most once, any order;
    /// a kind not named has weight 0; at least one weight must be > 0.
    fn from_str(text: &str) -> Result<Mix, String> {
        let mut mix = Mix {
            marks: 0,
            fills: 0,
            funding: 0,
        };
        let mut seen = [false; 3];
        for part in text.split(',') {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected KIND=WEIGHT"))?;
            let weight: u32 = weight
                .parse()
                .ok()
                .filter(|w| *w <= MIX_WEIGHT_MAX)
                .ok_or_else(|| format!("`{part}`: weight must be 0..={MIX_WEIGHT_MAX}"))?;
            let (n, slot) = match name {
                "marks" => (0, &mut mix.marks),
                "fills" => (1, &mut mix.fills),
                "funding" => (2, &mut mix.funding),
                _ => return Err(format!("`{name}`: kinds are marks, fills, funding")),
            };
            if seen[n] {
                return Err(format!("`{name}` given twice"));
            }
            seen[n] = true;
            *slot = weight;
        }
        if mix.weights().iter().all(|w| *w == 0) {
            return Err("every weight is 0".to_owned());
        }
        Ok(mix)
    }
}

impl Serialize for Mix {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Mark,
    Fill,
    Funding,
}

/// Smooth weighted round-robin over the kinds of a [`Mix`]: every prefix of
/// the schedule is within one event of the exact proportions.
struct Schedule {
    weights: [u64; 3],
    total: u64,
    credit: [i64; 3],
}

impl Schedule {
    fn new(mix: Mix) -> Schedule {
        let weights = mix.weights();
        Schedule {
            weights,
            total: weights.iter().sum::<u64>().max(1),
            credit: [0; 3],
        }
    }

    fn next(&mut self) -> Kind {
        for (c, w) in self.credit.iter_mut().zip(self.weights) {
            *c += w as i64;
        }
        let mut pick = 0;
        for n in 1..3 {
            if self.credit[n] > self.credit[pick] {
                pick = n;
            }
        }
        self.credit[pick] -= self.total as i64;
        [Kind::Mark, Kind::Fill, Kind::Funding][pick]
    }
}

/// How events are timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Timing {
    /// A timer around every `apply`: latency percentiles per kind, and
    /// every per-mark figure; `events_per_s` includes one timer per event.
    Event,
    /// The stream is generated [`BATCH_EVENTS`] events ahead into a buffer
    /// (as an input ring holds them) and each batch applied under one timer:
    /// `events_per_s` and the mean only (no percentiles, no per-mark
    /// attribution: counters are totals over all events).
    Batch,
}

/// Events per timed batch in [`Timing::Batch`].
pub const BATCH_EVENTS: usize = 256;

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub accounts: u32,
    /// Instruments (1..=8).
    pub instruments: u32,
    /// Non-quote collateral assets (0..=4).
    pub assets: u32,
    /// Events to time (after the population is built).
    pub events: u64,
    pub mix: Mix,
    pub path: Path,
    pub subject: Subjects,
    /// The fast engine's mode (ignored for the reference model).
    pub mode: EvaluationMode,
    pub split: SplitStrategy,
    pub seed: u64,
    pub timing: Timing,
    /// Every instrument's `vol_max_factor`, in hundredths (100: f stays 1;
    /// above, a volatile path raises f, which re-arms the positions armed
    /// for a lower factor).
    pub vol_max_factor_hundredths: u32,
    /// Every instrument's `vol_ref`, in basis points.
    pub vol_ref_bp: u32,
    /// `EngineConfig::vol_headroom`, in percent.
    pub vol_headroom_pct: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            accounts: 100_000,
            instruments: 4,
            assets: 2,
            events: 100_000,
            mix: Mix::default(),
            path: Path::Walk,
            subject: Subjects::Fast,
            mode: EvaluationMode::Triggers,
            split: SplitStrategy::Notional,
            seed: 1,
            timing: Timing::Event,
            vol_max_factor_hundredths: 100,
            vol_ref_bp: 10,
            vol_headroom_pct: 25,
        }
    }
}

/// Nanosecond latency summary (hdrhistogram percentiles, 3 significant
/// digits; mean and max exact).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean: u64,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// Apply times of one event kind.
struct Recorder {
    histogram: Histogram<u64>,
    sum: u64,
    max: u64,
}

impl Recorder {
    fn new() -> Recorder {
        Recorder {
            // 1 ns .. 1 hour, 3 significant digits (~ 200 KiB).
            histogram: Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
                .expect("valid histogram bounds"),
            sum: 0,
            max: 0,
        }
    }

    fn record(&mut self, ns: u64) {
        self.histogram.saturating_record(ns.max(1));
        self.sum += ns;
        self.max = self.max.max(ns);
    }

    fn latency(&self) -> Latency {
        let count = self.histogram.len();
        if count == 0 {
            return Latency::default();
        }
        let at = |q: f64| self.histogram.value_at_quantile(q).min(self.max);
        Latency {
            count,
            mean: self.sum / count,
            p50: at(0.5),
            p99: at(0.99),
            p999: at(0.999),
            max: self.max,
        }
    }
}

/// Where the benchmark ran.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cpus: usize,
    /// `release` or `debug` (of the benchmark code, hence the engine).
    pub build: &'static str,
    /// Kernel release (`uname -r`, from /proc/sys/kernel/osrelease).
    pub kernel: String,
}

impl Machine {
    /// This host (CPU model from /proc/cpuinfo, logical CPUs, kernel).
    pub fn here() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, name)| name.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        Machine {
            cpu,
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".to_owned(), |k| k.trim().to_owned()),
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `fast` or `reference`.
    pub engine: Subjects,
    /// The fast engine's mode (`Triggers`, `AllHolders`) or `Reference`.
    pub mode: String,
    pub split: String,
    pub path: Path,
    pub mix: Mix,
    pub seed: u64,
    pub timing: Timing,
    pub accounts: u32,
    pub instruments: u32,
    pub assets: u32,
    /// Open positions and non-zero non-quote balances after the setup.
    pub positions: u64,
    pub balances: u64,
    /// Seconds to build the population (accounts, fills, withdrawals).
    pub setup_s: f64,
    /// Timed events, and of them marks (and index prices), fills, funding.
    pub events: u64,
    pub marks: u64,
    pub fills: u64,
    pub fundings: u64,
    /// Timed events the engine refused (a fill over a limit, say).
    pub rejected: u64,
    /// Timed events per second of apply time.
    pub events_per_s: f64,
    /// Median cost of the timer itself (one `Instant` pair), included in
    /// every sample below.
    pub timer_ns: u64,
    pub ns_per_event: Latency,
    /// Marks and index prices.
    pub ns_per_mark: Latency,
    pub ns_per_fill: Latency,
    pub ns_per_funding: Latency,
    /// Triggers popped per mark (Triggers mode).
    pub crossed_per_mark: f64,
    /// Accounts re-armed per mark.
    pub rearms_per_mark: f64,
    /// Accounts evaluated exactly per mark.
    pub evaluations_per_mark: f64,
    /// Fraction of marks that evaluated nobody.
    pub silent_marks: f64,
    /// Apply time of the marks that evaluated someone, per evaluation.
    pub ns_per_evaluation: f64,
    /// The same over the marks that evaluated someone but liquidated
    /// nobody: the cost of a pop + exact revaluation + re-arm.
    pub ns_per_rearm: f64,
    /// Liquidations emitted by the timed events.
    pub liquidations: u64,
    /// Liquidations per second of apply time during the crash's fall.
    pub liquidations_per_s_in_fall: f64,
    /// Engine heap bytes (reserved capacity, `Engine::memory`) in all, and
    /// per account (all of it), per position slot (position slab, holder
    /// lists and position trigger heaps over the reserved slots) and per
    /// balance slot. 0 for the reference model.
    pub memory_bytes: u64,
    pub bytes_per_account: f64,
    pub bytes_per_position: f64,
    pub bytes_per_balance: f64,
    /// Resident-set growth while building the population, per account
    /// (Linux; 0 where unknown).
    pub rss_bytes_per_account: f64,
    /// Triggers armed at the end.
    pub armed_triggers: u64,
    /// Events that evaluated every holder of an instrument or asset (first
    /// prices, funding, vol-factor rises in AllHolders mode).
    pub holder_sweeps: u64,
    pub machine: Machine,
}

/// Runs one benchmark.
///
/// # Panics
/// If `opts` asks for more than the engine's limits allow (more than
/// 2³¹ accounts); the population's own events are valid by construction.
pub fn run(opts: &Options) -> Report {
    let rss_before = resident_bytes();
    match opts.subject {
        Subjects::Reference => {
            let mut engine = ReferenceEngine::new(limits(opts));
            run_on(&mut engine, opts, rss_before)
        }
        Subjects::Fast => {
            let mut engine = fast_engine(opts);
            run_on(&mut engine, opts, rss_before)
        }
    }
}

/// The fast engine with the seeded population of `opts` built (no timed
/// events): the book the criterion benchmarks arm accounts of.
pub fn book(opts: &Options) -> Engine {
    let mut engine = fast_engine(opts);
    let mut rng = Rng(opts.seed.max(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    populate(&mut engine, opts, &mut rng);
    engine
}

/// The fast engine with the seeded population of `opts` built, and the
/// seeded event stream `liqd bench engine` times after it (the same events
/// for the same options): the scenario the latency harnesses drive through
/// the daemon's pipeline.
pub fn scenario(opts: &Options) -> (Engine, Stream) {
    let mut engine = fast_engine(opts);
    let mut rng = Rng(opts.seed.max(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    populate(&mut engine, opts, &mut rng);
    (engine, Stream::new(opts, rng))
}

/// The id of the population's `n`-th account.
pub fn account_id(n: u32) -> AccountId {
    AccountId(u64::from(n) * 7 + 3)
}

/// Counters of the timed stream.
#[derive(Default)]
struct Tally {
    rejected: u64,
    total_ns: u64,
    /// Marks that evaluated nobody.
    silent: u64,
    /// (ns, evaluations) of marks that evaluated someone.
    evaluating: (u64, u64),
    /// The same, marks without liquidations.
    rearming: (u64, u64),
    /// Trigger stats accumulated over marks only.
    crossed: u64,
    rearms: u64,
    evaluations: u64,
    fall: (u64, u64),
}

/// The timed stream: kinds by the mix's schedule, prices along the path
/// (public for the latency harnesses: [`scenario`] builds the book and
/// its stream, [`Stream::next_event`] generates the events one by one).
pub struct Stream {
    path: Path,
    accounts: u32,
    instruments: usize,
    lanes: usize,
    /// Price levels in millionths of the base price, per instrument / asset.
    levels: Vec<i64>,
    schedule: Schedule,
    rng: Rng,
    fall_start: u64,
    fall_len: u64,
    /// Events generated so far, by kind.
    marks: u64,
    fills: u64,
    fundings: u64,
}

impl Stream {
    fn new(opts: &Options, rng: Rng) -> Stream {
        let instruments = opts.instruments.clamp(1, 8) as usize;
        let lanes = instruments + opts.assets.min(4) as usize;
        let schedule = Schedule::new(opts.mix);
        let marks_expected = opts.events * u64::from(opts.mix.marks) / schedule.total;
        Stream {
            path: opts.path,
            accounts: opts.accounts.max(1),
            instruments,
            lanes,
            levels: vec![0; lanes],
            schedule,
            rng,
            fall_start: marks_expected / 5,
            fall_len: 300 * lanes as u64,
            marks: 0,
            fills: 0,
            fundings: 0,
        }
    }

    fn price(&self, lane: usize) -> Fixed8 {
        let base = if lane < self.instruments {
            MARK_BASES[lane]
        } else {
            INDEX_BASES[lane - self.instruments]
        };
        Fixed8(base * E8 / 1_000_000 * (1_000_000 + self.levels[lane]))
    }

    /// Whether the mark numbered `t` falls in the crash's fall.
    fn in_fall(&self, t: u64) -> bool {
        self.path == Path::Crash && t >= self.fall_start && t - self.fall_start < self.fall_len
    }

    /// The next event of the stream, stamped `ts`.
    pub fn next_event(&mut self, ts: UnixNanos) -> Event {
        self.next(ts).1
    }

    /// Events generated so far.
    pub fn generated(&self) -> u64 {
        self.marks + self.fills + self.fundings
    }

    fn next(&mut self, ts: UnixNanos) -> (Kind, Event) {
        let k = self.instruments;
        if self.path == Path::Funding && (self.generated() + 1).is_multiple_of(FUNDING_STORM_EVERY)
        {
            // The storm: 0.5 % per payment, longs pay, round-robin over the
            // instruments (the mix's schedule is not advanced).
            let n = self.fundings;
            self.fundings += 1;
            let event = Event::Funding(Funding {
                ts,
                instrument: InstrumentId((n % k as u64) as u32 + 1),
                rate: Fixed8(500_000),
            });
            return (Kind::Funding, event);
        }
        let kind = self.schedule.next();
        let event = match kind {
            Kind::Mark => {
                let t = self.marks;
                self.marks += 1;
                let lane = (t % self.lanes as u64) as usize;
                self.levels[lane] = next_level(
                    self.path,
                    self.levels[lane],
                    t,
                    lane,
                    self.lanes,
                    self.fall_start,
                    self.fall_len,
                    &mut self.rng,
                );
                if lane < k {
                    Event::Mark(MarkPrice {
                        ts,
                        instrument: InstrumentId(lane as u32 + 1),
                        price: self.price(lane),
                    })
                } else {
                    Event::Index(IndexPrice {
                        ts,
                        asset: AssetId((lane - k) as u32 + 1),
                        price: self.price(lane),
                    })
                }
            }
            Kind::Fill => {
                // A small trade of a random account on a random instrument.
                let n = self.rng.below(u64::from(self.accounts));
                let i = self.rng.below(k as u64) as usize;
                let fill_id = self.fills;
                self.fills += 1;
                Event::Fill(Fill {
                    ts,
                    account: account_id(n as u32),
                    instrument: InstrumentId(i as u32 + 1),
                    qty: Fixed8(if fill_id.is_multiple_of(2) {
                        1_000
                    } else {
                        -1_000
                    }),
                    price: self.price(i),
                    fee: Fixed8(0),
                    fill_id,
                })
            }
            Kind::Funding => {
                let n = self.fundings;
                self.fundings += 1;
                let sign = if (n / k as u64).is_multiple_of(2) {
                    1
                } else {
                    -1
                };
                Event::Funding(Funding {
                    ts,
                    instrument: InstrumentId((n % k as u64) as u32 + 1),
                    rate: Fixed8(sign * 10_000),
                })
            }
        };
        (kind, event)
    }
}

/// Apply times by kind, and what the marks did.
struct Timed {
    all: Recorder,
    marks: Recorder,
    fills: Recorder,
    fundings: Recorder,
    tally: Tally,
}

fn run_on<E: Subject>(engine: &mut E, opts: &Options, rss_before: u64) -> Report {
    let mut rng = Rng(opts.seed.max(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let started = Instant::now();
    // (`book` builds the same population.)
    let (mut feed, positions, balances) = populate(engine, opts, &mut rng);
    let setup_s = started.elapsed().as_secs_f64();
    let rss_growth = resident_bytes().saturating_sub(rss_before);
    let mut stream = Stream::new(opts, rng);
    let liquidations_before = feed.sink.liquidations;
    let stats_before = engine.trigger_stats();
    let mut timed = Timed {
        all: Recorder::new(),
        marks: Recorder::new(),
        fills: Recorder::new(),
        fundings: Recorder::new(),
        tally: Tally::default(),
    };
    match opts.timing {
        Timing::Event => time_events(engine, opts.events, &mut stream, &mut feed, &mut timed),
        Timing::Batch => time_batches(engine, opts.events, &mut stream, &mut feed, &mut timed),
    }
    let stats = engine.trigger_stats();
    let mut tally = timed.tally;
    if opts.timing == Timing::Batch {
        // Totals over all events (no per-event attribution).
        tally.crossed = stats.crossed - stats_before.crossed;
        tally.rearms = stats.rearms - stats_before.rearms;
        tally.evaluations = stats.evaluations - stats_before.evaluations;
    }
    let per_mark = |x: u64| x as f64 / stream.marks.max(1) as f64;
    let memory = engine.memory().unwrap_or_default();
    let per = |bytes: usize, n: usize| bytes as f64 / n.max(1) as f64;
    let mean_only = Latency {
        count: opts.events,
        mean: tally.total_ns / opts.events.max(1),
        ..Latency::default()
    };
    Report {
        engine: opts.subject,
        mode: match opts.subject {
            Subjects::Reference => "Reference".to_owned(),
            Subjects::Fast => format!("{:?}", opts.mode),
        },
        split: format!("{:?}", opts.split),
        path: opts.path,
        mix: opts.mix,
        seed: opts.seed,
        timing: opts.timing,
        accounts: opts.accounts,
        instruments: stream.instruments as u32,
        assets: (stream.lanes - stream.instruments) as u32,
        positions,
        balances,
        setup_s,
        events: opts.events,
        marks: stream.marks,
        fills: stream.fills,
        fundings: stream.fundings,
        rejected: tally.rejected,
        events_per_s: opts.events as f64 / (tally.total_ns.max(1) as f64 / 1e9),
        timer_ns: timer_ns(),
        ns_per_event: match opts.timing {
            Timing::Event => timed.all.latency(),
            Timing::Batch => mean_only,
        },
        ns_per_mark: timed.marks.latency(),
        ns_per_fill: timed.fills.latency(),
        ns_per_funding: timed.fundings.latency(),
        crossed_per_mark: per_mark(tally.crossed),
        rearms_per_mark: per_mark(tally.rearms),
        evaluations_per_mark: per_mark(tally.evaluations),
        silent_marks: per_mark(tally.silent),
        ns_per_evaluation: tally.evaluating.0 as f64 / tally.evaluating.1.max(1) as f64,
        ns_per_rearm: tally.rearming.0 as f64 / tally.rearming.1.max(1) as f64,
        liquidations: feed.sink.liquidations - liquidations_before,
        liquidations_per_s_in_fall: tally.fall.1 as f64 / (tally.fall.0.max(1) as f64 / 1e9),
        memory_bytes: memory.total() as u64,
        bytes_per_account: per(memory.total(), opts.accounts as usize),
        bytes_per_position: per(memory.positions, memory.position_slots),
        bytes_per_balance: per(memory.balances, memory.balance_slots),
        rss_bytes_per_account: rss_growth as f64 / f64::from(opts.accounts.max(1)),
        armed_triggers: engine.armed_triggers() as u64,
        holder_sweeps: stats.holder_sweeps - stats_before.holder_sweeps,
        machine: Machine::here(),
    }
}

/// A timer around every event.
fn time_events<E: Subject>(
    engine: &mut E,
    events: u64,
    stream: &mut Stream,
    feed: &mut Feed,
    timed: &mut Timed,
) {
    for _ in 0..events {
        feed.seq += 1;
        feed.ts += 1;
        let mark_number = stream.marks;
        let (kind, event) = stream.next(UnixNanos(feed.ts));
        let stats = engine.trigger_stats();
        let liquidated = feed.sink.liquidations;
        let start = Instant::now();
        let result = engine.apply(Seq(feed.seq), &event, &mut feed.sink);
        let ns = start.elapsed().as_nanos() as u64;
        let tally = &mut timed.tally;
        tally.total_ns += ns;
        timed.all.record(ns);
        tally.rejected += u64::from(result.is_err());
        match kind {
            Kind::Mark => {
                result.expect("a valid price");
                timed.marks.record(ns);
                let after = engine.trigger_stats();
                let evaluated = after.evaluations - stats.evaluations;
                tally.crossed += after.crossed - stats.crossed;
                tally.rearms += after.rearms - stats.rearms;
                tally.evaluations += evaluated;
                let liquidations = feed.sink.liquidations - liquidated;
                if evaluated == 0 {
                    tally.silent += 1;
                } else {
                    tally.evaluating.0 += ns;
                    tally.evaluating.1 += evaluated;
                    if liquidations == 0 {
                        tally.rearming.0 += ns;
                        tally.rearming.1 += evaluated;
                    }
                }
                if stream.in_fall(mark_number) {
                    tally.fall.0 += ns;
                    tally.fall.1 += liquidations;
                }
            }
            Kind::Fill => timed.fills.record(ns),
            Kind::Funding => timed.fundings.record(ns),
        }
    }
}

/// One timer per batch of [`BATCH_EVENTS`] pre-generated events.
fn time_batches<E: Subject>(
    engine: &mut E,
    events: u64,
    stream: &mut Stream,
    feed: &mut Feed,
    timed: &mut Timed,
) {
    let mut batch: Vec<Event> = Vec::with_capacity(BATCH_EVENTS);
    let mut left = events;
    while left > 0 {
        let n = left.min(BATCH_EVENTS as u64);
        left -= n;
        batch.clear();
        let first_seq = feed.seq + 1;
        for _ in 0..n {
            feed.seq += 1;
            feed.ts += 1;
            batch.push(stream.next(UnixNanos(feed.ts)).1);
        }
        let mut rejected = 0u64;
        let start = Instant::now();
        for (i, event) in batch.iter().enumerate() {
            let result = engine.apply(Seq(first_seq + i as u64), event, &mut feed.sink);
            rejected += u64::from(result.is_err());
        }
        timed.tally.total_ns += start.elapsed().as_nanos() as u64;
        timed.tally.rejected += rejected;
    }
}

/// The next price level (millionths of the base price) of `lane` at its
/// `t`-th tick overall.
#[allow(clippy::too_many_arguments)]
fn next_level(
    path: Path,
    level: i64,
    t: u64,
    lane: usize,
    lanes: usize,
    fall_start: u64,
    fall_len: u64,
    rng: &mut Rng,
) -> i64 {
    let level = match path {
        Path::Quiet => {
            if (t / lanes as u64).is_multiple_of(2) {
                1
            } else {
                -1
            }
        }
        Path::Walk | Path::Funding => level + rng.range(-50, 51) * LANE_VOL[lane],
        Path::Flash => {
            let phase = t.wrapping_sub(fall_start);
            let lanes = lanes as u64;
            if t >= fall_start && phase < lanes {
                // One tick of −20 %: beyond the 5 % max_jump, held (halt).
                level - 200_000
            } else if t >= fall_start && phase < 151 * lanes {
                // Rebound by 15 points in 0.1 % steps (each within the
                // jump guard: the first confirms the held mark).
                level + 1_000
            } else {
                level + rng.range(-50, 51) * LANE_VOL[lane]
            }
        }
        Path::Crash => {
            let phase = t.wrapping_sub(fall_start);
            if t >= fall_start && phase < fall_len {
                // −30 % over 300 steps of this lane, with noise.
                level - 1_000 + rng.range(-300, 301)
            } else if t >= fall_start && phase < 2 * fall_len {
                // Rebound by 20 points.
                level + 667 + rng.range(-300, 301)
            } else {
                level + rng.range(-50, 51) * LANE_VOL[lane]
            }
        }
    };
    level.clamp(-900_000, 2_000_000)
}

/// Median cost of an `Instant::now()` pair, in ns.
fn timer_ns() -> u64 {
    let mut samples: Vec<u64> = (0..1_001)
        .map(|_| {
            let start = Instant::now();
            start.elapsed().as_nanos() as u64
        })
        .collect();
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// The process's resident set, in bytes (0 where unknown).
fn resident_bytes() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

impl Report {
    /// A readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = self.write_table(&mut out);
        out
    }

    fn write_table(&self, out: &mut String) -> fmt::Result {
        writeln!(
            out,
            "engine {} ({}, split {}), path {}, mix {}, seed {}, timing {}, {} build on {} ({} cpus)",
            match self.engine {
                Subjects::Fast => "fast",
                Subjects::Reference => "reference",
            },
            self.mode,
            self.split,
            format!("{:?}", self.path).to_lowercase(),
            self.mix,
            self.seed,
            match self.timing {
                Timing::Event => "per event",
                Timing::Batch => "per batch (mean only)",
            },
            self.machine.build,
            self.machine.cpu,
            self.machine.cpus,
        )?;
        writeln!(
            out,
            "book: {} accounts, {} positions, {} non-quote balances, {} instruments, {} assets (setup {:.1} s)",
            thousands(u64::from(self.accounts)),
            thousands(self.positions),
            thousands(self.balances),
            self.instruments,
            self.assets,
            self.setup_s,
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "{:<8} {:>11} {:>11} {:>11} {:>11} {:>11} {:>13}",
            "ns/event", "count", "mean", "p50", "p99", "p99.9", "max"
        )?;
        for (name, l) in [
            ("all", &self.ns_per_event),
            ("mark", &self.ns_per_mark),
            ("fill", &self.ns_per_fill),
            ("funding", &self.ns_per_funding),
        ] {
            writeln!(
                out,
                "{:<8} {:>11} {:>11} {:>11} {:>11} {:>11} {:>13}",
                name,
                thousands(l.count),
                thousands(l.mean),
                thousands(l.p50),
                thousands(l.p99),
                thousands(l.p999),
                thousands(l.max),
            )?;
        }
        writeln!(out)?;
        let rows: [(&str, String); 12] = [
            ("events/s", thousands(self.events_per_s as u64)),
            ("timer ns (in every sample)", self.timer_ns.to_string()),
            ("rejected events", thousands(self.rejected)),
            (
                "crossed triggers per mark",
                format!("{:.4}", self.crossed_per_mark),
            ),
            (
                "re-armed accounts per mark",
                format!("{:.4}", self.rearms_per_mark),
            ),
            ("ns per re-arm", format!("{:.0}", self.ns_per_rearm)),
            (
                "marks that evaluated nobody",
                format!("{:.2} %", 100.0 * self.silent_marks),
            ),
            ("liquidations", thousands(self.liquidations)),
            (
                "liquidations/s in the fall",
                format!("{:.0}", self.liquidations_per_s_in_fall),
            ),
            (
                "engine bytes per account",
                format!(
                    "{:.0} ({} MiB reserved)",
                    self.bytes_per_account,
                    self.memory_bytes >> 20
                ),
            ),
            (
                "bytes per position / balance slot",
                format!(
                    "{:.0} / {:.0}",
                    self.bytes_per_position, self.bytes_per_balance
                ),
            ),
            (
                "RSS growth per account",
                format!("{:.0}", self.rss_bytes_per_account),
            ),
        ];
        for (name, value) in rows {
            writeln!(out, "{name:<34} {value:>16}")?;
        }
        Ok(())
    }
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_strictly() {
        let mix: Mix = "marks=90,fills=8,funding=2".parse().unwrap();
        assert_eq!((mix.marks, mix.fills, mix.funding), (90, 8, 2));
        assert_eq!(mix.to_string(), "marks=90,fills=8,funding=2");
        assert_eq!("fills=1".parse::<Mix>().unwrap().marks, 0);
        for bad in [
            "",
            "marks",
            "marks=x",
            "marks=-1",
            "marks=0",
            "marks=1,marks=2",
            "ticks=3",
            "marks=1000001",
        ] {
            assert!(bad.parse::<Mix>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_schedule_keeps_the_proportions_in_every_prefix() {
        let mut schedule = Schedule::new("marks=90,fills=8,funding=2".parse().unwrap());
        let mut counts = [0i64; 3];
        for n in 1..=1_000i64 {
            let kind = schedule.next() as usize;
            counts[kind] += 1;
            for (count, w) in counts.iter().zip([90, 8, 2]) {
                assert!((count * 100 - n * w).abs() <= 100, "{n}: {counts:?}");
            }
        }
        assert_eq!(counts, [900, 80, 20]);
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }

    #[test]
    fn small_runs_agree_between_modes() {
        for path in [Path::Quiet, Path::Walk, Path::Crash] {
            let opts = Options {
                accounts: 2_000,
                events: 3_300,
                mix: "marks=10,fills=1".parse().unwrap(),
                path,
                ..Options::default()
            };
            let fast = run(&opts);
            let plain = run(&Options {
                mode: EvaluationMode::AllHolders,
                ..opts
            });
            assert_eq!(fast.liquidations, plain.liquidations, "{path:?}");
            assert_eq!((fast.marks, fast.fills), (3_000, 300));
            assert!(fast.evaluations_per_mark < plain.evaluations_per_mark);
            if path == Path::Quiet {
                assert!(fast.crossed_per_mark < 0.01, "{}", fast.table());
            }
            if path == Path::Crash {
                assert!(fast.liquidations > 0);
            }
        }
    }

    #[test]
    fn batch_timing_runs_the_same_stream() {
        let opts = Options {
            accounts: 1_000,
            events: 1_100,
            mix: "marks=10,fills=1".parse().unwrap(),
            path: Path::Crash,
            ..Options::default()
        };
        let timed = run(&opts);
        let batched = run(&Options {
            timing: Timing::Batch,
            ..opts
        });
        assert!(batched.liquidations > 0);
        assert_eq!(
            (batched.liquidations, batched.marks, batched.fills),
            (timed.liquidations, timed.marks, timed.fills)
        );
        assert_eq!(batched.ns_per_event.count, 1_100);
        assert!(batched.events_per_s > 0.0 && batched.ns_per_event.p50 == 0);
    }

    #[test]
    fn funding_evaluates_the_holders() {
        let opts = Options {
            accounts: 500,
            events: 200,
            mix: "marks=98,funding=2".parse().unwrap(),
            path: Path::Quiet,
            ..Options::default()
        };
        let report = run(&opts);
        assert_eq!((report.fundings, report.rejected), (4, 0));
        assert_eq!(report.holder_sweeps, 4);
        assert!(report.ns_per_funding.mean > report.ns_per_mark.p50);
        assert!(report.bytes_per_position > 0.0 && report.bytes_per_account > 0.0);
    }

    /// ~80 s in a debug build: `cargo test -p liqd-bench -- --ignored`.
    /// (The engine's differential tests compare every output.)
    #[test]
    #[ignore]
    fn the_reference_model_liquidates_the_same_accounts() {
        // (The reference model recomputes every account after every event,
        // in exact rationals: keep it small for a debug build.)
        let opts = Options {
            accounts: 60,
            events: 1_200,
            mix: Mix::MARKS_ONLY,
            path: Path::Crash,
            ..Options::default()
        };
        let fast = run(&opts);
        let reference = run(&Options {
            subject: Subjects::Reference,
            ..opts
        });
        assert!(fast.liquidations > 0);
        assert_eq!(fast.liquidations, reference.liquidations);
    }
}
