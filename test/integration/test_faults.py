"""Issue 3: bad input and faults: garbage and oversized packets, stalled
clients, clients leaving mid-transaction, backends killed, PostgreSQL
restarting, thousands of idle clients."""

import os
import time

import psycopg
import pytest

import pgraw
from conftest import Background, wait_until

MODES = ["session", "transaction"]


def assert_serves(tp, **kw):
    with tp.connect(**kw) as c:
        assert c.execute("select 41 + 1").fetchone()[0] == 42


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ------------------------------------------------ garbage after login

GARBAGE = {
    "length_2": pgraw.message_header("Q", 2),
    "length_0": pgraw.message_header("Q", 0),
    "negative_length": pgraw.message_header("Q", 0xFFFFFFF0),
    "over_max_packet_size": pgraw.message_header("Q", 1_000_000),
    "query_over_1GB": pgraw.message_header("Q", 0x40000000 + 16),
    "sync_over_10000": pgraw.message_header("S", 20000),
    "terminate_over_10000": pgraw.message_header("X", 20000),
    "unknown_type": pgraw.message("\x01", b"abc"),
    "http_request": b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
    "second_startup": pgraw.startup_message(),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", list(GARBAGE))
def test_garbage_after_login_08P01(tidepool, role, mode, case):
    tp = tidepool(pool_mode=mode, max_packet_size=65536)
    other = tp.connect(user=role)
    other_pid = other.execute("select pg_backend_pid()").fetchone()[0]
    with tp.raw() as r:
        r.startup(user=role)
        rows, err, _ = r.query("select 1")
        assert err is None
        r.send_quietly(GARBAGE[case])
        err = r.error_or_close()
        assert err is not None, "connection closed without an ErrorResponse"
        assert err["C"] == "08P01", err
        assert r.wait_closed(5), "tidepool did not close the connection"
    # nobody else noticed
    assert other.execute("select 2").fetchone()[0] == 2
    if mode == "session":
        assert other.execute("select pg_backend_pid()").fetchone()[0] == other_pid
    other.close()
    assert_serves(tp, user=role)


def test_large_declared_length_is_streamed_not_buffered(tidepool, role):
    tp = tidepool(pool_mode="transaction", default_pool_size=20)
    assert_serves(tp, user=role)
    before = rss_kb(tp.pid)
    conns = []
    try:
        for _ in range(10):
            r = tp.raw()
            r.startup(user=role)
            r.send(pgraw.message_header("Q", 256 << 20))     # declares 256 MB
            r.send(b"select '" + b"x" * 65536)               # sends 64 kB of it
            conns.append(r)
        time.sleep(1.0)
        grown = rss_kb(tp.pid) - before
        assert grown < 64 * 1024, "tidepool RSS grew by %d kB for 10 partial 256 MB queries" % grown
        assert_serves(tp, user=role)
    finally:
        for r in conns:
            r.close()


# ---------------------------------------------------- stalled clients

@pytest.mark.parametrize("what", ["nothing", "partial_startup", "after_ssl_request"])
def test_client_login_timeout_closes_stalled_client(tidepool, what):
    # tcp_defer_accept off: with it the kernel keeps a client that sends
    # nothing from tidepool until TCP_DEFER_ACCEPT's 45 s run out.
    tp = tidepool(client_login_timeout=1, tcp_defer_accept=0)
    with tp.raw() as r:
        if what == "partial_startup":
            r.send(pgraw.startup_message()[:6])
        elif what == "after_ssl_request":
            r.send(pgraw.ssl_request())
            assert r.read_byte() == b"N"
        t0 = time.monotonic()
        assert r.wait_closed(15), "stalled client was not closed"
        assert time.monotonic() - t0 < 15
    assert_serves(tp)


# ------------------------------------- client leaving mid-transaction

@pytest.mark.parametrize("mode", MODES)
def test_client_disconnect_mid_transaction_server_not_dirty(tidepool, pg, role, mode):
    tp = tidepool(pool_mode=mode, default_pool_size=1)
    table = "tp_dirty_%s" % mode
    pg.sql("drop table if exists %s" % table, dbname="appdb")
    pg.sql("create table %s (x int)" % table, dbname="appdb")
    pg.sql("grant all on %s to %s" % (table, role), dbname="appdb")
    with tp.raw() as r:
        r.startup(user=role)
        rows, err, status = r.query(
            "BEGIN; INSERT INTO %s VALUES (1); SELECT pg_advisory_xact_lock(4242); "
            "SELECT set_config('tp.dirty', 'yes', true); SELECT pg_backend_pid()" % table)
        assert err is None and status == "T", err
        # leave without Terminate, inside the transaction
    with tp.connect(user=role) as b:
        fresh, dirty, locks, n = b.execute(
            "select now() = statement_timestamp(), current_setting('tp.dirty', true), "
            "(select count(*) from pg_locks where locktype = 'advisory'), "
            "(select count(*) from %s)" % table).fetchone()
    assert fresh is True, "the next client ran inside the previous client's transaction"
    assert dirty in (None, "")
    assert locks == 0
    assert n == 0
    assert wait_until(lambda: not any((r[2] or "").startswith("idle in transaction")
                                      for r in pg.backends(user=role)), timeout=5)
    assert pg.sql("select count(*) from %s" % table, dbname="appdb")[0][0] == 0


@pytest.mark.parametrize("mode", MODES)
def test_client_disconnect_during_long_query(tidepool, pg, role, mode):
    tp = tidepool(pool_mode=mode, default_pool_size=1)
    with tp.raw() as r:
        r.startup(user=role)
        r.send(pgraw.query_message("select pg_sleep(3)"))
        time.sleep(0.3)
    # the next client gets a server that is not busy with the old query
    t0 = time.monotonic()
    with tp.connect(user=role) as b:
        assert b.execute("select now() = statement_timestamp()").fetchone()[0] is True
    assert time.monotonic() - t0 < 10


# ------------------------------------------------------ backends dying

@pytest.mark.parametrize("mode", MODES)
def test_pg_terminate_backend_of_busy_server(tidepool, pg, role, mode):
    tp = tidepool(pool_mode=mode, default_pool_size=5)
    b, c = (tp.connect(user=role) for _ in range(2))
    b.execute("select 1")
    c.execute("select 1")
    with tp.raw() as a:                  # raw, to see the exact ErrorResponse
        a.startup(user=role)
        a.send(pgraw.query_message("select pg_sleep(30)"))
        found = wait_until(lambda: [r[0] for r in pg.backends(user=role)
                                    if r[2] == "active" and "pg_sleep(30)" in (r[3] or "")], timeout=10)
        assert found and len(found) == 1
        pg.sql("select pg_terminate_backend(%s)", (found[0],))
        err = a.error_or_close()
        assert err is not None, "connection closed without an ErrorResponse"
        # issue 16: the backend's own FATAL, and nothing after it (a second
        # error for the same event crashes node-postgres)
        assert err["C"] == "57P01", err
        assert a.wait_closed(5), "client of a dead server was not closed"
        assert a.buf == b"", "more after the server's FATAL: %r" % a.buf
    assert b.execute("select 2").fetchone()[0] == 2
    assert c.execute("select 3").fetchone()[0] == 3
    assert_serves(tp, user=role)
    b.close()
    c.close()


def test_idle_server_killed_clients_without_transaction_never_notice(tidepool, pg, role):
    tp = tidepool(pool_mode="transaction", default_pool_size=3)
    clients = [tp.connect(user=role) for _ in range(3)]
    for cl in clients:
        cl.execute("select 1")
    pg.sql("select pg_terminate_backend(pid) from pg_stat_activity where usename = %s", (role,))
    assert wait_until(lambda: not pg.backends(user=role), timeout=5)
    time.sleep(0.2)
    for i, cl in enumerate(clients):
        assert cl.execute("select %s::int", (i,)).fetchone()[0] == i
        cl.close()


def test_server_killed_inside_transaction(tidepool, pg, role):
    tp = tidepool(pool_mode="transaction", default_pool_size=2)
    a = tp.connect(user=role)
    other = tp.connect(user=role)
    a.execute("BEGIN")
    pid = a.execute("select pg_backend_pid()").fetchone()[0]
    pg.sql("select pg_terminate_backend(%s)", (pid,))
    time.sleep(0.3)
    err = Background(a.execute, "select 1").exception(10)
    assert isinstance(err, psycopg.Error), "query in a transaction on a dead server succeeded"
    assert err.sqlstate in ("08006", "57P01", None), err.sqlstate
    assert other.execute("select 1").fetchone()[0] == 1
    other.close()
    assert_serves(tp, user=role)


@pytest.mark.hard_timeout(120)
@pytest.mark.parametrize("mode", MODES)
def test_postgres_restart(tidepool, pg_private, mode):
    tp = tidepool(pg_server=pg_private, pool_mode=mode, default_pool_size=5, server_login_retry=1)
    idle = tp.connect()
    idle.execute("select 1")
    intx = tp.connect()
    intx.execute("BEGIN")
    intx.execute("select 1")
    pg_private.restart("fast")

    if mode == "transaction":
        # a client without a transaction never notices
        assert Background(lambda: idle.execute("select 2").fetchone()[0]).result(15) == 2
    # in-flight work fails
    err = Background(intx.execute, "select 1").exception(15)
    assert isinstance(err, psycopg.Error)

    def works():
        try:
            with tp.connect() as c:
                return c.execute("select 1").fetchone()[0] == 1
        except psycopg.Error:
            return False
    assert wait_until(works, timeout=5, interval=0.25), "no reconnect after PostgreSQL came back"
    assert tp.alive()
    idle.close()
    intx.close()


@pytest.mark.hard_timeout(120)
def test_postgres_down_then_up(tidepool, pg_private):
    tp = tidepool(pg_server=pg_private, pool_mode="transaction", server_login_retry=1,
                  query_wait_timeout=5)
    assert_serves(tp)
    pg_private.stop("fast")

    def fails():
        with tp.connect() as c:
            c.execute("select 1")
    err = Background(fails).exception(20)
    assert isinstance(err, psycopg.Error), "query succeeded with PostgreSQL down"
    assert tp.alive()
    pg_private.start()

    def works():
        try:
            with tp.connect() as c:
                return c.execute("select 1").fetchone()[0] == 1
        except psycopg.Error:
            return False
    assert wait_until(works, timeout=10, interval=0.25)


# ------------------------------------------------------- many clients

@pytest.mark.hard_timeout(400)
def test_5000_idle_clients_and_a_working_one(tidepool, role, raise_nofile):
    want = int(os.environ.get("TIDEPOOL_IDLE_CLIENTS", "5000"))
    n = min(want, raise_nofile - 300)
    # tidepool starts with a soft limit of 1024 and must raise it itself
    tp = tidepool(pool_mode="transaction", default_pool_size=5, max_client_conn=n + 100,
                  nofile_soft=1024, log_connections=0, log_disconnections=0)
    # the working client connects first: psycopg waits with select(), which
    # cannot handle descriptors above 1023
    w = tp.connect(user=role)
    assert w.execute("select 1").fetchone()[0] == 1
    idle = []
    t0 = time.monotonic()
    try:
        for start in range(0, n, 250):
            batch = []
            for _ in range(min(250, n - start)):
                r = pgraw.RawConn(tp.host, tp.port, timeout=30)
                r.send(pgraw.startup_message(user=role))
                batch.append(r)
            for r in batch:
                r.finish_startup()
            idle.extend(batch)
        print("%d idle clients logged in in %.1fs" % (n, time.monotonic() - t0))
        t1 = time.monotonic()
        for i in range(200):
            assert w.execute("select %s::int", (i,)).fetchone()[0] == i
        print("200 queries next to %d idle clients in %.2fs" % (n, time.monotonic() - t1))
        # idle clients can wake up and work
        for r in idle[::max(1, n // 25)]:
            rows, err, status = r.query("select 1")
            assert err is None and rows == [["1"]] and status == "I"
        assert tp.alive()
    finally:
        for r in idle:
            r.close()
        w.close()
    assert_serves(tp, user=role)
