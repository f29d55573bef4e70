//! The Raft log in redb. An append is reported done only after its write
//! transaction is committed with immediate durability, and a vote is on disk
//! before `save_vote` returns. The committed index, a hint openraft may find
//! behind, is kept in memory and written inside the next append or purge
//! rather than in a transaction of its own. Entries and bookkeeping values are
//! encoded with [`hapki_store::codec`].

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex};

use hapki_store::codec::{decode, encode};
use hapki_store::tables::{RAFT_LOG, RAFT_META};
use hapki_store::Store;
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, OptionalSend, RaftLogReader, StorageIOError};
use redb::{Durability, ReadableTable};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

/// The log store; cheap to clone (clones share the database and the committed index).
#[derive(Clone)]
pub struct LogStore {
    store: Store,
    committed: Arc<Mutex<Committed>>,
}

/// The committed index as openraft last reported it, and whether that value
/// is not on disk yet.
#[derive(Default)]
struct Committed {
    latest: Option<Option<LogId>>,
    unsaved: bool,
}

impl LogStore {
    pub fn new(store: Store) -> Self {
        LogStore {
            store,
            committed: Arc::default(),
        }
    }

    /// The committed index: the one openraft last reported, else the one on disk.
    pub fn commit_index(&self) -> Option<u64> {
        let latest = self.committed.lock().expect("committed index lock").latest;
        match latest {
            Some(c) => c.map(|l| l.index),
            None => saved_commit_index(&self.store),
        }
    }

    /// Writes a committed index not yet on disk into `txn`; the caller commits it.
    fn write_committed(&self, txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
        let mut c = self.committed.lock().expect("committed index lock");
        if let (true, Some(latest)) = (c.unsaved, c.latest) {
            txn.open_table(RAFT_META)?
                .insert("committed", encode(&latest).as_slice())?;
            c.unsaved = false;
        }
        Ok(())
    }

    fn meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StorageError> {
        let read = || -> Result<Option<T>, Box<dyn std::error::Error + Send + Sync>> {
            let txn = self.store.db().begin_read()?;
            let t = txn.open_table(RAFT_META)?;
            let v = t.get(key)?;
            Ok(match v {
                Some(v) => Some(decode(v.value())?),
                None => None,
            })
        };
        read().map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Read, e))
    }

    /// Writes a bookkeeping value and flushes it before returning.
    fn put_meta<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StorageError> {
        let write = || -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            let mut txn = self.store.db().begin_write()?;
            txn.set_durability(Durability::Immediate);
            txn.open_table(RAFT_META)?.insert(key, encode(value).as_slice())?;
            txn.commit()?;
            Ok(())
        };
        write().map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))
    }
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
        let read = || -> Result<Vec<Entry>, Box<dyn std::error::Error + Send + Sync>> {
            let txn = self.store.db().begin_read()?;
            let t = txn.open_table(RAFT_LOG)?;
            let mut out = Vec::new();
            for row in t.range(range)? {
                let (_, v) = row?;
                out.push(decode(v.value())?);
            }
            Ok(out)
        };
        read().map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.meta("last_purged")?;
        let read = || -> Result<Option<LogId>, Box<dyn std::error::Error + Send + Sync>> {
            let txn = self.store.db().begin_read()?;
            let t = txn.open_table(RAFT_LOG)?;
            let last = match t.last()? {
                Some((_, v)) => Some(decode::<Entry>(v.value())?.log_id),
                None => None,
            };
            Ok(last)
        };
        let last = read().map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_meta("vote", vote)
            .map_err(|_| io_err(ErrorSubject::Vote, ErrorVerb::Write, "saving the vote failed"))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.meta("vote")
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // No transaction of its own: the committed index is a hint that openraft
        // can recompute; it reaches disk with the next append or purge.
        let mut c = self.committed.lock().expect("committed index lock");
        c.latest = Some(committed);
        c.unsaved = true;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let latest = self.committed.lock().expect("committed index lock").latest;
        match latest {
            Some(c) => Ok(c),
            None => Ok(self.meta::<Option<LogId>>("committed")?.flatten()),
        }
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let write = || -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            let mut txn = self.store.db().begin_write()?;
            txn.set_durability(Durability::Immediate);
            {
                let mut t = txn.open_table(RAFT_LOG)?;
                for entry in entries {
                    t.insert(entry.log_id.index, encode(&entry).as_slice())?;
                }
            }
            self.write_committed(&txn)?;
            txn.commit()?;
            Ok(())
        };
        // Durable first, then report: the callback runs only after the commit is on disk.
        match write() {
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
        let write = || -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            let mut txn = self.store.db().begin_write()?;
            txn.set_durability(Durability::Immediate);
            txn.open_table(RAFT_LOG)?.retain_in(log_id.index.., |_, _| false)?;
            txn.commit()?;
            Ok(())
        };
        write().map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let write = || -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            let mut txn = self.store.db().begin_write()?;
            txn.set_durability(Durability::Immediate);
            txn.open_table(RAFT_META)?
                .insert("last_purged", encode(&log_id).as_slice())?;
            txn.open_table(RAFT_LOG)?.retain_in(..=log_id.index, |_, _| false)?;
            self.write_committed(&txn)?;
            txn.commit()?;
            Ok(())
        };
        write().map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}

/// Total size of the stored log entries after `index` (all of them when `None`).
pub(crate) fn bytes_after(store: &Store, index: Option<u64>) -> Result<u64, redb::Error> {
    let txn = store.db().begin_read()?;
    let table = txn.open_table(RAFT_LOG)?;
    let from = index.map(|i| i + 1).unwrap_or(0);
    let mut total = 0u64;
    for row in table.range(from..)? {
        let (_, v) = row?;
        total += v.value().len() as u64;
    }
    Ok(total)
}

/// The commit index last saved in `store`, if any: a hint, as [`LogStore`] saves it.
fn saved_commit_index(store: &Store) -> Option<u64> {
    let txn = store.db().begin_read().ok()?;
    let table = txn.open_table(RAFT_META).ok()?;
    let value = table.get("committed").ok()??;
    decode::<Option<LogId>>(value.value()).ok().flatten().map(|l| l.index)
}
