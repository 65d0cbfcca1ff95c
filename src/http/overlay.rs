//! The overlay's layers one by one (admin token):
//! - `GET /api/overlay/layers` — every layer, as configured;
//! - `GET /api/overlay/layers/{name}` — one;
//! - `PUT /api/overlay/layers/{name}` with a JSON layer — adds it, or
//!   replaces the layer of that name (keys left out take their defaults);
//! - `PATCH /api/overlay/layers/{name}` with some of its keys — changes them;
//! - `DELETE /api/overlay/layers/{name}`.
//!
//! Each is a configuration edit of `overlay.layers`: validated (errors name
//! the layer), applied live with no viewer dropped, confirmed and written
//! to the file like any other, so it survives a restart. Masks sent without
//! a `size` get the camera's: their rects then scale with the resolution.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::AppState;
use crate::config::{LayerConfig, LayerKind};
use crate::control::WriteError;

pub async fn list(State(state): State<AppState>) -> Response {
    let layers = state.config.config().await.overlay.layers;
    Json(json!({ "layers": layers })).into_response()
}

pub async fn get_one(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let layers = state.config.config().await.overlay.layers;
    match layers.into_iter().find(|layer| layer.name == name) {
        Some(layer) => Json(layer).into_response(),
        None => no_such_layer(&name),
    }
}

pub async fn put(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let fields = match object(&body) {
        Ok(fields) => fields,
        Err(refusal) => return *refusal,
    };
    edit(&state, |layers| {
        let layer = layer_from(&name, Value::Object(fields.clone()))?;
        match layers.iter_mut().find(|l| l.name == name) {
            Some(existing) => *existing = layer,
            None => layers.push(layer),
        }
        Ok(())
    })
    .await
}

pub async fn patch(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let fields = match object(&body) {
        Ok(fields) => fields,
        Err(refusal) => return *refusal,
    };
    edit(&state, |layers| {
        let Some(existing) = layers.iter_mut().find(|l| l.name == name) else {
            return Err(Box::new(no_such_layer(&name)));
        };
        let mut merged = serde_json::to_value(&*existing).unwrap_or_default();
        for (key, value) in &fields {
            merged[key] = value.clone();
        }
        *existing = layer_from(&name, merged)?;
        Ok(())
    })
    .await
}

pub async fn delete(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    edit(&state, |layers| {
        let before = layers.len();
        layers.retain(|layer| layer.name != name);
        if layers.len() == before {
            return Err(Box::new(no_such_layer(&name)));
        }
        Ok(())
    })
    .await
}

/// Applies `change` to the current layers and writes them back. Another
/// writer in between: read again and redo it, so neither edit is lost.
async fn edit(
    state: &AppState,
    change: impl Fn(&mut Vec<LayerConfig>) -> Result<(), Box<Response>>,
) -> Response {
    for _ in 0..3 {
        let revision = state.config.revision().await;
        let config = state.config.config().await;
        let mut layers = config.overlay.layers;
        if let Err(refusal) = change(&mut layers) {
            return *refusal;
        }
        // A mask drawn through the API is measured in today's picture: say
        // so in the layer, and it keeps its place at any other resolution.
        for mask in layers
            .iter_mut()
            .filter(|l| l.kind == LayerKind::Mask && l.size == [0, 0])
        {
            mask.size = [config.camera.width, config.camera.height];
        }
        match state.config.patch(&fragment(&layers), &revision).await {
            Err(WriteError::Stale { .. }) => continue,
            outcome => return super::config_api::written(outcome),
        }
    }
    refused(
        StatusCode::CONFLICT,
        "the configuration kept changing; try again".to_owned(),
    )
}

/// The TOML that sets `overlay.layers` to `layers` (the whole list).
fn fragment(layers: &[LayerConfig]) -> String {
    #[derive(serde::Serialize)]
    struct Section<'a> {
        layers: &'a [LayerConfig],
    }
    #[derive(serde::Serialize)]
    struct Document<'a> {
        overlay: Section<'a>,
    }
    toml::to_string(&Document {
        overlay: Section { layers },
    })
    .unwrap_or_default()
}

/// A layer named `name` from JSON keys (a `name` among them must agree).
fn layer_from(name: &str, mut fields: Value) -> Result<LayerConfig, Box<Response>> {
    if fields.get("name").is_some_and(|given| given != name) {
        return Err(Box::new(refused(
            StatusCode::BAD_REQUEST,
            format!("the layer is {name:?} (its URL); rename it by deleting it and adding another"),
        )));
    }
    fields["name"] = name.into();
    serde_json::from_value(fields).map_err(|err| {
        Box::new(refused(
            StatusCode::BAD_REQUEST,
            format!("layer {name:?}: {err}"),
        ))
    })
}

fn object(body: &[u8]) -> Result<serde_json::Map<String, Value>, Box<Response>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        _ => Err(Box::new(refused(
            StatusCode::BAD_REQUEST,
            "send the layer as a JSON object, e.g. {\"kind\": \"clock\"}".to_owned(),
        ))),
    }
}

fn no_such_layer(name: &str) -> Response {
    refused(
        StatusCode::NOT_FOUND,
        format!("no overlay layer is named {name:?}"),
    )
}

fn refused(status: StatusCode, message: String) -> Response {
    super::config_api::error(status, message)
}
