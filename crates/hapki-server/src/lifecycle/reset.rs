//! `cluster delete`: resets a node that is no longer a member (or whose cluster
//! is gone) to a fresh one, so it can join again or start a new cluster. The
//! node's files are removed and the process starts over in place, with a new
//! node id, as `not clustered`.

use std::os::unix::process::CommandExt;
use std::sync::Arc;
use std::time::Duration;

use super::LifecycleError;
use super::Node;

impl Node {
    /// Checks that this node may be reset and schedules the reset right after the answer is sent.
    pub async fn delete(self: &Arc<Self>, force: bool) -> Result<(), LifecycleError> {
        let guard = self.busy.clone().try_lock_owned().map_err(|_| LifecycleError::Busy)?;
        if self.pki().is_some() && !force {
            self.may_reset()
                .await
                .map_err(|why| LifecycleError::conflict(format!("{why} (pass --force to reset it anyway)")))?;
        }
        let node = self.clone();
        tokio::spawn(async move {
            let _guard = guard;
            tokio::time::sleep(Duration::from_millis(300)).await;
            node.reset().await;
        });
        Ok(())
    }

    /// Whether a clustered node may be reset without `--force`: only once the cluster removed it.
    async fn may_reset(&self) -> Result<(), String> {
        let members = self.cluster.members();
        if !members.iter().any(|m| m.id == self.id) {
            return Ok(());
        }
        if members.len() == 1 {
            return Err(
                "this node is its cluster's only member: resetting it destroys the cluster, its CAs and certificates"
                    .into(),
            );
        }
        // Asking the leader tells whether the cluster still counts this node in: a removed
        // node is refused on the channel.
        match self.cluster.read_index().await {
            Ok(_) => Err(format!(
                "this node is still a member of a cluster with other nodes: remove it first with `hapki cluster nodes delete --id {:016x}` on another member",
                self.id
            )),
            Err(hapki_cluster::ProposeError::Removed(_)) => Ok(()),
            Err(e) => Err(format!(
                "cannot confirm with the cluster's leader that this node was removed ({e}); if that cluster is gone for good"
            )),
        }
    }

    /// Removes the node's files and starts the process over.
    async fn reset(&self) {
        println!(
            "hapki: resetting node {:016x}: removing its data and starting over",
            self.id
        );
        if let Err(e) = self.cluster.shutdown().await {
            tracing::warn!("stopping Raft before the reset: {e}");
        }
        let root = &self.dir.root;
        let d = &self.dir;
        for path in [
            d.db(),
            d.node_id(),
            d.unseal_key(),
            crate::trust::root::record_path(d),
            d.sealed_kek(),
            d.channel_key(),
            d.channel_cert(),
            d.admin_token(),
            d.bootstrap_token(),
            d.ca_pem(),
            d.api_ca_pem(),
        ] {
            if path.exists() {
                if let Err(e) = std::fs::remove_file(&path) {
                    eprintln!("hapki: cannot remove {}: {e}", path.display());
                }
            }
        }
        for dir in [root.join("snapshots"), root.join("raft-log")] {
            if dir.exists() {
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    eprintln!("hapki: cannot remove {}: {e}", dir.display());
                }
            }
        }
        let err = match std::env::current_exe() {
            Ok(exe) => std::process::Command::new(exe).args(std::env::args_os().skip(1)).exec(),
            Err(e) => e,
        };
        eprintln!("hapki: the node was reset but cannot start again by itself ({err}); start it again");
        std::process::exit(1);
    }
}
