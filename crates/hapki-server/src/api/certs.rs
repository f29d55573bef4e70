//! Certificates: issue from a CSR, generate a key and certificate, get, list
//! with filters, revoke.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use hapki_api::certs::{CertQuery, GenerateRequest, IssueRequest, ReadQuery, RevokeRequest};
use hapki_domain::revocation::RevocationReason;
use hapki_domain::serial::Serial;

use super::{json, Json};
use crate::auth::Caller;
use crate::error::{ApiError, RequestError};
use crate::pki::Pki;

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
    let idempotency = idempotency_key(&headers, &caller)?;
    Ok((
        StatusCode::CREATED,
        json(pki.generate(&caller, &body, idempotency).await?),
    ))
}

fn parse_serial(s: &str) -> Result<Serial, ApiError> {
    Ok(Serial::from_hex(s).map_err(crate::pki::PkiError::from)?)
}

/// `GET /v1/certs/{serial}`.
pub async fn get(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Path(serial): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let q: ReadQuery = serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
        .map_err(|e| RequestError::Malformed(format!("bad query: {e}")))?;
    Ok(json(pki.cert(&caller, &serial, q.consistent).await?))
}

/// `GET /v1/certs?status=&subject=&san=&expiring_within=&issuer=&limit=&after=`.
pub async fn list(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let q: CertQuery = serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
        .map_err(|e| RequestError::Malformed(format!("bad query: {e}")))?;
    Ok(json(pki.certs(&caller, q).await?))
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
