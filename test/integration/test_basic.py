"""Issue 2: the binary, the startup packet, session pooling through a real
PostgreSQL with real clients (psql, psycopg, pgbench)."""

import re
import signal
import subprocess
import time

import psycopg
import pytest

import pgraw
from conftest import Background, clean_env, pg_bin, port_open, tidepool_bin, wait_until


def assert_serves(tp, **kw):
    """A brand-new client can connect and query."""
    with tp.connect(**kw) as c:
        assert c.execute("select 41 + 1").fetchone()[0] == 42


# ------------------------------------------------------------ the binary

def test_version_flag():
    for flag in ("-V", "--version"):
        r = subprocess.run([tidepool_bin(), flag], capture_output=True, text=True, timeout=10,
                           stdin=subprocess.DEVNULL)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        assert "tidepool" in out.lower(), out
        assert re.search(r"\d+\.\d+", out), out


def test_help_flag():
    r = subprocess.run([tidepool_bin(), "--help"], capture_output=True, text=True, timeout=10,
                       stdin=subprocess.DEVNULL)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "--check" in out and "usage" in out.lower(), out


def test_sigterm_exits_cleanly(tidepool):
    tp = tidepool()
    assert_serves(tp)
    rc = tp.stop(signal.SIGTERM, timeout=10)
    assert rc == 0, tp.log()
    assert not port_open(tp.host, tp.port)


def test_quiet_keeps_the_logfile_level(tidepool, tmp_path):
    """-q silences stderr only, as PgBouncer's: the logfile keeps LOG lines
    (PgBouncer's test suite runs with -q and reads them)."""
    logfile = tmp_path / "file.log"
    tp = tidepool(start=False, logfile=str(logfile))
    tp.start(args=("-q",))
    assert_serves(tp)
    tp.stop(signal.SIGTERM, timeout=10)
    text = logfile.read_text()
    assert " LOG " in text and "closing because" in text, text
    assert " LOG " not in tp.log(), tp.log()


def test_sigint_exits(tidepool):
    tp = tidepool()
    rc = tp.stop(signal.SIGINT, timeout=10)
    assert rc == 0, tp.log()


def test_sigterm_lets_session_finish_and_refuses_new_clients(tidepool):
    # PgBouncer's SIGTERM; the default drain (issue 7) closes idle clients
    # at once and is tested in test_http.py
    tp = tidepool(shutdown_mode="wait_for_clients")
    conn = tp.connect()
    assert conn.execute("select 1").fetchone()[0] == 1
    tp.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    # the open session keeps working
    assert conn.execute("select 2").fetchone()[0] == 2
    assert tp.alive()
    # a new client is refused (connection refused, or an error from tidepool)
    with pytest.raises(psycopg.OperationalError):
        with tp.connect() as c2:
            c2.execute("select 1")
    conn.close()
    assert tp.proc.wait(10) == 0, tp.log()


# ------------------------------------------------------------ clients

def test_psql_over_tcp(tidepool):
    tp = tidepool()
    r = tp.psql("select 1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"
    r = tp.psql("select current_database(), current_user")
    assert r.stdout.strip() == "appdb|app", r.stderr


def test_psql_over_unix_socket(tidepool):
    tp = tidepool()
    r = tp.psql("select 'via unix'", host=tp.sockdir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "via unix"


def test_psycopg_queries(tidepool):
    tp = tidepool()
    with tp.connect() as c:
        assert c.execute("select 1").fetchone()[0] == 1
        assert c.execute("select %s::int * 2", (21,)).fetchone()[0] == 42
        assert c.execute("select sum(g) from generate_series(1, 100000) g").fetchone()[0] == 5000050000
        rows = c.execute("select g, repeat('x', g) from generate_series(1, 500) g").fetchall()
        assert len(rows) == 500 and rows[-1][1] == "x" * 500
        # an error does not break the session
        with pytest.raises(psycopg.errors.DivisionByZero):
            c.execute("select 1/0")
        assert c.execute("select 'still here'").fetchone()[0] == "still here"
    with tp.connect(dbname="postgres") as c:
        assert c.execute("select current_database()").fetchone()[0] == "postgres"


def test_psycopg_over_unix_socket(tidepool):
    tp = tidepool()
    with tp.connect(host=tp.sockdir) as c:
        assert c.execute("select current_database()").fetchone()[0] == "appdb"


def test_many_sequential_clients(tidepool):
    tp = tidepool(default_pool_size=2)
    for i in range(50):
        with tp.connect() as c:
            assert c.execute("select %s::int", (i,)).fetchone()[0] == i


# ----------------------------------------------------- startup handling

def test_unknown_database_3D000(tidepool):
    tp = tidepool()
    with tp.raw() as c:
        c.send(pgraw.startup_message(user="app", database="no_such_db"))
        err = c.expect_error()
        assert err["C"] == "3D000", err
        assert c.wait_closed(5)
    with pytest.raises(psycopg.OperationalError):
        tp.connect(dbname="no_such_db")
    assert_serves(tp)


@pytest.mark.parametrize("length", [0, 4, 7, -1, 100000, 10_000_000],
                         ids=["len0", "len4", "len7", "negative", "len100000", "len10M"])
def test_malformed_startup_length_08P01(tidepool, length):
    tp = tidepool()
    with tp.raw() as c:
        # only the header: a well-behaved pooler checks the length before
        # waiting for (or allocating) the body
        c.send_quietly(pgraw.raw_startup_header(length))
        err = c.error_or_close()
        assert err is not None, "connection closed without an ErrorResponse"
        assert err["C"] == "08P01", err
        assert c.wait_closed(5)
    assert_serves(tp)


def test_terminate_before_startup_closes_silently(tidepool):
    """Issue 16: as PostgreSQL, no ErrorResponse for a client that sends
    Terminate instead of a startup packet (node-postgres does)."""
    tp = tidepool()
    with tp.raw() as c:
        c.send(b"X\x00\x00\x00\x04")
        assert c.wait_closed(5)
        assert c.buf == b"", c.buf
    assert_serves(tp)


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (4, 0)], ids=["1.0", "2.0", "4.0"])
def test_unsupported_protocol_version(tidepool, version):
    tp = tidepool()
    with tp.raw() as c:
        c.send(pgraw.startup_message(protocol=version))
        err = c.error_or_close()
        assert err is not None, "connection closed without an ErrorResponse"
        assert err["C"] in ("0A000", "08P01"), err
        assert c.wait_closed(5)
    assert_serves(tp)


def test_startup_without_user(tidepool):
    tp = tidepool()
    with tp.raw() as c:
        c.send(pgraw.startup_message(user=None, database="appdb"))
        err = c.error_or_close()
        assert err is not None and err["S"] in ("FATAL", "ERROR"), err
    assert_serves(tp)


def test_startup_packet_not_nul_terminated(tidepool):
    tp = tidepool()
    body = b"user\0app\0database\0appdb"          # missing the final NULs
    with tp.raw() as c:
        c.send(pgraw.raw_startup_header(8 + len(body)) + body)
        err = c.error_or_close()
        assert err is not None and err["C"] == "08P01", err
    assert_serves(tp)


def test_ssl_request_answered_N_then_startup(tidepool):
    tp = tidepool()
    with tp.raw() as c:
        c.send(pgraw.ssl_request())
        assert c.read_byte() == b"N"
        params = c.startup(user="app", database="appdb")
        assert "server_version" in params
        rows, err, status = c.query("select 'after ssl refusal'")
        assert err is None and rows == [["after ssl refusal"]] and status == "I"
        c.send(pgraw.terminate_message())


def test_gssenc_request_answered_N_then_ssl_then_startup(tidepool):
    tp = tidepool()
    with tp.raw() as c:
        c.send(pgraw.gssenc_request())
        assert c.read_byte() == b"N"
        c.send(pgraw.ssl_request())       # what libpq does with gssencmode=prefer
        assert c.read_byte() == b"N"
        c.startup(user="app", database="appdb")
        rows, err, _ = c.query("select 7")
        assert err is None and rows == [["7"]]
    # libpq's own negotiation
    with tp.connect(sslmode="prefer", gssencmode="prefer") as conn:
        assert conn.execute("select 1").fetchone()[0] == 1


def test_cancel_request_with_unknown_key(tidepool):
    tp = tidepool()
    with tp.raw() as c:
        c.send(pgraw.cancel_request(12345, 67890))
        assert c.wait_closed(5), "tidepool did not close the cancel connection"
    assert_serves(tp)


# ------------------------------------------------------- session pooling

def test_second_client_reuses_server_connection(tidepool):
    tp = tidepool(default_pool_size=1)
    with tp.connect() as c:
        pid1 = c.execute("select pg_backend_pid()").fetchone()[0]
    with tp.connect() as c:
        pid2 = c.execute("select pg_backend_pid()").fetchone()[0]
    assert pid1 == pid2


def test_second_client_reuses_server_connection_larger_pool(tidepool):
    tp = tidepool()                       # default_pool_size 20: reuse, not a new server
    pids = set()
    for _ in range(5):
        with tp.connect() as c:
            pids.add(c.execute("select pg_backend_pid()").fetchone()[0])
        time.sleep(0.2)                   # let the reset query finish
    assert len(pids) == 1, pids


def test_server_reset_query_between_session_clients(tidepool):
    tp = tidepool(default_pool_size=1)
    with tp.connect() as c:
        pid1 = c.execute("select pg_backend_pid()").fetchone()[0]
        c.execute("SET application_name = 'dirty_app'")
        c.execute("SET search_path = dirty_schema, public")
        c.execute("SET tidepool_test.marker = 'dirty'")
        c.execute("CREATE TEMP TABLE tp_dirty_temp (x int)")
        c.execute("PREPARE tp_dirty_stmt AS SELECT 1")
    with tp.connect() as c:
        pid2, appname, path, marker, temp, prep = c.execute(
            "select pg_backend_pid(), current_setting('application_name'), "
            "current_setting('search_path'), current_setting('tidepool_test.marker', true), "
            "(select count(*) from pg_class where relname = 'tp_dirty_temp'), "
            "(select count(*) from pg_prepared_statements)").fetchone()
    assert pid1 == pid2, "the server was not reused, so the reset was not tested"
    assert appname != "dirty_app"
    assert "dirty_schema" not in path
    assert marker in (None, "")
    assert temp == 0
    assert prep == 0


def test_server_reset_query_custom(tidepool):
    tp = tidepool(default_pool_size=1, server_reset_query="RESET search_path")
    with tp.connect() as c:
        pid1 = c.execute("select pg_backend_pid()").fetchone()[0]
        c.execute("SET search_path = dirty_schema, public")
        c.execute("SET tidepool_test.marker = 'kept'")
    with tp.connect() as c:
        pid2, path, marker = c.execute(
            "select pg_backend_pid(), current_setting('search_path'), "
            "current_setting('tidepool_test.marker', true)").fetchone()
    assert pid1 == pid2
    assert "dirty_schema" not in path
    assert marker == "kept"               # only search_path was reset


def test_session_pool_size_makes_clients_wait(tidepool):
    tp = tidepool(default_pool_size=1)
    a = tp.connect()
    pid_a = a.execute("select pg_backend_pid()").fetchone()[0]

    def client_b():
        with tp.connect() as b:
            return b.execute("select pg_backend_pid()").fetchone()[0]

    bg = Background(client_b)
    assert not bg.wait(1.0), "second client got a server although the pool (size 1) was in use"
    a.close()
    assert bg.result(10) == pid_a


def test_client_garbage_after_login_does_not_affect_others(tidepool):
    tp = tidepool()
    other = tp.connect()
    assert other.execute("select 1").fetchone()[0] == 1
    with tp.raw() as c:
        c.startup()
        c.send_quietly(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
        err = c.error_or_close()
        if err is not None:
            assert err["C"] == "08P01", err
        assert c.wait_closed(10)
    assert other.execute("select 2").fetchone()[0] == 2
    other.close()
    assert_serves(tp)


def test_max_client_conn_53300(tidepool):
    tp = tidepool(max_client_conn=3)
    conns = [tp.connect() for _ in range(3)]
    for c in conns:
        assert c.execute("select 1").fetchone()[0] == 1
    with tp.raw() as r:
        r.send_quietly(pgraw.startup_message())
        err = r.error_or_close()
        assert err is not None, "closed without an ErrorResponse"
        assert err["C"] == "53300", err
    with pytest.raises(psycopg.OperationalError):
        tp.connect()
    conns.pop().close()
    # a slot is free again (once tidepool has noticed the disconnect)
    def try_connect():
        try:
            with tp.connect() as c:
                return c.execute("select 1").fetchone()[0] == 1
        except psycopg.OperationalError:
            return False
    assert wait_until(try_connect, timeout=5, interval=0.2)
    for c in conns:
        c.close()


def test_pgbench_simple_session_mode(tidepool, pgbench_db):
    tp = tidepool()
    r = subprocess.run([pgbench_db, "-n", "-M", "simple", "-c", "4", "-j", "2", "-t", "100",
                        "-h", tp.host, "-p", str(tp.port), "-U", "app", "appdb"],
                       env=clean_env(), capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "number of transactions actually processed: 400/400" in out, out
    m = re.search(r"number of failed transactions: (\d+)", out)
    if m:
        assert m.group(1) == "0", out


def test_psql_script_through_pooler(tidepool):
    """A multi-statement psql script with a transaction, COPY and \\gset."""
    tp = tidepool()
    script = (
        "create temp table t (a int, b text);\n"
        "begin;\n"
        "insert into t select g, 'row' || g from generate_series(1, 1000) g;\n"
        "commit;\n"
        "\\copy t to stdout\n"
        "select count(*) as n from t \\gset\n"
        "select :n * 2;\n"
    )
    r = subprocess.run([pg_bin("psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", tp.host,
                        "-p", str(tp.port), "-U", "app", "-d", "appdb"],
                       input=script, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1001 and lines[0] == "1\trow1" and lines[-1] == "2000", lines[-3:]
