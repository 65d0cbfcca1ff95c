//! The metrics WebSocket, `/metrics` and their behaviour under load, with
//! real clients (tungstenite, curl, promtool) against the real binary.

mod common;

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Edgecam, Settings};
use serde_json::Value;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

/// Every field docs/metrics.md documents for a sample.
const SAMPLE_FIELDS: &[&str] = &[
    "type",
    "schema",
    "seq",
    "timestamp_ms",
    "frame_id",
    "capture_fps",
    "encoded_fps",
    "bitrate_kbps",
    "dropped_frames",
    "capture_to_encode_ms",
    "clients",
    "cpu_percent",
    "rss_bytes",
    "rss_anon_bytes",
    "open_fds",
    "soc_temp_c",
    "throttling",
    "uptime_s",
    "captured_frames_total",
    "encoded_frames_total",
    "encoded_bytes_total",
];

/// The tests here take turns: each runs an encoder, fifty sockets' worth of
/// JSON in a debug build can take both cores, and a rate measured meanwhile
/// would say more about the machine than about edgecam.
static MEASURING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn connect(edgecam: &Edgecam) -> Socket {
    let url = format!("ws://127.0.0.1:{}/api/metrics/ws", edgecam.http_port);
    let (socket, _) = tungstenite::connect(url).expect("WebSocket connect");
    if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    }
    socket
}

/// The next JSON text message (pings are answered by tungstenite itself).
fn next_json(socket: &mut Socket) -> Value {
    loop {
        match socket.read().expect("WebSocket read") {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON"),
            _ => continue,
        }
    }
}

/// Reads samples until the encoder has been producing for a whole rate
/// window. Until then a sample's one-second rates count the time before the
/// first frame (x264 and the first keyframe take a while on a cold machine:
/// CI once saw a second at 0 fps and one at 9.8 right after start), which is
/// start-up, not the steady rate these tests judge.
fn wait_until_streaming(socket: &mut Socket) {
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        let sample = next_json(socket);
        if sample["encoded_frames_total"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(Instant::now() < give_up, "no frame encoded: {sample}");
    }
    // The rate window is one second; a little more so it holds frames only.
    samples_for(socket, Duration::from_millis(1200));
}

fn samples_for(socket: &mut Socket, duration: Duration) -> Vec<Value> {
    let until = Instant::now() + duration;
    let mut samples = Vec::new();
    while Instant::now() < until {
        samples.push(next_json(socket));
    }
    samples
}

/// The share of the samples the server took, between a client's first and
/// last, that reached the client (`seq` numbers every sample taken).
fn received_share(samples: &[Value]) -> f64 {
    let seq = |s: Option<&Value>| s.expect("samples")["seq"].as_u64().expect("seq");
    let span = seq(samples.last()) - seq(samples.first()) + 1;
    samples.len() as f64 / span as f64
}

#[test]
fn websocket_sends_hello_then_samples_at_the_configured_rate() {
    let _turn = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let edgecam = Edgecam::start(Settings::default());
    let mut socket = connect(&edgecam);
    let hello = next_json(&mut socket);
    assert_eq!(hello["type"], "hello", "{hello}");
    assert_eq!(hello["schema"], 1);
    assert_eq!(hello["camera"]["width"], 640);
    assert_eq!(hello["encoder"]["element"], "x264enc");
    assert_eq!(hello["outputs"]["hls"]["playlist"], "/hls/cam.m3u8");
    assert_eq!(hello["sample_rate_hz"], 10);
    for field in ["device", "version", "outputs"] {
        assert!(!hello[field].is_null(), "hello lacks {field}: {hello}");
    }

    wait_until_streaming(&mut socket);
    let samples = samples_for(&mut socket, Duration::from_secs(5));
    let rate = samples.len() as f64 / 5.0;
    let times: Vec<u64> = samples
        .iter()
        .map(|s| s["timestamp_ms"].as_u64().expect("ts"))
        .collect();
    // The sampler skips a tick rather than send two at once when the machine
    // is too busy to take it on time, so the throughput is only printed; the
    // spacing of the samples it does take is what follows the setting.
    let interval = median(times.windows(2).map(|w| (w[1] - w[0]) as f64).collect());
    println!(
        "metrics WebSocket: {rate:.1} samples/s, median spacing {interval:.0} ms (configured 10 Hz)"
    );
    assert!(
        (80.0..=120.0).contains(&interval),
        "samples {interval} ms apart"
    );
    assert!(
        received_share(&samples) >= 0.95,
        "the one client lost samples: {:?}",
        samples.iter().map(|s| &s["seq"]).collect::<Vec<_>>()
    );
    for sample in &samples {
        assert_eq!(sample["type"], "sample");
        for field in SAMPLE_FIELDS {
            assert!(
                sample.get(field).is_some(),
                "sample lacks {field}: {sample}"
            );
        }
        // Each sample's one-second rate wobbles when the shared machine is
        // busy (a sample skipped for a late tick, a frame held back); every
        // second must show video moving, and the median below is what must
        // sit at the configured rate.
        for field in ["capture_fps", "encoded_fps"] {
            let fps = sample[field].as_f64().expect(field);
            assert!((1.0..=45.0).contains(&fps), "{field} {fps}");
        }
        assert!(
            sample["bitrate_kbps"].as_f64().expect("bitrate") > 10.0,
            "{sample}"
        );
        assert!(
            sample["rss_bytes"].as_u64().expect("rss") > 1_000_000,
            "{sample}"
        );
        assert_eq!(sample["clients"]["ws"], 1, "{sample}");
        let latency = sample["capture_to_encode_ms"].as_f64().expect("latency");
        assert!(
            (0.0..500.0).contains(&latency),
            "capture_to_encode_ms {latency}"
        );
    }
    for field in ["capture_fps", "encoded_fps"] {
        let fps = median(samples.iter().filter_map(|s| s[field].as_f64()).collect());
        println!("{field}: median {fps:.1}");
        assert!((27.0..=33.0).contains(&fps), "{field} median {fps}");
    }
    let ids: Vec<u64> = samples
        .iter()
        .map(|s| s["frame_id"].as_u64().expect("frame_id"))
        .collect();
    // Monotonic, and moving: two samples 100 ms apart can name the same
    // frame when the busy machine holds one back for longer than that.
    assert!(
        ids.windows(2).all(|w| w[1] >= w[0]) && ids[ids.len() - 1] > ids[0] + 50,
        "frame ids not increasing: {ids:?}"
    );
    assert!(
        times.windows(2).all(|w| w[1] > w[0]),
        "timestamps not increasing"
    );
}

#[test]
fn fifty_clients_and_one_that_never_reads() {
    let _turn = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let edgecam = Edgecam::start(Settings::default());
    // Measure the steady state, not start-up: a socket that watches for it
    // and leaves before the fifty arrive.
    let mut watcher = connect(&edgecam);
    wait_until_streaming(&mut watcher);
    drop(watcher);
    // The one that never reads: it completes the handshake and then holds
    // the socket without taking a byte.
    let stalled = connect(&edgecam);
    let readers: Vec<_> = (0..49)
        .map(|_| {
            let mut socket = connect(&edgecam);
            std::thread::spawn(move || {
                next_json(&mut socket); // hello
                samples_for(&mut socket, Duration::from_secs(8))
            })
        })
        .collect();
    let results: Vec<Vec<Value>> = readers
        .into_iter()
        .map(|r| r.join().expect("reader"))
        .collect();

    let mut worst = f64::MAX;
    for samples in &results {
        worst = worst.min(received_share(samples));
    }
    let rates: Vec<f64> = results.iter().map(|s| s.len() as f64 / 8.0).collect();
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    println!(
        "50 WebSocket clients (one never reading): readers got {mean:.1} samples/s on average, \
         the worst {:.1} % of the samples sent",
        worst * 100.0
    );
    assert!(
        worst >= 0.95,
        "a reader got only {:.1} % of samples",
        worst * 100.0
    );

    let all: Vec<&Value> = results.iter().flatten().collect();
    let fps: Vec<f64> = all
        .iter()
        .filter_map(|s| s["encoded_fps"].as_f64())
        .collect();
    let slowest = fps.iter().copied().fold(f64::MAX, f64::min);
    let typical = median(fps.clone());
    // A stalled consumer slowing the video would do it for as long as it
    // stalls; one slow second alone is the shared machine (18 fps once in CI
    // with a median of 30), so the slowest tenth of the seconds is bounded.
    let mut sorted = fps;
    sorted.sort_by(f64::total_cmp);
    let tenth = sorted[sorted.len() / 10];
    println!(
        "video while serving 50 sockets: median {typical:.1} fps, slowest tenth {tenth:.1} fps, \
         slowest second {slowest:.1} fps"
    );
    assert!(typical >= 27.0, "video fell to a median of {typical} fps");
    assert!(
        tenth >= 20.0,
        "video fell to {tenth} fps for a tenth of the time"
    );
    let rss: Vec<u64> = results[0]
        .iter()
        .filter_map(|s| s["rss_bytes"].as_u64())
        .collect();
    let growth = rss.last().copied().unwrap_or(0).saturating_sub(rss[0]);
    println!(
        "RSS {} MB → {} MB",
        rss[0] / 1_000_000,
        rss.last().copied().unwrap_or(0) / 1_000_000
    );
    assert!(growth < 20_000_000, "RSS grew by {growth} bytes");
    // The stalled client was noticed and dropped (stall limit 5 s).
    assert!(
        edgecam.log().contains("stalled for 5s; disconnected"),
        "{}",
        edgecam.log()
    );
    let last_ws = results[0].last().expect("sample")["clients"]["ws"]
        .as_u64()
        .expect("ws count");
    assert_eq!(last_ws, 49, "the stalled client should be gone");
    drop(stalled);
}

#[test]
fn prometheus_endpoint_passes_promtool() {
    let _turn = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let edgecam = Edgecam::start(Settings::default());
    std::thread::sleep(Duration::from_millis(1500));
    let reply = common::http("GET", &edgecam.http_url("/metrics"));
    assert_eq!(reply.status, 200);
    let text = reply.body;
    for metric in [
        "edgecam_encoded_frames_total",
        "edgecam_capture_fps",
        "edgecam_clients{output=\"rtsp\"}",
    ] {
        assert!(text.contains(metric), "/metrics lacks {metric}:\n{text}");
    }
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus)");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let verdict = promtool.wait_with_output().expect("promtool");
    assert!(
        verdict.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&verdict.stdout),
        String::from_utf8_lossy(&verdict.stderr)
    );
}
