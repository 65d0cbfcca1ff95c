//! The camera's replaceable source, beside the slate, in front of the
//! encoder:
//!
//! ```text
//! source bin (rebuilt after a loss) ─┐
//!                                    ├─ input-selector ─▶ encoder queue …
//! slate (NO SIGNAL)  ────────────────┘
//! ```
//!
//! Both branches are live sources on the camera pipeline's clock with the
//! same caps, so switching between them keeps timestamps continuous and the
//! encoder, its outputs and their viewers never notice more than a change
//! of picture.

use std::sync::Mutex;

use anyhow::{Context, Result};
use gst::prelude::*;

use crate::config::{CameraConfig, Config};
use crate::pipeline::counters::StreamCounters;
use crate::source::fault::FaultInjector;
use crate::source::identity::FrameIds;
use crate::source::slate::Slate;
use crate::source::v4l2::SharedControls;
use crate::source::{self, ResolvedSource};

/// The live source in use and the selector pad it feeds.
struct Live {
    bin: gst::Bin,
    pad: gst::Pad,
    /// A camera's capture thread or a file's reader; dropped after the
    /// bin has stopped.
    feeder: Option<Box<dyn Send>>,
}

pub struct SourceSlot {
    pipeline: gst::Pipeline,
    selector: gst::Element,
    slate_pad: gst::Pad,
    pub slate: Slate,
    live: Mutex<Option<Live>>,
    source: ResolvedSource,
    /// Whether sources deliver H.264 that goes out as it is (see `new`),
    /// or must deliver raw frames whatever the camera sends.
    shape: source::Shape,
    camera: CameraConfig,
    ids: FrameIds,
    pub faults: FaultInjector,
    /// The V4L2 camera's controls (nothing to control on the test pattern).
    pub controls: SharedControls,
    counters: StreamCounters,
    timeline: super::Timeline,
    /// Why the camera could not be opened when the slot was made (it
    /// started on the slate), if it could not.
    pub missing: Option<String>,
}

impl SourceSlot {
    /// Adds the selector, the slate and a first live source to `pipeline`;
    /// the live source is shown. `slate_encoder` is None when raw frames
    /// leave the selector for the camera's encoder, or the chain encoding
    /// the slate when the camera's H.264 is passed through.
    pub fn new(
        pipeline: &gst::Pipeline,
        config: &Config,
        source: &ResolvedSource,
        shared: &super::Shared,
        timeline: &super::Timeline,
        slate_encoder: Option<Vec<gst::Element>>,
        start: Start,
    ) -> Result<Self> {
        let camera = &config.camera;
        let passthrough = slate_encoder.is_some();
        let shape = source::Shape {
            passthrough,
            must_decode: source.shape(config).must_decode,
        };
        let ids = FrameIds::default();
        // A switch, not a synchroniser: by default the selector holds a
        // buffer on an inactive pad until the active one's running time
        // has passed it. The slate is encoded in passthrough mode, and
        // where that encode runs slower than real time (an emulated guest,
        // a busy board) its running time falls further behind the camera's
        // every second: the camera's frames waited in the selector for
        // ever, its appsrc dropped all the rest, and a returning H.264
        // camera never came back (issue 12). Inactive buffers are dropped.
        let selector = gst::ElementFactory::make("input-selector")
            .name("source-selector")
            .property("sync-streams", false)
            .build()
            .context("input-selector (GStreamer's core elements)")?;
        let slate = Slate::build(
            camera,
            &source.describe(),
            &ids,
            slate_encoder.unwrap_or_default(),
        )?;
        pipeline.add_many([
            selector.upcast_ref(),
            slate.bin.upcast_ref::<gst::Element>(),
        ])?;
        let slate_pad = selector
            .request_pad_simple("sink_%u")
            .context("input-selector gave no pad")?;
        slate
            .bin
            .static_pad("src")
            .context("slate has no src pad")?
            .link(&slate_pad)
            .context("linking the slate")?;
        // The slate only runs while it is shown: drawing "NO SIGNAL" thirty
        // times a second that nobody sees cost 4–6 % of a core and 10 MB.
        slate.bin.set_locked_state(true);
        keep_timestamps_increasing(&selector)?;
        let slot = Self {
            pipeline: pipeline.clone(),
            selector,
            slate_pad,
            slate,
            live: Mutex::new(None),
            source: source.clone(),
            shape,
            camera: camera.clone(),
            ids,
            faults: shared.faults.clone(),
            controls: shared.controls.clone(),
            counters: shared.counters.clone(),
            timeline: timeline.clone(),
            missing: None,
        };
        let mut slot = slot;
        let attached = match start {
            Start::OnTheCamera => slot.attach(),
            Start::OnTheSlate(why) => Err(anyhow::anyhow!("{why}")),
            Start::Private => {
                slot.slate.show_private();
                slot.show_slate();
                return Ok(slot);
            }
        };
        match attached {
            // Passed-through H.264 can only be joined at a keyframe, which
            // a camera sends once a GOP (seconds, for some): the slate runs
            // until then, so the pipeline starts, and viewers see a picture,
            // at once.
            Ok(()) if passthrough => {
                slot.show_slate();
                slot.show_live();
            }
            Ok(()) => slot.show_live(),
            // A camera that is not there (yet), or did not start, is a
            // camera loss like any other: the outputs start on the slate
            // and recovery keeps reopening it.
            Err(err) if matches!(source, ResolvedSource::V4l2(_)) => {
                tracing::warn!("the camera cannot be opened yet: {err:#}; showing the slate");
                slot.show_slate();
                slot.missing = Some(format!("{err:#}"));
            }
            Err(err) => return Err(err),
        }
        Ok(slot)
    }

    /// The element whose src pad carries the chosen picture.
    pub fn output(&self) -> &gst::Element {
        &self.selector
    }

    /// Builds a fresh live source and links it in (not shown yet).
    fn attach(&self) -> Result<()> {
        let source::BuiltSource { bin, feeder } = source::build(
            &self.source,
            &self.camera,
            &self.ids,
            &self.faults,
            &self.controls,
            &self.counters.rejects,
            self.shape,
        )?;
        let src = bin.static_pad("src").context("source bin has no src pad")?;
        self.counters.watch_capture(&src);
        // A source's end of stream is a camera loss, never the end of the
        // stream the viewers watch: it must not reach the encoder.
        src.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |_, info| {
            match info.event() {
                Some(event) if event.type_() == gst::EventType::Eos => gst::PadProbeReturn::Drop,
                _ => gst::PadProbeReturn::Ok,
            }
        });
        // Synthetic sources stamp from the timeline's running time now.
        self.start_at_now(&bin);
        self.pipeline.add(&bin)?;
        let pad = self
            .selector
            .request_pad_simple("sink_%u")
            .context("input-selector gave no pad")?;
        src.link(&pad)
            .context("linking the source to the selector")?;
        // In a running pipeline the new bin must catch up by itself.
        if self.pipeline.current_state() > gst::State::Null {
            bin.sync_state_with_parent()
                .context("starting the new source")?;
        }
        if let Ok(mut live) = self.live.lock() {
            *live = Some(Live { bin, pad, feeder });
        }
        Ok(())
    }

    /// Removes the live source. The selector pad goes first: releasing it
    /// unblocks a streaming thread waiting in the selector, so stopping the
    /// bin cannot hang.
    fn detach(&self) {
        let Some(old) = self.live.lock().ok().and_then(|mut live| live.take()) else {
            return;
        };
        self.selector.release_request_pad(&old.pad);
        let _ = old.bin.set_state(gst::State::Null);
        let _ = self.pipeline.remove(&old.bin);
        // Only now, with nothing left to push into, stop the capture thread
        // (which closes the device).
        drop(old.feeder);
    }

    /// Privacy mode: shows the privacy picture and closes the camera.
    /// Blocking (the camera's bin stops). Opened again by [`Self::replace`].
    pub fn close(&self) {
        self.slate.show_private();
        self.show_slate();
        self.detach();
    }

    /// Throws the live source away and builds a new one (after a loss).
    pub fn replace(&self) -> Result<()> {
        self.detach();
        release_freed_memory();
        self.attach()
    }

    /// Synthetic sources count their timestamps from zero; one started on
    /// a timeline that has run for a while (a running pipeline, or a
    /// camera rebuilt after the outputs started) must count from the
    /// running time now, or its frames would be stamped in the past (a
    /// live source then bursts to catch up, and encoders downstream of the
    /// selector would see time jump back at a switch).
    fn start_at_now(&self, bin: &gst::Bin) {
        let now = self.timeline.now();
        for element in bin.iterate_recurse().into_iter().flatten() {
            let is_testsrc = element
                .factory()
                .is_some_and(|f| f.name() == "videotestsrc");
            if is_testsrc {
                element.set_property("timestamp-offset", now.nseconds() as i64);
            }
        }
    }

    /// Starts the slate and shows it.
    pub fn show_slate(&self) {
        self.start_at_now(&self.slate.bin);
        self.slate.bin.set_locked_state(false);
        if let Err(err) = self.slate.bin.sync_state_with_parent() {
            tracing::warn!("the slate did not start: {err}");
        }
        self.selector.set_property("active-pad", &self.slate_pad);
    }

    /// Shows the live source and stops the slate. Passed-through H.264 can
    /// only be joined at a keyframe: the slate stays on until the camera
    /// sends one, and the switch happens right in front of it.
    pub fn show_live(&self) {
        let Some((bin, pad)) = self.live_parts() else {
            return;
        };
        if !self.shape.passthrough {
            self.selector.set_property("active-pad", &pad);
            stop(&self.slate.bin);
            return;
        }
        let Some(src) = bin.static_pad("src") else {
            return;
        };
        let selector = self.selector.clone();
        let slate = self.slate.bin.clone();
        src.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let Some(gst::PadProbeData::Buffer(buffer)) = &info.data else {
                return gst::PadProbeReturn::Ok;
            };
            if buffer.flags().contains(gst::BufferFlags::DELTA_UNIT) {
                return gst::PadProbeReturn::Ok;
            }
            selector.set_property("active-pad", &pad);
            // Not from this streaming thread: stopping the slate waits for
            // its own streaming thread.
            slate.call_async(|slate| {
                if let Some(slate) = slate.downcast_ref::<gst::Bin>() {
                    stop(slate);
                }
            });
            gst::PadProbeReturn::Remove
        });
    }

    /// The live source's bin and selector pad, if one is attached.
    fn live_parts(&self) -> Option<(gst::Bin, gst::Pad)> {
        let live = self.live.lock().ok()?;
        live.as_ref().map(|l| (l.bin.clone(), l.pad.clone()))
    }

    /// Where a bus message's sender sits, which decides what its error means.
    pub fn origin(&self, object: &gst::Object) -> Origin {
        if let Some((bin, _)) = self.live_parts() {
            if object == bin.upcast_ref::<gst::Object>() || object.has_as_ancestor(&bin) {
                return Origin::LiveSource;
            }
        }
        if object == self.pipeline.upcast_ref::<gst::Object>()
            || object.has_as_ancestor(&self.pipeline)
        {
            Origin::Pipeline
        } else {
            // Only removed sources leave the pipeline while it runs.
            Origin::RemovedSource
        }
    }
}

/// At a switch the incoming branch's first frame can be stamped a moment
/// before the outgoing branch's last one (each runs on its own thread);
/// such a frame is restamped just after it, so every output sees time
/// move forward. Compared as running time: each branch has its segment.
fn keep_timestamps_increasing(selector: &gst::Element) -> Result<()> {
    let pad = selector
        .static_pad("src")
        .context("input-selector has no src pad")?;
    let last: Mutex<Option<gst::ClockTime>> = Mutex::new(None);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(event) = pad.sticky_event::<gst::event::Segment>(0) else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(segment) = event.segment().downcast_ref::<gst::ClockTime>() else {
            return gst::PadProbeReturn::Ok;
        };
        let (Some(pts), Ok(mut last)) = (buffer.pts(), last.lock()) else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(running) = segment.to_running_time(pts) else {
            return gst::PadProbeReturn::Ok;
        };
        match *last {
            Some(previous) if running <= previous => {
                let wanted = previous + gst::ClockTime::from_useconds(1);
                if let Some(fixed) = segment.position_from_running_time(wanted) {
                    tracing::debug!("restamped a frame {running} -> {wanted} (running time)");
                    let buffer = buffer.make_mut();
                    buffer.set_pts(fixed);
                    if buffer.dts().is_some() {
                        buffer.set_dts(fixed);
                    }
                }
                *last = Some(wanted);
            }
            _ => *last = Some(running),
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// Stops the slate (it only runs while shown).
fn stop(slate: &gst::Bin) {
    slate.set_locked_state(true);
    let _ = slate.set_state(gst::State::Null);
}

/// Hands memory freed by the old source back to the system. The old
/// source's frames were freed on other threads than they were allocated
/// on, which leaves glibc's per-thread heaps holding them: without this,
/// resident memory drifted up by several MB over 20 reconnects.
fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns unused heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// What a new camera pipeline shows first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// The camera, opened now.
    OnTheCamera,
    /// The slate, with why the camera is not opened now (an earlier
    /// attempt did not start): recovery opens it later.
    OnTheSlate(String),
    /// Privacy mode: the privacy picture, and the camera left closed.
    Private,
}

/// Who sent a message on the camera pipeline's bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The camera source in use: an error means the camera is lost.
    LiveSource,
    /// A source already replaced: its last words no longer matter.
    RemovedSource,
    /// The encoder side or the slate: an error there is fatal.
    Pipeline,
}
