//! The status LED, the tally light and the button on a real kernel GPIO
//! chip: gpio-sim in the qemu guest (scripts/vm/build builds it for the
//! guest's kernel), driven by edgecam through the GPIO character device
//! while it streams vivid's camera. A guest process (tests/gpio-sampler.py)
//! samples the LED lines every ~10 ms from sysfs and presses the button by
//! pulling its line low, as a button to ground does.

mod common;

use std::time::{Duration, Instant};

use common::http;
use common::vm::{metric, GuestCamera, GuestWriter, Viewer, Vm};
use edgecam::config::{CaptureFormat, GpioBackend, GpioLine, SourceKind};

const PORTS: [u16; 2] = [8554, 8080];

/// The guest's sampler and button (tests/gpio-sampler.py).
const SAMPLER: &str = concat!(
    "python3 ",
    env!("CARGO_MANIFEST_DIR"),
    "/tests/gpio-sampler.py $JOB"
);

fn guest_config() -> String {
    let mut config = common::config();
    config.camera.source = SourceKind::V4l2;
    config.camera.device = "/dev/video0".to_owned();
    config.camera.format = CaptureFormat::Yuyv;
    (config.camera.width, config.camera.height, config.camera.fps) = (320, 180, 15);
    config.encoder.keyframe_interval = 15;
    config.rtsp.port = PORTS[0];
    config.http.bind = format!("0.0.0.0:{}", PORTS[1]);
    config.hls.enabled = false;
    config.gpio.backend = GpioBackend::Cdev;
    // Found by its label, as a board's chip would be.
    config.gpio.chip = "edgecam-sim".to_owned();
    config.gpio.status_led = Some(GpioLine {
        line: 0,
        active_low: false,
    });
    config.gpio.tally_led = Some(GpioLine {
        line: 1,
        active_low: false,
    });
    config.gpio.button = Some(GpioLine {
        line: 2,
        active_low: true,
    });
    toml::to_string(&config).expect("the guest config serialises")
}

/// One reading of the lines: guest uptime (s), status LED, tally.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: f64,
    status: bool,
    tally: bool,
}

fn samples(vm: &Vm) -> Vec<Sample> {
    vm.file("gpio.samples")
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let at = fields.next()?.parse().ok()?;
            let status = fields.next()? == "1";
            let tally = fields.next()? == "1";
            Some(Sample { at, status, tally })
        })
        .collect()
}

/// The guest's uptime at its latest sample.
fn guest_now(vm: &Vm) -> f64 {
    samples(vm).last().map_or(0.0, |s| s.at)
}

/// The samples taken from `from` on (guest time), waiting until they span
/// `span` seconds.
fn samples_over(vm: &Vm, from: f64, span: f64) -> Vec<Sample> {
    let deadline = Instant::now() + Duration::from_secs_f64(span * 4.0 + 10.0);
    loop {
        let taken: Vec<Sample> = samples(vm).into_iter().filter(|s| s.at >= from).collect();
        if taken.last().is_some_and(|s| s.at - from >= span) {
            return taken;
        }
        assert!(
            Instant::now() < deadline,
            "no GPIO samples over {span} s:\n{}",
            vm.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether the status LED has been on for the last `span` seconds.
fn steady_on(samples: &[Sample], span: f64) -> bool {
    let Some(last) = samples.last() else {
        return false;
    };
    let recent: Vec<&Sample> = samples.iter().filter(|s| last.at - s.at <= span).collect();
    recent.first().is_some_and(|s| last.at - s.at >= span * 0.9) && recent.iter().all(|s| s.status)
}

/// How long each level of the status LED lasted (s), in order.
fn runs(samples: &[Sample]) -> Vec<(bool, f64)> {
    let mut runs: Vec<(bool, f64, f64)> = Vec::new();
    for sample in samples {
        match runs.last_mut() {
            Some((level, _, end)) if *level == sample.status => *end = sample.at,
            _ => runs.push((sample.status, sample.at, sample.at)),
        }
    }
    runs.windows(2).map(|w| (w[0].0, w[1].1 - w[0].1)).collect()
}

fn wait_for(vm: &Vm, what: &str, limit: Duration, test: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit {
        if test() {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} within {limit:?}:\n{}", vm.diagnostics());
}

fn press(vm: &Vm, seconds: f64) {
    let released = vm.dir.path().join("released");
    let _ = std::fs::remove_file(&released);
    std::fs::write(vm.dir.path().join("press"), format!("{seconds}")).expect("press file");
    wait_for(
        vm,
        "the button was not released",
        Duration::from_secs(30),
        || released.exists(),
    );
}

fn privacy(vm: &Vm) -> Option<f64> {
    let text = http("GET", &vm.http_url(PORTS[1], "/metrics")).body;
    metric(&text, "edgecam_privacy_mode")
}

#[test]
fn status_led_tally_and_button_on_a_real_gpio_chip() {
    if !Vm::available() {
        return;
    }
    let mut vm = Vm::boot_with(
        "n_devs=1 node_types=0x1",
        &[GuestWriter {
            name: "gpio",
            device: None,
            command: SAMPLER.to_owned(),
            paused: false,
        }],
        &[GuestCamera {
            name: "cam",
            config: guest_config(),
            ports: PORTS,
            env: "",
        }],
    );
    vm.wait_healthy(PORTS[1], Duration::from_secs(120));
    let metrics_url = vm.http_url(PORTS[1], "/metrics");
    let metrics = || http("GET", &metrics_url).body;

    // Streaming: the status LED is steadily on, the tally off. The GPIO
    // thread learns the state from the metrics sample, up to a second after
    // /healthz, so wait for the LED to have been on longer than a slow
    // blink's half (0.5 s) before watching it for 2 s.
    wait_for(
        &vm,
        "the status LED did not settle on",
        Duration::from_secs(30),
        || steady_on(&samples(&vm), 0.7),
    );
    let live = samples_over(&vm, guest_now(&vm), 2.0);
    let interval = (live.last().expect("a sample").at - live[0].at) / live.len() as f64;
    println!(
        "GPIO: {} samples over 2 s (every {:.0} ms) while live",
        live.len(),
        interval * 1000.0
    );
    assert!(
        live.iter().all(|s| s.status),
        "the status LED is not steady: {live:?}"
    );
    assert!(
        live.iter().all(|s| !s.tally),
        "the tally is lit with nobody watching"
    );

    // A viewer lights the tally; it goes out when the viewer leaves.
    let viewer = Viewer::connect(&vm.rtsp_url(PORTS[0]), 320, 180);
    let lit = wait_for(
        &vm,
        "the tally did not light",
        Duration::from_secs(20),
        || samples(&vm).last().is_some_and(|s| s.tally),
    );
    drop(viewer);
    let dark = wait_for(
        &vm,
        "the tally did not go out",
        Duration::from_secs(20),
        || samples(&vm).last().is_some_and(|s| !s.tally),
    );
    println!(
        "GPIO: tally lit {:.1} s after an RTSP viewer connected, out {:.1} s after it left",
        lit.as_secs_f64(),
        dark.as_secs_f64()
    );

    // vivid unplugged: the status LED blinks fast until the camera is back,
    // then is steady again.
    let reconnects = metric(&metrics(), "edgecam_camera_reconnects_total").unwrap_or(0.0);
    let unplugged = guest_now(&vm);
    let url = vm.http_url(PORTS[1], "/api/camera/controls/disconnect");
    let admin = format!("Authorization: Bearer {}", common::ADMIN_TOKEN);
    let reply = common::http_with("PUT", &url, &[&admin], Some("true"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    wait_for(
        &vm,
        "the camera did not come back",
        Duration::from_secs(30),
        || {
            let text = metrics();
            metric(&text, "edgecam_camera_reconnects_total").unwrap_or(0.0) > reconnects
                && metric(&text, "edgecam_camera_live") == Some(1.0)
        },
    );
    let around = samples_over(&vm, unplugged, guest_now(&vm) - unplugged + 1.5);
    let runs = runs(&around);
    let blinks: Vec<f64> = runs.iter().skip(1).map(|(_, length)| *length).collect();
    println!(
        "GPIO: while the camera was unplugged the status LED changed {} times, levels lasting {:?} ms",
        blinks.len(),
        blinks.iter().map(|s| (s * 1000.0).round() as u32).collect::<Vec<_>>()
    );
    assert!(blinks.len() >= 4, "no fast blink: {runs:?}");
    // 100 ms on, 100 ms off.
    let mut sorted = blinks.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    assert!((0.07..0.14).contains(&median), "not a fast blink: {runs:?}");
    let after: Vec<&Sample> = around
        .iter()
        .filter(|s| s.at > around.last().unwrap().at - 1.0)
        .collect();
    assert!(
        after.iter().all(|s| s.status),
        "not steady once the camera is back"
    );

    // A short press: privacy mode on; another: off. Written to the file.
    press(&vm, 0.3);
    wait_for(
        &vm,
        "a press did not turn privacy mode on",
        Duration::from_secs(20),
        || privacy(&vm) == Some(1.0),
    );
    let state = http("GET", &vm.http_url(PORTS[1], "/api/privacy")).body;
    assert!(state.contains("true"), "{state}");
    assert!(vm.file("cam.toml").contains("[privacy]\nenabled = true"));
    press(&vm, 0.3);
    wait_for(
        &vm,
        "a press did not turn privacy mode off",
        Duration::from_secs(20),
        || privacy(&vm) == Some(0.0),
    );

    // Held for 3 s: the camera pipeline is rebuilt, and streams again.
    let builds = metric(&metrics(), "edgecam_camera_builds_total").unwrap_or(0.0);
    press(&vm, 3.6);
    wait_for(
        &vm,
        "a hold did not rebuild the camera",
        Duration::from_secs(30),
        || metric(&metrics(), "edgecam_camera_builds_total").unwrap_or(0.0) > builds,
    );
    vm.wait_healthy(PORTS[1], Duration::from_secs(60));
}
