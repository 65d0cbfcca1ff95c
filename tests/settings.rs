//! The settings page in a real browser (Debian's Chromium, headless, driven
//! by playwright-core: tests/browser/settings.mjs): signing in, the privacy
//! switch, the bitrate (the encoder follows), an output stopped and started,
//! a broken file shown at its line and column and never written, a
//! conflicting edit shown, and the page at phone width (screenshots in
//! target/test-artifacts/).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::Edgecam;

#[test]
fn the_settings_page_changes_the_board_through_the_api() {
    let edgecam = Edgecam::start(common::config());
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifact dir");
    let screenshot = artifacts.join("settings.png");
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

    // What reached the board: the bitrate, and nothing of the broken file.
    let written = std::fs::read_to_string(edgecam.dir.path().join("config.toml")).expect("file");
    assert!(written.contains("bitrate_kbps = 100"), "{written}");
    assert!(!written.contains("= = 3") && !written.contains("confirm_s = 6"));
    let measured = edgecam.wait_for_metric("edgecam_bitrate_kbps", Duration::from_secs(20), |k| {
        k < 160.0
    });
    println!("bitrate set to 100 kbit/s from the page: the encoder makes {measured:.0} kbit/s");
}
