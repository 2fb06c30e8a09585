//! A bounded single-producer single-consumer ring of preallocated slots.
//!
//! Slots are built once at creation and reused in place: the producer fills
//! a slot through `&mut T` ([`Producer::try_push_with`]) and the consumer
//! reads it through `&T` ([`Consumer::try_pop_with`]), so a message with a
//! large fixed array (a liquidation's 64 legs) is never moved or allocated,
//! and only the fields a message uses are written.
//!
//! Classic Lamport ring: the producer owns `tail`, the consumer `head`, each
//! on its own cache line; each side caches the other's index and reloads it
//! only when the ring looks full (empty), so a hop costs one cache-line
//! transfer per side in steady state. A full ring makes the producer wait:
//! callers retry (nothing is ever dropped).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Keeps a value on its own cache line pair (adjacent-line prefetch).
#[repr(align(128))]
struct Padded<T>(T);

struct Shared<T> {
    slots: Box<[UnsafeCell<T>]>,
    mask: usize,
    /// Next slot the consumer reads (written by the consumer only).
    head: Padded<AtomicUsize>,
    /// Next slot the producer writes (written by the producer only).
    tail: Padded<AtomicUsize>,
}

// SAFETY: a slot is accessed by the producer only between its claim and the
// release-store of `tail`, and by the consumer only after acquiring that
// `tail` and before its release-store of `head`: never by both at once.
// Values cross threads, hence `T: Send`.
unsafe impl<T: Send> Sync for Shared<T> {}
unsafe impl<T: Send> Send for Shared<T> {}

/// The writing end.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    tail: usize,
    head_cache: usize,
}

/// The reading end.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    head: usize,
    tail_cache: usize,
}

/// Occupancy of a ring, readable from any thread (metrics).
#[derive(Clone)]
pub struct Gauge<T> {
    shared: Arc<Shared<T>>,
}

/// A ring of `slots` (a power of two ≥ 2) slots, each built by `init`.
///
/// # Panics
/// If `slots` is not a power of two ≥ 2 (configuration is validated first).
pub fn ring<T: Send>(slots: usize, mut init: impl FnMut() -> T) -> (Producer<T>, Consumer<T>) {
    assert!(
        slots.is_power_of_two() && slots >= 2,
        "ring slots must be a power of two >= 2"
    );
    let slots: Box<[UnsafeCell<T>]> = (0..slots).map(|_| UnsafeCell::new(init())).collect();
    let mask = slots.len() - 1;
    let shared = Arc::new(Shared {
        slots,
        mask,
        head: Padded(AtomicUsize::new(0)),
        tail: Padded(AtomicUsize::new(0)),
    });
    (
        Producer {
            shared: shared.clone(),
            tail: 0,
            head_cache: 0,
        },
        Consumer {
            shared,
            head: 0,
            tail_cache: 0,
        },
    )
}

impl<T: Send> Producer<T> {
    /// Fills the next free slot with `fill` and publishes it; false (and
    /// `fill` not called) when the ring is full.
    #[inline]
    pub fn try_push_with(&mut self, fill: impl FnOnce(&mut T)) -> bool {
        let capacity = self.shared.mask + 1;
        if self.tail.wrapping_sub(self.head_cache) == capacity {
            self.head_cache = self.shared.head.0.load(Ordering::Acquire);
            if self.tail.wrapping_sub(self.head_cache) == capacity {
                return false;
            }
        }
        let slot = &self.shared.slots[self.tail & self.shared.mask];
        // SAFETY: the slot is free (the consumer released it: acquired via
        // `head` above) and unpublished, so no one else touches it.
        fill(unsafe { &mut *slot.get() });
        self.tail = self.tail.wrapping_add(1);
        self.shared.tail.0.store(self.tail, Ordering::Release);
        true
    }

    /// Whether the ring has no free slot (as last seen).
    pub fn is_full(&mut self) -> bool {
        self.head_cache = self.shared.head.0.load(Ordering::Acquire);
        self.tail.wrapping_sub(self.head_cache) == self.shared.mask + 1
    }

    pub fn gauge(&self) -> Gauge<T> {
        Gauge {
            shared: self.shared.clone(),
        }
    }
}

impl<T: Send> Consumer<T> {
    /// Reads the oldest published slot with `read` and frees it; `None`
    /// (and `read` not called) when the ring is empty.
    #[inline]
    pub fn try_pop_with<R>(&mut self, read: impl FnOnce(&T) -> R) -> Option<R> {
        if self.head == self.tail_cache {
            self.tail_cache = self.shared.tail.0.load(Ordering::Acquire);
            if self.head == self.tail_cache {
                return None;
            }
        }
        let slot = &self.shared.slots[self.head & self.shared.mask];
        // SAFETY: the slot was published (acquired via `tail`) and is not
        // yet released, so the producer does not touch it.
        let result = read(unsafe { &*slot.get() });
        self.head = self.head.wrapping_add(1);
        self.shared.head.0.store(self.head, Ordering::Release);
        Some(result)
    }

    pub fn gauge(&self) -> Gauge<T> {
        Gauge {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Gauge<T> {
    /// Messages waiting (a snapshot; exact when both ends are idle).
    pub fn len(&self) -> usize {
        let head = self.shared.head.0.load(Ordering::Acquire);
        let tail = self.shared.tail.0.load(Ordering::Acquire);
        tail.wrapping_sub(head).min(self.capacity())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.shared.mask + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_full_and_empty() {
        let (mut tx, mut rx) = ring(4, || 0u64);
        assert_eq!(rx.try_pop_with(|v| *v), None);
        for i in 1..=4 {
            assert!(tx.try_push_with(|slot| *slot = i));
        }
        assert!(!tx.try_push_with(|_| unreachable!("full")));
        assert!(tx.is_full());
        assert_eq!(tx.gauge().len(), 4);
        assert_eq!(rx.try_pop_with(|v| *v), Some(1));
        assert!(tx.try_push_with(|slot| *slot = 5));
        let drained: Vec<_> = std::iter::from_fn(|| rx.try_pop_with(|v| *v)).collect();
        assert_eq!(drained, [2, 3, 4, 5]);
        assert!(rx.gauge().is_empty());
    }

    #[test]
    fn crosses_threads_in_order_without_loss() {
        const N: u64 = 200_000;
        let (mut tx, mut rx) = ring(64, || 0u64);
        let producer = std::thread::spawn(move || {
            for i in 0..N {
                while !tx.try_push_with(|slot| *slot = i) {
                    std::thread::yield_now();
                }
            }
        });
        let mut expected = 0;
        while expected < N {
            match rx.try_pop_with(|v| *v) {
                Some(v) => {
                    assert_eq!(v, expected);
                    expected += 1;
                }
                None => std::thread::yield_now(),
            }
        }
        producer.join().expect("producer");
    }
}
