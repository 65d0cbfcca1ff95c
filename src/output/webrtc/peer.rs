//! One WebRTC peer: a branch of the shared WebRTC pipeline, `queue !
//! rtph264pay ! capsfilter ! webrtcbin`, packetising the one encoded
//! stream with the payload type this browser offered. Negotiation answers
//! the offer with every host candidate gathered (WHEP has no way to trickle
//! candidates to the client), and only then is the branch linked to the
//! stream, so nothing flows into a peer that is not set up.
//!
//! What webrtcbin 1.22 needs, learned from its source: the sink pad exists
//! before `create-answer` (the answer pairs the offer's video with it by
//! caps, and the caps carry the payload type, which 1.22 never rewrites);
//! `bundle-policy=max-bundle` (browsers refuse an answer without BUNDLE);
//! its ICE agent sends connectivity checks as keepalives, so a peer that
//! vanished shows as ICE `failed` — and its RTCP stops, which `rtpbin`
//! reports within seconds (`on-timeout`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _, Result};
use gst::prelude::*;
use gst_webrtc::{
    WebRTCICEConnectionState, WebRTCICEGatheringState, WebRTCPeerConnectionState,
    WebRTCRTPTransceiverDirection, WebRTCSDPType, WebRTCSessionDescription,
};
use tokio::sync::{mpsc, oneshot};

use super::offer::Offer;
use crate::config::WebrtcConfig;
use crate::metrics::registry::{Counter, Viewer};

/// How long each step of the answer may take. The first peer of the
/// process also waits for webrtcbin's DTLS certificate (an RSA key made on
/// the spot): seconds on a slow board, more under emulation.
const NEGOTIATION: Duration = Duration::from_secs(15);

/// A negotiation step that did not finish in time: the board is busy,
/// the offer is not at fault (answered 503, not 400).
#[derive(Debug, thiserror::Error)]
#[error("{0} took over {NEGOTIATION:?}")]
pub struct TooSlow(String);
/// Host candidates are known at once; a STUN server may take a moment.
const GATHERING: Duration = Duration::from_secs(2);

/// Why a peer ended, as counted in `edgecam_webrtc_peers_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// The client sent DELETE.
    Deleted,
    /// ICE or DTLS never completed within the limit.
    NeverConnected,
    /// ICE or the peer connection failed, or closed.
    Failed,
    /// The client stopped sending RTCP (it vanished without DELETE).
    Vanished,
    /// The client said goodbye in RTCP (BYE).
    Bye,
    /// An element of this peer's branch failed.
    Error,
    /// The WebRTC output stopped (an edit, or edgecam exiting).
    Stopped,
}

impl Cause {
    pub const ALL: [Cause; 7] = [
        Cause::Deleted,
        Cause::NeverConnected,
        Cause::Failed,
        Cause::Vanished,
        Cause::Bye,
        Cause::Error,
        Cause::Stopped,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cause::Deleted => "deleted",
            Cause::NeverConnected => "never_connected",
            Cause::Failed => "failed",
            Cause::Vanished => "vanished",
            Cause::Bye => "bye",
            Cause::Error => "error",
            Cause::Stopped => "stopped",
        }
    }
}

/// What a peer's signals tell the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// ICE and DTLS are up: it can decode from the next keyframe.
    Connected,
    /// It has to go.
    Close(Cause),
}

/// The things a peer's branch reports to, shared by every peer.
#[derive(Clone)]
pub struct Wiring {
    pub events: mpsc::UnboundedSender<(String, Event)>,
    pub bytes_sent: Counter,
}

/// A peer in the shared pipeline.
pub struct Peer {
    pub id: String,
    bin: gst::Bin,
    webrtcbin: gst::Element,
    tee_pad: Mutex<Option<gst::Pad>>,
    pub created: Instant,
    pub connected: AtomicBool,
    /// When its RTCP was last heard, in ms after `created` (0: never).
    heard_ms: Arc<AtomicU64>,
    _viewer: Viewer,
}

impl Peer {
    /// Builds the branch for `offer` inside `pipeline` (not yet fed), with
    /// the ICE settings of `config`.
    pub fn build(
        id: String,
        offer: &Offer,
        config: &WebrtcConfig,
        pipeline: &gst::Pipeline,
        wiring: &Wiring,
        viewer: Viewer,
    ) -> Result<Self> {
        let bin = gst::Bin::with_name(&format!("peer-{id}"));
        // A slow peer loses frames here rather than holding the others.
        let queue = gst::ElementFactory::make("queue")
            .property("max-size-buffers", 0u32)
            .property("max-size-bytes", 0u32)
            .property("max-size-time", 500_000_000u64)
            .property_from_str("leaky", "downstream")
            .build()?;
        // config-interval 0: the stream carries SPS/PPS before every
        // keyframe already (see output::rtsp for why not -1).
        let pay = gst::ElementFactory::make("rtph264pay")
            .property("pt", offer.payload)
            .property_from_str("aggregate-mode", "zero-latency")
            .build()?;
        // The SSRC is chosen here so the answer can announce it (the
        // payloader's own is known only once packets flow, and an answer
        // announcing SSRC 0 makes a browser drop every packet).
        let ssrc = u32::from_str_radix(&crate::http::auth::random_hex(4)?, 16)?;
        let caps = gst::Caps::builder("application/x-rtp")
            .field("media", "video")
            .field("encoding-name", "H264")
            .field("clock-rate", 90_000i32)
            .field("payload", offer.payload as i32)
            .field("packetization-mode", "1")
            .field("ssrc", ssrc)
            .build();
        let filter = gst::ElementFactory::make("capsfilter")
            .property("caps", caps)
            .build()?;
        let webrtcbin = gst::ElementFactory::make("webrtcbin")
            .property_from_str("bundle-policy", "max-bundle")
            .build()
            .context("webrtcbin (packages gstreamer1.0-plugins-bad and gstreamer1.0-nice)")?;
        configure_ice(&webrtcbin, config);
        bin.add_many([&queue, &pay, &filter, &webrtcbin])?;
        gst::Element::link_many([&queue, &pay, &filter])?;
        let sink = webrtcbin
            .request_pad_simple("sink_%u")
            .ok_or_else(|| anyhow!("webrtcbin gave no sink pad"))?;
        filter
            .static_pad("src")
            .ok_or_else(|| anyhow!("capsfilter has no src pad"))?
            .link(&sink)
            .context("linking the payloader to webrtcbin")?;
        let transceiver = sink.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
        transceiver.set_property("direction", WebRTCRTPTransceiverDirection::Sendonly);
        // Retransmissions on request: a lost packet otherwise costs the
        // picture until the next keyframe.
        transceiver.set_property("do-nack", true);
        let head = queue
            .static_pad("sink")
            .ok_or_else(|| anyhow!("queue has no sink pad"))?;
        bin.add_pad(&gst::GhostPad::with_target(&head)?)?;
        count_bytes(&pay, wiring.bytes_sent.clone());
        let created = Instant::now();
        let heard_ms = Arc::new(AtomicU64::new(0));
        watch(&id, &webrtcbin, wiring, created, heard_ms.clone());
        pipeline.add(&bin)?;
        bin.sync_state_with_parent()
            .context("starting the peer's branch")?;
        Ok(Self {
            id,
            bin,
            webrtcbin,
            tee_pad: Mutex::new(None),
            created,
            connected: AtomicBool::new(false),
            heard_ms,
            _viewer: viewer,
        })
    }

    /// Answers `offer`: remote description, answer (its H.264 `fmtp` set
    /// to `fmtp`, what the encoder makes: webrtcbin 1.22 writes only part
    /// of it), local description, and the candidates gathered meanwhile.
    /// Returns the answer's SDP.
    pub async fn answer(&self, offer: &Offer, fmtp: &str) -> Result<String> {
        let remote = WebRTCSessionDescription::new(WebRTCSDPType::Offer, offer.sdp.clone());
        let reply = promise(&self.webrtcbin, "set-remote-description", &remote).await?;
        if let Some(error) = error_in(reply.as_ref()) {
            return Err(anyhow!("the offer was not accepted: {error}"));
        }
        let reply = promise(&self.webrtcbin, "create-answer", &None::<gst::Structure>).await?;
        let answer = reply
            .as_ref()
            .and_then(|s| s.get::<WebRTCSessionDescription>("answer").ok())
            .ok_or_else(|| {
                anyhow!(
                    "no answer was made: {}",
                    error_in(reply.as_ref()).unwrap_or_default()
                )
            })?;
        let answer = with_fmtp(&answer, offer.payload, fmtp);
        promise(&self.webrtcbin, "set-local-description", &answer).await?;
        let gathered = Instant::now() + GATHERING;
        while self
            .webrtcbin
            .property::<WebRTCICEGatheringState>("ice-gathering-state")
            != WebRTCICEGatheringState::Complete
            && Instant::now() < gathered
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let local = self
            .webrtcbin
            .property::<Option<WebRTCSessionDescription>>("local-description")
            .ok_or_else(|| anyhow!("webrtcbin has no local description"))?;
        local
            .sdp()
            .as_text()
            .map_err(|err| anyhow!("writing the answer: {err}"))
    }

    /// How long since its RTCP was last heard (since it was created, if
    /// never): a browser sends a report about every second while it plays.
    pub fn silent_for(&self) -> Duration {
        let heard = Duration::from_millis(self.heard_ms.load(Ordering::Relaxed));
        self.created.elapsed().saturating_sub(heard)
    }

    /// Counts as heard now (it just connected: its first report is due).
    pub fn heard_now(&self) {
        let now = self.created.elapsed().as_millis() as u64;
        self.heard_ms.fetch_max(now.max(1), Ordering::Relaxed);
    }

    /// Feeds the branch from `tee` from now on.
    pub fn link(&self, tee: &gst::Element) -> Result<()> {
        let pad = tee
            .request_pad_simple("src_%u")
            .ok_or_else(|| anyhow!("the tee gave no pad"))?;
        let head = self
            .bin
            .static_pad("sink")
            .ok_or_else(|| anyhow!("the peer's branch has no sink pad"))?;
        pad.link(&head).context("linking the peer to the stream")?;
        if let Ok(mut slot) = self.tee_pad.lock() {
            *slot = Some(pad);
        }
        Ok(())
    }

    /// Asks upstream (through the tee, to the one encoder) for a keyframe.
    pub fn request_keyframe(&self) {
        if let Some(head) = self.bin.static_pad("sink") {
            let event = gst_video::UpstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build();
            head.push_event(event);
        }
    }

    /// Candidates the client trickled in a PATCH (`a=candidate:` lines;
    /// `a=end-of-candidates` ends them). With max-bundle every candidate
    /// belongs to the first m-line.
    pub fn add_candidates(&self, fragment: &str) -> usize {
        let mut added = 0;
        for line in fragment.lines().map(str::trim) {
            let candidate = if let Some(candidate) = line.strip_prefix("a=candidate:") {
                format!("candidate:{candidate}")
            } else if line == "a=end-of-candidates" {
                String::new()
            } else {
                continue;
            };
            self.webrtcbin
                .emit_by_name::<()>("add-ice-candidate", &[&0u32, &candidate]);
            added += 1;
        }
        added
    }

    /// The ICE username fragment of the answer's peer (the client), to
    /// recognise an ICE restart, which is not supported.
    pub fn remote_ufrag(&self) -> Option<String> {
        let remote = self
            .webrtcbin
            .property::<Option<WebRTCSessionDescription>>("remote-description")?;
        let sdp = remote.sdp();
        let ufrag = sdp
            .medias()
            .find_map(|m| m.attribute_val("ice-ufrag").map(str::to_owned))
            .or_else(|| sdp.attribute_val("ice-ufrag").map(str::to_owned));
        ufrag
    }

    /// Unlinks the branch (when the tee is between buffers) and removes
    /// it from `pipeline`.
    pub async fn remove(&self, tee: &gst::Element, pipeline: &gst::Pipeline) {
        let tee_pad = self.tee_pad.lock().ok().and_then(|mut slot| slot.take());
        if let Some(pad) = tee_pad {
            let (done, unlinked) = oneshot::channel();
            let done = Mutex::new(Some(done));
            let tee = tee.clone();
            pad.add_probe(gst::PadProbeType::IDLE, move |pad, _| {
                if let Some(peer) = pad.peer() {
                    let _ = pad.unlink(&peer);
                }
                tee.release_request_pad(pad);
                if let Some(done) = done.lock().ok().and_then(|mut d| d.take()) {
                    let _ = done.send(());
                }
                gst::PadProbeReturn::Remove
            });
            let _ = tokio::time::timeout(Duration::from_secs(1), unlinked).await;
        }
        let (bin, pipeline) = (self.bin.clone(), pipeline.clone());
        let _ = tokio::task::spawn_blocking(move || {
            let _ = bin.set_state(gst::State::Null);
            let _ = pipeline.remove(&bin);
        })
        .await;
    }
}

/// `answer` with the `fmtp` of `payload` replaced by `fmtp`.
fn with_fmtp(
    answer: &WebRTCSessionDescription,
    payload: u32,
    fmtp: &str,
) -> WebRTCSessionDescription {
    let mut sdp = answer.sdp().to_owned();
    let prefix = format!("{payload} ");
    for media in sdp.medias_mut() {
        if media.media() != Some("video") {
            continue;
        }
        let existing = (0..media.attributes_len()).find(|&i| {
            media.attribute(i).is_some_and(|a| {
                a.key() == "fmtp" && a.value().is_some_and(|v| v.starts_with(&prefix))
            })
        });
        let value = format!("{payload} {fmtp}");
        match existing {
            Some(index) => {
                let _ = media
                    .replace_attribute(index, gst_sdp::SDPAttribute::new("fmtp", Some(&value)));
            }
            None => media.add_attribute("fmtp", Some(&value)),
        }
    }
    WebRTCSessionDescription::new(WebRTCSDPType::Answer, sdp)
}

/// STUN and TURN servers, the UDP port range, and connectivity checks as
/// keepalives (libnice's default keepalives need no reply, so a vanished
/// peer would stay "connected" forever).
fn configure_ice(webrtcbin: &gst::Element, config: &WebrtcConfig) {
    if !config.stun_server.is_empty() {
        webrtcbin.set_property("stun-server", &config.stun_server);
    }
    if !config.turn_server.is_empty() {
        webrtcbin.set_property("turn-server", &config.turn_server);
    }
    let ice = webrtcbin.property::<gst::glib::Object>("ice-agent");
    if config.udp_port_min != 0 && ice.has_property("min-rtp-port") {
        ice.set_property("min-rtp-port", u32::from(config.udp_port_min));
        ice.set_property("max-rtp-port", u32::from(config.udp_port_max));
    }
    if ice.has_property("agent") {
        let agent = ice.property::<gst::glib::Object>("agent");
        if agent.has_property("keepalive-conncheck") {
            agent.set_property("keepalive-conncheck", true);
        }
    }
}

/// Counts the RTP bytes this peer is sent.
fn count_bytes(pay: &gst::Element, bytes_sent: Counter) {
    let Some(pad) = pay.static_pad("src") else {
        return;
    };
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
        move |_, info| {
            let size = match &info.data {
                Some(gst::PadProbeData::Buffer(buffer)) => buffer.size(),
                Some(gst::PadProbeData::BufferList(list)) => list.iter().map(|b| b.size()).sum(),
                _ => 0,
            };
            bytes_sent.add(size as u64);
            gst::PadProbeReturn::Ok
        },
    );
}

/// Turns webrtcbin's and rtpbin's signals into the hub's events, and
/// notes when the peer's RTCP was heard.
fn watch(
    id: &str,
    webrtcbin: &gst::Element,
    wiring: &Wiring,
    created: Instant,
    heard_ms: Arc<AtomicU64>,
) {
    let send = {
        let (id, events) = (id.to_owned(), wiring.events.clone());
        move |event| {
            let _ = events.send((id.clone(), event));
        }
    };
    let on_ice = send.clone();
    webrtcbin.connect_notify(Some("ice-connection-state"), move |bin, _| {
        match bin.property::<WebRTCICEConnectionState>("ice-connection-state") {
            WebRTCICEConnectionState::Failed | WebRTCICEConnectionState::Closed => {
                on_ice(Event::Close(Cause::Failed))
            }
            _ => {}
        }
    });
    let on_connection = send.clone();
    webrtcbin.connect_notify(Some("connection-state"), move |bin, _| match bin
        .property::<WebRTCPeerConnectionState>(
        "connection-state",
    ) {
        WebRTCPeerConnectionState::Connected => on_connection(Event::Connected),
        WebRTCPeerConnectionState::Failed | WebRTCPeerConnectionState::Closed => {
            on_connection(Event::Close(Cause::Failed))
        }
        _ => {}
    });
    let rtpbin = webrtcbin
        .downcast_ref::<gst::Bin>()
        .and_then(|bin| bin.by_name("rtpbin"));
    if let Some(rtpbin) = rtpbin {
        // Emitted for every RTCP packet a source sends.
        rtpbin.connect("on-ssrc-active", false, move |_| {
            let now = created.elapsed().as_millis() as u64;
            heard_ms.fetch_max(now.max(1), Ordering::Relaxed);
            None
        });
        let on_timeout = send.clone();
        rtpbin.connect("on-timeout", false, move |_| {
            on_timeout(Event::Close(Cause::Vanished));
            None
        });
        rtpbin.connect("on-bye-ssrc", false, move |_| {
            send(Event::Close(Cause::Bye));
            None
        });
    }
}

/// Emits webrtcbin's promise-taking `signal` with `argument` and waits
/// for the reply.
async fn promise<T: ToValue>(
    webrtcbin: &gst::Element,
    signal: &str,
    argument: &T,
) -> Result<Option<gst::Structure>> {
    let (reply, replied) = oneshot::channel();
    let reply = Mutex::new(Some(reply));
    let promise = gst::Promise::with_change_func(move |result| {
        let structure = result.ok().flatten().map(|s| s.to_owned());
        if let Some(reply) = reply.lock().ok().and_then(|mut r| r.take()) {
            let _ = reply.send(structure);
        }
    });
    webrtcbin.emit_by_name::<()>(signal, &[argument, &promise]);
    tokio::time::timeout(NEGOTIATION, replied)
        .await
        .map_err(|_| TooSlow(signal.to_owned()))?
        .map_err(|_| anyhow!("{signal} was interrupted"))
}

/// The error a promise's reply carries, if any.
fn error_in(reply: Option<&gst::Structure>) -> Option<String> {
    let error = reply?.get::<gst::glib::Error>("error").ok()?;
    Some(error.to_string())
}
