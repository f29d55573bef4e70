//! Who is calling and what they may do. A bearer token names a role; each
//! handler states the action it performs and the role is checked against it.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use hapki_store::Role;

use crate::error::ApiError;
use crate::pki::Pki;

/// Something a caller may be allowed to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Issue,
    ReadCert,
    ListCerts,
    Revoke,
    RotateCrl,
    ReadStatus,
    ManageCa,
    ManageProfiles,
    ManageTokens,
    ManageCluster,
}

impl Action {
    /// What the action is, in words, for refusals.
    fn describe(self) -> &'static str {
        match self {
            Action::Issue => "issue certificates",
            Action::ReadCert => "read certificates",
            Action::ListCerts => "list certificates",
            Action::Revoke => "revoke certificates",
            Action::RotateCrl => "publish CRLs",
            Action::ReadStatus => "read the status",
            Action::ManageCa => "manage CAs",
            Action::ManageProfiles => "manage profiles",
            Action::ManageTokens => "manage tokens",
            Action::ManageCluster => "manage the cluster",
        }
    }

    fn allowed(self, role: Role) -> bool {
        match role {
            Role::Admin => true,
            Role::Agent => !matches!(
                self,
                Action::ManageCa | Action::ManageProfiles | Action::ManageTokens | Action::ManageCluster
            ),
            Role::Requester => matches!(self, Action::Issue | Action::ReadCert | Action::ReadStatus),
        }
    }
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub token_id: String,
    pub role: Role,
}

impl Caller {
    /// Fails with 403 unless the caller's role allows `action`.
    pub fn may(&self, action: Action) -> Result<(), ApiError> {
        if action.allowed(self.role) {
            Ok(())
        } else {
            let role = self.role.name();
            let article = if role.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            Err(ApiError::forbidden(format!(
                "{article} {role} token may not {}; use a token with a role that may (`hapki token create --role ...`)",
                action.describe()
            )))
        }
    }
}

impl FromRequestParts<Arc<Pki>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, pki: &Arc<Pki>) -> Result<Self, Self::Rejection> {
        authenticate(pki, &parts.headers)
    }
}

/// The bearer token of a request, if it has a well-formed one.
pub fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing bearer token: pass --token or set HAPKI_TOKEN"))?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
    value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <token>`"))
}

/// The caller a request's bearer token names.
pub fn authenticate(pki: &Pki, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let record = pki.authenticate(bearer(headers)?)?;
    Ok(Caller {
        token_id: record.id,
        role: record.role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_what_they_should() {
        assert!(Action::ManageCa.allowed(Role::Admin));
        assert!(!Action::ManageCa.allowed(Role::Agent));
        assert!(Action::Revoke.allowed(Role::Agent));
        assert!(!Action::Revoke.allowed(Role::Requester));
        assert!(Action::Issue.allowed(Role::Requester));
        assert!(!Action::ListCerts.allowed(Role::Requester));
    }
}
