//! What changed between two configurations, and what each change takes to
//! apply — so a remote edit touches only what it must.

use serde::Serialize;
use serde_json::Value;

use super::Config;

/// What applying a changed key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Set on the running pipeline; viewers notice nothing but the change.
    Live,
    /// The camera pipeline and its outputs are rebuilt: RTSP and HLS
    /// viewers reconnect (their players do so by themselves).
    Pipeline,
    /// Only a restart of the process applies it.
    Process,
}

/// One changed key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Dotted key, e.g. `encoder.bitrate_kbps`.
    pub key: String,
    pub from: Value,
    pub to: Value,
    pub effect: Effect,
}

/// The effect of changing `key`.
pub fn effect(key: &str) -> Effect {
    const LIVE: [&str; 7] = [
        "http.bind",
        "encoder.bitrate_kbps",
        "camera.stall_timeout_ms",
        "camera.retry_max_s",
        "camera.fault_injection",
        "metrics.rate_hz",
        "metrics.ws_stall_s",
    ];
    if LIVE.contains(&key) || key.starts_with("camera.controls.") {
        Effect::Live
    } else if ["camera.", "encoder.", "rtsp.", "hls."]
        .iter()
        .any(|section| key.starts_with(section))
    {
        Effect::Pipeline
    } else {
        Effect::Process
    }
}

/// Every key whose effective value differs (defaults included), in order.
pub fn changes(old: &Config, new: &Config) -> Vec<Change> {
    let mut old_leaves = Vec::new();
    let mut new_leaves = Vec::new();
    flatten(
        "",
        &serde_json::to_value(old).unwrap_or_default(),
        &mut old_leaves,
    );
    flatten(
        "",
        &serde_json::to_value(new).unwrap_or_default(),
        &mut new_leaves,
    );
    let mut keys: Vec<&String> = old_leaves
        .iter()
        .chain(&new_leaves)
        .map(|(k, _)| k)
        .collect();
    keys.sort();
    keys.dedup();
    let find = |leaves: &[(String, Value)], key: &str| {
        leaves
            .iter()
            .find(|(k, _)| k == key)
            .map_or(Value::Null, |(_, v)| v.clone())
    };
    keys.into_iter()
        .filter_map(|key| {
            let (from, to) = (find(&old_leaves, key), find(&new_leaves, key));
            (from != to).then(|| Change {
                key: key.clone(),
                effect: effect(key),
                from: redact(key, from),
                to: redact(key, to),
            })
        })
        .collect()
}

fn redact(key: &str, value: Value) -> Value {
    let secret = super::patch::SECRETS
        .iter()
        .any(|(table, name)| key == format!("{table}.{name}"));
    if secret && value.as_str().is_some_and(|s| !s.is_empty()) {
        Value::String(super::patch::REDACTED.to_owned())
    } else {
        value
    }
}

fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&path, value, out);
            }
        }
        leaf => out.push((prefix.to_owned(), leaf.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_change_says_what_it_takes() {
        let old = Config::default();
        let mut new = old.clone();
        new.encoder.bitrate_kbps = 3000;
        new.camera.width = 640;
        new.http.bind = "127.0.0.1:9000".to_owned();
        let changes = changes(&old, &new);
        let summary: Vec<(&str, Effect)> =
            changes.iter().map(|c| (c.key.as_str(), c.effect)).collect();
        assert_eq!(
            summary,
            [
                ("camera.width", Effect::Pipeline),
                ("encoder.bitrate_kbps", Effect::Live),
                ("http.bind", Effect::Live),
            ]
        );
        assert_eq!(changes[1].from, serde_json::json!(2000));
    }

    #[test]
    fn camera_controls_apply_live() {
        assert_eq!(effect("camera.controls.brightness"), Effect::Live);
        assert_eq!(effect("rtsp.path"), Effect::Pipeline);
        assert_eq!(effect("metrics.rate_hz"), Effect::Live);
        assert_eq!(effect("http.bind"), Effect::Live);
        assert_eq!(effect("auth.viewer_token"), Effect::Process);
    }
}
