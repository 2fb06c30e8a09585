//! MoldUDP64 framing (PROTOCOL.md §1): downstream packets, heartbeats, end
//! of session, re-requests, and a builder that packs messages into
//! datagrams.

use core::fmt;

/// Bytes of the session name.
pub const SESSION_BYTES: usize = 10;
/// Bytes of a downstream packet header: session, sequence, count.
pub const HEADER_BYTES: usize = 20;
/// Bytes of a re-request.
pub const REREQUEST_BYTES: usize = 20;
/// Bytes of a block's length prefix.
pub const BLOCK_PREFIX_BYTES: usize = 2;
/// Default largest datagram (Ethernet MTU − IP − UDP headers).
pub const DATAGRAM_BYTES_DEFAULT: usize = 1472;
/// Largest UDP payload: receive buffers are this big, so nothing is cut.
pub const DATAGRAM_BYTES_MAX: usize = 65_507;
/// `count` of a heartbeat.
pub const COUNT_HEARTBEAT: u16 = 0;
/// `count` of an end-of-session packet.
pub const COUNT_END_OF_SESSION: u16 = 0xFFFF;
/// Most message blocks in one packet (and messages in one re-request).
pub const COUNT_MAX: u16 = 0xFFFE;

/// A MoldUDP64 session name: 10 bytes, compared as raw bytes.
///
/// [`Session::new`] builds only printable, left-aligned, space-padded names;
/// a received header's session bytes are taken as they are (PROTOCOL.md §1
/// lists no malformed class for them).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Session(pub [u8; SESSION_BYTES]);

impl Session {
    /// # Errors
    /// Empty (or only spaces), longer than 10 bytes, or not printable ASCII.
    pub fn new(name: &str) -> Result<Session, &'static str> {
        if name.trim_end_matches(' ').is_empty() {
            return Err("session name is empty");
        }
        if name.len() > SESSION_BYTES {
            return Err("session name longer than 10 characters");
        }
        if !name.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err("session name is not printable ASCII");
        }
        let mut bytes = [b' '; SESSION_BYTES];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Ok(Session(bytes))
    }

    /// The name without its padding (non-printable bytes shown as `?`).
    pub fn display(&self) -> SessionDisplay<'_> {
        SessionDisplay(self)
    }
}

/// Printable form of a [`Session`].
pub struct SessionDisplay<'a>(&'a Session);

impl fmt::Display for SessionDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = &self.0 .0;
        let end = bytes.iter().rposition(|b| *b != b' ').map_or(0, |i| i + 1);
        for &b in &bytes[..end] {
            let c = if (0x20..0x7f).contains(&b) {
                char::from(b)
            } else {
                '?'
            };
            fmt::Write::write_char(f, c)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Session({:?})", self.display().to_string())
    }
}

impl fmt::Display for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.display(), f)
    }
}

/// Why a datagram is not a MoldUDP64 downstream packet (PROTOCOL.md §1,
/// "malformed packet"). The whole datagram is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum PacketError {
    #[error("header shorter than 20 bytes")]
    ShortHeader,
    #[error("a message block runs past the end of the datagram")]
    BlockPastEnd,
    #[error("bytes left after the last message block")]
    TrailingBytes,
    #[error("end of session (count 0xFFFF) carrying blocks")]
    EndOfSessionWithBlocks,
    #[error("sequence 0")]
    SequenceZero,
    #[error("sequence + count overflows u64")]
    SequenceOverflow,
}

impl PacketError {
    /// Number of reasons (size of a per-reason counter array).
    pub const COUNT: usize = 6;
    pub const ALL: [PacketError; PacketError::COUNT] = [
        PacketError::ShortHeader,
        PacketError::BlockPastEnd,
        PacketError::TrailingBytes,
        PacketError::EndOfSessionWithBlocks,
        PacketError::SequenceZero,
        PacketError::SequenceOverflow,
    ];

    /// Position in [`PacketError::ALL`] (a counter index).
    pub fn index(self) -> usize {
        self as usize
    }

    /// A short snake_case name for metrics.
    pub fn name(self) -> &'static str {
        match self {
            PacketError::ShortHeader => "short_header",
            PacketError::BlockPastEnd => "block_past_end",
            PacketError::TrailingBytes => "trailing_bytes",
            PacketError::EndOfSessionWithBlocks => "end_of_session_with_blocks",
            PacketError::SequenceZero => "sequence_zero",
            PacketError::SequenceOverflow => "sequence_overflow",
        }
    }
}

/// What a well-framed packet carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketKind {
    /// `count` messages, 1..=0xFFFE.
    Messages,
    /// count 0: no messages; `sequence` is the next message's.
    Heartbeat,
    /// count 0xFFFF: the session ends; `sequence` is the next message's.
    EndOfSession,
}

/// A validated downstream packet, borrowing the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    pub session: Session,
    /// The first message's sequence (heartbeat / end: the next message's).
    pub sequence: u64,
    /// The raw count field.
    pub count: u16,
    blocks: &'a [u8],
}

impl<'a> Packet<'a> {
    pub fn kind(&self) -> PacketKind {
        match self.count {
            COUNT_HEARTBEAT => PacketKind::Heartbeat,
            COUNT_END_OF_SESSION => PacketKind::EndOfSession,
            _ => PacketKind::Messages,
        }
    }

    /// Number of messages carried (0 for a heartbeat or an end of session).
    pub fn message_count(&self) -> u64 {
        match self.kind() {
            PacketKind::Messages => u64::from(self.count),
            PacketKind::Heartbeat | PacketKind::EndOfSession => 0,
        }
    }

    /// The sequence after this packet's last message (validated not to
    /// overflow).
    pub fn next_sequence(&self) -> u64 {
        self.sequence + self.message_count()
    }

    /// The messages, in order (each a block's bytes, type byte first).
    pub fn messages(&self) -> Blocks<'a> {
        Blocks {
            rest: self.blocks,
            left: self.message_count(),
        }
    }
}

/// The message blocks of a validated packet.
#[derive(Clone, Debug)]
pub struct Blocks<'a> {
    rest: &'a [u8],
    left: u64,
}

impl<'a> Iterator for Blocks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        let (block, rest) = split_block(self.rest)?;
        self.rest = rest;
        self.left -= 1;
        Some(block)
    }
}

/// One block off the front: `(message, rest)`, or `None` if it runs past.
fn split_block(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let prefix = bytes.get(..BLOCK_PREFIX_BYTES)?;
    let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
    let body = &bytes[BLOCK_PREFIX_BYTES..];
    if body.len() < len {
        return None;
    }
    Some(body.split_at(len))
}

fn header_fields(bytes: &[u8]) -> Option<(Session, u64, u16)> {
    let header = bytes.get(..HEADER_BYTES)?;
    let mut session = [0u8; SESSION_BYTES];
    session.copy_from_slice(&header[..SESSION_BYTES]);
    let mut sequence = [0u8; 8];
    sequence.copy_from_slice(&header[SESSION_BYTES..SESSION_BYTES + 8]);
    let count = u16::from_be_bytes([header[18], header[19]]);
    Some((Session(session), u64::from_be_bytes(sequence), count))
}

/// Parses and validates a whole datagram (no allocation; every block is
/// walked once so a bad packet is refused before any message is used).
///
/// Checks, in order: header length, end of session with bytes after the
/// header, sequence 0, sequence + count overflow, each block within the
/// datagram, nothing after the last block.
///
/// # Errors
/// The [`PacketError`] class.
pub fn parse_packet(datagram: &[u8]) -> Result<Packet<'_>, PacketError> {
    let (session, sequence, count) = header_fields(datagram).ok_or(PacketError::ShortHeader)?;
    let body = &datagram[HEADER_BYTES..];
    if count == COUNT_END_OF_SESSION && !body.is_empty() {
        return Err(PacketError::EndOfSessionWithBlocks);
    }
    if sequence == 0 {
        return Err(PacketError::SequenceZero);
    }
    let packet = Packet {
        session,
        sequence,
        count,
        blocks: body,
    };
    if sequence.checked_add(packet.message_count()).is_none() {
        return Err(PacketError::SequenceOverflow);
    }
    let mut rest = body;
    for _ in 0..packet.message_count() {
        let (_, after) = split_block(rest).ok_or(PacketError::BlockPastEnd)?;
        rest = after;
    }
    if !rest.is_empty() {
        return Err(PacketError::TrailingBytes);
    }
    Ok(packet)
}

/// Writes a header into `out[..20]`.
fn write_header(out: &mut [u8], session: Session, sequence: u64, count: u16) {
    out[..SESSION_BYTES].copy_from_slice(&session.0);
    out[SESSION_BYTES..SESSION_BYTES + 8].copy_from_slice(&sequence.to_be_bytes());
    out[18..20].copy_from_slice(&count.to_be_bytes());
}

/// A heartbeat: no messages, `next_sequence` the next message's.
pub fn encode_heartbeat(session: Session, next_sequence: u64) -> [u8; HEADER_BYTES] {
    let mut out = [0u8; HEADER_BYTES];
    write_header(&mut out, session, next_sequence, COUNT_HEARTBEAT);
    out
}

/// An end-of-session packet.
pub fn encode_end_of_session(session: Session, next_sequence: u64) -> [u8; HEADER_BYTES] {
    let mut out = [0u8; HEADER_BYTES];
    write_header(&mut out, session, next_sequence, COUNT_END_OF_SESSION);
    out
}

/// A re-request: "send me `count` messages starting at `sequence`".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReRequest {
    pub session: Session,
    pub sequence: u64,
    /// 1..=0xFFFE.
    pub count: u16,
}

/// Why 20 bytes are not a re-request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ReRequestError {
    #[error("re-request of {0} bytes (not 20)")]
    WrongLength(usize),
    #[error("re-request for sequence 0")]
    SequenceZero,
    #[error("re-request count {0} outside 1..=65534")]
    Count(u16),
    #[error("re-request range overflows u64")]
    SequenceOverflow,
}

impl ReRequest {
    pub fn encode(&self) -> [u8; REREQUEST_BYTES] {
        let mut out = [0u8; REREQUEST_BYTES];
        write_header(&mut out, self.session, self.sequence, self.count);
        out
    }

    /// # Errors
    /// Not exactly 20 bytes, sequence 0, count 0 or 0xFFFF, or an overflowing range.
    pub fn decode(bytes: &[u8]) -> Result<ReRequest, ReRequestError> {
        if bytes.len() != REREQUEST_BYTES {
            return Err(ReRequestError::WrongLength(bytes.len()));
        }
        let (session, sequence, count) =
            header_fields(bytes).ok_or(ReRequestError::WrongLength(bytes.len()))?;
        if sequence == 0 {
            return Err(ReRequestError::SequenceZero);
        }
        if count == 0 || count > COUNT_MAX {
            return Err(ReRequestError::Count(count));
        }
        if sequence.checked_add(u64::from(count)).is_none() {
            return Err(ReRequestError::SequenceOverflow);
        }
        Ok(ReRequest {
            session,
            sequence,
            count,
        })
    }

    /// One past the last requested sequence.
    pub fn end(&self) -> u64 {
        self.sequence.saturating_add(u64::from(self.count))
    }
}

/// Packs messages into one datagram at a time (a preallocated buffer; no
/// allocation after [`PacketBuilder::new`]).
///
/// ```text
/// builder.start(first_sequence);
/// while builder.push(message) { … }   // false: it does not fit, send first
/// send(builder.finish());
/// ```
#[derive(Clone, Debug)]
pub struct PacketBuilder {
    buffer: Vec<u8>,
    datagram_bytes_max: usize,
    session: Session,
    sequence: u64,
    count: u16,
}

impl PacketBuilder {
    /// `datagram_bytes_max` is clamped to 22..=65507 (a header plus one
    /// empty block at least).
    pub fn new(session: Session, datagram_bytes_max: usize) -> PacketBuilder {
        let datagram_bytes_max =
            datagram_bytes_max.clamp(HEADER_BYTES + BLOCK_PREFIX_BYTES, DATAGRAM_BYTES_MAX);
        let mut buffer = Vec::with_capacity(datagram_bytes_max);
        buffer.resize(HEADER_BYTES, 0);
        PacketBuilder {
            buffer,
            datagram_bytes_max,
            session,
            sequence: 1,
            count: 0,
        }
    }

    pub fn session(&self) -> Session {
        self.session
    }

    /// Changes the session (takes effect at the next [`start`](Self::start)).
    pub fn set_session(&mut self, session: Session) {
        self.session = session;
    }

    pub fn datagram_bytes_max(&self) -> usize {
        self.datagram_bytes_max
    }

    /// Largest message that fits in an otherwise empty datagram.
    pub fn message_bytes_max(&self) -> usize {
        self.datagram_bytes_max - HEADER_BYTES - BLOCK_PREFIX_BYTES
    }

    /// Empties the datagram; its first message will have `sequence`.
    pub fn start(&mut self, sequence: u64) {
        self.buffer.truncate(HEADER_BYTES);
        self.sequence = sequence;
        self.count = 0;
    }

    /// Messages in the datagram so far.
    pub fn count(&self) -> u16 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The sequence of the first message.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The sequence the next pushed message gets.
    pub fn next_sequence(&self) -> u64 {
        self.sequence.saturating_add(u64::from(self.count))
    }

    /// Whether a message of `len` bytes still fits.
    pub fn fits(&self, len: usize) -> bool {
        self.count < COUNT_MAX
            && len <= usize::from(u16::MAX)
            && self.buffer.len() + BLOCK_PREFIX_BYTES + len <= self.datagram_bytes_max
    }

    /// Appends one message; `false` (nothing appended) if it does not fit.
    pub fn push(&mut self, message: &[u8]) -> bool {
        self.push_with(message.len(), |out| out.copy_from_slice(message))
    }

    /// Appends a message of `len` bytes written in place by `write`;
    /// `false` (nothing appended) if it does not fit.
    pub fn push_with(&mut self, len: usize, write: impl FnOnce(&mut [u8])) -> bool {
        if !self.fits(len) {
            return false;
        }
        let start = self.buffer.len();
        // `fits` bounds len by u16::MAX.
        let prefix = (len as u16).to_be_bytes();
        self.buffer.extend_from_slice(&prefix);
        self.buffer.resize(start + BLOCK_PREFIX_BYTES + len, 0);
        write(&mut self.buffer[start + BLOCK_PREFIX_BYTES..]);
        self.count += 1;
        true
    }

    /// The finished datagram (header written). An empty builder gives a
    /// heartbeat. The builder keeps its content until the next `start`.
    pub fn finish(&mut self) -> &[u8] {
        let (session, sequence, count) = (self.session, self.sequence, self.count);
        write_header(&mut self.buffer, session, sequence, count);
        &self.buffer
    }
}
