//! `liqd replay inspect`: an account's full margin picture at one moment
//! of a history — every MARGIN.md §2 term (per asset `b × P × weight`, per
//! position `q`, mark, `V`, `N`, tier, `MMraw`/`IMraw`, vol factor,
//! `MM`/`IM`), the account's `E`, `U`, `MM`, `IM`, `E/MM`, its state, and
//! the last events that touched it and outputs it received.
//!
//! The moment is "after the event with sequence SEQ" (`--at`) or "before
//! the first event with `ts` > TS" (`--at-time`: the engine's clock then is
//! at most TS). The terms come from the fast engine's read-only accessors
//! (`Engine::account_detail`), so they are the engine's own arithmetic; the
//! tests check them against the reference model term by term.
//!
//! An event *touches* the account when it is a fill or balance change of
//! the account, or a mark, funding, instrument definition or risk parameters
//! of an instrument it holds, or an index price or asset definition of an
//! asset it holds a balance in (holdings as they were when the event came).
//!
//! [`inspect_nearest`] starts from the journal's newest usable engine
//! snapshot at or before `--at SEQ` and replays only the tail: the figures
//! are the same (the snapshot is the fast engine's exact state), but the
//! events and outputs listed are only those after the snapshot, and the
//! inspection says so ([`Inspection::snapshot`]). `--no-snapshot` replays
//! from the first event (see replay/README.md).

use std::collections::VecDeque;
use std::fmt::{self, Write as _};
use std::ops::ControlFlow;

use engine::arith::{div_round8, mul_round8};
use engine::inspect::AccountDetail;
use engine::{
    AccountId, AssetId, Dec8, Engine, EngineConfig, Event, Figures, InstrumentId, Limits,
    MarginEngine, Output, Params, Seq, UnixNanos, VecSink,
};
use serde_json::{json, Value};

use crate::input::{Input, InputError};
use crate::jsonl::{event_line, output_line};
use crate::progress::Progress;

/// The moment to look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// After the event with this sequence.
    Seq(Seq),
    /// Before the first event with a later `ts`.
    Time(UnixNanos),
    /// After the last event.
    End,
}

impl At {
    fn stops_before(self, seq: Seq, event: &Event) -> bool {
        match self {
            At::Seq(at) => seq > at,
            At::Time(at) => event.ts() > at,
            At::End => false,
        }
    }
}

/// Where an account stands (the first that applies, in this order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// It does not exist (yet) at that moment.
    Absent,
    /// A balance or position lacks a price: not evaluated.
    Unpriced,
    /// Holds a position in a halted instrument: not liquidated meanwhile.
    Halted,
    /// Liquidated recently: no other liquidation until the cooldown ends.
    CoolingDown,
    /// `U < 0`.
    Bankrupt,
    /// `E < MM`.
    Liquidatable,
    /// `E < warn_ratio × MM`.
    AtRisk,
    Healthy,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Absent => "absent",
            State::Unpriced => "unpriced",
            State::Halted => "halted",
            State::CoolingDown => "cooling down",
            State::Bankrupt => "bankrupt",
            State::Liquidatable => "liquidatable",
            State::AtRisk => "at risk",
            State::Healthy => "healthy",
        }
    }
}

/// The health the figures alone give (ignoring halts and cooldowns).
pub fn health(figures: &Figures, warn_ratio: Dec8) -> State {
    if figures.value.is_negative() {
        State::Bankrupt
    } else if figures.equity < figures.maint_margin {
        State::Liquidatable
    } else if mul_round8(warn_ratio, figures.maint_margin).is_some_and(|w| figures.equity < w) {
        State::AtRisk
    } else {
        State::Healthy
    }
}

/// An account at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspection {
    pub account: AccountId,
    /// The last event applied (`None`: before the first).
    pub seq: Option<Seq>,
    /// The engine clock then.
    pub now: UnixNanos,
    pub params: Params,
    /// Every term, `None` if the account does not exist then.
    pub detail: Option<AccountDetail>,
    /// `E`, `U`, `MM`, `IM`, `None` if absent or unpriced.
    pub figures: Option<Figures>,
    /// `round8(E / MM)`, when `MM > 0`.
    pub equity_ratio: Option<Dec8>,
    pub state: State,
    /// From the figures alone (`None` if absent or unpriced).
    pub health: Option<State>,
    /// The last events that touched it, oldest first.
    pub events: Vec<(Seq, Event)>,
    /// The last outputs it received (its liquidations, halts of what it
    /// held), oldest first.
    pub outputs: Vec<Output>,
    /// The engine snapshot the replay started from (`None`: the first
    /// event): `events` and `outputs` are then only those after it.
    pub snapshot: Option<Seq>,
}

/// Replays `input` up to `at` and inspects `account`, keeping the last
/// `last` events and outputs.
///
/// # Errors
/// The input cannot be read.
pub fn inspect(
    input: &Input,
    account: AccountId,
    at: At,
    last: usize,
    limits: Limits,
    progress: &mut Progress,
) -> Result<Inspection, InputError> {
    replay_from(
        input,
        Engine::new(limits),
        None,
        account,
        at,
        last,
        progress,
    )
}

/// As [`inspect`], but for `At::Seq(SEQ)` on a journal directory with
/// engine snapshots, starts from the newest usable snapshot at or before
/// SEQ (damaged or incompatible ones are skipped) and replays only the
/// tail. Anything else (a JSONL file, `At::Time`, `At::End`, no snapshot)
/// replays from the first event, as [`inspect`].
///
/// # Errors
/// The input cannot be read; the snapshot directory cannot be read.
pub fn inspect_nearest(
    input: &Input,
    account: AccountId,
    at: At,
    last: usize,
    limits: Limits,
    progress: &mut Progress,
) -> Result<Inspection, InputError> {
    let restored = match (input, at) {
        (Input::Journal(_), At::Seq(seq)) => {
            input.restore_latest(None, seq, limits, EngineConfig::default())?
        }
        _ => None,
    };
    match restored {
        Some(restored) => replay_from(
            input,
            restored.engine,
            Some(restored.seq),
            account,
            at,
            last,
            progress,
        ),
        None => inspect(input, account, at, last, limits, progress),
    }
}

/// Replays from `engine` (the state after `snapshot`, or new) to `at`.
fn replay_from(
    input: &Input,
    mut engine: Engine,
    snapshot: Option<Seq>,
    account: AccountId,
    at: At,
    last: usize,
    progress: &mut Progress,
) -> Result<Inspection, InputError> {
    let mut watch = Watch::new(account, last);
    watch.holdings.after_restore(&engine);
    let mut sink = VecSink::default();
    let mut applied = snapshot;
    let from = snapshot.map_or(Seq(1), |s| Seq(s.0.saturating_add(1)));
    input.for_each_from(from, progress, |seq, event| {
        if at.stops_before(seq, event) {
            return ControlFlow::Break(());
        }
        sink.outputs.clear();
        let _ = engine.apply(seq, event, &mut sink);
        watch.after(&engine, seq, event, &sink.outputs);
        applied = Some(seq);
        ControlFlow::Continue(())
    })?;
    let mut inspection = watch.inspection(&engine, applied);
    inspection.snapshot = snapshot;
    Ok(inspection)
}

/// What one account holds, to tell which events and outputs concern it.
#[derive(Clone, Debug)]
pub(crate) struct Holdings {
    pub account: AccountId,
    instruments: Vec<InstrumentId>,
    assets: Vec<AssetId>,
}

impl Holdings {
    pub fn new(account: AccountId) -> Holdings {
        Holdings {
            account,
            instruments: Vec::new(),
            assets: Vec::new(),
        }
    }

    /// The event concerns the account (with its holdings before it).
    pub fn touches(&self, event: &Event) -> bool {
        match event {
            Event::Fill(e) => e.account == self.account,
            Event::Balance(e) => e.account == self.account,
            Event::Mark(e) => self.instruments.contains(&e.instrument),
            Event::Funding(e) => self.instruments.contains(&e.instrument),
            Event::InstrumentDef(e) => self.instruments.contains(&e.instrument),
            Event::Risk(e) => self.instruments.contains(&e.instrument),
            Event::Index(e) => self.assets.contains(&e.asset),
            Event::AssetDef(e) => self.assets.contains(&e.asset),
            Event::Params(_) => false,
        }
    }

    /// The output concerns the account: its liquidation, or a halt of an
    /// instrument it holds.
    pub fn receives(&self, output: &Output) -> bool {
        match output {
            Output::Liquidation(l, _) => l.account == self.account,
            Output::Halt(h) => self.instruments.contains(&h.instrument),
        }
    }

    /// The holdings in a restored engine.
    pub fn after_restore(&mut self, engine: &Engine) {
        if let Some(detail) = engine.account_detail(self.account) {
            self.instruments = detail.positions.iter().map(|p| p.instrument).collect();
            self.assets = detail.balances.iter().map(|b| b.asset).collect();
        }
    }

    /// Holdings change only with the account's own fills and balance
    /// changes.
    pub fn after(&mut self, engine: &Engine, event: &Event) {
        let own = matches!(event, Event::Fill(e) if e.account == self.account)
            || matches!(event, Event::Balance(e) if e.account == self.account);
        if own {
            self.after_restore(engine);
        }
    }
}

/// Follows one account through a replay.
struct Watch {
    account: AccountId,
    last: usize,
    holdings: Holdings,
    events: VecDeque<(Seq, Event)>,
    outputs: VecDeque<Output>,
}

impl Watch {
    fn new(account: AccountId, last: usize) -> Watch {
        Watch {
            account,
            last,
            holdings: Holdings::new(account),
            events: VecDeque::new(),
            outputs: VecDeque::new(),
        }
    }

    fn after(&mut self, engine: &Engine, seq: Seq, event: &Event, outputs: &[Output]) {
        if self.holdings.touches(event) {
            push_bounded(&mut self.events, (seq, *event), self.last);
        }
        for output in outputs {
            if self.holdings.receives(output) {
                push_bounded(&mut self.outputs, output.clone(), self.last);
            }
        }
        self.holdings.after(engine, event);
    }

    fn inspection(self, engine: &Engine, seq: Option<Seq>) -> Inspection {
        let detail = engine.account_detail(self.account);
        let figures = engine.figures(self.account);
        let params = *engine.params();
        let health = figures.map(|f| health(&f, params.warn_ratio.dec()));
        let state = match (&detail, figures) {
            (None, _) => State::Absent,
            (Some(_), None) => State::Unpriced,
            (Some(d), Some(_)) if d.positions.iter().any(|p| p.market.halted()) => State::Halted,
            (Some(d), Some(_)) if d.cooldown_since.is_some() => State::CoolingDown,
            (Some(_), Some(_)) => health.unwrap_or(State::Healthy),
        };
        let equity_ratio = figures
            .filter(|f| f.maint_margin.0 > 0)
            .and_then(|f| div_round8(f.equity, f.maint_margin));
        Inspection {
            account: self.account,
            seq,
            now: engine.now(),
            params,
            detail,
            figures,
            equity_ratio,
            state,
            health,
            events: self.events.into(),
            outputs: self.outputs.into(),
            snapshot: None,
        }
    }
}

fn push_bounded<T>(ring: &mut VecDeque<T>, item: T, bound: usize) {
    if bound == 0 {
        return;
    }
    if ring.len() == bound {
        ring.pop_front();
    }
    ring.push_back(item);
}

fn opt(d: Option<Dec8>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| d.to_string())
}

fn opt_json(d: Option<Dec8>) -> Value {
    d.map_or(Value::Null, |d| Value::String(d.to_string()))
}

fn line_json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|_| Value::String(line.trim_end().to_owned()))
}

impl Inspection {
    /// For machines: every figure as a decimal string.
    pub fn to_json(&self) -> Value {
        let (balances, positions, cooldown) = match &self.detail {
            None => (Vec::new(), Vec::new(), Value::Null),
            Some(d) => (
                d.balances
                    .iter()
                    .map(|b| {
                        json!({
                            "asset": b.asset.0,
                            "symbol": b.symbol.as_str(),
                            "balance": b.amount.to_string(),
                            "price": opt_json(b.price),
                            "weight": b.weight.to_string(),
                            "collateral": opt_json(b.collateral),
                            "value": opt_json(b.plain_value),
                        })
                    })
                    .collect(),
                d.positions
                    .iter()
                    .map(|p| {
                        let f = p.figures;
                        json!({
                            "instrument": p.instrument.0,
                            "symbol": p.symbol.as_str(),
                            "qty": p.qty.to_string(),
                            "mark": opt_json(p.market.mark),
                            "multiplier": p.market.multiplier.to_string(),
                            "value": opt_json(f.map(|f| f.value)),
                            "notional": opt_json(f.map(|f| f.notional)),
                            "tier": f.map(|f| f.tier),
                            "mm_raw": opt_json(f.map(|f| f.mm_raw)),
                            "im_raw": opt_json(f.map(|f| f.im_raw)),
                            "vol_factor": p.market.vol_factor.to_string(),
                            "mm": opt_json(f.map(|f| f.mm)),
                            "im": opt_json(f.map(|f| f.im)),
                            "halted_stale": p.market.halted_stale,
                            "halted_jump": p.market.halted_jump,
                        })
                    })
                    .collect(),
                d.cooldown_since.map_or(Value::Null, |t| json!(t.0)),
            ),
        };
        let figures = self.figures;
        json!({
            "account": self.account.0,
            "seq": self.seq.map(|s| s.0),
            "now": self.now.0,
            "state": self.state.name(),
            "health": self.health.map(State::name),
            "equity": opt_json(figures.map(|f| f.equity)),
            "value": opt_json(figures.map(|f| f.value)),
            "maint_margin": opt_json(figures.map(|f| f.maint_margin)),
            "initial_margin": opt_json(figures.map(|f| f.initial_margin)),
            "equity_ratio": opt_json(self.equity_ratio),
            "warn_ratio": self.params.warn_ratio.to_string(),
            "cooldown_since": cooldown,
            "balances": balances,
            "positions": positions,
            "events": self.events.iter().map(|(seq, e)| json!({
                "seq": seq.0,
                "event": event_line(e).map_or(Value::Null, |l| line_json(&l)),
            })).collect::<Vec<_>>(),
            "outputs": self.outputs.iter().map(|o| line_json(&output_line(o, None))).collect::<Vec<_>>(),
            "snapshot": self.snapshot.map(|s| s.0),
        })
    }
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.seq.map_or_else(
            || "before the first event".to_owned(),
            |s| format!("after seq {s}"),
        );
        writeln!(f, "account {} {at} (now {})", self.account, self.now)?;
        writeln!(f, "state: {}", self.state.name())?;
        let Some(detail) = &self.detail else {
            return writeln!(f, "(the account does not exist at that moment)");
        };
        writeln!(
            f,
            "\ncollateral          balance × price × weight = c_a  (round8(b × P) = value)"
        )?;
        for b in &detail.balances {
            let name = if b.asset.0 == 0 {
                "quote".to_owned()
            } else {
                b.symbol.as_str().to_owned()
            };
            writeln!(
                f,
                "  {:<8} #{:<4} {} × {} × {} = {}  ({})",
                name,
                b.asset,
                b.amount,
                opt(b.price),
                b.weight,
                opt(b.collateral),
                opt(b.plain_value)
            )?;
        }
        if !detail.positions.is_empty() {
            writeln!(f, "\npositions")?;
        }
        for p in &detail.positions {
            let mut halts = String::new();
            if p.market.halted_stale {
                halts.push_str(" HALTED(stale)");
            }
            if p.market.halted_jump {
                halts.push_str(" HALTED(jump)");
            }
            writeln!(
                f,
                "  {} #{}: q {} mark {} multiplier {}{halts}",
                p.symbol,
                p.instrument,
                p.qty,
                opt(p.market.mark),
                p.market.multiplier
            )?;
            match p.figures {
                None => writeln!(f, "    (no mark yet: unpriced)")?,
                Some(t) => writeln!(
                    f,
                    "    V {}  N {}  tier {}  MMraw {}  IMraw {}  f {}  MM {}  IM {}",
                    t.value,
                    t.notional,
                    t.tier,
                    t.mm_raw,
                    t.im_raw,
                    p.market.vol_factor,
                    t.mm,
                    t.im
                )?,
            }
        }
        match self.figures {
            None => writeln!(f, "\nfigures: unpriced (not evaluated)")?,
            Some(fig) => {
                writeln!(
                    f,
                    "\nE {}  U {}  MM {}  IM {}  E/MM {}  (warn ratio {})",
                    fig.equity,
                    fig.value,
                    fig.maint_margin,
                    fig.initial_margin,
                    opt(self.equity_ratio),
                    self.params.warn_ratio
                )?;
                if let Some(h) = self.health {
                    writeln!(f, "health from the figures: {}", h.name())?;
                }
            }
        }
        if let Some(t) = detail.cooldown_since {
            writeln!(
                f,
                "cooling down since {t} (cooldown {} ns)",
                self.params.liquidation_cooldown_ns
            )?;
        }
        if let Some(k) = self.snapshot {
            writeln!(
                f,
                "\nstarted from the engine snapshot at seq {k}: only the events and \
                 outputs after it are listed (--no-snapshot: from the first event)"
            )?;
        }
        writeln!(f, "\nlast {} events that touched it", self.events.len())?;
        for (seq, e) in &self.events {
            let line = event_line(e).unwrap_or_default();
            writeln!(f, "  #{seq} {}", line.trim_end())?;
        }
        writeln!(f, "\nlast {} outputs it received", self.outputs.len())?;
        let mut text = String::new();
        for o in &self.outputs {
            let _ = write!(text, "  {}", output_line(o, None));
        }
        f.write_str(&text)
    }
}
