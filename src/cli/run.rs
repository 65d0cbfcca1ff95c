//! `edgecam run`: start the data plane (camera pipeline and outputs) and
//! the HTTP server, then supervise until a signal or a fatal error —
//! applying configuration changes live, or by replacing the data plane.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

use anyhow::{anyhow, Context, Result};
use futures_util::StreamExt;
use gst::prelude::*;
use tokio::signal::unix::{signal, SignalKind};

use super::plane::{self, DataPlane};
use crate::config::diff::{self, Effect};
use crate::config::Config;
use crate::control::{apply, watch, ApplyRequest, ConfigService, Reloaded};
use crate::http;
use crate::metrics;
use crate::pipeline::inventory::Inventory;
use crate::pipeline::recovery::{self, Recovery};
use crate::pipeline::source_slot::Origin;
use crate::pipeline::{CameraPipeline, Shared};
use crate::supervise;

pub use plane::stream_name;

/// Runs the service on `config`, read from `path` (None: the built-in
/// default), which remote configuration edits.
pub fn run(config: &Config, path: Option<&std::path::Path>) -> Result<()> {
    let started = std::time::Instant::now();
    limit_heap_arenas();
    no_transparent_huge_pages();
    // The first start after an install scans every GStreamer plugin: many
    // seconds on a small board.
    supervise::extend_timeout(
        std::time::Duration::from_secs(60),
        "starting: loading GStreamer plugins",
    );
    gst::init().context("initialising GStreamer")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Bound first: a busy port is reported before any pipeline starts.
    let listener = runtime.block_on(http::bind(&config.http.bind))?;
    let guard = http::auth::Guard::new(
        &http::auth::admin_token(&config.auth)?,
        Some(config.auth.viewer_token.as_str()),
    );

    let context = plane::Context {
        shared: Shared::default(),
        inventory: Inventory::default(),
        clients: metrics::Clients {
            // An HLS player re-reads the playlist about once a segment.
            hls_recent: std::time::Duration::from_secs(u64::from(config.hls.segment_s * 3).max(5)),
            ..metrics::Clients::default()
        },
        camera_status: recovery::SharedStatus::default(),
        hls_dir: Arc::new(RwLock::new(None)),
    };
    let plane = DataPlane::start(config, &context)?;
    print_urls(config, &stream_name(&config.rtsp.path), plane.has_hls());

    let metrics = {
        let _runtime = runtime.enter();
        metrics::spawn(
            config.metrics.rate_hz,
            context.shared.counters.clone(),
            plane.camera.encoder_queue.clone(),
            context.clients.clone(),
            context.camera_status.clone(),
            &plane.hello,
        )
    };
    {
        let _runtime = runtime.enter();
        supervise::watchdog::spawn(context.shared.counters.clone(), metrics.clone(), started);
    }
    let (apply_requests, applies) = tokio::sync::mpsc::channel::<ApplyRequest>(4);
    let config_service = Arc::new(ConfigService::new(
        path.map(std::path::Path::to_path_buf),
        match path {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
            None => crate::config::DEFAULT_TOML.to_owned(),
        },
        config.clone(),
        apply_requests,
        context.shared.counters.clone(),
    ));
    // Edits on disk apply like API writes; the watcher lives until the end.
    let _watcher = match path {
        Some(path) => {
            let _runtime = runtime.enter();
            Some(watch::watch(config_service.clone(), path)?)
        }
        None => None,
    };
    let live = LiveSettings {
        metrics: metrics.clone(),
        ws_stall_s: Arc::new(AtomicU32::new(config.metrics.ws_stall_s)),
        fault_injection: Arc::new(AtomicBool::new(config.camera.fault_injection)),
    };
    let state = http::AppState {
        counters: context.shared.counters.clone(),
        hls_dir: context.hls_dir.clone(),
        metrics,
        ws_stall_s: live.ws_stall_s.clone(),
        faults: context.shared.faults.clone(),
        fault_injection: live.fault_injection.clone(),
        controls: context.shared.controls.clone(),
        config: config_service.clone(),
        guard,
        max_body: config.api.max_body_kib as usize * 1024,
    };
    let mut supervisor = Supervisor {
        plane: Some(plane),
        context,
        live,
        applies,
        running: config.clone(),
        config: config_service,
        http: HttpServer {
            state,
            stop: None,
            task: None,
        },
    };
    let outcome = runtime.block_on(async {
        supervisor.http.serve(listener);
        let outcome = supervisor.supervise().await;
        supervise::stopping();
        supervisor.http.stop().await;
        outcome
    });
    if let Some(plane) = supervisor.plane.take() {
        plane.stop(&supervisor.context);
    }
    outcome
}

/// The HTTP server: one at a time, replaced when `http.bind` changes.
struct HttpServer {
    state: http::AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<()>>>,
}

impl HttpServer {
    /// Serves on `listener`; a server already running finishes the
    /// requests it has (the one that moved it included) and stops.
    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(http::serve(listener, self.state.clone(), async {
            let _ = stopped.await;
        }));
        if let Some(old) = self.stop.replace(stop) {
            let _ = old.send(());
        }
        self.task = Some(task);
    }

    /// Moves the server to `bind`. The new address is bound first: when it
    /// cannot be, the old server simply carries on.
    async fn rebind(&mut self, bind: &str) -> Result<()> {
        let listener = http::bind(bind).await?;
        self.serve(listener);
        tracing::info!("HTTP now on {bind}");
        Ok(())
    }

    /// Stops serving; open requests get a moment to finish (shutdown must
    /// stay well under 2 s).
    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_millis(500), task).await;
        }
    }
}

/// glibc gives threads their own heaps, up to eight per core, and each keeps
/// what it once held. edgecam starts a thread per camera (re)open and
/// GStreamer more per pipeline: on a small board that added a few MB of
/// resident memory over a series of replugs. Two heaps are plenty here.
///
/// Frames (hundreds of KB) are big enough for their own mappings, which go
/// back to the kernel when freed — but glibc raises that threshold to the
/// size of each such block freed, and from then on frames come from the
/// heaps and their holes stay resident: about 250 KB more per replug in the
/// VM test. A fixed threshold keeps them mapped (measured flat over 20).
fn limit_heap_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only adjusts allocator parameters; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Where the kernel backs anonymous memory with 2 MB pages whenever it can
/// (Debian's default), a thread stack that happens to lie on a 2 MB
/// boundary takes a whole 2 MB page the moment it is touched, and keeps it
/// when glibc caches the stack for the next thread. edgecam starts threads
/// at every camera reopen, so resident memory stepped up by exactly 2 MB at
/// random replugs (seen in the VM test: an 8 MB stack mapping with 2048 KB
/// resident). A video service gains nothing from huge pages; a small board
/// gains predictable memory. Failure (an old kernel) changes nothing.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_THP_DISABLE takes plain integers and only
    // sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Settings outside the data plane that change live.
pub struct LiveSettings {
    pub metrics: metrics::Metrics,
    pub ws_stall_s: Arc<AtomicU32>,
    pub fault_injection: Arc<AtomicBool>,
}

/// What the supervisor looks after.
struct Supervisor {
    /// Always Some, except for the moment one plane replaces another.
    plane: Option<DataPlane>,
    context: plane::Context,
    live: LiveSettings,
    /// Configurations to apply, from the remote configuration service.
    applies: tokio::sync::mpsc::Receiver<ApplyRequest>,
    /// The configuration that runs now.
    running: Config,
    /// Reloaded on SIGHUP.
    config: Arc<ConfigService>,
    http: HttpServer,
}

/// Why watching one plane ended.
enum Next {
    Stop,
    Replace(Box<ApplyRequest>),
}

impl Supervisor {
    /// Supervises planes until a stop signal or a fatal error.
    async fn supervise(&mut self) -> Result<()> {
        loop {
            match self.watch().await? {
                Next::Stop => return Ok(()),
                Next::Replace(request) => {
                    let outcome = self.replace(request.config);
                    let _ = request
                        .reply
                        .send(outcome.map_err(|err| format!("{err:#}")));
                }
            }
        }
    }

    /// Stops the running plane and starts one for `wanted`; if that fails,
    /// the old configuration is started again (and failing that, edgecam
    /// gives up: a supervisor restarts it).
    fn replace(&mut self, wanted: Config) -> Result<()> {
        let changed: Vec<String> = diff::changes(&self.running, &wanted)
            .into_iter()
            .map(|c| c.key)
            .collect();
        tracing::info!("rebuilding the pipeline for {}", changed.join(", "));
        if let Some(old) = self.plane.take() {
            old.stop(&self.context);
        }
        match DataPlane::start(&wanted, &self.context) {
            Ok(plane) => {
                self.adopt(plane, wanted);
                Ok(())
            }
            Err(err) => {
                tracing::warn!("the new pipeline did not start: {err:#}; restarting the old one");
                let running = self.running.clone();
                let plane = DataPlane::start(&running, &self.context)
                    .context("restarting the previous pipeline")?;
                self.adopt(plane, running);
                Err(err)
            }
        }
    }

    fn adopt(&mut self, plane: DataPlane, config: Config) {
        self.live
            .metrics
            .retarget(plane.camera.encoder_queue.clone(), &plane.hello);
        self.live
            .fault_injection
            .store(config.camera.fault_injection, Ordering::Relaxed);
        self.plane = Some(plane);
        self.running = config;
    }

    /// Watches the running plane: keeps the camera supervised (loss →
    /// slate → retries → live), applies live changes, answers SIGUSR1 with
    /// the pipeline inventory; returns on a stop signal or a change that
    /// needs a new plane.
    async fn watch(&mut self) -> Result<Next> {
        let plane = self.plane.as_mut().context("no pipeline is running")?;
        let mut camera_bus = plane
            .camera
            .pipeline
            .bus()
            .context("camera pipeline has no bus")?
            .stream();
        let buses = plane
            .outputs
            .iter()
            .map(|p| {
                p.bus()
                    .map(|bus| bus.stream())
                    .context("a pipeline has no bus")
            })
            .collect::<Result<Vec<_>>>()?;
        let has_outputs = !buses.is_empty();
        let mut output_messages = futures_util::stream::select_all(buses);
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut user1 = signal(SignalKind::user_defined1())?;
        let mut hangup = signal(SignalKind::hangup())?;
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = interrupt.recv() => { tracing::info!("SIGINT received"); return Ok(Next::Stop) }
                _ = terminate.recv() => { tracing::info!("SIGTERM received"); return Ok(Next::Stop) }
                _ = user1.recv() => self.context.inventory.report(),
                // The reload needs this loop to apply it: it runs beside it.
                _ = hangup.recv() => {
                    let service = self.config.clone();
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
                _ = tick.tick() => plane.recovery.tick(&plane.camera),
                Some(request) = self.applies.recv() => {
                    let live_only = diff::changes(&self.running, &request.config)
                        .iter()
                        .all(|c| c.effect == Effect::Live);
                    if !live_only {
                        return Ok(Next::Replace(Box::new(request)));
                    }
                    let rebound = if request.config.http.bind == self.running.http.bind {
                        Ok(())
                    } else {
                        self.http.rebind(&request.config.http.bind).await
                    };
                    let applied = rebound
                        .and_then(|()| {
                            apply::apply_live(
                                &self.running,
                                &request.config,
                                &plane.camera,
                                &mut plane.recovery,
                                &self.live,
                            )
                        })
                        .map_err(|err| format!("{err:#}"));
                    // Recorded even when a step failed: rolling back then
                    // re-applies every key of the old configuration.
                    self.running = request.config;
                    let _ = request.reply.send(applied);
                }
                message = camera_bus.next() => {
                    let message = message.ok_or_else(|| anyhow!("camera pipeline bus closed"))?;
                    handle_camera_message(&plane.camera, &mut plane.recovery, &message)?;
                }
                message = output_messages.next(), if has_outputs => {
                    let message = message.ok_or_else(|| anyhow!("output pipeline buses closed"))?;
                    handle_bus_message(&plane.camera.pipeline, &message)?;
                }
            }
        }
    }
}

/// A camera-source error is a camera loss (slate and retries), not the end;
/// a removed source's last messages are stale; the rest is handled as for
/// any pipeline.
fn handle_camera_message(
    camera: &CameraPipeline,
    recovery: &mut Recovery,
    message: &gst::Message,
) -> Result<()> {
    if let (gst::MessageView::Error(err), Some(src)) = (message.view(), message.src()) {
        match camera.sources.origin(src) {
            Origin::LiveSource => {
                let debug = err.debug().map(|d| d.to_string()).unwrap_or_default();
                let reason = format!("{}: {} ({debug})", src.path_string(), err.error());
                recovery.source_failed(camera, &reason);
                return Ok(());
            }
            Origin::RemovedSource => {
                tracing::debug!("error from a replaced camera source: {}", err.error());
                return Ok(());
            }
            Origin::Pipeline => {}
        }
    }
    handle_bus_message(&camera.pipeline, message)
}

/// Logs what matters; a pipeline error or end of stream is fatal (for now:
/// recovery arrives with the real-camera work).
fn handle_bus_message(camera: &gst::Pipeline, message: &gst::Message) -> Result<()> {
    use gst::MessageView;
    let from = message
        .src()
        .map(|s| s.path_string().to_string())
        .unwrap_or_default();
    match message.view() {
        MessageView::Error(err) => Err(anyhow!(
            "{from}: {} ({})",
            err.error(),
            err.debug().map(|d| d.to_string()).unwrap_or_default()
        )),
        MessageView::Eos(_) => Err(anyhow!("{from}: the stream ended")),
        MessageView::Warning(warning) => {
            tracing::warn!("{from}: {}", warning.error());
            Ok(())
        }
        MessageView::StateChanged(change) if message.src() == Some(camera.upcast_ref()) => {
            if change.current() == gst::State::Playing {
                tracing::info!("camera pipeline is playing");
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Tells the user where to point a player.
fn print_urls(config: &Config, name: &str, hls: bool) {
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
    println!("edgecam is streaming. Open:");
    for host in hosts {
        println!("  http://{host}:{http_port}/   (dashboard: video and live graphs)");
        println!(
            "  rtsp://{host}:{}{}   (VLC, ffplay, an NVR)",
            config.rtsp.port, config.rtsp.path
        );
        if hls {
            println!("  http://{host}:{http_port}/hls/{name}.m3u8   (HLS: Safari, VLC, hls.js)");
        }
    }
}
