//! `/healthz`: 200 while frames reach the outputs, 503 with the reason when
//! they do not (for load balancers, uptime checks and people).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;
use crate::pipeline::progress::{self, Health};

/// Frames must have reached the outputs this recently.
const FRESH: Duration = Duration::from_secs(2);

pub async fn healthz(State(state): State<AppState>) -> (StatusCode, String) {
    match progress::health(&state.counters, FRESH) {
        // Frames flow either way; say whether they are the camera's.
        Health::Streaming { frames } => match state.metrics.latest().map(|s| s.camera) {
            Some(camera) if camera.state == "lost" => (
                StatusCode::OK,
                format!(
                    "ok: streaming the NO SIGNAL slate (camera lost: {}), {frames} frames so far\n",
                    camera.problem.as_deref().unwrap_or("no frames")
                ),
            ),
            Some(camera) if camera.state == "private" => (
                StatusCode::OK,
                format!(
                    "ok: privacy mode, streaming the privacy picture, {frames} frames so far\n"
                ),
            ),
            _ => (
                StatusCode::OK,
                format!("ok: streaming, {frames} frames so far\n"),
            ),
        },
        Health::NoFrameYet => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable: no frame has reached the outputs yet\n".to_owned(),
        ),
        Health::Stalled { since, frames } => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "unavailable: no frame for {:.1} s (after {frames} frames)\n",
                since.as_secs_f64()
            ),
        ),
    }
}
