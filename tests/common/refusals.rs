//! Requests that must be refused, and the check every refusal passes: the right
//! HTTP status (or CLI exit code), the JSON error shape `{"error": {code,
//! message}}`, and a message a person can act on. Each checked case is recorded
//! so a test can report and count them.

use std::cell::RefCell;

use base64::Engine;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde_json::Value;

use super::{stderr, Node};

/// Sends requests to one node and checks refusals, recording the cases.
pub struct Api<'a> {
    pub node: &'a Node,
    pub client: Client,
    pub cases: RefCell<Vec<String>>,
}

impl<'a> Api<'a> {
    /// A client that trusts the node's current `api-ca.pem` (it changes when the node
    /// forms or joins a cluster: make a new `Api` then).
    pub fn new(node: &'a Node) -> Self {
        Api {
            node,
            client: node.http_client(),
            cases: RefCell::new(Vec::new()),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.node.url())
    }

    /// A request to `path` with `token` as bearer token, or none.
    pub fn req(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        with_token(self.client.request(method, self.url(path)), token)
    }

    /// A request with the node's admin token.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.req(method, path, Some(&self.node.token))
    }

    /// A GET with the admin token.
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.admin(Method::GET, path)
    }

    /// A POST of `body` as JSON with the admin token.
    pub fn post(&self, path: &str, body: &Value) -> RequestBuilder {
        self.admin(Method::POST, path).json(body)
    }

    /// A POST of `body` as JSON with `token`, or none.
    pub fn post_as(&self, path: &str, token: Option<&str>, body: &Value) -> RequestBuilder {
        self.req(Method::POST, path, token).json(body)
    }

    /// A POST of `body` as JSON on a connection of its own, so an oversized body never
    /// shares a connection with the requests that follow.
    pub fn post_alone(&self, path: &str, token: Option<&str>, body: &Value) -> RequestBuilder {
        with_token(self.node.http_client().post(self.url(path)), token).json(body)
    }

    /// A POST of raw bytes declared as JSON.
    pub fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        body: impl Into<reqwest::blocking::Body>,
    ) -> RequestBuilder {
        self.req(Method::POST, path, token)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
    }

    /// A request that must succeed with `status`; returns its JSON body.
    pub fn ok(&self, req: RequestBuilder, status: u16) -> Value {
        let resp = req.send().expect("send");
        let got = resp.status().as_u16();
        let text = resp.text().expect("body");
        assert_eq!(got, status, "expected success {status}, got {got}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    /// Sends `req` and checks the refusal (see [`check_error`]). Returns the message.
    pub fn refused(&self, case: &str, req: RequestBuilder, status: u16, code: &str, needle: &str) -> String {
        let resp = req.send().unwrap_or_else(|e| panic!("{case}: request failed: {e:?}"));
        let msg = check_error(case, resp, status, code, needle);
        self.record(format!("{case}: {status} {code}: {msg}"));
        msg
    }

    /// Runs the CLI with `token` and checks the refusal: exit code and a message on stderr.
    pub fn cli_refused(&self, case: &str, args: &[&str], token: Option<&str>, exit: i32, needle: &str) {
        let out = self.node.cli_with_token(args, token);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(exit), "{case}: hapki {args:?}: {err}");
        assert!(err.contains(needle), "{case}: stderr lacks {needle:?}: {err}");
        self.record(format!("{case}: exit {exit}: {}", err.trim()));
    }

    /// Records a case checked by other means.
    pub fn record(&self, case: String) {
        self.cases.borrow_mut().push(case);
    }

    /// Prints the cases checked so far; returns how many.
    pub fn report(&self) -> usize {
        let cases = self.cases.borrow();
        eprintln!("{} cases:\n  {}", cases.len(), cases.join("\n  "));
        cases.len()
    }
}

fn with_token(req: RequestBuilder, token: Option<&str>) -> RequestBuilder {
    match token {
        Some(t) => req.header(AUTHORIZATION, format!("Bearer {t}")),
        None => req,
    }
}

/// Checks one refusal: `status` (a client error, or 503 for a node that cannot
/// serve yet), a JSON body that is only `{"error": {code, message}}`, the `code`,
/// and a message that is a sentence containing `needle`. Returns the message.
pub fn check_error(case: &str, resp: Response, status: u16, code: &str, needle: &str) -> String {
    assert!(
        (400..500).contains(&status) || status == 503,
        "{case}: only refusals are expected here"
    );
    let got = resp.status().as_u16();
    let ct = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = resp.text().expect("body");
    assert_eq!(got, status, "{case}: wrong status; body: {text}");
    assert!(
        ct.starts_with("application/json"),
        "{case}: error is not JSON (Content-Type '{ct}'): {text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{case}: body is not JSON ({e}): {text}"));
    let obj = v.as_object().unwrap_or_else(|| panic!("{case}: not an object: {text}"));
    assert_eq!(obj.len(), 1, "{case}: only `error` expected: {text}");
    let err = &v["error"];
    assert_eq!(err["code"].as_str(), Some(code), "{case}: wrong code: {text}");
    let msg = err["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{case}: no message: {text}"));
    assert!(
        msg.trim().len() >= 10 && msg.contains(' '),
        "{case}: message is not a sentence: {msg:?}"
    );
    assert!(msg.contains(needle), "{case}: message {msg:?} lacks {needle:?}");
    msg.to_string()
}

/// The base64 inside the PEM blocks of `pem`, one entry per block.
pub fn pem_blocks(pem: &str) -> Vec<String> {
    pem.split("-----BEGIN ")
        .skip(1)
        .map(|b| {
            let body = b.split_once("-----").expect("PEM header").1;
            let body = body.split("-----END ").next().expect("PEM footer");
            body.chars().filter(|c| !c.is_whitespace()).collect()
        })
        .collect()
}

/// PEM → DER for the first block.
pub fn pem_der(pem: &str) -> Vec<u8> {
    let b64 = pem_blocks(pem).into_iter().next().expect("a PEM block");
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("PEM base64")
}

/// DER → PEM with `label`, 64 characters a line.
pub fn der_pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// Makes a CSR with `hapki csr` in the node's work directory and returns its PEM.
pub fn hapki_csr(node: &Node, name: &str, args: &[&str]) -> String {
    let mut all = vec!["csr", name];
    all.extend_from_slice(args);
    node.ok(&all);
    let path = node.work().join(format!("{name}.csr"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}
