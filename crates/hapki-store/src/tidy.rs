//! Expiry tidy: removing certificates that expired longer ago than the retention, in
//! bounded batches through the log (state format 3). The leader chooses a batch from the
//! expiry index ([`StateReader::tidy_candidates`]); the command names every serial it
//! removes and the time they must have expired before, so apply checks and removes the
//! same rows on every node.
//!
//! A revoked certificate leaves its issuer's CRL with it, which RFC 5280 §3.3 allows once
//! it has expired. The CRL a head describes must not change under it, so a batch that
//! removes revoked certificates of an issuer also carries that issuer's next CRL head:
//! the CRL without them gets a number of its own. Certificates whose key is archived stay:
//! the key outlives the certificate (mail encrypted years ago is still read).

use std::collections::{BTreeMap, BTreeSet};

use hapki_domain::serial::Serial;
use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};
use crate::command::{CommandResult, RejectCode};
use crate::crl_head::CrlHead;
use crate::read::StateReader;
use crate::records::CertRecord;
use crate::tables::*;
use crate::StoreError;

/// The most certificates one tidy command removes.
pub const MAX_BATCH: u32 = 10_000;

/// How the leader tidies: what it removes, in batches of what size, at what share of the
/// cluster's write throughput.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TidyPolicy {
    /// Certificates expired longer ago than this are removed.
    pub retention_secs: u64,
    /// Certificates per command.
    pub batch: u32,
    /// The share of time (percent) the tidy may keep the log busy: after a batch that took
    /// `t` to commit it waits `t × (100 / share − 1)`.
    pub share_percent: u8,
}

impl Default for TidyPolicy {
    fn default() -> Self {
        TidyPolicy {
            retention_secs: 30 * 86_400,
            batch: 100,
            share_percent: 10,
        }
    }
}

impl TidyPolicy {
    /// Why this policy cannot be used, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.batch == 0 || self.batch > MAX_BATCH {
            return Err(format!(
                "tidy_batch must be between 1 and {MAX_BATCH} (got {})",
                self.batch
            ));
        }
        if self.share_percent == 0 || self.share_percent > 100 {
            return Err(format!(
                "tidy_share_percent must be between 1 and 100 (got {})",
                self.share_percent
            ));
        }
        Ok(())
    }
}

/// One batch of a tidy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tidy {
    /// When the batch was chosen (Unix seconds).
    pub at: u64,
    /// Every certificate removed expired before this time.
    pub expired_before: u64,
    /// The certificates to remove; one already gone is passed over.
    pub serials: Vec<Serial>,
    /// The next CRL of every issuer whose revoked certificates the batch removes.
    pub crl_heads: Vec<CrlHead>,
}

/// What the latest tidy batch removed, and how many all batches have.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TidyRecord {
    pub at: u64,
    pub expired_before: u64,
    pub removed: u64,
    /// Of `removed`, how many were revoked (and left their issuer's CRL).
    pub revoked: u64,
    /// Every certificate tidy has removed from this state.
    pub total_removed: u64,
}

/// A certificate a tidy may remove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TidyCandidate {
    pub serial: Serial,
    pub issuer_id: String,
    pub revoked: bool,
}

const POLICY: &[u8] = b"tidy_policy";
const LAST: &[u8] = b"tidy_last";

/// Applies [`crate::Command::SetTidyPolicy`].
pub(crate) fn set_policy(txn: &WriteTransaction, policy: &TidyPolicy) -> Result<CommandResult, StoreError> {
    if let Err(why) = policy.check() {
        return Ok(CommandResult::reject(RejectCode::Invalid, why));
    }
    txn.open_table(SM_META)?.insert(POLICY, encode(policy).as_slice())?;
    Ok(CommandResult::Applied)
}

/// Applies [`crate::Command::TidyExpired`]: checks every serial and head first, then
/// removes the certificates, their revocations and index rows, and publishes the heads.
pub(crate) fn apply(txn: &WriteTransaction, tidy: &Tidy) -> Result<CommandResult, StoreError> {
    if tidy.serials.len() > MAX_BATCH as usize {
        return Ok(CommandResult::reject(
            RejectCode::Invalid,
            format!("a tidy removes {MAX_BATCH} certificates at most"),
        ));
    }
    let mut heads = BTreeMap::new();
    for head in &tidy.crl_heads {
        if heads.insert(head.issuer_id.as_str(), head).is_some() {
            return Ok(CommandResult::reject(
                RejectCode::Invalid,
                format!("the tidy carries two CRL heads of issuer {}", head.issuer_id),
            ));
        }
        if let Some(refusal) = crate::crl_head::check_head(txn, head)? {
            return Ok(refusal);
        }
    }
    let mut doomed: Vec<CertRecord> = Vec::with_capacity(tidy.serials.len());
    {
        let certs = txn.open_table(SM_CERTS)?;
        let archive = txn.open_table(SM_ARCHIVE)?;
        let mut seen = BTreeSet::new();
        for serial in &tidy.serials {
            if !seen.insert(serial.0) {
                continue;
            }
            let Some(cert) = certs.get(serial.0.as_slice())?.map(|v| decode::<CertRecord>(v.value())) else {
                continue;
            };
            let cert = cert?;
            let refusal = if cert.not_after >= tidy.expired_before {
                Some(format!(
                    "certificate {serial} expires at {}, not before {}",
                    cert.not_after, tidy.expired_before
                ))
            } else if archive.get(serial.0.as_slice())?.is_some() {
                Some(format!("certificate {serial} has its key archived; it is kept"))
            } else if cert.revoked.is_some() && !heads.contains_key(cert.issuer_id.as_str()) {
                Some(format!(
                    "certificate {serial} is revoked, and the tidy carries no next CRL of issuer {}",
                    cert.issuer_id
                ))
            } else {
                None
            };
            if let Some(why) = refusal {
                return Ok(CommandResult::reject(RejectCode::Invalid, why));
            }
            doomed.push(cert);
        }
    }
    let mut revoked = 0u64;
    {
        let mut certs = txn.open_table(SM_CERTS)?;
        let mut revocations = txn.open_table(SM_REVOKED)?;
        let mut pending = txn.open_table(SM_CRL_PENDING)?;
        for cert in &doomed {
            certs.remove(cert.serial.0.as_slice())?;
            if cert.revoked.is_some() {
                let key = crate::apply::revoked_key(&cert.issuer_id, &cert.serial.0);
                revocations.remove(key.as_slice())?;
                pending.remove(key.as_slice())?;
                crate::crl_delta::forget_revoked(txn, &key)?;
                crate::crl_partition::forget_revoked(txn, &cert.issuer_id, &cert.serial.0, &cert.der)?;
                revoked += 1;
            }
        }
    }
    for cert in &doomed {
        crate::index::remove_cert(txn, cert)?;
    }
    for head in &tidy.crl_heads {
        let published = crate::crl_head::publish_head(txn, head)?;
        if published != CommandResult::Applied {
            return Err(StoreError::Corrupt(format!(
                "CRL head {} of issuer {} was checked and then refused",
                head.number, head.issuer_id
            )));
        }
    }
    let mut meta = txn.open_table(SM_META)?;
    let before = meta.get(LAST)?.map(|v| decode::<TidyRecord>(v.value())).transpose()?;
    let record = TidyRecord {
        at: tidy.at,
        expired_before: tidy.expired_before,
        removed: doomed.len() as u64,
        revoked,
        total_removed: before.map_or(0, |r| r.total_removed) + doomed.len() as u64,
    };
    meta.insert(LAST, encode(&record).as_slice())?;
    Ok(CommandResult::Applied)
}

impl StateReader {
    /// The tidy policy in force (the default until one is set).
    pub fn tidy_policy(&self) -> Result<TidyPolicy, StoreError> {
        let meta = self.txn().open_table(SM_META)?;
        let policy = meta.get(POLICY)?.map(|v| decode(v.value())).transpose()?;
        Ok(policy.unwrap_or_default())
    }

    /// What the latest tidy batch did, if one ran.
    pub fn last_tidy(&self) -> Result<Option<TidyRecord>, StoreError> {
        let meta = self.txn().open_table(SM_META)?;
        meta.get(LAST)?.map(|v| decode(v.value())).transpose()
    }

    /// Up to `limit` certificates that expired before `expired_before` and may be removed,
    /// the earliest expiry first, read from the expiry index.
    pub fn tidy_candidates(&self, expired_before: u64, limit: usize) -> Result<Vec<TidyCandidate>, StoreError> {
        let mut out = Vec::new();
        self.each_expired(expired_before, |c| {
            out.push(c);
            out.len() < limit
        })?;
        Ok(out)
    }

    /// How many certificates a tidy would remove now, with `expired_before` as its bound:
    /// the index's rows below it, less the archived ones, without reading a certificate.
    pub fn tidy_pending(&self, expired_before: u64) -> Result<u64, StoreError> {
        let index = self.txn().open_table(IDX_CERT_EXPIRY)?;
        let archive = self.txn().open_table(SM_ARCHIVE)?;
        let check_archive = !archive.is_empty()?;
        let end = crate::index::expiry_key(expired_before, &[0u8; 20]);
        let mut n = 0u64;
        for row in index.range(..end.as_slice())? {
            let (k, _) = row?;
            if check_archive && archive.get(&k.value()[8..])?.is_some() {
                continue;
            }
            n += 1;
        }
        Ok(n)
    }

    /// Calls `f` with each removable certificate that expired before `expired_before`, in
    /// index order, while it answers true.
    fn each_expired(&self, expired_before: u64, mut f: impl FnMut(TidyCandidate) -> bool) -> Result<(), StoreError> {
        let index = self.txn().open_table(IDX_CERT_EXPIRY)?;
        let certs = self.txn().open_table(SM_CERTS)?;
        let archive = self.txn().open_table(SM_ARCHIVE)?;
        let end = crate::index::expiry_key(expired_before, &[0u8; 20]);
        for row in index.range(..end.as_slice())? {
            let (k, _) = row?;
            let serial = &k.value()[8..];
            if archive.get(serial)?.is_some() {
                continue;
            }
            let Some(cert) = certs.get(serial)? else {
                return Err(StoreError::Corrupt(
                    "the expiry index names a certificate not stored".into(),
                ));
            };
            let cert: CertRecord = decode(cert.value())?;
            let go_on = f(TidyCandidate {
                serial: cert.serial,
                issuer_id: cert.issuer_id,
                revoked: cert.revoked.is_some(),
            });
            if !go_on {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
