//! The peers and the one pipeline they share: `appsrc ! tee`, fed from the
//! encoded tap while at least one peer exists, each peer a branch of the
//! tee. The hub admits peers (up to `webrtc.max_peers`), turns their
//! events into keyframe requests and teardowns, and ends peers that never
//! connect within [`CONNECT_LIMIT`].

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _, Result};
use gst::prelude::*;
use tokio::sync::mpsc;

use super::offer::Offer;
use super::peer::{Cause, Event, Peer, Wiring};
use super::{BYTES_SENT, KEYFRAME_REQUESTS, PEERS_CLOSED};
use crate::config::{Config, WebrtcConfig};
use crate::metrics::registry::{Counter, Sessions};
use crate::output::{Context, Failures};

/// A peer must have connected (ICE and DTLS) this long after its offer.
pub const CONNECT_LIMIT: Duration = Duration::from_secs(10);
/// A connected peer whose RTCP has not been heard for this long is gone
/// (closed without DELETE, or its network is); browsers report every
/// second or so.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(5);
/// Keyframe requests closer together than this are merged into one.
pub const KEYFRAME_SPACING: Duration = Duration::from_millis(500);

/// Why a peer was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("{0} peers already watch (webrtc.max_peers); try again later or use HLS")]
    Full(u32),
    #[error("the offer could not be answered: {0:#}")]
    Negotiation(anyhow::Error),
    /// The board did not finish answering in time (a busy or slow board:
    /// the first peer also waits for the DTLS certificate to be made).
    #[error("{0:#}; try again")]
    Busy(anyhow::Error),
    #[error("{0:#}")]
    Internal(anyhow::Error),
}

pub struct Hub {
    config: WebrtcConfig,
    /// The profile the encoder makes (offers are matched against it).
    profile: crate::config::H264Profile,
    /// The answer's H.264 `fmtp` (see `offer::answer_fmtp`).
    fmtp: String,
    context: Context,
    viewers: Sessions,
    wiring: Wiring,
    closed: HashMap<Cause, Counter>,
    keyframes: Keyframes,
    state: Mutex<State>,
    runtime: tokio::runtime::Handle,
}

#[derive(Default)]
struct State {
    shared: Option<Shared>,
    peers: HashMap<String, Arc<Peer>>,
    stopped: bool,
}

/// The pipeline the peers share, while there are peers.
#[derive(Clone)]
struct Shared {
    pipeline: gst::Pipeline,
    tee: gst::Element,
    _subscription: Arc<crate::pipeline::Subscription>,
}

/// Merges keyframe requests that come close together.
#[derive(Clone)]
struct Keyframes {
    last_sent: Arc<Mutex<Option<Instant>>>,
    sent: Counter,
    merged: Counter,
}

impl Keyframes {
    /// Whether a request now goes to the encoder (else it is merged into
    /// the one sent just before).
    fn admit(&self) -> bool {
        let Ok(mut last) = self.last_sent.lock() else {
            return true;
        };
        if last.is_some_and(|at| at.elapsed() < KEYFRAME_SPACING) {
            self.merged.add(1);
            false
        } else {
            *last = Some(Instant::now());
            self.sent.add(1);
            true
        }
    }
}

impl Hub {
    pub fn start(config: &Config, context: &Context) -> Result<Arc<Self>> {
        let runtime = tokio::runtime::Handle::try_current()
            .context("the WebRTC output needs the async runtime")?;
        let registry = &context.registry;
        let (events, incoming) = mpsc::unbounded_channel();
        let closed = Cause::ALL
            .iter()
            .map(|cause| {
                let counter = registry.counter("webrtc", PEERS_CLOSED, Some(cause.name()));
                (*cause, counter)
            })
            .collect();
        let hub = Arc::new(Self {
            config: config.webrtc.clone(),
            profile: config.encoder.profile,
            fmtp: super::offer::answer_fmtp(
                config.encoder.profile,
                config.camera.width,
                config.camera.height,
                config.camera.fps,
            ),
            context: context.clone(),
            viewers: registry.sessions("webrtc"),
            wiring: Wiring {
                events,
                bytes_sent: registry.counter("webrtc", BYTES_SENT, None),
            },
            closed,
            keyframes: Keyframes {
                last_sent: Arc::default(),
                sent: registry.counter("webrtc", KEYFRAME_REQUESTS, Some("sent")),
                merged: registry.counter("webrtc", KEYFRAME_REQUESTS, Some("merged")),
            },
            state: Mutex::new(State::default()),
            runtime,
        });
        hub.runtime
            .spawn(handle_events(Arc::downgrade(&hub), incoming));
        hub.runtime.spawn(end_unconnected(Arc::downgrade(&hub)));
        Ok(hub)
    }

    /// Admits a peer for `offer`: its branch, the answer, then the stream.
    /// Returns the peer's id and the answer's SDP.
    pub async fn admit(self: &Arc<Self>, offer: &Offer) -> Result<(String, String), Refused> {
        let id = crate::http::auth::random_hex(16).map_err(Refused::Internal)?;
        let built = {
            let mut state = self.state.lock().map_err(|_| poisoned())?;
            if state.stopped {
                return Err(Refused::Internal(anyhow!("the WebRTC output is stopping")));
            }
            if state.peers.len() >= self.config.max_peers as usize {
                return Err(Refused::Full(self.config.max_peers));
            }
            let shared = match &state.shared {
                Some(shared) => shared.clone(),
                None => {
                    let shared = self.share().map_err(Refused::Internal)?;
                    state.shared = Some(shared.clone());
                    shared
                }
            };
            let (viewer, _) = self.viewers.join();
            let built = Peer::build(
                id.clone(),
                offer,
                &self.config,
                &shared.pipeline,
                &self.wiring,
                viewer,
            );
            built.map(|peer| {
                let peer = Arc::new(peer);
                state.peers.insert(id.clone(), peer.clone());
                (peer, shared)
            })
        };
        let (peer, shared) = match built {
            Ok(built) => built,
            Err(err) => {
                self.release_if_idle().await;
                return Err(Refused::Internal(err));
            }
        };
        let answer = match peer.answer(offer, &self.fmtp).await {
            Ok(answer) => answer,
            Err(err) => {
                self.close(&id, Cause::Error).await;
                return Err(match err.downcast_ref::<super::peer::TooSlow>() {
                    Some(_) => Refused::Busy(err),
                    None => Refused::Negotiation(err),
                });
            }
        };
        if let Err(err) = peer.link(&shared.tee) {
            self.close(&id, Cause::Error).await;
            return Err(Refused::Internal(err));
        }
        tracing::info!(
            peer = %id,
            payload = offer.payload,
            viewers = self.viewers.count(),
            "WebRTC viewer connecting"
        );
        Ok((id, answer))
    }

    pub fn profile(&self) -> crate::config::H264Profile {
        self.profile
    }

    pub fn peer(&self, id: &str) -> Option<Arc<Peer>> {
        self.state.lock().ok()?.peers.get(id).cloned()
    }

    /// Ends the peer `id` for `cause`; false if there was none.
    pub async fn close(&self, id: &str, cause: Cause) -> bool {
        let (peer, shared, last) = {
            let Ok(mut state) = self.state.lock() else {
                return false;
            };
            let Some(peer) = state.peers.remove(id) else {
                return false;
            };
            let last = state.peers.is_empty();
            let shared = if last {
                state.shared.take()
            } else {
                state.shared.clone()
            };
            (peer, shared, last)
        };
        if let Some(shared) = &shared {
            peer.remove(&shared.tee, &shared.pipeline).await;
        }
        if let Some(counter) = self.closed.get(&cause) {
            counter.add(1);
        }
        tracing::info!(peer = %id, cause = cause.name(), viewers = self.viewers.count().saturating_sub(1), "WebRTC viewer gone");
        drop(peer);
        if let (true, Some(shared)) = (last, shared) {
            stop_pipeline(shared).await;
        }
        true
    }

    /// Stops the shared pipeline when a failed admission left it empty.
    async fn release_if_idle(&self) {
        let shared = {
            let Ok(mut state) = self.state.lock() else {
                return;
            };
            if !state.peers.is_empty() {
                return;
            }
            state.shared.take()
        };
        if let Some(shared) = shared {
            stop_pipeline(shared).await;
        }
    }

    /// The pipeline every peer branches from, subscribed to the encoded
    /// tap, on the shared timeline.
    fn share(self: &Arc<Self>) -> Result<Shared> {
        let pipeline = gst::Pipeline::with_name("webrtc");
        let appsrc = gst_app::AppSrc::builder()
            .name("webrtc-src")
            .is_live(true)
            .format(gst::Format::Time)
            .build();
        let tee = gst::ElementFactory::make("tee")
            .property("allow-not-linked", true)
            .build()?;
        pipeline.add_many([appsrc.upcast_ref(), &tee])?;
        appsrc.link(&tee).context("linking the WebRTC stream")?;
        self.merge_keyframe_requests(&tee);
        self.context.timeline.apply(&pipeline);
        self.watch_bus(&pipeline);
        let subscription = self.context.taps.encoded.subscribe(&appsrc)?;
        self.context.inventory.register(pipeline.upcast_ref());
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| anyhow!("the WebRTC pipeline did not start"))?;
        Ok(Shared {
            pipeline,
            tee,
            _subscription: Arc::new(subscription),
        })
    }

    /// Keyframe requests travel up from the peers through the tee to the
    /// encoder; those within [`KEYFRAME_SPACING`] of the last are merged.
    fn merge_keyframe_requests(&self, tee: &gst::Element) {
        let Some(pad) = tee.static_pad("sink") else {
            return;
        };
        let keyframes = self.keyframes.clone();
        pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
            let is_request = matches!(&info.data, Some(gst::PadProbeData::Event(event))
                if gst_video::UpstreamForceKeyUnitEvent::parse(event).is_ok());
            if !is_request || keyframes.admit() {
                gst::PadProbeReturn::Ok
            } else {
                // Handled, not Drop: with Drop, gstreamer-rs on GStreamer
                // 1.22 leaves core to unref a NULL event (a critical).
                gst::PadProbeReturn::Handled
            }
        });
    }

    /// An error inside one peer's branch ends that peer; anywhere else it
    /// is the output's failure (the supervisor restarts it).
    fn watch_bus(&self, pipeline: &gst::Pipeline) {
        let Some(bus) = pipeline.bus() else {
            return;
        };
        let failures: Failures = self.context.failures.clone();
        let events = self.wiring.events.clone();
        bus.set_sync_handler(move |_, message| {
            if let gst::MessageView::Error(err) = message.view() {
                match message.src().and_then(peer_of) {
                    Some(id) => {
                        tracing::warn!(peer = %id, "WebRTC peer failed: {}", err.error());
                        let _ = events.send((id, Event::Close(Cause::Error)));
                    }
                    None => failures.report(format!("the WebRTC pipeline: {}", err.error())),
                }
            }
            gst::BusSyncReply::Drop
        });
    }

    /// Fault injection: the shared pipeline fails as a whole.
    pub fn break_now(&self) {
        self.context
            .failures
            .report("injected fault: the WebRTC output failed");
    }

    /// Ends every peer (the output stops). Called off the event loop.
    pub fn stop(&self) {
        let ids: Vec<String> = match self.state.lock() {
            Ok(mut state) => {
                state.stopped = true;
                state.peers.keys().cloned().collect()
            }
            Err(_) => return,
        };
        self.runtime.block_on(async {
            for id in ids {
                self.close(&id, Cause::Stopped).await;
            }
        });
    }

    fn on_event(&self, id: &str, event: Event) -> Option<Cause> {
        match event {
            Event::Connected => {
                let peer = self.peer(id)?;
                peer.heard_now();
                if !peer.connected.swap(true, Ordering::Relaxed) {
                    tracing::info!(peer = %id, after_ms = peer.created.elapsed().as_millis() as u64, "WebRTC viewer connected");
                    // From now on it can decode: from the next keyframe.
                    peer.request_keyframe();
                }
                None
            }
            Event::Close(cause) => Some(cause),
        }
    }
}

/// The id of the peer whose branch `element` is in, if any.
fn peer_of(element: &gst::Object) -> Option<String> {
    let mut current = Some(element.clone());
    while let Some(object) = current {
        if let Some(id) = object.name().strip_prefix("peer-") {
            return Some(id.to_owned());
        }
        current = object.parent();
    }
    None
}

fn poisoned() -> Refused {
    Refused::Internal(anyhow!("the WebRTC peers' lock is poisoned"))
}

async fn stop_pipeline(shared: Shared) {
    let pipeline = shared.pipeline.clone();
    let _ = tokio::task::spawn_blocking(move || pipeline.set_state(gst::State::Null)).await;
    drop(shared);
}

/// Carries out the peers' events for as long as the hub exists.
async fn handle_events(
    hub: std::sync::Weak<Hub>,
    mut incoming: mpsc::UnboundedReceiver<(String, Event)>,
) {
    while let Some((id, event)) = incoming.recv().await {
        let Some(hub) = hub.upgrade() else {
            return;
        };
        if let Some(cause) = hub.on_event(&id, event) {
            hub.close(&id, cause).await;
        }
    }
}

/// Ends peers that have not connected within [`CONNECT_LIMIT`], and
/// connected ones silent for [`SILENCE_LIMIT`].
async fn end_unconnected(hub: std::sync::Weak<Hub>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(hub) = hub.upgrade() else {
            return;
        };
        let ended: Vec<(String, Cause)> = match hub.state.lock() {
            Ok(state) => state
                .peers
                .values()
                .filter_map(|p| {
                    let connected = p.connected.load(Ordering::Relaxed);
                    if !connected && p.created.elapsed() > CONNECT_LIMIT {
                        Some((p.id.clone(), Cause::NeverConnected))
                    } else if connected && p.silent_for() > SILENCE_LIMIT {
                        Some((p.id.clone(), Cause::Vanished))
                    } else {
                        None
                    }
                })
                .collect(),
            Err(_) => return,
        };
        for (id, cause) in ended {
            hub.close(&id, cause).await;
        }
    }
}
