# Image for `cross build --target armv7-unknown-linux-gnueabihf`: Debian 12
# (the board's glibc and GStreamer 1.22) with the armhf GStreamer development
# packages, the cross compiler, and libclang plus the armhf kernel headers for
# the v4l crate's bindgen. cross mounts the Rust toolchain itself.
FROM debian:bookworm
ARG DEBIAN_FRONTEND=noninteractive
RUN dpkg --add-architecture armhf \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates pkg-config libclang-dev \
      gcc-arm-linux-gnueabihf g++-arm-linux-gnueabihf libc6-dev-armhf-cross \
      libgstreamer1.0-dev:armhf libgstreamer-plugins-base1.0-dev:armhf \
      libgstrtspserver-1.0-dev:armhf linux-libc-dev:armhf \
 && rm -rf /var/lib/apt/lists/*
ENV PKG_CONFIG_ALLOW_CROSS=1 \
    PKG_CONFIG_LIBDIR=/usr/lib/arm-linux-gnueabihf/pkgconfig:/usr/share/pkgconfig \
    CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc \
    BINDGEN_EXTRA_CLANG_ARGS_armv7_unknown_linux_gnueabihf="--target=arm-linux-gnueabihf -I/usr/include/arm-linux-gnueabihf"
