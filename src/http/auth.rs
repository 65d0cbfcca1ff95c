//! Tokens: an admin token for everything that changes the board, and an
//! optional viewer token for video and metrics. Compared in constant time;
//! a client that keeps failing is slowed down.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::AuthConfig;

/// Failed attempts one address may make per window before it waits.
const FAILURES_ALLOWED: u32 = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Who a route is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Viewer,
}

/// The tokens in force and the failure counts per address.
pub struct Guard {
    admin: [u8; 32],
    viewer: Option<[u8; 32]>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

pub type SharedGuard = Arc<Guard>;

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Guard {
    pub fn new(admin: &str, viewer: Option<&str>) -> SharedGuard {
        Arc::new(Self {
            admin: digest(admin),
            viewer: viewer.filter(|v| !v.is_empty()).map(digest),
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// Whether `presented` grants `role`. The admin token grants both.
    /// Digests of equal length are compared in constant time, so neither
    /// the content nor the length of a token leaks through timing.
    fn grants(&self, role: Role, presented: Option<&str>) -> bool {
        let Some(presented) = presented.map(digest) else {
            return role == Role::Viewer && self.viewer.is_none();
        };
        let admin: bool = presented.ct_eq(&self.admin).into();
        match role {
            Role::Admin => admin,
            Role::Viewer => {
                admin
                    || self
                        .viewer
                        .is_none_or(|viewer| bool::from(presented.ct_eq(&viewer)))
            }
        }
    }

    /// Counts a failure; true when the address has failed too often.
    fn fail(&self, from: IpAddr) -> bool {
        let Ok(mut failures) = self.failures.lock() else {
            return false;
        };
        let now = Instant::now();
        failures.retain(|_, (_, since)| now.duration_since(*since) < FAILURE_WINDOW);
        let entry = failures.entry(from).or_insert((0, now));
        entry.0 += 1;
        entry.0 > FAILURES_ALLOWED
    }

    fn blocked(&self, from: IpAddr) -> bool {
        self.failures.lock().is_ok_and(|failures| {
            failures.get(&from).is_some_and(|(count, since)| {
                *count >= FAILURES_ALLOWED && since.elapsed() < FAILURE_WINDOW
            })
        })
    }
}

/// The token a request presents: `Authorization: Bearer …`, or for viewers
/// `?token=…` (browsers cannot set headers on media and WebSocket requests).
fn presented(request: &Request, role: Role) -> Option<String> {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    if header.is_some() || role == Role::Admin {
        return header;
    }
    request.uri().query().and_then(|query| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .map(str::to_owned)
    })
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let mut response = (status, Json(serde_json::json!({ "error": message }))).into_response();
    let headers = response.headers_mut();
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"edgecam\""),
        );
    } else {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    }
    response
}

/// Middleware letting through only requests that present a token for
/// `role`.
pub async fn require(
    State((guard, role)): State<(SharedGuard, Role)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let from = peer.ip();
    if guard.blocked(from) {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed attempts; wait a minute",
        );
    }
    let token = presented(&request, role);
    if guard.grants(role, token.as_deref()) {
        return next.run(request).await;
    }
    let limited = guard.fail(from);
    tracing::warn!(client = %from, path = %request.uri().path(), "refused: wrong or missing token");
    if limited {
        refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed attempts; wait a minute",
        )
    } else {
        let wanted = match role {
            Role::Admin => "the admin token (Authorization: Bearer TOKEN)",
            Role::Viewer => "the viewer token (Authorization: Bearer TOKEN or ?token=TOKEN)",
        };
        refuse(StatusCode::UNAUTHORIZED, &format!("this needs {wanted}"))
    }
}

/// The admin token: from the config, else from `admin_token_file`, else the
/// one generated into the state directory on first start (logged once).
pub fn admin_token(auth: &AuthConfig) -> Result<String> {
    if !auth.admin_token.is_empty() {
        return Ok(auth.admin_token.clone());
    }
    if !auth.admin_token_file.is_empty() {
        return read_token(Path::new(&auth.admin_token_file));
    }
    let path = state_dir().join("admin-token");
    if path.exists() {
        return read_token(&path);
    }
    let token = generate()?;
    write_private(&path, &token)?;
    tracing::warn!(
        "generated the admin token (shown once; kept in {}): {token}",
        path.display()
    );
    Ok(token)
}

fn read_token(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the admin token from {}", path.display()))?;
    let token = text.lines().next().unwrap_or_default().trim().to_owned();
    anyhow::ensure!(!token.is_empty(), "{} holds no token", path.display());
    Ok(token)
}

/// Where edgecam keeps state: systemd's `StateDirectory=`, else the XDG
/// state directory.
fn state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY") {
        if let Some(first) = std::env::split_paths(&dir).next() {
            return first;
        }
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(dir).join("edgecam");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/state/edgecam"),
        None => PathBuf::from("/var/lib/edgecam"),
    }
}

/// 32 random bytes from the kernel, as hex.
fn generate() -> Result<String> {
    random_hex(32).context("a new admin token")
}

/// `n` random bytes from the kernel, as hex: tokens, and names nobody can
/// guess (a WebRTC session's URL is all that is needed to end it).
pub fn random_hex(n: usize) -> Result<String> {
    use std::io::Read;
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn write_private(path: &Path, token: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{token}")
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_token_grants_everything_the_viewer_token_only_viewing() {
        let guard = Guard::new("admin", Some("viewer"));
        assert!(guard.grants(Role::Admin, Some("admin")));
        assert!(guard.grants(Role::Viewer, Some("admin")));
        assert!(guard.grants(Role::Viewer, Some("viewer")));
        assert!(!guard.grants(Role::Admin, Some("viewer")));
        assert!(!guard.grants(Role::Admin, None));
        assert!(!guard.grants(Role::Viewer, None));
        assert!(!guard.grants(Role::Admin, Some("admin ")));
    }

    #[test]
    fn without_a_viewer_token_viewing_is_open() {
        let guard = Guard::new("admin", None);
        assert!(guard.grants(Role::Viewer, None));
        assert!(!guard.grants(Role::Admin, None));
    }

    #[test]
    fn repeated_failures_are_blocked() {
        let guard = Guard::new("admin", None);
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        for _ in 0..FAILURES_ALLOWED {
            assert!(!guard.fail(ip));
        }
        assert!(guard.fail(ip));
        assert!(guard.blocked(ip));
        assert!(!guard.blocked("10.0.0.8".parse().unwrap()));
    }

    #[test]
    fn a_generated_token_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/admin-token");
        write_private(&path, &generate().unwrap()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(read_token(&path).unwrap().len(), 64);
    }
}
