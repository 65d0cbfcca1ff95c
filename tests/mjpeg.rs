//! MJPEG and snapshots with the clients that use them: ffmpeg reading
//! `/stream.mjpeg`, curl as Home Assistant's snapshot camera would, and
//! Chromium showing `<img src=/stream.mjpeg>` and hls.js (its defaults) in
//! a page from another origin. Every JPEG comes from one shared encoder
//! that runs only while somebody watches.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{http, http_with, Edgecam, Player, ReceivedFrame};
use edgecam::source::identity::unix_time_us;

const JPEG_ENCODERS: &str = "edgecam_jpeg_encoders";

/// Frames per second over the span the viewer received frames.
fn rate(frames: &[ReceivedFrame]) -> f64 {
    match (frames.first(), frames.last()) {
        (Some(first), Some(last)) if frames.len() > 1 => {
            (frames.len() - 1) as f64 * 1e6 / (last.received_us - first.received_us) as f64
        }
        _ => 0.0,
    }
}

/// Median capture→decode latency of the stamped frames, in ms.
fn median_latency_ms(frames: &[ReceivedFrame]) -> Option<u64> {
    let mut latencies: Vec<u64> = frames
        .iter()
        .filter_map(|f| Some((f.received_us - f.stamp?.capture_time_us) / 1000))
        .collect();
    latencies.sort_unstable();
    (!latencies.is_empty()).then(|| common::percentile(&latencies, 50.0))
}

#[test]
fn mjpeg_viewers_get_the_full_rate_from_one_jpeg_encoder_that_runs_only_while_watched() {
    let edgecam = Edgecam::start(common::config());
    // Nobody watches JPEG: no JPEG encoder, and the camera's pipeline and
    // HLS's are all that run.
    edgecam.wait_for_metric(JPEG_ENCODERS, Duration::from_secs(5), |n| n == 0.0);
    let pipelines_idle = edgecam.metric("edgecam_pipelines").expect("pipelines");

    let url = edgecam.http_url("/stream.mjpeg");
    let viewers: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                common::receive_stamped_frames(Player::FfmpegMjpeg, &url, 640, 360, 8)
            })
        })
        .collect();
    edgecam.wait_for_metric(
        "edgecam_clients{output=\"mjpeg\"}",
        Duration::from_secs(10),
        |n| n == 3.0,
    );
    let jpeg_encoders = edgecam.wait_for_metric(JPEG_ENCODERS, Duration::from_secs(5), |n| n > 0.0);
    let pipelines = edgecam.metric("edgecam_pipelines").expect("pipelines");
    let h264_encoders = edgecam.metric("edgecam_encoders");
    let frames: Vec<Vec<ReceivedFrame>> = viewers
        .into_iter()
        .map(|v| v.join().expect("viewer"))
        .collect();
    for (n, frames) in frames.iter().enumerate() {
        let stamped = frames.iter().filter(|f| f.stamp.is_some()).count();
        println!(
            "MJPEG viewer {n}: {} frames, {:.1} fps, {stamped} stamped, median latency {:?} ms",
            frames.len(),
            rate(frames),
            median_latency_ms(frames)
        );
        assert!(rate(frames) >= 27.0, "viewer {n}: {:.1} fps", rate(frames));
        assert!(stamped * 100 >= frames.len() * 95, "viewer {n}: stamps");
    }
    println!(
        "JPEG encoders with 3 viewers: {jpeg_encoders}; pipelines {pipelines_idle} → {pipelines}"
    );
    assert_eq!(jpeg_encoders, 1.0, "one JPEG encoder for every viewer");
    assert_eq!(pipelines, pipelines_idle + 1.0);
    assert_eq!(h264_encoders, Some(1.0));
    // Nobody watches again: the encoder stops (after a short grace).
    let stopped = Instant::now();
    edgecam.wait_for_metric(JPEG_ENCODERS, Duration::from_secs(10), |n| n == 0.0);
    println!(
        "JPEG encoder stopped {:?} after the viewers left",
        stopped.elapsed()
    );
    assert_eq!(edgecam.metric("edgecam_pipelines"), Some(pipelines_idle));
}

/// `GET url` with curl into a file; the response head, lower-cased.
fn fetch(url: &str, file: &std::path::Path) -> String {
    let output = Command::new("curl")
        .args(["-s", "-L", "--max-time", "10", "-D", "-", "-o"])
        .arg(file)
        .arg(url)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&output.stdout).to_lowercase()
}

#[test]
fn a_snapshot_is_a_fresh_jpeg_at_the_configured_size_under_every_conventional_name() {
    // The JPEG at half the camera's size: the stamp's cells (16 px at
    // 1280 wide) halve to what a 640-wide reader expects.
    let mut config = common::config();
    config.camera.width = 1280;
    config.camera.height = 720;
    config.jpeg.width = 640;
    config.jpeg.height = 360;
    let edgecam = Edgecam::start(config);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("snapshot.jpg");
    // With the JPEG encoder idle, then running (the first request starts it).
    for round in ["idle", "running"] {
        let asked = unix_time_us();
        let head = fetch(&edgecam.http_url("/snapshot.jpg"), &file);
        let answered = unix_time_us();
        assert!(head.contains("content-type: image/jpeg"), "{head}");
        let stamp = common::jpeg_stamp(&file, 640, 360).expect("a stamped 640x360 JPEG");
        let age_ms = (answered - stamp.capture_time_us) as f64 / 1000.0;
        println!(
            "snapshot with the encoder {round}: answered in {:.0} ms, frame {age_ms:.0} ms old",
            (answered - asked) as f64 / 1000.0
        );
        assert!(age_ms < 200.0, "{round}: the snapshot is {age_ms} ms old");
        // Idle: the next frame is encoded; running: the latest, at most a
        // frame interval old when asked for (and a frame's way through).
        let allowed_us = if round == "idle" { 40_000 } else { 80_000 };
        assert!(
            stamp.capture_time_us + allowed_us >= asked,
            "{round}: captured {} µs before the request",
            asked.saturating_sub(stamp.capture_time_us)
        );
    }
    for alias in ["/snapshot", "/api/frame.jpeg", "/?action=snapshot"] {
        let head = fetch(&edgecam.http_url(alias), &file);
        assert!(head.contains("content-type: image/jpeg"), "{alias}: {head}");
        assert!(
            common::jpeg_stamp(&file, 640, 360).is_some(),
            "{alias}: no 640x360 JPEG"
        );
    }
}

/// The first `bytes` of a GET, raw.
fn read_raw(url_path: &str, port: u16, bytes: usize) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {url_path} HTTP/1.1\r\nHost: edgecam\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut received = vec![0u8; bytes];
    stream
        .read_exact(&mut received)
        .expect("the stream's bytes");
    received
}

#[test]
fn the_stream_follows_the_conventions_mjpeg_clients_expect() {
    let mut config = common::config();
    config.auth.viewer_token = "watch".to_owned();
    let edgecam = Edgecam::start(config);
    for path in ["/stream.mjpeg", "/stream", "/api/stream.mjpeg"] {
        let raw = read_raw(&format!("{path}?token=watch"), edgecam.http_port, 200_000);
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        assert!(
            head.to_lowercase()
                .contains("content-type: multipart/x-mixed-replace;boundary=edgecamframe"),
            "{path}: {head}"
        );
        // Every part: its type, length and capture time, then the JPEG,
        // then at once the next boundary.
        let parts: Vec<&str> = body.split("--edgecamframe\r\n").skip(1).collect();
        assert!(parts.len() >= 3, "{path}: {} parts", parts.len());
        for part in &parts[..parts.len() - 1] {
            let (headers, jpeg) = part.split_once("\r\n\r\n").expect("part headers");
            let length: usize = headers
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .expect("Content-Length");
            assert!(headers.contains("X-Timestamp: "), "{headers}");
            assert!(headers.contains("X-Frame-Id: "), "{headers}");
            // The lossy decoding keeps the length only for ASCII; compare
            // the byte counts of the raw part instead.
            assert!(jpeg.ends_with("\r\n"), "a part ends before its boundary");
            assert!(length > 1000, "{headers}");
        }
    }
    let without = http_with("GET", &edgecam.http_url("/stream.mjpeg"), &[], None);
    assert_eq!(without.status, 401, "the viewer token is needed");
    // mjpg-streamer's URLs (OctoPrint's defaults) lead here, token and all.
    let redirect = http_with(
        "GET",
        &edgecam.http_url("/?action=stream&token=watch"),
        &[],
        None,
    );
    assert_eq!(redirect.status, 307);
    assert!(
        redirect
            .head
            .contains("location: /stream.mjpeg?token=watch"),
        "{}",
        redirect.head
    );
}

#[test]
fn a_page_from_another_origin_shows_mjpeg_and_plays_hls_near_the_live_edge() {
    let edgecam = Edgecam::start(common::config());
    edgecam.wait_for_playlist("127.0.0.1", 3, Duration::from_secs(30));
    let origin = edgecam.http_url("");
    let report = common::browser(
        "embed.mjs",
        &[origin.trim_end_matches('/')],
        Duration::from_secs(120),
        "",
    );
    println!("embedded: {report}");
    // A wrong URL reads as a 404, not as "HTTP 0": errors carry CORS too.
    assert_eq!(
        report["fetches"]["wrongPlaylist"]["status"], 404,
        "{report}"
    );
    // The viewer token as a header needs a preflight, which succeeds.
    assert_eq!(report["fetches"]["withHeader"]["status"], 200, "{report}");
    assert_eq!(report["fetches"]["snapshot"]["status"], 200, "{report}");
    assert_eq!(report["imageWidth"], 640, "{report}");
    // 50 looks at the image, 100 ms apart: it advances.
    assert!(
        report["imageDistinct"].as_u64().unwrap_or(0) >= 25,
        "{report}"
    );
    assert!(
        report["imageStamped"].as_u64().unwrap_or(0) >= 45,
        "{report}"
    );
    let image_ms = report["imageLatencyMs"].as_f64().expect("image latency");
    assert!(image_ms < 500.0, "MJPEG in <img> is {image_ms} ms behind");
    // hls.js with its defaults, told where to start by EXT-X-START
    // (without it: 4.5–5.5 s).
    assert!(
        report["videoStamped"].as_u64().unwrap_or(0) >= 45,
        "{report}"
    );
    let video_ms = report["videoLatencyMs"].as_f64().expect("video latency");
    assert!(
        video_ms < 4000.0,
        "hls.js's defaults play {video_ms} ms behind"
    );
    assert_eq!(
        report["errors"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );
}

#[test]
fn errors_and_preflights_carry_cors_headers() {
    let edgecam = Edgecam::start(common::config());
    let origin = "Origin: http://example.test";
    let missing = http_with("GET", &edgecam.http_url("/hls/wrong.m3u8"), &[origin], None);
    assert_eq!(missing.status, 404);
    assert!(
        missing.head.contains("access-control-allow-origin: *"),
        "{}",
        missing.head
    );
    let unknown = http_with("GET", &edgecam.http_url("/no/such/page"), &[origin], None);
    assert_eq!(unknown.status, 404);
    assert!(unknown.head.contains("access-control-allow-origin: *"));
    let preflight = http_with(
        "OPTIONS",
        &edgecam.http_url("/hls/cam.m3u8"),
        &[
            origin,
            "Access-Control-Request-Method: GET",
            "Access-Control-Request-Headers: authorization",
        ],
        None,
    );
    assert!(
        preflight.status == 200 || preflight.status == 204,
        "{}",
        preflight.head
    );
    assert!(
        preflight
            .head
            .contains("access-control-allow-headers: authorization"),
        "{}",
        preflight.head
    );
    // And the playlist tells every player where the live edge is.
    let playlist = edgecam.wait_for_playlist("127.0.0.1", 1, Duration::from_secs(20));
    assert!(
        playlist.contains("#EXT-X-START:TIME-OFFSET=-1.0,PRECISE=YES"),
        "{playlist}"
    );
}

#[test]
fn logs_written_to_a_file_have_no_colour_codes() {
    let edgecam = Edgecam::launch(
        common::config(),
        common::Launch {
            colour_allowed: true,
            ..common::Launch::default()
        },
    );
    let log = edgecam.log();
    assert!(log.contains("INFO"), "{log}");
    assert!(!log.contains('\u{1b}'), "escape codes in the log:\n{log:?}");
    let _ = http("GET", &edgecam.http_url("/healthz"));
}
