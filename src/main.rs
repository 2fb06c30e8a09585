//! `liqd`: the one binary. Subcommands are thin wrappers over the crates.
//!
//! Exit status: 0 success; 2 a usage error or an input line that is not
//! valid for the format (`error: FILE:LINE: REASON`); 1 anything else (a
//! file that cannot be opened or read, standard output closed, an engine
//! not built in).

mod bench;
mod bench_latency;
mod feed;
mod listen;

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use daemon::shard::Shard;
use engine::{Engine, EngineConfig, Event, Limits, Seq};
use journal::{InputJournal, InputReader, JournalOptions, SnapshotStore, SourceStream};
use replay::engines::{make_engine, EngineKind, ReplayEngine};
use replay::jsonl::{write_event, EventReader, JsonlError, JsonlSink};
use replay::run::{apply_one, Summary};
use replay::source::{resume, Source, SourceError};

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
        Command::Journal(JournalCommand::Import(args)) => journal_import(args),
        Command::Journal(JournalCommand::Export(args)) => journal_export(args),
        Command::Journal(JournalCommand::Check(args)) => journal_check(args),
        Command::Journal(JournalCommand::Snapshot(args)) => journal_snapshot(args),
        Command::Bench(command) => bench::run(command),
        Command::Feed(args) => feed::feed(args),
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
        .downcast_ref::<SourceError>()
        .is_some_and(|e| e.is_format());
    if jsonl || source {
        EXIT_FORMAT
    } else {
        EXIT_FAILURE
    }
}

/// `liqd replay run FILE|DIR [--engine fast|reference] [--from-snapshot
/// [--snapshots DIR]]`.
fn replay_run(args: &RunArgs) -> anyhow::Result<()> {
    let mut source = Source::open(&args.file)?;
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
        let resumed = resume(
            &source,
            args.snapshots.as_deref(),
            limits,
            EngineConfig::default(),
        )?;
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
    let mut read = Ok(());
    for item in source.events(from) {
        match item {
            Ok((_, event)) if !shard.applies(&event) => {}
            Ok((seq, event)) => {
                apply_one(engine.margin_engine(), seq, &event, &mut sink, &mut summary);
                if sink.error().is_some() {
                    break;
                }
            }
            Err(e) => {
                read = Err(e);
                break;
            }
        }
    }
    // Outputs produced before a bad line stay printed: flush them first.
    let written = sink.finish().context("writing outputs to standard output");
    read?;
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
    read.map_err(anyhow::Error::from)
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
    let (limits, config) = (Limits::default(), EngineConfig::default());
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
    println!("{report}");
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
