//! PKCS#7 / CMS "certs-only" messages (RFC 5652 SignedData with no signers), as EST
//! (RFC 7030 §4.1.3, §4.2.3) answers CA certificates and issued certificates: the cms
//! crate's types, encoded with der.

use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignedData, SignerInfos};
use der::asn1::SetOfVec;
use der::{Any, Decode, Encode};
use x509_cert::Certificate;

use crate::DomainError;

/// A certs-only message carrying `certs` (each DER).
pub fn certs_only(certs: &[Vec<u8>]) -> Result<Vec<u8>, DomainError> {
    let choices = certs
        .iter()
        .map(|der| {
            Certificate::from_der(der)
                .map(CertificateChoices::Certificate)
                .map_err(|e| DomainError::invalid(format!("not a certificate: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: const_oid::db::rfc5911::ID_DATA,
            econtent: None,
        },
        certificates: Some(CertificateSet(SetOfVec::try_from(choices)?)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    let info = ContentInfo {
        content_type: const_oid::db::rfc5911::ID_SIGNED_DATA,
        content: Any::encode_from(&signed)?,
    };
    Ok(info.to_der()?)
}

/// The certificates (DER) of a certs-only message.
pub fn certificates(message: &[u8]) -> Result<Vec<Vec<u8>>, DomainError> {
    let info = ContentInfo::from_der(message).map_err(|e| DomainError::invalid(format!("not a CMS message: {e}")))?;
    let signed: SignedData = info
        .content
        .decode_as()
        .map_err(|e| DomainError::invalid(format!("not a SignedData message: {e}")))?;
    let mut out = Vec::new();
    for choice in signed.certificates.iter().flat_map(|set| set.0.iter()) {
        if let CertificateChoices::Certificate(c) = choice {
            out.push(c.to_der()?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issue::{build_certificate, CertSpec};
    use crate::key::{KeyType, SigningKey};
    use crate::name::SubjectSpec;
    use crate::serial::Serial;

    fn self_signed(cn: &str) -> Vec<u8> {
        let key = SigningKey::generate(KeyType::EcP256).unwrap();
        let spec = CertSpec::self_signed_ca(
            Serial::from_u64(1),
            (1_700_000_000, 1_800_000_000),
            SubjectSpec::cn(cn).to_name().unwrap(),
            key.spki(),
            None,
        );
        build_certificate(None, Some(&key), &spec).unwrap()
    }

    #[test]
    fn a_certs_only_message_carries_its_certificates() {
        let (a, b) = (self_signed("A"), self_signed("B"));
        let message = certs_only(&[a.clone(), b.clone()]).unwrap();
        let mut back = certificates(&message).unwrap();
        back.sort();
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(back, want);
        assert!(certs_only(&[vec![0x30, 0]]).is_err());
        assert!(certificates(b"junk").is_err());
    }
}
