//! `liqd`: the one binary. Subcommands are thin wrappers over the crates.
//!
//! Exit status: 0 success; 2 a usage error or an input line that is not
//! valid for the format (`error: FILE:LINE: REASON`); 1 anything else (a
//! file that cannot be opened or read, standard output closed, an engine
//! not built in).

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use engine::{Limits, MarginEngine, Seq};
use replay::engines::{make_engine, EngineKind};
use replay::jsonl::{EventReader, JsonlError, JsonlSink};
use replay::run::{apply_one, Summary};

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
    /// Tools over event histories.
    #[command(subcommand)]
    Replay(ReplayCommand),
}

#[derive(Subcommand)]
enum ReplayCommand {
    /// Replay a JSONL event file through an engine, printing its outputs as
    /// JSONL on stdout and a summary on stderr.
    Run(RunArgs),
    /// Check that a JSONL event file is valid for the format (no engine).
    Check(CheckArgs),
}

#[derive(Args)]
struct RunArgs {
    /// JSONL event file (PROTOCOL.md §5); `-` reads standard input.
    file: PathBuf,
    /// Which implementation of MARGIN.md to run.
    #[arg(long, value_enum, default_value_t = EngineArg::Fast)]
    engine: EngineArg,
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
        Command::Replay(ReplayCommand::Run(args)) => replay_run(args),
        Command::Replay(ReplayCommand::Check(args)) => replay_check(args),
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
    match error.downcast_ref::<JsonlError>() {
        Some(e) if e.is_format() => EXIT_FORMAT,
        _ => EXIT_FAILURE,
    }
}

/// `liqd replay run FILE [--engine fast|reference]`.
fn replay_run(args: &RunArgs) -> anyhow::Result<()> {
    let (input, name) = open_input(&args.file)?;
    let mut engine = make_engine(args.engine.kind(), Limits::default());
    let mut reader = EventReader::new(input, name);
    let mut sink = JsonlSink::new(BufWriter::with_capacity(
        IO_BUFFER_BYTES,
        io::stdout().lock(),
    ));
    let mut summary = Summary::default();
    let read = apply_all(&mut reader, engine.margin_engine(), &mut sink, &mut summary);
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

/// Applies every event, event `n` (line `n`) with sequence `n`, until the
/// end, a bad line, or standard output failing (reported by the sink).
fn apply_all<R: BufRead, W: Write>(
    reader: &mut EventReader<R>,
    engine: &mut dyn MarginEngine,
    sink: &mut JsonlSink<W>,
    summary: &mut Summary,
) -> Result<(), JsonlError> {
    while let Some(event) = reader.read_event()? {
        apply_one(engine, Seq(reader.line()), &event, sink, summary);
        if sink.error().is_some() {
            break;
        }
    }
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
