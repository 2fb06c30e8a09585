//! Criterion micro-benchmarks of the pipeline's per-event steps: decoding
//! an inbound MoldUDP64 packet and its message, encoding inbound and
//! outbound messages, a journal append (input event, output halt) on a
//! memory-mapped segment with its flusher threads running, a ring hop
//! (push + pop of the 488-byte input slot on one thread: the cost of the
//! ring itself, without the cross-core transfer that `--example ring_hop`
//! of the daemon crate measures), and `apply` of the next event of the
//! `liqd bench` quiet and walk streams on a 10,000-account book.
//!
//! `cargo bench -p liqd-bench --bench pipeline -- --test` runs each once
//! (a smoke test, as CI does).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use daemon::datadir::{DataDir, JournalSettings, Meta};
use daemon::ring::ring;
use daemon::ring_types::{Command, EngineInput, Origin};
use daemon::shard::Shard;
use engine::*;
use feed_gateway::wire::{
    decode_event, encode_event, encode_halt, encode_liquidation_part, parse_packet, Origin as Src,
};
use journal::SourceStream;

fn mark(price: i64) -> Event {
    Event::Mark(MarkPrice {
        ts: UnixNanos(1_700_000_000_000_000_000),
        instrument: InstrumentId(3),
        price: Fixed8(price),
    })
}

fn halt() -> Halt {
    Halt {
        ts: UnixNanos(1_700_000_000_000_000_000),
        seq: Seq(42),
        instrument: InstrumentId(3),
        reason: HaltReason::Jump,
        on: true,
    }
}

fn codec(c: &mut Criterion) {
    let mut message = [0u8; 64];
    let len = encode_event(&mark(6_500_012_345_678), &mut message).expect("encodes");
    let mut datagram = Vec::new();
    datagram.extend_from_slice(b"BENCHMD   ");
    datagram.extend_from_slice(&7u64.to_be_bytes());
    datagram.extend_from_slice(&1u16.to_be_bytes());
    datagram.extend_from_slice(&(len as u16).to_be_bytes());
    datagram.extend_from_slice(&message[..len]);
    c.bench_function("decode/packet+mark", |b| {
        b.iter(|| {
            let packet = parse_packet(black_box(&datagram)).expect("valid");
            let mut sum = 0u64;
            for m in packet.messages() {
                if let Ok(Event::Mark(mark)) = decode_event(m) {
                    sum += mark.price.0 as u64;
                }
            }
            sum
        })
    });
    let mut out = [0u8; 64];
    c.bench_function("encode/mark", |b| {
        b.iter(|| encode_event(black_box(&mark(6_500_012_345_678)), &mut out))
    });
    let origin = Src {
        stream: SourceStream::MarketData,
        seq: 7,
    };
    c.bench_function("encode/halt", |b| {
        b.iter(|| encode_halt(black_box(&halt()), origin))
    });
    let liquidation = Liquidation {
        ts: UnixNanos(1),
        seq: Seq(42),
        account: AccountId(7),
        equity: Dec8(12_050_000_000),
        maint_margin: Dec8(13_000_000_000),
        partial: true,
        bankrupt: false,
        escalation: false,
    };
    let legs: Vec<Leg> = (0..4)
        .map(|i| Leg {
            instrument: InstrumentId(i + 1),
            qty: Dec8(-20_000_000),
            limit_price: Dec8(6_300_010_000_000),
        })
        .collect();
    let mut buf = [0u8; 2048];
    c.bench_function("encode/liquidation_4_legs", |b| {
        b.iter(|| encode_liquidation_part(black_box(&liquidation), &legs, origin, 0, &mut buf))
    });
}

fn journal_append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = JournalSettings {
        segment_bytes: 64 << 20,
        flush_every_records: 4096,
        flush_interval: Duration::from_millis(5),
    };
    let meta = Meta {
        shard: Shard::ALL,
        limits: Limits::default(),
    };
    let mut data = DataDir::open(dir.path(), &meta, settings).expect("data dir");
    let _syncers = [
        data.input
            .syncer()
            .spawn(settings.flush_interval)
            .expect("syncer"),
        data.output
            .syncer()
            .spawn(settings.flush_interval)
            .expect("syncer"),
    ];
    let event = mark(6_500_012_345_678);
    let mut src_seq = 0u64;
    c.bench_function("journal/append_input_mark", |b| {
        b.iter(|| {
            src_seq += 1;
            data.input
                .append_event(UnixNanos(1), SourceStream::MarketData, src_seq, &event)
                .expect("append")
        })
    });
    let halt = halt();
    c.bench_function("journal/append_output_halt", |b| {
        b.iter(|| data.output.append_halt(Seq(1), &halt).expect("append"))
    });
}

fn ring_hop(c: &mut Criterion) {
    let (mut tx, mut rx) = ring(4096, EngineInput::empty);
    let event = mark(6_500_012_345_678);
    c.bench_function("ring/push_pop_input_slot", |b| {
        b.iter(|| {
            tx.try_push_with(|slot| {
                slot.command = Command::Apply;
                slot.origin = Origin::NONE;
                slot.event = black_box(event);
            });
            rx.try_pop_with(|slot| slot.origin.seq)
        })
    });
}

fn apply_stream(c: &mut Criterion) {
    for path in [liqd_bench::Path::Quiet, liqd_bench::Path::Walk] {
        let opts = liqd_bench::Options {
            accounts: 10_000,
            mix: liqd_bench::Mix::MARKS_ONLY,
            path,
            events: 10_000_000,
            ..liqd_bench::Options::default()
        };
        let (mut engine, mut stream) = liqd_bench::scenario(&opts);
        let mut sink = CountingSink::default();
        let mut seq = 10_000_000u64;
        c.bench_function(&format!("apply/{}_stream_10k", path.name()), |b| {
            b.iter(|| {
                seq += 1;
                let event = stream.next_event(UnixNanos(seq));
                engine.apply(Seq(seq), &event, &mut sink)
            })
        });
    }
}

criterion_group!(
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = codec, journal_append, ring_hop, apply_stream
);
criterion_main!(benches);
