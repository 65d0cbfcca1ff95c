//! WebRTC over WHEP (draft-ietf-wish-whep, as MediaMTX serves it): a
//! browser POSTs an SDP offer to `/whep/{stream}` and plays the answer,
//! sub-second, from the camera's one encoder — never an encode per viewer.
//!
//! The stack is GStreamer's own `webrtcbin` (gstreamer1.0-plugins-bad, ICE
//! by libnice from gstreamer1.0-nice), driven from here: it is in Debian
//! and in the Pi images already, cross-builds with the existing recipe,
//! and is fed like RTSP and HLS from the encoded tap. (`webrtcsink` brings
//! its own web server and, in 1.22, no WHEP; a pure-Rust stack such as
//! str0m would need our own packetiser, pacing and SRTP kept in step.)
//!
//! One shared pipeline, `appsrc ! tee`, exists while at least one peer
//! does; each peer is a branch of it (see `peer`). Keyframe requests from
//! new peers and from browsers' PLI/FIR go up to the one encoder, at most
//! one every [`KEYFRAME_SPACING`] (the rest are merged into it), so many
//! peers cannot make it encode only keyframes.

mod hub;
mod offer;
mod peer;
mod whep;

use std::sync::Arc;

use anyhow::Result;

use super::{Context, Output, Published, Running};
use crate::config::Config;
use crate::http::Route;
use crate::metrics::registry::CounterSpec;

pub use hub::KEYFRAME_SPACING;

/// The counters the WebRTC output keeps (see `metrics::registry`).
pub const BYTES_SENT: CounterSpec = CounterSpec {
    name: "webrtc_bytes_sent",
    help: "Bytes of RTP sent to WebRTC peers",
    label: None,
};
pub const KEYFRAME_REQUESTS: CounterSpec = CounterSpec {
    name: "webrtc_keyframe_requests",
    help: "Keyframe requests from WebRTC peers (new peers, PLI/FIR): sent to the encoder, or merged into one sent just before",
    label: Some("outcome"),
};
pub const PEERS_CLOSED: CounterSpec = CounterSpec {
    name: "webrtc_peers_closed",
    help: "WebRTC peers torn down, by cause",
    label: Some("cause"),
};

#[derive(Default)]
pub struct Webrtc {
    served: Published<whep::Served>,
}

impl Output for Webrtc {
    fn name(&self) -> &'static str {
        "webrtc"
    }

    fn enabled(&self, config: &Config) -> bool {
        config.webrtc.enabled
    }

    fn settings(&self) -> &'static [&'static str] {
        &["webrtc"]
    }

    fn start(&self, config: &Config, context: &Context) -> Result<Box<dyn Running>> {
        let hub = hub::Hub::start(config, context)?;
        let stream = super::hls::stream_name(&config.rtsp.path);
        self.served.set(whep::Served {
            hub: hub.clone(),
            stream: stream.clone(),
            ice_servers: ice_links(&config.webrtc),
        });
        Ok(Box::new(Started {
            hub,
            served: self.served.clone(),
            description: serde_json::json!({
                "whep": format!("/whep/{stream}"),
                "max_peers": config.webrtc.max_peers,
            }),
        }))
    }

    fn routes(&self) -> Vec<Route> {
        whep::routes(&self.served)
    }
}

/// The ICE servers as WHEP `Link` headers (TURN credentials included: the
/// routes need the viewer token).
fn ice_links(config: &crate::config::WebrtcConfig) -> Vec<String> {
    let mut links = Vec::new();
    if let Some(server) = config.stun_server.strip_prefix("stun://") {
        links.push(format!("<stun:{server}>; rel=\"ice-server\""));
    }
    for scheme in ["turn", "turns"] {
        let Some(rest) = config.turn_server.strip_prefix(&format!("{scheme}://")) else {
            continue;
        };
        let (credentials, server) = rest.rsplit_once('@').unwrap_or(("", rest));
        let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
        let mut link = format!("<{scheme}:{server}>; rel=\"ice-server\"");
        if !user.is_empty() {
            link.push_str(&format!(
                "; username=\"{user}\"; credential=\"{password}\"; credential-type=\"password\""
            ));
        }
        links.push(link);
    }
    links
}

struct Started {
    hub: Arc<hub::Hub>,
    served: Published<whep::Served>,
    description: serde_json::Value,
}

impl Running for Started {
    fn describe(&self) -> serde_json::Value {
        self.description.clone()
    }

    fn break_now(&self) {
        self.hub.break_now();
    }

    fn stop(self: Box<Self>) {
        self.served.clear();
        self.hub.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_servers_become_link_headers() {
        let config = crate::config::WebrtcConfig {
            stun_server: "stun://stun.lan:3478".to_owned(),
            turn_server: "turn://cam:s3cret@turn.lan:3478".to_owned(),
            ..Default::default()
        };
        assert_eq!(
            ice_links(&config),
            [
                "<stun:stun.lan:3478>; rel=\"ice-server\"",
                "<turn:turn.lan:3478>; rel=\"ice-server\"; username=\"cam\"; \
                 credential=\"s3cret\"; credential-type=\"password\""
            ]
        );
        assert!(ice_links(&Default::default()).is_empty());
    }
}
