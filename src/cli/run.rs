//! `edgecam run`: build the camera pipeline and the outputs, then supervise
//! them until a signal or a fatal error.

use anyhow::{anyhow, Context, Result};
use futures_util::StreamExt;
use gst::prelude::*;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::Config;
use crate::output::rtsp::RtspOutput;
use crate::pipeline::encoder;
use crate::pipeline::inventory::Inventory;
use crate::pipeline::CameraPipeline;
use crate::source::{self, v4l2};

pub fn run(config: &Config) -> Result<()> {
    gst::init().context("initialising GStreamer")?;
    let devices = v4l2::capture_devices();
    let source = source::resolve(&config.camera, &devices)?;
    let choice = encoder::choose(config.encoder.kind, encoder::availability)?;
    let camera = &config.camera;
    tracing::info!(
        "camera: {} at {}x{}@{}; encoder: {} ({})",
        source.describe(),
        camera.width,
        camera.height,
        camera.fps,
        choice.encoder.element_name(),
        choice.reason
    );

    let inventory = Inventory::default();
    let pipeline = CameraPipeline::build(config, &source, &choice)?;
    inventory.register(pipeline.pipeline.upcast_ref());
    let rtsp = RtspOutput::start(
        &config.rtsp,
        &pipeline.pipeline,
        pipeline.producer.clone(),
        inventory.clone(),
    )?;
    pipeline.start()?;
    print_urls(config);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let outcome = runtime.block_on(supervise(&pipeline, &inventory));
    tracing::info!(viewers = rtsp.client_count(), "stopping");
    pipeline.stop();
    rtsp.stop();
    outcome
}

/// Waits for a stop signal or a fatal pipeline error; answers SIGUSR1 with
/// the pipeline inventory.
async fn supervise(pipeline: &CameraPipeline, inventory: &Inventory) -> Result<()> {
    let mut bus = pipeline
        .pipeline
        .bus()
        .context("camera pipeline has no bus")?
        .stream();
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut user1 = signal(SignalKind::user_defined1())?;
    loop {
        tokio::select! {
            _ = interrupt.recv() => { tracing::info!("SIGINT received"); return Ok(()) }
            _ = terminate.recv() => { tracing::info!("SIGTERM received"); return Ok(()) }
            _ = user1.recv() => inventory.report(),
            message = bus.next() => {
                let message = message.ok_or_else(|| anyhow!("camera pipeline bus closed"))?;
                handle_bus_message(&pipeline.pipeline, &message)?;
            }
        }
    }
}

/// Logs what matters; a pipeline error or end of stream is fatal (for now:
/// recovery arrives with the real-camera work).
fn handle_bus_message(pipeline: &gst::Pipeline, message: &gst::Message) -> Result<()> {
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
        MessageView::Eos(_) => Err(anyhow!("the camera stream ended")),
        MessageView::Warning(warning) => {
            tracing::warn!("{from}: {}", warning.error());
            Ok(())
        }
        MessageView::StateChanged(change) if message.src() == Some(pipeline.upcast_ref()) => {
            if change.current() == gst::State::Playing {
                tracing::info!("camera pipeline is playing");
            }
            Ok(())
        }
        _ => Ok(()),
    }
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
    println!("edgecam is streaming. Open:");
    for host in hosts {
        println!(
            "  rtsp://{host}:{}{}   (VLC, ffplay, an NVR)",
            config.rtsp.port, config.rtsp.path
        );
    }
}
