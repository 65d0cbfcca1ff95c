//! The HTTP server's lifecycle: one at a time, moved when `http.bind`
//! changes, given new connection limits live.

use std::time::Duration;

use anyhow::Result;
use tokio::sync::{oneshot, watch};

use crate::config::HttpConfig;
use crate::http::server::{self, Limits};

pub struct HttpServer {
    router: axum::Router,
    bind: String,
    limits: watch::Sender<Limits>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl HttpServer {
    /// Serves `router` on `listener` (bound to `config.bind`).
    pub fn start(
        listener: tokio::net::TcpListener,
        router: axum::Router,
        config: &HttpConfig,
    ) -> Self {
        let mut server = Self {
            router,
            bind: config.bind.clone(),
            limits: watch::channel(Limits::from_config(config)).0,
            stop: None,
            task: None,
        };
        server.serve(listener);
        server
    }

    /// Serves on `listener`; a server already running finishes the
    /// requests it has (the one that moved it included) and stops.
    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(
            listener,
            self.router.clone(),
            self.limits.subscribe(),
            async {
                let _ = stopped.await;
            },
        ));
        if let Some(old) = self.stop.replace(stop) {
            let _ = old.send(());
        }
        self.task = Some(task);
    }

    /// Takes new settings: limits hold for connections accepted from now
    /// on; a new address is bound first, and when it cannot be, the old
    /// server simply carries on.
    pub async fn reconfigure(&mut self, config: &HttpConfig) -> Result<()> {
        if config.bind != self.bind {
            let listener = crate::http::bind(&config.bind).await?;
            self.serve(listener);
            self.bind = config.bind.clone();
            tracing::info!("HTTP now on {}", config.bind);
        }
        self.limits.send_replace(Limits::from_config(config));
        Ok(())
    }

    /// Stops serving; open requests get a moment to finish (shutdown must
    /// stay well under 2 s).
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_millis(500), task).await;
        }
    }
}
