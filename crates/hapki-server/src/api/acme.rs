//! ACME's routes (`/acme/...`, RFC 8555 and RFC 9773) on every node, and the operator's
//! `/v1/acme/...` routes. Each ACME answer carries a fresh `Replay-Nonce` and a link to
//! its directory; a refusal is an `application/problem+json` document with an ACME
//! error type, mapped to its status here and nowhere else.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, RawPathParams, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hapki_api::acme as wire;
use serde::Serialize;

use super::{json, Json};
use crate::auth::Caller;
use crate::error::{ApiError, RequestError};
use crate::pki::acme::{AcmeError, Answer, Directory, Kind, Verified, RENEWAL_RETRY_SECS};
use crate::pki::Pki;

/// The profile whose directory is also at `/acme/directory`.
const DEFAULT_PROFILE: &str = "server";

pub fn routes() -> Router<Arc<Pki>> {
    Router::new()
        .route("/acme/directory", get(default_directory))
        .route("/acme/{profile}/directory", get(directory))
        .route("/acme/{profile}/new-nonce", get(new_nonce_get).head(new_nonce_head))
        .route("/acme/{profile}/new-account", post(new_account))
        .route("/acme/{profile}/acct/{id}", post(account))
        .route("/acme/{profile}/acct/{id}/orders", post(account_orders))
        .route("/acme/{profile}/key-change", post(key_change))
        .route("/acme/{profile}/new-order", post(new_order))
        .route("/acme/{profile}/order/{id}", post(order))
        .route("/acme/{profile}/order/{id}/finalize", post(finalize))
        .route("/acme/{profile}/authz/{id}", post(authz))
        .route("/acme/{profile}/chall/{authz}/{kind}", post(challenge))
        .route("/acme/{profile}/cert/{serial}", post(certificate))
        .route("/acme/{profile}/revoke-cert", post(revoke_cert))
        .route("/acme/{profile}/renewal-info/{id}", get(renewal_info))
        .route("/v1/acme/eab", post(create_eab))
        .route("/v1/acme/directories/{profile}", get(settings).put(set_settings))
        .route("/v1/acme/suggest-renewal", post(suggest_renewal))
}

/// `https://host[:port]` as the client addressed this node (or the balancer before it).
fn origin(headers: &HeaderMap, uri: &Uri) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".into());
    format!("https://{host}")
}

fn dir_of(headers: &HeaderMap, uri: &Uri, profile: &str) -> Directory {
    Directory {
        origin: origin(headers, uri),
        profile: profile.to_string(),
    }
}

fn status(kind: Kind) -> StatusCode {
    match kind {
        Kind::Unauthorized | Kind::OrderNotReady => StatusCode::FORBIDDEN,
        Kind::NotFound => StatusCode::NOT_FOUND,
        Kind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Kind::AlreadyReplaced | Kind::Conflict => StatusCode::CONFLICT,
        Kind::ServerInternal => StatusCode::INTERNAL_SERVER_ERROR,
        Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// The headers every ACME answer carries: a fresh nonce and the directory's link.
async fn common(pki: &Pki, dir: &Directory, response: &mut Response) {
    let headers = response.headers_mut();
    if let Ok(nonce) = pki.acme_nonce().await {
        if let Ok(v) = HeaderValue::from_str(&nonce) {
            headers.insert("replay-nonce", v);
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("<{}>;rel=\"index\"", dir.url("directory"))) {
        headers.append(header::LINK, v);
    }
}

async fn problem(pki: &Pki, dir: &Directory, e: AcmeError) -> Response {
    let status = status(e.kind);
    let body = wire::Problem {
        kind: format!("urn:ietf:params:acme:error:{}", e.kind.name()),
        detail: e.detail,
        status: status.as_u16(),
    };
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        serde_json::to_vec(&body).unwrap_or_default(),
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if let Some(v) = e.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    common(pki, dir, &mut response).await;
    response
}

async fn reply<T: Serialize>(pki: &Pki, dir: &Directory, result: Result<Answer<T>, AcmeError>) -> Response {
    let answer = match result {
        Ok(a) => a,
        Err(e) => return problem(pki, dir, e).await,
    };
    let status = if answer.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = (status, axum::Json(answer.body)).into_response();
    let headers = response.headers_mut();
    if let Some(l) = answer.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, l);
    }
    for (url, rel) in answer.links {
        if let Ok(v) = HeaderValue::from_str(&format!("<{url}>;rel=\"{rel}\"")) {
            headers.append(header::LINK, v);
        }
    }
    common(pki, dir, &mut response).await;
    response
}

/// A signed ACME POST: the directory it was sent to and, once its body's type, signature and
/// nonce checked, the request; a refusal is answered by the route as a problem document of
/// that directory.
struct Signed {
    dir: Directory,
    verified: Result<Verified, AcmeError>,
}

impl FromRequest<Arc<Pki>> for Signed {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, pki: &Arc<Pki>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let profile = RawPathParams::from_request_parts(&mut parts, pki)
            .await
            .ok()
            .and_then(|p| p.iter().find(|(k, _)| *k == "profile").map(|(_, v)| v.to_string()))
            .unwrap_or_default();
        let dir = dir_of(&parts.headers, &parts.uri, &profile);
        let url = format!("{}{}", dir.origin, parts.uri.path());
        let jose = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/jose+json"));
        let body = Bytes::from_request(Request::from_parts(parts, body), pki).await;
        let verified = async {
            let body = body.map_err(|r| {
                if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    AcmeError::new(Kind::TooLarge, "the request body is too large")
                } else {
                    AcmeError::malformed(format!("the request body could not be read: {}", r.body_text()))
                }
            })?;
            if !jose {
                return Err(AcmeError::malformed(
                    "ACME requests are sent as Content-Type: application/jose+json",
                ));
            }
            pki.acme_verify(&dir, &url, &body).await
        }
        .await;
        Ok(Signed { dir, verified })
    }
}

async fn default_directory(State(pki): State<Arc<Pki>>, headers: HeaderMap, uri: Uri) -> Response {
    directory(State(pki), Path(DEFAULT_PROFILE.to_string()), headers, uri).await
}

async fn directory(State(pki): State<Arc<Pki>>, Path(profile): Path<String>, headers: HeaderMap, uri: Uri) -> Response {
    let dir = dir_of(&headers, &uri, &profile);
    match pki.acme_directory(&dir) {
        // The directory needs no nonce.
        Ok(d) => axum::Json(d).into_response(),
        Err(e) => problem(&pki, &dir, e).await,
    }
}

async fn new_nonce(pki: &Pki, dir: Directory, status: StatusCode) -> Response {
    match pki.acme_directory(&dir) {
        Ok(_) => {
            let mut response = status.into_response();
            common(pki, &dir, &mut response).await;
            if !response.headers().contains_key("replay-nonce") {
                return problem(
                    pki,
                    &dir,
                    AcmeError::new(Kind::Unavailable, "no nonce can be made now; retry"),
                )
                .await;
            }
            response
        }
        Err(e) => problem(pki, &dir, e).await,
    }
}

async fn new_nonce_head(
    State(pki): State<Arc<Pki>>,
    Path(profile): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    new_nonce(&pki, dir_of(&headers, &uri, &profile), StatusCode::OK).await
}

async fn new_nonce_get(
    State(pki): State<Arc<Pki>>,
    Path(profile): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    new_nonce(&pki, dir_of(&headers, &uri, &profile), StatusCode::NO_CONTENT).await
}

async fn new_account(State(pki): State<Arc<Pki>>, Signed { dir, verified }: Signed) -> Response {
    let result = async {
        let v = verified?;
        pki.acme_new_account(&dir, v).await
    }
    .await;
    reply(&pki, &dir, result).await
}

async fn account(
    State(pki): State<Arc<Pki>>,
    Path((_, id)): Path<(String, String)>,
    Signed { dir, verified }: Signed,
) -> Response {
    let result = async {
        let v = verified?;
        pki.acme_account(&dir, &id, v).await
    }
    .await;
    reply(&pki, &dir, result).await
}

async fn account_orders(
    State(pki): State<Arc<Pki>>,
    Path((_, id)): Path<(String, String)>,
    Signed { dir, verified }: Signed,
) -> Response {
    let result = async {
        let v = verified?;
        pki.acme_account_orders(&dir, &id, v).map(|o| Answer {
            body: o,
            created: false,
            location: None,
            links: Vec::new(),
        })
    }
    .await;
    reply(&pki, &dir, result).await
}

async fn key_change(State(pki): State<Arc<Pki>>, Signed { dir, verified }: Signed) -> Response {
    let result = async {
        let v = verified?;
        pki.acme_key_change(&dir, v).await
    }
    .await;
    reply(&pki, &dir, result).await
}

async fn new_order(State(pki): State<Arc<Pki>>, Signed { dir, verified }: Signed) -> Response {
    let result = async {
        let v = verified?;
        pki.acme_new_order(&dir, v).await
    }
    .await;
    reply(&pki, &dir, result).await
}

async fn order(
    State(pki): State<Arc<Pki>>,
    Path((_, id)): Path<(String, String)>,
    Signed { dir, verified }: Signed,
) -> Response {
    let result = async {
        let v = verified?;
        pki.acme_order(&dir, &id, v)
    }
    .await;
    reply(&pki, &dir, result).await
}

async fn finalize(
    State(pki): State<Arc<Pki>>,
    Path((_, id)): Path<(String, String)>,
    Signed { dir, verified }: Signed,
) -> Response {
    let result = async {
        let v = verified?;
        pki.acme_finalize(&dir, &id, v).await
    }
    .await;
    reply(&pki, &dir, result).await
}

async fn authz(
    State(pki): State<Arc<Pki>>,
    Path((_, id)): Path<(String, String)>,
    Signed { dir, verified }: Signed,
) -> Response {
    let result = async {
        let v = verified?;
        pki.acme_authz(&dir, &id, v).await
    }
    .await;
    reply(&pki, &dir, result).await
}

async fn challenge(
    State(pki): State<Arc<Pki>>,
    Path((_, authz, kind)): Path<(String, String, String)>,
    Signed { dir, verified }: Signed,
) -> Response {
    let result = async {
        let v = verified?;
        pki.acme_challenge(&dir, &authz, &kind, v).await
    }
    .await;
    reply(&pki, &dir, result).await
}

async fn certificate(
    State(pki): State<Arc<Pki>>,
    Path((_, serial)): Path<(String, String)>,
    Signed { dir, verified }: Signed,
) -> Response {
    let result = async {
        let v = verified?;
        pki.acme_certificate(&serial, v)
    }
    .await;
    match result {
        Ok(chain) => {
            let mut response = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/pem-certificate-chain")],
                chain.pem,
            )
                .into_response();
            common(&pki, &dir, &mut response).await;
            response
        }
        Err(e) => problem(&pki, &dir, e).await,
    }
}

async fn revoke_cert(State(pki): State<Arc<Pki>>, Signed { dir, verified }: Signed) -> Response {
    let result = async {
        let v = verified?;
        pki.acme_revoke(v).await
    }
    .await;
    match result {
        Ok(()) => {
            let mut response = StatusCode::OK.into_response();
            common(&pki, &dir, &mut response).await;
            response
        }
        Err(e) => problem(&pki, &dir, e).await,
    }
}

async fn renewal_info(
    State(pki): State<Arc<Pki>>,
    Path((profile, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let dir = dir_of(&headers, &uri, &profile);
    match pki.acme_renewal_info(&id) {
        Ok(info) => {
            let mut response = axum::Json(info).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RENEWAL_RETRY_SECS));
            response
        }
        Err(e) => problem(&pki, &dir, e).await,
    }
}

/// `POST /v1/acme/eab`.
async fn create_eab(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    Json(req): Json<wire::EabRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let key = pki.acme_create_eab(&caller, &origin(&headers, &uri), &req).await?;
    Ok((StatusCode::CREATED, json(key)))
}

/// `GET /v1/acme/directories/{profile}`.
async fn settings(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Path(profile): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<impl IntoResponse, ApiError> {
    Ok(json(pki.acme_settings(&caller, &origin(&headers, &uri), &profile)?))
}

/// `PUT /v1/acme/directories/{profile}`.
async fn set_settings(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Path(profile): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    Json(req): Json<wire::DirectorySettings>,
) -> Result<impl IntoResponse, ApiError> {
    if !req.profile.is_empty() && req.profile != profile {
        return Err(RequestError::Malformed(format!(
            "the body names profile '{}', and the path '{profile}'",
            req.profile
        ))
        .into());
    }
    Ok(json(
        pki.acme_set_settings(&caller, &origin(&headers, &uri), &profile, &req)
            .await?,
    ))
}

/// `POST /v1/acme/suggest-renewal`.
async fn suggest_renewal(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Json(req): Json<wire::SuggestRenewal>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(json(pki.acme_suggest_renewal(&caller, &req).await?))
}
