//! `POST /api/camera/fault?kind=stop|stall|error|wedge&seconds=N`: make
//! the test source fail, to exercise the camera-loss path, or wedge the
//! encoder, to exercise systemd's watchdog. 404 unless
//! `camera.fault_injection = true`.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::AppState;
use crate::source::fault::FaultKind;

#[derive(Deserialize)]
pub struct FaultRequest {
    kind: String,
    seconds: f64,
}

pub async fn inject(
    State(state): State<AppState>,
    Query(request): Query<FaultRequest>,
) -> (StatusCode, String) {
    let enabled = state
        .fault_injection
        .load(std::sync::atomic::Ordering::Relaxed);
    let Some(faults) = enabled.then_some(&state.faults) else {
        return (
            StatusCode::NOT_FOUND,
            "fault injection is off (camera.fault_injection = false)\n".to_owned(),
        );
    };
    let kind: FaultKind = match request.kind.parse() {
        Ok(kind) => kind,
        Err(message) => return (StatusCode::BAD_REQUEST, format!("{message}\n")),
    };
    if !(0.0..=3600.0).contains(&request.seconds) {
        return (
            StatusCode::BAD_REQUEST,
            "seconds must be 0–3600\n".to_owned(),
        );
    }
    faults.inject(kind, Duration::from_secs_f64(request.seconds));
    (
        StatusCode::OK,
        format!("injected {kind:?} for {} s\n", request.seconds),
    )
}
