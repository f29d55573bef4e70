//! Tokens: create (the secret is returned once), list, show the caller's own, revoke.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hapki_api::tokens::CreateTokenRequest;

use super::{json, Json};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::pki::Pki;

/// `POST /v1/tokens`.
pub async fn create(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Json(body): Json<CreateTokenRequest>,
) -> Result<impl IntoResponse, ApiError> {
    Ok((StatusCode::CREATED, json(pki.create_token_from(&caller, &body).await?)))
}

/// `GET /v1/tokens`.
pub async fn list(State(pki): State<Arc<Pki>>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    Ok(json(pki.tokens(&caller)?))
}

/// `GET /v1/tokens/self`: the caller's own token.
pub async fn show_self(State(pki): State<Arc<Pki>>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    Ok(json(pki.token_self(&caller)?))
}

/// `DELETE /v1/tokens/{id}`.
pub async fn revoke(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(json(pki.revoke_token(&caller, &id).await?))
}
