//! The live views managed at runtime through `/api/outputs`: stopped,
//! started and tuned with the admin token, written to the configuration
//! file, while an RTSP viewer plays on untouched.

mod common;

use std::time::Duration;

use common::{http, http_with, http_with_body, Edgecam, Player};

const RTSP_JOINS: &str = "edgecam_viewer_joins_total{output=\"rtsp\"}";

fn post(edgecam: &Edgecam, path: &str) -> serde_json::Value {
    let reply = http_with_body("POST", &edgecam.http_url(path), None);
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    serde_json::from_str(&reply.body).expect("JSON")
}

/// The picture size of a snapshot taken now (ffprobe's view).
fn snapshot_size(edgecam: &Edgecam) -> (u64, u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("snapshot.jpg");
    let status = std::process::Command::new("curl")
        .args(["-sf", "--max-time", "10", "-o"])
        .arg(&file)
        .arg(edgecam.http_url("/snapshot.jpg"))
        .status()
        .expect("curl");
    assert!(status.success(), "no snapshot");
    let probe = common::probe_file(&file);
    let field = |key: &str| probe.get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
    (field("width"), field("height"))
}

#[test]
fn outputs_stop_start_and_take_new_parameters_while_other_viewers_play_on() {
    let edgecam = Edgecam::start(common::config());
    let url = edgecam.url();
    let viewer = std::thread::spawn(move || {
        common::receive_stamped_frames(Player::Ffmpeg, &url, 640, 360, 24)
    });
    edgecam.wait_for_metric(RTSP_JOINS, Duration::from_secs(10), |n| n == 1.0);
    edgecam.wait_for_playlist("127.0.0.1", 2, Duration::from_secs(20));
    let pipelines_running = edgecam.metric("edgecam_pipelines").expect("pipelines");

    // Only the admin may switch outputs.
    let anonymous = http_with(
        "POST",
        &edgecam.http_url("/api/outputs/hls/stop"),
        &[],
        None,
    );
    assert_eq!(anonymous.status, 401);

    // Stopped: gone from the URLs and from the running graph, and written.
    let reply = post(&edgecam, "/api/outputs/hls/stop");
    assert_eq!(reply["changes"][0]["key"], "hls.enabled", "{reply}");
    post(&edgecam, "/api/outputs/mjpeg/stop");
    let outputs = edgecam.outputs();
    assert_eq!(outputs["outputs"]["hls"]["state"], "stopped", "{outputs}");
    assert_eq!(outputs["outputs"]["mjpeg"]["state"], "stopped", "{outputs}");
    assert_eq!(outputs["outputs"]["rtsp"]["state"], "running", "{outputs}");
    assert_eq!(outputs["outputs"]["rtsp"]["viewers"], 1, "{outputs}");
    assert_eq!(http("GET", &edgecam.http_url("/hls/cam.m3u8")).status, 404);
    assert_eq!(http("GET", &edgecam.http_url("/snapshot.jpg")).status, 404);
    let pipelines_stopped =
        edgecam.wait_for_metric("edgecam_pipelines", Duration::from_secs(5), |n| {
            n < pipelines_running
        });
    let file = std::fs::read_to_string(edgecam.dir.path().join("config.toml")).expect("config");
    let written: edgecam::config::Config = toml::from_str(&file).expect("the file parses");
    assert!(!written.hls.enabled && !written.mjpeg.enabled, "{file}");

    // Started again.
    post(&edgecam, "/api/outputs/hls/start");
    post(&edgecam, "/api/outputs/mjpeg/start");
    edgecam.wait_for_playlist("127.0.0.1", 1, Duration::from_secs(20));
    let camera_size = snapshot_size(&edgecam);

    // Tuned: JPEG size and quality, live (the next snapshot has them), and
    // persisted; unknown parameters named.
    let tuned = http_with_body(
        "PATCH",
        &edgecam.http_url("/api/outputs/mjpeg"),
        Some(r#"{"quality": 20, "width": 320, "height": 180}"#),
    );
    assert_eq!(tuned.status, 200, "{}", tuned.body);
    let tuned_size = snapshot_size(&edgecam);
    let wrong = http_with_body(
        "PATCH",
        &edgecam.http_url("/api/outputs/mjpeg"),
        Some(r#"{"qualty": 20}"#),
    );
    assert_eq!(wrong.status, 400);
    assert!(
        wrong.body.contains("qualty") && wrong.body.contains("quality"),
        "{}",
        wrong.body
    );
    let out_of_range = http_with_body(
        "PATCH",
        &edgecam.http_url("/api/outputs/mjpeg"),
        Some(r#"{"quality": 101}"#),
    );
    assert_eq!(out_of_range.status, 400, "{}", out_of_range.body);
    assert!(
        out_of_range.body.contains("jpeg.quality"),
        "{}",
        out_of_range.body
    );
    let file = std::fs::read_to_string(edgecam.dir.path().join("config.toml")).expect("config");
    let written: edgecam::config::Config = toml::from_str(&file).expect("the file parses");
    assert_eq!(
        (
            written.jpeg.quality,
            written.jpeg.width,
            written.jpeg.height
        ),
        (20, 320, 180),
        "{file}"
    );
    assert_eq!(
        edgecam.outputs()["outputs"]["mjpeg"]["settings"]["jpeg"]["quality"],
        20
    );

    let frames = viewer.join().expect("viewer");
    let gap = frames
        .windows(2)
        .map(|w| (w[1].received_us - w[0].received_us) / 1000)
        .max()
        .unwrap_or(u64::MAX);
    println!(
        "pipelines: {pipelines_running} running, {pipelines_stopped} with HLS and MJPEG stopped; \
         snapshots {camera_size:?}, then {tuned_size:?}; RTSP viewer: {} frames, longest gap \
         {gap} ms",
        frames.len()
    );
    assert_eq!(camera_size, (640, 360));
    assert_eq!(tuned_size, (320, 180));
    assert!(gap < 1000, "the RTSP picture stopped for {gap} ms");
    assert_eq!(
        edgecam.metric(RTSP_JOINS),
        Some(1.0),
        "the viewer reconnected"
    );
}
