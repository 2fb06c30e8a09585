//! `liqd demo`: the whole pipeline on one machine with no setup.
//!
//! 1. A seeded population (`liqd_bench::population_events`: instruments
//!    with RiskParams, two collateral assets, accounts with 1..4 positions
//!    at a spread of leverages, 1 % of them just above maintenance) and a
//!    price path (`crash`, `walk` or `flash`) are generated as events.
//! 2. A daemon starts in this process (`daemon::run::run_until`) on
//!    loopback ephemeral ports with a fresh journal directory; its
//!    configuration journals the EngineParams (cooldown 1 s, partial
//!    liquidation on).
//! 3. Every event goes through the real UDP path: a `liqd feed` publisher
//!    (MoldUDP64, re-requests answered) → the gateway → the input journal →
//!    the engine → the output journal → the outbound stream (to a local
//!    socket nobody reads: the demo has no keepers).
//! 4. The summary reads the output journal (liquidations by kind, halts),
//!    runs `replay verify` on the journal (the replay library) and prints
//!    the next commands with the real path and account.
//!
//! Decisions: the population is sent, not built inside the engine, so the
//! journal holds the whole history (replay tools work on it). Sending is
//! flow-controlled by the daemon's own counters (at most [`WINDOW`] events
//! journaled-but-not-done; `--rate` paces the price path instead), and the
//! sender waits for every earlier event to be applied when it switches
//! stream, because the three streams are separate sockets and a fill must
//! not overtake its instrument's definition. The journal directory is kept
//! (default under the temp dir; `--dir` chooses, `--discard` deletes it at
//! the end). "At risk" on the progress line is the daemon's `S` count of
//! accounts in a liquidation cooldown (`liqd_accounts_liquidating`).
//! Event time: the population at ts 1, the path one event every 100 µs
//! (so the 1 s cooldown expires within the path: escalations happen).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use daemon::config::Config;
use daemon::metrics::Metrics;
use daemon::run::{run_until, Listening};
use engine::{AccountId, Event, Fixed8, IndexPrice, Limits, MarkPrice, RiskParams, UnixNanos};
use feed_gateway::wire::DATAGRAM_BYTES_DEFAULT;
use journal::{OutputBody, OutputReader};
use replay::input::Input;
use replay::progress::Progress;
use replay::verify::{verify, Expected};

use crate::feed::{session_names, Feed, FeedOptions};

/// Events journaled but not yet applied that the sender allows.
pub const WINDOW: u64 = 512;
/// Event time between two price-path events.
const PATH_STEP_NS: u64 = 100_000;
/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// A random walk, then every market falls ~30 % and rebounds ~15 %.
    Crash,
    /// A random walk only (the accounts nearest maintenance go).
    Walk,
    /// A random walk, then every market drops 20 % in one tick, stays
    /// down briefly and comes back; every instrument gets a 10 % jump
    /// guard first (RiskParams on the admin stream), so the drop halts.
    Flash,
}

#[derive(Args)]
pub struct DemoArgs {
    /// Accounts in the population.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    accounts: u32,
    /// The price path.
    #[arg(long, value_enum, default_value_t = Scenario::Crash)]
    scenario: Scenario,
    /// Seed of the population and the path (same seed, same journal
    /// contents).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Price events in the path.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    ticks: u64,
    /// Price-path events per second (default: as fast as the daemon takes
    /// them, at most 512 in flight).
    #[arg(long)]
    rate: Option<f64>,
    /// Journal directory (must not exist; default: a new directory under
    /// the temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the journal directory (the default: the summary's commands
    /// use it).
    #[arg(long, conflicts_with = "discard")]
    keep: bool,
    /// Delete the journal directory at the end.
    #[arg(long)]
    discard: bool,
}

/// What the demo measured and found.
struct Outcome {
    events: u64,
    population_events: u64,
    wall: Duration,
    liquidations: Kinds,
    halts_on: u64,
    halts_off: u64,
    most_liquidated: Option<(AccountId, u64)>,
    latency_ns: [u64; 4],
    samples: u64,
    verified: Result<String, String>,
    rejected: u64,
}

#[derive(Default)]
struct Kinds {
    partial: u64,
    full: u64,
    bankrupt: u64,
    escalation: u64,
}

impl Kinds {
    fn total(&self) -> u64 {
        self.partial + self.full + self.bankrupt + self.escalation
    }
}

/// `liqd demo`.
pub fn demo(args: &DemoArgs) -> anyhow::Result<()> {
    if let Some(rate) = args.rate {
        if !(rate > 0.0 && rate.is_finite()) {
            bail!("--rate: a positive number of events per second");
        }
    }
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!(
            "liqd-demo-{}-{}",
            std::process::id(),
            feed_gateway::net::system_now_ns() / 1_000_000
        )),
    };
    if dir.exists() {
        bail!("--dir {}: already exists", dir.display());
    }
    let opts = liqd_bench::Options {
        accounts: args.accounts,
        seed: args.seed,
        ..liqd_bench::Options::default()
    };
    let population = liqd_bench::population_events(&opts);
    let path = price_path(&population, args.scenario, args.seed, args.ticks);
    eprintln!(
        "demo: {} accounts, {} instruments, {} collateral assets: {} setup events, then a {} path of {} prices; journal {}",
        opts.accounts,
        opts.instruments,
        opts.assets,
        population.len(),
        name(args.scenario),
        path.len(),
        dir.display()
    );
    let outcome = run_demo(&dir, &population, &path, args.rate)?;
    print_summary(&outcome, &dir, args.discard)?;
    if args.discard {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    if outcome.verified.is_err() {
        bail!("replay verify failed on the demo's journal");
    }
    Ok(())
}

fn name(scenario: Scenario) -> &'static str {
    match scenario {
        Scenario::Crash => "crash",
        Scenario::Walk => "walk",
        Scenario::Flash => "flash",
    }
}

/// The daemon's configuration: loopback, ephemeral ports, re-requests to
/// the demo's feed, outbound to `keepers`, no metrics endpoint.
fn config_text(dir: &Path, feed: SocketAddr, keepers: SocketAddr) -> String {
    let dir = dir
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    format!(
        r#"shard = "0/1"
[streams]
socket_recv_buffer_bytes = 4194304
[streams.md]
listen = "127.0.0.1:0"
retransmit = "{feed}"
gap_wait_us = 20000
[streams.orders]
listen = "127.0.0.1:0"
retransmit = "{feed}"
hold_packets = 8192
[streams.admin]
listen = "127.0.0.1:0"
retransmit = "{feed}"
[outbound]
session = "LIQDDEMO01"
bind = "127.0.0.1:0"
destinations = ["{keepers}"]
status_interval_ms = 200
[journal]
dir = "{dir}"
segment_bytes = 67108864
[snapshot]
interval_events = 0
[threads]
engine_idle = "yield"
gateway_idle = "sleep:100"
[metrics]
status_log_interval_ms = 0
[params]
partial_liquidation = true
liquidation_cooldown_ns = 1000000000
warn_ratio = "1.25"
"#
    )
}

fn run_demo(
    dir: &Path,
    population: &[Event],
    path: &[Event],
    rate: Option<f64>,
) -> anyhow::Result<Outcome> {
    // Keepers: a socket that receives the outbound stream (nobody reads
    // it; the kernel drops what overflows).
    let keepers = UdpSocket::bind("127.0.0.1:0").context("binding the keepers' socket")?;
    let mut feed = Feed::open(&FeedOptions {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        sessions: session_names(None)?,
        // Replaced below once the daemon has bound its sockets.
        destinations: [SocketAddr::from(([127, 0, 0, 1], 9)); 3],
        datagram_bytes: DATAGRAM_BYTES_DEFAULT,
        retain: 1 << 18,
        heartbeat_ms: 100,
        drop_every: None,
    })?;
    let text = config_text(dir, feed.local_addr()?, keepers.local_addr()?);
    let mut config = Config::parse(&text).map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    config.metrics.listen = None;
    config.limits = daemon::config::LimitsConfig::default();
    let settings = config
        .validate()
        .map_err(|e| anyhow::anyhow!("demo config: {e}"))?;

    let stop = Arc::new(AtomicBool::new(false));
    let metrics = Arc::new(Metrics::default());
    let (tx, rx) = mpsc::channel::<Listening>();
    let daemon = {
        let (stop, metrics) = (stop.clone(), metrics.clone());
        std::thread::Builder::new()
            .name("liqd-daemon".to_owned())
            .spawn(move || {
                run_until(&config, &settings, &stop, metrics, false, |l| {
                    let _ = tx.send(l);
                })
            })
            .context("starting the daemon thread")?
    };
    let listening = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(l) => l,
        Err(_) => {
            stop.store(true, Ordering::Release);
            return match daemon.join() {
                Ok(Err(e)) => Err(anyhow::Error::new(e).context("the daemon did not start")),
                _ => bail!("the daemon did not start"),
            };
        }
    };
    let (Some(md), Some(orders), Some(admin)) = (listening.md, listening.orders, listening.admin)
    else {
        bail!("the daemon has no inbound sockets");
    };
    feed.set_destinations([md, orders, admin]);

    let started = Instant::now();
    let baseline = processed(&metrics);
    let mut sender = Sender {
        feed,
        metrics: &metrics,
        baseline,
        sent: 0,
        total: (population.len() + path.len()) as u64,
        progress: Line::new(),
        started,
    };
    let sent = sender.send_all(population, path, rate);
    let drained = sent.and_then(|()| sender.drain());
    sender.progress.finish(&sender.status());
    let wall = started.elapsed();
    // Latency gauges are refreshed once a second by the gateway.
    if drained.is_ok() {
        std::thread::sleep(Duration::from_millis(1100));
    }
    let latency_ns = [
        metrics.latency_ns_p50.load(Ordering::Relaxed),
        metrics.latency_ns_p99.load(Ordering::Relaxed),
        metrics.latency_ns_p999.load(Ordering::Relaxed),
        metrics.latency_ns_max.load(Ordering::Relaxed),
    ];
    let samples = metrics.latency_samples.load(Ordering::Relaxed);
    sender.feed.end_sessions();
    stop.store(true, Ordering::Release);
    let stopped = match daemon.join() {
        Ok(result) => result.context("the daemon stopped with an error")?,
        Err(_) => bail!("the daemon thread panicked"),
    };
    drained?;
    let (liquidations, halts_on, halts_off, most_liquidated) = read_outputs(dir)?;
    let verified = run_verify(dir, stopped.state_hash);
    Ok(Outcome {
        events: sender.sent,
        population_events: population.len() as u64,
        wall,
        liquidations,
        halts_on,
        halts_off,
        most_liquidated,
        latency_ns,
        samples,
        verified,
        rejected: metrics.events_rejected.load(Ordering::Relaxed),
    })
}

/// Inputs the engine is done with (applied, rejected or another shard's).
fn processed(metrics: &Metrics) -> u64 {
    metrics.events_applied.load(Ordering::Acquire)
        + metrics.events_rejected.load(Ordering::Acquire)
        + metrics.events_skipped_shard.load(Ordering::Acquire)
}

struct Sender<'a> {
    feed: Feed,
    metrics: &'a Metrics,
    /// [`processed`] before the first event was sent (the configuration's
    /// own events).
    baseline: u64,
    sent: u64,
    total: u64,
    progress: Line,
    started: Instant,
}

impl Sender<'_> {
    fn done(&self) -> u64 {
        processed(self.metrics).saturating_sub(self.baseline)
    }

    fn send_all(
        &mut self,
        population: &[Event],
        path: &[Event],
        rate: Option<f64>,
    ) -> anyhow::Result<()> {
        let mut previous = None;
        for event in population {
            self.send(event, &mut previous, None)?;
        }
        let path_started = Instant::now();
        for (index, event) in path.iter().enumerate() {
            let due = rate.map(|r| path_started + Duration::from_secs_f64(index as f64 / r));
            self.send(event, &mut previous, due)?;
        }
        Ok(())
    }

    /// Sends one event when the window (and `due`) allows; on a change of
    /// stream, first waits for every earlier event to be done.
    fn send(
        &mut self,
        event: &Event,
        previous: &mut Option<feed_gateway::wire::Stream>,
        due: Option<Instant>,
    ) -> anyhow::Result<()> {
        let stream = feed_gateway::wire::Stream::of_event(event);
        let barrier = previous.is_some_and(|p| p != stream);
        *previous = Some(stream);
        let limit = if barrier { 0 } else { WINDOW };
        if barrier {
            self.feed.flush_all();
        }
        let mut spins = 0u32;
        while self.sent - self.done().min(self.sent) > limit
            || due.is_some_and(|d| Instant::now() < d)
        {
            self.idle(&mut spins)?;
        }
        self.feed.send_event(event, due.is_some())?;
        self.sent += 1;
        if self.sent & 63 == 0 {
            self.feed.serve();
            self.progress.maybe(&self.status());
        }
        Ok(())
    }

    /// Waits a moment: answers re-requests, heartbeats, redraws the line.
    fn idle(&mut self, spins: &mut u32) -> anyhow::Result<()> {
        self.feed.serve();
        self.feed.tick();
        self.progress.maybe(&self.status());
        *spins += 1;
        if *spins > 64 {
            // Datagrams may sit in a half-full packet: send them.
            self.feed.flush_all();
            std::thread::sleep(Duration::from_micros(100));
        } else {
            std::thread::yield_now();
        }
        if self.started.elapsed() > Duration::from_secs(600) {
            bail!(
                "the daemon stopped taking events ({} sent, {} done)",
                self.sent,
                self.done()
            );
        }
        Ok(())
    }

    /// Waits until every event sent is done.
    fn drain(&mut self) -> anyhow::Result<()> {
        self.feed.flush_all();
        let mut spins = 0;
        while self.done() < self.sent {
            self.idle(&mut spins)?;
        }
        Ok(())
    }

    fn status(&self) -> String {
        let m = self.metrics;
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        let done = self.done();
        format!(
            "{:>5.1} s  {:>9}/{} events  {:>7.0} events/s  liquidations {:>6}  at risk {:>5}  p99 {}",
            elapsed,
            done,
            self.total,
            done as f64 / elapsed,
            m.liquidations.load(Ordering::Relaxed),
            m.accounts_liquidating.load(Ordering::Relaxed),
            micros(m.latency_ns_p99.load(Ordering::Relaxed)),
        )
    }
}

fn micros(ns: u64) -> String {
    if ns == 0 {
        "-".to_owned()
    } else if ns < 10_000 {
        format!("{:.2} µs", ns as f64 / 1e3)
    } else if ns < 10_000_000 {
        format!("{:.0} µs", ns as f64 / 1e3)
    } else {
        format!("{:.1} ms", ns as f64 / 1e6)
    }
}

/// The progress line: redrawn in place on a terminal, one line a second
/// otherwise.
struct Line {
    terminal: bool,
    last: Option<Instant>,
}

impl Line {
    fn new() -> Line {
        Line {
            terminal: std::io::stderr().is_terminal(),
            last: None,
        }
    }

    fn maybe(&mut self, text: &str) {
        let every = if self.terminal {
            PROGRESS_EVERY
        } else {
            Duration::from_secs(1)
        };
        let now = Instant::now();
        if self.last.is_some_and(|t| now - t < every) {
            return;
        }
        if self.last.is_none() {
            self.last = Some(now);
            return;
        }
        self.last = Some(now);
        self.draw(text);
    }

    fn draw(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            write!(err, "\r\x1b[2K{text}")
        } else {
            writeln!(err, "{text}")
        };
        let _ = err.flush();
    }

    fn finish(&mut self, text: &str) {
        self.draw(text);
        if self.terminal {
            eprintln!();
        }
    }
}

type OutputCounts = (Kinds, u64, u64, Option<(AccountId, u64)>);

/// Liquidations by kind (escalation, else bankrupt, else partial, else
/// full), halts on/off and the most-liquidated account, from the output
/// journal.
fn read_outputs(dir: &Path) -> anyhow::Result<OutputCounts> {
    let reader = OutputReader::open(dir.join(replay::input::OUTPUT_SUBDIR))
        .context("opening the output journal")?;
    let mut kinds = Kinds::default();
    let (mut on, mut off) = (0, 0);
    let mut per_account: BTreeMap<u64, u64> = BTreeMap::new();
    for record in reader.iter() {
        let record = record.context("reading the output journal")?.to_owned();
        match record.output {
            OutputBody::Liquidation { liquidation: l, .. } => {
                *per_account.entry(l.account.0).or_default() += 1;
                let kind = if l.escalation {
                    &mut kinds.escalation
                } else if l.bankrupt {
                    &mut kinds.bankrupt
                } else if l.partial {
                    &mut kinds.partial
                } else {
                    &mut kinds.full
                };
                *kind += 1;
            }
            OutputBody::Halt(h) if h.on => on += 1,
            OutputBody::Halt(_) => off += 1,
            OutputBody::Status(_) => {}
        }
    }
    // Most liquidations; the smallest id among equals.
    let most = per_account
        .iter()
        .fold(None::<(u64, u64)>, |best, (&id, &n)| match best {
            Some((_, m)) if m >= n => best,
            _ => Some((id, n)),
        })
        .map(|(id, n)| (AccountId(id), n));
    Ok((kinds, on, off, most))
}

/// `liqd replay verify DIR` through the library: `Ok(report line)` when
/// every output and the daemon's final state hash are reproduced.
fn run_verify(dir: &Path, daemon_hash: u64) -> Result<String, String> {
    let input = Input::open(dir);
    let expected = Expected::beside(&input);
    let report = verify(
        &input,
        &expected,
        false,
        Limits::default(),
        &mut Progress::hidden(),
    )
    .map_err(|e| e.to_string())?;
    let line = report.to_string().trim_end().to_owned();
    if !report.is_ok() {
        return Err(line);
    }
    if report.state_hash != daemon_hash {
        return Err(format!(
            "{line}; state hash {:016x} differs from the daemon's {daemon_hash:016x}",
            report.state_hash
        ));
    }
    Ok(format!(
        "{line}; state hash {daemon_hash:016x} = the daemon's"
    ))
}

fn print_summary(o: &Outcome, dir: &Path, discard: bool) -> anyhow::Result<()> {
    let secs = o.wall.as_secs_f64();
    let k = &o.liquidations;
    let [p50, p99, p999, max] = o.latency_ns;
    let mut out = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(out, "liqd demo summary");
    let _ = writeln!(
        out,
        "  events        {} sent over UDP ({} setup, {} prices), all applied in {:.1} s: {:.0} events/s; {} rejected",
        o.events,
        o.population_events,
        o.events - o.population_events,
        secs,
        o.events as f64 / secs.max(1e-9),
        o.rejected
    );
    let _ = writeln!(
        out,
        "  liquidations  {} (partial {}, full {}, bankrupt {}, escalation {})",
        k.total(),
        k.partial,
        k.full,
        k.bankrupt,
        k.escalation
    );
    let _ = writeln!(
        out,
        "  halts         {} on, {} off",
        o.halts_on, o.halts_off
    );
    let _ = writeln!(
        out,
        "  latency       receive -> engine done: p50 {}  p99 {}  p99.9 {}  max {} ({} samples)",
        micros(p50),
        micros(p99),
        micros(p999),
        micros(max),
        o.samples
    );
    let _ = writeln!(out, "  journal       {}", dir.display());
    match &o.verified {
        Ok(line) => {
            let _ = writeln!(out, "  replay verify passed: {line}");
        }
        Err(line) => {
            let _ = writeln!(out, "  replay verify FAILED: {line}");
        }
    }
    if discard {
        let _ = writeln!(out, "  (journal deleted: --discard)");
    } else {
        let d = shell_quote(&dir.display().to_string());
        let _ = writeln!(out, "next:");
        let _ = writeln!(out, "  liqd replay verify {d}");
        if let Some((account, n)) = o.most_liquidated {
            let a = account.0;
            let _ = writeln!(
                out,
                "  liqd replay inspect {d} --account {a}          # most liquidated: {n} time(s)"
            );
            let _ = writeln!(
                out,
                "  liqd replay timeline {d} --account {a} --svg account-{a}.svg"
            );
        }
        let _ = writeln!(
            out,
            "  liqd replay whatif {d} --set 'instrument.*.mmr_scale=1.5' --set params.partial=false"
        );
        let _ = writeln!(out, "  liqd journal check {d}");
    }
    print!("{out}");
    std::io::stdout()
        .flush()
        .context("writing to standard output")?;
    Ok(())
}

fn shell_quote(text: &str) -> String {
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@".contains(c))
    {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// xorshift64*: the path's noise (seeded, no dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [-span, span].
    fn noise(&mut self, span: i64) -> i64 {
        (self.next() % (2 * span as u64 + 1)) as i64 - span
    }
}

/// One price lane: an instrument's mark or an asset's index.
#[derive(Clone, Copy)]
enum Lane {
    Mark(engine::InstrumentId, Fixed8),
    Index(engine::AssetId, Fixed8),
}

/// The price path over every instrument and asset the population priced
/// (round robin, one lane per event). Levels are millionths of each base
/// price.
fn price_path(population: &[Event], scenario: Scenario, seed: u64, ticks: u64) -> Vec<Event> {
    let lanes: Vec<Lane> = population
        .iter()
        .filter_map(|e| match e {
            Event::Mark(m) => Some(Lane::Mark(m.instrument, m.price)),
            Event::Index(i) => Some(Lane::Index(i.asset, i.price)),
            _ => None,
        })
        .collect();
    if lanes.is_empty() {
        return Vec::new();
    }
    let n = lanes.len() as u64;
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut levels = vec![0i64; lanes.len()];
    // Per lane step: the fall starts after 20 % of the path.
    let steps = ticks.div_ceil(n);
    let fall_start = steps / 5;
    let fall_len = (steps * 3 / 10).max(1);
    let rebound_len = (steps / 5).max(1);
    let mut events = Vec::with_capacity(ticks as usize + lanes.len());
    if scenario == Scenario::Flash {
        // A 10 % jump guard on every instrument: the drop is held (a jump
        // halt) until the market confirms it.
        events.extend(population.iter().filter_map(|e| match e {
            Event::Risk(r) => Some(Event::Risk(RiskParams {
                ts: UnixNanos(2),
                max_jump: Fixed8(10_000_000),
                ..*r
            })),
            _ => None,
        }));
    }
    for t in 0..ticks {
        let lane = (t % n) as usize;
        let step = t / n;
        let vol = 20 + 10 * lane as i64;
        let walk = rng.noise(vol);
        let level = levels[lane];
        levels[lane] = match scenario {
            Scenario::Walk => level + walk,
            Scenario::Crash => {
                if step >= fall_start && step < fall_start + fall_len {
                    // −30 % spread over the fall, with noise.
                    level - 300_000 / fall_len as i64 + walk * 4
                } else if step >= fall_start + fall_len
                    && step < fall_start + fall_len + rebound_len
                {
                    level + 150_000 / rebound_len as i64 + walk * 4
                } else {
                    level + walk
                }
            }
            Scenario::Flash => {
                if step == fall_start {
                    level - 200_000
                } else if step == fall_start + 3 {
                    level + 190_000
                } else {
                    level + walk
                }
            }
        }
        .clamp(-900_000, 2_000_000);
        let ts = UnixNanos(2 + t * PATH_STEP_NS);
        let scale = |base: Fixed8| {
            let price = i128::from(base.0) * i128::from(1_000_000 + levels[lane]) / 1_000_000;
            Fixed8(i64::try_from(price.max(1)).unwrap_or(i64::MAX))
        };
        events.push(match lanes[lane] {
            Lane::Mark(instrument, base) => Event::Mark(MarkPrice {
                ts,
                instrument,
                price: scale(base),
            }),
            Lane::Index(asset, base) => Event::Index(IndexPrice {
                ts,
                asset,
                price: scale(base),
            }),
        });
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crash_path_falls_and_is_seeded() {
        let opts = liqd_bench::Options {
            accounts: 10,
            ..liqd_bench::Options::default()
        };
        let population = liqd_bench::population_events(&opts);
        let a = price_path(&population, Scenario::Crash, 7, 6_000);
        let b = price_path(&population, Scenario::Crash, 7, 6_000);
        assert_eq!(a, b);
        assert_eq!(a.len(), 6_000);
        let Event::Mark(first) = population
            .iter()
            .find(|e| matches!(e, Event::Mark(_)))
            .copied()
            .expect("a mark")
        else {
            unreachable!()
        };
        let lowest = a
            .iter()
            .filter_map(|e| match e {
                Event::Mark(m) if m.instrument == first.instrument => Some(m.price.0),
                _ => None,
            })
            .min()
            .expect("marks");
        // Down at least 20 % at the bottom.
        assert!(
            lowest < first.price.0 / 10 * 8,
            "{lowest} vs {}",
            first.price.0
        );
    }

    #[test]
    fn quoting_leaves_plain_paths_alone() {
        assert_eq!(shell_quote("/tmp/liqd-demo-1"), "/tmp/liqd-demo-1");
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
    }
}
