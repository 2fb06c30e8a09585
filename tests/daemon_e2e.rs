//! `liqd feed` → `liqd run` → `liqd listen` over loopback, as processes:
//! the keeper side sees exactly `liqd replay run`'s outputs, also when the
//! daemon is stopped with SIGTERM or SIGKILL mid-stream and restarted (the
//! venue's re-request answers fill what it missed; nothing is applied
//! twice, and the keeper sees exactly what `liqd replay run` gives on the
//! journal), when a proxy between venue and daemon drops, duplicates and
//! reorders datagrams, when the venue starts new sessions while the daemon
//! is down, and with two shards.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use engine::Event;
use replay::jsonl::EventReader;

fn liqd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_liqd"))
}

/// A loopback port free a moment ago (for a child process to bind).
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind")
        .port()
}

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/scenarios")
        .join(name)
}

struct Ports {
    md: u16,
    orders: u16,
    admin: u16,
    rerequests: u16,
    keeper: u16,
    venue_retrans: u16,
    metrics: u16,
}

impl Ports {
    fn new() -> Ports {
        Ports {
            md: free_udp_port(),
            orders: free_udp_port(),
            admin: free_udp_port(),
            rerequests: free_udp_port(),
            keeper: free_udp_port(),
            venue_retrans: free_udp_port(),
            metrics: std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("bind")
                .port(),
        }
    }
}

fn write_config(dir: &Path, ports: &Ports) -> PathBuf {
    write_shard_config(dir, ports, "0/1")
}

/// The test configuration for shard `shard` ("k/n").
fn write_shard_config(dir: &Path, ports: &Ports, shard: &str) -> PathBuf {
    let text = format!(
        r#"
shard = "{shard}"

[streams.md]
listen = "127.0.0.1:{md}"
retransmit = "127.0.0.1:{retrans}"
gap_wait_us = 3000000     # wait for re-request answers rather than skip

[streams.orders]
listen = "127.0.0.1:{orders}"
retransmit = "127.0.0.1:{retrans}"

[streams.admin]
listen = "127.0.0.1:{admin}"
retransmit = "127.0.0.1:{retrans}"

[outbound]
session = "E2ELIQD"
destinations = ["127.0.0.1:{keeper}"]
retransmit_listen = "127.0.0.1:{rerequests}"
heartbeat_interval_ms = 200
status_interval_ms = 300

[journal]
dir = "{data}"
segment_bytes = 1048576

[threads]
engine_idle = "sleep:50"
gateway_idle = "sleep:200"

[limits]
accounts_max = 4096

[rings]
input_slots = 16
output_slots = 16

[metrics]
listen = "127.0.0.1:{metrics}"
status_log_interval_ms = 0
"#,
        metrics = ports.metrics,
        md = ports.md,
        orders = ports.orders,
        admin = ports.admin,
        retrans = ports.venue_retrans,
        keeper = ports.keeper,
        rerequests = ports.rerequests,
        data = dir.join("data").display(),
    );
    let path = dir.join("liqd.toml");
    std::fs::write(&path, text).expect("config");
    path
}

/// A child process killed if the test ends (panics) before it exits.
struct Guard(Option<Child>);

impl Guard {
    fn take(mut self) -> Child {
        self.0.take().expect("child")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running `liqd run`, its stderr lines forwarded to a channel.
struct Daemon {
    child: Guard,
    lines: mpsc::Receiver<String>,
}

impl Daemon {
    fn start(config: &Path) -> Daemon {
        let mut child = liqd()
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("liqd run");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[liqd run] {line}");
                let _ = tx.send(line);
            }
        });
        let daemon = Daemon {
            child: Guard(Some(child)),
            lines,
        };
        wait_for(&daemon.lines, "liqd: running:");
        daemon
    }

    /// SIGKILL: no drain, no snapshot, no final flush.
    fn kill(self) {
        let mut child = self.child.take();
        child.kill().expect("kill -9");
        let status = child.wait().expect("wait");
        assert!(!status.success(), "killed: {status}");
    }

    /// SIGTERM; the daemon must drain, snapshot and exit 0.
    fn terminate(self) {
        let Daemon { child, lines } = self;
        let mut child = child.take();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let line = wait_for(&lines, "liqd: stopped at input seq");
        assert!(line.contains("snapshot"), "{line}");
        let status = child.wait().expect("wait");
        assert!(status.success(), "liqd run exited with {status}");
    }
}

/// The events of a JSONL text, in order.
fn all_events(text: &[u8]) -> Vec<Event> {
    let mut reader = EventReader::new(text, "events");
    let mut events = Vec::new();
    while let Some(event) = reader.read_event().expect("valid JSONL") {
        events.push(event);
    }
    events
}

/// The events of a JSONL text split by the stream that carries them.
fn per_stream(text: &[u8]) -> [Vec<Event>; 3] {
    let mut reader = EventReader::new(text, "events");
    let mut streams: [Vec<Event>; 3] = Default::default();
    while let Some(event) = reader.read_event().expect("valid JSONL") {
        let index = match event {
            Event::Mark(_) | Event::Index(_) => 0,
            Event::Fill(_) | Event::Balance(_) | Event::Funding(_) => 1,
            _ => 2,
        };
        streams[index].push(event);
    }
    streams
}

/// The first line starting with `prefix` (30 s at most).
fn wait_for(lines: &mpsc::Receiver<String>, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) {
            if line.starts_with(prefix) {
                return line;
            }
        }
    }
    panic!("liqd run never printed {prefix:?}");
}

fn listen(ports: &Ports) -> Guard {
    let child = liqd()
        .args([
            "listen",
            "--bind",
            &format!("127.0.0.1:{}", ports.keeper),
            "--retrans",
            &format!("127.0.0.1:{}", ports.rerequests),
            "--no-source",
            "--idle-exit-ms",
            "2500",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("liqd listen");
    Guard(Some(child))
}

fn feed(ports: &Ports, input: &Path, rate: u32, extra: &[&str]) -> Guard {
    feed_session(ports, input, rate, "E2E", extra)
}

/// `liqd feed` with the session prefix `session` (+ M/O/A per stream).
fn feed_session(ports: &Ports, input: &Path, rate: u32, session: &str, extra: &[&str]) -> Guard {
    let child = liqd()
        .arg("feed")
        .arg("--input")
        .arg(input)
        .args([
            "--md",
            &format!("127.0.0.1:{}", ports.md),
            "--orders",
            &format!("127.0.0.1:{}", ports.orders),
            "--admin",
            &format!("127.0.0.1:{}", ports.admin),
            "--retrans-bind",
            &format!("127.0.0.1:{}", ports.venue_retrans),
            "--session",
            session,
            "--rate",
            &rate.to_string(),
            "--linger-ms",
            "4000",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("liqd feed");
    Guard(Some(child))
}

fn replay(path: &Path) -> String {
    let out: Output = liqd()
        .args(["replay", "run"])
        .arg(path)
        .output()
        .expect("liqd replay run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn finish(child: Guard) -> String {
    let out = child.take().wait_with_output().expect("wait");
    assert!(out.status.success(), "exit {}", out.status);
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Every scenario file one after the other: a few hundred events on all
/// three streams with many decisions (whatever they are, `liqd replay run`
/// of the same file is the reference).
fn all_scenarios(dir: &Path) -> PathBuf {
    let mut paths: Vec<_> = std::fs::read_dir(scenario(""))
        .expect("scenarios")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let name = p.display().to_string();
            name.ends_with(".jsonl") && !name.ends_with(".expected.jsonl")
        })
        .collect();
    paths.sort();
    let mut text = String::new();
    // Lines the wire cannot carry (an instrument with 0 or 17 tiers) only
    // exist in JSONL: leave out the files that have them.
    paths
        .retain(|p| !p.ends_with("rejections.jsonl") && !p.ends_with("tier_count_rejection.jsonl"));
    for path in paths {
        text.push_str(&std::fs::read_to_string(path).expect("read"));
    }
    let path = dir.join("all.jsonl");
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn feed_run_listen_equals_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::new();
    let config = write_config(dir.path(), &ports);
    let input = all_scenarios(dir.path());
    let daemon = Daemon::start(&config);
    let keeper = listen(&ports);
    let venue = feed(&ports, &input, 1000, &[]);
    assert!(venue
        .take()
        .wait_with_output()
        .expect("feed")
        .status
        .success());
    // The metrics endpoint answers while running.
    let metrics = scrape_metrics(&ports);
    let events = std::fs::read_to_string(&input)
        .expect("read")
        .lines()
        .count();
    for sample in [
        format!("liqd_events_journaled_total {events}\n"),
        "liqd_drops_total{stream=\"md\",reason=\"source_not_allowed\"} 0\n".to_owned(),
        "liqd_latency_ns{quantile=\"0.99\"}".to_owned(),
    ] {
        assert!(metrics.contains(&sample), "{sample} not in {metrics}");
    }
    // Socket receive (kernel timestamp) → engine done was measured.
    let wire_samples: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("liqd_wire_latency_ns_count "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(wire_samples > 0, "{metrics}");
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("liqd_") && l.contains("latency"))
    {
        eprintln!("{line}");
    }
    daemon.terminate();
    verify(dir.path(), &input, &finish(keeper));
}

/// What the keeper saw is exactly `liqd replay run` of the daemon's
/// journal; every message of every stream is journaled once, in stream
/// order; and when the journal kept the file's cross-stream order (three
/// UDP streams do not promise it), exactly `liqd replay run` of the file.
fn verify(dir: &Path, input: &Path, keeper_view: &str) {
    let data = dir.join("data");
    assert_eq!(keeper_view, replay(&data), "keeper = replay of the journal");
    assert!(keeper_view.lines().count() >= 20, "decisions were made");
    let exported = liqd()
        .args(["journal", "export"])
        .arg(&data)
        .output()
        .expect("export");
    assert!(exported.status.success());
    let file = std::fs::read(input).expect("read");
    assert_eq!(
        per_stream(&exported.stdout),
        per_stream(&file),
        "every message journaled once, in stream order"
    );
    if all_events(&exported.stdout) == all_events(&file) {
        assert_eq!(keeper_view, replay(input), "keeper = replay of the file");
    } else {
        eprintln!("note: the journal's cross-stream order differs from the file's");
    }
}

/// `GET /metrics` from the daemon's endpoint.
fn scrape_metrics(ports: &Ports) -> String {
    use std::io::{Read, Write};
    let mut stream =
        TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], ports.metrics))).expect("connect");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    response
}

#[test]
fn sigterm_mid_stream_and_restart_lose_and_repeat_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::new();
    let config = write_config(dir.path(), &ports);
    let input = all_scenarios(dir.path());
    let events = std::fs::read_to_string(&input)
        .expect("read")
        .lines()
        .count();
    // About 1.5 s of feed at this rate: stop the daemon after ~0.5 s.
    let rate = (events as u32 * 2 / 3).max(10);
    let first = Daemon::start(&config);
    let keeper = listen(&ports);
    let venue = feed(&ports, &input, rate, &[]);
    std::thread::sleep(Duration::from_millis(500));
    first.terminate();
    // Messages sent while it is down are re-requested from the venue.
    let second = Daemon::start(&config);
    assert!(venue
        .take()
        .wait_with_output()
        .expect("feed")
        .status
        .success());
    std::thread::sleep(Duration::from_millis(300));
    second.terminate();
    // Missed messages come back by re-request, stream by stream: the
    // journal (the truth) may order them differently across streams.
    verify(dir.path(), &input, &finish(keeper));
}

/// The venue drops every 5th datagram: the daemon re-requests every gap
/// (orders and admin wait; market data waits up to `gap_wait_us`) and the
/// keeper still sees exactly the replay of the journal, each message
/// journaled once.
#[test]
fn datagram_loss_is_recovered_by_rerequest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::new();
    let config = write_config(dir.path(), &ports);
    let input = all_scenarios(dir.path());
    let daemon = Daemon::start(&config);
    let keeper = listen(&ports);
    let venue = feed(&ports, &input, 1000, &["--drop-every", "5"]);
    assert!(venue
        .take()
        .wait_with_output()
        .expect("feed")
        .status
        .success());
    let metrics = scrape_metrics(&ports);
    let gaps: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("liqd_gaps_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(gaps > 0, "the loss opened gaps: {metrics}");
    daemon.terminate();
    verify(dir.path(), &input, &finish(keeper));
}

/// `liqd replay run DIR` on a shard's journal applies the shard recorded in
/// `liqd-meta.toml`: it prints exactly the decisions that shard published
/// (and not the whole book's).
#[test]
fn replay_of_a_shard_journal_reproduces_that_shard() {
    use daemon::pipeline::{OwnedOutbound, PipelineOptions, VecPublish};
    use daemon::shard::Shard;
    use engine::Sink;

    let dir = tempfile::tempdir().expect("tempdir");
    let input = all_scenarios(dir.path());
    let events = all_events(&std::fs::read(&input).expect("read"));
    let data = dir.path().join("data");
    let shard = Shard { index: 1, count: 2 };
    let options = daemon::startup::DaemonOptions {
        dir: data.clone(),
        journal: daemon::datadir::JournalSettings {
            segment_bytes: 1 << 20,
            flush_every_records: 0,
            flush_interval: Duration::from_millis(20),
        },
        meta: daemon::datadir::Meta {
            shard,
            limits: engine::Limits::default(),
        },
        snapshot_dir: data.join("snapshots"),
        snapshot_retain: 1,
        pipeline: PipelineOptions {
            shard,
            input_slots: 16,
            output_slots: 16,
            engine_core: None,
            engine_idle: daemon::config::Idle::Sleep(Duration::from_micros(20)),
            snapshot_interval_events: 0,
        },
        initial_events: Vec::new(),
    };
    let mut publish = VecPublish::default();
    let metrics = std::sync::Arc::new(daemon::metrics::Metrics::default());
    let mut running = daemon::startup::start(&options, metrics, &mut publish).expect("start");
    let mut next = [1u64; 4];
    for event in &events {
        let stream = match event {
            Event::Mark(_) | Event::Index(_) => journal::SourceStream::MarketData,
            Event::Fill(_) | Event::Balance(_) | Event::Funding(_) => journal::SourceStream::Orders,
            _ => journal::SourceStream::Admin,
        };
        let seq = &mut next[usize::from(stream.code())];
        running
            .pipeline
            .submit(
                stream,
                *seq,
                engine::UnixNanos(1),
                Instant::now(),
                event,
                &mut publish,
            )
            .expect("submit");
        *seq += 1;
    }
    running.stop(&mut publish).expect("stop");
    let mut sink = replay::jsonl::JsonlSink::new(Vec::new());
    for message in &publish.messages {
        match message {
            OwnedOutbound::Halt { halt, .. } => sink.halt(halt),
            OwnedOutbound::Liquidation {
                liquidation, legs, ..
            } => sink.liquidation(liquidation, legs),
            OwnedOutbound::Status { .. } => {}
        }
    }
    let published = String::from_utf8(sink.finish().expect("render")).expect("utf-8");
    assert!(published.lines().count() >= 10, "the shard made decisions");
    assert_eq!(replay(&data), published);
    assert_ne!(
        replay(&input),
        published,
        "another shard's accounts were left out"
    );
    // The debugging commands do not apply shards: they refuse a shard's
    // journal instead of reporting decisions the shard never made.
    let data_str = data.to_str().expect("utf-8");
    for args in [
        &["replay", "verify", data_str][..],
        &["replay", "inspect", data_str, "--account", "1"][..],
        &["journal", "snapshot", data_str][..],
    ] {
        let out = liqd().args(args).output().expect("liqd");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("journal of shard 1/2"),
            "{args:?}: {stderr}"
        );
    }
}

/// Every record of the output journal in `data/output`: sequences dense
/// from 1 (no duplicate, no hole), and its decisions (statuses left out)
/// rendered as `liqd replay run` prints them.
fn output_journal_decisions(data: &Path) -> String {
    use engine::Sink;
    use journal::OutputBody;
    let reader = journal::OutputReader::open(data.join("output")).expect("output journal");
    let mut sink = replay::jsonl::JsonlSink::new(Vec::new());
    for (expected_seq, record) in (1..).zip(reader.iter()) {
        let record = record.expect("record").to_owned();
        assert_eq!(record.seq.0, expected_seq, "output sequences are dense");
        match &record.output {
            OutputBody::Halt(halt) => sink.halt(halt),
            OutputBody::Liquidation { liquidation, legs } => sink.liquidation(liquidation, legs),
            OutputBody::Status(_) => {}
        }
    }
    String::from_utf8(sink.finish().expect("render")).expect("utf-8")
}

#[test]
fn sigkill_mid_stream_and_restart_lose_and_repeat_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::new();
    let config = write_config(dir.path(), &ports);
    let input = all_scenarios(dir.path());
    let events = std::fs::read_to_string(&input)
        .expect("read")
        .lines()
        .count();
    // About 1.5 s of feed at this rate: kill the daemon after ~0.5 s.
    let rate = (events as u32 * 2 / 3).max(10);
    let first = Daemon::start(&config);
    let keeper = listen(&ports);
    let venue = feed(&ports, &input, rate, &[]);
    std::thread::sleep(Duration::from_millis(500));
    first.kill();
    let data = dir.path().join("data");
    let journaled_at_kill = String::from_utf8(
        liqd()
            .args(["journal", "export"])
            .arg(&data)
            .output()
            .expect("export")
            .stdout,
    )
    .expect("utf-8")
    .lines()
    .count();
    assert!(
        journaled_at_kill > 0 && journaled_at_kill < events,
        "killed mid-stream: {journaled_at_kill} of {events} journaled"
    );
    // Restarted on the same journal (no snapshot: a full replay of it).
    let second = Daemon::start(&config);
    assert!(venue
        .take()
        .wait_with_output()
        .expect("feed")
        .status
        .success());
    std::thread::sleep(Duration::from_millis(300));
    second.terminate();
    // The output journal: dense, no duplicate, exactly the replay of the
    // input journal (decisions made once across the kill).
    assert_eq!(output_journal_decisions(&data), replay(&data));
    verify(dir.path(), &input, &finish(keeper));
}

/// What a [`Proxy`] did to the datagrams it carried.
#[derive(Clone, Copy, Debug, Default)]
struct ProxyCounts {
    received: u64,
    dropped: u64,
    duplicated: u64,
    reordered: u64,
}

/// A UDP proxy between the venue and one of the daemon's inbound sockets,
/// with a seeded policy per datagram: drop (8 %), send twice (8 %), hold
/// back and send after the next one (8 %; flushed after 30 ms of quiet),
/// else forward. Re-request answers go from the venue straight to the
/// daemon's socket (the daemon sends re-requests from it), not through here.
struct Proxy {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<ProxyCounts>,
}

impl Proxy {
    fn start(listen_port: u16, to_port: u16, seed: u64) -> Proxy {
        use std::sync::atomic::{AtomicBool, Ordering};
        let socket = UdpSocket::bind(("127.0.0.1", listen_port)).expect("proxy bind");
        socket
            .set_read_timeout(Some(Duration::from_millis(30)))
            .expect("timeout");
        let to = SocketAddr::from(([127, 0, 0, 1], to_port));
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            // xorshift64*: the same seed, the same decisions per datagram.
            let mut state = seed | 1;
            let mut roll = move || {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) % 100
            };
            let mut counts = ProxyCounts::default();
            let mut held: Option<Vec<u8>> = None;
            let mut buf = [0u8; 2048];
            while !stopping.load(Ordering::Acquire) {
                let len = match socket.recv_from(&mut buf) {
                    Ok((len, _)) => len,
                    Err(_) => {
                        // Quiet: let a held datagram go.
                        if let Some(datagram) = held.take() {
                            socket.send_to(&datagram, to).expect("send");
                        }
                        continue;
                    }
                };
                counts.received += 1;
                let datagram = &buf[..len];
                match roll() {
                    0..=7 => counts.dropped += 1,
                    8..=15 => {
                        counts.duplicated += 1;
                        socket.send_to(datagram, to).expect("send");
                        socket.send_to(datagram, to).expect("send");
                    }
                    16..=23 if held.is_none() => {
                        counts.reordered += 1;
                        held = Some(datagram.to_vec());
                        continue;
                    }
                    _ => {
                        socket.send_to(datagram, to).expect("send");
                    }
                }
                if let Some(datagram) = held.take() {
                    socket.send_to(&datagram, to).expect("send");
                }
            }
            counts
        });
        Proxy { stop, thread }
    }

    fn stop(self) -> ProxyCounts {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        self.thread.join().expect("proxy thread")
    }
}

/// A proxy per inbound stream drops, duplicates and reorders datagrams:
/// every gap is recovered by re-request (market data waits up to
/// `gap_wait_us`), every message is journaled exactly once in stream order,
/// and the keeper sees the replay of the journal (of the file when the
/// journal kept its cross-stream order).
#[test]
fn proxy_loss_duplication_and_reordering_are_recovered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::new();
    let config = write_config(dir.path(), &ports);
    let input = all_scenarios(dir.path());
    let daemon = Daemon::start(&config);
    let keeper = listen(&ports);
    let venue_side = Ports::new();
    let proxies = [
        (venue_side.md, ports.md, 0x5EED_0001),
        (venue_side.orders, ports.orders, 0x5EED_0002),
        (venue_side.admin, ports.admin, 0x5EED_0003),
    ]
    .map(|(from, to, seed)| Proxy::start(from, to, seed));
    // The venue sends to the proxies; its re-request socket is the one the
    // daemon is configured with.
    let venue_ports = Ports {
        venue_retrans: ports.venue_retrans,
        ..venue_side
    };
    let venue = feed(&venue_ports, &input, 1000, &[]);
    assert!(venue
        .take()
        .wait_with_output()
        .expect("feed")
        .status
        .success());
    let counts = proxies.map(Proxy::stop);
    eprintln!("proxy: {counts:?}");
    for what in [
        |c: &ProxyCounts| c.dropped,
        |c: &ProxyCounts| c.duplicated,
        |c: &ProxyCounts| c.reordered,
    ] {
        assert!(counts.iter().map(what).sum::<u64>() > 0, "{counts:?}");
    }
    let metrics = scrape_metrics(&ports);
    let total = |prefix: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert!(total("liqd_gaps_total{") > 0, "gaps opened: {metrics}");
    assert!(
        total("liqd_rerequests_total{") > 0,
        "re-requested: {metrics}"
    );
    assert_eq!(total("liqd_gap_skipped_messages_total{"), 0, "{metrics}");
    daemon.terminate();
    verify(dir.path(), &input, &finish(keeper));
}

/// The venue ends its sessions and starts new ones while the daemon is
/// down: the restart resumes in the recorded sessions
/// (`liqd-sessions.toml`), takes the new ones as new (from message 1, by
/// re-request) instead of counting their first messages as duplicates of
/// the old ones, and every message of both sessions is journaled once.
#[test]
fn new_venue_sessions_while_down_are_received_from_message_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::new();
    let config = write_config(dir.path(), &ports);
    let input = all_scenarios(dir.path());
    let text = std::fs::read_to_string(&input).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    let (first_half, second_half) = lines.split_at(lines.len() / 2);
    let write = |name: &str, lines: &[&str]| {
        let path = dir.path().join(name);
        std::fs::write(&path, lines.join("\n") + "\n").expect("write");
        path
    };
    let (input_a, input_b) = (write("a.jsonl", first_half), write("b.jsonl", second_half));
    let first = Daemon::start(&config);
    let keeper = listen(&ports);
    let venue = feed_session(&ports, &input_a, 2000, "SESSA", &[]);
    assert!(venue.take().wait().expect("feed").success());
    first.terminate();
    let data = dir.path().join("data");
    let recorded = std::fs::read_to_string(data.join("liqd-sessions.toml")).expect("sessions");
    assert!(recorded.contains("# SESSAO"), "{recorded}");
    // Session B is sent (and lingers) while the daemon is down; the
    // restart sees its heartbeats, a new session, and re-requests from 1.
    let venue = feed_session(&ports, &input_b, 2000, "SESSB", &[]);
    std::thread::sleep(Duration::from_millis(800));
    let second = Daemon::start(&config);
    assert!(venue.take().wait().expect("feed").success());
    second.terminate();
    let recorded = std::fs::read_to_string(data.join("liqd-sessions.toml")).expect("sessions");
    for name in ["SESSBM", "SESSBO", "SESSBA"] {
        assert!(recorded.contains(&format!("# {name}")), "{recorded}");
    }
    verify(dir.path(), &input, &finish(keeper));
}

/// Each input (by its stream and stream sequence) → the liquidations it
/// triggered, from a data directory's journals.
type ByInput = std::collections::BTreeMap<(u8, u64), std::collections::BTreeSet<String>>;

/// The input journal's (stream, stream seq) in journal order, and its
/// events.
fn journal_inputs(data: &Path) -> (Vec<(u8, u64)>, Vec<Event>) {
    let reader = journal::InputReader::open(data).expect("input journal");
    let mut keys = Vec::new();
    let mut events = Vec::new();
    for record in reader.iter() {
        let record = record.expect("record");
        let input = record.input();
        keys.push((
            input.src_stream.to_native().code(),
            input.src_seq.to_native(),
        ));
        events.push(record.event());
    }
    (keys, events)
}

/// The liquidations in a data directory's output journal, by input.
fn journaled_liquidations(data: &Path, keys: &[(u8, u64)]) -> ByInput {
    let reader = journal::OutputReader::open(data.join("output")).expect("output journal");
    let mut out = ByInput::new();
    for record in reader.iter() {
        let record = record.expect("record").to_owned();
        if let journal::OutputBody::Liquidation { liquidation, legs } = record.output {
            let key = keys[usize::try_from(record.input_seq.0 - 1).expect("seq")];
            out.entry(key)
                .or_default()
                .insert(format!("{liquidation:?} {legs:?}"));
        }
    }
    out
}

/// Two `liqd run` shards ("0/2", "1/2"), each fed the same file by its own
/// `liqd feed` over loopback: together they emit exactly the liquidations
/// of one unsharded engine over the same arrivals (as sets per input).
#[test]
fn two_shards_over_loopback_equal_one_unsharded_daemon() {
    use engine::MarginEngine;
    let dir = tempfile::tempdir().expect("tempdir");
    let input = all_scenarios(dir.path());
    let mut shards = Vec::new();
    for index in 0..2 {
        let shard_dir = dir.path().join(format!("shard{index}"));
        std::fs::create_dir_all(&shard_dir).expect("mkdir");
        let ports = Ports::new();
        let config = write_shard_config(&shard_dir, &ports, &format!("{index}/2"));
        let daemon = Daemon::start(&config);
        shards.push((shard_dir, ports, daemon));
    }
    let venues: Vec<Guard> = shards
        .iter()
        .map(|(_, ports, _)| feed(ports, &input, 1000, &[]))
        .collect();
    for venue in venues {
        assert!(venue.take().wait().expect("feed").success());
    }
    let mut journals = Vec::new();
    for (shard_dir, _, daemon) in shards {
        daemon.terminate();
        let data = shard_dir.join("data");
        // Each shard = the replay of its journal (with its filter).
        assert_eq!(output_journal_decisions(&data), replay(&data));
        journals.push(data);
    }
    let (keys, events) = journal_inputs(&journals[0]);
    let (keys_1, _) = journal_inputs(&journals[1]);
    assert_eq!(
        per_stream_keys(&keys),
        per_stream_keys(&keys_1),
        "both shards journal every message once, in stream order"
    );
    if keys != keys_1 {
        // Three UDP streams do not promise cross-stream order: the shards'
        // arrivals differ, so their union is not one engine's outputs.
        eprintln!("note: the shards' journals differ in cross-stream order");
        return;
    }
    let mut union = journaled_liquidations(&journals[0], &keys);
    for (key, set) in journaled_liquidations(&journals[1], &keys) {
        let mine = union.entry(key).or_default();
        assert!(mine.is_disjoint(&set), "a liquidation on both shards");
        mine.extend(set);
    }
    let mut engine = engine::Engine::new(engine::Limits {
        accounts_max: 4096,
        ..engine::Limits::default()
    });
    let mut whole = ByInput::new();
    for (i, event) in events.iter().enumerate() {
        let mut sink = engine::VecSink::default();
        let _ = engine.apply(engine::Seq(i as u64 + 1), event, &mut sink);
        for output in sink.outputs {
            if let engine::Output::Liquidation(liquidation, legs) = output {
                whole
                    .entry(keys[i])
                    .or_default()
                    .insert(format!("{liquidation:?} {legs:?}"));
            }
        }
    }
    assert!(whole.len() >= 5, "liquidations were made");
    assert_eq!(union, whole, "shards together = one unsharded engine");
}

/// Per stream code, the stream sequences in order.
fn per_stream_keys(keys: &[(u8, u64)]) -> [Vec<u64>; 4] {
    let mut out: [Vec<u64>; 4] = Default::default();
    for &(stream, seq) in keys {
        out[usize::from(stream)].push(seq);
    }
    out
}
