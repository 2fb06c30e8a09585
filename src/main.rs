//! `liqd`: the one binary. Subcommands are thin wrappers over the crates.
//!
//! Exit status: 0 success; 2 a usage error or an input line that is not
//! valid for the format (`error: FILE:LINE: REASON`); 1 anything else (a
//! file that cannot be opened or read, standard output closed, an engine
//! not built in).

mod bench;
mod bench_latency;
mod demo;
mod feed;
mod listen;

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use daemon::shard::Shard;
use engine::{AccountId, Engine, EngineConfig, Event, Limits, Seq, UnixNanos};
use journal::{InputJournal, InputReader, JournalOptions, SnapshotStore, SourceStream};
use replay::engines::{make_engine, EngineKind, ReplayEngine};
use replay::input::{Input, InputError};
use replay::inspect::At;
use replay::jsonl::{write_event, EventReader, JsonlError, JsonlSink};
use replay::overrides::Overrides;
use replay::progress::Progress;
use replay::run::{apply_one, Summary};
use replay::verify::{Expected, VerifyError};
use replay::whatif::MarginMode;

/// Exit status for an input that is not valid for the format (and, from
/// clap, for usage errors).
const EXIT_FORMAT: u8 = 2;
const EXIT_FAILURE: u8 = 1;

/// Input and output buffer size: large enough that reading and writing are
/// not per line.
const IO_BUFFER_BYTES: usize = 1 << 16;

#[derive(Parser)]
#[command(name = "liqd", version, about = "Cross-margin liquidation engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole pipeline with no setup: a generated population and a
    /// crash sent over UDP to an in-process daemon; a summary, `replay
    /// verify` of its journal and the next commands to try.
    Demo(demo::DemoArgs),
    /// Run the daemon: receive, journal, apply, publish (until SIGINT or
    /// SIGTERM).
    Run(DaemonArgs),
    /// Tools over event histories.
    #[command(subcommand)]
    Replay(ReplayCommand),
    /// Input journals: import, export, check.
    #[command(subcommand)]
    Journal(JournalCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Publish a JSONL event file as the venue's three MoldUDP64 streams
    /// (a test venue) and answer re-requests.
    Feed(feed::FeedArgs),
    /// Print liqd's outbound MoldUDP64 stream as JSONL, re-requesting gaps.
    Listen(listen::ListenArgs),
}

#[derive(Args)]
struct DaemonArgs {
    /// The configuration file (see deploy/liqd.toml).
    #[arg(long)]
    config: PathBuf,
}

#[derive(Subcommand)]
enum JournalCommand {
    /// Import a JSONL event file into a new (or continued) input journal.
    Import(ImportArgs),
    /// Export an input journal as JSONL events on stdout.
    Export(ExportArgs),
    /// Check a journal's segments and records; exit 1 if it is not intact.
    Check(JournalDirArgs),
    /// Replay a journal's input records into the engine and write its
    /// snapshot (into DIR/snapshots/ unless --snapshots says elsewhere).
    Snapshot(SnapshotArgs),
}

#[derive(Args)]
struct SnapshotArgs {
    /// Journal directory.
    dir: PathBuf,
    /// The sequence to snapshot at (every input ≤ SEQ applied); default:
    /// the journal's last record. Beyond the last record: the last record.
    #[arg(long)]
    at: Option<u64>,
    /// Snapshot directory (default: DIR/snapshots).
    #[arg(long)]
    snapshots: Option<PathBuf>,
    /// Replay from the journal's start instead of from the newest usable
    /// snapshot at or before SEQ.
    #[arg(long)]
    full: bool,
    /// Keep only this many newest snapshots (0 keeps all).
    #[arg(long, default_value_t = 0)]
    retain: usize,
}

#[derive(Args)]
struct ImportArgs {
    /// JSONL event file (PROTOCOL.md §5); `-` reads standard input.
    file: PathBuf,
    /// Journal directory (created if missing).
    dir: PathBuf,
    /// Size of each segment file, in MiB.
    #[arg(long, default_value_t = 64)]
    segment_mib: u64,
    /// Also run the fast engine over the whole journal and write its output
    /// journal to DIR/output (what the daemon would have recorded), for
    /// `liqd replay verify DIR`.
    #[arg(long)]
    with_outputs: bool,
}

#[derive(Args)]
struct ExportArgs {
    /// Journal directory.
    dir: PathBuf,
    /// First sequence to export.
    #[arg(long)]
    from: Option<u64>,
    /// Last sequence to export.
    #[arg(long)]
    to: Option<u64>,
}

#[derive(Args)]
struct JournalDirArgs {
    /// Journal directory.
    dir: PathBuf,
}

#[derive(Subcommand)]
enum ReplayCommand {
    /// Replay a JSONL event file or a journal directory through an engine,
    /// printing its outputs as JSONL on stdout and a summary on stderr.
    Run(RunArgs),
    /// Check that a JSONL event file is valid for the format (no engine).
    Check(CheckArgs),
    /// Re-apply an input history and compare every output with the
    /// recorded ones; exit 1 on any divergence. Prints the state hash.
    Verify(VerifyArgs),
    /// An account's full margin picture (every MARGIN.md term) at one
    /// moment of a history.
    Inspect(InspectArgs),
    /// Re-run a history with changed risk definitions (or in isolated
    /// margin mode) and print the difference in liquidations.
    Whatif(WhatifArgs),
    /// An account's E, MM and IM over a history, with liquidation and halt
    /// markers: a summary on stdout, optionally an SVG chart and a CSV.
    Timeline(TimelineArgs),
}

#[derive(Args)]
struct TimelineArgs {
    /// Input journal directory or JSONL event file.
    source: PathBuf,
    /// Account id.
    #[arg(long)]
    account: u64,
    /// Write the chart here.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Write the points here.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
}

#[derive(Args)]
struct WhatifArgs {
    /// Input journal directory or JSONL event file.
    source: PathBuf,
    /// Overrides, KEY=VALUE (see replay/README.md), e.g.
    /// `instrument.BTC-PERP.mmr_scale=1.5`, `params.partial=false`.
    #[arg(long = "set", value_name = "KEY=VALUE", num_args = 1..)]
    set: Vec<String>,
    /// Overrides from a TOML file (tables are key prefixes); applied before
    /// any --set.
    #[arg(long, value_name = "FILE.toml")]
    params: Option<PathBuf>,
    /// `isolated`: compare with every position an isolated silo.
    #[arg(long, value_enum, default_value_t = MarginModeArg::Cross)]
    margin_mode: MarginModeArg,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum MarginModeArg {
    Cross,
    Isolated,
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("moment").args(["at", "at_time"]))]
struct InspectArgs {
    /// Input journal directory or JSONL event file.
    source: PathBuf,
    /// Account id.
    #[arg(long)]
    account: u64,
    /// After the event with this sequence (default: after the last).
    #[arg(long)]
    at: Option<u64>,
    /// Before the first event with a later ts (nanoseconds).
    #[arg(long)]
    at_time: Option<u64>,
    /// How many of the last events and outputs to list.
    #[arg(long, default_value_t = 10)]
    last: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Replay from the first event even when a journal snapshot at or
    /// before --at could be the start (lists all the last events).
    #[arg(long)]
    no_snapshot: bool,
}

#[derive(Args)]
struct VerifyArgs {
    /// Input journal directory (outputs in DIR/output) or JSONL event file
    /// (outputs in NAME.expected.jsonl).
    source: PathBuf,
    /// The recorded outputs (an output journal directory or a JSONL output
    /// file), if not in the default place.
    #[arg(long)]
    outputs: Option<PathBuf>,
    /// Also run the reference model and compare after every event (slow).
    #[arg(long)]
    reference: bool,
}

#[derive(Args)]
struct RunArgs {
    /// JSONL event file (PROTOCOL.md §5; `-` reads standard input) or
    /// journal directory (`liqd journal import`).
    file: PathBuf,
    /// Which implementation of MARGIN.md to run.
    #[arg(long, value_enum, default_value_t = EngineArg::Fast)]
    engine: EngineArg,
    /// Start from the newest usable engine snapshot and replay only the
    /// events after it (fast engine; outputs are the tail's).
    #[arg(long)]
    from_snapshot: bool,
    /// Snapshot directory for --from-snapshot (default: DIR/snapshots).
    #[arg(long, requires = "from_snapshot")]
    snapshots: Option<PathBuf>,
}

#[derive(Args)]
struct CheckArgs {
    /// JSONL event file (PROTOCOL.md §5); `-` reads standard input.
    file: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum EngineArg {
    /// The production engine.
    Fast,
    /// The reference model (slow, plainly written).
    Reference,
}

impl EngineArg {
    fn kind(self) -> EngineKind {
        match self {
            EngineArg::Fast => EngineKind::Fast,
            EngineArg::Reference => EngineKind::Reference,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run(args) => daemon::run::run(&args.config).map_err(anyhow::Error::from),
        Command::Replay(ReplayCommand::Run(args)) => replay_run(args),
        Command::Replay(ReplayCommand::Check(args)) => replay_check(args),
        Command::Replay(ReplayCommand::Verify(args)) => replay_verify(args),
        Command::Replay(ReplayCommand::Inspect(args)) => replay_inspect(args),
        Command::Replay(ReplayCommand::Whatif(args)) => replay_whatif(args),
        Command::Replay(ReplayCommand::Timeline(args)) => replay_timeline(args),
        Command::Journal(JournalCommand::Import(args)) => journal_import(args),
        Command::Journal(JournalCommand::Export(args)) => journal_export(args),
        Command::Journal(JournalCommand::Check(args)) => journal_check(args),
        Command::Journal(JournalCommand::Snapshot(args)) => journal_snapshot(args),
        Command::Bench(command) => bench::run(command),
        Command::Feed(args) => feed::feed(args),
        Command::Demo(args) => demo::demo(args),
        Command::Listen(args) => listen::listen(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_status(&e))
        }
    }
}

fn exit_status(error: &anyhow::Error) -> u8 {
    let jsonl = error
        .downcast_ref::<JsonlError>()
        .is_some_and(|e| e.is_format());
    let source = error
        .downcast_ref::<InputError>()
        .is_some_and(|e| e.is_format());
    let verify = matches!(
        error.downcast_ref::<VerifyError>(),
        Some(VerifyError::Input(e)) if e.is_format()
    );
    if jsonl || source || verify {
        EXIT_FORMAT
    } else {
        EXIT_FAILURE
    }
}

/// The capacities a journal directory was written with (its
/// liqd-meta.toml; the defaults for a JSONL file or a directory without
/// one). The debugging commands replay unsharded histories only: a shard's
/// journal holds the other shards' order events too, which its engine
/// skipped, so they refuse it rather than report decisions the shard never
/// made (`liqd replay run DIR` applies the shard).
fn unsharded_limits(source: &Path, command: &str) -> anyhow::Result<Limits> {
    let meta = if source.is_dir() {
        daemon::datadir::Meta::load(source)?
    } else {
        None
    };
    if let Some(meta) = &meta {
        anyhow::ensure!(
            meta.shard == Shard::ALL,
            "{} is the journal of shard {}: `liqd {command}` works on unsharded journals only \
             (`liqd replay run {}` applies the shard)",
            source.display(),
            meta.shard,
            source.display()
        );
    }
    Ok(meta.map_or_else(Limits::default, |m| m.limits))
}

/// `liqd replay inspect SOURCE --account ID [--at SEQ | --at-time TS]`.
fn replay_inspect(args: &InspectArgs) -> anyhow::Result<()> {
    let at = match (args.at, args.at_time) {
        (Some(seq), _) => At::Seq(Seq(seq)),
        (None, Some(ts)) => At::Time(UnixNanos(ts)),
        (None, None) => At::End,
    };
    let inspect = if args.no_snapshot {
        replay::inspect::inspect
    } else {
        replay::inspect::inspect_nearest
    };
    let inspection = inspect(
        &Input::open(&args.source),
        AccountId(args.account),
        at,
        args.last,
        unsharded_limits(&args.source, "replay inspect")?,
        &mut Progress::stderr("inspect"),
    )
    .map_err(input_error)?;
    if args.json {
        write_stdout(&format!("{:#}\n", inspection.to_json()))
    } else {
        write_stdout(&inspection.to_string())
    }
}

/// Writes a report to standard output (an error, not a panic, when it is
/// closed).
fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing to standard output")
}

/// `liqd replay whatif SOURCE (--set KEY=VALUE… | --params FILE.toml)
/// [--margin-mode isolated] [--json]`.
fn replay_whatif(args: &WhatifArgs) -> anyhow::Result<()> {
    let mut overrides = match &args.params {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Overrides::parse_toml(&text).with_context(|| path.display().to_string())?
        }
        None => Overrides::default(),
    };
    overrides
        .list
        .extend(Overrides::parse(args.set.iter().map(String::as_str))?.list);
    let mode = match args.margin_mode {
        MarginModeArg::Cross => MarginMode::Cross,
        MarginModeArg::Isolated => MarginMode::Isolated,
    };
    let report = replay::whatif::whatif(
        &Input::open(&args.source),
        overrides,
        mode,
        unsharded_limits(&args.source, "replay whatif")?,
        &mut Progress::stderr("whatif"),
    )
    .map_err(input_error)?;
    if args.json {
        write_stdout(&format!("{:#}\n", report.to_json()))
    } else {
        write_stdout(&report.to_string())
    }
}

/// `liqd replay timeline SOURCE --account ID [--svg FILE] [--csv FILE]`.
fn replay_timeline(args: &TimelineArgs) -> anyhow::Result<()> {
    let line = replay::timeline::timeline(
        &Input::open(&args.source),
        AccountId(args.account),
        unsharded_limits(&args.source, "replay timeline")?,
        &mut Progress::stderr("timeline"),
    )
    .map_err(input_error)?;
    if let Some(path) = &args.svg {
        std::fs::write(path, line.to_svg())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.csv {
        std::fs::write(path, line.to_csv())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    write_stdout(&format!("{}\n", line.summary()))
}

/// Keeps a JSONL format error recognisable for the exit status.
fn input_error(e: InputError) -> anyhow::Error {
    match e {
        InputError::Jsonl(e) => e.into(),
        other => other.into(),
    }
}

/// `liqd replay verify SOURCE [--outputs PATH] [--reference]`.
fn replay_verify(args: &VerifyArgs) -> anyhow::Result<()> {
    let input = Input::open(&args.source);
    let expected = args
        .outputs
        .as_deref()
        .map_or_else(|| Expected::beside(&input), Expected::at);
    let mut progress = Progress::stderr("verify");
    let report = replay::verify::verify(
        &input,
        &expected,
        args.reference,
        unsharded_limits(&args.source, "replay verify")?,
        &mut progress,
    )?;
    write_stdout(&format!("{report}\n"))?;
    anyhow::ensure!(
        report.is_ok(),
        "the replay diverged from the recorded outputs"
    );
    Ok(())
}

/// `liqd replay run FILE|DIR [--engine fast|reference] [--from-snapshot
/// [--snapshots DIR]]`.
fn replay_run(args: &RunArgs) -> anyhow::Result<()> {
    let input = Input::open(&args.file);
    // A daemon's journal directory records its shard and capacities
    // (liqd-meta.toml): replay reproduces its decisions.
    let meta = if args.file.is_dir() {
        daemon::datadir::Meta::load(&args.file)?
    } else {
        None
    };
    let limits = meta.as_ref().map_or_else(Limits::default, |m| m.limits);
    let shard = meta.as_ref().map_or(Shard::ALL, |m| m.shard);
    let (mut engine, from): (Box<dyn ReplayEngine>, Seq) = if args.from_snapshot {
        anyhow::ensure!(
            matches!(args.engine, EngineArg::Fast),
            "--from-snapshot needs the fast engine (snapshots are its state)"
        );
        let resumed = replay::input::resume(
            &input,
            args.snapshots.as_deref(),
            Seq(u64::MAX),
            limits,
            EngineConfig::default(),
        )
        .map_err(input_error)?;
        for (path, why) in &resumed.skipped {
            eprintln!("warning: skipped snapshot {}: {why}", path.display());
        }
        match &resumed.snapshot {
            Some((seq, path)) => eprintln!(
                "resumed from snapshot seq={} ({}); replaying from seq {}",
                seq.0,
                path.display(),
                resumed.from.0
            ),
            None => eprintln!("no usable snapshot: replaying from seq 1"),
        }
        (Box::new(resumed.engine), resumed.from)
    } else {
        (make_engine(args.engine.kind(), limits), Seq(1))
    };
    let mut sink = JsonlSink::new(BufWriter::with_capacity(
        IO_BUFFER_BYTES,
        io::stdout().lock(),
    ));
    let mut summary = Summary::default();
    let read = input.for_each_from(from, &mut Progress::hidden(), |seq, event| {
        if shard.applies(event) {
            apply_one(engine.margin_engine(), seq, event, &mut sink, &mut summary);
            if sink.error().is_some() {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    // Outputs produced before a bad line stay printed: flush them first.
    let written = sink.finish().context("writing outputs to standard output");
    read.map_err(input_error)?;
    written?;
    let state_hash = engine
        .state_hash()
        .map_or_else(|| "n/a".to_owned(), |hash| format!("{hash:016x}"));
    eprintln!("{summary} state_hash={state_hash}");
    Ok(())
}

/// `liqd replay check FILE`: reads every line, applies nothing.
fn replay_check(args: &CheckArgs) -> anyhow::Result<()> {
    let (input, name) = open_input(&args.file)?;
    let mut reader = EventReader::new(input, name);
    let mut events: u64 = 0;
    while reader.read_event()?.is_some() {
        events += 1;
    }
    eprintln!("{}: {events} events, format valid", reader.file());
    Ok(())
}

/// The stream an imported event would have arrived on.
fn source_stream(event: &Event) -> SourceStream {
    match event {
        Event::Mark(_) | Event::Index(_) => SourceStream::MarketData,
        Event::Fill(_) | Event::Balance(_) | Event::Funding(_) => SourceStream::Orders,
        Event::AssetDef(_) | Event::InstrumentDef(_) | Event::Params(_) | Event::Risk(_) => {
            SourceStream::Admin
        }
    }
}

/// `liqd journal import FILE DIR`: every line becomes one input record (its
/// journal sequence continues the journal's; the receive time is the event
/// ts, the stream sequence the line number). A bad line stops the import;
/// what was imported before it stays, flushed.
fn journal_import(args: &ImportArgs) -> anyhow::Result<()> {
    let (input, name) = open_input(&args.file)?;
    let options = JournalOptions {
        segment_bytes: args.segment_mib << 20,
        ..JournalOptions::default()
    };
    let mut journal = InputJournal::open(&args.dir, options)
        .with_context(|| format!("opening journal {}", args.dir.display()))?;
    let mut reader = EventReader::new(input, name);
    let mut imported: u64 = 0;
    let read = loop {
        match reader.read_event() {
            Ok(Some(event)) => {
                journal
                    .append_event(event.ts(), source_stream(&event), reader.line(), &event)
                    .context("appending to the journal")?;
                imported += 1;
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    let last = journal.close().context("closing the journal")?;
    eprintln!(
        "imported {imported} events into {} (last seq {last})",
        args.dir.display()
    );
    read?;
    if args.with_outputs {
        let outputs = args.dir.join(replay::input::OUTPUT_SUBDIR);
        let (summary, last) = replay::verify::record_outputs(
            &Input::Journal(args.dir.clone()),
            &outputs,
            options,
            Limits::default(),
            &mut Progress::stderr("outputs"),
        )?;
        let last = last.map_or_else(|| "none".to_owned(), |s| s.to_string());
        eprintln!(
            "recorded outputs in {} ({summary}, last output seq {last})",
            outputs.display()
        );
    }
    Ok(())
}

/// `liqd journal export DIR [--from SEQ] [--to SEQ]`: the events as JSONL.
fn journal_export(args: &ExportArgs) -> anyhow::Result<()> {
    let reader = InputReader::open(&args.dir)
        .with_context(|| format!("opening journal {}", args.dir.display()))?;
    let mut out = BufWriter::with_capacity(IO_BUFFER_BYTES, io::stdout().lock());
    let to = args.to.unwrap_or(u64::MAX);
    for record in reader.iter_from(Seq(args.from.unwrap_or(1))) {
        let record = record.context("reading the journal")?;
        if record.seq.0 > to {
            break;
        }
        write_event(&mut out, &record.event()).context("writing to standard output")?;
    }
    out.flush().context("writing to standard output")?;
    Ok(())
}

/// `liqd journal snapshot DIR [--at SEQ] [--snapshots DIR] [--full]
/// [--retain N]`: replays the input records up to SEQ (from the newest
/// usable snapshot at or before SEQ unless `--full`) and writes the
/// engine's snapshot at the last sequence applied.
fn journal_snapshot(args: &SnapshotArgs) -> anyhow::Result<()> {
    let reader = InputReader::open(&args.dir)
        .with_context(|| format!("opening journal {}", args.dir.display()))?;
    anyhow::ensure!(
        reader.segment_count() > 0,
        "{}: no journal segment files (not a journal directory)",
        args.dir.display()
    );
    let snapshots = args
        .snapshots
        .clone()
        .unwrap_or_else(|| journal::default_snapshot_dir(&args.dir));
    let store = SnapshotStore::open(&snapshots, args.retain)
        .with_context(|| format!("opening snapshot directory {}", snapshots.display()))?;
    let at = Seq(args.at.unwrap_or(u64::MAX));
    let limits = unsharded_limits(&args.dir, "journal snapshot")?;
    let config = EngineConfig::default();
    let restored = if args.full {
        None
    } else {
        journal::load_engine_snapshot(&store, at, limits, config)?
    };
    let (mut engine, mut last) = match restored {
        Some(restored) => {
            for (path, why) in &restored.skipped {
                eprintln!("warning: skipped snapshot {}: {why}", path.display());
            }
            eprintln!(
                "starting from snapshot seq={} ({})",
                restored.seq.0,
                restored.path.display()
            );
            (restored.engine, restored.seq)
        }
        None => (Engine::with_config(limits, config), Seq(0)),
    };
    let first = reader.first_seq().unwrap_or(Seq(1));
    anyhow::ensure!(
        first.0 <= last.0.saturating_add(1),
        "the journal starts at seq {}, but the state resumes after seq {}: \
         the inputs between are missing (a snapshot at or after seq {} is needed)",
        first.0,
        last.0,
        first.0 - 1
    );
    let mut sink = engine::CountingSink::default();
    for record in reader.iter_from(Seq(last.0.saturating_add(1))) {
        let record = record.context("reading the journal")?;
        if record.seq > at {
            break;
        }
        let _ = engine::MarginEngine::apply(&mut engine, record.seq, &record.event(), &mut sink);
        last = record.seq;
    }
    if args.at.is_some_and(|at| at > last.0) {
        eprintln!("the journal ends at seq {}: snapshot there", last.0);
    }
    let bytes = engine.snapshot();
    let info = store
        .write(last, bytes.as_slice())
        .context("writing the snapshot")?;
    println!(
        "snapshot seq={} path={} bytes={} accounts={} state_hash={:016x}",
        last.0,
        info.path.display(),
        bytes.len(),
        engine.account_count(),
        engine.state_hash()
    );
    Ok(())
}

/// `liqd journal check DIR`: prints the report; exit 1 unless intact.
fn journal_check(args: &JournalDirArgs) -> anyhow::Result<()> {
    let report = journal::check(&args.dir)
        .with_context(|| format!("checking journal {}", args.dir.display()))?;
    write_stdout(&format!("{report}\n"))?;
    anyhow::ensure!(
        report.is_intact(),
        "journal {} is not intact",
        args.dir.display()
    );
    Ok(())
}

/// The file (or standard input for `-`) and the name errors give it.
fn open_input(path: &Path) -> anyhow::Result<(Box<dyn BufRead>, String)> {
    if path == Path::new("-") {
        return Ok((Box::new(io::stdin().lock()), "<stdin>".to_owned()));
    }
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok((
        Box::new(BufReader::with_capacity(IO_BUFFER_BYTES, file)),
        path.display().to_string(),
    ))
}
