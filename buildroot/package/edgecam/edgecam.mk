################################################################################
#
# edgecam
#
################################################################################

# Built from this checkout (the external tree lives inside it).
EDGECAM_VERSION = 0.1.0
EDGECAM_SITE = $(BR2_EXTERNAL_EDGECAM_PATH)/..
EDGECAM_SITE_METHOD = local
EDGECAM_LICENSE = MIT or Apache-2.0
EDGECAM_DEPENDENCIES = \
	gstreamer1 gst1-plugins-base gst1-plugins-good gst1-plugins-bad \
	gst1-plugins-ugly gst1-rtsp-server host-clang

# bindgen (v4l crate) reads the target's kernel headers with the host's
# libclang; pkg-config finds the target's GStreamer in staging.
EDGECAM_CARGO_ENV = \
	LIBCLANG_PATH=$(HOST_DIR)/lib \
	BINDGEN_EXTRA_CLANG_ARGS="--sysroot=$(STAGING_DIR)" \
	PKG_CONFIG_ALLOW_CROSS=1

# A local source skips buildroot's download step, where cargo packages have
# their crates vendored; do it here so the offline build finds them.
define EDGECAM_VENDOR_CRATES
	mkdir -p $(@D)/.cargo
	cd $(@D) && $(HOST_DIR)/bin/cargo vendor --locked VENDOR > $(@D)/.cargo/config.toml
endef
EDGECAM_POST_RSYNC_HOOKS += EDGECAM_VENDOR_CRATES

# The unit shipped with the source (systemd/edgecam.service), not a copy.
define EDGECAM_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 644 $(@D)/systemd/edgecam.service \
		$(TARGET_DIR)/usr/lib/systemd/system/edgecam.service
endef

# username uid group gid password home shell groups comment
define EDGECAM_USERS
	edgecam -1 edgecam -1 * /var/lib/edgecam - video edgecam camera streaming
endef

# The remote configuration API rewrites /etc/edgecam/config.toml.
define EDGECAM_PERMISSIONS
	/etc/edgecam d 0750 edgecam edgecam - - - - -
	/etc/edgecam/config.toml f 0640 edgecam edgecam - - - - -
endef

$(eval $(cargo-package))
