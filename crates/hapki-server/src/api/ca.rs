//! CA management: list issuers, create a root or intermediate, install an
//! intermediate's certificate, import from PKCS#12, choose the default, rotate CRLs.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hapki_api::ca::{ImportRequest, InstallCertRequest, RootRequest, RotateCrlRequest, RotateRequest};

use super::{json, Json};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::pki::Pki;

/// `GET /v1/ca`.
pub async fn list(State(pki): State<Arc<Pki>>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    Ok(json(pki.issuers(&caller)?))
}

/// `POST /v1/ca/root`.
pub async fn init_root(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Json(req): Json<RootRequest>,
) -> Result<impl IntoResponse, ApiError> {
    Ok((StatusCode::CREATED, json(pki.init_root(&caller, &req).await?)))
}

/// `POST /v1/ca/intermediate`: returns the CSR to have signed by the parent CA.
pub async fn init_intermediate(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Json(req): Json<RootRequest>,
) -> Result<impl IntoResponse, ApiError> {
    Ok((StatusCode::CREATED, json(pki.init_intermediate(&caller, &req).await?)))
}

/// `POST /v1/ca/{id}/certificate`.
pub async fn install_cert(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<InstallCertRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let view = pki.install_cert(&caller, &id, &body.certificate).await?;
    Ok((StatusCode::CREATED, json(view)))
}

/// `POST /v1/ca/import`.
pub async fn import(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Json(req): Json<ImportRequest>,
) -> Result<impl IntoResponse, ApiError> {
    Ok((StatusCode::CREATED, json(pki.import_pkcs12(&caller, &req).await?)))
}

/// `POST /v1/ca/{id}/default`.
pub async fn set_default(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(json(pki.set_default_issuer(&caller, &id).await?))
}

/// `POST /v1/ca/{id}/rotate`: a successor for the issuer (rollover).
pub async fn rotate(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<RotateRequest>,
) -> Result<impl IntoResponse, ApiError> {
    Ok((StatusCode::CREATED, json(pki.rotate_issuer(&caller, &id, &req).await?)))
}

/// `POST /v1/crl/rotate`: publishes a new CRL now.
pub async fn rotate_crl(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Json(body): Json<RotateCrlRequest>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(json(pki.rotate_crl(&caller, body.issuer.as_deref()).await?))
}

/// `POST /v1/ca/{id}/export`.
pub async fn export(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<hapki_api::ca::ExportRequest>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(json(pki.export_ca(&caller, &id, &req.password).await?))
}
