//! The Debian package as an operator installs it: `scripts/test.sh` builds it with
//! `cargo deb`; this installs it with `dpkg -i`, checks what it put where (the binary, the
//! hardened unit, a commented node.toml readable by the `hapki` group only, the `hapki`
//! user and its 0700 data directory), edits the node.toml's ports as an operator edits it,
//! runs the unit's `ExecStart` line by hand as the unit's user until the health route
//! answers, then purges the package, which keeps the data directory.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{free_port, stderr, stdout, wait_for, HAPKI};

const UNIT: &str = "/lib/systemd/system/hapki.service";
const CONFIG: &str = "/etc/hapki/node.toml";
const DATA: &str = "/var/lib/hapki";

/// The package `cargo deb` wrote under target/debian.
fn package() -> PathBuf {
    let dir = Path::new(HAPKI)
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("debian");
    let version = env!("CARGO_PKG_VERSION");
    std::fs::read_dir(&dir)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("hapki_{version}-")))
        })
        .unwrap_or_else(|| {
            panic!(
                "no hapki_{version} package in {}: build it with `cargo deb -o target/debian/` \
                 (scripts/test.sh does)",
                dir.display()
            )
        })
}

/// `args` as a command run as root: directly when this is root, else through `sudo -n`.
fn as_root(args: &[&str]) -> Command {
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new(args[0]);
        c.args(&args[1..]);
        c
    } else {
        let mut c = Command::new("sudo");
        c.arg("-n").args(args);
        c
    }
}

/// Runs `args` as root.
fn root(args: &[&str]) -> Output {
    as_root(args).output().unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

#[track_caller]
fn root_ok(args: &[&str]) -> String {
    let out = root(args);
    assert!(out.status.success(), "{args:?}: {}{}", stdout(&out), stderr(&out));
    stdout(&out)
}

/// Purges the package and what it left, even when the test fails.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = root(&["pkill", "-u", "hapki", "-x", "hapki"]);
        let _ = root(&["dpkg", "--purge", "hapki"]);
        let _ = root(&["rm", "-rf", DATA, "/etc/hapki"]);
    }
}

#[test]
fn the_debian_package_installs_a_node_that_its_unit_starts_and_purges_cleanly() {
    let deb = package();
    drop(Installed); // a package left by an earlier run
    let _cleanup = Installed;
    let out = root_ok(&["dpkg", "-i", &deb.display().to_string()]);
    assert!(
        out.contains("edit /etc/hapki/node.toml"),
        "postinst says what to do next: {out}"
    );

    let version = Command::new("/usr/bin/hapki")
        .arg("--version")
        .output()
        .expect("the installed binary");
    assert!(
        stdout(&version).contains(env!("CARGO_PKG_VERSION")),
        "{}",
        stdout(&version)
    );
    assert!(
        root(&["id", "hapki"]).status.success(),
        "the package makes the hapki user"
    );
    let config = std::fs::metadata(CONFIG).expect("node.toml");
    assert_eq!(config.permissions().mode() & 0o777, 0o640, "node.toml is 0640");
    assert_eq!(config.uid(), 0, "node.toml belongs to root");
    let data = std::fs::metadata(DATA).expect("the data directory");
    assert_eq!(data.permissions().mode() & 0o777, 0o700, "the data directory is 0700");
    let unit = std::fs::read_to_string(UNIT).expect("the unit");
    for line in [
        "User=hapki",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
    ] {
        assert!(unit.lines().any(|l| l.trim() == line), "the unit sets {line}");
    }
    if Path::new("/run/systemd/system").exists() {
        let out = root(&["systemd-analyze", "verify", UNIT]);
        assert!(out.status.success(), "systemd-analyze verify: {}", stderr(&out));
    }

    // As the operator would before starting it: the node's ports (free ones here).
    let (https, http, channel) = (free_port(), free_port(), free_port());
    let edited = std::fs::read_to_string(CONFIG)
        .unwrap()
        .replace("0.0.0.0:8443", &format!("127.0.0.1:{https}"))
        .replace("0.0.0.0:8080", &format!("127.0.0.1:{http}"))
        .replace("0.0.0.0:7443", &format!("127.0.0.1:{channel}"));
    let tmp = tempfile::tempdir().unwrap();
    let staged = tmp.path().join("node.toml");
    std::fs::write(&staged, edited).unwrap();
    root_ok(&[
        "install",
        "-m",
        "0640",
        "-o",
        "root",
        "-g",
        "hapki",
        &staged.display().to_string(),
        CONFIG,
    ]);

    // The unit's ExecStart, run by hand as its user.
    let exec = unit
        .lines()
        .find_map(|l| l.trim().strip_prefix("ExecStart="))
        .expect("an ExecStart line")
        .to_string();
    let user = unit
        .lines()
        .find_map(|l| l.trim().strip_prefix("User="))
        .expect("a User line")
        .to_string();
    let words: Vec<&str> = exec.split_whitespace().collect();
    let mut runuser = vec!["runuser", "-u", user.as_str(), "--"];
    runuser.extend_from_slice(&words);
    let mut cmd = as_root(&runuser);
    let log = std::fs::File::create(tmp.path().join("server.log")).unwrap();
    let mut server = cmd
        .current_dir("/")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("run ExecStart");
    let health = format!("http://127.0.0.1:{http}/v1/sys/health");
    let mut body = String::new();
    wait_for("the installed node's health to answer", Duration::from_secs(60), || {
        if let Ok(Some(status)) = server.try_wait() {
            panic!(
                "the installed node exited ({status}):\n{}",
                std::fs::read_to_string(tmp.path().join("server.log")).unwrap_or_default()
            );
        }
        let out = Command::new("curl").args(["-s", &health]).output().expect("curl");
        body = stdout(&out);
        out.status.success() && !body.is_empty()
    });
    assert!(
        body.contains("not clustered"),
        "a fresh node waits to form or join a cluster: {body}"
    );
    let owned = std::fs::metadata(Path::new(DATA).join("node-id")).expect("the node wrote its data directory");
    let hapki_uid: u32 = root_ok(&["id", "-u", "hapki"]).trim().parse().unwrap();
    assert_eq!(owned.uid(), hapki_uid, "the node runs as the hapki user");
    let _ = root(&["pkill", "-u", "hapki", "-x", "hapki"]);
    let _ = server.wait();

    // Purged: the binary, the unit and the user go; the data directory stays.
    let out = root_ok(&["dpkg", "--purge", "hapki"]);
    assert!(
        !Path::new("/usr/bin/hapki").exists() && !Path::new(UNIT).exists(),
        "{out}"
    );
    assert!(Path::new(DATA).join("node-id").exists(), "purge keeps the data: {out}");
}
