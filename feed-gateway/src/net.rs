//! The socket shell: a mio event loop over non-blocking UDP sockets around
//! the pure [`Receiver`] and [`Publisher`].
//!
//! - Three inbound sockets (market data, orders, admin), each bound to an
//!   address, optionally joined to an IPv4 multicast group; packets from a
//!   source outside the stream's allowlist are dropped and counted; gaps are
//!   re-requested from the stream's retransmission address (from the same
//!   socket, so answers come back to it).
//! - One outbound socket: datagrams go to every destination; re-requests
//!   received on it are answered to their sender from the [`Retention`].
//!
//! The daemon drives it: `gateway.poll(timeout, &mut handler)` receives and
//! hands each event to `handler.on_event(stream, stream_seq, recv_ts,
//! &event)`; `gateway.publish_*` sequence outbound messages, `flush` sends
//! them; `tick` sends heartbeats (poll calls it too). Receive buffers are
//! allocated once: nothing is allocated per packet.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use engine::{Event, Halt, Leg, Liquidation, UnixNanos};
use journal::Status;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use socket2::{Domain, Protocol, Socket, Type};

use crate::publisher::{PublishError, Publisher, PublisherConfig, Retention};
use crate::receiver::{EventHandler, Receiver, ReceiverConfig};
use crate::sequencer::Notice;
use crate::wire::{Origin, ReRequest, Stream, DATAGRAM_BYTES_MAX};

/// An IPv4 multicast group to join.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Multicast {
    pub group: Ipv4Addr,
    /// The local interface's address (`0.0.0.0`: the default one).
    pub interface: Ipv4Addr,
}

/// One inbound stream's socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundConfig {
    /// Local address (for multicast: the group's port, any address).
    pub bind: SocketAddr,
    pub multicast: Option<Multicast>,
    /// Source IPs accepted; empty accepts any. The retransmission address's
    /// IP is always accepted.
    pub allow: Vec<IpAddr>,
    /// Where re-requests go; None: gaps are not re-requested.
    pub retrans: Option<SocketAddr>,
}

impl InboundConfig {
    /// Unicast on `bind`, any source, no retransmission.
    pub fn unicast(bind: SocketAddr) -> InboundConfig {
        InboundConfig {
            bind,
            multicast: None,
            allow: Vec::new(),
            retrans: None,
        }
    }

    fn allows(&self, source: IpAddr) -> bool {
        self.allow.is_empty()
            || self.allow.contains(&source)
            || self.retrans.is_some_and(|r| r.ip() == source)
    }
}

/// The outbound (liquidation) stream's socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundConfig {
    /// Local address; keepers send re-requests here.
    pub bind: SocketAddr,
    /// Every datagram goes to each of these (unicast or multicast).
    pub destinations: Vec<SocketAddr>,
    pub publisher: PublisherConfig,
}

/// The gateway's sockets and receiving rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Indexed by [`Stream::index`]; None: that stream is not received.
    pub inbound: [Option<InboundConfig>; 3],
    pub outbound: Option<OutboundConfig>,
    pub receiver: ReceiverConfig,
    /// SO_RCVBUF / SO_SNDBUF for every socket (None: the system default).
    pub socket_recv_buffer_bytes: Option<usize>,
    pub socket_send_buffer_bytes: Option<usize>,
}

/// What the daemon receives from [`Gateway::poll`].
pub trait GatewayHandler {
    /// Event `stream_seq` of `stream`, received at `recv_ts` (gateway
    /// clock), once and in stream order.
    fn on_event(&mut self, stream: Stream, stream_seq: u64, recv_ts: UnixNanos, event: &Event);
    /// Something to log: a malformed packet or message, a gap, a session
    /// change… with the datagram's source when there is one.
    fn on_notice(&mut self, stream: Stream, source: Option<SocketAddr>, notice: &Notice) {
        let _ = (stream, source, notice);
    }
}

/// Gateway counters (the streams' own are in [`Gateway::receiver`], the
/// outbound session's in [`Gateway::publisher`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatewayCounters {
    /// Datagrams from a source outside the allowlist, per stream.
    pub rejected_sources: [u64; 3],
    /// Re-requests sent, per stream.
    pub rerequests_sent: [u64; 3],
    /// Datagrams received on the outbound socket that are not re-requests.
    pub bad_rerequests: u64,
    /// Datagrams the socket refused to send (buffer full, unreachable…).
    pub send_errors: u64,
    pub recv_errors: u64,
}

const OUTBOUND_TOKEN: Token = Token(3);
const WAKER_TOKEN: Token = Token(4);

struct Outbound<R: Retention> {
    socket: UdpSocket,
    destinations: Vec<SocketAddr>,
    publisher: Publisher<R>,
}

/// The mio event loop. See the module docs.
pub struct Gateway<R: Retention> {
    poll: Poll,
    events: Events,
    inbound: [Option<(UdpSocket, InboundConfig)>; 3],
    outbound: Option<Outbound<R>>,
    receiver: Receiver,
    buffer: Vec<u8>,
    counters: GatewayCounters,
    clock: fn() -> u64,
    waker: Arc<Waker>,
}

/// Nanoseconds since the Unix epoch on the system clock.
pub fn system_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A non-blocking UDP socket bound to `bind` (address reuse on, so several
/// receivers can share a multicast port), joined to `multicast`.
///
/// # Errors
/// The socket cannot be created, configured, bound or joined.
pub fn udp_socket(
    bind: SocketAddr,
    multicast: Option<Multicast>,
    recv_buffer_bytes: Option<usize>,
    send_buffer_bytes: Option<usize>,
) -> io::Result<StdUdpSocket> {
    let socket = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))?;
    if multicast.is_some() {
        socket.set_reuse_address(true)?;
    }
    if let Some(bytes) = recv_buffer_bytes {
        socket.set_recv_buffer_size(bytes)?;
    }
    if let Some(bytes) = send_buffer_bytes {
        socket.set_send_buffer_size(bytes)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&bind.into())?;
    if let Some(m) = multicast {
        socket.join_multicast_v4(&m.group, &m.interface)?;
    }
    Ok(socket.into())
}

impl<R: Retention> Gateway<R> {
    /// Opens and registers the sockets; allocates every buffer.
    ///
    /// # Errors
    /// A socket cannot be set up, or the publisher configuration is invalid
    /// (`InvalidInput`).
    pub fn new(config: GatewayConfig, retention: R) -> io::Result<Gateway<R>> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER_TOKEN)?);
        let mut receiver = Receiver::new(&config.receiver);
        let mut inbound: [Option<(UdpSocket, InboundConfig)>; 3] = [None, None, None];
        for stream in Stream::ALL {
            let Some(c) = &config.inbound[stream.index()] else {
                continue;
            };
            let std = udp_socket(
                c.bind,
                c.multicast,
                config.socket_recv_buffer_bytes,
                config.socket_send_buffer_bytes,
            )?;
            let mut socket = UdpSocket::from_std(std);
            poll.registry()
                .register(&mut socket, Token(stream.index()), Interest::READABLE)?;
            receiver
                .stream_mut(stream)
                .set_rerequest(c.retrans.is_some());
            inbound[stream.index()] = Some((socket, c.clone()));
        }
        let outbound = match config.outbound {
            Some(c) => {
                let publisher = Publisher::new(c.publisher, retention)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                let std = udp_socket(
                    c.bind,
                    None,
                    config.socket_recv_buffer_bytes,
                    config.socket_send_buffer_bytes,
                )?;
                let mut socket = UdpSocket::from_std(std);
                poll.registry()
                    .register(&mut socket, OUTBOUND_TOKEN, Interest::READABLE)?;
                Some(Outbound {
                    socket,
                    destinations: c.destinations,
                    publisher,
                })
            }
            None => None,
        };
        Ok(Gateway {
            poll,
            events: Events::with_capacity(64),
            inbound,
            outbound,
            receiver,
            buffer: vec![0; DATAGRAM_BYTES_MAX + 1],
            counters: GatewayCounters::default(),
            clock: system_now_ns,
            waker,
        })
    }

    /// Wakes a [`poll`](Self::poll) blocked in epoll from another thread
    /// (the engine thread after pushing outputs: `waker.wake()`).
    pub fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    /// Replaces the clock (tests; a TSC clock).
    pub fn set_clock(&mut self, clock: fn() -> u64) {
        self.clock = clock;
    }

    /// The receiver: counters, alarms; `receiver_mut().set_next_expected`
    /// to resume each stream from the journal before polling.
    pub fn receiver(&self) -> &Receiver {
        &self.receiver
    }

    pub fn receiver_mut(&mut self) -> &mut Receiver {
        &mut self.receiver
    }

    /// The outbound session (counters, `resume(next_seq)`, the retention).
    pub fn publisher(&self) -> Option<&Publisher<R>> {
        self.outbound.as_ref().map(|o| &o.publisher)
    }

    pub fn publisher_mut(&mut self) -> Option<&mut Publisher<R>> {
        self.outbound.as_mut().map(|o| &mut o.publisher)
    }

    pub fn counters(&self) -> &GatewayCounters {
        &self.counters
    }

    /// The bound address of a stream's socket (an ephemeral port resolved).
    pub fn local_addr(&self, stream: Stream) -> Option<SocketAddr> {
        self.inbound[stream.index()]
            .as_ref()
            .and_then(|(socket, _)| socket.local_addr().ok())
    }

    /// The outbound socket's address (where keepers send re-requests).
    pub fn outbound_local_addr(&self) -> Option<SocketAddr> {
        self.outbound
            .as_ref()
            .and_then(|o| o.socket.local_addr().ok())
    }

    /// Waits up to `timeout` (None: until something happens; `Some(0)`:
    /// busy poll) — but never past the next receiver or publisher deadline —
    /// then receives everything readable, handles time (market-data skips,
    /// re-request retries, heartbeats) and sends re-requests. Returns the
    /// number of datagrams received.
    ///
    /// # Errors
    /// The poll itself failed (a socket's receive errors are counted).
    pub fn poll(
        &mut self,
        timeout: Option<Duration>,
        handler: &mut impl GatewayHandler,
    ) -> io::Result<usize> {
        let now = (self.clock)();
        let deadline = [
            self.receiver.next_deadline_ns(),
            self.outbound
                .as_ref()
                .and_then(|o| o.publisher.next_deadline_ns()),
        ]
        .into_iter()
        .flatten()
        .min();
        let timeout = match deadline {
            Some(at) => {
                let until = Duration::from_nanos(at.saturating_sub(now));
                Some(timeout.map_or(until, |t| t.min(until)))
            }
            None => timeout,
        };
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let mut received = 0;
        let mut readable = [false; 5];
        for event in self.events.iter() {
            if let Some(flag) = readable.get_mut(event.token().0) {
                *flag = true;
            }
        }
        for stream in Stream::ALL {
            if readable[stream.index()] {
                received += self.drain_stream(stream, handler);
            }
        }
        if readable[OUTBOUND_TOKEN.0] {
            received += self.drain_outbound();
        }
        let now = (self.clock)();
        let mut adapter = Adapter {
            handler,
            recv_ts: UnixNanos(now),
            source: None,
        };
        self.receiver.poll(now, &mut adapter);
        for stream in Stream::ALL {
            self.send_rerequest(stream);
        }
        self.tick();
        Ok(received)
    }

    fn drain_stream(&mut self, stream: Stream, handler: &mut impl GatewayHandler) -> usize {
        let mut received = 0;
        loop {
            let Some((socket, config)) = &self.inbound[stream.index()] else {
                return received;
            };
            let (len, source) = match socket.recv_from(&mut self.buffer) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return received,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.counters.recv_errors += 1;
                    return received;
                }
            };
            received += 1;
            if !config.allows(source.ip()) {
                self.counters.rejected_sources[stream.index()] += 1;
                continue;
            }
            let now = (self.clock)();
            let mut adapter = Adapter {
                handler: &mut *handler,
                recv_ts: UnixNanos(now),
                source: Some(source),
            };
            self.receiver
                .on_datagram(stream, &self.buffer[..len], now, &mut adapter);
            self.send_rerequest(stream);
        }
    }

    fn send_rerequest(&mut self, stream: Stream) {
        let Some(request) = self.receiver.take_rerequest(stream) else {
            return;
        };
        let Some((socket, config)) = &self.inbound[stream.index()] else {
            return;
        };
        let Some(retrans) = config.retrans else {
            return;
        };
        match socket.send_to(&request.encode(), retrans) {
            Ok(_) => self.counters.rerequests_sent[stream.index()] += 1,
            Err(_) => self.counters.send_errors += 1,
        }
    }

    fn drain_outbound(&mut self) -> usize {
        let Some(out) = &mut self.outbound else {
            return 0;
        };
        let mut received = 0;
        loop {
            let (len, source) = match out.socket.recv_from(&mut self.buffer) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return received,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.counters.recv_errors += 1;
                    return received;
                }
            };
            received += 1;
            let Ok(request) = ReRequest::decode(&self.buffer[..len]) else {
                self.counters.bad_rerequests += 1;
                continue;
            };
            let socket = &out.socket;
            let send_errors = &mut self.counters.send_errors;
            out.publisher.answer(&request, &mut |datagram| {
                if socket.send_to(datagram, source).is_err() {
                    *send_errors += 1;
                }
            });
        }
    }

    /// Sequences a halt for the outbound stream (sent at the next
    /// [`flush`](Self::flush) or when the datagram fills).
    ///
    /// # Errors
    /// No outbound stream configured ([`PublishError::Ended`]), or the
    /// session ended.
    pub fn publish_halt(&mut self, halt: &Halt, origin: Origin) -> Result<u64, PublishError> {
        let now = (self.clock)();
        self.with_publisher(|publisher, send| {
            publisher.push_halt(halt, origin, now, &mut |d: &[u8]| send(d))
        })
    }

    /// Sequences a liquidation (one `L` per 64 legs). Returns the first
    /// sequence and the number of messages.
    ///
    /// # Errors
    /// As [`publish_halt`](Self::publish_halt).
    pub fn publish_liquidation(
        &mut self,
        liquidation: &Liquidation,
        legs: &[Leg],
        origin: Origin,
    ) -> Result<(u64, usize), PublishError> {
        let now = (self.clock)();
        self.with_publisher(|publisher, send| {
            publisher.push_liquidation(liquidation, legs, origin, now, &mut |d: &[u8]| send(d))
        })
    }

    /// Sequences a status message.
    ///
    /// # Errors
    /// As [`publish_halt`](Self::publish_halt).
    pub fn publish_status(&mut self, status: &Status) -> Result<u64, PublishError> {
        let now = (self.clock)();
        self.with_publisher(|publisher, send| {
            publisher.push_status(status, now, &mut |d: &[u8]| send(d))
        })
    }

    /// Sends the pending outbound datagram.
    pub fn flush(&mut self) {
        let now = (self.clock)();
        let _ = self.with_publisher(|publisher, send| {
            publisher.flush(now, &mut |d: &[u8]| send(d));
            Ok(())
        });
    }

    /// Flushes, or sends a heartbeat when the outbound stream was idle for
    /// the heartbeat interval.
    pub fn tick(&mut self) {
        let now = (self.clock)();
        let _ = self.with_publisher(|publisher, send| {
            publisher.tick(now, &mut |d: &[u8]| send(d));
            Ok(())
        });
    }

    /// Flushes and ends the outbound session.
    pub fn end_session(&mut self) {
        let now = (self.clock)();
        let _ = self.with_publisher(|publisher, send| {
            publisher.end_session(now, &mut |d: &[u8]| send(d));
            Ok(())
        });
    }

    fn with_publisher<T>(
        &mut self,
        f: impl FnOnce(&mut Publisher<R>, &mut dyn FnMut(&[u8])) -> Result<T, PublishError>,
    ) -> Result<T, PublishError> {
        let Some(out) = &mut self.outbound else {
            return Err(PublishError::Ended);
        };
        let Outbound {
            socket,
            destinations,
            publisher,
        } = out;
        let send_errors = &mut self.counters.send_errors;
        let mut send = |datagram: &[u8]| {
            for destination in destinations.iter() {
                if socket.send_to(datagram, *destination).is_err() {
                    *send_errors += 1;
                }
            }
        };
        f(publisher, &mut send)
    }
}

/// Adds the receive time and source to the receiver's callbacks.
struct Adapter<'a, H: GatewayHandler> {
    handler: &'a mut H,
    recv_ts: UnixNanos,
    source: Option<SocketAddr>,
}

impl<H: GatewayHandler> EventHandler for Adapter<'_, H> {
    fn on_event(&mut self, stream: Stream, stream_seq: u64, event: &Event) {
        self.handler
            .on_event(stream, stream_seq, self.recv_ts, event);
    }

    fn on_notice(&mut self, stream: Stream, notice: &Notice) {
        self.handler.on_notice(stream, self.source, notice);
    }
}
