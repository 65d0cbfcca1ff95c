//! Frames over a WebSocket, `/api/frames/ws`, for lab and ML clients
//! (protocol: docs/frames.md):
//!
//! - text (the default): one JSON message per frame, as the DrishtiStream
//!   virtual camera publishes them — `source`, `version`, `frame_id`,
//!   `timestamp` (capture time, Unix seconds), `fps`, `image` (a base64
//!   JPEG from the shared encoder);
//! - binary (`?format=jpeg|gray8|i420&compression=none|lz4|zstd`): a
//!   40-byte header (magic, version, format, compression, frame id, capture
//!   time, width, height, stride, payload length) and the payload.
//!
//! Per connection, `?fps=` caps the rate and `?scale=` (1, 0.5, 0.25)
//! shrinks raw frames. JPEG is the one shared encoder's (its size and
//! quality are `[jpeg]`'s, for everybody). Each client takes the latest
//! frame at its own pace, so a slow one skips frames and nobody waits for
//! it; one that takes nothing for `metrics.ws_stall_s` is dropped. What
//! several clients ask for alike is made once per frame.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::watch;

use super::{Context, Output, Published, Running, Serving};
use crate::config::Config;
use crate::http::{Access, Route};
use crate::metrics::registry::Sessions;
use crate::metrics::Metrics;
use crate::pipeline::frames::{FrameTap, JpegFrame, RawFrame};
use crate::pipeline::jpeg::JpegTap;

const PATH: &str = "/api/frames/ws";
/// The binary header's first bytes.
pub const MAGIC: &[u8; 4] = b"EDGF";
pub const HEADER_LEN: usize = 40;

#[derive(Default)]
pub struct WsFrames {
    served: Published<Served>,
}

#[derive(Clone)]
struct Served {
    jpeg: JpegTap,
    raw: FrameTap<RawFrame>,
    viewers: Sessions,
    metrics: Metrics,
    /// The stream's rate: the camera's, capped by the JPEG encoder's.
    fps: u32,
    memo: Arc<Memo>,
    stopped: watch::Receiver<bool>,
}

impl Output for WsFrames {
    fn name(&self) -> &'static str {
        "frames"
    }

    fn enabled(&self, config: &Config) -> bool {
        config.frames.enabled
    }

    fn settings(&self) -> &'static [&'static str] {
        &["frames", "jpeg"]
    }

    fn start(&self, config: &Config, context: &Context) -> Result<Box<dyn Running>> {
        let (stop, stopped) = watch::channel(false);
        self.served.set(Served {
            jpeg: context.taps.jpeg.clone(),
            raw: context.taps.raw.clone(),
            viewers: context.registry.sessions("frames"),
            metrics: context.metrics.clone(),
            fps: config.camera.fps,
            memo: Arc::default(),
            stopped,
        });
        Ok(Box::new(Serving {
            served: self.served.clone(),
            stop: Some(stop),
            failures: context.failures.clone(),
            description: PATH.into(),
            fault: "injected fault: the frame socket failed",
        }))
    }

    fn routes(&self) -> Vec<Route> {
        vec![Route {
            method: "GET",
            path: PATH,
            access: Access::Viewer,
            handler: axum::routing::get(frames_ws).with_state(self.served.clone()),
        }]
    }
}

/// What a client asks for in its URL.
#[derive(Debug, Clone, Deserialize)]
struct Request {
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    compression: Option<String>,
    #[serde(default)]
    fps: Option<f64>,
    #[serde(default)]
    scale: Option<f64>,
    #[serde(default)]
    quality: Option<u32>,
}

/// One way of sending frames; clients asking alike share its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Variant {
    Json,
    Binary {
        format: Format,
        compression: Compression,
        /// Keep one pixel in `step` along each axis (raw formats).
        step: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Format {
    Jpeg = 0,
    Gray8 = 1,
    I420 = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Compression {
    None = 0,
    Lz4 = 1,
    Zstd = 2,
}

impl Request {
    /// The variant asked for, or why it cannot be served.
    fn variant(&self, jpeg: &crate::config::JpegConfig) -> Result<Variant, String> {
        if let Some(quality) = self.quality.filter(|q| *q != jpeg.quality) {
            return Err(format!(
                "quality {quality}: every JPEG client shares one encoder, at jpeg.quality = {} \
                 (change it for everyone with PATCH /api/outputs/mjpeg)",
                jpeg.quality
            ));
        }
        let format = match self.format.as_deref() {
            None | Some("json") => None,
            Some("jpeg") => Some(Format::Jpeg),
            Some("gray8") => Some(Format::Gray8),
            Some("i420") => Some(Format::I420),
            Some(other) => return Err(format!("format {other:?}: use jpeg, gray8 or i420")),
        };
        let compression = match self.compression.as_deref() {
            None | Some("none") => Compression::None,
            Some("lz4") => Compression::Lz4,
            Some("zstd") => Compression::Zstd,
            Some(other) => return Err(format!("compression {other:?}: use none, lz4 or zstd")),
        };
        let step = match self.scale {
            None | Some(1.0) => 1,
            Some(0.5) => 2,
            Some(0.25) => 4,
            Some(scale) => return Err(format!("scale {scale}: use 1, 0.5 or 0.25")),
        };
        match format {
            None if compression != Compression::None || step != 1 => Err(
                "compression and scale are for the binary formats (format=jpeg|gray8|i420)"
                    .to_owned(),
            ),
            None => Ok(Variant::Json),
            Some(Format::Jpeg) if step != 1 => Err(format!(
                "scale {}: JPEG comes from the one shared encoder, at jpeg.width x jpeg.height",
                1.0 / f64::from(step)
            )),
            Some(format) => Ok(Variant::Binary {
                format,
                compression,
                step,
            }),
        }
    }
}

async fn frames_ws(
    State(served): State<Published<Served>>,
    Query(request): Query<Request>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(served) = served.get() else {
        return (
            StatusCode::NOT_FOUND,
            "frames over WebSocket are off (frames.enabled = false)\n",
        )
            .into_response();
    };
    let variant = match request.variant(&served.jpeg.settings()) {
        Ok(variant) => variant,
        Err(reason) => return (StatusCode::BAD_REQUEST, format!("{reason}\n")).into_response(),
    };
    let cap = request
        .fps
        .filter(|fps| *fps > 0.0)
        .map(|fps| Duration::from_secs_f64(1.0 / fps));
    upgrade.on_upgrade(move |socket| serve(socket, served, variant, cap))
}

async fn serve(socket: WebSocket, served: Served, variant: Variant, cap: Option<Duration>) {
    let (_viewer, now) = served.viewers.join();
    tracing::debug!(clients = now, "frame socket client connected: {variant:?}");
    let stall = served.metrics.client_stall();
    let (mut sender, mut receiver) = socket.split();
    let uses_raw = matches!(variant, Variant::Binary { format, .. } if format != Format::Jpeg);
    let mut jpeg = (!uses_raw).then(|| served.jpeg.subscribe());
    let mut raw = uses_raw.then(|| served.raw.subscribe());
    let mut stopped = served.stopped.clone();
    let mut pace = cap.map(crate::pipeline::frames::Pace::new);
    loop {
        let frame = tokio::select! {
            frame = next(&mut jpeg, &mut raw) => match frame {
                Some(frame) => frame,
                None => return,
            },
            incoming = receiver.next() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            },
            _ = stopped.wait_for(|stopped| *stopped) => return,
        };
        if pace
            .as_mut()
            .is_some_and(|pace| !pace.admit(Instant::now()))
        {
            continue;
        }
        let Some(message) = served.memo.message(&frame, variant, served.fps) else {
            continue;
        };
        match tokio::time::timeout(stall, sender.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                tracing::info!("frame socket client took nothing for {stall:?}; disconnected");
                return;
            }
        }
    }
}

/// A frame of either kind.
enum Frame {
    Jpeg(Arc<JpegFrame>),
    Raw(Arc<RawFrame>),
}

impl Frame {
    fn id(&self) -> u64 {
        match self {
            Frame::Jpeg(f) => f.id,
            Frame::Raw(f) => f.id,
        }
    }
}

/// The next frame from whichever tap this client reads.
async fn next(
    jpeg: &mut Option<watch::Receiver<Option<Arc<JpegFrame>>>>,
    raw: &mut Option<watch::Receiver<Option<Arc<RawFrame>>>>,
) -> Option<Frame> {
    loop {
        if let Some(jpeg) = jpeg {
            jpeg.changed().await.ok()?;
            if let Some(frame) = jpeg.borrow_and_update().clone() {
                return Some(Frame::Jpeg(frame));
            }
        } else if let Some(raw) = raw {
            raw.changed().await.ok()?;
            if let Some(frame) = raw.borrow_and_update().clone() {
                return Some(Frame::Raw(frame));
            }
        } else {
            return None;
        }
    }
}

/// The messages made for the latest frame, one per variant asked for.
#[derive(Default)]
struct Memo {
    made: Mutex<(u64, HashMap<Variant, Message>)>,
}

impl Memo {
    fn message(&self, frame: &Frame, variant: Variant, fps: u32) -> Option<Message> {
        let mut made = self.made.lock().ok()?;
        if made.0 != frame.id() {
            *made = (frame.id(), HashMap::new());
        }
        if let Some(message) = made.1.get(&variant) {
            return Some(message.clone());
        }
        let message = make(frame, variant, fps)?;
        made.1.insert(variant, message.clone());
        Some(message)
    }
}

fn make(frame: &Frame, variant: Variant, fps: u32) -> Option<Message> {
    match (variant, frame) {
        (Variant::Json, Frame::Jpeg(frame)) => {
            let json = serde_json::json!({
                "source": "edgecam",
                "version": "1.0",
                "frame_id": frame.id,
                "timestamp": frame.captured_us as f64 / 1e6,
                "fps": fps,
                "width": frame.width,
                "height": frame.height,
                "image": base64::engine::general_purpose::STANDARD.encode(&frame.data),
            });
            Some(Message::Text(json.to_string().into()))
        }
        (Variant::Binary { compression, .. }, Frame::Jpeg(frame)) => Some(binary(
            Header {
                format: Format::Jpeg,
                compression,
                id: frame.id,
                captured_us: frame.captured_us,
                width: frame.width,
                height: frame.height,
                stride: 0,
            },
            &frame.data,
        )),
        (
            Variant::Binary {
                format,
                compression,
                step,
            },
            Frame::Raw(frame),
        ) => {
            let (width, height) = (frame.width() / step, frame.height() / step);
            let mut pixels = decimate(&frame.plane(0)?, frame.width(), step);
            if format == Format::I420 {
                for plane in [1, 2] {
                    let chroma = frame.plane(plane)?;
                    pixels.extend(decimate(&chroma, frame.width().div_ceil(2), step));
                }
            }
            Some(binary(
                Header {
                    format,
                    compression,
                    id: frame.id,
                    captured_us: frame.captured_us,
                    width,
                    height,
                    stride: width,
                },
                &pixels,
            ))
        }
        _ => None,
    }
}

/// Every `step`th pixel of every `step`th row of a packed plane.
fn decimate(plane: &[u8], width: u32, step: u32) -> Vec<u8> {
    if step == 1 {
        return plane.to_vec();
    }
    let width = width as usize;
    plane
        .chunks(width)
        .step_by(step as usize)
        .flat_map(|row| row.iter().step_by(step as usize).copied())
        .collect()
}

/// The binary header's fields.
struct Header {
    format: Format,
    compression: Compression,
    id: u64,
    captured_us: u64,
    width: u32,
    height: u32,
    stride: u32,
}

/// The header and the (compressed) payload, little-endian throughout.
fn binary(header: Header, pixels: &[u8]) -> Message {
    let payload = match header.compression {
        Compression::None => pixels.to_vec(),
        Compression::Lz4 => {
            use std::io::Write;
            let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
            let _ = encoder.write_all(pixels);
            encoder.finish().unwrap_or_default()
        }
        Compression::Zstd => zstd::bulk::compress(pixels, 1).unwrap_or_default(),
    };
    let mut message = Vec::with_capacity(HEADER_LEN + payload.len());
    message.extend_from_slice(MAGIC);
    message.extend_from_slice(&[1, header.format as u8, header.compression as u8, 0]);
    message.extend_from_slice(&header.id.to_le_bytes());
    message.extend_from_slice(&header.captured_us.to_le_bytes());
    message.extend_from_slice(&header.width.to_le_bytes());
    message.extend_from_slice(&header.height.to_le_bytes());
    message.extend_from_slice(&header.stride.to_le_bytes());
    message.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    message.extend_from_slice(&payload);
    Message::Binary(Bytes::from(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str) -> Request {
        serde_urlencoded_like(query)
    }

    /// A request as axum's Query would parse it.
    fn serde_urlencoded_like(query: &str) -> Request {
        let uri: axum::http::Uri = format!("/?{query}").parse().unwrap();
        Query::<Request>::try_from_uri(&uri).unwrap().0
    }

    #[test]
    fn what_a_url_asks_for() {
        let jpeg = crate::config::JpegConfig::default();
        assert_eq!(request("").variant(&jpeg), Ok(Variant::Json));
        assert_eq!(
            request("format=gray8&compression=zstd&scale=0.5").variant(&jpeg),
            Ok(Variant::Binary {
                format: Format::Gray8,
                compression: Compression::Zstd,
                step: 2
            })
        );
        assert!(request("format=png").variant(&jpeg).is_err());
        assert!(request("format=jpeg&scale=0.5").variant(&jpeg).is_err());
        assert!(request("quality=20")
            .variant(&jpeg)
            .unwrap_err()
            .contains("shares one encoder"));
        assert!(request("compression=lz4").variant(&jpeg).is_err());
    }

    #[test]
    fn the_header_is_forty_bytes_little_endian() {
        let Message::Binary(bytes) = binary(
            Header {
                format: Format::Gray8,
                compression: Compression::None,
                id: 0x0102,
                captured_us: 7,
                width: 4,
                height: 2,
                stride: 4,
            },
            &[9; 8],
        ) else {
            panic!("not binary");
        };
        assert_eq!(&bytes[..4], MAGIC);
        assert_eq!(&bytes[4..8], &[1, 1, 0, 0]);
        assert_eq!(u64::from_le_bytes(bytes[8..16].try_into().unwrap()), 0x0102);
        assert_eq!(u32::from_le_bytes(bytes[36..40].try_into().unwrap()), 8);
        assert_eq!(bytes.len(), HEADER_LEN + 8);
    }

    #[test]
    fn decimation_keeps_every_other_pixel_of_every_other_row() {
        let plane: Vec<u8> = (0..16).collect();
        assert_eq!(decimate(&plane, 4, 2), [0, 2, 8, 10]);
    }
}
