//! Progress for long-running commands: a live line on a terminal, plain
//! periodic log lines otherwise.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct Progress {
    what: &'static str,
    total: Option<u64>,
    started: Instant,
    last_report: Instant,
    terminal: bool,
}

impl Progress {
    pub fn new(what: &'static str, total: Option<u64>) -> Self {
        let now = Instant::now();
        Progress {
            what,
            total,
            started: now,
            last_report: now,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// For work whose size is learnt after it starts.
    pub fn set_total(&mut self, total: u64) {
        self.total = Some(total);
    }

    /// Reports `done` items; throttled to a few times a second on a
    /// terminal and every 5 s in logs.
    pub fn update(&mut self, done: u64) {
        let every = if self.terminal {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        if self.last_report.elapsed() < every {
            return;
        }
        self.last_report = Instant::now();
        let line = self.line(done);
        if self.terminal {
            let mut err = std::io::stderr();
            let _ = write!(err, "\r{line}\x1b[K");
            let _ = err.flush();
        } else {
            tracing::info!("{line}");
        }
    }

    pub fn finish(&mut self, done: u64) {
        let line = self.line(done);
        if self.terminal {
            let _ = writeln!(std::io::stderr(), "\r{line}\x1b[K");
        } else {
            tracing::info!("{line}");
        }
    }

    fn line(&self, done: u64) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-6);
        let rate = done as f64 / secs;
        match self.total {
            Some(total) if total > 0 => {
                let left = if rate > 0.0 {
                    (total.saturating_sub(done)) as f64 / rate
                } else {
                    0.0
                };
                format!(
                    "{}: {done}/{total} events ({:.0}%), {rate:.0} events/s, {left:.0}s left",
                    self.what,
                    100.0 * done as f64 / total as f64
                )
            }
            _ => format!(
                "{}: {done} events, {rate:.0} events/s, {secs:.1}s",
                self.what
            ),
        }
    }
}
