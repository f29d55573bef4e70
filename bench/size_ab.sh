#!/usr/bin/env bash
# Issuance on a large store against a small one in the same minutes: a dev node (release
# build) on a copy of a filled data directory (`KEEP=DIR bench/scale.sh` leaves one) and a
# fresh dev node filled to 10,000, each given ROUNDS runs of `hapki bench issue
# --concurrency 32 --requests 5000`, alternately, so that the machine's speed drifting from
# one hour to the next falls on both alike. For each run: certificates/s, server CPU and
# bytes written to the disk holding the stores (/proc/diskstats) per certificate.
#
#   bench/size_ab.sh DIR            # ROUNDS=5
set -euo pipefail
cd "$(dirname "$0")/.."

big=${1:?usage: bench/size_ab.sh FILLED-DATA-DIR}
ROUNDS=${ROUNDS:-5}
source bench/lib.sh
machine
echo "== hapki $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
cp -a "$big" "$work/big"
echo "large store: a copy of $big ($(du -sh "$big" | cut -f1)); small: a fresh node filled to 10,000"

declare -A nport ndir npid
for n in big small; do
    nport[$n]=$(free_port)
    ndir[$n]="$work/$n"
    "$hapki" server --dev --data-dir "${ndir[$n]}" --listen "127.0.0.1:${nport[$n]}" --http-listen "127.0.0.1:$(free_port)" \
        >"$work/$n.log" 2>&1 &
    npid[$n]=$!
    pids+=($!)
    wait_http "https://127.0.0.1:${nport[$n]}/v1/sys/health"
    while [ ! -s "${ndir[$n]}/admin-token" ]; do sleep 0.1; done
done
issue() { # node requests
    HAPKI_URL="https://127.0.0.1:${nport[$1]}" HAPKI_CA_CERT="${ndir[$1]}/api-ca.pem" HAPKI_TOKEN="$(cat "${ndir[$1]}/admin-token")" \
        "$hapki" bench issue --concurrency 32 --requests "$2" --output json
}
issue small 10000 >/dev/null
disk=$(basename "$(df --output=source "$work" | tail -1)")
written() { awk -v d="$disk" '$3 == d {print $10 * 512}' /proc/diskstats; }
declare -A rates
for r in $(seq 1 "$ROUNDS"); do
    for n in big small; do
        w0=$(written) c0=$(cpu_ticks "${npid[$n]}")
        rate=$(issue "$n" 5000 | field certs_per_sec)
        w1=$(written) c1=$(cpu_ticks "${npid[$n]}")
        rates[$n]="${rates[$n]:-} $rate"
        printf '%-5s %5.0f certs/s, server CPU %4d µs/cert, %6d bytes written/cert\n' "$n" "$rate" \
            $(((c1 - c0) * 1000000 / $(getconf CLK_TCK) / 5000)) $(((w1 - w0) / 5000))
    done
done
# shellcheck disable=SC2086
b=$(median ${rates[big]}) s=$(median ${rates[small]})
echo "median: large store $(printf %.0f "$b")/s, small $(printf %.0f "$s")/s, ratio $(echo "scale=2; $b / $s" | bc)"
