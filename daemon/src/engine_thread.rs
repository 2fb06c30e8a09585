//! The engine thread: pops inputs, applies them, pushes outputs. Nothing
//! else — no clock, no I/O, no allocation per event (outputs are written
//! into preallocated ring slots).

use std::io;
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;

use engine::{Engine, Halt, Leg, Liquidation, MarginEngine, Seq, Sink};

use crate::config::Idle;
use crate::ring::{Consumer, Producer};
use crate::ring_types::{Command, EngineInput, EngineOutput, Origin, OutputKind, LEGS_MAX};

/// A snapshot taken on the engine thread: the state after input `seq`.
pub type SnapshotMessage = (Seq, engine::SnapshotBytes);

/// Starts the engine thread; it returns the engine when told to stop.
///
/// `core`: pin the thread there (a warning on stderr when the host does
/// not allow it; the thread then runs unpinned).
///
/// # Errors
/// The thread cannot be spawned.
pub fn spawn(
    engine: Engine,
    inputs: Consumer<EngineInput>,
    outputs: Producer<EngineOutput>,
    core: Option<usize>,
    idle: Idle,
    snapshots: Option<Sender<SnapshotMessage>>,
) -> io::Result<JoinHandle<Engine>> {
    std::thread::Builder::new()
        .name("liqd-engine".into())
        .spawn(move || {
            if let Some(core) = core {
                pin_current_thread("engine", core);
            }
            let mut engine = engine;
            run(&mut engine, inputs, outputs, idle, snapshots.as_ref());
            engine
        })
}

/// Pins the calling thread to `core`; on failure prints a warning and
/// returns false (the thread keeps running unpinned).
///
/// Tried directly (not checked against this thread's current mask, which a
/// thread inherits from its creator: a pinned gateway thread would hide the
/// other cores).
pub fn pin_current_thread(name: &str, core: usize) -> bool {
    if core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        return true;
    }
    let available = core_affinity::get_core_ids().unwrap_or_default();
    eprintln!(
        "warning: cannot pin the {name} thread to core {core} (this thread may run on {:?}); running unpinned",
        available.iter().map(|c| c.id).collect::<Vec<_>>()
    );
    false
}

/// The loop: until a [`Command::Stop`].
pub fn run(
    engine: &mut Engine,
    mut inputs: Consumer<EngineInput>,
    mut outputs: Producer<EngineOutput>,
    idle: Idle,
    snapshots: Option<&Sender<SnapshotMessage>>,
) {
    loop {
        let stopped = inputs.try_pop_with(|input| match input.command {
            Command::Apply => {
                let mut sink = RingSink {
                    outputs: &mut outputs,
                    origin: input.origin,
                    idle,
                };
                let accepted = engine
                    .apply(input.origin.seq, &input.event, &mut sink)
                    .is_ok();
                push(&mut outputs, idle, |slot| {
                    slot.kind = OutputKind::Done { accepted };
                    slot.origin = input.origin;
                });
                false
            }
            Command::Status => {
                let kind = OutputKind::Status {
                    accounts: engine.account_count() as u64,
                    liquidating: engine.accounts_in_cooldown(),
                    halted: engine.halted_instruments(),
                };
                push(&mut outputs, idle, |slot| {
                    slot.kind = kind;
                    slot.origin = input.origin;
                });
                false
            }
            Command::Snapshot => {
                // Rare (every `snapshot.interval_events`): serializing the
                // state allocates and takes time proportional to it; the
                // disk write happens on the writer thread.
                let sent = snapshots
                    .is_some_and(|tx| tx.send((input.origin.seq, engine.snapshot())).is_ok());
                push(&mut outputs, idle, |slot| {
                    slot.kind = OutputKind::SnapshotTaken { sent };
                    slot.origin = input.origin;
                });
                false
            }
            Command::Stop => {
                push(&mut outputs, idle, |slot| {
                    slot.kind = OutputKind::Stopped;
                    slot.origin = input.origin;
                });
                true
            }
        });
        match stopped {
            Some(true) => return,
            Some(false) => {}
            None => idle.wait(),
        }
    }
}

/// Pushes, waiting while the output ring is full (never drops).
#[inline]
fn push(outputs: &mut Producer<EngineOutput>, idle: Idle, fill: impl Fn(&mut EngineOutput)) {
    while !outputs.try_push_with(&fill) {
        idle.wait();
    }
}

/// Writes the engine's decisions straight into output-ring slots.
struct RingSink<'a> {
    outputs: &'a mut Producer<EngineOutput>,
    origin: Origin,
    idle: Idle,
}

impl Sink for RingSink<'_> {
    fn halt(&mut self, halt: &Halt) {
        let origin = self.origin;
        push(self.outputs, self.idle, |slot| {
            slot.kind = OutputKind::Halt;
            slot.origin = origin;
            slot.halt = *halt;
        });
    }

    fn liquidation(&mut self, liquidation: &Liquidation, legs: &[Leg]) {
        // At most one leg per open position, and positions per account are
        // capped at PER_ACCOUNT_MAX = LEGS_MAX (asserted in config.rs).
        let count = legs.len().min(LEGS_MAX);
        let origin = self.origin;
        push(self.outputs, self.idle, |slot| {
            slot.kind = OutputKind::Liquidation;
            slot.origin = origin;
            slot.liquidation = *liquidation;
            slot.leg_count = count as u8;
            slot.legs[..count].copy_from_slice(&legs[..count]);
        });
    }
}
