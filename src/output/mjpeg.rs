//! MJPEG over HTTP and JPEG snapshots, with the URLs clients already use:
//! `/stream.mjpeg` (also `/stream`, go2rtc's `/api/stream.mjpeg`, and
//! mjpg-streamer's `/?action=stream`, which the dashboard's route
//! redirects here) and `/snapshot.jpg` (also `/snapshot`,
//! `/api/frame.jpeg`, `/?action=snapshot`). Every client reads the one
//! shared JPEG encoder (`pipeline::jpeg`), which runs only while one does.
//!
//! A stream is `multipart/x-mixed-replace`, each part with its
//! `Content-Length`, the capture time (`X-Timestamp`, Unix seconds) and the
//! frame id, and the next boundary sent right after each frame: Chromium
//! shows a part only once the next boundary has arrived (µStreamer's
//! "advance headers"). A slow client skips frames, never slows the others,
//! and is dropped when it takes nothing for `metrics.ws_stall_s`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use super::{Context, Output, Published, Running, Serving};
use crate::config::Config;
use crate::http::{Access, Route};
use crate::metrics::registry::Sessions;
use crate::metrics::Metrics;
use crate::pipeline::frames::JpegFrame;
use crate::pipeline::jpeg::JpegTap;
use crate::source::identity::unix_time_us;

const BOUNDARY: &str = "edgecamframe";
/// How long a snapshot waits for a frame when the encoder was idle.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct Mjpeg {
    served: Published<Served>,
}

#[derive(Clone)]
struct Served {
    jpeg: JpegTap,
    viewers: Sessions,
    metrics: Metrics,
    /// True once the output stops: its streams end.
    stopped: watch::Receiver<bool>,
}

impl Output for Mjpeg {
    fn name(&self) -> &'static str {
        "mjpeg"
    }

    fn enabled(&self, config: &Config) -> bool {
        config.mjpeg.enabled
    }

    fn settings(&self) -> &'static [&'static str] {
        &["mjpeg", "jpeg"]
    }

    fn start(&self, _config: &Config, context: &Context) -> Result<Box<dyn Running>> {
        let (stop, stopped) = watch::channel(false);
        self.served.set(Served {
            jpeg: context.taps.jpeg.clone(),
            viewers: context.registry.sessions("mjpeg"),
            metrics: context.metrics.clone(),
            stopped,
        });
        Ok(Box::new(Serving {
            served: self.served.clone(),
            stop: Some(stop),
            failures: context.failures.clone(),
            description: serde_json::json!({ "stream": "/stream.mjpeg", "snapshot": "/snapshot.jpg" }),
            fault: "injected fault: the MJPEG output failed",
        }))
    }

    fn routes(&self) -> Vec<Route> {
        let stream = || axum::routing::get(stream).with_state(self.served.clone());
        let snapshot = || axum::routing::get(snapshot).with_state(self.served.clone());
        let route = |path, handler| Route {
            method: "GET",
            path,
            access: Access::Viewer,
            handler,
        };
        vec![
            route("/stream.mjpeg", stream()),
            route("/stream", stream()),
            route("/api/stream.mjpeg", stream()),
            route("/snapshot.jpg", snapshot()),
            route("/snapshot", snapshot()),
            route("/api/frame.jpeg", snapshot()),
        ]
    }
}

fn off() -> Response {
    (
        StatusCode::NOT_FOUND,
        "MJPEG is off (mjpeg.enabled = false, or POST /api/outputs/mjpeg/start)\n",
    )
        .into_response()
}

async fn stream(State(served): State<Published<Served>>) -> Response {
    let Some(served) = served.get() else {
        return off();
    };
    let frames = served.jpeg.subscribe();
    let (parts, body) = tokio::sync::mpsc::channel::<Bytes>(1);
    tokio::spawn(send_parts(served, frames, parts));
    let body = futures_util::stream::unfold(body, |mut body| async move {
        body.recv()
            .await
            .map(|part| (Ok::<_, std::convert::Infallible>(part), body))
    });
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("multipart/x-mixed-replace;boundary=edgecamframe"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::PRAGMA, HeaderValue::from_static("no-cache")),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// Hands one client its parts: the latest frame each time, while it takes
/// them within the stall limit and the output runs.
async fn send_parts(
    served: Served,
    mut frames: watch::Receiver<Option<Arc<JpegFrame>>>,
    parts: tokio::sync::mpsc::Sender<Bytes>,
) {
    let (_viewer, now) = served.viewers.join();
    tracing::debug!(viewers = now, "MJPEG viewer connected");
    let stall = served.metrics.client_stall();
    let mut stopped = served.stopped.clone();
    if parts
        .send(Bytes::from(format!("--{BOUNDARY}\r\n")))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            changed = frames.changed() => if changed.is_err() { return },
            _ = stopped.wait_for(|stopped| *stopped) => return,
        }
        let Some(frame) = frames.borrow_and_update().clone() else {
            continue;
        };
        match tokio::time::timeout(stall, parts.send(part(&frame))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                tracing::info!("MJPEG viewer took nothing for {stall:?}; disconnected");
                return;
            }
        }
    }
}

/// One frame's part, followed at once by the next boundary.
fn part(frame: &JpegFrame) -> Bytes {
    let head = format!(
        "Content-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: {}\r\nX-Frame-Id: {}\r\n\r\n",
        frame.data.len(),
        seconds(frame.captured_us),
        frame.id
    );
    let tail = format!("\r\n--{BOUNDARY}\r\n");
    let mut part = Vec::with_capacity(head.len() + frame.data.len() + tail.len());
    part.extend_from_slice(head.as_bytes());
    part.extend_from_slice(&frame.data);
    part.extend_from_slice(tail.as_bytes());
    Bytes::from(part)
}

/// Unix seconds with microseconds, as MJPEG servers write timestamps.
fn seconds(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// A fresh frame: the encoder's latest when it runs and that frame is no
/// older than one frame interval, else the next one it makes (starting it
/// if it was idle; it stays on a few seconds for the next snapshot) —
/// always one made with the `[jpeg]` settings in force.
async fn snapshot(State(served): State<Published<Served>>) -> Response {
    let Some(served) = served.get() else {
        return off();
    };
    let interval = Duration::from_secs_f64(1.0 / f64::from(served.jpeg.settings().max_fps.max(1)));
    let mut frames = served.jpeg.subscribe();
    let fresh = served
        .jpeg
        .latest()
        .filter(|frame| frame.encoded_at.elapsed() <= interval && served.jpeg.is_current(frame));
    let frame = match fresh {
        Some(frame) => Some(frame),
        None => tokio::time::timeout(SNAPSHOT_WAIT, async {
            loop {
                frames.changed().await.ok()?;
                let frame = frames.borrow_and_update().clone();
                if let Some(frame) = frame.filter(|frame| served.jpeg.is_current(frame)) {
                    return Some(frame);
                }
            }
        })
        .await
        .ok()
        .flatten(),
    };
    let Some(frame) = frame else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no frame within 5 s: the camera is not delivering\n",
        )
            .into_response();
    };
    let age_ms = unix_time_us().saturating_sub(frame.captured_us) / 1000;
    (
        [
            (header::CONTENT_TYPE, "image/jpeg".to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (
                header::HeaderName::from_static("x-timestamp"),
                seconds(frame.captured_us),
            ),
            (
                header::HeaderName::from_static("x-frame-id"),
                frame.id.to_string(),
            ),
            (
                header::HeaderName::from_static("x-age-ms"),
                age_ms.to_string(),
            ),
        ],
        frame.data.clone(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_carries_its_length_and_time_and_ends_in_the_next_boundary() {
        let frame = JpegFrame {
            id: 7,
            captured_us: 1_700_000_000_123_456,
            width: 2,
            height: 2,
            data: Bytes::from_static(b"\xff\xd8jpeg\xff\xd9"),
            quality: 80,
            encoded_at: std::time::Instant::now(),
        };
        let part = part(&frame);
        let text = String::from_utf8_lossy(&part);
        assert!(
            text.starts_with("Content-Type: image/jpeg\r\nContent-Length: 8\r\n"),
            "{text}"
        );
        assert!(
            text.contains("X-Timestamp: 1700000000.123456\r\n"),
            "{text}"
        );
        assert!(text.contains("X-Frame-Id: 7\r\n\r\n"), "{text}");
        assert!(text.ends_with("\r\n--edgecamframe\r\n"), "{text}");
    }
}
