//! Frames over WebSocket (`/api/frames/ws`) with Python clients
//! (tests/frames_client.py, the `websockets`, `lz4` and `zstandard`
//! packages): the DrishtiStream JSON contract, binary frames that decompress
//! to the exact raw bytes, per-connection caps, and a crowd with a client
//! that never reads.

mod common;

use std::time::Duration;

use common::{frames_client, http_with, Edgecam};

const INTERVAL_S: f64 = 1.0 / 30.0;

fn ws_url(edgecam: &Edgecam, query: &str) -> String {
    format!("ws://127.0.0.1:{}/api/frames/ws{query}", edgecam.http_port)
}

#[test]
fn a_drishti_stream_client_gets_increasing_ids_jpegs_and_paced_capture_times() {
    let mut config = common::config();
    config.camera.fault_injection = true;
    config.camera.stall_timeout_ms = 500;
    let edgecam = Edgecam::start(config);
    let dir = tempfile::tempdir().expect("temp dir");
    let first = dir.path().join("first.jpg");
    let url = ws_url(&edgecam, "");
    let first_arg = first.display().to_string();
    let client = std::thread::spawn(move || {
        frames_client(&["text", &url, "8", &first_arg], Duration::from_secs(30))
    });
    // A camera loss midway: ids go on from where they were, never reset.
    edgecam.wait_for_metric(
        "edgecam_clients{output=\"frames\"}",
        Duration::from_secs(10),
        |n| n == 1.0,
    );
    std::thread::sleep(Duration::from_secs(2));
    edgecam.inject_camera_fault("stop", 2);
    let report = client.join().expect("client");
    let gaps: Vec<f64> = report["gaps"]
        .as_array()
        .expect("gaps")
        .iter()
        .filter_map(|g| g.as_f64())
        .collect();
    let worst = gaps
        .iter()
        .map(|g| (g - INTERVAL_S).abs())
        .fold(0.0, f64::max);
    let paced = gaps
        .iter()
        .filter(|g| (*g - INTERVAL_S).abs() <= INTERVAL_S)
        .count();
    println!(
        "text client: {} frames, ids {}..{}, {paced}/{} capture-time gaps within one interval \
         (worst off by {:.0} ms, the camera loss included)",
        report["frames"],
        report["first_id"],
        report["last_id"],
        gaps.len(),
        worst * 1000.0
    );
    assert_eq!(report["increasing"], true, "{report}");
    assert_eq!(report["all_jpeg"], true);
    assert_eq!(report["source"], "edgecam");
    assert_eq!(report["version"], "1.0");
    assert_eq!(report["fps"], 30);
    assert!(report["frames"].as_u64().unwrap_or(0) >= 200, "{report}");
    // Capture times paced within ±1 interval, but for the frames around the
    // loss (the slate takes over after stall_timeout_ms).
    assert!(
        paced + 3 >= gaps.len(),
        "{paced} of {} gaps paced",
        gaps.len()
    );
    // The timestamp is the capture time the picture carries.
    let stamp = common::jpeg_stamp(&first, 640, 360).expect("a stamped 640x360 JPEG");
    let timestamp = report["first_timestamp"].as_f64().expect("timestamp");
    assert!(
        (timestamp - stamp.capture_time_us as f64 / 1e6).abs() < 0.001,
        "timestamp {timestamp} vs the stamp's {}",
        stamp.capture_time_us
    );
    assert_eq!(
        report["first_id"].as_u64().map(|id| id as u32),
        Some(stamp.frame_id)
    );
}

#[test]
fn binary_frames_compressed_with_lz4_and_zstd_are_the_raw_bytes() {
    let edgecam = Edgecam::start(common::config());
    let report = frames_client(
        &["binary", &ws_url(&edgecam, ""), "4"],
        Duration::from_secs(30),
    );
    println!("binary: {report}");
    let common_frames = report["common"].as_u64().unwrap_or(0);
    assert!(common_frames >= 60, "{report}");
    assert_eq!(report["identical"], common_frames, "{report}");
    assert_eq!(report["width"], 640);
    assert_eq!(report["height"], 360);
    assert_eq!(report["stride"], 640);
    assert_eq!(report["bytes"], 640 * 360);
}

#[test]
fn each_connection_chooses_format_scale_and_rate() {
    let edgecam = Edgecam::start(common::config());
    let probe = |query: &str| {
        frames_client(
            &["probe", &ws_url(&edgecam, query), "3"],
            Duration::from_secs(30),
        )
    };
    let half = probe("?format=i420&scale=0.5&compression=lz4");
    assert_eq!(
        (half["width"].as_u64(), half["height"].as_u64()),
        (Some(320), Some(180))
    );
    assert_eq!(half["format"], 2, "i420");
    assert_eq!(half["compression"], 1, "lz4");
    let capped = probe("?format=jpeg&fps=5");
    let rate = capped["rate"].as_f64().unwrap_or(0.0);
    println!(
        "fps=5: {rate:.1} frames/s; i420 at half size: {:.1} fps",
        half["rate"]
    );
    assert!((4.0..=6.0).contains(&rate), "{capped}");
    assert_eq!(capped["format"], 0, "jpeg");
    // What cannot be served is refused before the upgrade, with the reason.
    for (query, reason) in [
        ("?format=bmp", "format"),
        ("?format=gray8&compression=gzip", "compression"),
        ("?format=gray8&scale=0.3", "scale"),
        ("?quality=50", "quality"),
    ] {
        let reply = http_with(
            "GET",
            &edgecam.http_url(&format!("/api/frames/ws{query}")),
            &[
                "Connection: Upgrade",
                "Upgrade: websocket",
                "Sec-WebSocket-Version: 13",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            ],
            None,
        );
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert!(reply.body.contains(reason), "{query}: {}", reply.body);
    }
}

#[test]
fn a_crowd_keeps_its_frames_while_a_client_that_never_reads_is_dropped() {
    let edgecam = Edgecam::start(common::config());
    let url = ws_url(&edgecam, "");
    let crowd = std::thread::spawn(move || {
        frames_client(&["crowd", &url, "15", "20"], Duration::from_secs(60))
    });
    const CLIENTS: &str = "edgecam_clients{output=\"frames\"}";
    edgecam.wait_for_metric(CLIENTS, Duration::from_secs(10), |n| n == 20.0);
    let started = std::time::Instant::now();
    // ws_stall_s (5 s) after its buffers fill, the silent one is let go.
    edgecam.wait_for_metric(CLIENTS, Duration::from_secs(14), |n| n == 19.0);
    let dropped_after = started.elapsed();
    let capture_fps = edgecam.metric("edgecam_capture_fps").unwrap_or(0.0);
    let report = crowd.join().expect("crowd");
    println!(
        "crowd of 20: {report}; the silent client dropped {dropped_after:?} after all joined; \
         capture {capture_fps:.1} fps"
    );
    assert_eq!(report["readers"], 19);
    let worst = report["worst_share"].as_f64().unwrap_or(0.0);
    assert!(
        worst >= 0.95,
        "a reader got only {:.0} % of frames",
        worst * 100.0
    );
    assert!(
        capture_fps >= 28.0,
        "the camera slowed to {capture_fps} fps"
    );
}
