//! What relying parties fetch without a token, on both listeners: CA
//! certificates (AIA caIssuers), CRLs (CDP) and OCSP (GET and POST, RFC 6960
//! appendix A).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use hapki_domain::pem::{encode, PemLabel};

use crate::error::ApiError;
use crate::pki::crl_bytes::BuiltCrl;
use crate::pki::{OcspAnswer, Pki};

pub fn routes() -> Router<Arc<Pki>> {
    Router::new()
        .route("/v1/ca.pem", get(default_ca_pem))
        .route("/v1/crl", get(default_crl_der))
        .route("/v1/crl.pem", get(default_crl_pem))
        .route("/v1/issuers/{id}/ca.der", get(issuer_ca_der))
        .route("/v1/issuers/{id}/ca.pem", get(issuer_ca_pem))
        .route("/v1/issuers/{id}/crl", get(issuer_crl_der))
        .route("/v1/issuers/{id}/crl.pem", get(issuer_crl_pem))
        .route("/v1/issuers/{id}/crl/{partition}", get(issuer_partition_crl))
        .route("/v1/issuers/{id}/delta-crl", get(issuer_delta_crl_der))
        .route("/v1/issuers/{id}/delta-crl.pem", get(issuer_delta_crl_pem))
        .route("/ocsp", post(ocsp_post))
        .route("/ocsp/{*request}", get(ocsp_get))
}

fn bytes(content_type: &'static str, body: impl Into<Bytes>) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body.into()).into_response()
}

fn ca_pem(pki: &Pki, id: Option<&str>) -> Result<Response, ApiError> {
    let issuer = pki.issuer(id)?;
    Ok(bytes(
        "application/x-pem-file",
        issuer.chain_pem().concat().into_bytes(),
    ))
}

async fn crl_der(pki: &Pki, id: Option<&str>) -> Result<Arc<BuiltCrl>, ApiError> {
    let issuer = pki.issuer(id)?;
    Ok(pki.crl_der(&issuer.record.id).await?)
}

fn crl_response(crl: Arc<BuiltCrl>) -> Response {
    bytes("application/pkix-crl", crl.der.clone())
}

fn crl_pem_response(crl: Arc<BuiltCrl>) -> Response {
    bytes(
        "application/x-pem-file",
        encode(PemLabel::X509Crl, &crl.der).into_bytes(),
    )
}

async fn default_ca_pem(State(pki): State<Arc<Pki>>) -> Result<Response, ApiError> {
    ca_pem(&pki, None)
}

async fn issuer_ca_pem(State(pki): State<Arc<Pki>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    ca_pem(&pki, Some(&id))
}

async fn issuer_ca_der(State(pki): State<Arc<Pki>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let issuer = pki.issuer(Some(&id))?;
    Ok(bytes("application/pkix-cert", issuer.record.cert_der.clone()))
}

async fn default_crl_der(State(pki): State<Arc<Pki>>) -> Result<Response, ApiError> {
    Ok(crl_response(crl_der(&pki, None).await?))
}

async fn default_crl_pem(State(pki): State<Arc<Pki>>) -> Result<Response, ApiError> {
    Ok(crl_pem_response(crl_der(&pki, None).await?))
}

async fn issuer_crl_der(State(pki): State<Arc<Pki>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(crl_response(crl_der(&pki, Some(&id)).await?))
}

async fn issuer_crl_pem(State(pki): State<Arc<Pki>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(crl_pem_response(crl_der(&pki, Some(&id)).await?))
}

/// `GET /v1/issuers/{id}/crl/{p}` (DER) and `/v1/issuers/{id}/crl/{p}.pem`.
async fn issuer_partition_crl(
    State(pki): State<Arc<Pki>>,
    Path((id, partition)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (number, pem) = match partition.strip_suffix(".pem") {
        Some(n) => (n, true),
        None => (partition.as_str(), false),
    };
    let number: u32 = number.parse().map_err(|_| {
        crate::pki::PkiError::not_found(format!(
            "'{partition}' is not a CRL partition: the path ends in its number, as certificates name it"
        ))
    })?;
    let issuer = pki.issuer(Some(&id))?;
    let crl = pki.partition_crl_der(&issuer.record.id, number).await?;
    Ok(if pem { crl_pem_response(crl) } else { crl_response(crl) })
}

async fn issuer_delta_crl_der(State(pki): State<Arc<Pki>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let issuer = pki.issuer(Some(&id))?;
    Ok(crl_response(pki.delta_crl_der(&issuer.record.id).await?))
}

async fn issuer_delta_crl_pem(State(pki): State<Arc<Pki>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let issuer = pki.issuer(Some(&id))?;
    Ok(crl_pem_response(pki.delta_crl_der(&issuer.record.id).await?))
}

fn ocsp_response(der: impl Into<Bytes>) -> Response {
    bytes("application/ocsp-response", der)
}

/// An OCSP answer to a GET, with the caching headers of RFC 5019 §6.2 when it
/// carries no nonce, so HTTP caches and CDNs in front of the responder keep it
/// until its nextUpdate (and no longer: a kept answer is served after its thisUpdate).
fn ocsp_get_response(answer: OcspAnswer) -> Response {
    let Some(fresh) = answer.cacheable else {
        return ocsp_response(answer.der);
    };
    let etag = format!("\"{}\"", hex::encode(&hapki_domain::issue::sha256(&answer.der)[..16]));
    let mut resp = ocsp_response(answer.der);
    let at = |t: u64| httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t));
    let max_age = fresh.next_update.saturating_sub(answer.at.max(fresh.this_update));
    let headers = resp.headers_mut();
    for (name, value) in [
        (header::LAST_MODIFIED, at(fresh.this_update)),
        (header::EXPIRES, at(fresh.next_update)),
        (
            header::CACHE_CONTROL,
            format!("max-age={max_age}, public, no-transform, must-revalidate"),
        ),
        (header::ETAG, etag),
    ] {
        if let Ok(v) = header::HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    resp
}

async fn ocsp_post(State(pki): State<Arc<Pki>>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    // A body over the size limit is no OCSP request: answer in OCSP, like any other malformed one.
    let Ok(body) = body else {
        return ocsp_response(hapki_domain::ocsp::refusal(hapki_domain::ocsp::OcspRefusal::Malformed));
    };
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.is_empty() && !ct.starts_with("application/ocsp-request") {
        tracing::debug!("OCSP POST with content type {ct}");
    }
    ocsp_response(pki.ocsp(&body).der)
}

async fn ocsp_get(State(pki): State<Arc<Pki>>, Path(request): Path<String>) -> Response {
    // The path is percent-decoded by the router; what remains is base64 (RFC 6960 appendix A.1).
    let b64: String = request.chars().filter(|c| !c.is_whitespace()).collect();
    match base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()) {
        Ok(der) => ocsp_get_response(pki.ocsp(&der)),
        Err(_) => ocsp_response(hapki_domain::ocsp::refusal(hapki_domain::ocsp::OcspRefusal::Malformed)),
    }
}
