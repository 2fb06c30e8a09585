//! Read-only views of the engine's state for tools (`liqd replay inspect`,
//! `whatif`, the isolated-margin model): every MARGIN.md §2 term of one
//! account, and an instrument's market state. Nothing here is on the hot
//! path; these allocate.

use crate::types::{AccountId, AssetId, Dec8, InstrumentId, Symbol, UnixNanos};
use crate::valuation::PositionFigures;

/// One non-zero balance with its §2 collateral terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BalanceDetail {
    pub asset: AssetId,
    /// The asset's symbol (blank for the quote asset).
    pub symbol: Symbol,
    pub amount: Dec8,
    /// `P_a`, `None` before the asset's first index price.
    pub price: Option<Dec8>,
    /// The weight applied: `w_a` when the balance is positive, `v_a` else.
    pub weight: Dec8,
    /// `c_a = round8(b × P × weight)`, when priced.
    pub collateral: Option<Dec8>,
    /// `round8(b × P)` (no haircut), when priced.
    pub plain_value: Option<Dec8>,
}

/// One open position with its §2 terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PositionDetail {
    pub instrument: InstrumentId,
    pub symbol: Symbol,
    pub qty: Dec8,
    pub market: InstrumentMarket,
    /// `V`, `N`, tier, `MMraw`, `IMraw`, `MM`, `IM`, when the instrument has
    /// a mark.
    pub figures: Option<PositionFigures>,
}

/// An instrument's market state: the accepted mark, the definition's
/// multiplier and fee, the vol factor and the halts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstrumentMarket {
    /// The last accepted mark (`None` before the first).
    pub mark: Option<Dec8>,
    pub multiplier: Dec8,
    pub liquidation_fee: Dec8,
    /// `f_i` (1 without RiskParams).
    pub vol_factor: Dec8,
    pub halted_stale: bool,
    pub halted_jump: bool,
}

impl InstrumentMarket {
    pub fn halted(&self) -> bool {
        self.halted_stale || self.halted_jump
    }
}

/// Every §2 input and term of one account, as the fast engine holds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountDetail {
    pub account: AccountId,
    /// The quote balance first (always, even when 0), then the non-zero
    /// non-quote balances by asset id.
    pub balances: Vec<BalanceDetail>,
    /// Open positions by instrument id.
    pub positions: Vec<PositionDetail>,
    /// `now` at the liquidation that started the cooldown, while it lasts
    /// (an expired cooldown is ended by the next accepted event).
    pub cooldown_since: Option<UnixNanos>,
}
