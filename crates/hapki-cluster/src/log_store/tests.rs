use openraft::{CommittedLeaderId, EntryPayload};

use super::*;

fn entry(index: u64) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(3, 1), index),
        payload: EntryPayload::Blank,
    }
}

fn indexes(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.log_id.index).collect()
}

#[tokio::test]
async fn a_log_kept_in_the_database_by_an_older_build_moves_into_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("hapki.redb")).unwrap();
    {
        let txn = store.db().begin_write().unwrap();
        {
            let mut log = txn.open_table(RAFT_LOG).unwrap();
            for i in 1..=5 {
                log.insert(i, encode(&entry(i)).as_slice()).unwrap();
            }
            let mut meta = txn.open_table(RAFT_META).unwrap();
            meta.insert("committed", encode(&Some(entry(4).log_id)).as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    // A segment a crashed move left behind is replaced, not added to.
    let segments = dir.path().join("raft-log");
    {
        let mut stale = Segments::open(&segments, None).unwrap().log;
        stale.append(&[(1, b"stale".to_vec())], None).unwrap().run().unwrap();
    }

    let mut log = LogStore::open(store.clone(), &segments).unwrap();
    assert_eq!(
        indexes(&log.try_get_log_entries(..).await.unwrap()),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(log.get_log_state().await.unwrap().last_log_id, Some(entry(5).log_id));
    assert_eq!(log.read_committed().await.unwrap(), Some(entry(4).log_id));
    let txn = store.db().begin_read().unwrap();
    assert!(
        txn.open_table(RAFT_LOG).unwrap().is_empty().unwrap(),
        "the table is emptied"
    );
    drop(txn);
    drop(log);

    let mut again = LogStore::open(store, &segments).unwrap();
    assert_eq!(indexes(&again.try_get_log_entries(2..=3).await.unwrap()), vec![2, 3]);
}

#[tokio::test]
async fn the_committed_index_saved_with_an_append_is_read_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("hapki.redb")).unwrap();
    let segments = dir.path().join("raft-log");
    {
        let mut log = LogStore::open(store.clone(), &segments).unwrap();
        {
            let batch: Vec<_> = (1..=3).map(|i| (i, encode(&entry(i)))).collect();
            log.inner().log.append(&batch, None).unwrap().run().unwrap();
        }
        log.save_committed(Some(entry(2).log_id)).await.unwrap();
        let mut inner = log.inner();
        let committed = encode(&inner.committed);
        inner
            .log
            .append(&[(4, encode(&entry(4)))], Some(&committed))
            .unwrap()
            .run()
            .unwrap();
    }
    let mut log = LogStore::open(store, &segments).unwrap();
    assert_eq!(log.read_committed().await.unwrap(), Some(entry(2).log_id));
    assert_eq!(log.commit_index(), Some(2));
    assert_eq!(log.get_log_state().await.unwrap().last_log_id, Some(entry(4).log_id));
}
