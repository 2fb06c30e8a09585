//! The outbound session: sequencing, packing, heartbeats, end of session,
//! answers to re-requests; and a receiver recovering losses through them.

use engine::{AccountId, Dec8, Halt, HaltReason, InstrumentId, Leg, Liquidation, Seq, UnixNanos};
use feed_gateway::publisher::{
    NoRetention, PublishError, Publisher, PublisherConfig, Retention, RingRetention,
};
use feed_gateway::wire::{
    decode_outbound, parse_packet, Origin, OutboundMessage, PacketKind, ReRequest, Session,
    OUTBOUND_BYTES_MAX,
};
use feed_gateway::{MessageHandler, Sequencer, SequencerConfig};
use journal::{SourceStream, Status};

fn session() -> Session {
    Session::new("LIQD").unwrap()
}

fn config() -> PublisherConfig {
    PublisherConfig::outbound(session())
}

fn halt(seq: u64) -> Halt {
    Halt {
        ts: UnixNanos(seq),
        seq: Seq(seq),
        instrument: InstrumentId(1),
        reason: HaltReason::Jump,
        on: true,
    }
}

const ORIGIN: Origin = Origin {
    stream: SourceStream::Orders,
    seq: 5,
};

fn liquidation() -> Liquidation {
    Liquidation {
        ts: UnixNanos(1),
        seq: Seq(2),
        account: AccountId(3),
        equity: Dec8(-100),
        maint_margin: Dec8(100),
        partial: false,
        bankrupt: true,
        escalation: false,
    }
}

fn legs(n: usize) -> Vec<Leg> {
    (0..n)
        .map(|i| Leg {
            instrument: InstrumentId(i as u32),
            qty: Dec8(-1 - i as i128),
            limit_price: Dec8(1),
        })
        .collect()
}

#[test]
fn messages_are_sequenced_and_packed() {
    let mut publisher = Publisher::new(config(), NoRetention).unwrap();
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let mut send = |d: &[u8]| sent.push(d.to_vec());
    for i in 0..100 {
        assert_eq!(
            publisher.push_halt(&halt(i), ORIGIN, 0, &mut send),
            Ok(i + 1)
        );
    }
    publisher.flush(0, &mut send);
    // 34 bytes per halt block: 42 fit in 1452 bytes after the header.
    assert_eq!(sent.len(), 3);
    let mut next = 1;
    for datagram in &sent {
        assert!(datagram.len() <= 1472);
        let packet = parse_packet(datagram).unwrap();
        assert_eq!(packet.sequence, next);
        for message in packet.messages() {
            let Ok(OutboundMessage::Halt(h)) = decode_outbound(message) else {
                panic!()
            };
            assert_eq!(h.halt, halt(next - 1));
            assert_eq!(h.origin, ORIGIN);
            next += 1;
        }
    }
    assert_eq!(next, 101);
    assert_eq!(publisher.counters().datagrams, 3);
}

#[test]
fn a_big_liquidation_takes_consecutive_sequences() {
    let mut publisher = Publisher::new(config(), NoRetention).unwrap();
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let mut send = |d: &[u8]| sent.push(d.to_vec());
    publisher.push_halt(&halt(1), ORIGIN, 0, &mut send).unwrap();
    assert_eq!(
        publisher.push_liquidation(&liquidation(), &legs(130), ORIGIN, 0, &mut send),
        Ok((2, 3))
    );
    publisher.flush(0, &mut send);
    assert_eq!(publisher.next_seq(), 5);
    let mut continued = Vec::new();
    let mut legs_seen = 0;
    for datagram in &sent {
        for message in parse_packet(datagram).unwrap().messages() {
            if let Ok(OutboundMessage::Liquidation(l)) = decode_outbound(message) {
                continued.push(l.continued);
                legs_seen += l.leg_count();
            }
        }
    }
    assert_eq!(continued, vec![true, true, false]);
    assert_eq!(legs_seen, 130);
}

#[test]
fn saturated_values_are_counted() {
    let mut publisher = Publisher::new(config(), NoRetention).unwrap();
    let mut huge = liquidation();
    huge.equity = Dec8(-(1i128 << 100));
    publisher
        .push_liquidation(&huge, &[], ORIGIN, 0, &mut |_| {})
        .unwrap();
    assert_eq!(publisher.counters().saturated_values, 1);
}

#[test]
fn heartbeats_when_idle_and_end_of_session() {
    let mut publisher = Publisher::new(config(), NoRetention).unwrap();
    let sent = std::cell::RefCell::new(Vec::<Vec<u8>>::new());
    let mut send = |d: &[u8]| sent.borrow_mut().push(d.to_vec());
    publisher.tick(999_999_999, &mut send);
    assert!(sent.borrow().is_empty());
    publisher.tick(1_000_000_000, &mut send);
    assert_eq!(sent.borrow().len(), 1);
    let first = sent.borrow()[0].clone();
    let hb = parse_packet(&first).unwrap();
    assert_eq!((hb.kind(), hb.sequence), (PacketKind::Heartbeat, 1));
    publisher.push_halt(&halt(1), ORIGIN, 0, &mut send).unwrap();
    assert!(publisher.has_pending());
    assert_eq!(publisher.next_deadline_ns(), Some(1_000_000_000));
    publisher.tick(1_500_000_000, &mut send);
    assert_eq!(sent.borrow().len(), 2, "tick flushes pending messages");
    publisher.tick(2_400_000_000, &mut send);
    assert_eq!(sent.borrow().len(), 2, "sent 0.9 s ago");
    publisher.tick(2_500_000_000, &mut send);
    assert_eq!(parse_packet(&sent.borrow()[2]).unwrap().sequence, 2);
    publisher.end_session(3_000_000_000, &mut send);
    let last = sent.borrow().last().unwrap().clone();
    let end = parse_packet(&last).unwrap();
    assert_eq!((end.kind(), end.sequence), (PacketKind::EndOfSession, 2));
    assert_eq!(
        publisher.push_halt(&halt(2), ORIGIN, 0, &mut send),
        Err(PublishError::Ended)
    );
}

#[test]
fn a_datagram_too_small_for_the_largest_message_is_refused() {
    let config = PublisherConfig {
        datagram_bytes_max: 1000,
        ..config()
    };
    assert!(matches!(
        Publisher::new(config, NoRetention),
        Err(PublishError::DatagramTooSmall { .. })
    ));
}

#[test]
fn rerequests_are_answered_from_the_ring() {
    let mut publisher =
        Publisher::new(config(), RingRetention::new(10, OUTBOUND_BYTES_MAX)).unwrap();
    for i in 0..25 {
        publisher
            .push_halt(&halt(i), ORIGIN, 0, &mut |_| {})
            .unwrap();
    }
    publisher.flush(0, &mut |_| {});
    let mut answers: Vec<Vec<u8>> = Vec::new();
    let request = |sequence, count| ReRequest {
        session: session(),
        sequence,
        count,
    };
    // 16..=25 retained.
    assert_eq!(
        publisher.answer(&request(18, 3), &mut |d| answers.push(d.to_vec())),
        3
    );
    let packet = parse_packet(&answers[0]).unwrap();
    assert_eq!((packet.sequence, packet.count), (18, 3));
    // Partly too old: starts at the first retained one.
    assert_eq!(
        publisher.answer(&request(10, 8), &mut |d| answers.push(d.to_vec())),
        2
    );
    assert_eq!(parse_packet(&answers[1]).unwrap().sequence, 16);
    assert_eq!(publisher.counters().unretained_messages, 6);
    // All too old, or not yet sent: nothing.
    assert_eq!(publisher.answer(&request(1, 5), &mut |_| panic!()), 0);
    assert_eq!(publisher.answer(&request(26, 5), &mut |_| panic!()), 0);
    // Another session: ignored.
    let other = ReRequest {
        session: Session::new("OTHER").unwrap(),
        sequence: 20,
        count: 1,
    };
    assert_eq!(publisher.answer(&other, &mut |_| panic!()), 0);
    assert_eq!(publisher.counters().rerequests_other_session, 1);
    // A big request is answered with one datagram's worth.
    let mut big = Publisher::new(config(), RingRetention::new(1000, OUTBOUND_BYTES_MAX)).unwrap();
    for i in 0..500 {
        big.push_halt(&halt(i), ORIGIN, 0, &mut |_| {}).unwrap();
    }
    let mut datagrams = 0;
    assert_eq!(big.answer(&request(1, 500), &mut |_| datagrams += 1), 42);
    assert_eq!(datagrams, 1);
}

#[test]
fn ring_retention_keeps_the_last_messages() {
    let mut ring = RingRetention::new(3, 4);
    for seq in 1..=5u64 {
        ring.retain(seq, &[seq as u8; 2]);
    }
    let mut out = [0u8; 4];
    assert_eq!(ring.fetch(2, &mut out), None);
    assert_eq!(ring.fetch(3, &mut out), Some(2));
    assert_eq!(out[..2], [3, 3]);
    ring.retain(6, &[0; 5]);
    assert_eq!(ring.fetch(6, &mut out), None, "too long to keep");
    assert_eq!(ring.fetch(0, &mut out), None);
}

#[derive(Default)]
struct Outputs(Vec<(u64, Vec<u8>)>);

impl MessageHandler for Outputs {
    fn message(&mut self, seq: u64, message: &[u8]) {
        self.0.push((seq, message.to_vec()));
    }
}

/// Publisher → lossy link (every third datagram dropped) → a never-skip
/// sequencer whose re-requests the publisher answers: every message
/// arrives once, in order.
#[test]
fn a_listener_recovers_losses_through_rerequests() {
    let config = PublisherConfig {
        datagram_bytes_max: 1400,
        ..config()
    };
    let mut publisher =
        Publisher::new(config, RingRetention::new(4096, OUTBOUND_BYTES_MAX)).unwrap();
    let mut link: Vec<Vec<u8>> = Vec::new();
    for i in 0..300u64 {
        let mut send = |d: &[u8]| link.push(d.to_vec());
        if i % 50 == 0 {
            publisher
                .push_liquidation(&liquidation(), &legs(70), ORIGIN, i, &mut send)
                .unwrap();
        } else {
            publisher.push_halt(&halt(i), ORIGIN, i, &mut send).unwrap();
        }
        if i % 7 == 0 {
            publisher.flush(i, &mut send);
        }
    }
    publisher.flush(300, &mut |d| link.push(d.to_vec()));
    publisher.tick(10_000_000_000, &mut |d| link.push(d.to_vec()));
    let total = publisher.next_seq() - 1;

    let mut sequencer = Sequencer::new(SequencerConfig {
        rerequest: true,
        ..SequencerConfig::NEVER_SKIP
    });
    let mut outputs = Outputs::default();
    let mut now = 0;
    for (i, datagram) in link.iter().enumerate() {
        now += 1_000;
        if i % 3 != 1 {
            sequencer.on_datagram(datagram, now, &mut outputs);
        }
        while let Some(request) = sequencer.take_rerequest() {
            let mut answers = Vec::new();
            publisher.answer(&request, &mut |d| answers.push(d.to_vec()));
            for answer in answers {
                sequencer.on_datagram(&answer, now, &mut outputs);
            }
        }
    }
    for _ in 0..1000 {
        if !sequencer.gap_open() {
            break;
        }
        now += 1_000_000;
        sequencer.poll(now, &mut outputs);
        while let Some(request) = sequencer.take_rerequest() {
            let mut answers = Vec::new();
            publisher.answer(&request, &mut |d| answers.push(d.to_vec()));
            for answer in answers {
                sequencer.on_datagram(&answer, now, &mut outputs);
            }
        }
    }
    let seqs: Vec<u64> = outputs.0.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>());
    assert!(sequencer.counters().rerequests > 0);
    assert!(outputs.0.iter().all(|(_, m)| decode_outbound(m).is_ok()));
}

#[test]
fn status_messages_take_their_place_in_the_sequence() {
    let mut publisher = Publisher::new(config(), NoRetention).unwrap();
    let status = Status {
        ts: UnixNanos(7),
        seq: Seq(9),
        accounts: 3,
        liquidating: 1,
        halted: 0,
    };
    let mut sent = Vec::new();
    assert_eq!(publisher.push_status(&status, 0, &mut |_| {}), Ok(1));
    publisher.flush(0, &mut |d| sent.push(d.to_vec()));
    let packet = parse_packet(&sent[0]).unwrap();
    let message = packet.messages().next().unwrap();
    assert_eq!(
        decode_outbound(message),
        Ok(OutboundMessage::Status(status))
    );
}
