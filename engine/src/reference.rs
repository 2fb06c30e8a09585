//! The reference model: MARGIN.md v1.1 and the team's rejection rules
//! written as plainly as possible, as the test oracle for the fast engine.
//!
//! Everything here favours obvious correctness over speed:
//! - state lives in `BTreeMap`s keyed by id, every value that is not a
//!   rounded state figure is an exact rational ([`exact::Rat`]);
//! - after every accepted event every account is revalued from scratch and
//!   evaluated, in ascending id order;
//! - the liquidation plan is found by a binary search over the closing
//!   quantity with the exact §4 test, not by a closed form.
//!
//! One event goes: check (a rejection changes nothing) → advance `now` →
//! apply → update halts → evaluate every account (cooldown endings,
//! escalations, liquidations) → emit halts, then liquidations.

mod exact;
mod plan;
mod terms;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use num_traits::{Signed, Zero};

use self::exact::{
    cum_amount, dec, fixed, imr, integer, mmr, round16, round8, tier_of, to_dec8, vol_factor, Rat,
};
use self::plan::{plan, PlanLeg};
use crate::limits::{
    FACTOR_MANTISSA_MAX, FUNDING_RATE_MANTISSA_MAX, LIABILITY_WEIGHT_MANTISSA_MAX,
    MULTIPLIER_MANTISSA_MAX, PRICE_MANTISSA_MAX, QTY_MANTISSA_MAX, QUOTE_BALANCE_MANTISSA_MAX,
};
use crate::types::{
    AccountId, AssetDef, AssetId, BalanceChange, Dec8, EngineParams, Event, Fill, Fixed8, Funding,
    Halt, HaltReason, IndexPrice, InstrumentDef, InstrumentId, Leg, Liquidation, MarkPrice,
    RiskParams, Seq, Sink, Tier, UnixNanos, QUOTE_ASSET,
};
use crate::{Figures, Limits, MarginEngine, Params, Reject, Stats};

/// A collateral asset. The quote asset is stored like any other, with
/// price 1 and both weights 1.
#[derive(Clone, Debug)]
struct Asset {
    asset_weight: Fixed8,
    liability_weight: Fixed8,
    /// The last IndexPrice, if any.
    price: Option<Fixed8>,
}

/// A mark price with the `ts` of the event that carried it.
#[derive(Clone, Copy, Debug)]
struct Mark {
    price: Fixed8,
    ts: u64,
}

#[derive(Clone, Debug)]
struct Instrument {
    multiplier: Fixed8,
    liquidation_fee: Fixed8,
    tiers: Vec<Tier>,
    risk: Option<RiskParams>,
    /// The last accepted (applied) mark.
    mark: Option<Mark>,
    /// A mark held by the jump guard; `Some` exactly while the jump halt is on.
    held: Option<Mark>,
    /// The EWMA variance, 16 places.
    variance: Rat,
    stale_halt: bool,
    jump_halt: bool,
}

impl Instrument {
    fn halted(&self) -> bool {
        self.stale_halt || self.jump_halt
    }

    /// §5: the volatility factor (1 without RiskParams).
    fn factor(&self) -> Rat {
        match &self.risk {
            None => integer(1),
            Some(risk) => vol_factor(&self.variance, risk.vol_ref, risk.vol_max_factor),
        }
    }

    /// §2: `V = round8(q × M × m)` at the accepted mark.
    fn position_value(&self, q: Dec8, mark: Mark) -> Rat {
        round8(&(dec(q) * fixed(mark.price) * fixed(self.multiplier)))
    }

    /// §2: `round8(N × rate_t) − cum_t`, `t` the tier of `N`.
    fn raw_requirement(&self, notional: &Rat, rate: fn(&Tier) -> Fixed8) -> Rat {
        let t = tier_of(&self.tiers, notional);
        round8(&(notional * fixed(rate(&self.tiers[t])))) - cum_amount(&self.tiers, t, rate, true)
    }
}

#[derive(Clone, Debug, Default)]
struct Account {
    /// Non-zero balances only (a balance reaching 0 is removed).
    balances: BTreeMap<AssetId, Dec8>,
    /// Non-zero positions only (a position reaching 0 is removed).
    positions: BTreeMap<InstrumentId, Dec8>,
    /// `now` at the last liquidation, while the cooldown lasts.
    cooldown_since: Option<u64>,
}

impl Account {
    fn balance(&self, asset: AssetId) -> Dec8 {
        self.balances.get(&asset).copied().unwrap_or(Dec8::ZERO)
    }

    fn position(&self, instrument: InstrumentId) -> Dec8 {
        self.positions
            .get(&instrument)
            .copied()
            .unwrap_or(Dec8::ZERO)
    }

    fn set_balance(&mut self, asset: AssetId, amount: Dec8) {
        if amount.is_zero() {
            self.balances.remove(&asset);
        } else {
            self.balances.insert(asset, amount);
        }
    }

    fn set_position(&mut self, instrument: InstrumentId, q: Dec8) {
        if q.is_zero() {
            self.positions.remove(&instrument);
        } else {
            self.positions.insert(instrument, q);
        }
    }

    fn non_quote_balances(&self) -> usize {
        self.balances.keys().filter(|a| **a != QUOTE_ASSET).count()
    }
}

/// An account's §2 figures, exact, plus each position's `MM_i`.
#[derive(Clone, Debug)]
struct Valuation {
    equity: Rat,
    value: Rat,
    maint: Rat,
    initial: Rat,
    position_maint: BTreeMap<InstrumentId, Rat>,
}

/// The reference model of MARGIN.md v1.1.
#[derive(Clone, Debug)]
pub struct ReferenceEngine {
    limits: Limits,
    params: Params,
    /// The largest `ts` of an accepted event; starts at 0.
    now: u64,
    assets: BTreeMap<AssetId, Asset>,
    instruments: BTreeMap<InstrumentId, Instrument>,
    accounts: BTreeMap<AccountId, Account>,
    stats: Stats,
}

fn out_of_range(what: &'static str) -> Reject {
    Reject::OutOfRange(what)
}

fn invalid(what: &'static str) -> Reject {
    Reject::InvalidDefinition(what)
}

/// |x| ≤ the bound (a mantissa of 10⁻⁸ units).
fn within_mantissa(x: &Rat, bound: i128) -> bool {
    x.abs() <= dec(Dec8(bound))
}

/// `|new − reference| ≤ max_jump × reference`, exact.
fn within_jump(new: Fixed8, reference: Fixed8, max_jump: Fixed8) -> bool {
    (fixed(new) - fixed(reference)).abs() <= fixed(max_jump) * fixed(reference)
}

fn usize_of(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Converts a figure that must be a multiple of 10⁻⁸ within i128.
fn figure(x: &Rat) -> Dec8 {
    to_dec8(x).unwrap_or_else(|| panic!("figure {x} is not a Dec8"))
}

impl ReferenceEngine {
    pub fn new(limits: Limits) -> ReferenceEngine {
        let mut assets = BTreeMap::new();
        assets.insert(
            QUOTE_ASSET,
            Asset {
                asset_weight: Fixed8::ONE,
                liability_weight: Fixed8::ONE,
                price: Some(Fixed8::ONE),
            },
        );
        ReferenceEngine {
            limits,
            params: Params::default(),
            now: 0,
            assets,
            instruments: BTreeMap::new(),
            accounts: BTreeMap::new(),
            stats: Stats::default(),
        }
    }

    // ----- rejection rules (the brief's order) -----

    fn check(&self, event: &Event) -> Result<(), Reject> {
        match event {
            Event::AssetDef(e) => self.check_asset_def(e),
            Event::InstrumentDef(e) => self.check_instrument_def(e),
            Event::Params(e) => check_params(e),
            Event::Risk(e) => self.check_risk(e),
            Event::Index(e) => self.check_index(e),
            Event::Mark(e) => self.check_mark(e),
            Event::Fill(e) => self.check_fill(e),
            Event::Balance(e) => self.check_balance(e),
            Event::Funding(e) => self.check_funding(e),
        }
    }

    fn check_asset_def(&self, e: &AssetDef) -> Result<(), Reject> {
        if e.asset == QUOTE_ASSET {
            if e.asset_weight != Fixed8::ONE || e.liability_weight != Fixed8::ONE {
                return Err(invalid("the quote asset's weights are 1"));
            }
            return Ok(());
        }
        if e.asset_weight.0 <= 0 || e.asset_weight > Fixed8::ONE {
            return Err(out_of_range("asset_weight must be in (0, 1]"));
        }
        if e.liability_weight < Fixed8::ONE
            || i128::from(e.liability_weight.0) > LIABILITY_WEIGHT_MANTISSA_MAX
        {
            return Err(out_of_range("liability_weight must be in [1, 100]"));
        }
        if !self.assets.contains_key(&e.asset)
            && self.assets.len() >= usize_of(self.limits.assets_max)
        {
            return Err(Reject::Capacity("assets_max"));
        }
        Ok(())
    }

    fn check_instrument_def(&self, e: &InstrumentDef) -> Result<(), Reject> {
        let count = usize::from(e.tiers.count);
        if !(1..=16).contains(&count) {
            return Err(invalid("1..16 tiers"));
        }
        let tiers = e.tiers.as_slice();
        if tiers[0].notional_floor != Fixed8::ZERO {
            return Err(invalid("the first floor must be 0"));
        }
        for pair in tiers.windows(2) {
            if pair[1].notional_floor <= pair[0].notional_floor {
                return Err(invalid("floors must be strictly increasing"));
            }
            if pair[1].mmr < pair[0].mmr || pair[1].imr < pair[0].imr {
                return Err(invalid("mmr and imr must be non-decreasing"));
            }
        }
        for tier in tiers {
            if !(tier.mmr < tier.imr && tier.imr <= Fixed8::ONE) {
                return Err(invalid("mmr < imr ≤ 1"));
            }
        }
        if e.liquidation_fee.0 < 0 || e.liquidation_fee >= tiers[0].mmr {
            return Err(invalid("0 ≤ liquidation_fee < mmr_1"));
        }
        if e.multiplier.0 <= 0 {
            return Err(invalid("multiplier > 0"));
        }
        if i128::from(e.multiplier.0) > MULTIPLIER_MANTISSA_MAX {
            return Err(out_of_range("multiplier ≤ 10000"));
        }
        if !self.instruments.contains_key(&e.instrument)
            && self.instruments.len() >= usize_of(self.limits.instruments_max)
        {
            return Err(Reject::Capacity("instruments_max"));
        }
        Ok(())
    }

    fn check_risk(&self, e: &RiskParams) -> Result<(), Reject> {
        if !self.instruments.contains_key(&e.instrument) {
            return Err(Reject::UnknownInstrument(e.instrument));
        }
        if e.vol_lambda.0 <= 0 || e.vol_lambda >= Fixed8::ONE {
            return Err(out_of_range("0 < vol_lambda < 1"));
        }
        if e.vol_ref.0 <= 0 {
            return Err(out_of_range("vol_ref > 0"));
        }
        if e.vol_max_factor < Fixed8::ONE || i128::from(e.vol_max_factor.0) > FACTOR_MANTISSA_MAX {
            return Err(out_of_range("1 ≤ vol_max_factor ≤ 100"));
        }
        if e.max_jump.0 < 0 {
            return Err(out_of_range("max_jump ≥ 0"));
        }
        Ok(())
    }

    fn check_index(&self, e: &IndexPrice) -> Result<(), Reject> {
        if e.asset == QUOTE_ASSET {
            return Err(Reject::QuoteIndex);
        }
        if !self.assets.contains_key(&e.asset) {
            return Err(Reject::UnknownAsset(e.asset));
        }
        if e.price.0 <= 0 {
            return Err(out_of_range("price > 0"));
        }
        Ok(())
    }

    fn check_mark(&self, e: &MarkPrice) -> Result<(), Reject> {
        if !self.instruments.contains_key(&e.instrument) {
            return Err(Reject::UnknownInstrument(e.instrument));
        }
        if e.price.0 <= 0 {
            return Err(out_of_range("price > 0"));
        }
        Ok(())
    }

    fn check_fill(&self, e: &Fill) -> Result<(), Reject> {
        let Some(instrument) = self.instruments.get(&e.instrument) else {
            return Err(Reject::UnknownInstrument(e.instrument));
        };
        if e.qty.0 == 0 {
            return Err(out_of_range("qty ≠ 0"));
        }
        if e.price.0 <= 0 {
            return Err(out_of_range("price > 0"));
        }
        let account = self.accounts.get(&e.account);
        if account.is_none() && self.accounts.len() >= usize_of(self.limits.accounts_max) {
            return Err(Reject::Capacity("accounts_max"));
        }
        let empty = Account::default();
        let account = account.unwrap_or(&empty);
        let q = account.position(e.instrument);
        if q.is_zero() && account.positions.len() >= usize_of(self.limits.positions_per_account_max)
        {
            return Err(Reject::Capacity("positions_per_account_max"));
        }
        let q_new = dec(q) + fixed(e.qty);
        if !within_mantissa(&q_new, QTY_MANTISSA_MAX) {
            return Err(Reject::AccountLimit(e.account, "position"));
        }
        if !within_mantissa(
            &quote_after_fill(account, instrument, e),
            QUOTE_BALANCE_MANTISSA_MAX,
        ) {
            return Err(Reject::AccountLimit(e.account, "quote balance"));
        }
        Ok(())
    }

    fn check_balance(&self, e: &BalanceChange) -> Result<(), Reject> {
        if !self.assets.contains_key(&e.asset) {
            return Err(Reject::UnknownAsset(e.asset));
        }
        let account = self.accounts.get(&e.account);
        if account.is_none() && self.accounts.len() >= usize_of(self.limits.accounts_max) {
            return Err(Reject::Capacity("accounts_max"));
        }
        let empty = Account::default();
        let account = account.unwrap_or(&empty);
        let old = account.balance(e.asset);
        if e.asset != QUOTE_ASSET
            && old.is_zero()
            && e.amount.0 != 0
            && account.non_quote_balances() >= usize_of(self.limits.balances_per_account_max)
        {
            return Err(Reject::Capacity("balances_per_account_max"));
        }
        let new = dec(old) + fixed(e.amount);
        let bound = if e.asset == QUOTE_ASSET {
            QUOTE_BALANCE_MANTISSA_MAX
        } else {
            QTY_MANTISSA_MAX
        };
        if !within_mantissa(&new, bound) {
            return Err(Reject::AccountLimit(e.account, "balance"));
        }
        Ok(())
    }

    fn check_funding(&self, e: &Funding) -> Result<(), Reject> {
        let Some(instrument) = self.instruments.get(&e.instrument) else {
            return Err(Reject::UnknownInstrument(e.instrument));
        };
        let Some(mark) = instrument.mark else {
            return Err(Reject::NoMark(e.instrument));
        };
        if i128::from(e.rate.0).abs() > FUNDING_RATE_MANTISSA_MAX {
            return Err(out_of_range("|rate| ≤ 1"));
        }
        for (id, account) in &self.accounts {
            let q = account.position(e.instrument);
            if q.is_zero() {
                continue;
            }
            let new =
                dec(account.balance(QUOTE_ASSET)) - funding_payment(instrument, q, mark, e.rate);
            if !within_mantissa(&new, QUOTE_BALANCE_MANTISSA_MAX) {
                return Err(Reject::AccountLimit(*id, "quote balance"));
            }
        }
        Ok(())
    }

    // ----- applying an accepted event (MARGIN.md §3) -----

    fn apply_event(&mut self, event: &Event) {
        match event {
            Event::AssetDef(e) => {
                if e.asset != QUOTE_ASSET {
                    let asset = self.assets.entry(e.asset).or_insert(Asset {
                        asset_weight: e.asset_weight,
                        liability_weight: e.liability_weight,
                        price: None,
                    });
                    asset.asset_weight = e.asset_weight;
                    asset.liability_weight = e.liability_weight;
                }
            }
            Event::InstrumentDef(e) => {
                let tiers = e.tiers.as_slice().to_vec();
                match self.instruments.get_mut(&e.instrument) {
                    Some(instrument) => {
                        instrument.multiplier = e.multiplier;
                        instrument.liquidation_fee = e.liquidation_fee;
                        instrument.tiers = tiers;
                    }
                    None => {
                        self.instruments.insert(
                            e.instrument,
                            Instrument {
                                multiplier: e.multiplier,
                                liquidation_fee: e.liquidation_fee,
                                tiers,
                                risk: None,
                                mark: None,
                                held: None,
                                variance: Rat::zero(),
                                stale_halt: false,
                                jump_halt: false,
                            },
                        );
                    }
                }
            }
            Event::Params(e) => {
                self.params = Params {
                    partial_liquidation: e.partial_liquidation,
                    liquidation_cooldown_ns: e.liquidation_cooldown_ns,
                    warn_ratio: e.warn_ratio,
                };
            }
            Event::Risk(e) => {
                let instrument = self.instrument_mut(e.instrument);
                instrument.risk = Some(*e);
                if e.max_jump.0 == 0 {
                    instrument.held = None;
                    instrument.jump_halt = false;
                }
            }
            Event::Index(e) => {
                if let Some(asset) = self.assets.get_mut(&e.asset) {
                    asset.price = Some(e.price);
                }
            }
            Event::Mark(e) => self.on_mark(e),
            Event::Fill(e) => {
                let instrument = &self.instruments[&e.instrument];
                let account = self.accounts.entry(e.account).or_default();
                let b0 = figure(&quote_after_fill(account, instrument, e));
                let q = Dec8(account.position(e.instrument).0 + i128::from(e.qty.0));
                account.set_balance(QUOTE_ASSET, b0);
                account.set_position(e.instrument, q);
            }
            Event::Balance(e) => {
                let account = self.accounts.entry(e.account).or_default();
                let b = Dec8(account.balance(e.asset).0 + i128::from(e.amount.0));
                account.set_balance(e.asset, b);
            }
            Event::Funding(e) => {
                let instrument = &self.instruments[&e.instrument];
                let Some(mark) = instrument.mark else {
                    return;
                };
                for account in self.accounts.values_mut() {
                    let q = account.position(e.instrument);
                    if q.is_zero() {
                        continue;
                    }
                    let b0 = dec(account.balance(QUOTE_ASSET))
                        - funding_payment(instrument, q, mark, e.rate);
                    account.set_balance(QUOTE_ASSET, figure(&b0));
                }
            }
        }
    }

    fn instrument_mut(&mut self, id: InstrumentId) -> &mut Instrument {
        self.instruments
            .get_mut(&id)
            .unwrap_or_else(|| panic!("instrument {id} was checked"))
    }

    /// §6 jump guard, then §5 variance via [`apply_mark`].
    fn on_mark(&mut self, e: &MarkPrice) {
        let instrument = self.instrument_mut(e.instrument);
        let new = Mark {
            price: e.price,
            ts: e.ts.0,
        };
        let max_jump = instrument.risk.map_or(Fixed8::ZERO, |r| r.max_jump);
        let Some(current) = instrument.mark else {
            // The first mark is never held.
            apply_mark(instrument, new);
            return;
        };
        if max_jump.0 == 0 {
            apply_mark(instrument, new);
            return;
        }
        match instrument.held {
            Some(held) => {
                if within_jump(new.price, held.price, max_jump) {
                    // Confirmation: the held mark, then this one.
                    instrument.held = None;
                    instrument.jump_halt = false;
                    apply_mark(instrument, held);
                    apply_mark(instrument, new);
                } else if within_jump(new.price, current.price, max_jump) {
                    // The held mark is discarded.
                    instrument.held = None;
                    instrument.jump_halt = false;
                    apply_mark(instrument, new);
                } else {
                    instrument.held = Some(new);
                }
            }
            None => {
                if within_jump(new.price, current.price, max_jump) {
                    apply_mark(instrument, new);
                } else {
                    instrument.held = Some(new);
                    instrument.jump_halt = true;
                }
            }
        }
    }

    // ----- halts (MARGIN.md §6) -----

    fn halt_states(&self) -> BTreeMap<InstrumentId, (bool, bool)> {
        self.instruments
            .iter()
            .map(|(id, i)| (*id, (i.stale_halt, i.jump_halt)))
            .collect()
    }

    fn update_stale_halts(&mut self) {
        let now = self.now;
        for instrument in self.instruments.values_mut() {
            instrument.stale_halt = match (instrument.risk, instrument.mark) {
                (Some(risk), Some(mark)) if risk.max_staleness_ns > 0 => {
                    now.saturating_sub(mark.ts) > risk.max_staleness_ns
                }
                _ => false,
            };
        }
    }

    /// Halt transitions since `before`: ascending instrument id, stale
    /// before jump for one instrument.
    fn halt_changes(
        &self,
        before: &BTreeMap<InstrumentId, (bool, bool)>,
        ts: UnixNanos,
        seq: Seq,
    ) -> Vec<Halt> {
        let mut halts = Vec::new();
        for (id, instrument) in &self.instruments {
            let (stale_before, jump_before) = before.get(id).copied().unwrap_or((false, false));
            let changes = [
                (HaltReason::Stale, stale_before, instrument.stale_halt),
                (HaltReason::Jump, jump_before, instrument.jump_halt),
            ];
            for (reason, was, is) in changes {
                if was != is {
                    halts.push(Halt {
                        ts,
                        seq,
                        instrument: *id,
                        reason,
                        on: is,
                    });
                }
            }
        }
        halts
    }

    // ----- valuation (MARGIN.md §2) -----

    /// The account's figures, or `None` if it is unpriced.
    fn valuation(&self, account: &Account) -> Option<Valuation> {
        let mut v = Valuation {
            equity: Rat::zero(),
            value: Rat::zero(),
            maint: Rat::zero(),
            initial: Rat::zero(),
            position_maint: BTreeMap::new(),
        };
        for (id, b) in &account.balances {
            let asset = &self.assets[id];
            let price = fixed(asset.price?);
            let b = dec(*b);
            let weight = if b.is_negative() {
                asset.liability_weight
            } else {
                asset.asset_weight
            };
            v.equity += round8(&(&b * &price * fixed(weight)));
            v.value += round8(&(&b * &price));
        }
        for (id, q) in &account.positions {
            let instrument = &self.instruments[id];
            let mark = instrument.mark?;
            let value = instrument.position_value(*q, mark);
            let notional = value.abs();
            let factor = instrument.factor();
            let maint = round8(&(instrument.raw_requirement(&notional, mmr) * &factor));
            let initial = round8(&(instrument.raw_requirement(&notional, imr) * &factor));
            v.equity += &value;
            v.value += &value;
            v.maint += &maint;
            v.initial += &initial;
            v.position_maint.insert(*id, maint);
        }
        Some(v)
    }

    fn is_halted(&self, account: &Account) -> bool {
        account
            .positions
            .keys()
            .any(|id| self.instruments[id].halted())
    }

    // ----- liquidation (MARGIN.md §4) -----

    /// Every account, ascending: cooldown endings, escalations and
    /// liquidations.
    fn evaluate_all(
        &mut self,
        event: &Event,
        ts: UnixNanos,
        seq: Seq,
    ) -> Vec<(Liquidation, Vec<Leg>)> {
        let subject = match event {
            Event::Fill(e) => Some(e.account),
            Event::Balance(e) => Some(e.account),
            _ => None,
        };
        let now = self.now;
        let cooldown_ns = self.params.liquidation_cooldown_ns;
        let mut out = Vec::new();
        let ids: Vec<AccountId> = self.accounts.keys().copied().collect();
        for id in ids {
            let escalation = match self.accounts[&id].cooldown_since {
                None => false,
                Some(_) if subject == Some(id) => false,
                Some(t) if now >= t.saturating_add(cooldown_ns) => true,
                Some(_) => continue,
            };
            let account = &self.accounts[&id];
            let decision = match self.valuation(account) {
                Some(v) if !self.is_halted(account) && v.equity < v.maint => {
                    Some(self.decide(id, account, &v, escalation, ts, seq))
                }
                _ => None,
            };
            let account = self
                .accounts
                .get_mut(&id)
                .unwrap_or_else(|| panic!("account {id} exists"));
            account.cooldown_since = None;
            if let Some(decision) = decision {
                account.cooldown_since = Some(now);
                self.stats.liquidations += 1;
                out.push(decision);
            }
        }
        out
    }

    /// The liquidation of a liquidatable account: bankrupt, partial off or
    /// escalation → every leg in full; otherwise the §4 plan.
    fn decide(
        &self,
        id: AccountId,
        account: &Account,
        v: &Valuation,
        escalation: bool,
        ts: UnixNanos,
        seq: Seq,
    ) -> (Liquidation, Vec<Leg>) {
        let legs = self.plan_legs(account, v);
        let bankrupt = v.value.is_negative();
        let (closes, partial) = if escalation || bankrupt || !self.params.partial_liquidation {
            let all = legs
                .iter()
                .map(|leg| (leg.instrument, leg.q.abs()))
                .collect();
            (all, false)
        } else {
            let p = plan(&v.equity, &legs);
            (p.closes, p.partial)
        };
        let out_legs = closes
            .iter()
            .map(|(instrument, x)| {
                let leg = legs
                    .iter()
                    .find(|leg| leg.instrument == *instrument)
                    .unwrap_or_else(|| panic!("leg {instrument} is planned"));
                let qty = if leg.q.is_negative() {
                    x.clone()
                } else {
                    -x.clone()
                };
                Leg {
                    instrument: *instrument,
                    qty: figure(&qty),
                    limit_price: limit_price(leg, &v.value),
                }
            })
            .collect();
        let liquidation = Liquidation {
            ts,
            seq,
            account: id,
            equity: figure(&v.equity),
            maint_margin: figure(&v.maint),
            partial,
            bankrupt,
            escalation,
        };
        (liquidation, out_legs)
    }

    /// Every open position, in plan order: `MM_i` descending, ties by
    /// instrument id ascending.
    fn plan_legs(&self, account: &Account, v: &Valuation) -> Vec<PlanLeg> {
        let mut order: Vec<(Rat, InstrumentId)> = v
            .position_maint
            .iter()
            .map(|(id, mm)| (mm.clone(), *id))
            .collect();
        order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        order
            .into_iter()
            .map(|(_, id)| {
                let instrument = &self.instruments[&id];
                let mark = instrument
                    .mark
                    .unwrap_or_else(|| panic!("instrument {id} is priced"));
                PlanLeg {
                    instrument: id,
                    q: dec(account.position(id)),
                    mark: fixed(mark.price),
                    multiplier: fixed(instrument.multiplier),
                    fee_rate: fixed(instrument.liquidation_fee),
                    factor: instrument.factor(),
                    tiers: instrument.tiers.clone(),
                }
            })
            .collect()
    }
}

/// §5: applies an accepted mark: the variance (after the first mark, while
/// the instrument has RiskParams), then the mark and its ts.
fn apply_mark(instrument: &mut Instrument, new: Mark) {
    if let (Some(risk), Some(old)) = (instrument.risk, instrument.mark) {
        let old_price = fixed(old.price);
        let r = round8(&((fixed(new.price) - &old_price) / &old_price));
        let lambda = fixed(risk.vol_lambda);
        let one = integer(1);
        let next = &lambda * &instrument.variance + (&one - &lambda) * &r * &r;
        instrument.variance = round16(&next);
    }
    instrument.mark = Some(new);
}

/// §3 Fill: `b_0 − round8(qty × price × m) − fee`.
fn quote_after_fill(account: &Account, instrument: &Instrument, e: &Fill) -> Rat {
    let cost = round8(&(fixed(e.qty) * fixed(e.price) * fixed(instrument.multiplier)));
    dec(account.balance(QUOTE_ASSET)) - cost - fixed(e.fee)
}

/// §3 Funding: `round8(rate × V_i)` at the accepted mark.
fn funding_payment(instrument: &Instrument, q: Dec8, mark: Mark, rate: Fixed8) -> Rat {
    round8(&(fixed(rate) * instrument.position_value(q, mark)))
}

/// §4.3: `round8(M − U / (q × m))` with the full current `q`, floored at
/// 10⁻⁸ — and capped at the largest price (the Fixed8 maximum), which
/// MARGIN.md leaves open: a tiny short in an account with a large `U` would
/// otherwise get a limit price no wire decimal can carry.
fn limit_price(leg: &PlanLeg, value: &Rat) -> Dec8 {
    let exact = &leg.mark - value / (&leg.q * &leg.multiplier);
    let rounded = round8(&exact);
    let lowest = dec(Dec8::EPSILON);
    let highest = dec(Dec8(PRICE_MANTISSA_MAX));
    figure(&rounded.max(lowest).min(highest))
}

fn check_params(e: &EngineParams) -> Result<(), Reject> {
    if e.warn_ratio < Fixed8::ONE || i128::from(e.warn_ratio.0) > FACTOR_MANTISSA_MAX {
        return Err(out_of_range("warn_ratio must be in [1, 100]"));
    }
    Ok(())
}

impl MarginEngine for ReferenceEngine {
    fn apply(&mut self, seq: Seq, event: &Event, sink: &mut dyn Sink) -> Result<(), Reject> {
        if let Err(reject) = self.check(event) {
            self.stats.events_rejected += 1;
            return Err(reject);
        }
        self.stats.events_applied += 1;
        let ts = event.ts();
        self.now = self.now.max(ts.0);
        let before = self.halt_states();
        self.apply_event(event);
        self.update_stale_halts();
        let halts = self.halt_changes(&before, ts, seq);
        let liquidations = self.evaluate_all(event, ts, seq);
        self.stats.halts += halts.len() as u64;
        for halt in &halts {
            sink.halt(halt);
        }
        for (liquidation, legs) in &liquidations {
            sink.liquidation(liquidation, legs);
        }
        Ok(())
    }

    fn figures(&self, account: AccountId) -> Option<Figures> {
        let v = self.valuation(self.accounts.get(&account)?)?;
        Some(Figures {
            equity: figure(&v.equity),
            value: figure(&v.value),
            maint_margin: figure(&v.maint),
            initial_margin: figure(&v.initial),
        })
    }

    fn account_ids(&self) -> Vec<AccountId> {
        self.accounts.keys().copied().collect()
    }

    fn stats(&self) -> Stats {
        self.stats
    }
}
