//! One publish target's thread: connect, watch, and after any failure wait
//! (capped exponential backoff with jitter, so a fleet of boards does not
//! knock on a restarted server in step) and connect again, until stopped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::session::{Outcome, Session};
use crate::config::PublishTarget;
use crate::metrics::registry::Counter;
use crate::output::Context;

/// The first wait after a failure; doubles up to [`MAX_WAIT`].
pub const FIRST_WAIT: Duration = Duration::from_millis(500);
pub const MAX_WAIT: Duration = Duration::from_secs(8);
/// A connection that lasted this long resets the backoff.
const HEALTHY: Duration = Duration::from_secs(30);
/// How often the thread looks at its pipeline and the stop flag.
pub const LOOK: Duration = Duration::from_millis(100);

/// Capped exponential backoff; each wait is jittered by ±20 %.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: FIRST_WAIT }
    }
}

impl Backoff {
    /// The wait before the next attempt, `jitter` in [0, 1) choosing where
    /// in ±20 % it falls.
    pub fn wait(&mut self, jitter: f64) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(MAX_WAIT);
        base.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
    }

    pub fn reset(&mut self) {
        self.next = FIRST_WAIT;
    }
}

/// What `/api/outputs` says about a target.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub name: String,
    pub protocol: &'static str,
    /// The URL without its secrets.
    pub url: String,
    /// "connecting", "publishing", "stalled" (connected, but the server has
    /// taken nothing for a moment), or "waiting" to try again.
    pub state: &'static str,
    pub bytes_sent: u64,
    pub reconnects: u64,
    pub last_error: Option<String>,
}

pub type Statuses = Arc<Mutex<Vec<Status>>>;

pub fn describe(statuses: &Statuses) -> serde_json::Value {
    let targets = statuses.lock().map(|s| s.clone()).unwrap_or_default();
    serde_json::json!({ "targets": targets })
}

/// A target's thread and how to stop it.
pub struct Worker {
    stop: Arc<AtomicBool>,
    /// Set by fault injection: the connection fails now.
    broken: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// What the thread works with.
struct Job {
    target: PublishTarget,
    context: Context,
    statuses: Statuses,
    index: usize,
    bytes: Counter,
    reconnects: Counter,
    stop: Arc<AtomicBool>,
    broken: Arc<AtomicBool>,
}

impl Worker {
    pub fn spawn(target: PublishTarget, context: Context, statuses: Statuses) -> Result<Self> {
        let label = super::interned(&target.name);
        let registry = &context.registry;
        let bytes = registry.counter("publish", super::BYTES_SENT, Some(label));
        let reconnects = registry.counter("publish", super::RECONNECTS, Some(label));
        let protocol = target
            .protocol()
            .context("a publish URL was not validated")?;
        let index = {
            let mut statuses = statuses
                .lock()
                .map_err(|_| anyhow::anyhow!("the publish status lock is poisoned"))?;
            statuses.push(Status {
                name: target.name.clone(),
                protocol: protocol.name(),
                url: target.url.clone(),
                state: "connecting",
                bytes_sent: bytes.get(),
                reconnects: reconnects.get(),
                last_error: None,
            });
            statuses.len() - 1
        };
        let stop = Arc::new(AtomicBool::new(false));
        let broken = Arc::new(AtomicBool::new(false));
        let job = Job {
            target,
            context,
            statuses,
            index,
            bytes,
            reconnects,
            stop: stop.clone(),
            broken: broken.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("publish-{}", job.target.name))
            .spawn(move || job.run())
            .context("starting a publish thread")?;
        Ok(Self {
            stop,
            broken,
            thread,
        })
    }

    pub fn break_now(&self) {
        self.broken.store(true, Ordering::Relaxed);
    }

    pub fn ask_to_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits for the thread to tear its pipeline down.
    pub fn join(self) {
        self.ask_to_stop();
        let _ = self.thread.join();
    }
}

impl Job {
    fn run(self) {
        let name = &self.target.name;
        let mut backoff = Backoff::default();
        while !self.stopped() {
            self.set(|s| s.state = "connecting");
            let attempt = Instant::now();
            let outcome = match Session::start(&self.target, &self.context, &self.bytes) {
                Ok(session) => {
                    let outcome = self.watch(&session);
                    session.stop();
                    outcome
                }
                Err(err) => Outcome::Failed(format!("{err:#}")),
            };
            let reason = match outcome {
                Outcome::Stopped => break,
                Outcome::Failed(reason) => reason,
            };
            if attempt.elapsed() >= HEALTHY {
                backoff.reset();
            }
            let wait = backoff.wait(fastrand::f64());
            tracing::warn!(
                "publish {name}: {reason}; connecting again in {:.1} s",
                wait.as_secs_f64()
            );
            self.reconnects.add(1);
            self.set(|s| {
                s.state = "waiting";
                s.last_error = Some(reason.clone());
            });
            let until = Instant::now() + wait;
            while Instant::now() < until && !self.stopped() {
                std::thread::sleep(LOOK);
            }
        }
    }

    /// Follows the session until it fails or the target is stopped.
    fn watch(&self, session: &Session) -> Outcome {
        let mut publishing = false;
        loop {
            if self.stopped() {
                return Outcome::Stopped;
            }
            if self.broken.swap(false, Ordering::Relaxed) {
                return Outcome::Failed("injected fault: the connection failed".to_owned());
            }
            if let Some(failed) = session.look(LOOK) {
                return failed;
            }
            let sending = session.sending();
            if sending && !publishing {
                tracing::info!(
                    "publish {}: sending to {}",
                    self.target.name,
                    self.target.url
                );
            }
            publishing = sending;
            let state = match (sending, session.has_sent()) {
                (true, _) => "publishing",
                // It was sending and has stopped taking the stream.
                (false, true) => "stalled",
                (false, false) => "connecting",
            };
            self.set(|s| s.state = state);
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Changes this target's status (the counters are copied in each time)
    /// and tells the registry, which `/api/outputs` reads.
    fn set(&self, change: impl FnOnce(&mut Status)) {
        if let Ok(mut statuses) = self.statuses.lock() {
            if let Some(status) = statuses.get_mut(self.index) {
                change(status);
                status.bytes_sent = self.bytes.get();
                status.reconnects = self.reconnects.get();
            }
        }
        self.context
            .registry
            .describe("publish", describe(&self.statuses));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_within_their_jitter() {
        let mut backoff = Backoff::default();
        let waits: Vec<u64> = (0..6)
            .map(|_| backoff.wait(0.5).as_millis() as u64)
            .collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 8000]);
        let mut backoff = Backoff::default();
        assert_eq!(backoff.wait(0.0), Duration::from_millis(400));
        assert_eq!(backoff.wait(1.0), Duration::from_millis(1200));
        backoff.reset();
        assert_eq!(backoff.wait(0.5), FIRST_WAIT);
    }
}
