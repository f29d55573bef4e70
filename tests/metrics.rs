//! Metrics as an operator collects them: a three-node cluster with `metrics = true` is
//! scraped by a real Prometheus server (Debian's `prometheus`), whose HTTP API must hold a
//! counter and a histogram from every node; the alert rules shipped in `deploy/` pass
//! `promtool check rules`, and every metric they and the Grafana dashboard name is one a
//! node exposes. A node without `metrics` serves no `/metrics`.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_port, openssl, wait_for, Cluster, Node};

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(path)
}

/// A Prometheus server scraping `targets` every second, killed when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(targets: &[String]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let list = targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
        let config = format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: hapki\n    metrics_path: /metrics\n    static_configs:\n      - targets: [{list}]\n"
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("run prometheus (Debian package `prometheus`; scripts/test.sh installs it)");
        Prometheus { child, port, _dir: dir }
    }

    /// The instances (`host:port`) with a sample of `query` in its current result.
    fn instances(&self, client: &reqwest::blocking::Client, query: &str) -> BTreeSet<String> {
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        let Ok(resp) = client.get(&url).query(&[("query", query)]).send() else {
            return BTreeSet::new();
        };
        let body: serde_json::Value = resp.json().unwrap_or_default();
        body["data"]["result"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|s| s["metric"]["instance"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn scrape(node: &Node) -> (u16, String) {
    let resp = node
        .http_client()
        .get(format!("{}/metrics", node.http_url()))
        .send()
        .expect("GET /metrics");
    (resp.status().as_u16(), resp.text().unwrap_or_default())
}

/// The `hapki_*` names in `text`, histogram series folded into their metric.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("hapki_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let name = &text[start..end];
        let folded = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        names.insert(folded.to_string());
        i = end;
    }
    names
}

#[test]
fn prometheus_scrapes_a_counter_and_a_histogram_from_every_node_and_the_shipped_rules_name_real_metrics() {
    let mut cluster = Cluster::start(3, "metrics = true");
    let a = &cluster.nodes[0];
    a.ok(&["ca", "init", "--cn", "Metrics Root"]);
    for (i, node) in cluster.nodes.iter().enumerate() {
        let cert = node.issue(&format!("m{i}"), "server", &[&format!("CN:m{i}.example.com")]);
        let (ok, text) = openssl(
            node.work(),
            &[
                "ocsp",
                "-issuer",
                &node.ca_pem().display().to_string(),
                "-cert",
                &cert.display().to_string(),
                "-url",
                &format!("{}/ocsp", node.http_url()),
                "-CAfile",
                &node.ca_pem().display().to_string(),
            ],
        );
        assert!(ok && text.contains(": good"), "{text}");
    }
    let revoked = cluster.nodes[1].issue("gone", "server", &["CN:gone.example.com"]);
    let serial = common::serial_of(cluster.nodes[1].work(), &revoked);
    cluster.nodes[1].ok(&["cert", "revoke", &serial, "--reason", "superseded"]);
    let targets: Vec<String> = cluster.nodes.iter().map(|n| format!("127.0.0.1:{}", n.http)).collect();
    let all: BTreeSet<String> = targets.iter().cloned().collect();
    let prometheus = Prometheus::start(&targets);
    let client = cluster.nodes[0].http_client();
    for query in [
        "hapki_http_requests_total",
        "hapki_certificates_issued_total",
        "hapki_http_request_duration_seconds_bucket",
        "hapki_raft_term",
    ] {
        wait_for(
            &format!("{query} from every node in Prometheus"),
            Duration::from_secs(60),
            || prometheus.instances(&client, query) == all,
        );
    }
    let quantile =
        "histogram_quantile(0.99, sum by (le, instance) (rate(hapki_http_request_duration_seconds_bucket[1m])))";
    wait_for("a latency quantile per node", Duration::from_secs(30), || {
        prometheus.instances(&client, quantile) == all
    });
    assert_eq!(
        prometheus.instances(&client, "hapki_raft_is_leader == 1").len(),
        1,
        "one leader"
    );

    // What the shipped rules and dashboard name, the nodes expose (the leader alone shows
    // each peer's lag; a counter appears on the node where its event happened).
    let mut exposed = BTreeSet::new();
    for node in &cluster.nodes {
        let (status, text) = scrape(node);
        assert_eq!(status, 200, "{}", node.http_url());
        exposed.extend(names_in(&text));
    }
    let rules = deploy("prometheus/alerts.yml");
    let out = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    for file in ["prometheus/alerts.yml", "grafana/hapki.json"] {
        let text = std::fs::read_to_string(deploy(file)).unwrap();
        let named = names_in(&text);
        assert!(!named.is_empty(), "{file} names no metric");
        let missing: Vec<&String> = named.difference(&exposed).collect();
        assert!(missing.is_empty(), "{file} names metrics no node exposes: {missing:?}");
    }

    // Off unless asked for.
    cluster
        .add("")
        .status
        .success()
        .then_some(())
        .expect("a fourth node joins");
    let (status, _) = scrape(&cluster.nodes[3]);
    assert_eq!(status, 404, "a node without `metrics` serves no /metrics");
}
