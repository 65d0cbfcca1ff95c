//! The test source: a ball moving over a still background, paced by the
//! clock like a camera, with the latency stamp burnt into every frame.
//!
//! Why not scrolling colour bars: when the whole background moves, x264's
//! fastest preset codes the still stamp as "skip along the neighbours'
//! motion" and smears it away within a few frames. A still scene with some
//! motion is also what a fixed camera mostly sees.

use anyhow::{Context, Result};
use gst_video::prelude::*;

use super::fault::FaultInjector;
use super::identity::{self, FrameHook};
use super::stamp::{self, Stamp};
use crate::config::{CameraConfig, CaptureFormat};

pub fn build(
    camera: &CameraConfig,
    ids: &identity::FrameIds,
    faults: &FaultInjector,
    passthrough: bool,
) -> Result<gst::Bin> {
    faults.hang_while_opening();
    let src = gst::ElementFactory::make("videotestsrc")
        .name("testsrc")
        // Live: frames come at the configured rate in real time, as from a
        // camera, instead of as fast as the encoder takes them.
        .property("is-live", true)
        .property_from_str("pattern", "ball")
        .property_from_str("motion", "wavy")
        // Dark slate blue, so the picture is visibly alive but not black.
        .property("background-color", 0xFF_20_30_48u32)
        .property("foreground-color", 0xFF_F0_C0_30u32)
        .build()
        .context("videotestsrc (package gstreamer1.0-plugins-base)")?;
    let (width, height) = (camera.width as usize, camera.height as usize);
    let hook: Option<FrameHook> = if stamp::fits(width, height) {
        Some(Box::new(move |buffer, frame_id, captured_us| {
            paint_stamp(
                buffer,
                width,
                height,
                Stamp {
                    capture_time_us: captured_us,
                    frame_id: frame_id as u32,
                },
            );
        }))
    } else {
        tracing::warn!("{width}x{height} is too small for the latency stamp; frames go unstamped");
        None
    };
    // Faults act before tagging, so dropped frames use no frame ids.
    faults.watch(&src)?;
    let bin = super::finish_source(
        "source",
        super::raw_caps(camera),
        vec![src],
        ids,
        super::identity::CaptureTime::Now,
        hook,
    )?;
    // As an H.264 camera whose stream must be decoded (layers are drawn
    // on it) would deliver, once decoded: the raw picture.
    if camera.format == CaptureFormat::H264 && passthrough {
        super::append_chain(&bin, &camera_encoder(camera)?)?;
    }
    Ok(bin)
}

/// What a camera that encodes H.264 itself has inside: an encoder with a
/// camera-like 2 s keyframe interval, so `format = "h264"` exercises the
/// passthrough path (and its keyframe-gated switching) on any machine.
fn camera_encoder(camera: &CameraConfig) -> Result<Vec<gst::Element>> {
    let encoder = gst::ElementFactory::make("x264enc")
        .name("camera-encoder")
        .property("bitrate", 2000u32)
        .property("key-int-max", camera.fps * 2)
        .property_from_str("tune", "zerolatency")
        .property_from_str("speed-preset", "ultrafast")
        .build()
        .context("x264enc (package gstreamer1.0-plugins-ugly)")?;
    let profile = gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst::Caps::builder("video/x-h264")
                .field("profile", "constrained-baseline")
                .build(),
        )
        .build()?;
    let [parse, caps] = super::encoded_tail()?;
    Ok(vec![encoder, profile, parse, caps])
}

fn paint_stamp(buffer: &mut gst::BufferRef, width: usize, height: usize, stamp: Stamp) {
    let Ok(info) =
        gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, width as u32, height as u32)
            .build()
    else {
        return;
    };
    let Ok(mut frame) = gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, &info) else {
        tracing::warn!("cannot map a test frame for writing; it goes unstamped");
        return;
    };
    for plane in 0..3u32 {
        let stride = frame.plane_stride()[plane as usize] as usize;
        let Ok(data) = frame.plane_data_mut(plane) else {
            continue;
        };
        if plane == 0 {
            stamp::paint_luma(stamp, width, data, stride);
        } else {
            stamp::paint_chroma(width, data, stride);
        }
    }
}
