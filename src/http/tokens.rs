//! The tokens, from the settings page (admin token):
//! - `GET /api/tokens` — whether a viewer token is set, and where the admin
//!   token comes from (never a token itself);
//! - `POST /api/tokens/admin` or `/api/tokens/viewer` — a new random token,
//!   written to `[auth]` like any other edit (a secret: redacted when the
//!   file is read back) and in force from the next request, with no
//!   restart. The reply carries it: the only time it is shown;
//! - `DELETE /api/tokens/viewer` — no viewer token: watching is open on the
//!   LAN again.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::config_api::{error, written};
use super::AppState;

pub async fn get(State(state): State<AppState>) -> Response {
    let auth = state.config.config().await.auth;
    let admin = if !auth.admin_token.is_empty() {
        "the configuration file ([auth] admin_token)"
    } else if !auth.admin_token_file.is_empty() {
        "admin_token_file"
    } else {
        "generated into the state directory"
    };
    Json(json!({
        "viewer_token_set": state.guard.viewer_token_set(),
        "admin_token_from": admin,
    }))
    .into_response()
}

/// The `[auth]` key a role's token is written to.
fn key(role: &str) -> Option<&'static str> {
    match role {
        "admin" => Some("admin_token"),
        "viewer" => Some("viewer_token"),
        _ => None,
    }
}

pub async fn rotate(State(state): State<AppState>, Path(role): Path<String>) -> Response {
    let Some(key) = key(&role) else {
        return error(StatusCode::NOT_FOUND, "tokens are \"admin\" or \"viewer\"");
    };
    let token = match super::auth::generate() {
        Ok(token) => token,
        Err(err) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("{err:#}")),
    };
    let outcome = state
        .config
        .patch_current(&format!("[auth]\n{key} = \"{token}\"\n"))
        .await;
    if outcome.is_err() {
        return written(outcome);
    }
    tracing::warn!("the {role} token was replaced through the API");
    (
        // A token is never kept by a cache on the way.
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "role": role,
            "token": token,
            "note": "shown this once: copy it now",
        })),
    )
        .into_response()
}

pub async fn clear(State(state): State<AppState>, Path(role): Path<String>) -> Response {
    if role != "viewer" {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "only the viewer token can be removed; the admin token can be replaced",
        );
    }
    let outcome = state
        .config
        .patch_current("[auth]\nviewer_token = \"\"\n")
        .await;
    if outcome.is_ok() {
        tracing::warn!("the viewer token was removed through the API: watching is open");
    }
    written(outcome)
}
