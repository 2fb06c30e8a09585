//! MARGIN.md §2: the figures of one position, one collateral balance, one
//! account. Rounding happens exactly where the rules say, nowhere else.

use crate::arith::{mul16_round8, mul3_round8, mul_round8};
use crate::state::{InstrumentState, TierRule};
use crate::types::Dec8;

/// The §2 terms of one position at the current mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PositionFigures {
    /// `V = round8(q × M × m)`, signed.
    pub value: Dec8,
    /// `N = |V|`.
    pub notional: Dec8,
    /// 1-based tier of `N`.
    pub tier: usize,
    /// `MMraw = round8(N × mmr_t) − cumM_t`.
    pub mm_raw: Dec8,
    /// `IMraw = round8(N × imr_t) − cumI_t`.
    pub im_raw: Dec8,
    /// `MM = round8(MMraw × f)`.
    pub mm: Dec8,
    /// `IM = round8(IMraw × f)`.
    pub im: Dec8,
}

const BOUNDED: &str = "bounded by engine::limits";

/// Values a position of `qty` in an instrument that has a mark.
#[inline]
pub(crate) fn position_figures(instrument: &InstrumentState, qty: Dec8) -> PositionFigures {
    let value = mul16_round8(qty, instrument.mark_mult16).expect(BOUNDED);
    let notional = Dec8(value.0.abs());
    let t = instrument.tier_of(notional);
    let rule: &TierRule = &instrument.tiers()[t];
    let mm_raw = Dec8(mul_round8(notional, rule.mmr).expect(BOUNDED).0 - rule.cum_mm.0);
    let im_raw = Dec8(mul_round8(notional, rule.imr).expect(BOUNDED).0 - rule.cum_im.0);
    let f = instrument.vol_factor;
    let (mm, im) = if f == Dec8::ONE {
        (mm_raw, im_raw)
    } else {
        (
            mul_round8(mm_raw, f).expect(BOUNDED),
            mul_round8(im_raw, f).expect(BOUNDED),
        )
    };
    PositionFigures {
        value,
        notional,
        tier: t + 1,
        mm_raw,
        im_raw,
        mm,
        im,
    }
}

/// `c_a` (haircut) and the unhaircut `round8(b × P)` of a balance.
#[inline]
pub(crate) fn collateral_terms(
    amount: Dec8,
    price: Dec8,
    weight: Dec8,
    liability_weight: Dec8,
) -> (Dec8, Dec8) {
    let w = if amount.0 >= 0 {
        weight
    } else {
        liability_weight
    };
    let haircut = mul3_round8(amount, price, w).expect(BOUNDED);
    let plain = mul_round8(amount, price).expect(BOUNDED);
    (haircut, plain)
}
