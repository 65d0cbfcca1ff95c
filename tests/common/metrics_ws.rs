//! A client of the metrics WebSocket (tungstenite), for the tests and the
//! rates benchmark.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

pub type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

/// Connects to `url` (`http://…/api/metrics/ws` or `ws://…`), reads time
/// out after 5 s.
pub fn connect(url: &str) -> Socket {
    let url = url.replacen("http://", "ws://", 1);
    let (socket, _) = tungstenite::connect(url).expect("WebSocket connect");
    if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    }
    socket
}

/// The next JSON text message (pings are answered by tungstenite itself).
pub fn next_json(socket: &mut Socket) -> Value {
    loop {
        match socket.read().expect("WebSocket read") {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON"),
            _ => continue,
        }
    }
}

/// The `hello` a new client gets first.
pub fn hello(url: &str) -> Value {
    next_json(&mut connect(url))
}

/// Every message for `duration`.
pub fn samples_for(socket: &mut Socket, duration: Duration) -> Vec<Value> {
    let until = Instant::now() + duration;
    let mut samples = Vec::new();
    while Instant::now() < until {
        samples.push(next_json(socket));
    }
    samples
}

/// Reads samples until the encoder has been producing for a whole rate
/// window. Until then a sample's one-second rates count the time before the
/// first frame (x264 and the first keyframe take a while on a cold machine:
/// CI once saw a second at 0 fps and one at 9.8 right after start), which is
/// start-up, not the steady rate.
pub fn wait_until_streaming(socket: &mut Socket) {
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        let sample = next_json(socket);
        if sample["encoded_frames_total"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(Instant::now() < give_up, "no frame encoded: {sample}");
    }
    // The rate window is one second; a little more so it holds frames only.
    samples_for(socket, Duration::from_millis(1200));
}

/// The median of `values`.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}
