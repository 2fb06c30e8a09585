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
    /// Event `stream_seq` of `stream`, once and in stream order. `recv_ts`
    /// is the kernel's receive time of its datagram (Linux SO_TIMESTAMPNS,
    /// CLOCK_REALTIME), else the gateway clock when it was read.
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
/// Datagrams read from one socket before the next socket's turn: streams
/// arriving together are interleaved in small batches, not one drained
/// after the other.
const BATCH_DATAGRAMS: usize = 8;
/// Datagrams read by one `poll` at most (then it returns so the caller can
/// publish; sockets not drained yet are read at the next call, which then
/// does not wait).
const POLL_DATAGRAMS_MAX: usize = 256;

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
    /// Sockets (inbound 0..3, outbound 3) that may still hold datagrams.
    pending: [bool; 4],
    /// One datagram read ahead per inbound stream, so streams are merged
    /// in arrival order (see [`Gateway::poll`]).
    staged: [Staged; 3],
    stage_buffers: [Vec<u8>; 3],
    control: ControlBuffer,
}

/// A datagram read from a stream's socket, not yet handled.
#[derive(Clone, Copy, Debug)]
struct Staged {
    full: bool,
    len: usize,
    source: SocketAddr,
    /// Kernel receive time (SO_TIMESTAMPNS) or, without it, the clock at
    /// the read.
    recv_ts_ns: u64,
}

impl Staged {
    const EMPTY: Staged = Staged {
        full: false,
        len: 0,
        source: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        recv_ts_ns: 0,
    };
}

/// Room for the receive-timestamp control message (8-byte aligned).
type ControlBuffer = [u64; 16];

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
            // Without kernel timestamps the clock at the read stands in.
            let _ = kernel_time::enable(&std);
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
            pending: [false; 4],
            staged: [Staged::EMPTY; 3],
            stage_buffers: [
                vec![0; DATAGRAM_BYTES_MAX + 1],
                vec![0; DATAGRAM_BYTES_MAX + 1],
                vec![0; DATAGRAM_BYTES_MAX + 1],
            ],
            control: [0; 16],
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
    /// then receives what is readable — datagrams queued on several inbound
    /// sockets are handled in kernel arrival order (one staged per socket,
    /// the earliest first), at most 256 per call (the next call goes on
    /// without waiting) — handles time (market-data skips,
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
        // Sockets left undrained (or datagrams staged) by the last call: do
        // not wait.
        let busy = self.pending.contains(&true) || self.staged.iter().any(|s| s.full);
        let timeout = if busy { Some(Duration::ZERO) } else { timeout };
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        for event in self.events.iter() {
            if let Some(flag) = self.pending.get_mut(event.token().0) {
                *flag = true;
            }
        }
        let mut received = self.receive_inbound(handler, POLL_DATAGRAMS_MAX);
        while received < POLL_DATAGRAMS_MAX && self.pending[OUTBOUND_TOKEN.0] {
            let (count, drained) = self.drain_outbound(BATCH_DATAGRAMS);
            received += count;
            self.pending[OUTBOUND_TOKEN.0] = !drained;
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

    /// Handles up to `max` inbound datagrams in arrival order across the
    /// streams: each readable socket has its next datagram staged, the
    /// earliest staged one (kernel receive time) is handled, its socket
    /// refilled. Returns the number handled.
    fn receive_inbound(&mut self, handler: &mut impl GatewayHandler, max: usize) -> usize {
        let mut handled = 0;
        while handled < max {
            for stream in Stream::ALL {
                let i = stream.index();
                if self.pending[i] && !self.staged[i].full {
                    self.pending[i] = self.stage(stream);
                }
            }
            // Readiness is fresh right after the wait; later, a datagram may
            // have reached a socket not flagged readable: look before
            // handling a later one (costs a read only in bursts).
            if handled > 0 && self.staged.iter().any(|s| s.full) {
                for stream in Stream::ALL {
                    let i = stream.index();
                    if !self.pending[i] && !self.staged[i].full && self.inbound[i].is_some() {
                        self.pending[i] = self.stage(stream);
                    }
                }
            }
            let next = Stream::ALL
                .into_iter()
                .filter(|s| self.staged[s.index()].full)
                .min_by_key(|s| (self.staged[s.index()].recv_ts_ns, s.index()));
            let Some(stream) = next else {
                break;
            };
            self.handle_staged(stream, handler);
            handled += 1;
        }
        handled
    }

    /// Reads the stream's next datagram into its stage; `false` when the
    /// socket is drained (WouldBlock, or an error: counted; the next
    /// datagram wakes it again).
    fn stage(&mut self, stream: Stream) -> bool {
        let i = stream.index();
        let Some((socket, _)) = &self.inbound[i] else {
            return false;
        };
        loop {
            match kernel_time::recv(socket, &mut self.stage_buffers[i], &mut self.control) {
                Ok((len, source, kernel_ts)) => {
                    self.staged[i] = Staged {
                        full: true,
                        len,
                        source,
                        recv_ts_ns: kernel_ts.unwrap_or_else(self.clock),
                    };
                    return true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => {
                    self.counters.recv_errors += 1;
                    return false;
                }
            }
        }
    }

    fn handle_staged(&mut self, stream: Stream, handler: &mut impl GatewayHandler) {
        let i = stream.index();
        let staged = self.staged[i];
        self.staged[i].full = false;
        let Some((_, config)) = &self.inbound[i] else {
            return;
        };
        if !config.allows(staged.source.ip()) {
            self.counters.rejected_sources[i] += 1;
            return;
        }
        let now = (self.clock)();
        let mut adapter = Adapter {
            handler,
            recv_ts: UnixNanos(staged.recv_ts_ns),
            source: Some(staged.source),
        };
        self.receiver.on_datagram(
            stream,
            &self.stage_buffers[i][..staged.len],
            now,
            &mut adapter,
        );
        self.send_rerequest(stream);
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

    /// Like [`drain_stream`](Self::drain_stream), for re-requests.
    fn drain_outbound(&mut self, max: usize) -> (usize, bool) {
        let Some(out) = &mut self.outbound else {
            return (0, true);
        };
        let mut received = 0;
        while received < max {
            let (len, source) = match out.socket.recv_from(&mut self.buffer) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (received, true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.counters.recv_errors += 1;
                    return (received, true);
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
        (received, false)
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

/// Kernel receive timestamps (Linux SO_TIMESTAMPNS): the order datagrams
/// reached the host, whatever order the gateway gets to its sockets in.
#[cfg(target_os = "linux")]
mod kernel_time {
    use std::io;
    use std::mem::{size_of, size_of_val, zeroed};
    use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
    use std::os::fd::AsRawFd;

    use mio::net::UdpSocket;

    use super::ControlBuffer;

    /// Asks the kernel to timestamp every datagram on `socket`.
    pub(super) fn enable(socket: &StdUdpSocket) -> io::Result<()> {
        let on: libc::c_int = 1;
        // SAFETY: a valid fd, a pointer to a c_int and its size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// `recvmsg`: length, source and the kernel receive time if present.
    pub(super) fn recv(
        socket: &UdpSocket,
        buffer: &mut [u8],
        control: &mut ControlBuffer,
    ) -> io::Result<(usize, SocketAddr, Option<u64>)> {
        // SAFETY: all-zero is a valid sockaddr_storage and msghdr.
        let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
        let mut iov = libc::iovec {
            iov_base: buffer.as_mut_ptr().cast(),
            iov_len: buffer.len(),
        };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_name = (&mut storage as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(control) as _;
        // SAFETY: msg points at live buffers of the sizes it states.
        let read = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, 0) };
        if read < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut kernel_ts = None;
        // SAFETY: the CMSG_* walk stays within msg_control/msg_controllen,
        // which recvmsg filled; the timespec is read unaligned.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET
                    && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
                {
                    let spec: libc::timespec =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    kernel_ts = Some(
                        (spec.tv_sec as u64)
                            .saturating_mul(1_000_000_000)
                            .saturating_add(spec.tv_nsec as u64),
                    );
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        // SAFETY: recvmsg wrote an address of msg_namelen bytes into storage.
        let source = unsafe { socket2::SockAddr::new(storage, msg.msg_namelen) }
            .as_socket()
            .ok_or_else(|| io::Error::other("datagram from a non-IP address"))?;
        // recvmsg returned a non-negative byte count.
        Ok((read as usize, source, kernel_ts))
    }
}

/// Elsewhere: plain reads; the gateway clock orders the streams.
#[cfg(not(target_os = "linux"))]
mod kernel_time {
    use std::io;
    use std::net::{SocketAddr, UdpSocket as StdUdpSocket};

    use mio::net::UdpSocket;

    use super::ControlBuffer;

    pub(super) fn enable(_socket: &StdUdpSocket) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    pub(super) fn recv(
        socket: &UdpSocket,
        buffer: &mut [u8],
        _control: &mut ControlBuffer,
    ) -> io::Result<(usize, SocketAddr, Option<u64>)> {
        let (len, source) = socket.recv_from(buffer)?;
        Ok((len, source, None))
    }
}
