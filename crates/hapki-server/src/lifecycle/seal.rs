//! A member whose root of trust cannot be reached at start (token absent, PIN
//! refused, key file missing) is `sealed`: it opens no key, serves none of the
//! CA's routes (503 `sealed`), and tries again by itself with backoff, or at
//! once on `hapki node unseal`. Also moving a running node to another root of
//! trust (`hapki node migrate-root-of-trust`).

use std::sync::Arc;
use std::time::Duration;

use hapki_api::node::{RootOfTrustMigrated, RootOfTrustSpec, Unsealed};
use hapki_api::node_id_hex;

use super::channel_key::ChannelKey;
use super::{LifecycleError, Node, Phase};
use crate::auth::{Action, Caller};
use crate::trust::{self, Keyring, TrustError};

/// The first wait between tries, doubled after each up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Node {
    /// Opens the KEK and the channel key under the node's root of trust and turns the CA
    /// service on; [`LifecycleError::Sealed`] when the root cannot be reached.
    pub(super) async fn unseal_now(self: &Arc<Self>) -> Result<(), LifecycleError> {
        let root = self.root();
        let dir = self.dir.clone();
        let keyring = tokio::task::spawn_blocking(move || -> Result<Keyring, LifecycleError> {
            let keyring = Keyring::load(&dir, root.clone())?;
            // Both open before anything starts, so a failure leaves nothing half running.
            ChannelKey::load(&dir, &*root)?;
            Ok(keyring)
        })
        .await
        .map_err(|e| LifecycleError::internal(e.to_string()))??;
        // The channel opens at once: a member that returns hears from the leader through it
        // and catches up by itself (health says `no_quorum` until it does).
        self.activate(keyring).await?;
        Ok(())
    }

    /// `hapki node unseal`: tries at once; a node that is not sealed has nothing to do.
    pub async fn unseal(self: &Arc<Self>, caller: &Caller) -> Result<Unsealed, LifecycleError> {
        caller.may(Action::ManageCluster)?;
        if matches!(self.phase(), Phase::Sealed { .. }) {
            let _busy = self.busy.try_lock().map_err(|_| LifecycleError::Busy)?;
            if matches!(self.phase(), Phase::Sealed { .. }) {
                self.unseal_attempt().await?;
            }
        }
        Ok(Unsealed {
            node_id: node_id_hex(self.id),
            status: self.phase().label(),
            root_of_trust: self.root().spec().to_string(),
        })
    }

    /// One try, with the node's phase saying why it is still sealed when it fails.
    async fn unseal_attempt(self: &Arc<Self>) -> Result<(), LifecycleError> {
        match self.unseal_now().await {
            Ok(()) => {
                self.cluster.raft().runtime_config().elect(true);
                tracing::info!("unsealed: {} is reachable", self.root().spec());
                Ok(())
            }
            Err(e) => {
                let reason = match &e {
                    LifecycleError::Sealed(reason) => reason.clone(),
                    other => other.to_string(),
                };
                match self.phase() {
                    Phase::Sealed { reason: was } if was == reason => {}
                    Phase::Sealed { .. } => {
                        // Still sealed, for another reason: said, not a new phase.
                        tracing::warn!("still sealed: {reason}");
                        *self.phase.write().expect("phase lock") = Phase::Sealed { reason: reason.clone() };
                    }
                    _ => self.set_phase(Phase::Sealed { reason: reason.clone() }),
                }
                Err(LifecycleError::Sealed(reason))
            }
        }
    }

    /// `hapki node migrate-root-of-trust`: seals this node's KEK and channel key under `to`
    /// and, once nothing is sealed under the old root, removes its key file. The node keeps
    /// serving throughout; the cluster is not involved (the KEK itself does not change).
    pub async fn migrate_root_of_trust(
        self: &Arc<Self>,
        caller: &Caller,
        to: RootOfTrustSpec,
    ) -> Result<RootOfTrustMigrated, LifecycleError> {
        caller.may(Action::ManageCluster)?;
        let pki = self.pki().ok_or_else(|| self.unserved())?;
        let _busy = self.busy.try_lock().map_err(|_| LifecycleError::Busy)?;
        check_reachable(&to)?;
        let from = pki.keyring.root().spec().to_string();
        let target = trust::root::open(&to, &self.dir);
        let moved = target.clone();
        let removed = tokio::task::spawn_blocking(move || trust::migrate::migrate(&pki.keyring, moved))
            .await
            .map_err(|e| LifecycleError::internal(e.to_string()))?
            .map_err(|e| match e {
                TrustError::Io { .. } => LifecycleError::internal(e.to_string()),
                e => LifecycleError::invalid(format!("cannot move this node under {to}: {e}; nothing was changed")),
            })?;
        *self.root.write().expect("root lock") = target;
        let config = toml::to_string(&to).unwrap_or_default();
        Ok(RootOfTrustMigrated {
            node_id: node_id_hex(self.id),
            from,
            to: to.to_string(),
            removed: removed.map(|p| p.display().to_string()),
            next: format!(
                "the data directory records the new root of trust, so the node starts with it when node.toml \
                 names none; if node.toml or the command line names one, make it:\n[root_of_trust]\n{config}"
            ),
        })
    }
}

/// Refuses at once what cannot work: a module or PIN file that is not there.
fn check_reachable(to: &RootOfTrustSpec) -> Result<(), LifecycleError> {
    if let RootOfTrustSpec::Pkcs11 { module, pin_file, .. } = to {
        for (what, path) in [("PKCS#11 module", module), ("PIN file", pin_file)] {
            if !path.is_file() {
                return Err(LifecycleError::invalid(format!(
                    "the {what} {} is not a file on this node",
                    path.display()
                )));
            }
        }
    }
    Ok(())
}

/// Tries to unseal, waiting longer after each failure, until the node is unsealed (by this
/// loop or by `hapki node unseal`).
pub(super) async fn retry(node: Arc<Node>) {
    let mut wait = FIRST_BACKOFF;
    loop {
        tokio::time::sleep(wait).await;
        if !matches!(node.phase(), Phase::Sealed { .. }) {
            return;
        }
        let Ok(_busy) = node.busy.clone().try_lock_owned() else {
            continue;
        };
        if node.unseal_attempt().await.is_ok() {
            return;
        }
        wait = (wait * 2).min(MAX_BACKOFF);
    }
}
