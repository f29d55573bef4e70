//! Private keys and signing: the five key types hapki generates and accepts,
//! PKCS#8 import and export, public key descriptions and the signature
//! algorithm each key signs with. All cryptography is aws-lc-rs.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING,
    RSA_PKCS1_SHA256,
};
use der::asn1::{BitString, ObjectIdentifier};
use der::{Decode, Encode};
use serde::{Deserialize, Serialize};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use crate::oids;
use crate::DomainError;

/// A key type that hapki can generate (`--key`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyType {
    #[serde(rename = "ec-p256")]
    EcP256,
    #[serde(rename = "ec-p384")]
    EcP384,
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    #[serde(rename = "rsa-4096")]
    Rsa4096,
    #[serde(rename = "ed25519")]
    Ed25519,
}

impl KeyType {
    /// Every key type, in the order they are shown to users.
    pub const ALL: [KeyType; 6] = [
        KeyType::EcP256,
        KeyType::EcP384,
        KeyType::Rsa2048,
        KeyType::Rsa3072,
        KeyType::Rsa4096,
        KeyType::Ed25519,
    ];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::EcP256 => "ec-p256",
            KeyType::EcP384 => "ec-p384",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
            KeyType::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for KeyType {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyType::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                DomainError::invalid(format!(
                    "unknown key type '{s}'; expected one of ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096, ed25519"
                ))
            })
    }
}

/// What a public key is: algorithm family and strength. Profiles decide on this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "algorithm", rename_all = "kebab-case")]
pub enum PublicKeyKind {
    /// Elliptic curve key on a named curve, `bits` is 256 or 384.
    Ec { bits: u32 },
    /// RSA key with a modulus of `bits` bits.
    Rsa { bits: u32 },
    /// An Ed25519 key.
    Ed25519,
}

impl PublicKeyKind {
    /// Reads the kind of key out of a SubjectPublicKeyInfo.
    pub fn from_spki(spki: &SubjectPublicKeyInfoOwned) -> Result<Self, DomainError> {
        let oid = spki.algorithm.oid;
        if oid == oids::EC_PUBLIC_KEY {
            let curve: ObjectIdentifier = spki
                .algorithm
                .parameters
                .as_ref()
                .ok_or_else(|| DomainError::invalid("EC public key without a named curve"))?
                .decode_as()
                .map_err(|_| DomainError::invalid("EC public key parameters are not a named curve"))?;
            match curve {
                c if c == oids::SECP256R1 => Ok(PublicKeyKind::Ec { bits: 256 }),
                c if c == oids::SECP384R1 => Ok(PublicKeyKind::Ec { bits: 384 }),
                c => Err(DomainError::invalid(format!(
                    "EC curve {c} is not supported; use P-256 or P-384"
                ))),
            }
        } else if oid == oids::RSA_ENCRYPTION {
            let raw = spki
                .subject_public_key
                .as_bytes()
                .ok_or_else(|| DomainError::invalid("RSA public key bit string is not octet aligned"))?;
            let key = RsaPublicKey::from_der(raw)
                .map_err(|_| DomainError::invalid("RSA public key is not a valid RSAPublicKey"))?;
            let modulus = key.modulus.as_bytes();
            let bits = match modulus.first() {
                Some(first) => (modulus.len() as u32 - 1) * 8 + (8 - first.leading_zeros()),
                None => 0,
            };
            Ok(PublicKeyKind::Rsa { bits })
        } else if oid == oids::ED25519 {
            Ok(PublicKeyKind::Ed25519)
        } else {
            Err(DomainError::invalid(format!(
                "public key algorithm {oid} is not supported; use EC P-256/P-384, RSA or Ed25519"
            )))
        }
    }
}

impl fmt::Display for PublicKeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublicKeyKind::Ec { bits } => write!(f, "EC P-{bits}"),
            PublicKeyKind::Rsa { bits } => write!(f, "RSA {bits}"),
            PublicKeyKind::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

#[derive(der::Sequence)]
struct RsaPublicKey<'a> {
    modulus: der::asn1::UintRef<'a>,
    #[allow(dead_code)]
    public_exponent: der::asn1::UintRef<'a>,
}

enum Inner {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private key held in memory, parsed once, ready to sign.
pub struct SigningKey {
    inner: Inner,
    kind: PublicKeyKind,
    spki_der: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.kind)
    }
}

impl SigningKey {
    /// Generates a fresh key of the given type.
    pub fn generate(key_type: KeyType) -> Result<Self, DomainError> {
        let pkcs8 = match key_type {
            KeyType::EcP256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
                .and_then(|k| k.to_pkcs8v1())
                .map(|d| d.as_ref().to_vec()),
            KeyType::EcP384 => EcdsaKeyPair::generate(&ECDSA_P384_SHA384_ASN1_SIGNING)
                .and_then(|k| k.to_pkcs8v1())
                .map(|d| d.as_ref().to_vec()),
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
                let size = match key_type {
                    KeyType::Rsa2048 => KeySize::Rsa2048,
                    KeyType::Rsa3072 => KeySize::Rsa3072,
                    _ => KeySize::Rsa4096,
                };
                RsaKeyPair::generate(size)
                    .and_then(|k| k.as_der())
                    .map(|d| d.as_ref().to_vec())
            }
            // OpenSSL 3.0 refuses PKCS#8 v2 for Ed25519, so write v1.
            KeyType::Ed25519 => Ed25519KeyPair::generate()
                .and_then(|k| k.to_pkcs8v1())
                .map(|d| d.as_ref().to_vec()),
        }
        .map_err(|_| DomainError::Crypto(format!("generating a {key_type} key failed")))?;
        Self::from_pkcs8(&pkcs8)
    }

    /// Parses a PKCS#8 (v1 or v2) private key.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, DomainError> {
        let info = pkcs8_algorithm(der)?;
        let inner = if info.oid == oids::EC_PUBLIC_KEY {
            let curve: ObjectIdentifier = info
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as().ok())
                .ok_or_else(|| DomainError::invalid("EC private key without a named curve"))?;
            let alg = if curve == oids::SECP256R1 {
                &ECDSA_P256_SHA256_ASN1_SIGNING
            } else if curve == oids::SECP384R1 {
                &ECDSA_P384_SHA384_ASN1_SIGNING
            } else {
                return Err(DomainError::invalid(format!("EC curve {curve} is not supported")));
            };
            Inner::Ec(
                EcdsaKeyPair::from_pkcs8(alg, der)
                    .map_err(|e| DomainError::invalid(format!("EC private key rejected: {e}")))?,
            )
        } else if info.oid == oids::RSA_ENCRYPTION {
            Inner::Rsa(
                RsaKeyPair::from_pkcs8(der)
                    .map_err(|e| DomainError::invalid(format!("RSA private key rejected: {e}")))?,
            )
        } else if info.oid == oids::ED25519 {
            Inner::Ed25519(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map_err(|e| DomainError::invalid(format!("Ed25519 private key rejected: {e}")))?,
            )
        } else {
            return Err(DomainError::invalid(format!(
                "private key algorithm {} is not supported",
                info.oid
            )));
        };
        let spki = spki_of(&inner)?;
        let kind = PublicKeyKind::from_spki(&spki)?;
        let spki_der = spki.to_der().map_err(DomainError::from)?;
        Ok(SigningKey { inner, kind, spki_der })
    }

    /// The key as unencrypted PKCS#8 v1 DER. Callers wrap or encrypt it before it leaves memory.
    pub fn to_pkcs8(&self) -> Result<Vec<u8>, DomainError> {
        let doc = match &self.inner {
            Inner::Ec(k) => k.to_pkcs8v1().map(|d| d.as_ref().to_vec()),
            Inner::Rsa(k) => k.as_der().map(|d| d.as_ref().to_vec()),
            Inner::Ed25519(k) => k.to_pkcs8v1().map(|d| d.as_ref().to_vec()),
        };
        doc.map_err(|_| DomainError::Crypto("exporting the private key failed".into()))
    }

    /// The public half as a DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The public half, decoded.
    pub fn spki(&self) -> SubjectPublicKeyInfoOwned {
        SubjectPublicKeyInfoOwned::from_der(&self.spki_der).expect("encoded by us a moment ago")
    }

    /// Algorithm family and strength.
    pub fn kind(&self) -> PublicKeyKind {
        self.kind
    }

    /// The AlgorithmIdentifier of the signatures this key makes.
    pub fn signature_algorithm(&self) -> AlgorithmIdentifierOwned {
        match (&self.inner, self.kind) {
            (Inner::Ec(_), PublicKeyKind::Ec { bits: 384 }) => alg_id(oids::ECDSA_WITH_SHA384, false),
            (Inner::Ec(_), _) => alg_id(oids::ECDSA_WITH_SHA256, false),
            (Inner::Rsa(_), _) => alg_id(oids::SHA256_WITH_RSA, true),
            (Inner::Ed25519(_), _) => alg_id(oids::ED25519, false),
        }
    }

    /// Signs `msg` and returns the signature as it goes into a certificate, CRL or OCSP response.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, DomainError> {
        let rng = SystemRandom::new();
        let failed = |_| DomainError::Crypto("signing failed".into());
        match &self.inner {
            Inner::Ec(k) => k.sign(&rng, msg).map(|s| s.as_ref().to_vec()).map_err(failed),
            Inner::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, msg, &mut sig).map_err(failed)?;
                Ok(sig)
            }
            Inner::Ed25519(k) => Ok(k.sign(msg).as_ref().to_vec()),
        }
    }

    /// Signs and returns the signature as a BIT STRING.
    pub fn sign_bits(&self, msg: &[u8]) -> Result<BitString, DomainError> {
        BitString::from_bytes(&self.sign(msg)?).map_err(DomainError::from)
    }
}

/// An AlgorithmIdentifier; RSA PKCS#1 v1.5 algorithms carry an explicit NULL parameter.
pub(crate) fn alg_id(oid: ObjectIdentifier, null_params: bool) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: null_params.then(|| der::asn1::Any::from(der::asn1::Null)),
    }
}

fn pkcs8_algorithm(der_bytes: &[u8]) -> Result<AlgorithmIdentifierOwned, DomainError> {
    #[derive(der::Sequence)]
    struct Pkcs8Prefix {
        _version: u8,
        algorithm: AlgorithmIdentifierOwned,
        _key: der::asn1::OctetString,
        #[asn1(context_specific = "0", optional = "true", tag_mode = "IMPLICIT")]
        _attributes: Option<der::asn1::Any>,
        #[asn1(context_specific = "1", optional = "true", tag_mode = "IMPLICIT")]
        _public_key: Option<der::asn1::Any>,
    }
    Pkcs8Prefix::from_der(der_bytes)
        .map(|p| p.algorithm)
        .map_err(|_| DomainError::invalid("the private key is not PKCS#8 DER"))
}

fn spki_of(inner: &Inner) -> Result<SubjectPublicKeyInfoOwned, DomainError> {
    let (algorithm, key): (AlgorithmIdentifierOwned, &[u8]) = match inner {
        Inner::Ec(k) => {
            let curve = if k.public_key().as_ref().len() == 97 {
                oids::SECP384R1
            } else {
                oids::SECP256R1
            };
            (
                AlgorithmIdentifierOwned {
                    oid: oids::EC_PUBLIC_KEY,
                    parameters: Some(der::asn1::Any::from(&curve)),
                },
                k.public_key().as_ref(),
            )
        }
        Inner::Rsa(k) => (alg_id(oids::RSA_ENCRYPTION, true), k.public_key().as_ref()),
        Inner::Ed25519(k) => (alg_id(oids::ED25519, false), k.public_key().as_ref()),
    };
    Ok(SubjectPublicKeyInfoOwned {
        algorithm,
        subject_public_key: BitString::from_bytes(key)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_type_round_trips_through_pkcs8_and_reports_its_strength() {
        for kt in KeyType::ALL {
            if kt == KeyType::Rsa4096 {
                continue; // slow to generate; covered by 2048 and 3072
            }
            let key = SigningKey::generate(kt).unwrap();
            let again = SigningKey::from_pkcs8(&key.to_pkcs8().unwrap()).unwrap();
            assert_eq!(key.spki_der(), again.spki_der(), "{kt}");
            let expected = match kt {
                KeyType::EcP256 => PublicKeyKind::Ec { bits: 256 },
                KeyType::EcP384 => PublicKeyKind::Ec { bits: 384 },
                KeyType::Rsa2048 => PublicKeyKind::Rsa { bits: 2048 },
                KeyType::Rsa3072 => PublicKeyKind::Rsa { bits: 3072 },
                KeyType::Ed25519 => PublicKeyKind::Ed25519,
                KeyType::Rsa4096 => unreachable!(),
            };
            assert_eq!(key.kind(), expected);
            assert!(!key.sign(b"hello").unwrap().is_empty());
        }
    }

    #[test]
    fn unknown_key_type_names_the_choices() {
        let err = "dsa-1024".parse::<KeyType>().unwrap_err().to_string();
        assert!(err.contains("ec-p256"), "{err}");
    }
}
