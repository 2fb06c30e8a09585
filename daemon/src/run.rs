//! `liqd run --config FILE`: the gateway thread's loop.
//!
//! ```text
//! loop until SIGINT/SIGTERM:
//!   gateway.poll(timeout)      receive; each event → pipeline.submit (journal, ring)
//!   pipeline.poll(outbound)    engine outputs → output journal → publisher
//!   outbound.flush / tick      send the datagram; heartbeats; answer re-requests
//!   every status_interval      request an S (journaled and published in order)
//!   every second               latency percentiles and gateway counters → /metrics
//! ```
//!
//! While inputs are in flight the loop spins on the output ring (up to
//! 20 µs, then it polls the sockets with timeout 0 and spins again), so a
//! decision is published as soon as the engine produces it; when idle it
//! waits in epoll as `threads.gateway_idle` says.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use engine::{Event, Seq, UnixNanos};
use feed_gateway::net::Multicast;
use feed_gateway::receiver::StreamReceiver;
use feed_gateway::sequencer::Notice;
use feed_gateway::wire::{PacketError, Session, Stream};
use feed_gateway::{
    Gateway, GatewayConfig, GatewayHandler, InboundConfig, NoRetention, ReceiverConfig,
};

use crate::config::{Config, Idle, LoadError, Settings, StreamConfig};
use crate::datadir::DataDirError;
use crate::engine_thread::pin_current_thread;
use crate::metrics::{Metrics, Observer};
use crate::outbound::{OutboundSettings, OutboundSide};
use crate::pipeline::{Pipeline, PipelineError};
use crate::sessions::Sessions;
use crate::startup::{start, DaemonOptions, StartError, StopReport};

/// How long the loop waits on the output ring alone while inputs are in
/// flight (the engine takes about a microsecond per event) before it polls
/// the sockets again.
const IN_FLIGHT_SPIN: Duration = Duration::from_micros(20);

/// Why `liqd run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] LoadError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The sessions file could not be written (nothing of the new session
    /// was journaled).
    #[error("recording an inbound session: {0}")]
    Sessions(#[from] DataDirError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let what = what.into();
    move |source| RunError::Io { what, source }
}

/// Runs the daemon until SIGINT or SIGTERM; then drains, journals,
/// snapshots and returns `Ok`.
///
/// # Errors
/// Invalid configuration; the data directory cannot be used; a socket
/// cannot be bound; a journal write failed (the daemon stops: nothing may
/// be applied that is not journaled).
pub fn run(config_path: &Path) -> Result<(), RunError> {
    let (config, settings) = Config::load(config_path)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).map_err(io("installing signals"))?;
    }
    let metrics = Arc::new(Metrics::default());
    let report = run_until(&config, &settings, &stop, metrics, true, |_| {})?;
    eprintln!(
        "liqd: stopped at input seq {}, next output seq {}, snapshot {:?}, state_hash {:016x}",
        report.last_input_seq.0,
        report.next_output_seq.0,
        report.snapshot_seq.map(|s| s.0),
        report.state_hash
    );
    Ok(())
}

/// Where a started daemon listens: the bound addresses (a configured
/// port 0 is resolved), for an in-process caller such as `liqd demo`.
#[derive(Clone, Copy, Debug)]
pub struct Listening {
    pub md: Option<SocketAddr>,
    pub orders: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub outbound_rerequests: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
}

/// [`run`] without the configuration file and the signal handlers: runs
/// until `stop` is set, counting into `metrics`; `on_listening` is called
/// once the sockets are bound. `log`: the start, notice and stop lines on
/// stderr (the status line is `metrics.status_log_interval_ms`'s).
///
/// # Errors
/// As [`run`].
pub fn run_until(
    config: &Config,
    settings: &Settings,
    stop: &AtomicBool,
    metrics: Arc<Metrics>,
    log: bool,
    on_listening: impl FnOnce(Listening),
) -> Result<StopReport, RunError> {
    let options = DaemonOptions::from_config(config, settings);
    let mut outbound = OutboundSide::new(&outbound_settings(config), options.dir.clone())
        .map_err(io("opening the outbound socket"))?;
    let running = start(&options, metrics, &mut outbound)?;
    if log {
        eprintln!("liqd: {}", running.report);
    }
    let mut running = running;
    // After the engine thread started: it must not inherit this mask.
    if let Some(core) = config.threads.gateway_core {
        pin_current_thread("gateway", core);
    }
    outbound.resume(running.pipeline.next_output_seq());
    let mut gateway = open_gateway(config, &running.pipeline, &running.sessions)?;
    let observer = Observer::start(
        running.pipeline.sources(),
        config.metrics.listen,
        Duration::from_millis(config.metrics.status_log_interval_ms),
    )
    .map_err(io("starting the metrics endpoint"))?;
    let listening = Listening {
        md: gateway.local_addr(Stream::MarketData),
        orders: gateway.local_addr(Stream::Orders),
        admin: gateway.local_addr(Stream::Admin),
        outbound_rerequests: outbound.rerequest_addr().ok(),
        metrics: observer.local_addr(),
    };
    if log {
        eprintln!(
            "liqd: running: shard {} md={} orders={} admin={} outbound re-requests at {} metrics at {}",
            settings.shard,
            show(listening.md),
            show(listening.orders),
            show(listening.admin),
            show(listening.outbound_rerequests),
            show(listening.metrics),
        );
    }
    on_listening(listening);
    let control = LoopControl {
        idle: settings.gateway_idle,
        stop,
        log,
    };
    let result = serve(
        config,
        control,
        &mut gateway,
        &mut running.pipeline,
        &mut running.sessions,
        &mut outbound,
    );
    if log {
        eprintln!("liqd: stopping: draining the rings, flushing the journals");
    }
    let stopped = running.stop(&mut outbound);
    outbound.flush();
    observer.stop();
    result?;
    Ok(stopped?)
}

fn show(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "-".to_owned(), |a| a.to_string())
}

fn outbound_settings(config: &Config) -> OutboundSettings {
    let o = &config.outbound;
    OutboundSettings {
        // Validated by Config::validate (≤ 10 printable ASCII).
        session: Session::new(&o.session).unwrap_or(Session([b'?'; 10])),
        bind: o.bind,
        destinations: o.destinations.clone(),
        retransmit_listen: o.retransmit_listen,
        heartbeat_interval_ns: o.heartbeat_interval_ms.saturating_mul(1_000_000),
        datagram_bytes_max: o.datagram_bytes_max,
    }
}

fn inbound(stream: &StreamConfig) -> InboundConfig {
    let multicast = match (stream.multicast_group, stream.multicast_interface) {
        (Some(IpAddr::V4(group)), interface) => Some(Multicast {
            group,
            interface: match interface {
                Some(IpAddr::V4(i)) => i,
                _ => std::net::Ipv4Addr::UNSPECIFIED,
            },
        }),
        _ => None,
    };
    InboundConfig {
        bind: stream.listen,
        multicast,
        allow: stream.allow.clone(),
        retrans: stream.retransmit,
    }
}

/// The inbound sockets, each stream resumed one past its last journaled
/// message in its session: the one recorded in the sessions file, else the
/// configured one, else the first one seen is adopted.
fn open_gateway(
    config: &Config,
    pipeline: &Pipeline,
    sessions: &Sessions,
) -> Result<Gateway<NoRetention>, RunError> {
    let streams = &config.streams;
    let receiver = ReceiverConfig {
        md_gap_wait_ns: streams.md.gap_wait_us.unwrap_or(500).saturating_mul(1000),
        hold_packets_max: streams.orders.hold_packets.max(streams.admin.hold_packets),
        ..ReceiverConfig::default()
    };
    let gateway_config = GatewayConfig {
        inbound: [
            Some(inbound(&streams.md)),
            Some(inbound(&streams.orders)),
            Some(inbound(&streams.admin)),
        ],
        outbound: None,
        receiver,
        socket_recv_buffer_bytes: config.streams.socket_recv_buffer_bytes,
        socket_send_buffer_bytes: None,
    };
    let mut gateway =
        Gateway::new(gateway_config, NoRetention).map_err(io("opening the inbound sockets"))?;
    for (stream, stream_config) in [
        (Stream::MarketData, &streams.md),
        (Stream::Orders, &streams.orders),
        (Stream::Admin, &streams.admin),
    ] {
        let next = pipeline.next_expected(stream.source());
        let fresh = StreamReceiver::new(stream, &receiver);
        let recorded = sessions.get(stream.source()).map(|s| Session(s.session));
        let configured = stream_config
            .session
            .as_deref()
            .and_then(|s| Session::new(s).ok());
        let session = recorded.or(configured);
        let mut resumed = match session {
            Some(session) => fresh.with_resume(session, next),
            None => fresh.with_next_expected(next),
        };
        resumed.set_rerequest(stream_config.retransmit.is_some());
        *gateway.receiver_mut().stream_mut(stream) = resumed;
    }
    Ok(gateway)
}

/// Hands each received event to the pipeline.
struct Handler<'a> {
    pipeline: &'a mut Pipeline,
    outbound: &'a mut OutboundSide,
    /// Per stream: a session is known (configured, or seen). The first
    /// `NewSession` of a stream without one adopts it (the sequence goes
    /// on); a later one restarts the stream at 1.
    session_known: &'a mut [bool; 3],
    sessions: &'a mut Sessions,
    /// Notices on stderr.
    log: bool,
    error: Option<RunError>,
}

impl GatewayHandler for Handler<'_> {
    fn on_event(&mut self, stream: Stream, stream_seq: u64, recv_ts: UnixNanos, event: &Event) {
        if self.error.is_some() {
            // Not journaled: a restart resumes before it.
            return;
        }
        let result = self.pipeline.submit(
            stream.source(),
            stream_seq,
            recv_ts,
            Instant::now(),
            event,
            self.outbound,
        );
        if let Err(e) = result {
            self.error = Some(e.into());
        }
    }

    fn on_notice(&mut self, stream: Stream, source: Option<SocketAddr>, notice: &Notice) {
        if let Notice::NewSession { session, .. } = notice {
            let known = &mut self.session_known[stream.index()];
            // Recorded before any event of the session is journaled. A
            // change: the stream's records from the next input on are of
            // the new session. Adopting the first one: so are the ones
            // already journaled (as before the file existed).
            let first_input_seq = if *known {
                Seq(self.pipeline.last_input_seq().0 + 1)
            } else {
                Seq(0)
            };
            if self.error.is_none() {
                if let Err(e) = self
                    .sessions
                    .set(stream.source(), session.0, first_input_seq)
                {
                    self.error = Some(e.into());
                }
            }
            if *known {
                self.pipeline.restart_stream(stream.source());
            }
            *known = true;
        }
        if !self.log {
            return;
        }
        let from = show(source);
        match notice {
            Notice::GapClosed { .. } => {}
            _ => eprintln!("liqd: {} stream (from {from}): {notice:?}", stream.name()),
        }
    }
}

/// How the gateway loop runs: its idle strategy, when to stop, whether
/// notices are logged.
#[derive(Clone, Copy)]
struct LoopControl<'a> {
    idle: Idle,
    stop: &'a AtomicBool,
    log: bool,
}

fn serve(
    config: &Config,
    control: LoopControl<'_>,
    gateway: &mut Gateway<NoRetention>,
    pipeline: &mut Pipeline,
    sessions: &mut Sessions,
    outbound: &mut OutboundSide,
) -> Result<(), RunError> {
    let status_interval = Duration::from_millis(config.outbound.status_interval_ms);
    let mut next_status = Instant::now() + status_interval;
    let mut next_metrics = Instant::now();
    let mut session_known = [Stream::MarketData, Stream::Orders, Stream::Admin].map(|stream| {
        gateway
            .receiver()
            .stream(stream)
            .sequencer()
            .session()
            .is_some()
    });
    let LoopControl { idle, stop, log } = control;
    let idle_timeout = match idle {
        Idle::Sleep(d) => d,
        Idle::Spin | Idle::Yield => Duration::ZERO,
    };
    while !stop.load(Ordering::Acquire) {
        let timeout = if pipeline.in_flight() > 0 {
            Duration::ZERO
        } else {
            idle_timeout
        };
        let mut handler = Handler {
            pipeline: &mut *pipeline,
            outbound: &mut *outbound,
            session_known: &mut session_known,
            sessions: &mut *sessions,
            log,
            error: None,
        };
        let polled = gateway.poll(Some(timeout), &mut handler);
        if let Some(e) = handler.error {
            return Err(e);
        }
        polled.map_err(io("polling the sockets"))?;
        // Inputs in flight: wait for their decisions on the output ring
        // alone (no system call) for a short while before looking at the
        // sockets again.
        let spin_until = Instant::now() + IN_FLIGHT_SPIN;
        loop {
            if pipeline.poll(outbound)? > 0 {
                outbound.flush();
            }
            if pipeline.in_flight() == 0 || Instant::now() >= spin_until {
                break;
            }
            std::hint::spin_loop();
        }
        outbound.tick();
        let now = Instant::now();
        if now >= next_status {
            next_status = now + status_interval;
            pipeline.request_status(outbound)?;
        }
        if now >= next_metrics {
            next_metrics = now + Duration::from_secs(1);
            pipeline.update_latency_metrics();
            publish_gateway_counters(pipeline.metrics(), gateway, outbound);
        }
        if idle == Idle::Yield && pipeline.in_flight() == 0 {
            std::thread::yield_now();
        }
    }
    pipeline.drain(outbound)?;
    outbound.flush();
    Ok(())
}

/// The gateway's and publisher's counters as Prometheus samples (once a
/// second; allocates, off the per-event path).
fn publish_gateway_counters(
    metrics: &Metrics,
    gateway: &Gateway<NoRetention>,
    outbound: &OutboundSide,
) {
    let mut samples = Vec::with_capacity(96);
    let g = gateway.counters();
    for stream in Stream::ALL {
        let name = stream.name();
        let r = gateway.receiver().stream(stream);
        let c = r.counters();
        let label = |metric: &str| format!("liqd_{metric}{{stream=\"{name}\"}}");
        samples.push((label("packets_total"), c.packets));
        samples.push((label("heartbeats_total"), c.heartbeats));
        samples.push((label("messages_total"), c.messages));
        samples.push((label("events_received_total"), r.events()));
        samples.push((label("duplicate_messages_total"), c.duplicates));
        samples.push((label("gaps_total"), c.gaps));
        samples.push((label("gap_skipped_messages_total"), c.skipped));
        samples.push((label("held_dropped_total"), c.held_dropped));
        samples.push((label("rerequests_total"), c.rerequests));
        samples.push((
            label("rerequests_sent_total"),
            g.rerequests_sent[stream.index()],
        ));
        samples.push((label("sessions_total"), c.sessions));
        samples.push((label("alarm"), u64::from(r.alarm())));
        samples.push((
            format!("liqd_drops_total{{stream=\"{name}\",reason=\"source_not_allowed\"}}"),
            g.rejected_sources[stream.index()],
        ));
        for error in PacketError::ALL {
            samples.push((
                format!(
                    "liqd_drops_total{{stream=\"{name}\",reason=\"packet_{}\"}}",
                    error.name()
                ),
                c.malformed_packets[error.index()],
            ));
        }
        for (index, count) in r.malformed_messages().iter().enumerate() {
            let reason = feed_gateway::wire::MessageError::NAMES[index];
            samples.push((
                format!("liqd_drops_total{{stream=\"{name}\",reason=\"message_{reason}\"}}"),
                *count,
            ));
        }
    }
    samples.push(("liqd_socket_recv_errors_total".to_owned(), g.recv_errors));
    let p = outbound.counters();
    samples.push(("liqd_outbound_messages_total".to_owned(), p.messages));
    samples.push(("liqd_outbound_datagrams_total".to_owned(), p.datagrams));
    samples.push(("liqd_outbound_heartbeats_total".to_owned(), p.heartbeats));
    samples.push(("liqd_outbound_rerequests_total".to_owned(), p.rerequests));
    samples.push((
        "liqd_outbound_resent_messages_total".to_owned(),
        p.resent_messages,
    ));
    samples.push((
        "liqd_outbound_unretained_messages_total".to_owned(),
        p.unretained_messages,
    ));
    samples.push((
        "liqd_outbound_saturated_values_total".to_owned(),
        p.saturated_values,
    ));
    samples.push((
        "liqd_outbound_send_errors_total".to_owned(),
        outbound.send_errors + g.send_errors,
    ));
    samples.push((
        "liqd_outbound_journal_fetches_total".to_owned(),
        outbound.journal_fetches(),
    ));
    *metrics
        .gateway_samples
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = samples;
}
