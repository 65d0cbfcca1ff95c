//! `/metrics` in the Prometheus text format, from the latest sample: the
//! same numbers the WebSocket carries, as counters and gauges.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::registry::OutputState;
use super::{CameraDescription, Sample};
use crate::pipeline::inventory::PipelineSummary;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutputLabel {
    output: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let metric: Counter = Counter::default();
    metric.inc_by(value);
    registry.register(name, help, metric);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: Option<f64>) {
    if let Some(value) = value {
        let metric = Gauge::<f64, AtomicU64>::default();
        metric.set(value);
        registry.register(name, help, metric);
    }
}

/// Renders one scrape with the pipelines running now and the reloads of
/// the configuration file by outcome. A registry per scrape keeps this
/// stateless: the sampler owns the numbers, this only formats them.
pub fn render(
    sample: &Sample,
    camera: &CameraDescription,
    pipelines: &[PipelineSummary],
    reloads: &BTreeMap<&'static str, u64>,
) -> String {
    let mut registry = Registry::with_prefix("edgecam");
    counter(
        &mut registry,
        "captured_frames",
        "Frames delivered by the camera source",
        sample.captured_frames_total,
    );
    counter(
        &mut registry,
        "encoded_frames",
        "Frames encoded and handed to the outputs",
        sample.encoded_frames_total,
    );
    counter(
        &mut registry,
        "encoded_bytes",
        "Bytes of encoded H.264 handed to the outputs",
        sample.encoded_bytes_total,
    );
    counter(
        &mut registry,
        "dropped_frames",
        "Frames dropped before the encoder because it fell behind",
        sample.dropped_frames,
    );
    counter(
        &mut registry,
        "corrupt_frames",
        "Broken frames from the camera thrown away (truncated or corrupt JPEG)",
        sample.corrupt_frames,
    );
    counter(
        &mut registry,
        "camera_losses",
        "Times the camera was lost (stall, error, unplug)",
        sample.camera.losses,
    );
    counter(
        &mut registry,
        "camera_reconnects",
        "Times live video came back after a loss",
        sample.camera.reconnects,
    );
    counter(
        &mut registry,
        "camera_builds",
        "Camera pipelines built since start (1, then one per rebuild)",
        sample.camera.builds,
    );
    counter(
        &mut registry,
        "camera_reopens",
        "Times the camera was reopened after a loss",
        sample.camera.reopens,
    );
    gauge(
        &mut registry,
        "camera_reopen_to_live_seconds",
        "At the last reconnect, from the start of the reopening to live video shown",
        sample.camera.reopen_to_live_ms.map(|ms| ms as f64 / 1000.0),
    );
    gauge(
        &mut registry,
        "camera_live",
        "1 while the camera delivers, 0 while the slate is shown",
        Some(f64::from(u8::from(sample.camera.state == "live"))),
    );
    gauge(
        &mut registry,
        "privacy_mode",
        "1 while privacy mode keeps the camera closed and shows the privacy picture",
        Some(f64::from(u8::from(sample.camera.state == "private"))),
    );
    gauge(
        &mut registry,
        "camera_opening",
        "1 while the camera is being reopened after a loss",
        Some(f64::from(u8::from(sample.camera.opening))),
    );
    gauge(
        &mut registry,
        "pipelines",
        "GStreamer pipelines running (the camera, one per output, one per RTSP media)",
        Some(pipelines.len() as f64),
    );
    gauge(
        &mut registry,
        "encoders",
        "Video encoders running: one per camera whatever the viewers, none while the camera's H.264 is passed through",
        Some(pipelines.iter().map(|p| p.encoders.len()).sum::<usize>() as f64),
    );
    gauge(
        &mut registry,
        "jpeg_encoders",
        "JPEG encoders running: one while anybody watches MJPEG, snapshots or JPEG frames (all share it), none otherwise",
        Some(pipelines.iter().map(|p| p.jpeg_encoders.len()).sum::<usize>() as f64),
    );
    gauge(
        &mut registry,
        "last_frame_id",
        "Id of the last frame handed to the outputs",
        Some(sample.frame_id as f64),
    );
    gauge(
        &mut registry,
        "capture_fps",
        "Frames per second from the source, last second",
        Some(sample.capture_fps),
    );
    gauge(
        &mut registry,
        "encoded_fps",
        "Frames per second out of the encoder, last second",
        Some(sample.encoded_fps),
    );
    gauge(
        &mut registry,
        "bitrate_kbps",
        "Encoded bitrate in kbit/s, last second",
        Some(sample.bitrate_kbps),
    );
    gauge(
        &mut registry,
        "capture_to_encode_seconds",
        "Mean capture to encoded latency, last second",
        sample.capture_to_encode_ms.map(|ms| ms / 1000.0),
    );
    gauge(
        &mut registry,
        "process_cpu_percent",
        "CPU used by edgecam, percent of one core",
        sample.cpu_percent,
    );
    gauge(
        &mut registry,
        "process_resident_memory_bytes",
        "Resident memory of edgecam",
        sample.rss_bytes.map(|b| b as f64),
    );
    gauge(
        &mut registry,
        "process_resident_anonymous_memory_bytes",
        "Resident memory edgecam allocated (heap, anonymous mappings): what a leak grows",
        sample.rss_anon_bytes.map(|b| b as f64),
    );
    gauge(
        &mut registry,
        "process_open_fds",
        "File descriptors edgecam holds open",
        sample.open_fds.map(|n| n as f64),
    );
    gauge(
        &mut registry,
        "soc_temperature_celsius",
        "SoC temperature",
        sample.soc_temp_c,
    );
    gauge(
        &mut registry,
        "throttled",
        "Raspberry Pi firmware get_throttled bits",
        sample.throttling.map(|t| f64::from(t.raw)),
    );
    gauge(
        &mut registry,
        "uptime_seconds",
        "Seconds since edgecam started",
        Some(sample.uptime_s),
    );
    let label = |output: &str| OutputLabel {
        output: output.to_owned(),
    };
    let clients = Family::<OutputLabel, Gauge>::default();
    for (output, count) in &sample.clients {
        clients.get_or_create(&label(output)).set(*count as i64);
    }
    registry.register("clients", "Viewers connected, per output", clients);
    let joins = Family::<OutputLabel, Counter>::default();
    for (output, count) in &sample.viewer_joins {
        joins.get_or_create(&label(output)).inc_by(*count);
    }
    registry.register(
        "viewer_joins",
        "Viewers who joined, per output (a viewer that reconnects joins again)",
        joins,
    );
    let up = Family::<OutputLabel, Gauge>::default();
    let restarts = Family::<OutputLabel, Counter>::default();
    for (output, report) in &sample.outputs {
        let running = report.state == OutputState::Running;
        up.get_or_create(&label(output)).set(i64::from(running));
        restarts
            .get_or_create(&label(output))
            .inc_by(report.restarts);
    }
    registry.register("output_up", "1 while the output runs, per output", up);
    let reloaded = Family::<OutcomeLabel, Counter>::default();
    for (outcome, count) in reloads {
        reloaded
            .get_or_create(&OutcomeLabel {
                outcome: (*outcome).to_owned(),
            })
            .inc_by(*count);
    }
    registry.register(
        "config_reloads",
        "Re-reads of the configuration file (an edit on disk, SIGHUP), by outcome",
        reloaded,
    );
    registry.register(
        "output_restarts",
        "Restarts of an output after it failed, per output",
        restarts,
    );
    output_counters(&mut registry, sample);
    publish_targets(&mut registry, sample);
    camera_info(&mut registry, camera);
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut text, &registry);
    to_text_format(&text)
}

/// The outputs' own counters (`registry::CounterSpec`), one family each,
/// labelled by output and, for counters kept per reason, by the reason.
fn output_counters(registry: &mut Registry, sample: &Sample) {
    type Labels = Vec<(String, String)>;
    let mut families: BTreeMap<&str, (&str, Family<Labels, Counter>)> = BTreeMap::new();
    for (output, report) in &sample.outputs {
        for reading in &report.counters {
            let (_, family) = families
                .entry(reading.spec.name)
                .or_insert_with(|| (reading.spec.help, Family::default()));
            let mut labels = vec![("output".to_owned(), (*output).to_owned())];
            if let (Some(name), Some(value)) = (reading.spec.label, reading.label) {
                labels.push((name.to_owned(), value.to_owned()));
            }
            family.get_or_create(&labels).inc_by(reading.value);
        }
    }
    for (name, (help, family)) in families {
        registry.register(name, help, family);
    }
}

/// Each publish target's connection: 1 while it sends (its counters are
/// the output's, above).
fn publish_targets(registry: &mut Registry, sample: &Sample) {
    let Some(report) = sample.outputs.get("publish") else {
        return;
    };
    let targets = report.description["targets"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let up = Family::<Vec<(String, String)>, Gauge>::default();
    for target in &targets {
        let name = target["name"].as_str().unwrap_or_default().to_owned();
        let sending = target["state"] == "publishing";
        up.get_or_create(&vec![("target".to_owned(), name)])
            .set(i64::from(sending));
    }
    registry.register(
        "publish_up",
        "1 while a publish target is connected and sending, per target",
        up,
    );
}

/// What runs, as an info metric: many boards are told apart by the
/// scrape's `instance`, and what each runs is one series, not a label on
/// every other.
fn camera_info(registry: &mut Registry, camera: &CameraDescription) {
    let text = |value: &serde_json::Value| match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    let labels = vec![
        ("camera".to_owned(), text(&camera.camera["source"])),
        ("capture".to_owned(), text(&camera.camera["capture"])),
        ("encoder".to_owned(), text(&camera.encoder["element"])),
        (
            "passthrough".to_owned(),
            text(&camera.encoder["passthrough"]),
        ),
        ("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
    ];
    registry.register(
        "camera",
        "The camera and encoder that run now",
        prometheus_client::metrics::info::Info::new(labels),
    );
}

/// prometheus-client writes OpenMetrics, where a counter's HELP and TYPE
/// name it without `_total` and the body ends with `# EOF`. The classic
/// text format (what Prometheus scrapes as text/plain and what `promtool
/// check metrics` checks) names the counter's sample itself. Same numbers,
/// other spelling.
fn to_text_format(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    // OpenMetrics' info type is a gauge of 1 named `_info` in the classic
    // format, which has no info type.
    let infos: Vec<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" info"))
        .collect();
    let mut text = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines().filter(|line| *line != "# EOF") {
        let header = ["# HELP ", "# TYPE "]
            .into_iter()
            .find(|p| line.starts_with(p));
        match header {
            Some(prefix) => {
                let rest = &line[prefix.len()..];
                let name = rest.split(' ').next().unwrap_or_default();
                if counters.contains(&name) {
                    text.push_str(&format!("{prefix}{name}_total{}", &rest[name.len()..]));
                } else if infos.contains(&name) && prefix == "# TYPE " {
                    text.push_str(&format!("{prefix}{name}_info gauge"));
                } else if infos.contains(&name) {
                    text.push_str(&format!("{prefix}{name}_info{}", &rest[name.len()..]));
                } else {
                    text.push_str(line);
                }
            }
            None => text.push_str(line),
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::to_text_format;

    #[test]
    fn infos_become_gauges_named_by_their_samples() {
        let open =
            "# HELP a_camera What runs.\n# TYPE a_camera info\na_camera_info{x=\"y\"} 1\n# EOF\n";
        assert_eq!(
            to_text_format(open),
            "# HELP a_camera_info What runs.\n# TYPE a_camera_info gauge\na_camera_info{x=\"y\"} 1\n"
        );
    }

    #[test]
    fn counters_are_named_by_their_samples() {
        let open = "# HELP a_frames Frames.\n# TYPE a_frames counter\na_frames_total 3\n\
                    # HELP a_fps Rate.\n# TYPE a_fps gauge\na_fps 30.0\n# EOF\n";
        assert_eq!(
            to_text_format(open),
            "# HELP a_frames_total Frames.\n# TYPE a_frames_total counter\na_frames_total 3\n\
             # HELP a_fps Rate.\n# TYPE a_fps gauge\na_fps 30.0\n"
        );
    }
}
