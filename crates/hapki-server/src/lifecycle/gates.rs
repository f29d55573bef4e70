//! Polls every member (voters and learners: both apply the log) for its build (version and highest state format) and hands what it
//! heard to the CA service's feature gates ([`crate::pki::gates`]); on the leader, each
//! round also raises the cluster's state format once every member applies a higher one.

use std::sync::Arc;
use std::time::Duration;

use hapki_api::channel::NodeBuild;

use super::peer::paths;
use super::Node;
use crate::pki::gates::MemberBuild;

/// How often the members are asked.
pub const POLL: Duration = Duration::from_secs(2);

/// Each member's build, this node's own without asking.
pub async fn poll_members(node: &Node) -> Vec<MemberBuild> {
    let mut builds = Vec::new();
    for m in node.cluster.members() {
        if m.id == node.id {
            builds.push(MemberBuild::this_node(node.id, &node.name));
            continue;
        }
        let heard = node
            .cluster
            .network()
            .call_json::<_, NodeBuild>(&m.addr.cluster, paths::BUILD, &(), POLL)
            .await
            .ok();
        builds.push(MemberBuild {
            id: m.id,
            name: m.addr.name.clone(),
            version: heard.as_ref().map(|b| b.version.clone()),
            max_format: heard.map(|b| b.max_format),
        });
    }
    builds
}

/// Runs for as long as the node does.
pub async fn run(node: Arc<Node>) {
    loop {
        if let Some(pki) = node.pki() {
            pki.set_member_builds(poll_members(&node).await);
            if let Err(e) = pki.raise_format().await {
                tracing::warn!("could not raise the cluster's state format: {e}");
            }
        }
        tokio::time::sleep(POLL).await;
    }
}
