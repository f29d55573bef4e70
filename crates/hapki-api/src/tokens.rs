//! `/v1/tokens`: create (the secret is returned once), list, revoke.

use hapki_store::Role;
use serde::{Deserialize, Serialize};

/// `POST /v1/tokens`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// `admin`, `agent` or `requester`.
    pub role: String,
    #[serde(default)]
    pub name: String,
    /// `30d`, `12h`, seconds; no expiry when absent.
    #[serde(default)]
    pub ttl: Option<String>,
    /// Profiles the token may issue with; any its role allows when empty.
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Issuers the token may issue from; any when empty.
    #[serde(default)]
    pub issuers: Vec<String>,
}

/// A freshly created token; the secret is shown once.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewToken {
    pub id: String,
    pub token: String,
    pub role: Role,
    pub name: String,
    pub expires_at: Option<u64>,
    pub profiles: Vec<String>,
    pub issuers: Vec<String>,
}

/// A token as `GET /v1/tokens` shows it: never its secret.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenView {
    pub id: String,
    pub role: Role,
    pub name: String,
    pub created_at: u64,
    pub expires_at: Option<u64>,
    pub revoked: bool,
    pub profiles: Vec<String>,
    pub issuers: Vec<String>,
}

/// `GET /v1/tokens`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenList {
    pub tokens: Vec<TokenView>,
}

/// `DELETE /v1/tokens/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenRevoked {
    pub revoked: String,
}
