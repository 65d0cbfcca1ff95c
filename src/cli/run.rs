//! `edgecam run`: build the camera pipeline and the outputs, then supervise
//! them until a signal or a fatal error.

use anyhow::{anyhow, Context, Result};
use futures_util::StreamExt;
use gst::prelude::*;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::Config;
use crate::control::{apply, watch, ApplyRequest, ConfigService};
use crate::http;
use crate::metrics;
use crate::output::hls::HlsOutput;
use crate::output::rtsp::RtspOutput;
use crate::pipeline::encoder;
use crate::pipeline::inventory::Inventory;
use crate::pipeline::recovery::{self, Recovery};
use crate::pipeline::source_slot::Origin;
use crate::pipeline::CameraPipeline;
use crate::source::{self, v4l2};

/// Runs the service on `config`, read from `path` (None: the built-in
/// default), which remote configuration edits.
pub fn run(config: &Config, path: Option<&std::path::Path>) -> Result<()> {
    gst::init().context("initialising GStreamer")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Bound first: a busy port is reported before any pipeline starts.
    let listener = runtime.block_on(http::bind(&config.http.bind))?;

    let devices = v4l2::capture_devices();
    let source = source::resolve(&config.camera, &devices)?;
    let choice = encoder::choose(config.encoder.kind, encoder::availability)?;
    let camera = &config.camera;
    let encoding = if source.passes_h264_through(camera) {
        format!(
            "none, the camera's H.264 is passed through (the slate uses {})",
            choice.encoder.element_name()
        )
    } else {
        format!("{} ({})", choice.encoder.element_name(), choice.reason)
    };
    tracing::info!(
        "camera: {} at {}x{}@{}; encoder: {encoding}",
        source.describe(),
        camera.width,
        camera.height,
        camera.fps,
    );

    let inventory = Inventory::default();
    let pipeline = CameraPipeline::build(config, &source, &choice)?;
    inventory.register(pipeline.pipeline.upcast_ref());
    let clients = metrics::Clients {
        // An HLS player re-reads the playlist about once a segment.
        hls_recent: std::time::Duration::from_secs(u64::from(config.hls.segment_s * 3).max(5)),
        ..metrics::Clients::default()
    };
    let rtsp = RtspOutput::start(
        &config.rtsp,
        &pipeline.pipeline,
        pipeline.producer.clone(),
        inventory.clone(),
        clients.rtsp.clone(),
    )?;
    pipeline.start()?;
    let name = stream_name(&config.rtsp.path);
    let hls = if config.hls.enabled {
        Some(HlsOutput::start(
            &config.hls,
            &name,
            &pipeline.pipeline,
            &pipeline.producer,
            &inventory,
        )?)
    } else {
        None
    };
    print_urls(config, &name, hls.is_some());

    let hello = hello(
        config,
        &source,
        &choice,
        hls.is_some().then_some(name.as_str()),
    );
    let camera_status = recovery::SharedStatus::default();
    let mut recovery = Recovery::new(
        std::time::Duration::from_millis(config.camera.stall_timeout_ms.into()),
        std::time::Duration::from_secs(config.camera.retry_max_s.into()),
        camera_status.clone(),
    );
    let metrics = {
        let _runtime = runtime.enter();
        metrics::spawn(
            config.metrics.rate_hz,
            pipeline.counters.clone(),
            pipeline.encoder_queue.clone(),
            clients,
            camera_status,
            &hello,
        )
    };
    let (apply_requests, mut applies) = tokio::sync::mpsc::channel::<ApplyRequest>(4);
    let mut running = config.clone();
    let config_service = std::sync::Arc::new(ConfigService::new(
        path.map(std::path::Path::to_path_buf),
        match path {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
            None => crate::config::DEFAULT_TOML.to_owned(),
        },
        config.clone(),
        apply_requests,
        pipeline.counters.clone(),
    ));
    // Edits on disk apply like API writes; the watcher lives until the end.
    let _watcher = match path {
        Some(path) => {
            let _runtime = runtime.enter();
            Some(watch::watch(config_service.clone(), path)?)
        }
        None => None,
    };
    let state = http::AppState {
        counters: pipeline.counters.clone(),
        hls_dir: hls.as_ref().map(|hls| hls.dir.path().to_owned()),
        metrics,
        ws_stall: std::time::Duration::from_secs(config.metrics.ws_stall_s.into()),
        faults: config
            .camera
            .fault_injection
            .then(|| pipeline.sources.faults.clone()),
        controls: pipeline.sources.controls.clone(),
        config: config_service.clone(),
        guard: http::auth::Guard::new(
            &http::auth::admin_token(&config.auth)?,
            Some(config.auth.viewer_token.as_str()),
        ),
        max_body: config.api.max_body_kib as usize * 1024,
    };
    let outputs: Vec<gst::Pipeline> = hls.iter().map(|hls| hls.pipeline().clone()).collect();
    let outcome = runtime.block_on(async {
        let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(http::serve(listener, state, async {
            let _ = http_stopped.await;
        }));
        let mut supervised = Supervised {
            camera: &pipeline,
            outputs: &outputs,
            inventory: &inventory,
            recovery: &mut recovery,
            applies: &mut applies,
            running: &mut running,
            config: config_service.clone(),
        };
        let outcome = supervise(&mut supervised).await;
        let _ = stop_http.send(());
        // Open HTTP connections get a moment to finish; shutdown must stay
        // well under 2 s.
        let _ = tokio::time::timeout(std::time::Duration::from_millis(500), server).await;
        outcome
    });
    tracing::info!(viewers = rtsp.client_count(), "stopping");
    if let Some(hls) = &hls {
        hls.stop();
    }
    pipeline.stop();
    rtsp.stop();
    outcome
}

/// The metrics WebSocket's first message.
fn hello(
    config: &Config,
    source: &source::ResolvedSource,
    choice: &encoder::Choice,
    hls: Option<&str>,
) -> metrics::Hello {
    let camera = &config.camera;
    let encoder = &config.encoder;
    metrics::Hello {
        kind: "hello",
        schema: metrics::SCHEMA,
        device: hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        version: env!("CARGO_PKG_VERSION"),
        camera: serde_json::json!({
            "source": source.describe(),
            "width": camera.width,
            "height": camera.height,
            "fps": camera.fps,
        }),
        encoder: serde_json::json!({
            "element": choice.encoder.element_name(),
            "reason": choice.reason,
            // The camera's own H.264 goes out as it is; the element above
            // then encodes only the slate.
            "passthrough": source.passes_h264_through(camera),
            "bitrate_kbps": encoder.bitrate_kbps,
            "keyframe_interval": encoder.keyframe_interval,
            "profile": encoder.profile.caps_name(),
        }),
        outputs: serde_json::json!({
            "rtsp": { "port": config.rtsp.port, "path": config.rtsp.path },
            "hls": hls.map(|name| serde_json::json!({
                "playlist": format!("/hls/{name}.m3u8"),
                "segment_s": config.hls.segment_s,
                "window": config.hls.window,
            })),
            "metrics_ws": "/api/metrics/ws",
            "prometheus": "/metrics",
        }),
        sample_rate_hz: config.metrics.rate_hz,
    }
}

/// The name of the stream in HLS file names: the RTSP path without its
/// slashes (`/cam` → `cam`, `/front/door` → `front-door`).
pub fn stream_name(rtsp_path: &str) -> String {
    rtsp_path.trim_start_matches('/').replace('/', "-")
}

/// What the supervisor looks after.
struct Supervised<'a> {
    camera: &'a CameraPipeline,
    outputs: &'a [gst::Pipeline],
    inventory: &'a Inventory,
    recovery: &'a mut Recovery,
    /// Configurations to apply, from the remote configuration service.
    applies: &'a mut tokio::sync::mpsc::Receiver<ApplyRequest>,
    /// The configuration the pipeline runs with now.
    running: &'a mut Config,
    /// Reloaded on SIGHUP.
    config: std::sync::Arc<ConfigService>,
}

/// Waits for a stop signal or a fatal error; meanwhile keeps the camera
/// supervised (loss → slate → retries → live), applies configuration
/// changes, and answers SIGUSR1 with the pipeline inventory.
async fn supervise(s: &mut Supervised<'_>) -> Result<()> {
    let (camera, outputs, inventory) = (s.camera, s.outputs, s.inventory);
    let mut camera_bus = camera
        .pipeline
        .bus()
        .context("camera pipeline has no bus")?
        .stream();
    let buses = outputs
        .iter()
        .map(|p| {
            p.bus()
                .map(|bus| bus.stream())
                .context("a pipeline has no bus")
        })
        .collect::<Result<Vec<_>>>()?;
    let mut output_messages = futures_util::stream::select_all(buses);
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut user1 = signal(SignalKind::user_defined1())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = interrupt.recv() => { tracing::info!("SIGINT received"); return Ok(()) }
            _ = terminate.recv() => { tracing::info!("SIGTERM received"); return Ok(()) }
            _ = user1.recv() => inventory.report(),
            // The reload needs this loop to apply it: it runs beside it.
            _ = hangup.recv() => {
                let service = s.config.clone();
                tokio::spawn(async move { service.reload("SIGHUP").await });
            }
            _ = tick.tick() => s.recovery.tick(camera),
            Some(request) = s.applies.recv() => {
                let applied = apply::apply_live(s.running, &request.config, camera, s.recovery)
                    .map_err(|err| format!("{err:#}"));
                // Recorded even when a step failed: rolling back then
                // re-applies every key of the old configuration.
                *s.running = request.config;
                let _ = request.reply.send(applied);
            }
            message = camera_bus.next() => {
                let message = message.ok_or_else(|| anyhow!("camera pipeline bus closed"))?;
                handle_camera_message(camera, s.recovery, &message)?;
            }
            message = output_messages.next(), if !outputs.is_empty() => {
                let message = message.ok_or_else(|| anyhow!("output pipeline buses closed"))?;
                handle_bus_message(&camera.pipeline, &message)?;
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
