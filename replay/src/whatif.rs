//! `liqd replay whatif`: the same history under changed risk definitions
//! (see [`crate::overrides`]), or in isolated margin mode (see
//! [`crate::isolated`]), and the difference in liquidations.
//!
//! One pass over the input drives two fast engines: the *base* with the
//! events as recorded, the *changed* one with the rewritten events. A
//! liquidation is identified by (account, seq); it is *added* if only the
//! changed run has it, *removed* if only the base has it, *changed* if both
//! have it with different legs or flags (a different `E` or `MM` alone with
//! the same decision is not a change). A liquidation's notional is
//! `Σ round8(|qty| × M × m)` over its legs at the mark of the decision.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::ControlFlow;

use engine::arith::mul3_round8;
use engine::{
    AccountId, Dec8, Engine, Event, Leg, Limits, Liquidation, MarginEngine, Output, Seq, VecSink,
};
use serde_json::{json, Value};

use crate::input::{Input, InputError};
use crate::isolated::{IsolatedModel, IsolatedReport};
use crate::overrides::{Overrides, Rewriter};
use crate::progress::Progress;

/// Cross (as the engine) or every position its own isolated silo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MarginMode {
    #[default]
    Cross,
    Isolated,
}

/// One liquidation of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiquidationRecord {
    pub liquidation: Liquidation,
    pub legs: Vec<Leg>,
    /// `Σ round8(|qty| × M × m)` over the legs.
    pub notional: Dec8,
}

impl LiquidationRecord {
    fn key(&self) -> (AccountId, Seq) {
        (self.liquidation.account, self.liquidation.seq)
    }

    /// The decision: legs and flags.
    fn same_decision(&self, other: &LiquidationRecord) -> bool {
        let (a, b) = (&self.liquidation, &other.liquidation);
        self.legs == other.legs
            && (a.partial, a.bankrupt, a.escalation) == (b.partial, b.bankrupt, b.escalation)
    }

    fn to_json(&self) -> Value {
        let l = &self.liquidation;
        json!({
            "account": l.account.0,
            "seq": l.seq.0,
            "ts": l.ts.0,
            "equity": l.equity.to_string(),
            "maint_margin": l.maint_margin.to_string(),
            "partial": l.partial,
            "bankrupt": l.bankrupt,
            "escalation": l.escalation,
            "notional": self.notional.to_string(),
            "legs": self.legs.iter().map(|leg| json!({
                "instrument": leg.instrument.0,
                "qty": leg.qty.to_string(),
                "limit_price": leg.limit_price.to_string(),
            })).collect::<Vec<_>>(),
        })
    }
}

impl fmt::Display for LiquidationRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.liquidation;
        write!(
            f,
            "account {} seq {}: E {} MM {} notional {}",
            l.account, l.seq, l.equity, l.maint_margin, self.notional
        )?;
        for (flag, on) in [
            ("partial", l.partial),
            ("bankrupt", l.bankrupt),
            ("escalation", l.escalation),
        ] {
            if on {
                write!(f, " {flag}")?;
            }
        }
        write!(f, " legs [")?;
        for (i, leg) in self.legs.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(
                f,
                "{sep}#{} {} @ {}",
                leg.instrument, leg.qty, leg.limit_price
            )?;
        }
        write!(f, "]")
    }
}

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunTotals {
    pub liquidations: u64,
    pub notional: Dec8,
    pub halts: u64,
    pub rejected: u64,
    pub accounts_liquidated: u64,
}

impl RunTotals {
    fn to_json(&self) -> Value {
        json!({
            "liquidations": self.liquidations,
            "notional": self.notional.to_string(),
            "halts": self.halts,
            "rejected_events": self.rejected,
            "accounts_liquidated": self.accounts_liquidated,
        })
    }
}

/// The difference between the base and the changed history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WhatIfReport {
    pub events: u64,
    pub rewritten_events: u64,
    pub injected_events: u64,
    /// Overrides no event matched (`KEY=VALUE`).
    pub unmatched_overrides: Vec<String>,
    pub base: RunTotals,
    pub changed_run: RunTotals,
    pub added: Vec<LiquidationRecord>,
    pub removed: Vec<LiquidationRecord>,
    /// (base, changed).
    pub changed: Vec<(LiquidationRecord, LiquidationRecord)>,
    pub accounts_affected: Vec<AccountId>,
    /// With `--margin-mode isolated`: the isolated model against the
    /// changed (cross) run.
    pub isolated: Option<IsolatedReport>,
}

impl WhatIfReport {
    /// No liquidation added, removed or changed.
    pub fn no_difference(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "events": self.events,
            "rewritten_events": self.rewritten_events,
            "injected_events": self.injected_events,
            "unmatched_overrides": self.unmatched_overrides,
            "base": self.base.to_json(),
            "changed_run": self.changed_run.to_json(),
            "added": self.added.iter().map(LiquidationRecord::to_json).collect::<Vec<_>>(),
            "removed": self.removed.iter().map(LiquidationRecord::to_json).collect::<Vec<_>>(),
            "changed": self.changed.iter().map(|(b, a)| json!({
                "before": b.to_json(),
                "after": a.to_json(),
            })).collect::<Vec<_>>(),
            "accounts_affected": self.accounts_affected.iter().map(|a| a.0).collect::<Vec<_>>(),
            "isolated": self.isolated.as_ref().map(IsolatedReport::to_json),
        })
    }
}

impl fmt::Display for WhatIfReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} events, {} rewritten, {} injected",
            self.events, self.rewritten_events, self.injected_events
        )?;
        for text in &self.unmatched_overrides {
            writeln!(f, "warning: no definition in the history matches `{text}`")?;
        }
        let (b, c) = (&self.base, &self.changed_run);
        writeln!(f, "                 before        after")?;
        writeln!(
            f,
            "liquidations  {:>10} {:>12}",
            b.liquidations, c.liquidations
        )?;
        writeln!(f, "notional      {:>10} {:>12}", b.notional, c.notional)?;
        writeln!(
            f,
            "accounts      {:>10} {:>12}",
            b.accounts_liquidated, c.accounts_liquidated
        )?;
        writeln!(f, "halts         {:>10} {:>12}", b.halts, c.halts)?;
        writeln!(f, "rejected      {:>10} {:>12}", b.rejected, c.rejected)?;
        if c.rejected > b.rejected {
            writeln!(
                f,
                "warning: the changed history has {} more rejected events (an override the engine refuses?)",
                c.rejected - b.rejected
            )?;
        }
        writeln!(f, "added {}:", self.added.len())?;
        for r in &self.added {
            writeln!(f, "  + {r}")?;
        }
        writeln!(f, "removed {}:", self.removed.len())?;
        for r in &self.removed {
            writeln!(f, "  - {r}")?;
        }
        writeln!(f, "changed {}:", self.changed.len())?;
        for (before, after) in &self.changed {
            writeln!(f, "  < {before}\n  > {after}")?;
        }
        let ids: Vec<String> = self
            .accounts_affected
            .iter()
            .map(|a| a.to_string())
            .collect();
        writeln!(f, "accounts affected {}: {}", ids.len(), ids.join(" "))?;
        if let Some(isolated) = &self.isolated {
            write!(f, "{isolated}")?;
        }
        Ok(())
    }
}

/// One run: an engine and what it liquidated.
struct Run {
    engine: Engine,
    sink: VecSink,
    liquidations: Vec<LiquidationRecord>,
    totals: RunTotals,
}

impl Run {
    fn new(limits: Limits) -> Run {
        Run {
            engine: Engine::new(limits),
            sink: VecSink::default(),
            liquidations: Vec::new(),
            totals: RunTotals::default(),
        }
    }

    /// Applies one event; the outputs stay in `self.sink` until the next.
    fn apply(&mut self, seq: Seq, event: &Event) -> bool {
        self.sink.outputs.clear();
        let accepted = self.engine.apply(seq, event, &mut self.sink).is_ok();
        if !accepted {
            self.totals.rejected += 1;
        }
        for output in &self.sink.outputs {
            match output {
                Output::Halt(_) => self.totals.halts += 1,
                Output::Liquidation(l, legs) => {
                    let notional = legs_notional(&self.engine, legs);
                    self.totals.liquidations += 1;
                    self.totals.notional = Dec8(self.totals.notional.0.saturating_add(notional.0));
                    self.liquidations.push(LiquidationRecord {
                        liquidation: *l,
                        legs: legs.clone(),
                        notional,
                    });
                }
            }
        }
        accepted
    }

    fn finish(&mut self) {
        let accounts: BTreeSet<AccountId> = self
            .liquidations
            .iter()
            .map(|r| r.liquidation.account)
            .collect();
        self.totals.accounts_liquidated = accounts.len() as u64;
    }
}

/// `Σ round8(|qty| × M × m)` at the engine's current marks.
pub fn legs_notional(engine: &Engine, legs: &[Leg]) -> Dec8 {
    let mut total = 0i128;
    for leg in legs {
        let Some(market) = engine.instrument_market(leg.instrument) else {
            continue;
        };
        let Some(mark) = market.mark else { continue };
        let qty = Dec8(leg.qty.0.abs());
        if let Some(n) = mul3_round8(qty, mark, market.multiplier) {
            total = total.saturating_add(n.0);
        }
    }
    Dec8(total)
}

/// Re-runs `input` with `overrides` (and in `mode`) and diffs the
/// liquidations.
///
/// # Errors
/// The input cannot be read.
pub fn whatif(
    input: &Input,
    overrides: Overrides,
    mode: MarginMode,
    limits: Limits,
    progress: &mut Progress,
) -> Result<WhatIfReport, InputError> {
    let mut base = Run::new(limits);
    let mut changed = Run::new(limits);
    let mut rewriter = Rewriter::new(overrides);
    let mut isolated = (mode == MarginMode::Isolated).then(IsolatedModel::default);
    let mut rewritten = Vec::with_capacity(4);
    let mut events = 0u64;
    input.for_each(progress, |seq, event| {
        events += 1;
        base.apply(seq, event);
        rewritten.clear();
        rewriter.rewrite(event, &mut rewritten);
        for e in &rewritten {
            let accepted = changed.apply(seq, e);
            if let Some(model) = isolated.as_mut() {
                model.after_event(&changed.engine, seq, e, accepted, &changed.sink.outputs);
            }
        }
        ControlFlow::Continue(())
    })?;
    base.finish();
    changed.finish();
    let mut report = diff(&base.liquidations, &changed.liquidations);
    report.events = events;
    report.rewritten_events = rewriter.rewritten;
    report.injected_events = rewriter.injected;
    report.unmatched_overrides = rewriter.unmatched();
    report.isolated = isolated.map(|m| m.report(&changed.liquidations));
    report.base = base.totals;
    report.changed_run = changed.totals;
    Ok(report)
}

/// Added, removed and changed liquidations, by (account, seq).
fn diff(base: &[LiquidationRecord], changed: &[LiquidationRecord]) -> WhatIfReport {
    let index = |list: &[LiquidationRecord]| -> BTreeMap<(AccountId, Seq), LiquidationRecord> {
        list.iter().map(|r| (r.key(), r.clone())).collect()
    };
    let (before, after) = (index(base), index(changed));
    let mut report = WhatIfReport::default();
    let mut affected = BTreeSet::new();
    for (key, b) in &before {
        match after.get(key) {
            None => report.removed.push(b.clone()),
            Some(a) if !a.same_decision(b) => report.changed.push((b.clone(), a.clone())),
            Some(_) => continue,
        }
        affected.insert(key.0);
    }
    for (key, a) in &after {
        if !before.contains_key(key) {
            report.added.push(a.clone());
            affected.insert(key.0);
        }
    }
    let by_seq = |r: &LiquidationRecord| (r.liquidation.seq, r.liquidation.account);
    report.added.sort_by_key(by_seq);
    report.removed.sort_by_key(by_seq);
    report.changed.sort_by_key(|(b, _)| by_seq(b));
    report.accounts_affected = affected.into_iter().collect();
    report
}
