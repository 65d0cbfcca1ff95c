//! READY and the watchdog follow frames at the outputs, never a bare timer:
//! a wedged encoder must look dead to systemd, which then restarts edgecam.
//! Frames of the NO SIGNAL slate count — while the camera is away the outputs
//! still move, viewers stay connected and recovery retries in-process; a
//! restart would drop the viewers and bring no camera back.

use std::time::{Duration, Instant};

use crate::metrics::{Metrics, Sample};
use crate::pipeline::counters::StreamCounters;

/// What to tell systemd after looking at the outputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// The first frame reached the outputs.
    Ready,
    /// Frames advanced since the last look: feed the watchdog.
    Alive,
    /// No frame reached the outputs since the last look, `for` at least.
    Stalled { since: Duration },
    /// Not time to look yet.
    Wait,
}

/// The decision, kept apart from the clock and the socket so it can be
/// tested on its own.
pub struct Watchdog {
    /// Half of systemd's `WatchdogSec`, as sd_notify(3) advises; None when
    /// systemd runs no watchdog for this service.
    look_every: Option<Duration>,
    ready: bool,
    last_look: Option<(Instant, u64)>,
    /// When frames were last seen to advance.
    last_progress: Option<Instant>,
}

impl Watchdog {
    pub fn new(watchdog: Option<Duration>) -> Self {
        Self {
            look_every: watchdog.map(|interval| interval / 2),
            ready: false,
            last_look: None,
            last_progress: None,
        }
    }

    /// `frames`: how many frames have reached the outputs so far.
    pub fn step(&mut self, now: Instant, frames: u64) -> Verdict {
        if !self.ready {
            if frames == 0 {
                return Verdict::Wait;
            }
            self.ready = true;
            self.last_look = Some((now, frames));
            self.last_progress = Some(now);
            return Verdict::Ready;
        }
        let (Some(every), Some((looked, seen))) = (self.look_every, self.last_look) else {
            return Verdict::Wait;
        };
        if now.duration_since(looked) < every {
            return Verdict::Wait;
        }
        self.last_look = Some((now, frames));
        if frames > seen {
            self.last_progress = Some(now);
            return Verdict::Alive;
        }
        let since = self
            .last_progress
            .map_or(Duration::ZERO, |at| now.duration_since(at));
        Verdict::Stalled { since }
    }
}

/// How often the one-line STATUS is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(2);

/// Watches the outputs and tells systemd, for as long as the runtime runs.
/// Does nothing outside systemd. `started`: when the process started.
pub fn spawn(counters: StreamCounters, metrics: Metrics, started: Instant) {
    if !super::under_systemd() {
        return;
    }
    let interval = sd_notify::watchdog_enabled();
    match interval {
        Some(interval) => tracing::info!(
            watchdog_s = interval.as_secs_f64(),
            "systemd's watchdog is on: it is fed while frames reach the outputs"
        ),
        None => tracing::info!("under systemd, without a watchdog"),
    }
    tokio::spawn(async move {
        let mut watchdog = Watchdog::new(interval);
        let mut stalled = false;
        let mut last_status: Option<Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tick.tick().await;
            let now = Instant::now();
            match watchdog.step(now, counters.read().encoded_frames) {
                Verdict::Ready => {
                    let ms = started.elapsed().as_millis() as u64;
                    tracing::info!(
                        first_frame_ms = ms,
                        "the first frame reached the outputs {ms} ms after start: telling systemd READY"
                    );
                    // Rates need a second of samples; the next status has them.
                    super::ready(&format!("streaming: first frame after {ms} ms"));
                    last_status = Some(now);
                }
                Verdict::Alive => {
                    super::watchdog_ping();
                    if stalled {
                        stalled = false;
                        tracing::warn!(
                            watchdog = "fed",
                            "frames reach the outputs again: feeding systemd's watchdog again"
                        );
                    }
                }
                Verdict::Stalled { since } => {
                    if !stalled {
                        stalled = true;
                        tracing::error!(
                            watchdog = "starved",
                            stalled_s = since.as_secs_f64(),
                            "no frame has reached the outputs for {:.1} s: not feeding systemd's \
                             watchdog, which restarts edgecam unless frames resume",
                            since.as_secs_f64()
                        );
                    }
                    super::status(&format!(
                        "STALLED: no frame has reached the outputs for {:.0} s",
                        since.as_secs_f64()
                    ));
                    last_status = Some(now);
                }
                Verdict::Wait => {}
            }
            let due = last_status.is_some_and(|at| now.duration_since(at) >= STATUS_EVERY);
            if due && !stalled {
                super::status(&summary(metrics.latest().as_ref()));
                last_status = Some(now);
            }
        }
    });
}

/// One line for `systemctl status`: rate, bitrate, camera, viewers.
fn summary(sample: Option<&Sample>) -> String {
    let Some(sample) = sample else {
        return "streaming".to_owned();
    };
    let camera = match sample.camera.state {
        "live" => "camera live".to_owned(),
        "private" => "privacy mode: camera closed".to_owned(),
        state => format!("camera {state}: showing NO SIGNAL"),
    };
    let viewers: Vec<String> = sample
        .clients
        .iter()
        .map(|(output, count)| format!("{output} {count}"))
        .collect();
    format!(
        "{:.1} fps, {:.0} kbit/s; {camera}; viewers: {}",
        sample.encoded_fps,
        sample.bitrate_kbps,
        viewers.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn ready_waits_for_the_first_frame() {
        let start = Instant::now();
        let mut watchdog = Watchdog::new(Some(2 * SECOND));
        assert_eq!(watchdog.step(start, 0), Verdict::Wait);
        assert_eq!(watchdog.step(start + 5 * SECOND, 0), Verdict::Wait);
        assert_eq!(watchdog.step(start + 6 * SECOND, 1), Verdict::Ready);
    }

    #[test]
    fn pings_only_while_frames_advance() {
        let start = Instant::now();
        let mut watchdog = Watchdog::new(Some(2 * SECOND));
        assert_eq!(watchdog.step(start, 3), Verdict::Ready);
        assert_eq!(watchdog.step(start + SECOND / 2, 20), Verdict::Wait);
        assert_eq!(watchdog.step(start + SECOND, 30), Verdict::Alive);
        assert_eq!(
            watchdog.step(start + 2 * SECOND, 30),
            Verdict::Stalled { since: SECOND }
        );
        assert_eq!(
            watchdog.step(start + 3 * SECOND, 30),
            Verdict::Stalled { since: 2 * SECOND }
        );
        assert_eq!(watchdog.step(start + 4 * SECOND, 31), Verdict::Alive);
    }

    #[test]
    fn no_watchdog_means_only_ready() {
        let start = Instant::now();
        let mut watchdog = Watchdog::new(None);
        assert_eq!(watchdog.step(start, 1), Verdict::Ready);
        assert_eq!(watchdog.step(start + 10 * SECOND, 1), Verdict::Wait);
    }
}
