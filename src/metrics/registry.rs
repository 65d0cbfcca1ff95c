//! The one registry of outputs: what each output is (its description), how
//! it is doing (running, restarting after a failure, off) and who watches
//! it (its viewers). The metrics samples, Prometheus, the `hello` message,
//! `/api/outputs` and systemd's STATUS line are all read from here, so an
//! output that registers is counted everywhere at once.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// How an output is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputState {
    /// Switched off (its `enabled = false`, or `POST …/stop`).
    Stopped,
    Starting,
    Running,
    /// It failed and waits to be started again.
    Restarting,
}

/// One output as reported.
#[derive(Debug, Clone, Serialize)]
pub struct OutputReport {
    pub state: OutputState,
    /// Restarts after a failure, since edgecam started.
    pub restarts: u64,
    pub last_error: Option<String>,
    /// What it serves and where (null while off).
    pub description: serde_json::Value,
    /// Its own counters (e.g. WebRTC's bytes sent), `name` or
    /// `name.label` → value; kept across restarts.
    #[serde(serialize_with = "counters_as_map")]
    pub counters: Vec<Reading>,
}

/// A counter an output keeps beyond its viewers, as Prometheus names it:
/// `edgecam_{name}_total`, with the label `label` when the counter is kept
/// per reason (e.g. peers closed, per cause).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterSpec {
    pub name: &'static str,
    pub help: &'static str,
    pub label: Option<&'static str>,
}

/// One counter's value now.
#[derive(Debug, Clone)]
pub struct Reading {
    pub spec: CounterSpec,
    /// The label's value, for a counter kept per reason.
    pub label: Option<&'static str>,
    pub value: u64,
}

fn counters_as_map<S: serde::Serializer>(
    readings: &[Reading],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(readings.len()))?;
    for reading in readings {
        let key = match reading.label {
            Some(label) => format!("{}.{label}", reading.spec.name),
            None => reading.spec.name.to_owned(),
        };
        map.serialize_entry(&key, &reading.value)?;
    }
    map.end()
}

/// One of an output's counters; clones count together.
#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

type CounterEntry = (&'static str, CounterSpec, Option<&'static str>, Counter);

impl Default for OutputReport {
    fn default() -> Self {
        Self {
            state: OutputState::Stopped,
            restarts: 0,
            last_error: None,
            description: serde_json::Value::Null,
            counters: Vec::new(),
        }
    }
}

#[derive(Clone, Default)]
pub struct Registry {
    outputs: Arc<Mutex<BTreeMap<&'static str, OutputReport>>>,
    viewers: Arc<Mutex<BTreeMap<&'static str, Viewers>>>,
    counters: Arc<Mutex<Vec<CounterEntry>>>,
}

impl Registry {
    /// `output`'s counter `spec` (for `label`, when it is kept per
    /// reason): the same one every time it is asked for, so counts survive
    /// restarts of the output.
    pub fn counter(
        &self,
        output: &'static str,
        spec: CounterSpec,
        label: Option<&'static str>,
    ) -> Counter {
        let Ok(mut counters) = self.counters.lock() else {
            return Counter::default();
        };
        let found = counters
            .iter()
            .find(|(o, s, l, _)| *o == output && s.name == spec.name && *l == label);
        if let Some((_, _, _, counter)) = found {
            return counter.clone();
        }
        let counter = Counter::default();
        counters.push((output, spec, label, counter.clone()));
        counter
    }

    /// An output that exists, off until it starts.
    pub fn declare(&self, name: &'static str) {
        if let Ok(mut outputs) = self.outputs.lock() {
            outputs.entry(name).or_default();
        }
    }

    /// Declares a viewer count (0 until someone watches): samples always
    /// carry every label, whether its output runs or not.
    pub fn declare_viewers(&self, label: &'static str) {
        if let Ok(mut viewers) = self.viewers.lock() {
            viewers
                .entry(label)
                .or_insert_with(|| Viewers::Sessions(Sessions::default()));
        }
    }

    fn update(&self, name: &'static str, change: impl FnOnce(&mut OutputReport)) {
        if let Ok(mut outputs) = self.outputs.lock() {
            change(outputs.entry(name).or_default());
        }
    }

    pub fn starting(&self, name: &'static str) {
        self.update(name, |o| o.state = OutputState::Starting);
    }

    pub fn running(&self, name: &'static str, description: serde_json::Value) {
        self.update(name, |o| {
            o.state = OutputState::Running;
            o.description = description;
        });
    }

    /// A running output whose state changes as it runs (a publish target
    /// connecting again) says so; ignored unless it runs.
    pub fn describe(&self, name: &'static str, description: serde_json::Value) {
        self.update(name, |o| {
            if o.state == OutputState::Running {
                o.description = description;
            }
        });
    }

    pub fn off(&self, name: &'static str) {
        self.update(name, |o| {
            o.state = OutputState::Stopped;
            o.description = serde_json::Value::Null;
        });
    }

    /// It failed (or would not start) and will be started again.
    pub fn failed(&self, name: &'static str, error: &str) {
        self.update(name, |o| {
            o.state = OutputState::Restarting;
            o.restarts += 1;
            o.last_error = Some(error.to_owned());
        });
    }

    pub fn outputs(&self) -> BTreeMap<&'static str, OutputReport> {
        let mut outputs = self.outputs.lock().map(|o| o.clone()).unwrap_or_default();
        if let Ok(counters) = self.counters.lock() {
            for (output, spec, label, counter) in counters.iter() {
                if let Some(report) = outputs.get_mut(output) {
                    report.counters.push(Reading {
                        spec: *spec,
                        label: *label,
                        value: counter.get(),
                    });
                }
            }
        }
        outputs
    }

    /// A count of viewers who hold a session (RTSP, WebSocket): each
    /// viewer holds a [`Viewer`] while connected. A label keeps its count
    /// across restarts of its output.
    pub fn sessions(&self, label: &'static str) -> Sessions {
        let Ok(mut viewers) = self.viewers.lock() else {
            return Sessions::default();
        };
        let entry = viewers
            .entry(label)
            .or_insert_with(|| Viewers::Sessions(Sessions::default()));
        match entry {
            Viewers::Sessions(sessions) => sessions.clone(),
            Viewers::Recent(_) => {
                let sessions = Sessions::default();
                *entry = Viewers::Sessions(sessions.clone());
                sessions
            }
        }
    }

    /// A count of viewers without sessions (HLS): addresses seen within
    /// `window`. Registering again (a restart with new settings) replaces
    /// the window.
    pub fn recent(&self, label: &'static str, window: Duration) -> RecentViewers {
        let recent = RecentViewers {
            seen: Arc::default(),
            window,
            joins: Arc::default(),
        };
        if let Ok(mut viewers) = self.viewers.lock() {
            viewers.insert(label, Viewers::Recent(recent.clone()));
        }
        recent
    }

    /// Viewers now, per label.
    pub fn viewer_counts(&self) -> BTreeMap<&'static str, usize> {
        let Ok(viewers) = self.viewers.lock() else {
            return BTreeMap::new();
        };
        viewers.iter().map(|(k, v)| (*k, v.count())).collect()
    }

    /// Viewers who ever joined, per label: a viewer that had to reconnect
    /// shows up here twice.
    pub fn viewer_joins(&self) -> BTreeMap<&'static str, u64> {
        let Ok(viewers) = self.viewers.lock() else {
            return BTreeMap::new();
        };
        viewers.iter().map(|(k, v)| (*k, v.joins())).collect()
    }
}

#[derive(Clone)]
enum Viewers {
    Sessions(Sessions),
    Recent(RecentViewers),
}

impl Viewers {
    fn count(&self) -> usize {
        match self {
            Viewers::Sessions(s) => s.count(),
            Viewers::Recent(r) => r.count(),
        }
    }

    fn joins(&self) -> u64 {
        match self {
            Viewers::Sessions(s) => s.joins.load(Ordering::Relaxed),
            Viewers::Recent(r) => r.joins.load(Ordering::Relaxed),
        }
    }
}

/// Viewers holding a session.
#[derive(Clone, Default)]
pub struct Sessions {
    now: Arc<AtomicUsize>,
    joins: Arc<AtomicU64>,
}

/// One connected viewer; leaving is dropping it.
pub struct Viewer {
    now: Arc<AtomicUsize>,
}

impl Sessions {
    /// A viewer joins; returns the guard and the count with them.
    pub fn join(&self) -> (Viewer, usize) {
        self.joins.fetch_add(1, Ordering::Relaxed);
        let count = self.now.fetch_add(1, Ordering::Relaxed) + 1;
        (
            Viewer {
                now: self.now.clone(),
            },
            count,
        )
    }

    pub fn count(&self) -> usize {
        self.now.load(Ordering::Relaxed)
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.now.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Viewers that are addresses seen recently (an HLS player re-reads the
/// playlist about once a segment).
#[derive(Clone)]
pub struct RecentViewers {
    seen: Arc<Mutex<HashMap<IpAddr, Instant>>>,
    window: Duration,
    joins: Arc<AtomicU64>,
}

impl RecentViewers {
    pub fn saw(&self, address: IpAddr) {
        if let Ok(mut seen) = self.seen.lock() {
            let fresh = seen
                .insert(address, Instant::now())
                .is_none_or(|at| at.elapsed() > self.window);
            if fresh {
                self.joins.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Addresses seen within the window; older ones are forgotten.
    pub fn count(&self) -> usize {
        let Ok(mut seen) = self.seen.lock() else {
            return 0;
        };
        seen.retain(|_, at| at.elapsed() <= self.window);
        seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_count_while_held_and_joins_add_up() {
        let registry = Registry::default();
        let rtsp = registry.sessions("rtsp");
        let (first, count) = rtsp.join();
        assert_eq!(count, 1);
        let (second, _) = registry.sessions("rtsp").join();
        assert_eq!(registry.viewer_counts()["rtsp"], 2);
        drop(first);
        drop(second);
        assert_eq!(registry.viewer_counts()["rtsp"], 0);
        assert_eq!(registry.viewer_joins()["rtsp"], 2);
    }

    #[test]
    fn a_new_window_replaces_the_old_one() {
        let registry = Registry::default();
        let hls = registry.recent("hls", Duration::from_secs(60));
        hls.saw(IpAddr::from([10, 0, 0, 1]));
        hls.saw(IpAddr::from([10, 0, 0, 1]));
        assert_eq!(registry.viewer_counts()["hls"], 1);
        assert_eq!(registry.viewer_joins()["hls"], 1);
        let hls = registry.recent("hls", Duration::ZERO);
        hls.saw(IpAddr::from([10, 0, 0, 2]));
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(registry.viewer_counts()["hls"], 0);
    }

    #[test]
    fn failures_count_restarts_and_keep_the_reason() {
        let registry = Registry::default();
        registry.declare("hls");
        assert_eq!(registry.outputs()["hls"].state, OutputState::Stopped);
        registry.running("hls", serde_json::json!({"playlist": "/hls/cam.m3u8"}));
        registry.failed("hls", "disk full");
        let hls = &registry.outputs()["hls"];
        assert_eq!(
            (hls.state, hls.restarts, hls.last_error.as_deref()),
            (OutputState::Restarting, 1, Some("disk full"))
        );
    }
}
