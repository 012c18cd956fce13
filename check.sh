#!/usr/bin/env bash
# Install what is missing (Debian/Ubuntu), build tidepool in ./build, run the
# C unit tests (make check) and the integration tests (pytest, real
# PostgreSQL), then print one summary line "N passed, N failed".
#
#   ./check.sh                      everything
#   ./check.sh -k basic             extra arguments go to pytest
#   PYTEST_ARGS="-x" ./check.sh     same, from the environment
#   PYTEST_JOBS=2 ./check.sh        integration tests in 2 processes (pytest-xdist;
#                                   each has its own PostgreSQL; CI uses 2)
#   BUILD_DIR=build-asan CONFIGURE_FLAGS="--enable-sanitizers" ./check.sh
#                                   flags for a fresh ./build (an existing
#                                   ./build is re-used as configured)
#   TIDEPOOL_BIN=/path/tidepool     binary the integration tests run
#   SKIP_UNIT=1 / SKIP_INTEGRATION=1 / SKIP_DEPLOY=1
#                                   SKIP_DEPLOY: the offline checks of deploy/
#                                   (kubectl kustomize, Kubernetes schemas,
#                                   pod security; needs kubectl, node and npm)
#   UNIT_VALGRIND=1                 run the unit tests under valgrind
#                                   (memory errors and leaks fail them)
#
# Exit status: 0 only when everything built and every test passed.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT=$PWD
BUILD=${BUILD_DIR:-$ROOT/build}   # BUILD_DIR: another build tree, e.g. for sanitizers
PYTHON=/usr/bin/python3   # Debian's python, with python3-pytest and python3-psycopg

PACKAGES=(build-essential autoconf automake libtool pkg-config libevent-dev libssl-dev
          libc-ares-dev libpq-dev postgresql postgresql-contrib postgresql-client
          python3-pytest python3-pytest-xdist python3-psycopg python3-asyncpg python3-yaml libpostgresql-jdbc-java
          openjdk-17-jdk-headless valgrind)

say() { printf '==> %s\n' "$*" >&2; }

# A package counts as installed when dpkg says so; for the postgresql
# metapackages a versioned package (postgresql-client-15 ...) also counts.
pkg_installed() {
    dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed' && return 0
    case $1 in
        postgresql|postgresql-contrib|postgresql-client)
            local base=${1%-contrib}
            [ "$1" = postgresql-contrib ] && base=postgresql
            dpkg-query -W -f='${Package} ${Status}\n' "$base-[0-9]*" 2>/dev/null |
                grep -q ' install ok installed$' && return 0 ;;
    esac
    return 1
}

install_missing() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        say "not a Debian system: make sure these are installed: ${PACKAGES[*]}"
        return 0
    fi
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        say "missing Debian packages: ${missing[*]}"
        echo "sudo apt-get update && sudo apt-get install -y ${missing[*]}"
        exit 1
    fi
    say "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q || exit 1
    apt-get install -y -q "${missing[@]}" </dev/null || exit 1
}

summary() {   # passed failed
    echo "$1 passed, $2 failed"
}

install_missing

PYTEST_EXTRA=("$@")
if [ -n "${PYTEST_JOBS:-}" ] && [ "${PYTEST_JOBS}" != 1 ]; then
    PYTEST_EXTRA+=(-n "$PYTEST_JOBS")
fi
if [ -n "${PYTEST_ARGS:-}" ]; then
    # shellcheck disable=SC2206
    PYTEST_EXTRA+=(${PYTEST_ARGS})
fi

# ------------------------------------------------------------------ build
say "autoreconf -fi"
if ! autoreconf -fi; then
    say "autoreconf failed"; summary 0 1; exit 1
fi
mkdir -p "$BUILD"
cd "$BUILD" || exit 1
if [ ! -f Makefile ]; then
    say "configure ${CONFIGURE_FLAGS:-}"
    # shellcheck disable=SC2086
    if ! "$ROOT/configure" ${CONFIGURE_FLAGS:-}; then
        say "configure failed"; summary 0 1; exit 1
    fi
fi
say "make -j2"
if ! make -j2; then
    say "build failed"; summary 0 1; exit 1
fi

unit_passed=0
unit_failed=0
if [ -z "${SKIP_UNIT:-}" ]; then
    say "make check (unit tests)"
    rm -f test/unit/*.log test/unit/*.trs
    if [ -n "${UNIT_VALGRIND:-}" ]; then
        say "unit tests under valgrind"
        make -j2 check LOG_COMPILER="valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect"
    else
        make -j2 check
    fi
    check_rc=$?
    shopt -s nullglob
    logs=(test/unit/*.log)
    shopt -u nullglob
    for log in "${logs[@]}"; do
        line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
        if [ -n "$line" ]; then
            p=${line%% passed*}
            f=${line#*, }; f=${f%% failed*}
            unit_passed=$((unit_passed + p))
            unit_failed=$((unit_failed + f))
            # a binary that printed its summary and then crashed
            if [ "$f" -eq 0 ] && grep -qE '^:test-result: (FAIL|ERROR)' "${log%.log}.trs" 2>/dev/null; then
                say "$log: summary says 0 failed but the test program failed"
                unit_failed=$((unit_failed + 1))
            fi
        else
            say "$log: no 'N passed, N failed' line (crashed?)"
            unit_failed=$((unit_failed + 1))
        fi
    done
    if [ $check_rc -ne 0 ] && [ $unit_failed -eq 0 ]; then
        say "make check failed (exit $check_rc)"
        unit_failed=$((unit_failed + 1))
    fi
    say "unit tests: $unit_passed passed, $unit_failed failed"
fi
cd "$ROOT" || exit 1

# ------------------------------------------------------- integration tests
int_passed=0
int_failed=0
if [ -z "${SKIP_INTEGRATION:-}" ]; then
    export TIDEPOOL_BIN=${TIDEPOOL_BIN:-$BUILD/src/tidepool}
    junit=$BUILD/pytest-junit.xml
    rm -f "$junit"
    say "pytest test/integration ${PYTEST_EXTRA[*]}"
    "$PYTHON" -m pytest -q -p no:cacheprovider --junitxml="$junit" \
        test/integration "${PYTEST_EXTRA[@]}"
    py_rc=$?
    if [ -f "$junit" ]; then
        read -r int_passed int_failed int_skipped < <("$PYTHON" - "$junit" <<'EOF'
import sys
import xml.etree.ElementTree as ET
passed = failed = skipped = 0
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    tags = {child.tag for child in case}
    if tags & {"failure", "error"}:
        failed += 1
    elif "skipped" in tags:
        skipped += 1
    else:
        passed += 1
# errors outside any test case (collection errors are reported as test cases)
print(passed, failed, skipped)
EOF
        )
        [ "${int_skipped:-0}" -gt 0 ] && say "integration tests skipped: $int_skipped"
    fi
    case $py_rc in
        0|5) ;;                               # 5: no tests collected
        1) [ "$int_failed" -eq 0 ] && int_failed=1 ;;
        *) say "pytest exited with $py_rc"; int_failed=$((int_failed + 1)) ;;
    esac
    say "integration tests: $int_passed passed, $int_failed failed"
fi

# ------------------------------------------------------- deploy/ checks
# deploy/check/check.mjs renders every shape with kubectl kustomize and
# validates it offline (schemas from the npm package kubernetes-models,
# pinned by deploy/check/package-lock.json).
dep_passed=0
dep_failed=0
if [ -z "${SKIP_DEPLOY:-}" ]; then
    if ! command -v npm >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing nodejs npm (for deploy/check)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm </dev/null >/dev/null ||
            { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm </dev/null >/dev/null; }
    fi
    if ! command -v kubectl >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        say "deploy checks need kubectl, node and npm (missing: $(for c in kubectl node npm; do command -v $c >/dev/null 2>&1 || printf '%s ' $c; done))"
        dep_failed=1
    elif ! (cd deploy/check && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
        say "npm ci in deploy/check failed"
        dep_failed=1
    else
        say "deploy/check (kubectl kustomize, schemas, security rules, probes)"
        out=$(node deploy/check/check.mjs)
        dep_rc=$?
        printf '%s\n' "$out" | grep -v '^[0-9]* passed, [0-9]* failed$' >&2
        line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
        if [ -n "$line" ]; then
            dep_passed=${line%% passed*}
            dep_failed=${line#*, }; dep_failed=${dep_failed%% failed*}
        fi
        [ $dep_rc -ne 0 ] && [ "$dep_failed" -eq 0 ] && dep_failed=1
    fi
    say "deploy checks: $dep_passed passed, $dep_failed failed"
fi

passed=$((unit_passed + int_passed + dep_passed))
failed=$((unit_failed + int_failed + dep_failed))
summary "$passed" "$failed"
[ "$failed" -eq 0 ]
