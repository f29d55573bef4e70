//! Holes a security review found, each closed and kept closed here against
//! real nodes:
//! - a token that may issue must not obtain a CA or OCSP-responder certificate
//!   (a requester that did could sign any leaf, or answer "good" for a revoked
//!   certificate); a token limited to profiles and issuers stays inside them;
//!   a requester reads only what it issued;
//! - a node removed from the cluster keeps its data directory (unseal key, KEK,
//!   the internal CA's sealed key): whatever certificate it makes from that, the
//!   members refuse it on the cluster channel, under its own id or another's.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::refusals::Api;
use common::{openssl, stderr, Cluster, Node};
use reqwest::Method;
use serde_json::json;

fn csr_pem(node: &Node, name: &str, words: &[&str]) -> String {
    let mut args = vec!["csr", name];
    args.extend_from_slice(words);
    node.ok(&args);
    std::fs::read_to_string(node.work().join(format!("{name}.csr"))).expect("csr")
}

fn token(node: &Node, args: &[&str]) -> (String, String) {
    let mut all = vec!["token", "create"];
    all.extend_from_slice(args);
    let v = node.json(&all);
    (
        v["token"].as_str().expect("token").to_string(),
        v["id"].as_str().expect("id").to_string(),
    )
}

#[test]
fn only_an_admin_obtains_ca_or_responder_certificates() {
    let node = Node::start();
    let api = Api::new(&node);
    let (requester, _) = token(&node, &["--role", "requester", "--name", "web"]);
    let (agent, _) = token(&node, &["--role", "agent"]);
    let csr = csr_pem(&node, "ca", &["CN:Rogue Issuing CA"]);
    // A custom profile that makes a CA is an authority profile too, whatever its name.
    let mut custom = node.json(&["profile", "show", "sub-ca"]);
    custom["name"] = json!("team-ca");
    std::fs::write(node.work().join("team-ca.json"), custom.to_string()).expect("write profile");
    node.ok(&["profile", "create", "--file", "team-ca.json"]);
    let before = node.digest();

    for token in [&requester, &agent] {
        for profile in ["sub-ca", "ocsp-signing", "team-ca"] {
            let case = format!("{profile} by a non-admin");
            let body = json!({"csr": csr, "profile": profile});
            api.refused(
                &case,
                api.post_as("/v1/certs", Some(token), &body),
                403,
                "forbidden",
                "only an admin token may issue with it",
            );
            let body = json!({"common_name": "Rogue CA", "profile": profile});
            api.refused(
                &format!("{case} (generate)"),
                api.post_as("/v1/certs/generate", Some(token), &body),
                403,
                "forbidden",
                "only an admin token may issue with it",
            );
        }
    }
    assert_eq!(node.digest(), before, "refused requests must change nothing");

    // An admin still issues them, and a sub-CA certificate is a CA.
    let v = api.ok(api.post("/v1/certs", &json!({"csr": csr, "profile": "sub-ca"})), 201);
    std::fs::write(node.work().join("sub.pem"), v["certificate"].as_str().expect("pem")).expect("write");
    let (ok, text) = openssl(node.work(), &["x509", "-in", "sub.pem", "-noout", "-text"]);
    assert!(ok && text.contains("CA:TRUE"), "{text}");
    assert!(api.report() >= 12);
}

#[test]
fn a_token_stays_within_its_profiles_issuers_and_certificates() {
    let node = Node::start();
    let api = Api::new(&node);
    let issuers = node.json(&["ca", "list"]);
    let default_issuer = issuers["issuers"][0]["id"].as_str().expect("issuer id").to_string();
    let other = node.json(&["ca", "init", "--cn", "Second Root"]);
    let other_issuer = other["id"].as_str().expect("issuer id").to_string();

    let (web, web_id) = token(
        &node,
        &[
            "--role",
            "requester",
            "--profiles",
            "server",
            "--issuers",
            &default_issuer,
        ],
    );
    let listed = node.json(&["token", "list"]);
    let row = listed["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["id"] == json!(web_id))
        .expect("the new token is listed");
    assert_eq!(row["profiles"], json!(["server"]));
    assert_eq!(row["issuers"], json!([default_issuer]));

    let server_csr = csr_pem(&node, "web", &["CN:web.example.com"]);
    let client_csr = csr_pem(&node, "cl", &["CN:alice"]);
    api.refused(
        "a profile outside the token's list",
        api.post_as(
            "/v1/certs",
            Some(&web),
            &json!({"csr": client_csr, "profile": "client"}),
        ),
        403,
        "forbidden",
        "may issue only with the profiles server",
    );
    api.refused(
        "an issuer outside the token's list",
        api.post_as(
            "/v1/certs",
            Some(&web),
            &json!({"csr": server_csr, "profile": "server", "issuer": other_issuer}),
        ),
        403,
        "forbidden",
        "may issue only from the issuers",
    );
    let mine = api.ok(
        api.post_as(
            "/v1/certs",
            Some(&web),
            &json!({"csr": server_csr, "profile": "server"}),
        ),
        201,
    );
    let mine = mine["serial"].as_str().expect("serial").to_string();

    // A requester reads back what it issued, and nothing else.
    api.ok(api.req(Method::GET, &format!("/v1/certs/{mine}"), Some(&web)), 200);
    let theirs = node.json(&[
        "cert",
        "generate",
        "--cn",
        "db.example.com",
        "--profile",
        "server",
        "--out",
        "db",
    ]);
    let theirs = theirs["serial"].as_str().expect("serial");
    api.refused(
        "another token's certificate",
        api.req(Method::GET, &format!("/v1/certs/{theirs}"), Some(&web)),
        403,
        "forbidden",
        "reads only the certificates it asked for",
    );
    for path in [
        "/v1/certs",
        "/v1/ca",
        "/v1/profiles",
        "/v1/sys/status",
        "/v1/cluster/info",
    ] {
        api.refused(
            &format!("a requester reads {path}"),
            api.req(Method::GET, path, Some(&web)),
            403,
            "forbidden",
            "a requester token may not",
        );
    }
    api.refused(
        "a requester revokes",
        api.post_as(&format!("/v1/certs/{mine}/revoke"), Some(&web), &json!({})),
        403,
        "forbidden",
        "may not revoke",
    );

    // An agent limited to the client profile revokes only client certificates.
    let (agent, _) = token(&node, &["--role", "agent", "--profiles", "client"]);
    api.refused(
        "an agent revokes outside its profiles",
        api.post_as(&format!("/v1/certs/{mine}/revoke"), Some(&agent), &json!({})),
        403,
        "forbidden",
        "may revoke only certificates of its profiles",
    );

    // Limits must name what exists; a lifetime that overflows is refused, not wrapped.
    api.refused(
        "an unknown profile in a token's limits",
        api.post("/v1/tokens", &json!({"role": "requester", "profiles": ["nope"]})),
        400,
        "invalid_request",
        "no profile named 'nope'",
    );
    api.refused(
        "a ttl that overflows",
        api.post("/v1/tokens", &json!({"role": "agent", "ttl": "18446744073709551615"})),
        400,
        "invalid_request",
        "ttl is too long",
    );
    api.cli_refused(
        "a ttl near u64::MAX from the CLI",
        &["token", "create", "--role", "agent", "--ttl", "18446744073709551000s"],
        Some(&node.token),
        2,
        "ttl is too long",
    );

    // A token from a file works like one on the command line, and keeps it off `ps`.
    std::fs::write(node.work().join("web.token"), format!("{web}\n")).expect("write token file");
    let out = node.cli_with_token(&["--token-file", "web.token", "cert", "get", &mine], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(api.report() >= 12);
}

/// PEM of DER bytes.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// A mutual-TLS client on the cluster channel presenting `cert.pem`/`key.pem` in `dir`.
fn channel_client(dir: &std::path::Path, cert: &str, key: &str, ca_pem: &str) -> reqwest::blocking::Client {
    let certs: Vec<rustls_pki_types::CertificateDer<'static>> =
        common::refusals::pem_blocks(&std::fs::read_to_string(dir.join(cert)).expect("cert"))
            .into_iter()
            .map(|b| {
                use base64::Engine;
                rustls_pki_types::CertificateDer::from(
                    base64::engine::general_purpose::STANDARD.decode(b).expect("base64"),
                )
            })
            .collect();
    let key_der = common::refusals::pem_der(&std::fs::read_to_string(dir.join(key)).expect("key"));
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(key_der.into());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(common::refusals::pem_der(
            ca_pem,
        )))
        .expect("root");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .expect("client cert");
    reqwest::blocking::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Makes `<name>.key` and its CSR in `work` with `subject`, and signs it into `<name>.pem` with
/// the CA `(certificate, key)` files and the extensions `ext`, as a holder of that CA key would.
fn openssl_sign(work: &std::path::Path, name: &str, subject: &str, ext: &str, ca: (&str, &str)) {
    let [key, csr, ext_file, cert] = ["key", "csr", "ext", "pem"].map(|e| format!("{name}.{e}"));
    std::fs::write(work.join(&ext_file), ext).expect("ext");
    let newkey = ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
    let mut req = vec!["req", "-new", "-newkey"];
    req.extend_from_slice(&newkey);
    req.extend_from_slice(&["-nodes", "-keyout", &key, "-subj", subject, "-out", &csr]);
    let (ok, out) = openssl(work, &req);
    assert!(ok, "{out}");
    let (ok, out) = openssl(
        work,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            ca.0,
            "-CAkey",
            ca.1,
            "-set_serial",
            "7",
            "-days",
            "30",
            "-extfile",
            &ext_file,
            "-out",
            &cert,
        ],
    );
    assert!(ok, "{out}");
}

/// A channel client presenting the identity a node keeps in its data directory `dir` (written
/// to `<name>.key` and `<name>.pem` in `work`), trusting the internal CA at the end of its chain.
fn kept_identity_client(
    dir: &hapki_server::datadir::DataDir,
    work: &std::path::Path,
    name: &str,
) -> reqwest::blocking::Client {
    let kept = hapki_server::lifecycle::channel_key::ChannelKey::load(
        dir,
        &*hapki_server::trust::root::recorded(dir).expect("root of trust"),
    )
    .expect("load")
    .expect("the node keeps its channel key");
    let (key, cert) = (format!("{name}.key"), format!("{name}.pem"));
    std::fs::write(
        work.join(&key),
        pem("PRIVATE KEY", &kept.key.to_pkcs8().expect("pkcs8")),
    )
    .expect("write");
    let chain: String = kept.chain.iter().map(|c| pem("CERTIFICATE", c)).collect();
    std::fs::write(work.join(&cert), chain).expect("write");
    let ca_pem = pem("CERTIFICATE", kept.chain.last().expect("internal CA"));
    channel_client(work, &cert, &key, &ca_pem)
}

/// What a member answers a vote request presented with this client: the status, or 0 when the
/// handshake itself failed.
fn vote_status(client: &reqwest::blocking::Client, channel: &str) -> u16 {
    match client
        .post(format!("https://{channel}/raft/vote"))
        .body(vec![0u8])
        .send()
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

#[test]
fn a_removed_node_cannot_use_its_data_directory_on_the_channel() {
    let mut cluster = Cluster::start(3, "");
    cluster.converged(Duration::from_secs(60));
    let removed_id = cluster.nodes[2].id();
    cluster.nodes[0].ok(&["cluster", "nodes", "delete", "--id", &removed_id]);
    cluster.nodes[2].kill9();
    let leader_id = cluster.nodes[0].id(); // any member's id will do
    let channel = cluster.nodes[0].channel_addr();
    let before = cluster.nodes[0].digest();

    // Everything the removed node kept: its root of trust opens the KEK, the KEK the internal CA.
    let removed = &cluster.nodes[2];
    let dir = hapki_server::datadir::DataDir::new(removed.data());
    let keyring =
        hapki_server::trust::Keyring::load(&dir, hapki_server::trust::root::recorded(&dir).expect("root of trust"))
            .expect("the removed node's KEK");
    let store = hapki_store::Store::open(&dir.db()).expect("the removed node's store");
    let internal = store
        .reader()
        .expect("reader")
        .internal_ca()
        .expect("read")
        .expect("internal CA");
    let ca_key = keyring
        .open("internal-ca-key", &internal.wrapped_key)
        .expect("the internal CA key opens with the removed node's KEK");
    let work = removed.work();
    std::fs::write(work.join("internal.key"), pem("PRIVATE KEY", &ca_key)).expect("write");
    let ca_pem = pem("CERTIFICATE", &internal.cert_der);
    std::fs::write(work.join("internal.pem"), &ca_pem).expect("write");

    // With that CA key it signs a channel certificate for a fresh key under any id it likes.
    let stranger = "00000000000000aa".to_string();
    for (name, id) in [
        ("as-member", &leader_id),
        ("as-itself", &removed_id),
        ("as-stranger", &stranger),
    ] {
        let ext = format!(
            "subjectAltName=URI:urn:hapki:node:{id},DNS:localhost\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n"
        );
        openssl_sign(work, name, "/O=hapki/CN=rogue", &ext, ("internal.pem", "internal.key"));
        let client = channel_client(work, &format!("{name}.pem"), &format!("{name}.key"), &ca_pem);
        assert_eq!(
            vote_status(&client, &channel),
            403,
            "a certificate from the internal CA with a key the cluster never recorded ({name}) must be refused"
        );
    }

    // Its own channel key and certificate, kept in its data directory: refused, it was removed.
    let client = kept_identity_client(&dir, work, "own");
    assert_eq!(
        vote_status(&client, &channel),
        403,
        "a removed node's own key must be refused"
    );

    let log = cluster.nodes[0].log();
    assert!(
        log.contains("presented a key other than the one recorded") && log.contains("was removed"),
        "the refusals are logged: {log}"
    );
    assert_eq!(cluster.nodes[0].digest(), before, "nothing changed");
    // The cluster still takes writes.
    cluster.nodes[0].ok(&["ca", "init", "--cn", "After Removal CA"]);
}

#[test]
fn a_flood_of_key_generations_leaves_health_and_raft_alone() {
    let cluster = Cluster::start(3, "");
    cluster.converged(Duration::from_secs(60));
    let target = &cluster.nodes[0];
    target.ok(&["ca", "init", "--cn", "Flood Root"]);
    let term = |n: &Node| n.json(&["cluster", "info"])["term"].as_u64().expect("term");
    let term_before = term(&cluster.nodes[1]);
    // Six tokens, eight slow key generations each: what one token may have in progress at once.
    let tokens: Vec<String> = (0..6).map(|_| token(target, &["--role", "agent"]).0).collect();
    let url = format!("{}/v1/certs/generate", target.url());
    let body = json!({"common_name": "flood.example.com", "profile": "server", "key_type": "rsa-4096"});
    let flood: Vec<_> = (0..48)
        .map(|i| {
            let (client, url, body, token) = (target.http_client(), url.clone(), body.clone(), tokens[i % 6].clone());
            std::thread::spawn(move || {
                client
                    .post(&url)
                    .bearer_auth(token)
                    .json(&body)
                    .timeout(Duration::from_secs(120))
                    .send()
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // The plain-HTTP client needs a TLS provider installed to be built at all.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let plain = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let health = format!("{}/v1/sys/health", target.http_url());
    let mut worst = Duration::ZERO;
    for _ in 0..40 {
        let start = std::time::Instant::now();
        let status = plain.get(&health).send().expect("health answers").status().as_u16();
        worst = worst.max(start.elapsed());
        assert_eq!(status, 200, "the node stays healthy under the flood");
        std::thread::sleep(Duration::from_millis(150));
    }
    eprintln!("slowest health answer during 48 RSA-4096 key generations: {worst:?}");
    assert!(
        worst < Duration::from_millis(500),
        "health waited {worst:?} behind key generation"
    );
    assert_eq!(term(&cluster.nodes[1]), term_before, "the flood caused an election");
    // The per-token limit itself is tested next to the pool (pki::work).
    drop(flood);
}

#[test]
fn a_forwarded_write_needs_a_valid_caller() {
    use hapki_cluster::origin::{ForwardedCommand, Origin};
    use hapki_cluster::ProposeError;
    let cluster = Cluster::start(2, "");
    cluster.converged(Duration::from_secs(60));
    let before = cluster.nodes[0].digest();
    // A member's own channel identity, as a compromised but not removed member would have it.
    let member = &cluster.nodes[1];
    let dir = hapki_server::datadir::DataDir::new(member.data());
    let client = kept_identity_client(&dir, member.work(), "member");

    // The review's attack: an admin token slipped in as a forwarded write.
    let forged_admin = hapki_store::Command::CreateToken {
        token: hapki_store::TokenRecord {
            id: "0123456789abcdef".into(),
            hash: [7; 32],
            role: hapki_store::Role::Admin,
            name: "forged".into(),
            created_at: 0,
            expires_at: None,
            revoked: false,
            profiles: Vec::new(),
            issuers: Vec::new(),
        },
    };
    let cases = [
        (Origin::Node, "may not propose create_token on its own"),
        (
            Origin::Client {
                token: "hapki_not-a-real-token".into(),
            },
            "not valid on this cluster",
        ),
    ];
    for (origin, why) in cases {
        let body = hapki_store::codec::encode(&ForwardedCommand {
            origin,
            command: forged_admin.clone(),
        });
        let resp = client
            .post(format!("https://{}/cluster/propose", cluster.nodes[0].channel_addr()))
            .body(body)
            .send()
            .expect("the member is let in");
        assert_eq!(resp.status().as_u16(), 200);
        let bytes = resp.bytes().expect("body");
        // Only a refusal decodes so: an applied write's answer is more than `Ok(())`.
        let answer: Result<(), ProposeError> = hapki_store::codec::decode(&bytes).expect("a refusal");
        match answer.expect_err("the forwarded write must be refused") {
            ProposeError::Forbidden(m) => assert!(m.contains(why), "{m}"),
            other => panic!("expected a refusal naming the caller, got {other:?}"),
        }
    }
    assert_eq!(cluster.nodes[0].digest(), before, "no token was added");
    let tokens = cluster.nodes[0].json(&["token", "list"]);
    assert!(!tokens.to_string().contains("forged"), "{tokens}");
}

#[test]
fn a_sub_ca_with_permitted_names_cannot_vouch_for_others() {
    let node = Node::start();
    let mut profile = node.json(&["profile", "show", "sub-ca"]);
    profile["name"] = json!("example-ca");
    profile["permitted_dns"] = json!(["example.com"]);
    profile["permitted_ip"] = json!(["10.0.0.0/8"]);
    std::fs::write(node.work().join("example-ca.json"), profile.to_string()).expect("write profile");
    node.ok(&["profile", "create", "--file", "example-ca.json"]);
    node.ok(&[
        "cert",
        "generate",
        "--cn",
        "Example Issuing CA",
        "--profile",
        "example-ca",
        "--out",
        "sub",
    ]);
    let work = node.work();
    let (ok, text) = openssl(work, &["x509", "-in", "sub.pem", "-noout", "-text"]);
    assert!(ok && text.contains("X509v3 Name Constraints: critical"), "{text}");
    // Leaves the sub-CA signs itself, as a rogue holder of its key would: openssl (a relying party)
    // accepts those inside the permitted names and refuses the others.
    let root = node.ca_pem().display().to_string();
    for (name, san, accepted) in [
        ("inside", "DNS:www.example.com", true),
        ("outside", "DNS:www.evil.org", false),
        ("other-ip", "IP:8.8.8.8", false),
    ] {
        let ext = format!("subjectAltName={san}\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n");
        openssl_sign(work, name, "/CN=leaf", &ext, ("sub.pem", "sub.key"));
        let (verified, out) = openssl(
            work,
            &[
                "verify",
                "-purpose",
                "sslserver",
                "-CAfile",
                &root,
                "-untrusted",
                "sub.pem",
                &format!("{name}.pem"),
            ],
        );
        assert_eq!(verified, accepted, "{name} ({san}): {out}");
        if !accepted {
            assert!(out.contains("permitted subtree violation"), "{out}");
        }
    }
}

#[test]
fn rotating_the_kek_reseals_every_key_and_every_node_follows() {
    let mut cluster = Cluster::start(3, "");
    cluster.nodes[0].ok(&["ca", "init", "--cn", "Rotation Root"]);
    cluster.converged(Duration::from_secs(60));
    // What a node removed now would keep: its unseal key and KEK file.
    let kept = tempfile::tempdir().expect("temp dir");
    for f in ["unseal.key", "kek.sealed"] {
        std::fs::copy(cluster.nodes[2].data().join(f), kept.path().join(f)).expect("copy");
    }

    // Every member must take the new KEK first: with one down, nothing changes.
    cluster.nodes[2].kill9();
    let before = cluster.nodes[0].digest();
    let out = cluster.nodes[0].cli(&["cluster", "rotate-kek"]);
    assert!(!out.status.success(), "a rotation with a member down must fail");
    assert!(
        stderr(&out).contains("did not take the new KEK") && stderr(&out).contains("retry once every member is up"),
        "{}",
        stderr(&out)
    );
    assert_eq!(cluster.nodes[0].digest(), before);
    cluster.nodes[2].restart();
    cluster.converged(Duration::from_secs(60));

    let v = cluster.nodes[1].json(&["cluster", "rotate-kek"]);
    assert_eq!(
        (v["from"].as_u64(), v["to"].as_u64(), v["nodes"].as_u64()),
        (Some(0), Some(1), Some(3)),
        "{v}"
    );
    // The issuer's key, its OCSP signer's key and the internal CA's key.
    assert!(v["keys"].as_u64() >= Some(3), "{v}");
    cluster.converged(Duration::from_secs(60));
    for (i, node) in cluster.nodes.iter().enumerate() {
        node.ok(&[
            "cert",
            "generate",
            "--cn",
            &format!("n{i}.example.com"),
            "--profile",
            "server",
            "--out",
            "after",
        ]);
    }
    cluster.nodes[1].restart();
    cluster.nodes[1].ok(&[
        "cert",
        "generate",
        "--cn",
        "restarted.example.com",
        "--profile",
        "server",
        "--out",
        "again",
    ]);

    // On disk: every key in the state is sealed under KEK 1, which the old KEK cannot open.
    cluster.nodes[2].kill9();
    let dir = hapki_server::datadir::DataDir::new(cluster.nodes[2].data());
    let store = hapki_store::Store::open(&dir.db()).expect("store");
    let reader = store.reader().expect("reader");
    assert_eq!(reader.kek_id().expect("kek id"), 1);
    let issuers = reader.issuers().expect("issuers");
    let kept_dir = hapki_server::datadir::DataDir::new(kept.path().to_path_buf());
    let old = hapki_server::trust::Keyring::load(
        &kept_dir,
        hapki_server::trust::root::recorded(&kept_dir).expect("root of trust"),
    )
    .expect("the kept KEK");
    let new =
        hapki_server::trust::Keyring::load(&dir, hapki_server::trust::root::recorded(&dir).expect("root of trust"))
            .expect("the node's KEK");
    assert!(!new.holds(0), "the node forgot the old KEK");
    for i in &issuers {
        let context = format!("issuer-key:{}", i.id);
        assert_eq!(i.wrapped_key.kek, 1);
        assert!(old.open(&context, &i.wrapped_key).is_err(), "the old KEK opens nothing");
        new.open(&context, &i.wrapped_key)
            .expect("the new KEK opens the issuer key");
        if let Some(o) = &i.ocsp {
            assert_eq!(o.wrapped_key.kek, 1);
        }
    }
    let internal = reader.internal_ca().expect("read").expect("internal CA");
    assert!(old.open("internal-ca-key", &internal.wrapped_key).is_err());
    new.open("internal-ca-key", &internal.wrapped_key)
        .expect("the internal CA key");
}
