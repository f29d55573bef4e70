//! Rotating the cluster KEK (`hapki cluster rotate-kek`): the node that runs it
//! makes the next KEK and hands it to every member over the cluster channel
//! (each seals it under its own root of trust); only once all of them hold it,
//! it seals every key of the state anew under it and proposes one command that
//! swaps them all. When a node applies that command it seals with the new KEK
//! and forgets the old one. A member that was away asks another member for the
//! KEK the state names when it comes back.

use std::time::Duration;

use hapki_domain::serial::Serial;
use hapki_domain::wrap::Wrapped;
use hapki_store::{Command, RewrappedIssuer};

use super::channel_key::ChannelKey;
use super::peer::{paths, KekTransfer};
use super::LifecycleError;
use super::Node;
use crate::auth::{Action, Caller};
use crate::pki::{archived_context, Pki, ACME_CONTEXT, AUDIT_CONTEXT, TRANSPORT_CONTEXT};
use crate::rand;

const OFFER_TIMEOUT: Duration = Duration::from_secs(15);

pub use hapki_api::cluster::Rotation;

impl Node {
    /// Rotates the KEK on behalf of `caller` (an admin's request).
    pub async fn rotate_kek(&self, caller: &Caller) -> Result<Rotation, LifecycleError> {
        caller.may(Action::ManageCluster)?;
        let pki = self.pki().ok_or(LifecycleError::NotClustered)?;
        let _busy = self.busy.try_lock().map_err(|_| LifecycleError::Busy)?;
        let from = pki.reader()?.kek_id()?;
        let to = from + 1;
        let kek = rand::bytes::<32>();
        let members = self.cluster.members();
        for m in &members {
            if m.id == self.id {
                pki.keyring
                    .add(to, kek)
                    .map_err(|e| LifecycleError::internal(e.to_string()))?;
                continue;
            }
            self.cluster
                .network()
                .call_json::<_, ()>(&m.addr.cluster, paths::KEK_OFFER, &KekTransfer::new(to, &kek), OFFER_TIMEOUT)
                .await
                .map_err(|e| {
                    LifecycleError::unavailable(format!(
                        "node {:016x} ({}) did not take the new KEK: {e}; nothing was changed, retry once every member is up",
                        m.id, m.addr.name
                    ))
                })?;
        }
        let Rewrapped {
            issuers,
            internal_ca,
            archived,
            transport,
            audit,
            acme,
            keys,
        } = rewrap(&pki, to)?;
        let rotation = Command::RotateKekWithArchive {
            from,
            to,
            issuers,
            internal_ca,
            archived,
            transport,
        };
        let command = match audit {
            Some(audit) => Command::RotateKekWithAudit {
                rotation: Box::new(rotation),
                audit,
            },
            None => rotation,
        };
        let command = match acme {
            Some(acme) => Command::RotateKekWithAcme {
                rotation: Box::new(command),
                acme,
            },
            None => command,
        };
        pki.propose_as(caller, command).await?;
        tracing::info!("rotated the cluster KEK from {from} to {to}: {keys} keys sealed anew");
        Ok(Rotation {
            from,
            to,
            keys,
            nodes: members.len(),
        })
    }

    /// Makes this node seal with the KEK the state names, asking the leader for it when this
    /// node does not hold it (it was away during a rotation).
    pub(super) async fn sync_kek(&self, pki: &Pki) -> Result<(), LifecycleError> {
        let wanted = pki.reader()?.kek_id()?;
        if !pki.keyring.holds(wanted) {
            if self.cluster.network().http().is_none() {
                // Back from a stop: the channel identity kept on disk is enough to ask.
                if let Some(kept) = ChannelKey::load(&self.dir, &*self.root())? {
                    self.cluster
                        .network()
                        .set_identity(&kept.identity()?)
                        .map_err(LifecycleError::internal)?;
                }
            }
            let got: KekTransfer = self
                .cluster
                .call_leader_json(paths::KEK_FETCH, &wanted, OFFER_TIMEOUT)
                .await
                .map_err(|e| {
                    LifecycleError::unavailable(format!(
                        "this node does not hold KEK {wanted}, which seals the cluster's keys since a rotation, and cannot get it from the leader: {e}"
                    ))
                })?;
            let kek = got
                .bytes()
                .filter(|_| got.id == wanted)
                .ok_or_else(|| LifecycleError::internal("the leader sent a malformed KEK"))?;
            pki.keyring
                .add(wanted, kek)
                .map_err(|e| LifecycleError::internal(e.to_string()))?;
            tracing::info!("took KEK {wanted} from the leader");
        }
        pki.keyring
            .set_current(wanted)
            .map_err(|e| LifecycleError::internal(e.to_string()))
    }
}

/// Every key of the state sealed anew under KEK `to`; returns them and how many there are.
/// Every key of the state, sealed anew under KEK `to`.
struct Rewrapped {
    issuers: Vec<RewrappedIssuer>,
    internal_ca: Option<Wrapped>,
    archived: Vec<(Serial, Wrapped)>,
    transport: Option<Wrapped>,
    audit: Option<Wrapped>,
    acme: Option<Wrapped>,
    keys: usize,
}

fn rewrap(pki: &Pki, to: u32) -> Result<Rewrapped, LifecycleError> {
    let reader = pki.reader()?;
    let mut keys = 0;
    let mut again = |context: String, w: &Wrapped| -> Result<_, LifecycleError> {
        let plain = pki.keyring.open(&context, w)?;
        keys += 1;
        Ok(pki.keyring.seal_with(to, &context, &plain)?)
    };
    let mut issuers = Vec::new();
    for i in reader.issuers()? {
        let key = again(format!("issuer-key:{}", i.id), &i.wrapped_key)?;
        let ocsp = match &i.ocsp {
            Some(o) => Some(again(format!("ocsp-key:{}", i.id), &o.wrapped_key)?),
            None => None,
        };
        issuers.push(RewrappedIssuer { id: i.id, key, ocsp });
    }
    let internal_ca = match reader.internal_ca()? {
        Some(ca) => Some(again("internal-ca-key".into(), &ca.wrapped_key)?),
        None => None,
    };
    let mut archived = Vec::new();
    for k in reader.archived_keys()? {
        archived.push((k.serial, again(archived_context(&k.serial), &k.wrapped_key)?));
    }
    let transport = match reader.archive_transport()? {
        Some(t) => Some(again(TRANSPORT_CONTEXT.into(), &t.wrapped_key)?),
        None => None,
    };
    let audit = match reader.audit_key()? {
        Some(a) => Some(again(AUDIT_CONTEXT.into(), &a.wrapped_key)?),
        None => None,
    };
    let acme = match reader.acme_secret()? {
        Some(a) => Some(again(ACME_CONTEXT.into(), &a.wrapped)?),
        None => None,
    };
    Ok(Rewrapped {
        issuers,
        internal_ca,
        archived,
        transport,
        audit,
        acme,
        keys,
    })
}
