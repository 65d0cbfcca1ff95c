//! The camera, owned by one task. It builds the camera pipeline (off the
//! event loop: a V4L2 open can take seconds), hands its encoded stream to
//! the taps, watches its bus, runs recovery's steps and carries out their
//! actions, and rebuilds the pipeline when the configuration asks for it —
//! while the outputs stay subscribed to the taps and their viewers stay.

mod build;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::StreamExt;
use gst::prelude::*;
use tokio::sync::{mpsc, oneshot};

use crate::config::{Config, EncoderConfig, OverlayConfig};
use crate::control::ApplyError;
use crate::metrics::{CameraDescription, Metrics};
use crate::pipeline::inventory::Inventory;
use crate::pipeline::recovery::{Action, Recovery, SharedStatus, Timing};
use crate::pipeline::source_slot::Origin;
use crate::pipeline::{CameraPipeline, Shared, Taps, Timeline};
use crate::source::v4l2;

/// What the camera is built with and reports to; it outlives pipelines.
#[derive(Clone)]
pub struct Parts {
    pub shared: Shared,
    pub taps: Taps,
    pub timeline: Timeline,
    pub inventory: Inventory,
    pub metrics: Metrics,
    pub status: SharedStatus,
}

/// The handle the rest of the app talks to the camera through.
#[derive(Clone)]
pub struct Camera {
    commands: mpsc::Sender<Command>,
}

enum Command {
    /// Build (or rebuild) the camera for `config`.
    Start {
        config: Box<Config>,
        reply: oneshot::Sender<Result<(), ApplyError>>,
    },
    SetBitrate {
        encoder: EncoderConfig,
        reply: oneshot::Sender<Result<(), String>>,
    },
    SetTiming(Timing),
    /// Privacy mode on or off.
    SetPrivacy(bool, oneshot::Sender<()>),
    /// The overlay's layers changed (they are drawn by the overlay itself;
    /// the camera only cares whether its H.264 can still pass through).
    SetOverlay(Box<OverlayConfig>, oneshot::Sender<Result<(), String>>),
    Stop(oneshot::Sender<()>),
}

/// How long a camera pipeline that failed waits before it is rebuilt;
/// doubles up to [`MAX_REBUILD_WAIT`].
const FIRST_REBUILD_WAIT: Duration = Duration::from_secs(1);
const MAX_REBUILD_WAIT: Duration = Duration::from_secs(30);

impl Camera {
    /// Starts the task that owns the camera (nothing is built yet).
    pub fn spawn(parts: Parts) -> Self {
        let (commands, receiver) = mpsc::channel(8);
        tokio::spawn(
            Actor {
                parts,
                current: None,
                reopening: None,
                rebuild: None,
            }
            .run(receiver),
        );
        Self { commands }
    }

    /// Builds the camera for `config`, replacing the one that runs. When
    /// the new one cannot run, the old one runs again and the error says
    /// why.
    pub async fn start(&self, config: &Config) -> Result<(), ApplyError> {
        let config = Box::new(config.clone());
        super::ask(
            &self.commands,
            |reply| Command::Start { config, reply },
            Err(ApplyError::Failed("edgecam is stopping".to_owned())),
        )
        .await
    }

    pub async fn set_bitrate(&self, encoder: &EncoderConfig) -> Result<(), String> {
        let encoder = encoder.clone();
        super::ask(
            &self.commands,
            |reply| Command::SetBitrate { encoder, reply },
            Err("edgecam is stopping".to_owned()),
        )
        .await
    }

    pub async fn set_timing(&self, timing: Timing) {
        let _ = self.commands.send(Command::SetTiming(timing)).await;
    }

    /// Privacy mode: closes the camera and shows the privacy picture, or
    /// opens the camera again.
    pub async fn set_privacy(&self, on: bool) {
        super::ask(&self.commands, |reply| Command::SetPrivacy(on, reply), ()).await;
    }

    /// Follows new overlay layers: a camera whose H.264 is passed through
    /// is rebuilt to decode it once a layer draws, and back when none does.
    pub async fn set_overlay(&self, overlay: &OverlayConfig) -> Result<(), String> {
        let overlay = Box::new(overlay.clone());
        super::ask(
            &self.commands,
            |reply| Command::SetOverlay(overlay, reply),
            Err("edgecam is stopping".to_owned()),
        )
        .await
    }

    /// Stops the camera pipeline.
    pub async fn stop(&self) {
        super::ask(&self.commands, Command::Stop, ()).await;
    }
}

/// The camera pipeline that runs, and what watches it.
struct Current {
    pipeline: Arc<CameraPipeline>,
    recovery: Recovery,
    config: Config,
    description: CameraDescription,
    bus: gst::bus::BusStream,
    v4l2: bool,
    /// The camera sends H.264 that could pass through, and whether it does
    /// (it cannot while overlay layers draw on the picture).
    sends_h264: bool,
    passthrough: bool,
    /// Camera pipelines built since start, this one included.
    builds: u64,
}

impl Current {
    /// Privacy mode: the camera is closed on purpose, so nothing is lost.
    fn private(&self) -> bool {
        self.config.privacy.enabled
    }

    fn status(&self) -> crate::pipeline::recovery::CameraStatus {
        let mut status = self.recovery.status();
        status.builds = self.builds;
        if self.private() {
            status.state = "private";
            status.problem = None;
        }
        status
    }
}

struct Actor {
    parts: Parts,
    current: Option<Current>,
    /// A reopening of the source (after a loss) in flight.
    reopening: Option<tokio::task::JoinHandle<Result<()>>>,
    /// The pipeline failed and is rebuilt later.
    rebuild: Option<Rebuild>,
}

/// A camera pipeline to build again, when, and the wait it came after.
struct Rebuild {
    at: Instant,
    wait: Duration,
    config: Config,
}

impl Actor {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Stop(reply)) => {
                        self.stop().await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(command) => self.handle(command).await,
                    None => return self.stop().await,
                },
                message = next_message(&mut self.current) => self.on_message(&message),
                reopened = wait_for(&mut self.reopening) => self.on_reopened(reopened),
                _ = tick.tick() => self.on_tick().await,
            }
        }
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Start { config, reply } => {
                let outcome = if self.reopening.is_some() {
                    Err(ApplyError::Busy(
                        "the camera is being reopened after a loss; try again when it is back"
                            .to_owned(),
                    ))
                } else {
                    self.rebuild = None;
                    self.replace(*config).await.map_err(ApplyError::Failed)
                };
                let _ = reply.send(outcome);
            }
            Command::SetBitrate { encoder, reply } => {
                let outcome = match &mut self.current {
                    Some(current) => {
                        current.config.encoder = encoder;
                        let set = current
                            .pipeline
                            .set_bitrate(&current.config.encoder)
                            .map_err(|err| format!("{err:#}"));
                        self.describe();
                        set
                    }
                    None => Err("no camera pipeline is running".to_owned()),
                };
                let _ = reply.send(outcome);
            }
            Command::SetTiming(timing) => {
                if let Some(current) = &mut self.current {
                    current.recovery.set_timing(timing);
                    current.config.camera.stall_timeout_ms =
                        timing.stall_timeout.as_millis() as u32;
                    current.config.camera.retry_max_s = timing.max_backoff.as_secs() as u32;
                }
            }
            Command::SetPrivacy(on, reply) => {
                self.set_privacy(on).await;
                let _ = reply.send(());
            }
            Command::SetOverlay(overlay, reply) => {
                let _ = reply.send(self.set_overlay(*overlay).await);
            }
            Command::Stop(_) => {}
        }
    }

    async fn set_overlay(&mut self, overlay: OverlayConfig) -> Result<(), String> {
        if let Some(rebuild) = &mut self.rebuild {
            rebuild.config.overlay = overlay.clone();
        }
        let Some(current) = &mut self.current else {
            return Ok(());
        };
        let passthrough = current.sends_h264 && !overlay.draws();
        current.config.overlay = overlay;
        if passthrough == current.passthrough {
            return Ok(());
        }
        if self.reopening.is_some() {
            return Err(
                "the camera is being reopened after a loss; try again when it is back".to_owned(),
            );
        }
        tracing::info!(
            "rebuilding the camera: its H.264 {}",
            if passthrough {
                "can pass through again (no overlay layer draws)"
            } else {
                "must be decoded for overlay layers to be drawn on it"
            }
        );
        let wanted = current.config.clone();
        self.replace(wanted).await
    }

    async fn set_privacy(&mut self, on: bool) {
        if let Some(rebuild) = &mut self.rebuild {
            rebuild.config.privacy.enabled = on;
        }
        // A reopening in flight would open the camera behind our back.
        if let Some(reopening) = self.reopening.take() {
            let _ = reopening.await;
        }
        let Some(current) = &mut self.current else {
            return;
        };
        if current.private() == on {
            return;
        }
        current.config.privacy.enabled = on;
        let pipeline = current.pipeline.clone();
        if on {
            tracing::info!("privacy mode: the camera is closed");
            let _ = tokio::task::spawn_blocking(move || pipeline.sources.close()).await;
        } else {
            tracing::info!("privacy mode ended: opening the camera");
            current.recovery = Recovery::reopen_now(timing(&current.config), Instant::now());
        }
        self.parts.status.set(current.status());
    }

    /// Stops what runs and builds `wanted`; when that fails, builds what
    /// ran before again. Errors say why `wanted` did not run.
    async fn replace(&mut self, wanted: Config) -> Result<(), String> {
        let previous = self.current.as_ref().map(|c| c.config.clone());
        if let Some(previous) = &previous {
            let changed: Vec<String> = crate::config::diff::changes(previous, &wanted)
                .into_iter()
                .filter(|c| c.effect == crate::config::diff::Effect::Camera)
                .map(|c| c.key)
                .collect();
            if !changed.is_empty() {
                tracing::info!("rebuilding the camera for {}", changed.join(", "));
            }
        }
        self.stop().await;
        let error = match self.build(&wanted).await {
            Ok(()) => return Ok(()),
            Err(err) => format!("{err:#}"),
        };
        let Some(previous) = previous else {
            return Err(error);
        };
        tracing::warn!("the new camera did not start: {error}; starting the previous one");
        if let Err(again) = self.build(&previous).await {
            tracing::error!("the previous camera does not start either: {again:#}");
            self.schedule_rebuild(previous, None);
        }
        Err(error)
    }

    /// Builds and starts a camera pipeline for `config` (off the event
    /// loop) and hands its stream to the taps.
    async fn build(&mut self, config: &Config) -> Result<()> {
        let parts = self.parts.clone();
        let wanted = config.clone();
        let built = tokio::task::spawn_blocking(move || build::build(&wanted, &parts))
            .await
            .context("the camera build did not finish")??;
        let build::Built {
            pipeline,
            description,
            v4l2,
            sends_h264,
            passthrough,
        } = built;
        let bus = pipeline
            .pipeline
            .bus()
            .context("the camera pipeline has no bus")?
            .stream();
        self.parts
            .inventory
            .register(pipeline.pipeline.upcast_ref());
        self.parts.taps.encoded.attach(&pipeline.producer);
        self.parts
            .metrics
            .follow_camera(description.clone(), pipeline.encoder_queue.clone());
        let captured = pipeline.counters.read().captured_frames;
        let recovery = match &pipeline.sources.missing {
            Some(reason) => Recovery::missing(timing(config), Instant::now(), reason),
            None => Recovery::new(timing(config), Instant::now(), captured),
        };
        let current = Current {
            pipeline: Arc::new(pipeline),
            recovery,
            config: config.clone(),
            description,
            bus,
            v4l2,
            sends_h264,
            passthrough,
            builds: self.parts.status.get().builds + 1,
        };
        self.parts.status.set(current.status());
        self.current = Some(current);
        Ok(())
    }

    /// The camera description in `hello` follows live changes too.
    fn describe(&mut self) {
        let Some(current) = &mut self.current else {
            return;
        };
        let bitrate = current.config.encoder.bitrate_kbps;
        current.description.encoder["bitrate_kbps"] = bitrate.into();
        self.parts.metrics.follow_camera(
            current.description.clone(),
            current.pipeline.encoder_queue.clone(),
        );
    }

    /// Stops the running pipeline (blocking, so off the event loop).
    async fn stop(&mut self) {
        self.reopening = None;
        let Some(current) = self.current.take() else {
            return;
        };
        self.parts.taps.encoded.detach();
        let pipeline = current.pipeline;
        let _ = tokio::task::spawn_blocking(move || pipeline.stop()).await;
    }

    /// Builds `config` again after a wait that doubles with each failure
    /// in a row (`previous`: the wait before this failure).
    fn schedule_rebuild(&mut self, config: Config, previous: Option<Duration>) {
        let wait = previous.map_or(FIRST_REBUILD_WAIT, |wait| (wait * 2).min(MAX_REBUILD_WAIT));
        tracing::warn!(
            "rebuilding the camera pipeline in {:.0} s",
            wait.as_secs_f64()
        );
        self.rebuild = Some(Rebuild {
            at: Instant::now() + wait,
            wait,
            config,
        });
    }

    async fn on_tick(&mut self) {
        let due = self.reopening.is_none()
            && self
                .rebuild
                .as_ref()
                .is_some_and(|r| Instant::now() >= r.at);
        if let Some(rebuild) = self.rebuild.take_if(|_| due) {
            self.stop().await;
            match self.build(&rebuild.config).await {
                Ok(()) => tracing::info!("the camera pipeline is rebuilt"),
                Err(err) => {
                    tracing::error!("rebuilding the camera failed: {err:#}");
                    self.schedule_rebuild(rebuild.config, Some(rebuild.wait));
                }
            }
        }
        let Some(current) = &mut self.current else {
            return;
        };
        if current.private() {
            return;
        }
        let captured = current.pipeline.counters.read().captured_frames;
        let actions = current.recovery.step(Instant::now(), captured);
        self.carry_out(actions);
    }

    fn on_message(&mut self, message: &gst::Message) {
        let Some(current) = &mut self.current else {
            return;
        };
        let from = message
            .src()
            .map(|s| s.path_string().to_string())
            .unwrap_or_default();
        let failure = match message.view() {
            gst::MessageView::Error(err) => {
                let debug = err.debug().map(|d| d.to_string()).unwrap_or_default();
                Some(format!("{from}: {} ({debug})", err.error()))
            }
            gst::MessageView::Eos(_) => Some(format!("{from}: the stream ended")),
            gst::MessageView::Warning(warning) => {
                tracing::warn!("{from}: {}", warning.error());
                None
            }
            gst::MessageView::StateChanged(change)
                if message.src() == Some(current.pipeline.pipeline.upcast_ref()) =>
            {
                if change.current() == gst::State::Playing {
                    tracing::info!("camera pipeline is playing");
                }
                None
            }
            _ => None,
        };
        let Some(failure) = failure else {
            return;
        };
        let origin = message
            .src()
            .map_or(Origin::Pipeline, |src| current.pipeline.sources.origin(src));
        match origin {
            Origin::LiveSource if current.private() => {
                tracing::debug!("error from the camera closed for privacy: {failure}");
            }
            // The camera is lost: slate and retries.
            Origin::LiveSource => {
                let actions = current.recovery.source_failed(Instant::now(), &failure);
                self.carry_out(actions);
            }
            Origin::RemovedSource => {
                tracing::debug!("error from a replaced camera source: {failure}");
            }
            // The encoder side failed: the whole camera pipeline is rebuilt
            // (the outputs and their viewers stay; they wait for frames).
            Origin::Pipeline if self.rebuild.is_none() => {
                tracing::error!("the camera pipeline failed: {failure}");
                let config = current.config.clone();
                self.schedule_rebuild(config, None);
            }
            Origin::Pipeline => tracing::debug!("the failed camera pipeline: {failure}"),
        }
    }

    fn on_reopened(&mut self, outcome: Result<()>) {
        let Some(current) = &mut self.current else {
            return;
        };
        let captured = current.pipeline.counters.read().captured_frames;
        let changed = outcome
            .as_ref()
            .err()
            .is_some_and(|err| err.downcast_ref::<v4l2::ShapeChanged>().is_some());
        if changed && self.rebuild.is_none() {
            let config = current.config.clone();
            self.schedule_rebuild(config, None);
        }
        let Some(current) = &mut self.current else {
            return;
        };
        if outcome.is_ok() {
            // A camera missing at start, or back in another mode.
            current.description.camera["capture"] = self.parts.shared.controls.capture().into();
            self.parts.metrics.follow_camera(
                current.description.clone(),
                current.pipeline.encoder_queue.clone(),
            );
        }
        current.recovery.reopened(
            Instant::now(),
            captured,
            outcome.map_err(|err| format!("{err:#}")),
        );
        self.parts.status.set(current.status());
    }

    fn carry_out(&mut self, actions: Vec<Action>) {
        let Some(current) = &self.current else {
            return;
        };
        let sources = &current.pipeline.sources;
        for action in actions {
            match action {
                Action::ShowSlate => sources.show_slate(),
                Action::Caption(seconds) => sources.slate.show_lost_for(seconds),
                Action::ShowLive => sources.show_live(),
                Action::Reopen => {
                    if current.v4l2 {
                        build::extend_start_timeout(&current.config);
                    }
                    let pipeline = current.pipeline.clone();
                    self.reopening = Some(tokio::task::spawn_blocking(move || {
                        pipeline.sources.replace()
                    }));
                }
            }
        }
        self.parts.status.set(current.status());
    }
}

/// The next message of the running pipeline's bus; never, without one.
async fn next_message(current: &mut Option<Current>) -> gst::Message {
    match current.as_mut().map(|c| c.bus.next()) {
        Some(next) => match next.await {
            Some(message) => message,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// The outcome of the reopening in flight; never, without one.
async fn wait_for(reopening: &mut Option<tokio::task::JoinHandle<Result<()>>>) -> Result<()> {
    let Some(handle) = reopening.as_mut() else {
        return std::future::pending().await;
    };
    let outcome = handle
        .await
        .unwrap_or_else(|err| Err(anyhow::anyhow!("the reopening did not finish: {err}")));
    *reopening = None;
    outcome
}

fn timing(config: &Config) -> Timing {
    Timing {
        stall_timeout: Duration::from_millis(config.camera.stall_timeout_ms.into()),
        max_backoff: Duration::from_secs(config.camera.retry_max_s.into()),
    }
}
