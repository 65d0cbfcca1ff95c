//! The board's lines at work: the status LED shows how the stream is, the
//! tally light whether anyone watches the camera, and the button toggles
//! privacy mode (a short press) or rebuilds the camera pipeline (held 3 s).
//! Sampled every 10 ms on a thread of its own: an LED must blink on time
//! and a press must be seen however busy the runtime is.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::control::ConfigService;
use crate::gpio::signals::{self, Button, Press, Status};
use crate::gpio::Lines;
use crate::metrics::Metrics;
use crate::pipeline::counters::StreamCounters;
use crate::pipeline::progress::{self, Health};

use super::camera::Camera;

const TICK: Duration = Duration::from_millis(10);
/// Frames must have reached the outputs this recently to count as flowing.
const FRESH: Duration = Duration::from_secs(2);

/// What the lines read and act on.
pub struct Parts {
    pub counters: StreamCounters,
    pub metrics: Metrics,
    pub config: Arc<ConfigService>,
    pub camera: Camera,
    pub runtime: tokio::runtime::Handle,
}

pub fn spawn(mut lines: Lines, parts: Parts) {
    let spawned = std::thread::Builder::new()
        .name("gpio".to_owned())
        .spawn(move || run(&mut lines, &parts));
    if let Err(err) = spawned {
        tracing::error!("gpio: cannot start its thread: {err}");
    }
}

fn run(lines: &mut Lines, parts: &Parts) {
    let mut shown = (Status::Starting, Instant::now());
    let mut button = lines
        .button
        .as_mut()
        .map(|line| Button::new(line.active().unwrap_or(false)));
    let mut failing = false;
    loop {
        let now = Instant::now();
        // One copy of the latest sample a tick (it changes ten times a
        // second; the lines are looked at a hundred).
        let sample = parts.metrics.latest();
        let status = status(parts, sample.as_ref());
        if status != shown.0 {
            shown = (status, now);
        }
        let private = sample.as_ref().is_some_and(|s| s.camera.state == "private");
        let watched = sample.as_ref().is_some_and(|s| s.viewers() > 0) && !private;
        let mut outcome = Ok(());
        if let Some(led) = lines.status_led.as_mut() {
            outcome = outcome.and(led.set(signals::lit(status, now - shown.1)));
        }
        if let Some(tally) = lines.tally_led.as_mut() {
            outcome = outcome.and(tally.set(watched));
        }
        if let (Some(line), Some(button)) = (lines.button.as_mut(), button.as_mut()) {
            match line.active() {
                Ok(active) => {
                    if let Some(press) = button.sample(active, now) {
                        act(press, parts);
                    }
                }
                Err(err) => outcome = Err(err),
            }
        }
        // Said once, not a hundred times a second.
        match outcome {
            Err(err) if !failing => {
                tracing::warn!("gpio: {err:#}");
                failing = true;
            }
            Err(_) => {}
            Ok(()) => failing = false,
        }
        std::thread::sleep(TICK);
    }
}

fn status(parts: &Parts, sample: Option<&crate::metrics::Sample>) -> Status {
    match progress::health(&parts.counters, FRESH) {
        Health::NoFrameYet => Status::Starting,
        Health::Stalled { .. } => Status::Stalled,
        Health::Streaming { .. } if sample.is_some_and(|s| s.camera.state == "lost") => {
            Status::CameraLost
        }
        Health::Streaming { .. } => Status::Streaming,
    }
}

/// Carries out a press on the runtime: a configuration edit can take the
/// seconds of its confirmation, while the LEDs go on.
fn act(press: Press, parts: &Parts) {
    let config = parts.config.clone();
    let camera = parts.camera.clone();
    parts.runtime.spawn(async move {
        match press {
            Press::Short => {
                let enabled = !config.config().await.privacy.enabled;
                tracing::info!("gpio: the button turns privacy mode {}", on_off(enabled));
                let fragment = crate::config::PrivacyConfig::fragment(enabled);
                if let Err(err) = config.patch_current(&fragment).await {
                    tracing::warn!("gpio: privacy mode not changed: {err:?}");
                }
            }
            Press::Hold => {
                tracing::info!("gpio: the button was held: rebuilding the camera pipeline");
                let running = config.config().await;
                if let Err(err) = camera.start(&running).await {
                    tracing::warn!("gpio: the camera pipeline was not rebuilt: {err}");
                }
            }
        }
    });
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}
