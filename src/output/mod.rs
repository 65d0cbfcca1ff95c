//! Outputs: what viewers connect to. Each output is one file implementing
//! [`Output`], and [`catalogue`] is the one place an output is wired in.
//!
//! An output subscribes to the camera's streams through the [`Taps`] (the
//! encoded H.264 today), runs on the shared [`Timeline`], counts its viewers
//! in the [`Registry`], publishes what HTTP needs through the routes it
//! declares, and describes itself for the `hello` message and
//! `/api/outputs`. The app starts, stops and restarts each output alone:
//! when one fails ([`Failures::report`]), only that one is restarted, with
//! capped backoff, while the camera and the other outputs carry on. It never
//! encodes: every output shares the camera's one encoder.
//!
//! Adding an output: a new file here with a type implementing [`Output`]
//! (and [`Running`] for what it holds while it runs), its line in
//! [`catalogue`], its config section with `EFFECTS` naming it.

pub mod hls;
pub mod metrics_ws;
pub mod mjpeg;
pub mod publish;
pub mod rtsp;
pub mod webrtc;
pub mod ws_frames;

use std::sync::{Arc, RwLock};

use anyhow::Result;
use gst::prelude::*;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::http::Route;
use crate::metrics::{Metrics, Registry};
use crate::pipeline::inventory::Inventory;
use crate::pipeline::{Taps, Timeline};

/// Every output edgecam has, in the order they start. The one place an
/// output is wired in.
pub fn catalogue() -> Vec<Arc<dyn Output>> {
    vec![
        Arc::new(rtsp::Rtsp),
        Arc::new(hls::Hls::default()),
        Arc::new(metrics_ws::MetricsWs::default()),
        Arc::new(mjpeg::Mjpeg::default()),
        Arc::new(ws_frames::WsFrames::default()),
        Arc::new(webrtc::Webrtc::default()),
        Arc::new(publish::Publish),
    ]
}

/// One kind of output. The value lives as long as the process (its routes
/// are part of the HTTP server); what exists while it runs is a [`Running`].
pub trait Output: Send + Sync {
    /// Its name in logs, metrics labels, `/api/outputs`, the `hello`
    /// message and the config's `EFFECTS`.
    fn name(&self) -> &'static str;

    /// The label its viewers are counted under (usually its name).
    fn viewer_label(&self) -> &'static str {
        self.name()
    }

    /// Whether `config` wants it running.
    fn enabled(&self, config: &Config) -> bool;

    /// The configuration sections holding its parameters, its own (with
    /// its `enabled` switch) first: what `PATCH /api/outputs/{name}` and
    /// `POST …/start|stop` write. Empty: it cannot be stopped or tuned.
    fn settings(&self) -> &'static [&'static str] {
        &[]
    }

    /// Starts it. May block for a moment (binding ports, starting a
    /// pipeline): the app calls it off the event loop.
    fn start(&self, config: &Config, context: &Context) -> Result<Box<dyn Running>>;

    /// The HTTP routes it serves; they read what the running instance
    /// published, and answer 404 while it is off.
    fn routes(&self) -> Vec<Route> {
        Vec::new()
    }
}

/// A started output.
pub trait Running: Send {
    /// What it serves and where, for `hello` and `/api/outputs`.
    fn describe(&self) -> serde_json::Value;

    /// Fault injection: make it fail the way it would for real, so the
    /// restart path can be tested.
    fn break_now(&self);

    /// Stops it and lets its viewers go. May block for a moment.
    fn stop(self: Box<Self>);
}

/// What an output is started with.
#[derive(Clone)]
pub struct Context {
    pub taps: Taps,
    pub timeline: Timeline,
    pub registry: Registry,
    pub inventory: Inventory,
    pub metrics: Metrics,
    /// How this instance reports that it failed.
    pub failures: Failures,
}

/// A running output's failure, for the app to restart it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub output: &'static str,
    /// Which start of the output failed: a late report from an instance
    /// already replaced is ignored.
    pub generation: u64,
    pub reason: String,
}

/// Reports the failure of one running instance.
#[derive(Clone)]
pub struct Failures {
    output: &'static str,
    generation: u64,
    sender: mpsc::UnboundedSender<Failure>,
}

impl Failures {
    pub fn new(
        output: &'static str,
        generation: u64,
        sender: mpsc::UnboundedSender<Failure>,
    ) -> Self {
        Self {
            output,
            generation,
            sender,
        }
    }

    pub fn report(&self, reason: impl Into<String>) {
        let _ = self.sender.send(Failure {
            output: self.output,
            generation: self.generation,
            reason: reason.into(),
        });
    }

    /// Reports errors and end-of-stream on `pipeline`'s bus as failures.
    /// Every message is handled as it is posted and then dropped, so the
    /// bus never queues messages nobody reads.
    pub fn watch_bus(&self, pipeline: &gst::Pipeline) {
        let Some(bus) = pipeline.bus() else {
            return;
        };
        let failures = self.clone();
        bus.set_sync_handler(move |_, message| {
            let from = message
                .src()
                .map(|s| s.path_string().to_string())
                .unwrap_or_default();
            match message.view() {
                gst::MessageView::Error(err) => failures.report(format!(
                    "{from}: {} ({})",
                    err.error(),
                    err.debug().map(|d| d.to_string()).unwrap_or_default()
                )),
                gst::MessageView::Eos(_) => failures.report(format!("{from}: the stream ended")),
                gst::MessageView::Warning(warning) => {
                    tracing::warn!("{from}: {}", warning.error())
                }
                _ => {}
            }
            gst::BusSyncReply::Drop
        });
    }
}

/// What a running output publishes for its HTTP routes: set while it
/// runs, empty while it is off.
pub struct Published<T>(Arc<RwLock<Option<T>>>);

impl<T> Clone for Published<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Default for Published<T> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<T: Clone> Published<T> {
    pub fn set(&self, value: T) {
        if let Ok(mut slot) = self.0.write() {
            *slot = Some(value);
        }
    }

    pub fn clear(&self) {
        if let Ok(mut slot) = self.0.write() {
            *slot = None;
        }
    }

    pub fn get(&self) -> Option<T> {
        self.0.read().ok().and_then(|slot| slot.clone())
    }
}

/// A running output that is nothing but HTTP routes answering from what it
/// published (MJPEG, frame sockets, the metrics socket): stopping it
/// unpublishes that, so its routes answer "off", and — when it has a
/// `stop` signal — ends the streams its clients hold open.
pub struct Serving<T> {
    pub served: Published<T>,
    /// Sent `true` on stop; `None`: connected clients stay until they leave.
    pub stop: Option<tokio::sync::watch::Sender<bool>>,
    pub failures: Failures,
    pub description: serde_json::Value,
    /// What an injected fault reports.
    pub fault: &'static str,
}

impl<T: Clone + Send + Sync> Running for Serving<T> {
    fn describe(&self) -> serde_json::Value {
        self.description.clone()
    }

    fn break_now(&self) {
        self.failures.report(self.fault);
    }

    fn stop(self: Box<Self>) {
        self.served.clear();
        if let Some(stop) = &self.stop {
            stop.send_replace(true);
        }
    }
}

/// Posts an error from `element` (fault injection), as a real failure of
/// it would be posted.
pub fn post_injected_error(element: &gst::Element) {
    gst::element_error!(
        element,
        gst::ResourceError::Write,
        ["injected fault: the output failed"]
    );
}
