//! The audit log in the replicated state. An audited command ([`Command::Audited`])
//! carries who asked, on which node and when; applying it applies the command inside and
//! appends one chained record of it with its outcome, in the same transaction, so the
//! record is in the same log entry as the action and every node holds the same chain.
//! Seals, signed by the audit key on the leader, are applied like any other command.

use hapki_domain::audit::{Record, Seal, GENESIS};
use hapki_domain::wrap::Wrapped;
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};
use crate::command::{CommandResult, RejectCode};
use crate::read::StateReader;
use crate::tables::{SM_AUDIT, SM_AUDIT_SEALS, SM_META};
use crate::{Command, StoreError};

/// Who took an action, where and when: stamped by the node that proposes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditMeta {
    pub at: u64,
    /// The caller's token id, or `None` for the cluster's own work.
    pub actor: Option<String>,
    pub actor_name: String,
    pub node: u64,
}

/// The audit signing key (Ed25519), sealed under the KEK, and its certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditKeyRecord {
    pub cert_der: Vec<u8>,
    pub wrapped_key: Wrapped,
}

const KEY_ROW: &[u8] = b"audit_key";

/// Applies [`Command::Audited`]: the command, then its record.
pub(crate) fn audited(
    txn: &WriteTransaction,
    meta: &AuditMeta,
    command: &Command,
) -> Result<CommandResult, StoreError> {
    if matches!(
        command,
        Command::Audited { .. } | Command::AuditEvent { .. } | Command::SealAudit { .. }
    ) {
        return Ok(CommandResult::reject(
            RejectCode::Invalid,
            format!("{} is not audited inside another record", command.kind()),
        ));
    }
    let result = crate::apply::apply(txn, command)?;
    let outcome = match &result {
        CommandResult::Applied => "applied".to_string(),
        CommandResult::Replayed { .. } => "replayed".to_string(),
        CommandResult::Rejected { code, .. } => format!("refused: {}", code.name()),
    };
    append(txn, meta, command.kind(), object(command), outcome)?;
    Ok(result)
}

/// Applies [`Command::AuditEvent`]: a record of an action that changes nothing else
/// (a CA exported, a key recovered).
pub(crate) fn event(
    txn: &WriteTransaction,
    meta: &AuditMeta,
    action: &str,
    object: &str,
) -> Result<CommandResult, StoreError> {
    append(txn, meta, action, object.to_string(), "applied".into())?;
    Ok(CommandResult::Applied)
}

fn append(
    txn: &WriteTransaction,
    meta: &AuditMeta,
    action: &str,
    object: String,
    outcome: String,
) -> Result<(), StoreError> {
    let mut table = txn.open_table(SM_AUDIT)?;
    let (seq, prev) = match table.last()? {
        Some((_, v)) => {
            let last: Record = decode(v.value())?;
            (last.seq + 1, last.hash_bytes())
        }
        None => (1, GENESIS),
    };
    let mut record = Record {
        seq,
        at: meta.at,
        actor: meta.actor.clone(),
        actor_name: meta.actor_name.clone(),
        node: format!("{:016x}", meta.node),
        action: action.to_string(),
        object,
        outcome,
        hash: String::new(),
    };
    record.hash = hex::encode(record.chain(&prev));
    table.insert(seq.to_be_bytes().as_slice(), encode(&record).as_slice())?;
    Ok(())
}

/// Applies [`Command::SealAudit`]: refused unless it names a record with that hash, past
/// the last seal.
pub(crate) fn seal(txn: &WriteTransaction, seal: &Seal) -> Result<CommandResult, StoreError> {
    let records = txn.open_table(SM_AUDIT)?;
    let Some(v) = records.get(seal.seq.to_be_bytes().as_slice())? else {
        return Ok(CommandResult::reject(
            RejectCode::NotFound,
            format!("no audit record {}", seal.seq),
        ));
    };
    let record: Record = decode(v.value())?;
    if record.hash != seal.hash {
        return Ok(CommandResult::reject(
            RejectCode::Invalid,
            format!("audit record {} has another hash", seal.seq),
        ));
    }
    let mut seals = txn.open_table(SM_AUDIT_SEALS)?;
    if let Some((k, _)) = seals.last()? {
        let last = u64::from_be_bytes(k.value().try_into().unwrap_or_default());
        if last >= seal.seq {
            return Ok(CommandResult::reject(
                RejectCode::Conflict,
                format!("the audit log is sealed through record {last}"),
            ));
        }
    }
    seals.insert(seal.seq.to_be_bytes().as_slice(), encode(seal).as_slice())?;
    Ok(CommandResult::Applied)
}

/// Applies [`Command::SetAuditKey`], once.
pub(crate) fn set_key(txn: &WriteTransaction, key: &AuditKeyRecord) -> Result<CommandResult, StoreError> {
    let mut meta = txn.open_table(SM_META)?;
    if meta.get(KEY_ROW)?.is_some() {
        return Ok(CommandResult::reject(RejectCode::Conflict, "the audit key is set"));
    }
    meta.insert(KEY_ROW, encode(key).as_slice())?;
    Ok(CommandResult::Applied)
}

/// Whether the state holds an audit key (a KEK rotation must then seal it anew).
pub(crate) fn key_is_set(txn: &WriteTransaction) -> Result<bool, StoreError> {
    Ok(txn.open_table(SM_META)?.get(KEY_ROW)?.is_some())
}

/// Why a [`Command::RotateKekWithAudit`] cannot apply, checked before anything is written.
pub(crate) fn check_rewrap(
    txn: &WriteTransaction,
    audit: &Wrapped,
    rotation: &Command,
) -> Result<Option<String>, StoreError> {
    let to = match rotation {
        Command::RotateKek { to, .. } | Command::RotateKekWithArchive { to, .. } => *to,
        other => return Ok(Some(format!("{} is not a KEK rotation", other.kind()))),
    };
    if !key_is_set(txn)? {
        return Ok(Some("the rotation seals an audit key there is none of; retry".into()));
    }
    if audit.kek != to {
        return Ok(Some(format!(
            "the audit key is sealed under KEK {}, not the new KEK {to}; retry",
            audit.kek
        )));
    }
    Ok(None)
}

/// Replaces the audit key's sealing by `wrapped`, after [`check_rewrap`] passed.
pub(crate) fn rewrap_key(txn: &WriteTransaction, wrapped: &Wrapped) -> Result<(), StoreError> {
    let mut meta = txn.open_table(SM_META)?;
    let mut key: AuditKeyRecord = match meta.get(KEY_ROW)? {
        Some(v) => decode(v.value())?,
        None => return Err(StoreError::Corrupt("the audit key vanished during a rotation".into())),
    };
    key.wrapped_key = wrapped.clone();
    meta.insert(KEY_ROW, encode(&key).as_slice())?;
    Ok(())
}

/// What an audited command was done to, as the record names it.
fn object(command: &Command) -> String {
    match command {
        Command::IssueCert { cert, .. } | Command::IssueAndArchive { cert, .. } => {
            format!("cert {} {}", cert.serial, cert.subject)
        }
        Command::Revoke { serial, reason, .. } => format!("cert {serial} ({})", reason.name()),
        Command::CreateToken { token } => format!("token {} {} ({})", token.id, token.name, token.role.name()),
        Command::RevokeToken { id } => format!("token {id}"),
        Command::PutProfile { profile, .. } => format!("profile {}", profile.name),
        Command::PutSettings { .. } => "settings".into(),
        Command::SetRecoveryPolicy { policy } => format!("recovery approvals {}", policy.approvals),
        Command::AddIssuer { issuer, .. } => format!("issuer {} {}", issuer.id, issuer.name),
        Command::InstallIssuerCert { id, .. } | Command::SetDefaultIssuer { id } => format!("issuer {id}"),
        Command::SetOcspSigner { issuer_id, .. } => format!("issuer {issuer_id}"),
        Command::ArchiveKey { key } => format!("key {}", key.serial),
        Command::RequestRecovery { id, serial, .. } => format!("recovery {id} of key {serial}"),
        Command::ApproveRecovery { id, .. } | Command::FetchRecovery { id, .. } => format!("recovery {id}"),
        Command::AdmitNode { node } => format!("node {:016x} {}", node.id, node.name),
        Command::RemoveNode { id, .. } => format!("node {id:016x}"),
        Command::RotateKek { from, to, .. } | Command::RotateKekWithArchive { from, to, .. } => {
            format!("kek {from} to {to}")
        }
        Command::RotateKekWithAudit { rotation, .. } => object(rotation),
        Command::RecordBackup { backup } => format!("backup {} at index {}", backup.id, backup.index),
        Command::TidyExpired { tidy } => {
            let serials: Vec<String> = tidy.serials.iter().map(|s| s.to_string()).collect();
            format!(
                "{} certificates expired before {}: {}",
                serials.len(),
                tidy.expired_before,
                serials.join(" ")
            )
        }
        Command::SetCrlPartitioning { policy } => format!("CRL partitions of {} revocations", policy.size),
        Command::ForgetIdempotencyKeys { at, max } => {
            format!("up to {max} idempotency keys older than their window at {at}")
        }
        Command::SetCrlPolicy { policy } => format!("delta CRLs every {} s", policy.delta_secs),
        Command::SetTidyPolicy { policy } => format!(
            "tidy retention {} s, batch {}, share {} %",
            policy.retention_secs, policy.batch, policy.share_percent
        ),
        Command::Acme { request } => crate::acme::audit_object(request),
        Command::CreateEab { eab } => format!("acme eab {} for profile {}", eab.kid, eab.profile),
        Command::SetAcmeDirectory { profile, directory } => {
            format!("acme directory {profile} (require_eab {})", directory.require_eab)
        }
        Command::SuggestRenewal { issuer, hint } => format!("issuer {issuer} renew before {}", hint.before),
        Command::RotateKekWithAcme { rotation, .. } => object(rotation),
        other => other.kind().to_string(),
    }
}

impl StateReader {
    /// Audit records after position `after`, oldest first, at most `limit`, keeping those
    /// `keep` accepts.
    pub fn audit_records(
        &self,
        after: u64,
        limit: usize,
        mut keep: impl FnMut(&Record) -> bool,
    ) -> Result<Vec<Record>, StoreError> {
        let table = self.txn().open_table(SM_AUDIT)?;
        let start = after.saturating_add(1).to_be_bytes();
        let mut out = Vec::new();
        for row in table.range(start.as_slice()..)? {
            let (_, v) = row?;
            let r: Record = decode(v.value())?;
            if keep(&r) {
                out.push(r);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Every audit record with the position it is stored at, oldest first, to `f`.
    pub fn for_each_audit_record(
        &self,
        mut f: impl FnMut(u64, Record) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let table = self.txn().open_table(SM_AUDIT)?;
        for row in table.iter()? {
            let (k, v) = row?;
            let position = u64::from_be_bytes(
                k.value()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("an audit key that is not 8 bytes".into()))?,
            );
            // A value that does not decode is a changed record, not a broken store.
            let record = decode(v.value()).unwrap_or_else(|_| Record {
                seq: position,
                at: 0,
                actor: None,
                actor_name: String::new(),
                node: String::new(),
                action: "(unreadable)".into(),
                object: String::new(),
                outcome: String::new(),
                hash: String::new(),
            });
            f(position, record)?;
        }
        Ok(())
    }

    /// Every seal, oldest first.
    pub fn audit_seals(&self) -> Result<Vec<Seal>, StoreError> {
        let table = self.txn().open_table(SM_AUDIT_SEALS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            out.push(decode(row?.1.value())?);
        }
        Ok(out)
    }

    /// The last record's position and hash, and the last sealed position.
    pub fn audit_head(&self) -> Result<(Option<(u64, String)>, u64), StoreError> {
        let records = self.txn().open_table(SM_AUDIT)?;
        let head = match records.last()? {
            Some((_, v)) => {
                let r: Record = decode(v.value())?;
                Some((r.seq, r.hash))
            }
            None => None,
        };
        let seals = self.txn().open_table(SM_AUDIT_SEALS)?;
        let sealed = match seals.last()? {
            Some((_, v)) => decode::<Seal>(v.value())?.seq,
            None => 0,
        };
        Ok((head, sealed))
    }

    /// The audit key, once one is made.
    pub fn audit_key(&self) -> Result<Option<AuditKeyRecord>, StoreError> {
        let meta = self.txn().open_table(SM_META)?;
        let key = meta.get(KEY_ROW)?.map(|v| decode(v.value())).transpose()?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    use base64::Engine;
    use hapki_domain::audit::{verify, FaultKind};
    use hapki_domain::serial::Serial;

    use super::*;
    use crate::tests::{cert, history, run, store};

    fn meta(actor: &str) -> AuditMeta {
        AuditMeta {
            at: 100,
            actor: Some(actor.into()),
            actor_name: format!("{actor}-name"),
            node: 7,
        }
    }

    fn audited(actor: &str, command: Command) -> Command {
        Command::Audited {
            meta: meta(actor),
            command: Box::new(command),
        }
    }

    fn records(s: &crate::Store) -> Vec<(u64, Record)> {
        let mut out = Vec::new();
        s.reader()
            .unwrap()
            .for_each_audit_record(|p, r| {
                out.push((p, r));
                Ok(())
            })
            .unwrap();
        out
    }

    fn sealed_by(key: &Ed25519KeyPair, seq: u64, hash: &str) -> Seal {
        Seal {
            seq,
            hash: hash.into(),
            at: 101,
            signature: base64::engine::general_purpose::STANDARD.encode(key.sign(&Seal::message(seq, hash)).as_ref()),
        }
    }

    #[test]
    fn audited_commands_apply_and_append_one_chained_record_each_with_their_outcome() {
        let (_d, s) = store();
        run(&s, &history());
        let before = s.reader().unwrap().digest().unwrap();
        let issuer = history()
            .iter()
            .find_map(|c| match c {
                Command::AddIssuer { issuer, .. } => Some(issuer.id.clone()),
                _ => None,
            })
            .unwrap();
        let issue = Command::IssueCert {
            cert: cert(77, &issuer),
            idempotency_key: None,
        };
        let r = run(
            &s,
            &[
                audited("t1", issue.clone()),
                audited("t2", issue),
                Command::AuditEvent {
                    meta: meta("t1"),
                    action: "export_ca".into(),
                    object: format!("issuer {issuer}"),
                },
                audited(
                    "t3",
                    Command::Audited {
                        meta: meta("t3"),
                        command: Box::new(Command::RevokeToken { id: "x".into() }),
                    },
                ),
            ],
        );
        assert_eq!(r[0], CommandResult::Applied);
        assert!(
            matches!(
                r[1],
                CommandResult::Rejected {
                    code: RejectCode::Conflict,
                    ..
                }
            ),
            "{:?}",
            r[1]
        );
        assert!(
            matches!(
                r[3],
                CommandResult::Rejected {
                    code: RejectCode::Invalid,
                    ..
                }
            ),
            "{:?}",
            r[3]
        );
        assert!(s.reader().unwrap().cert(&Serial::from_u64(77)).unwrap().is_some());
        assert_ne!(s.reader().unwrap().digest().unwrap(), before);
        let all = records(&s);
        let seen: Vec<(u64, &str, &str, &str)> = all
            .iter()
            .map(|(p, r)| (*p, r.action.as_str(), r.outcome.as_str(), r.actor_name.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (1, "issue_cert", "applied", "t1-name"),
                (2, "issue_cert", "refused: conflict", "t2-name"),
                (3, "export_ca", "applied", "t1-name"),
            ]
        );
        assert!(
            all[0].1.object.starts_with("cert ") && all[0].1.object.contains("host77"),
            "{:?}",
            all[0].1
        );
        assert_eq!(all[0].1.node, "0000000000000007");

        // Seals: only of a record with its hash, past the last seal.
        let key = Ed25519KeyPair::from_seed_unchecked(&[3; 32]).unwrap();
        let head = all[2].1.hash.clone();
        let r = run(
            &s,
            &[
                Command::SealAudit {
                    seal: sealed_by(&key, 3, &all[1].1.hash),
                },
                Command::SealAudit {
                    seal: sealed_by(&key, 9, &head),
                },
                Command::SealAudit {
                    seal: sealed_by(&key, 2, &all[1].1.hash),
                },
                Command::SealAudit {
                    seal: sealed_by(&key, 3, &head),
                },
                Command::SealAudit {
                    seal: sealed_by(&key, 1, &all[0].1.hash),
                },
            ],
        );
        assert!(
            matches!(
                r[0],
                CommandResult::Rejected {
                    code: RejectCode::Invalid,
                    ..
                }
            ),
            "{:?}",
            r[0]
        );
        assert!(
            matches!(
                r[1],
                CommandResult::Rejected {
                    code: RejectCode::NotFound,
                    ..
                }
            ),
            "{:?}",
            r[1]
        );
        assert_eq!((&r[2], &r[3]), (&CommandResult::Applied, &CommandResult::Applied));
        assert!(
            matches!(
                r[4],
                CommandResult::Rejected {
                    code: RejectCode::Conflict,
                    ..
                }
            ),
            "{:?}",
            r[4]
        );
        let reader = s.reader().unwrap();
        assert_eq!(reader.audit_head().unwrap(), (Some((3, head)), 3));
        let report = verify(records(&s), &reader.audit_seals().unwrap(), key.public_key().as_ref());
        assert!(report.ok(), "{report:?}");
        assert_eq!(report.sealed_through, 3);

        // Only what `keep` accepts is listed, after the position asked.
        let applied = reader.audit_records(1, 10, |r| r.outcome == "applied").unwrap();
        assert_eq!(applied.iter().map(|r| r.seq).collect::<Vec<_>>(), [3]);
        // A record gone from the start is named.
        let f = verify(
            records(&s)[1..].to_vec(),
            &reader.audit_seals().unwrap(),
            key.public_key().as_ref(),
        )
        .fault
        .unwrap();
        assert_eq!((f.seq, f.kind), (1, FaultKind::Removed), "{}", f.message);
    }

    #[test]
    fn a_rotation_must_seal_the_audit_key_anew_once_there_is_one() {
        let (_d, s) = store();
        run(&s, &history());
        let wrapped = |kek: u32| hapki_domain::wrap::Wrapped {
            version: 1,
            kek,
            nonce: [0; 12],
            ciphertext: vec![4, 5, 6],
        };
        let rotation = |from: u32| {
            let issuers = s
                .reader()
                .unwrap()
                .issuers()
                .unwrap()
                .into_iter()
                .map(|i| crate::RewrappedIssuer {
                    id: i.id,
                    key: wrapped(from + 1),
                    ocsp: i.ocsp.map(|_| wrapped(from + 1)),
                })
                .collect();
            Command::RotateKek {
                from,
                to: from + 1,
                issuers,
                internal_ca: None,
            }
        };
        // Without an audit key, a plain rotation applies and one naming an audit key does not.
        let with_audit = |from: u32, kek: u32| Command::RotateKekWithAudit {
            rotation: Box::new(rotation(from)),
            audit: wrapped(kek),
        };
        let r = run(&s, &[with_audit(0, 1)]);
        assert!(
            matches!(
                r[0],
                CommandResult::Rejected {
                    code: RejectCode::Conflict,
                    ..
                }
            ),
            "{:?}",
            r[0]
        );
        assert_eq!(run(&s, &[rotation(0)]), [CommandResult::Applied]);
        let key = Command::SetAuditKey {
            key: AuditKeyRecord {
                cert_der: vec![0x30, 0],
                wrapped_key: wrapped(1),
            },
        };
        let r = run(&s, &[key.clone(), key]);
        assert_eq!(r[0], CommandResult::Applied);
        assert!(matches!(
            r[1],
            CommandResult::Rejected {
                code: RejectCode::Conflict,
                ..
            }
        ));
        // Now a rotation that leaves the audit key behind, or seals it under another KEK, is refused.
        let before = s.reader().unwrap().digest().unwrap();
        let r = run(&s, &[rotation(1), with_audit(1, 1)]);
        assert!(
            r.iter().all(|r| matches!(
                r,
                CommandResult::Rejected {
                    code: RejectCode::Conflict,
                    ..
                }
            )),
            "{r:?}"
        );
        assert_eq!(s.reader().unwrap().digest().unwrap(), before);
        assert_eq!(run(&s, &[with_audit(1, 2)]), [CommandResult::Applied]);
        assert_eq!(s.reader().unwrap().audit_key().unwrap().unwrap().wrapped_key.kek, 2);
    }
}
