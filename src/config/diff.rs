//! What changed between two configurations, and what each change takes to
//! apply — so an edit touches only what it must. The effect of each key is
//! declared beside its type in `schema` (each section's `EFFECTS`).

use serde::{Serialize, Serializer};
use serde_json::Value;

use super::Config;

/// What applying a changed key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Set on what runs; viewers notice nothing but the change.
    Live,
    /// These outputs restart (their viewers reconnect, as players do by
    /// themselves); the camera and the other outputs carry on.
    Restart(&'static [&'static str]),
    /// The camera pipeline is rebuilt; the outputs stay up, their viewers
    /// connected, and take the new camera's stream.
    Camera,
    /// Only a restart of the process applies it.
    Process,
}

impl Effect {
    /// How the API names it.
    pub fn name(self) -> &'static str {
        match self {
            Effect::Live => "live",
            Effect::Restart(_) => "restart",
            Effect::Camera => "camera",
            Effect::Process => "process",
        }
    }

    /// The outputs it restarts.
    pub fn outputs(self) -> &'static [&'static str] {
        match self {
            Effect::Restart(outputs) => outputs,
            _ => &[],
        }
    }
}

/// A section's keys and their effects. A key naming a table (like
/// `camera.controls`) covers every key inside it.
pub type Effects = &'static [(&'static str, Effect)];

/// One changed key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Dotted key, e.g. `encoder.bitrate_kbps`.
    pub key: String,
    pub from: Value,
    pub to: Value,
    #[serde(serialize_with = "effect_name")]
    pub effect: Effect,
    /// For `restart`: which outputs.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub outputs: &'static [&'static str],
}

fn effect_name<S: Serializer>(effect: &Effect, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(effect.name())
}

/// The effect of changing `key`, as its section declares it. A key no
/// section declares (none should: a test checks) takes a restart.
pub fn effect(key: &str) -> Effect {
    let Some((section, rest)) = key.split_once('.') else {
        return Effect::Process;
    };
    Config::SECTIONS
        .iter()
        .find(|(name, _)| *name == section)
        .and_then(|(_, effects)| {
            effects.iter().find(|(name, _)| {
                rest == *name
                    || rest
                        .strip_prefix(name)
                        .is_some_and(|inner| inner.starts_with('.'))
            })
        })
        .map_or(Effect::Process, |(_, effect)| *effect)
}

/// Every key whose effective value differs (defaults included), in order.
pub fn changes(old: &Config, new: &Config) -> Vec<Change> {
    let old_leaves = leaves(old);
    let new_leaves = leaves(new);
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
            let effect = effect(key);
            (from != to).then(|| Change {
                key: key.clone(),
                effect,
                outputs: effect.outputs(),
                from: redact(key, from),
                to: redact(key, to),
            })
        })
        .collect()
}

/// Every leaf of `config` as (dotted key, value).
pub fn leaves(config: &Config) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    flatten(
        "",
        &serde_json::to_value(config).unwrap_or_default(),
        &mut out,
    );
    out
}

/// `config` as JSON with every secret that has a value redacted: for
/// whatever shows settings to anyone but the file's owner.
pub fn redacted_json(config: &Config) -> Value {
    let mut value = serde_json::to_value(config).unwrap_or_default();
    let keys = super::patch::SECRETS
        .iter()
        .map(|(table, key)| (*table, *key))
        .chain(
            super::patch::LISTED_SECRETS
                .iter()
                .map(|(table, list, _)| (*table, *list)),
        );
    for (table, key) in keys {
        if let Some(leaf) = value.get_mut(table).and_then(|t| t.get_mut(key)) {
            *leaf = redact(&format!("{table}.{key}"), leaf.take());
        }
    }
    value
}

fn redact(key: &str, value: Value) -> Value {
    let hidden = || Value::String(super::patch::REDACTED.to_owned());
    let filled = |value: &Value| value.as_str().is_some_and(|s| !s.is_empty());
    if super::patch::is_secret(key) && filled(&value) {
        return hidden();
    }
    let (Some(keys), Value::Array(mut entries)) =
        (super::patch::listed_secrets(key), value.clone())
    else {
        return value;
    };
    for entry in &mut entries {
        for key in keys {
            if let Some(secret) = entry.get_mut(*key).filter(|v| filled(v)) {
                *secret = hidden();
            }
        }
    }
    Value::Array(entries)
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
    fn secrets_are_never_in_the_json_shown() {
        let mut config = Config::default();
        config.rtsp.password = "pw".to_owned();
        config.publish.targets = vec![crate::config::PublishTarget {
            name: "t".to_owned(),
            key: "stream-key".to_owned(),
            ..Default::default()
        }];
        let shown = redacted_json(&config).to_string();
        assert!(
            !shown.contains("\"pw\"") && !shown.contains("stream-key"),
            "{shown}"
        );
        assert!(shown.contains(super::super::patch::REDACTED));
    }

    #[test]
    fn each_change_says_what_it_takes() {
        let old = Config::default();
        let mut new = old.clone();
        new.encoder.bitrate_kbps = 3000;
        new.camera.width = 640;
        new.http.bind = "127.0.0.1:9000".to_owned();
        new.hls.window = 3;
        let changes = changes(&old, &new);
        let summary: Vec<(&str, Effect)> =
            changes.iter().map(|c| (c.key.as_str(), c.effect)).collect();
        assert_eq!(
            summary,
            [
                ("camera.width", Effect::Camera),
                ("encoder.bitrate_kbps", Effect::Live),
                ("hls.window", Effect::Restart(&["hls"])),
                ("http.bind", Effect::Live),
            ]
        );
        assert_eq!(changes[1].from, serde_json::json!(2000));
        let json = serde_json::to_value(&changes[2]).unwrap();
        assert_eq!(json["effect"], "restart");
        assert_eq!(json["outputs"], serde_json::json!(["hls"]));
        let json = serde_json::to_value(&changes[1]).unwrap();
        assert_eq!(json["effect"], "live");
        assert!(json.get("outputs").is_none(), "{json}");
    }

    #[test]
    fn tables_and_sections_find_their_effects() {
        assert_eq!(effect("camera.controls.brightness"), Effect::Live);
        assert_eq!(effect("camera.controlsx"), Effect::Process);
        assert_eq!(effect("rtsp.path"), Effect::Restart(&["rtsp", "hls"]));
        assert_eq!(effect("metrics.rate_hz"), Effect::Live);
        assert_eq!(effect("auth.viewer_token"), Effect::Live);
        assert_eq!(effect("api.max_body_kib"), Effect::Process);
        assert_eq!(effect("nonsense"), Effect::Process);
    }

    /// Every key of the schema has its effect declared, and every
    /// declaration names a key that exists: the tables cannot drift from
    /// the types.
    #[test]
    fn every_key_declares_its_effect() {
        let mut config = Config::default();
        config.camera.controls.insert(
            "brightness".to_owned(),
            crate::config::ControlSetting::Int(1),
        );
        let keys: Vec<String> = leaves(&config).into_iter().map(|(k, _)| k).collect();
        for key in &keys {
            let (section, rest) = key.split_once('.').unwrap();
            let (_, effects) = Config::SECTIONS
                .iter()
                .find(|(name, _)| *name == section)
                .unwrap_or_else(|| panic!("section {section} declares no effects"));
            let top = rest.split('.').next().unwrap();
            assert!(
                effects.iter().any(|(name, _)| *name == top),
                "{key} declares no effect"
            );
        }
        for (section, effects) in Config::SECTIONS {
            for (name, _) in effects {
                let key = format!("{section}.{name}");
                assert!(
                    keys.iter()
                        .any(|k| *k == key || k.starts_with(&format!("{key}."))),
                    "{key} has an effect but is no key"
                );
            }
        }
    }
}
