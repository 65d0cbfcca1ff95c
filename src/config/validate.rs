//! Range and consistency checks that the types alone cannot express. Each
//! failure names the key path so the loader can point at the line.

use super::schema::{Config, SourceKind};
use super::units::Span;

/// An ICE server URL: empty, or one of `schemes` then `host:port`.
fn check_ice_server(
    key: &'static str,
    value: &str,
    schemes: &[&str],
    example: &str,
) -> Result<(), Invalid> {
    if value.is_empty() {
        return Ok(());
    }
    let rest = schemes.iter().find_map(|scheme| value.strip_prefix(scheme));
    let host_port = rest.map(|rest| rest.rsplit('@').next().unwrap_or(rest));
    let valid = host_port.is_some_and(|hp| {
        hp.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        })
    });
    if valid {
        Ok(())
    } else {
        Err(Invalid {
            key,
            message: format!("{value:?} is no ICE server: write it as {example}"),
        })
    }
}

/// One rule a value broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Dotted key path, e.g. `camera.width`.
    pub key: &'static str,
    pub message: String,
}

fn check_range(
    key: &'static str,
    value: u64,
    min: u64,
    max: u64,
    unit: &str,
) -> Result<(), Invalid> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(Invalid {
            key,
            message: format!("{value} is out of range: must be {min}–{max}{unit}"),
        })
    }
}

fn check_even(key: &'static str, value: u32) -> Result<(), Invalid> {
    if value.is_multiple_of(2) {
        Ok(())
    } else {
        Err(Invalid {
            key,
            message: format!("{value} is odd: H.264 uses 4:2:0 chroma, so sizes must be even"),
        })
    }
}

fn check_span(key: &'static str, span: Span, min_s: u64, max_s: u64) -> Result<(), Invalid> {
    let ms = span.duration().as_millis();
    if (u128::from(min_s) * 1000..=u128::from(max_s) * 1000).contains(&ms) {
        Ok(())
    } else {
        Err(Invalid {
            key,
            message: format!(
                "{span} is out of range: must be {}–{}",
                Span::from_secs(min_s),
                Span::from_secs(max_s)
            ),
        })
    }
}

/// Checks every rule; returns the first one broken, in file order.
pub fn validate(config: &Config) -> Result<(), Invalid> {
    let camera = &config.camera;
    check_range("camera.width", camera.width.into(), 160, 3840, " pixels")?;
    check_even("camera.width", camera.width)?;
    check_range("camera.height", camera.height.into(), 120, 2160, " pixels")?;
    check_even("camera.height", camera.height)?;
    check_range(
        "camera.fps",
        camera.fps.into(),
        1,
        120,
        " frames per second",
    )?;
    check_range(
        "camera.stall_timeout_ms",
        camera.stall_timeout_ms.into(),
        200,
        60_000,
        " ms",
    )?;
    check_range(
        "camera.retry_max_s",
        camera.retry_max_s.into(),
        1,
        300,
        " s",
    )?;

    if camera.source == SourceKind::File && camera.file.is_empty() {
        return Err(Invalid {
            key: "camera.file",
            message: "camera.source = \"file\" needs the file to replay here".to_owned(),
        });
    }

    let encoder = &config.encoder;
    check_range(
        "encoder.bitrate_kbps",
        encoder.bitrate_kbps.into(),
        100,
        50_000,
        " kbit/s",
    )?;
    check_range(
        "encoder.keyframe_interval",
        encoder.keyframe_interval.into(),
        1,
        600,
        " frames",
    )?;

    let rtsp = &config.rtsp;
    check_range("rtsp.port", rtsp.port.into(), 1, 65_535, "")?;
    check_rtsp_path(&rtsp.path)?;
    if rtsp.user.is_empty() != rtsp.password.is_empty() {
        return Err(Invalid {
            key: if rtsp.user.is_empty() {
                "rtsp.user"
            } else {
                "rtsp.password"
            },
            message: "set both rtsp.user and rtsp.password, or neither".to_owned(),
        });
    }
    if rtsp.user.contains(':') {
        return Err(Invalid {
            key: "rtsp.user",
            message: "a user name cannot contain ':' (Basic authentication splits on it)"
                .to_owned(),
        });
    }
    check_range(
        "rtsp.session_timeout_s",
        rtsp.session_timeout_s.into(),
        5,
        3600,
        " s",
    )?;
    check_range(
        "rtsp.cleanup_interval_s",
        rtsp.cleanup_interval_s.into(),
        1,
        60,
        " s",
    )?;
    let http = &config.http;
    check_range(
        "http.max_connections",
        http.max_connections.into(),
        8,
        65_536,
        " connections",
    )?;
    check_span("http.header_timeout", http.header_timeout, 1, 600)?;
    check_span("http.idle_timeout", http.idle_timeout, 1, 3600)?;
    let jpeg = &config.jpeg;
    check_range("jpeg.quality", jpeg.quality.into(), 1, 100, "")?;
    check_range(
        "jpeg.max_fps",
        jpeg.max_fps.into(),
        1,
        120,
        " frames per second",
    )?;
    if (jpeg.width == 0) != (jpeg.height == 0) {
        return Err(Invalid {
            key: if jpeg.width == 0 {
                "jpeg.width"
            } else {
                "jpeg.height"
            },
            message: "set both jpeg.width and jpeg.height, or neither (the camera's size)"
                .to_owned(),
        });
    }
    if jpeg.width != 0 {
        check_range("jpeg.width", jpeg.width.into(), 160, 3840, " pixels")?;
        check_even("jpeg.width", jpeg.width)?;
        check_range("jpeg.height", jpeg.height.into(), 120, 2160, " pixels")?;
        check_even("jpeg.height", jpeg.height)?;
    }
    let webrtc = &config.webrtc;
    check_range(
        "webrtc.max_peers",
        webrtc.max_peers.into(),
        1,
        256,
        " peers",
    )?;
    let (low, high) = (webrtc.udp_port_min, webrtc.udp_port_max);
    if (low == 0) != (high == 0) || low > high {
        return Err(Invalid {
            key: if low == 0 || low > high {
                "webrtc.udp_port_min"
            } else {
                "webrtc.udp_port_max"
            },
            message: format!(
                "the UDP ports {low}–{high} are no range: set both (min ≤ max), or both to 0 for any"
            ),
        });
    }
    if low != 0 && high - low < 1 {
        return Err(Invalid {
            key: "webrtc.udp_port_max",
            message: "a peer needs at least two ports to gather on; widen the range".to_owned(),
        });
    }
    check_ice_server(
        "webrtc.stun_server",
        &webrtc.stun_server,
        &["stun://"],
        "stun://HOST:PORT",
    )?;
    check_ice_server(
        "webrtc.turn_server",
        &webrtc.turn_server,
        &["turn://", "turns://"],
        "turn://USER:PASSWORD@HOST:PORT (or turns://)",
    )?;
    check_range("api.confirm_s", config.api.confirm_s.into(), 1, 60, " s")?;
    check_range(
        "api.max_body_kib",
        config.api.max_body_kib.into(),
        1,
        1024,
        " KiB",
    )?;
    super::overlay::validate(&config.overlay, (camera.width, camera.height))?;
    super::board::validate(&config.gpio)?;
    super::publish::validate(&config.publish)?;
    Ok(())
}

/// A mount path must be a plain URL path: the players put it in a URL as is.
fn check_rtsp_path(path: &str) -> Result<(), Invalid> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || "-_./".contains(c);
    if path.len() >= 2
        && path.starts_with('/')
        && !path.ends_with('/')
        && path.chars().all(valid_char)
    {
        Ok(())
    } else {
        Err(Invalid {
            key: "rtsp.path",
            message: format!(
                "{path:?} is not a valid mount path: it must start with '/', not end with '/', \
                 and use only letters, digits, '-', '_', '.' and '/'"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(validate(&Config::default()), Ok(()));
    }

    #[test]
    fn odd_width_is_rejected() {
        let mut config = Config::default();
        config.camera.width = 641;
        assert_eq!(validate(&config).unwrap_err().key, "camera.width");
    }

    #[test]
    fn fps_bounds() {
        let mut config = Config::default();
        config.camera.fps = 0;
        assert_eq!(validate(&config).unwrap_err().key, "camera.fps");
        config.camera.fps = 120;
        assert_eq!(validate(&config), Ok(()));
        config.camera.fps = 121;
        assert_eq!(validate(&config).unwrap_err().key, "camera.fps");
    }

    #[test]
    fn rtsp_path_rules() {
        for bad in ["cam", "/", "/cam/", "/c am", "/cam?x"] {
            assert!(check_rtsp_path(bad).is_err(), "{bad} accepted");
        }
        for good in ["/cam", "/front/door", "/cam-1.h264"] {
            assert_eq!(check_rtsp_path(good), Ok(()));
        }
    }
}
