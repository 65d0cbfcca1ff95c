//! The web server: the dashboard, Prometheus, the health check, the
//! configuration and control API, and the routes each output declares (the
//! HLS files, the metrics WebSocket, …). It runs on the tokio runtime
//! beside the rest; `server` is its accept loop and connection limits.

pub mod auth;
mod camera;
mod config_api;
mod controls;
mod dashboard;
mod fault;
mod health;
mod metrics;
mod outputs;
mod overlay;
mod privacy;
pub mod server;
mod tokens;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::routing::{get, MethodRouter};
use axum::Router;

use crate::metrics::Metrics;
use crate::pipeline::inventory::Inventory;

/// Asks the app to break a running output on purpose (fault injection):
/// `Err` with the reason when there is no such output running.
pub type BreakOutput = Arc<
    dyn Fn(&str) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// An output as the live-view API sees it.
#[derive(Debug, Clone, Copy)]
pub struct OutputFacts {
    /// The `output` label its viewers are counted under.
    pub viewer_label: &'static str,
    /// Its configuration sections (see `Output::settings`).
    pub settings: &'static [&'static str],
}

/// What the handlers read.
#[derive(Clone)]
pub struct AppState {
    /// Frames and bytes through the camera pipeline (health reads them).
    pub counters: crate::pipeline::counters::StreamCounters,
    pub metrics: Metrics,
    /// Every running pipeline, counted in `/metrics`.
    pub inventory: Inventory,
    /// Fault injection into the test source…
    pub faults: crate::source::fault::FaultInjector,
    /// …offered only while `camera.fault_injection` is true.
    pub fault_injection: Arc<AtomicBool>,
    pub break_output: BreakOutput,
    /// What the API says of each output, by name.
    pub output_facts: Arc<std::collections::BTreeMap<&'static str, OutputFacts>>,
    /// The camera's controls.
    pub controls: crate::source::v4l2::SharedControls,
    /// Remote configuration.
    pub config: Arc<crate::control::ConfigService>,
    /// The tokens guarding admin and viewer routes.
    pub guard: auth::SharedGuard,
    /// Largest request body accepted, in bytes.
    pub max_body: usize,
}

/// The server's own routes: method, path, and who may use it. Outputs add
/// theirs (see [`Route`]); `app::routes` lists them all.
pub const ROUTES: &[(&str, &str, Access)] = &[
    ("GET", "/", Access::Open),
    ("GET", "/settings", Access::Open),
    ("GET", "/assets/{name}", Access::Open),
    ("GET", "/healthz", Access::Open),
    ("GET", "/metrics", Access::Viewer),
    ("GET", "/api/outputs", Access::Viewer),
    ("PATCH", "/api/outputs/{name}", Access::Admin),
    ("POST", "/api/outputs/{name}/start", Access::Admin),
    ("POST", "/api/outputs/{name}/stop", Access::Admin),
    ("POST", "/api/outputs/{name}/fault", Access::Admin),
    ("GET", "/api/camera", Access::Admin),
    ("GET", "/api/camera/controls", Access::Viewer),
    ("GET", "/api/camera/controls/{name}", Access::Viewer),
    ("PUT", "/api/camera/controls/{name}", Access::Admin),
    ("POST", "/api/camera/fault", Access::Admin),
    ("GET", "/api/config", Access::Admin),
    ("PUT", "/api/config", Access::Admin),
    ("PATCH", "/api/config", Access::Admin),
    ("POST", "/api/config/validate", Access::Admin),
    ("GET", "/api/overlay/layers", Access::Admin),
    ("GET", "/api/overlay/layers/{name}", Access::Admin),
    ("PUT", "/api/overlay/layers/{name}", Access::Admin),
    ("PATCH", "/api/overlay/layers/{name}", Access::Admin),
    ("DELETE", "/api/overlay/layers/{name}", Access::Admin),
    ("GET", "/api/privacy", Access::Viewer),
    ("POST", "/api/privacy", Access::Admin),
    ("GET", "/api/tokens", Access::Admin),
    ("POST", "/api/tokens/{role}", Access::Admin),
    ("DELETE", "/api/tokens/{role}", Access::Admin),
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

/// A route an output serves, with its own handler state.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    pub handler: MethodRouter,
}

/// The handler for a route of [`ROUTES`].
fn handler(method: &str, path: &str) -> Option<MethodRouter<AppState>> {
    use axum::routing::{delete, patch, post, put};
    Some(match (method, path) {
        ("GET", "/") => get(dashboard::index),
        ("GET", "/settings") => get(dashboard::settings),
        ("GET", "/assets/{name}") => get(dashboard::asset),
        ("GET", "/healthz") => get(health::healthz),
        ("GET", "/metrics") => get(metrics::metrics),
        ("GET", "/api/outputs") => get(outputs::list),
        ("PATCH", "/api/outputs/{name}") => patch(outputs::tune),
        ("POST", "/api/outputs/{name}/start") => post(outputs::start),
        ("POST", "/api/outputs/{name}/stop") => post(outputs::stop),
        ("POST", "/api/outputs/{name}/fault") => post(outputs::inject),
        ("GET", "/api/camera") => get(camera::modes),
        ("GET", "/api/camera/controls") => get(controls::list),
        ("GET", "/api/camera/controls/{name}") => get(controls::get_one),
        ("PUT", "/api/camera/controls/{name}") => put(controls::set),
        ("POST", "/api/camera/fault") => post(fault::inject),
        ("GET", "/api/config") => get(config_api::get),
        ("PUT", "/api/config") => put(config_api::put),
        ("PATCH", "/api/config") => patch(config_api::patch),
        ("POST", "/api/config/validate") => post(config_api::validate),
        ("GET", "/api/overlay/layers") => get(overlay::list),
        ("GET", "/api/overlay/layers/{name}") => get(overlay::get_one),
        ("PUT", "/api/overlay/layers/{name}") => put(overlay::put),
        ("PATCH", "/api/overlay/layers/{name}") => patch(overlay::patch),
        ("DELETE", "/api/overlay/layers/{name}") => delete(overlay::delete),
        ("GET", "/api/privacy") => get(privacy::get),
        ("POST", "/api/privacy") => post(privacy::set),
        ("GET", "/api/tokens") => get(tokens::get),
        ("POST", "/api/tokens/{role}") => post(tokens::rotate),
        ("DELETE", "/api/tokens/{role}") => delete(tokens::clear),
        _ => return None,
    })
}

/// Puts the token check for `access` in front of `route`.
fn guarded<S: Clone + Send + Sync + 'static>(
    route: MethodRouter<S>,
    access: Access,
    guard: &auth::SharedGuard,
) -> MethodRouter<S> {
    let role = match access {
        Access::Open => return route,
        Access::Viewer => auth::Role::Viewer,
        Access::Admin => auth::Role::Admin,
    };
    route.layer(axum::middleware::from_fn_with_state(
        (guard.clone(), role),
        auth::require,
    ))
}

/// The whole router: the server's routes and the outputs' `routes`.
pub fn router(state: AppState, output_routes: Vec<Route>) -> Router {
    let guard = state.guard.clone();
    let max_body = state.max_body;
    let mut router = Router::new();
    for &(method, path, access) in ROUTES {
        let Some(route) = handler(method, path) else {
            tracing::error!("no handler for {method} {path}");
            continue;
        };
        router = router.route(path, guarded(route, access, &guard));
    }
    let mut router = router.with_state(state);
    for route in output_routes {
        router = router.route(route.path, guarded(route.handler, route.access, &guard));
    }
    let router = router
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "no such page\n") })
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(api_errors_as_json));
    with_cors(router)
}

/// Every API error answers `{"error": "…"}`, whoever made it: axum's own
/// refusals (a body over the limit, a missing `Content-Type`) are plain
/// text, which a page cannot show beside the others. (Media routes keep
/// what their players expect.)
async fn api_errors_as_json(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::header::CONTENT_TYPE;
    use axum::response::IntoResponse;
    let api = request.uri().path().starts_with("/api/");
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !api || !(status.is_client_error() || status.is_server_error()) || json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    parts.headers.remove(CONTENT_TYPE);
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    (parts, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// `router` behind [`cors`]. tower-http answers every OPTIONS as a CORS
/// preflight, but WHEP's plain OPTIONS (no `Access-Control-Request-Method`)
/// must reach its route, which lists the ICE servers: those go around it,
/// and get the one header a cross-origin reader needs.
fn with_cors(router: Router) -> Router {
    use axum::http::{header, HeaderValue, Method};
    use tower::ServiceExt;
    let preflights = router.clone().layer(cors());
    Router::new().fallback_service(tower::service_fn(move |request: axum::extract::Request| {
        let plain_options = request.method() == Method::OPTIONS
            && !request
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        let (router, preflights) = (router.clone(), preflights.clone());
        async move {
            if !plain_options {
                return preflights.oneshot(request).await;
            }
            let mut response = router.oneshot(request).await?;
            let headers = response.headers_mut();
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("link,accept-post,accept-patch"),
            );
            Ok(response)
        }
    }))
}

/// Any page may embed the streams and call the API, errors included (a
/// page told "HTTP 0" cannot tell a wrong URL from a CORS refusal), and a
/// preflight is answered before the token check (it carries no token).
/// Tokens are bearer headers, never cookies, so a foreign page holds none
/// by default.
fn cors() -> tower_http::cors::CorsLayer {
    use axum::http::{header, Method};
    use tower_http::cors::{Any, CorsLayer};
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
        ])
        // WHEP clients read the session's Location and ETag, the ICE
        // servers (Link) and what a PATCH takes (Accept-Patch).
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::LINK,
            header::HeaderName::from_static("accept-patch"),
        ])
        .max_age(std::time::Duration::from_secs(600))
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

/// The `token` query parameter (players and `<img>` cannot set headers).
pub fn query_token(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(str::to_owned)
}
