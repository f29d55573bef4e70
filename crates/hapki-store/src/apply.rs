//! Deterministic apply: one command changes the state-machine tables inside a
//! write transaction, or is refused and changes nothing. Each arm checks first
//! and writes after, so a refusal never leaves a partial write.

use hapki_domain::profile::Profile;
use redb::{ReadableTable, WriteTransaction};

use crate::codec::{decode, encode};
use crate::command::{Command, CommandResult, RejectCode};
use crate::records::{
    CertRecord, IssuerRecord, NodeRecord, NodeStanding, OcspSignerRecord, Revocation, SerialLease, Settings,
    TokenRecord,
};
use crate::tables::*;
use crate::StoreError;

/// Key of a revocation in [`SM_REVOKED`]: issuer id, `/`, 20-byte serial.
pub(crate) fn revoked_key(issuer_id: &str, serial: &[u8; 20]) -> Vec<u8> {
    let mut k = Vec::with_capacity(issuer_id.len() + 21);
    k.extend_from_slice(issuer_id.as_bytes());
    k.push(b'/');
    k.extend_from_slice(serial);
    k
}

/// Applies one command inside `txn`.
pub fn apply(txn: &WriteTransaction, cmd: &Command) -> Result<CommandResult, StoreError> {
    if let Some(refusal) = crate::kek::check_sealing(txn, cmd)? {
        return Ok(refusal);
    }
    match cmd {
        Command::Bootstrap {
            cluster_id,
            profiles,
            settings,
        } => bootstrap(txn, cluster_id, profiles, settings),
        Command::AddIssuer { issuer, make_default } => add_issuer(txn, issuer, *make_default),
        Command::InstallIssuerCert {
            id,
            cert_der,
            chain_der,
            not_after,
            ocsp,
        } => install_issuer_cert(txn, id, cert_der, chain_der, *not_after, ocsp),
        Command::SetInternalCa { ca } => {
            let mut meta = txn.open_table(SM_META)?;
            if meta.get(b"internal_ca".as_slice())?.is_some() {
                return Ok(CommandResult::reject(
                    RejectCode::Conflict,
                    "the internal CA is already set",
                ));
            }
            meta.insert(b"internal_ca".as_slice(), encode(ca).as_slice())?;
            Ok(CommandResult::Applied)
        }
        Command::SetOcspSigner { issuer_id, signer } => update_issuer(txn, issuer_id, |i| {
            i.ocsp = Some(signer.clone());
            Ok(())
        }),
        Command::SetDefaultIssuer { id } => set_default_issuer(txn, id),
        Command::PutProfile { profile, create } => put_profile(txn, profile, *create),
        Command::IssueCert { cert, idempotency_key } => issue_cert(txn, cert, idempotency_key.as_ref()),
        Command::Revoke {
            serial,
            reason,
            at,
            idempotency_key,
        } => revoke(
            txn,
            &serial.0,
            Revocation {
                at: *at,
                reason: *reason,
            },
            idempotency_key.as_ref(),
        ),
        Command::ForgetIdempotencyKeys { at, max } => {
            crate::idempotency::forget(txn, *at, *max)?;
            Ok(CommandResult::Applied)
        }
        Command::PublishCrl { crl } => crate::crl_head::publish_signed(txn, crl),
        Command::PublishCrlHead { head } => crate::crl_head::publish_head(txn, head),
        Command::CreateToken { token } => create_token(txn, token),
        Command::RevokeToken { id } => revoke_token(txn, id),
        Command::PutSettings { settings } => {
            txn.open_table(SM_META)?
                .insert(b"settings".as_slice(), encode(settings).as_slice())?;
            Ok(CommandResult::Applied)
        }
        Command::AdmitNode { node } => admit_node(txn, node),
        Command::RemoveNode { id, at } => remove_node(txn, *id, *at),
        Command::LeaseSerials { node, size } => lease_serials(txn, *node, *size),
        Command::RotateKek { .. } | Command::RotateKekWithArchive { .. } | Command::RotateKekWithAudit { .. }
            if crate::acme::secret_is_set(txn)? =>
        {
            Ok(CommandResult::reject(
                RejectCode::Conflict,
                "the rotation does not seal the ACME secret anew; retry",
            ))
        }
        Command::RotateKekWithAcme { rotation, acme } => {
            let to = match rotation.inner() {
                Command::RotateKek { to, .. } | Command::RotateKekWithArchive { to, .. } => *to,
                other => {
                    return Ok(CommandResult::reject(
                        RejectCode::Invalid,
                        format!("{} is not a KEK rotation", other.kind()),
                    ))
                }
            };
            if let Some(refusal) = crate::acme::check_rewrap(txn, acme, to)? {
                return Ok(CommandResult::reject(RejectCode::Conflict, refusal));
            }
            let result = apply_rotation(txn, rotation)?;
            if result == CommandResult::Applied {
                crate::acme::rewrap_secret(txn, acme)?;
            }
            Ok(result)
        }
        Command::RotateKek { .. } | Command::RotateKekWithArchive { .. } | Command::RotateKekWithAudit { .. } => {
            apply_rotation(txn, cmd)
        }
        Command::SetArchiveTransport { transport } => crate::archive::set_transport(txn, transport),
        Command::ArchiveKey { key } => crate::archive::archive_key(txn, key),
        Command::IssueAndArchive {
            cert,
            idempotency_key,
            key,
        } => crate::archive::issue_and_archive(txn, cert, idempotency_key.as_ref(), key),
        Command::SetRecoveryPolicy { policy } => crate::archive::set_policy(txn, policy),
        Command::RequestRecovery {
            id,
            serial,
            reason,
            by,
            by_name,
            at,
        } => crate::archive::request_recovery(txn, id, serial, reason, by, by_name, *at),
        Command::ApproveRecovery { id, approval } => crate::archive::approve_recovery(txn, id, approval),
        Command::FetchRecovery { id, by, at } => crate::archive::fetch_recovery(txn, id, by, *at),
        Command::RecordBackup { backup } => crate::backups::record(txn, backup),
        Command::Audited { meta, command } => crate::audit::audited(txn, meta, command),
        Command::AuditEvent { meta, action, object } => crate::audit::event(txn, meta, action, object),
        Command::SealAudit { seal } => crate::audit::seal(txn, seal),
        Command::SetAuditKey { key } => crate::audit::set_key(txn, key),
        Command::SetStateFormat { to } => crate::format::set(txn, *to),
        Command::RollOverIssuer { successor, rollover } => crate::rollover::roll_over(txn, successor, rollover),
        Command::CompleteRollover { from } => crate::rollover::complete(txn, from),
        Command::TidyExpired { tidy } => crate::tidy::apply(txn, tidy),
        Command::SetTidyPolicy { policy } => crate::tidy::set_policy(txn, policy),
        Command::SetCrlPolicy { policy } => crate::crl_delta::set_policy(txn, policy),
        Command::PublishDeltaHead { head } => crate::crl_delta::publish(txn, head),
        Command::SetCrlPartitioning { policy } => crate::crl_partition::set_policy(txn, policy),
        Command::SetAcmeSecret { secret } => crate::acme::set_secret(txn, secret),
        Command::SetAcmeDirectory { profile, directory } => crate::acme::set_directory(txn, profile, directory),
        Command::CreateEab { eab } => crate::acme::create_eab(txn, eab),
        Command::SuggestRenewal { issuer, hint } => crate::acme::suggest_renewal(txn, issuer, hint),
        Command::Acme { request } => crate::acme::apply(txn, request),
    }
}

/// A KEK rotation with or without the audit key sealed anew.
fn apply_rotation(txn: &WriteTransaction, cmd: &Command) -> Result<CommandResult, StoreError> {
    match cmd {
        Command::RotateKekWithAudit { rotation, audit } => {
            if let Some(refusal) = crate::audit::check_rewrap(txn, audit, rotation)? {
                return Ok(CommandResult::reject(RejectCode::Conflict, refusal));
            }
            let result = rotate(txn, rotation)?;
            if result == CommandResult::Applied {
                crate::audit::rewrap_key(txn, audit)?;
            }
            Ok(result)
        }
        _ if crate::audit::key_is_set(txn)? => Ok(CommandResult::reject(
            RejectCode::Conflict,
            "the rotation does not seal the audit key anew; retry",
        )),
        _ => rotate(txn, cmd),
    }
}

/// A KEK rotation's own part: every issuer, the internal CA, and the archive.
fn rotate(txn: &WriteTransaction, cmd: &Command) -> Result<CommandResult, StoreError> {
    match cmd {
        Command::RotateKek {
            from,
            to,
            issuers,
            internal_ca,
        } => crate::kek::rotate(txn, *from, *to, issuers, internal_ca, None),
        Command::RotateKekWithArchive {
            from,
            to,
            issuers,
            internal_ca,
            archived,
            transport,
        } => crate::kek::rotate(txn, *from, *to, issuers, internal_ca, Some((archived, transport))),
        other => Ok(CommandResult::reject(
            RejectCode::Invalid,
            format!("{} is not a KEK rotation", other.kind()),
        )),
    }
}

/// The first sequential serial: small numbers look like test data.
const FIRST_SEQUENTIAL_SERIAL: u64 = 0x1000;

fn lease_serials(txn: &WriteTransaction, node: u64, size: u64) -> Result<CommandResult, StoreError> {
    if size == 0 || size > 1_000_000 {
        return Ok(CommandResult::reject(
            RejectCode::Invalid,
            "a serial range holds 1 to 1,000,000 serials",
        ));
    }
    let mut meta = txn.open_table(SM_META)?;
    let start = match meta.get(b"next_serial".as_slice())? {
        Some(v) => u64::from_be_bytes(
            v.value()
                .try_into()
                .map_err(|_| StoreError::Corrupt("next_serial".into()))?,
        ),
        None => FIRST_SEQUENTIAL_SERIAL,
    };
    let Some(end) = start.checked_add(size).filter(|e| *e < 1 << 62) else {
        return Ok(CommandResult::reject(
            RejectCode::Invalid,
            "sequential serials are used up",
        ));
    };
    meta.insert(b"next_serial".as_slice(), end.to_be_bytes().as_slice())?;
    let key = format!("serial_lease:{node:016x}");
    meta.insert(key.as_bytes(), encode(&SerialLease { start, end }).as_slice())?;
    Ok(CommandResult::Applied)
}

fn admit_node(txn: &WriteTransaction, node: &NodeRecord) -> Result<CommandResult, StoreError> {
    let mut table = txn.open_table(SM_NODES)?;
    if let Some(old) = table.get(node.id.to_be_bytes().as_slice())? {
        let old: NodeRecord = decode(old.value())?;
        if old.standing == NodeStanding::Removed {
            return Ok(CommandResult::reject(
                RejectCode::Conflict,
                format!(
                    "node {:016x} was removed from this cluster; reset it with `hapki cluster delete` to give it a new id",
                    node.id
                ),
            ));
        }
    }
    table.insert(node.id.to_be_bytes().as_slice(), encode(node).as_slice())?;
    Ok(CommandResult::Applied)
}

fn remove_node(txn: &WriteTransaction, id: u64, at: u64) -> Result<CommandResult, StoreError> {
    let mut table = txn.open_table(SM_NODES)?;
    let mut record = match table.get(id.to_be_bytes().as_slice())? {
        Some(v) => decode::<NodeRecord>(v.value())?,
        None => NodeRecord {
            id,
            name: String::new(),
            standing: NodeStanding::Admitted,
            admitted_at: at,
            removed_at: None,
            channel_key: None,
        },
    };
    record.standing = NodeStanding::Removed;
    record.removed_at = Some(at);
    table.insert(id.to_be_bytes().as_slice(), encode(&record).as_slice())?;
    Ok(CommandResult::Applied)
}

fn bootstrap(
    txn: &WriteTransaction,
    cluster_id: &str,
    profiles: &[Profile],
    settings: &Settings,
) -> Result<CommandResult, StoreError> {
    let mut meta = txn.open_table(SM_META)?;
    if meta.get(b"cluster_id".as_slice())?.is_some() {
        return Ok(CommandResult::reject(
            RejectCode::Conflict,
            "the cluster is already bootstrapped",
        ));
    }
    meta.insert(b"cluster_id".as_slice(), cluster_id.as_bytes())?;
    meta.insert(b"schema_version".as_slice(), SCHEMA_VERSION.to_be_bytes().as_slice())?;
    meta.insert(b"settings".as_slice(), encode(settings).as_slice())?;
    let mut table = txn.open_table(SM_PROFILES)?;
    for p in profiles {
        table.insert(p.name.as_bytes(), profile_json(p).as_slice())?;
    }
    Ok(CommandResult::Applied)
}

fn profile_json(p: &Profile) -> Vec<u8> {
    serde_json::to_vec(p).expect("profiles serialize")
}

fn add_issuer(txn: &WriteTransaction, issuer: &IssuerRecord, make_default: bool) -> Result<CommandResult, StoreError> {
    let mut table = txn.open_table(SM_ISSUERS)?;
    if table.get(issuer.id.as_bytes())?.is_some() {
        return Ok(CommandResult::reject(
            RejectCode::Conflict,
            format!("issuer {} already exists", issuer.id),
        ));
    }
    table.insert(issuer.id.as_bytes(), encode(issuer).as_slice())?;
    let mut meta = txn.open_table(SM_META)?;
    if make_default || meta.get(b"default_issuer".as_slice())?.is_none() && issuer.is_active() {
        meta.insert(b"default_issuer".as_slice(), issuer.id.as_bytes())?;
    }
    Ok(CommandResult::Applied)
}

fn update_issuer(
    txn: &WriteTransaction,
    id: &str,
    change: impl FnOnce(&mut IssuerRecord) -> Result<(), CommandResult>,
) -> Result<CommandResult, StoreError> {
    let mut table = txn.open_table(SM_ISSUERS)?;
    let Some(bytes) = table.get(id.as_bytes())?.map(|v| v.value().to_vec()) else {
        return Ok(CommandResult::reject(
            RejectCode::NotFound,
            format!("no issuer with id {id}"),
        ));
    };
    let mut issuer: IssuerRecord = decode(&bytes)?;
    if let Err(refusal) = change(&mut issuer) {
        return Ok(refusal);
    }
    table.insert(id.as_bytes(), encode(&issuer).as_slice())?;
    Ok(CommandResult::Applied)
}

fn install_issuer_cert(
    txn: &WriteTransaction,
    id: &str,
    cert_der: &[u8],
    chain_der: &[Vec<u8>],
    not_after: u64,
    ocsp: &Option<OcspSignerRecord>,
) -> Result<CommandResult, StoreError> {
    let result = update_issuer(txn, id, |i| {
        if i.is_active() {
            return Err(CommandResult::reject(
                RejectCode::Conflict,
                format!("issuer {id} already has its certificate"),
            ));
        }
        i.cert_der = cert_der.to_vec();
        i.chain_der = chain_der.to_vec();
        i.not_after = not_after;
        i.ocsp = ocsp.clone();
        Ok(())
    })?;
    if result == CommandResult::Applied {
        let mut meta = txn.open_table(SM_META)?;
        if meta.get(b"default_issuer".as_slice())?.is_none() {
            meta.insert(b"default_issuer".as_slice(), id.as_bytes())?;
        }
    }
    Ok(result)
}

fn set_default_issuer(txn: &WriteTransaction, id: &str) -> Result<CommandResult, StoreError> {
    let issuers = txn.open_table(SM_ISSUERS)?;
    let Some(bytes) = issuers.get(id.as_bytes())? else {
        return Ok(CommandResult::reject(
            RejectCode::NotFound,
            format!("no issuer with id {id}"),
        ));
    };
    let issuer: IssuerRecord = decode(bytes.value())?;
    if !issuer.is_active() {
        return Ok(CommandResult::reject(
            RejectCode::Invalid,
            format!("issuer {id} has no certificate yet; install it with `hapki ca install-cert`"),
        ));
    }
    txn.open_table(SM_META)?
        .insert(b"default_issuer".as_slice(), id.as_bytes())?;
    Ok(CommandResult::Applied)
}

fn put_profile(txn: &WriteTransaction, profile: &Profile, create: bool) -> Result<CommandResult, StoreError> {
    let mut table = txn.open_table(SM_PROFILES)?;
    let exists = table.get(profile.name.as_bytes())?.is_some();
    if create && exists {
        return Ok(CommandResult::reject(
            RejectCode::Conflict,
            format!("profile '{}' already exists; use `hapki profile update`", profile.name),
        ));
    }
    if !create && !exists {
        return Ok(CommandResult::reject(
            RejectCode::NotFound,
            format!("no profile named '{}'; use `hapki profile create`", profile.name),
        ));
    }
    table.insert(profile.name.as_bytes(), profile_json(profile).as_slice())?;
    Ok(CommandResult::Applied)
}

pub(crate) fn issue_cert(
    txn: &WriteTransaction,
    cert: &CertRecord,
    idempotency_key: Option<&[u8; 32]>,
) -> Result<CommandResult, StoreError> {
    if let Some(key) = idempotency_key {
        if let Some(first) = crate::idempotency::lookup(txn, key, cert.issued_at)? {
            let serial = hapki_domain::serial::Serial::from_bytes(&first)
                .ok_or_else(|| StoreError::Corrupt("idempotency entry".into()))?;
            return Ok(CommandResult::Replayed { serial });
        }
    }
    if txn.open_table(SM_ISSUERS)?.get(cert.issuer_id.as_bytes())?.is_none() {
        return Ok(CommandResult::reject(
            RejectCode::NotFound,
            format!("no issuer with id {}", cert.issuer_id),
        ));
    }
    let mut certs = txn.open_table(SM_CERTS)?;
    if certs.get(cert.serial.0.as_slice())?.is_some() {
        return Ok(CommandResult::reject(
            RejectCode::Conflict,
            format!("serial {} is already in use", cert.serial),
        ));
    }
    certs.insert(cert.serial.0.as_slice(), encode(cert).as_slice())?;
    crate::index::add_cert(txn, cert)?;
    if let Some(key) = idempotency_key {
        crate::idempotency::record(txn, key, cert.issued_at, cert.serial.0.as_slice())?;
    }
    Ok(CommandResult::Applied)
}

pub(crate) fn revoke(
    txn: &WriteTransaction,
    serial: &[u8; 20],
    revocation: Revocation,
    idempotency_key: Option<&[u8; 32]>,
) -> Result<CommandResult, StoreError> {
    if let Some(key) = idempotency_key {
        if let Some(first) = crate::idempotency::lookup(txn, key, revocation.at)? {
            // A replay only if that key revoked this very certificate (a key that issued it
            // is another request).
            let revoked = match txn.open_table(SM_CERTS)?.get(serial.as_slice())? {
                Some(c) => decode::<CertRecord>(c.value())?.revoked.is_some(),
                None => false,
            };
            if first == serial.as_slice() && revoked {
                return Ok(CommandResult::Replayed {
                    serial: hapki_domain::serial::Serial(*serial),
                });
            }
            return Ok(CommandResult::reject(
                RejectCode::Conflict,
                "this idempotency key was used for another request; use a new key for each request",
            ));
        }
    }
    let mut certs = txn.open_table(SM_CERTS)?;
    let Some(bytes) = certs.get(serial.as_slice())?.map(|v| v.value().to_vec()) else {
        return Ok(CommandResult::reject(
            RejectCode::NotFound,
            format!("no certificate with serial {}", hapki_domain::serial::Serial(*serial)),
        ));
    };
    let mut cert: CertRecord = decode(&bytes)?;
    if let Some(r) = cert.revoked {
        return Ok(CommandResult::reject(
            RejectCode::Conflict,
            format!("certificate {} is already revoked ({})", cert.serial, r.reason),
        ));
    }
    cert.revoked = Some(revocation);
    certs.insert(serial.as_slice(), encode(&cert).as_slice())?;
    let key = revoked_key(&cert.issuer_id, serial);
    txn.open_table(SM_REVOKED)?
        .insert(key.as_slice(), encode(&revocation).as_slice())?;
    crate::crl_head::note_revoked(txn, &key)?;
    crate::index::add_revoked(txn, serial)?;
    crate::crl_partition::note_revoked(txn, &cert.issuer_id, serial, &cert.der)?;
    if let Some(key) = idempotency_key {
        crate::idempotency::record(txn, key, revocation.at, serial.as_slice())?;
    }
    Ok(CommandResult::Applied)
}

fn create_token(txn: &WriteTransaction, token: &TokenRecord) -> Result<CommandResult, StoreError> {
    let mut table = txn.open_table(SM_TOKENS)?;
    if table.get(token.hash.as_slice())?.is_some() {
        return Ok(CommandResult::reject(RejectCode::Conflict, "token already exists"));
    }
    table.insert(token.hash.as_slice(), encode(token).as_slice())?;
    Ok(CommandResult::Applied)
}

fn revoke_token(txn: &WriteTransaction, id: &str) -> Result<CommandResult, StoreError> {
    let mut table = txn.open_table(SM_TOKENS)?;
    let mut found = None;
    for row in table.iter()? {
        let (k, v) = row?;
        let t: TokenRecord = decode(v.value())?;
        if t.id == id {
            found = Some((k.value().to_vec(), t));
            break;
        }
    }
    let Some((key, mut token)) = found else {
        return Ok(CommandResult::reject(
            RejectCode::NotFound,
            format!("no token with id {id}"),
        ));
    };
    if token.revoked {
        return Ok(CommandResult::reject(
            RejectCode::Conflict,
            format!("token {id} is already revoked"),
        ));
    }
    token.revoked = true;
    table.insert(key.as_slice(), encode(&token).as_slice())?;
    Ok(CommandResult::Applied)
}
