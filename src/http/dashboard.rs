//! The dashboard page and its assets, compiled into the binary: the board
//! has no internet, so nothing may come from a CDN.

use axum::extract::{Path, RawQuery};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

/// (name, MIME type, bytes)
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/app.js"),
    ),
    (
        "stamp.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/stamp.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/style.css"),
    ),
    (
        "settings.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/settings.js"),
    ),
    (
        "settings-core.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/settings-core.js"),
    ),
    (
        "settings-camera.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/settings-camera.js"),
    ),
    (
        "settings-overlay.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/settings-overlay.js"),
    ),
    (
        "settings.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/settings.css"),
    ),
    // hls.js, pinned and vendored from npm: see assets/vendor/hls.js/VERSION.
    (
        "hls.light.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vendor/hls.js/hls.light.min.js"),
    ),
    (
        "hls.js-LICENSE.txt",
        "text/plain; charset=utf-8",
        include_bytes!("../../assets/vendor/hls.js/LICENSE"),
    ),
];

const INDEX: &str = include_str!("../../assets/index.html");
const SETTINGS: &str = include_str!("../../assets/settings.html");

/// The settings page. It holds no data: everything it shows comes from the
/// API, with the admin token the person signs in with.
pub async fn settings() -> Response {
    page(SETTINGS)
}

/// A page of ours; no-cache, as the assets: a browser revalidates after an
/// upgrade of the binary.
fn page(html: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

/// The dashboard; with mjpg-streamer's `?action=stream|snapshot` (what
/// OctoPrint and others are set up with), the MJPEG stream or a snapshot.
pub async fn index(RawQuery(query): RawQuery) -> Response {
    let pairs = query.as_deref().unwrap_or_default();
    let action = pairs
        .split('&')
        .find_map(|pair| pair.strip_prefix("action="));
    let target = match action {
        Some("stream") => Some("/stream.mjpeg"),
        Some("snapshot") => Some("/snapshot.jpg"),
        _ => None,
    };
    if let Some(target) = target {
        // The viewer token travels with the client.
        let token = super::query_token(query.as_deref())
            .map(|token| format!("?token={token}"))
            .unwrap_or_default();
        return Redirect::temporary(&format!("{target}{token}")).into_response();
    }
    page(INDEX)
}

pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(asset, _, _)| *asset == name) {
        // no-cache: a browser revalidates after an upgrade of the binary
        // instead of running old scripts against a new protocol.
        Some((_, mime, bytes)) => (
            [
                (header::CONTENT_TYPE, *mime),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}
