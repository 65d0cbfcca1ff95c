//! A qemu guest running Debian's kernel with the `vivid` virtual camera,
//! for the tests that need a real V4L2 device (the host kernel has none).
//! `scripts/vm/build` makes the kernel and initramfs; the guest mounts the
//! host's root read-only, so it runs this very `edgecam` binary, and the
//! host reaches the guest's ports through loopback forwards only.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{free_port, http, BIN};

/// A "USB webcam" in the guest: a v4l2loopback node fed by a writer (a
/// shell pipeline ending in ffmpeg's v4l2 output). The writer runs while
/// the file `<name>.pause` is absent from the job directory
/// ([`Vm::pause`], [`Vm::resume`]); stopping it is an unplug as the node
/// sees it (exclusive_caps: no writer, no capture device). The same
/// machinery runs any other guest process the host starts and stops (a
/// bare gst-launch for comparison).
pub struct GuestWriter {
    pub name: &'static str,
    /// The v4l2loopback node it feeds (/dev/video10 on), or None for a
    /// process that feeds no node.
    pub device: Option<&'static str>,
    /// The shell command; [`Vm::set_command`] replaces it for the next
    /// start.
    pub command: String,
    /// Start paused (a camera plugged in later).
    pub paused: bool,
}

/// The guest side of writers, cameras and measurements, sourced by the job:
/// - `writer NAME`: runs `$JOB/NAME.cmd` in its own process group while
///   `$JOB/NAME.pause` is absent, and again whenever it ends;
/// - `camera NAME ARGS…`: runs ARGS until `$JOB/NAME.kill` appears;
/// - `measurer`: for each `$JOB/measure-N.request` holding "PROCESS SECONDS",
///   writes the CPU (% of one core) of the oldest such process over that
///   time into `$JOB/measure-N.result`.
const GUEST_HELPERS: &str = r#"writer() {
  name=$1; device=$2
  while true; do
    if [ -e "$JOB/$name.pause" ]; then sleep 0.2; continue; fi
    [ -n "$device" ] && python3 "$WRITER_RESET" "$device"
    setsid sh -c "$(cat "$JOB/$name.cmd")" >> "$JOB/$name.writer.log" 2>&1 &
    pid=$!
    while kill -0 $pid 2>/dev/null && [ ! -e "$JOB/$name.pause" ]; do sleep 0.2; done
    kill -TERM -$pid 2>/dev/null; wait $pid
  done
}
camera() {
  name=$1; shift
  "$@" &
  pid=$!
  while kill -0 $pid 2>/dev/null && [ ! -e "$JOB/$name.kill" ]; do sleep 0.2; done
  kill $pid 2>/dev/null; wait $pid
}
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
measurer() {
  while true; do
    for request in "$JOB"/measure-*.request; do
      [ -e "$request" ] || continue
      result="${request%.request}.result"
      [ -e "$result" ] && continue
      set -- $(cat "$request")
      pid=$(pgrep -o -x "$1")
      t0=$(ticks $pid); sleep "$2"; t1=$(ticks $pid)
      awk -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" -v s="$2" \
        'BEGIN { printf "%.1f", (b - a) / hz / s * 100 }' > "$result.tmp" && mv "$result.tmp" "$result"
    done
    sleep 0.2
  done
}
measurer &
"#;

/// One edgecam instance in the guest.
pub struct GuestCamera {
    pub name: &'static str,
    /// The whole config.toml.
    pub config: String,
    /// Guest ports to forward (RTSP, HTTP).
    pub ports: [u16; 2],
    /// Extra environment, `NAME=value …` (e.g. GST_DEBUG while exploring).
    pub env: &'static str,
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
        .args(["-nic", &user_nic(forwards)])
        .stdin(Stdio::null())
        .stdout(console)
        .stderr(Stdio::null());
    command
}

/// qemu's user network for a guest that reaches nothing but the loopback
/// forwards in `forwards` (guest port → host port).
pub fn user_nic(forwards: &HashMap<u16, u16>) -> String {
    let mut nic = "user,model=virtio-net-pci,restrict=on".to_owned();
    for (guest, host) in forwards {
        nic.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
    }
    nic
}

impl Vm {
    /// Whether the guest image exists. Without it the VM tests say so loudly
    /// and pass, unless EDGECAM_REQUIRE_VM is set (scripts/test sets it,
    /// after building the image), where a missing image is a failure.
    pub fn available() -> bool {
        let present = ["vmlinuz", "initramfs.cpio.gz"]
            .iter()
            .all(|f| image_dir().join(f).exists());
        super::prerequisite(
            present,
            "EDGECAM_REQUIRE_VM",
            "the VM image is missing: run scripts/vm/build",
        )
    }

    /// Boots a guest with `vivid` loaded with `vivid_options` (space
    /// separated) and starts each camera's edgecam in it.
    pub fn boot(vivid_options: &str, cameras: &[GuestCamera]) -> Self {
        Self::boot_with(vivid_options, &[], cameras)
    }

    /// The same with v4l2loopback nodes fed by `writers` (one node per
    /// writer, at the writers' devices, which must be /dev/video10 on).
    pub fn boot_with(
        vivid_options: &str,
        writers: &[GuestWriter],
        cameras: &[GuestCamera],
    ) -> Self {
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
             GST_REGISTRY={job}/registry.bin GST_REGISTRY_UPDATE=no JOB={job} \
             WRITER_RESET={reset}\n{GUEST_HELPERS}",
            reset = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webcam-reset.py")
        );
        for writer in writers {
            if writer.paused {
                std::fs::write(dir.path().join(format!("{}.pause", writer.name)), "")
                    .expect("write a pause file");
            }
            std::fs::write(
                dir.path().join(format!("{}.cmd", writer.name)),
                &writer.command,
            )
            .expect("write a writer's command");
            script.push_str(&format!(
                "writer {} {} &\n",
                writer.name,
                writer.device.unwrap_or("")
            ));
        }
        let mut forwards = HashMap::new();
        for camera in cameras {
            std::fs::write(
                dir.path().join(format!("{}.toml", camera.name)),
                &camera.config,
            )
            .expect("write guest config");
            script.push_str(&format!(
                "camera {name} env {env} {BIN} --config {job}/{name}.toml run > {job}/{name}.log 2>&1 &\n",
                env = camera.env,
                name = camera.name
            ));
            for port in camera.ports {
                forwards.insert(port, free_port());
            }
        }
        script.push_str("wait\n");
        std::fs::write(dir.path().join("job.sh"), script).expect("write job");

        let nodes: Vec<(&str, &str)> = writers
            .iter()
            .filter_map(|w| Some((w.device?.trim_start_matches("/dev/video"), w.name)))
            .collect();
        let loopback = if nodes.is_empty() {
            String::new()
        } else {
            format!(
                " edgecam.loopback=devices={}+exclusive_caps={}+video_nr={}+card_label={}",
                nodes.len(),
                vec!["1"; nodes.len()].join(","),
                nodes.iter().map(|n| n.0).collect::<Vec<_>>().join(","),
                nodes.iter().map(|n| n.1).collect::<Vec<_>>().join(",")
            )
        };
        let child = qemu(
            dir.path(),
            &format!(
                "quiet panic=-1 edgecam.job={job} edgecam.vivid={}{loopback}",
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

    /// The command writer `name` runs from its next start.
    pub fn set_command(&self, name: &str, command: &str) {
        std::fs::write(self.dir.path().join(format!("{name}.cmd")), command).expect("command file");
    }

    /// Stops the edgecam `name` for good.
    pub fn stop_camera(&self, name: &str) {
        std::fs::write(self.dir.path().join(format!("{name}.kill")), "").expect("kill file");
    }

    /// The CPU, in % of one core, the guest process `process` (its name)
    /// uses over `seconds`, measured in the guest.
    pub fn measure_cpu(&self, process: &str, seconds: u32) -> f64 {
        let n = std::fs::read_dir(self.dir.path())
            .map(|entries| entries.flatten().count())
            .unwrap_or(0);
        let request = self.dir.path().join(format!("measure-{n}.request"));
        std::fs::write(&request, format!("{process} {seconds}")).expect("measure request");
        let result = request.with_extension("result");
        let deadline = Instant::now() + Duration::from_secs(u64::from(seconds) + 30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&result) {
                return text.trim().parse().unwrap_or(f64::NAN);
            }
            assert!(Instant::now() < deadline, "no measurement of {process}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the writer `name` (its camera disappears, as if unplugged).
    pub fn pause(&self, name: &str) {
        std::fs::write(self.dir.path().join(format!("{name}.pause")), "").expect("pause file");
    }

    /// Starts the writer `name` again.
    pub fn resume(&self, name: &str) {
        let _ = std::fs::remove_file(self.dir.path().join(format!("{name}.pause")));
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

/// An RTSP viewer kept connected for the whole test: ffmpeg decoding to
/// grey frames, each recorded with its arrival time and mean luma.
pub struct Viewer {
    child: Child,
    frames: Arc<Mutex<Vec<(Instant, f64)>>>,
}

impl Viewer {
    pub fn connect(url: &str, width: usize, height: usize) -> Self {
        let mut child = Command::new("ffmpeg")
            .args(["-v", "error", "-rtsp_transport", "tcp", "-i", url])
            .args([
                "-an",
                "-fps_mode",
                "passthrough",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "gray",
                "-",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg");
        let mut stdout = child.stdout.take().expect("ffmpeg stdout");
        let frames = Arc::new(Mutex::new(Vec::new()));
        let sink = frames.clone();
        std::thread::spawn(move || {
            let mut frame = vec![0u8; width * height];
            while stdout.read_exact(&mut frame).is_ok() {
                let mean = frame.iter().map(|&y| f64::from(y)).sum::<f64>() / frame.len() as f64;
                sink.lock().expect("frames").push((Instant::now(), mean));
            }
        });
        Self { child, frames }
    }

    pub fn still_connected(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Mean luma of the frames received in the last `span`.
    pub fn recent_luma(&self, span: Duration) -> Option<f64> {
        let frames = self.frames.lock().expect("frames");
        let recent: Vec<f64> = frames
            .iter()
            .filter(|(at, _)| at.elapsed() < span)
            .map(|(_, y)| *y)
            .collect();
        (!recent.is_empty()).then(|| recent.iter().sum::<f64>() / recent.len() as f64)
    }

    /// The longest wait between two frames since `from`.
    pub fn longest_gap_since(&self, from: Instant) -> Duration {
        let frames = self.frames.lock().expect("frames");
        let times: Vec<Instant> = frames
            .iter()
            .map(|(at, _)| *at)
            .filter(|at| *at >= from)
            .collect();
        times
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default()
    }

    pub fn count(&self) -> usize {
        self.frames.lock().expect("frames").len()
    }

    /// Frames per second received over the last `span`.
    pub fn rate_over(&self, span: Duration) -> f64 {
        let frames = self.frames.lock().expect("frames");
        let recent = frames.iter().filter(|(at, _)| at.elapsed() < span).count();
        recent as f64 / span.as_secs_f64()
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
