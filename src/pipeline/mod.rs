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

pub mod counters;
pub mod encoder;
pub mod frames;
pub mod inventory;
pub mod jpeg;
pub mod progress;
pub mod recovery;
pub mod source_slot;
pub mod tap;

use anyhow::{bail, Context, Result};
use gst::prelude::*;

use crate::config::{Config, ControlSetting, EncoderConfig};
use crate::source::ResolvedSource;
use encoder::Choice;
pub use tap::{Subscription, Tap, Taps, Timeline};

/// What outlives a rebuilt pipeline: the counters (totals keep counting),
/// the camera's controls (their remembered values) and the fault injector
/// (the HTTP side holds them).
#[derive(Clone, Default)]
pub struct Shared {
    pub counters: crate::pipeline::counters::StreamCounters,
    pub controls: crate::source::v4l2::SharedControls,
    pub faults: crate::source::fault::FaultInjector,
    /// Raw frames for consumers in Rust (the JPEG encoder, frame sockets).
    pub raw: frames::FrameTap<frames::RawFrame>,
    /// The layers drawn on the picture (changed live).
    pub overlay: crate::overlay::Overlay,
}

/// One camera's running graph and the handle outputs subscribe to.
pub struct CameraPipeline {
    pub pipeline: gst::Pipeline,
    /// Encoded H.264 (byte-stream, access units, SPS/PPS before every IDR).
    pub producer: gst_utils::StreamProducer,
    /// Counters for the metrics, kept by probes along the chain.
    pub counters: crate::pipeline::counters::StreamCounters,
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
        timeline: &Timeline,
        start: source_slot::Start,
    ) -> Result<Self> {
        let pipeline = gst::Pipeline::with_name("camera");
        // Outputs run on the same timeline (see `tap`), set before the
        // first source is built: sources stamp from its running time.
        timeline.apply(&pipeline);
        let counters = shared.counters.clone();
        let passthrough = source.shape(config).passthrough;
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
        let sources = source_slot::SourceSlot::new(
            &pipeline,
            config,
            source,
            shared,
            timeline,
            slate_encoder,
            start,
        )?;

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
        // The picture goes to the encoder and, only while somebody watches
        // raw frames, to them (see `raw_branch`).
        let tee = gst::ElementFactory::make("tee").name("picture").build()?;
        pipeline.add(&tee)?;
        pipeline.add_many(&chain)?;
        sources
            .output()
            .link(&tee)
            .context("linking the source to its tee")?;
        tee.link(&queue)
            .context("linking the source to the encoder")?;
        // Drawn before the tee: every output, raw frames and JPEG included,
        // shows the layers. A camera's H.264 is passed through only while no
        // layer draws (see `Shape`); layers added to it rebuild the camera.
        if !passthrough {
            if let Some(pad) = tee.static_pad("sink") {
                shared
                    .overlay
                    .attach(&pad, stamp_area(source, &config.camera));
            }
        }
        raw_branch(&pipeline, &tee, passthrough, &shared.raw)?;
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

    /// Starts the camera and waits (up to 5 s) until it runs. Blocking:
    /// call it off the event loop.
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

    /// Stops it (blocking while streaming threads wind down).
    pub fn stop(&self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }

    /// x264enc takes kbit/s, openh264enc bit/s; both change it on the fly.
    /// v4l2h264enc applies `extra-controls` to the open device when they
    /// are set, so the Pi's encoder gets its new `video_bitrate` the same
    /// way. (Passed-through H.264 has its encoder in the slate only.)
    pub fn set_bitrate(&self, config: &EncoderConfig) -> Result<()> {
        let kbps = config.bitrate_kbps;
        let encoder = self
            .pipeline
            .by_name("encoder")
            .context("the pipeline has no encoder")?;
        let factory = encoder.factory().map(|f| f.name().to_string());
        match factory.as_deref() {
            Some("x264enc") => encoder.set_property("bitrate", kbps),
            Some("openh264enc") => encoder.set_property("bitrate", kbps.saturating_mul(1000)),
            Some("v4l2h264enc") => {
                encoder.set_property("extra-controls", encoder::v4l2_extra_controls(config))
            }
            other => bail!(
                "{} cannot change its bitrate while running",
                other.unwrap_or("the encoder")
            ),
        }
        Ok(())
    }

    /// Sets a camera control now (and for every reopening).
    pub fn set_control(&self, name: &str, setting: &ControlSetting) -> Result<()> {
        self.sources
            .controls
            .set(name, setting)
            .map(|_| ())
            .map_err(|err| anyhow::anyhow!("camera.controls.{name}: {err}"))
    }
}

/// Where the test pattern's latency stamp lies (overlays keep off it).
fn stamp_area(
    source: &ResolvedSource,
    camera: &crate::config::CameraConfig,
) -> Option<embedded_graphics::primitives::Rectangle> {
    use crate::source::stamp;
    use embedded_graphics::prelude::{Point, Size};
    if !matches!(source, ResolvedSource::TestPattern) {
        return None;
    }
    let cell = stamp::cell_size(camera.width as usize) as u32;
    Some(embedded_graphics::primitives::Rectangle::new(
        Point::zero(),
        Size::new(cell * stamp::COLUMNS as u32, cell * stamp::ROWS as u32),
    ))
}

/// The branch that hands raw frames to `raw` (I420 at the camera's size),
/// gated so it does nothing while nobody watches. A passed-through camera
/// sends H.264, which this branch then decodes — only while watched.
fn raw_branch(
    pipeline: &gst::Pipeline,
    tee: &gst::Element,
    passthrough: bool,
    raw: &frames::FrameTap<frames::RawFrame>,
) -> Result<()> {
    // Late frames are dropped, never waited for: the tee feeds the encoder
    // from the same thread. H.264 may drop a second's worth before the
    // decoder is behind (it then drops until the next keyframe).
    let queue = gst::ElementFactory::make("queue")
        .name("raw-queue")
        .property("max-size-buffers", if passthrough { 30u32 } else { 1 })
        .property("max-size-bytes", 0u32)
        .property("max-size-time", 0u64)
        .property_from_str("leaky", "downstream")
        .build()?;
    let mut chain = vec![frames::gate(raw)?, queue];
    if passthrough {
        let decoder = gst::ElementFactory::make("avdec_h264")
            .property("output-corrupt", false)
            .build()
            .context("avdec_h264 (package gstreamer1.0-libav)")?;
        chain.push(decoder);
        chain.push(gst::ElementFactory::make("videoconvert").build()?);
        chain.push(
            gst::ElementFactory::make("capsfilter")
                .property(
                    "caps",
                    gst::Caps::builder("video/x-raw")
                        .field("format", "I420")
                        .build(),
                )
                .build()?,
        );
    }
    // Not async: a gated sink gets no frame to preroll on while nobody
    // watches, and would hold the whole pipeline in PAUSED.
    let sink = gst_app::AppSink::builder()
        .name("raw")
        .sync(false)
        .async_(false)
        .max_buffers(1)
        .drop(true)
        .build();
    chain.push(sink.clone().upcast());
    pipeline.add_many(&chain)?;
    gst::Element::link_many(&chain).context("linking the raw-frame branch")?;
    tee.link(&chain[0])
        .context("linking the raw-frame branch")?;
    let raw = raw.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(frame) = frames::RawFrame::from_sample(&sample) {
                    raw.publish(frame);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(())
}
