//! Configuration changes, one at a time, each touching only what its keys
//! declare: the camera is rebuilt (the outputs stay and take the new
//! stream), the outputs named are restarted, the rest is set live. The
//! configuration service waits for the answer, then confirms or rolls back.

use tokio::sync::mpsc;

use super::camera::Camera;
use super::live::Live;
use super::outputs::Outputs;
use crate::config::diff::{self, Effect};
use crate::config::Config;
use crate::control::{ApplyError, ApplyRequest};

/// Applies each request in turn, for as long as requests come.
pub async fn run(
    mut requests: mpsc::Receiver<ApplyRequest>,
    mut running: Config,
    camera: Camera,
    outputs: Outputs,
    live: Live,
) {
    while let Some(request) = requests.recv().await {
        let outcome = apply(&mut running, request.config, &camera, &outputs, &live).await;
        let _ = request.reply.send(outcome);
    }
}

async fn apply(
    running: &mut Config,
    wanted: Config,
    camera: &Camera,
    outputs: &Outputs,
    live: &Live,
) -> Result<(), ApplyError> {
    let changes = diff::changes(running, &wanted);
    if let Some(change) = changes.iter().find(|c| c.effect == Effect::Process) {
        return Err(ApplyError::Failed(format!(
            "{} only applies when edgecam restarts",
            change.key
        )));
    }
    if changes.iter().any(|c| c.effect == Effect::Camera) {
        // On failure the old camera runs again: nothing else was touched.
        camera.start(&wanted).await?;
    }
    let mut restart: Vec<&'static str> = changes
        .iter()
        .flat_map(|c| c.effect.outputs())
        .copied()
        .collect();
    restart.sort_unstable();
    restart.dedup();
    // Recorded from here on even when a step fails: rolling back then
    // applies every key of the old configuration again.
    let previous = std::mem::replace(running, wanted.clone());
    if !restart.is_empty() {
        outputs
            .apply(&wanted, restart)
            .await
            .map_err(ApplyError::Failed)?;
    }
    live.apply(&previous, &wanted)
        .await
        .map_err(|err| ApplyError::Failed(format!("{err:#}")))
}
