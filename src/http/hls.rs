//! `/hls/{file}`: the playlist and segments from the segment directory.
//! Only plain file names with our two extensions are served, so a request
//! can never name a file outside the directory.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;

/// The MIME type and caching for a file name, or `None` if it is not ours
/// to serve.
fn kind(file: &str) -> Option<(&'static str, &'static str)> {
    let plain = !file.is_empty()
        && !file.starts_with('.')
        && file
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !plain {
        return None;
    }
    if file.ends_with(".m3u8") {
        // Players must re-read the playlist: it changes every segment.
        Some(("application/vnd.apple.mpegurl", "no-cache"))
    } else if file.ends_with(".ts") {
        Some(("video/mp2t", "max-age=60"))
    } else {
        None
    }
}

pub async fn file(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(file): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let dir = state.hls_dir.read().ok().and_then(|dir| dir.clone());
    let Some(dir) = dir else {
        return (
            StatusCode::NOT_FOUND,
            "HLS is disabled (hls.enabled = false)\n",
        )
            .into_response();
    };
    let Some((mime, cache)) = kind(&file) else {
        return (StatusCode::NOT_FOUND, "no such file\n").into_response();
    };
    if file.ends_with(".m3u8") {
        state.metrics.clients.hls.saw(client.ip());
    }
    let token = query.as_deref().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .map(str::to_owned)
    });
    match tokio::fs::read(dir.join(&file)).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, mime),
                (header::CACHE_CONTROL, cache),
                // hls.js on another origin (a wall of cameras) may fetch it.
                (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            ],
            match token {
                // A player given the playlist with ?token= must fetch the
                // segments with it too: it cannot set headers either.
                Some(token) if file.ends_with(".m3u8") => {
                    with_token(&String::from_utf8_lossy(&bytes), &token).into_bytes()
                }
                _ => bytes,
            },
        )
            .into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "no such file (yet)\n").into_response(),
    }
}

/// The playlist with `?token=…` on every segment line.
fn with_token(playlist: &str, token: &str) -> String {
    playlist
        .lines()
        .map(|line| {
            if line.is_empty() || line.starts_with('#') {
                format!("{line}\n")
            } else {
                format!("{line}?token={token}\n")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{kind, with_token};

    #[test]
    fn a_token_follows_the_playlist_to_its_segments() {
        let playlist = "#EXTM3U\n#EXTINF:1.0,\ncam-00001.ts\n";
        assert_eq!(
            with_token(playlist, "abc"),
            "#EXTM3U\n#EXTINF:1.0,\ncam-00001.ts?token=abc\n"
        );
    }

    #[test]
    fn only_plain_playlist_and_segment_names_are_served() {
        assert_eq!(
            kind("cam.m3u8").map(|k| k.0),
            Some("application/vnd.apple.mpegurl")
        );
        assert_eq!(kind("cam-00001.ts").map(|k| k.0), Some("video/mp2t"));
        for bad in ["", ".m3u8", "../x.ts", "a/b.ts", "cam.mp4", "..", "x%2f.ts"] {
            assert_eq!(kind(bad), None, "{bad}");
        }
    }
}
