//! What the node serves over HTTP in every phase, and how the API joins it once
//! the node has a cluster: `/v1/sys/health` on both listeners, and
//! `/v1/cluster/*` on HTTPS. A fresh node answers `status`, `new`, `csr` and
//! `join` (with its bootstrap token); a member answers the rest (with an API
//! token) and everything `crate::api` routes.
//!
//! `GET status` (no token: load balancers and joining operators read it),
//! `POST new | csr | join | delete`, `GET info`, `GET summary`,
//! `GET|POST nodes`, `GET|DELETE nodes/{id}`; and for the node itself
//! `POST /v1/node/unseal` (also while sealed) and `POST /v1/node/root-of-trust`.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use hapki_api::cluster::{
    ClusterCreated, ClusterInfo, ClusterSettings, ClusterStatus, CreateNodeRequest, DeleteRequest, JoinStarted, Member,
    MemberList, MemberRole, NodeCsr, NodeRemoved, Resetting,
};
use hapki_api::node::MigrateRootOfTrust;
use hapki_api::node_id_hex;
use hapki_api::sys::{Health, HealthQuery, HealthState};
use tower::ServiceExt;

use super::summary::{report, row, summary};
use super::{JoinRequest, LifecycleError, Node, Phase, SettingsChange};
use crate::api::{json, parse_json, raft_view, RawBody, VERSION};
use crate::auth::{authenticate, bearer, Action, Caller};
use crate::error::{ApiError, RequestError};

/// What every node holds, and what stays on each node (SPEC: data, replicated vs node-local).
const REPLICATED: &[&str] = &[
    "CA issuers (certificate, sealed key, OCSP signer)",
    "profiles",
    "issued certificates and revocations",
    "CRLs",
    "API tokens and roles",
    "cluster settings (publication URL, CRL and OCSP validity, voters target, serial mode and range)",
    "sequential serial leases",
    "the internal CA (sealed key)",
    "the key archive: archived keys (sealed), its transport key (sealed), recovery requests and approvals",
    "cluster membership, admitted and removed nodes",
    "the records of backups taken (the files stay where they were written)",
    "the audit log: chained records, their seals, the audit signing key (sealed)",
];
const NODE_LOCAL: &[&str] = &[
    "node id, node name",
    "listen addresses (API, publication, cluster channel)",
    "the node's TLS certificates and keys (in memory)",
    "data directory and log settings",
    "root of trust (unseal.key, or an AES key on a PKCS#11 token) and the sealed KEK",
    "Raft timings",
    "how far the node has got in its current serial range (in memory)",
    "scheduled backup settings and files ([backup] in node.toml)",
    "refused authentications (in the node's log, rate-limited)",
];

/// `/v1/sys/health`, the one route both listeners serve in every phase.
fn health_route() -> Router<Arc<Node>> {
    Router::new().route("/v1/sys/health", get(health))
}

/// The lifecycle's HTTPS routes, with the node as state.
fn routes(node: Arc<Node>) -> Router {
    Router::new()
        .merge(health_route())
        .route("/v1/cluster/status", get(status))
        .route("/v1/cluster/new", post(new))
        .route("/v1/cluster/csr", post(csr))
        .route("/v1/cluster/join", post(join))
        .route("/v1/cluster/delete", post(delete))
        .route("/v1/cluster/info", get(info))
        .route("/v1/cluster/summary", get(cluster_summary))
        .route("/v1/cluster/settings", get(settings).put(put_settings))
        .route("/v1/cluster/rotate-kek", post(rotate_kek))
        .route("/v1/cluster/nodes", get(list).post(create_node))
        .route("/v1/cluster/nodes/{id}", get(get_node).delete(delete_node))
        .route("/v1/node/unseal", post(unseal))
        .route("/v1/node/root-of-trust", post(migrate_root_of_trust))
        .route_layer(axum::middleware::from_fn(crate::observe::note_route))
        .method_not_allowed_fallback(crate::api::method_not_allowed)
        .with_state(node)
}

/// What the HTTPS listener serves: `/v1/cluster/*` in every state, the rest once the
/// node has a cluster and is unsealed (503 `not_clustered` or `sealed` until then).
pub fn https_app(node: Arc<Node>) -> Router {
    let full = node.clone();
    let max_body = node.cfg.max_body_bytes;
    routes(node)
        .fallback_service(tower::service_fn(move |req: Request| {
            let router = full
                .routers()
                .map(|(https, _)| https.clone())
                .ok_or_else(|| full.unserved());
            async move {
                match router {
                    Ok(r) => r.oneshot(req).await,
                    Err(e) => Ok(e.into_response()),
                }
            }
        }))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            max_body,
            crate::api::refuse_oversized,
        ))
        .layer(axum::middleware::from_fn_with_state(
            max_body,
            crate::api::linger::finish_body,
        ))
        .layer(axum::middleware::from_fn_with_state("api", crate::observe::observe))
}

/// What the plain-HTTP listener serves: publication once the node has a cluster.
pub fn http_app(node: Arc<Node>) -> Router {
    let full = node.clone();
    let mut own = health_route();
    if node.cfg.metrics {
        own = own.route("/metrics", get(metrics));
    }
    own.route_layer(axum::middleware::from_fn(crate::observe::note_route))
        .with_state(node)
        .fallback_service(tower::service_fn(move |req: Request| {
            let router = full
                .routers()
                .map(|(_, http)| http.clone())
                .ok_or_else(|| full.unserved());
            async move {
                match router {
                    Ok(r) => r.oneshot(req).await,
                    Err(e) => Ok(e.into_response()),
                }
            }
        }))
        .layer(axum::middleware::from_fn_with_state(
            "publication",
            crate::observe::observe,
        ))
}

/// `GET /metrics` (no token, plain HTTP, with `metrics = true`): Prometheus text format.
async fn metrics(State(node): State<Arc<Node>>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&node),
    )
}

/// `GET /v1/sys/health` (no token): 200 when the node serves reads and writes, 429 when it
/// serves reads but cannot reach a quorum, 503 when it is not ready; the body says why.
pub async fn health(
    State(node): State<Arc<Node>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let q: HealthQuery = serde_urlencoded::from_str(query.as_deref().unwrap_or("")).map_err(|e| {
        RequestError::Malformed(format!(
            "bad query: {e}; health takes okcode, noquorumcode, notreadycode"
        ))
    })?;
    let code = |given: Option<u16>, default: StatusCode| -> Result<StatusCode, RequestError> {
        match given {
            None => Ok(default),
            Some(c) => StatusCode::from_u16(c)
                .ok()
                .filter(|s| (200..600).contains(&s.as_u16()))
                .ok_or_else(|| RequestError::Malformed(format!("{c} is not an HTTP status code (200-599)"))),
        }
    };
    let phase = node.phase();
    let (status, reason, http) = if let Phase::Sealed { reason } = &phase {
        (
            HealthState::Sealed,
            format!("the node is sealed: {reason}"),
            code(q.sealedcode, StatusCode::SERVICE_UNAVAILABLE)?,
        )
    } else if phase != Phase::Ready {
        (
            HealthState::NotReady,
            format!("the node is {}", phase.label()),
            code(q.notreadycode, StatusCode::SERVICE_UNAVAILABLE)?,
        )
    } else if !node.cluster.has_quorum() {
        (
            HealthState::NoQuorum,
            "the node serves reads but cannot reach a majority of the cluster for writes".to_string(),
            code(q.noquorumcode, StatusCode::TOO_MANY_REQUESTS)?,
        )
    } else {
        (
            HealthState::Ok,
            "the node serves reads and writes".to_string(),
            code(q.okcode, StatusCode::OK)?,
        )
    };
    let body = Health {
        raft: raft_view(&node.cluster),
        status,
        reason,
        phase: phase.label(),
    };
    Ok((http, json(body)))
}

/// A member's caller; the operation checks what it may do. A sealed node has no CA service
/// but has the replicated state, and checks the token against it.
fn member(node: &Node, headers: &HeaderMap) -> Result<Caller, ApiError> {
    match node.pki() {
        Some(pki) => Ok(authenticate(&pki, headers)?),
        None if matches!(node.phase(), Phase::Sealed { .. }) => {
            let token = bearer(headers)?;
            let record = crate::pki::check_token(&node.store.reader()?, crate::clock::system_now(), token)?;
            Ok(Caller::new(token, record))
        }
        None => Err(LifecycleError::NotClustered.into()),
    }
}

/// A member's caller, checked against `action`: for what the lifecycle reads out of the
/// node's own state.
fn member_caller(node: &Node, headers: &HeaderMap, action: Action) -> Result<Caller, ApiError> {
    let caller = member(node, headers)?;
    caller.may(action)?;
    Ok(caller)
}

/// A fresh node's caller: the bootstrap token.
fn bootstrap_caller(node: &Node, headers: &HeaderMap) -> Result<(), ApiError> {
    Ok(node.check_bootstrap_token(bearer(headers).ok())?)
}

fn node_id(text: &str) -> Result<u64, LifecycleError> {
    u64::from_str_radix(text.trim(), 16).map_err(|_| {
        LifecycleError::invalid(format!(
            "'{text}' is not a node id (16 hex digits, as `hapki cluster nodes list` shows)"
        ))
    })
}

/// `GET /v1/cluster/status`: where this node stands; no token needed.
async fn status(State(node): State<Arc<Node>>) -> impl IntoResponse {
    let phase = node.phase();
    let s = node.cluster.status();
    let cluster_id = node.store.reader().ok().and_then(|r| r.cluster_id().ok().flatten());
    json(ClusterStatus {
        node_id: node_id_hex(node.id),
        name: node.name.clone(),
        status: phase.label(),
        phase,
        history: node.history(),
        version: VERSION.to_string(),
        cluster_id: if node.pki().is_some() { cluster_id } else { None },
        root_of_trust: Some(node.root().spec().kind().to_string()),
        api: node.cfg.listen.to_string(),
        cluster: node.cfg.cluster_address(),
        leader: s.leader.map(node_id_hex),
        applied_index: s.last_applied,
    })
}

/// `POST /v1/cluster/new` (bootstrap token).
async fn new(State(node): State<Arc<Node>>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    bootstrap_caller(&node, &headers)?;
    let token = node.form_new().await?;
    let pki = node.pki().ok_or_else(|| node.unserved())?;
    Ok((
        StatusCode::CREATED,
        json(ClusterCreated {
            cluster_id: pki.reader()?.cluster_id()?,
            node_id: node_id_hex(node.id),
            admin_token: token,
            admin_token_file: node.dir.admin_token().display().to_string(),
            api_ca_file: node.dir.api_ca_pem().display().to_string(),
        }),
    ))
}

/// `POST /v1/cluster/csr` (bootstrap token).
async fn csr(State(node): State<Arc<Node>>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    bootstrap_caller(&node, &headers)?;
    let csr = node.node_csr()?;
    Ok(json(NodeCsr {
        node_id: node_id_hex(node.id),
        name: node.name.clone(),
        csr,
    }))
}

/// `POST /v1/cluster/join` (bootstrap token): starts the join; `status` follows it.
async fn join(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<impl IntoResponse, ApiError> {
    bootstrap_caller(&node, &headers)?;
    let req: JoinRequest = parse_json(&headers, &body)?;
    node.start_join(req)?;
    Ok((
        StatusCode::ACCEPTED,
        json(JoinStarted {
            node_id: node_id_hex(node.id),
            status: node.phase().label(),
        }),
    ))
}

/// `POST /v1/cluster/delete`: resets this node (admin token; the bootstrap token on a node
/// whose join failed).
async fn delete(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<impl IntoResponse, ApiError> {
    if node.pki().is_some() {
        member_caller(&node, &headers, Action::ManageCluster)?;
    } else {
        bootstrap_caller(&node, &headers)?;
    }
    let req: DeleteRequest = if body.is_empty() {
        DeleteRequest::default()
    } else {
        parse_json(&headers, &body)?
    };
    node.delete(req.force).await?;
    Ok(json(Resetting {
        node_id: node_id_hex(node.id),
        status: "resetting".into(),
        next: "the node starts again as `not clustered` with a new id and a new bootstrap token".into(),
    }))
}

fn members(node: &Node) -> Vec<Member> {
    let status = node.cluster.status();
    node.cluster
        .members()
        .into_iter()
        .map(|m| {
            let role = if status.leader == Some(m.id) {
                MemberRole::Leader
            } else if m.voter {
                MemberRole::Voter
            } else {
                MemberRole::Learner
            };
            Member {
                id: node_id_hex(m.id),
                name: m.addr.name,
                api: m.addr.api,
                cluster: m.addr.cluster,
                role,
            }
        })
        .collect()
}

/// `GET /v1/cluster/info`.
async fn info(State(node): State<Arc<Node>>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    member_caller(&node, &headers, Action::ReadStatus)?;
    let pki = node.pki().ok_or_else(|| node.unserved())?;
    let status = node.cluster.status();
    let reader = pki.reader()?;
    let settings = reader.settings()?;
    Ok(json(ClusterInfo {
        cluster_id: reader.cluster_id()?,
        node_id: node_id_hex(status.id),
        status: node.phase().label(),
        leader: status.leader.map(node_id_hex),
        term: status.term,
        applied_index: status.last_applied,
        digest: reader.digest()?,
        version: VERSION.to_string(),
        voters_target: settings.voters_target,
        nodes: members(&node),
        replicated: REPLICATED.iter().map(|s| s.to_string()).collect(),
        node_local: NODE_LOCAL.iter().map(|s| s.to_string()).collect(),
    }))
}

/// `GET /v1/cluster/nodes`.
async fn list(State(node): State<Arc<Node>>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    member_caller(&node, &headers, Action::ReadStatus)?;
    Ok(json(MemberList { nodes: members(&node) }))
}

/// `POST /v1/cluster/nodes`: signs a joining node's CSR.
async fn create_node(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<impl IntoResponse, ApiError> {
    let caller = member(&node, &headers)?;
    let req: CreateNodeRequest = parse_json(&headers, &body)?;
    let signed = node.sign_node_csr(&caller, &req.csr).await?;
    Ok((StatusCode::CREATED, json(signed)))
}

/// `GET /v1/cluster/nodes/{id}`: one member, as the summary shows it.
async fn get_node(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    member_caller(&node, &headers, Action::ReadStatus)?;
    let id = node_id(&id)?;
    let unknown = || {
        LifecycleError::NotFound(format!(
            "node {id:016x} is not a member; `hapki cluster nodes list` shows the members"
        ))
    };
    // This node answers for itself without asking the others.
    if id == node.id {
        let members = node.cluster.members();
        let me = members.iter().find(|m| m.id == id).ok_or_else(unknown)?;
        return Ok(json(row(me, report(&node), None)));
    }
    let row = summary(&node)
        .await
        .nodes
        .into_iter()
        .find(|r| r.id == node_id_hex(id))
        .ok_or_else(unknown)?;
    Ok(json(row))
}

/// `DELETE /v1/cluster/nodes/{id}`: removes another node.
async fn delete_node(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let caller = member(&node, &headers)?;
    let id = node_id(&id)?;
    let outcome = node.remove_node(&caller, id).await?;
    Ok(json(NodeRemoved {
        removed: node_id_hex(id),
        promoted: outcome.promoted.map(node_id_hex),
        next: "run `hapki cluster delete` on the removed node to reset it".into(),
    }))
}

fn settings_view(node: &Node) -> Result<ClusterSettings, ApiError> {
    let pki = node.pki().ok_or_else(|| node.unserved())?;
    let reader = pki.reader()?;
    let s = reader.settings()?;
    let tidy = reader.tidy_policy()?;
    Ok(ClusterSettings {
        voters_target: s.voters_target,
        serial_mode: s.serial_mode.name().to_string(),
        serial_range: s.serial_range,
        publication_base_url: s.publication_base_url,
        crl_validity_secs: s.crl_validity_secs,
        ocsp_validity_secs: s.ocsp_validity_secs,
        recovery_approvals: pki.recovery_policy()?.approvals,
        tidy_retention_secs: tidy.retention_secs,
        tidy_batch: tidy.batch,
        tidy_share_percent: tidy.share_percent,
        delta_crl_secs: reader.crl_policy()?.delta_secs,
        crl_partition_size: reader.crl_partitioning()?.size,
        promoted: Vec::new(),
    })
}

/// `GET /v1/cluster/settings`: the replicated settings.
async fn settings(State(node): State<Arc<Node>>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    member_caller(&node, &headers, Action::ReadStatus)?;
    Ok(json(settings_view(&node)?))
}

/// `PUT /v1/cluster/settings`: changes the voters target (promoting learners up to it) and
/// the serial mode and range.
async fn put_settings(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<impl IntoResponse, ApiError> {
    let caller = member(&node, &headers)?;
    let req: SettingsChange = parse_json(&headers, &body)?;
    let promoted = node.update_settings(&caller, &req).await?;
    let mut v = settings_view(&node)?;
    v.promoted = promoted.into_iter().map(node_id_hex).collect();
    Ok(json(v))
}

/// `POST /v1/cluster/rotate-kek`: seals every key of the state under a new KEK.
async fn rotate_kek(State(node): State<Arc<Node>>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    let caller = member(&node, &headers)?;
    Ok(json(node.rotate_kek(&caller).await?))
}

/// `GET /v1/cluster/summary`.
async fn cluster_summary(State(node): State<Arc<Node>>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    member_caller(&node, &headers, Action::ReadStatus)?;
    if matches!(node.phase(), Phase::NotClustered) {
        return Err(LifecycleError::NotClustered.into());
    }
    Ok(json(summary(&node).await))
}

/// `POST /v1/node/unseal`: tries to open this node's root of trust now.
async fn unseal(State(node): State<Arc<Node>>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    let caller = member(&node, &headers)?;
    Ok(json(node.unseal(&caller).await?))
}

/// `POST /v1/node/root-of-trust`: moves this node's sealed files under another root of trust.
async fn migrate_root_of_trust(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<impl IntoResponse, ApiError> {
    let caller = member(&node, &headers)?;
    let req: MigrateRootOfTrust = parse_json(&headers, &body)?;
    Ok(json(node.migrate_root_of_trust(&caller, req.to).await?))
}
