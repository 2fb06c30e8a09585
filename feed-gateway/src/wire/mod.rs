//! The wire format of PROTOCOL.md: MoldUDP64 framing ([`parse_packet`],
//! [`PacketBuilder`], [`ReRequest`]), inbound messages ⇄ [`engine::Event`]
//! ([`decode_event`], [`encode_event`]) and outbound `L`/`H`/`S`
//! ([`encode_liquidation_part`], [`encode_halt`], [`encode_status`],
//! [`decode_outbound`]). Nothing here allocates.

mod codec;
mod inbound;
mod outbound;
mod packet;

pub use inbound::{
    decode_event, encode_event, event_len, event_type, ASSET_BYTES, BALANCE_BYTES, FILL_BYTES,
    FUNDING_BYTES, INBOUND_BYTES_MAX, INDEX_BYTES, INSTRUMENT_BASE_BYTES, MARK_BYTES, PARAMS_BYTES,
    RISK_BYTES, TIER_BYTES,
};
pub use outbound::{
    decode_outbound, encode_halt, encode_liquidation_part, encode_status, fixed8_saturating,
    liquidation_message_count, HaltMessage, LiquidationMessage, Origin, OutboundMessage, WireLeg,
    FLAG_BANKRUPT, FLAG_CONTINUED, FLAG_ESCALATION, FLAG_PARTIAL, HALT_BYTES, LEGS_PER_MESSAGE_MAX,
    LEG_BYTES, LIQUIDATION_BASE_BYTES, LIQUIDATION_BYTES_MAX, OUTBOUND_BYTES_MAX, STATUS_BYTES,
};
pub use packet::{
    encode_end_of_session, encode_heartbeat, parse_packet, Blocks, Packet, PacketBuilder,
    PacketError, PacketKind, ReRequest, ReRequestError, Session, SessionDisplay,
    BLOCK_PREFIX_BYTES, COUNT_END_OF_SESSION, COUNT_HEARTBEAT, COUNT_MAX, DATAGRAM_BYTES_DEFAULT,
    DATAGRAM_BYTES_MAX, HEADER_BYTES, REREQUEST_BYTES, SESSION_BYTES,
};

use engine::Event;
use journal::SourceStream;

/// Why a message inside a well-framed packet is refused (PROTOCOL.md §1,
/// "malformed message"). It consumes its sequence number and never reaches
/// the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum MessageError {
    #[error("empty message block (no type byte)")]
    Empty,
    #[error("unknown message type 0x{0:02x}")]
    UnknownType(u8),
    #[error("message type {:?} not carried by this stream", char::from(*.0))]
    TypeNotOnStream(u8),
    #[error("message type {:?} of {len} bytes (not that type's size)", char::from(*.kind))]
    WrongLength { kind: u8, len: usize },
    #[error("undefined balance kind {0}")]
    BalanceKind(u8),
    #[error("undefined boolean {0}")]
    Bool(u8),
    #[error("tier count {0} outside 1..=16")]
    TierCount(u8),
    #[error("symbol with bytes outside printable ASCII")]
    SymbolNotPrintable,
    #[error("empty symbol")]
    SymbolEmpty,
    #[error("Fixed8 equal to -2^63")]
    Fixed8Min,
    #[error("undefined src_stream {0}")]
    SrcStream(u8),
    #[error("undefined halt reason {0}")]
    HaltReason(u8),
    #[error("undefined liquidation flag bits 0x{0:02x}")]
    Flags(u8),
    #[error("leg count {0} above 64")]
    LegCount(u8),
}

impl MessageError {
    /// Number of reasons (size of a per-reason counter array).
    pub const COUNT: usize = 14;
    /// Names in [`MessageError::index`] order (metrics labels).
    pub const NAMES: [&'static str; MessageError::COUNT] = [
        "empty",
        "unknown_type",
        "type_not_on_stream",
        "wrong_length",
        "balance_kind",
        "bool",
        "tier_count",
        "symbol_not_printable",
        "symbol_empty",
        "fixed8_min",
        "src_stream",
        "halt_reason",
        "flags",
        "leg_count",
    ];

    /// The reason's counter index.
    pub fn index(&self) -> usize {
        match self {
            MessageError::Empty => 0,
            MessageError::UnknownType(_) => 1,
            MessageError::TypeNotOnStream(_) => 2,
            MessageError::WrongLength { .. } => 3,
            MessageError::BalanceKind(_) => 4,
            MessageError::Bool(_) => 5,
            MessageError::TierCount(_) => 6,
            MessageError::SymbolNotPrintable => 7,
            MessageError::SymbolEmpty => 8,
            MessageError::Fixed8Min => 9,
            MessageError::SrcStream(_) => 10,
            MessageError::HaltReason(_) => 11,
            MessageError::Flags(_) => 12,
            MessageError::LegCount(_) => 13,
        }
    }

    pub fn name(&self) -> &'static str {
        MessageError::NAMES[self.index()]
    }
}

/// Why an encoder refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum EncodeError {
    #[error("output buffer too small ({needed} bytes needed)")]
    BufferTooSmall { needed: usize },
    #[error("instrument with {0} tiers: the wire carries 1..=16")]
    TierCount(u8),
    #[error("liquidation part {part} of {parts}")]
    Part { part: usize, parts: usize },
}

/// The three inbound streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// `M`, `X`: may skip ahead after `md_gap_wait`.
    MarketData = 0,
    /// `F`, `B`, `N`: never skips.
    Orders = 1,
    /// `A`, `I`, `G`, `P`: never skips.
    Admin = 2,
}

impl Stream {
    pub const ALL: [Stream; 3] = [Stream::MarketData, Stream::Orders, Stream::Admin];

    /// 0, 1, 2 (an array index).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The `src_stream` code of PROTOCOL.md §4 / the journal's.
    pub fn source(self) -> SourceStream {
        match self {
            Stream::MarketData => SourceStream::MarketData,
            Stream::Orders => SourceStream::Orders,
            Stream::Admin => SourceStream::Admin,
        }
    }

    /// `md`, `orders`, `admin`.
    pub fn name(self) -> &'static str {
        self.source().name()
    }

    /// Whether the stream may skip a gap (only market data).
    pub fn skips_gaps(self) -> bool {
        self == Stream::MarketData
    }

    /// Whether this stream carries messages of `kind` (PROTOCOL.md §3).
    pub fn carries(self, kind: u8) -> bool {
        match self {
            Stream::MarketData => matches!(kind, b'M' | b'X'),
            Stream::Orders => matches!(kind, b'F' | b'B' | b'N'),
            Stream::Admin => matches!(kind, b'A' | b'I' | b'G' | b'P'),
        }
    }

    /// The stream an event travels on.
    pub fn of_event(event: &Event) -> Stream {
        match event {
            Event::Mark(_) | Event::Index(_) => Stream::MarketData,
            Event::Fill(_) | Event::Balance(_) | Event::Funding(_) => Stream::Orders,
            Event::AssetDef(_) | Event::InstrumentDef(_) | Event::Params(_) | Event::Risk(_) => {
                Stream::Admin
            }
        }
    }
}

impl core::fmt::Display for Stream {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests;
