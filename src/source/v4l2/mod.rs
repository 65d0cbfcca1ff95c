//! V4L2 cameras: discovery and mode negotiation with the `v4l` crate
//! (ioctl level), live controls, and the GStreamer `v4l2src` bin that
//! carries the frames.

pub mod capture;
pub mod controls;
pub mod discovery;
pub mod negotiate;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use gst::prelude::*;

pub use discovery::{capture_devices, CaptureDevice};
use negotiate::{Decode, Mode};

use super::identity;
use crate::config::{CameraConfig, ControlSetting};

/// "none", or the paths and names, for messages.
pub fn describe_all(devices: &[CaptureDevice]) -> String {
    if devices.is_empty() {
        "none".to_owned()
    } else {
        devices
            .iter()
            .map(|d| format!("{} ({})", d.path, d.name))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The device `wanted` names: empty for the first one, a path or a
/// /dev/v4l/by-id|by-path link (compared after resolving links), or a card
/// name (case does not matter).
pub fn find<'a>(wanted: &str, devices: &'a [CaptureDevice]) -> Option<&'a CaptureDevice> {
    if wanted.is_empty() {
        return devices.first();
    }
    if wanted.starts_with('/') {
        let target = Path::new(wanted).canonicalize().ok();
        return devices.iter().find(|d| {
            d.path == wanted
                || d.stable_names.iter().any(|n| n == wanted)
                || (target.is_some() && Path::new(&d.path).canonicalize().ok() == target)
        });
    }
    devices.iter().find(|d| d.name.eq_ignore_ascii_case(wanted))
}

/// The open camera's device node and the control values it should have:
/// those from `[camera.controls]`, overridden by changes made through the
/// API, so a replugged camera gets them all back.
#[derive(Debug, Default)]
pub struct CameraControls {
    device: Mutex<Option<String>>,
    /// What the open camera captures, e.g. "YUYV 640x360@30".
    capture: Mutex<Option<String>>,
    settings: Mutex<BTreeMap<String, ControlSetting>>,
}

pub type SharedControls = Arc<CameraControls>;

impl CameraControls {
    pub fn new(settings: BTreeMap<String, ControlSetting>) -> SharedControls {
        Arc::new(Self {
            settings: Mutex::new(settings),
            ..Self::default()
        })
    }

    /// The values to give the camera from now on (a new configuration):
    /// they replace those of the old one and of earlier API changes.
    pub fn replace_settings(&self, settings: BTreeMap<String, ControlSetting>) {
        if let Ok(mut current) = self.settings.lock() {
            *current = settings;
        }
    }

    /// Every control of the camera in use, with its current value.
    pub fn list(&self) -> Result<Vec<controls::ControlInfo>, SetError> {
        let device = self.device().ok_or(SetError::NoCamera)?;
        controls::list(&device).map_err(SetError::Control)
    }

    /// The mode the V4L2 camera in use captures, e.g. "MJPG 1280x720@30".
    pub fn capture(&self) -> Option<String> {
        self.capture.lock().ok()?.clone()
    }

    /// The device node of the V4L2 camera in use, if the camera is one.
    pub fn device(&self) -> Option<String> {
        self.device.lock().ok()?.clone()
    }

    /// Sets a control on the camera now and remembers it for reopenings.
    pub fn set(
        &self,
        name: &str,
        setting: &ControlSetting,
    ) -> Result<controls::ControlInfo, SetError> {
        let device = self.device().ok_or(SetError::NoCamera)?;
        let info = controls::set(&device, name, setting).map_err(SetError::Control)?;
        // A button is an action, not a state: replaying it at every reopen
        // would repeat it (vivid's "disconnect" would loop forever).
        if info.kind != "button" {
            if let Ok(mut settings) = self.settings.lock() {
                settings.insert(name.to_owned(), setting.clone());
            }
        }
        Ok(info)
    }

    /// Records the newly opened camera and gives it the remembered values.
    fn opened(&self, device: &str, capture: &Mode) {
        if let Ok(mut current) = self.device.lock() {
            *current = Some(device.to_owned());
        }
        if let Ok(mut current) = self.capture.lock() {
            *current = Some(capture.to_string());
        }

        let settings = self.settings.lock().map(|s| s.clone()).unwrap_or_default();
        controls::apply_all(device, &settings);
    }
}

/// The camera opened in another shape than its pipeline was built for:
/// the camera pipeline must be rebuilt (the outputs stay).
#[derive(Debug, thiserror::Error)]
#[error(
    "{device} now {}: the camera pipeline must be rebuilt for it",
    if *passthrough { "sends H.264 that can be passed through" } else { "must be decoded and encoded" }
)]
pub struct ShapeChanged {
    pub device: String,
    /// Whether it can now be passed through.
    pub passthrough: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SetError {
    #[error("the camera in use is not a V4L2 device, so it has no controls")]
    NoCamera,
    #[error(transparent)]
    Control(controls::ControlError),
}

/// Finds the configured camera again (it may have come back under another
/// node after a replug), picks its capture mode, starts capturing and
/// builds the bin turning its frames into the configured raw caps:
/// `appsrc ! [decoder] ! videoconvert ! videoscale ! videorate`.
pub fn build(
    camera: &CameraConfig,
    ids: &identity::FrameIds,
    camera_controls: &CameraControls,
    rejects: &super::Rejects,
    shape: super::Shape,
) -> Result<(gst::Bin, capture::CaptureThread)> {
    let passthrough = shape.passthrough;
    let nodes = discovery::capture_nodes();
    let Some(node) = find(&camera.device, &nodes) else {
        bail!(
            "camera {:?} is not present (found: {})",
            if camera.device.is_empty() {
                "any V4L2 capture device"
            } else {
                &camera.device
            },
            describe_all(&nodes)
        );
    };
    let device = discovery::describe(Path::new(&node.path), true)
        .with_context(|| format!("reading what {} offers", node.path))?
        .with_context(|| format!("{} no longer captures video", node.path))?;
    let device = &device;
    let want = (camera.width, camera.height, camera.fps);
    let mode = if shape.must_decode {
        negotiate::choose_decoded(device, camera.format, want)?
    } else {
        negotiate::choose(device, camera.format, want)?
    };
    // The pipeline's shape (passing H.264 through, or encoding) was decided
    // when it was built; a camera that comes back different (replugged
    // with another mode, or plugged in for the first time) gets a new one.
    if passthrough != (mode.decode == Decode::Passthrough) {
        return Err(ShapeChanged {
            device: device.path.clone(),
            passthrough: !passthrough,
        }
        .into());
    }
    let rate_short = mode.rate.fps() + 0.01 < f64::from(camera.fps);
    tracing::info!(
        "camera {} ({}): capturing {mode}{}",
        device.path,
        device.name,
        if rate_short {
            format!(
                " — below the configured {} fps; frames are repeated",
                camera.fps
            )
        } else {
            String::new()
        }
    );
    let appsrc = gst_app::AppSrc::builder()
        .name("v4l2-capture")
        .caps(&capture::caps(&mode))
        .is_live(true)
        .format(gst::Format::Time)
        // A late frame is worth less than the next one: keep two at most,
        // dropping the oldest.
        .max_buffers(2)
        .leaky_type(gst_app::AppLeakyType::Downstream)
        .build();
    let mut elements = vec![appsrc.clone().upcast::<gst::Element>()];
    elements.extend(decode_chain(&mode, rejects)?);
    let caps = if passthrough {
        super::encoded_caps()
    } else {
        super::raw_caps(camera)
    };
    let bin = super::finish_source(
        "source",
        caps,
        elements,
        ids,
        identity::CaptureTime::FromTimestamps,
        None,
    )?;
    let thread = capture::start(&device.path, &mode, &appsrc, rejects)?;
    camera_controls.opened(&device.path, &mode);
    Ok((bin, thread))
}

/// `[decoder] ! videoconvert ! videoscale ! videorate`; the last three pass
/// frames through untouched when the mode already matches.
fn decode_chain(mode: &Mode, rejects: &super::Rejects) -> Result<Vec<gst::Element>> {
    let make = |factory: &str, package: &str| {
        gst::ElementFactory::make(factory)
            .build()
            .with_context(|| format!("{factory} (package {package})"))
    };
    let mut chain = Vec::new();
    match mode.decode {
        // Parsed into access units with SPS/PPS, and nothing else.
        Decode::Passthrough => {
            chain.push(make("h264parse", "gstreamer1.0-plugins-bad")?);
            return Ok(chain);
        }
        Decode::H264 => {
            chain.push(make("h264parse", "gstreamer1.0-plugins-bad")?);
            chain.push(make("avdec_h264", "gstreamer1.0-libav")?);
        }
        Decode::Jpeg => {
            let name = jpeg_decoder(super::element_opens);
            let decoder = make(name, "gstreamer1.0-plugins-good")?;
            // USB webcams send corrupt frames now and then; GstVideoDecoder
            // gives up after ten in a row by default, ending the stream.
            // A broken frame is dropped and counted, never fatal.
            if decoder.has_property("max-errors") {
                decoder.set_property("max-errors", -1i32);
            }
            // The hardware decoder answers from its own thread, so only the
            // software one's drops can be told frame by frame (truncated
            // frames are caught before either, in the capture thread).
            if name == "jpegdec" {
                count_decoder_drops(&decoder, rejects);
            }
            chain.push(decoder);
        }
        Decode::Raw(_) => {}
    }
    chain.push(make("videoconvert", "gstreamer1.0-plugins-base")?);
    chain.push(make("videoscale", "gstreamer1.0-plugins-base")?);
    chain.push(make("videorate", "gstreamer1.0-plugins-base")?);
    Ok(chain)
}

/// The JPEG decoder: the Raspberry Pi's hardware one (`v4l2jpegdec`, a
/// V4L2 memory-to-memory device) when it is there and opens, else
/// libjpeg-turbo's `jpegdec`.
fn jpeg_decoder(opens: impl Fn(&str) -> bool) -> &'static str {
    if opens("v4l2jpegdec") {
        "v4l2jpegdec"
    } else {
        "jpegdec"
    }
}

/// Counts the frames `decoder` drops: it decodes one frame per input, in
/// the input's own streaming thread, so an input arriving while the one
/// before it has produced nothing means that one was dropped.
fn count_decoder_drops(decoder: &gst::Element, rejects: &super::Rejects) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let awaiting = Arc::new(AtomicBool::new(false));
    if let Some(pad) = decoder.static_pad("sink") {
        let (awaiting, rejects) = (awaiting.clone(), rejects.clone());
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            if awaiting.swap(true, Ordering::Relaxed) {
                rejects.reject();
            }
            gst::PadProbeReturn::Ok
        });
    }
    if let Some(pad) = decoder.static_pad("src") {
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            awaiting.store(false, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(path: &str, name: &str, links: &[&str]) -> CaptureDevice {
        CaptureDevice {
            path: path.to_owned(),
            name: name.to_owned(),
            driver: "uvcvideo".to_owned(),
            bus: String::new(),
            stable_names: links.iter().map(|l| (*l).to_owned()).collect(),
            formats: Vec::new(),
        }
    }

    #[test]
    fn the_hardware_jpeg_decoder_is_taken_when_it_opens() {
        assert_eq!(jpeg_decoder(|name| name == "v4l2jpegdec"), "v4l2jpegdec");
        assert_eq!(jpeg_decoder(|_| false), "jpegdec");
    }

    #[test]
    fn a_camera_is_found_by_path_link_or_card_name() {
        let devices = [
            device("/dev/video0", "Integrated Camera", &[]),
            device(
                "/dev/video2",
                "HD Pro Webcam C920",
                &["/dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920-video-index0"],
            ),
        ];
        let path = |d: Option<&CaptureDevice>| d.map(|d| d.path.clone());
        assert_eq!(path(find("", &devices)), Some("/dev/video0".into()));
        assert_eq!(
            path(find("/dev/video2", &devices)),
            Some("/dev/video2".into())
        );
        assert_eq!(
            path(find(
                "/dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920-video-index0",
                &devices
            )),
            Some("/dev/video2".into())
        );
        assert_eq!(
            path(find("hd pro webcam c920", &devices)),
            Some("/dev/video2".into())
        );
        assert_eq!(path(find("/dev/video7", &devices)), None);
        assert_eq!(path(find("Logitech", &devices)), None);
    }
}
