"""Issue 3: transaction pooling, scheduling, limits and client timeouts."""

import threading
import time

import psycopg
import pytest

import pgraw
from conftest import Background, run_pgbench, wait_until


def pid_of(conn):
    return conn.execute("select pg_backend_pid()").fetchone()[0]


class BackendSampler:
    """Samples the number of PostgreSQL backends of one role in a thread."""

    def __init__(self, pg, user, dbname="appdb", interval=0.05):
        self.max = 0
        self._stop = threading.Event()
        self._pg, self._user, self._db, self._interval = pg, user, dbname, interval
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        with self._pg.connect() as c:
            while not self._stop.is_set():
                n = c.execute("select count(*) from pg_stat_activity where usename = %s "
                              "and datname = %s", (self._user, self._db)).fetchone()[0]
                self.max = max(self.max, n)
                time.sleep(self._interval)

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        return self.max


@pytest.mark.hard_timeout(180)
def test_200_concurrent_clients_over_pool_of_5(tidepool, pg, role):
    n_clients, pool = 200, 5
    tp = tidepool(pool_mode="transaction", default_pool_size=pool, max_client_conn=400)
    barrier = threading.Barrier(n_clients, timeout=60)
    sampler = BackendSampler(pg, role)

    def client(i):
        with tp.connect(user=role) as c:
            barrier.wait()
            seen = []
            for j in range(5):
                with c.transaction():
                    v, p1 = c.execute("select %s::int * 1000 + %s::int, pg_backend_pid()",
                                      (i, j)).fetchone()
                    p2 = pid_of(c)
                assert v == i * 1000 + j, (i, j, v)
                assert p1 == p2, "server changed inside a transaction"
                seen.append(p1)
                # autocommit statements too
                assert c.execute("select %s::text || '-' || %s::text", (i, j)).fetchone()[0] == "%d-%d" % (i, j)
            return seen

    workers = [Background(client, i) for i in range(n_clients)]
    pids = set()
    for w in workers:
        pids.update(w.result(150))
    max_backends = sampler.stop()
    assert len(pids) <= pool, "more servers than default_pool_size: %d" % len(pids)
    assert max_backends <= pool, "pool grew to %d backends" % max_backends


def test_backend_pids_shared_between_transactions_held_within(tidepool, role):
    tp = tidepool(pool_mode="transaction", default_pool_size=2)

    def client(k):
        seen = set()
        with tp.connect(user=role) as c:
            for _ in range(10):
                with c.transaction():
                    p1 = pid_of(c)
                    c.execute("select pg_sleep(0.01)")
                    p2 = pid_of(c)
                assert p1 == p2
                seen.add(p1)
        return seen

    workers = [Background(client, k) for k in range(10)]
    per_client = [w.result(60) for w in workers]
    all_pids = set().union(*per_client)
    assert len(all_pids) <= 2, all_pids
    # 10 clients, 2 servers: servers were shared between clients
    assert sum(len(s) for s in per_client) > len(all_pids)


def test_server_released_at_commit_not_before(tidepool, role):
    tp = tidepool(pool_mode="transaction", default_pool_size=1)
    a = tp.connect(user=role)
    b = tp.connect(user=role)
    a.execute("BEGIN")
    pid_a = pid_of(a)
    bg = Background(pid_of, b)
    assert not bg.wait(1.0), "B got the server while A was inside a transaction"
    a.execute("COMMIT")
    assert bg.result(10) == pid_a
    # status E (failed transaction) also keeps the server
    a.execute("BEGIN")
    with pytest.raises(psycopg.errors.DivisionByZero):
        a.execute("select 1/0")
    bg = Background(pid_of, b)
    assert not bg.wait(1.0), "B got the server while A's transaction was in the failed state"
    a.execute("ROLLBACK")
    assert bg.result(10) == pid_a
    a.close()
    b.close()


def test_autocommit_statements_release_server(tidepool, role):
    tp = tidepool(pool_mode="transaction", default_pool_size=1)
    a = tp.connect(user=role)
    b = tp.connect(user=role)
    for i in range(20):
        assert a.execute("select %s::int", (i,)).fetchone()[0] == i
        assert b.execute("select %s::int", (i,)).fetchone()[0] == i
    assert pid_of(a) == pid_of(b)
    a.close()
    b.close()


@pytest.mark.parametrize("mode", ["simple", "extended"])
def test_pgbench_50_clients_pool_of_10(tidepool, pgbench_db, mode):
    tp = tidepool(pool_mode="transaction", default_pool_size=10, max_client_conn=200)
    run_pgbench(pgbench_db, tp, "-n", "-M", mode, "-c", "50", "-j", "2", "-t", "50")


def test_pgbench_select_only_extended(tidepool, pgbench_db):
    tp = tidepool(pool_mode="transaction", default_pool_size=10, max_client_conn=200)
    run_pgbench(pgbench_db, tp, "-n", "-S", "-M", "extended", "-c", "50", "-j", "2", "-T", "5")


def test_statement_mode_refuses_transactions(tidepool, role):
    tp = tidepool(pool_mode="statement", default_pool_size=2)
    with tp.connect(user=role) as c:
        for i in range(20):
            assert c.execute("select %s::int + 1", (i,)).fetchone()[0] == i + 1
    with pytest.raises(psycopg.Error):
        with tp.connect(user=role) as c:
            c.execute("BEGIN")
            c.execute("select 1")
            c.execute("COMMIT")
    # the pooler keeps serving, on a server that is not inside a transaction
    with tp.connect(user=role) as c:
        assert c.execute("select now() = statement_timestamp()").fetchone()[0] is True


def test_statement_mode_shares_servers(tidepool, role):
    tp = tidepool(pool_mode="statement", default_pool_size=1)
    a = tp.connect(user=role)
    b = tp.connect(user=role)
    assert pid_of(a) == pid_of(b)
    a.close()
    b.close()


def test_query_wait_timeout(tidepool, role):
    tp = tidepool(pool_mode="transaction", default_pool_size=1, query_wait_timeout=1)
    a = tp.connect(user=role)
    a.execute("BEGIN")
    a.execute("select 1")

    def client_b():
        with tp.connect(user=role) as b:
            b.execute("select 1")

    bg = Background(client_b)
    err = bg.exception(15)
    assert isinstance(err, psycopg.Error), "B's query did not fail: %r" % err
    assert "query_wait_timeout" in str(err), str(err)
    assert bg.elapsed < 8, "query_wait_timeout=1 took %.1fs" % bg.elapsed
    a.execute("COMMIT")
    with tp.connect(user=role) as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_idle_transaction_timeout(tidepool, pg, role):
    tp = tidepool(pool_mode="transaction", default_pool_size=1, idle_transaction_timeout=1)
    a = tp.connect(user=role)
    a.execute("BEGIN")
    a.execute("select 1")
    time.sleep(3)
    err = Background(a.execute, "select 2").exception(10)
    assert isinstance(err, psycopg.Error), "query after idle_transaction_timeout succeeded"
    # the server is free again, and not left inside A's transaction
    with tp.connect(user=role) as b:
        assert b.execute("select now() = statement_timestamp()").fetchone()[0] is True
    assert not any(r[2] == "idle in transaction" for r in pg.backends(user=role))


def test_idle_transaction_timeout_counts_only_idle_time(tidepool, role):
    """Issue 16 (PgBouncer GH #125): a query that runs as long as the
    timeout, then a shorter pause, is not idle time over the limit."""
    tp = tidepool(pool_mode="transaction", idle_transaction_timeout=3)
    with tp.connect(user=role) as a:
        a.execute("BEGIN")
        a.execute("select pg_sleep(4)")
        time.sleep(1.5)
        assert a.execute("select 2").fetchone()[0] == 2
        a.execute("COMMIT")


def test_query_timeout(tidepool, pg, role):
    tp = tidepool(pool_mode="transaction", default_pool_size=1, query_timeout=1)
    a = tp.connect(user=role)
    bg = Background(a.execute, "select pg_sleep(20)")
    err = bg.exception(15)
    assert isinstance(err, psycopg.Error), "pg_sleep(20) was not stopped by query_timeout"
    assert bg.elapsed < 10
    with tp.connect(user=role) as b:
        assert b.execute("select 1").fetchone()[0] == 1


def test_client_idle_timeout(tidepool, role):
    tp = tidepool(pool_mode="transaction", client_idle_timeout=1)
    a = tp.connect(user=role)
    assert a.execute("select 1").fetchone()[0] == 1
    time.sleep(3)
    err = Background(a.execute, "select 1").exception(10)
    assert isinstance(err, psycopg.Error), "idle client was not closed"
    with tp.connect(user=role) as b:
        assert b.execute("select 1").fetchone()[0] == 1


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_max_client_conn(tidepool, role, mode):
    tp = tidepool(pool_mode=mode, max_client_conn=5, default_pool_size=2)
    conns = [tp.connect(user=role) for _ in range(5)]
    with tp.raw() as r:
        r.send_quietly(pgraw.startup_message(user=role))
        err = r.error_or_close()
        assert err is not None and err["C"] == "53300", err
    conns.pop().close()

    def try_connect():
        try:
            with tp.connect(user=role) as c:
                return c.execute("select 1").fetchone()[0] == 1
        except psycopg.OperationalError:
            return False
    assert wait_until(try_connect, timeout=5, interval=0.2)
    for c in conns:
        c.close()


def test_waiting_clients_served_in_order(tidepool, role):
    """FIFO: clients queued behind a busy pool of 1 get it in arrival order."""
    tp = tidepool(pool_mode="transaction", default_pool_size=1)
    holder = tp.connect(user=role)
    holder.execute("BEGIN")
    pid_of(holder)
    conns = [tp.connect(user=role) for _ in range(5)]
    workers = []
    for k in range(5):
        # the server's clock says in which order the queries really ran
        workers.append(Background(lambda c: c.execute("select clock_timestamp()").fetchone()[0],
                                  conns[k]))
        time.sleep(0.2)
    holder.execute("COMMIT")
    stamps = [w.result(20) for w in workers]
    order = sorted(range(5), key=lambda k: stamps[k])
    assert order == list(range(5)), order
    for c in conns + [holder]:
        c.close()


def test_forced_user_pool_takes_the_forced_users_settings(tidepool, pg, role):
    """Issue 16 (PgBouncer's test_pool_size): with a forced user, the login
    user's [users] pool_size does not size the pool; the database's does."""
    tp = tidepool(pool_mode="transaction", users={"app": "pool_size=1"},
                  databases={"appdb": "host=127.0.0.1 port=%d dbname=appdb user=%s pool_size=2" % (pg.port, role)})
    a = tp.connect(user="app")
    b = tp.connect(user="app")
    a.execute("BEGIN")
    a.execute("select 1")
    b.execute("BEGIN")
    assert Background(lambda: b.execute("select 2").fetchone()[0]).result(10) == 2
    assert len(pg.backends(user=role)) == 2
    a.close()
    b.close()
