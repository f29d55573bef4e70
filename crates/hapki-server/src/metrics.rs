//! Prometheus metrics, served at `/metrics` on the plain-HTTP listener when a node runs
//! with `metrics = true` (or `--metrics`). Events are counted where they happen, through
//! the `metrics` facade: requests ([`crate::observe`]), issuance, revocation and OCSP
//! answers (the CA service), phase changes (the lifecycle). What is a level rather than
//! an event (Raft's term and indices, each peer's lag, CRLs, the store's size, the build)
//! is read from the node when Prometheus scrapes, by [`render`]. Without the recorder
//! installed, the facade's calls do nothing.

use std::sync::OnceLock;

use metrics::{counter, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::lifecycle::Node;

/// Request latency buckets, in seconds: from a cached OCSP answer to an RSA-4096 key
/// generated with its certificate.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub const HTTP_REQUESTS: &str = "hapki_http_requests_total";
pub const HTTP_DURATION: &str = "hapki_http_request_duration_seconds";
pub const ISSUED: &str = "hapki_certificates_issued_total";
pub const REVOKED: &str = "hapki_certificates_revoked_total";
/// Certificates the expiry tidy removed through this node.
pub const TIDIED: &str = "hapki_certificates_tidied_total";
pub const OCSP_RESPONSES: &str = "hapki_ocsp_responses_total";
pub const PHASE_CHANGES: &str = "hapki_node_phase_changes_total";
/// How long this node took to build and sign a CRL from its replica.
pub const CRL_BUILD_SECONDS: &str = "hapki_crl_build_seconds";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder, once; `None` if another recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    let handle = HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), &LATENCY_BUCKETS)
            .expect("the buckets are not empty")
            .set_buckets_for_metric(Matcher::Full(CRL_BUILD_SECONDS.into()), &LATENCY_BUCKETS)
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics shows only levels");
        }
        handle
    });
    Some(handle)
}

/// The metrics in Prometheus text format, levels read from `node` now.
pub fn render(node: &Node) -> String {
    let Some(handle) = HANDLE.get() else {
        return String::new();
    };
    record_levels(node);
    handle.render()
}

/// Sets the gauges that describe where `node` stands.
fn record_levels(node: &Node) {
    let build = crate::version::VERSION;
    let max_format = hapki_store::format::MAX;
    gauge!("hapki_build_info", "version" => build, "max_format" => max_format.to_string()).set(1.0);
    gauge!("hapki_build_max_format").set(f64::from(max_format));

    let phase = node.phase();
    for kind in ["not_clustered", "joining", "ready", "killed", "unknown", "sealed"] {
        let current = phase_kind(&phase) == kind;
        gauge!("hapki_node_phase", "phase" => kind).set(if current { 1.0 } else { 0.0 });
    }
    let sealed = matches!(phase, hapki_api::cluster::Phase::Sealed { .. });
    gauge!("hapki_node_sealed").set(if sealed { 1.0 } else { 0.0 });
    let step = match phase {
        hapki_api::cluster::Phase::Joining { step, .. } => f64::from(step),
        _ => 0.0,
    };
    gauge!("hapki_node_join_step").set(step);

    let raft = node.cluster.observed();
    gauge!("hapki_raft_term").set(raft.term as f64);
    gauge!("hapki_raft_is_leader").set(if raft.is_leader { 1.0 } else { 0.0 });
    gauge!("hapki_raft_has_leader").set(if raft.leader.is_some() { 1.0 } else { 0.0 });
    gauge!("hapki_raft_last_log_index").set(raft.last_log_index.unwrap_or(0) as f64);
    gauge!("hapki_raft_applied_index").set(raft.applied_index.unwrap_or(0) as f64);
    gauge!("hapki_raft_commit_index").set(raft.commit_index.unwrap_or(0) as f64);
    counter!("hapki_raft_leader_changes_total").absolute(raft.leader_changes);
    counter!("hapki_raft_snapshot_installs_total").absolute(raft.snapshot_installs);
    if let Some(replication) = node.cluster.replication() {
        let last = raft.last_log_index.unwrap_or(0);
        for (peer, matched) in replication.into_iter().filter(|(id, _)| *id != node.id) {
            let peer_id = hapki_api::node_id_hex(peer);
            let lag = last.saturating_sub(matched.unwrap_or(0));
            gauge!("hapki_raft_replication_lag_entries", "peer" => peer_id.clone()).set(lag as f64);
            if let Some(since) = node.cluster.network().contacts.since(peer) {
                gauge!("hapki_raft_peer_last_contact_seconds", "peer" => peer_id).set(since.as_secs_f64());
            }
        }
    }

    if let Ok(meta) = std::fs::metadata(node.dir.db()) {
        gauge!("hapki_store_size_bytes").set(meta.len() as f64);
    }
    let Some(reader) = node.pki().and_then(|p| p.reader().ok()) else {
        return;
    };
    if let Ok(format) = reader.state_format() {
        gauge!("hapki_state_format").set(f64::from(format));
    }
    let now = crate::clock::system_now();
    for issuer in reader.issuers().unwrap_or_default() {
        let Ok(Some(crl)) = reader.latest_crl(&issuer.id) else {
            continue;
        };
        let id = issuer.id.clone();
        let (this_update, next_update) = (crl.this_update(), crl.next_update());
        gauge!("hapki_crl_number", "issuer" => id.clone()).set(crl.number() as f64);
        gauge!("hapki_crl_age_seconds", "issuer" => id.clone()).set(now.saturating_sub(this_update) as f64);
        gauge!("hapki_crl_validity_seconds", "issuer" => id.clone())
            .set(next_update.saturating_sub(this_update) as f64);
        gauge!("hapki_crl_next_update_timestamp_seconds", "issuer" => id).set(next_update as f64);
    }
}

/// The phase's name as a label value.
pub fn phase_kind(phase: &hapki_api::cluster::Phase) -> &'static str {
    use hapki_api::cluster::Phase;
    match phase {
        Phase::NotClustered => "not_clustered",
        Phase::Joining { .. } => "joining",
        Phase::Ready => "ready",
        Phase::Killed { .. } => "killed",
        Phase::Unknown { .. } => "unknown",
        Phase::Sealed { .. } => "sealed",
    }
}
