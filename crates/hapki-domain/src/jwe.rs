//! JSON Web Encryption (RFC 7516) in compact serialization, with `RSA-OAEP-256`
//! key transport and `A256GCM` content encryption (RFC 7518 §4.3, §5.3): how a
//! client encrypts a private key to the key archive's transport certificate.
//! aws-lc-rs does RSA-OAEP and AES-GCM; this module only lays the parts out as
//! the RFC says, so any JOSE library can produce what the archive reads.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{
    OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
    OAEP_SHA256_MGF1SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;

use crate::DomainError;

/// The protected header every JWE this module writes carries.
const HEADER: &str = r#"{"alg":"RSA-OAEP-256","enc":"A256GCM"}"#;
/// The largest JWE [`decrypt`] reads (an RSA-4096 PKCS#8 key is about 2.4 KB).
pub const MAX_LEN: usize = 64 * 1024;

fn invalid(m: impl Into<String>) -> DomainError {
    DomainError::Invalid(m.into())
}

/// Encrypts `plaintext` to the RSA public key `spki_der` (SubjectPublicKeyInfo).
pub fn encrypt(spki_der: &[u8], plaintext: &[u8]) -> Result<String, DomainError> {
    let public = PublicEncryptingKey::from_der(spki_der)
        .map_err(|e| invalid(format!("the transport certificate's key is not an RSA key: {e}")))?;
    let public = OaepPublicEncryptingKey::new(public).map_err(|e| DomainError::Crypto(e.to_string()))?;
    let rng = SystemRandom::new();
    let mut cek = [0u8; 32];
    let mut iv = [0u8; 12];
    rng.fill(&mut cek).map_err(|e| DomainError::Crypto(e.to_string()))?;
    rng.fill(&mut iv).map_err(|e| DomainError::Crypto(e.to_string()))?;
    let mut wrapped = vec![0u8; public.ciphertext_size()];
    let wrapped = public
        .encrypt(&OAEP_SHA256_MGF1SHA256, &cek, &mut wrapped, None)
        .map_err(|e| DomainError::Crypto(e.to_string()))?
        .to_vec();
    let protected = B64.encode(HEADER);
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &cek).map_err(|e| DomainError::Crypto(e.to_string()))?);
    let mut body = plaintext.to_vec();
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(iv),
            Aad::from(protected.as_bytes()),
            &mut body,
        )
        .map_err(|e| DomainError::Crypto(e.to_string()))?;
    Ok([
        protected,
        B64.encode(wrapped),
        B64.encode(iv),
        B64.encode(&body),
        B64.encode(tag.as_ref()),
    ]
    .join("."))
}

/// Opens a JWE that [`encrypt`] (or any JOSE library, with the same algorithms) made for
/// the RSA key `pkcs8`. Another algorithm, a damaged part, or another key is refused.
pub fn decrypt(pkcs8: &[u8], jwe: &str) -> Result<Vec<u8>, DomainError> {
    if jwe.len() > MAX_LEN {
        return Err(invalid(format!("the encrypted key is over {MAX_LEN} bytes")));
    }
    let parts: Vec<&str> = jwe.trim().split('.').collect();
    let [protected, wrapped, iv, body, tag] = parts[..] else {
        return Err(invalid(
            "the encrypted key is not a JWE in compact form (five base64url parts separated by dots)",
        ));
    };
    let part = |name: &str, p: &str| {
        B64.decode(p)
            .map_err(|_| invalid(format!("the JWE's {name} is not base64url")))
    };
    let header: serde_json::Value = serde_json::from_slice(&part("header", protected)?)
        .map_err(|_| invalid("the JWE's protected header is not JSON"))?;
    let (alg, enc) = (header["alg"].as_str(), header["enc"].as_str());
    if alg != Some("RSA-OAEP-256") || enc != Some("A256GCM") {
        return Err(invalid(format!(
            "the JWE uses alg {} and enc {}; the archive takes RSA-OAEP-256 with A256GCM",
            alg.unwrap_or("(none)"),
            enc.unwrap_or("(none)")
        )));
    }
    if header.get("zip").is_some() || header.get("crit").is_some() {
        return Err(invalid(
            "the JWE asks for compression or critical extensions, which the archive does not take",
        ));
    }
    let private = PrivateDecryptingKey::from_pkcs8(pkcs8).map_err(|e| DomainError::Crypto(e.to_string()))?;
    let private = OaepPrivateDecryptingKey::new(private).map_err(|e| DomainError::Crypto(e.to_string()))?;
    let mut cek = vec![0u8; private.min_output_size()];
    let not_ours = || invalid("the JWE was not encrypted to this archive's transport certificate, or was altered");
    let cek: [u8; 32] = private
        .decrypt(
            &OAEP_SHA256_MGF1SHA256,
            &part("encrypted key", wrapped)?,
            &mut cek,
            None,
        )
        .map_err(|_| not_ours())?
        .try_into()
        .map_err(|_| invalid("the JWE's content key is not 256 bits"))?;
    let iv: [u8; 12] = part("IV", iv)?
        .try_into()
        .map_err(|_| invalid("the JWE's IV is not 96 bits"))?;
    let tag = part("tag", tag)?;
    if tag.len() != 16 {
        return Err(invalid("the JWE's tag is not 128 bits"));
    }
    let mut in_out = part("ciphertext", body)?;
    in_out.extend_from_slice(&tag);
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &cek).map_err(|e| DomainError::Crypto(e.to_string()))?);
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(iv),
            Aad::from(protected.as_bytes()),
            &mut in_out,
        )
        .map_err(|_| not_ours())?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{KeyType, SigningKey};

    #[test]
    fn a_key_encrypted_to_the_transport_key_opens_with_it_only() {
        let transport = SigningKey::generate(KeyType::Rsa2048).unwrap();
        let jwe = encrypt(transport.spki_der(), b"the PKCS#8 of a key").unwrap();
        assert_eq!(jwe.split('.').count(), 5);
        let pkcs8 = transport.to_pkcs8().unwrap();
        assert_eq!(decrypt(&pkcs8, &jwe).unwrap(), b"the PKCS#8 of a key");

        let other = SigningKey::generate(KeyType::Rsa2048).unwrap().to_pkcs8().unwrap();
        let err = decrypt(&other, &jwe).unwrap_err().to_string();
        assert!(err.contains("not encrypted to this archive"), "{err}");
        // Any part altered: refused, with no plaintext.
        let parts: Vec<&str> = jwe.split('.').collect();
        for i in 1..5 {
            let mut altered: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
            let mut bytes = B64.decode(parts[i]).unwrap();
            bytes[0] ^= 1;
            altered[i] = B64.encode(bytes);
            assert!(decrypt(&pkcs8, &altered.join(".")).is_err(), "part {i}");
        }
        // Another algorithm in the header, or not a JWE at all.
        let none = format!(
            "{}.{}",
            B64.encode(r#"{"alg":"RSA1_5","enc":"A256GCM"}"#),
            parts[1..].join(".")
        );
        assert!(decrypt(&pkcs8, &none).unwrap_err().to_string().contains("RSA1_5"));
        assert!(decrypt(&pkcs8, "a.b.c").is_err());
        assert!(decrypt(&pkcs8, &"x".repeat(MAX_LEN + 1)).is_err());
        // An EC certificate cannot be a transport certificate.
        let ec = SigningKey::generate(KeyType::EcP256).unwrap();
        assert!(encrypt(ec.spki_der(), b"x").is_err());
    }
}
