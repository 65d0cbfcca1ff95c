//! Tokens: an admin token for everything that changes the board, and an
//! optional viewer token for video and metrics. Compared in constant time;
//! a client that keeps failing is slowed down — for what it failed at only:
//! a mistyped admin token must not freeze the video on the same laptop.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Viewer,
}

/// The digests of the tokens in force.
struct Tokens {
    admin: [u8; 32],
    viewer: Option<[u8; 32]>,
}

impl Tokens {
    fn new(admin: &str, viewer: Option<&str>) -> Self {
        Self {
            admin: digest(admin),
            viewer: viewer.filter(|v| !v.is_empty()).map(digest),
        }
    }
}

/// The tokens in force (replaced live when the file's change) and the
/// failure counts per address.
pub struct Guard {
    tokens: RwLock<Tokens>,
    /// Failures per address and per role tried, and since when.
    failures: Mutex<HashMap<(IpAddr, Role), (u32, Instant)>>,
}

pub type SharedGuard = Arc<Guard>;

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Guard {
    pub fn new(admin: &str, viewer: Option<&str>) -> SharedGuard {
        Arc::new(Self {
            tokens: RwLock::new(Tokens::new(admin, viewer)),
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// Puts new tokens in force: the next request is checked against them.
    pub fn set_tokens(&self, admin: &str, viewer: Option<&str>) {
        let tokens = Tokens::new(admin, viewer);
        match self.tokens.write() {
            Ok(mut held) => *held = tokens,
            Err(poisoned) => *poisoned.into_inner() = tokens,
        }
    }

    /// Whether watching needs the viewer token.
    pub fn viewer_token_set(&self) -> bool {
        self.read().viewer.is_some()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tokens> {
        // Tokens are replaced whole; a panic elsewhere cannot leave half.
        self.tokens.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `presented` grants `role`. The admin token grants both.
    /// Digests of equal length are compared in constant time, so neither
    /// the content nor the length of a token leaks through timing.
    fn grants(&self, role: Role, presented: Option<&str>) -> bool {
        let tokens = self.read();
        let Some(presented) = presented.map(digest) else {
            return role == Role::Viewer && tokens.viewer.is_none();
        };
        let admin: bool = presented.ct_eq(&tokens.admin).into();
        match role {
            Role::Admin => admin,
            Role::Viewer => {
                admin
                    || tokens
                        .viewer
                        .is_none_or(|viewer| bool::from(presented.ct_eq(&viewer)))
            }
        }
    }

    /// Counts a failure at `role` from `from`; the wait left when it has
    /// failed too often.
    fn fail(&self, from: IpAddr, role: Role) -> Option<Duration> {
        let Ok(mut failures) = self.failures.lock() else {
            return None;
        };
        let now = Instant::now();
        failures.retain(|_, (_, since)| now.duration_since(*since) < FAILURE_WINDOW);
        let entry = failures.entry((from, role)).or_insert((0, now));
        entry.0 += 1;
        (entry.0 > FAILURES_ALLOWED).then(|| FAILURE_WINDOW.saturating_sub(entry.1.elapsed()))
    }

    /// The wait left before `from` may try `role` again, if it must wait.
    fn blocked(&self, from: IpAddr, role: Role) -> Option<Duration> {
        let failures = self.failures.lock().ok()?;
        let (count, since) = failures.get(&(from, role))?;
        let left = FAILURE_WINDOW.saturating_sub(since.elapsed());
        (*count >= FAILURES_ALLOWED && !left.is_zero()).then_some(left)
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
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"edgecam\""),
    );
    response
}

/// 429 for `role` from this address, saying how long is left (in the body
/// and in `Retry-After`, whole seconds rounded up).
fn wait_out(role: Role, left: Duration) -> Response {
    let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    let what = match role {
        Role::Admin => "the admin token",
        Role::Viewer => "the viewer token",
    };
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(serde_json::json!({
            "error": format!("too many wrong attempts at {what} from this address; try again in {seconds} s"),
            "retry_after_s": seconds,
        })),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
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
    if let Some(left) = guard.blocked(from, role) {
        return wait_out(role, left);
    }
    let token = presented(&request, role);
    if guard.grants(role, token.as_deref()) {
        return next.run(request).await;
    }
    let limited = guard.fail(from, role);
    tracing::warn!(client = %from, path = %request.uri().path(), "refused: wrong or missing token");
    if let Some(left) = limited {
        wait_out(role, left)
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
pub fn generate() -> Result<String> {
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
    fn new_tokens_take_effect_at_once() {
        let guard = Guard::new("admin", None);
        guard.set_tokens("rotated", Some("viewer"));
        assert!(!guard.grants(Role::Admin, Some("admin")));
        assert!(guard.grants(Role::Admin, Some("rotated")));
        assert!(!guard.grants(Role::Viewer, None));
        assert!(guard.viewer_token_set());
    }

    #[test]
    fn without_a_viewer_token_viewing_is_open() {
        let guard = Guard::new("admin", None);
        assert!(guard.grants(Role::Viewer, None));
        assert!(!guard.grants(Role::Admin, None));
    }

    #[test]
    fn repeated_failures_block_that_address_for_that_role_only() {
        let guard = Guard::new("admin", None);
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        for _ in 0..FAILURES_ALLOWED {
            assert!(guard.fail(ip, Role::Admin).is_none());
        }
        let left = guard.fail(ip, Role::Admin).unwrap();
        assert!(
            left > Duration::from_secs(59) && left <= FAILURE_WINDOW,
            "{left:?}"
        );
        assert!(guard.blocked(ip, Role::Admin).is_some());
        // Watching goes on from the same address, and others are served.
        assert!(guard.blocked(ip, Role::Viewer).is_none());
        assert!(guard
            .blocked("10.0.0.8".parse().unwrap(), Role::Admin)
            .is_none());
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
