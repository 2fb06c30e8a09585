//! Every malformed packet and message class of PROTOCOL.md §1, exact
//! layouts, and round trips.

use engine::{
    AccountId, AssetDef, AssetId, BalanceChange, BalanceKind, Dec8, EngineParams, Event, Fill,
    Fixed8, Funding, Halt, HaltReason, IndexPrice, InstrumentDef, InstrumentId, Leg, Liquidation,
    MarkPrice, RiskParams, Seq, Symbol, Tier, Tiers, UnixNanos,
};
use journal::{SourceStream, Status};
use proptest::prelude::*;

use super::*;

fn session() -> Session {
    Session::new("TEST").unwrap()
}

fn header(sequence: u64, count: u16) -> Vec<u8> {
    let mut out = session().0.to_vec();
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out
}

fn block(out: &mut Vec<u8>, message: &[u8]) {
    out.extend_from_slice(&(message.len() as u16).to_be_bytes());
    out.extend_from_slice(message);
}

fn mark(ts: u64, price: i64) -> Event {
    Event::Mark(MarkPrice {
        ts: UnixNanos(ts),
        instrument: InstrumentId(7),
        price: Fixed8(price),
    })
}

fn encoded(event: &Event) -> Vec<u8> {
    let mut out = [0u8; INBOUND_BYTES_MAX];
    let len = encode_event(event, &mut out).unwrap();
    out[..len].to_vec()
}

// ---- packets ----

#[test]
fn well_formed_packet_yields_its_messages() {
    let mut datagram = header(5, 2);
    block(&mut datagram, b"ab");
    block(&mut datagram, b"");
    let packet = parse_packet(&datagram).unwrap();
    assert_eq!(packet.session, session());
    assert_eq!(packet.kind(), PacketKind::Messages);
    assert_eq!(packet.next_sequence(), 7);
    assert_eq!(
        packet.messages().collect::<Vec<_>>(),
        vec![&b"ab"[..], &b""[..]]
    );
}

#[test]
fn heartbeat_and_end_of_session_are_recognised() {
    let heartbeat = encode_heartbeat(session(), 9);
    let packet = parse_packet(&heartbeat).unwrap();
    assert_eq!(packet.kind(), PacketKind::Heartbeat);
    assert_eq!((packet.sequence, packet.next_sequence()), (9, 9));
    assert_eq!(packet.messages().count(), 0);
    let end = encode_end_of_session(session(), 9);
    let packet = parse_packet(&end).unwrap();
    assert_eq!(packet.kind(), PacketKind::EndOfSession);
    assert_eq!(packet.next_sequence(), 9);
    assert_eq!(&end[..10], b"TEST      ");
    assert_eq!(&end[18..], &[0xFF, 0xFF]);
}

#[test]
fn every_malformed_packet_class_is_its_own_reason() {
    let mut ok = header(1, 1);
    block(&mut ok, b"x");
    assert!(parse_packet(&ok).is_ok());

    assert_eq!(parse_packet(&ok[..19]), Err(PacketError::ShortHeader));
    assert_eq!(parse_packet(&[]), Err(PacketError::ShortHeader));

    let mut past = header(1, 1);
    past.extend_from_slice(&[0, 5, b'x']);
    assert_eq!(parse_packet(&past), Err(PacketError::BlockPastEnd));
    let mut half_prefix = header(1, 1);
    half_prefix.push(0);
    assert_eq!(parse_packet(&half_prefix), Err(PacketError::BlockPastEnd));
    let missing_block = header(1, 2);
    assert_eq!(parse_packet(&missing_block), Err(PacketError::BlockPastEnd));

    let mut trailing = ok.clone();
    trailing.push(0);
    assert_eq!(parse_packet(&trailing), Err(PacketError::TrailingBytes));
    let mut heartbeat_with_bytes = header(1, 0);
    block(&mut heartbeat_with_bytes, b"x");
    assert_eq!(
        parse_packet(&heartbeat_with_bytes),
        Err(PacketError::TrailingBytes)
    );

    let mut end_with_blocks = header(1, 0xFFFF);
    block(&mut end_with_blocks, b"x");
    assert_eq!(
        parse_packet(&end_with_blocks),
        Err(PacketError::EndOfSessionWithBlocks)
    );

    let mut zero = header(0, 1);
    block(&mut zero, b"x");
    assert_eq!(parse_packet(&zero), Err(PacketError::SequenceZero));
    assert_eq!(parse_packet(&header(0, 0)), Err(PacketError::SequenceZero));

    let mut overflow = header(u64::MAX, 1);
    block(&mut overflow, b"x");
    assert_eq!(parse_packet(&overflow), Err(PacketError::SequenceOverflow));
    let mut last = header(u64::MAX - 1, 1);
    block(&mut last, b"x");
    assert!(parse_packet(&last).is_ok(), "u64::MAX - 1 + 1 fits");
    assert!(
        parse_packet(&header(u64::MAX, 0)).is_ok(),
        "a heartbeat adds nothing"
    );

    let names: std::collections::BTreeSet<_> = PacketError::ALL.iter().map(|e| e.name()).collect();
    assert_eq!(names.len(), PacketError::COUNT);
    for (i, e) in PacketError::ALL.iter().enumerate() {
        assert_eq!(e.index(), i);
    }
}

#[test]
fn rerequest_is_twenty_bytes_and_strict() {
    let request = ReRequest {
        session: session(),
        sequence: 42,
        count: 3,
    };
    let bytes = request.encode();
    assert_eq!(&bytes[..], &header(42, 3)[..]);
    assert_eq!(ReRequest::decode(&bytes), Ok(request));
    assert_eq!(
        ReRequest::decode(&bytes[..19]),
        Err(ReRequestError::WrongLength(19))
    );
    assert_eq!(
        ReRequest::decode(&header(0, 3)),
        Err(ReRequestError::SequenceZero)
    );
    assert_eq!(
        ReRequest::decode(&header(1, 0)),
        Err(ReRequestError::Count(0))
    );
    assert_eq!(
        ReRequest::decode(&header(1, 0xFFFF)),
        Err(ReRequestError::Count(0xFFFF))
    );
    assert_eq!(
        ReRequest::decode(&header(u64::MAX, 1)),
        Err(ReRequestError::SequenceOverflow)
    );
}

#[test]
fn builder_packs_up_to_the_datagram_size() {
    let message = [b'M'; 21];
    let mut builder = PacketBuilder::new(session(), 20 + 3 * 23);
    builder.start(10);
    assert!(builder.push(&message));
    assert!(builder.push(&message));
    assert!(builder.push(&message));
    assert!(!builder.push(&message), "a fourth does not fit");
    assert_eq!(builder.next_sequence(), 13);
    let datagram = builder.finish().to_vec();
    assert_eq!(datagram.len(), 20 + 3 * 23);
    let packet = parse_packet(&datagram).unwrap();
    assert_eq!((packet.sequence, packet.count), (10, 3));
    assert!(packet.messages().all(|m| m == message));
    builder.start(13);
    assert_eq!(
        parse_packet(builder.finish()).unwrap().kind(),
        PacketKind::Heartbeat
    );
}

#[test]
fn session_names_are_checked() {
    assert_eq!(Session::new("MD").unwrap().0, *b"MD        ");
    assert!(Session::new("").is_err());
    assert!(Session::new("ABCDEFGHIJK").is_err());
    assert!(Session::new("A\u{1}").is_err());
    assert_eq!(Session::new("X").unwrap().to_string(), "X");
}

// ---- inbound messages: exact layout ----

#[test]
fn mark_layout_is_exact() {
    let bytes = encoded(&mark(0x0102030405060708, 150_000_000));
    let mut expected = vec![b'M'];
    expected.extend_from_slice(&0x0102030405060708u64.to_be_bytes());
    expected.extend_from_slice(&7u32.to_be_bytes());
    expected.extend_from_slice(&150_000_000i64.to_be_bytes());
    assert_eq!(bytes, expected);
}

#[test]
fn message_sizes_match_the_protocol_tables() {
    for (event, len) in sample_events() {
        assert_eq!(encoded(&event).len(), len, "{event:?}");
        assert_eq!(decode_event(&encoded(&event)), Ok(event));
    }
}

fn sym(text: &str) -> Symbol {
    Symbol::new(text).unwrap()
}

fn sample_events() -> Vec<(Event, usize)> {
    let ts = UnixNanos(5);
    let tiers = Tiers::from_slice(&[
        Tier {
            notional_floor: Fixed8(0),
            mmr: Fixed8(400_000),
            imr: Fixed8(1_000_000),
        },
        Tier {
            notional_floor: Fixed8(5_000_000_000_000),
            mmr: Fixed8(500_000),
            imr: Fixed8(2_000_000),
        },
    ]);
    vec![
        (mark(1, 2), 21),
        (
            Event::Index(IndexPrice {
                ts,
                asset: AssetId(1),
                price: Fixed8(300_000_000_000),
            }),
            21,
        ),
        (
            Event::Fill(Fill {
                ts,
                account: AccountId(u64::MAX),
                instrument: InstrumentId(1),
                qty: Fixed8(-50_000_000),
                price: Fixed8(6_500_000_000_000),
                fee: Fixed8(-325_000_000),
                fill_id: 9,
            }),
            53,
        ),
        (
            Event::Balance(BalanceChange {
                ts,
                account: AccountId(7),
                asset: AssetId(0),
                amount: Fixed8(100_000_000_000),
                kind: BalanceKind::Adjustment,
                ref_id: 1,
            }),
            38,
        ),
        (
            Event::Funding(Funding {
                ts,
                instrument: InstrumentId(1),
                rate: Fixed8(-10_000),
            }),
            21,
        ),
        (
            Event::AssetDef(AssetDef {
                ts,
                asset: AssetId(1),
                symbol: sym("ETH"),
                asset_weight: Fixed8(80_000_000),
                liability_weight: Fixed8(120_000_000),
            }),
            45,
        ),
        (
            Event::InstrumentDef(InstrumentDef {
                ts,
                instrument: InstrumentId(1),
                symbol: sym("BTC-PERP"),
                multiplier: Fixed8::ONE,
                liquidation_fee: Fixed8(100_000),
                tiers,
            }),
            46 + 2 * 24,
        ),
        (
            Event::Risk(RiskParams {
                ts,
                instrument: InstrumentId(1),
                vol_lambda: Fixed8(94_000_000),
                vol_ref: Fixed8(1_000_000),
                vol_max_factor: Fixed8(300_000_000),
                max_staleness_ns: 5_000_000_000,
                max_jump: Fixed8(0),
            }),
            53,
        ),
        (
            Event::Params(EngineParams {
                ts,
                partial_liquidation: true,
                liquidation_cooldown_ns: 1_000_000_000,
                warn_ratio: Fixed8(125_000_000),
            }),
            26,
        ),
    ]
}

// ---- inbound messages: every malformed class ----

#[test]
fn unknown_type_and_empty_block() {
    assert_eq!(decode_event(b""), Err(MessageError::Empty));
    assert_eq!(decode_event(b"Z123"), Err(MessageError::UnknownType(b'Z')));
    assert_eq!(
        decode_event(&encode_halt(&halt(), Origin::CONFIG)),
        Err(MessageError::UnknownType(b'H')),
        "outbound types are not inbound messages"
    );
}

#[test]
fn wrong_length_for_each_type() {
    for (event, len) in sample_events() {
        let bytes = encoded(&event);
        let kind = bytes[0];
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            decode_event(&long),
            Err(MessageError::WrongLength { kind, len: len + 1 }),
            "{}",
            char::from(kind)
        );
        for short in [1, len - 1] {
            let got = decode_event(&bytes[..short]);
            assert!(
                matches!(got, Err(MessageError::WrongLength { .. })),
                "{} cut to {short}: {got:?}",
                char::from(kind)
            );
        }
    }
}

#[test]
fn instrument_tier_count_and_length() {
    let (event, _) = sample_events().swap_remove(6);
    let bytes = encoded(&event);
    assert_eq!(bytes[45], 2, "tier_count at offset 45");
    for count in [0u8, 17, 255] {
        let mut bad = bytes.clone();
        bad[45] = count;
        assert_eq!(decode_event(&bad), Err(MessageError::TierCount(count)));
    }
    let mut three = bytes.clone();
    three[45] = 3;
    assert_eq!(
        decode_event(&three),
        Err(MessageError::WrongLength {
            kind: b'I',
            len: 94
        }),
        "count 3 with two tiers' bytes"
    );
}

#[test]
fn undefined_codes() {
    let (balance, _) = sample_events().swap_remove(3);
    let mut bytes = encoded(&balance);
    for kind in [0u8, 5, 255] {
        bytes[29] = kind;
        assert_eq!(decode_event(&bytes), Err(MessageError::BalanceKind(kind)));
    }
    let (params, _) = sample_events().swap_remove(8);
    let mut bytes = encoded(&params);
    for value in [2u8, 255] {
        bytes[9] = value;
        assert_eq!(decode_event(&bytes), Err(MessageError::Bool(value)));
    }
}

#[test]
fn symbols_must_be_printable_and_not_empty() {
    let (asset, _) = sample_events().swap_remove(5);
    let bytes = encoded(&asset);
    let symbol_at = 13;
    for bad in [0x00u8, 0x1f, 0x7f, 0x80, 0xff] {
        let mut b = bytes.clone();
        b[symbol_at + 3] = bad;
        assert_eq!(decode_event(&b), Err(MessageError::SymbolNotPrintable));
    }
    let mut blank = bytes.clone();
    blank[symbol_at..symbol_at + 16].fill(b' ');
    assert_eq!(decode_event(&blank), Err(MessageError::SymbolEmpty));
    let (instrument, _) = sample_events().swap_remove(6);
    let mut b = encoded(&instrument);
    b[symbol_at..symbol_at + 16].fill(b' ');
    assert_eq!(decode_event(&b), Err(MessageError::SymbolEmpty));
}

#[test]
fn fixed8_min_is_refused_in_every_decimal_field() {
    for (event, _) in sample_events() {
        let bytes = encoded(&event);
        let mut found = 0;
        // Every offset where an 8-byte field equal to the event's decimal
        // sits: set it to -2^63 and expect Fixed8Min (or, for the
        // instrument's tier_count position, nothing else changes).
        for at in 1..bytes.len().saturating_sub(7) {
            let mut b = bytes.clone();
            b[at..at + 8].copy_from_slice(&i64::MIN.to_be_bytes());
            if decode_event(&b) == Err(MessageError::Fixed8Min) {
                found += 1;
            }
        }
        assert!(found > 0, "{event:?}");
    }
    // Exactly: the mark's price.
    let mut b = encoded(&mark(1, 1));
    b[13..21].copy_from_slice(&i64::MIN.to_be_bytes());
    assert_eq!(decode_event(&b), Err(MessageError::Fixed8Min));
    b[13..21].copy_from_slice(&(i64::MIN + 1).to_be_bytes());
    assert!(decode_event(&b).is_ok(), "-2^63 + 1 is valid");
}

#[test]
fn encoder_refuses_tier_counts_the_wire_cannot_carry() {
    let (event, _) = sample_events().swap_remove(6);
    let Event::InstrumentDef(mut def) = event else {
        unreachable!()
    };
    def.tiers = Tiers::from_slice(&[Tier::default(); 20]);
    assert_eq!(
        encode_event(&Event::InstrumentDef(def), &mut [0u8; 512]),
        Err(EncodeError::TierCount(20))
    );
    def.tiers = Tiers::from_slice(&[]);
    assert_eq!(
        encode_event(&Event::InstrumentDef(def), &mut [0u8; 512]),
        Err(EncodeError::TierCount(0))
    );
    assert_eq!(
        encode_event(&mark(1, 1), &mut [0u8; 20]),
        Err(EncodeError::BufferTooSmall { needed: 21 })
    );
}

// ---- outbound ----

fn halt() -> Halt {
    Halt {
        ts: UnixNanos(9),
        seq: Seq(13),
        instrument: InstrumentId(1),
        reason: HaltReason::Stale,
        on: true,
    }
}

fn liquidation() -> Liquidation {
    Liquidation {
        ts: UnixNanos(9),
        seq: Seq(12),
        account: AccountId(7),
        equity: Dec8(12_050_000_000),
        maint_margin: Dec8(13_000_000_000),
        partial: true,
        bankrupt: false,
        escalation: true,
    }
}

fn legs(n: usize) -> Vec<Leg> {
    (0..n)
        .map(|i| Leg {
            instrument: InstrumentId(i as u32),
            qty: Dec8(-20_000_000 - i as i128),
            limit_price: Dec8(6_300_010_000_000),
        })
        .collect()
}

const ORIGIN: Origin = Origin {
    stream: SourceStream::MarketData,
    seq: 77,
};

fn decode_liquidation(
    liquidation: &Liquidation,
    legs: &[Leg],
) -> Vec<(LiquidationMessage<'static>, Vec<WireLeg>)> {
    let parts = liquidation_message_count(legs.len());
    let mut out = Vec::new();
    for part in 0..parts {
        let mut buf = [0u8; OUTBOUND_BYTES_MAX];
        let (len, saturated) =
            encode_liquidation_part(liquidation, legs, ORIGIN, part, &mut buf).unwrap();
        assert_eq!(saturated, 0);
        let bytes: &'static [u8] = Box::leak(buf[..len].to_vec().into_boxed_slice());
        let OutboundMessage::Liquidation(message) = decode_outbound(bytes).unwrap() else {
            panic!("not an L")
        };
        let wire_legs = message.legs().collect();
        out.push((message, wire_legs));
    }
    out
}

#[test]
fn liquidation_layout_and_round_trip() {
    let mut buf = [0u8; OUTBOUND_BYTES_MAX];
    let (len, _) = encode_liquidation_part(&liquidation(), &legs(1), ORIGIN, 0, &mut buf).unwrap();
    assert_eq!(len, 52 + 20);
    assert_eq!(buf[0], b'L');
    assert_eq!(buf[17], 1, "src_stream md");
    assert_eq!(buf[50], FLAG_PARTIAL | FLAG_ESCALATION, "flags");
    assert_eq!(buf[51], 1, "leg_count");
    let parts = decode_liquidation(&liquidation(), &legs(1));
    let (message, wire_legs) = &parts[0];
    assert_eq!(message.to_liquidation(), liquidation());
    assert_eq!(message.origin, ORIGIN);
    assert!(!message.continued);
    assert_eq!(
        wire_legs.iter().map(|l| l.to_leg()).collect::<Vec<_>>(),
        legs(1)
    );
}

#[test]
fn liquidation_with_no_legs_is_one_message() {
    let parts = decode_liquidation(&liquidation(), &[]);
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].0.leg_count(), 0);
    assert!(!parts[0].0.continued);
}

#[test]
fn more_than_64_legs_split_with_continued_bit() {
    for (n, expected_parts) in [(64, 1), (65, 2), (128, 2), (129, 3), (300, 5)] {
        let all = legs(n);
        let parts = decode_liquidation(&liquidation(), &all);
        assert_eq!(parts.len(), expected_parts, "{n} legs");
        let mut collected = Vec::new();
        for (i, (message, wire_legs)) in parts.iter().enumerate() {
            assert_eq!(message.continued, i + 1 < parts.len());
            assert!(wire_legs.len() <= 64);
            assert_eq!(message.to_liquidation(), liquidation());
            collected.extend(wire_legs.iter().map(|l| l.to_leg()));
        }
        assert_eq!(collected, all);
    }
    let mut buf = [0u8; OUTBOUND_BYTES_MAX];
    assert_eq!(
        encode_liquidation_part(&liquidation(), &legs(65), ORIGIN, 2, &mut buf),
        Err(EncodeError::Part { part: 2, parts: 2 })
    );
}

#[test]
fn values_beyond_fixed8_saturate_and_are_counted() {
    let mut big = liquidation();
    big.equity = Dec8(-(1i128 << 80));
    big.maint_margin = Dec8(1i128 << 70);
    let mut leg = legs(1);
    leg[0].limit_price = Dec8(i128::from(i64::MAX) + 1);
    let mut buf = [0u8; OUTBOUND_BYTES_MAX];
    let (len, saturated) = encode_liquidation_part(&big, &leg, ORIGIN, 0, &mut buf).unwrap();
    assert_eq!(saturated, 3);
    let OutboundMessage::Liquidation(message) = decode_outbound(&buf[..len]).unwrap() else {
        panic!()
    };
    assert_eq!(message.equity, Fixed8(-i64::MAX));
    assert_eq!(message.maint_margin, Fixed8(i64::MAX));
    assert_eq!(message.legs().next().unwrap().limit_price, Fixed8(i64::MAX));
    assert_eq!(
        fixed8_saturating(Dec8(i128::from(i64::MIN))).0,
        Fixed8(-i64::MAX)
    );
}

#[test]
fn halt_and_status_layout_and_round_trip() {
    let bytes = encode_halt(&halt(), ORIGIN);
    assert_eq!(bytes.len(), 32);
    assert_eq!(&bytes[30..], &[1, 1], "reason stale, on");
    assert_eq!(
        decode_outbound(&bytes),
        Ok(OutboundMessage::Halt(HaltMessage {
            halt: halt(),
            origin: ORIGIN
        }))
    );
    let status = Status {
        ts: UnixNanos(1),
        seq: Seq(2),
        accounts: 3,
        liquidating: 4,
        halted: 5,
    };
    let bytes = encode_status(&status);
    assert_eq!(bytes.len(), 37);
    assert_eq!(decode_outbound(&bytes), Ok(OutboundMessage::Status(status)));
}

#[test]
fn malformed_outbound_messages() {
    let mut h = encode_halt(&halt(), ORIGIN);
    h[17] = 4;
    assert_eq!(decode_outbound(&h), Err(MessageError::SrcStream(4)));
    let mut h = encode_halt(&halt(), ORIGIN);
    h[30] = 3;
    assert_eq!(decode_outbound(&h), Err(MessageError::HaltReason(3)));
    let mut h = encode_halt(&halt(), ORIGIN);
    h[31] = 2;
    assert_eq!(decode_outbound(&h), Err(MessageError::Bool(2)));
    assert!(matches!(
        decode_outbound(&h[..31]),
        Err(MessageError::WrongLength { kind: b'H', .. })
    ));
    let mut buf = [0u8; OUTBOUND_BYTES_MAX];
    let (len, _) = encode_liquidation_part(&liquidation(), &legs(2), ORIGIN, 0, &mut buf).unwrap();
    let mut l = buf[..len].to_vec();
    l[50] |= 0x10;
    assert_eq!(decode_outbound(&l), Err(MessageError::Flags(0x15)));
    let mut l = buf[..len].to_vec();
    l[51] = 65;
    assert_eq!(decode_outbound(&l), Err(MessageError::LegCount(65)));
    let mut l = buf[..len].to_vec();
    l[51] = 3;
    assert!(matches!(
        decode_outbound(&l),
        Err(MessageError::WrongLength { kind: b'L', .. })
    ));
    let mut l = buf[..len].to_vec();
    l[52 + 4..52 + 12].copy_from_slice(&i64::MIN.to_be_bytes());
    assert_eq!(decode_outbound(&l), Err(MessageError::Fixed8Min));
    assert_eq!(decode_outbound(b"M"), Err(MessageError::UnknownType(b'M')));
}

#[test]
fn streams_carry_their_types() {
    for (event, _) in sample_events() {
        let stream = Stream::of_event(&event);
        let kind = event_type(&event);
        for other in Stream::ALL {
            assert_eq!(other.carries(kind), other == stream);
        }
    }
    let names: std::collections::BTreeSet<_> = MessageError::NAMES.iter().collect();
    assert_eq!(names.len(), MessageError::COUNT);
}

// ---- properties ----

fn fixed8() -> impl Strategy<Value = Fixed8> {
    (i64::MIN + 1..=i64::MAX).prop_map(Fixed8)
}

fn symbol() -> impl Strategy<Value = Symbol> {
    "[!-~][ -~]{0,15}".prop_map(|text| Symbol::new(&text).unwrap())
}

fn tiers() -> impl Strategy<Value = Tiers> {
    prop::collection::vec(
        (fixed8(), fixed8(), fixed8()).prop_map(|(notional_floor, mmr, imr)| Tier {
            notional_floor,
            mmr,
            imr,
        }),
        1..=16,
    )
    .prop_map(|list| Tiers::from_slice(&list))
}

fn kind() -> impl Strategy<Value = BalanceKind> {
    (1u8..=4).prop_map(|code| BalanceKind::from_code(code).unwrap())
}

pub(crate) fn event() -> impl Strategy<Value = Event> {
    let ts = any::<u64>().prop_map(UnixNanos);
    prop_oneof![
        (ts.clone(), any::<u32>(), fixed8()).prop_map(|(ts, i, price)| Event::Mark(MarkPrice {
            ts,
            instrument: InstrumentId(i),
            price
        })),
        (ts.clone(), any::<u32>(), fixed8()).prop_map(|(ts, a, price)| Event::Index(IndexPrice {
            ts,
            asset: AssetId(a),
            price
        })),
        (
            ts.clone(),
            any::<u64>(),
            any::<u32>(),
            (fixed8(), fixed8(), fixed8()),
            any::<u64>()
        )
            .prop_map(|(ts, a, i, (qty, price, fee), fill_id)| Event::Fill(Fill {
                ts,
                account: AccountId(a),
                instrument: InstrumentId(i),
                qty,
                price,
                fee,
                fill_id
            })),
        (
            ts.clone(),
            any::<u64>(),
            any::<u32>(),
            fixed8(),
            kind(),
            any::<u64>()
        )
            .prop_map(|(ts, a, asset, amount, kind, ref_id)| Event::Balance(
                BalanceChange {
                    ts,
                    account: AccountId(a),
                    asset: AssetId(asset),
                    amount,
                    kind,
                    ref_id
                }
            )),
        (ts.clone(), any::<u32>(), fixed8()).prop_map(|(ts, i, rate)| Event::Funding(Funding {
            ts,
            instrument: InstrumentId(i),
            rate
        })),
        (ts.clone(), any::<u32>(), symbol(), fixed8(), fixed8()).prop_map(
            |(ts, a, symbol, asset_weight, liability_weight)| Event::AssetDef(AssetDef {
                ts,
                asset: AssetId(a),
                symbol,
                asset_weight,
                liability_weight
            })
        ),
        (
            ts.clone(),
            any::<u32>(),
            symbol(),
            fixed8(),
            fixed8(),
            tiers()
        )
            .prop_map(|(ts, i, symbol, multiplier, liquidation_fee, tiers)| {
                Event::InstrumentDef(InstrumentDef {
                    ts,
                    instrument: InstrumentId(i),
                    symbol,
                    multiplier,
                    liquidation_fee,
                    tiers,
                })
            }),
        (
            ts.clone(),
            any::<u32>(),
            (fixed8(), fixed8(), fixed8()),
            any::<u64>(),
            fixed8()
        )
            .prop_map(|(ts, i, (l, r, f), s, j)| Event::Risk(RiskParams {
                ts,
                instrument: InstrumentId(i),
                vol_lambda: l,
                vol_ref: r,
                vol_max_factor: f,
                max_staleness_ns: s,
                max_jump: j
            })),
        (ts, any::<bool>(), any::<u64>(), fixed8()).prop_map(|(ts, p, c, w)| Event::Params(
            EngineParams {
                ts,
                partial_liquidation: p,
                liquidation_cooldown_ns: c,
                warn_ratio: w
            }
        )),
    ]
}

fn dec8_in_range() -> impl Strategy<Value = Dec8> {
    (i64::MIN + 1..=i64::MAX).prop_map(|m| Dec8(i128::from(m)))
}

proptest! {
    #[test]
    fn every_event_round_trips(event in event()) {
        let mut buf = [0u8; INBOUND_BYTES_MAX];
        let len = encode_event(&event, &mut buf).unwrap();
        prop_assert_eq!(len, event_len(&event).unwrap());
        prop_assert_eq!(decode_event(&buf[..len]), Ok(event));
    }

    #[test]
    fn outbound_round_trips(
        ts in any::<u64>(), seq in any::<u64>(), account in any::<u64>(),
        equity in dec8_in_range(), mm in dec8_in_range(),
        flags in 0u8..8, stream in 0u8..4, src_seq in any::<u64>(),
        raw_legs in prop::collection::vec((any::<u32>(), dec8_in_range(), dec8_in_range()), 0..200),
        on in any::<bool>(), jump in any::<bool>(),
    ) {
        let liquidation = Liquidation {
            ts: UnixNanos(ts), seq: Seq(seq), account: AccountId(account),
            equity, maint_margin: mm,
            partial: flags & 1 != 0, bankrupt: flags & 2 != 0, escalation: flags & 4 != 0,
        };
        let origin = Origin { stream: SourceStream::from_code(stream).unwrap(), seq: src_seq };
        let legs: Vec<Leg> = raw_legs.iter().map(|&(i, qty, limit_price)| Leg {
            instrument: InstrumentId(i), qty, limit_price,
        }).collect();
        let parts = liquidation_message_count(legs.len());
        let mut collected = Vec::new();
        for part in 0..parts {
            let mut buf = [0u8; OUTBOUND_BYTES_MAX];
            let (len, saturated) =
                encode_liquidation_part(&liquidation, &legs, origin, part, &mut buf).unwrap();
            prop_assert_eq!(saturated, 0);
            let Ok(OutboundMessage::Liquidation(m)) = decode_outbound(&buf[..len]) else {
                return Err(TestCaseError::fail("not an L"));
            };
            prop_assert_eq!(m.to_liquidation(), liquidation);
            prop_assert_eq!(m.origin, origin);
            prop_assert_eq!(m.continued, part + 1 < parts);
            collected.extend(m.legs().map(WireLeg::to_leg));
        }
        prop_assert_eq!(collected, legs);
        let halt = Halt {
            ts: UnixNanos(ts), seq: Seq(seq), instrument: InstrumentId(account as u32),
            reason: if jump { HaltReason::Jump } else { HaltReason::Stale }, on,
        };
        let halt_bytes = encode_halt(&halt, origin);
        prop_assert_eq!(
            decode_outbound(&halt_bytes),
            Ok(OutboundMessage::Halt(HaltMessage { halt, origin }))
        );
        let status = Status { ts: UnixNanos(ts), seq: Seq(seq), accounts: account,
            liquidating: src_seq, halted: stream.into() };
        let status_bytes = encode_status(&status);
        prop_assert_eq!(decode_outbound(&status_bytes), Ok(OutboundMessage::Status(status)));
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode_event(&bytes);
        let _ = decode_outbound(&bytes);
        let _ = ReRequest::decode(&bytes);
        if let Ok(packet) = parse_packet(&bytes) {
            let total: usize = packet.messages().map(|m| m.len() + 2).sum();
            prop_assert_eq!(total + HEADER_BYTES, bytes.len());
            for message in packet.messages() {
                let _ = decode_event(message);
                let _ = decode_outbound(message);
            }
        }
    }

    #[test]
    fn typed_prefix_bytes_never_panic(kind in prop::sample::select(b"MXFBNAIGPLHS".to_vec()),
                                      rest in prop::collection::vec(any::<u8>(), 0..500)) {
        let mut bytes = vec![kind];
        bytes.extend_from_slice(&rest);
        let _ = decode_event(&bytes);
        let _ = decode_outbound(&bytes);
    }

    #[test]
    fn packets_of_events_round_trip(events in prop::collection::vec(event(), 1..40),
                                    max in 450usize..3000, first in 1u64..1_000_000) {
        let mut builder = PacketBuilder::new(session(), max);
        let mut sent = Vec::new();
        builder.start(first);
        let mut datagrams = Vec::new();
        for (seq, event) in (first..).zip(events.iter()) {
            let mut buf = [0u8; INBOUND_BYTES_MAX];
            let len = encode_event(event, &mut buf).unwrap();
            if !builder.push(&buf[..len]) {
                datagrams.push(builder.finish().to_vec());
                builder.start(seq);
                prop_assert!(builder.push(&buf[..len]));
            }
            sent.push(*event);
        }
        datagrams.push(builder.finish().to_vec());
        let mut got = Vec::new();
        let mut expect_seq = first;
        for datagram in &datagrams {
            prop_assert!(datagram.len() <= max);
            let packet = parse_packet(datagram).unwrap();
            prop_assert_eq!(packet.sequence, expect_seq);
            expect_seq = packet.next_sequence();
            for message in packet.messages() {
                got.push(decode_event(message).unwrap());
            }
        }
        prop_assert_eq!(got, sent);
    }
}
