//! The fast engine: applies each event to the state it touches and
//! evaluates only the accounts whose figures (or liquidation blocks) the
//! event can have changed.
//!
//! One event is processed as MARGIN.md §4 orders it: validate (a rejection
//! changes nothing), advance `now`, apply, update halts, end expired
//! cooldowns (escalations), evaluate the touched accounts, emit halts by
//! instrument id then liquidations by account id.
//!
//! Why evaluating only touched accounts is enough: an account's liquidation
//! test depends on its balances, positions, the prices and definitions of
//! what it holds, the vol factors of its instruments, its halts and its
//! cooldown. Every event that changes one of these, except a price tick,
//! touches the account directly (fills and balance changes the account;
//! funding, definitions, risk parameters and an instrument's first mark the
//! instrument's holders; a rise of the vol factor the positions armed for a
//! lower one; asset definitions and
//! an asset's first price the asset's holders; a halt's end the
//! instrument's holders; a cooldown's end the account). A price tick touches
//! the accounts whose triggers it crosses (`EvaluationMode::Triggers`, see
//! `triggers.rs` for the invariant and its argument), or every holder
//! (`EvaluationMode::AllHolders`). An untouched account's test result is
//! the one it had after the previous event, when it was either not
//! liquidatable or blocked by something that has not changed since.
//!
//! Nothing here scans per event: crossed triggers come off the heaps'
//! tops, stale-halt deadlines off a min-heap, cooldown expiries off the front
//! of a FIFO.

mod detail;
mod snapshot;

use std::collections::VecDeque;

use bnum::types::I256;
use rustc_hash::FxHashMap;
use xxhash_rust::xxh3::Xxh3;

use crate::arith::{
    div_round8, div_round_half_even, div_round_half_even_256, isqrt_256, narrow_256,
};
use crate::limits::{
    Limits, FACTOR_MANTISSA_MAX, FUNDING_RATE_MANTISSA_MAX, LIABILITY_WEIGHT_MANTISSA_MAX,
    MULTIPLIER_MANTISSA_MAX, PRICE_MANTISSA_MAX, QTY_MANTISSA_MAX, QUOTE_BALANCE_MANTISSA_MAX,
};
use crate::plan::{plan, PlanLeg};
use crate::state::{
    Account, AssetState, Balance, InstrumentState, Position, Slab, Triggered, E8, NIL,
};
use crate::triggers::{
    balance_rates, factor_charge, keys, position_epsilon, position_rates, priority, split, weight,
    Bf, EngineConfig, EvaluationMode, Exposure, IndexedHeap, SplitStrategy, TriggerStats,
    BALANCE_EPSILON, DOWN, FACTOR, UP,
};
use crate::types::*;
use crate::valuation::{collateral_terms, position_figures, PositionFigures};
use crate::{Figures, MarginEngine, Params, Reject, Stats};

pub use snapshot::{SnapshotBytes, SnapshotError, SNAPSHOT_FORMAT, SNAPSHOT_MAGIC};

/// What an event touched, to be evaluated after halts and cooldowns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Touch {
    Account(u32),
    InstrumentHolders(u32),
    AssetHolders(u32),
    /// A mark moved: the accounts whose triggers it crossed.
    InstrumentCrossed(u32),
    /// An index price moved: the accounts whose triggers it crossed.
    AssetCrossed(u32),
    /// A vol factor rose: the positions armed for a lower one.
    FactorCrossed(u32),
}

/// A cooldown start, queued in `now` order (so also in expiry order: the
/// cooldown length is global).
#[derive(Clone, Copy, Debug)]
struct CooldownEntry {
    since: u64,
    account: u32,
    generation: u32,
}

/// A decision to emit at the end of the event.
#[derive(Clone, Copy, Debug)]
struct Due {
    account: AccountId,
    slot: u32,
    figures: Figures,
    escalation: bool,
}

/// Where an account stands when evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// A balance or position lacks a price: not evaluated.
    Unpriced,
    /// Priced; `halted` if a held instrument is halted.
    Priced { figures: Figures, halted: bool },
}

/// Reserved bytes of an [`Engine`] by what they hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryUse {
    /// The account table and the id map.
    pub accounts: usize,
    /// The position slab, the instruments' holder lists and the positions'
    /// trigger heaps.
    pub positions: usize,
    /// Position slots reserved (the slab's capacity).
    pub position_slots: usize,
    /// The same for non-quote balances.
    pub balances: usize,
    pub balance_slots: usize,
    /// Everything else: instruments, assets, cooldowns, scratch.
    pub other: usize,
}

impl MemoryUse {
    pub fn total(&self) -> usize {
        self.accounts + self.positions + self.balances + self.other
    }
}

/// The fast, incremental implementation of MARGIN.md.
#[derive(Debug)]
pub struct Engine {
    limits: Limits,
    config: EngineConfig,
    params: Params,
    now: u64,
    instruments: Vec<InstrumentState>,
    instrument_slots: FxHashMap<u32, u32>,
    /// Staleness deadlines (`ts(last mark) + max_staleness_ns`) of the
    /// watched, not yet stale instruments; a key may be early, never late.
    stale_deadlines: IndexedHeap<u64>,
    /// Instruments whose mark or RiskParams changed in this event.
    stale_dirty: Vec<u32>,
    /// Per instrument slot: the positions' down, up and vol-factor
    /// trigger heaps.
    position_triggers: Vec<[IndexedHeap<i64>; 3]>,
    /// Per asset slot: the balances' down and up trigger heaps.
    balance_triggers: Vec<[IndexedHeap<i64>; 2]>,
    trigger_stats: TriggerStats,
    assets: Vec<AssetState>,
    asset_slots: FxHashMap<u32, u32>,
    accounts: Vec<Account>,
    account_slots: FxHashMap<u64, u32>,
    positions: Slab<Position>,
    balances: Slab<Balance>,
    cooldowns: VecDeque<CooldownEntry>,
    stats: Stats,
    /// Counts accepted events; stamps `Account::considered_epoch`.
    epoch: u64,
    // Scratch, reused across events.
    touches: Vec<Touch>,
    halts: Vec<Halt>,
    due: Vec<Due>,
    plan_legs: Vec<PlanLeg>,
    legs: Vec<Leg>,
    exposures: Vec<Exposure>,
    budgets: Vec<Bf>,
}

const BOUNDED: &str = "bounded by engine::limits";

impl Engine {
    /// An empty engine with storage for `limits`.
    ///
    /// # Panics
    /// If `limits` is invalid (see [`Limits::validate`]).
    pub fn new(limits: Limits) -> Engine {
        Engine::with_config(limits, EngineConfig::default())
    }

    /// An empty engine with storage for `limits`, finding the accounts to
    /// evaluate as `config` says.
    ///
    /// # Panics
    /// If `limits` is invalid (see [`Limits::validate`]).
    pub fn with_config(limits: Limits, config: EngineConfig) -> Engine {
        if let Err(reason) = limits.validate() {
            panic!("invalid engine limits: {reason}");
        }
        let accounts = limits.accounts_max as usize;
        let per_account = limits
            .positions_per_account_max
            .max(limits.balances_per_account_max);
        let per_account = per_account as usize;
        let mut engine = Engine {
            limits,
            config,
            params: Params::default(),
            now: 0,
            instruments: Vec::with_capacity(limits.instruments_max as usize),
            instrument_slots: FxHashMap::default(),
            stale_deadlines: IndexedHeap::with_capacity(0, limits.instruments_max as usize),
            stale_dirty: Vec::with_capacity(4),
            position_triggers: Vec::with_capacity(limits.instruments_max as usize),
            balance_triggers: Vec::with_capacity(limits.assets_max as usize),
            trigger_stats: TriggerStats::default(),
            assets: Vec::with_capacity(limits.assets_max as usize),
            asset_slots: FxHashMap::default(),
            accounts: Vec::with_capacity(accounts.min(1 << 24)),
            account_slots: FxHashMap::default(),
            positions: Slab::with_capacity(reserved(config.positions_reserved, accounts, 1 << 20)),
            balances: Slab::with_capacity(reserved(config.balances_reserved, accounts, 1 << 18)),
            cooldowns: VecDeque::with_capacity(1024),
            stats: Stats::default(),
            epoch: 0,
            touches: Vec::with_capacity(64),
            halts: Vec::with_capacity(64),
            due: Vec::with_capacity(1024),
            plan_legs: Vec::with_capacity(limits.positions_per_account_max as usize),
            legs: Vec::with_capacity(limits.positions_per_account_max as usize),
            exposures: Vec::with_capacity(2 * per_account),
            budgets: Vec::with_capacity(2 * per_account),
        };
        engine
            .instrument_slots
            .reserve(limits.instruments_max as usize);
        engine.asset_slots.reserve(limits.assets_max as usize);
        engine.account_slots.reserve(accounts.min(1 << 24));
        engine.assets.push(AssetState {
            id: QUOTE_ASSET,
            symbol: Symbol([b' '; 16]),
            weight: Dec8::ONE,
            liability_weight: Dec8::ONE,
            price: Some(Dec8::ONE),
            holders: Vec::new(),
        });
        engine.asset_slots.insert(QUOTE_ASSET.0, 0);
        engine.balance_triggers.push(trigger_heaps());
        engine
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// What the trigger index did so far.
    pub fn trigger_stats(&self) -> TriggerStats {
        self.trigger_stats
    }

    /// Bytes of heap storage the engine holds (reserved capacity of every
    /// table, index and scratch buffer; hash tables estimated from their
    /// capacity): [`Engine::memory`]'s total.
    pub fn memory_bytes(&self) -> usize {
        self.memory().total()
    }

    /// Where the reserved bytes go: per account, per position, per balance.
    pub fn memory(&self) -> MemoryUse {
        use core::mem::size_of;
        let map = |cap: usize, entry: usize| cap * (entry + 1);
        let heaps =
            |heaps: &[IndexedHeap<i64>]| heaps.iter().map(IndexedHeap::bytes).sum::<usize>();
        let positions = self.positions.bytes()
            + self
                .instruments
                .iter()
                .map(|i| i.holders.capacity() * 4)
                .sum::<usize>()
            + self
                .position_triggers
                .iter()
                .map(|h| heaps(h))
                .sum::<usize>();
        let balances = self.balances.bytes()
            + self
                .assets
                .iter()
                .map(|a| a.holders.capacity() * 4)
                .sum::<usize>()
            + self
                .balance_triggers
                .iter()
                .map(|h| heaps(h))
                .sum::<usize>();
        MemoryUse {
            accounts: self.accounts.capacity() * size_of::<Account>()
                + map(self.account_slots.capacity(), 16),
            positions,
            position_slots: self.positions.capacity(),
            balances,
            balance_slots: self.balances.capacity(),
            other: self.instruments.capacity() * size_of::<InstrumentState>()
                + self.assets.capacity() * size_of::<AssetState>()
                + map(self.instrument_slots.capacity(), 8)
                + map(self.asset_slots.capacity(), 8)
                + self.cooldowns.capacity() * size_of::<CooldownEntry>()
                + self.stale_deadlines.bytes()
                + self.due.capacity() * size_of::<Due>(),
        }
    }

    /// Evaluates one account as a crossed trigger would, outside any event:
    /// a healthy, unblocked account gets fresh triggers at the current
    /// prices (`true`); anything else changes nothing (`false`). No
    /// decision depends on when an account was last armed (any arming of a
    /// healthy account keeps the invariant), so outputs and
    /// [`Engine::state_hash`] are unchanged. Benchmarks use it to time
    /// arming alone.
    pub fn rearm(&mut self, account: AccountId) -> bool {
        let Some(&slot) = self.account_slots.get(&account.0) else {
            return false;
        };
        if self.accounts[slot as usize].cooldown_since.is_some()
            || self.config.mode != EvaluationMode::Triggers
        {
            return false;
        }
        match self.evaluate(slot) {
            Standing::Priced {
                figures,
                halted: false,
            } if figures.equity >= figures.maint_margin => {
                self.arm(slot, &figures);
                true
            }
            _ => false,
        }
    }

    /// Number of price triggers currently armed (both sides, all indexes;
    /// vol-factor triggers not counted).
    pub fn armed_triggers(&self) -> usize {
        let positions = self
            .position_triggers
            .iter()
            .map(|h| h[DOWN].len() + h[UP].len());
        let balances = self
            .balance_triggers
            .iter()
            .map(|h| h[DOWN].len() + h[UP].len());
        positions.chain(balances).sum()
    }

    /// Number of accounts.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The engine clock: the largest accepted event ts.
    pub fn now(&self) -> UnixNanos {
        UnixNanos(self.now)
    }

    /// Where an account stands now, or `None` if it does not exist.
    pub fn standing(&self, account: AccountId) -> Option<Standing> {
        let slot = *self.account_slots.get(&account.0)?;
        Some(self.evaluate(slot))
    }

    /// Accounts in a liquidation cooldown (PROTOCOL.md §4 `S`
    /// `liquidating`). Counts the live entries of the cooldown queue:
    /// proportional to the recent liquidations, not to the accounts.
    pub fn accounts_in_cooldown(&self) -> u64 {
        self.cooldowns
            .iter()
            .filter(|entry| {
                let account = &self.accounts[entry.account as usize];
                account.cooldown_since == Some(entry.since)
                    && account.cooldown_generation == entry.generation
            })
            .count() as u64
    }

    /// Instruments with at least one halt in force (PROTOCOL.md §4 `S`
    /// `halted`).
    pub fn halted_instruments(&self) -> u32 {
        self.instruments.iter().filter(|i| i.halted()).count() as u32
    }

    /// A hash of the whole state (parameters, clock, definitions, prices,
    /// guards, every account), iterated in id order: stable across runs,
    /// machines and insertion orders.
    pub fn state_hash(&self) -> u64 {
        let mut h = Xxh3::new();
        let params = &self.params;
        h.update(&[u8::from(params.partial_liquidation)]);
        h.update(&params.liquidation_cooldown_ns.to_le_bytes());
        h.update(&params.warn_ratio.0.to_le_bytes());
        h.update(&self.now.to_le_bytes());
        let mut ids: Vec<(u32, u32)> = self.asset_slots.iter().map(|(k, v)| (*k, *v)).collect();
        ids.sort_unstable();
        for (id, slot) in ids {
            let a = &self.assets[slot as usize];
            h.update(&id.to_le_bytes());
            h.update(&a.symbol.0);
            h.update(&a.weight.0.to_le_bytes());
            h.update(&a.liability_weight.0.to_le_bytes());
            h.update(&a.price.map_or(-1, |p| p.0).to_le_bytes());
        }
        let mut ids: Vec<(u32, u32)> = self
            .instrument_slots
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        ids.sort_unstable();
        for (id, slot) in ids {
            let i = &self.instruments[slot as usize];
            h.update(&id.to_le_bytes());
            h.update(&i.symbol.0);
            h.update(&i.multiplier.0.to_le_bytes());
            h.update(&i.fee.0.to_le_bytes());
            for tier in i.tiers() {
                h.update(&tier.floor.0.to_le_bytes());
                h.update(&tier.mmr.0.to_le_bytes());
                h.update(&tier.imr.0.to_le_bytes());
            }
            h.update(&[u8::from(i.has_mark)]);
            h.update(&i.mark.0.to_le_bytes());
            h.update(&i.mark_ts.to_le_bytes());
            if let Some(r) = &i.risk {
                h.update(&r.vol_lambda.0.to_le_bytes());
                h.update(&r.vol_ref.0.to_le_bytes());
                h.update(&r.vol_max_factor.0.to_le_bytes());
                h.update(&r.max_staleness_ns.to_le_bytes());
                h.update(&r.max_jump.0.to_le_bytes());
            }
            for digit in i.variance16.to_bits().digits() {
                h.update(&digit.to_le_bytes());
            }
            h.update(&i.vol_factor.0.to_le_bytes());
            if let Some((price, ts)) = i.held {
                h.update(&price.0.to_le_bytes());
                h.update(&ts.to_le_bytes());
            }
            h.update(&[u8::from(i.halted_stale), u8::from(i.halted_jump)]);
        }
        let mut ids: Vec<(u64, u32)> = self.account_slots.iter().map(|(k, v)| (*k, *v)).collect();
        ids.sort_unstable();
        let mut entries: Vec<(u32, i128)> = Vec::new();
        for (id, slot) in ids {
            let account = &self.accounts[slot as usize];
            h.update(&id.to_le_bytes());
            h.update(&account.quote.0.to_le_bytes());
            h.update(&account.cooldown_since.map_or(u64::MAX, |t| t).to_le_bytes());
            h.update(&[u8::from(account.cooldown_since.is_some())]);
            entries.clear();
            let mut b = account.first_balance;
            while b != NIL {
                let balance = self.balances.get(b);
                entries.push((self.assets[balance.asset as usize].id.0, balance.amount.0));
                b = balance.next;
            }
            entries.sort_unstable();
            for (asset, amount) in &entries {
                h.update(b"b");
                h.update(&asset.to_le_bytes());
                h.update(&amount.to_le_bytes());
            }
            entries.clear();
            let mut p = account.first_position;
            while p != NIL {
                let position = self.positions.get(p);
                entries.push((
                    self.instruments[position.instrument as usize].id.0,
                    position.qty.0,
                ));
                p = position.next;
            }
            entries.sort_unstable();
            for (instrument, qty) in &entries {
                h.update(b"p");
                h.update(&instrument.to_le_bytes());
                h.update(&qty.to_le_bytes());
            }
        }
        h.digest()
    }

    // ----- validation: pure, decides acceptance -------------------------

    fn instrument_slot(&self, id: InstrumentId) -> Result<u32, Reject> {
        self.instrument_slots
            .get(&id.0)
            .copied()
            .ok_or(Reject::UnknownInstrument(id))
    }

    fn asset_slot(&self, id: AssetId) -> Result<u32, Reject> {
        self.asset_slots
            .get(&id.0)
            .copied()
            .ok_or(Reject::UnknownAsset(id))
    }

    fn validate(&self, event: &Event) -> Result<(), Reject> {
        match event {
            Event::AssetDef(e) => self.validate_asset_def(e),
            Event::InstrumentDef(e) => self.validate_instrument_def(e),
            Event::Params(e) => {
                let w = e.warn_ratio.0 as i128;
                if !(E8..=FACTOR_MANTISSA_MAX).contains(&w) {
                    return Err(Reject::OutOfRange("warn_ratio must be in [1, 100]"));
                }
                Ok(())
            }
            Event::Risk(e) => {
                self.instrument_slot(e.instrument)?;
                validate_risk(e)
            }
            Event::Index(e) => {
                if e.asset == QUOTE_ASSET {
                    return Err(Reject::QuoteIndex);
                }
                self.asset_slot(e.asset)?;
                positive(e.price, "price must be > 0")
            }
            Event::Mark(e) => {
                self.instrument_slot(e.instrument)?;
                positive(e.price, "price must be > 0")
            }
            Event::Fill(e) => self.validate_fill(e),
            Event::Balance(e) => self.validate_balance(e),
            Event::Funding(e) => self.validate_funding(e),
        }
    }

    fn validate_asset_def(&self, e: &AssetDef) -> Result<(), Reject> {
        if e.asset == QUOTE_ASSET {
            if e.asset_weight != Fixed8::ONE || e.liability_weight != Fixed8::ONE {
                return Err(Reject::InvalidDefinition(
                    "the quote asset's weights must both be 1",
                ));
            }
            return Ok(());
        }
        let w = e.asset_weight.0 as i128;
        if w <= 0 || w > E8 {
            return Err(Reject::OutOfRange("asset_weight must be in (0, 1]"));
        }
        let v = e.liability_weight.0 as i128;
        if !(E8..=LIABILITY_WEIGHT_MANTISSA_MAX).contains(&v) {
            return Err(Reject::OutOfRange("liability_weight must be in [1, 100]"));
        }
        if !self.asset_slots.contains_key(&e.asset.0)
            && self.assets.len() >= self.limits.assets_max as usize
        {
            return Err(Reject::Capacity("assets_max"));
        }
        Ok(())
    }

    fn validate_instrument_def(&self, e: &InstrumentDef) -> Result<(), Reject> {
        validate_tiers(e)?;
        if e.multiplier.0 as i128 > MULTIPLIER_MANTISSA_MAX {
            return Err(Reject::OutOfRange("multiplier must be ≤ 10000"));
        }
        if !self.instrument_slots.contains_key(&e.instrument.0)
            && self.instruments.len() >= self.limits.instruments_max as usize
        {
            return Err(Reject::Capacity("instruments_max"));
        }
        Ok(())
    }

    /// Whether a new account can be created, if `id` is new.
    fn check_account_capacity(&self, id: AccountId) -> Result<Option<u32>, Reject> {
        match self.account_slots.get(&id.0) {
            Some(slot) => Ok(Some(*slot)),
            None if self.accounts.len() >= self.limits.accounts_max as usize => {
                Err(Reject::Capacity("accounts_max"))
            }
            None => Ok(None),
        }
    }

    fn validate_fill(&self, e: &Fill) -> Result<(), Reject> {
        let inst_slot = self.instrument_slot(e.instrument)?;
        if e.qty.0 == 0 {
            return Err(Reject::OutOfRange("qty must be ≠ 0"));
        }
        positive(e.price, "price must be > 0")?;
        let slot = self.check_account_capacity(e.account)?;
        let (qty, quote, open) = match slot {
            Some(slot) => {
                let account = &self.accounts[slot as usize];
                let qty = self
                    .find_position(slot, inst_slot)
                    .map_or(Dec8::ZERO, |p| self.positions.get(p).qty);
                (qty, account.quote, account.position_count)
            }
            None => (Dec8::ZERO, Dec8::ZERO, 0),
        };
        if qty.is_zero() && open >= self.limits.positions_per_account_max {
            return Err(Reject::Capacity("positions_per_account_max"));
        }
        let new_qty = qty.0 + e.qty.0 as i128;
        if new_qty.abs() > QTY_MANTISSA_MAX {
            return Err(Reject::AccountLimit(
                e.account,
                "position beyond the Fixed8 range",
            ));
        }
        let cost = self.fill_cost(inst_slot, e);
        let new_quote = quote.0 - cost.0;
        if new_quote.abs() > QUOTE_BALANCE_MANTISSA_MAX {
            return Err(Reject::AccountLimit(
                e.account,
                "quote balance beyond 10^28",
            ));
        }
        Ok(())
    }

    /// `round8(qty × price × m) + fee`: what a fill costs in quote.
    fn fill_cost(&self, inst_slot: u32, e: &Fill) -> Dec8 {
        let m = self.instruments[inst_slot as usize].multiplier;
        let notional = crate::arith::mul3_round8(e.qty.dec(), e.price.dec(), m).expect(BOUNDED);
        Dec8(notional.0 + e.fee.0 as i128)
    }

    fn validate_balance(&self, e: &BalanceChange) -> Result<(), Reject> {
        let asset_slot = self.asset_slot(e.asset)?;
        let slot = self.check_account_capacity(e.account)?;
        let amount = e.amount.0 as i128;
        if e.asset == QUOTE_ASSET {
            let quote = slot.map_or(0, |s| self.accounts[s as usize].quote.0);
            if (quote + amount).abs() > QUOTE_BALANCE_MANTISSA_MAX {
                return Err(Reject::AccountLimit(
                    e.account,
                    "quote balance beyond 10^28",
                ));
            }
            return Ok(());
        }
        let (current, count) = match slot {
            Some(s) => (
                self.find_balance(s, asset_slot)
                    .map_or(0, |b| self.balances.get(b).amount.0),
                self.accounts[s as usize].balance_count,
            ),
            None => (0, 0),
        };
        if current == 0 && amount != 0 && count >= self.limits.balances_per_account_max {
            return Err(Reject::Capacity("balances_per_account_max"));
        }
        if (current + amount).abs() > QTY_MANTISSA_MAX {
            return Err(Reject::AccountLimit(
                e.account,
                "balance beyond the Fixed8 range",
            ));
        }
        Ok(())
    }

    fn validate_funding(&self, e: &Funding) -> Result<(), Reject> {
        let slot = self.instrument_slot(e.instrument)?;
        let instrument = &self.instruments[slot as usize];
        if !instrument.has_mark {
            return Err(Reject::NoMark(e.instrument));
        }
        if (e.rate.0 as i128).abs() > FUNDING_RATE_MANTISSA_MAX {
            return Err(Reject::OutOfRange("|funding rate| must be ≤ 1"));
        }
        for &p in &instrument.holders {
            let position = self.positions.get(p);
            let payment = self.funding_payment(instrument, position.qty, e.rate);
            let account = &self.accounts[position.account as usize];
            if (account.quote.0 - payment.0).abs() > QUOTE_BALANCE_MANTISSA_MAX {
                return Err(Reject::AccountLimit(
                    account.id,
                    "quote balance beyond 10^28",
                ));
            }
        }
        Ok(())
    }

    fn funding_payment(&self, instrument: &InstrumentState, qty: Dec8, rate: Fixed8) -> Dec8 {
        let value = crate::arith::mul16_round8(qty, instrument.mark_mult16).expect(BOUNDED);
        crate::arith::mul_round8(rate.dec(), value).expect(BOUNDED)
    }

    // ----- lookups -------------------------------------------------------

    fn find_position(&self, account: u32, instrument: u32) -> Option<u32> {
        let mut p = self.accounts[account as usize].first_position;
        while p != NIL {
            let position = self.positions.get(p);
            if position.instrument == instrument {
                return Some(p);
            }
            p = position.next;
        }
        None
    }

    fn find_balance(&self, account: u32, asset: u32) -> Option<u32> {
        let mut b = self.accounts[account as usize].first_balance;
        while b != NIL {
            let balance = self.balances.get(b);
            if balance.asset == asset {
                return Some(b);
            }
            b = balance.next;
        }
        None
    }

    fn account_slot_or_create(&mut self, id: AccountId) -> u32 {
        if let Some(slot) = self.account_slots.get(&id.0) {
            return *slot;
        }
        let slot = self.accounts.len() as u32;
        self.accounts.push(Account::new(id));
        self.account_slots.insert(id.0, slot);
        slot
    }

    // ----- applying events -----------------------------------------------

    fn apply_event(&mut self, event: &Event) {
        match event {
            Event::AssetDef(e) => self.on_asset_def(e),
            Event::InstrumentDef(e) => self.on_instrument_def(e),
            Event::Params(e) => {
                self.params = Params {
                    partial_liquidation: e.partial_liquidation,
                    liquidation_cooldown_ns: e.liquidation_cooldown_ns,
                    warn_ratio: e.warn_ratio,
                };
            }
            Event::Risk(e) => self.on_risk(e),
            Event::Index(e) => {
                let slot = self.asset_slots[&e.asset.0];
                let first = self.assets[slot as usize].price.is_none();
                self.assets[slot as usize].price = Some(e.price.dec());
                // A first price can make unpriced holders priced: they have
                // no triggers, so every holder is evaluated.
                if first || self.config.mode == EvaluationMode::AllHolders {
                    self.touches.push(Touch::AssetHolders(slot));
                } else {
                    self.touches.push(Touch::AssetCrossed(slot));
                }
            }
            Event::Mark(e) => self.on_mark(e),
            Event::Fill(e) => self.on_fill(e),
            Event::Balance(e) => self.on_balance(e),
            Event::Funding(e) => self.on_funding(e),
        }
    }

    fn on_asset_def(&mut self, e: &AssetDef) {
        match self.asset_slots.get(&e.asset.0) {
            Some(&slot) => {
                let asset = &mut self.assets[slot as usize];
                asset.symbol = e.symbol;
                asset.weight = e.asset_weight.dec();
                asset.liability_weight = e.liability_weight.dec();
                self.touches.push(Touch::AssetHolders(slot));
            }
            None => {
                let slot = self.assets.len() as u32;
                self.assets.push(AssetState {
                    id: e.asset,
                    symbol: e.symbol,
                    weight: e.asset_weight.dec(),
                    liability_weight: e.liability_weight.dec(),
                    price: None,
                    holders: Vec::new(),
                });
                self.asset_slots.insert(e.asset.0, slot);
                self.balance_triggers.push(trigger_heaps());
            }
        }
    }

    fn on_instrument_def(&mut self, e: &InstrumentDef) {
        match self.instrument_slots.get(&e.instrument.0) {
            Some(&slot) => {
                self.instruments[slot as usize].redefine(e);
                self.touches.push(Touch::InstrumentHolders(slot));
            }
            None => {
                let slot = self.instruments.len() as u32;
                self.instruments.push(InstrumentState::new(e));
                self.instrument_slots.insert(e.instrument.0, slot);
                self.position_triggers.push([
                    IndexedHeap::with_capacity(DOWN, 0),
                    IndexedHeap::with_capacity(UP, 0),
                    IndexedHeap::with_capacity(FACTOR, 0),
                ]);
            }
        }
    }

    fn on_risk(&mut self, e: &RiskParams) {
        let slot = self.instrument_slots[&e.instrument.0];
        let instrument = &mut self.instruments[slot as usize];
        instrument.risk = Some(*e);
        self.stale_dirty.push(slot);
        if e.max_jump.0 == 0 {
            instrument.held = None;
            self.set_jump_halt(slot, false);
        }
        self.refresh_vol_factor(slot);
        self.touches.push(Touch::InstrumentHolders(slot));
    }

    fn on_mark(&mut self, e: &MarkPrice) {
        let slot = self.instrument_slots[&e.instrument.0];
        let price = e.price.dec();
        let ts = e.ts.0;
        let instrument = &self.instruments[slot as usize];
        let first = !instrument.has_mark;
        let factor_before = instrument.vol_factor;
        let max_jump = instrument.risk.map_or(Dec8::ZERO, |r| r.max_jump.dec());
        if !instrument.has_mark || max_jump.is_zero() {
            self.accept_mark(slot, price, ts);
        } else if let Some((held, held_ts)) = instrument.held {
            if within(price, held, max_jump) {
                self.accept_mark(slot, held, held_ts);
                self.accept_mark(slot, price, ts);
                self.instruments[slot as usize].held = None;
                self.set_jump_halt(slot, false);
            } else if within(price, instrument.mark, max_jump) {
                self.instruments[slot as usize].held = None;
                self.accept_mark(slot, price, ts);
                self.set_jump_halt(slot, false);
            } else {
                self.instruments[slot as usize].held = Some((price, ts));
            }
        } else if within(price, instrument.mark, max_jump) {
            self.accept_mark(slot, price, ts);
        } else {
            self.instruments[slot as usize].held = Some((price, ts));
            self.set_jump_halt(slot, true);
        }
        let instrument = &self.instruments[slot as usize];
        if instrument.risk.is_some() {
            self.stale_dirty.push(slot);
        }
        // A first mark can make unpriced holders priced: every holder is
        // evaluated. Otherwise the crossed price triggers, and if the vol
        // factor rose, the positions armed for a lower factor (a fall of f
        // leaves every trigger valid).
        if first || self.config.mode == EvaluationMode::AllHolders {
            self.touches.push(Touch::InstrumentHolders(slot));
        } else {
            if instrument.vol_factor > factor_before {
                self.touches.push(Touch::FactorCrossed(slot));
            }
            self.touches.push(Touch::InstrumentCrossed(slot));
        }
    }

    /// Applies a mark: variance update (with RiskParams, after the first
    /// mark), then the mark itself and the vol factor.
    fn accept_mark(&mut self, slot: u32, price: Dec8, ts: u64) {
        let instrument = &mut self.instruments[slot as usize];
        if let (true, Some(risk)) = (instrument.has_mark, instrument.risk) {
            let old = instrument.mark;
            let r = div_round8(Dec8(price.0 - old.0), old).expect(BOUNDED);
            instrument.variance16 = next_variance(instrument.variance16, risk.vol_lambda, r);
        }
        instrument.mark = price;
        instrument.has_mark = true;
        instrument.mark_ts = ts;
        instrument.mark_mult16 = price.0 * instrument.multiplier.0;
        self.refresh_vol_factor(slot);
    }

    fn refresh_vol_factor(&mut self, slot: u32) {
        let instrument = &mut self.instruments[slot as usize];
        instrument.vol_factor = match instrument.risk {
            Some(risk) => vol_factor(instrument.variance16, risk.vol_ref, risk.vol_max_factor),
            None => Dec8::ONE,
        };
    }

    fn set_jump_halt(&mut self, slot: u32, on: bool) {
        let instrument = &mut self.instruments[slot as usize];
        if instrument.halted_jump != on {
            instrument.halted_jump = on;
            self.halts.push(Halt {
                ts: UnixNanos(0),
                seq: Seq(0),
                instrument: instrument.id,
                reason: HaltReason::Jump,
                on,
            });
            if !on {
                self.touches.push(Touch::InstrumentHolders(slot));
            }
        }
    }

    fn on_fill(&mut self, e: &Fill) {
        let inst_slot = self.instrument_slots[&e.instrument.0];
        let cost = self.fill_cost(inst_slot, e);
        let slot = self.account_slot_or_create(e.account);
        let account = &mut self.accounts[slot as usize];
        account.quote = Dec8(account.quote.0 - cost.0);
        account.cooldown_since = None;
        let qty = e.qty.dec();
        match self.find_position(slot, inst_slot) {
            Some(p) => {
                let new_qty = Dec8(self.positions.get(p).qty.0 + qty.0);
                if new_qty.is_zero() {
                    self.remove_position(slot, p);
                } else {
                    self.positions.get_mut(p).qty = new_qty;
                }
            }
            None => self.insert_position(slot, inst_slot, qty),
        }
        self.touches.push(Touch::Account(slot));
    }

    fn insert_position(&mut self, account: u32, instrument: u32, qty: Dec8) {
        let holders = &mut self.instruments[instrument as usize].holders;
        let p = self.positions.insert(Position {
            account,
            instrument,
            qty,
            next: self.accounts[account as usize].first_position,
            holder_index: holders.len() as u32,
            triggers: [NIL; 3],
        });
        holders.push(p);
        let acct = &mut self.accounts[account as usize];
        acct.first_position = p;
        acct.position_count += 1;
    }

    fn remove_position(&mut self, account: u32, p: u32) {
        let position = *self.positions.get(p);
        let heaps = &mut self.position_triggers[position.instrument as usize];
        set_trigger(heaps, &mut self.positions, p, DOWN, None);
        set_trigger(heaps, &mut self.positions, p, UP, None);
        set_trigger(heaps, &mut self.positions, p, FACTOR, None);
        let holders = &mut self.instruments[position.instrument as usize].holders;
        holders.swap_remove(position.holder_index as usize);
        if let Some(&moved) = holders.get(position.holder_index as usize) {
            self.positions.get_mut(moved).holder_index = position.holder_index;
        }
        let acct = &mut self.accounts[account as usize];
        acct.position_count -= 1;
        if acct.first_position == p {
            acct.first_position = position.next;
        } else {
            let mut q = acct.first_position;
            while self.positions.get(q).next != p {
                q = self.positions.get(q).next;
            }
            self.positions.get_mut(q).next = position.next;
        }
        self.positions.remove(p);
    }

    fn on_balance(&mut self, e: &BalanceChange) {
        let asset_slot = self.asset_slots[&e.asset.0];
        let slot = self.account_slot_or_create(e.account);
        self.accounts[slot as usize].cooldown_since = None;
        let amount = e.amount.dec();
        if e.asset == QUOTE_ASSET {
            let account = &mut self.accounts[slot as usize];
            account.quote = Dec8(account.quote.0 + amount.0);
        } else {
            match self.find_balance(slot, asset_slot) {
                Some(b) => {
                    let new_amount = Dec8(self.balances.get(b).amount.0 + amount.0);
                    if new_amount.is_zero() {
                        self.remove_balance(slot, b);
                    } else {
                        self.balances.get_mut(b).amount = new_amount;
                    }
                }
                None if amount.is_zero() => {}
                None => self.insert_balance(slot, asset_slot, amount),
            }
        }
        self.touches.push(Touch::Account(slot));
    }

    fn insert_balance(&mut self, account: u32, asset: u32, amount: Dec8) {
        let holders = &mut self.assets[asset as usize].holders;
        let b = self.balances.insert(Balance {
            account,
            asset,
            amount,
            next: self.accounts[account as usize].first_balance,
            holder_index: holders.len() as u32,
            triggers: [NIL; 3],
        });
        holders.push(b);
        let acct = &mut self.accounts[account as usize];
        acct.first_balance = b;
        acct.balance_count += 1;
    }

    fn remove_balance(&mut self, account: u32, b: u32) {
        let balance = *self.balances.get(b);
        let heaps = &mut self.balance_triggers[balance.asset as usize];
        set_trigger(heaps, &mut self.balances, b, DOWN, None);
        set_trigger(heaps, &mut self.balances, b, UP, None);
        let holders = &mut self.assets[balance.asset as usize].holders;
        holders.swap_remove(balance.holder_index as usize);
        if let Some(&moved) = holders.get(balance.holder_index as usize) {
            self.balances.get_mut(moved).holder_index = balance.holder_index;
        }
        let acct = &mut self.accounts[account as usize];
        acct.balance_count -= 1;
        if acct.first_balance == b {
            acct.first_balance = balance.next;
        } else {
            let mut q = acct.first_balance;
            while self.balances.get(q).next != b {
                q = self.balances.get(q).next;
            }
            self.balances.get_mut(q).next = balance.next;
        }
        self.balances.remove(b);
    }

    fn on_funding(&mut self, e: &Funding) {
        let slot = self.instrument_slots[&e.instrument.0];
        let instrument = &self.instruments[slot as usize];
        for &p in &instrument.holders {
            let position = self.positions.get(p);
            let payment = self.funding_payment(instrument, position.qty, e.rate);
            let account = &mut self.accounts[position.account as usize];
            account.quote = Dec8(account.quote.0 - payment.0);
        }
        self.touches.push(Touch::InstrumentHolders(slot));
    }

    // ----- halts and cooldowns -------------------------------------------

    /// Stale halts: an instrument's staleness can only start because `now`
    /// passed its deadline (the deadline heap's minimum, O(1) to check) or
    /// change because its mark or RiskParams changed (`stale_dirty`).
    fn update_stale_halts(&mut self) {
        for n in 0..self.stale_dirty.len() {
            let slot = self.stale_dirty[n];
            self.refresh_staleness(slot, false);
        }
        self.stale_dirty.clear();
        while let Some(top) = self.stale_deadlines.peek() {
            // Stale iff now − ts > max, i.e. now > ts + max (the key).
            if top.key >= self.now {
                break;
            }
            self.refresh_staleness(top.slot, true);
        }
    }

    /// Recomputes one instrument's staleness exactly (emitting a halt on a
    /// change) and its place in the deadline heap: there while watched and
    /// not stale, keyed at its deadline (`exact`) or at most at it.
    fn refresh_staleness(&mut self, slot: u32, exact: bool) {
        let instrument = &mut self.instruments[slot as usize];
        let max = instrument.risk.map_or(0, |r| r.max_staleness_ns);
        let watched = max > 0 && instrument.has_mark;
        let stale = watched && self.now.saturating_sub(instrument.mark_ts) > max;
        if stale != instrument.halted_stale {
            instrument.halted_stale = stale;
            self.halts.push(Halt {
                ts: UnixNanos(0),
                seq: Seq(0),
                instrument: instrument.id,
                reason: HaltReason::Stale,
                on: stale,
            });
            if !stale {
                self.touches.push(Touch::InstrumentHolders(slot));
            }
        }
        let deadline = instrument.mark_ts.saturating_add(max);
        let at = instrument.stale_handle;
        if watched && !stale {
            if at == NIL {
                self.stale_deadlines
                    .insert(deadline, slot, &mut self.instruments);
            } else if exact || self.stale_deadlines_key(at) > deadline {
                self.stale_deadlines
                    .update(at, deadline, &mut self.instruments);
            }
        } else if at != NIL {
            self.stale_deadlines.remove(at, &mut self.instruments);
            self.instruments[slot as usize].stale_handle = NIL;
        }
    }

    fn stale_deadlines_key(&self, at: u32) -> u64 {
        self.stale_deadlines.key_at(at)
    }

    /// Ends the cooldowns that expired by `now`; queues escalations.
    fn expire_cooldowns(&mut self) {
        let length = self.params.liquidation_cooldown_ns;
        while let Some(entry) = self.cooldowns.front().copied() {
            let account = &self.accounts[entry.account as usize];
            let live = account.cooldown_since == Some(entry.since)
                && account.cooldown_generation == entry.generation;
            if live && entry.since.saturating_add(length) > self.now {
                break;
            }
            self.cooldowns.pop_front();
            if !live {
                continue;
            }
            self.accounts[entry.account as usize].cooldown_since = None;
            self.accounts[entry.account as usize].considered_epoch = self.epoch;
            self.trigger_stats.evaluations += 1;
            // A cooling account has no triggers; one that ends its cooldown
            // blocked (unpriced, halted) needs none either: the end of the
            // block evaluates it.
            if let Standing::Priced {
                figures,
                halted: false,
            } = self.evaluate(entry.account)
            {
                if figures.equity < figures.maint_margin {
                    self.due.push(Due {
                        account: self.accounts[entry.account as usize].id,
                        slot: entry.account,
                        figures,
                        escalation: true,
                    });
                } else {
                    self.arm(entry.account, &figures);
                }
            }
        }
    }

    // ----- evaluation ----------------------------------------------------

    /// The account's §2 figures and whether a held instrument is halted.
    fn evaluate(&self, slot: u32) -> Standing {
        let account = &self.accounts[slot as usize];
        let mut equity = account.quote.0;
        let mut value = account.quote.0;
        let mut maint = 0i128;
        let mut initial = 0i128;
        let mut halted = false;
        let mut b = account.first_balance;
        while b != NIL {
            let balance = self.balances.get(b);
            let asset = &self.assets[balance.asset as usize];
            let Some(price) = asset.price else {
                return Standing::Unpriced;
            };
            let (haircut, plain) =
                collateral_terms(balance.amount, price, asset.weight, asset.liability_weight);
            equity += haircut.0;
            value += plain.0;
            b = balance.next;
        }
        let mut p = account.first_position;
        while p != NIL {
            let position = self.positions.get(p);
            let instrument = &self.instruments[position.instrument as usize];
            if !instrument.has_mark {
                return Standing::Unpriced;
            }
            halted |= instrument.halted();
            let f = position_figures(instrument, position.qty);
            equity += f.value.0;
            value += f.value.0;
            maint += f.mm.0;
            initial += f.im.0;
            p = position.next;
        }
        Standing::Priced {
            figures: Figures {
                equity: Dec8(equity),
                value: Dec8(value),
                maint_margin: Dec8(maint),
                initial_margin: Dec8(initial),
            },
            halted,
        }
    }

    /// Evaluates an account (once per event): due for liquidation, armed
    /// with fresh triggers when healthy, disarmed when blocked.
    fn consider(&mut self, slot: u32) {
        let account = &mut self.accounts[slot as usize];
        if account.considered_epoch == self.epoch {
            return;
        }
        account.considered_epoch = self.epoch;
        self.trigger_stats.evaluations += 1;
        if account.cooldown_since.is_some() {
            self.disarm(slot);
            return;
        }
        match self.evaluate(slot) {
            Standing::Priced {
                figures,
                halted: false,
            } => {
                if figures.equity < figures.maint_margin {
                    self.disarm(slot);
                    self.due.push(Due {
                        account: self.accounts[slot as usize].id,
                        slot,
                        figures,
                        escalation: false,
                    });
                } else {
                    self.arm(slot, &figures);
                }
            }
            _ => self.disarm(slot),
        }
    }

    // ----- the trigger index (see triggers.rs for the argument) ------------

    /// Gives a healthy, unblocked account fresh triggers for its figures.
    fn arm(&mut self, slot: u32, figures: &Figures) {
        if self.config.mode != EvaluationMode::Triggers {
            return;
        }
        self.trigger_stats.rearms += 1;
        let strategy = self.config.split;
        let default_sigma = i128::from(self.config.default_sigma.0);
        self.exposures.clear();
        let mut epsilon = 0i128;
        let account = self.accounts[slot as usize];
        let mut b = account.first_balance;
        while b != NIL {
            let balance = self.balances.get(b);
            let asset = &self.assets[balance.asset as usize];
            let price = asset.price.expect("an armed account is priced").0 as i64;
            let w = if balance.amount.0 >= 0 {
                asset.weight
            } else {
                asset.liability_weight
            };
            let (r_down, r_up) = balance_rates(balance.amount.0, w.0);
            epsilon += BALANCE_EPSILON;
            self.exposures.push(Exposure {
                slot: b,
                is_position: false,
                class: balance.asset,
                price,
                r_down,
                r_up,
                weight: split_weight(strategy, r_down, r_up, price, default_sigma),
                f_bound: 0,
            });
            b = balance.next;
        }
        // Positions: first the vol-factor bound each is armed for. With
        // RiskParams, `f·(1 + vol_headroom)` (capped) if the MM that much
        // headroom could add (charged up front) leaves at least half of the
        // slack, else `f` itself (re-armed at any rise of f).
        let balances_end = self.exposures.len();
        let (mut eps_tight, mut eps_roomy) = (epsilon, epsilon);
        let headroom = self.config.vol_headroom;
        let mut p = account.first_position;
        while p != NIL {
            let position = self.positions.get(p);
            let instrument = &self.instruments[position.instrument as usize];
            let f = instrument.vol_factor.0;
            let tiers = instrument.tiers().len();
            let roomy = match instrument.risk {
                Some(risk) => factor_bound(instrument.vol_factor, risk.vol_max_factor, headroom).0,
                None => f,
            };
            eps_tight += position_epsilon(f, tiers);
            eps_roomy += position_epsilon(roomy, tiers);
            if roomy > f {
                let mm_raw = position_figures(instrument, position.qty).mm_raw.0;
                eps_roomy = eps_roomy.saturating_add(factor_charge(roomy - f, mm_raw, tiers));
            }
            self.exposures.push(Exposure {
                slot: p,
                is_position: true,
                class: position.instrument,
                price: instrument.mark.0 as i64,
                r_down: Bf::ZERO,
                r_up: Bf::ZERO,
                weight: Bf::ZERO,
                f_bound: if instrument.risk.is_some() { roomy } else { 0 },
            });
            p = position.next;
        }
        let slack = figures.equity.0 - figures.maint_margin.0;
        let use_headroom = slack - eps_roomy >= (slack - eps_tight) / 2;
        epsilon = if use_headroom { eps_roomy } else { eps_tight };
        for n in balances_end..self.exposures.len() {
            let x = &mut self.exposures[n];
            let position = self.positions.get(x.slot);
            let instrument = &self.instruments[x.class as usize];
            let f = instrument.vol_factor.0;
            if !use_headroom && x.f_bound != 0 {
                x.f_bound = f;
            }
            let (r_down, r_up) = position_rates(
                position.qty.0,
                instrument.multiplier.0,
                x.f_bound.max(f),
                instrument.mmr_max().0,
            );
            // σ (a square root) only where the split uses it. Without
            // RiskParams the variance stays 0: σ = 0.
            let sigma = match strategy {
                SplitStrategy::NotionalVol => sigma8(instrument.variance16).max(default_sigma),
                _ => default_sigma,
            };
            x.r_down = r_down;
            x.r_up = r_up;
            x.weight = split_weight(strategy, r_down, r_up, x.price, sigma);
        }
        let net = slack - epsilon;
        let tight = net < 0;
        self.budgets.clear();
        self.budgets.resize(self.exposures.len(), Bf::ZERO);
        if !tight && !self.exposures.is_empty() {
            split(strategy, net, &self.exposures, &mut self.budgets);
        }
        for n in 0..self.exposures.len() {
            let x = self.exposures[n];
            let (down, up) = keys(x.price, self.budgets[n], x.r_down, x.r_up, tight);
            if x.is_position {
                // Without RiskParams f cannot change (RiskParams evaluate
                // every holder): no factor trigger.
                let bound = (x.f_bound != 0).then_some(x.f_bound as i64);
                let heaps = &mut self.position_triggers[x.class as usize];
                set_trigger(heaps, &mut self.positions, x.slot, DOWN, down);
                set_trigger(heaps, &mut self.positions, x.slot, UP, up);
                set_trigger(heaps, &mut self.positions, x.slot, FACTOR, bound);
            } else {
                let heaps = &mut self.balance_triggers[x.class as usize];
                set_trigger(heaps, &mut self.balances, x.slot, DOWN, down);
                set_trigger(heaps, &mut self.balances, x.slot, UP, up);
            }
        }
        self.accounts[slot as usize].armed = !self.exposures.is_empty();
    }

    /// Removes every trigger of an account.
    fn disarm(&mut self, slot: u32) {
        let account = &mut self.accounts[slot as usize];
        if !account.armed {
            return;
        }
        account.armed = false;
        let (first_position, first_balance) = (account.first_position, account.first_balance);
        let mut p = first_position;
        while p != NIL {
            let heaps = &mut self.position_triggers[self.positions.get(p).instrument as usize];
            set_trigger(heaps, &mut self.positions, p, DOWN, None);
            set_trigger(heaps, &mut self.positions, p, UP, None);
            set_trigger(heaps, &mut self.positions, p, FACTOR, None);
            p = self.positions.get(p).next;
        }
        let mut b = first_balance;
        while b != NIL {
            let heaps = &mut self.balance_triggers[self.balances.get(b).asset as usize];
            set_trigger(heaps, &mut self.balances, b, DOWN, None);
            set_trigger(heaps, &mut self.balances, b, UP, None);
            b = self.balances.get(b).next;
        }
    }

    /// Pops the triggers of an instrument's positions (`is_position`) or an
    /// asset's balances that `price` crosses, and evaluates their accounts
    /// (which re-arms them beyond `price`).
    fn pop_crossed(&mut self, is_position: bool, class: u32, price: i64) {
        for side in [DOWN, UP] {
            self.pop_side(is_position, class, side, priority(side, price));
        }
    }

    /// Pops one heap's entries with a key `≤ threshold` and evaluates their
    /// accounts.
    fn pop_side(&mut self, is_position: bool, class: u32, side: usize, threshold: i64) {
        loop {
            let account = if is_position {
                let heap = &mut self.position_triggers[class as usize][side];
                match heap.peek() {
                    Some(top) if top.key <= threshold => {
                        heap.remove(0, &mut self.positions);
                        self.positions.get_mut(top.slot).triggers[side] = NIL;
                        self.positions.get(top.slot).account
                    }
                    _ => break,
                }
            } else {
                let heap = &mut self.balance_triggers[class as usize][side];
                match heap.peek() {
                    Some(top) if top.key <= threshold => {
                        heap.remove(0, &mut self.balances);
                        self.balances.get_mut(top.slot).triggers[side] = NIL;
                        self.balances.get(top.slot).account
                    }
                    _ => break,
                }
            };
            self.trigger_stats.crossed += 1;
            if side == FACTOR {
                self.trigger_stats.factor_crossed += 1;
            }
            // Accounts evaluated earlier in this event were armed at the
            // current prices: none of their triggers is crossed.
            debug_assert!(
                self.accounts[account as usize].considered_epoch != self.epoch,
                "a crossed trigger of an account already evaluated in this event"
            );
            self.consider(account);
        }
    }

    fn consider_touched(&mut self) {
        for n in 0..self.touches.len() {
            match self.touches[n] {
                Touch::Account(slot) => self.consider(slot),
                Touch::InstrumentCrossed(i) => {
                    let price = self.instruments[i as usize].mark.0 as i64;
                    self.pop_crossed(true, i, price);
                }
                Touch::FactorCrossed(i) => {
                    // Bounds below the new factor: key < f, i.e. ≤ f − 1.
                    let f = self.instruments[i as usize].vol_factor.0 as i64;
                    self.pop_side(true, i, FACTOR, f - 1);
                }
                Touch::AssetCrossed(a) => {
                    let price = self.assets[a as usize]
                        .price
                        .expect("a crossed asset has a price")
                        .0 as i64;
                    self.pop_crossed(false, a, price);
                }
                Touch::InstrumentHolders(i) => {
                    self.trigger_stats.holder_sweeps += 1;
                    for h in 0..self.instruments[i as usize].holders.len() {
                        let p = self.instruments[i as usize].holders[h];
                        let account = self.positions.get(p).account;
                        self.consider(account);
                    }
                }
                Touch::AssetHolders(a) => {
                    self.trigger_stats.holder_sweeps += 1;
                    for h in 0..self.assets[a as usize].holders.len() {
                        let b = self.assets[a as usize].holders[h];
                        let account = self.balances.get(b).account;
                        self.consider(account);
                    }
                }
            }
        }
    }

    // ----- decisions -------------------------------------------------------

    fn emit(&mut self, seq: Seq, ts: UnixNanos, sink: &mut dyn Sink) {
        self.halts
            .sort_unstable_by_key(|h| (h.instrument, h.reason));
        for halt in &mut self.halts {
            halt.ts = ts;
            halt.seq = seq;
            sink.halt(halt);
        }
        self.stats.halts += self.halts.len() as u64;
        self.due.sort_unstable_by_key(|d| d.account);
        for n in 0..self.due.len() {
            let due = self.due[n];
            self.liquidate(due, seq, ts, sink);
        }
    }

    fn liquidate(&mut self, due: Due, seq: Seq, ts: UnixNanos, sink: &mut dyn Sink) {
        let figures = due.figures;
        let bankrupt = figures.value.is_negative();
        self.plan_legs.clear();
        let mut p = self.accounts[due.slot as usize].first_position;
        while p != NIL {
            let position = *self.positions.get(p);
            let instrument = &self.instruments[position.instrument as usize];
            let f: PositionFigures = position_figures(instrument, position.qty);
            self.plan_legs.push(PlanLeg {
                instrument: position.instrument,
                instrument_id: instrument.id,
                qty: position.qty,
                mm: f.mm,
                close: 0,
            });
            p = position.next;
        }
        self.plan_legs
            .sort_unstable_by(|a, b| b.mm.cmp(&a.mm).then(a.instrument_id.cmp(&b.instrument_id)));
        let partial_allowed = self.params.partial_liquidation && !bankrupt && !due.escalation;
        let partial = plan(
            &mut self.plan_legs,
            &self.instruments,
            figures.equity,
            partial_allowed,
        );
        self.legs.clear();
        for leg in self.plan_legs.iter().filter(|l| l.close > 0) {
            let instrument = &self.instruments[leg.instrument as usize];
            self.legs.push(Leg {
                instrument: leg.instrument_id,
                qty: Dec8(-leg.qty.signum() * leg.close),
                limit_price: limit_price(instrument, leg.qty, figures.value),
            });
        }
        let liquidation = Liquidation {
            ts,
            seq,
            account: due.account,
            equity: figures.equity,
            maint_margin: figures.maint_margin,
            partial,
            bankrupt,
            escalation: due.escalation,
        };
        sink.liquidation(&liquidation, &self.legs);
        self.stats.liquidations += 1;
        self.disarm(due.slot);
        let account = &mut self.accounts[due.slot as usize];
        account.cooldown_since = Some(self.now);
        account.cooldown_generation = account.cooldown_generation.wrapping_add(1);
        self.cooldowns.push_back(CooldownEntry {
            since: self.now,
            account: due.slot,
            generation: account.cooldown_generation,
        });
    }
}

impl Engine {
    /// The trigger invariant, checked by recomputing everything (debug
    /// builds): every account that is liquidatable and unblocked was
    /// evaluated in this event, and no trigger is left crossed.
    #[cfg(debug_assertions)]
    fn check_invariant(&self) {
        for (slot, account) in self.accounts.iter().enumerate() {
            if account.cooldown_since.is_some() || account.considered_epoch == self.epoch {
                continue;
            }
            if let Standing::Priced {
                figures,
                halted: false,
            } = self.evaluate(slot as u32)
            {
                assert!(
                    figures.equity >= figures.maint_margin,
                    "trigger invariant broken: account {} is liquidatable (E {} < MM {}) \
                     but was not evaluated in event {}",
                    account.id,
                    figures.equity,
                    figures.maint_margin,
                    self.epoch
                );
            }
        }
        for (i, heaps) in self.position_triggers.iter().enumerate() {
            if let Some(top) = heaps[FACTOR].peek() {
                assert!(
                    top.key >= self.instruments[i].vol_factor.0 as i64,
                    "crossed factor trigger left"
                );
            }
            let price = self.instruments[i].mark.0 as i64;
            for side in [DOWN, UP] {
                if let Some(top) = heaps[side].peek() {
                    assert!(top.key > priority(side, price), "crossed trigger left");
                    let position = self.positions.get(top.slot);
                    assert_eq!(position.triggers[side], 0);
                    assert_eq!(position.instrument as usize, i);
                    assert!(self.accounts[position.account as usize].armed);
                }
            }
        }
        for (a, heaps) in self.balance_triggers.iter().enumerate() {
            for side in [DOWN, UP] {
                if let Some(top) = heaps[side].peek() {
                    let price = self.assets[a].price.expect("armed balances are priced").0 as i64;
                    assert!(top.key > priority(side, price), "crossed trigger left");
                    let balance = self.balances.get(top.slot);
                    assert_eq!(balance.triggers[side], 0);
                    assert!(self.accounts[balance.account as usize].armed);
                }
            }
        }
    }
}

/// A configured reservation, or `min(accounts, cap)` if 0.
fn reserved(configured: u32, accounts: usize, cap: usize) -> usize {
    if configured == 0 {
        accounts.min(cap)
    } else {
        configured as usize
    }
}

fn trigger_heaps() -> [IndexedHeap<i64>; 2] {
    // (Balances: down and up. Positions have a third, see `position_triggers`.)
    [
        IndexedHeap::with_capacity(DOWN, 0),
        IndexedHeap::with_capacity(UP, 0),
    ]
}

/// Sets, moves or clears one trigger of a position or balance slot.
fn set_trigger<T: Triggered + Default + Copy>(
    heaps: &mut [IndexedHeap<i64>],
    store: &mut Slab<T>,
    slot: u32,
    side: usize,
    key: Option<i64>,
) {
    let at = store.get_mut(slot).triggers_mut()[side];
    match (key, at != NIL) {
        (Some(key), true) => heaps[side].update(at, priority(side, key), store),
        (Some(key), false) => heaps[side].insert(priority(side, key), slot, store),
        (None, true) => {
            heaps[side].remove(at, store);
            store.get_mut(slot).triggers_mut()[side] = NIL;
        }
        (None, false) => {}
    }
}

/// The bound a vol factor's holders are armed for: `f·(1 + headroom)`,
/// rounded up to 10⁻⁸, at most the cap (and at least `f`).
fn factor_bound(f: Dec8, cap: Fixed8, headroom: Fixed8) -> Dec8 {
    let extra = crate::arith::div_ceil(f.0 * i128::from(headroom.0.max(0)), E8);
    Dec8((f.0 + extra).min(i128::from(cap.0)).max(f.0))
}

fn split_weight(strategy: SplitStrategy, r_down: Bf, r_up: Bf, price: i64, sigma: i128) -> Bf {
    match strategy {
        SplitStrategy::Equal => Bf::ZERO,
        SplitStrategy::Notional => weight(r_down, r_up, price, 1),
        SplitStrategy::NotionalVol => weight(r_down, r_up, price, sigma),
    }
}

impl MarginEngine for Engine {
    fn apply(&mut self, seq: Seq, event: &Event, sink: &mut dyn Sink) -> Result<(), Reject> {
        if let Err(reject) = self.validate(event) {
            self.stats.events_rejected += 1;
            return Err(reject);
        }
        self.stats.events_applied += 1;
        self.epoch += 1;
        self.now = self.now.max(event.ts().0);
        self.touches.clear();
        self.halts.clear();
        self.due.clear();
        self.apply_event(event);
        self.update_stale_halts();
        self.expire_cooldowns();
        self.consider_touched();
        #[cfg(debug_assertions)]
        if self.config.check_invariant {
            self.check_invariant();
        }
        self.emit(seq, event.ts(), sink);
        Ok(())
    }

    fn figures(&self, account: AccountId) -> Option<Figures> {
        match self.standing(account)? {
            Standing::Priced { figures, .. } => Some(figures),
            Standing::Unpriced => None,
        }
    }

    fn account_ids(&self) -> Vec<AccountId> {
        let mut ids: Vec<AccountId> = self.accounts.iter().map(|a| a.id).collect();
        ids.sort_unstable();
        ids
    }

    fn stats(&self) -> Stats {
        self.stats
    }
}

fn positive(x: Fixed8, what: &'static str) -> Result<(), Reject> {
    if x.0 > 0 {
        Ok(())
    } else {
        Err(Reject::OutOfRange(what))
    }
}

/// MARGIN.md §9's validation of a tier table, fee and multiplier.
pub(crate) fn validate_tiers(e: &InstrumentDef) -> Result<(), Reject> {
    let count = usize::from(e.tiers.count);
    if !(1..=TIERS_MAX).contains(&count) {
        return Err(Reject::InvalidDefinition("tier count must be in 1..=16"));
    }
    let tiers = e.tiers.as_slice();
    if tiers[0].notional_floor.0 != 0 {
        return Err(Reject::InvalidDefinition(
            "the first tier's floor must be 0",
        ));
    }
    for pair in tiers.windows(2) {
        if pair[1].notional_floor <= pair[0].notional_floor {
            return Err(Reject::InvalidDefinition(
                "floors must be strictly increasing",
            ));
        }
        if pair[1].mmr < pair[0].mmr || pair[1].imr < pair[0].imr {
            return Err(Reject::InvalidDefinition(
                "mmr and imr must be non-decreasing",
            ));
        }
    }
    for tier in tiers {
        if tier.mmr >= tier.imr || tier.imr > Fixed8::ONE {
            return Err(Reject::InvalidDefinition("each tier needs mmr < imr ≤ 1"));
        }
    }
    if e.liquidation_fee.0 < 0 || e.liquidation_fee >= tiers[0].mmr {
        return Err(Reject::InvalidDefinition(
            "liquidation_fee must be in [0, mmr_1)",
        ));
    }
    if e.multiplier.0 <= 0 {
        return Err(Reject::InvalidDefinition("multiplier must be > 0"));
    }
    Ok(())
}

fn validate_risk(e: &RiskParams) -> Result<(), Reject> {
    let lambda = e.vol_lambda.0 as i128;
    if lambda <= 0 || lambda >= E8 {
        return Err(Reject::OutOfRange("vol_lambda must be in (0, 1)"));
    }
    if e.vol_ref.0 <= 0 {
        return Err(Reject::OutOfRange("vol_ref must be > 0"));
    }
    let cap = e.vol_max_factor.0 as i128;
    if !(E8..=FACTOR_MANTISSA_MAX).contains(&cap) {
        return Err(Reject::OutOfRange("vol_max_factor must be in [1, 100]"));
    }
    if e.max_jump.0 < 0 {
        return Err(Reject::OutOfRange("max_jump must be ≥ 0"));
    }
    Ok(())
}

/// `|price − reference| ≤ max_jump × reference`, exactly.
fn within(price: Dec8, reference: Dec8, max_jump: Dec8) -> bool {
    // |Δ| < 2⁶⁴, ×10⁸ < 2⁹¹; max_jump × reference < 2¹²⁶.
    (price.0 - reference.0).abs() * E8 <= max_jump.0 * reference.0
}

/// `round16(λ·var + (1 − λ)·r²)` with `var` at scale 10⁻¹⁶ and `r` at 10⁻⁸.
///
/// Every accepted mark of an instrument with RiskParams runs this: in i128
/// when the terms fit (the usual case: `0 < λ, 1 − λ < 2²⁷`, so with
/// `0 ≤ var < 2⁹⁹` and `|r| < 2⁴⁹` — a return under ~5.6 × 10⁶ — both
/// products and their sum stay below 2¹²⁷), else in 256 bits. Same value
/// either way (the tests compare them).
pub(crate) fn next_variance(var16: I256, lambda: Fixed8, r: Dec8) -> I256 {
    if let Ok(var) = i128::try_from(var16) {
        if (0..1 << 99).contains(&var) && r.0.unsigned_abs() < 1 << 49 {
            let lambda = i128::from(lambda.0);
            let scaled = lambda * var + (E8 - lambda) * (r.0 * r.0);
            return I256::from(div_round_half_even(scaled, E8));
        }
    }
    next_variance_wide(var16, lambda, r)
}

/// [`next_variance`] in 256-bit arithmetic throughout.
pub(crate) fn next_variance_wide(var16: I256, lambda: Fixed8, r: Dec8) -> I256 {
    let lambda = I256::from(lambda.0);
    let r = I256::from(r.0);
    let scaled = lambda * var16 + (I256::from(E8) - lambda) * r * r;
    div_round_half_even_256(scaled, I256::from(E8))
}

/// `f = min(F_max, max(1, floor2(√var / σ_ref)))`, exactly: with
/// `var = V·10⁻¹⁶` and `σ_ref = S·10⁻⁸`, `floor2(√var/σ_ref) = ⌊⌊√(10⁴·V)⌋ / S⌋ / 100`.
///
/// Every accepted mark of an instrument with RiskParams runs this. When
/// `x = 10⁴·V` fits a u128 (short of a variance above ~3·10¹⁸): `f = 1`
/// iff `⌊√x⌋ < 101·S` iff `x < (101·S)²`, a comparison (the quiet
/// market's case: no root at all); else the root is below 2⁶⁴ and both
/// divisions are u64 ones. Beyond u128, 256-bit arithmetic.
pub(crate) fn vol_factor(var16: I256, vol_ref: Fixed8, cap: Fixed8) -> Dec8 {
    let small = u128::try_from(var16)
        .ok()
        .and_then(|v| v.checked_mul(10_000));
    let Some(x) = small else {
        return vol_factor_wide(var16, vol_ref, cap);
    };
    // vol_ref > 0 (validated RiskParams); 101·S < 2⁷⁰.
    let one_limit = 101 * vol_ref.0 as u128;
    if one_limit
        .checked_mul(one_limit)
        .is_none_or(|limit| x < limit)
    {
        return Dec8::ONE;
    }
    // ⌊√x⌋ < 2⁶⁴ for x < 2¹²⁸.
    let root = num_integer::Roots::sqrt(&x) as u64;
    let hundredths = i128::from(root / vol_ref.0 as u64);
    factor_of_hundredths(Some(hundredths), cap)
}

/// [`vol_factor`] in 256-bit arithmetic throughout.
pub(crate) fn vol_factor_wide(var16: I256, vol_ref: Fixed8, cap: Fixed8) -> Dec8 {
    let root = isqrt_256(var16 * I256::from(10_000u32));
    let hundredths = root / I256::from(vol_ref.0);
    factor_of_hundredths(narrow_256(hundredths), cap)
}

/// `⌊√var⌋` at scale 10⁻⁸ (saturated), the volatility per mark (0 without
/// RiskParams: the variance stays 0).
pub(crate) fn sigma8(var16: I256) -> i128 {
    match u128::try_from(var16)
        .ok()
        .and_then(|v| v.checked_mul(10_000))
    {
        Some(x) => i128::from(num_integer::Roots::sqrt(&x) as u64 / 100),
        None => sigma8_wide(var16),
    }
}

fn sigma8_wide(var16: I256) -> i128 {
    let root = isqrt_256(var16 * I256::from(10_000u32));
    narrow_256(root / I256::from(100u8)).unwrap_or(i128::MAX)
}

/// `min(cap, max(1, h/100))` for `h = ⌊√var/σ_ref⌋` in hundredths (`None`:
/// beyond i128).
fn factor_of_hundredths(hundredths: Option<i128>, cap: Fixed8) -> Dec8 {
    let cap = cap.dec();
    // Compare in hundredths: cap has 8 places, so cap·100 / 10⁸ may be fractional.
    match hundredths {
        Some(h) if h <= 100 => Dec8::ONE,
        Some(h) if h.checked_mul(1_000_000).is_some_and(|m| m < cap.0) => Dec8(h * 1_000_000),
        _ => cap,
    }
}

/// `max(10⁻⁸, round8(M − U / (q·m)))` with the full current `q`, capped at
/// the largest Fixed8 price.
fn limit_price(instrument: &InstrumentState, qty: Dec8, value: Dec8) -> Dec8 {
    // (M·q·m − U·10¹⁶) / (q·m) at scale 10⁻⁸.
    let qm = I256::from(qty.0) * I256::from(instrument.multiplier.0);
    let numerator =
        I256::from(instrument.mark.0) * qm - I256::from(value.0) * I256::from(10i128.pow(16));
    let (numerator, denominator) = if qm < I256::ZERO {
        (-numerator, -qm)
    } else {
        (numerator, qm)
    };
    // A limit price must fit the wire: capped at the largest price.
    let price = narrow_256(div_round_half_even_256(numerator, denominator))
        .unwrap_or(PRICE_MANTISSA_MAX)
        .min(PRICE_MANTISSA_MAX);
    Dec8(price.max(1))
}

#[cfg(test)]
mod vol_tests {
    use super::*;
    use proptest::prelude::*;

    fn var_strategy() -> impl Strategy<Value = I256> {
        prop_oneof![
            (0i128..1 << 40).prop_map(I256::from),
            (0i128..=i128::MAX).prop_map(I256::from),
            ((1i128 << 98)..(1i128 << 100)).prop_map(I256::from),
            (0u128..u128::MAX / 10_000 + 2).prop_map(I256::from),
            (any::<i128>(), 0u32..90).prop_map(|(x, s)| I256::from(x.unsigned_abs()) << s),
        ]
    }

    proptest! {
        /// The i128 / u64 fast paths give exactly the 256-bit results.
        #[test]
        fn fast_paths_equal_the_wide_arithmetic(
            var in var_strategy(),
            lambda in 1i64..100_000_000,
            r in prop_oneof![
                -1_000_000i128..1_000_000,
                ((1i128 << 48) - 8..(1i128 << 49) + 8).prop_map(|r| r * if r % 2 == 0 { 1 } else { -1 }),
                -(1i128 << 91)..(1i128 << 91),
            ],
            vol_ref in prop_oneof![1i64..10, 1i64..100_000_000, 1i64..i64::MAX],
            cap in prop_oneof![Just(100_000_000i64), 100_000_000i64..=10_000_000_000],
        ) {
            let (lambda, r) = (Fixed8(lambda), Dec8(r));
            prop_assert_eq!(next_variance(var, lambda, r), next_variance_wide(var, lambda, r));
            let (vol_ref, cap) = (Fixed8(vol_ref), Fixed8(cap));
            prop_assert_eq!(vol_factor(var, vol_ref, cap), vol_factor_wide(var, vol_ref, cap));
            prop_assert_eq!(sigma8(var), sigma8_wide(var));
            // Around f = 1's edge: x = (101·S)² and its neighbours.
            let edge = I256::from(101 * vol_ref.0 as u128) * I256::from(101 * vol_ref.0 as u128);
            for x in [edge - I256::ONE, edge, edge + I256::ONE] {
                // var16 = ⌈x / 10⁴⌉ and ⌊x / 10⁴⌋.
                for var in [x / I256::from(10_000u32), (x + I256::from(9_999u32)) / I256::from(10_000u32)] {
                    prop_assert_eq!(vol_factor(var, vol_ref, cap), vol_factor_wide(var, vol_ref, cap));
                }
            }
        }
    }
}
