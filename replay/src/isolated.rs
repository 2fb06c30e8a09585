//! The isolated-margin model of `liqd replay whatif --margin-mode isolated`:
//! the same history as if every position had been its own silo. A plain
//! model, separate from the engine, in the engine's exact arithmetic
//! (`engine::arith`, the engine's own `position_terms` for `V`, `N`, `MM`,
//! `IM`; `Dec8` throughout, never a float).
//!
//! The model (see replay/README.md, "Isolated margin"):
//! - each account has a *pool*: its quote balance (deposits, withdrawals,
//!   what silos release) plus its non-quote balances (as in the cross run);
//!   its *free collateral* is the pool's haircut value `Σ c_a`;
//! - each (account, instrument) position is a *silo* with its own quote
//!   cash: a fill's cost and fee are paid from it, funding is paid into or
//!   out of it, its equity is `cash + V`;
//! - at each fill the silo is funded up to the position's initial margin
//!   `IM`: the shortfall is moved from the pool (only what the free
//!   collateral covers, if less); a silo above `IM` keeps its surplus (its
//!   PnL and funding stay in it); a silo whose position is closed returns
//!   all its cash to the pool;
//! - a silo is liquidated when `cash + V < MM` (its instrument priced and
//!   not halted), in full, at the mark, paying `round8(N × φ)`; what is left
//!   returns to the pool, a deficit is a *shortfall* (isolated: never
//!   charged to the pool).
//!
//! Simplifications: no partial plan and no cooldown for silos (a silo is
//! closed whole, so neither is needed); a fill before the instrument's first
//! mark is funded at the first evaluation after a mark exists; the pool
//! itself is never liquidated (it holds no position); market state (accepted
//! marks, vol factors, halts) comes from the cross engine running the same
//! events, since it does not depend on accounts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use engine::arith::{mul3_round8, mul_round8};
use engine::{AccountId, Dec8, Engine, Event, InstrumentId, Output, Seq};
use serde_json::{json, Value};

use crate::whatif::LiquidationRecord;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Silo {
    qty: Dec8,
    cash: Dec8,
    /// Re-funded since its last fill (false until the instrument has a mark).
    funded: bool,
}

/// One silo closed by the isolated model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiloLiquidation {
    pub seq: Seq,
    pub account: AccountId,
    pub instrument: InstrumentId,
    /// The quantity traded to close (−q).
    pub qty: Dec8,
    pub notional: Dec8,
    /// The silo's `cash + V` and `MM` at the decision.
    pub equity: Dec8,
    pub maint_margin: Dec8,
    /// What the silo could not pay (0 if none).
    pub shortfall: Dec8,
}

/// The isolated model's state.
#[derive(Clone, Debug, Default)]
pub struct IsolatedModel {
    pool_quote: BTreeMap<AccountId, Dec8>,
    silos: BTreeMap<(InstrumentId, AccountId), Silo>,
    liquidations: Vec<SiloLiquidation>,
}

fn add(a: Dec8, b: Dec8) -> Dec8 {
    Dec8(a.0.saturating_add(b.0))
}

fn sub(a: Dec8, b: Dec8) -> Dec8 {
    Dec8(a.0.saturating_sub(b.0))
}

impl IsolatedModel {
    /// Follows one event that `oracle` (the cross engine) has just applied
    /// (`accepted`: it was not rejected), with the outputs it emitted.
    pub fn after_event(
        &mut self,
        oracle: &Engine,
        seq: Seq,
        event: &Event,
        accepted: bool,
        outputs: &[Output],
    ) {
        if !accepted {
            return;
        }
        match event {
            Event::Balance(e) => {
                let quote = self.pool_quote.entry(e.account).or_insert(Dec8::ZERO);
                if e.asset.0 == 0 {
                    *quote = add(*quote, e.amount.dec());
                }
            }
            Event::Fill(e) => {
                self.pool_quote.entry(e.account).or_insert(Dec8::ZERO);
                self.fill(oracle, e);
                self.evaluate(oracle, seq, e.instrument, Some(e.account));
            }
            Event::Funding(e) => {
                for key in self.keys(e.instrument) {
                    let silo = self.silos[&key];
                    if let Some(terms) = oracle.position_terms(e.instrument, silo.qty) {
                        let paid = mul_round8(e.rate.dec(), terms.value).unwrap_or(Dec8::ZERO);
                        self.silo_mut(key).cash = sub(silo.cash, paid);
                    }
                }
                self.evaluate(oracle, seq, e.instrument, None);
            }
            Event::Mark(e) => self.evaluate(oracle, seq, e.instrument, None),
            Event::InstrumentDef(e) => self.evaluate(oracle, seq, e.instrument, None),
            Event::Risk(e) => self.evaluate(oracle, seq, e.instrument, None),
            _ => {}
        }
        for output in outputs {
            if let Output::Halt(h) = output {
                if !h.on {
                    self.evaluate(oracle, seq, h.instrument, None);
                }
            }
        }
    }

    fn keys(&self, instrument: InstrumentId) -> Vec<(InstrumentId, AccountId)> {
        self.silos
            .range((instrument, AccountId(0))..=(instrument, AccountId(u64::MAX)))
            .map(|(k, _)| *k)
            .collect()
    }

    fn silo_mut(&mut self, key: (InstrumentId, AccountId)) -> &mut Silo {
        self.silos.entry(key).or_insert(Silo {
            qty: Dec8::ZERO,
            cash: Dec8::ZERO,
            funded: false,
        })
    }

    fn fill(&mut self, oracle: &Engine, e: &engine::Fill) {
        let Some(market) = oracle.instrument_market(e.instrument) else {
            return;
        };
        let key = (e.instrument, e.account);
        let cost = mul3_round8(e.qty.dec(), e.price.dec(), market.multiplier).unwrap_or(Dec8::ZERO);
        let silo = self.silo_mut(key);
        silo.cash = sub(sub(silo.cash, cost), e.fee.dec());
        silo.qty = add(silo.qty, e.qty.dec());
        silo.funded = false;
        if silo.qty.is_zero() {
            let cash = silo.cash;
            self.silos.remove(&key);
            self.release(e.account, cash);
        }
    }

    /// Moves `amount` from a silo back to its account's pool.
    fn release(&mut self, account: AccountId, amount: Dec8) {
        let quote = self.pool_quote.entry(account).or_insert(Dec8::ZERO);
        *quote = add(*quote, amount);
    }

    /// The pool's haircut value: its quote plus the account's priced
    /// non-quote collateral terms (the same balances as in the cross run).
    fn free_collateral(&self, oracle: &Engine, account: AccountId) -> Dec8 {
        let quote = self.pool_quote.get(&account).copied().unwrap_or(Dec8::ZERO);
        let others = oracle.account_detail(account).map_or(Dec8::ZERO, |d| {
            let sum = d.balances[1..]
                .iter()
                .filter_map(|b| b.collateral)
                .fold(0i128, |acc, c| acc.saturating_add(c.0));
            Dec8(sum)
        });
        add(quote, others)
    }

    /// Tops a silo up to its position's `IM` from the pool's free
    /// collateral (what there is, if less); a silo above `IM` keeps its
    /// surplus (its PnL stays in it).
    fn fund(&mut self, oracle: &Engine, key: (InstrumentId, AccountId), im: Dec8, equity: Dec8) {
        let delta = sub(im, equity);
        let available = self.free_collateral(oracle, key.1).0.max(0);
        let moved = Dec8(delta.0.min(available).max(0));
        let quote = self.pool_quote.entry(key.1).or_insert(Dec8::ZERO);
        *quote = sub(*quote, moved);
        let silo = self.silo_mut(key);
        silo.cash = add(silo.cash, moved);
        silo.funded = true;
    }

    /// Funds unfunded silos and liquidates those under maintenance, of one
    /// instrument (or one account's silo in it).
    fn evaluate(
        &mut self,
        oracle: &Engine,
        seq: Seq,
        instrument: InstrumentId,
        only: Option<AccountId>,
    ) {
        let Some(market) = oracle.instrument_market(instrument) else {
            return;
        };
        if market.mark.is_none() {
            return;
        }
        for key in self.keys(instrument) {
            if only.is_some_and(|a| a != key.1) {
                continue;
            }
            let silo = self.silos[&key];
            let Some(terms) = oracle.position_terms(instrument, silo.qty) else {
                continue;
            };
            if !silo.funded {
                self.fund(oracle, key, terms.im, add(silo.cash, terms.value));
            }
            let silo = self.silos[&key];
            let equity = add(silo.cash, terms.value);
            if market.halted() || equity >= terms.mm {
                continue;
            }
            let fee = mul_round8(terms.notional, market.liquidation_fee).unwrap_or(Dec8::ZERO);
            let left = sub(equity, fee);
            self.silos.remove(&key);
            let shortfall = if left.is_negative() {
                Dec8(-left.0)
            } else {
                self.release(key.1, left);
                Dec8::ZERO
            };
            self.liquidations.push(SiloLiquidation {
                seq,
                account: key.1,
                instrument,
                qty: Dec8(-silo.qty.0),
                notional: terms.notional,
                equity,
                maint_margin: terms.mm,
                shortfall,
            });
        }
    }

    /// The comparison with the cross run's liquidations.
    pub fn report(self, cross: &[LiquidationRecord]) -> IsolatedReport {
        let cross_accounts: BTreeSet<AccountId> =
            cross.iter().map(|r| r.liquidation.account).collect();
        let isolated_accounts: BTreeSet<AccountId> =
            self.liquidations.iter().map(|l| l.account).collect();
        let sum =
            |it: &mut dyn Iterator<Item = Dec8>| Dec8(it.fold(0i128, |a, d| a.saturating_add(d.0)));
        IsolatedReport {
            cross_liquidations: cross.len() as u64,
            cross_notional: sum(&mut cross.iter().map(|r| r.notional)),
            cross_accounts: cross_accounts.len() as u64,
            isolated_liquidations: self.liquidations.len() as u64,
            isolated_notional: sum(&mut self.liquidations.iter().map(|l| l.notional)),
            isolated_accounts: isolated_accounts.len() as u64,
            shortfall: sum(&mut self.liquidations.iter().map(|l| l.shortfall)),
            only_isolated: isolated_accounts
                .difference(&cross_accounts)
                .copied()
                .collect(),
            only_cross: cross_accounts
                .difference(&isolated_accounts)
                .copied()
                .collect(),
            liquidations: self.liquidations,
        }
    }
}

/// Cross against isolated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IsolatedReport {
    pub cross_liquidations: u64,
    pub cross_notional: Dec8,
    pub cross_accounts: u64,
    pub isolated_liquidations: u64,
    pub isolated_notional: Dec8,
    pub isolated_accounts: u64,
    /// Σ of the silos' deficits.
    pub shortfall: Dec8,
    /// Accounts liquidated only in isolated mode / only in cross.
    pub only_isolated: Vec<AccountId>,
    pub only_cross: Vec<AccountId>,
    pub liquidations: Vec<SiloLiquidation>,
}

impl IsolatedReport {
    pub fn to_json(&self) -> Value {
        let ids = |v: &[AccountId]| v.iter().map(|a| a.0).collect::<Vec<_>>();
        json!({
            "cross": {
                "liquidations": self.cross_liquidations,
                "notional": self.cross_notional.to_string(),
                "accounts": self.cross_accounts,
            },
            "isolated": {
                "liquidations": self.isolated_liquidations,
                "notional": self.isolated_notional.to_string(),
                "accounts": self.isolated_accounts,
                "shortfall": self.shortfall.to_string(),
            },
            "only_isolated": ids(&self.only_isolated),
            "only_cross": ids(&self.only_cross),
            "silo_liquidations": self.liquidations.iter().map(|l| json!({
                "seq": l.seq.0,
                "account": l.account.0,
                "instrument": l.instrument.0,
                "qty": l.qty.to_string(),
                "notional": l.notional.to_string(),
                "equity": l.equity.to_string(),
                "maint_margin": l.maint_margin.to_string(),
                "shortfall": l.shortfall.to_string(),
            })).collect::<Vec<_>>(),
        })
    }
}

/// Silo liquidations listed in the text report (all of them in JSON).
const LISTED_MAX: usize = 20;

impl fmt::Display for IsolatedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\nmargin mode      cross     isolated")?;
        writeln!(
            f,
            "liquidations {:>8} {:>12}",
            self.cross_liquidations, self.isolated_liquidations
        )?;
        writeln!(
            f,
            "notional     {:>8} {:>12}",
            self.cross_notional, self.isolated_notional
        )?;
        writeln!(
            f,
            "accounts     {:>8} {:>12}",
            self.cross_accounts, self.isolated_accounts
        )?;
        writeln!(f, "isolated shortfall (silo deficits): {}", self.shortfall)?;
        let ids = |v: &[AccountId]| {
            v.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        writeln!(
            f,
            "accounts liquidated only isolated: {}",
            ids(&self.only_isolated)
        )?;
        writeln!(
            f,
            "accounts liquidated only cross: {}",
            ids(&self.only_cross)
        )?;
        for l in self.liquidations.iter().take(LISTED_MAX) {
            writeln!(
                f,
                "  silo account {} instrument {} seq {}: equity {} < MM {}, close {} (notional {}, shortfall {})",
                l.account, l.instrument, l.seq, l.equity, l.maint_margin, l.qty, l.notional, l.shortfall
            )?;
        }
        if self.liquidations.len() > LISTED_MAX {
            writeln!(
                f,
                "  … {} more (--json lists all)",
                self.liquidations.len() - LISTED_MAX
            )?;
        }
        Ok(())
    }
}
