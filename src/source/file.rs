//! A video file as a camera (`camera.source = "file"`): a thread decodes
//! the file (whatever GStreamer decodes: MP4, MKV, TS, …) at the camera's
//! size and hands one frame per tick to an `appsrc`, paced by the wall clock
//! against the instant it started (sleeping a frame's length each time would
//! drift), looping without a gap or holding the last frame at the end.
//! Each frame of the file is one frame of the camera at `camera.fps`; frame
//! ids come from the source's identity tagging, so they continue across
//! loops and reopenings.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use gst::prelude::*;

use super::identity;
use crate::config::CameraConfig;

/// What a file holds, as `edgecam probe` and the start-up check see it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileInfo {
    pub width: i32,
    pub height: i32,
    /// Frames per second the file declares (0 when it does not say).
    pub fps: f64,
    pub duration: Option<Duration>,
    /// The decoder's input, e.g. "video/x-h264".
    pub codec: String,
}

impl std::fmt::Display for FileInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}x{}", self.codec, self.width, self.height)?;
        if self.fps > 0.0 {
            write!(f, " at {:.2} fps", self.fps)?;
        }
        if let Some(duration) = self.duration {
            write!(f, ", {:.1} s", duration.as_secs_f64())?;
        }
        Ok(())
    }
}

/// Opens and decodes the start of `path`: what it holds, or why it cannot
/// be a camera (missing, unreadable, no video GStreamer can decode).
pub fn probe(path: &Path) -> Result<FileInfo> {
    if !path.is_file() {
        bail!("camera.file {}: no such file", path.display());
    }
    let decode = Decoder::open(path, None)?;
    let info = decode.info();
    decode.stop();
    info
}

/// The decoding pipeline: `filesrc ! decodebin ! videoconvert ! videoscale
/// ! I420 [at a size] ! appsink`, pulled one frame at a time.
struct Decoder {
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    path: PathBuf,
}

impl Decoder {
    /// Builds the pipeline and waits (up to 10 s) for its first frame.
    fn open(path: &Path, size: Option<(u32, u32)>) -> Result<Self> {
        let mut caps = gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1));
        if let Some((width, height)) = size {
            caps = caps
                .field("width", width as i32)
                .field("height", height as i32);
        }
        const DESCRIPTION: &str = "filesrc name=file ! decodebin name=decode ! videoconvert \
            ! videoscale ! capsfilter name=caps ! appsink name=frames sync=false max-buffers=2";
        let pipeline = gst::parse::launch(DESCRIPTION)
            .context("building the file decoder")?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow!("the file decoder is no pipeline"))?;
        let by_name = |name: &str| {
            pipeline
                .by_name(name)
                .with_context(|| format!("the file decoder has no {name}"))
        };
        by_name("file")?.set_property("location", path.to_string_lossy().as_ref());
        by_name("caps")?.set_property("caps", caps.build());
        let sink = by_name("frames")?
            .downcast::<gst_app::AppSink>()
            .map_err(|_| anyhow!("the file decoder's sink is no appsink"))?;
        let decoder = Self {
            pipeline,
            sink,
            path: path.to_owned(),
        };
        decoder
            .pipeline
            .set_state(gst::State::Paused)
            .map_err(|_| anyhow!("camera.file {}: cannot be read", path.display()))?;
        let (result, _, _) = decoder.pipeline.state(gst::ClockTime::from_seconds(10));
        if result.is_err() {
            let reason = decoder
                .bus_error()
                .unwrap_or_else(|| "no video in it".to_owned());
            decoder.stop();
            bail!(
                "camera.file {}: cannot be decoded: {reason}",
                path.display()
            );
        }
        decoder
            .pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| anyhow!("camera.file {}: cannot be played", path.display()))?;
        Ok(decoder)
    }

    fn bus_error(&self) -> Option<String> {
        let bus = self.pipeline.bus()?;
        while let Some(message) = bus.pop() {
            if let gst::MessageView::Error(err) = message.view() {
                return Some(err.error().to_string());
            }
        }
        None
    }

    fn info(&self) -> Result<FileInfo> {
        let sample = self
            .sink
            .pull_preroll()
            .map_err(|_| anyhow!("camera.file {}: no video frame in it", self.path.display()))?;
        let caps = sample.caps().context("a decoded frame without caps")?;
        let video = gst_video::VideoInfo::from_caps(caps).context("decoded caps")?;
        // What the video decoder inside decodebin takes: the codec.
        let codec = self
            .pipeline
            .by_name("decode")
            .and_then(|decode| decode.downcast::<gst::Bin>().ok())
            .and_then(|decode| {
                decode.iterate_recurse().into_iter().flatten().find(|e| {
                    e.factory().is_some_and(|f| {
                        f.has_type(
                            gst::ElementFactoryType::DECODER | gst::ElementFactoryType::MEDIA_VIDEO,
                        )
                    })
                })
            })
            .and_then(|decoder| decoder.static_pad("sink"))
            .and_then(|pad| pad.current_caps())
            .and_then(|caps| caps.structure(0).map(|s| s.name().to_string()))
            .unwrap_or_else(|| "video".to_owned());
        let fps = video.fps();
        Ok(FileInfo {
            width: video.width() as i32,
            height: video.height() as i32,
            fps: if fps.denom() > 0 {
                f64::from(fps.numer()) / f64::from(fps.denom())
            } else {
                0.0
            },
            duration: self
                .pipeline
                .query_duration::<gst::ClockTime>()
                .map(|d| Duration::from_nanos(d.nseconds())),
            codec,
        })
    }

    /// The next decoded frame; None at the end of the file.
    fn next(&self) -> Result<Option<gst::Buffer>> {
        match self.sink.try_pull_sample(gst::ClockTime::from_seconds(5)) {
            Some(sample) => Ok(sample.buffer_owned()),
            None if self.sink.is_eos() => Ok(None),
            None => Err(anyhow!(
                "camera.file {}: {}",
                self.path.display(),
                self.bus_error()
                    .unwrap_or_else(|| "no frame decoded within 5 s".to_owned())
            )),
        }
    }

    /// Back to the first frame, for the next loop.
    fn rewind(&self) -> Result<()> {
        self.pipeline
            .seek_simple(
                gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
                gst::ClockTime::ZERO,
            )
            .map_err(|_| {
                anyhow!(
                    "camera.file {}: cannot seek to its start",
                    self.path.display()
                )
            })
    }

    fn stop(&self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The thread replaying the file; dropping it stops the thread.
pub struct FileThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for FileThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The source bin (`appsrc` at the camera's caps, frames tagged) and the
/// thread feeding it from `path`.
pub fn build(
    camera: &CameraConfig,
    ids: &identity::FrameIds,
    path: &Path,
) -> Result<(gst::Bin, FileThread)> {
    let decoder = Decoder::open(path, Some((camera.width, camera.height)))?;
    let appsrc = gst_app::AppSrc::builder()
        .name("file-frames")
        .caps(&super::raw_caps(camera))
        .is_live(true)
        .format(gst::Format::Time)
        .max_buffers(2)
        .leaky_type(gst_app::AppLeakyType::Downstream)
        .build();
    let bin = super::finish_source(
        "source",
        super::raw_caps(camera),
        vec![appsrc.clone().upcast()],
        ids,
        identity::CaptureTime::Now,
        None,
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let interval = Duration::from_secs_f64(1.0 / f64::from(camera.fps));
    let looping = camera.looping;
    let thread = std::thread::Builder::new()
        .name("file-camera".to_owned())
        .spawn({
            let stop = stop.clone();
            move || {
                if let Err(err) = replay(&decoder, &appsrc, &stop, interval, looping) {
                    if !stop.load(Ordering::Relaxed) {
                        gst::element_error!(appsrc, gst::ResourceError::Read, ("{err:#}"));
                    }
                }
                decoder.stop();
            }
        })
        .context("starting the file camera's thread")?;
    Ok((
        bin,
        FileThread {
            stop,
            thread: Some(thread),
        },
    ))
}

/// Hands one frame every `interval` to `appsrc`, on a schedule counted from
/// the start (so it never drifts), until stopped.
fn replay(
    decoder: &Decoder,
    appsrc: &gst_app::AppSrc,
    stop: &AtomicBool,
    interval: Duration,
    looping: bool,
) -> Result<()> {
    // Frames pushed before the pipeline plays would be refused.
    while appsrc.current_state() != gst::State::Playing {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let began = Instant::now();
    let mut last: Option<gst::Buffer> = None;
    let mut held = false;
    for tick in 1u32.. {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let frame = if held {
            last.clone()
        } else {
            match decoder.next()? {
                Some(frame) => Some(frame),
                None if looping => {
                    decoder.rewind()?;
                    decoder.next()?
                }
                None => {
                    held = true;
                    last.clone()
                }
            }
        };
        let Some(frame) = frame else {
            bail!("the file has no frame to show");
        };
        last = Some(frame.clone());
        let due = began + interval * tick;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let mut buffer = frame.copy();
        {
            let buffer = buffer.make_mut();
            buffer.set_pts(running_time(appsrc));
            buffer.set_dts(gst::ClockTime::NONE);
            buffer.set_duration(gst::ClockTime::from_nseconds(interval.as_nanos() as u64));
        }
        if appsrc.push_buffer(buffer).is_err() {
            // Flushing: the source is being stopped.
            return Ok(());
        }
    }
    Ok(())
}

/// The pipeline's running time now: when this frame is "captured".
fn running_time(appsrc: &gst_app::AppSrc) -> Option<gst::ClockTime> {
    let clock = appsrc.clock()?;
    let base = appsrc.base_time()?;
    Some(clock.time().saturating_sub(base))
}
