#!/usr/bin/env bash
# Every single-node throughput figure in one run, hapki and OpenBao side by side with the
# same compiled load generator (`hapki bench issue|ocsp|revoke`, keep-alive connections), on
# the same machine, with the floor the hardware sets (`openssl speed ecdsap256`: one CSR
# verify and one signature per certificate). Each figure is the median of ROUNDS runs. The
# table goes to standard output and to bench/RESULTS.md with the date, commit, machine and
# this command.
#
#   bench/run.sh                # ROUNDS=3 REQUESTS=5000
#   SMOKE=1 bench/run.sh        # seconds long: keeps the script working, figures meaningless
#   SKIP_OPENBAO=1 bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${SMOKE:-}" ]; then
    ROUNDS=1 REQUESTS=200 OCSP_REQUESTS=2000 SPEED_SECS=1 CRL_ENTRIES=1000 CLUSTER_CERTS=1000
fi
ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-5000}
OCSP_REQUESTS=${OCSP_REQUESTS:-30000}
SPEED_SECS=${SPEED_SECS:-3}
CRL_ENTRIES=${CRL_ENTRIES:-100000}
CLUSTER_CERTS=${CLUSTER_CERTS:-100000}
source bench/lib.sh
rows="$work/rows.tsv"
: >"$rows"
# `row FIGURE HAPKI OPENBAO`: one line of the table (OPENBAO may be empty).
row() { printf '%s\t%s\t%s\n' "$1" "$2" "${3:-}" >>"$rows"; }

# `issue_figures TARGET PID ARGS...`: certificates/s and p50 at c=1 and c=32, and server CPU
# per certificate at c=32, medians; echoes "rate1 p50_1 rate32 p50_32 cpu32".
issue_figures() {
    local pid=$1 out r1=() l1=() r32=() l32=() cpu=() t0
    shift
    for _ in $(seq 1 "$ROUNDS"); do
        out=$("$hapki" bench issue --concurrency 1 --requests $((REQUESTS / 10 + 1)) --output json "$@")
        r1+=("$(echo "$out" | field certs_per_sec)"); l1+=("$(echo "$out" | field p50_ms)")
        t0=$(cpu_ticks "$pid")
        out=$("$hapki" bench issue --concurrency 32 --requests "$REQUESTS" --output json "$@")
        r32+=("$(echo "$out" | field certs_per_sec)"); l32+=("$(echo "$out" | field p50_ms)")
        cpu+=("$(echo "($(cpu_ticks "$pid") - $t0) * 1000000 / $(getconf CLK_TCK) / $REQUESTS" | bc)")
    done
    echo "$(median "${r1[@]}") $(median "${l1[@]}") $(median "${r32[@]}") $(median "${l32[@]}") $(median "${cpu[@]}")"
}

# `ocsp_rate ARGS...`: the median answers/s of `hapki bench ocsp ARGS`.
ocsp_rate() {
    local rates=()
    for _ in $(seq 1 "$ROUNDS"); do
        rates+=("$("$hapki" bench ocsp --concurrency 32 --requests "$OCSP_REQUESTS" --output json "$@" | field responses_per_sec)")
    done
    median "${rates[@]}"
}

ratio() { [ -n "$2" ] && python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.1f}')" "$1" "$2" || echo; }

machine >"$work/machine.txt"
cat "$work/machine.txt"
speed=$(openssl speed -seconds "$SPEED_SECS" ecdsap256 2>/dev/null | tail -n 1)
sign=$(echo "$speed" | awk '{print $(NF-1)}')
verify=$(echo "$speed" | awk '{print $NF}')
floor_us=$(python3 -c "import sys; print(round(1e6 / float(sys.argv[1]) + 1e6 / float(sys.argv[2])))" "$sign" "$verify")
echo "== floor: openssl speed ecdsap256: $sign sign/s, $verify verify/s: $floor_us µs per certificate"
# What one durable write costs on this disk: fdatasync after a 4 KiB append, in the scratch
# directory the nodes' data directories are in (p50 of 300, ms).
fsync_ms=$(python3 - "$work" <<'PY'
import os, statistics, sys, time
fd = os.open(os.path.join(sys.argv[1], "fsync.probe"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
times = []
for _ in range(300):
    os.write(fd, b"x" * 4096)
    t = time.perf_counter()
    os.fdatasync(fd)
    times.append(time.perf_counter() - t)
print(f"{statistics.median(times) * 1e3:.2f}")
PY
)
echo "== fdatasync after a 4 KiB append: p50 $fsync_ms ms"

echo "== hapki $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
hp=$(free_port); hh=$(free_port)
"$hapki" server --dev --data-dir "$work/hapki" --listen "127.0.0.1:$hp" --http-listen "127.0.0.1:$hh" >"$work/hapki.log" 2>&1 &
hapki_pid=$!
pids+=($!)
wait_http "https://127.0.0.1:$hp/v1/sys/health"
while [ ! -s "$work/hapki/admin-token" ]; do sleep 0.1; done
export HAPKI_URL="https://127.0.0.1:$hp" HAPKI_CA_CERT="$work/hapki/api-ca.pem" HAPKI_TOKEN="$(cat "$work/hapki/admin-token")"
read -r h_r1 h_l1 h_r32 h_l32 h_cpu <<<"$(issue_figures "$hapki_pid")"
"$hapki" --output json cert list --limit 300 |
    python3 -c 'import json,sys; [print(c["serial"]) for c in json.load(sys.stdin)["certs"]]' >"$work/hapki.serials"
head -n 100 "$work/hapki.serials" | while read -r s; do "$hapki" cert revoke "$s" --reason superseded >/dev/null; done
args=(--responder "http://127.0.0.1:$hh/ocsp" --issuer "$work/hapki/ca.pem" --serials "$work/hapki.serials")
h_get=$(ocsp_rate "${args[@]}" --method get)
h_post=$(ocsp_rate "${args[@]}" --method post)
# The bound a static file server sets: nginx, a worker per core, sending one of those answers
# (a good one, as hapki sent it) as a file for every GET.
n_get=""
if command -v nginx >/dev/null; then
    mkdir -p "$work/nginx/root"
    openssl ocsp -issuer "$work/hapki/ca.pem" -serial "0x$(head -n 150 "$work/hapki.serials" | tail -n 1)" \
        -no_nonce -reqout "$work/ocsp.req" >/dev/null 2>&1
    curl -sf -H 'content-type: application/ocsp-request' --data-binary "@$work/ocsp.req" \
        -o "$work/nginx/root/answer.der" "http://127.0.0.1:$hh/ocsp"
    np=$(free_port)
    cat >"$work/nginx/nginx.conf" <<NGINX
user root;
worker_processes $(nproc);
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    server {
        listen 127.0.0.1:$np;
        root $work/nginx/root;
        location /ocsp/ { default_type application/ocsp-response; try_files /answer.der =404; }
    }
}
NGINX
    nginx -c "$work/nginx/nginx.conf" -g 'daemon off;' &
    pids+=($!)
    wait_http "http://127.0.0.1:$np/ocsp/x"
    n_get=$(ocsp_rate --responder "http://127.0.0.1:$np/ocsp" --issuer "$work/hapki/ca.pem" \
        --serials "$work/hapki.serials" --method get)
    kill "${pids[-1]}"
fi
revs=()
for _ in $(seq 1 "$ROUNDS"); do
    revs+=("$("$hapki" bench revoke --concurrency 32 --requests "$REQUESTS" --output json | field revocations_per_sec)")
done
h_rev=$(median "${revs[@]}")
# The CRL at CRL_ENTRIES revoked certificates: a new CRL number, then its first fetch (built
# from the replica and signed on that request) and a second one (from memory).
revoked=$((100 + ROUNDS * REQUESTS))
if [ "$revoked" -lt "$CRL_ENTRIES" ]; then
    "$hapki" bench revoke --concurrency 32 --requests $((CRL_ENTRIES - revoked)) --output json >/dev/null
fi
crl_url="http://127.0.0.1:$hh/v1/crl"
builds=() again=()
for _ in $(seq 1 "$ROUNDS"); do
    "$hapki" crl rotate >/dev/null
    builds+=("$(curl -sf -o "$work/crl.der" -w '%{time_total}' "$crl_url")")
    again+=("$(curl -sf -o "$work/crl.der" -w '%{time_total}' "$crl_url")")
done
crl_listed=$(openssl crl -inform der -in "$work/crl.der" -noout -text | grep -c 'Serial Number')
crl_mb=$(python3 -c "import os; print(f'{os.path.getsize(\"$work/crl.der\") / 1e6:.1f}')")
h_crl_build=$(median "${builds[@]}") h_crl_again=$(median "${again[@]}")

# A cluster of three on the same machine, once the single node has stopped: CLUSTER_CERTS
# stored through the leader, then issuance at c=32 through the leader and through a
# follower, and OCSP by GET on a follower. During the runs through the leader each node's
# CPU per certificate is read too: on one machine the three nodes share its cores, so one
# node's CPU per certificate ÷ the three nodes' sum bounds the cluster ÷ one node ratio
# when issuance is CPU-bound.
c_lead="" c_follow="" c_ocsp="" c_cpu=""
if [ -z "${SKIP_CLUSTER:-}" ]; then
    echo "== hapki, a cluster of 3"
    kill "$hapki_pid"
    wait "$hapki_pid" 2>/dev/null || true
    hapki_cluster 3
    leader_id=$(curl -sk "${url[0]}/v1/cluster/status" | field leader)
    lead="" follow=""
    for i in 0 1 2; do
        if [ "$(curl -sk "${url[$i]}/v1/cluster/status" | field node_id)" = "$leader_id" ]; then lead=$i; else follow=$i; fi
    done
    HAPKI_URL=${url[$lead]} "$hapki" ca init --cn "bench root" >/dev/null
    HAPKI_URL=${url[$lead]} "$hapki" bench issue --concurrency 32 --requests "$CLUSTER_CERTS" --output json >/dev/null
    leads=() follows=() node_cpu=()
    for _ in $(seq 1 "$ROUNDS"); do
        t0=() ; for i in 0 1 2; do t0[$i]=$(cpu_ticks "${pid[$i]}"); done
        leads+=("$(HAPKI_URL=${url[$lead]} "$hapki" bench issue --concurrency 32 --requests "$REQUESTS" --output json | field certs_per_sec)")
        per=() ; for i in 0 1 2; do per[$i]=$(echo "($(cpu_ticks "${pid[$i]}") - ${t0[$i]}) * 1000000 / $(getconf CLK_TCK) / $REQUESTS" | bc); done
        node_cpu+=("$((per[0] + per[1] + per[2])):${per[$lead]}:$((per[0] + per[1] + per[2] - per[lead]))")
        follows+=("$(HAPKI_URL=${url[$follow]} "$hapki" bench issue --concurrency 32 --requests "$REQUESTS" --output json | field certs_per_sec)")
    done
    c_lead=$(median "${leads[@]}") c_follow=$(median "${follows[@]}")
    # The round with the median sum: "sum:leader:both followers" µs per certificate.
    c_cpu=$(printf '%s\n' "${node_cpu[@]}" | sort -t: -k1 -g | sed -n "$(( (${#node_cpu[@]} + 1) / 2 ))p")
    HAPKI_URL=${url[$lead]} "$hapki" --output json cert list --limit 300 |
        python3 -c 'import json,sys; [print(c["serial"]) for c in json.load(sys.stdin)["certs"]]' >"$work/cluster.serials"
    head -n 100 "$work/cluster.serials" | while read -r s; do
        HAPKI_URL=${url[$follow]} "$hapki" cert revoke "$s" --reason superseded >/dev/null
    done
    curl -sf -o "$work/cluster-ca.pem" "${http_url[$follow]}/v1/ca.pem"
    c_ocsp=$(ocsp_rate --responder "${http_url[$follow]}/ocsp" --issuer "$work/cluster-ca.pem" \
        --serials "$work/cluster.serials" --method get)
fi

b_r1="" b_l1="" b_r32="" b_l32="" b_cpu="" b_get="" b_post="" b_rev=""
if [ -z "${SKIP_OPENBAO:-}" ]; then
    echo "== OpenBao"
    openbao_start
    read -r b_r1 b_l1 b_r32 b_l32 b_cpu <<<"$(issue_figures "$bao_pid" --target openbao --openbao-url "$BAO_ADDR" --openbao-token "$BAO_TOKEN")"
    "$bao" list -format=json pki/certs | python3 -c 'import json,sys; [print(s.replace(":", "")) for s in json.load(sys.stdin)[:300]]' >"$work/bao.all"
    "$bao" read -field=certificate pki/cert/ca >"$work/bao-ca.pem"
    ca_serial=$(openssl x509 -in "$work/bao-ca.pem" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f')
    grep -v -i "^0*${ca_serial#0}$" "$work/bao.all" >"$work/bao.serials" || true
    head -n 100 "$work/bao.serials" | while read -r s; do
        "$bao" write pki/revoke serial_number="$(echo "$s" | sed 's/../&:/g; s/:$//')" >/dev/null
    done
    args=(--responder "$BAO_ADDR/v1/pki/ocsp" --issuer "$work/bao-ca.pem" --serials "$work/bao.serials")
    b_get=$(ocsp_rate "${args[@]}" --method get)
    b_post=$(ocsp_rate "${args[@]}" --method post)
    revs=()
    for _ in $(seq 1 "$ROUNDS"); do
        revs+=("$("$hapki" bench revoke --target openbao --openbao-url "$BAO_ADDR" --openbao-token "$BAO_TOKEN" \
            --concurrency 32 --requests $((REQUESTS / 5)) --output json | field revocations_per_sec)")
    done
    b_rev=$(median "${revs[@]}")
fi

row "issuance, c=1: certificates/s" "$(printf %.0f "$h_r1")" "$([ -n "$b_r1" ] && printf %.0f "$b_r1")"
row "issuance, c=1: p50 ms" "$(printf %.2f "$h_l1")" "$([ -n "$b_l1" ] && printf %.2f "$b_l1")"
row "  one fdatasync on this disk after a 4 KiB append, p50 ms" "$fsync_ms" "-"
row "issuance, c=32: certificates/s" "$(printf %.0f "$h_r32")" "$([ -n "$b_r32" ] && printf %.0f "$b_r32")"
row "issuance, c=32: p50 ms" "$(printf %.2f "$h_l32")" "$([ -n "$b_l32" ] && printf %.2f "$b_l32")"
row "issuance, c=32: server CPU µs per certificate" "$h_cpu" "$b_cpu"
row "issuance, c=32: server CPU ÷ floor ($floor_us µs)" "$(python3 -c "print(f'{$h_cpu / $floor_us:.1f}')")" \
    "$([ -n "$b_cpu" ] && python3 -c "print(f'{$b_cpu / $floor_us:.1f}')")"
row "OCSP GET, c=32, good/revoked/unknown: answers/s" "$(printf %.0f "$h_get")" "$([ -n "$b_get" ] && printf %.0f "$b_get")"
[ -n "$n_get" ] && row "  OCSP GET ÷ nginx ($(printf %.0f "$n_get")/s, a worker per core, one answer as a static file)" "$(ratio "$h_get" "$n_get")" "-"
row "OCSP POST, c=32, good/revoked/unknown: answers/s" "$(printf %.0f "$h_post")" "$([ -n "$b_post" ] && printf %.0f "$b_post")"
row "revocations/s, c=32, each on a CRL when answered" "$(printf %.0f "$h_rev")" "$([ -n "$b_rev" ] && printf %.0f "$b_rev")"
if [ -n "$c_lead" ]; then
    row "3 nodes, $CLUSTER_CERTS+ stored, via the leader, c=32: certificates/s" "$(printf %.0f "$c_lead")" "-"
    row "  ÷ one node at c=32" "$(ratio "$c_lead" "$h_r32")" "-"
    IFS=: read -r cpu_sum cpu_leader cpu_followers <<<"$c_cpu"
    row "  CPU µs per certificate: leader + the two followers = all three" "$cpu_leader + $cpu_followers = $cpu_sum" "-"
    row "  bound on this machine: one node's CPU ($h_cpu µs) ÷ all three's" "$(ratio "$h_cpu" "$cpu_sum")" "-"
    row "3 nodes, via a follower, c=32: certificates/s" "$(printf %.0f "$c_follow")" "-"
    row "  ÷ one node at c=32" "$(ratio "$c_follow" "$h_r32")" "-"
    row "3 nodes, OCSP GET on a follower, c=32: answers/s" "$(printf %.0f "$c_ocsp")" "$([ -n "$b_get" ] && printf %.0f "$b_get")"
fi
ms() { python3 -c "import sys; print(f'{float(sys.argv[1]) * 1000:.1f}')" "$1"; }
row "CRL of $crl_listed entries ($crl_mb MB): new number to bytes served, ms" "$(ms "$h_crl_build")" "-"
row "CRL of $crl_listed entries: served again, from memory, ms" "$(ms "$h_crl_again")" "-"

{
    echo "# Benchmark results"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(sed -n 2p "$work/machine.txt") vCPU, $(sed -n 3p "$work/machine.txt" | sed 's/.*: //')."
    echo "Command: \`$(env | grep -E '^(SMOKE|ROUNDS|REQUESTS|OCSP_REQUESTS|CRL_ENTRIES|SKIP_OPENBAO)=' | tr '\n' ' ')bench/run.sh\`; medians of $ROUNDS runs;"
    echo "OpenBao $("${bao:-true}" version 2>/dev/null | awk '{print $2}' || true) on integrated Raft, its PKI engine configured as \`bench/lib.sh\` says."
    echo "Floor: \`openssl speed -seconds $SPEED_SECS ecdsap256\` in the same run, $sign signatures/s and $verify verifications/s: $floor_us µs per certificate."
    echo "Issuance at c=1 sends REQUESTS/10 + 1 requests per run, at c=32 REQUESTS. The OCSP serials are 300 of the"
    echo "node's certificates, 100 of them revoked, and 150 unknown ones. The revocation runs issue then revoke"
    echo "REQUESTS certificates each, one after another on the same node, so its store holds REQUESTS, twice and"
    echo "three times as many revoked certificates at their ends. Then more are revoked up to CRL_ENTRIES, and the"
    echo "CRL figures time \`curl\` fetching /v1/crl just after \`hapki crl rotate\` (the node builds and signs the"
    echo "new number on that request) and once more (the bytes it kept). OpenBao has no CRL figure: filling it"
    echo "with 100,000 revocations at its rate would take more than an hour."
    echo "OpenBao revokes REQUESTS/5 per run (it rebuilds its CRL on each revocation, as configured), on top of the"
    echo "certificates the issuance runs stored."
    echo
    echo "| figure | hapki | OpenBao | hapki ÷ OpenBao |"
    echo "| --- | ---: | ---: | ---: |"
    while IFS=$'\t' read -r name h b; do
        r=""
        [ "$b" = "-" ] && { echo "| $name | $h | | |"; continue; }
        case "$name" in
            *"p50"* | *"CPU"*) [ -n "$b" ] && r=$(ratio "$b" "$h") && r="$r (OpenBao ÷ hapki)" ;;
            *) r=$(ratio "$h" "$b") ;;
        esac
        echo "| $name | $h | ${b:-not measured} | $r |"
    done <"$rows"
} >"$work/RESULTS.md"
cat "$work/RESULTS.md"
if [ -z "${SMOKE:-}" ]; then
    cp "$work/RESULTS.md" bench/RESULTS.md
fi
