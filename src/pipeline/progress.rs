//! Whether frames are moving: read by the health check (and later by the
//! systemd watchdog) from the counters kept where the encoded stream leaves
//! the camera pipeline.

use std::time::Duration;

use crate::pipeline::counters::StreamCounters;

/// What the health check reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Streaming { frames: u64 },
    NoFrameYet,
    Stalled { since: Duration, frames: u64 },
}

/// Healthy when an encoded frame reached the outputs within `window`.
pub fn health(counters: &StreamCounters, window: Duration) -> Health {
    let Some(since) = counters.since_last_encoded() else {
        return Health::NoFrameYet;
    };
    let frames = counters.read().encoded_frames;
    if since <= window {
        Health::Streaming { frames }
    } else {
        Health::Stalled { since, frames }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_frames() {
        let counters = StreamCounters::default();
        assert_eq!(
            health(&counters, Duration::from_secs(2)),
            Health::NoFrameYet
        );
        counters.record_encoded(100, Some(1), None);
        counters.record_encoded(100, Some(2), None);
        assert_eq!(
            health(&counters, Duration::from_secs(2)),
            Health::Streaming { frames: 2 }
        );
        std::thread::sleep(Duration::from_millis(20));
        match health(&counters, Duration::from_millis(5)) {
            Health::Stalled { since, frames } => {
                assert_eq!(frames, 2);
                assert!(since >= Duration::from_millis(15), "{since:?}");
            }
            other => panic!("expected a stall, got {other:?}"),
        }
    }
}
