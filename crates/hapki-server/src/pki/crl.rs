//! Revocation and CRLs. A revocation is committed through the log, then the issuer's
//! next CRL is published: as a head the log records without bytes, which every node
//! builds and signs from its replica ([`super::crl_bytes`]), or, while the cluster's
//! state format is 1, as bytes built here and carried by the log.
//! Only the leader publishes CRLs (it is the CRL owner, and ownership moves with
//! leadership): a follower that took a revocation asks the leader for a CRL that
//! holds it. Concurrent revocations share one publication: a CRL published from a
//! state that already holds a revocation is not published again for it.
//!
//! With delta CRLs on ([`hapki_store::crl_delta`]), a revocation is published in a delta
//! CRL and the complete CRL follows its schedule; the leader also publishes a delta
//! every `delta_crl_secs` when revocations wait for one or the latest is half way to its
//! next update.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hapki_domain::crl::{build_crl, CrlEntry, CrlKind};
use hapki_domain::revocation::RevocationReason;
use hapki_domain::serial::Serial;
use hapki_store::crl_delta::DeltaHead;
use hapki_store::{Command, CommandResult, CrlHead, CrlRecord, LatestCrl, RejectCode, Revocation};

use super::{LoadedIssuer, Pki};
use crate::auth::Caller;
use crate::pki::PkiError;

pub use hapki_api::channel::{paths::CRL as CRL_PATH, CrlRequest};

/// What a publication must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Publish {
    /// Whatever lists the latest revocations: a delta when the issuer has them.
    Latest,
    Complete,
}

/// Which state index each issuer's latest CRL was built from.
#[derive(Default)]
pub struct CrlScheduler {
    pub(super) built_from: tokio::sync::Mutex<HashMap<String, u64>>,
}

use hapki_api::ca::CrlRotated;
pub use hapki_api::certs::Revoked;

impl Pki {
    /// Revokes a certificate and publishes a CRL that lists it. A retry with the idempotency
    /// key of a revocation that went through answers as the first did.
    pub async fn revoke(
        &self,
        caller: &Caller,
        serial: &Serial,
        reason: RevocationReason,
        idempotency_key: Option<[u8; 32]>,
    ) -> Result<Revoked, PkiError> {
        // The role first: a caller that may not revoke learns nothing about the serial.
        caller.may(crate::auth::Action::Revoke)?;
        let reader = self.reader()?;
        let cert = reader
            .cert(serial)?
            .ok_or_else(|| PkiError::not_found(format!("no certificate with serial {serial}")))?;
        self.authorize_revoke(caller, &cert)?;
        let replay = match idempotency_key {
            Some(key) => reader
                .idempotent_serial(&key, self.now())?
                .is_some_and(|s| s == *serial),
            None => false,
        };
        drop(reader);
        if let Some(r) = cert.revoked {
            if !replay {
                return Err(PkiError::conflict(format!(
                    "certificate {serial} is already revoked ({}, at {})",
                    r.reason,
                    hapki_domain::time::rfc3339(r.at)
                )));
            }
            return self.revoked_answer(serial, &cert.issuer_id, r.reason, r.at).await;
        }
        let at = self.now();
        match self
            .cluster
            .propose(
                &caller.origin(),
                self.audited(
                    caller,
                    Command::Revoke {
                        serial: *serial,
                        reason,
                        at,
                        idempotency_key,
                    },
                ),
            )
            .await?
        {
            CommandResult::Applied => {
                // The listener drops it too; here, before this caller can ask.
                self.ocsp_cache.forget(&serial.0);
                metrics::counter!(crate::metrics::REVOKED, "issuer" => cert.issuer_id.clone()).increment(1);
                self.revoked_answer(serial, &cert.issuer_id, reason, at).await
            }
            CommandResult::Replayed { .. } => {
                let r = self
                    .reader()?
                    .cert(serial)?
                    .and_then(|c| c.revoked)
                    .ok_or_else(|| PkiError::internal("a replayed revocation is not recorded"))?;
                self.revoked_answer(serial, &cert.issuer_id, r.reason, r.at).await
            }
            CommandResult::Rejected { code, message } => Err(PkiError::Rejected { code, message }),
        }
    }

    /// The answer to a revocation, once a CRL that lists it is published.
    async fn revoked_answer(
        &self,
        serial: &Serial,
        issuer_id: &str,
        reason: RevocationReason,
        at: u64,
    ) -> Result<Revoked, PkiError> {
        let applied = self.cluster.status().last_applied.unwrap_or(0);
        let crl_number = self.refresh_crl(issuer_id, applied).await?;
        Ok(Revoked {
            serial: serial.to_hex(),
            reason: reason.to_string(),
            revoked_at: at,
            crl_number,
        })
    }

    /// Publishes a new complete CRL of `issuer` (the default one when `None`) now.
    pub async fn rotate_crl(&self, caller: &Caller, issuer: Option<&str>) -> Result<CrlRotated, PkiError> {
        caller.may(crate::auth::Action::RotateCrl)?;
        let issuer = self.issuer(issuer)?;
        let number = self.publish_complete(&issuer.record.id).await?;
        Ok(CrlRotated {
            issuer: issuer.record.id.clone(),
            crl_number: number,
        })
    }

    /// Publishes a complete CRL of the issuer now, on this node; with deltas on, also the
    /// first delta of it, so that its Freshest CRL pointer leads somewhere at once.
    async fn publish_complete(&self, issuer_id: &str) -> Result<u64, PkiError> {
        let mut built_from = self.crl.built_from.lock().await;
        let index = self.cluster.status().last_applied.unwrap_or(0);
        let number = self.publish_crl(issuer_id, Publish::Complete).await?;
        built_from.insert(issuer_id.to_string(), index);
        if self.reader()?.has_deltas(issuer_id, number)? {
            self.publish_crl(issuer_id, Publish::Latest).await?;
        }
        Ok(number)
    }

    /// Makes sure the issuer's CRL reflects the state at `needed_index` or later; returns its number.
    pub async fn refresh_crl(&self, issuer_id: &str, needed_index: u64) -> Result<u64, PkiError> {
        if !self.cluster.status().is_leader {
            let req = CrlRequest {
                issuer_id: issuer_id.to_string(),
                needed_index,
            };
            return Ok(self.cluster.crl_from_leader(req).await?);
        }
        let mut built_from = self.crl.built_from.lock().await;
        if built_from.get(issuer_id).is_some_and(|b| *b >= needed_index) {
            if let Some(c) = self.reader()?.latest_crl(issuer_id)? {
                return Ok(c.number());
            }
        }
        // Read the index first: the replica read below holds at least this much.
        let index = self.cluster.status().last_applied.unwrap_or(0);
        let number = self.publish_crl(issuer_id, Publish::Latest).await?;
        built_from.insert(issuer_id.to_string(), index);
        Ok(number)
    }

    async fn publish_crl(&self, issuer_id: &str, what: Publish) -> Result<u64, PkiError> {
        let issuer = self.issuer(Some(issuer_id))?;
        for _ in 0..3 {
            let reader = self.reader()?;
            let validity = reader.settings()?.crl_validity_secs;
            let number = next_crl_number(&reader, issuer_id)?;
            let now = self.now();
            let delta_base = match what {
                Publish::Latest => delta_base(&reader, issuer_id)?,
                Publish::Complete => None,
            };
            let command = if let Some(base) = delta_base {
                drop(reader);
                Command::PublishDeltaHead {
                    head: DeltaHead {
                        issuer_id: issuer_id.to_string(),
                        number,
                        base,
                        this_update: now,
                        next_update: now + validity,
                    },
                }
            } else if reader.state_format()? >= 2 {
                drop(reader);
                Command::PublishCrlHead {
                    head: CrlHead {
                        issuer_id: issuer_id.to_string(),
                        number,
                        this_update: now,
                        next_update: now + validity,
                    },
                }
            } else {
                let revoked = reader.revoked_of(issuer_id)?;
                drop(reader);
                let count = revoked.len() as u64;
                let der = sign_crl(
                    &issuer,
                    number,
                    now,
                    now + validity,
                    CrlKind::Complete { freshest: None },
                    revoked,
                )?;
                let crl = CrlRecord {
                    issuer_id: issuer_id.to_string(),
                    number,
                    this_update: now,
                    next_update: now + validity,
                    entries: count,
                    der,
                };
                Command::PublishCrl { crl }
            };
            match self.cluster.propose(&hapki_cluster::Origin::Node, command).await? {
                CommandResult::Applied => return Ok(number),
                // Another node published this number first: build again on top of it.
                CommandResult::Rejected {
                    code: RejectCode::Conflict,
                    ..
                } => continue,
                CommandResult::Rejected { code, message } => return Err(PkiError::Rejected { code, message }),
                CommandResult::Replayed { .. } => return Err(PkiError::internal("a CRL was answered as a replay")),
            }
        }
        Err(PkiError::unavailable("the CRL number kept moving; retry"))
    }

    /// Renews every CRL that is missing or past half of its validity (or, with delta CRLs
    /// just turned on, has none), and every delegated OCSP signer within 30 days of its end.
    /// Run on a schedule by the leader.
    pub async fn renew_due_crls(&self) -> Result<(), PkiError> {
        if !self.cluster.status().is_leader {
            return Ok(());
        }
        let now = self.now();
        for issuer in self.active_issuers()? {
            self.renew_ocsp_signer_if_due(&issuer, now).await?;
            let id = &issuer.record.id;
            let reader = self.reader()?;
            let half_way = match reader.latest_crl(id)? {
                None => true,
                Some(c) => now >= c.this_update() + (c.next_update() - c.this_update()) / 2,
            };
            let due = half_way || lacks_deltas(&reader, id)?;
            drop(reader);
            if due {
                self.publish_complete(id).await?;
            }
        }
        Ok(())
    }

    /// On the leader: publishes the delta CRL of every issuer whose revocations wait for
    /// one, whose complete CRL has none yet, or whose latest delta is half way to its next
    /// update.
    pub async fn publish_due_deltas(&self) -> Result<(), PkiError> {
        if !self.cluster.status().is_leader {
            return Ok(());
        }
        let now = self.now();
        for issuer in self.active_issuers()? {
            let id = &issuer.record.id;
            let reader = self.reader()?;
            if delta_base(&reader, id)?.is_none() {
                // Deltas just turned on: a complete CRL that has them comes first.
                let lacks = lacks_deltas(&reader, id)?;
                drop(reader);
                if lacks {
                    self.publish_complete(id).await?;
                }
                continue;
            }
            let due = match reader.delta_state(id)?.and_then(|s| s.latest) {
                None => true,
                Some(d) => {
                    reader.revoked_since_delta(id)? > 0 || now >= d.this_update + (d.next_update - d.this_update) / 2
                }
            };
            drop(reader);
            if due {
                let _one_at_a_time = self.crl.built_from.lock().await;
                self.publish_crl(id, Publish::Latest).await?;
            }
        }
        Ok(())
    }
}

/// The number the issuer's next CRL takes, complete or delta: one above every CRL it has.
pub(super) fn next_crl_number(reader: &hapki_store::StateReader, issuer_id: &str) -> Result<u64, PkiError> {
    Ok(reader.latest_crl_number(issuer_id)?.map_or(1, |n| n + 1))
}

/// Whether deltas are on and the issuer's latest complete CRL has none (or there is none):
/// a complete CRL that has them is due. Deltas are set on only at state format 3.
fn lacks_deltas(reader: &hapki_store::StateReader, issuer_id: &str) -> Result<bool, PkiError> {
    if reader.crl_policy()?.delta_secs == 0 {
        return Ok(false);
    }
    Ok(match reader.latest_crl(issuer_id)? {
        Some(c) => !reader.has_deltas(issuer_id, c.number())?,
        None => true,
    })
}

/// The base of the delta a revocation of the issuer goes into now, if deltas are on and
/// its latest complete CRL has them.
fn delta_base(reader: &hapki_store::StateReader, issuer_id: &str) -> Result<Option<u64>, PkiError> {
    if reader.crl_policy()?.delta_secs == 0 {
        return Ok(None);
    }
    let Some(LatestCrl::Head(head)) = reader.latest_crl(issuer_id)? else {
        return Ok(None);
    };
    Ok(reader.has_deltas(issuer_id, head.number)?.then_some(head.number))
}

/// Builds and signs `issuer`'s CRL `number` of `kind` listing `revoked`.
pub(super) fn sign_crl(
    issuer: &LoadedIssuer,
    number: u64,
    this_update: u64,
    next_update: u64,
    kind: CrlKind<'_>,
    revoked: Vec<(Serial, Revocation)>,
) -> Result<Vec<u8>, PkiError> {
    let entries = revoked.into_iter().map(|(serial, r)| CrlEntry {
        serial,
        revoked_at: r.at,
        reason: r.reason,
    });
    Ok(build_crl(
        &issuer.view(),
        number,
        this_update,
        next_update,
        kind,
        entries,
    )?)
}

/// Publishes the delta CRLs that are due, every `delta_crl_secs` (looking again every
/// 5 s while deltas are off), until the process ends.
pub async fn delta_loop(pki: Arc<Pki>) {
    loop {
        let every = pki.reader().and_then(|r| Ok(r.crl_policy()?.delta_secs)).unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(if every == 0 { 5 } else { every })).await;
        if every == 0 {
            continue;
        }
        if let Err(e) = pki.publish_due_deltas().await {
            tracing::warn!("publishing a delta CRL failed: {}", e);
        }
    }
}

/// Runs CRL renewal, and records the issuer rollovers that fell due, every `every` until
/// the process ends.
pub async fn crl_loop(pki: Arc<Pki>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if let Err(e) = pki.renew_due_crls().await {
            tracing::warn!("CRL renewal failed: {}", e);
        }
        if let Err(e) = pki.complete_due_rollovers().await {
            tracing::warn!("recording a due issuer rollover failed: {}", e);
        }
    }
}
