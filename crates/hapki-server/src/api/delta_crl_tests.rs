//! Delta CRLs on the publication routes: a complete CRL that points to its deltas, deltas
//! that list what was revoked since it, and the next complete CRL taking them over.

use axum::body::Body;
use axum::http::Request;
use der::asn1::ObjectIdentifier;
use der::Decode;
use hapki_domain::key::KeyType;
use hapki_domain::serial::Serial;
use hapki_store::crl_delta::CrlPolicy;
use hapki_store::Command;
use serde_json::json;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::crl::FreshestCrl;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};

use crate::auth::Caller;
use crate::testing::{csr, refused, Api};

const CRL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.20");
const DELTA_INDICATOR: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.27");
const FRESHEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.46");

/// What a test reads of a CRL.
#[derive(Debug)]
struct Seen {
    number: u64,
    /// The Delta CRL Indicator's base number, and whether it is critical.
    base: Option<(u64, bool)>,
    freshest: Option<String>,
    serials: Vec<String>,
}

fn uint(bytes: &[u8]) -> u64 {
    let n = der::asn1::Uint::from_der(bytes).unwrap();
    n.as_bytes().iter().fold(0, |acc, b| acc << 8 | u64::from(*b))
}

async fn fetch(api: &Api, path: &str) -> Result<Seen, (u16, String)> {
    let a = api.publish(Request::get(path).body(Body::empty()).unwrap()).await;
    if a.status != 200 {
        return Err((a.status.as_u16(), a.message().to_string()));
    }
    let crl = CertificateList::from_der(&a.bytes).unwrap();
    let exts = crl.tbs_cert_list.crl_extensions.clone().unwrap_or_default();
    let find = |oid| exts.iter().find(|e| e.extn_id == oid);
    let freshest = find(FRESHEST).map(|e| {
        let f = FreshestCrl::from_der(e.extn_value.as_bytes()).unwrap();
        match &f.0[0].distribution_point {
            Some(DistributionPointName::FullName(names)) => match &names[0] {
                GeneralName::UniformResourceIdentifier(u) => u.to_string(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    });
    Ok(Seen {
        number: uint(find(CRL_NUMBER).unwrap().extn_value.as_bytes()),
        base: find(DELTA_INDICATOR).map(|e| (uint(e.extn_value.as_bytes()), e.critical)),
        freshest,
        serials: crl
            .tbs_cert_list
            .revoked_certificates
            .iter()
            .flatten()
            .map(|r| {
                Serial::from_hex(&hex::encode(r.serial_number.as_bytes()))
                    .unwrap()
                    .to_hex()
            })
            .collect(),
    })
}

async fn deltas(api: &Api, secs: u64) {
    let policy = CrlPolicy { delta_secs: secs };
    api.pki
        .propose_as(&Caller::node(), Command::SetCrlPolicy { policy })
        .await
        .unwrap();
    api.pki.publish_due_deltas().await.unwrap();
}

async fn issue_and_revoke(api: &Api, cn: &str) -> (String, u64) {
    let body = json!({"csr": csr(KeyType::EcP256, cn, &[cn]), "profile": "server"});
    let a = api.post("/v1/certs", &body).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let serial = Serial::from_hex(a.body["serial"].as_str().unwrap()).unwrap().to_hex();
    let r = api
        .post(
            &format!("/v1/certs/{serial}/revoke"),
            &json!({"reason": "keyCompromise"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    (serial, r.body["crl_number"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_goes_into_a_delta_and_the_next_complete_crl_takes_it_over() {
    let api = Api::new().await;
    let complete_path = format!("/v1/issuers/{}/crl", api.root);
    let delta_path = format!("/v1/issuers/{}/delta-crl", api.root);
    let (status, says) = fetch(&api, &delta_path).await.unwrap_err();
    assert_eq!(status, 404);
    assert!(says.contains("--delta-crl-secs"), "{says}");
    let before = fetch(&api, &complete_path).await.unwrap();
    assert_eq!(before.freshest, None, "no deltas: no Freshest CRL");

    deltas(&api, 5).await;
    let complete = fetch(&api, &complete_path).await.unwrap();
    assert!(complete.number > before.number);
    assert!(
        complete.freshest.as_deref().is_some_and(|u| u.ends_with(&delta_path)),
        "{complete:?}"
    );
    let first = fetch(&api, &delta_path).await.unwrap();
    assert_eq!(
        first.base,
        Some((complete.number, true)),
        "critical Delta CRL Indicator: {first:?}"
    );
    assert_eq!(first.number, complete.number + 1, "one sequence for both kinds");
    assert!(first.serials.is_empty());

    let (serial, number) = issue_and_revoke(&api, "a.example.com").await;
    assert_eq!(
        number,
        first.number + 1,
        "the revocation is answered with the delta that lists it"
    );
    let delta = fetch(&api, &delta_path).await.unwrap();
    assert_eq!((delta.number, delta.serials.clone()), (number, vec![serial.clone()]));
    let still = fetch(&api, &complete_path).await.unwrap();
    assert_eq!(still.number, complete.number, "the complete CRL keeps its schedule");
    assert!(still.serials.is_empty());

    // Nothing waits: the leader publishes no new delta.
    api.pki.publish_due_deltas().await.unwrap();
    assert_eq!(fetch(&api, &delta_path).await.unwrap().number, number);

    let r = api.post("/v1/crl/rotate", &json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let next = fetch(&api, &complete_path).await.unwrap();
    assert_eq!(next.number, r.body["crl_number"].as_u64().unwrap());
    assert!(next.number > number);
    assert_eq!(
        next.serials,
        [serial.clone()],
        "the complete CRL took the revocation over"
    );
    let after = fetch(&api, &delta_path).await.unwrap();
    assert_eq!((after.base, after.serials.len()), (Some((next.number, true)), 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turned_off_the_next_complete_crl_has_no_deltas_and_bad_paths_are_refused() {
    let api = Api::new().await;
    deltas(&api, 5).await;
    let (serial, _) = issue_and_revoke(&api, "b.example.com").await;
    deltas(&api, 0).await;
    let delta_path = format!("/v1/issuers/{}/delta-crl", api.root);
    assert!(
        fetch(&api, &delta_path).await.is_ok(),
        "the complete CRL published with deltas keeps them"
    );
    let (_, number) = issue_and_revoke(&api, "c.example.com").await;
    let complete = fetch(&api, &format!("/v1/issuers/{}/crl", api.root)).await.unwrap();
    assert_eq!(complete.number, number, "off: a revocation publishes a complete CRL");
    assert_eq!(complete.freshest, None);
    assert!(complete.serials.contains(&serial));
    assert_eq!(fetch(&api, &delta_path).await.unwrap_err().0, 404);

    let a = api
        .publish(
            Request::get("/v1/issuers/00000000deadbeef/delta-crl")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    refused("unknown issuer", &a, 404, "not_found", "no issuer with id");
    let a = api
        .publish(Request::post(delta_path.as_str()).body(Body::empty()).unwrap())
        .await;
    assert_eq!(a.status, 405);
}
