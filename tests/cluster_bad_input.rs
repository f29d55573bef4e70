//! Bad input to the cluster API (`/v1/cluster/*`), over raw HTTPS and through the
//! CLI. A node that is not clustered takes only its own bootstrap token, answers
//! 503 `not_clustered` outside the cluster routes, and refuses malformed joins
//! without losing the key of its latest `cluster csr` (it joins afterwards with
//! it). A member refuses callers without the right token, CSRs that are not
//! honest node CSRs, bad node ids, bad settings and a second `cluster new`.
//! Every refusal has the right HTTP status (or CLI exit code), the JSON error
//! shape and a message a person can act on; refused requests leave the state
//! digest as it was, and the node keeps serving.

mod common;

use std::path::Path;
use std::time::Duration;

use common::refusals::{der_pem, hapki_csr, pem_blocks, pem_der, Api};
use common::{stderr, wait_for, Node};
use reqwest::header::AUTHORIZATION;
use reqwest::Method;
use serde_json::{json, Value};

/// A bootstrap token of the right shape that no node issued.
const WRONG_BOOTSTRAP: &str = "hbt_000000000000000000000000000000000000000000000000";
/// A node id (16 hex digits) that names no node.
const UNKNOWN_ID: &str = "0123456789abcdef";

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Forms a one-node cluster from a fresh node with `POST /v1/cluster/new`; a second
/// `cluster new`, over HTTPS and with the CLI, is refused. Returns the admin token.
fn form_cluster(node: &Node) -> String {
    let bootstrap = node.bootstrap_token();
    let api = Api::new(node);
    let formed = api.ok(api.post_as("/v1/cluster/new", Some(&bootstrap), &json!({})), 201);
    assert_eq!(formed["node_id"], node.id().as_str(), "{formed}");
    let token = formed["admin_token"].as_str().expect("admin_token").to_string();
    assert!(token.starts_with("hapki_"), "{formed}");
    assert_eq!(read(&node.data().join("admin-token")).trim(), token);
    assert!(
        !node.data().join("bootstrap-token").exists(),
        "the bootstrap token is spent once the node has a cluster"
    );

    // The node now presents a certificate of the cluster's internal CA: a new client.
    let api = Api::new(node);
    api.refused(
        "cluster new twice, with the spent bootstrap token",
        api.post_as("/v1/cluster/new", Some(&bootstrap), &json!({})),
        409,
        "conflict",
        "already part of a cluster",
    );
    api.refused(
        "cluster new twice, with the admin token",
        api.post_as("/v1/cluster/new", Some(&token), &json!({})),
        409,
        "conflict",
        "already part of a cluster",
    );
    api.cli_refused(
        "CLI cluster new twice",
        &["cluster", "new"],
        Some(&bootstrap),
        5,
        "already part of a cluster",
    );
    token
}

#[test]
fn a_fresh_node_takes_only_its_bootstrap_token_and_well_formed_joins() {
    let mut member = Node::start_fresh("");
    member.token = form_cluster(&member);
    let mut fresh = Node::start_fresh("");
    let boot = fresh.bootstrap_token();
    let fresh_id = fresh.id();
    let admin = member.token.clone();
    let api = Api::new(&fresh);

    // --- Status needs no token and shows a node that is not clustered. ---
    let status = api.ok(api.req(Method::GET, "/v1/cluster/status", None), 200);
    assert_eq!(status["status"], "not clustered", "{status}");
    assert_eq!(status["phase"]["state"], "not_clustered", "{status}");
    assert!(status["cluster_id"].is_null(), "{status}");
    assert_eq!(status["node_id"], fresh_id.as_str(), "{status}");
    assert_eq!(status["cluster"], fresh.channel_addr().as_str(), "{status}");
    let history = status["history"].clone();

    // --- The lifecycle routes take the bootstrap token and nothing else. ---
    let join_body = json!({"member": member.channel_addr(), "certificate": "x"});
    for (route, body) in [
        ("/v1/cluster/new", json!({})),
        ("/v1/cluster/csr", json!({})),
        ("/v1/cluster/join", join_body.clone()),
    ] {
        api.refused(
            &format!("{route} without a token"),
            api.post_as(route, None, &body),
            401,
            "unauthorized",
            "pass its bootstrap token",
        );
        api.refused(
            &format!("{route} with a wrong bootstrap token"),
            api.post_as(route, Some(WRONG_BOOTSTRAP), &body),
            401,
            "unauthorized",
            "bootstrap-token",
        );
        api.refused(
            &format!("{route} with another cluster's admin token"),
            api.post_as(route, Some(&admin), &body),
            401,
            "unauthorized",
            "wrong bootstrap token",
        );
        api.refused(
            &format!("{route} with Basic instead of Bearer"),
            api.client
                .post(format!("{}{route}", fresh.url()))
                .header(AUTHORIZATION, format!("Basic {boot}"))
                .json(&body),
            401,
            "unauthorized",
            "bootstrap token",
        );
    }

    // --- Everything outside the lifecycle answers 503 not_clustered. ---
    for (method, path, token) in [
        (Method::GET, "/v1/certs", Some(boot.as_str())),
        (Method::GET, "/v1/sys/status", None),
        (Method::GET, "/v1/ca", Some(admin.as_str())),
        (Method::GET, "/v1/cluster/info", Some(admin.as_str())),
        (Method::GET, "/v1/cluster/nodes", Some(boot.as_str())),
        (Method::GET, "/v1/cluster/summary", Some(admin.as_str())),
        (Method::GET, "/v1/cluster/settings", Some(admin.as_str())),
        (Method::GET, "/v1/cluster/no-such-route", None),
    ] {
        api.refused(
            &format!("{method} {path} on a node that is not clustered"),
            api.req(method.clone(), path, token),
            503,
            "not_clustered",
            "not clustered yet",
        );
    }
    // Health answers for load balancers: 503, not ready, and why.
    let resp = api.req(Method::GET, "/v1/sys/health", None).send().unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let health: Value = resp.json().unwrap();
    assert_eq!(health["status"], "not_ready", "{health}");
    assert_eq!(health["phase"], "not clustered", "{health}");
    api.refused(
        "a node that is not clustered signs no node CSR",
        api.post_as(
            "/v1/cluster/nodes",
            Some(&admin),
            &json!({"csr": "-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n"}),
        ),
        503,
        "not_clustered",
        "not clustered yet",
    );
    api.refused(
        "settings on a node that is not clustered",
        api.req(Method::PUT, "/v1/cluster/settings", Some(&admin))
            .json(&json!({"voters_target": 5})),
        503,
        "not_clustered",
        "not clustered yet",
    );
    api.refused(
        "publication over plain HTTP on a node that is not clustered",
        api.client.get(format!("{}/v1/ca.pem", fresh.http_url())),
        503,
        "not_clustered",
        "not clustered yet",
    );
    api.refused(
        "GET on cluster new",
        api.req(Method::GET, "/v1/cluster/new", Some(&boot)),
        405,
        "method_not_allowed",
        "does not take GET",
    );
    api.refused(
        "DELETE on cluster status",
        api.req(Method::DELETE, "/v1/cluster/status", None),
        405,
        "method_not_allowed",
        "does not take DELETE",
    );

    // --- Join bodies that are not the JSON the endpoint takes. ---
    api.refused(
        "join with invalid JSON",
        api.post_raw("/v1/cluster/join", Some(&boot), "{\"member\": \"127.0.0.1:1\", "),
        400,
        "invalid_request",
        "not valid JSON",
    );
    api.refused(
        "join with an unknown field",
        api.post_as(
            "/v1/cluster/join",
            Some(&boot),
            &json!({"member": member.channel_addr(), "certificate": "x", "force": true}),
        ),
        400,
        "invalid_request",
        "unknown field `force`",
    );
    api.refused(
        "join without a certificate",
        api.post_as(
            "/v1/cluster/join",
            Some(&boot),
            &json!({"member": member.channel_addr()}),
        ),
        400,
        "invalid_request",
        "missing field `certificate`",
    );
    api.refused(
        "join with a port number as member",
        api.post_as(
            "/v1/cluster/join",
            Some(&boot),
            &json!({"member": member.channel, "certificate": "x"}),
        ),
        400,
        "invalid_request",
        "invalid type: integer",
    );
    api.refused(
        "join without Content-Type",
        api.req(Method::POST, "/v1/cluster/join", Some(&boot))
            .body(join_body.to_string()),
        415,
        "unsupported_media_type",
        "Content-Type: application/json",
    );
    api.refused(
        "join with a 1.5 MiB body (the limit is max_body_bytes, 1 MiB by default)",
        api.post_alone(
            "/v1/cluster/join",
            Some(&boot),
            &json!({"member": member.channel_addr(), "certificate": "A".repeat(1536 * 1024)}),
        ),
        413,
        "too_large",
        "too large",
    );

    // --- A well-formed join before any `cluster csr`: there is no key to join with. ---
    let member_ca = read(&member.api_ca());
    api.refused(
        "join before cluster csr",
        api.post_as(
            "/v1/cluster/join",
            Some(&boot),
            &json!({"member": member.channel_addr(), "certificate": member_ca}),
        ),
        409,
        "conflict",
        "no pending key",
    );
    std::fs::write(fresh.work().join("member-ca.pem"), &member_ca).expect("write");
    api.cli_refused(
        "CLI join before cluster csr",
        &[
            "cluster",
            "join",
            "--member",
            &member.channel_addr(),
            "--cert",
            "member-ca.pem",
            "--yes",
        ],
        Some(&boot),
        5,
        "no pending key",
    );
    api.cli_refused(
        "CLI cluster csr with a wrong bootstrap token",
        &["cluster", "csr"],
        Some(WRONG_BOOTSTRAP),
        4,
        "bootstrap-token",
    );
    api.cli_refused(
        "CLI cluster csr without a token",
        &["cluster", "csr"],
        None,
        4,
        "bootstrap token",
    );
    api.cli_refused(
        "CLI status on a node that is not clustered",
        &["status"],
        Some(&boot),
        6,
        "not clustered",
    );

    // --- Two CSRs, both signed by the member: only the latest key may join. ---
    let signed = |name: &str| {
        let csr = fresh.work().join(format!("{name}.csr"));
        let out = fresh.cli_with_token(&["cluster", "csr", "--out", csr.to_str().expect("path")], Some(&boot));
        assert!(out.status.success(), "cluster csr: {}", stderr(&out));
        let pem = fresh.work().join(format!("{name}.pem"));
        let v = member.json(&[
            "cluster",
            "nodes",
            "create",
            "--csr",
            csr.to_str().expect("path"),
            "--out",
            pem.to_str().expect("path"),
        ]);
        assert_eq!(v["node_id"], fresh_id.as_str(), "{v}");
        read(&pem)
    };
    let stale = signed("stale");
    let good = signed("good");
    assert_eq!(pem_blocks(&good).len(), 2, "the node certificate, then the internal CA");
    let good_blocks = pem_blocks(&good);
    let node_cert = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        good_blocks[0]
    );
    // A node CSR made by hand for another node id, signed by the member.
    let other_csr = hapki_csr(
        &member,
        "other",
        &["--cn", "other", "--san", "URI:urn:hapki:node:00000000000000aa"],
    );
    let other = api_signed(&member, &other_csr);
    let fresh_ca = read(&fresh.api_ca());
    let garbage = format!(
        "{}{}",
        der_pem("CERTIFICATE", b"\x30\x03\x02\x01\x05garbage"),
        der_pem("CERTIFICATE", b"\x30\x03\x02\x01\x05garbage")
    );

    let join = |certificate: &str, member_addr: &str| {
        api.post_as(
            "/v1/cluster/join",
            Some(&boot),
            &json!({"member": member_addr, "certificate": certificate}),
        )
    };
    let m = member.channel_addr();
    api.refused(
        "join with a certificate that is not PEM",
        join("hello, I am a certificate", &m),
        400,
        "invalid_request",
        "no -----BEGIN CERTIFICATE----- block found",
    );
    api.refused(
        "join with the node certificate but not the internal CA",
        join(&node_cert, &m),
        400,
        "invalid_request",
        "then the cluster's internal CA",
    );
    api.refused(
        "join with two PEM blocks of garbage DER",
        join(&garbage, &m),
        400,
        "invalid_input",
        "not a valid X.509 certificate",
    );
    api.refused(
        "join with a certificate for another node",
        join(&other, &m),
        400,
        "invalid_request",
        &format!("not for this node (id {fresh_id})"),
    );
    api.refused(
        "join with the certificate of an earlier CSR",
        join(&stale, &m),
        400,
        "invalid_request",
        "does not match the key of this node's latest CSR",
    );
    api.refused(
        "join with the node certificate followed by another CA",
        join(&format!("{node_cert}{fresh_ca}"), &m),
        400,
        "invalid_request",
        "not signed by the CA that follows it",
    );
    api.refused(
        "join with a member that is not host:port",
        join(&good, "member.example.com"),
        400,
        "invalid_request",
        "host:port (got 'member.example.com')",
    );
    api.refused(
        "join with an empty member",
        join(&good, "  "),
        400,
        "invalid_request",
        "host:port",
    );
    api.cli_refused(
        "CLI join with a member that is not host:port",
        &[
            "cluster",
            "join",
            "--member",
            "member.example.com",
            "--cert",
            "good.pem",
            "--yes",
        ],
        Some(&boot),
        2,
        "host:port",
    );
    std::fs::write(fresh.work().join("not-pem.txt"), "hello, I am a certificate").expect("write");
    api.cli_refused(
        "CLI join with a certificate file that is not PEM",
        &["cluster", "join", "--member", &m, "--cert", "not-pem.txt", "--yes"],
        Some(&boot),
        2,
        "the certificate file",
    );
    api.cli_refused(
        "CLI join with a certificate file that does not exist",
        &["cluster", "join", "--member", &m, "--cert", "missing.pem", "--yes"],
        Some(&boot),
        2,
        "cannot read",
    );

    // --- Nothing changed on the fresh node: same id, token, phase and history. ---
    let after = api.ok(api.req(Method::GET, "/v1/cluster/status", None), 200);
    assert_eq!(after["status"], "not clustered", "{after}");
    assert_eq!(after["node_id"], fresh_id.as_str(), "{after}");
    assert_eq!(after["history"], history, "refusals changed the phase: {after}");
    assert_eq!(fresh.bootstrap_token(), boot, "the bootstrap token is unchanged");
    let count = api.report();
    assert!(count >= 45, "{count} cases");
    drop(api);

    // --- The key of the latest CSR survived every refusal: the node joins with it. ---
    let out = fresh.cli_with_token(
        &["cluster", "join", "--member", &m, "--cert", "good.pem", "--yes"],
        Some(&boot),
    );
    assert!(out.status.success(), "join after the refusals: {}", stderr(&out));
    fresh.token = admin.clone();
    assert_eq!(fresh.json(&["cluster", "status"])["status"], "ready");
    wait_for(
        "the joined node to hold the cluster's state",
        Duration::from_secs(20),
        || fresh.digest() == member.digest(),
    );

    // A member answers the lifecycle routes of a fresh node with 409, whatever the token.
    let api = Api::new(&fresh);
    for (route, body) in [
        ("/v1/cluster/new", json!({})),
        ("/v1/cluster/csr", json!({})),
        ("/v1/cluster/join", json!({"member": m, "certificate": good})),
    ] {
        api.refused(
            &format!("{route} on a member, with the spent bootstrap token"),
            api.post_as(route, Some(&boot), &body),
            409,
            "conflict",
            "already part of a cluster",
        );
        api.refused(
            &format!("{route} on a member, without a token"),
            api.post_as(route, None, &body),
            409,
            "conflict",
            "already part of a cluster",
        );
    }
    api.cli_refused(
        "CLI cluster csr on a member",
        &["cluster", "csr"],
        Some(&admin),
        5,
        "already part of a cluster",
    );
    api.report();
}

/// Signs `csr` on `member` with `POST /v1/cluster/nodes`; returns the certificate bundle.
fn api_signed(member: &Node, csr: &str) -> String {
    let api = Api::new(member);
    let v = api.ok(
        api.post_as("/v1/cluster/nodes", Some(&member.token), &json!({"csr": csr})),
        201,
    );
    v["certificate"].as_str().expect("certificate").to_string()
}

#[test]
fn a_member_refuses_bad_node_csrs_node_ids_and_settings() {
    let mut node = Node::start_fresh("");
    node.token = form_cluster(&node);
    let member = &node;
    let id = member.id();
    let admin = member.token.clone();

    // --- Setup: everything that legitimately changes the state happens first. ---
    let agent = member.json(&["token", "create", "--role", "agent", "--name", "cluster bad input"])["token"]
        .as_str()
        .expect("agent token")
        .to_string();
    let requester = member.json(&["token", "create", "--role", "requester", "--name", "cluster bad input"])["token"]
        .as_str()
        .expect("requester token")
        .to_string();
    // A node that was admitted (its CSR signed) but never joined.
    let admitted_csr = hapki_csr(
        member,
        "admitted",
        &["--cn", "admitted", "--san", "URI:urn:hapki:node:00000000000000ab"],
    );
    api_signed(member, &admitted_csr);
    // Deleting it withdraws the admission, so its certificate can no longer join.
    let setup = Api::new(member);
    let withdrawn = setup.ok(
        setup.req(Method::DELETE, "/v1/cluster/nodes/00000000000000ab", Some(&admin)),
        200,
    );
    assert_eq!(withdrawn["removed"], "00000000000000ab", "{withdrawn}");

    let node_san = |hex: &str| format!("URI:urn:hapki:node:{hex}");
    let plain_csr = hapki_csr(member, "plain", &["--cn", "plain.example.com"]);
    let self_csr = hapki_csr(member, "self", &["--cn", "impostor", "--san", &node_san(&id)]);
    let not_hex_csr = hapki_csr(member, "nothex", &["--cn", "n", "--san", &node_san("not-hex")]);
    let two_ids_csr = hapki_csr(
        member,
        "twoids",
        &[
            "--cn",
            "two",
            "--san",
            &node_san("00000000000000c1"),
            "--san",
            &node_san("00000000000000c2"),
        ],
    );
    let email_csr = hapki_csr(
        member,
        "email",
        &[
            "--cn",
            "mail",
            "--san",
            &node_san("00000000000000c3"),
            "--san",
            "email:ops@example.com",
        ],
    );
    let tamper_csr = hapki_csr(
        member,
        "tamper",
        &["--cn", "tamper.example.com", "--san", &node_san("00000000000000c4")],
    );
    let mut der = pem_der(&tamper_csr);
    let at = der
        .windows(b"tamper.example.com".len())
        .position(|w| w == b"tamper.example.com")
        .expect("CN in the CSR");
    der[at] = b'd'; // "damper.example.com": the subject no longer matches the signature
    let tampered_csr = der_pem("CERTIFICATE REQUEST", &der);
    let some_cert = read(&member.api_ca());

    let before = member.quiet_digest();
    let api = Api::new(member);
    let nodes = |token: Option<&str>, csr: &str| api.post_as("/v1/cluster/nodes", token, &json!({"csr": csr}));

    // --- POST /v1/cluster/nodes: who may sign, and what. ---
    api.refused(
        "sign a node CSR without a token",
        nodes(None, &plain_csr),
        401,
        "unauthorized",
        "missing bearer token",
    );
    api.refused(
        "sign a node CSR with a token of no cluster",
        nodes(Some("hapki_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), &plain_csr),
        401,
        "unauthorized",
        "not valid on this cluster",
    );
    api.refused(
        "sign a node CSR with a bootstrap-style token",
        nodes(Some(WRONG_BOOTSTRAP), &plain_csr),
        401,
        "unauthorized",
        "not a hapki token",
    );
    api.refused(
        "sign a node CSR with an agent token",
        nodes(Some(&agent), &plain_csr),
        403,
        "forbidden",
        "may not manage the cluster",
    );
    api.refused(
        "sign a node CSR with a requester token",
        nodes(Some(&requester), &plain_csr),
        403,
        "forbidden",
        "a requester token may not manage the cluster",
    );
    let a = Some(admin.as_str());
    api.refused(
        "node CSR that is not PEM",
        nodes(a, "hello, I am a CSR"),
        400,
        "invalid_input",
        "no PEM block found",
    );
    api.refused(
        "node CSR of garbage DER",
        nodes(a, &der_pem("CERTIFICATE REQUEST", b"\x30\x03\x02\x01\x05garbage")),
        400,
        "invalid_input",
        "not a valid PKCS#10 request",
    );
    api.refused(
        "a certificate instead of a node CSR",
        nodes(a, &some_cert),
        400,
        "invalid_input",
        "CERTIFICATE REQUEST",
    );
    api.refused(
        "node CSR with a byte of the subject flipped",
        nodes(a, &tampered_csr),
        400,
        "invalid_input",
        "signature does not verify",
    );
    api.refused(
        "a CSR that names no node id",
        nodes(a, &plain_csr),
        400,
        "invalid_request",
        "not a node CSR",
    );
    api.refused(
        "a node URI that is not hex",
        nodes(a, &not_hex_csr),
        400,
        "invalid_request",
        "'urn:hapki:node:not-hex' does not name a node id",
    );
    api.refused(
        "a CSR naming two node ids",
        nodes(a, &two_ids_csr),
        400,
        "invalid_request",
        "more than one node id",
    );
    api.refused(
        "a node CSR with an email address",
        nodes(a, &email_csr),
        400,
        "invalid_request",
        "may name only its node id, DNS names and IPs",
    );
    api.refused(
        "a node CSR naming this member's own id",
        nodes(a, &self_csr),
        409,
        "conflict",
        &format!("node {id} is already a member"),
    );
    api.refused(
        "sign with an unknown field",
        api.post_as("/v1/cluster/nodes", a, &json!({"csr": plain_csr, "name": "x"})),
        400,
        "invalid_request",
        "unknown field `name`",
    );
    api.refused(
        "sign without a CSR",
        api.post_as("/v1/cluster/nodes", a, &json!({})),
        400,
        "invalid_request",
        "missing field `csr`",
    );
    api.refused(
        "sign with invalid JSON",
        api.post_raw("/v1/cluster/nodes", a, "{\"csr\": "),
        400,
        "invalid_request",
        "not valid JSON",
    );
    api.refused(
        "sign without Content-Type",
        api.req(Method::POST, "/v1/cluster/nodes", a)
            .body(json!({"csr": plain_csr}).to_string()),
        415,
        "unsupported_media_type",
        "Content-Type: application/json",
    );
    api.refused(
        "sign with a 1.5 MiB body (the limit is max_body_bytes, 1 MiB by default)",
        api.post_alone("/v1/cluster/nodes", a, &json!({"csr": "A".repeat(1536 * 1024)})),
        413,
        "too_large",
        "too large",
    );

    // --- /v1/cluster/nodes/{id}: ids that are not node ids, or name no member. ---
    for bad in ["not-hex", "zz", "1234567890abcdef0"] {
        api.refused(
            &format!("GET node '{bad}'"),
            api.req(Method::GET, &format!("/v1/cluster/nodes/{bad}"), a),
            400,
            "invalid_request",
            &format!("'{bad}' is not a node id"),
        );
        api.refused(
            &format!("DELETE node '{bad}'"),
            api.req(Method::DELETE, &format!("/v1/cluster/nodes/{bad}"), a),
            400,
            "invalid_request",
            &format!("'{bad}' is not a node id"),
        );
    }
    api.refused(
        "GET an unknown node",
        api.req(Method::GET, &format!("/v1/cluster/nodes/{UNKNOWN_ID}"), a),
        404,
        "not_found",
        &format!("node {UNKNOWN_ID} is not a member"),
    );
    api.refused(
        "DELETE an unknown node",
        api.req(Method::DELETE, &format!("/v1/cluster/nodes/{UNKNOWN_ID}"), a),
        409,
        "conflict",
        &format!("node {UNKNOWN_ID} is not a member"),
    );
    api.refused(
        "sign again the CSR of a node whose admission was withdrawn",
        api.post_as("/v1/cluster/nodes", a, &json!({ "csr": admitted_csr })),
        409,
        "conflict",
        "was removed",
    );
    api.refused(
        "DELETE this node itself",
        api.req(Method::DELETE, &format!("/v1/cluster/nodes/{id}"), a),
        409,
        "conflict",
        "cannot remove itself",
    );
    api.refused(
        "DELETE a node with an agent token",
        api.req(Method::DELETE, &format!("/v1/cluster/nodes/{UNKNOWN_ID}"), Some(&agent)),
        403,
        "forbidden",
        "may not manage the cluster",
    );
    api.refused(
        "DELETE a node without a token",
        api.req(Method::DELETE, &format!("/v1/cluster/nodes/{id}"), None),
        401,
        "unauthorized",
        "missing bearer token",
    );
    api.refused(
        "GET a node without a token",
        api.req(Method::GET, &format!("/v1/cluster/nodes/{id}"), None),
        401,
        "unauthorized",
        "missing bearer token",
    );
    api.refused(
        "PUT on the node list",
        api.req(Method::PUT, "/v1/cluster/nodes", a),
        405,
        "method_not_allowed",
        "does not take PUT",
    );
    api.refused(
        "unknown cluster route on a member",
        api.req(Method::GET, "/v1/cluster/no-such-route", a),
        404,
        "not_found",
        "no such endpoint",
    );

    // --- PUT /v1/cluster/settings. ---
    let settings = |token: Option<&str>, body: Value| api.req(Method::PUT, "/v1/cluster/settings", token).json(&body);
    for target in [4, 0, 1] {
        api.refused(
            &format!("voters_target {target}"),
            settings(a, json!({"voters_target": target})),
            400,
            "invalid_request",
            &format!("voters_target must be 3 or 5 (got {target})"),
        );
    }
    api.refused(
        "voters_target beyond a byte",
        settings(a, json!({"voters_target": 256})),
        400,
        "invalid_request",
        "256",
    );
    api.refused(
        "voters_target as a string",
        settings(a, json!({"voters_target": "5"})),
        400,
        "invalid_request",
        "invalid type: string",
    );
    api.refused(
        "settings with an unknown field",
        settings(a, json!({"voters_target": 5, "crl_validity_secs": 60})),
        400,
        "invalid_request",
        "unknown field `crl_validity_secs`",
    );
    api.refused(
        "settings without voters_target",
        settings(a, json!({})),
        400,
        "invalid_request",
        "nothing to change",
    );
    api.refused(
        "settings with an agent token",
        settings(Some(&agent), json!({"voters_target": 5})),
        403,
        "forbidden",
        "may not manage the cluster",
    );
    api.refused(
        "settings with a requester token",
        settings(Some(&requester), json!({"voters_target": 5})),
        403,
        "forbidden",
        "a requester token may not manage the cluster",
    );
    api.refused(
        "settings without a token",
        settings(None, json!({"voters_target": 5})),
        401,
        "unauthorized",
        "missing bearer token",
    );
    api.refused(
        "POST on settings",
        api.post_as("/v1/cluster/settings", a, &json!({"voters_target": 5})),
        405,
        "method_not_allowed",
        "does not take POST",
    );

    // --- POST /v1/cluster/delete: bad bodies and callers; the only member stays. ---
    api.refused(
        "reset with a body that is not JSON",
        api.post_raw("/v1/cluster/delete", a, "force"),
        400,
        "invalid_request",
        "not valid JSON",
    );
    api.refused(
        "reset with force as a string",
        api.post_as("/v1/cluster/delete", a, &json!({"force": "yes"})),
        400,
        "invalid_request",
        "invalid type: string",
    );
    api.refused(
        "reset with a misspelt field",
        api.post_as("/v1/cluster/delete", a, &json!({"forse": true})),
        400,
        "invalid_request",
        "unknown field `forse`",
    );
    api.refused(
        "reset with an agent token",
        api.post_as("/v1/cluster/delete", Some(&agent), &json!({"force": true})),
        403,
        "forbidden",
        "may not manage the cluster",
    );
    api.refused(
        "reset without a token",
        api.post_as("/v1/cluster/delete", None, &json!({"force": true})),
        401,
        "unauthorized",
        "missing bearer token",
    );
    api.refused(
        "reset the only member",
        api.post_as("/v1/cluster/delete", a, &json!({})),
        409,
        "conflict",
        "only member",
    );

    // --- The same refusals through the CLI, with exit codes scripts can trust. ---
    let adm = Some(admin.as_str());
    api.cli_refused(
        "CLI nodes create with a plain CSR",
        &["cluster", "nodes", "create", "--csr", "plain.csr"],
        adm,
        2,
        "not a node CSR",
    );
    api.cli_refused(
        "CLI nodes create with a CSR naming this member",
        &["cluster", "nodes", "create", "--csr", "self.csr"],
        adm,
        5,
        "is already a member",
    );
    api.cli_refused(
        "CLI nodes create with an agent token",
        &["cluster", "nodes", "create", "--csr", "plain.csr"],
        Some(&agent),
        4,
        "may not manage the cluster",
    );
    api.cli_refused(
        "CLI nodes create with a missing file",
        &["cluster", "nodes", "create", "--csr", "missing.csr"],
        adm,
        2,
        "cannot read",
    );
    api.cli_refused(
        "CLI nodes get with an id that is not hex",
        &["cluster", "nodes", "get", "--id", "not a node id"],
        adm,
        2,
        "'not a node id' is not a node id",
    );
    api.cli_refused(
        "CLI nodes get of an unknown node",
        &["cluster", "nodes", "get", "--id", UNKNOWN_ID],
        adm,
        3,
        "is not a member",
    );
    api.cli_refused(
        "CLI nodes delete with an id that is not hex",
        &["cluster", "nodes", "delete", "--id", "zz"],
        adm,
        2,
        "'zz' is not a node id",
    );
    api.cli_refused(
        "CLI nodes delete of an unknown node",
        &["cluster", "nodes", "delete", "--id", UNKNOWN_ID],
        adm,
        5,
        "is not a member",
    );
    api.cli_refused(
        "CLI settings --voters-target 4",
        &["cluster", "settings", "--voters-target", "4"],
        adm,
        2,
        "voters_target must be 3 or 5 (got 4)",
    );
    api.cli_refused(
        "CLI settings --voters-target 300",
        &["cluster", "settings", "--voters-target", "300"],
        adm,
        2,
        "300",
    );
    api.cli_refused(
        "CLI settings with a requester token",
        &["cluster", "settings", "--voters-target", "5"],
        Some(&requester),
        4,
        "may not manage the cluster",
    );
    api.cli_refused(
        "CLI cluster new on a member",
        &["cluster", "new"],
        adm,
        5,
        "already part of a cluster",
    );
    api.cli_refused(
        "CLI cluster delete of the only member",
        &["cluster", "delete", "--yes"],
        adm,
        5,
        "only member",
    );

    // --- Nothing was stored, and the node still works. ---
    assert_eq!(
        member.digest(),
        before,
        "refused requests changed the stored data:\n{}",
        api.cases.borrow().join("\n")
    );
    let count = api.report();
    assert!(count >= 60, "{count} cases");
    let listed = member.json(&["cluster", "nodes", "list"]);
    assert_eq!(listed["nodes"].as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(member.json(&["cluster", "status"])["status"], "ready");
    // An accepted change does move the digest: the unchanged digest above means something.
    let v = member.json(&["cluster", "settings", "--voters-target", "5"]);
    assert_eq!(v["voters_target"], 5, "{v}");
    assert_ne!(member.digest(), before, "an accepted settings change is stored");
    let v = api.ok(api.req(Method::GET, "/v1/cluster/settings", Some(&member.token)), 200);
    assert_eq!(v["voters_target"], 5, "{v}");
    // A requester issues and reads its own certificates, not the cluster's state.
    api.refused(
        "a requester reads the cluster settings",
        api.req(Method::GET, "/v1/cluster/settings", Some(&requester)),
        403,
        "forbidden",
        "a requester token may not read the status",
    );
}

// --- Oversized bodies, the order of checks, and ids on the command line.

#[test]
fn a_large_body_to_the_cluster_routes_is_answered_413() {
    let node = Node::start();
    let api = Api::new(&node);
    let before = node.digest();
    let huge = "A".repeat(10 * 1024 * 1024);
    // The other routes read and drop the rest of an oversized body before answering.
    api.refused(
        "10 MB body to /v1/certs",
        api.post_as(
            "/v1/certs",
            Some(&node.token),
            &json!({"csr": huge, "profile": "server"}),
        ),
        413,
        "too_large",
        "too large",
    );
    for attempt in 1..=3 {
        api.refused(
            &format!("10 MB body to /v1/cluster/nodes, attempt {attempt}"),
            api.post_as("/v1/cluster/nodes", Some(&node.token), &json!({"csr": huge})),
            413,
            "too_large",
            "too large",
        );
    }
    assert_eq!(node.digest(), before);
}

#[test]
fn an_oversized_reset_body_gets_the_json_error() {
    let node = Node::start();
    let api = Api::new(&node);
    api.refused(
        "1.5 MiB body to /v1/cluster/delete",
        api.post_raw("/v1/cluster/delete", Some(&node.token), "A".repeat(1536 * 1024)),
        413,
        "too_large",
        "too large",
    );
    assert_eq!(node.json(&["cluster", "status"])["status"], "ready");
}

#[test]
fn the_cluster_routes_check_the_token_before_the_body() {
    let node = Node::start();
    let api = Api::new(&node);
    // The other routes check the token first.
    api.refused(
        "malformed body to /v1/certs without a token",
        api.post_raw("/v1/certs", None, "{\"csr\": "),
        401,
        "unauthorized",
        "missing bearer token",
    );
    api.refused(
        "malformed body to /v1/cluster/nodes without a token",
        api.post_raw("/v1/cluster/nodes", None, "{\"csr\": "),
        401,
        "unauthorized",
        "missing bearer token",
    );
    api.refused(
        "unknown settings field without a token",
        api.req(Method::PUT, "/v1/cluster/settings", None)
            .json(&json!({"voters_target": 5, "crl_validity_secs": 60})),
        401,
        "unauthorized",
        "missing bearer token",
    );
    // A body declared larger than the limit is refused before anything else, from anyone,
    // as on every other route.
    api.refused(
        "1.5 MiB body to /v1/cluster/nodes without a token",
        api.post_alone("/v1/cluster/nodes", None, &json!({"csr": "A".repeat(1536 * 1024)})),
        413,
        "too_large",
        "too large",
    );
}

#[test]
fn a_node_id_on_the_command_line_stays_a_node_id() {
    let node = Node::start();
    let victim = node.json(&["token", "create", "--role", "agent", "--name", "not a node"]);
    let id = victim["id"].as_str().expect("token id");
    let out = node.cli(&["cluster", "nodes", "delete", "--id", &format!("../../tokens/{id}")]);
    assert_ne!(out.status.code(), Some(0), "a path is not a node id: {}", stderr(&out));
    let tokens = node.json(&["token", "list"]);
    let listed = tokens["tokens"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["id"] == id))
        .cloned()
        .unwrap_or_else(|| panic!("token {id} listed: {tokens}"));
    assert_eq!(
        listed["revoked"], false,
        "`cluster nodes delete` revoked a token: {listed}"
    );
}
