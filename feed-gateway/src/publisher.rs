//! The sending side of a MoldUDP64 session: sequence numbers, packing
//! messages into datagrams, heartbeats when idle, end of session, and
//! answers to re-requests from a [`Retention`] store. A pure state machine:
//! datagrams go out through a caller's `send` closure, time is passed in.
//!
//! liqd's outbound stream uses it with `L`/`H`/`S` ([`Publisher::push_halt`],
//! [`Publisher::push_liquidation`], [`Publisher::push_status`]); `liqd feed`
//! uses it with inbound messages ([`Publisher::push`]).

use engine::{Halt, Leg, Liquidation};
use journal::Status;

use crate::wire::{
    encode_end_of_session, encode_halt, encode_heartbeat, encode_liquidation_part, encode_status,
    liquidation_message_count, Origin, PacketBuilder, ReRequest, Session, BLOCK_PREFIX_BYTES,
    DATAGRAM_BYTES_DEFAULT, HEADER_BYTES, OUTBOUND_BYTES_MAX,
};

/// Where re-requests are answered from.
///
/// The daemon backs it with the output journal (`retain` may then do
/// nothing: the daemon journals outputs itself, before publishing); the
/// in-memory [`RingRetention`] keeps the last N messages.
pub trait Retention {
    /// Called for every message the publisher sequences, in order.
    fn retain(&mut self, seq: u64, message: &[u8]);
    /// Copies message `seq` into `out` and returns its length; `None` if it
    /// is no longer (or not) retained, or does not fit `out`.
    fn fetch(&mut self, seq: u64, out: &mut [u8]) -> Option<usize>;
}

/// Retains nothing: re-requests are never answered.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoRetention;

impl Retention for NoRetention {
    fn retain(&mut self, _seq: u64, _message: &[u8]) {}
    fn fetch(&mut self, _seq: u64, _out: &mut [u8]) -> Option<usize> {
        None
    }
}

/// The last `messages_max` messages in fixed slots (allocated once).
#[derive(Clone, Debug)]
pub struct RingRetention {
    slot_bytes: usize,
    bytes: Vec<u8>,
    lens: Vec<usize>,
    /// The sequence held by each slot; 0 = none.
    seqs: Vec<u64>,
}

impl RingRetention {
    /// `messages_max` slots of `message_bytes_max` bytes (a longer message
    /// is not retained).
    pub fn new(messages_max: usize, message_bytes_max: usize) -> RingRetention {
        let messages_max = messages_max.max(1);
        RingRetention {
            slot_bytes: message_bytes_max,
            bytes: vec![0; messages_max * message_bytes_max],
            lens: vec![0; messages_max],
            seqs: vec![0; messages_max],
        }
    }

    fn slot(&self, seq: u64) -> usize {
        // The modulo is below seqs.len(), a usize.
        (seq % self.seqs.len() as u64) as usize
    }
}

impl Retention for RingRetention {
    fn retain(&mut self, seq: u64, message: &[u8]) {
        let slot = self.slot(seq);
        if message.len() > self.slot_bytes {
            self.seqs[slot] = 0;
            return;
        }
        let at = slot * self.slot_bytes;
        self.bytes[at..at + message.len()].copy_from_slice(message);
        self.lens[slot] = message.len();
        self.seqs[slot] = seq;
    }

    fn fetch(&mut self, seq: u64, out: &mut [u8]) -> Option<usize> {
        let slot = self.slot(seq);
        let len = self.lens[slot];
        if seq == 0 || self.seqs[slot] != seq || out.len() < len {
            return None;
        }
        let at = slot * self.slot_bytes;
        out[..len].copy_from_slice(&self.bytes[at..at + len]);
        Some(len)
    }
}

/// A publisher's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublisherConfig {
    pub session: Session,
    /// Largest datagram sent.
    pub datagram_bytes_max: usize,
    /// Largest message that will be pushed (the datagram must hold it).
    pub message_bytes_max: usize,
    /// A heartbeat after this long without sending (PROTOCOL.md: 1 s).
    pub heartbeat_interval_ns: u64,
}

impl PublisherConfig {
    /// liqd's outbound stream: 1472-byte datagrams, `L` up to 64 legs,
    /// heartbeat every second.
    pub fn outbound(session: Session) -> PublisherConfig {
        PublisherConfig {
            session,
            datagram_bytes_max: DATAGRAM_BYTES_DEFAULT,
            message_bytes_max: OUTBOUND_BYTES_MAX,
            heartbeat_interval_ns: 1_000_000_000,
        }
    }
}

/// Why a publisher refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("a datagram of {datagram} bytes cannot hold a message of {message} bytes")]
    DatagramTooSmall { datagram: usize, message: usize },
    #[error("message of {0} bytes above the configured maximum")]
    MessageTooBig(usize),
    #[error("the session has ended")]
    Ended,
}

/// Publisher counters (monotonic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublisherCounters {
    /// Messages sequenced.
    pub messages: u64,
    /// Datagrams with messages sent (answers excluded).
    pub datagrams: u64,
    pub heartbeats: u64,
    /// Decimals saturated to the Fixed8 range (see `wire::fixed8_saturating`).
    pub saturated_values: u64,
    /// Re-requests received for this session.
    pub rerequests: u64,
    /// Re-requests for another session (ignored).
    pub rerequests_other_session: u64,
    /// Messages re-sent in answers.
    pub resent_messages: u64,
    /// Requested messages that were no longer retained (or not yet sent).
    pub unretained_messages: u64,
}

/// The sending side of one session. See the module docs.
#[derive(Debug)]
pub struct Publisher<R: Retention> {
    config: PublisherConfig,
    builder: PacketBuilder,
    answer: PacketBuilder,
    scratch: Vec<u8>,
    next_seq: u64,
    last_send_ns: u64,
    ended: bool,
    retention: R,
    counters: PublisherCounters,
}

impl<R: Retention> Publisher<R> {
    /// Allocates the datagram buffers; nothing is allocated afterwards.
    ///
    /// # Errors
    /// A datagram too small for the largest message.
    pub fn new(config: PublisherConfig, retention: R) -> Result<Publisher<R>, PublishError> {
        let needed = HEADER_BYTES + BLOCK_PREFIX_BYTES + config.message_bytes_max;
        if config.datagram_bytes_max < needed
            || config.datagram_bytes_max > crate::wire::DATAGRAM_BYTES_MAX
        {
            return Err(PublishError::DatagramTooSmall {
                datagram: config.datagram_bytes_max,
                message: config.message_bytes_max,
            });
        }
        let mut builder = PacketBuilder::new(config.session, config.datagram_bytes_max);
        builder.start(1);
        Ok(Publisher {
            answer: PacketBuilder::new(config.session, config.datagram_bytes_max),
            builder,
            scratch: vec![0; config.message_bytes_max.max(OUTBOUND_BYTES_MAX)],
            config,
            next_seq: 1,
            last_send_ns: 0,
            ended: false,
            retention,
            counters: PublisherCounters::default(),
        })
    }

    /// Continues the session at `next_seq` (after a restart: one past the
    /// last message sent). Drops anything not yet flushed.
    pub fn resume(&mut self, next_seq: u64) {
        self.next_seq = next_seq.max(1);
        self.builder.start(self.next_seq);
    }

    pub fn config(&self) -> &PublisherConfig {
        &self.config
    }

    pub fn session(&self) -> Session {
        self.config.session
    }

    /// The sequence the next message gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn counters(&self) -> &PublisherCounters {
        &self.counters
    }

    pub fn retention(&self) -> &R {
        &self.retention
    }

    pub fn retention_mut(&mut self) -> &mut R {
        &mut self.retention
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Whether messages wait for a [`flush`](Self::flush).
    pub fn has_pending(&self) -> bool {
        !self.builder.is_empty()
    }

    /// Sequences one encoded message (type byte first) and adds it to the
    /// current datagram, sending the datagram first if it is full. Returns
    /// the message's sequence.
    ///
    /// # Errors
    /// The message is above the configured maximum, or the session ended.
    pub fn push(
        &mut self,
        message: &[u8],
        now_ns: u64,
        send: &mut impl FnMut(&[u8]),
    ) -> Result<u64, PublishError> {
        if self.ended {
            return Err(PublishError::Ended);
        }
        if message.len() > self.config.message_bytes_max {
            return Err(PublishError::MessageTooBig(message.len()));
        }
        if !self.builder.fits(message.len()) {
            self.flush(now_ns, send);
        }
        let seq = self.next_seq;
        // An empty datagram holds any message up to message_bytes_max (checked in new).
        let pushed = self.builder.push(message);
        debug_assert!(pushed);
        self.retention.retain(seq, message);
        self.next_seq += 1;
        self.counters.messages += 1;
        Ok(seq)
    }

    /// Pushes a halt (`H`). Returns its sequence.
    ///
    /// # Errors
    /// See [`push`](Self::push).
    pub fn push_halt(
        &mut self,
        halt: &Halt,
        origin: Origin,
        now_ns: u64,
        send: &mut impl FnMut(&[u8]),
    ) -> Result<u64, PublishError> {
        self.push(&encode_halt(halt, origin), now_ns, send)
    }

    /// Pushes a status (`S`). Returns its sequence.
    ///
    /// # Errors
    /// See [`push`](Self::push).
    pub fn push_status(
        &mut self,
        status: &Status,
        now_ns: u64,
        send: &mut impl FnMut(&[u8]),
    ) -> Result<u64, PublishError> {
        self.push(&encode_status(status), now_ns, send)
    }

    /// Pushes a liquidation as one `L` per 64 legs. Returns the first
    /// sequence and the number of messages. Decimals beyond the Fixed8
    /// range are saturated and counted (`saturated_values`).
    ///
    /// # Errors
    /// See [`push`](Self::push).
    pub fn push_liquidation(
        &mut self,
        liquidation: &Liquidation,
        legs: &[Leg],
        origin: Origin,
        now_ns: u64,
        send: &mut impl FnMut(&[u8]),
    ) -> Result<(u64, usize), PublishError> {
        let parts = liquidation_message_count(legs.len());
        let first = self.next_seq;
        let mut scratch = core::mem::take(&mut self.scratch);
        let mut result = Ok((first, parts));
        for part in 0..parts {
            match encode_liquidation_part(liquidation, legs, origin, part, &mut scratch) {
                Ok((len, saturated)) => {
                    self.counters.saturated_values += u64::from(saturated);
                    if let Err(e) = self.push(&scratch[..len], now_ns, send) {
                        result = Err(e);
                        break;
                    }
                }
                Err(_) => {
                    result = Err(PublishError::MessageTooBig(OUTBOUND_BYTES_MAX));
                    break;
                }
            }
        }
        self.scratch = scratch;
        result
    }

    /// Sends the current datagram, if it holds messages.
    pub fn flush(&mut self, now_ns: u64, send: &mut impl FnMut(&[u8])) {
        if self.builder.is_empty() {
            return;
        }
        send(self.builder.finish());
        self.counters.datagrams += 1;
        self.last_send_ns = now_ns;
        self.builder.start(self.next_seq);
    }

    /// Time passes: flushes pending messages, or sends a heartbeat if
    /// nothing was sent for the heartbeat interval.
    pub fn tick(&mut self, now_ns: u64, send: &mut impl FnMut(&[u8])) {
        if self.ended {
            return;
        }
        if !self.builder.is_empty() {
            self.flush(now_ns, send);
        } else if now_ns.saturating_sub(self.last_send_ns) >= self.config.heartbeat_interval_ns {
            send(&encode_heartbeat(self.config.session, self.next_seq));
            self.counters.heartbeats += 1;
            self.last_send_ns = now_ns;
        }
    }

    /// When [`tick`](Self::tick) next has something to do.
    pub fn next_deadline_ns(&self) -> Option<u64> {
        if self.ended {
            None
        } else if !self.builder.is_empty() {
            Some(self.last_send_ns)
        } else {
            Some(
                self.last_send_ns
                    .saturating_add(self.config.heartbeat_interval_ns),
            )
        }
    }

    /// Flushes and sends the end of session. Later pushes fail.
    pub fn end_session(&mut self, now_ns: u64, send: &mut impl FnMut(&[u8])) {
        self.flush(now_ns, send);
        send(&encode_end_of_session(self.config.session, self.next_seq));
        self.last_send_ns = now_ns;
        self.ended = true;
    }

    /// Answers a re-request with one datagram of as many of the requested
    /// messages as are retained and fit, starting at the first retained one
    /// (sent through `send`, to the requester). Messages not retained (or
    /// not yet sequenced) are counted and not sent; nothing retained, nothing
    /// sent. Returns the number of messages re-sent.
    pub fn answer(&mut self, request: &ReRequest, send: &mut impl FnMut(&[u8])) -> usize {
        if request.session != self.config.session {
            self.counters.rerequests_other_session += 1;
            return 0;
        }
        self.counters.rerequests += 1;
        let end = request.end().min(self.next_seq);
        let mut seq = request.sequence;
        let mut scratch = core::mem::take(&mut self.scratch);
        let mut started = false;
        while seq < end {
            match self.retention.fetch(seq, &mut scratch) {
                Some(len) => {
                    if !started {
                        self.answer.start(seq);
                        started = true;
                    }
                    if !self.answer.push(&scratch[..len]) {
                        break;
                    }
                }
                None if started => break,
                None => self.counters.unretained_messages += 1,
            }
            seq += 1;
        }
        self.scratch = scratch;
        self.counters.unretained_messages +=
            request.end().saturating_sub(end.max(request.sequence));
        if !started {
            return 0;
        }
        let count = usize::from(self.answer.count());
        self.counters.resent_messages += count as u64;
        send(self.answer.finish());
        count
    }
}
