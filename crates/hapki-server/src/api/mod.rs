//! The HTTP API: the router for the HTTPS listener, the smaller one for plain
//! HTTP publication, and the JSON extractor that gives malformed input the same
//! error shape as everything else.

mod ca;
mod certs;
mod profiles;
mod publish;
mod sys;
mod tokens;

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::pki::Pki;

/// The HTTPS API.
pub fn router(pki: Arc<Pki>, max_body: usize) -> Router {
    Router::new()
        .route("/v1/sys/health", get(sys::health))
        .route("/v1/sys/status", get(sys::status))
        .route("/v1/certs", post(certs::issue).get(certs::list))
        .route("/v1/certs/generate", post(certs::generate))
        .route("/v1/certs/{serial}", get(certs::get))
        .route("/v1/certs/{serial}/revoke", post(certs::revoke))
        .route("/v1/ca", get(ca::list))
        .route("/v1/ca/root", post(ca::init_root))
        .route("/v1/ca/intermediate", post(ca::init_intermediate))
        .route("/v1/ca/import", post(ca::import))
        .route("/v1/ca/{id}/certificate", post(ca::install_cert))
        .route("/v1/ca/{id}/default", post(ca::set_default))
        .route("/v1/crl/rotate", post(ca::rotate_crl))
        .route("/v1/profiles", get(profiles::list).post(profiles::create))
        .route("/v1/profiles/{name}", get(profiles::get).put(profiles::update))
        .route("/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/v1/tokens/{id}", axum::routing::delete(tokens::revoke))
        .merge(publish::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(pki)
}

/// The plain-HTTP publication listener: CA certificates, CRLs, OCSP and health only.
pub fn publication_router(pki: Arc<Pki>) -> Router {
    Router::new()
        .route("/v1/sys/health", get(sys::health))
        .merge(publish::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(pki)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; the API is described in docs/api.md")
}

/// A JSON body whose rejections are `ApiError`s.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the request body is too large",
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::bad_request(format!("the body is not valid JSON: {}", e.body_text()))
        }
        JsonRejection::JsonDataError(e) => {
            ApiError::bad_request(format!("the JSON body does not fit: {}", e.body_text()))
        }
        other => ApiError::bad_request(other.body_text()),
    }
}

/// Serializes a value as a JSON response.
pub fn json<T: serde::Serialize>(v: T) -> axum::Json<T> {
    axum::Json(v)
}
