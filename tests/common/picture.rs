//! What a real viewer sees: an RTSP or HLS player (ffmpeg) decoding the
//! common configuration's 640x360 picture to grey, and the share of a
//! rectangle's pixels that pass a test — for masks, labels and slates.

use std::io::Read;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Player;

/// The size of every picture here: the common configuration's.
pub const WIDTH: usize = 640;
pub const HEIGHT: usize = 360;
/// Each decoded frame's arrival, with its luma (kept for the last 30).
type Decoded = Arc<Mutex<Vec<(Instant, Vec<u8>)>>>;

/// An RTSP viewer that keeps the latest decoded frames.
pub struct GreyViewer {
    child: std::process::Child,
    frames: Decoded,
}

impl GreyViewer {
    pub fn connect(url: &str, player: Player) -> Self {
        let mut child = player
            .command(url, 120)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg");
        let mut stdout = child.stdout.take().expect("stdout");
        let frames: Decoded = Arc::default();
        let sink = frames.clone();
        std::thread::spawn(move || {
            let mut luma = vec![0u8; WIDTH * HEIGHT];
            while stdout.read_exact(&mut luma).is_ok() {
                let mut frames = sink.lock().expect("frames");
                frames.push((Instant::now(), luma.clone()));
                // Times for all, pictures for the last second only.
                let keep = frames.len().saturating_sub(30);
                for (_, old) in frames.iter_mut().take(keep) {
                    old.clear();
                }
            }
        });
        Self { child, frames }
    }

    /// The frames decoded after `since` (waiting up to 10 s for 20).
    pub fn frames_after(&self, since: Instant) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let frames: Vec<Vec<u8>> = self
                .frames
                .lock()
                .expect("frames")
                .iter()
                .filter(|(at, luma)| *at > since && !luma.is_empty())
                .map(|(_, luma)| luma.clone())
                .collect();
            if frames.len() >= 20 || Instant::now() > deadline {
                return frames;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether a frame decoded after `since` passes `test`, waiting up to
    /// `limit` for one.
    pub fn shows(&self, since: Instant, limit: Duration, test: impl Fn(&[u8]) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let seen = self
                .frames
                .lock()
                .expect("frames")
                .iter()
                .any(|(at, luma)| *at > since && !luma.is_empty() && test(luma));
            if seen {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Still playing: the player has not exited.
    pub fn playing(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    pub fn longest_gap(&self) -> Duration {
        let frames = self.frames.lock().expect("frames");
        frames
            .windows(2)
            .map(|w| w[1].0 - w[0].0)
            .max()
            .unwrap_or_default()
    }
}

impl Drop for GreyViewer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Share of the pixels in [x, y, w, h] for which `test` holds.
pub fn share(luma: &[u8], [x, y, w, h]: [u32; 4], test: impl Fn(u8) -> bool) -> f64 {
    let mut hits = 0;
    for row in y..y + h {
        for column in x..x + w {
            if test(luma[row as usize * WIDTH + column as usize]) {
                hits += 1;
            }
        }
    }
    f64::from(hits) / f64::from(w * h)
}
