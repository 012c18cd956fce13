"""Load on the side paths other poolers crashed on (reference/pitfalls.md):
a high rate of cancel requests, and admin SHOWs of prepared statements,
clients and servers while statements come and go. Run under ASan in CI.
Each test checks that the pooler stays up and that bystanders lose
nothing."""

import random
import socket
import threading
import time

import psycopg
import pytest

import pgraw
from conftest import Background, wait_until
from test_admin import admin_tp, console, rows

CANCEL_CODE = 80877102


@pytest.mark.hard_timeout(120)
def test_cancel_storm_hits_only_its_targets(tidepool, role):
    # 3 servers for 6 clients: a server goes from a target to a bystander all the time
    tp = tidepool(pool_mode="transaction", default_pool_size=3, max_client_conn=500)
    stop = threading.Event()

    def bystander():
        """Short transactions the whole time: a cancel that reached one of
        them would raise QueryCanceled here and fail the test."""
        done = 0
        with tp.connect(user=role) as c:
            while not stop.is_set():
                with c.transaction():
                    assert c.execute("select %s::int + 1", (done,)).fetchone()[0] == done + 1
                done += 1
        return done

    def target(conn):
        """Sleeps in rounds; the storm cancels some. The connection stays usable."""
        canceled = 0
        for _ in range(12):
            try:
                conn.execute("select pg_sleep(0.1)")
            except psycopg.errors.QueryCanceled:
                canceled += 1
            assert conn.execute("select 1").fetchone()[0] == 1
        return canceled

    def storm(targets, n, seed):
        """libpq cancels with valid keys, and raw requests with random keys,
        cut short, or with a wrong length, as fast as they go."""
        rnd = random.Random(seed)
        for k in range(n):
            if k % 4 == 0:
                rnd.choice(targets).cancel()
                continue
            with tp.raw() as r:
                if k % 4 == 2:   # cut short, then the sender goes away
                    r.send(pgraw.cancel_request(1, 2)[:10])
                    continue
                if k % 4 == 1:
                    r.send(pgraw.cancel_request(rnd.getrandbits(31), rnd.getrandbits(32)))
                else:
                    r.send(pgraw.raw_startup_header(40, CANCEL_CODE) + b"\0" * 32)
                assert r.wait_closed(5), "a cancel request left the connection open"

    bystanders = [Background(bystander) for _ in range(3)]
    target_conns = [tp.connect(user=role) for _ in range(3)]
    targets = [Background(target, c) for c in target_conns]
    storms = [Background(storm, target_conns, 100, seed) for seed in range(6)]
    for s in storms:
        s.result(90)
    canceled = sum(t.result(60) for t in targets)
    stop.set()
    assert all(b.result(30) > 0 for b in bystanders)
    assert canceled > 0, "150 cancels with valid keys never reached a sleeping query"
    assert tp.alive()
    with tp.connect(user=role) as c:
        assert c.execute("select 7").fetchone()[0] == 7
    for c in target_conns:
        c.close()


@pytest.mark.hard_timeout(120)
def test_admin_shows_while_prepared_statements_churn(tidepool, role):
    tp = admin_tp(tidepool, pool_mode="transaction", default_pool_size=3, max_prepared_statements=4)
    done = threading.Event()
    errors = []

    def churn(i):
        # every statement named; 9 texts over server caches of 4, and a new
        # connection every 30 statements, so names come and go all the time
        # (no DEALLOCATE ALL: psycopg 3.1 keeps using names it dropped)
        for _ in range(5):
            with tp.connect(user=role, prepare_threshold=0) as c:
                for n in range(30):
                    q = "select %%s::int + %d" % (n % 9)
                    assert c.execute(q, (i,)).fetchone()[0] == i + n % 9

    def watcher():
        seen = 0
        with console(tp) as adm:
            while not done.is_set():
                for what in ("PREPARED_STATEMENTS", "CLIENTS", "SERVERS", "POOLS", "STATS"):
                    try:
                        seen += len(rows(adm, what))
                    except psycopg.Error as e:   # any error is a finding
                        errors.append("SHOW %s: %r" % (what, e))
        return seen

    watchers = [Background(watcher) for _ in range(3)]
    workers = [Background(churn, i) for i in range(8)]
    for w in workers:
        w.result(90)
    done.set()
    assert all(w.result(30) > 0 for w in watchers)
    assert not errors, errors[:3]
    assert tp.alive()
    with tp.connect(user=role, prepare_threshold=0) as c, console(tp) as adm:
        assert c.execute("select %s::int + 0", (5,)).fetchone()[0] == 5
        stmts = rows(adm, "PREPARED_STATEMENTS")
        assert "select $1::int + 0" in {r["query"] for r in stmts}
        assert len(stmts) <= 9   # interned once per text, however many clients used it


class SlowConnectProxy:
    """TCP proxy to PostgreSQL that, once armed, holds every new connection
    for `delay` seconds before passing bytes: the pooled server connections
    (opened before) are fast, a cancel request (a new connection) is late."""

    def __init__(self, port, delay):
        self.target, self.delay, self.armed = port, delay, False
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                down, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(down, self.armed), daemon=True).start()

    def _serve(self, down, slow):
        if slow:
            time.sleep(self.delay)
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


def test_late_cancel_never_reaches_the_next_client(tidepool, pg, role):
    """A's cancel is still on its way when A's query ends; the server must
    not run B's query until PostgreSQL has taken the cancel."""
    proxy = SlowConnectProxy(pg.port, delay=1.0)
    tp = admin_tp(tidepool, pool_mode="transaction", default_pool_size=1,
                  databases={"appdb": "host=127.0.0.1 port=%d dbname=appdb" % proxy.port})
    a = tp.connect(user=role)
    b = tp.connect(user=role)
    pid = a.execute("select pg_backend_pid()").fetchone()[0]   # the pool's one server is open
    proxy.armed = True
    ta = Background(a.execute, "select pg_sleep(0.5)")
    assert wait_until(lambda: any(r[2] == "active" for r in pg.backends(user=role)), timeout=5)
    a.cancel()          # delivered 1 s from now, after A's query has ended
    ta.result(10)       # A's query ends by itself
    # B gets the same server, and its query is not the one canceled
    assert b.execute("select pg_sleep(2), pg_backend_pid()").fetchone()[1] == pid
    with console(tp) as adm:
        pools = [r for r in rows(adm, "POOLS") if r["user"] == role]
    assert pools and pools[0]["sv_being_canceled"] == 0
    a.close()
    b.close()
    proxy.close()
