//! openraft's own storage conformance suite, run against hapki's segment-file log
//! store and state machine: the same tests openraft's examples pass.

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;

use crate::types::{NodeId, TypeConfig};
use crate::{LogStore, StateMachine};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = hapki_store::Store::open(&dir.path().join("hapki.redb")).expect("open store");
        let sm = StateMachine::new(store.clone(), dir.path().join("snapshots")).expect("snapshot dir");
        let log = LogStore::open(store, &dir.path().join("raft-log")).expect("open the log");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    Suite::test_all(Builder).unwrap();
}
