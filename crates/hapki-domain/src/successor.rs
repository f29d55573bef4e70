//! The certificates of a successor CA in a rollover: the old CA certificate again, for a
//! new key. Subject and every extension are kept (basic constraints, key usage, name
//! constraints, policies), so the successor may issue exactly what its predecessor did;
//! only the serial, the validity, the key and the key identifiers change. Signed by the
//! predecessor's issuer (an intermediate's parent), by the predecessor itself (a root's
//! cross-certificate: what relying parties that trust the old root build a path through),
//! or by the new key (a root's self-signed successor, for trust stores).

use der::asn1::OctetString;
use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::certificate::Certificate;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, SubjectKeyIdentifier};
use x509_cert::ext::AsExtension;
use x509_cert::time::Validity;

use crate::issue::{key_id, IssuerView};
use crate::key::SigningKey;
use crate::serial::Serial;
use crate::time::{x509_time, UnixTime};
use crate::DomainError;

/// Who signs a successor's certificate.
pub enum Signer<'a> {
    /// Another CA: the predecessor's parent, or the predecessor itself (a cross-certificate).
    Issuer(&'a IssuerView<'a>),
    /// The successor's own key: a self-signed certificate.
    SelfSigned(&'a SigningKey),
}

/// The CA certificate `template_der` again for `spki`, with `serial` and `validity`,
/// signed by `signer`.
pub fn successor_certificate(
    template_der: &[u8],
    spki: &SubjectPublicKeyInfoOwned,
    serial: &Serial,
    validity: (UnixTime, UnixTime),
    signer: Signer<'_>,
) -> Result<Vec<u8>, DomainError> {
    let template = Certificate::from_der(template_der)
        .map_err(|e| DomainError::invalid(format!("not a valid X.509 certificate: {e}")))?;
    let mut tbs = template.tbs_certificate;
    let subject_key_id = key_id(spki);
    let (issuer_name, authority_key_id, key) = match signer {
        Signer::Issuer(i) => (i.subject.clone(), i.key_id.to_vec(), i.key),
        Signer::SelfSigned(k) => (tbs.subject.clone(), subject_key_id.clone(), k),
    };
    let mut extensions: Vec<_> = tbs
        .extensions
        .take()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e.extn_id != const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER
                && e.extn_id != const_oid::db::rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER
        })
        .collect();
    let ski = SubjectKeyIdentifier(OctetString::new(subject_key_id)?).to_extension(&tbs.subject, &extensions)?;
    extensions.push(ski);
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(authority_key_id)?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    }
    .to_extension(&tbs.subject, &extensions)?;
    extensions.push(aki);
    tbs.serial_number = serial.to_x509();
    tbs.signature = key.signature_algorithm();
    tbs.issuer = issuer_name;
    tbs.validity = Validity {
        not_before: x509_time(validity.0)?,
        not_after: x509_time(validity.1)?,
    };
    tbs.subject_public_key_info = spki.clone();
    tbs.extensions = Some(extensions);
    let tbs_der = tbs.to_der()?;
    let cert = Certificate {
        tbs_certificate: tbs,
        signature_algorithm: key.signature_algorithm(),
        signature: key.sign_bits(&tbs_der)?,
    };
    Ok(cert.to_der()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issue::{build_certificate, summarize, verify_issued_by, CertSpec, PermittedNames};
    use crate::key::KeyType;
    use crate::name::SubjectSpec;

    fn root(key: &SigningKey, name_constraints: Option<PermittedNames>) -> Vec<u8> {
        let subject = SubjectSpec::cn("Rollover Root").to_name().unwrap();
        let mut spec = CertSpec::self_signed_ca(Serial([1; 20]), (1_000, 2_000_000_000), subject, key.spki(), Some(1));
        spec.name_constraints = name_constraints;
        build_certificate(None, Some(key), &spec).unwrap()
    }

    #[test]
    fn a_cross_certificate_keeps_subject_and_extensions_and_verifies_under_the_old_key() {
        let old_key = SigningKey::generate(KeyType::EcP256).unwrap();
        let permitted = PermittedNames {
            dns: vec!["example.com".into()],
            ip: vec![],
        };
        let old = root(&old_key, Some(permitted));
        let old_summary = summarize(&old).unwrap();
        let subject = x509_cert::name::Name::from_der(&old_summary.subject_der).unwrap();
        let new_key = SigningKey::generate(KeyType::EcP256).unwrap();
        let view = IssuerView {
            subject: &subject,
            key_id: &old_summary.subject_key_id,
            key: &old_key,
        };
        let cross = successor_certificate(
            &old,
            &new_key.spki(),
            &Serial([2; 20]),
            (5_000, 3_000_000_000),
            Signer::Issuer(&view),
        )
        .unwrap();
        verify_issued_by(&cross, &old).unwrap();
        let s = summarize(&cross).unwrap();
        assert_eq!(s.subject, old_summary.subject);
        assert!(s.is_ca);
        assert_eq!(s.subject_key_id, key_id(&new_key.spki()));
        assert_eq!((s.not_before, s.not_after), (5_000, 3_000_000_000));
        let constraints = const_oid::db::rfc5280::ID_CE_NAME_CONSTRAINTS;
        let has_constraints = |der: &[u8]| {
            Certificate::from_der(der)
                .unwrap()
                .tbs_certificate
                .extensions
                .unwrap()
                .iter()
                .any(|e| e.extn_id == constraints && e.critical)
        };
        assert!(has_constraints(&cross), "name constraints must carry over");

        let own = successor_certificate(
            &old,
            &new_key.spki(),
            &Serial([3; 20]),
            (5_000, 3_000_000_000),
            Signer::SelfSigned(&new_key),
        )
        .unwrap();
        verify_issued_by(&own, &own).unwrap();
        assert!(
            verify_issued_by(&own, &old).is_err(),
            "the self-signed successor is not the old key's"
        );
    }
}
