# Installs what edgecam needs from the distribution's packages, only when it
# is missing. Sourced by scripts/run and scripts/test; works on Debian 12,
# Ubuntu and Raspberry Pi OS (as root, or through sudo).

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
APT_UPDATED=""

# Building and running: the GStreamer libraries edgecam links, the plugins
# holding the elements it creates (videotestsrc, v4l2src, jpegdec, x264enc,
# openh264enc, h264parse, rtph264pay; avdec_h264 for cameras sending H.264;
# textoverlay for the NO SIGNAL slate, which Debian ships in gstreamer1.0-x;
# rtspclientsink, for publishing to RTSP servers, in gstreamer1.0-rtsp),
# and libclang, which the v4l crate's bindgen needs to read the kernel's
# V4L2 headers.
BUILD_PACKAGES=(
  gcc libc6-dev pkg-config libclang-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev
  libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-x gstreamer1.0-nice
  gstreamer1.0-rtsp
)
# Testing: the real clients the tests play the stream with.
# promtool (package prometheus) checks the /metrics exposition; Chromium
# loads the dashboard.
TEST_PACKAGES=(ffmpeg gstreamer1.0-tools curl prometheus chromium systemd
  python3-websockets python3-lz4 python3-zstandard python3-venv)
# The V4L2 tests: a qemu guest running Debian's kernel with the vivid virtual
# camera (scripts/vm/build makes its initramfs from busybox). The systemd
# guest's disk (scripts/vm/build-systemd): a Debian root made by mmdebstrap,
# packed into an ext4 image by mke2fs (e2fsprogs).
VM_PACKAGES=(qemu-system-x86 busybox-static mmdebstrap e2fsprogs)
# The Raspberry Pi image (scripts/image): an arm64 Debian root by mmdebstrap,
# its maintainer scripts run by qemu-user-static through binfmt_misc; the
# partitions made as files (dosfstools, mtools, e2fsprogs) and put together
# with sfdisk (fdisk). Booting it (tests/image.rs): qemu-system-aarch64,
# and qemu-img for a throw-away, larger overlay of the image.
IMAGE_PACKAGES=(mmdebstrap arch-test qemu-user-static binfmt-support dosfstools mtools e2fsprogs fdisk
  qemu-system-arm qemu-utils)

# arm64 programs run through qemu-user-static: binfmt_misc must know it.
# Debian's qemu-user-static registers it where systemd-binfmt or
# binfmt-support run at boot; on a machine booted without them (a CI
# container) it is registered here, from the package's own definition.
need_arm64_binfmt() {
  local registry=/proc/sys/fs/binfmt_misc
  if [ ! -e "$registry/register" ]; then
    $SUDO mount -t binfmt_misc binfmt_misc "$registry"
  fi
  if [ ! -e "$registry/qemu-aarch64" ]; then
    $SUDO update-binfmts --enable qemu-aarch64 2>/dev/null \
      || cat /usr/lib/binfmt.d/qemu-aarch64.conf | $SUDO tee "$registry/register" > /dev/null
  fi
}

apt_install() {
  if [ -z "$APT_UPDATED" ]; then
    $SUDO apt-get update -q
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "$@"
}

# Installs each named package that is not installed yet.
need_packages() {
  local missing=() package
  for package in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$package")
    fi
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "edgecam: installing ${missing[*]}" >&2
    apt_install "${missing[@]}"
  fi
}

# gstreamer-rs 0.25 needs Rust >= 1.92. Use the user's rustup toolchain when
# there is one; otherwise Debian 12's rustc-web/cargo-web (kept current through
# bookworm-security; 1.96 as of 2026-11) is a recent-enough Rust from packages.
need_rust() {
  export PATH="$HOME/.cargo/bin:$PATH"
  if cargo_is_recent; then return; fi
  need_packages rustc-web cargo-web || true
  if ! cargo_is_recent; then
    echo "edgecam: Rust 1.92 or newer is needed and none could be installed from packages." >&2
    echo "         Install it with rustup (https://rustup.rs) and run this again." >&2
    exit 1
  fi
}

cargo_is_recent() {
  local version
  version=$(cargo --version 2>/dev/null | awk '{print $2}') || return 1
  [ -n "$version" ] || return 1
  [ "$(printf '%s\n1.92.0\n' "$version" | sort -V | head -n1)" = "1.92.0" ]
}

# The WebRTC tests' second client is aiortc, which Debian 12 does not
# package: it goes into a virtual environment of its own (target/pyenv,
# over Debian's python3 and its packages), pinned.
AIORTC_VERSION=1.16.0
need_python_client() {
  local env=target/pyenv
  if [ -x "$env/bin/python" ] && [ "$(cat "$env/.aiortc" 2>/dev/null)" = "$AIORTC_VERSION" ]; then
    return
  fi
  rm -rf "$env"
  /usr/bin/python3 -m venv --system-site-packages "$env"
  "$env/bin/pip" install --quiet --disable-pip-version-check "aiortc==$AIORTC_VERSION"
  echo "$AIORTC_VERSION" > "$env/.aiortc"
}

# The browser test drives Chromium with playwright-core from npm (pinned in
# tests/browser/package-lock.json). Node.js comes from the distribution when
# the machine has none.
need_browser_driver() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    need_packages nodejs npm
  fi
  if [ ! -d tests/browser/node_modules/playwright-core ] \
    || [ tests/browser/package-lock.json -nt tests/browser/node_modules ]; then
    npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
  fi
}
