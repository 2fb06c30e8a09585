//! `liqd bench …`: benchmarks. `engine` drives the engine alone through a
//! seeded population and event stream (`liqd_bench::run`); the pipeline
//! and wire benchmarks join this group as further subcommands.

use std::io::{self, Write};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use engine::{EvaluationMode, SplitStrategy};
use liqd_bench::{Mix, Options, Path, Subjects, Timing};

/// Largest population (the engine's account table is reserved up front).
const ACCOUNTS_MAX: u32 = 1 << 24;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// The engine alone: a seeded book of accounts driven by a seeded stream
    /// of marks, index prices, fills and funding; apply time per event.
    Engine(EngineArgs),
    /// The daemon's pipeline in process (journal, rings, engine thread) at
    /// fixed offered rates, open loop: latency percentiles per rate.
    Pipeline(crate::bench_latency::PipelineArgs),
    /// Wire-to-wire over UDP loopback through `liqd run`, against a bare
    /// UDP echo.
    Wire(crate::bench_latency::WireArgs),
}

#[derive(Args)]
pub struct EngineArgs {
    /// Accounts in the book.
    #[arg(long, default_value_t = 100_000,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(ACCOUNTS_MAX)))]
    accounts: u32,
    /// Instruments (perpetuals), each with RiskParams.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=8))]
    instruments: u32,
    /// Non-quote collateral assets.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=4))]
    assets: u32,
    /// Events to time, after the book is built.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Price path of the marks and index prices.
    #[arg(long, value_enum, default_value_t = PathArg::Quiet)]
    path: PathArg,
    /// Which implementation of MARGIN.md to measure.
    #[arg(long, value_enum, default_value_t = EngineArg::Fast)]
    engine: EngineArg,
    /// Relative weights of the event kinds: marks (marks and index
    /// prices), fills, funding. Funding evaluates every holder.
    #[arg(long, default_value_t = Mix::default())]
    mix: Mix,
    /// Seed of the population and the stream.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The fast engine's way of finding the accounts a tick can have
    /// changed.
    #[arg(long, value_enum, default_value_t = ModeArg::Triggers)]
    mode: ModeArg,
    /// How the trigger index shares an account's slack among its exposures.
    #[arg(long, value_enum, default_value_t = SplitArg::Notional)]
    split: SplitArg,
    /// Every instrument's vol_max_factor, in hundredths (100: f stays 1).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(100..=10_000))]
    vol_max_factor_hundredths: u32,
    /// Every instrument's vol_ref, in basis points.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    vol_ref_bp: u32,
    /// The fast engine's vol-factor headroom, in percent.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(0..=1_000))]
    vol_headroom_pct: u32,
    /// `event`: a timer around every event (percentiles per kind);
    /// `batch`: one timer per 256 pre-generated events (events/s without
    /// the timer's own cost; mean only).
    #[arg(long, value_enum, default_value_t = TimingArg::Event)]
    timing: TimingArg,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum TimingArg {
    Event,
    Batch,
}

#[derive(Clone, Copy, ValueEnum)]
enum PathArg {
    /// Every price oscillates by 10⁻⁶: ticks that cross nothing.
    Quiet,
    /// A random walk (±0.5 bp × 1..8 per tick).
    Walk,
    /// The walk with a −30 % fall and a rebound to −10 %.
    Crash,
    /// The walk with a one-tick −20 % flash crash per market (held by a
    /// 5 % jump guard: halt) and a rebound to −5 %.
    Flash,
    /// The walk with a 0.5 % funding payment every 5,000 events.
    Funding,
}

#[derive(Clone, Copy, ValueEnum)]
enum EngineArg {
    /// The production engine.
    Fast,
    /// The reference model (every account after every event: small books).
    Reference,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    /// The trigger index: a tick evaluates only the accounts it crosses.
    Triggers,
    /// Every tick revalues every holder of the instrument or asset.
    AllHolders,
}

#[derive(Clone, Copy, ValueEnum)]
enum SplitArg {
    Equal,
    Notional,
    NotionalVol,
}

impl EngineArgs {
    fn options(&self) -> Options {
        Options {
            accounts: self.accounts,
            instruments: self.instruments,
            assets: self.assets,
            events: self.events,
            mix: self.mix,
            path: match self.path {
                PathArg::Quiet => Path::Quiet,
                PathArg::Walk => Path::Walk,
                PathArg::Crash => Path::Crash,
                PathArg::Flash => Path::Flash,
                PathArg::Funding => Path::Funding,
            },
            subject: match self.engine {
                EngineArg::Fast => Subjects::Fast,
                EngineArg::Reference => Subjects::Reference,
            },
            mode: match self.mode {
                ModeArg::Triggers => EvaluationMode::Triggers,
                ModeArg::AllHolders => EvaluationMode::AllHolders,
            },
            split: match self.split {
                SplitArg::Equal => SplitStrategy::Equal,
                SplitArg::Notional => SplitStrategy::Notional,
                SplitArg::NotionalVol => SplitStrategy::NotionalVol,
            },
            seed: self.seed,
            timing: match self.timing {
                TimingArg::Event => Timing::Event,
                TimingArg::Batch => Timing::Batch,
            },
            vol_max_factor_hundredths: self.vol_max_factor_hundredths,
            vol_ref_bp: self.vol_ref_bp,
            vol_headroom_pct: self.vol_headroom_pct,
        }
    }
}

pub fn run(command: &BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Engine(args) => bench_engine(args),
        BenchCommand::Pipeline(args) => crate::bench_latency::bench_pipeline(args),
        BenchCommand::Wire(args) => crate::bench_latency::bench_wire(args),
    }
}

/// `liqd bench engine …`: the report as a table, or one JSON object.
fn bench_engine(args: &EngineArgs) -> anyhow::Result<()> {
    let report = liqd_bench::run(&args.options());
    let text = if args.json {
        serde_json::to_string(&report).context("encoding the report")?
    } else {
        report.table()
    };
    let mut out = io::stdout().lock();
    writeln!(out, "{}", text.trim_end()).context("writing to standard output")?;
    out.flush().context("writing to standard output")
}
