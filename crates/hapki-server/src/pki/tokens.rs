//! API tokens: a token is `hapki_` and 32 random bytes in base64url; only its
//! SHA-256 is replicated, so every node accepts every token.

use aws_lc_rs::digest;
use base64::Engine;
use hapki_store::{Command, Role, StateReader, TokenRecord};

use super::Pki;
use crate::auth::{Action, Caller};
use crate::pki::PkiError;

const PREFIX: &str = "hapki_";
/// 9999-12-31T23:59:59Z: no expiry lies beyond it.
const MAX_EXPIRY: u64 = 253_402_300_799;

pub use hapki_api::tokens::NewToken;
use hapki_api::tokens::{CreateTokenRequest, TokenList, TokenRevoked, TokenView};

/// What a new token may do.
#[derive(Clone, Debug)]
pub struct TokenGrant {
    pub role: Role,
    pub name: String,
    /// Valid for this long; forever when `None`.
    pub ttl_secs: Option<u64>,
    /// Profiles it may issue with; empty means any its role allows.
    pub profiles: Vec<String>,
    /// Issuers it may issue from; empty means any.
    pub issuers: Vec<String>,
}

impl TokenGrant {
    /// A token with `role` and no other limit.
    pub fn role(role: Role, name: &str) -> TokenGrant {
        TokenGrant {
            role,
            name: name.to_string(),
            ttl_secs: None,
            profiles: Vec::new(),
            issuers: Vec::new(),
        }
    }
}

/// A token as listings show it.
fn view(t: TokenRecord) -> TokenView {
    TokenView {
        id: t.id,
        role: t.role,
        name: t.name,
        created_at: t.created_at,
        expires_at: t.expires_at,
        revoked: t.revoked,
        profiles: t.profiles,
        issuers: t.issuers,
    }
}

/// SHA-256 of a token's text.
pub fn token_hash(token: &str) -> [u8; 32] {
    digest::digest(&digest::SHA256, token.as_bytes())
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

impl Pki {
    /// Creates a token as `POST /v1/tokens` asks for it.
    pub async fn create_token_from(&self, caller: &Caller, req: &CreateTokenRequest) -> Result<NewToken, PkiError> {
        // The role first: a caller that may not create tokens learns nothing about its input.
        caller.may(Action::ManageTokens)?;
        let grant = TokenGrant {
            role: req.role.parse().map_err(PkiError::Invalid)?,
            name: req.name.clone(),
            ttl_secs: req.ttl.as_deref().map(super::parse_duration).transpose()?,
            profiles: req.profiles.clone(),
            issuers: req.issuers.clone(),
        };
        self.create_token(caller, &grant).await
    }

    /// Every token, never its secret.
    pub fn tokens(&self, caller: &Caller) -> Result<TokenList, PkiError> {
        caller.may(Action::ManageTokens)?;
        let tokens = self.reader()?.tokens()?.into_iter().map(view).collect();
        Ok(TokenList { tokens })
    }

    /// The caller's own token, never its secret: what a client (the console) shows and
    /// offers. Any token may read itself, and only itself.
    pub fn token_self(&self, caller: &Caller) -> Result<TokenView, PkiError> {
        self.reader()?
            .tokens()?
            .into_iter()
            .find(|t| t.id == caller.token_id)
            .map(view)
            .ok_or_else(|| PkiError::NotFound(format!("token {} is not in the store", caller.token_id)))
    }

    /// Revokes token `id` on every node.
    pub async fn revoke_token(&self, caller: &Caller, id: &str) -> Result<TokenRevoked, PkiError> {
        caller.may(Action::ManageTokens)?;
        self.propose_as(caller, Command::RevokeToken { id: id.to_string() })
            .await?;
        Ok(TokenRevoked {
            revoked: id.to_string(),
        })
    }

    /// Creates a token as `grant` says, on behalf of `origin`. The profiles and issuers it is
    /// limited to must exist.
    pub async fn create_token(&self, caller: &Caller, grant: &TokenGrant) -> Result<NewToken, PkiError> {
        caller.may(Action::ManageTokens)?;
        if grant.name.len() > 128 {
            return Err(PkiError::invalid("a token name may be at most 128 characters"));
        }
        let now = self.now();
        let expires_at = match grant.ttl_secs {
            Some(0) => return Err(PkiError::invalid("ttl must be more than zero")),
            Some(ttl) => Some(now.checked_add(ttl).filter(|t| *t < MAX_EXPIRY).ok_or_else(|| {
                PkiError::invalid("ttl is too long: a token may live at most until the year 9999; leave ttl out for a token that does not expire")
            })?),
            None => None,
        };
        let reader = self.reader()?;
        for p in &grant.profiles {
            if reader.profile(p)?.is_none() {
                return Err(PkiError::invalid(format!(
                    "no profile named '{p}'; `hapki profile list` shows the profiles"
                )));
            }
        }
        for i in &grant.issuers {
            if reader.issuer(i)?.is_none() {
                return Err(PkiError::invalid(format!(
                    "no issuer with id {i}; `hapki ca list` shows the issuers"
                )));
            }
        }
        drop(reader);
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.random::<32>());
        let token = format!("{PREFIX}{secret}");
        let hash = token_hash(&token);
        let record = TokenRecord {
            id: hex::encode(&hash[..8]),
            hash,
            role: grant.role,
            name: grant.name.clone(),
            created_at: now,
            expires_at,
            revoked: false,
            profiles: grant.profiles.clone(),
            issuers: grant.issuers.clone(),
        };
        self.propose_as(caller, Command::CreateToken { token: record.clone() })
            .await?;
        Ok(NewToken {
            id: record.id,
            token,
            role: grant.role,
            name: record.name,
            expires_at: record.expires_at,
            profiles: record.profiles,
            issuers: record.issuers,
        })
    }

    /// The caller a presented token names (see [`Pki::authenticate`]).
    pub fn caller(&self, token: &str) -> Result<Caller, PkiError> {
        Ok(Caller::new(token, self.authenticate(token)?))
    }

    /// Checks a presented token; the error says what is wrong with it.
    pub fn authenticate(&self, token: &str) -> Result<TokenRecord, PkiError> {
        check_token(&self.reader()?, self.now(), token)
    }
}

/// Checks a presented token against the replicated state at time `now`: also what a sealed
/// node, which has no CA service, checks its own routes' tokens with.
pub fn check_token(reader: &StateReader, now: u64, token: &str) -> Result<TokenRecord, PkiError> {
    if !token.starts_with(PREFIX) || token.len() > 128 {
        return Err(PkiError::unauthenticated(
            "the token is not a hapki token; check --token or HAPKI_TOKEN",
        ));
    }
    let record = reader
        .token_by_hash(&token_hash(token))?
        .ok_or_else(|| PkiError::unauthenticated("the token is not valid on this cluster"))?;
    if record.revoked {
        return Err(PkiError::unauthenticated(format!(
            "token {} has been revoked",
            record.id
        )));
    }
    if let Some(exp) = record.expires_at {
        if exp <= now {
            return Err(PkiError::unauthenticated(format!(
                "token {} expired at {}; create a new one with `hapki token create`",
                record.id,
                hapki_domain::time::rfc3339(exp)
            )));
        }
    }
    Ok(record)
}
