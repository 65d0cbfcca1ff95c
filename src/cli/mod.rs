//! The subcommands, one module each.

pub mod check_config;
pub mod probe;
pub mod remote;
pub mod run;

/// Exit status for a configuration that cannot be used.
pub const EXIT_BAD_CONFIG: i32 = 2;
/// Exit status for a failure while running.
pub const EXIT_FAILURE: i32 = 1;

/// A file camera's file must be there and hold video GStreamer decodes:
/// otherwise the configuration cannot work (exit 2), rather than a camera
/// that is lost for ever.
pub fn check_camera_file(config: &crate::config::Config) -> anyhow::Result<()> {
    if config.camera.source != crate::config::SourceKind::File {
        return Ok(());
    }
    gst::init()?;
    crate::source::file::probe(std::path::Path::new(&config.camera.file)).map(|_| ())
}

/// A configuration that cannot work, found once loaded (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BadConfig(#[from] pub anyhow::Error);
