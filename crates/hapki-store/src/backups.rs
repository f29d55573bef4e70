//! What the cluster knows of its backups: one record per backup taken (by an operator
//! or on the leader's schedule), so that any node lists them and a new leader knows when
//! the last scheduled one was taken. The backup files themselves are never in the state.

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::codec::encode;
use crate::command::{CommandResult, RejectCode};
use crate::read::StateReader;
use crate::tables::*;
use crate::StoreError;

/// One backup taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// The id in the backup file's header.
    pub id: String,
    /// The last applied index the backup holds, and the state digest there.
    pub index: u64,
    pub digest: String,
    pub taken_at: u64,
    /// Size of the file and SHA-256 of its bytes (hex).
    pub size: u64,
    pub sha256: String,
    pub rows: u64,
    pub certificates: u64,
    /// The token that asked for it, or `None` for a scheduled backup.
    pub taken_by: Option<String>,
    pub taken_by_name: String,
    /// The node that wrote it.
    pub node: u64,
    /// Where a scheduled backup was written, on that node.
    pub file: Option<String>,
    /// SHA-256 (hex) of the public key the backup key was encrypted to, if any.
    pub recipient: Option<String>,
}

/// Applies [`crate::Command::RecordBackup`]: refused if the id is recorded.
pub(crate) fn record(txn: &WriteTransaction, backup: &BackupRecord) -> Result<CommandResult, StoreError> {
    let mut table = txn.open_table(SM_BACKUPS)?;
    if table.get(backup.id.as_bytes())?.is_some() {
        return Ok(CommandResult::reject(
            RejectCode::Conflict,
            format!("backup {} is recorded", backup.id),
        ));
    }
    table.insert(backup.id.as_bytes(), encode(backup).as_slice())?;
    Ok(CommandResult::Applied)
}

impl StateReader {
    /// Every backup recorded, oldest first.
    pub fn backups(&self) -> Result<Vec<BackupRecord>, StoreError> {
        let mut all: Vec<BackupRecord> = crate::read::all_values(self.txn(), SM_BACKUPS)?;
        all.sort_by(|a, b| (a.taken_at, a.index, &a.id).cmp(&(b.taken_at, b.index, &b.id)));
        Ok(all)
    }

    /// How many of each thing the state holds.
    pub fn counts(&self) -> Result<hapki_domain::backup::Counts, StoreError> {
        let len = |t: SmTable| -> Result<u64, StoreError> { Ok(self.txn().open_table(t)?.len()?) };
        Ok(hapki_domain::backup::Counts {
            certificates: len(SM_CERTS)?,
            revoked: len(SM_REVOKED)?,
            issuers: len(SM_ISSUERS)?,
            profiles: len(SM_PROFILES)?,
            tokens: len(SM_TOKENS)?,
            archived_keys: len(SM_ARCHIVE)?,
            recovery_requests: len(SM_RECOVERIES)?,
            nodes: len(SM_NODES)?,
            backups: len(SM_BACKUPS)?,
        })
    }

    /// Rows in every state-machine table: what a snapshot of this view carries.
    pub fn rows(&self) -> Result<u64, StoreError> {
        let mut n = 0;
        for t in SM_TABLES {
            n += self.txn().open_table(t)?.len()?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{history, run, store};
    use crate::Command;

    fn backup(id: &str, at: u64) -> BackupRecord {
        BackupRecord {
            id: id.into(),
            index: 7,
            digest: "d".into(),
            taken_at: at,
            size: 100,
            sha256: "s".into(),
            rows: 20,
            certificates: 2,
            taken_by: Some("t1".into()),
            taken_by_name: "admin".into(),
            node: 1,
            file: None,
            recipient: None,
        }
    }

    #[test]
    fn backups_are_recorded_once_and_listed_oldest_first_without_changing_an_empty_digest() {
        let (_d, s) = store();
        run(&s, &history());
        let before = s.reader().unwrap().digest().unwrap();
        assert_eq!(s.reader().unwrap().counts().unwrap().backups, 0);
        let r = run(
            &s,
            &[
                Command::RecordBackup {
                    backup: backup("b2", 20),
                },
                Command::RecordBackup {
                    backup: backup("b1", 10),
                },
                Command::RecordBackup {
                    backup: backup("b1", 30),
                },
            ],
        );
        assert_eq!(r[0], CommandResult::Applied);
        assert!(
            matches!(&r[2], CommandResult::Rejected { code: RejectCode::Conflict, message } if message.contains("b1"))
        );
        let listed: Vec<String> = s
            .reader()
            .unwrap()
            .backups()
            .unwrap()
            .into_iter()
            .map(|b| b.id)
            .collect();
        assert_eq!(listed, ["b1", "b2"]);
        let reader = s.reader().unwrap();
        assert_eq!(reader.counts().unwrap().backups, 2);
        assert_ne!(reader.digest().unwrap(), before);
    }
}
