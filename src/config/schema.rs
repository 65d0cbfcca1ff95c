//! The typed configuration. Defaults live in `const DEFAULT_*` beside the
//! types and must agree with the repository's `config.toml` (a unit test
//! checks that the two never drift apart).

use std::collections::BTreeMap;

use serde::Deserialize;

pub const DEFAULT_WIDTH: u32 = 1280;
pub const DEFAULT_HEIGHT: u32 = 720;
pub const DEFAULT_FPS: u32 = 30;
pub const DEFAULT_STALL_TIMEOUT_MS: u32 = 2000;
pub const DEFAULT_RETRY_MAX_S: u32 = 30;
pub const DEFAULT_BITRATE_KBPS: u32 = 2000;
pub const DEFAULT_KEYFRAME_INTERVAL: u32 = 30;
pub const DEFAULT_RTSP_PORT: u16 = 8554;
pub const DEFAULT_RTSP_PATH: &str = "/cam";
pub const DEFAULT_SESSION_TIMEOUT_S: u32 = 60;
pub const DEFAULT_CLEANUP_INTERVAL_S: u32 = 5;
pub const DEFAULT_HTTP_BIND: &str = "0.0.0.0:8080";
pub const DEFAULT_HLS_SEGMENT_S: u32 = 1;
pub const DEFAULT_HLS_WINDOW: u32 = 6;
pub const DEFAULT_METRICS_RATE_HZ: u32 = 10;
pub const DEFAULT_WS_STALL_S: u32 = 5;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub camera: CameraConfig,
    pub encoder: EncoderConfig,
    pub rtsp: RtspConfig,
    pub http: HttpConfig,
    pub hls: HlsConfig,
    pub metrics: MetricsConfig,
    pub auth: AuthConfig,
    pub api: ApiConfig,
}

/// Where frames come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// The first V4L2 capture device, or the test pattern when there is none.
    #[default]
    Auto,
    /// The synthetic test pattern with its latency stamp.
    Test,
    /// A V4L2 capture device; an error when none exists.
    V4l2,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CameraConfig {
    pub source: SourceKind,
    /// Empty means "the first capture device".
    pub device: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub stall_timeout_ms: u32,
    pub retry_max_s: u32,
    pub fault_injection: bool,
    pub format: CaptureFormat,
    /// Control name → value, applied whenever the camera opens.
    pub controls: BTreeMap<String, ControlSetting>,
}

/// The pixel format asked of a V4L2 camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureFormat {
    #[default]
    Auto,
    H264,
    Mjpeg,
    Yuyv,
    Nv12,
}

impl CaptureFormat {
    /// How messages name it.
    pub fn describe(self) -> &'static str {
        match self {
            CaptureFormat::Auto => "format",
            CaptureFormat::H264 => "H.264",
            CaptureFormat::Mjpeg => "MJPEG",
            CaptureFormat::Yuyv => "YUYV",
            CaptureFormat::Nv12 => "NV12",
        }
    }
}

/// A camera control's value as config and the API write it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum ControlSetting {
    Bool(bool),
    Int(i64),
    /// A menu item's name.
    Text(String),
}

impl std::fmt::Display for ControlSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlSetting::Bool(b) => write!(f, "{b}"),
            ControlSetting::Int(i) => write!(f, "{i}"),
            ControlSetting::Text(t) => write!(f, "{t:?}"),
        }
    }
}

impl Default for CameraConfig {
    fn default() -> Self {
        Self {
            source: SourceKind::Auto,
            device: String::new(),
            width: DEFAULT_WIDTH,
            height: DEFAULT_HEIGHT,
            fps: DEFAULT_FPS,
            stall_timeout_ms: DEFAULT_STALL_TIMEOUT_MS,
            retry_max_s: DEFAULT_RETRY_MAX_S,
            fault_injection: false,
            format: CaptureFormat::Auto,
            controls: BTreeMap::new(),
        }
    }
}

/// Which H.264 encoder element runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EncoderKind {
    #[default]
    Auto,
    /// `v4l2h264enc`, the Raspberry Pi (2–4) hardware encoder.
    V4l2,
    /// `x264enc`, software.
    X264,
    /// `openh264enc`, software, constrained-baseline only.
    Openh264,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum H264Profile {
    /// Sent as `constrained-baseline`: what every decoder accepts.
    #[default]
    Baseline,
    Main,
    High,
}

impl H264Profile {
    /// The profile name as it appears in GStreamer caps.
    pub fn caps_name(self) -> &'static str {
        match self {
            H264Profile::Baseline => "constrained-baseline",
            H264Profile::Main => "main",
            H264Profile::High => "high",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncoderConfig {
    pub kind: EncoderKind,
    pub bitrate_kbps: u32,
    /// Frames between keyframes.
    pub keyframe_interval: u32,
    pub profile: H264Profile,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            kind: EncoderKind::Auto,
            bitrate_kbps: DEFAULT_BITRATE_KBPS,
            keyframe_interval: DEFAULT_KEYFRAME_INTERVAL,
            profile: H264Profile::Baseline,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtspConfig {
    pub port: u16,
    pub path: String,
    pub session_timeout_s: u32,
    pub cleanup_interval_s: u32,
    /// Credentials viewers must give (HTTP Basic over RTSP); both empty:
    /// none.
    pub user: String,
    pub password: String,
}

impl Default for RtspConfig {
    fn default() -> Self {
        Self {
            port: DEFAULT_RTSP_PORT,
            path: DEFAULT_RTSP_PATH.to_owned(),
            session_timeout_s: DEFAULT_SESSION_TIMEOUT_S,
            cleanup_interval_s: DEFAULT_CLEANUP_INTERVAL_S,
            user: String::new(),
            password: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// `IP:PORT`; checked by validation.
    pub bind: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: DEFAULT_HTTP_BIND.to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HlsConfig {
    pub enabled: bool,
    pub segment_s: u32,
    /// Segments listed in the playlist.
    pub window: u32,
    /// Empty means "a RAM-backed runtime directory" (see `output::hls`).
    pub dir: String,
}

impl Default for HlsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            segment_s: DEFAULT_HLS_SEGMENT_S,
            window: DEFAULT_HLS_WINDOW,
            dir: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    pub rate_hz: u32,
    pub ws_stall_s: u32,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            rate_hz: DEFAULT_METRICS_RATE_HZ,
            ws_stall_s: DEFAULT_WS_STALL_S,
        }
    }
}

/// Who may change things, and who may watch.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Token for the endpoints that change something. Empty: read
    /// `admin_token_file`, or generate one into the state directory.
    pub admin_token: String,
    pub admin_token_file: String,
    /// Token for video and metrics; empty leaves them open on the LAN.
    pub viewer_token: String,
}

/// The remote configuration endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Seconds a changed configuration gets to deliver frames before it
    /// is rolled back.
    pub confirm_s: u32,
    /// Largest request body accepted, in KiB.
    pub max_body_kib: u32,
}

pub const DEFAULT_CONFIRM_S: u32 = 5;
pub const DEFAULT_MAX_BODY_KIB: u32 = 64;

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            confirm_s: DEFAULT_CONFIRM_S,
            max_body_kib: DEFAULT_MAX_BODY_KIB,
        }
    }
}
