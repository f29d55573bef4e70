//! Admitting and removing nodes, on a member: `cluster nodes create` signs a
//! joining node's CSR with the internal CA and records the node as admitted;
//! `cluster nodes delete` takes a node out of the membership (promoting a
//! learner when a voter leaves) and records it as removed, after which its
//! certificates are refused on the channel.

use der::Encode;
use hapki_cluster::channel::{spki_key, NODE_URI_PREFIX};
use hapki_cluster::{MembershipChange, MembershipOutcome, MAX_NODES};
use hapki_domain::csr::parse_and_verify;
use hapki_domain::name::San;
use hapki_domain::pem::{encode, PemLabel};
use hapki_store::{Command, NodeRecord, NodeStanding, SerialMode};

use super::LifecycleError;
use super::Node;
use crate::auth::{Action, Caller};
use crate::tls;

pub use hapki_api::cluster::{SettingsChange, SignedNode};

impl Node {
    /// Signs a joining node's CSR.
    pub async fn sign_node_csr(&self, caller: &Caller, csr_pem: &str) -> Result<SignedNode, LifecycleError> {
        caller.may(Action::ManageCluster)?;
        let pki = self.pki().ok_or(LifecycleError::NotClustered)?;
        let csr = parse_and_verify(csr_pem.as_bytes())?;
        let mut id = None;
        let mut sans = Vec::new();
        for san in &csr.sans {
            match san {
                San::Uri(u) if u.starts_with(NODE_URI_PREFIX) => {
                    let parsed = u64::from_str_radix(&u[NODE_URI_PREFIX.len()..], 16)
                        .map_err(|_| LifecycleError::invalid(format!("'{u}' does not name a node id")))?;
                    if id.replace(parsed).is_some() {
                        return Err(LifecycleError::invalid("the CSR names more than one node id"));
                    }
                    sans.push(san.clone());
                }
                San::Dns(_) | San::Ip(_) => sans.push(san.clone()),
                other => {
                    return Err(LifecycleError::invalid(format!(
                        "a node CSR may name only its node id, DNS names and IPs, not {other:?}"
                    )))
                }
            }
        }
        let id = id.ok_or_else(|| {
            LifecycleError::invalid(
                "this is not a node CSR (it names no node id); make one with `hapki cluster csr` on the joining node",
            )
        })?;
        let reader = pki.reader()?;
        if matches!(reader.node(id)?, Some(r) if r.standing == NodeStanding::Removed) {
            return Err(LifecycleError::conflict(format!(
                "node {id:016x} was removed from this cluster; run `hapki cluster delete` on it to give it a new id, then a new CSR"
            )));
        }
        let members = self.cluster.members();
        if members.iter().any(|m| m.id == id) {
            return Err(LifecycleError::conflict(format!("node {id:016x} is already a member")));
        }
        if members.len() >= MAX_NODES {
            return Err(LifecycleError::conflict(format!(
                "the cluster already has {} nodes, the most it may have; remove one with `hapki cluster nodes delete --id ID` first",
                members.len()
            )));
        }
        let name = csr
            .common_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("{id:016x}"));
        let internal = tls::internal_ca(&pki).await?;
        let cert = internal.sign_node(&name, sans, csr.spki.clone())?;
        let spki = csr
            .spki
            .to_der()
            .map_err(|e| LifecycleError::internal(format!("encoding the node key: {e}")))?;
        pki.propose_as(
            caller,
            Command::AdmitNode {
                node: NodeRecord {
                    id,
                    name: name.clone(),
                    standing: NodeStanding::Admitted,
                    admitted_at: pki.now(),
                    removed_at: None,
                    // The channel accepts this node only with the key of this CSR.
                    channel_key: Some(spki_key(&spki)),
                },
            },
        )
        .await?;
        tracing::info!("signed the certificate of node {id:016x} ({name})");
        Ok(SignedNode {
            node_id: format!("{id:016x}"),
            name,
            certificate: format!(
                "{}{}",
                encode(PemLabel::Certificate, &cert),
                encode(PemLabel::Certificate, &internal.cert_der)
            ),
            cluster_id: reader.cluster_id()?.unwrap_or_default(),
            members: members
                .iter()
                .map(|m| m.addr.cluster.clone())
                .filter(|a| !a.is_empty())
                .collect(),
        })
    }

    /// Changes the replicated settings given; a new voters target (3 or 5) promotes
    /// learners up to it (lowering it keeps the voters there are). Returns the promoted nodes.
    pub async fn update_settings(&self, caller: &Caller, change: &SettingsChange) -> Result<Vec<u64>, LifecycleError> {
        caller.may(Action::ManageCluster)?;
        let origin = &caller.origin();
        let pki = self.pki().ok_or(LifecycleError::NotClustered)?;
        let tidy_changed =
            change.tidy_retention_secs.is_some() || change.tidy_batch.is_some() || change.tidy_share_percent.is_some();
        if change.voters_target.is_none()
            && change.serial_mode.is_none()
            && change.serial_range.is_none()
            && change.recovery_approvals.is_none()
            && !tidy_changed
            && change.delta_crl_secs.is_none()
            && change.crl_partition_size.is_none()
        {
            return Err(LifecycleError::invalid(
                "nothing to change: give voters_target, serial_mode, serial_range, recovery_approvals, \
                 tidy_retention_secs, tidy_batch, tidy_share_percent, delta_crl_secs or crl_partition_size",
            ));
        }
        if let Some(secs) = change.delta_crl_secs.filter(|s| *s > 86_400) {
            return Err(LifecycleError::invalid(format!(
                "delta_crl_secs must be between 0 (no delta CRLs) and 86400 (got {secs})"
            )));
        }
        let tidy = pki.reader()?.tidy_policy()?;
        let tidy = hapki_store::tidy::TidyPolicy {
            retention_secs: change.tidy_retention_secs.unwrap_or(tidy.retention_secs),
            batch: change.tidy_batch.unwrap_or(tidy.batch),
            share_percent: change.tidy_share_percent.unwrap_or(tidy.share_percent),
        };
        tidy.check().map_err(LifecycleError::invalid)?;
        let max = hapki_store::archive::MAX_RECOVERY_APPROVALS;
        if let Some(m) = change.recovery_approvals.filter(|m| *m == 0 || *m > max) {
            return Err(LifecycleError::invalid(format!(
                "recovery_approvals must be between 1 and {max} (got {m})"
            )));
        }
        let mut settings = pki.reader()?.settings()?;
        if let Some(target) = change.voters_target {
            if ![3, 5].contains(&target) {
                return Err(LifecycleError::invalid(format!(
                    "voters_target must be 3 or 5 (got {target})"
                )));
            }
            settings.voters_target = target;
        }
        if let Some(mode) = &change.serial_mode {
            settings.serial_mode = match mode.as_str() {
                "random" => SerialMode::Random,
                "sequential" => SerialMode::Sequential,
                other => {
                    return Err(LifecycleError::invalid(format!(
                        "serial_mode must be random or sequential (got '{other}')"
                    )))
                }
            };
        }
        if let Some(range) = change.serial_range {
            if !(10..=1_000_000).contains(&range) {
                return Err(LifecycleError::invalid(format!(
                    "serial_range must be between 10 and 1000000 (got {range})"
                )));
            }
            settings.serial_range = range;
        }
        let target = settings.voters_target;
        let settings_changed =
            change.voters_target.is_some() || change.serial_mode.is_some() || change.serial_range.is_some();
        if settings_changed {
            pki.propose_as(caller, Command::PutSettings { settings }).await?;
        }
        if let Some(approvals) = change.recovery_approvals {
            let policy = hapki_store::RecoveryPolicy {
                approvals,
                ..pki.recovery_policy()?
            };
            pki.propose_as(caller, Command::SetRecoveryPolicy { policy }).await?;
        }
        if tidy_changed {
            pki.set_tidy_policy(caller, tidy).await?;
        }
        if let Some(delta_secs) = change.delta_crl_secs {
            let policy = hapki_store::crl_delta::CrlPolicy { delta_secs };
            pki.propose_as(caller, Command::SetCrlPolicy { policy }).await?;
        }
        if let Some(size) = change.crl_partition_size {
            let policy = hapki_store::crl_partition::CrlPartitioning { size };
            pki.propose_as(caller, Command::SetCrlPartitioning { policy }).await?;
        }
        let mut promoted = Vec::new();
        if change.voters_target.is_some() {
            for learner in self.cluster.members().into_iter().filter(|m| !m.voter) {
                let outcome = self
                    .cluster
                    .change_membership(
                        origin,
                        MembershipChange::Promote {
                            id: learner.id,
                            voters_target: target,
                        },
                    )
                    .await?;
                if outcome.voter {
                    promoted.push(learner.id);
                }
            }
        }
        Ok(promoted)
    }

    /// Removes another node from the cluster.
    pub async fn remove_node(&self, caller: &Caller, id: u64) -> Result<MembershipOutcome, LifecycleError> {
        caller.may(Action::ManageCluster)?;
        let origin = &caller.origin();
        let pki = self.pki().ok_or(LifecycleError::NotClustered)?;
        if id == self.id {
            return Err(LifecycleError::conflict(format!(
                "a node cannot remove itself: run `hapki cluster nodes delete --id {id:016x}` against another member, then `hapki cluster delete` on this one"
            )));
        }
        let reader = pki.reader()?;
        let voters_target = reader.settings()?.voters_target;
        let admitted = matches!(reader.node(id)?, Some(r) if r.standing == NodeStanding::Admitted);
        if admitted && !self.cluster.members().iter().any(|m| m.id == id) {
            // Certified but never joined: withdraw the admission, so its certificate cannot join.
            pki.propose_as(caller, Command::RemoveNode { id, at: pki.now() })
                .await?;
            tracing::info!("withdrew the admission of node {id:016x}, which never joined");
            return Ok(MembershipOutcome::default());
        }
        let outcome = self
            .cluster
            .change_membership(origin, MembershipChange::Remove { id, voters_target })
            .await?;
        pki.propose_as(caller, Command::RemoveNode { id, at: pki.now() })
            .await?;
        tracing::info!("removed node {id:016x} from the cluster");
        Ok(outcome)
    }
}
