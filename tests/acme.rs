//! ACME with a real client: certbot, through HAProxy (deploy/haproxy.cfg) in front of a
//! three-node cluster, gets a certificate with http-01 while the node that created its
//! order is killed before the challenge and finalize, renews it through renewal
//! information once an operator asks, and revokes it; OCSP on another node says revoked.
//! A nonce of one node serves on another, and a change replayed or raced on other nodes
//! happens once. Names resolve through dnsmasq on loopback (the nodes' `acme_dns_resolver`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_port, openssl, serial_of, stderr, wait_for, Cluster, Haproxy};
use hapki_domain::jws::test_client::TestKey;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// certbot from the test environment's virtualenv (scripts/test.sh installs it).
fn certbot() -> PathBuf {
    let bin = std::env::var("HAPKI_PKILINT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin"));
    let certbot = bin.join("certbot");
    assert!(
        certbot.exists(),
        "{} is missing: run scripts/test.sh, which installs certbot",
        certbot.display()
    );
    certbot
}

/// dnsmasq answering 127.0.0.1 for every name under example.test, on `port`.
fn dnsmasq(port: u16) -> Killed {
    let bin = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("dnsmasq (scripts/test.sh installs dnsmasq-base)");
    Killed(
        Command::new(bin)
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--address=/example.test/127.0.0.1",
                "--user=root",
            ])
            .arg(format!("--port={port}"))
            .arg("--pid-file=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq"),
    )
}

/// A web server for http-01 files under `root`, on `port`, once it listens.
fn webroot_server(root: &Path, port: u16) -> Killed {
    let server = Killed(
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server"),
    );
    wait_for("the http-01 web server", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    server
}

#[test]
fn certbot_gets_renews_and_revokes_through_haproxy_while_the_node_that_took_the_order_dies() {
    let certbot = certbot();
    let (dns_port, http01) = (free_port(), free_port());
    let _dns = dnsmasq(dns_port);
    let mut cluster = Cluster::start(
        3,
        &format!("acme_http01_port = {http01}\nacme_dns_resolver = \"127.0.0.1:{dns_port}\"\n"),
    );
    let a = &cluster.nodes[0];
    let made = a.json(&["ca", "init", "--cn", "ACME Root"]);
    let issuer = made["id"].as_str().expect("issuer id").to_string();
    let eab = a.json(&["acme", "eab", "create", "--profile", "server"]);
    let (kid, hmac) = (eab["kid"].as_str().unwrap(), eab["hmac_key"].as_str().unwrap());
    let haproxy = Haproxy::start(&cluster);
    let directory = format!("{}/acme/directory", haproxy.api_url());

    let work = a.work().to_path_buf();
    let api_ca = a.api_ca();
    let webroot = work.join("webroot");
    std::fs::create_dir_all(webroot.join(".well-known/acme-challenge")).unwrap();
    let _web = webroot_server(&webroot, http01);
    // The auth hook serves the key authorization, then waits for the test's go-ahead: the
    // order exists, and its challenge and finalize are still to come.
    let hook = work.join("auth-hook.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nprintf %s \"$CERTBOT_VALIDATION\" > {root}/.well-known/acme-challenge/$CERTBOT_TOKEN\n\
             touch {work}/hooked\nwhile [ ! -e {work}/go ]; do sleep 0.1; done\n",
            root = webroot.display(),
            work = work.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let dirs = |cmd: &mut Command| {
        cmd.env("REQUESTS_CA_BUNDLE", &api_ca)
            .arg("--config-dir")
            .arg(work.join("certbot/config"))
            .arg("--work-dir")
            .arg(work.join("certbot/work"))
            .arg("--logs-dir")
            .arg(work.join("certbot/logs"))
            .arg("-n");
    };
    let mut get = Command::new(&certbot);
    get.args([
        "certonly",
        "--manual",
        "--preferred-challenges",
        "http",
        "--manual-auth-hook",
    ])
    .arg(&hook)
    .args(["--server", &directory, "--eab-kid", kid, "--eab-hmac-key", hmac])
    .args(["--agree-tos", "-m", "ops@example.com", "-d", "web.example.test"])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    dirs(&mut get);
    let run = get.spawn().expect("certbot");
    wait_for("certbot's order", Duration::from_secs(60), || {
        work.join("hooked").exists()
    });

    // The node that created the order dies before the challenge and finalize.
    let audit = cluster.nodes[0].json(&["audit", "list"]);
    let orderer = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|r| r["action"] == "acme_new_order")
        .map(|r| r["node"].as_str().unwrap().to_string())
        .expect("an audit record of the order");
    assert!(
        audit["records"].to_string().contains("web.example.test"),
        "the order's record names its name"
    );
    let victim = cluster
        .nodes
        .iter()
        .position(|n| n.id() == orderer)
        .unwrap_or_else(|| panic!("no node {orderer}"));
    cluster.nodes[victim].kill9();
    std::fs::write(work.join("go"), "").unwrap();
    let out = run.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "certbot failed after node {victim} died: {}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    let live = work.join("certbot/config/live/web.example.test");
    let (ok, text) = openssl(
        &work,
        &[
            "verify",
            "-CAfile",
            &cluster.nodes[(victim + 1) % 3].ca_pem().display().to_string(),
            &live.join("fullchain.pem").display().to_string(),
        ],
    );
    assert!(ok, "{text}");
    let first_serial = serial_of(&work, &live.join("cert.pem"));
    cluster.nodes[victim].restart();
    cluster.converged(Duration::from_secs(30));
    let survivor = &cluster.nodes[(victim + 1) % 3];
    let record = survivor.json(&["cert", "get", &first_serial]);
    assert_eq!(record["profile"], "server", "{record}");

    // An operator asks for the issuer's certificates to be renewed: certbot renews through
    // renewal information (with no Retry-After wait left, as after 6 hours).
    survivor.ok(&["acme", "suggest-renewal", "--issuer", &issuer]);
    let conf = work.join("certbot/config/renewal/web.example.test.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !l.starts_with("ari_retry_after"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&conf, kept).unwrap();
    let mut renew = Command::new(&certbot);
    renew.args(["renew", "--no-random-sleep-on-renew"]);
    dirs(&mut renew);
    let out = renew.output().unwrap();
    assert!(
        out.status.success(),
        "certbot renew: {}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    let second_serial = serial_of(&work, &live.join("cert.pem"));
    assert_ne!(first_serial, second_serial, "the certificate was renewed");
    let log = std::fs::read_to_string(work.join("certbot/logs/letsencrypt.log")).unwrap();
    assert!(log.contains("/renewal-info/"), "certbot asked for renewal information");

    // Revoked by certbot: the first certificate with its own key (no account), the second
    // with the account key; OCSP on another node says so for each.
    let other = &cluster.nodes[(victim + 2) % 3];
    let ocsp_says_revoked = |cert: &Path| {
        let mut said = String::new();
        let revoked = (0..50).any(|_| {
            let (_, text) = openssl(
                &work,
                &[
                    "ocsp",
                    "-issuer",
                    &other.ca_pem().display().to_string(),
                    "-cert",
                    &cert.display().to_string(),
                    "-url",
                    &format!("{}/ocsp", other.http_url()),
                    "-CAfile",
                    &other.ca_pem().display().to_string(),
                ],
            );
            said = text;
            std::thread::sleep(Duration::from_millis(200));
            said.contains(": revoked") && said.contains("keyCompromise")
        });
        assert!(revoked, "OCSP on another node for {}: {said}", cert.display());
    };
    let archive = work.join("certbot/config/archive/web.example.test");
    for (cert, key) in [
        (archive.join("cert1.pem"), Some(archive.join("privkey1.pem"))),
        (live.join("cert.pem"), None),
    ] {
        let mut revoke = Command::new(&certbot);
        revoke.args([
            "revoke",
            "--server",
            &directory,
            "--reason",
            "keycompromise",
            "--no-delete-after-revoke",
        ]);
        revoke.arg("--cert-path").arg(&cert);
        if let Some(key) = &key {
            revoke.arg("--key-path").arg(key);
        }
        dirs(&mut revoke);
        let out = revoke.output().unwrap();
        assert!(
            out.status.success(),
            "certbot revoke {}: {}",
            cert.display(),
            stderr(&out)
        );
        ocsp_says_revoked(&cert);
    }
    cluster.converged(Duration::from_secs(30));
}

/// A client of one node's ACME directory, as seen through a balancer: every request says
/// `Host: ca.test`, so a body signed for one node's URL is good on every node.
struct Direct {
    http: reqwest::blocking::Client,
    base: String,
}

const HOST: &str = "ca.test";

fn acme_url(path: &str) -> String {
    format!("https://{HOST}/acme/server/{path}")
}

impl Direct {
    fn new(node: &common::Node) -> Direct {
        Direct {
            http: reqwest::blocking::Client::builder()
                .use_preconfigured_tls((*node.tls_client_config()).clone())
                .http1_only()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            base: node.url(),
        }
    }

    fn nonce(&self) -> String {
        let r = self
            .http
            .head(format!("{}/acme/server/new-nonce", self.base))
            .header("host", HOST)
            .send()
            .unwrap();
        r.headers()["replay-nonce"].to_str().unwrap().to_string()
    }

    /// POSTs a signed body; the status and the JSON (or text) answer.
    fn post(&self, path: &str, body: &[u8]) -> (u16, serde_json::Value, Option<String>) {
        let r = self
            .http
            .post(format!("{}/acme/server/{path}", self.base))
            .header("host", HOST)
            .header("content-type", "application/jose+json")
            .body(body.to_vec())
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let location = r.headers().get("location").map(|l| l.to_str().unwrap().to_string());
        let text = r.text().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
            location,
        )
    }
}

/// A JWS of `payload` (None: POST-as-GET) for `path` with `nonce`, by `key` as `kid` (or its jwk).
fn signed(key: &TestKey, kid: Option<&str>, nonce: &str, path: &str, payload: Option<&serde_json::Value>) -> Vec<u8> {
    let mut header = serde_json::json!({"nonce": nonce, "url": acme_url(path)});
    match kid {
        Some(k) => header["kid"] = k.into(),
        None => header["jwk"] = key.jwk(),
    }
    let payload = payload.map(|p| p.to_string().into_bytes()).unwrap_or_default();
    key.jws(header, &payload)
}

fn path_of(url: &str) -> String {
    url.strip_prefix(&acme_url("")).unwrap().to_string()
}

#[test]
fn a_nonce_of_one_node_serves_on_another_and_a_change_replayed_or_raced_on_others_happens_once() {
    let (dns_port, http01) = (free_port(), free_port());
    let _dns = dnsmasq(dns_port);
    let cluster = Cluster::start(
        3,
        &format!("acme_http01_port = {http01}\nacme_dns_resolver = \"127.0.0.1:{dns_port}\"\n"),
    );
    let a = &cluster.nodes[0];
    a.ok(&["ca", "init", "--cn", "ACME Root"]);
    a.ok(&["acme", "settings", "--profile", "server", "--require-eab", "false"]);
    let webroot = a.work().join("webroot");
    std::fs::create_dir_all(webroot.join(".well-known/acme-challenge")).unwrap();
    let _web = webroot_server(&webroot, http01);
    let nodes: Vec<Direct> = cluster.nodes.iter().map(Direct::new).collect();
    let key = TestKey::p256();

    // A nonce from node 0 creates the account on node 1.
    let body = signed(
        &key,
        None,
        &nodes[0].nonce(),
        "new-account",
        Some(&serde_json::json!({"termsOfServiceAgreed": true})),
    );
    let (status, account, kid) = nodes[1].post("new-account", &body);
    assert_eq!(status, 201, "{account}");
    let kid = kid.unwrap();

    // An order signed with node 2's nonce, taken by node 0, and the same body replayed on
    // nodes 1 and 2: one order.
    let order = serde_json::json!({"identifiers": [{"type": "dns", "value": "race.example.test"}]});
    let body = signed(&key, Some(&kid), &nodes[2].nonce(), "new-order", Some(&order));
    let (status, created, order_url) = nodes[0].post("new-order", &body);
    assert_eq!(status, 201, "{created}");
    for replay_on in [1, 2] {
        let (status, answer, _) = nodes[replay_on].post("new-order", &body);
        assert_eq!(status, 400, "a replay on node {replay_on}: {answer}");
        assert_eq!(answer["type"], "urn:ietf:params:acme:error:badNonce", "{answer}");
    }
    let orders_path = format!("{}/orders", path_of(&kid));
    let body = signed(&key, Some(&kid), &nodes[1].nonce(), &orders_path, None);
    let (_, listed, _) = nodes[1].post(&orders_path, &body);
    assert_eq!(listed["orders"].as_array().unwrap().len(), 1, "{listed}");

    // Validated through node 1.
    let authz_path = path_of(created["authorizations"][0].as_str().unwrap());
    let body = signed(&key, Some(&kid), &nodes[1].nonce(), &authz_path, None);
    let (_, authz, _) = nodes[1].post(&authz_path, &body);
    let challenge = authz["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "http-01")
        .unwrap()
        .clone();
    let token = challenge["token"].as_str().unwrap();
    let jwk = hapki_domain::jws::Jwk::from_json(&key.jwk()).unwrap();
    std::fs::write(
        webroot.join(".well-known/acme-challenge").join(token),
        hapki_domain::jws::key_authorization(token, &jwk),
    )
    .unwrap();
    let chall_path = path_of(challenge["url"].as_str().unwrap());
    let body = signed(
        &key,
        Some(&kid),
        &nodes[1].nonce(),
        &chall_path,
        Some(&serde_json::json!({})),
    );
    let (status, done, _) = nodes[1].post(&chall_path, &body);
    assert_eq!((status, done["status"].as_str()), (200, Some("valid")), "{done}");

    // Finalize on nodes 0 and 2 at once: one certificate, both answers name it.
    let certs_before = a.json(&["status"])["certificates"].as_u64().unwrap();
    let key_file = a.work().join("race.key");
    let (ok, text) = openssl(
        a.work(),
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key_file.display().to_string(),
            "-subj",
            "/CN=race.example.test",
            "-addext",
            "subjectAltName=DNS:race.example.test",
            "-outform",
            "DER",
            "-out",
            "race.csr",
        ],
    );
    assert!(ok, "{text}");
    let csr = std::fs::read(a.work().join("race.csr")).unwrap();
    let finalize = serde_json::json!({"csr": hapki_domain::jws::b64_encode(&csr)});
    let finalize_path = path_of(created["finalize"].as_str().unwrap());
    let bodies: Vec<Vec<u8>> = [0, 2]
        .iter()
        .map(|n| signed(&key, Some(&kid), &nodes[*n].nonce(), &finalize_path, Some(&finalize)))
        .collect();
    let answers: Vec<(u16, serde_json::Value, Option<String>)> = std::thread::scope(|s| {
        let racers: Vec<_> = [0usize, 2]
            .iter()
            .zip(&bodies)
            .map(|(n, body)| {
                let node = &nodes[*n];
                let path = finalize_path.clone();
                s.spawn(move || node.post(&path, body))
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for (status, answer, _) in &answers {
        assert_eq!(*status, 200, "{answer}");
        assert_eq!(answer["status"], "valid", "{answer}");
    }
    assert_eq!(answers[0].1["certificate"], answers[1].1["certificate"]);
    cluster.converged(Duration::from_secs(30));
    let certs_after = a.json(&["status"])["certificates"].as_u64().unwrap();
    assert_eq!(certs_after, certs_before + 1, "one certificate for two finalizes");
    let _ = order_url;
}
