#!/usr/bin/env bash
# Issuance through a dev node of each of two hapki builds, alternately, ROUNDS times, in
# one run: what a change costs or gains, with the same load generator (`hapki bench issue`
# of the second build) against both.
#
#   bench/compare.sh OLD-BINARY NEW-BINARY            # C=32 REQUESTS=5000 ROUNDS=3
#   C=1 REQUESTS=1000 bench/compare.sh old/hapki target/release/hapki
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: bench/compare.sh OLD-BINARY NEW-BINARY" >&2; exit 2; }
old=$(realpath "$1"); new=$(realpath "$2")
C=${C:-32}; REQUESTS=${REQUESTS:-5000}; ROUNDS=${ROUNDS:-3}
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
run() { # label binary round
    local d="$work/$1-$3" hp hh
    hp=$(free_port); hh=$(free_port)
    "$2" server --dev --data-dir "$d" --listen "127.0.0.1:$hp" --http-listen "127.0.0.1:$hh" >"$d.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 1 300); do curl -sk -o /dev/null "https://127.0.0.1:$hp/v1/sys/health" && break; sleep 0.1; done
    HAPKI_URL="https://127.0.0.1:$hp" HAPKI_CA_CERT="$d/api-ca.pem" HAPKI_TOKEN="$(cat "$d/admin-token")" \
        "$new" bench issue --concurrency "$C" --requests "$REQUESTS" --output json >"$d.json"
    python3 - "$d.json" "$1" "$3" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:4} round {sys.argv[3]}: {r['certs_per_sec']:.0f}/s p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms failed {r['failed']}")
PY
    kill "$pid"; wait "$pid" 2>/dev/null || true
}
echo "== $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), c=$C, $REQUESTS requests"
for r in $(seq 1 "$ROUNDS"); do run old "$old" "$r"; run new "$new" "$r"; done
