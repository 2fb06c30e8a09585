//! The fast engine's state: dense slot tables for instruments, assets and
//! accounts, and slabs of positions and non-quote balances threaded into
//! per-account lists and indexed per instrument / per asset (the holders).

use bnum::types::I256;

use crate::arith::{mul_round8, pow10};
use crate::triggers::Handles;
use crate::types::{
    AccountId, AssetId, Dec8, InstrumentDef, InstrumentId, RiskParams, Symbol, TIERS_MAX,
};

/// "No slot" in the intrusive lists.
pub(crate) const NIL: u32 = u32::MAX;

/// One tier with its precomputed maintenance amounts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct TierRule {
    pub floor: Dec8,
    pub mmr: Dec8,
    pub imr: Dec8,
    /// `cumM_t`: Σ round8(floor_k × (mmr_k − mmr_{k−1})).
    pub cum_mm: Dec8,
    /// `cumI_t`, rounded likewise.
    pub cum_im: Dec8,
    /// `cumIx_t`: the same sum for imr without rounding, at scale 10⁻¹⁶.
    pub cum_imx16: i128,
}

/// Builds the tier table of a validated definition.
pub(crate) fn tier_rules(def: &InstrumentDef) -> ([TierRule; TIERS_MAX], u8) {
    let mut rules = [TierRule::default(); TIERS_MAX];
    let tiers = def.tiers.as_slice();
    for (t, tier) in tiers.iter().enumerate() {
        let rule = &mut rules[t];
        rule.floor = tier.notional_floor.dec();
        rule.mmr = tier.mmr.dec();
        rule.imr = tier.imr.dec();
        if t > 0 {
            let prev = tiers[t - 1];
            let d_mmr = Dec8(rule.mmr.0 - prev.mmr.dec().0);
            let d_imr = Dec8(rule.imr.0 - prev.imr.dec().0);
            let prev_rule = rules[t - 1];
            let rule = &mut rules[t];
            rule.cum_mm = Dec8(prev_rule.cum_mm.0 + round8_product(rule.floor, d_mmr).0);
            rule.cum_im = Dec8(prev_rule.cum_im.0 + round8_product(rule.floor, d_imr).0);
            rule.cum_imx16 = prev_rule.cum_imx16 + rule.floor.0 * d_imr.0;
        }
    }
    (rules, tiers.len() as u8)
}

fn round8_product(a: Dec8, b: Dec8) -> Dec8 {
    // floor ≤ 2⁶³ and Δrate ≤ 1: the product fits.
    mul_round8(a, b).expect("tier products are bounded by the Fixed8 range")
}

#[derive(Clone, Debug)]
pub(crate) struct InstrumentState {
    pub id: InstrumentId,
    pub symbol: Symbol,
    pub multiplier: Dec8,
    pub fee: Dec8,
    pub tiers: [TierRule; TIERS_MAX],
    pub tier_count: u8,
    /// Last accepted mark; meaningful only when `has_mark`.
    pub mark: Dec8,
    pub has_mark: bool,
    pub mark_ts: u64,
    /// `M × m` exactly, at scale 10⁻¹⁶.
    pub mark_mult16: i128,
    pub risk: Option<RiskParams>,
    /// EWMA variance of mark returns at scale 10⁻¹⁶.
    pub variance16: I256,
    /// `f_i`, at least 1.
    pub vol_factor: Dec8,
    /// A mark held by the jump guard, with its ts.
    pub held: Option<(Dec8, u64)>,
    pub halted_stale: bool,
    pub halted_jump: bool,
    /// Position slots with q ≠ 0 in this instrument.
    pub holders: Vec<u32>,
    /// Index in the engine's staleness-deadline heap, or NIL.
    pub stale_handle: u32,
}

impl InstrumentState {
    pub fn new(def: &InstrumentDef) -> InstrumentState {
        let (tiers, tier_count) = tier_rules(def);
        InstrumentState {
            id: def.instrument,
            symbol: def.symbol,
            multiplier: def.multiplier.dec(),
            fee: def.liquidation_fee.dec(),
            tiers,
            tier_count,
            mark: Dec8::ZERO,
            has_mark: false,
            mark_ts: 0,
            mark_mult16: 0,
            risk: None,
            variance16: I256::ZERO,
            vol_factor: Dec8::ONE,
            held: None,
            halted_stale: false,
            halted_jump: false,
            holders: Vec::new(),
            stale_handle: NIL,
        }
    }

    /// Replaces the definition, keeping mark, variance, halts and holders.
    pub fn redefine(&mut self, def: &InstrumentDef) {
        let (tiers, tier_count) = tier_rules(def);
        self.symbol = def.symbol;
        self.multiplier = def.multiplier.dec();
        self.fee = def.liquidation_fee.dec();
        self.tiers = tiers;
        self.tier_count = tier_count;
        self.mark_mult16 = self.mark.0 * self.multiplier.0;
    }

    pub fn tiers(&self) -> &[TierRule] {
        &self.tiers[..usize::from(self.tier_count)]
    }

    /// The highest maintenance rate of the tier table (mmr is non-decreasing).
    pub fn mmr_max(&self) -> Dec8 {
        self.tiers()[self.tiers().len() - 1].mmr
    }

    pub fn halted(&self) -> bool {
        self.halted_stale || self.halted_jump
    }

    /// The tier index (0-based) of a notional: the largest with floor ≤ N.
    #[inline]
    pub fn tier_of(&self, notional: Dec8) -> usize {
        let tiers = self.tiers();
        let mut t = 0;
        while t + 1 < tiers.len() && tiers[t + 1].floor <= notional {
            t += 1;
        }
        t
    }
}

#[derive(Clone, Debug)]
pub(crate) struct AssetState {
    pub id: AssetId,
    pub symbol: Symbol,
    pub weight: Dec8,
    pub liability_weight: Dec8,
    pub price: Option<Dec8>,
    /// Balance slots with b ≠ 0 in this asset.
    pub holders: Vec<u32>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Account {
    pub id: AccountId,
    pub quote: Dec8,
    pub first_position: u32,
    pub position_count: u32,
    pub first_balance: u32,
    pub balance_count: u32,
    /// `now` at the last liquidation, while cooling down.
    pub cooldown_since: Option<u64>,
    /// Bumped at each cooldown start; queue entries of older ones are stale.
    pub cooldown_generation: u32,
    /// The event (engine epoch) that last considered this account.
    pub considered_epoch: u64,
    /// Whether some of its positions or balances have triggers.
    pub armed: bool,
}

impl Account {
    pub fn new(id: AccountId) -> Account {
        Account {
            id,
            quote: Dec8::ZERO,
            first_position: NIL,
            position_count: 0,
            first_balance: NIL,
            balance_count: 0,
            cooldown_since: None,
            cooldown_generation: 0,
            considered_epoch: 0,
            armed: false,
        }
    }
}

/// An open position (q ≠ 0) of one account in one instrument.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Position {
    pub account: u32,
    pub instrument: u32,
    pub qty: Dec8,
    /// Next position of the same account.
    pub next: u32,
    /// Index of this slot in the instrument's holder list.
    pub holder_index: u32,
    /// Indexes of its down, up and vol-factor triggers in the instrument's
    /// trigger heaps, or NIL.
    pub triggers: [u32; 3],
}

impl Default for Position {
    fn default() -> Self {
        Position {
            account: NIL,
            instrument: NIL,
            qty: Dec8::ZERO,
            next: NIL,
            holder_index: NIL,
            triggers: [NIL; 3],
        }
    }
}

/// A non-zero non-quote balance of one account in one asset.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Balance {
    pub account: u32,
    pub asset: u32,
    pub amount: Dec8,
    pub next: u32,
    pub holder_index: u32,
    /// Indexes of its down and up triggers in the asset's heaps, or NIL
    /// (the third is unused: balances have no vol factor).
    pub triggers: [u32; 3],
}

impl Default for Balance {
    fn default() -> Self {
        Balance {
            account: NIL,
            asset: NIL,
            amount: Dec8::ZERO,
            next: NIL,
            holder_index: NIL,
            triggers: [NIL; 3],
        }
    }
}

/// Slots that carry trigger handles.
pub(crate) trait Triggered {
    fn triggers_mut(&mut self) -> &mut [u32; 3];
}

impl Triggered for Position {
    fn triggers_mut(&mut self) -> &mut [u32; 3] {
        &mut self.triggers
    }
}

impl Triggered for Balance {
    fn triggers_mut(&mut self) -> &mut [u32; 3] {
        &mut self.triggers
    }
}

impl<T: Triggered + Default + Copy> Handles for Slab<T> {
    #[inline]
    fn set_handle(&mut self, slot: u32, side: usize, at: u32) {
        self.get_mut(slot).triggers_mut()[side] = at;
    }
}

/// The staleness-deadline heap's handles live on the instruments.
impl Handles for Vec<InstrumentState> {
    #[inline]
    fn set_handle(&mut self, slot: u32, _side: usize, at: u32) {
        self[slot as usize].stale_handle = at;
    }
}

/// A slab: slots reused through a free list, storage reserved up front.
#[derive(Clone, Debug)]
pub(crate) struct Slab<T> {
    slots: Vec<T>,
    free: Vec<u32>,
}

impl<T: Default + Copy> Slab<T> {
    pub fn with_capacity(capacity: usize) -> Slab<T> {
        Slab {
            slots: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
        }
    }

    pub fn insert(&mut self, value: T) -> u32 {
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = value;
                slot
            }
            None => {
                self.slots.push(value);
                (self.slots.len() - 1) as u32
            }
        }
    }

    pub fn remove(&mut self, slot: u32) {
        self.slots[slot as usize] = T::default();
        self.free.push(slot);
    }

    #[inline]
    pub fn get(&self, slot: u32) -> &T {
        &self.slots[slot as usize]
    }

    #[inline]
    pub fn get_mut(&mut self, slot: u32) -> &mut T {
        &mut self.slots[slot as usize]
    }

    /// Bytes reserved.
    pub fn bytes(&self) -> usize {
        self.slots.capacity() * core::mem::size_of::<T>() + self.free.capacity() * 4
    }

    /// Slots reserved.
    pub fn capacity(&self) -> usize {
        self.slots.capacity()
    }
}

/// `10⁸`, the mantissa of 1.
pub(crate) const E8: i128 = pow10(8);
