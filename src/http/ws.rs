//! `/api/metrics/ws`: `hello`, then every sample as JSON text messages.
//!
//! A slow client must never slow the video or the other clients: each has
//! its own bounded queue (its place in the broadcast ring) and loses its
//! oldest samples when it falls behind. A client that stops reading
//! altogether is disconnected: the server pings every second, and a client
//! that has not answered (or not taken a message) within `stall` is gone.

use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use super::AppState;

pub async fn metrics_ws(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| serve_client(socket, state))
}

async fn serve_client(socket: WebSocket, state: AppState) {
    let metrics = state.metrics.clone();
    let stall = Duration::from_secs(
        state
            .ws_stall_s
            .load(std::sync::atomic::Ordering::Relaxed)
            .into(),
    );
    let ws_clients = metrics.clients.ws.clone();
    let now = ws_clients.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    tracing::debug!(clients = now, "metrics WebSocket client connected");
    let reason = stream_samples(socket, &metrics, stall).await;
    let now = ws_clients
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(1);
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
    if let Err(ending) = send_within(
        &mut sender,
        Message::Text(metrics.hello().as_ref().into()),
        stall,
    )
    .await
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
