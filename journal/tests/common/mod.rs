//! Deterministic records and small helpers shared by the tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use engine::{
    AccountId, AssetDef, AssetId, BalanceChange, BalanceKind, EngineParams, Event, Fill, Fixed8,
    Funding, Halt, HaltReason, IndexPrice, InstrumentDef, InstrumentId, Leg, Liquidation,
    MarkPrice, RiskParams, Seq, Symbol, Tier, Tiers, UnixNanos,
};
use journal::{FlushPolicy, InputRecord, JournalOptions, SourceStream};

/// A small, fast, seeded generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The event journaled at `seq`: every variant, values derived from seq.
pub fn event_for(seq: u64) -> Event {
    let ts = UnixNanos(1_700_000_000_000_000_000 + seq * 1000);
    let x = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    match seq % 9 {
        0 => Event::AssetDef(AssetDef {
            ts,
            asset: AssetId((x % 7) as u32),
            symbol: Symbol::new("ETH").unwrap(),
            asset_weight: Fixed8(80_000_000),
            liability_weight: Fixed8(120_000_000),
        }),
        1 => {
            let tiers: Vec<Tier> = (0..(x % 16 + 1))
                .map(|i| Tier {
                    notional_floor: Fixed8(i as i64 * 1_000),
                    mmr: Fixed8(400_000 + i as i64),
                    imr: Fixed8(1_000_000 + i as i64),
                })
                .collect();
            Event::InstrumentDef(InstrumentDef {
                ts,
                instrument: InstrumentId((x % 5) as u32),
                symbol: Symbol::new("BTC-PERP").unwrap(),
                multiplier: Fixed8(100_000_000),
                liquidation_fee: Fixed8(100_000),
                tiers: Tiers::from_slice(&tiers),
            })
        }
        2 => Event::Params(EngineParams {
            ts,
            partial_liquidation: x.is_multiple_of(2),
            liquidation_cooldown_ns: x,
            warn_ratio: Fixed8(125_000_000),
        }),
        3 => Event::Risk(RiskParams {
            ts,
            instrument: InstrumentId(1),
            vol_lambda: Fixed8(94_000_000),
            vol_ref: Fixed8(1_000_000),
            vol_max_factor: Fixed8(300_000_000),
            max_staleness_ns: x % 1_000_000,
            max_jump: Fixed8(0),
        }),
        4 => Event::Index(IndexPrice {
            ts,
            asset: AssetId(1),
            price: Fixed8((x % 1_000_000_000) as i64 + 1),
        }),
        5 => Event::Mark(MarkPrice {
            ts,
            instrument: InstrumentId((x % 3) as u32),
            price: Fixed8((x % 7_000_000_000_000) as i64 + 1),
        }),
        6 => Event::Fill(Fill {
            ts,
            account: AccountId(x),
            instrument: InstrumentId(1),
            qty: Fixed8((x % 1000) as i64 - 500),
            price: Fixed8(6_500_000_000_000),
            fee: Fixed8(-3),
            fill_id: seq,
        }),
        7 => Event::Balance(BalanceChange {
            ts,
            account: AccountId(x >> 3),
            asset: AssetId(0),
            amount: Fixed8(x as i64 >> 8),
            kind: BalanceKind::from_code((x % 4) as u8 + 1).unwrap(),
            ref_id: seq,
        }),
        _ => Event::Funding(Funding {
            ts,
            instrument: InstrumentId(2),
            rate: Fixed8(10_000),
        }),
    }
}

pub fn record_for(seq: u64) -> InputRecord {
    InputRecord {
        seq: Seq(seq),
        recv_ts_ns: UnixNanos(seq * 7 + 3),
        src_stream: SourceStream::from_code((seq % 4) as u8).unwrap(),
        src_seq: seq * 3,
        event: event_for(seq),
    }
}

pub fn halt_for(seq: u64) -> Halt {
    Halt {
        ts: UnixNanos(seq),
        seq: Seq(seq),
        instrument: InstrumentId(seq as u32 % 4),
        reason: if seq.is_multiple_of(2) {
            HaltReason::Stale
        } else {
            HaltReason::Jump
        },
        on: seq.is_multiple_of(3),
    }
}

pub fn liquidation_for(seq: u64) -> (Liquidation, Vec<Leg>) {
    let liquidation = Liquidation {
        ts: UnixNanos(seq),
        seq: Seq(seq),
        account: AccountId(seq * 11),
        equity: engine::Dec8(seq as i128 * -1_000_000_000_000),
        maint_margin: engine::Dec8(1 << 70),
        partial: seq.is_multiple_of(2),
        bankrupt: seq.is_multiple_of(5),
        escalation: false,
    };
    let legs = (0..seq % 70)
        .map(|i| Leg {
            instrument: InstrumentId(i as u32),
            qty: engine::Dec8(-(i as i128) - 1),
            limit_price: engine::Dec8(i as i128 * 100 + 1),
        })
        .collect();
    (liquidation, legs)
}

/// 64 KiB segments (several per thousand records), flush every 100.
pub fn small_options() -> JournalOptions {
    JournalOptions {
        segment_bytes: 64 * 1024,
        flush: FlushPolicy {
            every_records: 100,
            ..FlushPolicy::default()
        },
        ..JournalOptions::default()
    }
}

pub fn segments(dir: &Path) -> Vec<PathBuf> {
    journal::segment_paths(dir).unwrap()
}

pub fn write_inputs(dir: &Path, count: u64, options: JournalOptions) {
    let mut journal = journal::InputJournal::open(dir, options).unwrap();
    let start = journal.next_seq().0;
    for seq in start..start + count {
        journal.append(&record_for(seq)).unwrap();
    }
    journal.close().unwrap();
}

/// Reads every record, checking each against `record_for`; returns the
/// last sequence (0 if none).
pub fn verify_inputs(dir: &Path) -> u64 {
    let reader = journal::InputReader::open(dir).unwrap();
    let mut expected = 1;
    for record in reader.iter() {
        let record = record.unwrap();
        assert_eq!(record.seq.0, expected);
        assert_eq!(record.to_owned(), record_for(expected));
        expected += 1;
    }
    expected - 1
}
