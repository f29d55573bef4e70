//! CRL heads (state format 2): what a CRL is, recorded in the log without its bytes. A
//! head carries an issuer's CRL number and its times; the entries it lists are what its
//! apply saw, every revocation of the issuer applied before it. Each node builds and signs
//! the CRL of the latest head from its own replica, so a revocation costs the log a few
//! bytes instead of a copy of the whole CRL.
//!
//! Which revocations a head lists is kept exact while later ones arrive: a revocation
//! applied after the latest head is also recorded as pending (`sm_crl_pending`), and the
//! next head clears the issuer's pending set. The latest head therefore lists the issuer's
//! revoked set minus its pending set, read in one transaction: the same entries on every
//! node, whenever it builds.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};
use crate::command::{CommandResult, RejectCode};
use crate::read::StateReader;
use crate::records::{CrlRecord, Revocation};
use crate::tables::*;
use crate::StoreError;
use hapki_domain::serial::Serial;

/// The latest CRL of an issuer, as the log recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrlHead {
    pub issuer_id: String,
    pub number: u64,
    pub this_update: u64,
    pub next_update: u64,
}

/// An issuer's latest CRL: signed bytes in the log (state format 1), or a head whose
/// bytes each node builds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LatestCrl {
    Signed(CrlRecord),
    Head(CrlHead),
}

impl LatestCrl {
    pub fn number(&self) -> u64 {
        match self {
            LatestCrl::Signed(c) => c.number,
            LatestCrl::Head(h) => h.number,
        }
    }

    pub fn this_update(&self) -> u64 {
        match self {
            LatestCrl::Signed(c) => c.this_update,
            LatestCrl::Head(h) => h.this_update,
        }
    }

    pub fn next_update(&self) -> u64 {
        match self {
            LatestCrl::Signed(c) => c.next_update,
            LatestCrl::Head(h) => h.next_update,
        }
    }
}

/// A head and the revocations it lists, in serial order.
pub type HeadEntries = (CrlHead, Vec<(Serial, Revocation)>);

/// `issuer ‖ '/'`, the prefix of an issuer's rows in the revocation tables.
pub(crate) fn issuer_prefix(issuer_id: &str) -> (Vec<u8>, Vec<u8>) {
    let mut start = issuer_id.as_bytes().to_vec();
    start.push(b'/');
    let mut end = issuer_id.as_bytes().to_vec();
    end.push(b'/' + 1);
    (start, end)
}

/// The highest number of the issuer's CRLs, complete or delta.
fn latest_number(txn: &WriteTransaction, issuer_id: &str) -> Result<Option<u64>, StoreError> {
    let complete = latest_complete_number(txn, issuer_id)?;
    Ok(complete.max(crate::crl_delta::latest_delta_number(txn, issuer_id)?))
}

fn latest_complete_number(txn: &WriteTransaction, issuer_id: &str) -> Result<Option<u64>, StoreError> {
    let head = txn
        .open_table(SM_CRL_HEADS)?
        .get(issuer_id.as_bytes())?
        .map(|v| v.value().to_vec());
    if let Some(head) = head {
        return Ok(Some(decode::<CrlHead>(&head)?.number));
    }
    let signed = txn
        .open_table(SM_CRLS)?
        .get(issuer_id.as_bytes())?
        .map(|v| v.value().to_vec());
    signed.map(|c| decode::<CrlRecord>(&c).map(|c| c.number)).transpose()
}

pub(crate) fn refuse_unless_above(
    txn: &WriteTransaction,
    issuer_id: &str,
    number: u64,
) -> Result<Option<CommandResult>, StoreError> {
    Ok(latest_number(txn, issuer_id)?
        .filter(|current| number <= *current)
        .map(|current| {
            CommandResult::reject(
                RejectCode::Conflict,
                format!("CRL number {number} is not above the current {current}"),
            )
        }))
}

/// Why `head` cannot be published now, if it cannot: its issuer is unknown or its number
/// does not rise.
pub(crate) fn check_head(txn: &WriteTransaction, head: &CrlHead) -> Result<Option<CommandResult>, StoreError> {
    if txn.open_table(SM_ISSUERS)?.get(head.issuer_id.as_bytes())?.is_none() {
        return Ok(Some(CommandResult::reject(
            RejectCode::NotFound,
            format!("no issuer with id {}", head.issuer_id),
        )));
    }
    refuse_unless_above(txn, &head.issuer_id, head.number)
}

/// Applies [`crate::Command::PublishCrlHead`]: the number must rise; the issuer's pending
/// revocations are on this CRL from now on, and the signed CRL it replaces is dropped.
pub(crate) fn publish_head(txn: &WriteTransaction, head: &CrlHead) -> Result<CommandResult, StoreError> {
    if let Some(refusal) = check_head(txn, head)? {
        return Ok(refusal);
    }
    clear_pending(txn, &head.issuer_id)?;
    crate::crl_delta::on_complete(txn, &head.issuer_id, Some(head.number))?;
    txn.open_table(SM_CRLS)?.remove(head.issuer_id.as_bytes())?;
    txn.open_table(SM_CRL_HEADS)?
        .insert(head.issuer_id.as_bytes(), encode(head).as_slice())?;
    Ok(CommandResult::Applied)
}

/// Applies [`crate::Command::PublishCrl`]: signed bytes replace a head, if there was one.
pub(crate) fn publish_signed(txn: &WriteTransaction, crl: &CrlRecord) -> Result<CommandResult, StoreError> {
    if let Some(refusal) = refuse_unless_above(txn, &crl.issuer_id, crl.number)? {
        return Ok(refusal);
    }
    if txn
        .open_table(SM_CRL_HEADS)?
        .remove(crl.issuer_id.as_bytes())?
        .is_some()
    {
        clear_pending(txn, &crl.issuer_id)?;
    }
    crate::crl_delta::on_complete(txn, &crl.issuer_id, None)?;
    txn.open_table(SM_CRLS)?
        .insert(crl.issuer_id.as_bytes(), encode(crl).as_slice())?;
    Ok(CommandResult::Applied)
}

fn clear_pending(txn: &WriteTransaction, issuer_id: &str) -> Result<(), StoreError> {
    let (start, end) = issuer_prefix(issuer_id);
    txn.open_table(SM_CRL_PENDING)?
        .retain_in(start.as_slice()..end.as_slice(), |_, _| false)?;
    Ok(())
}

/// Records a revocation just applied as not yet on the issuer's latest head, once heads
/// are in use (state format 2; before, the revocation tables are as format 1 wrote them).
pub(crate) fn note_revoked(txn: &WriteTransaction, revoked_key: &[u8]) -> Result<(), StoreError> {
    if crate::format::current(txn)? >= 2 {
        txn.open_table(SM_CRL_PENDING)?.insert(revoked_key, [].as_slice())?;
    }
    crate::crl_delta::note_revoked(txn, revoked_key)
}

impl StateReader {
    /// The keys of `table`'s rows of the issuer, less the issuer prefix (the serials of a
    /// table keyed issuer ‖ `/` ‖ serial).
    pub(crate) fn issuer_rows(
        &self,
        table: SmTable,
        issuer_id: &str,
    ) -> Result<std::collections::HashSet<Vec<u8>>, StoreError> {
        let (start, end) = issuer_prefix(issuer_id);
        let t = self.txn().open_table(table)?;
        let mut rows = std::collections::HashSet::new();
        for row in t.range(start.as_slice()..end.as_slice())? {
            rows.insert(row?.0.value()[start.len()..].to_vec());
        }
        Ok(rows)
    }

    /// How many rows of `table` the issuer has (a table keyed issuer ‖ `/` ‖ ...).
    pub(crate) fn count_issuer_rows(&self, table: SmTable, issuer_id: &str) -> Result<u64, StoreError> {
        let (start, end) = issuer_prefix(issuer_id);
        let t = self.txn().open_table(table)?;
        let mut n = 0;
        for row in t.range(start.as_slice()..end.as_slice())? {
            row?;
            n += 1;
        }
        Ok(n)
    }

    /// The latest CRL of an issuer, signed or a head.
    pub fn latest_crl(&self, issuer_id: &str) -> Result<Option<LatestCrl>, StoreError> {
        let head = self.txn().open_table(SM_CRL_HEADS)?;
        if let Some(h) = head.get(issuer_id.as_bytes())? {
            return Ok(Some(LatestCrl::Head(decode(h.value())?)));
        }
        Ok(self.crl(issuer_id)?.map(LatestCrl::Signed))
    }

    /// The latest head of an issuer and the revocations it lists, in serial order, read
    /// from one state; `None` when the issuer's latest CRL is not a head.
    pub fn head_entries(&self, issuer_id: &str) -> Result<Option<HeadEntries>, StoreError> {
        let Some(LatestCrl::Head(head)) = self.latest_crl(issuer_id)? else {
            return Ok(None);
        };
        let later = self.issuer_rows(SM_CRL_PENDING, issuer_id)?;
        let mut entries = self.revoked_of(issuer_id)?;
        entries.retain(|(serial, _)| !later.contains(serial.0.as_slice()));
        Ok(Some((head, entries)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{cert, issuer, revoke, run, store};
    use crate::{Command, Store};
    use redb::ReadableTableMetadata;

    use crate::tests::complete_head as head;

    fn listed(store: &Store) -> Vec<u64> {
        let (_, entries) = store.reader().unwrap().head_entries("aa").unwrap().expect("a head");
        entries
            .iter()
            .map(|(s, _)| u64::from_be_bytes(s.0[12..].try_into().unwrap()))
            .collect()
    }

    fn issued(store: &Store, format: u32) {
        let mut cmds = vec![Command::AddIssuer {
            issuer: issuer("aa"),
            make_default: true,
        }];
        if format >= 2 {
            cmds.push(Command::SetStateFormat { to: format });
        }
        cmds.extend((1..=5).map(|s| Command::IssueCert {
            cert: cert(s, "aa"),
            idempotency_key: None,
        }));
        assert!(run(store, &cmds).iter().all(|r| *r == CommandResult::Applied));
    }

    #[test]
    fn a_head_lists_what_was_revoked_before_it_and_nothing_after() {
        let (_d, s) = store();
        issued(&s, 2);
        run(&s, &[revoke(1), revoke(2), head(1), revoke(3)]);
        assert_eq!(listed(&s), [1, 2], "revoked after the head: not on it");
        run(&s, &[revoke(4)]);
        assert_eq!(listed(&s), [1, 2]);
        assert_eq!(run(&s, &[head(2)]), [CommandResult::Applied]);
        assert_eq!(listed(&s), [1, 2, 3, 4]);
        let latest = s.reader().unwrap().latest_crl("aa").unwrap().unwrap();
        assert_eq!(
            (latest.number(), latest.this_update(), latest.next_update()),
            (2, 20, 120)
        );
    }

    #[test]
    fn a_head_number_must_rise_above_the_signed_crl_it_replaces() {
        let (_d, s) = store();
        issued(&s, 2);
        let signed = Command::PublishCrl {
            crl: CrlRecord {
                issuer_id: "aa".into(),
                number: 3,
                this_update: 1,
                next_update: 2,
                entries: 0,
                der: vec![0x30, 0],
            },
        };
        assert_eq!(run(&s, &[signed]), [CommandResult::Applied]);
        for number in [2, 3] {
            let refused = run(&s, &[revoke(1), head(number)]);
            assert!(
                matches!(&refused[1], CommandResult::Rejected { code: RejectCode::Conflict, message } if message.contains("not above the current 3")),
                "{refused:?}"
            );
        }
        assert!(matches!(
            s.reader().unwrap().latest_crl("aa").unwrap(),
            Some(LatestCrl::Signed(_))
        ));
        assert_eq!(run(&s, &[head(4)]), [CommandResult::Applied]);
        // The signed bytes are gone from the state; the head lists what was revoked.
        assert!(s.reader().unwrap().crl("aa").unwrap().is_none());
        assert_eq!(listed(&s), [1]);
    }

    #[test]
    fn state_format_1_keeps_no_pending_rows_and_takes_no_head() {
        let (_d, s) = store();
        issued(&s, 1);
        run(&s, &[revoke(1)]);
        let pending = s
            .reader()
            .unwrap()
            .txn()
            .open_table(SM_CRL_PENDING)
            .unwrap()
            .len()
            .unwrap();
        assert_eq!(pending, 0, "format 1 revokes as the last release did");
        let refused = run(&s, &[head(1)]);
        assert!(
            matches!(&refused[0], CommandResult::Rejected { message, .. } if message.contains("needs state format 2")),
            "{refused:?}"
        );
    }

    #[test]
    fn a_head_of_an_unknown_issuer_is_refused() {
        let (_d, s) = store();
        issued(&s, 2);
        let refused = run(
            &s,
            &[Command::PublishCrlHead {
                head: CrlHead {
                    issuer_id: "zz".into(),
                    number: 1,
                    this_update: 1,
                    next_update: 2,
                },
            }],
        );
        assert!(
            matches!(
                &refused[0],
                CommandResult::Rejected {
                    code: RejectCode::NotFound,
                    ..
                }
            ),
            "{refused:?}"
        );
        assert!(s.reader().unwrap().latest_crl("zz").unwrap().is_none());
    }
}
