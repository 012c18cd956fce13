#!/bin/bash
# node-postgres's own integration suite as a yardstick (issue 16).
#
# Usage: test/compat/node-postgres.sh NODE_POSTGRES_DIR TIDEPOOL_BIN [MODE...]
#   NODE_POSTGRES_DIR  a checkout of github.com/brianc/node-postgres with its
#                      dependencies installed (yarn install)
#   TIDEPOOL_BIN       the tidepool binary under test
#   MODE               any of: direct session transaction (default: all three)
# Environment: PG_BINDIR (default: newest /usr/lib/postgresql/*/bin),
#   NODEPG_TIMEOUT (seconds per test file, default 90: a client that gives up
#   during SCRAM waits for the server's 60 s authentication timeout), NODEPG_KEEP=1 keeps
#   the work directory, NODEPG_FILTER (a grep -E pattern on the file paths),
#   NODEPG_VERBOSE=1 shows the end of a failing file's output, NODEPG_PGCONF
#   (lines added to postgresql.conf, e.g. "log_statement = all").
#
# Starts a throwaway PostgreSQL set up as node-postgres's CI does (user
# postgres with password postgres over md5/SCRAM, database ci_db_test,
# SCRAM roles scram_test and scram_unicode_test, TLS with a self-signed
# certificate, PGTESTNOSSL=true), and tidepool in front of it
# (auth_type = md5, each role's secret copied from pg_authid into
# auth_file; client TLS "prefer" with the same certificate). Runs every packages/pg/test/integration/**/*-tests.js with
# `node FILE` straight against PostgreSQL, then through tidepool in each pool
# mode, and prints per file: pass/FAIL and the number of tests passed (✔),
# then the totals per mode. The suite's code is never copied here.
set -u

NODEPG=${1:?usage: $0 NODE_POSTGRES_DIR TIDEPOOL_BIN [direct|session|transaction...]}
TIDEPOOL=${2:?usage: $0 NODE_POSTGRES_DIR TIDEPOOL_BIN [direct|session|transaction...]}
shift 2
MODES=("$@")
[ ${#MODES[@]} -eq 0 ] && MODES=(direct session transaction)
TIMEOUT=${NODEPG_TIMEOUT:-90}
NODEPG=$(cd "$NODEPG" && pwd) || exit 2
TIDEPOOL=$(cd "$(dirname "$TIDEPOOL")" && pwd)/$(basename "$TIDEPOOL")
[ -d "$NODEPG/packages/pg/test/integration" ] || { echo "no packages/pg/test/integration in $NODEPG" >&2; exit 2; }
[ -x "$TIDEPOOL" ] || { echo "$TIDEPOOL is not executable" >&2; exit 2; }

if [ -z "${PG_BINDIR:-}" ]; then
    PG_BINDIR=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n | tail -1)
    [ -n "$PG_BINDIR" ] || PG_BINDIR=$(pg_config --bindir)
fi

WORK=$(mktemp -d /tmp/nodepg-compat-XXXXXX)
chmod 755 "$WORK"
PGDATA=$WORK/pgdata
TP_PID=
as_pg() {   # PostgreSQL refuses to run as root: use the postgres OS user then
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
cleanup() {
    [ -n "$TP_PID" ] && kill "$TP_PID" 2>/dev/null && wait "$TP_PID" 2>/dev/null
    as_pg "$PG_BINDIR/pg_ctl" -D "$PGDATA" -m immediate stop >/dev/null 2>&1
    if [ "${NODEPG_KEEP:-}" = 1 ]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ------------------------------------------------------------ PostgreSQL
PGPORT_REAL=$(free_port)
[ "$(id -u)" -eq 0 ] && chown postgres: "$WORK"
echo postgres > "$WORK/pwfile"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -keyout "$WORK/server.key" -out "$WORK/server.crt" >/dev/null 2>&1 || exit 1
chmod 600 "$WORK/server.key"
[ "$(id -u)" -eq 0 ] && chown postgres: "$WORK/server.key" "$WORK/server.crt"
as_pg "$PG_BINDIR/initdb" -U postgres --pwfile="$WORK/pwfile" -A md5 \
      --auth-local=trust -D "$PGDATA" >"$WORK/initdb.log" 2>&1 \
    || { cat "$WORK/initdb.log"; exit 1; }
cat >>"$PGDATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PGPORT_REAL
unix_socket_directories = '$WORK'
fsync = off
max_connections = 200
ssl = on
ssl_cert_file = '$WORK/server.crt'
ssl_key_file = '$WORK/server.key'
${NODEPG_PGCONF:-}
EOF
as_pg "$PG_BINDIR/pg_ctl" -D "$PGDATA" -l "$WORK/postgres.log" -w start >/dev/null \
    || { cat "$WORK/postgres.log"; exit 1; }
psql_su() { as_pg "$PG_BINDIR/psql" -X -q -h "$WORK" -p "$PGPORT_REAL" -U postgres -v ON_ERROR_STOP=1 "$@"; }
psql_su -d postgres -c "CREATE DATABASE ci_db_test" \
    -c "SET password_encryption = 'scram-sha-256'" \
    -c "CREATE ROLE scram_test LOGIN PASSWORD 'test4scram'" \
    -c "CREATE ROLE scram_unicode_test LOGIN PASSWORD U&'IX-\\2168'" || exit 1

# --------------------------------------------------------------- tidepool
TP_PORT=$(free_port)
psql_su -d postgres -Atc "SELECT format('\"%s\" \"%s\"', rolname, rolpassword)
    FROM pg_authid WHERE rolpassword IS NOT NULL" >"$WORK/userlist.txt" || exit 1
start_tidepool() {   # $1 = pool mode
    mkdir -p "$WORK/tp-$1"
    cat >"$WORK/tp-$1/tidepool.ini" <<EOF
[tidepool]
listen_addr = 127.0.0.1
listen_port = $TP_PORT
unix_socket_dir = $WORK/tp-$1
auth_type = md5
auth_file = $WORK/userlist.txt
pool_mode = $1
default_pool_size = 20
max_client_conn = 500
metrics_port = 0
client_tls_sslmode = prefer
client_tls_key_file = $WORK/server.key
client_tls_cert_file = $WORK/server.crt

[databases]
* = host=127.0.0.1 port=$PGPORT_REAL
EOF
    "$TIDEPOOL" -v "$WORK/tp-$1/tidepool.ini" >"$WORK/tp-$1/tidepool.log" 2>&1 &
    TP_PID=$!
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/$TP_PORT) 2>/dev/null && return 0
        kill -0 "$TP_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "tidepool did not start:"; cat "$WORK/tp-$1/tidepool.log"; exit 1
}
stop_tidepool() {
    kill "$TP_PID" 2>/dev/null; wait "$TP_PID" 2>/dev/null; TP_PID=
}

# ------------------------------------------------------------------ runs
cd "$NODEPG/packages/pg" || exit 2
mapfile -t FILES < <(find test/integration -name '*-tests.js' | sort | grep -E "${NODEPG_FILTER:-.}")

run_mode() {   # $1 = mode, $2 = port
    local mode=$1 port=$2 f log rc ok files_ok=0 tests_ok=0 failed=()
    mkdir -p "$WORK/logs-$mode"
    for f in "${FILES[@]}"; do
        log=$WORK/logs-$mode/$(echo "$f" | tr / _).log
        PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGPASSWORD=postgres \
        PGDATABASE=ci_db_test PGTESTNOSSL=true \
        SCRAM_TEST_PGUSER=scram_test SCRAM_TEST_PGPASSWORD=test4scram \
        SCRAM_TEST_PGUSER_UNICODE=scram_unicode_test \
        SCRAM_TEST_PGPASSWORD_UNICODE=$'IX-\u2168' \
            timeout -k 5 "$TIMEOUT" node "$f" >"$log" 2>&1 </dev/null
        rc=$?
        ok=$(grep -c '✔' "$log")
        tests_ok=$((tests_ok + ok))
        if [ $rc -eq 0 ]; then
            files_ok=$((files_ok + 1))
            printf '%-12s pass %3d  %s\n' "$mode" "$ok" "$f"
        else
            failed+=("$f")
            printf '%-12s FAIL %3d  %s (exit %d%s)\n' "$mode" "$ok" "$f" "$rc" \
                "$([ $rc -eq 124 ] && echo ", timed out after ${TIMEOUT}s")"
            [ -n "${NODEPG_VERBOSE:-}" ] && sed 's/^/    | /' "$log" | tail -25
        fi
    done
    SUMMARY+=("$(printf '%-12s files passed %d of %d, tests passed (✔) %d' \
        "$mode" "$files_ok" "${#FILES[@]}" "$tests_ok")")
}

SUMMARY=()
for mode in "${MODES[@]}"; do
    case $mode in
    direct) run_mode direct "$PGPORT_REAL" ;;
    session|transaction)
        start_tidepool "$mode"
        run_mode "$mode" "$TP_PORT"
        stop_tidepool ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
    esac
done
echo
printf '%s\n' "${SUMMARY[@]}"
