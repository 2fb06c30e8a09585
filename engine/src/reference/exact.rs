//! Exact arithmetic for the reference model: every value is a
//! [`BigRational`], and the rounding points of MARGIN.md (`round8`,
//! `round16`, `floor2`) are applied to the exact value, never to an
//! approximation of it.

use num_bigint::BigInt;
use num_integer::Integer;
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};

use crate::types::{Dec8, Fixed8, Tier};

/// An exact rational number.
pub(crate) type Rat = BigRational;

pub(crate) fn pow10(places: u32) -> BigInt {
    BigInt::from(10u32).pow(places)
}

pub(crate) fn integer(n: i128) -> Rat {
    Rat::from_integer(BigInt::from(n))
}

/// `units × 10⁻⁸` as an exact rational.
pub(crate) fn from_units(units: BigInt) -> Rat {
    Rat::new(units, pow10(8))
}

pub(crate) fn dec(d: Dec8) -> Rat {
    from_units(BigInt::from(d.0))
}

pub(crate) fn fixed(f: Fixed8) -> Rat {
    dec(f.dec())
}

/// `x` rounded to `places` decimal places, ties to the even neighbour.
pub(crate) fn round_half_even(x: &Rat, places: u32) -> Rat {
    let scale = pow10(places);
    let scaled = x * Rat::from_integer(scale.clone());
    let below = scaled.floor();
    let fraction = &scaled - &below;
    let half = Rat::new(BigInt::one(), BigInt::from(2));
    let mut n = below.to_integer();
    if fraction > half || (fraction == half && n.is_odd()) {
        n += 1;
    }
    Rat::new(n, scale)
}

/// MARGIN.md `round8`: 8 places, half to even.
pub(crate) fn round8(x: &Rat) -> Rat {
    round_half_even(x, 8)
}

/// The variance's rounding: 16 places, half to even.
pub(crate) fn round16(x: &Rat) -> Rat {
    round_half_even(x, 16)
}

/// MARGIN.md `floor2`: truncation toward −∞ at 2 places.
pub(crate) fn floor2(x: &Rat) -> Rat {
    let hundred = Rat::from_integer(BigInt::from(100));
    Rat::new((x * &hundred).floor().to_integer(), BigInt::from(100))
}

/// `x` as an engine decimal, if it is a multiple of 10⁻⁸ within i128.
pub(crate) fn to_dec8(x: &Rat) -> Option<Dec8> {
    let scaled = x * Rat::from_integer(pow10(8));
    if !scaled.is_integer() {
        return None;
    }
    scaled.to_integer().to_i128().map(Dec8)
}

/// The number of 10⁻⁸ units in `x` (which must be a multiple of 10⁻⁸).
pub(crate) fn units_of(x: &Rat) -> BigInt {
    let scaled = x * Rat::from_integer(pow10(8));
    assert!(scaled.is_integer(), "not a multiple of 10⁻⁸: {x}");
    scaled.to_integer()
}

/// Floor of the square root of a non-negative integer, checked.
pub(crate) fn isqrt(n: &BigInt) -> BigInt {
    assert!(!n.is_negative(), "square root of a negative number");
    let root = n.sqrt();
    let next = &root + BigInt::one();
    assert!(
        &root * &root <= *n && &next * &next > *n,
        "isqrt({n}) = {root} is wrong"
    );
    root
}

/// MARGIN.md §5: `f = min(F_max, max(1, floor2(sqrt(var) / σ_ref)))`.
///
/// With `var = V × 10⁻¹⁶` and `σ_ref = S × 10⁻⁸` (integers V ≥ 0, S > 0),
/// `sqrt(var) / σ_ref = sqrt(V) / S = sqrt(10⁴ × V) / (100 × S)`. `floor2`
/// of a value depends only on the floor of 100 × it, and
/// `floor(sqrt(n) / S) = floor(isqrt(n) / S)` for integers, so
/// `floor2(sqrt(var) / σ_ref) = floor2(isqrt(10⁴ × V) / (100 × S))`, a
/// rational.
pub(crate) fn vol_factor(variance: &Rat, vol_ref: Fixed8, vol_max_factor: Fixed8) -> Rat {
    let v = {
        let scaled = variance * Rat::from_integer(pow10(16));
        assert!(scaled.is_integer(), "variance has more than 16 places");
        scaled.to_integer()
    };
    let s = BigInt::from(vol_ref.0);
    assert!(s.is_positive(), "vol_ref must be positive");
    let root = isqrt(&(v * BigInt::from(10_000)));
    let floored = floor2(&Rat::new(root, s * BigInt::from(100)));
    let at_least_one = floored.max(Rat::one());
    at_least_one.min(fixed(vol_max_factor))
}

/// Index (0-based) of the tier of notional `n`: the last tier whose floor
/// is ≤ `n`. The first floor is 0 and `n` ≥ 0, so there always is one.
pub(crate) fn tier_of(tiers: &[Tier], n: &Rat) -> usize {
    let mut found = 0;
    for (t, tier) in tiers.iter().enumerate() {
        if fixed(tier.notional_floor) <= *n {
            found = t;
        }
    }
    found
}

/// The maintenance amount `cum_t = Σ_{k=2..t} floor_k × (rate_k − rate_{k−1})`
/// of tier index `t` (0-based), each term rounded with `round8` when
/// `rounded` (MARGIN.md §2) and exact otherwise (§4's `cumIx`).
pub(crate) fn cum_amount(
    tiers: &[Tier],
    t: usize,
    rate: fn(&Tier) -> Fixed8,
    rounded: bool,
) -> Rat {
    let mut sum = Rat::zero();
    for k in 1..=t {
        let term =
            fixed(tiers[k].notional_floor) * (fixed(rate(&tiers[k])) - fixed(rate(&tiers[k - 1])));
        sum += if rounded { round8(&term) } else { term };
    }
    sum
}

pub(crate) fn mmr(tier: &Tier) -> Fixed8 {
    tier.mmr
}

pub(crate) fn imr(tier: &Tier) -> Fixed8 {
    tier.imr
}
