//! Other ways a configuration change arrives: the file edited on disk
//! (its directory is watched, so editors that write a new file and rename
//! it over the old one are seen too) and SIGHUP. Both go through the same
//! validate → apply → confirm path as the API.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use notify::{RecursiveMode, Watcher};

use super::ConfigService;

/// Quiet time after the last change event before the file is read: an
/// editor's save is several events.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// Watches `path`'s directory and reloads when `path` changes. The watcher
/// lives as long as the returned handle.
pub fn watch(service: Arc<ConfigService>, path: &Path) -> Result<notify::RecommendedWatcher> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_os_string());
    let (events, mut changed) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let ours = event.is_ok_and(|event| {
            event
                .paths
                .iter()
                .any(|p| p.file_name().map(|n| n.to_os_string()) == name)
        });
        if ours {
            let _ = events.send(());
        }
    })
    .context("starting the configuration file watcher")?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .with_context(|| format!("watching {}", dir.display()))?;
    tokio::spawn(async move {
        while changed.recv().await.is_some() {
            // Swallow the rest of this burst of events.
            loop {
                match tokio::time::timeout(DEBOUNCE, changed.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            service.reload("the file changed on disk").await;
        }
    });
    Ok(watcher)
}
