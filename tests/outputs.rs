//! Outputs on their own: an edit restarts only the output it concerns, a
//! camera edit rebuilds the camera under connected viewers, and an output
//! that fails restarts alone — each while an RTSP viewer keeps playing in
//! the same session.

mod common;

use std::time::{Duration, Instant};

use common::{http, Edgecam, ReceivedFrame};

const RTSP_JOINS: &str = "edgecam_viewer_joins_total{output=\"rtsp\"}";

/// PATCHes `fragment`, which must be taken; the reply's JSON.
fn patch(edgecam: &Edgecam, fragment: &str) -> serde_json::Value {
    let reply = edgecam.patch_config(fragment);
    assert_eq!(reply.status, 200, "{fragment}: {}", reply.body);
    serde_json::from_str(&reply.body).expect("JSON")
}

/// An RTSP viewer decoding for `seconds`, started now; joined by the caller.
fn rtsp_viewer(edgecam: &Edgecam, seconds: u32) -> std::thread::JoinHandle<Vec<ReceivedFrame>> {
    let url = edgecam.url();
    let viewer = std::thread::spawn(move || {
        common::receive_stamped_frames(common::Player::Ffmpeg, &url, 640, 360, seconds)
    });
    edgecam.wait_for_metric(RTSP_JOINS, Duration::from_secs(10), |n| n == 1.0);
    viewer
}

/// The longest time between two frames the viewer received, in ms.
fn longest_gap_ms(frames: &[ReceivedFrame]) -> u64 {
    frames
        .windows(2)
        .map(|w| (w[1].received_us - w[0].received_us) / 1000)
        .max()
        .unwrap_or(u64::MAX)
}

#[test]
fn an_rtsp_viewer_plays_through_edits_of_hls_and_metrics() {
    let edgecam = Edgecam::start(common::config());
    let viewer = rtsp_viewer(&edgecam, 14);
    std::thread::sleep(Duration::from_secs(1));
    for (fragment, effect) in [
        ("[hls]\nwindow = 4\n", "restart"),
        ("[hls]\nsegment_s = 4\n", "restart"),
        ("[metrics]\nrate_hz = 5\n", "live"),
    ] {
        let reply = patch(&edgecam, fragment);
        assert_eq!(reply["changes"][0]["effect"], effect, "{reply}");
        if effect == "restart" {
            assert_eq!(reply["changes"][0]["outputs"], serde_json::json!(["hls"]));
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    let frames = viewer.join().expect("viewer");
    let gap = longest_gap_ms(&frames);
    println!(
        "RTSP viewer through hls.window, hls.segment_s and metrics.rate_hz edits: {} frames, \
         longest gap {gap} ms",
        frames.len()
    );
    assert!(frames.len() > 300, "only {} frames", frames.len());
    assert!(gap < 1000, "the picture stopped for {gap} ms");
    assert_eq!(
        edgecam.metric(RTSP_JOINS),
        Some(1.0),
        "the viewer reconnected"
    );
    // A restart asked for by an edit is no failure.
    assert_eq!(
        edgecam.metric("edgecam_output_restarts_total{output=\"hls\"}"),
        Some(0.0)
    );
    let outputs = edgecam.outputs();
    assert_eq!(outputs["outputs"]["hls"]["description"]["window"], 4);
    assert_eq!(outputs["outputs"]["hls"]["description"]["segment_s"], 4);
    assert_eq!(edgecam.hello()["sample_rate_hz"], 5);

    // The HLS viewer count follows the new segment length: a player that
    // fetched the playlist 7 s ago (under two 4 s segments) still watches.
    let hls_viewers = "edgecam_clients{output=\"hls\"}";
    edgecam.wait_for_playlist("127.0.0.7", 1, Duration::from_secs(15));
    edgecam.wait_for_metric(hls_viewers, Duration::from_secs(3), |n| n == 1.0);
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(
        edgecam.metric(hls_viewers),
        Some(1.0),
        "the HLS viewer was forgotten"
    );
}

#[test]
fn a_camera_edit_rebuilds_the_camera_under_connected_viewers() {
    let edgecam = Edgecam::start(common::config());
    let viewer = rtsp_viewer(&edgecam, 8);
    std::thread::sleep(Duration::from_secs(2));
    let reply = patch(&edgecam, "[encoder]\nkeyframe_interval = 60\n");
    assert_eq!(reply["changes"][0]["effect"], "camera", "{reply}");
    let frames = viewer.join().expect("viewer");
    let gap = longest_gap_ms(&frames);
    let stamped_after = frames
        .iter()
        .rev()
        .take(60)
        .filter(|f| f.stamp.is_some())
        .count();
    println!(
        "RTSP viewer through a camera rebuild: {} frames, longest gap {gap} ms, \
         {stamped_after} of the last 60 decoded cleanly",
        frames.len()
    );
    assert!(gap < 1500, "the picture stopped for {gap} ms");
    assert!(
        stamped_after >= 55,
        "the stream after the rebuild does not decode"
    );
    assert_eq!(
        edgecam.metric(RTSP_JOINS),
        Some(1.0),
        "the viewer reconnected"
    );
    assert_eq!(edgecam.hello()["encoder"]["keyframe_interval"], 60);
    assert_eq!(edgecam.metric("edgecam_encoders"), Some(1.0));
}

#[test]
fn a_failed_hls_restarts_alone_while_rtsp_plays() {
    let mut config = common::config();
    config.camera.fault_injection = true;
    let mut edgecam = Edgecam::start(config);
    let viewer = rtsp_viewer(&edgecam, 8);
    edgecam.wait_for_playlist("127.0.0.1", 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    let broken = http("POST", &edgecam.http_url("/api/outputs/hls/fault"));
    assert_eq!(broken.status, 200, "{}", broken.body);
    let at = Instant::now();
    // Failed, counted, and running again (the sample lags by 100 ms).
    edgecam.wait_for_metric(
        "edgecam_output_restarts_total{output=\"hls\"}",
        Duration::from_secs(3),
        |n| n == 1.0,
    );
    let up = "edgecam_output_up{output=\"hls\"}";
    edgecam.wait_for_metric(up, Duration::from_secs(3), |n| n == 1.0);
    let restarted = at.elapsed();
    // Its first new segment takes a segment's length and a keyframe.
    edgecam.wait_for_playlist("127.0.0.1", 1, Duration::from_secs(5));
    let serving = at.elapsed();
    let frames = viewer.join().expect("viewer");
    let gap = longest_gap_ms(&frames);
    println!(
        "HLS broken on purpose: running again after {} ms, serving a playlist after {} ms; \
         the RTSP viewer's longest gap {gap} ms",
        restarted.as_millis(),
        serving.as_millis()
    );
    assert!(restarted < Duration::from_secs(3), "HLS took {restarted:?}");
    assert!(gap < 1000, "the RTSP picture stopped for {gap} ms");
    assert_eq!(
        edgecam.metric(RTSP_JOINS),
        Some(1.0),
        "the RTSP viewer reconnected"
    );
    assert!(edgecam.exited().is_none(), "the process ended");
    let hls = &edgecam.outputs()["outputs"]["hls"];
    assert_eq!(hls["state"], "running", "{hls}");
    assert!(
        hls["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("injected fault")),
        "{hls}"
    );
    // Outputs that are not running, or not there, cannot be broken.
    let unknown = http("POST", &edgecam.http_url("/api/outputs/nothing/fault"));
    assert_eq!(unknown.status, 404);
}
