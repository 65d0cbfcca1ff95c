//! The sampler: every 1/rate seconds it reads the counters and the system,
//! builds a [`Sample`], serialises it once and broadcasts it. Each WebSocket
//! client holds its own bounded position in the broadcast ring, so a slow
//! one loses its oldest samples and nobody else notices.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use gst::prelude::*;
use serde::Serialize;
use tokio::sync::{broadcast, watch};

use super::registry::{OutputReport, Registry};
use super::system::{self, CpuMeter, Throttling};
use super::SCHEMA;
use crate::pipeline::counters::{CounterValues, StreamCounters};
use crate::pipeline::recovery::{CameraStatus, SharedStatus};
use crate::source::identity::unix_time_us;

/// Rates are averaged over this much history, so 10 Hz samples of a 30 fps
/// stream do not jitter between 20 and 40 fps.
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// Samples a WebSocket client may fall behind before it loses the oldest.
const QUEUE: usize = 32;

/// What the `hello` message says about the camera, set by whoever builds
/// the camera pipeline.
#[derive(Debug, Clone, Default)]
pub struct CameraDescription {
    pub camera: serde_json::Value,
    pub encoder: serde_json::Value,
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
    /// Broken frames from the camera thrown away (truncated or corrupt JPEG).
    pub corrupt_frames: u64,
    pub capture_to_encode_ms: Option<f64>,
    /// Viewers per output (see `registry`).
    pub clients: BTreeMap<&'static str, usize>,
    /// Viewers who ever joined, per output.
    pub viewer_joins: BTreeMap<&'static str, u64>,
    /// Each output's state and restarts.
    pub outputs: BTreeMap<&'static str, OutputReport>,
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

impl Sample {
    /// Everyone watching the picture, any output (metrics sockets watch
    /// the board, not the picture).
    pub fn viewers(&self) -> u64 {
        self.clients
            .iter()
            .filter(|(label, _)| **label != "ws")
            .map(|(_, &n)| n as u64)
            .sum()
    }
}

/// The running sampler's outputs, and the handles that follow a rebuilt
/// camera or a new rate (subscribers stay).
#[derive(Clone)]
pub struct Metrics {
    samples: broadcast::Sender<Arc<str>>,
    latest: watch::Receiver<Option<Sample>>,
    camera: Arc<RwLock<CameraDescription>>,
    encoder_queue: watch::Sender<Option<gst::Element>>,
    rate_hz: watch::Sender<u32>,
    /// Seconds a WebSocket client may take nothing before it is dropped.
    client_stall_s: Arc<AtomicU32>,
    pub registry: Registry,
}

impl Metrics {
    /// The `hello` message for a new client, from what runs now.
    pub fn hello(&self) -> String {
        let camera = self.camera.read().map(|c| c.clone()).unwrap_or_default();
        let mut outputs: serde_json::Map<String, serde_json::Value> = self
            .registry
            .outputs()
            .into_iter()
            .map(|(name, report)| (name.to_owned(), report.description))
            .collect();
        outputs.insert("prometheus".to_owned(), "/metrics".into());
        let hello = Hello {
            kind: "hello",
            schema: SCHEMA,
            device: hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            version: env!("CARGO_PKG_VERSION"),
            camera: camera.camera,
            encoder: camera.encoder,
            outputs: outputs.into(),
            sample_rate_hz: *self.rate_hz.borrow(),
        };
        serde_json::to_string(&hello).unwrap_or_default()
    }

    /// Follows a (re)built camera: its description and the queue in front
    /// of its encoder (frames in it are late, not dropped).
    pub fn follow_camera(&self, description: CameraDescription, encoder_queue: gst::Element) {
        if let Ok(mut camera) = self.camera.write() {
            *camera = description;
        }
        self.encoder_queue.send_replace(Some(encoder_queue));
    }

    /// Samples per second from now on.
    pub fn set_rate(&self, rate_hz: u32) {
        self.rate_hz.send_replace(rate_hz.max(1));
    }

    /// How long a client may take nothing before it is dropped (for the
    /// clients that connect from now on).
    pub fn set_client_stall(&self, seconds: u32) {
        self.client_stall_s.store(seconds, Ordering::Relaxed);
    }

    pub fn client_stall(&self) -> Duration {
        Duration::from_secs(self.client_stall_s.load(Ordering::Relaxed).into())
    }

    /// A fresh subscription: its own bounded queue of serialised samples.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.samples.subscribe()
    }

    /// The camera and encoder that run now.
    pub fn camera(&self) -> CameraDescription {
        self.camera.read().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn latest(&self) -> Option<Sample> {
        self.latest.borrow().clone()
    }
}

/// The first message on the socket: what this device is and streams.
#[derive(Debug, Clone, Serialize)]
struct Hello {
    #[serde(rename = "type")]
    kind: &'static str,
    schema: u32,
    device: String,
    version: &'static str,
    camera: serde_json::Value,
    encoder: serde_json::Value,
    outputs: serde_json::Value,
    sample_rate_hz: u32,
}

/// Starts sampling on the current tokio runtime.
pub fn spawn(
    rate_hz: u32,
    client_stall_s: u32,
    counters: StreamCounters,
    registry: Registry,
    camera: SharedStatus,
) -> Metrics {
    let (samples, _) = broadcast::channel(QUEUE);
    let (latest_tx, latest) = watch::channel(None);
    let (queue_tx, queue_rx) = watch::channel(None::<gst::Element>);
    let (rate_tx, mut rate_rx) = watch::channel(rate_hz.max(1));
    let metrics = Metrics {
        samples: samples.clone(),
        latest,
        camera: Arc::default(),
        encoder_queue: queue_tx,
        rate_hz: rate_tx,
        client_stall_s: Arc::new(AtomicU32::new(client_stall_s)),
        registry: registry.clone(),
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
            let in_queue: u32 = queue_rx
                .borrow()
                .as_ref()
                .map_or(0, |queue| queue.property("current-level-buffers"));
            let now = Instant::now();
            let values = counters.read();
            history.push_back((now, values));
            while history.len() > 2 && now.duration_since(history[1].0) >= RATE_WINDOW {
                history.pop_front();
            }
            let mut sample = build_sample(
                &history,
                values,
                u64::from(in_queue),
                &registry,
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
    registry: &Registry,
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
        corrupt_frames: values.corrupt_frames,
        capture_to_encode_ms: (latency_count > 0).then(|| {
            (values.latency_sum_us - first.latency_sum_us) as f64 / latency_count as f64 / 1000.0
        }),
        clients: registry.viewer_counts(),
        viewer_joins: registry.viewer_joins(),
        outputs: registry.outputs(),
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
