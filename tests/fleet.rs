//! Many boards, one view: a real Prometheus server (Debian's `prometheus`)
//! scrapes edgecam for 30 s and its HTTP API says the frame rate edgecam
//! encodes and what it runs; the Grafana dashboard in packaging/grafana/
//! parses and asks only for metrics edgecam exports.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Edgecam};
use edgecam::config::PublishTarget;

struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    /// Scrapes `target` (host:port) every second.
    fn scraping(target: &str, dir: &std::path::Path) -> Self {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: edgecam\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )
        .expect("prometheus.yml");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (package prometheus)");
        Self { child, port }
    }

    /// The result of an instant query (its `data.result`).
    fn query(&self, query: &str) -> Vec<serde_json::Value> {
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        let reply = Command::new("curl")
            .args(["-s", "-G", &url, "--data-urlencode"])
            .arg(format!("query={query}"))
            .output()
            .expect("curl");
        let body: serde_json::Value =
            serde_json::from_slice(&reply.stdout).unwrap_or(serde_json::Value::Null);
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn value(&self, query: &str) -> Option<f64> {
        self.query(query)
            .first()
            .and_then(|series| series["value"][1].as_str()?.parse().ok())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn prometheus_scrapes_the_frame_rate_and_what_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let edgecam = Edgecam::start(common::config());
    let prometheus = Prometheus::scraping(&format!("127.0.0.1:{}", edgecam.http_port), dir.path());
    let started = Instant::now();
    let rate = "rate(edgecam_encoded_frames_total[10s])";
    while started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_secs(1));
    }
    let fps = prometheus.value(rate);
    let up = prometheus.value("up{job=\"edgecam\"}");
    println!("Prometheus after 30 s of scrapes: up {up:?}, {rate} = {fps:?} (configured 30)");
    assert_eq!(up, Some(1.0), "Prometheus could not scrape edgecam");
    let fps = fps.expect("no rate");
    assert!((27.0..=33.0).contains(&fps), "{rate} = {fps}");
    let info = prometheus.query("edgecam_camera_info");
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0]["metric"]["encoder"], "x264enc", "{info:?}");
    assert_eq!(info[0]["metric"]["camera"], "test pattern", "{info:?}");
}

/// Every metric name in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("edgecam_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.push(name);
    }
    names
}

#[test]
fn the_grafana_dashboard_asks_only_for_metrics_edgecam_exports() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/grafana/edgecam.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("JSON");
    let mut wanted = BTreeSet::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels {
        assert!(panel["title"].as_str().is_some_and(|t| !t.is_empty()));
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{expr} names no edgecam metric");
            wanted.extend(names);
        }
    }
    let variable = dashboard["templating"]["list"][1]["definition"]
        .as_str()
        .expect("the board variable");
    wanted.extend(metric_names(variable));

    // Publishing (to nobody) so that its series exist too.
    let mut config = common::config();
    config.publish.targets = vec![PublishTarget {
        name: "nowhere".to_owned(),
        url: format!("rtmp://127.0.0.1:{}/live", free_port()),
        ..PublishTarget::default()
    }];
    let edgecam = Edgecam::start(config);
    edgecam.wait_for_metric(
        "edgecam_publish_reconnects_total{output=\"publish\",target=\"nowhere\"}",
        Duration::from_secs(20),
        |n| n >= 1.0,
    );
    let exported: BTreeSet<String> = edgecam
        .metrics()
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next().map(str::to_owned))
        .collect();
    // The SoC's temperature and a Pi's throttling flags are exported only
    // where the board has them (not this machine): those must at least be
    // metrics edgecam registers, under these names.
    let source = include_str!("../src/metrics/prometheus.rs");
    let registered = |name: &str| source.contains(&format!("\"{}\"", &name["edgecam_".len()..]));
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|n| !exported.contains(*n) && !registered(n))
        .collect();
    assert!(missing.is_empty(), "the dashboard asks for {missing:?}");
    let only_where_measured: Vec<&String> =
        wanted.iter().filter(|n| !exported.contains(*n)).collect();
    println!(
        "Grafana: {} panels asking for {} metrics; all exported here but {only_where_measured:?} (registered where the board measures them)",
        panels.len(),
        wanted.len()
    );
}
