//! The Raft log: entries in segment files ([`segments`]), one `fdatasync` per append,
//! reported done only after it; the vote and the last purged id in redb's `raft_meta`
//! table, each flushed before it is reported saved. The committed index, a hint openraft
//! may find behind, is kept in memory and written as a record inside the next append
//! (and into `raft_meta` with a purge) rather than flushed on its own. Entries and
//! bookkeeping values are encoded with [`hapki_store::codec`].
//!
//! A data directory from a build that kept the log in redb (`raft_log`) has its entries
//! moved into segments when the log opens: written and flushed first, then the table
//! emptied, so a crash in between moves them again at the next start.

mod segments;

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex};

use hapki_store::codec::{decode, encode};
use hapki_store::tables::{RAFT_LOG, RAFT_META};
use hapki_store::Store;
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, OptionalSend, RaftLogReader, StorageIOError};
use redb::{Durability, ReadableTable, ReadableTableMetadata};
use serde::de::DeserializeOwned;

use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use segments::Segments;

type BoxErr = Box<dyn std::error::Error + Send + Sync>;

/// The log store; cheap to clone (clones share the files and the bookkeeping).
#[derive(Clone)]
pub struct LogStore {
    store: Store,
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    log: Segments,
    /// The newest entry's id.
    last: Option<LogId>,
    last_purged: Option<LogId>,
    /// The committed index as openraft last reported it (or as found at open).
    committed: Option<LogId>,
    /// Whether `committed` is newer than what the files or `raft_meta` hold.
    committed_unsaved: bool,
}

impl LogStore {
    /// Opens the log in `dir` (created when absent) beside `store`'s bookkeeping.
    pub fn open(store: Store, dir: &Path) -> Result<Self, BoxErr> {
        let last_purged: Option<LogId> = meta(&store, "last_purged")?;
        let saved_committed: Option<LogId> = meta::<Option<LogId>>(&store, "committed")?.flatten();
        let purged_index = last_purged.map(|l| l.index);
        migrate_redb_log(&store, dir, purged_index)?;
        let opened = Segments::open(dir, purged_index)?;
        let last = match opened.last_entry {
            Some(bytes) => Some(decode::<Entry>(&bytes)?.log_id),
            None => None,
        };
        let in_files = match opened.committed {
            Some(bytes) => decode::<Option<LogId>>(&bytes)?,
            None => None,
        };
        let committed = match (in_files, saved_committed) {
            (Some(a), Some(b)) => Some(if a.index >= b.index { a } else { b }),
            (a, b) => a.or(b),
        };
        Ok(LogStore {
            store,
            inner: Arc::new(Mutex::new(Inner {
                log: opened.log,
                last,
                last_purged,
                committed,
                committed_unsaved: false,
            })),
        })
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("raft log lock")
    }

    /// The committed index: the one openraft last reported, else the one on disk.
    pub fn commit_index(&self) -> Option<u64> {
        self.inner().committed.map(|l| l.index)
    }

    /// Total size of the entries after `index` (all of them when `None`): what a peer at
    /// `index` lacks.
    pub fn bytes_after(&self, index: Option<u64>) -> u64 {
        self.inner().log.bytes_after(index)
    }

    /// Writes a bookkeeping value and flushes it before returning.
    fn put_meta(&self, values: &[(&str, Vec<u8>)]) -> Result<(), BoxErr> {
        let mut txn = self.store.db().begin_write()?;
        txn.set_durability(Durability::Immediate);
        {
            let mut t = txn.open_table(RAFT_META)?;
            for (key, value) in values {
                t.insert(*key, value.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn read_entries(&self, from: u64, to: u64) -> Result<Vec<Entry>, BoxErr> {
        let reads = self.inner().log.reads(from, to);
        reads
            .read()?
            .iter()
            .map(|b| decode::<Entry>(b).map_err(Into::into))
            .collect()
    }
}

fn meta<T: DeserializeOwned>(store: &Store, key: &str) -> Result<Option<T>, BoxErr> {
    let txn = store.db().begin_read()?;
    let t = txn.open_table(RAFT_META)?;
    let v = t.get(key)?;
    Ok(match v {
        Some(v) => Some(decode(v.value())?),
        None => None,
    })
}

/// Moves the entries of an older build's `raft_log` table into segments in `dir`.
fn migrate_redb_log(store: &Store, dir: &Path, purged: Option<u64>) -> Result<(), BoxErr> {
    let rows: Vec<(u64, Vec<u8>)> = {
        let txn = store.db().begin_read()?;
        let t = txn.open_table(RAFT_LOG)?;
        if t.is_empty()? {
            return Ok(());
        }
        t.iter()?
            .map(|row| row.map(|(k, v)| (k.value(), v.value().to_vec())))
            .collect::<Result<_, _>>()?
    };
    // The table is the truth until it is emptied: whatever segments a crashed move left go.
    let mut opened = Segments::open(dir, purged)?;
    opened.log.clear()?;
    for chunk in rows.chunks(256) {
        opened.log.append(chunk, None)?.run()?;
    }
    let mut txn = store.db().begin_write()?;
    txn.set_durability(Durability::Immediate);
    txn.open_table(RAFT_LOG)?.retain(|_, _| false)?;
    txn.commit()?;
    tracing::info!(
        entries = rows.len(),
        "moved the raft log from the database into segment files"
    );
    Ok(())
}

/// The half-open range of indexes `range` names.
fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let from = match range.start_bound() {
        Bound::Included(i) => *i,
        Bound::Excluded(i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let to = match range.end_bound() {
        Bound::Included(i) => i.saturating_add(1),
        Bound::Excluded(i) => *i,
        Bound::Unbounded => u64::MAX,
    };
    (from, to)
}

pub(crate) fn io_err(
    subject: ErrorSubject<u64>,
    verb: ErrorVerb,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> StorageError {
    let e: Box<dyn std::error::Error + Send + Sync> = e.into();
    StorageIOError::new(subject, verb, openraft::AnyError::error(e.to_string())).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (from, to) = bounds(&range);
        self.read_entries(from, to)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = self.inner();
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: inner.last.or(inner.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_meta(&[("vote", encode(vote))])
            .map_err(|_| io_err(ErrorSubject::Vote, ErrorVerb::Write, "saving the vote failed"))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        meta(&self.store, "vote").map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Read, e))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // No flush of its own: the committed index is a hint that openraft can
        // recompute; it reaches disk with the next append or purge.
        let mut inner = self.inner();
        inner.committed = committed;
        inner.committed_unsaved = true;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.inner().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut last = None;
        let batch: Vec<(u64, Vec<u8>)> = entries
            .into_iter()
            .map(|entry| {
                last = Some(entry.log_id);
                (entry.log_id.index, encode(&entry))
            })
            .collect();
        let written = {
            let mut inner = self.inner();
            let committed = inner.committed_unsaved.then(|| encode(&inner.committed));
            let written = inner.log.append(&batch, committed.as_deref());
            if written.is_ok() {
                inner.committed_unsaved = false;
                if last.is_some() {
                    inner.last = last;
                }
            }
            written
        };
        // Durable first, then report: the callback runs only after the flush; readers
        // (replication to followers) need not wait for it.
        match written.and_then(|flush| flush.run()) {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                callback.log_io_completed(Err(std::io::Error::other(msg.clone())));
                Err(io_err(ErrorSubject::Logs, ErrorVerb::Write, msg))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let cut = || -> Result<(), BoxErr> {
            let before = match log_id.index.checked_sub(1) {
                Some(i) => self.read_entries(i, i + 1)?.pop().map(|e| e.log_id),
                None => None,
            };
            let mut inner = self.inner();
            inner.log.truncate(log_id.index)?;
            inner.last = before.or(inner.last_purged);
            Ok(())
        };
        cut().map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let purge = || -> Result<(), BoxErr> {
            let committed = self.inner().committed;
            self.put_meta(&[("last_purged", encode(&log_id)), ("committed", encode(&committed))])?;
            let mut inner = self.inner();
            inner.last_purged = Some(log_id);
            if inner.last.is_none_or(|l| l.index < log_id.index) {
                inner.last = Some(log_id);
            }
            inner.log.purge(log_id.index)?;
            Ok(())
        };
        purge().map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}

#[cfg(test)]
mod tests;
