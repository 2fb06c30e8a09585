//! One MoldUDP64 stream's receiving rules (PROTOCOL.md §1 "Receiver
//! rules"), on raw messages: sessions, in-order delivery, per-message
//! duplicates, gaps, re-requests, holding later packets, skipping (market
//! data only). A pure state machine: no sockets, time passed in as nanos.
//!
//! [`crate::Receiver`] puts the inbound message decoder on top; `liqd
//! listen` uses a [`Sequencer`] with the outbound decoder.

use crate::wire::{parse_packet, Packet, PacketError, PacketKind, ReRequest, Session, COUNT_MAX};

/// How a stream is received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SequencerConfig {
    /// Skip a gap after `gap_wait_ns` (market data) instead of waiting for
    /// it to be filled (orders, admin).
    pub skips_gaps: bool,
    /// How long a skipping stream waits for a gap to be filled.
    pub gap_wait_ns: u64,
    /// Packets ahead of a gap held in memory (preallocated). When full, the
    /// farthest-ahead packet is dropped (counted); it is re-requested later.
    pub hold_packets_max: usize,
    /// Size of each hold slot: the largest datagram that can be held (a
    /// larger one ahead of a gap is dropped, counted, re-requested later).
    pub hold_datagram_bytes_max: usize,
    /// Generate re-requests (a retransmission address is configured).
    pub rerequest: bool,
    /// At most one re-request per interval while no progress is made.
    pub rerequest_interval_ns: u64,
    /// Most messages asked for in one re-request (1..=65534).
    pub rerequest_count_max: u16,
}

impl SequencerConfig {
    /// Market data: skips after 500 µs.
    pub const MARKET_DATA: SequencerConfig = SequencerConfig {
        skips_gaps: true,
        gap_wait_ns: 500_000,
        ..SequencerConfig::NEVER_SKIP
    };
    /// Orders, admin, the outbound stream: never skip.
    pub const NEVER_SKIP: SequencerConfig = SequencerConfig {
        skips_gaps: false,
        gap_wait_ns: 0,
        hold_packets_max: 1024,
        hold_datagram_bytes_max: crate::wire::DATAGRAM_BYTES_DEFAULT,
        rerequest: false,
        rerequest_interval_ns: 1_000_000,
        rerequest_count_max: COUNT_MAX,
    };
}

/// Something worth logging, handed to the handler as it happens (a value:
/// no allocation). The daemon logs it with the stream and source address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The datagram was dropped whole.
    MalformedPacket(PacketError),
    /// A message that consumed sequence `seq` and was not delivered.
    MalformedMessage {
        seq: u64,
        error: crate::wire::MessageError,
    },
    /// A new session name: the stream starts over at sequence 1;
    /// `abandoned` messages of the previous session were never received.
    NewSession { session: Session, abandoned: u64 },
    /// A packet of a session this stream already left: dropped.
    OldSession { session: Session },
    /// The session ended; `next` is the sequence it ended before.
    EndOfSession { session: Session, next: u64 },
    /// Messages `[from, to)` are missing (at least; more may be later).
    GapOpened { from: u64, to: u64 },
    /// Every message up to the highest announced one has been delivered.
    GapClosed { next: u64 },
    /// Market data only: `[from, to)` given up on after the wait.
    Skipped { from: u64, to: u64 },
    /// A packet ahead of the gap could not be held (buffer full or too
    /// big): messages `[from, to)` will be re-requested.
    HeldDropped { from: u64, to: u64 },
}

/// Receives the messages of a stream, in order, and notices.
pub trait MessageHandler {
    /// Message `seq` (type byte first), exactly once and in order.
    fn message(&mut self, seq: u64, message: &[u8]);
    /// Something to log or count.
    fn notice(&mut self, notice: Notice) {
        let _ = notice;
    }
}

/// Per-stream counters (monotonic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SequencerCounters {
    /// Well-formed packets of any session (heartbeats and ends included).
    pub packets: u64,
    pub heartbeats: u64,
    pub end_of_sessions: u64,
    /// Messages handed to the handler (in sequence).
    pub messages: u64,
    /// Messages received again after delivery (per message).
    pub duplicates: u64,
    /// Gaps opened.
    pub gaps: u64,
    /// Re-requests generated.
    pub rerequests: u64,
    /// Market data: messages skipped.
    pub skipped: u64,
    /// Packets ahead of a gap that could not be held.
    pub held_dropped: u64,
    /// Sessions started (the first one included).
    pub sessions: u64,
    /// Messages of a previous session never received when a new one began.
    pub abandoned: u64,
    /// Packets of a session already left, dropped.
    pub old_session_packets: u64,
    /// Messages at or past the end of session, dropped.
    pub after_end: u64,
    /// Malformed packets by [`PacketError::index`].
    pub malformed_packets: [u64; PacketError::COUNT],
}

impl SequencerCounters {
    pub fn malformed_packets_total(&self) -> u64 {
        self.malformed_packets.iter().sum()
    }
}

/// Sessions remembered as "already left" (a late packet of one of them is
/// dropped instead of restarting the stream).
const PAST_SESSIONS: usize = 8;

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    used: bool,
    start: u64,
    end: u64,
    len: usize,
}

/// Packets ahead of a gap: fixed slots, allocated once.
#[derive(Clone, Debug)]
struct HoldBuffer {
    bytes: Vec<u8>,
    slot_bytes: usize,
    slots: Vec<Slot>,
    used: usize,
}

enum Hold {
    Held,
    /// Already held (same or wider range): the messages are duplicates.
    Duplicate,
    /// This range was dropped (the new packet or an evicted one).
    Dropped {
        from: u64,
        to: u64,
    },
}

impl HoldBuffer {
    fn new(slots: usize, slot_bytes: usize) -> HoldBuffer {
        HoldBuffer {
            bytes: vec![0; slots * slot_bytes],
            slot_bytes,
            slots: vec![Slot::default(); slots],
            used: 0,
        }
    }

    fn clear(&mut self) {
        self.slots.iter_mut().for_each(|slot| slot.used = false);
        self.used = 0;
    }

    /// The held slot with the lowest start.
    fn first(&self) -> Option<usize> {
        if self.used == 0 {
            return None;
        }
        (0..self.slots.len())
            .filter(|&i| self.slots[i].used)
            .min_by_key(|&i| self.slots[i].start)
    }

    fn min_start(&self) -> Option<u64> {
        self.first().map(|i| self.slots[i].start)
    }

    fn datagram(&self, index: usize) -> &[u8] {
        let at = index * self.slot_bytes;
        &self.bytes[at..at + self.slots[index].len]
    }

    fn remove(&mut self, index: usize) {
        if self.slots[index].used {
            self.slots[index].used = false;
            self.used -= 1;
        }
    }

    fn insert(&mut self, start: u64, end: u64, datagram: &[u8]) -> Hold {
        if self
            .slots
            .iter()
            .any(|s| s.used && s.start <= start && end <= s.end)
        {
            return Hold::Duplicate;
        }
        if datagram.len() > self.slot_bytes || self.slots.is_empty() {
            return Hold::Dropped {
                from: start,
                to: end,
            };
        }
        let index = match self.slots.iter().position(|s| !s.used) {
            Some(free) => free,
            None => {
                // Full: drop the farthest-ahead packet (the new one if it is).
                let farthest = (0..self.slots.len())
                    .max_by_key(|&i| self.slots[i].start)
                    .unwrap_or(0);
                let victim = self.slots[farthest];
                if victim.start <= start {
                    return Hold::Dropped {
                        from: start,
                        to: end,
                    };
                }
                self.remove(farthest);
                self.store(farthest, start, end, datagram);
                return Hold::Dropped {
                    from: victim.start,
                    to: victim.end,
                };
            }
        };
        self.store(index, start, end, datagram);
        Hold::Held
    }

    fn store(&mut self, index: usize, start: u64, end: u64, datagram: &[u8]) {
        let at = index * self.slot_bytes;
        self.bytes[at..at + datagram.len()].copy_from_slice(datagram);
        self.slots[index] = Slot {
            used: true,
            start,
            end,
            len: datagram.len(),
        };
        self.used += 1;
    }
}

/// The delivery state, apart from the hold buffer (so held datagrams can be
/// borrowed while delivering).
#[derive(Clone, Debug)]
struct Cursor {
    next_expected: u64,
    /// End of session: messages at or past it are not expected.
    end: Option<u64>,
    counters: SequencerCounters,
}

impl Cursor {
    /// Delivers the packet's messages from `next_expected` on.
    fn deliver(&mut self, packet: &Packet<'_>, handler: &mut impl MessageHandler) {
        let end = self.end.unwrap_or(u64::MAX);
        for (seq, message) in (packet.sequence..).zip(packet.messages()) {
            if seq < self.next_expected {
                self.counters.duplicates += 1;
            } else if seq >= end {
                self.counters.after_end += 1;
            } else {
                handler.message(seq, message);
                self.counters.messages += 1;
                self.next_expected = seq + 1;
            }
        }
    }
}

/// One stream's receiver on raw messages. See the module docs.
#[derive(Clone, Debug)]
pub struct Sequencer {
    config: SequencerConfig,
    session: Option<Session>,
    past_sessions: [Option<Session>; PAST_SESSIONS],
    past_next: usize,
    cursor: Cursor,
    /// The highest "next sequence" any packet of the session announced.
    highest_seen: u64,
    hold: HoldBuffer,
    /// When the current gap was noticed (None: no gap).
    gap_since_ns: Option<u64>,
    last_rerequest_ns: Option<u64>,
    pending_rerequest: Option<ReRequest>,
}

impl Sequencer {
    /// Allocates the hold buffer; nothing is allocated afterwards.
    pub fn new(config: SequencerConfig) -> Sequencer {
        let config = SequencerConfig {
            rerequest_count_max: config.rerequest_count_max.clamp(1, COUNT_MAX),
            ..config
        };
        Sequencer {
            hold: HoldBuffer::new(config.hold_packets_max, config.hold_datagram_bytes_max),
            config,
            session: None,
            past_sessions: [None; PAST_SESSIONS],
            past_next: 0,
            cursor: Cursor {
                next_expected: 1,
                end: None,
                counters: SequencerCounters::default(),
            },
            highest_seen: 1,
            gap_since_ns: None,
            last_rerequest_ns: None,
            pending_rerequest: None,
        }
    }

    /// Resumes at `next_expected` (e.g. one past the last journaled
    /// message of this stream). With `session` None the first session seen
    /// is adopted at `next_expected`; with a session, a packet of another
    /// session starts over at 1 (and a packet of the given one resumes).
    pub fn resume(&mut self, session: Option<Session>, next_expected: u64) {
        self.session = session;
        self.cursor.next_expected = next_expected.max(1);
        self.cursor.end = None;
        self.highest_seen = self.cursor.next_expected;
        self.hold.clear();
        self.close_gap();
    }

    pub fn config(&self) -> &SequencerConfig {
        &self.config
    }

    /// Turns re-requests on or off (a retransmission address configured).
    pub fn set_rerequest(&mut self, on: bool) {
        self.config.rerequest = on;
    }

    /// The current session (None before the first packet, unless resumed).
    pub fn session(&self) -> Option<Session> {
        self.session
    }

    /// The sequence of the next message to deliver.
    pub fn next_expected(&self) -> u64 {
        self.cursor.next_expected
    }

    /// The end-of-session sequence, once received.
    pub fn end_of_session(&self) -> Option<u64> {
        self.cursor.end
    }

    /// Whether the session ended and every message of it was delivered.
    pub fn is_finished(&self) -> bool {
        self.cursor
            .end
            .is_some_and(|end| self.cursor.next_expected >= end)
    }

    pub fn counters(&self) -> &SequencerCounters {
        &self.cursor.counters
    }

    /// Whether messages are known to be missing.
    pub fn gap_open(&self) -> bool {
        self.gap_since_ns.is_some()
    }

    /// How long the current gap has been open.
    pub fn gap_age_ns(&self, now_ns: u64) -> Option<u64> {
        self.gap_since_ns.map(|since| now_ns.saturating_sub(since))
    }

    /// Packets held ahead of the gap.
    pub fn held_packets(&self) -> usize {
        self.hold.used
    }

    /// The re-request generated by the last call, if any; the caller sends
    /// it to the stream's retransmission address.
    pub fn take_rerequest(&mut self) -> Option<ReRequest> {
        self.pending_rerequest.take()
    }

    /// When [`poll`](Self::poll) next has something to do (a skip or a
    /// re-request retry), if ever.
    pub fn next_deadline_ns(&self) -> Option<u64> {
        let since = self.gap_since_ns?;
        let skip = self
            .config
            .skips_gaps
            .then(|| since.saturating_add(self.config.gap_wait_ns));
        let retry = self.config.rerequest.then(|| {
            self.last_rerequest_ns.map_or(since, |t| {
                t.saturating_add(self.config.rerequest_interval_ns)
            })
        });
        match (skip, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Handles one datagram received at `now_ns`.
    pub fn on_datagram(&mut self, datagram: &[u8], now_ns: u64, handler: &mut impl MessageHandler) {
        let packet = match parse_packet(datagram) {
            Ok(packet) => packet,
            Err(error) => {
                self.cursor.counters.malformed_packets[error.index()] += 1;
                handler.notice(Notice::MalformedPacket(error));
                return;
            }
        };
        if !self.check_session(packet.session, handler) {
            return;
        }
        self.cursor.counters.packets += 1;
        match packet.kind() {
            PacketKind::Heartbeat => self.cursor.counters.heartbeats += 1,
            PacketKind::EndOfSession => {
                self.cursor.counters.end_of_sessions += 1;
                if self.cursor.end.is_none() {
                    handler.notice(Notice::EndOfSession {
                        session: packet.session,
                        next: packet.sequence,
                    });
                }
                let end = self
                    .cursor
                    .end
                    .map_or(packet.sequence, |e| e.min(packet.sequence));
                self.cursor.end = Some(end);
            }
            PacketKind::Messages => {}
        }
        let announced = match self.cursor.end {
            Some(end) => packet.next_sequence().min(end),
            None => packet.next_sequence(),
        };
        self.highest_seen = self.highest_seen.max(announced);
        let before = self.cursor.next_expected;
        if packet.kind() == PacketKind::Messages {
            if self.cursor.end.is_some_and(|end| packet.sequence >= end) {
                self.cursor.counters.after_end += packet.message_count();
            } else if packet.next_sequence() <= before {
                self.cursor.counters.duplicates += packet.message_count();
            } else if packet.sequence > before {
                self.hold_packet(&packet, datagram, handler);
            } else {
                self.cursor.deliver(&packet, handler);
                self.drain(handler);
            }
        }
        self.update_gap(before, now_ns, handler);
    }

    /// Time passes: skips a market-data gap after its wait; retries a
    /// re-request after its interval.
    pub fn poll(&mut self, now_ns: u64, handler: &mut impl MessageHandler) {
        let Some(since) = self.gap_since_ns else {
            return;
        };
        let before = self.cursor.next_expected;
        if self.config.skips_gaps && now_ns.saturating_sub(since) >= self.config.gap_wait_ns {
            let to = self.gap_target();
            if to > before {
                self.cursor.counters.skipped += to - before;
                handler.notice(Notice::Skipped { from: before, to });
                self.cursor.next_expected = to;
                self.drain(handler);
            }
        }
        self.update_gap(before, now_ns, handler);
    }

    /// Whether the packet belongs to the current session (adopting or
    /// starting a new one as PROTOCOL.md §1 says).
    fn check_session(&mut self, session: Session, handler: &mut impl MessageHandler) -> bool {
        match self.session {
            Some(current) if current == session => true,
            None => {
                self.session = Some(session);
                self.cursor.counters.sessions += 1;
                handler.notice(Notice::NewSession {
                    session,
                    abandoned: 0,
                });
                true
            }
            Some(current) => {
                if self.past_sessions.contains(&Some(session)) {
                    self.cursor.counters.old_session_packets += 1;
                    handler.notice(Notice::OldSession { session });
                    return false;
                }
                let abandoned = self.missing();
                self.past_sessions[self.past_next] = Some(current);
                self.past_next = (self.past_next + 1) % PAST_SESSIONS;
                self.session = Some(session);
                self.cursor.counters.sessions += 1;
                self.cursor.counters.abandoned += abandoned;
                handler.notice(Notice::NewSession { session, abandoned });
                self.cursor.next_expected = 1;
                self.cursor.end = None;
                self.highest_seen = 1;
                self.hold.clear();
                self.close_gap();
                true
            }
        }
    }

    /// Messages known to be missing (announced but not delivered).
    fn missing(&self) -> u64 {
        self.highest_seen.saturating_sub(self.cursor.next_expected)
    }

    /// Where the current hole ends: the first held packet, or the highest
    /// announced sequence.
    fn gap_target(&self) -> u64 {
        self.hold
            .min_start()
            .unwrap_or(self.highest_seen)
            .min(self.highest_seen.max(self.cursor.next_expected))
    }

    fn hold_packet(
        &mut self,
        packet: &Packet<'_>,
        datagram: &[u8],
        handler: &mut impl MessageHandler,
    ) {
        match self
            .hold
            .insert(packet.sequence, packet.next_sequence(), datagram)
        {
            Hold::Held => {}
            Hold::Duplicate => self.cursor.counters.duplicates += packet.message_count(),
            Hold::Dropped { from, to } => {
                self.cursor.counters.held_dropped += 1;
                handler.notice(Notice::HeldDropped { from, to });
            }
        }
    }

    /// Delivers held packets that now connect.
    fn drain(&mut self, handler: &mut impl MessageHandler) {
        while let Some(index) = self.hold.first() {
            let slot = self.hold.slots[index];
            if slot.start > self.cursor.next_expected {
                break;
            }
            if slot.end > self.cursor.next_expected {
                // Held datagrams were validated when they arrived.
                if let Ok(packet) = parse_packet(self.hold.datagram(index)) {
                    self.cursor.deliver(&packet, handler);
                }
            } else {
                self.cursor.counters.duplicates += slot.end - slot.start;
            }
            self.hold.remove(index);
        }
    }

    fn close_gap(&mut self) {
        self.gap_since_ns = None;
        self.last_rerequest_ns = None;
        self.pending_rerequest = None;
    }

    /// Opens, keeps or closes the gap after a change; re-requests.
    fn update_gap(&mut self, before: u64, now_ns: u64, handler: &mut impl MessageHandler) {
        let next = self.cursor.next_expected;
        if self.missing() == 0 {
            if self.gap_since_ns.is_some() {
                handler.notice(Notice::GapClosed { next });
                self.close_gap();
            }
            return;
        }
        let progressed = next > before;
        match self.gap_since_ns {
            None => {
                self.cursor.counters.gaps += 1;
                handler.notice(Notice::GapOpened {
                    from: next,
                    to: self.gap_target(),
                });
                self.gap_since_ns = Some(now_ns);
            }
            Some(_) if progressed => {
                // A new hole: it gets its own wait and an immediate request.
                self.gap_since_ns = Some(now_ns);
                self.last_rerequest_ns = None;
            }
            Some(_) => {}
        }
        self.maybe_rerequest(now_ns);
    }

    fn maybe_rerequest(&mut self, now_ns: u64) {
        if !self.config.rerequest {
            return;
        }
        let (Some(session), Some(_)) = (self.session, self.gap_since_ns) else {
            return;
        };
        let due = match self.last_rerequest_ns {
            None => true,
            Some(last) => now_ns.saturating_sub(last) >= self.config.rerequest_interval_ns,
        };
        if !due {
            return;
        }
        let from = self.cursor.next_expected;
        let to = self.gap_target();
        if to <= from {
            return;
        }
        let count = (to - from).min(u64::from(self.config.rerequest_count_max));
        self.pending_rerequest = Some(ReRequest {
            session,
            sequence: from,
            // Bounded by rerequest_count_max ≤ 0xFFFE.
            count: count as u16,
        });
        self.last_rerequest_ns = Some(now_ns);
        self.cursor.counters.rerequests += 1;
    }
}
