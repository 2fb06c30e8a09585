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
//! A mark evaluates only the silos whose conservative trigger price it
//! reaches (see [`IsolatedModel`]); `IsolatedModel::full_scan` is the same
//! model evaluating every silo at every mark, and the tests check both give
//! the same liquidations.
//!
//! Simplifications: no partial plan and no cooldown for silos (a silo is
//! closed whole, so neither is needed); a fill before the instrument's first
//! mark is funded at the first evaluation after a mark exists; the pool
//! itself is never liquidated (it holds no position); market state (accepted
//! marks, vol factors, halts) comes from the cross engine running the same
//! events, since it does not depend on accounts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use engine::arith::{div_round8, mul3_round8, mul_round8};
use engine::{AccountId, Dec8, Engine, Event, InstrumentId, Output, Seq};
use serde_json::{json, Value};

use crate::whatif::LiquidationRecord;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Silo {
    qty: Dec8,
    cash: Dec8,
    /// Re-funded since its last fill (false until the instrument has a mark).
    funded: bool,
    /// Where it is in the instrument's trigger index.
    trigger: Trigger,
}

/// When a mark must re-evaluate a silo (see [`IsolatedModel`]): a
/// conservative price bound, in Dec8 mantissa.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    /// Not indexed.
    None,
    /// Every mark (unfunded, small, or no bound exists).
    Always,
    /// A long: any mark ≤ this price.
    Below(i128),
    /// A short: any mark ≥ this price.
    Above(i128),
}

/// What bounds how fast a position's `MM` can grow: its vol factor is at
/// most `f_max`, and `MMraw` grows by at most `mmr_max` of added notional.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MarginBound {
    mmr_max: Dec8,
    factor_max: Dec8,
}

/// The silos of one instrument by trigger.
#[derive(Clone, Debug, Default)]
struct TriggerIndex {
    always: BTreeSet<AccountId>,
    below: BTreeSet<(i128, AccountId)>,
    above: BTreeSet<(i128, AccountId)>,
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

/// Which silos of an instrument to evaluate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    All,
    One(AccountId),
    /// Those whose trigger the current mark reaches.
    Crossed,
}

/// Slack kept for roundings: every rounding in `E` and `MM` together is
/// below 2·10⁻⁶ quote for vol factors up to 100, so 10⁻⁴ is a wide margin.
const SLACK_MARGIN: Dec8 = Dec8(10_000);
/// Smallest `|q|·m` given a price trigger: its rounding (≤ 10⁻⁸) is then
/// at most 10⁻⁶ of it.
const QM_MIN: Dec8 = Dec8(1_000_000);
/// Distances are shrunk by 1/WIDENING of themselves (4·10⁻⁶), which
/// covers the relative error of `|q|·m`.
const WIDENING: i128 = 250_000;

/// The conservative trigger of a funded silo (see [`IsolatedModel`]),
/// from its figures at mark `M`: the worst-case slack
/// `s = E − MMraw × f_max − 10⁻⁴` (the vol factor may rise up to `f_max`;
/// 10⁻⁴ covers every rounding). A fall of the mark to `M'` lowers a
/// long's `E` by `(M − M')·q·m` and does not raise its `MMraw`; a rise
/// lowers a short's `E` by `(M' − M)·|q|·m` and raises its `MMraw` by at
/// most `mmr_max` of the notional added. So a long is safe while
/// `M' > M − s/(q·m)` (and at any higher mark if `k = mmr_max·f_max < 1`),
/// a short while `M' < M + s/(|q|·m·(1 + k))`. Distances are shrunk by
/// 4·10⁻⁶ and two units in the last place; `s ≤ 0`, `|q|·m < 0.01` and
/// longs with `k ≥ 1` are evaluated at every mark.
fn trigger(
    qty: Dec8,
    equity: Dec8,
    mm_raw: Dec8,
    mark: Dec8,
    multiplier: Dec8,
    bound: MarginBound,
) -> Trigger {
    let worst = mul_round8(mm_raw, bound.factor_max);
    let k = mul_round8(bound.mmr_max, bound.factor_max).map(|k| Dec8(k.0 + 1));
    let qm = mul_round8(Dec8(qty.0.abs()), multiplier);
    let (Some(worst), Some(k), Some(qm)) = (worst, k, qm) else {
        return Trigger::Always;
    };
    let slack = sub(sub(equity, worst), SLACK_MARGIN);
    if slack.0 <= 0 || qm < QM_MIN {
        return Trigger::Always;
    }
    let shrink = |d: Dec8| (d.0 - d.0 / WIDENING - 2).max(0);
    if qty.0 > 0 {
        if k >= Dec8::ONE {
            return Trigger::Always;
        }
        match div_round8(slack, qm) {
            Some(d) => Trigger::Below(mark.0.saturating_sub(shrink(d))),
            None => Trigger::Always,
        }
    } else {
        let scaled = mul_round8(qm, Dec8(Dec8::ONE.0 + k.0));
        match scaled.and_then(|den| div_round8(slack, den)) {
            Some(d) => Trigger::Above(mark.0.saturating_add(shrink(d))),
            None => Trigger::Always,
        }
    }
}

/// The isolated model's state.
///
/// A mark re-evaluates only the silos it can have pushed under
/// maintenance: each silo carries a conservative trigger price computed
/// from its slack at its last evaluation (see `trigger`), so a long is
/// looked at when the mark falls to its trigger, a short when it rises to
/// it. Everything else
/// that changes silos (fills, funding, definitions, risk parameters, a
/// halt's end) evaluates them directly. [`IsolatedModel::full_scan`]
/// evaluates every silo at every mark instead (the plain form the tests
/// compare with).
#[derive(Clone, Debug, Default)]
pub struct IsolatedModel {
    pool_quote: BTreeMap<AccountId, Dec8>,
    silos: BTreeMap<(InstrumentId, AccountId), Silo>,
    liquidations: Vec<SiloLiquidation>,
    bounds: BTreeMap<InstrumentId, MarginBound>,
    index: BTreeMap<InstrumentId, TriggerIndex>,
    full_scan: bool,
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
                self.evaluate(oracle, seq, e.instrument, Scope::One(e.account));
            }
            Event::Funding(e) => {
                for key in self.keys(e.instrument) {
                    let silo = self.silos[&key];
                    if let Some(terms) = oracle.position_terms(e.instrument, silo.qty) {
                        let paid = mul_round8(e.rate.dec(), terms.value).unwrap_or(Dec8::ZERO);
                        self.silo_mut(key).cash = sub(silo.cash, paid);
                    }
                }
                self.evaluate(oracle, seq, e.instrument, Scope::All);
            }
            Event::Mark(e) => self.evaluate(oracle, seq, e.instrument, Scope::Crossed),
            Event::InstrumentDef(e) => {
                let bound = self.bounds.entry(e.instrument).or_insert(MarginBound {
                    mmr_max: Dec8::ZERO,
                    factor_max: Dec8::ONE,
                });
                bound.mmr_max = e
                    .tiers
                    .as_slice()
                    .iter()
                    .map(|t| t.mmr.dec())
                    .max()
                    .unwrap_or(Dec8::ONE);
                self.evaluate(oracle, seq, e.instrument, Scope::All);
            }
            Event::Risk(e) => {
                if let Some(bound) = self.bounds.get_mut(&e.instrument) {
                    bound.factor_max = e.vol_max_factor.dec().max(Dec8::ONE);
                }
                self.evaluate(oracle, seq, e.instrument, Scope::All);
            }
            _ => {}
        }
        for output in outputs {
            if let Output::Halt(h) = output {
                if !h.on {
                    self.evaluate(oracle, seq, h.instrument, Scope::All);
                }
            }
        }
    }

    /// The plain form: every silo of an instrument at every mark.
    pub fn full_scan() -> IsolatedModel {
        IsolatedModel {
            full_scan: true,
            ..IsolatedModel::default()
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
            trigger: Trigger::None,
        })
    }

    fn fill(&mut self, oracle: &Engine, e: &engine::Fill) {
        let Some(market) = oracle.instrument_market(e.instrument) else {
            return;
        };
        let key = (e.instrument, e.account);
        let cost = mul3_round8(e.qty.dec(), e.price.dec(), market.multiplier).unwrap_or(Dec8::ZERO);
        self.unindex(key);
        let silo = self.silo_mut(key);
        silo.cash = sub(sub(silo.cash, cost), e.fee.dec());
        silo.qty = add(silo.qty, e.qty.dec());
        silo.funded = false;
        if silo.qty.is_zero() {
            let cash = silo.cash;
            self.silos.remove(&key);
            self.release(e.account, cash);
        } else {
            // Unfunded: looked at by every mark until funded (the fill's
            // own evaluation does that when the instrument has a mark).
            self.reindex(key, market.multiplier, None);
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
    /// instrument: all of its silos, one, or those a mark crossed.
    fn evaluate(&mut self, oracle: &Engine, seq: Seq, instrument: InstrumentId, scope: Scope) {
        let Some(market) = oracle.instrument_market(instrument) else {
            return;
        };
        let Some(mark) = market.mark else {
            return;
        };
        let keys: Vec<(InstrumentId, AccountId)> = match scope {
            Scope::One(account) if self.silos.contains_key(&(instrument, account)) => {
                vec![(instrument, account)]
            }
            Scope::One(_) => Vec::new(),
            Scope::All => self.keys(instrument),
            Scope::Crossed if self.full_scan => self.keys(instrument),
            Scope::Crossed => self.crossed(instrument, mark),
        };
        for key in keys {
            self.unindex(key);
            let silo = self.silos[&key];
            let Some(terms) = oracle.position_terms(instrument, silo.qty) else {
                self.reindex(key, market.multiplier, None);
                continue;
            };
            if !silo.funded {
                self.fund(oracle, key, terms.im, add(silo.cash, terms.value));
            }
            let silo = self.silos[&key];
            let equity = add(silo.cash, terms.value);
            if market.halted() || equity >= terms.mm {
                let figures = Some((equity, terms.mm_raw, mark));
                self.reindex(key, market.multiplier, figures);
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

    /// The silos of `instrument` whose trigger a mark at `mark` reaches,
    /// ascending by account.
    fn crossed(&self, instrument: InstrumentId, mark: Dec8) -> Vec<(InstrumentId, AccountId)> {
        let Some(index) = self.index.get(&instrument) else {
            return Vec::new();
        };
        let mut accounts: BTreeSet<AccountId> = index.always.clone();
        accounts.extend(index.below.range((mark.0, AccountId(0))..).map(|(_, a)| *a));
        accounts.extend(
            index
                .above
                .range(..=(mark.0, AccountId(u64::MAX)))
                .map(|(_, a)| *a),
        );
        accounts.into_iter().map(|a| (instrument, a)).collect()
    }

    fn unindex(&mut self, key: (InstrumentId, AccountId)) {
        let Some(silo) = self.silos.get_mut(&key) else {
            return;
        };
        let trigger = std::mem::replace(&mut silo.trigger, Trigger::None);
        let Some(index) = self.index.get_mut(&key.0) else {
            return;
        };
        match trigger {
            Trigger::None => {}
            Trigger::Always => {
                index.always.remove(&key.1);
            }
            Trigger::Below(p) => {
                index.below.remove(&(p, key.1));
            }
            Trigger::Above(p) => {
                index.above.remove(&(p, key.1));
            }
        }
    }

    /// Indexes a silo that stays open under its fresh trigger; `figures`:
    /// its `E`, `MMraw` and the mark, when just evaluated (else it is looked
    /// at by every mark).
    fn reindex(
        &mut self,
        key: (InstrumentId, AccountId),
        multiplier: Dec8,
        figures: Option<(Dec8, Dec8, Dec8)>,
    ) {
        let bound = self.bounds.get(&key.0).copied();
        let Some(silo) = self.silos.get_mut(&key) else {
            return;
        };
        let trigger = match (bound, figures) {
            (Some(bound), Some((equity, mm_raw, mark))) if silo.funded => {
                trigger(silo.qty, equity, mm_raw, mark, multiplier, bound)
            }
            _ => Trigger::Always,
        };
        silo.trigger = trigger;
        let index = self.index.entry(key.0).or_default();
        match trigger {
            Trigger::None => {}
            Trigger::Always => {
                index.always.insert(key.1);
            }
            Trigger::Below(p) => {
                index.below.insert((p, key.1));
            }
            Trigger::Above(p) => {
                index.above.insert((p, key.1));
            }
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

/// Runs `input` through the fast engine (as the market oracle) and the
/// isolated model — `full_scan`: its plain form — with no overrides; the
/// silo liquidations in order.
///
/// # Errors
/// The input cannot be read.
pub fn silo_liquidations(
    input: &crate::input::Input,
    limits: engine::Limits,
    full_scan: bool,
) -> Result<Vec<SiloLiquidation>, crate::input::InputError> {
    use engine::MarginEngine;
    let mut engine = Engine::new(limits);
    let mut model = if full_scan {
        IsolatedModel::full_scan()
    } else {
        IsolatedModel::default()
    };
    let mut sink = engine::VecSink::default();
    input.for_each(&mut crate::progress::Progress::hidden(), |seq, event| {
        sink.outputs.clear();
        let accepted = engine.apply(seq, event, &mut sink).is_ok();
        model.after_event(&engine, seq, event, accepted, &sink.outputs);
        std::ops::ControlFlow::Continue(())
    })?;
    Ok(model.liquidations)
}
