//! One ring hop between two threads, measured as half a ping-pong round
//! trip (both threads busy-spinning): this crate's SPSC ring with a
//! 448-byte event slot, and crossbeam's `ArrayQueue` (MPMC) moving the same
//! value, for comparison.
//!
//! `cargo run --release -p daemon --example ring_hop [ROUND_TRIPS]`
//!
//! Also the one-way hop as a distribution (each message stamped).
//!
//! Needs two cores that are free: on a shared 2-vCPU host the figures are
//! noisy (medians of 3 runs in the crate README).

use std::sync::Arc;
use std::time::Instant;

use crossbeam_queue::ArrayQueue;
use daemon::ring::ring;
use daemon::ring_types::EngineInput;

fn spsc(round_trips: u32) -> f64 {
    let (mut ping_tx, mut ping_rx) = ring(1024, EngineInput::empty);
    let (mut pong_tx, mut pong_rx) = ring(1024, EngineInput::empty);
    let echo = std::thread::spawn(move || {
        let mut left = round_trips;
        while left > 0 {
            if let Some(seq) = ping_rx.try_pop_with(|slot| slot.origin.seq) {
                while !pong_tx.try_push_with(|slot| slot.origin.seq = seq) {
                    std::hint::spin_loop();
                }
                left -= 1;
            } else {
                std::hint::spin_loop();
            }
        }
    });
    let start = Instant::now();
    for i in 0..round_trips {
        while !ping_tx.try_push_with(|slot| slot.origin.seq = engine::Seq(u64::from(i))) {
            std::hint::spin_loop();
        }
        loop {
            if pong_rx.try_pop_with(|slot| slot.origin.seq).is_some() {
                break;
            }
            std::hint::spin_loop();
        }
    }
    let elapsed = start.elapsed();
    echo.join().expect("echo thread");
    elapsed.as_nanos() as f64 / f64::from(round_trips) / 2.0
}

fn array_queue(round_trips: u32) -> f64 {
    let ping = Arc::new(ArrayQueue::<EngineInput>::new(1024));
    let pong = Arc::new(ArrayQueue::<EngineInput>::new(1024));
    let (ping2, pong2) = (ping.clone(), pong.clone());
    let echo = std::thread::spawn(move || {
        let mut left = round_trips;
        while left > 0 {
            if let Some(value) = ping2.pop() {
                let mut value = value;
                while let Err(back) = pong2.push(value) {
                    value = back;
                    std::hint::spin_loop();
                }
                left -= 1;
            } else {
                std::hint::spin_loop();
            }
        }
    });
    let start = Instant::now();
    for i in 0..round_trips {
        let mut value = EngineInput::empty();
        value.origin.seq = engine::Seq(u64::from(i));
        while let Err(back) = ping.push(value) {
            value = back;
            std::hint::spin_loop();
        }
        while pong.pop().is_none() {
            std::hint::spin_loop();
        }
    }
    let elapsed = start.elapsed();
    echo.join().expect("echo thread");
    elapsed.as_nanos() as f64 / f64::from(round_trips) / 2.0
}

/// One-way hop latency: the producer stamps each message with the time
/// since a shared epoch and sends one every ~2 µs; the consumer (spinning)
/// records arrival − stamp. Median and tail of the distribution, robust to
/// the occasional descheduling that ruins a ping-pong mean on a busy host.
fn one_way(messages: u32) -> (u64, u64, u64) {
    let epoch = Instant::now();
    let (mut tx, mut rx) = ring(1024, EngineInput::empty);
    let consumer = std::thread::spawn(move || {
        let mut samples = Vec::with_capacity(messages as usize);
        while samples.len() < messages as usize {
            match rx.try_pop_with(|slot| slot.origin.recv_mono_ns) {
                Some(sent) => {
                    let now = epoch.elapsed().as_nanos() as u64;
                    samples.push(now.saturating_sub(sent));
                }
                None => std::hint::spin_loop(),
            }
        }
        samples
    });
    for _ in 0..messages {
        let pause = Instant::now();
        while pause.elapsed().as_nanos() < 2_000 {
            std::hint::spin_loop();
        }
        let stamp = epoch.elapsed().as_nanos() as u64;
        while !tx.try_push_with(|slot| slot.origin.recv_mono_ns = stamp) {
            std::hint::spin_loop();
        }
    }
    let mut samples = consumer.join().expect("consumer");
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.9), at(0.99))
}

fn main() {
    let round_trips: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    // Warm-up, then measure.
    spsc(10_000);
    array_queue(10_000);
    println!(
        "one hop (half a round trip), {round_trips} round trips, slot {} bytes",
        std::mem::size_of::<EngineInput>()
    );
    println!(
        "daemon::ring (SPSC, in-place slots): {:.0} ns",
        spsc(round_trips)
    );
    println!(
        "crossbeam ArrayQueue (by value):     {:.0} ns",
        array_queue(round_trips)
    );
    let (p50, p90, p99) = one_way(round_trips);
    println!("daemon::ring one way (stamped, {round_trips} messages): p50 {p50} ns p90 {p90} ns p99 {p99} ns");
}
