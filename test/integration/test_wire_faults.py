"""Issue 22: faults on the wire, injected by faultproxy.FaultProxy.

Between tidepool and PostgreSQL: added latency, a bandwidth limit, every
byte its own TCP segment, the stream cut at every byte offset of a login
and a query, a reset in the middle of a message, a half-close, a stall.
Between clients and tidepool: a slow reader, a reset in the middle of a
result, a client that vanishes inside a transaction.

Then the checker (test_checker_under_faults): many clients, each writing
rows tagged with its own id and a token per transaction and reading them
back, while the proxy resets, stalls and slows the server connections.
After the run every COMMIT acknowledged to a client is in the table
exactly once, no client saw a row or a result meant for another, every
failed transaction ended with an ErrorResponse carrying a SQLSTATE, and
tidepool is up with SHOW POOLS back to idle. TIDEPOOL_FAULT_SECONDS sets
how long the checker runs (default 12; doc/fuzzing.md has a longer run).
"""

import os
import random
import threading
import time

import psycopg
import pytest

from conftest import wait_until
from faultproxy import FaultProxy

CHECKER_SECONDS = float(os.environ.get("TIDEPOOL_FAULT_SECONDS", "12"))


@pytest.fixture
def proxy(pg):
    made = []

    def make(port=None, **kw):
        p = FaultProxy(port or pg.port, **kw)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close()


def via_proxy(tidepool, pg, px, **kw):
    """tidepool whose appdb servers go through px."""
    kw.setdefault("pool_mode", "transaction")
    kw.setdefault("admin_users", "admin")
    return tidepool(databases={"appdb": "host=127.0.0.1 port=%d dbname=appdb" % px.port}, **kw)


def pools(tp):
    with tp.connect(dbname="pgbouncer", user="admin") as c:
        cur = c.execute("SHOW POOLS")
        names = [d.name for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall() if r[names.index("database")] == "appdb"]


def settled(tp):
    """No client active or waiting and no server active on appdb."""
    def ok():
        ps = pools(tp)
        return all(p["cl_active"] == 0 and p["cl_waiting"] == 0 and p["sv_active"] == 0 for p in ps)
    return ok


BACKEND_TYPES = set(b"RSKZECDTIdcGHWAN123nstvV")


def wire_verdict(stream):
    """How a backend-protocol byte stream (tidepool -> client, from the
    startup response on) ends: "error" (its last message is an
    ErrorResponse with a SQLSTATE), "cut" (it stops inside a well-formed
    message), "ok" (ends after a whole message of another kind), or
    "garbled: ..." (a message no server sends: the stream lost its framing)."""
    pos, last = 0, None
    data = bytes(stream)
    if data[:1] == b"N":               # answer to an SSLRequest
        pos = 1
    while pos < len(data):
        typ = data[pos]
        if typ not in BACKEND_TYPES:
            return "garbled: type %r at %d" % (chr(typ), pos)
        if pos + 5 > len(data):
            return "cut"
        n = int.from_bytes(data[pos + 1:pos + 5], "big")
        if n < 4 or n > 0x3fffffff:
            return "garbled: length %d at %d" % (n, pos)
        if pos + 1 + n > len(data):
            return "cut"
        last = (chr(typ), data[pos + 5:pos + 1 + n])
        pos += 1 + n
    if last and last[0] == "E":
        fields = dict((f[:1], f[1:]) for f in last[1].split(b"\0") if f)
        return "error" if len(fields.get(b"C", b"")) == 5 else "error without SQLSTATE"
    return "ok"


def check_queries(conn, n=3):
    assert conn.execute("select 41 + 1").fetchone()[0] == 42
    rows = conn.execute("select g, repeat('x', g) from generate_series(1, 300) g").fetchall()
    assert rows == [(g, "x" * g) for g in range(1, 301)]
    for i in range(n):
        assert conn.execute("select %s::int * 2", (i,), prepare=False).fetchone()[0] == i * 2
    with pytest.raises(psycopg.errors.DivisionByZero):
        conn.execute("select 1/0")


# ------------------------------------------------ tidepool <-> PostgreSQL

def test_latency_and_bandwidth_limit(tidepool, pg, proxy):
    px = proxy()
    px.latency = 0.002
    px.bandwidth = 400_000
    tp = via_proxy(tidepool, pg, px)
    with tp.connect() as c:
        check_queries(c)
        big = c.execute("select string_agg(md5(g::text), '') from generate_series(1, 5000) g").fetchone()[0]
        assert len(big) == 32 * 5000


def test_every_byte_its_own_segment(tidepool, pg, proxy):
    px = proxy()
    px.chunk = 1
    tp = via_proxy(tidepool, pg, px)
    with tp.connect() as c:
        check_queries(c, n=2)
        with c.cursor() as cur:
            with cur.copy("copy (select g from generate_series(1, 50) g) to stdout") as cp:
                got = b"".join(bytes(b) for b in cp)
        assert got == b"".join(b"%d\n" % g for g in range(1, 51))


def test_stream_cut_at_every_offset(tidepool, pg, proxy):
    """The server's login answer and a query result, split in two at every
    byte offset in turn (one fresh server connection per offset)."""
    px = proxy(record=True)
    tp = via_proxy(tidepool, pg, px, pool_mode="session")

    def no_servers():
        return all(sum(v for k, v in p.items() if k.startswith("sv_")) == 0 for p in pools(tp))
    with tp.connect() as c:
        c.execute("select 'ok', 1")
    total = len(px.recordings[0]["down"])
    assert total > 200
    step = 1 if total < 700 else 2
    for k in range(1, total, step):
        px.reset_all()                 # the next client needs a new server ...
        wait_until(no_servers)
        px.cut_at = {"down": k, "up": k % 97 + 1}   # ... whose streams are cut here
        with tp.connect() as c:
            assert c.execute("select 'ok', 1").fetchone() == ("ok", 1)
    assert px.accepted >= len(range(1, total, step))


def test_reset_mid_message(tidepool, pg, proxy):
    px = proxy()
    tp = via_proxy(tidepool, pg, px, default_pool_size=1)
    with tp.connect() as c:
        c.execute("select 1")
    # the next bytes from PostgreSQL: a 200 KB result, reset after 30 000
    px.reset_after = {"down": 30_000}
    for conn in px.open_connections():
        conn.reset_after = dict(px.reset_after)
    cpx = proxy(port=tp.port, record=True)
    with psycopg.connect(client_dsn(tp, cpx), autocommit=True) as c:
        with pytest.raises(psycopg.OperationalError):
            c.execute("select repeat('y', 200) from generate_series(1, 1000)").fetchall()
    # what the client got is well-formed up to where the server's stream
    # ended (an ErrorResponse there would have landed inside a DataRow)
    assert wire_verdict(cpx.recordings[0]["down"]) in ("error", "cut")
    px.reset_after = {}
    with tp.connect() as c:
        check_queries(c)
    wait_until(settled(tp))
    assert tp.alive()


def test_half_close_from_server(tidepool, pg, proxy):
    px = proxy()
    tp = via_proxy(tidepool, pg, px, default_pool_size=1)
    with tp.connect() as c:
        c.execute("select 1")
        px.half_close_all("down")      # tidepool reads EOF from its idle server
        time.sleep(0.3)
        check_queries(c)               # a new server serves the next transaction
    cpx = proxy(port=tp.port, record=True)
    with psycopg.connect(client_dsn(tp, cpx)) as c:
        c.execute("select 1")          # in a transaction
        px.half_close_all("down")
        time.sleep(0.3)
        with pytest.raises(psycopg.OperationalError):
            c.execute("select pg_sleep(0.1)")
            c.commit()
    # tidepool told the idle-in-transaction client with an ErrorResponse
    # (libpq may not show it: the RST that answers the client's next
    # query discards what it had not read yet)
    assert wire_verdict(cpx.recordings[0]["down"]) == "error"
    with tp.connect() as c:
        check_queries(c)
    wait_until(settled(tp))


def test_stall_then_resume(tidepool, pg, proxy):
    px = proxy()
    tp = via_proxy(tidepool, pg, px, default_pool_size=2)
    results = []

    def worker(i):
        with tp.connect() as c:
            results.append(c.execute("select %s::int", (i,)).fetchone()[0])
    with tp.connect() as c:
        c.execute("select 1")
    px.stall()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    assert results == []
    px.resume()
    for t in threads:
        t.join(20)
    assert sorted(results) == list(range(6))
    wait_until(settled(tp))


# ------------------------------------------------ clients <-> tidepool

def client_dsn(tp, px, **extra):
    return tp.dsn(host="127.0.0.1").replace("port=%d" % tp.port, "port=%d" % px.port) + "".join(
        " %s=%s" % kv for kv in extra.items())


def test_slow_reader(tidepool, pg, proxy):
    tp = via_proxy(tidepool, pg, proxy(), default_pool_size=1)
    cpx = proxy(port=tp.port)
    cpx.bandwidth = 150_000
    with psycopg.connect(client_dsn(tp, cpx), autocommit=True) as c:
        rows = c.execute("select g, repeat('z', 100) from generate_series(1, 3000) g").fetchall()
        assert rows == [(g, "z" * 100) for g in range(1, 3001)]
    with tp.connect() as c:
        check_queries(c)


def test_client_reset_mid_result_does_not_cross(tidepool, pg, proxy):
    """A client reset while a large result streams to it: the server (the
    only one) must not carry the rest of that result to the next client."""
    tp = via_proxy(tidepool, pg, proxy(), default_pool_size=1)
    cpx = proxy(port=tp.port)
    cpx.bandwidth = 500_000
    cpx.reset_after = {"down": 40_000}
    with pytest.raises(psycopg.OperationalError):
        with psycopg.connect(client_dsn(tp, cpx), autocommit=True) as c:
            c.execute("select 'victim', g, repeat('v', 200) from generate_series(1, 5000) g").fetchall()
    for i in range(5):
        with tp.connect() as c:
            assert c.execute("select 'next', %s::int", (i,)).fetchone() == ("next", i)
    wait_until(settled(tp))


def test_client_vanishes_inside_transaction(tidepool, pg, proxy):
    pg.sql("create table if not exists vanish (tag text)", dbname="appdb")
    pg.sql("grant all on vanish to app", dbname="appdb")
    tp = via_proxy(tidepool, pg, proxy(), default_pool_size=1)
    cpx = proxy(port=tp.port)
    c = psycopg.connect(client_dsn(tp, cpx))
    c.execute("insert into vanish values ('ghost')")
    cpx.reset_all()
    time.sleep(0.3)
    with tp.connect() as c2:
        assert c2.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert c2.execute("select count(*) from vanish where tag = 'ghost'").fetchone()[0] == 0
        c2.execute("insert into vanish values ('real')")
    assert pg.sql("select count(*) from vanish where tag = 'real'", dbname="appdb")[0][0] == 1
    wait_until(settled(tp))


# ------------------------------------------------ the checker

class Client:
    def __init__(self, cid, dsn):
        self.cid = cid
        self.dsn = dsn
        self.acked = set()          # seqs whose COMMIT succeeded
        self.failures = []          # (sqlstate, message) of failed transactions
        self.no_sqlstate = []       # failures without an ErrorResponse
        self.crossed = []           # anything that belonged to another client
        self.seq = 0
        self.commits = 0

    def one_transaction(self, conn):
        seqs = [self.seq + i for i in range(random.randint(1, 3))]
        self.seq += len(seqs)
        token = "%d-%d" % (self.cid, seqs[0])
        with conn.transaction():
            for s in seqs:
                conn.execute("insert into ledger (client, seq, token) values (%s, %s, %s)",
                             (self.cid, s, token))
            got = conn.execute("select %s::text, pg_backend_pid() > 0", (token,)).fetchone()
            if got[0] != token:
                self.crossed.append(("echo", token, got))
            rows = conn.execute("select client, seq from ledger where token = %s order by seq",
                                (token,)).fetchall()
            if rows != [(self.cid, s) for s in seqs]:
                self.crossed.append(("rows", token, rows))
        self.acked.update(seqs)
        self.commits += 1

    def run(self, stop):
        conn = None
        while not stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.dsn, autocommit=True, prepare_threshold=None)
                self.one_transaction(conn)
            except psycopg.Error as e:
                if e.sqlstate:
                    self.failures.append((e.sqlstate, str(e)[:120]))
                else:
                    self.no_sqlstate.append(str(e)[:200])
                if conn is not None and (conn.closed or conn.broken):
                    conn = None
        if conn is not None:
            conn.close()


def chaos(px, stop, rng):
    """Resets a server connection now and then, stalls, changes latency."""
    while not stop.is_set():
        action = rng.random()
        if action < 0.35:
            px.reset_one(rng.randrange(1000))
        elif action < 0.5:
            px.stall()
            time.sleep(rng.uniform(0.05, 0.4))
            px.resume()
        elif action < 0.7:
            px.latency = rng.choice([0, 0, 0.001, 0.005])
        elif action < 0.8:
            px.chunk = rng.choice([0, 0, 1, 7])
        stop.wait(rng.uniform(0.1, 0.5))
    px.resume()
    px.latency = 0
    px.chunk = 0


@pytest.mark.hard_timeout(int(CHECKER_SECONDS) + 180)
def test_checker_under_faults(tidepool, pg, proxy):
    pg.sql("drop table if exists ledger", dbname="appdb")
    pg.sql("create table ledger (client int, seq int, token text)", dbname="appdb")
    pg.sql("grant all on ledger to app", dbname="appdb")
    px = proxy()
    tp = via_proxy(tidepool, pg, px, default_pool_size=4, server_login_retry=0)
    # the clients' own connections go through a recording proxy (no faults):
    # what tidepool sent each one is checked at the end
    cpx = proxy(port=tp.port, record=True)
    n_clients = int(os.environ.get("TIDEPOOL_FAULT_CLIENTS", "16"))
    clients = [Client(i + 1, client_dsn(tp, cpx)) for i in range(n_clients)]
    stop = threading.Event()
    rng = random.Random(int(os.environ.get("TIDEPOOL_FAULT_SEED", "22")))
    threads = [threading.Thread(target=c.run, args=(stop,)) for c in clients]
    threads.append(threading.Thread(target=chaos, args=(px, stop, rng)))
    for t in threads:
        t.start()
    time.sleep(CHECKER_SECONDS)
    stop.set()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert tp.alive()

    rows = pg.sql("select client, seq, count(*) from ledger group by client, seq", dbname="appdb")
    counts = {(c, s): n for c, s, n in rows}
    lost = [(c.cid, s) for c in clients for s in c.acked if counts.get((c.cid, s)) != 1]
    dups = [k for k, n in counts.items() if n > 1]
    crossed = [x for c in clients for x in c.crossed]
    commits = sum(c.commits for c in clients)
    failures = sum(len(c.failures) + len(c.no_sqlstate) for c in clients)
    # Every client connection that did not end with the client's Terminate
    # was ended by tidepool: its stream must end with an ErrorResponse
    # carrying a SQLSTATE, or inside a message (the server's stream broke
    # there, and nothing can be added to it); no stream may lose framing.
    verdicts = {}
    bad = []
    for rec in cpx.recordings:
        v = wire_verdict(rec["down"])
        ended_by_client = bytes(rec["up"][-5:]) == b"X\0\0\0\x04"
        verdicts[v] = verdicts.get(v, 0) + 1
        if v.startswith("garbled") or v == "error without SQLSTATE" or (not ended_by_client and v == "ok"):
            bad.append(v)
    print("checker: %d clients, %.0f s, %d commits, %d failed transactions, %d server connections "
          "(%d reset by the proxy), client streams: %s" % (
              n_clients, CHECKER_SECONDS, commits, failures, px.accepted, px.resets_done, verdicts))
    assert commits > 0
    assert lost == [], "acknowledged but not in the table exactly once"
    assert dups == []
    assert crossed == []
    assert bad == [], "client streams ended without an ErrorResponse or lost their framing"
    wait_until(settled(tp), timeout=20)
    ps = pools(tp)
    assert all(p["cl_active"] == 0 and p["cl_waiting"] == 0 for p in ps)
    with tp.connect() as c:
        check_queries(c)
