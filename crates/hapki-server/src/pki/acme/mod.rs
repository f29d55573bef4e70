//! ACME (RFC 8555) with renewal information (RFC 9773), served by every node: one
//! directory per profile. A request is verified here (JWS, nonce, account), its change
//! goes through the log as one `Command::Acme` that redeems its nonce, and a write a
//! follower forwards carries the signed body for the leader to verify again
//! ([`verify`]). Finalize issues through the same path as `POST /v1/certs`; the order
//! records its certificate in the same entry, so a finalize retried or raced on two
//! nodes issues one certificate.

pub mod error;
mod nonce;
mod objects;
mod validate;
mod verify;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use aws_lc_rs::{hkdf, hmac};
use hapki_api::acme as wire;
use hapki_domain::csr::parse_and_verify;
use hapki_domain::jws::{b64, b64_encode, key_authorization, Jwk};
use hapki_domain::name::San;
use hapki_domain::revocation::RevocationReason;
use hapki_domain::serial::Serial;
use hapki_store::acme::{
    cert_key_account, AccountStatus, AcmeAccount, AcmeAuthz, AcmeDirectory, AcmeOp, AcmeOrder, AcmeRequest, AcmeSecret,
    AuthzStatus, EabRecord, Identifier, RenewalHint,
};
use hapki_store::{Command, CommandResult};
use serde_json::Value;

pub use error::{AcmeError, Kind};
pub use objects::OrderState;
pub use validate::Validation;
pub use verify::{Signer, Verified};

use super::Pki;
use crate::auth::{Action, Caller};
use crate::pki::PkiError;

/// The context the ACME secret is sealed under.
pub const ACME_CONTEXT: &str = "acme-secret";

/// How long a new order and its authorizations may be worked on.
const ORDER_LIFETIME_SECS: u64 = 7 * 86_400;
/// How long an EAB key may bind an account unless the operator says otherwise.
const EAB_DEFAULT_DAYS: u32 = 7;
/// The most identifiers one order names.
const MAX_IDENTIFIERS: usize = 100;
/// How often clients should ask for renewal information again.
pub const RENEWAL_RETRY_SECS: u64 = 6 * 3_600;

/// The keys derived from the ACME secret, held in memory only.
struct AcmeKeys {
    nonce: hmac::Key,
    prk: hkdf::Prk,
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl AcmeKeys {
    fn derive(secret: &[u8]) -> AcmeKeys {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"hapki acme").extract(secret);
        let nonce = prk
            .expand(&[b"nonce"], hmac::HMAC_SHA256)
            .expect("an HMAC key is within HKDF's output")
            .into();
        AcmeKeys { nonce, prk }
    }

    /// The HMAC key of EAB key id `kid`.
    fn eab_key(&self, kid: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        self.prk
            .expand(&[b"eab", kid.as_bytes()], Len(32))
            .and_then(|okm| okm.fill(&mut out))
            .expect("32 bytes are within HKDF's output");
        out
    }
}

/// The node's ACME state: the derived keys once loaded, the nonces POST-as-GET redeemed
/// here, how this node validates challenges, and whether directories need EAB by default.
#[derive(Default)]
pub struct AcmeState {
    keys: RwLock<Option<Arc<AcmeKeys>>>,
    redeemed: nonce::LocalRedeemed,
    validation: RwLock<Validation>,
    dev: AtomicBool,
}

/// A directory as a request reached it: the origin the client used and the profile.
#[derive(Clone, Debug)]
pub struct Directory {
    /// `https://host:port`, as the client wrote it.
    pub origin: String,
    pub profile: String,
}

impl Directory {
    /// The URL of resource `path` of this directory.
    pub fn url(&self, path: &str) -> String {
        format!("{}/acme/{}/{path}", self.origin, self.profile)
    }

    pub fn account_url(&self, id: &str) -> String {
        self.url(&format!("acct/{id}"))
    }
}

/// An ACME answer: the object, where it lives, and the links RFC 8555 asks for.
pub struct Answer<T> {
    pub body: T,
    pub created: bool,
    pub location: Option<String>,
    /// `Link` targets with their relation (`up`, `index`, `alternate`).
    pub links: Vec<(String, &'static str)>,
}

impl<T> Answer<T> {
    fn ok(body: T) -> Answer<T> {
        Answer {
            body,
            created: false,
            location: None,
            links: Vec::new(),
        }
    }
    fn at(mut self, location: String) -> Answer<T> {
        self.location = Some(location);
        self
    }
    fn link(mut self, url: String, rel: &'static str) -> Answer<T> {
        self.links.push((url, rel));
        self
    }
}

/// What a finalized order's certificate download answers.
pub struct Chain {
    pub pem: String,
}

fn random_id(pki: &Pki) -> String {
    b64_encode(&pki.random::<12>())
}

impl Pki {
    /// Sets how this node validates challenges and whether it is a development node
    /// (whose directories need no EAB unless an operator says so).
    pub fn set_acme(&self, validation: Validation, dev: bool) {
        *self.acme.validation.write().expect("acme lock") = validation;
        self.acme.dev.store(dev, Ordering::SeqCst);
    }

    /// The keys derived from the ACME secret; the first use in a cluster makes the secret.
    async fn acme_keys(&self) -> Result<Arc<AcmeKeys>, AcmeError> {
        if let Some(k) = self.acme_keys_loaded()? {
            return Ok(k);
        }
        let secret = self.random::<32>();
        let record = AcmeSecret {
            wrapped: self.keyring.seal(ACME_CONTEXT, &secret),
            created_at: self.now(),
        };
        // Another node may have made it first: then that one is used.
        self.propose_once(Command::SetAcmeSecret { secret: record })
            .await
            .map_err(|e| match e {
                PkiError::Rejected { message, .. } => AcmeError::new(Kind::Unavailable, message),
                other => other.into(),
            })?;
        self.acme_keys_loaded()?
            .ok_or_else(|| AcmeError::new(Kind::ServerInternal, "the ACME secret vanished"))
    }

    /// A fresh nonce.
    pub async fn acme_nonce(&self) -> Result<String, AcmeError> {
        let keys = self.acme_keys().await?;
        Ok(nonce::make(
            &keys.nonce,
            self.now(),
            self.cluster.node_id(),
            self.random(),
        ))
    }

    /// Whether directory `profile` needs an External Account Binding.
    fn requires_eab(&self, profile: &str) -> Result<bool, AcmeError> {
        Ok(match self.reader()?.acme_directory(profile)? {
            Some(d) => d.require_eab,
            None => !self.acme.dev.load(Ordering::SeqCst),
        })
    }

    /// The profile of a directory, which must exist and must not make authorities.
    fn acme_profile(&self, profile: &str) -> Result<Arc<hapki_domain::profile::Profile>, AcmeError> {
        let p = self
            .profile(profile)
            .map_err(|_| AcmeError::not_found(format!("no ACME directory for profile '{profile}'")))?;
        if super::authz::makes_authority(&p) {
            return Err(AcmeError::not_found(format!(
                "profile '{profile}' makes CAs or OCSP responders; it has no ACME directory"
            )));
        }
        Ok(p)
    }

    /// `GET /acme/{profile}/directory`.
    pub fn acme_directory(&self, dir: &Directory) -> Result<wire::Directory, AcmeError> {
        self.acme_profile(&dir.profile)?;
        Ok(wire::Directory {
            new_nonce: dir.url("new-nonce"),
            new_account: dir.url("new-account"),
            new_order: dir.url("new-order"),
            revoke_cert: dir.url("revoke-cert"),
            key_change: dir.url("key-change"),
            renewal_info: dir.url("renewal-info"),
            meta: wire::DirectoryMeta {
                external_account_required: self.requires_eab(&dir.profile)?,
                website: "https://github.com/hapki/hapki".into(),
            },
        })
    }

    /// Proposes `op` for a verified request and maps a refusal.
    async fn acme_propose(&self, v: &Verified, account: &str, op: AcmeOp) -> Result<CommandResult, AcmeError> {
        let caller = v.caller(account);
        let command = Command::Acme {
            request: AcmeRequest {
                nonce: v.nonce,
                at: self.now(),
                account: account.to_string(),
                op,
            },
        };
        let command = self.audited(&caller, command);
        self.check_format(&command)?;
        Ok(self
            .cluster
            .propose(&caller.origin(), command)
            .await
            .map_err(PkiError::from)?)
    }

    /// `POST new-account`.
    pub async fn acme_new_account(&self, dir: &Directory, v: Verified) -> Result<Answer<wire::Account>, AcmeError> {
        self.acme_profile(&dir.profile)?;
        let Signer::Key(jwk) = &v.signer else {
            return Err(AcmeError::malformed("newAccount is signed with a jwk, not a kid"));
        };
        let payload = v.jws.payload_json()?;
        let thumbprint = jwk.thumbprint();
        if let Some(existing) = self.reader()?.acme_account_by_key(&thumbprint)? {
            if existing.profile != dir.profile {
                return Err(AcmeError::unauthorized(format!(
                    "this key belongs to an account of the directory of profile '{}'; use another key here",
                    existing.profile
                )));
            }
            return Ok(Answer::ok(self.account_object(dir, &existing)).at(dir.account_url(&existing.id)));
        }
        if payload.get("onlyReturnExisting").and_then(Value::as_bool) == Some(true) {
            return Err(AcmeError::new(Kind::AccountDoesNotExist, "no account has this key"));
        }
        let contact = contacts(&payload)?;
        let eab_kid = match payload.get("externalAccountBinding") {
            Some(binding) => {
                let binding = hapki_domain::jws::ExternalBinding::parse(binding)?;
                let record = self.reader()?.acme_eab(&binding.kid)?.ok_or_else(|| {
                    AcmeError::unauthorized(format!("no external account key {}", binding.kid))
                })?;
                if record.profile != dir.profile {
                    return Err(AcmeError::unauthorized(format!(
                        "external account key {} is for the directory of profile '{}'",
                        binding.kid, record.profile
                    )));
                }
                let keys = self.acme_keys().await?;
                binding.verify(&keys.eab_key(&binding.kid), &dir.url("new-account"), jwk)?;
                Some(binding.kid)
            }
            None if self.requires_eab(&dir.profile)? => {
                return Err(AcmeError::new(
                    Kind::ExternalAccountRequired,
                    format!(
                        "this directory needs an external account binding: ask an operator for a key (`hapki acme eab create --profile {}`)",
                        dir.profile
                    ),
                ))
            }
            None => None,
        };
        let account = AcmeAccount {
            id: random_id(self),
            profile: dir.profile.clone(),
            jwk: jwk.canonical_json(),
            thumbprint,
            contact,
            status: AccountStatus::Valid,
            eab_kid,
            created_at: self.now(),
        };
        let id = account.id.clone();
        match self.acme_propose(&v, &id, AcmeOp::NewAccount { account }).await? {
            CommandResult::Applied | CommandResult::Replayed { .. } => {}
            CommandResult::Rejected { code, message } => {
                // The same key raced on another node: answer with the account it made.
                if let Some(existing) = self.reader()?.acme_account_by_key(&thumbprint)? {
                    return Ok(Answer::ok(self.account_object(dir, &existing)).at(dir.account_url(&existing.id)));
                }
                return Err(PkiError::Rejected { code, message }.into());
            }
        }
        let account = self.account_of(&id)?;
        let mut answer = Answer::ok(self.account_object(dir, &account)).at(dir.account_url(&id));
        answer.created = true;
        Ok(answer)
    }

    fn account_of(&self, id: &str) -> Result<AcmeAccount, AcmeError> {
        self.reader()?
            .acme_account(id)?
            .ok_or_else(|| AcmeError::new(Kind::AccountDoesNotExist, format!("no account {id}")))
    }

    fn account_object(&self, dir: &Directory, a: &AcmeAccount) -> wire::Account {
        wire::Account {
            status: match a.status {
                AccountStatus::Valid => "valid",
                AccountStatus::Deactivated => "deactivated",
            }
            .into(),
            contact: a.contact.clone(),
            terms_of_service_agreed: true,
            orders: dir.url(&format!("acct/{}/orders", a.id)),
        }
    }

    /// `POST acct/{id}`: read, update the contacts or deactivate.
    pub async fn acme_account(
        &self,
        dir: &Directory,
        id: &str,
        v: Verified,
    ) -> Result<Answer<wire::Account>, AcmeError> {
        let account = v.account_for(id)?;
        if !v.jws.payload.is_empty() {
            let payload = v.jws.payload_json()?;
            let deactivate = match payload.get("status").and_then(Value::as_str) {
                Some("deactivated") => true,
                Some(other) => {
                    return Err(AcmeError::malformed(format!(
                        "an account's status can be set to 'deactivated' only, not '{other}'"
                    )))
                }
                None => false,
            };
            let contact = match payload.get("contact") {
                Some(_) => Some(contacts(&payload)?),
                None => None,
            };
            if deactivate || contact.is_some() {
                self.expect_applied(
                    self.acme_propose(&v, &account.id, AcmeOp::UpdateAccount { contact, deactivate })
                        .await?,
                )?;
            }
        }
        let account = self.account_of(&account.id)?;
        Ok(Answer::ok(self.account_object(dir, &account)).at(dir.account_url(&account.id)))
    }

    /// `POST acct/{id}/orders`: the account's orders.
    pub fn acme_account_orders(&self, dir: &Directory, id: &str, v: Verified) -> Result<Value, AcmeError> {
        let account = v.account_for(id)?;
        let orders: Vec<String> = self
            .reader()?
            .acme_orders_of(&account.id)?
            .into_iter()
            .map(|o| dir.url(&format!("order/{o}")))
            .collect();
        Ok(serde_json::json!({ "orders": orders }))
    }

    fn expect_applied(&self, result: CommandResult) -> Result<(), AcmeError> {
        match result {
            CommandResult::Applied | CommandResult::Replayed { .. } => Ok(()),
            CommandResult::Rejected { code, message } => Err(PkiError::Rejected { code, message }.into()),
        }
    }

    /// `POST key-change`: the payload is a JWS by the new key over the account and old key.
    pub async fn acme_key_change(&self, dir: &Directory, v: Verified) -> Result<Answer<wire::Account>, AcmeError> {
        let account = v.account()?.clone();
        let new_key = verify::key_change(&v, &account)?;
        let thumbprint = new_key.thumbprint();
        if let Some(owner) = self.reader()?.acme_account_by_key(&thumbprint)? {
            return Err(AcmeError::new(
                Kind::Conflict,
                format!("the new key belongs to account {}; choose another key", owner.id),
            )
            .at(dir.account_url(&owner.id)));
        }
        self.expect_applied(
            self.acme_propose(
                &v,
                &account.id,
                AcmeOp::KeyChange {
                    jwk: new_key.canonical_json(),
                    thumbprint,
                },
            )
            .await?,
        )?;
        let account = self.account_of(&account.id)?;
        Ok(Answer::ok(self.account_object(dir, &account)).at(dir.account_url(&account.id)))
    }

    /// `POST new-order`.
    pub async fn acme_new_order(&self, dir: &Directory, v: Verified) -> Result<Answer<wire::Order>, AcmeError> {
        let account = v.account()?.clone();
        let profile = self.acme_profile(&dir.profile)?;
        let payload = v.jws.payload_json()?;
        let listed: Vec<wire::Identifier> =
            serde_json::from_value(payload.get("identifiers").cloned().unwrap_or(Value::Null))
                .map_err(|e| AcmeError::malformed(format!("identifiers: {e}")))?;
        if listed.is_empty() || listed.len() > MAX_IDENTIFIERS {
            return Err(AcmeError::malformed(format!(
                "an order names 1 to {MAX_IDENTIFIERS} identifiers"
            )));
        }
        for field in ["notBefore", "notAfter"] {
            if payload.get(field).is_some() {
                return Err(AcmeError::malformed(format!(
                    "{field} is not taken: the profile '{}' sets the validity",
                    dir.profile
                )));
            }
        }
        let mut identifiers: Vec<Identifier> = Vec::new();
        let mut sans = Vec::new();
        for i in &listed {
            let (identifier, san) = identifier(i)?;
            if !identifiers.contains(&identifier) {
                identifiers.push(identifier);
                sans.push(san);
            }
        }
        identifiers.sort();
        profile
            .check_names(&sans)
            .map_err(|e| AcmeError::new(Kind::RejectedIdentifier, e.to_string()))?;
        let replaces = match payload.get("replaces") {
            Some(Value::String(id)) => {
                let (serial, _) = objects::parse_renewal_id(id)?;
                let cert = self.reader()?.cert(&serial)?;
                if cert.and_then(|c| c.requested_by) != Some(account.requester()) {
                    return Err(AcmeError::malformed(format!(
                        "replaces names {id}, which is not a certificate of this account"
                    )));
                }
                Some(id.clone())
            }
            Some(_) => return Err(AcmeError::malformed("replaces is a string")),
            None => None,
        };
        let now = self.now();
        let expires_at = now + ORDER_LIFETIME_SECS;
        let authorizations: Vec<AcmeAuthz> = identifiers
            .iter()
            .map(|id| {
                let wildcard = id.value.starts_with("*.");
                AcmeAuthz {
                    id: random_id(self),
                    account: account.id.clone(),
                    identifier: Identifier {
                        kind: id.kind.clone(),
                        value: id.value.trim_start_matches("*.").to_string(),
                    },
                    wildcard,
                    token: b64_encode(&self.random::<16>()),
                    status: AuthzStatus::Pending,
                    expires_at,
                }
            })
            .collect();
        let order = AcmeOrder {
            id: random_id(self),
            account: account.id.clone(),
            profile: dir.profile.clone(),
            identifiers,
            authorizations: authorizations.iter().map(|a| a.id.clone()).collect(),
            created_at: now,
            expires_at,
            replaces,
            certificate: None,
        };
        let id = order.id.clone();
        self.expect_applied(
            self.acme_propose(&v, &account.id, AcmeOp::NewOrder { order, authorizations })
                .await?,
        )?;
        let mut answer = self.acme_order_answer(dir, &account, &id)?;
        answer.created = true;
        Ok(answer)
    }

    fn acme_order_answer(
        &self,
        dir: &Directory,
        account: &AcmeAccount,
        id: &str,
    ) -> Result<Answer<wire::Order>, AcmeError> {
        let state = self.order_state(account, id)?;
        Ok(Answer::ok(state.object(dir)).at(dir.url(&format!("order/{id}"))))
    }

    /// An order of `account` with its authorizations, as the replica holds them now.
    fn order_state(&self, account: &AcmeAccount, id: &str) -> Result<OrderState, AcmeError> {
        let reader = self.reader()?;
        let order = reader
            .acme_order(id)?
            .filter(|o| o.account == account.id)
            .ok_or_else(|| AcmeError::not_found(format!("no order {id} of this account")))?;
        let authzs = order
            .authorizations
            .iter()
            .map(|a| {
                reader
                    .acme_authz(a)?
                    .ok_or_else(|| AcmeError::new(Kind::ServerInternal, format!("authorization {a} vanished")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OrderState {
            order,
            authzs,
            now: self.now(),
        })
    }

    /// `POST order/{id}` (POST-as-GET).
    pub fn acme_order(&self, dir: &Directory, id: &str, v: Verified) -> Result<Answer<wire::Order>, AcmeError> {
        let account = v.account()?.clone();
        self.acme_order_answer(dir, &account, id)
    }

    fn authz_of(&self, account: &AcmeAccount, id: &str) -> Result<AcmeAuthz, AcmeError> {
        self.reader()?
            .acme_authz(id)?
            .filter(|a| a.account == account.id)
            .ok_or_else(|| AcmeError::not_found(format!("no authorization {id} of this account")))
    }

    /// `POST authz/{id}`: read, or deactivate.
    pub async fn acme_authz(
        &self,
        dir: &Directory,
        id: &str,
        v: Verified,
    ) -> Result<Answer<wire::Authorization>, AcmeError> {
        let account = v.account()?.clone();
        self.authz_of(&account, id)?;
        if !v.jws.payload.is_empty() {
            let payload = v.jws.payload_json()?;
            match payload.get("status").and_then(Value::as_str) {
                Some("deactivated") => self.expect_applied(
                    self.acme_propose(&v, &account.id, AcmeOp::DeactivateAuthz { authz: id.to_string() })
                        .await?,
                )?,
                Some(other) => {
                    return Err(AcmeError::malformed(format!(
                        "an authorization's status can be set to 'deactivated' only, not '{other}'"
                    )))
                }
                None => {}
            }
        }
        let authz = self.authz_of(&account, id)?;
        Ok(Answer::ok(objects::authz_object(dir, &authz, self.now())).at(dir.url(&format!("authz/{id}"))))
    }

    /// `POST chall/{authz}/{type}`: `{}` asks this node to validate now; an empty payload reads.
    pub async fn acme_challenge(
        &self,
        dir: &Directory,
        authz_id: &str,
        kind: &str,
        v: Verified,
    ) -> Result<Answer<wire::Challenge>, AcmeError> {
        let account = v.account()?.clone();
        let authz = self.authz_of(&account, authz_id)?;
        let offered = objects::challenge_kinds(&authz);
        if !offered.contains(&kind) {
            return Err(AcmeError::not_found(format!(
                "authorization {authz_id} offers {}, not {kind}",
                offered.join(" and ")
            )));
        }
        let now = self.now();
        if !v.jws.payload.is_empty() && authz.status == AuthzStatus::Pending && authz.expires_at > now {
            let jwk = Jwk::from_canonical(&account.jwk)?;
            let key_authz = key_authorization(&authz.token, &jwk);
            let validation = self.acme.validation.read().expect("acme lock").clone();
            let outcome = validation
                .check(kind, &authz.identifier, &authz.token, &key_authz)
                .await;
            if let Err(e) = &outcome {
                tracing::info!(
                    "ACME {kind} of {} for account {} failed: {}",
                    authz.identifier.value,
                    account.id,
                    e.detail
                );
            }
            let result = self
                .acme_propose(
                    &v,
                    &account.id,
                    AcmeOp::Validated {
                        authz: authz_id.to_string(),
                        challenge: kind.to_string(),
                        error: outcome.err().map(|e| objects::encode_problem(&e)),
                    },
                )
                .await?;
            match result {
                // Validated by another request meanwhile: answer with where it stands.
                CommandResult::Rejected {
                    code: hapki_store::RejectCode::Conflict,
                    ..
                } => {}
                other => self.expect_applied(other)?,
            }
        }
        let authz = self.authz_of(&account, authz_id)?;
        let challenge = objects::challenge_object(dir, &authz, kind);
        Ok(Answer::ok(challenge)
            .at(dir.url(&format!("chall/{authz_id}/{kind}")))
            .link(dir.url(&format!("authz/{authz_id}")), "up"))
    }

    /// `POST order/{id}/finalize`.
    pub async fn acme_finalize(
        &self,
        dir: &Directory,
        order_id: &str,
        v: Verified,
    ) -> Result<Answer<wire::Order>, AcmeError> {
        let account = v.account()?.clone();
        let state = self.order_state(&account, order_id)?;
        match state.status() {
            "ready" => {}
            "valid" => return self.acme_order_answer(dir, &account, order_id),
            status => {
                return Err(AcmeError::new(
                    Kind::OrderNotReady,
                    format!("order {order_id} is {status}; it must be ready (every authorization valid) to finalize"),
                ))
            }
        }
        let payload = v.jws.payload_json()?;
        let csr = payload
            .get("csr")
            .and_then(Value::as_str)
            .ok_or_else(|| AcmeError::new(Kind::BadCsr, "the payload has no 'csr'"))?;
        let der = b64("csr", csr).map_err(|e| AcmeError::new(Kind::BadCsr, e.to_string()))?;
        let caller = v.caller(&account.id);
        let csr = self
            .work
            .verify
            .run(&caller.token_id, move || parse_and_verify(&der))
            .await
            .map_err(AcmeError::from)?
            .map_err(|e| AcmeError::new(Kind::BadCsr, e.to_string()))?;
        let mut asked: Vec<Identifier> = csr.sans.iter().map(san_identifier).collect::<Result<_, _>>()?;
        if let Some(cn) = &csr.common_name {
            let cn = San::parse(cn).map_err(|e| AcmeError::new(Kind::BadCsr, e.to_string()))?;
            let cn = san_identifier(&cn)?;
            if !asked.contains(&cn) {
                asked.push(cn);
            }
        }
        asked.sort();
        asked.dedup();
        let ordered: Vec<Identifier> = state
            .order
            .identifiers
            .iter()
            .map(|i| Identifier {
                kind: i.kind.clone(),
                value: i.value.clone(),
            })
            .collect();
        if asked != ordered {
            return Err(AcmeError::new(
                Kind::BadCsr,
                format!(
                    "the CSR names {}, and the order {}; ask for exactly the order's names",
                    names(&asked),
                    names(&ordered)
                ),
            ));
        }
        self.issue_verified(
            &caller,
            &csr,
            &dir.profile,
            None,
            None,
            None,
            super::issue::Recording::AcmeOrder {
                order: order_id,
                nonce: v.nonce,
                account: &account.id,
            },
        )
        .await
        .map_err(|e| AcmeError::from(e).or_kind(Kind::BadCsr))?;
        self.acme_order_answer(dir, &account, order_id)
    }

    /// `POST cert/{serial}`: the certificate and its chain, for the account that ordered it.
    pub fn acme_certificate(&self, serial: &str, v: Verified) -> Result<Chain, AcmeError> {
        let account = v.account()?.clone();
        let serial = Serial::from_hex(serial).map_err(|_| AcmeError::not_found("no such certificate"))?;
        let cert = self
            .reader()?
            .cert(&serial)?
            .filter(|c| c.requested_by.as_deref() == Some(account.requester().as_str()))
            .ok_or_else(|| AcmeError::not_found(format!("no certificate {serial} of this account")))?;
        let issuer = self.issuer(Some(&cert.issuer_id))?;
        let mut pem = hapki_domain::pem::encode(hapki_domain::pem::PemLabel::Certificate, &cert.der);
        for c in issuer.chain_pem() {
            pem.push_str(&c);
        }
        Ok(Chain { pem })
    }

    /// `POST revoke-cert`: by the account that ordered the certificate, or signed with the
    /// certificate's own key (RFC 8555 §7.6).
    pub async fn acme_revoke(&self, v: Verified) -> Result<(), AcmeError> {
        let payload = v.jws.payload_json()?;
        let der = b64(
            "certificate",
            payload
                .get("certificate")
                .and_then(Value::as_str)
                .ok_or_else(|| AcmeError::malformed("the payload has no 'certificate'"))?,
        )?;
        let summary = hapki_domain::issue::summarize(&der).map_err(|e| AcmeError::malformed(e.to_string()))?;
        let serial = summary.serial;
        let reason = match payload.get("reason") {
            None => RevocationReason::Unspecified,
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .and_then(RevocationReason::from_code)
                .ok_or_else(|| {
                    AcmeError::new(Kind::BadRevocationReason, format!("reason {n} is not one hapki takes"))
                })?,
            Some(_) => return Err(AcmeError::new(Kind::BadRevocationReason, "the reason is a number")),
        };
        let cert = self
            .reader()?
            .cert(&serial)?
            .filter(|c| c.der == der)
            .ok_or_else(|| AcmeError::not_found("this cluster did not issue that certificate"))?;
        let (account, op) = match &v.signer {
            Signer::Account(account) => {
                if cert.requested_by.as_deref() != Some(account.requester().as_str()) {
                    return Err(AcmeError::unauthorized(
                        "the certificate was not ordered by this account; sign with that account's key or the certificate's",
                    ));
                }
                (account.id.clone(), AcmeOp::Revoke { serial, reason })
            }
            Signer::Key(jwk) => {
                if Jwk::from_certificate(&der)? != *jwk {
                    return Err(AcmeError::unauthorized(
                        "the jwk is not the certificate's key; sign with the certificate's key or the ordering account's kid",
                    ));
                }
                (cert_key_account(&serial), AcmeOp::RevokeByCertKey { serial, reason })
            }
        };
        if cert.revoked.is_some() {
            return Err(AcmeError::new(
                Kind::AlreadyRevoked,
                format!("certificate {serial} is revoked"),
            ));
        }
        match self.acme_propose(&v, &account, op).await? {
            CommandResult::Rejected {
                code: hapki_store::RejectCode::Conflict,
                message,
            } => Err(AcmeError::new(Kind::AlreadyRevoked, message)),
            other => self.expect_applied(other),
        }
    }

    /// `GET renewal-info/{id}` (RFC 9773): no JWS; anyone may ask.
    pub fn acme_renewal_info(&self, id: &str) -> Result<wire::RenewalInfo, AcmeError> {
        let (serial, key_id) = objects::parse_renewal_id(id)?;
        let reader = self.reader()?;
        let cert = reader
            .cert(&serial)?
            .ok_or_else(|| AcmeError::not_found(format!("no certificate {serial}")))?;
        let issuer = self.issuer(Some(&cert.issuer_id))?;
        if issuer.key_id != key_id {
            return Err(AcmeError::not_found(format!(
                "certificate {serial} was issued by another key than the one {id} names"
            )));
        }
        let hint = reader.acme_renewal_hint(&cert.issuer_id)?;
        Ok(objects::renewal_window(&cert, hint.as_ref(), self.now()))
    }

    /// `POST /v1/acme/eab`: a new EAB key for directory `profile`.
    pub async fn acme_create_eab(
        &self,
        caller: &Caller,
        origin: &str,
        req: &wire::EabRequest,
    ) -> Result<wire::EabKey, PkiError> {
        caller.may(Action::ManageTokens)?;
        self.acme_profile(&req.profile)
            .map_err(|e| PkiError::not_found(e.detail))?;
        let days = req.valid_days.unwrap_or(EAB_DEFAULT_DAYS);
        if days == 0 || days > 366 {
            return Err(PkiError::invalid("an EAB key is valid for 1 to 366 days"));
        }
        let keys = self.acme_keys().await.map_err(|e| PkiError::unavailable(e.detail))?;
        let now = self.now();
        let record = EabRecord {
            kid: random_id(self),
            profile: req.profile.clone(),
            created_at: now,
            created_by: caller.token_id.clone(),
            expires_at: now + u64::from(days) * 86_400,
            bound_to: None,
        };
        let hmac_key = b64_encode(&keys.eab_key(&record.kid));
        let answer = wire::EabKey {
            kid: record.kid.clone(),
            hmac_key,
            profile: record.profile.clone(),
            directory: Directory {
                origin: origin.to_string(),
                profile: record.profile.clone(),
            }
            .url("directory"),
            expires_at: record.expires_at,
        };
        self.propose_as(caller, Command::CreateEab { eab: record }).await?;
        Ok(answer)
    }

    /// `GET /v1/acme/directories/{profile}`.
    pub fn acme_settings(
        &self,
        caller: &Caller,
        origin: &str,
        profile: &str,
    ) -> Result<wire::DirectorySettings, PkiError> {
        caller.may(Action::ManageProfiles)?;
        self.acme_profile(profile).map_err(|e| PkiError::not_found(e.detail))?;
        Ok(wire::DirectorySettings {
            profile: profile.to_string(),
            require_eab: self.requires_eab(profile).map_err(|e| PkiError::internal(e.detail))?,
            directory: Directory {
                origin: origin.to_string(),
                profile: profile.to_string(),
            }
            .url("directory"),
        })
    }

    /// `PUT /v1/acme/directories/{profile}`.
    pub async fn acme_set_settings(
        &self,
        caller: &Caller,
        origin: &str,
        profile: &str,
        req: &wire::DirectorySettings,
    ) -> Result<wire::DirectorySettings, PkiError> {
        caller.may(Action::ManageProfiles)?;
        self.acme_profile(profile).map_err(|e| PkiError::not_found(e.detail))?;
        self.propose_as(
            caller,
            Command::SetAcmeDirectory {
                profile: profile.to_string(),
                directory: AcmeDirectory {
                    require_eab: req.require_eab,
                },
            },
        )
        .await?;
        self.acme_settings(caller, origin, profile)
    }

    /// `POST /v1/acme/suggest-renewal`: renewal windows of `issuer`'s certificates end by
    /// `before` (now when absent).
    pub async fn acme_suggest_renewal(
        &self,
        caller: &Caller,
        req: &wire::SuggestRenewal,
    ) -> Result<wire::RenewalHint, PkiError> {
        caller.may(Action::ManageCa)?;
        let now = self.now();
        let before = req.before.unwrap_or(now);
        self.issuer(Some(&req.issuer))?;
        self.propose_as(
            caller,
            Command::SuggestRenewal {
                issuer: req.issuer.clone(),
                hint: RenewalHint {
                    before,
                    set_at: now,
                    set_by: caller.token_id.clone(),
                },
            },
        )
        .await?;
        Ok(wire::RenewalHint {
            issuer: req.issuer.clone(),
            before,
        })
    }
}

/// The contacts of a payload: `mailto:` URLs only.
fn contacts(payload: &Value) -> Result<Vec<String>, AcmeError> {
    let Some(list) = payload.get("contact") else {
        return Ok(Vec::new());
    };
    let list: Vec<String> =
        serde_json::from_value(list.clone()).map_err(|_| AcmeError::malformed("contact is a list of URLs"))?;
    if list.len() > 10 {
        return Err(AcmeError::new(Kind::InvalidContact, "at most 10 contacts"));
    }
    for c in &list {
        let Some(address) = c.strip_prefix("mailto:") else {
            return Err(AcmeError::new(
                Kind::UnsupportedContact,
                format!("'{c}' is not a mailto: URL; only e-mail contacts are taken"),
            ));
        };
        if address.contains(',') || address.split('@').count() != 2 || address.len() > 254 {
            return Err(AcmeError::new(
                Kind::InvalidContact,
                format!("'{c}' is not one e-mail address"),
            ));
        }
    }
    Ok(list)
}

/// An order's identifier, checked, with the SAN it asks for.
fn identifier(i: &wire::Identifier) -> Result<(Identifier, San), AcmeError> {
    let reject = |m: String| AcmeError::new(Kind::RejectedIdentifier, m);
    match i.kind.as_str() {
        "dns" => {
            let value = i.value.to_ascii_lowercase();
            let san = San::parse(&format!("DNS:{value}")).map_err(|e| reject(e.to_string()))?;
            Ok((
                Identifier {
                    kind: "dns".into(),
                    value,
                },
                san,
            ))
        }
        "ip" => {
            let ip: std::net::IpAddr = i
                .value
                .parse()
                .map_err(|_| reject(format!("'{}' is not an IP address", i.value)))?;
            Ok((
                Identifier {
                    kind: "ip".into(),
                    value: ip.to_string(),
                },
                San::Ip(ip),
            ))
        }
        other => Err(AcmeError::new(
            Kind::UnsupportedIdentifier,
            format!("identifiers of type '{other}' are not taken; use dns or ip"),
        )),
    }
}

fn san_identifier(san: &San) -> Result<Identifier, AcmeError> {
    match san {
        San::Dns(d) => Ok(Identifier {
            kind: "dns".into(),
            value: d.to_ascii_lowercase(),
        }),
        San::Ip(ip) => Ok(Identifier {
            kind: "ip".into(),
            value: ip.to_string(),
        }),
        other => Err(AcmeError::new(
            Kind::BadCsr,
            format!("the CSR asks for {other:?}; ACME orders name DNS names and IP addresses only"),
        )),
    }
}

fn names(ids: &[Identifier]) -> String {
    ids.iter().map(|i| i.value.as_str()).collect::<Vec<_>>().join(", ")
}

impl Verified {
    /// The caller the request acts as: its account, as a requester of its directory.
    fn caller(&self, account: &str) -> Caller {
        match &self.signer {
            Signer::Account(a) => Caller::acme(a, &self.body),
            Signer::Key(jwk) => Caller::acme(
                &AcmeAccount {
                    id: account.to_string(),
                    profile: self.profile.clone(),
                    jwk: jwk.canonical_json(),
                    thumbprint: jwk.thumbprint(),
                    contact: vec![],
                    status: AccountStatus::Valid,
                    eab_kid: None,
                    created_at: 0,
                },
                &self.body,
            ),
        }
    }

    /// The signing account, which must be `id`.
    fn account_for(&self, id: &str) -> Result<&AcmeAccount, AcmeError> {
        let account = self.account()?;
        if account.id != id {
            return Err(AcmeError::unauthorized(
                "a request about an account is signed by that account",
            ));
        }
        Ok(account)
    }

    fn account(&self) -> Result<&AcmeAccount, AcmeError> {
        match &self.signer {
            Signer::Account(a) => Ok(a),
            Signer::Key(_) => Err(AcmeError::malformed("sign with the account's kid, not a jwk")),
        }
    }
}

#[cfg(test)]
mod tests;
