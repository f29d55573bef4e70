//! EST's routes (RFC 7030): `/.well-known/est/{cacerts,simpleenroll,simplereenroll,csrattrs}`
//! for the `server` profile, and the same under `/.well-known/est/{profile}/`. Bodies are
//! base64 DER both ways (RFC 8951); refusals are text, with `WWW-Authenticate` where
//! credentials are missing or wrong.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use base64::Engine;

use crate::error::ApiError;
use crate::pki::est::{ClientTls, DEFAULT_PROFILE};
use crate::pki::{Pki, PkiError};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub fn routes() -> Router<Arc<Pki>> {
    Router::new()
        .route("/.well-known/est/cacerts", get(cacerts_default))
        .route("/.well-known/est/csrattrs", get(csrattrs_default))
        .route("/.well-known/est/simpleenroll", post(enroll_default))
        .route("/.well-known/est/simplereenroll", post(reenroll_default))
        .route("/.well-known/est/{label}/cacerts", get(cacerts))
        .route("/.well-known/est/{label}/csrattrs", get(csrattrs))
        .route("/.well-known/est/{label}/simpleenroll", post(enroll))
        .route("/.well-known/est/{label}/simplereenroll", post(reenroll))
}

/// A refusal as EST clients show it: the status and a line of text.
fn refusal(e: PkiError) -> Response {
    let unauthenticated = matches!(e, PkiError::Unauthenticated(_));
    let api = ApiError::from(e);
    let mut response = (
        api.status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", api.message),
    )
        .into_response();
    if unauthenticated || api.status == StatusCode::UNAUTHORIZED {
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"hapki EST\", charset=\"UTF-8\""),
        );
    }
    response
}

/// Base64 in lines of 64 characters, as MIME bodies and `openssl base64 -d` take it.
fn base64_lines(bytes: &[u8]) -> String {
    let flat = B64.encode(bytes);
    let mut out = String::with_capacity(flat.len() + flat.len() / 64 + 1);
    for line in flat.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out
}

/// A certs-only message, base64, as RFC 8951 asks.
fn certs(message: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/pkcs7-mime; smime-type=certs-only"),
            (header::HeaderName::from_static("content-transfer-encoding"), "base64"),
        ],
        base64_lines(&message),
    )
        .into_response()
}

/// A base64 body (line breaks and spaces allowed); DER as is is taken too.
fn body_der(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Vec<u8>, PkiError> {
    let body = body.map_err(|r| PkiError::invalid(format!("the request body could not be read: {}", r.body_text())))?;
    let pkcs10 = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/pkcs10"));
    if !pkcs10 {
        return Err(PkiError::invalid(
            "send the CSR as Content-Type: application/pkcs10 (base64 DER)",
        ));
    }
    if body.first() == Some(&0x30) {
        return Ok(body.to_vec());
    }
    let text: Vec<u8> = body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    B64.decode(&text)
        .map_err(|_| PkiError::invalid("the body is not a base64 PKCS#10 request"))
}

/// The token of HTTP Basic (its password; the user name is not looked at) or Bearer.
fn token(headers: &HeaderMap) -> Result<Option<String>, PkiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| PkiError::unauthenticated("the Authorization header is not text"))?;
    if let Some(basic) = value.strip_prefix("Basic ") {
        let decoded = B64
            .decode(basic.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(|| PkiError::unauthenticated("the Basic credentials are not base64 of user:password"))?;
        let (_, password) = decoded
            .split_once(':')
            .ok_or_else(|| PkiError::unauthenticated("the Basic credentials have no password"))?;
        return Ok(Some(password.to_string()));
    }
    if let Some(bearer) = value.strip_prefix("Bearer ") {
        return Ok(Some(bearer.trim().to_string()));
    }
    Err(PkiError::unauthenticated(
        "use HTTP Basic with an API token as the password, or a client certificate of this cluster",
    ))
}

async fn cacerts_default(State(pki): State<Arc<Pki>>) -> Response {
    cacerts(State(pki), Path(DEFAULT_PROFILE.to_string())).await
}

async fn cacerts(State(pki): State<Arc<Pki>>, Path(label): Path<String>) -> Response {
    match pki.est_cacerts(&label) {
        Ok(m) => certs(m),
        Err(e) => refusal(e),
    }
}

async fn csrattrs_default(State(pki): State<Arc<Pki>>) -> Response {
    csrattrs(State(pki), Path(DEFAULT_PROFILE.to_string())).await
}

/// The attributes a CSR should carry: challengePassword (for the channel binding).
async fn csrattrs(State(pki): State<Arc<Pki>>, Path(label): Path<String>) -> Response {
    if let Err(e) = pki.profile(&label) {
        return refusal(e);
    }
    // SEQUENCE { OBJECT IDENTIFIER challengePassword (1.2.840.113549.1.9.7) }
    let attrs = [
        0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x07,
    ];
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/csrattrs"),
            (header::HeaderName::from_static("content-transfer-encoding"), "base64"),
        ],
        base64_lines(&attrs),
    )
        .into_response()
}

async fn enroll_default(
    State(pki): State<Arc<Pki>>,
    headers: HeaderMap,
    tls: Option<Extension<ClientTls>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    enroll(State(pki), Path(DEFAULT_PROFILE.to_string()), headers, tls, body).await
}

async fn enroll(
    State(pki): State<Arc<Pki>>,
    Path(label): Path<String>,
    headers: HeaderMap,
    tls: Option<Extension<ClientTls>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let tls = tls.map(|Extension(t)| t).unwrap_or_default();
    let result = async {
        let token = token(&headers)?;
        let der = body_der(&headers, body)?;
        match token {
            Some(token) => {
                let caller = pki.caller(&token)?;
                pki.est_enroll(&caller, &label, der, &tls).await
            }
            // A certificate of this cluster enrolls for its own names only.
            None if tls.certificate.is_some() => pki.est_reenroll(Some(&label), der, &tls).await,
            None => Err(PkiError::unauthenticated(
                "enrollment needs HTTP Basic with an API token as the password (the user name is not looked at), \
                 or a client certificate of this cluster",
            )),
        }
    }
    .await;
    match result {
        Ok(m) => certs(m),
        Err(e) => refusal(e),
    }
}

async fn reenroll_default(
    State(pki): State<Arc<Pki>>,
    headers: HeaderMap,
    tls: Option<Extension<ClientTls>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    reenroll_at(&pki, None, &headers, tls, body).await
}

async fn reenroll(
    State(pki): State<Arc<Pki>>,
    Path(label): Path<String>,
    headers: HeaderMap,
    tls: Option<Extension<ClientTls>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    reenroll_at(&pki, Some(&label), &headers, tls, body).await
}

/// `simplereenroll` at `label` (or the default one): the client certificate's successor.
async fn reenroll_at(
    pki: &Pki,
    label: Option<&str>,
    headers: &HeaderMap,
    tls: Option<Extension<ClientTls>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let tls = tls.map(|Extension(t)| t).unwrap_or_default();
    let result = async { pki.est_reenroll(label, body_der(headers, body)?, &tls).await }.await;
    match result {
        Ok(m) => certs(m),
        Err(e) => refusal(e),
    }
}
