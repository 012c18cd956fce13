"""Issue 5: protocol-level prepared statements in transaction mode.

Every test runs through a tiny transaction pool, so statements prepared on
one backend are used on others: tidepool must re-prepare them there."""

import asyncio
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest

import pgraw
from pgraw import (bind_message, close_message, describe_message, execute_message,
                   parse_error, parse_message, query_message, sync_message)
from conftest import clean_env, run_pgbench, wait_until

HERE = Path(__file__).resolve().parent


def kinds(msgs):
    """Message types of a reply, e.g. "12DCZ"."""
    return "".join(t for t, _ in msgs)


def rows_of(msgs):
    return [pgraw.parse_data_row(b) for t, b in msgs if t == "D"]


def error_of(msgs):
    for t, b in msgs:
        if t == "E":
            return parse_error(b)
    return None


def raw_login(tp, **kw):
    c = tp.raw()
    c.startup(**kw)
    return c


def admin_rows(tp, sql):
    with tp.connect(dbname="pgbouncer", user="postgres") as a:
        cur = a.execute(sql)
        names = [d.name for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


@pytest.fixture
def txpool(tidepool):
    """A transaction pool of 2 servers with statement tracking on."""
    return tidepool(pool_mode="transaction", default_pool_size=2, max_prepared_statements=50,
                    admin_users="postgres")


# ------------------------------------------------------------ pgbench

@pytest.mark.hard_timeout(120)
def test_pgbench_prepared_select_pool_of_3(tidepool, pgbench_db):
    tp = tidepool(pool_mode="transaction", default_pool_size=3, max_prepared_statements=100)
    run_pgbench(pgbench_db, tp, "-n", "-S", "-M", "prepared", "-c", "20", "-j", "2", "-T", "20")


@pytest.mark.hard_timeout(120)
def test_pgbench_prepared_tpcb_pool_of_3(tidepool, pgbench_db):
    # pgbench 15 prepares with a synchronous PQprepare per client inside its
    # thread: with fewer threads than clients a thread can wait for a server
    # that its own other clients hold in their transactions. One thread per
    # client avoids that client-side deadlock (see doc/prepared.md).
    tp = tidepool(pool_mode="transaction", default_pool_size=3, max_prepared_statements=100)
    run_pgbench(pgbench_db, tp, "-n", "-M", "prepared", "-c", "10", "-j", "10", "-T", "10")


# ------------------------------------------------------------ drivers

def test_psycopg_prepare_threshold_0(txpool):
    """20 connections x 25 transactions, every statement server-prepared."""
    errors = []

    def worker(i):
        try:
            with psycopg.connect(txpool.dsn(), prepare_threshold=0, autocommit=True) as c:
                for j in range(25):
                    with c.transaction():
                        v = c.execute("select %s::int * 100 + %s::int", (i, j)).fetchone()[0]
                        assert v == i * 100 + j
                        t = c.execute("select %s::text || 'x'", ("q%d" % j,)).fetchone()[0]
                        assert t == "q%dx" % j
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    stmts = admin_rows(txpool, "show prepared_statements")
    queries = {r["query"] for r in stmts if r["database"] == "appdb"}
    assert "select $1::int * 100 + $2::int" in queries
    # 20 clients share one interned statement per query text
    assert sum(1 for r in stmts if r["query"] == "select $1::int * 100 + $2::int") == 1


def test_asyncpg_50_tasks_pool_of_3(tidepool):
    asyncpg = pytest.importorskip("asyncpg")
    tp = tidepool(pool_mode="transaction", default_pool_size=3, max_prepared_statements=100)

    async def main():
        pool = await asyncpg.create_pool(host=tp.host, port=tp.port, user="app", database="appdb",
                                         min_size=10, max_size=10)
        try:
            async def task(i):
                async with pool.acquire() as conn:
                    stmt = await conn.prepare("select $1::int + $2::int as s")
                    for j in range(10):
                        async with conn.transaction():
                            assert await stmt.fetchval(i, j) == i + j
                            row = await conn.fetchrow("select $1::text as t, $2::int as n",
                                                      "t%d" % i, j)
                            assert (row["t"], row["n"]) == ("t%d" % i, j)
                    rows = await conn.fetch("select g from generate_series(1, $1::int) g", i % 7 + 1)
                    assert [r["g"] for r in rows] == list(range(1, i % 7 + 2))
                    return i
            done = await asyncio.gather(*(task(i) for i in range(50)))
            assert sorted(done) == list(range(50))
        finally:
            await pool.close()

    asyncio.run(asyncio.wait_for(main(), 120))


def test_jdbc_prepare_threshold_1(tidepool, tmp_path):
    jar = "/usr/share/java/postgresql.jar"
    java = shutil.which("java")
    if not (java and os.path.exists(jar)):
        pytest.skip("needs libpostgresql-jdbc-java and a JDK (check.sh installs them)")
    # the driver sends extra_float_digits at startup; PgBouncer users list
    # it in ignore_startup_parameters, as here
    tp = tidepool(pool_mode="transaction", default_pool_size=2, max_prepared_statements=100,
                  admin_users="postgres", ignore_startup_parameters="extra_float_digits")
    url = "jdbc:postgresql://%s:%d/appdb?user=app&prepareThreshold=1&sslmode=disable" % (tp.host, tp.port)
    r = subprocess.run([java, "-cp", jar, str(HERE / "java" / "PreparedLoop.java"), url, "100"],
                       capture_output=True, text=True, timeout=180, env=clean_env(),
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok 100" in r.stdout, r.stdout + r.stderr
    stmts = admin_rows(tp, "show prepared_statements")
    # the driver really used a named (server-prepared) statement
    assert any(s["use_count"] >= 90 for s in stmts), stmts


# ------------------------------------------------------------ eviction

def test_more_statements_than_server_cache(tidepool):
    """30 distinct statements over a cache of 4 per server: evicted ones are
    closed on the backend and prepared again when used."""
    tp = tidepool(pool_mode="transaction", default_pool_size=2, max_prepared_statements=4,
                  admin_users="postgres")
    errors = []

    def worker(w):
        try:
            with psycopg.connect(tp.dsn(), prepare_threshold=0, autocommit=True) as c:
                for rnd in range(3):
                    for k in range(30):
                        v = c.execute("select %%s::int + %d" % k, (w * 1000 + rnd,)).fetchone()[0]
                        assert v == w * 1000 + rnd + k, (w, rnd, k, v)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    servers = admin_rows(tp, "show servers")
    assert servers and all(s["prepared_statements"] <= 4 for s in servers), servers
    # the backends agree: none holds more than the cache allows
    with tp.connect() as c:
        n = c.execute("select count(*) from pg_prepared_statements").fetchone()[0]
        assert n <= 4


# ------------------------------------------------------------ protocol details

def test_parse_bind_across_transactions_on_other_servers(txpool):
    """Prepared on one backend, executed while another holds the first."""
    c = raw_login(txpool)
    c.send(parse_message("s1", "select $1::int * 2, pg_backend_pid()") + sync_message())
    assert kinds(c.read_until_ready()) == "1Z"
    # occupy one server with an open transaction from another client
    other = raw_login(txpool)
    other.send(query_message("begin; select pg_backend_pid()"))
    rows, err, st = other.read_results()
    assert err is None and st == "T"
    busy_pid = rows[0][0]
    pids = set()
    for i in range(5):
        c.send(bind_message("s1", [i]) + execute_message() + sync_message())
        msgs = c.read_until_ready()
        assert kinds(msgs) == "2DCZ", msgs
        v, pid = rows_of(msgs)[0]
        assert int(v) == i * 2
        pids.add(pid)
    assert busy_pid not in pids
    other.send(query_message("rollback"))
    other.read_results()
    c.close()
    other.close()


def test_describe_statement(txpool):
    c = raw_login(txpool)
    c.send(parse_message("d1", "select $1::int as a, 'x'::text as b") + sync_message())
    assert kinds(c.read_until_ready()) == "1Z"
    c.send(describe_message("S", "d1") + sync_message())
    msgs = c.read_until_ready()
    assert kinds(msgs) == "tTZ", msgs
    c.close()


def test_close_then_reparse_with_other_text(txpool):
    c = raw_login(txpool)
    c.send(parse_message("s", "select 1") + bind_message("s") + execute_message() + sync_message())
    msgs = c.read_until_ready()
    assert kinds(msgs) == "12DCZ" and rows_of(msgs) == [["1"]]
    c.send(close_message("S", "s") + sync_message())
    assert kinds(c.read_until_ready()) == "3Z"
    c.send(parse_message("s", "select 2") + bind_message("s") + execute_message() + sync_message())
    msgs = c.read_until_ready()
    assert kinds(msgs) == "12DCZ" and rows_of(msgs) == [["2"]], msgs
    # a Bind after Close gets PostgreSQL's own error
    c.send(close_message("S", "s") + bind_message("s") + execute_message() + sync_message())
    msgs = c.read_until_ready()
    assert kinds(msgs) == "3EZ", msgs
    assert error_of(msgs)["C"] == "26000"
    c.close()


def test_duplicate_name_is_an_error_not_a_disconnect(txpool):
    c = raw_login(txpool)
    c.send(parse_message("dup", "select 1") + sync_message())
    assert kinds(c.read_until_ready()) == "1Z"
    c.send(parse_message("dup", "select 2") + bind_message("dup") + execute_message() + sync_message())
    msgs = c.read_until_ready()
    assert kinds(msgs) == "EZ", msgs
    err = error_of(msgs)
    assert err["C"] == "42P05" and '"dup"' in err["M"] and err["S"] == "ERROR"
    # still usable, and the statement keeps its first text
    c.send(bind_message("dup") + execute_message() + sync_message())
    msgs = c.read_until_ready()
    assert rows_of(msgs) == [["1"]], msgs
    c.close()


def test_unknown_statement_26000(txpool):
    c = raw_login(txpool)
    c.send(bind_message("nosuch") + execute_message() + sync_message())
    msgs = c.read_until_ready()
    assert kinds(msgs) == "EZ"
    err = error_of(msgs)
    assert err["C"] == "26000" and "nosuch" in err["M"]
    c.send(describe_message("S", "nosuch2") + sync_message())
    assert error_of(c.read_until_ready())["C"] == "26000"
    rows, err, st = c.query("select 5")
    assert rows == [["5"]] and err is None
    c.close()


def test_error_in_the_middle_of_a_pipeline(txpool):
    """A failing statement between two Parses: the second is skipped by the
    backend, so tidepool must not think it exists (on the client or the server)."""
    c = raw_login(txpool)
    c.send(parse_message("ok1", "select 10")
           + parse_message("bad", "select 1/(random() * 0)::int")   # fails on execute
           + bind_message("bad") + execute_message()
           + parse_message("late", "select 30")
           + sync_message())
    msgs = c.read_until_ready()
    assert kinds(msgs) == "112EZ", msgs
    assert error_of(msgs)["C"] == "22012"
    # ok1 and bad exist; late was never parsed
    c.send(bind_message("ok1") + execute_message() + sync_message())
    assert rows_of(c.read_until_ready()) == [["10"]]
    c.send(bind_message("late") + execute_message() + sync_message())
    msgs = c.read_until_ready()
    assert error_of(msgs)["C"] == "26000", msgs
    # and the name is free again
    c.send(parse_message("late", "select 31") + bind_message("late") + execute_message() + sync_message())
    msgs = c.read_until_ready()
    assert rows_of(msgs) == [["31"]], msgs
    # a statement with a syntax error is not recorded either
    c.send(parse_message("syn", "selec 1") + sync_message())
    assert error_of(c.read_until_ready())["C"] == "42601"
    c.send(parse_message("syn", "select 'fixed'") + bind_message("syn") + execute_message() + sync_message())
    assert rows_of(c.read_until_ready()) == [["fixed"]]
    c.close()


def test_inserted_parse_fails_in_a_failed_batch(tidepool):
    """An error before a statement the pooler had to prepare again: the
    backend skips the inserted Parse, and the next batch prepares it again."""
    tp = tidepool(pool_mode="transaction", default_pool_size=1, max_prepared_statements=1)
    c = raw_login(tp)
    c.send(parse_message("a", "select 'a'") + parse_message("b", "select 'b'") + sync_message())
    assert kinds(c.read_until_ready()) == "11Z"   # b evicted a on the only server
    c.send(query_message("select 1/0"))
    c.read_results()
    c.send(parse_message("", "select 1/0") + bind_message("") + execute_message()
           + bind_message("a") + execute_message() + sync_message()
           + bind_message("a") + execute_message() + sync_message())
    first = c.read_until_ready()
    assert error_of(first)["C"] == "22012", first
    second = c.read_until_ready()
    assert rows_of(second) == [["a"]], second
    c.close()


def test_deallocate_all_then_parse_in_one_pipeline(txpool):
    c = raw_login(txpool)
    c.send(parse_message("p1", "select 'old'") + sync_message())
    assert kinds(c.read_until_ready()) == "1Z"
    c.send(query_message("DEALLOCATE ALL")
           + parse_message("p1", "select 'new'") + bind_message("p1") + execute_message()
           + sync_message())
    first = c.read_until_ready()
    assert kinds(first) == "CZ" and first[0][1].rstrip(b"\0") == b"DEALLOCATE ALL"
    second = c.read_until_ready()
    assert kinds(second) == "12DCZ" and rows_of(second) == [["new"]], second
    c.send(bind_message("p1") + execute_message() + sync_message())
    assert rows_of(c.read_until_ready()) == [["new"]]
    c.close()


def test_named_deallocate_all_keeps_the_backend_cache_true(tidepool):
    """A DEALLOCATE ALL (or DISCARD ALL) prepared under a name and run drops
    every statement of that backend; the next client on it must still get
    its own statements, re-prepared, never "tidepool_N does not exist"."""
    tp = tidepool(pool_mode="transaction", default_pool_size=1, max_prepared_statements=50)
    b = raw_login(tp)
    b.send(parse_message("q", "select 'b'") + bind_message("q") + execute_message() + sync_message())
    assert rows_of(b.read_until_ready()) == [["b"]]
    a = raw_login(tp)
    for stmt in ("DEALLOCATE ALL", "DISCARD ALL"):
        a.send(parse_message("d", stmt) + bind_message("d") + execute_message() + sync_message())
        done = a.read_until_ready()
        assert kinds(done) == "12CZ" and done[2][1].rstrip(b"\0") == stmt.encode(), done
        # the same backend (pool of one) serves b: its statement is prepared again
        b.send(bind_message("q") + execute_message() + sync_message())
        assert rows_of(b.read_until_ready()) == [["b"]]
        # as in PostgreSQL, a's own names went with it
        a.send(bind_message("d") + execute_message() + sync_message())
        assert error_of(a.read_until_ready())["C"] == "26000"
    a.close()
    b.close()


def test_deallocate_all_inside_a_longer_query_string(tidepool):
    """DEALLOCATE ALL among other statements of one simple query runs on the
    backend and drops the pool's statements there: the next client on that
    backend still gets its own statement, prepared again."""
    tp = tidepool(pool_mode="transaction", default_pool_size=1, max_prepared_statements=50)
    b = raw_login(tp)
    b.send(parse_message("q", "select 'b'") + bind_message("q") + execute_message() + sync_message())
    assert rows_of(b.read_until_ready()) == [["b"]]
    a = raw_login(tp)
    a.send(query_message("SELECT 1; DEALLOCATE ALL; SELECT 2"))
    msgs = a.read_until_ready()
    assert kinds(msgs) == "TDCCTDCZ", msgs
    b.send(bind_message("q") + execute_message() + sync_message())
    assert rows_of(b.read_until_ready()) == [["b"]]
    # a string that fails before its DEALLOCATE ALL leaves the statements in
    # place; the backend, no longer known for sure, is replaced at release
    a.send(query_message("SELECT 1/0; DEALLOCATE ALL"))
    assert error_of(a.read_until_ready())["C"] == "22012"
    for _ in range(3):
        b.send(bind_message("q") + execute_message() + sync_message())
        assert rows_of(b.read_until_ready()) == [["b"]]
    a.close()
    b.close()


def test_deallocate_name_and_all_with_psql(txpool):
    c = raw_login(txpool)
    c.send(parse_message("n1", "select 1") + parse_message("n2", "select 2") + sync_message())
    assert kinds(c.read_until_ready()) == "11Z"
    rows, err, st = c.query("deallocate n1")
    assert err is None and st == "I"
    c.send(bind_message("n1") + execute_message() + sync_message())
    assert error_of(c.read_until_ready())["C"] == "26000"
    c.send(bind_message("n2") + execute_message() + sync_message())
    assert rows_of(c.read_until_ready()) == [["2"]]
    # inside a transaction block, in order with the statements around it
    rows, err, st = c.query("begin")
    assert st == "T"
    rows, err, st = c.query("deallocate prepare all")
    assert err is None and st == "T"
    c.send(bind_message("n2") + execute_message() + sync_message())
    msgs = c.read_until_ready()
    assert error_of(msgs)["C"] == "26000" and msgs[-1][1] == b"E"
    rows, err, st = c.query("deallocate all")
    assert err["C"] == "25P02" and st == "E"
    rows, err, st = c.query("rollback")
    assert st == "I"
    # the server's own DEALLOCATE still works for SQL-level statements
    rows, err, st = c.query("deallocate nosuch")
    assert err["C"] == "26000"
    c.close()


def test_discard_all(txpool):
    c = raw_login(txpool)
    c.send(parse_message("x", "select 'x'") + sync_message())
    assert kinds(c.read_until_ready()) == "1Z"
    rows, err, st = c.query("DISCARD ALL")
    assert err is None and st == "I"
    c.send(bind_message("x") + execute_message() + sync_message())
    assert error_of(c.read_until_ready())["C"] == "26000"
    # other clients' statements on that backend are prepared again as needed
    d = raw_login(txpool)
    d.send(parse_message("y", "select 'y'") + sync_message())
    d.read_until_ready()
    c.query("discard all")
    for _ in range(3):
        d.send(bind_message("y") + execute_message() + sync_message())
        assert rows_of(d.read_until_ready()) == [["y"]]
    c.close()
    d.close()


def test_client_statement_limit(tidepool):
    tp = tidepool(pool_mode="transaction", default_pool_size=1, max_client_prepared_statements=3)
    c = raw_login(tp)
    for i in range(3):
        c.send(parse_message("s%d" % i, "select %d" % i) + sync_message())
        assert kinds(c.read_until_ready()) == "1Z"
    c.send(parse_message("s3", "select 3") + sync_message())
    msgs = c.read_until_ready()
    err = error_of(msgs)
    assert err["C"] == "53400" and "max_client_prepared_statements" in err["M"], msgs
    # nothing was evicted: all three still work, and closing one makes room
    for i in range(3):
        c.send(bind_message("s%d" % i) + execute_message() + sync_message())
        assert rows_of(c.read_until_ready()) == [[str(i)]]
    c.send(close_message("S", "s0") + parse_message("s3", "select 3") + bind_message("s3")
           + execute_message() + sync_message())
    assert rows_of(c.read_until_ready()) == [["3"]]
    c.close()


def test_tracking_off_passes_names_through(tidepool):
    tp = tidepool(pool_mode="session", default_pool_size=1, max_prepared_statements=0)
    c = raw_login(tp)
    c.send(parse_message("raw", "select 'r'") + sync_message())
    assert kinds(c.read_until_ready()) == "1Z"
    rows, err, st = c.query("select name from pg_prepared_statements")
    assert rows == [["raw"]]   # the backend sees the client's own name
    c.close()


def test_session_mode_and_reset(tidepool):
    """Session mode: the same rewriting; DISCARD ALL at release empties the
    backend, and the next session's statements are prepared again."""
    tp = tidepool(pool_mode="session", default_pool_size=1, server_reset_query="DISCARD ALL")
    for i in range(3):
        c = raw_login(tp)
        c.send(parse_message("s", "select %d" % i) + bind_message("s") + execute_message()
               + sync_message())
        msgs = c.read_until_ready()
        assert rows_of(msgs) == [[str(i)]], msgs
        c.send(query_message("select 1"))   # the client does not see tidepool's names
        c.read_results()
        c.send(pgraw.terminate_message())
        c.close()


def test_statement_survives_reconnect_and_recycling(tidepool):
    tp = tidepool(pool_mode="transaction", default_pool_size=1, admin_users="postgres",
                  server_lifetime=1, server_idle_timeout=0)
    c = raw_login(tp)
    c.send(parse_message("keep", "select 'kept', pg_backend_pid()") + sync_message())
    assert kinds(c.read_until_ready()) == "1Z"
    c.send(bind_message("keep") + execute_message() + sync_message())
    first_pid = rows_of(c.read_until_ready())[0][1]
    with tp.connect(dbname="pgbouncer", user="postgres") as a:
        a.autocommit = True
        a.execute("RECONNECT")
    pids = {first_pid}
    deadline = time.monotonic() + 20
    while len(pids) < 3 and time.monotonic() < deadline:
        c.send(bind_message("keep") + execute_message() + sync_message())
        msgs = c.read_until_ready()
        assert rows_of(msgs)[0][0] == "kept", msgs
        pids.add(rows_of(msgs)[0][1])
        time.sleep(0.3)
    assert len(pids) >= 3, pids   # RECONNECT, then server_lifetime, each a new backend
    c.close()


def test_backend_crash_then_reprepare(tidepool, pg):
    tp = tidepool(pool_mode="transaction", default_pool_size=1, admin_users="postgres")
    c = raw_login(tp)
    c.send(parse_message("k", "select 'k'") + sync_message())
    c.read_until_ready()
    with pg.connect() as admin:
        admin.autocommit = True
        admin.execute("select pg_terminate_backend(pid) from pg_stat_activity "
                      "where datname = 'appdb' and usename = 'app' and pid <> pg_backend_pid()")
    # once tidepool has seen the idle server die, the next use prepares the
    # statement on a fresh backend (a request that races the death gets
    # 08006, as for any backend lost under a query)
    assert wait_until(lambda: not [s for s in admin_rows(tp, "show servers") if s["user"] == "app"])
    c.send(bind_message("k") + execute_message() + sync_message())
    msgs = c.read_until_ready()
    assert rows_of(msgs) == [["k"]], msgs
    c.close()


def test_show_prepared_statements_counts(txpool):
    c = raw_login(txpool)
    c.send(parse_message("cnt", "select 'count me'") + sync_message())
    c.read_until_ready()
    for _ in range(7):
        c.send(bind_message("cnt") + execute_message() + sync_message())
        c.read_until_ready()
    rows = [r for r in admin_rows(txpool, "show prepared_statements") if r["query"] == "select 'count me'"]
    assert len(rows) == 1
    r = rows[0]
    assert r["database"] == "appdb" and r["user"] == "app"
    assert r["name"].startswith("tidepool_") and r["params"] == 0
    assert r["parse_count"] == 1 and r["use_count"] == 7 and r["server_prepares"] >= 1
    clients = [x for x in admin_rows(txpool, "show clients") if x["user"] == "app"]
    assert [x["prepared_statements"] for x in clients] == [1]
    c.close()


def test_use_of_a_statement_parsed_in_an_earlier_unanswered_batch(txpool):
    """Two batches in one write: the second uses a statement whose Parse is
    still in flight in the first, after unsynced messages of its own."""
    c = raw_login(txpool)
    for i in range(5):
        name = "hx%d" % i
        c.send(parse_message(name, "select 'x%d'" % i) + sync_message()
               + parse_message("", "select 'u'") + bind_message("") + execute_message()
               + bind_message(name) + execute_message() + sync_message())
        first = c.read_until_ready()
        assert kinds(first) == "1Z", first
        second = c.read_until_ready()
        assert kinds(second) == "12DC2DCZ", second
        assert rows_of(second) == [["u"], ["x%d" % i]]
    c.close()


def test_describe_on_a_backend_without_the_statement(tidepool):
    """Describe alone must prepare the statement first (a pooler shipped
    this only for Bind)."""
    tp = tidepool(pool_mode="transaction", default_pool_size=1, max_prepared_statements=1)
    c = raw_login(tp)
    c.send(parse_message("a", "select 1::int as one") + parse_message("b", "select 'b'::text as bee")
           + sync_message())
    assert kinds(c.read_until_ready()) == "11Z"   # the only backend now has b, not a
    c.send(describe_message("S", "a") + sync_message())
    msgs = c.read_until_ready()
    assert kinds(msgs) == "tTZ", msgs
    assert b"one\0" in msgs[1][1]   # the RowDescription of a, from the backend
    c.close()


def test_show_prepared_statements_under_load(tidepool):
    tp = tidepool(pool_mode="transaction", default_pool_size=2, max_prepared_statements=3,
                  admin_users="postgres")
    stop = threading.Event()
    errors = []

    def worker(w):
        try:
            with psycopg.connect(tp.dsn(), prepare_threshold=0, autocommit=True) as c:
                k = 0
                while not stop.is_set():
                    v = c.execute("select %%s::int + %d" % (k % 8), (w,)).fetchone()[0]
                    assert v == w + k % 8
                    k += 1
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(50):
            rows = admin_rows(tp, "show prepared_statements")
            assert all(r["name"].startswith("tidepool_") for r in rows)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors[:3]
    assert tp.alive()


def test_psycopg_pipeline_with_driver_side_eviction(txpool):
    """psycopg 3 in pipeline mode deallocates evicted statements with an
    extended-protocol DEALLOCATE: it must act on the client's names."""
    with psycopg.connect(txpool.dsn(), prepare_threshold=0, autocommit=True) as c:
        c.prepared_max = 2
        for rnd in range(3):
            with c.pipeline():
                curs = [c.execute("select %%s::int + %d" % k, (rnd,)) for k in range(5)]
            assert [cur.fetchone()[0] for cur in curs] == [rnd + k for k in range(5)]
        for rnd in range(3):
            got = [c.execute("select %%s::int + %d" % k, (rnd,)).fetchone()[0] for k in range(5)]
            assert got == [rnd + k for k in range(5)]


def test_deallocate_sent_by_the_backend_route(txpool):
    """DEALLOCATE with the extended protocol, and as a simple query inside an
    unsynced batch: the client's name goes, the reply is PostgreSQL's."""
    c = raw_login(txpool)
    c.send(parse_message("e1", "select 'e1'") + parse_message("e2", "select 'e2'") + sync_message())
    assert kinds(c.read_until_ready()) == "11Z"
    c.send(parse_message("", "DEALLOCATE e1") + bind_message("") + execute_message() + sync_message())
    msgs = c.read_until_ready()
    assert kinds(msgs) == "12CZ", msgs
    assert msgs[2][1].rstrip(b"\0") == b"DEALLOCATE"
    c.send(bind_message("e1") + execute_message() + sync_message())
    assert error_of(c.read_until_ready())["C"] == "26000"
    # a simple DEALLOCATE after an unsynced Bind/Execute
    c.send(bind_message("e2") + execute_message() + query_message("deallocate e2"))
    msgs = c.read_until_ready()
    assert kinds(msgs) == "2DCCZ", msgs
    assert msgs[3][1].rstrip(b"\0") == b"DEALLOCATE"
    c.send(sync_message())
    c.read_until_ready()
    c.send(bind_message("e2") + execute_message() + sync_message())
    assert error_of(c.read_until_ready())["C"] == "26000"
    # other clients still find their statements on that backend
    d = raw_login(txpool)
    d.send(parse_message("e1", "select 'e1'") + bind_message("e1") + execute_message() + sync_message())
    assert rows_of(d.read_until_ready()) == [["e1"]]
    d.send(parse_message("", "DEALLOCATE ALL") + bind_message("") + execute_message() + sync_message())
    msgs = d.read_until_ready()
    assert kinds(msgs) == "12CZ" and msgs[2][1].rstrip(b"\0") == b"DEALLOCATE ALL", msgs
    d.send(parse_message("e1", "select 'again'") + bind_message("e1") + execute_message() + sync_message())
    assert rows_of(d.read_until_ready()) == [["again"]]
    c.close()
    d.close()


# -------------------------------- pipelines with errors (issue 16; PgBouncer's
# test_prepared_statement_pipeline_error_delayed_sync and
# test_prepared_failed_prepare_pipeline). psycopg's default prepare_threshold
# matters: its statement cache sends the Closes of the first test.

@pytest.mark.parametrize("mode", ["statement", "transaction"])
def test_pipeline_error_before_a_delayed_sync(tidepool, mode):
    """The client sends more after an error and its Sync later: the backend
    skips those messages, and tidepool's queue of expected replies must
    forget them (it closed the server: "unexpected '3' ... in flight")."""
    tp = tidepool(pool_mode=mode, default_pool_size=1, max_prepared_statements=50)
    with tp.connect(prepare_threshold=5) as c:
        assert c.execute("select 1", prepare=True).fetchone()[0] == 1
    with tp.connect(prepare_threshold=5) as conn:
        with conn.pipeline() as p, conn.cursor() as cur:
            cur.execute("select aaaa")
            time.sleep(0.1)
            with pytest.raises(psycopg.errors.UndefinedColumn):
                cur.execute("select 123")
            with pytest.raises(psycopg.errors.PipelineAborted):
                cur.fetchall()
            p.sync()
            cur.execute("select 1", prepare=True)
            assert cur.fetchall() == [(1,)]
        assert conn.execute("select 2").fetchone()[0] == 2


@pytest.mark.parametrize("mode", ["statement", "transaction"])
def test_pipeline_with_a_failed_parse(tidepool, pg, mode):
    """PgBouncer's test_prepared_failed_prepare_pipeline up to where
    PostgreSQL itself answers 26000 (psycopg takes a statement whose Parse
    the backend skipped after the error for prepared; PgBouncer answers
    ParseComplete itself when its server has the statement): the
    connection and its statements stay usable."""
    table = "tp_later_%s" % mode
    pg.sql("drop table if exists %s" % table, dbname="appdb")
    tp = tidepool(pool_mode=mode, default_pool_size=1, max_prepared_statements=50)
    with tp.connect(prepare_threshold=5) as conn:
        # psycopg raises the error at whichever call reads it (the failing
        # statement's, the next one's, the sync or the pipeline's end), as
        # results happen to arrive
        with pytest.raises(psycopg.errors.UndefinedTable):
            with conn.pipeline() as p, conn.cursor() as cur:
                cur.execute("select 1", prepare=True)
                cur.execute("select * from %s" % table, prepare=True)
                cur.execute("select 2", prepare=True)
                p.sync()
        assert conn.execute("select 1", prepare=True).fetchone()[0] == 1
        assert conn.execute("select 3").fetchone()[0] == 3


def test_statement_name_of_16_kb(txpool):
    """Issue 16 (PgBouncer's test_statement_name_longer_than_pkt_buf): the
    name is rewritten to a short one, so its length does not matter; the
    Describe and Close that carry it were refused as too long."""
    name = b"a" * 16384
    with txpool.connect() as conn:
        assert conn.pgconn.prepare(name, b"select $1::text").status == psycopg.pq.ExecStatus.COMMAND_OK
        assert conn.pgconn.describe_prepared(name).status == psycopg.pq.ExecStatus.COMMAND_OK
        r = conn.pgconn.exec_prepared(name, (b"abc",))
        assert r.status == psycopg.pq.ExecStatus.TUPLES_OK and r.get_value(0, 0) == b"abc"
        assert conn.execute("select 1").fetchone()[0] == 1
