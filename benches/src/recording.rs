//! The population builder as events: [`population_events`] (what `liqd
//! demo` sends a daemon).

use engine::*;

use crate::population::{fast_engine, populate, Rng};
use crate::{Options, Subject};

/// An engine that also records every event applied to it: how
/// [`population_events`] turns the population builder into events.
struct Recording {
    engine: Engine,
    events: Vec<Event>,
}

impl MarginEngine for Recording {
    fn apply(&mut self, seq: Seq, event: &Event, sink: &mut dyn Sink) -> Result<(), Reject> {
        self.events.push(*event);
        self.engine.apply(seq, event, sink)
    }
    fn figures(&self, account: AccountId) -> Option<Figures> {
        self.engine.figures(account)
    }
    fn account_ids(&self) -> Vec<AccountId> {
        self.engine.account_ids()
    }
    fn stats(&self) -> Stats {
        self.engine.stats()
    }
}

impl Subject for Recording {}

/// The population [`book`] builds, as the events that build it (instrument
/// and asset definitions, first prices, RiskParams, deposits, fills,
/// collateral, withdrawals to each account's leverage; all at ts 1): what
/// `liqd demo` feeds a daemon. Accounts are [`account_id`]`(0..accounts)`.
pub fn population_events(opts: &Options) -> Vec<Event> {
    let mut recording = Recording {
        engine: fast_engine(opts),
        events: Vec::new(),
    };
    let mut rng = Rng(opts.seed.max(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    populate(&mut recording, opts, &mut rng);
    recording.events
}
