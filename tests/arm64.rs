//! The aarch64 release binary (scripts/cross-arm64) run under
//! qemu-aarch64-static against an arm64 GStreamer root: `probe` works, the
//! host's ffprobe reads its RTSP stream, and an aiortc peer plays it over
//! WHEP (webrtcbin, libnice and the DTLS/SRTP plugins from the arm64 root).

mod common;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn cross_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/cross")
}

/// The binary and its runtime root, or None (said loudly) when they have
/// not been built; EDGECAM_REQUIRE_ARM64 (scripts/test) makes that a failure.
fn built() -> Option<(PathBuf, PathBuf)> {
    let binary = cross_dir().join("aarch64-unknown-linux-gnu/release/edgecam");
    let root = cross_dir().join("runtime-arm64");
    let present = binary.exists() && root.join(".complete").exists();
    common::prerequisite(
        present,
        "EDGECAM_REQUIRE_ARM64",
        "the arm64 build is missing: run scripts/cross-arm64",
    )
    .then_some((binary, root))
}

/// `qemu-aarch64-static -L ROOT BINARY ARGS…` with GStreamer looking only
/// at the root's plugins.
fn under_qemu(binary: &PathBuf, root: &PathBuf, registry: &std::path::Path) -> Command {
    let mut command = Command::new("qemu-aarch64-static");
    command
        .arg("-L")
        .arg(root)
        .arg(binary)
        .env("GST_REGISTRY_FORK", "no")
        .env("GST_REGISTRY", registry)
        .env(
            "GST_PLUGIN_SYSTEM_PATH",
            root.join("usr/lib/aarch64-linux-gnu/gstreamer-1.0"),
        )
        .env("NO_COLOR", "1");
    command
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_arm64_binary_probes_and_serves_rtsp_and_webrtc() {
    let Some((binary, root)) = built() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.bin");

    let started = Instant::now();
    let probe = under_qemu(&binary, &root, &registry)
        .arg("probe")
        .output()
        .expect("qemu-aarch64-static (package qemu-user-static)");
    let text = String::from_utf8_lossy(&probe.stdout);
    assert!(
        probe.status.success(),
        "probe failed: {text}{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    assert!(
        text.contains("x264enc") && text.contains("usable"),
        "{text}"
    );
    println!(
        "arm64 under qemu: `edgecam probe` took {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let (rtsp, web) = (common::free_port(), common::free_port());
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[camera]\nsource = \"test\"\nwidth = 320\nheight = 240\nfps = 15\n\n\
             [encoder]\nkind = \"x264\"\n\n[rtsp]\nport = {rtsp}\n\n\
             [http]\nbind = \"127.0.0.1:{web}\"\n\n[hls]\nenabled = false\n\n\
             [auth]\nadmin_token = \"{}\"\n",
            common::ADMIN_TOKEN
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("edgecam.log")).unwrap();
    let started = Instant::now();
    let _service = Killed(
        under_qemu(&binary, &root, &registry)
            .arg("--config")
            .arg(&config)
            .arg("run")
            .env("XDG_RUNTIME_DIR", dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the arm64 binary"),
    );
    while TcpStream::connect(("127.0.0.1", rtsp)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the arm64 binary did not listen within 90 s:\n{}",
            std::fs::read_to_string(dir.path().join("edgecam.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let listening = started.elapsed();
    let stream = common::probe_stream(&format!("rtsp://127.0.0.1:{rtsp}/cam"), "tcp");
    println!(
        "arm64 under qemu: RTSP listening after {:.1} s; ffprobe: {stream:?}",
        listening.as_secs_f64()
    );
    common::assert_h264(&stream, (320, 240));
    let whep = format!("http://127.0.0.1:{web}/whep/cam");
    let log = || std::fs::read_to_string(dir.path().join("edgecam.log")).unwrap_or_default();
    let played = common::try_whep_client(&["play", &whep, "5", "1"], Duration::from_secs(120))
        .unwrap_or_else(|err| panic!("{err}\n--- edgecam.log\n{}", log()));
    println!("arm64 under qemu: an aiortc peer over WHEP for 5 s: {played}");
    let frames = played[0]["frames"].as_u64().unwrap_or(0);
    assert!(frames > 0, "no frame over WebRTC: {played}\n{}", log());
}
