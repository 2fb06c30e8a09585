//! The mio gateway over real loopback sockets: inbound with a gap filled by
//! re-request, the source allowlist, outbound publishing and answers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use engine::{AccountId, Event, Fill, Fixed8, Halt, HaltReason, InstrumentId, Seq, UnixNanos};
use feed_gateway::wire::{
    decode_outbound, encode_event, parse_packet, Origin, OutboundMessage, PacketBuilder, ReRequest,
    Session, Stream, INBOUND_BYTES_MAX,
};
use feed_gateway::{
    Gateway, GatewayConfig, GatewayHandler, InboundConfig, NoRetention, Notice, OutboundConfig,
    PublisherConfig, ReceiverConfig, RingRetention,
};
use journal::SourceStream;

fn localhost() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
}

fn fill(seq: u64) -> Event {
    Event::Fill(Fill {
        ts: UnixNanos(seq),
        account: AccountId(seq),
        instrument: InstrumentId(1),
        qty: Fixed8(1),
        price: Fixed8(1),
        fee: Fixed8(0),
        fill_id: seq,
    })
}

fn packet(first: u64, n: u64) -> Vec<u8> {
    let mut builder = PacketBuilder::new(Session::new("ORD").unwrap(), 1472);
    builder.start(first);
    for seq in first..first + n {
        let mut buf = [0u8; INBOUND_BYTES_MAX];
        let len = encode_event(&fill(seq), &mut buf).unwrap();
        assert!(builder.push(&buf[..len]));
    }
    builder.finish().to_vec()
}

#[derive(Default)]
struct Collect {
    events: Vec<(Stream, u64, Event)>,
    notices: Vec<Notice>,
}

impl GatewayHandler for Collect {
    fn on_event(&mut self, stream: Stream, stream_seq: u64, recv_ts: UnixNanos, event: &Event) {
        assert!(recv_ts.0 > 0);
        self.events.push((stream, stream_seq, *event));
    }
    fn on_notice(&mut self, _stream: Stream, _source: Option<SocketAddr>, notice: &Notice) {
        self.notices.push(*notice);
    }
}

fn config(orders: InboundConfig) -> GatewayConfig {
    GatewayConfig {
        inbound: [None, Some(orders), None],
        outbound: None,
        receiver: ReceiverConfig::default(),
        socket_recv_buffer_bytes: Some(1 << 20),
        socket_send_buffer_bytes: None,
    }
}

fn poll_until<R: feed_gateway::Retention>(
    gateway: &mut Gateway<R>,
    handler: &mut Collect,
    mut done: impl FnMut(&mut Collect) -> bool,
) {
    let start = Instant::now();
    while !done(handler) {
        assert!(start.elapsed() < Duration::from_secs(5), "timed out");
        gateway
            .poll(Some(Duration::from_millis(5)), handler)
            .unwrap();
    }
}

#[test]
fn a_gap_is_re_requested_and_filled_over_loopback() {
    let venue = UdpSocket::bind(localhost()).unwrap();
    venue
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut orders = InboundConfig::unicast(localhost());
    orders.retrans = Some(venue.local_addr().unwrap());
    orders.allow = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    let mut gateway = Gateway::new(config(orders), NoRetention).unwrap();
    let to = gateway.local_addr(Stream::Orders).unwrap();
    let mut h = Collect::default();

    venue.send_to(&packet(1, 2), to).unwrap();
    venue.send_to(&packet(5, 2), to).unwrap();
    poll_until(&mut gateway, &mut h, |h| {
        h.events.len() >= 2 && !h.notices.is_empty()
    });
    poll_until(&mut gateway, &mut h, |_| true);
    let mut buf = [0u8; 64];
    let (len, from) = venue.recv_from(&mut buf).unwrap();
    assert_eq!(from, to, "re-requests come from the stream's own socket");
    let request = ReRequest::decode(&buf[..len]).unwrap();
    assert_eq!((request.sequence, request.count), (3, 2));
    assert!(gateway.receiver().stream(Stream::Orders).alarm());
    venue.send_to(&packet(3, 2), from).unwrap();
    poll_until(&mut gateway, &mut h, |h| h.events.len() == 6);
    let seqs: Vec<u64> = h.events.iter().map(|e| e.1).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    assert!(h
        .events
        .iter()
        .all(|(s, seq, e)| *s == Stream::Orders && *e == fill(*seq)));
    assert!(!gateway.receiver().alarm());
    assert_eq!(
        gateway.counters().rerequests_sent[Stream::Orders.index()],
        1
    );
}

#[test]
fn sources_outside_the_allowlist_are_dropped_and_counted() {
    let venue = UdpSocket::bind(localhost()).unwrap();
    let mut orders = InboundConfig::unicast(localhost());
    orders.allow = vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))];
    let mut gateway = Gateway::new(config(orders), NoRetention).unwrap();
    let to = gateway.local_addr(Stream::Orders).unwrap();
    venue.send_to(&packet(1, 1), to).unwrap();
    let mut h = Collect::default();
    let start = Instant::now();
    while gateway.counters().rejected_sources[Stream::Orders.index()] == 0 {
        assert!(start.elapsed() < Duration::from_secs(5));
        gateway
            .poll(Some(Duration::from_millis(5)), &mut h)
            .unwrap();
    }
    assert!(h.events.is_empty());
}

#[test]
fn outbound_messages_reach_every_destination_and_rerequests_are_answered() {
    let keepers = [
        UdpSocket::bind(localhost()).unwrap(),
        UdpSocket::bind(localhost()).unwrap(),
    ];
    for keeper in &keepers {
        keeper
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
    }
    let session = Session::new("LIQD").unwrap();
    let config = GatewayConfig {
        inbound: [None, None, None],
        outbound: Some(OutboundConfig {
            bind: localhost(),
            destinations: keepers.iter().map(|k| k.local_addr().unwrap()).collect(),
            publisher: PublisherConfig::outbound(session),
        }),
        receiver: ReceiverConfig::default(),
        socket_recv_buffer_bytes: None,
        socket_send_buffer_bytes: None,
    };
    let mut gateway = Gateway::new(config, RingRetention::new(128, 1400)).unwrap();
    let halt = Halt {
        ts: UnixNanos(1),
        seq: Seq(2),
        instrument: InstrumentId(3),
        reason: HaltReason::Stale,
        on: true,
    };
    let origin = Origin {
        stream: SourceStream::MarketData,
        seq: 9,
    };
    assert_eq!(gateway.publish_halt(&halt, origin), Ok(1));
    assert_eq!(gateway.publish_halt(&halt, origin), Ok(2));
    gateway.flush();
    let mut buf = [0u8; 2048];
    for keeper in &keepers {
        let (len, _) = keeper.recv_from(&mut buf).unwrap();
        let packet = parse_packet(&buf[..len]).unwrap();
        assert_eq!((packet.sequence, packet.count), (1, 2));
        let first = packet.messages().next().unwrap();
        assert_eq!(
            decode_outbound(first),
            Ok(OutboundMessage::Halt(feed_gateway::wire::HaltMessage {
                halt,
                origin
            }))
        );
    }
    let request = ReRequest {
        session,
        sequence: 2,
        count: 1,
    };
    keepers[0]
        .send_to(&request.encode(), gateway.outbound_local_addr().unwrap())
        .unwrap();
    keepers[0]
        .send_to(b"not a re-request", gateway.outbound_local_addr().unwrap())
        .unwrap();
    let mut h = Collect::default();
    let start = Instant::now();
    while gateway.counters().bad_rerequests == 0 {
        assert!(start.elapsed() < Duration::from_secs(5));
        gateway
            .poll(Some(Duration::from_millis(5)), &mut h)
            .unwrap();
    }
    let (len, _) = keepers[0].recv_from(&mut buf).unwrap();
    let packet = parse_packet(&buf[..len]).unwrap();
    assert_eq!((packet.sequence, packet.count), (2, 1));
    assert_eq!(gateway.publisher().unwrap().counters().resent_messages, 1);
}

#[test]
fn datagrams_queued_on_several_sockets_are_handled_in_arrival_order() {
    let venue = UdpSocket::bind(localhost()).unwrap();
    let mut config = config(InboundConfig::unicast(localhost()));
    config.inbound[Stream::MarketData.index()] = Some(InboundConfig::unicast(localhost()));
    let mut gateway = Gateway::new(config, NoRetention).unwrap();
    let md_to = gateway.local_addr(Stream::MarketData).unwrap();
    let orders_to = gateway.local_addr(Stream::Orders).unwrap();
    let mark = |seq: u64| {
        let mut builder = PacketBuilder::new(Session::new("MD").unwrap(), 1472);
        builder.start(seq);
        let mut buf = [0u8; INBOUND_BYTES_MAX];
        let event = Event::Mark(engine::MarkPrice {
            ts: UnixNanos(seq),
            instrument: InstrumentId(1),
            price: Fixed8(1),
        });
        let len = encode_event(&event, &mut buf).unwrap();
        assert!(builder.push(&buf[..len]));
        builder.finish().to_vec()
    };
    // Sent before the gateway reads anything: md 1..=20, orders 1, md
    // 21..=40, orders 2..=3, md 41..=300 (more than one poll's worth).
    let mut sent = Vec::new();
    for seq in 1..=20 {
        venue.send_to(&mark(seq), md_to).unwrap();
        sent.push((Stream::MarketData, seq));
    }
    venue.send_to(&packet(1, 1), orders_to).unwrap();
    sent.push((Stream::Orders, 1));
    for seq in 21..=40 {
        venue.send_to(&mark(seq), md_to).unwrap();
        sent.push((Stream::MarketData, seq));
    }
    venue.send_to(&packet(2, 2), orders_to).unwrap();
    sent.push((Stream::Orders, 2));
    sent.push((Stream::Orders, 3));
    for seq in 41..=300 {
        venue.send_to(&mark(seq), md_to).unwrap();
        sent.push((Stream::MarketData, seq));
    }
    std::thread::sleep(Duration::from_millis(50));
    let mut h = Collect::default();
    poll_until(&mut gateway, &mut h, |h| h.events.len() == sent.len());
    let got: Vec<(Stream, u64)> = h.events.iter().map(|(s, seq, _)| (*s, *seq)).collect();
    assert_eq!(got, sent);
}

#[test]
fn an_inbound_stream_joins_its_multicast_group() {
    let port = UdpSocket::bind(localhost())
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let group = Ipv4Addr::new(239, 255, 42, 7);
    let orders = InboundConfig {
        bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
        multicast: Some(feed_gateway::Multicast {
            group,
            interface: Ipv4Addr::LOCALHOST,
        }),
        allow: Vec::new(),
        retrans: None,
    };
    let mut gateway = Gateway::new(config(orders), NoRetention).unwrap();
    let sender = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .unwrap();
    sender.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    sender.set_multicast_loop_v4(true).unwrap();
    let to = SocketAddr::new(IpAddr::V4(group), port);
    sender.send_to(&packet(1, 3), &to.into()).unwrap();
    let mut h = Collect::default();
    poll_until(&mut gateway, &mut h, |h| h.events.len() == 3);
    assert_eq!(
        h.events.iter().map(|e| e.1).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}
