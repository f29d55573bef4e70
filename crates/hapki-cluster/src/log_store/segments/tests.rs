use super::*;

fn entry(index: u64) -> (u64, Vec<u8>) {
    (
        index,
        format!("entry {index}").into_bytes().repeat(1 + (index % 3) as usize),
    )
}

fn entries(range: std::ops::Range<u64>) -> Vec<(u64, Vec<u8>)> {
    range.map(entry).collect()
}

fn append(log: &mut Segments, range: std::ops::Range<u64>) {
    log.append(&entries(range), None).unwrap().run().unwrap();
}

fn read_all(log: &Segments) -> Vec<Vec<u8>> {
    log.reads(0, u64::MAX).read().unwrap()
}

fn payloads(range: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    entries(range).into_iter().map(|(_, p)| p).collect()
}

/// A log of entries 1 to 10, one append each, in segments of about 100 bytes.
fn ten_entries_in_small_segments() -> (tempfile::TempDir, Segments) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Segments::open(dir.path(), None).unwrap().log;
    log.set_segment_bytes(100);
    for i in 1..11 {
        append(&mut log, i..i + 1);
    }
    (dir, log)
}

/// The segment files in `dir`, oldest first.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

#[test]
fn appended_entries_and_the_committed_record_read_back_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Segments::open(dir.path(), None).unwrap().log;
    append(&mut log, 1..4);
    log.append(&entries(4..6), Some(b"commit-5")).unwrap().run().unwrap();
    assert_eq!(read_all(&log), payloads(1..6));
    assert_eq!(log.reads(2, 4).read().unwrap(), payloads(2..4));
    drop(log);

    let opened = Segments::open(dir.path(), None).unwrap();
    assert_eq!(opened.committed.as_deref(), Some(b"commit-5".as_slice()));
    assert_eq!(opened.last_entry, Some(entry(5).1));
    assert_eq!(read_all(&opened.log), payloads(1..6));
    assert_eq!(
        opened.log.bytes_after(Some(3)),
        (entry(4).1.len() + entry(5).1.len()) as u64
    );
}

#[test]
fn a_torn_append_at_the_end_is_cut_off_and_the_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Segments::open(dir.path(), None).unwrap().log;
    append(&mut log, 1..4);
    drop(log);
    // Half a record: what a crash in the middle of a write leaves.
    let mut half = Vec::new();
    frame(&mut half, KIND_ENTRY, &4u64.to_be_bytes(), b"never acknowledged");
    let path = segment_files(dir.path()).pop().unwrap();
    let whole = std::fs::metadata(&path).unwrap().len();
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&half[..half.len() / 2]).unwrap();
    drop(file);

    let mut log = Segments::open(dir.path(), None).unwrap().log;
    assert_eq!(std::fs::metadata(&path).unwrap().len(), whole, "the torn tail is cut");
    assert_eq!(read_all(&log), payloads(1..4));
    append(&mut log, 4..6);
    drop(log);
    assert_eq!(read_all(&Segments::open(dir.path(), None).unwrap().log), payloads(1..6));
}

#[test]
fn a_damaged_record_in_a_closed_segment_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Segments::open(dir.path(), None).unwrap().log;
    log.set_segment_bytes(40);
    for i in 1..8 {
        append(&mut log, i..i + 1);
    }
    assert!(log.segment_count() > 2);
    drop(log);
    let files = segment_files(dir.path());
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&files[0], bytes).unwrap();

    let err = Segments::open(dir.path(), None)
        .err()
        .expect("a damaged closed segment");
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
}

#[test]
fn truncating_cuts_across_segments_and_appending_goes_on_from_the_cut() {
    let (dir, mut log) = ten_entries_in_small_segments();
    let before = log.segment_count();
    log.truncate(4).unwrap();
    assert!(log.segment_count() < before);
    assert_eq!(read_all(&log), payloads(1..4));
    log.truncate(20).unwrap();
    assert_eq!(read_all(&log), payloads(1..4));
    append(&mut log, 4..6);
    drop(log);
    assert_eq!(read_all(&Segments::open(dir.path(), None).unwrap().log), payloads(1..6));
}

#[test]
fn an_append_out_of_order_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Segments::open(dir.path(), None).unwrap().log;
    append(&mut log, 1..3);
    assert!(log.append(&entries(5..6), None).is_err());
    assert_eq!(read_all(&log), payloads(1..3));
}

#[test]
fn purging_forgets_entries_and_deletes_segments_that_hold_only_those() {
    let (dir, mut log) = ten_entries_in_small_segments();
    let before = log.segment_count();
    log.purge(6).unwrap();
    assert!(log.segment_count() < before);
    assert_eq!(read_all(&log), payloads(7..11));
    assert_eq!(log.bytes_after(None), log.bytes_after(Some(6)));
    drop(log);
    let opened = Segments::open(dir.path(), Some(6)).unwrap();
    assert_eq!(read_all(&opened.log), payloads(7..11));

    // Purging past every entry leaves an empty log that the next entry starts again.
    let mut log = opened.log;
    log.purge(12).unwrap();
    assert!(read_all(&log).is_empty());
    append(&mut log, 13..15);
    drop(log);
    assert_eq!(
        read_all(&Segments::open(dir.path(), Some(12)).unwrap().log),
        payloads(13..15)
    );
}

#[test]
fn clearing_leaves_an_empty_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Segments::open(dir.path(), None).unwrap().log;
    append(&mut log, 1..4);
    log.clear().unwrap();
    assert!(read_all(&log).is_empty());
    append(&mut log, 1..2);
    drop(log);
    assert_eq!(read_all(&Segments::open(dir.path(), None).unwrap().log), payloads(1..2));
}
