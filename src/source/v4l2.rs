//! V4L2 capture devices: discovery through GStreamer's device monitor, and a
//! basic capture bin. (Format negotiation, controls and hot-plug come with
//! the real-camera work; this is what lets "auto" pick a plugged-in camera.)

use anyhow::{Context, Result};
use gst::prelude::*;

use super::identity;
use crate::config::CameraConfig;

/// A V4L2 node that can capture video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureDevice {
    /// e.g. `/dev/video0`
    pub path: String,
    /// The driver's card name, e.g. "HD Pro Webcam C920".
    pub name: String,
}

/// Lists V4L2 capture devices, in device-path order. Empty when the kernel
/// has no V4L2 or the v4l2 plugin is missing.
pub fn capture_devices() -> Vec<CaptureDevice> {
    let monitor = gst::DeviceMonitor::new();
    monitor.add_filter(Some("Video/Source"), None);
    if monitor.start().is_err() {
        return Vec::new();
    }
    let mut devices: Vec<CaptureDevice> = monitor
        .devices()
        .iter()
        .filter_map(|device| {
            let props = device.properties()?;
            if props.get::<String>("device.api").ok()?.as_str() != "v4l2" {
                return None;
            }
            Some(CaptureDevice {
                path: props.get::<String>("device.path").ok()?,
                name: device.display_name().to_string(),
            })
        })
        .collect();
    monitor.stop();
    devices.sort_by(|a, b| a.path.cmp(&b.path));
    devices
}

/// "none", or the paths, for messages.
pub fn describe_all(devices: &[CaptureDevice]) -> String {
    if devices.is_empty() {
        "none".to_owned()
    } else {
        devices
            .iter()
            .map(|d| d.path.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// v4l2src converted to the configured raw format, size and rate.
pub fn build(
    device: &CaptureDevice,
    camera: &CameraConfig,
    ids: &identity::FrameIds,
) -> Result<gst::Bin> {
    let src = gst::ElementFactory::make("v4l2src")
        .name("v4l2src")
        .property("device", &device.path)
        .build()
        .context("v4l2src (package gstreamer1.0-plugins-good)")?;
    let convert = gst::ElementFactory::make("videoconvert").build()?;
    let scale = gst::ElementFactory::make("videoscale").build()?;
    let rate = gst::ElementFactory::make("videorate").build()?;
    super::finish_source("source", camera, vec![src, convert, scale, rate], ids, None)
}
