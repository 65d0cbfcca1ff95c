//! The outputs' sections of the configuration: what each output serves,
//! and its `enabled` switch (`POST /api/outputs/{name}/start|stop` writes
//! it). Most keys restart their own output alone; the shared JPEG
//! encoder's apply live.

use serde::Deserialize;

use super::diff::{Effect, Effects};

pub const DEFAULT_RTSP_PORT: u16 = 8554;
pub const DEFAULT_RTSP_PATH: &str = "/cam";
pub const DEFAULT_SESSION_TIMEOUT_S: u32 = 60;
pub const DEFAULT_CLEANUP_INTERVAL_S: u32 = 5;
pub const DEFAULT_HLS_SEGMENT_S: u32 = 1;
pub const DEFAULT_HLS_WINDOW: u32 = 6;
pub const DEFAULT_JPEG_QUALITY: u32 = 80;
pub const DEFAULT_JPEG_MAX_FPS: u32 = 30;

/// Outputs named in effects (see `output::catalogue`).
const RTSP: &[&str] = &["rtsp"];
const HLS: &[&str] = &["hls"];
/// The HLS playlist is named after the RTSP path.
const RTSP_AND_HLS: &[&str] = &["rtsp", "hls"];
const MJPEG: &[&str] = &["mjpeg"];
const FRAMES: &[&str] = &["frames"];
const WEBRTC: &[&str] = &["webrtc"];

pub const DEFAULT_WEBRTC_MAX_PEERS: u32 = 16;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtspConfig {
    pub enabled: bool,
    pub port: u16,
    pub path: String,
    pub session_timeout_s: u32,
    pub cleanup_interval_s: u32,
    /// Credentials viewers must give (HTTP Basic over RTSP); both empty:
    /// none.
    pub user: String,
    pub password: String,
}

impl RtspConfig {
    pub const EFFECTS: Effects = &[
        ("enabled", Effect::Restart(RTSP)),
        ("port", Effect::Restart(RTSP)),
        ("path", Effect::Restart(RTSP_AND_HLS)),
        ("session_timeout_s", Effect::Restart(RTSP)),
        ("cleanup_interval_s", Effect::Restart(RTSP)),
        ("user", Effect::Restart(RTSP)),
        ("password", Effect::Restart(RTSP)),
    ];
}

impl Default for RtspConfig {
    fn default() -> Self {
        Self {
            enabled: true,
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
pub struct HlsConfig {
    pub enabled: bool,
    pub segment_s: u32,
    /// Segments listed in the playlist.
    pub window: u32,
    /// Empty means "a RAM-backed runtime directory" (see `output::hls`).
    pub dir: String,
}

impl HlsConfig {
    pub const EFFECTS: Effects = &[
        ("enabled", Effect::Restart(HLS)),
        ("segment_s", Effect::Restart(HLS)),
        ("window", Effect::Restart(HLS)),
        ("dir", Effect::Restart(HLS)),
    ];
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

/// The one JPEG encoder every JPEG consumer shares (MJPEG, snapshots,
/// JPEG frames over WebSocket). It runs only while one of them watches.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct JpegConfig {
    /// 1 (smallest) to 100 (best).
    pub quality: u32,
    /// Most JPEG frames per second (never more than the camera gives).
    pub max_fps: u32,
    /// Size of the JPEG frames; 0 and 0: the camera's.
    pub width: u32,
    pub height: u32,
}

impl JpegConfig {
    /// The encoder is rebuilt on the fly; its consumers stay.
    pub const EFFECTS: Effects = &[
        ("quality", Effect::Live),
        ("max_fps", Effect::Live),
        ("width", Effect::Live),
        ("height", Effect::Live),
    ];
}

impl Default for JpegConfig {
    fn default() -> Self {
        Self {
            quality: DEFAULT_JPEG_QUALITY,
            max_fps: DEFAULT_JPEG_MAX_FPS,
            width: 0,
            height: 0,
        }
    }
}

/// MJPEG over HTTP and JPEG snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MjpegConfig {
    pub enabled: bool,
}

impl MjpegConfig {
    pub const EFFECTS: Effects = &[("enabled", Effect::Restart(MJPEG))];
}

impl Default for MjpegConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// Frames over WebSocket (`/api/frames/ws`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FramesConfig {
    pub enabled: bool,
}

impl FramesConfig {
    pub const EFFECTS: Effects = &[("enabled", Effect::Restart(FRAMES))];
}

impl Default for FramesConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// WebRTC over WHEP (`/whep/{stream}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebrtcConfig {
    pub enabled: bool,
    /// Peers at once; one more is answered 503.
    pub max_peers: u32,
    /// The UDP ports ICE may use (both 0: any).
    pub udp_port_min: u16,
    pub udp_port_max: u16,
    /// `stun://host:port`, for peers beyond the LAN (empty: none).
    pub stun_server: String,
    /// `turn://user:password@host:port` (or `turns://`); a secret.
    pub turn_server: String,
}

impl WebrtcConfig {
    pub const EFFECTS: Effects = &[
        ("enabled", Effect::Restart(WEBRTC)),
        ("max_peers", Effect::Restart(WEBRTC)),
        ("udp_port_min", Effect::Restart(WEBRTC)),
        ("udp_port_max", Effect::Restart(WEBRTC)),
        ("stun_server", Effect::Restart(WEBRTC)),
        ("turn_server", Effect::Restart(WEBRTC)),
    ];
}

impl Default for WebrtcConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_peers: DEFAULT_WEBRTC_MAX_PEERS,
            udp_port_min: 0,
            udp_port_max: 0,
            stun_server: String::new(),
            turn_server: String::new(),
        }
    }
}
