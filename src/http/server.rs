//! The accept loop, with the limits a server on a LAN needs: nothing a
//! client does may take the process (or its file descriptors) down.
//!
//! - **A connection cap.** At `max_connections`, the connection that has
//!   waited longest without a request in flight is closed to make room (a
//!   flood of idle or slow-header connections cannot lock out a player
//!   that sends its request at once); if every connection is busy, new
//!   ones wait in the kernel's backlog. WebSockets count while open.
//! - **A header timeout**: a request header must arrive whole within
//!   `header_timeout` of connecting or of the previous response (hyper's
//!   header-read timer, which also ends idle keep-alive connections).
//! - **An idle timeout**: a connection on which no byte moves either way
//!   for `idle_timeout` is closed (a player that stopped reading).
//!
//! axum's own `serve` has none of these; the router is the same.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

/// The limits in force; read again for each connection accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Limits {
    pub fn from_config(http: &crate::config::HttpConfig) -> Self {
        Self {
            max_connections: http.max_connections as usize,
            header_timeout: http.header_timeout.duration(),
            idle_timeout: http.idle_timeout.duration(),
        }
    }
}

/// The connections open now.
#[derive(Default)]
struct Connections {
    /// Open connections, WebSockets included (held by the I/O wrapper).
    open: Arc<AtomicUsize>,
    /// One closed: there may be room.
    room: Arc<Notify>,
    /// Connections still speaking HTTP, which may be evicted.
    http: Mutex<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
    /// Where `Connection` clocks count from.
    epoch: Option<Instant>,
}

/// One HTTP connection's state, shared by its task, its requests and the
/// accept loop.
struct Connection {
    requests_in_flight: AtomicUsize,
    /// Milliseconds after the epoch when it last had no request in
    /// flight (since then it has been waiting for one).
    idle_since_ms: AtomicU64,
    close: Notify,
}

impl Connections {
    fn now_ms(&self) -> u64 {
        self.epoch.map_or(0, |e| e.elapsed().as_millis() as u64)
    }

    /// Closes the connection that has waited longest for a request;
    /// false when every connection has one in flight.
    fn evict_one(&self) -> bool {
        let Ok(http) = self.http.lock() else {
            return false;
        };
        let oldest = http
            .values()
            .filter(|c| c.requests_in_flight.load(Ordering::Relaxed) == 0)
            .min_by_key(|c| c.idle_since_ms.load(Ordering::Relaxed));
        match oldest {
            Some(connection) => {
                connection.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes; then stops
/// accepting and lets each connection finish its request.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: watch::Receiver<Limits>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let connections = Arc::new(Connections {
        epoch: Some(Instant::now()),
        ..Connections::default()
    });
    let (stopping_tx, stopping) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let current = *limits.borrow();
        // Make room first: past the cap nothing is accepted.
        while connections.open.load(Ordering::Relaxed) >= current.max_connections {
            let room = connections.room.notified();
            if !connections.evict_one() {
                tracing::debug!("HTTP: every connection is busy; new ones wait");
            }
            tokio::select! {
                _ = room => {}
                _ = &mut shutdown => return finish(stopping_tx, tasks).await,
                // A connection can also end without notifying (a race with
                // its own timeout): look again now and then.
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut shutdown => return finish(stopping_tx, tasks).await,
        };
        let (stream, address) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors (or another transient error):
                // wait a moment rather than spin, and never give up.
                tracing::warn!("HTTP: accepting a connection failed: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tasks.spawn(serve_connection(
            stream,
            address,
            app.clone(),
            current,
            connections.clone(),
            stopping.clone(),
        ));
        // Reap finished tasks so the set does not grow.
        while tasks.try_join_next().is_some() {}
    }
}

/// Stops accepting and waits for the connections to finish their requests.
async fn finish(stopping: watch::Sender<bool>, mut tasks: tokio::task::JoinSet<()>) {
    let _ = stopping.send(true);
    while tasks.join_next().await.is_some() {}
}

async fn serve_connection(
    stream: TcpStream,
    address: SocketAddr,
    app: Router,
    limits: Limits,
    connections: Arc<Connections>,
    mut stopping: watch::Receiver<bool>,
) {
    let id = connections.next_id.fetch_add(1, Ordering::Relaxed);
    let connection = Arc::new(Connection {
        requests_in_flight: AtomicUsize::new(0),
        idle_since_ms: AtomicU64::new(connections.now_ms()),
        close: Notify::new(),
    });
    if let Ok(mut http) = connections.http.lock() {
        http.insert(id, connection.clone());
    }
    let activity = Arc::new(AtomicU64::new(connections.now_ms()));
    let io = TokioIo::new(Tracked {
        stream,
        activity: activity.clone(),
        connections: connections.clone(),
        _open: Open::new(&connections),
    });
    let service = {
        let connection = connection.clone();
        let connections = connections.clone();
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(address));
            let busy = Busy::new(connection.clone(), connections.clone());
            let response = tower::ServiceExt::oneshot(app.clone(), request.map(Body::new));
            async move {
                let response = response.await?;
                // Busy until the whole body has gone out (a segment, a
                // stream), not only until the headers have.
                Ok::<_, std::convert::Infallible>(
                    response.map(|body| Body::new(BusyBody { body, _busy: busy })),
                )
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let idle = idle_watch(&activity, &connections, limits.idle_timeout);
    tokio::pin!(idle);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = connection.close.notified() => {}
        _ = &mut idle => {}
        () = async { let _ = stopping.wait_for(|stopping| *stopping).await; } => {
            // Finish the request in flight, then close.
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.as_mut()).await;
        }
    }
    if let Ok(mut http) = connections.http.lock() {
        http.remove(&id);
    }
}

/// Completes when nothing has moved on the connection for `idle`.
async fn idle_watch(activity: &AtomicU64, connections: &Connections, idle: Duration) {
    let idle_ms = idle.as_millis() as u64;
    loop {
        let quiet = connections
            .now_ms()
            .saturating_sub(activity.load(Ordering::Relaxed));
        if quiet >= idle_ms {
            return;
        }
        tokio::time::sleep(Duration::from_millis((idle_ms - quiet).max(50))).await;
    }
}

/// Counts a connection as open for as long as its socket is.
struct Open {
    open: Arc<AtomicUsize>,
    room: Arc<Notify>,
}

impl Open {
    fn new(connections: &Connections) -> Self {
        connections.open.fetch_add(1, Ordering::Relaxed);
        Self {
            open: connections.open.clone(),
            room: connections.room.clone(),
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.room.notify_one();
    }
}

/// A request in flight on a connection.
struct Busy {
    connection: Arc<Connection>,
    connections: Arc<Connections>,
}

impl Busy {
    fn new(connection: Arc<Connection>, connections: Arc<Connections>) -> Self {
        connection
            .requests_in_flight
            .fetch_add(1, Ordering::Relaxed);
        Self {
            connection,
            connections,
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let c = &self.connection;
        if c.requests_in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            c.idle_since_ms
                .store(self.connections.now_ms(), Ordering::Relaxed);
        }
    }
}

/// A response body that keeps its request counted as in flight.
struct BusyBody {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for BusyBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The socket, noting when bytes last moved and counting it open.
struct Tracked {
    stream: TcpStream,
    activity: Arc<AtomicU64>,
    connections: Arc<Connections>,
    _open: Open,
}

impl Tracked {
    fn moved(&self) {
        self.activity
            .store(self.connections.now_ms(), Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.moved();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
