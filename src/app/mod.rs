//! The running service. [`run`] wires it together and then waits for a
//! signal; everything slow happens in tasks beside that wait, so a stop
//! request is always heard:
//!
//! ```text
//!  camera task (camera.rs) ── builds the camera pipeline off the loop,
//!     │                        runs recovery, rebuilds on config changes
//!     └─▶ taps (encoded H.264) ─▶ output tasks (outputs.rs): RTSP, HLS,
//!                                  metrics WebSocket; each restarts alone
//!  config service ─▶ apply task (apply.rs) ─▶ camera / outputs / live.rs
//!  HTTP server (http_server.rs) · sampler · systemd watchdog
//! ```

mod apply;
mod board;
mod camera;
mod http_server;
mod live;
mod outputs;
mod tuning;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::config::Config;
use crate::control::{watch, ApplyRequest, ConfigService, Reloaded};
use crate::http::{self, Access};
use crate::metrics::{self, Registry};
use crate::output;
use crate::pipeline::inventory::Inventory;
use crate::pipeline::jpeg::JpegTap;
use crate::pipeline::recovery::SharedStatus;
use crate::pipeline::{Shared, Tap, Taps, Timeline};
use crate::supervise;

/// Every HTTP route, the outputs' included: (method, path, who may use it).
pub fn routes() -> Vec<(&'static str, &'static str, Access)> {
    let mut all: Vec<_> = http::ROUTES.to_vec();
    for output in output::catalogue() {
        all.extend(output.routes().iter().map(|r| (r.method, r.path, r.access)));
    }
    all
}

/// Runs the service on `config`, read from `path` (None: the built-in
/// default), which remote configuration edits.
pub fn run(config: &Config, path: Option<&Path>) -> Result<()> {
    let started = Instant::now();
    tuning::limit_heap_arenas();
    tuning::no_transparent_huge_pages();
    // The first start after an install scans every GStreamer plugin: many
    // seconds on a small board.
    supervise::extend_timeout(
        Duration::from_secs(60),
        "starting: loading GStreamer plugins",
    );
    gst::init().context("initialising GStreamer")?;
    if let Some(path) = path {
        tuning::remove_abandoned_config_files(path);
    }
    warn_about_the_file_limit(config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let outcome = runtime.block_on(serve(config, path, started));
    // A camera open that hangs must not hold the exit: its thread is left.
    runtime.shutdown_timeout(Duration::from_millis(100));
    outcome
}

async fn serve(config: &Config, path: Option<&Path>, started: Instant) -> Result<()> {
    // Bound first: a busy port is reported before any pipeline starts.
    let listener = http::bind(&config.http.bind).await?;
    let guard = http::auth::Guard::new(
        &http::auth::admin_token(&config.auth)?,
        Some(config.auth.viewer_token.as_str()),
    );
    let catalogue = output::catalogue();
    let registry = Registry::default();
    for output in &catalogue {
        registry.declare(output.name());
        registry.declare_viewers(output.viewer_label());
    }
    let shared = Shared::default();
    shared.overlay.set_layers_or_skip(&config.overlay);
    let timeline = Timeline::start();
    let inventory = Inventory::default();
    let taps = Taps {
        encoded: Tap::default(),
        raw: shared.raw.clone(),
        jpeg: JpegTap::spawn(shared.raw.clone(), config.jpeg.clone(), inventory.clone()),
    };
    let camera_status = SharedStatus::default();
    let metrics = metrics::spawn(
        config.metrics.rate_hz,
        config.metrics.ws_stall_s,
        shared.counters.clone(),
        registry.clone(),
        camera_status.clone(),
    );
    supervise::watchdog::spawn(shared.counters.clone(), metrics.clone(), started);

    let (apply_requests, applies) = tokio::sync::mpsc::channel::<ApplyRequest>(4);
    let config_service = Arc::new(ConfigService::new(
        path.map(Path::to_path_buf),
        match path {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
            None => crate::config::DEFAULT_TOML.to_owned(),
        },
        config.clone(),
        apply_requests,
        shared.counters.clone(),
    ));
    // Edits on disk apply like API writes; the watcher lives until the end.
    let _watcher = match path {
        Some(path) => Some(watch::watch(config_service.clone(), path)?),
        None => None,
    };

    let camera = camera::Camera::spawn(camera::Parts {
        shared: shared.clone(),
        taps: taps.clone(),
        timeline: timeline.clone(),
        inventory: inventory.clone(),
        metrics: metrics.clone(),
        status: camera_status,
    });
    // The status LED blinks "starting" from here on.
    if let Some(lines) = crate::gpio::open(&config.gpio) {
        board::spawn(
            lines,
            board::Parts {
                counters: shared.counters.clone(),
                metrics: metrics.clone(),
                config: config_service.clone(),
                camera: camera.clone(),
                runtime: tokio::runtime::Handle::current(),
            },
        );
    }
    let taps_for_live = taps.clone();
    let outputs = outputs::Outputs::spawn(
        catalogue.clone(),
        outputs::Parts {
            taps,
            timeline,
            registry,
            inventory: inventory.clone(),
            metrics: metrics.clone(),
        },
    );
    let fault_injection = Arc::new(AtomicBool::new(config.camera.fault_injection));
    let state = http::AppState {
        counters: shared.counters.clone(),
        metrics: metrics.clone(),
        inventory: inventory.clone(),
        faults: shared.faults.clone(),
        fault_injection: fault_injection.clone(),
        break_output: {
            let outputs = outputs.clone();
            Arc::new(move |name: &str| {
                let (outputs, name) = (outputs.clone(), name.to_owned());
                Box::pin(async move { outputs.break_output(name).await })
            })
        },
        output_facts: Arc::new(
            catalogue
                .iter()
                .map(|o| {
                    let facts = crate::http::OutputFacts {
                        viewer_label: o.viewer_label(),
                        settings: o.settings(),
                    };
                    (o.name(), facts)
                })
                .collect(),
        ),
        controls: shared.controls.clone(),
        config: config_service.clone(),
        guard: guard.clone(),
        max_body: config.api.max_body_kib as usize * 1024,
    };
    let output_routes = catalogue.iter().flat_map(|o| o.routes()).collect();
    let router = http::router(state, output_routes);
    let http = Arc::new(tokio::sync::Mutex::new(http_server::HttpServer::start(
        listener,
        router,
        &config.http,
    )));

    let mut signals = Signals::new()?;
    let starting = async {
        // The outputs listen while the camera opens (which can be slow).
        let restart_all = catalogue.iter().map(|o| o.name()).collect();
        let (camera_started, outputs_started) =
            tokio::join!(camera.start(config), outputs.apply(config, restart_all));
        camera_started.map_err(|err| anyhow!("{err}"))?;
        outputs_started.map_err(|err| anyhow!("{err}"))
    };
    let outcome = tokio::select! {
        started = starting => started,
        () = signals.stop_requested() => return stop(&http, &outputs, &camera).await,
    };
    if let Err(err) = outcome {
        stop(&http, &outputs, &camera).await?;
        return Err(err);
    }
    print_urls(config);

    overlay_values(shared.overlay.clone(), metrics.clone());
    let live = live::Live {
        jpeg: taps_for_live.jpeg,
        overlay: shared.overlay.clone(),
        camera: camera.clone(),
        controls: shared.controls.clone(),
        metrics,
        fault_injection,
        http: http.clone(),
        guard,
    };
    tokio::spawn(apply::run(
        applies,
        config.clone(),
        camera.clone(),
        outputs.clone(),
        live,
    ));
    signals.wait(&inventory, &config_service).await;
    stop(&http, &outputs, &camera).await
}

/// Sends a task the command `command` makes around a reply channel, and
/// waits for the reply; `stopped` when the task is gone.
async fn ask<C, T>(
    commands: &tokio::sync::mpsc::Sender<C>,
    command: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> C,
    stopped: T,
) -> T {
    let (reply, answer) = tokio::sync::oneshot::channel();
    if commands.send(command(reply)).await.is_err() {
        return stopped;
    }
    answer.await.unwrap_or(stopped)
}

/// Stops everything at once, each part given at most a second: a part
/// that hangs (a camera open) is left behind rather than holding the exit.
async fn stop(
    http: &tokio::sync::Mutex<http_server::HttpServer>,
    outputs: &outputs::Outputs,
    camera: &camera::Camera,
) -> Result<()> {
    supervise::stopping();
    let limit = Duration::from_secs(1);
    let (_, outputs_stopped, camera_stopped) = tokio::join!(
        async { http.lock().await.stop().await },
        tokio::time::timeout(limit, outputs.stop()),
        tokio::time::timeout(limit, camera.stop()),
    );
    if outputs_stopped.is_err() || camera_stopped.is_err() {
        tracing::warn!("stopping took too long; leaving the rest behind");
    }
    Ok(())
}

/// The signals the service answers.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
    user1: Signal,
    hangup: Signal,
}

impl Signals {
    fn new() -> Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            user1: signal(SignalKind::user_defined1())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Completes on SIGINT or SIGTERM.
    async fn stop_requested(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => tracing::info!("SIGINT received"),
            _ = self.terminate.recv() => tracing::info!("SIGTERM received"),
        }
    }

    /// Answers SIGUSR1 (the pipeline inventory) and SIGHUP (reload) until
    /// a stop signal.
    async fn wait(&mut self, inventory: &Inventory, config: &Arc<ConfigService>) {
        loop {
            tokio::select! {
                _ = self.interrupt.recv() => return tracing::info!("SIGINT received"),
                _ = self.terminate.recv() => return tracing::info!("SIGTERM received"),
                _ = self.user1.recv() => inventory.report(),
                // The reload waits for its apply: it runs beside the loop.
                _ = self.hangup.recv() => {
                    let service = config.clone();
                    tokio::spawn(async move {
                        let told = supervise::reloading("SIGHUP");
                        if service.reload("SIGHUP").await == Reloaded::Unchanged {
                            tracing::info!("SIGHUP: configuration file re-read, unchanged");
                        }
                        if told {
                            supervise::ready("configuration reloaded");
                        }
                    });
                }
            }
        }
    }
}

/// A connection cap the file limit cannot hold would end in "too many open
/// files" for the pipelines: say so at start.
fn warn_about_the_file_limit(config: &Config) {
    // The pipelines, the camera and the RTSP viewers need their share.
    const RESERVE: u64 = 256;
    if let Some(limit) = tuning::open_files_limit() {
        let wanted = u64::from(config.http.max_connections) + RESERVE;
        if wanted > limit {
            tracing::warn!(
                "http.max_connections = {} leaves too little of the open-file limit ({limit}) \
                 for the camera and the outputs: lower it, or raise LimitNOFILE",
                config.http.max_connections
            );
        }
    }
}

/// Keeps the overlay's template values (`{fps}`, `{viewers}`, …) within a
/// second of the metrics.
fn overlay_values(overlay: crate::overlay::Overlay, metrics: metrics::Metrics) {
    let camera = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Some(sample) = metrics.latest() else {
                continue;
            };
            overlay.set_values(crate::overlay::Values {
                camera: camera.clone(),
                fps: sample.encoded_fps,
                bitrate_kbps: sample.bitrate_kbps,
                viewers: sample.viewers(),
                temp_c: sample.soc_temp_c,
            });
        }
    });
}

/// Tells the user where to point a player.
fn print_urls(config: &Config) {
    let mut hosts: Vec<String> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|iface| !iface.is_loopback() && iface.ip().is_ipv4())
        .map(|iface| iface.ip().to_string())
        .collect();
    if hosts.is_empty() {
        hosts.push("127.0.0.1".to_owned());
    }
    let http_port = config.http.bind.rsplit(':').next().unwrap_or("8080");
    let name = output::hls::stream_name(&config.rtsp.path);
    println!("edgecam is streaming. Open:");
    for host in hosts {
        println!("  http://{host}:{http_port}/   (dashboard: video and live graphs)");
        if config.rtsp.enabled {
            println!(
                "  rtsp://{host}:{}{}   (VLC, ffplay, an NVR)",
                config.rtsp.port, config.rtsp.path
            );
        }
        if config.webrtc.enabled {
            println!("  http://{host}:{http_port}/whep/{name}   (WebRTC: WHEP players)");
        }
        if config.hls.enabled {
            println!("  http://{host}:{http_port}/hls/{name}.m3u8   (HLS: Safari, VLC, hls.js)");
        }
        if config.mjpeg.enabled {
            println!(
                "  http://{host}:{http_port}/stream.mjpeg   (MJPEG: Home Assistant, OctoPrint, <img>)"
            );
            println!("  http://{host}:{http_port}/snapshot.jpg   (a JPEG snapshot)");
        }
    }
}
