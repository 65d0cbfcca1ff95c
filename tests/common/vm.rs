//! A qemu guest running Debian's kernel with the `vivid` virtual camera,
//! for the tests that need a real V4L2 device (the host kernel has none).
//! `scripts/vm/build` makes the kernel and initramfs; the guest mounts the
//! host's root read-only, so it runs this very `edgecam` binary, and the
//! host reaches the guest's ports through loopback forwards only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, http, BIN};

/// One edgecam instance in the guest.
pub struct GuestCamera {
    pub name: &'static str,
    /// The whole config.toml.
    pub config: String,
    /// Guest ports to forward (RTSP, HTTP).
    pub ports: [u16; 2],
}

pub struct Vm {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    /// Guest port → host loopback port.
    forwards: HashMap<u16, u16>,
    pub booted: Instant,
}

pub fn image_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/vm")
}

/// The qemu both guests run: Debian's kernel and the initramfs from
/// scripts/vm/build under TCG (KVM does not work on this machine), 2 vCPUs,
/// 1 GiB, the serial console into `dir/console.log`, and user networking
/// that reaches nothing but the loopback forwards in `forwards` (guest port
/// → host port). `append` is the rest of the kernel command line; the caller
/// adds its disks or shares and spawns it.
pub fn qemu(dir: &Path, append: &str, forwards: &HashMap<u16, u16>) -> Command {
    let mut nic = "user,model=virtio-net-pci,restrict=on".to_owned();
    for (guest, host) in forwards {
        nic.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
    }
    let images = image_dir();
    let console = std::fs::File::create(dir.join("console.log")).expect("console log");
    let mut command = Command::new("qemu-system-x86_64");
    command
        .args(["-accel", "tcg,thread=multi", "-cpu", "max"])
        .args(["-smp", "2", "-m", "1024"])
        .args(["-nodefaults", "-nographic", "-no-reboot"])
        .args(["-monitor", "none", "-serial", "stdio"])
        .arg("-kernel")
        .arg(images.join("vmlinuz"))
        .arg("-initrd")
        .arg(images.join("initramfs.cpio.gz"))
        .arg("-append")
        .arg(format!("console=ttyS0 {append}"))
        .args(["-nic", &nic])
        .stdin(Stdio::null())
        .stdout(console)
        .stderr(Stdio::null());
    command
}

impl Vm {
    /// Whether the guest image exists. Without it the VM tests say so loudly
    /// and pass, unless EDGECAM_REQUIRE_VM is set (scripts/test sets it,
    /// after building the image), where a missing image is a failure.
    pub fn available() -> bool {
        let present = ["vmlinuz", "initramfs.cpio.gz"]
            .iter()
            .all(|f| image_dir().join(f).exists());
        if !present {
            let message = "the VM image is missing: run scripts/vm/build";
            assert!(
                std::env::var_os("EDGECAM_REQUIRE_VM").is_none(),
                "{message}"
            );
            eprintln!("SKIPPED: {message}");
        }
        present
    }

    /// Boots a guest with `vivid` loaded with `vivid_options` (space
    /// separated) and starts each camera's edgecam in it.
    pub fn boot(vivid_options: &str, cameras: &[GuestCamera]) -> Self {
        let dir = tempfile::tempdir().expect("job dir");
        let job = dir.path().to_str().expect("utf-8 path").to_owned();
        // The guest would spend a long time scanning GStreamer's plugins
        // under emulation; the host makes the registry (same files, same
        // paths) in a second.
        let registry = dir.path().join("registry.bin");
        let status = Command::new("gst-inspect-1.0")
            .arg("v4l2src")
            .env("GST_REGISTRY", &registry)
            .stdout(Stdio::null())
            .status()
            .expect("gst-inspect-1.0 (package gstreamer1.0-tools)");
        assert!(
            status.success(),
            "gst-inspect-1.0 could not build a registry"
        );

        let mut script = format!(
            "export HOME=/run XDG_RUNTIME_DIR=/run NO_COLOR=1 RUST_LOG=info \
             GST_REGISTRY={job}/registry.bin GST_REGISTRY_UPDATE=no\n"
        );
        let mut forwards = HashMap::new();
        for camera in cameras {
            std::fs::write(
                dir.path().join(format!("{}.toml", camera.name)),
                &camera.config,
            )
            .expect("write guest config");
            script.push_str(&format!(
                "{BIN} --config {job}/{name}.toml run > {job}/{name}.log 2>&1 &\n",
                name = camera.name
            ));
            for port in camera.ports {
                forwards.insert(port, free_port());
            }
        }
        script.push_str("wait\n");
        std::fs::write(dir.path().join("job.sh"), script).expect("write job");

        let child = qemu(
            dir.path(),
            &format!(
                "quiet panic=-1 edgecam.job={job} edgecam.vivid={}",
                vivid_options.replace(' ', "+")
            ),
            &forwards,
        )
        .args([
            "-virtfs",
            "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap",
        ])
        .arg("-virtfs")
        .arg(format!(
            "local,path={job},mount_tag=job,security_model=none,multidevs=remap"
        ))
        .spawn()
        .expect("qemu-system-x86_64 (package qemu-system-x86)");
        Self {
            child: Some(child),
            dir,
            forwards,
            booted: Instant::now(),
        }
    }

    /// The host port that reaches `guest_port`.
    pub fn port(&self, guest_port: u16) -> u16 {
        self.forwards[&guest_port]
    }

    pub fn http_url(&self, guest_port: u16, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port(guest_port))
    }

    pub fn rtsp_url(&self, guest_port: u16) -> String {
        format!("rtsp://127.0.0.1:{}/cam", self.port(guest_port))
    }

    /// Waits until the edgecam behind `http_port` reports frames flowing;
    /// returns the time since boot.
    pub fn wait_healthy(&mut self, http_port: u16, limit: Duration) -> Duration {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("the VM stopped ({status}):\n{}", self.diagnostics());
                }
            }
            if http("GET", &self.http_url(http_port, "/healthz")).status == 200 {
                return self.booted.elapsed();
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "edgecam in the VM was not healthy within {limit:?}:\n{}",
            self.diagnostics()
        );
    }

    /// A file the guest wrote into the job directory.
    pub fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// The console and every camera's log, for failure messages.
    pub fn diagnostics(&self) -> String {
        let mut text = format!("--- console\n{}", self.file("console.log"));
        for entry in std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".log") && name != "console.log" {
                text.push_str(&format!("\n--- {name}\n{}", self.file(&name)));
            }
        }
        text
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The value of the Prometheus series `name` (with its labels, if any:
/// `edgecam_clients{output="rtsp"}`) in `/metrics` text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.trim().parse().ok())?
        })
}
