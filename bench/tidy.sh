#!/usr/bin/env bash
# Expiry tidy under load: a dev node (release build) is filled with EXPIRED short-lived
# certificates through the API at full speed, then issuance latency is measured ROUNDS
# times without a tidy and ROUNDS times while `hapki tidy run` removes them all (retention
# 0, the default batch of 100 and share of 10 %). Prints the fill time, p50/p99 of each
# round, the medians and their ratio, and how long the tidy took.
#
#   bench/tidy.sh                      # EXPIRED=100000 ROUNDS=3 REQUESTS=3000
#   SMOKE=1 bench/tidy.sh              # a few seconds: 2000 expired, 1 round of 300
set -euo pipefail
cd "$(dirname "$0")/.."

EXPIRED=${EXPIRED:-100000}
ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-3000}
if [ -n "${SMOKE:-}" ]; then EXPIRED=2000; ROUNDS=1; REQUESTS=300; fi
TTL=${TTL:-20}
source bench/lib.sh
machine

echo "== hapki $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
dev_node
cd "$work"

echo "== fill: $EXPIRED certificates valid ${TTL}s"
t0=$(now)
"$hapki" bench issue --concurrency 32 --requests "$EXPIRED" --ttl "${TTL}s" --output json >fill.json
t1=$(now)
echo "fill: $(field certs_per_sec <fill.json) certs/s, $(echo "$t1 - $t0" | bc) s including CSR making (\`hapki bench issue --concurrency 32 --requests $EXPIRED --ttl ${TTL}s\`)"
"$hapki" cluster settings --tidy-retention 0 >/dev/null
# The last of them expires TTL seconds after the fill ended.
sleep "$TTL"
sleep 1
"$hapki" --output json tidy status >status.json
echo "pending: $(field pending <status.json)"

measure() { # label
    "$hapki" bench issue --concurrency 8 --requests "$REQUESTS" --output json >round.json
    echo "$1  $(field p50_ms <round.json)  $(field p99_ms <round.json)  $(field certs_per_sec <round.json)"
    echo "$1 $(field p99_ms <round.json)" >>p99.txt
}
echo "round            p50_ms  p99_ms  certs/s"
for r in $(seq 1 "$ROUNDS"); do measure "without_tidy_$r"; done
t0=$(now)
"$hapki" --output json tidy run >tidy.json 2>tidy.err &
tidy=$!
sleep 1
for r in $(seq 1 "$ROUNDS"); do
    kill -0 "$tidy" 2>/dev/null || { echo "the tidy ended before round $r: raise EXPIRED" >&2; break; }
    measure "during_tidy_$r"
done
wait "$tidy"
t1=$(now)
removed=$(field removed <tidy.json)
echo "tidy: removed $removed in $(field batches <tidy.json) batches, $(echo "$t1 - $t0" | bc) s, pending after: $(field pending <tidy.json)"
without=$(median $(grep '^without' p99.txt | cut -d' ' -f2))
if grep -q '^during' p99.txt; then
    during=$(median $(grep '^during' p99.txt | cut -d' ' -f2))
    echo "== p99 median without tidy: $without ms; during tidy: $during ms; ratio $(echo "scale=2; $during / $without" | bc) (target <= 2)"
else
    echo "== p99 median without tidy: $without ms; no round ran during the tidy"
fi
echo "RSS after: $(rss_mib "$server") MiB"
