//! The seams between a camera and its outputs. Both outlive any one camera
//! pipeline, so a camera that is rebuilt (a new size, another encoder)
//! leaves every output and its viewers in place:
//!
//! - the [`Timeline`]: one clock and base time for every pipeline of the
//!   process, so the running time of a frame means the same everywhere;
//! - a [`Tap`]: the encoded H.264 the camera offers, which an output
//!   subscribes to once and keeps, whichever camera pipeline feeds it now
//!   (raw frames and JPEG, for consumers in Rust, are `frames::FrameTap`s
//!   beside it).

use std::sync::{Arc, Mutex, Weak};

use anyhow::{anyhow, Result};
use gst::prelude::*;
use gst_utils::{ConsumptionLink, StreamProducer};

/// The clock and base time shared by every pipeline the process runs.
///
/// A producer hands buffers over with the camera pipeline's timestamps and
/// segment, so their running time is the camera's. An output pipeline
/// built later than the camera would have a later base time: its sinks
/// would hold every buffer back by the difference, and an appsrc would
/// drop them all. With one base time for all (and no start time, so going
/// to PLAYING keeps it), running times agree without restamping, and the
/// timeline stays continuous when the camera or an output is rebuilt.
#[derive(Clone, Debug)]
pub struct Timeline {
    clock: gst::Clock,
    base_time: gst::ClockTime,
}

impl Timeline {
    /// A timeline starting now, on the system's monotonic clock (the clock
    /// V4L2 drivers stamp their frames with).
    pub fn start() -> Self {
        let clock = gst::SystemClock::obtain();
        let base_time = clock.time();
        Self { clock, base_time }
    }

    /// Puts `pipeline` on this timeline; call before it first plays.
    pub fn apply(&self, pipeline: &gst::Pipeline) {
        pipeline.use_clock(Some(&self.clock));
        pipeline.set_start_time(gst::ClockTime::NONE);
        pipeline.set_base_time(self.base_time);
    }

    /// The running time now: where a source started now must stamp from.
    pub fn now(&self) -> gst::ClockTime {
        self.clock.time().saturating_sub(self.base_time)
    }
}

/// One stream the camera offers. Subscribers keep their subscription
/// across camera rebuilds: [`Tap::attach`] moves each of them to the new
/// camera's producer.
#[derive(Clone, Default)]
pub struct Tap {
    inner: Arc<Mutex<TapState>>,
}

#[derive(Default)]
struct TapState {
    producer: Option<StreamProducer>,
    links: Vec<Weak<Mutex<ConsumptionLink>>>,
}

/// An output's place on a tap; dropping it unsubscribes.
pub struct Subscription {
    _link: Arc<Mutex<ConsumptionLink>>,
}

impl Tap {
    /// Feeds `appsrc` from this tap from now on (from the next keyframe:
    /// the producer asks the encoder for one).
    pub fn subscribe(&self, appsrc: &gst_app::AppSrc) -> Result<Subscription> {
        let mut state = self
            .inner
            .lock()
            .map_err(|_| anyhow!("the tap's lock is poisoned"))?;
        let link = match &state.producer {
            Some(producer) => producer
                .add_consumer(appsrc)
                .map_err(|err| anyhow!("subscribing to the camera's stream: {err}"))?,
            // No camera yet: the link waits, and attach() connects it.
            None => ConsumptionLink::disconnected(appsrc.clone()),
        };
        let link = Arc::new(Mutex::new(link));
        state.links.retain(|weak| weak.strong_count() > 0);
        state.links.push(Arc::downgrade(&link));
        Ok(Subscription { _link: link })
    }

    /// A camera pipeline started: every subscriber now takes its stream.
    pub fn attach(&self, producer: &StreamProducer) {
        let Ok(mut state) = self.inner.lock() else {
            return;
        };
        state.producer = Some(producer.clone());
        state.links.retain(|weak| weak.strong_count() > 0);
        for link in state.links.iter().filter_map(Weak::upgrade) {
            if let Ok(mut link) = link.lock() {
                if let Err(err) = link.change_producer(producer, false) {
                    tracing::warn!("an output could not follow the new camera: {err}");
                }
            }
        }
    }

    /// The camera pipeline is going away: subscribers wait for the next.
    pub fn detach(&self) {
        let Ok(mut state) = self.inner.lock() else {
            return;
        };
        state.producer = None;
        for link in state.links.iter().filter_map(Weak::upgrade) {
            if let Ok(mut link) = link.lock() {
                link.disconnect();
            }
        }
    }

    /// Subscribers right now (outputs holding a subscription).
    pub fn subscribers(&self) -> usize {
        self.inner.lock().map_or(0, |state| {
            state.links.iter().filter(|w| w.strong_count() > 0).count()
        })
    }
}

/// Every stream the camera offers its outputs, each costing nothing until
/// subscribed.
#[derive(Clone)]
pub struct Taps {
    /// H.264 byte-stream, access units, SPS/PPS in front of every keyframe
    /// (for GStreamer consumers: an appsrc each).
    pub encoded: Tap,
    /// Raw I420 frames, for consumers in Rust.
    pub raw: super::frames::FrameTap<super::frames::RawFrame>,
    /// JPEG from the one shared encoder, for consumers in Rust.
    pub jpeg: super::jpeg::JpegTap,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_follows_the_camera_and_ends_when_dropped() {
        gst::init().unwrap();
        let tap = Tap::default();
        let appsrc = gst_app::AppSrc::builder().build();
        let subscription = tap.subscribe(&appsrc).unwrap();
        assert_eq!(tap.subscribers(), 1);
        let first = StreamProducer::from(&gst_app::AppSink::builder().build());
        tap.attach(&first);
        let second = StreamProducer::from(&gst_app::AppSink::builder().build());
        tap.attach(&second);
        tap.detach();
        drop(subscription);
        assert_eq!(tap.subscribers(), 0);
    }

    #[test]
    fn the_timeline_runs_forward_from_its_start() {
        gst::init().unwrap();
        let timeline = Timeline::start();
        let earlier = timeline.now();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(timeline.now() > earlier);
        let pipeline = gst::Pipeline::new();
        timeline.apply(&pipeline);
        assert_eq!(pipeline.base_time(), Some(timeline.base_time));
    }
}
