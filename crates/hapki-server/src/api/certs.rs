//! Certificates: issue from a CSR, generate a key and certificate, get, list
//! with filters, revoke.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use hapki_api::certs::{
    CertList, CertQuery, CertState, CertView, GenerateRequest, Generated, IssueRequest, ReadQuery, RevokeRequest,
};
use hapki_domain::pem::{encode, PemLabel};
use hapki_domain::revocation::RevocationReason;
use hapki_domain::serial::Serial;
use hapki_store::{CertFilter, CertRecord, CertStatus};

use super::{json, Json};
use crate::auth::{Action, Caller};
use crate::error::{ApiError, RequestError};
use crate::pki::{Pki, PkiError};

/// A certificate as the API shows it, with its PEM when `with_pem`.
fn cert_view(c: CertRecord, with_pem: bool, now: u64) -> CertView {
    let status = match (&c.revoked, c.not_after <= now) {
        (Some(_), _) => CertState::Revoked,
        (None, true) => CertState::Expired,
        (None, false) => CertState::Valid,
    };
    CertView {
        serial: c.serial.to_hex(),
        issuer_id: c.issuer_id,
        profile: c.profile,
        subject: c.subject,
        sans: c.sans,
        not_before: c.not_before,
        not_after: c.not_after,
        issued_at: c.issued_at,
        status,
        revoked_at: c.revoked.map(|r| r.at),
        revocation_reason: c.revoked.map(|r| r.reason.to_string()),
        certificate: with_pem.then(|| encode(PemLabel::Certificate, &c.der)),
    }
}

/// The `Idempotency-Key` header, scoped to the caller's token so that one client's key
/// never answers another's request.
fn idempotency_key(headers: &HeaderMap, caller: &Caller) -> Result<Option<[u8; 32]>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            RequestError::Malformed("the Idempotency-Key header must be 1 to 255 visible ASCII characters".into())
        })?;
    let scoped = format!("{}\0{key}", caller.token_id);
    Ok(Some(
        hapki_domain::issue::sha256(scoped.as_bytes())
            .try_into()
            .expect("SHA-256 is 32 bytes"),
    ))
}

/// `POST /v1/certs`.
pub async fn issue(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    headers: HeaderMap,
    Json(req): Json<IssueRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let issued = pki.issue(&caller, &req, idempotency_key(&headers, &caller)?).await?;
    Ok((StatusCode::CREATED, json(issued)))
}

/// `POST /v1/certs/generate`.
pub async fn generate(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<GenerateRequest>,
) -> Result<impl IntoResponse, ApiError> {
    caller.may(Action::Issue)?;
    let idempotency = idempotency_key(&headers, &caller)?;
    let pkcs12 = match body.format.as_deref() {
        None | Some("pem") => false,
        Some("pkcs12") => true,
        Some(other) => return Err(PkiError::invalid(format!("format '{other}' is not pem or pkcs12")).into()),
    };
    if pkcs12 && body.password.as_deref().unwrap_or("").is_empty() {
        return Err(PkiError::invalid("a PKCS#12 file needs a password (--password)").into());
    }
    let (issued, key) = pki.generate(&caller, &body, idempotency).await?;
    let mut out = Generated {
        issued,
        private_key: None,
        pkcs12: None,
    };
    if pkcs12 {
        let issued = &out.issued;
        let mut chain = hapki_domain::pem::certificates(issued.certificate.as_bytes())?;
        let issuer = pki.issuer(Some(&issued.issuer_id))?;
        chain.push(issuer.record.cert_der.clone());
        chain.extend(issuer.record.chain_der.iter().cloned());
        let name = issued.subject.clone();
        let password = body.password.clone().unwrap_or_default();
        let p12 = pki
            .work
            .keygen
            .run(&caller.token_id, move || {
                hapki_domain::pkcs12::write(&name, &key, &chain, &password)
            })
            .await??;
        out.pkcs12 = Some(base64::engine::general_purpose::STANDARD.encode(p12));
    } else {
        out.private_key = Some(encode(PemLabel::PrivateKey, &key));
    }
    Ok((StatusCode::CREATED, json(out)))
}

fn parse_serial(s: &str) -> Result<Serial, ApiError> {
    Ok(Serial::from_hex(s)?)
}

/// `GET /v1/certs/{serial}`.
pub async fn get(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Path(serial): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    caller.may(Action::ReadCert)?;
    let q: ReadQuery = serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
        .map_err(|e| RequestError::Malformed(format!("bad query: {e}")))?;
    let serial = parse_serial(&serial)?;
    if q.consistent {
        pki.cluster.linearizable().await?;
    }
    let cert = pki
        .reader()?
        .cert(&serial)?
        .ok_or_else(|| PkiError::NoCertificate(serial.to_string()))?;
    pki.authorize_read(&caller, &cert)?;
    Ok(json(cert_view(cert, true, pki.now())))
}

/// Parses `30d`, `12h`, `45m`, `90s` or plain seconds.
pub fn parse_duration(s: &str) -> Result<u64, PkiError> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('d') => (&s[..s.len() - 1], 86_400),
        Some('h') => (&s[..s.len() - 1], 3_600),
        Some('m') => (&s[..s.len() - 1], 60),
        Some('s') => (&s[..s.len() - 1], 1),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| PkiError::invalid(format!("'{s}' is not a duration like 30d, 12h or 3600")))
}

/// `GET /v1/certs?status=&subject=&san=&expiring_within=&issuer=&limit=&after=`.
pub async fn list(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    caller.may(Action::ListCerts)?;
    let q: CertQuery = serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
        .map_err(|e| RequestError::Malformed(format!("bad query: {e}")))?;
    if q.consistent {
        pki.cluster.linearizable().await?;
    }
    let now = pki.now();
    let status = match q.status.as_deref() {
        None | Some("all") => None,
        Some("valid") => Some(CertStatus::Valid),
        Some("revoked") => Some(CertStatus::Revoked),
        Some("expired") => Some(CertStatus::Expired),
        Some(other) => {
            return Err(PkiError::invalid(format!("status '{other}' is not valid, revoked, expired or all")).into())
        }
    };
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(PkiError::invalid("limit must be between 1 and 1000").into());
    }
    let filter = CertFilter {
        status,
        subject: q.subject,
        san: q.san,
        expiring_before: q
            .expiring_within
            .as_deref()
            .map(parse_duration)
            .transpose()?
            .map(|d| now + d),
        issuer_id: q.issuer,
        after: q.after.as_deref().map(parse_serial).transpose()?,
        limit,
        now,
    };
    let certs = pki.reader()?.certs(&filter)?;
    let next_after = (certs.len() == limit)
        .then(|| certs.last().map(|c| c.serial.to_hex()))
        .flatten();
    let certs = certs.into_iter().map(|c| cert_view(c, false, now)).collect();
    Ok(json(CertList { certs, next_after }))
}

/// `POST /v1/certs/{serial}/revoke`.
pub async fn revoke(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    headers: HeaderMap,
    Path(serial): Path<String>,
    Json(body): Json<RevokeRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let serial = parse_serial(&serial)?;
    let reason: RevocationReason = body.reason.as_deref().unwrap_or("unspecified").parse()?;
    let key = idempotency_key(&headers, &caller)?;
    Ok(json(pki.revoke(&caller, &serial, reason, key).await?))
}
