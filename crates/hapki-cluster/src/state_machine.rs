//! The openraft state machine over hapki-store: committed batches are applied
//! in one redb transaction together with the applied log id, so the two never
//! disagree. The applied state is its own snapshot (see [`crate::snapshot`]): building
//! one flushes it to disk and opens a read transaction, installing one replaces the
//! state with rows a leader streamed into a file under `<data-dir>/snapshots`.

use std::path::PathBuf;
use std::sync::Arc;

use hapki_store::codec::{decode, encode};
use hapki_store::tables::RAFT_META;
use hapki_store::{Command, Store};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder};
use redb::WriteTransaction;
use tokio::sync::broadcast;

use crate::log_store::io_err;
use crate::snapshot::{ChunkReader, Receiving, SnapshotData};
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
    receiving: Receiving,
    /// When an apply last made everything applied durable.
    durable_at: Arc<std::sync::Mutex<std::time::Instant>>,
}

/// How long applied entries may stay only in memory: the log holds them durably and
/// they are applied again after a crash, but redb reuses freed pages only after a
/// durable commit, and the log keeps every entry past the last durable apply.
const DURABLE_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

impl StateMachine {
    /// A state machine over `store`, receiving snapshots into `snapshot_dir`.
    pub fn new(store: Store, snapshot_dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&snapshot_dir)?;
        remove_files(&snapshot_dir)?;
        let (applied_tx, _) = broadcast::channel(4096);
        Ok(StateMachine {
            store,
            snapshot_dir,
            applied_tx,
            installs: Arc::default(),
            receiving: Receiving::default(),
            durable_at: Arc::new(std::sync::Mutex::new(std::time::Instant::now())),
        })
    }

    /// Snapshots received from a leader and installed since the process started.
    pub fn snapshot_installs(&self) -> u64 {
        self.installs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The snapshot this node is receiving, if any.
    pub fn receiving(&self) -> &Receiving {
        &self.receiving
    }

    /// A new file to receive a snapshot into.
    pub(crate) fn incoming_path(&self) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.snapshot_dir
            .join(format!("incoming-{}-{n}.tmp", std::process::id()))
    }

    /// The applied state as a snapshot (of nothing before anything was applied).
    fn live(&self) -> Result<Snapshot<TypeConfig>, BoxErr> {
        let txn = self.store.db().begin_read()?;
        let (applied, membership) = applied_in(&txn)?;
        let meta = SnapshotMeta {
            last_log_id: applied,
            last_membership: membership,
            snapshot_id: applied.map_or("empty".into(), |l| format!("{}-{}", l.leader_id.term, l.index)),
        };
        Ok(Snapshot {
            meta,
            snapshot: Box::new(SnapshotData::Live(txn)),
        })
    }

    /// Flushes the applied state to disk (the log below it may be purged from now on) and
    /// returns it as a snapshot.
    fn build(&self) -> Result<Snapshot<TypeConfig>, BoxErr> {
        self.store.flush()?;
        self.live()
    }

    /// Replaces the state with `data`, applied up to `meta`, in one durable transaction.
    fn install(&self, meta: &SnapshotMeta, data: SnapshotData) -> Result<(), BoxErr> {
        let mut txn = self.store.db().begin_write()?;
        txn.set_durability(redb::Durability::Immediate);
        match data {
            SnapshotData::Received(file) => {
                let f = std::fs::File::open(&file.0)?;
                // Unlinked now, read through the open handle: what the kernel has not yet
                // written of it need never reach the disk.
                drop(file);
                hapki_store::import_snapshot_file(&txn, &f)?;
            }
            SnapshotData::Live(source) => {
                let rows = crate::snapshot::chunks(source, Vec::new());
                hapki_store::import_state_and_indexes(&txn, ChunkReader::new(rows))?;
            }
        }
        if let Some(last) = &meta.last_log_id {
            set_applied(&txn, last, Some(&meta.last_membership))?;
        }
        txn.commit()?;
        self.installs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = self.applied_tx.send(Applied {
            index: meta.last_log_id.map_or(0, |l| l.index),
            command: None,
        });
        Ok(())
    }

    /// Subscribes to applied commands.
    pub fn subscribe(&self) -> broadcast::Receiver<Applied> {
        self.applied_tx.subscribe()
    }

    fn read_applied(&self) -> Result<(Option<LogId>, StoredMembership), BoxErr> {
        applied_in(&self.store.db().begin_read()?)
    }
}

/// Removes what an earlier release kept here (snapshot files) and what a receive cut
/// short left: nothing in the directory outlives the process that wrote it.
fn remove_files(dir: &std::path::Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
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
        tokio::task::spawn_blocking(move || this.build())
            .await
            .map_err(|e| io_err(ErrorSubject::None, ErrorVerb::Write, e))?
            .map_err(|e| io_err(ErrorSubject::None, ErrorVerb::Write, e))
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
            let mut txn = self.store.begin_apply()?;
            {
                let mut durable_at = self.durable_at.lock().expect("durable clock lock");
                if durable_at.elapsed() >= DURABLE_EVERY {
                    txn.set_durability(redb::Durability::Immediate);
                    *durable_at = std::time::Instant::now();
                }
            }
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

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotData>, StorageError> {
        let path = self.incoming_path();
        std::fs::File::create(&path).map_err(|e| io_err(ErrorSubject::None, ErrorVerb::Write, e))?;
        Ok(Box::new(SnapshotData::Received(crate::snapshot::ReceivedFile(path))))
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Box<SnapshotData>) -> Result<(), StorageError> {
        let this = self.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || this.install(&meta, *snapshot))
            .await
            .map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Write, e))?
            .map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Write, e))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        // Before anything was applied there is no snapshot to send.
        let snapshot = self
            .live()
            .map_err(|e| io_err(ErrorSubject::None, ErrorVerb::Read, e))?;
        Ok(snapshot.meta.last_log_id.is_some().then_some(snapshot))
    }
}
