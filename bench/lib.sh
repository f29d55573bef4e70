# Shared by the benchmark scripts, sourced from the repository root: a scratch
# directory and the processes started for the run (both removed on exit), free
# loopback ports, waiting for a listener, RSS, and the release build of hapki.

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 300); do curl -sk -o /dev/null "$1" && return 0; sleep 0.1; done; echo "timeout waiting for $1" >&2; exit 1; }
rss_mib() { echo "scale=1; $(ps -o rss= -p "$1") / 1024" | bc; }
machine() {
    echo "== machine"
    nproc
    grep -m1 'model name' /proc/cpuinfo || true
}

cargo build --release -q
hapki=$PWD/target/release/hapki
