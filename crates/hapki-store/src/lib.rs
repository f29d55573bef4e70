//! hapki's replicated state machine: the commands that change it, their
//! deterministic apply into redb tables, the reads every node serves from its
//! own replica, snapshots as a stream, and a digest to compare replicas.
//! It knows nothing of Raft: the cluster crate feeds it committed commands.
//! It also owns how every value is encoded ([`codec`]) and the migration of a
//! store of an earlier schema ([`Upgrade`]).

pub mod acme;
mod apply;
pub mod archive;
pub mod audit;
pub mod backups;
pub mod codec;
pub mod command;
pub mod crl_delta;
pub mod crl_head;
pub mod crl_partition;
pub mod format;
pub mod idempotency;
mod index;
mod kek;
pub mod legacy;
pub mod listing;
mod migrate;
mod read;
pub mod records;
pub mod rollover;
mod snapshot;
pub mod tables;
pub mod tidy;

use std::path::Path;
use std::sync::Arc;

use redb::{Database, Durability, ReadTransaction, WriteTransaction};

pub use archive::{Approval, ArchiveSource, ArchivedKey, RecoveryPolicy, RecoveryRequest, TransportRecord};
pub use audit::{AuditKeyRecord, AuditMeta};
pub use backups::BackupRecord;
pub use command::{Command, CommandResult, RejectCode};
pub use crl_head::{CrlHead, LatestCrl};
pub use listing::{CertFilter, CertPage, CertStatus, Cursor};
pub use migrate::{Migrated, Upgrade};
pub use read::StateReader;
pub use records::*;
pub use rollover::Rollover;
pub use snapshot::{
    export_indexes, export_state, import_snapshot_file, import_state, import_state_and_indexes, SNAPSHOT_FORMAT,
};

/// The page cache of a store opened with [`Store::open`].
pub const DEFAULT_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Failures of the storage itself (disk, corruption); never a business refusal.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Db(Box<redb::Error>),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The data was written in a layout this build does not read.
    #[error("{0}")]
    Format(String),
    /// A read asked for something it cannot be answered with (a cursor of another listing).
    #[error("{0}")]
    Invalid(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(Box::new(e.into())) }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::DatabaseError
);

/// The node's database: state machine and Raft log in one redb file.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

impl Store {
    /// Opens or creates the database and its tables, with the default page cache.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Opens or creates the database with a page cache of `cache_bytes`: what the node keeps of
    /// its store in memory, whatever the store's size. A store of another schema is refused.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Store, StoreError> {
        Self::open_inner(path, cache_bytes, None).map(|(store, _)| store)
    }

    /// [`Store::open_with_cache`], except that a store of schema 2 is migrated in place first,
    /// `upgrade` re-encoding what this crate does not know; says what it migrated.
    pub fn open_upgrading(
        path: &Path,
        cache_bytes: usize,
        upgrade: &dyn Upgrade,
    ) -> Result<(Store, Option<Migrated>), StoreError> {
        Self::open_inner(path, cache_bytes, Some(upgrade))
    }

    fn open_inner(
        path: &Path,
        cache_bytes: usize,
        upgrade: Option<&dyn Upgrade>,
    ) -> Result<(Store, Option<Migrated>), StoreError> {
        let db = redb::Builder::new().set_cache_size(cache_bytes).create(path)?;
        let txn = db.begin_write()?;
        for table in tables::SM_TABLES {
            txn.open_table(table)?;
        }
        txn.open_table(tables::RAFT_LOG)?;
        txn.open_table(tables::RAFT_META)?;
        txn.commit()?;
        let store = Store { db: Arc::new(db) };
        let migrated = store.check_schema(upgrade)?;
        store.check_state_format()?;
        store.build_indexes()?;
        Ok((store, migrated))
    }

    /// Builds the derived indexes ([`index`]) if this store has none of this build's version.
    fn build_indexes(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        if index::is_current(&txn)? {
            return Ok(());
        }
        index::rebuild(&txn)?;
        txn.commit()?;
        Ok(())
    }

    /// Refuses a database whose state machine was written in another layout (reading it
    /// as this one would misread every record), unless it can migrate it with `upgrade`.
    fn check_schema(&self, upgrade: Option<&dyn Upgrade>) -> Result<Option<Migrated>, StoreError> {
        let found = self.reader()?.schema_version()?;
        match (found, upgrade) {
            (None, _) => Ok(None),
            (Some(tables::SCHEMA_VERSION), _) => Ok(None),
            (Some(2), Some(upgrade)) => migrate::from_schema_2(&self.db, upgrade).map(Some),
            (Some(2), None) => Err(StoreError::Format(format!(
                "this data directory holds schema version 2; `hapki server` migrates it to version {} \
                 when it starts on it",
                tables::SCHEMA_VERSION
            ))),
            (Some(v), _) if v > tables::SCHEMA_VERSION => Err(StoreError::Format(format!(
                "this data directory holds schema version {v}, written by a newer hapki; this build \
                 reads version {}: start the newer build on it",
                tables::SCHEMA_VERSION
            ))),
            (Some(v), _) => Err(StoreError::Format(format!(
                "this data directory holds schema version {v}, and this build reads version {}; \
                 it was written by an earlier development build, whose records this one cannot read: \
                 start that build on it, or start this one on a new data directory",
                tables::SCHEMA_VERSION
            ))),
        }
    }

    /// Refuses a state of a format this build does not apply: the cluster agreed on
    /// commands it cannot apply.
    fn check_state_format(&self) -> Result<(), StoreError> {
        let found = self.reader()?.state_format()?;
        if found > format::MAX {
            return Err(StoreError::Format(format!(
                "this data directory holds state format {found}, and this build applies format {} at \
                 most: start hapki {} or later on it",
                format::MAX,
                format::first_release(found)
            )));
        }
        Ok(())
    }

    /// The underlying database, for the Raft log store.
    pub fn db(&self) -> &Arc<Database> {
        &self.db
    }

    /// A write transaction for applying committed entries. It is not flushed on
    /// commit: the Raft log holds the entries durably, and after a crash they are
    /// applied again from the last applied index that made it to disk.
    pub fn begin_apply(&self) -> Result<WriteTransaction, StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::None);
        Ok(txn)
    }

    /// Flushes everything applied so far to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        txn.commit()?;
        Ok(())
    }

    /// A consistent read view of the state machine.
    pub fn reader(&self) -> Result<StateReader, StoreError> {
        let txn: ReadTransaction = self.db.begin_read()?;
        Ok(StateReader::new(txn))
    }
}

/// Applies one command inside a write transaction (see [`Store::begin_apply`]).
/// A command of a state format above what this build applies is an error (the node
/// stops rather than diverge); one above the state's format is refused on every node.
pub fn apply(txn: &WriteTransaction, cmd: &Command) -> Result<CommandResult, StoreError> {
    if let Some(refusal) = format::check(txn, cmd)? {
        return Ok(refusal);
    }
    apply::apply(txn, cmd)
}

#[cfg(test)]
mod tests;
