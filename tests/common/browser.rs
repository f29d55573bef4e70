//! A real headless browser for console tests: Debian's `chromium`, driven through
//! `chromedriver` over the W3C WebDriver protocol (JSON over HTTP, a handful of
//! commands, spoken here with the blocking `reqwest` client the other tests use).
//! The driver is a child process on a free port and is killed in `Drop`, the browser
//! session with it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::free_port;

/// The key under which WebDriver names an element.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    http: reqwest::blocking::Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
}

/// An element of the current page.
#[derive(Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver and a headless Chromium of `width`×`height`. The nodes'
    /// HTTPS certificates chain to a cluster's own CA, which this throwaway profile does
    /// not hold, so the session accepts it as a user who imported that CA would.
    pub fn start(width: u32, height: u32) -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run chromedriver (Debian's chromium-driver; scripts/test.sh installs it)");
        // Plain HTTP to the driver on loopback; reqwest still wants a TLS provider named.
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let http = reqwest::blocking::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http
                .get(format!("{base}/status"))
                .send()
                .ok()
                .and_then(|r| r.json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not become ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         format!("--window-size={width},{height}")],
            },
        }}});
        let mut browser = Browser {
            driver,
            http,
            session: String::new(),
        };
        let v = browser.command("POST", &format!("{base}/session"), Some(caps));
        let id = v["sessionId"].as_str().expect("a session id").to_string();
        browser.session = format!("{base}/session/{id}");
        browser
    }

    /// Sends one WebDriver command; returns its `value`, panicking on a WebDriver error.
    fn command(&self, method: &str, url: &str, body: Option<Value>) -> Value {
        match self.try_command(method, url, body) {
            Ok(v) => v,
            Err(e) => panic!("WebDriver {method} {url}: {e}"),
        }
    }

    fn try_command(&self, method: &str, url: &str, body: Option<Value>) -> Result<Value, String> {
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or_else(|| json!({}))),
        };
        let res = req.send().map_err(|e| e.to_string())?;
        let ok = res.status().is_success();
        let v: Value = res.json().map_err(|e| e.to_string())?;
        if ok {
            Ok(v["value"].clone())
        } else {
            Err(format!("{} ({})", v["value"]["error"], v["value"]["message"]))
        }
    }

    fn session_command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.command(method, &format!("{}{path}", self.session), body)
    }

    pub fn goto(&self, url: &str) {
        self.session_command("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn set_size(&self, width: u32, height: u32) {
        self.session_command("POST", "/window/rect", Some(json!({"width": width, "height": height})));
    }

    /// The first element matching `css` now, if any.
    pub fn find(&self, css: &str) -> Option<Element> {
        let body = json!({"using": "css selector", "value": css});
        self.try_command("POST", &format!("{}/element", self.session), Some(body))
            .ok()
            .map(|v| Element(v[ELEMENT].as_str().expect("an element id").to_string()))
    }

    /// Every element matching `css` now.
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        let body = json!({"using": "css selector", "value": css});
        let v = self.session_command("POST", "/elements", Some(body));
        v.as_array()
            .expect("a list of elements")
            .iter()
            .map(|e| Element(e[ELEMENT].as_str().expect("an element id").to_string()))
            .collect()
    }

    /// Waits up to `timeout` for an element matching `css`.
    pub fn wait(&self, css: &str, timeout: Duration) -> Element {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.find(css) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no element {css} after {timeout:?}; the page says: {}",
                self.page_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits up to `timeout` for the text of `css` to be `want`.
    pub fn wait_text(&self, css: &str, want: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.find(css).and_then(|e| self.try_text(&e));
            if now.as_deref() == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{css} says {now:?}, not {want:?}, after {timeout:?}; the page says: {}",
                self.page_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn click(&self, e: &Element) {
        self.session_command("POST", &format!("/element/{}/click", e.0), None);
    }

    pub fn type_into(&self, e: &Element, text: &str) {
        self.session_command("POST", &format!("/element/{}/clear", e.0), None);
        self.session_command(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        );
    }

    pub fn text(&self, e: &Element) -> String {
        self.try_text(e).expect("the element's text")
    }

    fn try_text(&self, e: &Element) -> Option<String> {
        self.try_command("GET", &format!("{}/element/{}/text", self.session, e.0), None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
    }

    pub fn attribute(&self, e: &Element, name: &str) -> Option<String> {
        let v = self.session_command("GET", &format!("/element/{}/attribute/{name}", e.0), None);
        v.as_str().map(str::to_string)
    }

    pub fn displayed(&self, e: &Element) -> bool {
        self.session_command("GET", &format!("/element/{}/displayed", e.0), None) == true
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    pub fn execute(&self, script: &str) -> Value {
        self.session_command("POST", "/execute/sync", Some(json!({"script": script, "args": []})))
    }

    /// The visible text of the whole page, for failure messages.
    pub fn page_text(&self) -> String {
        self.find("body").and_then(|b| self.try_text(&b)).unwrap_or_default()
    }

    /// The browser console's messages since the last call (CSP violations land here).
    pub fn console(&self) -> Vec<String> {
        let v = self.session_command("POST", "/se/log", Some(json!({"type": "browser"})));
        v.as_array()
            .map(|l| {
                l.iter()
                    .map(|m| m["message"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Saves a PNG of the window to `path`.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let v = self.session_command("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("a base64 screenshot"))
            .expect("base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        std::fs::write(path, png).expect("write the screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.try_command("DELETE", &self.session.clone(), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
