//! Building and signing certificates. Everything that varies (serial, times,
//! URLs, the approved subject and names) is passed in; the same inputs give the
//! same to-be-signed bytes.

use aws_lc_rs::digest;
use der::asn1::{Ia5String, OctetString};
use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::certificate::{Certificate, TbsCertificate, Version};
use x509_cert::ext::pkix::constraints::name::GeneralSubtree;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, CrlDistributionPoints,
    ExtendedKeyUsage, KeyUsage, KeyUsages, NameConstraints, SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::name::Name;
use x509_cert::time::Validity;

use crate::key::SigningKey;
use crate::name::San;
use crate::policy::Cidr;
use crate::profile::{ExtKeyUsage, KeyUsageBit};
use crate::serial::Serial;
use crate::time::{x509_time, UnixTime};
use crate::{oids, DomainError};

/// Where relying parties fetch the issuer's certificate, CRL and OCSP answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Publication {
    pub crl_url: Option<String>,
    pub ocsp_url: Option<String>,
    pub ca_issuers_url: Option<String>,
}

/// The issuing CA as the signer sees it: its name, key id and key.
pub struct IssuerView<'a> {
    pub subject: &'a Name,
    pub key_id: &'a [u8],
    pub key: &'a SigningKey,
}

/// The names a CA certificate lets its holder issue for: the permittedSubtrees of a
/// critical nameConstraints extension (RFC 5280 §4.2.1.10). A DNS domain permits itself
/// and every name below it; an IP block permits the addresses in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PermittedNames {
    pub dns: Vec<String>,
    pub ip: Vec<Cidr>,
}

/// Everything that goes into a certificate besides the issuer.
#[derive(Clone, Debug)]
pub struct CertSpec {
    pub serial: Serial,
    pub not_before: UnixTime,
    pub not_after: UnixTime,
    pub subject: Name,
    pub spki: SubjectPublicKeyInfoOwned,
    pub sans: Vec<San>,
    pub key_usage: Vec<KeyUsageBit>,
    pub ext_key_usage: Vec<ExtKeyUsage>,
    pub ca: bool,
    pub path_len: Option<u8>,
    /// CA certificates only: the nameConstraints to carry.
    pub name_constraints: Option<PermittedNames>,
    pub ocsp_no_check: bool,
    pub publication: Publication,
}

impl CertSpec {
    /// The spec of a self-signed CA certificate: keyCertSign, cRLSign and digitalSignature,
    /// no EKU, no names, no publication URLs.
    pub fn self_signed_ca(
        serial: Serial,
        validity: (UnixTime, UnixTime),
        subject: Name,
        spki: SubjectPublicKeyInfoOwned,
        path_len: Option<u8>,
    ) -> CertSpec {
        CertSpec {
            serial,
            not_before: validity.0,
            not_after: validity.1,
            subject,
            spki,
            sans: vec![],
            key_usage: vec![
                KeyUsageBit::DigitalSignature,
                KeyUsageBit::KeyCertSign,
                KeyUsageBit::CrlSign,
            ],
            ext_key_usage: vec![],
            ca: true,
            path_len,
            name_constraints: None,
            ocsp_no_check: false,
            publication: Publication::default(),
        }
    }
}

/// The key identifier of a public key: SHA-1 of the subjectPublicKey bits (RFC 5280 §4.2.1.2 method 1).
pub fn key_id(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, spki.subject_public_key.raw_bytes())
        .as_ref()
        .to_vec()
}

/// SHA-256 of some bytes (certificate fingerprints).
pub fn sha256(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, data).as_ref().to_vec()
}

/// Builds and signs a certificate. With `issuer` = `None` it is self-signed by `self_key`.
pub fn build_certificate(
    issuer: Option<&IssuerView<'_>>,
    self_key: Option<&SigningKey>,
    spec: &CertSpec,
) -> Result<Vec<u8>, DomainError> {
    let subject_key_id = key_id(&spec.spki);
    let (issuer_name, authority_key_id, signer) = match (issuer, self_key) {
        (Some(i), _) => (i.subject.clone(), i.key_id.to_vec(), i.key),
        (None, Some(k)) => (spec.subject.clone(), subject_key_id.clone(), k),
        (None, None) => return Err(DomainError::invalid("a certificate needs an issuer or its own key")),
    };
    let extensions = extensions(spec, &subject_key_id, &authority_key_id, issuer.is_none())?;
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: spec.serial.to_x509(),
        signature: signer.signature_algorithm(),
        issuer: issuer_name,
        validity: Validity {
            not_before: x509_time(spec.not_before)?,
            not_after: x509_time(spec.not_after)?,
        },
        subject: spec.subject.clone(),
        subject_public_key_info: spec.spki.clone(),
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    };
    let tbs_der = tbs.to_der()?;
    let cert = Certificate {
        tbs_certificate: tbs,
        signature_algorithm: signer.signature_algorithm(),
        signature: signer.sign_bits(&tbs_der)?,
    };
    Ok(cert.to_der()?)
}

fn extensions(
    spec: &CertSpec,
    subject_key_id: &[u8],
    authority_key_id: &[u8],
    self_signed: bool,
) -> Result<Vec<Extension>, DomainError> {
    let subject = &spec.subject;
    let mut exts: Vec<Extension> = Vec::new();
    let bc = BasicConstraints {
        ca: spec.ca,
        path_len_constraint: if spec.ca { spec.path_len } else { None },
    };
    exts.push(bc.to_extension(subject, &exts)?);
    exts.push(KeyUsage(key_usage_flags(&spec.key_usage)).to_extension(subject, &exts)?);
    if !spec.ext_key_usage.is_empty() {
        let ekus = spec.ext_key_usage.iter().map(|e| eku_oid(*e)).collect();
        // Non-critical, as the CA/Browser Forum baseline and most PKIX profiles expect.
        let mut eku = ExtendedKeyUsage(ekus).to_extension(subject, &exts)?;
        eku.critical = false;
        exts.push(eku);
    }
    exts.push(SubjectKeyIdentifier(OctetString::new(subject_key_id)?).to_extension(subject, &exts)?);
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(authority_key_id)?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    exts.push(aki.to_extension(subject, &exts)?);
    if !spec.sans.is_empty() {
        let names = spec
            .sans
            .iter()
            .map(San::to_general_name)
            .collect::<Result<Vec<_>, _>>()?;
        exts.push(SubjectAltName(names).to_extension(subject, &exts)?);
    }
    if let Some(permitted) = &spec.name_constraints {
        if !spec.ca {
            return Err(DomainError::invalid(
                "name constraints belong in CA certificates only (RFC 5280 §4.2.1.10)",
            ));
        }
        // Critical, as RFC 5280 requires of conforming CAs.
        exts.push(name_constraints(permitted)?.to_extension(subject, &exts)?);
    }
    if !self_signed {
        if let Some(url) = &spec.publication.crl_url {
            let dp = DistributionPoint {
                distribution_point: Some(DistributionPointName::FullName(vec![uri(url)?])),
                reasons: None,
                crl_issuer: None,
            };
            exts.push(CrlDistributionPoints(vec![dp]).to_extension(subject, &exts)?);
        }
        let mut access = Vec::new();
        if let Some(url) = &spec.publication.ocsp_url {
            access.push(AccessDescription {
                access_method: oids::AD_OCSP,
                access_location: uri(url)?,
            });
        }
        if let Some(url) = &spec.publication.ca_issuers_url {
            access.push(AccessDescription {
                access_method: oids::AD_CA_ISSUERS,
                access_location: uri(url)?,
            });
        }
        if !access.is_empty() {
            exts.push(AuthorityInfoAccessSyntax(access).to_extension(subject, &exts)?);
        }
    }
    if spec.ocsp_no_check {
        exts.push(Extension {
            extn_id: oids::OCSP_NOCHECK,
            critical: false,
            extn_value: OctetString::new(der::asn1::Null.to_der()?)?,
        });
    }
    Ok(exts)
}

fn name_constraints(permitted: &PermittedNames) -> Result<NameConstraints, DomainError> {
    let subtree = |base| GeneralSubtree {
        base,
        minimum: 0,
        maximum: None,
    };
    let mut subtrees = Vec::new();
    for d in &permitted.dns {
        let name = Ia5String::new(d.as_str())
            .map_err(|_| DomainError::invalid(format!("permitted DNS domain '{d}' is not ASCII")))?;
        subtrees.push(subtree(GeneralName::DnsName(name)));
    }
    for block in &permitted.ip {
        subtrees.push(subtree(GeneralName::IpAddress(OctetString::new(
            block.to_constraint_bytes(),
        )?)));
    }
    if subtrees.is_empty() {
        return Err(DomainError::invalid(
            "a nameConstraints extension needs at least one permitted name",
        ));
    }
    Ok(NameConstraints {
        permitted_subtrees: Some(subtrees),
        excluded_subtrees: None,
    })
}

pub(crate) fn uri(url: &str) -> Result<GeneralName, DomainError> {
    Ok(GeneralName::UniformResourceIdentifier(Ia5String::new(url).map_err(
        |_| DomainError::invalid(format!("URL '{url}' is not ASCII")),
    )?))
}

fn key_usage_flags(bits: &[KeyUsageBit]) -> flagset::FlagSet<KeyUsages> {
    let mut flags = flagset::FlagSet::<KeyUsages>::default();
    for b in bits {
        flags |= match b {
            KeyUsageBit::DigitalSignature => KeyUsages::DigitalSignature,
            KeyUsageBit::ContentCommitment => KeyUsages::NonRepudiation,
            KeyUsageBit::KeyEncipherment => KeyUsages::KeyEncipherment,
            KeyUsageBit::DataEncipherment => KeyUsages::DataEncipherment,
            KeyUsageBit::KeyAgreement => KeyUsages::KeyAgreement,
            KeyUsageBit::KeyCertSign => KeyUsages::KeyCertSign,
            KeyUsageBit::CrlSign => KeyUsages::CRLSign,
        };
    }
    flags
}

fn eku_oid(e: ExtKeyUsage) -> der::asn1::ObjectIdentifier {
    match e {
        ExtKeyUsage::ServerAuth => oids::EKU_SERVER_AUTH,
        ExtKeyUsage::ClientAuth => oids::EKU_CLIENT_AUTH,
        ExtKeyUsage::CodeSigning => oids::EKU_CODE_SIGNING,
        ExtKeyUsage::EmailProtection => oids::EKU_EMAIL_PROTECTION,
        ExtKeyUsage::OcspSigning => oids::EKU_OCSP_SIGNING,
    }
}

/// Checks that `cert_der` was signed by the key of `issuer_der` and names it as issuer.
pub fn verify_issued_by(cert_der: &[u8], issuer_der: &[u8]) -> Result<(), DomainError> {
    let cert = Certificate::from_der(cert_der)
        .map_err(|e| DomainError::invalid(format!("not a valid X.509 certificate: {e}")))?;
    let issuer = Certificate::from_der(issuer_der)
        .map_err(|e| DomainError::invalid(format!("not a valid X.509 certificate: {e}")))?;
    if cert.tbs_certificate.issuer.to_der()? != issuer.tbs_certificate.subject.to_der()? {
        return Err(DomainError::invalid(format!(
            "the certificate of {} names issuer {}, but the next certificate in the chain is {}",
            crate::name::display_name(&cert.tbs_certificate.subject),
            crate::name::display_name(&cert.tbs_certificate.issuer),
            crate::name::display_name(&issuer.tbs_certificate.subject)
        )));
    }
    let spki = &issuer.tbs_certificate.subject_public_key_info;
    let kind = crate::key::PublicKeyKind::from_spki(spki)?;
    let tbs = crate::csr::first_element(cert_der)?;
    crate::csr::verify_signature(spki, kind, &cert.signature_algorithm.oid, &cert.signature, tbs)
}

/// A certificate reduced to what hapki stores, lists and shows.
#[derive(Clone, Debug)]
pub struct CertSummary {
    pub serial: Serial,
    pub subject: String,
    pub issuer: String,
    pub common_name: Option<String>,
    pub sans: Vec<San>,
    pub not_before: UnixTime,
    pub not_after: UnixTime,
    pub is_ca: bool,
    pub key: String,
    pub subject_key_id: Vec<u8>,
    pub subject_der: Vec<u8>,
    pub spki: SubjectPublicKeyInfoOwned,
}

/// Parses a DER certificate and summarises it.
pub fn summarize(der_bytes: &[u8]) -> Result<CertSummary, DomainError> {
    let cert = Certificate::from_der(der_bytes)
        .map_err(|e| DomainError::invalid(format!("not a valid X.509 certificate: {e}")))?;
    let tbs = &cert.tbs_certificate;
    let serial = Serial::from_x509(&tbs.serial_number)
        .ok_or_else(|| DomainError::invalid("certificate serial number is longer than 20 octets"))?;
    let mut sans = Vec::new();
    let mut is_ca = false;
    let mut ski = None;
    for ext in tbs.extensions.iter().flatten() {
        if ext.extn_id == const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME {
            if let Ok(names) = SubjectAltName::from_der(ext.extn_value.as_bytes()) {
                sans.extend(names.0.iter().filter_map(|g| San::from_general_name(g).ok()));
            }
        } else if ext.extn_id == const_oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS {
            is_ca = BasicConstraints::from_der(ext.extn_value.as_bytes())
                .map(|b| b.ca)
                .unwrap_or(false);
        } else if ext.extn_id == const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER {
            ski = SubjectKeyIdentifier::from_der(ext.extn_value.as_bytes())
                .ok()
                .map(|k| k.0.as_bytes().to_vec());
        }
    }
    let spki = tbs.subject_public_key_info.clone();
    let key = crate::key::PublicKeyKind::from_spki(&spki)
        .map(|k| k.to_string())
        .unwrap_or_else(|_| spki.algorithm.oid.to_string());
    Ok(CertSummary {
        serial,
        subject: crate::name::display_name(&tbs.subject),
        issuer: crate::name::display_name(&tbs.issuer),
        common_name: crate::name::common_name(&tbs.subject),
        sans,
        not_before: tbs.validity.not_before.to_unix_duration().as_secs(),
        not_after: tbs.validity.not_after.to_unix_duration().as_secs(),
        is_ca,
        key,
        subject_key_id: ski.unwrap_or_else(|| key_id(&spki)),
        subject_der: tbs.subject.to_der()?,
        spki,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyType;
    use crate::name::SubjectSpec;

    fn spec(key: &SigningKey, cn: &str, ca: bool) -> CertSpec {
        CertSpec {
            serial: Serial::from_random([7; 16]),
            not_before: 1_700_000_000,
            not_after: 1_800_000_000,
            subject: SubjectSpec::cn(cn).to_name().unwrap(),
            spki: key.spki(),
            sans: if ca { vec![] } else { vec![San::Dns(cn.into())] },
            key_usage: if ca {
                vec![KeyUsageBit::KeyCertSign, KeyUsageBit::CrlSign]
            } else {
                vec![KeyUsageBit::DigitalSignature]
            },
            ext_key_usage: if ca { vec![] } else { vec![ExtKeyUsage::ServerAuth] },
            ca,
            path_len: None,
            name_constraints: None,
            ocsp_no_check: false,
            publication: Publication {
                crl_url: Some("http://127.0.0.1:8080/v1/crl".into()),
                ocsp_url: Some("http://127.0.0.1:8080/ocsp".into()),
                ca_issuers_url: None,
            },
        }
    }

    #[test]
    fn a_leaf_signed_by_a_root_carries_what_was_asked() {
        let ca_key = SigningKey::generate(KeyType::EcP256).unwrap();
        let root = build_certificate(None, Some(&ca_key), &spec(&ca_key, "Root", true)).unwrap();
        let root_sum = summarize(&root).unwrap();
        assert!(root_sum.is_ca);
        let leaf_key = SigningKey::generate(KeyType::Ed25519).unwrap();
        let root_name = x509_cert::name::Name::from_der(&root_sum.subject_der).unwrap();
        let view = IssuerView {
            subject: &root_name,
            key_id: &root_sum.subject_key_id,
            key: &ca_key,
        };
        let leaf = build_certificate(Some(&view), None, &spec(&leaf_key, "a.example.com", false)).unwrap();
        let s = summarize(&leaf).unwrap();
        assert_eq!(s.common_name.as_deref(), Some("a.example.com"));
        assert_eq!(s.sans, vec![San::Dns("a.example.com".into())]);
        assert_eq!(s.not_after, 1_800_000_000);
        assert!(!s.is_ca);
        assert_eq!(s.issuer, root_sum.subject);
    }

    /// A sub-CA certificate from the built-in `sub-ca` profile with `permitted` set, signed by a root.
    fn sub_ca_cert(permitted_dns: &[&str], permitted_ip: &[&str]) -> Vec<u8> {
        use crate::csr::{build_csr, parse_and_verify};
        use crate::profile::{builtin_profiles, SubjectSpecOrRaw};
        let mut profile = builtin_profiles().into_iter().find(|p| p.name == "sub-ca").unwrap();
        profile.permitted_dns = permitted_dns.iter().map(|s| s.to_string()).collect();
        profile.permitted_ip = permitted_ip.iter().map(|s| s.to_string()).collect();
        profile.validate().unwrap();
        let root_key = SigningKey::generate(KeyType::EcP256).unwrap();
        let root =
            summarize(&build_certificate(None, Some(&root_key), &spec(&root_key, "Root", true)).unwrap()).unwrap();
        let sub_key = SigningKey::generate(KeyType::EcP256).unwrap();
        let subject = SubjectSpec::parse("O=Example, CN=Issuing CA")
            .unwrap()
            .to_name()
            .unwrap();
        let csr = parse_and_verify(&build_csr(&sub_key, &subject, &[]).unwrap()).unwrap();
        let approved = profile.evaluate(&csr, None).unwrap();
        let SubjectSpecOrRaw::FromRequest(subject) = approved.subject else {
            panic!("sub-ca keeps the request's subject");
        };
        let cert_spec = CertSpec {
            subject,
            spki: csr.spki.clone(),
            sans: approved.sans,
            key_usage: approved.key_usage,
            path_len: profile.path_len,
            name_constraints: approved.name_constraints,
            ..spec(&sub_key, "unused", true)
        };
        let root_name = Name::from_der(&root.subject_der).unwrap();
        let view = IssuerView {
            subject: &root_name,
            key_id: &root.subject_key_id,
            key: &root_key,
        };
        build_certificate(Some(&view), None, &cert_spec).unwrap()
    }

    fn name_constraints_ext(der: &[u8]) -> Option<Extension> {
        let cert = Certificate::from_der(der).unwrap();
        cert.tbs_certificate
            .extensions
            .unwrap_or_default()
            .into_iter()
            .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_NAME_CONSTRAINTS)
    }

    #[test]
    fn a_sub_ca_with_permitted_names_carries_critical_name_constraints() {
        let der = sub_ca_cert(&["example.com"], &["10.0.0.0/8"]);
        let ext = name_constraints_ext(&der).expect("a nameConstraints extension");
        assert!(ext.critical);
        let nc = NameConstraints::from_der(ext.extn_value.as_bytes()).unwrap();
        assert_eq!(nc.excluded_subtrees, None);
        let bases: Vec<GeneralName> = nc.permitted_subtrees.unwrap().into_iter().map(|s| s.base).collect();
        assert_eq!(
            bases,
            vec![
                GeneralName::DnsName(Ia5String::new("example.com").unwrap()),
                GeneralName::IpAddress(OctetString::new(vec![10, 0, 0, 0, 255, 0, 0, 0]).unwrap()),
            ]
        );

        // openssl reads it the same way, when it is installed.
        let Ok(mut child) = std::process::Command::new("openssl")
            .args(["x509", "-inform", "DER", "-noout", "-text"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            eprintln!("openssl is not on PATH; skipping its view of the certificate");
            return;
        };
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&der).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("X509v3 Name Constraints: critical"), "{text}");
        assert!(text.contains("Permitted:"), "{text}");
        assert!(text.contains("DNS:example.com"), "{text}");
        assert!(text.contains("IP:10.0.0.0/255.0.0.0"), "{text}");
    }

    #[test]
    fn a_sub_ca_without_permitted_names_has_no_name_constraints() {
        assert!(name_constraints_ext(&sub_ca_cert(&[], &[])).is_none());
        let ipv6_only = sub_ca_cert(&[], &["2001:db8::/32"]);
        assert!(name_constraints_ext(&ipv6_only).is_some());
    }

    #[test]
    fn name_constraints_are_refused_on_a_leaf_and_when_empty() {
        let key = SigningKey::generate(KeyType::EcP256).unwrap();
        let permitted = PermittedNames {
            dns: vec!["example.com".into()],
            ip: vec![],
        };
        let leaf = CertSpec {
            name_constraints: Some(permitted),
            ..spec(&key, "a.example.com", false)
        };
        let err = build_certificate(None, Some(&key), &leaf).unwrap_err().to_string();
        assert!(err.contains("CA certificates only"), "{err}");
        let empty = CertSpec {
            name_constraints: Some(PermittedNames {
                dns: vec![],
                ip: vec![],
            }),
            ..spec(&key, "CA", true)
        };
        assert!(build_certificate(None, Some(&key), &empty).is_err());
    }
}
