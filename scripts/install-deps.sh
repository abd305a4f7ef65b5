#!/bin/sh
# Install the Debian 12 packages asg needs. Idempotent: packages already
# present are skipped, and when everything is there it does nothing at all
# (no apt-get update, no network).
#   scripts/install-deps.sh          to build and run
#   scripts/install-deps.sh --test   also what the tests use
#   scripts/install-deps.sh --fuzz   also clang and libFuzzer (make fuzz)
#   scripts/install-deps.sh --bench  also h2load (make bench)
set -eu

PACKAGES="
build-essential pkg-config
libgrpc-dev libprotobuf-c-dev protobuf-c-compiler
libconfig-dev libcurl4-openssl-dev libssl-dev libxml2-dev libjson-c-dev libinih-dev
libmicrohttpd-dev libnghttp2-dev libsystemd-dev
libsqlite3-dev
check libsubunit-dev
procps
"
TEST_PACKAGES="
python3 python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc
grpc-proto python3-botocore python3-prometheus-client python3-websocket chromium
haproxy wrk etcd-server openssl prometheus curl systemd
mandoc man-db bash-completion debhelper lintian
sqlite3
"

FUZZ_PACKAGES="clang libclang-rt-14-dev"
# make bench: h2load is the independent load generator it compares with.
BENCH_PACKAGES="python3 nghttp2-client haproxy wrk etcd-server"

case "${1:-}" in
    --test) PACKAGES="$PACKAGES $TEST_PACKAGES" ;;
    --fuzz) PACKAGES="$PACKAGES $FUZZ_PACKAGES" ;;
    --bench) PACKAGES="$PACKAGES $BENCH_PACKAGES" ;;
    "") ;;
    *) echo "usage: $0 [--test|--fuzz|--bench]" >&2; exit 2 ;;
esac

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

echo "install-deps: installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
    else
        echo "install-deps: need root to install:$missing" >&2
        exit 1
    fi
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
