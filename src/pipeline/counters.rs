//! Counters kept by pad probes in the data path: cheap atomic adds on the
//! streaming threads, read by the sampler.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::prelude::*;

use crate::source::identity;

#[derive(Clone, Default)]
pub struct StreamCounters {
    inner: Arc<Inner>,
    /// Broken frames the source threw away (see `source::Rejects`).
    pub rejects: crate::source::Rejects,
}

struct Inner {
    started: Instant,
    /// Milliseconds after `started` when the last encoded frame passed.
    last_encoded_at_ms: AtomicU64,
    captured_frames: AtomicU64,
    encoder_input_frames: AtomicU64,
    encoded_frames: AtomicU64,
    encoded_bytes: AtomicU64,
    last_frame_id: AtomicU64,
    /// Sum and count of capture→encode latencies (µs) since the start.
    latency_sum_us: AtomicU64,
    latency_count: AtomicU64,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            last_encoded_at_ms: AtomicU64::new(0),
            captured_frames: AtomicU64::new(0),
            encoder_input_frames: AtomicU64::new(0),
            encoded_frames: AtomicU64::new(0),
            encoded_bytes: AtomicU64::new(0),
            last_frame_id: AtomicU64::new(0),
            latency_sum_us: AtomicU64::new(0),
            latency_count: AtomicU64::new(0),
        }
    }
}

/// A consistent-enough reading of every counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterValues {
    pub captured_frames: u64,
    pub encoder_input_frames: u64,
    pub encoded_frames: u64,
    pub encoded_bytes: u64,
    pub last_frame_id: u64,
    pub latency_sum_us: u64,
    pub latency_count: u64,
    pub corrupt_frames: u64,
}

impl StreamCounters {
    /// Counts raw frames leaving the source.
    pub fn watch_capture(&self, pad: &gst::Pad) {
        let inner = self.inner.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            inner.captured_frames.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    }

    /// Counts raw frames the encoder accepts (the rest were dropped on the
    /// way because it fell behind).
    pub fn watch_encoder_input(&self, pad: &gst::Pad) {
        let inner = self.inner.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            inner.encoder_input_frames.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    }

    /// Counts encoded frames and bytes handed to the outputs, with the frame
    /// id and capture→encode latency from the frame's identity.
    pub fn watch_encoded(&self, pad: &gst::Pad) {
        let counters = self.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data {
                counters.record_encoded(
                    buffer.size() as u64,
                    identity::frame_id(buffer),
                    identity::capture_time_us(buffer),
                );
            }
            gst::PadProbeReturn::Ok
        });
    }

    /// One encoded frame of `bytes`, with its identity when it carries one.
    pub(crate) fn record_encoded(
        &self,
        bytes: u64,
        frame_id: Option<u64>,
        captured_us: Option<u64>,
    ) {
        let inner = &self.inner;
        inner.encoded_frames.fetch_add(1, Ordering::Relaxed);
        inner.encoded_bytes.fetch_add(bytes, Ordering::Relaxed);
        let now_ms = inner.started.elapsed().as_millis() as u64;
        inner.last_encoded_at_ms.store(now_ms, Ordering::Relaxed);
        if let Some(frame_id) = frame_id {
            inner.last_frame_id.store(frame_id, Ordering::Relaxed);
        }
        if let Some(captured) = captured_us {
            let latency = identity::unix_time_us().saturating_sub(captured);
            inner.latency_sum_us.fetch_add(latency, Ordering::Relaxed);
            inner.latency_count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How long ago the last encoded frame reached the outputs; `None`
    /// before the first.
    pub fn since_last_encoded(&self) -> Option<Duration> {
        let inner = &self.inner;
        if inner.encoded_frames.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let last = Duration::from_millis(inner.last_encoded_at_ms.load(Ordering::Relaxed));
        Some(inner.started.elapsed().saturating_sub(last))
    }

    pub fn read(&self) -> CounterValues {
        let i = &self.inner;
        CounterValues {
            captured_frames: i.captured_frames.load(Ordering::Relaxed),
            encoder_input_frames: i.encoder_input_frames.load(Ordering::Relaxed),
            encoded_frames: i.encoded_frames.load(Ordering::Relaxed),
            encoded_bytes: i.encoded_bytes.load(Ordering::Relaxed),
            last_frame_id: i.last_frame_id.load(Ordering::Relaxed),
            latency_sum_us: i.latency_sum_us.load(Ordering::Relaxed),
            latency_count: i.latency_count.load(Ordering::Relaxed),
            corrupt_frames: self.rejects.count(),
        }
    }
}
