//! Issuance: a verified CSR (or a key generated here) is judged by its profile,
//! signed with the issuer's in-memory key outside the state machine, and
//! recorded through the log. A serial that collides is drawn again.

use hapki_domain::csr::{parse_and_verify, VerifiedCsr};
use hapki_domain::issue::{build_certificate, CertSpec};
use hapki_domain::key::SigningKey;
use hapki_domain::name::{common_name, display_name, San, SubjectSpec};
use hapki_domain::pem::{encode, PemLabel};
use hapki_domain::profile::SubjectSpecOrRaw;
use hapki_domain::serial::Serial;
use hapki_store::{ArchiveSource, CertRecord, Command, CommandResult, RejectCode};

use super::ca::{publication, BACKDATE_SECS};
use super::Pki;
use crate::auth::{Action, Caller};
use crate::pki::PkiError;

/// Draws of a new serial before giving up (a collision of 126 random bits is not expected at all).
const SERIAL_ATTEMPTS: usize = 3;

use base64::Engine;
use hapki_api::certs::Generated;
pub use hapki_api::certs::{GenerateRequest, IssueRequest, Issued};

impl Pki {
    /// Issues a certificate for a CSR. With an idempotency key seen before, the certificate
    /// issued then is returned and nothing new is issued.
    pub async fn issue(
        &self,
        caller: &Caller,
        req: &IssueRequest,
        idempotency_key: Option<[u8; 32]>,
    ) -> Result<Issued, PkiError> {
        caller.may(Action::Issue)?;
        if let Some(first) = self.replayed(idempotency_key)? {
            return Ok(first);
        }
        let pem = req.csr.clone();
        let csr = self
            .work
            .verify
            .run(&caller.token_id, move || parse_and_verify(pem.as_bytes()))
            .await??;
        self.issue_verified(
            caller,
            &csr,
            &req.profile,
            req.issuer.as_deref(),
            requested_validity(req.validity_days, req.ttl.as_deref())?,
            idempotency_key,
            Recording::Cert,
        )
        .await
    }

    /// The certificate an idempotency key already issued, if any.
    fn replayed(&self, idempotency_key: Option<[u8; 32]>) -> Result<Option<Issued>, PkiError> {
        match idempotency_key {
            Some(key) => match self.reader()?.idempotent_serial(&key, self.now())? {
                Some(serial) => Ok(Some(self.issued_from_store(&serial)?)),
                None => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// An issued certificate as stored, with its chain.
    fn issued_from_store(&self, serial: &Serial) -> Result<Issued, PkiError> {
        let cert = self
            .reader()?
            .cert(serial)?
            .ok_or_else(|| PkiError::internal(format!("certificate {serial} vanished")))?;
        let issuer = self.issuer(Some(&cert.issuer_id))?;
        Ok(Issued {
            serial: serial.to_hex(),
            issuer_id: cert.issuer_id,
            profile: cert.profile,
            subject: cert.subject,
            not_before: cert.not_before,
            not_after: cert.not_after,
            certificate: encode(PemLabel::Certificate, &cert.der),
            chain: issuer.chain_pem(),
        })
    }

    /// Generates a key here and issues a certificate for it; answers the key as PKCS#8 PEM or
    /// in a PKCS#12 file, as `req.format` asks. A replayed idempotency key is refused: the key
    /// generated the first time is not kept.
    pub async fn generate(
        &self,
        caller: &Caller,
        req: &GenerateRequest,
        idempotency_key: Option<[u8; 32]>,
    ) -> Result<Generated, PkiError> {
        caller.may(Action::Issue)?;
        let pkcs12 = match req.format.as_deref() {
            None | Some("pem") => false,
            Some("pkcs12") => true,
            Some(other) => return Err(PkiError::invalid(format!("format '{other}' is not pem or pkcs12"))),
        };
        if pkcs12 && req.password.as_deref().unwrap_or("").is_empty() {
            return Err(PkiError::invalid("a PKCS#12 file needs a password (--password)"));
        }
        let (issued, key) = self.generate_key_and_cert(caller, req, idempotency_key).await?;
        let mut out = Generated {
            issued,
            private_key: None,
            pkcs12: None,
        };
        if pkcs12 {
            let issued = &out.issued;
            let mut chain = hapki_domain::pem::certificates(issued.certificate.as_bytes())?;
            let issuer = self.issuer(Some(&issued.issuer_id))?;
            chain.push(issuer.record.cert_der.clone());
            chain.extend(issuer.record.chain_der.iter().cloned());
            let name = issued.subject.clone();
            let password = req.password.clone().unwrap_or_default();
            let p12 = self
                .work
                .keygen
                .run(&caller.token_id, move || {
                    hapki_domain::pkcs12::write(&name, &key, &chain, &password)
                })
                .await??;
            out.pkcs12 = Some(base64::engine::general_purpose::STANDARD.encode(p12));
        } else {
            out.private_key = Some(encode(PemLabel::PrivateKey, &key));
        }
        Ok(out)
    }

    /// The key (PKCS#8 DER) and certificate of [`Pki::generate`].
    async fn generate_key_and_cert(
        &self,
        caller: &Caller,
        req: &GenerateRequest,
        idempotency_key: Option<[u8; 32]>,
    ) -> Result<(Issued, Vec<u8>), PkiError> {
        if let Some(first) = self.replayed(idempotency_key)? {
            return Err(PkiError::conflict(format!(
                "this idempotency key already issued certificate {}; its private key was returned then and is not kept",
                first.serial
            )));
        }
        // Refused requests cost no key generation.
        let profile = self.profile(&req.profile)?;
        let issuer = self.issuer(req.issuer.as_deref())?;
        self.authorize_issue(caller, &profile, &issuer.record.id)?;
        let key_type = req.key_type;
        let key = self
            .work
            .keygen
            .run(&caller.token_id, move || SigningKey::generate(key_type))
            .await??;
        let sans = req.sans.iter().map(|s| San::parse(s)).collect::<Result<Vec<_>, _>>()?;
        let subject = match &req.common_name {
            Some(cn) => SubjectSpec::cn(cn).to_name()?,
            None => SubjectSpec::default().to_name()?,
        };
        let csr = VerifiedCsr {
            common_name: common_name(&subject),
            subject,
            spki: key.spki(),
            key: key.kind(),
            sans,
            challenge_password: None,
        };
        let pkcs8 = key.to_pkcs8()?;
        let issued = self
            .issue_verified(
                caller,
                &csr,
                &req.profile,
                req.issuer.as_deref(),
                requested_validity(req.validity_days, req.ttl.as_deref())?,
                idempotency_key,
                match req.archive {
                    true => Recording::Archived(pkcs8.as_slice()),
                    false => Recording::Cert,
                },
            )
            .await?;
        Ok((issued, pkcs8))
    }

    /// Issues for a verified request, recorded as `recording` says.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn issue_verified(
        &self,
        caller: &Caller,
        csr: &VerifiedCsr,
        profile_name: &str,
        issuer_id: Option<&str>,
        validity_secs: Option<u64>,
        idempotency_key: Option<[u8; 32]>,
        recording: Recording<'_>,
    ) -> Result<Issued, PkiError> {
        let profile = self.profile(profile_name)?;
        let issuer = self.issuer(issuer_id)?;
        self.authorize_issue(caller, &profile, &issuer.record.id)?;
        let approved = profile.evaluate(csr, validity_secs)?;
        let reader = self.reader()?;
        let settings = reader.settings()?;
        let partitions = if profile.ca {
            None
        } else {
            self.crl_partitions(&reader, &issuer.record.id)?
        };
        drop(reader);
        let base = settings.publication_base_url.clone();
        let now = self.now();
        if issuer.record.not_after <= now {
            return Err(PkiError::conflict(format!(
                "issuer {} expired; create or import a new CA",
                issuer.record.id
            )));
        }
        let subject = match approved.subject {
            SubjectSpecOrRaw::FromRequest(name) => name,
            SubjectSpecOrRaw::Built(spec) => spec.to_name()?,
        };
        let mut spec = CertSpec {
            serial: self.next_serial(&settings).await?,
            not_before: now - BACKDATE_SECS,
            // Never beyond the issuer's own validity.
            not_after: (now + approved.validity_secs).min(issuer.record.not_after),
            subject,
            spki: csr.spki.clone(),
            sans: approved.sans,
            key_usage: approved.key_usage,
            ext_key_usage: profile.ext_key_usage.clone(),
            ca: profile.ca,
            path_len: profile.path_len,
            name_constraints: approved.name_constraints,
            ocsp_no_check: profile.ocsp_no_check,
            publication: publication(&base, &issuer.record.id),
        };
        // What the store indexes comes from the spec the certificate was built from:
        // no need to parse the certificate again.
        let subject_text = display_name(&spec.subject);
        let common_name = common_name(&spec.subject);
        let sans: Vec<String> = spec.sans.iter().map(|s| s.to_string()).collect();
        for _ in 0..SERIAL_ATTEMPTS {
            if let Some(n) = partitions {
                spec.publication.crl_url = Some(super::partitions::partition_crl_url(
                    &base,
                    &issuer.record.id,
                    &spec.serial,
                    n,
                ));
            }
            let der = build_certificate(Some(&issuer.view()), None, &spec)?;
            let record = CertRecord {
                serial: spec.serial,
                issuer_id: issuer.record.id.clone(),
                profile: profile.name.clone(),
                der: der.clone(),
                subject: subject_text.clone(),
                common_name: common_name.clone(),
                sans: sans.clone(),
                not_before: spec.not_before,
                not_after: spec.not_after,
                issued_at: now,
                revoked: None,
                requested_by: Some(caller.token_id.clone()),
            };
            let command = match recording {
                Recording::Archived(pkcs8) => Command::IssueAndArchive {
                    key: self.archived_record(caller, &spec.serial, pkcs8, ArchiveSource::Generated)?,
                    cert: record,
                    idempotency_key,
                },
                Recording::Cert => Command::IssueCert {
                    cert: record,
                    idempotency_key,
                },
                Recording::AcmeOrder { order, nonce, account } => Command::Acme {
                    request: hapki_store::acme::AcmeRequest {
                        nonce,
                        at: now,
                        account: account.to_string(),
                        op: hapki_store::acme::AcmeOp::Finalize {
                            order: order.to_string(),
                            cert: record,
                        },
                    },
                },
            };
            let command = self.audited(caller, command);
            self.check_format(&command)?;
            match self.cluster.propose(&caller.origin(), command).await? {
                CommandResult::Replayed { serial } => {
                    // A concurrent retry with the same key won: answer with its certificate.
                    self.cluster.linearizable().await?;
                    return self.issued_from_store(&serial);
                }
                CommandResult::Applied => {
                    metrics::counter!(
                        crate::metrics::ISSUED,
                        "issuer" => issuer.record.id.clone(),
                        "profile" => profile.name.clone()
                    )
                    .increment(1);
                    return Ok(Issued {
                        serial: spec.serial.to_hex(),
                        issuer_id: issuer.record.id.clone(),
                        profile: profile.name.clone(),
                        subject: subject_text,
                        not_before: spec.not_before,
                        not_after: spec.not_after,
                        certificate: encode(PemLabel::Certificate, &der),
                        chain: issuer.chain_pem(),
                    });
                }
                CommandResult::Rejected {
                    code: RejectCode::Conflict,
                    ..
                } => {
                    spec.serial = self.next_serial(&settings).await?;
                }
                CommandResult::Rejected { code, message } => return Err(PkiError::Rejected { code, message }),
            }
        }
        Err(PkiError::internal("could not find a free serial number"))
    }
}

/// How an issued certificate is recorded.
#[derive(Clone, Copy)]
pub(super) enum Recording<'a> {
    /// On its own.
    Cert,
    /// With its private key (PKCS#8) archived in the same log entry.
    Archived(&'a [u8]),
    /// As the certificate of ACME order `order`, redeeming the finalize request's nonce.
    AcmeOrder {
        order: &'a str,
        nonce: [u8; 24],
        account: &'a str,
    },
}

/// The validity a request asks for, in seconds: `validity_days` or `ttl`, not both.
fn requested_validity(validity_days: Option<u32>, ttl: Option<&str>) -> Result<Option<u64>, PkiError> {
    match (validity_days, ttl) {
        (Some(_), Some(_)) => Err(PkiError::invalid("give validity_days or ttl, not both")),
        (Some(days), None) => Ok(Some(u64::from(days) * 86_400)),
        (None, Some(ttl)) => super::parse_duration(ttl).map(Some),
        (None, None) => Ok(None),
    }
}
