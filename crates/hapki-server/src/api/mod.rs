//! The HTTP API: the router for the HTTPS listener, the smaller one for plain
//! HTTP publication, and the JSON extractor that gives malformed input the same
//! error shape as everything else.

mod acme;
mod audit;
mod backups;
mod ca;
mod certs;
mod est;
mod keys;
pub(crate) mod linger;
mod profiles;
mod publish;
mod stream;
mod sys;
mod tidy;
mod tokens;
mod ui;

#[cfg(test)]
mod crl_tests;
#[cfg(test)]
mod keys_tests;
#[cfg(test)]
mod ocsp_tests;
#[cfg(test)]
mod refusals;
#[cfg(test)]
mod rollover_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, RequestError};
use crate::pki::Pki;

pub use crate::replica::raft_view;
pub use crate::version::{version, VERSION};

/// The HTTPS API.
pub fn router(pki: Arc<Pki>, max_body: usize) -> Router {
    Router::new()
        .route("/v1/sys/status", get(sys::status))
        .route("/v1/certs", post(certs::issue).get(certs::list))
        .route("/v1/certs/generate", post(certs::generate))
        .route("/v1/certs/{serial}", get(certs::get))
        .route("/v1/certs/{serial}/revoke", post(certs::revoke))
        .route("/v1/backups", post(backups::create).get(backups::list))
        .route("/v1/tidy", get(tidy::status).post(tidy::run))
        .route("/v1/audit", get(audit::list))
        .route("/v1/audit/export", get(audit::export))
        .route("/v1/audit/verify", get(audit::verify))
        .route("/v1/audit/certificate", get(audit::certificate))
        .route("/v1/ca", get(ca::list))
        .route("/v1/ca/root", post(ca::init_root))
        .route("/v1/ca/intermediate", post(ca::init_intermediate))
        .route("/v1/ca/import", post(ca::import))
        .route("/v1/ca/{id}/certificate", post(ca::install_cert))
        .route("/v1/ca/{id}/default", post(ca::set_default))
        .route("/v1/ca/{id}/export", post(ca::export))
        .route("/v1/ca/{id}/rotate", post(ca::rotate))
        .route("/v1/crl/rotate", post(ca::rotate_crl))
        .route("/v1/profiles", get(profiles::list).post(profiles::create))
        .route("/v1/profiles/{name}", get(profiles::get).put(profiles::update))
        .route("/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/v1/tokens/self", get(tokens::show_self))
        .route("/v1/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/v1/keys", get(keys::list).post(keys::archive))
        .route("/v1/keys/transport", get(keys::transport))
        .route(
            "/v1/keys/recoveries",
            get(keys::recoveries).post(keys::request_recovery),
        )
        .route("/v1/keys/recoveries/{id}", get(keys::recovery))
        .route("/v1/keys/recoveries/{id}/approve", post(keys::approve))
        .route("/v1/keys/recoveries/{id}/fetch", post(keys::fetch))
        .merge(acme::routes())
        .merge(est::routes())
        .merge(publish::routes())
        .merge(ui::routes())
        .route_layer(axum::middleware::from_fn(crate::observe::note_route))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(max_body, refuse_oversized))
        .with_state(pki)
}

/// Answers 413 to a body whose declared length is over the limit, after reading
/// (and discarding) what the client is still sending, as [`linger::discard`] bounds it
/// (the body limit, 2 s): a server that answers and closes while the client writes
/// makes the client see a broken pipe, not the 413; a client that sends more than that
/// is not worth more of the node's time. A client that waits for `100 Continue` has
/// sent nothing yet and is answered at once.
pub(crate) async fn refuse_oversized(State(max_body): State<usize>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let waits = req
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    match declared {
        Some(len) if len > max_body as u64 => {
            if !waits {
                linger::discard(req.into_body(), max_body as u64).await;
            }
            RequestError::TooLarge.into_response()
        }
        _ => next.run(req).await,
    }
}

/// The plain-HTTP publication listener: CA certificates, CRLs, OCSP and health only.
pub fn publication_router(pki: Arc<Pki>) -> Router {
    Router::new()
        .merge(publish::routes())
        .route_layer(axum::middleware::from_fn(crate::observe::note_route))
        .fallback(not_published)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(pki)
}

async fn not_found() -> RequestError {
    RequestError::NoRoute("no such endpoint; the API is described in docs/api.md")
}

/// The plain-HTTP listener's answer to anything it does not publish.
async fn not_published() -> RequestError {
    RequestError::NoRoute(
        "this plain-HTTP listener publishes only CA certificates, CRLs, OCSP and health; \
         the API is served over HTTPS on the node's --listen address",
    )
}

pub(crate) async fn method_not_allowed(method: axum::http::Method) -> RequestError {
    RequestError::MethodNotAllowed(method)
}

/// A JSON body whose rejections are `ApiError`s.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection).into()),
        }
    }
}

fn json_rejection(r: JsonRejection) -> RequestError {
    match r {
        JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => RequestError::TooLarge,
        JsonRejection::MissingJsonContentType(_) => RequestError::NotJsonType,
        JsonRejection::JsonSyntaxError(e) => RequestError::NotJson(e.body_text()),
        JsonRejection::JsonDataError(e) => RequestError::DoesNotFit(e.body_text()),
        other => RequestError::Body(other.body_text()),
    }
}

/// A request body read whole within the body limit; an oversized one is the JSON 413.
/// Handlers that must check the caller before looking at the body take this, then
/// [`parse_json`].
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => Ok(RawBody(b)),
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(RequestError::TooLarge.into()),
            Err(r) => Err(RequestError::Body(r.body_text()).into()),
        }
    }
}

/// Parses a body read by [`RawBody`] as JSON, refusing it as the [`Json`] extractor would.
pub fn parse_json<T: DeserializeOwned>(headers: &axum::http::HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
        .unwrap_or(false);
    if !json_type {
        return Err(RequestError::NotJsonType.into());
    }
    serde_json::from_slice(body).map_err(|e| {
        match e.classify() {
            serde_json::error::Category::Data => RequestError::DoesNotFit(e.to_string()),
            _ => RequestError::NotJson(e.to_string()),
        }
        .into()
    })
}

/// Serializes a value as a JSON response.
pub fn json<T: serde::Serialize>(v: T) -> axum::Json<T> {
    axum::Json(v)
}
