"""Issue 20: several tidepool processes on one port (so_reuseport) with
PgBouncer-style peering. A cancel request is a new connection, and the
kernel may hand it to a process other than the one running the query; with
peer_id and [peers] that process forwards it to the peer whose id is in the
cancel key."""

import os
import signal
import struct
import threading
import time

import psycopg
import pytest

import pgraw
from conftest import Background, wait_until
from test_admin import console, rows


def key_peer(pid):
    """The peer id tidepool (and PgBouncer) put in bytes 1 and 2 of the key."""
    b = struct.pack("!I", pid & 0xFFFFFFFF)
    return b[1] | (b[2] << 8)


def peers_section(tps):
    return "[peers]\n" + "".join(
        "%d = host=%s port=%d\n" % (i + 1, tp.sockdir, tp.port) for i, tp in enumerate(tps))


class PerTransactionLoad:
    """Threads that each connect, run one transaction and disconnect, in a
    loop, until the with block ends; check() then asserts that no attempt
    failed (connect, query or commit) and that enough were made."""

    def __init__(self, dsn, threads):
        self.dsn = dsn
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.done, self.failures = 0, []
        self.threads = [threading.Thread(target=self._client) for _ in range(threads)]

    def _client(self):
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, prepare_threshold=None) as c:
                    with c.transaction():
                        assert c.execute("select 41 + 1").fetchone()[0] == 42
                with self.lock:
                    self.done += 1
            except Exception as e:   # noqa: BLE001 - every failure counts
                with self.lock:
                    self.failures.append(repr(e))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def check(self, min_done):
        assert self.failures == [], "%d failed of %d: %s" % (
            len(self.failures), self.done + len(self.failures), self.failures[:5])
        assert self.done > min_done, self.done


def start_pair(tidepool, peered=True, **kw):
    """Two processes sharing one TCP port; each also has its own unix socket
    directory, which is how they reach each other."""
    kw.setdefault("pool_mode", "transaction")
    kw.setdefault("admin_users", "admin")
    a = tidepool(start=False, so_reuseport=1, metrics_port=0, peer_id=1 if peered else 0, **kw)
    b = tidepool(start=False, so_reuseport=1, metrics_port=0, peer_id=2 if peered else 0,
                 listen_port=a.port, **kw)
    b.port = a.port
    for tp in (a, b):
        if peered:
            tp.extra = peers_section([a, b])
        tp.write_config()
        tp.start()
        assert wait_until(lambda: os.path.exists(tp.unix_socket_path()), 10), tp.log()
    return a, b


@pytest.mark.hard_timeout(180)
def test_cancels_reach_their_query_wherever_the_kernel_sends_them(tidepool, pg):
    a, b = start_pair(tidepool)
    conns = [a.connect() for _ in range(30)]
    try:
        ids = {key_peer(c.info.backend_pid) for c in conns}
        assert ids == {1, 2}, "30 clients did not spread over both processes: %s" % ids
        for i in range(12):
            c = conns[(i * 7) % len(conns)]
            started = threading.Event()

            def sleeper():
                started.set()
                c.execute("select pg_sleep(20)")

            t = Background(sleeper)
            started.wait(5)
            assert wait_until(lambda: t.done() or pg.sql(
                "select count(*) from pg_stat_activity where query = 'select pg_sleep(20)' "
                "and state = 'active'")[0][0] == 1, 30), "round %d: the query never ran" % i
            assert not t.done(), "round %d: the query ended early: %r" % (i, t.exception(1))
            t0 = time.monotonic()
            c.cancel()
            exc = t.exception(10)
            assert isinstance(exc, psycopg.errors.QueryCanceled), \
                "round %d: cancel did not take effect: %r" % (i, exc)
            assert time.monotonic() - t0 < 3, "round %d: the cancel took over 3 s" % i
            assert c.execute("select 1").fetchone()[0] == 1
    finally:
        for c in conns:
            c.close()
    forwarded = a.log().count("forwarding a cancel request to peer") + \
        b.log().count("forwarding a cancel request to peer")
    assert forwarded > 0, "no cancel was forwarded: the test did not exercise peering"


def test_show_peers_and_peer_pools(tidepool):
    a, b = start_pair(tidepool)
    with console(a) as adm:
        assert [r["peer_id"] for r in rows(adm, "PEERS")] == [1, 2]
        pools = rows(adm, "PEER_POOLS")
        assert [r["peer_id"] for r in pools] == [1, 2]
        assert all(r["cl_waiting_cancel_req"] == 0 and r["sv_login"] == 0 for r in pools)


def test_cancel_key_carries_peer_id(tidepool):
    tp = tidepool(peer_id=513)
    with tp.connect() as c:
        assert key_peer(c.info.backend_pid) == 513
        assert c.info.backend_pid > 0
    plain = tidepool()
    # without peering the key stays random: 20 clients never all carry peer id 0
    peers = set()
    for _ in range(20):
        with plain.connect() as c:
            peers.add(key_peer(c.info.backend_pid))
    assert peers != {0}


@pytest.mark.parametrize("ttl,forwarded", [(0, False), (1, True)])
def test_forward_ttl(tidepool, ttl, forwarded):
    """A request for another peer is forwarded with one hop less to live, and
    dropped when none is left (a loop in [peers] cannot bounce it forever)."""
    a = tidepool(peer_id=1, metrics_port=0)
    a.extra = "[peers]\n7 = host=127.0.0.1 port=%d\n" % a.port   # peer 7 is... a itself
    a.write_config()
    a.reload()
    pid = (0x12 << 24) | (7 << 16) | 0x34        # peer 7 in bytes 1..2
    key = 0xABCDEF00 | ttl
    with a.raw() as r:
        r.send(pgraw.cancel_request(pid, key))
        assert r.wait_closed(5)
    if forwarded:
        # a forwards to "peer 7" = itself, which forwards again until the TTL is spent
        assert wait_until(lambda: "forwarded too often" in a.log(), 5), a.log()[-2000:]
    else:
        time.sleep(0.3)
        assert "forwarding a cancel request to peer 7" not in a.log()
        assert "forwarded too often" in a.log()
    with a.connect() as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_cancel_for_unknown_peer_is_dropped(tidepool):
    a = tidepool(peer_id=1)
    with a.raw() as r:
        r.send(pgraw.cancel_request((9 << 16) | 5, 0xFFFFFFFF))
        assert r.wait_closed(5)
    assert wait_until(lambda: "peer 9, which is not in [peers]" in a.log(), 5)
    with a.connect() as c:
        assert c.execute("select 1").fetchone()[0] == 1


def _replace(tidepool, old, peer_id, port, extra):
    """Stops old gracefully (SIGTERM: drain) and starts its replacement on
    the same port; returns the replacement once it accepts."""
    assert old.stop(signal.SIGTERM, 30) == 0, old.log()[-3000:]
    new = tidepool(start=False, pool_mode="transaction", so_reuseport=1, metrics_port=0,
                   peer_id=peer_id, listen_port=port)
    new.port = port
    new.extra = extra
    new.write_config()
    new.start()
    assert wait_until(lambda: os.path.exists(new.unix_socket_path()), 10), new.log()
    return new


MIGRATE_REQ = "/proc/sys/net/ipv4/tcp_migrate_req"


@pytest.fixture
def migrate_req():
    """net.ipv4.tcp_migrate_req = 1 for the test (restored after): with it,
    the kernel moves connections still queued on a closing so_reuseport
    socket to the port's other sockets (doc/scaling.md)."""
    try:
        with open(MIGRATE_REQ) as f:
            old = f.read().strip()
        with open(MIGRATE_REQ, "w") as f:
            f.write("1")
    except OSError as e:
        pytest.skip("cannot set net.ipv4.tcp_migrate_req (needs Linux 5.14+ and root): %s" % e)
    yield
    with open(MIGRATE_REQ, "w") as f:
        f.write(old)


@pytest.mark.hard_timeout(180)
def test_rolling_restart_fails_nothing(tidepool, migrate_req):
    """Two processes on one port; each in turn is stopped gracefully and
    replaced while clients keep opening connections and running
    transactions. No connection attempt is refused or reset and no
    transaction fails: the process being stopped takes what is queued on
    its socket before closing it, lets those clients run their transaction,
    and the kernel sends everything later to the other process."""
    a, b = start_pair(tidepool)
    with PerTransactionLoad(a.dsn(), 6) as load:
        time.sleep(1)
        a2 = _replace(tidepool, a, 1, a.port, a.extra)
        time.sleep(1)
        b2 = _replace(tidepool, b, 2, a.port, b.extra)
        time.sleep(1)
    load.check(min_done=100)
    for tp in (a2, b2):
        with tp.connect(host=None) as c:
            assert c.execute("select 1").fetchone()[0] == 1
