use engine::{
    AccountId, AssetDef, AssetId, BalanceChange, BalanceKind, Dec8, EngineParams, Event, Fill,
    Fixed8, Funding, Halt, HaltReason, IndexPrice, InstrumentDef, InstrumentId, Leg, Liquidation,
    MarkPrice, Output, RiskParams, Seq, Symbol, Tier, Tiers, UnixNanos,
};

use super::*;

/// The input examples of PROTOCOL.md §5, verbatim.
const PROTOCOL_EVENTS: &str = r#"{"type":"asset","ts":0,"asset":1,"symbol":"ETH","asset_weight":"0.8","liability_weight":"1.2"}
{"type":"instrument","ts":0,"instrument":1,"symbol":"BTC-PERP","multiplier":"1","liquidation_fee":"0.001","tiers":[{"notional_floor":"0","mmr":"0.004","imr":"0.01"},{"notional_floor":"50000","mmr":"0.005","imr":"0.02"}]}
{"type":"params","ts":0,"partial_liquidation":true,"liquidation_cooldown_ns":1000000000,"warn_ratio":"1.25"}
{"type":"risk","ts":0,"instrument":1,"vol_lambda":"0.94","vol_ref":"0.01","vol_max_factor":"3","max_staleness_ns":0,"max_jump":"0"}
{"type":"balance","ts":1,"account":7,"asset":0,"amount":"1000","kind":"deposit","ref_id":1}
{"type":"index","ts":2,"asset":1,"price":"3000"}
{"type":"mark","ts":3,"instrument":1,"price":"65000"}
{"type":"fill","ts":4,"account":7,"instrument":1,"qty":"0.5","price":"65000","fee":"3.25","fill_id":1}
{"type":"funding","ts":5,"instrument":1,"rate":"0.0001"}
"#;

/// The output examples of PROTOCOL.md §5, verbatim.
const PROTOCOL_OUTPUTS: &str = r#"{"type":"liquidation","ts":9,"seq":12,"account":7,"equity":"120.5","maint_margin":"130","partial":true,"bankrupt":false,"escalation":false,"legs":[{"instrument":1,"qty":"-0.2","limit_price":"63000.1"}]}
{"type":"halt","ts":9,"seq":13,"instrument":1,"reason":"stale","on":true}
"#;

fn fx(text: &str) -> Fixed8 {
    Fixed8::parse(text).expect("test decimal")
}

fn dec(text: &str) -> Dec8 {
    Dec8::parse(text).expect("test decimal")
}

fn sym(text: &str) -> Symbol {
    Symbol::new(text).expect("test symbol")
}

fn read_all(text: &str) -> Result<Vec<Event>, JsonlError> {
    EventReader::new(text.as_bytes(), "cases.jsonl").collect()
}

/// One event of each type, with values that exercise the edges.
fn every_event() -> Vec<Event> {
    let tier = |floor: &str, mmr: &str, imr: &str| Tier {
        notional_floor: fx(floor),
        mmr: fx(mmr),
        imr: fx(imr),
    };
    vec![
        Event::AssetDef(AssetDef {
            ts: UnixNanos(u64::MAX),
            asset: AssetId(u32::MAX),
            symbol: sym("A\"B\\C {}~"),
            asset_weight: fx("0.00000001"),
            liability_weight: fx("92233720368.54775807"),
        }),
        Event::InstrumentDef(InstrumentDef {
            ts: UnixNanos(0),
            instrument: InstrumentId(0),
            symbol: sym("ABCDEFGHIJKLMNOP"),
            multiplier: fx("-92233720368.54775807"),
            liquidation_fee: fx("0"),
            tiers: Tiers::from_slice(&[tier("0", "0.004", "0.01"), tier("50000", "0.005", "0.02")]),
        }),
        Event::InstrumentDef(InstrumentDef {
            ts: UnixNanos(1),
            instrument: InstrumentId(2),
            symbol: sym("EMPTY"),
            multiplier: fx("1"),
            liquidation_fee: fx("0.001"),
            tiers: Tiers::from_slice(&[]),
        }),
        Event::InstrumentDef(InstrumentDef {
            ts: UnixNanos(1),
            instrument: InstrumentId(3),
            symbol: sym("FULL"),
            multiplier: fx("1"),
            liquidation_fee: fx("0.001"),
            tiers: Tiers::from_slice(&[tier("1", "2", "3"); 16]),
        }),
        Event::Params(EngineParams {
            ts: UnixNanos(5),
            partial_liquidation: false,
            liquidation_cooldown_ns: u64::MAX,
            warn_ratio: fx("1.25"),
        }),
        Event::Risk(RiskParams {
            ts: UnixNanos(6),
            instrument: InstrumentId(1),
            vol_lambda: fx("0.94"),
            vol_ref: fx("0.01"),
            vol_max_factor: fx("3"),
            max_staleness_ns: 1_000_000,
            max_jump: fx("0"),
        }),
        Event::Index(IndexPrice {
            ts: UnixNanos(7),
            asset: AssetId(1),
            price: fx("3000.5"),
        }),
        Event::Mark(MarkPrice {
            ts: UnixNanos(8),
            instrument: InstrumentId(1),
            price: fx("65000.125"),
        }),
        Event::Fill(Fill {
            ts: UnixNanos(9),
            account: AccountId(u64::MAX),
            instrument: InstrumentId(1),
            qty: fx("-0.5"),
            price: fx("65000"),
            fee: fx("-3.25"),
            fill_id: u64::MAX,
        }),
        Event::Balance(BalanceChange {
            ts: UnixNanos(10),
            account: AccountId(0),
            asset: AssetId(0),
            amount: fx("-1000"),
            kind: BalanceKind::Withdrawal,
            ref_id: 0,
        }),
        Event::Balance(BalanceChange {
            ts: UnixNanos(10),
            account: AccountId(1),
            asset: AssetId(0),
            amount: fx("1"),
            kind: BalanceKind::Transfer,
            ref_id: 1,
        }),
        Event::Balance(BalanceChange {
            ts: UnixNanos(10),
            account: AccountId(1),
            asset: AssetId(0),
            amount: fx("0"),
            kind: BalanceKind::Adjustment,
            ref_id: 2,
        }),
        Event::Funding(Funding {
            ts: UnixNanos(11),
            instrument: InstrumentId(1),
            rate: fx("-0.0001"),
        }),
    ]
}

#[test]
fn protocol_examples_parse_and_write_back_verbatim() {
    let events = read_all(PROTOCOL_EVENTS).expect("protocol examples are valid");
    assert_eq!(events.len(), 9);
    let written: String = events
        .iter()
        .map(|e| event_line(e).expect("writable"))
        .collect();
    assert_eq!(written, PROTOCOL_EVENTS);

    let outputs = crate::compare::parse_outputs(PROTOCOL_OUTPUTS, "out.jsonl").expect("valid");
    let written: String = outputs.iter().map(|o| output_line(o, None)).collect();
    assert_eq!(written, PROTOCOL_OUTPUTS);
}

#[test]
fn protocol_example_values() {
    let events = read_all(PROTOCOL_EVENTS).expect("valid");
    assert_eq!(
        events[7],
        Event::Fill(Fill {
            ts: UnixNanos(4),
            account: AccountId(7),
            instrument: InstrumentId(1),
            qty: Fixed8(50_000_000),
            price: Fixed8(6_500_000_000_000),
            fee: Fixed8(325_000_000),
            fill_id: 1,
        })
    );
    let Event::InstrumentDef(def) = &events[1] else {
        panic!("not an instrument: {:?}", events[1]);
    };
    assert_eq!(def.tiers.count, 2);
    assert_eq!(def.tiers.as_slice()[1].notional_floor, fx("50000"));
}

#[test]
fn every_event_type_round_trips() {
    let events = every_event();
    let kinds: std::collections::BTreeSet<_> = events.iter().map(Event::type_name).collect();
    assert_eq!(kinds.len(), 9, "one of each type");
    let mut file = Vec::new();
    for event in &events {
        let line = event_line(event).expect("writable");
        assert_eq!(
            parse_event(line.trim_end()).as_ref(),
            Ok(event),
            "line {line}"
        );
        write_event(&mut file, event).expect("vec");
    }
    let text = String::from_utf8(file).expect("utf-8");
    assert_eq!(read_all(&text).expect("valid"), events);
}

#[test]
fn unwritable_values_are_refused_not_written() {
    let mut event = Event::Mark(MarkPrice {
        ts: UnixNanos(1),
        instrument: InstrumentId(1),
        price: Fixed8(i64::MIN),
    });
    let mut out = Vec::new();
    let err = write_event(&mut out, &event).expect_err("i64::MIN");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(out.is_empty());
    event = Event::AssetDef(AssetDef {
        ts: UnixNanos(1),
        asset: AssetId(1),
        symbol: Symbol([0xff; 16]),
        asset_weight: fx("1"),
        liability_weight: fx("1"),
    });
    assert!(write_event(&mut out, &event).is_err());
}

#[test]
fn outputs_round_trip_with_and_without_source() {
    let liquidation = Output::Liquidation(
        Liquidation {
            ts: UnixNanos(9),
            seq: Seq(12),
            account: AccountId(u64::MAX),
            equity: Dec8(-(10i128.pow(30))),
            maint_margin: dec("130.00000001"),
            partial: false,
            bankrupt: true,
            escalation: true,
        },
        vec![
            Leg {
                instrument: InstrumentId(1),
                qty: dec("-0.2"),
                limit_price: dec("63000.1"),
            },
            Leg {
                instrument: InstrumentId(u32::MAX),
                qty: dec("5"),
                limit_price: dec("0.00000001"),
            },
        ],
    );
    let halt = Output::Halt(Halt {
        ts: UnixNanos(9),
        seq: Seq(13),
        instrument: InstrumentId(1),
        reason: HaltReason::Jump,
        on: false,
    });
    let empty = Output::Liquidation(
        Liquidation {
            ts: UnixNanos(1),
            seq: Seq(1),
            account: AccountId(1),
            equity: dec("-1"),
            maint_margin: dec("0"),
            partial: false,
            bankrupt: true,
            escalation: false,
        },
        vec![],
    );
    let source = Source {
        stream: SourceStream::Orders,
        seq: 77,
    };
    for output in [liquidation, halt, empty] {
        for src in [None, Some(source)] {
            let line = output_line(&output, src);
            let parsed = parse_output(line.trim_end())
                .expect("valid")
                .expect("not status");
            assert_eq!(parsed.output, output, "{line}");
            assert_eq!(parsed.source, src, "{line}");
        }
    }
    let with_source = output_line(
        &Output::Halt(Halt {
            ts: UnixNanos(9),
            seq: Seq(13),
            instrument: InstrumentId(1),
            reason: HaltReason::Stale,
            on: true,
        }),
        Some(Source {
            stream: SourceStream::MarketData,
            seq: 5,
        }),
    );
    assert_eq!(
        with_source,
        "{\"type\":\"halt\",\"ts\":9,\"seq\":13,\"src_stream\":\"md\",\"src_seq\":5,\"instrument\":1,\"reason\":\"stale\",\"on\":true}\n"
    );
}

#[test]
fn sink_writes_lines_as_produced() {
    use engine::Sink;
    let mut sink = JsonlSink::new(Vec::new());
    let halt = Halt {
        ts: UnixNanos(9),
        seq: Seq(13),
        instrument: InstrumentId(1),
        reason: HaltReason::Stale,
        on: true,
    };
    sink.halt(&halt);
    sink.liquidation(
        &Liquidation {
            ts: UnixNanos(9),
            seq: Seq(12),
            account: AccountId(7),
            equity: dec("120.5"),
            maint_margin: dec("130"),
            partial: true,
            bankrupt: false,
            escalation: false,
        },
        &[Leg {
            instrument: InstrumentId(1),
            qty: dec("-0.2"),
            limit_price: dec("63000.1"),
        }],
    );
    let text = String::from_utf8(sink.finish().expect("vec")).expect("utf-8");
    let mut lines = text.lines();
    assert_eq!(lines.next(), PROTOCOL_OUTPUTS.lines().nth(1));
    assert_eq!(lines.next(), PROTOCOL_OUTPUTS.lines().next());
    assert_eq!(lines.next(), None);
}

#[test]
fn sink_keeps_the_first_write_error() {
    use engine::Sink;
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut sink = JsonlSink::new(Broken);
    let halt = Halt {
        ts: UnixNanos(1),
        seq: Seq(1),
        instrument: InstrumentId(1),
        reason: HaltReason::Stale,
        on: true,
    };
    sink.halt(&halt);
    sink.halt(&halt);
    assert_eq!(
        sink.error().map(std::io::Error::kind),
        Some(std::io::ErrorKind::BrokenPipe)
    );
    assert!(sink.finish().is_err());
}

#[test]
fn unknown_keys_are_ignored_and_order_is_free() {
    let line = r#"{"price":"100","extra":{"deep":[1,2,{"x":null}]},"instrument":1,"ts":3,"type":"mark","note":"hi"}"#;
    assert_eq!(
        parse_event(line),
        Ok(Event::Mark(MarkPrice {
            ts: UnixNanos(3),
            instrument: InstrumentId(1),
            price: fx("100"),
        }))
    );
}

#[test]
fn tier_lists_of_any_length_are_format_valid() {
    let tier = r#"{"notional_floor":"0","mmr":"0.01","imr":"0.02"}"#;
    for count in [0usize, 1, 16, 17, 300] {
        let tiers = vec![tier; count].join(",");
        let line = format!(
            r#"{{"type":"instrument","ts":0,"instrument":1,"symbol":"X","multiplier":"1","liquidation_fee":"0","tiers":[{tiers}]}}"#
        );
        let Ok(Event::InstrumentDef(def)) = parse_event(&line) else {
            panic!("{count} tiers refused");
        };
        assert_eq!(usize::from(def.tiers.count), count.min(255));
        assert_eq!(def.tiers.as_slice().len(), count.min(16));
    }
}

#[test]
fn reader_handles_line_endings() {
    let mark = r#"{"type":"mark","ts":1,"instrument":1,"price":"1"}"#;
    // No final newline; CRLF endings.
    assert_eq!(read_all(mark).map(|e| e.len()).ok(), Some(1));
    assert_eq!(
        read_all(&format!("{mark}\r\n{mark}\r\n"))
            .map(|e| e.len())
            .ok(),
        Some(2)
    );
    assert_eq!(read_all("").map(|e| e.len()).ok(), Some(0));
}

#[test]
fn reader_numbers_lines_and_stops_at_the_first_error() {
    let good = r#"{"type":"mark","ts":1,"instrument":1,"price":"1"}"#;
    let text = format!("{good}\n{good}\nnot json\n{good}\n");
    let mut reader = EventReader::new(text.as_bytes(), "cases.jsonl");
    assert!(matches!(reader.read_event(), Ok(Some(_))));
    assert_eq!(reader.line(), 1);
    assert!(matches!(reader.read_event(), Ok(Some(_))));
    assert_eq!(reader.line(), 2);
    let err = reader.read_event().expect_err("line 3");
    assert_eq!(
        (err.file(), err.line(), err.is_format()),
        ("cases.jsonl", 3, true)
    );
    assert!(
        matches!(reader.read_event(), Ok(None)),
        "stops at the error"
    );
    assert!(reader.next().is_none());
}

#[test]
fn error_messages_name_file_line_and_reason() {
    let good = r#"{"type":"mark","ts":1,"instrument":1,"price":"1"}"#;
    let bad = r#"{"type":"mark","ts":1,"instrument":1}"#;
    let text = format!("{}{bad}\n", format!("{good}\n").repeat(6));
    let err = read_all(&text).expect_err("line 7");
    assert_eq!(err.to_string(), r#"cases.jsonl:7: missing field "price""#);
}

/// Every class of invalid line, with the error it must give. Each is put
/// after three valid lines, so it must be reported on line 4.
#[test]
fn every_malformed_class_is_an_error_on_its_line() {
    let max_u32_plus_1 = u64::from(u32::MAX) + 1;
    let cases: Vec<(String, &str)> = vec![
        // Not JSON / not an object / blank.
        ("".into(), "blank line"),
        ("   \t".into(), "blank line"),
        ("garbage".into(), "not JSON: expected value (column 1)"),
        ("not json".into(), "not JSON: expected ident (column 2)"),
        (r#"{"type":"mark""#.into(), "not JSON"),
        (r#"{"type":"mark","ts":1,"instrument":1,"price":"1"} x"#.into(), "trailing characters"),
        ("[1,2]".into(), "not a JSON object but a list"),
        ("42".into(), "not a JSON object but a number"),
        ("\"mark\"".into(), "not a JSON object but a string"),
        ("null".into(), "not a JSON object but null"),
        (r#"{"type":"mark","ts":1,"ts":2,"instrument":1,"price":"1"}"#.into(), r#"duplicate key "ts""#),
        // Type and kind.
        (r#"{"ts":1}"#.into(), r#"missing field "type""#),
        (r#"{"type":7}"#.into(), r#"field "type": expected a string, found a number"#),
        (r#"{"type":"trade","ts":1}"#.into(), r#"unknown type "trade""#),
        (r#"{"type":"halt","ts":1}"#.into(), r#"type "halt" is not allowed here"#),
        (
            r#"{"type":"balance","ts":1,"account":7,"asset":0,"amount":"1","kind":"gift","ref_id":1}"#.into(),
            r#"field "kind": unknown value "gift""#,
        ),
        // Missing / mistyped fields.
        (r#"{"type":"mark","ts":1,"instrument":1}"#.into(), r#"missing field "price""#),
        (r#"{"type":"mark","ts":"1","instrument":1,"price":"1"}"#.into(), r#"field "ts": expected an integer, found a string"#),
        (r#"{"type":"mark","ts":null,"instrument":1,"price":"1"}"#.into(), r#"field "ts": expected an integer, found null"#),
        (r#"{"type":"params","ts":1,"partial_liquidation":1,"liquidation_cooldown_ns":1,"warn_ratio":"1"}"#.into(), r#"field "partial_liquidation": expected a boolean, found a number"#),
        // Integers out of range.
        (r#"{"type":"mark","ts":-1,"instrument":1,"price":"1"}"#.into(), r#"field "ts": integer -1 is outside 0..=18446744073709551615"#),
        (r#"{"type":"mark","ts":18446744073709551616,"instrument":1,"price":"1"}"#.into(), r#"field "ts": integer"#),
        (r#"{"type":"mark","ts":1.5,"instrument":1,"price":"1"}"#.into(), r#"field "ts": expected an integer, found 1.5"#),
        (r#"{"type":"mark","ts":1e3,"instrument":1,"price":"1"}"#.into(), r#"field "ts": expected an integer"#),
        (format!(r#"{{"type":"mark","ts":1,"instrument":{max_u32_plus_1},"price":"1"}}"#), r#"field "instrument": integer 4294967296 is outside 0..=4294967295"#),
        (format!(r#"{{"type":"index","ts":1,"asset":{max_u32_plus_1},"price":"1"}}"#), r#"field "asset": integer"#),
        (r#"{"type":"fill","ts":1,"account":-7,"instrument":1,"qty":"1","price":"1","fee":"0","fill_id":1}"#.into(), r#"field "account": integer -7"#),
        (r#"{"type":"fill","ts":1,"account":7,"instrument":1,"qty":"1","price":"1","fee":"0","fill_id":99999999999999999999}"#.into(), r#"field "fill_id": integer"#),
        (r#"{"type":"params","ts":1,"partial_liquidation":true,"liquidation_cooldown_ns":-5,"warn_ratio":"1"}"#.into(), r#"field "liquidation_cooldown_ns": integer -5"#),
        (r#"{"type":"risk","ts":1,"instrument":1,"vol_lambda":"0.5","vol_ref":"0.1","vol_max_factor":"3","max_staleness_ns":1.0,"max_jump":"0"}"#.into(), r#"field "max_staleness_ns": expected an integer, found 1.0"#),
        // Decimals.
        (r#"{"type":"mark","ts":1,"instrument":1,"price":100}"#.into(), r#"field "price": expected a decimal in a JSON string, found a number"#),
        (r#"{"type":"mark","ts":1,"instrument":1,"price":"1e5"}"#.into(), r#"field "price": malformed decimal"#),
        (r#"{"type":"mark","ts":1,"instrument":1,"price":"+1"}"#.into(), r#"field "price": malformed decimal"#),
        (r#"{"type":"mark","ts":1,"instrument":1,"price":"1."}"#.into(), r#"field "price": malformed decimal"#),
        (r#"{"type":"mark","ts":1,"instrument":1,"price":" 1"}"#.into(), r#"field "price": malformed decimal"#),
        (r#"{"type":"mark","ts":1,"instrument":1,"price":""}"#.into(), r#"field "price": malformed decimal"#),
        (r#"{"type":"mark","ts":1,"instrument":1,"price":"0.123456789"}"#.into(), r#"field "price": decimal has more than 8 places: "0.123456789""#),
        (r#"{"type":"mark","ts":1,"instrument":1,"price":"92233720368.54775808"}"#.into(), r#"field "price": decimal outside the Fixed8 range"#),
        (r#"{"type":"mark","ts":1,"instrument":1,"price":"-92233720368.54775808"}"#.into(), r#"field "price": decimal outside the Fixed8 range"#),
        (r#"{"type":"mark","ts":1,"instrument":1,"price":"1000000000000000000000000000000000000"}"#.into(), r#"field "price": decimal"#),
        // Symbols.
        (r#"{"type":"asset","ts":0,"asset":1,"symbol":"","asset_weight":"1","liability_weight":"1"}"#.into(), r#"field "symbol": symbol is empty"#),
        (r#"{"type":"asset","ts":0,"asset":1,"symbol":"ABCDEFGHIJKLMNOPQ","asset_weight":"1","liability_weight":"1"}"#.into(), r#"field "symbol": symbol longer than 16 characters"#),
        (r#"{"type":"asset","ts":0,"asset":1,"symbol":"ETH\u00e9","asset_weight":"1","liability_weight":"1"}"#.into(), r#"field "symbol": symbol is not printable ASCII"#),
        (r#"{"type":"asset","ts":0,"asset":1,"symbol":"A\tB","asset_weight":"1","liability_weight":"1"}"#.into(), r#"field "symbol": symbol is not printable ASCII"#),
        (r#"{"type":"asset","ts":0,"asset":1,"symbol":5,"asset_weight":"1","liability_weight":"1"}"#.into(), r#"field "symbol": expected a string"#),
        // Tiers.
        (r#"{"type":"instrument","ts":0,"instrument":1,"symbol":"X","multiplier":"1","liquidation_fee":"0","tiers":{}}"#.into(), r#"field "tiers": expected a list of objects, found an object"#),
        (r#"{"type":"instrument","ts":0,"instrument":1,"symbol":"X","multiplier":"1","liquidation_fee":"0","tiers":[1]}"#.into(), r#"field "tiers[0]": expected an object, found a number"#),
        (r#"{"type":"instrument","ts":0,"instrument":1,"symbol":"X","multiplier":"1","liquidation_fee":"0","tiers":[{"notional_floor":"0","mmr":"0.01","imr":"0.02"},{"notional_floor":"5","imr":"0.02"}]}"#.into(), r#"missing field "tiers[1].mmr""#),
        (r#"{"type":"instrument","ts":0,"instrument":1,"symbol":"X","multiplier":"1","liquidation_fee":"0","tiers":[{"notional_floor":"0","mmr":0.01,"imr":"0.02"}]}"#.into(), r#"field "tiers[0].mmr": expected a decimal in a JSON string"#),
        (r#"{"type":"instrument","ts":0,"instrument":1,"symbol":"X","multiplier":"1","liquidation_fee":"0","tiers":[{"notional_floor":"0","mmr":"0.01","mmr":"0.02","imr":"0.02"}]}"#.into(), r#"duplicate key "mmr""#),
    ];
    let good = r#"{"type":"mark","ts":1,"instrument":1,"price":"1"}"#;
    for (bad, expected) in &cases {
        let text = format!("{good}\n{good}\n{good}\n{bad}\n{good}\n");
        let mut reader = EventReader::new(text.as_bytes(), "f.jsonl");
        let mut events = 0;
        let err = loop {
            match reader.read_event() {
                Ok(Some(_)) => events += 1,
                Ok(None) => panic!("{bad:?} was accepted"),
                Err(e) => break e,
            }
        };
        assert_eq!(events, 3, "{bad:?}");
        assert!(err.is_format(), "{bad:?}: {err}");
        assert_eq!(err.line(), 4, "{bad:?}: {err}");
        let message = err.to_string();
        assert!(
            message.starts_with("f.jsonl:4: ") && message.contains(expected),
            "{bad:?}: got {message:?}, expected it to contain {expected:?}"
        );
        assert!(
            matches!(reader.read_event(), Ok(None)),
            "{bad:?}: did not stop"
        );
    }
}

#[test]
fn bytes_that_are_not_utf8_or_too_long_are_errors() {
    let mut text = br#"{"type":"mark","ts":1,"instrument":1,"price":"1"}"#.to_vec();
    text.push(b'\n');
    text.extend_from_slice(b"{\"type\":\"m\xffark\"}\n");
    let err = EventReader::new(&text[..], "f")
        .collect::<Result<Vec<_>, _>>()
        .expect_err("not utf-8");
    assert_eq!(err.to_string(), "f:2: line is not valid UTF-8 (at byte 10)");

    let line = r#"{"type":"mark","ts":1,"instrument":1,"price":"1"}"#;
    let exact = EventReader::new(format!("{line}\n{line}").as_bytes(), "f")
        .with_line_bytes_max(line.len())
        .count();
    assert_eq!(exact, 2, "a line of exactly the bound is fine");
    let err = EventReader::new(format!("{line}\n{line} \n").as_bytes(), "f")
        .with_line_bytes_max(line.len())
        .collect::<Result<Vec<_>, _>>()
        .expect_err("too long");
    assert_eq!(
        err.to_string(),
        format!("f:2: line longer than {} bytes", line.len())
    );
}

#[test]
fn read_errors_are_not_format_errors() {
    struct Failing;
    impl std::io::Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    let err = EventReader::new(std::io::BufReader::new(Failing), "f")
        .read_event()
        .expect_err("io");
    assert!(!err.is_format());
    assert_eq!(err.to_string(), "f:1: read error: disk on fire");
}

#[test]
fn output_reader_skips_status_and_checks_sources() {
    let text = format!(
        "{}{}\n{}",
        PROTOCOL_OUTPUTS,
        r#"{"type":"status","ts":1,"seq":2,"accounts":3,"liquidating":0,"halted":0}"#,
        r#"{"type":"halt","ts":9,"seq":13,"instrument":1,"reason":"jump","on":false,"src_stream":"admin","src_seq":4}"#,
    );
    let outputs = crate::compare::parse_outputs(&text, "o").expect("valid");
    assert_eq!(outputs.len(), 3);

    for (bad, expected) in [
        (
            r#"{"type":"halt","ts":9,"seq":13,"instrument":1,"reason":"stale","on":true,"src_seq":4}"#,
            "must appear together",
        ),
        (
            r#"{"type":"halt","ts":9,"seq":13,"instrument":1,"reason":"stale","on":true,"src_stream":"udp","src_seq":4}"#,
            r#"field "src_stream": unknown value "udp""#,
        ),
        (
            r#"{"type":"halt","ts":9,"seq":13,"instrument":1,"reason":"slow","on":true}"#,
            r#"field "reason": unknown value "slow""#,
        ),
        (
            r#"{"type":"liquidation","ts":9,"seq":12,"account":7,"equity":"1.5","maint_margin":"130","partial":true,"bankrupt":false,"escalation":false,"legs":[{"instrument":1,"qty":"-0.2"}]}"#,
            r#"missing field "legs[0].limit_price""#,
        ),
        (
            r#"{"type":"mark","ts":1,"instrument":1,"price":"1"}"#,
            r#"type "mark" is not allowed here: this reader takes outputs"#,
        ),
    ] {
        let err = crate::compare::parse_outputs(bad, "o").expect_err(bad);
        assert!(err.to_string().contains(expected), "{bad}: {err}");
    }
}
