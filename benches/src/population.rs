//! The seeded population: instruments with RiskParams, collateral assets,
//! and accounts of 1..K positions at a spread of leverages.

use engine::*;

use crate::{Options, Path, Subject};

/// xorshift64*: deterministic, no dependency.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in [lo, hi).
    pub(crate) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo) as u64) as i64
    }
}

pub(crate) const E8: i64 = 100_000_000;
pub(crate) const MARK_BASES: [i64; 8] = [50_000, 3_000, 150, 1, 600, 25, 7, 90_000];
pub(crate) const INDEX_BASES: [i64; 4] = [3_000, 1, 150, 60_000];
/// Step size of each lane's walk relative to the first (instruments, then
/// assets): the markets do not all move alike.
pub(crate) const LANE_VOL: [i64; 12] = [2, 3, 6, 4, 3, 8, 5, 2, 3, 1, 4, 6];

pub(crate) fn fx(units: i64) -> Fixed8 {
    Fixed8(units * E8)
}

/// Feeds events, counting sequence and time.
pub(crate) struct Feed {
    pub(crate) seq: u64,
    pub(crate) ts: u64,
    pub(crate) sink: CountingSink,
}

impl Feed {
    pub(crate) fn apply<E: Subject>(&mut self, engine: &mut E, event: Event) -> Result<(), Reject> {
        self.seq += 1;
        engine.apply(Seq(self.seq), &event, &mut self.sink)
    }
}

fn tiers() -> Tiers {
    let tier = |floor: i64, mmr: i64, imr: i64| Tier {
        notional_floor: fx(floor),
        mmr: Fixed8(mmr * 100_000),
        imr: Fixed8(imr * 100_000),
    };
    // mmr 0.5 % / 1 % / 2 %, imr 1 % / 2 % / 4 % (in thousandths).
    Tiers::from_slice(&[
        tier(0, 5, 10),
        tier(100_000, 10, 20),
        tier(1_000_000, 20, 40),
    ])
}

pub(crate) fn limits(opts: &Options) -> Limits {
    Limits {
        accounts_max: opts.accounts.max(1).next_power_of_two().max(1024),
        instruments_max: 16,
        assets_max: 8,
        ..Limits::default()
    }
}

pub(crate) fn fast_engine(opts: &Options) -> Engine {
    let k = opts.instruments.clamp(1, 8);
    let config = EngineConfig {
        mode: opts.mode,
        split: opts.split,
        vol_headroom: Fixed8(i64::from(opts.vol_headroom_pct) * 1_000_000),
        positions_reserved: opts.accounts.saturating_mul(k.min(4)),
        balances_reserved: opts.accounts / 2 + 16,
        check_invariant: false,
        ..EngineConfig::default()
    };
    Engine::with_config(limits(opts), config)
}

/// Builds the population in `engine`; returns the feed and the counts of
/// positions and balances.
pub(crate) fn populate<E: Subject>(
    engine: &mut E,
    opts: &Options,
    rng: &mut Rng,
) -> (Feed, u64, u64) {
    let engine = &mut *engine;
    let k = opts.instruments.clamp(1, 8);
    let a = opts.assets.min(4);
    let mut feed = Feed {
        seq: 0,
        ts: 1,
        sink: CountingSink::default(),
    };
    let ts = UnixNanos(1);
    for i in 0..k {
        let id = InstrumentId(i + 1);
        feed.apply(
            engine,
            Event::InstrumentDef(InstrumentDef {
                ts,
                instrument: id,
                symbol: Symbol::new("PERP").expect("valid symbol"),
                multiplier: fx(1),
                liquidation_fee: Fixed8(100_000),
                tiers: tiers(),
            }),
        )
        .expect("valid definition");
        feed.apply(
            engine,
            Event::Mark(MarkPrice {
                ts,
                instrument: id,
                price: fx(MARK_BASES[i as usize]),
            }),
        )
        .expect("valid mark");
        // RiskParams so the engine measures each instrument's volatility
        // (the NotionalVol split uses it); vol_max_factor 1 keeps f = 1.
        feed.apply(
            engine,
            Event::Risk(RiskParams {
                ts,
                instrument: id,
                vol_lambda: Fixed8(94_000_000),
                vol_ref: Fixed8(i64::from(opts.vol_ref_bp.max(1)) * 10_000),
                vol_max_factor: Fixed8(
                    i64::from(opts.vol_max_factor_hundredths.clamp(100, 10_000)) * 1_000_000,
                ),
                max_staleness_ns: 0,
                max_jump: if opts.path == Path::Flash {
                    crate::FLASH_MAX_JUMP
                } else {
                    Fixed8(0)
                },
            }),
        )
        .expect("valid risk parameters");
    }
    for s in 0..a {
        let id = AssetId(s + 1);
        feed.apply(
            engine,
            Event::AssetDef(AssetDef {
                ts,
                asset: id,
                symbol: Symbol::new("COLL").expect("valid symbol"),
                asset_weight: Fixed8(80_000_000 + 5_000_000 * s as i64),
                liability_weight: Fixed8(110_000_000),
            }),
        )
        .expect("valid asset");
        feed.apply(
            engine,
            Event::Index(IndexPrice {
                ts,
                asset: id,
                price: fx(INDEX_BASES[s as usize]),
            }),
        )
        .expect("valid index");
    }
    let (mut positions, mut balances) = (0u64, 0u64);
    for n in 0..opts.accounts {
        let account = crate::account_id(n);
        let balance = |feed: &mut Feed, engine: &mut E, asset: u32, amount: i64| {
            feed.apply(
                engine,
                Event::Balance(BalanceChange {
                    ts,
                    account,
                    asset: AssetId(asset),
                    amount: Fixed8(amount),
                    kind: BalanceKind::Deposit,
                    ref_id: 0,
                }),
            )
            .expect("valid balance");
        };
        // Generous deposit first, so no fill makes the account liquidatable.
        balance(&mut feed, engine, 0, 10_000_000 * E8);
        let count = 1 + rng.below(u64::from(k)) as u32;
        let first = rng.below(u64::from(k)) as u32;
        for j in 0..count {
            let i = (first + j) % k;
            let base = MARK_BASES[i as usize];
            // Notional log-uniform-ish in 1k..300k quote.
            let notional = 1_000i64 << rng.below(9);
            let notional = notional + rng.range(0, notional);
            let mut qty = (i128::from(notional) * i128::from(E8) / i128::from(base)) as i64;
            qty = qty.max(1);
            if rng.below(2) == 0 {
                qty = -qty;
            }
            feed.apply(
                engine,
                Event::Fill(Fill {
                    ts,
                    account,
                    instrument: InstrumentId(i + 1),
                    qty: Fixed8(qty),
                    price: fx(base),
                    fee: Fixed8(0),
                    fill_id: 0,
                }),
            )
            .expect("valid fill");
            positions += 1;
        }
        if a > 0 && rng.below(10) < 3 {
            let s = rng.below(u64::from(a)) as u32;
            // Collateral worth ~1k..20k quote; 1 in 6 is a liability.
            let value = rng.range(1_000, 20_000);
            let mut amount =
                (i128::from(value) * i128::from(E8) / i128::from(INDEX_BASES[s as usize])) as i64;
            if rng.below(6) == 0 {
                amount = -amount / 4;
            }
            balance(&mut feed, engine, s + 1, amount.max(-i64::MAX));
            balances += 1;
        }
        // Leverage spread: 1 % of accounts hold E = h·MM with h in
        // [1, 1.02); the others a leverage N/E log-uniform in 2..100×
        // (h = E/MM ≈ 200/leverage at mmr 0.5 %).
        let h_milli = if rng.below(100) == 0 {
            1_000 + rng.range(1, 20)
        } else {
            let octave = 2i64 << rng.below(6);
            let leverage = (octave + rng.range(0, octave)).min(100);
            200_000 / leverage
        };
        let figures = engine.figures(account).expect("priced");
        let target = figures.maint_margin.0 * i128::from(h_milli) / 1_000;
        let withdraw = (figures.equity.0 - target).clamp(0, i128::from(i64::MAX)) as i64;
        if withdraw > 0 {
            balance(&mut feed, engine, 0, -withdraw);
        }
    }
    feed.ts = 2;
    (feed, positions, balances)
}
