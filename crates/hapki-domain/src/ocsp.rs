//! OCSP (RFC 6960): reading requests, and building responses signed by a
//! delegated OCSP-signing certificate that the response carries. Status lookup
//! is the caller's: this module matches request to issuer and encodes answers.
//! x509-ocsp provides the types; the signature is made here.

use aws_lc_rs::digest;
use der::asn1::{Null, OctetString};
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, ResponderId, ResponseBytes,
    ResponseData, RevokedInfo, SingleResponse, Version,
};

use crate::key::{alg_id, SigningKey};
use crate::revocation::RevocationReason;
use crate::serial::Serial;
use crate::time::{generalized, UnixTime};
use crate::{oids, DomainError};

/// Largest OCSP request read.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// Longest nonce accepted (RFC 8954 §2.1: `Nonce ::= OCTET STRING(SIZE(1..32))`).
pub const MAX_NONCE_BYTES: usize = 32;

/// Hashes that identify an issuer in a CertID, for SHA-1 and SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerHashes {
    pub sha1_name: Vec<u8>,
    pub sha1_key: Vec<u8>,
    pub sha256_name: Vec<u8>,
    pub sha256_key: Vec<u8>,
}

impl IssuerHashes {
    /// Computes the hashes from the issuer's subject DER and public key bits.
    pub fn new(subject_der: &[u8], public_key_bits: &[u8]) -> Self {
        let h = |alg, data: &[u8]| digest::digest(alg, data).as_ref().to_vec();
        IssuerHashes {
            sha1_name: h(&digest::SHA1_FOR_LEGACY_USE_ONLY, subject_der),
            sha1_key: h(&digest::SHA1_FOR_LEGACY_USE_ONLY, public_key_bits),
            sha256_name: h(&digest::SHA256, subject_der),
            sha256_key: h(&digest::SHA256, public_key_bits),
        }
    }

    /// Whether a CertID names this issuer.
    pub fn matches(&self, id: &CertId) -> bool {
        let (name, key) = if id.hash_algorithm.oid == oids::SHA1 {
            (&self.sha1_name, &self.sha1_key)
        } else if id.hash_algorithm.oid == oids::SHA256 {
            (&self.sha256_name, &self.sha256_key)
        } else {
            return false;
        };
        id.issuer_name_hash.as_bytes() == name.as_slice() && id.issuer_key_hash.as_bytes() == key.as_slice()
    }
}

/// A parsed OCSP request.
#[derive(Clone, Debug)]
pub struct ParsedRequest {
    pub cert_ids: Vec<CertId>,
    /// The nonce extension's value as received (the DER OCTET STRING holding 1 to 32
    /// nonce octets), to be echoed unchanged.
    pub nonce: Option<Vec<u8>>,
}

/// Why a request cannot be answered with statuses (RFC 6960 §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OcspRefusal {
    Malformed,
    InternalError,
    TryLater,
    Unauthorized,
}

/// Parses a DER OCSP request.
pub fn parse_request(der_bytes: &[u8]) -> Result<ParsedRequest, OcspRefusal> {
    if der_bytes.len() > MAX_REQUEST_BYTES {
        return Err(OcspRefusal::Malformed);
    }
    let req = OcspRequest::from_der(der_bytes).map_err(|_| OcspRefusal::Malformed)?;
    let tbs = req.tbs_request;
    if tbs.request_list.is_empty() || tbs.request_list.len() > 64 {
        return Err(OcspRefusal::Malformed);
    }
    let nonce = match tbs
        .request_extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == oids::OCSP_NONCE)
    {
        Some(ext) => Some(checked_nonce(ext.extn_value.as_bytes())?),
        None => None,
    };
    Ok(ParsedRequest {
        cert_ids: tbs.request_list.into_iter().map(|r| r.req_cert).collect(),
        nonce,
    })
}

/// The nonce extension's value if it is an OCTET STRING of 1 to 32 octets. RFC 8954 §2.1:
/// a responder MUST reject a nonce of 0 or more than 32 octets with malformedRequest, so
/// that a client cannot make it sign and echo arbitrary data.
fn checked_nonce(extn_value: &[u8]) -> Result<Vec<u8>, OcspRefusal> {
    let nonce = OctetString::from_der(extn_value).map_err(|_| OcspRefusal::Malformed)?;
    if nonce.as_bytes().is_empty() || nonce.as_bytes().len() > MAX_NONCE_BYTES {
        return Err(OcspRefusal::Malformed);
    }
    Ok(extn_value.to_vec())
}

/// The status of one certificate, as the store knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Good,
    Revoked { at: UnixTime, reason: RevocationReason },
    Unknown,
}

/// The delegated responder: its certificate and key, parsed once.
pub struct Responder {
    pub cert_der: Vec<u8>,
    pub key: SigningKey,
    key_hash: Vec<u8>,
    cert: Certificate,
}

impl Responder {
    /// A responder from its certificate and key.
    pub fn new(cert_der: Vec<u8>, key: SigningKey) -> Result<Self, DomainError> {
        let cert = Certificate::from_der(&cert_der)
            .map_err(|e| DomainError::invalid(format!("OCSP signer certificate: {e}")))?;
        let key_hash = digest::digest(
            &digest::SHA1_FOR_LEGACY_USE_ONLY,
            cert.tbs_certificate
                .subject_public_key_info
                .subject_public_key
                .raw_bytes(),
        )
        .as_ref()
        .to_vec();
        Ok(Responder {
            cert_der,
            key,
            key_hash,
            cert,
        })
    }

    /// Signs a successful response with one answer per CertID.
    pub fn respond(
        &self,
        answers: &[(CertId, Status)],
        nonce: Option<&[u8]>,
        now: UnixTime,
        next_update: UnixTime,
    ) -> Result<Vec<u8>, DomainError> {
        let mut responses = Vec::with_capacity(answers.len());
        for (id, status) in answers {
            let cert_status = match status {
                Status::Good => CertStatus::Good(Null),
                Status::Unknown => CertStatus::Unknown(Null),
                Status::Revoked { at, reason } => CertStatus::Revoked(RevokedInfo {
                    revocation_time: generalized(*at)?.into(),
                    revocation_reason: (*reason != RevocationReason::Unspecified).then(|| reason.to_crl_reason()),
                }),
            };
            responses.push(SingleResponse {
                cert_id: id.clone(),
                cert_status,
                this_update: generalized(now)?.into(),
                next_update: Some(generalized(next_update)?.into()),
                single_extensions: None,
            });
        }
        let response_extensions = match nonce {
            Some(n) => Some(vec![x509_cert::ext::Extension {
                extn_id: oids::OCSP_NONCE,
                critical: false,
                extn_value: OctetString::new(n)?,
            }]),
            None => None,
        };
        let tbs = ResponseData {
            version: Version::V1,
            responder_id: ResponderId::ByKey(OctetString::new(self.key_hash.clone())?),
            produced_at: generalized(now)?.into(),
            responses,
            response_extensions,
        };
        let tbs_der = tbs.to_der()?;
        let basic = BasicOcspResponse {
            tbs_response_data: tbs,
            signature_algorithm: self.key.signature_algorithm(),
            signature: self.key.sign_bits(&tbs_der)?,
            certs: Some(vec![self.cert.clone()]),
        };
        let resp = OcspResponse {
            response_status: OcspResponseStatus::Successful,
            response_bytes: Some(ResponseBytes {
                response_type: oids::OCSP_BASIC,
                response: OctetString::new(basic.to_der()?)?,
            }),
        };
        Ok(resp.to_der()?)
    }
}

/// An unsigned error response (malformedRequest, internalError, tryLater, unauthorized).
pub fn refusal(r: OcspRefusal) -> Vec<u8> {
    let status = match r {
        OcspRefusal::Malformed => OcspResponseStatus::MalformedRequest,
        OcspRefusal::InternalError => OcspResponseStatus::InternalError,
        OcspRefusal::TryLater => OcspResponseStatus::TryLater,
        OcspRefusal::Unauthorized => OcspResponseStatus::Unauthorized,
    };
    OcspResponse {
        response_status: status,
        response_bytes: None,
    }
    .to_der()
    .expect("a status-only response encodes")
}

/// The serial a CertID asks about, if it fits in 20 octets.
pub fn requested_serial(id: &CertId) -> Option<Serial> {
    Serial::from_x509(&id.serial_number)
}

/// A CertID for `serial` under an issuer, hashed with SHA-1 (as openssl does by default).
pub fn cert_id(hashes: &IssuerHashes, serial: Serial) -> CertId {
    CertId {
        hash_algorithm: alg_id(oids::SHA1, true),
        issuer_name_hash: OctetString::new(hashes.sha1_name.clone()).expect("20 bytes"),
        issuer_key_hash: OctetString::new(hashes.sha1_key.clone()).expect("20 bytes"),
        serial_number: serial.to_x509(),
    }
}

/// A DER request (unsigned) for `serial` under an issuer, as a client builds one; `nonce`
/// is the nonce extension's value (the DER OCTET STRING of RFC 8954), if any.
pub fn request_der(hashes: &IssuerHashes, serial: Serial, nonce: Option<Vec<u8>>) -> Result<Vec<u8>, DomainError> {
    let extensions = match nonce {
        Some(value) => Some(vec![x509_cert::ext::Extension {
            extn_id: oids::OCSP_NONCE,
            critical: false,
            extn_value: OctetString::new(value)?,
        }]),
        None => None,
    };
    let req = OcspRequest {
        tbs_request: x509_ocsp::TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: vec![x509_ocsp::Request {
                req_cert: cert_id(hashes, serial),
                single_request_extensions: None,
            }],
            request_extensions: extensions,
        },
        optional_signature: None,
    };
    Ok(req.to_der()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DER request for one certificate; `nonce` is the nonce extension's raw value.
    fn request(nonce: Option<Vec<u8>>) -> Vec<u8> {
        request_der(&IssuerHashes::new(b"issuer", b"key"), Serial::from_u64(7), nonce).unwrap()
    }

    /// The nonce value as RFC 8954 encodes it: an OCTET STRING of `len` octets.
    fn nonce_of(len: usize) -> Vec<u8> {
        OctetString::new(vec![0xa5; len]).unwrap().to_der().unwrap()
    }

    #[test]
    fn nonces_of_one_to_32_octets_are_echoed_as_received() {
        for len in [1, 16, 32] {
            let parsed = parse_request(&request(Some(nonce_of(len)))).unwrap();
            assert_eq!(parsed.nonce, Some(nonce_of(len)), "{len} octets");
        }
        assert_eq!(parse_request(&request(None)).unwrap().nonce, None);
    }

    #[test]
    fn empty_oversized_and_unwrapped_nonces_are_malformed_requests() {
        for len in [0, 33, 12_000] {
            let err = parse_request(&request(Some(nonce_of(len)))).unwrap_err();
            assert_eq!(err, OcspRefusal::Malformed, "{len} octets");
        }
        // Not an OCTET STRING at all, empty or not.
        for raw in [vec![], vec![0xa5; 16]] {
            assert_eq!(parse_request(&request(Some(raw))).unwrap_err(), OcspRefusal::Malformed);
        }
        let answer = OcspResponse::from_der(&refusal(OcspRefusal::Malformed)).unwrap();
        assert_eq!(answer.response_status, OcspResponseStatus::MalformedRequest);
        assert!(answer.response_bytes.is_none());
    }
}
