//! Random event streams for property tests: a small venue (a few
//! instruments, collateral assets and accounts) driven through price walks
//! with crashes and jumps, fills, deposits and withdrawals, funding, and
//! parameter changes — dense enough in liquidations, halts and cooldowns to
//! exercise every rule.

#![allow(dead_code)]

use engine::*;
use proptest::prelude::*;

pub const ACCOUNTS: [u64; 5] = [0, 1, 2, 7, u64::MAX];

fn fixed(units: i64, places: u32) -> Fixed8 {
    Fixed8(units * 10i64.pow(8 - places))
}

/// One step of a stream, before timestamps are assigned.
#[derive(Clone, Debug)]
pub enum Step {
    Instrument {
        id: u32,
        multiplier_tenths: i64,
        fee_bps: i64,
        tiers: Vec<(i64, i64, i64)>,
    },
    Asset {
        id: u32,
        weight_pct: i64,
        liability_pct: i64,
    },
    Params {
        partial: bool,
        cooldown: u64,
    },
    Risk {
        id: u32,
        lambda_pct: i64,
        vol_ref_bps: i64,
        cap_tenths: i64,
        staleness: u64,
        jump_pct: i64,
    },
    /// Mark at `base × pct / 100` (with a few extra places).
    Mark {
        id: u32,
        pct: i64,
        wiggle: i64,
    },
    Index {
        id: u32,
        pct: i64,
    },
    Fill {
        account: usize,
        id: u32,
        qty_hundredths: i64,
        price_pct: i64,
        fee_cents: i64,
    },
    Balance {
        account: usize,
        asset: u32,
        amount_cents: i64,
    },
    Funding {
        id: u32,
        rate_bps: i64,
    },
}

fn tiers() -> impl Strategy<Value = Vec<(i64, i64, i64)>> {
    // (floor, mmr in 0.1 %, imr extra in 0.1 %), built increasing below.
    prop::collection::vec((1i64..50_000, 1i64..20, 1i64..30), 1..4).prop_map(|raw| {
        let mut out = Vec::new();
        let (mut floor, mut mmr, mut imr) = (0i64, 0i64, 0i64);
        for (n, (step, d_mmr, d_imr)) in raw.into_iter().enumerate() {
            if n > 0 {
                floor += step;
            }
            mmr += d_mmr;
            imr = (imr + d_imr).max(mmr + 1);
            out.push((floor, mmr, imr));
        }
        out
    })
}

pub fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => (1u32..4, prop_oneof![Just(10i64), Just(1), Just(100)], 0i64..5, tiers()).prop_map(
            |(id, multiplier_tenths, fee_bps, tiers)| Step::Instrument { id, multiplier_tenths, fee_bps, tiers }
        ),
        1 => (1u32..3, 50i64..=100, 100i64..150).prop_map(|(id, weight_pct, liability_pct)| Step::Asset {
            id, weight_pct, liability_pct
        }),
        1 => (any::<bool>(), prop_oneof![Just(0u64), Just(3), Just(10), Just(1000)])
            .prop_map(|(partial, cooldown)| Step::Params { partial, cooldown }),
        1 => (1u32..4, 50i64..99, 10i64..300, 10i64..40, prop_oneof![Just(0u64), Just(4), Just(20)],
              prop_oneof![Just(0i64), Just(5), Just(15)])
            .prop_map(|(id, lambda_pct, vol_ref_bps, cap_tenths, staleness, jump_pct)| Step::Risk {
                id, lambda_pct, vol_ref_bps, cap_tenths, staleness, jump_pct
            }),
        10 => (1u32..4, prop_oneof![8 => 85i64..115, 1 => 40i64..160], 0i64..1000)
            .prop_map(|(id, pct, wiggle)| Step::Mark { id, pct, wiggle }),
        2 => (1u32..3, 60i64..140).prop_map(|(id, pct)| Step::Index { id, pct }),
        8 => (0usize..ACCOUNTS.len(), 1u32..4, -500i64..500, 95i64..105, -5i64..50).prop_map(
            |(account, id, qty_hundredths, price_pct, fee_cents)| Step::Fill {
                account, id, qty_hundredths, price_pct, fee_cents
            }
        ),
        5 => (0usize..ACCOUNTS.len(), 0u32..3, -200_000i64..400_000).prop_map(
            |(account, asset, amount_cents)| Step::Balance { account, asset, amount_cents }
        ),
        1 => (1u32..4, -100i64..100).prop_map(|(id, rate_bps)| Step::Funding { id, rate_bps }),
    ]
}

/// A stream: definitions first (so most events are accepted), then steps,
/// each with a ts gap (mostly forward, sometimes equal or earlier).
pub fn stream() -> impl Strategy<Value = Vec<Event>> {
    let gaps = prop::collection::vec(prop_oneof![6 => 0u64..6, 1 => Just(0u64)], 300);
    let backwards = prop::collection::vec(prop::bool::weighted(0.05), 300);
    let head = (tiers(), tiers(), tiers());
    (
        head,
        prop::collection::vec(step(), 20..200),
        gaps,
        backwards,
    )
        .prop_map(|((t1, t2, t3), steps, gaps, backwards)| {
            let mut all = vec![
                Step::Params {
                    partial: true,
                    cooldown: 10,
                },
                Step::Instrument {
                    id: 1,
                    multiplier_tenths: 10,
                    fee_bps: 2,
                    tiers: t1,
                },
                Step::Instrument {
                    id: 2,
                    multiplier_tenths: 1,
                    fee_bps: 0,
                    tiers: t2,
                },
                Step::Instrument {
                    id: 3,
                    multiplier_tenths: 100,
                    fee_bps: 1,
                    tiers: t3,
                },
                Step::Asset {
                    id: 1,
                    weight_pct: 80,
                    liability_pct: 120,
                },
                Step::Asset {
                    id: 2,
                    weight_pct: 95,
                    liability_pct: 100,
                },
                Step::Mark {
                    id: 1,
                    pct: 100,
                    wiggle: 0,
                },
                Step::Mark {
                    id: 2,
                    pct: 100,
                    wiggle: 0,
                },
                Step::Mark {
                    id: 3,
                    pct: 100,
                    wiggle: 0,
                },
                Step::Index { id: 1, pct: 100 },
            ];
            all.extend(steps);
            let mut ts = 0u64;
            all.iter()
                .enumerate()
                .map(|(n, step)| {
                    let gap = gaps[n % gaps.len()];
                    let event_ts = if backwards[n % backwards.len()] {
                        ts.saturating_sub(gap + 3)
                    } else {
                        ts += gap;
                        ts
                    };
                    to_event(step, UnixNanos(event_ts))
                })
                .collect()
        })
}

/// Base prices per instrument / asset, chosen so that notionals cross tiers.
fn base_mark(id: u32) -> i64 {
    [0, 100, 2_500, 7][id as usize % 4]
}

fn base_index(id: u32) -> i64 {
    [1, 3_000, 1][id as usize % 3]
}

pub fn to_event(step: &Step, ts: UnixNanos) -> Event {
    match step {
        Step::Instrument {
            id,
            multiplier_tenths,
            fee_bps,
            tiers,
        } => {
            let tiers: Vec<Tier> = tiers
                .iter()
                .map(|&(floor, mmr, imr)| Tier {
                    notional_floor: fixed(floor, 0),
                    mmr: fixed(mmr, 3),
                    imr: fixed(imr, 3),
                })
                .collect();
            Event::InstrumentDef(InstrumentDef {
                ts,
                instrument: InstrumentId(*id),
                symbol: Symbol::new("X-PERP").unwrap(),
                multiplier: fixed(*multiplier_tenths, 1),
                liquidation_fee: fixed(*fee_bps, 4),
                tiers: Tiers::from_slice(&tiers),
            })
        }
        Step::Asset {
            id,
            weight_pct,
            liability_pct,
        } => Event::AssetDef(AssetDef {
            ts,
            asset: AssetId(*id),
            symbol: Symbol::new("COLL").unwrap(),
            asset_weight: fixed(*weight_pct, 2),
            liability_weight: fixed(*liability_pct, 2),
        }),
        Step::Params { partial, cooldown } => Event::Params(EngineParams {
            ts,
            partial_liquidation: *partial,
            liquidation_cooldown_ns: *cooldown,
            warn_ratio: fixed(125, 2),
        }),
        Step::Risk {
            id,
            lambda_pct,
            vol_ref_bps,
            cap_tenths,
            staleness,
            jump_pct,
        } => Event::Risk(RiskParams {
            ts,
            instrument: InstrumentId(*id),
            vol_lambda: fixed(*lambda_pct, 2),
            vol_ref: fixed(*vol_ref_bps, 4),
            vol_max_factor: fixed(*cap_tenths, 1),
            max_staleness_ns: *staleness,
            max_jump: fixed(*jump_pct, 2),
        }),
        Step::Mark { id, pct, wiggle } => Event::Mark(MarkPrice {
            ts,
            instrument: InstrumentId(*id),
            price: Fixed8(base_mark(*id) * pct * 1_000_000 + wiggle * 1_000),
        }),
        Step::Index { id, pct } => Event::Index(IndexPrice {
            ts,
            asset: AssetId(*id),
            price: Fixed8(base_index(*id) * pct * 1_000_000),
        }),
        Step::Fill {
            account,
            id,
            qty_hundredths,
            price_pct,
            fee_cents,
        } => Event::Fill(Fill {
            ts,
            account: AccountId(ACCOUNTS[*account]),
            instrument: InstrumentId(*id),
            qty: fixed(*qty_hundredths, 2),
            price: Fixed8(base_mark(*id) * price_pct * 1_000_000),
            fee: fixed(*fee_cents, 2),
            fill_id: 0,
        }),
        Step::Balance {
            account,
            asset,
            amount_cents,
        } => Event::Balance(BalanceChange {
            ts,
            account: AccountId(ACCOUNTS[*account]),
            asset: AssetId(*asset),
            amount: fixed(*amount_cents / if *asset == 0 { 1 } else { 1000 }, 2),
            kind: if *amount_cents >= 0 {
                BalanceKind::Deposit
            } else {
                BalanceKind::Withdrawal
            },
            ref_id: 0,
        }),
        Step::Funding { id, rate_bps } => Event::Funding(Funding {
            ts,
            instrument: InstrumentId(*id),
            rate: fixed(*rate_bps, 4),
        }),
    }
}

/// Any event at all: ids from small sets, values from the whole Fixed8
/// range (absurd ones included). For no-panic tests.
pub fn wild_event() -> impl Strategy<Value = Event> {
    let value = prop_oneof![
        any::<i64>().prop_filter("−2⁶³ is not a Fixed8", |v| *v != i64::MIN),
        -1_000_000_000_000i64..1_000_000_000_000,
        Just(i64::MAX),
        Just(-i64::MAX),
        Just(0),
        Just(1),
    ]
    .prop_map(Fixed8);
    let id = 0u32..4;
    let ts = 0u64..1_000;
    let tier = (value.clone(), value.clone(), value.clone()).prop_map(|(f, m, i)| Tier {
        notional_floor: f,
        mmr: m,
        imr: i,
    });
    prop_oneof![
        (
            ts.clone(),
            id.clone(),
            value.clone(),
            value.clone(),
            value.clone(),
            prop::collection::vec(tier, 0..18)
        )
            .prop_map(|(ts, id, m, fee, first_floor, mut tiers)| {
                if let Some(t) = tiers.first_mut() {
                    if first_floor.0 % 2 == 0 {
                        t.notional_floor = Fixed8(0);
                    }
                }
                Event::InstrumentDef(InstrumentDef {
                    ts: UnixNanos(ts),
                    instrument: InstrumentId(id),
                    symbol: Symbol::new("W").unwrap(),
                    multiplier: m,
                    liquidation_fee: fee,
                    tiers: Tiers::from_slice(&tiers),
                })
            }),
        (ts.clone(), id.clone(), value.clone(), value.clone()).prop_map(|(ts, id, w, v)| {
            Event::AssetDef(AssetDef {
                ts: UnixNanos(ts),
                asset: AssetId(id),
                symbol: Symbol::new("W").unwrap(),
                asset_weight: w,
                liability_weight: v,
            })
        }),
        (ts.clone(), any::<bool>(), any::<u64>(), value.clone()).prop_map(|(ts, p, c, w)| {
            Event::Params(EngineParams {
                ts: UnixNanos(ts),
                partial_liquidation: p,
                liquidation_cooldown_ns: c,
                warn_ratio: w,
            })
        }),
        (
            ts.clone(),
            id.clone(),
            value.clone(),
            value.clone(),
            value.clone(),
            any::<u64>(),
            value.clone()
        )
            .prop_map(|(ts, id, l, r, c, s, j)| Event::Risk(RiskParams {
                ts: UnixNanos(ts),
                instrument: InstrumentId(id),
                vol_lambda: l,
                vol_ref: r,
                vol_max_factor: c,
                max_staleness_ns: s,
                max_jump: j
            })),
        (ts.clone(), id.clone(), value.clone()).prop_map(|(ts, id, p)| Event::Mark(MarkPrice {
            ts: UnixNanos(ts),
            instrument: InstrumentId(id),
            price: p
        })),
        (ts.clone(), id.clone(), value.clone()).prop_map(|(ts, id, p)| Event::Index(IndexPrice {
            ts: UnixNanos(ts),
            asset: AssetId(id),
            price: p
        })),
        (
            ts.clone(),
            0usize..ACCOUNTS.len(),
            id.clone(),
            value.clone(),
            value.clone(),
            value.clone()
        )
            .prop_map(|(ts, a, id, q, p, f)| Event::Fill(Fill {
                ts: UnixNanos(ts),
                account: AccountId(ACCOUNTS[a]),
                instrument: InstrumentId(id),
                qty: q,
                price: p,
                fee: f,
                fill_id: 0
            })),
        (
            ts.clone(),
            0usize..ACCOUNTS.len(),
            id.clone(),
            value.clone()
        )
            .prop_map(|(ts, a, id, x)| {
                Event::Balance(BalanceChange {
                    ts: UnixNanos(ts),
                    account: AccountId(ACCOUNTS[a]),
                    asset: AssetId(id),
                    amount: x,
                    kind: BalanceKind::Adjustment,
                    ref_id: 0,
                })
            }),
        (ts, id, value).prop_map(|(ts, id, r)| Event::Funding(Funding {
            ts: UnixNanos(ts),
            instrument: InstrumentId(id),
            rate: r
        })),
    ]
}

/// A stream built to cross triggers: marks and index prices *walk* (steps
/// of up to ±3 %, sometimes a ±15 % jump or a crash leg), accounts open
/// positions sized near their maintenance requirement, and funding storms,
/// vol-factor steps (RiskParams), tier redefinitions, halts and resumes
/// interleave. Prices walk across the accounts' trigger prices in both
/// directions, and notionals across tier floors.
pub fn trigger_stream() -> impl Strategy<Value = Vec<Event>> {
    #[derive(Clone, Debug)]
    enum Walk {
        /// A mark step in basis points (applied to the instrument's walk).
        Mark(u32, i64),
        Index(u32, i64),
        Other(Step),
    }
    let walk_step = prop_oneof![
        30 => (1u32..4, prop_oneof![10 => -600i64..600, 5 => -30i64..30, 2 => -1500i64..1500, 1 => Just(-2500i64)])
            .prop_map(|(id, bp)| Walk::Mark(id, bp)),
        4 => (1u32..3, prop_oneof![-400i64..400, -2000i64..2000]).prop_map(|(id, bp)| Walk::Index(id, bp)),
        8 => (0usize..ACCOUNTS.len(), 1u32..4, prop_oneof![-3000i64..3000, -300i64..300], 98i64..102, 0i64..20)
            .prop_map(|(account, id, qty_hundredths, price_pct, fee_cents)| Walk::Other(Step::Fill {
                account, id, qty_hundredths, price_pct, fee_cents
            })),
        4 => (0usize..ACCOUNTS.len(), 0u32..3, -100_000i64..300_000).prop_map(
            |(account, asset, amount_cents)| Walk::Other(Step::Balance { account, asset, amount_cents })
        ),
        2 => (1u32..4, prop_oneof![-100i64..100, -1000i64..1000])
            .prop_map(|(id, rate_bps)| Walk::Other(Step::Funding { id, rate_bps })),
        1 => (1u32..4, 50i64..99, 20i64..600, 10i64..60, prop_oneof![Just(0u64), Just(8), Just(30)],
              prop_oneof![2 => Just(0i64), 1 => Just(10), 1 => Just(30)])
            .prop_map(|(id, lambda_pct, vol_ref_bps, cap_tenths, staleness, jump_pct)| Walk::Other(Step::Risk {
                id, lambda_pct, vol_ref_bps, cap_tenths, staleness, jump_pct
            })),
        1 => (1u32..4, prop_oneof![Just(10i64), Just(1), Just(100)], 0i64..5, tiers()).prop_map(
            |(id, multiplier_tenths, fee_bps, tiers)| Walk::Other(Step::Instrument { id, multiplier_tenths, fee_bps, tiers })
        ),
        1 => (1u32..3, 50i64..=100, 100i64..150).prop_map(|(id, weight_pct, liability_pct)| Walk::Other(Step::Asset {
            id, weight_pct, liability_pct
        })),
        1 => (any::<bool>(), prop_oneof![Just(0u64), Just(3), Just(10), Just(1000)])
            .prop_map(|(partial, cooldown)| Walk::Other(Step::Params { partial, cooldown })),
    ];
    // Opening book: every account deposits and opens 1–3 positions whose
    // notional is 20–200× its deposit (near the maintenance requirement of
    // the generated tiers), some with non-quote collateral or liabilities.
    let opening = prop::collection::vec(
        (
            0usize..ACCOUNTS.len(),
            1u32..4,
            prop_oneof![-2000i64..-1, 1i64..2000],
            1_000i64..100_000,
            0u32..3,
            -2000i64..4000,
        ),
        ACCOUNTS.len()..3 * ACCOUNTS.len(),
    );
    let gaps = prop::collection::vec(
        prop_oneof![6 => 0u64..4, 1 => Just(0u64), 1 => 10u64..40],
        400,
    );
    (
        (tiers(), tiers(), tiers()),
        opening,
        prop::collection::vec(walk_step, 50..300),
        gaps,
    )
        .prop_map(|((t1, t2, t3), opening, walk, gaps)| {
            let mut steps = vec![
                Step::Params {
                    partial: true,
                    cooldown: 6,
                },
                Step::Instrument {
                    id: 1,
                    multiplier_tenths: 10,
                    fee_bps: 2,
                    tiers: t1,
                },
                Step::Instrument {
                    id: 2,
                    multiplier_tenths: 1,
                    fee_bps: 0,
                    tiers: t2,
                },
                Step::Instrument {
                    id: 3,
                    multiplier_tenths: 100,
                    fee_bps: 1,
                    tiers: t3,
                },
                Step::Asset {
                    id: 1,
                    weight_pct: 80,
                    liability_pct: 120,
                },
                Step::Asset {
                    id: 2,
                    weight_pct: 95,
                    liability_pct: 100,
                },
                Step::Mark {
                    id: 1,
                    pct: 100,
                    wiggle: 0,
                },
                Step::Mark {
                    id: 2,
                    pct: 100,
                    wiggle: 0,
                },
                Step::Mark {
                    id: 3,
                    pct: 100,
                    wiggle: 0,
                },
                Step::Index { id: 1, pct: 100 },
                Step::Index { id: 2, pct: 100 },
            ];
            for (account, id, qty_hundredths, deposit_cents, asset, collateral) in opening {
                steps.push(Step::Balance {
                    account,
                    asset: 0,
                    amount_cents: deposit_cents,
                });
                if asset != 0 {
                    steps.push(Step::Balance {
                        account,
                        asset,
                        amount_cents: collateral * 100,
                    });
                }
                steps.push(Step::Fill {
                    account,
                    id,
                    qty_hundredths,
                    price_pct: 100,
                    fee_cents: 0,
                });
            }
            let mut events = Vec::new();
            let mut ts = 0u64;
            let mut n = 0usize;
            let mut next_ts = |ts: &mut u64| {
                *ts += gaps[n % gaps.len()];
                n += 1;
                UnixNanos(*ts)
            };
            for step in &steps {
                events.push(to_event(step, next_ts(&mut ts)));
            }
            // Price walks in basis points of the base price.
            let mut marks = [10_000i64; 4];
            let mut indexes = [10_000i64; 3];
            for step in walk {
                let t = next_ts(&mut ts);
                events.push(match step {
                    Walk::Mark(id, bp) => {
                        // Mean-reverting, so accounts drift in and out of
                        // maintenance instead of sinking for good.
                        let level = &mut marks[id as usize];
                        *level = (*level + *level * bp / 10_000 + (10_000 - *level) / 8)
                            .clamp(1_000, 40_000);
                        Event::Mark(MarkPrice {
                            ts: t,
                            instrument: InstrumentId(id),
                            price: Fixed8(
                                base_mark(id) * *level * 10_000 + (bp.rem_euclid(7)) * 13,
                            ),
                        })
                    }
                    Walk::Index(id, bp) => {
                        let level = &mut indexes[id as usize];
                        *level = (*level + *level * bp / 10_000 + (10_000 - *level) / 8)
                            .clamp(1_000, 40_000);
                        Event::Index(IndexPrice {
                            ts: t,
                            asset: AssetId(id),
                            price: Fixed8(base_index(id) * *level * 10_000),
                        })
                    }
                    Walk::Other(step) => to_event(&step, t),
                });
            }
            events
        })
}
