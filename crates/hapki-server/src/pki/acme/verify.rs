//! Who signed an ACME request, checked: the JWS over the URL it was sent to, a nonce
//! this cluster made and nobody redeemed, and the account key (or, for a new account,
//! the key in the header). The leader runs the same checks on a write a follower
//! forwards, from the signed body that travels with it.

use std::sync::Arc;

use hapki_domain::jws::{Jwk, Jws, KeyRef};
use hapki_store::acme::{cert_key_account, requester, AccountStatus, AcmeAccount, AcmeOp};
use hapki_store::Command;

use super::error::{AcmeError, Kind};
use super::{nonce, AcmeKeys, Directory, ACME_CONTEXT};
use crate::pki::{Pki, PkiError};

/// Who signed a request.
#[derive(Clone, Debug)]
pub enum Signer {
    /// An existing account, by its `kid`.
    Account(AcmeAccount),
    /// A key given in the header (new accounts).
    Key(Jwk),
}

/// A request whose signature and nonce checked.
#[derive(Clone, Debug)]
pub struct Verified {
    pub jws: Jws,
    /// The nonce's body, redeemed by the change the request makes.
    pub nonce: [u8; 24],
    pub signer: Signer,
    /// The body as received, for the leader to verify again.
    pub body: Vec<u8>,
    pub profile: String,
}

impl Pki {
    /// The keys derived from the ACME secret, if the state holds one (no write).
    pub(super) fn acme_keys_loaded(&self) -> Result<Option<Arc<AcmeKeys>>, PkiError> {
        if let Some(k) = self.acme.keys.read().expect("acme lock").clone() {
            return Ok(Some(k));
        }
        let Some(record) = self.reader()?.acme_secret()? else {
            return Ok(None);
        };
        let secret = self
            .keyring
            .open(ACME_CONTEXT, &record.wrapped)
            .map_err(|e| PkiError::internal(format!("the ACME secret does not open: {e}")))?;
        let keys = Arc::new(AcmeKeys::derive(&secret));
        *self.acme.keys.write().expect("acme lock") = Some(keys.clone());
        Ok(Some(keys))
    }

    /// Verifies a POST of `body` to `url` in directory `dir`.
    pub async fn acme_verify(&self, dir: &Directory, url: &str, body: &[u8]) -> Result<Verified, AcmeError> {
        let jws = Jws::parse(body)?;
        if jws.url != url {
            return Err(AcmeError::unauthorized(format!(
                "the protected header's url is {}, and the request went to {url}",
                jws.url
            )));
        }
        let keys = self.acme_keys().await?;
        let now = self.now();
        let body_nonce = nonce::check(&keys.nonce, jws.nonce.as_deref(), now)?;
        if self.reader()?.acme_nonce_redeemed(&body_nonce)? {
            return Err(AcmeError::new(
                Kind::BadNonce,
                "the nonce was used; get a new one and retry",
            ));
        }
        let signer = match &jws.key {
            KeyRef::Jwk(k) => {
                jws.verify(k)?;
                Signer::Key(k.clone())
            }
            KeyRef::Kid(kid) => {
                let id = kid.strip_prefix(&dir.url("acct/")).ok_or_else(|| {
                    AcmeError::unauthorized(format!("kid {kid} is not an account URL of this directory"))
                })?;
                let account = self
                    .reader()?
                    .acme_account(id)?
                    .filter(|a| a.profile == dir.profile)
                    .ok_or_else(|| AcmeError::new(Kind::AccountDoesNotExist, format!("no account {id} here")))?;
                if account.status != AccountStatus::Valid {
                    return Err(AcmeError::unauthorized(format!("account {id} is deactivated")));
                }
                jws.verify(&Jwk::from_canonical(&account.jwk)?)?;
                Signer::Account(account)
            }
        };
        // Once here whatever the request does; a change redeems it cluster-wide too.
        if !self.acme.redeemed.redeem(body_nonce, now) {
            return Err(AcmeError::new(
                Kind::BadNonce,
                "the nonce was used; get a new one and retry",
            ));
        }
        Ok(Verified {
            jws,
            nonce: body_nonce,
            signer,
            body: body.to_vec(),
            profile: dir.profile.clone(),
        })
    }

    /// The leader's check of an ACME write a member forwards with the signed `body`: the
    /// signature and nonce verify, the command is the ACME change of the account that
    /// signed, redeeming that nonce, and a key change carries the new key's own proof.
    pub(crate) fn authorize_forwarded_acme(&self, body: &[u8], command: &Command) -> Result<(), PkiError> {
        let refuse = |m: &str| PkiError::forbidden(format!("a forwarded ACME request: {m}"));
        let (actor, request) = match command {
            Command::Audited { meta, command } => match command.as_ref() {
                Command::Acme { request } => (meta.actor.as_deref(), request),
                _ => return Err(refuse("it authorizes ACME changes only")),
            },
            _ => return Err(refuse("it must be audited")),
        };
        if actor != Some(requester(&request.account).as_str()) {
            return Err(refuse("the audit record must name the account that signed"));
        }
        let jws = Jws::parse(body).map_err(|e| refuse(&e.to_string()))?;
        let keys = self
            .acme_keys_loaded()?
            .ok_or_else(|| refuse("the cluster has no ACME secret"))?;
        let body_nonce = nonce::check(&keys.nonce, jws.nonce.as_deref(), self.now()).map_err(|e| refuse(&e.detail))?;
        if body_nonce != request.nonce {
            return Err(refuse("the command redeems another nonce than the request's"));
        }
        let account = match &jws.key {
            KeyRef::Jwk(k) => match &request.op {
                AcmeOp::NewAccount { account }
                    if account.thumbprint == k.thumbprint() && account.id == request.account =>
                {
                    jws.verify(k).map_err(|e| refuse(&e.to_string()))?;
                    return Ok(());
                }
                AcmeOp::RevokeByCertKey { serial, .. } if request.account == cert_key_account(serial) => {
                    let cert = self
                        .reader()?
                        .cert(serial)?
                        .ok_or_else(|| refuse("no such certificate"))?;
                    let key = Jwk::from_certificate(&cert.der).map_err(|e| refuse(&e.to_string()))?;
                    if key != *k {
                        return Err(refuse("the jwk is not the key of the certificate it revokes"));
                    }
                    jws.verify(k).map_err(|e| refuse(&e.to_string()))?;
                    return Ok(());
                }
                _ => {
                    return Err(refuse(
                        "a request signed with a jwk creates its account or revokes its certificate only",
                    ))
                }
            },
            KeyRef::Kid(kid) => {
                let id = kid.rsplit_once("/acct/").map(|(_, id)| id).unwrap_or_default();
                if id != request.account {
                    return Err(refuse("the command is for another account than the one that signed"));
                }
                let account = self
                    .reader()?
                    .acme_account(id)?
                    .ok_or_else(|| refuse("no such account"))?;
                let key = Jwk::from_canonical(&account.jwk).map_err(|e| refuse(&e.to_string()))?;
                jws.verify(&key).map_err(|e| refuse(&e.to_string()))?;
                account
            }
        };
        if let AcmeOp::KeyChange { thumbprint, .. } = &request.op {
            let verified = Verified {
                jws,
                nonce: body_nonce,
                signer: Signer::Account(account.clone()),
                body: body.to_vec(),
                profile: account.profile.clone(),
            };
            let new_key = key_change(&verified, &account).map_err(|e| refuse(&e.detail))?;
            if new_key.thumbprint() != *thumbprint {
                return Err(refuse("the key change names another key than the one that signed it"));
            }
        }
        if matches!(request.op, AcmeOp::NewAccount { .. } | AcmeOp::RevokeByCertKey { .. }) {
            return Err(refuse(
                "a new account or a revocation by a certificate's key is signed with a jwk",
            ));
        }
        Ok(())
    }
}

/// The new key of a key change (RFC 8555 §7.3.5), once its inner JWS checks: signed by
/// the new key, for the same URL, with no nonce, naming this account and its old key.
pub(super) fn key_change(v: &Verified, account: &AcmeAccount) -> Result<Jwk, AcmeError> {
    let inner = Jws::parse(&v.jws.payload)?;
    let KeyRef::Jwk(new_key) = &inner.key else {
        return Err(AcmeError::malformed(
            "the inner JWS of a key change carries the new key as jwk",
        ));
    };
    if inner.nonce.is_some() {
        return Err(AcmeError::malformed("the inner JWS of a key change has no nonce"));
    }
    if inner.url != v.jws.url {
        return Err(AcmeError::malformed("the inner JWS of a key change names another url"));
    }
    inner.verify(new_key)?;
    let payload = inner.payload_json()?;
    let names_account = payload
        .get("account")
        .and_then(|a| a.as_str())
        .and_then(|a| a.rsplit_once("/acct/"))
        .is_some_and(|(_, id)| id == account.id);
    if !names_account {
        return Err(AcmeError::malformed("the key change names another account"));
    }
    let old = payload
        .get("oldKey")
        .ok_or_else(|| AcmeError::malformed("the key change has no oldKey"))?;
    if Jwk::from_json(old)? != Jwk::from_canonical(&account.jwk)? {
        return Err(AcmeError::unauthorized("oldKey is not the account's key"));
    }
    Ok(new_key.clone())
}
