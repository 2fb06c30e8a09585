//! Configuration: the shipped example loads; every invalid value is
//! refused with an error that names its key.

use std::path::PathBuf;

use daemon::config::{Config, Idle, LoadError};
use daemon::shard::Shard;
use engine::Event;

fn example_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/liqd.toml")
}

fn example_text() -> String {
    std::fs::read_to_string(example_path()).expect("deploy/liqd.toml")
}

#[test]
fn the_shipped_example_loads() {
    let (config, settings) = Config::load(example_path()).expect("example is valid");
    assert_eq!(settings.shard, Shard::ALL);
    assert_eq!(settings.engine_idle, Idle::Spin);
    assert_eq!(
        settings.gateway_idle,
        Idle::Sleep(std::time::Duration::from_micros(100))
    );
    assert_eq!(config.streams.md.gap_wait_us, Some(500));
    assert_eq!(config.outbound.destinations.len(), 1);
    let kinds: Vec<_> = settings
        .initial_events
        .iter()
        .map(Event::type_name)
        .collect();
    assert_eq!(
        kinds,
        [
            "params",
            "asset",
            "asset",
            "instrument",
            "instrument",
            "risk"
        ]
    );
    // The initial events are ones the engine accepts.
    let mut engine = engine::Engine::new(settings.limits);
    for (i, event) in settings.initial_events.iter().enumerate() {
        let mut sink = engine::VecSink::default();
        engine::MarginEngine::apply(&mut engine, engine::Seq(i as u64 + 1), event, &mut sink)
            .unwrap_or_else(|e| panic!("initial event {i} rejected: {e:?}"));
    }
}

/// Replaces the first occurrence of `from` in the example and validates.
fn error_after(from: &str, to: &str) -> String {
    let text = example_text();
    assert!(text.contains(from), "example lacks {from:?}");
    let edited = text.replacen(from, to, 1);
    match Config::parse(&edited) {
        Err(message) => message,
        Ok(config) => match config.validate() {
            Ok(_) => panic!("{from:?} -> {to:?} was accepted"),
            Err(e) => e.to_string(),
        },
    }
}

#[test]
fn invalid_values_name_their_key() {
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"{ notional_floor = "0",      mmr = "0.004", imr = "0.01" }"#,
            r#"{ notional_floor = "0",      mmr = "0.01", imr = "0.01" }"#,
            "instruments[0].tiers[0].mmr: must be < imr",
        ),
        (
            r#"{ notional_floor = "250000", mmr = "0.01",  imr = "0.04" }"#,
            r#"{ notional_floor = "40000", mmr = "0.01",  imr = "0.04" }"#,
            "instruments[0].tiers[2].notional_floor: must be greater than the previous tier's",
        ),
        (
            r#"{ notional_floor = "50000",  mmr = "0.005", imr = "0.02" }"#,
            r#"{ notional_floor = "50000",  mmr = "0.003", imr = "0.02" }"#,
            "instruments[0].tiers[1].mmr: must not be less than the previous tier's",
        ),
        (
            r#"tiers = [{ notional_floor = "0", mmr = "0.005", imr = "0.01" }]"#,
            r#"tiers = [{ notional_floor = "1", mmr = "0.005", imr = "0.01" }]"#,
            "instruments[1].tiers[0].notional_floor: the first tier's floor must be 0",
        ),
        (
            r#"liquidation_fee = "0.002""#,
            r#"liquidation_fee = "0.005""#,
            "instruments[1].liquidation_fee: must be in [0, tiers[0].mmr)",
        ),
        (
            r#"tiers = [{ notional_floor = "0", mmr = "0.005", imr = "0.01" }]"#,
            "tiers = []",
            "instruments[1].tiers: must list 1 to 16 tiers",
        ),
        (
            r#"multiplier = "1""#,
            r#"multiplier = "0""#,
            "instruments[0].multiplier: must be in (0, 10000]",
        ),
        (
            r#"multiplier = "1""#,
            r#"multiplier = "1.5e3""#,
            "instruments[0].multiplier: \"1.5e3\"",
        ),
        (
            "instrument = 2\n",
            "instrument = 1\n",
            "instruments[1].instrument: 1 is already defined by instruments[0]",
        ),
        (
            r#"asset_weight = "0.8""#,
            r#"asset_weight = "1.1""#,
            "assets[0].asset_weight: must be in (0, 1]",
        ),
        (
            r#"liability_weight = "1.1""#,
            r#"liability_weight = "0.9""#,
            "assets[1].liability_weight: must be in [1, 100]",
        ),
        (
            r#"symbol = "ETH""#,
            r#"symbol = "ETHEREUM-CLASSIC-X""#,
            "assets[0].symbol: symbol longer than 16 characters",
        ),
        (
            "asset = 1\n",
            "asset = 0\n",
            "assets[0].asset_weight: must be exactly 1 for the quote asset 0",
        ),
        (
            r#"warn_ratio = "1.25""#,
            r#"warn_ratio = "0.5""#,
            "params.warn_ratio: must be in [1, 100]",
        ),
        (
            r#"vol_lambda = "0.94""#,
            r#"vol_lambda = "1""#,
            "risk[0].vol_lambda: must be in (0, 1)",
        ),
        (
            "[[risk]]\ninstrument = 1",
            "[[risk]]\ninstrument = 7",
            "risk[0].instrument: 7 is not one of instruments[*].instrument",
        ),
        (
            r#"max_jump = "0.2""#,
            r#"max_jump = "-0.2""#,
            "risk[0].max_jump: must be >= 0",
        ),
        (
            r#"shard = "0/1""#,
            r#"shard = "2/2""#,
            "shard: \"2/2\": k must be less than n",
        ),
        (
            r#"engine_idle = "spin""#,
            r#"engine_idle = "busy""#,
            "threads.engine_idle: must be",
        ),
        (
            "gateway_core = 0",
            "gateway_core = 1",
            "threads.gateway_core: must differ from threads.engine_core",
        ),
        (
            "input_slots = 4096",
            "input_slots = 1000",
            "rings.input_slots: must be a power of two",
        ),
        (
            "positions_per_account_max = 32",
            "positions_per_account_max = 65",
            "limits.positions_per_account_max: must be in 1..=64",
        ),
        (
            "segment_bytes = 67108864",
            "segment_bytes = 1000",
            "journal.segment_bytes: must be a multiple of 4096",
        ),
        (
            "flush_interval_ms = 5",
            "flush_interval_ms = 0",
            "journal.flush_interval_ms: must be at least 1",
        ),
        (
            r#"session = "LIQD000001""#,
            r#"session = "LIQD0000001""#,
            "outbound.session: \"LIQD0000001\" is not at most 10 printable ASCII",
        ),
        (
            r#"destinations = ["239.10.0.9:31001"]"#,
            "destinations = []",
            "outbound.destinations: must list at least one address",
        ),
        (
            "status_interval_ms = 1000",
            "status_interval_ms = 0",
            "outbound.status_interval_ms: must be at least 1",
        ),
        (
            r#"multicast_group = "239.10.0.1""#,
            r#"multicast_group = "10.0.0.1""#,
            "streams.md.multicast_group: 10.0.0.1 is not a multicast address",
        ),
        (
            "hold_packets = 1024",
            "hold_packets = 1024\ngap_wait_us = 5",
            "streams.orders.gap_wait_us: only the market-data stream skips gaps",
        ),
        (
            "retain = 3",
            "retain = 0",
            "snapshot.retain: must be at least 1",
        ),
        // Parse errors: toml names the key.
        ("retain = 3", "retain = 3\nretian = 4", "retian"),
        (
            "input_slots = 4096",
            "input_slots = \"many\"",
            "input_slots",
        ),
    ];
    for (from, to, expected) in cases {
        let message = error_after(from, to);
        assert!(
            message.contains(expected),
            "{from:?} -> {to:?}: expected {expected:?} in {message:?}"
        );
    }
}

#[test]
fn a_missing_file_and_a_bad_one_are_errors_naming_the_file() {
    let missing = Config::load("/nonexistent/liqd.toml").expect_err("missing");
    assert!(matches!(missing, LoadError::Io { .. }));
    assert!(missing.to_string().contains("/nonexistent/liqd.toml"));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    let text = example_text().replacen(r#"mmr = "0.004""#, r#"mmr = "0.04""#, 1);
    std::fs::write(&path, text).expect("write");
    let err = Config::load(&path).expect_err("invalid");
    let message = err.to_string();
    assert!(message.contains("bad.toml"), "{message}");
    assert!(
        message.contains("instruments[0].tiers[0].mmr: must be < imr"),
        "{message}"
    );
}

#[test]
fn a_minimal_file_takes_defaults_key_by_key() {
    let text = r#"
[streams.md]
listen = "127.0.0.1:7001"
[streams.orders]
listen = "127.0.0.1:7002"
[streams.admin]
listen = "127.0.0.1:7003"
[outbound]
session = "LIQD1"
destinations = ["127.0.0.1:7100"]
[journal]
dir = "/tmp/liqd"
[limits]
accounts_max = 4096
[threads]
engine_idle = "yield"
"#;
    let config = Config::parse(text).expect("parses");
    let settings = config.validate().expect("valid");
    assert_eq!(settings.limits.accounts_max, 4096);
    assert_eq!(
        settings.limits.instruments_max,
        engine::Limits::default().instruments_max
    );
    assert_eq!(settings.engine_idle, Idle::Yield);
    assert_eq!(config.rings.input_slots, 4096);
    assert_eq!(config.outbound.status_interval_ms, 1000);
    assert_eq!(settings.snapshot_dir, PathBuf::from("/tmp/liqd/snapshots"));
    // No [params] and no definitions: nothing to journal first.
    assert!(settings.initial_events.is_empty());
}
