//! The live views, managed at runtime (the one place for it):
//! - `GET /api/outputs` — every output: its state, restarts, last error,
//!   what it serves, its parameters; and the viewers per output;
//! - `POST /api/outputs/{name}/start|stop` — switch it on or off;
//! - `PATCH /api/outputs/{name}` with a JSON object of parameters (e.g.
//!   `{"quality": 60, "max_fps": 10}` for MJPEG, `{"window": 4}` for HLS);
//! - `POST /api/outputs/{name}/fault` — break a running output on purpose
//!   (only while `camera.fault_injection` is true), to watch it restart.
//!
//! Start, stop and parameters are configuration edits: validated, applied
//! (live, or by restarting that output alone), confirmed and written to the
//! file like any other, so they survive a restart.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::AppState;

pub async fn list(State(state): State<AppState>) -> Response {
    let registry = &state.metrics.registry;
    // Viewers read this: no secret of any output's settings is shown.
    let config = crate::config::diff::redacted_json(&state.config.config().await);
    let viewers = registry.viewer_counts();
    let mut outputs = serde_json::to_value(registry.outputs()).unwrap_or_default();
    if let Value::Object(outputs) = &mut outputs {
        for (name, report) in outputs.iter_mut() {
            let Some(facts) = state.output_facts.get(name.as_str()) else {
                continue;
            };
            let sections = facts.settings;
            report["viewers"] = viewers.get(facts.viewer_label).copied().unwrap_or(0).into();
            let settings: serde_json::Map<String, Value> = sections
                .iter()
                .map(|section| ((*section).to_owned(), config[*section].clone()))
                .collect();
            report["settings"] = Value::Object(settings);
            report["controllable"] = (!sections.is_empty()).into();
        }
    }
    Json(json!({ "outputs": outputs, "viewers": viewers })).into_response()
}

pub async fn start(state: State<AppState>, name: Path<String>) -> Response {
    switch(state, name, true).await
}

pub async fn stop(state: State<AppState>, name: Path<String>) -> Response {
    switch(state, name, false).await
}

async fn switch(State(state): State<AppState>, Path(name): Path<String>, on: bool) -> Response {
    let section = match sections_of(&state, &name) {
        Ok(sections) => sections[0],
        Err(refusal) => return *refusal,
    };
    let fragment = format!("[{section}]\nenabled = {on}\n");
    super::config_api::written(state.config.patch_current(&fragment).await)
}

pub async fn tune(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let sections = match sections_of(&state, &name) {
        Ok(sections) => sections,
        Err(refusal) => return *refusal,
    };
    let Ok(Value::Object(wanted)) = serde_json::from_slice::<Value>(&body) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "send a JSON object of parameters, e.g. {\"quality\": 60}".to_owned(),
        );
    };
    let config = serde_json::to_value(state.config.config().await).unwrap_or_default();
    // Keys by section: a TOML table may appear once.
    let mut tables: std::collections::BTreeMap<&str, String> = Default::default();
    for (key, value) in &wanted {
        // The first of the output's sections that has the key.
        let Some(section) = sections
            .iter()
            .find(|section| config[**section].get(key).is_some())
        else {
            let known: Vec<String> = sections
                .iter()
                .flat_map(|section| {
                    config[*section]
                        .as_object()
                        .map(|keys| keys.keys().cloned().collect::<Vec<_>>())
                        .unwrap_or_default()
                })
                .collect();
            return refused(
                StatusCode::BAD_REQUEST,
                format!(
                    "output {name} has no parameter {key:?}; it has {}",
                    known.join(", ")
                ),
            );
        };
        let Ok(value) = toml::Value::try_from(value) else {
            return refused(
                StatusCode::BAD_REQUEST,
                format!("{key}: {value} is not a value a configuration holds"),
            );
        };
        tables
            .entry(section)
            .or_default()
            .push_str(&format!("{key} = {value}\n"));
    }
    let fragment: String = tables
        .iter()
        .map(|(section, keys)| format!("[{section}]\n{keys}"))
        .collect();
    super::config_api::written(state.config.patch_current(&fragment).await)
}

/// The output's configuration sections, or why it cannot be controlled.
fn sections_of(state: &AppState, name: &str) -> Result<&'static [&'static str], Box<Response>> {
    match state.output_facts.get(name).map(|facts| facts.settings) {
        Some(sections) if !sections.is_empty() => Ok(sections),
        Some(_) => Err(Box::new(refused(
            StatusCode::CONFLICT,
            format!("output {name} is always on and has no parameters"),
        ))),
        None => Err(Box::new(refused(
            StatusCode::NOT_FOUND,
            format!("there is no output called {name:?}"),
        ))),
    }
}

fn refused(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
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
