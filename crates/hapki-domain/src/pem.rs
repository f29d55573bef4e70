//! PEM in and out: the labels hapki reads and writes, and input that may be PEM or DER.

use base64::Engine;

use crate::DomainError;

/// PEM labels hapki knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PemLabel {
    Certificate,
    CertificateRequest,
    NewCertificateRequest,
    PrivateKey,
    X509Crl,
}

impl PemLabel {
    pub fn as_str(self) -> &'static str {
        match self {
            PemLabel::Certificate => "CERTIFICATE",
            PemLabel::CertificateRequest => "CERTIFICATE REQUEST",
            PemLabel::NewCertificateRequest => "NEW CERTIFICATE REQUEST",
            PemLabel::PrivateKey => "PRIVATE KEY",
            PemLabel::X509Crl => "X509 CRL",
        }
    }
}

/// Encodes DER as PEM with 64-character lines.
pub fn encode(label: PemLabel, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {}-----\n", label.as_str());
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {}-----\n", label.as_str()));
    out
}

/// Every PEM block in `text` as (label, DER), in order.
pub fn decode_all(text: &str) -> Result<Vec<(String, Vec<u8>)>, DomainError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let label_end = after
            .find("-----")
            .ok_or_else(|| DomainError::invalid("PEM header is not terminated"))?;
        let label = after[..label_end].to_string();
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let end = body_start
            .find(&end_marker)
            .ok_or_else(|| DomainError::invalid(format!("PEM block '{label}' has no END line")))?;
        let b64: String = body_start[..end].chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|_| DomainError::invalid(format!("PEM block '{label}' is not valid base64")))?;
        out.push((label, der));
        rest = &body_start[end + end_marker.len()..];
    }
    Ok(out)
}

/// Reads one object that may be PEM (with one of `labels`) or raw DER.
pub fn decode_one(input: &[u8], labels: &[PemLabel]) -> Result<Vec<u8>, DomainError> {
    if input.first() == Some(&0x30) {
        return Ok(input.to_vec());
    }
    let text = std::str::from_utf8(input).map_err(|_| DomainError::invalid("input is neither PEM text nor DER"))?;
    let wanted: Vec<&str> = labels.iter().map(|l| l.as_str()).collect();
    let blocks = decode_all(text)?;
    if blocks.is_empty() {
        return Err(DomainError::invalid(format!(
            "no PEM block found; expected -----BEGIN {}-----",
            wanted[0]
        )));
    }
    blocks
        .into_iter()
        .find(|(l, _)| wanted.contains(&l.as_str()))
        .map(|(_, der)| der)
        .ok_or_else(|| DomainError::invalid(format!("no PEM block labelled {}", wanted.join(" or "))))
}

/// Every certificate in a PEM text (or the one DER certificate given).
pub fn certificates(input: &[u8]) -> Result<Vec<Vec<u8>>, DomainError> {
    if input.first() == Some(&0x30) {
        return Ok(vec![input.to_vec()]);
    }
    let text = std::str::from_utf8(input).map_err(|_| DomainError::invalid("input is neither PEM text nor DER"))?;
    let certs: Vec<Vec<u8>> = decode_all(text)?
        .into_iter()
        .filter(|(l, _)| l == "CERTIFICATE")
        .map(|(_, d)| d)
        .collect();
    if certs.is_empty() {
        return Err(DomainError::invalid("no -----BEGIN CERTIFICATE----- block found"));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips() {
        let der = vec![0x30, 0x03, 1, 2, 3];
        let pem = encode(PemLabel::Certificate, &der);
        assert_eq!(decode_one(pem.as_bytes(), &[PemLabel::Certificate]).unwrap(), der);
        assert!(decode_one(pem.as_bytes(), &[PemLabel::PrivateKey]).is_err());
    }
}
