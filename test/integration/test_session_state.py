"""Session state in transaction mode (issue 21, doc/pooling.md): settings
follow their client, SET ROLE never leaks, and the session_state policy
(pin, error, allow) for state that cannot follow it. Every test uses a pool
of one, so two clients always share the one backend."""

import psycopg
import pytest

import pgraw
from conftest import free_port
from test_http import scrape, value


def show(conn, name):
    return conn.execute("select current_setting(%s)", [name]).fetchone()[0]


def pid_of(conn):
    return conn.execute("select pg_backend_pid()").fetchone()[0]


def pool_of_one(tidepool, **keys):
    return tidepool(pool_mode="transaction", default_pool_size=1, **keys)


def test_settings_follow_their_client(tidepool, role):
    tp = pool_of_one(tidepool)
    a, b = tp.connect(user=role), tp.connect(user=role)
    defaults = {n: show(b, n) for n in ("search_path", "work_mem", "statement_timeout")}
    a.execute("SET search_path = tenant_42, public")
    a.execute("SET SESSION work_mem = '7MB'; SET statement_timeout = 12345")
    a.execute("SELECT set_config('myapp.tenant', '42', false)")
    a.execute("SET myapp.region = 'eu'")
    for _ in range(3):
        # b shares the backend and sees none of it
        assert pid_of(b) == pid_of(a)
        for n, v in defaults.items():
            assert show(b, n) == v
        assert b.execute("select current_setting('myapp.tenant', true)").fetchone()[0] in (None, "")
        # a has its own on every transaction
        assert show(a, "search_path") == "tenant_42, public"
        assert show(a, "work_mem") == "7MB"
        assert show(a, "statement_timeout") == "12345ms"
        assert show(a, "myapp.tenant") == "42"
        assert show(a, "myapp.region") == "eu"
    a.execute("RESET work_mem")
    assert show(a, "work_mem") == defaults["work_mem"]
    assert show(a, "search_path") == "tenant_42, public"
    a.execute("RESET ALL")
    assert show(a, "search_path") == defaults["search_path"]
    a.close()
    b.close()


def test_settings_go_along_to_another_backend(tidepool, role):
    tp = tidepool(pool_mode="transaction", default_pool_size=2)
    a, c = tp.connect(user=role), tp.connect(user=role)
    a.execute("SET work_mem = '5MB'; SELECT set_config('myapp.tenant', 'it''s', false)")
    first = pid_of(a)
    c.execute("BEGIN")   # takes the backend a used last
    assert pid_of(c) == first
    assert show(c, "work_mem") != "5MB"
    assert pid_of(a) != first   # a runs on the other one now, with its settings
    assert show(a, "work_mem") == "5MB"
    assert show(a, "myapp.tenant") == "it's"
    c.execute("COMMIT")
    a.close()
    c.close()


def test_rollback_undoes_a_set_and_set_local_is_not_kept(tidepool, role):
    tp = pool_of_one(tidepool)
    a, b = tp.connect(user=role), tp.connect(user=role)
    default = show(b, "work_mem")
    a.execute("BEGIN; SET work_mem = '9MB'")
    assert show(a, "work_mem") == "9MB"
    a.execute("ROLLBACK")
    assert show(a, "work_mem") == default
    a.execute("BEGIN")
    a.execute("SET work_mem = '9MB'")
    with pytest.raises(psycopg.errors.DivisionByZero):
        a.execute("select 1/0")
    a.execute("COMMIT")   # a failed transaction's COMMIT rolls back
    assert show(a, "work_mem") == default
    with pytest.raises(psycopg.errors.DivisionByZero):
        a.execute("SET work_mem = '9MB'; SELECT 1/0")
    assert show(a, "work_mem") == default
    a.execute("BEGIN; SET LOCAL work_mem = '11MB'; SELECT set_config('myapp.x', 'y', true); COMMIT")
    assert show(a, "work_mem") == default
    a.execute("BEGIN; SET work_mem = '13MB'; COMMIT")
    assert show(a, "work_mem") == "13MB"
    assert show(b, "work_mem") == default
    assert "pinned" not in tp.log()


def test_role_and_session_authorization_never_leak(tidepool, pg, role):
    reader = role + "_reader"
    pg.sql('create role "%s"' % reader)
    pg.sql('grant "%s" to "%s"' % (reader, role))
    tp = pool_of_one(tidepool)
    a, b = tp.connect(user=role), tp.connect(user=role)
    a.execute('SET ROLE "%s"' % reader)
    for _ in range(3):
        assert b.execute("select current_user").fetchone()[0] == role
        assert a.execute("select current_user").fetchone()[0] == reader
    a.execute("RESET ROLE")
    assert a.execute("select current_user").fetchone()[0] == role
    # SET SESSION AUTHORIZATION needs a superuser session
    s1, s2 = tp.connect(user="postgres"), tp.connect(user="postgres")
    s1.execute('SET SESSION AUTHORIZATION "%s"' % role)
    assert s2.execute("select session_user").fetchone()[0] == "postgres"
    assert s1.execute("select session_user, current_user").fetchone() == (role, role)
    assert s2.execute("select session_user").fetchone()[0] == "postgres"


def test_set_through_the_extended_protocol(tidepool, role):
    tp = pool_of_one(tidepool)
    b = tp.connect(user=role)
    default = show(b, "work_mem")
    with tp.raw() as r:
        r.startup(user=role)
        r.send(pgraw.parse_message("", "SET work_mem = '3MB'") + pgraw.bind_message("") +
               pgraw.execute_message("") + pgraw.sync_message())
        assert [t for t, _ in r.read_until_ready()] == ["1", "2", "C", "Z"]
        assert show(b, "work_mem") == default
        rows, err, _ = r.query("select current_setting('work_mem')")
        assert err is None and rows == [["3MB"]]
    b.close()


def test_other_state_is_never_visible_to_another_client(tidepool, role):
    tp = pool_of_one(tidepool)
    a = tp.connect(user=role)
    a.execute("CREATE TEMP TABLE tp_mine (v int)")
    a.execute("select pg_advisory_lock(77)")
    a.execute("PREPARE tp_p AS SELECT 1")
    a.execute("BEGIN; DECLARE tp_c CURSOR WITH HOLD FOR SELECT 1; COMMIT")
    a.close()   # pinned until now; then the backend is reset
    b = tp.connect(user=role)
    assert b.execute("select to_regclass('pg_temp.tp_mine') is null").fetchone()[0] is True
    assert b.execute("select count(*) from pg_locks where locktype = 'advisory'"
                     " and pid = pg_backend_pid()").fetchone()[0] == 0
    assert b.execute("select count(*) from pg_prepared_statements").fetchone()[0] == 0
    assert b.execute("select count(*) from pg_cursors").fetchone()[0] == 0
    b.close()


def test_a_loaded_library_goes_with_its_backend(tidepool):
    tp = pool_of_one(tidepool)
    loaded = "select count(*) from pg_settings where name like 'auto_explain.%'"
    a = tp.connect(user="postgres")
    a.execute("LOAD 'auto_explain'")
    assert a.execute(loaded).fetchone()[0] > 0
    pid_a = pid_of(a)
    a.close()   # pinned until now; no reset unloads a library, so the backend is closed
    b = tp.connect(user="postgres")
    assert pid_of(b) != pid_a
    assert b.execute(loaded).fetchone()[0] == 0
    b.close()


@pytest.mark.parametrize("statement", [
    "LISTEN tp_refused",
    "CREATE TEMP TABLE tp_refused (v int)",
    "SELECT pg_advisory_lock(5)",
    "PREPARE tp_refused AS SELECT 1",
    "SELECT set_config('myapp.x', current_user, false)",
])
def test_session_state_error_refuses(tidepool, role, statement):
    mp = free_port()
    tp = pool_of_one(tidepool, session_state="error", metrics_port=mp)
    a = tp.connect(user=role)
    with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
        a.execute(statement)
    assert "session_state" in e.value.diag.message_hint
    # nothing reached the backend, and the client goes on
    assert a.execute("select count(*) from pg_listening_channels()").fetchone()[0] == 0
    assert a.execute("select count(*) from pg_prepared_statements").fetchone()[0] == 0
    a.execute("BEGIN")
    with pytest.raises(psycopg.errors.FeatureNotSupported):
        a.execute(statement)
    a.execute("ROLLBACK")
    b = tp.connect(user=role)
    assert pid_of(b) == pid_of(a)   # nobody pinned
    assert value(scrape(mp), "tidepool_stats_session_state_refused_total",
                 database="appdb", user=role) == 2


def test_session_state_allow_is_pgbouncers_behaviour_counted(tidepool, role):
    mp = free_port()
    tp = pool_of_one(tidepool, session_state="allow", metrics_port=mp)
    a, b = tp.connect(user=role), tp.connect(user=role)
    a.execute("LISTEN tp_allowed")
    assert pid_of(b) == pid_of(a)   # not pinned: the state stays on the shared backend
    assert b.execute("select count(*) from pg_listening_channels()").fetchone()[0] == 1
    assert value(scrape(mp), "tidepool_stats_session_state_allowed_total",
                 database="appdb", user=role) == 1


def test_session_state_per_user_and_database(tidepool, pg, role):
    dbs = {"appdb": "host=127.0.0.1 port=%d dbname=appdb" % pg.port,
           "strict": "host=127.0.0.1 port=%d dbname=appdb session_state=error" % pg.port,
           "postgres": "host=127.0.0.1 port=%d dbname=postgres" % pg.port}
    tp = tidepool(pool_mode="transaction", default_pool_size=1, databases=dbs,
                  users={role: "session_state=error"}, pin_session_state=0)
    a = tp.connect(user=role)   # the user's key
    with pytest.raises(psycopg.errors.FeatureNotSupported):
        a.execute("LISTEN tp_user")
    s = tp.connect(dbname="strict", user="postgres")   # the database's key
    with pytest.raises(psycopg.errors.FeatureNotSupported):
        s.execute("LISTEN tp_db")
    p = tp.connect(user="postgres")   # pin_session_state = 0: allow
    p.execute("LISTEN tp_allowed")
    assert "pinned" not in tp.log()


def test_rollback_to_savepoint_over_a_set_pins(tidepool, role):
    """Which changes a ROLLBACK TO undoes is not followed: the client keeps
    its backend, where PostgreSQL has the truth."""
    tp = pool_of_one(tidepool)
    a = tp.connect(user=role)
    a.execute("BEGIN")
    a.execute("SET work_mem = '4MB'")
    a.execute("SAVEPOINT s1")
    a.execute("SET work_mem = '6MB'")
    a.execute("ROLLBACK TO SAVEPOINT s1")
    a.execute("COMMIT")
    assert show(a, "work_mem") == "4MB"
    assert "pinned to its server until it disconnects: settings rolled back to a savepoint" in tp.log()
    a.close()


def test_refused_parse_drops_its_batch(tidepool, role):
    tp = pool_of_one(tidepool, session_state="error")
    with tp.raw() as r:
        r.startup(user=role)
        r.send(pgraw.parse_message("", "LISTEN tp_ext") + pgraw.bind_message("") +
               pgraw.execute_message("") + pgraw.sync_message())
        msgs = r.read_until_ready()
        assert [t for t, _ in msgs] == ["E", "Z"]
        assert pgraw.parse_error(msgs[0][1])["C"] == "0A000"
        rows, err, _ = r.query("select count(*) from pg_listening_channels()")
        assert err is None and rows == [["0"]]


def test_show_clients_and_pools(tidepool, role):
    tp = tidepool(pool_mode="transaction", default_pool_size=2, admin_users="admin")
    a, b = tp.connect(user=role), tp.connect(user=role)
    a.execute("SET work_mem = '5MB'; SET search_path = public")
    b.execute("LISTEN tp_show")
    with tp.connect(dbname="pgbouncer", user="admin") as adm:
        cur = adm.execute("SHOW CLIENTS")
        names = [d.name for d in cur.description]
        states = sorted(str(r[names.index("session_state")]) for r in cur.fetchall()
                        if r[names.index("user")] == role)
        assert states == ["pinned", "settings=2"]
        cur = adm.execute("SHOW POOLS")
        names = [d.name for d in cur.description]
        row = [r for r in cur.fetchall() if r[names.index("user")] == role][0]
        assert row[names.index("session_state")] == "pin"
        assert row[names.index("cl_pinned")] == 1


def test_psycopg_prepared_statements_that_set(tidepool, role):
    """psycopg with prepare_threshold=0 sends SET as a named prepared
    statement: Parse once, then Bind/Execute each time."""
    tp = pool_of_one(tidepool)
    a = tp.connect(user=role, prepare_threshold=0)
    b = tp.connect(user=role)
    default = show(b, "work_mem")
    for v in ("2MB", "3MB", "2MB"):
        a.execute("SET work_mem = '%s'" % v, prepare=True)
        assert show(b, "work_mem") == default
        assert show(a, "work_mem") == v
    a.execute("RESET work_mem", prepare=True)
    assert show(a, "work_mem") == default
    assert "pinned" not in tp.log()


def test_pipelined_sets_and_errors(tidepool, role):
    tp = pool_of_one(tidepool)
    a, b = tp.connect(user=role), tp.connect(user=role)
    default = show(b, "work_mem")
    with a.pipeline():
        a.execute("SET work_mem = '21MB'", prepare=False)
        a.execute("SET statement_timeout = 4242", prepare=False)
    assert show(a, "work_mem") == "21MB" and show(a, "statement_timeout") == "4242ms"
    with pytest.raises(psycopg.errors.DivisionByZero):
        with a.pipeline():
            a.execute("BEGIN")
            a.execute("SET work_mem = '22MB'")
            a.execute("SELECT 1/0")
    a.execute("ROLLBACK")
    assert show(a, "work_mem") == "21MB"
    assert show(b, "work_mem") == default


def test_startup_options_and_sets_together(tidepool, role):
    """A client's -c option and its SETs, and another client with the same
    option on the same backend: each sees its own value."""
    tp = pool_of_one(tidepool)
    a = tp.connect(user=role, options="-c work_mem=5MB")
    c = tp.connect(user=role, options="-c work_mem=5MB")
    b = tp.connect(user=role)
    default = show(b, "work_mem")
    assert show(a, "work_mem") == "5MB"
    a.execute("SET work_mem = '7MB'")
    assert show(a, "work_mem") == "7MB"
    assert show(c, "work_mem") == "5MB"
    assert show(b, "work_mem") == default
    assert show(a, "work_mem") == "7MB"
    assert show(c, "work_mem") == "5MB"
