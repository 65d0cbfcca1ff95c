//! Privacy mode:
//! - `GET /api/privacy` — `{"enabled": bool}` (viewer token);
//! - `POST /api/privacy` with `{"enabled": true|false}` (admin token) — a
//!   configuration edit of `privacy.enabled`: applied live (the camera is
//!   closed or opened, every viewer stays), confirmed and written to the
//!   file, so it survives a restart.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppState;

pub async fn get(State(state): State<AppState>) -> Response {
    let enabled = state.config.config().await.privacy.enabled;
    Json(json!({ "enabled": enabled })).into_response()
}

pub async fn set(State(state): State<AppState>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Wanted {
        enabled: bool,
    }
    let Ok(wanted) = serde_json::from_slice::<Wanted>(&body) else {
        return super::config_api::error(
            StatusCode::BAD_REQUEST,
            "send {\"enabled\": true} or {\"enabled\": false}".to_owned(),
        );
    };
    // A switch, like the outputs' start/stop: no ETag needed.
    let fragment = crate::config::PrivacyConfig::fragment(wanted.enabled);
    super::config_api::written(state.config.patch_current(&fragment).await)
}
