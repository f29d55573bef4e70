//! SoftHSM2 for the tests: a token directory of the test process's own (set in
//! `SOFTHSM2_CONF`, which the nodes it starts inherit), tokens made with
//! `softhsm2-util`, and `pkcs11-tool` (opensc) to look at them as an operator would.
//! The server crate's unit tests include this file too. Make a process's tokens
//! before it loads the module: a module sees the tokens there were when it started.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub const USER_PIN: &str = "1234";
const SO_PIN: &str = "5678";

/// The SoftHSM2 module; the tests need the Debian package `softhsm2`.
pub fn module() -> PathBuf {
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("SoftHSM2 is not installed: apt-get install softhsm2 (scripts/test.sh does)")
}

/// This process's token directory (made, and named in `SOFTHSM2_CONF`, on first use).
pub fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir").keep();
        let tokens = dir.join("tokens");
        std::fs::create_dir(&tokens).expect("token directory");
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .expect("write softhsm2.conf");
        std::env::set_var("SOFTHSM2_CONF", &conf);
        dir
    })
}

/// Makes a token labelled `label` with the user PIN [`USER_PIN`].
pub fn init_token(label: &str) {
    dir();
    let out = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            label,
            "--pin",
            USER_PIN,
            "--so-pin",
            SO_PIN,
        ])
        .output()
        .expect("run softhsm2-util (apt-get install softhsm2)");
    assert!(out.status.success(), "softhsm2-util: {}", stderr(&out));
}

/// A PIN file holding `pin`.
pub fn pin_file(name: &str, pin: &str) -> PathBuf {
    let path = dir().join(name);
    std::fs::write(&path, format!("{pin}\n")).expect("write the PIN file");
    path
}

/// `[root_of_trust]` for node.toml: the token `label`, its PIN in `pin_file`.
pub fn config(label: &str, pin_file: &Path) -> String {
    format!(
        "[root_of_trust]\nkind = \"pkcs11\"\nmodule = \"{}\"\ntoken_label = \"{label}\"\npin_file = \"{}\"\n",
        module().display(),
        pin_file.display()
    )
}

/// What `pkcs11-tool --list-objects` shows of the token's secret keys.
pub fn secret_keys(label: &str) -> String {
    let out = Command::new("pkcs11-tool")
        .arg("--module")
        .arg(module())
        .args([
            "--token-label",
            label,
            "--login",
            "--pin",
            USER_PIN,
            "--list-objects",
            "--type",
            "secrkey",
        ])
        .output()
        .expect("run pkcs11-tool (apt-get install opensc)");
    assert!(out.status.success(), "pkcs11-tool: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
