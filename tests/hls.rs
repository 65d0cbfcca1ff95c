//! HLS and the health check over HTTP, with real clients (ffprobe, ffmpeg,
//! curl) against the real binary.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{percentile, Edgecam};

/// GET with curl → (status line and headers lower-cased, body).
fn curl(url: &str) -> (String, String) {
    let reply = common::http("GET", url);
    (reply.head, reply.body)
}

fn media_sequence(playlist: &str) -> u64 {
    playlist
        .lines()
        .find_map(|line| line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no media sequence in {playlist}"))
}

#[test]
fn hls_plays_from_the_same_encoder_and_keeps_its_window() {
    // Keyframes only every 3 s: 1 s segments need edgecam to ask the
    // encoder for one at each segment start.
    let mut config = common::config();
    config.encoder.keyframe_interval = 90;
    let edgecam = Edgecam::start(config);
    let playlist_url = edgecam.http_url("/hls/cam.m3u8");
    let first = edgecam.wait_for_playlist("127.0.0.1", 1, Duration::from_secs(30));
    let (head, _) = curl(&playlist_url);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("content-type: application/vnd.apple.mpegurl"),
        "{head}"
    );
    assert!(head.contains("cache-control: no-cache"), "{head}");
    let segment = first
        .lines()
        .find(|l| l.ends_with(".ts"))
        .expect("a segment in the playlist");
    let (head, _) = curl(&edgecam.http_url(&format!("/hls/{segment}")));
    assert!(head.contains("content-type: video/mp2t"), "{head}");

    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height",
        ])
        .args(["-of", "default=noprint_wrappers=1", &playlist_url])
        .output()
        .expect("ffprobe");
    let probed = String::from_utf8_lossy(&output.stdout);
    assert!(probed.contains("codec_name=h264"), "{probed}");
    assert!(
        probed.contains("width=640") && probed.contains("height=360"),
        "{probed}"
    );

    // Still one encoder with RTSP and HLS both running.
    assert_eq!(edgecam.metric("edgecam_encoders"), Some(1.0));

    // Over the next 27 s the directory never holds more than window + 2
    // segment files (sampled every 100 ms), and the playlist moves on.
    let window = edgecam.config.hls.window as usize;
    let count_segments = || {
        std::fs::read_dir(edgecam.hls_dir())
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "ts"))
                    .count()
            })
            .unwrap_or(0)
    };
    let mut most = 0;
    let until = std::time::Instant::now() + Duration::from_secs(27);
    while std::time::Instant::now() < until {
        most = most.max(count_segments());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, later) = curl(&playlist_url);
    let durations: Vec<f64> = later
        .lines()
        .filter_map(|line| line.strip_prefix("#EXTINF:"))
        .filter_map(|rest| rest.trim_end_matches(',').split(',').next()?.parse().ok())
        .collect();
    assert_eq!(durations.len(), window, "{later}");
    assert!(
        durations.iter().all(|d| (0.9..=1.1).contains(d)),
        "segments are not 1 s long: {durations:?}"
    );
    assert!(
        media_sequence(&later) > media_sequence(&first) + 20,
        "playlist did not advance:\n{first}\n{later}"
    );
    println!("over 30 s: at most {most} segment files on disk (window {window})");
    assert!(
        most <= window + 2,
        "{most} segment files for a window of {window}"
    );
}

#[test]
fn health_check_reports_streaming() {
    let edgecam = Edgecam::start(common::config());
    let (head, body) = curl(&edgecam.http_url("/healthz"));
    assert!(head.starts_with("http/1.1 200"), "{head}{body}");
    assert!(body.starts_with("ok: streaming"), "{body}");
    let (head, _) = curl(&edgecam.http_url("/hls/../config.toml"));
    assert!(head.starts_with("http/1.1 404"), "{head}");
}

#[test]
fn hls_latency_from_the_stamp() {
    let edgecam = Edgecam::start(common::config());
    edgecam.wait_for_playlist("127.0.0.1", 2, Duration::from_secs(30));
    let frames = common::receive_stamped_frames(
        common::Player::FfmpegHls,
        &edgecam.http_url("/hls/cam.m3u8"),
        640,
        360,
        8,
    );
    let mut latencies: Vec<u64> = frames
        .iter()
        .skip(30)
        .filter_map(|f| {
            f.stamp
                .map(|s| f.received_us.saturating_sub(s.capture_time_us))
        })
        .collect();
    assert!(
        latencies.len() > 60,
        "only {} stamped frames over HLS",
        latencies.len()
    );
    latencies.sort_unstable();
    println!(
        "HLS (1 s segments, window 6) 640x360@30, ffmpeg: capture→decode latency p50 {:.0} ms, p99 {:.0} ms",
        percentile(&latencies, 50.0) as f64 / 1000.0,
        percentile(&latencies, 99.0) as f64 / 1000.0
    );
    assert!(percentile(&latencies, 99.0) < 15_000_000);
}
