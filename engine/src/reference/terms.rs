//! Read-only per-term accessors of the reference model, so tools' figures
//! can be checked against it term by term (MARGIN.md §2).

use num_traits::Signed;

use super::exact::{dec, fixed, imr, mmr, round8, tier_of};
use super::{figure, ReferenceEngine};
use crate::types::{AccountId, AssetId, Dec8, InstrumentId};
use crate::valuation::PositionFigures;

impl ReferenceEngine {
    /// The §2 terms of an account's position, or `None` if the account or
    /// the position does not exist or the instrument has no mark.
    pub fn position_terms(
        &self,
        account: AccountId,
        instrument: InstrumentId,
    ) -> Option<PositionFigures> {
        let q = *self.accounts.get(&account)?.positions.get(&instrument)?;
        let state = &self.instruments[&instrument];
        let value = state.position_value(q, state.mark?);
        let notional = value.abs();
        let factor = state.factor();
        let mm_raw = state.raw_requirement(&notional, mmr);
        let im_raw = state.raw_requirement(&notional, imr);
        Some(PositionFigures {
            value: figure(&value),
            notional: figure(&notional),
            tier: tier_of(&state.tiers, &notional) + 1,
            mm: figure(&round8(&(&mm_raw * &factor))),
            im: figure(&round8(&(&im_raw * &factor))),
            mm_raw: figure(&mm_raw),
            im_raw: figure(&im_raw),
        })
    }

    /// An instrument's vol factor `f_i` (1 without RiskParams), or `None`
    /// if it is not defined.
    pub fn vol_factor(&self, instrument: InstrumentId) -> Option<Dec8> {
        Some(figure(&self.instruments.get(&instrument)?.factor()))
    }

    /// `c_a` (haircut) of an account's balance in `asset`, or `None` if
    /// the account does not exist or the asset has no price.
    pub fn collateral_term(&self, account: AccountId, asset: AssetId) -> Option<Dec8> {
        let b = dec(self.accounts.get(&account)?.balance(asset));
        let state = self.assets.get(&asset)?;
        let weight = if b.is_negative() {
            state.liability_weight
        } else {
            state.asset_weight
        };
        Some(figure(&round8(&(&b * fixed(state.price?) * fixed(weight)))))
    }
}
