#!/usr/bin/env bash
# Run PgBouncer's own pytest suite with tidepool in place of the pgbouncer
# binary (issue #16, doc/compatibility.md).  None of PgBouncer's code enters
# this repository: the script copies a PgBouncer checkout that the caller
# built (./autogen.sh && ./configure --without-cares && make pgbouncer, for
# config.mak and the baseline), replaces its `pgbouncer` by a two-line
# wrapper that execs tidepool, and runs the suite as user postgres.
#
#   test/compat/pgbouncer-suite.sh PGBOUNCER_TREE TIDEPOOL_BIN [pytest args...]
#
# Environment: OUT (results, default /tmp/pgb-results), WORK (the copy,
# default /tmp/pgb-suite-copy), JOBS (pytest -n, default 2), PG_BIN
# (PostgreSQL's bin directory, default the newest /usr/lib/postgresql/*/bin),
# BASELINE=1 runs the checkout's own pgbouncer instead of tidepool.
# Writes $OUT/junit.xml, $OUT/pytest.log, $OUT/summary.txt (counts and the
# failing tests), and prints the summary.
set -uo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 PGBOUNCER_TREE TIDEPOOL_BIN [pytest args...]" >&2
    exit 2
fi
SRC=$(realpath "$1"); BIN=$(realpath "$2"); shift 2
OUT=${OUT:-/tmp/pgb-results}
WORK=${WORK:-/tmp/pgb-suite-copy}
JOBS=${JOBS:-2}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}

[ -f "$SRC/config.mak" ] || { echo "$SRC: not configured (no config.mak)" >&2; exit 2; }
[ -x "$BIN" ] || { echo "$BIN: not executable" >&2; exit 2; }

rm -rf "$WORK"
mkdir -p "$WORK" "$OUT"
# the tree without its build products and leftovers of earlier runs
tar -C "$SRC" --exclude=.git --exclude='*.o' --exclude=test/pgdata \
    --exclude='__pycache__' -cf - . | tar -C "$WORK" -xf -
if [ -z "${BASELINE:-}" ]; then
    rm -f "$WORK/pgbouncer"
    printf '#!/bin/sh\nexec %q "$@"\n' "$BIN" > "$WORK/pgbouncer"
    chmod 755 "$WORK/pgbouncer"
fi
chown -R postgres: "$WORK" "$OUT"

rm -f "$OUT/junit.xml"
# --tb=native: the suite's own --tb=short crashes pytest on Python 3.11.2
su postgres -s /bin/bash -c "cd $(printf %q "$WORK") && \
    PATH=$(printf %q "$PG_BIN"):\$PATH python3 -m pytest -n $JOBS -v \
    --tb=native -p no:cacheprovider --junitxml=$(printf %q "$OUT/junit.xml") \
    $(printf '%q ' "$@")" > "$OUT/pytest.log" 2>&1
rc=$?

python3 - "$OUT/junit.xml" "$BIN" "${BASELINE:+baseline}" > "$OUT/summary.txt" <<'PY'
import sys
import xml.etree.ElementTree as ET
# a test whose teardown also errs appears twice: count each test once
status = {}
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    name = case.get("classname", "").split(".")[-1] + "::" + case.get("name")
    tags = {child.tag for child in case}
    if tags & {"failure", "error"}:
        status[name] = "failed"
    elif "skipped" in tags:
        status.setdefault(name, "skipped")
    else:
        status.setdefault(name, "passed")
passed = [n for n, st in status.items() if st == "passed"]
failed = [n for n, st in status.items() if st == "failed"]
skipped = [n for n, st in status.items() if st == "skipped"]
total = len(passed) + len(failed) + len(skipped)
who = "pgbouncer (baseline)" if sys.argv[3] else sys.argv[2]
print(f"binary: {who}")
print(f"{len(passed)} passed, {len(failed)} failed, {len(skipped)} skipped, {total} total")
for name in sorted(failed):
    print(f"FAILED {name}")
for name in sorted(skipped):
    print(f"SKIPPED {name}")
PY
cat "$OUT/summary.txt"
echo "pytest exit status $rc; log in $OUT/pytest.log" >&2
