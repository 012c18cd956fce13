"""PgBouncer drop-in (issue 18): every key has its effect, per user and per
database where PgBouncer allows it, or is refused with file:line.

Per-user and per-database limits are checked for the user or database they
apply to and, in the same tidepool, not for another one."""
import os
import grp
import re
import socket
import subprocess
import time

import psycopg
import pytest

import pgraw
from conftest import Background, tidepool_bin, wait_until


def run_check(path):
    r = subprocess.run([tidepool_bin(), "--check", path], capture_output=True, text=True,
                       timeout=20, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout + r.stderr


def fails(fn, *args, timeout=15):
    """The exception fn(*args) raised in a thread within timeout, or None."""
    return Background(fn, *args).exception(timeout)


# ------------------------------------------------------- per-user timeouts

def test_user_query_timeout_applies_to_that_user_only(tidepool, pg, role):
    other = pg.create_role()
    tp = tidepool(pool_mode="transaction", users={role: "query_timeout=1"})
    slow = tp.connect(user=role)
    err = fails(slow.execute, "select pg_sleep(20)")
    assert isinstance(err, psycopg.Error), "the user's query_timeout did not stop pg_sleep"
    with tp.connect(user=other) as b:
        assert b.execute("select pg_sleep(2.5), 1").fetchone()[1] == 1


def test_user_client_idle_timeout_applies_to_that_user_only(tidepool, pg, role):
    other = pg.create_role()
    tp = tidepool(pool_mode="transaction", users={role: "client_idle_timeout=1"})
    a, b = tp.connect(user=role), tp.connect(user=other)
    time.sleep(3)
    assert isinstance(fails(a.execute, "select 1"), psycopg.Error), "idle client kept"
    assert b.execute("select 1").fetchone()[0] == 1


def test_user_idle_transaction_timeout_applies_to_that_user_only(tidepool, pg, role):
    other = pg.create_role()
    tp = tidepool(pool_mode="transaction", users={role: "idle_transaction_timeout=1"})
    a, b = tp.connect(user=role), tp.connect(user=other)
    a.execute("begin")
    b.execute("begin")
    time.sleep(3)
    assert isinstance(fails(a.execute, "select 1"), psycopg.Error)
    assert b.execute("select 1").fetchone()[0] == 1
    b.execute("commit")


@pytest.mark.parametrize("where", ["global", "user"])
def test_transaction_timeout(tidepool, pg, role, where):
    other = pg.create_role()
    if where == "global":
        tp = tidepool(pool_mode="transaction", transaction_timeout=2)
    else:
        tp = tidepool(pool_mode="transaction", users={role: "transaction_timeout=2"})
    a = tp.connect(user=role)
    a.execute("begin")
    # busy inside the transaction all along: idle_transaction_timeout would not fire
    err = fails(a.execute, "select pg_sleep(1)")
    assert err is None
    err = fails(a.execute, "select pg_sleep(20)")
    assert isinstance(err, psycopg.Error), "transaction_timeout did not end the transaction"
    with tp.connect(user=other) as b:
        b.execute("begin")
        b.execute("select pg_sleep(1)")
        if where == "user":   # the other user has no transaction_timeout
            b.execute("select pg_sleep(2)")
            assert b.execute("select 1").fetchone()[0] == 1
        b.execute("rollback")


@pytest.mark.parametrize("where", ["user", "database"])
def test_query_wait_timeout_per_user_and_database(tidepool, pg, role, where):
    other = pg.create_role()
    dbs = {"appdb": "host=127.0.0.1 port=%d dbname=appdb pool_size=1" % pg.port,
           "other": "host=127.0.0.1 port=%d dbname=appdb pool_size=1" % pg.port}
    if where == "user":
        users = {role: "query_wait_timeout=1"}
    else:
        users = {}
        dbs["appdb"] += " query_wait_timeout=1"
    tp = tidepool(pool_mode="transaction", databases=dbs, users=users, query_wait_timeout=30)
    holder = tp.connect(user=role)
    holder.execute("begin")
    waiter = tp.connect(user=role)
    assert isinstance(fails(waiter.execute, "select 1"), psycopg.Error)
    # another pool whose user or database has no such key waits longer
    hold2 = tp.connect(dbname="other" if where == "database" else "appdb", user=other)
    hold2.execute("begin")
    wait2 = tp.connect(dbname="other" if where == "database" else "appdb", user=other)
    bg = Background(wait2.execute, "select 1")
    time.sleep(3)
    hold2.execute("commit")
    assert bg.exception(10) is None
    holder.execute("commit")


# ------------------------------------------------- client connection limits

def refused_53300(tp, dbname, user):
    """A raw login to dbname as user is refused for a client connection limit."""
    with tp.raw() as r:
        r.send_quietly(pgraw.startup_message(user=user, database=dbname))
        while True:
            t, body = r.read_message()
            if t == "Z":
                return False
            if t == "E":
                err = pgraw.parse_error(body)
                return err["C"] == "53300" and "client connections exceeded" in err["M"]


@pytest.mark.parametrize("where", ["global", "user"])
def test_max_user_client_connections(tidepool, pg, role, where):
    other = pg.create_role()
    if where == "global":
        tp = tidepool(max_user_client_connections=2)
    else:
        tp = tidepool(users={role: "max_user_client_connections=2"})
    conns = [tp.connect(user=role), tp.connect(dbname="postgres", user=role)]
    assert refused_53300(tp, "appdb", role)
    if where == "user":
        extra = [tp.connect(user=other) for _ in range(3)]
        assert extra[2].execute("select 1").fetchone()[0] == 1
    conns.pop().close()
    wait_until(lambda: not refused_53300(tp, "appdb", role), 10)


@pytest.mark.parametrize("where", ["global", "database"])
def test_max_db_client_connections(tidepool, pg, role, where):
    dbs = {"appdb": "host=127.0.0.1 port=%d dbname=appdb" % pg.port,
           "postgres": "host=127.0.0.1 port=%d dbname=postgres" % pg.port}
    if where == "global":
        tp = tidepool(databases=dbs, max_db_client_connections=2)
    else:
        dbs["appdb"] += " max_db_client_connections=2"
        tp = tidepool(databases=dbs)
    other = pg.create_role()
    conns = [tp.connect(user=role), tp.connect(user=other)]
    assert refused_53300(tp, "appdb", role)
    if where == "database":
        extra = [tp.connect(dbname="postgres", user=role) for _ in range(3)]
        assert extra[2].execute("select 1").fetchone()[0] == 1
    conns.pop().close()
    wait_until(lambda: not refused_53300(tp, "appdb", role), 10)


# ----------------------------------------------------------- client-facing

def test_application_name_add_host(tidepool, pg, role):
    tp = tidepool(pool_mode="session", application_name_add_host=1)
    with tp.connect(user=role, application_name="billing") as c:
        name = c.execute("show application_name").fetchone()[0]
        assert re.fullmatch(r"billing - 127\.0\.0\.1:\d+", name), name
    tp2 = tidepool(pool_mode="session")
    with tp2.connect(user=role, application_name="billing") as c:
        assert c.execute("show application_name").fetchone()[0] == "billing"


def test_disable_pqexec(tidepool, role):
    tp = tidepool(pool_mode="transaction", disable_pqexec=1)
    with tp.connect(user=role) as c:
        # psycopg sends a query with parameters by the extended protocol
        assert c.execute("select %s::int", (7,)).fetchone()[0] == 7
    with tp.raw() as r:
        r.startup(user=role, database="appdb")
        r.send(pgraw.query_message("select 1"))
        err = r.error_or_close()
        assert err is not None and "PQexec" in err["M"], err


def test_login_notify_message(tidepool, role):
    tp = tidepool(login_notify_message="you are talking to tidepool")
    seen = []
    c = tp.connect(user=role)
    c.add_notice_handler(lambda d: seen.append(d.message_primary))
    c.execute("select 1")
    c.close()
    with tp.raw() as r:
        r.send(pgraw.startup_message(user=role, database="appdb"))
        notices = []
        while True:
            t, body = r.read_message()
            if t == "N":
                notices.append(pgraw.parse_error(body)["M"])
            if t in ("Z", "E"):
                break
        assert notices == ["you are talking to tidepool"], notices


def test_query_wait_notify(tidepool, role):
    tp = tidepool(pool_mode="transaction", default_pool_size=1, query_wait_notify=1)
    holder = tp.connect(user=role)
    holder.execute("begin")
    waiter = tp.connect(user=role)
    seen = []
    waiter.add_notice_handler(lambda d: seen.append(d.message_primary))
    bg = Background(waiter.execute, "select 1")
    time.sleep(3)
    holder.execute("commit")
    assert bg.exception(10) is None
    assert any("client being queued" in m for m in seen), seen
    # a client served at once is not told anything
    seen.clear()
    waiter.execute("select 1")
    assert seen == []


def test_query_wait_notify_once_each_in_a_long_queue(tidepool, role):
    """Each queued client is told exactly once: the janitor resumes after
    the last client it told (issue 23: no walk over every waiting client
    per tick), and when that client leaves the queue (here: it gets the
    server) the mark moves back to the client before it, so a later queue
    is still told."""
    tp = tidepool(pool_mode="transaction", default_pool_size=1, query_wait_notify=1)
    holder = tp.connect(user=role)
    told = []

    def queue_one():
        w = tp.connect(user=role)
        mine = []
        w.add_notice_handler(lambda d: mine.append(d.message_primary))
        told.append(mine)
        return w, Background(w.execute, "select 1")

    waiters = []
    for _ in range(2):   # twice: the second queue comes after the first one's mark left
        holder.execute("begin")
        holder.execute("select 1")
        batch = [queue_one() for _ in range(3)]
        time.sleep(2.5)
        holder.execute("commit")
        for _, job in batch:
            assert job.exception(10) is None
        waiters += [w for w, _ in batch]
    counts = [sum("client being queued" in m for m in mine) for mine in told]
    assert counts == [1] * 6, counts
    for c in [holder] + waiters:
        c.close()


def test_log_stats(tidepool, role):
    on = tidepool(stats_period=1)
    off = tidepool(stats_period=1, log_stats=0)
    for tp in (on, off):
        with tp.connect(user=role) as c:
            c.execute("select 1")
    wait_until(lambda: "stats: " in on.log(), 10)
    time.sleep(2)
    assert "stats: " not in off.log()


def test_server_round_robin(tidepool, pg, role):
    def pids(tp):
        with tp.connect(user=role) as a, tp.connect(user=role) as b:
            a.execute("begin")
            b.execute("begin")   # two servers open
            a.execute("commit")
            b.execute("commit")
            return [a.execute("select pg_backend_pid()").fetchone()[0] for _ in range(4)]
    lifo = pids(tidepool(pool_mode="transaction"))
    rr = pids(tidepool(pool_mode="transaction", server_round_robin=1))
    assert len(set(lifo)) == 1, lifo
    assert len(set(rr)) == 2 and rr[0] != rr[1], rr


# -------------------------------------------------------------- sockets

def test_so_reuseport(tidepool):
    a = tidepool(so_reuseport=1)
    b = tidepool(start=False, so_reuseport=1)
    b.write_config(listen_port=a.port)
    b.port = a.port
    b.start()
    assert b.alive()
    c = tidepool(start=False)
    c.write_config(listen_port=a.port, unix_socket_dir="")
    p = subprocess.run([tidepool_bin(), c.config_path], capture_output=True, text=True, timeout=20)
    assert p.returncode != 0


def test_unix_socket_group(tidepool):
    group = grp.getgrgid(os.getgroups()[-1] if os.getgroups() else os.getgid()).gr_name
    tp = tidepool(unix_socket_group=group)
    st = os.stat(os.path.join(tp.sockdir, ".s.PGSQL.%d" % tp.port))
    assert st.st_gid == grp.getgrnam(group).gr_gid
    bad = tidepool(start=False, unix_socket_group="no-such-group-tidepool")
    p = subprocess.run([tidepool_bin(), bad.config_path], capture_output=True, text=True, timeout=20)
    assert p.returncode != 0 and "no-such-group-tidepool" in p.stdout + p.stderr


def test_tcp_defer_accept(tidepool):
    """With TCP_DEFER_ACCEPT a connection that sends nothing is not handed to
    tidepool, so it never appears as a client logging in."""
    def accepted_silent(tp):
        time.sleep(1)   # the fixture's probe connection is logged first
        before = tp.log().count("accepted connection")
        s = socket.create_connection((tp.host, tp.port))
        time.sleep(1.5)
        n = tp.log().count("accepted connection") - before
        s.close()
        return n
    assert accepted_silent(tidepool(tcp_defer_accept=0)) >= 1
    assert accepted_silent(tidepool(tcp_defer_accept=1)) == 0


def test_tcp_socket_buffer(tidepool, pg, role):
    tp = tidepool(tcp_socket_buffer=32768)
    with tp.connect(user=role) as c:
        c.execute("select 1")
        out = subprocess.run(["ss", "-tmn", "dst", "127.0.0.1:%d" % pg.port],
                             capture_output=True, text=True).stdout
    # the kernel doubles the value it is given
    assert re.search(r"rb65536\b", out) and re.search(r"tb65536\b", out), out


def test_scram_iterations(tidepool, role):
    tp = tidepool(auth_type="scram-sha-256", auth_file={role: "pw"}, scram_iterations=5000)
    with tp.raw() as r:
        r.send(pgraw.startup_message(user=role, database="appdb"))
        t, body = r.read_message()
        assert t == "R"
        first = b"n,,n=,r=abcdefghijklmnopqrstuvwx"
        mech = b"SCRAM-SHA-256\0"
        r.send(pgraw.message(b"p", mech + len(first).to_bytes(4, "big") + first))
        t, body = r.read_message()
        assert t == "R" and b"i=5000" in body, body
    with tp.connect(user=role, password="pw") as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_user_switches_account(tidepool, pg):
    if os.getuid() != 0:
        pytest.skip("needs root to change user")
    tp = tidepool(user="postgres")
    want = __import__("pwd").getpwnam("postgres").pw_uid

    def uid():   # the listener opens just before the switch
        return int([l for l in open("/proc/%d/status" % tp.pid) if l.startswith("Uid:")][0].split()[1])
    wait_until(lambda: uid() == want, 10)
    with tp.connect(user="app") as c:
        assert c.execute("select 1").fetchone()[0] == 1


# --------------------------------------------------------------- refusals

REFUSED = {
    "auth_ldap_options": "host=ldap",
    "autodb_idle_timeout": "60",
    "pool_idle_timeout": "60",
}


@pytest.mark.parametrize("key", sorted(REFUSED))
def test_key_tidepool_cannot_honour_is_refused(tidepool, key):
    tp = tidepool(start=False, **{key: REFUSED[key]})
    lines = open(tp.config_path).read().splitlines()
    line = 1 + next(i for i, l in enumerate(lines) if l.startswith(key + " ="))
    rc, out = run_check(tp.config_path)
    assert rc != 0 and "%s:%d:" % (tp.config_path, line) in out and "not supported" in out, out
    p = subprocess.run([tidepool_bin(), tp.config_path], capture_output=True, text=True, timeout=20)
    assert p.returncode != 0


@pytest.mark.parametrize("method", ["pam", "ldap"])
def test_auth_type_without_the_library_is_refused(tidepool, method):
    tp = tidepool(start=False, auth_type=method)
    rc, out = run_check(tp.config_path)
    assert rc != 0 and re.search(r"tidepool\.ini:\d+: auth_type = %s is not supported" % method, out), out


# ------------------------------------------------------ limits interacting

@pytest.mark.parametrize("limit", ["max_db_connections", "max_user_connections"])
def test_idle_server_of_another_pool_is_closed_for_a_waiting_client(tidepool, pg, role, limit):
    """With the database's (or user's) server limit reached by an idle server
    in another pool, that server is closed for the waiting client instead of
    the client waiting for server_idle_timeout."""
    other = pg.create_role()
    tp = tidepool(pool_mode="session", query_wait_timeout=10, **{limit: 1})
    if limit == "max_db_connections":
        first, second = dict(user=role), dict(user=other)      # same database
    else:
        first, second = dict(user=role), dict(user=role, dbname="postgres")   # same user
    with tp.connect(**first) as a:
        a.execute("select 1")
    wait_until(lambda: len(pg.backends(dbname="appdb", user=role)) == 1, 10)
    with tp.connect(**second) as b:
        assert b.execute("select 1").fetchone()[0] == 1
    assert "evicted for another pool: %s reached" % limit in tp.log()
    # the limit held throughout: never two servers of the database or user
    assert len(pg.backends(dbname="appdb", user=role)) == 0


# ------------------------------------------------------ startup options

@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_options_settings_are_the_clients_own(tidepool, pg, role, mode):
    """libpq's options=-c name=value: applied on every server the client
    gets, and never left behind for another client."""
    tp = tidepool(pool_mode=mode, default_pool_size=1)
    opts = r"-c statement_timeout=4321 -c lock_timeout=1234 --search-path=myschema,public -capplication_name=my\ app"
    with tp.connect(user=role, options=opts) as a:
        for _ in range(3):
            row = a.execute("select current_setting('statement_timeout'), "
                            "current_setting('lock_timeout'), current_setting('search_path'), "
                            "current_setting('application_name')").fetchone()
            assert row == ("4321ms", "1234ms", "myschema,public", "my app"), row
        # a statement longer than the client's statement_timeout is canceled
        if mode == "transaction":
            with pytest.raises(psycopg.errors.QueryCanceled):
                a.execute("select pg_sleep(5)")
    with tp.connect(user=role) as b:
        row = b.execute("select current_setting('statement_timeout'), "
                        "current_setting('lock_timeout')").fetchone()
        assert row == ("0", "0"), row
    with tp.connect(user=role, options="-c TimeZone=Asia/Tokyo") as c:
        assert c.execute("show timezone").fetchone()[0] == "Asia/Tokyo"


def test_options_other_than_settings_are_refused(tidepool, role):
    tp = tidepool(ignore_startup_parameters="extra_float_digits")
    only = "only '-c config=val' and '--config=val' are allowed"
    with pytest.raises(psycopg.OperationalError, match=only):
        tp.connect(user=role, options="-d 5")
    with pytest.raises(psycopg.OperationalError, match=only):
        tp.connect(user=role, options="-c timezone")
    # a setting named in ignore_startup_parameters is dropped, as in PgBouncer
    with tp.connect(user=role, options="-c extra_float_digits=2") as c:
        assert c.execute("show extra_float_digits").fetchone()[0] == "1"
    with tp.connect(user=role, options=r"-c t\imezone=\E\u\r\o\pe/Lisbon  -c    dat\estyle\=\Ge\rman,\ YMD") as c:
        assert c.execute("show timezone").fetchone()[0] == "Europe/Lisbon"
        assert c.execute("show datestyle").fetchone()[0] == "German, YMD"
    with pytest.raises(psycopg.OperationalError, match="not a setting name"):
        tp.connect(user=role, options="-c bad;name=1")


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_startup_parameters_are_settings(tidepool, role, mode):
    """A setting sent as a startup parameter of its own, as PostgreSQL takes
    it (node-postgres sends statement_timeout and
    idle_in_transaction_session_timeout this way): the client's own, as with
    options=-c, and never left behind for another client."""
    tp = tidepool(pool_mode=mode, default_pool_size=1)
    q = ("select current_setting('statement_timeout'), "
         "current_setting('idle_in_transaction_session_timeout')")
    with tp.raw() as r:
        r.startup(user=role, statement_timeout="4321", idle_in_transaction_session_timeout="2500")
        for _ in range(2):
            rows, err, _ = r.query(q)
            assert err is None and rows == [["4321ms", "2500ms"]], (rows, err)
    with tp.raw() as r:
        r.startup(user=role)
        rows, err, _ = r.query(q)
        assert err is None and rows == [["0", "0"]], (rows, err)


def test_startup_parameter_that_is_no_setting(tidepool, role):
    tp = tidepool()
    with tp.raw() as r:
        r.send(pgraw.startup_message(user=role, **{"bad-name": "1"}))
        err = r.error_or_close()
        assert err and err["C"] == "08P01" and "unsupported startup parameter: bad-name" in err["M"], err
    # a well-formed name PostgreSQL does not know fails when it is applied
    with tp.raw() as r:
        r.startup(user=role, tidepool_bogus_parameter="1")
        r.send(pgraw.query_message("select 1"))
        assert r.error_or_close() is not None


def test_unauthenticated_client_tracks_no_setting_name(tidepool):
    """Setting names are added to the tracked ones (a table of 16) only once
    the client is authenticated: a client that never logs in cannot fill
    it for everybody else."""
    tp = tidepool(auth_type="md5", auth_file={"md5_user": "md5_pw"})
    for i in range(4):
        with tp.raw() as r:
            opts = " ".join("-c junk_%d_%d=1" % (i, j) for j in range(8))
            r.send(pgraw.startup_message(user="md5_user", options=opts))
            typ, _ = r.read_message()
            assert typ == "R"   # asked for a password; goes away without one
    with tp.raw() as r:
        r.startup(user="md5_user", password="md5_pw", statement_timeout="1234")
        rows, err, _ = r.query("show statement_timeout")
        assert err is None and rows == [["1234ms"]], (rows, err)


# ------------------------------------------------------ reloads that never lie

def config_value(adm, key):
    return {r[0]: r[1] for r in adm.execute("SHOW CONFIG").fetchall()}[key]


def metric(tp, name):
    import urllib.request
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % tp.main["metrics_port"],
                                  timeout=10).read().decode()
    return float(re.search(r"^%s (\S+)$" % name, body, re.M).group(1))


def test_reload_that_cannot_apply_everything_applies_nothing(tidepool, tmp_path):
    from conftest import free_port
    tp = tidepool(admin_users="postgres", default_pool_size=20, metrics_port=free_port())
    # a good change and a TLS key that does not load, in one reload
    tp.write_config(default_pool_size=7, client_tls_sslmode="require",
                    client_tls_key_file=str(tmp_path / "missing.key"),
                    client_tls_cert_file=str(tmp_path / "missing.crt"))
    with tp.connect(dbname="pgbouncer", user="postgres") as adm:
        with pytest.raises(psycopg.Error, match="TLS") as e:
            adm.execute("RELOAD")
        assert "missing" in str(e.value)
    with tp.connect(dbname="pgbouncer", user="postgres") as adm:
        assert config_value(adm, "default_pool_size") == "20"
        assert config_value(adm, "client_tls_sslmode") == "disable"
    assert "reload failed, nothing applied" in tp.log()
    assert metric(tp, "tidepool_config_last_reload_successful") == 0
    # clients are still served in the clear
    with tp.connect(sslmode="disable") as c:
        assert c.execute("select 1").fetchone()[0] == 1
    tp.write_config(default_pool_size=7, client_tls_sslmode=None, client_tls_key_file=None,
                    client_tls_cert_file=None)
    with tp.connect(dbname="pgbouncer", user="postgres") as adm:
        adm.execute("RELOAD")
        assert config_value(adm, "default_pool_size") == "7"
    assert metric(tp, "tidepool_config_last_reload_successful") == 1


def test_database_target_change_closes_servers_at_release(tidepool, pg, role):
    tp = tidepool(pool_mode="transaction", default_pool_size=2)
    a = tp.connect(user=role)
    a.execute("begin")
    assert a.execute("select current_database()").fetchone()[0] == "appdb"
    tp.write_config(databases={"appdb": "host=127.0.0.1 port=%d dbname=postgres" % pg.port,
                               "postgres": "host=127.0.0.1 port=%d dbname=postgres" % pg.port})
    tp.reload()
    # the open transaction goes on on its server ...
    assert a.execute("select current_database()").fetchone()[0] == "appdb"
    a.execute("commit")
    # ... which closes at release; the next transactions run on the new target
    for _ in range(3):
        assert a.execute("select current_database()").fetchone()[0] == "postgres"
    wait_until(lambda: len(pg.backends(dbname="appdb", user=role)) == 0, 10)


def test_restart_only_key_is_pending_not_in_force(tidepool):
    tp = tidepool(admin_users="postgres")
    old_port = tp.port
    tp.write_config(listen_backlog=99)
    tp.reload()
    wait_until(lambda: "listen_backlog = \"99\" is pending" in tp.log(), 5)
    with tp.connect(dbname="pgbouncer", user="postgres") as adm:
        notices = []
        adm.add_notice_handler(lambda d: notices.append(d.message_primary))
        assert config_value(adm, "listen_backlog") == "128"
        assert any("listen_backlog = \"99\" is pending" in n for n in notices), notices
    assert tp.port == old_port


# ------------------------------------------------------ command line

def test_quiet_means_nothing_on_stderr(tidepool, role, tmp_path):
    tp = tidepool(args=("-q",))
    with tp.connect(user=role) as c:
        c.execute("select 1")
    assert tp.log().strip() == "", tp.log()
    logfile = tmp_path / "quiet.log"
    tp2 = tidepool(args=("-q",), logfile=str(logfile))
    with tp2.connect(user=role) as c:
        c.execute("select 1")
    wait_until(lambda: "login attempt" in logfile.read_text(), 5)


@pytest.mark.parametrize("flag", ["-R", "--reboot"])
def test_pgbouncer_flags_tidepool_lacks_are_refused_clearly(tidepool, flag):
    tp = tidepool(start=False)
    p = subprocess.run([tidepool_bin(), flag, tp.config_path], capture_output=True, text=True, timeout=20)
    assert p.returncode != 0 and "PgBouncer option tidepool does not have" in p.stderr, p.stderr


# ------------------------------------------------------ hba map= and auth_ident_file

def test_hba_map_with_auth_ident_file(tidepool, pg, tmp_path):
    """peer over the unix socket maps the OS user through auth_ident_file, as
    PgBouncer's hba does (CloudNativePG's console line is "local pgbouncer
    pgbouncer peer")."""
    import pwd as _pwd
    me = _pwd.getpwuid(os.geteuid()).pw_name
    hba = tmp_path / "hba.conf"
    hba.write_text("local all all peer map=ops\nhost all all 127.0.0.1/32 reject\n")
    ident = tmp_path / "ident.map"
    ident.write_text("# MAP SYSTEM-USER DATABASE-USER\nops %s app\nops %s postgres\n" % (me, me))
    tp = tidepool(auth_type="hba", auth_hba_file=str(hba), auth_ident_file=str(ident),
                  admin_users="postgres")
    with tp.connect(host=tp.sockdir, user="app") as c:
        assert c.execute("select current_user").fetchone()[0] == "app"
    with tp.connect(host=tp.sockdir, user="postgres", dbname="pgbouncer") as adm:
        adm.execute("SHOW VERSION")
    with pytest.raises(psycopg.OperationalError, match="Peer authentication failed"):
        tp.connect(host=tp.sockdir, user="md5_user")
    # a map that the ident file lacks, or map= without an ident file: refused with file:line
    hba.write_text("local all all peer map=nosuch\n")
    rc, out = run_check(tp.config_path)
    assert rc != 0 and "%s:1:" % hba in out and "nosuch" in out, out
    tp2 = tidepool(start=False, auth_type="hba", auth_hba_file=str(hba))
    rc, out = run_check(tp2.config_path)
    assert rc != 0 and "auth_ident_file" in out, out


def test_console_logins_count_for_client_limits(tidepool, pg, role):
    """As in PgBouncer: a stats user's console connections count for its
    max_user_client_connections and for the database "pgbouncer"; admin
    users are not limited on the console; SHOW USERS/DATABASES say so."""
    tp = tidepool(admin_users="postgres", stats_users=role, max_user_client_connections=2,
                  max_db_client_connections=3)
    first = tp.connect(dbname="pgbouncer", user=role)
    app = tp.connect(user=role)
    with tp.connect(dbname="pgbouncer", user="postgres") as adm:
        users = {r[0]: r for r in adm.execute("SHOW USERS").fetchall()}
        cols = [d.name for d in adm.execute("SHOW USERS").description]
        row = dict(zip(cols, users[role]))
        assert row["max_user_client_connections"] == 2 and row["current_client_connections"] == 2, row
        dbs = adm.execute("SHOW DATABASES")
        cols = [d.name for d in dbs.description]
        console = [dict(zip(cols, r)) for r in dbs.fetchall() if r[0] == "pgbouncer"][0]
        assert console["max_client_connections"] == 3, console
    assert refused_53300(tp, "pgbouncer", role)
    admins = [tp.connect(dbname="pgbouncer", user="postgres") for _ in range(4)]
    first.close()
    app.close()
    for a in admins:
        a.close()


def test_shutdown_wait_for_clients_keeps_the_console_on_the_unix_socket(tidepool, role):
    """PgBouncer 1.25: while SHUTDOWN WAIT_FOR_CLIENTS waits, TCP is closed,
    the unix socket still takes console logins (and refuses the others), and
    it closes when the last client leaves."""
    tp = tidepool(admin_users="postgres")
    c = tp.connect(user=role)
    c.execute("select 1")
    with tp.connect(dbname="pgbouncer", user="postgres") as adm:
        adm.execute("SHUTDOWN WAIT_FOR_CLIENTS")
    time.sleep(1)
    with pytest.raises(psycopg.OperationalError):
        tp.connect(user=role, host="127.0.0.1")
    with pytest.raises(psycopg.OperationalError, match="shutting down"):
        tp.connect(user=role, host=tp.sockdir)
    with tp.connect(dbname="pgbouncer", user="postgres", host=tp.sockdir) as adm:
        assert adm.execute("SHOW VERSION").fetchone()[0].startswith("tidepool")
    assert c.execute("select 2").fetchone()[0] == 2   # the client is not closed
    c.close()
    assert wait_until(lambda: not tp.alive(), 10)
