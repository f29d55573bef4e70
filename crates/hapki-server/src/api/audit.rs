//! `/v1/audit`: the audit log by page, its export as JSON lines, the node's check of
//! it, and the certificate that verifies its seals.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use hapki_api::audit::AuditQuery;

use super::json;
use crate::auth::Caller;
use crate::error::{ApiError, RequestError};
use crate::pki::{Pki, PkiError};

/// `GET /v1/audit?after=&limit=&action=&actor=&object=`.
pub async fn list(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let q: AuditQuery = serde_urlencoded::from_str(query.as_deref().unwrap_or("")).map_err(|e| {
        RequestError::Malformed(format!(
            "bad query: {e}; the audit log takes after, limit, action, actor, object"
        ))
    })?;
    Ok(json(pki.audit_list(&caller, &q)?))
}

/// `GET /v1/audit/verify`.
pub async fn verify(State(pki): State<Arc<Pki>>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    let checked = tokio::task::spawn_blocking(move || pki.audit_verify(&caller))
        .await
        .map_err(|e| PkiError::internal(e.to_string()))??;
    Ok(json(checked))
}

/// `GET /v1/audit/export`: JSON lines, sent as they are written.
pub async fn export(State(pki): State<Arc<Pki>>, caller: Caller) -> Result<Response, ApiError> {
    let job = pki.audit_export(&caller)?;
    let mut resp = super::stream::written(move |out| job.write(out)).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/jsonl"));
    Ok(resp)
}

/// `GET /v1/audit/certificate`.
pub async fn certificate(State(pki): State<Arc<Pki>>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    Ok(json(pki.audit_certificate(&caller).await?))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::Method;
    use hapki_api::audit::ExportLine;
    use hapki_domain::key::KeyType;
    use hapki_store::Role;
    use serde_json::json;

    use crate::testing::{csr, refused, Api};

    /// Waits until the seal covers the whole log (the leader seals after each batch).
    async fn sealed(api: &Api) -> serde_json::Value {
        for _ in 0..100 {
            let v = api.get("/v1/audit").await.body;
            if v["head"] == v["sealed_through"] {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the audit log was not sealed: {:?}", api.get("/v1/audit").await.body);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_security_relevant_action_is_recorded_with_who_what_and_outcome() {
        let api = Api::new().await;
        let requester = api.token(Role::Requester).await;
        let body = json!({"csr": csr(KeyType::EcP256, "a.example.com", &["a.example.com"]), "profile": "server"});
        let issued = api.call(Method::POST, "/v1/certs", Some(&requester), Some(&body)).await;
        assert_eq!(issued.status.as_u16(), 201, "{:?}", issued.body);
        let serial = issued.body["serial"].as_str().unwrap().to_string();
        let a = api
            .post(
                &format!("/v1/certs/{serial}/revoke"),
                &json!({"reason": "key_compromise"}),
            )
            .await;
        assert!(a.status.is_success(), "{:?}", a.body);
        let a = api
            .post(&format!("/v1/ca/{}/export", api.root), &json!({"password": "p"}))
            .await;
        assert!(a.status.is_success(), "{:?}", a.body);
        let page = sealed(&api).await;
        let rows: Vec<(String, String, String)> = page["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["action"].as_str().unwrap().to_string(),
                    r["actor_name"].as_str().unwrap().to_string(),
                    r["outcome"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let has = |action: &str, actor: &str| rows.iter().any(|(a, n, o)| a == action && n == actor && o == "applied");
        assert!(has("create_token", "node"), "{rows:?}");
        assert!(has("issue_cert", "requester"), "{rows:?}");
        assert!(has("revoke", "admin"), "{rows:?}");
        assert!(has("export_ca", "admin"), "{rows:?}");
        // Filters: by action, by actor name, by object.
        let only = api.get("/v1/audit?action=issue_cert").await.body;
        assert_eq!(only["records"].as_array().unwrap().len(), 1, "{only:?}");
        assert!(only["records"][0]["object"].as_str().unwrap().contains(&serial));
        let by = api.get("/v1/audit?actor=requester").await.body;
        assert!(by["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["actor_name"] == "requester"));
        let of = api.get(&format!("/v1/audit?object={serial}")).await.body;
        assert_eq!(of["records"].as_array().unwrap().len(), 2, "issued and revoked: {of:?}");
        let after = api.get("/v1/audit?after=2&limit=1").await.body;
        assert_eq!(after["records"][0]["seq"], 3, "{after:?}");

        let checked = api.get("/v1/audit/verify").await;
        assert_eq!(checked.status.as_u16(), 200, "{:?}", checked.body);
        assert_eq!(checked.body["fault"], serde_json::Value::Null, "{:?}", checked.body);
        assert_eq!(checked.body["records"], page["head"]);

        // The export holds every record and seal; the certificate checks its seals.
        let export = api.get("/v1/audit/export").await;
        assert_eq!(export.headers["content-type"], "application/jsonl");
        let lines: Vec<ExportLine> = export
            .bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert!(matches!(lines[0], ExportLine::Header { .. }));
        let cert = api.get("/v1/audit/certificate").await;
        assert_eq!(cert.status.as_u16(), 200, "{:?}", cert.body);
        let der = hapki_domain::pem::decode_one(
            cert.body["certificate"].as_str().unwrap().as_bytes(),
            &[hapki_domain::pem::PemLabel::Certificate],
        )
        .unwrap();
        let public = hapki_domain::audit::ed25519_public(&der).unwrap();
        let records = lines.iter().filter_map(|l| match l {
            ExportLine::Record { position, record } => Some((*position, record.clone())),
            _ => None,
        });
        let seals: Vec<_> = lines
            .iter()
            .filter_map(|l| match l {
                ExportLine::Seal(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        let report = hapki_domain::audit::verify(records, &seals, &public);
        assert!(report.ok(), "{report:?}");
        assert_eq!(report.sealed_through, page["head"].as_u64().unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn weaker_tokens_read_nothing_of_the_audit_log_and_bad_queries_are_refused() {
        let api = Api::new().await;
        let weaker = [
            (Role::Agent, api.token(Role::Agent).await),
            (Role::Requester, api.token(Role::Requester).await),
        ];
        // A token revoked: recorded with the token's id as its object.
        let token = api
            .post("/v1/tokens", &json!({"role": "agent", "name": "gone"}))
            .await
            .body["id"]
            .as_str()
            .unwrap()
            .to_string();
        let a = api
            .call(Method::DELETE, &format!("/v1/tokens/{token}"), Some(&api.admin), None)
            .await;
        assert!(a.status.is_success(), "{:?}", a.body);
        let revoked = api
            .get(&format!("/v1/audit?action=revoke_token&object={token}"))
            .await
            .body;
        assert_eq!(revoked["records"][0]["outcome"], "applied", "{revoked:?}");
        assert_eq!(revoked["records"][0]["actor_name"], "admin", "{revoked:?}");

        for (role, token) in &weaker {
            for path in [
                "/v1/audit",
                "/v1/audit/export",
                "/v1/audit/verify",
                "/v1/audit/certificate",
            ] {
                let a = api.call(Method::GET, path, Some(token), None).await;
                refused(
                    &format!("{} {path}", role.name()),
                    &a,
                    403,
                    "forbidden",
                    "may not read the audit log",
                );
            }
        }
        let a = api.call(Method::GET, "/v1/audit", None, None).await;
        refused("no token", &a, 401, "unauthorized", "token");
        let before = api.digest();
        for (case, path, says) in [
            ("limit 0", "/v1/audit?limit=0", "limit"),
            ("limit too large", "/v1/audit?limit=100000", "limit"),
            ("a limit that is no number", "/v1/audit?limit=many", "bad query"),
            ("an unknown parameter", "/v1/audit?who=me", "bad query"),
        ] {
            refused(case, &api.get(path).await, 400, "invalid_request", says);
        }
        assert_eq!(api.digest(), before);
    }
}
