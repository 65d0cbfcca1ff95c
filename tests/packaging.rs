//! The board artefacts cannot be built here (buildroot downloads its
//! sources; cross needs Docker), so their internal consistency is checked:
//! every file they name exists, names and versions agree with Cargo.toml,
//! the defconfig selects the package and what it needs, and the image's
//! default configuration is the documented one.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// `KEY = value` lines of a makefile or `KEY=value` lines of a defconfig.
fn assignment<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        let k = k.trim().trim_end_matches(['+', ':', '?']).trim();
        (k == key).then(|| v.trim().trim_matches('"'))
    })
}

#[test]
fn the_buildroot_tree_is_consistent() {
    let desc = read("buildroot/external.desc");
    let name = desc
        .lines()
        .find_map(|l| l.strip_prefix("name:"))
        .expect("external.desc has a name")
        .trim();
    assert_eq!(name, "EDGECAM");
    let path_var = format!("BR2_EXTERNAL_{name}_PATH");

    // Config.in sources exist.
    for line in read("buildroot/Config.in").lines() {
        let Some(sourced) = line.trim().strip_prefix("source ") else {
            continue;
        };
        let sourced = sourced
            .trim_matches('"')
            .replace(&format!("${path_var}"), "buildroot");
        assert!(
            repo().join(&sourced).exists(),
            "Config.in sources missing {sourced}"
        );
    }
    assert!(read("buildroot/external.mk").contains(&path_var));

    // The package: version from Cargo.toml, source is this checkout, the
    // unit it installs exists.
    let mk = read("buildroot/package/edgecam/edgecam.mk");
    assert_eq!(
        assignment(&mk, "EDGECAM_VERSION"),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        assignment(&mk, "EDGECAM_SITE"),
        Some(format!("$({path_var})/..").as_str())
    );
    assert_eq!(assignment(&mk, "EDGECAM_SITE_METHOD"), Some("local"));
    assert!(mk.contains("$(eval $(cargo-package))"));
    for referenced in ["systemd/edgecam.service", "Cargo.lock"] {
        assert!(repo().join(referenced).exists(), "{referenced} is missing");
    }
    assert!(mk.contains("$(@D)/systemd/edgecam.service"));
    let license = env!("CARGO_PKG_LICENSE").replace(" OR ", " or ");
    assert_eq!(assignment(&mk, "EDGECAM_LICENSE"), Some(license.as_str()));

    // The defconfig selects the package, systemd as init, and every
    // GStreamer symbol the package selects; its overlay exists.
    let defconfig = read("buildroot/configs/edgecam_raspberrypi4_64_defconfig");
    let enabled = |symbol: &str| defconfig.lines().any(|l| l.trim() == format!("{symbol}=y"));
    for symbol in [
        "BR2_PACKAGE_EDGECAM",
        "BR2_INIT_SYSTEMD",
        "BR2_TOOLCHAIN_BUILDROOT_CXX",
    ] {
        assert!(enabled(symbol), "the defconfig does not set {symbol}");
    }
    let package_config = read("buildroot/package/edgecam/Config.in");
    let selected: Vec<&str> = package_config
        .lines()
        .filter_map(|l| l.trim().strip_prefix("select "))
        .map(|s| s.split_whitespace().next().unwrap_or(""))
        .collect();
    assert!(selected.contains(&"BR2_PACKAGE_GST1_PLUGINS_GOOD_PLUGIN_V4L2_PROBE"));
    for symbol in selected.iter().filter(|s| s.starts_with("BR2_PACKAGE_GST")) {
        assert!(enabled(symbol), "the defconfig does not set {symbol}");
    }
    assert!(enabled("BR2_PACKAGE_GST1_PLUGINS_BAD_PLUGIN_V4L2CODECS"));
    let overlay = assignment(&defconfig, "BR2_ROOTFS_OVERLAY").expect("an overlay");
    let overlay = overlay.replace(&format!("$({path_var})"), "buildroot");
    let config = Path::new(&overlay).join("etc/edgecam/config.toml");
    assert_eq!(
        read(config.to_str().unwrap()),
        read("config.toml"),
        "the image's /etc/edgecam/config.toml is not the documented default"
    );
}

#[test]
fn the_unit_runs_what_the_packages_install() {
    let unit = read("systemd/edgecam.service");
    assert!(unit.contains("ExecStart=/usr/bin/edgecam --config /etc/edgecam/config.toml run"));
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    assert!(unit.contains("SupplementaryGroups=video"));
}

#[test]
fn cross_toml_names_dockerfiles_that_exist() {
    let cross = read("Cross.toml");
    let table: toml::Table = cross.parse().expect("Cross.toml parses");
    let targets = table["target"].as_table().expect("[target.*]");
    for target in ["aarch64-unknown-linux-gnu", "armv7-unknown-linux-gnueabihf"] {
        let dockerfile = targets[target]["dockerfile"]
            .as_str()
            .expect("a dockerfile");
        let text = read(dockerfile);
        assert!(
            text.starts_with("# ") && text.contains("FROM debian:bookworm"),
            "{dockerfile}"
        );
        assert!(
            text.contains("libgstrtspserver-1.0-dev:") && text.contains("libclang-dev"),
            "{dockerfile}"
        );
    }
}

/// The .deb packages scripts/package-deb made (scripts/test builds both;
/// elsewhere a missing one is skipped loudly).
#[test]
fn the_debs_hold_the_service_and_keep_its_configuration() {
    for arch in ["amd64", "arm64"] {
        let deb = repo().join(format!(
            "target/deb/edgecam_{}_{arch}.deb",
            env!("CARGO_PKG_VERSION")
        ));
        if !deb.exists() {
            let message = format!(
                "{} is missing: run scripts/package-deb {arch}",
                deb.display()
            );
            assert!(
                std::env::var_os("EDGECAM_REQUIRE_DEB").is_none(),
                "{message}"
            );
            eprintln!("SKIPPED: {message}");
            continue;
        }
        let field = |name: &str| {
            let output = std::process::Command::new("dpkg-deb")
                .arg("--field")
                .arg(&deb)
                .arg(name)
                .output()
                .expect("dpkg-deb");
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        };
        assert_eq!(field("Architecture"), arch);
        assert_eq!(field("Version"), env!("CARGO_PKG_VERSION"));
        assert!(
            field("Depends").contains("gstreamer1.0-x"),
            "{}",
            field("Depends")
        );
        let listing = std::process::Command::new("dpkg-deb")
            .arg("--contents")
            .arg(&deb)
            .output()
            .expect("dpkg-deb");
        let listing = String::from_utf8_lossy(&listing.stdout);
        for file in [
            "./usr/bin/edgecam",
            "./usr/lib/systemd/system/edgecam.service",
            "./etc/edgecam/config.toml",
            "./usr/share/doc/edgecam/copyright",
        ] {
            assert!(listing.contains(file), "{arch}: {file} missing:\n{listing}");
        }
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("dpkg-deb")
            .arg("--control")
            .arg(&deb)
            .arg(dir.path())
            .status()
            .expect("dpkg-deb");
        assert!(status.success());
        let conffiles = std::fs::read_to_string(dir.path().join("conffiles")).unwrap();
        assert_eq!(conffiles.trim(), "/etc/edgecam/config.toml");
        let postinst = std::fs::read_to_string(dir.path().join("postinst")).unwrap();
        assert!(postinst.contains("adduser edgecam video"), "{postinst}");
    }
}
