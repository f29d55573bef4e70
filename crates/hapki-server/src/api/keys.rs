//! The key archive: its transport certificate, archiving a key, listing the
//! archived keys, and recovering one (request, list, approve, fetch).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hapki_api::keys::{ArchiveRequest, FetchRequest, KeyQuery, RecoveryRequestBody};

use super::{json, Json};
use crate::auth::Caller;
use crate::error::{ApiError, RequestError};
use crate::pki::Pki;

/// `GET /v1/keys/transport`.
pub async fn transport(State(pki): State<Arc<Pki>>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    Ok(json(pki.transport_cert(&caller).await?))
}

/// `POST /v1/keys`.
pub async fn archive(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Json(req): Json<ArchiveRequest>,
) -> Result<impl IntoResponse, ApiError> {
    Ok((StatusCode::CREATED, json(pki.archive_key(&caller, &req).await?)))
}

/// `GET /v1/keys?subject=&serial=&by=&source=&limit=`.
pub async fn list(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let q: KeyQuery = serde_urlencoded::from_str(query.as_deref().unwrap_or("")).map_err(|e| {
        RequestError::Malformed(format!("bad query: {e}; keys take subject, serial, by, source, limit"))
    })?;
    Ok(json(pki.archived_keys(&caller, &q)?))
}

/// `POST /v1/keys/recoveries`.
pub async fn request_recovery(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Json(req): Json<RecoveryRequestBody>,
) -> Result<impl IntoResponse, ApiError> {
    Ok((StatusCode::CREATED, json(pki.request_recovery(&caller, &req).await?)))
}

/// `GET /v1/keys/recoveries`.
pub async fn recoveries(State(pki): State<Arc<Pki>>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    Ok(json(pki.recoveries(&caller)?))
}

/// `GET /v1/keys/recoveries/{id}`.
pub async fn recovery(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(json(pki.recovery(&caller, &id)?))
}

/// `POST /v1/keys/recoveries/{id}/approve`.
pub async fn approve(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(json(pki.approve_recovery(&caller, &id).await?))
}

/// `POST /v1/keys/recoveries/{id}/fetch`.
pub async fn fetch(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<FetchRequest>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(json(pki.fetch_recovery(&caller, &id, &req.password).await?))
}
