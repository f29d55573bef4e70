//! Certificate signing requests: building them (`hapki csr`) and reading them on
//! the server. A CSR is verified over its original TBS bytes, before anything
//! is proposed to the log, and reduced to what policy decides on.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use der::asn1::{Any, BitString, SetOfVec};
use der::{Decode, Encode, Reader, SliceReader};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, Version};

use crate::key::{PublicKeyKind, SigningKey};
use crate::name::{common_name, San};
use crate::pem::{decode_one, PemLabel};
use crate::{oids, DomainError};

/// Largest CSR hapki reads; a real one is well under 8 KiB.
pub const MAX_CSR_BYTES: usize = 64 * 1024;

/// A CSR whose signature has been checked.
#[derive(Clone, Debug)]
pub struct VerifiedCsr {
    pub subject: Name,
    pub common_name: Option<String>,
    pub spki: SubjectPublicKeyInfoOwned,
    pub key: PublicKeyKind,
    pub sans: Vec<San>,
    /// The challengePassword attribute (PKCS#9), if the request carries one: EST puts the
    /// channel binding of its TLS connection there.
    pub challenge_password: Option<String>,
}

/// Builds and signs a PKCS#10 request for `subject` and `sans` with `key`.
pub fn build_csr(key: &SigningKey, subject: &Name, sans: &[San]) -> Result<Vec<u8>, DomainError> {
    build_csr_with_challenge(key, subject, sans, None)
}

/// [`build_csr`] with a challengePassword attribute (a UTF8String), as an EST client
/// carries its channel binding.
pub fn build_csr_with_challenge(
    key: &SigningKey,
    subject: &Name,
    sans: &[San],
    challenge: Option<&str>,
) -> Result<Vec<u8>, DomainError> {
    let mut attributes = SetOfVec::new();
    if let Some(c) = challenge {
        let value = Any::encode_from(&der::asn1::Utf8StringRef::new(c)?)?;
        attributes.insert(Attribute {
            oid: CHALLENGE_PASSWORD,
            values: SetOfVec::try_from(vec![value])?,
        })?;
    }
    if !sans.is_empty() {
        let names = sans.iter().map(San::to_general_name).collect::<Result<Vec<_>, _>>()?;
        let ext: Extension = SubjectAltName(names).to_extension(subject, &[])?;
        let value = Any::encode_from(&vec![ext])?;
        attributes.insert(Attribute {
            oid: oids::EXTENSION_REQUEST,
            values: SetOfVec::try_from(vec![value])?,
        })?;
    }
    let info = CertReqInfo {
        version: Version::V1,
        subject: subject.clone(),
        public_key: key.spki(),
        attributes,
    };
    let tbs = info.to_der()?;
    let req = CertReq {
        info,
        algorithm: key.signature_algorithm(),
        signature: key.sign_bits(&tbs)?,
    };
    Ok(req.to_der()?)
}

/// Reads a CSR in PEM or DER, verifies its signature and extracts subject, key and SANs.
pub fn parse_and_verify(input: &[u8]) -> Result<VerifiedCsr, DomainError> {
    if input.len() > MAX_CSR_BYTES {
        return Err(DomainError::invalid(format!(
            "the CSR is {} bytes; at most {MAX_CSR_BYTES} are accepted",
            input.len()
        )));
    }
    let der = decode_one(input, &[PemLabel::CertificateRequest, PemLabel::NewCertificateRequest])?;
    let req = CertReq::from_der(&der)
        .map_err(|e| DomainError::invalid(format!("the CSR is not a valid PKCS#10 request: {e}")))?;
    let tbs = first_element(&der)?;
    let key = PublicKeyKind::from_spki(&req.info.public_key)?;
    verify_signature(&req.info.public_key, key, &req.algorithm.oid, &req.signature, tbs)?;
    let sans = requested_sans(&req)?;
    let challenge_password = challenge_password(&req)?;
    Ok(VerifiedCsr {
        common_name: common_name(&req.info.subject),
        subject: req.info.subject,
        spki: req.info.public_key,
        key,
        sans,
        challenge_password,
    })
}

/// The raw bytes of the first element of a DER SEQUENCE (the signed part).
pub(crate) fn first_element(der: &[u8]) -> Result<&[u8], DomainError> {
    let malformed = |_| DomainError::invalid("malformed DER: cannot find the signed part");
    let mut reader = SliceReader::new(der).map_err(malformed)?;
    let _outer = der::Header::decode(&mut reader).map_err(malformed)?;
    reader.tlv_bytes().map_err(malformed)
}

/// Verifies a signature made by the key in `spki` over `msg`.
pub(crate) fn verify_signature(
    spki: &SubjectPublicKeyInfoOwned,
    key: PublicKeyKind,
    sig_alg: &der::asn1::ObjectIdentifier,
    sig: &BitString,
    msg: &[u8],
) -> Result<(), DomainError> {
    let alg: &'static dyn VerificationAlgorithm = match (key, *sig_alg) {
        (PublicKeyKind::Ec { bits: 256 }, a) if a == oids::ECDSA_WITH_SHA256 => &signature::ECDSA_P256_SHA256_ASN1,
        (PublicKeyKind::Ec { bits: 256 }, a) if a == oids::ECDSA_WITH_SHA384 => &signature::ECDSA_P256_SHA384_ASN1,
        (PublicKeyKind::Ec { bits: 256 }, a) if a == oids::ECDSA_WITH_SHA512 => &signature::ECDSA_P256_SHA512_ASN1,
        (PublicKeyKind::Ec { bits: 384 }, a) if a == oids::ECDSA_WITH_SHA256 => &signature::ECDSA_P384_SHA256_ASN1,
        (PublicKeyKind::Ec { bits: 384 }, a) if a == oids::ECDSA_WITH_SHA384 => &signature::ECDSA_P384_SHA384_ASN1,
        (PublicKeyKind::Ec { bits: 384 }, a) if a == oids::ECDSA_WITH_SHA512 => &signature::ECDSA_P384_SHA512_ASN1,
        // The legacy variants accept 1024-bit moduli so that a weak key is refused
        // by the profile with a clear message, not as a bad signature.
        (PublicKeyKind::Rsa { .. }, a) if a == oids::SHA256_WITH_RSA => {
            &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY
        }
        (PublicKeyKind::Rsa { .. }, a) if a == oids::SHA384_WITH_RSA => &signature::RSA_PKCS1_2048_8192_SHA384,
        (PublicKeyKind::Rsa { .. }, a) if a == oids::SHA512_WITH_RSA => {
            &signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY
        }
        (PublicKeyKind::Ed25519, a) if a == oids::ED25519 => &signature::ED25519,
        (k, a) => {
            return Err(DomainError::invalid(format!(
                "signature algorithm {a} is not supported for a {k} key"
            )))
        }
    };
    let public = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| DomainError::invalid("public key bit string is not octet aligned"))?;
    let sig = sig
        .as_bytes()
        .ok_or_else(|| DomainError::invalid("signature bit string is not octet aligned"))?;
    UnparsedPublicKey::new(alg, public).verify(msg, sig).map_err(|_| {
        DomainError::invalid("the signature does not verify: the data was altered or signed with another key")
    })
}

fn requested_sans(req: &CertReq) -> Result<Vec<San>, DomainError> {
    let mut sans = Vec::new();
    for attr in req.info.attributes.iter().filter(|a| a.oid == oids::EXTENSION_REQUEST) {
        for value in attr.values.iter() {
            let exts: Vec<Extension> = value
                .decode_as()
                .map_err(|_| DomainError::invalid("the CSR's extensionRequest attribute is malformed"))?;
            for ext in exts.iter().filter(|e| e.extn_id == oids_san()) {
                let names = SubjectAltName::from_der(ext.extn_value.as_bytes())
                    .map_err(|_| DomainError::invalid("the CSR's subjectAltName extension is malformed"))?;
                for gn in names.0.iter() {
                    sans.push(San::from_general_name(gn)?);
                }
            }
        }
    }
    Ok(sans)
}

/// PKCS#9 challengePassword.
const CHALLENGE_PASSWORD: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.7");

/// The challengePassword attribute's one value, as text (UTF8String, PrintableString or
/// IA5String).
fn challenge_password(req: &CertReq) -> Result<Option<String>, DomainError> {
    let Some(attr) = req.info.attributes.iter().find(|a| a.oid == CHALLENGE_PASSWORD) else {
        return Ok(None);
    };
    let bad = || DomainError::invalid("the CSR's challengePassword attribute is malformed");
    let [value] = attr.values.as_slice() else {
        return Err(bad());
    };
    let text = value
        .decode_as::<der::asn1::Utf8StringRef<'_>>()
        .map(|s| s.as_str().to_string())
        .or_else(|_| {
            value
                .decode_as::<der::asn1::PrintableStringRef<'_>>()
                .map(|s| s.as_str().to_string())
        })
        .or_else(|_| {
            value
                .decode_as::<der::asn1::Ia5StringRef<'_>>()
                .map(|s| s.as_str().to_string())
        })
        .map_err(|_| bad())?;
    Ok(Some(text))
}

fn oids_san() -> der::asn1::ObjectIdentifier {
    const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyType;
    use crate::name::SubjectSpec;

    #[test]
    fn built_csr_verifies_and_carries_names() {
        for kt in [KeyType::EcP256, KeyType::EcP384, KeyType::Ed25519, KeyType::Rsa2048] {
            let key = SigningKey::generate(kt).unwrap();
            let subject = SubjectSpec::cn("a.example.com").to_name().unwrap();
            let sans = vec![San::parse("a.example.com").unwrap(), San::parse("10.1.2.3").unwrap()];
            let der = build_csr(&key, &subject, &sans).unwrap();
            let csr = parse_and_verify(&der).unwrap();
            assert_eq!(csr.common_name.as_deref(), Some("a.example.com"));
            assert_eq!(csr.sans, sans);
            assert_eq!(csr.key, key.kind());
        }
    }

    #[test]
    fn a_tampered_csr_is_refused() {
        let key = SigningKey::generate(KeyType::EcP256).unwrap();
        let subject = SubjectSpec::cn("a.example.com").to_name().unwrap();
        let mut der = build_csr(&key, &subject, &[]).unwrap();
        let pos = der.windows(13).position(|w| w == b"a.example.com").unwrap();
        der[pos] = b'b';
        let err = parse_and_verify(&der).unwrap_err().to_string();
        assert!(err.contains("does not verify"), "{err}");
    }

    #[test]
    fn garbage_is_refused_with_a_message() {
        assert!(parse_and_verify(b"hello").is_err());
        assert!(
            parse_and_verify(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")
                .is_err()
        );
        assert!(parse_and_verify(&vec![0x30; MAX_CSR_BYTES + 1]).is_err());
    }
}
