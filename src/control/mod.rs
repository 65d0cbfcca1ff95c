//! The control plane's configuration service: what remote edits go through.
//! A write is validated, checked against the revision the writer saw,
//! applied (live where the running pipeline can take it, else by a new
//! pipeline), confirmed by frames still reaching the outputs, and only then
//! written to disk — or rolled back with the reason.

pub mod watch;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::config::diff::{self, Change, Effect};
use crate::config::{self, patch, store, Config, ConfigError};
use crate::pipeline::counters::StreamCounters;

/// A configuration for the app to bring what runs to.
pub struct ApplyRequest {
    pub config: Config,
    pub reply: oneshot::Sender<Result<(), ApplyError>>,
}

/// Why a configuration was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    /// Not now (the camera is being reopened): nothing was changed.
    Busy(String),
    /// It was tried and did not work.
    Failed(String),
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::Busy(reason) | ApplyError::Failed(reason) => f.write_str(reason),
        }
    }
}

/// The file, as text and as settings, that is in force.
struct Current {
    text: String,
    config: Config,
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reloaded {
    /// The file says what already runs (or there is no file).
    Unchanged,
    Applied,
    /// The file cannot be read or is invalid: the reason is logged.
    Invalid,
    /// Valid, but needing a process restart, refused for now, or rolled
    /// back: the reason is logged.
    NotApplied,
}

impl Reloaded {
    const ALL: [Reloaded; 4] = [
        Reloaded::Unchanged,
        Reloaded::Applied,
        Reloaded::Invalid,
        Reloaded::NotApplied,
    ];

    /// How `/metrics` labels it.
    pub fn name(self) -> &'static str {
        match self {
            Reloaded::Unchanged => "unchanged",
            Reloaded::Applied => "applied",
            Reloaded::Invalid => "invalid",
            Reloaded::NotApplied => "not_applied",
        }
    }
}

pub struct ConfigService {
    /// None when edgecam runs on its built-in configuration.
    path: Option<PathBuf>,
    /// Held through a whole write, so writes happen one at a time.
    current: Mutex<Current>,
    apply: mpsc::Sender<ApplyRequest>,
    counters: StreamCounters,
    /// Reloads (file edits, SIGHUP) by outcome, for `/metrics`.
    reloads: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

/// What a successful write did.
#[derive(Debug, Serialize)]
pub struct Written {
    pub revision: String,
    pub changes: Vec<Change>,
}

/// Why a write was refused; nothing was applied or written.
#[derive(Debug)]
pub enum WriteError {
    /// The writer's `If-Match` is not the current revision.
    Stale {
        current: String,
    },
    Invalid(ConfigError),
    /// Keys that only a restart of the process applies.
    NeedsRestart(Vec<Change>),
    /// No file to write: edgecam runs on its built-in configuration.
    NoFile,
    /// The new settings did not work; the old ones run again.
    RolledBack(String),
    /// Nothing was tried: edgecam cannot take the change right now.
    Busy(String),
    /// Writing the file failed; the old settings run again.
    NotPersisted(String),
}

impl ConfigService {
    pub fn new(
        path: Option<PathBuf>,
        text: String,
        config: Config,
        apply: mpsc::Sender<ApplyRequest>,
        counters: StreamCounters,
    ) -> Self {
        Self {
            path,
            current: Mutex::new(Current { text, config }),
            apply,
            counters,
            reloads: std::sync::Mutex::new(Reloaded::ALL.iter().map(|r| (r.name(), 0)).collect()),
        }
    }

    /// Reloads so far, by outcome.
    pub fn reloads(&self) -> std::collections::BTreeMap<&'static str, u64> {
        self.reloads.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The current file with secrets hidden, and its revision.
    pub async fn get(&self) -> (String, String) {
        let current = self.current.lock().await;
        (patch::redact(&current.text), store::revision(&current.text))
    }

    /// The configuration in force.
    pub async fn config(&self) -> Config {
        self.current.lock().await.config.clone()
    }

    /// Merges `fragment` into whatever the file is now (the live-view
    /// controls: a toggle needs no ETag; an edit made meanwhile is kept).
    pub async fn patch_current(&self, fragment: &str) -> Result<Written, WriteError> {
        let revision = self.revision().await;
        match self.patch(fragment, &revision).await {
            Err(WriteError::Stale { current }) => self.patch(fragment, &current).await,
            written => written,
        }
    }

    /// The current revision.
    pub async fn revision(&self) -> String {
        store::revision(&self.current.lock().await.text)
    }

    /// Parses and validates a whole file against the current one: the
    /// changes it would make, or why it cannot be used.
    pub async fn validate(&self, text: &str) -> Result<Vec<Change>, ConfigError> {
        let current = self.current.lock().await;
        let text = patch::restore_secrets(text, &current.text);
        let config = config::parse(&text, REQUEST_BODY)?;
        Ok(diff::changes(&current.config, &config))
    }

    /// Replaces the whole file with `text`.
    pub async fn put(&self, text: &str, if_match: &str) -> Result<Written, WriteError> {
        self.write(if_match, |current| {
            Ok(patch::restore_secrets(text, current))
        })
        .await
    }

    /// Merges the TOML `fragment` into the file, key by key. Errors point
    /// into the fragment, where the writer can find them.
    pub async fn patch(&self, fragment: &str, if_match: &str) -> Result<Written, WriteError> {
        self.write(if_match, |current| {
            let merged = patch::merge(current, fragment, REQUEST_BODY)?;
            let merged = patch::restore_secrets(&merged, current);
            config::parse(&merged, REQUEST_BODY)
                .map_err(|err| patch::locate_in_fragment(err, fragment, REQUEST_BODY))?;
            Ok(merged)
        })
        .await
    }

    async fn write(
        &self,
        if_match: &str,
        edit: impl FnOnce(&str) -> Result<String, ConfigError>,
    ) -> Result<Written, WriteError> {
        let mut current = self.current.lock().await;
        let revision = store::revision(&current.text);
        if if_match.trim_matches('"') != revision {
            return Err(WriteError::Stale { current: revision });
        }
        let text = edit(&current.text).map_err(WriteError::Invalid)?;
        let config = config::parse(&text, REQUEST_BODY).map_err(WriteError::Invalid)?;
        let changes = plan(&current.config, &config).map_err(WriteError::NeedsRestart)?;
        let Some(path) = self.path.clone() else {
            return Err(WriteError::NoFile);
        };
        self.apply_confirmed(&current.config, &config, &changes)
            .await
            .map_err(|err| match err {
                ApplyError::Busy(reason) => WriteError::Busy(reason),
                ApplyError::Failed(reason) => WriteError::RolledBack(reason),
            })?;
        let persisted = {
            let text = text.clone();
            tokio::task::spawn_blocking(move || store::replace(&path, &text))
                .await
                .map_err(|err| err.to_string())
                .and_then(|written| written.map_err(|err| format!("{err:#}")))
        };
        if let Err(reason) = persisted {
            self.roll_back(&current.config).await;
            return Err(WriteError::NotPersisted(reason));
        }
        tracing::info!(
            changes = changes.len(),
            "configuration changed through the API and saved"
        );
        current.text = text;
        current.config = config;
        Ok(Written {
            revision: store::revision(&current.text),
            changes,
        })
    }

    /// Re-reads the file (after SIGHUP or an edit on disk) and applies it
    /// like an API write, without writing it back. A file that is invalid,
    /// needs a restart or does not work leaves the running configuration as
    /// it is; the log says why. The file equal to what runs (our own
    /// write, seen by the watcher) is nothing to do.
    pub async fn reload(&self, why: &str) -> Reloaded {
        let outcome = self.reload_file(why).await;
        if let Ok(mut reloads) = self.reloads.lock() {
            *reloads.entry(outcome.name()).or_default() += 1;
        }
        outcome
    }

    async fn reload_file(&self, why: &str) -> Reloaded {
        let Some(path) = self.path.clone() else {
            tracing::info!("{why}: edgecam runs on its built-in configuration, nothing to reload");
            return Reloaded::Unchanged;
        };
        // Read under the lock: a file read while an API write was replacing
        // it would be applied after that write, undoing it.
        let mut current = self.current.lock().await;
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(text) => text,
            Err(err) => {
                tracing::warn!("{why}: cannot read {}: {err}", path.display());
                return Reloaded::Invalid;
            }
        };
        if text == current.text {
            return Reloaded::Unchanged;
        }
        let config = match config::parse(&text, &path.display().to_string()) {
            Ok(config) => config,
            Err(err) => {
                tracing::warn!("{why}: not applied, the file is invalid: {err}");
                return Reloaded::Invalid;
            }
        };
        let changes = match plan(&current.config, &config) {
            Ok(changes) => changes,
            Err(restart) => {
                let keys: Vec<&str> = restart.iter().map(|c| c.key.as_str()).collect();
                tracing::warn!(
                    "{why}: not applied, {} only apply on a restart of edgecam",
                    keys.join(", ")
                );
                return Reloaded::NotApplied;
            }
        };
        match self
            .apply_confirmed(&current.config, &config, &changes)
            .await
        {
            Ok(()) => {}
            Err(ApplyError::Busy(reason)) => {
                tracing::warn!("{why}: not applied now: {reason}");
                return Reloaded::NotApplied;
            }
            Err(ApplyError::Failed(reason)) => {
                tracing::warn!("{why}: rolled back: {reason}");
                return Reloaded::NotApplied;
            }
        }
        tracing::info!(changes = changes.len(), "{why}: configuration reloaded");
        current.text = text;
        current.config = config;
        Reloaded::Applied
    }

    /// Applies `changes` (from `running` to `wanted`) and confirms them;
    /// when they do not work, `running` is applied again.
    async fn apply_confirmed(
        &self,
        running: &Config,
        wanted: &Config,
        changes: &[Change],
    ) -> Result<(), ApplyError> {
        if changes.is_empty() {
            return Ok(());
        }
        let confirm = Duration::from_secs(wanted.api.confirm_s.into());
        let confirmed = self.apply_and_confirm(wanted, confirm).await;
        match &confirmed {
            // Nothing was changed: nothing to undo.
            Err(ApplyError::Busy(_)) | Ok(()) => {}
            Err(ApplyError::Failed(_)) => self.roll_back(running).await,
        }
        confirmed
    }

    /// Has the supervisor apply `config`, then waits until frames are
    /// still reaching the outputs.
    async fn apply_and_confirm(
        &self,
        config: &Config,
        confirm: Duration,
    ) -> Result<(), ApplyError> {
        let stopping = || ApplyError::Busy("edgecam is stopping".to_owned());
        let (reply, applied) = oneshot::channel();
        self.apply
            .send(ApplyRequest {
                config: config.clone(),
                reply,
            })
            .await
            .map_err(|_| stopping())?;
        applied.await.map_err(|_| stopping())??;
        let before = self.counters.read().encoded_frames;
        let deadline = Instant::now() + confirm;
        while Instant::now() < deadline {
            if self.counters.read().encoded_frames >= before + 3 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(ApplyError::Failed(format!(
            "no frame reached the outputs within {} s after the change",
            confirm.as_secs()
        )))
    }

    async fn roll_back(&self, config: &Config) {
        let (reply, applied) = oneshot::channel();
        let request = ApplyRequest {
            config: config.clone(),
            reply,
        };
        if self.apply.send(request).await.is_ok() {
            if let Ok(Err(err)) = applied.await {
                tracing::error!("rolling back the configuration failed: {err}");
            }
        }
        tracing::warn!("configuration change rolled back");
    }
}

/// What the API calls a write's text in errors.
const REQUEST_BODY: &str = "request body";

/// The changes from `running` to `wanted`, or — when there are any — those
/// among them that only a restart of the process applies.
fn plan(running: &Config, wanted: &Config) -> Result<Vec<Change>, Vec<Change>> {
    let changes = diff::changes(running, wanted);
    let restart: Vec<Change> = changes
        .iter()
        .filter(|c| c.effect == Effect::Process)
        .cloned()
        .collect();
    if restart.is_empty() {
        Ok(changes)
    } else {
        Err(restart)
    }
}
