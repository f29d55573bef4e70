//! The one API error: every failure a client can see, with its HTTP status and
//! a stable code, rendered as `{"error": {"code": ..., "message": ...}}`.
//! Every error from below is mapped to the wire here and nowhere else.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hapki_api::channel::Refusal;
use hapki_api::error::{codes, ErrorBody, ErrorDetail};
use hapki_cluster::ProposeError;
use hapki_domain::DomainError;
use hapki_store::{RejectCode, StoreError};

use crate::lifecycle::LifecycleError;
use crate::pki::PkiError;

/// An error as the client sees it.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Whether the answer says when to try again.
        let transient = match self.status {
            // A node that has no cluster yet says so to every request: not worth a log line,
            // and waiting will not make it clustered.
            StatusCode::SERVICE_UNAVAILABLE if self.code == codes::NOT_CLUSTERED => {
                tracing::debug!(code = self.code, "{}", self.message);
                false
            }
            // The node cannot serve this now (no quorum, no leader, joining): a state, not a
            // fault, and one that passes (an election, a lost majority), here or elsewhere.
            StatusCode::SERVICE_UNAVAILABLE => {
                tracing::warn!(code = self.code, "{}", self.message);
                true
            }
            // A fault: its text (paths, storage errors) goes to the node's log only, under an
            // id the client is given to quote.
            s if s.is_server_error() => {
                let id = hex::encode(crate::rand::bytes::<8>());
                tracing::error!(code = self.code, request_id = %id, "{}", self.message);
                let body = ErrorBody {
                    error: ErrorDetail {
                        code: self.code.to_string(),
                        message: format!(
                            "the node failed to answer this request; its log has the details under request id {id}"
                        ),
                        request_id: Some(id),
                    },
                };
                return (self.status, axum::Json(body)).into_response();
            }
            _ => false,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                request_id: None,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if transient {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", m),
            DomainError::Policy(m) => ApiError::new(StatusCode::BAD_REQUEST, "policy_violation", m),
            DomainError::Crypto(m) => ApiError::internal(format!("cryptographic operation failed: {m}")),
            DomainError::Encoding(e) => ApiError::internal(format!("encoding failed: {e}")),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if let StoreError::Invalid(m) = e {
            return ApiError::bad_request(m);
        }
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string())
    }
}

impl From<ProposeError> for ApiError {
    fn from(e: ProposeError) -> Self {
        match e {
            ProposeError::NotLeader { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_leader",
                "this node cannot reach the cluster leader; retry on another node",
            ),
            ProposeError::Raft(m) => ApiError::unavailable(format!("the write could not be committed: {m}")),
            ProposeError::ShuttingDown => ApiError::unavailable("the node is shutting down; retry on another node"),
            ProposeError::LeaderUnreachable(m) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_leader",
                format!("the write could not be forwarded to the leader ({m}); retry, possibly on another node"),
            ),
            ProposeError::Refused(m) => ApiError::conflict(m),
            ProposeError::NoQuorum(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_quorum", m),
            ProposeError::Forbidden(m) => ApiError::forbidden(format!("the leader refused the write: {m}")),
            ProposeError::Removed(m) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "removed",
                format!("{m}; this node no longer serves writes: use another member, or reset it with `hapki cluster delete`"),
            ),
        }
    }
}

/// What the HTTP layer itself refuses, before any service is asked: the request's
/// shape (body, content type, query, headers), its route, its method, its time.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("the request body is too large")]
    TooLarge,
    #[error("send the body as JSON with `Content-Type: application/json`")]
    NotJsonType,
    #[error("the body is not valid JSON: {0}")]
    NotJson(String),
    #[error("the JSON body does not fit: {0}")]
    DoesNotFit(String),
    /// The body could not be read.
    #[error("{0}")]
    Body(String),
    /// A query parameter, path segment or header is malformed; the text says which and how.
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    NoRoute(&'static str),
    #[error("this endpoint does not take {0}; the Allow header lists the methods it takes")]
    MethodNotAllowed(axum::http::Method),
    #[error("the request did not finish within {0} s (request_timeout_secs); a write may still take effect")]
    Timeout(u64),
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        let message = e.to_string();
        match e {
            RequestError::TooLarge => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message),
            RequestError::NotJsonType => {
                ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", message)
            }
            RequestError::NotJson(_)
            | RequestError::DoesNotFit(_)
            | RequestError::Body(_)
            | RequestError::Malformed(_) => ApiError::bad_request(message),
            RequestError::NoRoute(_) => ApiError::not_found(message),
            RequestError::MethodNotAllowed(_) => {
                ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", message)
            }
            RequestError::Timeout(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", message),
        }
    }
}

macro_rules! respond_as_api_error {
    ($($t:ty),*) => {$(
        impl IntoResponse for $t {
            fn into_response(self) -> Response {
                ApiError::from(self).into_response()
            }
        }
    )*};
}
respond_as_api_error!(RequestError, PkiError, LifecycleError);

/// Maps a state-machine refusal.
fn rejected(code: RejectCode, message: String) -> ApiError {
    match code {
        RejectCode::Conflict => ApiError::conflict(message),
        RejectCode::NotFound => ApiError::not_found(message),
        RejectCode::Invalid => ApiError::bad_request(message),
        RejectCode::Forbidden => ApiError::forbidden(message),
        RejectCode::BadNonce => ApiError::new(StatusCode::BAD_REQUEST, "bad_nonce", message),
    }
}

impl From<PkiError> for ApiError {
    fn from(e: PkiError) -> Self {
        let message = e.to_string();
        match e {
            PkiError::Domain(e) => e.into(),
            PkiError::Store(e) => e.into(),
            PkiError::Propose(e) => e.into(),
            PkiError::Rejected { code, message } => rejected(code, message),
            PkiError::Unauthenticated(m) => ApiError::unauthorized(m),
            PkiError::Forbidden(m) => ApiError::forbidden(m),
            PkiError::NoProfile(_) | PkiError::NoIssuer(_) | PkiError::NoCertificate(_) | PkiError::NotFound(_) => {
                ApiError::not_found(message)
            }
            PkiError::NoCa => ApiError::new(StatusCode::CONFLICT, "no_issuer", message),
            PkiError::Invalid(m) => ApiError::bad_request(m),
            PkiError::Conflict(m) => ApiError::conflict(m),
            PkiError::Busy(m) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", m),
            PkiError::Unavailable(m) => ApiError::unavailable(m),
            PkiError::Internal(m) => ApiError::internal(m),
        }
    }
}

impl From<LifecycleError> for ApiError {
    fn from(e: LifecycleError) -> Self {
        let message = e.to_string();
        match e {
            LifecycleError::Pki(e) => e.into(),
            LifecycleError::Cluster(e) => ApiError::unavailable(e.to_string()),
            LifecycleError::AlreadyClustered | LifecycleError::Busy | LifecycleError::NoChannel => {
                ApiError::conflict(message)
            }
            LifecycleError::NotClustered => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, codes::NOT_CLUSTERED, message)
            }
            LifecycleError::BootstrapToken(m) => ApiError::unauthorized(m),
            LifecycleError::Invalid(m) => ApiError::bad_request(m),
            LifecycleError::NotFound(m) => ApiError::not_found(m),
            LifecycleError::Conflict(m) => ApiError::conflict(m),
            LifecycleError::Unavailable(m) => ApiError::unavailable(m),
            LifecycleError::Sealed(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, codes::SEALED, message),
            LifecycleError::Internal(m) => ApiError::internal(m),
        }
    }
}

/// A refusal on the cluster channel: what a member answers another node with.
#[derive(Debug)]
pub struct ChannelError(pub Refusal);

impl IntoResponse for ChannelError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            Refusal::Removed(_) | Refusal::NotTrusted(_) | Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
            Refusal::Conflict(_) => StatusCode::CONFLICT,
            Refusal::Invalid(_) => StatusCode::BAD_REQUEST,
            Refusal::NotFound(_) => StatusCode::NOT_FOUND,
            Refusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, axum::Json(self.0)).into_response()
    }
}

/// An API error as the channel says it; an internal failure is logged here under an id
/// and only the id travels.
impl From<ApiError> for ChannelError {
    fn from(e: ApiError) -> Self {
        ChannelError(match e.status {
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => Refusal::Forbidden(e.message),
            StatusCode::CONFLICT => Refusal::Conflict(e.message),
            StatusCode::NOT_FOUND => Refusal::NotFound(e.message),
            s if s.is_client_error() => Refusal::Invalid(e.message),
            StatusCode::SERVICE_UNAVAILABLE => Refusal::Unavailable(e.message),
            _ => {
                let id = hex::encode(crate::rand::bytes::<8>());
                tracing::error!(code = e.code, request_id = %id, "cluster channel: {}", e.message);
                Refusal::Internal(format!(
                    "the member failed; its log has the details under request id {id}"
                ))
            }
        })
    }
}

impl From<PkiError> for ChannelError {
    fn from(e: PkiError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<ProposeError> for ChannelError {
    fn from(e: ProposeError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<StoreError> for ChannelError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_internal_failure_shows_a_request_id_not_its_text() {
        let err = ApiError::from(StoreError::Corrupt("/var/lib/hapki/hapki.redb page 7".into()));
        let resp = err.into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let text = v.to_string();
        assert!(!text.contains("/var/lib") && !text.contains("page 7"), "{text}");
        let id = v["error"]["request_id"].as_str().unwrap();
        assert_eq!(id.len(), 16);
        assert!(v["error"]["message"].as_str().unwrap().contains(id));
        // A refusal keeps its words.
        let resp = ApiError::bad_request("the CSR is not PEM").into_response();
        let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains("the CSR is not PEM"));
    }

    #[test]
    fn an_election_says_when_to_retry_and_an_unclustered_node_does_not() {
        let no_leader = ApiError::from(ProposeError::LeaderUnreachable("connection refused".into())).into_response();
        assert_eq!(no_leader.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(no_leader.headers()[axum::http::header::RETRY_AFTER], "1");
        let not_clustered =
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, codes::NOT_CLUSTERED, "not clustered").into_response();
        assert!(not_clustered.headers().get(axum::http::header::RETRY_AFTER).is_none());
        let refused = ApiError::conflict("taken").into_response();
        assert!(refused.headers().get(axum::http::header::RETRY_AFTER).is_none());
    }
}
