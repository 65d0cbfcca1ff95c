//! Where frames come from. Each source is a GStreamer bin with one `src` pad
//! that delivers raw I420 video at the configured size and rate, every
//! buffer tagged with its frame identity (see [`identity`]).

pub mod fault;
pub mod file;
pub mod identity;
pub mod slate;
pub mod stamp;
mod test_pattern;
pub mod v4l2;

use anyhow::{Context, Result};

use crate::config::{CameraConfig, CaptureFormat, SourceKind};

/// Frames a source received but threw away because they were broken:
/// truncated or corrupt JPEG from a USB webcam. Counted, never fatal.
#[derive(Clone, Default, Debug)]
pub struct Rejects(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Rejects {
    pub fn reject(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The source that will actually run, after "auto" has been decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedSource {
    TestPattern,
    V4l2(v4l2::CaptureDevice),
    /// A video file replayed as a camera.
    File(std::path::PathBuf),
}

/// How the camera pipeline takes the source's picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shape {
    /// The source's own H.264 goes to the outputs as it is (no encoder).
    pub passthrough: bool,
    /// Frames must be raw before the encoder (overlay layers are drawn on
    /// them), so a camera's H.264 is decoded even at the configured size.
    pub must_decode: bool,
}

impl ResolvedSource {
    /// The shape of the camera pipeline for `config`: the camera's H.264
    /// passes through unless something draws on the picture.
    pub fn shape(&self, config: &crate::config::Config) -> Shape {
        let must_decode = config.overlay.draws();
        Shape {
            passthrough: !must_decode && self.passes_h264_through(&config.camera),
            must_decode,
        }
    }

    /// Whether the source delivers H.264 that goes to the outputs as it is
    /// (no encoder then but the slate's): a V4L2 camera offering H.264 at
    /// the configured size, or the test pattern with `format = "h264"`,
    /// which encodes inside the source like such a camera.
    pub fn passes_h264_through(&self, camera: &CameraConfig) -> bool {
        match self {
            ResolvedSource::TestPattern => camera.format == CaptureFormat::H264,
            // Decoded and encoded: the file's own H.264 is not passed
            // through (yet).
            ResolvedSource::File(_) => false,
            ResolvedSource::V4l2(device) if device.formats.is_empty() => {
                camera.format == CaptureFormat::H264
            }
            ResolvedSource::V4l2(device) => v4l2::negotiate::choose(
                device,
                camera.format,
                (camera.width, camera.height, camera.fps),
            )
            .is_ok_and(|mode| mode.decode == v4l2::negotiate::Decode::Passthrough),
        }
    }

    /// A short human name for logs and the probe report.
    pub fn describe(&self) -> String {
        match self {
            ResolvedSource::TestPattern => "test pattern".to_owned(),
            ResolvedSource::V4l2(device) => format!("V4L2 {} ({})", device.path, device.name),
            ResolvedSource::File(path) => format!("file {}", path.display()),
        }
    }
}

/// Decides which source runs. `devices` is what discovery found, first first.
pub fn resolve(camera: &CameraConfig, devices: &[v4l2::CaptureDevice]) -> Result<ResolvedSource> {
    let found = v4l2::find(&camera.device, devices);
    match (camera.source, found) {
        (SourceKind::Test, _) => Ok(ResolvedSource::TestPattern),
        (SourceKind::File, _) => Ok(ResolvedSource::File(camera.file.clone().into())),
        (SourceKind::V4l2 | SourceKind::Auto, Some(device)) => {
            Ok(ResolvedSource::V4l2(device.clone()))
        }
        // Plugged in later, it is found by the reopen attempts; until then
        // viewers see the slate.
        (SourceKind::V4l2, None) => {
            tracing::warn!(
                "camera.source = \"v4l2\" but {} (found: {}); waiting for it",
                describe_wanted(&camera.device),
                v4l2::describe_all(devices)
            );
            Ok(ResolvedSource::V4l2(v4l2::CaptureDevice::absent(
                &camera.device,
            )))
        }
        (SourceKind::Auto, None) => {
            tracing::info!(
                "camera.source = \"auto\": {} (found: {}), using the test pattern",
                describe_wanted(&camera.device),
                v4l2::describe_all(devices)
            );
            Ok(ResolvedSource::TestPattern)
        }
    }
}

fn describe_wanted(device: &str) -> String {
    if device.is_empty() {
        "no V4L2 capture device exists".to_owned()
    } else {
        format!("no V4L2 capture device matches camera.device = {device:?}")
    }
}

/// A built source: its bin, and for a camera or a file the thread feeding
/// it, which must be dropped (stopping it, closing the device or file) once
/// the bin has stopped.
pub struct BuiltSource {
    pub bin: gst::Bin,
    pub feeder: Option<Box<dyn Send>>,
}

/// Builds the source bin for `source` at the configured size and rate,
/// numbering frames from `ids`. `faults` reaches the test pattern only;
/// a V4L2 camera gets its `controls` each time it opens, and counts the
/// broken frames it throws away in `rejects`.
pub fn build(
    source: &ResolvedSource,
    camera: &CameraConfig,
    ids: &identity::FrameIds,
    faults: &fault::FaultInjector,
    controls: &v4l2::CameraControls,
    rejects: &Rejects,
    shape: Shape,
) -> Result<BuiltSource> {
    match source {
        ResolvedSource::TestPattern => test_pattern::build(camera, ids, faults, shape.passthrough)
            .map(|bin| BuiltSource { bin, feeder: None }),
        ResolvedSource::V4l2(_) => {
            v4l2::build(camera, ids, controls, rejects, shape).map(|(bin, thread)| BuiltSource {
                bin,
                feeder: Some(Box::new(thread)),
            })
        }
        ResolvedSource::File(path) => {
            file::build(camera, ids, path).map(|(bin, thread)| BuiltSource {
                bin,
                feeder: Some(Box::new(thread)),
            })
        }
    }
    .with_context(|| format!("building the {} source", source.describe()))
}

/// Whether the element `name` exists and opens (reaches READY): how a
/// Raspberry Pi's V4L2 memory-to-memory codecs are told usable, since they
/// can be registered yet not open.
pub fn element_opens(name: &str) -> bool {
    use gst::prelude::*;
    let Some(element) = gst::ElementFactory::find(name).and_then(|f| f.create().build().ok())
    else {
        return false;
    };
    let opened = element.set_state(gst::State::Ready).is_ok();
    let _ = element.set_state(gst::State::Null);
    opened
}

/// Raw video caps every source delivers. I420 is pinned: left open, x264
/// negotiated "High 4:4:4 Predictive", which browsers cannot decode.
pub fn raw_caps(camera: &CameraConfig) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", camera.width as i32)
        .field("height", camera.height as i32)
        .field("framerate", gst::Fraction::new(camera.fps as i32, 1))
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build()
}

/// Caps of H.264 as the outputs take it, from a camera that encodes or from
/// the slate's encoder when the camera's H.264 is passed through.
pub fn encoded_caps() -> gst::Caps {
    gst::Caps::builder("video/x-h264")
        .field("stream-format", "byte-stream")
        .field("alignment", "au")
        .build()
}

/// `h264parse ! capsfilter(encoded caps)`: what turns an encoder's or a
/// camera's H.264 into access units the outputs take.
pub fn encoded_tail() -> Result<[gst::Element; 2]> {
    let parse = gst::ElementFactory::make("h264parse")
        .build()
        .context("h264parse (package gstreamer1.0-plugins-bad)")?;
    let caps = gst::ElementFactory::make("capsfilter")
        .property("caps", encoded_caps())
        .build()?;
    Ok([parse, caps])
}

/// Appends `elements` after a finished source's output: the bin's `src`
/// pad then leaves from the last of them.
fn append_chain(bin: &gst::Bin, elements: &[gst::Element]) -> Result<()> {
    use gst::prelude::*;
    let (Some(first), Some(last)) = (elements.first(), elements.last()) else {
        return Ok(());
    };
    let ghost = bin
        .static_pad("src")
        .and_then(|pad| pad.downcast::<gst::GhostPad>().ok())
        .context("a finished source has a ghost src pad")?;
    let end = ghost.target().context("the ghost pad has a target")?;
    bin.add_many(elements)?;
    ghost.set_target(None::<&gst::Pad>)?;
    end.link(&first.static_pad("sink").context("no sink pad")?)?;
    gst::Element::link_many(elements)?;
    ghost.set_target(Some(&last.static_pad("src").context("no src pad")?))?;
    Ok(())
}

/// Finishes a source: appends a capsfilter pinning `caps`, tags every
/// frame leaving it with its identity (and runs `hook` on it), and wraps
/// the chain in a bin called `name` whose ghost `src` pad is the output.
fn finish_source(
    name: &str,
    caps: gst::Caps,
    mut elements: Vec<gst::Element>,
    ids: &identity::FrameIds,
    when: identity::CaptureTime,
    hook: Option<identity::FrameHook>,
) -> Result<gst::Bin> {
    use gst::prelude::*;
    let caps = gst::ElementFactory::make("capsfilter")
        .name(format!("{name}-caps"))
        .property("caps", caps)
        .build()?;
    let pad = caps
        .static_pad("src")
        .context("capsfilter has no src pad")?;
    identity::tag_frames(&pad, ids, when, hook);
    elements.push(caps);
    let bin = gst::Bin::with_name(name);
    bin.add_many(&elements)?;
    gst::Element::link_many(&elements)?;
    let ghost = gst::GhostPad::builder_with_target(&pad)?
        .name("src")
        .build();
    bin.add_pad(&ghost)?;
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(path: &str) -> v4l2::CaptureDevice {
        v4l2::CaptureDevice {
            path: path.to_owned(),
            name: "Cam".to_owned(),
            driver: "vivid".to_owned(),
            bus: String::new(),
            stable_names: Vec::new(),
            formats: Vec::new(),
        }
    }

    #[test]
    fn auto_without_devices_falls_back_to_test_pattern() {
        let camera = CameraConfig::default();
        assert_eq!(resolve(&camera, &[]).unwrap(), ResolvedSource::TestPattern);
    }

    #[test]
    fn auto_takes_the_first_device() {
        let camera = CameraConfig::default();
        let found = [device("/dev/video0"), device("/dev/video2")];
        assert_eq!(
            resolve(&camera, &found).unwrap(),
            ResolvedSource::V4l2(device("/dev/video0"))
        );
    }

    #[test]
    fn v4l2_with_missing_device_waits_for_it() {
        let camera = CameraConfig {
            source: SourceKind::V4l2,
            device: "/dev/video9".to_owned(),
            ..CameraConfig::default()
        };
        let resolved = resolve(&camera, &[device("/dev/video0")]).unwrap();
        assert_eq!(
            resolved.describe(),
            "V4L2 /dev/video9 (not present yet)",
            "{resolved:?}"
        );
    }
}
