//! The WHEP endpoints (draft-ietf-wish-whep), all behind the viewer token:
//!
//! - `POST /whep/{stream}` with an `application/sdp` offer → `201 Created`,
//!   the answer, the session's `Location`, its `ETag`, and the ICE servers
//!   as `Link` headers; 400 with the reason for an offer that cannot be
//!   answered (nothing is left allocated), 503 when `webrtc.max_peers`
//!   watch already;
//! - `PATCH {Location}` with `application/trickle-ice-sdpfrag` → 204 (an
//!   ICE restart is not supported: 422);
//! - `DELETE {Location}` → 200, the session ends;
//! - `OPTIONS /whep/{stream}` → 204 with the ICE servers (`Link`) and what
//!   may be posted. A CORS preflight is answered before the token check.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::hub::{Hub, Refused};
use super::peer::Cause;
use crate::http::{Access, Route};
use crate::output::Published;

const SDP: &str = "application/sdp";
const SDP_FRAGMENT: &str = "application/trickle-ice-sdpfrag";

/// What the routes read while the output runs.
#[derive(Clone)]
pub struct Served {
    pub hub: Arc<Hub>,
    /// The stream's name: `/whep/{stream}`.
    pub stream: String,
    /// `Link` header values, one per ICE server.
    pub ice_servers: Vec<String>,
}

pub fn routes(served: &Published<Served>) -> Vec<Route> {
    let route = |method, path, handler| Route {
        method,
        path,
        access: Access::Viewer,
        handler,
    };
    vec![
        route(
            "POST",
            "/whep/{stream}",
            axum::routing::post(offer).with_state(served.clone()),
        ),
        route(
            "OPTIONS",
            "/whep/{stream}",
            axum::routing::options(options).with_state(served.clone()),
        ),
        route(
            "PATCH",
            "/whep/{stream}/{session}",
            axum::routing::patch(trickle).with_state(served.clone()),
        ),
        route(
            "DELETE",
            "/whep/{stream}/{session}",
            axum::routing::delete(end).with_state(served.clone()),
        ),
    ]
}

fn refuse(status: StatusCode, reason: impl std::fmt::Display) -> Response {
    (status, format!("{reason}\n")).into_response()
}

/// The running output and the stream asked for, or the reply that says
/// why not.
fn served_for(served: &Published<Served>, stream: &str) -> Result<Served, Box<Response>> {
    let Some(served) = served.get() else {
        return Err(Box::new(refuse(
            StatusCode::NOT_FOUND,
            "WebRTC is off (webrtc.enabled = false, or POST /api/outputs/webrtc/start)",
        )));
    };
    if served.stream != stream {
        return Err(Box::new(refuse(
            StatusCode::NOT_FOUND,
            format!(
                "there is no stream {stream:?}; this camera is /whep/{}",
                served.stream
            ),
        )));
    }
    Ok(served)
}

fn content_type_is(headers: &HeaderMap, wanted: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(wanted))
}

/// The ICE servers as `Link` headers, on `response`.
fn with_ice_servers(mut response: Response, served: &Served) -> Response {
    for link in &served.ice_servers {
        if let Ok(value) = HeaderValue::from_str(link) {
            response.headers_mut().append(header::LINK, value);
        }
    }
    response
}

async fn offer(
    State(published): State<Published<Served>>,
    Path(stream): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let served = match served_for(&published, &stream) {
        Ok(served) => served,
        Err(refusal) => return *refusal,
    };
    if !content_type_is(&headers, SDP) {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("send the offer as Content-Type: {SDP}"),
        );
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "the offer is not UTF-8 text");
    };
    let offer = match super::offer::check(text, Some(served.hub.profile())) {
        Ok(offer) => offer,
        Err(reason) => return refuse(StatusCode::BAD_REQUEST, reason),
    };
    tracing::debug!("WHEP offer:\n{text}");
    let (id, answer) = match served.hub.admit(&offer).await {
        Ok(admitted) => {
            tracing::debug!("WHEP answer:\n{}", admitted.1);
            admitted
        }
        Err(refused @ Refused::Full(_)) => {
            let mut response = refuse(StatusCode::SERVICE_UNAVAILABLE, refused);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return response;
        }
        Err(refused @ Refused::Negotiation(_)) => return refuse(StatusCode::BAD_REQUEST, refused),
        Err(refused @ Refused::Busy(_)) => {
            tracing::warn!("a WebRTC peer was refused: {refused}");
            let mut response = refuse(StatusCode::SERVICE_UNAVAILABLE, refused);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            return response;
        }
        Err(refused @ Refused::Internal(_)) => {
            tracing::error!("a WebRTC peer could not be set up: {refused}");
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, refused);
        }
    };
    // A client given the stream with ?token= reaches its session the same
    // way (it may not be able to set headers either).
    let token = crate::http::query_token(query.as_deref())
        .map(|token| format!("?token={token}"))
        .unwrap_or_default();
    let location = format!("/whep/{stream}/{id}{token}");
    let mut response = (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, SDP.to_owned()),
            (header::LOCATION, location),
            (header::ETAG, format!("\"{id}\"")),
            (
                header::HeaderName::from_static("accept-patch"),
                SDP_FRAGMENT.to_owned(),
            ),
        ],
        answer,
    )
        .into_response();
    response = with_ice_servers(response, &served);
    response
}

async fn options(
    State(published): State<Published<Served>>,
    Path(stream): Path<String>,
) -> Response {
    let served = match served_for(&published, &stream) {
        Ok(served) => served,
        Err(refusal) => return *refusal,
    };
    let response = (
        StatusCode::NO_CONTENT,
        [
            (header::ALLOW, "OPTIONS, POST"),
            (header::HeaderName::from_static("accept-post"), SDP),
        ],
    )
        .into_response();
    with_ice_servers(response, &served)
}

async fn trickle(
    State(published): State<Published<Served>>,
    Path((stream, session)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let served = match served_for(&published, &stream) {
        Ok(served) => served,
        Err(refusal) => return *refusal,
    };
    let Some(peer) = served.hub.peer(&session) else {
        return refuse(StatusCode::NOT_FOUND, "no such WebRTC session (it ended?)");
    };
    if let Some(tag) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        if tag != "*" && tag.trim_matches('"') != session {
            return refuse(
                StatusCode::PRECONDITION_FAILED,
                "the ETag is not this session's",
            );
        }
    }
    if !content_type_is(&headers, SDP_FRAGMENT) {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("send candidates as Content-Type: {SDP_FRAGMENT}"),
        );
    }
    let fragment = String::from_utf8_lossy(&body);
    let ufrag = fragment
        .lines()
        .find_map(|line| line.trim().strip_prefix("a=ice-ufrag:"));
    if let (Some(ufrag), Some(current)) = (ufrag, peer.remote_ufrag()) {
        if ufrag != current {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "ICE restarts are not supported: DELETE this session and POST a new offer",
            );
        }
    }
    peer.add_candidates(&fragment);
    StatusCode::NO_CONTENT.into_response()
}

async fn end(
    State(published): State<Published<Served>>,
    Path((stream, session)): Path<(String, String)>,
) -> Response {
    let served = match served_for(&published, &stream) {
        Ok(served) => served,
        Err(refusal) => return *refusal,
    };
    if served.hub.close(&session, Cause::Deleted).await {
        StatusCode::OK.into_response()
    } else {
        refuse(StatusCode::NOT_FOUND, "no such WebRTC session (it ended?)")
    }
}
