//! Certificate authorities: a new root, an intermediate (CSR now, certificate
//! later), an import from PKCS#12, and the delegated OCSP signer each issuer gets.

use hapki_domain::issue::{build_certificate, key_id, summarize, verify_issued_by, CertSpec, IssuerView, Publication};
use hapki_domain::key::{KeyType, SigningKey};
use hapki_domain::name::{Attr, SubjectSpec};
use hapki_domain::pem::{self, encode, PemLabel};
use hapki_domain::profile::{ExtKeyUsage, KeyUsageBit};
use hapki_domain::serial::Serial;
use hapki_store::{Command, IssuerRecord, OcspSignerRecord};

use hapki_cluster::Origin;

use super::Pki;
use crate::auth::{Action, Caller};
use crate::pki::PkiError;

/// The friendly names of an export's entries, as Dogtag's clone-prepare names them.
const CA_ALIAS: &str = "caSigningCert";
const OCSP_ALIAS: &str = "ocspSigningCert";
const AUDIT_ALIAS: &str = "auditSigningCert";

/// Backdating of notBefore, for relying parties with a slow clock.
pub const BACKDATE_SECS: u64 = 60;
/// Validity of a delegated OCSP signing certificate.
const OCSP_SIGNER_DAYS: u64 = 365;

use hapki_api::ca::{self as wire, DefaultIssuer, IssuerList, IssuerState};
pub use hapki_api::ca::{ImportRequest, IntermediateCsr, RootRequest};

/// Where relying parties find an issuer's CRL, OCSP and certificate.
pub fn publication(base: &str, issuer_id: &str) -> Publication {
    Publication {
        crl_url: Some(format!("{base}/v1/issuers/{issuer_id}/crl")),
        ocsp_url: Some(format!("{base}/ocsp")),
        ca_issuers_url: Some(format!("{base}/v1/issuers/{issuer_id}/ca.der")),
    }
}

fn subject_of(req: &RootRequest) -> Result<SubjectSpec, PkiError> {
    let mut spec = match &req.subject {
        Some(s) => SubjectSpec::parse(s)?,
        None => SubjectSpec::default(),
    };
    spec.0.retain(|(a, _)| *a != Attr::Cn);
    spec.0.push((Attr::Cn, req.common_name.clone()));
    Ok(spec)
}

fn issuer_id(spki: &spki::SubjectPublicKeyInfoOwned) -> String {
    hex::encode(&key_id(spki)[..8])
}

impl Pki {
    /// Creates a self-signed root CA, makes it available to every node and publishes its
    /// first (empty) CRL.
    pub async fn init_root(&self, caller: &Caller, req: &RootRequest) -> Result<wire::IssuerView, PkiError> {
        caller.may(Action::ManageCa)?;
        if req.validity_days == 0 || req.validity_days > 36_500 {
            return Err(PkiError::invalid("validity_days must be between 1 and 36500"));
        }
        let subject = subject_of(req)?.to_name()?;
        let key = SigningKey::generate(req.key_type)?;
        let now = self.now();
        let validity = (now - BACKDATE_SECS, now + u64::from(req.validity_days) * 86_400);
        let spec = CertSpec::self_signed_ca(Serial::from_random(self.random()), validity, subject, key.spki(), None);
        let cert_der = build_certificate(None, Some(&key), &spec)?;
        let record = self.issuer_record(&key, cert_der, vec![], now)?;
        self.propose_as(
            caller,
            Command::AddIssuer {
                issuer: record.clone(),
                make_default: req.default,
            },
        )
        .await?;
        self.created(record).await
    }

    /// Creates an intermediate's key and CSR; it can sign once its certificate is installed.
    pub async fn init_intermediate(&self, caller: &Caller, req: &RootRequest) -> Result<IntermediateCsr, PkiError> {
        caller.may(Action::ManageCa)?;
        let subject = subject_of(req)?.to_name()?;
        let key = SigningKey::generate(req.key_type)?;
        let record = self.pending_issuer(&key, &subject)?;
        let (id, csr_der) = (record.id.clone(), record.csr_der.clone());
        self.propose_as(
            caller,
            Command::AddIssuer {
                issuer: record,
                make_default: false,
            },
        )
        .await?;
        Ok(IntermediateCsr {
            id,
            csr: encode(PemLabel::CertificateRequest, &csr_der),
        })
    }

    /// Installs the signed certificate (and chain) of an intermediate created by `init_intermediate`.
    pub async fn install_cert(
        &self,
        caller: &Caller,
        id: &str,
        pem_bundle: &str,
    ) -> Result<wire::IssuerView, PkiError> {
        caller.may(Action::ManageCa)?;
        let record = self
            .reader()?
            .issuer(id)?
            .ok_or_else(|| PkiError::not_found(format!("no issuer with id {id}")))?;
        if record.is_active() {
            return Err(PkiError::conflict(format!("issuer {id} already has its certificate")));
        }
        let certs = pem::certificates(pem_bundle.as_bytes())?;
        let key = SigningKey::from_pkcs8(&self.keyring.open(&format!("issuer-key:{id}"), &record.wrapped_key)?)?;
        check_ca_chain(&key, &certs)?;
        let mut chain = certs;
        let cert_der = chain.remove(0);
        let full = self.issuer_record(&key, cert_der, chain, record.created_at)?;
        self.propose_as(
            caller,
            Command::InstallIssuerCert {
                id: id.to_string(),
                cert_der: full.cert_der.clone(),
                chain_der: full.chain_der.clone(),
                not_after: full.not_after,
                ocsp: full.ocsp.clone(),
            },
        )
        .await?;
        self.created(full).await
    }

    /// Imports an existing CA key and chain from PKCS#12.
    pub async fn import_pkcs12(&self, caller: &Caller, req: &ImportRequest) -> Result<wire::IssuerView, PkiError> {
        caller.may(Action::ManageCa)?;
        use base64::Engine;
        let data = base64::engine::general_purpose::STANDARD
            .decode(req.pkcs12.trim())
            .map_err(|_| PkiError::invalid("pkcs12 must be the file's bytes in base64"))?;
        let entries = hapki_domain::pkcs12::read_entries(&data, &req.password)?;
        // The CA is the entry whose certificate is a CA's; an export also brings its OCSP signer.
        let (ca, others): (Vec<_>, Vec<_>) = entries
            .into_iter()
            .partition(|e| summarize(&e.chain[0]).is_ok_and(|s| s.is_ca));
        let mut ca = match <[_; 1]>::try_from(ca) {
            Ok([one]) => one,
            Err(v) if v.is_empty() => {
                return Err(PkiError::invalid(
                    "the PKCS#12 file holds no CA key with its CA certificate (basicConstraints cA)",
                ))
            }
            Err(v) => {
                return Err(PkiError::invalid(format!(
                    "the PKCS#12 file holds {} CA keys; import one CA per file",
                    v.len()
                )))
            }
        };
        let key = SigningKey::from_pkcs8(&ca.key_pkcs8)?;
        check_ca_chain(&key, &ca.chain)?;
        let cert_der = ca.chain.remove(0);
        let mut record = self.issuer_record(&key, cert_der, ca.chain, self.now())?;
        if let Some(signer) = others.iter().find(|e| e.alias.starts_with(OCSP_ALIAS)) {
            record.ocsp = Some(self.imported_ocsp_signer(&record, signer)?);
        }
        self.propose_as(
            caller,
            Command::AddIssuer {
                issuer: record.clone(),
                make_default: req.default,
            },
        )
        .await?;
        self.created(record).await
    }

    /// The OCSP signer an export brought: its certificate must be for its key and issued by
    /// the imported CA, so that the clone answers with the same responder.
    fn imported_ocsp_signer(
        &self,
        issuer: &IssuerRecord,
        signer: &hapki_domain::pkcs12::Entry,
    ) -> Result<OcspSignerRecord, PkiError> {
        let key = SigningKey::from_pkcs8(&signer.key_pkcs8)?;
        let cert = &signer.chain[0];
        let summary = summarize(cert)?;
        let spki = der::Encode::to_der(&summary.spki).map_err(|e| PkiError::internal(e.to_string()))?;
        if spki != key.spki_der() {
            return Err(PkiError::invalid(format!(
                "the OCSP signing certificate in '{}' is not for the key beside it",
                signer.alias
            )));
        }
        verify_issued_by(cert, &issuer.cert_der).map_err(|_| {
            PkiError::invalid(format!(
                "the OCSP signing certificate in '{}' was not issued by the CA in the file",
                signer.alias
            ))
        })?;
        Ok(OcspSignerRecord {
            cert_der: cert.clone(),
            wrapped_key: self.keyring.seal(&format!("ocsp-key:{}", issuer.id), &key.to_pkcs8()?),
        })
    }

    /// `POST /v1/ca/{id}/export` (clone-prepare): the issuer's key and certificate chain and
    /// its OCSP signer's, in one PKCS#12 file under `password`. Admin only, and logged.
    pub async fn export_ca(&self, caller: &Caller, id: &str, password: &str) -> Result<wire::Exported, PkiError> {
        caller.may(Action::ManageCa)?;
        if password.is_empty() {
            return Err(PkiError::invalid("the PKCS#12 file needs a password (--password-file)"));
        }
        let issuer = self.issuer(Some(id))?;
        let mut chain = vec![issuer.record.cert_der.clone()];
        chain.extend(issuer.record.chain_der.iter().cloned());
        let mut entries = vec![hapki_domain::pkcs12::Entry {
            alias: format!("{CA_ALIAS} {id}"),
            key_pkcs8: issuer.key.to_pkcs8()?,
            chain: chain.clone(),
        }];
        if let Some(o) = &issuer.record.ocsp {
            let pkcs8 = self.keyring.open(&format!("ocsp-key:{id}"), &o.wrapped_key)?;
            entries.push(hapki_domain::pkcs12::Entry {
                alias: format!("{OCSP_ALIAS} {id}"),
                key_pkcs8: pkcs8,
                chain: std::iter::once(o.cert_der.clone()).chain(chain).collect(),
            });
        }
        // The audit key comes along, as in Dogtag's clone-prepare, so that the records it
        // signed stay verifiable and its key stays in the operator's hands with the CA's.
        // A cluster that imports the file keeps signing its own log with its own key.
        let audit = self.audit_signer().await?;
        let internal = crate::tls::internal_ca(self).await?;
        entries.push(hapki_domain::pkcs12::Entry {
            alias: format!("{AUDIT_ALIAS} {}", self.reader()?.cluster_id()?.unwrap_or_default()),
            key_pkcs8: audit.pkcs8()?,
            chain: vec![audit.cert_der.clone(), internal.cert_der.clone()],
        });
        let names: Vec<String> = entries.iter().map(|e| e.alias.clone()).collect();
        let password = password.to_string();
        let p12 = self
            .work
            .keygen
            .run(&caller.token_id, move || {
                hapki_domain::pkcs12::write_entries(&entries, &password)
            })
            .await??;
        // Recorded in the audit log before the keys leave the node.
        self.audit_event(caller, "export_ca", format!("issuer {id} ({})", names.join(", ")))
            .await?;
        tracing::warn!(
            "token {} exported the keys of issuer {id} ({})",
            caller.token_id,
            names.join(", ")
        );
        use base64::Engine;
        Ok(wire::Exported {
            id: id.to_string(),
            pkcs12: base64::engine::general_purpose::STANDARD.encode(p12),
            entries: names,
        })
    }

    /// A new issuer publishes its first (empty) CRL at once.
    async fn created(&self, record: IssuerRecord) -> Result<wire::IssuerView, PkiError> {
        let index = self.cluster.status().last_applied.unwrap_or(0);
        self.refresh_crl(&record.id, index + 1).await?;
        let default = self.reader()?.default_issuer_at(self.now())?;
        self.issuer_view(record, default.as_deref())
    }

    /// Every issuer, as the API shows them.
    pub fn issuers(&self, caller: &Caller) -> Result<IssuerList, PkiError> {
        caller.may(Action::ReadStatus)?;
        let reader = self.reader()?;
        let default = reader.default_issuer_at(self.now())?;
        let issuers = reader
            .issuers()?
            .into_iter()
            .map(|i| self.issuer_view(i, default.as_deref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(IssuerList { issuers })
    }

    fn issuer_view(&self, i: IssuerRecord, default: Option<&str>) -> Result<wire::IssuerView, PkiError> {
        let reader = self.reader()?;
        let crl_number = reader.latest_crl(&i.id)?.map(|c| c.number());
        let rollover = reader.rollover_from(&i.id)?;
        let predecessor = reader.rollovers()?.into_iter().find(|r| r.to == i.id).map(|r| r.from);
        Ok(wire::IssuerView {
            successor: rollover.as_ref().map(|r| r.to.clone()),
            switch_at: rollover.map(|r| r.at),
            predecessor,
            default: default == Some(i.id.as_str()),
            not_after: i.is_active().then_some(i.not_after),
            status: if i.is_active() {
                IssuerState::Active
            } else {
                IssuerState::AwaitingCertificate
            },
            certificate: i.is_active().then(|| encode(PemLabel::Certificate, &i.cert_der)),
            chain: i.chain_der.iter().map(|d| encode(PemLabel::Certificate, d)).collect(),
            csr: (!i.is_active()).then(|| encode(PemLabel::CertificateRequest, &i.csr_der)),
            id: i.id,
            name: i.name,
            key_type: i.key_type,
            crl_number,
        })
    }

    /// Makes issuer `id` the one that signs when a request names none.
    pub async fn set_default_issuer(&self, caller: &Caller, id: &str) -> Result<DefaultIssuer, PkiError> {
        caller.may(Action::ManageCa)?;
        self.propose_as(caller, Command::SetDefaultIssuer { id: id.to_string() })
            .await?;
        Ok(DefaultIssuer {
            default: id.to_string(),
        })
    }

    /// An issuer record for `key` that waits for its certificate, with a CSR for `subject`.
    pub(super) fn pending_issuer(
        &self,
        key: &SigningKey,
        subject: &x509_cert::name::Name,
    ) -> Result<IssuerRecord, PkiError> {
        let csr_der = hapki_domain::csr::build_csr(key, subject, &[])?;
        let id = issuer_id(&key.spki());
        Ok(IssuerRecord {
            id: id.clone(),
            name: hapki_domain::name::display_name(subject),
            key_type: key.kind().to_string(),
            cert_der: vec![],
            chain_der: vec![],
            csr_der,
            wrapped_key: self.keyring.seal(&format!("issuer-key:{id}"), &key.to_pkcs8()?),
            ocsp: None,
            created_at: self.now(),
            not_after: 0,
        })
    }

    /// Builds an issuer record with the key sealed and a fresh OCSP signer.
    pub(super) fn issuer_record(
        &self,
        key: &SigningKey,
        cert_der: Vec<u8>,
        chain_der: Vec<Vec<u8>>,
        created_at: u64,
    ) -> Result<IssuerRecord, PkiError> {
        let summary = summarize(&cert_der)?;
        let id = issuer_id(&summary.spki);
        let subject = hapki_domain::name::name_from_der(&summary.subject_der)?;
        let view = IssuerView {
            subject: &subject,
            key_id: &summary.subject_key_id,
            key,
        };
        let ocsp = self.ocsp_signer(
            &view,
            &id,
            summary.common_name.as_deref().unwrap_or(&id),
            summary.not_after,
        )?;
        Ok(IssuerRecord {
            id: id.clone(),
            name: summary.subject.clone(),
            key_type: key.kind().to_string(),
            cert_der,
            chain_der,
            csr_der: vec![],
            wrapped_key: self.keyring.seal(&format!("issuer-key:{id}"), &key.to_pkcs8()?),
            ocsp: Some(ocsp),
            created_at,
            not_after: summary.not_after,
        })
    }

    /// Replaces an issuer's delegated OCSP signer when it has less than 30 days left.
    pub async fn renew_ocsp_signer_if_due(&self, issuer: &super::LoadedIssuer, now: u64) -> Result<(), PkiError> {
        const MARGIN: u64 = 30 * 86_400;
        let due = match &issuer.record.ocsp {
            Some(o) => summarize(&o.cert_der)?.not_after < now + MARGIN,
            None => true,
        };
        // An issuer that itself ends within the margin cannot give a longer-lived signer.
        if !due || issuer.record.not_after <= now + MARGIN {
            return Ok(());
        }
        let ca_name = summarize(&issuer.record.cert_der)?
            .common_name
            .unwrap_or_else(|| issuer.record.id.clone());
        let signer = self.ocsp_signer(&issuer.view(), &issuer.record.id, &ca_name, issuer.record.not_after)?;
        tracing::info!("renewing the OCSP signer of issuer {}", issuer.record.id);
        self.propose(
            &Origin::Node,
            Command::SetOcspSigner {
                issuer_id: issuer.record.id.clone(),
                signer,
            },
        )
        .await
    }

    /// Issues a delegated OCSP signing certificate for an issuer.
    fn ocsp_signer(
        &self,
        issuer: &IssuerView<'_>,
        issuer_id: &str,
        ca_name: &str,
        ca_not_after: u64,
    ) -> Result<OcspSignerRecord, PkiError> {
        let key = SigningKey::generate(KeyType::EcP256)?;
        let now = self.now();
        let spec = CertSpec {
            serial: Serial::from_random(self.random()),
            not_before: now - BACKDATE_SECS,
            not_after: (now + OCSP_SIGNER_DAYS * 86_400).min(ca_not_after),
            subject: SubjectSpec::cn(&format!("{ca_name} OCSP Responder")).to_name()?,
            spki: key.spki(),
            sans: vec![],
            key_usage: vec![KeyUsageBit::DigitalSignature],
            ext_key_usage: vec![ExtKeyUsage::OcspSigning],
            ca: false,
            path_len: None,
            name_constraints: None,
            ocsp_no_check: true,
            publication: Publication::default(),
        };
        let cert_der = build_certificate(Some(issuer), None, &spec)?;
        Ok(OcspSignerRecord {
            cert_der,
            wrapped_key: self.keyring.seal(&format!("ocsp-key:{issuer_id}"), &key.to_pkcs8()?),
        })
    }
}

/// The first certificate must be a CA certificate for `key`, each next one its issuer.
fn check_ca_chain(key: &SigningKey, certs: &[Vec<u8>]) -> Result<(), PkiError> {
    let first = certs.first().ok_or_else(|| PkiError::invalid("no certificate given"))?;
    let summary = summarize(first)?;
    let spki_der = der::Encode::to_der(&summary.spki).map_err(|e| PkiError::internal(e.to_string()))?;
    if spki_der != key.spki_der() {
        return Err(PkiError::invalid(format!(
            "the certificate for {} does not belong to this CA's key",
            summary.subject
        )));
    }
    if !summary.is_ca {
        return Err(PkiError::invalid(format!(
            "the certificate for {} is not a CA certificate (basicConstraints cA is not set)",
            summary.subject
        )));
    }
    for pair in certs.windows(2) {
        verify_issued_by(&pair[0], &pair[1])?;
    }
    Ok(())
}
