//! A video file as the camera (`camera.source = "file"`): paced by the
//! wall clock, looping with frame ids and capture times that run on, or
//! holding its last frame; a missing or broken file is a clear error. The
//! test makes its own short files with gst-launch-1.0.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{frames_client, Edgecam};
use edgecam::config::{Config, SourceKind};

const FPS: f64 = 30.0;

/// Writes `frames` frames of a moving ball at 640x360@30 through
/// `encode` (e.g. "x264enc ! mp4mux") into `dir/name`.
fn make_video(dir: &Path, name: &str, frames: u32, encode: &str) -> PathBuf {
    let path = dir.join(name);
    let pipeline = format!(
        "videotestsrc num-buffers={frames} pattern=ball ! \
         video/x-raw,width=640,height=360,framerate=30/1 ! {encode} ! filesink location={}",
        path.display()
    );
    let status = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(pipeline.split_whitespace())
        .status()
        .expect("gst-launch-1.0");
    assert!(status.success(), "making {name}");
    path
}

fn file_config(file: &Path, looping: bool) -> Config {
    let mut config = common::config();
    config.camera.source = SourceKind::File;
    config.camera.file = file.display().to_string();
    config.camera.looping = looping;
    config
}

fn numbers(report: &serde_json::Value, key: &str) -> Vec<f64> {
    report[key]
        .as_array()
        .expect(key)
        .iter()
        .filter_map(|v| v.as_f64())
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[test]
fn a_looping_file_is_paced_by_the_wall_clock_with_ids_that_run_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 2 s: a minute's replay loops 30 times.
    let file = make_video(dir.path(), "ball.mp4", 60, "x264enc ! mp4mux");
    let edgecam = Edgecam::start(file_config(&file, true));
    let url = format!(
        "ws://127.0.0.1:{}/api/frames/ws?format=gray8&scale=0.25",
        edgecam.http_port
    );
    let report = frames_client(&["probe", &url, "60"], Duration::from_secs(90));
    let ids = numbers(&report, "ids");
    let captured = numbers(&report, "captured_us");
    let received = numbers(&report, "received_s");
    assert!(ids.len() > 1700, "{} frames in 60 s", ids.len());
    assert!(ids.windows(2).all(|w| w[1] > w[0]), "ids went back");
    let missing = (ids[ids.len() - 1] - ids[0] + 1.0) as usize - ids.len();
    // Capture times against the start: frame n is due at start + n/fps.
    let due = |i: usize| captured[0] + (ids[i] - ids[0]) * 1e6 / FPS;
    let capture_error_ms = (0..ids.len())
        .map(|i| (captured[i] - due(i)).abs() / 1000.0)
        .fold(0.0, f64::max);
    let longest_gap_ms = captured
        .windows(2)
        .map(|w| (w[1] - w[0]) / 1000.0)
        .fold(0.0, f64::max);
    // Arrival at the client: the drift over the minute, from the median
    // lateness of the first and the last second's frames.
    let lateness: Vec<f64> = (0..ids.len())
        .map(|i| received[i] - received[0] - (ids[i] - ids[0]) / FPS)
        .collect();
    let drift_ms = (median(lateness[lateness.len() - 30..].to_vec())
        - median(lateness[..30].to_vec()))
        * 1000.0;
    let loops = (ids[ids.len() - 1] - ids[0]) / 60.0;
    println!(
        "file replay over 60 s: {} frames ({missing} skipped by the client), {loops:.1} loops, \
         capture-time error at most {capture_error_ms:.2} ms, longest gap {longest_gap_ms:.1} ms, \
         arrival drift {drift_ms:+.1} ms",
        ids.len()
    );
    assert!(loops >= 3.0);
    assert!(missing * 100 < ids.len(), "{missing} frames missing");
    assert!(
        capture_error_ms < 1000.0 / FPS,
        "a frame was captured {capture_error_ms} ms off its due time"
    );
    assert!(
        longest_gap_ms < 2000.0 / FPS,
        "a {longest_gap_ms} ms gap (at a loop?)"
    );
    assert!(drift_ms.abs() < 1000.0 / FPS, "drifted {drift_ms} ms");
    assert_eq!(report["width"], 160);
}

#[test]
fn a_file_played_once_holds_its_last_frame() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = make_video(dir.path(), "once.mkv", 30, "jpegenc ! matroskamux");
    let edgecam = Edgecam::start(file_config(&file, false));
    // Well past its one second, the outputs still get frames: the same one.
    std::thread::sleep(Duration::from_secs(2));
    let url = format!(
        "ws://127.0.0.1:{}/api/frames/ws?format=gray8",
        edgecam.http_port
    );
    let report = frames_client(&["probe", &url, "2"], Duration::from_secs(30));
    println!(
        "held: {} frames, {} distinct",
        report["frames"], report["distinct"]
    );
    assert!(report["frames"].as_u64().unwrap_or(0) >= 45, "{report}");
    assert_eq!(report["distinct"], 1, "{report}");
    let health = common::http("GET", &edgecam.http_url("/healthz"));
    assert_eq!(health.status, 200, "{}", health.body);
}

/// `edgecam --config FILE ARGS`: its exit status and stdout + stderr.
fn edgecam_with(config: &Config, dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let path = dir.join("config.toml");
    std::fs::write(&path, toml::to_string(config).expect("toml")).expect("write config");
    let mut command = Command::new(common::BIN);
    command.env("NO_COLOR", "1");
    match args {
        // check-config takes the file as its argument.
        ["check-config"] => command.arg("check-config").arg(&path),
        _ => command.arg("--config").arg(&path).args(args),
    };
    let output = common::run_for(&mut command, Duration::from_secs(30));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

#[test]
fn a_missing_or_broken_file_is_an_error_naming_it_and_probe_describes_a_good_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = dir.path().join("broken.mp4");
    let noise: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&broken, noise).expect("write noise");
    let missing = dir.path().join("missing.mp4");
    for file in [&broken, &missing] {
        let config = file_config(file, true);
        for command in ["check-config", "run"] {
            let (status, text) = edgecam_with(&config, dir.path(), &[command]);
            println!(
                "{command} with {}: {status:?} {}",
                file.display(),
                text.trim()
            );
            assert_eq!(status, Some(2), "{command}: {text}");
            assert!(
                text.contains(&file.display().to_string()),
                "{command}: {text}"
            );
            assert!(!text.contains("panicked"), "{text}");
        }
    }
    let good = make_video(dir.path(), "good.ts", 30, "x264enc ! mpegtsmux");
    let (status, text) = edgecam_with(&file_config(&good, true), dir.path(), &["probe"]);
    assert_eq!(status, Some(0), "{text}");
    assert!(text.contains("good.ts: video/x-h264 640x360"), "{text}");
}
