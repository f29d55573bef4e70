//! The Raft log's entries in append-only segment files, one directory per node.
//!
//! A segment is a run of records; each record is framed as
//!
//! ```text
//! u32 LE  length of kind + payload
//! u32 LE  CRC-32 of kind + payload
//! u8      kind: 0 an entry, 1 the committed index as openraft last reported it
//! …       an entry: its index (u64 BE) and the encoded entry; the committed index: its encoding
//! ```
//!
//! An append writes one batch of records with one `write` and one `fdatasync`. Opening
//! the directory reads every segment in order; a record cut short or failing its
//! checksum at the end of the newest segment is what a crash in the middle of an append
//! leaves, and it is cut off (that append was never acknowledged); anywhere else it is
//! corruption and the directory does not open. Truncating cuts the file at the first
//! removed entry and deletes the segments after it; purging forgets entries and deletes
//! segments that hold only purged entries. This module knows nothing of openraft's
//! types: entries are `(index, bytes)`.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A segment is closed and a new one started once it passes this size.
const SEGMENT_BYTES: u64 = 32 << 20;
const HEADER: usize = 9;
const KIND_ENTRY: u8 = 0;
const KIND_COMMITTED: u8 = 1;

type Result<T> = std::result::Result<T, SegmentError>;

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("raft log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("raft log {path} is damaged at byte {offset}: {what}")]
    Corrupt { path: PathBuf, offset: u64, what: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SegmentError + '_ {
    move |source| SegmentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One segment file.
struct Segment {
    seq: u64,
    path: PathBuf,
    file: Arc<File>,
    len: u64,
    /// The highest entry index it holds, if any.
    last_index: Option<u64>,
}

/// Where one live entry's record is.
#[derive(Clone, Copy)]
struct Loc {
    seq: u64,
    offset: u64,
    /// The whole record's size, header included.
    size: u32,
}

/// Header, kind and index: what an entry's record holds besides the entry.
const ENTRY_OVERHEAD: u32 = HEADER as u32 + 8;

/// What opening the directory found.
pub struct Opened {
    pub log: Segments,
    /// The newest committed-index payload written, if any.
    pub committed: Option<Vec<u8>>,
    /// The newest entry, if any.
    pub last_entry: Option<Vec<u8>>,
}

/// The open segment directory: the files and where each live entry is.
pub struct Segments {
    dir: PathBuf,
    segments: Vec<Segment>,
    /// Live entries, contiguous from `first`.
    locs: VecDeque<Loc>,
    first: u64,
    /// Entries at or below this index are purged and never read again.
    purged: Option<u64>,
    /// The size past which the next append starts a new segment.
    segment_bytes: u64,
}

/// The flush an append is durable after.
pub struct Flush {
    file: Arc<File>,
    path: PathBuf,
}

impl Flush {
    /// `fdatasync` of the segment the append wrote.
    pub fn run(self) -> Result<()> {
        self.file.sync_data().map_err(io(&self.path))
    }
}

/// Entries read from the files: the frames to verify and decode outside any lock.
pub struct Reads {
    parts: Vec<(Arc<File>, PathBuf, Loc)>,
}

impl Reads {
    /// The payloads, in index order, each checked against its checksum.
    pub fn read(self) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::with_capacity(self.parts.len());
        for (file, path, loc) in self.parts {
            let start = loc.offset;
            let mut frame = vec![0u8; loc.size as usize];
            file.read_exact_at(&mut frame, start).map_err(io(&path))?;
            match parse(&frame) {
                Parsed::Record {
                    kind: KIND_ENTRY,
                    payload,
                    ..
                } if payload.len() >= 8 => out.push(payload[8..].to_vec()),
                _ => {
                    return Err(SegmentError::Corrupt {
                        path,
                        offset: start,
                        what: "the entry no longer reads back whole".into(),
                    })
                }
            }
        }
        Ok(out)
    }
}

enum Parsed<'a> {
    Record {
        kind: u8,
        payload: &'a [u8],
        size: usize,
    },
    /// Fewer bytes than the record claims: the end of a torn append.
    Short,
    Bad(String),
}

fn parse(buf: &[u8]) -> Parsed<'_> {
    if buf.len() < HEADER {
        return Parsed::Short;
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    if len == 0 {
        return Parsed::Bad("a record of length 0".into());
    }
    if buf.len() < 8 + len {
        return Parsed::Short;
    }
    let body = &buf[8..8 + len];
    if crc32fast::hash(body) != crc {
        return Parsed::Bad("checksum mismatch".into());
    }
    Parsed::Record {
        kind: body[0],
        payload: &body[1..],
        size: 8 + len,
    }
}

/// Appends one record of `kind` whose body is `prefix` then `payload`.
fn frame(out: &mut Vec<u8>, kind: u8, prefix: &[u8], payload: &[u8]) {
    let len = u32::try_from(1 + prefix.len() + payload.len()).expect("a log record under 4 GiB");
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[kind]);
    hasher.update(prefix);
    hasher.update(payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out.push(kind);
    out.extend_from_slice(prefix);
    out.extend_from_slice(payload);
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.seg"))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

impl Segments {
    /// Opens (creating when absent) the directory `dir`; entries at or below `purged`
    /// are skipped.
    pub fn open(dir: &Path, purged: Option<u64>) -> Result<Opened> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut seqs = Vec::new();
        for item in std::fs::read_dir(dir).map_err(io(dir))? {
            let item = item.map_err(io(dir))?;
            let name = item.file_name();
            let Some(seq) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| u64::from_str_radix(n, 16).ok())
            else {
                continue;
            };
            seqs.push(seq);
        }
        seqs.sort_unstable();
        let mut log = Segments {
            dir: dir.to_path_buf(),
            segments: Vec::new(),
            locs: VecDeque::new(),
            first: purged.map_or(0, |p| p + 1),
            purged,
            segment_bytes: SEGMENT_BYTES,
        };
        let mut committed = None;
        let mut last_entry = None;
        let newest = seqs.last().copied();
        for seq in seqs {
            let path = segment_path(dir, seq);
            let file = OpenOptions::new()
                .read(true)
                .append(true)
                .open(&path)
                .map_err(io(&path))?;
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            let mut at = 0usize;
            let mut last_index = None;
            while at < bytes.len() {
                match parse(&bytes[at..]) {
                    Parsed::Record { kind, payload, size } => {
                        match kind {
                            KIND_ENTRY => {
                                let index = entry_index(payload).ok_or_else(|| SegmentError::Corrupt {
                                    path: path.clone(),
                                    offset: at as u64,
                                    what: "an entry without its index".into(),
                                })?;
                                last_index = Some(index);
                                if purged.is_none_or(|p| index > p) {
                                    let expected = log.first + log.locs.len() as u64;
                                    if !log.locs.is_empty() && index != expected {
                                        return Err(SegmentError::Corrupt {
                                            path,
                                            offset: at as u64,
                                            what: format!("entry {index} where {expected} was due"),
                                        });
                                    }
                                    if log.locs.is_empty() {
                                        log.first = index;
                                    }
                                    log.locs.push_back(Loc {
                                        seq,
                                        offset: at as u64,
                                        size: size as u32,
                                    });
                                    last_entry = Some(payload[8..].to_vec());
                                }
                            }
                            KIND_COMMITTED => committed = Some(payload.to_vec()),
                            other => {
                                return Err(SegmentError::Corrupt {
                                    path,
                                    offset: at as u64,
                                    what: format!("a record of unknown kind {other}"),
                                })
                            }
                        }
                        at += size;
                    }
                    Parsed::Short | Parsed::Bad(_) if Some(seq) == newest => {
                        // The tail of an append that never completed: cut it off.
                        file.set_len(at as u64).map_err(io(&path))?;
                        file.sync_data().map_err(io(&path))?;
                        break;
                    }
                    Parsed::Short => {
                        return Err(SegmentError::Corrupt {
                            path,
                            offset: at as u64,
                            what: "a record cut short in a closed segment".into(),
                        })
                    }
                    Parsed::Bad(what) => {
                        return Err(SegmentError::Corrupt {
                            path,
                            offset: at as u64,
                            what,
                        })
                    }
                }
            }
            log.segments.push(Segment {
                seq,
                path,
                file: Arc::new(file),
                len: at as u64,
                last_index,
            });
        }
        if log.segments.is_empty() {
            log.start_segment(0)?;
        }
        Ok(Opened {
            log,
            committed,
            last_entry,
        })
    }

    fn start_segment(&mut self, seq: u64) -> Result<()> {
        let path = segment_path(&self.dir, seq);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        sync_dir(&self.dir)?;
        self.segments.push(Segment {
            seq,
            path,
            file: Arc::new(file),
            len: 0,
            last_index: None,
        });
        Ok(())
    }

    /// The index the next appended entry must have, when any entry is live.
    fn next_index(&self) -> u64 {
        self.first + self.locs.len() as u64
    }

    /// Writes `entries` (each `(index, encoded entry)`, contiguous after the live ones)
    /// and, when given, a committed-index record; they are on disk once the returned
    /// [`Flush`] has run. Readers see them at once.
    pub fn append(&mut self, entries: &[(u64, Vec<u8>)], committed: Option<&[u8]>) -> Result<Flush> {
        if let (Some((index, _)), false) = (entries.first(), self.locs.is_empty()) {
            if *index != self.next_index() {
                return Err(SegmentError::Corrupt {
                    path: self.dir.clone(),
                    offset: 0,
                    what: format!("entry {index} appended where {} was due", self.next_index()),
                });
            }
        }
        if self.segments.last().is_some_and(|s| s.len >= self.segment_bytes) {
            let seq = self.segments.last().map_or(0, |s| s.seq + 1);
            self.start_segment(seq)?;
        }
        let segment = self.segments.last_mut().expect("an open segment");
        let overhead = ENTRY_OVERHEAD as usize;
        let mut buf = Vec::with_capacity(entries.iter().map(|(_, p)| p.len() + overhead).sum::<usize>() + 64);
        let mut locs = Vec::with_capacity(entries.len());
        for (index, payload) in entries {
            let offset = segment.len + buf.len() as u64;
            frame(&mut buf, KIND_ENTRY, &index.to_be_bytes(), payload);
            locs.push(Loc {
                seq: segment.seq,
                offset,
                size: (payload.len() + overhead) as u32,
            });
        }
        if let Some(c) = committed {
            frame(&mut buf, KIND_COMMITTED, &[], c);
        }
        if let Err(e) = (&*segment.file).write_all(&buf) {
            // Leave the file as long as what is known to be whole; the next open cuts any rest.
            let _ = segment.file.set_len(segment.len);
            return Err(io(&segment.path)(e));
        }
        segment.len += buf.len() as u64;
        if let Some((last, _)) = entries.last() {
            segment.last_index = Some(*last);
        }
        let flush = Flush {
            file: segment.file.clone(),
            path: segment.path.clone(),
        };
        if let (true, Some((first, _))) = (self.locs.is_empty(), entries.first()) {
            self.first = *first;
        }
        self.locs.extend(locs);
        Ok(flush)
    }

    /// The live entries in `from..to` (clamped to what is held), to read outside a lock.
    pub fn reads(&self, from: u64, to: u64) -> Reads {
        let from = from.max(self.first);
        let to = to.min(self.next_index());
        let mut parts = Vec::new();
        for index in from..to {
            let loc = self.locs[(index - self.first) as usize];
            let segment = self.segment(loc.seq);
            parts.push((segment.file.clone(), segment.path.clone(), loc));
        }
        Reads { parts }
    }

    fn segment(&self, seq: u64) -> &Segment {
        let i = self
            .segments
            .binary_search_by_key(&seq, |s| s.seq)
            .expect("every live entry's segment is open");
        &self.segments[i]
    }

    /// Removes the entries at and after `index`.
    pub fn truncate(&mut self, index: u64) -> Result<()> {
        if index >= self.next_index() {
            return Ok(());
        }
        let keep = index.saturating_sub(self.first) as usize;
        let cut = self.locs.get(keep).copied();
        self.locs.truncate(keep);
        let Some(cut) = cut else { return Ok(()) };
        // Newest first, so that a crash part-way leaves a contiguous prefix.
        while self.segments.last().is_some_and(|s| s.seq > cut.seq) {
            let s = self.segments.pop().expect("a later segment");
            std::fs::remove_file(&s.path).map_err(io(&s.path))?;
        }
        sync_dir(&self.dir)?;
        let segment = self.segments.last_mut().expect("the cut segment");
        let at = cut.offset;
        segment.file.set_len(at).map_err(io(&segment.path))?;
        segment.file.sync_data().map_err(io(&segment.path))?;
        segment.len = at;
        // Whatever it still holds comes before `index`.
        segment.last_index = index.checked_sub(1).filter(|_| at > 0);
        Ok(())
    }

    /// Forgets the entries at and below `index` and deletes the segments holding only
    /// those (the caller has recorded `index` as purged first).
    pub fn purge(&mut self, index: u64) -> Result<()> {
        self.purged = Some(self.purged.map_or(index, |p| p.max(index)));
        while !self.locs.is_empty() && self.first <= index {
            self.locs.pop_front();
            self.first += 1;
        }
        if self.locs.is_empty() {
            self.first = self.first.max(index + 1);
        }
        let mut removed = false;
        while self.segments.len() > 1 && self.segments[0].last_index.is_none_or(|l| l <= index) {
            let s = self.segments.remove(0);
            std::fs::remove_file(&s.path).map_err(io(&s.path))?;
            removed = true;
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Total payload bytes of the live entries after `index` (all of them when `None`).
    pub fn bytes_after(&self, index: Option<u64>) -> u64 {
        let from = index.map_or(self.first, |i| (i + 1).max(self.first));
        let skip = (from - self.first) as usize;
        self.locs
            .iter()
            .skip(skip)
            .map(|l| u64::from(l.size - ENTRY_OVERHEAD))
            .sum()
    }

    /// Starts new segments past `bytes` instead of the default size.
    #[cfg(test)]
    fn set_segment_bytes(&mut self, bytes: u64) {
        self.segment_bytes = bytes;
    }

    /// How many segment files there are.
    #[cfg(test)]
    fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Deletes every segment: the log is empty and starts again.
    pub fn clear(&mut self) -> Result<()> {
        for s in self.segments.drain(..) {
            std::fs::remove_file(&s.path).map_err(io(&s.path))?;
        }
        self.locs.clear();
        self.start_segment(0)
    }
}

/// The index an entry's record body starts with.
fn entry_index(payload: &[u8]) -> Option<u64> {
    payload
        .get(..8)
        .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
}

#[cfg(test)]
mod tests;
