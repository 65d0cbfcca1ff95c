//! The changes that take effect on what runs — the encoder's bitrate,
//! camera controls, loss and retry timings, the metrics rate, the HTTP
//! server's address and limits — without disturbing a single viewer. Each
//! is found by comparing the typed settings, so a key that the schema
//! declares live and nothing here sets is caught by a test.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};

use super::camera::Camera;
use super::http_server::HttpServer;
use crate::config::{
    AuthConfig, Config, ControlSetting, EncoderConfig, HttpConfig, JpegConfig, OverlayConfig,
};
use crate::metrics::Metrics;
use crate::pipeline::recovery::Timing;
use crate::source::v4l2::SharedControls;

/// One live change to make.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Http(HttpConfig),
    Bitrate(EncoderConfig),
    Timing(Timing),
    FaultInjection(bool),
    Control(String, ControlSetting),
    MetricsRate(u32),
    ClientStall(u32),
    Jpeg(JpegConfig),
    Overlay(OverlayConfig),
    Privacy(bool),
    Tokens(AuthConfig),
}

impl std::fmt::Display for Step {
    /// As the log says it: the key and its new value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Http(http) => write!(
                f,
                "http.bind = {}, max_connections = {}, header_timeout = {}, idle_timeout = {}",
                http.bind, http.max_connections, http.header_timeout, http.idle_timeout
            ),
            Step::Bitrate(encoder) => write!(f, "encoder.bitrate_kbps = {}", encoder.bitrate_kbps),
            Step::Timing(timing) => write!(
                f,
                "camera.stall_timeout_ms = {}, camera.retry_max_s = {}",
                timing.stall_timeout.as_millis(),
                timing.max_backoff.as_secs()
            ),
            Step::FaultInjection(on) => write!(f, "camera.fault_injection = {on}"),
            Step::Control(name, setting) => write!(f, "camera.controls.{name} = {setting}"),
            Step::MetricsRate(rate) => write!(f, "metrics.rate_hz = {rate}"),
            Step::ClientStall(seconds) => write!(f, "metrics.ws_stall_s = {seconds}"),
            Step::Jpeg(jpeg) => write!(
                f,
                "jpeg.quality = {}, max_fps = {}, width = {}, height = {}",
                jpeg.quality, jpeg.max_fps, jpeg.width, jpeg.height
            ),
            Step::Overlay(overlay) => {
                let names: Vec<&str> = overlay.layers.iter().map(|l| l.name.as_str()).collect();
                write!(f, "overlay.layers = {names:?}")
            }
            Step::Privacy(on) => write!(f, "privacy.enabled = {on}"),
            // Never the tokens themselves: the log is not for secrets.
            Step::Tokens(auth) => write!(
                f,
                "auth: new tokens (a viewer token {})",
                if auth.viewer_token.is_empty() {
                    "is not set"
                } else {
                    "is set"
                }
            ),
        }
    }
}

/// The steps from `running` to `wanted`.
pub fn steps(running: &Config, wanted: &Config) -> Vec<Step> {
    let mut steps = Vec::new();
    if running.http != wanted.http {
        steps.push(Step::Http(wanted.http.clone()));
    }
    if running.encoder.bitrate_kbps != wanted.encoder.bitrate_kbps {
        steps.push(Step::Bitrate(wanted.encoder.clone()));
    }
    let (old, new) = (&running.camera, &wanted.camera);
    if (old.stall_timeout_ms, old.retry_max_s) != (new.stall_timeout_ms, new.retry_max_s) {
        steps.push(Step::Timing(Timing {
            stall_timeout: Duration::from_millis(new.stall_timeout_ms.into()),
            max_backoff: Duration::from_secs(new.retry_max_s.into()),
        }));
    }
    if old.fault_injection != new.fault_injection {
        steps.push(Step::FaultInjection(new.fault_injection));
    }
    steps.extend(changed_controls(&old.controls, &new.controls));
    if running.metrics.rate_hz != wanted.metrics.rate_hz {
        steps.push(Step::MetricsRate(wanted.metrics.rate_hz));
    }
    if running.metrics.ws_stall_s != wanted.metrics.ws_stall_s {
        steps.push(Step::ClientStall(wanted.metrics.ws_stall_s));
    }
    if running.jpeg != wanted.jpeg {
        steps.push(Step::Jpeg(wanted.jpeg.clone()));
    }
    if running.overlay != wanted.overlay {
        steps.push(Step::Overlay(wanted.overlay.clone()));
    }
    if running.privacy != wanted.privacy {
        steps.push(Step::Privacy(wanted.privacy.enabled));
    }
    if running.auth != wanted.auth {
        steps.push(Step::Tokens(wanted.auth.clone()));
    }
    steps
}

/// Controls set to a new value. One dropped from the file keeps its
/// current value (there is no "unset" for a camera control).
fn changed_controls(
    old: &BTreeMap<String, ControlSetting>,
    new: &BTreeMap<String, ControlSetting>,
) -> Vec<Step> {
    new.iter()
        .filter(|(name, setting)| old.get(*name) != Some(setting))
        .map(|(name, setting)| Step::Control(name.clone(), setting.clone()))
        .collect()
}

/// What live changes act on.
#[derive(Clone)]
pub struct Live {
    pub jpeg: crate::pipeline::jpeg::JpegTap,
    pub overlay: crate::overlay::Overlay,
    pub camera: Camera,
    pub controls: SharedControls,
    pub metrics: Metrics,
    pub fault_injection: Arc<AtomicBool>,
    pub http: Arc<tokio::sync::Mutex<HttpServer>>,
    pub guard: crate::http::auth::SharedGuard,
}

impl Live {
    /// Makes every step; stops at the first that fails (the caller then
    /// applies the old configuration back).
    pub async fn apply(&self, running: &Config, wanted: &Config) -> Result<()> {
        for step in steps(running, wanted) {
            self.make(&step).await?;
            tracing::info!("applied live: {step}");
        }
        Ok(())
    }

    async fn make(&self, step: &Step) -> Result<()> {
        match step {
            Step::Http(http) => self.http.lock().await.reconfigure(http).await,
            Step::Bitrate(encoder) => self
                .camera
                .set_bitrate(encoder)
                .await
                .map_err(|e| anyhow!(e)),
            Step::Timing(timing) => {
                self.camera.set_timing(*timing).await;
                Ok(())
            }
            Step::FaultInjection(on) => {
                self.fault_injection.store(*on, Ordering::Relaxed);
                Ok(())
            }
            Step::Control(name, setting) => {
                let (controls, name, setting) =
                    (self.controls.clone(), name.clone(), setting.clone());
                // The ioctls block, briefly.
                tokio::task::spawn_blocking(move || {
                    controls
                        .set(&name, &setting)
                        .map(|_| ())
                        .map_err(|err| anyhow!("camera.controls.{name}: {err}"))
                })
                .await
                .map_err(|err| anyhow!("setting a control did not finish: {err}"))?
            }
            Step::MetricsRate(rate) => {
                self.metrics.set_rate(*rate);
                Ok(())
            }
            Step::ClientStall(seconds) => {
                self.metrics.set_client_stall(*seconds);
                Ok(())
            }
            Step::Jpeg(settings) => {
                self.jpeg.set(settings.clone());
                Ok(())
            }
            Step::Overlay(overlay) => {
                self.overlay.set_layers(overlay).map_err(|e| anyhow!(e))?;
                self.camera
                    .set_overlay(overlay)
                    .await
                    .map_err(|e| anyhow!(e))
            }
            Step::Privacy(on) => {
                self.camera.set_privacy(*on).await;
                Ok(())
            }
            Step::Tokens(auth) => {
                // An admin_token_file that cannot be read fails the change
                // (and it is rolled back) rather than locking everyone out.
                let admin = crate::http::auth::admin_token(auth)?;
                self.guard
                    .set_tokens(&admin, Some(auth.viewer_token.as_str()));
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::diff::{leaves, Effect};

    /// A copy of `config` with the leaf `key` changed (whatever its type).
    fn with_changed(config: &Config, key: &str) -> Config {
        let mut value = serde_json::to_value(config).unwrap();
        let mut node = &mut value;
        for part in key.split('.') {
            node = &mut node[part];
        }
        *node = match node.take() {
            serde_json::Value::Bool(b) => serde_json::Value::Bool(!b),
            serde_json::Value::Number(n) => (n.as_u64().unwrap() + 1).into(),
            serde_json::Value::String(s) if s.parse::<crate::config::Span>().is_ok() => "7s".into(),
            serde_json::Value::String(s) => format!("{s}x").into(),
            serde_json::Value::Array(mut items) => {
                items.push(serde_json::json!({ "name": "added" }));
                items.into()
            }
            other => other,
        };
        serde_json::from_value(value).unwrap()
    }

    /// Every key the schema declares live has a step that sets it.
    #[test]
    fn every_live_key_is_set_by_a_step() {
        let mut config = Config::default();
        config
            .camera
            .controls
            .insert("brightness".to_owned(), ControlSetting::Int(1));
        for (key, _) in leaves(&config) {
            if crate::config::diff::effect(&key) != Effect::Live {
                continue;
            }
            let wanted = with_changed(&config, &key);
            assert_ne!(wanted, config, "{key} did not change");
            assert!(
                !steps(&config, &wanted).is_empty(),
                "{key} has no live step"
            );
        }
    }

    #[test]
    fn only_what_changed_is_set() {
        let running = Config::default();
        let mut wanted = running.clone();
        wanted.encoder.bitrate_kbps = 800;
        wanted.metrics.rate_hz = 5;
        assert_eq!(
            steps(&running, &wanted),
            [Step::Bitrate(wanted.encoder.clone()), Step::MetricsRate(5)]
        );
    }
}
