//! The trigger index: how a price tick finds the accounts it can have
//! pushed under maintenance without looking at the others.
//!
//! # The invariant
//!
//! *No account becomes liquidatable without one of its triggers being
//! crossed, or the account being evaluated directly.*
//!
//! After every event, each account that is evaluated and found healthy and
//! unblocked (priced, no position in a halted instrument, not cooling down)
//! is **armed**: every exposure `j` of it (a position, or a non-quote
//! balance) gets up to two trigger prices, a *down* key (fires when the
//! price is `≤ key`) and an *up* key (fires when the price is `≥ key`), kept
//! in the instrument's / asset's down and up [`IndexedHeap`]s. A mark or
//! index tick pops the crossed triggers of its instrument / asset only; those
//! accounts are evaluated exactly and liquidated or re-armed.
//!
//! ## Why a trigger cannot be late
//!
//! The health `H = E − MM` of an account is a sum of independent terms:
//! `H = b₀ + Σ_a c_a(P_a) + Σ_i (V_i(M_i) − MM_i(M_i))`. Each non-quote term
//! depends on one price only, so while nothing but prices changes, the drop
//! of `H` is the sum of the drops of the terms. For each exposure `j` and
//! each direction, with `d` the price move in mantissa units (10⁻⁸) and
//! every other input fixed, the drop of its term is at most
//! `r_j,dir · d + ε_j` (quote mantissa), where (`Q = |q|`, `B = |b|`, `Mu`,
//! `W`, `F`, `R` the mantissas of `m`, the weight, `f` and the instrument's
//! highest `mmr`):
//!
//! | exposure | down (price falls) | up (price rises) | `ε_j` |
//! |---|---|---|---|
//! | long `q > 0` | `Q·Mu/10¹⁶` | `Q·Mu·(F·R − 10¹⁶)⁺/10³²` | `⌈f⌉·(T+1) + 2` |
//! | short `q < 0` | 0 | `Q·Mu·(10¹⁶ + F·R)/10³²` | `⌈f⌉·(T+1) + 2` |
//! | balance `b > 0` | `B·W/10¹⁶` (asset weight) | 0 | 1 |
//! | balance `b < 0` | 0 | `B·W/10¹⁶` (liability weight) | 1 |
//!
//! Position: `V = round8(q·M·m)` moves by exactly `q·m·ΔM` up to the two
//! roundings (≤ 1). `MM = round8(f·MMraw(N))`; with `g` the exact tiered
//! amount (continuous, non-decreasing, slope ≤ `mmr_max`, `g ≥ 0`),
//! `|MMraw(N) − g(N)| ≤ (t+1)/2` (the round8 of `N·mmr_t`, the `t−1` round8s
//! of `cumM_t`, and `N`'s own rounding), so `|MM − f·g| ≤ f·(T+1)/2 + 1/2`
//! and between two prices `ΔMM ≤ f·Δg + f·(T+1) + 1`. For a long falling,
//! `Δg ≤ 0`: the drop is `Q·m·d` plus ε. For a short rising, or a long
//! rising when `f·mmr_max > 1`, `Δg ≤ mmr_max·Q·m·d`. For a short falling
//! the drop is only ε. A balance's `c = round8(b·P·w)`: `b·w·ΔP` ± 1. The
//! liquidation fee does not enter `E < MM`.
//!
//! The vol factor in these rates is a *bound* `F_b ≥ f` chosen at arming:
//! for a position of an instrument with RiskParams, `f·(1 + vol_headroom)`
//! (capped at `vol_max_factor`) when the MM that headroom could add leaves
//! at least half of the slack, else `f`. Each such position has a third
//! trigger, its `F_b`, in the instrument's vol-factor heap; a mark that
//! raises `f` pops the positions with `F_b < f` (their accounts are
//! evaluated and re-armed). While `f ≤ F_b`: `MM_now ≤ f·g + err(f) ≤
//! F_b·g + err(F_b)` (because `g ≥ 0`), so `ΔMM ≤ F_b·Δg + (F_b − f_a)·g₀ +
//! ⌈F_b⌉·(T+1) + 1` with `f_a` the factor at arming and `g₀ ≤ MMraw₀ + T + 1`
//! the exact amount then: the rates and `ε` use `F_b`, and the *charge*
//! `⌈(F_b − f_a)·(MMraw₀ + T + 1)⁺⌉` is taken off the slack like `ε`. A fall
//! of `f` needs nothing. Without RiskParams `f` is 1 until RiskParams
//! arrive, which evaluate every holder.
//!
//! Arming an account with slack `S = E − MM ≥ 0` splits `S' = S − Σ_j ε_j`
//! into budgets `s_j ≥ 0` with `Σ s_j ≤ S'` ([`SplitStrategy`]), and sets
//! `D_j,dir = ⌊s_j / r_j,dir⌋` with `r` rounded **up** and the quotient
//! rounded **down** ([`Bf`], a binary float with directed rounding), then
//! `key_down = P₀ − D − 1`, `key_up = P₀ + D + 1`. A trigger that has not
//! fired means `P > key_down`, i.e. the adverse move `d ≤ D`, so the term's
//! drop is at most `r·D + ε_j ≤ s_j + ε_j`. Summed over the exposures the
//! drop of `H` is at most `S' + Σε = S`: `H ≥ 0`, the account is not
//! liquidatable. A direction whose rate is 0 needs no trigger (its drop is
//! covered by `ε_j`). If `S < Σε` there is nothing to share: every exposure
//! gets both keys at `P₀ ∓ 1` (any move fires).
//!
//! Everything else that changes an account's health evaluates it directly
//! (and so re-arms it): a fill or balance change (the account), funding, an
//! instrument definition, risk parameters, a halt's end and an instrument's
//! first mark (the instrument's holders), an asset definition
//! and an asset's first price (the asset's holders), a cooldown's end (the
//! cooldown queue). Blocked accounts (unpriced, halted, cooling down) keep
//! no triggers: each way out of a block evaluates them (first price → the
//! holders; halt end → the holders; a position or balance closed → the
//! account; cooldown end → the account).
//!
//! Debug builds check the invariant after every event (`EngineConfig::
//! check_invariant`): every account that is liquidatable and unblocked must
//! have been evaluated during the event, and no trigger may be left crossed
//! at the current prices.

use crate::types::Fixed8;

// ----- directed-rounding binary floats ------------------------------------

/// A non-negative number `m · 2^e` with a 64-bit mantissa, computed with
/// explicit rounding direction (`up` = toward +∞). Deterministic integer
/// arithmetic: the engine uses it only to *bound* trigger prices, never for
/// money.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bf {
    m: u64,
    e: i32,
}

impl Bf {
    pub const ZERO: Bf = Bf { m: 0, e: 0 };

    pub fn is_zero(self) -> bool {
        self.m == 0
    }

    /// `x · 2^e`, rounded in the given direction to 64 bits.
    fn from_parts(x: u128, e: i32, up: bool) -> Bf {
        if x == 0 {
            return Bf::ZERO;
        }
        let bits = 128 - x.leading_zeros() as i32;
        if bits <= 64 {
            let s = 64 - bits;
            Bf {
                m: (x as u64) << s,
                e: e - s,
            }
        } else {
            let s = bits - 64;
            let m = (x >> s) as u64;
            let lost = x & ((1u128 << s) - 1) != 0;
            if up && lost {
                match m.checked_add(1) {
                    Some(m) => Bf { m, e: e + s },
                    None => Bf {
                        m: 1 << 63,
                        e: e + s + 1,
                    },
                }
            } else {
                Bf { m, e: e + s }
            }
        }
    }

    pub fn from_u128(x: u128, up: bool) -> Bf {
        Bf::from_parts(x, 0, up)
    }

    pub fn mul(self, other: Bf, up: bool) -> Bf {
        if self.m == 0 || other.m == 0 {
            return Bf::ZERO;
        }
        Bf::from_parts(
            u128::from(self.m) * u128::from(other.m),
            self.e + other.e,
            up,
        )
    }

    /// `self / other`; `other` must be non-zero.
    pub fn div(self, other: Bf, up: bool) -> Bf {
        debug_assert!(other.m != 0);
        if self.m == 0 {
            return Bf::ZERO;
        }
        let n = u128::from(self.m) << 64;
        let d = u128::from(other.m);
        let q = n / d;
        let exact = n % d == 0;
        // q < 2^65: a lost remainder is one more sticky bit below q's last.
        let q2 = (q << 1) | u128::from(!exact);
        Bf::from_parts(q2, self.e - 64 - other.e - 1, up)
    }

    pub fn add(self, other: Bf, up: bool) -> Bf {
        if self.m == 0 {
            return other;
        }
        if other.m == 0 {
            return self;
        }
        let (hi, lo) = if self.e >= other.e {
            (self, other)
        } else {
            (other, self)
        };
        let shift = (hi.e - lo.e) as u32;
        // Both mantissas at exponent hi.e − 62: sums stay below 2^127.
        let x = u128::from(hi.m) << 62;
        let (y, lost) = if shift >= 126 {
            (0, true)
        } else {
            let y = u128::from(lo.m) << 62;
            (y >> shift, y & ((1u128 << shift) - 1) != 0)
        };
        // A lost low part is strictly positive: sticky bit for rounding up.
        let sum = (x + y) << 1 | u128::from(lost);
        Bf::from_parts(sum, hi.e - 63, up)
    }

    /// `⌊self⌋`, saturated at `u64::MAX`.
    pub fn floor_u64(self) -> u64 {
        if self.m == 0 {
            return 0;
        }
        if self.e >= 0 {
            if self.e >= 1 {
                return u64::MAX;
            }
            return self.m;
        }
        let s = (-self.e) as u32;
        if s >= 64 {
            0
        } else {
            self.m >> s
        }
    }

    /// `self ≥ x` for an exact integer, exactly (for tests).
    #[cfg(test)]
    fn ge_u128(self, x: u128) -> bool {
        use bnum::types::U256;
        let v = U256::from(self.m);
        let x = U256::from(x);
        if self.e >= 0 {
            v << (self.e as u32) >= x
        } else {
            v >= x << ((-self.e) as u32)
        }
    }
}

// ----- the split strategies -------------------------------------------------

/// How an account's slack is shared among its exposures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SplitStrategy {
    /// Every exposure gets the same budget `S'/n`: a small position gets a
    /// wide price range, a large one a narrow range.
    Equal,
    /// Budgets proportional to each exposure's adverse cost of a relative
    /// price move (`r·P`, its notional in the adverse direction): every
    /// exposure may move by the same *fraction* of its price.
    Notional,
    /// Budgets proportional to `r·P·σ` (σ: the instrument's measured
    /// volatility per mark, at least `EngineConfig::default_sigma`; assets
    /// have no measured σ): every exposure may move by the same number of
    /// standard deviations.
    NotionalVol,
}

/// Whether marks and index prices revalue every holder (the plain way, kept
/// for comparison) or only the accounts whose triggers they cross.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EvaluationMode {
    AllHolders,
    Triggers,
}

/// How the fast engine finds the accounts a tick can have changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EngineConfig {
    pub mode: EvaluationMode,
    pub split: SplitStrategy,
    /// The volatility per mark assumed where none is measured (assets,
    /// instruments without RiskParams or variance yet), as a fraction.
    pub default_sigma: Fixed8,
    /// Headroom of the vol factor a position's triggers are computed for:
    /// positions are armed for `f·(1 + vol_headroom)` (at most the cap),
    /// the MM that headroom could add charged to the account's slack up
    /// front, unless that charge would take more than half of the slack
    /// (then for `f`). A rise of `f` re-arms only the positions armed for a
    /// lower factor (a per-instrument heap of the bounds).
    pub vol_headroom: Fixed8,
    /// Open positions (all accounts) to reserve storage for up front (the
    /// position slab with its trigger handles); 0: `min(accounts_max, 2²⁰)`.
    /// Not a limit: beyond it the storage grows (allocating, amortized).
    pub positions_reserved: u32,
    /// Non-zero non-quote balances to reserve storage for; 0:
    /// `min(accounts_max, 2¹⁸)`.
    pub balances_reserved: u32,
    /// Debug builds only: after each event recompute every account and
    /// assert the trigger invariant (O(accounts) per event; turn it off for
    /// big runs of a debug build).
    pub check_invariant: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            mode: EvaluationMode::Triggers,
            split: SplitStrategy::Notional,
            default_sigma: Fixed8(5_000), // 0.5 bp per mark
            vol_headroom: Fixed8(25_000_000),
            positions_reserved: 0,
            balances_reserved: 0,
            check_invariant: true,
        }
    }
}

/// What the trigger index did (not part of [`crate::Stats`], which the
/// reference model shares).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TriggerStats {
    /// Accounts evaluated exactly.
    pub evaluations: u64,
    /// Accounts (re-)armed with fresh triggers.
    pub rearms: u64,
    /// Triggers popped because a tick crossed them (price and vol-factor).
    pub crossed: u64,
    /// Of those, vol-factor triggers (a rise of f past a position's bound).
    pub factor_crossed: u64,
    /// Events that evaluated every holder of an instrument or asset.
    pub holder_sweeps: u64,
}

// ----- one exposure's keys ---------------------------------------------------

/// The cost bounds of one exposure, gathered while arming.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Exposure {
    /// Position or balance slot.
    pub slot: u32,
    pub is_position: bool,
    /// Instrument or asset slot.
    pub class: u32,
    /// `P₀`, the price mantissa at arming.
    pub price: i64,
    /// Drop of the term per mantissa unit of price fall / rise, rounded up.
    pub r_down: Bf,
    pub r_up: Bf,
    /// The split weight (rounded up).
    pub weight: Bf,
    /// Positions of instruments with RiskParams: the vol factor (mantissa)
    /// the rates are computed for; 0 otherwise.
    pub f_bound: i128,
}

const E16: u128 = 10_000_000_000_000_000;

/// Powers used to scale rates, exactly representable (5¹⁶ < 2⁶⁴).
fn e16() -> Bf {
    Bf::from_u128(E16, false)
}

/// `x / 10¹⁶`, rounded up.
fn over_e16_up(x: u128) -> Bf {
    Bf::from_u128(x, true).div(e16(), true)
}

/// The rates of a position of `|q| = qty` units (mantissa), long or short,
/// in an instrument with multiplier mantissa `mult`, vol factor mantissa
/// `f` and highest maintenance rate mantissa `mmr_max`.
pub(crate) fn position_rates(qty: i128, mult: i128, f: i128, mmr_max: i128) -> (Bf, Bf) {
    let a = qty.unsigned_abs() * mult as u128; // < 2^103
    let fr = f as u128 * mmr_max as u128; // < 2^60
    let base = over_e16_up(a);
    if qty > 0 {
        let up = if fr > E16 {
            base.mul(Bf::from_u128(fr - E16, true), true)
                .div(e16(), true)
        } else {
            Bf::ZERO
        };
        (base, up)
    } else {
        let up = base
            .mul(Bf::from_u128(E16 + fr, true), true)
            .div(e16(), true);
        (Bf::ZERO, up)
    }
}

/// The rates of a non-quote balance `amount` with weight mantissa `w` (the
/// asset weight if positive, the liability weight if negative).
pub(crate) fn balance_rates(amount: i128, w: i128) -> (Bf, Bf) {
    let r = over_e16_up(amount.unsigned_abs() * w as u128);
    if amount > 0 {
        (r, Bf::ZERO)
    } else {
        (Bf::ZERO, r)
    }
}

/// `ε` of a position: `⌈f⌉·(T+1) + 2` mantissa units.
pub(crate) fn position_epsilon(f: i128, tiers: usize) -> i128 {
    let ceil_f = (f + 99_999_999) / 100_000_000;
    ceil_f * (tiers as i128 + 1) + 2
}

/// The MM a rise of the vol factor by `df` (mantissa) can add to a position
/// whose `MMraw` is `mm_raw`: `⌈df·(MMraw + T + 1)⁺ / 10⁸⌉` (the exact
/// tiered amount `g ≤ MMraw + (T+1)/2`).
///
/// `MMraw` can reach ~2¹¹³ and `df` ~2³³: on overflow the charge saturates
/// at `i128::MAX / 4`, still above any true charge (< 2¹²¹), so the
/// headroom is simply not taken.
pub(crate) fn factor_charge(df: i128, mm_raw: i128, tiers: usize) -> i128 {
    let g = (mm_raw + tiers as i128 + 1).max(0);
    df.checked_mul(g)
        .map_or(i128::MAX / 4, |p| crate::arith::div_ceil(p, 100_000_000))
}

/// `ε` of a balance.
pub(crate) const BALANCE_EPSILON: i128 = 1;

/// The down and up keys of an exposure at price `p0` with budget `s`
/// (`None`: no trigger needed on that side). `tight`: no budget at all,
/// both sides fire on any move.
pub(crate) fn keys(
    p0: i64,
    s: Bf,
    r_down: Bf,
    r_up: Bf,
    tight: bool,
) -> (Option<i64>, Option<i64>) {
    let p0 = i128::from(p0);
    let down = if tight || !r_down.is_zero() {
        let d = if tight {
            0
        } else {
            i128::from(s.div(r_down, false).floor_u64())
        };
        let key = p0 - d - 1;
        (key > 0).then_some(key as i64)
    } else {
        None
    };
    let up = if tight || !r_up.is_zero() {
        let d = if tight {
            0
        } else {
            i128::from(s.div(r_up, false).floor_u64())
        };
        let key = p0 + d + 1;
        (key <= i128::from(i64::MAX)).then_some(key as i64)
    } else {
        None
    };
    (down, up)
}

/// Splits `slack` (already net of the ε's, ≥ 0) among `exposures`: the
/// budget of each, rounded down so that their sum never exceeds `slack`.
/// Writes them through `out` in order.
pub(crate) fn split(strategy: SplitStrategy, slack: i128, exposures: &[Exposure], out: &mut [Bf]) {
    // Budgets only need to be lower bounds: capping the slack is safe.
    let slack = Bf::from_u128(slack.max(0) as u128, false);
    match strategy {
        SplitStrategy::Equal => {
            let share = slack.div(Bf::from_u128(exposures.len() as u128, true), false);
            for o in out.iter_mut() {
                *o = share;
            }
        }
        SplitStrategy::Notional | SplitStrategy::NotionalVol => {
            let total = exposures
                .iter()
                .fold(Bf::ZERO, |acc, x| acc.add(x.weight, true));
            let z = slack.div(total, false);
            for (o, x) in out.iter_mut().zip(exposures) {
                *o = z.mul(x.weight, false);
            }
        }
    }
}

/// The split weight of an exposure: `max(r_down, r_up)·P₀·σ` rounded up
/// (σ ignored for [`SplitStrategy::Notional`], unused for `Equal`).
pub(crate) fn weight(r_down: Bf, r_up: Bf, p0: i64, sigma: i128) -> Bf {
    let r = if ge(r_down, r_up) { r_down } else { r_up };
    r.mul(Bf::from_u128(p0 as u128, true), true)
        .mul(Bf::from_u128(sigma.max(1) as u128, true), true)
}

fn ge(a: Bf, b: Bf) -> bool {
    if a.m == 0 || b.m == 0 {
        return b.m == 0;
    }
    // Normalized: compare exponents, then mantissas.
    (a.e, a.m) >= (b.e, b.m)
}

// ----- the indexed heap ------------------------------------------------------

/// Where a heap records each element's position: the element's own slot
/// (a position or balance carries one handle per side, an instrument one
/// for the staleness deadlines).
///
/// Public (with [`IndexedHeap`]) so that benchmarks can time the index
/// operations on their own; the engine's tables are its only users.
pub trait Handles {
    fn set_handle(&mut self, slot: u32, side: usize, at: u32);
}

/// One heap element: its key and the slot (position, balance, instrument)
/// it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapEntry<K> {
    pub key: K,
    pub slot: u32,
}

/// A binary min-heap whose elements know their index (through
/// [`Handles`]), so that any element can be re-keyed or removed in
/// O(log n). Storage grows to the largest size seen and is then reused.
#[derive(Clone, Debug)]
pub struct IndexedHeap<K> {
    side: usize,
    entries: Vec<HeapEntry<K>>,
}

impl<K: Ord + Copy> IndexedHeap<K> {
    /// An empty heap that records positions under handle index `side`,
    /// with storage for `capacity` elements.
    pub fn with_capacity(side: usize, capacity: usize) -> IndexedHeap<K> {
        IndexedHeap {
            side,
            entries: Vec::with_capacity(capacity),
        }
    }

    #[inline]
    pub fn peek(&self) -> Option<HeapEntry<K>> {
        self.entries.first().copied()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The key of the element at index `at`.
    ///
    /// # Panics
    /// If `at` is not an index of the heap.
    pub fn key_at(&self, at: u32) -> K {
        self.entries[at as usize].key
    }

    /// Adds `slot` with `key`.
    pub fn insert(&mut self, key: K, slot: u32, handles: &mut impl Handles) {
        let at = self.entries.len();
        self.entries.push(HeapEntry { key, slot });
        self.sift_up(at, handles);
    }

    /// Re-keys the element at `at`.
    pub fn update(&mut self, at: u32, key: K, handles: &mut impl Handles) {
        let at = at as usize;
        let old = self.entries[at].key;
        self.entries[at].key = key;
        if key < old {
            self.sift_up(at, handles);
        } else if key > old {
            self.sift_down(at, handles);
        }
    }

    /// Removes the element at `at` (its handle is the caller's to clear).
    pub fn remove(&mut self, at: u32, handles: &mut impl Handles) {
        let at = at as usize;
        let last = self.entries.len() - 1;
        if at == last {
            self.entries.pop();
            return;
        }
        let old = self.entries[at].key;
        self.entries.swap_remove(at);
        let key = self.entries[at].key;
        handles.set_handle(self.entries[at].slot, self.side, at as u32);
        if key < old {
            self.sift_up(at, handles);
        } else {
            self.sift_down(at, handles);
        }
    }

    fn sift_up(&mut self, mut at: usize, handles: &mut impl Handles) {
        let entry = self.entries[at];
        while at > 0 {
            let parent = (at - 1) / 2;
            if self.entries[parent].key <= entry.key {
                break;
            }
            self.entries[at] = self.entries[parent];
            handles.set_handle(self.entries[at].slot, self.side, at as u32);
            at = parent;
        }
        self.entries[at] = entry;
        handles.set_handle(entry.slot, self.side, at as u32);
    }

    fn sift_down(&mut self, mut at: usize, handles: &mut impl Handles) {
        let len = self.entries.len();
        let entry = self.entries[at];
        loop {
            let left = 2 * at + 1;
            if left >= len {
                break;
            }
            let right = left + 1;
            let child = if right < len && self.entries[right].key < self.entries[left].key {
                right
            } else {
                left
            };
            if entry.key <= self.entries[child].key {
                break;
            }
            self.entries[at] = self.entries[child];
            handles.set_handle(self.entries[at].slot, self.side, at as u32);
            at = child;
        }
        self.entries[at] = entry;
        handles.set_handle(entry.slot, self.side, at as u32);
    }

    /// Bytes reserved.
    pub fn bytes(&self) -> usize {
        self.entries.capacity() * core::mem::size_of::<HeapEntry<K>>()
    }
}

/// Sides of a trigger: index 0 fires when the price falls to the key or
/// below, index 1 when it rises to the key or above.
pub const DOWN: usize = 0;
pub const UP: usize = 1;
/// Positions' third trigger: the vol factor they were armed for; popped
/// when the instrument's factor rises above it (key = the bound, crossed
/// when `key < f`).
pub(crate) const FACTOR: usize = 2;

/// The heap priority of a key (both heaps are min-heaps): the up side is
/// crossed when `key ≤ price`, the down side when `key ≥ price`, i.e.
/// `−key ≤ −price`.
#[inline]
pub fn priority(side: usize, key: i64) -> i64 {
    if side == DOWN {
        -key
    } else {
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn factor_charge_saturates_instead_of_overflowing() {
        let huge = 1i128 << 113;
        assert_eq!(factor_charge(10_000_000_000, huge, 16), i128::MAX / 4);
        assert_eq!(factor_charge(100_000_000, 5, 1), 7);
        assert_eq!(factor_charge(0, huge, 16), 0);
    }

    struct Table(Vec<[u32; 2]>);

    impl Handles for Table {
        fn set_handle(&mut self, slot: u32, side: usize, at: u32) {
            self.0[slot as usize][side] = at;
        }
    }

    proptest! {
        #[test]
        fn bf_rounds_in_the_given_direction(a in 1u128..u128::MAX >> 1, b in 1u128..1u128 << 100) {
            use bnum::types::U512;
            // x ≥ p (exactly) for a Bf x and an integer p.
            let ge = |x: Bf, p: U512| {
                let v = U512::from(x.m);
                if x.e >= 0 { v << (x.e as u32) >= p } else { v >= p << ((-x.e) as u32) }
            };
            let (lo, hi) = (Bf::from_u128(a, false), Bf::from_u128(a, true));
            let (bl, bh) = (Bf::from_u128(b, false), Bf::from_u128(b, true));
            prop_assert!(hi.ge_u128(a) && !lo.ge_u128(a + 1));
            let p = U512::from(a) * U512::from(b);
            prop_assert!(ge(hi.mul(bh, true), p));
            prop_assert!(!ge(lo.mul(bl, false), p + U512::ONE));
            let q = a / b;
            prop_assert!(u128::from(lo.div(bh, false).floor_u64()) <= q);
            prop_assert!(u128::from(hi.div(bl, true).floor_u64()) >= q.min(u128::from(u64::MAX)));
            // div up: (a/b rounded up)·b ≥ a
            prop_assert!(ge(hi.div(bl, true).mul(bh, true), U512::from(a)));
            prop_assert!(!ge(lo.div(bh, false).mul(bl, false), U512::from(a) + U512::ONE));
            let s = a + b;
            prop_assert!(hi.add(bh, true).ge_u128(s));
            prop_assert!(!lo.add(bl, false).ge_u128(s + 1));
        }

        #[test]
        fn heap_stays_ordered_and_indexed(ops in prop::collection::vec((0u32..64, -1000i64..1000, 0u8..3), 1..300)) {
            let mut heap = IndexedHeap::<i64>::with_capacity(UP, 4);
            let mut table = Table(vec![[u32::MAX; 2]; 64]);
            let mut model = std::collections::BTreeMap::new();
            for (slot, key, op) in ops {
                let at = table.0[slot as usize][UP];
                match (op, at != u32::MAX) {
                    (0, false) | (1, false) => { heap.insert(key, slot, &mut table); model.insert(slot, key); }
                    (0, true) | (1, true) => { heap.update(at, key, &mut table); model.insert(slot, key); }
                    (_, true) => { heap.remove(at, &mut table); table.0[slot as usize][UP] = u32::MAX; model.remove(&slot); }
                    (_, false) => {}
                }
                prop_assert_eq!(heap.len(), model.len());
                for (s, k) in &model {
                    let at = table.0[*s as usize][UP];
                    prop_assert_eq!(heap.entries[at as usize], HeapEntry { key: *k, slot: *s });
                }
                let min = model.values().min().copied();
                prop_assert_eq!(heap.peek().map(|e| e.key), min);
            }
        }
    }

    /// The heart of the invariant, attacked directly: for random tier
    /// tables, multipliers, vol factors, quantities and budgets, a price
    /// anywhere strictly between the two keys lowers the position's term
    /// `V − MM` by at most `s + ε` — also after `f` falls.
    mod bound {
        use super::super::*;
        use crate::state::InstrumentState;
        use crate::types::Dec8;
        use crate::types::{InstrumentDef, InstrumentId, Symbol, Tier, Tiers, UnixNanos};
        use crate::valuation::{collateral_terms, position_figures};
        use proptest::prelude::*;

        fn instrument(tiers: &[(i64, i64, i64)], mult: i64) -> InstrumentState {
            let mut list = Vec::new();
            let (mut floor, mut mmr) = (0i64, 0i64);
            for (n, &(step, d_mmr, d_imr)) in tiers.iter().enumerate() {
                if n > 0 {
                    floor += step;
                }
                mmr = (mmr + d_mmr).min(99_999_000);
                let imr = (mmr + d_imr).min(100_000_000).max(mmr + 1);
                list.push(Tier {
                    notional_floor: Fixed8(floor),
                    mmr: Fixed8(mmr),
                    imr: Fixed8(imr),
                });
            }
            let def = InstrumentDef {
                ts: UnixNanos(0),
                instrument: InstrumentId(1),
                symbol: Symbol::new("T").unwrap(),
                multiplier: Fixed8(mult),
                liquidation_fee: Fixed8(0),
                tiers: Tiers::from_slice(&list),
            };
            InstrumentState::new(&def)
        }

        fn term(i: &mut InstrumentState, qty: i128, price: i64, f: i128) -> i128 {
            i.mark = Dec8(i128::from(price));
            i.has_mark = true;
            i.mark_mult16 = i.mark.0 * i.multiplier.0;
            i.vol_factor = Dec8(f);
            let pf = position_figures(i, Dec8(qty));
            pf.value.0 - pf.mm.0
        }

        fn pick(lo: i64, hi: i64, at: u64) -> Option<i64> {
            // A price strictly inside (lo, hi): the edges first.
            if hi - lo < 2 {
                return None;
            }
            let span = (hi - lo - 1) as u64;
            Some(match at % 4 {
                0 => lo + 1,
                1 => hi - 1,
                _ => lo + 1 + (at % span) as i64,
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

            #[test]
            fn position_term_drops_at_most_budget_plus_epsilon(
                tiers in prop::collection::vec((1i64..5_000_000_000_000, 0i64..3_000_000, 1i64..5_000_000), 1..16),
                mult in prop_oneof![Just(100_000_000i64), 1i64..1_000_000_000_000],
                f in prop_oneof![Just(100_000_000i128), 100_000_000i128..10_000_000_000],
                headroom in prop_oneof![Just(0i128), 0i128..3_000_000_000],
                f_now_at in any::<u64>(),
                qty in prop_oneof![
                    -1_000_000_000_000i128..1_000_000_000_000,
                    any::<i64>().prop_map(i128::from),
                    (-1000i128..1000).prop_map(|k| k * 100_000_000),
                ],
                p0 in prop_oneof![1i64..1_000_000, 1i64..10_000_000_000_000],
                s in prop_oneof![0u128..10_000, 0u128..1u128 << 80],
                at in any::<u64>(),
                tight in prop::bool::weighted(0.05),
            ) {
                prop_assume!(qty != 0 && qty != i128::from(i64::MIN));
                // Armed at f for any factor up to f_bound; the factor now is
                // anywhere in [1, f_bound] (it may have risen or fallen).
                let f_bound = (f + headroom).min(10_000_000_000);
                let f_now = match f_now_at % 4 {
                    0 => f_bound,
                    1 => 100_000_000,
                    _ => 100_000_000 + (f_now_at as i128 % (f_bound - 100_000_000 + 1)),
                };
                let mut i = instrument(&tiers, mult);
                let (r_down, r_up) = position_rates(qty, i.multiplier.0, f_bound, i.mmr_max().0);
                let mut eps = position_epsilon(f_bound, i.tiers().len());
                let budget = Bf::from_u128(s, false);
                let (down, up) = keys(p0, budget, r_down, r_up, tight);
                let lo = down.unwrap_or(0);
                let hi = up.unwrap_or(i64::MAX);
                prop_assert!(lo < p0 && p0 < hi);
                if let Some(p) = pick(lo, hi, at) {
                    let before = term(&mut i, qty, p0, f);
                    let mm_raw = position_figures(&i, Dec8(qty)).mm_raw.0;
                    eps += factor_charge(f_bound - f, mm_raw, i.tiers().len());
                    let after = term(&mut i, qty, p, f_now);
                    let allowed = if tight { eps } else { s as i128 + eps };
                    prop_assert!(before - after <= allowed,
                        "drop {} > budget {} + eps {} (p0 {}, p {}, keys {:?} {:?})",
                        before - after, s, eps, p0, p, down, up);
                }
            }

            #[test]
            fn balance_term_drops_at_most_budget_plus_epsilon(
                amount in any::<i64>().prop_filter("", |a| *a != 0 && *a != i64::MIN),
                w in 1i128..10_000_000_000,
                p0 in prop_oneof![1i64..1_000_000, 1i64..10_000_000_000_000],
                s in prop_oneof![0u128..10_000, 0u128..1u128 << 80],
                at in any::<u64>(),
            ) {
                let amount = i128::from(amount);
                let (r_down, r_up) = balance_rates(amount, w);
                let (down, up) = keys(p0, Bf::from_u128(s, false), r_down, r_up, false);
                let lo = down.unwrap_or(0);
                let hi = up.unwrap_or(i64::MAX);
                if let Some(p) = pick(lo, hi, at) {
                    let c = |price: i64| collateral_terms(Dec8(amount), Dec8(i128::from(price)), Dec8(w), Dec8(w)).0 .0;
                    prop_assert!(c(p0) - c(p) <= s as i128 + BALANCE_EPSILON);
                }
            }
        }
    }
}
