//! The engine benchmark behind `liqd bench engine`: a seeded population of
//! accounts (1..K positions each, some non-quote collateral and liabilities,
//! a leverage spread that puts about 1 % of accounts within 2 % of their
//! maintenance requirement) driven through a seeded price path, timing every
//! tick, for the trigger index and for the plain per-holder revaluation
//! ([`EvaluationMode`]) side by side.
//!
//! Paths: `quiet` oscillates every price by 10⁻⁶ of itself (a tick that
//! should cross nothing), `walk` is a random walk whose steps are uniform
//! in ±0.5 bp times a per-market factor (1..8), `crash` is the walk with a
//! −30 % fall over 300 ticks per market and a rebound to −10 %. Every
//! instrument has RiskParams with `vol_max_factor` 1: the engine measures
//! its volatility (for the `NotionalVol` split) while `f` stays 1.

use std::time::Instant;

use engine::reference::ReferenceEngine;
use engine::*;
use serde::Serialize;

/// What the benchmark drives: the fast engine (either mode) or the
/// reference model.
trait Subject: MarginEngine {
    fn trigger_stats(&self) -> TriggerStats {
        TriggerStats::default()
    }
    fn memory_bytes(&self) -> usize {
        0
    }
    fn armed_triggers(&self) -> usize {
        0
    }
}

impl Subject for Engine {
    fn trigger_stats(&self) -> TriggerStats {
        Engine::trigger_stats(self)
    }
    fn memory_bytes(&self) -> usize {
        Engine::memory_bytes(self)
    }
    fn armed_triggers(&self) -> usize {
        Engine::armed_triggers(self)
    }
}

impl Subject for ReferenceEngine {}

/// A price path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Path {
    Quiet,
    Walk,
    Crash,
}

impl Path {
    pub fn parse(text: &str) -> Option<Path> {
        match text {
            "quiet" => Some(Path::Quiet),
            "walk" => Some(Path::Walk),
            "crash" => Some(Path::Crash),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub accounts: u32,
    /// Instruments (1..=8).
    pub instruments: u32,
    /// Non-quote collateral assets (0..=4).
    pub assets: u32,
    /// Price ticks (marks and index prices) to time.
    pub ticks: u32,
    /// One fill on an existing position after every `fill_every` ticks
    /// (0: none).
    pub fill_every: u32,
    pub path: Path,
    pub mode: EvaluationMode,
    /// Run the reference model instead of the fast engine (`mode` ignored).
    pub reference: bool,
    pub split: SplitStrategy,
    pub seed: u64,
    /// Every instrument's `vol_max_factor`, in hundredths (100: f stays 1;
    /// above, a volatile path raises f, which re-evaluates the holders).
    pub vol_max_factor_hundredths: u32,
    /// Every instrument's `vol_ref`, in basis points.
    pub vol_ref_bp: u32,
    /// `EngineConfig::vol_headroom`, in percent.
    pub vol_headroom_pct: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            accounts: 1_000_000,
            instruments: 4,
            assets: 2,
            ticks: 20_000,
            fill_every: 0,
            path: Path::Walk,
            mode: EvaluationMode::Triggers,
            reference: false,
            split: SplitStrategy::Notional,
            seed: 1,
            vol_max_factor_hundredths: 100,
            vol_ref_bp: 10,
            vol_headroom_pct: 25,
        }
    }
}

/// Nanosecond latency summary.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Latency {
    pub mean: u64,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Latency {
    fn of(samples: &mut [u64]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Latency {
            mean: samples.iter().sum::<u64>() / samples.len() as u64,
            p50: at(0.5),
            p99: at(0.99),
            p999: at(0.999),
            max: *samples.last().unwrap_or(&0),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub mode: String,
    pub split: String,
    pub path: Path,
    pub accounts: u32,
    pub positions: u64,
    pub balances: u64,
    pub ticks: u32,
    pub fills: u32,
    /// Seconds to build the population (accounts, fills, withdrawals).
    pub setup_s: f64,
    /// Timed events (ticks and fills) per second of apply time.
    pub events_per_s: f64,
    /// Apply time per price tick.
    pub ns_per_tick: Latency,
    /// Apply time per fill.
    pub ns_per_fill: Latency,
    /// Triggers popped per tick (Triggers mode).
    pub crossed_per_tick: f64,
    /// Accounts re-armed per tick.
    pub rearms_per_tick: f64,
    /// Accounts evaluated exactly per tick.
    pub evaluations_per_tick: f64,
    /// Ticks that evaluated nobody.
    pub silent_ticks: f64,
    /// Mean apply time of the ticks that evaluated someone, per evaluation.
    pub ns_per_evaluation: f64,
    /// The same over the ticks that evaluated someone but liquidated
    /// nobody: the cost of a pop + exact revaluation + re-arm.
    pub ns_per_rearm: f64,
    pub liquidations: u64,
    /// Liquidations per second of apply time during the crash's fall.
    pub liquidations_per_s_in_fall: f64,
    /// Engine heap bytes (reserved capacity) per account.
    pub bytes_per_account: f64,
    /// Triggers armed at the end.
    pub armed_triggers: u64,
    /// Ticks that evaluated every holder (first prices, vol-factor rises).
    pub holder_sweeps: u64,
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in [lo, hi).
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo) as u64) as i64
    }
}

const E8: i64 = 100_000_000;
const MARK_BASES: [i64; 8] = [50_000, 3_000, 150, 1, 600, 25, 7, 90_000];
const INDEX_BASES: [i64; 4] = [3_000, 1, 150, 60_000];
/// Step size of each lane's walk relative to the first (instruments, then
/// assets): the markets do not all move alike.
const LANE_VOL: [i64; 12] = [2, 3, 6, 4, 3, 8, 5, 2, 3, 1, 4, 6];

fn fx(units: i64) -> Fixed8 {
    Fixed8(units * E8)
}

/// Feeds events, counting sequence and time.
struct Feed {
    seq: u64,
    ts: u64,
    sink: CountingSink,
}

impl Feed {
    fn apply<E: Subject>(&mut self, engine: &mut E, event: Event) -> Result<(), Reject> {
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

fn limits(opts: &Options) -> Limits {
    Limits {
        accounts_max: opts.accounts.max(1).next_power_of_two().max(1024),
        instruments_max: 16,
        assets_max: 8,
        ..Limits::default()
    }
}

fn fast_engine(opts: &Options) -> Engine {
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
fn populate<E: Subject>(engine: &mut E, opts: &Options, rng: &mut Rng) -> (Feed, u64, u64) {
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
                max_jump: Fixed8(0),
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
        let account = AccountId(u64::from(n) * 7 + 3);
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

/// Runs one benchmark.
pub fn run(opts: &Options) -> Report {
    if opts.reference {
        let mut engine = ReferenceEngine::new(limits(opts));
        run_on(&mut engine, opts)
    } else {
        let mut engine = fast_engine(opts);
        run_on(&mut engine, opts)
    }
}

/// The fast engine holding the seeded population of `opts` (no price path
/// run): a big, realistic state for benchmarks of whole-state operations
/// (snapshots).
pub fn populated_engine(opts: &Options) -> Engine {
    let mut engine = fast_engine(opts);
    let mut rng = Rng(opts.seed.max(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    populate(&mut engine, opts, &mut rng);
    engine
}

fn run_on<E: Subject>(engine: &mut E, opts: &Options) -> Report {
    let mut rng = Rng(opts.seed.max(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let started = Instant::now();
    let (mut feed, positions, balances) = populate(engine, opts, &mut rng);
    let setup_s = started.elapsed().as_secs_f64();
    let k = opts.instruments.clamp(1, 8) as usize;
    let a = opts.assets.min(4) as usize;
    let lanes = k + a;
    // Price levels in millionths of the base price, per instrument / asset.
    let mut levels = vec![0i64; lanes];
    let mut samples = Vec::with_capacity(opts.ticks as usize);
    let mut fill_samples = Vec::new();
    let mut evaluating = (0u64, 0u64); // (ns, evaluations) of ticks that evaluated someone
    let mut silent = 0u64;
    let mut rearming = (0u64, 0u64); // the same, ticks without liquidations
    let fall_start = opts.ticks / 5;
    let fall_len = 300 * lanes as u32;
    let (mut fall_ns, mut fall_liquidations) = (0u64, 0u64);
    let before = engine.trigger_stats();
    let liquidations_before = feed.sink.liquidations;
    let mut fills = 0u32;
    let mut total_ns = 0u64;
    for t in 0..opts.ticks {
        let lane = t as usize % lanes;
        let level = &mut levels[lane];
        match opts.path {
            Path::Quiet => {
                *level = if (t as usize / lanes).is_multiple_of(2) {
                    1
                } else {
                    -1
                }
            }
            Path::Walk => *level += rng.range(-50, 51) * LANE_VOL[lane],
            Path::Crash => {
                let phase = t.wrapping_sub(fall_start);
                if t >= fall_start && phase < fall_len {
                    // −30 % over 300 steps of this lane, with noise.
                    *level += -1_000 + rng.range(-300, 301);
                } else if t >= fall_start && phase < 2 * fall_len {
                    // Rebound by 20 points.
                    *level += 667 + rng.range(-300, 301);
                } else {
                    *level += rng.range(-50, 51) * LANE_VOL[lane];
                }
            }
        }
        *level = (*level).clamp(-900_000, 2_000_000);
        let ts = UnixNanos(2 + u64::from(t));
        let event = if lane < k {
            let base = MARK_BASES[lane];
            Event::Mark(MarkPrice {
                ts,
                instrument: InstrumentId(lane as u32 + 1),
                price: Fixed8(base * E8 / 1_000_000 * (1_000_000 + *level)),
            })
        } else {
            let base = INDEX_BASES[lane - k];
            Event::Index(IndexPrice {
                ts,
                asset: AssetId((lane - k) as u32 + 1),
                price: Fixed8(base * E8 / 1_000_000 * (1_000_000 + *level)),
            })
        };
        let stats = engine.trigger_stats();
        let liquidated = feed.sink.liquidations;
        let start = Instant::now();
        feed.apply(engine, event).expect("valid tick");
        let ns = start.elapsed().as_nanos() as u64;
        samples.push(ns);
        total_ns += ns;
        let evaluated = engine.trigger_stats().evaluations - stats.evaluations;
        if evaluated == 0 {
            silent += 1;
        } else {
            evaluating.0 += ns;
            evaluating.1 += evaluated;
            if feed.sink.liquidations == liquidated {
                rearming.0 += ns;
                rearming.1 += evaluated;
            }
        }
        if opts.path == Path::Crash && t >= fall_start && t - fall_start < fall_len {
            fall_ns += ns;
            fall_liquidations += feed.sink.liquidations - liquidated;
        }
        if opts.fill_every > 0 && (t + 1) % opts.fill_every == 0 {
            // A small trade on an existing position of a random account.
            let n = rng.below(u64::from(opts.accounts.max(1)));
            let account = AccountId(n * 7 + 3);
            let i = rng.below(k as u64) as u32;
            let event = Event::Fill(Fill {
                ts,
                account,
                instrument: InstrumentId(i + 1),
                qty: Fixed8(if fills.is_multiple_of(2) {
                    1_000
                } else {
                    -1_000
                }),
                price: fx(MARK_BASES[i as usize]),
                fee: Fixed8(0),
                fill_id: 0,
            });
            let start = Instant::now();
            let _ = feed.apply(engine, event);
            let ns = start.elapsed().as_nanos() as u64;
            fill_samples.push(ns);
            total_ns += ns;
            fills += 1;
        }
    }
    let after = engine.trigger_stats();
    let ticks = f64::from(opts.ticks.max(1));
    Report {
        mode: if opts.reference {
            "Reference".to_string()
        } else {
            format!("{:?}", opts.mode)
        },
        split: format!("{:?}", opts.split),
        path: opts.path,
        accounts: opts.accounts,
        positions,
        balances,
        ticks: opts.ticks,
        fills,
        setup_s,
        events_per_s: f64::from(opts.ticks + fills) / (total_ns.max(1) as f64 / 1e9),
        ns_per_tick: Latency::of(&mut samples),
        ns_per_fill: Latency::of(&mut fill_samples),
        crossed_per_tick: (after.crossed - before.crossed) as f64 / ticks,
        rearms_per_tick: (after.rearms - before.rearms) as f64 / ticks,
        evaluations_per_tick: (after.evaluations - before.evaluations) as f64 / ticks,
        silent_ticks: silent as f64 / ticks,
        ns_per_evaluation: evaluating.0 as f64 / evaluating.1.max(1) as f64,
        ns_per_rearm: rearming.0 as f64 / rearming.1.max(1) as f64,
        liquidations: feed.sink.liquidations - liquidations_before,
        liquidations_per_s_in_fall: fall_liquidations as f64 / (fall_ns.max(1) as f64 / 1e9),
        bytes_per_account: engine.memory_bytes() as f64 / f64::from(opts.accounts.max(1)),
        armed_triggers: engine.armed_triggers() as u64,
        holder_sweeps: after.holder_sweeps - before.holder_sweeps,
    }
}

impl Report {
    /// One line for a table.
    pub fn line(&self) -> String {
        format!(
            "{:<10} {:<11} {:<5} accts {:>8} ticks {:>6} setup {:>5.1}s | ns/tick mean {:>9} p50 {:>9} p99 {:>9} max {:>9} | crossed/tick {:>8.3} rearms/tick {:>8.3} evals/tick {:>10.1} ns/eval {:>6.0} ns/rearm {:>6.0} | liq {:>6} liq/s(fall) {:>8.0} | B/acct {:>5.0} sweeps {}",
            self.mode,
            self.split,
            format!("{:?}", self.path).to_lowercase(),
            self.accounts,
            self.ticks,
            self.setup_s,
            self.ns_per_tick.mean,
            self.ns_per_tick.p50,
            self.ns_per_tick.p99,
            self.ns_per_tick.max,
            self.crossed_per_tick,
            self.rearms_per_tick,
            self.evaluations_per_tick,
            self.ns_per_evaluation,
            self.ns_per_rearm,
            self.liquidations,
            self.liquidations_per_s_in_fall,
            self.bytes_per_account,
            self.holder_sweeps,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_runs_agree_between_modes() {
        for path in [Path::Quiet, Path::Walk, Path::Crash] {
            let opts = Options {
                accounts: 2_000,
                ticks: 3_000,
                path,
                fill_every: 10,
                ..Options::default()
            };
            let fast = run(&opts);
            let plain = run(&Options {
                mode: EvaluationMode::AllHolders,
                ..opts
            });
            assert_eq!(fast.liquidations, plain.liquidations, "{path:?}");
            assert!(fast.evaluations_per_tick < plain.evaluations_per_tick);
            if path == Path::Quiet {
                assert!(fast.crossed_per_tick < 0.01, "{}", fast.line());
            }
            if path == Path::Crash {
                assert!(fast.liquidations > 0);
            }
        }
    }

    /// ~80 s in a debug build: `cargo test -p liqd-bench -- --ignored`.
    /// (The engine's differential tests compare every output.)
    #[test]
    #[ignore]
    fn the_reference_model_liquidates_the_same_accounts() {
        // (The reference model recomputes every account after every event,
        // in exact rationals: keep it small for a debug build.)
        let opts = Options {
            accounts: 60,
            ticks: 1_200,
            path: Path::Crash,
            ..Options::default()
        };
        let fast = run(&opts);
        let reference = run(&Options {
            reference: true,
            ..opts
        });
        assert!(fast.liquidations > 0);
        assert_eq!(fast.liquidations, reference.liquidations);
    }
}
