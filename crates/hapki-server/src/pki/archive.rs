//! The key archive: its transport key (made on first use, through the log,
//! and kept unsealed in memory), keys a client sends encrypted to the
//! transport certificate or that `cert generate --archive` made here, each
//! checked against the certificate this cluster issued for it and sealed
//! under the KEK, and listing them. Recovery is `recovery`'s.

use std::sync::Arc;

use base64::Engine;
use der::Encode;
use hapki_api::keys::{ArchiveRequest, ArchivedKeyList, ArchivedKeyView, KeyQuery, TransportCert};
use hapki_domain::issue::summarize;
use hapki_domain::key::{KeyType, SigningKey};
use hapki_domain::pem::{certificates, encode, PemLabel};
use hapki_domain::serial::Serial;
use hapki_domain::time::rfc3339;
use hapki_store::{ArchiveSource, ArchivedKey, CertRecord, Command, Role, TransportRecord};

use super::{Pki, PkiError};
use crate::auth::{Action, Caller};

/// What the transport key's PKCS#8 is sealed under.
pub const TRANSPORT_CONTEXT: &str = "archive-transport-key";
/// Listing pages.
const MAX_LIST: usize = 1000;

/// The sealing context of the archived key of certificate `serial`.
pub fn archived_context(serial: &Serial) -> String {
    format!("archived-key:{}", serial.to_hex())
}

/// The transport key, unsealed, with its certificate.
pub struct Transport {
    pub cert_der: Vec<u8>,
    pkcs8: Vec<u8>,
}

impl Pki {
    /// The transport key, made (and recorded through the log) when the archive first needs it.
    pub async fn transport(&self) -> Result<Arc<Transport>, PkiError> {
        if let Some(t) = self.transport.read().expect("transport lock").clone() {
            return Ok(t);
        }
        if self.reader()?.archive_transport()?.is_none() {
            let internal = crate::tls::internal_ca(self).await?;
            let key_type = KeyType::Rsa3072;
            let key = self
                .work
                .keygen
                .run("archive transport", move || SigningKey::generate(key_type))
                .await??;
            let cluster = self.reader()?.cluster_id()?.unwrap_or_default();
            let cert_der = internal.transport_certificate(&cluster, key.spki())?;
            let record = TransportRecord {
                cert_der,
                wrapped_key: self.keyring.seal(TRANSPORT_CONTEXT, &key.to_pkcs8()?),
            };
            // Another node may have made it first: then that one is used.
            self.propose_once(Command::SetArchiveTransport { transport: record })
                .await?;
        }
        let record = self
            .reader()?
            .archive_transport()?
            .ok_or_else(|| PkiError::internal("the transport key vanished"))?;
        let transport = Arc::new(Transport {
            pkcs8: self.keyring.open(TRANSPORT_CONTEXT, &record.wrapped_key)?,
            cert_der: record.cert_der,
        });
        *self.transport.write().expect("transport lock") = Some(transport.clone());
        Ok(transport)
    }

    /// `GET /v1/keys/transport`.
    pub async fn transport_cert(&self, caller: &Caller) -> Result<TransportCert, PkiError> {
        caller.may(Action::ArchiveKey)?;
        let transport = self.transport().await?;
        let internal = self
            .reader()?
            .internal_ca()?
            .ok_or_else(|| PkiError::internal("no internal CA"))?;
        Ok(TransportCert {
            certificate: encode(PemLabel::Certificate, &transport.cert_der),
            chain: vec![encode(PemLabel::Certificate, &internal.cert_der)],
            format: "JWE compact serialization, alg RSA-OAEP-256, enc A256GCM, of the PKCS#8 DER".into(),
        })
    }

    /// Whether `caller` may archive (or list) the key of `cert`: a requester only for the
    /// certificates it asked for.
    pub(super) fn authorize_archive(&self, caller: &Caller, cert: &CertRecord) -> Result<(), PkiError> {
        caller.may(Action::ArchiveKey)?;
        if caller.role == Role::Requester && cert.requested_by.as_deref() != Some(caller.token_id.as_str()) {
            return Err(PkiError::forbidden(format!(
                "a requester token archives only the keys of certificates it asked for; certificate {} was not issued to token {}",
                cert.serial, caller.token_id
            )));
        }
        Ok(())
    }

    /// `POST /v1/keys`: opens the key sent encrypted to the transport certificate, checks
    /// that it is the key of the certificate (one this cluster issued), and archives it.
    pub async fn archive_key(&self, caller: &Caller, req: &ArchiveRequest) -> Result<ArchivedKeyView, PkiError> {
        caller.may(Action::ArchiveKey)?;
        let der = certificates(req.certificate.as_bytes())?
            .into_iter()
            .next()
            .ok_or_else(|| PkiError::invalid("certificate: no PEM certificate found"))?;
        let serial = summarize(&der)?.serial;
        let cert = self.reader()?.cert(&serial)?.filter(|c| c.der == der).ok_or_else(|| {
            PkiError::not_found(format!(
                "certificate {serial} was not issued by this cluster: only keys of its own certificates are archived"
            ))
        })?;
        self.authorize_archive(caller, &cert)?;
        if self.reader()?.archived_key(&serial)?.is_some() {
            return Err(PkiError::conflict(format!(
                "the key of certificate {serial} is already archived"
            )));
        }
        let transport = self.transport().await?;
        let jwe = req.encrypted_key.clone();
        let spki = summarize(&cert.der)?
            .spki
            .to_der()
            .map_err(|e| PkiError::internal(e.to_string()))?;
        let pkcs8 = self
            .work
            .verify
            .run(&caller.token_id, move || -> Result<Vec<u8>, PkiError> {
                let pkcs8 = hapki_domain::jwe::decrypt(&transport.pkcs8, &jwe)?;
                let key = SigningKey::from_pkcs8(&pkcs8)
                    .map_err(|e| PkiError::invalid(format!("the encrypted key is not a PKCS#8 private key: {e}")))?;
                if key.spki_der() != spki.as_slice() {
                    return Err(PkiError::invalid(
                        "the key is not the key of the certificate: its public key differs",
                    ));
                }
                Ok(pkcs8)
            })
            .await??;
        let key = self.archived_record(caller, &serial, &pkcs8, ArchiveSource::Client)?;
        self.propose_as(caller, Command::ArchiveKey { key: key.clone() })
            .await?;
        Ok(view(&key, &cert))
    }

    /// The archive record of `pkcs8` for certificate `serial`, sealed under the current KEK.
    pub(super) fn archived_record(
        &self,
        caller: &Caller,
        serial: &Serial,
        pkcs8: &[u8],
        source: ArchiveSource,
    ) -> Result<ArchivedKey, PkiError> {
        Ok(ArchivedKey {
            serial: *serial,
            wrapped_key: self.keyring.seal(&archived_context(serial), pkcs8),
            archived_at: self.now(),
            archived_by: caller.token_id.clone(),
            archived_by_name: caller.name.clone(),
            source,
        })
    }

    /// `GET /v1/keys`: the archived keys `q` finds; a requester sees those of its own
    /// certificates only.
    pub fn archived_keys(&self, caller: &Caller, q: &KeyQuery) -> Result<ArchivedKeyList, PkiError> {
        caller.may(Action::ArchiveKey)?;
        let limit = q.limit.unwrap_or(100);
        if limit == 0 || limit > MAX_LIST {
            return Err(PkiError::invalid(format!("limit must be between 1 and {MAX_LIST}")));
        }
        let serial = q.serial.as_deref().map(Serial::from_hex).transpose()?;
        let source = match q.source.as_deref() {
            None => None,
            Some("generated") => Some(ArchiveSource::Generated),
            Some("client") => Some(ArchiveSource::Client),
            Some(other) => {
                return Err(PkiError::invalid(format!(
                    "source '{other}' is not generated or client"
                )))
            }
        };
        let subject = q.subject.as_ref().map(|s| s.to_ascii_lowercase());
        let reader = self.reader()?;
        let mut keys = Vec::new();
        for key in reader.archived_keys()? {
            let Some(cert) = reader.cert(&key.serial)? else {
                continue;
            };
            let visible = caller.role != Role::Requester || cert.requested_by.as_deref() == Some(&caller.token_id);
            let wanted = visible
                && serial.is_none_or(|s| s == key.serial)
                && source.is_none_or(|s| s == key.source)
                && q.by.as_ref().is_none_or(|b| b == &key.archived_by)
                && subject
                    .as_ref()
                    .is_none_or(|s| cert.subject.to_ascii_lowercase().contains(s));
            if wanted {
                keys.push(view(&key, &cert));
                if keys.len() == limit {
                    break;
                }
            }
        }
        Ok(ArchivedKeyList { keys })
    }

    /// The PKCS#12 of the archived key of `cert`: key, certificate and the issuer's chain.
    pub(super) async fn archived_pkcs12(
        &self,
        caller: &Caller,
        cert: &CertRecord,
        key: &ArchivedKey,
        password: String,
    ) -> Result<String, PkiError> {
        let pkcs8 = self.keyring.open(&archived_context(&key.serial), &key.wrapped_key)?;
        let issuer = self.issuer(Some(&cert.issuer_id))?;
        let mut chain = vec![cert.der.clone(), issuer.record.cert_der.clone()];
        chain.extend(issuer.record.chain_der.iter().cloned());
        let name = cert.subject.clone();
        let p12 = self
            .work
            .keygen
            .run(&caller.token_id, move || {
                hapki_domain::pkcs12::write(&name, &pkcs8, &chain, &password)
            })
            .await??;
        Ok(base64::engine::general_purpose::STANDARD.encode(p12))
    }
}

/// An archived key as listed.
fn view(key: &ArchivedKey, cert: &CertRecord) -> ArchivedKeyView {
    ArchivedKeyView {
        serial: key.serial.to_hex(),
        subject: cert.subject.clone(),
        issuer_id: cert.issuer_id.clone(),
        profile: cert.profile.clone(),
        archived_at: rfc3339(key.archived_at),
        archived_by: key.archived_by.clone(),
        archived_by_name: key.archived_by_name.clone(),
        source: key.source.name().into(),
    }
}
