//! The one place that builds a named engine, for the CLI and the scenario
//! tests alike.
//!
//! Everything that needs an engine (`liqd replay run`, the scenario tests,
//! the CLI's engine tests) goes through [`make_engine`] and starts working
//! as soon as it returns `Ok`.

use core::fmt;

use engine::{Limits, MarginEngine};

/// Which implementation of MARGIN.md to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// `engine::Engine`: the production path.
    Fast,
    /// `engine::reference::ReferenceEngine`: the plainly written model.
    Reference,
}

impl EngineKind {
    pub const ALL: [EngineKind; 2] = [EngineKind::Fast, EngineKind::Reference];

    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Fast => "fast",
            EngineKind::Reference => "reference",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An engine as replay drives it: the [`MarginEngine`] plus its state hash,
/// which is not part of that trait.
pub trait ReplayEngine {
    fn margin_engine(&mut self) -> &mut dyn MarginEngine;

    /// The state hash, for engines that have one (the fast engine; the
    /// reference model has none).
    fn state_hash(&self) -> Option<u64>;
}

/// Builds an empty engine of `kind` with the capacities `limits`.
///
pub fn make_engine(kind: EngineKind, limits: Limits) -> Box<dyn ReplayEngine> {
    match kind {
        EngineKind::Fast => Box::new(engine::Engine::new(limits)),
        EngineKind::Reference => Box::new(engine::reference::ReferenceEngine::new(limits)),
    }
}

impl ReplayEngine for engine::Engine {
    fn margin_engine(&mut self) -> &mut dyn MarginEngine {
        self
    }

    fn state_hash(&self) -> Option<u64> {
        Some(engine::Engine::state_hash(self))
    }
}

impl ReplayEngine for engine::reference::ReferenceEngine {
    fn margin_engine(&mut self) -> &mut dyn MarginEngine {
        self
    }

    fn state_hash(&self) -> Option<u64> {
        None
    }
}
