//! `feed-gateway`: the only liqd code that touches sockets, and the pure
//! state machines around PROTOCOL.md's wire format.
//!
//! # Layers
//!
//! - [`wire`]: MoldUDP64 framing and the messages, borrowing and
//!   allocation-free.
//!   - [`wire::parse_packet`]`(&[u8]) -> Result<Packet, PacketError>`: one
//!     datagram, validated whole (every malformed-packet class of §1 is a
//!     [`wire::PacketError`] variant). `packet.kind()` tells messages /
//!     heartbeat / end of session; `packet.messages()` iterates the blocks.
//!   - [`wire::decode_event`]`(&[u8]) -> Result<engine::Event, MessageError>`
//!     and [`wire::encode_event`]`(&Event, &mut [u8]) -> Result<usize, _>`
//!     for `M X F B N A I G P`; every malformed-message class is a
//!     [`wire::MessageError`] variant (`index()`/`name()` for counters).
//!   - Outbound: [`wire::encode_liquidation_part`] (a liquidation takes
//!     [`wire::liquidation_message_count`]`(legs)` `L` messages, 64 legs
//!     each, bit 3 "continued" on all but the last), [`wire::encode_halt`],
//!     [`wire::encode_status`] and [`wire::decode_outbound`]. Engine `Dec8`
//!     values that do not fit `Fixed8` are **saturated** to ±(2⁶³−1)·10⁻⁸
//!     and counted ([`wire::fixed8_saturating`]); never a panic, never a
//!     dropped decision.
//!   - [`wire::ReRequest`] `encode()`/`decode()` (20 bytes);
//!     [`wire::encode_heartbeat`], [`wire::encode_end_of_session`];
//!     [`wire::PacketBuilder`] packs messages into datagrams ≤ the maximum.
//!   - [`wire::Stream`]: `MarketData | Orders | Admin`, `index()`,
//!     `source()` (journal `SourceStream`), `of_event(&Event)`.
//! - [`sequencer::Sequencer`]: one stream's receiver rules on raw messages
//!   (sessions, order, duplicates, gaps, hold buffer, re-requests, skip).
//! - [`receiver::Receiver`]: the three inbound streams, decoding on top.
//!   Pure: no sockets; time is passed in as nanoseconds.
//!
//! # Receiving (the daemon's side)
//!
//! ```
//! use feed_gateway::{EventHandler, Notice, Receiver, ReceiverConfig, Stream};
//! use engine::Event;
//!
//! struct Journaler;
//! impl EventHandler for Journaler {
//!     fn on_event(&mut self, stream: Stream, stream_seq: u64, event: &Event) {
//!         // assign the journal seq, append (src_stream = stream.source(),
//!         // src_seq = stream_seq), push to the engine ring
//!     }
//!     fn on_notice(&mut self, stream: Stream, notice: &Notice) {
//!         // log / count: malformed packet or message, gap, new session…
//!     }
//! }
//!
//! let mut receiver = Receiver::new(&ReceiverConfig::default());
//! // Resume each stream one past its last journaled src_seq:
//! receiver.set_next_expected(Stream::Orders, 1);
//! receiver.stream_mut(Stream::Orders).set_rerequest(true);
//! # let datagram = [0u8; 3]; let now_ns = 0;
//! receiver.on_datagram(Stream::Orders, &datagram, now_ns, &mut Journaler);
//! receiver.poll(now_ns, &mut Journaler); // md skip-ahead, re-request retries
//! if let Some(request) = receiver.take_rerequest(Stream::Orders) {
//!     let _bytes: [u8; 20] = request.encode(); // send to the retrans address
//! }
//! ```
//!
//! Rules (PROTOCOL.md §1): messages are delivered once, strictly in
//! sequence; a packet overlapping what was delivered has its old messages
//! skipped (counted as duplicates); a gap is counted, re-requested (when
//! enabled; at most once per `rerequest_interval_ns` without progress,
//! immediately on progress), and on orders/admin later packets wait in a
//! bounded hold buffer (full: the farthest-ahead packet is dropped, counted,
//! re-requested later) with the stream's alarm raised; market data skips
//! after `md_gap_wait_ns`. A malformed message consumes its sequence, is
//! counted by reason, raises the alarm and is reported as
//! [`Notice::MalformedMessage`]; it never reaches `on_event`. A new session
//! name restarts the stream at 1 ([`Notice::NewSession`]); a packet of one of
//! the last 8 sessions left is dropped ([`Notice::OldSession`]) rather than
//! restarting the stream. A message type that belongs to another stream
//! (a fill on market data) is malformed (`TypeNotOnStream`): the market-data
//! stream may skip, so a fill must never travel there.
//!
//! # Publishing (the outbound stream)
//!
//! [`Publisher`] is the pure sending side of a session: `push_halt`,
//! `push_liquidation` (→ `(first_seq, message_count)`), `push_status`,
//! `push(&raw_message)`; `flush(now, send)` sends the current datagram;
//! `tick(now, send)` flushes or heartbeats when idle
//! (`heartbeat_interval_ns`); `end_session`; `answer(&ReRequest, send)`
//! re-sends from a [`Retention`] store (`retain(seq, bytes)` /
//! `fetch(seq, out)`). [`RingRetention`] keeps the last N messages in memory;
//! a journal-backed store must map outbound message sequences to output
//! records (a liquidation with > 64 legs takes several sequences: keep
//! `(first_msg_seq, record_seq)` per record, or encode every record's
//! messages again with [`wire::encode_liquidation_part`] — deterministic,
//! so the re-sent bytes are identical).
//!
//! # The socket loop (the daemon's gateway thread)
//!
//! ```no_run
//! use std::time::Duration;
//! use feed_gateway::wire::{Origin, Session, Stream};
//! use feed_gateway::{Gateway, GatewayConfig, GatewayHandler, InboundConfig, OutboundConfig,
//!                    PublisherConfig, ReceiverConfig, RingRetention};
//! # struct H; impl GatewayHandler for H { fn on_event(&mut self, _: Stream, _: u64,
//! #     _: engine::UnixNanos, _: &engine::Event) {} }
//! # fn main() -> std::io::Result<()> {
//! let mut orders = InboundConfig::unicast("0.0.0.0:7002".parse().unwrap());
//! orders.retrans = Some("10.0.0.5:7102".parse().unwrap());
//! let config = GatewayConfig {
//!     inbound: [Some(InboundConfig::unicast("0.0.0.0:7001".parse().unwrap())),
//!               Some(orders), None],
//!     outbound: Some(OutboundConfig {
//!         bind: "0.0.0.0:7100".parse().unwrap(),
//!         destinations: vec!["10.0.0.9:7200".parse().unwrap()],
//!         publisher: PublisherConfig::outbound(Session::new("LIQD1").unwrap()),
//!     }),
//!     receiver: ReceiverConfig::default(),
//!     socket_recv_buffer_bytes: Some(8 << 20),
//!     socket_send_buffer_bytes: None,
//! };
//! let mut gateway = Gateway::new(config, RingRetention::new(65_536, 1332))?;
//! gateway.receiver_mut().set_next_expected(Stream::Orders, 1); // from the journal
//! let waker = gateway.waker(); // the engine thread calls waker.wake() after pushing outputs
//! let mut handler = H;
//! loop {
//!     // None: wait in epoll (woken by a packet, the waker or a deadline);
//!     // Some(Duration::ZERO): busy poll.
//!     gateway.poll(None, &mut handler)?;
//!     // drain the output ring: gateway.publish_halt(&halt, origin),
//!     // gateway.publish_liquidation(&liquidation, &legs, origin), then:
//!     gateway.flush();
//! #   break;
//! }
//! # Ok(()) }
//! ```
//!
//! `poll` receives what is readable on the three inbound sockets, merging
//! them in kernel arrival order (`SO_TIMESTAMPNS`: datagrams queued on
//! several sockets while the gateway was busy are not reordered by stream;
//! `recv_ts` is that kernel time), drops and counts sources outside a
//! stream's allowlist, hands events to
//! `handler.on_event(stream, stream_seq, recv_ts, &event)` and notices to
//! `handler.on_notice(stream, source, &notice)`, sends re-requests to each
//! stream's retransmission address, answers keepers' re-requests on the
//! outbound socket, handles market-data skips and re-request retries, and
//! heartbeats. Counters: [`Gateway::counters`], `gateway.receiver().stream(s)
//! .counters()` / `.malformed_messages()`, `gateway.publisher().counters()`.
//!
//! Steady state allocates nothing: hold buffers are preallocated, events are
//! decoded into a stack value, notices are plain values.

pub mod net;
pub mod publisher;
pub mod receiver;
pub mod sequencer;
pub mod wire;

pub use net::{
    Gateway, GatewayConfig, GatewayCounters, GatewayHandler, InboundConfig, Multicast,
    OutboundConfig,
};
pub use publisher::{
    NoRetention, PublishError, Publisher, PublisherConfig, PublisherCounters, Retention,
    RingRetention,
};
pub use receiver::{EventHandler, Receiver, ReceiverConfig, StreamReceiver};
pub use sequencer::{MessageHandler, Notice, Sequencer, SequencerConfig, SequencerCounters};
pub use wire::Stream;
