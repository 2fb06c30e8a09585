//! `liqd feed`: publishes a JSONL event file as the venue's three MoldUDP64
//! streams (market data, orders, admin; each event routed to its stream by
//! type) and answers re-requests — a test venue for `liqd run`.
//!
//! One UDP socket sends every stream and receives re-requests (routed to
//! the stream by session name); bind it with `--retrans-bind` so receivers
//! know where to re-request. Datagrams go out in file order: a datagram is
//! sent before a message of another stream is queued, so a receiver sees
//! the streams interleaved as the file is (arrival order across sockets is
//! still the network's: use `--rate` to space events). After the last
//! event: a heartbeat per stream, `--linger-ms` answering re-requests
//! (heartbeats every `--heartbeat-ms`), then end of session (unless
//! `--keep-session`). `--drop-every N` skips every Nth message datagram's
//! first send (fault injection: receivers must recover it by re-request).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use engine::Event;
use feed_gateway::wire::{
    encode_event, encode_heartbeat, ReRequest, Session, Stream, DATAGRAM_BYTES_DEFAULT,
    DATAGRAM_BYTES_MAX, HEADER_BYTES, INBOUND_BYTES_MAX,
};
use feed_gateway::{Publisher, PublisherConfig, RingRetention};
use replay::jsonl::EventReader;

use crate::open_input;

#[derive(Args)]
pub struct FeedArgs {
    /// JSONL event file (PROTOCOL.md §5); `-` reads standard input.
    #[arg(long)]
    input: PathBuf,
    /// Destination of the market-data stream (M, X).
    #[arg(long)]
    md: SocketAddr,
    /// Destination of the order stream (F, B, N).
    #[arg(long)]
    orders: SocketAddr,
    /// Destination of the admin stream (A, I, G, P).
    #[arg(long)]
    admin: SocketAddr,
    /// Events per second (default: as fast as the socket takes them).
    #[arg(long)]
    rate: Option<f64>,
    /// Local address to send from and to receive re-requests on (default
    /// an ephemeral port on 0.0.0.0).
    #[arg(long)]
    retrans_bind: Option<SocketAddr>,
    /// Session name prefix (≤ 9 characters; the stream letter M/O/A is
    /// appended). Default: 9 digits from the clock.
    #[arg(long)]
    session: Option<String>,
    /// Largest datagram.
    #[arg(long, default_value_t = DATAGRAM_BYTES_DEFAULT)]
    datagram_bytes: usize,
    /// Messages kept per stream for re-requests.
    #[arg(long, default_value_t = 65_536)]
    retain: usize,
    /// Heartbeat interval while idle.
    #[arg(long, default_value_t = 1000)]
    heartbeat_ms: u64,
    /// How long to keep answering re-requests after the last event.
    #[arg(long, default_value_t = 1000)]
    linger_ms: u64,
    /// Do not send end of session at the end.
    #[arg(long)]
    keep_session: bool,
    /// Fault injection: do not send every Nth datagram of messages (it is
    /// retained, so a receiver recovers it by re-request). Heartbeats, ends
    /// and re-request answers are always sent.
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..))]
    drop_every: Option<u64>,
}

/// `--drop-every`: which first sends of message datagrams to skip.
#[derive(Default)]
struct Lossy {
    every: Option<u64>,
    sent: u64,
    dropped: u64,
}

impl Lossy {
    /// Whether to skip this datagram.
    fn drops(&mut self, datagram: &[u8]) -> bool {
        let Some(every) = self.every else {
            return false;
        };
        if datagram.len() <= HEADER_BYTES {
            return false;
        }
        self.sent += 1;
        let drop = self.sent.is_multiple_of(every);
        self.dropped += u64::from(drop);
        drop
    }
}

/// Per-stream sending state.
struct Outlet {
    publisher: Publisher<RingRetention>,
    destination: SocketAddr,
}

/// A test venue's sending side: three publishers on one socket that also
/// answers re-requests (`liqd feed`, `liqd demo`).
pub(crate) struct Feed {
    out: Sender,
    outlets: [Outlet; 3],
    started: Instant,
    buffer: Vec<u8>,
    pub(crate) rerequests: u64,
    pub(crate) bad_rerequests: u64,
    /// The stream of the last message pushed (its datagram may be open).
    current: Option<Stream>,
    message: [u8; INBOUND_BYTES_MAX],
    /// Messages sent per stream.
    pub(crate) counts: [u64; 3],
}

/// How to open a [`Feed`].
pub(crate) struct FeedOptions {
    pub(crate) bind: SocketAddr,
    pub(crate) sessions: [Session; 3],
    /// Per stream (market data, orders, admin).
    pub(crate) destinations: [SocketAddr; 3],
    pub(crate) datagram_bytes: usize,
    pub(crate) retain: usize,
    pub(crate) heartbeat_ms: u64,
    pub(crate) drop_every: Option<u64>,
}

/// The socket every stream sends on, with the loss injected on purpose
/// (`--drop-every`) and the send errors counted.
struct Sender {
    socket: UdpSocket,
    lossy: Lossy,
    errors: u64,
}

impl Sender {
    /// A stream's datagram: subject to the injected loss.
    fn stream(&mut self, datagram: &[u8], to: SocketAddr) {
        if !self.lossy.drops(datagram) {
            self.exact(datagram, to);
        }
    }

    /// A datagram never dropped on purpose (heartbeats, end of session,
    /// re-request answers).
    fn exact(&mut self, datagram: &[u8], to: SocketAddr) {
        send_all(&self.socket, datagram, to, &mut self.errors);
    }
}

/// Sends, waiting while the socket's buffer is full (a burst must not be
/// dropped by our own socket). Other errors are counted.
fn send_all(socket: &UdpSocket, datagram: &[u8], to: SocketAddr, errors: &mut u64) {
    loop {
        match socket.send_to(datagram, to) {
            Ok(_) => return,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_micros(50));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                *errors += 1;
                return;
            }
        }
    }
}

impl Feed {
    /// Binds the socket (non-blocking) and builds the three publishers.
    pub(crate) fn open(options: &FeedOptions) -> anyhow::Result<Feed> {
        if options.datagram_bytes > DATAGRAM_BYTES_MAX {
            bail!("--datagram-bytes: at most {DATAGRAM_BYTES_MAX}");
        }
        let socket =
            UdpSocket::bind(options.bind).with_context(|| format!("binding {}", options.bind))?;
        socket.set_nonblocking(true)?;
        let mut outlets = Vec::with_capacity(3);
        for stream in Stream::ALL {
            let config = PublisherConfig {
                session: options.sessions[stream.index()],
                datagram_bytes_max: options.datagram_bytes,
                message_bytes_max: INBOUND_BYTES_MAX,
                heartbeat_interval_ns: options.heartbeat_ms.saturating_mul(1_000_000),
            };
            let publisher = Publisher::new(
                config,
                RingRetention::new(options.retain, INBOUND_BYTES_MAX),
            )
            .map_err(|e| anyhow::anyhow!("--datagram-bytes: {e}"))?;
            outlets.push(Outlet {
                publisher,
                destination: options.destinations[stream.index()],
            });
        }
        let Ok(outlets) = <[Outlet; 3]>::try_from(outlets) else {
            bail!("three streams expected");
        };
        Ok(Feed {
            out: Sender {
                socket,
                lossy: Lossy {
                    every: options.drop_every,
                    ..Lossy::default()
                },
                errors: 0,
            },
            outlets,
            started: Instant::now(),
            buffer: vec![0; 2048],
            rerequests: 0,
            bad_rerequests: 0,
            current: None,
            message: [0; INBOUND_BYTES_MAX],
            counts: [0; 3],
        })
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.out.socket.local_addr()
    }

    /// Datagrams that could not be sent (other than a full buffer).
    pub(crate) fn send_errors(&self) -> u64 {
        self.out.errors
    }

    /// Queues `event` on its stream. A datagram is sent before a message
    /// of another stream is queued (the streams interleave as the events
    /// do); `flush`: send this one's datagram now too.
    pub(crate) fn send_event(&mut self, event: &Event, flush: bool) -> anyhow::Result<()> {
        let stream = Stream::of_event(event);
        let len = encode_event(event, &mut self.message).map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(current) = self.current.filter(|&c| c != stream) {
            self.flush(current);
        }
        let message = self.message;
        self.push(stream, &message[..len])?;
        self.current = Some(stream);
        if flush {
            self.flush(stream);
        }
        self.counts[stream.index()] += 1;
        Ok(())
    }

    /// Sends every open datagram and a heartbeat per stream.
    pub(crate) fn flush_all(&mut self) {
        for stream in Stream::ALL {
            self.flush(stream);
            self.heartbeat(stream);
        }
    }

    /// Ends the three sessions.
    pub(crate) fn end_sessions(&mut self) {
        let now = self.now_ns();
        let out = &mut self.out;
        for outlet in &mut self.outlets {
            let to = outlet.destination;
            outlet.publisher.end_session(now, &mut |d| out.exact(d, to));
        }
    }

    /// Sends the streams elsewhere from now on (per stream).
    pub(crate) fn set_destinations(&mut self, destinations: [SocketAddr; 3]) {
        for (outlet, to) in self.outlets.iter_mut().zip(destinations) {
            outlet.destination = to;
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn push(&mut self, stream: Stream, message: &[u8]) -> anyhow::Result<()> {
        let now = self.now_ns();
        let out = &mut self.out;
        let outlet = &mut self.outlets[stream.index()];
        let to = outlet.destination;
        outlet
            .publisher
            .push(message, now, &mut |d| out.stream(d, to))?;
        Ok(())
    }

    fn flush(&mut self, stream: Stream) {
        let now = self.now_ns();
        let out = &mut self.out;
        let outlet = &mut self.outlets[stream.index()];
        let to = outlet.destination;
        outlet.publisher.flush(now, &mut |d| out.stream(d, to));
    }

    fn heartbeat(&mut self, stream: Stream) {
        let outlet = &self.outlets[stream.index()];
        let datagram = encode_heartbeat(outlet.publisher.session(), outlet.publisher.next_seq());
        self.out.exact(&datagram, outlet.destination);
    }

    /// Heartbeats and flushes as the publishers' intervals say.
    pub(crate) fn tick(&mut self) {
        let now = self.now_ns();
        let out = &mut self.out;
        for outlet in &mut self.outlets {
            let to = outlet.destination;
            outlet.publisher.tick(now, &mut |d| out.stream(d, to));
        }
    }

    /// Answers every re-request waiting on the socket.
    pub(crate) fn serve(&mut self) {
        loop {
            let (len, from) = match self.out.socket.recv_from(&mut self.buffer) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock, or an ICMP error reported on the socket.
                Err(_) => return,
            };
            let Ok(request) = ReRequest::decode(&self.buffer[..len]) else {
                self.bad_rerequests += 1;
                continue;
            };
            let out = &mut self.out;
            if let Some(outlet) = self
                .outlets
                .iter_mut()
                .find(|o| o.publisher.session() == request.session)
            {
                self.rerequests += 1;
                outlet
                    .publisher
                    .answer(&request, &mut |d| out.exact(d, from));
            } else {
                self.bad_rerequests += 1;
            }
        }
    }

    /// Serves re-requests and heartbeats until `until`.
    pub(crate) fn wait_until(&mut self, until: Instant) {
        loop {
            self.serve();
            self.tick();
            let now = Instant::now();
            if now >= until {
                return;
            }
            // Short naps: a re-request is answered within ~0.1 ms (market
            // data skips a gap after 0.5 ms by default).
            let left = until - now;
            if left > Duration::from_micros(150) {
                std::thread::sleep(Duration::from_micros(50));
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

pub(crate) fn session_names(prefix: Option<&str>) -> anyhow::Result<[Session; 3]> {
    let prefix = match prefix {
        Some(p) => p.to_owned(),
        None => format!(
            "{:09}",
            feed_gateway::net::system_now_ns() / 1_000 % 1_000_000_000
        ),
    };
    if prefix.len() > 9 {
        bail!("--session: at most 9 characters (the stream letter is appended)");
    }
    let make = |letter: char| {
        Session::new(&format!("{prefix}{letter}")).map_err(|e| anyhow::anyhow!("--session: {e}"))
    };
    Ok([make('M')?, make('O')?, make('A')?])
}

/// `liqd feed`.
pub fn feed(args: &FeedArgs) -> anyhow::Result<()> {
    if let Some(rate) = args.rate {
        if !(rate > 0.0 && rate.is_finite()) {
            bail!("--rate: a positive number of events per second");
        }
    }
    let sessions = session_names(args.session.as_deref())?;
    let mut feed = Feed::open(&FeedOptions {
        bind: args
            .retrans_bind
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
        sessions,
        destinations: [args.md, args.orders, args.admin],
        datagram_bytes: args.datagram_bytes,
        retain: args.retain,
        heartbeat_ms: args.heartbeat_ms,
        drop_every: args.drop_every,
    })?;
    eprintln!(
        "feed: sending from {} (sessions {} {} {})",
        feed.local_addr()?,
        sessions[0],
        sessions[1],
        sessions[2]
    );

    let (input, name) = open_input(&args.input)?;
    let mut reader = EventReader::new(input, name);
    let mut index: u64 = 0;
    while let Some(event) = reader.read_event()? {
        if let Some(rate) = args.rate {
            let due = feed.started + Duration::from_secs_f64(index as f64 / rate);
            feed.wait_until(due);
        }
        feed.send_event(&event, args.rate.is_some())
            .map_err(|e| anyhow::anyhow!("{}:{}: {e}", reader.file(), reader.line()))?;
        index += 1;
        if index & 63 == 0 {
            feed.serve();
        }
    }
    feed.flush_all();
    feed.wait_until(Instant::now() + Duration::from_millis(args.linger_ms));
    if !args.keep_session {
        feed.end_sessions();
    }
    let counts = feed.counts;
    eprintln!(
        "feed: {} events (md {}, orders {}, admin {}); re-requests answered {}, bad {}; send errors {}; dropped on purpose {}",
        index,
        counts[0],
        counts[1],
        counts[2],
        feed.rerequests,
        feed.bad_rerequests,
        feed.send_errors(),
        feed.out.lossy.dropped
    );
    Ok(())
}
