//! Tokens: create (the secret is returned once), list, revoke.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hapki_api::tokens::{CreateTokenRequest, TokenList, TokenRevoked, TokenView};
use hapki_store::{Command, Role};

use super::certs::parse_duration;
use super::{json, Json};
use crate::auth::{Action, Caller};
use crate::error::ApiError;
use crate::pki::{Pki, PkiError, TokenGrant};

/// `POST /v1/tokens`.
pub async fn create(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Json(body): Json<CreateTokenRequest>,
) -> Result<impl IntoResponse, ApiError> {
    caller.may(Action::ManageTokens)?;
    let role: Role = body.role.parse().map_err(PkiError::Invalid)?;
    let grant = TokenGrant {
        role,
        name: body.name,
        ttl_secs: body.ttl.as_deref().map(parse_duration).transpose()?,
        profiles: body.profiles,
        issuers: body.issuers,
    };
    Ok((
        StatusCode::CREATED,
        json(pki.create_token(&caller.origin(), &grant).await?),
    ))
}

/// `GET /v1/tokens`.
pub async fn list(State(pki): State<Arc<Pki>>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.may(Action::ManageTokens)?;
    let tokens = pki
        .reader()?
        .tokens()?
        .into_iter()
        .map(|t| TokenView {
            id: t.id,
            role: t.role,
            name: t.name,
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked: t.revoked,
            profiles: t.profiles,
            issuers: t.issuers,
        })
        .collect();
    Ok(json(TokenList { tokens }))
}

/// `DELETE /v1/tokens/{id}`.
pub async fn revoke(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    caller.may(Action::ManageTokens)?;
    pki.propose(&caller.origin(), Command::RevokeToken { id: id.clone() })
        .await?;
    Ok(json(TokenRevoked { revoked: id }))
}
