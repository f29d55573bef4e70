#!/usr/bin/env bash
# Failover: a three-node cluster (release build) under steady issuance through
# the CLI, its leader killed with `kill -9`, ROUNDS times. Two clients run side by
# side, both listing every node with the leader first:
#   with retries     (HAPKI_RETRY_SECS=20): the time from the kill to the first
#                    certificate issued by a request sent after it, and how many
#                    requests failed;
#   without retries  (HAPKI_RETRY_SECS=0): how many requests failed in the window.
# The killed node is restarted and catches up before the next round.
#
#   bench/failover.sh            # ROUNDS=5
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
source bench/lib.sh
declare -a url pid dir args
start_node() { # index
    "$hapki" "${args[$1]}" --data-dir "${dir[$1]}" ${args_rest[$1]} >>"$work/node$1.log" 2>&1 &
    pid[$1]=$!
    pids+=($!)
    wait_http "${url[$1]}/v1/cluster/status"
}
declare -a args_rest
for i in 0 1 2; do
    hp=$(free_port); hh=$(free_port); cp=$(free_port)
    dir[$i]="$work/n$i"; url[$i]="https://127.0.0.1:$hp"; args[$i]=server
    args_rest[$i]="--listen 127.0.0.1:$hp --http-listen 127.0.0.1:$hh --cluster-listen 127.0.0.1:$cp --node-name n$i"
    start_node $i
done
"$hapki" --url "${url[0]}" --ca-cert "${dir[0]}/api-ca.pem" --token "$(cat "${dir[0]}/bootstrap-token")" cluster new >/dev/null
export HAPKI_CA_CERT="${dir[0]}/api-ca.pem" HAPKI_TOKEN="$(cat "${dir[0]}/admin-token")" HAPKI_URL="${url[0]}"
for i in 1 2; do
    "$hapki" cluster fulljoin --member "${url[0]}" --newnode "${url[$i]}" --newnode-token "$(cat "${dir[$i]}/bootstrap-token")" \
        --newnode-ca-cert "${dir[$i]}/api-ca.pem" --yes 2>/dev/null
done
"$hapki" ca init --cn "failover root" >/dev/null
cd "$work"
"$hapki" csr load CN:load.example.com >/dev/null

load() { # retry-seconds urls log
    while [ ! -e "$work/stop" ]; do
        t0=$(date +%s.%N)
        if HAPKI_RETRY_SECS=$1 HAPKI_URL=$2 "$hapki" cert issue --csr load.csr --profile server --output json >/dev/null 2>&1; then r=ok; else r=fail; fi
        echo "$t0 $(date +%s.%N) $r" >>"$3"
    done
}

echo "round  failover_ms  failed_with_retries  failed_without_retries"
for round in $(seq 1 "$ROUNDS"); do
    leader_id=$("$hapki" --output json cluster info | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"])')
    leader=""
    for i in 0 1 2; do [ "$(cat "${dir[$i]}/node-id")" = "$leader_id" ] && leader=$i; done
    order="${url[$leader]}"
    for i in 0 1 2; do [ "$i" = "$leader" ] || order="$order,${url[$i]}"; done
    rm -f "$work/stop" "$work/with.log" "$work/without.log"
    load 20 "$order" "$work/with.log" & lw=$!
    load 0 "$order" "$work/without.log" & lo=$!
    sleep 2
    tkill=$(date +%s.%N)
    kill -9 "${pid[$leader]}"
    sleep 6
    touch "$work/stop"; wait $lw $lo
    python3 - "$tkill" "$work/with.log" "$work/without.log" "$round" <<'PY' | tee -a "$work/rounds.txt"
import sys
tkill = float(sys.argv[1])
def rows(path):
    return [(float(a), float(b), r) for a, b, r in (l.split() for l in open(path))]
w, wo = rows(sys.argv[2]), rows(sys.argv[3])
first = min(b for a, b, r in w if r == "ok" and a > tkill)
recovered = min(b for a, b, r in wo if r == "ok" and a > tkill)
failed_with = sum(1 for a, b, r in w if r == "fail")
failed_without = sum(1 for a, b, r in wo if r == "fail" and b >= tkill and a <= recovered)
print(f"{sys.argv[4]:>5}  {(first - tkill) * 1000:>11.0f}  {failed_with:>19}  {failed_without:>22}")
PY
    HAPKI_URL=$(IFS=,; echo "${url[*]}")
    export HAPKI_URL
    start_node "$leader"
    sleep 2
done
python3 - "$work/rounds.txt" <<'PY'
import statistics, sys
ms = [float(l.split()[1]) for l in open(sys.argv[1])]
print(f"failover over {len(ms)} rounds: median {statistics.median(ms):.0f} ms, max {max(ms):.0f} ms")
PY
