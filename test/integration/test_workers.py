"""Issue 20: `workers = N`. One supervisor opens the listening sockets and
starts N single-threaded workers that share them, peered with each other
for cancel requests; it restarts a worker that dies, passes signals on to
all of them, and answers /metrics, /livez and /readyz for all of them on one
port."""

import os
import signal
import time

import psycopg
import pytest

from conftest import Background, free_port, wait_until
from test_config import mentions_line, run_check, write, SECTION
from test_http import http_get, http_status, scrape, value
from test_peering import PerTransactionLoad, key_peer


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def start_workers(tidepool, n=2, **kw):
    kw.setdefault("pool_mode", "transaction")
    kw.setdefault("admin_users", "admin")
    mp = free_port()
    tp = tidepool(workers=n, metrics_port=mp, **kw)
    assert wait_until(lambda: len(children(tp.pid)) == n, 10), tp.log()
    assert wait_until(lambda: http_status(mp, "/readyz") == 200, 10), tp.log()
    tp.metrics_port = mp
    return tp


def spread_clients(tp, n=30):
    conns = [tp.connect() for _ in range(n)]
    ids = {key_peer(c.info.backend_pid) for c in conns}
    return conns, ids


@pytest.mark.hard_timeout(180)
def test_workers_share_the_port_and_cancels_reach_their_query(tidepool, pg):
    tp = start_workers(tidepool)
    conns, ids = spread_clients(tp)
    try:
        assert ids == {1, 2}, "30 clients did not reach both workers: %s" % ids
        for c in conns[:4]:
            assert c.execute("select 1").fetchone()[0] == 1
        for i in range(12):
            c = conns[(i * 5) % len(conns)]
            t = Background(c.execute, "select pg_sleep(20)")
            assert wait_until(lambda: t.done() or pg.sql(
                "select count(*) from pg_stat_activity where query = 'select pg_sleep(20)' "
                "and state = 'active'")[0][0] == 1, 30), "round %d: the query never ran" % i
            assert not t.done(), "round %d: the query ended early: %r" % (i, t.exception(1))
            t0 = time.monotonic()
            c.cancel()
            exc = t.exception(10)
            assert isinstance(exc, psycopg.errors.QueryCanceled), "round %d: %r" % (i, exc)
            assert time.monotonic() - t0 < 3, "round %d: the cancel took over 3 s" % i
    finally:
        for c in conns:
            c.close()


def test_a_dead_worker_is_restarted_and_the_others_keep_serving(tidepool):
    tp = start_workers(tidepool)
    conns, ids = spread_clients(tp, 20)
    try:
        assert ids == {1, 2}
        victim_pid = children(tp.pid)[0]
        os.kill(victim_pid, signal.SIGKILL)
        assert wait_until(lambda: len(children(tp.pid)) == 2 and victim_pid not in children(tp.pid),
                          10), tp.log()
        assert "was killed by signal 9; starting it again" in tp.log()
        # the clients of the surviving worker lost nothing
        alive = 0
        for c in conns:
            try:
                c.execute("select 1")
                alive += 1
            except psycopg.OperationalError:
                pass
        assert 0 < alive < len(conns), "expected exactly one worker's clients to be lost (%d alive)" % alive
        # new clients are served, by both workers again
        assert wait_until(lambda: http_status(tp.metrics_port, "/readyz") == 200, 10), \
            http_get(tp.metrics_port, "/readyz")
        # both workers accept again (each takes one connection per wake-up)
        seen = set()

        def one_more():
            with tp.connect() as c:
                seen.add(key_peer(c.info.backend_pid))
            return seen == {1, 2}

        assert wait_until(one_more, 30), seen
        fams = scrape(tp.metrics_port)
        assert sum(s[2] for s in fams["tidepool_worker_restarts_total"]["samples"]) == 1
    finally:
        for c in conns:
            c.close()


def test_one_metrics_page_and_probes_for_all_workers(tidepool):
    tp = start_workers(tidepool)
    conns, _ = spread_clients(tp, 10)
    try:
        for c in conns:
            c.execute("select 1")
        fams = scrape(tp.metrics_port)   # the strict parser: each family once, in one block
        assert value(fams, "tidepool_workers", state="running") == 2
        up = {s[1].get("worker") for s in fams["tidepool_up"]["samples"]}
        assert up == {"1", "2"}
        assert http_get(tp.metrics_port, "/livez")[0] == 200
        # the console says which worker answered
        seen = set()

        def one_more():
            with tp.connect(dbname="pgbouncer", user="admin") as adm:
                seen.add(dict(adm.execute("show state").fetchall())["worker"])
            return len(seen) == 2

        assert wait_until(one_more, 30), seen
        assert seen == {"1 of 2 (generation 0)", "2 of 2 (generation 0)"}, seen
        # a paused worker is not ready; SIGUSR1 reaches every worker through the supervisor
        tp.send_signal(signal.SIGUSR1)
        assert wait_until(lambda: http_status(tp.metrics_port, "/readyz") == 503, 10)
        status, _, body = http_get(tp.metrics_port, "/readyz")
        assert "worker" in body and "paused" in body, body
        assert tp.log().count("SIGUSR1: pausing every pool") == 2
        tp.send_signal(signal.SIGUSR2)
        assert wait_until(lambda: http_status(tp.metrics_port, "/readyz") == 200, 10)
    finally:
        for c in conns:
            c.close()


def test_sighup_reloads_every_worker_and_sigterm_stops_them_all(tidepool):
    tp = start_workers(tidepool)
    workers = children(tp.pid)
    tp.write_config(default_pool_size=7)
    tp.send_signal(signal.SIGHUP)
    assert wait_until(lambda: all("[%d] LOG SIGHUP: reloading" % w in tp.log() for w in workers), 10), \
        tp.log()
    sock = tp.unix_socket_path()
    assert os.path.exists(sock)
    with tp.connect() as c:
        c.execute("select 1")
    assert tp.stop(signal.SIGTERM, 20) == 0
    assert not any(os.path.exists("/proc/%d" % w) for w in workers)
    assert not os.path.exists(sock), "the supervisor left the unix socket behind"
    assert "all workers stopped; supervisor exiting" in tp.log()


@pytest.mark.parametrize("value,ok", [("auto", True), ("3", True), ("0", False), ("two", False),
                                      ("2000", False)])
def test_workers_key_is_checked(tmp_path, value, ok):
    path = write(tmp_path / "w.ini", "[%s]\nlisten_port = 6432\nworkers = %s\n"
                 "[databases]\nx = host=127.0.0.1\n" % (SECTION, value))
    rc, out = run_check(path)
    assert (rc == 0) == ok, out
    if not ok:
        assert mentions_line(out, "w.ini", 3), out


def test_workers_refuse_hand_written_peering(tmp_path):
    path = write(tmp_path / "w.ini", "[%s]\nworkers = 2\npeer_id = 1\n"
                 "[databases]\nx = host=127.0.0.1\n" % SECTION)
    rc, out = run_check(path)
    assert rc == 1 and mentions_line(out, "w.ini", 3) and "peers its workers itself" in out, out


def test_check_counts_every_worker_in_the_budget(tmp_path):
    path = write(tmp_path / "b.ini", "[%s]\nlisten_port = 6432\nworkers = 3\ndefault_pool_size = 10\n"
                 "expected_replicas = 2\n[databases]\na = host=10.1.1.1 port=5432\n" % SECTION)
    rc, out = run_check(path)
    assert rc == 0, out
    assert "budget: 10.1.1.1:5432 this_process_max 10, x workers 3 x expected_replicas 2 = " \
           "fleet_max 60" in out, out


@pytest.mark.hard_timeout(180)
def test_in_place_upgrade_fails_nothing(tidepool, pg, tmp_path):
    """`tidepool --upgrade CONFIG` takes the running supervisor's listening
    sockets, starts its own workers and then drains the old ones, under
    load: no connection attempt or transaction fails, a transaction open
    across the upgrade commits, a query of an old client is still canceled
    through the new workers, and the new process owns the pidfile, the unix
    socket and metrics_port."""
    import subprocess
    from conftest import tidepool_bin
    pidfile = str(tmp_path / "tp.pid")
    old = start_workers(tidepool, pidfile=pidfile)
    old_pid = old.pid
    long_tx = old.connect()
    long_tx.execute("begin")
    long_tx.execute("select 1")
    sleeper = old.connect()
    load = PerTransactionLoad(old.dsn(), 4).__enter__()
    new = None
    try:
        time.sleep(1)
        # a query of a client of the old generation, running across the upgrade
        sleep = Background(sleeper.execute, "select pg_sleep(20)")
        assert wait_until(lambda: pg.sql("select count(*) from pg_stat_activity where query = "
                                         "'select pg_sleep(20)' and state = 'active'")[0][0] == 1, 10)
        log = open(tmp_path / "new.log", "wb")
        new = subprocess.Popen([tidepool_bin(), "-v", "--upgrade", old.config_path],
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               cwd=str(old.workdir))
        assert wait_until(lambda: open(pidfile).read().strip() == str(new.pid), 10)
        assert wait_until(lambda: "the old ones drain now" in (tmp_path / "new.log").read_text(), 20), \
            (tmp_path / "new.log").read_text()
        # the transaction opened before the upgrade goes on and commits
        long_tx.execute("select 2")
        long_tx.execute("commit")
        # ... is canceled: the request reaches a new worker, which forwards
        # it to the old one (its peer of the previous generation)
        t0 = time.monotonic()
        sleeper.cancel()
        assert isinstance(sleep.exception(10), psycopg.errors.QueryCanceled)
        assert time.monotonic() - t0 < 3
        long_tx.close()
        sleeper.close()
        assert old.proc.wait(30) == 0, old.log()[-3000:]
        time.sleep(1)
    finally:
        load.__exit__(None, None, None)
        if new is not None and new.poll() is None:
            new.send_signal(signal.SIGTERM)
            new.wait(20)
    new_log = (tmp_path / "new.log").read_text()
    load.check(min_done=50)
    assert "upgrade: took over 2 listening sockets" in new_log, new_log
    assert new.returncode == 0, new_log[-3000:]
    assert not os.path.exists(old.unix_socket_path()), "the new supervisor left the unix socket"
    assert not os.path.exists("/proc/%d" % old_pid)
