//! Every bound the engine enforces, in one place.
//!
//! Capacities ([`Limits`]) are configured per deployment and preallocated.
//! Value bounds (the constants) are fixed: they are chosen so that no figure
//! of MARGIN.md §2 can overflow the engine's i128 decimals, which the const
//! assertions at the bottom check. An event that would carry the state past
//! one of them is rejected (counted, no state change) — the engine never
//! panics and never wraps.

/// Largest price (mark, index, fill): the Fixed8 maximum.
pub const PRICE_MANTISSA_MAX: i128 = i64::MAX as i128;
/// Largest |position| and largest |non-quote balance|: the Fixed8 maximum,
/// so every state value can be sent on the wire.
pub const QTY_MANTISSA_MAX: i128 = i64::MAX as i128;
/// Largest contract multiplier: 10 000.
pub const MULTIPLIER_MANTISSA_MAX: i128 = 10_000 * 100_000_000;
/// Largest liability weight: 100.
pub const LIABILITY_WEIGHT_MANTISSA_MAX: i128 = 100 * 100_000_000;
/// Largest volatility factor cap (`vol_max_factor`) and `warn_ratio`: 100.
pub const FACTOR_MANTISSA_MAX: i128 = 100 * 100_000_000;
/// Largest |funding rate| per payment: 1 (100 %).
pub const FUNDING_RATE_MANTISSA_MAX: i128 = 100_000_000;
/// Largest |quote balance|: 10²⁸ quote units.
pub const QUOTE_BALANCE_MANTISSA_MAX: i128 = 10i128.pow(36);
/// Hard ceiling on positions and on non-quote balances per account.
pub const PER_ACCOUNT_MAX: u32 = 64;

/// Configured capacities; storage for all of them is allocated up front.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub accounts_max: u32,
    pub instruments_max: u32,
    /// Collateral assets, the quote asset included.
    pub assets_max: u32,
    /// Open positions one account may hold (≤ [`PER_ACCOUNT_MAX`]).
    pub positions_per_account_max: u32,
    /// Non-quote balances one account may hold (≤ [`PER_ACCOUNT_MAX`]).
    pub balances_per_account_max: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            accounts_max: 1 << 20,
            instruments_max: 1024,
            assets_max: 256,
            positions_per_account_max: 32,
            balances_per_account_max: 16,
        }
    }
}

impl Limits {
    /// # Errors
    /// Names the limit that is out of its range.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.accounts_max == 0 || self.accounts_max > u32::MAX - 1 {
            return Err("accounts_max must be in 1..2^32-1");
        }
        if self.instruments_max == 0 || self.instruments_max > 1 << 20 {
            return Err("instruments_max must be in 1..=2^20");
        }
        if self.assets_max == 0 || self.assets_max > 1 << 20 {
            return Err("assets_max must be in 1..=2^20");
        }
        if self.positions_per_account_max == 0 || self.positions_per_account_max > PER_ACCOUNT_MAX {
            return Err("positions_per_account_max must be in 1..=64");
        }
        if self.balances_per_account_max > PER_ACCOUNT_MAX {
            return Err("balances_per_account_max must be in 0..=64");
        }
        Ok(())
    }
}

const fn bits(x: i128) -> u32 {
    128 - x.leading_zeros()
}

// |V| = |q|·M·m / 10¹⁶ (≥ 2⁵³) in mantissa terms. 64 position values, each
// scaled by a factor of at most 100 (7 bits), plus the quote balance and 64
// haircut balances stay below 2¹²⁷: no sum of §2 can overflow an i128.
const POSITION_VALUE_BITS: u32 =
    bits(QTY_MANTISSA_MAX) + bits(PRICE_MANTISSA_MAX) + bits(MULTIPLIER_MANTISSA_MAX) - 53;
const COLLATERAL_BITS: u32 =
    bits(QTY_MANTISSA_MAX) + bits(PRICE_MANTISSA_MAX) + bits(LIABILITY_WEIGHT_MANTISSA_MAX) - 53;
const _: () = assert!(POSITION_VALUE_BITS + 6 + 7 <= 126);
const _: () = assert!(COLLATERAL_BITS + 6 <= 120);
const _: () = assert!(bits(QUOTE_BALANCE_MANTISSA_MAX) <= 120);
const _: () = assert!(bits(FACTOR_MANTISSA_MAX) - 27 <= 7);
