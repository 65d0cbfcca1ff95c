//! What V4L2 capture devices exist and what each offers: pixel formats,
//! frame sizes and frame intervals (through the `v4l` crate's ioctls), plus
//! the stable names udev gives them under /dev/v4l/by-id and by-path.

use std::path::{Path, PathBuf};

use v4l::capability::Flags;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::video::Capture;

/// A V4L2 node that can capture video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureDevice {
    /// e.g. `/dev/video0`
    pub path: String,
    /// The driver's card name, e.g. "HD Pro Webcam C920".
    pub name: String,
    pub driver: String,
    pub bus: String,
    /// Links in /dev/v4l/by-id and /dev/v4l/by-path that point at `path`.
    pub stable_names: Vec<String>,
    pub formats: Vec<FormatOffer>,
}

impl CaptureDevice {
    /// Stands for a configured camera that is not plugged in yet.
    pub fn absent(wanted: &str) -> Self {
        let path = if wanted.is_empty() {
            "any V4L2 camera"
        } else {
            wanted
        };
        Self {
            path: path.to_owned(),
            name: "not present yet".to_owned(),
            driver: String::new(),
            bus: String::new(),
            stable_names: Vec::new(),
            formats: Vec::new(),
        }
    }
}

/// One pixel format and the sizes the device offers in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatOffer {
    /// The V4L2 fourcc, e.g. "YUYV", "MJPG", "H264".
    pub fourcc: String,
    pub description: String,
    pub sizes: Vec<SizeOffer>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SizeOffer {
    /// One size, with the frame rates offered at it (fps, highest first).
    Discrete {
        width: u32,
        height: u32,
        rates: Vec<Rate>,
    },
    /// Any size in a range (HDMI bridges, vivid's HDMI input); `rates` are
    /// those offered at the largest size.
    Stepwise {
        min: (u32, u32),
        max: (u32, u32),
        step: (u32, u32),
        rates: Vec<Rate>,
    },
}

/// A frame rate as the driver states it: `num/den` frames per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub num: u32,
    pub den: u32,
}

impl Rate {
    pub fn fps(self) -> f64 {
        f64::from(self.num) / f64::from(self.den.max(1))
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fps = self.fps();
        if fps.fract() == 0.0 {
            write!(f, "{fps:.0}")
        } else {
            write!(f, "{fps:.2}")
        }
    }
}

/// Lists V4L2 capture devices in device-number order, with everything each
/// offers. Empty when the kernel has no V4L2. Nodes that cannot capture
/// video (a UVC camera's metadata node, encoders, radios) are left out.
pub fn capture_devices() -> Vec<CaptureDevice> {
    list(true)
}

/// The same list without the formats: enough to find a device by name, and
/// far cheaper (vivid alone answers ~1000 format/size/rate queries).
pub fn capture_nodes() -> Vec<CaptureDevice> {
    list(false)
}

fn list(with_formats: bool) -> Vec<CaptureDevice> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let number = name.strip_prefix("video")?.parse().ok()?;
            Some((number, entry.path()))
        })
        .collect();
    nodes.sort();
    nodes
        .iter()
        .filter_map(|(_, path)| match describe(path, with_formats) {
            Ok(device) => device,
            Err(err) => {
                tracing::debug!("{}: {err}", path.display());
                None
            }
        })
        .collect()
}

/// Opens `path` and reads what it is (and, `with_formats`, what it offers);
/// `None` when it cannot capture.
pub fn describe(path: &Path, with_formats: bool) -> std::io::Result<Option<CaptureDevice>> {
    let device = v4l::Device::with_path(path)?;
    let caps = device.query_caps()?;
    if !caps.capabilities.contains(Flags::VIDEO_CAPTURE) {
        return Ok(None);
    }
    let mut formats = Vec::new();
    let offered = if with_formats {
        device.enum_formats()?
    } else {
        Vec::new()
    };
    for format in offered {
        let fourcc = format.fourcc;
        let mut sizes = Vec::new();
        for size in device.enum_framesizes(fourcc).unwrap_or_default() {
            sizes.push(match size.size {
                FrameSizeEnum::Discrete(d) => SizeOffer::Discrete {
                    width: d.width,
                    height: d.height,
                    rates: rates(&device, fourcc, d.width, d.height),
                },
                FrameSizeEnum::Stepwise(s) => SizeOffer::Stepwise {
                    min: (s.min_width, s.min_height),
                    max: (s.max_width, s.max_height),
                    step: (s.step_width.max(1), s.step_height.max(1)),
                    rates: rates(&device, fourcc, s.max_width, s.max_height),
                },
            });
        }
        formats.push(FormatOffer {
            fourcc: fourcc.str().unwrap_or("????").to_owned(),
            description: format.description,
            sizes,
        });
    }
    let path_text = path.display().to_string();
    Ok(Some(CaptureDevice {
        stable_names: stable_names(path),
        path: path_text,
        name: caps.card,
        driver: caps.driver,
        bus: caps.bus,
        formats,
    }))
}

/// The frame rates offered at one size, highest first. A stepwise range is
/// reduced to its ends and the common rates in between.
pub fn rates(device: &v4l::Device, fourcc: v4l::FourCC, width: u32, height: u32) -> Vec<Rate> {
    let mut rates = Vec::new();
    for interval in device
        .enum_frameintervals(fourcc, width, height)
        .unwrap_or_default()
    {
        match interval.interval {
            // An interval of n/d seconds is d/n frames per second.
            FrameIntervalEnum::Discrete(i) => rates.push(Rate {
                num: i.denominator,
                den: i.numerator,
            }),
            FrameIntervalEnum::Stepwise(s) => {
                let fastest = Rate {
                    num: s.min.denominator,
                    den: s.min.numerator,
                };
                let slowest = Rate {
                    num: s.max.denominator,
                    den: s.max.numerator,
                };
                rates.push(fastest);
                for common in [60, 50, 30, 25, 15, 10, 5] {
                    let rate = Rate {
                        num: common,
                        den: 1,
                    };
                    if rate.fps() < fastest.fps() && rate.fps() > slowest.fps() {
                        rates.push(rate);
                    }
                }
                rates.push(slowest);
            }
        }
    }
    rates.sort_by(|a, b| b.fps().total_cmp(&a.fps()));
    rates.dedup_by(|a, b| a.fps() == b.fps());
    rates
}

/// The /dev/v4l/by-id and by-path links that resolve to `path`.
fn stable_names(path: &Path) -> Vec<String> {
    let Ok(target) = path.canonicalize() else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for dir in ["/dev/v4l/by-id", "/dev/v4l/by-path"] {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.path().canonicalize().ok().as_ref() == Some(&target) {
                names.push(entry.path().display().to_string());
            }
        }
    }
    names.sort();
    names
}
