//! Remote configuration through the real binary: revisions and If-Match,
//! comment-keeping PATCH, validation errors that leave everything as it
//! was, a live bitrate change under an RTSP viewer, rollback, and the
//! token guards on every route of the router's table.

mod common;

use std::time::{Duration, Instant};

use common::{http, http_from, http_with, Edgecam, HttpReply, ADMIN_TOKEN};
use edgecam::http::Access;

const RTSP_JOINS: &str = "edgecam_viewer_joins_total{output=\"rtsp\"}";

/// A commented file with the harness's settings, as a person would keep it.
const COMMENTED: &str = "# Front door camera — edited by hand, keep the notes.

[camera]
source = \"test\"   # no camera on this host
width = 640
height = 360
fps = 30

[encoder]
# Plenty for 360p on the LAN.
bitrate_kbps = 2000
kind = \"x264\"
keyframe_interval = 30
profile = \"baseline\"
";

/// The viewer's picture never stopped: frames all along, no long gap. (That
/// its session was never replaced is checked with the viewers who joined.)
fn assert_kept_playing(frames: &[common::ReceivedFrame]) {
    assert!(
        frames.len() > 30,
        "the viewer got only {} frames",
        frames.len()
    );
    let gap = frames
        .windows(2)
        .map(|w| w[1].received_us - w[0].received_us)
        .max()
        .unwrap_or(0);
    assert!(gap < 2_000_000, "the picture stopped for {} ms", gap / 1000);
}

fn admin() -> String {
    format!("Authorization: Bearer {ADMIN_TOKEN}")
}

fn get_config(edgecam: &Edgecam) -> (String, String) {
    let reply = http_with("GET", &edgecam.http_url("/api/config"), &[&admin()], None);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let etag = reply.header("etag").expect("an ETag");
    (reply.body, etag)
}

fn write(edgecam: &Edgecam, method: &str, etag: &str, body: &str) -> HttpReply {
    let if_match = format!("If-Match: {etag}");
    http_with(
        method,
        &edgecam.http_url("/api/config"),
        &[&admin(), &if_match, "Content-Type: application/toml"],
        Some(body),
    )
}

/// The harness's file with the comments above, keeping its ports and dirs.
fn commented_file(edgecam: &Edgecam) -> String {
    let original = std::fs::read_to_string(edgecam.dir.path().join("config.toml")).unwrap();
    let rest = &original[original.find("[rtsp]").expect("an [rtsp] section")..];
    format!("{COMMENTED}\n{rest}")
}

#[test]
fn a_patch_changes_one_key_live_and_keeps_every_comment() {
    let edgecam = Edgecam::start(common::config());
    let path = edgecam.dir.path().join("config.toml");
    let (text, etag) = get_config(&edgecam);
    assert!(text.contains("admin_token = \"<redacted>\""), "{text}");
    assert!(
        !text.contains(ADMIN_TOKEN),
        "the admin token leaked: {text}"
    );

    // Same settings, with comments: nothing to apply, the text is saved.
    let commented = commented_file(&edgecam);
    let reply = write(&edgecam, "PUT", &etag, &commented);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), commented);
    let etag = reply.header("etag").expect("a new ETag");

    // A viewer watches while the bitrate changes.
    let url = edgecam.url();
    let viewer = std::thread::spawn(move || {
        common::receive_stamped_frames(common::Player::Ffmpeg, &url, 640, 360, 10)
    });
    edgecam.wait_for_metric(RTSP_JOINS, Duration::from_secs(10), |n| n == 1.0);
    std::thread::sleep(Duration::from_secs(2));
    let patched_at = Instant::now();
    let reply = write(&edgecam, "PATCH", &etag, "[encoder]\nbitrate_kbps = 300\n");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("\"effect\":\"live\""), "{}", reply.body);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        commented.replace("bitrate_kbps = 2000", "bitrate_kbps = 300"),
        "the PATCH changed more than one value"
    );
    assert_eq!(
        std::fs::read_to_string(edgecam.dir.path().join("config.toml.prev")).unwrap(),
        commented,
        "the previous good file was not kept"
    );
    edgecam.wait_for_metric("edgecam_bitrate_kbps", Duration::from_secs(6), |kbps| {
        kbps < 600.0
    });
    println!(
        "PATCH encoder.bitrate_kbps 2000 → 300: stream under 600 kbit/s after {} ms",
        patched_at.elapsed().as_millis()
    );
    assert_kept_playing(&viewer.join().expect("viewer"));
    assert_eq!(
        edgecam.metric(RTSP_JOINS),
        Some(1.0),
        "the viewer had to reconnect"
    );
}

#[test]
fn bad_input_changes_nothing_and_says_where() {
    let edgecam = Edgecam::start(common::config());
    let path = edgecam.dir.path().join("config.toml");
    let before = std::fs::read_to_string(&path).unwrap();
    let (_, etag) = get_config(&edgecam);
    // Each error points into what was sent: its line and column there.
    for (body, (line, column), key) in [
        ("[encoder]\nbitrate_kbps = = 1\n", (2, 16), None),
        ("[encoder]\nbitrate_kbs = 1000\n", (2, 1), Some("encoder")),
        ("[camera]\nfps = 500\n", (2, 7), Some("camera.fps")),
        ("camera.fps = 500\n", (1, 14), Some("camera.fps")),
        (
            "[http]\nheader_timeout = \"10 sec\"\n",
            (2, 18),
            Some("http.header_timeout"),
        ),
    ] {
        let reply = write(&edgecam, "PATCH", &etag, body);
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        let error: serde_json::Value = serde_json::from_str(&reply.body).expect("JSON");
        assert_eq!(
            (&error["line"], &error["column"]),
            (&line.into(), &column.into()),
            "{body}: {error}"
        );
        assert!(
            error["error"]
                .as_str()
                .is_some_and(|e| e.starts_with(&format!("request body:{line}:{column}"))),
            "{body}: {error}"
        );
        if let Some(key) = key {
            assert!(
                error["key"].as_str().unwrap_or("").starts_with(key),
                "{error}"
            );
        }
    }
    // A key only a restart applies is refused whole, with what it takes.
    let reply = write(&edgecam, "PATCH", &etag, "[api]\nmax_body_kib = 128\n");
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert!(
        reply.body.contains("\"effect\":\"process\""),
        "{}",
        reply.body
    );
    // A change that cannot run is rolled back: the test pattern has no
    // camera controls.
    let reply = write(
        &edgecam,
        "PATCH",
        &etag,
        "[camera.controls]\nbrightness = 10\n",
    );
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert!(reply.body.contains("rolled back"), "{}", reply.body);
    // Random bytes and random TOML never break the server.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..100 {
        let body: String = (0..64)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let alphabet = b"[]=.\"'#\n abcdefz0123456789_-+{},";
                char::from(alphabet[(seed % alphabet.len() as u64) as usize])
            })
            .collect();
        let reply = write(&edgecam, "PATCH", &etag, &body);
        assert!(
            reply.status >= 400 && reply.status < 500 || reply.status == 200,
            "{body:?} → {}: {}",
            reply.status,
            reply.body
        );
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    assert_eq!(get_config(&edgecam).1, etag, "the revision moved");
    assert_eq!(http("GET", &edgecam.http_url("/healthz")).status, 200);
}

#[test]
fn of_two_writers_with_the_same_etag_one_wins() {
    let edgecam = Edgecam::start(common::config());
    let (_, etag) = get_config(&edgecam);
    let first = write(&edgecam, "PATCH", &etag, "[encoder]\nbitrate_kbps = 1500\n");
    let second = write(&edgecam, "PATCH", &etag, "[encoder]\nbitrate_kbps = 1200\n");
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(second.status, 412, "{}", second.body);
    let without = http_with(
        "PATCH",
        &edgecam.http_url("/api/config"),
        &[&admin()],
        Some("[encoder]\nbitrate_kbps = 1200\n"),
    );
    assert_eq!(without.status, 428, "{}", without.body);
}

#[test]
fn every_guarded_route_wants_its_token() {
    let mut config = common::config();
    config.auth.viewer_token = "test-viewer-token".to_owned();
    let edgecam = Edgecam::start(config);
    let viewer = "Authorization: Bearer test-viewer-token";
    let wrong = "Authorization: Bearer nope";
    let routes = edgecam::app::routes();
    assert!(
        routes.iter().any(|r| r.1 == "/hls/{file}")
            && routes.iter().any(|r| r.1 == "/api/metrics/ws"),
        "the outputs' routes are missing: {:?}",
        routes.iter().map(|r| r.1).collect::<Vec<_>>()
    );
    for (i, &(method, path, access)) in routes.iter().enumerate() {
        let url = edgecam.http_url(
            &path
                .replace("{name}", "brightness")
                .replace("{file}", "cam.m3u8")
                .replace("{stream}", "cam")
                .replace("{session}", "none"),
        );
        // Each route asks from its own address: failures are rate-limited
        // per address, which is checked below.
        let from = format!("127.0.0.{}", i + 2);
        let ask = |headers: &[&str]| http_from(Some(&from), method, &url, headers, None);
        let none = ask(&[]);
        let bad = ask(&[wrong]);
        match access {
            Access::Open => assert_ne!(none.status, 401, "{method} {path}"),
            Access::Viewer | Access::Admin => {
                for reply in [&none, &bad] {
                    assert_eq!(reply.status, 401, "{method} {path}: {}", reply.body);
                    assert!(
                        reply.head.contains("www-authenticate: bearer"),
                        "{method} {path}: {}",
                        reply.head
                    );
                }
            }
        }
        let as_viewer = ask(&[viewer]);
        match access {
            Access::Admin => assert_eq!(as_viewer.status, 401, "{method} {path}"),
            _ => assert_ne!(as_viewer.status, 401, "{method} {path}"),
        }
    }
    // Browsers cannot set headers on media requests: a query token works.
    let metrics = http_with(
        "GET",
        &edgecam.http_url("/metrics?token=test-viewer-token"),
        &[],
        None,
    );
    assert_eq!(metrics.status, 200);
    // …and a playlist fetched with it sends its segments with it too.
    let playlist_url = edgecam.http_url("/hls/cam.m3u8?token=test-viewer-token");
    let deadline = Instant::now() + Duration::from_secs(15);
    let playlist = loop {
        let reply = http_with("GET", &playlist_url, &[], None);
        if reply.status == 200 && reply.body.contains(".ts") {
            break reply.body;
        }
        assert!(Instant::now() < deadline, "no playlist: {}", reply.body);
        std::thread::sleep(Duration::from_millis(250));
    };
    let segment = playlist
        .lines()
        .find(|line| line.ends_with(".ts?token=test-viewer-token"))
        .unwrap_or_else(|| panic!("segments without the token:\n{playlist}"));
    let fetched = http_with(
        "GET",
        &edgecam.http_url(&format!("/hls/{segment}")),
        &[],
        None,
    );
    assert_eq!(fetched.status, 200, "{segment}");

    // Guessing is slowed down: after ten failures a minute, 429.
    let url = edgecam.http_url("/api/config");
    let statuses: Vec<u16> = (0..12)
        .map(|_| http_from(Some("127.0.0.200"), "GET", &url, &[wrong], None).status)
        .collect();
    assert_eq!(&statuses[..10], &[401; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], &[429; 2], "{statuses:?}");
    // Even the right token waits out the minute from that address…
    let right = admin();
    assert_eq!(
        http_from(Some("127.0.0.200"), "GET", &url, &[&right], None).status,
        429
    );
    // …while everyone else is served.
    assert_eq!(http_with("GET", &url, &[&right], None).status, 200);
    // The wait is said, in seconds, and only admin routes wait: a mistyped
    // admin token does not freeze the video or the metrics on that laptop.
    let waiting = http_from(Some("127.0.0.200"), "GET", &url, &[&right], None);
    let said: serde_json::Value = serde_json::from_str(&waiting.body).expect("JSON");
    let left = said["retry_after_s"].as_u64().expect("seconds left");
    assert!((1..=60).contains(&left), "{}", waiting.body);
    assert!(said["error"]
        .as_str()
        .is_some_and(|e| e.contains(&format!("{left} s"))));
    let metrics_url = edgecam.http_url("/metrics?token=test-viewer-token");
    assert_eq!(
        http_from(Some("127.0.0.200"), "GET", &metrics_url, &[], None).status,
        200,
        "viewing waits for the admin token's lockout"
    );
    // A body over the limit is refused in the same JSON as every API error.
    let huge = "#".repeat(70 * 1024);
    let too_big = http_with("PUT", &url, &[&right], Some(&huge));
    assert_eq!(too_big.status, 413, "{}", too_big.body);
    let said: serde_json::Value = serde_json::from_str(&too_big.body).expect("413 as JSON");
    assert!(said["error"].is_string(), "{}", too_big.body);
}

#[test]
fn edits_on_disk_and_sighup_take_the_same_path() {
    let edgecam = Edgecam::start(common::config());
    let path = edgecam.dir.path().join("config.toml");
    let (_, etag) = get_config(&edgecam);
    // An editor's save: a new file renamed over the old one.
    let edited = std::fs::read_to_string(&path)
        .unwrap()
        .replace("bitrate_kbps = 2000\n", "bitrate_kbps = 400\n");
    assert!(edited.contains("bitrate_kbps = 400"), "{edited}");
    let temporary = edgecam.dir.path().join("config.toml.swp");
    std::fs::write(&temporary, &edited).unwrap();
    std::fs::rename(&temporary, &path).unwrap();
    let saved = Instant::now();
    let applied = "edgecam_config_reloads_total{outcome=\"applied\"}";
    edgecam.wait_for_metric(applied, Duration::from_secs(10), |n| n == 1.0);
    println!(
        "edit on disk → applied in {} ms",
        saved.elapsed().as_millis()
    );
    let (text, new_etag) = get_config(&edgecam);
    assert!(text.contains("bitrate_kbps = 400"), "{text}");
    assert_ne!(new_etag, etag);
    edgecam.wait_for_metric("edgecam_bitrate_kbps", Duration::from_secs(6), |kbps| {
        kbps < 700.0
    });

    // A broken file is not applied, whichever way it arrives: first the
    // watcher sees it, then SIGHUP reads it again.
    let invalid = "edgecam_config_reloads_total{outcome=\"invalid\"}";
    std::fs::write(
        &path,
        edited.replace("bitrate_kbps = 400", "bitrate_kbps = "),
    )
    .unwrap();
    edgecam.wait_for_metric(invalid, Duration::from_secs(10), |n| n == 1.0);
    edgecam.signal("HUP");
    edgecam.wait_for_metric(invalid, Duration::from_secs(10), |n| n == 2.0);
    assert_eq!(
        get_config(&edgecam).1,
        new_etag,
        "a broken file replaced the running one"
    );
    assert_eq!(http("GET", &edgecam.http_url("/healthz")).status, 200);
}

#[test]
fn a_laptop_manages_the_board_with_edgecam_config() {
    let edgecam = Edgecam::start(common::config());
    let url = edgecam.http_url("");
    let remote = |args: &[&str], token: &str| {
        let output = std::process::Command::new(common::BIN)
            .args(["config", "--url", &url, "--token", token])
            .args(args)
            .output()
            .expect("edgecam config");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, out, err) = remote(&["set", "encoder.bitrate_kbps", "900"], ADMIN_TOKEN);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("encoder.bitrate_kbps: 2000 → 900 (live)"),
        "{out}"
    );
    let (code, out, _) = remote(&["get"], ADMIN_TOKEN);
    assert_eq!(code, Some(0));
    assert!(out.contains("bitrate_kbps = 900"), "{out}");

    let (code, out, err) = remote(&["set", "api.max_body_kib", "128"], ADMIN_TOKEN);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        err.contains("refused (409)") && out.contains("(process)"),
        "{out}{err}"
    );

    let broken = edgecam.dir.path().join("broken.toml");
    std::fs::write(&broken, "[camera]\nfps = 500\n").unwrap();
    let (code, _, err) = remote(&["validate", broken.to_str().unwrap()], ADMIN_TOKEN);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("request body:2:7") && err.contains("camera.fps"),
        "{err}"
    );

    let (code, _, err) = remote(&["get"], "wrong");
    assert_eq!(code, Some(2));
    assert!(err.contains("refused (401)"), "{err}");
}

/// SIGKILL at random moments while live changes are written: the file on
/// disk always parses and is one of the versions written, never a mix.
#[test]
fn a_kill_during_writes_never_leaves_a_torn_file() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    let mut writes = 0;
    let mut kills = 0;
    while writes < 200 {
        let edgecam = Edgecam::start(common::config());
        let path = edgecam.dir.path().join("config.toml");
        let original = std::fs::read_to_string(&path).unwrap();
        let versions: Vec<String> = (0..40)
            .map(|i| {
                original.replace(
                    "bitrate_kbps = 2000\n",
                    &format!("bitrate_kbps = {}\n", 500 + i),
                )
            })
            .collect();
        let (_, mut etag) = get_config(&edgecam);
        // The clock starts once the service answers, so a slow start on a
        // busy machine cannot use up the time before the writes begin.
        let pid = edgecam.pid();
        let kill_after = Duration::from_millis(200 + next(1500));
        let killer = std::thread::spawn(move || {
            std::thread::sleep(kill_after);
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        });
        for version in &versions {
            let reply = write(&edgecam, "PUT", &etag, version);
            if reply.status != 200 {
                break;
            }
            writes += 1;
            etag = reply.header("etag").unwrap_or_default();
        }
        killer.join().unwrap();
        kills += 1;
        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert!(
            edgecam::config::parse(&on_disk, "after SIGKILL").is_ok(),
            "a torn file:\n{on_disk}"
        );
        assert!(
            on_disk == original || versions.contains(&on_disk),
            "the file is none of the versions written:\n{on_disk}"
        );
    }
    println!("{writes} writes, {kills} SIGKILLs: the file was whole every time");
}

#[test]
fn a_resolution_change_rebuilds_and_a_broken_one_rolls_back() {
    let edgecam = Edgecam::start(common::config());
    let path = edgecam.dir.path().join("config.toml");
    let (_, etag) = get_config(&edgecam);

    // Unrelated to the video: the viewer notices nothing.
    let url = edgecam.url();
    let viewer = std::thread::spawn(move || {
        common::receive_stamped_frames(common::Player::Ffmpeg, &url, 640, 360, 5)
    });
    edgecam.wait_for_metric(RTSP_JOINS, Duration::from_secs(10), |n| n == 1.0);
    let reply = write(&edgecam, "PATCH", &etag, "[metrics]\nrate_hz = 5\n");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("\"effect\":\"live\""), "{}", reply.body);
    let etag = reply.header("etag").unwrap();
    assert_kept_playing(&viewer.join().expect("viewer"));
    assert_eq!(
        edgecam.metric(RTSP_JOINS),
        Some(1.0),
        "the viewer reconnected"
    );

    // A new size needs a new camera pipeline; a new client sees it.
    let patched = Instant::now();
    let reply = write(
        &edgecam,
        "PATCH",
        &etag,
        "[camera]\nwidth = 320\nheight = 180\n",
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body.contains("\"effect\":\"camera\""),
        "{}",
        reply.body
    );
    let stream = common::probe_stream(&edgecam.url(), "tcp");
    println!(
        "PATCH camera.width/height 640x360 → 320x180: confirmed and probed at the new size after {} ms",
        patched.elapsed().as_millis()
    );
    common::assert_h264(&stream, (320, 180));
    let etag = reply.header("etag").unwrap();
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(saved.contains("width = 320"), "{saved}");

    // An encoder this machine does not have: the new pipeline fails, the
    // old one serves again, the file stays.
    let reply = write(&edgecam, "PATCH", &etag, "[encoder]\nkind = \"v4l2\"\n");
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert!(
        reply.body.contains("rolled back") && reply.body.contains("v4l2h264enc"),
        "{}",
        reply.body
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), saved);
    let stream = common::probe_stream(&edgecam.url(), "tcp");
    common::assert_h264(&stream, (320, 180));
    assert_eq!(http("GET", &edgecam.http_url("/healthz")).status, 200);
}

#[test]
fn the_http_server_moves_to_a_new_address() {
    let edgecam = Edgecam::start(common::config());
    let (_, etag) = get_config(&edgecam);
    let port = common::free_port();
    let body = format!("[http]\nbind = \"127.0.0.1:{port}\"\n");
    let reply = write(&edgecam, "PATCH", &etag, &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let moved = format!("http://127.0.0.1:{port}/healthz");
    assert_eq!(http("GET", &moved).status, 200);
    // The old server finishes the request that moved it, then closes.
    let deadline = Instant::now() + Duration::from_secs(3);
    while http("GET", &edgecam.http_url("/healthz")).status != 0 {
        assert!(Instant::now() < deadline, "the old address still answers");
        std::thread::sleep(Duration::from_millis(50));
    }
    // And back, through the new address.
    let (_, etag) = {
        let reply = http_with(
            "GET",
            &format!("http://127.0.0.1:{port}/api/config"),
            &[&admin()],
            None,
        );
        (reply.body.clone(), reply.header("etag").unwrap())
    };
    let if_match = format!("If-Match: {etag}");
    let back = format!("[http]\nbind = \"127.0.0.1:{}\"\n", edgecam.http_port);
    let reply = http_with(
        "PATCH",
        &format!("http://127.0.0.1:{port}/api/config"),
        &[&admin(), &if_match],
        Some(&back),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(http("GET", &edgecam.http_url("/healthz")).status, 200);
}

#[test]
fn rtsp_credentials_set_remotely_are_required() {
    let edgecam = Edgecam::start(common::config());
    let (_, etag) = get_config(&edgecam);
    let reply = write(
        &edgecam,
        "PATCH",
        &etag,
        "[rtsp]\nuser = \"cam\"\npassword = \"door-2026\"\n",
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        !reply.body.contains("door-2026"),
        "the password leaked: {}",
        reply.body
    );
    let (text, _) = get_config(&edgecam);
    assert!(text.contains("password = \"<redacted>\""), "{text}");

    let anonymous = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-rtsp_transport", "tcp", &edgecam.url()])
        .output()
        .expect("ffprobe");
    assert!(!anonymous.status.success(), "played without credentials");
    assert!(
        String::from_utf8_lossy(&anonymous.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&anonymous.stderr)
    );
    let with = format!("rtsp://cam:door-2026@127.0.0.1:{}/cam", edgecam.port);
    common::assert_h264(&common::probe_stream(&with, "tcp"), (640, 360));
}
