//! Steady state allocates nothing: a counting global allocator around the
//! receiver, the publisher and the socket loop after warm-up.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use engine::{
    AccountId, Dec8, Event, Fill, Fixed8, Halt, HaltReason, InstrumentId, Leg, Liquidation, Seq,
    UnixNanos,
};
use feed_gateway::wire::{
    encode_event, Origin, PacketBuilder, ReRequest, Session, Stream, INBOUND_BYTES_MAX,
};
use feed_gateway::{
    EventHandler, Gateway, GatewayConfig, GatewayHandler, InboundConfig, NoRetention, Notice,
    OutboundConfig, Publisher, PublisherConfig, Receiver, ReceiverConfig, RingRetention,
};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

#[derive(Default)]
struct Count {
    events: u64,
    notices: u64,
    last_ts: u64,
}

impl EventHandler for Count {
    fn on_event(&mut self, _stream: Stream, _seq: u64, event: &Event) {
        self.events += 1;
        self.last_ts = event.ts().0;
    }
    fn on_notice(&mut self, _stream: Stream, _notice: &Notice) {
        self.notices += 1;
    }
}

impl GatewayHandler for Count {
    fn on_event(&mut self, _stream: Stream, _seq: u64, _recv_ts: UnixNanos, event: &Event) {
        self.events += 1;
        self.last_ts = event.ts().0;
    }
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

/// In order, a duplicate, a gap held then filled, a malformed datagram.
fn traffic(first: u64) -> Vec<Vec<u8>> {
    let mut bad = packet(first, 1);
    bad.push(0);
    vec![
        packet(first, 4),
        packet(first, 4),
        packet(first + 8, 4),
        packet(first + 4, 4),
        bad,
    ]
}

#[test]
fn steady_state_allocates_nothing() {
    // Receiver.
    let mut receiver = Receiver::new(&ReceiverConfig::default());
    receiver.stream_mut(Stream::Orders).set_rerequest(true);
    let mut handler = Count::default();
    let warm = traffic(1);
    let steady: Vec<Vec<u8>> = (0..50).flat_map(|i| traffic(13 + 12 * i)).collect();
    for datagram in &warm {
        receiver.on_datagram(Stream::Orders, datagram, 0, &mut handler);
    }
    let before = allocations();
    for (i, datagram) in steady.iter().enumerate() {
        receiver.on_datagram(Stream::Orders, datagram, i as u64 * 1000, &mut handler);
        receiver.poll(i as u64 * 1000, &mut handler);
        let _ = receiver.take_rerequest(Stream::Orders);
    }
    assert_eq!(allocations() - before, 0, "receiver");
    assert_eq!(handler.events, 12 + 50 * 12);

    // Publisher.
    let mut publisher = Publisher::new(
        PublisherConfig::outbound(Session::new("LIQD").unwrap()),
        RingRetention::new(1024, 1400),
    )
    .unwrap();
    let halt = Halt {
        ts: UnixNanos(1),
        seq: Seq(1),
        instrument: InstrumentId(1),
        reason: HaltReason::Stale,
        on: true,
    };
    let liquidation = Liquidation {
        ts: UnixNanos(1),
        seq: Seq(1),
        account: AccountId(1),
        equity: Dec8(1),
        maint_margin: Dec8(2),
        partial: false,
        bankrupt: false,
        escalation: false,
    };
    let legs = [Leg {
        instrument: InstrumentId(1),
        qty: Dec8(-1),
        limit_price: Dec8(1),
    }; 100];
    let mut bytes_sent = 0usize;
    let before = allocations();
    for i in 0..200u64 {
        let mut send = |d: &[u8]| bytes_sent += d.len();
        publisher
            .push_halt(&halt, Origin::CONFIG, i, &mut send)
            .unwrap();
        publisher
            .push_liquidation(&liquidation, &legs, Origin::CONFIG, i, &mut send)
            .unwrap();
        publisher.flush(i, &mut send);
        publisher.tick(i * 1_000_000_000, &mut send);
        let request = ReRequest {
            session: Session::new("LIQD").unwrap(),
            sequence: publisher.next_seq().saturating_sub(5).max(1),
            count: 5,
        };
        publisher.answer(&request, &mut send);
    }
    assert_eq!(allocations() - before, 0, "publisher");
    assert!(bytes_sent > 0);

    // The socket loop.
    let localhost = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    let sink = UdpSocket::bind(localhost).unwrap();
    let config = GatewayConfig {
        inbound: [None, Some(InboundConfig::unicast(localhost)), None],
        outbound: Some(OutboundConfig {
            bind: localhost,
            destinations: vec![sink.local_addr().unwrap()],
            publisher: PublisherConfig::outbound(Session::new("LIQD").unwrap()),
        }),
        receiver: ReceiverConfig::default(),
        socket_recv_buffer_bytes: Some(1 << 20),
        socket_send_buffer_bytes: None,
    };
    let mut gateway = Gateway::new(config, NoRetention).unwrap();
    let to = gateway.local_addr(Stream::Orders).unwrap();
    let venue = UdpSocket::bind(localhost).unwrap();
    let mut handler = Count::default();
    for datagram in &warm {
        venue.send_to(datagram, to).unwrap();
    }
    while handler.events < 12 {
        gateway
            .poll(Some(Duration::from_millis(5)), &mut handler)
            .unwrap();
    }
    gateway.publish_halt(&halt, Origin::CONFIG).unwrap();
    gateway.flush();
    let before = allocations();
    for chunk in steady.chunks(5) {
        for datagram in chunk {
            venue.send_to(datagram, to).unwrap();
        }
        let target = handler.events + 12;
        while handler.events < target {
            gateway
                .poll(Some(Duration::from_millis(5)), &mut handler)
                .unwrap();
        }
        gateway.publish_halt(&halt, Origin::CONFIG).unwrap();
        gateway.flush();
    }
    assert_eq!(allocations() - before, 0, "gateway");
    assert_eq!(handler.events, 12 + 50 * 12);
}
