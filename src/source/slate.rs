//! The slate: what the outputs show while the camera is gone — "NO SIGNAL",
//! the camera's name and the time since the loss, or "PRIVACY MODE" while
//! the camera is closed on purpose — at the camera's caps and
//! on its timeline, so RTSP and HLS viewers stay connected and decoding.

use anyhow::{Context, Result};
use gst::prelude::*;

use super::identity::FrameIds;
use crate::config::CameraConfig;

pub struct Slate {
    pub bin: gst::Bin,
    text: gst::Element,
    camera_name: String,
}

impl Slate {
    /// `encoder` is empty when the outputs' encoder follows the slate, or
    /// the slate's own encoder chain when the camera's H.264 is passed
    /// through (it runs only while the slate is shown).
    pub fn build(
        camera: &CameraConfig,
        camera_name: &str,
        ids: &FrameIds,
        encoder: Vec<gst::Element>,
    ) -> Result<Self> {
        let src = gst::ElementFactory::make("videotestsrc")
            .name("slatesrc")
            .property("is-live", true)
            .property_from_str("pattern", "solid-color")
            .property("foreground-color", 0xFF_30_30_30u32)
            .build()
            .context("videotestsrc (package gstreamer1.0-plugins-base)")?;
        let text = gst::ElementFactory::make("textoverlay")
            .name("slatetext")
            .property_from_str("valignment", "center")
            .property_from_str("halignment", "center")
            .property(
                "font-desc",
                format!("Sans Bold {}", (camera.height / 24).max(8)),
            )
            .build()
            .context("textoverlay (package gstreamer1.0-plugins-base)")?;
        let convert = gst::ElementFactory::make("videoconvert").build()?;
        let bin = super::finish_source(
            "slate",
            super::raw_caps(camera),
            vec![src, text.clone(), convert],
            ids,
            super::identity::CaptureTime::Now,
            None,
        )?;
        super::append_chain(&bin, &encoder)?;
        let slate = Self {
            bin,
            text,
            camera_name: camera_name.to_owned(),
        };
        slate.show_lost_for(0);
        Ok(slate)
    }

    /// The privacy picture: the camera is off on purpose.
    pub fn show_private(&self) {
        self.text.set_property(
            "text",
            format!("PRIVACY MODE\n{}\nthe camera is off", self.camera_name),
        );
    }

    /// Updates the caption with the time since the camera was lost.
    pub fn show_lost_for(&self, seconds: u64) {
        let since = if seconds < 120 {
            format!("{seconds} s")
        } else {
            format!("{} min", seconds / 60)
        };
        self.text.set_property(
            "text",
            format!("NO SIGNAL\n{}\nlost {since} ago", self.camera_name),
        );
    }
}
