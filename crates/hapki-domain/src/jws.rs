//! JSON Web Signatures as ACME (RFC 8555 §6.2) uses them: the flattened JSON form, an
//! account key given as a JWK (RFC 7517) or named by its account URL, the key's
//! thumbprint (RFC 7638), and the HMAC-signed inner JWS of an External Account Binding.
//! Signatures are checked by aws-lc-rs; this module only decodes and chooses.

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use aws_lc_rs::{digest, hmac};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

/// What is wrong with a JWS, in the terms of RFC 8555's error types.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Not a JWS of the form ACME takes (`malformed`).
    #[error("{0}")]
    Malformed(String),
    /// An algorithm the server does not take, or one that does not fit the key (`badSignatureAlgorithm`).
    #[error("{0}")]
    BadAlgorithm(String),
    /// A key the server does not take (`badPublicKey`).
    #[error("{0}")]
    BadKey(String),
    /// The signature does not verify (`unauthorized`).
    #[error("{0}")]
    BadSignature(String),
}

fn malformed(msg: impl Into<String>) -> JwsError {
    JwsError::Malformed(msg.into())
}

/// Decodes unpadded base64url, refusing padding and other alphabets.
pub fn b64(field: &str, s: &str) -> Result<Vec<u8>, JwsError> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| malformed(format!("{field} is not unpadded base64url")))
}

/// Encodes unpadded base64url.
pub fn b64_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The algorithms account keys sign with.
pub const ALGORITHMS: [&str; 4] = ["ES256", "ES384", "RS256", "EdDSA"];

/// A public key in JWK form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Jwk {
    P256 { x: Vec<u8>, y: Vec<u8> },
    P384 { x: Vec<u8>, y: Vec<u8> },
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ed25519 { x: Vec<u8> },
}

fn member<'a>(jwk: &'a Value, name: &str) -> Result<&'a str, JwsError> {
    jwk.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(format!("the JWK has no string member '{name}'")))
}

impl Jwk {
    /// Reads a public JWK; private members, unknown key types and weak keys are refused.
    pub fn from_json(jwk: &Value) -> Result<Jwk, JwsError> {
        if !jwk.is_object() {
            return Err(malformed("the JWK is not a JSON object"));
        }
        if jwk.get("d").is_some() {
            return Err(JwsError::BadKey(
                "the JWK holds a private key; send the public key only".into(),
            ));
        }
        let coord = |name: &str, len: usize| -> Result<Vec<u8>, JwsError> {
            let v = b64(&format!("the JWK's '{name}'"), member(jwk, name)?)?;
            if v.len() != len {
                return Err(JwsError::BadKey(format!(
                    "the JWK's '{name}' is {} bytes; this curve needs {len}",
                    v.len()
                )));
            }
            Ok(v)
        };
        let key = match (member(jwk, "kty")?, jwk.get("crv").and_then(Value::as_str)) {
            ("EC", Some("P-256")) => Jwk::P256 {
                x: coord("x", 32)?,
                y: coord("y", 32)?,
            },
            ("EC", Some("P-384")) => Jwk::P384 {
                x: coord("x", 48)?,
                y: coord("y", 48)?,
            },
            ("OKP", Some("Ed25519")) => Jwk::Ed25519 { x: coord("x", 32)? },
            ("RSA", _) => {
                let n = b64("the JWK's 'n'", member(jwk, "n")?)?;
                let e = b64("the JWK's 'e'", member(jwk, "e")?)?;
                let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
                if !(2048..=8192).contains(&bits) || n.first() == Some(&0) {
                    return Err(JwsError::BadKey(format!(
                        "RSA account keys are 2048 to 8192 bits in minimal form; this one is {bits}"
                    )));
                }
                if e.is_empty() || e.len() > 4 || e.first() == Some(&0) {
                    return Err(JwsError::BadKey(
                        "the RSA exponent is not a minimal 1 to 4 byte integer".into(),
                    ));
                }
                Jwk::Rsa { n, e }
            }
            (kty, crv) => {
                return Err(JwsError::BadKey(format!(
                    "keys of type {kty}{} are not taken; use EC P-256 or P-384, RSA or Ed25519",
                    crv.map(|c| format!(" ({c})")).unwrap_or_default()
                )))
            }
        };
        Ok(key)
    }

    /// The subject public key of a DER certificate as a JWK, to compare with the key that
    /// signed a request (a revocation signed with the certificate's own key).
    pub fn from_certificate(der: &[u8]) -> Result<Jwk, JwsError> {
        use der::asn1::UintRef;
        use der::{Decode, Sequence};
        use x509_cert::Certificate;

        #[derive(Sequence)]
        struct RsaPublicKey<'a> {
            n: UintRef<'a>,
            e: UintRef<'a>,
        }

        let cert =
            Certificate::from_der(der).map_err(|e| malformed(format!("the certificate does not decode: {e}")))?;
        let spki = &cert.tbs_certificate.subject_public_key_info;
        let key = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| JwsError::BadKey("the certificate's public key is not whole bytes".into()))?;
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok());
        let point = |len: usize| -> Result<(Vec<u8>, Vec<u8>), JwsError> {
            match key.split_first() {
                Some((4, xy)) if xy.len() == 2 * len => Ok((xy[..len].to_vec(), xy[len..].to_vec())),
                _ => Err(JwsError::BadKey(
                    "the certificate's EC key is not an uncompressed point".into(),
                )),
            }
        };
        let oid = spki.algorithm.oid;
        let jwk = if oid == crate::oids::EC_PUBLIC_KEY && curve == Some(crate::oids::SECP256R1) {
            let (x, y) = point(32)?;
            Jwk::P256 { x, y }
        } else if oid == crate::oids::EC_PUBLIC_KEY && curve == Some(crate::oids::SECP384R1) {
            let (x, y) = point(48)?;
            Jwk::P384 { x, y }
        } else if oid == crate::oids::ED25519 {
            Jwk::Ed25519 { x: key.to_vec() }
        } else if oid == crate::oids::RSA_ENCRYPTION {
            let rsa =
                RsaPublicKey::from_der(key).map_err(|e| JwsError::BadKey(format!("the certificate's RSA key: {e}")))?;
            Jwk::Rsa {
                n: rsa.n.as_bytes().to_vec(),
                e: rsa.e.as_bytes().to_vec(),
            }
        } else {
            return Err(JwsError::BadKey(format!(
                "the certificate's key ({oid}) is not one ACME signs with"
            )));
        };
        Ok(jwk)
    }

    /// The key as the JSON of RFC 7638: its required members in order, no spaces. It is
    /// a valid JWK too, and is how the state keeps account keys.
    pub fn canonical_json(&self) -> String {
        match self {
            Jwk::P256 { x, y } | Jwk::P384 { x, y } => {
                let crv = if matches!(self, Jwk::P256 { .. }) {
                    "P-256"
                } else {
                    "P-384"
                };
                format!(
                    r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#,
                    b64_encode(x),
                    b64_encode(y)
                )
            }
            Jwk::Rsa { n, e } => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64_encode(e), b64_encode(n)),
            Jwk::Ed25519 { x } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64_encode(x)),
        }
    }

    /// Reads what [`Jwk::canonical_json`] wrote.
    pub fn from_canonical(json: &str) -> Result<Jwk, JwsError> {
        let v: Value = serde_json::from_str(json).map_err(|e| malformed(format!("a stored JWK: {e}")))?;
        Jwk::from_json(&v)
    }

    /// The SHA-256 thumbprint of RFC 7638.
    pub fn thumbprint(&self) -> [u8; 32] {
        digest::digest(&digest::SHA256, self.canonical_json().as_bytes())
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes")
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Jwk::P256 { .. } => "ES256",
            Jwk::P384 { .. } => "ES384",
            Jwk::Rsa { .. } => "RS256",
            Jwk::Ed25519 { .. } => "EdDSA",
        }
    }

    /// Checks `sig` over `msg` made with `alg`, which must be this key's algorithm.
    pub fn verify(&self, alg: &str, msg: &[u8], sig: &[u8]) -> Result<(), JwsError> {
        if alg != self.algorithm() {
            return Err(JwsError::BadAlgorithm(format!(
                "the header says {alg}, and this key signs with {}",
                self.algorithm()
            )));
        }
        let bad = |_| JwsError::BadSignature("the JWS signature does not verify with the account key".into());
        match self {
            Jwk::P256 { x, y } | Jwk::P384 { x, y } => {
                let point: Vec<u8> = [&[4u8][..], x, y].concat();
                let algorithm = if matches!(self, Jwk::P256 { .. }) {
                    &signature::ECDSA_P256_SHA256_FIXED
                } else {
                    &signature::ECDSA_P384_SHA384_FIXED
                };
                UnparsedPublicKey::new(algorithm, point).verify(msg, sig).map_err(bad)
            }
            Jwk::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg, sig)
                .map_err(bad),
            Jwk::Ed25519 { x } => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(msg, sig)
                .map_err(bad),
        }
    }
}

/// How the protected header names the signing key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRef {
    /// The key itself: new accounts, and revocations signed by the certificate's key.
    Jwk(Jwk),
    /// The account URL of an existing account.
    Kid(String),
}

/// A JWS in flattened JSON form, decoded but not yet verified.
#[derive(Clone, Debug)]
pub struct Jws {
    pub alg: String,
    pub nonce: Option<String>,
    pub url: String,
    pub key: KeyRef,
    /// The decoded payload: empty for POST-as-GET.
    pub payload: Vec<u8>,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

impl Jws {
    /// Decodes a request body; `body` must be the flattened JSON serialization with a
    /// protected header that has `alg`, `url` and exactly one of `jwk` and `kid`.
    pub fn parse(body: &[u8]) -> Result<Jws, JwsError> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| malformed(format!("the body is not a JSON JWS: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| malformed("the body is not a JSON object"))?;
        if obj.contains_key("signatures") || obj.contains_key("header") {
            return Err(malformed(
                "only the flattened JWS serialization with a protected header alone is taken",
            ));
        }
        let part = |name: &str| -> Result<&str, JwsError> {
            obj.get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| malformed(format!("the JWS has no string '{name}'")))
        };
        let (protected_b64, payload_b64, sig_b64) = (part("protected")?, part("payload")?, part("signature")?);
        let header: Value = serde_json::from_slice(&b64("the protected header", protected_b64)?)
            .map_err(|e| malformed(format!("the protected header is not JSON: {e}")))?;
        let header = header
            .as_object()
            .ok_or_else(|| malformed("the protected header is not a JSON object"))?;
        let text = |name: &str| header.get(name).and_then(Value::as_str).map(str::to_string);
        let alg = text("alg").ok_or_else(|| malformed("the protected header has no 'alg'"))?;
        if !ALGORITHMS.contains(&alg.as_str()) {
            return Err(JwsError::BadAlgorithm(format!(
                "algorithm '{alg}' is not taken; sign with one of {}",
                ALGORITHMS.join(", ")
            )));
        }
        let url = text("url").ok_or_else(|| malformed("the protected header has no 'url'"))?;
        let key = match (header.get("jwk"), text("kid")) {
            (Some(jwk), None) => KeyRef::Jwk(Jwk::from_json(jwk)?),
            (None, Some(kid)) => KeyRef::Kid(kid),
            _ => {
                return Err(malformed(
                    "the protected header must have exactly one of 'jwk' and 'kid'",
                ))
            }
        };
        if let KeyRef::Jwk(k) = &key {
            if k.algorithm() != alg {
                return Err(JwsError::BadAlgorithm(format!(
                    "the header says {alg}, and its key signs with {}",
                    k.algorithm()
                )));
            }
        }
        Ok(Jws {
            alg,
            nonce: text("nonce"),
            url,
            key,
            payload: b64("the payload", payload_b64)?,
            signing_input: format!("{protected_b64}.{payload_b64}").into_bytes(),
            signature: b64("the signature", sig_b64)?,
        })
    }

    /// Checks the signature with `key`.
    pub fn verify(&self, key: &Jwk) -> Result<(), JwsError> {
        key.verify(&self.alg, &self.signing_input, &self.signature)
    }

    /// The payload as JSON; an empty payload (POST-as-GET) is refused here.
    pub fn payload_json(&self) -> Result<Value, JwsError> {
        serde_json::from_slice(&self.payload).map_err(|e| malformed(format!("the payload is not JSON: {e}")))
    }
}

/// An External Account Binding (RFC 8555 §7.3.4): a JWS over the account key, signed with
/// the HMAC key the CA gave out with `kid`. [`ExternalBinding::verify`] checks it.
#[derive(Clone, Debug)]
pub struct ExternalBinding {
    pub kid: String,
    alg: String,
    url: String,
    payload: Vec<u8>,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

impl ExternalBinding {
    /// Decodes the `externalAccountBinding` member of a newAccount payload.
    pub fn parse(v: &Value) -> Result<ExternalBinding, JwsError> {
        let part = |name: &str| -> Result<&str, JwsError> {
            v.get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| malformed(format!("externalAccountBinding has no string '{name}'")))
        };
        let (protected_b64, payload_b64, sig_b64) = (part("protected")?, part("payload")?, part("signature")?);
        let header: Value = serde_json::from_slice(&b64("the binding's protected header", protected_b64)?)
            .map_err(|e| malformed(format!("the binding's protected header is not JSON: {e}")))?;
        let text = |name: &str| header.get(name).and_then(Value::as_str).map(str::to_string);
        if header.get("nonce").is_some() {
            return Err(malformed("the external account binding must not carry a nonce"));
        }
        Ok(ExternalBinding {
            kid: text("kid").ok_or_else(|| malformed("the binding's protected header has no 'kid'"))?,
            alg: text("alg").ok_or_else(|| malformed("the binding's protected header has no 'alg'"))?,
            url: text("url").ok_or_else(|| malformed("the binding's protected header has no 'url'"))?,
            payload: b64("the binding's payload", payload_b64)?,
            signing_input: format!("{protected_b64}.{payload_b64}").into_bytes(),
            signature: b64("the binding's signature", sig_b64)?,
        })
    }

    /// Checks that the binding is HMAC-signed with `hmac_key`, names `url` (the newAccount
    /// URL), and binds `account_key`.
    pub fn verify(&self, hmac_key: &[u8], url: &str, account_key: &Jwk) -> Result<(), JwsError> {
        let algorithm = match self.alg.as_str() {
            "HS256" => hmac::HMAC_SHA256,
            "HS384" => hmac::HMAC_SHA384,
            "HS512" => hmac::HMAC_SHA512,
            other => {
                return Err(JwsError::BadAlgorithm(format!(
                    "the external account binding is signed with '{other}'; use HS256"
                )))
            }
        };
        hmac::verify(
            &hmac::Key::new(algorithm, hmac_key),
            &self.signing_input,
            &self.signature,
        )
        .map_err(|_| JwsError::BadSignature("the external account binding's MAC does not verify".into()))?;
        if self.url != url {
            return Err(malformed(
                "the external account binding names another URL than newAccount",
            ));
        }
        let bound: Value = serde_json::from_slice(&self.payload)
            .map_err(|e| malformed(format!("the binding's payload is not a JWK: {e}")))?;
        if Jwk::from_json(&bound)? != *account_key {
            return Err(malformed(
                "the external account binding binds another key than the account's",
            ));
        }
        Ok(())
    }
}

/// The key authorization of a challenge token (RFC 8555 §8.1).
pub fn key_authorization(token: &str, key: &Jwk) -> String {
    format!("{token}.{}", b64_encode(&key.thumbprint()))
}

/// What an ACME client does with keys, for tests of the server: account keys of every
/// type that sign JWSs, and External Account Bindings.
#[cfg(any(test, feature = "testing"))]
pub mod test_client {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};

    /// A client account key that signs JWSs, for tests.
    pub enum TestKey {
        Ec(EcdsaKeyPair, bool),
        Ed(Ed25519KeyPair),
        Rsa(RsaKeyPair),
    }

    impl TestKey {
        pub fn p256() -> TestKey {
            let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
            TestKey::Ec(EcdsaKeyPair::generate(alg).unwrap(), true)
        }
        pub fn p384() -> TestKey {
            let alg = &signature::ECDSA_P384_SHA384_FIXED_SIGNING;
            TestKey::Ec(EcdsaKeyPair::generate(alg).unwrap(), false)
        }
        pub fn ed25519() -> TestKey {
            TestKey::Ed(Ed25519KeyPair::generate().unwrap())
        }
        /// A P-256 key from its PKCS#8 form, e.g. the key a certificate was requested with.
        pub fn p256_from_pkcs8(der: &[u8]) -> TestKey {
            let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
            TestKey::Ec(EcdsaKeyPair::from_pkcs8(alg, der).unwrap(), true)
        }
        pub fn rsa() -> TestKey {
            TestKey::Rsa(RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap())
        }
        pub fn jwk(&self) -> Value {
            let v = match self {
                TestKey::Ec(k, p256) => {
                    let point = k.public_key().as_ref();
                    let n = if *p256 { 32 } else { 48 };
                    let crv = if *p256 { "P-256" } else { "P-384" };
                    serde_json::json!({"kty": "EC", "crv": crv, "x": b64_encode(&point[1..1 + n]), "y": b64_encode(&point[1 + n..])})
                }
                TestKey::Ed(k) => {
                    serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": b64_encode(k.public_key().as_ref())})
                }
                TestKey::Rsa(k) => {
                    let c = k.public_key().into();
                    let c: RsaPublicKeyComponents<Vec<u8>> = c;
                    serde_json::json!({"kty": "RSA", "n": b64_encode(&c.n), "e": b64_encode(&c.e)})
                }
            };
            v
        }
        pub fn alg(&self) -> &'static str {
            match self {
                TestKey::Ec(_, true) => "ES256",
                TestKey::Ec(_, false) => "ES384",
                TestKey::Ed(_) => "EdDSA",
                TestKey::Rsa(_) => "RS256",
            }
        }
        pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
            let rng = SystemRandom::new();
            match self {
                TestKey::Ec(k, _) => k.sign(&rng, msg).unwrap().as_ref().to_vec(),
                TestKey::Ed(k) => k.sign(msg).as_ref().to_vec(),
                TestKey::Rsa(k) => {
                    let mut sig = vec![0; k.public_modulus_len()];
                    k.sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig).unwrap();
                    sig
                }
            }
        }
        /// A flattened JWS of `payload` with `header` (alg added).
        pub fn jws(&self, mut header: Value, payload: &[u8]) -> Vec<u8> {
            header["alg"] = self.alg().into();
            let p = b64_encode(header.to_string().as_bytes());
            let b = b64_encode(payload);
            let sig = self.sign(format!("{p}.{b}").as_bytes());
            serde_json::json!({"protected": p, "payload": b, "signature": b64_encode(&sig)})
                .to_string()
                .into_bytes()
        }
    }

    /// An EAB JWS over `jwk`, as a client builds it.
    pub fn binding(kid: &str, hmac_key: &[u8], url: &str, jwk: &Value) -> Value {
        let p = b64_encode(
            serde_json::json!({"alg": "HS256", "kid": kid, "url": url})
                .to_string()
                .as_bytes(),
        );
        let b = b64_encode(jwk.to_string().as_bytes());
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, hmac_key),
            format!("{p}.{b}").as_bytes(),
        );
        serde_json::json!({"protected": p, "payload": b, "signature": b64_encode(tag.as_ref())})
    }
}

#[cfg(test)]
mod tests {
    use super::test_client::{binding, TestKey};
    use super::*;

    #[test]
    fn a_certificates_key_reads_as_the_jwk_of_the_same_key() {
        use crate::issue::{build_certificate, CertSpec};
        use crate::key::{KeyType, SigningKey};
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, RsaKeyPair};

        let cert = |key: &SigningKey| {
            let subject = crate::name::SubjectSpec::parse("CN=k").unwrap().to_name().unwrap();
            let spec = CertSpec::self_signed_ca(
                crate::serial::Serial::from_u64(1),
                (0, 86_400),
                subject,
                key.spki(),
                None,
            );
            build_certificate(None, Some(key), &spec).unwrap()
        };
        for (kind, alg, n) in [
            (KeyType::EcP256, &signature::ECDSA_P256_SHA256_FIXED_SIGNING, 32),
            (KeyType::EcP384, &signature::ECDSA_P384_SHA384_FIXED_SIGNING, 48),
        ] {
            let key = SigningKey::generate(kind).unwrap();
            let pair = EcdsaKeyPair::from_pkcs8(alg, &key.to_pkcs8().unwrap()).unwrap();
            let point = pair.public_key().as_ref();
            let (x, y) = (point[1..1 + n].to_vec(), point[1 + n..].to_vec());
            let expected = if n == 32 {
                Jwk::P256 { x, y }
            } else {
                Jwk::P384 { x, y }
            };
            assert_eq!(Jwk::from_certificate(&cert(&key)).unwrap(), expected, "{kind:?}");
        }
        let key = SigningKey::generate(KeyType::Rsa2048).unwrap();
        let pair = RsaKeyPair::from_pkcs8(&key.to_pkcs8().unwrap()).unwrap();
        let c: RsaPublicKeyComponents<Vec<u8>> = pair.public_key().into();
        assert_eq!(Jwk::from_certificate(&cert(&key)).unwrap(), Jwk::Rsa { n: c.n, e: c.e });
        // Bytes that are no certificate are refused.
        assert!(matches!(Jwk::from_certificate(b"no"), Err(JwsError::Malformed(_))));
    }

    #[test]
    fn every_key_type_signs_a_jws_that_verifies_and_a_changed_one_does_not() {
        for key in [TestKey::p256(), TestKey::p384(), TestKey::ed25519(), TestKey::rsa()] {
            let header = serde_json::json!({"nonce": "n1", "url": "https://ca/acme/new-account", "jwk": key.jwk()});
            let body = key.jws(header, br#"{"termsOfServiceAgreed":true}"#);
            let jws = Jws::parse(&body).unwrap();
            let KeyRef::Jwk(jwk) = &jws.key else {
                panic!("jwk expected")
            };
            jws.verify(jwk).unwrap();
            assert_eq!(jws.nonce.as_deref(), Some("n1"));
            assert_eq!(Jwk::from_canonical(&jwk.canonical_json()).unwrap(), *jwk);
            // Another payload under the same signature.
            let mut v: Value = serde_json::from_slice(&body).unwrap();
            v["payload"] = b64_encode(b"{}").into();
            let forged = Jws::parse(v.to_string().as_bytes()).unwrap();
            assert!(
                matches!(forged.verify(jwk), Err(JwsError::BadSignature(_))),
                "{}",
                key.alg()
            );
        }
    }

    #[test]
    fn the_thumbprint_is_the_one_of_rfc_7638() {
        // RFC 7638 §3.1.
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        let key = Jwk::from_json(&jwk).unwrap();
        assert_eq!(
            b64_encode(&key.thumbprint()),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn malformed_headers_algorithms_and_keys_are_refused_by_kind() {
        let key = TestKey::p256();
        let url = "https://ca/x";
        type Kind = fn(&JwsError) -> bool;
        let cases: Vec<(Vec<u8>, Kind)> = vec![
            (b"not json".to_vec(), |e| matches!(e, JwsError::Malformed(_))),
            (br#"{"protected":"e30","payload":""}"#.to_vec(), |e| {
                matches!(e, JwsError::Malformed(_))
            }),
            (key.jws(serde_json::json!({"url": url}), b""), |e| {
                matches!(e, JwsError::Malformed(_))
            }),
            (
                key.jws(serde_json::json!({"url": url, "kid": "a", "jwk": key.jwk()}), b""),
                |e| matches!(e, JwsError::Malformed(_)),
            ),
            (
                {
                    let mut jwk = key.jwk();
                    jwk["d"] = "AAAA".into();
                    key.jws(serde_json::json!({"url": url, "jwk": jwk}), b"")
                },
                |e| matches!(e, JwsError::BadKey(_)),
            ),
            (
                key.jws(serde_json::json!({"url": url, "jwk": {"kty": "oct", "k": "AAAA"}}), b""),
                |e| matches!(e, JwsError::BadKey(_)),
            ),
        ];
        for (body, kind) in cases {
            let err = Jws::parse(&body).unwrap_err();
            assert!(kind(&err), "{err:?} for {}", String::from_utf8_lossy(&body));
        }
        // alg none and HS256 are not account algorithms.
        for alg in ["none", "HS256"] {
            let p = b64_encode(
                serde_json::json!({"alg": alg, "url": url, "kid": "k"})
                    .to_string()
                    .as_bytes(),
            );
            let body = serde_json::json!({"protected": p, "payload": "", "signature": ""}).to_string();
            assert!(matches!(Jws::parse(body.as_bytes()), Err(JwsError::BadAlgorithm(_))));
        }
        // An EC key claiming RS256.
        let p = b64_encode(
            serde_json::json!({"alg": "RS256", "url": url, "jwk": key.jwk()})
                .to_string()
                .as_bytes(),
        );
        let body = serde_json::json!({"protected": p, "payload": "", "signature": ""}).to_string();
        assert!(matches!(Jws::parse(body.as_bytes()), Err(JwsError::BadAlgorithm(_))));
    }

    #[test]
    fn an_external_binding_verifies_only_with_its_key_url_and_account_key() {
        let key = TestKey::p256();
        let jwk = Jwk::from_json(&key.jwk()).unwrap();
        let url = "https://ca/acme/new-account";
        let eab = ExternalBinding::parse(&binding("kid1", b"secret", url, &key.jwk())).unwrap();
        assert_eq!(eab.kid, "kid1");
        eab.verify(b"secret", url, &jwk).unwrap();
        assert!(matches!(
            eab.verify(b"other", url, &jwk),
            Err(JwsError::BadSignature(_))
        ));
        assert!(eab.verify(b"secret", "https://ca/other", &jwk).is_err());
        let another = Jwk::from_json(&TestKey::p256().jwk()).unwrap();
        assert!(eab.verify(b"secret", url, &another).is_err());
    }
}
