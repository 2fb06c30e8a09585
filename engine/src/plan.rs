//! MARGIN.md §4's partial-liquidation plan, in exact arithmetic.
//!
//! All quantities are integers at scale 10⁻⁴⁰ (512-bit): `E` has 8 places,
//! a fee `x·M·m·φ` 32, an initial-margin term `f·(|q|·M·m·imr − cumIx)` 40.
//! Nothing is rounded, so the test `E − fees − x·M·m·φ ≥ IMx(q')` is exact.
//!
//! For one leg, with the other legs fixed, the slack
//! `D(x) = E − fees − x·K·φ − IMx(q')` (`K = M·m`) is continuous and strictly
//! increasing in `x`: closing `x` lowers the leg's IM term at rate
//! `f·K·imr_t ≥ K·imr_1 > K·φ`. Within one tier `t` of the remaining
//! notional it is linear, `D(x) = C_t + x·S_t`. So instead of searching, the
//! solver walks the tier segments in increasing `x` (the remaining notional
//! falls through the tiers), finds the first segment whose right end has
//! `D ≥ 0`, and takes `x = ⌈−C_t / S_t⌉` clamped to that segment.

use bnum::types::I512;

use crate::arith::{pow10_512, widen_512};
use crate::state::InstrumentState;
use crate::types::{Dec8, InstrumentId};

/// One position as the plan sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PlanLeg {
    /// Instrument slot.
    pub instrument: u32,
    pub instrument_id: InstrumentId,
    /// Current signed quantity.
    pub qty: Dec8,
    /// Its rounded maintenance margin (orders the legs).
    pub mm: Dec8,
    /// Quantity to close (units of 10⁻⁸, ≥ 0) once planned.
    pub close: i128,
}

fn big(x: i128) -> I512 {
    I512::from(x)
}

fn ceil_div(n: I512, d: I512) -> I512 {
    let q = n / d;
    if n % d != I512::ZERO && n > I512::ZERO {
        q + I512::ONE
    } else {
        q
    }
}

/// Exact tier (0-based) of the exact notional `units × K` (scale 10⁻²⁴).
fn tier_exact(instrument: &InstrumentState, notional24: I512, e16: I512) -> usize {
    let tiers = instrument.tiers();
    let mut t = 0;
    while t + 1 < tiers.len() && big(tiers[t + 1].floor.0) * e16 <= notional24 {
        t += 1;
    }
    t
}

/// The exact IM term `f·(|q|·K·imr_t − cumIx_t)` of `units` (scale 10⁻⁴⁰).
fn im_term(instrument: &InstrumentState, units: i128, e16: I512) -> I512 {
    if units == 0 {
        return I512::ZERO;
    }
    let notional24 = big(units) * big(instrument.mark_mult16);
    let rule = instrument.tiers()[tier_exact(instrument, notional24, e16)];
    big(instrument.vol_factor.0) * (notional24 * big(rule.imr.0) - big(rule.cum_imx16) * e16)
}

/// The fee `x·K·φ` of closing `units` (scale 10⁻⁴⁰).
fn fee(instrument: &InstrumentState, units: i128, e8: I512) -> I512 {
    big(units) * big(instrument.mark_mult16) * big(instrument.fee.0) * e8
}

/// Plans the legs (already in plan order) of an account with equity `E`:
/// sets each reached leg's `close`. Returns whether a position is left open.
pub(crate) fn plan(
    legs: &mut [PlanLeg],
    instruments: &[InstrumentState],
    equity: Dec8,
    partial_allowed: bool,
) -> bool {
    if !partial_allowed {
        for leg in legs.iter_mut() {
            leg.close = leg.qty.0.abs();
        }
        return false;
    }
    let e8 = pow10_512(8);
    let e16 = pow10_512(16);
    let equity40 = widen_512(equity.0, 32);
    let mut fees40 = I512::ZERO;
    let mut im_total: I512 = legs
        .iter()
        .map(|leg| im_term(&instruments[leg.instrument as usize], leg.qty.0.abs(), e16))
        .fold(I512::ZERO, |acc, term| acc + term);
    let mut left_open = false;
    for (n, leg) in legs.iter_mut().enumerate() {
        let units = leg.qty.0.abs();
        if n > 0 && equity40 - fees40 >= im_total {
            left_open = true;
            leg.close = 0;
            continue;
        }
        let instrument = &instruments[leg.instrument as usize];
        let others = im_total - im_term(instrument, units, e16);
        let close = solve_leg(instrument, units, equity40 - fees40 - others, e8, e16);
        leg.close = close;
        fees40 += fee(instrument, close, e8);
        im_total = others + im_term(instrument, units - close, e16);
        left_open |= close < units;
    }
    left_open
}

/// The smallest `x` in `[1, units]` with `D(x) = base − fee(x) − term(units − x) ≥ 0`,
/// or `units` if none.
fn solve_leg(instrument: &InstrumentState, units: i128, base: I512, e8: I512, e16: I512) -> i128 {
    let k16 = big(instrument.mark_mult16);
    let f = big(instrument.vol_factor.0);
    let phi = big(instrument.fee.0);
    let units_big = big(units);
    let slack = |x: i128| base - fee(instrument, x, e8) - im_term(instrument, units - x, e16);
    let tiers = instrument.tiers();
    let top = tier_exact(instrument, units_big * k16, e16);
    let mut prev_hi = I512::ZERO;
    let mut answer = units;
    for t in (0..=top).rev() {
        // Largest x whose remaining notional (units − x)·K stays ≥ floor_t.
        let x_hi = if t == 0 {
            units_big
        } else {
            units_big - ceil_div(big(tiers[t].floor.0) * e16, k16)
        };
        let lo = prev_hi + I512::ONE;
        let hi = x_hi.min(units_big);
        if hi < lo {
            prev_hi = prev_hi.max(hi);
            continue;
        }
        let hi_small = i128::try_from(hi).expect("hi ≤ units");
        if slack(hi_small) >= I512::ZERO {
            let rule = tiers[t];
            let c = base - f * (units_big * k16 * big(rule.imr.0) - big(rule.cum_imx16) * e16);
            let s = k16 * (f * big(rule.imr.0) - phi * e8);
            let x = ceil_div(-c, s).max(lo).min(hi);
            answer = i128::try_from(x).expect("x ≤ units");
            break;
        }
        prev_hi = hi;
    }
    debug_assert!(
        answer == units || slack(answer) >= I512::ZERO,
        "the plan's x must pass the test"
    );
    debug_assert!(
        answer == 1 || slack(answer - 1) < I512::ZERO,
        "the plan's x must be the smallest that passes"
    );
    answer
}
