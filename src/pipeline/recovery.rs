//! Camera loss and recovery. Every tick the supervisor looks at whether the
//! live source delivered frames; when it stops (a stall for
//! `camera.stall_timeout_ms`, an error, an unplug) the outputs switch to the
//! slate and the source is rebuilt with capped exponential backoff until
//! frames flow again, when the outputs switch back. Viewers stay connected
//! throughout: the encoder and outputs never stop.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::CameraPipeline;

/// First retry delay after a loss; doubles up to the configured cap.
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// What the metrics and logs report about the camera.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CameraStatus {
    /// "live" or "lost".
    pub state: &'static str,
    pub losses: u64,
    pub reconnects: u64,
}

/// Shared, read by the sampler.
#[derive(Clone, Default)]
pub struct SharedStatus(Arc<Mutex<CameraStatus>>);

impl SharedStatus {
    pub fn get(&self) -> CameraStatus {
        self.0.lock().map(|s| *s).unwrap_or_default()
    }

    fn set(&self, status: CameraStatus) {
        if let Ok(mut shared) = self.0.lock() {
            *shared = status;
        }
    }
}

enum State {
    Live,
    Lost {
        since: Instant,
        next_retry: Instant,
        backoff: Duration,
        shown_seconds: u64,
        /// Captured frames when the current source was (re)opened: only
        /// frames beyond it prove the camera is back. None while the source
        /// that failed is still in place: frames it had in flight prove
        /// nothing, only a reopened source can bring the camera back.
        baseline: Option<u64>,
        /// When the last reopening started: how long a returning camera
        /// took to deliver is measured from here.
        reopened: Option<Instant>,
    },
}

pub struct Recovery {
    state: State,
    status: CameraStatus,
    shared: SharedStatus,
    stall_timeout: Duration,
    max_backoff: Duration,
    /// Captured-frame count at the last tick, and when it last moved.
    last_captured: u64,
    last_moved: Instant,
}

impl Recovery {
    pub fn new(stall_timeout: Duration, max_backoff: Duration, shared: SharedStatus) -> Self {
        let status = CameraStatus {
            state: "live",
            ..CameraStatus::default()
        };
        shared.set(status);
        Self {
            state: State::Live,
            status,
            shared,
            stall_timeout,
            max_backoff,
            last_captured: 0,
            last_moved: Instant::now(),
        }
    }

    /// New loss and retry timings, from a live configuration change.
    pub fn set_timing(&mut self, stall_timeout: Duration, max_backoff: Duration) {
        self.stall_timeout = stall_timeout;
        self.max_backoff = max_backoff;
    }

    /// Called every ~100 ms.
    pub fn tick(&mut self, camera: &CameraPipeline) {
        let now = Instant::now();
        let captured = camera.counters.read().captured_frames;
        if captured != self.last_captured {
            self.last_captured = captured;
            self.last_moved = now;
        }
        let flowing = now.duration_since(self.last_moved) < Duration::from_millis(300);
        match &mut self.state {
            State::Live => {
                let quiet = now.duration_since(self.last_moved);
                if quiet > self.stall_timeout {
                    // A stalled source may simply resume.
                    self.lose(
                        camera,
                        &format!("no frame for {:.1} s", quiet.as_secs_f64()),
                        false,
                    );
                }
            }
            State::Lost {
                since,
                next_retry,
                backoff,
                shown_seconds,
                baseline,
                reopened,
            } => {
                let lost_for = now.duration_since(*since);
                // A few new frames, still coming: the camera is back.
                if flowing && baseline.is_some_and(|b| captured >= b + 3) {
                    let since_reopen = reopened
                        .map(|at| {
                            format!(", {:.2} s after reopening it", at.elapsed().as_secs_f64())
                        })
                        .unwrap_or_default();
                    camera.sources.show_live();
                    self.status.reconnects += 1;
                    self.status.state = "live";
                    self.state = State::Live;
                    self.shared.set(self.status);
                    tracing::info!(
                        reconnects = self.status.reconnects,
                        "camera is back after {:.1} s{since_reopen}; showing live video",
                        lost_for.as_secs_f64()
                    );
                    return;
                }
                if lost_for.as_secs() != *shown_seconds {
                    *shown_seconds = lost_for.as_secs();
                    camera.sources.slate.show_lost_for(*shown_seconds);
                }
                if now >= *next_retry {
                    tracing::info!(
                        "camera: reopening the source (lost {:.0} s ago)",
                        lost_for.as_secs_f64()
                    );
                    *reopened = Some(now);
                    let opened = camera.sources.replace();
                    if let Err(err) = &opened {
                        tracing::warn!("camera: reopening failed: {err:#}");
                    }
                    *baseline = Some(camera.counters.read().captured_frames);
                    *backoff = (*backoff * 2).min(self.max_backoff);
                    // A source that opened gets as long as a live one to
                    // deliver before it is torn down again: a camera can
                    // take a second to start streaming.
                    let wait = if opened.is_ok() {
                        (*backoff).max(self.stall_timeout)
                    } else {
                        *backoff
                    };
                    *next_retry = Instant::now() + wait;
                }
            }
        }
    }

    /// The live source reported an error: the camera is gone now.
    pub fn source_failed(&mut self, camera: &CameraPipeline, reason: &str) {
        match self.state {
            State::Live => self.lose(camera, reason, true),
            State::Lost { .. } => {
                tracing::debug!("camera source failed again while lost: {reason}")
            }
        }
    }

    /// Shows the slate; `failed` when the source reported an error (it will
    /// deliver nothing more), not merely went quiet.
    fn lose(&mut self, camera: &CameraPipeline, reason: &str, failed: bool) {
        camera.sources.show_slate();
        camera.sources.slate.show_lost_for(0);
        self.status.losses += 1;
        self.status.state = "lost";
        self.shared.set(self.status);
        let now = Instant::now();
        self.state = State::Lost {
            since: now,
            next_retry: now + FIRST_RETRY,
            backoff: FIRST_RETRY,
            shown_seconds: 0,
            baseline: (!failed).then(|| camera.counters.read().captured_frames),
            reopened: None,
        };
        tracing::warn!(
            losses = self.status.losses,
            "camera lost ({reason}); showing the slate, retrying"
        );
    }
}
