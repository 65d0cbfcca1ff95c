//! The command line: config checking, broken configs, version/help, and a
//! busy port — each through the real binary.

mod common;

use std::net::TcpListener;
use std::process::{Command, Output};

use common::BIN;

fn edgecam(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run edgecam")
}

fn write_config(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).expect("write config");
    path.to_str().expect("utf-8").to_owned()
}

#[test]
fn the_shipped_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml");
    let output = edgecam(&["check-config", path]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("OK"));
}

/// Each broken file: (contents, what the message must name).
const BROKEN: &[(&str, &str, &[&str])] = &[
    (
        "syntax error",
        "[camera]\nwidth = 640\nheight = = 480\n",
        &[":3:"],
    ),
    (
        "unknown key",
        "[camera]\nwidth = 640\nframerate = 30\n",
        &[":3:1:", "camera.framerate", "unknown field"],
    ),
    (
        "unknown table",
        "[camera]\nwidth = 640\n[recorder]\npath = \"/x\"\n",
        &[":3:", "recorder"],
    ),
    (
        "out of range",
        "[camera]\nfps = 240\n",
        &[":2:7:", "camera.fps", "1–120"],
    ),
    (
        "odd size",
        "[camera]\nwidth = 641\n",
        &[":2:9:", "camera.width", "odd"],
    ),
    (
        "wrong type",
        "[rtsp]\nport = \"8554\"\n",
        &[":2:8:", "rtsp.port"],
    ),
    (
        "bad enum",
        "[encoder]\nkind = \"nvenc\"\n",
        &[":2:8:", "encoder.kind", "x264"],
    ),
    (
        "port too large",
        "[rtsp]\nport = 70000\n",
        &[":2:8:", "rtsp.port"],
    ),
];

#[test]
fn broken_configs_exit_2_naming_line_column_and_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (what, text, needles) in BROKEN {
        let path = write_config(&dir, text);
        for command in [
            &["check-config", path.as_str()][..],
            &["--config", path.as_str(), "run"][..],
        ] {
            let output = edgecam(command);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(
                output.status.code(),
                Some(2),
                "{what} ({command:?}): {stderr}"
            );
            assert!(!stderr.contains("panicked"), "{what}: {stderr}");
            assert!(
                stderr.contains(&path),
                "{what}: message does not name the file: {stderr}"
            );
            for needle in *needles {
                assert!(
                    stderr.contains(needle),
                    "{what}: message lacks {needle:?}: {stderr}"
                );
            }
        }
    }
}

#[test]
fn config_from_the_environment_is_used() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_config(&dir, "[camera]\nfps = 0\n");
    let output = Command::new(BIN)
        .arg("run")
        .env("EDGECAM_CONFIG", &path)
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("camera.fps"));
}

#[test]
fn a_missing_config_file_is_named() {
    let output = edgecam(&["check-config", "/nonexistent/edgecam.toml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("/nonexistent/edgecam.toml: cannot read")
    );
}

#[test]
fn version_and_help() {
    let output = edgecam(&["--version"]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains(env!("CARGO_PKG_VERSION")));
    let output = edgecam(&["--help"]);
    let help = String::from_utf8_lossy(&output.stdout);
    for command in ["run", "check-config", "probe"] {
        assert!(help.contains(command), "--help lacks {command}: {help}");
    }
}

#[test]
fn probe_reports_encoders_and_the_auto_choice() {
    let output = edgecam(&["probe"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("x264enc") && stdout.contains("v4l2h264enc"),
        "{stdout}"
    );
    assert!(stdout.contains("V4L2 capture devices"), "{stdout}");
    assert!(stdout.contains("→ encoder.kind"), "{stdout}");
}

#[test]
fn busy_ports_are_named_in_the_error() {
    let taken = TcpListener::bind("0.0.0.0:0").expect("bind");
    let busy = taken.local_addr().expect("addr").port();
    let free = common::free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    for (config, needle) in [
        (
            format!("[rtsp]\nport = {busy}\n[http]\nbind = \"127.0.0.1:{free}\"\n"),
            format!("rtsp.port {busy}"),
        ),
        (
            format!("[rtsp]\nport = {free}\n[http]\nbind = \"0.0.0.0:{busy}\"\n"),
            format!("http.bind 0.0.0.0:{busy}"),
        ),
    ] {
        let path = write_config(&dir, &format!("[camera]\nsource = \"test\"\n{config}"));
        let output = edgecam(&["--config", &path, "run"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(&needle), "{needle}: {stderr}");
    }
}
