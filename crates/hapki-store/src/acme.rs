//! What the cluster keeps for ACME (RFC 8555) in one table, `sm_acme` (format 4): the
//! secret nonces and External Account Binding keys are derived from (sealed under the
//! KEK), each directory's settings, EAB key ids, accounts and the index of their keys,
//! orders and authorizations, renewal hints per issuer, and the nonces redeemed by
//! state-changing requests within their window.
//!
//! Every client request that changes something is one [`AcmeRequest`]: the nonce it
//! redeems, the time, the account, and the change. Apply refuses a nonce seen before or
//! out of its window, and redeems it in the same entry as the change it authorises, so a
//! nonce is accepted once in the whole cluster without a write per nonce handed out.

use hapki_domain::revocation::RevocationReason;
use hapki_domain::serial::Serial;
use hapki_domain::wrap::Wrapped;
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};
use crate::command::{Command, CommandResult, RejectCode};
use crate::read::StateReader;
use crate::records::{CertRecord, Revocation};
use crate::tables::{SM_ACME, SM_CERTS, SM_ISSUERS, SM_PROFILES};
use crate::StoreError;

/// How long a nonce is good for, either side of the time it names.
pub const NONCE_WINDOW_SECS: u64 = 600;

/// Redeemed nonces pruned per request, oldest first: enough to keep up with any rate of
/// requests, few enough to keep every entry small.
const PRUNE_PER_REQUEST: usize = 16;

const SECRET: &[u8] = b"secret";
const DIRECTORY: &[u8] = b"dir/";
const EAB: &[u8] = b"eab/";
const ACCOUNT: &[u8] = b"acct/";
const ACCOUNT_KEY: &[u8] = b"key/";
const ORDER: &[u8] = b"order/";
const ACCOUNT_ORDER: &[u8] = b"ao/";
const AUTHZ: &[u8] = b"authz/";
const NONCE: &[u8] = b"nonce/";
const RENEWAL: &[u8] = b"renew/";

fn key(prefix: &[u8], id: &[u8]) -> Vec<u8> {
    [prefix, id].concat()
}

/// The secret ACME nonces and EAB keys are derived from, sealed under the KEK.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeSecret {
    pub wrapped: Wrapped,
    pub created_at: u64,
}

/// A directory's settings (one directory per profile).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeDirectory {
    /// New accounts must show an External Account Binding.
    pub require_eab: bool,
}

/// An External Account Binding key id; its HMAC key is derived from the secret and the
/// id, so the state keeps no copy of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EabRecord {
    pub kid: String,
    pub profile: String,
    pub created_at: u64,
    pub created_by: String,
    /// After this, the key binds no new account.
    pub expires_at: u64,
    /// The account it bound, once it did (a key binds one account).
    pub bound_to: Option<String>,
}

/// Where an account stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountStatus {
    Valid,
    Deactivated,
}

/// An ACME account of one directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeAccount {
    pub id: String,
    pub profile: String,
    /// The public key as RFC 7638 JSON ([`hapki_domain::jws::Jwk::canonical_json`]).
    pub jwk: String,
    pub thumbprint: [u8; 32],
    pub contact: Vec<String>,
    pub status: AccountStatus,
    pub eab_kid: Option<String>,
    pub created_at: u64,
}

impl AcmeAccount {
    /// The name the account's certificates are recorded as requested by.
    pub fn requester(&self) -> String {
        requester(&self.id)
    }
}

/// The `requested_by` of certificates account `id` ordered.
pub fn requester(id: &str) -> String {
    format!("acme:{id}")
}

/// An identifier an order names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identifier {
    /// `dns` or `ip`.
    pub kind: String,
    pub value: String,
}

/// An order: identifiers, their authorizations, and once finalized the certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeOrder {
    pub id: String,
    pub account: String,
    pub profile: String,
    pub identifiers: Vec<Identifier>,
    pub authorizations: Vec<String>,
    pub created_at: u64,
    pub expires_at: u64,
    /// The certificate this order replaces (RFC 9773 `replaces`), as its ARI id.
    pub replaces: Option<String>,
    pub certificate: Option<Serial>,
}

/// Where an authorization stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthzStatus {
    Pending,
    /// Validated by challenge `challenge` at `at`.
    Valid {
        challenge: String,
        at: u64,
    },
    /// Challenge `challenge` failed at `at`, for `error`.
    Invalid {
        challenge: String,
        at: u64,
        error: String,
    },
    Deactivated,
}

/// An authorization of one identifier for one account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeAuthz {
    pub id: String,
    pub account: String,
    pub identifier: Identifier,
    pub wildcard: bool,
    /// The challenges' token (base64url, 128 bits or more).
    pub token: String,
    pub status: AuthzStatus,
    pub expires_at: u64,
}

/// A hint that an issuer's certificates be renewed before `before` (RFC 9773 windows
/// end there), set by an operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalHint {
    pub before: u64,
    pub set_at: u64,
    pub set_by: String,
}

/// A client's state-changing ACME request: the nonce it redeems, when, by whom, and what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeRequest {
    /// The nonce's body (time, node, random), its MAC checked before proposing.
    pub nonce: [u8; 24],
    pub at: u64,
    /// The account that signed it (for a new account, the one it creates).
    pub account: String,
    pub op: AcmeOp,
}

/// The change an [`AcmeRequest`] makes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AcmeOp {
    NewAccount {
        account: AcmeAccount,
    },
    UpdateAccount {
        contact: Option<Vec<String>>,
        deactivate: bool,
    },
    KeyChange {
        jwk: String,
        thumbprint: [u8; 32],
    },
    NewOrder {
        order: AcmeOrder,
        authorizations: Vec<AcmeAuthz>,
    },
    /// The outcome of validating `challenge` of authorization `authz`: valid without `error`.
    Validated {
        authz: String,
        challenge: String,
        error: Option<String>,
    },
    DeactivateAuthz {
        authz: String,
    },
    /// Records the certificate of a ready order; a second finalize answers the first one's.
    Finalize {
        order: String,
        cert: CertRecord,
    },
    /// Revokes a certificate the account ordered.
    Revoke {
        serial: Serial,
        reason: RevocationReason,
    },
    /// Revokes a certificate on a request signed with the certificate's own key (RFC 8555
    /// §7.6), whoever ordered it; the request's account is [`cert_key_account`]. Its
    /// signature is checked before the command is proposed (and again by a leader it is
    /// forwarded to), so the state only checks that the certificate exists. State format 5.
    RevokeByCertKey {
        serial: Serial,
        reason: RevocationReason,
    },
}

/// The account a revocation signed with a certificate's own key is made in the name of: no
/// account of the state, and what audit records name as its actor.
pub fn cert_key_account(serial: &Serial) -> String {
    format!("key-of-cert-{serial}")
}

impl AcmeOp {
    /// A short name for logs and audit records.
    pub fn kind(&self) -> &'static str {
        match self {
            AcmeOp::NewAccount { .. } => "acme_new_account",
            AcmeOp::UpdateAccount { .. } => "acme_update_account",
            AcmeOp::KeyChange { .. } => "acme_key_change",
            AcmeOp::NewOrder { .. } => "acme_new_order",
            AcmeOp::Validated { .. } => "acme_validated",
            AcmeOp::DeactivateAuthz { .. } => "acme_deactivate_authz",
            AcmeOp::Finalize { .. } => "acme_finalize",
            AcmeOp::Revoke { .. } => "acme_revoke",
            AcmeOp::RevokeByCertKey { .. } => "acme_revoke_by_cert_key",
        }
    }
}

/// The time a nonce body names.
pub fn nonce_time(nonce: &[u8; 24]) -> u64 {
    u64::from_be_bytes(nonce[..8].try_into().expect("8 bytes"))
}

fn refuse(code: RejectCode, msg: impl Into<String>) -> Result<CommandResult, StoreError> {
    Ok(CommandResult::reject(code, msg))
}

fn get<T: serde::de::DeserializeOwned>(txn: &WriteTransaction, k: &[u8]) -> Result<Option<T>, StoreError> {
    let table = txn.open_table(SM_ACME)?;
    let value = table.get(k)?.map(|v| v.value().to_vec());
    value.map(|v| decode(&v)).transpose()
}

fn put<T: Serialize>(txn: &WriteTransaction, k: &[u8], value: &T) -> Result<(), StoreError> {
    txn.open_table(SM_ACME)?.insert(k, encode(value).as_slice())?;
    Ok(())
}

/// Applies [`Command::SetAcmeSecret`]: once.
pub(crate) fn set_secret(txn: &WriteTransaction, secret: &AcmeSecret) -> Result<CommandResult, StoreError> {
    if get::<AcmeSecret>(txn, SECRET)?.is_some() {
        return refuse(RejectCode::Conflict, "the ACME secret is set");
    }
    put(txn, SECRET, secret)?;
    Ok(CommandResult::Applied)
}

/// Whether the state holds the ACME secret (a KEK rotation must then seal it anew).
pub(crate) fn secret_is_set(txn: &WriteTransaction) -> Result<bool, StoreError> {
    Ok(txn.open_table(SM_ACME)?.get(SECRET)?.is_some())
}

/// Applies [`Command::RotateKekWithAcme`]'s own part after its rotation applied.
pub(crate) fn check_rewrap(txn: &WriteTransaction, wrapped: &Wrapped, to: u32) -> Result<Option<String>, StoreError> {
    if !secret_is_set(txn)? {
        return Ok(Some("the rotation seals an ACME secret there is none of; retry".into()));
    }
    if wrapped.kek != to {
        return Ok(Some(format!(
            "the ACME secret is sealed under KEK {}, not the new KEK {to}; retry",
            wrapped.kek
        )));
    }
    Ok(None)
}

/// Replaces the secret's sealing, after [`check_rewrap`] passed.
pub(crate) fn rewrap_secret(txn: &WriteTransaction, wrapped: &Wrapped) -> Result<(), StoreError> {
    let mut secret: AcmeSecret =
        get(txn, SECRET)?.ok_or_else(|| StoreError::Corrupt("the ACME secret vanished during a rotation".into()))?;
    secret.wrapped = wrapped.clone();
    put(txn, SECRET, &secret)
}

fn profile_exists(txn: &WriteTransaction, profile: &str) -> Result<bool, StoreError> {
    Ok(txn.open_table(SM_PROFILES)?.get(profile.as_bytes())?.is_some())
}

/// Applies [`Command::SetAcmeDirectory`].
pub(crate) fn set_directory(
    txn: &WriteTransaction,
    profile: &str,
    directory: &AcmeDirectory,
) -> Result<CommandResult, StoreError> {
    if !profile_exists(txn, profile)? {
        return refuse(RejectCode::NotFound, format!("no profile named '{profile}'"));
    }
    put(txn, &key(DIRECTORY, profile.as_bytes()), directory)?;
    Ok(CommandResult::Applied)
}

/// Applies [`Command::CreateEab`].
pub(crate) fn create_eab(txn: &WriteTransaction, eab: &EabRecord) -> Result<CommandResult, StoreError> {
    if !profile_exists(txn, &eab.profile)? {
        return refuse(RejectCode::NotFound, format!("no profile named '{}'", eab.profile));
    }
    let k = key(EAB, eab.kid.as_bytes());
    if get::<EabRecord>(txn, &k)?.is_some() {
        return refuse(RejectCode::Conflict, format!("EAB key {} exists", eab.kid));
    }
    put(txn, &k, eab)?;
    Ok(CommandResult::Applied)
}

/// Applies [`Command::SuggestRenewal`].
pub(crate) fn suggest_renewal(
    txn: &WriteTransaction,
    issuer: &str,
    hint: &RenewalHint,
) -> Result<CommandResult, StoreError> {
    if txn.open_table(SM_ISSUERS)?.get(issuer.as_bytes())?.is_none() {
        return refuse(RejectCode::NotFound, format!("no issuer with id {issuer}"));
    }
    put(txn, &key(RENEWAL, issuer.as_bytes()), hint)?;
    Ok(CommandResult::Applied)
}

/// Applies [`Command::Acme`]: the nonce first, then the change; the nonce is redeemed only
/// with a change that applied (a refused request changes nothing).
pub(crate) fn apply(txn: &WriteTransaction, req: &AcmeRequest) -> Result<CommandResult, StoreError> {
    let issued = nonce_time(&req.nonce);
    if issued.saturating_add(NONCE_WINDOW_SECS) < req.at || issued > req.at.saturating_add(NONCE_WINDOW_SECS) {
        return refuse(RejectCode::BadNonce, "the nonce has expired; get a new one");
    }
    let nonce_key = key(NONCE, &req.nonce);
    if txn.open_table(SM_ACME)?.get(nonce_key.as_slice())?.is_some() {
        return refuse(RejectCode::BadNonce, "the nonce was used; get a new one");
    }
    let result = op(txn, req)?;
    if !matches!(result, CommandResult::Rejected { .. }) {
        let mut table = txn.open_table(SM_ACME)?;
        table.insert(nonce_key.as_slice(), [].as_slice())?;
        let horizon = key(NONCE, &req.at.saturating_sub(NONCE_WINDOW_SECS).to_be_bytes());
        let stale: Vec<Vec<u8>> = table
            .range(NONCE..horizon.as_slice())?
            .take(PRUNE_PER_REQUEST)
            .map(|r| r.map(|(k, _)| k.value().to_vec()))
            .collect::<Result<_, _>>()?;
        for k in stale {
            table.remove(k.as_slice())?;
        }
    }
    Ok(result)
}

fn account(txn: &WriteTransaction, id: &str) -> Result<Option<AcmeAccount>, StoreError> {
    get(txn, &key(ACCOUNT, id.as_bytes()))
}

fn op(txn: &WriteTransaction, req: &AcmeRequest) -> Result<CommandResult, StoreError> {
    match &req.op {
        AcmeOp::NewAccount { account } => return new_account(txn, account, req.at),
        AcmeOp::RevokeByCertKey { serial, reason } => {
            if req.account != cert_key_account(serial) {
                return refuse(
                    RejectCode::Forbidden,
                    "a revocation by the certificate's key is made in that certificate's name",
                );
            }
            if txn.open_table(SM_CERTS)?.get(serial.0.as_slice())?.is_none() {
                return refuse(RejectCode::NotFound, format!("no certificate with serial {serial}"));
            }
            return revoke(txn, serial, *reason, req.at);
        }
        _ => {}
    }
    let Some(mut acct) = account(txn, &req.account)? else {
        return refuse(RejectCode::NotFound, format!("no ACME account {}", req.account));
    };
    if acct.status != AccountStatus::Valid {
        return refuse(RejectCode::Forbidden, format!("account {} is deactivated", acct.id));
    }
    match &req.op {
        AcmeOp::NewAccount { .. } | AcmeOp::RevokeByCertKey { .. } => unreachable!("handled above"),
        AcmeOp::UpdateAccount { contact, deactivate } => {
            if let Some(contact) = contact {
                acct.contact = contact.clone();
            }
            if *deactivate {
                acct.status = AccountStatus::Deactivated;
            }
            put(txn, &key(ACCOUNT, acct.id.as_bytes()), &acct)?;
            Ok(CommandResult::Applied)
        }
        AcmeOp::KeyChange { jwk, thumbprint } => {
            let new_key = key(ACCOUNT_KEY, thumbprint);
            let mut table = txn.open_table(SM_ACME)?;
            if let Some(owner) = table.get(new_key.as_slice())? {
                let owner = String::from_utf8_lossy(owner.value()).into_owned();
                return refuse(RejectCode::Conflict, format!("the new key belongs to account {owner}"));
            }
            table.remove(key(ACCOUNT_KEY, &acct.thumbprint).as_slice())?;
            table.insert(new_key.as_slice(), acct.id.as_bytes())?;
            drop(table);
            acct.jwk = jwk.clone();
            acct.thumbprint = *thumbprint;
            put(txn, &key(ACCOUNT, acct.id.as_bytes()), &acct)?;
            Ok(CommandResult::Applied)
        }
        AcmeOp::NewOrder { order, authorizations } => {
            if order.account != acct.id || authorizations.iter().any(|a| a.account != acct.id) {
                return refuse(RejectCode::Forbidden, "an order is made for the account that signs it");
            }
            let order_key = key(ORDER, order.id.as_bytes());
            if get::<AcmeOrder>(txn, &order_key)?.is_some() {
                return refuse(RejectCode::Conflict, format!("order {} exists", order.id));
            }
            for a in authorizations {
                put(txn, &key(AUTHZ, a.id.as_bytes()), a)?;
            }
            put(txn, &order_key, order)?;
            let index = [ACCOUNT_ORDER, acct.id.as_bytes(), b"/", order.id.as_bytes()].concat();
            txn.open_table(SM_ACME)?.insert(index.as_slice(), [].as_slice())?;
            Ok(CommandResult::Applied)
        }
        AcmeOp::Validated {
            authz,
            challenge,
            error,
        } => {
            let k = key(AUTHZ, authz.as_bytes());
            let Some(mut a) = get::<AcmeAuthz>(txn, &k)?.filter(|a| a.account == acct.id) else {
                return refuse(
                    RejectCode::NotFound,
                    format!("no authorization {authz} of this account"),
                );
            };
            if a.status != AuthzStatus::Pending {
                return refuse(RejectCode::Conflict, format!("authorization {authz} is not pending"));
            }
            if a.expires_at <= req.at {
                return refuse(RejectCode::Invalid, format!("authorization {authz} has expired"));
            }
            a.status = match error {
                None => AuthzStatus::Valid {
                    challenge: challenge.clone(),
                    at: req.at,
                },
                Some(e) => AuthzStatus::Invalid {
                    challenge: challenge.clone(),
                    at: req.at,
                    error: e.clone(),
                },
            };
            put(txn, &k, &a)?;
            Ok(CommandResult::Applied)
        }
        AcmeOp::DeactivateAuthz { authz } => {
            let k = key(AUTHZ, authz.as_bytes());
            let Some(mut a) = get::<AcmeAuthz>(txn, &k)?.filter(|a| a.account == acct.id) else {
                return refuse(
                    RejectCode::NotFound,
                    format!("no authorization {authz} of this account"),
                );
            };
            if !matches!(a.status, AuthzStatus::Pending | AuthzStatus::Valid { .. }) {
                return refuse(
                    RejectCode::Conflict,
                    format!("authorization {authz} is not pending or valid"),
                );
            }
            a.status = AuthzStatus::Deactivated;
            put(txn, &k, &a)?;
            Ok(CommandResult::Applied)
        }
        AcmeOp::Finalize { order, cert } => finalize(txn, &acct, order, cert, req.at),
        AcmeOp::Revoke { serial, reason } => {
            let cert = match txn.open_table(SM_CERTS)?.get(serial.0.as_slice())? {
                Some(v) => decode::<CertRecord>(v.value())?,
                None => return refuse(RejectCode::NotFound, format!("no certificate with serial {serial}")),
            };
            if cert.requested_by.as_deref() != Some(acct.requester().as_str()) {
                return refuse(
                    RejectCode::Forbidden,
                    format!("certificate {serial} was not ordered by account {}", acct.id),
                );
            }
            revoke(txn, serial, *reason, req.at)
        }
    }
}

/// Revokes `serial` for an ACME request made at `at`.
fn revoke(
    txn: &WriteTransaction,
    serial: &Serial,
    reason: RevocationReason,
    at: u64,
) -> Result<CommandResult, StoreError> {
    crate::apply::revoke(txn, &serial.0, Revocation { at, reason }, None)
}

fn new_account(txn: &WriteTransaction, account: &AcmeAccount, at: u64) -> Result<CommandResult, StoreError> {
    let key_row = key(ACCOUNT_KEY, &account.thumbprint);
    if let Some(owner) = txn.open_table(SM_ACME)?.get(key_row.as_slice())? {
        let owner = String::from_utf8_lossy(owner.value()).into_owned();
        return refuse(RejectCode::Conflict, format!("the key belongs to account {owner}"));
    }
    let account_row = key(ACCOUNT, account.id.as_bytes());
    if get::<AcmeAccount>(txn, &account_row)?.is_some() {
        return refuse(RejectCode::Conflict, format!("account {} exists", account.id));
    }
    let directory: Option<AcmeDirectory> = get(txn, &key(DIRECTORY, account.profile.as_bytes()))?;
    match &account.eab_kid {
        Some(kid) => {
            let eab_row = key(EAB, kid.as_bytes());
            let Some(mut eab) = get::<EabRecord>(txn, &eab_row)? else {
                return refuse(RejectCode::Forbidden, format!("no external account key {kid}"));
            };
            if eab.profile != account.profile {
                return refuse(
                    RejectCode::Forbidden,
                    format!(
                        "external account key {kid} is for the directory of profile '{}'",
                        eab.profile
                    ),
                );
            }
            if let Some(bound) = &eab.bound_to {
                return refuse(
                    RejectCode::Forbidden,
                    format!("external account key {kid} is bound to account {bound}"),
                );
            }
            if eab.expires_at <= at {
                return refuse(RejectCode::Forbidden, format!("external account key {kid} has expired"));
            }
            eab.bound_to = Some(account.id.clone());
            put(txn, &eab_row, &eab)?;
        }
        None if directory.is_some_and(|d| d.require_eab) => {
            return refuse(
                RejectCode::Forbidden,
                format!(
                    "the directory of profile '{}' requires an external account binding",
                    account.profile
                ),
            );
        }
        None => {}
    }
    put(txn, &account_row, account)?;
    txn.open_table(SM_ACME)?
        .insert(key_row.as_slice(), account.id.as_bytes())?;
    Ok(CommandResult::Applied)
}

fn finalize(
    txn: &WriteTransaction,
    acct: &AcmeAccount,
    order_id: &str,
    cert: &CertRecord,
    at: u64,
) -> Result<CommandResult, StoreError> {
    let k = key(ORDER, order_id.as_bytes());
    let Some(mut order) = get::<AcmeOrder>(txn, &k)?.filter(|o| o.account == acct.id) else {
        return refuse(RejectCode::NotFound, format!("no order {order_id} of this account"));
    };
    if let Some(serial) = order.certificate {
        return Ok(CommandResult::Replayed { serial });
    }
    if order.expires_at <= at {
        return refuse(RejectCode::Invalid, format!("order {order_id} has expired"));
    }
    for id in &order.authorizations {
        let a: Option<AcmeAuthz> = get(txn, &key(AUTHZ, id.as_bytes()))?;
        match a {
            Some(a) if matches!(a.status, AuthzStatus::Valid { .. }) && a.expires_at > at => {}
            _ => {
                return refuse(
                    RejectCode::Forbidden,
                    format!("order {order_id} is not ready: authorization {id} is not valid"),
                )
            }
        }
    }
    if cert.requested_by.as_deref() != Some(acct.requester().as_str()) || cert.profile != order.profile {
        return refuse(
            RejectCode::Forbidden,
            "a finalized certificate is recorded for the order's account and profile",
        );
    }
    let result = crate::apply::issue_cert(txn, cert, None)?;
    if result == CommandResult::Applied {
        order.certificate = Some(cert.serial);
        put(txn, &k, &order)?;
    }
    Ok(result)
}

/// What an ACME request was done to, as its audit record names it.
pub(crate) fn audit_object(req: &AcmeRequest) -> String {
    let account = &req.account;
    match &req.op {
        AcmeOp::NewAccount { account } => format!("acme account {} ({})", account.id, account.profile),
        AcmeOp::UpdateAccount { deactivate: true, .. } => format!("acme account {account} deactivated"),
        AcmeOp::UpdateAccount { .. } | AcmeOp::KeyChange { .. } => format!("acme account {account}"),
        AcmeOp::NewOrder { order, .. } => {
            let names: Vec<&str> = order.identifiers.iter().map(|i| i.value.as_str()).collect();
            format!("acme order {} of account {account}: {}", order.id, names.join(" "))
        }
        AcmeOp::Validated {
            authz,
            challenge,
            error,
        } => format!(
            "acme authz {authz} of account {account}: {challenge} {}",
            if error.is_some() { "failed" } else { "valid" }
        ),
        AcmeOp::DeactivateAuthz { authz } => format!("acme authz {authz} of account {account} deactivated"),
        AcmeOp::Finalize { order, cert } => {
            format!(
                "cert {} {} for acme order {order} of account {account}",
                cert.serial, cert.subject
            )
        }
        AcmeOp::Revoke { serial, reason } => format!("cert {serial} ({}) by acme account {account}", reason.name()),
        AcmeOp::RevokeByCertKey { serial, reason } => {
            format!(
                "cert {serial} ({}) by acme request signed with its own key",
                reason.name()
            )
        }
    }
}

impl Command {
    /// The ACME request inside this command (audited or not), if it is one.
    pub fn acme_request(&self) -> Option<&AcmeRequest> {
        match self.inner() {
            Command::Acme { request } => Some(request),
            _ => None,
        }
    }
}

fn read<T: serde::de::DeserializeOwned>(r: &StateReader, k: &[u8]) -> Result<Option<T>, StoreError> {
    let table = r.txn().open_table(SM_ACME)?;
    let value = table.get(k)?.map(|v| v.value().to_vec());
    value.map(|v| decode(&v)).transpose()
}

impl StateReader {
    /// The ACME secret, once set.
    pub fn acme_secret(&self) -> Result<Option<AcmeSecret>, StoreError> {
        read(self, SECRET)
    }

    /// The settings of the directory of `profile`, if an operator set them.
    pub fn acme_directory(&self, profile: &str) -> Result<Option<AcmeDirectory>, StoreError> {
        read(self, &key(DIRECTORY, profile.as_bytes()))
    }

    pub fn acme_eab(&self, kid: &str) -> Result<Option<EabRecord>, StoreError> {
        read(self, &key(EAB, kid.as_bytes()))
    }

    pub fn acme_account(&self, id: &str) -> Result<Option<AcmeAccount>, StoreError> {
        read(self, &key(ACCOUNT, id.as_bytes()))
    }

    /// The account whose key has `thumbprint`.
    pub fn acme_account_by_key(&self, thumbprint: &[u8; 32]) -> Result<Option<AcmeAccount>, StoreError> {
        let table = self.txn().open_table(SM_ACME)?;
        let id = table
            .get(key(ACCOUNT_KEY, thumbprint).as_slice())?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned());
        drop(table);
        match id {
            Some(id) => self.acme_account(&id),
            None => Ok(None),
        }
    }

    pub fn acme_order(&self, id: &str) -> Result<Option<AcmeOrder>, StoreError> {
        read(self, &key(ORDER, id.as_bytes()))
    }

    /// The ids of account `account`'s orders, in id order.
    pub fn acme_orders_of(&self, account: &str) -> Result<Vec<String>, StoreError> {
        let prefix = [ACCOUNT_ORDER, account.as_bytes(), b"/"].concat();
        let table = self.txn().open_table(SM_ACME)?;
        let mut out = Vec::new();
        for row in table.range(prefix.as_slice()..)? {
            let (k, _) = row?;
            let Some(id) = k.value().strip_prefix(prefix.as_slice()) else {
                break;
            };
            out.push(String::from_utf8_lossy(id).into_owned());
        }
        Ok(out)
    }

    pub fn acme_authz(&self, id: &str) -> Result<Option<AcmeAuthz>, StoreError> {
        read(self, &key(AUTHZ, id.as_bytes()))
    }

    /// Whether a state-changing request redeemed this nonce.
    pub fn acme_nonce_redeemed(&self, nonce: &[u8; 24]) -> Result<bool, StoreError> {
        Ok(self
            .txn()
            .open_table(SM_ACME)?
            .get(key(NONCE, nonce).as_slice())?
            .is_some())
    }

    /// The operator's renewal hint for issuer `issuer`, if any.
    pub fn acme_renewal_hint(&self, issuer: &str) -> Result<Option<RenewalHint>, StoreError> {
        read(self, &key(RENEWAL, issuer.as_bytes()))
    }
}

#[cfg(test)]
mod tests;
