//! Choosing the capture mode — pixel format, size and frame rate — that
//! best fits the configured WxH@fps among what a device offers. Pure, so
//! the choice is unit tested without a camera.

use anyhow::{bail, Result};

use super::discovery::{CaptureDevice, FormatOffer, Rate, SizeOffer};
use crate::config::CaptureFormat;

/// How frames in a pixel format reach the outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decode {
    /// The camera's own H.264, passed to the outputs as it is: no encode.
    Passthrough,
    /// The camera's H.264 at another size than configured: decoded, scaled
    /// and encoded again.
    H264,
    /// Motion JPEG, decoded.
    Jpeg,
    /// Raw video in this GStreamer format, converted to I420.
    Raw(&'static str),
}

/// A capture mode the device was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mode {
    pub fourcc: String,
    pub decode: Decode,
    pub width: u32,
    pub height: u32,
    pub rate: Rate,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}x{}@{}",
            self.fourcc, self.width, self.height, self.rate
        )
    }
}

/// Raw fourccs edgecam takes, cheapest to convert to I420 first, with the
/// GStreamer format name v4l2src gives them.
const RAW_FORMATS: [(&str, &str); 10] = [
    ("YU12", "I420"),
    ("NV12", "NV12"),
    ("YV12", "YV12"),
    ("NV21", "NV21"),
    ("YUYV", "YUY2"),
    ("UYVY", "UYVY"),
    ("YVYU", "YVYU"),
    ("NV16", "NV16"),
    ("RGB3", "RGB"),
    ("BGR3", "BGR"),
];

/// How edgecam would use `fourcc` at the configured size (`exact`), and its
/// rank in auto's preference (lower is preferred): the camera's H.264
/// passed through, then MJPEG, then raw. H.264 at another size would have
/// to be decoded and encoded again — the dearest choice, so the last.
/// None when unusable.
fn classify(fourcc: &str, exact: bool) -> Option<(Decode, usize)> {
    match fourcc {
        "H264" if exact => Some((Decode::Passthrough, 0)),
        "H264" => Some((Decode::H264, 2 + RAW_FORMATS.len())),
        "MJPG" | "JPEG" => Some((Decode::Jpeg, 1)),
        _ => RAW_FORMATS
            .iter()
            .position(|(v4l2, _)| *v4l2 == fourcc)
            .map(|i| (Decode::Raw(RAW_FORMATS[i].1), 2 + i)),
    }
}

fn allowed(wanted: CaptureFormat, fourcc: &str) -> bool {
    match wanted {
        CaptureFormat::Auto => usable(fourcc),
        CaptureFormat::H264 => fourcc == "H264",
        CaptureFormat::Mjpeg => matches!(fourcc, "MJPG" | "JPEG"),
        CaptureFormat::Yuyv => fourcc == "YUYV",
        CaptureFormat::Nv12 => fourcc == "NV12",
    }
}

/// The sizes a format offers that are worth trying for `want`: the exact
/// size when offered (stepwise ranges included), else each discrete size
/// and each range's nearest point.
fn candidate_sizes(offer: &SizeOffer, want: (u32, u32)) -> Vec<((u32, u32), Vec<Rate>)> {
    match offer {
        SizeOffer::Discrete {
            width,
            height,
            rates,
        } => vec![((*width, *height), rates.clone())],
        SizeOffer::Stepwise {
            min,
            max,
            step,
            rates,
        } => {
            let fit = |w: u32, lo: u32, hi: u32, st: u32| {
                let clamped = w.clamp(lo, hi);
                clamped - (clamped - lo) % st
            };
            let size = (
                fit(want.0, min.0, max.0, step.0),
                fit(want.1, min.1, max.1, step.1),
            );
            vec![(size, rates.clone())]
        }
    }
}

/// How well a candidate mode fits, compared as a tuple (lower is better):
/// (size differs, rate too low, format rank, size distance, rate distance).
type Fit = (bool, bool, usize, u64, u64);

/// Picks the mode for `want` = (width, height, fps). Preference, in order:
/// the exact size; a rate at least the wanted fps; auto's format order;
/// the size nearest above the wanted one (it is scaled down); the rate
/// nearest the wanted one.
pub fn choose(
    device: &CaptureDevice,
    format: CaptureFormat,
    want: (u32, u32, u32),
) -> Result<Mode> {
    pick(device, format, want, true)
}

/// The same for a pipeline that needs the picture raw (layers are drawn
/// on it): H.264 is never passed through, and being the dearest to decode
/// it comes after MJPEG and raw formats.
pub fn choose_decoded(
    device: &CaptureDevice,
    format: CaptureFormat,
    want: (u32, u32, u32),
) -> Result<Mode> {
    pick(device, format, want, false)
}

fn pick(
    device: &CaptureDevice,
    format: CaptureFormat,
    want: (u32, u32, u32),
    may_pass_through: bool,
) -> Result<Mode> {
    let (width, height, fps) = want;
    let wanted_area = u64::from(width) * u64::from(height);
    let mut best: Option<(Fit, Mode)> = None;
    for offer in device.formats.iter().filter(|f| allowed(format, &f.fourcc)) {
        for size_offer in &offer.sizes {
            for ((w, h), rates) in candidate_sizes(size_offer, (width, height)) {
                let exact = (w, h) == (width, height);
                let Some((decode, rank)) = classify(&offer.fourcc, exact && may_pass_through)
                else {
                    continue;
                };
                let area = u64::from(w) * u64::from(h);
                let covers = w >= width && h >= height;
                let size_distance = if covers {
                    area - wanted_area
                } else {
                    u64::MAX / 2 + wanted_area.saturating_sub(area)
                };
                let rate = pick_rate(&rates, fps);
                let fps_short = rate.is_none_or(|r| r.fps() + 0.01 < f64::from(fps));
                let rate = rate.unwrap_or(Rate { num: fps, den: 1 });
                let fps_distance = ((rate.fps() - f64::from(fps)).abs() * 1000.0) as u64;
                let key = (
                    (w, h) != (width, height),
                    fps_short,
                    rank,
                    size_distance,
                    fps_distance,
                );
                if best.as_ref().is_none_or(|(b, _)| key < *b) {
                    let mode = Mode {
                        fourcc: offer.fourcc.clone(),
                        decode: decode.clone(),
                        width: w,
                        height: h,
                        rate,
                    };
                    best = Some((key, mode));
                }
            }
        }
    }
    match best {
        Some((_, mode)) => Ok(mode),
        None => bail!(
            "{} ({}) offers no {} that edgecam can use; it offers: {}",
            device.path,
            device.name,
            format.describe(),
            describe_offers(&device.formats)
        ),
    }
}

/// The slowest rate at least `fps`, else the fastest below it. None when
/// the driver listed no rates for the size.
fn pick_rate(rates: &[Rate], fps: u32) -> Option<Rate> {
    let fps = f64::from(fps);
    rates
        .iter()
        .filter(|r| r.fps() + 0.01 >= fps)
        .min_by(|a, b| a.fps().total_cmp(&b.fps()))
        .or_else(|| rates.iter().max_by(|a, b| a.fps().total_cmp(&b.fps())))
        .copied()
}

/// Whether edgecam can capture in this fourcc.
pub fn usable(fourcc: &str) -> bool {
    classify(fourcc, true).is_some()
}

/// "YUYV 640x480@30/15, 1280x720@10; MJPG …; also RGGB, Y10" for error
/// messages: the usable formats in full, the rest by name only (vivid
/// alone offers 83).
pub fn describe_offers(formats: &[FormatOffer]) -> String {
    if formats.is_empty() {
        return "no formats".to_owned();
    }
    let mut parts: Vec<String> = formats
        .iter()
        .filter(|f| usable(&f.fourcc))
        .map(|f| format!("{} {}", f.fourcc, describe_sizes(&f.sizes)))
        .collect();
    let others: Vec<&str> = formats
        .iter()
        .filter(|f| !usable(&f.fourcc))
        .map(|f| f.fourcc.trim())
        .collect();
    if !others.is_empty() {
        parts.push(format!(
            "also {} (not usable by edgecam)",
            others.join(", ")
        ));
    }
    parts.join("; ")
}

/// "640x480@30/15, 1280x720@10" or "16x16–1920x1080@60/30".
pub fn describe_sizes(sizes: &[SizeOffer]) -> String {
    let rates_text = |rates: &[Rate]| {
        rates
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("/")
    };
    sizes
        .iter()
        .map(|size| match size {
            SizeOffer::Discrete {
                width,
                height,
                rates,
            } => format!("{width}x{height}@{}", rates_text(rates)),
            SizeOffer::Stepwise {
                min, max, rates, ..
            } => format!(
                "{}x{}–{}x{}@{}",
                min.0,
                min.1,
                max.0,
                max.1,
                rates_text(rates)
            ),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(fps: u32) -> Rate {
        Rate { num: fps, den: 1 }
    }

    fn discrete(width: u32, height: u32, fps: &[u32]) -> SizeOffer {
        SizeOffer::Discrete {
            width,
            height,
            rates: fps.iter().map(|f| rate(*f)).collect(),
        }
    }

    fn device(formats: Vec<(&str, Vec<SizeOffer>)>) -> CaptureDevice {
        CaptureDevice {
            path: "/dev/video0".to_owned(),
            name: "Cam".to_owned(),
            driver: "uvcvideo".to_owned(),
            bus: "usb-1".to_owned(),
            stable_names: Vec::new(),
            formats: formats
                .into_iter()
                .map(|(fourcc, sizes)| FormatOffer {
                    fourcc: fourcc.to_owned(),
                    description: String::new(),
                    sizes,
                })
                .collect(),
        }
    }

    /// A typical UVC webcam: raw is slow at 720p, MJPEG is not.
    fn webcam() -> CaptureDevice {
        device(vec![
            (
                "YUYV",
                vec![discrete(640, 480, &[30, 15]), discrete(1280, 720, &[10])],
            ),
            (
                "MJPG",
                vec![discrete(640, 480, &[30]), discrete(1280, 720, &[30])],
            ),
        ])
    }

    #[test]
    fn auto_prefers_mjpeg_over_raw_at_the_same_mode() {
        let mode = choose(&webcam(), CaptureFormat::Auto, (640, 480, 30)).unwrap();
        assert_eq!((mode.fourcc.as_str(), mode.decode), ("MJPG", Decode::Jpeg));
    }

    #[test]
    fn auto_passes_the_cameras_h264_through_at_the_configured_size() {
        let mut cam = webcam();
        cam.formats
            .push(device(vec![("H264", vec![discrete(1280, 720, &[30])])]).formats[0].clone());
        let mode = choose(&cam, CaptureFormat::Auto, (1280, 720, 30)).unwrap();
        assert_eq!(mode.decode, Decode::Passthrough);
    }

    #[test]
    fn a_picture_drawn_on_decodes_the_cameras_h264_or_prefers_mjpeg() {
        let h264 = device(vec![("H264", vec![discrete(1280, 720, &[30])])]).formats[0].clone();
        let mut cam = webcam();
        cam.formats.push(h264.clone());
        let mode = choose_decoded(&cam, CaptureFormat::Auto, (1280, 720, 30)).unwrap();
        assert_eq!((mode.fourcc.as_str(), mode.decode), ("MJPG", Decode::Jpeg));
        let only_h264 = device(vec![("H264", vec![discrete(1280, 720, &[30])])]);
        let mode = choose_decoded(&only_h264, CaptureFormat::H264, (1280, 720, 30)).unwrap();
        assert_eq!(
            (mode.decode, (mode.width, mode.height)),
            (Decode::H264, (1280, 720))
        );
    }

    #[test]
    fn h264_at_another_size_comes_last_and_is_decoded() {
        let mut cam = webcam();
        cam.formats
            .push(device(vec![("H264", vec![discrete(1920, 1080, &[30])])]).formats[0].clone());
        let mode = choose(&cam, CaptureFormat::Auto, (1280, 720, 30)).unwrap();
        assert_eq!(mode.decode, Decode::Jpeg);
        let cam = device(vec![("H264", vec![discrete(1920, 1080, &[30])])]);
        let mode = choose(&cam, CaptureFormat::H264, (1280, 720, 30)).unwrap();
        assert_eq!(mode.decode, Decode::H264);
    }

    #[test]
    fn a_format_reaching_the_frame_rate_beats_a_preferred_one_that_does_not() {
        let cam = device(vec![
            ("MJPG", vec![discrete(1280, 720, &[10])]),
            ("YUYV", vec![discrete(1280, 720, &[30])]),
        ]);
        let mode = choose(&cam, CaptureFormat::Auto, (1280, 720, 30)).unwrap();
        assert_eq!(mode.fourcc, "YUYV");
    }

    #[test]
    fn an_explicit_format_is_kept_even_when_slower() {
        let mode = choose(&webcam(), CaptureFormat::Yuyv, (1280, 720, 30)).unwrap();
        assert_eq!(mode.to_string(), "YUYV 1280x720@10");
    }

    #[test]
    fn the_slowest_rate_reaching_the_wanted_fps_is_chosen() {
        let cam = device(vec![("YUYV", vec![discrete(640, 480, &[60, 30, 15])])]);
        let mode = choose(&cam, CaptureFormat::Auto, (640, 480, 25)).unwrap();
        assert_eq!(mode.rate, rate(30));
    }

    #[test]
    fn without_the_exact_size_the_next_larger_one_is_scaled_down() {
        let cam = device(vec![(
            "YUYV",
            vec![
                discrete(320, 240, &[30]),
                discrete(1920, 1080, &[30]),
                discrete(1280, 960, &[30]),
            ],
        )]);
        let mode = choose(&cam, CaptureFormat::Auto, (1280, 720, 30)).unwrap();
        assert_eq!((mode.width, mode.height), (1280, 960));
    }

    #[test]
    fn a_stepwise_range_gives_the_exact_size() {
        let cam = device(vec![(
            "NV12",
            vec![SizeOffer::Stepwise {
                min: (16, 16),
                max: (4096, 2160),
                step: (2, 2),
                rates: vec![rate(60), rate(30)],
            }],
        )]);
        let mode = choose(&cam, CaptureFormat::Auto, (1280, 720, 30)).unwrap();
        assert_eq!(mode.to_string(), "NV12 1280x720@30");
    }

    #[test]
    fn a_missing_format_is_an_error_listing_what_the_device_offers() {
        let err = choose(&webcam(), CaptureFormat::Nv12, (640, 480, 30))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/dev/video0") && err.contains("NV12"), "{err}");
        assert!(
            err.contains("YUYV 640x480@30/15, 1280x720@10") && err.contains("MJPG"),
            "{err}"
        );
    }
}
