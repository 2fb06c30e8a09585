//! liqd's engine: the deterministic cross-margin state machine of
//! MARGIN.md, its plainly written reference model, and exact decimal
//! arithmetic.
//!
//! The engine performs no I/O, reads no clock (time is the event's `ts`),
//! uses no randomness and iterates no hash-ordered collection. Events go in
//! through [`MarginEngine::apply`]; decisions come out through a caller-owned
//! [`Sink`].

pub mod arith;
mod engine;
pub mod inspect;
pub mod limits;
mod plan;
pub mod reference;
pub mod reject;
mod state;
pub mod triggers;
pub mod types;
pub mod valuation;

pub use engine::{
    Engine, MemoryUse, SnapshotBytes, SnapshotError, Standing, SNAPSHOT_FORMAT, SNAPSHOT_MAGIC,
};
pub use limits::Limits;
pub use reject::Reject;
pub use triggers::{EngineConfig, EvaluationMode, SplitStrategy, TriggerStats};
pub use types::*;

/// Global engine parameters (MARGIN.md §7) with their defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Params {
    pub partial_liquidation: bool,
    pub liquidation_cooldown_ns: u64,
    pub warn_ratio: Fixed8,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            partial_liquidation: true,
            liquidation_cooldown_ns: 1_000_000_000,
            warn_ratio: Fixed8(125_000_000),
        }
    }
}

/// An account's figures of MARGIN.md §2 at the current state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Figures {
    /// `E`: haircut collateral plus position values.
    pub equity: Dec8,
    /// `U`: collateral without haircuts plus position values.
    pub value: Dec8,
    /// `MM`: sum of the positions' maintenance margins.
    pub maint_margin: Dec8,
    /// `IM`: sum of the positions' initial margins.
    pub initial_margin: Dec8,
}

/// Counters of what the engine did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Stats {
    pub events_applied: u64,
    pub events_rejected: u64,
    pub liquidations: u64,
    pub halts: u64,
}

/// What every implementation of MARGIN.md offers: the fast engine and the
/// reference model are interchangeable behind it.
pub trait MarginEngine {
    /// Applies one event (journal sequence `seq`), writing decisions to
    /// `sink` in output order.
    ///
    /// # Errors
    /// The event is refused: nothing changed, nothing was emitted.
    fn apply(&mut self, seq: Seq, event: &Event, sink: &mut dyn Sink) -> Result<(), Reject>;

    /// The account's figures, or `None` if it does not exist or is unpriced.
    fn figures(&self, account: AccountId) -> Option<Figures>;

    /// Every account, ascending.
    fn account_ids(&self) -> Vec<AccountId>;

    fn stats(&self) -> Stats;
}
