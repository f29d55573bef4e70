//! Delta CRLs (state format 3; RFC 5280 §5.2.4): between two complete CRLs of an issuer,
//! delta CRLs list what was revoked since the complete one they name as their base.
//! Like complete CRLs they are recorded as heads without bytes, which each node builds
//! and signs from its replica, and they take their numbers from the same sequence.
//!
//! What a delta lists is kept exact the way a complete head's list is
//! ([`crate::crl_head`]): revocations after the latest complete head are pending; those
//! also applied after the latest delta head are recorded in `sm_crl_since_delta`, which
//! every delta head clears. The latest delta therefore lists the pending set minus that
//! set. Whether a complete CRL points to deltas (Freshest CRL) is fixed when its head is
//! applied: with deltas on ([`CrlPolicy`]) the issuer's delta state names that head as its
//! base, and only a delta of that base may follow.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};
use crate::command::{CommandResult, RejectCode};
use crate::crl_head::{issuer_prefix, CrlHead, LatestCrl};
use crate::read::StateReader;
use crate::records::Revocation;
use crate::tables::*;
use crate::StoreError;
use hapki_domain::serial::Serial;

/// How an issuer's CRLs are published beyond the complete CRL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrlPolicy {
    /// How often the leader publishes a delta CRL when revocations wait for one, in
    /// seconds; 0: no delta CRLs.
    pub delta_secs: u64,
}

/// The latest delta CRL of an issuer, as the log recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaHead {
    pub issuer_id: String,
    pub number: u64,
    /// The number of the complete CRL it brings up to date.
    pub base: u64,
    pub this_update: u64,
    pub next_update: u64,
}

/// An issuer's deltas: the complete CRL they are of, and the latest one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaState {
    pub base: u64,
    pub latest: Option<DeltaHead>,
}

/// A delta head and the revocations it lists, in serial order.
pub type DeltaEntries = (DeltaHead, Vec<(Serial, Revocation)>);

const POLICY: &[u8] = b"crl_policy";

/// Applies [`crate::Command::SetCrlPolicy`].
pub(crate) fn set_policy(txn: &WriteTransaction, policy: &CrlPolicy) -> Result<CommandResult, StoreError> {
    txn.open_table(SM_META)?.insert(POLICY, encode(policy).as_slice())?;
    Ok(CommandResult::Applied)
}

fn policy_in(txn: &WriteTransaction) -> Result<CrlPolicy, StoreError> {
    let meta = txn.open_table(SM_META)?;
    let policy = meta.get(POLICY)?.map(|v| decode(v.value())).transpose()?;
    Ok(policy.unwrap_or_default())
}

fn state_in(txn: &WriteTransaction, issuer_id: &str) -> Result<Option<DeltaState>, StoreError> {
    let table = txn.open_table(SM_CRL_DELTAS)?;
    let state = table
        .get(issuer_id.as_bytes())?
        .map(|v| decode(v.value()))
        .transpose()?;
    Ok(state)
}

/// The number of the issuer's latest delta, if it has one.
pub(crate) fn latest_delta_number(txn: &WriteTransaction, issuer_id: &str) -> Result<Option<u64>, StoreError> {
    Ok(state_in(txn, issuer_id)?.and_then(|s| s.latest).map(|d| d.number))
}

/// What a complete head (or signed CRL) just published does to the issuer's deltas: the
/// revocations since the last delta are on it, and with deltas on its deltas start.
pub(crate) fn on_complete(txn: &WriteTransaction, issuer_id: &str, number: Option<u64>) -> Result<(), StoreError> {
    clear_since_delta(txn, issuer_id)?;
    let mut table = txn.open_table(SM_CRL_DELTAS)?;
    match number {
        Some(base) if policy_in(txn)?.delta_secs > 0 => {
            let state = DeltaState { base, latest: None };
            table.insert(issuer_id.as_bytes(), encode(&state).as_slice())?;
        }
        _ => {
            table.remove(issuer_id.as_bytes())?;
        }
    }
    Ok(())
}

/// Records a revocation just applied as not yet on the issuer's latest delta (format 3).
pub(crate) fn note_revoked(txn: &WriteTransaction, revoked_key: &[u8]) -> Result<(), StoreError> {
    if crate::format::current(txn)? >= 3 {
        txn.open_table(SM_CRL_SINCE_DELTA)?.insert(revoked_key, [].as_slice())?;
    }
    Ok(())
}

/// Drops a revocation the tidy removes from the rows that say what deltas list.
pub(crate) fn forget_revoked(txn: &WriteTransaction, revoked_key: &[u8]) -> Result<(), StoreError> {
    txn.open_table(SM_CRL_SINCE_DELTA)?.remove(revoked_key)?;
    Ok(())
}

fn clear_since_delta(txn: &WriteTransaction, issuer_id: &str) -> Result<(), StoreError> {
    let (start, end) = issuer_prefix(issuer_id);
    txn.open_table(SM_CRL_SINCE_DELTA)?
        .retain_in(start.as_slice()..end.as_slice(), |_, _| false)?;
    Ok(())
}

/// Applies [`crate::Command::PublishDeltaHead`]: deltas are on for the issuer's latest
/// complete head, which is `head.base`, and the number rises above every CRL of the issuer.
pub(crate) fn publish(txn: &WriteTransaction, head: &DeltaHead) -> Result<CommandResult, StoreError> {
    let reject = |code, message: String| Ok(CommandResult::reject(code, message));
    if txn.open_table(SM_ISSUERS)?.get(head.issuer_id.as_bytes())?.is_none() {
        return reject(RejectCode::NotFound, format!("no issuer with id {}", head.issuer_id));
    }
    let Some(state) = state_in(txn, &head.issuer_id)? else {
        return reject(
            RejectCode::Invalid,
            format!(
                "the latest complete CRL of issuer {} has no delta CRLs (they are off, or were when it was published)",
                head.issuer_id
            ),
        );
    };
    if state.base != head.base {
        return reject(
            RejectCode::Conflict,
            format!(
                "the delta names complete CRL {} as its base, and the latest is {}",
                head.base, state.base
            ),
        );
    }
    if let Some(refusal) = crate::crl_head::refuse_unless_above(txn, &head.issuer_id, head.number)? {
        return Ok(refusal);
    }
    clear_since_delta(txn, &head.issuer_id)?;
    let state = DeltaState {
        base: state.base,
        latest: Some(head.clone()),
    };
    txn.open_table(SM_CRL_DELTAS)?
        .insert(head.issuer_id.as_bytes(), encode(&state).as_slice())?;
    Ok(CommandResult::Applied)
}

impl StateReader {
    /// The CRL policy in force (no deltas until one is set).
    pub fn crl_policy(&self) -> Result<CrlPolicy, StoreError> {
        let meta = self.txn().open_table(SM_META)?;
        let policy = meta.get(POLICY)?.map(|v| decode(v.value())).transpose()?;
        Ok(policy.unwrap_or_default())
    }

    /// The issuer's delta state: which complete CRL has deltas, and the latest delta.
    pub fn delta_state(&self, issuer_id: &str) -> Result<Option<DeltaState>, StoreError> {
        let table = self.txn().open_table(SM_CRL_DELTAS)?;
        let state = table
            .get(issuer_id.as_bytes())?
            .map(|v| decode(v.value()))
            .transpose()?;
        Ok(state)
    }

    /// The highest CRL number of the issuer, complete or delta: the next takes one above.
    pub fn latest_crl_number(&self, issuer_id: &str) -> Result<Option<u64>, StoreError> {
        let complete = self.latest_crl(issuer_id)?.map(|c| c.number());
        let delta = self.delta_state(issuer_id)?.and_then(|s| s.latest).map(|d| d.number);
        Ok(complete.max(delta))
    }

    /// Whether complete CRL `number` of the issuer names its deltas (Freshest CRL).
    pub fn has_deltas(&self, issuer_id: &str, number: u64) -> Result<bool, StoreError> {
        Ok(self.delta_state(issuer_id)?.is_some_and(|s| s.base == number))
    }

    /// The latest delta of the issuer and the revocations it lists, read from one state;
    /// `None` while the latest complete CRL has no delta yet.
    pub fn delta_entries(&self, issuer_id: &str) -> Result<Option<DeltaEntries>, StoreError> {
        let Some(head) = self.delta_state(issuer_id)?.and_then(|s| s.latest) else {
            return Ok(None);
        };
        if !matches!(self.latest_crl(issuer_id)?, Some(LatestCrl::Head(CrlHead { number, .. })) if number == head.base)
        {
            return Ok(None);
        }
        let (start, end) = issuer_prefix(issuer_id);
        let later = self.issuer_rows(SM_CRL_SINCE_DELTA, issuer_id)?;
        let pending = self.txn().open_table(SM_CRL_PENDING)?;
        let revoked = self.txn().open_table(SM_REVOKED)?;
        let mut entries = Vec::new();
        for row in pending.range(start.as_slice()..end.as_slice())? {
            let (k, _) = row?;
            let serial = &k.value()[start.len()..];
            if later.contains(serial) {
                continue;
            }
            let serial = Serial::from_bytes(serial).ok_or_else(|| StoreError::Corrupt("pending key".into()))?;
            let r = revoked
                .get(k.value())?
                .ok_or_else(|| StoreError::Corrupt(format!("pending revocation {serial} is not recorded")))?;
            entries.push((serial, decode(r.value())?));
        }
        Ok(Some((head, entries)))
    }

    /// How many revocations of the issuer no delta lists yet.
    pub fn revoked_since_delta(&self, issuer_id: &str) -> Result<u64, StoreError> {
        self.count_issuer_rows(SM_CRL_SINCE_DELTA, issuer_id)
    }
}

#[cfg(test)]
mod tests;
