//! Polls every voter for its build (version and highest state format) and hands what it
//! heard to the CA service's feature gates ([`crate::pki::gates`]); on the leader, each
//! round also raises the cluster's state format once every voter applies a higher one.

use std::sync::Arc;
use std::time::Duration;

use hapki_api::channel::NodeBuild;

use super::peer::paths;
use super::Node;
use crate::pki::gates::VoterBuild;

/// How often the voters are asked.
pub const POLL: Duration = Duration::from_secs(2);

/// Each voter's build, this node's own without asking.
pub async fn poll_voters(node: &Node) -> Vec<VoterBuild> {
    let mut builds = Vec::new();
    for m in node.cluster.members().into_iter().filter(|m| m.voter) {
        if m.id == node.id {
            builds.push(VoterBuild::this_node(node.id, &node.name));
            continue;
        }
        let heard = node
            .cluster
            .network()
            .call_json::<_, NodeBuild>(&m.addr.cluster, paths::BUILD, &(), POLL)
            .await
            .ok();
        builds.push(VoterBuild {
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
            pki.set_voter_builds(poll_voters(&node).await);
            if let Err(e) = pki.raise_format().await {
                tracing::warn!("could not raise the cluster's state format: {e}");
            }
        }
        tokio::time::sleep(POLL).await;
    }
}
