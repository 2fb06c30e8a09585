//! The inbound receiver: the three streams' [`Sequencer`]s with the strict
//! message decoder on top. Pure: no sockets, time passed in as nanos.

use engine::Event;

use crate::sequencer::{MessageHandler, Notice, Sequencer, SequencerConfig, SequencerCounters};
use crate::wire::{decode_event, MessageError, ReRequest, Session, Stream};

/// Receives decoded events and notices.
pub trait EventHandler {
    /// Event `stream_seq` of `stream`, exactly once, in stream order.
    fn on_event(&mut self, stream: Stream, stream_seq: u64, event: &Event);
    /// Something to log or count (malformed packet/message, gap, session).
    fn on_notice(&mut self, stream: Stream, notice: &Notice) {
        let _ = (stream, notice);
    }
}

/// How the three streams are received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// Market data skips a gap after this wait (PROTOCOL.md default 500 µs).
    pub md_gap_wait_ns: u64,
    /// Packets held ahead of a gap, per stream.
    pub hold_packets_max: usize,
    /// Largest datagram a hold slot takes (the configured datagram size).
    pub datagram_bytes_max: usize,
    /// Re-request retry interval while no progress is made.
    pub rerequest_interval_ns: u64,
    /// Most messages asked for in one re-request.
    pub rerequest_count_max: u16,
}

impl Default for ReceiverConfig {
    fn default() -> ReceiverConfig {
        ReceiverConfig {
            md_gap_wait_ns: 500_000,
            hold_packets_max: 1024,
            datagram_bytes_max: crate::wire::DATAGRAM_BYTES_DEFAULT,
            rerequest_interval_ns: 1_000_000,
            rerequest_count_max: crate::wire::COUNT_MAX,
        }
    }
}

impl ReceiverConfig {
    /// The sequencer settings of one stream (re-requests off until
    /// [`StreamReceiver::set_rerequest`]).
    pub fn sequencer(&self, stream: Stream) -> SequencerConfig {
        SequencerConfig {
            skips_gaps: stream.skips_gaps(),
            gap_wait_ns: if stream.skips_gaps() {
                self.md_gap_wait_ns
            } else {
                0
            },
            hold_packets_max: self.hold_packets_max,
            hold_datagram_bytes_max: self.datagram_bytes_max,
            rerequest: false,
            rerequest_interval_ns: self.rerequest_interval_ns,
            rerequest_count_max: self.rerequest_count_max,
        }
    }
}

/// One inbound stream: sequencing plus decoding.
#[derive(Clone, Debug)]
pub struct StreamReceiver {
    stream: Stream,
    sequencer: Sequencer,
    events: u64,
    malformed_messages: [u64; MessageError::COUNT],
    malformed_alarm: bool,
}

impl StreamReceiver {
    pub fn new(stream: Stream, config: &ReceiverConfig) -> StreamReceiver {
        StreamReceiver {
            stream,
            sequencer: Sequencer::new(config.sequencer(stream)),
            events: 0,
            malformed_messages: [0; MessageError::COUNT],
            malformed_alarm: false,
        }
    }

    /// Resume from the journal: the next message expected is `next_expected`
    /// (one past the last journaled `src_seq` of this stream), in `session`
    /// if known (None: the first session seen is taken as the same one).
    pub fn with_next_expected(mut self, next_expected: u64) -> StreamReceiver {
        self.sequencer.resume(None, next_expected);
        self
    }

    /// Like [`with_next_expected`](Self::with_next_expected) with the session known.
    pub fn with_resume(mut self, session: Session, next_expected: u64) -> StreamReceiver {
        self.sequencer.resume(Some(session), next_expected);
        self
    }

    pub fn stream(&self) -> Stream {
        self.stream
    }

    /// Re-requests on (the stream has a retransmission address) or off.
    pub fn set_rerequest(&mut self, on: bool) {
        self.sequencer.set_rerequest(on);
    }

    pub fn sequencer(&self) -> &Sequencer {
        &self.sequencer
    }

    /// Sequencing counters (packets, duplicates, gaps, malformed packets…).
    pub fn counters(&self) -> &SequencerCounters {
        self.sequencer.counters()
    }

    /// Events delivered.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Malformed messages by [`MessageError::index`].
    pub fn malformed_messages(&self) -> &[u64; MessageError::COUNT] {
        &self.malformed_messages
    }

    pub fn malformed_messages_total(&self) -> u64 {
        self.malformed_messages.iter().sum()
    }

    /// Raised: a gap is open on a stream that never skips, or a malformed
    /// message arrived since the last [`clear_malformed_alarm`](Self::clear_malformed_alarm).
    pub fn alarm(&self) -> bool {
        (self.sequencer.gap_open() && !self.stream.skips_gaps()) || self.malformed_alarm
    }

    pub fn malformed_alarm(&self) -> bool {
        self.malformed_alarm
    }

    pub fn clear_malformed_alarm(&mut self) {
        self.malformed_alarm = false;
    }

    pub fn next_expected(&self) -> u64 {
        self.sequencer.next_expected()
    }

    pub fn take_rerequest(&mut self) -> Option<ReRequest> {
        self.sequencer.take_rerequest()
    }

    pub fn next_deadline_ns(&self) -> Option<u64> {
        self.sequencer.next_deadline_ns()
    }

    /// One datagram received on this stream at `now_ns`.
    pub fn on_datagram(&mut self, datagram: &[u8], now_ns: u64, handler: &mut impl EventHandler) {
        let mut decoder = Decoder {
            stream: self.stream,
            handler,
            events: &mut self.events,
            malformed: &mut self.malformed_messages,
            alarm: &mut self.malformed_alarm,
        };
        self.sequencer.on_datagram(datagram, now_ns, &mut decoder);
    }

    /// Time passes (market-data skip, re-request retry).
    pub fn poll(&mut self, now_ns: u64, handler: &mut impl EventHandler) {
        let mut decoder = Decoder {
            stream: self.stream,
            handler,
            events: &mut self.events,
            malformed: &mut self.malformed_messages,
            alarm: &mut self.malformed_alarm,
        };
        self.sequencer.poll(now_ns, &mut decoder);
    }
}

/// Decodes the sequencer's messages for an [`EventHandler`].
struct Decoder<'a, H: EventHandler> {
    stream: Stream,
    handler: &'a mut H,
    events: &'a mut u64,
    malformed: &'a mut [u64; MessageError::COUNT],
    alarm: &'a mut bool,
}

impl<H: EventHandler> MessageHandler for Decoder<'_, H> {
    fn message(&mut self, seq: u64, message: &[u8]) {
        let decoded = decode_event(message).and_then(|event| {
            if self.stream.carries(message[0]) {
                Ok(event)
            } else {
                Err(MessageError::TypeNotOnStream(message[0]))
            }
        });
        match decoded {
            Ok(event) => {
                *self.events += 1;
                self.handler.on_event(self.stream, seq, &event);
            }
            Err(error) => {
                self.malformed[error.index()] += 1;
                *self.alarm = true;
                self.handler
                    .on_notice(self.stream, &Notice::MalformedMessage { seq, error });
            }
        }
    }

    fn notice(&mut self, notice: Notice) {
        self.handler.on_notice(self.stream, &notice);
    }
}

/// The three inbound streams.
#[derive(Clone, Debug)]
pub struct Receiver {
    streams: [StreamReceiver; 3],
}

impl Receiver {
    pub fn new(config: &ReceiverConfig) -> Receiver {
        Receiver {
            streams: Stream::ALL.map(|stream| StreamReceiver::new(stream, config)),
        }
    }

    pub fn stream(&self, stream: Stream) -> &StreamReceiver {
        &self.streams[stream.index()]
    }

    /// To resume or configure one stream.
    pub fn stream_mut(&mut self, stream: Stream) -> &mut StreamReceiver {
        &mut self.streams[stream.index()]
    }

    /// Resumes every stream (indexed by [`Stream::index`]) at its next
    /// expected sequence: one past the last journaled `src_seq` of it.
    pub fn with_next_expected(mut self, next_expected: [u64; 3]) -> Receiver {
        for stream in Stream::ALL {
            self.set_next_expected(stream, next_expected[stream.index()]);
        }
        self
    }

    /// Resume `stream` at `next_expected` (see [`StreamReceiver::with_next_expected`]).
    pub fn set_next_expected(&mut self, stream: Stream, next_expected: u64) {
        self.streams[stream.index()]
            .sequencer
            .resume(None, next_expected);
    }

    pub fn on_datagram(
        &mut self,
        stream: Stream,
        datagram: &[u8],
        now_ns: u64,
        handler: &mut impl EventHandler,
    ) {
        self.streams[stream.index()].on_datagram(datagram, now_ns, handler);
    }

    pub fn poll(&mut self, now_ns: u64, handler: &mut impl EventHandler) {
        for stream in &mut self.streams {
            stream.poll(now_ns, handler);
        }
    }

    pub fn take_rerequest(&mut self, stream: Stream) -> Option<ReRequest> {
        self.streams[stream.index()].take_rerequest()
    }

    /// The earliest deadline of the three streams.
    pub fn next_deadline_ns(&self) -> Option<u64> {
        self.streams
            .iter()
            .filter_map(StreamReceiver::next_deadline_ns)
            .min()
    }

    /// Whether any stream's alarm is raised.
    pub fn alarm(&self) -> bool {
        self.streams.iter().any(StreamReceiver::alarm)
    }
}
