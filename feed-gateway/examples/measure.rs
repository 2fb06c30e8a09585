//! Rough figures for the README: decode, receive and publish cost per
//! message, and loopback one-way latency through the mio gateway (epoll
//! wait vs busy poll). Run in release:
//!
//! ```text
//! cargo run --release -p feed-gateway --example measure
//! ```

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use engine::{
    AccountId, Event, Fill, Fixed8, Halt, HaltReason, InstrumentId, MarkPrice, Seq, UnixNanos,
};
use feed_gateway::net::system_now_ns;
use feed_gateway::wire::{
    decode_event, encode_event, Origin, PacketBuilder, Session, Stream, INBOUND_BYTES_MAX,
};
use feed_gateway::{
    EventHandler, Gateway, GatewayConfig, GatewayHandler, InboundConfig, NoRetention, Publisher,
    PublisherConfig, Receiver, ReceiverConfig,
};

fn mark(i: u64) -> Event {
    Event::Mark(MarkPrice {
        ts: UnixNanos(i),
        instrument: InstrumentId((i % 50) as u32),
        price: Fixed8(6_500_000_000_000 + i as i64),
    })
}

fn fill(i: u64) -> Event {
    Event::Fill(Fill {
        ts: UnixNanos(i),
        account: AccountId(i),
        instrument: InstrumentId(1),
        qty: Fixed8(-5),
        price: Fixed8(7),
        fee: Fixed8(0),
        fill_id: i,
    })
}

struct Sum(u64);

impl EventHandler for Sum {
    fn on_event(&mut self, _stream: Stream, seq: u64, event: &Event) {
        self.0 = self.0.wrapping_add(seq ^ event.ts().0);
    }
}

fn datagrams(make: fn(u64) -> Event, messages: u64) -> Vec<Vec<u8>> {
    let mut builder = PacketBuilder::new(Session::new("M").unwrap(), 1472);
    let mut out = Vec::new();
    builder.start(1);
    let mut buf = [0u8; INBOUND_BYTES_MAX];
    for seq in 1..=messages {
        let len = encode_event(&make(seq), &mut buf).unwrap();
        if !builder.push(&buf[..len]) {
            out.push(builder.finish().to_vec());
            builder.start(seq);
            assert!(builder.push(&buf[..len]));
        }
    }
    out.push(builder.finish().to_vec());
    out
}

fn per_message(label: &str, messages: u64, elapsed: Duration) {
    println!(
        "{label}: {:.1} ns/message ({messages} messages)",
        elapsed.as_nanos() as f64 / messages as f64
    );
}

fn codec_and_state_machines() {
    const N: u64 = 2_000_000;
    for (name, make, stream) in [
        ("mark", mark as fn(u64) -> Event, Stream::MarketData),
        ("fill", fill, Stream::Orders),
    ] {
        let packets = datagrams(make, N);
        let messages: Vec<&[u8]> = packets
            .iter()
            .flat_map(|d| feed_gateway::wire::parse_packet(d).unwrap().messages())
            .collect();
        let start = Instant::now();
        let mut sum = 0u64;
        for message in &messages {
            sum = sum.wrapping_add(decode_event(message).map_or(0, |e| e.ts().0));
        }
        per_message(&format!("decode_event {name}"), N, start.elapsed());
        let mut receiver = Receiver::new(&ReceiverConfig::default());
        let mut handler = Sum(sum);
        let start = Instant::now();
        for datagram in &packets {
            receiver.on_datagram(stream, datagram, 0, &mut handler);
        }
        per_message(
            &format!("receiver {name} (parse + sequence + decode, packed)"),
            N,
            start.elapsed(),
        );
        assert_eq!(receiver.stream(stream).events(), N);
        std::hint::black_box(handler.0);
    }
    let mut publisher = Publisher::new(
        PublisherConfig::outbound(Session::new("LIQD").unwrap()),
        NoRetention,
    )
    .unwrap();
    let halt = Halt {
        ts: UnixNanos(1),
        seq: Seq(1),
        instrument: InstrumentId(1),
        reason: HaltReason::Jump,
        on: true,
    };
    let mut bytes = 0usize;
    let start = Instant::now();
    for i in 0..N {
        publisher
            .push_halt(&halt, Origin::CONFIG, i, &mut |d| bytes += d.len())
            .unwrap();
    }
    publisher.flush(N, &mut |d| bytes += d.len());
    per_message("publisher push_halt (encode + pack)", N, start.elapsed());
    std::hint::black_box(bytes);
}

struct Latency {
    /// Sender stamp → handler.
    samples: Vec<u64>,
    /// Kernel receive time → handler (wake-up and read).
    in_host: Vec<u64>,
}

impl GatewayHandler for Latency {
    fn on_event(&mut self, _stream: Stream, _seq: u64, recv_ts: UnixNanos, event: &Event) {
        let now = system_now_ns();
        self.samples.push(now.saturating_sub(event.ts().0));
        self.in_host.push(now.saturating_sub(recv_ts.0));
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn loopback(busy: bool) {
    const N: u64 = 20_000;
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = GatewayConfig {
        inbound: [Some(InboundConfig::unicast(any)), None, None],
        outbound: None,
        receiver: ReceiverConfig::default(),
        socket_recv_buffer_bytes: Some(4 << 20),
        socket_send_buffer_bytes: None,
    };
    let mut gateway = Gateway::new(config, NoRetention).unwrap();
    let to = gateway.local_addr(Stream::MarketData).unwrap();
    let sender = std::thread::spawn(move || {
        let socket = UdpSocket::bind(any).unwrap();
        let session = Session::new("M").unwrap();
        let mut builder = PacketBuilder::new(session, 1472);
        let mut buf = [0u8; INBOUND_BYTES_MAX];
        for seq in 1..=N {
            builder.start(seq);
            let event = Event::Mark(MarkPrice {
                ts: UnixNanos(system_now_ns()),
                instrument: InstrumentId(1),
                price: Fixed8(1),
            });
            let len = encode_event(&event, &mut buf).unwrap();
            builder.push(&buf[..len]);
            socket.send_to(builder.finish(), to).unwrap();
            // One datagram every ~100 µs; the sender sleeps so that only
            // the gateway spins when busy polling.
            std::thread::sleep(Duration::from_micros(50));
        }
    });
    let mut handler = Latency {
        samples: Vec::with_capacity(N as usize),
        in_host: Vec::with_capacity(N as usize),
    };
    let timeout = if busy {
        Some(Duration::ZERO)
    } else {
        Some(Duration::from_millis(100))
    };
    let start = Instant::now();
    while (handler.samples.len() as u64) < N && start.elapsed() < Duration::from_secs(30) {
        gateway.poll(timeout, &mut handler).unwrap();
    }
    sender.join().unwrap();
    for (what, samples) in [
        ("sender → handler", &handler.samples),
        ("kernel receive → handler", &handler.in_host),
    ] {
        let mut sorted = samples.clone();
        sorted.sort_unstable();
        println!(
            "loopback {what}, {} ({} samples): p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs",
            if busy { "busy poll" } else { "epoll wait" },
            sorted.len(),
            percentile(&sorted, 0.5) as f64 / 1000.0,
            percentile(&sorted, 0.99) as f64 / 1000.0,
            percentile(&sorted, 0.999) as f64 / 1000.0,
        );
    }
}

fn main() {
    codec_and_state_machines();
    loopback(false);
    loopback(true);
}
