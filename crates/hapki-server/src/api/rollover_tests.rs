//! Issuing-CA rollover in process (`POST /v1/ca/{id}/rotate`): the successor takes over at
//! its time, relying parties that trust the old root verify what either issues (real
//! `openssl verify`), the old issuer keeps its CRL and OCSP, and a CRL built for one
//! issuer leaves the other's alone. Also: the feature gate that refuses a rollover until
//! every member (voter or learner) applies its state format.

use std::path::Path;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use hapki_domain::key::KeyType;
use hapki_store::Role;
use serde_json::{json, Value};

use crate::pki::gates::MemberBuild;
use crate::testing::{csr, openssl, refused, Api, START};

async fn issue(api: &Api, cn: &str) -> Value {
    let csr = csr(KeyType::EcP256, cn, &[cn]);
    let a = api.post("/v1/certs", &json!({"csr": csr, "profile": "server"})).await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    a.body
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    std::fs::write(dir.join(name), text).unwrap();
    name.to_string()
}

/// When `openssl` checks validity: after the switch, on the service's clock.
const CHECKED_AT: u64 = START + 7_200;

/// `openssl verify` of `leaf` (with the chain the API answered, as untrusted) against `trust`.
fn verifies(dir: &Path, trust: &str, issued: &Value, name: &str) -> (bool, String) {
    let leaf = write(dir, &format!("{name}.pem"), issued["certificate"].as_str().unwrap());
    let chain: String = issued["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let chain = write(dir, &format!("{name}-chain.pem"), &chain);
    let at = CHECKED_AT.to_string();
    openssl(
        dir,
        &["verify", "-attime", &at, "-CAfile", trust, "-untrusted", &chain, &leaf],
    )
}

async fn crl_number(api: &Api, id: &str) -> u64 {
    let list = api.get("/v1/ca").await;
    let issuer = list.body["issuers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("issuer {id} in {:?}", list.body))
        .clone();
    issuer["crl_number"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_rolls_over_at_its_time_with_no_gap_for_relying_parties() {
    let api = Api::new().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let old = api.root.clone();
    let old_pem = api.get("/v1/ca").await.body["issuers"][0]["certificate"]
        .as_str()
        .unwrap()
        .to_string();
    let trust_old = write(d, "old-root.pem", &old_pem);
    let before = issue(&api, "before.example.com").await;

    let at = START + 3_600;
    let rotated = api.post(&format!("/v1/ca/{old}/rotate"), &json!({"at": at})).await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{:?}", rotated.body);
    let to = rotated.body["to"].as_str().unwrap().to_string();
    assert_ne!(to, old);
    assert_eq!(rotated.body["signed"], "signed by the old root");
    let own = rotated.body["self_signed"]
        .as_str()
        .expect("a root's successor is self-signed too");
    let trust_new = write(d, "new-root.pem", own);

    // Until its time, the old root still signs.
    let waiting = issue(&api, "waiting.example.com").await;
    assert_eq!(waiting["issuer_id"], old.as_str());
    let list = api.get("/v1/ca").await.body;
    let old_view = list["issuers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == old.as_str())
        .unwrap()
        .clone();
    assert_eq!(old_view["default"], true);
    assert_eq!(old_view["successor"], to.as_str());
    assert_eq!(old_view["switch_at"], at);

    api.clock.advance(3_601);
    let after = issue(&api, "after.example.com").await;
    assert_eq!(after["issuer_id"], to.as_str(), "the successor signs from its time on");

    // Relying parties that trust only the old root verify all three; those that trust the
    // successor's self-signed certificate verify what it issues.
    for (name, cert) in [("before", &before), ("waiting", &waiting), ("after", &after)] {
        let (ok, text) = verifies(d, &trust_old, cert, name);
        assert!(ok, "{name} against the old root: {text}");
    }
    let (ok, text) = verifies(d, &trust_new, &after, "after-new");
    assert!(ok, "after against the new root: {text}");

    // The old issuer keeps its CRL and OCSP; a CRL built for it leaves the successor's alone.
    let (old_crl, new_crl) = (crl_number(&api, &old).await, crl_number(&api, &to).await);
    let serial = before["serial"].as_str().unwrap();
    let revoked = api
        .post(
            &format!("/v1/certs/{serial}/revoke"),
            &json!({"reason": "keyCompromise"}),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{:?}", revoked.body);
    assert!(
        crl_number(&api, &old).await > old_crl,
        "the old issuer's CRL is rebuilt"
    );
    assert_eq!(crl_number(&api, &to).await, new_crl, "the successor's CRL is not");
    let crl = api
        .publish(
            Request::get(format!("/v1/issuers/{old}/crl"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(crl.status, StatusCode::OK);
    std::fs::write(d.join("old.crl"), &crl.bytes).unwrap();
    let (ok, text) = openssl(
        d,
        &[
            "crl", "-inform", "DER", "-in", "old.crl", "-CAfile", &trust_old, "-noout", "-text",
        ],
    );
    assert!(
        ok && text.contains("verify OK") && text.contains(&serial.to_ascii_uppercase()),
        "{text}"
    );
    let (ok, text) = openssl(
        d,
        &[
            "ocsp",
            "-issuer",
            &trust_old,
            "-cert",
            "before.pem",
            "-reqout",
            "req.der",
            "-no_nonce",
        ],
    );
    assert!(ok, "{text}");
    let answer = api
        .publish(
            Request::post("/ocsp")
                .header(header::CONTENT_TYPE, "application/ocsp-request")
                .body(Body::from(std::fs::read(d.join("req.der")).unwrap()))
                .unwrap(),
        )
        .await;
    std::fs::write(d.join("resp.der"), &answer.bytes).unwrap();
    let (ok, text) = openssl(
        d,
        &[
            "ocsp",
            "-respin",
            "resp.der",
            "-issuer",
            &trust_old,
            "-cert",
            "before.pem",
            "-CAfile",
            &trust_old,
            "-attime",
            &CHECKED_AT.to_string(),
            "-validity_period",
            "100000000",
        ],
    );
    assert!(ok && text.contains("before.pem: revoked"), "{text}");

    // The leader records the switch; the successor is then the stored default.
    api.pki.complete_due_rollovers().await.unwrap();
    assert_eq!(
        api.pki.reader().unwrap().default_issuer_id().unwrap().as_deref(),
        Some(to.as_str())
    );
    let list = api.get("/v1/ca").await.body;
    let new_view = list["issuers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == to.as_str())
        .unwrap()
        .clone();
    assert_eq!(new_view["default"], true);
    assert_eq!(new_view["predecessor"], old.as_str());

    let again = api.post(&format!("/v1/ca/{old}/rotate"), &json!({})).await;
    refused(
        "a second rollover of the old issuer",
        &again,
        409,
        "conflict",
        &format!("rotate {to} instead"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollover_is_refused_for_weaker_tokens_and_bad_input_and_changes_nothing() {
    let api = Api::new().await;
    let agent = api.token(Role::Agent).await;
    let requester = api.token(Role::Requester).await;
    let path = format!("/v1/ca/{}/rotate", api.root);
    let before = api.digest();
    for (case, token) in [("agent", &agent), ("requester", &requester)] {
        let a = api.call(Method::POST, &path, Some(token), Some(&json!({}))).await;
        refused(case, &a, 403, "forbidden", "may not");
    }
    let a = api.post(&path, &json!({"at": "tomorrow"})).await;
    refused("a time that is not a number", &a, 400, "invalid_request", "at");
    let a = api.post(&path, &json!({"validity_days": 0})).await;
    refused("no validity", &a, 400, "invalid_request", "validity_days");
    let a = api.post(&path, &json!({"successor": "x"})).await;
    refused("an unknown field", &a, 400, "invalid_request", "successor");
    let a = api.post("/v1/ca/0011223344556677/rotate", &json!({})).await;
    refused("an unknown issuer", &a, 404, "not_found", "0011223344556677");
    assert_eq!(api.digest(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollover_waits_for_every_member_to_apply_its_state_format() {
    let old_build = MemberBuild {
        id: 2,
        name: "node-b".into(),
        version: Some("0.2.0-format1".into()),
        max_format: Some(1),
    };
    let api = Api::with_members(vec![MemberBuild::this_node(1, "node-a"), old_build]).await;
    assert_eq!(api.pki.reader().unwrap().state_format().unwrap(), 1);
    let path = format!("/v1/ca/{}/rotate", api.root);
    let before = api.digest();
    let a = api.post(&path, &json!({})).await;
    let says = refused("a member of format 1", &a, 409, "conflict", "needs state format 2");
    assert!(says.contains("node-b (hapki 0.2.0-format1, format 1)"), "{says}");
    assert_eq!(api.digest(), before, "nothing is written");

    // A member that does not answer keeps the format where it is, and is named.
    let silent = MemberBuild {
        id: 2,
        name: "node-b".into(),
        version: None,
        max_format: None,
    };
    api.pki
        .set_member_builds(vec![MemberBuild::this_node(1, "node-a"), silent]);
    assert_eq!(api.pki.raise_format().await.unwrap(), None);
    let a = api.post(&path, &json!({})).await;
    let says = refused(
        "a member that does not answer",
        &a,
        409,
        "conflict",
        "needs state format 2",
    );
    assert!(says.contains("node-b (not answering)"), "{says}");

    // Once every member runs this build the leader raises the format to what it applies,
    // and the rollover goes through.
    let upgraded = MemberBuild::this_node(2, "node-b");
    api.pki
        .set_member_builds(vec![MemberBuild::this_node(1, "node-a"), upgraded]);
    let latest = hapki_store::format::MAX;
    assert_eq!(api.pki.raise_format().await.unwrap(), Some(latest));
    assert_eq!(api.pki.reader().unwrap().state_format().unwrap(), latest);
    let a = api.post(&path, &json!({})).await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
}
