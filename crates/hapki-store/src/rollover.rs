//! Issuing-CA rollover: a successor issuer (same subject, new key) that takes over from an
//! issuer as the default for new certificates at a chosen time, while the old one keeps
//! its CRL and OCSP answers for what it issued. The switch is recorded by
//! [`Command::CompleteRollover`] once due; until then the readers resolve the default
//! through the planned rollover ([`StateReader::default_issuer_at`]), so the switch takes
//! effect at its time on every node, whichever writes first.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};
use crate::command::{CommandResult, RejectCode};
use crate::read::StateReader;
use crate::records::IssuerRecord;
use crate::tables::*;
use crate::StoreError;

/// A rollover from issuer `from` to its successor `to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollover {
    pub from: String,
    pub to: String,
    /// When `to` becomes the default (Unix seconds), if `from` is the default then.
    pub at: u64,
    pub created_at: u64,
    /// Whether the switch is recorded.
    pub switched: bool,
    /// For a root: the successor's self-signed certificate, which relying parties add to
    /// their trust stores before the old root expires (the successor signs with a
    /// certificate the old root issued to it until then).
    pub self_signed_der: Option<Vec<u8>>,
}

/// Applies [`crate::Command::RollOverIssuer`]: adds the successor and plans the switch.
pub(crate) fn roll_over(
    txn: &WriteTransaction,
    successor: &IssuerRecord,
    rollover: &Rollover,
) -> Result<CommandResult, StoreError> {
    let mut issuers = txn.open_table(SM_ISSUERS)?;
    let Some(from) = issuers.get(rollover.from.as_bytes())?.map(|v| v.value().to_vec()) else {
        return Ok(CommandResult::reject(
            RejectCode::NotFound,
            format!("no issuer with id {}", rollover.from),
        ));
    };
    let from: IssuerRecord = decode(&from)?;
    if !from.is_active() {
        return Ok(CommandResult::reject(
            RejectCode::Invalid,
            format!(
                "issuer {} has no certificate yet; there is nothing to roll over",
                from.id
            ),
        ));
    }
    if rollover.to != successor.id || from.name != successor.name {
        return Ok(CommandResult::reject(
            RejectCode::Invalid,
            "a successor has the subject of the issuer it takes over from",
        ));
    }
    let mut table = txn.open_table(SM_ROLLOVERS)?;
    if let Some(existing) = table.get(rollover.from.as_bytes())? {
        let existing: Rollover = decode(existing.value())?;
        return Ok(CommandResult::reject(
            RejectCode::Conflict,
            format!(
                "issuer {} is rolled over to {} already; rotate {} instead",
                existing.from, existing.to, existing.to
            ),
        ));
    }
    if issuers.get(successor.id.as_bytes())?.is_some() {
        return Ok(CommandResult::reject(
            RejectCode::Conflict,
            format!("issuer {} already exists", successor.id),
        ));
    }
    issuers.insert(successor.id.as_bytes(), encode(successor).as_slice())?;
    table.insert(rollover.from.as_bytes(), encode(rollover).as_slice())?;
    Ok(CommandResult::Applied)
}

/// Applies [`crate::Command::CompleteRollover`]: records the switch, and makes the successor
/// the default if the issuer it takes over from still is.
pub(crate) fn complete(txn: &WriteTransaction, from: &str) -> Result<CommandResult, StoreError> {
    let mut table = txn.open_table(SM_ROLLOVERS)?;
    let Some(bytes) = table.get(from.as_bytes())?.map(|v| v.value().to_vec()) else {
        return Ok(CommandResult::reject(
            RejectCode::NotFound,
            format!("issuer {from} has no rollover"),
        ));
    };
    let mut rollover: Rollover = decode(&bytes)?;
    if rollover.switched {
        return Ok(CommandResult::reject(
            RejectCode::Conflict,
            format!("the rollover of {from} is complete already"),
        ));
    }
    let successor = txn
        .open_table(SM_ISSUERS)?
        .get(rollover.to.as_bytes())?
        .map(|v| v.value().to_vec());
    let active = successor
        .map(|b| decode::<IssuerRecord>(&b))
        .transpose()?
        .is_some_and(|i| i.is_active());
    if !active {
        return Ok(CommandResult::reject(
            RejectCode::Invalid,
            format!(
                "successor {} has no certificate yet; install it with `hapki ca install-cert --id {}`",
                rollover.to, rollover.to
            ),
        ));
    }
    rollover.switched = true;
    table.insert(from.as_bytes(), encode(&rollover).as_slice())?;
    let mut meta = txn.open_table(SM_META)?;
    let default = meta.get(b"default_issuer".as_slice())?.map(|v| v.value().to_vec());
    if default.as_deref() == Some(from.as_bytes()) {
        meta.insert(b"default_issuer".as_slice(), rollover.to.as_bytes())?;
    }
    Ok(CommandResult::Applied)
}

impl StateReader {
    /// Every rollover, planned or done, by the id of the issuer taken over from.
    pub fn rollovers(&self) -> Result<Vec<Rollover>, StoreError> {
        crate::read::all_values(self.txn(), SM_ROLLOVERS)
    }

    /// The rollover from issuer `id`, if any.
    pub fn rollover_from(&self, id: &str) -> Result<Option<Rollover>, StoreError> {
        let t = self.txn().open_table(SM_ROLLOVERS)?;
        t.get(id.as_bytes())?.map(|v| decode(v.value())).transpose()
    }

    /// The issuer that signs a request naming none at `now`: the default, or the successor
    /// of a rollover from it that is due and not yet recorded as done.
    pub fn default_issuer_at(&self, now: u64) -> Result<Option<String>, StoreError> {
        let Some(mut id) = self.default_issuer_id()? else {
            return Ok(None);
        };
        // Each step moves to a newer issuer; a chain longer than the issuers is damage.
        for _ in 0..=self.issuers()?.len() {
            match self.rollover_from(&id)? {
                Some(r) if !r.switched && r.at <= now && self.issuer(&r.to)?.is_some_and(|i| i.is_active()) => {
                    id = r.to
                }
                _ => return Ok(Some(id)),
            }
        }
        Err(StoreError::Corrupt("the rollovers form a cycle".into()))
    }

    /// Rollovers that are due at `now` and not yet recorded as done, with an active successor.
    pub fn due_rollovers(&self, now: u64) -> Result<Vec<Rollover>, StoreError> {
        let mut due = Vec::new();
        for r in self.rollovers()? {
            if !r.switched && r.at <= now && self.issuer(&r.to)?.is_some_and(|i| i.is_active()) {
                due.push(r);
            }
        }
        Ok(due)
    }
}
