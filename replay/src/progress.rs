//! A hand-written progress line on standard error for long replays: a bar
//! when the total is known (a JSONL file's bytes), else a running count of
//! events, with the rate. Off when standard error is not a terminal (or in
//! tests: [`Progress::hidden`]). It redraws at most ten times a second and
//! looks at the clock once every 4096 ticks, so it costs nothing measurable.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Ticks between two looks at the clock.
const TICKS_PER_CHECK: u64 = 4096;
const REDRAW_INTERVAL: Duration = Duration::from_millis(100);
const BAR_WIDTH: usize = 30;

/// A progress line (or nothing).
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    label: String,
    total: Option<u64>,
    ticks: u64,
    position: u64,
    started: Instant,
    drawn: Instant,
}

impl Progress {
    /// A progress line labelled `label`, shown only if standard error is a
    /// terminal.
    pub fn stderr(label: &str) -> Progress {
        Progress::new(label, std::io::stderr().is_terminal())
    }

    /// Never shows anything.
    pub fn hidden() -> Progress {
        Progress::new("", false)
    }

    fn new(label: &str, enabled: bool) -> Progress {
        let now = Instant::now();
        Progress {
            enabled,
            label: label.to_owned(),
            total: None,
            ticks: 0,
            position: 0,
            started: now,
            drawn: now,
        }
    }

    /// The total the position counts towards (bytes of a file).
    pub fn set_total(&mut self, total: u64) {
        self.total = Some(total);
    }

    /// One event done; `position` (bytes read, or the sequence) is asked
    /// for only when the line may be redrawn.
    #[inline]
    pub fn tick_with(&mut self, position: impl FnOnce() -> u64) {
        self.ticks += 1;
        if !self.enabled || !self.ticks.is_multiple_of(TICKS_PER_CHECK) {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.drawn) >= REDRAW_INTERVAL {
            self.position = position();
            self.drawn = now;
            self.draw();
        }
    }

    /// Clears the line.
    pub fn finish(&mut self) {
        if self.enabled && self.drawn != self.started {
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
    }

    fn draw(&self) {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
        // Display only: a rate for humans, not money.
        let rate = self.ticks as f64 / seconds;
        let bar = match self.total {
            Some(total) if total > 0 => {
                let done =
                    (self.position.min(total) as f64 / total as f64 * BAR_WIDTH as f64) as usize;
                format!(
                    "[{}{}] {:>3}% ",
                    "#".repeat(done),
                    "-".repeat(BAR_WIDTH - done),
                    self.position.min(total) * 100 / total
                )
            }
            _ => String::new(),
        };
        eprint!(
            "\r\x1b[2K{} {bar}{} events, {:.0} events/s",
            self.label, self.ticks, rate
        );
        let _ = std::io::stderr().flush();
    }
}
