//! Engine snapshots: the canonical state archived with rkyv, and an engine
//! rebuilt from it to the same `state_hash` and the same future outputs.
//!
//! What is archived is the *canonical* state only — parameters, `now`,
//! stats, assets with prices, instruments with definitions, marks, held
//! marks, variance, halts and RiskParams, accounts with quote balance,
//! cooldown start, positions and non-quote balances — every table in id
//! order (positions of an account by instrument id, balances by asset id),
//! in plain snapshot structs. Equal states give byte-identical snapshots,
//! whatever order they were built in (a restored engine snapshots to the
//! bytes it was restored from).
//!
//! What is not archived is derived and rebuilt on restore: slot maps,
//! holder lists, the vol factor and σ (from variance and RiskParams), the
//! staleness-deadline heap (exact deadlines), the cooldown queue (the
//! cooling accounts by start time, then id), and the trigger heaps. The
//! trigger index's own counters (`TriggerStats`) start at zero.
//!
//! Re-arming: after an apply completes, the engine's invariant is that no
//! account is liquidatable unless it is blocked — cooling down, unpriced,
//! or holding a position in a halted instrument — because every account an
//! event can have made liquidatable was evaluated in that event and, if
//! liquidatable, liquidated (which starts its cooldown). Restoring therefore
//! evaluates every account exactly as the engine does, but without any
//! decision: a cooling, unpriced or halted account gets no triggers (as in
//! `consider`), a healthy one is armed for its current figures, and an
//! unblocked liquidatable one cannot come from a snapshot of a completed
//! apply — it is refused as [`SnapshotError::Inconsistent`] rather than
//! liquidated (restoring emits nothing) or left unarmed (which would break
//! the trigger invariant and silently never liquidate it). The same goes
//! for the other invariants a completed apply leaves: a held mark iff a
//! jump halt, a stale halt iff `now` is past the deadline, a cooldown
//! started before `now` not yet expired (one started at `now` may be due:
//! expiry runs before the decisions of an event). Outputs are then
//! identical to the original engine's: both evaluate every account that can
//! be liquidatable after each event, and decisions are emitted in id order,
//! whatever order the triggers pop in.
//!
//! Untrusted bytes are validated (rkyv bytecheck, then every value bound the
//! engine enforces on events, every reference and capacity): a bad snapshot
//! is an error, never a panic and never an engine that could panic later.

use bnum::types::{I256, U256};
use rkyv::rancor;
use rkyv::util::AlignedVec;

use super::*;

/// The first field of every engine snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"LIQDENGS";
/// The snapshot layout's version; any change to the structs below bumps it.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// Bytes of an engine snapshot, 16-byte aligned (rkyv reads them in place).
pub type SnapshotBytes = AlignedVec<16>;

/// Why a snapshot cannot be restored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("invalid engine limits: {0}")]
    Limits(&'static str),
    #[error("not a valid engine snapshot archive: {0}")]
    Malformed(String),
    #[error("not an engine snapshot (bad magic)")]
    Magic,
    #[error("engine snapshot format {found} is not supported (this build reads {expected})")]
    Format { found: u32, expected: u32 },
    #[error("snapshot exceeds the engine's capacity: {0}")]
    Capacity(&'static str),
    #[error("snapshot value out of range: {0}")]
    OutOfRange(String),
    #[error("snapshot is inconsistent: {0}")]
    Inconsistent(String),
}

#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct EngineSnapshot {
    magic: [u8; 8],
    format: u32,
    partial_liquidation: bool,
    liquidation_cooldown_ns: u64,
    warn_ratio: i64,
    now: u64,
    /// events applied, events rejected, liquidations, halts.
    stats: [u64; 4],
    /// Ascending id; the quote asset (0) first.
    assets: Vec<AssetSnap>,
    /// Ascending id.
    instruments: Vec<InstrumentSnap>,
    /// Ascending id.
    accounts: Vec<AccountSnap>,
    /// Per account in account order, `position_count` each, by instrument id.
    positions: Vec<PositionSnap>,
    /// Per account in account order, `balance_count` each, by asset id.
    balances: Vec<BalanceSnap>,
}

#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct AssetSnap {
    id: u32,
    symbol: [u8; 16],
    weight: i64,
    liability_weight: i64,
    /// 0: no price yet.
    price: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct InstrumentSnap {
    id: u32,
    symbol: [u8; 16],
    multiplier: i64,
    liquidation_fee: i64,
    /// (notional floor, mmr, imr) per tier.
    tiers: Vec<[i64; 3]>,
    has_mark: bool,
    mark: i64,
    mark_ts: u64,
    risk: Option<RiskSnap>,
    /// EWMA variance at scale 10⁻¹⁶, two's-complement little-endian digits.
    variance16: [u64; 4],
    /// (price, ts) of a mark held by the jump guard.
    held: Option<(i64, u64)>,
    halted_stale: bool,
    halted_jump: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct RiskSnap {
    ts: u64,
    vol_lambda: i64,
    vol_ref: i64,
    vol_max_factor: i64,
    max_staleness_ns: u64,
    max_jump: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct AccountSnap {
    // Fields in this order pack into 48 archived bytes (no padding).
    quote: i128,
    id: u64,
    position_count: u32,
    balance_count: u32,
    cooldown_since: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct PositionSnap {
    instrument: u32,
    qty: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct BalanceSnap {
    asset: u32,
    amount: i64,
}

const _: () = assert!(core::mem::size_of::<ArchivedAccountSnap>() == 48);
const _: () = assert!(core::mem::size_of::<ArchivedPositionSnap>() == 16);

/// Largest variance a completed apply can hold: returns are below 2⁹¹ at
/// scale 10⁻⁸, so r² and any EWMA of it stay below 2¹⁸²; with margin.
const VARIANCE_BITS_MAX: u32 = 190;

fn sorted_slots<K: Copy + Ord>(map: &FxHashMap<K, u32>) -> Vec<(K, u32)> {
    let mut ids: Vec<(K, u32)> = map.iter().map(|(k, v)| (*k, *v)).collect();
    ids.sort_unstable();
    ids
}

/// A Dec8 that came from a Fixed8 (prices, quantities, definitions).
fn narrow(x: Dec8) -> i64 {
    i64::try_from(x.0).expect("engine state derived from Fixed8 values fits a Fixed8")
}

impl Engine {
    /// The engine's canonical state, archived (see the module docs of
    /// `engine::snapshot`). Equal states give equal bytes.
    pub fn snapshot(&self) -> SnapshotBytes {
        let snap = self.snapshot_struct();
        match rkyv::to_bytes::<rancor::Error>(&snap) {
            Ok(bytes) => bytes,
            // Serializing plain data into a growable buffer cannot fail
            // except on allocation failure, which aborts anyway.
            Err(e) => unreachable!("rkyv serialization of plain data failed: {e}"),
        }
    }

    fn snapshot_struct(&self) -> EngineSnapshot {
        let assets = sorted_slots(&self.asset_slots)
            .into_iter()
            .map(|(_, slot)| {
                let a = &self.assets[slot as usize];
                AssetSnap {
                    id: a.id.0,
                    symbol: a.symbol.0,
                    weight: narrow(a.weight),
                    liability_weight: narrow(a.liability_weight),
                    price: a.price.map_or(0, narrow),
                }
            })
            .collect();
        let instruments = sorted_slots(&self.instrument_slots)
            .into_iter()
            .map(|(_, slot)| self.instrument_snap(slot))
            .collect();
        let mut accounts = Vec::with_capacity(self.accounts.len());
        let mut positions = Vec::with_capacity(self.positions.bytes() / 64);
        let mut balances = Vec::new();
        for (_, slot) in sorted_slots(&self.account_slots) {
            let account = &self.accounts[slot as usize];
            let first = positions.len();
            let mut p = account.first_position;
            while p != NIL {
                let position = self.positions.get(p);
                positions.push(PositionSnap {
                    instrument: self.instruments[position.instrument as usize].id.0,
                    qty: narrow(position.qty),
                });
                p = position.next;
            }
            positions[first..].sort_unstable_by_key(|p| p.instrument);
            let first_balance = balances.len();
            let mut b = account.first_balance;
            while b != NIL {
                let balance = self.balances.get(b);
                balances.push(BalanceSnap {
                    asset: self.assets[balance.asset as usize].id.0,
                    amount: narrow(balance.amount),
                });
                b = balance.next;
            }
            balances[first_balance..].sort_unstable_by_key(|b| b.asset);
            accounts.push(AccountSnap {
                id: account.id.0,
                quote: account.quote.0,
                cooldown_since: account.cooldown_since,
                position_count: (positions.len() - first) as u32,
                balance_count: (balances.len() - first_balance) as u32,
            });
        }
        let stats = self.stats;
        EngineSnapshot {
            magic: SNAPSHOT_MAGIC,
            format: SNAPSHOT_FORMAT,
            partial_liquidation: self.params.partial_liquidation,
            liquidation_cooldown_ns: self.params.liquidation_cooldown_ns,
            warn_ratio: self.params.warn_ratio.0,
            now: self.now,
            stats: [
                stats.events_applied,
                stats.events_rejected,
                stats.liquidations,
                stats.halts,
            ],
            assets,
            instruments,
            accounts,
            positions,
            balances,
        }
    }

    fn instrument_snap(&self, slot: u32) -> InstrumentSnap {
        let i = &self.instruments[slot as usize];
        InstrumentSnap {
            id: i.id.0,
            symbol: i.symbol.0,
            multiplier: narrow(i.multiplier),
            liquidation_fee: narrow(i.fee),
            tiers: i
                .tiers()
                .iter()
                .map(|t| [narrow(t.floor), narrow(t.mmr), narrow(t.imr)])
                .collect(),
            has_mark: i.has_mark,
            mark: narrow(i.mark),
            mark_ts: i.mark_ts,
            risk: i.risk.map(|r| RiskSnap {
                ts: r.ts.0,
                vol_lambda: r.vol_lambda.0,
                vol_ref: r.vol_ref.0,
                vol_max_factor: r.vol_max_factor.0,
                max_staleness_ns: r.max_staleness_ns,
                max_jump: r.max_jump.0,
            }),
            variance16: *i.variance16.to_bits().digits(),
            held: i.held.map(|(price, ts)| (narrow(price), ts)),
            halted_stale: i.halted_stale,
            halted_jump: i.halted_jump,
        }
    }

    /// Rebuilds an engine from [`snapshot`](Self::snapshot) bytes, with
    /// storage for `limits` and evaluation as `config` says (neither is in
    /// the snapshot). Emits nothing; the result has the snapshot's
    /// `state_hash` and produces the outputs the snapshotted engine would.
    ///
    /// # Errors
    /// Invalid `limits`; bytes that are not a valid archive of this format;
    /// a value out of the engine's bounds, an unknown reference, ids out of
    /// order, more than `limits` allows; a state no completed apply can leave
    /// (see the module docs). Never panics on any input.
    pub fn restore(
        bytes: &[u8],
        limits: Limits,
        config: EngineConfig,
    ) -> Result<Engine, SnapshotError> {
        limits.validate().map_err(SnapshotError::Limits)?;
        let snap = decode(bytes)?;
        let mut engine = Engine::with_config(limits, config);
        engine.restore_globals(&snap)?;
        engine.restore_assets(&snap.assets)?;
        engine.restore_instruments(&snap.instruments)?;
        engine.restore_accounts(&snap)?;
        engine.rebuild_cooldowns();
        engine.rearm_all()?;
        engine.trigger_stats = TriggerStats::default();
        Ok(engine)
    }

    fn restore_globals(&mut self, snap: &EngineSnapshot) -> Result<(), SnapshotError> {
        let warn = i128::from(snap.warn_ratio);
        if !(E8..=FACTOR_MANTISSA_MAX).contains(&warn) {
            return Err(out_of_range("warn_ratio must be in [1, 100]"));
        }
        self.params = Params {
            partial_liquidation: snap.partial_liquidation,
            liquidation_cooldown_ns: snap.liquidation_cooldown_ns,
            warn_ratio: Fixed8(snap.warn_ratio),
        };
        self.now = snap.now;
        let [events_applied, events_rejected, liquidations, halts] = snap.stats;
        self.stats = Stats {
            events_applied,
            events_rejected,
            liquidations,
            halts,
        };
        Ok(())
    }

    fn restore_assets(&mut self, assets: &[AssetSnap]) -> Result<(), SnapshotError> {
        let Some((quote, rest)) = assets.split_first() else {
            return Err(inconsistent("the quote asset is missing"));
        };
        if quote.id != QUOTE_ASSET.0
            || quote.weight != Fixed8::ONE.0
            || quote.liability_weight != Fixed8::ONE.0
            || quote.price != Fixed8::ONE.0
        {
            return Err(inconsistent(
                "the quote asset must come first, weights and price 1",
            ));
        }
        self.assets[0].symbol = Symbol(quote.symbol);
        if assets.len() > self.limits.assets_max as usize {
            return Err(SnapshotError::Capacity("assets_max"));
        }
        let mut previous = quote.id;
        for a in rest {
            if a.id <= previous {
                return Err(inconsistent("asset ids must be strictly increasing"));
            }
            previous = a.id;
            let def = AssetDef {
                ts: UnixNanos(0),
                asset: AssetId(a.id),
                symbol: Symbol(a.symbol),
                asset_weight: Fixed8(a.weight),
                liability_weight: Fixed8(a.liability_weight),
            };
            self.validate_asset_def(&def).map_err(rejected)?;
            if a.price < 0 {
                return Err(out_of_range(format!("asset {} has a negative price", a.id)));
            }
            self.on_asset_def(&def);
            let slot = self.assets.len() - 1;
            self.assets[slot].price = (a.price > 0).then_some(Dec8(i128::from(a.price)));
        }
        Ok(())
    }

    fn restore_instruments(&mut self, instruments: &[InstrumentSnap]) -> Result<(), SnapshotError> {
        let mut previous = None;
        for i in instruments {
            if previous.is_some_and(|p| i.id <= p) {
                return Err(inconsistent("instrument ids must be strictly increasing"));
            }
            previous = Some(i.id);
            if i.tiers.is_empty() || i.tiers.len() > TIERS_MAX {
                return Err(out_of_range(format!(
                    "instrument {} has a bad tier count",
                    i.id
                )));
            }
            let tiers: Vec<Tier> = i
                .tiers
                .iter()
                .map(|&[floor, mmr, imr]| Tier {
                    notional_floor: Fixed8(floor),
                    mmr: Fixed8(mmr),
                    imr: Fixed8(imr),
                })
                .collect();
            let def = InstrumentDef {
                ts: UnixNanos(0),
                instrument: InstrumentId(i.id),
                symbol: Symbol(i.symbol),
                multiplier: Fixed8(i.multiplier),
                liquidation_fee: Fixed8(i.liquidation_fee),
                tiers: Tiers::from_slice(&tiers),
            };
            self.validate_instrument_def(&def).map_err(rejected)?;
            self.on_instrument_def(&def);
            let slot = (self.instruments.len() - 1) as u32;
            self.restore_instrument_state(slot, i)?;
        }
        Ok(())
    }

    fn restore_instrument_state(
        &mut self,
        slot: u32,
        i: &InstrumentSnap,
    ) -> Result<(), SnapshotError> {
        let id = i.id;
        let risk = match &i.risk {
            Some(r) => {
                let risk = RiskParams {
                    ts: UnixNanos(r.ts),
                    instrument: InstrumentId(id),
                    vol_lambda: Fixed8(r.vol_lambda),
                    vol_ref: Fixed8(r.vol_ref),
                    vol_max_factor: Fixed8(r.vol_max_factor),
                    max_staleness_ns: r.max_staleness_ns,
                    max_jump: Fixed8(r.max_jump),
                };
                validate_risk(&risk).map_err(rejected)?;
                Some(risk)
            }
            None => None,
        };
        let variance16 = I256::from_bits(U256::from_digits(i.variance16));
        if variance16.is_negative() || variance16.bits() > VARIANCE_BITS_MAX {
            return Err(out_of_range(format!(
                "instrument {id}: variance out of range"
            )));
        }
        if i.has_mark {
            if i.mark <= 0 {
                return Err(out_of_range(format!("instrument {id}: mark must be > 0")));
            }
        } else if i.mark != 0 || i.mark_ts != 0 || !variance16.is_zero() || i.held.is_some() {
            return Err(inconsistent(format!(
                "instrument {id}: state without a mark"
            )));
        }
        if let Some((price, _)) = i.held {
            if price <= 0 {
                return Err(out_of_range(format!(
                    "instrument {id}: held mark must be > 0"
                )));
            }
            if !matches!(risk, Some(r) if r.max_jump.0 != 0) {
                return Err(inconsistent(format!(
                    "instrument {id}: a held mark without a jump guard"
                )));
            }
        }
        if i.halted_jump != i.held.is_some() {
            return Err(inconsistent(format!(
                "instrument {id}: a jump halt iff a held mark"
            )));
        }
        let max = risk.map_or(0, |r| r.max_staleness_ns);
        let stale = max > 0 && i.has_mark && self.now.saturating_sub(i.mark_ts) > max;
        if i.halted_stale != stale {
            return Err(inconsistent(format!(
                "instrument {id}: stale halt does not match the clock"
            )));
        }
        let instrument = &mut self.instruments[slot as usize];
        instrument.has_mark = i.has_mark;
        instrument.mark = Dec8(i128::from(i.mark));
        instrument.mark_ts = i.mark_ts;
        instrument.mark_mult16 = instrument.mark.0 * instrument.multiplier.0;
        instrument.risk = risk;
        instrument.variance16 = variance16;
        instrument.held = i.held.map(|(price, ts)| (Dec8(i128::from(price)), ts));
        instrument.halted_stale = i.halted_stale;
        instrument.halted_jump = i.halted_jump;
        self.refresh_vol_factor(slot);
        // Consistent (checked above): only places the deadline, if watched.
        self.refresh_staleness(slot, true);
        debug_assert!(self.halts.is_empty() && self.touches.is_empty());
        Ok(())
    }

    fn restore_accounts(&mut self, snap: &EngineSnapshot) -> Result<(), SnapshotError> {
        if snap.accounts.len() > self.limits.accounts_max as usize {
            return Err(SnapshotError::Capacity("accounts_max"));
        }
        let (mut next_position, mut next_balance) = (0usize, 0usize);
        let mut previous = None;
        for a in &snap.accounts {
            if previous.is_some_and(|p| a.id <= p) {
                return Err(inconsistent("account ids must be strictly increasing"));
            }
            previous = Some(a.id);
            if a.quote.abs() > QUOTE_BALANCE_MANTISSA_MAX {
                return Err(out_of_range(format!(
                    "account {}: quote beyond 10^28",
                    a.id
                )));
            }
            if let Some(since) = a.cooldown_since {
                // One started by the last event (since = now) may already
                // be due (expiry runs before decisions); an older one has
                // been through an expiry check at this `now`.
                let expired = since.saturating_add(self.params.liquidation_cooldown_ns) <= self.now;
                if since > self.now || (since < self.now && expired) {
                    return Err(inconsistent(format!(
                        "account {}: cooldown not live at now",
                        a.id
                    )));
                }
            }
            if a.position_count > self.limits.positions_per_account_max {
                return Err(SnapshotError::Capacity("positions_per_account_max"));
            }
            if a.balance_count > self.limits.balances_per_account_max {
                return Err(SnapshotError::Capacity("balances_per_account_max"));
            }
            let positions = take(&snap.positions, &mut next_position, a.position_count)?;
            let balances = take(&snap.balances, &mut next_balance, a.balance_count)?;
            let slot = self.account_slot_or_create(AccountId(a.id));
            self.accounts[slot as usize].quote = Dec8(a.quote);
            self.accounts[slot as usize].cooldown_since = a.cooldown_since;
            self.restore_positions(slot, a.id, positions)?;
            self.restore_balances(slot, a.id, balances)?;
        }
        if next_position != snap.positions.len() || next_balance != snap.balances.len() {
            return Err(inconsistent(
                "positions or balances not owned by any account",
            ));
        }
        Ok(())
    }

    fn restore_positions(
        &mut self,
        slot: u32,
        id: u64,
        list: &[PositionSnap],
    ) -> Result<(), SnapshotError> {
        let mut previous = None;
        // Reversed: the account's list is built by prepending.
        for p in list.iter().rev() {
            if previous.is_some_and(|q| p.instrument >= q) {
                return Err(inconsistent(format!(
                    "account {id}: positions out of order"
                )));
            }
            previous = Some(p.instrument);
            let instrument = self
                .instrument_slots
                .get(&p.instrument)
                .copied()
                .ok_or_else(|| {
                    inconsistent(format!("account {id}: unknown instrument {}", p.instrument))
                })?;
            if p.qty == 0 {
                return Err(inconsistent(format!("account {id}: a position with qty 0")));
            }
            self.insert_position(slot, instrument, Dec8(i128::from(p.qty)));
        }
        Ok(())
    }

    fn restore_balances(
        &mut self,
        slot: u32,
        id: u64,
        list: &[BalanceSnap],
    ) -> Result<(), SnapshotError> {
        let mut previous = None;
        for b in list.iter().rev() {
            if previous.is_some_and(|q| b.asset >= q) {
                return Err(inconsistent(format!("account {id}: balances out of order")));
            }
            previous = Some(b.asset);
            if b.asset == QUOTE_ASSET.0 {
                return Err(inconsistent(format!(
                    "account {id}: the quote balance listed as an asset"
                )));
            }
            let asset =
                self.asset_slots.get(&b.asset).copied().ok_or_else(|| {
                    inconsistent(format!("account {id}: unknown asset {}", b.asset))
                })?;
            if b.amount == 0 {
                return Err(inconsistent(format!("account {id}: a balance of 0")));
            }
            self.insert_balance(slot, asset, Dec8(i128::from(b.amount)));
        }
        Ok(())
    }

    /// The cooling accounts by start, then id (the order the engine queued
    /// them in up to ties, which expire together).
    fn rebuild_cooldowns(&mut self) {
        let mut cooling: Vec<(u64, u32)> = self
            .accounts
            .iter()
            .enumerate()
            .filter_map(|(slot, a)| a.cooldown_since.map(|since| (since, slot as u32)))
            .collect();
        cooling.sort_unstable();
        for (since, slot) in cooling {
            let account = &mut self.accounts[slot as usize];
            account.cooldown_generation = 1;
            self.cooldowns.push_back(CooldownEntry {
                since,
                account: slot,
                generation: 1,
            });
        }
    }

    /// Evaluates every account as `consider` does, without deciding.
    fn rearm_all(&mut self) -> Result<(), SnapshotError> {
        for slot in 0..self.accounts.len() as u32 {
            if self.accounts[slot as usize].cooldown_since.is_some() {
                continue;
            }
            if let Standing::Priced {
                figures,
                halted: false,
            } = self.evaluate(slot)
            {
                if figures.equity < figures.maint_margin {
                    return Err(inconsistent(format!(
                        "account {} is liquidatable (E {} < MM {}) and not blocked",
                        self.accounts[slot as usize].id, figures.equity, figures.maint_margin
                    )));
                }
                self.arm(slot, &figures);
            }
        }
        Ok(())
    }
}

/// Validates and deserializes snapshot bytes (copied first if not 16-byte
/// aligned).
fn decode(bytes: &[u8]) -> Result<EngineSnapshot, SnapshotError> {
    let aligned;
    let bytes = if (bytes.as_ptr() as usize) & 15 == 0 {
        bytes
    } else {
        let mut copy = AlignedVec::<16>::with_capacity(bytes.len());
        copy.extend_from_slice(bytes);
        aligned = copy;
        aligned.as_slice()
    };
    let snap = rkyv::from_bytes::<EngineSnapshot, rancor::Error>(bytes)
        .map_err(|e| SnapshotError::Malformed(e.to_string()))?;
    if snap.magic != SNAPSHOT_MAGIC {
        return Err(SnapshotError::Magic);
    }
    if snap.format != SNAPSHOT_FORMAT {
        return Err(SnapshotError::Format {
            found: snap.format,
            expected: SNAPSHOT_FORMAT,
        });
    }
    Ok(snap)
}

/// The next `count` entries of a flat per-account list.
fn take<'a, T>(list: &'a [T], next: &mut usize, count: u32) -> Result<&'a [T], SnapshotError> {
    let end = next
        .checked_add(count as usize)
        .filter(|&end| end <= list.len())
        .ok_or_else(|| inconsistent("an account lists more entries than archived"))?;
    let taken = &list[*next..end];
    *next = end;
    Ok(taken)
}

fn inconsistent(what: impl Into<String>) -> SnapshotError {
    SnapshotError::Inconsistent(what.into())
}

fn out_of_range(what: impl Into<String>) -> SnapshotError {
    SnapshotError::OutOfRange(what.into())
}

fn rejected(reject: Reject) -> SnapshotError {
    match reject {
        Reject::Capacity(what) => SnapshotError::Capacity(what),
        other => SnapshotError::OutOfRange(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(units: i64) -> Fixed8 {
        Fixed8(units * 100_000_000)
    }

    /// One instrument with a mark, one account long 1 with 1000 quote.
    fn engine() -> Engine {
        let mut engine = Engine::new(Limits {
            accounts_max: 16,
            ..Limits::default()
        });
        let tier = Tier {
            notional_floor: Fixed8(0),
            mmr: Fixed8(1_000_000),
            imr: Fixed8(2_000_000),
        };
        let events = [
            Event::InstrumentDef(InstrumentDef {
                ts: UnixNanos(1),
                instrument: InstrumentId(1),
                symbol: Symbol::new("BTC-PERP").unwrap(),
                multiplier: fixed(1),
                liquidation_fee: Fixed8(0),
                tiers: Tiers::from_slice(&[tier]),
            }),
            Event::Mark(MarkPrice {
                ts: UnixNanos(2),
                instrument: InstrumentId(1),
                price: fixed(100),
            }),
            Event::Balance(BalanceChange {
                ts: UnixNanos(3),
                account: AccountId(9),
                asset: QUOTE_ASSET,
                amount: fixed(1000),
                kind: BalanceKind::Deposit,
                ref_id: 1,
            }),
            Event::Fill(Fill {
                ts: UnixNanos(4),
                account: AccountId(9),
                instrument: InstrumentId(1),
                qty: fixed(1),
                price: fixed(100),
                fee: Fixed8(0),
                fill_id: 1,
            }),
        ];
        let mut sink = VecSink::default();
        for (n, event) in events.iter().enumerate() {
            engine.apply(Seq(n as u64 + 1), event, &mut sink).unwrap();
        }
        engine
    }

    fn restore(snap: &EngineSnapshot) -> Result<Engine, SnapshotError> {
        let bytes = rkyv::to_bytes::<rancor::Error>(snap).unwrap();
        Engine::restore(&bytes, Limits::default(), EngineConfig::default())
    }

    #[test]
    fn a_liquidatable_unblocked_account_is_refused_not_liquidated() {
        let mut snap = engine().snapshot_struct();
        snap.accounts[0].quote = -200 * E8;
        assert!(matches!(
            restore(&snap),
            Err(SnapshotError::Inconsistent(_))
        ));
        // Cooling down, it is blocked: restored, and its cooldown expires
        // into an escalation at the next event as in the engine.
        snap.accounts[0].cooldown_since = Some(snap.now);
        let mut engine = restore(&snap).unwrap();
        let mut sink = VecSink::default();
        let later = Event::Params(EngineParams {
            ts: UnixNanos(snap.now + 2_000_000_000),
            partial_liquidation: true,
            liquidation_cooldown_ns: 1,
            warn_ratio: Fixed8(125_000_000),
        });
        engine.apply(Seq(9), &later, &mut sink).unwrap();
        assert!(matches!(
            sink.outputs.as_slice(),
            [Output::Liquidation(l, _)] if l.escalation
        ));
    }

    #[test]
    fn magic_format_and_references_are_checked() {
        let good = engine().snapshot_struct();
        assert!(restore(&good).is_ok());
        let mut snap = good.clone();
        snap.magic = *b"NOTASNAP";
        assert_eq!(restore(&snap).unwrap_err(), SnapshotError::Magic);
        let mut snap = good.clone();
        snap.format = 99;
        assert!(matches!(
            restore(&snap),
            Err(SnapshotError::Format { found: 99, .. })
        ));
        let mut snap = good.clone();
        snap.positions[0].instrument = 5;
        assert!(matches!(
            restore(&snap),
            Err(SnapshotError::Inconsistent(_))
        ));
        let mut snap = good.clone();
        snap.accounts[0].position_count = 2;
        assert!(matches!(
            restore(&snap),
            Err(SnapshotError::Inconsistent(_))
        ));
        let mut snap = good.clone();
        snap.instruments[0].halted_jump = true;
        assert!(matches!(
            restore(&snap),
            Err(SnapshotError::Inconsistent(_))
        ));
        let mut snap = good.clone();
        snap.instruments[0].variance16 = [0, 0, 0, u64::MAX];
        assert!(matches!(restore(&snap), Err(SnapshotError::OutOfRange(_))));
        let mut snap = good;
        snap.instruments[0].tiers[0][1] = snap.instruments[0].tiers[0][2];
        assert!(matches!(restore(&snap), Err(SnapshotError::OutOfRange(_))));
    }
}
