//! The flashable Raspberry Pi image (scripts/image) booted as an arm64
//! machine: qemu-system-aarch64's `virt` board under TCG, with the image's
//! own Debian arm64 kernel and initrd and the whole image as its disk —
//! written as a user writes a card: a copy, bigger than the image, with
//! `edgecam.toml` and a Wi-Fi `wpa_supplicant.conf` put on its boot
//! partition from this machine (mtools, as from any laptop). The kernel's
//! `vivid` camera stands in for a USB camera.
//!
//! Checked from the host through loopback forwards: edgecam started by
//! systemd on its own, `/healthz`, the dashboard, H.264 over RTSP read by
//! ffprobe, a live bitrate change through the config API. In the guest
//! (through the qemu guest agent): the unit active with its watchdog
//! armed, the boot partition's files taken (configuration, Wi-Fi), SSH off,
//! the root filesystem grown to the card, the name edgecam.local and the
//! RTSP and web services announced over mDNS.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::systemd_vm::{forwards, SystemdVm};
use common::vm::user_nic;

const RTSP: u16 = 8554;
const WEB: u16 = 8080;
/// Power-on to the guest agent answering, under TCG on a shared machine.
const BOOT_LIMIT: Duration = Duration::from_secs(400);

fn image_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/image")
}

/// Whether scripts/image has run; a failure without it when
/// EDGECAM_REQUIRE_IMAGE is set (scripts/test sets it after building it).
fn available() -> bool {
    let present = ["edgecam-rpi-arm64.img", "vmlinuz", "initrd.img"]
        .iter()
        .all(|f| image_dir().join(f).exists());
    common::prerequisite(
        present,
        "EDGECAM_REQUIRE_IMAGE",
        "the Raspberry Pi image is missing: run scripts/image",
    )
}

fn run(command: &mut Command) {
    let status = command.status().expect("a host tool");
    assert!(status.success(), "{command:?}: {status}");
}

/// What a user writes to the boot partition before the first boot.
fn edgecam_toml() -> String {
    format!(
        "# Written on the card's boot partition by tests/image.rs.\n\
         [auth]\nadmin_token = \"{}\"\n\n\
         [camera]\nsource = \"v4l2\"\ndevice = \"/dev/video0\"\nwidth = 640\nheight = 360\nfps = 30\n\n\
         [encoder]\nkind = \"x264\"\nkeyframe_interval = 30\nbitrate_kbps = 800\n",
        common::ADMIN_TOKEN
    )
}

/// The card: a copy of the image with the user's files on its boot
/// partition (at 4 MiB), 1 GiB bigger than the image.
fn write_card(dir: &std::path::Path) -> (PathBuf, u64) {
    let image = image_dir().join("edgecam-rpi-arm64.img");
    let card = dir.join("card.img");
    run(Command::new("cp")
        .args(["--sparse=always", "--reflink=auto"])
        .arg(&image)
        .arg(&card));
    let config = dir.join("edgecam.toml");
    std::fs::write(&config, edgecam_toml()).expect("edgecam.toml");
    let wifi = dir.join("wpa_supplicant.conf");
    std::fs::write(
        &wifi,
        "country=DE\nnetwork={\n    ssid=\"lab\"\n    psk=\"not a real password\"\n}\n",
    )
    .expect("wpa_supplicant.conf");
    let partition = format!("{}@@4M", card.display());
    for file in [&config, &wifi] {
        run(Command::new("mcopy")
            .args(["-o", "-i", &partition])
            .arg(file)
            .arg("::/"));
    }
    let image_bytes = std::fs::metadata(&image).expect("image").len();
    run(Command::new("truncate").args(["-s", "+1G"]).arg(&card));
    (card, image_bytes)
}

#[test]
fn the_raspberry_pi_image_boots_as_an_arm64_machine_and_streams() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (card, image_bytes) = write_card(dir.path());
    let forwards = forwards(&[RTSP, WEB]);
    let console = std::fs::File::create(dir.path().join("console.log")).expect("console");
    let mut qemu = Command::new("qemu-system-aarch64");
    qemu.args([
        "-machine",
        "virt",
        "-accel",
        "tcg,thread=multi",
        "-cpu",
        "cortex-a72",
    ])
    .args(["-smp", "2", "-m", "1024"])
    .args(["-nodefaults", "-nographic", "-no-reboot"])
    .args(["-monitor", "none", "-serial", "stdio"])
    .arg("-kernel")
    .arg(image_dir().join("vmlinuz"))
    .arg("-initrd")
    .arg(image_dir().join("initrd.img"))
    // The root as the Pi's cmdline.txt names it (by label), qemu's
    // serial console, and vivid loaded as a USB camera would be.
    .args([
        "-append",
        "root=LABEL=RASPIROOT rw console=ttyAMA0 net.ifnames=0 panic=-1 \
             modules-load=vivid vivid.n_devs=1 vivid.node_types=0x1",
    ])
    .arg("-drive")
    .arg(format!("file={},if=virtio,format=raw", card.display()))
    .args(["-nic", &user_nic(&forwards)])
    .stdin(Stdio::null())
    .stdout(console)
    .stderr(Stdio::null());
    let vm = SystemdVm::start(dir, forwards, qemu, BOOT_LIMIT);
    let agent_at = vm.booted;

    // From the host: healthy, the dashboard, the first RTSP frame.
    let web = |path: &str| format!("http://127.0.0.1:{}{path}", vm.host_port(WEB));
    let deadline = vm.started + BOOT_LIMIT;
    while common::http("GET", &web("/healthz")).status != 200 {
        assert!(
            Instant::now() < deadline,
            "edgecam never answered /healthz:\n{}\n{}",
            vm.exec("journalctl -b --no-pager | tail -n 80").stdout,
            vm.serial_log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let healthy_at = vm.started.elapsed();
    let rtsp = format!("rtsp://127.0.0.1:{}/cam", vm.host_port(RTSP));
    let stream = loop {
        match common::try_probe_stream(&rtsp, "tcp") {
            Ok(stream) => break stream,
            Err(error) => assert!(Instant::now() < deadline, "no RTSP video: {error}"),
        }
    };
    let first_frame_at = vm.started.elapsed();
    common::assert_h264(&stream, (640, 360));
    let page = common::http("GET", &web("/"));
    assert_eq!(page.status, 200);
    assert!(page.body.contains("edgecam"), "{}", page.body);

    // The configuration the card carried is the one running; the bitrate
    // changes live through the API.
    let config = common::http("GET", &web("/api/config"));
    assert!(
        config.body.contains("Written on the card's boot partition"),
        "{}",
        config.body
    );
    let etag = config.header("etag").expect("ETag");
    let auth = format!("Authorization: Bearer {}", common::ADMIN_TOKEN);
    let changed = common::http_with(
        "PATCH",
        &web("/api/config"),
        &[&auth, &format!("If-Match: {etag}")],
        Some("[encoder]\nbitrate_kbps = 400\n"),
    );
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert!(
        changed.body.contains("\"effect\":\"live\""),
        "{}",
        changed.body
    );

    // In the guest: the unit as systemd sees it, watchdog armed.
    let unit = vm
        .exec(
            "systemctl show edgecam -p ActiveState -p SubState -p WatchdogUSec \
             -p WatchdogTimestampMonotonic -p NRestarts -p ActiveEnterTimestampMonotonic",
        )
        .stdout;
    let field = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(field("ActiveState"), "active", "{unit}");
    assert_eq!(field("SubState"), "running", "{unit}");
    assert!(
        !field("WatchdogUSec").is_empty() && field("WatchdogUSec") != "0",
        "the watchdog is not armed: {unit}"
    );
    // Pinged: the watchdog's timestamp is that of the last keep-alive.
    assert!(
        field("WatchdogTimestampMonotonic")
            .parse::<u64>()
            .unwrap_or(0)
            > 0,
        "no watchdog keep-alive yet: {unit}"
    );
    assert_eq!(field("NRestarts"), "0", "{unit}");
    let ready_s = field("ActiveEnterTimestampMonotonic")
        .parse::<f64>()
        .unwrap_or(0.0)
        / 1e6;
    let status = vm
        .exec("systemctl status edgecam --no-pager | head -n 5")
        .stdout;
    println!("image: {status}");
    let chain = vm
        .exec(
            "systemd-analyze critical-chain edgecam.service --no-pager; \
             systemd-analyze blame --no-pager | head -n 12",
        )
        .stdout;
    println!("image: what the boot waited for:\n{chain}");

    // The boot partition's files were taken: the configuration, Wi-Fi
    // (moved off the FAT, readable by root only), and SSH stays off.
    let checks = vm.exec(
        "cmp /boot/firmware/edgecam.toml /var/lib/edgecam-image/edgecam.toml && echo config-taken; \
         test -e /boot/firmware/wpa_supplicant.conf || echo wifi-moved-off; \
         stat -c %a /etc/wpa_supplicant/wpa_supplicant-wlan0.conf; \
         test -L /etc/systemd/system/sys-subsystem-net-devices-wlan0.device.wants/wpa_supplicant@wlan0.service \
           && echo wifi-when-wlan0-appears; \
         systemctl is-enabled ssh; systemctl is-active ssh; \
         hostname; grep -o 'root=[^ ]*' /boot/firmware/cmdline.txt; grep -c arm_64bit=1 /boot/firmware/config.txt",
    );
    let said: Vec<&str> = checks.stdout.lines().collect();
    assert_eq!(
        said,
        [
            "config-taken",
            "wifi-moved-off",
            "600",
            "wifi-when-wlan0-appears",
            "disabled",
            "inactive",
            "edgecam",
            "root=LABEL=RASPIROOT",
            "1"
        ],
        "{checks:?}"
    );

    // The root filesystem grew to the card (1 GiB more than the image).
    let root_bytes: u64 = vm
        .exec("df --output=size -B1 / | tail -n1")
        .stdout
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(
        root_bytes > image_bytes,
        "the root filesystem ({root_bytes} bytes) did not grow past the image ({image_bytes})"
    );

    // On the LAN as edgecam.local, its stream and page announced.
    let mdns = vm.exec_for(
        "avahi-resolve -4 -n edgecam.local; avahi-browse -rtp _rtsp._tcp | grep '^=' | head -n1; \
         avahi-browse -rtp _http._tcp | grep '^=' | head -n1",
        Duration::from_secs(60),
    );
    assert!(mdns.stdout.contains("edgecam.local\t10.0.2.15"), "{mdns:?}");
    assert!(mdns.stdout.contains(";8554;"), "{mdns:?}");
    assert!(mdns.stdout.contains(";8080;"), "{mdns:?}");

    println!(
        "image: {:.0} MB raw; under qemu-system-aarch64 (TCG, cortex-a72 x2): guest agent at \
         {:.1} s, edgecam READY {ready_s:.1} s after the kernel started, /healthz 200 at {:.1} s, \
         first RTSP frame at {:.1} s after power-on; root grown to {:.0} MB",
        image_bytes as f64 / 1e6,
        agent_at.as_secs_f64(),
        healthy_at.as_secs_f64(),
        first_frame_at.as_secs_f64(),
        root_bytes as f64 / 1e6
    );
}
