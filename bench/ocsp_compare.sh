#!/usr/bin/env bash
# OCSP through a dev node of each of two hapki builds, alternately, ROUNDS times, in one run:
# each node issues 300 certificates, then `hapki bench ocsp` of the second build asks for
# them by GET and by POST over plain HTTP, as bench/run.sh does.
#
#   bench/ocsp_compare.sh OLD-BINARY NEW-BINARY          # REQUESTS=30000 ROUNDS=3
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: bench/ocsp_compare.sh OLD-BINARY NEW-BINARY" >&2; exit 2; }
old=$(realpath "$1"); new=$(realpath "$2")
REQUESTS=${REQUESTS:-30000}; ROUNDS=${ROUNDS:-3}
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
declare -A http
start() { # label binary
    local d="$work/$1" hp hh
    hp=$(free_port); hh=$(free_port)
    "$2" server --dev --data-dir "$d" --listen "127.0.0.1:$hp" --http-listen "127.0.0.1:$hh" >"$d.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 300); do curl -sk -o /dev/null "https://127.0.0.1:$hp/v1/sys/health" && break; sleep 0.1; done
    while [ ! -s "$d/admin-token" ]; do sleep 0.1; done
    export HAPKI_URL="https://127.0.0.1:$hp" HAPKI_CA_CERT="$d/api-ca.pem" HAPKI_TOKEN="$(cat "$d/admin-token")"
    "$new" bench issue --concurrency 8 --requests 300 --output json >/dev/null
    "$new" --output json cert list --limit 300 |
        python3 -c 'import json,sys; [print(c["serial"]) for c in json.load(sys.stdin)["certs"]]' >"$d.serials"
    curl -sf -o "$d.ca" "http://127.0.0.1:$hh/v1/ca.pem"
    http[$1]="http://127.0.0.1:$hh"
}
start old "$old"
start new "$new"
for r in $(seq 1 "$ROUNDS"); do
    for label in old new; do
        for method in get post; do
            rate=$("$new" bench ocsp --responder "${http[$label]}/ocsp" --issuer "$work/$label.ca" \
                --serials "$work/$label.serials" --method "$method" --concurrency 32 --requests "$REQUESTS" --output json |
                python3 -c 'import json,sys; print(round(json.load(sys.stdin)["responses_per_sec"]))')
            echo "$label round $r: $method $rate answers/s"
        done
    done
done
