//! Live camera controls:
//! - `GET /api/camera/controls` — every control with its type, range,
//!   default and current value;
//! - `GET /api/camera/controls/{name}` — one of them;
//! - `PUT /api/camera/controls/{name}` with a JSON value (`140`, `true`,
//!   `"50 Hz"`, or `{"value": …}`) — changes it while streaming.
//!
//! Errors are JSON `{"error": "…"}`: 404 for an unknown control or a camera
//! without controls, 400 for a body that is not JSON, 422 for a value the
//! control does not take, 503 when the camera cannot be reached.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppState;
use crate::config::ControlSetting;
use crate::source::v4l2::controls::ControlError;
use crate::source::v4l2::SetError;

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

fn control_error(err: ControlError) -> Response {
    let status = match err {
        ControlError::UnknownName { .. } => StatusCode::NOT_FOUND,
        ControlError::BadValue { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        ControlError::Device { .. } => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, err)
}

/// The ioctls block, briefly; they run off the async workers.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(work).await.ok()
}

fn no_camera() -> Response {
    error(StatusCode::NOT_FOUND, SetError::NoCamera)
}

fn set_error(err: SetError) -> Response {
    match err {
        SetError::NoCamera => no_camera(),
        SetError::Control(err) => control_error(err),
    }
}

pub async fn list(State(state): State<AppState>) -> Response {
    let camera = state.controls.clone();
    let listed = blocking(move || camera.list().map(|all| (camera.device(), all))).await;
    match listed {
        Some(Ok((device, controls))) => {
            Json(json!({ "device": device, "controls": controls })).into_response()
        }
        Some(Err(err)) => set_error(err),
        None => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the control query failed",
        ),
    }
}

pub async fn get_one(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let camera = state.controls.clone();
    let listed = blocking(move || camera.list()).await;
    match listed {
        Some(Ok(all)) => match all.into_iter().find(|c| c.name == name) {
            Some(control) => Json(control).into_response(),
            None => error(
                StatusCode::NOT_FOUND,
                format!("the camera has no control named {name:?}"),
            ),
        },
        Some(Err(err)) => set_error(err),
        None => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the control query failed",
        ),
    }
}

/// The value a PUT body carries: a bare JSON value or `{"value": …}`.
fn setting_from(body: &[u8]) -> Result<ControlSetting, String> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|err| format!("the body is not JSON ({err}); send e.g. 140, true or \"50 Hz\""))?;
    let value = match value {
        serde_json::Value::Object(mut object) if object.len() == 1 => {
            object.remove("value").unwrap_or(serde_json::Value::Null)
        }
        other => other,
    };
    serde_json::from_value(value.clone()).map_err(|_| {
        format!("{value} is not a control value: send an integer, true/false or a menu item name")
    })
}

pub async fn set(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let setting = match setting_from(&body) {
        Ok(setting) => setting,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let camera = state.controls.clone();
    let done = blocking(move || {
        let result = camera.set(&name, &setting);
        if result.is_ok() {
            tracing::info!("camera control {name} set to {setting} through the API");
        }
        result
    })
    .await;
    match done {
        Some(Ok(control)) => Json(control).into_response(),
        Some(Err(err)) => set_error(err),
        None => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the control change failed",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_bare_values_or_wrapped() {
        assert_eq!(setting_from(b"140"), Ok(ControlSetting::Int(140)));
        assert_eq!(setting_from(b"true"), Ok(ControlSetting::Bool(true)));
        assert_eq!(
            setting_from(br#"{"value": "50 Hz"}"#),
            Ok(ControlSetting::Text("50 Hz".into()))
        );
        assert!(setting_from(b"bright").unwrap_err().contains("not JSON"));
        assert!(setting_from(b"[1]")
            .unwrap_err()
            .contains("not a control value"));
    }
}
