//! How closely edgecam's rates follow its settings on this machine — the
//! figures the functional tests no longer judge, because a shared CI machine
//! moves them: the metrics samples' spacing and delivery, and the video's
//! frame rate, alone and while fifty metrics sockets (one never reading)
//! are served. `cargo bench --bench rates`; the figures go to
//! docs/benchmarks.md.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::metrics_ws::{self, median, next_json, samples_for, wait_until_streaming, Socket};
use common::Edgecam;
use serde_json::Value;

fn connect(edgecam: &Edgecam) -> Socket {
    metrics_ws::connect(&edgecam.http_url("/api/metrics/ws"))
}

/// The share of the samples taken between a client's first and last that
/// reached it (`seq` numbers every sample taken).
fn received_share(samples: &[Value]) -> f64 {
    let seq = |s: Option<&Value>| s.and_then(|s| s["seq"].as_u64()).unwrap_or(0);
    let span = seq(samples.last()) - seq(samples.first()) + 1;
    samples.len() as f64 / span as f64
}

fn fps_of(samples: &[&Value], field: &str) -> Vec<f64> {
    samples.iter().filter_map(|s| s[field].as_f64()).collect()
}

fn one_client(edgecam: &Edgecam) {
    let mut socket = connect(edgecam);
    next_json(&mut socket);
    wait_until_streaming(&mut socket);
    let samples = samples_for(&mut socket, Duration::from_secs(10));
    let times: Vec<f64> = samples
        .iter()
        .filter_map(|s| s["timestamp_ms"].as_f64())
        .collect();
    let spacing = median(times.windows(2).map(|w| w[1] - w[0]).collect());
    let all: Vec<&Value> = samples.iter().collect();
    println!(
        "one metrics client, 10 s at 10 Hz: {:.1} samples/s, median spacing {spacing:.0} ms, \
         {:.1} % of samples received; capture median {:.1} fps, encoded median {:.1} fps (30 configured)",
        samples.len() as f64 / 10.0,
        received_share(&samples) * 100.0,
        median(fps_of(&all, "capture_fps")),
        median(fps_of(&all, "encoded_fps")),
    );
}

fn fifty_clients(edgecam: &Edgecam) {
    let mut watcher = connect(edgecam);
    wait_until_streaming(&mut watcher);
    drop(watcher);
    let stalled = connect(edgecam);
    let readers: Vec<_> = (0..49)
        .map(|_| {
            let mut socket = connect(edgecam);
            std::thread::spawn(move || {
                next_json(&mut socket);
                samples_for(&mut socket, Duration::from_secs(8))
            })
        })
        .collect();
    let results: Vec<Vec<Value>> = readers.into_iter().filter_map(|r| r.join().ok()).collect();
    let worst = results
        .iter()
        .map(|s| received_share(s))
        .fold(f64::MAX, f64::min);
    let mean_rate =
        results.iter().map(|s| s.len() as f64 / 8.0).sum::<f64>() / results.len() as f64;
    let all: Vec<&Value> = results.iter().flatten().collect();
    let mut fps = fps_of(&all, "encoded_fps");
    fps.sort_by(f64::total_cmp);
    println!(
        "50 metrics clients (one never reading), 8 s: readers {mean_rate:.1} samples/s on \
         average, the worst got {:.1} % of samples; video median {:.1} fps, slowest tenth \
         {:.1} fps, slowest second {:.1} fps",
        worst * 100.0,
        median(fps.clone()),
        fps.get(fps.len() / 10).copied().unwrap_or(0.0),
        fps.first().copied().unwrap_or(0.0),
    );
    drop(stalled);
}

fn main() {
    // `cargo bench` passes filter arguments and `--bench`; this runs whole.
    let edgecam = Edgecam::start(common::config());
    one_client(&edgecam);
    fifty_clients(&edgecam);
}
