//! Frames for consumers written in Rust (MJPEG, snapshots, frames over
//! WebSocket): the camera's raw frames, and JPEG from the shared encoder.
//! Each consumer holds a receiver of the latest frame and takes frames at
//! its own pace: a slow one skips frames, nobody waits for it. A tap nobody
//! watches does nothing (its branch drops frames before any work).

use std::sync::Arc;

use gst_video::prelude::*;
use tokio::sync::watch;

use crate::source::identity;

/// A decoded frame: I420 at the camera's size, with its identity.
#[derive(Debug, Clone)]
pub struct RawFrame {
    pub id: u64,
    /// Capture time, µs since the Unix epoch.
    pub captured_us: u64,
    pub info: gst_video::VideoInfo,
    pub buffer: gst::Buffer,
}

impl RawFrame {
    /// The frame as a camera pipeline's appsink hands it over.
    pub fn from_sample(sample: &gst::Sample) -> Option<Self> {
        let buffer = sample.buffer_owned()?;
        let info = gst_video::VideoInfo::from_caps(sample.caps()?).ok()?;
        Some(Self {
            id: identity::frame_id(&buffer).unwrap_or(0),
            captured_us: identity::capture_time_us(&buffer).unwrap_or(0),
            info,
            buffer,
        })
    }

    pub fn width(&self) -> u32 {
        self.info.width()
    }

    pub fn height(&self) -> u32 {
        self.info.height()
    }

    /// The pixels of `plane` (0: luma; 1, 2: chroma) packed row after row,
    /// each row `width` bytes (the buffer's own rows may be padded).
    pub fn plane(&self, plane: u32) -> Option<Vec<u8>> {
        let frame =
            gst_video::VideoFrameRef::from_buffer_ref_readable(self.buffer.as_ref(), &self.info)
                .ok()?;
        let width = frame.comp_width(plane) as usize;
        let height = frame.comp_height(plane) as usize;
        let stride = frame.plane_stride()[plane as usize] as usize;
        let data = frame.plane_data(plane).ok()?;
        let mut packed = Vec::with_capacity(width * height);
        for row in 0..height {
            packed.extend_from_slice(data.get(row * stride..row * stride + width)?);
        }
        Some(packed)
    }
}

/// A JPEG frame from the shared encoder.
#[derive(Debug, Clone)]
pub struct JpegFrame {
    pub id: u64,
    pub captured_us: u64,
    pub width: u32,
    pub height: u32,
    pub data: bytes::Bytes,
    /// The quality it was encoded at.
    pub quality: u32,
    /// When the encoder made it (a snapshot wants one at most a frame old).
    pub encoded_at: std::time::Instant,
}

/// The latest frame of one kind, for every consumer that watches.
pub struct FrameTap<T> {
    sender: Arc<watch::Sender<Option<Arc<T>>>>,
}

impl<T> Clone for FrameTap<T> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
        }
    }
}

impl<T> Default for FrameTap<T> {
    fn default() -> Self {
        Self {
            sender: Arc::new(watch::channel(None).0),
        }
    }
}

impl<T> FrameTap<T> {
    /// Frames from now on, one at a time; dropping it stops watching.
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<T>>> {
        self.sender.subscribe()
    }

    /// Whether anybody watches (else frames need not be made at all).
    pub fn watched(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    pub fn publish(&self, frame: T) {
        self.sender.send_replace(Some(Arc::new(frame)));
    }

    /// The frame published last, if any.
    pub fn latest(&self) -> Option<Arc<T>> {
        self.sender.borrow().clone()
    }
}

/// A rate cap that keeps to its schedule: a frame is taken when it comes
/// no more than half an interval before it is due, and the next is due an
/// interval after this one was. Jitter then never costs a frame (a cap
/// equal to the camera's rate takes every frame: "at least 90 % of an
/// interval since the last" dropped every frame that came a little early)
/// and over time no more than the cap is taken.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    interval: std::time::Duration,
    due: Option<std::time::Instant>,
}

impl Pace {
    pub fn new(interval: std::time::Duration) -> Self {
        Self {
            interval,
            due: None,
        }
    }

    /// Whether a frame arriving `now` is taken.
    pub fn admit(&mut self, now: std::time::Instant) -> bool {
        let half = self.interval / 2;
        match self.due {
            Some(due) if now + half < due => false,
            due => {
                // After a pause the schedule restarts from now rather than
                // letting a burst catch up.
                let next = due.map_or(now, |due| due + self.interval);
                self.due = Some(next.max(now + half));
                true
            }
        }
    }
}

/// A `valve` that passes frames only while `tap` is watched: an unwatched
/// branch costs a check per frame and nothing else. (A pad probe returning
/// `Drop` behind a tee makes GStreamer 1.22 unref a null buffer — a
/// critical per frame — so the valve drops, and the probe only sets it.)
pub fn gate<T: Send + Sync + 'static>(
    tap: &FrameTap<T>,
) -> Result<gst::Element, gst::glib::BoolError> {
    let valve = gst::ElementFactory::make("valve")
        .property("drop", true)
        // Caps and segment still reach the branch while it is shut.
        .property_from_str("drop-mode", "forward-sticky-events")
        .build()?;
    let Some(pad) = valve.static_pad("sink") else {
        return Ok(valve);
    };
    let tap = tap.clone();
    let shut = std::sync::atomic::AtomicBool::new(true);
    let weak = valve.downgrade();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        // Runs before the valve's chain function sees this very buffer.
        let drop = !tap.watched();
        if shut.swap(drop, std::sync::atomic::Ordering::Relaxed) != drop {
            if let Some(valve) = weak.upgrade() {
                valve.set_property("drop", drop);
            }
        }
        gst::PadProbeReturn::Ok
    });
    Ok(valve)
}

#[cfg(test)]
mod tests {
    use super::Pace;
    use std::time::{Duration, Instant};

    /// Frames `period_ms` apart, each off by up to `jitter_ms`, for 10 s:
    /// how many a cap of `cap_fps` takes.
    fn taken(period_ms: f64, jitter_ms: f64, cap_fps: f64) -> usize {
        let start = Instant::now();
        let mut pace = Pace::new(Duration::from_secs_f64(1.0 / cap_fps));
        let frames = (10_000.0 / period_ms) as usize;
        (0..frames)
            .filter(|&n| {
                // A fixed, uneven pattern of early and late arrivals.
                let off = jitter_ms * [0.0, 0.9, -0.9, 0.5, -0.3][n % 5];
                let at = (n as f64 * period_ms + off + jitter_ms).max(0.0);
                pace.admit(start + Duration::from_secs_f64(at / 1000.0))
            })
            .count()
    }

    #[test]
    fn a_cap_at_the_camera_rate_takes_every_frame_despite_jitter() {
        assert_eq!(taken(1000.0 / 30.0, 8.0, 30.0), 300);
    }

    #[test]
    fn a_lower_cap_holds_on_average() {
        for (cap, expected) in [(15.0, 150), (10.0, 100), (5.0, 50)] {
            let got = taken(1000.0 / 30.0, 8.0, cap);
            assert!(
                got.abs_diff(expected) <= 2,
                "cap {cap}: {got} frames in 10 s"
            );
        }
    }
}
