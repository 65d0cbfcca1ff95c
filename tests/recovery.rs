//! Camera loss on the host: the fault-injecting test source stops for 5 s
//! while an RTSP viewer watches. The viewer must keep receiving frames (the
//! slate) and then live frames again, without reconnecting.

mod common;

use std::time::Duration;

use common::vm::metric;
use common::{http, probe_stream, receive_stamped_frames, Edgecam, Player, Settings};
use edgecam::source::identity::unix_time_us;

#[test]
fn a_viewer_stays_connected_through_a_camera_loss() {
    viewer_through_a_five_second_loss("");
}

/// The same with a camera that sends H.264 (the test pattern encoding
/// inside the source, keyframes 2 s apart): its stream goes out untouched,
/// only the slate is encoded, and the switch back waits for the camera's
/// keyframe, so every frame after it decodes.
#[test]
fn a_passed_through_h264_camera_survives_a_loss_too() {
    let edgecam = viewer_through_a_five_second_loss("format = \"h264\"\n");
    let log = edgecam.log();
    assert!(
        log.contains("encoder: none, the camera's H.264 is passed through"),
        "{log}"
    );
}

/// One RTSP viewer for 14 s while the test source stops for 5 s from the
/// 4th second: live, slate, live again, all in one session. Returns the
/// service for further checks.
fn viewer_through_a_five_second_loss(camera_extra: &'static str) -> Edgecam {
    let camera_extra = Box::leak(
        format!("{camera_extra}fault_injection = true\nstall_timeout_ms = 500").into_boxed_str(),
    );
    let edgecam = Edgecam::start(Settings {
        camera_extra,
        ..Settings::default()
    });
    let url = edgecam.url();
    // One player for the whole 14 s: it is never restarted.
    let viewer =
        std::thread::spawn(move || receive_stamped_frames(Player::Ffmpeg, &url, 640, 360, 14));
    std::thread::sleep(Duration::from_secs(4));
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
    std::thread::sleep(Duration::from_secs(2));
    let health = http("GET", &edgecam.http_url("/healthz")).body;
    assert!(
        health.contains("NO SIGNAL slate (camera lost)"),
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

    let log = edgecam.log();
    assert!(log.contains("camera lost"), "{log}");
    assert!(log.contains("camera is back"), "{log}");
    // The player connected once, before the fault, and never again.
    let after_fault = &log[log.find("fault injected").expect("fault logged")..];
    assert!(
        !after_fault.contains("RTSP viewer connected"),
        "the viewer reconnected:\n{log}"
    );
    let metrics = http("GET", &edgecam.http_url("/metrics")).body;
    assert!(
        metrics.contains("edgecam_camera_losses_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("edgecam_camera_reconnects_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("edgecam_camera_live 1"), "{metrics}");
    edgecam
}

#[test]
fn a_source_error_is_a_loss_not_the_end() {
    let edgecam = Edgecam::start(Settings {
        camera_extra: "fault_injection = true",
        ..Settings::default()
    });
    let injected = http(
        "POST",
        &edgecam.http_url("/api/camera/fault?kind=error&seconds=2"),
    );
    assert_eq!(injected.status, 200, "{}", injected.body);
    std::thread::sleep(Duration::from_secs(6));
    common::assert_h264(&common::probe_stream(&edgecam.url(), "tcp"), (640, 360));
    let log = edgecam.log();
    assert!(
        log.contains("camera lost") && log.contains("injected fault"),
        "{log}"
    );
    assert!(log.contains("camera is back"), "{log}");
}

#[test]
fn fault_injection_is_off_by_default() {
    let edgecam = Edgecam::start(Settings::default());
    let reply = http(
        "POST",
        &edgecam.http_url("/api/camera/fault?kind=stop&seconds=5"),
    );
    assert_eq!(reply.status, 404);
}

#[test]
fn a_camera_missing_at_start_is_waited_for_behind_the_slate() {
    // This host has no V4L2 at all: the configured camera never appears.
    let edgecam = Edgecam::start(Settings {
        source: "v4l2",
        camera_extra: "device = \"/dev/v4l/by-id/usb-not-plugged-in-video-index0\"",
        ..Settings::default()
    });
    let stream = probe_stream(&edgecam.url(), "tcp");
    common::assert_h264(&stream, (640, 360));
    std::thread::sleep(Duration::from_secs(3));
    let metrics = http("GET", &edgecam.http_url("/metrics")).body;
    assert_eq!(
        metric(&metrics, "edgecam_camera_live"),
        Some(0.0),
        "{metrics}"
    );
    let log = edgecam.log();
    assert!(log.contains("waiting for it"), "{log}");
    assert!(log.contains("reopening the source"), "no retry yet:\n{log}");
}
