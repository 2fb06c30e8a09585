//! Appending does not allocate in steady state (a counting allocator).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::*;
use engine::Seq;
use journal::{FlushPolicy, InputJournal, JournalOptions, OutputJournal};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn count() {
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    f();
    COUNTING.with(|on| on.set(false));
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn append_does_not_allocate_in_steady_state() {
    // Big segments (no roll in the measured window) and no inline flushes:
    // the steady state of an appender with a syncer thread.
    let options = JournalOptions {
        segment_bytes: 64 << 20,
        flush: FlushPolicy {
            every_records: 0,
            ..FlushPolicy::default()
        },
        ..JournalOptions::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut input = InputJournal::open(dir.path().join("in"), options).unwrap();
    let mut output = OutputJournal::open(dir.path().join("out"), options).unwrap();
    let records: Vec<_> = (1..=20_000).map(record_for).collect();
    let liquidations: Vec<_> = (1..=20_000).map(liquidation_for).collect();
    // Warm-up: every event variant, the largest leg count.
    for record in &records[..100] {
        input.append(record).unwrap();
    }
    for (i, (liquidation, legs)) in liquidations[..100].iter().enumerate() {
        output
            .append_liquidation(Seq(i as u64 + 1), liquidation, legs)
            .unwrap();
    }
    let allocations = allocations_during(|| {
        for record in &records[100..] {
            input.append(record).unwrap();
        }
        for (i, (liquidation, legs)) in liquidations[100..].iter().enumerate() {
            let seq = Seq(i as u64 + 101);
            output.append_liquidation(seq, liquidation, legs).unwrap();
            output.append_halt(seq, &halt_for(seq.0)).unwrap();
        }
    });
    assert_eq!(allocations, 0);
    // The counter does count.
    assert!(allocations_during(|| drop(std::hint::black_box(vec![1u8; 10]))) > 0);
    assert_eq!(input.stats().rolls, 0);
    input.close().unwrap();
    output.close().unwrap();
    assert_eq!(verify_inputs(&dir.path().join("in")), 20_000);
}
