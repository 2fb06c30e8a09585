//! What travels on the two rings between the gateway and engine threads.
//!
//! Both message types are fixed-size and built once per slot at start-up;
//! the engine thread only writes fields into slots it claims, so it never
//! allocates per event. A liquidation's legs (at most
//! [`engine::limits::PER_ACCOUNT_MAX`] = 64, one per open position) travel
//! in a fixed array.

use engine::{
    AccountId, Dec8, Event, Funding, Halt, HaltReason, InstrumentId, Leg, Liquidation, Seq,
    UnixNanos,
};
use journal::SourceStream;

/// Most legs of one liquidation (one per open position).
pub const LEGS_MAX: usize = 64;

/// Where an input came from; the engine thread copies it into every output
/// of that input so the gateway side can journal and publish without a
/// lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// Journal sequence of the input.
    pub seq: Seq,
    pub src_stream: SourceStream,
    /// MoldUDP64 sequence on its stream (0 for configuration).
    pub src_seq: u64,
    /// Gateway monotonic clock at receive (ns since the pipeline started);
    /// the engine thread never reads a clock, it only carries this back.
    pub recv_mono_ns: u64,
    /// Receive time on the wall clock as the gateway reported it (the
    /// kernel's socket timestamp), ns since the Unix epoch.
    pub recv_wall_ns: u64,
}

impl Origin {
    pub const NONE: Origin = Origin {
        seq: Seq(0),
        src_stream: SourceStream::Config,
        src_seq: 0,
        recv_mono_ns: 0,
        recv_wall_ns: 0,
    };
}

/// What the gateway asks of the engine thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Apply `event`.
    Apply,
    /// Answer [`OutputKind::Status`] with the engine's counts (for the
    /// outbound `S` message), in order with the inputs.
    Status,
    /// Send the engine's snapshot (state after `origin.seq`) to the
    /// snapshot writer thread; answer [`OutputKind::SnapshotTaken`].
    Snapshot,
    /// Answer [`OutputKind::Stopped`] and exit (every earlier input has
    /// been applied and its outputs pushed).
    Stop,
}

/// One input-ring slot.
#[derive(Clone, Copy, Debug)]
pub struct EngineInput {
    pub command: Command,
    pub origin: Origin,
    pub event: Event,
}

impl EngineInput {
    /// A slot's initial contents.
    pub fn empty() -> EngineInput {
        EngineInput {
            command: Command::Stop,
            origin: Origin::NONE,
            event: Event::Funding(Funding {
                ts: UnixNanos(0),
                instrument: InstrumentId(0),
                rate: engine::Fixed8(0),
            }),
        }
    }
}

/// What an output-ring slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// `halt` is set.
    Halt,
    /// `liquidation` and `legs[..leg_count]` are set.
    Liquidation,
    /// The input `origin.seq` is done (after all its outputs).
    Done { accepted: bool },
    /// Answer to [`Command::Status`].
    Status {
        accounts: u64,
        liquidating: u64,
        halted: u32,
    },
    /// Answer to [`Command::Snapshot`] (`sent`: the writer took it).
    SnapshotTaken { sent: bool },
    /// Answer to [`Command::Stop`].
    Stopped,
}

/// One output-ring slot.
#[derive(Clone, Copy, Debug)]
pub struct EngineOutput {
    pub kind: OutputKind,
    pub origin: Origin,
    pub halt: Halt,
    pub liquidation: Liquidation,
    pub leg_count: u8,
    pub legs: [Leg; LEGS_MAX],
}

const EMPTY_LEG: Leg = Leg {
    instrument: InstrumentId(0),
    qty: Dec8(0),
    limit_price: Dec8(0),
};

impl EngineOutput {
    /// A slot's initial contents.
    pub fn empty() -> EngineOutput {
        EngineOutput {
            kind: OutputKind::Stopped,
            origin: Origin::NONE,
            halt: Halt {
                ts: UnixNanos(0),
                seq: Seq(0),
                instrument: InstrumentId(0),
                reason: HaltReason::Stale,
                on: false,
            },
            liquidation: Liquidation {
                ts: UnixNanos(0),
                seq: Seq(0),
                account: AccountId(0),
                equity: Dec8(0),
                maint_margin: Dec8(0),
                partial: false,
                bankrupt: false,
                escalation: false,
            },
            leg_count: 0,
            legs: [EMPTY_LEG; LEGS_MAX],
        }
    }

    /// The liquidation's legs.
    pub fn legs(&self) -> &[Leg] {
        &self.legs[..usize::from(self.leg_count).min(LEGS_MAX)]
    }
}
