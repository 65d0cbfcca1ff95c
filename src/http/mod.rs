//! The web server: the dashboard, HLS files, the metrics WebSocket,
//! Prometheus and the health check. It runs on the tokio runtime beside the
//! rest.

pub mod auth;
mod config_api;
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
    /// Where HLS files are; `None` when HLS is off. Replaced when the
    /// pipeline is rebuilt.
    pub hls_dir: std::sync::Arc<std::sync::RwLock<Option<PathBuf>>>,
    pub metrics: Metrics,
    /// A metrics WebSocket client that takes nothing for this many seconds
    /// is dropped (changes live).
    pub ws_stall_s: std::sync::Arc<std::sync::atomic::AtomicU32>,
    /// Fault injection into the test source…
    pub faults: crate::source::fault::FaultInjector,
    /// …offered only while `camera.fault_injection` is true.
    pub fault_injection: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The camera's controls.
    pub controls: crate::source::v4l2::SharedControls,
    /// Remote configuration.
    pub config: std::sync::Arc<crate::control::ConfigService>,
    /// The tokens guarding admin and viewer routes.
    pub guard: auth::SharedGuard,
    /// Largest request body accepted, in bytes.
    pub max_body: usize,
}

/// Every route: method, path, and who may use it. The router is built from
/// this table, so the tests that check the guards can enumerate it.
pub const ROUTES: &[(&str, &str, Access)] = &[
    ("GET", "/", Access::Open),
    ("GET", "/assets/{name}", Access::Open),
    ("GET", "/healthz", Access::Open),
    ("GET", "/hls/{file}", Access::Viewer),
    ("GET", "/metrics", Access::Viewer),
    ("GET", "/api/metrics/ws", Access::Viewer),
    ("GET", "/api/camera/controls", Access::Viewer),
    ("GET", "/api/camera/controls/{name}", Access::Viewer),
    ("PUT", "/api/camera/controls/{name}", Access::Admin),
    ("POST", "/api/camera/fault", Access::Admin),
    ("GET", "/api/config", Access::Admin),
    ("PUT", "/api/config", Access::Admin),
    ("PATCH", "/api/config", Access::Admin),
    ("POST", "/api/config/validate", Access::Admin),
];

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The page and its static files (no data), and the health check.
    Open,
    /// Video and metrics: the viewer token when one is set.
    Viewer,
    /// Anything that changes the board, or reads its configuration.
    Admin,
}

/// The handler for a route of [`ROUTES`].
fn handler(method: &str, path: &str) -> Option<axum::routing::MethodRouter<AppState>> {
    use axum::routing::{patch, post, put};
    Some(match (method, path) {
        ("GET", "/") => get(dashboard::index),
        ("GET", "/assets/{name}") => get(dashboard::asset),
        ("GET", "/healthz") => get(health::healthz),
        ("GET", "/hls/{file}") => get(hls::file),
        ("GET", "/metrics") => get(metrics::metrics),
        ("GET", "/api/metrics/ws") => get(ws::metrics_ws),
        ("GET", "/api/camera/controls") => get(controls::list),
        ("GET", "/api/camera/controls/{name}") => get(controls::get_one),
        ("PUT", "/api/camera/controls/{name}") => put(controls::set),
        ("POST", "/api/camera/fault") => post(fault::inject),
        ("GET", "/api/config") => get(config_api::get),
        ("PUT", "/api/config") => put(config_api::put),
        ("PATCH", "/api/config") => patch(config_api::patch),
        ("POST", "/api/config/validate") => post(config_api::validate),
        _ => return None,
    })
}

pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for &(method, path, access) in ROUTES {
        let Some(mut route) = handler(method, path) else {
            tracing::error!("no handler for {method} {path}");
            continue;
        };
        let role = match access {
            Access::Open => None,
            Access::Viewer => Some(auth::Role::Viewer),
            Access::Admin => Some(auth::Role::Admin),
        };
        if let Some(role) = role {
            route = route.layer(axum::middleware::from_fn_with_state(
                (state.guard.clone(), role),
                auth::require,
            ));
        }
        router = router.route(path, route);
    }
    router
        .layer(axum::extract::DefaultBodyLimit::max(state.max_body))
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
