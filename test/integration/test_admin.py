"""Issue 6: the admin console (virtual database "pgbouncer"/"tidepool"):
access rules, the simple-query loop, every SHOW with PgBouncer 1.25's
columns and types, and the control commands, against a real PostgreSQL.

Console connections use psycopg with autocommit: psycopg 3 sends a query
without parameters with the simple query protocol (PQsendQuery), which is
what the console speaks. pgraw is used where the exact messages matter."""

import re
import subprocess
import time

import psycopg
import pytest

import pgraw
from conftest import Background, clean_env, pg_bin, wait_until

# type OIDs as PostgreSQL numbers them
T, I4, I8, N, TS, B = 25, 23, 20, 1700, 1184, 17

SOCKET_COLS = [
    ("type", T), ("user", T), ("database", T), ("replication", T), ("state", T),
    ("addr", T), ("port", I4), ("local_addr", T), ("local_port", I4),
    ("connect_time", T), ("request_time", T), ("wait", I4), ("wait_us", I4),
    ("close_needed", I4), ("ptr", T), ("link", T), ("remote_pid", I4), ("tls", T),
    ("application_name", T), ("prepared_statements", I4), ("id", I4),
    ("session_state", T),
]
SOCKET_EXTRA = [
    ("recv_pos", I4), ("pkt_pos", I4), ("pkt_remain", I4), ("send_pos", I4),
    ("send_remain", I4), ("pkt_avail", I4), ("send_avail", I4),
]
STAT_NAMES = ["server_assignment_count", "xact_count", "query_count", "bytes_received",
              "bytes_sent", "xact_time", "query_time", "wait_time", "client_parse_count",
              "server_parse_count", "bind_count"]

# Every SHOW of the reference (PgBouncer 1.25), columns in wire order.
EXPECTED = {
    "POOLS": [("database", T), ("user", T), ("cl_active", I4), ("cl_waiting", I4),
              ("cl_active_cancel_req", I4), ("cl_waiting_cancel_req", I4), ("sv_active", I4),
              ("sv_active_cancel", I4), ("sv_being_canceled", I4), ("sv_idle", I4),
              ("sv_used", I4), ("sv_tested", I4), ("sv_login", I4), ("maxwait", I4),
              ("maxwait_us", I4), ("pool_mode", T), ("load_balance_hosts", T),
              ("session_state", T), ("cl_pinned", I4), ("state_refused", I8), ("state_allowed", I8),
              ("settings_replays", I8)],
    "STATS": [("database", T)]
    + [("total_" + n, N) for n in ["server_assignment_count", "xact_count", "query_count",
                                   "received", "sent", "xact_time", "query_time",
                                   "wait_time", "client_parse_count",
                                   "server_parse_count", "bind_count"]]
    + [("avg_" + n, N) for n in ["server_assignment_count", "xact_count", "query_count",
                                 "recv", "sent", "xact_time", "query_time", "wait_time",
                                 "client_parse_count", "server_parse_count",
                                 "bind_count"]],
    "STATS_TOTALS": [("database", T)] + [(n, N) for n in STAT_NAMES],
    "STATS_AVERAGES": [("database", T)] + [(n, N) for n in STAT_NAMES[:8]]
    + [("avg_client_parse_count", N), ("avg_server_parse_count", N), ("avg_bind_count", N)],
    "TOTALS": [("name", T), ("value", N)],
    "CLIENTS": SOCKET_COLS,
    "SERVERS": SOCKET_COLS,
    "SOCKETS": SOCKET_COLS + SOCKET_EXTRA,
    "ACTIVE_SOCKETS": SOCKET_COLS + SOCKET_EXTRA,
    "DATABASES": [("name", T), ("host", T), ("port", I4), ("database", T), ("force_user", T),
                  ("pool_size", I4), ("min_pool_size", I4), ("reserve_pool_size", I4),
                  ("server_lifetime", I4), ("pool_mode", T), ("load_balance_hosts", T),
                  ("max_connections", I4), ("current_connections", I4),
                  ("max_client_connections", I4), ("current_client_connections", I4),
                  ("paused", I4), ("disabled", I4)],
    "USERS": [("name", T), ("pool_size", T), ("reserve_pool_size", T), ("pool_mode", T),
              ("max_user_connections", I4), ("current_connections", I4),
              ("max_user_client_connections", I4), ("current_client_connections", I4)],
    "PEERS": [("peer_id", I4), ("host", T), ("port", I4), ("pool_size", I4)],
    "PEER_POOLS": [("peer_id", I4), ("cl_active_cancel_req", I4),
                   ("cl_waiting_cancel_req", I4), ("sv_active_cancel", I4), ("sv_login", I4)],
    "LISTS": [("list", T), ("items", I4)],
    "CONFIG": [("key", T), ("value", T), ("default", T), ("changeable", T)],
    "FDS": [("fd", I4), ("task", T), ("user", T), ("database", T), ("addr", T), ("port", I4),
            ("cancel", I8), ("link", I4), ("client_encoding", T), ("std_strings", T),
            ("datestyle", T), ("timezone", T), ("password", T), ("scram_client_key", B),
            ("scram_server_key", B)],
    "MEM": [("name", T), ("size", I4), ("used", I4), ("free", I4), ("memtotal", I4)],
    "DNS_HOSTS": [("hostname", T), ("ttl", I8), ("addrs", T)],
    "DNS_ZONES": [("zonename", T), ("serial", I8), ("count", I4)],
    "VERSION": [("version", T)],
    "STATE": [("key", T), ("value", T)],
    "PREPARED_STATEMENTS": [("database", T), ("user", T), ("name", T), ("query", T),
                            ("params", I4), ("parse_count", I8), ("use_count", I8),
                            ("server_prepares", I8)],
}


# ---------------------------------------------------------------- helpers

def admin_tp(tidepool, **kw):
    kw.setdefault("admin_users", "admin")
    kw.setdefault("stats_users", "stats")
    return tidepool(**kw)


def console(tp, user="admin", dbname="pgbouncer", **kw):
    return tp.connect(dbname=dbname, user=user, **kw)


def show(conn, what):
    """(column names, type oids, rows as dicts) of SHOW what."""
    cur = conn.execute("SHOW " + what)
    names = [d.name for d in cur.description]
    types = [d.type_code for d in cur.description]
    return names, types, [dict(zip(names, r)) for r in cur.fetchall()]


def rows(conn, what):
    return show(conn, what)[2]


def pool_row(conn, db="appdb", user="app"):
    for r in rows(conn, "POOLS"):
        if r["database"] == db and r["user"] == user:
            return r
    return None


def config_value(conn, key):
    for r in rows(conn, "CONFIG"):
        if r["key"] == key:
            return r["value"]
    return None


def stat(conn, db, field):
    for r in rows(conn, "STATS_TOTALS"):
        if r["database"] == db:
            return int(r[field])
    return 0


def expect_sqlstate(state, fn, *args):
    with pytest.raises(psycopg.Error) as ei:
        fn(*args)
    assert ei.value.sqlstate == state, (ei.value.sqlstate, str(ei.value))
    return ei.value


def login_error(tp, user, dbname="pgbouncer"):
    """The ErrorResponse fields a login gets (psycopg hides the SQLSTATE of
    connection failures)."""
    with tp.raw() as c:
        with pytest.raises(pgraw.PgError) as ei:
            c.startup(user=user, database=dbname)
    return ei.value.fields


def pid_of(conn):
    return conn.execute("select pg_backend_pid()").fetchone()[0]


# ------------------------------------------------------------- the SHOWs

def test_every_show_has_pgbouncer_columns_and_types(tidepool):
    tp = admin_tp(tidepool)
    with tp.connect() as app, console(tp) as adm:
        app.execute("select 1")
        for what, cols in EXPECTED.items():
            names, types, _ = show(adm, what)
            assert list(zip(names, types)) == cols, what
            # lower case works too
            assert show(adm, what.lower())[0] == [c[0] for c in cols], what


def test_help_is_a_notice(tidepool):
    tp = admin_tp(tidepool)
    notices = []
    with console(tp) as adm:
        adm.add_notice_handler(lambda d: notices.append(d.message_primary))
        cur = adm.execute("SHOW HELP")
        assert cur.description is None
        assert cur.statusmessage == "SHOW"
    assert notices and "SHOW HELP|CONFIG" in notices[0] and "KILL_CLIENT" in notices[0]


def test_fake_settings_for_drivers(tidepool):
    tp = admin_tp(tidepool)
    with console(tp) as adm:
        for name, value in [("client_encoding", "UTF8"), ("standard_conforming_strings", "on"),
                            ("DateStyle", "ISO"), ("TimeZone", "GMT"),
                            ("default_transaction_isolation", "read committed")]:
            cur = adm.execute("SHOW " + name.lower())
            assert [d.name for d in cur.description] == [name]
            assert cur.fetchall() == [(value,)]


def test_version_and_select_alias(tidepool):
    tp = admin_tp(tidepool)
    with console(tp) as adm:
        assert adm.execute("SHOW VERSION").fetchall() == [("tidepool 0.1.0",)]
        assert adm.execute("select version").fetchall() == [("tidepool 0.1.0",)]
        # the "tidepool" alias of the console database
    with console(tp, dbname="tidepool") as adm:
        assert adm.execute("show version").fetchone()[0].startswith("tidepool ")


def test_config_from_the_key_table(tidepool):
    tp = admin_tp(tidepool, max_client_conn=77)
    with console(tp) as adm:
        cfg = {r["key"]: r for r in rows(adm, "CONFIG")}
    assert cfg["max_client_conn"]["value"] == "77"
    assert cfg["max_client_conn"]["default"] == "100"
    assert cfg["max_client_conn"]["changeable"] == "yes"
    assert cfg["listen_port"]["changeable"] == "no"
    assert cfg["max_user_connections"]["value"] == "0"
    assert cfg["admin_users"]["value"] == "admin"


def test_pools_counts(tidepool):
    tp = admin_tp(tidepool, pool_mode="session")
    a, b = tp.connect(), tp.connect()
    try:
        a.execute("select 1")
        b.execute("select 1")
        with console(tp) as adm:
            r = pool_row(adm)
            assert (r["cl_active"], r["cl_waiting"], r["sv_active"], r["sv_idle"]) == (2, 0, 2, 0)
            assert r["pool_mode"] == "session" and r["load_balance_hosts"] is None
            b.close()
            r = wait_until(lambda: (lambda x: x if x["sv_idle"] == 1 else None)(pool_row(adm)))
            assert r and (r["cl_active"], r["sv_active"], r["sv_idle"]) == (1, 1, 1), pool_row(adm)
            # the console's own pool is listed, as PgBouncer lists it
            con = pool_row(adm, "pgbouncer", "pgbouncer")
            assert con and con["cl_active"] >= 1 and con["pool_mode"] == "statement"
    finally:
        a.close()


def test_clients_and_servers_rows_and_states(tidepool, role):
    tp = admin_tp(tidepool, pool_mode="transaction", default_pool_size=1)
    holder = tp.connect(user=role, application_name="holder")
    waiter = tp.connect(user=role, application_name="waiter")
    try:
        holder.execute("begin")
        holder.execute("select 1")
        bg = Background(waiter.execute, "select 2")
        with console(tp) as adm:
            def states():
                cl = {r["application_name"]: r for r in rows(adm, "CLIENTS")
                      if r["user"] == role}
                return cl if cl.get("waiter", {}).get("state") == "waiting" else None
            cl = wait_until(states)
            assert cl, rows(adm, "CLIENTS")
            assert cl["holder"]["state"] == "active"
            assert cl["holder"]["database"] == "appdb" and cl["holder"]["type"] == "C"
            assert cl["holder"]["addr"] == "127.0.0.1" and cl["holder"]["port"] > 0
            assert cl["holder"]["local_port"] == tp.port
            # PgBouncer's text format, not a timestamptz (tools parse it as a string)
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+", cl["holder"]["connect_time"])
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+", cl["holder"]["request_time"])
            assert cl["holder"]["replication"] == "none"
            sv = [r for r in rows(adm, "SERVERS") if r["user"] == role]
            assert len(sv) == 1 and sv[0]["state"] == "active" and sv[0]["type"] == "S"
            assert sv[0]["link"] == cl["holder"]["ptr"]
            assert cl["holder"]["link"] == sv[0]["ptr"]
            assert sv[0]["remote_pid"] == pid_of(holder)
            holder.execute("commit")
            bg.result(10)
            cl = {r["application_name"]: r for r in rows(adm, "CLIENTS") if r["user"] == role}
            assert cl["holder"]["state"] == "idle" and cl["waiter"]["state"] == "idle"
            sockets = rows(adm, "SOCKETS")
            assert {r["state"] for r in sockets if r["user"] == role} <= {"cl_active", "sv_idle"}
    finally:
        holder.close()
        waiter.close()


def test_stats_totals_count_transactions(tidepool, role):
    tp = admin_tp(tidepool, pool_mode="transaction")
    with console(tp) as adm, tp.connect(user=role) as c:
        before_x = stat(adm, "appdb", "xact_count")
        before_q = stat(adm, "appdb", "query_count")
        before_r = stat(adm, "appdb", "bytes_received")
        for i in range(5):
            with c.transaction():
                c.execute("select 1")
                c.execute("select 2")
        assert stat(adm, "appdb", "xact_count") - before_x == 5
        assert stat(adm, "appdb", "query_count") - before_q >= 10
        assert stat(adm, "appdb", "bytes_received") > before_r
        totals = {r["name"]: r["value"] for r in rows(adm, "TOTALS")}
        assert list(totals)[:3] == ["total_server_assignment_count", "total_xact_count",
                                    "total_query_count"]
        assert "avg_ps_bind_count" in totals and len(totals) == 22
        assert totals["total_xact_count"] >= 5


def test_stats_averages_over_stats_period(tidepool, role):
    tp = admin_tp(tidepool, pool_mode="transaction", stats_period=1)
    with console(tp) as adm, tp.connect(user=role) as c:
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            c.execute("select 1")
            time.sleep(0.01)
        avg = [r for r in rows(adm, "STATS_AVERAGES") if r["database"] == "appdb"][0]
        assert avg["xact_count"] > 0 and avg["query_count"] > 0, avg
        assert avg["query_time"] > 0, avg
        st = [r for r in rows(adm, "STATS") if r["database"] == "appdb"][0]
        assert st["avg_xact_count"] > 0 and st["total_xact_count"] > 0


def test_lists_databases_users_and_more(tidepool):
    tp = admin_tp(tidepool)
    with tp.connect() as app, console(tp) as adm:
        app.execute("select 1")
        lists = {r["list"]: r["items"] for r in rows(adm, "LISTS")}
        assert list(lists) == ["databases", "users", "peers", "pools", "peer_pools",
                               "free_clients", "used_clients", "login_clients",
                               "free_servers", "used_servers", "dns_names", "dns_zones",
                               "dns_queries", "dns_pending"]
        assert lists["databases"] == 3   # appdb, postgres, pgbouncer
        assert lists["pools"] == 2 and lists["used_clients"] == 2 and lists["used_servers"] == 1
        dbs = {r["name"]: r for r in rows(adm, "DATABASES")}
        assert set(dbs) == {"appdb", "postgres", "pgbouncer"}
        assert dbs["appdb"]["host"] == "127.0.0.1" and dbs["appdb"]["port"] == tp.pg.port
        assert dbs["appdb"]["pool_size"] == 20 and dbs["appdb"]["current_connections"] == 1
        assert dbs["appdb"]["current_client_connections"] == 1
        assert dbs["pgbouncer"]["pool_mode"] == "statement"
        users = {r["name"] for r in rows(adm, "USERS")}
        assert "app" in users
        state = {r["key"]: r["value"] for r in rows(adm, "STATE")}
        assert state == {"active": "yes", "paused": "no", "suspended": "no"}
        mem = {r["name"]: r for r in rows(adm, "MEM")}
        assert mem["client"]["used"] == 2 and mem["iobuf"]["size"] == 4096


# ------------------------------------------------------------- access

def test_stats_user_may_only_read(tidepool):
    tp = admin_tp(tidepool)
    with console(tp, user="stats") as st:
        assert rows(st, "POOLS")
        assert rows(st, "VERSION")
        for cmd in ("PAUSE", "RESUME", "KILL_CLIENT 1", "SHOW FDS", "RELOAD",
                    "SET default_pool_size = 3", "KILL appdb", "SHUTDOWN"):
            err = expect_sqlstate("42501", st.execute, cmd)
            assert "admin" in str(err)
        assert rows(st, "STATE")   # still usable
    assert tp.alive()


def test_unlisted_user_is_not_allowed(tidepool):
    tp = admin_tp(tidepool)
    err = login_error(tp, "app")
    assert err["C"] == "42501" and err["M"] == "not allowed", err
    # with auth_type = md5, admin_users still need their password
    tp2 = admin_tp(tidepool, auth_type="md5", auth_file={"admin": "secret"})
    with pytest.raises(psycopg.OperationalError):
        console(tp2, password="wrong")
    with console(tp2, password="secret") as adm:
        assert rows(adm, "VERSION")


def test_same_os_user_over_unix_socket(tidepool):
    tp = admin_tp(tidepool, auth_type="md5", auth_file={"admin": "secret"})
    # PgBouncer's rule: user pgbouncer, same uid, unix socket: no password
    with console(tp, user="pgbouncer", host=tp.sockdir) as adm:
        adm.execute("PAUSE")
        adm.execute("RESUME")
    # over TCP the same user is refused
    with pytest.raises(psycopg.OperationalError):
        console(tp, user="pgbouncer")


# ------------------------------------------------------------- grammar

def test_unknown_command_leaves_connection_usable(tidepool):
    tp = admin_tp(tidepool)
    with console(tp) as adm:
        err = expect_sqlstate("42601", adm.execute, "FROBNICATE")
        assert "SHOW HELP" in str(err)
        expect_sqlstate("42704", adm.execute, "SHOW NOTHING")
        expect_sqlstate("42601", adm.execute, "PAUSE a b")
        expect_sqlstate("42601", adm.execute, "SHOW 'unterminated")
        assert adm.execute("SHOW VERSION").fetchone()[0].startswith("tidepool")
        # an empty query
        cur = adm.execute(";")
        assert cur.description is None


def test_several_commands_in_one_query(tidepool):
    tp = admin_tp(tidepool)
    with tp.raw() as c:
        c.startup(user="admin", database="pgbouncer")
        c.send(pgraw.query_message("show version; SHOW STATE ;"))
        msgs = []
        while True:
            typ, body = c.read_message()
            msgs.append((typ, body))
            if typ == "Z":
                break
        kinds = [t for t, _ in msgs]
        assert kinds == ["T", "D", "C", "T", "D", "D", "D", "C", "Z"], kinds
        assert msgs[2][1] == b"SHOW\0"
        # an error ends the query string: the rest does not run
        rws, err, status = c.query("SHOW VERSION; BOGUS; SHOW STATE")
        assert err["C"] == "42601" and rws == [["tidepool 0.1.0"]] and status == "I"
        rws, err, _ = c.query("show lists")
        assert err is None and len(rws) == 14


def test_extended_protocol_gets_an_error_not_a_hang(tidepool):
    tp = admin_tp(tidepool)
    with console(tp) as adm:
        err = expect_sqlstate("0A000", adm.execute, "SHOW %s", ("POOLS",))
        assert "simple query protocol" in str(err)
        assert adm.execute("SHOW VERSION").fetchone()
    with tp.raw() as c:
        c.startup(user="admin", database="pgbouncer")
        c.send(pgraw.message("F", b"\0\0\0\0\0\0\0\0\0\0"))
        _, err, status = c.read_results()
        assert err["C"] == "0A000" and status == "I"


def test_oversized_query_is_refused(tidepool):
    tp = admin_tp(tidepool)
    with tp.raw() as c:
        c.startup(user="admin", database="pgbouncer")
        c.send(pgraw.query_message("SHOW " + "x" * 70000))
        err = c.error_or_close()
        assert err and err["C"] == "08P01"


def test_psql(tidepool):
    tp = admin_tp(tidepool)
    r = tp.psql("SHOW POOLS", dbname="pgbouncer", user="admin")
    assert r.returncode == 0, r.stderr
    assert "pgbouncer|pgbouncer" in r.stdout
    # \l sends a catalog query: a clear error, not a hang
    r = subprocess.run([pg_bin("psql"), "-X", "-h", tp.host, "-p", str(tp.port), "-U", "admin",
                        "-d", "pgbouncer", "-c", "\\l"], env=clean_env(), capture_output=True,
                       text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert r.returncode != 0 and "invalid command" in r.stderr, r.stderr


def test_exporter_queries(tidepool):
    """Every query prometheus-community/pgbouncer_exporter makes, with the
    columns it requires."""
    tp = admin_tp(tidepool, stats_users="stats")
    need = {
        "STATS": ["database"],
        "VERSION": ["version"],
        "DATABASES": ["name", "host", "port", "database", "force_user", "pool_size",
                      "reserve_pool_size", "pool_mode", "max_connections",
                      "current_connections", "paused", "disabled"],
        "STATS_TOTALS": ["database", "query_count", "query_time", "bytes_received",
                         "bytes_sent", "wait_time", "xact_count", "xact_time",
                         "client_parse_count", "server_parse_count", "bind_count",
                         "server_assignment_count"],
        "POOLS": ["database", "user", "cl_active", "cl_active_cancel_req", "cl_waiting",
                  "cl_waiting_cancel_req", "sv_active", "sv_active_cancel",
                  "sv_being_canceled", "sv_idle", "sv_used", "sv_tested", "sv_login",
                  "maxwait"],
        "LISTS": ["list", "items"],
        "CONFIG": ["key", "value"],
        "CLIENTS": ["database", "user", "state", "application_name"],
    }
    with tp.connect() as app, console(tp, user="stats") as st:
        app.execute("select 1")
        for what, cols in need.items():
            names, types, rws = show(st, what)
            missing = set(cols) - set(names)
            assert not missing, (what, missing)
            assert rws, what
        assert len(show(st, "VERSION")[0]) == 1
        cfg = {r["key"]: r["value"] for r in rows(st, "CONFIG")}
        assert int(cfg["max_client_conn"]) == 100 and int(cfg["max_user_connections"]) == 0
        for r in rows(st, "STATS_TOTALS"):
            float(r["query_time"]) * 1e-6   # numeric decodes to a number


# ----------------------------------------------------- control commands

@pytest.mark.hard_timeout(60)
def test_pause_waits_for_transaction_and_resume(tidepool, role):
    tp = admin_tp(tidepool, pool_mode="transaction")
    c1 = tp.connect(user=role)
    c2 = tp.connect(user=role)
    adm = console(tp)
    try:
        c2.execute("select 1")
        c1.execute("begin")
        c1.execute("select 1")
        pause = Background(adm.execute, "PAUSE")
        time.sleep(1.0)
        assert not pause.done(), "PAUSE answered while a transaction was open"
        c1.execute("commit")
        cur = pause.result(10)
        assert cur.statusmessage == "PAUSE"
        # every server of the pool is gone
        assert pool_row(adm, "appdb", role)["sv_idle"] == 0
        assert rows(adm, "DATABASES")[0]["paused"] == 1
        assert {r["key"]: r["value"] for r in rows(adm, "STATE")}["paused"] == "yes"
        expect_sqlstate("55000", adm.execute, "PAUSE")
        # a query issued while paused waits ...
        q = Background(c2.execute, "select 42")
        time.sleep(1.0)
        assert not q.done(), "a query ran while paused"
        assert pool_row(adm, "appdb", role)["cl_waiting"] == 1
        # ... and runs after RESUME
        assert adm.execute("RESUME").statusmessage == "RESUME"
        assert q.result(10).fetchone()[0] == 42
        expect_sqlstate("55000", adm.execute, "RESUME")
    finally:
        for c in (c1, c2, adm):
            c.close()


def test_pause_one_database(tidepool, role):
    tp = admin_tp(tidepool, pool_mode="transaction")
    with console(tp) as adm, tp.connect(user=role) as a, \
            tp.connect(user=role, dbname="postgres") as p:
        a.execute("select 1")
        assert adm.execute("PAUSE appdb").statusmessage == "PAUSE"
        assert p.execute("select 7").fetchone()[0] == 7   # another database is not paused
        q = Background(a.execute, "select 8")
        time.sleep(0.5)
        assert not q.done()
        dbs = {r["name"]: r for r in rows(adm, "DATABASES")}
        assert dbs["appdb"]["paused"] == 1 and dbs["postgres"]["paused"] == 0
        expect_sqlstate("3D000", adm.execute, "PAUSE nosuchdb")
        expect_sqlstate("55000", adm.execute, "PAUSE pgbouncer")
        expect_sqlstate("55000", adm.execute, "RESUME postgres")
        adm.execute("RESUME appdb")
        assert q.result(10).fetchone()[0] == 8


def test_disable_and_enable(tidepool):
    tp = admin_tp(tidepool)
    with console(tp) as adm, tp.connect() as existing:
        existing.execute("select 1")
        assert adm.execute("DISABLE appdb").statusmessage == "DISABLE"
        err = login_error(tp, "app", "appdb")
        assert err["C"] == "55000" and "does not allow connections" in err["M"], err
        assert existing.execute("select 2").fetchone()[0] == 2
        assert {r["name"]: r["disabled"] for r in rows(adm, "DATABASES")}["appdb"] == 1
        adm.execute("ENABLE appdb")
        with tp.connect() as c:
            assert c.execute("select 3").fetchone()[0] == 3
        expect_sqlstate("42601", adm.execute, "DISABLE")


def test_kill_client(tidepool):
    tp = admin_tp(tidepool)
    victim = tp.connect(application_name="victim")
    other = tp.connect(application_name="other")
    try:
        victim.execute("select 1")
        other.execute("select 1")
        with console(tp) as adm:
            ids = {r["application_name"]: r["id"] for r in rows(adm, "CLIENTS")}
            assert adm.execute("KILL_CLIENT %d" % ids["victim"]).statusmessage == "KILL_CLIENT"
            with pytest.raises(psycopg.OperationalError):
                victim.execute("select 1")
            assert other.execute("select 2").fetchone()[0] == 2
            apps = {r["application_name"] for r in rows(adm, "CLIENTS")}
            assert "victim" not in apps and "other" in apps
            expect_sqlstate("42704", adm.execute, "KILL_CLIENT 999999")
            expect_sqlstate("22023", adm.execute, "KILL_CLIENT abc")
    finally:
        victim.close()
        other.close()


def test_kill_database_then_resume(tidepool):
    tp = admin_tp(tidepool)
    with tp.raw() as victim, console(tp) as adm:
        victim.startup(user="app", database="appdb")
        victim.query("select 1")
        assert adm.execute("KILL appdb").statusmessage == "KILL"
        err = victim.error_or_close()
        assert err and err["C"] == "57P01" and "KILL" in err["M"], err
        assert pool_row(adm)["sv_idle"] == 0 and pool_row(adm)["cl_active"] == 0
        # new clients may log in, but wait until RESUME
        with tp.connect() as c:
            q = Background(c.execute, "select 5")
            time.sleep(0.5)
            assert not q.done()
            adm.execute("RESUME appdb")
            assert q.result(10).fetchone()[0] == 5


def test_reload_reports_errors_and_keeps_serving(tidepool):
    tp = admin_tp(tidepool)
    good = open(tp.config_path).read()
    with console(tp) as adm:
        tp.write_config(text=good + "\nthis is not a key value line\n")
        err = expect_sqlstate("F0000", adm.execute, "RELOAD")
        assert "RELOAD failed" in str(err)
        with tp.connect() as c:
            assert c.execute("select 1").fetchone()[0] == 1
        tp.write_config(text=good.replace("[databases]", "default_pool_size = 4\n[databases]"))
        assert adm.execute("RELOAD").statusmessage == "RELOAD"
        assert config_value(adm, "default_pool_size") == "4"
        assert {r["name"]: r["pool_size"] for r in rows(adm, "DATABASES")}["appdb"] == 4


def test_set_default_pool_size_takes_effect(tidepool, pg, role):
    tp = admin_tp(tidepool, pool_mode="transaction")
    with console(tp) as adm:
        assert adm.execute("SET default_pool_size = 3").statusmessage == "SET"
        assert config_value(adm, "default_pool_size") == "3"
        # refused values change nothing
        expect_sqlstate("22023", adm.execute, "set default_pool_size = many")
        expect_sqlstate("22023", adm.execute, "SET default_pool_size TO '-1'")
        expect_sqlstate("55P02", adm.execute, "SET listen_port = 7000")
        expect_sqlstate("42704", adm.execute, "SET no_such_key = 1")
        assert config_value(adm, "default_pool_size") == "3"
        conns = [tp.connect(user=role) for _ in range(5)]
        try:
            for c in conns[:3]:
                c.execute("begin")
                c.execute("select 1")
            q = Background(conns[3].execute, "select 4")
            time.sleep(0.5)
            assert not q.done(), "a 4th server was opened"
            assert len(pg.backends(user=role)) == 3
            conns[0].execute("commit")
            assert q.result(10).fetchone()[0] == 4
        finally:
            for c in conns:
                c.close()
        # a string key, quoted
        adm.execute("SET server_reset_query TO 'DISCARD ALL'")
        assert config_value(adm, "server_reset_query") == "DISCARD ALL"
        # RELOAD re-reads the file: values made by SET give way to it
        assert adm.execute("RELOAD").statusmessage == "RELOAD"
        assert config_value(adm, "default_pool_size") == "20"


def test_set_validates_like_the_file(tidepool):
    tp = admin_tp(tidepool)
    with console(tp) as adm:
        before = {r["key"]: r["value"] for r in rows(adm, "CONFIG")}
        err = expect_sqlstate("22023", adm.execute, "SET pool_mode = sometimes")
        assert "pool_mode" in str(err) and "expected one of" in str(err)
        expect_sqlstate("22023", adm.execute, "SET query_timeout = soon")
        expect_sqlstate("22023", adm.execute, "SET auth_type = hba")   # needs auth_hba_file
        expect_sqlstate("22023", adm.execute, "SET auth_file = '/nonexistent/users.txt'")
        assert {r["key"]: r["value"] for r in rows(adm, "CONFIG")} == before
        assert adm.execute("SET query_timeout = 2.5").statusmessage == "SET"
        assert config_value(adm, "query_timeout") == "2.5"
        assert adm.execute("set log_connections to 0").statusmessage == "SET"
        assert config_value(adm, "log_connections") == "0"
        with tp.connect() as c:
            assert c.execute("select 1").fetchone()[0] == 1


def test_reconnect_makes_new_backends(tidepool):
    tp = admin_tp(tidepool, pool_mode="transaction")
    with console(tp) as adm, tp.connect() as c, tp.connect() as d:
        p1 = pid_of(c)
        d.execute("begin")
        pd = pid_of(d)
        assert adm.execute("RECONNECT appdb").statusmessage == "RECONNECT"
        assert pid_of(c) != p1          # its idle server was closed at once
        assert pid_of(d) == pd          # a transaction keeps its server ...
        wait = Background(adm.execute, "WAIT_CLOSE appdb")
        time.sleep(0.5)
        assert not wait.done(), "WAIT_CLOSE answered with a marked server still open"
        d.execute("commit")
        assert wait.result(10).statusmessage == "WAIT_CLOSE"
        assert pid_of(d) != pd          # ... and then it is replaced
        assert adm.execute("RECONNECT").statusmessage == "RECONNECT"


def test_suspend_and_resume(tidepool):
    tp = admin_tp(tidepool, pool_mode="transaction")
    with console(tp) as adm, tp.connect() as c:
        c.execute("select 1")
        assert adm.execute("SUSPEND").statusmessage == "SUSPEND"
        assert {r["key"]: r["value"] for r in rows(adm, "STATE")}["suspended"] == "yes"
        q = Background(c.execute, "select 6")
        time.sleep(0.5)
        assert not q.done()
        adm.execute("RESUME")
        assert q.result(10).fetchone()[0] == 6
        assert {r["key"]: r["value"] for r in rows(adm, "STATE")}["active"] == "yes"


def test_suspend_stops_reading_mid_transaction(tidepool):
    tp = admin_tp(tidepool, pool_mode="transaction")
    with console(tp) as adm, tp.connect() as c, tp.connect() as d:
        c.execute("begin")
        c.execute("select 1")
        assert adm.execute("SUSPEND").statusmessage == "SUSPEND"
        expect_sqlstate("55000", adm.execute, "SUSPEND")
        in_tx = Background(c.execute, "select 7")
        idle = Background(d.execute, "select 8")
        time.sleep(0.5)
        assert not in_tx.done() and not idle.done()
        # new connections wait in the listen queue
        late = Background(tp.psql, "select 9")
        time.sleep(0.3)
        assert not late.done()
        assert adm.execute("RESUME").statusmessage == "RESUME"
        assert in_tx.result(10).fetchone()[0] == 7
        assert idle.result(10).fetchone()[0] == 8
        assert late.result(20).stdout.strip() == "9"
        c.execute("commit")


def test_suspend_drops_a_client_that_does_not_read(tidepool, pg):
    """SUSPEND waits for output to be written; a client that reads nothing
    cannot make it wait longer than suspend_timeout: it is dropped."""
    tp = admin_tp(tidepool, pool_mode="transaction", suspend_timeout=1)
    with console(tp) as adm, tp.raw() as stuck:
        stuck.startup(user="app", database="appdb", application_name="stuck_reader")
        stuck.send(pgraw.query_message("select repeat('x', 1000) from generate_series(1, 200000)"))
        # the backend blocks on writing once tidepool stops taking its output
        assert wait_until(lambda: pg.sql("select 1 from pg_stat_activity where "
                                         "application_name = 'stuck_reader' and "
                                         "wait_event = 'ClientWrite'"), 20)
        assert adm.execute("SUSPEND").statusmessage == "SUSPEND"
        assert "output not flushed within suspend_timeout" in tp.log()
        assert adm.execute("RESUME").statusmessage == "RESUME"
        assert stuck.wait_closed(20)
        with tp.connect() as c:
            assert c.execute("select 1").fetchone()[0] == 1


def test_wait_close_without_marked_servers_answers_at_once(tidepool):
    tp = admin_tp(tidepool)
    with console(tp) as adm, tp.connect() as c:
        c.execute("select 1")
        assert adm.execute("WAIT_CLOSE").statusmessage == "WAIT_CLOSE"
        assert adm.execute("WAIT_CLOSE appdb").statusmessage == "WAIT_CLOSE"
        expect_sqlstate("3D000", adm.execute, "WAIT_CLOSE nosuchdb")


def test_shutdown(tidepool):
    tp = admin_tp(tidepool)
    with console(tp) as adm:
        expect_sqlstate("42601", adm.execute, "SHUTDOWN NOW")
        try:
            adm.execute("SHUTDOWN")
        except psycopg.OperationalError:
            pass   # the answer may race with the exit
    assert tp.proc.wait(10) == 0


def test_shutdown_wait_for_servers_lets_a_transaction_finish(tidepool):
    tp = admin_tp(tidepool, pool_mode="transaction")
    with console(tp) as adm, tp.connect() as c:
        c.execute("begin")
        c.execute("select 1")
        try:
            assert adm.execute("SHUTDOWN WAIT_FOR_SERVERS").statusmessage == "SHUTDOWN"
        except psycopg.OperationalError:
            pass   # the console client is idle: it may be closed right after the answer
        time.sleep(0.3)
        assert tp.alive(), "exited with a transaction in flight"
        assert c.execute("select 2").fetchone()[0] == 2
        c.execute("commit")
        assert tp.proc.wait(10) == 0


def test_shutdown_wait_for_clients_waits_for_every_client(tidepool):
    tp = admin_tp(tidepool, pool_mode="transaction")
    c = tp.connect()
    try:
        with console(tp) as adm:
            assert adm.execute("SHUTDOWN WAIT_FOR_CLIENTS").statusmessage == "SHUTDOWN"
            # the listener is closed: no new client
            assert wait_until(lambda: tp.psql("select 1", timeout=10).returncode != 0, 10)
            assert c.execute("select 3").fetchone()[0] == 3   # old clients keep working
        time.sleep(0.3)
        assert tp.alive(), "exited while a client was still connected"
    finally:
        c.close()
    assert tp.proc.wait(10) == 0


# ------------------------------------------------ more values to check

def test_peers_users_and_fallback_databases(tidepool, pg):
    tp = admin_tp(tidepool, databases={"*": "host=127.0.0.1 port=%d" % pg.port},
                  users={"app": "pool_size=7 pool_mode=transaction"},
                  extra="[peers]\n1 = host=10.9.8.7 port=6433 pool_size=3\n")
    with tp.connect() as app, console(tp) as adm:
        app.execute("select 1")
        peers = rows(adm, "PEERS")
        assert peers == [{"peer_id": 1, "host": "10.9.8.7", "port": 6433, "pool_size": 3}]
        assert rows(adm, "PEER_POOLS") == [{"peer_id": 1, "cl_active_cancel_req": 0,
                                             "cl_waiting_cancel_req": 0, "sv_active_cancel": 0,
                                             "sv_login": 0}]
        users = {r["name"]: r for r in rows(adm, "USERS")}
        assert users["app"]["pool_size"] == "7" and users["app"]["pool_mode"] == "transaction"
        assert users["app"]["reserve_pool_size"] is None
        assert users["app"]["current_connections"] == 1
        assert users["app"]["current_client_connections"] == 1
        # appdb exists only through "*": listed once it is used
        dbs = {r["name"]: r for r in rows(adm, "DATABASES")}
        assert set(dbs) == {"appdb", "pgbouncer"}
        assert dbs["appdb"]["database"] == "appdb" and dbs["appdb"]["host"] == "127.0.0.1"
        assert pool_row(adm)["pool_mode"] == "transaction"


def test_show_clients_with_many_clients(tidepool, raise_nofile):
    n = 400
    tp = admin_tp(tidepool, max_client_conn=n + 10)
    conns = []
    try:
        for i in range(n):
            c = tp.raw()
            c.startup(user="app", database="appdb", application_name="many-%d" % i)
            conns.append(c)
        with console(tp) as adm:
            cl = [r for r in rows(adm, "CLIENTS") if r["application_name"].startswith("many-")]
            assert len(cl) == n and {r["state"] for r in cl} == {"idle"}
            assert len({r["id"] for r in cl}) == n
            assert len(rows(adm, "SOCKETS")) >= n + 1
            assert pool_row(adm)["cl_active"] == n
    finally:
        for c in conns:
            c.close()


def test_server_fast_close_on_reconnect(tidepool):
    """Issue 16 (PgBouncer's test_fast_close): with server_fast_close, a
    session whose server RECONNECT marked is closed between transactions,
    not when the client leaves; without it the session keeps its server."""
    for fast in (1, 0):
        tp = admin_tp(tidepool, server_fast_close=fast)
        with tp.connect() as c, console(tp) as adm:
            pid = c.execute("select pg_backend_pid()").fetchone()[0]
            adm.execute("RECONNECT appdb")
            if fast:
                assert wait_until(lambda: "database configuration changed" in tp.log(), timeout=10)
                with pytest.raises(psycopg.OperationalError) as ei:
                    c.execute("select 1")
                assert "database configuration changed" in str(ei.value)
            else:
                time.sleep(2)
                assert c.execute("select pg_backend_pid()").fetchone()[0] == pid
