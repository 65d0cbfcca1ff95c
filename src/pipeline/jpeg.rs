//! The one JPEG encoder every JPEG consumer shares: MJPEG viewers,
//! snapshots and JPEG frames over WebSocket all read the same frames. It
//! runs only while someone watches (a few seconds more, so a burst of
//! snapshots does not start it each time): its pipeline does not exist
//! otherwise, so nobody watching costs nothing. It is fed the camera's raw
//! frames at most `jpeg.max_fps` times a second, scaled to `jpeg.width` x
//! `jpeg.height` (the camera's size when 0), at `jpeg.quality`; new settings
//! rebuild it on the fly, its consumers staying.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use gst::prelude::*;
use tokio::sync::watch;

use super::frames::{FrameTap, JpegFrame, RawFrame};
use super::inventory::Inventory;
use crate::config::JpegConfig;

/// How long the encoder outlives its last consumer.
const GRACE: Duration = Duration::from_secs(3);
/// How often the keeper looks whether the encoder should run.
const LOOK: Duration = Duration::from_millis(100);

/// The shared JPEG encoder's frames and settings.
#[derive(Clone)]
pub struct JpegTap {
    frames: FrameTap<JpegFrame>,
    settings: watch::Sender<JpegConfig>,
    /// When a client last subscribed. A snapshot holds its subscription for
    /// a few ms, too short for the keeper to see: a page polling snapshots
    /// must keep the encoder running between its requests all the same.
    asked: Arc<Mutex<Option<Instant>>>,
}

impl JpegTap {
    /// The tap, and the task (on the current tokio runtime) that runs the
    /// encoder while it is watched.
    pub fn spawn(raw: FrameTap<RawFrame>, settings: JpegConfig, inventory: Inventory) -> Self {
        let tap = Self {
            frames: FrameTap::default(),
            settings: watch::channel(settings).0,
            asked: Arc::default(),
        };
        tokio::spawn(keep(tap.clone(), raw, inventory));
        tap
    }

    /// JPEG frames from now on (the encoder starts if it was idle).
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<JpegFrame>>> {
        if let Ok(mut asked) = self.asked.lock() {
            *asked = Some(Instant::now());
        }
        self.frames.subscribe()
    }

    /// Whether someone watches, or asked for a frame since the keeper's
    /// last look.
    fn wanted(&self) -> bool {
        let asked = self.asked.lock().ok().and_then(|asked| *asked);
        self.frames.watched() || asked.is_some_and(|at| at.elapsed() < LOOK * 2)
    }

    /// The last frame encoded, if the encoder ran.
    pub fn latest(&self) -> Option<Arc<JpegFrame>> {
        self.frames.latest()
    }

    /// New settings, from a live configuration change.
    pub fn set(&self, settings: JpegConfig) {
        self.settings.send_replace(settings);
    }

    pub fn settings(&self) -> JpegConfig {
        self.settings.borrow().clone()
    }

    /// Whether `frame` was made with the settings in force: a client who
    /// just changed them must not get a frame made before.
    pub fn is_current(&self, frame: &JpegFrame) -> bool {
        let settings = self.settings.borrow();
        frame.quality == settings.quality
            && (settings.width == 0
                || (frame.width, frame.height) == (settings.width, settings.height))
    }
}

/// Starts the encoder when someone watches, stops it when nobody has for
/// [`GRACE`], rebuilds it when the settings change.
async fn keep(tap: JpegTap, raw: FrameTap<RawFrame>, inventory: Inventory) {
    let mut settings = tap.settings.subscribe();
    let mut running: Option<Encoder> = None;
    let mut unwatched_since: Option<Instant> = None;
    let mut look = tokio::time::interval(LOOK);
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        look.tick().await;
        let changed = settings.has_changed().unwrap_or(false);
        if changed {
            settings.borrow_and_update();
        }
        let watched = tap.wanted();
        unwatched_since = match (watched, unwatched_since) {
            (true, _) => None,
            (false, None) => Some(Instant::now()),
            (false, since) => since,
        };
        let idle = unwatched_since.is_some_and(|since| since.elapsed() >= GRACE);
        if running.is_some() && (idle || changed) {
            if let Some(encoder) = running.take() {
                encoder.stop().await;
            }
        }
        if running.is_none() && watched {
            match Encoder::start(&tap.settings(), &raw, &tap.frames, &inventory) {
                Ok(encoder) => running = Some(encoder),
                Err(err) => tracing::warn!("the JPEG encoder did not start: {err:#}"),
            }
        }
    }
}

/// A running JPEG encoder: its pipeline and the task feeding it.
struct Encoder {
    pipeline: gst::Pipeline,
    feeder: tokio::task::JoinHandle<()>,
}

/// Which raw frame each pending JPEG came from, by timestamp: encoders need
/// not keep metas.
type Pending = Arc<Mutex<VecDeque<(Option<gst::ClockTime>, u64, u64)>>>;

impl Encoder {
    fn start(
        settings: &JpegConfig,
        raw: &FrameTap<RawFrame>,
        out: &FrameTap<JpegFrame>,
        inventory: &Inventory,
    ) -> Result<Self> {
        let encoder_name = if crate::source::element_opens("v4l2jpegenc") {
            "v4l2jpegenc"
        } else {
            "jpegenc"
        };
        let pipeline = gst::Pipeline::with_name("jpeg");
        let appsrc = gst_app::AppSrc::builder()
            .name("raw")
            .is_live(true)
            .format(gst::Format::Time)
            .max_buffers(2)
            .leaky_type(gst_app::AppLeakyType::Downstream)
            .build();
        let scale = gst::ElementFactory::make("videoscale").build()?;
        let mut size = gst::Caps::builder("video/x-raw");
        if settings.width > 0 {
            size = size
                .field("width", settings.width as i32)
                .field("height", settings.height as i32)
                .field("pixel-aspect-ratio", gst::Fraction::new(1, 1));
        }
        let caps = gst::ElementFactory::make("capsfilter")
            .property("caps", size.build())
            .build()?;
        let encoder = gst::ElementFactory::make(encoder_name)
            .build()
            .with_context(|| format!("{encoder_name} (package gstreamer1.0-plugins-good)"))?;
        if encoder.has_property("quality") {
            encoder.set_property("quality", settings.quality as i32);
        }
        let sink = gst_app::AppSink::builder()
            .name("jpeg")
            .sync(false)
            .max_buffers(1)
            .drop(true)
            .build();
        let chain = [
            appsrc.upcast_ref(),
            &scale,
            &caps,
            &encoder,
            sink.upcast_ref(),
        ];
        pipeline.add_many(chain)?;
        gst::Element::link_many(chain).context("linking the JPEG encoder")?;
        let pending: Pending = Arc::default();
        publish_from(&sink, out.clone(), pending.clone(), settings.quality);
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| anyhow!("the JPEG encoder did not start"))?;
        inventory.register(pipeline.upcast_ref());
        let interval = Duration::from_secs_f64(1.0 / f64::from(settings.max_fps.max(1)));
        let feeder = tokio::spawn(feed(raw.subscribe(), appsrc, interval, pending));
        tracing::info!(
            "JPEG encoder ({encoder_name}) started: quality {}, at most {} fps",
            settings.quality,
            settings.max_fps
        );
        Ok(Self { pipeline, feeder })
    }

    async fn stop(self) {
        self.feeder.abort();
        let pipeline = self.pipeline;
        let _ = tokio::task::spawn_blocking(move || pipeline.set_state(gst::State::Null)).await;
        tracing::info!("JPEG encoder stopped: nobody watches");
    }
}

/// Pushes the camera's frames into the encoder, at most one per `interval`.
async fn feed(
    mut raw: watch::Receiver<Option<Arc<RawFrame>>>,
    appsrc: gst_app::AppSrc,
    interval: Duration,
    pending: Pending,
) {
    let mut pace = super::frames::Pace::new(interval);
    while raw.changed().await.is_ok() {
        let Some(frame) = raw.borrow_and_update().clone() else {
            continue;
        };
        if !pace.admit(Instant::now()) {
            continue;
        }
        let caps = frame.info.to_caps().ok();
        if appsrc.caps() != caps {
            appsrc.set_caps(caps.as_ref());
        }
        if let Ok(mut pending) = pending.lock() {
            pending.push_back((frame.buffer.pts(), frame.id, frame.captured_us));
            while pending.len() > 8 {
                pending.pop_front();
            }
        }
        if appsrc.push_buffer(frame.buffer.clone()).is_err() {
            return;
        }
    }
}

/// Publishes each JPEG the encoder makes, with its raw frame's identity.
fn publish_from(sink: &gst_app::AppSink, out: FrameTap<JpegFrame>, pending: Pending, quality: u32) {
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let size = caps.structure(0).and_then(|s| {
                    Some((s.get::<i32>("width").ok()?, s.get::<i32>("height").ok()?))
                });
                let identity = pending.lock().ok().and_then(|mut pending| {
                    let at = pending
                        .iter()
                        .position(|(pts, _, _)| *pts == buffer.pts())?;
                    let found = pending[at];
                    pending.drain(..=at);
                    Some((found.1, found.2))
                });
                let (Some((width, height)), Some((id, captured_us)), Ok(map)) =
                    (size, identity, buffer.map_readable())
                else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                out.publish(JpegFrame {
                    id,
                    captured_us,
                    width: width as u32,
                    height: height as u32,
                    data: bytes::Bytes::copy_from_slice(&map),
                    quality,
                    encoded_at: Instant::now(),
                });
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}
