//! The web server: the dashboard, HLS files, the metrics WebSocket,
//! Prometheus and the health check. It runs on the tokio runtime beside the
//! rest.

mod controls;
mod dashboard;
mod fault;
mod health;
mod hls;
mod metrics;
mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use axum::routing::get;
use axum::Router;

use crate::metrics::Metrics;

/// What the handlers read.
#[derive(Clone)]
pub struct AppState {
    /// Frames and bytes through the camera pipeline (health reads them).
    pub counters: crate::metrics::counters::StreamCounters,
    /// Where HLS files are; `None` when HLS is off.
    pub hls_dir: Option<PathBuf>,
    pub metrics: Metrics,
    /// A metrics WebSocket client that takes nothing for this long is dropped.
    pub ws_stall: std::time::Duration,
    /// Fault injection into the test source, when `camera.fault_injection`.
    pub faults: Option<crate::source::fault::FaultInjector>,
    /// The camera's controls.
    pub controls: crate::source::v4l2::SharedControls,
}

pub fn router(state: AppState) -> Router {
    // Endpoints that change something. Kept apart so one authentication
    // layer can guard them all (the remote-configuration work adds it).
    let writes = Router::new()
        .route(
            "/api/camera/controls/{name}",
            axum::routing::put(controls::set),
        )
        .route("/api/camera/fault", axum::routing::post(fault::inject));
    Router::new()
        .merge(writes)
        .route("/", get(dashboard::index))
        .route("/assets/{name}", get(dashboard::asset))
        .route("/healthz", get(health::healthz))
        .route("/hls/{file}", get(hls::file))
        .route("/metrics", get(metrics::metrics))
        .route("/api/metrics/ws", get(ws::metrics_ws))
        .route("/api/camera/controls", get(controls::list))
        .route("/api/camera/controls/{name}", get(controls::get_one))
        .with_state(state)
}

/// Binds `bind` (an `IP:PORT` already validated by the config), naming the
/// address when it is busy.
pub async fn bind(bind: &str) -> Result<tokio::net::TcpListener> {
    let address: SocketAddr = bind
        .parse()
        .with_context(|| format!("http.bind {bind:?} is not IP:PORT"))?;
    tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("http.bind {bind} cannot be used"))
}

/// Serves until `shutdown` completes, then finishes open requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    // Client addresses let HLS count its viewers.
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP server failed")
}
