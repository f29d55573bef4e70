#!/usr/bin/env bash
# New node ready, at growing store sizes: a one-node cluster (release build) is filled at
# full speed with `hapki bench issue` (the fill's rate is printed), then at each size in
# CERTS a fresh node joins ROUNDS times (`cluster fulljoin`, time from the command to
# `ready`); after each join every node's RSS is read and the new node is removed again
# (`cluster nodes delete`), so the next fill runs on one node and every join starts from
# the same cluster. Prints each round and the median per size. OpenBao's joins are in
# bench/cluster.sh (it fills through a three-node cluster).
#
#   bench/join.sh                       # CERTS="100000 1000000" ROUNDS=3
#   CERTS=20000 ROUNDS=1 bench/join.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CERTS=${CERTS:-"100000 1000000"}
ROUNDS=${ROUNDS:-3}
source bench/lib.sh
results="$work/results.txt"

machine
echo "== hapki $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
hapki_cluster 1
HAPKI_URL=${url[0]} "$hapki" ca init --cn "bench root" >/dev/null
n=1 issued=0
for target in $CERTS; do
    t0=$(now)
    # Without idempotency keys: a node forgets a key after a day or two, so a store that grew
    # this large over months holds only its last days' keys.
    HAPKI_URL=${url[0]} "$hapki" bench issue --concurrency 32 --requests $((target - issued)) \
        --no-idempotency-key --output json >"$work/fill.json"
    t1=$(now)
    echo "fill to $target: $((target - issued)) certificates in $(echo "$t1 - $t0" | bc) s ($(field certs_per_sec <"$work/fill.json" | cut -d. -f1)/s)" | tee -a "$results"
    issued=$target
    echo "store at $target: $(du -sh "${dir[0]}/hapki.redb" | cut -f1)" | tee -a "$results"
    times=()
    for r in $(seq 1 "$ROUNDS"); do
        start_hapki $n
        t0=$(now); fulljoin $n >"$work/join$n.txt" 2>&1; t1=$(now)
        s=$(echo "$t1 - $t0" | bc)
        times+=("$s")
        echo "join at $target, round $r: ${s} s to ready; RSS leader $(rss_mib "${pid[0]}") MiB, new node $(rss_mib "${pid[$n]}") MiB" | tee -a "$results"
        id=$(cat "${dir[$n]}/node-id")
        HAPKI_URL=${url[0]} "$hapki" cluster nodes delete --id "$id" >/dev/null
        kill "${pid[$n]}"; wait "${pid[$n]}" 2>/dev/null || true
        rm -rf "${dir[$n]}"
        n=$((n + 1))
    done
    echo "join at $target: median $(median "${times[@]}") s to ready" | tee -a "$results"
done

echo "== results"
cat "$results"
