//! Publishing: the camera's one encoded stream pushed to media servers
//! (`[[publish.targets]]`): RTSP `ANNOUNCE`/`RECORD`, SRT (MPEG-TS) and RTMP
//! (FLV). One output; each target has its own pipeline, fed from the
//! encoded tap like every other output (no second encode), and its own
//! thread that reconnects after any failure with capped backoff and jitter.
//! A target's appsrc is the tap's bounded, leaky consumer: a dead, slow or
//! refusing server makes that target drop frames and resync at the next
//! keyframe, never the camera or the other outputs wait.

mod session;
mod worker;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use anyhow::Result;

use super::{Context, Output, Running};
use crate::config::Config;
use crate::metrics::registry::CounterSpec;

/// The counters each target keeps (labelled by target).
pub const BYTES_SENT: CounterSpec = CounterSpec {
    name: "publish_bytes_sent",
    help: "Bytes of video handed to a publish target's connection, per target",
    label: Some("target"),
};
pub const RECONNECTS: CounterSpec = CounterSpec {
    name: "publish_reconnects",
    help: "Connections to a publish target tried again after it failed or refused, per target",
    label: Some("target"),
};

pub struct Publish;

impl Output for Publish {
    fn name(&self) -> &'static str {
        "publish"
    }

    fn enabled(&self, config: &Config) -> bool {
        config.publish.active_targets().next().is_some()
    }

    fn settings(&self) -> &'static [&'static str] {
        &["publish"]
    }

    fn start(&self, config: &Config, context: &Context) -> Result<Box<dyn Running>> {
        let shared = Arc::new(Mutex::new(Vec::new()));
        let mut running = Publishing {
            workers: Vec::new(),
            shared: shared.clone(),
        };
        for target in config.publish.active_targets() {
            match worker::Worker::spawn(target.clone(), context.clone(), shared.clone()) {
                Ok(worker) => running.workers.push(worker),
                Err(err) => {
                    // None left running behind the error.
                    Box::new(running).stop();
                    return Err(err);
                }
            }
        }
        Ok(Box::new(running))
    }
}

/// The running targets.
struct Publishing {
    workers: Vec<worker::Worker>,
    /// Each target's status, as `/api/outputs` shows it.
    shared: worker::Statuses,
}

impl Running for Publishing {
    fn describe(&self) -> serde_json::Value {
        worker::describe(&self.shared)
    }

    fn break_now(&self) {
        for worker in &self.workers {
            worker.break_now();
        }
    }

    fn stop(self: Box<Self>) {
        for worker in &self.workers {
            worker.ask_to_stop();
        }
        for worker in self.workers {
            worker.join();
        }
    }
}

/// `name` for as long as the process runs: counter labels are `'static`.
/// Each distinct target name is kept once, however often targets restart.
fn interned(name: &str) -> &'static str {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let Ok(mut names) = NAMES.lock() else {
        return "unnamed";
    };
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(known) = names.get(name) {
        return known;
    }
    let kept: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(kept);
    kept
}
