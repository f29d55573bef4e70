//! `GET /v1/sys/status`. Health, which answers for the node in every phase, is the
//! lifecycle's.

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;

use super::json;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::pki::Pki;

/// `GET /v1/sys/status`: where the node stands plus the state digest and counts.
pub async fn status(State(pki): State<Arc<Pki>>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    Ok(json(pki.status(&caller)?))
}
