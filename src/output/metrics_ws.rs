//! The metrics WebSocket, `/api/metrics/ws`: `hello`, then every sample as
//! JSON text messages (protocol: docs/metrics.md). Its viewers are counted
//! as `ws`.
//!
//! A slow client must never slow the video or the other clients: each has
//! its own bounded queue (its place in the broadcast ring) and loses its
//! oldest samples when it falls behind. A client that stops reading
//! altogether is disconnected: the server pings every second, and a client
//! that has not answered (or not taken a message) within `stall` is gone.

use std::time::{Duration, Instant};

use anyhow::Result;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use super::{Context, Output, Published, Running, Serving};
use crate::config::Config;
use crate::http::{Access, Route};
use crate::metrics::registry::Sessions;
use crate::metrics::Metrics;

const PATH: &str = "/api/metrics/ws";

/// The metrics WebSocket output (always on).
#[derive(Default)]
pub struct MetricsWs {
    served: Published<Served>,
}

#[derive(Clone)]
struct Served {
    metrics: Metrics,
    viewers: Sessions,
}

impl Output for MetricsWs {
    fn name(&self) -> &'static str {
        "metrics_ws"
    }

    /// Counted as `ws`, as samples have always called these viewers.
    fn viewer_label(&self) -> &'static str {
        "ws"
    }

    fn enabled(&self, _config: &Config) -> bool {
        true
    }

    fn start(&self, _config: &Config, context: &Context) -> Result<Box<dyn Running>> {
        self.served.set(Served {
            metrics: context.metrics.clone(),
            viewers: context.registry.sessions("ws"),
        });
        // New clients are refused once stopped; connected ones keep their
        // samples until they leave.
        Ok(Box::new(Serving {
            served: self.served.clone(),
            stop: None,
            failures: context.failures.clone(),
            description: PATH.into(),
            fault: "injected fault: the metrics WebSocket failed",
        }))
    }

    fn routes(&self) -> Vec<Route> {
        vec![Route {
            method: "GET",
            path: PATH,
            access: Access::Viewer,
            handler: axum::routing::get(metrics_ws).with_state(self.served.clone()),
        }]
    }
}

async fn metrics_ws(
    State(served): State<Published<Served>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    match served.get() {
        Some(served) => upgrade.on_upgrade(move |socket| serve_client(socket, served)),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the metrics WebSocket is restarting\n",
        )
            .into_response(),
    }
}

async fn serve_client(socket: WebSocket, served: Served) {
    let metrics = served.metrics;
    let stall = metrics.client_stall();
    let (viewer, now) = served.viewers.join();
    tracing::debug!(clients = now, "metrics WebSocket client connected");
    let reason = stream_samples(socket, &metrics, stall).await;
    drop(viewer);
    let now = served.viewers.count();
    match reason {
        Ending::Stalled => tracing::info!(
            clients = now,
            "metrics WebSocket client stalled for {stall:?}; disconnected"
        ),
        Ending::Closed => tracing::debug!(clients = now, "metrics WebSocket client left"),
    }
}

enum Ending {
    Closed,
    Stalled,
}

async fn stream_samples(
    socket: WebSocket,
    metrics: &crate::metrics::Metrics,
    stall: Duration,
) -> Ending {
    let mut samples = metrics.subscribe();
    let (mut sender, mut receiver) = socket.split();
    if let Err(ending) =
        send_within(&mut sender, Message::Text(metrics.hello().into()), stall).await
    {
        return ending;
    }
    let mut last_heard = Instant::now();
    let mut ping = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            sample = samples.recv() => {
                let text = match sample {
                    Ok(text) => text,
                    // Fell behind: the oldest samples are gone; go on with the rest.
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return Ending::Closed,
                };
                if let Err(ending) = send_within(&mut sender, Message::Text(text.as_ref().into()), stall).await {
                    return ending;
                }
            }
            incoming = receiver.next() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ending::Closed,
                Some(Ok(_)) => last_heard = Instant::now(),
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > stall {
                    return Ending::Stalled;
                }
                if let Err(ending) = send_within(&mut sender, Message::Ping(Vec::new().into()), stall).await {
                    return ending;
                }
            }
        }
    }
}

/// Sends with a deadline: a socket that takes nothing for `stall` is stalled.
async fn send_within(
    sender: &mut SplitSink<WebSocket, Message>,
    message: Message,
    stall: Duration,
) -> Result<(), Ending> {
    match tokio::time::timeout(stall, sender.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Ending::Closed),
        Err(_) => Err(Ending::Stalled),
    }
}
