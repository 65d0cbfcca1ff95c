//! `GET /api/camera` (admin): what the camera offers, for the settings
//! page's mode menu — the discovery data `edgecam probe` prints, as JSON:
//!
//! ```json
//! {"source": "v4l2", "device": "/dev/video0 (vivid)",
//!  "configured": {"width": 1280, "height": 720, "fps": 30, "format": "auto"},
//!  "modes": [{"format": "yuyv", "fourcc": "YUYV", "width": 1280,
//!             "height": 720, "fps": [30, 15]}, …]}
//! ```
//!
//! `format` is the value of `camera.format` that asks for that mode
//! (`auto` for raw formats the file cannot name). The test pattern and a
//! file draw any size: they list common ones, with `"any_size": true`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::AppState;
use crate::source::v4l2::discovery::{FormatOffer, SizeOffer};
use crate::source::{self, v4l2, ResolvedSource};

/// Sizes offered where any size is possible (16:9 and 4:3, small to HD).
const COMMON_SIZES: [(u32, u32); 6] = [
    (320, 180),
    (640, 360),
    (640, 480),
    (1280, 720),
    (1024, 768),
    (1920, 1080),
];

pub async fn modes(State(state): State<AppState>) -> Response {
    let camera = state.config.config().await.camera;
    let configured = json!({
        "width": camera.width,
        "height": camera.height,
        "fps": camera.fps,
        "format": camera.format,
    });
    // Listing devices opens each one: ioctls, off the async workers.
    let found = tokio::task::spawn_blocking(move || {
        let devices = v4l2::capture_devices();
        source::resolve(&camera, &devices).map(|chosen| (camera.source, chosen))
    })
    .await;
    let (source, chosen) = match found {
        Ok(Ok(found)) => found,
        Ok(Err(err)) => return super::config_api::error(StatusCode::NOT_FOUND, format!("{err:#}")),
        Err(err) => {
            return super::config_api::error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string())
        }
    };
    let mut reply = json!({ "configured": configured, "source": source });
    match chosen {
        ResolvedSource::V4l2(device) => {
            reply["device"] = json!(format!("{} ({})", device.path, device.name));
            reply["modes"] = device.formats.iter().flat_map(modes_of).collect();
            reply["any_size"] = json!(false);
        }
        other => {
            reply["device"] = json!(other.describe());
            reply["modes"] = any_size_modes();
            reply["any_size"] = json!(true);
        }
    }
    Json(reply).into_response()
}

/// `camera.format`'s name for a fourcc; raw formats it cannot name are
/// reached through `auto`.
fn format_key(fourcc: &str) -> &'static str {
    match fourcc {
        "H264" => "h264",
        "MJPG" | "JPEG" => "mjpeg",
        "YUYV" => "yuyv",
        "NV12" => "nv12",
        _ => "auto",
    }
}

/// Every size and its rates in one pixel format edgecam captures in.
fn modes_of(format: &FormatOffer) -> Vec<Value> {
    if !v4l2::negotiate::usable(&format.fourcc) {
        return Vec::new();
    }
    let mode = |width: u32, height: u32, rates: &[v4l2::discovery::Rate]| {
        let mut fps: Vec<u32> = rates.iter().map(|r| r.fps().round() as u32).collect();
        fps.dedup();
        json!({
            "format": format_key(&format.fourcc),
            "fourcc": format.fourcc,
            "width": width,
            "height": height,
            "fps": fps,
        })
    };
    format
        .sizes
        .iter()
        .flat_map(|size| match size {
            SizeOffer::Discrete {
                width,
                height,
                rates,
            } => vec![mode(*width, *height, rates)],
            SizeOffer::Stepwise {
                min,
                max,
                step,
                rates,
            } => stepwise_sizes(*min, *max, *step)
                .into_iter()
                .map(|(w, h)| mode(w, h, rates))
                .collect(),
        })
        .collect()
}

/// The common sizes a stepwise range takes, with its smallest and largest.
fn stepwise_sizes(min: (u32, u32), max: (u32, u32), step: (u32, u32)) -> Vec<(u32, u32)> {
    let fits = |(w, h): (u32, u32)| {
        (min.0..=max.0).contains(&w)
            && (min.1..=max.1).contains(&h)
            && (w - min.0).is_multiple_of(step.0.max(1))
            && (h - min.1).is_multiple_of(step.1.max(1))
    };
    let mut sizes = vec![min];
    sizes.extend(COMMON_SIZES.into_iter().filter(|&size| fits(size)));
    sizes.push(max);
    sizes.dedup();
    sizes
}

fn any_size_modes() -> Value {
    COMMON_SIZES
        .iter()
        .map(|(width, height)| {
            json!({ "format": "auto", "width": width, "height": height, "fps": [30, 25, 15] })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stepwise_range_offers_the_common_sizes_inside_it() {
        let sizes = stepwise_sizes((16, 16), (1920, 1080), (2, 2));
        assert_eq!(sizes.first(), Some(&(16, 16)));
        assert_eq!(sizes.last(), Some(&(1920, 1080)));
        assert!(sizes.contains(&(1280, 720)));
        let odd = stepwise_sizes((641, 361), (1280, 720), (7, 7));
        assert!(!odd.contains(&(640, 360)));
    }
}
