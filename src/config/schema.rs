//! The typed configuration. Defaults live in `const DEFAULT_*` beside the
//! types and must agree with the repository's `config.toml` (a unit test
//! checks that the two never drift apart). What changing each key takes is
//! declared here too, in each section's `EFFECTS` (a unit test checks that
//! every key has one).

use std::collections::BTreeMap;

use serde::Deserialize;

pub use super::board::{GpioBackend, GpioConfig, GpioLine, PrivacyConfig};
use super::diff::{Effect, Effects};
pub use super::outputs::*;
pub use super::overlay::{Anchor, LayerConfig, LayerKind, OverlayConfig};
pub use super::publish::{Protocol, PublishAudio, PublishConfig, PublishTarget};
use super::units::Span;

pub const DEFAULT_WIDTH: u32 = 1280;
pub const DEFAULT_HEIGHT: u32 = 720;
pub const DEFAULT_FPS: u32 = 30;
pub const DEFAULT_STALL_TIMEOUT_MS: u32 = 2000;
pub const DEFAULT_RETRY_MAX_S: u32 = 30;
pub const DEFAULT_BITRATE_KBPS: u32 = 2000;
pub const DEFAULT_KEYFRAME_INTERVAL: u32 = 30;
pub const DEFAULT_HTTP_BIND: &str = "0.0.0.0:8080";
pub const DEFAULT_HTTP_MAX_CONNECTIONS: u32 = 256;
pub const DEFAULT_HTTP_HEADER_TIMEOUT: Span = Span::from_secs(10);
pub const DEFAULT_HTTP_IDLE_TIMEOUT: Span = Span::from_secs(60);
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
    pub jpeg: JpegConfig,
    pub mjpeg: MjpegConfig,
    pub frames: FramesConfig,
    pub webrtc: WebrtcConfig,
    pub overlay: OverlayConfig,
    pub privacy: PrivacyConfig,
    pub gpio: GpioConfig,
    pub publish: PublishConfig,
}

impl Config {
    /// Each section's name and the effects of its keys.
    pub const SECTIONS: [(&'static str, Effects); 16] = [
        ("camera", CameraConfig::EFFECTS),
        ("encoder", EncoderConfig::EFFECTS),
        ("rtsp", RtspConfig::EFFECTS),
        ("http", HttpConfig::EFFECTS),
        ("hls", HlsConfig::EFFECTS),
        ("metrics", MetricsConfig::EFFECTS),
        ("auth", AuthConfig::EFFECTS),
        ("api", ApiConfig::EFFECTS),
        ("jpeg", JpegConfig::EFFECTS),
        ("mjpeg", MjpegConfig::EFFECTS),
        ("frames", FramesConfig::EFFECTS),
        ("webrtc", WebrtcConfig::EFFECTS),
        ("overlay", OverlayConfig::EFFECTS),
        ("privacy", PrivacyConfig::EFFECTS),
        ("gpio", GpioConfig::EFFECTS),
        ("publish", PublishConfig::EFFECTS),
    ];
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
    /// A video file replayed as a camera (`camera.file`), paced by the
    /// wall clock: develop and test with no camera at all.
    File,
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
    /// The video file `source = "file"` replays.
    pub file: String,
    /// Replay the file again and again (else hold its last frame).
    #[serde(rename = "loop")]
    pub looping: bool,
}

impl CameraConfig {
    /// What the camera is and how it is read needs a new camera pipeline;
    /// recovery timings and controls apply to the running one.
    pub const EFFECTS: Effects = &[
        ("source", Effect::Camera),
        ("device", Effect::Camera),
        ("width", Effect::Camera),
        ("height", Effect::Camera),
        ("fps", Effect::Camera),
        ("stall_timeout_ms", Effect::Live),
        ("retry_max_s", Effect::Live),
        ("fault_injection", Effect::Live),
        ("format", Effect::Camera),
        ("controls", Effect::Live),
        ("file", Effect::Camera),
        ("loop", Effect::Camera),
    ];
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
            file: String::new(),
            looping: true,
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

impl EncoderConfig {
    /// Encoders change their bitrate on the fly; the rest is a new encoder.
    pub const EFFECTS: Effects = &[
        ("kind", Effect::Camera),
        ("bitrate_kbps", Effect::Live),
        ("keyframe_interval", Effect::Camera),
        ("profile", Effect::Camera),
    ];
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
pub struct HttpConfig {
    /// `IP:PORT`; checked by validation.
    pub bind: String,
    /// Connections served at once; beyond it, the connection that has
    /// waited longest without sending a request is closed to make room.
    pub max_connections: u32,
    /// A client must send a whole request header within this time of
    /// connecting, or of its previous response (then it is idle).
    pub header_timeout: Span,
    /// A connection on which nothing moves either way for this long is
    /// closed (a player that stopped reading a response).
    pub idle_timeout: Span,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: DEFAULT_HTTP_BIND.to_owned(),
            max_connections: DEFAULT_HTTP_MAX_CONNECTIONS,
            header_timeout: DEFAULT_HTTP_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_HTTP_IDLE_TIMEOUT,
        }
    }
}

impl HttpConfig {
    /// The server moves to a new address, or takes new limits for the
    /// connections it accepts from then on.
    pub const EFFECTS: Effects = &[
        ("bind", Effect::Live),
        ("max_connections", Effect::Live),
        ("header_timeout", Effect::Live),
        ("idle_timeout", Effect::Live),
    ];
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    pub rate_hz: u32,
    pub ws_stall_s: u32,
}

impl MetricsConfig {
    pub const EFFECTS: Effects = &[("rate_hz", Effect::Live), ("ws_stall_s", Effect::Live)];
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

impl AuthConfig {
    /// New tokens are checked from the next request on.
    pub const EFFECTS: Effects = &[
        ("admin_token", Effect::Live),
        ("admin_token_file", Effect::Live),
        ("viewer_token", Effect::Live),
    ];
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

impl ApiConfig {
    pub const EFFECTS: Effects = &[
        ("confirm_s", Effect::Process),
        ("max_body_kib", Effect::Process),
    ];
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
