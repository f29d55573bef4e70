//! ACME (RFC 8555, RFC 9773) objects as the server answers them, and the operator's
//! `/v1/acme` routes: directory settings, External Account Binding keys, renewal hints.

use serde::{Deserialize, Serialize};

/// `GET /acme/{profile}/directory`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Directory {
    pub new_nonce: String,
    pub new_account: String,
    pub new_order: String,
    pub revoke_cert: String,
    pub key_change: String,
    pub renewal_info: String,
    pub meta: DirectoryMeta,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryMeta {
    pub external_account_required: bool,
    pub website: String,
}

/// An account object.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub status: String,
    pub contact: Vec<String>,
    pub terms_of_service_agreed: bool,
    pub orders: String,
}

/// An identifier (`dns`, `ip`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identifier {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

/// An order object.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub status: String,
    pub expires: String,
    pub identifiers: Vec<Identifier>,
    pub authorizations: Vec<String>,
    pub finalize: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
}

/// An authorization object.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    pub status: String,
    pub expires: String,
    pub identifier: Identifier,
    pub challenges: Vec<Challenge>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub wildcard: bool,
}

/// A challenge object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Challenge {
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    pub status: String,
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validated: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
}

/// An error document (RFC 7807) with an ACME error type.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub detail: String,
    pub status: u16,
}

/// `GET /acme/{profile}/renewal-info/{id}` (RFC 9773).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenewalInfo {
    pub suggested_window: Window,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation_url: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Window {
    pub start: String,
    pub end: String,
}

/// `POST /v1/acme/eab`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EabRequest {
    pub profile: String,
    /// How long the key may bind an account, in days (default 7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_days: Option<u32>,
}

/// A new External Account Binding key: `hmac_key` is shown once (base64url).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EabKey {
    pub kid: String,
    pub hmac_key: String,
    pub profile: String,
    pub directory: String,
    /// Seconds since the epoch.
    pub expires_at: u64,
}

/// `GET`/`PUT /v1/acme/directories/{profile}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySettings {
    #[serde(default)]
    pub profile: String,
    pub require_eab: bool,
    #[serde(default)]
    pub directory: String,
}

/// `POST /v1/acme/suggest-renewal`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuggestRenewal {
    pub issuer: String,
    /// Renew before this (seconds since the epoch); now when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
}

/// What `POST /v1/acme/suggest-renewal` set.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RenewalHint {
    pub issuer: String,
    pub before: u64,
}
