//! Choosing and configuring the one H.264 encoder of a camera.

use anyhow::{bail, Context, Result};
use gst::prelude::*;

use crate::config::{EncoderConfig, EncoderKind, H264Profile};

/// A concrete encoder (never `Auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoder {
    V4l2,
    X264,
    Openh264,
}

/// Preference order of "auto": hardware first, then the software encoders.
pub const AUTO_ORDER: [Encoder; 3] = [Encoder::V4l2, Encoder::X264, Encoder::Openh264];

impl Encoder {
    pub fn element_name(self) -> &'static str {
        match self {
            Encoder::V4l2 => "v4l2h264enc",
            Encoder::X264 => "x264enc",
            Encoder::Openh264 => "openh264enc",
        }
    }

    fn from_kind(kind: EncoderKind) -> Option<Encoder> {
        match kind {
            EncoderKind::Auto => None,
            EncoderKind::V4l2 => Some(Encoder::V4l2),
            EncoderKind::X264 => Some(Encoder::X264),
            EncoderKind::Openh264 => Some(Encoder::Openh264),
        }
    }
}

/// Whether an encoder can run on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    Usable,
    /// The reason it cannot be used, for logs and `edgecam probe`.
    Unusable(String),
}

/// Checks an encoder on the real machine: the element must exist and, for
/// the hardware encoder, its device must open (`v4l2h264enc` can be
/// registered yet fail to open when another process holds the codec).
pub fn availability(encoder: Encoder) -> Availability {
    let name = encoder.element_name();
    let Some(factory) = gst::ElementFactory::find(name) else {
        let hint = match encoder {
            Encoder::V4l2 => "no V4L2 memory-to-memory H.264 encoder on this board",
            Encoder::X264 => "install gstreamer1.0-plugins-ugly",
            Encoder::Openh264 => "install gstreamer1.0-plugins-bad",
        };
        return Availability::Unusable(format!("{name} not found ({hint})"));
    };
    if encoder != Encoder::V4l2 {
        return Availability::Usable;
    }
    let element = match factory.create().build() {
        Ok(element) => element,
        Err(err) => return Availability::Unusable(format!("{name} cannot be created: {err}")),
    };
    let opened = element.set_state(gst::State::Ready);
    let _ = element.set_state(gst::State::Null);
    match opened {
        Ok(_) => Availability::Usable,
        Err(_) => Availability::Unusable(format!("{name} exists but its device does not open")),
    }
}

/// The encoder that runs, and why it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub encoder: Encoder,
    pub reason: String,
}

/// Picks the encoder for `requested`, asking `check` about each candidate.
pub fn choose(requested: EncoderKind, check: impl Fn(Encoder) -> Availability) -> Result<Choice> {
    if let Some(encoder) = Encoder::from_kind(requested) {
        return match check(encoder) {
            Availability::Usable => Ok(Choice {
                encoder,
                reason: "configured".to_owned(),
            }),
            Availability::Unusable(why) => bail!(
                "encoder.kind = {:?} cannot run: {why}",
                encoder.element_name()
            ),
        };
    }
    let mut passed_over = Vec::new();
    for encoder in AUTO_ORDER {
        match check(encoder) {
            Availability::Usable => {
                let reason = if passed_over.is_empty() {
                    "auto: first choice".to_owned()
                } else {
                    format!("auto: {}", passed_over.join("; "))
                };
                return Ok(Choice { encoder, reason });
            }
            Availability::Unusable(why) => passed_over.push(why),
        }
    }
    bail!("no H.264 encoder can run: {}", passed_over.join("; "))
}

/// The v4l2h264enc bitrate: exactly 25 Mbit/s makes the Pi's firmware refuse
/// the setting, so that one value is nudged down by 1 kbit/s.
fn v4l2_bitrate_bps(bitrate_kbps: u32) -> u32 {
    let bps = bitrate_kbps.saturating_mul(1000);
    if bps == 25_000_000 {
        bps - 1000
    } else {
        bps
    }
}

/// The v4l2h264enc keyframe period: 1 hangs the Pi's encoder, so use 2.
fn v4l2_keyframe_period(keyframe_interval: u32) -> u32 {
    keyframe_interval.max(2)
}

/// The `extra-controls` of v4l2h264enc: SPS/PPS repeated on every IDR so late
/// joiners start at once, the keyframe period and the bitrate.
pub fn v4l2_extra_controls(config: &EncoderConfig) -> gst::Structure {
    gst::Structure::builder("controls")
        .field("repeat_sequence_header", 1i32)
        .field(
            "h264_i_frame_period",
            v4l2_keyframe_period(config.keyframe_interval) as i32,
        )
        .field(
            "video_bitrate",
            v4l2_bitrate_bps(config.bitrate_kbps) as i32,
        )
        .build()
}

/// Caps right after the encoder: they choose the profile (and for the Pi the
/// level it needs to accept 1080p30).
pub fn output_caps(encoder: Encoder, profile: H264Profile) -> gst::Caps {
    let profile = match encoder {
        // openh264enc only produces constrained baseline.
        Encoder::Openh264 => H264Profile::Baseline,
        _ => profile,
    };
    let mut caps = gst::Caps::builder("video/x-h264").field("profile", profile.caps_name());
    if encoder == Encoder::V4l2 {
        // Without an explicit level v4l2h264enc fails to negotiate on the Pi.
        caps = caps.field("level", "4");
    }
    caps.build()
}

/// x264 writes the smallest profile its tools need, not the one asked for:
/// "ultrafast" turns CABAC and 8x8 transforms off, so its streams are always
/// baseline. Main and high therefore use "superfast", the fastest preset
/// with those tools (about a third more CPU, a better picture per bit).
fn x264_speed_preset(profile: H264Profile) -> &'static str {
    match profile {
        H264Profile::Baseline => "ultrafast",
        H264Profile::Main | H264Profile::High => "superfast",
    }
}

/// Creates the encoder element configured from `config`.
pub fn make(encoder: Encoder, config: &EncoderConfig) -> Result<gst::Element> {
    let name = encoder.element_name();
    let builder = gst::ElementFactory::make(name).name("encoder");
    let element = match encoder {
        Encoder::X264 => builder
            .property("bitrate", config.bitrate_kbps)
            .property("key-int-max", config.keyframe_interval)
            .property_from_str("tune", "zerolatency")
            .property_from_str("speed-preset", x264_speed_preset(config.profile))
            .build(),
        Encoder::Openh264 => builder
            .property("bitrate", config.bitrate_kbps.saturating_mul(1000))
            .property("gop-size", config.keyframe_interval)
            .property_from_str("rate-control", "bitrate")
            .property_from_str("usage-type", "camera")
            .property_from_str("complexity", "low")
            .build(),
        Encoder::V4l2 => builder
            .property("extra-controls", v4l2_extra_controls(config))
            .build(),
    };
    element.with_context(|| format!("creating {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(usable: &'static [Encoder]) -> impl Fn(Encoder) -> Availability {
        move |encoder| {
            if usable.contains(&encoder) {
                Availability::Usable
            } else {
                Availability::Unusable(format!("{} missing", encoder.element_name()))
            }
        }
    }

    #[test]
    fn auto_prefers_the_hardware_encoder() {
        let choice = choose(EncoderKind::Auto, machine(&[Encoder::V4l2, Encoder::X264])).unwrap();
        assert_eq!(choice.encoder, Encoder::V4l2);
    }

    #[test]
    fn auto_falls_back_and_says_why() {
        let choice = choose(
            EncoderKind::Auto,
            machine(&[Encoder::X264, Encoder::Openh264]),
        )
        .unwrap();
        assert_eq!(choice.encoder, Encoder::X264);
        assert!(
            choice.reason.contains("v4l2h264enc missing"),
            "{}",
            choice.reason
        );
        let choice = choose(EncoderKind::Auto, machine(&[Encoder::Openh264])).unwrap();
        assert_eq!(choice.encoder, Encoder::Openh264);
    }

    #[test]
    fn nothing_usable_is_an_error_listing_every_reason() {
        let err = choose(EncoderKind::Auto, machine(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x264enc missing") && err.contains("openh264enc missing"),
            "{err}"
        );
    }

    #[test]
    fn a_configured_encoder_is_not_replaced() {
        assert!(choose(EncoderKind::V4l2, machine(&[Encoder::X264])).is_err());
        let choice = choose(
            EncoderKind::Openh264,
            machine(&[Encoder::X264, Encoder::Openh264]),
        )
        .unwrap();
        assert_eq!(choice.encoder, Encoder::Openh264);
    }

    #[test]
    fn v4l2_controls_avoid_the_pi_traps() {
        gst::init().unwrap();
        let config = EncoderConfig {
            bitrate_kbps: 25_000,
            keyframe_interval: 1,
            ..EncoderConfig::default()
        };
        let controls = v4l2_extra_controls(&config);
        assert_eq!(controls.get::<i32>("repeat_sequence_header").unwrap(), 1);
        assert_eq!(controls.get::<i32>("h264_i_frame_period").unwrap(), 2);
        assert_eq!(controls.get::<i32>("video_bitrate").unwrap(), 24_999_000);
        let caps = output_caps(Encoder::V4l2, H264Profile::High);
        assert_eq!(
            caps.to_string(),
            "video/x-h264, profile=(string)high, level=(string)4"
        );
    }
}
