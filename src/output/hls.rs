//! HLS for browsers: MPEG-TS segments written by `hlssink2` from the camera's
//! one encoded stream (no second encode), into a RAM-backed directory that
//! the HTTP server serves under `/hls/`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use gst::prelude::*;

use crate::config::HlsConfig;
use crate::pipeline::inventory::Inventory;

/// Where the segments live. A private directory is removed on drop.
pub enum SegmentDir {
    Configured(PathBuf),
    Private(tempfile::TempDir),
}

impl SegmentDir {
    pub fn path(&self) -> &Path {
        match self {
            SegmentDir::Configured(path) => path,
            SegmentDir::Private(dir) => dir.path(),
        }
    }

    /// The configured directory; else systemd's RuntimeDirectory (tmpfs
    /// under /run); else a private directory in RAM. Never the SD card
    /// unless the user says so: segments are rewritten every second.
    pub fn choose(config: &HlsConfig) -> Result<Self> {
        if !config.dir.is_empty() {
            let path = PathBuf::from(&config.dir);
            std::fs::create_dir_all(&path)
                .with_context(|| format!("hls.dir {} cannot be created", path.display()))?;
            return Ok(SegmentDir::Configured(path));
        }
        if let Some(runtime) = std::env::var_os("RUNTIME_DIRECTORY") {
            // systemd lists several directories separated by ':'; ours is first.
            let first = runtime
                .to_string_lossy()
                .split(':')
                .next()
                .unwrap_or_default()
                .to_owned();
            let path = Path::new(&first).join("hls");
            std::fs::create_dir_all(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            return Ok(SegmentDir::Configured(path));
        }
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|dir| dir.is_dir())
            .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|dir| dir.is_dir()))
            .unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("edgecam-hls-")
            .tempdir_in(&base)
            .with_context(|| format!("cannot create a segment directory in {}", base.display()))?;
        Ok(SegmentDir::Private(dir))
    }
}

/// File names for a stream called `name`.
pub fn playlist_file(name: &str) -> String {
    format!("{name}.m3u8")
}

fn segment_pattern(name: &str) -> String {
    format!("{name}-%05d.ts")
}

/// Removes what an earlier run left under our names (a stale playlist would
/// point players at old segments until the first new one is written).
fn remove_stale_files(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let ours = file == playlist_file(name)
            || (file.starts_with(&format!("{name}-")) && file.ends_with(".ts"));
        if ours {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

pub struct HlsOutput {
    pipeline: gst::Pipeline,
    _link: gst_utils::ConsumptionLink,
    pub dir: SegmentDir,
}

impl HlsOutput {
    /// Starts writing segments for the stream `name`, fed from `producer`
    /// and running on `camera`'s timeline.
    pub fn start(
        config: &HlsConfig,
        name: &str,
        camera: &gst::Pipeline,
        producer: &gst_utils::StreamProducer,
        inventory: &Inventory,
    ) -> Result<Self> {
        let dir = SegmentDir::choose(config)?;
        remove_stale_files(dir.path(), name);
        let pipeline = gst::Pipeline::with_name("hls");
        let appsrc = gst_app::AppSrc::builder().name("hls-src").build();
        let parse = gst::ElementFactory::make("h264parse").build()?;
        let sink = gst::ElementFactory::make("hlssink2")
            .name("hlssink")
            .property(
                "location",
                dir.path()
                    .join(segment_pattern(name))
                    .to_string_lossy()
                    .as_ref(),
            )
            .property(
                "playlist-location",
                dir.path()
                    .join(playlist_file(name))
                    .to_string_lossy()
                    .as_ref(),
            )
            .property("target-duration", config.segment_s)
            .property("playlist-length", config.window)
            // hlssink2 keeps max-files finished segments and deletes the
            // oldest only once the next one is open, so window + 1 here
            // means at most window + 2 files on disk: the window, one a slow
            // player may still be fetching, and the one being written.
            .property("max-files", config.window + 1)
            // A keyframe is requested at every segment start, so segments
            // are segment_s long whatever the encoder's keyframe interval.
            .property("send-keyframe-requests", true)
            .build()
            .context("hlssink2 (package gstreamer1.0-plugins-bad)")?;
        pipeline.add_many([appsrc.upcast_ref(), &parse, &sink])?;
        gst::Element::link_many([appsrc.upcast_ref(), &parse, &sink])
            .context("linking the HLS pipeline")?;

        crate::pipeline::share_timeline(camera, &pipeline);
        let link = producer
            .add_consumer(&appsrc)
            .map_err(|err| anyhow::anyhow!("HLS cannot be linked to the encoder: {err}"))?;
        inventory.register(pipeline.upcast_ref());
        pipeline
            .set_state(gst::State::Playing)
            .context("starting the HLS pipeline")?;
        tracing::info!(dir = %dir.path().display(), "HLS segments of {} s, window {}", config.segment_s, config.window);
        Ok(Self {
            pipeline,
            _link: link,
            dir,
        })
    }

    pub fn pipeline(&self) -> &gst::Pipeline {
        &self.pipeline
    }

    pub fn stop(&self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
