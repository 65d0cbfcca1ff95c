//! Publishing to real receivers on loopback, no mock servers: an RTSP server
//! in record mode (gst-rtsp-server's RECORD support, as in its own
//! test-record example: ffmpeg's listen mode cannot parse the quoted
//! `mode="RECORD"` GStreamer's client sends), ffmpeg as an SRT listener (with
//! a passphrase) and as an RTMP server. Each receives H.264 that ffprobe
//! decodes at the configured size; a receiver killed for 10 s gets the
//! stream again after it restarts while edgecam's own RTSP viewer plays on;
//! a server that accepts and never reads costs bounded memory and no local
//! frame, and is given up on and tried again.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::vm::Viewer;
use common::{free_port, Edgecam};
use edgecam::config::PublishTarget;

const PASSPHRASE: &str = "a passphrase for srt";

/// A receiver: ffmpeg listening on `url`, copying what arrives into `file`
/// for at most `seconds` of media (its messages beside it, `.log`).
struct Receiver {
    child: Child,
    log: std::path::PathBuf,
}

impl Receiver {
    fn listen(input: &[&str], file: &Path, seconds: u32) -> Self {
        let child = Command::new("ffmpeg")
            .args(["-v", "error", "-y"])
            .args(input)
            .args(["-t", &seconds.to_string(), "-c", "copy", "-f", "mpegts"])
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(file.with_extension("log")).expect("log"))
            .spawn()
            .expect("ffmpeg");
        Self {
            child,
            log: file.with_extension("log"),
        }
    }

    /// What ffmpeg said.
    fn said(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn srt(port: u16, file: &Path, seconds: u32) -> Self {
        let url = format!("srt://127.0.0.1:{port}?mode=listener&passphrase={PASSPHRASE}");
        Self::listen(&["-i", &url], file, seconds)
    }

    fn rtmp(port: u16, file: &Path, seconds: u32) -> Self {
        let url = format!("rtmp://127.0.0.1:{port}/live/key-1");
        Self::listen(&["-listen", "1", "-i", &url], file, seconds)
    }

    /// Waits for it to finish its seconds; false if it failed or had to be
    /// killed.
    fn finish(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An RTSP server taking `ANNOUNCE`/`RECORD` on /live and writing the
/// H.264 it receives to a file, until dropped.
struct RecordServer {
    main_loop: gst::glib::MainLoop,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RecordServer {
    fn start(port: u16, file: &Path) -> Self {
        use gst_rtsp_server::prelude::*;
        gst::init().expect("GStreamer");
        let server = gst_rtsp_server::RTSPServer::new();
        server.set_address("127.0.0.1");
        server.set_service(&port.to_string());
        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        factory.set_transport_mode(gst_rtsp_server::RTSPTransportMode::RECORD);
        factory.set_protocols(gst_rtsp::RTSPLowerTrans::TCP);
        factory.set_launch(&format!(
            "( rtph264depay name=depay0 ! h264parse ! mpegtsmux ! filesink location={} )",
            file.display()
        ));
        server
            .mount_points()
            .expect("mount points")
            .add_factory("/live", factory);
        let context = gst::glib::MainContext::new();
        let main_loop = gst::glib::MainLoop::new(Some(&context), false);
        let running = main_loop.clone();
        let (ready, attached) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let _guard = context.acquire().expect("main context");
            let _source = server.attach(Some(&context)).expect("the RTSP port");
            ready.send(()).expect("ready");
            running.run();
        });
        attached.recv().expect("the record server started");
        Self {
            main_loop,
            thread: Some(thread),
        }
    }
}

impl Drop for RecordServer {
    fn drop(&mut self) {
        self.main_loop.quit();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Waits until `file` has grown for `seconds` of a stream (judged by size).
fn wait_for_file(file: &Path, bytes: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if std::fs::metadata(file).is_ok_and(|m| m.len() >= bytes) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn target(name: &str, url: String) -> PublishTarget {
    PublishTarget {
        name: name.to_owned(),
        url,
        ..PublishTarget::default()
    }
}

/// The publish output's report on target `name`.
fn status(edgecam: &Edgecam, name: &str) -> serde_json::Value {
    let outputs = edgecam.outputs();
    outputs["outputs"]["publish"]["description"]["targets"]
        .as_array()
        .and_then(|targets| targets.iter().find(|t| t["name"] == name).cloned())
        .unwrap_or_default()
}

fn bytes_sent(edgecam: &Edgecam, name: &str) -> f64 {
    edgecam
        .metric(&format!(
            "edgecam_publish_bytes_sent_total{{output=\"publish\",target=\"{name}\"}}"
        ))
        .unwrap_or(0.0)
}

#[test]
fn rtsp_srt_and_rtmp_servers_receive_the_one_encode() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ports = [free_port(), free_port(), free_port()];
    let files = ["rtsp.ts", "srt.ts", "rtmp.ts"].map(|f| dir.path().join(f));
    let record_server = RecordServer::start(ports[0], &files[0]);
    let mut receivers = [
        Receiver::srt(ports[1], &files[1], 4),
        Receiver::rtmp(ports[2], &files[2], 4),
    ];
    let mut config = common::config();
    config.publish.targets = vec![
        PublishTarget {
            user: "edgecam".to_owned(),
            password: "rtsp-secret".to_owned(),
            ..target("rtsp", format!("rtsp://127.0.0.1:{}/live", ports[0]))
        },
        PublishTarget {
            passphrase: PASSPHRASE.to_owned(),
            ..target("srt", format!("srt://127.0.0.1:{}", ports[1]))
        },
        PublishTarget {
            key: "key-1".to_owned(),
            ..target("rtmp", format!("rtmp://127.0.0.1:{}/live", ports[2]))
        },
    ];
    let edgecam = Edgecam::start(config);
    let started = Instant::now();
    // 4 s at 2 Mbit/s is about 1 MB; the record server has no clock of its own.
    assert!(
        wait_for_file(&files[0], 500_000, Duration::from_secs(40)),
        "the RTSP record server got little: {}\n{}",
        status(&edgecam, "rtsp"),
        edgecam.log()
    );
    drop(record_server);
    for (receiver, name) in receivers.iter_mut().zip(["srt", "rtmp"]) {
        assert!(
            receiver.finish(Duration::from_secs(40)),
            "the {name} receiver got no 4 s of video: {}\n{}\n{}",
            receiver.said(),
            status(&edgecam, name),
            edgecam.log()
        );
    }
    println!(
        "three receivers got 4 s each within {:.1} s of edgecam starting",
        started.elapsed().as_secs_f64()
    );
    for (file, name) in files.iter().zip(["rtsp", "srt", "rtmp"]) {
        let stream = common::probe_file(file);
        common::assert_h264(&stream, (640, 360));
        println!(
            "{name}: {} bytes sent, receiver decoded {stream:?}",
            bytes_sent(&edgecam, name)
        );
        assert!(bytes_sent(&edgecam, name) > 10_000.0, "{name}");
    }
    // One encoder, however many targets.
    assert_eq!(edgecam.metric("edgecam_encoders"), Some(1.0));

    // Secrets never leave the board.
    let admin = format!("Authorization: Bearer {}", common::ADMIN_TOKEN);
    let shown = common::http_with("GET", &edgecam.http_url("/api/config"), &[&admin], None);
    assert_eq!(shown.status, 200);
    for secret in ["rtsp-secret", PASSPHRASE, "key-1"] {
        assert!(
            !shown.body.contains(secret),
            "{secret} shown:\n{}",
            shown.body
        );
    }
    let outputs = common::http_with("GET", &edgecam.http_url("/api/outputs"), &[&admin], None);
    for secret in ["rtsp-secret", PASSPHRASE, "key-1"] {
        assert!(!outputs.body.contains(secret), "{secret} in /api/outputs");
    }
}

#[test]
fn a_restarted_receiver_gets_the_stream_again_and_viewers_never_notice() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let first = dir.path().join("first.ts");
    let mut receiver = Receiver::srt(port, &first, 600);
    let mut config = common::config();
    config.publish.targets = vec![PublishTarget {
        passphrase: PASSPHRASE.to_owned(),
        ..target("srt", format!("srt://127.0.0.1:{port}"))
    }];
    let edgecam = Edgecam::start(config);
    let publishing = |edgecam: &Edgecam| status(edgecam, "srt")["state"] == "publishing";
    wait(
        Duration::from_secs(20),
        "publishing to the SRT receiver",
        || publishing(&edgecam),
    );
    let mut viewer = Viewer::connect(&edgecam.url(), 640, 360);
    wait(Duration::from_secs(20), "the RTSP viewer playing", || {
        viewer.count() > 10
    });
    let watched = Instant::now();

    // Down for 10 s, then back on the same port.
    let reconnects = status(&edgecam, "srt")["reconnects"].as_u64().unwrap_or(0);
    receiver.signal(libc::SIGKILL);
    receiver.finish(Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(10));
    let again = dir.path().join("again.ts");
    let mut receiver = Receiver::srt(port, &again, 3);
    let restarted = Instant::now();
    // Sending again: a new connection, past the failures while it was down.
    wait(Duration::from_secs(30), "publishing again", || {
        let report = status(&edgecam, "srt");
        report["state"] == "publishing" && report["reconnects"].as_u64().unwrap_or(0) > reconnects
    });
    let took = restarted.elapsed().as_secs_f64();
    assert!(
        receiver.finish(Duration::from_secs(40)),
        "the restarted receiver got no 3 s of video: {}\n{}\n{}",
        receiver.said(),
        status(&edgecam, "srt"),
        edgecam.log()
    );
    common::assert_h264(&common::probe_file(&again), (640, 360));
    let report = status(&edgecam, "srt");
    println!(
        "receiver restarted after 10 s down: sending again {took:.1} s later; {} reconnect attempts; last error: {}",
        report["reconnects"], report["last_error"]
    );
    assert!(report["reconnects"].as_u64().unwrap_or(0) > reconnects);
    assert!(
        edgecam
            .metric("edgecam_publish_reconnects_total{output=\"publish\",target=\"srt\"}")
            .unwrap_or(0.0)
            >= 1.0
    );
    let gap = viewer.longest_gap_since(watched);
    println!("edgecam's RTSP viewer: longest gap {} ms", gap.as_millis());
    assert!(viewer.still_connected(), "the RTSP viewer was dropped");
    assert!(gap < Duration::from_secs(1), "the viewer stalled {gap:?}");
}

/// A server that accepts connections on `port` and never reads a byte
/// (with a small receive buffer, so a sender fills it at once).
fn never_reading_server(port: u16) -> Child {
    let script = format!(
        "import socket\n\
         s = socket.socket()\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)\n\
         s.bind(('127.0.0.1', {port}))\n\
         s.listen(16)\n\
         held = []\n\
         while True:\n    held.append(s.accept()[0])\n"
    );
    Command::new("python3")
        .args(["-c", &script])
        .spawn()
        .expect("python3")
}

#[test]
fn a_server_that_never_reads_costs_bounded_memory_and_no_local_frame() {
    let port = free_port();
    let mut server = never_reading_server(port);
    std::thread::sleep(Duration::from_millis(500));
    let mut config = common::config();
    config.publish.targets = vec![PublishTarget {
        key: "key-1".to_owned(),
        ..target("rtmp", format!("rtmp://127.0.0.1:{port}/live"))
    }];
    let edgecam = Edgecam::start(config);
    let viewer = Viewer::connect(&edgecam.url(), 640, 360);
    wait(Duration::from_secs(20), "the RTSP viewer playing", || {
        viewer.count() > 10
    });
    let rss = || {
        edgecam
            .metric("edgecam_process_resident_memory_bytes")
            .unwrap_or(0.0)
    };
    let before = rss();
    let mut peak = before;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(25) {
        std::thread::sleep(Duration::from_secs(1));
        peak = peak.max(rss());
    }
    let rate = viewer.rate_over(Duration::from_secs(10));
    let report = status(&edgecam, "rtmp");
    println!(
        "a server that never reads, 25 s: resident memory {:.1} → peak {:.1} MB; local viewer {rate:.1} fps; target {report}",
        before / 1e6,
        peak / 1e6,
    );
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        peak - before < 30e6,
        "memory grew by {:.1} MB",
        (peak - before) / 1e6
    );
    assert!(rate > 25.0, "the local viewer fell to {rate:.1} fps");
    assert_ne!(report["state"], "publishing", "{report}");
    assert!(
        report["reconnects"].as_u64().unwrap_or(0) >= 1,
        "never retried: {report}"
    );
}

fn wait(limit: Duration, what: &str, test: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !test() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
