//! Counters shared with the observability threads, the Prometheus text
//! endpoint and the periodic status line.
//!
//! The hot threads only bump relaxed atomics (the gateway thread) or
//! nothing at all (the engine thread: its results come back on the output
//! ring and are counted by the gateway). Latency percentiles are computed
//! on the gateway thread from an hdrhistogram and published here every
//! status tick; the `/metrics` thread only reads.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use journal::Syncer;

use crate::ring::Gauge;
use crate::ring_types::{EngineInput, EngineOutput};

/// Counters; every field is monotonic unless it says gauge.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Inputs appended to the input journal.
    pub events_journaled: AtomicU64,
    /// Inputs the engine accepted.
    pub events_applied: AtomicU64,
    /// Inputs the engine rejected (value out of range, unknown id, …).
    pub events_rejected: AtomicU64,
    /// Order-stream inputs of another shard's accounts (journaled, not
    /// applied).
    pub events_skipped_shard: AtomicU64,
    /// Inputs refused because their stream sequence was already journaled.
    pub events_duplicate: AtomicU64,
    pub liquidations: AtomicU64,
    pub halts: AtomicU64,
    pub status_messages: AtomicU64,
    /// Gauge: last input sequence journaled.
    pub input_last_seq: AtomicU64,
    /// Gauge: last output sequence journaled.
    pub output_last_seq: AtomicU64,
    /// Gauge: inputs pushed to the engine and not yet done.
    pub in_flight: AtomicU64,
    /// Times the gateway found the input ring full and waited.
    pub input_ring_full_waits: AtomicU64,
    /// Gauges from the engine's last status answer (the `S` message):
    /// accounts, accounts in a liquidation cooldown, halted instruments.
    pub accounts: AtomicU64,
    pub accounts_liquidating: AtomicU64,
    pub instruments_halted: AtomicU64,
    /// Gauges: in-process latency, receive → engine done, nanoseconds.
    pub latency_ns_p50: AtomicU64,
    pub latency_ns_p90: AtomicU64,
    pub latency_ns_p99: AtomicU64,
    pub latency_ns_p999: AtomicU64,
    pub latency_ns_max: AtomicU64,
    pub latency_samples: AtomicU64,
    /// Gauges: socket receive (kernel timestamp, wall clock) → engine done.
    pub wire_latency_ns_p50: AtomicU64,
    pub wire_latency_ns_p99: AtomicU64,
    pub wire_latency_ns_max: AtomicU64,
    pub wire_latency_samples: AtomicU64,
    /// The gateway's own counters (packets, drops by reason, gaps,
    /// re-requests…) as Prometheus sample lines `name{labels} value`,
    /// replaced wholesale by the gateway thread every status tick.
    pub gateway_samples: Mutex<Vec<(String, u64)>>,
}

/// Relaxed increment.
#[inline]
pub fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

#[inline]
fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// What the renderer reads besides [`Metrics`].
#[derive(Clone)]
pub struct Sources {
    pub metrics: Arc<Metrics>,
    pub input_ring: Gauge<EngineInput>,
    pub output_ring: Gauge<EngineOutput>,
    pub input_syncer: Syncer,
    pub output_syncer: Syncer,
}

impl Sources {
    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let m = &self.metrics;
        let mut out = String::with_capacity(4096);
        let counters: [(&str, &str, u64); 9] = [
            (
                "liqd_events_journaled_total",
                "Inputs appended to the input journal",
                get(&m.events_journaled),
            ),
            (
                "liqd_events_applied_total",
                "Inputs the engine accepted",
                get(&m.events_applied),
            ),
            (
                "liqd_events_rejected_total",
                "Inputs the engine rejected",
                get(&m.events_rejected),
            ),
            (
                "liqd_events_skipped_shard_total",
                "Order-stream inputs of other shards (journaled, not applied)",
                get(&m.events_skipped_shard),
            ),
            (
                "liqd_events_duplicate_total",
                "Inputs whose stream sequence was already journaled",
                get(&m.events_duplicate),
            ),
            (
                "liqd_liquidations_total",
                "Liquidations journaled and published",
                get(&m.liquidations),
            ),
            (
                "liqd_halts_total",
                "Halt transitions journaled and published",
                get(&m.halts),
            ),
            (
                "liqd_status_messages_total",
                "S messages journaled and published",
                get(&m.status_messages),
            ),
            (
                "liqd_input_ring_full_waits_total",
                "Times the gateway waited on a full input ring",
                get(&m.input_ring_full_waits),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let input_last = get(&m.input_last_seq);
        let output_last = get(&m.output_last_seq);
        let gauges: [(&str, &str, u64); 11] = [
            (
                "liqd_input_last_seq",
                "Last journaled input sequence",
                input_last,
            ),
            (
                "liqd_output_last_seq",
                "Last journaled output sequence",
                output_last,
            ),
            (
                "liqd_input_journal_lag_records",
                "Input records appended but not yet flushed",
                input_last.saturating_sub(self.input_syncer.durable_seq().0),
            ),
            (
                "liqd_output_journal_lag_records",
                "Output records appended but not yet flushed",
                output_last.saturating_sub(self.output_syncer.durable_seq().0),
            ),
            (
                "liqd_input_ring_occupancy",
                "Inputs waiting for the engine",
                self.input_ring.len() as u64,
            ),
            (
                "liqd_output_ring_occupancy",
                "Engine outputs waiting for the gateway",
                self.output_ring.len() as u64,
            ),
            (
                "liqd_ring_capacity_slots",
                "Slots per ring",
                self.input_ring.capacity() as u64,
            ),
            (
                "liqd_in_flight_events",
                "Inputs pushed to the engine, not yet done",
                get(&m.in_flight),
            ),
            (
                "liqd_accounts",
                "Accounts the engine holds (last S message)",
                get(&m.accounts),
            ),
            (
                "liqd_accounts_liquidating",
                "Accounts in a liquidation cooldown (last S message)",
                get(&m.accounts_liquidating),
            ),
            (
                "liqd_instruments_halted",
                "Instruments halted by staleness or a jump (last S message)",
                get(&m.instruments_halted),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let name = "liqd_latency_ns";
        let _ = writeln!(
            out,
            "# HELP {name} In-process latency, receive to engine done (gateway clock)\n# TYPE {name} summary"
        );
        for (quantile, value) in [
            ("0.5", &m.latency_ns_p50),
            ("0.9", &m.latency_ns_p90),
            ("0.99", &m.latency_ns_p99),
            ("0.999", &m.latency_ns_p999),
            ("1", &m.latency_ns_max),
        ] {
            let _ = writeln!(out, "{name}{{quantile=\"{quantile}\"}} {}", get(value));
        }
        let _ = writeln!(out, "{name}_count {}", get(&m.latency_samples));
        let name = "liqd_wire_latency_ns";
        let _ = writeln!(
            out,
            "# HELP {name} Socket receive (kernel timestamp) to engine done (wall clock)\n# TYPE {name} summary"
        );
        for (quantile, value) in [
            ("0.5", &m.wire_latency_ns_p50),
            ("0.99", &m.wire_latency_ns_p99),
            ("1", &m.wire_latency_ns_max),
        ] {
            let _ = writeln!(out, "{name}{{quantile=\"{quantile}\"}} {}", get(value));
        }
        let _ = writeln!(out, "{name}_count {}", get(&m.wire_latency_samples));
        let gateway = m
            .gateway_samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (sample, value) in gateway.iter() {
            let _ = writeln!(out, "{sample} {value}");
        }
        out
    }

    /// The one-line status for stderr.
    pub fn status_line(&self) -> String {
        let m = &self.metrics;
        format!(
            "status: input_seq={} output_seq={} applied={} rejected={} skipped_shard={} duplicate={} liquidations={} halts={} rings={}/{} latency_ns p50={} p99={} max={} wire_latency_ns p50={} p99={}",
            get(&m.input_last_seq),
            get(&m.output_last_seq),
            get(&m.events_applied),
            get(&m.events_rejected),
            get(&m.events_skipped_shard),
            get(&m.events_duplicate),
            get(&m.liquidations),
            get(&m.halts),
            self.input_ring.len(),
            self.output_ring.len(),
            get(&m.latency_ns_p50),
            get(&m.latency_ns_p99),
            get(&m.latency_ns_max),
            get(&m.wire_latency_ns_p50),
            get(&m.wire_latency_ns_p99),
        )
    }
}

/// The `/metrics` responder and the status-line logger.
pub struct Observer {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
    local_addr: Option<SocketAddr>,
}

impl Observer {
    /// Starts the HTTP responder on `listen` (if any) and the status-line
    /// logger every `status_log_interval` (if not zero).
    ///
    /// # Errors
    /// The address cannot be bound or a thread cannot start.
    pub fn start(
        sources: Sources,
        listen: Option<SocketAddr>,
        status_log_interval: Duration,
    ) -> io::Result<Observer> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        let mut local_addr = None;
        if let Some(listen) = listen {
            let listener = TcpListener::bind(listen)?;
            listener.set_nonblocking(true)?;
            local_addr = Some(listener.local_addr()?);
            let sources = sources.clone();
            let stop = stop.clone();
            handles.push(
                std::thread::Builder::new()
                    .name("liqd-metrics".into())
                    .spawn(move || serve(&listener, &sources, &stop))?,
            );
        }
        if !status_log_interval.is_zero() {
            let stop = stop.clone();
            handles.push(
                std::thread::Builder::new()
                    .name("liqd-status".into())
                    .spawn(move || {
                        let tick = Duration::from_millis(50);
                        let mut waited = Duration::ZERO;
                        while !stop.load(Ordering::Acquire) {
                            std::thread::sleep(tick);
                            waited += tick;
                            if waited >= status_log_interval {
                                waited = Duration::ZERO;
                                eprintln!("{}", sources.status_line());
                            }
                        }
                    })?,
            );
        }
        Ok(Observer {
            stop,
            handles,
            local_addr,
        })
    }

    /// The bound `/metrics` address (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        self.stop.store(true, Ordering::Release);
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

fn serve(listener: &TcpListener, sources: &Sources, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = respond(stream, sources);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// One request, one response, close. `GET /metrics` gets the exposition;
/// anything else 404.
fn respond(mut stream: TcpStream, sources: &Sources) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut request = [0u8; 1024];
    let mut filled = 0;
    while filled < request.len() {
        let n = stream.read(&mut request[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
        if request[..filled].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let head = &request[..filled];
    let (status, body) = if head.starts_with(b"GET /metrics ") || head.starts_with(b"GET /metrics?")
    {
        ("200 OK", sources.render())
    } else {
        ("404 Not Found", "not found: try /metrics\n".to_owned())
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
