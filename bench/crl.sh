#!/usr/bin/env bash
# Partitioned and delta CRLs at size: a dev node (release build) with crl_partition_size 1,
# so that after its first revocation every certificate names one of two partitions; then
# REVOKED certificates issued and revoked through the API (`hapki bench revoke`), about half
# of them in each partition. ROUNDS times: a new CRL number (`hapki crl rotate`), then the
# first fetch of partition 0 (built from the replica and signed on that request) and a second
# one (from memory). With delta CRLs on: a revocation, then the first fetch of the new delta.
#
#   bench/crl.sh                 # REVOKED=100000 ROUNDS=3
#   SMOKE=1 bench/crl.sh         # seconds: 2000 revoked, 1 round
set -euo pipefail
cd "$(dirname "$0")/.."

REVOKED=${REVOKED:-100000}
ROUNDS=${ROUNDS:-3}
if [ -n "${SMOKE:-}" ]; then REVOKED=2000; ROUNDS=1; fi
source bench/lib.sh
machine

echo "== hapki $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
dev_node
cd "$work"
id=$("$hapki" --output json ca list | python3 -c 'import json,sys; print(json.load(sys.stdin)["issuers"][0]["id"])')
"$hapki" cluster settings --crl-partition-size 1 >/dev/null
"$hapki" csr first CN:first.example.com >/dev/null
"$hapki" cert issue --csr first.csr --profile server --out first.pem >/dev/null
"$hapki" cert revoke "$(openssl x509 -in first.pem -noout -serial | cut -d= -f2)" >/dev/null
# The node reads the revoked count again at most every 10 s.
sleep 11

t0=$(now)
"$hapki" bench revoke --concurrency 32 --requests "$REVOKED" --output json >fill.json
t1=$(now)
echo "fill: $REVOKED issued and revoked in $(echo "$t1 - $t0" | bc) s (\`hapki bench revoke --concurrency 32 --requests $REVOKED\`), $(field revocations_per_sec <fill.json) revocations/s"

part="http://127.0.0.1:$hh/v1/issuers/$id/crl/0"
builds=() again=()
for _ in $(seq 1 "$ROUNDS"); do
    "$hapki" crl rotate >/dev/null
    builds+=("$(curl -sf -o part0.der -w '%{time_total}' "$part")")
    again+=("$(curl -sf -o part0.der -w '%{time_total}' "$part")")
done
listed=$(openssl crl -inform der -in part0.der -noout -text | grep -c 'Serial Number')
mb=$(python3 -c "import os; print(f'{os.path.getsize(\"part0.der\") / 1e6:.1f}')")
ms() { echo "scale=1; $1 * 1000 / 1" | bc; }
echo "partition 0: $listed entries, $mb MB; new number to bytes served: $(ms "$(median "${builds[@]}")") ms (median of ${builds[*]} s); again: $(ms "$(median "${again[@]}")") ms"

"$hapki" cluster settings --delta-crl-secs 5 >/dev/null
"$hapki" crl rotate >/dev/null
delta="http://127.0.0.1:$hh/v1/issuers/$id/delta-crl"
for _ in $(seq 1 50); do curl -sf -o /dev/null "$delta" && break; sleep 0.2; done
deltas=()
for r in $(seq 1 "$ROUNDS"); do
    "$hapki" csr "d$r" "CN:d$r.example.com" >/dev/null
    "$hapki" cert issue --csr "d$r.csr" --profile server --out "d$r.pem" >/dev/null
    "$hapki" cert revoke "$(openssl x509 -in "d$r.pem" -noout -serial | cut -d= -f2)" >/dev/null
    deltas+=("$(curl -sf -o delta.der -w '%{time_total}' "$delta")")
done
dlisted=$(openssl crl -inform der -in delta.der -noout -text | grep -c 'Serial Number')
echo "delta ($dlisted entries) after a revocation, new number to bytes served: $(ms "$(median "${deltas[@]}")") ms (median of ${deltas[*]} s)"
