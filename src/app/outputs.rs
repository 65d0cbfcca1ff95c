//! The running outputs, owned by one task. It starts and stops each output
//! as the configuration asks, and when one fails it stops that one and
//! starts it again after a pause that doubles with each failure (capped):
//! the camera and the other outputs, and their viewers, carry on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::output::{self, Failure, Failures, Output, Running};

/// The first pause before a failed output starts again: short, so its
/// viewers barely notice a one-off failure.
const FIRST_RESTART: Duration = Duration::from_millis(250);
const MAX_RESTART: Duration = Duration::from_secs(30);
/// An output that ran this long before failing starts again at once.
const STABLE: Duration = Duration::from_secs(60);

/// What every output is started with (each start adds its `Failures`).
#[derive(Clone)]
pub struct Parts {
    pub taps: crate::pipeline::Taps,
    pub timeline: crate::pipeline::Timeline,
    pub registry: crate::metrics::Registry,
    pub inventory: crate::pipeline::inventory::Inventory,
    pub metrics: crate::metrics::Metrics,
}

/// The handle the rest of the app talks to the outputs through.
#[derive(Clone)]
pub struct Outputs {
    commands: mpsc::Sender<Command>,
}

enum Command {
    /// Bring every output to `config`; restart those named in `restart`.
    Apply {
        config: Box<Config>,
        restart: Vec<&'static str>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Break {
        name: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Stop(oneshot::Sender<()>),
}

/// One output and what of it runs.
struct Slot {
    output: Arc<dyn Output>,
    running: Option<Box<dyn Running>>,
    /// Counts starts, so a late failure report of an instance already
    /// replaced is recognised.
    generation: u64,
    started: Instant,
    /// Failed: when to start again.
    restart: Option<Instant>,
    /// The last pause before a restart (None: no failure lately).
    pause: Option<Duration>,
}

impl Outputs {
    pub fn spawn(catalogue: Vec<Arc<dyn Output>>, parts: Parts) -> Self {
        let (commands, receiver) = mpsc::channel(8);
        let (failures, failed) = mpsc::unbounded_channel();
        let slots = catalogue
            .into_iter()
            .map(|output| Slot {
                output,
                running: None,
                generation: 0,
                started: Instant::now(),
                restart: None,
                pause: None,
            })
            .collect();
        let supervisor = Supervisor {
            slots,
            parts,
            failures,
            config: None,
        };
        tokio::spawn(supervisor.run(receiver, failed));
        Self { commands }
    }

    /// Starts what `config` enables and stops the rest; restarts the
    /// outputs named in `restart` (their settings changed). Errors name
    /// every output that did not start.
    pub async fn apply(&self, config: &Config, restart: Vec<&'static str>) -> Result<(), String> {
        let config = Box::new(config.clone());
        super::ask(
            &self.commands,
            |reply| Command::Apply {
                config,
                restart,
                reply,
            },
            Err("edgecam is stopping".to_owned()),
        )
        .await
    }

    /// Makes a running output fail on purpose (fault injection).
    pub async fn break_output(&self, name: String) -> Result<(), String> {
        super::ask(
            &self.commands,
            |reply| Command::Break { name, reply },
            Err("edgecam is stopping".to_owned()),
        )
        .await
    }

    pub async fn stop(&self) {
        super::ask(&self.commands, Command::Stop, ()).await;
    }
}

struct Supervisor {
    slots: Vec<Slot>,
    parts: Parts,
    failures: mpsc::UnboundedSender<Failure>,
    /// The configuration the outputs follow (None before the first apply).
    config: Option<Config>,
}

impl Supervisor {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut failed: mpsc::UnboundedReceiver<Failure>,
    ) {
        loop {
            let next_restart = self.slots.iter().filter_map(|s| s.restart).min();
            let restart_due = async {
                match next_restart {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Apply { config, restart, reply }) => {
                        let outcome = self.apply(*config, &restart).await;
                        let _ = reply.send(outcome);
                    }
                    Some(Command::Break { name, reply }) => {
                        let _ = reply.send(self.break_output(&name));
                    }
                    Some(Command::Stop(reply)) => {
                        self.stop_all().await;
                        let _ = reply.send(());
                        return;
                    }
                    None => return self.stop_all().await,
                },
                Some(failure) = failed.recv() => self.on_failure(failure).await,
                () = restart_due => self.restart_due().await,
            }
        }
    }

    async fn apply(&mut self, config: Config, restart: &[&'static str]) -> Result<(), String> {
        let mut errors = Vec::new();
        for index in 0..self.slots.len() {
            let slot = &mut self.slots[index];
            let name = slot.output.name();
            let wanted = slot.output.enabled(&config);
            let restarting = restart.contains(&name);
            if slot.running.is_some() && (!wanted || restarting) {
                stop(slot).await;
            }
            if !wanted {
                slot.restart = None;
                self.parts.registry.off(name);
                continue;
            }
            if slot.running.is_none() {
                slot.restart = None;
                if let Err(err) = self.start(index, &config).await {
                    errors.push(format!("{name}: {err}"));
                }
            }
        }
        self.config = Some(config);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Starts the output in slot `index` (off the event loop).
    async fn start(&mut self, index: usize, config: &Config) -> Result<(), String> {
        let slot = &mut self.slots[index];
        slot.generation += 1;
        // A failed start counts as a short run: the next pause doubles.
        slot.started = Instant::now();
        let name = slot.output.name();
        self.parts.registry.starting(name);
        let context = output::Context {
            taps: self.parts.taps.clone(),
            timeline: self.parts.timeline.clone(),
            registry: self.parts.registry.clone(),
            inventory: self.parts.inventory.clone(),
            metrics: self.parts.metrics.clone(),
            failures: Failures::new(name, slot.generation, self.failures.clone()),
        };
        let output = slot.output.clone();
        let config = config.clone();
        let started = tokio::task::spawn_blocking(move || output.start(&config, &context))
            .await
            .map_err(|err| format!("its start did not finish: {err}"))
            .and_then(|started| started.map_err(|err| format!("{err:#}")));
        match started {
            Ok(running) => {
                self.parts.registry.running(name, running.describe());
                slot.running = Some(running);
                Ok(())
            }
            Err(err) => {
                self.parts.registry.failed(name, &err);
                Err(err)
            }
        }
    }

    fn break_output(&self, name: &str) -> Result<(), String> {
        let slot = self
            .slots
            .iter()
            .find(|s| s.output.name() == name)
            .ok_or_else(|| format!("there is no output called {name:?}"))?;
        let running = slot
            .running
            .as_ref()
            .ok_or_else(|| format!("output {name} is not running"))?;
        running.break_now();
        Ok(())
    }

    /// An output failed: stop it, count it, start it again later.
    async fn on_failure(&mut self, failure: Failure) {
        let Some(slot) = self
            .slots
            .iter_mut()
            .find(|s| s.output.name() == failure.output && s.generation == failure.generation)
        else {
            return;
        };
        if slot.running.is_none() {
            return;
        }
        let pause = next_pause(slot);
        tracing::warn!(
            output = failure.output,
            "output {} failed: {}; starting it again in {:.1} s",
            failure.output,
            failure.reason,
            pause.as_secs_f64()
        );
        self.parts.registry.failed(failure.output, &failure.reason);
        stop(slot).await;
        slot.pause = Some(pause);
        slot.restart = Some(Instant::now() + pause);
    }

    async fn restart_due(&mut self) {
        let Some(config) = self.config.clone() else {
            return;
        };
        let now = Instant::now();
        for index in 0..self.slots.len() {
            let Some(at) = self.slots[index].restart else {
                continue;
            };
            if at > now {
                continue;
            }
            let name = self.slots[index].output.name();
            match self.start(index, &config).await {
                Ok(()) => {
                    tracing::info!(output = name, "output {name} started again");
                    self.slots[index].restart = None;
                }
                Err(err) => {
                    let slot = &mut self.slots[index];
                    let pause = next_pause(slot);
                    tracing::warn!(
                        output = name,
                        "output {name} did not start again: {err}; next try in {:.1} s",
                        pause.as_secs_f64()
                    );
                    slot.pause = Some(pause);
                    slot.restart = Some(Instant::now() + pause);
                }
            }
        }
    }

    async fn stop_all(&mut self) {
        for slot in &mut self.slots {
            stop(slot).await;
        }
    }
}

/// The pause before a failed output starts again: doubling from the last
/// one, unless it had run long enough to count as healthy.
fn next_pause(slot: &Slot) -> Duration {
    match slot.pause {
        Some(pause) if slot.started.elapsed() < STABLE => (pause * 2).min(MAX_RESTART),
        _ => FIRST_RESTART,
    }
}

/// Stops what of the slot runs (off the event loop).
async fn stop(slot: &mut Slot) {
    if let Some(running) = slot.running.take() {
        let _ = tokio::task::spawn_blocking(move || running.stop()).await;
    }
}
