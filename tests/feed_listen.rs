//! `liqd feed` and `liqd listen` over loopback UDP, run as processes.

use std::fs;
use std::io::BufReader;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use engine::{
    AccountId, BalanceChange, BalanceKind, Dec8, Event, Fill, Fixed8, Halt, HaltReason,
    InstrumentId, Leg, Liquidation, MarkPrice, Output, Seq, UnixNanos,
};
use feed_gateway::wire::{Origin, ReRequest, Stream};
use feed_gateway::{
    Gateway, GatewayConfig, GatewayHandler, InboundConfig, NoRetention, Publisher, PublisherConfig,
    ReceiverConfig, RingRetention,
};
use journal::{SourceStream, Status};
use replay::jsonl::{output_line, write_event, EventReader, Source};

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// A port free a moment ago (for a child process to bind).
fn free_port() -> u16 {
    UdpSocket::bind(localhost(0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn read_events(path: &Path) -> Vec<Event> {
    let file = fs::File::open(path).unwrap();
    let mut reader = EventReader::new(BufReader::new(file), path.display().to_string());
    let mut events = Vec::new();
    while let Some(event) = reader.read_event().unwrap() {
        events.push(event);
    }
    events
}

#[derive(Default)]
struct Collect {
    events: Vec<(Stream, u64, Event)>,
}

impl GatewayHandler for Collect {
    fn on_event(&mut self, stream: Stream, stream_seq: u64, _recv_ts: UnixNanos, event: &Event) {
        self.events.push((stream, stream_seq, *event));
    }
}

/// Runs `liqd feed FILE` into an in-process gateway; returns what it received.
fn feed_into_gateway(input: &Path, extra: &[&str]) -> (Collect, Gateway<NoRetention>) {
    let retrans = localhost(free_port());
    let inbound = |_| {
        let mut c = InboundConfig::unicast(localhost(0));
        c.retrans = Some(retrans);
        c.allow = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
        Some(c)
    };
    let config = GatewayConfig {
        inbound: [inbound(0), inbound(1), inbound(2)],
        outbound: None,
        receiver: ReceiverConfig::default(),
        socket_recv_buffer_bytes: Some(4 << 20),
        socket_send_buffer_bytes: None,
    };
    let mut gateway = Gateway::new(config, NoRetention).unwrap();
    let addr = |s| gateway.local_addr(s).unwrap().to_string();
    let mut args = vec![
        "feed".to_owned(),
        "--input".to_owned(),
        input.display().to_string(),
        "--md".to_owned(),
        addr(Stream::MarketData),
        "--orders".to_owned(),
        addr(Stream::Orders),
        "--admin".to_owned(),
        addr(Stream::Admin),
        "--retrans-bind".to_owned(),
        retrans.to_string(),
        "--linger-ms".to_owned(),
        "300".to_owned(),
        "--heartbeat-ms".to_owned(),
        "50".to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_liqd"))
        .args(&args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut handler = Collect::default();
    let start = Instant::now();
    let status = loop {
        assert!(start.elapsed() < Duration::from_secs(60), "feed timed out");
        gateway
            .poll(Some(Duration::from_millis(2)), &mut handler)
            .unwrap();
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
    };
    // What is still in the socket buffers.
    for _ in 0..20 {
        gateway
            .poll(Some(Duration::from_millis(5)), &mut handler)
            .unwrap();
    }
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(status.success(), "feed failed: {stderr}");
    (handler, gateway)
}

fn check_streams(expected: &[Event], got: &Collect, gateway: &Gateway<NoRetention>) {
    // Datagrams leave the feed in file order from one socket; the gateway
    // handles datagrams queued on its three sockets in kernel arrival
    // order: without losses the merged order is the file's.
    let lossless = Stream::ALL
        .iter()
        .all(|s| gateway.receiver().stream(*s).counters().gaps == 0);
    if lossless {
        let merged: Vec<Event> = got.events.iter().map(|(_, _, e)| *e).collect();
        assert_eq!(merged, expected, "arrival order across streams");
    }
    for stream in Stream::ALL {
        let want: Vec<Event> = expected
            .iter()
            .filter(|e| Stream::of_event(e) == stream)
            .copied()
            .collect();
        let received: Vec<(u64, Event)> = got
            .events
            .iter()
            .filter(|(s, _, _)| *s == stream)
            .map(|(_, seq, e)| (*seq, *e))
            .collect();
        let r = gateway.receiver().stream(stream);
        if stream == Stream::MarketData && r.counters().skipped > 0 {
            assert!(received.windows(2).all(|w| w[0].0 < w[1].0));
            assert_eq!(
                received.len() as u64 + r.counters().skipped,
                want.len() as u64
            );
            for (seq, event) in &received {
                assert_eq!(*event, want[*seq as usize - 1]);
            }
        } else {
            let seqs: Vec<u64> = received.iter().map(|(s, _)| *s).collect();
            assert_eq!(
                seqs,
                (1..=want.len() as u64).collect::<Vec<_>>(),
                "{stream}"
            );
            let events: Vec<Event> = received.iter().map(|(_, e)| *e).collect();
            assert_eq!(events, want, "{stream}");
        }
        assert!(!r.alarm(), "{stream}");
        assert_eq!(r.malformed_messages_total(), 0);
        assert_eq!(r.counters().malformed_packets_total(), 0);
        assert!(r.sequencer().is_finished(), "{stream}: end of session seen");
    }
}

fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/scenarios")
}

#[test]
fn feed_delivers_every_scenario_event_on_its_stream_in_order() {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("feed_all_scenarios.jsonl");
    let mut text = String::new();
    let mut names: Vec<_> = fs::read_dir(scenarios())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.ends_with(".jsonl")
                && !name.ends_with(".expected.jsonl")
                // 20 tiers: the wire cannot carry it (liqd feed refuses).
                && name != "tier_count_rejection.jsonl"
        })
        .collect();
    names.sort();
    for name in &names {
        text.push_str(&fs::read_to_string(name).unwrap());
    }
    fs::write(&path, &text).unwrap();
    let expected = read_events(&path);
    assert!(expected.len() > 300);
    let (got, gateway) = feed_into_gateway(&path, &["--rate", "20000"]);
    check_streams(&expected, &got, &gateway);
}

#[test]
fn feed_bursts_a_large_file_packed_into_datagrams() {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("feed_burst.jsonl");
    let mut out = Vec::new();
    for i in 0..3000u64 {
        let event = match i % 3 {
            0 => Event::Mark(MarkPrice {
                ts: UnixNanos(i),
                instrument: InstrumentId(1),
                price: Fixed8(1 + i as i64),
            }),
            1 => Event::Fill(Fill {
                ts: UnixNanos(i),
                account: AccountId(i),
                instrument: InstrumentId(1),
                qty: Fixed8(-5),
                price: Fixed8(7),
                fee: Fixed8(0),
                fill_id: i,
            }),
            _ => Event::Balance(BalanceChange {
                ts: UnixNanos(i),
                account: AccountId(i),
                asset: engine::AssetId(0),
                amount: Fixed8(10),
                kind: BalanceKind::Deposit,
                ref_id: i,
            }),
        };
        write_event(&mut out, &event).unwrap();
    }
    fs::write(&path, &out).unwrap();
    let expected = read_events(&path);
    let (got, gateway) = feed_into_gateway(&path, &[]);
    check_streams(&expected, &got, &gateway);
    let orders = gateway.receiver().stream(Stream::Orders).counters();
    assert!(
        orders.packets < 2000,
        "orders were packed ({} packets for 2000 messages)",
        orders.packets
    );
}

#[test]
fn receivers_recover_datagrams_the_feed_drops_by_re_request() {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("feed_lossy.jsonl");
    let mut out = Vec::new();
    for i in 0..600u64 {
        let event = if i % 2 == 0 {
            Event::Fill(Fill {
                ts: UnixNanos(i),
                account: AccountId(i),
                instrument: InstrumentId(1),
                qty: Fixed8(-5),
                price: Fixed8(7),
                fee: Fixed8(0),
                fill_id: i,
            })
        } else {
            Event::Mark(MarkPrice {
                ts: UnixNanos(i),
                instrument: InstrumentId(1),
                price: Fixed8(1 + i as i64),
            })
        };
        write_event(&mut out, &event).unwrap();
    }
    fs::write(&path, &out).unwrap();
    let expected = read_events(&path);
    let (got, gateway) = feed_into_gateway(&path, &["--drop-every", "7"]);
    check_streams(&expected, &got, &gateway);
    let orders = gateway.receiver().stream(Stream::Orders).counters();
    assert!(orders.gaps > 0 && orders.rerequests > 0, "{orders:?}");
}

#[test]
fn feed_refuses_an_instrument_the_wire_cannot_carry() {
    let path = scenarios().join("tier_count_rejection.jsonl");
    let output = Command::new(env!("CARGO_BIN_EXE_liqd"))
        .args([
            "feed",
            "--input",
            &path.display().to_string(),
            "--md",
            "127.0.0.1:9",
            "--orders",
            "127.0.0.1:9",
            "--admin",
            "127.0.0.1:9",
            "--linger-ms",
            "0",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tier_count_rejection.jsonl:"), "{stderr}");
    assert!(stderr.contains("tiers"), "{stderr}");
}

fn spawn_listen(port: u16, retrans: SocketAddr, extra: &[&str]) -> Child {
    let port = port.to_string();
    let retrans = retrans.to_string();
    let mut args = vec![
        "listen",
        "--bind",
        "127.0.0.1:0",
        "--retrans",
        &retrans,
        "--idle-exit-ms",
        "5000",
    ];
    let bind = format!("127.0.0.1:{port}");
    args[2] = &bind;
    args.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_liqd"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn listen_prints_the_outbound_stream_and_recovers_a_lost_datagram() {
    let server = UdpSocket::bind(localhost(0)).unwrap();
    server.set_nonblocking(true).unwrap();
    let port = free_port();
    let to = localhost(port);
    let mut child = spawn_listen(port, server.local_addr().unwrap(), &["--status"]);
    let session = feed_gateway::wire::Session::new("LIQD").unwrap();
    let config = PublisherConfig {
        heartbeat_interval_ns: 20_000_000,
        ..PublisherConfig::outbound(session)
    };
    let mut publisher = Publisher::new(config, RingRetention::new(1024, 1400)).unwrap();
    let origin = Origin {
        stream: SourceStream::Orders,
        seq: 41,
    };
    let mut expected = Vec::new();
    let mut datagrams: Vec<Vec<u8>> = Vec::new();
    let mut send = |d: &[u8]| datagrams.push(d.to_vec());
    for i in 0..5u64 {
        let halt = Halt {
            ts: UnixNanos(i),
            seq: Seq(i + 1),
            instrument: InstrumentId(2),
            reason: HaltReason::Jump,
            on: i % 2 == 0,
        };
        publisher.push_halt(&halt, origin, 0, &mut send).unwrap();
        expected.push(output_line(
            &Output::Halt(halt),
            Some(Source {
                stream: SourceStream::Orders,
                seq: 41,
            }),
        ));
        publisher.flush(0, &mut send);
    }
    let liquidation = Liquidation {
        ts: UnixNanos(9),
        seq: Seq(12),
        account: AccountId(7),
        equity: Dec8::parse("120.5").unwrap(),
        maint_margin: Dec8::parse("130").unwrap(),
        partial: true,
        bankrupt: false,
        escalation: false,
    };
    let legs: Vec<Leg> = (0..70)
        .map(|i| Leg {
            instrument: InstrumentId(i),
            qty: Dec8::parse("-0.2").unwrap(),
            limit_price: Dec8::parse("63000.1").unwrap(),
        })
        .collect();
    publisher
        .push_liquidation(&liquidation, &legs, origin, 0, &mut send)
        .unwrap();
    publisher.flush(0, &mut send);
    expected.push(output_line(
        &Output::Liquidation(liquidation, legs.clone()),
        Some(Source {
            stream: SourceStream::Orders,
            seq: 41,
        }),
    ));
    let status = Status {
        ts: UnixNanos(5),
        seq: Seq(12),
        accounts: 3,
        liquidating: 1,
        halted: 1,
    };
    publisher.push_status(&status, 0, &mut send).unwrap();
    publisher.end_session(0, &mut send);
    expected.push(
        "{\"type\":\"status\",\"ts\":5,\"seq\":12,\"accounts\":3,\"liquidating\":1,\"halted\":1}\n"
            .to_owned(),
    );
    // Give the child time to bind, then send all but datagram 2 (a halt).
    std::thread::sleep(Duration::from_millis(300));
    assert!(datagrams.len() >= 8);
    for (i, datagram) in datagrams.iter().enumerate() {
        if i != 2 {
            server.send_to(datagram, to).unwrap();
        }
    }
    let mut buffer = [0u8; 64];
    let start = Instant::now();
    let exit = loop {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "listen timed out"
        );
        if let Ok((len, from)) = server.recv_from(&mut buffer) {
            let request = ReRequest::decode(&buffer[..len]).unwrap();
            publisher.answer(&request, &mut |d| {
                server.send_to(d, from).unwrap();
            });
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let stdout = std::io::read_to_string(child.stdout.take().unwrap()).unwrap();
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(exit.success(), "{stderr}");
    assert_eq!(stdout, expected.concat(), "stderr: {stderr}");
    assert!(publisher.counters().resent_messages >= 1, "{stderr}");
}

#[test]
fn listen_without_source_matches_replay_output() {
    let server = UdpSocket::bind(localhost(0)).unwrap();
    let port = free_port();
    let child = spawn_listen(port, server.local_addr().unwrap(), &["--no-source"]);
    let mut publisher = Publisher::new(
        PublisherConfig::outbound(feed_gateway::wire::Session::new("L2").unwrap()),
        RingRetention::new(16, 1400),
    )
    .unwrap();
    let halt = Halt {
        ts: UnixNanos(9),
        seq: Seq(13),
        instrument: InstrumentId(1),
        reason: HaltReason::Stale,
        on: true,
    };
    let mut datagrams: Vec<Vec<u8>> = Vec::new();
    let mut send = |d: &[u8]| datagrams.push(d.to_vec());
    publisher
        .push_halt(&halt, Origin::CONFIG, 0, &mut send)
        .unwrap();
    publisher.end_session(0, &mut send);
    std::thread::sleep(Duration::from_millis(300));
    for datagram in &datagrams {
        server.send_to(datagram, localhost(port)).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "{\"type\":\"halt\",\"ts\":9,\"seq\":13,\"instrument\":1,\"reason\":\"stale\",\"on\":true}\n"
    );
}
