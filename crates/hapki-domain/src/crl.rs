//! Certificate revocation lists: a complete CRL or a delta CRL (RFC 5280 §5.2.4) built
//! from the revoked entries and signed by the issuer. The CRL's authority key id is the
//! issuer's own key id (x509-cert's CrlBuilder copies the wrong one), and the number is
//! given by the caller, who guarantees that it only increases, complete and delta CRLs
//! sharing one sequence. A complete CRL names where its deltas are (Freshest CRL); a delta
//! names the complete CRL it brings up to date (Delta CRL Indicator, critical). A
//! partition CRL lists the revoked certificates whose CRL distribution point is that
//! partition's URL, which its Issuing Distribution Point (critical) names.

use der::asn1::OctetString;
use der::Decode;
use der::Encode;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::crl::dp::{DistributionPoint, IssuingDistributionPoint};
use x509_cert::ext::pkix::crl::{BaseCrlNumber, CrlDistributionPoints, FreshestCrl};
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber};
use x509_cert::ext::{AsExtension, Extension};

use crate::issue::IssuerView;
use crate::revocation::RevocationReason;
use crate::serial::Serial;
use crate::time::{x509_time, UnixTime};
use crate::DomainError;

/// One revoked certificate as it goes into a CRL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrlEntry {
    pub serial: Serial,
    pub revoked_at: UnixTime,
    pub reason: RevocationReason,
}

/// Which CRL of an issuer's sequence this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrlKind<'a> {
    /// A complete CRL; `freshest` is where its delta CRLs are published, if there are any.
    Complete { freshest: Option<&'a str> },
    /// A delta CRL: what was revoked since complete CRL `base`.
    Delta { base: u64 },
    /// One partition of the end-entity certificates, published at `url`.
    Partition { url: &'a str },
}

/// The partition URL of an issuer's CRL: `{base}/v1/issuers/{id}/crl/{partition}`.
pub fn partition_url(base: &str, issuer_id: &str, partition: u32) -> String {
    format!("{}/v1/issuers/{issuer_id}/crl/{partition}", base.trim_end_matches('/'))
}

/// The CRL partition a certificate names in its CRL distribution point, if it names one
/// of `issuer_id`'s: the number after `/v1/issuers/{issuer_id}/crl/`.
pub fn partition_of(cert_der: &[u8], issuer_id: &str) -> Option<u32> {
    let cert = x509_cert::Certificate::from_der(cert_der).ok()?;
    let ext = cert
        .tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_CRL_DISTRIBUTION_POINTS)?;
    let points = CrlDistributionPoints::from_der(ext.extn_value.as_bytes()).ok()?;
    let suffix = format!("/v1/issuers/{issuer_id}/crl/");
    points.0.iter().find_map(|dp| match &dp.distribution_point {
        Some(DistributionPointName::FullName(names)) => names.iter().find_map(|n| match n {
            GeneralName::UniformResourceIdentifier(uri) => {
                let url = uri.as_str();
                let at = url.rfind(&suffix)?;
                url[at + suffix.len()..].parse().ok()
            }
            _ => None,
        }),
        _ => None,
    })
}

/// Builds and signs a CRL of `kind`.
pub fn build_crl(
    issuer: &IssuerView<'_>,
    number: u64,
    this_update: UnixTime,
    next_update: UnixTime,
    kind: CrlKind<'_>,
    entries: impl IntoIterator<Item = CrlEntry>,
) -> Result<Vec<u8>, DomainError> {
    let mut revoked = Vec::new();
    for e in entries {
        // RFC 5280 §5.3.1: the reason code SHOULD be absent rather than `unspecified`.
        let exts = if e.reason == RevocationReason::Unspecified {
            None
        } else {
            Some(vec![e.reason.to_crl_reason().to_extension(issuer.subject, &[])?])
        };
        revoked.push(RevokedCert {
            serial_number: e.serial.to_x509(),
            revocation_date: x509_time(e.revoked_at)?,
            crl_entry_extensions: exts,
        });
    }
    let mut exts: Vec<Extension> = Vec::new();
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(issuer.key_id)?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    exts.push(aki.to_extension(issuer.subject, &exts)?);
    let number = der::asn1::Uint::new(&number.to_be_bytes())?;
    exts.push(CrlNumber(number).to_extension(issuer.subject, &exts)?);
    match kind {
        CrlKind::Complete { freshest: None } => {}
        CrlKind::Complete { freshest: Some(url) } => {
            let dp = DistributionPoint {
                distribution_point: Some(DistributionPointName::FullName(vec![crate::issue::uri(url)?])),
                reasons: None,
                crl_issuer: None,
            };
            exts.push(FreshestCrl(vec![dp]).to_extension(issuer.subject, &exts)?);
        }
        CrlKind::Delta { base } => {
            let base = der::asn1::Uint::new(&base.to_be_bytes())?;
            exts.push(BaseCrlNumber(base).to_extension(issuer.subject, &exts)?);
        }
        CrlKind::Partition { url } => {
            let idp = IssuingDistributionPoint {
                distribution_point: Some(DistributionPointName::FullName(vec![crate::issue::uri(url)?])),
                only_contains_user_certs: true,
                only_contains_ca_certs: false,
                only_some_reasons: None,
                indirect_crl: false,
                only_contains_attribute_certs: false,
            };
            // x509-cert's AssociatedOid of IssuingDistributionPoint is subjectInfoAccess's
            // (0.2.5 and 0.3.0): the extension is made by hand with id-ce-issuingDistributionPoint.
            exts.push(Extension {
                extn_id: const_oid::db::rfc5280::ID_CE_ISSUING_DISTRIBUTION_POINT,
                critical: true,
                extn_value: OctetString::new(idp.to_der()?)?,
            });
        }
    }
    let tbs = TbsCertList {
        version: x509_cert::Version::V2,
        signature: issuer.key.signature_algorithm(),
        issuer: issuer.subject.clone(),
        this_update: x509_time(this_update)?,
        next_update: Some(x509_time(next_update)?),
        revoked_certificates: if revoked.is_empty() { None } else { Some(revoked) },
        crl_extensions: Some(exts),
    };
    let tbs_der = tbs.to_der()?;
    let crl = CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: issuer.key.signature_algorithm(),
        signature: issuer.key.sign_bits(&tbs_der)?,
    };
    Ok(crl.to_der()?)
}
