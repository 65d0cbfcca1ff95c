//! A qemu guest running Debian bookworm with systemd as PID 1 and the
//! edgecam .deb installed (its service disabled), with the kernel's `vivid`
//! virtual camera, for the tests of edgecam as a system service: the unit,
//! udev's device permissions, the package's user. `scripts/vm/build` makes
//! the kernel and initramfs, `scripts/vm/build-systemd DEB` the disk; the
//! disk is booted as a snapshot, so every guest starts from the same state
//! and nothing it writes survives.
//!
//! The test runs commands in the guest through the qemu guest agent
//! (`guest-exec` over a virtio serial port, spoken here as QGA's JSON
//! protocol on a unix socket) and reaches the guest's ports through loopback
//! forwards only, like tests/common/vm.rs.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Child;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use super::free_port;
use super::vm::image_dir;

/// vivid as the tests want it by default: one capture node (/dev/video0)
/// whose first input is a webcam (640x360@30 runs at full rate under
/// emulation; 1280x720 only at 12.5 fps).
pub const VIVID_WEBCAM: &str = "n_devs=1 node_types=0x1";

/// How long the guest may take from qemu's start to the agent answering.
const BOOT_LIMIT: Duration = Duration::from_secs(120);
/// How long one command may run by default.
const EXEC_LIMIT: Duration = Duration::from_secs(120);
const NO_ANSWER: &str = "no answer in time";

/// What a command run in the guest did.
#[derive(Debug, Clone)]
pub struct GuestOutput {
    /// The exit code; 128 + N when killed by signal N, as a shell says.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl GuestOutput {
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

pub struct SystemdVm {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    /// Guest port → host loopback port.
    forwards: HashMap<u16, u16>,
    agent: Mutex<Agent>,
    /// When qemu started.
    pub started: Instant,
    /// From qemu's start until the guest agent answered: the boot time as
    /// a test sees it.
    pub booted: Duration,
}

impl SystemdVm {
    /// Whether the kernel, initramfs and disk exist. Without them the tests
    /// say so loudly and pass, unless EDGECAM_REQUIRE_VM is set, where a
    /// missing image is a failure.
    pub fn available() -> bool {
        let images = image_dir();
        let present = ["vmlinuz", "initramfs.cpio.gz", "systemd/root.img"]
            .iter()
            .all(|f| images.join(f).exists());
        if present {
            warn_if_older_than_the_package(&images.join("systemd/root.img"));
        }
        super::prerequisite(
            present,
            "EDGECAM_REQUIRE_VM",
            "the systemd VM image is missing: run scripts/vm/build, \
             then scripts/vm/build-systemd target/deb/edgecam_*_amd64.deb",
        )
    }

    /// Boots the guest with the default camera and forwards each of
    /// `guest_ports` from a free loopback port; returns once the guest
    /// agent answers (systemd is then well into the boot, not necessarily
    /// done: `systemctl is-system-running --wait` waits for that).
    pub fn boot(guest_ports: &[u16]) -> Self {
        Self::boot_with(VIVID_WEBCAM, guest_ports)
    }

    /// The same with `vivid_options` (space separated) for the camera.
    pub fn boot_with(vivid_options: &str, guest_ports: &[u16]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let forwards = forwards(guest_ports);
        let mut qemu = super::vm::qemu(
            dir.path(),
            &format!(
                "panic=-1 edgecam.root=/dev/vda edgecam.vivid={}",
                vivid_options.replace(' ', "+")
            ),
            &forwards,
        );
        // snapshot=on: the guest's writes go to a temporary overlay,
        // never into the image.
        qemu.arg("-drive").arg(format!(
            "file={},if=virtio,format=raw,snapshot=on",
            image_dir().join("systemd/root.img").display()
        ));
        Self::start(dir, forwards, qemu, BOOT_LIMIT)
    }

    /// Starts `qemu` (a machine whose serial console goes to
    /// `dir/console.log`, with `forwards` as its loopback forwards) with the
    /// guest agent's port added, and waits up to `limit` for the agent to
    /// answer. Any Debian guest with qemu-guest-agent will do: the amd64
    /// guest above, the arm64 Raspberry Pi image (tests/image.rs).
    pub fn start(
        dir: tempfile::TempDir,
        forwards: HashMap<u16, u16>,
        mut qemu: std::process::Command,
        limit: Duration,
    ) -> Self {
        let socket = dir.path().join("qga.sock");
        let child = qemu
            .args(["-device", "virtio-serial-pci"])
            .arg("-chardev")
            .arg(format!(
                "socket,id=qga,path={},server=on,wait=off",
                socket.display()
            ))
            .args([
                "-device",
                "virtserialport,chardev=qga,name=org.qemu.guest_agent.0",
            ])
            .spawn()
            .expect("qemu (packages qemu-system-x86, qemu-system-arm)");
        let started = Instant::now();
        let mut vm = Self {
            child: Some(child),
            dir,
            forwards,
            agent: Mutex::new(Agent::default()),
            started,
            booted: Duration::ZERO,
        };
        let agent = vm.connect_agent(&socket, limit);
        vm.agent = Mutex::new(agent);
        vm.booted = started.elapsed();
        vm
    }

    /// Connects to qemu's end of the agent's port and synchronises with the
    /// agent. Until the agent runs in the guest, what is written to the
    /// socket waits in qemu, unanswered; each try therefore asks with a new
    /// id, and once one is answered a last exchange with a fresh id drains
    /// the answers to the earlier tries.
    fn connect_agent(&mut self, socket: &Path, limit: Duration) -> Agent {
        let deadline = self.started + limit;
        let mut agent = Agent::default();
        while Instant::now() < deadline {
            self.assert_running();
            if agent.stream.is_none() {
                match UnixStream::connect(socket) {
                    Ok(stream) => agent.stream = Some(stream),
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(200));
                        continue;
                    }
                }
            }
            match agent.sync(Duration::from_secs(2)) {
                Ok(()) => {
                    if let Err(error) = agent.sync(Duration::from_secs(30)) {
                        panic!(
                            "the guest agent answered once, then not ({error}):\n{}",
                            self.serial_log()
                        );
                    }
                    return agent;
                }
                Err(error) if error != NO_ANSWER => {
                    // The socket broke: connect again.
                    agent = Agent::default();
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(_) => {}
            }
        }
        panic!(
            "the guest agent did not answer within {limit:?} of qemu's start:\n{}",
            self.serial_log()
        );
    }

    /// The host port that reaches `guest_port`.
    pub fn host_port(&self, guest_port: u16) -> u16 {
        *self
            .forwards
            .get(&guest_port)
            .unwrap_or_else(|| panic!("guest port {guest_port} is not forwarded"))
    }

    /// Runs `/bin/sh -c command` in the guest as root and waits for it
    /// (up to 120 s). The output is captured: a command that leaves a
    /// process behind holding its stdout or stderr open does not end until
    /// that process does, so redirect what you start in the background.
    pub fn exec(&self, command: &str) -> GuestOutput {
        self.exec_for(command, EXEC_LIMIT)
    }

    /// `exec` with a time limit of its own.
    pub fn exec_for(&self, command: &str, limit: Duration) -> GuestOutput {
        let mut agent = self.agent.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        // guest-exec runs a program by its full path, with no shell.
        let reply = agent.call(
            "guest-exec",
            json!({ "path": "/bin/sh", "arg": ["-c", command], "capture-output": true }),
            Duration::from_secs(30),
        );
        let pid = match reply {
            Ok(reply) => reply["pid"].as_i64().expect("guest-exec pid"),
            Err(error) => panic!("guest-exec `{command}`: {error}\n{}", self.serial_log()),
        };
        loop {
            let status = agent
                .call(
                    "guest-exec-status",
                    json!({ "pid": pid }),
                    Duration::from_secs(30),
                )
                .unwrap_or_else(|error| {
                    panic!(
                        "guest-exec-status `{command}`: {error}\n{}",
                        self.serial_log()
                    )
                });
            if status["exited"].as_bool() == Some(true) {
                let text = |key: &str| {
                    let data = status[key].as_str().unwrap_or_default();
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(data)
                        .unwrap_or_else(|e| panic!("{key} of `{command}`: {e}"));
                    String::from_utf8_lossy(&bytes).into_owned()
                };
                let code = match (status["exitcode"].as_i64(), status["signal"].as_i64()) {
                    (Some(code), _) => code as i32,
                    (None, Some(signal)) => 128 + signal as i32,
                    (None, None) => -1,
                };
                return GuestOutput {
                    status: code,
                    stdout: text("out-data"),
                    stderr: text("err-data"),
                };
            }
            assert!(
                started.elapsed() < limit,
                "`{command}` did not end within {limit:?} in the guest"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Everything the guest wrote to its serial console so far: the kernel,
    /// the initramfs and systemd's boot messages.
    pub fn serial_log(&self) -> String {
        let bytes = std::fs::read(self.dir.path().join("console.log")).unwrap_or_default();
        format!("--- serial console\n{}", String::from_utf8_lossy(&bytes))
    }

    fn assert_running(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the VM stopped ({status}):\n{}", self.serial_log());
            }
        }
    }
}

/// A free loopback port for each of `guest_ports`: guest port → host port.
pub fn forwards(guest_ports: &[u16]) -> HashMap<u16, u16> {
    guest_ports
        .iter()
        .map(|&guest| (guest, free_port()))
        .collect()
}

/// The disk holds the .deb it was built from, not the code being tested:
/// say so when a newer package exists (the guest then runs the old one).
fn warn_if_older_than_the_package(image: &Path) {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let Some(image_time) = modified(image) else {
        return;
    };
    let debs = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/deb");
    for entry in std::fs::read_dir(debs).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.ends_with("_amd64.deb") && modified(&path).is_some_and(|t| t > image_time) {
            eprintln!(
                "NOTE: {} is newer than the systemd VM's disk, which still holds an older \
                 package: run scripts/vm/build-systemd {}",
                path.display(),
                path.display()
            );
        }
    }
}

impl Drop for SystemdVm {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The host's end of the guest agent's channel: one JSON command at a
/// time, each answered by one JSON line.
#[derive(Default)]
struct Agent {
    stream: Option<UnixStream>,
    /// Bytes read past the last line taken.
    pending: Vec<u8>,
    next_id: u64,
}

impl Agent {
    /// guest-sync-delimited with a new id: the 0xFF sent first resets the
    /// agent's parser (whatever half a command it holds), and the agent puts
    /// 0xFF before its answer, so what came before it is stale and dropped.
    fn sync(&mut self, limit: Duration) -> Result<(), String> {
        self.next_id += 1;
        // Unique across runs too, so an answer left from another
        // connection never matches.
        let id = u64::from(std::process::id()) * 1_000_000 + self.next_id;
        let command = json!({ "execute": "guest-sync-delimited", "arguments": { "id": id } });
        let mut message = vec![0xFF];
        message.extend(command.to_string().into_bytes());
        message.push(b'\n');
        self.write(&message)?;
        let deadline = Instant::now() + limit;
        loop {
            let line = self.read_line(deadline)?;
            let text = line.strip_prefix(&[0xFF]).unwrap_or(&line);
            if let Ok(reply) = serde_json::from_slice::<Value>(text) {
                if reply["return"].as_u64() == Some(id) {
                    return Ok(());
                }
            }
        }
    }

    /// Runs one command; its `return` value, or the agent's error.
    fn call(&mut self, execute: &str, arguments: Value, limit: Duration) -> Result<Value, String> {
        let command = json!({ "execute": execute, "arguments": arguments });
        let mut message = command.to_string().into_bytes();
        message.push(b'\n');
        self.write(&message)?;
        let deadline = Instant::now() + limit;
        loop {
            let line = self.read_line(deadline)?;
            let Ok(reply) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            if let Some(value) = reply.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = reply.get("error") {
                return Err(format!("the guest agent answered {error}"));
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        let stream = self.stream.as_mut().ok_or("not connected")?;
        stream
            .write_all(bytes)
            .map_err(|e| format!("writing to the agent: {e}"))
    }

    /// The next line from the agent, without its newline.
    fn read_line(&mut self, deadline: Instant) -> Result<Vec<u8>, String> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line = self.pending[..end].to_vec();
                self.pending.drain(..=end);
                return Ok(line);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(NO_ANSWER.to_owned());
            }
            let stream = self.stream.as_mut().ok_or("not connected")?;
            stream
                .set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            let mut chunk = [0u8; 65536];
            match stream.read(&mut chunk) {
                Ok(0) => return Err("the agent's socket closed".to_owned()),
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(NO_ANSWER.to_owned())
                }
                Err(e) => return Err(format!("reading from the agent: {e}")),
            }
        }
    }
}
