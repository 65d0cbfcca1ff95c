//! Every GStreamer pipeline the process runs (the camera's and the RTSP
//! media's), so an operator — and the tests — can see from the running
//! graph that there is one encoder per camera, however many viewers there
//! are. On request it logs a summary and, when `GST_DEBUG_DUMP_DOT_DIR` is
//! set, writes each pipeline as a Graphviz `.dot` file.

use std::sync::{Arc, Mutex};

use gst::prelude::*;

#[derive(Clone, Default)]
pub struct Inventory {
    pipelines: Arc<Mutex<Vec<gst::glib::WeakRef<gst::Bin>>>>,
}

/// What one pipeline holds, for the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineSummary {
    pub name: String,
    /// Factory names of the video encoders running in it.
    pub encoders: Vec<String>,
    /// Factory names of the JPEG encoders running in it.
    pub jpeg_encoders: Vec<String>,
}

impl Inventory {
    pub fn register(&self, pipeline: &gst::Bin) {
        if let Ok(mut pipelines) = self.pipelines.lock() {
            pipelines.retain(|weak| weak.upgrade().is_some());
            pipelines.push(pipeline.downgrade());
        }
    }

    fn live(&self) -> Vec<gst::Bin> {
        self.pipelines
            .lock()
            .map(|pipelines| pipelines.iter().filter_map(|weak| weak.upgrade()).collect())
            .unwrap_or_default()
    }

    /// Walks every live pipeline and lists its encoders.
    pub fn summarize(&self) -> Vec<PipelineSummary> {
        self.live()
            .iter()
            .map(|bin| PipelineSummary {
                name: bin.name().to_string(),
                encoders: encoders_in(bin, |jpeg| !jpeg),
                jpeg_encoders: encoders_in(bin, |jpeg| jpeg),
            })
            .collect()
    }

    /// Logs the summary and writes `.dot` files (a no-op for the files when
    /// `GST_DEBUG_DUMP_DOT_DIR` is unset).
    pub fn report(&self) {
        let summary = self.summarize();
        let total: usize = summary.iter().map(|p| p.encoders.len()).sum();
        for pipeline in &summary {
            tracing::info!(pipeline = %pipeline.name, encoders = ?pipeline.encoders, jpeg = ?pipeline.jpeg_encoders, "pipeline inventory");
        }
        tracing::info!(
            "pipeline inventory: {} pipelines, {total} encoders in total",
            summary.len()
        );
        for bin in self.live() {
            let file = format!("edgecam-{}", bin.name());
            bin.debug_to_dot_file(gst::DebugGraphDetails::all(), file);
        }
    }
}

/// The encoders in `bin` that run: the slate's encoder, standing by while
/// a camera's H.264 is passed through, is no encoding.
/// `wanted` says, from whether it makes JPEG (GStreamer files `jpegenc`
/// under both video and image encoders), which of them to list.
fn encoders_in(bin: &gst::Bin, wanted: impl Fn(bool) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    for element in bin.iterate_recurse().into_iter().flatten() {
        let Some(factory) = element.factory() else {
            continue;
        };
        let running = element.current_state() == gst::State::Playing;
        let jpeg = factory.has_type(gst::ElementFactoryType::MEDIA_IMAGE);
        if running && factory.has_type(gst::ElementFactoryType::VIDEO_ENCODER) && wanted(jpeg) {
            found.push(factory.name().to_string());
        }
    }
    found
}
