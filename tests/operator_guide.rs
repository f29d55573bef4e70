//! `docs/operations.md` is run as written: every `sh` block, in order, in one `bash`, in an
//! empty directory with this build's `hapki` first on the PATH. The guide's three "hosts" are
//! directories with loopback addresses of their own (127.0.0.11 to .13, a load balancer on
//! .10), so the guide cannot go stale without this test failing. Every process the guide
//! starts is in the shell's process group, which is killed when the test ends.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::HAPKI;

/// The `sh` blocks of a Markdown file, in order.
fn sh_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(lines), "```") => {
                blocks.push(lines.join("\n"));
                current = None;
            }
            (Some(lines), l) => lines.push(l),
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "an `sh` block is not closed");
    blocks
}

/// Kills the guide's shell and everything it started.
struct Group(i32);

impl Drop for Group {
    fn drop(&mut self) {
        unsafe {
            libc::kill(-self.0, libc::SIGKILL);
        }
    }
}

#[test]
fn every_command_of_the_operator_guide_runs_as_written() {
    let guide = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md"))
        .expect("docs/operations.md");
    let blocks = sh_blocks(&guide);
    assert!(
        blocks.len() >= 12,
        "the guide has its commands in `sh` blocks ({} found)",
        blocks.len()
    );
    let work = tempfile::tempdir().unwrap();
    let bin = work.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(HAPKI, bin.join("hapki")).unwrap();
    let mut script = String::from("set -euo pipefail\n");
    for (i, block) in blocks.iter().enumerate() {
        script.push_str(&format!("echo '=== guide block {}' >&2\n{block}\n", i + 1));
    }
    std::fs::write(work.path().join("guide.sh"), script).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let log = std::fs::File::create(work.path().join("guide.log")).unwrap();
    let mut child = Command::new("bash")
        .arg("-x")
        .arg("guide.sh")
        .current_dir(work.path())
        .env("PATH", path)
        .env("HOME", work.path())
        .env_remove("HAPKI_URL")
        .env_remove("HAPKI_TOKEN")
        .env_remove("HAPKI_OUTPUT")
        .env_remove("HAPKI_LOG")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .process_group(0)
        .spawn()
        .expect("run bash");
    let _group = Group(child.id() as i32);
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the guide did not finish within 300 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(work.path().join("guide.log")).unwrap_or_default();
    if !status.success() {
        let logs: String = ["a", "b", "c", "d"]
            .iter()
            .map(|n| {
                let log = std::fs::read_to_string(work.path().join(format!("node-{n}/server.log"))).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                format!(
                    "--- node-{n}:\n{}\n",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect();
        let tail: Vec<&str> = output.lines().rev().take(80).collect();
        panic!(
            "the guide failed ({status}):\n{}\n{logs}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
}
