"""Issue 4: auth_user + auth_query. Users whose secret lives only in
PostgreSQL log in through tidepool; the lookup runs as auth_user with the
user name bound as $1. The lookup function follows the setup doc/auth.md
recommends: a SECURITY DEFINER function in the `postgres` database that
scram_user (a non-superuser that PostgreSQL makes log in with SCRAM) may
call. It also counts its calls, and waits on advisory lock 4242 (shared), so
a test can hold a lookup in flight."""

import os
import signal
import threading

import psycopg
import pytest

import pgraw
from conftest import Background, wait_until

LOOKUP = "SELECT uname, secret FROM tidepool_auth.lookup($1)"
LOCK = 4242


@pytest.fixture(scope="module")
def lookup_fn(pg):
    pg.sql("CREATE SCHEMA IF NOT EXISTS tidepool_auth")
    pg.sql("CREATE TABLE IF NOT EXISTS tidepool_auth.calls (usename text)")
    pg.sql("""
        CREATE OR REPLACE FUNCTION tidepool_auth.lookup(i_user text, OUT uname text, OUT secret text)
        RETURNS record LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock_shared(4242);
            INSERT INTO tidepool_auth.calls VALUES (i_user);
            SELECT rolname::text, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END
              INTO uname, secret FROM pg_authid WHERE rolname = i_user AND rolcanlogin;
        END $$""")
    pg.sql("REVOKE ALL ON FUNCTION tidepool_auth.lookup(text) FROM PUBLIC")
    pg.sql("GRANT USAGE ON SCHEMA tidepool_auth TO scram_user")
    pg.sql("GRANT EXECUTE ON FUNCTION tidepool_auth.lookup(text) TO scram_user")
    return LOOKUP


def calls(pg, user):
    return pg.sql("SELECT count(*) FROM tidepool_auth.calls WHERE usename = %s", (user,))[0][0]


def pw_role(pg, prefix="aq", password="role_pw"):
    name = pg.create_role(prefix)
    pg.sql("SET password_encryption = 'scram-sha-256'; ALTER ROLE %s PASSWORD '%s'" % (name, password))
    return name


def authq_tidepool(tidepool, lookup_fn, auth_type="scram-sha-256", **kw):
    """auth_user scram_user (plain password in auth_file; PostgreSQL wants
    SCRAM from it), lookups in the postgres database."""
    kw.setdefault("auth_file", {"scram_user": "scram_pw"})
    return tidepool(auth_type=auth_type, auth_user="scram_user", auth_dbname="postgres",
                    auth_query=lookup_fn, **kw)


def login_error(tp, user, password, dbname="appdb"):
    with pytest.raises(psycopg.OperationalError) as ei:
        tp.connect(dbname=dbname, user=user, password=password)
    return str(ei.value)


@pytest.mark.parametrize("auth_type", ["scram-sha-256", "md5"])
def test_user_only_in_postgres(tidepool, pg, lookup_fn, auth_type):
    user = pw_role(pg)
    tp = authq_tidepool(tidepool, lookup_fn, auth_type=auth_type)
    with tp.connect(user=user, password="role_pw") as c:
        assert c.execute("select current_user").fetchone()[0] == user
    r = tp.psql("select current_user", user=user, password="role_pw")
    assert r.returncode == 0 and r.stdout.strip() == user, r.stderr
    # a wrong password and an unknown user get the same answer
    wrong = login_error(tp, user, "not_it")
    assert 'password authentication failed for user "%s"' % user in wrong
    ghost = "ghost_%d_%s" % (os.getpid(), auth_type.replace("-", "_"))
    unknown = login_error(tp, ghost, "role_pw")
    assert unknown.replace(ghost, user) == wrong
    assert calls(pg, ghost) == 1
    assert tp.alive()


def test_sqlstate_28P01_for_unknown_user_with_cleartext(tidepool, pg, lookup_fn):
    user = pw_role(pg)
    tp = authq_tidepool(tidepool, lookup_fn, auth_type="plain")
    for name, pw in ((user, "wrong"), ("ghost_%d" % os.getpid(), "role_pw")):
        with tp.raw() as c:
            c.send(pgraw.startup_message(user=name, database="appdb"))
            with pytest.raises(pgraw.PgError) as ei:
                c.finish_startup(user=name, password=pw)
            assert ei.value.fields["C"] == "28P01", ei.value.fields
            assert ei.value.fields["M"] == 'password authentication failed for user "%s"' % name
    with tp.raw() as c:
        c.startup(user=user, password="role_pw")
        assert c.query("select current_user")[0] == [[user]]


def test_password_change_takes_effect_at_next_login(tidepool, pg, lookup_fn):
    user = pw_role(pg, password="first_pw")
    tp = authq_tidepool(tidepool, lookup_fn)
    with tp.connect(user=user, password="first_pw") as c:
        assert c.execute("select 1").fetchone()[0] == 1
    pg.sql("ALTER ROLE %s PASSWORD 'second_pw'" % user)
    assert "password authentication failed" in login_error(tp, user, "first_pw")
    with tp.connect(user=user, password="second_pw") as c:
        assert c.execute("select 1").fetchone()[0] == 1
    # NOLOGIN and an expired password make the default-style query return NULL
    pg.sql("ALTER ROLE %s VALID UNTIL '2000-01-01'" % user)
    assert "password authentication failed" in login_error(tp, user, "second_pw")


def test_default_query_md5_secret_used_for_server_login(tidepool, pg):
    # the default auth_query reads pg_authid, so auth_user is the superuser
    # here; md5_user's secret is its md5 hash, and PostgreSQL asks md5_user
    # for md5: the looked-up hash answers it
    tp = tidepool(auth_type="md5", auth_file={}, auth_user="postgres", pool_mode="transaction")
    for _ in range(2):
        with tp.connect(user="md5_user", password="md5_pw") as c:
            assert c.execute("select current_user").fetchone()[0] == "md5_user"
    assert "password authentication failed" in login_error(tp, "md5_user", "x")


def test_scram_pass_through_with_looked_up_secret(tidepool, pg, lookup_fn):
    # authq_scram must log in to PostgreSQL with SCRAM and no password is
    # configured anywhere: the keys of the client's proof do it
    tp = authq_tidepool(tidepool, lookup_fn, pool_mode="transaction")
    for _ in range(3):
        with tp.connect(user="authq_scram", password="authq_pw") as c:
            assert c.execute("select current_user").fetchone()[0] == "authq_scram"
            assert c.execute("select count(*) from pg_stat_activity").fetchone()[0] > 0


def test_user_name_with_quotes_and_semicolon(tidepool, pg, lookup_fn):
    pg.sql("CREATE TABLE IF NOT EXISTS tidepool_auth.t (x int)")
    user = "x'; DROP TABLE tidepool_auth.t; --"
    quoted = '"%s"' % user.replace('"', '""')
    pg.sql("DROP ROLE IF EXISTS %s" % quoted)
    pg.sql("SET password_encryption = 'scram-sha-256'; CREATE ROLE %s LOGIN PASSWORD 'inj_pw'" % quoted)
    try:
        tp = authq_tidepool(tidepool, lookup_fn)
        with psycopg.connect(host=tp.host, port=tp.port, dbname="appdb", user=user,
                             password="inj_pw", connect_timeout=10, autocommit=True) as c:
            assert c.execute("select current_user").fetchone()[0] == user
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(host=tp.host, port=tp.port, dbname="appdb", user=user,
                            password="nope", connect_timeout=10)
        assert calls(pg, user) == 2
        assert pg.sql("SELECT to_regclass('tidepool_auth.t') IS NOT NULL")[0][0]
        # the same through the default query (run as the superuser)
        tp2 = tidepool(auth_type="scram-sha-256", auth_file={}, auth_user="postgres")
        with psycopg.connect(host=tp2.host, port=tp2.port, dbname="appdb", user=user,
                             password="inj_pw", connect_timeout=10, autocommit=True) as c:
            assert c.execute("select current_user").fetchone()[0] == user
        assert pg.sql("SELECT to_regclass('tidepool_auth.t') IS NOT NULL")[0][0]
    finally:
        pg.sql("DROP ROLE IF EXISTS %s" % quoted)


def test_search_path_of_the_lookup_is_fixed(tidepool, pg):
    # an auth_query that relies on search_path finds only pg_catalog: a
    # look-alike "pg_authid" planted in public is never used
    pg.sql("CREATE TABLE IF NOT EXISTS public.evil_authid (rolname name, rolpassword text)")
    user = pw_role(pg)
    tp = tidepool(auth_type="scram-sha-256", auth_file={}, auth_user="postgres",
                  auth_query="SELECT rolname, rolpassword FROM evil_authid WHERE rolname = $1")
    err = login_error(tp, user, "role_pw")
    assert 'relation "evil_authid" does not exist' in err, err
    assert tp.alive()


def test_lookup_failures_are_reported(tidepool, pg, lookup_fn):
    user = pw_role(pg)
    tp = tidepool(auth_type="scram-sha-256", auth_file={}, auth_user="postgres",
                  auth_query="SELECT rolname, rolpassword FROM no_such_table WHERE rolname = $1")
    with tp.raw() as c:
        c.send(pgraw.startup_message(user=user, database="appdb"))
        err = c.expect_error()
    assert err["C"] == "42P01", err
    assert err["M"].startswith("auth_query failed: "), err
    assert "auth_query" in tp.log() and "no_such_table" in tp.log()

    # one column only
    tp.write_config(auth_query="SELECT rolname FROM pg_authid WHERE rolname = $1")
    tp.reload()
    assert "two columns" in login_error(tp, user, "role_pw")

    # the auth server is down
    down = {"appdb": "host=127.0.0.1 port=%d dbname=appdb" % pg.port,
            "authdb": "host=127.0.0.1 port=1 dbname=postgres"}
    tp.write_config(auth_query=None, auth_dbname="authdb", databases=down)
    tp.reload()
    with tp.raw() as c:
        c.send(pgraw.startup_message(user=user, database="appdb"))
        err = c.expect_error()
    assert err["C"] == "08006" and "auth_query" in err["M"], err
    assert tp.alive()
    # users in auth_file do not need the lookup
    tp.write_config(auth_file={user: "role_pw"})
    tp.reload()
    with tp.connect(user=user, password="role_pw") as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_per_database_auth_user(tidepool, pg, lookup_fn):
    user = pw_role(pg)
    databases = {
        "appdb": "host=127.0.0.1 port=%d dbname=appdb auth_user=scram_user auth_dbname=postgres "
                 "auth_query='%s'" % (pg.port, lookup_fn),
        "other": "host=127.0.0.1 port=%d dbname=appdb" % pg.port,
        "postgres": "host=127.0.0.1 port=%d dbname=postgres" % pg.port,
    }
    tp = tidepool(auth_type="scram-sha-256", auth_file={"scram_user": "scram_pw"}, databases=databases)
    with tp.connect(dbname="appdb", user=user, password="role_pw") as c:
        assert c.execute("select current_user").fetchone()[0] == user
    # no auth_user for "other": the user is unknown there
    assert "password authentication failed" in login_error(tp, user, "role_pw", dbname="other")


def test_concurrent_logins_share_one_lookup(tidepool, pg, lookup_fn):
    user = pw_role(pg)
    tp = authq_tidepool(tidepool, lookup_fn, max_client_conn=200)
    n = 20
    blocker = pg.connect()
    blocker.execute("SELECT pg_advisory_lock(%s)", (LOCK,))
    try:
        logins = [Background(lambda: tp.connect(user=user, password="role_pw")) for _ in range(n)]
        marker = 'auth_query for user "%s"' % user
        assert wait_until(lambda: tp.log().count(marker) == n, 30), tp.log().count(marker)
    finally:
        blocker.execute("SELECT pg_advisory_unlock(%s)", (LOCK,))
        blocker.close()
    conns = [b.result(30) for b in logins]
    for c in conns:
        assert c.execute("select current_user").fetchone()[0] == user
        c.close()
    assert calls(pg, user) == 1
    assert tp.log().count('auth_query for user "%s": new lookup' % user) == 1


def test_client_leaving_during_lookup(tidepool, pg, lookup_fn):
    user = pw_role(pg)
    tp = authq_tidepool(tidepool, lookup_fn)
    blocker = pg.connect()
    blocker.execute("SELECT pg_advisory_lock(%s)", (LOCK,))
    try:
        with tp.raw() as c:
            c.send(pgraw.startup_message(user=user, database="appdb"))
            assert wait_until(lambda: 'auth_query for user "%s"' % user in tp.log(), 10)
        # the client is gone; the lookup still holds a server
    finally:
        blocker.execute("SELECT pg_advisory_unlock(%s)", (LOCK,))
        blocker.close()
    with tp.connect(user=user, password="role_pw") as c:
        assert c.execute("select 1").fetchone()[0] == 1
    assert tp.alive()


@pytest.mark.hard_timeout(240)
def test_200_scram_logins_at_once_while_queries_run(tidepool, pg, lookup_fn, raise_nofile):
    tp = authq_tidepool(tidepool, lookup_fn, pool_mode="transaction", max_client_conn=400,
                        default_pool_size=10)
    stop = threading.Event()
    ran = [0]

    def busy():
        with tp.connect(user="authq_scram", password="authq_pw") as c:
            while not stop.is_set():
                assert c.execute("select count(*) from pg_class").fetchone()[0] > 0
                ran[0] += 1

    workers = [Background(busy) for _ in range(4)]
    start = threading.Barrier(200)

    def login():
        start.wait(60)
        with tp.connect(user="authq_scram", password="authq_pw") as c:
            return c.execute("select current_user").fetchone()[0]

    logins = [Background(login) for _ in range(200)]
    results = [b.result(180) for b in logins]
    stop.set()
    for w in workers:
        w.result(60)
    assert results == ["authq_scram"] * 200
    assert ran[0] > 0
    assert tp.alive()
    assert tp.stop(signal.SIGTERM) == 0


def _rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def _under_asan(pid):
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


@pytest.mark.hard_timeout(240)
def test_memory_stays_flat_over_2000_auth_query_logins(tidepool, pg, lookup_fn):
    """Odyssey's auth_query leaked until daily restarts. After a warm-up,
    2000 more looked-up SCRAM logins may not grow the process by 1 MB (a
    leak of 512 bytes per login would). ASan's quarantine keeps freed memory
    on purpose, so under ASan the leak check at exit covers this instead."""
    user = pw_role(pg)
    tp = authq_tidepool(tidepool, lookup_fn)
    if _under_asan(tp.pid):
        pytest.skip("RSS is not meaningful under ASan (its leak check runs at exit)")

    def logins(n):
        for _ in range(n):
            with tp.connect(user=user, password="role_pw") as c:
                c.execute("select 1")
    logins(300)
    before = _rss_kb(tp.pid)
    logins(2000)
    grown = _rss_kb(tp.pid) - before
    assert grown < 1024, "RSS grew by %d kB over 2000 logins" % grown
    assert calls(pg, user) >= 2300   # every login really looked the user up


def test_admin_console_password_is_checked_when_auth_query_is_on(tidepool, pg, lookup_fn):
    """PgDog let anyone into its admin database with pass-through auth on.
    tidepool checks console users against auth_file, whatever auth_query
    would say: a wrong password, or an admin user that exists only in
    PostgreSQL, is refused with 28P01."""
    pg_only = pw_role(pg)
    tp = authq_tidepool(tidepool, lookup_fn, admin_users="admin,%s" % pg_only,
                        auth_file={"scram_user": "scram_pw", "admin": "admin_pw"})
    with tp.connect(dbname="pgbouncer", user="admin", password="admin_pw") as adm:
        assert adm.execute("SHOW VERSION").fetchone()[0].startswith("tidepool")
    for user, password in (("admin", "wrong"), (pg_only, "role_pw")):
        with pytest.raises(psycopg.OperationalError) as ei:
            tp.connect(dbname="pgbouncer", user=user, password=password)
        assert "password authentication failed" in str(ei.value), str(ei.value)
    # the same PostgreSQL-only user logs in to a real database through auth_query
    with tp.connect(user=pg_only, password="role_pw") as c:
        assert c.execute("select current_user").fetchone()[0] == pg_only


def test_trust_admits_users_found_by_auth_query_only(tidepool, pg, lookup_fn):
    """Issue 16: trust admits users in auth_file or found by auth_query."""
    user = pw_role(pg)
    tp = authq_tidepool(tidepool, lookup_fn, auth_type="trust")
    with tp.connect(user=user) as c:
        assert c.execute("select current_user").fetchone()[0] == user
    msg = login_error(tp, "nobody_%d" % os.getpid(), None)
    assert '"trust" authentication failed' in msg and "no such user" in msg, msg
    # a role without a password exists too: trust asks no more (PgBouncer's
    # test_auth_user_trust_auth_without_auth_file_set)
    nopw = pg.create_role("nopw")
    with tp.connect(user=nopw) as c:
        assert c.execute("select current_user").fetchone()[0] == nopw


def test_lookup_never_runs_with_a_clients_role(tidepool, pg, lookup_fn):
    """A client of auth_user's own pool that ran SET ROLE leaves its backend
    with that role until the next link; an auth_query lookup on that
    backend runs with the backend's settings reset first (issue 21)."""
    weak = pg.create_role("aq_weak")
    pg.sql("GRANT %s TO scram_user" % weak)
    user = pw_role(pg)
    tp = authq_tidepool(tidepool, lookup_fn, pool_mode="transaction", default_pool_size=1)
    with tp.connect(dbname="postgres", user="scram_user", password="scram_pw") as a:
        a.execute("SET ROLE %s" % weak)
        assert a.execute("select current_user").fetchone()[0] == weak
        with tp.connect(user=user, password="role_pw") as c:
            assert c.execute("select current_user").fetchone()[0] == user
        assert a.execute("select current_user").fetchone()[0] == weak
