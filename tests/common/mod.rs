//! The one harness for integration tests: real `hapki` processes on free
//! loopback ports, each in its own temporary directory, killed in `Drop` even
//! when a test fails. Helpers run the real CLI, real `openssl`, and raw HTTPS.

#![allow(dead_code)]

pub mod browser;
pub mod refusals;
pub mod secrets;
pub mod softhsm;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const HAPKI: &str = env!("CARGO_BIN_EXE_hapki");

/// A free TCP port on 127.0.0.1, drawn below the kernel's ephemeral range
/// (32768 and up on Linux) so that no outgoing connection of a running test takes
/// it between this check and the server's bind. Test processes run side by side,
/// and a port one of them checked (or freed by killing a node it will restart) must
/// not be handed to another: each process holds an advisory lock on one block of
/// the range for its lifetime (the kernel drops it when the process ends, however it
/// ends) and draws only from that block.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::OnceLock;
    const LOW: u32 = 10_000;
    const BLOCK: u32 = 500;
    const BLOCKS: u32 = 44;
    static HELD: OnceLock<(std::fs::File, u32)> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (_, block) = HELD.get_or_init(|| {
        let dir = std::env::temp_dir();
        for block in 0..BLOCKS {
            let path = dir.join(format!("hapki-test-ports-{block}.lock"));
            let file = std::fs::File::create(&path).expect("port block lock file");
            if file.try_lock().is_ok() {
                return (file, block);
            }
        }
        panic!("every block of test ports is held by another test process");
    });
    let first = LOW + block * BLOCK;
    for _ in 0..BLOCK {
        let port = (first + NEXT.fetch_add(1, Ordering::SeqCst) % BLOCK) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {first} and {}", first + BLOCK);
}

/// Polls `cond` until it holds or `timeout` passes.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// A running node: a dev node, a configured one, or a member of a [`Cluster`].
pub struct Node {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub https: u16,
    pub http: u16,
    /// The cluster channel's port (configured nodes only listen on it when asked).
    pub channel: u16,
    /// The admin token (empty on a node that is not clustered).
    pub token: String,
    /// Extra environment for the server process.
    env: Vec<(String, String)>,
    /// The `hapki` binary the server runs ([`HAPKI`] unless [`Node::set_binary`] changed it).
    bin: PathBuf,
}

impl Node {
    /// Starts `hapki server --dev` in a fresh directory and waits until it serves.
    pub fn start() -> Node {
        Self::start_with(None)
    }

    /// Starts `hapki server --config node.toml`, the config setting the data directory and
    /// ports, followed by `extra`.
    pub fn start_with_config(extra: &str) -> Node {
        Self::start_with(Some(extra))
    }

    fn start_with(config: Option<&str>) -> Node {
        let mut node = Self::launch(config);
        if config.is_some() {
            // A configured node starts `not clustered`; make it a one-node cluster.
            let bootstrap = node.bootstrap_token();
            let out = node.cli_with_token(&["cluster", "new"], Some(&bootstrap));
            assert!(out.status.success(), "cluster new failed: {}", stderr(&out));
        }
        node.token = std::fs::read_to_string(node.data().join("admin-token"))
            .expect("admin-token")
            .trim()
            .to_string();
        node
    }

    /// Starts `hapki server --config node.toml` with a cluster channel and leaves it
    /// `not clustered`.
    pub fn start_fresh(extra: &str) -> Node {
        Self::start_fresh_as(Path::new(HAPKI), extra)
    }

    /// [`Node::start_fresh`] with the server run from `bin`.
    pub fn start_fresh_as(bin: &Path, extra: &str) -> Node {
        let mut node = Self::unstarted(&[]);
        node.bin = bin.to_path_buf();
        node.write_config(&format!("cluster_listen = \"127.0.0.1:{{channel}}\"\n{extra}"));
        node.spawn();
        node
    }

    /// [`Node::start_fresh`] with extra environment for the server process.
    pub fn start_fresh_with_env(extra: &str, env: &[(&str, &str)]) -> Node {
        Self::launch_with_env(
            Some(&format!("cluster_listen = \"127.0.0.1:{{channel}}\"\n{extra}")),
            env,
        )
    }

    fn launch(config: Option<&str>) -> Node {
        Self::launch_with_env(config, &[])
    }

    /// A node in a fresh temporary directory, on free ports, not started yet.
    fn unstarted(env: &[(&str, &str)]) -> Node {
        Node {
            child: None,
            dir: tempfile::tempdir().expect("temp dir"),
            https: free_port(),
            http: free_port(),
            channel: free_port(),
            token: String::new(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            bin: PathBuf::from(HAPKI),
        }
    }

    /// Runs the server from `bin` from the next start on, as an operator installs another
    /// build; the CLI stays this build's.
    pub fn set_binary(&mut self, bin: &Path) {
        self.bin = bin.to_path_buf();
    }

    /// Starts the server (from its binary) and waits for it to exit, as a server that refuses
    /// to start does; returns its exit status and output.
    pub fn start_expecting_exit(&mut self) -> (std::process::ExitStatus, String) {
        self.kill9();
        let log = self.dir.path().join("refused.log");
        let file = std::fs::File::create(&log).expect("log file");
        let mut child = Command::new(&self.bin)
            .args(["server", "--config", "node.toml"])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(self.dir.path())
            .stdout(Stdio::from(file.try_clone().expect("clone log")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start hapki server");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "the server did not exit within 30 s:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (status, std::fs::read_to_string(&log).unwrap_or_default())
    }

    /// Starts `hapki server --dev` on a copy of the data directory `fixture` (a file
    /// ending in `.gz` is unpacked), as an operator starts a new build on an old node's
    /// directory; the fixture itself is never written.
    pub fn start_on_copy_of(fixture: &Path) -> Node {
        let mut node = Self::unstarted(&[]);
        copy_tree(fixture, &node.data());
        node.spawn();
        node.token = std::fs::read_to_string(node.data().join("admin-token"))
            .expect("the fixture's admin-token")
            .trim()
            .to_string();
        node
    }

    fn launch_with_env(config: Option<&str>, env: &[(&str, &str)]) -> Node {
        let mut node = Self::unstarted(env);
        if let Some(extra) = config {
            node.write_config(extra);
        }
        node.spawn();
        node
    }

    /// A node whose `node.toml` (with a cluster channel and `extra`) is written but whose
    /// server is not started: for commands that prepare a data directory first, such as
    /// `hapki backup restore --config node.toml`. Start it with [`Node::start_server`].
    pub fn configured(extra: &str) -> Node {
        let node = Self::unstarted(&[]);
        node.write_config(&format!("cluster_listen = \"127.0.0.1:{{channel}}\"\n{extra}"));
        node
    }

    /// Starts the server of a [`Node::configured`] node and waits until it serves.
    pub fn start_server(&mut self) {
        self.spawn();
    }

    fn write_config(&self, extra: &str) {
        let toml = format!(
            "data_dir = \"{}\"\nlisten = \"127.0.0.1:{}\"\nhttp_listen = \"127.0.0.1:{}\"\n{}\n",
            self.data().display(),
            self.https,
            self.http,
            extra.replace("{channel}", &self.channel.to_string())
        );
        std::fs::write(self.dir.path().join("node.toml"), toml).expect("write node.toml");
    }

    /// A fresh node's bootstrap token.
    pub fn bootstrap_token(&self) -> String {
        std::fs::read_to_string(self.data().join("bootstrap-token"))
            .expect("bootstrap-token")
            .trim()
            .to_string()
    }

    /// This node's id, as the CLI shows it.
    pub fn id(&self) -> String {
        std::fs::read_to_string(self.data().join("node-id"))
            .expect("node-id")
            .trim()
            .to_string()
    }

    /// `host:port` of the cluster channel.
    pub fn channel_addr(&self) -> String {
        format!("127.0.0.1:{}", self.channel)
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The working directory tests write files into.
    pub fn work(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.https)
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }

    pub fn api_ca(&self) -> PathBuf {
        self.data().join("api-ca.pem")
    }

    pub fn ca_pem(&self) -> PathBuf {
        self.data().join("ca.pem")
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("log file");
        let mut cmd = Command::new(&self.bin);
        if self.dir.path().join("node.toml").exists() {
            cmd.args(["server", "--config", "node.toml"]);
        } else {
            cmd.args(["server", "--dev", "--data-dir"])
                .arg(self.data())
                .args(["--listen", &format!("127.0.0.1:{}", self.https)])
                .args(["--http-listen", &format!("127.0.0.1:{}", self.http)]);
        }
        let child = cmd
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(self.dir.path())
            .stdout(Stdio::from(log.try_clone().expect("clone log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start hapki server");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Waits until the server printed its banner and accepts connections.
    pub fn wait_ready(&mut self) {
        let port = self.https;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("hapki server exited early ({status}):\n{}", self.log());
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() && self.log().contains(" is ready") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the node on port {port} did not serve within 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `kill -9` the server.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("kill -9");
            c.wait().expect("reap");
        }
    }

    /// Starts the server again on the same directory and ports.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Runs the CLI against this node as a user would (env vars set, cwd = work dir).
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_token(args, Some(&self.token))
    }

    pub fn cli_with_token(&self, args: &[&str], token: Option<&str>) -> Output {
        self.cli_with_env(args, token, &[])
    }

    /// The CLI with `token` and extra environment (e.g. `HAPKI_RETRY_SECS`).
    pub fn cli_with_env(&self, args: &[&str], token: Option<&str>, env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(HAPKI);
        cmd.envs(env.iter().copied());
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("HAPKI_URL", self.url())
            .env("HAPKI_CA_CERT", self.api_ca())
            .env("HOME", self.dir.path())
            .env_remove("HAPKI_OUTPUT");
        match token {
            Some(t) => cmd.env("HAPKI_TOKEN", t),
            None => cmd.env_remove("HAPKI_TOKEN"),
        };
        cmd.output().expect("run hapki")
    }

    /// Runs the CLI and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "hapki {args:?} failed: {}\n{}",
            stderr(&out),
            stdout(&out)
        );
        stdout(&out)
    }

    /// Runs the CLI with `--output json` and parses the result.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        let text = self.ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("hapki {args:?} printed no JSON ({e}): {text}"))
    }

    /// An HTTPS client that trusts this node's API CA.
    pub fn http_client(&self) -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .use_preconfigured_tls((*self.tls_client_config()).clone())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client")
    }

    /// GETs `url` with [`Node::http_client`]; the status must be 2xx. Returns (content type, body).
    pub fn get_ok(&self, url: &str) -> (String, Vec<u8>) {
        let resp = self
            .http_client()
            .get(url)
            .send()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (ct, resp.bytes().expect("body").to_vec())
    }

    /// [`Node::digest`] once this node's audit log is sealed through its last record: the
    /// leader seals after each batch on its own, so a digest taken before that seal lands
    /// would change by itself. Take a digest to compare a later one with this way.
    pub fn quiet_digest(&self) -> (String, u64) {
        wait_for("the audit log sealed", Duration::from_secs(30), || {
            let v = self.json(&["audit", "list", "--limit", "1"]);
            v["head"] == v["sealed_through"]
        });
        self.digest()
    }

    /// The state digest and certificate count from `hapki status`.
    pub fn digest(&self) -> (String, u64) {
        let v = self.json(&["status"]);
        (
            v["digest"].as_str().expect("digest").to_string(),
            v["certificates"].as_u64().expect("count"),
        )
    }

    /// Makes a CSR with the CLI and issues it; returns the certificate file.
    pub fn issue(&self, name: &str, profile: &str, words: &[&str]) -> PathBuf {
        let mut args = vec!["csr", name];
        args.extend_from_slice(words);
        self.ok(&args);
        let out = format!("{name}.pem");
        self.ok(&[
            "cert",
            "issue",
            "--csr",
            &format!("{name}.csr"),
            "--profile",
            profile,
            "--out",
            &out,
        ]);
        self.work().join(out)
    }
}

/// The CLI as a client outside the cluster runs it: `--output json`, the failover list
/// `urls`, the API CA `ca`, `token`, and a retry budget of 20 s, in `work`.
pub fn client_cli(work: &Path, urls: &str, ca: &Path, token: &str, args: &[&str]) -> Output {
    Command::new(HAPKI)
        .args(["--output", "json"])
        .args(args)
        .current_dir(work)
        .env("HOME", work)
        .env("HAPKI_URL", urls)
        .env("HAPKI_CA_CERT", ca)
        .env("HAPKI_TOKEN", token)
        .env("HAPKI_RETRY_SECS", "20")
        .output()
        .expect("run hapki")
}

/// Nodes formed into one cluster: the first with `cluster new`, the others with
/// `cluster fulljoin` through a member, as an operator would.
pub struct Cluster {
    pub nodes: Vec<Node>,
}

impl Cluster {
    /// `n` nodes; `extra` goes into every node's configuration.
    pub fn start(n: usize, extra: &str) -> Cluster {
        Self::start_each(n, |_| extra.to_string(), |_, _| {})
    }

    /// `n` nodes; node `i` gets `extra(i)` in its configuration, and `started(i, node)` is
    /// called once it runs, before it forms or joins the cluster.
    pub fn start_each(n: usize, extra: impl Fn(usize) -> String, started: impl Fn(usize, &Node)) -> Cluster {
        Self::start_each_as(Path::new(HAPKI), n, extra, started)
    }

    /// `n` nodes whose servers run from `bin`.
    pub fn start_as(bin: &Path, n: usize) -> Cluster {
        Self::start_each_as(bin, n, |_| String::new(), |_, _| {})
    }

    fn start_each_as(bin: &Path, n: usize, extra: impl Fn(usize) -> String, started: impl Fn(usize, &Node)) -> Cluster {
        let mut first = Node::start_fresh_as(bin, &extra(0));
        started(0, &first);
        let out = first.cli_with_token(&["cluster", "new"], Some(&first.bootstrap_token()));
        assert!(out.status.success(), "cluster new failed: {}", stderr(&out));
        first.token = std::fs::read_to_string(first.data().join("admin-token"))
            .expect("admin-token")
            .trim()
            .to_string();
        let mut cluster = Cluster { nodes: vec![first] };
        for i in 1..n {
            let fresh = Node::start_fresh_as(bin, &extra(i));
            started(i, &fresh);
            let out = cluster.join(fresh, 0);
            assert!(out.status.success(), "fulljoin failed: {}", stderr(&out));
        }
        cluster
    }

    /// Starts a fresh node and joins it through node 0; returns the CLI's output.
    pub fn add(&mut self, extra: &str) -> Output {
        let fresh = Node::start_fresh(extra);
        self.join(fresh, 0)
    }

    /// Joins a fresh node through member `via` with `cluster fulljoin`; the node is kept
    /// (and cleaned up) with the others whatever the outcome.
    pub fn join(&mut self, mut fresh: Node, via: usize) -> Output {
        let member = &self.nodes[via];
        // As an operator would: the bootstrap token from a file, not on the command line.
        let token_file = member.work().join(format!("bootstrap-{}.token", fresh.https));
        std::fs::write(&token_file, format!("{}\n", fresh.bootstrap_token())).expect("write the bootstrap token file");
        let out = member.cli(&[
            "cluster",
            "fulljoin",
            "--member",
            &member.url(),
            "--newnode",
            &fresh.url(),
            "--newnode-token-file",
            &token_file.display().to_string(),
            "--newnode-ca-cert",
            &fresh.api_ca().display().to_string(),
            "--yes",
        ]);
        fresh.token = member.token.clone();
        self.nodes.push(fresh);
        out
    }

    /// Waits until every node reports the same digest at the same applied index; returns it.
    pub fn converged(&self, timeout: Duration) -> String {
        let mut last = Vec::new();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            last = self.nodes.iter().map(|n| n.digest()).collect::<Vec<_>>();
            if last.windows(2).all(|w| w[0] == w[1]) {
                return last[0].0.clone();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let logs: Vec<String> = self
            .nodes
            .iter()
            .map(|n| {
                let log = n.log();
                let tail: Vec<&str> = log.lines().rev().take(25).collect();
                format!(
                    "--- {} ({}):\n{}",
                    n.url(),
                    n.id(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect();
        panic!(
            "the nodes did not converge within {timeout:?}: {last:?}\n{}",
            logs.join("\n")
        );
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn hapki_pem_certs(pem: &[u8]) -> Vec<Vec<u8>> {
    use base64::Engine;
    let text = String::from_utf8_lossy(pem);
    text.split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .filter_map(|b| b.split("-----END CERTIFICATE-----").next())
        .map(|b| {
            let clean: String = b.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD.decode(clean).expect("base64")
        })
        .collect()
}

/// Copies the directory `from` to `to` (created), unpacking `.gz` files with `gzip`;
/// the copies are readable by their owner only, as a node keeps its data directory.
fn copy_tree(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).expect("create the copy");
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().expect("a file name").to_string_lossy().to_string();
        if path.is_dir() {
            copy_tree(&path, &to.join(&name));
            continue;
        }
        let target = match name.strip_suffix(".gz") {
            Some(stem) => {
                let out = Command::new("gzip").arg("-dc").arg(&path).output().expect("run gzip");
                assert!(out.status.success(), "gzip -dc {}: {}", path.display(), stderr(&out));
                let target = to.join(stem);
                std::fs::write(&target, out.stdout).expect("write the unpacked file");
                target
            }
            None => {
                let target = to.join(&name);
                std::fs::copy(&path, &target).expect("copy a fixture file");
                target
            }
        };
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `openssl` with `args` in `dir`; returns (success, stdout + stderr).
pub fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    (out.status.success(), format!("{}{}", stdout(&out), stderr(&out)))
}

/// The serial of a certificate file, as hapki prints it (lowercase hex).
/// `openssl ocsp` for `cert` against `node`'s responder, trusting `ca`; the response must
/// verify. Returns the report.
pub fn ocsp(node: &Node, ca: &Path, cert: &Path) -> String {
    let (ca, cert) = (ca.display().to_string(), cert.display().to_string());
    let url = format!("{}/ocsp", node.http_url());
    let (ok, out) = openssl(
        node.work(),
        &["ocsp", "-issuer", &ca, "-cert", &cert, "-url", &url, "-CAfile", &ca],
    );
    assert!(ok, "{out}");
    assert!(out.contains("Response verify OK"), "{out}");
    out
}

pub fn serial_of(dir: &Path, cert: &Path) -> String {
    let (ok, out) = openssl(dir, &["x509", "-in", cert.to_str().expect("path"), "-noout", "-serial"]);
    assert!(ok, "{out}");
    out.trim().trim_start_matches("serial=").to_ascii_lowercase()
}

/// Makes a self-signed certificate with `openssl req -x509` in `dir`: `<name>.pem` and
/// `<name>.key` (mode 0600). `newkey` is what follows `-newkey` (e.g. `["rsa:3072"]` or
/// `["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]`); `extra` is appended (e.g. `-addext ...`).
pub fn openssl_self_signed(
    dir: &Path,
    name: &str,
    newkey: &[&str],
    subject: &str,
    extra: &[&str],
) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.pem"));
    let (key_arg, cert_arg) = (key.to_str().expect("path"), cert.to_str().expect("path"));
    let mut args = vec!["req", "-x509", "-nodes", "-newkey"];
    args.extend_from_slice(newkey);
    args.extend_from_slice(&["-keyout", key_arg, "-out", cert_arg, "-days", "3650", "-subj", subject]);
    args.extend_from_slice(extra);
    let (ok, out) = openssl(dir, &args);
    assert!(ok, "openssl {args:?} failed: {out}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
    (cert, key)
}

/// A TCP proxy in front of a node's cluster channel that can cut the link: while
/// cut, open connections are shut and new ones are closed at once. Nodes advertise
/// the proxy's address, so every peer reaches the node through it.
pub struct FaultProxy {
    pub port: u16,
    target: Arc<std::sync::Mutex<Option<String>>>,
    cut: Arc<std::sync::atomic::AtomicBool>,
    open: Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl FaultProxy {
    /// Listens on a free port; forwards nowhere until [`FaultProxy::set_target`].
    pub fn start() -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let proxy = FaultProxy {
            port,
            target: Arc::new(std::sync::Mutex::new(None)),
            cut: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            open: Arc::new(std::sync::Mutex::new(Vec::new())),
        };
        let (target, cut, open) = (proxy.target.clone(), proxy.cut.clone(), proxy.open.clone());
        std::thread::spawn(move || {
            for inbound in listener.incoming() {
                let Ok(inbound) = inbound else { continue };
                let dest = target.lock().unwrap().clone();
                if cut.load(std::sync::atomic::Ordering::SeqCst) || dest.is_none() {
                    let _ = inbound.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(outbound) = std::net::TcpStream::connect(dest.unwrap()) else {
                    continue;
                };
                let mut registry = open.lock().unwrap();
                registry.retain(|s| s.peer_addr().is_ok());
                for s in [&inbound, &outbound] {
                    if let Ok(c) = s.try_clone() {
                        registry.push(c);
                    }
                }
                drop(registry);
                for (mut from, mut to) in [
                    (inbound.try_clone().unwrap(), outbound.try_clone().unwrap()),
                    (outbound, inbound),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                        let _ = from.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        proxy
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn set_target(&self, target: String) {
        *self.target.lock().unwrap() = Some(target);
    }

    /// Cuts the link: nothing reaches the node through the proxy until [`FaultProxy::heal`].
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn heal(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Node {
    /// The server process's id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// A rustls client configuration that trusts this node's API CA, for raw TLS
    /// clients (the one [`Node::http_client`] uses, without ALPN).
    pub fn tls_client_config(&self) -> Arc<rustls::ClientConfig> {
        let pem = std::fs::read(self.api_ca()).expect("api-ca.pem");
        let mut roots = rustls::RootCertStore::empty();
        for der in hapki_pem_certs(&pem) {
            roots
                .add(rustls_pki_types::CertificateDer::from(der))
                .expect("add root");
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(tls)
    }
}

/// HAProxy with the shipped configuration (deploy/haproxy.cfg) in front of a cluster of
/// three, on free ports; stopped on drop.
pub struct Haproxy {
    child: Child,
    pub api: u16,
    pub publication: u16,
}

impl Haproxy {
    pub fn start(cluster: &Cluster) -> Haproxy {
        let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/haproxy.cfg")).unwrap();
        let (api, publication) = (free_port(), free_port());
        let mut cfg = shipped
            .replace("127.0.0.1:7443", &format!("127.0.0.1:{api}"))
            .replace("127.0.0.1:7080", &format!("127.0.0.1:{publication}"));
        for (n, (https, http)) in cluster.nodes.iter().zip([(8443, 8080), (9443, 9080), (10443, 10080)]) {
            cfg = cfg
                .replace(&format!("127.0.0.1:{https}\n"), &format!("127.0.0.1:{}\n", n.https))
                .replace(&format!("127.0.0.1:{http}\n"), &format!("127.0.0.1:{}\n", n.http));
        }
        let a = &cluster.nodes[0];
        let path = a.work().join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let child = Command::new(if Path::new("/usr/sbin/haproxy").exists() {
            "/usr/sbin/haproxy"
        } else {
            "haproxy"
        })
        .args(["-db", "-f"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy (scripts/test.sh installs it)");
        let haproxy = Haproxy {
            child,
            api,
            publication,
        };
        let through = haproxy.api_url();
        wait_for("HAProxy to serve", Duration::from_secs(20), || {
            a.http_client()
                .get(format!("{through}/v1/sys/health"))
                .send()
                .is_ok_and(|r| r.status().is_success())
        });
        haproxy
    }

    /// The HTTPS API through HAProxy.
    pub fn api_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.api)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
