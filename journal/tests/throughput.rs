//! Rough append/read rates (ignored by default; run in release):
//! `cargo test -p journal --release --test throughput -- --ignored --nocapture`

mod common;

use std::time::{Duration, Instant};

use common::*;
use journal::{FlushPolicy, InputJournal, InputReader, JournalOptions};

#[test]
#[ignore = "measurement; run in release"]
fn append_and_read_rates() {
    const RECORDS: u64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let options = JournalOptions {
        segment_bytes: 64 << 20,
        flush: FlushPolicy {
            every_records: 16_384,
            interval: Duration::from_millis(5),
        },
        ..JournalOptions::default()
    };
    let records: Vec<_> = (1..=RECORDS).map(record_for).collect();
    let mut journal = InputJournal::open(dir.path(), options).unwrap();
    let syncer = journal.syncer().spawn(Duration::from_millis(5)).unwrap();
    let t = Instant::now();
    journal.prepare_next().unwrap();
    eprintln!("prepare one 64 MiB segment: {:?}", t.elapsed());
    let mut latencies_ns = Vec::with_capacity(RECORDS as usize);
    let began = Instant::now();
    for record in &records {
        let t = Instant::now();
        journal.append(record).unwrap();
        latencies_ns.push(t.elapsed().as_nanos() as u64);
    }
    let elapsed = began.elapsed();
    let stats = journal.stats();
    syncer.stop().unwrap();
    journal.close().unwrap();
    latencies_ns.sort_unstable();
    let pct = |p: f64| latencies_ns[((latencies_ns.len() as f64 - 1.0) * p) as usize];
    eprintln!(
        "append: {RECORDS} records, {} bytes in {elapsed:?}: {:.2} M records/s, {:.2} GB/s; {stats:?}",
        stats.bytes,
        RECORDS as f64 / elapsed.as_secs_f64() / 1e6,
        stats.bytes as f64 / elapsed.as_secs_f64() / 1e9
    );
    eprintln!(
        "append latency ns (incl. ~20 ns timer): p50 {} p99 {} p99.9 {} p99.99 {} max {}",
        pct(0.5),
        pct(0.99),
        pct(0.999),
        pct(0.9999),
        latencies_ns.last().unwrap()
    );
    for trusted in [false, true] {
        let reader = if trusted {
            // SAFETY: written just above by this crate's writer.
            unsafe { InputReader::open_trusted(dir.path()) }.unwrap()
        } else {
            InputReader::open(dir.path()).unwrap()
        };
        let began = Instant::now();
        let mut sum = 0u64;
        for record in reader.iter() {
            sum = sum.wrapping_add(record.unwrap().input().src_seq.to_native());
        }
        let elapsed = began.elapsed();
        std::hint::black_box(sum);
        eprintln!(
            "read ({}): {:.2} M records/s",
            if trusted {
                "trusted, CRC only"
            } else {
                "CRC + bytecheck"
            },
            RECORDS as f64 / elapsed.as_secs_f64() / 1e6
        );
    }
}
