//! `liqd run --config FILE.toml`: the daemon's configuration.
//!
//! The file is parsed into plain serde structs ([`Config`]); unknown keys are
//! errors. [`Config::load`] then validates every value and names the key of
//! the first problem (`instruments[2].tiers[0].mmr: must be < imr`), so a
//! daemon never starts on a configuration the engine would refuse.
//! Decimals are TOML strings in the PROTOCOL.md §5 grammar (exact, at most
//! 8 places), never TOML floats.
//!
//! The initial definitions (`params`, `assets`, `instruments`, `risk`) become
//! the first events of a NEW input journal ([`Config::initial_events`]), in
//! that order, journaled with source stream 0 (configuration). On a restart
//! with an existing journal they are not journaled again: the journal is the
//! truth, and governance changes arrive on the admin stream.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use engine::limits::{
    FACTOR_MANTISSA_MAX, LIABILITY_WEIGHT_MANTISSA_MAX, MULTIPLIER_MANTISSA_MAX, PER_ACCOUNT_MAX,
};
use engine::{
    AssetDef, AssetId, EngineParams, Event, Fixed8, InstrumentDef, InstrumentId, Limits,
    RiskParams, Symbol, Tier, Tiers, UnixNanos, TIERS_MAX,
};
use serde::Deserialize;

use crate::shard::Shard;

/// A configuration problem: the key (a path such as `journal.segment_bytes`
/// or `instruments[2].tiers[0].mmr`) and what is wrong with its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Why a configuration file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {error}")]
    Io {
        path: PathBuf,
        /// In the message, not a `source`: printed once in error chains.
        error: std::io::Error,
    },
    /// Not TOML, a key of the wrong type, an unknown key (toml names it).
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {error}")]
    Invalid { path: PathBuf, error: ConfigError },
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `"k/n"`: this daemon owns the accounts with `id mod n = k`.
    #[serde(default = "default_shard")]
    pub shard: String,
    pub streams: Streams,
    pub outbound: Outbound,
    pub journal: JournalConfig,
    #[serde(default)]
    pub snapshot: SnapshotConfig,
    #[serde(default)]
    pub threads: Threads,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub rings: Rings,
    #[serde(default)]
    pub metrics: Metrics,
    /// Absent: no `P` event (the engine's defaults apply until one
    /// arrives on the admin stream).
    pub params: Option<ParamsConfig>,
    #[serde(default)]
    pub assets: Vec<AssetConfig>,
    #[serde(default)]
    pub instruments: Vec<InstrumentConfig>,
    #[serde(default)]
    pub risk: Vec<RiskConfig>,
}

fn default_shard() -> String {
    "0/1".to_owned()
}

/// The three inbound streams.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Streams {
    pub md: StreamConfig,
    pub orders: StreamConfig,
    pub admin: StreamConfig,
    /// SO_RCVBUF of the inbound sockets (none: the system default).
    pub socket_recv_buffer_bytes: Option<usize>,
}

/// One inbound MoldUDP64 stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Local address to bind (`0.0.0.0:PORT` with a multicast group).
    pub listen: SocketAddr,
    /// Join this IPv4 multicast group on `multicast_interface`.
    pub multicast_group: Option<IpAddr>,
    /// Local interface address for the multicast join (default any).
    pub multicast_interface: Option<IpAddr>,
    /// The expected MoldUDP64 session name (≤ 10 printable ASCII); unset:
    /// the first session seen is adopted.
    pub session: Option<String>,
    /// Source addresses allowed to send on this stream (empty: any).
    #[serde(default)]
    pub allow: Vec<IpAddr>,
    /// Where re-requests for this stream go (none: gaps are only counted).
    pub retransmit: Option<SocketAddr>,
    /// Market data only: how long a gap is waited for before skipping it.
    pub gap_wait_us: Option<u64>,
    /// Packets held ahead of an open gap (bounded, preallocated; orders
    /// and admin wait for the gap, market data until `gap_wait_us`).
    #[serde(default = "default_hold_packets")]
    pub hold_packets: usize,
}

fn default_hold_packets() -> usize {
    1024
}

/// The outbound liquidation stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outbound {
    /// MoldUDP64 session name (≤ 10 printable ASCII).
    pub session: String,
    /// Local address the publisher sends from.
    #[serde(default = "default_bind")]
    pub bind: SocketAddr,
    /// Where every outbound packet is sent (keepers, a multicast group).
    pub destinations: Vec<SocketAddr>,
    /// Where re-requests for the outbound stream arrive (answered from the
    /// output journal); none: the publisher's own socket.
    pub retransmit_listen: Option<SocketAddr>,
    #[serde(default = "default_interval_ms")]
    pub heartbeat_interval_ms: u64,
    #[serde(default = "default_interval_ms")]
    pub status_interval_ms: u64,
    #[serde(default = "default_datagram_bytes")]
    pub datagram_bytes_max: usize,
}

fn default_bind() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

fn default_interval_ms() -> u64 {
    1000
}

fn default_datagram_bytes() -> usize {
    1472
}

/// The input and output journals.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    /// Data directory: `input/`, `output/` and `liqd-meta.toml` inside.
    pub dir: PathBuf,
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    /// msync after this many records (0: only by time).
    #[serde(default = "default_flush_records")]
    pub flush_every_records: u64,
    /// The syncer thread flushes at least this often.
    #[serde(default = "default_flush_ms")]
    pub flush_interval_ms: u64,
}

fn default_segment_bytes() -> u64 {
    64 << 20
}

fn default_flush_records() -> u64 {
    4096
}

fn default_flush_ms() -> u64 {
    5
}

/// Engine snapshots.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Default: `{journal.dir}/snapshots`.
    pub dir: Option<PathBuf>,
    /// Take one every this many input events (0: only at shutdown).
    pub interval_events: u64,
    /// Keep the newest this many.
    pub retain: usize,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            dir: None,
            interval_events: 1_000_000,
            retain: 3,
        }
    }
}

/// Threads: pinning and idle strategies.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Threads {
    /// Core to pin the engine thread to (none: not pinned).
    pub engine_core: Option<usize>,
    /// Core to pin the gateway thread to (none: not pinned).
    pub gateway_core: Option<usize>,
    /// `"spin"`, `"yield"` or `"sleep:MICROS"`.
    pub engine_idle: String,
    /// How the gateway waits for its sockets and rings: the same grammar;
    /// `sleep:N` waits in epoll up to N µs (the small-host setting).
    pub gateway_idle: String,
}

impl Default for Threads {
    fn default() -> Self {
        Threads {
            engine_core: None,
            gateway_core: None,
            engine_idle: "spin".to_owned(),
            gateway_idle: "sleep:100".to_owned(),
        }
    }
}

/// Engine capacities ([`engine::Limits`]).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub accounts_max: u32,
    pub instruments_max: u32,
    pub assets_max: u32,
    pub positions_per_account_max: u32,
    pub balances_per_account_max: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = Limits::default();
        LimitsConfig {
            accounts_max: l.accounts_max,
            instruments_max: l.instruments_max,
            assets_max: l.assets_max,
            positions_per_account_max: l.positions_per_account_max,
            balances_per_account_max: l.balances_per_account_max,
        }
    }
}

impl LimitsConfig {
    pub fn limits(&self) -> Limits {
        Limits {
            accounts_max: self.accounts_max,
            instruments_max: self.instruments_max,
            assets_max: self.assets_max,
            positions_per_account_max: self.positions_per_account_max,
            balances_per_account_max: self.balances_per_account_max,
        }
    }
}

/// Ring sizes (slots, powers of two).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rings {
    pub input_slots: usize,
    pub output_slots: usize,
}

impl Default for Rings {
    fn default() -> Self {
        Rings {
            input_slots: 4096,
            output_slots: 4096,
        }
    }
}

/// Observability.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Metrics {
    /// Address of the Prometheus `/metrics` endpoint (none: off).
    pub listen: Option<SocketAddr>,
    /// One status line on stderr this often (0: off).
    pub status_log_interval_ms: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9187))),
            status_log_interval_ms: 10_000,
        }
    }
}

/// Initial engine parameters (`P`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamsConfig {
    pub partial_liquidation: bool,
    pub liquidation_cooldown_ns: u64,
    pub warn_ratio: String,
}

/// An initial asset definition (`A`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetConfig {
    pub asset: u32,
    pub symbol: String,
    pub asset_weight: String,
    pub liability_weight: String,
}

/// An initial instrument definition (`I`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentConfig {
    pub instrument: u32,
    pub symbol: String,
    pub multiplier: String,
    pub liquidation_fee: String,
    pub tiers: Vec<TierConfig>,
}

/// One margin tier.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    pub notional_floor: String,
    pub mmr: String,
    pub imr: String,
}

/// Initial risk parameters of an instrument (`G`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskConfig {
    pub instrument: u32,
    pub vol_lambda: String,
    pub vol_ref: String,
    pub vol_max_factor: String,
    #[serde(default)]
    pub max_staleness_ns: u64,
    #[serde(default = "zero_text")]
    pub max_jump: String,
}

fn zero_text() -> String {
    "0".to_owned()
}

/// How a thread waits when it has nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// Busy-spin (`spin_loop` hint): lowest latency, one core burnt.
    Spin,
    /// `thread::yield_now` between polls.
    Yield,
    /// Sleep this long between empty polls (the gateway: an epoll timeout).
    Sleep(Duration),
}

impl Idle {
    /// `"spin"`, `"yield"` or `"sleep:MICROS"` (MICROS ≥ 1).
    ///
    /// # Errors
    /// A message naming the accepted forms.
    pub fn parse(text: &str) -> Result<Idle, String> {
        match text {
            "spin" => Ok(Idle::Spin),
            "yield" => Ok(Idle::Yield),
            _ => text
                .strip_prefix("sleep:")
                .and_then(|us| us.parse::<u64>().ok())
                .filter(|us| *us > 0)
                .map(|us| Idle::Sleep(Duration::from_micros(us)))
                .ok_or_else(|| {
                    format!("must be \"spin\", \"yield\" or \"sleep:MICROS\" (MICROS ≥ 1), not {text:?}")
                }),
        }
    }

    /// Waits once, as configured.
    #[inline]
    pub fn wait(self) {
        match self {
            Idle::Spin => std::hint::spin_loop(),
            Idle::Yield => std::thread::yield_now(),
            Idle::Sleep(d) => std::thread::sleep(d),
        }
    }
}

/// The values the daemon runs on, derived from a validated [`Config`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub shard: Shard,
    pub limits: Limits,
    pub engine_idle: Idle,
    pub gateway_idle: Idle,
    pub snapshot_dir: PathBuf,
    pub initial_events: Vec<Event>,
}

impl Config {
    /// Reads, parses and validates a configuration file.
    ///
    /// # Errors
    /// The file cannot be read, is not valid TOML for these structs, or a
    /// value is invalid (the error names the key).
    pub fn load(path: impl AsRef<Path>) -> Result<(Config, Settings), LoadError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| LoadError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        let config = Config::parse(&text).map_err(|message| LoadError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        let settings = config.validate().map_err(|error| LoadError::Invalid {
            path: path.to_path_buf(),
            error,
        })?;
        Ok((config, settings))
    }

    /// Parses TOML text (no validation).
    ///
    /// # Errors
    /// toml's message (it names the line and key).
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// Checks every value; returns what the daemon runs on.
    ///
    /// # Errors
    /// The first invalid value, naming its key.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        let shard =
            Shard::parse(&self.shard).map_err(|message| ConfigError::new("shard", message))?;
        self.validate_streams()?;
        self.validate_outbound()?;
        self.validate_journal()?;
        let limits = self.validate_limits()?;
        self.validate_rings()?;
        let engine_idle = Idle::parse(&self.threads.engine_idle)
            .map_err(|m| ConfigError::new("threads.engine_idle", m))?;
        let gateway_idle = Idle::parse(&self.threads.gateway_idle)
            .map_err(|m| ConfigError::new("threads.gateway_idle", m))?;
        if let (Some(e), Some(g)) = (self.threads.engine_core, self.threads.gateway_core) {
            if e == g && engine_idle == Idle::Spin {
                return Err(ConfigError::new(
                    "threads.gateway_core",
                    "must differ from threads.engine_core while the engine spins",
                ));
            }
        }
        if self.snapshot.retain == 0 {
            return Err(ConfigError::new("snapshot.retain", "must be at least 1"));
        }
        let initial_events = self.initial_events(&limits)?;
        let snapshot_dir = self
            .snapshot
            .dir
            .clone()
            .unwrap_or_else(|| self.journal.dir.join("snapshots"));
        Ok(Settings {
            shard,
            limits,
            engine_idle,
            gateway_idle,
            snapshot_dir,
            initial_events,
        })
    }

    fn validate_streams(&self) -> Result<(), ConfigError> {
        let streams = [
            ("md", &self.streams.md),
            ("orders", &self.streams.orders),
            ("admin", &self.streams.admin),
        ];
        for (name, stream) in streams {
            let key = |field: &str| format!("streams.{name}.{field}");
            if let Some(session) = &stream.session {
                check_session(session).map_err(|m| ConfigError::new(key("session"), m))?;
            }
            if let Some(group) = stream.multicast_group {
                if !group.is_multicast() {
                    return Err(ConfigError::new(
                        key("multicast_group"),
                        format!("{group} is not a multicast address"),
                    ));
                }
            }
            if stream.multicast_interface.is_some() && stream.multicast_group.is_none() {
                return Err(ConfigError::new(
                    key("multicast_interface"),
                    "set without streams.*.multicast_group",
                ));
            }
            if name == "md" {
                if stream.gap_wait_us == Some(0) {
                    return Err(ConfigError::new(key("gap_wait_us"), "must be at least 1"));
                }
            } else if stream.gap_wait_us.is_some() {
                return Err(ConfigError::new(
                    key("gap_wait_us"),
                    "only the market-data stream skips gaps (orders and admin never do)",
                ));
            }
            if stream.hold_packets == 0 || stream.hold_packets > 1 << 20 {
                return Err(ConfigError::new(key("hold_packets"), "must be in 1..=2^20"));
            }
        }
        let ports = [
            ("streams.md.listen", self.streams.md.listen),
            ("streams.orders.listen", self.streams.orders.listen),
            ("streams.admin.listen", self.streams.admin.listen),
        ];
        for (i, (key, addr)) in ports.iter().enumerate() {
            for (other, other_addr) in &ports[..i] {
                if addr.port() != 0 && addr == other_addr {
                    return Err(ConfigError::new(*key, format!("same address as {other}")));
                }
            }
        }
        Ok(())
    }

    fn validate_outbound(&self) -> Result<(), ConfigError> {
        let o = &self.outbound;
        check_session(&o.session).map_err(|m| ConfigError::new("outbound.session", m))?;
        if o.destinations.is_empty() {
            return Err(ConfigError::new(
                "outbound.destinations",
                "must list at least one address",
            ));
        }
        if o.heartbeat_interval_ms == 0 {
            return Err(ConfigError::new(
                "outbound.heartbeat_interval_ms",
                "must be at least 1",
            ));
        }
        if o.status_interval_ms == 0 {
            return Err(ConfigError::new(
                "outbound.status_interval_ms",
                "must be at least 1",
            ));
        }
        // The largest message (an `L` with 64 legs, 1332 bytes) must fit one
        // datagram with the 20-byte header and its 2-byte length.
        if !(1354..=65_507).contains(&o.datagram_bytes_max) {
            return Err(ConfigError::new(
                "outbound.datagram_bytes_max",
                "must be in 1354..=65507 (a 64-leg liquidation must fit one datagram)",
            ));
        }
        Ok(())
    }

    fn validate_journal(&self) -> Result<(), ConfigError> {
        let j = &self.journal;
        if j.dir.as_os_str().is_empty() {
            return Err(ConfigError::new("journal.dir", "must not be empty"));
        }
        if !(64 << 10..=2 << 30).contains(&j.segment_bytes) || !j.segment_bytes.is_multiple_of(4096)
        {
            return Err(ConfigError::new(
                "journal.segment_bytes",
                "must be a multiple of 4096 in 64 KiB ..= 2 GiB",
            ));
        }
        if j.flush_interval_ms == 0 {
            return Err(ConfigError::new(
                "journal.flush_interval_ms",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<Limits, ConfigError> {
        let limits = self.limits.limits();
        limits.validate().map_err(|message| {
            // Limits::validate's messages start with the field's name.
            let (field, rest) = message.split_once(' ').unwrap_or(("", message));
            ConfigError::new(format!("limits.{field}"), rest.to_owned())
        })?;
        const _: () = assert!(PER_ACCOUNT_MAX as usize <= crate::ring_types::LEGS_MAX);
        Ok(limits)
    }

    fn validate_rings(&self) -> Result<(), ConfigError> {
        for (key, slots) in [
            ("rings.input_slots", self.rings.input_slots),
            ("rings.output_slots", self.rings.output_slots),
        ] {
            if !slots.is_power_of_two() || !(2..=1 << 20).contains(&slots) {
                return Err(ConfigError::new(
                    key,
                    "must be a power of two in 2..=1048576",
                ));
            }
        }
        Ok(())
    }

    /// The initial definitions as events, in journal order: params (if
    /// given), assets, instruments, risk parameters (each list in file
    /// order), all `ts` 0.
    fn initial_events(&self, limits: &Limits) -> Result<Vec<Event>, ConfigError> {
        let mut events = Vec::new();
        if let Some(params) = &self.params {
            events.push(Event::Params(params_event(params)?));
        }
        let mut assets = BTreeMap::new();
        for (i, a) in self.assets.iter().enumerate() {
            let key = |field: &str| format!("assets[{i}].{field}");
            if let Some(first) = assets.insert(a.asset, i) {
                return Err(ConfigError::new(
                    key("asset"),
                    format!("{} is already defined by assets[{first}]", a.asset),
                ));
            }
            events.push(Event::AssetDef(asset_event(a, &key)?));
        }
        let new_assets = assets.keys().filter(|id| **id != 0).count();
        if new_assets + 1 > limits.assets_max as usize {
            return Err(ConfigError::new(
                "assets",
                format!(
                    "{} assets and the quote asset exceed limits.assets_max = {}",
                    new_assets, limits.assets_max
                ),
            ));
        }
        let mut instruments = BTreeMap::new();
        for (i, d) in self.instruments.iter().enumerate() {
            let key = |field: &str| format!("instruments[{i}].{field}");
            if let Some(first) = instruments.insert(d.instrument, i) {
                return Err(ConfigError::new(
                    key("instrument"),
                    format!(
                        "{} is already defined by instruments[{first}]",
                        d.instrument
                    ),
                ));
            }
            events.push(Event::InstrumentDef(instrument_event(d, &key)?));
        }
        if instruments.len() > limits.instruments_max as usize {
            return Err(ConfigError::new(
                "instruments",
                format!(
                    "{} instruments exceed limits.instruments_max = {}",
                    instruments.len(),
                    limits.instruments_max
                ),
            ));
        }
        for (i, r) in self.risk.iter().enumerate() {
            let key = |field: &str| format!("risk[{i}].{field}");
            if !instruments.contains_key(&r.instrument) {
                return Err(ConfigError::new(
                    key("instrument"),
                    format!("{} is not one of instruments[*].instrument", r.instrument),
                ));
            }
            events.push(Event::Risk(risk_event(r, &key)?));
        }
        Ok(events)
    }
}

fn params_event(p: &ParamsConfig) -> Result<EngineParams, ConfigError> {
    let warn_ratio = decimal(&p.warn_ratio, "params.warn_ratio")?;
    if warn_ratio < Fixed8::ONE || i128::from(warn_ratio.0) > FACTOR_MANTISSA_MAX {
        return Err(ConfigError::new("params.warn_ratio", "must be in [1, 100]"));
    }
    Ok(EngineParams {
        ts: UnixNanos(0),
        partial_liquidation: p.partial_liquidation,
        liquidation_cooldown_ns: p.liquidation_cooldown_ns,
        warn_ratio,
    })
}

fn check_session(session: &str) -> Result<(), String> {
    if session.trim_end_matches(' ').is_empty() {
        return Err("must not be empty".to_owned());
    }
    if session.len() > 10 || !session.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(format!(
            "{session:?} is not at most 10 printable ASCII characters"
        ));
    }
    Ok(())
}

fn decimal(text: &str, key: &str) -> Result<Fixed8, ConfigError> {
    Fixed8::parse(text).map_err(|m| ConfigError::new(key, format!("{text:?}: {m}")))
}

fn symbol(text: &str, key: &str) -> Result<Symbol, ConfigError> {
    Symbol::new(text).map_err(|m| ConfigError::new(key, m))
}

fn asset_event(a: &AssetConfig, key: &dyn Fn(&str) -> String) -> Result<AssetDef, ConfigError> {
    let asset_weight = decimal(&a.asset_weight, &key("asset_weight"))?;
    let liability_weight = decimal(&a.liability_weight, &key("liability_weight"))?;
    if a.asset == 0 {
        if asset_weight != Fixed8::ONE {
            return Err(ConfigError::new(
                key("asset_weight"),
                "must be exactly 1 for the quote asset 0",
            ));
        }
        if liability_weight != Fixed8::ONE {
            return Err(ConfigError::new(
                key("liability_weight"),
                "must be exactly 1 for the quote asset 0",
            ));
        }
    }
    if asset_weight <= Fixed8::ZERO || asset_weight > Fixed8::ONE {
        return Err(ConfigError::new(key("asset_weight"), "must be in (0, 1]"));
    }
    if liability_weight < Fixed8::ONE
        || i128::from(liability_weight.0) > LIABILITY_WEIGHT_MANTISSA_MAX
    {
        return Err(ConfigError::new(
            key("liability_weight"),
            "must be in [1, 100]",
        ));
    }
    Ok(AssetDef {
        ts: UnixNanos(0),
        asset: AssetId(a.asset),
        symbol: symbol(&a.symbol, &key("symbol"))?,
        asset_weight,
        liability_weight,
    })
}

fn instrument_event(
    d: &InstrumentConfig,
    key: &dyn Fn(&str) -> String,
) -> Result<InstrumentDef, ConfigError> {
    let multiplier = decimal(&d.multiplier, &key("multiplier"))?;
    if multiplier <= Fixed8::ZERO || i128::from(multiplier.0) > MULTIPLIER_MANTISSA_MAX {
        return Err(ConfigError::new(key("multiplier"), "must be in (0, 10000]"));
    }
    let fee = decimal(&d.liquidation_fee, &key("liquidation_fee"))?;
    if d.tiers.is_empty() || d.tiers.len() > TIERS_MAX {
        return Err(ConfigError::new(key("tiers"), "must list 1 to 16 tiers"));
    }
    let mut tiers = Vec::with_capacity(d.tiers.len());
    for (t, tier) in d.tiers.iter().enumerate() {
        let tkey = |field: &str| key(&format!("tiers[{t}].{field}"));
        let parsed = Tier {
            notional_floor: decimal(&tier.notional_floor, &tkey("notional_floor"))?,
            mmr: decimal(&tier.mmr, &tkey("mmr"))?,
            imr: decimal(&tier.imr, &tkey("imr"))?,
        };
        check_tier(&parsed, tiers.last(), &tkey)?;
        tiers.push(parsed);
    }
    if fee < Fixed8::ZERO || fee >= tiers[0].mmr {
        return Err(ConfigError::new(
            key("liquidation_fee"),
            "must be in [0, tiers[0].mmr)",
        ));
    }
    Ok(InstrumentDef {
        ts: UnixNanos(0),
        instrument: InstrumentId(d.instrument),
        symbol: symbol(&d.symbol, &key("symbol"))?,
        multiplier,
        liquidation_fee: fee,
        tiers: Tiers::from_slice(&tiers),
    })
}

/// MARGIN.md §9 for one tier given the one before it.
fn check_tier(
    tier: &Tier,
    previous: Option<&Tier>,
    key: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
    match previous {
        None if tier.notional_floor != Fixed8::ZERO => {
            return Err(ConfigError::new(
                key("notional_floor"),
                "the first tier's floor must be 0",
            ));
        }
        Some(p) if tier.notional_floor <= p.notional_floor => {
            return Err(ConfigError::new(
                key("notional_floor"),
                "must be greater than the previous tier's",
            ));
        }
        Some(p) if tier.mmr < p.mmr => {
            return Err(ConfigError::new(
                key("mmr"),
                "must not be less than the previous tier's",
            ));
        }
        Some(p) if tier.imr < p.imr => {
            return Err(ConfigError::new(
                key("imr"),
                "must not be less than the previous tier's",
            ));
        }
        _ => {}
    }
    if tier.mmr <= Fixed8::ZERO {
        return Err(ConfigError::new(key("mmr"), "must be > 0"));
    }
    if tier.mmr >= tier.imr {
        return Err(ConfigError::new(key("mmr"), "must be < imr"));
    }
    if tier.imr > Fixed8::ONE {
        return Err(ConfigError::new(key("imr"), "must be <= 1"));
    }
    Ok(())
}

fn risk_event(r: &RiskConfig, key: &dyn Fn(&str) -> String) -> Result<RiskParams, ConfigError> {
    let vol_lambda = decimal(&r.vol_lambda, &key("vol_lambda"))?;
    if vol_lambda <= Fixed8::ZERO || vol_lambda >= Fixed8::ONE {
        return Err(ConfigError::new(key("vol_lambda"), "must be in (0, 1)"));
    }
    let vol_ref = decimal(&r.vol_ref, &key("vol_ref"))?;
    if vol_ref <= Fixed8::ZERO {
        return Err(ConfigError::new(key("vol_ref"), "must be > 0"));
    }
    let vol_max_factor = decimal(&r.vol_max_factor, &key("vol_max_factor"))?;
    if vol_max_factor < Fixed8::ONE || i128::from(vol_max_factor.0) > FACTOR_MANTISSA_MAX {
        return Err(ConfigError::new(
            key("vol_max_factor"),
            "must be in [1, 100]",
        ));
    }
    let max_jump = decimal(&r.max_jump, &key("max_jump"))?;
    if max_jump < Fixed8::ZERO {
        return Err(ConfigError::new(key("max_jump"), "must be >= 0"));
    }
    Ok(RiskParams {
        ts: UnixNanos(0),
        instrument: InstrumentId(r.instrument),
        vol_lambda,
        vol_ref,
        vol_max_factor,
        max_staleness_ns: r.max_staleness_ns,
        max_jump,
    })
}

impl fmt::Display for Idle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Idle::Spin => f.write_str("spin"),
            Idle::Yield => f.write_str("yield"),
            Idle::Sleep(d) => write!(f, "sleep:{}", d.as_micros()),
        }
    }
}
