//! `cluster summary`: every member's own report (status, role, version,
//! applied index, apply rate, digest, recent errors), the leader's view of each
//! follower (matched index, lag in entries and bytes, last contact), and an
//! overall verdict, `GOOD` or `BAD: <reason>`, with the time it was computed.

use std::time::Duration;

use hapki_cluster::NodeId;

use super::peer::paths;
use super::{Node, Phase};
use crate::api::VERSION;
use crate::recent::recent_errors;

/// Lag, in entries, above which a follower makes the cluster `BAD`.
pub const LAG_ALARM_ENTRIES: u64 = 10_000;

pub use hapki_api::cluster::{ClusterStatus, FollowerView, NodeReport, Summary, SummaryRow};

fn hex_id(id: NodeId) -> String {
    format!("{id:016x}")
}

/// This node's report.
pub fn report(node: &Node) -> NodeReport {
    let status = node.cluster.status();
    let members = node.cluster.members();
    let me = members.iter().find(|m| m.id == node.id);
    let role = match me {
        _ if status.is_leader => "leader",
        Some(m) if m.voter => "voter",
        Some(_) => "learner",
        None => "none",
    };
    let phase = node.phase();
    let reason = match &phase {
        Phase::Killed { reason } | Phase::Unknown { reason } | Phase::Sealed { reason } => Some(reason.clone()),
        Phase::Joining { detail, .. } if !detail.is_empty() => Some(detail.clone()),
        _ => None,
    };
    let last = status.last_log_index;
    let followers = node
        .cluster
        .replication()
        .map(|r| {
            r.into_iter()
                .filter(|(id, _)| *id != node.id)
                .map(|(id, matched)| FollowerView {
                    id: hex_id(id),
                    matched,
                    lag_entries: last.unwrap_or(0).saturating_sub(matched.unwrap_or(0)),
                    lag_bytes: node.cluster.log_bytes_after(matched),
                    last_contact_ms: node.cluster.network().contacts.since(id).map(|d| d.as_millis() as u64),
                })
                .collect()
        })
        .unwrap_or_default();
    NodeReport {
        id: hex_id(node.id),
        name: node.name.clone(),
        status: phase.label(),
        reason,
        role: role.into(),
        version: VERSION.into(),
        max_format: Some(hapki_store::format::MAX),
        api: node.cfg.listen.to_string(),
        cluster: node.cfg.cluster_address().unwrap_or_default(),
        term: status.term,
        leader: status.leader.map(hex_id),
        applied_index: status.last_applied,
        last_log_index: last,
        snapshot_index: node.cluster.snapshot_index(),
        apply_rate: (node.apply_rate.per_second() * 10.0).round() / 10.0,
        digest: node.pki().and_then(|p| p.reader().ok()).and_then(|r| r.digest().ok()),
        root_of_trust: node.root().spec().kind().to_string(),
        recent_errors: recent_errors(),
        followers,
    }
}

/// A member's row from its own report and the leader's view of it.
pub fn row(m: &hapki_cluster::Member, r: NodeReport, follower: Option<&FollowerView>) -> SummaryRow {
    SummaryRow {
        id: hex_id(m.id),
        name: r.name,
        address: m.addr.api.clone(),
        status: r.status,
        role: r.role,
        version: Some(r.version),
        max_format: r.max_format,
        last_contact_ms: follower.and_then(|f| f.last_contact_ms),
        matched_index: follower.map(|f| f.matched).unwrap_or(r.last_log_index),
        lag_entries: follower.map(|f| f.lag_entries).or(Some(0)),
        lag_bytes: follower.map(|f| f.lag_bytes).or(Some(0)),
        applied_index: r.applied_index,
        apply_rate: Some(r.apply_rate),
        digest: r.digest,
        root_of_trust: Some(r.root_of_trust).filter(|k| !k.is_empty()),
        errors: r.recent_errors,
        reason: r.reason,
    }
}

/// Asks every member for its report and puts them together.
pub async fn summary(node: &Node) -> Summary {
    let members = node.cluster.members();
    let mut reports = Vec::new();
    for m in &members {
        let r = if m.id == node.id {
            Ok(report(node))
        } else {
            node.cluster
                .network()
                .call_json::<_, NodeReport>(&m.addr.cluster, paths::REPORT, &(), Duration::from_secs(3))
                .await
                .map_err(|e| e.to_string())
        };
        reports.push((m, r));
    }
    let leader_view: Vec<FollowerView> = reports
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .find(|r| r.role == "leader")
        .map(|r| r.followers.clone())
        .unwrap_or_default();
    let mut problems = Vec::new();
    if !reports.iter().any(|(_, r)| matches!(r, Ok(r) if r.role == "leader")) {
        problems.push("no leader".to_string());
    }
    let mut rows = Vec::new();
    for (m, r) in reports {
        let id = hex_id(m.id);
        let follower = leader_view.iter().find(|f| f.id == id);
        let row = match r {
            Ok(r) => {
                if r.status != "ready" {
                    problems.push(format!("node {} is {}", m.addr.name, r.status));
                }
                row(m, r, follower)
            }
            Err(e) => {
                // A sealed member has no channel identity; its API says what it is.
                let probed = probe(&m.addr.api).await;
                let status = probed.as_ref().map_or("down".to_string(), |p| p.status.clone());
                problems.push(format!("node {} is {status}", m.addr.name));
                let reason = match probed.as_ref().map(|p| &p.phase) {
                    Some(Phase::Sealed { reason }) => reason.clone(),
                    _ => e,
                };
                SummaryRow {
                    id,
                    name: m.addr.name.clone(),
                    address: m.addr.api.clone(),
                    status,
                    role: if m.voter { "voter" } else { "learner" }.into(),
                    version: probed.as_ref().map(|p| p.version.clone()),
                    max_format: None,
                    last_contact_ms: follower.and_then(|f| f.last_contact_ms),
                    matched_index: follower.and_then(|f| f.matched),
                    lag_entries: follower.map(|f| f.lag_entries),
                    lag_bytes: follower.map(|f| f.lag_bytes),
                    applied_index: None,
                    apply_rate: None,
                    digest: None,
                    root_of_trust: probed.and_then(|p| p.root_of_trust),
                    errors: Vec::new(),
                    reason: Some(reason),
                }
            }
        };
        if let Some(f) = follower {
            if f.lag_entries > LAG_ALARM_ENTRIES {
                problems.push(format!("node {} lags {} entries", row.name, f.lag_entries));
            }
            let alarm_ms = node.cfg.contact_alarm_secs * 1000;
            if f.last_contact_ms.is_none_or(|ms| ms > alarm_ms) && !matches!(row.status.as_str(), "down" | "sealed") {
                problems.push(format!(
                    "the leader has not heard from node {} for over {} s",
                    row.name, node.cfg.contact_alarm_secs
                ));
            }
        }
        rows.push(row);
    }
    let members_apply = rows
        .iter()
        .map(|r| r.max_format)
        .collect::<Option<Vec<_>>>()
        .and_then(|f| f.into_iter().min());
    let effective_format = node
        .pki()
        .and_then(|p| p.reader().ok())
        .and_then(|r| r.state_format().ok())
        .unwrap_or(hapki_store::format::BASELINE);
    Summary {
        nodes: rows,
        effective_format,
        members_apply,
        overall: if problems.is_empty() {
            "GOOD".into()
        } else {
            format!("BAD: {}", problems.join("; "))
        },
        computed_at: hapki_domain::time::rfc3339(crate::clock::system_now()),
    }
}

/// What a member that did not answer on the cluster channel says on its API (`GET
/// /v1/cluster/status`, no token): a sealed node still answers there. Its certificate is not
/// checked: it is signed by the node's throwaway CA while it is sealed, and only the phase
/// is read from it.
async fn probe(api: &str) -> Option<ClusterStatus> {
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    let status: ClusterStatus = client
        .get(format!("https://{api}/v1/cluster/status"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    // A node answering but ready would have answered on the channel too: keep "down".
    (status.status != "ready").then_some(status)
}
