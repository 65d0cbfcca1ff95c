//! Remote configuration:
//! - `GET /api/config` — the file (secrets redacted) with its `ETag`; as
//!   JSON settings with `Accept: application/json`;
//! - `PUT /api/config` — a whole new file;
//! - `PATCH /api/config` — a TOML fragment merged key by key;
//! - `POST /api/config/validate` — a dry run: the changes and what each
//!   takes, or the errors.
//!
//! Writes need `If-Match` with the revision the writer saw (412 when it is
//! stale, 428 without it). Errors are JSON with the line, column and key.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppState;
use crate::config::ConfigError;
use crate::control::WriteError;

fn etag(revision: &str) -> (header::HeaderName, HeaderValue) {
    (
        header::ETAG,
        HeaderValue::from_str(&format!("\"{revision}\"")).unwrap_or(HeaderValue::from_static("")),
    )
}

fn invalid(err: &ConfigError) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({
            "error": err.to_string(),
            "line": err.position.map(|p| p.0),
            "column": err.position.map(|p| p.1),
            "key": err.key,
        })),
    )
        .into_response()
}

pub(super) fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

/// A refusal before anything is looked at: status and message.
type Refusal = (StatusCode, String);

fn text_of(body: &Bytes) -> Result<&str, Refusal> {
    std::str::from_utf8(body).map_err(|err| {
        (
            StatusCode::BAD_REQUEST,
            format!("the body is not UTF-8 text: {err}"),
        )
    })
}

/// The `If-Match` revision and the text of a write.
fn write_request<'a>(headers: &HeaderMap, body: &'a Bytes) -> Result<(String, &'a str), Refusal> {
    let if_match = headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| {
            (
                StatusCode::PRECONDITION_REQUIRED,
                "send If-Match with the ETag from GET /api/config, so a change \
                 made meanwhile by someone else is not overwritten"
                    .to_owned(),
            )
        })?;
    Ok((if_match, text_of(body)?))
}

/// The file as TOML; with `Accept: application/json`, the settings it
/// holds as JSON (every default filled in, secrets redacted) — what a page
/// shows in its fields without a TOML parser.
pub async fn get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (text, revision) = state.config.get().await;
    let json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    if json {
        let settings = crate::config::diff::redacted_json(&state.config.config().await);
        return ([etag(&revision)], Json(settings)).into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/toml"),
            ),
            etag(&revision),
        ],
        text,
    )
        .into_response()
}

pub async fn validate(State(state): State<AppState>, body: Bytes) -> Response {
    let text = match text_of(&body) {
        Ok(text) => text,
        Err((status, message)) => return error(status, message),
    };
    match state.config.validate(text).await {
        Ok(changes) => Json(json!({ "valid": true, "changes": changes })).into_response(),
        Err(err) => invalid(&err),
    }
}

pub async fn put(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match write_request(&headers, &body) {
        Ok((if_match, text)) => written(state.config.put(text, &if_match).await),
        Err((status, message)) => error(status, message),
    }
}

pub async fn patch(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match write_request(&headers, &body) {
        Ok((if_match, text)) => written(state.config.patch(text, &if_match).await),
        Err((status, message)) => error(status, message),
    }
}

pub(super) fn written(outcome: Result<crate::control::Written, WriteError>) -> Response {
    match outcome {
        Ok(written) => {
            let tag = etag(&written.revision);
            (
                [tag],
                Json(json!({ "revision": written.revision, "changes": written.changes })),
            )
                .into_response()
        }
        Err(WriteError::Stale { current }) => (
            StatusCode::PRECONDITION_FAILED,
            [etag(&current)],
            Json(json!({
                "error": "the configuration changed since you read it; read it again",
                "revision": current,
            })),
        )
            .into_response(),
        Err(WriteError::Invalid(err)) => invalid(&err),
        Err(WriteError::NeedsRestart(changes)) => (
            StatusCode::CONFLICT,
            Json(json!({
                "error": "these keys only apply when edgecam restarts (edit the file and \
                          restart it); nothing was changed",
                "changes": changes,
            })),
        )
            .into_response(),
        Err(WriteError::NoFile) => error(
            StatusCode::CONFLICT,
            "edgecam runs on its built-in configuration; start it with --config FILE \
             to change the configuration remotely",
        ),
        Err(WriteError::Busy(reason)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, HeaderValue::from_static("5"))],
            Json(json!({ "error": format!("not applied, nothing was changed: {reason}") })),
        )
            .into_response(),
        Err(WriteError::RolledBack(reason)) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the change did not work and was rolled back: {reason}"),
        ),
        Err(WriteError::NotPersisted(reason)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the file could not be written, so the change was rolled back: {reason}"),
        ),
    }
}
