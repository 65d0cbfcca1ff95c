//! Real V4L2 capture, against the kernel's `vivid` virtual camera in a qemu
//! guest (see tests/common/vm.rs): two raw formats at two sizes reach RTSP
//! clients, a brightness change made through the API shows in the picture
//! without interrupting it, 20 unplug/replug cycles (vivid's `disconnect`
//! control) keep one RTSP viewer connected throughout with memory and file
//! descriptors flat, and a slow camera (4 fps) is never taken for lost.

mod common;

use std::time::{Duration, Instant};

use common::vm::{metric, GuestCamera, Viewer, Vm};
use common::{http, probe_stream};
use edgecam::config::{CaptureFormat, SourceKind};

const CAM0: [u16; 2] = [8554, 8080];
const CAM1: [u16; 2] = [8555, 8081];
const CYCLES: usize = 20;
/// cam1 is a slow camera, as a webcam in low light is: a frame every
/// 250 ms, longer than the capture thread's 200 ms wait for one.
const CAM1_FPS: u32 = 4;

fn guest_config(
    device: &str,
    format: CaptureFormat,
    (w, h, fps): (u32, u32, u32),
    [rtsp, web]: [u16; 2],
) -> String {
    let mut config = common::config();
    config.camera.source = SourceKind::V4l2;
    config.camera.device = device.to_owned();
    config.camera.format = format;
    (config.camera.width, config.camera.height, config.camera.fps) = (w, h, fps);
    config.camera.retry_max_s = 2;
    config.encoder.keyframe_interval = fps;
    config.rtsp.port = rtsp;
    config.http.bind = format!("0.0.0.0:{web}");
    config.hls.enabled = false;
    toml::to_string(&config).expect("the guest config serialises")
}

/// What one cycle left behind: the lowest of a few readings of resident
/// memory, all of it and the part the process allocated, and the fds.
struct Resources {
    rss: f64,
    anon: f64,
    fds: f64,
}

fn metrics(vm: &Vm) -> String {
    http("GET", &vm.http_url(CAM0[1], "/metrics")).body
}

fn put_control(vm: &Vm, name: &str, value: &str) -> common::HttpReply {
    let url = vm.http_url(CAM0[1], &format!("/api/camera/controls/{name}"));
    common::http_with_body("PUT", &url, Some(value))
}

/// Moves `control`'s slider on cam0's settings page to `value`; the page's
/// report.
fn slide(vm: &Vm, control: &str, value: i64) -> serde_json::Value {
    let report = common::browser(
        "settings-control.mjs",
        &[
            &vm.http_url(CAM0[1], "/settings"),
            common::ADMIN_TOKEN,
            control,
            &value.to_string(),
        ],
        Duration::from_secs(180),
        "the settings page in the VM",
    );
    assert!(report["failed"].is_null(), "{report}\n{}", vm.diagnostics());
    assert_eq!(report["errors"], serde_json::json!([]), "console errors");
    report
}

/// Waits (20 s at most) until the viewer's mean luma over the last second
/// passes `test`; that luma.
fn wait_luma(viewer: &Viewer, what: &str, test: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let luma = viewer.recent_luma(Duration::from_secs(1));
        if let Some(luma) = luma.filter(|&luma| test(luma)) {
            return luma;
        }
        assert!(
            Instant::now() < deadline,
            "waited for {what}: luma {luma:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The metrics WebSocket's `hello` from the camera serving `web`.
fn hello(vm: &Vm, web: u16) -> serde_json::Value {
    common::metrics_ws::hello(&vm.http_url(web, "/api/metrics/ws"))
}

/// Waits until the camera is live again after `reconnects_before`.
fn wait_live_again(vm: &Vm, reconnects_before: f64, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        let text = metrics(vm);
        let reconnects = metric(&text, "edgecam_camera_reconnects_total").unwrap_or(0.0);
        if reconnects > reconnects_before && metric(&text, "edgecam_camera_live") == Some(1.0) {
            return Some(started.elapsed());
        }
        // Each /metrics answer costs the emulated guest CPU time it would
        // otherwise spend reopening the camera; the figure asserted below
        // is edgecam's own (edgecam_camera_reopen_to_live_seconds), so
        // polling faster gains nothing.
        std::thread::sleep(Duration::from_millis(150));
    }
    None
}

#[test]
fn vivid_camera_in_a_vm() {
    if !Vm::available() {
        return;
    }
    let mut vm = Vm::boot(
        "n_devs=2 node_types=0x1,0x1",
        &[
            GuestCamera {
                name: "cam0",
                config: guest_config("/dev/video0", CaptureFormat::Yuyv, (640, 360, 30), CAM0),
                ports: CAM0,
                env: "",
            },
            GuestCamera {
                name: "cam1",
                config: guest_config(
                    "/dev/video1",
                    CaptureFormat::Nv12,
                    (320, 180, CAM1_FPS),
                    CAM1,
                ),
                ports: CAM1,
                env: "",
            },
        ],
    );
    let first = vm.wait_healthy(CAM0[1], Duration::from_secs(120));
    vm.wait_healthy(CAM1[1], Duration::from_secs(60));
    let console = vm.file("console.log");
    let guest_ready = console
        .lines()
        .find_map(|l| l.split("ready after ").nth(1))
        .unwrap_or("?");
    println!(
        "VM: guest init done at {guest_ready}; both cameras streaming {:.1} s after qemu started",
        first.as_secs_f64()
    );

    // Two raw formats at two sizes, as negotiated, reach an RTSP client.
    for (name, [port, web], fourcc, (w, h), fps) in [
        ("cam0", CAM0, "YUYV", (640, 360), 30),
        ("cam1", CAM1, "NV12", (320, 180), CAM1_FPS),
    ] {
        let hello = hello(&vm, web);
        assert_eq!(
            hello["camera"]["capture"],
            format!("{fourcc} {w}x{h}@{fps}").as_str(),
            "{name} did not capture {fourcc} {w}x{h}: {hello}\n{}",
            vm.diagnostics()
        );
        let stream = probe_stream(&vm.rtsp_url(port), "tcp");
        common::assert_h264(&stream, (w, h));
    }
    // The rest is about cam0; cam1 streams on, slowly, and is judged at the end.
    let cam1_fps = metric(
        &http("GET", &vm.http_url(CAM1[1], "/metrics")).body,
        "edgecam_capture_fps",
    );

    // Controls: listed with ranges; bad names and values are 4xx.
    let listed = http("GET", &vm.http_url(CAM0[1], "/api/camera/controls"));
    assert_eq!(listed.status, 200, "{}", listed.body);
    let controls: serde_json::Value = serde_json::from_str(&listed.body).expect("controls JSON");
    let brightness = controls["controls"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == "brightness"))
        .unwrap_or_else(|| panic!("no brightness control: {}", listed.body))
        .clone();
    assert_eq!(brightness["type"], "integer", "{brightness}");
    assert_eq!(put_control(&vm, "brightness", "999").status, 422);
    assert_eq!(put_control(&vm, "no_such_control", "1").status, 404);
    assert_eq!(put_control(&vm, "brightness", "bright").status, 400);

    let mut viewer = Viewer::connect(&vm.rtsp_url(CAM0[0]), 640, 360);
    let watching_since = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let fps = metric(&metrics(&vm), "edgecam_capture_fps").unwrap_or(0.0);
    println!(
        "VM: capture from vivid: cam0 YUYV 640x360 {fps:.1} fps, cam1 NV12 320x180 {:.1} fps \
         (asked for {CAM1_FPS})",
        cam1_fps.unwrap_or(0.0)
    );

    // Brightness through the API changes what the viewer sees, live.
    // On a slow host the player may still be starting: wait for its frames.
    let waiting = Instant::now();
    let before = loop {
        if let Some(luma) = viewer.recent_luma(Duration::from_secs(1)) {
            break luma;
        }
        assert!(
            waiting.elapsed() < Duration::from_secs(20),
            "the viewer received no frames:\n{}",
            vm.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let reply = put_control(&vm, "brightness", "230");
    assert_eq!(reply.status, 200, "{}", reply.body);
    std::thread::sleep(Duration::from_secs(2));
    let after = viewer
        .recent_luma(Duration::from_secs(1))
        .expect("frames after");
    println!("VM: brightness 128 → 230: mean luma {before:.1} → {after:.1}");
    assert!(after > before + 10.0, "luma {before:.1} → {after:.1}");
    assert!(
        viewer.still_connected(),
        "the viewer was dropped by a control change"
    );
    let gap = viewer.longest_gap_since(watching_since);
    assert!(
        gap < Duration::from_secs(1),
        "the picture stopped for {gap:?}"
    );
    assert_eq!(put_control(&vm, "brightness", "128").status, 200);
    wait_luma(&viewer, "back to brightness 128", |luma| {
        (luma - before).abs() < 5.0
    });

    // The same through the settings page in Chromium: the brightness
    // slider, generated from the control list, moved; the viewer sees it,
    // and the value is kept in the file. Moved back the same way.
    let page = slide(&vm, "brightness", 230);
    assert!(
        page["modes"]
            .as_array()
            .is_some_and(|modes| modes.iter().any(|m| m == "640x360 YUYV")),
        "the page does not offer vivid's modes: {page}"
    );
    assert_eq!(page["kind"], "range", "{page}");
    assert_eq!(page["shown"], "230");
    let paged = wait_luma(
        &viewer,
        "the page's slider to brighten the picture",
        |luma| luma > before + 10.0,
    );
    println!(
        "VM: settings page, brightness slider 128 → 230 ({} controls listed): mean luma \
         {before:.1} → {paged:.1}",
        page["controls"].as_array().map_or(0, Vec::len)
    );
    let kept = vm.file("cam0.toml");
    assert!(kept.contains("brightness = 230"), "{kept}");
    slide(&vm, "brightness", 128);
    wait_luma(&viewer, "the page's slider to dim it again", |luma| {
        (luma - before).abs() < 5.0
    });

    // Unplug and replug, again and again, with the viewer connected.
    let mut recoveries = Vec::new();
    let mut after_reopen = Vec::new();
    let mut resources = Vec::new();
    let cycles_since = Instant::now();
    for cycle in 1..=CYCLES {
        let reconnects = metric(&metrics(&vm), "edgecam_camera_reconnects_total").unwrap_or(0.0);
        let reply = put_control(&vm, "disconnect", "true");
        assert_eq!(reply.status, 200, "cycle {cycle}: {}", reply.body);
        let Some(back) = wait_live_again(&vm, reconnects, Duration::from_secs(10)) else {
            panic!(
                "cycle {cycle}: the camera did not come back:\n{}",
                vm.diagnostics()
            );
        };
        recoveries.push(back);
        // vivid's node comes back the moment edgecam lets go of it, which
        // is when it reopens the camera: from there to live video is
        // edgecam's part, which it measures itself.
        if let Some(took) = metric(&metrics(&vm), "edgecam_camera_reopen_to_live_seconds") {
            after_reopen.push(took);
        }
        // Resident memory breathes with the frames in flight (queues,
        // pools, the viewer's send backlog) by several MB under emulation,
        // either way: one reading after cycle 1 against one after cycle 20
        // measured the breathing. A leak raises the floor, so the floor of
        // each cycle's readings is kept and the first cycles' lowest is
        // compared with the last cycles'.
        std::thread::sleep(Duration::from_secs(1));
        let mut floor = Resources {
            rss: f64::MAX,
            anon: f64::MAX,
            fds: 0.0,
        };
        for _ in 0..5 {
            let text = metrics(&vm);
            let read = |name| metric(&text, name).unwrap_or(f64::MAX);
            floor.rss = floor.rss.min(read("edgecam_process_resident_memory_bytes"));
            floor.anon = floor
                .anon
                .min(read("edgecam_process_resident_anonymous_memory_bytes"));
            floor.fds = metric(&text, "edgecam_process_open_fds").unwrap_or(0.0);
            std::thread::sleep(Duration::from_millis(200));
        }
        resources.push(floor);
        assert!(
            viewer.still_connected(),
            "cycle {cycle}: the viewer was dropped"
        );
    }
    let secs: Vec<f64> = recoveries.iter().map(Duration::as_secs_f64).collect();
    let worst = secs.iter().copied().fold(0.0, f64::max);
    println!(
        "VM: {CYCLES} disconnects: unplug → live video again mean {:.2} s, worst {worst:.2} s \
         (includes the 0.5 s first retry delay); viewer received {} frames, longest gap {:.2} s",
        secs.iter().sum::<f64>() / secs.len() as f64,
        viewer.count(),
        viewer.longest_gap_since(cycles_since).as_secs_f64()
    );
    let lowest = |cycles: &[Resources], of: fn(&Resources) -> f64| {
        cycles.iter().map(of).fold(f64::MAX, f64::min)
    };
    let (first, last) = (&resources[..5], &resources[CYCLES - 5..]);
    let (rss1, rss20) = (lowest(first, |c| c.rss), lowest(last, |c| c.rss));
    let (anon1, anon20) = (lowest(first, |c| c.anon), lowest(last, |c| c.anon));
    let (fds1, fds20) = (resources[0].fds, resources[CYCLES - 1].fds);
    let each = |of: fn(&Resources) -> f64| {
        resources
            .iter()
            .map(|c| format!("{:.1}", of(c) / 1e6))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "VM: RSS floor over cycles 1–5: {:.1} MB, over cycles {}–{CYCLES}: {:.1} MB \
         (each cycle's floor: {} MB); of it allocated (anonymous): {:.1} MB → {:.1} MB \
         (each: {} MB); open fds after cycle 1: {fds1}, after cycle {CYCLES}: {fds20}",
        rss1 / 1e6,
        CYCLES - 4,
        rss20 / 1e6,
        each(|c| c.rss),
        anon1 / 1e6,
        anon20 / 1e6,
        each(|c| c.anon),
    );
    // Live video must follow within 2 s of the reopening.
    let log = vm.file("cam0.log");
    let slowest = after_reopen.iter().copied().fold(0.0, f64::max);
    println!(
        "VM: reopen → live video: {} reconnects, mean {:.2} s, worst {slowest:.2} s",
        after_reopen.len(),
        after_reopen.iter().sum::<f64>() / after_reopen.len().max(1) as f64
    );
    assert_eq!(
        after_reopen.len(),
        CYCLES,
        "reopen → live figures: {after_reopen:?}\n{log}"
    );
    assert!(
        slowest < 2.0,
        "live video took {slowest:.2} s after a reopen:\n{log}"
    );
    // A sanity bound, not a timing goal: the picture kept coming.
    let gap = viewer.longest_gap_since(cycles_since);
    assert!(
        gap < Duration::from_secs(5),
        "the viewer saw no frame for {gap:?}"
    );
    // The slow camera, streaming all along: a frame every 250 ms is slower
    // than one wait for a frame, and must never be taken for a lost camera.
    let cam1 = http("GET", &vm.http_url(CAM1[1], "/metrics")).body;
    let cam1_losses = metric(&cam1, "edgecam_camera_losses_total").unwrap_or(f64::NAN);
    let cam1_frames = metric(&cam1, "edgecam_captured_frames_total").unwrap_or(0.0);
    println!(
        "VM: slow camera ({CAM1_FPS} fps): {cam1_frames} frames captured, {cam1_losses} losses"
    );
    assert_eq!(
        cam1_losses,
        0.0,
        "the slow camera was taken for lost:\n{}",
        vm.file("cam1.log")
    );
    // The allocated (anonymous) part is printed beside the total: when the
    // total steps up, it tells code pages mapped in on a path's first run
    // from memory the process allocated. (It told that random steps of
    // exactly 2 MB were huge pages under new threads' stacks; edgecam now
    // turns transparent huge pages off for itself: docs/benchmarks.md.)
    assert!((rss20 - rss1).abs() <= rss1 * 0.05, "RSS {rss1} → {rss20}");
    assert!((fds20 - fds1).abs() <= fds1 * 0.05, "fds {fds1} → {fds20}");
}
