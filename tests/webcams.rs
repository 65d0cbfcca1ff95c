//! USB webcams as they are, through a real V4L2 device: v4l2loopback nodes
//! in the VM guest (tests/common/vm.rs), fed as an MJPEG webcam
//! (tests/webcam-writer.py, which can also cut frames short) and an H.264
//! webcam (ffmpeg's v4l2 output) do. One guest per camera, so each has the
//! emulated machine to itself. Rates and CPU are reported; the bounds are
//! what the guest sustains (640x360 at ≥ 25 fps), not 30 fps at 720p.

mod common;

use std::time::{Duration, Instant};

use common::http;
use common::vm::{metric, GuestCamera, GuestWriter, Viewer, Vm};
use edgecam::config::{CaptureFormat, SourceKind};

const PORTS: [u16; 2] = [8554, 8080];

/// One guest at a time: two emulated guests on the host's two cores would
/// measure each other.
static ONE_GUEST: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The least an MJPEG camera at 640x360@30 must reach a viewer at in the
/// guest: a third of its rate (see where it is asserted).
const MJPEG_FLOOR_FPS: f64 = 10.0;

fn camera_config(device: &str, format: CaptureFormat) -> String {
    let mut config = common::config();
    config.camera.source = SourceKind::V4l2;
    config.camera.device = device.to_owned();
    config.camera.format = format;
    config.camera.retry_max_s = 2;
    config.rtsp.port = PORTS[0];
    config.http.bind = format!("0.0.0.0:{}", PORTS[1]);
    config.hls.enabled = false;
    toml::to_string(&config).expect("the guest config serialises")
}

/// A two-second recording of the moving test picture (a whole number of
/// one-second GOPs for H.264, with access unit delimiters), made once on
/// the host; the guest's writer loops it.
fn recording(kind: &str, width: u32, height: u32) -> String {
    let dir = common::vm::image_dir().join("recordings");
    std::fs::create_dir_all(&dir).expect("recordings dir");
    let path = dir.join(format!("{kind}-{width}x{height}.{kind}"));
    if !path.exists() {
        let encoding: &[&str] = match kind {
            "mjpeg" => &["-c:v", "mjpeg", "-q:v", "5", "-f", "mjpeg"],
            _ => &[
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
                "-g",
                "30",
                "-x264-params",
                "aud=1",
                "-f",
                "h264",
            ],
        };
        let partial = path.with_extension("partial");
        let status = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size={width}x{height}:rate=30"))
            .args(["-frames:v", "60"])
            .args(encoding)
            .arg(&partial)
            .status()
            .expect("ffmpeg");
        assert!(status.success(), "recording {kind} {width}x{height}");
        std::fs::rename(&partial, &path).expect("keep the recording");
    }
    path.display().to_string()
}

/// A webcam sending `kind` ("mjpeg", "h264") at `width`x`height`@30 on
/// /dev/video10, every `truncate_every`th frame cut short (0: none).
fn writer(kind: &str, width: u32, height: u32, truncate_every: u32) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webcam-writer.py");
    let file = recording(kind, width, height);
    format!("python3 {script} /dev/video10 {kind} {file} {width} {height} 30 {truncate_every}")
}

fn metrics(vm: &Vm) -> String {
    http("GET", &vm.http_url(PORTS[1], "/metrics")).body
}

/// Polls the guest's `/metrics` until `series` satisfies `wanted`; the
/// time it took.
fn wait_for(vm: &Vm, series: &str, limit: Duration, wanted: impl Fn(f64) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let value = metric(&metrics(vm), series);
        if value.is_some_and(&wanted) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{series} is {value:?} after {limit:?}:\n{}",
            vm.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Unplugs the camera, waits until edgecam has let go of the node (a
/// v4l2loopback node keeps its format while a reader holds it), and plugs
/// it in again sending what `command` sends.
fn replug(vm: &Vm, writer: &str, command: &str) {
    let reopens = metric(&metrics(vm), "edgecam_camera_reopens_total").unwrap_or(0.0);
    vm.pause(writer);
    wait_for(
        vm,
        "edgecam_camera_reopens_total",
        Duration::from_secs(15),
        |n| n > reopens,
    );
    vm.set_command(writer, command);
    vm.resume(writer);
}

fn hello(vm: &Vm) -> serde_json::Value {
    common::metrics_ws::hello(&vm.http_url(PORTS[1], "/api/metrics/ws"))
}

/// Unplugs the camera for 5 s under a connected viewer: the viewer stays,
/// through the slate, and live video comes back.
fn unplug_for_five_seconds(vm: &Vm, writer: &str, viewer: &mut Viewer) {
    const JOINS: &str = "edgecam_viewer_joins_total{output=\"rtsp\"}";
    let before = metrics(vm);
    let reconnects = metric(&before, "edgecam_camera_reconnects_total").unwrap_or(0.0);
    let joins = metric(&before, JOINS);
    let since = Instant::now();
    vm.pause(writer);
    wait_for(vm, "edgecam_camera_live", Duration::from_secs(5), |n| {
        n == 0.0
    });
    std::thread::sleep(Duration::from_secs(5).saturating_sub(since.elapsed()));
    vm.resume(writer);
    let back = wait_for(
        vm,
        "edgecam_camera_reconnects_total",
        Duration::from_secs(30),
        |n| n > reconnects,
    );
    println!(
        "{writer} webcam unplugged for 5 s: live again {:.1} s after the writer restarted; \
         the viewer's longest gap {:.2} s",
        back.as_secs_f64(),
        viewer.longest_gap_since(since).as_secs_f64()
    );
    assert!(viewer.still_connected(), "the viewer was dropped");
    assert_eq!(metric(&metrics(vm), JOINS), joins, "the viewer reconnected");
}

#[test]
fn an_mjpeg_webcam_streams_through_unplugs_and_broken_frames() {
    if !Vm::available() {
        return;
    }
    let _turn = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let bare = "gst-launch-1.0 -q v4l2src device=/dev/video10 \
        ! image/jpeg,width=640,height=360,framerate=30/1 ! jpegdec ! videoconvert ! videoscale \
        ! videorate ! video/x-raw,format=I420,width=640,height=360,framerate=30/1 \
        ! queue max-size-buffers=2 max-size-bytes=0 max-size-time=0 leaky=downstream \
        ! x264enc bitrate=2000 key-int-max=30 tune=zerolatency speed-preset=ultrafast \
        ! video/x-h264,profile=constrained-baseline ! h264parse config-interval=-1 \
        ! rtph264pay ! fakesink";
    let mut vm = Vm::boot_with(
        "n_devs=1 node_types=0x1",
        &[
            GuestWriter {
                name: "mjpeg",
                device: Some("/dev/video10"),
                command: writer("mjpeg", 640, 360, 0),
                paused: false,
            },
            GuestWriter {
                name: "bare",
                device: None,
                command: bare.to_owned(),
                paused: true,
            },
        ],
        &[GuestCamera {
            name: "cam",
            config: camera_config("/dev/video10", CaptureFormat::Mjpeg),
            ports: PORTS,
            env: "",
        }],
    );
    vm.wait_healthy(PORTS[1], Duration::from_secs(120));
    wait_for(&vm, "edgecam_camera_live", Duration::from_secs(30), |n| {
        n == 1.0
    });
    assert_eq!(hello(&vm)["camera"]["capture"], "MJPG 640x360@30");

    // Its CPU first with no viewer: the bare pipeline below sends nothing
    // over the (emulated) network either.
    std::thread::sleep(Duration::from_secs(2));
    let edgecam_cpu = vm.measure_cpu("edgecam", 10);
    let mut viewer = Viewer::connect(&vm.rtsp_url(PORTS[0]), 640, 360);
    std::thread::sleep(Duration::from_secs(4));
    let fps = viewer.rate_over(Duration::from_secs(3));
    let watched_cpu = vm.measure_cpu("edgecam", 10);
    let writer_cpu = vm.measure_cpu("python3", 5);
    let text = metrics(&vm);
    let read = |series| metric(&text, series).unwrap_or(f64::NAN);
    println!(
        "MJPEG webcam 640x360@30 in the guest: {fps:.1} fps at the viewer ({:.1} captured, {:.1} \
         encoded per second, {} dropped before the encoder); edgecam {edgecam_cpu:.0} % of a \
         core unwatched, {watched_cpu:.0} % with the viewer; the writer {writer_cpu:.0} %",
        read("edgecam_capture_fps"),
        read("edgecam_encoded_fps"),
        read("edgecam_dropped_frames_total"),
    );
    // The decode and x264 encode fill the guest's two emulated cores, so
    // the rate it sustains follows the host's speed (31 fps on a quiet
    // host, 17-18 on a slower one; the figures go to docs/benchmarks.md).
    // The floor catches what issue 12 found, frames thrown away inside
    // edgecam (12 of 117 encoded), without timing the host.
    assert!(
        fps >= MJPEG_FLOOR_FPS,
        "{fps:.1} fps at the viewer:\n{}",
        vm.diagnostics()
    );

    unplug_for_five_seconds(&vm, "mjpeg", &mut viewer);

    // Every tenth frame cut short, as a USB transfer cut off leaves it:
    // counted, dropped, and the stream goes on.
    replug(&vm, "mjpeg", &writer("mjpeg", 640, 360, 10));
    wait_for(
        &vm,
        "edgecam_corrupt_frames_total",
        Duration::from_secs(30),
        |n| n >= 10.0,
    );
    wait_for(&vm, "edgecam_camera_live", Duration::from_secs(30), |n| {
        n == 1.0
    });
    let since = Instant::now();
    let losses = metric(&metrics(&vm), "edgecam_camera_losses_total");
    std::thread::sleep(Duration::from_secs(4));
    let text = metrics(&vm);
    let broken = metric(&text, "edgecam_corrupt_frames_total").unwrap_or(0.0);
    let fps_broken = viewer.rate_over(Duration::from_secs(3));
    println!(
        "MJPEG webcam with every tenth frame truncated: {broken} frames counted as broken, \
         {fps_broken:.1} fps at the viewer, longest gap {:.2} s",
        viewer.longest_gap_since(since).as_secs_f64()
    );
    assert_eq!(
        metric(&text, "edgecam_camera_losses_total"),
        losses,
        "broken frames were taken for a lost camera"
    );
    assert!(
        fps_broken >= MJPEG_FLOOR_FPS,
        "{fps_broken:.1} fps with broken frames"
    );
    assert!(viewer.still_connected(), "the viewer was dropped");

    // 1280x720: what the emulated guest sustains, reported. The camera
    // pipeline is rebuilt with nobody watching: in this guest an RTSP
    // media kept through a rebuild to a slower pipeline stalled now and
    // then (docs/benchmarks.md, "Known defect"), and that is not what this
    // step measures.
    drop(viewer);
    replug(&vm, "mjpeg", &writer("mjpeg", 1280, 720, 0));
    let patched = common::http_with(
        "PATCH",
        &vm.http_url(PORTS[1], "/api/config"),
        &[
            &format!("Authorization: Bearer {}", common::ADMIN_TOKEN),
            &format!(
                "If-Match: {}",
                common::http_with(
                    "GET",
                    &vm.http_url(PORTS[1], "/api/config"),
                    &[&format!("Authorization: Bearer {}", common::ADMIN_TOKEN)],
                    None
                )
                .head
                .lines()
                .find_map(|l| l.strip_prefix("etag:"))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
            ),
        ],
        Some("[camera]\nwidth = 1280\nheight = 720\n"),
    );
    assert_eq!(patched.status, 200, "{}", patched.body);
    wait_for(&vm, "edgecam_camera_live", Duration::from_secs(30), |n| {
        n == 1.0
    });
    let viewer_720 = Viewer::connect(&vm.rtsp_url(PORTS[0]), 1280, 720);
    std::thread::sleep(Duration::from_secs(8));
    let fps_720 = viewer_720.rate_over(Duration::from_secs(5));
    let capture_720 = metric(&metrics(&vm), "edgecam_capture_fps").unwrap_or(0.0);
    println!(
        "MJPEG webcam 1280x720@30 in the guest: {fps_720:.1} fps at the viewer, {capture_720:.1} \
         captured per second (the emulated guest's ceiling, writer included)"
    );
    assert!(
        fps_720 > 0.0,
        "no 720p frame at the viewer:\n{}",
        vm.diagnostics()
    );
    drop(viewer_720);

    // The same decode and encode by a bare gst-launch, in the same guest.
    vm.stop_camera("cam");
    vm.set_command("mjpeg", &writer("mjpeg", 640, 360, 0));
    vm.pause("mjpeg");
    std::thread::sleep(Duration::from_millis(500));
    vm.resume("mjpeg");
    std::thread::sleep(Duration::from_secs(2));
    vm.resume("bare");
    std::thread::sleep(Duration::from_secs(4));
    let bare_cpu = vm.measure_cpu("gst-launch-1.0", 10);
    println!(
        "MJPEG 640x360@30 decode + x264 encode in the guest: edgecam {edgecam_cpu:.0} %, a bare \
         gst-launch-1.0 {bare_cpu:.0} % of a core ({:.2}x)",
        edgecam_cpu / bare_cpu
    );
    assert!(
        bare_cpu > 0.0,
        "the bare pipeline did not run:\n{}",
        vm.diagnostics()
    );
}

#[test]
fn an_h264_webcam_is_waited_for_passed_through_and_followed_when_it_changes() {
    if !Vm::available() {
        return;
    }
    let _turn = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let mut vm = Vm::boot_with(
        "n_devs=1 node_types=0x1",
        &[GuestWriter {
            name: "h264",
            device: Some("/dev/video10"),
            command: writer("h264", 640, 360, 0),
            // Plugged in later: RTSP must answer from the start.
            paused: true,
        }],
        &[GuestCamera {
            name: "cam",
            config: camera_config("/dev/video10", CaptureFormat::H264),
            ports: PORTS,
            env: "",
        }],
    );
    vm.wait_healthy(PORTS[1], Duration::from_secs(120));
    let slate = common::probe_stream(&vm.rtsp_url(PORTS[0]), "tcp");
    common::assert_h264(&slate, (640, 360));
    assert_eq!(metric(&metrics(&vm), "edgecam_camera_live"), Some(0.0));

    vm.resume("h264");
    let plugged = wait_for(&vm, "edgecam_camera_live", Duration::from_secs(60), |n| {
        n == 1.0
    });
    let described = hello(&vm);
    println!(
        "H.264 webcam plugged in late: live {:.1} s after its writer started; {}",
        plugged.as_secs_f64(),
        described["camera"]
    );
    assert_eq!(
        described["camera"]["capture"], "H264 640x360@30",
        "{described}"
    );
    assert_eq!(described["encoder"]["passthrough"], true, "{described}");
    // Passed through: no encoder runs (the slate's stands by).
    wait_for(&vm, "edgecam_encoders", Duration::from_secs(5), |n| {
        n == 0.0
    });

    let joined = Instant::now();
    let mut viewer = Viewer::connect(&vm.rtsp_url(PORTS[0]), 640, 360);
    while viewer.count() == 0 {
        assert!(
            joined.elapsed() < Duration::from_secs(20),
            "no frame:\n{}",
            vm.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let first_frame = joined.elapsed();
    std::thread::sleep(Duration::from_secs(4));
    let fps = viewer.rate_over(Duration::from_secs(3));
    println!(
        "H.264 webcam 640x360@30 passed through: first frame {:.2} s after the viewer started \
         (the camera's keyframes are 1 s apart), {fps:.1} fps at the viewer",
        first_frame.as_secs_f64()
    );
    assert!(
        fps >= 25.0,
        "{fps:.1} fps at the viewer:\n{}",
        vm.diagnostics()
    );

    unplug_for_five_seconds(&vm, "h264", &mut viewer);
    // Rebuilt with nobody watching (see the MJPEG test's 720p step).
    drop(viewer);

    // Replugged at another size: no longer passed through, but decoded and
    // encoded at the configured size, by a pipeline rebuilt for it.
    replug(&vm, "h264", &writer("h264", 1280, 720, 0));
    let replugged = Instant::now();
    let described = loop {
        let described = hello(&vm);
        if described["encoder"]["passthrough"] == false {
            break described;
        }
        assert!(
            replugged.elapsed() < Duration::from_secs(90),
            "still passed through: {described}\n{}",
            vm.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    wait_for(&vm, "edgecam_camera_live", Duration::from_secs(60), |n| {
        n == 1.0
    });
    wait_for(&vm, "edgecam_encoders", Duration::from_secs(5), |n| {
        n == 1.0
    });
    assert_eq!(
        described["camera"]["capture"], "H264 1280x720@30",
        "{described}"
    );
    // Decoding 720p H.264 and encoding it again in the emulated guest
    // starts slowly on a busy host: probe until a deadline, not once.
    let probing = Instant::now();
    let stream = loop {
        match common::try_probe_stream(&vm.rtsp_url(PORTS[0]), "tcp") {
            Ok(stream) => break stream,
            Err(err) if probing.elapsed() > Duration::from_secs(90) => {
                panic!("{err}\n{}\n{}", metrics(&vm), vm.diagnostics())
            }
            Err(_) => std::thread::sleep(Duration::from_secs(1)),
        }
    };
    common::assert_h264(&stream, (640, 360));
    println!(
        "H.264 webcam replugged at 1280x720: decoded and encoded at 640x360 ({}); ffprobe read \
         it {:.1} s after the camera was live",
        described["camera"]["capture"],
        probing.elapsed().as_secs_f64()
    );
}
