"""Issue 7: the HTTP endpoint (/metrics, /livez, /readyz) and the graceful
shutdown Kubernetes needs (SIGTERM drain, shutdown_delay, shutdown_timeout,
shutdown_mode = wait_for_clients).

/metrics is read with a strict parser of the Prometheus text format 0.0.4:
every sample belongs to a family announced by # HELP and # TYPE just
before it, names and labels are well formed, histogram buckets are
cumulative and end with +Inf equal to _count."""

import http.client
import math
import os
import re
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from conftest import Background, clean_env, free_port, port_open, wait_until

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


# ------------------------------------------------------------------ HTTP

def http_get(port, path, method="GET", timeout=10.0, host="127.0.0.1"):
    """(status, headers with lower-case names, body text)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        body = r.read().decode()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        conn.close()


def http_status(port, path):
    try:
        return http_get(port, path, timeout=3)[0]
    except OSError:
        return None


# ------------------------------------------------- the exposition parser

def _parse_labels(line, pos):
    """Parses {a="x",b="y"} starting at line[pos] == '{'; returns (dict, pos after '}')."""
    assert line[pos] == "{"
    pos += 1
    labels = {}
    while line[pos] != "}":
        m = LABEL_NAME_RE.match(line, pos)
        assert m, "bad label name at %d in %r" % (pos, line)
        name = m.group(0)
        pos = m.end()
        assert line[pos:pos + 2] == '="', "expected =\" at %d in %r" % (pos, line)
        pos += 2
        value = []
        while line[pos] != '"':
            if line[pos] == "\\":
                esc = line[pos + 1]
                assert esc in '\\"n', "bad escape \\%s in %r" % (esc, line)
                value.append("\n" if esc == "n" else esc)
                pos += 2
            else:
                value.append(line[pos])
                pos += 1
        pos += 1
        assert name not in labels, "label %s twice in %r" % (name, line)
        labels[name] = "".join(value)
        if line[pos] == ",":
            pos += 1
        else:
            assert line[pos] == "}", "expected , or } at %d in %r" % (pos, line)
    return labels, pos + 1


def _parse_sample(line):
    m = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
    assert m, "bad sample line %r" % line
    name, pos = m.group(0), m.end()
    labels = {}
    if pos < len(line) and line[pos] == "{":
        labels, pos = _parse_labels(line, pos)
    assert line[pos] == " ", "expected a space after the labels in %r" % line
    parts = line[pos + 1:].split(" ")
    assert len(parts) == 1, "unexpected timestamp or junk in %r" % line
    value = float(parts[0])   # accepts +Inf, -Inf, NaN
    return name, labels, value


def _family_of(name, families):
    fam = families.get(name)
    if fam is not None and fam["type"] != "histogram":
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[:-len(suffix)]
        if name.endswith(suffix) and base in families and families[base]["type"] == "histogram":
            return base
    return None


def _check_histograms(families):
    for fname, fam in families.items():
        if fam["type"] != "histogram":
            continue
        series = {}
        for name, labels, value in fam["samples"]:
            key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
            s = series.setdefault(key, {"buckets": [], "sum": None, "count": None})
            if name.endswith("_bucket"):
                s["buckets"].append((float(labels["le"]), value))
            elif name.endswith("_sum"):
                s["sum"] = value
            else:
                s["count"] = value
        for key, s in series.items():
            b = s["buckets"]
            assert b, "%s%s has no buckets" % (fname, key)
            assert [le for le, _ in b] == sorted(le for le, _ in b), "%s: le not ascending" % fname
            assert b[-1][0] == math.inf, "%s%s: last bucket is not +Inf" % (fname, key)
            counts = [v for _, v in b]
            assert counts == sorted(counts), "%s%s: buckets not cumulative: %s" % (fname, key, counts)
            assert s["count"] is not None and s["sum"] is not None, "%s%s: _sum/_count missing" % (fname, key)
            assert b[-1][1] == s["count"], "%s%s: +Inf %s != _count %s" % (fname, key, b[-1][1], s["count"])


def parse_metrics(text):
    """Strict parse of a /metrics page -> {family: {help, type, samples}}."""
    assert text.endswith("\n"), "page must end with a newline"
    families, current, seen = {}, None, set()
    for line in text.split("\n")[:-1]:
        assert line, "empty line in the page"
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, rest = line[2:6], line[7:]
            name, _, arg = rest.partition(" ")
            assert NAME_RE.match(name), "bad family name %r" % name
            assert name.startswith("tidepool_"), "family %s lacks the tidepool_ prefix" % name
            fam = families.setdefault(name, {"help": None, "type": None, "samples": []})
            assert not fam["samples"], "%s for %s after its samples" % (kind, name)
            assert fam[kind.lower()] is None, "%s twice for %s" % (kind, name)
            if kind == "TYPE":
                assert arg in TYPES, "bad type %r" % arg
            else:
                assert arg, "empty HELP for %s" % name
            fam[kind.lower()] = arg
            current = name
            continue
        assert not line.startswith("#"), "unexpected comment %r" % line
        name, labels, value = _parse_sample(line)
        fname = _family_of(name, families)
        assert fname is not None, "sample %s belongs to no announced family" % name
        assert fname == current, "sample %s outside its family's block" % name
        fam = families[fname]
        assert fam["help"] is not None and fam["type"] is not None, "%s lacks HELP or TYPE" % fname
        key = (name, tuple(sorted(labels.items())))
        assert key not in seen, "duplicate sample %s %s" % key
        seen.add(key)
        if fam["type"] == "counter":
            assert fname.endswith("_total") and value >= 0, "counter %s" % fname
        fam["samples"].append((name, labels, value))
    for name, fam in families.items():
        assert fam["help"] is not None and fam["type"] is not None, "%s lacks HELP or TYPE" % name
    _check_histograms(families)
    return families


def scrape(port):
    status, headers, body = http_get(port, "/metrics")
    assert status == 200, body
    assert headers["content-type"].startswith("text/plain; version=0.0.4"), headers
    return parse_metrics(body)


def value(fams, name, default=0.0, **labels):
    """The value of one sample (name may be a family or a histogram's
    _bucket/_sum/_count), matched on the given labels; default if absent."""
    fname = _family_of(name, fams)
    if fname is None:
        return default
    for n, lab, v in fams[fname]["samples"]:
        if n == name and all(lab.get(k) == str(w) for k, w in labels.items()):
            return v
    return default


# ------------------------------------------------------------ helpers

def listening_tcp_ports(pid):
    """TCP ports the process listens on (from /proc)."""
    inodes = set()
    fddir = "/proc/%d/fd" % pid
    for fd in os.listdir(fddir):
        try:
            m = re.match(r"socket:\[(\d+)\]", os.readlink(os.path.join(fddir, fd)))
        except OSError:
            continue
        if m:
            inodes.add(m.group(1))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            parts = row.split()
            if parts[3] == "0A" and parts[9] in inodes:
                ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


def make_table(pg, name):
    pg.sql("DROP TABLE IF EXISTS %s; CREATE TABLE %s (v int); GRANT ALL ON %s TO app"
           % (name, name, name), dbname="appdb")


def count_rows(pg, name):
    return pg.sql("SELECT count(*) FROM %s" % name, dbname="appdb")[0][0]


def is_shutdown_error(exc):
    """57P01 from tidepool, or the connection already gone."""
    state = getattr(exc, "sqlstate", None)
    return state in (None, "57P01")


# -------------------------------------------------------------- endpoints

def test_livez_readyz_404_405_and_head(tidepool):
    mp = free_port()
    tp = tidepool(metrics_port=mp)
    assert http_get(mp, "/livez")[::2] == (200, "ok\n")
    assert http_get(mp, "/readyz")[::2] == (200, "ready\n")
    assert http_get(mp, "/nothing-here")[0] == 404
    assert http_get(mp, "/metrics/extra")[0] == 404
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        status, headers, _ = http_get(mp, "/metrics", method=method)
        assert status == 405, method
        assert headers.get("allow") == "GET, HEAD"
    status, headers, body = http_get(mp, "/livez", method="HEAD")
    assert status == 200 and body == ""
    # query strings are ignored
    assert http_get(mp, "/livez?verbose=1")[0] == 200
    assert tp.alive()


def test_metrics_page_parses_and_moves_with_traffic(tidepool, role):
    mp = free_port()
    tp = tidepool(pool_mode="transaction", metrics_port=mp, users={role: "pool_size=1"})
    lab = {"database": "appdb", "user": role}
    before = scrape(mp)
    for fam in ("tidepool_up", "tidepool_build_info", "tidepool_start_time_seconds",
                "tidepool_config_reloads_total", "tidepool_config_last_reload_successful",
                "tidepool_clients", "tidepool_servers", "tidepool_max_client_conn",
                "tidepool_open_fds", "tidepool_resident_memory_bytes",
                "tidepool_pools_client_waiting_connections", "tidepool_client_wait_seconds",
                "tidepool_query_duration_seconds", "tidepool_transaction_duration_seconds"):
        assert fam in before, fam
    assert value(before, "tidepool_up") == 1
    assert value(before, "tidepool_open_fds") > 0
    assert value(before, "tidepool_resident_memory_bytes") > 0
    assert abs(value(before, "tidepool_start_time_seconds") - time.time()) < 3600
    assert value(before, "tidepool_stats_sql_transactions_pooled_total", **lab) == 0

    with tp.connect(user=role) as c:
        for i in range(20):
            assert c.execute("select %s::int", (i,)).fetchone()[0] == i
        with c.transaction():
            c.execute("select 1")
            c.execute("select 2")
    after = scrape(mp)
    xacts = value(after, "tidepool_stats_sql_transactions_pooled_total", **lab)
    queries = value(after, "tidepool_stats_queries_pooled_total", **lab)
    assert xacts >= 21
    assert queries >= 22
    assert value(after, "tidepool_stats_server_assignments_total", **lab) >= 21
    assert value(after, "tidepool_query_duration_seconds_count", **lab) == queries
    assert value(after, "tidepool_transaction_duration_seconds_count", **lab) == xacts
    assert value(after, "tidepool_client_wait_seconds_count", **lab) == \
        value(after, "tidepool_stats_server_assignments_total", **lab)
    assert value(after, "tidepool_query_duration_seconds_sum", **lab) == pytest.approx(
        value(after, "tidepool_stats_queries_duration_seconds_total", **lab), abs=1e-6)
    assert value(after, "tidepool_stats_received_bytes_total", **lab) > 0
    assert value(after, "tidepool_stats_sent_bytes_total", **lab) > 0
    assert value(after, "tidepool_stats_client_logins_total", **lab) >= 1
    assert value(after, "tidepool_stats_server_logins_total", **lab) >= 1
    assert value(after, "tidepool_pools_pool_size", **lab) == 1


def test_metrics_pool_gauges_and_wait_histogram(tidepool, role):
    mp = free_port()
    tp = tidepool(pool_mode="transaction", metrics_port=mp, users={role: "pool_size=1"})
    lab = {"database": "appdb", "user": role}
    holder = tp.connect(user=role, autocommit=False)
    idle = tp.connect(user=role)
    waiter = tp.connect(user=role)
    try:
        holder.execute("select 1")          # opens a transaction: holds the only server
        fams = scrape(mp)
        assert value(fams, "tidepool_pools_server_active_connections", **lab) == 1
        assert value(fams, "tidepool_pools_client_idle_connections", **lab) == 2
        assert value(fams, "tidepool_pools_client_active_connections", **lab) == 3
        assert value(fams, "tidepool_clients") >= 3
        bg = Background(lambda: waiter.execute("select 42").fetchone()[0])
        assert wait_until(lambda: value(scrape(mp), "tidepool_pools_client_waiting_connections", **lab) == 1)
        assert wait_until(lambda: value(scrape(mp), "tidepool_pools_client_maxwait_seconds", **lab) > 0.2)
        holder.commit()
        assert bg.result(10) == 42
        fams = scrape(mp)
        assert value(fams, "tidepool_pools_client_waiting_connections", **lab) == 0
        # the waiter's wait (> 0.2 s) is above the 0.1024 s bucket
        count = value(fams, "tidepool_client_wait_seconds_count", **lab)
        assert value(fams, "tidepool_client_wait_seconds_bucket", le="0.1024", **lab) < count
        assert value(fams, "tidepool_stats_client_wait_seconds_total", **lab) > 0.2
    finally:
        for c in (holder, idle, waiter):
            c.close()


def test_metrics_label_values_are_escaped(tidepool, pg):
    mp = free_port()
    tp = tidepool(metrics_port=mp, databases={
        "*": "host=127.0.0.1 port=%d dbname=appdb" % pg.port})
    odd = 'we"ird\\d\nb'
    with psycopg.connect(host=tp.host, port=tp.port, dbname=odd, user="app", autocommit=True,
                         connect_timeout=10) as c:
        c.execute("select 1")
    fams = scrape(mp)
    assert value(fams, "tidepool_stats_queries_pooled_total", database=odd, user="app") >= 1


def test_counters_for_timeouts_and_login_failures(tidepool, role):
    mp = free_port()
    tp = tidepool(pool_mode="transaction", metrics_port=mp, query_timeout=1,
                  query_wait_timeout=1, users={role: "pool_size=1"})
    lab = {"database": "appdb", "user": role}
    with tp.connect(user=role) as c:
        with pytest.raises(psycopg.OperationalError):
            c.execute("select pg_sleep(5)")
    holder = tp.connect(user=role, autocommit=False)
    try:
        holder.execute("select 1")
        with tp.connect(user=role) as w:
            with pytest.raises(psycopg.OperationalError):
                w.execute("select 1")
    finally:
        holder.close()
    fams = scrape(mp)
    assert value(fams, "tidepool_stats_query_timeouts_total", **lab) == 1
    assert value(fams, "tidepool_stats_wait_timeouts_total", **lab) == 1


def test_client_login_failures_counted(tidepool):
    mp = free_port()
    tp = tidepool(metrics_port=mp, auth_type="md5", auth_file={"app": "right"})
    with pytest.raises(psycopg.OperationalError):
        tp.connect(password="wrong")
    with tp.connect(password="right") as c:
        c.execute("select 1")
    fams = scrape(mp)
    assert value(fams, "tidepool_stats_client_login_failures_total", database="appdb", user="app") == 1
    assert value(fams, "tidepool_stats_client_logins_total", database="appdb", user="app") == 1


def test_readyz_checks_backend(tidepool):
    mp = free_port()
    dead = free_port()
    tp = tidepool(metrics_port=mp, databases={"gone": "host=127.0.0.1 port=%d dbname=x" % dead})
    with pytest.raises(psycopg.OperationalError):
        tp.connect(dbname="gone")
    # off by default: a database outage does not pull the pooler out of service
    assert http_get(mp, "/readyz")[0] == 200
    fams = scrape(mp)
    assert value(fams, "tidepool_stats_server_login_failures_total", database="gone", user="app") >= 1
    tp.write_config(readyz_checks_backend=1)
    tp.reload()
    status, _, body = http_get(mp, "/readyz")
    assert status == 503, body
    assert body.startswith("not ready: ") and "gone" in body and body.count("\n") == 1
    assert value(scrape(mp), "tidepool_ready") == 0


# ----------------------------------------------------- robustness of the loop

@pytest.mark.hard_timeout(240)
def test_slowloris_and_concurrent_scrapes_do_not_stall_pooling(tidepool, pgbench_db, raise_nofile):
    mp = free_port()
    tp = tidepool(pool_mode="transaction", metrics_port=mp)
    stalled = []
    try:
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", mp), timeout=10)
            s.sendall(b"GET /metr")          # half a request line, then nothing
            stalled.append(s)
        bench = Background(subprocess.run,
                           [pgbench_db, "-n", "-c", "4", "-j", "2", "-T", "5", "-h", tp.host,
                            "-p", str(tp.port), "-U", "app", "appdb"],
                           env=clean_env(), capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        with ThreadPoolExecutor(max_workers=200) as ex:
            pages = list(ex.map(lambda _: http_get(mp, "/metrics", timeout=60), range(200)))
        for status, _, body in pages:
            assert status == 200
        parse_metrics(pages[-1][2])
        with tp.connect() as c:
            for i in range(50):
                assert c.execute("select %s::int", (i,)).fetchone()[0] == i
        assert http_get(mp, "/livez")[0] == 200
        r = bench.result(120)
        assert r.returncode == 0, r.stdout + r.stderr
        m = re.search(r"number of failed transactions: (\d+)", r.stdout)
        assert m is None or m.group(1) == "0", r.stdout
        # the stalled connections are dropped by the server's timeout
        for s in stalled[:3]:
            s.settimeout(60)
            try:
                while s.recv(4096):
                    pass
            except ConnectionResetError:
                pass
    finally:
        for s in stalled:
            s.close()
    assert tp.alive()


# ------------------------------------------------------ configuration of the port

def test_metrics_port_zero_disables_the_endpoint(tidepool):
    tp = tidepool(metrics_port=0)
    assert listening_tcp_ports(tp.pid) == {tp.port}
    assert "metrics endpoint is off" in tp.log()


def test_reload_moves_the_endpoint(tidepool):
    p1, p2, p3 = free_port(), free_port(), free_port()
    tp = tidepool(metrics_port=p1)
    assert listening_tcp_ports(tp.pid) == {tp.port, p1}
    tp.write_config(metrics_port=p2)
    tp.reload()
    assert wait_until(lambda: http_status(p2, "/livez") == 200)
    assert not port_open("127.0.0.1", p1)
    assert value(scrape(p2), "tidepool_config_reloads_total") == 1
    # a port someone else holds: the endpoint stays where it is
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", p3))
    blocker.listen(1)
    try:
        tp.write_config(metrics_port=p3)
        tp.reload()
        assert http_status(p2, "/livez") == 200
        assert "metrics endpoint stays on" in tp.log()
    finally:
        blocker.close()
    # a broken file: the reload fails and the page says so
    good = open(tp.config_path).read()
    tp.write_config(text=good + "\nthis is not a key value line\n")
    tp.reload()
    fams = scrape(p2)
    assert value(fams, "tidepool_config_last_reload_successful") == 0
    assert value(fams, "tidepool_config_reloads_total") == 3
    # metrics_port = 0 closes it
    tp.write_config(text=good.replace("metrics_port = %d" % p3, "metrics_port = 0"))
    tp.reload()
    assert wait_until(lambda: not port_open("127.0.0.1", p2))
    assert listening_tcp_ports(tp.pid) == {tp.port}
    with tp.connect() as c:
        assert c.execute("select 1").fetchone()[0] == 1


# --------------------------------------------------------------- shutdown

@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_sigterm_drain(tidepool, pg, mode):
    mp = free_port()
    table = "drain_%s" % mode
    make_table(pg, table)
    tp = tidepool(pool_mode=mode, metrics_port=mp, shutdown_delay=2)
    idle = tp.connect()
    idle.execute("select 1")
    tx = tp.connect(autocommit=False)
    tx.execute("insert into %s values (1)" % table)
    assert http_get(mp, "/readyz")[0] == 200

    tp.send_signal(signal.SIGTERM)
    assert wait_until(lambda: http_status(mp, "/readyz") == 503, timeout=5)
    assert "shutting down" in http_get(mp, "/readyz")[2]
    # during shutdown_delay a late-routed client is still served
    with tp.connect() as late:
        assert late.execute("select 7").fetchone()[0] == 7
    # then the listener closes and the idle client is closed at once:
    # only the client inside its transaction is left
    assert wait_until(lambda: not port_open(tp.host, tp.port), timeout=10)
    with pytest.raises(psycopg.OperationalError):
        with tp.connect() as c:
            c.execute("select 1")
    assert wait_until(lambda: value(scrape(mp), "tidepool_clients") == 1, timeout=10)
    fams = scrape(mp)                       # scrapeable during the drain
    assert value(fams, "tidepool_ready") == 0
    assert tp.alive()
    # the open transaction goes on and commits
    tx.execute("insert into %s values (2)" % table)
    tx.commit()
    # its next query finds the connection closed with 57P01
    with pytest.raises(psycopg.OperationalError) as ei:
        tx.execute("select 1")
    assert is_shutdown_error(ei.value), ei.value
    with pytest.raises(psycopg.OperationalError) as ei:
        idle.execute("select 1")
    assert is_shutdown_error(ei.value), ei.value
    assert tp.proc.wait(15) == 0, tp.log()
    assert count_rows(pg, table) == 2
    tx.close()
    idle.close()
    log = tp.log()
    assert "listener closed" in log and "no client left, exiting" in log


def test_shutdown_timeout_cuts_an_open_transaction(tidepool, pg):
    table = "drain_timeout"
    make_table(pg, table)
    tp = tidepool(pool_mode="transaction", metrics_port=free_port(), shutdown_timeout=2)
    tx = tp.connect(autocommit=False)
    tx.execute("insert into %s values (1)" % table)
    tp.send_signal(signal.SIGTERM)
    assert tp.proc.wait(20) == 0, tp.log()
    with pytest.raises(psycopg.OperationalError):
        tx.execute("select 1")
    tx.close()
    assert count_rows(pg, table) == 0
    assert "shutdown_timeout reached" in tp.log()


def test_second_sigterm_exits_at_once(tidepool):
    tp = tidepool(pool_mode="transaction", metrics_port=free_port(), shutdown_timeout=300)
    tx = tp.connect(autocommit=False)
    tx.execute("select 1")
    tp.send_signal(signal.SIGTERM)
    assert wait_until(lambda: not port_open(tp.host, tp.port), timeout=10)
    assert tp.alive()
    tp.send_signal(signal.SIGTERM)
    assert tp.proc.wait(10) == 0
    tx.close()


def test_sigquit_exits_at_once(tidepool):
    tp = tidepool(pool_mode="transaction", metrics_port=free_port(), shutdown_timeout=300)
    tx = tp.connect(autocommit=False)
    tx.execute("select 1")
    tp.send_signal(signal.SIGQUIT)
    assert tp.proc.wait(10) == 0
    tx.close()


def test_wait_for_clients_mode_keeps_idle_clients(tidepool):
    mp = free_port()
    tp = tidepool(pool_mode="transaction", metrics_port=mp, shutdown_mode="wait_for_clients")
    c = tp.connect()
    assert c.execute("select 1").fetchone()[0] == 1
    tp.send_signal(signal.SIGTERM)
    assert wait_until(lambda: http_status(mp, "/readyz") == 503, timeout=5)
    assert wait_until(lambda: not port_open(tp.host, tp.port), timeout=10)
    time.sleep(1.5)                         # a few janitor passes
    assert c.execute("select 2").fetchone()[0] == 2
    assert tp.alive()
    c.close()
    assert tp.proc.wait(10) == 0, tp.log()


def test_sigusr1_pauses_and_sigusr2_resumes(tidepool):
    mp = free_port()
    tp = tidepool(pool_mode="transaction", metrics_port=mp)
    c = tp.connect()
    assert c.execute("select 1").fetchone()[0] == 1
    tp.send_signal(signal.SIGUSR1)
    assert wait_until(lambda: http_status(mp, "/readyz") == 503, timeout=5)
    assert "paused" in http_get(mp, "/readyz")[2]
    bg = Background(lambda: c.execute("select 5").fetchone()[0])
    # paused: the query waits for a server
    assert wait_until(lambda: value(scrape(mp), "tidepool_pools_client_waiting_connections",
                                    database="appdb", user="app") == 1)
    assert not bg.done()
    tp.send_signal(signal.SIGUSR2)
    assert bg.result(10) == 5
    assert wait_until(lambda: http_status(mp, "/readyz") == 200, timeout=5)
    c.close()
