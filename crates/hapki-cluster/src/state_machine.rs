//! The openraft state machine over hapki-store: committed batches are applied
//! in one redb transaction together with the applied log id, so the two never
//! disagree; snapshots are files in `<data-dir>/snapshots`, streamed in and out.
//! A snapshot that a node of an earlier schema left there is replaced at start by one
//! of the same (migrated) state, so that no node sends values this build cannot read.

use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::sync::Arc;

use hapki_store::codec::{decode, encode};
use hapki_store::tables::RAFT_META;
use hapki_store::{Command, Store};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder};
use redb::WriteTransaction;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::log_store::io_err;
use crate::types::{BatchResult, Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

type BoxErr = Box<dyn std::error::Error + Send + Sync>;

/// A change to the state, announced to whoever listens (caches, CRL scheduling): a command
/// applied, or (`command` `None`) a snapshot installed in place of the whole state, after
/// which anything derived from the state may be stale.
#[derive(Clone, Debug)]
pub struct Applied {
    pub index: u64,
    pub command: Option<Arc<Command>>,
}

impl Applied {
    /// The command that took effect ([`Command::inner`]); `None` for a snapshot installed.
    pub fn command(&self) -> Option<&Command> {
        self.command.as_deref().map(Command::inner)
    }
}

/// The state machine; cheap to clone.
#[derive(Clone)]
pub struct StateMachine {
    store: Store,
    snapshot_dir: PathBuf,
    applied_tx: broadcast::Sender<Applied>,
    /// Snapshots received from a leader and installed, since the process started.
    installs: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotFileMeta {
    meta: SnapshotMeta,
}

impl StateMachine {
    /// A state machine over `store`, keeping snapshots in `snapshot_dir`.
    pub fn new(store: Store, snapshot_dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&snapshot_dir)?;
        let (applied_tx, _) = broadcast::channel(4096);
        let sm = StateMachine {
            store,
            snapshot_dir,
            applied_tx,
            installs: Arc::default(),
        };
        sm.replace_stale_snapshot().map_err(std::io::Error::other)?;
        Ok(sm)
    }

    /// Snapshots received from a leader and installed since the process started.
    pub fn snapshot_installs(&self) -> u64 {
        self.installs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Builds a new current snapshot when the one kept is of another format (written
    /// before the store was migrated): it is of the applied state, which is at or past
    /// the old snapshot's, so the log it lets openraft purge is still covered.
    fn replace_stale_snapshot(&self) -> Result<(), BoxErr> {
        let file = match std::fs::File::open(self.current_path()) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if hapki_store::snapshot_is_current(BufReader::new(file))? {
            return Ok(());
        }
        let meta = self.build()?;
        tracing::info!(
            "replaced a snapshot of an earlier format by snapshot {}",
            meta.snapshot_id
        );
        Ok(())
    }

    /// Subscribes to applied commands.
    pub fn subscribe(&self) -> broadcast::Receiver<Applied> {
        self.applied_tx.subscribe()
    }

    fn current_path(&self) -> PathBuf {
        self.snapshot_dir.join("current.snap")
    }

    fn current_meta_path(&self) -> PathBuf {
        self.snapshot_dir.join("current.meta")
    }

    fn read_applied(&self) -> Result<(Option<LogId>, StoredMembership), BoxErr> {
        applied_in(&self.store.db().begin_read()?)
    }

    /// Writes a snapshot of the applied state, flushed, and publishes it as the current one.
    pub(crate) fn build(&self) -> Result<SnapshotMeta, BoxErr> {
        // Applied state must be on disk before the log below it may be purged.
        self.store.flush()?;
        let txn = self.store.db().begin_read()?;
        let (applied, membership) = applied_in(&txn)?;
        let snapshot_id = match applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, std::process::id()),
            None => format!("empty-{}", std::process::id()),
        };
        let tmp = self.snapshot_dir.join(format!("build-{snapshot_id}.tmp"));
        let file = std::fs::File::create(&tmp)?;
        let mut w = BufWriter::new(file);
        hapki_store::export_state(&txn, &mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        let meta = SnapshotMeta {
            last_log_id: applied,
            last_membership: membership,
            snapshot_id,
        };
        self.publish(&tmp, &meta)?;
        Ok(meta)
    }

    /// Publishes a finished snapshot file and its meta as the current snapshot.
    pub(crate) fn publish(&self, tmp: &std::path::Path, meta: &SnapshotMeta) -> Result<(), BoxErr> {
        std::fs::rename(tmp, self.current_path())?;
        let meta_tmp = self.snapshot_dir.join("current.meta.tmp");
        std::fs::write(&meta_tmp, serde_json::to_vec(&SnapshotFileMeta { meta: meta.clone() })?)?;
        std::fs::File::open(&meta_tmp)?.sync_all()?;
        std::fs::rename(meta_tmp, self.current_meta_path())?;
        Ok(())
    }
}

/// The last applied log id and the membership it brought, as `txn` sees them.
pub(crate) fn applied_in(txn: &redb::ReadTransaction) -> Result<(Option<LogId>, StoredMembership), BoxErr> {
    let t = txn.open_table(RAFT_META)?;
    let applied = match t.get("applied")? {
        Some(v) => decode(v.value())?,
        None => None,
    };
    let membership = match t.get("membership")? {
        Some(v) => decode(v.value())?,
        None => StoredMembership::default(),
    };
    Ok((applied, membership))
}

pub(crate) fn set_applied(
    txn: &WriteTransaction,
    applied: &LogId,
    membership: Option<&StoredMembership>,
) -> Result<(), BoxErr> {
    let mut t = txn.open_table(RAFT_META)?;
    t.insert("applied", encode(&Some(*applied)).as_slice())?;
    if let Some(m) = membership {
        t.insert("membership", encode(m).as_slice())?;
    }
    Ok(())
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let this = self.clone();
        let built = tokio::task::spawn_blocking(move || this.build())
            .await
            .map_err(|e| io_err(ErrorSubject::None, ErrorVerb::Write, e))?
            .map_err(|e| io_err(ErrorSubject::None, ErrorVerb::Write, e))?;
        let file = tokio::fs::File::open(self.current_path())
            .await
            .map_err(|e| io_err(ErrorSubject::None, ErrorVerb::Read, e))?;
        Ok(Snapshot {
            meta: built,
            snapshot: Box::new(file),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        self.read_applied()
            .map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Read, e))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<BatchResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut announce = Vec::new();
        let apply = || -> Result<Vec<BatchResult>, BoxErr> {
            let txn = self.store.begin_apply()?;
            let mut out = Vec::new();
            let mut last = None;
            let mut membership = None;
            for entry in entries {
                last = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => out.push(BatchResult::default()),
                    EntryPayload::Normal(batch) => {
                        let mut results = Vec::with_capacity(batch.commands.len());
                        for cmd in batch.commands {
                            let r = hapki_store::apply(&txn, &cmd)?;
                            if r == hapki_store::CommandResult::Applied {
                                announce.push(Applied {
                                    index: entry.log_id.index,
                                    command: Some(Arc::new(cmd)),
                                });
                            }
                            results.push(r);
                        }
                        out.push(BatchResult { results });
                    }
                    EntryPayload::Membership(m) => {
                        membership = Some(StoredMembership::new(Some(entry.log_id), m));
                        out.push(BatchResult::default());
                    }
                }
            }
            if let Some(last) = last {
                set_applied(&txn, &last, membership.as_ref())?;
            }
            txn.commit()?;
            Ok(out)
        };
        let out = apply().map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Write, e))?;
        for a in announce {
            // Nobody listening is fine.
            let _ = self.applied_tx.send(a);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let path = self.snapshot_dir.join("incoming.tmp");
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .await
            .map_err(|e| io_err(ErrorSubject::None, ErrorVerb::Write, e))?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let file = snapshot.into_std().await;
        let this = self.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || -> Result<(), BoxErr> {
            use std::io::{Seek, SeekFrom};
            let mut file = file;
            file.sync_all()?;
            file.seek(SeekFrom::Start(0))?;
            let mut txn = this.store.db().begin_write()?;
            txn.set_durability(redb::Durability::Immediate);
            hapki_store::import_state(&txn, BufReader::new(&file))?;
            if let Some(last) = &meta.last_log_id {
                set_applied(&txn, last, Some(&meta.last_membership))?;
            }
            txn.commit()?;
            // Keep the received file as the current snapshot (copied: the incoming path may be reused).
            let tmp = this.snapshot_dir.join("installed.tmp");
            file.seek(SeekFrom::Start(0))?;
            std::io::copy(&mut file, &mut std::fs::File::create(&tmp)?)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            this.publish(&tmp, &meta)?;
            this.installs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let _ = this.applied_tx.send(Applied {
                index: meta.last_log_id.map_or(0, |l| l.index),
                command: None,
            });
            Ok(())
        })
        .await
        .map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Write, e))?
        .map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Write, e))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let meta_path = self.current_meta_path();
        if !meta_path.exists() {
            return Ok(None);
        }
        let read = || -> Result<SnapshotMeta, BoxErr> {
            let m: SnapshotFileMeta = serde_json::from_slice(&std::fs::read(&meta_path)?)?;
            Ok(m.meta)
        };
        let meta = read().map_err(|e| io_err(ErrorSubject::None, ErrorVerb::Read, e))?;
        let file = tokio::fs::File::open(self.current_path())
            .await
            .map_err(|e| io_err(ErrorSubject::None, ErrorVerb::Read, e))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(file),
        }))
    }
}
