//! The capture loop: frames dequeued from the camera with the `v4l` crate's
//! mmap stream and pushed into an `appsrc`, stamped with the driver's own
//! timestamps.
//!
//! Why not `v4l2src`: in GStreamer 1.22 (Debian 12, Raspberry Pi OS), when
//! a camera disappears mid-stream v4l2src's buffer pool keeps a buffer that
//! is never returned, so the pool — its duplicate of the device handle,
//! its mmaps and its poll descriptors — is never freed: the VM test
//! measured 5 descriptors and ~0.5 MB lost per unplug, and vivid's node
//! never came back because a handle stayed open. Here the capture thread
//! owns the device, and stopping it closes everything.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use gst::prelude::*;
use v4l::buffer::Type;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;

use super::negotiate::{Decode, Mode};

/// Buffers queued in the driver: enough to ride out a busy moment,
/// few enough that a frame is never old when it leaves.
const DRIVER_BUFFERS: u32 = 4;
/// How long one wait for a frame lasts before the stop flag is checked.
const POLL: Duration = Duration::from_millis(200);

/// A running capture thread; dropping it stops the thread and closes the
/// device.
pub struct CaptureThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for CaptureThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The appsrc caps for `mode`, with the stride layout when the driver pads
/// its lines differently from GStreamer's default.
pub fn caps(mode: &Mode) -> gst::Caps {
    let media_type = match mode.decode {
        Decode::H264 | Decode::Passthrough => "video/x-h264",
        Decode::Jpeg => "image/jpeg",
        Decode::Raw(_) => "video/x-raw",
    };
    let mut caps = gst::Caps::builder(media_type)
        .field("width", mode.width as i32)
        .field("height", mode.height as i32)
        .field(
            "framerate",
            gst::Fraction::new(mode.rate.num as i32, mode.rate.den as i32),
        );
    match mode.decode {
        Decode::Raw(format) => caps = caps.field("format", format),
        Decode::H264 | Decode::Passthrough => {
            caps = caps
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
        }
        Decode::Jpeg => {}
    }
    caps.build()
}

/// Opens `device`, sets `mode` and starts a thread pushing its frames into
/// `appsrc` once the pipeline plays. Errors opening or configuring the
/// device come back here; errors later are posted on the bus from
/// `appsrc`, where the camera-loss logic sees them.
pub fn start(
    device: &str,
    mode: &Mode,
    appsrc: &gst_app::AppSrc,
    rejects: &crate::source::Rejects,
) -> Result<CaptureThread> {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
    let thread = std::thread::Builder::new()
        .name("v4l2-capture".to_owned())
        .spawn({
            let device = device.to_owned();
            let mode = mode.clone();
            let appsrc = appsrc.clone();
            let stop = stop.clone();
            let rejects = rejects.clone();
            move || {
                // The v4l crate panics when stopping a stream fails for a
                // reason other than the device being gone; that must cost
                // this camera, not the process.
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run(&device, &mode, &appsrc, &stop, &ready_tx, &rejects)
                }));
                let message = match outcome {
                    Ok(Ok(())) => return,
                    Ok(Err(err)) => format!("{err:#}"),
                    Err(_) => "the capture thread failed while stopping the stream".to_owned(),
                };
                if !stop.load(Ordering::Relaxed) {
                    gst::element_error!(
                        appsrc,
                        gst::ResourceError::Read,
                        ("camera {device}: {message}")
                    );
                }
            }
        })
        .context("starting the capture thread")?;
    let capture = CaptureThread {
        stop,
        thread: Some(thread),
    };
    match ready_rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => Ok(capture),
        Ok(Err(err)) => Err(err),
        Err(_) => bail!("camera {device} did not answer within 10 s"),
    }
}

fn run(
    device: &str,
    mode: &Mode,
    appsrc: &gst_app::AppSrc,
    stop: &AtomicBool,
    ready: &mpsc::Sender<Result<()>>,
    rejects: &crate::source::Rejects,
) -> Result<()> {
    let opened = open(device, mode);
    let (handle, layout) = match opened {
        Ok(opened) => {
            let _ = ready.send(Ok(()));
            opened
        }
        Err(err) => {
            let _ = ready.send(Err(err));
            return Ok(());
        }
    };
    let mut stream =
        v4l::io::mmap::Stream::with_buffers(&handle, Type::VideoCapture, DRIVER_BUFFERS)
            .with_context(|| format!("{device}: allocating capture buffers"))?;
    stream.set_timeout(POLL);
    // Frames pushed before the pipeline plays would be refused.
    while appsrc.current_state() != gst::State::Playing {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut pool: Option<gst::BufferPool> = None;
    let outcome = capture_loop(&mut stream, mode, appsrc, stop, &layout, &mut pool, rejects);
    if let Some(pool) = pool {
        let _ = pool.set_active(false);
    }
    outcome
}

/// Frames are copied into buffers from a pool sized for the device's
/// largest frame: the same few blocks of memory go round, instead of a
/// fresh allocation per frame freed on another thread (which fragmented
/// the heap: resident memory crept up over reconnects).
fn pooled_buffer(pool: &mut Option<gst::BufferPool>, size: usize) -> Result<gst::Buffer> {
    if pool.is_none() {
        let new = gst::BufferPool::new();
        let mut config = new.config();
        config.set_params(None, u32::try_from(size)?, DRIVER_BUFFERS, 0);
        new.set_config(config)?;
        new.set_active(true)?;
        *pool = Some(new);
    }
    pool.as_ref()
        .context("the frame pool exists")?
        .acquire_buffer(None)
        .map_err(|flow| anyhow!("no frame buffer: {flow:?}"))
}

fn capture_loop(
    stream: &mut v4l::io::mmap::Stream<'_>,
    mode: &Mode,
    appsrc: &gst_app::AppSrc,
    stop: &AtomicBool,
    layout: &Option<(Vec<usize>, Vec<i32>)>,
    pool: &mut Option<gst::BufferPool>,
    rejects: &crate::source::Rejects,
) -> Result<()> {
    let mut frames = Frames::default();
    while !stop.load(Ordering::Relaxed) {
        let (data, meta) = match frames.next(stream) {
            Ok(Some(frame)) => frame,
            // No frame yet: the stall detector decides when that is a loss.
            Ok(None) => continue,
            Err(err) => return Err(anyhow!("reading a frame failed: {err}")),
        };
        let used = (meta.bytesused as usize).min(data.len());
        if used == 0 {
            continue;
        }
        // A USB webcam sends a truncated JPEG when a transfer is cut short:
        // it would decode to a half-grey picture, or not at all.
        if mode.decode == Decode::Jpeg && !whole_jpeg(&data[..used]) {
            rejects.reject();
            continue;
        }
        let mut buffer = pooled_buffer(pool, data.len())?;
        {
            let buffer = buffer.get_mut().context("a fresh buffer is writable")?;
            buffer.set_size(used);
            buffer
                .map_writable()
                .map_err(|_| anyhow!("a frame buffer could not be written"))?
                .copy_from_slice(&data[..used]);
            let driver_ns = u64::try_from(meta.timestamp.sec).unwrap_or(0) * 1_000_000_000
                + u64::try_from(meta.timestamp.usec).unwrap_or(0) * 1_000;
            buffer.set_pts(running_time(appsrc, driver_ns));
            buffer.set_offset(u64::from(meta.sequence));
            if let Some((offsets, strides)) = layout {
                if let Decode::Raw(format) = mode.decode {
                    let format = format.parse().unwrap_or(gst_video::VideoFormat::Unknown);
                    gst_video::VideoMeta::add_full(
                        buffer,
                        gst_video::VideoFrameFlags::empty(),
                        format,
                        mode.width,
                        mode.height,
                        offsets,
                        strides,
                    )?;
                }
            }
        }
        if appsrc.push_buffer(buffer).is_err() {
            // Flushing: the source is being stopped.
            return Ok(());
        }
    }
    Ok(())
}

/// Whether a JPEG frame is whole: it starts with an SOI marker and ends
/// with an EOI marker (after the zero padding some cameras add).
fn whole_jpeg(frame: &[u8]) -> bool {
    let end = frame.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    frame.starts_with(&[0xFF, 0xD8]) && frame[..end].ends_with(&[0xFF, 0xD9])
}

/// Takes frames from the `v4l` crate's mmap stream without ever letting
/// its `next()` give up half-way. `next()` queues the buffer it handed out
/// last, then waits for a frame; when that wait times out, the next call
/// queues the same buffer again, which the driver refuses (EINVAL), and a
/// camera that is merely slow — a webcam at 5 fps in low light, vivid in
/// a busy guest — looked unplugged. So once streaming, the wait happens
/// here, and `next()` is called only when a frame is ready.
#[derive(Default)]
struct Frames {
    /// `next()` has run once: the buffers are queued and the stream is on.
    streaming: bool,
    /// A wait inside `next()` timed out (only the first call waits there):
    /// its buffer is queued, so the frame that fills it must be taken out
    /// by hand before `next()` may run again.
    owed: bool,
}

impl Frames {
    /// The next frame, or None when none came within [`POLL`].
    fn next<'s>(
        &mut self,
        stream: &'s mut v4l::io::mmap::Stream<'_>,
    ) -> std::io::Result<Option<(&'s [u8], &'s v4l::buffer::Metadata)>> {
        if self.streaming {
            let poll_ms = i32::try_from(POLL.as_millis()).unwrap_or(i32::MAX);
            match stream.handle().poll(libc::POLLIN, poll_ms) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => return Ok(None),
                Err(err) => return Err(err),
            }
        }
        if self.owed {
            // The crate hands out only frames its own next() dequeued, so
            // this one is dropped; next() queues its buffer again.
            CaptureStream::dequeue(stream)?;
            self.owed = false;
            return Ok(None);
        }
        match stream.next() {
            Ok(frame) => {
                self.streaming = true;
                Ok(Some(frame))
            }
            Err(err) if err.kind() == std::io::ErrorKind::TimedOut => {
                self.streaming = true;
                self.owed = true;
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }
}

/// The running time of a frame the driver stamped `driver_ns` on the
/// monotonic clock — the pipeline's clock too — or, when the driver's
/// clock is evidently another one, of now.
fn running_time(appsrc: &gst_app::AppSrc, driver_ns: u64) -> Option<gst::ClockTime> {
    let clock = appsrc.clock()?;
    let base = appsrc.base_time()?;
    let now = clock.time();
    let driver = gst::ClockTime::from_nseconds(driver_ns);
    let captured = if now.saturating_sub(driver) < gst::ClockTime::from_seconds(1) && driver <= now
    {
        driver
    } else {
        now
    };
    Some(captured.saturating_sub(base))
}

/// Opens the device and sets the format and frame interval; returns the
/// handle and, for raw formats whose line padding differs from
/// GStreamer's default, the plane offsets and strides.
#[allow(clippy::type_complexity)]
fn open(device: &str, mode: &Mode) -> Result<(v4l::Device, Option<(Vec<usize>, Vec<i32>)>)> {
    let handle =
        v4l::Device::with_path(device).with_context(|| format!("opening camera {device}"))?;
    let fourcc = fourcc_bytes(&mode.fourcc);
    let wanted = v4l::Format::new(mode.width, mode.height, v4l::FourCC::new(&fourcc));
    let set = handle
        .set_format(&wanted)
        .with_context(|| format!("{device}: setting format {mode}"))?;
    if set.fourcc != wanted.fourcc || set.width != mode.width || set.height != mode.height {
        bail!(
            "{device}: asked for {mode}, the driver chose {} {}x{}",
            set.fourcc,
            set.width,
            set.height
        );
    }
    // An interval of den/num seconds per frame is num/den frames per second.
    let interval = v4l::Fraction::new(mode.rate.den, mode.rate.num);
    if let Err(err) = handle.set_params(&v4l::video::capture::Parameters::new(interval)) {
        tracing::warn!("{device}: setting {} fps failed: {err}", mode.rate);
    }
    let layout = match mode.decode {
        Decode::Raw(format) => plane_layout(format, mode.width, mode.height, set.stride),
        _ => None,
    };
    Ok((handle, layout))
}

fn fourcc_bytes(fourcc: &str) -> [u8; 4] {
    let mut bytes = [b' '; 4];
    for (slot, byte) in bytes.iter_mut().zip(fourcc.bytes()) {
        *slot = byte;
    }
    bytes
}

/// Plane offsets and strides of a frame whose first plane's lines are
/// `stride` bytes, when that differs from GStreamer's default layout.
fn plane_layout(
    format: &str,
    width: u32,
    height: u32,
    stride: u32,
) -> Option<(Vec<usize>, Vec<i32>)> {
    let format: gst_video::VideoFormat = format.parse().ok()?;
    let info = gst_video::VideoInfo::builder(format, width, height)
        .build()
        .ok()?;
    if info.stride()[0] == stride as i32 {
        return None;
    }
    let (s, h) = (stride as usize, height as usize);
    let layout = match format {
        gst_video::VideoFormat::Nv12
        | gst_video::VideoFormat::Nv21
        | gst_video::VideoFormat::Nv16 => (vec![0, s * h], vec![s as i32, s as i32]),
        gst_video::VideoFormat::I420 | gst_video::VideoFormat::Yv12 => (
            vec![0, s * h, s * h + s / 2 * h / 2],
            vec![s as i32, (s / 2) as i32, (s / 2) as i32],
        ),
        _ => (vec![0], vec![s as i32]),
    };
    Some(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_jpeg_frames_are_told_from_whole_ones() {
        let whole = [0xFF, 0xD8, 1, 2, 3, 0xFF, 0xD9];
        assert!(whole_jpeg(&whole));
        assert!(whole_jpeg(&[&whole[..], &[0, 0, 0]].concat()));
        assert!(!whole_jpeg(&whole[..5]), "cut before its end marker");
        assert!(!whole_jpeg(&whole[2..]), "no start marker");
        assert!(!whole_jpeg(&[]));
    }

    #[test]
    fn padding_is_described_only_when_it_differs() {
        assert_eq!(plane_layout("YUY2", 640, 360, 1280), None);
        assert_eq!(
            plane_layout("YUY2", 638, 360, 1280),
            Some((vec![0], vec![1280]))
        );
        assert_eq!(
            plane_layout("NV12", 636, 360, 640),
            Some((vec![0, 640 * 360], vec![640, 640]))
        );
    }
}
