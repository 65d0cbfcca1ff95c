//! `edgecam run`: the configuration is loaded (by `main`) and handed to the
//! running service, which lives in `app`.

use std::path::Path;

use anyhow::Result;

use crate::config::Config;

/// Runs the service on `config`, read from `path` (None: the built-in
/// default), until a stop signal.
pub fn run(config: &Config, path: Option<&Path>) -> Result<()> {
    super::check_camera_file(config).map_err(super::BadConfig)?;
    crate::app::run(config, path)
}
