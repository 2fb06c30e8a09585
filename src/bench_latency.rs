//! `liqd bench pipeline` and `liqd bench wire`: the latency harnesses of
//! `liqd_bench::latency` behind the CLI (argument parsing, the daemon
//! child process for `wire`, the report files).

use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use daemon::config::Idle;
use liqd_bench::latency::{self, hgrm, pipeline, svg, wire, Pinning, Report, Run};
use liqd_bench::{Machine, Mix, Path};

/// `liqd bench wire` pins (the daemon's gateway and engine, the generator
/// and receiver) only on hosts with at least this many cores: on 2 cores
/// the daemon's gateway, the generator and the receiver would share one
/// core beside the spinning engine (measured with the daemon of commit
/// 26abf3e: p50 1.4 ms pinned against 70 µs unpinned at 5k/s).
const WIRE_PIN_CORES_MIN: usize = 4;

/// The book and stream options both harnesses share.
#[derive(Args)]
pub struct ScenarioArgs {
    /// Accounts in the book.
    #[arg(long, default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=(1 << 24)))]
    accounts: u32,
    /// Instruments (perpetuals).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=8))]
    instruments: u32,
    /// Non-quote collateral assets.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=4))]
    assets: u32,
    /// Price path: quiet, walk, crash, flash, funding.
    #[arg(long, default_value = "quiet", value_parser = parse_path)]
    path: Path,
    /// Event kinds of the stream (marks, fills, funding weights).
    #[arg(long, default_value = "marks=1,fills=0,funding=0")]
    mix: Mix,
    /// Seed of the book and the stream.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Measured events per rate.
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// Events sent on the same schedule before measuring (default: a
    /// fifth of --events).
    #[arg(long)]
    warmup: Option<u64>,
    /// Offered rates to sweep, comma-separated (`100k,1m,5m`).
    #[arg(long, default_value = "100k", value_parser = parse_rates)]
    rates: Rates,
    /// Do not pin threads to cores.
    #[arg(long)]
    no_pin: bool,
}

/// Report outputs both harnesses share.
#[derive(Args)]
pub struct OutputArgs {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Write one HdrHistogram percentile file per run into this directory.
    #[arg(long)]
    hgrm: Option<PathBuf>,
    /// Write an SVG percentile plot (one curve per run).
    #[arg(long)]
    svg: Option<PathBuf>,
}

#[derive(Args)]
pub struct PipelineArgs {
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// The engine thread's idle strategy: spin, yield, sleep:MICROS.
    #[arg(long, default_value = "spin", value_parser = parse_idle)]
    engine_idle: Idle,
    /// Also time the same stream on the engine alone (its share).
    #[arg(long)]
    compare_engine: bool,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
pub struct WireArgs {
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// Every this many events is a ping (an event whose decision is one
    /// `H`); 1: every event (the quiet path's wire-to-wire).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    ping_every: u64,
    /// Measure a running daemon: its market-data address (the orders
    /// stream at --target-orders). It must have been started on a
    /// directory made by `--prepare` (the ping instrument, the book).
    #[arg(long, requires = "listen")]
    target: Option<SocketAddr>,
    #[arg(long)]
    target_orders: Option<SocketAddr>,
    /// Where the target daemon sends its outbound stream.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Journal the book into DIR, write DIR/liqd.toml (loopback ports
    /// 30001-30003, outbound to --listen or 127.0.0.1:31001) and exit.
    #[arg(long)]
    prepare: Option<PathBuf>,
    /// The daemon's engine_idle: spin (production), yield, sleep:MICROS.
    #[arg(long, default_value = "spin", value_parser = parse_idle_text)]
    engine_idle: String,
    /// `echo`: also measure a bare UDP echo on the same path; `none`.
    #[arg(long, default_value = "echo", value_parser = ["echo", "none"])]
    baseline: String,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Clone, Debug)]
pub struct Rates(Vec<f64>);

fn parse_rates(text: &str) -> Result<Rates, String> {
    latency::parse_rates(text).map(Rates).ok_or_else(|| {
        format!("{text:?}: rates are numbers ≥ 1 with an optional k or m suffix, comma-separated")
    })
}

fn parse_path(text: &str) -> Result<Path, String> {
    Path::parse(text).ok_or_else(|| format!("{text:?}: one of quiet, walk, crash, flash, funding"))
}

fn parse_idle_text(text: &str) -> Result<String, String> {
    parse_idle(text).map(|_| text.to_owned())
}

fn parse_idle(text: &str) -> Result<Idle, String> {
    Idle::parse(text).map_err(|e| e.to_string())
}

impl ScenarioArgs {
    fn options(&self) -> liqd_bench::Options {
        liqd_bench::Options {
            accounts: self.accounts,
            instruments: self.instruments,
            assets: self.assets,
            mix: self.mix,
            path: self.path,
            seed: self.seed,
            ..liqd_bench::Options::default()
        }
    }

    fn warmup(&self) -> u64 {
        self.warmup.unwrap_or(self.events / 5)
    }

    /// (generator/receiver core, engine core): the first and the last
    /// core when there are at least `min` cores.
    fn cores(&self, min: usize) -> (Option<usize>, Option<usize>) {
        let cores = latency::cores();
        if self.no_pin || cores.len() < min.max(2) {
            return (None, None);
        }
        (cores.first().copied(), cores.last().copied())
    }
}

fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// `liqd bench pipeline …`.
pub fn bench_pipeline(args: &PipelineArgs) -> anyhow::Result<()> {
    let s = &args.scenario;
    let (generator_core, engine_core) = s.cores(2);
    let mut report = Report {
        bench: "pipeline".to_owned(),
        command: command_line(),
        machine: Machine::here(),
        load_average: latency::load_average(),
        pinning: Pinning {
            generator: generator_core,
            engine: engine_core,
        },
        runs: Vec::new(),
        notes: vec![
            "open loop: latency from each event's intended send time to its Done on the gateway thread (journal append, input ring, apply, output ring)".to_owned(),
        ],
    };
    for &rate in &s.rates.0 {
        if !args.output.json {
            eprintln!(
                "liqd bench pipeline: {} accounts, path {}, {} events at {}/s…",
                s.accounts,
                s.path.name(),
                s.events,
                pipeline::short(rate)
            );
        }
        let run = on_own_thread(|| {
            pipeline::run(&pipeline::Options {
                scenario: s.options(),
                rate,
                events: s.events,
                warmup: s.warmup(),
                engine_core,
                generator_core,
                engine_idle: args.engine_idle,
                journal_dir: None,
                hook: pipeline::Hook::default(),
                compare_engine: args.compare_engine,
            })
        })
        .map_err(|e| anyhow!("{e}"))?;
        report.runs.push(run);
    }
    emit(&report, &args.output, "liqd bench pipeline")
}

/// `liqd bench wire …`.
pub fn bench_wire(args: &WireArgs) -> anyhow::Result<()> {
    let s = &args.scenario;
    if let Some(dir) = &args.prepare {
        let listen = args
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 31_001)));
        let target = wire::Target {
            md: SocketAddr::from(([127, 0, 0, 1], 30_001)),
            orders: SocketAddr::from(([127, 0, 0, 1], 30_002)),
            listen,
        };
        let prepared = wire::prepare(dir, &s.options()).map_err(|e| anyhow!("{e}"))?;
        let admin = SocketAddr::from(([127, 0, 0, 1], 30_003));
        let (gateway, engine) = s.cores(WIRE_PIN_CORES_MIN);
        let config = wire::config_toml(
            &prepared,
            &target,
            admin,
            engine,
            gateway,
            &args.engine_idle,
        );
        let path = dir.join("liqd.toml");
        std::fs::write(&path, config).with_context(|| format!("writing {}", path.display()))?;
        eprintln!(
            "prepared {} ({} events journaled); start it with: liqd run --config {}",
            dir.display(),
            prepared.journaled,
            path.display()
        );
        return Ok(());
    }
    let (generator_core, engine_core) = s.cores(WIRE_PIN_CORES_MIN);
    let mut report = Report {
        bench: "wire".to_owned(),
        command: command_line(),
        machine: Machine::here(),
        load_average: latency::load_average(),
        pinning: Pinning {
            generator: generator_core,
            engine: engine_core,
        },
        runs: Vec::new(),
        notes: vec![format!(
            "open loop over UDP loopback: latency from each ping's intended send time to the receiver's recv of its answer (the daemon's H for the ping instrument; the echo's datagram); every {} event(s) a ping",
            args.ping_every
        )],
    };
    for &rate in &s.rates.0 {
        let opts = wire::Options {
            scenario: s.options(),
            rate,
            events: s.events,
            warmup: s.warmup(),
            ping_every: args.ping_every,
            generator_core,
            receiver_core: generator_core,
            linger: Duration::from_millis(500),
        };
        let (run, decisions) = match args.target {
            Some(md) => {
                let target = wire::Target {
                    md,
                    orders: args.target_orders.unwrap_or(md),
                    listen: args.listen.context("--listen is required with --target")?,
                };
                let stream = liqd_bench::scenario(&opts.scenario).1;
                on_own_thread(|| wire::run(&opts, stream, &target, false))
                    .map_err(|e| anyhow!("{e}"))?
            }
            None => wire_in_child(
                &opts,
                engine_core,
                generator_core,
                &args.engine_idle,
                args.output.json,
            )?,
        };
        report.runs.push(run);
        report.runs.extend(decisions);
        if args.baseline == "echo" {
            let stop = Arc::new(AtomicBool::new(false));
            let echo_addr = wire::free_port()?;
            let listen = wire::free_port()?;
            let echo = wire::spawn_echo(echo_addr, listen, stop.clone(), generator_core)
                .map_err(|e| anyhow!("{e}"))?;
            let target = wire::Target {
                md: echo_addr,
                orders: echo_addr,
                listen,
            };
            let stream = liqd_bench::scenario(&liqd_bench::Options {
                accounts: 1,
                ..opts.scenario
            })
            .1;
            let result = on_own_thread(|| wire::run(&opts, stream, &target, true));
            stop.store(true, std::sync::atomic::Ordering::Release);
            let _ = echo.join();
            let (echo_run, _) = result.map_err(|e| anyhow!("{e}"))?;
            if let Some(w) = report
                .runs
                .iter()
                .find(|r| r.kind == "wire" && r.offered_per_s == rate)
            {
                let (d, e) = (&w.latency, &echo_run.latency);
                report.notes.push(format!(
                    "{}/s: daemon wire-to-wire p50 {} µs vs echo {} µs: the daemon adds {:.2}× the echo's p50 (p99: {} vs {} µs, {:.2}×)",
                    pipeline::short(rate),
                    latency::us(d.p50),
                    latency::us(e.p50),
                    d.p50.saturating_sub(e.p50) as f64 / e.p50.max(1) as f64,
                    latency::us(d.p99),
                    latency::us(e.p99),
                    d.p99.saturating_sub(e.p99) as f64 / e.p99.max(1) as f64,
                ));
            }
            report.runs.push(echo_run);
        }
    }
    emit(&report, &args.output, "liqd bench wire")
}

/// Prepares a temporary data directory, starts `liqd run` on it as a child
/// process, runs the schedule against it, stops it.
fn wire_in_child(
    opts: &wire::Options,
    engine_core: Option<usize>,
    gateway_core: Option<usize>,
    engine_idle: &str,
    quiet: bool,
) -> anyhow::Result<(Run, Option<Run>)> {
    let temp = tempfile::Builder::new()
        .prefix("liqd-bench-wire-")
        .tempdir()
        .context("creating a temporary directory")?;
    if !quiet {
        eprintln!(
            "liqd bench wire: journaling a book of {} accounts…",
            opts.scenario.accounts
        );
    }
    let prepared = wire::prepare(temp.path(), &opts.scenario).map_err(|e| anyhow!("{e}"))?;
    let target = wire::Target {
        md: wire::free_port()?,
        orders: wire::free_port()?,
        listen: wire::free_port()?,
    };
    let config = wire::config_toml(
        &prepared,
        &target,
        wire::free_port()?,
        engine_core,
        gateway_core,
        engine_idle,
    );
    let config_path = temp.path().join("liqd.toml");
    std::fs::write(&config_path, config).context("writing the daemon's configuration")?;
    let exe = std::env::current_exe().context("finding the liqd binary")?;
    let mut child = Command::new(exe)
        .arg("run")
        .arg("--config")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting liqd run")?;
    let result = wait_running(&mut child, quiet).and_then(|()| {
        if !quiet {
            eprintln!(
                "liqd bench wire: daemon running; {} events at {}/s…",
                opts.events,
                pipeline::short(opts.rate)
            );
        }
        on_own_thread(|| wire::run(opts, prepared.stream, &target, false))
            .map_err(|e| anyhow!("{e}"))
    });
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Waits for the daemon's "liqd: running" line (it replays the journaled
/// book first); its other stderr lines are kept for an error message.
fn wait_running(child: &mut Child, quiet: bool) -> anyhow::Result<()> {
    let stderr = child.stderr.take().context("the daemon's stderr")?;
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(600)) {
            Ok(line) => {
                let running = line.starts_with("liqd: running");
                if !quiet && (running || line.contains("warning")) {
                    eprintln!("  daemon: {line}");
                }
                seen.push(line);
                if running {
                    // Keep draining the pipe so the daemon never blocks.
                    std::thread::spawn(move || for _ in rx {});
                    return Ok(());
                }
            }
            Err(_) => {
                if let Ok(Some(status)) = child.try_wait() {
                    bail!("liqd run exited ({status}):\n{}", seen.join("\n"));
                }
                bail!("liqd run did not start within 600 s:\n{}", seen.join("\n"));
            }
        }
    }
}

/// Runs `f` on a thread of its own: the harnesses pin the calling thread
/// (the generator), and threads inherit their creator's affinity, so the
/// main thread stays unpinned for the next run's engine, journal threads
/// and the daemon child process.
fn on_own_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("bench-generator".into())
            .spawn_scoped(scope, f)
            .expect("spawning the generator thread")
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Prints the report and writes the requested files.
fn emit(report: &Report, output: &OutputArgs, title: &str) -> anyhow::Result<()> {
    if let Some(dir) = &output.hgrm {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for run in &report.runs {
            if let Some(h) = &run.histogram {
                let name = format!("{}.hgrm", file_name(&run.label));
                let path = dir.join(name);
                std::fs::write(&path, hgrm::write(h))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    if let Some(path) = &output.svg {
        let series: Vec<(String, &hdrhistogram::Histogram<u64>)> = report
            .runs
            .iter()
            .filter_map(|r| r.histogram.as_ref().map(|h| (r.label.clone(), h)))
            .collect();
        let m = &report.machine;
        let title = format!(
            "{title} — {} ×{}, {} accounts",
            m.cpu,
            m.cpus,
            report.runs.first().map_or(0, |r| r.accounts)
        );
        std::fs::write(path, svg::plot(&title, &series))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let text = if output.json {
        report.to_json().context("encoding the report")?
    } else {
        report.table()
    };
    let mut out = io::stdout().lock();
    writeln!(out, "{}", text.trim_end()).context("writing to standard output")?;
    out.flush().context("writing to standard output")
}

/// A run label as a file name: `pipeline quiet 1M/s` → `pipeline-quiet-1M-s`.
fn file_name(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}
