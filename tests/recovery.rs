//! Camera loss on the host: the fault-injecting test source stops for 5 s
//! while an RTSP viewer watches. The viewer must keep receiving frames (the
//! slate) and then live frames again, without reconnecting.

mod common;

use std::time::Duration;

use common::{http, probe_stream, receive_stamped_frames, Edgecam, Player};
use edgecam::config::{CaptureFormat, SourceKind};
use edgecam::source::identity::unix_time_us;

const RTSP_JOINS: &str = "edgecam_viewer_joins_total{output=\"rtsp\"}";

#[test]
fn a_viewer_stays_connected_through_a_camera_loss() {
    viewer_through_a_five_second_loss(CaptureFormat::Auto);
}

/// The same with a camera that sends H.264 (the test pattern encoding
/// inside the source, keyframes 2 s apart): its stream goes out untouched,
/// only the slate is encoded, and the switch back waits for the camera's
/// keyframe, so every frame after it decodes.
#[test]
fn a_passed_through_h264_camera_survives_a_loss_too() {
    let edgecam = viewer_through_a_five_second_loss(CaptureFormat::H264);
    let hello = edgecam.hello();
    assert_eq!(hello["encoder"]["passthrough"], true, "{hello}");
}

/// One RTSP viewer for 14 s while the test source stops for 5 s from the
/// 4th second: live, slate, live again, all in one session. Returns the
/// service for further checks.
fn viewer_through_a_five_second_loss(format: CaptureFormat) -> Edgecam {
    let mut config = common::config();
    config.camera.format = format;
    config.camera.fault_injection = true;
    config.camera.stall_timeout_ms = 500;
    let edgecam = Edgecam::start(config);
    let url = edgecam.url();
    // One player for the whole 14 s: it is never restarted.
    let viewer =
        std::thread::spawn(move || receive_stamped_frames(Player::Ffmpeg, &url, 640, 360, 14));
    edgecam.wait_for_metric(RTSP_JOINS, Duration::from_secs(10), |n| n == 1.0);
    std::thread::sleep(Duration::from_secs(3));
    let fault_at = unix_time_us();
    let injected = http(
        "POST",
        &edgecam.http_url("/api/camera/fault?kind=stop&seconds=5"),
    );
    assert_eq!(
        injected.status, 200,
        "fault injection refused: {}",
        injected.body
    );
    // The loss shows within the stall timeout, in the health check too.
    edgecam.wait_for_metric("edgecam_camera_live", Duration::from_secs(3), |n| n == 0.0);
    let health = http("GET", &edgecam.http_url("/healthz")).body;
    assert!(
        health.contains("NO SIGNAL slate (camera lost: no frame for"),
        "/healthz during the loss: {health}"
    );
    let frames = viewer.join().expect("viewer");
    let fault_end = fault_at + 5_000_000;

    let live_before = frames
        .iter()
        .filter(|f| f.stamp.is_some() && f.received_us < fault_at)
        .count();
    let slate = frames
        .iter()
        .filter(|f| f.stamp.is_none() && f.received_us > fault_at && f.received_us < fault_end)
        .count();
    let live_after: Vec<_> = frames
        .iter()
        .filter(|f| f.received_us > fault_end)
        .filter_map(|f| f.stamp)
        .collect();
    // From the first live frame after the fault on, every frame decodes: no
    // switch in the middle of a group of pictures.
    let back = frames
        .iter()
        .position(|f| f.received_us > fault_end && f.stamp.is_some())
        .unwrap_or(frames.len());
    let garbled = frames[back..].iter().filter(|f| f.stamp.is_none()).count();
    let longest_gap = frames
        .windows(2)
        .map(|w| w[1].received_us - w[0].received_us)
        .max()
        .unwrap_or(u64::MAX);
    println!(
        "camera loss: {live_before} live frames before, {slate} slate frames during the 5 s fault, \
         {} live frames after ({garbled} unreadable); longest gap between frames {} ms",
        live_after.len(),
        longest_gap / 1000
    );
    assert!(
        garbled * 20 <= frames.len() - back,
        "{garbled} of {} frames after the camera came back did not decode",
        frames.len() - back
    );
    assert!(
        live_before > 60,
        "only {live_before} live frames before the fault"
    );
    // 5 s of fault minus the 0.5 s stall timeout, at 30 fps, with slack.
    assert!(slate > 90, "only {slate} slate frames during the fault");
    assert!(
        live_after.len() > 60,
        "live video did not come back: {} frames",
        live_after.len()
    );
    assert!(
        longest_gap < 1_500_000,
        "the stream stopped for {} ms",
        longest_gap / 1000
    );

    // The player joined once, before the fault, and never again.
    assert_eq!(
        edgecam.metric(RTSP_JOINS),
        Some(1.0),
        "the viewer reconnected"
    );
    assert_eq!(edgecam.metric("edgecam_camera_losses_total"), Some(1.0));
    assert_eq!(edgecam.metric("edgecam_camera_reconnects_total"), Some(1.0));
    assert_eq!(edgecam.metric("edgecam_camera_live"), Some(1.0));
    edgecam
}

#[test]
fn a_source_error_is_a_loss_not_the_end() {
    let mut config = common::config();
    config.camera.fault_injection = true;
    let edgecam = Edgecam::start(config);
    edgecam.inject_camera_fault("error", 2);
    edgecam.wait_for_metric("edgecam_camera_losses_total", Duration::from_secs(5), |n| {
        n == 1.0
    });
    edgecam.wait_for_metric(
        "edgecam_camera_reconnects_total",
        Duration::from_secs(15),
        |n| n == 1.0,
    );
    assert_eq!(edgecam.metric("edgecam_camera_live"), Some(1.0));
    common::assert_h264(&common::probe_stream(&edgecam.url(), "tcp"), (640, 360));
}

#[test]
fn fault_injection_is_off_by_default() {
    let edgecam = Edgecam::start(common::config());
    for path in [
        "/api/camera/fault?kind=stop&seconds=5",
        "/api/outputs/hls/fault",
    ] {
        let reply = http("POST", &edgecam.http_url(path));
        assert_eq!(reply.status, 404, "{path}: {}", reply.body);
    }
}

#[test]
fn a_camera_missing_at_start_is_waited_for_behind_the_slate() {
    // This host has no V4L2 at all: the configured camera never appears.
    let mut config = common::config();
    config.camera.source = SourceKind::V4l2;
    config.camera.device = "/dev/v4l/by-id/usb-not-plugged-in-video-index0".to_owned();
    let edgecam = Edgecam::start(config);
    let stream = probe_stream(&edgecam.url(), "tcp");
    common::assert_h264(&stream, (640, 360));
    // The slate streams, and the camera is looked for again and again.
    edgecam.wait_for_metric(
        "edgecam_camera_reopens_total",
        Duration::from_secs(10),
        |n| n >= 2.0,
    );
    assert_eq!(edgecam.metric("edgecam_camera_live"), Some(0.0));
    let hello = edgecam.hello();
    assert!(
        hello["camera"]["source"]
            .as_str()
            .is_some_and(|s| s.contains("not present yet")),
        "{hello}"
    );
}
