//! Backups: the whole state at one applied index, read from one redb read
//! transaction and encrypted under a backup key the taker holds, with the current
//! KEK sealed under that key ([`hapki_domain::backup`]); each backup then recorded
//! through Raft. The node keeps neither the key nor the file.

use std::io::Write;

use aws_lc_rs::digest;
use hapki_api::backups as wire;
use hapki_domain::backup::{self, BackupKey, Header};
use hapki_store::{BackupRecord, Command, StateReader};

use super::{Pki, PkiError};
use crate::auth::{Action, Caller};

/// Who a backup is made for: the key, and the recipient the key was encrypted to, if any.
pub struct BackupFor {
    pub key: BackupKey,
    /// The key as a JWE to the recipient, and the recipient key's fingerprint.
    pub recipient: Option<(String, String)>,
}

/// A backup whose contents are fixed (one read transaction) but not yet written.
pub struct BackupJob {
    reader: StateReader,
    header: Header,
    key: BackupKey,
    /// The exact length of the file.
    pub len: u64,
    /// Who takes it: a client's token, or the node on its schedule.
    caller: Caller,
    recipient_fingerprint: Option<String>,
    node: u64,
}

/// What writing a backup produced.
pub struct Written {
    pub size: u64,
    pub sha256: String,
}

impl Pki {
    /// `POST /v1/backups`: checks the caller and the request and fixes what the backup holds.
    pub fn prepare_backup(&self, caller: &Caller, req: &wire::BackupRequest) -> Result<BackupJob, PkiError> {
        caller.may(Action::Backup)?;
        let key = BackupKey::parse(&req.key).map_err(|e| PkiError::invalid(format!("key: {e}")))?;
        let recipient = match (&req.recipient, &req.recipient_fingerprint) {
            (None, None) => None,
            (Some(jwe), Some(fp)) => {
                if jwe.len() > hapki_domain::jwe::MAX_LEN || jwe.split('.').count() != 5 {
                    return Err(PkiError::invalid("recipient: not a JWE in compact form"));
                }
                if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(PkiError::invalid(
                        "recipient_fingerprint: the SHA-256 of the recipient's key, 64 hex digits",
                    ));
                }
                Some((jwe.clone(), fp.to_ascii_lowercase()))
            }
            _ => return Err(PkiError::invalid("recipient and recipient_fingerprint go together")),
        };
        self.backup_job(caller, BackupFor { key, recipient })
    }

    /// A backup the node takes on its own schedule.
    pub fn scheduled_backup(&self, target: BackupFor) -> Result<BackupJob, PkiError> {
        self.backup_job(&Caller::node(), target)
    }

    fn backup_job(&self, caller: &Caller, target: BackupFor) -> Result<BackupJob, PkiError> {
        let reader = self.reader()?;
        let at = hapki_cluster::restore::applied_at(reader.txn())
            .map_err(|e| PkiError::internal(format!("reading the applied index: {e}")))?
            .ok_or_else(|| PkiError::conflict("this node has applied nothing yet; nothing to back up"))?;
        let kek_id = reader.kek_id()?;
        let kek = self.keyring.kek_for_member(kek_id).ok_or_else(|| {
            PkiError::unavailable(format!(
                "this node does not hold KEK {kek_id} yet (a rotation is under way); try again"
            ))
        })?;
        let (digest, snapshot_len) = reader.digest_and_snapshot_len()?;
        let (salt, sealed) = Header::seal_kek(&target.key, self.random(), self.random(), kek_id, &kek);
        let (recipient, recipient_fingerprint) = target.recipient.unzip();
        let header = Header {
            id: hex::encode(self.random::<8>()),
            cluster_id: reader.cluster_id()?.unwrap_or_default(),
            index: at.index,
            term: at.term,
            leader: at.leader,
            created_at: self.now(),
            digest,
            rows: reader.rows()?,
            counts: reader.counts()?,
            version: crate::version::VERSION.to_string(),
            salt,
            kek: sealed,
            recipient,
        };
        let len = backup::file_len(&header, snapshot_len)?;
        Ok(BackupJob {
            reader,
            header,
            key: target.key,
            len,
            caller: caller.clone(),
            recipient_fingerprint,
            node: self.cluster.node_id(),
        })
    }

    /// Records a written backup through Raft.
    pub async fn record_backup(
        &self,
        job: &BackupJob,
        written: &Written,
        file: Option<String>,
    ) -> Result<BackupRecord, PkiError> {
        let record = BackupRecord {
            id: job.header.id.clone(),
            index: job.header.index,
            digest: job.header.digest.clone(),
            taken_at: job.header.created_at,
            size: written.size,
            sha256: written.sha256.clone(),
            rows: job.header.rows,
            certificates: job.header.counts.certificates,
            taken_by: (!job.caller.is_node()).then(|| job.caller.token_id.clone()),
            taken_by_name: if job.caller.is_node() {
                "schedule".into()
            } else {
                job.caller.name.clone()
            },
            node: job.node,
            file,
            recipient: job.recipient_fingerprint.clone(),
        };
        self.propose_as(&job.caller, Command::RecordBackup { backup: record.clone() })
            .await?;
        tracing::warn!(
            "backup {} of index {} taken by {} ({} bytes)",
            record.id,
            record.index,
            record.taken_by.as_deref().unwrap_or("the schedule"),
            record.size
        );
        Ok(record)
    }

    /// `GET /v1/backups`.
    pub fn backups(&self, caller: &Caller) -> Result<wire::BackupList, PkiError> {
        caller.may(Action::Backup)?;
        let backups = self
            .reader()?
            .backups()?
            .into_iter()
            .map(|b| wire::BackupView {
                id: b.id,
                index: b.index,
                digest: b.digest,
                taken_at: hapki_domain::time::rfc3339(b.taken_at),
                size: b.size,
                sha256: b.sha256,
                certificates: b.certificates,
                taken_by: b.taken_by_name,
                node: hapki_api::node_id_hex(b.node),
                file: b.file,
                recipient: b.recipient,
            })
            .collect();
        Ok(wire::BackupList { backups })
    }
}

impl BackupJob {
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Writes the backup file into `out` (blocking: run it off the async threads).
    pub fn write<W: Write>(&self, out: W) -> Result<(W, Written), PkiError> {
        let counted = Counted {
            inner: out,
            size: 0,
            sha: digest::Context::new(&digest::SHA256),
        };
        let mut w = backup::Writer::new(counted, &self.key, &self.header)?;
        hapki_store::export_state(self.reader.txn(), &mut w)?;
        let counted = w.finish().map_err(hapki_store::StoreError::Io)?;
        let written = Written {
            size: counted.size,
            sha256: hex::encode(counted.sha.finish().as_ref()),
        };
        if written.size != self.len {
            return Err(PkiError::internal(format!(
                "the backup came out {} bytes long, not the {} announced",
                written.size, self.len
            )));
        }
        Ok((counted.inner, written))
    }
}

/// Counts and hashes what passes through to `inner`.
struct Counted<W> {
    inner: W,
    size: u64,
    sha: digest::Context,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.size += n as u64;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
