//! One connection to a publish target: a pipeline from the encoded tap to
//! the server — `rtspclientsink` (RTSP RECORD over TCP), `mpegtsmux !
//! srtsink` (SRT caller) or `flvmux ! rtmp2sink` (RTMP) — and what its bus
//! says.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use gst::prelude::*;

use crate::config::{Protocol, PublishAudio, PublishTarget};
use crate::metrics::registry::Counter;
use crate::output::Context;

/// A connection that takes no byte for this long while the camera
/// delivers has failed (a server that stopped reading, a cable pulled):
/// TCP alone would wait minutes to say so.
const NOTHING_TAKEN: Duration = Duration::from_secs(10);

/// How a session ended.
#[derive(Debug)]
pub enum Outcome {
    /// Asked to stop.
    Stopped,
    Failed(String),
}

pub struct Session {
    pipeline: gst::Pipeline,
    bus: gst::Bus,
    _subscription: crate::pipeline::Subscription,
    /// Bytes handed to the network element by this session.
    sent: Arc<AtomicU64>,
    progress: std::sync::Mutex<Progress>,
}

/// How `sent` has moved, as seen by [`Session::look`].
struct Progress {
    sent: u64,
    /// When it last moved (or the session started).
    moved: Instant,
    /// When it first moved.
    first: Option<Instant>,
}

/// A sink takes a first buffer before its connection is up (SRT's caller
/// connects while the stream starts): bytes must keep moving this long to
/// count as a connection that works.
const FLOWING_FOR: Duration = Duration::from_secs(1);

impl Session {
    /// Builds the pipeline for `target` and starts it (a connection is made
    /// as it starts). Bytes are counted into `bytes` as well.
    pub fn start(target: &PublishTarget, context: &Context, bytes: &Counter) -> Result<Self> {
        let protocol = target
            .protocol()
            .context("a publish URL was not validated")?;
        let pipeline = gst::Pipeline::with_name(&format!("publish-{}", target.name));
        let appsrc = gst_app::AppSrc::builder().name("publish-src").build();
        let parse = gst::ElementFactory::make("h264parse")
            .build()
            .context("h264parse (package gstreamer1.0-plugins-bad)")?;
        pipeline.add_many([appsrc.upcast_ref(), &parse])?;
        appsrc.link(&parse)?;
        let sink = match protocol {
            Protocol::Rtsp => rtsp(&pipeline, &parse, target)?,
            Protocol::Srt => srt(&pipeline, &parse, target)?,
            Protocol::Rtmp => rtmp(&pipeline, &parse, target)?,
        };
        let sent = Arc::new(AtomicU64::new(0));
        count_bytes(&sink, &sent, bytes)?;
        context.timeline.apply(&pipeline);
        let bus = pipeline.bus().context("a pipeline without a bus")?;
        let subscription = context.taps.encoded.subscribe(&appsrc)?;
        context.inventory.register(pipeline.upcast_ref());
        let session = Self {
            pipeline,
            bus,
            _subscription: subscription,
            sent,
            progress: std::sync::Mutex::new(Progress {
                sent: 0,
                moved: Instant::now(),
                first: None,
            }),
        };
        if let Err(err) = session.pipeline.set_state(gst::State::Playing) {
            let reason = session.first_error().unwrap_or_else(|| err.to_string());
            session.stop();
            anyhow::bail!("{reason}");
        }
        Ok(session)
    }

    /// Waits up to `wait` for a message; Some when the session failed.
    pub fn look(&self, wait: Duration) -> Option<Outcome> {
        let message = self.bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(wait.as_nanos() as u64),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        );
        if let Some(message) = message {
            return Some(Outcome::Failed(describe(&message)));
        }
        let sent = self.sent.load(Ordering::Relaxed);
        let Ok(mut progress) = self.progress.lock() else {
            return None;
        };
        if sent != progress.sent {
            let now = Instant::now();
            progress.sent = sent;
            progress.moved = now;
            progress.first.get_or_insert(now);
        } else if progress.moved.elapsed() >= NOTHING_TAKEN {
            return Some(Outcome::Failed(format!(
                "the server took nothing for {} s",
                NOTHING_TAKEN.as_secs()
            )));
        }
        None
    }

    /// Bytes have flowed to the server for a while in this session.
    pub fn has_sent(&self) -> bool {
        self.progress.lock().is_ok_and(|progress| {
            progress
                .first
                .is_some_and(|first| first.elapsed() >= FLOWING_FOR)
        })
    }

    /// Bytes have been flowing to the server for a while, and still are.
    pub fn sending(&self) -> bool {
        self.progress.lock().is_ok_and(|progress| {
            progress
                .first
                .is_some_and(|first| first.elapsed() >= FLOWING_FOR)
                && progress.moved.elapsed() < FLOWING_FOR / 2
        })
    }

    /// Tears it down (the subscription ends with it).
    pub fn stop(&self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }

    /// The first error already posted, for a pipeline that would not start.
    fn first_error(&self) -> Option<String> {
        self.bus
            .pop_filtered(&[gst::MessageType::Error])
            .map(|message| describe(&message))
    }
}

fn describe(message: &gst::Message) -> String {
    match message.view() {
        gst::MessageView::Error(err) => {
            let debug = err.debug().map(|d| d.to_string()).unwrap_or_default();
            // The debug string names the element and the call; the first
            // line of it is what helps, not the source file's path.
            let detail = debug.lines().last().unwrap_or_default();
            if detail.is_empty() {
                err.error().to_string()
            } else {
                format!("{} ({detail})", err.error())
            }
        }
        _ => "the server ended the stream".to_owned(),
    }
}

fn make(factory: &str, package: &str) -> Result<gst::Element> {
    gst::ElementFactory::make(factory)
        .build()
        .with_context(|| format!("{factory} (package {package})"))
}

/// `rtspclientsink`: ANNOUNCE then RECORD, RTP over the RTSP connection.
fn rtsp(
    pipeline: &gst::Pipeline,
    parse: &gst::Element,
    target: &PublishTarget,
) -> Result<gst::Element> {
    let sink = make("rtspclientsink", "gstreamer1.0-rtsp")?;
    sink.set_property("location", target.url.as_str());
    sink.set_property_from_str("protocols", "tcp");
    sink.set_property("latency", 0u32);
    if !target.user.is_empty() {
        sink.set_property("user-id", target.user.as_str());
        sink.set_property("user-pw", target.password.as_str());
    }
    pipeline.add(&sink)?;
    parse.link(&sink).context("linking rtspclientsink")?;
    Ok(sink)
}

/// MPEG-TS in 7-packet datagrams to an SRT listener.
fn srt(
    pipeline: &gst::Pipeline,
    parse: &gst::Element,
    target: &PublishTarget,
) -> Result<gst::Element> {
    let mux = make("mpegtsmux", "gstreamer1.0-plugins-bad")?;
    mux.set_property("alignment", 7i32);
    let sink = make("srtsink", "gstreamer1.0-plugins-bad")?;
    sink.set_property("uri", target.url.as_str());
    sink.set_property("sync", false);
    // Its own reconnecting would go on mid-stream, uncounted; ours starts a
    // fresh stream at a keyframe and says so.
    sink.set_property("auto-reconnect", false);
    if !target.passphrase.is_empty() {
        sink.set_property("passphrase", target.passphrase.as_str());
    }
    pipeline.add_many([&mux, &sink])?;
    gst::Element::link_many([parse, &mux, &sink]).context("linking mpegtsmux ! srtsink")?;
    Ok(sink)
}

/// FLV to an RTMP ingest, with a silent AAC track when asked.
fn rtmp(
    pipeline: &gst::Pipeline,
    parse: &gst::Element,
    target: &PublishTarget,
) -> Result<gst::Element> {
    let mux = make("flvmux", "gstreamer1.0-plugins-good")?;
    mux.set_property("streamable", true);
    let sink = make("rtmp2sink", "gstreamer1.0-plugins-bad")?;
    let location = if target.key.is_empty() {
        target.url.clone()
    } else {
        format!("{}/{}", target.url.trim_end_matches('/'), target.key)
    };
    sink.set_property("location", location.as_str());
    sink.set_property("sync", false);
    pipeline.add_many([&mux, &sink])?;
    parse
        .link_pads(None, &mux, Some("video"))
        .context("linking the video to flvmux")?;
    mux.link(&sink).context("linking flvmux ! rtmp2sink")?;
    if target.audio == PublishAudio::SilentAac {
        silent_aac(pipeline, &mux)?;
    }
    Ok(sink)
}

/// A silent stereo AAC track into `mux` (servers that refuse video alone).
fn silent_aac(pipeline: &gst::Pipeline, mux: &gst::Element) -> Result<()> {
    let source = make("audiotestsrc", "gstreamer1.0-plugins-base")?;
    source.set_property_from_str("wave", "silence");
    source.set_property("is-live", true);
    let caps = gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst::Caps::builder("audio/x-raw")
                .field("rate", 44100i32)
                .field("channels", 2i32)
                .build(),
        )
        .build()?;
    let convert = make("audioconvert", "gstreamer1.0-plugins-base")?;
    let encoder = make("voaacenc", "gstreamer1.0-plugins-bad")
        .or_else(|_| make("avenc_aac", "gstreamer1.0-libav"))?;
    let parse = make("aacparse", "gstreamer1.0-plugins-good")?;
    let chain = [&source, &convert, &caps, &encoder, &parse];
    pipeline.add_many(chain)?;
    gst::Element::link_many(chain).context("linking the silent audio")?;
    parse
        .link_pads(None, mux, Some("audio"))
        .context("linking the silent audio to flvmux")
}

/// Counts what reaches `sink` into this session's and the target's totals.
fn count_bytes(sink: &gst::Element, sent: &Arc<AtomicU64>, bytes: &Counter) -> Result<()> {
    let pad = sink
        .sink_pads()
        .into_iter()
        .next()
        .context("the publish sink has no input")?;
    let (sent, bytes) = (sent.clone(), bytes.clone());
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
        move |_, info| {
            let size = match &info.data {
                Some(gst::PadProbeData::Buffer(buffer)) => buffer.size(),
                Some(gst::PadProbeData::BufferList(list)) => list.calculate_size(),
                _ => 0,
            } as u64;
            sent.fetch_add(size, Ordering::Relaxed);
            bytes.add(size);
            gst::PadProbeReturn::Ok
        },
    );
    Ok(())
}
