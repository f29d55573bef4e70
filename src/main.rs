//! The `hapki` binary: `hapki server` runs a node; every other command is a
//! client of a running node (`cert`, `ca`, `crl`, `profile`, `token`, `status`)
//! or a local tool that needs no server (`csr`, `bundle`, `cert show`).

mod cli;
mod client;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    if !args.is_server() {
        // A client piped into `head` ends quietly when the pipe closes, as other tools do,
        // instead of panicking on the next line it prints.
        // SAFETY: setting a signal's disposition to its default before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    // MALLOC_ARENA_MAX in the environment, where glibc reads it, has the last word.
    if args.is_server() && std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // glibc gives every thread that allocates an arena of its own (up to eight per core)
        // and keeps what each freed: a server's memory then grows with its threads, not its
        // work. Two arenas are enough for a node's threads (bench/scale.sh measures both).
        // SAFETY: a malloc tunable set before any thread starts.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
    // One crypto provider for every TLS client and server in the process.
    if rustls::crypto::aws_lc_rs::default_provider().install_default().is_err() {
        eprintln!("error: a TLS crypto provider was already installed");
        return ExitCode::from(1);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(e.code as u8)
        }
    }
}
