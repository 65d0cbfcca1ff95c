//! Overlay layers seen by a real RTSP viewer (ffmpeg decoding to grey):
//! a mask fills its rectangle, a text layer switched on through the API
//! appears, the mask switched off disappears — with the viewer's session
//! never broken, no camera rebuild, and the latency stamp still readable.

mod common;

use std::time::{Duration, Instant};

use common::picture::{share, GreyViewer as Viewer, HEIGHT, WIDTH};
use common::{Edgecam, Player};
use edgecam::config::{LayerConfig, LayerKind};
use edgecam::source::stamp;

/// The mask: [x, y, width, height].
const MASK: [u32; 4] = [400, 200, 160, 100];

/// The privacy picture: no stamp, and a plain grey band across the top
/// (the test pattern has its stamp there, black and white).
fn private(luma: &[u8]) -> bool {
    let band = [0, 0, WIDTH as u32, 60];
    stamp::read(WIDTH, HEIGHT, luma, WIDTH).is_none()
        && share(luma, band, |y| (30..=70).contains(&y)) > 0.95
}

fn stamped(frames: &[Vec<u8>]) -> usize {
    frames
        .iter()
        .filter(|luma| stamp::read(WIDTH, HEIGHT, luma, WIDTH).is_some())
        .count()
}

#[test]
fn layers_change_live_under_a_viewer_and_keep_off_the_stamp() {
    let mut config = common::config();
    config.overlay.layers = vec![LayerConfig {
        name: "privacy".to_owned(),
        kind: LayerKind::Mask,
        rects: vec![MASK],
        ..LayerConfig::default()
    }];
    let edgecam = Edgecam::start(config);
    let viewer = Viewer::connect(&edgecam.url(), Player::Ffmpeg);
    let masked = viewer.frames_after(Instant::now());
    assert!(masked.len() >= 20, "{} frames decoded", masked.len());
    let white = masked
        .iter()
        .map(|luma| share(luma, MASK, |y| y >= 220))
        .fold(f64::MAX, f64::min);
    println!(
        "mask: {:.0} % of its pixels white in the worst frame",
        white * 100.0
    );
    assert!(white > 0.95, "the mask is not drawn: {white}");
    assert!(
        stamped(&masked) * 10 >= masked.len() * 9,
        "the stamp is unreadable"
    );
    let pipelines = edgecam.metric("edgecam_pipelines");

    // The mask off, a label on, through the configuration API.
    let changed = edgecam.patch_config(
        "[[overlay.layers]]\nname = \"label\"\nkind = \"text\"\ntext = \"EDGECAM\"\n\
         anchor = \"bottom-left\"\nbackground_opacity = 100\n",
    );
    assert_eq!(changed.status, 200, "{}", changed.body);
    let switched = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    let labelled = viewer.frames_after(Instant::now());
    assert!(
        labelled.len() >= 20,
        "{} frames after the change",
        labelled.len()
    );
    // The label's box: 7 glyphs of 16x29 and 4 pixels around, 16 in from
    // the bottom-left corner.
    let (box_w, box_h) = (7 * 16 + 8, 29 + 8);
    let label = [16, HEIGHT as u32 - 16 - box_h, box_w, box_h];
    let last = labelled.last().expect("a frame");
    let dark = share(last, label, |y| y <= 40);
    let ink = share(last, label, |y| y >= 180);
    let unmasked = share(last, MASK, |y| y >= 220);
    println!(
        "after the change: the label's box {:.0} % dark, {:.0} % ink; the old mask {:.0} % white",
        dark * 100.0,
        ink * 100.0,
        unmasked * 100.0
    );
    assert!(dark > 0.5 && ink > 0.05, "no label: dark {dark}, ink {ink}");
    assert!(unmasked < 0.2, "the mask is still drawn: {unmasked}");
    assert!(stamped(&labelled) * 10 >= labelled.len() * 9);

    // Live: the same session, no rebuild, no gap.
    let gap = viewer.longest_gap();
    println!(
        "longest gap at the viewer: {} ms; {:.1} s since the change",
        gap.as_millis(),
        switched.elapsed().as_secs_f64()
    );
    assert!(gap < Duration::from_secs(1), "gap {gap:?}");
    assert_eq!(
        edgecam.metric("edgecam_viewer_joins_total{output=\"rtsp\"}"),
        Some(1.0)
    );
    assert_eq!(edgecam.metric("edgecam_pipelines"), pipelines);

    // One layer at a time: hide the label, add a clock, delete it.
    let admin = format!("Authorization: Bearer {}", common::ADMIN_TOKEN);
    let layer_url = |name: &str| edgecam.http_url(&format!("/api/overlay/layers/{name}"));
    let call = |method: &str, name: &str, body: Option<&str>| {
        common::http_with(method, &layer_url(name), &[&admin], body)
    };
    let hidden = call("PATCH", "label", Some("{\"visible\": false}"));
    assert_eq!(hidden.status, 200, "{}", hidden.body);
    let added = call(
        "PUT",
        "clock",
        Some("{\"kind\": \"clock\", \"anchor\": \"top-right\"}"),
    );
    assert_eq!(added.status, 200, "{}", added.body);
    std::thread::sleep(Duration::from_millis(500));
    let last = viewer.frames_after(Instant::now()).pop().expect("a frame");
    let dark = share(&last, label, |y| y <= 40);
    println!("the label hidden: its box {:.0} % dark", dark * 100.0);
    assert!(dark < 0.3, "the hidden label is drawn: {dark}");
    let listed = common::http_with(
        "GET",
        &edgecam.http_url("/api/overlay/layers"),
        &[&admin],
        None,
    );
    let listed: serde_json::Value = serde_json::from_str(&listed.body).expect("JSON");
    let names: Vec<&str> = listed["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter_map(|layer| layer["name"].as_str())
        .collect();
    assert_eq!(names, ["label", "clock"]);
    assert_eq!(call("GET", "label", None).status, 200);
    assert_eq!(call("DELETE", "clock", None).status, 200);
    assert_eq!(call("DELETE", "clock", None).status, 404);
    assert_eq!(call("PATCH", "nobody", Some("{}")).status, 404);
    let renamed = call("PUT", "label", Some("{\"name\": \"other\"}"));
    assert_eq!(renamed.status, 400, "{}", renamed.body);
    let written = std::fs::read_to_string(edgecam.dir.path().join("config.toml")).expect("file");
    assert!(
        written.contains("name = \"label\"") && !written.contains("name = \"clock\""),
        "{written}"
    );
    assert_eq!(
        edgecam.metric("edgecam_viewer_joins_total{output=\"rtsp\"}"),
        Some(1.0)
    );

    // A layer that cannot be drawn is refused, naming it; nothing changes.
    let refused = edgecam.patch_config(
        "[[overlay.layers]]\nname = \"off-picture\"\nkind = \"mask\"\nrects = [[600, 0, 100, 10]]\n",
    );
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("off-picture") && refused.body.contains("not inside"),
        "{}",
        refused.body
    );
}

/// Waits until both viewers show `what` (seconds since asked; HLS lags by
/// its segments).
fn both_show(rtsp: &Viewer, hls: &Viewer, test: impl Fn(&[u8]) -> bool, what: &str) -> f64 {
    let asked = Instant::now();
    assert!(
        rtsp.shows(asked, Duration::from_secs(10), &test),
        "RTSP: no {what}"
    );
    assert!(
        hls.shows(asked, Duration::from_secs(40), &test),
        "HLS: no {what}"
    );
    asked.elapsed().as_secs_f64()
}

/// Privacy mode through the API, watched by an RTSP and an HLS viewer that
/// stay connected: the camera closes (no frame captured) and both show the
/// privacy picture, then the camera again; the state is in the metrics,
/// the health check and the file.
#[test]
fn privacy_mode_closes_the_camera_under_connected_viewers() {
    let edgecam = Edgecam::start(common::config());
    let mut rtsp = Viewer::connect(&edgecam.url(), Player::Ffmpeg);
    edgecam.wait_for_playlist("127.0.0.2", 2, Duration::from_secs(30));
    let mut hls = Viewer::connect(&edgecam.http_url("/hls/cam.m3u8"), Player::FfmpegHls);
    let start = Instant::now();
    let live = |luma: &[u8]| stamp::read(WIDTH, HEIGHT, luma, WIDTH).is_some();
    assert!(
        rtsp.shows(start, Duration::from_secs(20), live),
        "RTSP shows no camera"
    );
    assert!(
        hls.shows(start, Duration::from_secs(40), live),
        "HLS shows no camera"
    );

    let admin = format!("Authorization: Bearer {}", common::ADMIN_TOKEN);
    let privacy = |body: &str| {
        common::http_with(
            "POST",
            &edgecam.http_url("/api/privacy"),
            &[&admin],
            Some(body),
        )
    };
    assert_eq!(
        common::http_with(
            "POST",
            &edgecam.http_url("/api/privacy"),
            &[],
            Some("{\"enabled\": true}")
        )
        .status,
        401,
        "privacy mode needs the admin token"
    );
    assert_eq!(privacy("{\"on\": 1}").status, 400);
    let on = privacy("{\"enabled\": true}");
    assert_eq!(on.status, 200, "{}", on.body);
    let took = both_show(&rtsp, &hls, private, "the privacy picture");
    println!("privacy picture at the RTSP and HLS viewers within {took:.1} s");
    assert_eq!(edgecam.metric("edgecam_privacy_mode"), Some(1.0));
    assert_eq!(edgecam.metric("edgecam_camera_live"), Some(0.0));
    let captured = edgecam.metric("edgecam_captured_frames_total");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        edgecam.metric("edgecam_captured_frames_total"),
        captured,
        "the camera still delivers in privacy mode"
    );
    let health = common::http("GET", &edgecam.http_url("/healthz"));
    assert_eq!(health.status, 200, "{}", health.body);
    assert!(health.body.contains("privacy mode"), "{}", health.body);
    let state = common::http("GET", &edgecam.http_url("/api/privacy"));
    assert!(state.body.contains("true"), "{}", state.body);
    let written = std::fs::read_to_string(edgecam.dir.path().join("config.toml")).expect("file");
    assert!(written.contains("[privacy]\nenabled = true"), "{written}");

    let off = privacy("{\"enabled\": false}");
    assert_eq!(off.status, 200, "{}", off.body);
    let took = both_show(&rtsp, &hls, live, "the camera");
    println!("the camera back at both viewers within {took:.1} s");
    assert_eq!(edgecam.metric("edgecam_privacy_mode"), Some(0.0));
    assert!(rtsp.playing() && hls.playing(), "a viewer was dropped");
    assert_eq!(
        edgecam.metric("edgecam_viewer_joins_total{output=\"rtsp\"}"),
        Some(1.0)
    );
    let gap = rtsp.longest_gap();
    println!("longest gap at the RTSP viewer: {} ms", gap.as_millis());
    assert!(gap < Duration::from_secs(2), "gap {gap:?}");
}

/// A camera that sends H.264 (the test pattern with `format = "h264"`,
/// whose source holds the "camera's" encoder) is passed through; a layer
/// added through the API rebuilds the camera to take its picture raw and
/// encode it once, drawn on (the viewer stays), and with the layer gone it
/// is passed through again. One encoder runs throughout.
const BUILDS: &str = "edgecam_camera_builds_total";

#[test]
fn layers_on_a_camera_sending_h264_use_the_encoder() {
    let mut config = common::config();
    config.camera.format = edgecam::config::CaptureFormat::H264;
    let edgecam = Edgecam::start(config);
    let passthrough = || edgecam.hello()["encoder"]["passthrough"].clone();
    assert_eq!(
        passthrough(),
        true,
        "the camera's H.264 is not passed through"
    );
    // One encoder: the "camera's", inside its source.
    edgecam.wait_for_metric("edgecam_encoders", Duration::from_secs(10), |n| n == 1.0);
    edgecam.wait_for_metric(BUILDS, Duration::from_secs(10), |n| n == 1.0);
    let mut viewer = Viewer::connect(&edgecam.url(), Player::Ffmpeg);
    assert!(viewer.shows(Instant::now(), Duration::from_secs(20), |_| true));

    let admin = format!("Authorization: Bearer {}", common::ADMIN_TOKEN);
    let url = edgecam.http_url("/api/overlay/layers/mask");
    let mask = format!("{{\"kind\": \"mask\", \"rects\": [{MASK:?}]}}");
    let added = common::http_with("PUT", &url, &[&admin], Some(&mask));
    assert_eq!(added.status, 200, "{}", added.body);
    let changed = Instant::now();
    let masked = |luma: &[u8]| share(luma, MASK, |y| y >= 220) > 0.95;
    assert!(
        viewer.shows(changed, Duration::from_secs(20), masked),
        "the mask is not drawn on the camera's decoded H.264:\n{}",
        edgecam.log()
    );
    println!(
        "mask drawn on the decoded camera {:.1} s after it was added",
        changed.elapsed().as_secs_f64()
    );
    assert_eq!(passthrough(), false);
    // One encoder once the picture is drawn on: the camera's own.
    edgecam.wait_for_metric("edgecam_encoders", Duration::from_secs(10), |n| n == 1.0);
    assert_eq!(edgecam.metric(BUILDS), Some(2.0));
    assert!(
        edgecam.log().contains("because overlay layers are drawn"),
        "the log does not say why the encoder is used"
    );

    let deleted = common::http_with("DELETE", &url, &[&admin], None);
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let deadline = Instant::now() + Duration::from_secs(20);
    while passthrough() != true {
        assert!(Instant::now() < deadline, "not passed through again");
        std::thread::sleep(Duration::from_millis(100));
    }
    edgecam.wait_for_metric(BUILDS, Duration::from_secs(10), |n| n == 3.0);
    let since = Instant::now();
    assert!(
        viewer.shows(since, Duration::from_secs(20), |luma| !masked(luma)),
        "the viewer saw nothing after the layer went"
    );
    assert!(viewer.playing(), "the viewer was dropped");
    assert_eq!(
        edgecam.metric("edgecam_viewer_joins_total{output=\"rtsp\"}"),
        Some(1.0)
    );
}

/// A PNG file: `width` x `height`, white and opaque on its left half,
/// fully transparent on its right half.
fn half_white_png(path: &std::path::Path, width: u32, height: u32) {
    let file = std::fs::File::create(path).expect("png file");
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().expect("png header");
    let mut data = Vec::new();
    for _ in 0..height {
        for x in 0..width {
            let alpha = if x < width / 2 { 255 } else { 0 };
            data.extend([255, 255, 255, alpha]);
        }
    }
    writer.write_image_data(&data).expect("png data");
}

/// An image layer is drawn with its transparency where it is anchored,
/// and a mask measured in 1280x720 covers the same part of a 640x360
/// picture; a mask added through the API is given the camera's size.
#[test]
fn image_layers_and_masks_measured_in_another_size() {
    let dir = tempfile::tempdir().expect("temp dir");
    let logo = dir.path().join("logo.png");
    half_white_png(&logo, 64, 32);
    let mut config = common::config();
    config.overlay.layers = vec![
        LayerConfig {
            name: "logo".to_owned(),
            kind: LayerKind::Image,
            file: logo.display().to_string(),
            anchor: edgecam::config::Anchor::BottomRight,
            margin: 8,
            ..LayerConfig::default()
        },
        LayerConfig {
            name: "window".to_owned(),
            kind: LayerKind::Mask,
            color: "#000000".to_owned(),
            size: [1280, 720],
            rects: vec![[800, 100, 320, 160]],
            ..LayerConfig::default()
        },
    ];
    let edgecam = Edgecam::start(config);
    let viewer = Viewer::connect(&edgecam.url(), Player::Ffmpeg);
    let frames = viewer.frames_after(Instant::now());
    let last = frames.last().expect("a frame");
    // The logo: 64x32 at 8 pixels from the bottom-right corner; its left
    // half opaque white, its right half shows the picture.
    let (x, y) = (WIDTH as u32 - 8 - 64, HEIGHT as u32 - 8 - 32);
    let opaque = share(last, [x + 2, y + 2, 28, 28], |l| l >= 220);
    let clear = share(last, [x + 34, y + 2, 28, 28], |l| l >= 220);
    // The mask: [800, 100, 320, 160] of 1280x720 is [400, 50, 160, 80].
    let masked = share(last, [400, 50, 160, 80], |l| l <= 40);
    println!(
        "logo: {:.0} % white where opaque, {:.0} % where transparent; mask {:.0} % black",
        opaque * 100.0,
        clear * 100.0,
        masked * 100.0
    );
    assert!(opaque > 0.95, "the logo is not drawn: {opaque}");
    assert!(clear < 0.5, "the logo's transparent half covers: {clear}");
    assert!(
        masked > 0.95,
        "the scaled mask is not where it belongs: {masked}"
    );

    // A mask drawn through the API is measured in the camera's size.
    let admin = format!("Authorization: Bearer {}", common::ADMIN_TOKEN);
    let url = edgecam.http_url("/api/overlay/layers/door");
    let body = "{\"kind\": \"mask\", \"rects\": [[0, 200, 100, 100]]}";
    let put = common::http_with("PUT", &url, &[&admin], Some(body));
    assert_eq!(put.status, 200, "{}", put.body);
    let door: serde_json::Value =
        serde_json::from_str(&common::http_with("GET", &url, &[&admin], None).body).expect("JSON");
    assert_eq!(door["size"], serde_json::json!([640, 360]));

    // Every kind at once, kept as a picture: target/test-artifacts/overlay.png.
    let label = "[[overlay.layers]]\nname = \"label\"\nkind = \"text\"\n\
                 text = \"{camera} {fps} fps #{frame_id}\"\nanchor = \"bottom-left\"\n\
                 [[overlay.layers]]\nname = \"clock\"\nkind = \"clock\"\n";
    let everything = format!(
        "{label}[[overlay.layers]]\nname = \"logo\"\nkind = \"image\"\nfile = \"{}\"\n\
         anchor = \"bottom-right\"\nmargin = 8\n\
         [[overlay.layers]]\nname = \"window\"\nkind = \"mask\"\ncolor = \"#000000\"\n\
         size = [1280, 720]\nrects = [[800, 100, 320, 160]]\n",
        logo.display()
    );
    let changed = edgecam.patch_config(&everything);
    assert_eq!(changed.status, 200, "{}", changed.body);
    let artifacts =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifact dir");
    std::thread::sleep(Duration::from_secs(1));
    let grabbed = common::run_for(
        std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-rtsp_transport", "tcp", "-i"])
            .arg(edgecam.url())
            .args(["-frames:v", "1"])
            .arg(artifacts.join("overlay.png")),
        Duration::from_secs(30),
    );
    assert!(
        grabbed.status.success(),
        "{}",
        String::from_utf8_lossy(&grabbed.stderr)
    );

    // A file that is not a PNG is refused naming the layer; nothing changes.
    let broken = dir.path().join("broken.png");
    std::fs::write(&broken, b"not a png").expect("write");
    let body = format!(
        "{{\"kind\": \"image\", \"file\": \"{}\"}}",
        broken.display()
    );
    let refused = common::http_with(
        "PUT",
        &edgecam.http_url("/api/overlay/layers/broken"),
        &[&admin],
        Some(&body),
    );
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("broken") && refused.body.contains("not a PNG"),
        "{}",
        refused.body
    );
}
