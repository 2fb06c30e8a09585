//! Outbound messages (PROTOCOL.md §4): `L` Liquidation, `H` Halt, `S`
//! Status — encoders for the publisher, decoders for `liqd listen` and tests.

use engine::{
    AccountId, Dec8, Fixed8, Halt, HaltReason, InstrumentId, Leg, Liquidation, Seq, UnixNanos,
};
use journal::{SourceStream, Status};

use super::codec::{Reader, Writer};
use super::{EncodeError, MessageError};

/// `L` without legs.
pub const LIQUIDATION_BASE_BYTES: usize = 52;
/// One leg of an `L`.
pub const LEG_BYTES: usize = 20;
/// Most legs in one `L` message; more continue in the next `L`.
pub const LEGS_PER_MESSAGE_MAX: usize = 64;
/// The largest `L` (64 legs).
pub const LIQUIDATION_BYTES_MAX: usize = LIQUIDATION_BASE_BYTES + LEGS_PER_MESSAGE_MAX * LEG_BYTES;
pub const HALT_BYTES: usize = 32;
pub const STATUS_BYTES: usize = 37;
/// The largest outbound message.
pub const OUTBOUND_BYTES_MAX: usize = LIQUIDATION_BYTES_MAX;

/// `L` flag bits.
pub const FLAG_PARTIAL: u8 = 1 << 0;
pub const FLAG_BANKRUPT: u8 = 1 << 1;
pub const FLAG_ESCALATION: u8 = 1 << 2;
pub const FLAG_CONTINUED: u8 = 1 << 3;
const FLAGS_DEFINED: u8 = FLAG_PARTIAL | FLAG_BANKRUPT | FLAG_ESCALATION | FLAG_CONTINUED;

/// Where an output's triggering event came from (`src_stream`, `src_seq`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    pub stream: SourceStream,
    /// The triggering message's MoldUDP64 sequence; 0 for configuration.
    pub seq: u64,
}

impl Origin {
    pub const CONFIG: Origin = Origin {
        stream: SourceStream::Config,
        seq: 0,
    };
}

/// Converts an engine decimal to the wire's, saturating: a value beyond
/// ±(2⁶³−1) × 10⁻⁸ becomes that bound (−2⁶³ is invalid on the wire). The
/// flag says whether it saturated.
pub fn fixed8_saturating(value: Dec8) -> (Fixed8, bool) {
    match value.to_fixed8() {
        Some(fixed) => (fixed, false),
        None if value.0 < 0 => (Fixed8(-i64::MAX), true),
        None => (Fixed8(i64::MAX), true),
    }
}

/// The number of `L` messages a liquidation with `leg_count` legs takes
/// (at least 1: a liquidation without legs is one message).
pub fn liquidation_message_count(leg_count: usize) -> usize {
    leg_count.div_ceil(LEGS_PER_MESSAGE_MAX).max(1)
}

/// Encodes part `part` (0-based, < [`liquidation_message_count`]) of a
/// liquidation: the legs `[64·part, 64·part + 64)`, bit 3 set on every part
/// but the last. Returns the length and how many decimals saturated (see
/// [`fixed8_saturating`]).
///
/// # Errors
/// `part` out of range ([`EncodeError::Part`]) or `out` too short.
pub fn encode_liquidation_part(
    liquidation: &Liquidation,
    legs: &[Leg],
    origin: Origin,
    part: usize,
    out: &mut [u8],
) -> Result<(usize, u32), EncodeError> {
    let parts = liquidation_message_count(legs.len());
    if part >= parts {
        return Err(EncodeError::Part { part, parts });
    }
    let first = part * LEGS_PER_MESSAGE_MAX;
    let chunk = &legs[first.min(legs.len())..(first + LEGS_PER_MESSAGE_MAX).min(legs.len())];
    let len = LIQUIDATION_BASE_BYTES + chunk.len() * LEG_BYTES;
    if out.len() < len {
        return Err(EncodeError::BufferTooSmall { needed: len });
    }
    let l = liquidation;
    let mut flags = 0;
    for (set, bit) in [
        (l.partial, FLAG_PARTIAL),
        (l.bankrupt, FLAG_BANKRUPT),
        (l.escalation, FLAG_ESCALATION),
        (part + 1 < parts, FLAG_CONTINUED),
    ] {
        if set {
            flags |= bit;
        }
    }
    let mut saturated = 0;
    let mut fixed = |value: Dec8| {
        let (fixed, clipped) = fixed8_saturating(value);
        saturated += u32::from(clipped);
        fixed
    };
    let equity = fixed(l.equity);
    let maint_margin = fixed(l.maint_margin);
    let mut w = Writer::new(out, b'L');
    w.ts(l.ts);
    w.u64(l.seq.0);
    w.u8(origin.stream.code());
    w.u64(origin.seq);
    w.u64(l.account.0);
    w.fixed8(equity);
    w.fixed8(maint_margin);
    w.u8(flags);
    // A chunk holds at most 64 legs.
    w.u8(chunk.len() as u8);
    for leg in chunk {
        w.u32(leg.instrument.0);
        w.fixed8(fixed(leg.qty));
        w.fixed8(fixed(leg.limit_price));
    }
    debug_assert_eq!(w.len(), len);
    Ok((len, saturated))
}

/// Encodes a halt.
pub fn encode_halt(halt: &Halt, origin: Origin) -> [u8; HALT_BYTES] {
    let mut out = [0u8; HALT_BYTES];
    let mut w = Writer::new(&mut out, b'H');
    w.ts(halt.ts);
    w.u64(halt.seq.0);
    w.u8(origin.stream.code());
    w.u64(origin.seq);
    w.u32(halt.instrument.0);
    w.u8(halt.reason as u8);
    w.bool(halt.on);
    out
}

/// Encodes a status message.
pub fn encode_status(status: &Status) -> [u8; STATUS_BYTES] {
    let mut out = [0u8; STATUS_BYTES];
    let mut w = Writer::new(&mut out, b'S');
    w.ts(status.ts);
    w.u64(status.seq.0);
    w.u64(status.accounts);
    w.u64(status.liquidating);
    w.u32(status.halted);
    out
}

/// One leg as carried on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireLeg {
    pub instrument: InstrumentId,
    pub qty: Fixed8,
    pub limit_price: Fixed8,
}

impl WireLeg {
    pub fn to_leg(self) -> Leg {
        Leg {
            instrument: self.instrument,
            qty: self.qty.dec(),
            limit_price: self.limit_price.dec(),
        }
    }
}

/// A decoded `L` message, borrowing its legs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiquidationMessage<'a> {
    pub ts: UnixNanos,
    pub seq: Seq,
    pub origin: Origin,
    pub account: AccountId,
    pub equity: Fixed8,
    pub maint_margin: Fixed8,
    pub partial: bool,
    pub bankrupt: bool,
    pub escalation: bool,
    /// More `L` messages of this liquidation follow.
    pub continued: bool,
    legs: &'a [u8],
}

impl<'a> LiquidationMessage<'a> {
    pub fn leg_count(&self) -> usize {
        self.legs.len() / LEG_BYTES
    }

    /// The legs (validated at decode: no −2⁶³).
    pub fn legs(&self) -> impl Iterator<Item = WireLeg> + 'a {
        self.legs.chunks_exact(LEG_BYTES).map(|chunk| {
            let field = |at: usize| {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(&chunk[at..at + 8]);
                Fixed8(i64::from_be_bytes(bytes))
            };
            WireLeg {
                instrument: InstrumentId(u32::from_be_bytes([
                    chunk[0], chunk[1], chunk[2], chunk[3],
                ])),
                qty: field(4),
                limit_price: field(12),
            }
        })
    }

    /// The engine's liquidation (without legs).
    pub fn to_liquidation(&self) -> Liquidation {
        Liquidation {
            ts: self.ts,
            seq: self.seq,
            account: self.account,
            equity: self.equity.dec(),
            maint_margin: self.maint_margin.dec(),
            partial: self.partial,
            bankrupt: self.bankrupt,
            escalation: self.escalation,
        }
    }
}

/// A decoded `H` message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HaltMessage {
    pub halt: Halt,
    pub origin: Origin,
}

/// A decoded outbound message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboundMessage<'a> {
    Liquidation(LiquidationMessage<'a>),
    Halt(HaltMessage),
    Status(Status),
}

fn source_stream(code: u8) -> Result<SourceStream, MessageError> {
    SourceStream::from_code(code).ok_or(MessageError::SrcStream(code))
}

/// Decodes one outbound message (strict, like [`super::decode_event`]:
/// exact lengths, defined codes and flag bits, leg count ≤ 64, no −2⁶³).
///
/// # Errors
/// The [`MessageError`] class.
pub fn decode_outbound(message: &[u8]) -> Result<OutboundMessage<'_>, MessageError> {
    let kind = *message.first().ok_or(MessageError::Empty)?;
    let wrong_length = MessageError::WrongLength {
        kind,
        len: message.len(),
    };
    let mut r = Reader::new(message);
    match kind {
        b'L' => {
            if message.len() < LIQUIDATION_BASE_BYTES {
                return Err(wrong_length);
            }
            let ts = r.ts();
            let seq = Seq(r.u64());
            let stream = source_stream(r.u8())?;
            let src_seq = r.u64();
            let account = AccountId(r.u64());
            let equity = r.fixed8()?;
            let maint_margin = r.fixed8()?;
            let flags = r.u8();
            if flags & !FLAGS_DEFINED != 0 {
                return Err(MessageError::Flags(flags));
            }
            let leg_count = r.u8();
            if usize::from(leg_count) > LEGS_PER_MESSAGE_MAX {
                return Err(MessageError::LegCount(leg_count));
            }
            if message.len() != LIQUIDATION_BASE_BYTES + usize::from(leg_count) * LEG_BYTES {
                return Err(wrong_length);
            }
            let legs = r.rest();
            for chunk in legs.chunks_exact(LEG_BYTES) {
                for field in [&chunk[4..12], &chunk[12..20]] {
                    if field == i64::MIN.to_be_bytes() {
                        return Err(MessageError::Fixed8Min);
                    }
                }
            }
            Ok(OutboundMessage::Liquidation(LiquidationMessage {
                ts,
                seq,
                origin: Origin {
                    stream,
                    seq: src_seq,
                },
                account,
                equity,
                maint_margin,
                partial: flags & FLAG_PARTIAL != 0,
                bankrupt: flags & FLAG_BANKRUPT != 0,
                escalation: flags & FLAG_ESCALATION != 0,
                continued: flags & FLAG_CONTINUED != 0,
                legs,
            }))
        }
        b'H' => {
            if message.len() != HALT_BYTES {
                return Err(wrong_length);
            }
            let ts = r.ts();
            let seq = Seq(r.u64());
            let stream = source_stream(r.u8())?;
            let src_seq = r.u64();
            let instrument = InstrumentId(r.u32());
            let reason = match r.u8() {
                1 => HaltReason::Stale,
                2 => HaltReason::Jump,
                other => return Err(MessageError::HaltReason(other)),
            };
            let on = r.bool()?;
            Ok(OutboundMessage::Halt(HaltMessage {
                halt: Halt {
                    ts,
                    seq,
                    instrument,
                    reason,
                    on,
                },
                origin: Origin {
                    stream,
                    seq: src_seq,
                },
            }))
        }
        b'S' => {
            if message.len() != STATUS_BYTES {
                return Err(wrong_length);
            }
            Ok(OutboundMessage::Status(Status {
                ts: r.ts(),
                seq: Seq(r.u64()),
                accounts: r.u64(),
                liquidating: r.u64(),
                halted: r.u32(),
            }))
        }
        other => Err(MessageError::UnknownType(other)),
    }
}
