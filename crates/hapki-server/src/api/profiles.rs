//! Profiles: list, show, create, update. Changes go through the log, so they
//! take effect on every node.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hapki_api::profiles::ProfileList;
use hapki_domain::profile::Profile;
use hapki_store::Command;

use super::{json, Json};
use crate::auth::{Action, Caller};
use crate::error::ApiError;
use crate::pki::{Pki, PkiError};

/// `GET /v1/profiles`.
pub async fn list(State(pki): State<Arc<Pki>>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.may(Action::ReadStatus)?;
    Ok(json(ProfileList {
        profiles: pki.reader()?.profiles()?,
    }))
}

/// `GET /v1/profiles/{name}`.
pub async fn get(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    caller.may(Action::ReadStatus)?;
    Ok(json(pki.profile(&name)?.as_ref().clone()))
}

/// `POST /v1/profiles`.
pub async fn create(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Json(profile): Json<Profile>,
) -> Result<impl IntoResponse, ApiError> {
    caller.may(Action::ManageProfiles)?;
    profile.validate()?;
    pki.propose(
        &caller.origin(),
        Command::PutProfile {
            profile: profile.clone(),
            create: true,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, json(profile)))
}

/// `PUT /v1/profiles/{name}`.
pub async fn update(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Path(name): Path<String>,
    Json(profile): Json<Profile>,
) -> Result<impl IntoResponse, ApiError> {
    caller.may(Action::ManageProfiles)?;
    if profile.name != name {
        return Err(PkiError::invalid(format!(
            "the body names profile '{}' but the URL names '{name}'",
            profile.name
        ))
        .into());
    }
    profile.validate()?;
    pki.propose(
        &caller.origin(),
        Command::PutProfile {
            profile: profile.clone(),
            create: false,
        },
    )
    .await?;
    Ok(json(profile))
}
