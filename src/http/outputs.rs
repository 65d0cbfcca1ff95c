//! - `GET /api/outputs` — every output: its state, restarts, last error and
//!   what it serves, and the viewers per output;
//! - `POST /api/outputs/{name}/fault` — break a running output on purpose
//!   (only while `camera.fault_injection` is true), to watch it restart.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppState;

pub async fn list(State(state): State<AppState>) -> Response {
    let registry = &state.metrics.registry;
    Json(json!({
        "outputs": registry.outputs(),
        "viewers": registry.viewer_counts(),
    }))
    .into_response()
}

pub async fn inject(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    if !state
        .fault_injection
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return (
            StatusCode::NOT_FOUND,
            "fault injection is off (camera.fault_injection = false)\n",
        )
            .into_response();
    }
    match (state.break_output)(&name).await {
        Ok(()) => (StatusCode::OK, format!("output {name} broken on purpose\n")).into_response(),
        Err(reason) => (StatusCode::NOT_FOUND, format!("{reason}\n")).into_response(),
    }
}
