//! `liqd bench wire`: wire-to-wire latency through a running `liqd run`
//! over UDP loopback, against a bare UDP echo on the same path.
//!
//! ```text
//! generator ──UDP (MoldUDP64: M/X on md, F/N on orders)──► liqd run ──UDP (L/H/S)──► receiver
//! generator ──UDP (the same datagrams)──► echo thread ──UDP──► receiver        (--baseline echo)
//! ```
//!
//! **What is matched, and the echo decision.** The outbound stream carries
//! decisions only (`L`, `H`, and a periodic `S`); a quiet tick produces
//! nothing, and `S` (a watermark every `status_interval_ms`) is too coarse
//! to time single events. So the harness adds a **ping instrument**
//! ([`PING_INSTRUMENT`]): no account holds it, its `max_jump` is 5 %, and
//! the pings alternate its mark 200, 200, 100, 100, …: each ping is either
//! a jump the guard holds (`H` on) or the mark that confirms the held one
//! (`H` off), so **every ping produces exactly one `H`** carrying the
//! ping's MoldUDP64 sequence in `src_seq`. A ping costs the engine what a
//! quiet tick does (no account is evaluated) and takes the whole path:
//! receive, decode, journal, input ring, apply, output ring, output
//! journal, encode, send. Every `ping_every`-th event of the schedule is a
//! ping (1: every event, the quiet path's wire-to-wire); the others are the
//! scenario's stream, whose decisions (`L`, `H`) are matched to their
//! event by (`src_stream`, `src_seq`) into a second histogram. No
//! daemon change and no bench-only flag: the daemon measured is the one
//! that runs in production.
//!
//! Latency = the receiver's monotonic clock at `recv` − the event's
//! intended send time (open loop, as the pipeline bench). The echo
//! baseline sends the same ping datagrams on the same schedule to a thread
//! that returns each one (blocking `recv`, as the daemon's gateway waits in
//! epoll), matched by the MoldUDP64 sequence.
//!
//! The daemon's book: the scenario's population is written into the input
//! journal of a fresh data directory ([`prepare`]) as configuration
//! events, so `liqd run` starts by replaying it (no population over the
//! wire); the stream starts after it.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use daemon::datadir::{DataDir, JournalSettings, Meta};
use daemon::shard::Shard;
use engine::{
    AccountId, Engine, Event, Figures, Fixed8, InstrumentDef, InstrumentId, Limits, MarginEngine,
    MarkPrice, Reject, RiskParams, Seq, Sink, Stats, Symbol, Tier, Tiers, UnixNanos,
};
use feed_gateway::wire::{decode_outbound, encode_event, parse_packet, OutboundMessage};
use hdrhistogram::Histogram;
use journal::{InputJournal, SourceStream};

use super::pipeline::{short, source_of, Error};
use super::{histogram, Percentiles, Run};

/// The instrument whose every mark produces one `H` (see the module docs).
pub const PING_INSTRUMENT: InstrumentId = InstrumentId(16);

/// Where the daemon listens and where its outbound stream goes.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    pub md: SocketAddr,
    pub orders: SocketAddr,
    /// The receiver binds here (the daemon's `outbound.destinations`).
    pub listen: SocketAddr,
}

#[derive(Clone, Debug)]
pub struct Options {
    /// The book and the stream (`mix`, `path`, …).
    pub scenario: crate::Options,
    pub rate: f64,
    pub events: u64,
    pub warmup: u64,
    /// Every this many events is a ping (1: all).
    pub ping_every: u64,
    pub generator_core: Option<usize>,
    pub receiver_core: Option<usize>,
    /// How long the receiver waits for late answers after the last send.
    pub linger: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            scenario: crate::Options {
                accounts: 10_000,
                mix: crate::Mix::MARKS_ONLY,
                path: crate::Path::Quiet,
                ..crate::Options::default()
            },
            rate: 10_000.0,
            events: 50_000,
            warmup: 10_000,
            ping_every: 1,
            generator_core: None,
            receiver_core: None,
            linger: Duration::from_millis(500),
        }
    }
}

/// Appends everything an engine applies to an input journal, as
/// configuration events (the daemon replays them at start).
struct Journaling<'a> {
    engine: Engine,
    journal: &'a mut InputJournal,
    error: Option<journal::JournalError>,
}

impl MarginEngine for Journaling<'_> {
    fn apply(&mut self, seq: Seq, event: &Event, sink: &mut dyn Sink) -> Result<(), Reject> {
        let result = self.engine.apply(seq, event, sink);
        if result.is_ok() && self.error.is_none() {
            if let Err(e) = self
                .journal
                .append_event(UnixNanos(0), SourceStream::Config, 0, event)
            {
                self.error = Some(e);
            }
        }
        result
    }
    fn figures(&self, account: AccountId) -> Option<Figures> {
        self.engine.figures(account)
    }
    fn account_ids(&self) -> Vec<AccountId> {
        self.engine.account_ids()
    }
    fn stats(&self) -> Stats {
        self.engine.stats()
    }
}

impl crate::Subject for Journaling<'_> {}

/// The ping instrument's definition, risk parameters and first mark.
fn ping_definitions() -> [Event; 3] {
    let ts = UnixNanos(1);
    let e8 = 100_000_000;
    [
        Event::InstrumentDef(InstrumentDef {
            ts,
            instrument: PING_INSTRUMENT,
            symbol: Symbol::new("PING").expect("valid symbol"),
            multiplier: Fixed8(e8),
            liquidation_fee: Fixed8(100_000),
            tiers: Tiers::from_slice(&[Tier {
                notional_floor: Fixed8(0),
                mmr: Fixed8(500_000),
                imr: Fixed8(1_000_000),
            }]),
        }),
        Event::Risk(RiskParams {
            ts,
            instrument: PING_INSTRUMENT,
            vol_lambda: Fixed8(94_000_000),
            vol_ref: Fixed8(100_000),
            vol_max_factor: Fixed8(e8),
            max_staleness_ns: 0,
            max_jump: Fixed8(5_000_000),
        }),
        Event::Mark(MarkPrice {
            ts,
            instrument: PING_INSTRUMENT,
            price: Fixed8(100 * e8),
        }),
    ]
}

/// The `n`-th ping: marks 200, 200, 100, 100, … (each one `H`).
fn ping(n: u64, ts: UnixNanos) -> Event {
    let units = if (n / 2).is_multiple_of(2) { 200 } else { 100 };
    Event::Mark(MarkPrice {
        ts,
        instrument: PING_INSTRUMENT,
        price: Fixed8(units * 100_000_000),
    })
}

/// A data directory with the scenario's book journaled, and the stream
/// that follows it.
pub struct Prepared {
    pub dir: PathBuf,
    pub limits: Limits,
    pub stream: crate::Stream,
    /// Events journaled (the daemon replays them at start).
    pub journaled: u64,
}

/// Journals the book of `scenario` (and the ping instrument) into a new
/// data directory `dir`.
///
/// # Errors
/// The directory cannot be created or the journal written.
pub fn prepare(dir: &Path, scenario: &crate::Options) -> Result<Prepared, Error> {
    let limits = crate::population::limits(scenario);
    let settings = JournalSettings {
        segment_bytes: 64 << 20,
        flush_every_records: 65_536,
        flush_interval: Duration::from_millis(100),
    };
    let meta = Meta {
        shard: Shard::ALL,
        limits,
    };
    let mut data = DataDir::open(dir, &meta, settings)?;
    let mut journaling = Journaling {
        engine: crate::population::fast_engine(scenario),
        journal: &mut data.input,
        error: None,
    };
    let mut rng =
        crate::population::Rng(scenario.seed.max(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let (mut feed, _, _) = crate::population::populate(&mut journaling, scenario, &mut rng);
    for event in ping_definitions() {
        feed.apply(&mut journaling, event)
            .map_err(|e| format!("ping instrument: {e:?}"))?;
    }
    if let Some(e) = journaling.error {
        return Err(e.into());
    }
    let journaled = data.input.last_seq().map_or(0, |s| s.0);
    data.input.flush()?;
    data.output.flush()?;
    Ok(Prepared {
        dir: dir.to_path_buf(),
        limits,
        stream: crate::Stream::new(scenario, rng),
        journaled,
    })
}

/// A `liqd run` configuration for a prepared directory: loopback
/// streams, the outbound stream to `listen`, the engine pinned to
/// `engine_core` and spinning, the gateway waiting in epoll.
pub fn config_toml(
    prepared: &Prepared,
    target: &Target,
    admin: SocketAddr,
    engine_core: Option<usize>,
    gateway_core: Option<usize>,
    engine_idle: &str,
) -> String {
    let l = &prepared.limits;
    let core = |name: &str, core: Option<usize>| {
        core.map_or_else(String::new, |c| format!("{name} = {c}\n"))
    };
    format!(
        r#"shard = "0/1"
[streams]
socket_recv_buffer_bytes = 4194304
[streams.md]
listen = "{md}"
[streams.orders]
listen = "{orders}"
[streams.admin]
listen = "{admin}"
[outbound]
session = "LIQDBENCH1"
bind = "127.0.0.1:0"
destinations = ["{listen}"]
status_interval_ms = 1000
heartbeat_interval_ms = 1000
[journal]
dir = "{dir}"
[snapshot]
interval_events = 0
[threads]
{engine_core}{gateway_core}engine_idle = "{engine_idle}"
gateway_idle = "sleep:1000"
[limits]
accounts_max = {accounts}
instruments_max = {instruments}
assets_max = {assets}
positions_per_account_max = {positions}
balances_per_account_max = {balances}
[metrics]
listen = "127.0.0.1:0"
status_log_interval_ms = 0
"#,
        md = target.md,
        orders = target.orders,
        listen = target.listen,
        dir = prepared.dir.display(),
        engine_core = core("engine_core", engine_core),
        gateway_core = core("gateway_core", gateway_core),
        accounts = l.accounts_max,
        instruments = l.instruments_max,
        assets = l.assets_max,
        positions = l.positions_per_account_max,
        balances = l.balances_per_account_max,
    )
}

/// A free loopback UDP port (bound, read, released).
///
/// # Errors
/// No socket can be bound.
pub fn free_port() -> std::io::Result<SocketAddr> {
    UdpSocket::bind("127.0.0.1:0")?.local_addr()
}

/// Intended send times (ns since the shared base, +1; 0 = not sent),
/// indexed by (stream, MoldUDP64 sequence); the top bit marks warm-up
/// events.
struct Schedule {
    base: Instant,
    slots: [Vec<AtomicU64>; 3],
}

const WARMUP_BIT: u64 = 1 << 63;

impl Schedule {
    fn new(capacity: usize) -> Schedule {
        let slots = || (0..capacity + 2).map(|_| AtomicU64::new(0)).collect();
        Schedule {
            base: Instant::now(),
            slots: [slots(), slots(), slots()],
        }
    }

    fn index(stream: SourceStream) -> Option<usize> {
        match stream {
            SourceStream::MarketData => Some(0),
            SourceStream::Orders => Some(1),
            SourceStream::Admin => Some(2),
            SourceStream::Config => None,
        }
    }

    fn set(&self, stream: SourceStream, seq: u64, due: Instant, warmup: bool) {
        let ns = due.saturating_duration_since(self.base).as_nanos() as u64 + 1;
        if let Some(slot) = Self::index(stream).and_then(|s| self.slots[s].get(seq as usize)) {
            slot.store(ns | if warmup { WARMUP_BIT } else { 0 }, Ordering::Release);
        }
    }

    /// (ns since base, warm-up) of a sent event.
    fn get(&self, stream: SourceStream, seq: u64) -> Option<(u64, bool)> {
        let slot = Self::index(stream).and_then(|s| self.slots[s].get(seq as usize))?;
        let v = slot.load(Ordering::Acquire);
        (v != 0).then_some(((v & !WARMUP_BIT) - 1, v & WARMUP_BIT != 0))
    }
}

/// What the receiver measured.
struct Received {
    pings: Histogram<u64>,
    decisions: Histogram<u64>,
    /// Measured decisions of the scenario's events (pings' `H` excluded).
    liquidations: u64,
    halts: u64,
    unmatched: u64,
}

/// Which answers the receiver expects.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The daemon's outbound stream: `H`/`L` matched by origin.
    Daemon,
    /// The echo: each datagram back, matched by its MoldUDP64 sequence.
    Echo,
}

fn receive(
    socket: &UdpSocket,
    schedule: &Schedule,
    mode: Mode,
    done: &AtomicBool,
    expected_pings: u64,
    linger: Duration,
    core: Option<usize>,
) -> Received {
    if let Some(core) = core {
        super::pin(core);
    }
    let mut r = Received {
        pings: histogram(),
        decisions: histogram(),
        liquidations: 0,
        halts: 0,
        unmatched: 0,
    };
    let mut buf = vec![0u8; 65_536];
    let mut done_at: Option<Instant> = None;
    let _ = socket.set_read_timeout(Some(Duration::from_millis(20)));
    loop {
        if done.load(Ordering::Acquire) && done_at.is_none() {
            done_at = Some(Instant::now());
        }
        if let Some(at) = done_at {
            if r.pings.len() >= expected_pings || at.elapsed() > linger {
                return r;
            }
        }
        let Ok(len) = socket.recv(&mut buf) else {
            continue;
        };
        let now = schedule.base.elapsed().as_nanos() as u64;
        let Ok(packet) = parse_packet(&buf[..len]) else {
            r.unmatched += 1;
            continue;
        };
        // Records a measured answer; false for warm-up and unknown ones.
        let record = |hist: &mut Histogram<u64>, stream, seq| match schedule.get(stream, seq) {
            Some((due, false)) => {
                hist.saturating_record(now.saturating_sub(due).max(1));
                true
            }
            Some((_, true)) | None => false,
        };
        match mode {
            Mode::Echo => {
                record(&mut r.pings, SourceStream::MarketData, packet.sequence);
            }
            Mode::Daemon => {
                for message in packet.messages() {
                    match decode_outbound(message) {
                        Ok(OutboundMessage::Halt(h)) => {
                            let hist = if h.halt.instrument == PING_INSTRUMENT {
                                &mut r.pings
                            } else {
                                &mut r.decisions
                            };
                            let measured = record(hist, h.origin.stream, h.origin.seq);
                            r.halts += u64::from(measured && h.halt.instrument != PING_INSTRUMENT);
                        }
                        Ok(OutboundMessage::Liquidation(l)) => {
                            let measured = record(&mut r.decisions, l.origin.stream, l.origin.seq);
                            r.liquidations += u64::from(measured);
                        }
                        Ok(OutboundMessage::Status(_)) => {}
                        Err(_) => r.unmatched += 1,
                    }
                }
            }
        }
    }
}

/// One MoldUDP64 packet of one message.
fn packet(session: &[u8; 10], seq: u64, message: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(session);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(message.len() as u16).to_be_bytes());
    out.extend_from_slice(message);
}

/// Runs the schedule against the daemon at `target` (or, with
/// `echo`, against the echo at `echo.md`). Returns the ping run and, for
/// the daemon, the decisions run.
///
/// # Errors
/// Sockets cannot be bound or a send fails.
pub fn run(
    opts: &Options,
    stream: crate::Stream,
    target: &Target,
    echo: bool,
) -> Result<(Run, Option<Run>), Error> {
    if !(opts.rate.is_finite() && opts.rate >= 1.0) {
        return Err(format!("rate {} is not a positive rate", opts.rate).into());
    }
    let total = opts.warmup + opts.events;
    let schedule = Arc::new(Schedule::new(total as usize));
    let receiver_socket = UdpSocket::bind(target.listen)?;
    let done = Arc::new(AtomicBool::new(false));
    let ping_every = opts.ping_every.max(1);
    let expected_pings = opts.events.div_ceil(ping_every);
    let mode = if echo { Mode::Echo } else { Mode::Daemon };
    let receiver = {
        let schedule = schedule.clone();
        let done = done.clone();
        let linger = opts.linger;
        let core = opts.receiver_core;
        std::thread::Builder::new()
            .name("bench-receiver".into())
            .spawn(move || {
                receive(
                    &receiver_socket,
                    &schedule,
                    mode,
                    &done,
                    expected_pings,
                    linger,
                    core,
                )
            })?
    };
    let sender = UdpSocket::bind("127.0.0.1:0")?;
    if let Some(core) = opts.generator_core {
        super::pin(core);
    }
    super::set_timer_slack_ns(1);
    let sessions: [&[u8; 10]; 3] = [b"BENCHMD   ", b"BENCHORD  ", b"BENCHADM  "];
    let mut seqs = [1u64; 3];
    let mut message = [0u8; 1024];
    let mut datagram = Vec::with_capacity(1500);
    let mut send_lag = histogram();
    let mut stream = stream;
    let mut pings = 0u64;
    let mut measured_pings_sent = 0u64;
    let start = Instant::now() + Duration::from_millis(1);
    let mut measured_start = start;
    let mut send_error = None;
    for i in 0..total {
        let due = start + Duration::from_nanos((i as f64 * 1e9 / opts.rate) as u64);
        if i == opts.warmup {
            measured_start = due;
        }
        let ts = UnixNanos(1_000 + i);
        let is_ping = echo || i.is_multiple_of(ping_every);
        let event = if is_ping {
            pings += 1;
            ping(pings - 1, ts)
        } else {
            stream.next_event(ts)
        };
        let source = source_of(&event);
        let (index, to) = match source {
            SourceStream::MarketData => (0, target.md),
            SourceStream::Orders => (1, target.orders),
            _ => continue,
        };
        let len = encode_event(&event, &mut message).map_err(|e| format!("encode: {e:?}"))?;
        let seq = seqs[index];
        seqs[index] += 1;
        packet(sessions[index], seq, &message[..len], &mut datagram);
        loop {
            let now = Instant::now();
            if now >= due {
                break;
            }
            // Sleep, never spin for long: on a small host the generator
            // shares its core with the daemon's gateway thread.
            let wait = due - now;
            if wait > Duration::from_micros(20) {
                std::thread::sleep(wait - Duration::from_micros(10));
            } else {
                std::hint::spin_loop();
            }
        }
        let warmup = i < opts.warmup;
        schedule.set(source, seq, due, warmup);
        if !warmup {
            send_lag.saturating_record((due.elapsed().as_nanos() as u64).max(1));
            measured_pings_sent += u64::from(is_ping);
        }
        if let Err(e) = sender.send_to(&datagram, to) {
            send_error = Some(e);
            break;
        }
    }
    let sent_all = Instant::now();
    done.store(true, Ordering::Release);
    let received = receiver
        .join()
        .map_err(|_| "the receiver thread panicked")?;
    if let Some(e) = send_error {
        return Err(e.into());
    }
    let elapsed = sent_all
        .saturating_duration_since(measured_start)
        .as_secs_f64()
        .max(1e-9);
    let kind = if echo { "echo" } else { "wire" };
    let path = opts.scenario.path.name();
    let lost = measured_pings_sent.saturating_sub(received.pings.len());
    let base = Run {
        label: if echo {
            format!("echo {}/s", short(opts.rate))
        } else {
            format!("wire {path} {}/s", short(opts.rate))
        },
        kind: kind.to_owned(),
        path: if echo {
            "ping".to_owned()
        } else {
            path.to_owned()
        },
        accounts: opts.scenario.accounts,
        offered_per_s: opts.rate,
        achieved_per_s: opts.events as f64 / elapsed,
        events: received.pings.len(),
        warmup_events: opts.warmup,
        latency: Percentiles::of(&received.pings),
        send_lag: Percentiles::of(&send_lag),
        liquidations: received.liquidations,
        halts: received.halts,
        // Pings sent but never answered (loss, or later than the linger).
        rejected: lost,
        engine_only: None,
        sched: None,
        histogram: Some(received.pings),
    };
    let decisions = (!echo && !received.decisions.is_empty()).then(|| Run {
        label: format!("wire {path} {}/s decisions", short(opts.rate)),
        kind: "wire-decisions".to_owned(),
        events: received.decisions.len(),
        latency: Percentiles::of(&received.decisions),
        histogram: Some(received.decisions),
        send_lag: Percentiles::default(),
        ..base.clone()
    });
    Ok((base, decisions))
}

/// A bare UDP echo on `bind`: every datagram back to `to`, until `stop`.
///
/// # Errors
/// The socket cannot be bound.
pub fn spawn_echo(
    bind: SocketAddr,
    to: SocketAddr,
    stop: Arc<AtomicBool>,
    core: Option<usize>,
) -> Result<std::thread::JoinHandle<u64>, Error> {
    let socket = UdpSocket::bind(bind)?;
    socket.set_read_timeout(Some(Duration::from_millis(20)))?;
    Ok(std::thread::Builder::new()
        .name("bench-echo".into())
        .spawn(move || {
            if let Some(core) = core {
                super::pin(core);
            }
            let mut buf = [0u8; 2048];
            let mut echoed = 0u64;
            while !stop.load(Ordering::Acquire) {
                if let Ok(len) = socket.recv(&mut buf) {
                    if socket.send_to(&buf[..len], to).is_ok() {
                        echoed += 1;
                    }
                }
            }
            echoed
        })?)
}
