//! `/metrics`: the Prometheus text exposition of the latest sample.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::metrics::prometheus;

pub async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics.latest() {
        Some(sample) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            prometheus::render(
                &sample,
                &state.metrics.camera(),
                &state.inventory.summarize(),
                &state.config.reloads(),
            ),
        )
            .into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no sample yet\n").into_response(),
    }
}
