//! Nothing a LAN client or a hung camera does ends the process: thousands
//! of idle connections and slow headers under a 1,024-file limit, a camera
//! open that hangs (SIGTERM still stops it within 2 s), and changes asked
//! for during that hang (answered, not lost).

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{http, Edgecam, Launch, Player};
use edgecam::config::Span;

/// Lets this test process hold thousands of sockets.
fn raise_own_file_limit(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[test]
fn a_camera_open_that_hangs_holds_back_neither_changes_nor_sigterm() {
    let mut config = common::config();
    config.camera.fault_injection = true;
    config.camera.stall_timeout_ms = 500;
    let edgecam = Edgecam::start(config);
    edgecam.inject_camera_fault("hang", 120);
    edgecam.wait_for_metric("edgecam_camera_opening", Duration::from_secs(10), |n| {
        n == 1.0
    });

    // During the hang: a change of the camera is refused with the reason,
    // at once; a change elsewhere applies (the slate keeps frames moving).
    let asked = Instant::now();
    let refused = edgecam.patch_config("[camera]\nwidth = 320\nheight = 180\n");
    println!(
        "camera change during a hung open: {} after {} ms: {}",
        refused.status,
        asked.elapsed().as_millis(),
        refused.body
    );
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.body.contains("being reopened"), "{}", refused.body);
    assert!(refused.head.contains("retry-after"), "{}", refused.head);
    let applied = edgecam.patch_config("[metrics]\nrate_hz = 5\n");
    assert_eq!(applied.status, 200, "{}", applied.body);
    assert_eq!(http("GET", &edgecam.http_url("/healthz")).status, 200);
    assert_eq!(edgecam.metric("edgecam_camera_opening"), Some(1.0));

    let (status, took) = edgecam.terminate();
    println!("SIGTERM during a hung camera open: exit {status} after {took:?}");
    assert!(status.success(), "exit status {status}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn idle_connections_and_slow_headers_cannot_take_it_down() {
    raise_own_file_limit(8192);
    let mut config = common::config();
    config.http.header_timeout = Span::from_secs(2);
    let mut edgecam = Edgecam::launch(
        config,
        Launch {
            open_files: Some(1024),
            ..Launch::default()
        },
    );
    let fds_before = edgecam.metric("edgecam_process_open_fds").unwrap_or(0.0);
    edgecam.wait_for_playlist("127.0.0.1", 2, Duration::from_secs(30));
    let rtsp = {
        let url = edgecam.url();
        std::thread::spawn(move || {
            common::receive_stamped_frames(Player::Ffmpeg, &url, 640, 360, 16)
        })
    };
    let hls = {
        let url = edgecam.http_url("/hls/cam.m3u8");
        std::thread::spawn(move || {
            common::receive_stamped_frames(Player::FfmpegHls, &url, 640, 360, 16)
        })
    };
    std::thread::sleep(Duration::from_secs(3));

    // 2,000 connections that never send a byte, and 100 that send their
    // header a byte every half second.
    let port = edgecam.http_port;
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let connect = move || TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok();
    let idle: Vec<TcpStream> = (0..2000).filter_map(|_| connect()).collect();
    let slow = std::thread::spawn(move || {
        let mut sockets: Vec<TcpStream> = (0..100).filter_map(|_| connect()).collect();
        let header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa";
        for byte in header.iter().cycle().take(16) {
            for socket in &mut sockets {
                let _ = socket.write_all(&[*byte]);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        sockets.len()
    });
    // Meanwhile the board still answers, and holds no more files than its cap allows.
    let mut health = Vec::new();
    let mut most_fds = 0.0f64;
    for _ in 0..8 {
        std::thread::sleep(Duration::from_secs(1));
        health.push(http("GET", &edgecam.http_url("/healthz")).status);
        if let Some(fds) = edgecam.metric("edgecam_process_open_fds") {
            most_fds = most_fds.max(fds);
        }
    }
    let slow_count = slow.join().expect("slow clients");
    let idle_count = idle.len();
    drop(idle);
    let rtsp = rtsp.join().expect("RTSP viewer");
    let hls = hls.join().expect("HLS viewer");
    let gap = |frames: &[common::ReceivedFrame]| {
        frames
            .windows(2)
            .map(|w| (w[1].received_us - w[0].received_us) / 1000)
            .max()
            .unwrap_or(u64::MAX)
    };
    println!(
        "{idle_count} idle and {slow_count} slow-header connections under a 1,024-file limit: \
         /healthz {health:?}; open files {fds_before} before, at most {most_fds} during; \
         RTSP viewer {} frames (longest gap {} ms), HLS viewer {} frames (longest gap {} ms)",
        rtsp.len(),
        gap(&rtsp),
        hls.len(),
        gap(&hls)
    );
    assert!(
        edgecam.exited().is_none(),
        "edgecam exited:\n{}",
        edgecam.log()
    );
    assert!(
        idle_count >= 1900,
        "the test opened only {idle_count} connections"
    );
    assert!(
        health.iter().filter(|s| **s == 200).count() >= 6,
        "{health:?}"
    );
    assert!(most_fds < 900.0, "{most_fds} files open");
    assert!(
        rtsp.len() > 300 && gap(&rtsp) < 1000,
        "the RTSP viewer stalled"
    );
    assert!(
        hls.len() > 200 && gap(&hls) < 4000,
        "the HLS viewer stalled"
    );
    assert_eq!(http("GET", &edgecam.http_url("/healthz")).status, 200);
}
