#!/usr/bin/env bash
# One command for the benchmark: install what is missing, build tidepool,
# run bench/bench.py (arguments are passed on; see bench/README.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
need=()
for p in postgresql postgresql-contrib pgbouncer python3 build-essential autoconf automake pkg-config \
         libevent-dev libssl-dev libc-ares-dev libpq-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing: sudo apt-get install -y ${need[*]}" >&2; exit 1
    fi
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" </dev/null
fi
# Debian starts a pgbouncer service on install; the benchmark runs its own.
systemctl stop pgbouncer 2>/dev/null || true
[ -x configure ] || autoreconf -fi
mkdir -p build
( cd build && { [ -f Makefile ] || ../configure -q; } && make -j2 >/dev/null )
exec /usr/bin/python3 bench/bench.py "$@"
