//! Property tests of the JSONL reader and writer: every event round trips,
//! and no input — random text, random bytes, mangled valid lines, objects
//! with fields of random JSON types — makes a reader panic.

use engine::{
    AccountId, AssetDef, AssetId, BalanceChange, BalanceKind, EngineParams, Event, Fill, Fixed8,
    Funding, IndexPrice, InstrumentDef, InstrumentId, MarkPrice, RiskParams, Symbol, Tier, Tiers,
    UnixNanos,
};
use proptest::prelude::*;
use replay::jsonl::{event_line, parse_event, parse_output, EventReader, OutputReader};

fn fixed8() -> impl Strategy<Value = Fixed8> {
    prop_oneof![
        (i64::MIN + 1..=i64::MAX).prop_map(Fixed8),
        (-1_000_000_000i64..1_000_000_000).prop_map(Fixed8),
        (-1000i64..1000).prop_map(|units| Fixed8(units * 100_000_000)),
    ]
}

fn symbol() -> impl Strategy<Value = Symbol> {
    "[!-~][ -~]{0,15}".prop_filter_map("valid symbol", |s| Symbol::new(&s).ok())
}

fn ts() -> impl Strategy<Value = UnixNanos> {
    any::<u64>().prop_map(UnixNanos)
}

fn tiers() -> impl Strategy<Value = Tiers> {
    prop::collection::vec(
        (fixed8(), fixed8(), fixed8()).prop_map(|(notional_floor, mmr, imr)| Tier {
            notional_floor,
            mmr,
            imr,
        }),
        0..=16,
    )
    .prop_map(|list| Tiers::from_slice(&list))
}

fn balance_kind() -> impl Strategy<Value = BalanceKind> {
    prop_oneof![
        Just(BalanceKind::Deposit),
        Just(BalanceKind::Withdrawal),
        Just(BalanceKind::Transfer),
        Just(BalanceKind::Adjustment),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (ts(), any::<u32>(), symbol(), fixed8(), fixed8()).prop_map(|(ts, a, symbol, w, l)| {
            Event::AssetDef(AssetDef {
                ts,
                asset: AssetId(a),
                symbol,
                asset_weight: w,
                liability_weight: l,
            })
        }),
        (ts(), any::<u32>(), symbol(), fixed8(), fixed8(), tiers()).prop_map(
            |(ts, i, symbol, m, fee, tiers)| Event::InstrumentDef(InstrumentDef {
                ts,
                instrument: InstrumentId(i),
                symbol,
                multiplier: m,
                liquidation_fee: fee,
                tiers,
            })
        ),
        (ts(), any::<bool>(), any::<u64>(), fixed8()).prop_map(|(ts, p, c, w)| {
            Event::Params(EngineParams {
                ts,
                partial_liquidation: p,
                liquidation_cooldown_ns: c,
                warn_ratio: w,
            })
        }),
        (
            ts(),
            any::<u32>(),
            fixed8(),
            fixed8(),
            fixed8(),
            any::<u64>(),
            fixed8()
        )
            .prop_map(|(ts, i, l, r, f, s, j)| Event::Risk(RiskParams {
                ts,
                instrument: InstrumentId(i),
                vol_lambda: l,
                vol_ref: r,
                vol_max_factor: f,
                max_staleness_ns: s,
                max_jump: j,
            })),
        (ts(), any::<u32>(), fixed8()).prop_map(|(ts, a, price)| Event::Index(IndexPrice {
            ts,
            asset: AssetId(a),
            price,
        })),
        (ts(), any::<u32>(), fixed8()).prop_map(|(ts, i, price)| Event::Mark(MarkPrice {
            ts,
            instrument: InstrumentId(i),
            price,
        })),
        (
            ts(),
            any::<u64>(),
            any::<u32>(),
            fixed8(),
            fixed8(),
            fixed8(),
            any::<u64>()
        )
            .prop_map(|(ts, a, i, qty, price, fee, id)| Event::Fill(Fill {
                ts,
                account: AccountId(a),
                instrument: InstrumentId(i),
                qty,
                price,
                fee,
                fill_id: id,
            })),
        (
            ts(),
            any::<u64>(),
            any::<u32>(),
            fixed8(),
            balance_kind(),
            any::<u64>()
        )
            .prop_map(
                |(ts, a, asset, amount, kind, id)| Event::Balance(BalanceChange {
                    ts,
                    account: AccountId(a),
                    asset: AssetId(asset),
                    amount,
                    kind,
                    ref_id: id,
                })
            ),
        (ts(), any::<u32>(), fixed8()).prop_map(|(ts, i, rate)| Event::Funding(Funding {
            ts,
            instrument: InstrumentId(i),
            rate,
        })),
    ]
}

/// A JSON value of any type, including the awkward numbers.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{json, Value};
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(|u| json!(u)),
        any::<i64>().prop_map(|i| json!(i)),
        (-1e30f64..1e30).prop_map(|f| json!(f)),
        Just(json!(u64::MAX as f64 * 4.0)),
        "-?[0-9]{1,22}(\\.[0-9]{0,10})?".prop_map(Value::String),
        "\\PC{0,20}".prop_map(Value::String),
        prop::sample::select(vec!["deposit", "gift", "stale", "md", ""])
            .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "type",
        "ts",
        "seq",
        "asset",
        "instrument",
        "account",
        "symbol",
        "asset_weight",
        "liability_weight",
        "multiplier",
        "liquidation_fee",
        "tiers",
        "notional_floor",
        "mmr",
        "imr",
        "partial_liquidation",
        "liquidation_cooldown_ns",
        "warn_ratio",
        "vol_lambda",
        "vol_ref",
        "vol_max_factor",
        "max_staleness_ns",
        "max_jump",
        "price",
        "qty",
        "fee",
        "fill_id",
        "amount",
        "kind",
        "ref_id",
        "rate",
        "equity",
        "maint_margin",
        "partial",
        "bankrupt",
        "escalation",
        "legs",
        "limit_price",
        "reason",
        "on",
        "src_stream",
        "src_seq",
        "extra",
    ])
    .prop_map(str::to_owned)
}

fn type_name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "asset",
        "instrument",
        "params",
        "risk",
        "index",
        "mark",
        "fill",
        "balance",
        "funding",
        "liquidation",
        "halt",
        "status",
        "nope",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_event_round_trips(event in event()) {
        let line = event_line(&event).expect("valid values are writable");
        prop_assert!(line.ends_with('\n'));
        prop_assert_eq!(line.matches('\n').count(), 1);
        prop_assert_eq!(parse_event(line.trim_end()), Ok(event));
    }

    #[test]
    fn files_of_events_round_trip(events in prop::collection::vec(event(), 0..20)) {
        let text: String = events.iter().map(|e| event_line(e).expect("writable")).collect();
        let read: Result<Vec<Event>, _> = EventReader::new(text.as_bytes(), "f").collect();
        prop_assert_eq!(read.expect("valid"), events);
    }

    #[test]
    fn random_text_never_panics(text in "\\PC*") {
        let _ = parse_event(&text);
        let _ = parse_output(&text);
        let _ = EventReader::new(text.as_bytes(), "f").count();
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = EventReader::new(&bytes[..], "f").count();
        let _ = OutputReader::new(&bytes[..], "f").count();
        let _ = EventReader::new(&bytes[..], "f").with_line_bytes_max(7).count();
    }

    #[test]
    fn objects_with_random_field_types_never_panic(
        kind in type_name(),
        fields in prop::collection::btree_map(field_name(), json_value(), 0..12),
    ) {
        let mut object: serde_json::Map<String, serde_json::Value> = fields.into_iter().collect();
        object.insert("type".to_owned(), serde_json::Value::String(kind.to_owned()));
        let line = serde_json::Value::Object(object).to_string();
        let _ = parse_event(&line);
        let _ = parse_output(&line);
    }

    /// Mangling a valid line never panics, and whatever still parses is
    /// written back to a line that parses to the same event.
    #[test]
    fn mangled_lines_never_panic(
        event in event(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<char>()), 1..4),
    ) {
        let mut line: Vec<char> = event_line(&event).expect("writable").trim_end().chars().collect();
        for (at, op, c) in edits {
            if line.is_empty() {
                break;
            }
            let i = at.index(line.len());
            match op {
                0 => { line.remove(i); }
                1 => line.insert(i, c),
                _ => line[i] = c,
            }
        }
        let text: String = line.into_iter().collect();
        if let Ok(parsed) = parse_event(&text) {
            let again = event_line(&parsed).expect("parsed values are writable");
            prop_assert_eq!(parse_event(again.trim_end()), Ok(parsed));
        }
    }
}
