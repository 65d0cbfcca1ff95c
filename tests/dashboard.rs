//! The dashboard in a real browser: Debian's Chromium, headless, driven by
//! playwright-core (tests/browser/dashboard.mjs). The screenshot is kept as
//! a test artifact in target/test-artifacts/dashboard.png.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::Edgecam;

#[test]
fn dashboard_plays_video_beside_live_graphs() {
    let mut config = common::config();
    // One WebRTC peer: the browser's second tab must fall back to HLS.
    config.webrtc.max_peers = 1;
    let edgecam = Edgecam::start(config);
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifact dir");
    let screenshot = artifacts.join("dashboard.png");
    let report = common::browser(
        "dashboard.mjs",
        &[
            &edgecam.http_url("/"),
            screenshot.to_str().expect("utf-8"),
            common::ADMIN_TOKEN,
        ],
        Duration::from_secs(90),
        "",
    );
    println!("dashboard: {report}");
    println!("screenshot: {}", screenshot.display());

    let advance = report["videoAdvance"].as_f64().expect("videoAdvance");
    assert!(advance >= 3.0, "video advanced only {advance} s in 5 s");
    assert_eq!(report["videoWidth"], 640, "{report}");
    assert!(
        report["samplesDuring"].as_u64().expect("samples") >= 40,
        "{report}"
    );
    assert_eq!(report["hello"], true);
    assert!(
        report["camera"]
            .as_str()
            .expect("camera")
            .contains("640×360"),
        "{report}"
    );
    assert!(
        report["encoder"]
            .as_str()
            .expect("encoder")
            .contains("x264enc"),
        "{report}"
    );
    // Five graphs have data here (no thermal zone on the build machine, so
    // the temperature graph may stay empty).
    let drawn = report["chartPixels"].as_array().expect("chartPixels");
    let with_lines = drawn
        .iter()
        .filter(|n| n.as_u64().unwrap_or(0) > 20)
        .count();
    assert!(with_lines >= 5, "graphs without data: {report}");
    assert_eq!(
        report["phoneOverflow"], false,
        "the page scrolls sideways at phone width"
    );
    assert_eq!(
        report["errors"].as_array().map(Vec::len),
        Some(0),
        "page errors: {report}"
    );
    assert!(screenshot.exists());
    // WebRTC by default, a few frames behind; HLS when WebRTC is refused.
    assert_eq!(report["transport"], "webrtc", "{report}");
    let latency = report["latencyMs"]
        .as_f64()
        .expect("latency from the stamp");
    assert!(latency < 1000.0, "{report}");
    assert!(
        report["latencyText"]
            .as_str()
            .unwrap_or_default()
            .contains("ms behind capture"),
        "{report}"
    );
    assert_eq!(report["fallback"]["transport"], "hls", "{report}");
    assert!(
        report["fallback"]["status"]
            .as_str()
            .unwrap_or_default()
            .contains("503"),
        "{report}"
    );
    // The live-view controls.
    for output in ["rtsp", "hls", "mjpeg", "frames", "metrics_ws", "webrtc"] {
        assert_eq!(report["outputRows"][output], "running", "{report}");
    }
    assert_eq!(
        report["switched"],
        serde_json::json!(["stopped", "running"])
    );
    assert_eq!(report["mjpeg"]["width"], 640, "{report}");
    assert_eq!(report["mjpeg"]["advanced"], true, "{report}");
    assert_eq!(report["mjpeg"]["videoHidden"], true, "{report}");
}
