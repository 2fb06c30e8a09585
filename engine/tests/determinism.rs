//! Same events ⇒ same outputs and the same state hash, on any run.

mod common;

use engine::*;
use proptest::prelude::*;

fn run(events: &[Event]) -> (Vec<Output>, u64) {
    let mut engine = Engine::new(Limits::default());
    let mut sink = VecSink::default();
    for (n, event) in events.iter().enumerate() {
        let _ = engine.apply(Seq(n as u64 + 1), event, &mut sink);
    }
    (sink.outputs, engine.state_hash())
}

fn d(text: &str) -> Fixed8 {
    Fixed8::parse(text).unwrap()
}

/// MARGIN.md §8's worked example, as events.
fn worked_example() -> Vec<Event> {
    let ts = UnixNanos;
    let tier = |f: &str, m: &str, i: &str| Tier {
        notional_floor: d(f),
        mmr: d(m),
        imr: d(i),
    };
    vec![
        Event::InstrumentDef(InstrumentDef {
            ts: ts(0),
            instrument: InstrumentId(1),
            symbol: Symbol::new("BTC-PERP").unwrap(),
            multiplier: d("1"),
            liquidation_fee: d("0.001"),
            tiers: Tiers::from_slice(&[tier("0", "0.004", "0.01"), tier("50000", "0.005", "0.02")]),
        }),
        Event::AssetDef(AssetDef {
            ts: ts(0),
            asset: AssetId(1),
            symbol: Symbol::new("ETH").unwrap(),
            asset_weight: d("0.8"),
            liability_weight: d("1.2"),
        }),
        Event::Balance(BalanceChange {
            ts: ts(1),
            account: AccountId(7),
            asset: AssetId(0),
            amount: d("1000"),
            kind: BalanceKind::Deposit,
            ref_id: 1,
        }),
        Event::Balance(BalanceChange {
            ts: ts(2),
            account: AccountId(7),
            asset: AssetId(1),
            amount: d("1"),
            kind: BalanceKind::Deposit,
            ref_id: 2,
        }),
        Event::Index(IndexPrice {
            ts: ts(3),
            asset: AssetId(1),
            price: d("3000"),
        }),
        Event::Mark(MarkPrice {
            ts: ts(4),
            instrument: InstrumentId(1),
            price: d("65000"),
        }),
        Event::Fill(Fill {
            ts: ts(5),
            account: AccountId(7),
            instrument: InstrumentId(1),
            qty: d("1"),
            price: d("65000"),
            fee: d("3.25"),
            fill_id: 1,
        }),
        Event::Mark(MarkPrice {
            ts: ts(6),
            instrument: InstrumentId(1),
            price: d("61900"),
        }),
        Event::Mark(MarkPrice {
            ts: ts(7),
            instrument: InstrumentId(1),
            price: d("61850"),
        }),
    ]
}

#[test]
fn worked_example_hash_is_pinned() {
    let (outputs, hash) = run(&worked_example());
    assert_eq!(outputs.len(), 1);
    // A change here means the state or its hashing changed: every journal's
    // recorded hashes would stop verifying. Update only deliberately.
    assert_eq!(
        hash, PINNED_WORKED_EXAMPLE_HASH,
        "state hash changed: {hash:#018x}"
    );
}

const PINNED_WORKED_EXAMPLE_HASH: u64 = 0x8fb0_9c05_b08a_01f4;

#[test]
fn hash_does_not_depend_on_insertion_order() {
    let deposit = |account: u64, asset: u32, amount: &str| {
        Event::Balance(BalanceChange {
            ts: UnixNanos(1),
            account: AccountId(account),
            asset: AssetId(asset),
            amount: d(amount),
            kind: BalanceKind::Deposit,
            ref_id: 0,
        })
    };
    let asset = |id: u32| {
        Event::AssetDef(AssetDef {
            ts: UnixNanos(0),
            asset: AssetId(id),
            symbol: Symbol::new("A").unwrap(),
            asset_weight: d("0.9"),
            liability_weight: d("1.1"),
        })
    };
    let forward = [
        asset(1),
        asset(2),
        deposit(5, 1, "1"),
        deposit(5, 2, "2"),
        deposit(3, 0, "7"),
    ];
    let backward = [
        asset(2),
        asset(1),
        deposit(3, 0, "7"),
        deposit(5, 2, "2"),
        deposit(5, 1, "1"),
    ];
    assert_eq!(run(&forward).1, run(&backward).1);
    let different = [
        asset(1),
        asset(2),
        deposit(5, 1, "1"),
        deposit(5, 2, "2"),
        deposit(3, 0, "8"),
    ];
    assert_ne!(run(&forward).1, run(&different).1);
}

proptest! {
    #[test]
    fn same_stream_same_outputs_and_hash(events in common::stream()) {
        let first = run(&events);
        let second = run(&events);
        prop_assert_eq!(first, second);
    }
}
