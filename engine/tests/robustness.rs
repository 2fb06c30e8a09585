//! Bad and absurd input: every event either applies or is rejected with a
//! reason — never a panic — and a rejected event changes nothing.

mod common;

use engine::*;
use proptest::prelude::*;

fn engine() -> Engine {
    Engine::new(Limits::default())
}

fn apply(engine: &mut Engine, event: Event) -> Result<Vec<Output>, Reject> {
    let mut sink = VecSink::default();
    engine.apply(Seq(1), &event, &mut sink)?;
    Ok(sink.outputs)
}

fn d(text: &str) -> Fixed8 {
    Fixed8::parse(text).unwrap()
}

fn instrument(id: u32, tiers: &[(&str, &str, &str)], fee: &str) -> Event {
    let tiers: Vec<Tier> = tiers
        .iter()
        .map(|(f, m, i)| Tier {
            notional_floor: d(f),
            mmr: d(m),
            imr: d(i),
        })
        .collect();
    Event::InstrumentDef(InstrumentDef {
        ts: UnixNanos(0),
        instrument: InstrumentId(id),
        symbol: Symbol::new("X").unwrap(),
        multiplier: d("1"),
        liquidation_fee: d(fee),
        tiers: Tiers::from_slice(&tiers),
    })
}

fn mark(ts: u64, id: u32, price: &str) -> Event {
    Event::Mark(MarkPrice {
        ts: UnixNanos(ts),
        instrument: InstrumentId(id),
        price: d(price),
    })
}

fn fill(account: u64, id: u32, qty: &str, price: &str) -> Event {
    Event::Fill(Fill {
        ts: UnixNanos(1),
        account: AccountId(account),
        instrument: InstrumentId(id),
        qty: d(qty),
        price: d(price),
        fee: d("0"),
        fill_id: 1,
    })
}

#[test]
fn definitions_are_validated() {
    let mut e = engine();
    let ok = [("0", "0.01", "0.02"), ("100", "0.02", "0.04")];
    assert!(apply(&mut e, instrument(1, &ok, "0.001")).is_ok());
    type TierText<'a> = (&'a str, &'a str, &'a str);
    let cases: [(&[TierText], &str, &str); 7] = [
        (&[], "0", "no tiers"),
        (&[("1", "0.01", "0.02")], "0", "first floor not 0"),
        (
            &[("0", "0.01", "0.02"), ("0", "0.02", "0.03")],
            "0",
            "floors not increasing",
        ),
        (
            &[("0", "0.02", "0.03"), ("10", "0.01", "0.03")],
            "0",
            "mmr decreasing",
        ),
        (&[("0", "0.02", "0.02")], "0", "mmr = imr"),
        (&[("0", "0.5", "1.5")], "0", "imr > 1"),
        (&[("0", "0.01", "0.02")], "0.01", "fee = mmr_1"),
    ];
    for (tiers, fee, why) in cases {
        let err = apply(&mut e, instrument(2, tiers, fee)).unwrap_err();
        assert!(
            matches!(err, Reject::InvalidDefinition(_)),
            "{why}: {err:?}"
        );
    }
    let seventeen: Vec<(&str, &str, &str)> = (0..17).map(|_| ("0", "0.01", "0.02")).collect();
    assert!(apply(&mut e, instrument(2, &seventeen, "0")).is_err());
    let asset0 = Event::AssetDef(AssetDef {
        ts: UnixNanos(0),
        asset: AssetId(0),
        symbol: Symbol::new("USD").unwrap(),
        asset_weight: d("0.9"),
        liability_weight: d("1"),
    });
    assert!(matches!(
        apply(&mut e, asset0),
        Err(Reject::InvalidDefinition(_))
    ));
    assert_eq!(e.stats().events_rejected, 9);
    assert_eq!(e.stats().events_applied, 1);
}

#[test]
fn unknown_ids_and_bad_values_are_rejected() {
    let mut e = engine();
    apply(&mut e, instrument(1, &[("0", "0.01", "0.02")], "0")).unwrap();
    assert_eq!(
        apply(&mut e, mark(1, 9, "1")),
        Err(Reject::UnknownInstrument(InstrumentId(9)))
    );
    assert!(matches!(
        apply(&mut e, mark(1, 1, "0")),
        Err(Reject::OutOfRange(_))
    ));
    assert!(matches!(
        apply(&mut e, mark(1, 1, "-5")),
        Err(Reject::OutOfRange(_))
    ));
    assert!(matches!(
        apply(&mut e, fill(1, 1, "0", "10")),
        Err(Reject::OutOfRange(_))
    ));
    assert!(matches!(
        apply(&mut e, fill(1, 1, "1", "0")),
        Err(Reject::OutOfRange(_))
    ));
    let index0 = Event::Index(IndexPrice {
        ts: UnixNanos(1),
        asset: AssetId(0),
        price: d("1"),
    });
    assert_eq!(apply(&mut e, index0), Err(Reject::QuoteIndex));
    let index9 = Event::Index(IndexPrice {
        ts: UnixNanos(1),
        asset: AssetId(9),
        price: d("1"),
    });
    assert_eq!(apply(&mut e, index9), Err(Reject::UnknownAsset(AssetId(9))));
    let funding = Event::Funding(Funding {
        ts: UnixNanos(1),
        instrument: InstrumentId(1),
        rate: d("0.01"),
    });
    assert_eq!(apply(&mut e, funding), Err(Reject::NoMark(InstrumentId(1))));
    // Rejected events create no account and move no clock.
    assert!(e.account_ids().is_empty());
    assert_eq!(e.now(), UnixNanos(0));
}

#[test]
fn values_that_would_overflow_are_rejected() {
    let mut e = engine();
    apply(&mut e, instrument(1, &[("0", "0.01", "0.02")], "0")).unwrap();
    apply(&mut e, mark(1, 1, "92233720368.54775807")).unwrap();
    let max = "92233720368.54775807";
    apply(&mut e, fill(1, 1, max, max)).unwrap();
    // A second max-size fill would leave the Fixed8 range of a position.
    assert!(matches!(
        apply(&mut e, fill(1, 1, max, max)),
        Err(Reject::AccountLimit(..))
    ));
    // The account is still valued exactly (|V| ≈ 8.5e21, far inside i128).
    let figures = e.figures(AccountId(1)).unwrap();
    assert!(figures.maint_margin > Dec8::ZERO);
    let huge_multiplier = Event::InstrumentDef(InstrumentDef {
        ts: UnixNanos(0),
        instrument: InstrumentId(2),
        symbol: Symbol::new("Y").unwrap(),
        multiplier: d("10000.00000001"),
        liquidation_fee: d("0"),
        tiers: Tiers::from_slice(&[Tier {
            notional_floor: d("0"),
            mmr: d("0.01"),
            imr: d("0.02"),
        }]),
    });
    assert!(matches!(
        apply(&mut e, huge_multiplier),
        Err(Reject::OutOfRange(_))
    ));
}

#[test]
fn capacities_are_enforced() {
    let limits = Limits {
        accounts_max: 2,
        positions_per_account_max: 1,
        ..Limits::default()
    };
    let mut e = Engine::new(limits);
    apply(&mut e, instrument(1, &[("0", "0.01", "0.02")], "0")).unwrap();
    apply(&mut e, instrument(2, &[("0", "0.01", "0.02")], "0")).unwrap();
    apply(&mut e, fill(1, 1, "1", "10")).unwrap();
    assert_eq!(
        apply(&mut e, fill(1, 2, "1", "10")),
        Err(Reject::Capacity("positions_per_account_max"))
    );
    apply(&mut e, fill(2, 1, "1", "10")).unwrap();
    assert_eq!(
        apply(&mut e, fill(3, 1, "1", "10")),
        Err(Reject::Capacity("accounts_max"))
    );
    // Closing the position frees its slot.
    apply(&mut e, fill(1, 1, "-1", "10")).unwrap();
    assert!(apply(&mut e, fill(1, 2, "1", "10")).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary events from the whole value range: no panic, and a
    /// rejected event leaves the state hash unchanged.
    #[test]
    fn wild_events_never_panic(events in prop::collection::vec(common::wild_event(), 1..120)) {
        let mut e = engine();
        let mut sink = CountingSink::default();
        for (n, event) in events.iter().enumerate() {
            let before = e.state_hash();
            if e.apply(Seq(n as u64 + 1), event, &mut sink).is_err() {
                prop_assert_eq!(before, e.state_hash());
            }
        }
    }

    /// Realistic streams (liquidations, halts, cooldowns): no panic either.
    #[test]
    fn venue_streams_never_panic(events in common::stream()) {
        let mut e = engine();
        let mut sink = CountingSink::default();
        for (n, event) in events.iter().enumerate() {
            let _ = e.apply(Seq(n as u64 + 1), event, &mut sink);
        }
    }
}
