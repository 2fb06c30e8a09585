//! Inbound messages (PROTOCOL.md §3) ⇄ [`engine::Event`].

use engine::{
    AccountId, AssetDef, AssetId, BalanceChange, BalanceKind, EngineParams, Event, Fill, Funding,
    IndexPrice, InstrumentDef, InstrumentId, MarkPrice, RiskParams, Tier, Tiers, TIERS_MAX,
};

use super::codec::{Reader, Writer};
use super::{EncodeError, MessageError};

/// Exact sizes of the fixed-size inbound messages.
pub const MARK_BYTES: usize = 21;
pub const INDEX_BYTES: usize = 21;
pub const FILL_BYTES: usize = 53;
pub const BALANCE_BYTES: usize = 38;
pub const FUNDING_BYTES: usize = 21;
pub const ASSET_BYTES: usize = 45;
/// An instrument definition without its tiers.
pub const INSTRUMENT_BASE_BYTES: usize = 46;
pub const TIER_BYTES: usize = 24;
pub const RISK_BYTES: usize = 53;
pub const PARAMS_BYTES: usize = 26;
/// The largest inbound message (an instrument with 16 tiers).
pub const INBOUND_BYTES_MAX: usize = INSTRUMENT_BASE_BYTES + TIERS_MAX * TIER_BYTES;

/// Decodes one inbound message (type byte first) into an event.
///
/// Strict: exact length for the type, defined codes only, Fixed8 never
/// −2⁶³, symbols printable and not empty. Values are not range-checked:
/// that is the engine's job (a price of 0 is a well-formed event the
/// engine rejects).
///
/// # Errors
/// The [`MessageError`] class (checked in order: type, length, then fields
/// in wire order).
pub fn decode_event(message: &[u8]) -> Result<Event, MessageError> {
    let kind = *message.first().ok_or(MessageError::Empty)?;
    let expect = |len: usize| {
        if message.len() == len {
            Ok(())
        } else {
            Err(MessageError::WrongLength {
                kind,
                len: message.len(),
            })
        }
    };
    let mut r = Reader::new(message);
    let event = match kind {
        b'M' => {
            expect(MARK_BYTES)?;
            Event::Mark(MarkPrice {
                ts: r.ts(),
                instrument: InstrumentId(r.u32()),
                price: r.fixed8()?,
            })
        }
        b'X' => {
            expect(INDEX_BYTES)?;
            Event::Index(IndexPrice {
                ts: r.ts(),
                asset: AssetId(r.u32()),
                price: r.fixed8()?,
            })
        }
        b'F' => {
            expect(FILL_BYTES)?;
            Event::Fill(Fill {
                ts: r.ts(),
                account: AccountId(r.u64()),
                instrument: InstrumentId(r.u32()),
                qty: r.fixed8()?,
                price: r.fixed8()?,
                fee: r.fixed8()?,
                fill_id: r.u64(),
            })
        }
        b'B' => {
            expect(BALANCE_BYTES)?;
            Event::Balance(BalanceChange {
                ts: r.ts(),
                account: AccountId(r.u64()),
                asset: AssetId(r.u32()),
                amount: r.fixed8()?,
                kind: {
                    let code = r.u8();
                    BalanceKind::from_code(code).ok_or(MessageError::BalanceKind(code))?
                },
                ref_id: r.u64(),
            })
        }
        b'N' => {
            expect(FUNDING_BYTES)?;
            Event::Funding(Funding {
                ts: r.ts(),
                instrument: InstrumentId(r.u32()),
                rate: r.fixed8()?,
            })
        }
        b'A' => {
            expect(ASSET_BYTES)?;
            Event::AssetDef(AssetDef {
                ts: r.ts(),
                asset: AssetId(r.u32()),
                symbol: r.symbol()?,
                asset_weight: r.fixed8()?,
                liability_weight: r.fixed8()?,
            })
        }
        b'I' => decode_instrument(message, kind)?,
        b'G' => {
            expect(RISK_BYTES)?;
            Event::Risk(RiskParams {
                ts: r.ts(),
                instrument: InstrumentId(r.u32()),
                vol_lambda: r.fixed8()?,
                vol_ref: r.fixed8()?,
                vol_max_factor: r.fixed8()?,
                max_staleness_ns: r.u64(),
                max_jump: r.fixed8()?,
            })
        }
        b'P' => {
            expect(PARAMS_BYTES)?;
            Event::Params(EngineParams {
                ts: r.ts(),
                partial_liquidation: r.bool()?,
                liquidation_cooldown_ns: r.u64(),
                warn_ratio: r.fixed8()?,
            })
        }
        other => return Err(MessageError::UnknownType(other)),
    };
    Ok(event)
}

/// `I`: the length depends on the tier count, so the count is read first
/// (a message too short to hold it is a wrong length; a count outside
/// 1..=16 is its own class; then the length must match the count).
fn decode_instrument(message: &[u8], kind: u8) -> Result<Event, MessageError> {
    let wrong_length = MessageError::WrongLength {
        kind,
        len: message.len(),
    };
    if message.len() < INSTRUMENT_BASE_BYTES {
        return Err(wrong_length);
    }
    let tier_count = message[INSTRUMENT_BASE_BYTES - 1];
    if tier_count == 0 || usize::from(tier_count) > TIERS_MAX {
        return Err(MessageError::TierCount(tier_count));
    }
    if message.len() != INSTRUMENT_BASE_BYTES + usize::from(tier_count) * TIER_BYTES {
        return Err(wrong_length);
    }
    let mut r = Reader::new(message);
    let ts = r.ts();
    let instrument = InstrumentId(r.u32());
    let symbol = r.symbol()?;
    let multiplier = r.fixed8()?;
    let liquidation_fee = r.fixed8()?;
    let _ = r.u8();
    let mut tiers = Tiers {
        count: tier_count,
        tiers: [Tier::default(); TIERS_MAX],
    };
    for tier in &mut tiers.tiers[..usize::from(tier_count)] {
        *tier = Tier {
            notional_floor: r.fixed8()?,
            mmr: r.fixed8()?,
            imr: r.fixed8()?,
        };
    }
    Ok(Event::InstrumentDef(InstrumentDef {
        ts,
        instrument,
        symbol,
        multiplier,
        liquidation_fee,
        tiers,
    }))
}

/// The encoded size of an event.
///
/// # Errors
/// [`EncodeError::TierCount`]: an instrument whose tier count is outside
/// 1..=16 (a JSONL file may list any number; the wire cannot carry it).
pub fn event_len(event: &Event) -> Result<usize, EncodeError> {
    Ok(match event {
        Event::Mark(_) => MARK_BYTES,
        Event::Index(_) => INDEX_BYTES,
        Event::Fill(_) => FILL_BYTES,
        Event::Balance(_) => BALANCE_BYTES,
        Event::Funding(_) => FUNDING_BYTES,
        Event::AssetDef(_) => ASSET_BYTES,
        Event::InstrumentDef(def) => {
            let count = def.tiers.count;
            if count == 0 || usize::from(count) > TIERS_MAX {
                return Err(EncodeError::TierCount(count));
            }
            INSTRUMENT_BASE_BYTES + usize::from(count) * TIER_BYTES
        }
        Event::Risk(_) => RISK_BYTES,
        Event::Params(_) => PARAMS_BYTES,
    })
}

/// The type byte of an event's message.
pub fn event_type(event: &Event) -> u8 {
    match event {
        Event::Mark(_) => b'M',
        Event::Index(_) => b'X',
        Event::Fill(_) => b'F',
        Event::Balance(_) => b'B',
        Event::Funding(_) => b'N',
        Event::AssetDef(_) => b'A',
        Event::InstrumentDef(_) => b'I',
        Event::Risk(_) => b'G',
        Event::Params(_) => b'P',
    }
}

/// Encodes an event as its inbound message into `out`; returns the length.
///
/// Fields are written as they are (an event holding `Fixed8(i64::MIN)` or
/// a bad symbol encodes to a message the decoder refuses: that is how tests
/// build malformed messages).
///
/// # Errors
/// A tier count outside 1..=16, or `out` shorter than the message.
pub fn encode_event(event: &Event, out: &mut [u8]) -> Result<usize, EncodeError> {
    let len = event_len(event)?;
    if out.len() < len {
        return Err(EncodeError::BufferTooSmall { needed: len });
    }
    let mut w = Writer::new(out, event_type(event));
    match event {
        Event::Mark(e) => {
            w.ts(e.ts);
            w.u32(e.instrument.0);
            w.fixed8(e.price);
        }
        Event::Index(e) => {
            w.ts(e.ts);
            w.u32(e.asset.0);
            w.fixed8(e.price);
        }
        Event::Fill(e) => {
            w.ts(e.ts);
            w.u64(e.account.0);
            w.u32(e.instrument.0);
            w.fixed8(e.qty);
            w.fixed8(e.price);
            w.fixed8(e.fee);
            w.u64(e.fill_id);
        }
        Event::Balance(e) => {
            w.ts(e.ts);
            w.u64(e.account.0);
            w.u32(e.asset.0);
            w.fixed8(e.amount);
            w.u8(e.kind as u8);
            w.u64(e.ref_id);
        }
        Event::Funding(e) => {
            w.ts(e.ts);
            w.u32(e.instrument.0);
            w.fixed8(e.rate);
        }
        Event::AssetDef(e) => {
            w.ts(e.ts);
            w.u32(e.asset.0);
            w.symbol(&e.symbol);
            w.fixed8(e.asset_weight);
            w.fixed8(e.liability_weight);
        }
        Event::InstrumentDef(e) => {
            w.ts(e.ts);
            w.u32(e.instrument.0);
            w.symbol(&e.symbol);
            w.fixed8(e.multiplier);
            w.fixed8(e.liquidation_fee);
            w.u8(e.tiers.count);
            for tier in e.tiers.as_slice() {
                w.fixed8(tier.notional_floor);
                w.fixed8(tier.mmr);
                w.fixed8(tier.imr);
            }
        }
        Event::Risk(e) => {
            w.ts(e.ts);
            w.u32(e.instrument.0);
            w.fixed8(e.vol_lambda);
            w.fixed8(e.vol_ref);
            w.fixed8(e.vol_max_factor);
            w.u64(e.max_staleness_ns);
            w.fixed8(e.max_jump);
        }
        Event::Params(e) => {
            w.ts(e.ts);
            w.bool(e.partial_liquidation);
            w.u64(e.liquidation_cooldown_ns);
            w.fixed8(e.warn_ratio);
        }
    }
    debug_assert_eq!(w.len(), len);
    Ok(len)
}
