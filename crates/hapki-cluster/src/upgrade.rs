//! The Raft tables of a schema-2 store, re-encoded: log entries and bookkeeping
//! values read in the bincode 1 layout ([`hapki_store::legacy`]) and written with
//! [`hapki_store::codec`]. The server's [`hapki_store::Upgrade`] calls these while the
//! store migrates, beside rewriting its own files.

use hapki_store::legacy::recode;
use hapki_store::StoreError;

use crate::types::{Entry, LogId, StoredMembership, Vote};

/// One log entry of schema 2 (an openraft entry of a [`crate::types::Batch`]).
pub fn log_entry(legacy: &[u8]) -> Result<Vec<u8>, StoreError> {
    recode::<Entry>(legacy)
}

/// One `raft_meta` value of schema 2, by its key.
pub fn raft_meta(key: &str, legacy: &[u8]) -> Result<Vec<u8>, StoreError> {
    match key {
        "vote" => recode::<Vote>(legacy),
        "committed" | "applied" => recode::<Option<LogId>>(legacy),
        "last_purged" => recode::<LogId>(legacy),
        "membership" => recode::<StoredMembership>(legacy),
        other => Err(StoreError::Corrupt(format!(
            "raft_meta holds '{other}', which schema 2 did not write"
        ))),
    }
}
