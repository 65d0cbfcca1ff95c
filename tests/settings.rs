//! The settings page in a real browser (Debian's Chromium, headless, driven
//! by playwright-core: tests/browser/settings.mjs): signing in, the privacy
//! switch, the bitrate (the encoder follows), keyframe interval and profile
//! (an RTSP client reads the new profile), an output stopped and started,
//! overlay layers edited, a privacy mask dragged over the live picture (an
//! RTSP viewer sees the black rectangle), the capture mode, a broken file
//! shown at its line and column and never written, a conflicting edit
//! shown, tokens rotated and in force at once, and the page at phone width
//! (screenshots in target/test-artifacts/). Camera controls as sliders are
//! driven against vivid in tests/vm.rs.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::picture::{share, GreyViewer};
use common::{Edgecam, Player};

/// Where the page draws its mask: [x, y, width, height] of 640x360, and
/// the inside of it, clear of the edges' rounding and the encoder's blur.
const MASK: [u32; 4] = [400, 200, 160, 100];
const INSIDE: [u32; 4] = [406, 206, 148, 88];

#[test]
fn the_settings_page_changes_the_board_through_the_api() {
    let edgecam = Edgecam::start(common::config());
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifact dir");
    let screenshot = artifacts.join("settings.png");
    let viewer = GreyViewer::connect(&edgecam.url(), Player::Ffmpeg);
    let before = viewer.frames_after(std::time::Instant::now());
    let last = before.last().expect("the viewer decodes frames");
    let dark_before = share(last, INSIDE, |y| y <= 40);
    let report = common::browser(
        "settings.mjs",
        &[
            &edgecam.http_url("/settings"),
            common::ADMIN_TOKEN,
            screenshot.to_str().expect("utf-8"),
        ],
        Duration::from_secs(120),
        &edgecam.log(),
    );
    println!("settings: {report}");
    assert!(report["failed"].is_null(), "{report}\n{}", edgecam.log());
    assert!(report["refused"]
        .as_str()
        .is_some_and(|m| m.contains("refused")));
    assert_eq!(report["tokenInUrl"], false);
    assert_eq!(report["cookies"], 0);
    assert_eq!(report["stored"], true);
    assert_eq!(report["privacyOn"], true, "{report}");
    assert_eq!(report["stopped"], "stopped");
    assert_eq!(report["started"], "running");
    let broken = report["brokenLine"].as_u64().expect("line");
    let said = report["invalid"].as_str().expect("message");
    assert!(said.contains(&format!("line {broken}, column")), "{said}");
    assert_eq!(report["markedLine"], broken);
    assert!(report["applyRefused"]
        .as_str()
        .is_some_and(|m| m.contains("line")));
    assert!(
        report["effects"]
            .as_str()
            .is_some_and(|m| m.contains("api.confirm_s") && m.contains("needs a restart")),
        "{report}"
    );
    assert!(report["conflict"]
        .as_str()
        .is_some_and(|m| m.contains("someone else")));
    assert_eq!(
        report["phoneOverflow"], false,
        "the page scrolls sideways at phone width"
    );
    assert_eq!(report["signedOut"], true);
    assert_eq!(report["errors"], serde_json::json!([]), "console errors");

    // The camera, the encoder and the overlay, as the page left them.
    assert_eq!(report["pictureWidth"], 640, "{report}");
    assert!(
        report["modes"]
            .as_array()
            .is_some_and(|modes| modes.len() >= 4 && modes.iter().any(|m| m == "1280x720")),
        "{report}"
    );
    assert!(report["stream"]
        .as_str()
        .is_some_and(|m| m.contains("rebuilds the camera")));
    assert_eq!(report["added"], serde_json::json!(["label", "clock"]));
    assert_eq!(report["reordered"], serde_json::json!(["clock", "label"]));
    let layers = &report["layers"];
    assert_eq!(layers["label"]["opacity"], 50, "{report}");
    assert_eq!(layers["label"]["text"], "HELLO {camera}");
    assert_eq!(layers["clock"]["format"], "%H:%M");
    assert!(
        layers["label"]["z"].as_i64() > layers["clock"]["z"].as_i64(),
        "{report}"
    );
    let rect: Vec<i64> = report["mask"]["rects"][0]
        .as_array()
        .map(|r| r.iter().filter_map(serde_json::Value::as_i64).collect())
        .unwrap_or_default();
    assert_eq!(report["mask"]["size"], serde_json::json!([640, 360]));
    assert!(
        rect.len() == 4
            && rect
                .iter()
                .zip(MASK)
                .all(|(&got, want)| got.abs_diff(want.into()) <= 2),
        "the mask dragged over [400, 200, 160, 100] was saved as {rect:?}"
    );
    assert!(report["mode"]
        .as_str()
        .is_some_and(|m| m.contains("camera.fps")));

    // Tokens: in force at once, the new ones shown once.
    assert_eq!(report["viewerTokenLength"], 64);
    assert_eq!(report["metricsWithout"], 401, "{report}");
    assert_eq!(report["metricsWith"], 200);
    assert_eq!(report["metricsOpenAgain"], 200);
    assert_eq!(report["oldAdminRefused"], 401);
    assert_eq!(report["stillSignedIn"], true);
    let admin = report["adminToken"].as_str().expect("the new admin token");

    // What reached the board: the bitrate, and nothing of the broken file.
    let written = std::fs::read_to_string(edgecam.dir.path().join("config.toml")).expect("file");
    assert!(written.contains("bitrate_kbps = 100"), "{written}");
    for kept in [
        "keyframe_interval = 60",
        "profile = \"main\"",
        "fps = 15",
        &format!("admin_token = \"{admin}\""),
        "viewer_token = \"\"",
        "name = \"privacy-mask\"",
    ] {
        assert!(
            written.contains(kept),
            "{kept} is not in the file:\n{written}"
        );
    }
    assert!(!written.contains("= = 3") && !written.contains("confirm_s = 6"));
    let measured = edgecam.wait_for_metric("edgecam_bitrate_kbps", Duration::from_secs(20), |k| {
        k < 160.0
    });
    println!("bitrate set to 100 kbit/s from the page: the encoder makes {measured:.0} kbit/s");

    // The mask drawn on the page, in what an RTSP viewer decodes — after the
    // camera was rebuilt twice (profile, frame rate) under it.
    let fps = edgecam.wait_for_metric("edgecam_capture_fps", Duration::from_secs(20), |f| {
        (13.0..17.0).contains(&f)
    });
    let after = viewer.frames_after(std::time::Instant::now());
    let last = after.last().expect("the viewer still decodes frames");
    let dark_after = share(last, INSIDE, |y| y <= 40);
    println!(
        "mask dragged on the page: {:.0} % of its inside dark before, {:.0} % after \
         (capture at {fps:.1} fps)",
        dark_before * 100.0,
        dark_after * 100.0
    );
    assert!(dark_before < 0.5, "the test pattern is already dark there");
    assert!(dark_after > 0.95, "the RTSP viewer does not see the mask");
    let stream = common::probe_stream(&edgecam.url(), "tcp");
    assert_eq!(
        stream.get("profile").map(String::as_str),
        Some("Main"),
        "{stream:?}"
    );
}
