#!/usr/bin/env bash
# Quick start: install what is missing (Debian/Ubuntu), build tidepool,
# create a throwaway PostgreSQL in ./.quickstart, start tidepool in front of
# it on 127.0.0.1:6432 and print the psql line to use. Ctrl-C stops both and
# removes ./.quickstart.
#
#   ./quickstart.sh
#   TIDEPOOL_PORT=6433 ./quickstart.sh     listen somewhere else
#   TIDEPOOL_BIN=/path/tidepool ./quickstart.sh   skip the build, use that binary
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT=$PWD
QS=$ROOT/.quickstart
LISTEN_PORT=${TIDEPOOL_PORT:-6432}
PG_OS_USER=postgres

PACKAGES=(build-essential autoconf automake libtool pkg-config libevent-dev libssl-dev
          libc-ares-dev libpq-dev postgresql postgresql-client)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

pkg_installed() {
    dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed' && return 0
    case $1 in
        postgresql|postgresql-client)
            dpkg-query -W -f='${Package} ${Status}\n' "$1-[0-9]*" 2>/dev/null |
                grep -q ' install ok installed$' && return 0 ;;
    esac
    return 1
}

install_missing() {
    command -v dpkg-query >/dev/null 2>&1 || return 0
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
    apt-get update -q
    apt-get install -y -q "${missing[@]}" </dev/null
}

build() {
    if [ -n "${TIDEPOOL_BIN:-}" ]; then
        BIN=$TIDEPOOL_BIN
        [ -x "$BIN" ] || die "TIDEPOOL_BIN=$BIN is not executable"
        return
    fi
    if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
        say "autoreconf -fi"
        autoreconf -fi
    fi
    mkdir -p build
    ( cd build
      [ -f Makefile ] || { say "configure"; ../configure >/dev/null; }
      say "make -j2"
      make -j2 >/dev/null )
    BIN=$ROOT/build/src/tidepool
}

pg_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
        [ -x "$d/initdb" ] && { echo "$d"; return; }
    done
    d=$(pg_config --bindir 2>/dev/null || true)
    [ -n "$d" ] && [ -x "$d/initdb" ] && { echo "$d"; return; }
    d=$(command -v initdb 2>/dev/null || true)
    [ -n "$d" ] && { dirname "$d"; return; }
    die "cannot find initdb; install the postgresql package"
}

# Run a PostgreSQL program unprivileged: initdb refuses to run as root.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        if command -v runuser >/dev/null 2>&1; then
            (cd "$PGBASE" && runuser -u "$PG_OS_USER" -- "$@")
        else
            (cd "$PGBASE" && setpriv --reuid="$PG_OS_USER" --regid="$PG_OS_USER" --init-groups -- "$@")
        fi
    else
        (cd "$PGBASE" && "$@")
    fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Ports below the kernel's ephemeral range, so that no outgoing connection
# holds them; one that something listens on is skipped.
next_free_port() {   # after
    local p=$1
    while [ "$p" -lt 16999 ]; do
        p=$((p + 1))
        [ "$p" = "$LISTEN_PORT" ] && continue
        port_in_use "$p" || { echo "$p"; return; }
    done
    die "no free port for PostgreSQL in 15433-16999"
}

# ------------------------------------------------------------- clean up
TP_PID=
PG_STARTED=
PGBASE=
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    echo >&2
    if [ -n "$TP_PID" ] && kill -0 "$TP_PID" 2>/dev/null; then
        say "stopping tidepool"
        kill -TERM "$TP_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$TP_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$TP_PID" 2>/dev/null || true
        wait "$TP_PID" 2>/dev/null || true
    fi
    if [ -n "$PG_STARTED" ]; then
        say "stopping PostgreSQL"
        as_pg "$PGBIN/pg_ctl" -D "$PGBASE/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    [ -n "$PGBASE" ] && [ "$PGBASE" != "$QS/pg" ] && rm -rf "$PGBASE"
    rm -rf "$QS"
    say "removed .quickstart"
    exit "$rc"
}

remove_leftovers() {
    # a previous run that was killed hard: stop its PostgreSQL, remove it
    [ -d "$QS" ] || return 0
    local base=$QS/pg
    [ -f "$QS/pgbase" ] && base=$(cat "$QS/pgbase")
    if [ -f "$base/data/postmaster.pid" ]; then
        say "stopping the PostgreSQL of a previous run"
        PGBASE=$base as_pg "$PGBIN/pg_ctl" -D "$base/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if [ -f "$QS/tidepool.pid" ]; then
        local old; old=$(cat "$QS/tidepool.pid")
        if [ -n "$old" ] && kill -0 "$old" 2>/dev/null &&
           grep -q tidepool "/proc/$old/cmdline" 2>/dev/null; then
            kill -KILL "$old" 2>/dev/null || true
        fi
    fi
    [ "$base" != "$QS/pg" ] && rm -rf "$base"
    rm -rf "$QS"
}

# ----------------------------------------------------------------- main
install_missing
build
PGBIN=$(pg_bindir)
remove_leftovers

if port_in_use "$LISTEN_PORT"; then
    die "127.0.0.1:$LISTEN_PORT is already in use (another pooler?); stop it or set TIDEPOOL_PORT"
fi

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$QS"
PGBASE=$QS/pg
mkdir -p "$PGBASE"
if [ "$(id -u)" -eq 0 ]; then
    id "$PG_OS_USER" >/dev/null 2>&1 || die "user $PG_OS_USER does not exist (install postgresql)"
    chown "$PG_OS_USER:" "$PGBASE"
    if ! runuser -u "$PG_OS_USER" -- test -w "$PGBASE" 2>/dev/null; then
        # the checkout is not reachable by the postgres user (e.g. under /root)
        rmdir "$PGBASE"
        PGBASE=$(mktemp -d /tmp/tidepool-quickstart.XXXXXX)
        chown "$PG_OS_USER:" "$PGBASE"
        echo "$PGBASE" > "$QS/pgbase"
        say "$QS is not reachable by user $PG_OS_USER; PostgreSQL data goes to $PGBASE"
    fi
fi
chmod 700 "$PGBASE"

say "initdb ($("$PGBIN/postgres" --version))"
if ! as_pg "$PGBIN/initdb" -D "$PGBASE/data" -U postgres -A trust -E UTF8 --locale=C \
        >"$QS/initdb.log" 2>&1; then
    cat "$QS/initdb.log" >&2
    die "initdb failed"
fi
PGPORT=15432
for attempt in 1 2 3 4 5; do
    PGPORT=$(next_free_port "$PGPORT")
    # later lines win in postgresql.conf
    as_pg sh -c "cat >> '$PGBASE/data/postgresql.conf'" <<EOF

# quickstart
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$PGBASE/data'
EOF
    say "starting PostgreSQL on 127.0.0.1:$PGPORT"
    PG_STARTED=1
    if as_pg "$PGBIN/pg_ctl" -D "$PGBASE/data" -l "$PGBASE/postgres.log" -w -t 60 start >/dev/null; then
        break
    fi
    if [ "$attempt" -lt 5 ] && grep -q "Address already in use" "$PGBASE/postgres.log"; then
        say "port $PGPORT is taken; trying another"
        PG_STARTED=
        continue
    fi
    cat "$PGBASE/postgres.log" >&2 || true
    die "PostgreSQL did not start"
done

# trust admits the users auth_file lists (as PgBouncer): the throwaway
# cluster's superuser, no password
printf '"postgres" ""\n' > "$QS/userlist.txt"

cat > "$QS/tidepool.ini" <<EOF
; written by quickstart.sh: tidepool on 127.0.0.1:$LISTEN_PORT in front of
; the throwaway PostgreSQL on 127.0.0.1:$PGPORT (see etc/tidepool.ini for
; every setting)
[tidepool]
listen_addr = 127.0.0.1
listen_port = $LISTEN_PORT
unix_socket_dir = $QS
auth_type = trust
auth_file = $QS/userlist.txt
;; transaction pooling, what tidepool is for: a client holds a server only
;; for the length of a transaction. Session-level state (SET, LISTEN,
;; advisory locks, temp tables) pins the client to its server
;; (pin_session_state). For one server per client connection:
;; pool_mode = session
pool_mode = transaction
default_pool_size = 20
max_client_conn = 100
admin_users = postgres

[databases]
* = host=127.0.0.1 port=$PGPORT
EOF

say "starting tidepool ($BIN)"
"$BIN" "$QS/tidepool.ini" &
TP_PID=$!
echo "$TP_PID" > "$QS/tidepool.pid"

up=
for _ in $(seq 100); do
    kill -0 "$TP_PID" 2>/dev/null || break
    if port_in_use "$LISTEN_PORT"; then up=1; break; fi
    sleep 0.1
done
if [ -z "$up" ]; then
    die "tidepool did not start listening on 127.0.0.1:$LISTEN_PORT"
fi

cat <<EOF

tidepool is listening on 127.0.0.1:$LISTEN_PORT, in front of PostgreSQL on 127.0.0.1:$PGPORT.
Connect with:

psql -h 127.0.0.1 -p $LISTEN_PORT -U postgres postgres

Press Ctrl-C to stop both (and remove .quickstart).

EOF

set +e
wait "$TP_PID"
rc=$?
set -e
TP_PID=
say "tidepool exited with status $rc"
exit "$rc"
