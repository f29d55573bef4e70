//! Real relying parties other than the openssl CLI, used as their users would
//! use them: nginx staples hapki's OCSP answers (checked with `openssl s_client`
//! and `curl --cert-status`), PostgreSQL authenticates its clients by hapki
//! certificates (mutual TLS, `cert` authentication, a CRL from hapki), and
//! Python's `ssl` module runs both ends of a mutual-TLS connection with hapki
//! certificates and the CRL named in them, and the JDK's PKIX validator checks
//! revocation through hapki's OCSP responder and CRL.
//!
//! nginx, PostgreSQL, curl, python3 and a JDK come from Debian (`scripts/test.sh`
//! installs them). Every server these tests start is a child process in a
//! temporary directory on free loopback ports, stopped in `Drop` even when a
//! test fails.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, openssl, serial_of, stderr, stdout, Node};

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Runs openssl in `dir` and requires success; returns stdout + stderr.
fn ossl(dir: &Path, args: &[&str]) -> String {
    let (ok, out) = openssl(dir, args);
    assert!(ok, "openssl {args:?} failed:\n{out}");
    out
}

/// Sets a file's permission bits (keys: 0600, as libpq and postgres demand).
fn chmod(file: &Path, mode: u32) {
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", file.display()));
}

/// A self-signed certificate and key from a CA hapki does not know, named `CN=<cn>`.
fn foreign_cert(dir: &Path, name: &str, cn: &str) -> (PathBuf, PathBuf) {
    let p256 = ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
    common::openssl_self_signed(dir, name, &p256, &format!("/CN={cn}"), &[])
}

/// The common name of the node's default issuer (what relying parties see as the issuer).
fn root_cn(node: &Node) -> String {
    let list = node.json(&["ca", "list"]);
    let default = list["issuers"]
        .as_array()
        .expect("issuers")
        .iter()
        .find(|i| i["default"] == true)
        .unwrap_or_else(|| panic!("no default issuer in {list}"));
    let name = default["name"].as_str().expect("name");
    name.split(", ")
        .find_map(|rdn| rdn.strip_prefix("CN="))
        .unwrap_or_else(|| panic!("no CN in {name}"))
        .to_string()
}

/// Revokes the certificate in `cert` (leaf first) with `hapki cert revoke`.
fn revoke(node: &Node, cert: &Path, reason: &str) {
    let serial = serial_of(node.work(), cert);
    let revoked = node.json(&["cert", "revoke", &serial, "--reason", reason]);
    assert_eq!(revoked["serial"], serial.as_str(), "{revoked}");
    assert_eq!(revoked["reason"], reason, "{revoked}");
}

/// `name` found on `PATH` or in the sbin directories (which a non-root `PATH`
/// often lacks), or a panic telling how to install it.
fn tool(name: &str, package: &str) -> PathBuf {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path_var).collect();
    dirs.extend(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from));
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found: install the Debian package {package} (./scripts/test.sh does)"))
}

/// A server process of a test (nginx, postgres): asked to stop with `stop_signal`,
/// then killed if it lingers, when dropped, also when the test panics.
struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
    stop_signal: &'static str,
}

impl Daemon {
    /// Spawns `cmd` with stdout and stderr appended to `log`.
    fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf, stop_signal: &'static str) -> Daemon {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("daemon log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().expect("clone log")))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Daemon {
            name,
            child,
            log,
            stop_signal,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the log if the process has exited.
    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}):\n{}", self.name, self.log());
        }
    }

    /// Sends a signal to this process (and no other) by its id.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {signal} {} failed", self.name);
    }

    /// Polls until `cond(log)` holds, failing early if the process dies.
    fn wait_log(&mut self, what: &str, timeout: Duration, cond: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if cond(&self.log()) {
                return;
            }
            self.check_alive();
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {} {what}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-s", self.stop_signal, &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// nginx with OCSP stapling
// ---------------------------------------------------------------------------

const NGINX_HOST: &str = "nginx.hapki.test";

/// A foreground nginx, one process (`master_process off`), everything under `dir`.
struct Nginx {
    daemon: Daemon,
    port: u16,
}

impl Nginx {
    /// Starts nginx serving `cert`/`key` on `port` with stapling from the certificate's
    /// OCSP URL, or from `staple_file` (a DER OCSP response) when given. `run` names
    /// this start's configuration and error log.
    fn start(
        dir: &Path,
        run: &str,
        port: u16,
        cert: &Path,
        key: &Path,
        ca: &Path,
        staple_file: Option<&Path>,
    ) -> Nginx {
        let d = path(dir);
        let staple = staple_file
            .map(|f| format!("ssl_stapling_file {};", path(f)))
            .unwrap_or_default();
        let conf = format!(
            "master_process off;\n\
             worker_processes 1;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/{run}.error.log warn;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {d}/body;\n\
               proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n\
               scgi_temp_path {d}/scgi;\n\
               server {{\n\
                 listen 127.0.0.1:{port} ssl;\n\
                 server_name {NGINX_HOST};\n\
                 ssl_certificate {cert};\n\
                 ssl_certificate_key {key};\n\
                 ssl_stapling on;\n\
                 ssl_stapling_verify on;\n\
                 ssl_trusted_certificate {ca};\n\
                 {staple}\n\
                 location / {{ return 200 \"hello from nginx\\n\"; }}\n\
               }}\n\
             }}\n",
            cert = path(cert),
            key = path(key),
            ca = path(ca),
        );
        let conf_file = dir.join(format!("{run}.conf"));
        std::fs::write(&conf_file, conf).expect("nginx.conf");
        let error_log = dir.join(format!("{run}.error.log"));
        let mut daemon = Daemon::spawn(
            "nginx",
            Command::new(tool("nginx", "nginx"))
                .arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(&conf_file)
                .arg("-e")
                .arg(&error_log)
                .args(["-g", "daemon off;"]),
            error_log,
            "TERM",
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            daemon.check_alive();
            assert!(Instant::now() < deadline, "nginx does not listen:\n{}", daemon.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx { daemon, port }
    }

    /// One `openssl s_client` handshake asking for the OCSP staple; returns its output.
    fn s_client(&self, dir: &Path, ca: &Path) -> String {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{}", self.port)])
            .args(["-servername", NGINX_HOST, "-verify_hostname", NGINX_HOST])
            .args(["-status", "-verify_return_error", "-CAfile", path(ca)])
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .expect("run openssl s_client");
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(out.status.success(), "the handshake with nginx failed:\n{text}");
        assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
        text
    }

    /// `curl` to the site, trusting `ca`, with `--cert-status` when `status` is set;
    /// returns (success, stdout, stderr).
    fn curl(&self, ca: &Path, status: bool) -> (bool, String, String) {
        let mut cmd = Command::new("curl");
        // -q first: no ~/.curlrc.
        cmd.args(["-q", "-sS", "--noproxy", "*", "--max-time", "10"])
            .args(["--resolve", &format!("{NGINX_HOST}:{}:127.0.0.1", self.port)])
            .arg("--cacert")
            .arg(ca);
        if status {
            cmd.arg("--cert-status");
        }
        let out = cmd
            .arg(format!("https://{NGINX_HOST}:{}/", self.port))
            .output()
            .expect("run curl");
        (out.status.success(), stdout(&out), stderr(&out))
    }
}

fn curl_has_cert_status() -> bool {
    let out = Command::new("curl")
        .args(["--help", "all"])
        .output()
        .expect("run curl (install the Debian package curl; ./scripts/test.sh does)");
    stdout(&out).contains("--cert-status")
}

/// nginx with `ssl_stapling on; ssl_stapling_verify on;` and a hapki `server`
/// certificate: it finds the responder in the certificate's AIA, fetches hapki's
/// answer (HTTP/1.0 GET of the percent-encoded request) on the first handshakes,
/// verifies it against the CA and staples "good", which `openssl s_client -status`
/// shows and `curl --cert-status` accepts. Once the certificate is revoked a new
/// nginx is told "revoked" and, by design, staples nothing (it never staples a
/// status other than good), so `curl --cert-status` refuses it. hapki's revoked
/// answer given to nginx as `ssl_stapling_file` reaches clients as revoked with
/// its reason, and curl refuses that too.
#[test]
fn nginx_staples_hapki_ocsp_good_and_stops_stapling_once_the_certificate_is_revoked() {
    let node = Node::start();
    let work = node.work();
    let ca = node.ca_pem();
    let cert = node.issue(
        "nginx",
        "server",
        &[
            &format!("CN:{NGINX_HOST}"),
            &format!("subjectAltName:{NGINX_HOST},127.0.0.1"),
        ],
    );
    let key = work.join("nginx.key");
    // The certificate sends nginx to this node's responder, by IP: no resolver needed.
    let uri = ossl(work, &["x509", "-in", path(&cert), "-noout", "-ocsp_uri"]);
    assert_eq!(uri.trim(), format!("{}/ocsp", node.http_url()));
    let dir = work.join("nginx-prefix");
    std::fs::create_dir(&dir).expect("nginx dir");
    let port = free_port();
    let with_curl = curl_has_cert_status();
    if !with_curl {
        eprintln!("curl has no --cert-status here: its checks are skipped");
    }

    // 1. nginx fetches the answer on the first handshakes (lazily) and staples it.
    let nginx = Nginx::start(&dir, "good", port, &cert, &key, &ca, None);
    let deadline = Instant::now() + Duration::from_secs(20);
    let stapled = loop {
        let out = nginx.s_client(work, &ca);
        if out.contains("OCSP Response Status:") {
            break out;
        }
        assert!(
            out.contains("OCSP response: no response sent"),
            "no staple and no word about it:\n{out}"
        );
        // nginx logs why an answer was unusable (and only retries minutes later).
        let log = nginx.daemon.log();
        assert!(!log.contains("[error]"), "nginx refused hapki's OCSP answer:\n{log}");
        assert!(
            Instant::now() < deadline,
            "nginx never stapled an OCSP response:\n{log}\n{out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(stapled.contains("OCSP Response Status: successful"), "{stapled}");
    assert!(stapled.contains("Cert Status: good"), "{stapled}");
    assert!(!nginx.daemon.log().contains("[error]"), "{}", nginx.daemon.log());
    if with_curl {
        let (ok, body, err) = nginx.curl(&ca, true);
        assert!(ok, "curl --cert-status refused a good staple: {err}");
        assert_eq!(body, "hello from nginx\n");
    }
    drop(nginx);

    // 2. Revoked: a fresh nginx (the staple is cached) asks again, is told "revoked"
    //    and, as nginx does, staples nothing rather than a revoked status.
    revoke(&node, &cert, "keyCompromise");
    let nginx = Nginx::start(&dir, "revoked", port, &cert, &key, &ca, None);
    let deadline = Instant::now() + Duration::from_secs(20);
    const TOLD_REVOKED: &str = "certificate status \"revoked\" in the OCSP response";
    let out = loop {
        let out = nginx.s_client(work, &ca);
        assert!(
            !out.contains("Cert Status: good"),
            "nginx stapled 'good' for a revoked certificate:\n{out}"
        );
        if nginx.daemon.log().contains(TOLD_REVOKED) {
            break nginx.s_client(work, &ca);
        }
        assert!(
            Instant::now() < deadline,
            "nginx was never told the certificate is revoked:\n{}",
            nginx.daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(out.contains("OCSP response: no response sent"), "{out}");
    if with_curl {
        let (ok, _, err) = nginx.curl(&ca, true);
        assert!(!ok, "curl --cert-status accepted a server without a staple");
        assert!(err.contains("No OCSP response received"), "{err}");
        // The same request without --cert-status goes through: the refusal is the staple's.
        let (ok, body, err) = nginx.curl(&ca, false);
        assert!(ok, "{err}");
        assert_eq!(body, "hello from nginx\n");
    }
    drop(nginx);

    // 3. hapki's revoked answer stapled from a file (ssl_stapling_file): clients see
    //    the revocation and its reason, and curl refuses the server.
    let staple = dir.join("staple.der");
    let fetched = ossl(
        work,
        &[
            "ocsp",
            "-issuer",
            path(&ca),
            "-cert",
            path(&cert),
            "-url",
            &format!("{}/ocsp", node.http_url()),
            "-CAfile",
            path(&ca),
            "-no_nonce",
            "-respout",
            path(&staple),
        ],
    );
    assert!(fetched.contains("Response verify OK"), "{fetched}");
    assert!(fetched.contains(": revoked"), "{fetched}");
    let nginx = Nginx::start(&dir, "file", port, &cert, &key, &ca, Some(&staple));
    let out = nginx.s_client(work, &ca);
    assert!(out.contains("OCSP Response Status: successful"), "{out}");
    assert!(out.contains("Cert Status: revoked"), "{out}");
    assert!(out.contains("Revocation Reason: keyCompromise"), "{out}");
    if with_curl {
        let (ok, _, err) = nginx.curl(&ca, true);
        assert!(!ok, "curl --cert-status accepted a revoked staple");
        assert!(err.contains("revocation reason: keyCompromise"), "{err}");
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL with mutual TLS and certificate authentication
// ---------------------------------------------------------------------------

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb`.
fn postgres_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!("no /usr/lib/postgresql/*/bin/initdb: install the Debian package postgresql (./scripts/test.sh does)")
    })
}

fn id(args: &[&str]) -> Option<u32> {
    let out = Command::new("id").args(args).output().expect("run id");
    if !out.status.success() {
        return None;
    }
    stdout(&out).trim().parse().ok()
}

/// Whom postgres runs as: `None` for the current user; when that is root (which
/// postgres refuses) the `postgres` account (Debian's package makes it), else `nobody`.
fn postgres_owner() -> Option<(u32, u32)> {
    if id(&["-u"]) != Some(0) {
        return None;
    }
    ["postgres", "nobody"]
        .iter()
        .find_map(|user| Some((id(&["-u", user])?, id(&["-g", user])?)))
        .map(Some)
        .expect("running as root and neither a postgres nor a nobody account exists")
}

/// A throwaway PostgreSQL cluster in its own directory.
struct Postgres {
    daemon: Daemon,
    dir: tempfile::TempDir,
    owner: Option<(u32, u32)>,
    port: u16,
}

/// Writes `data` to `<dir>/<name>` with `mode`, owned by `owner` when given.
fn put(dir: &Path, owner: Option<(u32, u32)>, name: &str, data: impl AsRef<[u8]>, mode: u32) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, data).unwrap_or_else(|e| panic!("write {name}: {e}"));
    chmod(&file, mode);
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&file, Some(uid), Some(gid)).expect("chown");
    }
    file
}

impl Postgres {
    /// Runs a postgres binary as the database's account.
    fn command(bin: &Path, dir: &Path, owner: Option<(u32, u32)>) -> Command {
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir).env("HOME", dir).env("LC_ALL", "C");
        if let Some((uid, gid)) = owner {
            // std drops the supplementary groups when it changes uid as root.
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    /// initdb, then TLS with hapki's server certificate and key, the CA and the CRL,
    /// client certificates required and mapped by CN, and start on a free port.
    fn start(log_dir: &Path, server_cert: &Path, server_key: &Path, ca: &Path, crl: &[u8]) -> Postgres {
        let bin = postgres_bin();
        let owner = postgres_owner();
        let dir = tempfile::tempdir().expect("postgres dir");
        let d = path(dir.path()).to_string();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown the cluster directory");
        }
        let data = dir.path().join("data");
        let out = Postgres::command(&bin.join("initdb"), dir.path(), owner)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "--locale=C",
                "-E",
                "UTF8",
            ])
            .output()
            .expect("run initdb");
        assert!(out.status.success(), "initdb failed:\n{}{}", stdout(&out), stderr(&out));

        let put = |name: &str, data: &[u8], mode: u32| put(dir.path(), owner, name, data, mode);
        put("server.pem", &std::fs::read(server_cert).expect("server cert"), 0o644);
        put("server.key", &std::fs::read(server_key).expect("server key"), 0o600);
        put("ca.pem", &std::fs::read(ca).expect("ca.pem"), 0o644);
        put("crl.pem", crl, 0o644);
        // Only TLS from loopback, and only with a certificate whose CN is the user name.
        put("data/pg_hba.conf", b"hostssl all postgres 127.0.0.1/32 cert\n", 0o600);
        let port = free_port();
        let conf = std::fs::read_to_string(data.join("postgresql.conf")).expect("postgresql.conf");
        let conf = format!(
            "{conf}\n# hapki interop test\n\
             listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = '{d}'\n\
             max_connections = 10\n\
             fsync = off\n\
             ssl = on\n\
             ssl_cert_file = '{d}/server.pem'\n\
             ssl_key_file = '{d}/server.key'\n\
             ssl_ca_file = '{d}/ca.pem'\n\
             ssl_crl_file = '{d}/crl.pem'\n"
        );
        put("data/postgresql.conf", conf.as_bytes(), 0o600);

        let mut cmd = Postgres::command(&bin.join("postgres"), dir.path(), owner);
        cmd.arg("-D").arg(&data);
        // SIGQUIT: immediate shutdown, the postmaster ends its own children.
        let mut daemon = Daemon::spawn("postgres", &mut cmd, log_dir.join("postgres.log"), "QUIT");
        daemon.wait_log("to accept connections", Duration::from_secs(30), |log| {
            log.contains("database system is ready to accept connections")
        });
        Postgres {
            daemon,
            dir,
            owner,
            port,
        }
    }

    /// Replaces a file of the cluster directory, keeping the database's ownership.
    fn put(&self, name: &str, data: impl AsRef<[u8]>, mode: u32) -> PathBuf {
        put(self.dir.path(), self.owner, name, data, mode)
    }

    /// `psql` from `work` (HOME too, so no ~/.postgresql files) to `host` (which
    /// `sslmode=verify-full` checks against the server certificate) at 127.0.0.1,
    /// with a client certificate when given; returns (success, stdout, stderr).
    fn psql(
        &self,
        work: &Path,
        host: &str,
        ca: &Path,
        client: Option<(&Path, &Path)>,
        sql: &str,
    ) -> (bool, String, String) {
        let mut conninfo = format!(
            "host={host} hostaddr=127.0.0.1 port={} dbname=postgres user=postgres \
             sslmode=verify-full sslrootcert='{}' connect_timeout=10",
            self.port,
            path(ca)
        );
        if let Some((cert, key)) = client {
            conninfo.push_str(&format!(" sslcert='{}' sslkey='{}'", path(cert), path(key)));
        }
        let mut cmd = Command::new(postgres_bin().join("psql"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PG") {
                cmd.env_remove(k);
            }
        }
        let out = cmd
            .args(["-X", "-A", "-t", "-d", &conninfo, "-c", sql])
            .current_dir(work)
            .env("HOME", work)
            .output()
            .expect("run psql");
        (out.status.success(), stdout(&out), stderr(&out))
    }
}

/// The seed use case: a PostgreSQL server with a hapki `db-server` certificate,
/// `ssl_ca_file` = hapki's CA, `ssl_crl_file` = hapki's CRL and `hostssl ... cert`
/// authentication. psql with a hapki `db-client` certificate (CN postgres) and
/// `sslmode=verify-full` logs in by IP and by DNS name, and the server reports the
/// client's DN and hapki's issuer; a wrong host name, a CN=postgres certificate from
/// another CA and no certificate are refused; after `hapki cert revoke`, the CRL
/// fetched again and a reload, the revoked certificate is refused and another
/// hapki certificate still logs in.
#[test]
fn postgres_accepts_hapki_db_certificates_for_mutual_tls_and_refuses_foreign_and_revoked_ones() {
    let node = Node::start();
    let work = node.work();
    let ca = node.ca_pem();
    let server = node.issue(
        "db1",
        "db-server",
        &["CN:localhost", "subjectAltName:localhost,127.0.0.1"],
    );
    let client = node.issue("pgclient", "db-client", &["--cn", "postgres"]);
    let spare = node.issue("pgspare", "db-client", &["--cn", "postgres"]);
    let client_key = work.join("pgclient.key");
    let spare_key = work.join("pgspare.key");
    let crl_url = format!("{}/v1/crl.pem", node.http_url());
    let fetch_crl = || -> Vec<u8> {
        let out = Command::new("curl")
            .args(["-q", "-fsS", "--noproxy", "*", "--max-time", "10", &crl_url])
            .output()
            .expect("run curl");
        assert!(out.status.success(), "curl {crl_url}: {}", stderr(&out));
        assert!(stdout(&out).starts_with("-----BEGIN X509 CRL-----"), "{}", stdout(&out));
        out.stdout
    };
    let pg = Postgres::start(work, &server, &work.join("db1.key"), &ca, &fetch_crl());
    let who = "select ssl, client_dn, issuer_dn from pg_stat_ssl where pid = pg_backend_pid()";

    // The hapki client certificate logs in as postgres; each side verified the other.
    let (ok, out, err) = pg.psql(work, "127.0.0.1", &ca, Some((&client, &client_key)), who);
    assert!(
        ok,
        "psql with the hapki db-client certificate failed: {err}\n{}",
        pg.daemon.log()
    );
    let root = root_cn(&node);
    let seen: Vec<&str> = out.trim().split('|').collect();
    assert_eq!(seen.first(), Some(&"t"), "{out}");
    assert_eq!(seen.get(1), Some(&"/CN=postgres"), "{out}");
    assert!(
        seen.get(2).is_some_and(|i| i.ends_with(&format!("/CN={root}"))),
        "the server saw another issuer: {out}"
    );
    let (ok, out, err) = pg.psql(work, "localhost", &ca, Some((&client, &client_key)), "select 1");
    assert!(ok && out.trim() == "1", "by the DNS name: {err}{out}");

    // verify-full really checks the name in hapki's server certificate.
    let (ok, _, err) = pg.psql(work, "db.other.test", &ca, Some((&client, &client_key)), "select 1");
    assert!(!ok, "psql accepted a server certificate for another name");
    assert!(err.contains("does not match host name \"db.other.test\""), "{err}");

    // A certificate for CN=postgres from another CA is refused, and so is none at all.
    let (foreign, foreign_key) = foreign_cert(work, "foreign-pg", "postgres");
    let (ok, _, err) = pg.psql(work, "127.0.0.1", &ca, Some((&foreign, &foreign_key)), "select 1");
    assert!(!ok, "postgres accepted a client certificate from another CA");
    assert!(err.contains("unknown ca"), "{err}");
    let (ok, _, err) = pg.psql(work, "127.0.0.1", &ca, None, "select 1");
    assert!(!ok, "postgres accepted a client without a certificate");
    assert!(err.contains("connection requires a valid client certificate"), "{err}");

    // Revoked in hapki, the CRL fetched again and reloaded (SIGHUP): refused; another
    // certificate from the same CA still logs in.
    revoke(&node, &client, "keyCompromise");
    pg.put("crl.pem", fetch_crl(), 0o644);
    pg.daemon.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (ok, _, err) = pg.psql(work, "127.0.0.1", &ca, Some((&client, &client_key)), "select 1");
        if !ok {
            assert!(err.contains("certificate revoked"), "{err}\n{}", pg.daemon.log());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "postgres still accepts the revoked certificate:\n{}",
            pg.daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, out, err) = pg.psql(work, "127.0.0.1", &ca, Some((&spare, &spare_key)), "select 1");
    assert!(
        ok && out.trim() == "1",
        "a good certificate was refused after the CRL reload: {err}"
    );
}

// ---------------------------------------------------------------------------
// Python's ssl module, both ends
// ---------------------------------------------------------------------------

/// One TLS server (client certificate required) and one TLS client in one Python
/// process; prints what each side saw as JSON.
const TLS_PAIR_PY: &str = r#"
import base64, json, socket, ssl, sys, threading, urllib.request

ca, srv_cert, srv_key, cli_cert, cli_key, host = sys.argv[1:7]
crl_url = sys.argv[7] if len(sys.argv) > 7 else None
result = {}

def names(cert, field):
    return {k: v for rdn in cert.get(field, ()) for (k, v) in rdn}

server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
server_ctx.load_cert_chain(srv_cert, srv_key)
server_ctx.load_verify_locations(cafile=ca)
server_ctx.verify_mode = ssl.CERT_REQUIRED
if crl_url:
    # The CRL from the distribution point, as DER, loaded like any CRL file (PEM).
    with urllib.request.urlopen(crl_url, timeout=10) as resp:
        result["crl_content_type"] = resp.headers.get("Content-Type")
        der = resp.read()
    crl_file = cli_cert + ".crl.pem"
    with open(crl_file, "w") as f:
        f.write("-----BEGIN X509 CRL-----\n" + base64.encodebytes(der).decode() + "-----END X509 CRL-----\n")
    server_ctx.load_verify_locations(cafile=crl_file)
    server_ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF

listener = socket.create_server(("127.0.0.1", 0))
listener.settimeout(20)
port = listener.getsockname()[1]

def serve():
    try:
        conn, _ = listener.accept()
        conn.settimeout(20)
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            peer = tls.getpeercert()
            result["server"] = {"ok": True, "peer_subject": names(peer, "subject"),
                                "peer_issuer": names(peer, "issuer"), "version": tls.version()}
            tls.sendall(("hello " + names(peer, "subject").get("commonName", "?") + "\n").encode())
    except Exception as e:
        result["server"] = {"ok": False, "error": f"{type(e).__name__}: {e}"}

thread = threading.Thread(target=serve)
thread.start()
client_ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
client_ctx.load_cert_chain(cli_cert, cli_key)
try:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        with client_ctx.wrap_socket(raw, server_hostname=host) as tls:
            peer = tls.getpeercert()
            # With TLS 1.3 a refused client certificate shows on the first read.
            line = tls.recv(200).decode()
            result["client"] = {"ok": True, "peer_subject": names(peer, "subject"),
                                "peer_san": [list(s) for s in peer.get("subjectAltName", ())],
                                "peer_ocsp": list(peer.get("OCSP", ())),
                                "peer_crl": list(peer.get("crlDistributionPoints", ())),
                                "read": line}
except Exception as e:
    result["client"] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
thread.join()
listener.close()
print(json.dumps(result))
"#;

/// Runs the Python pair in `dir`; returns its JSON report.
fn tls_pair(
    dir: &Path,
    ca: &Path,
    server: (&Path, &Path),
    client: (&Path, &Path),
    host: &str,
    crl_url: Option<&str>,
) -> serde_json::Value {
    let script = dir.join("tls_pair.py");
    if !script.exists() {
        std::fs::write(&script, TLS_PAIR_PY).expect("write tls_pair.py");
    }
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .args([ca, server.0, server.1, client.0, client.1])
        .arg(host)
        .args(crl_url)
        .current_dir(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("no_proxy", "*");
    let out = cmd
        .output()
        .expect("run python3 (install the Debian package python3; ./scripts/test.sh does)");
    assert!(
        out.status.success(),
        "python3 failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("no JSON from python ({e}):\n{}", stdout(&out)))
}

/// The error one side reported, or a panic if it succeeded.
fn refused<'a>(report: &'a serde_json::Value, side: &str) -> &'a str {
    assert_eq!(report[side]["ok"], false, "the {side} should have failed: {report}");
    report[side]["error"].as_str().expect("error")
}

/// Python's `ssl` module at both ends: a server with a hapki `server` certificate
/// requiring client certificates, a client with a hapki `client` certificate; each
/// side verifies the other against hapki's CA and sees its subject, and the client
/// sees the SANs, the OCSP URL and the CDP. A wrong host name, a client certificate
/// from another CA and a hapki `server` certificate used as a client certificate
/// (wrong EKU) are refused. With the CRL fetched from the certificate's CDP, a
/// client passes, is refused once revoked, and another client still passes.
#[test]
fn python_ssl_runs_mutual_tls_on_hapki_certificates_and_honours_the_crl() {
    let node = Node::start();
    let work = node.work();
    let ca = node.ca_pem();
    let host = "py.hapki.test";
    let srv = node.issue(
        "pysrv",
        "server",
        &[&format!("CN:{host}"), &format!("subjectAltName:{host},127.0.0.1")],
    );
    let srv_key = work.join("pysrv.key");
    let alice = node.issue("alice", "client", &["--cn", "alice"]);
    let alice_key = work.join("alice.key");
    let server = (srv.as_path(), srv_key.as_path());
    let root = root_cn(&node);

    // Both hapki certificates: each side verifies the other and sees its subject.
    let r = tls_pair(work, &ca, server, (&alice, &alice_key), host, None);
    assert_eq!(r["server"]["ok"], true, "{r}");
    assert_eq!(r["server"]["peer_subject"]["commonName"], "alice", "{r}");
    assert_eq!(r["server"]["peer_issuer"]["commonName"], root.as_str(), "{r}");
    assert_eq!(r["client"]["ok"], true, "{r}");
    assert_eq!(r["client"]["peer_subject"]["commonName"], host, "{r}");
    let sans = r["client"]["peer_san"].as_array().expect("SANs");
    assert!(sans.contains(&serde_json::json!(["DNS", host])), "{r}");
    assert!(sans.contains(&serde_json::json!(["IP Address", "127.0.0.1"])), "{r}");
    assert_eq!(
        r["client"]["peer_ocsp"],
        serde_json::json!([format!("{}/ocsp", node.http_url())]),
        "{r}"
    );
    let cdp = r["client"]["peer_crl"][0]
        .as_str()
        .unwrap_or_else(|| panic!("no CDP: {r}"))
        .to_string();
    assert!(cdp.starts_with(&format!("{}/", node.http_url())), "{cdp}");
    assert_eq!(r["client"]["read"], "hello alice\n", "{r}");

    // The client checks the server's names.
    let r = tls_pair(work, &ca, server, (&alice, &alice_key), "other.hapki.test", None);
    assert!(refused(&r, "client").contains("Hostname mismatch"), "{r}");

    // A client certificate from another CA is refused by the server.
    let (foreign, foreign_key) = foreign_cert(work, "foreign-py", "alice");
    let r = tls_pair(work, &ca, server, (&foreign, &foreign_key), host, None);
    assert!(refused(&r, "server").contains("certificate verify failed"), "{r}");
    assert!(refused(&r, "client").contains("unknown ca"), "{r}");

    // A hapki server certificate (serverAuth only) is no client certificate.
    let r = tls_pair(work, &ca, server, server, host, None);
    assert!(refused(&r, "server").contains("unsuitable certificate purpose"), "{r}");

    // With the CRL from the distribution point: alice passes, then is refused once
    // revoked, while bob (not revoked) still passes.
    let r = tls_pair(work, &ca, server, (&alice, &alice_key), host, Some(&cdp));
    assert_eq!(r["crl_content_type"], "application/pkix-crl", "{r}");
    assert_eq!(r["server"]["ok"], true, "{r}");
    assert_eq!(r["client"]["ok"], true, "{r}");
    revoke(&node, &alice, "keyCompromise");
    let r = tls_pair(work, &ca, server, (&alice, &alice_key), host, Some(&cdp));
    assert!(refused(&r, "server").contains("certificate revoked"), "{r}");
    assert!(refused(&r, "client").contains("certificate revoked"), "{r}");
    let bob = node.issue("bob", "client", &["--cn", "bob"]);
    let r = tls_pair(work, &ca, server, (&bob, &work.join("bob.key")), host, Some(&cdp));
    assert_eq!(r["server"]["peer_subject"]["commonName"], "bob", "{r}");
    assert_eq!(r["client"]["read"], "hello bob\n", "{r}");
}

/// A Java program (run from source by `java`, JDK 11+) that validates a chain
/// with the JDK's own PKIX validator against one trust anchor, checking the end
/// entity's revocation through OCSP (the AIA URL) or the CRL (the CDP URL) with
/// no fallback, as a Java client with revocation checking enabled does. Prints
/// `valid` or `invalid <REASON>: <message>`.
const PKIX_JAVA: &str = r#"
import java.io.FileInputStream;
import java.io.InputStream;
import java.security.cert.*;
import java.util.*;

public class Pkix {
    public static void main(String[] args) throws Exception {
        String mode = args[2];
        if (mode.equals("crl")) System.setProperty("com.sun.security.enableCRLDP", "true");
        CertificateFactory cf = CertificateFactory.getInstance("X.509");
        X509Certificate root;
        try (InputStream in = new FileInputStream(args[0])) {
            root = (X509Certificate) cf.generateCertificate(in);
        }
        List<X509Certificate> chain = new ArrayList<>();
        try (InputStream in = new FileInputStream(args[1])) {
            for (Certificate c : cf.generateCertificates(in)) chain.add((X509Certificate) c);
        }
        chain.removeIf(c -> c.equals(root));
        CertPathValidator validator = CertPathValidator.getInstance("PKIX");
        PKIXRevocationChecker checker = (PKIXRevocationChecker) validator.getRevocationChecker();
        EnumSet<PKIXRevocationChecker.Option> options = EnumSet.of(
            PKIXRevocationChecker.Option.NO_FALLBACK, PKIXRevocationChecker.Option.ONLY_END_ENTITY);
        if (mode.equals("crl")) options.add(PKIXRevocationChecker.Option.PREFER_CRLS);
        checker.setOptions(options);
        PKIXParameters params = new PKIXParameters(Set.of(new TrustAnchor(root, null)));
        params.addCertPathChecker(checker);
        try {
            validator.validate(cf.generateCertPath(chain), params);
            System.out.println("valid");
        } catch (CertPathValidatorException e) {
            System.out.println("invalid " + e.getReason() + ": " + e.getMessage());
        }
    }
}
"#;

/// Runs `Pkix.java` in `dir` on `chain` against `root` with `mode` `ocsp` or `crl`.
fn java_pkix(dir: &Path, root: &Path, chain: &Path, mode: &str) -> String {
    let source = dir.join("Pkix.java");
    if !source.exists() {
        std::fs::write(&source, PKIX_JAVA).expect("write Pkix.java");
    }
    let out = Command::new(tool("java", "default-jdk-headless"))
        .arg(&source)
        .args([root, chain])
        .arg(mode)
        .current_dir(dir)
        .env("no_proxy", "*")
        .output()
        .expect("run java");
    assert!(out.status.success(), "java failed:\n{}{}", stdout(&out), stderr(&out));
    stdout(&out).trim().to_string()
}

/// The JDK's PKIX validator (what a Java TLS client with revocation checking
/// uses) accepts a hapki chain, asks hapki's OCSP responder named in the
/// certificate (Java sends small requests as GET) and accepts its delegated
/// responder, and reads the CRL from the distribution point: a good certificate
/// validates both ways; once revoked, both ways refuse it with the reason hapki
/// recorded, while a sibling that is not revoked still validates.
#[test]
fn java_pkix_checks_revocation_through_hapki_ocsp_and_crl() {
    let node = Node::start();
    let work = node.work();
    let ca = node.ca_pem();
    let leaf = node.issue(
        "javasrv",
        "server",
        &["--cn", "java.hapki.test", "--san", "java.hapki.test"],
    );
    let sibling = node.issue("javasib", "client", &["--cn", "sibling"]);

    for mode in ["ocsp", "crl"] {
        assert_eq!(java_pkix(work, &ca, &leaf, mode), "valid", "{mode}");
    }
    revoke(&node, &leaf, "keyCompromise");
    for mode in ["ocsp", "crl"] {
        let verdict = java_pkix(work, &ca, &leaf, mode);
        assert!(verdict.starts_with("invalid REVOKED:"), "{mode}: {verdict}");
        assert!(verdict.contains("KEY_COMPROMISE"), "{mode}: {verdict}");
        assert_eq!(java_pkix(work, &ca, &sibling, mode), "valid", "{mode}");
    }
}
