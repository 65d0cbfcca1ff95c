# Image for `cross build --target aarch64-unknown-linux-gnu`: Debian 12
# (the board's glibc and GStreamer 1.22) with the arm64 GStreamer development
# packages, the cross compiler, and libclang plus the arm64 kernel headers for
# the v4l crate's bindgen. cross mounts the Rust toolchain itself.
FROM debian:bookworm
ARG DEBIAN_FRONTEND=noninteractive
RUN dpkg --add-architecture arm64 \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates pkg-config libclang-dev \
      gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross \
      libgstreamer1.0-dev:arm64 libgstreamer-plugins-base1.0-dev:arm64 \
      libgstrtspserver-1.0-dev:arm64 linux-libc-dev:arm64 \
 && rm -rf /var/lib/apt/lists/*
ENV PKG_CONFIG_ALLOW_CROSS=1 \
    PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu="--target=aarch64-linux-gnu -I/usr/include/aarch64-linux-gnu"
