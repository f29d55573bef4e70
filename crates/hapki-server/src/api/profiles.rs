//! Profiles: list, show, create, update.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hapki_domain::profile::Profile;

use super::{json, Json};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::pki::Pki;

/// `GET /v1/profiles`.
pub async fn list(State(pki): State<Arc<Pki>>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    Ok(json(pki.profiles(&caller)?))
}

/// `GET /v1/profiles/{name}`.
pub async fn get(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(json(pki.profile_for(&caller, &name)?))
}

/// `POST /v1/profiles`.
pub async fn create(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Json(profile): Json<Profile>,
) -> Result<impl IntoResponse, ApiError> {
    let profile = pki.put_profile(&caller, profile, true, None).await?;
    Ok((StatusCode::CREATED, json(profile)))
}

/// `PUT /v1/profiles/{name}`.
pub async fn update(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Path(name): Path<String>,
    Json(profile): Json<Profile>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(json(pki.put_profile(&caller, profile, false, Some(&name)).await?))
}
