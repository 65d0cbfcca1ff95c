//! Frame identity: every raw frame leaving a source gets a monotonic frame id
//! and its capture time, each as a reference-timestamp meta: caps
//! `timestamp/x-unix` carry nanoseconds since the Unix epoch, caps
//! `timestamp/x-edgecam-frame` carry the frame id (in the nanoseconds field).
//! Encoders copy these metas to their output (buffer offsets they do not
//! keep), so every output can say which frame it carries and when it was
//! captured.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use gst::prelude::*;

/// Caps naming the wall-clock reference timestamps we attach.
pub fn unix_time_caps() -> gst::Caps {
    gst::Caps::new_empty_simple("timestamp/x-unix")
}

/// Caps naming the frame-id "timestamps" we attach.
pub fn frame_id_caps() -> gst::Caps {
    gst::Caps::new_empty_simple("timestamp/x-edgecam-frame")
}

/// Microseconds since the Unix epoch, now.
pub fn unix_time_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The camera's frame counter, shared by every source that feeds it (the
/// camera, its replacements after a loss, the slate), so frame ids stay
/// monotonic across switches.
pub type FrameIds = Arc<AtomicU64>;

/// What a source does to a frame once it has its identity (the test pattern
/// burns the latency stamp into the picture).
pub type FrameHook = Box<dyn Fn(&mut gst::BufferRef, u64, u64) + Send + Sync>;

/// Where a frame's capture time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureTime {
    /// The moment the frame passes (a synthetic source makes it then).
    Now,
    /// The buffer's timestamp, which a camera source takes from the driver:
    /// the frame's age on the pipeline clock is subtracted from now.
    FromTimestamps,
}

/// Tags every buffer passing `pad` with the next frame id and the capture
/// time, then runs `hook` on it with (frame id, capture time in µs).
pub fn tag_frames(pad: &gst::Pad, ids: &FrameIds, when: CaptureTime, hook: Option<FrameHook>) {
    let next_id = ids.clone();
    let caps = unix_time_caps();
    let id_caps = frame_id_caps();
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        let frame_id = next_id.fetch_add(1, Ordering::Relaxed);
        let now_us = unix_time_us();
        let captured_us = match when {
            CaptureTime::Now => now_us,
            CaptureTime::FromTimestamps => now_us.saturating_sub(age_us(pad, buffer.pts())),
        };
        let buffer = buffer.make_mut();
        gst::ReferenceTimestampMeta::add(
            buffer,
            &caps,
            gst::ClockTime::from_useconds(captured_us),
            gst::ClockTime::NONE,
        );
        gst::ReferenceTimestampMeta::add(
            buffer,
            &id_caps,
            gst::ClockTime::from_nseconds(frame_id),
            gst::ClockTime::NONE,
        );
        if let Some(hook) = &hook {
            hook(buffer, frame_id, captured_us);
        }
        gst::PadProbeReturn::Ok
    });
}

/// How long ago, on the pipeline clock, a buffer stamped `pts` was taken.
/// Live sources start their segment at 0, so the timestamp is the running
/// time. Zero when the element is not yet on a clock.
fn age_us(pad: &gst::Pad, pts: Option<gst::ClockTime>) -> u64 {
    let Some(element) = pad.parent_element() else {
        return 0;
    };
    match (element.clock(), element.base_time(), pts) {
        (Some(clock), Some(base), Some(pts)) => clock.time().saturating_sub(base + pts).useconds(),
        _ => 0,
    }
}

/// The reference timestamp with `caps` that a buffer carries.
fn reference(buffer: &gst::BufferRef, caps: &gst::Caps) -> Option<gst::ClockTime> {
    buffer
        .iter_meta::<gst::ReferenceTimestampMeta>()
        .find(|meta| meta.reference().can_intersect(caps))
        .map(|meta| meta.timestamp())
}

/// The capture time a buffer carries, in µs since the Unix epoch.
pub fn capture_time_us(buffer: &gst::BufferRef) -> Option<u64> {
    reference(buffer, &unix_time_caps()).map(|t| t.useconds())
}

/// The frame id a buffer carries.
pub fn frame_id(buffer: &gst::BufferRef) -> Option<u64> {
    reference(buffer, &frame_id_caps()).map(|t| t.nseconds())
}
