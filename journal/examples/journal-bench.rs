//! Journal and snapshot benchmarks (BENCHMARKS.md, "Journal"):
//!
//! ```sh
//! cargo run --release -p journal --example journal-bench -- \
//!     [--records 2000000] [--runs 3] [--segment-mib 64] [--accounts 1000000] \
//!     [--dir /tmp] [--no-append] [--no-snapshot]
//! ```
//!
//! - append throughput: `--records` input records (480-byte payloads,
//!   488 bytes framed) appended with the syncer thread running (preparing
//!   pre-touched segments ahead, msync every 16 384 records / 5 ms), no
//!   timer in the loop; records/s and GB/s of framed bytes;
//! - append latency: the same, each append timed (`Instant`, ~20 ns of
//!   the figure is the timer), percentiles from an hdrhistogram;
//! - read: the zero-copy reader over that journal, checked (CRC +
//!   bytecheck) and trusted (CRC only), touching one field per record;
//! - snapshots: a `liqd_bench` population of `--accounts` accounts;
//!   `Engine::snapshot`, the store's write (fsync + rename), load (read +
//!   CRC) and `Engine::restore` (validate + rebuild + re-arm every account),
//!   size, and the restored state hash checked against the original.
//!
//! Each figure is printed per run, then the median of the runs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use engine::{
    AccountId, Engine, EngineConfig, Event, Fill, Fixed8, InstrumentId, MarkPrice, Seq, UnixNanos,
};
use hdrhistogram::Histogram;
use journal::{
    FlushPolicy, InputJournal, InputReader, JournalOptions, SnapshotStore, SourceStream,
};

struct Args {
    records: u64,
    runs: usize,
    segment_mib: u64,
    accounts: u32,
    dir: PathBuf,
    append: bool,
    snapshot: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        records: 2_000_000,
        runs: 3,
        segment_mib: 64,
        accounts: 1_000_000,
        dir: std::env::temp_dir(),
        append: true,
        snapshot: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--records" => args.records = number(&value()),
            "--runs" => args.runs = number(&value()) as usize,
            "--segment-mib" => args.segment_mib = number(&value()),
            "--accounts" => args.accounts = number(&value()) as u32,
            "--dir" => args.dir = PathBuf::from(value()),
            "--no-append" => args.append = false,
            "--no-snapshot" => args.snapshot = false,
            other => usage(&format!("unknown argument {other}")),
        }
    }
    args.runs = args.runs.max(1);
    args
}

fn number(text: &str) -> u64 {
    text.replace('_', "")
        .parse()
        .unwrap_or_else(|_| usage(&format!("not a number: {text}")))
}

fn usage(why: &str) -> ! {
    eprintln!("journal-bench: {why}\nsee the module docs of journal/examples/journal-bench.rs");
    std::process::exit(2)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A pool of input events (every input payload has the same size).
fn event_pool() -> Vec<Event> {
    (0..1024u64)
        .map(|n| {
            let ts = UnixNanos(1_700_000_000_000_000_000 + n);
            if n % 4 == 0 {
                Event::Fill(Fill {
                    ts,
                    account: AccountId(n * 7919),
                    instrument: InstrumentId(1 + (n % 4) as u32),
                    qty: Fixed8(n as i64 * 1000 - 300_000),
                    price: Fixed8(5_000_000_000_000 + n as i64),
                    fee: Fixed8(100),
                    fill_id: n,
                })
            } else {
                Event::Mark(MarkPrice {
                    ts,
                    instrument: InstrumentId(1 + (n % 4) as u32),
                    price: Fixed8(5_000_000_000_000 + n as i64 * 100),
                })
            }
        })
        .collect()
}

fn options(args: &Args) -> JournalOptions {
    JournalOptions {
        segment_bytes: args.segment_mib << 20,
        flush: FlushPolicy {
            every_records: 16_384,
            interval: Duration::from_millis(5),
        },
        pretouch: true,
        ..JournalOptions::default()
    }
}

struct AppendRun {
    records_per_s: f64,
    /// Per CPU-second of the appending thread.
    records_per_cpu_s: f64,
    gb_per_s: f64,
    close_ms: f64,
    inline_prepares: u64,
    /// Involuntary context switches and minor faults of the appending
    /// thread during the timed loop.
    preempted: u64,
    faults: u64,
    /// Timed appends that took more than 50 µs (latency pass only).
    over_50us: u64,
}

/// Appends `records` events; with `latency`, times each append.
fn append(
    args: &Args,
    dir: &std::path::Path,
    pool: &[Event],
    latency: Option<&mut Histogram<u64>>,
) -> AppendRun {
    let mut journal = InputJournal::open(dir, options(args)).expect("open journal");
    let syncer = journal
        .syncer()
        .spawn(Duration::from_millis(5))
        .expect("syncer thread");
    // Let the preparer have its segments ready, as a running daemon would.
    journal.prepare_next().expect("prepare");
    std::thread::sleep(Duration::from_millis(200));
    let usage = thread_usage();
    let (began, cpu) = (Instant::now(), thread_cpu_s());
    match latency {
        None => {
            for n in 0..args.records {
                let event = &pool[(n % pool.len() as u64) as usize];
                journal
                    .append_event(event.ts(), SourceStream::MarketData, n, event)
                    .expect("append");
            }
        }
        Some(histogram) => {
            for n in 0..args.records {
                let event = &pool[(n % pool.len() as u64) as usize];
                let t = Instant::now();
                journal
                    .append_event(event.ts(), SourceStream::MarketData, n, event)
                    .expect("append");
                let ns = t.elapsed().as_nanos() as u64;
                histogram.saturating_record(ns.max(1));
            }
        }
    }
    let (elapsed, cpu) = (began.elapsed().as_secs_f64(), thread_cpu_s() - cpu);
    let (preempted, faults) = thread_usage();
    let (preempted, faults) = (preempted - usage.0, faults - usage.1);
    let stats = journal.stats();
    let closing = Instant::now();
    syncer.stop().expect("syncer");
    journal.close().expect("close");
    AppendRun {
        records_per_s: args.records as f64 / elapsed,
        records_per_cpu_s: args.records as f64 / cpu,
        gb_per_s: stats.bytes as f64 / elapsed / 1e9,
        close_ms: closing.elapsed().as_secs_f64() * 1e3,
        inline_prepares: stats.inline_prepares,
        preempted,
        faults,
        over_50us: 0,
    }
}

/// This thread's CPU time, in seconds (immune to the time slices other
/// processes take on a shared machine).
fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// (involuntary context switches, minor page faults) of this thread so far.
fn thread_usage() -> (u64, u64) {
    // SAFETY: a zeroed rusage is a valid out value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid `who` and a valid out pointer.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    (usage.ru_nivcsw as u64, usage.ru_minflt as u64)
}

/// Records per second through the reader, touching one field of each:
/// [first pass over a new mapping (pages in the page cache, not yet in
/// the page tables), second pass, second pass per CPU-second].
fn read_rate(dir: &std::path::Path, trusted: bool) -> [f64; 3] {
    let reader = if trusted {
        // SAFETY: written by this crate's writer just before.
        unsafe { InputReader::open_trusted(dir) }.expect("open reader")
    } else {
        InputReader::open(dir).expect("open reader")
    };
    let pass = || {
        let (began, cpu) = (Instant::now(), thread_cpu_s());
        let (mut count, mut sum) = (0u64, 0u64);
        for record in reader.iter() {
            let record = record.expect("intact journal");
            sum = sum.wrapping_add(record.input().src_seq.to_native());
            count += 1;
        }
        let (elapsed, cpu) = (began.elapsed().as_secs_f64(), thread_cpu_s() - cpu);
        std::hint::black_box(sum);
        (count as f64 / elapsed, count as f64 / cpu)
    };
    let (cold, _) = pass();
    let (warm, warm_cpu) = pass();
    [cold, warm, warm_cpu]
}

fn bench_journal(args: &Args) {
    let pool = event_pool();
    println!(
        "## append and read: {} records per run, {} MiB segments, {} runs",
        args.records, args.segment_mib, args.runs
    );
    let (mut rps, mut gbps, mut cpu_rps) = (vec![], vec![], vec![]);
    let mut reads: Vec<[f64; 6]> = Vec::new();
    let mut quantiles: Vec<[f64; 5]> = Vec::new();
    for run in 1..=args.runs {
        let dir = tempfile::tempdir_in(&args.dir).expect("temp dir");
        let a = append(args, dir.path(), &pool, None);
        let [c0, c1, c2] = read_rate(dir.path(), false);
        let [t0, t1, t2] = read_rate(dir.path(), true);
        let r = [c0, c1, c2, t0, t1, t2].map(|x| x / 1e6);
        drop(dir);
        let dir = tempfile::tempdir_in(&args.dir).expect("temp dir");
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("hdr");
        let mut l = append(args, dir.path(), &pool, Some(&mut histogram));
        l.over_50us = histogram.count_between(50_001, u64::MAX);
        drop(dir);
        let q = [
            histogram.value_at_quantile(0.5) as f64,
            histogram.value_at_quantile(0.99) as f64,
            histogram.value_at_quantile(0.999) as f64,
            histogram.value_at_quantile(0.9999) as f64,
            histogram.max() as f64,
        ];
        println!(
            "run {run}: append {:.2} M rec/s {:.3} GB/s ({:.2} M rec/s per appender CPU-s; close {:.0} ms, inline prepares {}); \
             timed append p50 {} p99 {} p99.9 {} p99.99 {} max {} ns (inline prepares {}, \
             {} appends > 50 us, {} involuntary context switches, {} minor faults); \
             read M rec/s (new mapping / mapped / per CPU-s): checked {:.2} / {:.2} / {:.2}, \
             trusted {:.2} / {:.2} / {:.2}",
            a.records_per_s / 1e6,
            a.gb_per_s,
            a.records_per_cpu_s / 1e6,
            a.close_ms,
            a.inline_prepares,
            q[0],
            q[1],
            q[2],
            q[3],
            q[4],
            l.inline_prepares,
            l.over_50us,
            l.preempted,
            l.faults,
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5]
        );
        rps.push(a.records_per_s);
        cpu_rps.push(a.records_per_cpu_s);
        gbps.push(a.gb_per_s);
        reads.push(r);
        quantiles.push(q);
    }
    let q = |i: usize| median(&mut quantiles.iter().map(|q| q[i]).collect::<Vec<_>>());
    let r = |i: usize| median(&mut reads.iter().map(|r| r[i]).collect::<Vec<_>>());
    println!(
        "median: append {:.2} M rec/s {:.3} GB/s ({:.2} M rec/s per appender CPU-s); latency p50 {} p99 {} p99.9 {} p99.99 {} max {} ns; \
         read M rec/s (new mapping / mapped / per CPU-s): checked {:.2} / {:.2} / {:.2}, \
         trusted {:.2} / {:.2} / {:.2}",
        median(&mut rps) / 1e6,
        median(&mut gbps),
        median(&mut cpu_rps) / 1e6,
        q(0),
        q(1),
        q(2),
        q(3),
        q(4),
        r(0),
        r(1),
        r(2),
        r(3),
        r(4),
        r(5)
    );
}

fn bench_snapshot(args: &Args) {
    let opts = liqd_bench::Options {
        accounts: args.accounts,
        ..liqd_bench::Options::default()
    };
    let began = Instant::now();
    let engine: Engine = liqd_bench::book(&opts);
    let limits = *engine.limits();
    let config = EngineConfig {
        check_invariant: false,
        ..*engine.config()
    };
    println!(
        "## snapshots: {} accounts (population built in {:.1} s), {} runs",
        engine.account_count(),
        began.elapsed().as_secs_f64(),
        args.runs
    );
    let hash = engine.state_hash();
    let mut figures: Vec<[f64; 4]> = Vec::new();
    let mut size = 0;
    for run in 1..=args.runs {
        let dir = tempfile::tempdir_in(&args.dir).expect("temp dir");
        let store = SnapshotStore::open(dir.path(), 0).expect("store");
        let t = Instant::now();
        let bytes = engine.snapshot();
        let snapshot_ms = t.elapsed().as_secs_f64() * 1e3;
        size = bytes.len();
        let t = Instant::now();
        let info = store.write(Seq(1), bytes.as_slice()).expect("write");
        let write_ms = t.elapsed().as_secs_f64() * 1e3;
        drop(bytes);
        let t = Instant::now();
        let loaded = SnapshotStore::load(&info.path).expect("load");
        let load_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let restored = Engine::restore(loaded.payload.as_slice(), limits, config).expect("restore");
        let restore_ms = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(restored.state_hash(), hash, "restored state differs");
        println!(
            "run {run}: {:.1} MB; snapshot {snapshot_ms:.0} ms, store write (fsync) {write_ms:.0} ms, \
             load (read + CRC) {load_ms:.0} ms, restore {restore_ms:.0} ms; hash ok",
            size as f64 / 1e6
        );
        figures.push([snapshot_ms, write_ms, load_ms, restore_ms]);
    }
    let m = |i: usize| median(&mut figures.iter().map(|f| f[i]).collect::<Vec<_>>());
    println!(
        "median: {:.1} MB ({:.0} B/account); snapshot {:.0} ms, store write {:.0} ms, \
         load {:.0} ms, restore {:.0} ms",
        size as f64 / 1e6,
        size as f64 / f64::from(args.accounts.max(1)),
        m(0),
        m(1),
        m(2),
        m(3)
    );
}

fn main() {
    let args = parse_args();
    if args.append {
        bench_journal(&args);
    }
    if args.snapshot {
        bench_snapshot(&args);
    }
}
