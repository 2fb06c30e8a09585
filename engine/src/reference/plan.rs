//! The partial-liquidation plan of MARGIN.md §4, in exact arithmetic.
//!
//! For each leg the smallest closing quantity is found by a binary search
//! over the integer number of 10⁻⁸ units, using the exact (monotone) test
//! `E − fees − x·M·m·φ ≥ IMx(q')` directly — no closed form.

use num_bigint::BigInt;
use num_traits::{One, Signed, Zero};

use super::exact::{cum_amount, fixed, from_units, imr, tier_of, units_of, Rat};
use crate::types::{InstrumentId, Tier};

/// One open position as the plan sees it.
#[derive(Clone, Debug)]
pub(crate) struct PlanLeg {
    pub instrument: InstrumentId,
    /// Current signed quantity (≠ 0).
    pub q: Rat,
    pub mark: Rat,
    pub multiplier: Rat,
    pub fee_rate: Rat,
    pub factor: Rat,
    pub tiers: Vec<Tier>,
}

impl PlanLeg {
    /// The exact initial requirement of this instrument at quantity `q`:
    /// `f × (|q|·M·m × imr_t − cumIx_t)`, `t` the tier of the exact notional.
    fn initial_exact(&self, q: &Rat) -> Rat {
        let notional = q.abs() * &self.mark * &self.multiplier;
        let t = tier_of(&self.tiers, &notional);
        let raw = &notional * fixed(self.tiers[t].imr) - cum_amount(&self.tiers, t, imr, false);
        &self.factor * raw
    }

    /// The fee of closing `x` units at mark: `x·M·m·φ`, exact.
    fn close_fee(&self, x: &Rat) -> Rat {
        x * &self.mark * &self.multiplier * &self.fee_rate
    }
}

/// `IMx(q')`: the sum of the legs' exact initial requirements.
fn initial_exact_total(legs: &[PlanLeg], quantities: &[Rat]) -> Rat {
    legs.iter()
        .zip(quantities)
        .map(|(leg, q)| leg.initial_exact(q))
        .fold(Rat::zero(), |sum, x| sum + x)
}

/// The outcome of a plan: the legs touched, in plan order, each with the
/// quantity closed (`x` > 0, unsigned), and whether a position is left open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub closes: Vec<(InstrumentId, Rat)>,
    pub partial: bool,
}

/// Runs §4's plan over `legs` (already in plan order: `MM_i` descending,
/// ties by instrument id) from the decision-time equity `equity`.
pub(crate) fn plan(equity: &Rat, legs: &[PlanLeg]) -> Plan {
    let mut quantities: Vec<Rat> = legs.iter().map(|leg| leg.q.clone()).collect();
    let mut fees = Rat::zero();
    let mut closes = Vec::new();
    for (j, leg) in legs.iter().enumerate() {
        if j > 0 && equity - &fees >= initial_exact_total(legs, &quantities) {
            break;
        }
        let x = smallest_close(equity, &fees, legs, &quantities, j);
        fees += leg.close_fee(&x);
        let sign = Rat::from_integer(BigInt::from(if leg.q.is_negative() { -1 } else { 1 }));
        quantities[j] = &quantities[j] - sign * &x;
        closes.push((leg.instrument, x));
    }
    let partial = quantities.iter().any(|q| !q.is_zero());
    Plan { closes, partial }
}

/// The smallest `x` in (0, |q_j|], a multiple of 10⁻⁸, that passes the
/// test for leg `j`; `|q_j|` if none does.
fn smallest_close(equity: &Rat, fees: &Rat, legs: &[PlanLeg], quantities: &[Rat], j: usize) -> Rat {
    let leg = &legs[j];
    let q = &quantities[j];
    let passes = |units: &BigInt| -> bool {
        let x = from_units(units.clone());
        let mut trial = quantities.to_vec();
        trial[j] = if q.is_negative() { q + &x } else { q - &x };
        equity - fees - leg.close_fee(&x) >= initial_exact_total(legs, &trial)
    };
    let all = units_of(&q.abs());
    if !passes(&all) {
        return q.abs();
    }
    // Invariant: passes(high); every passing count is ≥ low.
    let mut low = BigInt::one();
    let mut high = all;
    while low < high {
        let mid: BigInt = (&low + &high) / 2;
        if passes(&mid) {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    from_units(high)
}
