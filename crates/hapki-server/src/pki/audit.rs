//! The audit log as the service offers it: reading it by page, exporting it, checking
//! it, and keeping it sealed. The audit key (Ed25519, sealed under the KEK, certified
//! by the internal CA) is made when the log is first sealed; the leader signs the head
//! of the chain once records were applied and a few milliseconds passed, in one command
//! for all of them, so a record waits for its seal about one round of the log.

use std::sync::{Arc, Weak};

use hapki_api::audit::{AuditCertificate, AuditList, AuditQuery, AuditVerified, ExportLine};
use hapki_cluster::Origin;
use hapki_domain::audit::{self, Record, Seal};
use hapki_domain::key::{KeyType, SigningKey};
use hapki_domain::pem::{encode, PemLabel};
use hapki_store::{AuditKeyRecord, Command, CommandResult};

use super::{Pki, PkiError};
use crate::auth::{Action, Caller};

/// The sealing context of the audit key.
pub const AUDIT_CONTEXT: &str = "audit-signing-key";

/// Records a page holds at most.
const MAX_PAGE: usize = 1000;

/// The audit key, unsealed, with its certificate.
pub struct AuditSigner {
    pub cert_der: Vec<u8>,
    key: SigningKey,
}

impl AuditSigner {
    /// The key as PKCS#8 DER, for an export.
    pub fn pkcs8(&self) -> Result<Vec<u8>, PkiError> {
        Ok(self.key.to_pkcs8()?)
    }
}

impl Pki {
    /// The audit key, made (and recorded through the log) when it is first needed.
    pub async fn audit_signer(&self) -> Result<Arc<AuditSigner>, PkiError> {
        if let Some(s) = self.audit_signer.read().expect("audit lock").clone() {
            return Ok(s);
        }
        if self.reader()?.audit_key()?.is_none() {
            let internal = crate::tls::internal_ca(self).await?;
            let key = SigningKey::generate(KeyType::Ed25519)?;
            let cluster = self.reader()?.cluster_id()?.unwrap_or_default();
            let cert_der = internal.audit_certificate(&cluster, key.spki())?;
            let record = AuditKeyRecord {
                cert_der,
                wrapped_key: self.keyring.seal(AUDIT_CONTEXT, &key.to_pkcs8()?),
            };
            // Another node may have made it first: then that one is used.
            self.propose_once(Command::SetAuditKey { key: record }).await?;
        }
        let record = self
            .reader()?
            .audit_key()?
            .ok_or_else(|| PkiError::internal("the audit key vanished"))?;
        let signer = Arc::new(AuditSigner {
            key: SigningKey::from_pkcs8(&self.keyring.open(AUDIT_CONTEXT, &record.wrapped_key)?)?,
            cert_der: record.cert_der,
        });
        *self.audit_signer.write().expect("audit lock") = Some(signer.clone());
        Ok(signer)
    }

    /// Forgets the unsealed audit key (after a KEK rotation it is read again).
    pub fn forget_audit_signer(&self) {
        *self.audit_signer.write().expect("audit lock") = None;
    }

    /// Signs the head of the log if records were appended since the last seal. Returns the
    /// position sealed, if any.
    pub async fn seal_audit(&self) -> Result<Option<u64>, PkiError> {
        let (head, sealed) = self.reader()?.audit_head()?;
        let Some((seq, hash)) = head.filter(|(seq, _)| *seq > sealed) else {
            return Ok(None);
        };
        let signer = self.audit_signer().await?;
        use base64::Engine;
        let signature = signer.key.sign(&Seal::message(seq, &hash))?;
        let seal = Seal {
            seq,
            hash,
            at: self.now(),
            signature: base64::engine::general_purpose::STANDARD.encode(signature),
        };
        match self.cluster.propose(&Origin::Node, Command::SealAudit { seal }).await? {
            CommandResult::Applied => Ok(Some(seq)),
            // A later seal got there first, or the head moved on: the next round seals it.
            CommandResult::Rejected { .. } | CommandResult::Replayed { .. } => Ok(None),
        }
    }

    /// Records an action that changes nothing else (a CA's keys exported), through the log,
    /// before its result is released.
    pub async fn audit_event(&self, caller: &Caller, action: &str, object: String) -> Result<(), PkiError> {
        let meta = self.audit_meta(caller);
        self.propose(
            &caller.origin(),
            Command::AuditEvent {
                meta,
                action: action.to_string(),
                object,
            },
        )
        .await
    }

    /// `GET /v1/audit`.
    pub fn audit_list(&self, caller: &Caller, q: &AuditQuery) -> Result<AuditList, PkiError> {
        caller.may(Action::ReadAudit)?;
        let limit = q.limit.unwrap_or(100);
        if limit == 0 || limit > MAX_PAGE {
            return Err(PkiError::invalid(format!("limit must be between 1 and {MAX_PAGE}")));
        }
        let reader = self.reader()?;
        let records = reader.audit_records(q.after.unwrap_or(0), limit, |r| keep(q, r))?;
        let (head, sealed_through) = reader.audit_head()?;
        Ok(AuditList {
            records,
            head: head.map_or(0, |(seq, _)| seq),
            sealed_through,
        })
    }

    /// `GET /v1/audit/verify`: the whole log checked against its seals and the audit key.
    pub fn audit_verify(&self, caller: &Caller) -> Result<AuditVerified, PkiError> {
        caller.may(Action::ReadAudit)?;
        let reader = self.reader()?;
        let seals = reader.audit_seals()?;
        let public = match reader.audit_key()? {
            Some(k) => audit::ed25519_public(&k.cert_der).map_err(PkiError::internal)?,
            None => Vec::new(),
        };
        let mut check = audit::Verifier::new(&seals, &public);
        let mut head = 0;
        reader.for_each_audit_record(|position, r| {
            head = position;
            check.push(position, &r);
            Ok(())
        })?;
        Ok(AuditVerified {
            report: check.finish(),
            head,
        })
    }

    /// `GET /v1/audit/export`: the log as this node holds it now, to be written with
    /// [`AuditExport::write`] as it is sent.
    pub fn audit_export(&self, caller: &Caller) -> Result<AuditExport, PkiError> {
        caller.may(Action::ReadAudit)?;
        Ok(AuditExport {
            reader: self.reader()?,
            exported_at: self.now(),
        })
    }

    /// `GET /v1/audit/certificate`.
    pub async fn audit_certificate(&self, caller: &Caller) -> Result<AuditCertificate, PkiError> {
        caller.may(Action::ReadAudit)?;
        let signer = self.audit_signer().await?;
        let internal = self
            .reader()?
            .internal_ca()?
            .ok_or_else(|| PkiError::internal("no internal CA"))?;
        Ok(AuditCertificate {
            certificate: encode(PemLabel::Certificate, &signer.cert_der),
            chain: vec![encode(PemLabel::Certificate, &internal.cert_der)],
        })
    }
}

/// One read of the audit log, written out as JSON lines.
pub struct AuditExport {
    reader: hapki_store::StateReader,
    exported_at: u64,
}

impl AuditExport {
    /// Writes a header, then every record with its position and every seal, in order.
    pub fn write(&self, out: &mut dyn std::io::Write) -> Result<(), PkiError> {
        let reader = &self.reader;
        let seals = reader.audit_seals()?;
        let (head, _) = reader.audit_head()?;
        let io = |e: std::io::Error| PkiError::internal(format!("writing the export: {e}"));
        let mut line = |l: &ExportLine| -> Result<(), PkiError> {
            serde_json::to_writer(&mut *out, l).map_err(|e| PkiError::internal(e.to_string()))?;
            out.write_all(b"\n").map_err(io)
        };
        line(&ExportLine::Header {
            cluster_id: reader.cluster_id()?.unwrap_or_default(),
            exported_at: hapki_domain::time::rfc3339(self.exported_at),
            head: head.map_or(0, |(seq, _)| seq),
        })?;
        let mut seals = seals.into_iter().peekable();
        let corrupt = |e: PkiError| hapki_store::StoreError::Corrupt(e.to_string());
        reader.for_each_audit_record(|position, record| {
            line(&ExportLine::Record { position, record }).map_err(corrupt)?;
            while let Some(s) = seals.next_if(|s| s.seq <= position) {
                line(&ExportLine::Seal(s)).map_err(corrupt)?;
            }
            Ok(())
        })?;
        for s in seals {
            line(&ExportLine::Seal(s))?;
        }
        Ok(())
    }
}

fn keep(q: &AuditQuery, r: &Record) -> bool {
    q.action.as_deref().is_none_or(|a| r.action == a)
        && q.actor
            .as_deref()
            .is_none_or(|a| r.actor.as_deref() == Some(a) || r.actor_name == a)
        && q.object.as_deref().is_none_or(|o| r.object.contains(o))
}

/// Seals the audit log while this node leads: once records were applied, after
/// [`SEAL_DELAY`], one seal of the head for all of them, and at least every [`SEAL_CHECK`] (records of refused commands are
/// not announced as applied), for as long as the service lives.
pub async fn seal_loop(mut applied: tokio::sync::broadcast::Receiver<hapki_cluster::Applied>, pki: Weak<Pki>) {
    use tokio::sync::broadcast::error::RecvError;
    let mut tick = tokio::time::interval(SEAL_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            got = applied.recv() => match got {
                Ok(a) if matches!(a.command.as_deref(), Some(Command::Audited { .. } | Command::AuditEvent { .. })) => {}
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {}
        }
        // A moment for the records of the next requests, then one seal covers them all:
        // one seal per request would be an entry (and an fsync) per request at low load.
        tokio::time::sleep(SEAL_DELAY).await;
        while applied.try_recv().is_ok() {}
        let Some(pki) = pki.upgrade() else { return };
        if !pki.cluster.status().is_leader {
            continue;
        }
        if let Err(e) = pki.seal_audit().await {
            tracing::warn!("sealing the audit log: {e}");
        }
    }
}

/// How long the leader lets records gather before it seals them.
const SEAL_DELAY: std::time::Duration = std::time::Duration::from_millis(20);

/// How often the leader checks for records no seal covers yet, at the longest.
const SEAL_CHECK: std::time::Duration = std::time::Duration::from_secs(1);
