//! The web console in a real headless Chromium against a three-node cluster: sign in
//! with a token, find a certificate the CLI issued, revoke it from its page and see
//! another node's OCSP responder say revoked, issue from a pasted CSR as a requester
//! (who is offered no revocation), and watch the cluster page turn BAD when a node
//! stops and GOOD when it is back. Every page is photographed at 1280×800 and the
//! cluster page in a narrow window too, into `target/tmp/console/`; no page may log a
//! Content-Security-Policy violation.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::browser::Browser;
use common::{ocsp, openssl, Cluster};

const PAGE: Duration = Duration::from_secs(15);

fn shots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("console")
}

/// Signs in on `node`'s console with `token` and waits for the cluster page.
fn sign_in(browser: &Browser, node: &str, token: &str) {
    browser.goto(&format!("{node}/ui/"));
    let field = browser.wait("form#signin input#token", PAGE);
    browser.type_into(&field, token);
    browser.click(&browser.wait("#signin-submit", PAGE));
    browser.wait("main#page[data-page=\"cluster\"]", PAGE);
}

fn show(browser: &Browser, node: &str, route: &str, page: &str) {
    browser.goto(&format!("{node}/ui/#/{route}"));
    browser.wait(&format!("main#page[data-page=\"{page}\"]"), PAGE);
}

/// Fails on any Content-Security-Policy violation the browser reported so far.
fn no_policy_violations(browser: &Browser) {
    let log = browser.console();
    let bad: Vec<_> = log
        .iter()
        .filter(|m| m.contains("Content Security Policy") || m.contains("Refused to"))
        .collect();
    assert!(bad.is_empty(), "the console broke its own policy: {bad:?}");
}

#[test]
fn an_operator_finds_and_revokes_a_certificate_and_watches_the_cluster_in_a_browser() {
    let mut cluster = Cluster::start(3, "");
    let admin = cluster.nodes[0].token.clone();
    cluster.nodes[0].ok(&["ca", "init", "--cn", "Console Root"]);
    let cert = cluster.nodes[0].issue(
        "console",
        "server",
        &["CN:console.example.com", "subjectAltName:console.example.com"],
    );
    let ca = cluster.nodes[0].ca_pem();
    let made = cluster.nodes[0].json(&["token", "create", "--role", "requester", "--name", "web team"]);
    let requester = made["token"].as_str().expect("the new token").to_string();
    assert!(requester.starts_with("hapki_"), "{requester}");

    let browser = Browser::start(1280, 800);
    let (n1, n2) = (cluster.nodes[1].url(), cluster.nodes[0].url());
    let (n1, n2) = (n1.as_str(), n2.as_str());

    // Sign in on the second node: the cluster is GOOD with three nodes.
    sign_in(&browser, n1, &admin);
    browser.wait_text("#cluster-health", "GOOD", PAGE);
    browser.wait("#whoami", PAGE);
    let rows = browser.find_all("table#nodes tr[data-node]");
    assert_eq!(rows.len(), 3, "{}", browser.page_text());
    assert!(
        browser.execute("return window.location.href.includes('hapki_')") == false
            && browser.execute("return Object.keys(localStorage).length") == 0,
        "the token is in the URL or in local storage"
    );
    browser.screenshot(&shots().join("cluster.png"));

    // Find the certificate the CLI issued, by its subject.
    show(&browser, n1, "certs", "certs");
    browser.type_into(&browser.wait("#q-subject", PAGE), "console.example.com");
    browser.click(&browser.wait("#search-submit", PAGE));
    let row = browser.wait("table#certs tr[data-serial]", PAGE);
    let serial = browser.attribute(&row, "data-serial").expect("the row's serial");
    assert_eq!(browser.find_all("table#certs tr[data-serial]").len(), 1);
    browser.screenshot(&shots().join("certificates.png"));

    // Its page: valid, with downloads; revoke it with a reason after a confirmation.
    let link = browser.wait(&format!("table#certs tr[data-serial=\"{serial}\"] a.detail"), PAGE);
    browser.click(&link);
    browser.wait("section#cert-detail", PAGE);
    browser.wait_text("#cert-status", "valid", PAGE);
    for download in ["#download-pem", "#download-der"] {
        let a = browser.wait(download, PAGE);
        assert!(
            browser.attribute(&a, "href").is_some_and(|h| h.starts_with("blob:")),
            "{download}"
        );
    }
    browser.click(&browser.wait("select#revoke-reason option[value=\"keyCompromise\"]", PAGE));
    browser.click(&browser.wait("button#revoke", PAGE));
    let confirm = browser.wait("button#revoke-confirm", PAGE);
    assert!(browser.displayed(&confirm));
    browser.screenshot(&shots().join("revoke-confirm.png"));
    browser.click(&confirm);
    browser.wait_text("#cert-status", "revoked", PAGE);
    browser.screenshot(&shots().join("certificate-revoked.png"));

    // Another node's responder says so within the freshness bound.
    let mut said = String::new();
    common::wait_for("OCSP on the third node says revoked", Duration::from_secs(5), || {
        said = ocsp(&cluster.nodes[2], &ca, &cert);
        said.contains(": revoked")
    });
    assert!(said.contains("keyCompromise"), "{said}");

    // The other pages load and say what they show.
    for (route, page, shot) in [
        ("issue", "issue", "issue.png"),
        ("cas", "cas", "cas-and-crls.png"),
        ("expiry", "expiry", "expiry.png"),
        ("audit", "audit", "audit.png"),
        ("recovery", "recovery", "key-recovery.png"),
    ] {
        show(&browser, n1, route, page);
        match page {
            "cas" => {
                browser.wait("table#issuers tr[data-issuer]", PAGE);
            }
            "expiry" => {
                browser.wait("svg#expiry-chart", PAGE);
                assert_eq!(browser.find_all("svg#expiry-chart rect.bar").len(), 13);
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(500));
        browser.screenshot(&shots().join(shot));
    }
    assert!(browser.find("#error:not(:empty)").is_none(), "{}", browser.page_text());

    // Stop a node: the summary turns BAD and names it; back, GOOD again.
    show(&browser, n1, "cluster", "cluster");
    browser.wait_text("#cluster-health", "GOOD", PAGE);
    cluster.nodes[2].kill9();
    browser.wait_text("#cluster-health", "BAD", Duration::from_secs(30));
    browser.wait("#cluster-reasons li", PAGE);
    browser.screenshot(&shots().join("cluster-node-down.png"));
    cluster.nodes[2].restart();
    browser.wait_text("#cluster-health", "GOOD", Duration::from_secs(60));

    // A narrow window still shows the page whole.
    browser.set_size(420, 800);
    std::thread::sleep(Duration::from_millis(500));
    let wide = browser.execute("return document.documentElement.scrollWidth > window.innerWidth + 1");
    assert_eq!(wide, false, "the cluster page is wider than a narrow window");
    browser.screenshot(&shots().join("cluster-narrow.png"));
    browser.set_size(1280, 800);

    // A requester: no revoke button, no audit, and a certificate from a pasted CSR.
    browser.click(&browser.wait("button#signout", PAGE));
    sign_in(&browser, n2, &requester);
    assert!(browser
        .find("nav#nav a[href=\"#/audit\"]")
        .is_none_or(|a| !browser.displayed(&a)));
    browser.goto(&format!("{n2}/ui/#/certs/{serial}"));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        browser.find("button#revoke").is_none(),
        "a requester is offered revocation"
    );
    cluster.nodes[1].ok(&["csr", "page", "CN:page.example.com", "subjectAltName:page.example.com"]);
    let csr = std::fs::read_to_string(cluster.nodes[1].work().join("page.csr")).expect("the CSR");
    show(&browser, n2, "issue", "issue");
    browser.type_into(&browser.wait("textarea#csr", PAGE), &csr);
    let profile = browser.wait("#profile", PAGE);
    if browser.attribute(&profile, "type").as_deref() == Some("text") {
        browser.type_into(&profile, "server");
    }
    browser.click(&browser.wait("button#issue-submit", PAGE));
    let chain = browser.wait("pre#issued-chain", PAGE);
    let mut text = String::new();
    common::wait_for("the issued chain", PAGE, || {
        text = browser.text(&chain);
        text.contains("BEGIN CERTIFICATE")
    });
    browser.screenshot(&shots().join("issue-requester.png"));
    let issued = cluster.nodes[1].work().join("page.pem");
    std::fs::write(&issued, &text).expect("write the issued chain");
    let (ok, out) = openssl(
        cluster.nodes[1].work(),
        &["verify", "-CAfile", &ca.display().to_string(), "page.pem"],
    );
    assert!(ok, "{out}");

    // A wrong token is refused in words on the sign-in form.
    browser.click(&browser.wait("button#signout", PAGE));
    browser.goto(&format!("{n2}/ui/"));
    browser.type_into(&browser.wait("input#token", PAGE), "hapki_not-a-token");
    browser.click(&browser.wait("#signin-submit", PAGE));
    let error = browser.wait("#error:not(:empty)", PAGE);
    assert!(
        browser.text(&error).to_lowercase().contains("token"),
        "{}",
        browser.text(&error)
    );
    browser.screenshot(&shots().join("signin-refused.png"));
    no_policy_violations(&browser);
}
