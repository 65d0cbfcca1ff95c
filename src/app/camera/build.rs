//! Building one camera pipeline for a configuration (blocking: a V4L2
//! open can take seconds, so the actor runs it off the event loop).

use anyhow::Result;
use std::time::Duration;

use super::Parts;
use crate::config::Config;
use crate::metrics::CameraDescription;
use crate::pipeline::encoder::{self, Choice};
use crate::pipeline::source_slot::Start;
use crate::pipeline::CameraPipeline;
use crate::source::{self, v4l2, ResolvedSource};
use crate::supervise;

/// While starting, a V4L2 camera may take seconds to open: ask systemd
/// for the time (nothing once edgecam is ready).
pub(super) fn extend_start_timeout(config: &Config) {
    let device = &config.camera.device;
    supervise::extend_timeout(
        Duration::from_secs(20),
        &format!(
            "opening camera {}",
            if device.is_empty() {
                "(the first V4L2 capture device)"
            } else {
                device
            }
        ),
    );
}

/// A started camera pipeline and what it is.
pub(super) struct Built {
    pub pipeline: CameraPipeline,
    pub description: CameraDescription,
    pub v4l2: bool,
    /// The camera sends H.264 at the configured size (that could pass
    /// through, were nothing drawn on the picture).
    pub sends_h264: bool,
    pub passthrough: bool,
}

/// Builds and starts the camera pipeline for `config`. Blocking.
pub(super) fn build(config: &Config, parts: &Parts) -> Result<Built> {
    let devices = v4l2::capture_devices();
    let source = source::resolve(&config.camera, &devices)?;
    let choice = encoder::choose(config.encoder.kind, encoder::availability)?;
    let camera = &config.camera;
    let sends_h264 = source.passes_h264_through(camera);
    let passthrough = source.shape(config).passthrough;
    let encoding = if passthrough {
        format!(
            "none, the camera's H.264 is passed through (the slate uses {})",
            choice.encoder.element_name()
        )
    } else if sends_h264 {
        format!(
            "{} ({}); the camera's H.264 is decoded and encoded again, not passed \
             through, because overlay layers are drawn on the picture",
            choice.encoder.element_name(),
            choice.reason
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
    let v4l2 = matches!(source, ResolvedSource::V4l2(_));
    if v4l2 {
        extend_start_timeout(config);
    }
    parts
        .shared
        .controls
        .replace_settings(camera.controls.clone());
    let build = |start| {
        CameraPipeline::build(
            config,
            &source,
            &choice,
            &parts.shared,
            &parts.timeline,
            start,
        )
    };
    let first = if config.privacy.enabled {
        tracing::info!("privacy mode: the camera stays closed");
        Start::Private
    } else {
        Start::OnTheCamera
    };
    let mut pipeline = build(first)?;
    if let Err(err) = pipeline.start() {
        pipeline.stop();
        // A camera that opened but does not stream (or too slowly for its
        // first frame to arrive in time) is lost, not fatal: start on the
        // slate, and recovery reopens it with backoff. Anything else here
        // (the test pattern, the encoder) will not get better by waiting.
        if !v4l2 {
            return Err(err);
        }
        tracing::warn!("the camera pipeline did not start: {err:#}; starting on the slate");
        pipeline = build(Start::OnTheSlate(format!("{err:#}")))?;
        if let Err(err) = pipeline.start() {
            pipeline.stop();
            return Err(err);
        }
    }
    let mut description = describe(config, &source, &choice);
    // What a V4L2 camera negotiated (null for the test pattern, and while
    // a missing camera has not appeared yet).
    description.camera["capture"] = parts.shared.controls.capture().into();
    Ok(Built {
        pipeline,
        description,
        v4l2,
        sends_h264,
        passthrough,
    })
}

/// The camera and encoder as the `hello` message reports them.
fn describe(config: &Config, source: &ResolvedSource, choice: &Choice) -> CameraDescription {
    let camera = &config.camera;
    let encoder = &config.encoder;
    CameraDescription {
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
            "passthrough": source.shape(config).passthrough,
            "bitrate_kbps": encoder.bitrate_kbps,
            "keyframe_interval": encoder.keyframe_interval,
            "profile": encoder.profile.caps_name(),
        }),
    }
}
