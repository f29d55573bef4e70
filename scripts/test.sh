#!/usr/bin/env bash
# Installs what the tests need on a fresh machine (Debian packages, a Python
# virtualenv with pkilint), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

if cargo nextest --version >/dev/null 2>&1; then
    run=(cargo nextest run --workspace)
else
    run=(cargo test --workspace)
fi

# Build the tests while the packages below install: the build keeps both cores busy, the
# install mostly waits on downloads. Its outcome is collected before the tests run. First
# the binary of the last release's state format, which tests/rolling_upgrade.rs upgrades
# from: this source built as that release was, kept next to this build's binary.
# Then the Debian package (a release build) that tests/package.rs installs.
build_all() {
    cargo build --bin hapki --features state-format-1
    cp target/debug/hapki target/debug/hapki-format1
    "${run[@]}" --no-run "$@"
    cargo deb --version >/dev/null 2>&1 || cargo install cargo-deb --locked --quiet
    cargo deb --quiet -o target/debian/
}
build_all "$@" &
build=$!
cleanup() {
    kill "$build" 2>/dev/null || true
    [ -z "${added_policy:-}" ] || $sudo rm -f "$policy"
}
trap cleanup EXIT

need_apt=()
command -v openssl >/dev/null || need_apt+=(openssl)
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# Relying parties in tests/interop_relying_parties.rs.
command -v curl >/dev/null || need_apt+=(curl)
# A JDK: tests/interop_relying_parties.rs runs a Java program from source.
command -v javac >/dev/null || need_apt+=(default-jdk-headless)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
# PKCS#11 roots of trust: SoftHSM2, and pkcs11-tool (opensc) to look at its tokens.
command -v softhsm2-util >/dev/null || need_apt+=(softhsm2)
command -v pkcs11-tool >/dev/null || need_apt+=(opensc)
# The load balancer in tests/ha.rs (deploy/haproxy.cfg).
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
# tests/package.rs stops the installed node with pkill.
command -v pkill >/dev/null || need_apt+=(procps)
# The Prometheus server and promtool in tests/metrics.rs.
command -v prometheus >/dev/null || need_apt+=(prometheus)
# The DNS server ACME validation asks in tests/acme.rs.
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || need_apt+=(dnsmasq-base)
# A real browser for the web console: tests/console.rs drives it through chromedriver.
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    # The tests start their own nginx, postgres and haproxy on free ports: keep the
    # packages' services from starting (and taking ports) while they install.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        added_policy=1  # removed by cleanup, also when the install fails
        printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
        $sudo chmod 755 "$policy"
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}"
    if [ -n "${added_policy:-}" ]; then
        $sudo rm -f "$policy"
        added_policy=""
    fi
fi

venv=target/pyenv
if [ ! -x "$venv/bin/lint_pkix_cert" ] || [ ! -x "$venv/bin/certbot" ]; then
    python3 -m venv "$venv"
    # pkilint for tests/lint.rs, certbot (an ACME client) for tests/acme.rs.
    "$venv/bin/pip" install -q --disable-pip-version-check pkilint certbot
fi
export HAPKI_PKILINT_BIN="$PWD/$venv/bin"

wait "$build"
trap - EXIT
"${run[@]}" --no-fail-fast "$@"
