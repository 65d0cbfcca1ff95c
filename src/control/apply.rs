//! Applying the changes that take effect on the running pipeline — the
//! encoder's bitrate, camera controls, loss and retry timings — without
//! disturbing a single viewer.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use gst::prelude::*;

use crate::cli::run::LiveSettings;
use crate::config::diff::{self, Effect};
use crate::config::{Config, ControlSetting, EncoderConfig};
use crate::pipeline::recovery::Recovery;
use crate::pipeline::CameraPipeline;

/// Brings the running pipeline from `running` to `wanted`, which differ
/// only in keys that apply live (the caller checked). On an error nothing
/// applied so far is undone here: the caller applies the old config back.
pub fn apply_live(
    running: &Config,
    wanted: &Config,
    camera: &CameraPipeline,
    recovery: &mut Recovery,
    live: &LiveSettings,
) -> Result<()> {
    for change in diff::changes(running, wanted) {
        if change.effect != Effect::Live {
            bail!("{} does not apply live", change.key);
        }
        match change.key.as_str() {
            "encoder.bitrate_kbps" => set_bitrate(camera, &wanted.encoder)?,
            "camera.stall_timeout_ms" | "camera.retry_max_s" => recovery.set_timing(
                Duration::from_millis(wanted.camera.stall_timeout_ms.into()),
                Duration::from_secs(wanted.camera.retry_max_s.into()),
            ),
            "camera.fault_injection" => live
                .fault_injection
                .store(wanted.camera.fault_injection, Ordering::Relaxed),
            "metrics.rate_hz" => live.metrics.set_rate(wanted.metrics.rate_hz),
            // The supervisor moves the HTTP server itself (it owns it).
            "http.bind" => {}
            "metrics.ws_stall_s" => live
                .ws_stall_s
                .store(wanted.metrics.ws_stall_s, Ordering::Relaxed),
            key => {
                let Some(name) = key.strip_prefix("camera.controls.") else {
                    bail!("{key} has no live setter");
                };
                // A control dropped from the file keeps its current value.
                if let Some(setting) = wanted.camera.controls.get(name) {
                    set_control(camera, name, setting)?;
                }
            }
        }
        tracing::info!("applied live: {} = {}", change.key, change.to);
    }
    Ok(())
}

/// x264enc takes kbit/s, openh264enc bit/s; both change it on the fly.
/// v4l2h264enc applies `extra-controls` to the open device when they are
/// set, so the Pi's encoder gets its new `video_bitrate` the same way.
/// (Passed-through H.264 has its encoder in the slate only.)
fn set_bitrate(camera: &CameraPipeline, config: &EncoderConfig) -> Result<()> {
    let kbps = config.bitrate_kbps;
    let encoder = camera
        .pipeline
        .by_name("encoder")
        .context("the pipeline has no encoder")?;
    let factory = encoder.factory().map(|f| f.name().to_string());
    match factory.as_deref() {
        Some("x264enc") => encoder.set_property("bitrate", kbps),
        Some("openh264enc") => encoder.set_property("bitrate", kbps.saturating_mul(1000)),
        Some("v4l2h264enc") => encoder.set_property(
            "extra-controls",
            crate::pipeline::encoder::v4l2_extra_controls(config),
        ),
        other => bail!(
            "{} cannot change its bitrate while running",
            other.unwrap_or("the encoder")
        ),
    }
    Ok(())
}

fn set_control(camera: &CameraPipeline, name: &str, setting: &ControlSetting) -> Result<()> {
    camera
        .sources
        .controls
        .set(name, setting)
        .map(|_| ())
        .map_err(|err| anyhow::anyhow!("camera.controls.{name}: {err}"))
}
