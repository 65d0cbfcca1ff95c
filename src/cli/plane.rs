//! The data plane of a running configuration: the camera pipeline, its
//! outputs and the camera's loss recovery. A configuration change that a
//! running pipeline cannot take is applied by stopping one plane and
//! starting another; what outlives planes (counters, controls, metrics,
//! the HTTP server) is shared.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Result;
use gst::prelude::*;

use crate::config::Config;
use crate::metrics;
use crate::output::hls::HlsOutput;
use crate::output::rtsp::RtspOutput;
use crate::pipeline::encoder;
use crate::pipeline::inventory::Inventory;
use crate::pipeline::recovery::{Recovery, SharedStatus};
use crate::pipeline::{CameraPipeline, Shared};
use crate::source::{self, v4l2};

/// What every plane is built with and reports to.
#[derive(Clone)]
pub struct Context {
    pub shared: Shared,
    pub inventory: Inventory,
    pub clients: metrics::Clients,
    pub camera_status: SharedStatus,
    /// Where the HTTP server finds HLS files (None: HLS off).
    pub hls_dir: Arc<RwLock<Option<PathBuf>>>,
}

pub struct DataPlane {
    pub camera: CameraPipeline,
    rtsp: RtspOutput,
    hls: Option<HlsOutput>,
    /// Output pipelines whose buses the supervisor watches.
    pub outputs: Vec<gst::Pipeline>,
    pub recovery: Recovery,
    /// The metrics WebSocket's first message for this plane.
    pub hello: metrics::Hello,
}

impl DataPlane {
    /// Builds and starts everything `config` describes.
    pub fn start(config: &Config, context: &Context) -> Result<Self> {
        let devices = v4l2::capture_devices();
        let source = source::resolve(&config.camera, &devices)?;
        let choice = encoder::choose(config.encoder.kind, encoder::availability)?;
        let camera = &config.camera;
        let encoding = if source.passes_h264_through(camera) {
            format!(
                "none, the camera's H.264 is passed through (the slate uses {})",
                choice.encoder.element_name()
            )
        } else {
            format!("{} ({})", choice.encoder.element_name(), choice.reason)
        };
        tracing::info!(
            "camera: {} at {}x{}@{}; encoder: {encoding}",
            source.describe(),
            camera.width,
            camera.height,
            camera.fps,
        );
        context
            .shared
            .controls
            .replace_settings(camera.controls.clone());
        let pipeline = CameraPipeline::build(config, &source, &choice, &context.shared)?;
        context.inventory.register(pipeline.pipeline.upcast_ref());
        let rtsp = RtspOutput::start(
            &config.rtsp,
            &pipeline.pipeline,
            pipeline.producer.clone(),
            context.inventory.clone(),
            context.clients.rtsp.clone(),
        )?;
        if let Err(err) = pipeline.start() {
            pipeline.stop();
            rtsp.stop();
            return Err(err);
        }
        let name = stream_name(&config.rtsp.path);
        let hls = if config.hls.enabled {
            match HlsOutput::start(
                &config.hls,
                &name,
                &pipeline.pipeline,
                &pipeline.producer,
                &context.inventory,
            ) {
                Ok(hls) => Some(hls),
                Err(err) => {
                    pipeline.stop();
                    rtsp.stop();
                    return Err(err);
                }
            }
        } else {
            None
        };
        if let Ok(mut dir) = context.hls_dir.write() {
            *dir = hls.as_ref().map(|hls| hls.dir.path().to_owned());
        }
        let hello = hello(
            config,
            &source,
            &choice,
            hls.is_some().then_some(name.as_str()),
        );
        let recovery = Recovery::new(
            Duration::from_millis(config.camera.stall_timeout_ms.into()),
            Duration::from_secs(config.camera.retry_max_s.into()),
            context.camera_status.clone(),
        );
        let outputs = hls.iter().map(|hls| hls.pipeline().clone()).collect();
        Ok(Self {
            camera: pipeline,
            rtsp,
            hls,
            outputs,
            recovery,
            hello,
        })
    }

    /// Whether HLS runs, for the start-up message.
    pub fn has_hls(&self) -> bool {
        self.hls.is_some()
    }

    /// Stops everything; viewers are disconnected.
    pub fn stop(self, context: &Context) {
        tracing::info!(viewers = self.rtsp.client_count(), "stopping the pipeline");
        if let Ok(mut dir) = context.hls_dir.write() {
            *dir = None;
        }
        if let Some(hls) = &self.hls {
            hls.stop();
        }
        self.camera.stop();
        self.rtsp.stop();
    }
}

/// The metrics WebSocket's first message.
fn hello(
    config: &Config,
    source: &source::ResolvedSource,
    choice: &encoder::Choice,
    hls: Option<&str>,
) -> metrics::Hello {
    let camera = &config.camera;
    let encoder = &config.encoder;
    metrics::Hello {
        kind: "hello",
        schema: metrics::SCHEMA,
        device: hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        version: env!("CARGO_PKG_VERSION"),
        camera: serde_json::json!({
            "source": source.describe(),
            "width": camera.width,
            "height": camera.height,
            "fps": camera.fps,
        }),
        encoder: serde_json::json!({
            "element": choice.encoder.element_name(),
            "reason": choice.reason,
            // The camera's own H.264 goes out as it is; the element above
            // then encodes only the slate.
            "passthrough": source.passes_h264_through(camera),
            "bitrate_kbps": encoder.bitrate_kbps,
            "keyframe_interval": encoder.keyframe_interval,
            "profile": encoder.profile.caps_name(),
        }),
        outputs: serde_json::json!({
            "rtsp": { "port": config.rtsp.port, "path": config.rtsp.path },
            "hls": hls.map(|name| serde_json::json!({
                "playlist": format!("/hls/{name}.m3u8"),
                "segment_s": config.hls.segment_s,
                "window": config.hls.window,
            })),
            "metrics_ws": "/api/metrics/ws",
            "prometheus": "/metrics",
        }),
        sample_rate_hz: config.metrics.rate_hz,
    }
}

/// The name of the stream in HLS file names: the RTSP path without its
/// slashes (`/cam` → `cam`, `/front/door` → `front-door`).
pub fn stream_name(rtsp_path: &str) -> String {
    rtsp_path.trim_start_matches('/').replace('/', "-")
}
