#!/usr/bin/env bash
# One node at a million certificates: a dev node (release build) filled through the API in
# chunks of 100,000 (`hapki bench issue`), with issuance throughput at STORED certificates
# and on a second node holding 10,000, in turns (`hapki bench issue --concurrency 32
# --requests 5000`, three each), the node's RSS,
# the time from a restart to health 200, and the first page of `GET /v1/certs` with and
# without a filter. KEEP=DIR keeps the filled data directory there (the node stopped).
#
#   bench/scale.sh                    # STORED=1000000
#   SMOKE=1 bench/scale.sh            # 20,000
set -euo pipefail
cd "$(dirname "$0")/.."

STORED=${STORED:-1000000}
CHUNK=${CHUNK:-100000}
if [ -n "${SMOKE:-}" ]; then STORED=20000; CHUNK=10000; fi
source bench/lib.sh
machine

echo "== hapki $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
hp=$(free_port); hh=$(free_port)
start() {
    "$hapki" server --dev --data-dir "$work/hapki" --listen "127.0.0.1:$hp" --http-listen "127.0.0.1:$hh" >>"$work/hapki.log" 2>&1 &
    server=$!
    pids+=($server)
}
start
# A second node holds 10,000 for the rate to compare with. It is paused (SIGSTOP) while the
# other works, and the two are measured in turns at the end: this machine's speed drifts
# over a fill, so a rate taken before it is no measure for one taken after.
sp=$(free_port); sh=$(free_port)
"$hapki" server --dev --data-dir "$work/small" --listen "127.0.0.1:$sp" --http-listen "127.0.0.1:$sh" --cluster-listen "127.0.0.1:$(free_port)" >>"$work/small.log" 2>&1 &
small=$!
pids+=($small)
wait_http "https://127.0.0.1:$hp/v1/sys/health"
wait_http "https://127.0.0.1:$sp/v1/sys/health"
while [ ! -s "$work/hapki/admin-token" ] || [ ! -s "$work/small/admin-token" ]; do sleep 0.1; done
export HAPKI_URL="https://127.0.0.1:$hp" HAPKI_CA_CERT="$work/hapki/api-ca.pem" HAPKI_TOKEN="$(cat "$work/hapki/admin-token")"
on_small() { HAPKI_URL="https://127.0.0.1:$sp" HAPKI_CA_CERT="$work/small/api-ca.pem" HAPKI_TOKEN="$(cat "$work/small/admin-token")" "$@"; }
on_small "$hapki" bench issue --concurrency 32 --requests 10000 --output json >/dev/null
kill -STOP "$small"
"$hapki" bench issue --concurrency 32 --requests 10000 --output json >/dev/null
stored=10000
# The fill sends no idempotency keys: a node forgets a key after a day or two, so a store that
# grew to a million over months holds only its last days' keys. Filling with keys would measure
# a store that never runs its tidy. The rates are measured with keys, as clients send them.
t0=$(now)
while [ "$stored" -lt "$STORED" ]; do
    n=$((STORED - stored < CHUNK ? STORED - stored : CHUNK))
    "$hapki" bench issue --concurrency 32 --requests "$n" --no-idempotency-key --output json >/dev/null
    stored=$((stored + n))
    echo "  $stored stored, $(echo "$(now) - $t0" | bc) s, RSS $(rss_mib "$server") MiB"
done
# Three turns of 5,000 each (c=32) on the full node, then on the small one, the other paused.
full=() few=()
rate() { "$@" bench issue --concurrency 32 --requests 5000 --output json | field certs_per_sec | cut -d. -f1; }
for _ in 1 2 3; do
    full+=("$(rate "$hapki")")
    kill -STOP "$server"; kill -CONT "$small"
    few+=("$(on_small rate "$hapki")")
    kill -STOP "$small"; kill -CONT "$server"
done
kill -CONT "$small"; kill "$small"; wait "$small" 2>/dev/null || true
at_10k=$(median "${few[@]}") at_full=$(median "${full[@]}")
echo "issuance at 10,000 stored: $at_10k certs/s (runs: ${few[*]})"
echo "issuance at $stored stored: $at_full certs/s (runs: ${full[*]}; $(echo "scale=2; $at_full / $at_10k" | bc) of the rate at 10,000)"
stored=$((stored + 15000))
echo "RSS at $stored: $(rss_mib "$server") MiB; store $(du -sh "$work/hapki" | cut -f1)"

page() { curl -s -o /dev/null -w '%{time_total}' --cacert "$HAPKI_CA_CERT" -H "Authorization: Bearer $HAPKI_TOKEN" "$HAPKI_URL/v1/certs?$1"; }
issuer=$("$hapki" --output json ca list | python3 -c 'import json,sys; print(json.load(sys.stdin)["issuers"][0]["id"])')
# `hapki bench issue` names its certificates bench-0.example.com, bench-1.example.com, ...
# in every run, so a name is on about one certificate per 100,000-certificate run.
for q in "limit=100" "limit=100&status=valid" "limit=100&issuer=$issuer" "limit=100&status=revoked" \
    "limit=100&san=no-such-name" "limit=100&san=bench-7.example.com" "limit=100&subject=bench-7.example.com" \
    "limit=100&san=.example.com" "limit=100&san=.no-such.example" "limit=100&status=expired" \
    "limit=100&expiring_within=30d" "limit=100&expiring_within=800d"; do
    times=()
    for _ in 1 2 3; do times+=("$(page "$q")"); done
    echo "GET /v1/certs?$q: $(echo "scale=1; $(median "${times[@]}") * 1000 / 1" | bc) ms (${times[*]} s)"
done

kill "$server"
wait "$server" 2>/dev/null || true
t0=$(now)
start
for _ in $(seq 1 600); do curl -sf -o /dev/null --cacert "$HAPKI_CA_CERT" "$HAPKI_URL/v1/sys/health" && break; sleep 0.02; done
echo "restart to health 200 at $stored: $(echo "$(now) - $t0" | bc) s; RSS then $(rss_mib "$server") MiB"
if [ -n "${KEEP:-}" ]; then
    kill "$server"
    wait "$server" 2>/dev/null || true
    mv "$work/hapki" "$KEEP"
    echo "data directory kept in $KEEP"
fi
