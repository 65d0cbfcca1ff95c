//! Camera loss and recovery, as a pure step over time and frame progress.
//!
//! Whoever owns the camera looks every ~100 ms ([`Recovery::step`]) with the
//! clock's `now` and the count of frames the source has delivered, and
//! carries out the [`Action`]s it gets back. When frames stop (a stall of
//! `stall_timeout`, an error, an unplug) the outputs switch to the slate and
//! the source is reopened with capped exponential backoff until frames flow
//! again, when the outputs switch back. Viewers stay connected throughout:
//! the encoder and the outputs never stop. No clock is read here, so the
//! whole sequence is unit-tested step by step.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// First retry delay after a loss; doubles up to the configured cap.
pub const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Frames must have moved this recently to count as flowing.
const FLOWING: Duration = Duration::from_millis(300);
/// New frames a reopened source must deliver before it counts as back.
const FRAMES_TO_COME_BACK: u64 = 3;

/// What the metrics and logs report about the camera.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CameraStatus {
    /// "live" or "lost".
    pub state: &'static str,
    pub losses: u64,
    pub reconnects: u64,
    /// A reopening of the source is under way (it can take seconds).
    pub opening: bool,
    /// Reopenings tried since start.
    pub reopens: u64,
    /// At the last reconnect: from the start of the reopening that brought
    /// the camera back to its live video shown, in ms.
    pub reopen_to_live_ms: Option<u64>,
    /// While it is lost: why (the loss, then the last reopening's error).
    pub problem: Option<String>,
    /// Camera pipelines built since start (1, then one per rebuild: a
    /// configuration change, a failed pipeline, the GPIO button held).
    pub builds: u64,
}

/// The status, shared with the sampler.
#[derive(Clone, Default)]
pub struct SharedStatus(Arc<Mutex<CameraStatus>>);

impl SharedStatus {
    pub fn get(&self) -> CameraStatus {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn set(&self, status: CameraStatus) {
        if let Ok(mut shared) = self.0.lock() {
            *shared = status;
        }
    }
}

/// When a quiet source counts as lost, and the longest pause between
/// attempts to reopen it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub stall_timeout: Duration,
    pub max_backoff: Duration,
}

/// What the owner of the camera must do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Show the slate instead of the source.
    ShowSlate,
    /// Caption the slate with the seconds since the loss.
    Caption(u64),
    /// Throw the source away and open it again (slow: off the event loop),
    /// then report with [`Recovery::reopened`].
    Reopen,
    /// Frames are back: show the source again.
    ShowLive,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Live,
    Lost {
        since: Instant,
        next_retry: Instant,
        backoff: Duration,
        shown_seconds: u64,
        /// Frames delivered when the current source was (re)opened: only
        /// frames beyond it prove the camera is back. None while the source
        /// that failed is still in place: frames it had in flight prove
        /// nothing, only a reopened source can bring the camera back.
        baseline: Option<u64>,
        /// When the last reopening started: how long a returning camera
        /// took to deliver is measured from here (the open included).
        reopened: Option<Instant>,
    },
    /// A reopening is under way; nothing else is tried until it reports.
    Opening {
        since: Instant,
        backoff: Duration,
        shown_seconds: u64,
        started: Instant,
    },
}

pub struct Recovery {
    state: State,
    status: CameraStatus,
    timing: Timing,
    /// Frames delivered at the last step, and when that count last moved.
    last_captured: u64,
    last_moved: Instant,
}

impl Recovery {
    /// A camera just opened at `now`, expected to deliver frames.
    pub fn new(timing: Timing, now: Instant, captured: u64) -> Self {
        Self {
            state: State::Live,
            status: CameraStatus {
                state: "live",
                ..CameraStatus::default()
            },
            timing,
            last_captured: captured,
            last_moved: now,
        }
    }

    /// A camera that could not be opened (absent, or it did not start):
    /// the slate shows and reopening starts at once. Not counted as a
    /// loss: it was never there.
    pub fn missing(timing: Timing, now: Instant, reason: &str) -> Self {
        let mut recovery = Self::new(timing, now, 0);
        recovery.status.state = "lost";
        recovery.status.problem = Some(reason.to_owned());
        recovery.state = State::Lost {
            since: now,
            next_retry: now + FIRST_RETRY,
            backoff: FIRST_RETRY,
            shown_seconds: 0,
            baseline: None,
            reopened: None,
        };
        recovery
    }

    /// A camera closed on purpose (privacy mode) to open again now: the
    /// slate shows until it delivers. Neither a loss nor a problem.
    pub fn reopen_now(timing: Timing, now: Instant) -> Self {
        let mut recovery = Self::missing(timing, now, "opening");
        recovery.status.problem = None;
        if let State::Lost { next_retry, .. } = &mut recovery.state {
            *next_retry = now;
        }
        recovery
    }

    pub fn status(&self) -> CameraStatus {
        self.status.clone()
    }

    /// New loss and retry timings, from a live configuration change.
    pub fn set_timing(&mut self, timing: Timing) {
        self.timing = timing;
    }

    /// A look at the source: `captured` frames delivered so far.
    pub fn step(&mut self, now: Instant, captured: u64) -> Vec<Action> {
        if captured != self.last_captured {
            self.last_captured = captured;
            self.last_moved = now;
        }
        let quiet = now.saturating_duration_since(self.last_moved);
        match self.state {
            State::Live if quiet > self.timing.stall_timeout => {
                // A stalled source may simply resume: its frames count.
                let reason = format!("no frame for {:.1} s", quiet.as_secs_f64());
                self.lose(now, &reason, Some(captured))
            }
            State::Live => Vec::new(),
            State::Lost {
                since,
                next_retry,
                backoff,
                shown_seconds,
                baseline,
                reopened,
            } => {
                let came_back = baseline.is_some_and(|b| captured >= b + FRAMES_TO_COME_BACK);
                if quiet < FLOWING && came_back {
                    return self.back(now, since, reopened);
                }
                let mut actions = self.caption(now, since, shown_seconds);
                if now >= next_retry {
                    tracing::info!(
                        "camera: reopening the source (lost {:.0} s ago)",
                        now.saturating_duration_since(since).as_secs_f64()
                    );
                    self.state = State::Opening {
                        since,
                        backoff,
                        shown_seconds: self.shown_seconds(),
                        started: now,
                    };
                    self.status.opening = true;
                    self.status.reopens += 1;
                    actions.push(Action::Reopen);
                }
                actions
            }
            State::Opening {
                since,
                shown_seconds,
                ..
            } => self.caption(now, since, shown_seconds),
        }
    }

    /// The source in use reported an error: the camera is gone now.
    pub fn source_failed(&mut self, now: Instant, reason: &str) -> Vec<Action> {
        match self.state {
            State::Live => self.lose(now, reason, None),
            State::Lost { .. } | State::Opening { .. } => {
                tracing::debug!("camera source failed again while lost: {reason}");
                Vec::new()
            }
        }
    }

    /// A reopening asked for by [`Action::Reopen`] has finished, at `now`
    /// with `captured` frames delivered so far.
    pub fn reopened(&mut self, now: Instant, captured: u64, outcome: Result<(), String>) {
        let State::Opening {
            since,
            backoff,
            shown_seconds,
            started,
        } = self.state
        else {
            return;
        };
        self.status.opening = false;
        let backoff = (backoff * 2).min(self.timing.max_backoff);
        // A source that opened gets as long as a live one to deliver
        // before it is torn down again: a camera can take a second to
        // start streaming.
        let wait = match &outcome {
            Ok(()) => backoff.max(self.timing.stall_timeout),
            Err(err) => {
                tracing::warn!(
                    "camera: reopening failed after {:.2} s: {err}",
                    now.saturating_duration_since(started).as_secs_f64()
                );
                self.status.problem = Some(err.clone());
                backoff
            }
        };
        self.state = State::Lost {
            since,
            next_retry: now + wait,
            backoff,
            shown_seconds,
            baseline: Some(captured),
            reopened: Some(started),
        };
    }

    fn lose(&mut self, now: Instant, reason: &str, baseline: Option<u64>) -> Vec<Action> {
        self.status.losses += 1;
        self.status.state = "lost";
        self.status.problem = Some(reason.to_owned());
        self.state = State::Lost {
            since: now,
            next_retry: now + FIRST_RETRY,
            backoff: FIRST_RETRY,
            shown_seconds: 0,
            baseline,
            reopened: None,
        };
        tracing::warn!(
            losses = self.status.losses,
            "camera lost ({reason}); showing the slate, retrying"
        );
        vec![Action::ShowSlate, Action::Caption(0)]
    }

    fn back(&mut self, now: Instant, since: Instant, reopened: Option<Instant>) -> Vec<Action> {
        let took = reopened.map(|at| now.saturating_duration_since(at));
        let since_reopen = took
            .map(|took| format!(", {:.2} s after reopening it", took.as_secs_f64()))
            .unwrap_or_default();
        if let Some(took) = took {
            self.status.reopen_to_live_ms = Some(took.as_millis() as u64);
        }
        self.status.reconnects += 1;
        self.status.state = "live";
        self.status.problem = None;
        self.state = State::Live;
        tracing::info!(
            reconnects = self.status.reconnects,
            "camera is back after {:.1} s{since_reopen}; showing live video",
            now.saturating_duration_since(since).as_secs_f64()
        );
        vec![Action::ShowLive]
    }

    /// A new caption when the whole seconds since the loss changed.
    fn caption(&mut self, now: Instant, since: Instant, shown: u64) -> Vec<Action> {
        let seconds = now.saturating_duration_since(since).as_secs();
        if seconds == shown {
            return Vec::new();
        }
        match &mut self.state {
            State::Lost { shown_seconds, .. } | State::Opening { shown_seconds, .. } => {
                *shown_seconds = seconds;
            }
            State::Live => {}
        }
        vec![Action::Caption(seconds)]
    }

    fn shown_seconds(&self) -> u64 {
        match self.state {
            State::Lost { shown_seconds, .. } | State::Opening { shown_seconds, .. } => {
                shown_seconds
            }
            State::Live => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const TIMING: Timing = Timing {
        stall_timeout: Duration::from_millis(2000),
        max_backoff: Duration::from_secs(4),
    };

    /// A camera and a clock stepped by hand.
    struct Rig {
        recovery: Recovery,
        now: Instant,
        frames: u64,
    }

    impl Rig {
        fn new() -> Self {
            let now = Instant::now();
            Self {
                recovery: Recovery::new(TIMING, now, 0),
                now,
                frames: 0,
            }
        }

        /// Steps every 100 ms for `ms`, with frames arriving or not;
        /// returns every action with the millisecond it came at.
        fn run(&mut self, ms: u64, delivering: bool) -> Vec<(u64, Action)> {
            let start = self.now;
            let mut seen = Vec::new();
            for _ in 0..ms / 100 {
                self.now += 100 * MS;
                if delivering {
                    self.frames += 3;
                }
                for action in self.recovery.step(self.now, self.frames) {
                    seen.push(((self.now - start).as_millis() as u64, action));
                }
            }
            seen
        }

        /// Times of the reopen requests in `actions`, each reopening
        /// finishing at once with `outcome`.
        fn reopen_times(&mut self, ms: u64, outcome: Result<(), String>) -> Vec<u64> {
            let start = self.now;
            let mut at = Vec::new();
            for _ in 0..ms / 100 {
                self.now += 100 * MS;
                let actions = self.recovery.step(self.now, self.frames);
                if actions.contains(&Action::Reopen) {
                    at.push((self.now - start).as_millis() as u64);
                    self.recovery
                        .reopened(self.now, self.frames, outcome.clone());
                }
            }
            at
        }
    }

    #[test]
    fn live_frames_keep_it_live() {
        let mut rig = Rig::new();
        assert!(rig.run(10_000, true).is_empty());
        assert_eq!(rig.recovery.status().state, "live");
    }

    #[test]
    fn a_stall_longer_than_the_timeout_shows_the_slate_once() {
        let mut rig = Rig::new();
        rig.run(1000, true);
        let actions = rig.run(2500, false);
        assert_eq!(
            actions,
            [(2100, Action::ShowSlate), (2100, Action::Caption(0))]
        );
        let status = rig.recovery.status();
        assert_eq!((status.state, status.losses), ("lost", 1));
    }

    #[test]
    fn failed_reopens_back_off_doubling_up_to_the_cap() {
        let mut rig = Rig::new();
        rig.recovery.source_failed(rig.now, "unplugged");
        let at = rig.reopen_times(20_000, Err("no such device".to_owned()));
        let gaps: Vec<u64> = at.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(at[0], 500, "{at:?}");
        assert_eq!(gaps[..4], [1000, 2000, 4000, 4000], "{at:?}");
    }

    #[test]
    fn a_reopened_source_gets_the_stall_timeout_to_deliver() {
        let mut rig = Rig::new();
        rig.recovery.source_failed(rig.now, "unplugged");
        let at = rig.reopen_times(6000, Ok(()));
        // 0.5 s, then max(backoff 1 s, stall timeout 2 s), then max(2, 2).
        assert_eq!(at, [500, 2500, 4500]);
    }

    #[test]
    fn loss_slate_reopen_live() {
        let mut rig = Rig::new();
        rig.run(500, true);
        let lost = rig.recovery.source_failed(rig.now, "unplugged");
        assert_eq!(lost, [Action::ShowSlate, Action::Caption(0)]);
        // The old source's last frames in flight do not bring it back.
        let actions = rig.run(400, true);
        assert!(actions.is_empty(), "{actions:?}");
        rig.now += 100 * MS;
        assert_eq!(rig.recovery.step(rig.now, rig.frames), [Action::Reopen]);
        assert!(rig.recovery.status().opening);
        // While it opens (slowly), nothing else is tried.
        let waiting = rig.run(1500, false);
        assert_eq!(
            waiting,
            [(500, Action::Caption(1)), (1500, Action::Caption(2))]
        );
        rig.recovery.reopened(rig.now, rig.frames, Ok(()));
        assert!(!rig.recovery.status().opening);
        let back = rig.run(300, true);
        assert_eq!(back, [(100, Action::ShowLive)]);
        let status = rig.recovery.status();
        assert_eq!(
            (
                status.state,
                status.losses,
                status.reconnects,
                status.reopens
            ),
            ("live", 1, 1, 1)
        );
        // Reopened at 0.5 s after the loss, slowly, live at 2.1 s.
        assert_eq!(status.reopen_to_live_ms, Some(1600));
    }

    #[test]
    fn a_camera_missing_from_the_start_is_reopened_at_once_but_was_never_lost() {
        let now = Instant::now();
        let mut recovery = Recovery::missing(TIMING, now, "not present");
        let status = recovery.status();
        assert_eq!((status.state, status.losses), ("lost", 0));
        assert_eq!(recovery.step(now + 500 * MS, 0), [Action::Reopen]);
    }

    #[test]
    fn the_caption_counts_whole_seconds() {
        let mut rig = Rig::new();
        rig.recovery.source_failed(rig.now, "gone");
        let captions: Vec<u64> = rig
            .run(3000, false)
            .into_iter()
            .filter_map(|(_, action)| match action {
                Action::Caption(s) => Some(s),
                _ => None,
            })
            .collect();
        assert_eq!(captions, [1, 2, 3]);
    }
}
