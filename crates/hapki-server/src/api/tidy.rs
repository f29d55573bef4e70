//! `/v1/tidy`: where the expiry tidy stands, and a run started now.

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use hapki_api::tidy::TidyRun;

use super::{json, Json};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::pki::Pki;

/// `GET /v1/tidy`.
pub async fn status(State(pki): State<Arc<Pki>>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    Ok(json(pki.tidy_status(&caller)?))
}

/// `POST /v1/tidy`.
pub async fn run(
    State(pki): State<Arc<Pki>>,
    caller: Caller,
    Json(req): Json<TidyRun>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(json(pki.run_tidy(&caller, req.max_batches).await?))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{header, Method, Request};
    use hapki_domain::key::KeyType;
    use hapki_domain::serial::Serial;
    use hapki_store::tidy::TidyPolicy;
    use hapki_store::Role;
    use serde_json::{json, Value};

    use crate::auth::Caller;
    use crate::testing::{csr, refused, Api};

    const DAY: u64 = 86_400;

    async fn issue(api: &Api, cn: &str, days: u32) -> String {
        let body = json!({"csr": csr(KeyType::EcP256, cn, &[cn]), "profile": "server", "validity_days": days});
        let a = api.post("/v1/certs", &body).await;
        assert_eq!(a.status, 201, "{:?}", a.body);
        a.body["serial"].as_str().unwrap().to_string()
    }

    async fn revoke(api: &Api, serial: &str) {
        let a = api
            .post(
                &format!("/v1/certs/{serial}/revoke"),
                &json!({"reason": "keyCompromise"}),
            )
            .await;
        assert_eq!(a.status, 200, "{:?}", a.body);
    }

    /// The default issuer's CRL number and the serials its CRL lists.
    async fn crl_serials(api: &Api) -> (u64, Vec<String>) {
        let number = api.get("/v1/ca").await.body["issuers"][0]["crl_number"]
            .as_u64()
            .unwrap();
        let a = api
            .publish(
                Request::get(format!("/v1/issuers/{}/crl", api.root))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(a.status, 200);
        let crl = <x509_cert::crl::CertificateList as der::Decode>::from_der(&a.bytes).unwrap();
        let serials = crl
            .tbs_cert_list
            .revoked_certificates
            .iter()
            .flatten()
            .map(|r| short(&hex::encode(r.serial_number.as_bytes())))
            .collect();
        (number, serials)
    }

    fn short(serial: &str) -> String {
        Serial::from_hex(serial).unwrap().to_hex()
    }

    async fn policy(api: &Api, retention_secs: u64, batch: u32) {
        let policy = TidyPolicy {
            retention_secs,
            batch,
            share_percent: 100,
        };
        api.pki.set_tidy_policy(&Caller::node(), policy).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_removes_what_expired_past_the_retention_in_batches_and_its_crl_follows() {
        let api = Api::new().await;
        let gone_a = issue(&api, "a.example.com", 1).await;
        let gone_b = issue(&api, "b.example.com", 1).await;
        let gone_revoked = issue(&api, "c.example.com", 1).await;
        let kept_revoked = issue(&api, "d.example.com", 90).await;
        let young = issue(&api, "e.example.com", 5).await;
        revoke(&api, &gone_revoked).await;
        revoke(&api, &kept_revoked).await;
        let (before, listed) = crl_serials(&api).await;
        assert!(listed.contains(&short(&gone_revoked)) && listed.contains(&short(&kept_revoked)));

        // Day 3: the 1-day certificates expired 2 days ago, under the 30-day default.
        api.clock.advance(3 * DAY);
        let s = api.get("/v1/tidy").await;
        assert_eq!(s.status, 200, "{:?}", s.body);
        assert_eq!(
            (s.body["pending"].as_u64(), s.body["retention_secs"].as_u64()),
            (Some(0), Some(30 * DAY))
        );
        assert!(s.body["last"].is_null());

        policy(&api, DAY, 2).await;
        assert_eq!(api.get("/v1/tidy").await.body["pending"], 3);
        let r = api.post("/v1/tidy", &json!({"max_batches": 1})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(
            (r.body["batches"].as_u64(), r.body["removed"].as_u64()),
            (Some(1), Some(2))
        );
        assert_eq!(r.body["pending"], 1, "one batch of two: one waits");
        let r = api.post("/v1/tidy", &json!({})).await;
        assert_eq!(
            (r.body["removed"].as_u64(), r.body["pending"].as_u64()),
            (Some(1), Some(0))
        );

        for gone in [&gone_a, &gone_b, &gone_revoked] {
            assert_eq!(api.get(&format!("/v1/certs/{gone}")).await.status, 404, "{gone}");
        }
        for kept in [&kept_revoked, &young] {
            assert_eq!(api.get(&format!("/v1/certs/{kept}")).await.status, 200, "{kept}");
        }
        let (after, listed) = crl_serials(&api).await;
        assert!(
            after > before,
            "the CRL without the tidied entry has a number of its own"
        );
        assert_eq!(listed, [short(&kept_revoked)], "the expired revoked one left the CRL");

        let s = api.get("/v1/tidy").await.body;
        assert_eq!(
            (s["last"]["total_removed"].as_u64(), s["pending"].as_u64()),
            (Some(3), Some(0))
        );
        let audit = api.get("/v1/audit?action=tidy_expired").await.body;
        let objects: Vec<&str> = audit["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["object"].as_str().unwrap())
            .collect();
        assert_eq!(objects.len(), 2, "{audit:?}");
        assert!(
            objects.iter().any(|o| o.contains(&short(&gone_revoked))),
            "the record names what it removed: {objects:?}"
        );
    }

    /// `POST /v1/certs` as admin with `key` as its Idempotency-Key: the status and serial.
    async fn issue_with_key(api: &Api, cn: &str, key: &str) -> (u16, String) {
        let body = json!({"csr": csr(KeyType::EcP256, cn, &[cn]), "profile": "server"});
        let req = Request::post("/v1/certs")
            .header(header::AUTHORIZATION, format!("Bearer {}", api.admin))
            .header(header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", key)
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap();
        let a = api.send(req).await;
        (
            a.status.as_u16(),
            a.body["serial"].as_str().unwrap_or_default().to_string(),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idempotency_keys_answer_retries_for_a_day_and_the_tidy_forgets_them_after() {
        let api = Api::new().await;
        let (status, first) = issue_with_key(&api, "a.example.com", "k1").await;
        assert_eq!(status, 201);
        issue_with_key(&api, "b.example.com", "k2").await;
        assert_eq!(api.get("/v1/tidy").await.body["idempotency_keys"], 2);

        api.clock.advance(DAY);
        let (status, again) = issue_with_key(&api, "a.example.com", "k1").await;
        assert_eq!(
            (status, &again),
            (201, &first),
            "a retry a day later gets the first certificate"
        );
        let r = api.post("/v1/tidy", &json!({})).await;
        assert_eq!(
            (r.status.as_u16(), r.body["keys_forgotten"].as_u64()),
            (200, Some(0)),
            "{:?}",
            r.body
        );

        api.clock.advance(DAY);
        let r = api.post("/v1/tidy", &json!({})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(
            (r.body["keys_forgotten"].as_u64(), r.body["keys_pending"].as_bool()),
            (Some(2), Some(false)),
            "{:?}",
            r.body
        );
        assert_eq!(api.get("/v1/tidy").await.body["idempotency_keys"], 0);
        let audit = api.get("/v1/audit?action=forget_idempotency_keys").await.body;
        assert_eq!(audit["records"].as_array().unwrap().len(), 1, "{audit:?}");
        let (status, fresh) = issue_with_key(&api, "a.example.com", "k1").await;
        assert_eq!(status, 201);
        assert_ne!(fresh, first, "two days on, the key is a new request");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn weaker_tokens_and_bad_input_are_refused_and_change_nothing() {
        let api = Api::new().await;
        issue(&api, "a.example.com", 1).await;
        api.clock.advance(3 * DAY);
        policy(&api, 0, 10).await;
        let agent = api.token(Role::Agent).await;
        let requester = api.token(Role::Requester).await;
        let digest = api.digest();
        let run = json!({});
        let a = api.call(Method::POST, "/v1/tidy", Some(&agent), Some(&run)).await;
        refused("agent runs a tidy", &a, 403, "forbidden", "tidy expired certificates");
        let a = api.call(Method::GET, "/v1/tidy", Some(&requester), None).await;
        refused("requester reads the tidy", &a, 403, "forbidden", "read the status");
        assert_eq!(api.call(Method::GET, "/v1/tidy", Some(&agent), None).await.status, 200);
        let a = api.call(Method::POST, "/v1/tidy", None, Some(&run)).await;
        assert_eq!(a.status, 401);
        let a = api.post("/v1/tidy", &json!({"max_batches": 0})).await;
        refused("zero batches", &a, 400, "invalid_request", "at least 1");
        let a = api.post("/v1/tidy", &json!({"batches": 2})).await;
        assert_eq!(a.status, 400, "an unknown field: {:?}", a.body);
        let req = Request::post("/v1/tidy")
            .header(header::AUTHORIZATION, format!("Bearer {}", api.admin))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{not json"))
            .unwrap();
        assert_eq!(api.send(req).await.status, 400);
        let bad = TidyPolicy {
            share_percent: 0,
            ..TidyPolicy::default()
        };
        let e = api.pki.set_tidy_policy(&Caller::node(), bad).await.unwrap_err();
        assert!(e.to_string().contains("tidy_share_percent"), "{e}");
        assert_eq!(api.digest(), digest, "nothing changed");
        assert_eq!(api.get("/v1/tidy").await.body["pending"], 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_certificate_with_an_archived_key_outlives_the_tidy() {
        let api = Api::new().await;
        let body = json!({"common_name": "mail.example.com", "sans": ["mail.example.com"], "profile": "server",
            "validity_days": 1, "archive": true});
        let a = api.post("/v1/certs/generate", &body).await;
        assert_eq!(a.status, 201, "{:?}", a.body);
        let archived = a.body["serial"].as_str().unwrap().to_string();
        api.clock.advance(3 * DAY);
        policy(&api, 0, 10).await;
        let r = api.post("/v1/tidy", &json!({})).await;
        assert_eq!(
            (r.status.as_u16(), r.body["removed"].as_u64()),
            (200, Some(0)),
            "{:?}",
            r.body
        );
        assert_eq!(api.get(&format!("/v1/certs/{archived}")).await.status, 200);
        let v: Value = api.get("/v1/tidy").await.body;
        assert_eq!(v["pending"], 0);
    }
}
