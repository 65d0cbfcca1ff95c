//! `[publish]`: the camera's one encoded stream pushed to media servers
//! that already run — RTSP `ANNOUNCE`/`RECORD` (MediaMTX, an NVR), SRT
//! (MPEG-TS) and RTMP (FLV: YouTube, Twitch, OBS). Each target is an output
//! of its own kind: no second encode, and a dead or slow server never holds
//! the camera or another output back.

use serde::{Deserialize, Serialize};

use super::diff::{Effect, Effects};
use super::validate::Invalid;

/// Outputs named in effects (see `output::catalogue`).
const PUBLISH: &[&str] = &["publish"];

/// What goes beside the video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PublishAudio {
    /// Video only (MediaMTX, SRT receivers and most RTMP servers take it).
    #[default]
    None,
    /// A silent AAC track, for RTMP ingests that refuse video alone
    /// (YouTube asks for audio). Encoded once per target: tiny.
    SilentAac,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublishTarget {
    /// Unique; names the target in the API, the metrics and the logs.
    pub name: String,
    pub enabled: bool,
    /// `rtsp://host[:port]/path`, `srt://host:port[?streamid=…]` or
    /// `rtmp[s]://host[:port]/app` (the stream key in `key`).
    pub url: String,
    /// RTSP: the server's user and password (a secret).
    pub user: String,
    pub password: String,
    /// SRT: the encryption passphrase, 10–79 characters (a secret).
    pub passphrase: String,
    /// RTMP: the stream key, appended to the URL (a secret).
    pub key: String,
    pub audio: PublishAudio,
}

impl Default for PublishTarget {
    fn default() -> Self {
        Self {
            name: String::new(),
            enabled: true,
            url: String::new(),
            user: String::new(),
            password: String::new(),
            passphrase: String::new(),
            key: String::new(),
            audio: PublishAudio::None,
        }
    }
}

/// The protocol a target speaks, from its URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Rtsp,
    Srt,
    Rtmp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Rtsp => "rtsp",
            Protocol::Srt => "srt",
            Protocol::Rtmp => "rtmp",
        }
    }
}

impl PublishTarget {
    /// The protocol, or None for a URL edgecam cannot publish to.
    pub fn protocol(&self) -> Option<Protocol> {
        let (scheme, rest) = self.url.split_once("://")?;
        let host = rest.split(['/', '?']).next().unwrap_or_default();
        if host.is_empty() || host.contains('@') {
            return None;
        }
        match scheme {
            "rtsp" => Some(Protocol::Rtsp),
            "srt" => Some(Protocol::Srt),
            "rtmp" | "rtmps" => Some(Protocol::Rtmp),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublishConfig {
    /// Publishing as a whole (the dashboard's start/stop switch); each
    /// target has its own `enabled` too.
    pub enabled: bool,
    pub targets: Vec<PublishTarget>,
}

impl Default for PublishConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            targets: Vec::new(),
        }
    }
}

impl PublishConfig {
    pub const EFFECTS: Effects = &[
        ("enabled", Effect::Restart(PUBLISH)),
        ("targets", Effect::Restart(PUBLISH)),
    ];

    /// The targets to publish to now.
    pub fn active_targets(&self) -> impl Iterator<Item = &PublishTarget> {
        self.targets.iter().filter(|t| self.enabled && t.enabled)
    }
}

pub fn validate(publish: &PublishConfig) -> Result<(), Invalid> {
    let fail = |message: String| {
        Err(Invalid {
            key: "publish.targets",
            message,
        })
    };
    for (index, target) in publish.targets.iter().enumerate() {
        let plain = |c: char| c.is_ascii_alphanumeric() || "-_".contains(c);
        if target.name.is_empty() || target.name.len() > 64 || !target.name.chars().all(plain) {
            return fail(format!(
                "target {}: name it with 1–64 letters, digits, - or _",
                index + 1
            ));
        }
        let name = &target.name;
        if publish.targets[..index].iter().any(|t| t.name == *name) {
            return fail(format!("target {name:?}: two targets have this name"));
        }
        let Some(protocol) = target.protocol() else {
            return fail(format!(
                "target {name:?}: url {:?} is not rtsp://host/path, srt://host:port or \
                 rtmp://host/app (credentials go in user/password, passphrase or key)",
                target.url
            ));
        };
        let passphrase = target.passphrase.chars().count();
        if protocol == Protocol::Srt && passphrase != 0 && !(10..=79).contains(&passphrase) {
            return fail(format!(
                "target {name:?}: an SRT passphrase has 10–79 characters"
            ));
        }
        let misplaced = [
            (
                "user/password",
                protocol != Protocol::Rtsp
                    && !(target.user.is_empty() && target.password.is_empty()),
            ),
            ("passphrase", protocol != Protocol::Srt && passphrase != 0),
            ("key", protocol != Protocol::Rtmp && !target.key.is_empty()),
        ];
        if let Some((what, _)) = misplaced.iter().find(|(_, wrong)| *wrong) {
            return fail(format!(
                "target {name:?}: {what} is not used by {}",
                protocol.name()
            ));
        }
        if target.audio != PublishAudio::None && protocol != Protocol::Rtmp {
            return fail(format!(
                "target {name:?}: silent audio is for RTMP ingests only"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> PublishTarget {
        PublishTarget {
            name: "a".to_owned(),
            url: url.to_owned(),
            ..PublishTarget::default()
        }
    }

    fn check(targets: Vec<PublishTarget>) -> Result<(), String> {
        validate(&PublishConfig {
            targets,
            ..PublishConfig::default()
        })
        .map_err(|e| e.message)
    }

    #[test]
    fn urls_say_the_protocol() {
        assert_eq!(target("rtsp://h:8554/cam").protocol(), Some(Protocol::Rtsp));
        assert_eq!(
            target("srt://h:9000?streamid=x").protocol(),
            Some(Protocol::Srt)
        );
        assert_eq!(target("rtmps://h/live2").protocol(), Some(Protocol::Rtmp));
        assert_eq!(target("http://h/x").protocol(), None);
        assert_eq!(target("rtsp://u:p@h/x").protocol(), None);
        assert_eq!(target("rtmp:///app").protocol(), None);
    }

    #[test]
    fn targets_are_checked_with_their_name_in_the_message() {
        assert_eq!(check(vec![target("rtsp://h/cam")]), Ok(()));
        let twice = check(vec![target("rtsp://h/a"), target("srt://h:1")]);
        assert!(twice.unwrap_err().contains("two targets"));
        assert!(check(vec![target("ftp://h")])
            .unwrap_err()
            .contains("\"a\""));
        let short = PublishTarget {
            passphrase: "short".to_owned(),
            ..target("srt://h:1")
        };
        assert!(check(vec![short]).unwrap_err().contains("10–79"));
        let key_on_rtsp = PublishTarget {
            key: "k".to_owned(),
            ..target("rtsp://h/a")
        };
        assert!(check(vec![key_on_rtsp])
            .unwrap_err()
            .contains("key is not used by rtsp"));
        let audio_on_srt = PublishTarget {
            audio: PublishAudio::SilentAac,
            ..target("srt://h:1")
        };
        assert!(check(vec![audio_on_srt]).is_err());
    }
}
