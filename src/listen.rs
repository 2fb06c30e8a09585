//! `liqd listen`: receives liqd's outbound (liquidation) stream and prints
//! it as JSONL on stdout, in the output format of `liqd replay run` (plus
//! `src_stream`/`src_seq`, which the daemon knows; `--no-source` leaves them
//! out so the output diffs against a replay). A liquidation sent as several
//! `L` messages is printed as one line. `S` status messages are printed
//! only with `--status`. Gaps are re-requested from `--retrans` (never
//! skipped); notices go to stderr.
//!
//! Stops at the end of the session once every message of it was printed,
//! after `--count` outputs, or after `--idle-exit-ms` without a datagram.

use std::io::{self, BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use engine::{Leg, Liquidation};
use feed_gateway::net::{system_now_ns, udp_socket, Multicast};
use feed_gateway::wire::{decode_outbound, LiquidationMessage, Origin, OutboundMessage};
use feed_gateway::{MessageHandler, Notice, Sequencer, SequencerConfig};
use journal::Status;
use replay::jsonl::{write_halt, write_liquidation, Source};

#[derive(Args)]
pub struct ListenArgs {
    /// Local address the outbound stream is sent to.
    #[arg(long)]
    bind: SocketAddr,
    /// liqd's outbound address, for re-requests (none: gaps are reported,
    /// not filled).
    #[arg(long)]
    retrans: Option<SocketAddr>,
    /// Join this IPv4 multicast group (on `--interface`).
    #[arg(long)]
    multicast: Option<Ipv4Addr>,
    #[arg(long, default_value = "0.0.0.0")]
    interface: Ipv4Addr,
    /// Print `S` status messages too.
    #[arg(long)]
    status: bool,
    /// Leave out `src_stream` and `src_seq` (the form `liqd replay run` prints).
    #[arg(long)]
    no_source: bool,
    /// Stop after this many printed outputs.
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this long without receiving anything.
    #[arg(long)]
    idle_exit_ms: Option<u64>,
    /// Largest datagram expected (hold-buffer slot size).
    #[arg(long, default_value_t = 1472)]
    datagram_bytes: usize,
}

/// Assembles and prints outputs as the sequencer delivers messages.
struct Printer<W: Write> {
    out: W,
    status: bool,
    no_source: bool,
    /// A liquidation whose continuation parts are still arriving.
    pending: Option<(Liquidation, Origin, Vec<Leg>)>,
    printed: u64,
    malformed: u64,
    error: Option<io::Error>,
}

fn source(origin: Origin) -> Source {
    Source {
        stream: origin.stream,
        seq: origin.seq,
    }
}

impl<W: Write> Printer<W> {
    fn record(&mut self, result: io::Result<()>) {
        if let Err(e) = result {
            self.error.get_or_insert(e);
        }
    }

    fn source(&self, origin: Origin) -> Option<Source> {
        (!self.no_source).then(|| source(origin))
    }

    fn liquidation(&mut self, seq: u64, l: &LiquidationMessage<'_>) {
        let header = l.to_liquidation();
        let mut legs = match self.pending.take() {
            Some((pending, origin, legs)) if pending == header && origin == l.origin => legs,
            Some((pending, origin, legs)) => {
                eprintln!(
                    "listen: message {seq}: liquidation of account {} (seq {}) ended without its last part",
                    pending.account, pending.seq
                );
                let source = self.source(origin);
                let result = write_liquidation(&mut self.out, &pending, &legs, source);
                self.record(result);
                self.printed += 1;
                Vec::new()
            }
            None => Vec::new(),
        };
        legs.extend(l.legs().map(|leg| leg.to_leg()));
        if l.continued {
            self.pending = Some((header, l.origin, legs));
            return;
        }
        let source = self.source(l.origin);
        let result = write_liquidation(&mut self.out, &header, &legs, source);
        self.record(result);
        self.printed += 1;
    }

    fn status_line(&mut self, status: &Status) {
        let result = writeln!(
            self.out,
            "{{\"type\":\"status\",\"ts\":{},\"seq\":{},\"accounts\":{},\"liquidating\":{},\"halted\":{}}}",
            status.ts, status.seq, status.accounts, status.liquidating, status.halted
        );
        self.record(result);
    }
}

impl<W: Write> MessageHandler for Printer<W> {
    fn message(&mut self, seq: u64, message: &[u8]) {
        match decode_outbound(message) {
            Ok(OutboundMessage::Liquidation(l)) => self.liquidation(seq, &l),
            Ok(OutboundMessage::Halt(h)) => {
                let source = self.source(h.origin);
                let result = write_halt(&mut self.out, &h.halt, source);
                self.record(result);
                self.printed += 1;
            }
            Ok(OutboundMessage::Status(status)) => {
                if self.status {
                    self.status_line(&status);
                }
            }
            Err(e) => {
                self.malformed += 1;
                eprintln!("listen: malformed message {seq}: {e}");
            }
        }
    }

    fn notice(&mut self, notice: Notice) {
        match notice {
            Notice::MalformedPacket(e) => eprintln!("listen: malformed packet dropped: {e}"),
            Notice::NewSession { session, abandoned } => {
                eprintln!("listen: session {session} (abandoned {abandoned} of the previous)");
            }
            Notice::GapOpened { from, to } => eprintln!("listen: gap {from}..{to}"),
            Notice::EndOfSession { session, next } => {
                eprintln!("listen: session {session} ends before {next}");
            }
            other => eprintln!("listen: {other:?}"),
        }
    }
}

/// `liqd listen`.
pub fn listen(args: &ListenArgs) -> anyhow::Result<()> {
    let multicast = args.multicast.map(|group| Multicast {
        group,
        interface: args.interface,
    });
    let socket: UdpSocket = udp_socket(args.bind, multicast, Some(4 << 20), None)
        .with_context(|| format!("binding {}", args.bind))?;
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(Duration::from_millis(1)))?;
    let mut sequencer = Sequencer::new(SequencerConfig {
        rerequest: args.retrans.is_some(),
        hold_datagram_bytes_max: args.datagram_bytes,
        ..SequencerConfig::NEVER_SKIP
    });
    let mut printer = Printer {
        out: BufWriter::new(io::stdout().lock()),
        status: args.status,
        no_source: args.no_source,
        pending: None,
        printed: 0,
        malformed: 0,
        error: None,
    };
    let mut buffer = vec![0u8; 65_536];
    let mut last_datagram = Instant::now();
    let idle = args.idle_exit_ms.map(Duration::from_millis);
    loop {
        match socket.recv_from(&mut buffer) {
            Ok((len, _from)) => {
                last_datagram = Instant::now();
                sequencer.on_datagram(&buffer[..len], system_now_ns(), &mut printer);
                printer.out.flush().context("writing to standard output")?;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e).context("receiving"),
        }
        sequencer.poll(system_now_ns(), &mut printer);
        if let (Some(request), Some(retrans)) = (sequencer.take_rerequest(), args.retrans) {
            // A failed send is retried at the next interval.
            let _ = socket.send_to(&request.encode(), retrans);
        }
        if let Some(e) = printer.error.take() {
            return Err(e).context("writing to standard output");
        }
        let done = sequencer.is_finished()
            || args.count.is_some_and(|n| printer.printed >= n)
            || idle.is_some_and(|d| last_datagram.elapsed() >= d);
        if done {
            break;
        }
    }
    if let Some((pending, _, legs)) = &printer.pending {
        eprintln!(
            "listen: liquidation of account {} (seq {}) incomplete at exit: {} legs received, not printed",
            pending.account,
            pending.seq,
            legs.len()
        );
    }
    printer.out.flush().context("writing to standard output")?;
    let c = sequencer.counters();
    eprintln!(
        "listen: {} outputs; messages {}, duplicates {}, gaps {}, re-requests {}, malformed packets {}, malformed messages {}{}",
        printer.printed,
        c.messages,
        c.duplicates,
        c.gaps,
        c.rerequests,
        c.malformed_packets_total(),
        printer.malformed,
        if sequencer.gap_open() { " (gap still open)" } else { "" }
    );
    Ok(())
}
