//! The data plane of one camera, top to bottom:
//!
//! ```text
//! source bin (raw I420, frame ids) → queue → encoder → caps → h264parse → appsink
//!                                                                           │
//!                          StreamProducer fans the encoded stream out to ───┘
//!                          every output (RTSP media, HLS), never re-encoding
//! ```
//!
//! A camera that sends H.264 at the configured size is passed through: its
//! access units go to the outputs as they are, and only the slate, shown
//! while the camera is lost, has an encoder (running only then):
//!
//! ```text
//! camera H.264 ─┐
//!               ├─ selector → queue → h264parse → appsink
//! slate → enc ──┘
//! ```

pub mod encoder;
pub mod inventory;
pub mod progress;
pub mod recovery;
pub mod source_slot;

use anyhow::{Context, Result};
use gst::prelude::*;

use crate::config::Config;
use crate::source::ResolvedSource;
use encoder::Choice;

/// What outlives a rebuilt pipeline: the counters (totals keep counting),
/// the camera's controls (their remembered values) and the fault injector
/// (the HTTP side holds them).
#[derive(Clone, Default)]
pub struct Shared {
    pub counters: crate::metrics::counters::StreamCounters,
    pub controls: crate::source::v4l2::SharedControls,
    pub faults: crate::source::fault::FaultInjector,
}

/// One camera's running graph and the handle outputs subscribe to.
pub struct CameraPipeline {
    pub pipeline: gst::Pipeline,
    /// Encoded H.264 (byte-stream, access units, SPS/PPS before every IDR).
    pub producer: gst_utils::StreamProducer,
    /// Counters for the metrics, kept by probes along the chain.
    pub counters: crate::metrics::counters::StreamCounters,
    /// The queue in front of the encoder (its fill level separates late
    /// frames from dropped ones).
    pub encoder_queue: gst::Element,
    /// The live source and the slate, switchable.
    pub sources: source_slot::SourceSlot,
}

impl CameraPipeline {
    pub fn build(
        config: &Config,
        source: &ResolvedSource,
        choice: &Choice,
        shared: &Shared,
    ) -> Result<Self> {
        let pipeline = gst::Pipeline::with_name("camera");
        // Outputs share this clock and base time (see output::rtsp); pin it
        // so it is known before the pipeline first reaches PLAYING.
        pipeline.use_clock(Some(&gst::SystemClock::obtain()));
        let counters = shared.counters.clone();
        let passthrough = source.passes_h264_through(&config.camera);
        let slate_encoder = if passthrough {
            let [parse, caps] = crate::source::encoded_tail()?;
            Some(vec![
                encoder::make(choice.encoder, &config.encoder)?,
                gst::ElementFactory::make("capsfilter")
                    .property(
                        "caps",
                        encoder::output_caps(choice.encoder, config.encoder.profile),
                    )
                    .build()?,
                parse,
                caps,
            ])
        } else {
            None
        };
        let sources =
            source_slot::SourceSlot::new(&pipeline, &config.camera, source, shared, slate_encoder)?;

        // A frame the encoder cannot take in time is dropped here, at the
        // source, rather than stalling capture and growing latency.
        // Passed-through H.264 must not lose a frame (every later frame up
        // to the next keyframe refers to it): that queue only blocks.
        let queue = gst::ElementFactory::make("queue")
            .name("encoder-queue")
            .property("max-size-buffers", if passthrough { 30u32 } else { 2 })
            .property("max-size-bytes", 0u32)
            .property("max-size-time", 0u64)
            .property_from_str("leaky", if passthrough { "no" } else { "downstream" })
            .build()?;
        let output_caps = encoder::output_caps(choice.encoder, config.encoder.profile);
        let (encoder, encoder_caps) = if passthrough {
            (None, None)
        } else {
            let encoder = encoder::make(choice.encoder, &config.encoder)?;
            let caps = gst::ElementFactory::make("capsfilter")
                .name("encoder-caps")
                .property("caps", &output_caps)
                .build()?;
            (Some(encoder), Some(caps))
        };
        // config-interval=-1: SPS/PPS in front of every keyframe, so a viewer
        // joining late can start decoding at the next one.
        let parse = gst::ElementFactory::make("h264parse")
            .property("config-interval", -1i32)
            .build()
            .context("h264parse (package gstreamer1.0-plugins-bad)")?;
        let stream_caps = gst::ElementFactory::make("capsfilter")
            .property(
                "caps",
                gst::Caps::builder("video/x-h264")
                    .field("stream-format", "byte-stream")
                    .field("alignment", "au")
                    .build(),
            )
            .build()?;
        let appsink = gst_app::AppSink::builder().name("encoded").build();

        let mut chain = vec![&queue];
        chain.extend(encoder.iter());
        chain.extend(encoder_caps.iter());
        chain.extend([&parse, &stream_caps, appsink.upcast_ref()]);
        pipeline.add_many(&chain)?;
        sources
            .output()
            .link(&queue)
            .context("linking the source to the encoder")?;
        gst::Element::link_many(&chain).with_context(|| {
            format!(
                "linking {} (caps {output_caps})",
                choice.encoder.element_name()
            )
        })?;

        // The live source paces the stream; the sink must not wait on the
        // clock again (that would only add latency).
        let producer = gst_utils::StreamProducer::with(
            &appsink,
            gst_utils::streamproducer::ProducerSettings { sync: false },
        );
        // What the encoder takes in — or, passed through, what the parser
        // takes: the queue in front of either tells late from dropped.
        let encoder_input = encoder.as_ref().unwrap_or(&parse);
        if let Some(pad) = encoder_input.static_pad("sink") {
            counters.watch_encoder_input(&pad);
            shared.faults.watch_encoder_input(&pad);
        }
        if let Some(pad) = appsink.static_pad("sink") {
            counters.watch_encoded(&pad);
        }
        Ok(Self {
            pipeline,
            producer,
            counters,
            encoder_queue: queue,
            sources,
        })
    }

    /// Starts the camera and waits (up to 5 s) until it runs, so its base
    /// time is settled before outputs share it.
    pub fn start(&self) -> Result<()> {
        self.pipeline
            .set_state(gst::State::Playing)
            .context("starting the camera pipeline (the bus has the cause)")?;
        let (result, state, _) = self.pipeline.state(gst::ClockTime::from_seconds(5));
        result.context("the camera pipeline did not start (the bus has the cause)")?;
        if state != gst::State::Playing {
            anyhow::bail!("the camera pipeline did not reach PLAYING within 5 s (it is {state:?})");
        }
        Ok(())
    }

    pub fn stop(&self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Makes an output pipeline run on the camera's timeline. The producer hands
/// buffers over with the camera pipeline's timestamps and segment, so their
/// running time is the camera's. An output pipeline built seconds later has
/// a later base time: its sinks would hold every buffer for those seconds
/// and the appsrc would drop them all. Giving the output the camera's
/// clock and base time (and no start time, so PLAYING keeps it) makes the
/// running times agree: no re-timestamping, and the timeline stays
/// continuous across outputs and rebuilt medias.
pub fn share_timeline(camera: &gst::Pipeline, output: &gst::Pipeline) {
    if let Some(clock) = camera.clock() {
        output.use_clock(Some(&clock));
    }
    output.set_start_time(gst::ClockTime::NONE);
    if let Some(base_time) = camera.base_time() {
        output.set_base_time(base_time);
    }
}
