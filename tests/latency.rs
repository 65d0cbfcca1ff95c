//! The latency stamp read back from frames received over RTSP: the
//! capture→decode latency benchmark, and the late-joiner check that uses it.

mod common;

use std::time::Duration;

use common::{percentile, receive_stamped_frames, Edgecam, Player};
use edgecam::source::identity::unix_time_us;

#[test]
fn latency_stamp_survives_rtsp_and_gives_capture_to_decode_latency() {
    let mut config = common::config();
    (config.camera.width, config.camera.height) = (1280, 720);
    let edgecam = Edgecam::start(config);
    // Two players: they differ in how much they buffer, which is part of
    // what a user sees, so both figures are worth knowing.
    for player in [Player::GstLaunch, Player::Ffmpeg] {
        let frames = receive_stamped_frames(player, &edgecam.url(), 1280, 720, 8);
        // The first second includes the player's own start-up; measure after it.
        let steady: Vec<_> = frames
            .iter()
            .skip(edgecam.config.camera.fps as usize)
            .collect();
        assert!(
            steady.len() > 100,
            "{player:?}: only {} frames received",
            frames.len()
        );
        let stamped: Vec<_> = steady
            .iter()
            .filter_map(|f| f.stamp.map(|s| (f.received_us, s)))
            .collect();
        assert!(
            stamped.len() * 100 >= steady.len() * 95,
            "{player:?}: stamp unreadable in {} of {} frames",
            steady.len() - stamped.len(),
            steady.len()
        );
        let backwards = stamped
            .windows(2)
            .find(|w| w[1].1.frame_id <= w[0].1.frame_id);
        assert!(
            backwards.is_none(),
            "{player:?}: frame ids not increasing: {:?}",
            backwards.map(|w| (w[0].1.frame_id, w[1].1.frame_id))
        );

        let mut latencies: Vec<u64> = stamped
            .iter()
            .map(|(received, stamp)| received.saturating_sub(stamp.capture_time_us))
            .collect();
        latencies.sort_unstable();
        let (p50, p99) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0));
        println!(
            "RTSP/TCP 1280x720@30 x264, {player:?}: capture→decode latency over {} frames: \
             p50 {:.1} ms, p99 {:.1} ms",
            latencies.len(),
            p50 as f64 / 1000.0,
            p99 as f64 / 1000.0
        );
        // A sanity bound only; the figures themselves are the benchmark.
        assert!(p99 < 1_000_000, "{player:?}: p99 latency {p99} µs");
    }
}

#[test]
fn a_viewer_joining_late_starts_within_one_keyframe_interval() {
    // Keyframes every 2 s, so waiting for the encoder's own next keyframe
    // would show; the service should instead start the viewer at once.
    let mut config = common::config();
    config.encoder.keyframe_interval = 60;
    let edgecam = Edgecam::start(config);
    // Well into the stream: the encoder's last keyframe is long past.
    edgecam.wait_for_metric(
        "edgecam_encoded_frames_total",
        Duration::from_secs(10),
        |n| n >= 90.0,
    );

    let joined_us = unix_time_us();
    let frames = receive_stamped_frames(Player::Ffmpeg, &edgecam.url(), 640, 360, 3);
    let first = frames
        .iter()
        .find_map(|f| f.stamp.map(|s| (f.received_us, s)))
        .expect("no stamped frame decoded");
    let (keyframes, fps) = (
        edgecam.config.encoder.keyframe_interval,
        edgecam.config.camera.fps,
    );
    let interval_us = u64::from(keyframes) * 1_000_000 / u64::from(fps);
    let waited_us = first.0 - joined_us;
    println!(
        "late joiner: first decoded frame {:.0} ms after starting the client (keyframe interval {} ms); frame captured {:.0} ms after joining",
        waited_us as f64 / 1000.0,
        interval_us / 1000,
        first.1.capture_time_us.saturating_sub(joined_us) as f64 / 1000.0
    );
    // The very first frame the client received decoded, and it was captured
    // within one keyframe interval of joining.
    assert!(
        frames[0].stamp.is_some(),
        "the first received frame did not decode cleanly"
    );
    assert!(
        first.1.capture_time_us < joined_us + interval_us,
        "first decodable frame was captured {} ms after joining",
        (first.1.capture_time_us - joined_us) / 1000
    );
}
