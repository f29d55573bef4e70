//! The cluster key-encryption key's number, and rotating to the next one: every
//! key sealed in the state (issuers, their OCSP signers, the internal CA) is
//! replaced by the same key sealed under the new KEK in one command. A command
//! that brings a key sealed under any other KEK than the current one is refused,
//! so nothing sealed under an old KEK slips in after a rotation.

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};

use crate::codec::{decode, encode};
use crate::command::{CommandResult, RejectCode};
use crate::records::{IssuerRecord, RewrappedIssuer};
use crate::tables::{SM_ARCHIVE, SM_ISSUERS, SM_META};
use crate::{Command, StoreError};
use hapki_domain::serial::Serial;
use hapki_domain::wrap::Wrapped;

/// The number of the KEK that seals the state's keys (0 until the first rotation).
pub(crate) fn current(txn: &WriteTransaction) -> Result<u32, StoreError> {
    let meta = txn.open_table(SM_META)?;
    let id = meta.get(b"kek_id".as_slice())?.map(|v| v.value().to_vec());
    id.map(|b| crate::records::decode_u32("kek_id", &b))
        .transpose()
        .map(|id| id.unwrap_or(0))
}

/// The keys a command brings, sealed.
fn sealed_in(cmd: &Command) -> Vec<&Wrapped> {
    match cmd {
        Command::AddIssuer { issuer, .. } => std::iter::once(&issuer.wrapped_key)
            .chain(issuer.ocsp.as_ref().map(|o| &o.wrapped_key))
            .collect(),
        Command::InstallIssuerCert { ocsp, .. } => ocsp.iter().map(|o| &o.wrapped_key).collect(),
        Command::SetOcspSigner { signer, .. } => vec![&signer.wrapped_key],
        Command::SetInternalCa { ca } => vec![&ca.wrapped_key],
        Command::SetArchiveTransport { transport } => vec![&transport.wrapped_key],
        Command::SetAuditKey { key } => vec![&key.wrapped_key],
        Command::SetAcmeSecret { secret } => vec![&secret.wrapped],
        Command::Audited { command, .. } => sealed_in(command),
        Command::ArchiveKey { key } | Command::IssueAndArchive { key, .. } => vec![&key.wrapped_key],
        _ => Vec::new(),
    }
}

/// Refuses a command whose keys are sealed under another KEK than the current one.
pub(crate) fn check_sealing(txn: &WriteTransaction, cmd: &Command) -> Result<Option<CommandResult>, StoreError> {
    let keys = sealed_in(cmd);
    if keys.is_empty() {
        return Ok(None);
    }
    let current = current(txn)?;
    Ok(keys.iter().find(|w| w.kek != current).map(|w| {
        CommandResult::reject(
            RejectCode::Conflict,
            format!(
                "the key was sealed under KEK {}, but the cluster rotated to KEK {current}; retry",
                w.kek
            ),
        )
    }))
}

/// The archive's part of a rotation: every archived key by serial, and the transport key.
pub(crate) type RewrappedArchive<'a> = (&'a [(Serial, Wrapped)], &'a Option<Wrapped>);

/// Replaces every sealed key by its copy under KEK `to`, if the state is at KEK `from`
/// and the command covers exactly the issuers there are, and the archive (a rotation
/// without `archive` applies only to a state whose archive is empty).
pub(crate) fn rotate(
    txn: &WriteTransaction,
    from: u32,
    to: u32,
    issuers: &[RewrappedIssuer],
    internal_ca: &Option<Wrapped>,
    archive: Option<RewrappedArchive>,
) -> Result<CommandResult, StoreError> {
    let refuse = |m: String| Ok(CommandResult::reject(RejectCode::Conflict, m));
    let now = current(txn)?;
    if now != from || to != from + 1 {
        return refuse(format!(
            "the cluster is at KEK {now}; a rotation from KEK {from} to {to} does not apply; retry"
        ));
    }
    let all_new = issuers
        .iter()
        .flat_map(|i| std::iter::once(&i.key).chain(i.ocsp.as_ref()))
        .chain(internal_ca.as_ref())
        .chain(
            archive
                .iter()
                .flat_map(|(keys, t)| keys.iter().map(|(_, w)| w).chain(t.as_ref())),
        );
    if all_new.clone().any(|w| w.kek != to) {
        return refuse(format!("every key of a rotation to KEK {to} must be sealed under it"));
    }
    let mut table = txn.open_table(SM_ISSUERS)?;
    let mut stored: Vec<IssuerRecord> = Vec::new();
    for row in table.iter()? {
        stored.push(decode(row?.1.value())?);
    }
    let covered = stored.len() == issuers.len()
        && stored.iter().all(|s| {
            issuers
                .iter()
                .any(|i| i.id == s.id && i.ocsp.is_some() == s.ocsp.is_some())
        });
    if !covered {
        return refuse("the issuers changed while the KEK was being rotated; retry".into());
    }
    if let Some(refusal) = check_archive(txn, archive)? {
        return Ok(refusal);
    }
    let ca = txn
        .open_table(SM_META)?
        .get(b"internal_ca".as_slice())?
        .map(|v| v.value().to_vec());
    if ca.is_some() != internal_ca.is_some() {
        return refuse("the internal CA changed while the KEK was being rotated; retry".into());
    }
    // Checked: from here on everything is written.
    for mut issuer in stored {
        let new = issuers.iter().find(|i| i.id == issuer.id).expect("covered above");
        issuer.wrapped_key = new.key.clone();
        if let (Some(o), Some(w)) = (issuer.ocsp.as_mut(), new.ocsp.as_ref()) {
            o.wrapped_key = w.clone();
        }
        table.insert(issuer.id.as_bytes(), encode(&issuer).as_slice())?;
    }
    if let (Some(bytes), Some(w)) = (ca, internal_ca) {
        let mut ca: crate::InternalCaRecord = decode(&bytes)?;
        ca.wrapped_key = w.clone();
        txn.open_table(SM_META)?
            .insert(b"internal_ca".as_slice(), encode(&ca).as_slice())?;
    }
    rewrite_archive(txn, archive)?;
    txn.open_table(SM_META)?
        .insert(b"kek_id".as_slice(), to.to_be_bytes().as_slice())?;
    Ok(CommandResult::Applied)
}

/// The archive's part of [`rotate`], checked before anything is written: it must cover
/// exactly the archived keys and the transport key there are.
fn check_archive(
    txn: &WriteTransaction,
    archive: Option<RewrappedArchive>,
) -> Result<Option<CommandResult>, StoreError> {
    let refuse = |m: &str| Ok(Some(CommandResult::reject(RejectCode::Conflict, m)));
    let table = txn.open_table(SM_ARCHIVE)?;
    let has_transport = txn.open_table(SM_META)?.get(b"archive_transport".as_slice())?.is_some();
    let Some((keys, new_transport)) = archive else {
        if table.is_empty()? && !has_transport {
            return Ok(None);
        }
        return refuse("this rotation leaves out the key archive; retry (the node that rotates must seal it too)");
    };
    let mut covered = table.len()? == keys.len() as u64 && has_transport == new_transport.is_some();
    for (serial, _) in keys {
        covered &= table.get(serial.0.as_slice())?.is_some();
    }
    if !covered {
        return refuse("the key archive changed while the KEK was being rotated; retry");
    }
    Ok(None)
}

/// Writes the archive's part of a rotation that [`check_archive`] passed.
fn rewrite_archive(txn: &WriteTransaction, archive: Option<RewrappedArchive>) -> Result<(), StoreError> {
    let Some((keys, new_transport)) = archive else {
        return Ok(());
    };
    let mut table = txn.open_table(SM_ARCHIVE)?;
    for (serial, wrapped) in keys {
        let bytes = table
            .get(serial.0.as_slice())?
            .map(|v| v.value().to_vec())
            .ok_or_else(|| StoreError::Corrupt("an archived key vanished during a rotation".into()))?;
        let mut key: crate::ArchivedKey = decode(&bytes)?;
        key.wrapped_key = wrapped.clone();
        table.insert(serial.0.as_slice(), encode(&key).as_slice())?;
    }
    let mut meta = txn.open_table(SM_META)?;
    let transport = meta.get(b"archive_transport".as_slice())?.map(|v| v.value().to_vec());
    if let (Some(bytes), Some(w)) = (transport, new_transport) {
        let mut record: crate::TransportRecord = decode(&bytes)?;
        record.wrapped_key = w.clone();
        meta.insert(b"archive_transport".as_slice(), encode(&record).as_slice())?;
    }
    Ok(())
}
