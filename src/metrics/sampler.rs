//! The sampler: every 1/rate seconds it reads the counters and the system,
//! builds a [`Sample`], serialises it once and broadcasts it. Each WebSocket
//! client holds its own bounded position in the broadcast ring, so a slow
//! one loses its oldest samples and nobody else notices.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use serde::Serialize;
use tokio::sync::{broadcast, watch};

use super::counters::{CounterValues, StreamCounters};
use super::system::{self, CpuMeter, Throttling};
use super::SCHEMA;
use crate::pipeline::recovery::{CameraStatus, SharedStatus};
use crate::source::identity::unix_time_us;

/// Rates are averaged over this much history, so 10 Hz samples of a 30 fps
/// stream do not jitter between 20 and 40 fps.
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// Samples a WebSocket client may fall behind before it loses the oldest.
const QUEUE: usize = 32;

/// The first message on the socket: what this device is and streams.
#[derive(Debug, Clone, Serialize)]
pub struct Hello {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub schema: u32,
    pub device: String,
    pub version: &'static str,
    pub camera: serde_json::Value,
    pub encoder: serde_json::Value,
    pub outputs: serde_json::Value,
    pub sample_rate_hz: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClientCounts {
    pub rtsp: usize,
    pub hls: usize,
    pub ws: usize,
}

/// One periodic reading. Field meanings and units: docs/metrics.md.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub schema: u32,
    /// Counts samples from 0 at start, so a client that was behind and lost
    /// the oldest ones to the bounded queue sees the gap.
    pub seq: u64,
    pub timestamp_ms: u64,
    pub frame_id: u64,
    pub capture_fps: f64,
    pub encoded_fps: f64,
    pub bitrate_kbps: f64,
    pub dropped_frames: u64,
    pub capture_to_encode_ms: Option<f64>,
    pub clients: ClientCounts,
    pub camera: CameraStatus,
    pub cpu_percent: Option<f64>,
    pub rss_bytes: Option<u64>,
    pub rss_anon_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub soc_temp_c: Option<f64>,
    pub throttling: Option<Throttling>,
    pub uptime_s: f64,
    pub captured_frames_total: u64,
    pub encoded_frames_total: u64,
    pub encoded_bytes_total: u64,
}

/// HLS has no sessions: a viewer is an address that fetched the playlist
/// recently.
#[derive(Clone, Default)]
pub struct HlsViewers {
    seen: Arc<Mutex<HashMap<IpAddr, Instant>>>,
}

impl HlsViewers {
    pub fn saw(&self, address: IpAddr) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(address, Instant::now());
        }
    }

    /// Addresses seen within `recent`; older ones are forgotten.
    pub fn count(&self, recent: Duration) -> usize {
        let Ok(mut seen) = self.seen.lock() else {
            return 0;
        };
        seen.retain(|_, at| at.elapsed() <= recent);
        seen.len()
    }
}

/// Live viewer counts, shared with the outputs that know them.
#[derive(Clone, Default)]
pub struct Clients {
    pub rtsp: Arc<AtomicUsize>,
    pub ws: Arc<AtomicUsize>,
    pub hls: HlsViewers,
    /// An HLS viewer counts while it fetched the playlist this recently.
    pub hls_recent: Duration,
}

impl Clients {
    fn read(&self) -> ClientCounts {
        ClientCounts {
            rtsp: self.rtsp.load(Ordering::Relaxed),
            hls: self.hls.count(self.hls_recent),
            ws: self.ws.load(Ordering::Relaxed),
        }
    }
}

/// The running sampler's outputs, and the handles that re-point it when
/// the pipeline is rebuilt or the rate changes (subscribers stay).
#[derive(Clone)]
pub struct Metrics {
    samples: broadcast::Sender<Arc<str>>,
    latest: watch::Receiver<Option<Sample>>,
    hello: watch::Sender<Arc<str>>,
    encoder_queue: watch::Sender<gst::Element>,
    rate_hz: watch::Sender<u32>,
    pub clients: Clients,
}

impl Metrics {
    /// The `hello` message for a new client.
    pub fn hello(&self) -> Arc<str> {
        self.hello.borrow().clone()
    }

    /// Follows a rebuilt pipeline: its encoder queue and its description.
    pub fn retarget(&self, encoder_queue: gst::Element, hello: &Hello) {
        self.encoder_queue.send_replace(encoder_queue);
        self.hello
            .send_replace(serde_json::to_string(hello).unwrap_or_default().into());
    }

    /// Samples per second from now on.
    pub fn set_rate(&self, rate_hz: u32) {
        self.rate_hz.send_replace(rate_hz.max(1));
    }

    /// A fresh subscription: its own bounded queue of serialised samples.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.samples.subscribe()
    }

    pub fn latest(&self) -> Option<Sample> {
        self.latest.borrow().clone()
    }
}

/// Starts sampling on the current tokio runtime. `encoder_queue` is the
/// queue in front of the encoder: frames in it are not dropped, just late.
pub fn spawn(
    rate_hz: u32,
    counters: StreamCounters,
    encoder_queue: gst::Element,
    clients: Clients,
    camera: SharedStatus,
    hello: &Hello,
) -> Metrics {
    let (samples, _) = broadcast::channel(QUEUE);
    let (latest_tx, latest) = watch::channel(None);
    let hello: Arc<str> = serde_json::to_string(hello).unwrap_or_default().into();
    let (queue_tx, queue_rx) = watch::channel(encoder_queue);
    let (rate_tx, mut rate_rx) = watch::channel(rate_hz.max(1));
    let metrics = Metrics {
        samples: samples.clone(),
        latest,
        hello: watch::channel(hello).0,
        encoder_queue: queue_tx,
        rate_hz: rate_tx,
        clients: clients.clone(),
    };
    let every = |rate: u32| {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tick
    };
    tokio::spawn(async move {
        let started = Instant::now();
        let mut cpu = CpuMeter::new();
        let mut history: VecDeque<(Instant, CounterValues)> = VecDeque::new();
        let mut tick = every(*rate_rx.borrow_and_update());
        let mut seq = 0u64;
        loop {
            tick.tick().await;
            if rate_rx.has_changed().unwrap_or(false) {
                tick = every(*rate_rx.borrow_and_update());
            }
            let encoder_queue = queue_rx.borrow().clone();
            let now = Instant::now();
            let values = counters.read();
            history.push_back((now, values));
            while history.len() > 2 && now.duration_since(history[1].0) >= RATE_WINDOW {
                history.pop_front();
            }
            let in_queue: u32 = encoder_queue.property("current-level-buffers");
            let mut sample = build_sample(
                &history,
                values,
                u64::from(in_queue),
                &clients,
                &mut cpu,
                started,
            );
            sample.camera = camera.get();
            sample.seq = seq;
            seq += 1;
            // No subscribers is fine: send only fails then.
            if let Ok(json) = serde_json::to_string(&sample) {
                let _ = samples.send(json.into());
            }
            latest_tx.send_replace(Some(sample));
        }
    });
    metrics
}

fn build_sample(
    history: &VecDeque<(Instant, CounterValues)>,
    values: CounterValues,
    in_queue: u64,
    clients: &Clients,
    cpu: &mut CpuMeter,
    started: Instant,
) -> Sample {
    let (first_at, first) = history.front().copied().unwrap_or((Instant::now(), values));
    let (last_at, _) = history.back().copied().unwrap_or((first_at, values));
    let span = last_at.duration_since(first_at).as_secs_f64();
    let rate = |delta: u64| if span > 0.0 { delta as f64 / span } else { 0.0 };
    let latency_count = values.latency_count - first.latency_count;
    let memory = system::process_resident_memory();
    Sample {
        kind: "sample",
        schema: SCHEMA,
        seq: 0,
        timestamp_ms: unix_time_us() / 1000,
        frame_id: values.last_frame_id,
        capture_fps: rate(values.captured_frames - first.captured_frames),
        encoded_fps: rate(values.encoded_frames - first.encoded_frames),
        bitrate_kbps: rate(values.encoded_bytes - first.encoded_bytes) * 8.0 / 1000.0,
        dropped_frames: values
            .captured_frames
            .saturating_sub(values.encoder_input_frames + in_queue),
        capture_to_encode_ms: (latency_count > 0).then(|| {
            (values.latency_sum_us - first.latency_sum_us) as f64 / latency_count as f64 / 1000.0
        }),
        clients: clients.read(),
        camera: CameraStatus::default(),
        cpu_percent: cpu.percent(),
        rss_bytes: memory.total,
        rss_anon_bytes: memory.anonymous,
        open_fds: system::process_open_fds(),
        soc_temp_c: system::soc_temperature_c(),
        throttling: system::throttling(),
        uptime_s: started.elapsed().as_secs_f64(),
        captured_frames_total: values.captured_frames,
        encoded_frames_total: values.encoded_frames,
        encoded_bytes_total: values.encoded_bytes,
    }
}
