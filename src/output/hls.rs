//! HLS for browsers: MPEG-TS segments written by `hlssink2` from the camera's
//! one encoded stream (no second encode), into a RAM-backed directory served
//! under `/hls/`. A viewer is an address that fetched the playlist lately.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::extract::{ConnectInfo, Path as UrlPath, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use gst::prelude::*;

use super::{Context, Output, Published, Running};
use crate::config::{Config, HlsConfig};
use crate::http::{Access, Route};
use crate::metrics::registry::RecentViewers;

/// Where the segments live. A private directory is removed on drop.
pub enum SegmentDir {
    Configured(PathBuf),
    Private(tempfile::TempDir),
}

impl SegmentDir {
    pub fn path(&self) -> &Path {
        match self {
            SegmentDir::Configured(path) => path,
            SegmentDir::Private(dir) => dir.path(),
        }
    }

    /// The configured directory; else systemd's RuntimeDirectory (tmpfs
    /// under /run); else a private directory in RAM. Never the SD card
    /// unless the user says so: segments are rewritten every second.
    pub fn choose(config: &HlsConfig) -> Result<Self> {
        if !config.dir.is_empty() {
            let path = PathBuf::from(&config.dir);
            std::fs::create_dir_all(&path)
                .with_context(|| format!("hls.dir {} cannot be created", path.display()))?;
            return Ok(SegmentDir::Configured(path));
        }
        if let Some(runtime) = std::env::var_os("RUNTIME_DIRECTORY") {
            // systemd lists several directories separated by ':'; ours is first.
            let first = runtime
                .to_string_lossy()
                .split(':')
                .next()
                .unwrap_or_default()
                .to_owned();
            let path = Path::new(&first).join("hls");
            std::fs::create_dir_all(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            return Ok(SegmentDir::Configured(path));
        }
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|dir| dir.is_dir())
            .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|dir| dir.is_dir()))
            .unwrap_or_else(std::env::temp_dir);
        remove_abandoned_dirs(&base);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PRIVATE_PREFIX}{}-", std::process::id()))
            .tempdir_in(&base)
            .with_context(|| format!("cannot create a segment directory in {}", base.display()))?;
        Ok(SegmentDir::Private(dir))
    }
}

/// Private segment directories are `edgecam-hls-<pid>-<random>`.
const PRIVATE_PREFIX: &str = "edgecam-hls-";

/// Removes private segment directories whose process is gone (killed
/// before it could remove its own; systemd's runtime directory is cleaned
/// by systemd, /dev/shm by nobody else).
fn remove_abandoned_dirs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PRIVATE_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !is_edgecam(pid) {
            tracing::info!("removing {}, left by a process that is gone", name);
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether `pid` is a running edgecam (a reused pid of another program
/// leaves its directory alone: removing too little is the safe mistake).
fn is_edgecam(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => comm.trim() == "edgecam",
        Err(_) => false,
    }
}

/// The name of the stream in HLS file names: the RTSP path without its
/// slashes (`/cam` → `cam`, `/front/door` → `front-door`).
pub fn stream_name(rtsp_path: &str) -> String {
    rtsp_path.trim_start_matches('/').replace('/', "-")
}

/// File names for a stream called `name`.
pub fn playlist_file(name: &str) -> String {
    format!("{name}.m3u8")
}

fn segment_pattern(name: &str) -> String {
    format!("{name}-%05d.ts")
}

/// Removes what an earlier run left under our names (a stale playlist would
/// point players at old segments until the first new one is written).
fn remove_stale_files(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let ours = file == playlist_file(name)
            || (file.starts_with(&format!("{name}-")) && file.ends_with(".ts"));
        if ours {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The HLS output.
#[derive(Default)]
pub struct Hls {
    served: Published<Served>,
}

/// What the running instance publishes for `/hls/`.
#[derive(Clone)]
struct Served {
    dir: PathBuf,
    viewers: RecentViewers,
    segment_s: u32,
}

impl Output for Hls {
    fn name(&self) -> &'static str {
        "hls"
    }

    fn enabled(&self, config: &Config) -> bool {
        config.hls.enabled
    }

    fn settings(&self) -> &'static [&'static str] {
        &["hls"]
    }

    fn start(&self, config: &Config, context: &Context) -> Result<Box<dyn Running>> {
        let name = stream_name(&config.rtsp.path);
        let running = RunningHls::start(&config.hls, &name, context)?;
        // An HLS player re-reads the playlist about once a segment.
        let window = Duration::from_secs(u64::from(config.hls.segment_s * 3).max(5));
        self.served.set(Served {
            dir: running.dir.path().to_owned(),
            viewers: context.registry.recent("hls", window),
            segment_s: config.hls.segment_s,
        });
        Ok(Box::new(Started {
            running,
            served: self.served.clone(),
        }))
    }

    fn routes(&self) -> Vec<Route> {
        vec![Route {
            method: "GET",
            path: "/hls/{file}",
            access: Access::Viewer,
            handler: axum::routing::get(file).with_state(self.served.clone()),
        }]
    }
}

struct RunningHls {
    pipeline: gst::Pipeline,
    _subscription: crate::pipeline::Subscription,
    dir: SegmentDir,
    description: serde_json::Value,
}

impl RunningHls {
    /// Starts writing segments for the stream `name`, fed from the encoded
    /// tap and running on the shared timeline.
    fn start(config: &HlsConfig, name: &str, context: &Context) -> Result<Self> {
        let dir = SegmentDir::choose(config)?;
        remove_stale_files(dir.path(), name);
        let pipeline = gst::Pipeline::with_name("hls");
        let appsrc = gst_app::AppSrc::builder().name("hls-src").build();
        let parse = gst::ElementFactory::make("h264parse").build()?;
        let sink = gst::ElementFactory::make("hlssink2")
            .name("hlssink")
            .property(
                "location",
                dir.path()
                    .join(segment_pattern(name))
                    .to_string_lossy()
                    .as_ref(),
            )
            .property(
                "playlist-location",
                dir.path()
                    .join(playlist_file(name))
                    .to_string_lossy()
                    .as_ref(),
            )
            .property("target-duration", config.segment_s)
            .property("playlist-length", config.window)
            // hlssink2 keeps max-files finished segments and deletes the
            // oldest only once the next one is open, so window + 1 here
            // means at most window + 2 files on disk: the window, one a slow
            // player may still be fetching, and the one being written.
            .property("max-files", config.window + 1)
            // A keyframe is requested at every segment start, so segments
            // are segment_s long whatever the encoder's keyframe interval.
            .property("send-keyframe-requests", true)
            .build()
            .context("hlssink2 (package gstreamer1.0-plugins-bad)")?;
        pipeline.add_many([appsrc.upcast_ref(), &parse, &sink])?;
        gst::Element::link_many([appsrc.upcast_ref(), &parse, &sink])
            .context("linking the HLS pipeline")?;

        context.timeline.apply(&pipeline);
        context.failures.watch_bus(&pipeline);
        let subscription = context.taps.encoded.subscribe(&appsrc)?;
        context.inventory.register(pipeline.upcast_ref());
        if let Err(err) = pipeline.set_state(gst::State::Playing) {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(err).context("starting the HLS pipeline");
        }
        tracing::info!(dir = %dir.path().display(), "HLS segments of {} s, window {}", config.segment_s, config.window);
        Ok(Self {
            pipeline,
            _subscription: subscription,
            dir,
            description: serde_json::json!({
                "playlist": format!("/hls/{}", playlist_file(name)),
                "segment_s": config.segment_s,
                "window": config.window,
            }),
        })
    }
}

/// A running HLS output and the slot its route reads.
struct Started {
    running: RunningHls,
    served: Published<Served>,
}

impl Running for Started {
    fn describe(&self) -> serde_json::Value {
        self.running.description.clone()
    }

    fn break_now(&self) {
        if let Some(sink) = self.running.pipeline.by_name("hlssink") {
            super::post_injected_error(&sink);
        }
    }

    fn stop(self: Box<Self>) {
        self.served.clear();
        let _ = self.running.pipeline.set_state(gst::State::Null);
    }
}

/// The MIME type and caching for a file name, or `None` if it is not ours
/// to serve.
fn kind(file: &str) -> Option<(&'static str, &'static str)> {
    let plain = !file.is_empty()
        && !file.starts_with('.')
        && file
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !plain {
        return None;
    }
    if file.ends_with(".m3u8") {
        // Players must re-read the playlist: it changes every segment.
        Some(("application/vnd.apple.mpegurl", "no-cache"))
    } else if file.ends_with(".ts") {
        Some(("video/mp2t", "max-age=60"))
    } else {
        None
    }
}

/// `/hls/{file}`: the playlist and segments from the segment directory.
/// Only plain file names with our two extensions are served, so a request
/// can never name a file outside the directory.
async fn file(
    State(served): State<Published<Served>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    UrlPath(file): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(Served {
        dir,
        viewers,
        segment_s,
    }) = served.get()
    else {
        return (
            StatusCode::NOT_FOUND,
            "HLS is not running (hls.enabled = false, or it is restarting)\n",
        )
            .into_response();
    };
    let Some((mime, cache)) = kind(&file) else {
        return (StatusCode::NOT_FOUND, "no such file\n").into_response();
    };
    if file.ends_with(".m3u8") {
        viewers.saw(client.ip());
    }
    let token = crate::http::query_token(query.as_deref());
    match tokio::fs::read(dir.join(&file)).await {
        Ok(bytes) => (
            [(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, cache)],
            if file.ends_with(".m3u8") {
                playlist(
                    &String::from_utf8_lossy(&bytes),
                    token.as_deref(),
                    segment_s,
                )
                .into_bytes()
            } else {
                bytes
            },
        )
            .into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "no such file (yet)\n").into_response(),
    }
}

/// The playlist as served: players told to start near the live edge
/// (`EXT-X-START`, one segment from the end, precisely: hls.js by default
/// starts three segments back, which with 1 s segments put a page 4.5–5.5 s
/// behind capture; so told, 2.3–2.8 s, and 2.8–3.3 s when it may round to
/// a segment's start), and, for a player given the playlist with `?token=`,
/// the token on every segment (it cannot set headers either).
fn playlist(text: &str, token: Option<&str>, segment_s: u32) -> String {
    let mut served = String::with_capacity(text.len() + 64);
    for line in text.lines() {
        match token {
            Some(token) if !line.is_empty() && !line.starts_with('#') => {
                served.push_str(&format!("{line}?token={token}\n"))
            }
            _ => served.push_str(&format!("{line}\n")),
        }
        if line == "#EXTM3U" {
            let offset = f64::from(segment_s);
            served.push_str(&format!(
                "#EXT-X-START:TIME-OFFSET=-{offset:.1},PRECISE=YES\n"
            ));
        }
    }
    served
}

#[cfg(test)]
mod tests {
    use super::{kind, stream_name};

    #[test]
    fn directories_of_processes_that_are_gone_are_removed() {
        let base = tempfile::tempdir().unwrap();
        // No process has this id (Linux's pid_max is at most 4194304).
        let gone = base.path().join("edgecam-hls-999999999-abc");
        let other = base.path().join("edgecam-hlsish");
        std::fs::create_dir(&gone).unwrap();
        std::fs::write(gone.join("cam-00001.ts"), "x").unwrap();
        std::fs::create_dir(&other).unwrap();
        super::remove_abandoned_dirs(base.path());
        assert!(!gone.exists());
        assert!(other.exists());
    }

    #[test]
    fn the_stream_is_named_after_the_rtsp_path() {
        assert_eq!(stream_name("/cam"), "cam");
        assert_eq!(stream_name("/front/door"), "front-door");
    }

    #[test]
    fn a_token_follows_the_playlist_to_its_segments() {
        let playlist = "#EXTM3U\n#EXTINF:1.0,\ncam-00001.ts\n";
        assert_eq!(
            super::playlist(playlist, Some("abc"), 1),
            "#EXTM3U\n#EXT-X-START:TIME-OFFSET=-1.0,PRECISE=YES\n#EXTINF:1.0,\ncam-00001.ts?token=abc\n"
        );
        assert_eq!(
            super::playlist(playlist, None, 2),
            "#EXTM3U\n#EXT-X-START:TIME-OFFSET=-2.0,PRECISE=YES\n#EXTINF:1.0,\ncam-00001.ts\n"
        );
    }

    #[test]
    fn only_plain_playlist_and_segment_names_are_served() {
        assert_eq!(
            kind("cam.m3u8").map(|k| k.0),
            Some("application/vnd.apple.mpegurl")
        );
        assert_eq!(kind("cam-00001.ts").map(|k| k.0), Some("video/mp2t"));
        for bad in ["", ".m3u8", "../x.ts", "a/b.ts", "cam.mp4", "..", "x%2f.ts"] {
            assert_eq!(kind(bad), None, "{bad}");
        }
    }
}
