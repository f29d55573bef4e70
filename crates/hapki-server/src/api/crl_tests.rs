//! Delta and partition CRLs on the publication routes: a complete CRL that points to its
//! deltas, deltas that list what was revoked since it, the next complete CRL taking them
//! over; certificates that name a partition, whose CRL lists only its own.

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
        std::slice::from_ref(&serial),
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

/// The CRL URL a certificate (PEM) names.
fn cdp_of(pem: &str) -> String {
    let der = hapki_domain::pem::decode_one(pem.as_bytes(), &[hapki_domain::pem::PemLabel::Certificate]).unwrap();
    let cert = x509_cert::Certificate::from_der(&der).unwrap();
    let ext = cert
        .tbs_certificate
        .extensions
        .unwrap()
        .into_iter()
        .find(|e| e.extn_id == ObjectIdentifier::new_unwrap("2.5.29.31"))
        .unwrap();
    let points = x509_cert::ext::pkix::CrlDistributionPoints::from_der(ext.extn_value.as_bytes()).unwrap();
    match &points.0[0].distribution_point {
        Some(DistributionPointName::FullName(names)) => match &names[0] {
            GeneralName::UniformResourceIdentifier(u) => u.to_string(),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_partition_size_certificates_name_a_partition_whose_crl_lists_only_its_own() {
    let api = Api::new().await;
    let complete_path = format!("/v1/issuers/{}/crl", api.root);
    let partitioning = hapki_store::crl_partition::CrlPartitioning { size: 1 };
    api.pki
        .propose_as(&Caller::node(), Command::SetCrlPartitioning { policy: partitioning })
        .await
        .unwrap();
    // Nothing revoked yet: the complete CRL.
    let (first, _) = issue_and_revoke(&api, "first.example.com").await;
    let a = api.get(&format!("/v1/certs/{first}")).await;
    assert!(cdp_of(a.body["certificate"].as_str().unwrap()).ends_with(&complete_path));

    // One revoked, past the size of 1: two partitions, chosen by the serial.
    let mut by_partition: [Vec<String>; 2] = Default::default();
    for i in 0..40 {
        let cn = format!("p{i}.example.com");
        let body = json!({"csr": csr(KeyType::EcP256, &cn, &[&cn]), "profile": "server"});
        let a = api.post("/v1/certs", &body).await;
        assert_eq!(a.status, 201, "{:?}", a.body);
        let url = cdp_of(a.body["certificate"].as_str().unwrap());
        let p: usize = url.rsplit('/').next().unwrap().parse().unwrap();
        assert!(url.ends_with(&format!("{complete_path}/{p}")), "{url}");
        let serial = Serial::from_hex(a.body["serial"].as_str().unwrap()).unwrap().to_hex();
        if by_partition[p].len() < 2 {
            by_partition[p].push(serial);
        }
        if by_partition.iter().all(|s| s.len() == 2) {
            break;
        }
    }
    assert!(
        by_partition.iter().all(|s| s.len() == 2),
        "40 serials land in both partitions"
    );
    // Revoke one of each partition; the other of each stays good.
    for serials in &by_partition {
        let r = api
            .post(
                &format!("/v1/certs/{}/revoke", serials[0]),
                &json!({"reason": "superseded"}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let complete = fetch(&api, &complete_path).await.unwrap();
    for (p, serials) in by_partition.iter().enumerate() {
        let part = fetch(&api, &format!("{complete_path}/{p}")).await.unwrap();
        assert_eq!(part.number, complete.number, "a partition is of the latest head");
        assert_eq!(part.serials, [serials[0].clone()], "partition {p} lists its own only");
        assert!(
            complete.serials.contains(&serials[0]),
            "the complete CRL lists every one"
        );
    }
    assert!(complete.serials.contains(&first));

    let part = api
        .publish(
            Request::get(format!("{complete_path}/0.pem"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(String::from_utf8_lossy(&part.bytes).starts_with("-----BEGIN X509 CRL-----"));
    for bad in ["x", "4096", "-1", "0.der"] {
        let a = api
            .publish(
                Request::get(format!("{complete_path}/{bad}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(a.status, 404, "{bad}: {:?}", a.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tidy_of_a_revoked_certificate_numbers_its_crl_above_the_deltas() {
    let api = Api::new().await;
    deltas(&api, 5).await;
    let body = json!({"csr": csr(KeyType::EcP256, "old.example.com", &["old.example.com"]), "profile": "server",
        "validity_days": 1});
    let a = api.post("/v1/certs", &body).await;
    let serial = a.body["serial"].as_str().unwrap().to_string();
    let r = api
        .post(&format!("/v1/certs/{serial}/revoke"), &json!({"reason": "superseded"}))
        .await;
    let delta_number = r.body["crl_number"].as_u64().unwrap();
    api.clock.advance(3 * 86_400);
    let policy = hapki_store::tidy::TidyPolicy {
        retention_secs: 0,
        ..Default::default()
    };
    api.pki.set_tidy_policy(&Caller::node(), policy).await.unwrap();
    let t = api.post("/v1/tidy", &json!({})).await;
    assert_eq!(
        (t.status.as_u16(), t.body["revoked"].as_u64()),
        (200, Some(1)),
        "{:?}",
        t.body
    );
    let complete = fetch(&api, &format!("/v1/issuers/{}/crl", api.root)).await.unwrap();
    assert!(
        complete.number > delta_number,
        "{complete:?} after delta {delta_number}"
    );
    assert!(complete.serials.is_empty());
}
