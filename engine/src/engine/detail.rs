//! The fast engine's read-only accessors for tools (see [`crate::inspect`]).

use super::{Engine, NIL};
use crate::inspect::{AccountDetail, BalanceDetail, InstrumentMarket, PositionDetail};
use crate::limits::QTY_MANTISSA_MAX;
use crate::state::{AssetState, InstrumentState};
use crate::types::{AccountId, Dec8, InstrumentId, UnixNanos};
use crate::valuation::{collateral_terms, position_figures, PositionFigures};

impl Engine {
    /// Every §2 term of an account, or `None` if it does not exist.
    pub fn account_detail(&self, account: AccountId) -> Option<AccountDetail> {
        let slot = *self.account_slots.get(&account.0)?;
        let state = &self.accounts[slot as usize];
        // Slot 0 is the quote asset (created with the engine).
        let mut balances = vec![balance_detail(&self.assets[0], state.quote)];
        let mut b = state.first_balance;
        while b != NIL {
            let balance = self.balances.get(b);
            balances.push(balance_detail(
                &self.assets[balance.asset as usize],
                balance.amount,
            ));
            b = balance.next;
        }
        balances[1..].sort_by_key(|d| d.asset);
        let mut positions = Vec::new();
        let mut p = state.first_position;
        while p != NIL {
            let position = self.positions.get(p);
            let instrument = &self.instruments[position.instrument as usize];
            positions.push(PositionDetail {
                instrument: instrument.id,
                symbol: instrument.symbol,
                qty: position.qty,
                market: market(instrument),
                figures: instrument
                    .has_mark
                    .then(|| position_figures(instrument, position.qty)),
            });
            p = position.next;
        }
        positions.sort_by_key(|d| d.instrument);
        Some(AccountDetail {
            account,
            balances,
            positions,
            cooldown_since: state.cooldown_since.map(UnixNanos),
        })
    }

    /// An instrument's market state, or `None` if it is not defined.
    pub fn instrument_market(&self, instrument: InstrumentId) -> Option<InstrumentMarket> {
        let slot = *self.instrument_slots.get(&instrument.0)?;
        Some(market(&self.instruments[slot as usize]))
    }

    /// The §2 terms a position of `qty` in `instrument` would have now, with
    /// the engine's own arithmetic; `None` if the instrument is not defined
    /// or has no mark, or `qty` is beyond the position limit.
    pub fn position_terms(&self, instrument: InstrumentId, qty: Dec8) -> Option<PositionFigures> {
        let slot = *self.instrument_slots.get(&instrument.0)?;
        let instrument = &self.instruments[slot as usize];
        let within = qty.0.unsigned_abs() <= QTY_MANTISSA_MAX.unsigned_abs();
        (instrument.has_mark && within).then(|| position_figures(instrument, qty))
    }
}

fn market(instrument: &InstrumentState) -> InstrumentMarket {
    InstrumentMarket {
        mark: instrument.has_mark.then_some(instrument.mark),
        multiplier: instrument.multiplier,
        liquidation_fee: instrument.fee,
        vol_factor: instrument.vol_factor,
        halted_stale: instrument.halted_stale,
        halted_jump: instrument.halted_jump,
    }
}

fn balance_detail(asset: &AssetState, amount: Dec8) -> BalanceDetail {
    let weight = if amount.is_negative() {
        asset.liability_weight
    } else {
        asset.weight
    };
    let terms = asset
        .price
        .map(|price| collateral_terms(amount, price, asset.weight, asset.liability_weight));
    BalanceDetail {
        asset: asset.id,
        symbol: asset.symbol,
        amount,
        price: asset.price,
        weight,
        collateral: terms.map(|t| t.0),
        plain_value: terms.map(|t| t.1),
    }
}
