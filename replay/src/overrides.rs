//! Changed risk definitions for `liqd replay whatif`: the `KEY=VALUE`
//! grammar (and its TOML file form), and the [`Rewriter`] that applies them
//! to a history by rewriting the matching definition events as they stream
//! through — the engine itself is untouched.
//!
//! Grammar (`TARGET` is `*` for every one, a numeric id, or a symbol):
//!
//! | key | value | rewrites |
//! |---|---|---|
//! | `instrument.TARGET.tiers` | `FLOOR:MMR:IMR,…` | every InstrumentDef of it: the tier table |
//! | `instrument.TARGET.mmr_scale` | decimal | each tier's `mmr × scale` (round8) |
//! | `instrument.TARGET.imr_scale` | decimal | each tier's `imr × scale` (round8) |
//! | `instrument.TARGET.liquidation_fee` | decimal | `φ` |
//! | `asset.TARGET.weight` | decimal | AssetDef `asset_weight` (`*`: every asset but quote) |
//! | `asset.TARGET.liability_weight` | decimal | AssetDef `liability_weight` |
//! | `risk.TARGET.vol_lambda` / `vol_ref` / `vol_max_factor` / `max_jump` | decimal | RiskParams |
//! | `risk.TARGET.max_staleness_ns` | integer | RiskParams |
//! | `params.partial` | `true`/`false` | EngineParams `partial_liquidation` |
//! | `params.cooldown_ns` | integer | `liquidation_cooldown_ns` |
//! | `params.warn_ratio` | decimal | `warn_ratio` |
//! | `params.liquidation_fee` | decimal | shorthand for `instrument.*.liquidation_fee` |
//!
//! Overrides apply in the order given (a later one wins for the same
//! field), except that tier tables are replaced before any scale applies;
//! in a TOML file keys come sorted (`*` before ids before symbols). A symbol matches the symbol of the instrument's or asset's
//! definition. Injection: when the history does not start with an
//! EngineParams event and `params.*` is set, one is injected before the
//! first event (defaults of MARGIN.md §7, overridden); when `risk.*` names
//! an instrument that has no RiskParams when it is first defined, a
//! RiskParams is injected right after that definition with neutral values
//! (`vol_lambda` 0.94, `vol_ref` 1, `vol_max_factor` 1, `max_staleness_ns`
//! 0, `max_jump` 0: no vol factor, no guard) and the overrides on top — to
//! enable the vol factor set `vol_ref` and `vol_max_factor` both. Injected
//! events take the sequence of the event they come with, so outputs keep
//! the original history's sequences. A rewritten definition the engine
//! refuses (say `imr_scale` pushing an `imr` above 1) is rejected like any
//! invalid event: `whatif` reports the rejections it adds.

use std::collections::{BTreeMap, BTreeSet};

use engine::arith::mul_round8;
use engine::{
    AssetDef, Dec8, EngineParams, Event, Fixed8, InstrumentDef, InstrumentId, Params, RiskParams,
    Symbol, Tier, Tiers, TIERS_MAX,
};

/// A bad override.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("override `{key}`: {reason}")]
pub struct OverrideError {
    pub key: String,
    pub reason: String,
}

fn error(key: &str, reason: impl Into<String>) -> OverrideError {
    OverrideError {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

/// Which instruments or assets an override names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    All,
    Id(u32),
    Symbol(String),
}

impl Target {
    fn parse(text: &str) -> Target {
        if text == "*" {
            Target::All
        } else if let Ok(id) = text.parse::<u32>() {
            Target::Id(id)
        } else {
            Target::Symbol(text.to_owned())
        }
    }

    fn matches(&self, id: u32, symbol: Option<&Symbol>) -> bool {
        match self {
            Target::All => true,
            Target::Id(x) => *x == id,
            Target::Symbol(s) => symbol.is_some_and(|sym| sym.as_str() == s),
        }
    }
}

/// One parsed override.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Override {
    Tiers(Target, Box<Tiers>),
    MmrScale(Target, Dec8),
    ImrScale(Target, Dec8),
    LiquidationFee(Target, Fixed8),
    AssetWeight(Target, Fixed8),
    LiabilityWeight(Target, Fixed8),
    VolLambda(Target, Fixed8),
    VolRef(Target, Fixed8),
    VolMaxFactor(Target, Fixed8),
    MaxJump(Target, Fixed8),
    MaxStalenessNs(Target, u64),
    Partial(bool),
    CooldownNs(u64),
    WarnRatio(Fixed8),
}

/// Every override, in order, with the `KEY=VALUE` text it came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub list: Vec<Override>,
    pub texts: Vec<String>,
}

impl Overrides {
    /// Appends another set after this one.
    pub fn extend(&mut self, other: Overrides) {
        self.list.extend(other.list);
        self.texts.extend(other.texts);
    }
}

fn decimal(key: &str, value: &str) -> Result<Fixed8, OverrideError> {
    Fixed8::parse(value).map_err(|e| error(key, format!("{value:?}: {e}")))
}

fn integer(key: &str, value: &str) -> Result<u64, OverrideError> {
    value
        .parse::<u64>()
        .map_err(|_| error(key, format!("{value:?} is not a non-negative integer")))
}

fn boolean(key: &str, value: &str) -> Result<bool, OverrideError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(error(key, format!("{value:?} is not true or false"))),
    }
}

/// `FLOOR:MMR:IMR,FLOOR:MMR:IMR,…`
fn tiers(key: &str, value: &str) -> Result<Tiers, OverrideError> {
    let mut list = Vec::new();
    for part in value.split(',') {
        let fields: Vec<&str> = part.trim().split(':').collect();
        let [floor, mmr, imr] = fields[..] else {
            return Err(error(key, format!("tier {part:?} is not FLOOR:MMR:IMR")));
        };
        list.push(Tier {
            notional_floor: decimal(key, floor)?,
            mmr: decimal(key, mmr)?,
            imr: decimal(key, imr)?,
        });
    }
    if list.is_empty() || list.len() > TIERS_MAX {
        return Err(error(key, format!("1..={TIERS_MAX} tiers")));
    }
    Ok(Tiers::from_slice(&list))
}

impl Overrides {
    /// Parses `KEY=VALUE` items.
    ///
    /// # Errors
    /// The first item that is not in the grammar.
    pub fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Overrides, OverrideError> {
        let mut overrides = Overrides::default();
        for item in items {
            let Some((key, value)) = item.split_once('=') else {
                return Err(error(item, "expected KEY=VALUE"));
            };
            overrides.push(key.trim(), value.trim())?;
        }
        Ok(overrides)
    }

    /// Parses a TOML file's text: tables are key prefixes
    /// (`[instrument.BTC-PERP]` then `tiers = "0:0.004:0.01"` is
    /// `instrument.BTC-PERP.tiers=0:0.004:0.01`). Decimals are best written
    /// as strings; a TOML float is read by its shortest decimal form.
    ///
    /// # Errors
    /// Not TOML, or a key or value not in the grammar.
    pub fn parse_toml(text: &str) -> Result<Overrides, OverrideError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| error("(file)", e.message().to_owned()))?;
        let mut flat = Vec::new();
        flatten("", &toml::Value::Table(table), &mut flat)?;
        let mut overrides = Overrides::default();
        for (key, value) in flat {
            overrides.push(&key, &value)?;
        }
        Ok(overrides)
    }

    /// Appends `KEY=VALUE`.
    ///
    /// # Errors
    /// The key or value is not in the grammar.
    pub fn push(&mut self, key: &str, value: &str) -> Result<(), OverrideError> {
        let parts: Vec<&str> = key.split('.').collect();
        let item = match parts[..] {
            ["instrument", target, field] => {
                let t = Target::parse(target);
                match field {
                    "tiers" => Override::Tiers(t, Box::new(tiers(key, value)?)),
                    "mmr_scale" => Override::MmrScale(t, decimal(key, value)?.dec()),
                    "imr_scale" => Override::ImrScale(t, decimal(key, value)?.dec()),
                    "liquidation_fee" => Override::LiquidationFee(t, decimal(key, value)?),
                    _ => return Err(error(key, "unknown instrument field")),
                }
            }
            ["asset", target, field] => {
                let t = Target::parse(target);
                match field {
                    "weight" | "asset_weight" => Override::AssetWeight(t, decimal(key, value)?),
                    "liability_weight" => Override::LiabilityWeight(t, decimal(key, value)?),
                    _ => return Err(error(key, "unknown asset field")),
                }
            }
            ["risk", target, field] => {
                let t = Target::parse(target);
                match field {
                    "vol_lambda" | "lambda" => Override::VolLambda(t, decimal(key, value)?),
                    "vol_ref" => Override::VolRef(t, decimal(key, value)?),
                    "vol_max_factor" => Override::VolMaxFactor(t, decimal(key, value)?),
                    "max_jump" => Override::MaxJump(t, decimal(key, value)?),
                    "max_staleness_ns" => Override::MaxStalenessNs(t, integer(key, value)?),
                    _ => return Err(error(key, "unknown risk field")),
                }
            }
            ["params", field] => match field {
                "partial" | "partial_liquidation" => Override::Partial(boolean(key, value)?),
                "cooldown_ns" | "liquidation_cooldown_ns" => {
                    Override::CooldownNs(integer(key, value)?)
                }
                "warn_ratio" => Override::WarnRatio(decimal(key, value)?),
                "liquidation_fee" => Override::LiquidationFee(Target::All, decimal(key, value)?),
                _ => return Err(error(key, "unknown params field")),
            },
            _ => {
                return Err(error(
                    key,
                    "expected instrument.T.FIELD, asset.T.FIELD, risk.T.FIELD or params.FIELD",
                ))
            }
        };
        self.list.push(item);
        self.texts.push(format!("{key}={value}"));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn has_params(&self) -> bool {
        self.list.iter().any(|o| {
            matches!(
                o,
                Override::Partial(_) | Override::CooldownNs(_) | Override::WarnRatio(_)
            )
        })
    }

    fn risk_targets(&self) -> impl Iterator<Item = &Target> {
        self.list.iter().filter_map(|o| match o {
            Override::VolLambda(t, _)
            | Override::VolRef(t, _)
            | Override::VolMaxFactor(t, _)
            | Override::MaxJump(t, _)
            | Override::MaxStalenessNs(t, _) => Some(t),
            _ => None,
        })
    }
}

fn flatten(
    prefix: &str,
    value: &toml::Value,
    out: &mut Vec<(String, String)>,
) -> Result<(), OverrideError> {
    let text = match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, value, out)?;
            }
            return Ok(());
        }
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        // A TOML float has no exact decimal text; its shortest form is what
        // the user wrote for any value with at most 8 places.
        toml::Value::Float(f) => f.to_string(),
        _ => return Err(error(prefix, "unsupported TOML value")),
    };
    out.push((prefix.to_owned(), text));
    Ok(())
}

/// Applies [`Overrides`] to a stream of events.
#[derive(Debug)]
pub struct Rewriter {
    overrides: Overrides,
    started: bool,
    symbols: BTreeMap<InstrumentId, Symbol>,
    /// Instruments that have (or were given) RiskParams.
    with_risk: BTreeSet<InstrumentId>,
    /// Events rewritten or injected so far.
    pub rewritten: u64,
    pub injected: u64,
    /// Per override: whether some event matched it.
    matched: Vec<bool>,
}

impl Rewriter {
    pub fn new(overrides: Overrides) -> Rewriter {
        Rewriter {
            started: false,
            symbols: BTreeMap::new(),
            with_risk: BTreeSet::new(),
            rewritten: 0,
            injected: 0,
            matched: vec![false; overrides.list.len()],
            overrides,
        }
    }

    /// The overrides no event matched (a misspelt symbol, an asset the
    /// history never defines), as `KEY=VALUE`.
    pub fn unmatched(&self) -> Vec<String> {
        self.matched
            .iter()
            .zip(&self.overrides.texts)
            .filter(|(m, _)| !**m)
            .map(|(_, text)| text.clone())
            .collect()
    }

    /// Notes which overrides `event` (as passed to the engine) is a target of.
    fn note_matches(&mut self, event: &Event) {
        for (o, matched) in self.overrides.list.iter().zip(self.matched.iter_mut()) {
            let hit = match (o, event) {
                (
                    Override::Partial(_) | Override::CooldownNs(_) | Override::WarnRatio(_),
                    Event::Params(_),
                ) => true,
                (
                    Override::Tiers(t, _)
                    | Override::MmrScale(t, _)
                    | Override::ImrScale(t, _)
                    | Override::LiquidationFee(t, _),
                    Event::InstrumentDef(e),
                ) => t.matches(e.instrument.0, Some(&e.symbol)),
                (
                    Override::AssetWeight(t, _) | Override::LiabilityWeight(t, _),
                    Event::AssetDef(e),
                ) => {
                    t.matches(e.asset.0, Some(&e.symbol)) && !(e.asset.0 == 0 && *t == Target::All)
                }
                (
                    Override::VolLambda(t, _)
                    | Override::VolRef(t, _)
                    | Override::VolMaxFactor(t, _)
                    | Override::MaxJump(t, _)
                    | Override::MaxStalenessNs(t, _),
                    Event::Risk(e),
                ) => t.matches(e.instrument.0, self.symbols.get(&e.instrument)),
                _ => false,
            };
            *matched |= hit;
        }
    }

    /// The events that replace `event` (it, rewritten, with any injected
    /// ones), appended to `out` in order.
    pub fn rewrite(&mut self, event: &Event, out: &mut Vec<Event>) {
        let from = out.len();
        self.rewrite_inner(event, out);
        if !self.overrides.is_empty() {
            for e in &out[from..] {
                self.note_matches(e);
            }
        }
    }

    fn rewrite_inner(&mut self, event: &Event, out: &mut Vec<Event>) {
        if self.overrides.is_empty() {
            out.push(*event);
            return;
        }
        if !self.started {
            self.started = true;
            if self.overrides.has_params() && !matches!(event, Event::Params(_)) {
                let defaults = Params::default();
                let injected = EngineParams {
                    ts: event.ts(),
                    partial_liquidation: defaults.partial_liquidation,
                    liquidation_cooldown_ns: defaults.liquidation_cooldown_ns,
                    warn_ratio: defaults.warn_ratio,
                };
                out.push(Event::Params(self.params(injected)));
                self.injected += 1;
            }
        }
        let rewritten = match event {
            Event::Params(e) => Event::Params(self.params(*e)),
            Event::InstrumentDef(e) => {
                self.symbols.insert(e.instrument, e.symbol);
                Event::InstrumentDef(self.instrument(*e))
            }
            Event::AssetDef(e) => Event::AssetDef(self.asset(*e)),
            Event::Risk(e) => {
                self.with_risk.insert(e.instrument);
                Event::Risk(self.risk(*e))
            }
            other => *other,
        };
        if rewritten != *event {
            self.rewritten += 1;
        }
        out.push(rewritten);
        if let Event::InstrumentDef(e) = event {
            let symbol = self.symbols.get(&e.instrument);
            let named = self
                .overrides
                .risk_targets()
                .any(|t| t.matches(e.instrument.0, symbol));
            if named && self.with_risk.insert(e.instrument) {
                let neutral = RiskParams {
                    ts: e.ts,
                    instrument: e.instrument,
                    vol_lambda: Fixed8(94_000_000),
                    vol_ref: Fixed8::ONE,
                    vol_max_factor: Fixed8::ONE,
                    max_staleness_ns: 0,
                    max_jump: Fixed8::ZERO,
                };
                out.push(Event::Risk(self.risk(neutral)));
                self.injected += 1;
            }
        }
    }

    fn params(&self, mut e: EngineParams) -> EngineParams {
        for o in &self.overrides.list {
            match o {
                Override::Partial(v) => e.partial_liquidation = *v,
                Override::CooldownNs(v) => e.liquidation_cooldown_ns = *v,
                Override::WarnRatio(v) => e.warn_ratio = *v,
                _ => {}
            }
        }
        e
    }

    fn instrument(&self, mut e: InstrumentDef) -> InstrumentDef {
        let (id, symbol) = (e.instrument.0, Some(&e.symbol));
        // Tier tables first, then the scales apply to the table in force.
        for o in &self.overrides.list {
            if let Override::Tiers(t, tiers) = o {
                if t.matches(id, symbol) {
                    e.tiers = **tiers;
                }
            }
        }
        for o in &self.overrides.list {
            match o {
                Override::MmrScale(t, k) if t.matches(id, symbol) => {
                    scale(&mut e.tiers, *k, |tier| &mut tier.mmr);
                }
                Override::ImrScale(t, k) if t.matches(id, symbol) => {
                    scale(&mut e.tiers, *k, |tier| &mut tier.imr);
                }
                Override::LiquidationFee(t, v) if t.matches(id, symbol) => {
                    e.liquidation_fee = *v;
                }
                _ => {}
            }
        }
        e
    }

    fn asset(&self, mut e: AssetDef) -> AssetDef {
        let (id, symbol) = (e.asset.0, Some(&e.symbol));
        for o in &self.overrides.list {
            // `*` leaves the quote asset alone: its weights must stay 1.
            let hits = |t: &Target| t.matches(id, symbol) && !(id == 0 && *t == Target::All);
            match o {
                Override::AssetWeight(t, v) if hits(t) => e.asset_weight = *v,
                Override::LiabilityWeight(t, v) if hits(t) => e.liability_weight = *v,
                _ => {}
            }
        }
        e
    }

    fn risk(&self, mut e: RiskParams) -> RiskParams {
        let id = e.instrument.0;
        let symbol = self.symbols.get(&e.instrument);
        for o in &self.overrides.list {
            match o {
                Override::VolLambda(t, v) if t.matches(id, symbol) => e.vol_lambda = *v,
                Override::VolRef(t, v) if t.matches(id, symbol) => e.vol_ref = *v,
                Override::VolMaxFactor(t, v) if t.matches(id, symbol) => e.vol_max_factor = *v,
                Override::MaxJump(t, v) if t.matches(id, symbol) => e.max_jump = *v,
                Override::MaxStalenessNs(t, v) if t.matches(id, symbol) => {
                    e.max_staleness_ns = *v;
                }
                _ => {}
            }
        }
        e
    }
}

/// Multiplies one rate of every tier by `k` (round8, half-even), saturating
/// at the Fixed8 range (the engine then refuses the definition).
fn scale(tiers: &mut Tiers, k: Dec8, field: fn(&mut Tier) -> &mut Fixed8) {
    let count = usize::from(tiers.count).min(TIERS_MAX);
    for tier in &mut tiers.tiers[..count] {
        let rate = field(tier);
        let scaled = mul_round8(rate.dec(), k).and_then(Dec8::to_fixed8);
        *rate = scaled.unwrap_or(Fixed8(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_bad_ones_are_named() {
        let o = Overrides::parse([
            "instrument.BTC-PERP.tiers=0:0.004:0.01,50000:0.005:0.02",
            "instrument.1.mmr_scale=1.5",
            "asset.ETH.weight=0.8",
            "params.liquidation_fee=0.01",
            "params.partial=false",
            "risk.1.max_jump=0.05",
            "params.cooldown_ns=5000",
        ])
        .expect("valid");
        assert_eq!(o.list.len(), 7);
        assert_eq!(
            o.list[1],
            Override::MmrScale(Target::Id(1), Dec8(150_000_000))
        );
        assert_eq!(
            o.list[3],
            Override::LiquidationFee(Target::All, Fixed8(1_000_000))
        );
        for bad in [
            "params.partial=yes",
            "instrument.1.tiers=0:0.1",
            "asset.ETH.colour=red",
            "nothing",
            "params.cooldown_ns=-1",
            "instrument.1.mmr_scale=1.123456789",
        ] {
            let e = Overrides::parse([bad]).expect_err(bad);
            assert!(e.to_string().contains("override"), "{e}");
        }
    }

    #[test]
    fn toml_tables_are_key_prefixes() {
        let text = r#"
            [instrument.BTC-PERP]
            tiers = "0:0.004:0.01"
            mmr_scale = 1.5
            [params]
            partial = false
            cooldown_ns = 7
        "#;
        let from_toml = Overrides::parse_toml(text).expect("valid");
        let from_keys = Overrides::parse([
            "instrument.BTC-PERP.mmr_scale=1.5",
            "instrument.BTC-PERP.tiers=0:0.004:0.01",
            "params.cooldown_ns=7",
            "params.partial=false",
        ])
        .expect("valid");
        let sorted = |o: &Overrides| {
            let mut v: Vec<String> = o.list.iter().map(|x| format!("{x:?}")).collect();
            v.sort();
            v
        };
        assert_eq!(sorted(&from_toml), sorted(&from_keys));
        assert!(Overrides::parse_toml("[params]\npartial = [1]").is_err());
    }
}
