//! What a Raft snapshot is here, and how it travels. The state machine is its own
//! snapshot: a snapshot is a read transaction over the applied state, held open while
//! it is sent, its rows written in the snapshot format
//! ([`hapki_store::export_state`]) straight into the request body; nothing is copied to
//! memory or to the sender's disk first. The receiver writes the body to one file as it
//! arrives, counting bytes for the join's progress, and installs it from there.
//!
//! A streamed snapshot body is `[length u32][codec (vote, meta)]` followed by the rows and
//! the sender's derived indexes ([`hapki_store::export_indexes`]), which a receiver of the
//! same index version installs instead of deriving them again.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;

use crate::types::{SnapshotMeta, Vote};

/// The bytes a chunk of a streamed snapshot holds (the last one fewer).
pub(crate) const CHUNK: usize = 1 << 20;
/// Chunks produced ahead of the network: what a send holds in memory at most.
const AHEAD: usize = 4;

/// A snapshot's rows, as openraft hands them from node to node.
pub enum SnapshotData {
    /// The applied state as one read transaction sees it.
    Live(redb::ReadTransaction),
    /// A snapshot received from the leader, in the snapshot format, to install.
    Received(ReceivedFile),
}

impl std::fmt::Debug for SnapshotData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotData::Live(_) => f.write_str("Live"),
            SnapshotData::Received(r) => write!(f, "Received({})", r.0.display()),
        }
    }
}

/// The file a snapshot was received into; removed when dropped, installed or not.
pub struct ReceivedFile(pub(crate) PathBuf);

impl Drop for ReceivedFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The prefix of a streamed snapshot body: who sends it and what it holds.
pub(crate) fn header(vote: &Vote, meta: &SnapshotMeta) -> Vec<u8> {
    let head = hapki_store::codec::encode(&(vote, meta));
    let mut out = Vec::with_capacity(4 + head.len());
    out.extend_from_slice(&(head.len() as u32).to_be_bytes());
    out.extend_from_slice(&head);
    out
}

/// Rows of `txn` in the snapshot format, in chunks of [`CHUNK`] bytes, produced by a
/// blocking task at most [`AHEAD`] chunks ahead of whoever takes them; `first` goes first.
/// Dropping the receiver stops the export.
pub(crate) fn chunks(
    txn: redb::ReadTransaction,
    first: Vec<u8>,
) -> tokio::sync::mpsc::Receiver<std::io::Result<Bytes>> {
    let (tx, rx) = tokio::sync::mpsc::channel(AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut w = ChunkWriter {
            buf: first,
            tx: tx.clone(),
        };
        let result = hapki_store::export_state(&txn, &mut w)
            .and_then(|_| hapki_store::export_indexes(&txn, &mut w))
            .map_err(std::io::Error::other);
        let result = result.and_then(|_| w.send());
        if let Err(e) = result {
            // The receiver may be gone already: then nobody needs to hear of it.
            let _ = tx.blocking_send(Err(e));
        }
    });
    rx
}

struct ChunkWriter {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the snapshot's receiver went away"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The chunks of [`chunks`] as one `Read`, for a blocking consumer in this process.
pub(crate) struct ChunkReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl ChunkReader {
    pub(crate) fn new(rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>) -> Self {
        ChunkReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// How far the snapshot this node is receiving has come.
#[derive(Clone, Default)]
pub struct Receiving {
    bytes: Arc<AtomicU64>,
    started: Arc<Mutex<Option<Instant>>>,
    installing: Arc<std::sync::atomic::AtomicBool>,
}

/// Bytes of a snapshot received so far, for how long it has been arriving, and whether
/// it arrived whole and is being installed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReceiveProgress {
    pub bytes: u64,
    pub elapsed: Duration,
    pub installing: bool,
}

impl ReceiveProgress {
    /// Bytes per second so far.
    pub fn rate(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64().max(0.001)
    }
}

impl Receiving {
    pub(crate) fn start(&self) {
        self.bytes.store(0, Ordering::Relaxed);
        self.installing.store(false, Ordering::Relaxed);
        *self.started.lock().expect("progress lock") = Some(Instant::now());
    }

    pub(crate) fn installing(&self) {
        self.installing.store(true, Ordering::Relaxed);
    }

    pub(crate) fn add(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn finish(&self) {
        *self.started.lock().expect("progress lock") = None;
    }

    /// The snapshot being received now, if one is.
    pub fn progress(&self) -> Option<ReceiveProgress> {
        let started = (*self.started.lock().expect("progress lock"))?;
        Some(ReceiveProgress {
            bytes: self.bytes.load(Ordering::Relaxed),
            elapsed: started.elapsed(),
            installing: self.installing.load(Ordering::Relaxed),
        })
    }
}

/// Reads a streamed snapshot body: its header, then its rows written to `path` as they
/// arrive, counted in `progress` (which the caller starts and finishes). Nothing is left at
/// `path` on error.
pub(crate) async fn receive(
    progress: &Receiving,
    path: &std::path::Path,
    body: axum::body::Body,
) -> Result<(Vote, SnapshotMeta), String> {
    let result = receive_into(progress, path, body).await;
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// The longest header a snapshot body may start with.
const MAX_HEADER: usize = 1 << 20;

async fn receive_into(
    progress: &Receiving,
    path: &std::path::Path,
    body: axum::body::Body,
) -> Result<(Vote, SnapshotMeta), String> {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;

    let mut stream = body.into_data_stream();
    let mut pending = Vec::new();
    let mut head: Option<(Vote, SnapshotMeta)> = None;
    let file = tokio::fs::File::create(path)
        .await
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let mut out = tokio::io::BufWriter::with_capacity(CHUNK, file);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("the body was cut: {e}"))?;
        progress.add(chunk.len() as u64);
        if head.is_some() {
            out.write_all(&chunk).await.map_err(|e| e.to_string())?;
            continue;
        }
        pending.extend_from_slice(&chunk);
        if pending.len() < 4 {
            continue;
        }
        let len = u32::from_be_bytes(pending[..4].try_into().expect("four bytes")) as usize;
        if len > MAX_HEADER {
            return Err(format!("a header of {len} bytes"));
        }
        if pending.len() < 4 + len {
            continue;
        }
        head = Some(hapki_store::codec::decode(&pending[4..4 + len]).map_err(|e| format!("undecodable header: {e}"))?);
        out.write_all(&pending[4 + len..]).await.map_err(|e| e.to_string())?;
        pending = Vec::new();
    }
    let head = head.ok_or("the body ended before its header")?;
    // Not flushed to disk: the file is only read back by the install that follows, in this
    // process; the install's own commit is what is made durable.
    out.flush().await.map_err(|e| e.to_string())?;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{LogId, StoredMembership};

    fn meta() -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(LogId::new(openraft::CommittedLeaderId::new(2, 7), 40)),
            last_membership: StoredMembership::default(),
            snapshot_id: "2-40".into(),
        }
    }

    /// A body that arrives in the given pieces.
    fn body(pieces: Vec<Vec<u8>>) -> axum::body::Body {
        let stream = futures_util::stream::iter(pieces.into_iter().map(|p| Ok::<_, std::io::Error>(Bytes::from(p))));
        axum::body::Body::from_stream(stream)
    }

    #[tokio::test]
    async fn a_streamed_body_gives_its_header_and_its_rows_in_the_file_whatever_its_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.tmp");
        let vote = Vote::new_committed(2, 7);
        let mut whole = header(&vote, &meta());
        let rows: Vec<u8> = (0..3000u32).flat_map(|i| i.to_be_bytes()).collect();
        whole.extend_from_slice(&rows);
        // Pieces of 1, 7 and 1,000 bytes: the header is split across them.
        for size in [1, 7, 1000] {
            let pieces = whole.chunks(size).map(<[u8]>::to_vec).collect();
            let progress = Receiving::default();
            let (v, m) = receive(&progress, &path, body(pieces)).await.unwrap();
            assert_eq!((v, m), (vote, meta()));
            assert_eq!(std::fs::read(&path).unwrap(), rows, "pieces of {size}");
            assert_eq!(progress.bytes.load(Ordering::Relaxed), whole.len() as u64);
        }
    }

    #[tokio::test]
    async fn a_body_without_its_header_is_refused_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.tmp");
        let progress = Receiving::default();
        let cases: Vec<(Vec<Vec<u8>>, &str)> = vec![
            (vec![], "ended before its header"),
            (vec![vec![0, 0]], "ended before its header"),
            (vec![vec![0, 0, 0, 9, 1, 2]], "ended before its header"),
            (vec![vec![0xff, 0xff, 0xff, 0xff]], "a header of"),
            (vec![vec![0, 0, 0, 2, 0xff, 0xff, 1, 2, 3]], "undecodable header"),
        ];
        for (pieces, says) in cases {
            let err = receive(&progress, &path, body(pieces)).await.unwrap_err();
            assert!(err.contains(says), "{err}");
            assert!(!path.exists(), "{says}: the file is removed");
        }
    }

    #[tokio::test]
    async fn a_body_cut_short_is_refused_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.tmp");
        let mut first = header(&Vote::new_committed(2, 7), &meta());
        first.extend_from_slice(b"some rows");
        let pieces = vec![Ok(Bytes::from(first)), Err(std::io::Error::other("connection reset"))];
        let cut = axum::body::Body::from_stream(futures_util::stream::iter(pieces));
        let err = receive(&Receiving::default(), &path, cut).await.unwrap_err();
        assert!(err.contains("cut"), "{err}");
        assert!(!path.exists());
    }
}
