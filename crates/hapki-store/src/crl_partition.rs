//! Partitioned CRLs (state format 3): once an issuer's revoked set passes
//! `crl_partition_size`, the node that issues a certificate names one of the issuer's
//! partition CRLs in its CRL distribution point, chosen from its serial; the certificate
//! itself is what says which partition it is in, so a later change of the setting moves
//! nothing. A revocation applied records the partition the certificate names
//! (`sm_revoked_partition`), and partition `p` of a CRL head lists the revocations the head
//! lists that are recorded under `p`. The complete CRL keeps listing every revocation.

use hapki_domain::serial::Serial;
use redb::WriteTransaction;
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};
use crate::command::CommandResult;
use crate::crl_head::{issuer_prefix, HeadEntries};
use crate::read::StateReader;
use crate::tables::*;
use crate::StoreError;

/// When an issuer's CRL is split into partitions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrlPartitioning {
    /// Revoked certificates per partition before another is opened; 0: no partitions.
    pub size: u64,
}

impl CrlPartitioning {
    /// How many partitions a certificate issued now is spread over, given the issuer's
    /// revoked count; `None` while the issuer's single CRL is small enough.
    pub fn partitions(&self, revoked: u64) -> Option<u32> {
        if self.size == 0 || revoked < self.size {
            return None;
        }
        Some(
            u32::try_from((revoked / self.size).saturating_add(1))
                .unwrap_or(u32::MAX)
                .min(MAX_PARTITIONS),
        )
    }

    /// The partition of a certificate with `serial` among `partitions`.
    pub fn partition_of(serial: &Serial, partitions: u32) -> u32 {
        let low = u64::from_be_bytes(serial.0[12..].try_into().expect("8 bytes"));
        (low % u64::from(partitions.max(1))) as u32
    }
}

/// The most partitions an issuer's CRL is split into.
pub const MAX_PARTITIONS: u32 = 4096;

const POLICY: &[u8] = b"crl_partitioning";

/// Key of a revocation in [`SM_REVOKED_PARTITION`]: issuer, `/`, partition, serial.
fn partition_key(issuer_id: &str, partition: u32, serial: &[u8; 20]) -> Vec<u8> {
    let mut k = issuer_prefix(issuer_id).0;
    k.extend_from_slice(&partition.to_be_bytes());
    k.extend_from_slice(serial);
    k
}

/// Applies [`crate::Command::SetCrlPartitioning`].
pub(crate) fn set_policy(txn: &WriteTransaction, policy: &CrlPartitioning) -> Result<CommandResult, StoreError> {
    txn.open_table(SM_META)?.insert(POLICY, encode(policy).as_slice())?;
    Ok(CommandResult::Applied)
}

/// Records the partition a certificate just revoked names, if it names one (format 3).
pub(crate) fn note_revoked(
    txn: &WriteTransaction,
    issuer_id: &str,
    serial: &[u8; 20],
    der: &[u8],
) -> Result<(), StoreError> {
    if crate::format::current(txn)? < 3 {
        return Ok(());
    }
    if let Some(p) = hapki_domain::crl::partition_of(der, issuer_id) {
        let key = partition_key(issuer_id, p, serial);
        txn.open_table(SM_REVOKED_PARTITION)?
            .insert(key.as_slice(), [].as_slice())?;
    }
    Ok(())
}

/// Drops a revocation the tidy removes from its partition.
pub(crate) fn forget_revoked(
    txn: &WriteTransaction,
    issuer_id: &str,
    serial: &[u8; 20],
    der: &[u8],
) -> Result<(), StoreError> {
    if let Some(p) = hapki_domain::crl::partition_of(der, issuer_id) {
        let key = partition_key(issuer_id, p, serial);
        txn.open_table(SM_REVOKED_PARTITION)?.remove(key.as_slice())?;
    }
    Ok(())
}

impl StateReader {
    /// The CRL partitioning in force (none until one is set).
    pub fn crl_partitioning(&self) -> Result<CrlPartitioning, StoreError> {
        let meta = self.txn().open_table(SM_META)?;
        let policy = meta.get(POLICY)?.map(|v| decode(v.value())).transpose()?;
        Ok(policy.unwrap_or_default())
    }

    /// How many revocations of the issuer are stored.
    pub fn revoked_count(&self, issuer_id: &str) -> Result<u64, StoreError> {
        self.count_issuer_rows(SM_REVOKED, issuer_id)
    }

    /// The latest head of the issuer and the revocations of partition `partition` it
    /// lists, in serial order; `None` when the latest CRL is not a head.
    pub fn partition_entries(&self, issuer_id: &str, partition: u32) -> Result<Option<HeadEntries>, StoreError> {
        let Some((head, all)) = self.head_entries(issuer_id)? else {
            return Ok(None);
        };
        let mut start = issuer_prefix(issuer_id).0;
        start.extend_from_slice(&partition.to_be_bytes());
        let table = self.txn().open_table(SM_REVOKED_PARTITION)?;
        let mut mine = std::collections::HashSet::new();
        for row in table.range(start.as_slice()..)? {
            let (k, _) = row?;
            let Some(serial) = k.value().strip_prefix(start.as_slice()) else {
                break;
            };
            mine.insert(serial.to_vec());
        }
        let entries = all
            .into_iter()
            .filter(|(serial, _)| mine.contains(serial.0.as_slice()))
            .collect();
        Ok(Some((head, entries)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_open_as_the_revoked_set_grows_and_a_serial_keeps_its_place() {
        let p = CrlPartitioning { size: 50_000 };
        assert_eq!(p.partitions(49_999), None);
        assert_eq!(p.partitions(50_000), Some(2));
        assert_eq!(p.partitions(120_000), Some(3));
        assert_eq!(CrlPartitioning::default().partitions(1_000_000), None, "0: off");
        assert_eq!(CrlPartitioning { size: 1 }.partitions(u64::MAX), Some(MAX_PARTITIONS));
        let serial = Serial::from_u64(7);
        assert_eq!(CrlPartitioning::partition_of(&serial, 2), 1);
        assert_eq!(CrlPartitioning::partition_of(&serial, 3), 1);
        assert_eq!(CrlPartitioning::partition_of(&Serial::from_u64(8), 2), 0);
    }
}
