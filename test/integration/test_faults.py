"""Issue 3: bad input and faults: garbage and oversized packets, stalled
clients, clients leaving mid-transaction, backends killed, PostgreSQL
restarting, thousands of idle clients."""

import os
import socket
import threading
import time

import psycopg
import pytest

import pgraw
from conftest import Background, free_port, wait_until

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
            "(select count(*) from pg_locks where locktype = 'advisory' "
            "and pid = pg_backend_pid()), "
            "(select count(*) from %s)" % table).fetchone()
    assert fresh is True, "the next client ran inside the previous client's transaction"
    assert dirty in (None, "")
    assert locks == 0
    assert n == 0
    # the old backend, closed by tidepool, ends its transaction as it exits
    assert wait_until(lambda: pg.sql("select count(*) from pg_locks where locktype = 'advisory' "
                                     "and objid = 4242")[0][0] == 0, timeout=5)
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


# ------------------------------------- server logins that fail (issue 16)

def drop_idle_servers(pg, role):
    pg.sql("select pg_terminate_backend(pid) from pg_stat_activity where usename = %s", (role,))
    assert wait_until(lambda: not pg.backends(user=role), timeout=5)
    time.sleep(0.3)   # tidepool reads the FATALs of its idle servers


def test_refused_server_login_fails_every_waiting_client(tidepool, pg, role):
    """PostgreSQL refuses the login of a pool that worked (NOLOGIN): the
    clients waiting for a server get its error now, not after
    query_wait_timeout; clients that come during server_login_retry get
    it from the cache. PgBouncer's kill_pool_logins and fast fail."""
    tp = tidepool(pool_mode="transaction", default_pool_size=2, server_login_retry=30,
                  query_wait_timeout=120)
    clients = [tp.connect(user=role) for _ in range(3)]
    clients[0].execute("select 1")
    pg.sql("ALTER ROLE %s NOLOGIN" % role)
    try:
        drop_idle_servers(pg, role)
        jobs = [Background(c.execute, "select 1") for c in clients]
        for job in jobs:
            err = job.exception(20)
            assert isinstance(err, psycopg.OperationalError), err
            assert "is not permitted to log in" in str(err), err
        with pytest.raises(psycopg.OperationalError) as ei:
            Background(lambda: tp.connect(user=role).execute("select 1")).result(20)
        assert "is not permitted to log in" in str(ei.value)
        assert tp.alive()
    finally:
        pg.sql("ALTER ROLE %s LOGIN" % role)
        for c in clients:
            c.close()


class ForwardProxy:
    """Listens on port (from now on) and forwards each connection to target."""

    def __init__(self, port, target):
        self.target = target
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                down, _ = self.sock.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((down, up), (up, down)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for sk in (src, dst):
            try:
                sk.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.sock.close()


def test_unreachable_server_clients_wait_for_the_retry(tidepool, pg):
    """PostgreSQL not listening yet: clients queue and get served once it
    is (within query_wait_timeout), as with PgBouncer."""
    port = free_port()
    tp = tidepool(server_login_retry=1, query_wait_timeout=30,
                  databases={"appdb": "host=127.0.0.1 port=%d dbname=appdb" % port})

    def query():
        with tp.connect(user="app") as c:
            return c.execute("select 1").fetchone()[0]
    job = Background(query)
    time.sleep(2)   # a few refused connects
    assert not job.done(), "client failed at once: %r" % job.error
    proxy = ForwardProxy(port, pg.port)
    try:
        assert job.result(20) == 1
    finally:
        proxy.close()


def test_failed_server_logins_wait_for_server_login_retry(tidepool):
    """A backend that hangs up during every login: tidepool tries again once
    per server_login_retry, not in a loop (it did ~50 times a second)."""
    accepted = []
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)

    def serve():
        while True:
            try:
                s, _ = lsock.accept()
            except OSError:
                return
            accepted.append(time.monotonic())
            s.close()
    threading.Thread(target=serve, daemon=True).start()
    tp = tidepool(server_login_retry=2, query_wait_timeout=4,
                  databases={"appdb": "host=127.0.0.1 port=%d dbname=appdb" % lsock.getsockname()[1]})
    err = Background(lambda: tp.connect(user="app").close()).exception(20)
    assert isinstance(err, psycopg.OperationalError), err
    lsock.close()
    assert 1 <= len(accepted) <= 4, "%d server logins in about 4 s" % len(accepted)
    assert tp.alive()


def test_reload_retries_a_failing_login_at_once(tidepool, pg, role):
    """After a refused login, a reload (the settings may have fixed it)
    does not wait out server_login_retry."""
    tp = tidepool(pool_mode="transaction", server_login_retry=60)
    pg.sql("ALTER ROLE %s NOLOGIN" % role)
    try:
        with pytest.raises(psycopg.OperationalError):
            tp.connect(user=role)
    finally:
        pg.sql("ALTER ROLE %s LOGIN" % role)
    tp.reload()
    with tp.connect(user=role) as c:
        assert c.execute("select 1").fetchone()[0] == 1
