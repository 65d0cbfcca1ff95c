//! Shared helpers for the integration tests: start the real `edgecam`
//! binary on free ports with a configuration built from the typed
//! [`Config`], wait for facts it publishes (`/healthz`, `/metrics`, the
//! API), and talk to it with real clients (ffprobe, ffmpeg, gst-launch-1.0).
#![allow(dead_code)] // each test file uses a different subset

use std::collections::HashMap;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use edgecam::config::{Config, EncoderKind, SourceKind};
use edgecam::source::identity::unix_time_us;
use edgecam::source::stamp::{self, Stamp};

pub mod metrics_ws;
pub mod picture;
pub mod systemd_vm;
pub mod vm;

pub const BIN: &str = env!("CARGO_BIN_EXE_edgecam");

/// The admin token every test configuration sets; `http` sends it.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// Whether something a script builds (a VM image, the arm64 build, the
/// Raspberry Pi image) is there. Without it a test says so loudly and
/// passes, unless `require` is set in the environment (scripts/test sets
/// each after building its part), where a missing part is a failure.
pub fn prerequisite(present: bool, require: &str, message: &str) -> bool {
    if !present {
        assert!(std::env::var_os(require).is_none(), "{message}");
        eprintln!("SKIPPED: {message}");
    }
    present
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// What every test starts from: the test pattern at 640x360@30, x264 with
/// a keyframe a second, baseline; each test changes what it is about.
pub fn config() -> Config {
    let mut config = Config::default();
    config.camera.source = SourceKind::Test;
    config.camera.width = 640;
    config.camera.height = 360;
    config.camera.fps = 30;
    config.encoder.kind = EncoderKind::X264;
    config.encoder.keyframe_interval = 30;
    config.auth.admin_token = ADMIN_TOKEN.to_owned();
    config
}

/// How the process is started, beyond its configuration.
#[derive(Clone, Default)]
pub struct Launch {
    /// Extra environment.
    pub env: Vec<(&'static str, String)>,
    /// A limit on open files (soft and hard), as a unit without
    /// `LimitNOFILE=` would give it.
    pub open_files: Option<u64>,
    /// Started as a service manager would: without `NO_COLOR` (which the
    /// tests otherwise set), stderr still a file.
    pub colour_allowed: bool,
}

/// A running `edgecam run`; killed when dropped.
pub struct Edgecam {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub http_port: u16,
    /// The configuration it was started with (ports filled in).
    pub config: Config,
}

impl Edgecam {
    /// Starts edgecam on `config` with free ports, and returns once it is
    /// healthy (frames reach the outputs). A port found free can be taken
    /// by another test's client before edgecam binds it; then it starts
    /// again on new ports (edgecam names the busy port and exits).
    pub fn start(config: Config) -> Self {
        Self::launch(config, Launch::default())
    }

    pub fn launch(config: Config, launch: Launch) -> Self {
        for _ in 0..3 {
            match Self::try_launch(config.clone(), &launch) {
                Ok(edgecam) => return edgecam,
                Err(log) => eprintln!("port taken meanwhile, starting again:\n{log}"),
            }
        }
        panic!("edgecam found no free ports in three attempts");
    }

    fn try_launch(mut config: Config, launch: &Launch) -> Result<Self, String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let http_port = free_port();
        config.rtsp.port = port;
        config.http.bind = format!("127.0.0.1:{http_port}");
        if config.hls.dir.is_empty() {
            config.hls.dir = dir.path().join("hls").display().to_string();
        }
        let config_path = dir.path().join("config.toml");
        let text = toml::to_string(&config).expect("the test config serialises");
        std::fs::write(&config_path, text).expect("write config");
        std::fs::create_dir(dir.path().join("dots")).expect("dot dir");
        let log = std::fs::File::create(dir.path().join("edgecam.log")).expect("log file");
        let mut command = Command::new(BIN);
        command
            .args(["--config", config_path.to_str().expect("utf-8 path"), "run"])
            .env("GST_DEBUG_DUMP_DOT_DIR", dir.path().join("dots"))
            .env("RUST_LOG", "info")
            .envs((!launch.colour_allowed).then_some(("NO_COLOR", "1")))
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(limit) = launch.open_files {
            // SAFETY: setrlimit is async-signal-safe and touches only the
            // child about to exec.
            unsafe {
                command.pre_exec(move || {
                    let rlimit = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = command.spawn().expect("start edgecam");
        let mut edgecam = Self {
            child: Some(child),
            dir,
            port,
            http_port,
            config,
        };
        edgecam.wait_until_healthy()?;
        Ok(edgecam)
    }

    /// Err with the log when a port turned out to be taken.
    fn wait_until_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                let log = self.log();
                if log.contains("cannot be used") {
                    return Err(log);
                }
                panic!("edgecam exited early with {status}:\n{log}");
            }
            if http("GET", &self.http_url("/healthz")).status == 200 {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("edgecam was not healthy within 30 s:\n{}", self.log());
    }

    /// The exit status, once it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/cam", self.port)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    pub fn hls_dir(&self) -> PathBuf {
        PathBuf::from(&self.config.hls.dir)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The log, for failure messages (tests judge facts, not log lines).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("edgecam.log")).unwrap_or_default()
    }

    pub fn dot_dir(&self) -> PathBuf {
        self.dir.path().join("dots")
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status();
        assert!(
            status.map(|s| s.success()).unwrap_or(false),
            "kill -{name} failed"
        );
    }

    /// `/metrics` now.
    pub fn metrics(&self) -> String {
        http("GET", &self.http_url("/metrics")).body
    }

    /// One series of `/metrics` now, e.g. `edgecam_clients{output="rtsp"}`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        vm::metric(&self.metrics(), series)
    }

    /// Polls `series` until `wanted` holds, for at most `limit`; returns the
    /// value that satisfied it, or panics with the last one.
    pub fn wait_for_metric(
        &self,
        series: &str,
        limit: Duration,
        wanted: impl Fn(f64) -> bool,
    ) -> f64 {
        let deadline = Instant::now() + limit;
        loop {
            let value = self.metric(series);
            if let Some(value) = value.filter(|v| wanted(*v)) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "{series} is {value:?} after {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The metrics WebSocket's first message: what runs (camera, encoder,
    /// outputs).
    pub fn hello(&self) -> serde_json::Value {
        metrics_ws::hello(&self.http_url("/api/metrics/ws"))
    }

    /// Makes the test source fail (`camera.fault_injection` must be on).
    pub fn inject_camera_fault(&self, kind: &str, seconds: u32) -> Instant {
        let url = self.http_url(&format!("/api/camera/fault?kind={kind}&seconds={seconds}"));
        let reply = http("POST", &url);
        assert_eq!(reply.status, 200, "fault injection: {}", reply.body);
        Instant::now()
    }

    /// PATCHes the TOML `fragment` into the configuration, with the ETag
    /// read just before.
    pub fn patch_config(&self, fragment: &str) -> HttpReply {
        let admin = format!("Authorization: Bearer {ADMIN_TOKEN}");
        let read = http_with("GET", &self.http_url("/api/config"), &[&admin], None);
        let etag = read
            .head
            .lines()
            .find_map(|l| l.strip_prefix("etag:"))
            .map(|v| v.trim().to_owned())
            .expect("an ETag");
        let if_match = format!("If-Match: {etag}");
        http_with(
            "PATCH",
            &self.http_url("/api/config"),
            &[&admin, &if_match],
            Some(fragment),
        )
    }

    /// Polls the HLS playlist until it lists `segments` segments, asked
    /// from the loopback address `from` (HLS counts viewers by address).
    pub fn wait_for_playlist(&self, from: &str, segments: usize, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let url = self.http_url("/hls/cam.m3u8");
            let reply = http_from(Some(from), "GET", &url, &[], None);
            let listed = reply.body.lines().filter(|l| l.ends_with(".ts")).count();
            if reply.status == 200 && listed >= segments {
                return reply.body;
            }
            assert!(
                Instant::now() < deadline,
                "the playlist never listed {segments} segments: {} {}\n{}",
                reply.status,
                reply.body,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `GET /api/outputs`.
    pub fn outputs(&self) -> serde_json::Value {
        let reply = http("GET", &self.http_url("/api/outputs"));
        serde_json::from_str(&reply.body).expect("JSON from /api/outputs")
    }

    /// Sends SIGTERM and waits (up to 10 s) for the exit.
    pub fn terminate(mut self) -> (ExitStatus, Duration) {
        self.signal("TERM");
        let started = Instant::now();
        let mut child = self.child.take().expect("running");
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return (status, started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                panic!(
                    "edgecam did not stop within 10 s of SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Edgecam {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs a command to completion, killing it after `limit`. Its output is
/// read while it runs (a client printing more than a pipe holds would
/// otherwise block until killed).
pub fn run_for(command: &mut Command, limit: Duration) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client");
    let pid = child.id() as libc::pid_t;
    let (done, finished) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let output = child.wait_with_output();
        let _ = done.send(());
        output
    });
    if finished.recv_timeout(limit).is_err() {
        // SAFETY: kill(2) on our own child, not yet reaped (the waiter
        // reaps it only after it exits).
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    waiter
        .join()
        .expect("waiter thread")
        .expect("client output")
}

/// Asserts that ffprobe's view of a stream is H.264 at `width`x`height`.
pub fn assert_h264(stream: &HashMap<String, String>, (width, height): (u32, u32)) {
    let field = |key: &str| stream.get(key).map(String::as_str);
    assert_eq!(field("codec_name"), Some("h264"), "{stream:?}");
    assert_eq!(
        field("width"),
        Some(width.to_string().as_str()),
        "{stream:?}"
    );
    assert_eq!(
        field("height"),
        Some(height.to_string().as_str()),
        "{stream:?}"
    );
}

/// ffprobe's view of the first video stream: key → value.
pub fn probe_stream(url: &str, transport: &str) -> HashMap<String, String> {
    try_probe_stream(url, transport).unwrap_or_else(|err| panic!("{err}"))
}

/// As [`probe_stream`], the failure returned (for a caller that retries
/// while a slow, emulated camera pipeline comes up).
pub fn try_probe_stream(url: &str, transport: &str) -> Result<HashMap<String, String>, String> {
    let output = run_for(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-rtsp_transport",
            transport,
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height,r_frame_rate,profile",
            "-of",
            "default=noprint_wrappers=1",
            url,
        ]),
        Duration::from_secs(20),
    );
    if !output.status.success() {
        return Err(format!(
            "ffprobe {transport} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

/// ffprobe's view of a file's first video stream (codec_name, width, height).
pub fn probe_file(file: &Path) -> HashMap<String, String> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args([
            "stream=codec_name,width,height",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(file)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Records `seconds` of the stream with `-c copy` into `file`.
pub fn record(url: &str, transport: &str, seconds: u32, file: &Path) -> Output {
    run_for(
        Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-rtsp_transport",
                transport,
                "-i",
                url,
                "-t",
                &seconds.to_string(),
                "-c",
                "copy",
                "-y",
            ])
            .arg(file),
        Duration::from_secs(u64::from(seconds) + 20),
    )
}

/// Decodes a file completely and counts its video frames.
pub fn count_frames(file: &Path) -> u64 {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// A frame decoded by a client: when it arrived and the stamp it carries.
#[derive(Debug, Clone, Copy)]
pub struct ReceivedFrame {
    pub received_us: u64,
    pub stamp: Option<Stamp>,
}

/// A real player that decodes the stream to grey frames on its stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Player {
    Ffmpeg,
    GstLaunch,
    /// ffmpeg reading an HLS playlist URL (from its default live position).
    FfmpegHls,
    /// ffmpeg reading an MJPEG-over-HTTP URL (`multipart/x-mixed-replace`).
    FfmpegMjpeg,
}

impl Player {
    /// The command line, RTSP over TCP, with decoder threading and output
    /// buffering turned off: each would hold frames back and inflate the
    /// measured latency. ffmpeg gets `-fps_mode passthrough`: its rawvideo
    /// output otherwise defaults to constant frame rate and duplicates a
    /// frame whenever arrival jitters on a busy machine.
    pub fn command(self, url: &str, seconds: u32) -> Command {
        let args = match self {
            // The stream parameters are in the SDP, so ffmpeg need not probe;
            // with `-fflags nobuffer` it would instead drop everything read
            // while probing (the keyframe included) and start late.
            Player::Ffmpeg => format!(
                "-v error -rtsp_transport tcp -probesize 32 -analyzeduration 0 -flags low_delay \
                 -threads 1 -i {url} -t {seconds} -an -fps_mode passthrough -f rawvideo -pix_fmt gray \
                 -flush_packets 1 -"
            ),
            Player::FfmpegHls => format!(
                "-v error -threads 1 -i {url} -t {seconds} -an -fps_mode passthrough -f rawvideo \
                 -pix_fmt gray -flush_packets 1 -"
            ),
            Player::FfmpegMjpeg => format!(
                "-v error -threads 1 -f mpjpeg -i {url} -t {seconds} -an -fps_mode passthrough \
                 -f rawvideo -pix_fmt gray -flush_packets 1 -"
            ),
            Player::GstLaunch => format!(
                "-q rtspsrc location={url} protocols=tcp latency=0 ! rtph264depay \
                 ! avdec_h264 max-threads=1 ! videoconvert ! video/x-raw,format=GRAY8 \
                 ! fdsink sync=false"
            ),
        };
        let program = match self {
            Player::Ffmpeg | Player::FfmpegHls | Player::FfmpegMjpeg => "ffmpeg",
            Player::GstLaunch => "gst-launch-1.0",
        };
        let mut command = Command::new(program);
        command.args(args.split_whitespace());
        command
    }
}

/// Plays the stream with `player` for about `seconds` and reads the latency
/// stamp of each frame as it arrives.
pub fn receive_stamped_frames(
    player: Player,
    url: &str,
    width: usize,
    height: usize,
    seconds: u32,
) -> Vec<ReceivedFrame> {
    let mut child = player
        .command(url, seconds)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the player");
    let mut stdout = child.stdout.take().expect("player stdout");
    let mut frames = Vec::new();
    let mut luma = vec![0u8; width * height];
    let started = Instant::now();
    let limit = Duration::from_secs(u64::from(seconds));
    while started.elapsed() < limit && stdout.read_exact(&mut luma).is_ok() {
        let received_us = unix_time_us();
        frames.push(ReceivedFrame {
            received_us,
            stamp: stamp::read(width, height, &luma, width),
        });
    }
    let _ = child.kill();
    let _ = child.wait();
    frames
}

/// The p-th percentile (0–100) of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    let index = ((sorted.len() - 1) as f64 * p / 100.0).round() as usize;
    sorted[index]
}

/// One HTTP exchange made with curl.
pub struct HttpReply {
    pub status: u16,
    /// Status line and headers, lower-cased.
    pub head: String,
    pub body: String,
}

impl HttpReply {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim().to_owned())
        })
    }
}

/// `curl -si -X METHOD URL`.
pub fn http(method: &str, url: &str) -> HttpReply {
    http_with_body(method, url, None)
}

/// `curl -si -X METHOD [--data BODY] URL`, with the admin token.
pub fn http_with_body(method: &str, url: &str, body: Option<&str>) -> HttpReply {
    let auth = format!("Authorization: Bearer {ADMIN_TOKEN}");
    http_with(method, url, &[&auth], body)
}

/// `curl -si -X METHOD [-H HEADER]… [--data-binary BODY] URL`.
pub fn http_with(method: &str, url: &str, headers: &[&str], body: Option<&str>) -> HttpReply {
    http_from(None, method, url, headers, body)
}

/// The same from a chosen loopback address (`127.0.0.N`), for checks that
/// depend on who asks.
pub fn http_from(
    source: Option<&str>,
    method: &str,
    url: &str,
    headers: &[&str],
    body: Option<&str>,
) -> HttpReply {
    let mut command = Command::new("curl");
    command.args(["-si", "--max-time", "10", "-X", method]);
    if let Some(source) = source {
        command.args(["--interface", source]);
    }
    for header in headers {
        command.args(["-H", header]);
    }
    if let Some(body) = body {
        command.args(["--data-binary", body]);
    }
    let output = command.arg(url).output().expect("curl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    HttpReply {
        status,
        head: head.to_lowercase(),
        body: body.to_owned(),
    }
}

/// The score in `systemd-analyze security`'s last line, "→ Overall exposure
/// level for edgecam.service: 1.3 OK :-)".
pub fn security_exposure(report: &str) -> Option<f64> {
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))?;
    // "…: 1.3 OK :-)" without a terminal, "…: 1.3 OK 🙂" with one.
    line.split(": ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Runs tests/frames_client.py (Debian's Python, which has websockets, lz4
/// and zstandard from the test packages) and parses the JSON line it prints.
pub fn frames_client(args: &[&str], limit: Duration) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/frames_client.py");
    let output = run_for(
        Command::new("/usr/bin/python3").arg(script).args(args),
        limit,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "frames_client {args:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("JSON from frames_client.py")
}

/// The latency stamp of a JPEG (decoded with ffmpeg to grey).
pub fn jpeg_stamp(jpeg: &Path, width: usize, height: usize) -> Option<Stamp> {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(jpeg)
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .expect("ffmpeg");
    (output.stdout.len() == width * height)
        .then(|| stamp::read(width, height, &output.stdout, width))
        .flatten()
}

/// tests/whep_client.py (a WHEP client written with aiortc, from
/// target/pyenv) with `args`; its last line of output, a JSON report.
pub fn whep_client(args: &[&str], limit: Duration) -> serde_json::Value {
    try_whep_client(args, limit).unwrap_or_else(|err| panic!("{err}"))
}

/// As [`whep_client`], what went wrong returned.
pub fn try_whep_client(args: &[&str], limit: Duration) -> Result<serde_json::Value, String> {
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/target/pyenv/bin/python");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/whep_client.py");
    let output = run_for(Command::new(python).arg(script).args(args), limit);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).map_err(|_| {
        format!(
            "whep_client.py {args:?}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Runs `tests/browser/{script}` with Node.js (it drives headless Chromium)
/// and returns the JSON report it prints; a failed run fails the test with
/// its output and `context` (e.g. edgecam's log).
pub fn browser(script: &str, args: &[&str], limit: Duration, context: &str) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/browser")
        .join(script);
    let output = run_for(Command::new("node").arg(script).args(args), limit);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "browser run failed: {stdout}{}\n{context}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("JSON report")
}
