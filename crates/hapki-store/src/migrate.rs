//! Migrating a data directory written by an earlier build, in place, when a node
//! opens it. There is one migration: schema 2 → 3, where every value moved from
//! bincode 1 ([`crate::legacy`]) to [`crate::codec`]. It rewrites every record, every
//! Raft log entry and bookkeeping value in one durable write transaction that also
//! sets the schema version, so a crash leaves either schema 2 whole or schema 3 whole.
//!
//! It is node-local, not a replicated command: each node re-encodes its own log and
//! files, and a cluster is upgraded with every node stopped (the channel changed too).

use std::ops::Bound;

use redb::{Database, Durability, ReadableTable, TableDefinition, TableHandle, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::records::{
    CertRecord, CrlRecord, InternalCaRecord, IssuerRecord, NodeRecord, Revocation, SerialLease, Settings, TokenRecord,
};
use crate::tables::*;
use crate::{legacy, StoreError};

/// What the store cannot re-encode by itself: the Raft tables, whose types the cluster
/// crate owns, and the node's files beside the database. [`crate::Store::open_upgrading`]
/// calls it while it migrates.
pub trait Upgrade {
    /// One Raft log entry of schema 2, in the current encoding.
    fn log_entry(&self, legacy: &[u8]) -> Result<Vec<u8>, StoreError>;
    /// One Raft bookkeeping value of schema 2 (`vote`, `applied`, …), in the current encoding.
    fn raft_meta(&self, key: &str, legacy: &[u8]) -> Result<Vec<u8>, StoreError>;
    /// Rewrites the node's files beside the database; runs before the migration commits,
    /// and again if it did not, so it must be safe to repeat.
    fn files(&self) -> Result<(), StoreError>;
}

/// What a migration rewrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    /// The schema version the store was at.
    pub from: u32,
    pub records: u64,
    pub log_entries: u64,
    pub raft_meta: u64,
}

/// Rows read at a time, so that a large table is never held in memory whole.
const BATCH: usize = 512;

/// Moves a schema-2 store to the current schema.
pub(crate) fn from_schema_2(db: &Database, upgrade: &dyn Upgrade) -> Result<Migrated, StoreError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate);
    let mut done = Migrated {
        from: 2,
        ..Migrated::default()
    };
    for table in SM_TABLES {
        let name = table.name().to_string();
        done.records += rewrite(&txn, table, |key, value| schema_2_value(&name, key, value))?;
    }
    done.log_entries += rewrite(&txn, RAFT_LOG, |_, value| upgrade.log_entry(value).map(Some))?;
    done.raft_meta += rewrite(&txn, RAFT_META, |key, value| {
        let key = std::str::from_utf8(key).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        upgrade.raft_meta(key, value).map(Some)
    })?;
    txn.open_table(SM_META)?
        .insert(b"schema_version".as_slice(), SCHEMA_VERSION.to_be_bytes().as_slice())?;
    upgrade.files()?;
    txn.commit()?;
    Ok(done)
}

/// A value of schema 2 in the current encoding; `None` where schema 2 did not use
/// bincode (profiles are JSON; counters, ids and serials raw bytes) and it stays as it is.
fn schema_2_value(table: &str, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    match table {
        "sm_meta" => schema_2_meta(key, value),
        "sm_issuers" => recode::<IssuerRecord>(value),
        "sm_certs" => recode::<CertRecord>(value),
        "sm_revoked" => recode::<Revocation>(value),
        "sm_tokens" => recode::<TokenRecord>(value),
        "sm_crls" => recode::<CrlRecord>(value),
        "sm_nodes" => recode::<NodeRecord>(value),
        "sm_profiles" | "sm_idempotency" => Ok(None),
        other => Err(StoreError::Corrupt(format!("schema 2 had no table {other}"))),
    }
}

fn schema_2_meta(key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    match key {
        b"settings" => recode::<Settings>(value),
        b"internal_ca" => recode::<InternalCaRecord>(value),
        k if k.starts_with(b"serial_lease:") => recode::<SerialLease>(value),
        b"cluster_id" | b"default_issuer" | b"next_serial" | b"kek_id" | b"schema_version" => Ok(None),
        other => Err(StoreError::Corrupt(format!(
            "sm_meta holds '{}', which schema 2 did not write",
            String::from_utf8_lossy(other)
        ))),
    }
}

fn recode<T: Serialize + DeserializeOwned>(legacy: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    legacy::recode::<T>(legacy).map(Some)
}

/// Replaces each value of `def` by what `f` makes of it (called with the key's bytes and the
/// value; `None` keeps the value), a batch at a time. Returns how many it replaced.
fn rewrite<K: redb::Key + 'static>(
    txn: &WriteTransaction,
    def: TableDefinition<K, &'static [u8]>,
    mut f: impl FnMut(&[u8], &[u8]) -> Result<Option<Vec<u8>>, StoreError>,
) -> Result<u64, StoreError> {
    let mut table = txn.open_table(def)?;
    let mut after: Option<Vec<u8>> = None;
    let mut replaced = 0;
    loop {
        let rows = match &after {
            Some(last) => table.range::<K::SelfType<'_>>((Bound::Excluded(K::from_bytes(last)), Bound::Unbounded))?,
            None => table.iter()?,
        };
        let batch = rows
            .take(BATCH)
            .map(|row| row.map(|(k, v)| (K::as_bytes(&k.value()).as_ref().to_vec(), v.value().to_vec())))
            .collect::<Result<Vec<_>, _>>()?;
        let Some((last, _)) = batch.last() else {
            return Ok(replaced);
        };
        after = Some(last.clone());
        for (key, value) in &batch {
            if let Some(new) = f(key, value)? {
                table.insert(K::from_bytes(key), new.as_slice())?;
                replaced += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests;
