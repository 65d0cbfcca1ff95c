//! Whether frames are moving: the last frame id that reached the outputs
//! and when. Read by the health check (and later by the systemd watchdog and
//! the metrics), written by a pad probe where the encoded stream leaves the
//! camera pipeline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::prelude::*;

#[derive(Clone)]
pub struct FrameProgress {
    inner: Arc<Inner>,
}

struct Inner {
    started: Instant,
    /// Frames seen so far; 0 means none yet.
    frames: AtomicU64,
    /// Milliseconds after `started` when the last frame passed.
    last_at_ms: AtomicU64,
}

/// What the health check reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Streaming { frames: u64 },
    NoFrameYet,
    Stalled { since: Duration, frames: u64 },
}

impl FrameProgress {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                started: Instant::now(),
                frames: AtomicU64::new(0),
                last_at_ms: AtomicU64::new(0),
            }),
        }
    }

    /// Counts every buffer passing `pad`.
    pub fn watch(&self, pad: &gst::Pad) {
        let progress = self.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            progress.record();
            gst::PadProbeReturn::Ok
        });
    }

    fn record(&self) {
        let now_ms = self.inner.started.elapsed().as_millis() as u64;
        self.inner.last_at_ms.store(now_ms, Ordering::Relaxed);
        self.inner.frames.fetch_add(1, Ordering::Relaxed);
    }

    /// Healthy when a frame passed within `window`.
    pub fn health(&self, window: Duration) -> Health {
        let frames = self.inner.frames.load(Ordering::Relaxed);
        if frames == 0 {
            return Health::NoFrameYet;
        }
        let last = Duration::from_millis(self.inner.last_at_ms.load(Ordering::Relaxed));
        let since = self.inner.started.elapsed().saturating_sub(last);
        if since <= window {
            Health::Streaming { frames }
        } else {
            Health::Stalled { since, frames }
        }
    }
}

impl Default for FrameProgress {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_frames() {
        let progress = FrameProgress::new();
        assert_eq!(progress.health(Duration::from_secs(2)), Health::NoFrameYet);
        progress.record();
        progress.record();
        assert_eq!(
            progress.health(Duration::from_secs(2)),
            Health::Streaming { frames: 2 }
        );
        std::thread::sleep(Duration::from_millis(20));
        match progress.health(Duration::from_millis(5)) {
            Health::Stalled { since, frames } => {
                assert_eq!(frames, 2);
                assert!(since >= Duration::from_millis(15), "{since:?}");
            }
            other => panic!("expected a stall, got {other:?}"),
        }
    }
}
