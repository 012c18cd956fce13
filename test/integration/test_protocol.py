"""Issue 3: the protocol through transaction (and session) pooling: extended
query, pipelines, COPY, large rows, notices and notifications, parameter
status tracking, cancel, function calls, empty queries."""

import hashlib
import string
import struct
import time

import psycopg
import pytest

import pgraw
from conftest import Background, wait_until

MODES = ["session", "transaction"]


def pid_of(conn):
    return conn.execute("select pg_backend_pid()").fetchone()[0]


def app_table(tp, name, ddl):
    """(Re)create a table owned by app, through tidepool."""
    with tp.connect() as c:
        c.execute("drop table if exists %s" % name)
        c.execute("create table %s (%s)" % (name, ddl))


# ----------------------------------------------------- extended protocol

@pytest.mark.parametrize("mode", MODES)
def test_extended_protocol_params_and_binary(tidepool, role, mode):
    tp = tidepool(pool_mode=mode, default_pool_size=2)
    blob = bytes(range(256)) * 40

    def client(k):
        with tp.connect(user=role) as c:
            for i in range(30):
                assert c.execute("select %s::int + %s::int", (k, i)).fetchone()[0] == k + i
                cur = c.cursor(binary=True)
                b, arr, t = cur.execute("select %s::bytea, %s::int8[], %s::text",
                                        (blob, [k, i, -1], "é%d" % i)).fetchone()
                assert bytes(b) == blob and arr == [k, i, -1] and t == "é%d" % i
        return True

    workers = [Background(client, k) for k in range(6)]
    assert all(w.result(60) for w in workers)


@pytest.mark.parametrize("mode", MODES)
def test_pipeline_mode(tidepool, role, mode):
    tp = tidepool(pool_mode=mode, default_pool_size=2)

    def client(k):
        with tp.connect(user=role) as c:
            for rnd in range(5):
                with c.pipeline():
                    curs = [c.execute("select %s::int * 100 + %s::int", (k, i)) for i in range(50)]
                assert [cur.fetchone()[0] for cur in curs] == [k * 100 + i for i in range(50)]
                # a pipeline inside an explicit transaction keeps one server
                with c.pipeline():
                    with c.transaction():
                        curs = [c.execute("select pg_backend_pid()") for _ in range(10)]
                assert len({cur.fetchone()[0] for cur in curs}) == 1
        return True

    workers = [Background(client, k) for k in range(8)]
    assert all(w.result(90) for w in workers)


@pytest.mark.parametrize("mode", MODES)
def test_pipeline_with_error_recovers(tidepool, role, mode):
    tp = tidepool(pool_mode=mode, default_pool_size=1)
    a = tp.connect(user=role)
    with pytest.raises(psycopg.errors.DivisionByZero):
        with a.pipeline():
            a.execute("select 1")
            a.execute("select 1/0")
            a.execute("select 2")
    assert a.execute("select 3").fetchone()[0] == 3
    if mode == "transaction":
        # the server went back to the pool clean
        with tp.connect(user=role) as b:
            assert b.execute("select now() = statement_timestamp()").fetchone()[0] is True
    a.close()


def test_pipelines_from_many_clients_do_not_mix(tidepool, role):
    """Results always reach the client that asked (pools backed up)."""
    tp = tidepool(pool_mode="transaction", default_pool_size=3)

    def client(k):
        tag = "client-%d" % k
        with tp.connect(user=role) as c:
            for rnd in range(10):
                with c.pipeline():
                    curs = [c.execute("select %s::text, %s::int", (tag, i)) for i in range(20)]
                got = [cur.fetchone() for cur in curs]
                assert got == [(tag, i) for i in range(20)], got
                assert c.execute("select %s::text", (tag,)).fetchone()[0] == tag
        return True

    workers = [Background(client, k) for k in range(30)]
    assert all(w.result(120) for w in workers)


# ------------------------------------------------------------------ COPY

@pytest.mark.parametrize("mode", MODES)
def test_copy_10mb_in_and_out(tidepool, role, mode):
    tp = tidepool(pool_mode=mode, default_pool_size=2)
    table = "tp_copy_%s" % mode
    app_table(tp, table, "id int, payload text")
    rows = 100_000
    data = "".join("%d\t%s\n" % (i, (str(i) * 30)[:100]) for i in range(rows)).encode()
    assert len(data) >= 10 * 1024 * 1024

    # another client keeps working next to the COPY
    stop = []

    def bystander():
        n = 0
        with tp.connect(user=role) as c:
            while not stop:
                assert c.execute("select %s::int", (n,)).fetchone()[0] == n
                n += 1
        return n

    side = Background(bystander)
    with tp.connect() as c:
        with c.cursor().copy("COPY %s FROM STDIN" % table) as cp:
            for off in range(0, len(data), 65536):
                cp.write(data[off:off + 65536])
        assert c.execute("select count(*) from %s" % table).fetchone()[0] == rows
        out = bytearray()
        with c.cursor().copy("COPY (SELECT * FROM %s ORDER BY id) TO STDOUT" % table) as cp:
            for chunk in cp:
                out += chunk
    stop.append(True)
    assert side.result(30) > 0
    assert len(out) == len(data)
    assert hashlib.sha256(bytes(out)).hexdigest() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("mode", MODES)
def test_copy_in_error_releases_server(tidepool, role, mode):
    tp = tidepool(pool_mode=mode, default_pool_size=1)
    table = "tp_copy_err_%s" % mode
    app_table(tp, table, "id int")
    a = tp.connect()
    with pytest.raises(psycopg.Error):
        with a.cursor().copy("COPY %s FROM STDIN" % table) as cp:
            cp.write(b"1\n2\nnot_a_number\n4\n")
    assert a.execute("select count(*) from %s" % table).fetchone()[0] == 0
    a.close()
    with tp.connect() as b:
        assert b.execute("select now() = statement_timestamp()").fetchone()[0] is True


def test_copy_out_large_then_queries(tidepool):
    tp = tidepool(pool_mode="transaction", default_pool_size=1)
    with tp.connect() as c:
        out = bytearray()
        with c.cursor().copy("COPY (SELECT g, repeat('z', 200) FROM generate_series(1, 60000) g) "
                             "TO STDOUT") as cp:
            for chunk in cp:
                out += chunk
        assert out.count(b"\n") == 60000
        assert c.execute("select 'after copy'").fetchone()[0] == "after copy"


# ------------------------------------------------------------ big values

@pytest.mark.parametrize("mode", MODES)
def test_1mb_row(tidepool, mode):
    tp = tidepool(pool_mode=mode)
    big = (string.ascii_letters * 21000)[:1 << 20]
    table = "tp_big_%s" % mode
    app_table(tp, table, "id int, v text")
    with tp.connect() as c:
        c.execute("insert into %s values (1, %%s)" % table, (big,))
        assert c.execute("select v from %s where id = 1" % table).fetchone()[0] == big
        assert c.execute("select md5(v) from %s" % table).fetchone()[0] == hashlib.md5(big.encode()).hexdigest()
        assert len(c.execute("select repeat('ab', 524288)").fetchone()[0]) == 1 << 20
    # a 1 MB simple-protocol Query message
    with tp.raw() as r:
        r.startup()
        rows, err, status = r.query("select length('%s')" % big)
        assert err is None and rows == [[str(1 << 20)]] and status == "I"


# ---------------------------------------------------- notices and notify

def test_notice_and_notification_forwarding(tidepool):
    tp = tidepool(pool_mode="session")
    notices, notifies = [], []
    with tp.connect() as c, tp.connect() as listener:
        c.add_notice_handler(lambda d: notices.append(d.message_primary))
        c.execute("DO $$ BEGIN RAISE NOTICE 'hello from the server'; END $$")
        assert "hello from the server" in notices
        listener.add_notify_handler(lambda n: notifies.append((n.channel, n.payload)))
        listener.execute("LISTEN tp_chan")
        c.execute("NOTIFY tp_chan, 'payload-1'")

        def got():
            listener.execute("select 1")
            return notifies
        assert wait_until(got, timeout=5) == [("tp_chan", "payload-1")]


def test_notice_in_transaction_mode(tidepool):
    tp = tidepool(pool_mode="transaction")
    notices = []
    with tp.connect() as c:
        c.add_notice_handler(lambda d: notices.append(d.message_primary))
        c.execute("DO $$ BEGIN RAISE NOTICE 'txn notice'; END $$")
    assert notices == ["txn notice"]


# ------------------------------------------------- raw protocol details

@pytest.mark.parametrize("mode", MODES)
def test_empty_query_response(tidepool, mode):
    tp = tidepool(pool_mode=mode)
    with tp.raw() as r:
        r.startup()
        r.send(pgraw.query_message(""))
        types = []
        while True:
            typ, body = r.read_message()
            types.append(typ)
            if typ == "Z":
                break
        assert types == ["I", "Z"], types


@pytest.mark.parametrize("mode", MODES)
def test_function_call(tidepool, pg, mode):
    oid = pg.sql("select 'int4pl'::regproc::oid")[0][0]
    tp = tidepool(pool_mode=mode)
    with tp.raw() as r:
        r.startup()
        body = struct.pack("!ihhh", oid, 1, 0, 2) + struct.pack("!i", 1) + b"1" + \
            struct.pack("!i", 1) + b"2" + struct.pack("!h", 0)
        r.send(pgraw.message("F", body))
        typ, resp = r.read_message()
        assert typ == "V", (typ, resp)
        (ln,) = struct.unpack_from("!i", resp)
        assert resp[4:4 + ln] == b"3"
        typ, resp = r.read_message()
        assert typ == "Z" and resp == b"I"


def test_terminate_closes_client_keeps_server(tidepool):
    tp = tidepool(pool_mode="session", default_pool_size=1)
    with tp.raw() as r:
        r.startup()
        rows, _, _ = r.query("select pg_backend_pid()")
        pid = int(rows[0][0])
        r.send(pgraw.terminate_message())
        assert r.wait_closed(5)
    with tp.connect() as c:
        assert pid_of(c) == pid


def test_extended_protocol_raw_sync_flush(tidepool):
    """Parse/Bind/Describe/Execute with Flush before Sync, unnamed statement."""
    tp = tidepool(pool_mode="transaction")
    with tp.raw() as r:
        r.startup()
        msgs = (pgraw.message("P", b"\0select $1::int + 1\0" + struct.pack("!h", 0)) +
                pgraw.message("B", b"\0\0" + struct.pack("!hh", 0, 1) + struct.pack("!i", 2) + b"41" +
                              struct.pack("!h", 0)) +
                pgraw.message("D", b"P\0") +
                pgraw.message("E", b"\0" + struct.pack("!i", 0)) +
                pgraw.message("H"))
        r.send(msgs)
        got = []
        while len(got) < 5:
            got.append(r.read_message())
        assert [t for t, _ in got] == ["1", "2", "T", "D", "C"], got
        assert pgraw.parse_data_row(got[3][1]) == ["42"]
        r.send(pgraw.message("S"))
        typ, body = r.read_message()
        assert typ == "Z" and body == b"I"


# -------------------------------------------------- parameter tracking

def test_startup_parameter_status(tidepool):
    tp = tidepool(pool_mode="transaction")
    with tp.raw() as r:
        params = r.startup(application_name="tp_test_app")
        for name in ("server_version", "client_encoding", "DateStyle", "TimeZone",
                     "standard_conforming_strings", "integer_datetimes"):
            assert name in params, params
        assert params.get("application_name") == "tp_test_app", params
        assert r.backend_key is not None
        rows, err, _ = r.query("show application_name")
        assert err is None and rows == [["tp_test_app"]]


def test_ignore_startup_parameters(tidepool):
    tp = tidepool(pool_mode="transaction", ignore_startup_parameters="extra_float_digits")
    with tp.raw() as r:
        r.startup(extra_float_digits="2")
        rows, err, _ = r.query("select 1")
        assert err is None
    with tp.raw() as r:
        r.send(pgraw.startup_message(**{"tidepool-bogus": "1"}))
        err = r.error_or_close()
        assert err is not None, "a startup parameter that is no setting name accepted silently"


def _set_a_params(a):
    a.execute("SET TimeZone = 'Asia/Tokyo'")
    a.execute("SET DateStyle = 'SQL, DMY'")
    a.execute("SET application_name = 'client_a'")
    a.execute("SET client_encoding = 'LATIN1'")


def test_set_parameters_follow_client_to_next_server(tidepool, role):
    tp = tidepool(pool_mode="transaction", default_pool_size=2)
    a = tp.connect(user=role)
    h = tp.connect(user=role)
    _set_a_params(a)
    q = ("select pg_backend_pid(), current_setting('TimeZone'), current_setting('DateStyle'), "
         "current_setting('application_name'), current_setting('client_encoding')")
    a_pids = set()
    for i in range(8):
        # h holds one of the two servers, so a must use the other
        h.execute("BEGIN")
        hp = pid_of(h)
        row = a.execute(q).fetchone()
        h.execute("COMMIT")
        assert row[0] != hp
        # and once more, now that h's server is free as well
        row2 = a.execute(q).fetchone()
        for r in (row, row2):
            assert r[1:] == ("Asia/Tokyo", "SQL, DMY", "client_a", "LATIN1"), r
            a_pids.add(r[0])
        if len(a_pids) == 2 and i >= 3:
            break
    assert len(a_pids) == 2, "client A never moved to another server; test inconclusive"
    assert a.info.parameter_status("client_encoding") == "LATIN1"
    a.close()
    h.close()


def test_set_parameters_do_not_leak_to_other_clients(tidepool, role):
    """A client that never SET anything keeps the values it was given at
    login, whichever server it gets (PgBouncer 1.18 leaks application_name)."""
    tp = tidepool(pool_mode="transaction", default_pool_size=2)
    a = tp.connect(user=role)
    h = tp.connect(user=role)
    h_login = h.execute("select current_setting('TimeZone'), current_setting('DateStyle'), "
                        "current_setting('application_name')").fetchone()
    _set_a_params(a)
    seen = set()
    for i in range(8):
        q = ("select pg_backend_pid(), current_setting('TimeZone'), "
             "current_setting('DateStyle'), current_setting('application_name')")
        a.execute("BEGIN")
        ap = pid_of(a)
        row = h.execute(q).fetchone()
        a.execute("COMMIT")
        assert row[0] != ap
        row2 = h.execute(q).fetchone()
        for r in (row, row2):
            seen.add(r[0])
            assert r[1:] == h_login, r
        if len(seen) == 2 and i >= 3:
            break
    assert len(seen) == 2, "client H never moved to another server; test inconclusive"
    a.close()
    h.close()


# ------------------------------------------------------------------ cancel

@pytest.mark.parametrize("mode", MODES)
def test_cancel_reaches_the_right_backend(tidepool, pg, role, mode):
    tp = tidepool(pool_mode=mode, default_pool_size=4)
    a = tp.connect(user=role)
    b = tp.connect(user=role)
    ta = Background(a.execute, "select pg_sleep(30)")
    tb = Background(lambda: b.execute("select pg_sleep(3), 'b done'").fetchone()[1])

    def both_running():
        return sum(1 for r in pg.backends(user=role)
                   if r[2] == "active" and "pg_sleep" in (r[3] or "")) == 2
    assert wait_until(both_running, timeout=10), pg.backends(user=role)
    t0 = time.monotonic()
    a.cancel()
    err = ta.exception(10)
    assert isinstance(err, psycopg.errors.QueryCanceled), repr(err)
    assert time.monotonic() - t0 < 5
    assert tb.result(15) == "b done"
    # both connections remain usable
    assert a.execute("select 1").fetchone()[0] == 1
    assert b.execute("select 2").fetchone()[0] == 2
    a.close()
    b.close()


def test_cancel_with_unknown_key_is_ignored(tidepool, pg, role):
    tp = tidepool(pool_mode="transaction", default_pool_size=2)
    b = tp.connect(user=role)
    tb = Background(lambda: b.execute("select pg_sleep(2), 'b done'").fetchone()[1])
    assert wait_until(lambda: any(r[2] == "active" for r in pg.backends(user=role)), timeout=10)
    for pid, key in ((1, 1), (0, 0), (0x7FFFFFFF, 0xFFFFFFFF)):
        with tp.raw() as r:
            r.send(pgraw.cancel_request(pid, key))
            assert r.wait_closed(5)
    assert tb.result(15) == "b done"
    b.close()


def test_cancel_after_query_finished_hits_nothing(tidepool, role):
    """A late cancel must not hit whatever runs next on that server."""
    tp = tidepool(pool_mode="transaction", default_pool_size=1)
    a = tp.connect(user=role)
    b = tp.connect(user=role)
    a.execute("select 1")              # a has a cancel key, no server now
    tb = Background(lambda: b.execute("select pg_sleep(2), 'b done'").fetchone()[1])
    time.sleep(0.5)
    a.cancel()                         # a is idle: must not cancel b's query
    assert tb.result(15) == "b done"
    a.close()
    b.close()
