//! edgecam as systemd sees it, on the host: a unix datagram socket stands in
//! for systemd's NOTIFY_SOCKET and collects what the service says. The same
//! unit under a real systemd is tested in tests/systemd_vm.rs.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{http, Edgecam, Launch};

/// The notification socket systemd would listen on.
struct FakeSystemd {
    path: PathBuf,
    messages: Arc<Mutex<Vec<(Instant, String)>>>,
    _dir: tempfile::TempDir,
}

impl FakeSystemd {
    fn listen() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let received = messages.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(length) = socket.recv(&mut buffer) {
                let text = String::from_utf8_lossy(&buffer[..length]).into_owned();
                received
                    .lock()
                    .expect("messages")
                    .push((Instant::now(), text));
            }
        });
        Self {
            path,
            messages,
            _dir: dir,
        }
    }

    fn messages(&self) -> Vec<(Instant, String)> {
        self.messages.lock().expect("messages").clone()
    }

    /// When the first message holding the line `line` arrived.
    fn wait_for(&self, line: &str, timeout: Duration) -> Instant {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if let Some((at, _)) = self.messages().into_iter().find(|(_, m)| has(m, line)) {
                return at;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no {line} within {timeout:?}: {:#?}", self.messages());
    }

    /// Messages holding `line` that arrived within `from..to`.
    fn between(&self, line: &str, from: Instant, to: Instant) -> Vec<String> {
        self.messages()
            .into_iter()
            .filter(|(at, m)| *at >= from && *at < to && has(m, line))
            .map(|(_, m)| m)
            .collect()
    }
}

fn has(message: &str, line: &str) -> bool {
    message.lines().any(|l| l.starts_with(line))
}

fn sleep_until(at: Instant) {
    std::thread::sleep(at.saturating_duration_since(Instant::now()));
}

#[test]
fn ready_after_the_first_frame_watchdog_only_while_frames_move_stopping_at_the_end() {
    let systemd = FakeSystemd::listen();
    let second = Duration::from_secs(1);
    let mut config = common::config();
    config.camera.fault_injection = true;
    config.camera.stall_timeout_ms = 500;
    let edgecam = Edgecam::launch(
        config,
        Launch {
            env: vec![
                ("NOTIFY_SOCKET", systemd.path.display().to_string()),
                // WatchdogSec=2: a look at the outputs every second.
                ("WATCHDOG_USEC", "2000000".to_owned()),
                // Inherited from a parent whose stderr went to the journal;
                // this stderr is a file, so the logs must stay text on stderr.
                ("JOURNAL_STREAM", "0:0".to_owned()),
            ],
            ..Launch::default()
        },
    );

    // READY once a frame is out, and not before: the outputs have a frame
    // the moment it arrives, and the start-up said what it was doing first.
    let ready = systemd.wait_for("READY=1", Duration::from_secs(20));
    let health = http("GET", &edgecam.http_url("/healthz"));
    assert_eq!(health.status, 200, "READY before a frame: {}", health.body);
    let before: Vec<String> = systemd
        .messages()
        .into_iter()
        .take_while(|(at, _)| *at < ready)
        .map(|(_, m)| m)
        .collect();
    assert!(
        before.iter().any(|m| has(m, "EXTEND_TIMEOUT_USEC=")),
        "nothing said while starting: {before:?}"
    );
    assert!(!before.iter().any(|m| has(m, "WATCHDOG=1")), "{before:?}");
    // The log is text on stderr, not journal fields.
    assert!(edgecam.log().contains("INFO"), "{}", edgecam.log());

    // Streaming: a ping about every second, and a status line.
    sleep_until(ready + 4 * second);
    let pings = systemd
        .between("WATCHDOG=1", ready, ready + 4 * second)
        .len();
    println!("streaming: {pings} WATCHDOG=1 in the first 4 s after READY (WatchdogSec=2)");
    assert!(pings >= 1, "{:#?}", systemd.messages());
    let status = systemd.between("STATUS=", ready, ready + 4 * second);
    assert!(
        status
            .iter()
            .any(|m| m.contains("fps") && m.contains("camera live")),
        "{status:?}"
    );

    // The camera stalls: the slate keeps the outputs moving (viewers stay),
    // so the watchdog is still fed and the status says NO SIGNAL.
    let stalled = edgecam.inject_camera_fault("stall", 4);
    sleep_until(stalled + 4 * second);
    let pings = systemd
        .between("WATCHDOG=1", stalled + second, stalled + 4 * second)
        .len();
    println!("camera stalled, slate on: {pings} WATCHDOG=1 in 3 s");
    assert!(pings >= 1, "{:#?}", systemd.messages());
    let status = systemd.between("STATUS=", stalled, stalled + 4 * second);
    assert!(status.iter().any(|m| m.contains("NO SIGNAL")), "{status:?}");
    sleep_until(stalled + 7 * second);

    // The encoder wedges: nothing reaches the outputs, the pings stop (after
    // at most one look that still saw frames from before), and resume when
    // frames do. The windows leave a second either side for a busy machine.
    let wedged = edgecam.inject_camera_fault("wedge", 5);
    sleep_until(wedged + 8 * second);
    let during = systemd.between("WATCHDOG=1", wedged + 2 * second, wedged + 4 * second);
    let after = systemd.between("WATCHDOG=1", wedged + 5 * second, wedged + 8 * second);
    println!(
        "encoder wedged for 5 s: {} WATCHDOG=1 from 2 s to 4 s, {} in the 3 s after",
        during.len(),
        after.len()
    );
    assert!(during.is_empty(), "{:#?}", systemd.messages());
    assert!(!after.is_empty(), "{:#?}", systemd.messages());
    let status = systemd.between("STATUS=", wedged, wedged + 5 * second);
    assert!(status.iter().any(|m| m.contains("STALLED")), "{status:?}");

    let log_before_stop = edgecam.log();
    let stopped = Instant::now();
    let (exit, _) = edgecam.terminate();
    assert!(exit.success(), "{exit}\n{log_before_stop}");
    let stopping = systemd.between("STOPPING=1", stopped, Instant::now());
    assert_eq!(stopping.len(), 1, "{:#?}", systemd.messages());
}

/// `systemd-analyze security` scores the unit's sandbox from 0 (locked down)
/// to 10; the unit must stay at or under 2.0.
#[test]
fn the_unit_is_hardened() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/edgecam.service");
    let output = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze (package systemd)");
    let text = String::from_utf8_lossy(&output.stdout);
    let score = common::security_exposure(&text).unwrap_or_else(|| panic!("no score in:\n{text}"));
    println!("systemd-analyze security (offline) edgecam.service: exposure {score}");
    assert!(score <= 2.0, "exposure {score}:\n{text}");
}
