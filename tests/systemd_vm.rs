//! The .deb under a real systemd: a Debian bookworm guest (systemd as PID 1,
//! vivid as its camera, built by scripts/vm/build-systemd) runs the unit as
//! shipped. Commands run in the guest through qemu-guest-agent; the host
//! reads the stream through a loopback port forward.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::systemd_vm::SystemdVm;

/// The board's /etc/edgecam/config.toml: the defaults (the first camera,
/// the best encoder) at the size vivid's webcam input runs at 30 fps
/// (platform notes); the admin token is generated on first start.
fn guest_config() -> String {
    let mut config = edgecam::config::Config::default();
    (config.camera.width, config.camera.height, config.camera.fps) = (640, 360, 30);
    config.encoder.bitrate_kbps = 1000;
    toml::to_string(&config).expect("the guest config serialises")
}

/// `systemctl show` properties of edgecam.service.
fn show(vm: &SystemdVm, properties: &str) -> HashMap<String, String> {
    let output = vm.exec(&format!("systemctl show edgecam.service -p {properties}"));
    assert_eq!(output.status, 0, "systemctl show: {}", output.stderr);
    output
        .stdout
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

fn number(properties: &HashMap<String, String>, key: &str) -> u64 {
    properties
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} in {properties:?}"))
}

/// edgecam's own journal entries, as JSON objects.
fn journal(vm: &SystemdVm) -> Vec<serde_json::Value> {
    let output = vm.exec("journalctl -u edgecam.service -o json --no-pager");
    output
        .stdout
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn journal_text(vm: &SystemdVm) -> String {
    vm.exec("journalctl -u edgecam.service --no-pager").stdout
}

/// Polls edgecam's `/metrics` in the guest until `series` satisfies `wanted`.
fn wait_for_metric(vm: &SystemdVm, series: &str, timeout: Duration, wanted: impl Fn(f64) -> bool) {
    let url = format!("http://127.0.0.1:{}/metrics", vm.host_port(8080));
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        let text = common::http("GET", &url).body;
        if common::vm::metric(&text, series).is_some_and(&wanted) {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("{series} never got there:\n{}", journal_text(vm));
}

/// The metrics WebSocket's `hello` from edgecam in the guest.
fn hello(vm: &SystemdVm) -> serde_json::Value {
    common::metrics_ws::hello(&format!(
        "http://127.0.0.1:{}/api/metrics/ws",
        vm.host_port(8080)
    ))
}

fn assert_streams(vm: &SystemdVm) {
    let url = format!("rtsp://127.0.0.1:{}/cam", vm.host_port(8554));
    common::assert_h264(&common::probe_stream(&url, "tcp"), (640, 360));
}

#[test]
fn the_package_under_systemd_ready_watchdog_reload() {
    if !SystemdVm::available() {
        return;
    }
    let vm = SystemdVm::boot(&[8554, 8080]);
    println!(
        "guest (systemd PID 1) answered after {:.1} s",
        vm.booted.as_secs_f64()
    );
    // Boot finished: what an enabled edgecam would start after.
    let boot = vm.exec("systemctl is-system-running --wait; systemd-analyze time");
    println!(
        "guest boot: {}",
        boot.stdout
            .lines()
            .find(|l| l.starts_with("Startup"))
            .unwrap_or(&boot.stdout)
    );
    let written = vm.exec(&format!(
        "cat > /etc/edgecam/config.toml <<'EOF'\n{}EOF",
        guest_config()
    ));
    assert_eq!(written.status, 0, "{}", written.stderr);

    // The unit as installed: clean for systemd, and sandboxed.
    let verify = vm.exec("systemd-analyze verify edgecam.service");
    assert!(
        verify.status == 0 && verify.stderr.trim().is_empty(),
        "systemd-analyze verify: {} {}",
        verify.stdout,
        verify.stderr
    );
    let security = vm.exec("systemd-analyze security --no-pager edgecam.service");
    // The table goes to stdout, the overall line to stderr.
    let report = format!("{}{}", security.stdout, security.stderr);
    let score = common::security_exposure(&report).unwrap_or_else(|| panic!("no score: {report}"));
    println!("systemd-analyze security edgecam.service (in the guest): exposure {score}");
    assert!(score <= 2.0, "{report}");

    // `systemctl start` returns once the unit is active — which must not
    // be before edgecam's first frame reached the outputs.
    let starting = Instant::now();
    let start = vm.exec("systemctl start edgecam.service");
    let start_s = starting.elapsed().as_secs_f64();
    assert_eq!(start.status, 0, "{}\n{}", start.stderr, journal_text(&vm));
    let state = show(
        &vm,
        "ActiveState,SubState,MainPID,NRestarts,StatusText,\
         ExecMainStartTimestampMonotonic,ActiveEnterTimestampMonotonic",
    );
    assert_eq!(state["ActiveState"], "active", "{state:?}");
    assert_eq!(state["SubState"], "running", "{state:?}");
    let ready_entry = journal(&vm)
        .into_iter()
        .find(|entry| entry.get("EDGECAM_FIRST_FRAME_MS").is_some())
        .unwrap_or_else(|| panic!("no READY entry:\n{}", journal_text(&vm)));
    let first_frame_ms: u64 = ready_entry["EDGECAM_FIRST_FRAME_MS"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("EDGECAM_FIRST_FRAME_MS");
    let active_after_ms = (number(&state, "ActiveEnterTimestampMonotonic")
        - number(&state, "ExecMainStartTimestampMonotonic"))
        / 1000;
    println!(
        "systemctl start took {start_s:.1} s; edgecam's first frame at {first_frame_ms} ms, \
         systemd active at {active_after_ms} ms after exec; status: {}",
        state["StatusText"]
    );
    assert!(
        active_after_ms >= first_frame_ms,
        "active before the first frame: {state:?} {ready_entry}"
    );
    // The sandbox still lets it at the camera (udev's group video, the
    // DeviceAllow= list): "auto" would fall back to the test pattern.
    let hello = hello(&vm);
    assert!(
        hello["camera"]["capture"].is_string()
            && hello["camera"]["source"]
                .as_str()
                .is_some_and(|s| s.contains("/dev/video0")),
        "{hello}\n{}",
        journal_text(&vm)
    );
    assert_eq!(ready_entry["SYSLOG_IDENTIFIER"], "edgecam");
    assert_eq!(ready_entry["PRIORITY"], "6", "{ready_entry}");
    assert_streams(&vm);
    let state = show(&vm, "StatusText");
    assert!(state["StatusText"].contains("fps"), "{state:?}");

    // `systemctl reload` re-reads the file: unchanged first, then changed
    // (the file watcher may see the edit first; either way it applies live,
    // without a restart).
    let reload = vm.exec("systemctl reload edgecam.service");
    assert_eq!(reload.status, 0, "{}", reload.stderr);
    wait_for_metric(
        &vm,
        "edgecam_config_reloads_total{outcome=\"unchanged\"}",
        Duration::from_secs(20),
        |n| n >= 1.0,
    );
    let pid = show(&vm, "MainPID")["MainPID"].clone();
    let edited = vm.exec(
        "sed -i 's/^bitrate_kbps = 1000/bitrate_kbps = 1500/' /etc/edgecam/config.toml \
         && systemctl reload edgecam.service",
    );
    assert_eq!(edited.status, 0, "{}", edited.stderr);
    wait_for_metric(
        &vm,
        "edgecam_config_reloads_total{outcome=\"applied\"}",
        Duration::from_secs(30),
        |n| n >= 1.0,
    );
    let state = show(&vm, "MainPID,NRestarts,ActiveState,LimitNOFILE");
    assert_eq!(state["MainPID"], pid, "reload restarted edgecam");
    assert_eq!(state["NRestarts"], "0");
    assert_eq!(state["LimitNOFILE"], "16384", "{state:?}");

    // A frozen process stops feeding the watchdog: systemd aborts it after
    // WatchdogSec and starts it again.
    let stopped = vm.exec(&format!("kill -STOP {pid}"));
    assert_eq!(stopped.status, 0, "{}", stopped.stderr);
    let frozen = Instant::now();
    let until = frozen + Duration::from_secs(90);
    let restarted = loop {
        let state = show(&vm, "MainPID,NRestarts,ActiveState,SubState");
        if state["NRestarts"] == "1" && state["ActiveState"] == "active" && state["MainPID"] != pid
        {
            break frozen.elapsed();
        }
        assert!(
            Instant::now() < until,
            "no restart 90 s after SIGSTOP: {state:?}\n{}",
            journal_text(&vm)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let log = journal_text(&vm);
    assert!(log.contains("Watchdog timeout"), "{log}");
    println!(
        "SIGSTOP → watchdog timeout → restarted and READY again after {:.1} s (WatchdogSec=10, RestartSec=3)",
        restarted.as_secs_f64()
    );
    assert_streams(&vm);
}
