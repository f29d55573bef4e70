//! API tokens: a token is `hapki_` and 32 random bytes in base64url; only its
//! SHA-256 is replicated, so every node accepts every token.

use aws_lc_rs::digest;
use base64::Engine;
use hapki_store::{Command, Role, TokenRecord};
use serde::Serialize;

use super::{now, Pki};
use crate::error::ApiError;
use crate::rand;

const PREFIX: &str = "hapki_";

/// A freshly created token; the secret is shown once.
#[derive(Clone, Debug, Serialize)]
pub struct NewToken {
    pub id: String,
    pub token: String,
    pub role: Role,
    pub name: String,
    pub expires_at: Option<u64>,
}

/// SHA-256 of a token's text.
pub fn token_hash(token: &str) -> [u8; 32] {
    digest::digest(&digest::SHA256, token.as_bytes())
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

impl Pki {
    /// Creates a token with `role`, valid for `ttl_secs` (forever when `None`).
    pub async fn create_token(&self, role: Role, name: &str, ttl_secs: Option<u64>) -> Result<NewToken, ApiError> {
        if name.len() > 128 {
            return Err(ApiError::bad_request("a token name may be at most 128 characters"));
        }
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::bytes::<32>());
        let token = format!("{PREFIX}{secret}");
        let hash = token_hash(&token);
        let now = now();
        let record = TokenRecord {
            id: hex::encode(&hash[..8]),
            hash,
            role,
            name: name.to_string(),
            created_at: now,
            expires_at: ttl_secs.map(|t| now + t),
            revoked: false,
        };
        self.propose(Command::CreateToken { token: record.clone() }).await?;
        Ok(NewToken {
            id: record.id,
            token,
            role,
            name: record.name,
            expires_at: record.expires_at,
        })
    }

    /// Checks a presented token; the error says what is wrong with it.
    pub fn authenticate(&self, token: &str) -> Result<TokenRecord, ApiError> {
        if !token.starts_with(PREFIX) || token.len() > 128 {
            return Err(ApiError::unauthorized(
                "the token is not a hapki token; check --token or HAPKI_TOKEN",
            ));
        }
        let record = self
            .reader()?
            .token_by_hash(&token_hash(token))?
            .ok_or_else(|| ApiError::unauthorized("the token is not valid on this cluster"))?;
        if record.revoked {
            return Err(ApiError::unauthorized(format!("token {} has been revoked", record.id)));
        }
        if let Some(exp) = record.expires_at {
            if exp <= now() {
                return Err(ApiError::unauthorized(format!(
                    "token {} expired at {}; create a new one with `hapki token create`",
                    record.id,
                    hapki_domain::time::rfc3339(exp)
                )));
            }
        }
        Ok(record)
    }
}
