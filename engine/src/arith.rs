//! Exact decimal arithmetic at MARGIN.md's rounding points.
//!
//! Every value is an integer mantissa at a power-of-ten scale. Products are
//! formed exactly — in i128 when they fit, else in 256- or 512-bit integers
//! (`bnum`, fixed width, no allocation) — and rounded once, half to even,
//! where the rules say so. Nothing here rounds silently: a result that does
//! not fit its type is `None`.

use bnum::types::{I256, I512};

use crate::types::Dec8;

/// 10ⁿ as i128, for n ≤ 38.
pub const fn pow10(n: u32) -> i128 {
    10i128.pow(n)
}

const E8: i128 = pow10(8);
const E16: i128 = pow10(16);

/// `n / d` rounded half to even; `d > 0`. In i64 when both fit (one
/// hardware division instead of a 128-bit one: the usual case for prices,
/// returns and per-mark variance terms).
#[inline]
pub fn div_round_half_even(n: i128, d: i128) -> i128 {
    debug_assert!(d > 0);
    if let (Ok(n), Ok(d)) = (i64::try_from(n), i64::try_from(d)) {
        return i128::from(div_round_half_even_64(n, d));
    }
    div_round_half_even_128(n, d)
}

#[inline]
fn div_round_half_even_64(n: i64, d: i64) -> i64 {
    let q = n / d;
    let r = n % d;
    // |r| < d ≤ 2⁶³ − 1: twice it fits a u64.
    let twice = r.unsigned_abs() * 2;
    let d = d.unsigned_abs();
    if twice > d || (twice == d && q % 2 != 0) {
        q + n.signum()
    } else {
        q
    }
}

fn div_round_half_even_128(n: i128, d: i128) -> i128 {
    let q = n / d;
    let r = n % d;
    let twice = r.unsigned_abs() * 2;
    let d = d.unsigned_abs();
    if twice > d || (twice == d && q % 2 != 0) {
        q + n.signum()
    } else {
        q
    }
}

/// `⌊n / d⌋` toward −∞; `d > 0`.
#[inline]
pub fn div_floor(n: i128, d: i128) -> i128 {
    n.div_euclid(d)
}

/// `⌈n / d⌉`; `d > 0`.
#[inline]
pub fn div_ceil(n: i128, d: i128) -> i128 {
    -(-n).div_euclid(d)
}

macro_rules! wide_div_round {
    ($name:ident, $wide:ty) => {
        /// `n / d` rounded half to even in wide integers; `d > 0`.
        pub fn $name(n: $wide, d: $wide) -> $wide {
            let zero = <$wide>::ZERO;
            debug_assert!(d > zero);
            let q = n / d;
            let r = n % d;
            let twice = r.unsigned_abs() * bnum::BUint::from(2u8);
            let d = d.unsigned_abs();
            let one = <$wide>::ONE;
            let odd = q % <$wide>::TWO != zero;
            if twice > d || (twice == d && odd) {
                if n < zero {
                    q - one
                } else {
                    q + one
                }
            } else {
                q
            }
        }
    };
}
wide_div_round!(div_round_half_even_256, I256);
wide_div_round!(div_round_half_even_512, I512);

/// The i128 value of a wide integer, if it fits.
#[inline]
pub fn narrow_256(x: I256) -> Option<i128> {
    i128::try_from(x).ok()
}

/// The i128 value of a wide integer, if it fits.
#[inline]
pub fn narrow_512(x: I512) -> Option<i128> {
    i128::try_from(x).ok()
}

/// `round8(a × b)` for two 8-place decimals.
#[inline]
pub fn mul_round8(a: Dec8, b: Dec8) -> Option<Dec8> {
    match a.0.checked_mul(b.0) {
        Some(p) => Some(Dec8(div_round_half_even(p, E8))),
        None => {
            let p = I256::from(a.0) * I256::from(b.0);
            narrow_256(div_round_half_even_256(p, I256::from(E8))).map(Dec8)
        }
    }
}

/// `round8(a × k)` where `k` is a 16-place mantissa (e.g. `M × m`).
#[inline]
pub fn mul16_round8(a: Dec8, k16: i128) -> Option<Dec8> {
    match a.0.checked_mul(k16) {
        Some(p) => Some(Dec8(div_round_half_even(p, E16))),
        None => {
            let p = I256::from(a.0) * I256::from(k16);
            narrow_256(div_round_half_even_256(p, I256::from(E16))).map(Dec8)
        }
    }
}

/// `round8(a × b × c)` for three 8-place decimals.
#[inline]
pub fn mul3_round8(a: Dec8, b: Dec8, c: Dec8) -> Option<Dec8> {
    if let Some(k16) = b.0.checked_mul(c.0) {
        return mul16_round8(a, k16);
    }
    let p = I256::from(a.0) * I256::from(b.0) * I256::from(c.0);
    narrow_256(div_round_half_even_256(p, I256::from(E16))).map(Dec8)
}

/// `round8(n / d)` for two 8-place decimals; `None` if `d` is zero or the
/// quotient does not fit.
pub fn div_round8(n: Dec8, d: Dec8) -> Option<Dec8> {
    if d.0 == 0 {
        return None;
    }
    let (n, d) = if d.0 < 0 { (-n.0, -d.0) } else { (n.0, d.0) };
    match n.checked_mul(E8) {
        Some(scaled) => Some(Dec8(div_round_half_even(scaled, d))),
        None => {
            let scaled = I256::from(n) * I256::from(E8);
            narrow_256(div_round_half_even_256(scaled, I256::from(d))).map(Dec8)
        }
    }
}

/// Integer square root, `⌊√x⌋`, of a non-negative 256-bit integer.
pub fn isqrt_256(x: I256) -> I256 {
    debug_assert!(x >= I256::ZERO);
    if let Ok(small) = u128::try_from(x) {
        return I256::from(num_integer::Roots::sqrt(&small));
    }
    // Newton's method from above: x_{k+1} = (x_k + x / x_k) / 2 decreases
    // monotonically to ⌊√x⌋ when started at or above it.
    let bits = 256 - x.leading_zeros();
    let mut guess = I256::ONE << bits.div_ceil(2);
    loop {
        let next = (guess + x / guess) >> 1u32;
        if next >= guess {
            return guess;
        }
        guess = next;
    }
}

/// `E − x`… helpers for the plan live in `plan.rs`; this converts a Dec8 at
/// scale 10⁻⁸ to a 512-bit integer at scale 10⁻⁽⁸⁺ᵏ⁾.
#[inline]
pub fn widen_512(x: i128, extra_places: u32) -> I512 {
    I512::from(x) * pow10_512(extra_places)
}

/// 10ⁿ as a 512-bit integer (n ≤ 150).
pub fn pow10_512(n: u32) -> I512 {
    I512::from(10u8).pow(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(text: &str) -> Dec8 {
        Dec8::parse(text).unwrap()
    }

    proptest! {
        #[test]
        fn the_i64_division_equals_the_i128_one(
            n in prop_oneof![any::<i64>(), -1_000i64..1_000, Just(i64::MIN), Just(i64::MAX)],
            d in prop_oneof![1i64..=i64::MAX, 1i64..1_000, Just(100_000_000i64), Just(i64::MAX)],
            tie in any::<bool>(),
        ) {
            // Ties too: n an odd multiple of d / 2.
            let n = if tie && d % 2 == 0 { (n / d).saturating_mul(d).saturating_add(d / 2) } else { n };
            prop_assert_eq!(
                i128::from(div_round_half_even_64(n, d)),
                div_round_half_even_128(i128::from(n), i128::from(d))
            );
        }
    }

    #[test]
    fn half_even_at_ties() {
        assert_eq!(div_round_half_even(25, 10), 2);
        assert_eq!(div_round_half_even(35, 10), 4);
        assert_eq!(div_round_half_even(-25, 10), -2);
        assert_eq!(div_round_half_even(-35, 10), -4);
        assert_eq!(div_round_half_even(26, 10), 3);
        assert_eq!(div_round_half_even(-26, 10), -3);
        assert_eq!(div_round_half_even(24, 10), 2);
        // 0.000000005 × 1 → tie at 10⁻⁸ rounds to even 0; 0.000000015 → 0.00000002.
        assert_eq!(mul_round8(d("0.00000001"), d("0.5")), Some(Dec8(0)));
        assert_eq!(mul_round8(d("0.00000003"), d("0.5")), Some(Dec8(2)));
    }

    #[test]
    fn products_beyond_28_digits_are_exact() {
        // 29 significant digits: rust_decimal would round this product.
        let q = d("0.12345678");
        let m = d("65000.12345678");
        let exact = mul3_round8(q, m, Dec8::ONE).unwrap();
        // 0.12345678 × 65000.12345678 = 8024.7059415765279684; check against wide math.
        let wide = I256::from(q.0) * I256::from(m.0) * I256::from(Dec8::ONE.0);
        let expected = div_round_half_even_256(wide, I256::from(E16));
        assert_eq!(I256::from(exact.0), expected);
        assert_eq!(exact.to_string(), "8024.70594158");
    }

    #[test]
    fn wide_fallback_matches_when_i128_overflows() {
        let big = Dec8(i64::MAX as i128);
        let v = mul3_round8(big, big, d("10000")).unwrap();
        let wide = I256::from(big.0) * I256::from(big.0) * I256::from(d("10000").0);
        assert_eq!(
            I256::from(v.0),
            div_round_half_even_256(wide, I256::from(E16))
        );
    }

    #[test]
    fn isqrt_is_floor_sqrt() {
        for x in [0u128, 1, 2, 3, 4, 15, 16, 17, u64::MAX as u128, u128::MAX] {
            let r = isqrt_256(I256::from(x));
            assert!(r * r <= I256::from(x));
            let r1 = r + I256::ONE;
            assert!(r1 * r1 > I256::from(x));
        }
        let huge = I256::from(u128::MAX) * I256::from(u128::MAX >> 2);
        let r = isqrt_256(huge);
        assert!(r * r <= huge && (r + I256::ONE) * (r + I256::ONE) > huge);
    }

    proptest! {
        #[test]
        fn narrow_and_wide_rounding_agree(n in any::<i128>(), d in 1i128..i128::MAX) {
            let wide = div_round_half_even_256(I256::from(n), I256::from(d));
            prop_assert_eq!(I256::from(div_round_half_even(n, d)), wide);
        }

        #[test]
        fn mul3_matches_wide(a in any::<i64>(), b in any::<i64>(), c in 1i64..=1_000_000_000_000i64) {
            let (a, b, c) = (Dec8(a as i128), Dec8(b as i128), Dec8(c as i128));
            let wide = I256::from(a.0) * I256::from(b.0) * I256::from(c.0);
            let expected = narrow_256(div_round_half_even_256(wide, I256::from(E16)));
            prop_assert_eq!(mul3_round8(a, b, c).map(|x| x.0), expected);
        }

        #[test]
        fn isqrt_floor(x in any::<u128>(), y in any::<u64>()) {
            let v = I256::from(x) * I256::from(y);
            let r = isqrt_256(v);
            prop_assert!(r * r <= v);
            prop_assert!((r + I256::ONE) * (r + I256::ONE) > v);
        }
    }
}
