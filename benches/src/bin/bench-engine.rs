//! `bench-engine`: runs the engine benchmark (the library's `run`) and
//! prints one line per run, or JSON lines with `--json`.
//!
//! ```text
//! bench-engine [--accounts N] [--instruments K] [--assets A] [--ticks T]
//!              [--path quiet|walk|crash|all]
//!              [--engine triggers|all-holders|both|reference|all]
//!              [--all-holders-ticks T] [--reference-ticks T]
//!              [--split equal|notional|notional-vol|all] [--fill-every N]
//!              [--seed S] [--vol-max-factor-hundredths F] [--vol-ref-bp B]
//!              [--vol-headroom-pct H] [--json]
//! ```

use engine::{EvaluationMode, SplitStrategy};
use liqd_bench::{run, Options, Path};

fn main() {
    let mut opts = Options::default();
    let mut modes = vec![EvaluationMode::Triggers];
    let mut reference = false;
    let mut reference_ticks = None;
    let mut splits = vec![opts.split];
    let mut paths = vec![opts.path];
    let mut json = false;
    let mut all_holders_ticks = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| panic!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--accounts" => opts.accounts = value().parse().expect("a number"),
            "--instruments" => opts.instruments = value().parse().expect("a number"),
            "--assets" => opts.assets = value().parse().expect("a number"),
            "--ticks" => opts.ticks = value().parse().expect("a number"),
            "--all-holders-ticks" => all_holders_ticks = Some(value().parse().expect("a number")),
            "--reference-ticks" => reference_ticks = Some(value().parse().expect("a number")),
            "--fill-every" => opts.fill_every = value().parse().expect("a number"),
            "--seed" => opts.seed = value().parse().expect("a number"),
            "--vol-max-factor-hundredths" => {
                opts.vol_max_factor_hundredths = value().parse().expect("a number")
            }
            "--vol-ref-bp" => opts.vol_ref_bp = value().parse().expect("a number"),
            "--vol-headroom-pct" => opts.vol_headroom_pct = value().parse().expect("a number"),
            "--path" => {
                let v = value();
                paths = if v == "all" {
                    vec![Path::Quiet, Path::Walk, Path::Crash]
                } else {
                    vec![Path::parse(&v).expect("quiet, walk, crash or all")]
                }
            }
            "--engine" => {
                modes = match value().as_str() {
                    "triggers" => vec![EvaluationMode::Triggers],
                    "all-holders" => vec![EvaluationMode::AllHolders],
                    "both" => vec![EvaluationMode::Triggers, EvaluationMode::AllHolders],
                    "reference" => {
                        reference = true;
                        vec![]
                    }
                    "all" => {
                        reference = true;
                        vec![EvaluationMode::Triggers, EvaluationMode::AllHolders]
                    }
                    other => panic!("unknown engine {other}"),
                }
            }
            "--split" => {
                splits = match value().as_str() {
                    "equal" => vec![SplitStrategy::Equal],
                    "notional" => vec![SplitStrategy::Notional],
                    "notional-vol" => vec![SplitStrategy::NotionalVol],
                    "all" => vec![
                        SplitStrategy::Equal,
                        SplitStrategy::Notional,
                        SplitStrategy::NotionalVol,
                    ],
                    other => panic!("unknown split {other}"),
                }
            }
            "--json" => json = true,
            other => panic!("unknown flag {other}"),
        }
    }
    for &path in &paths {
        for &mode in &modes {
            let splits = if mode == EvaluationMode::AllHolders {
                &splits[..1]
            } else {
                &splits[..]
            };
            for &split in splits {
                let mut o = Options {
                    path,
                    mode,
                    split,
                    ..opts
                };
                if mode == EvaluationMode::AllHolders {
                    o.ticks = all_holders_ticks.unwrap_or(o.ticks);
                }
                print(&run(&o), json);
            }
        }
        if reference {
            let o = Options {
                path,
                reference: true,
                ticks: reference_ticks.unwrap_or(opts.ticks),
                ..opts
            };
            print(&run(&o), json);
        }
    }
}

fn print(report: &liqd_bench::Report, json: bool) {
    if json {
        println!("{}", serde_json::to_string(report).expect("serializable"));
    } else {
        println!("{}", report.line());
    }
}
