"""Issue 19: the backend budget. A PostgreSQL with max_connections = 20
(superuser_reserved_connections 3: 17 for ordinary logins) behind pools
whose fleet can open more. tidepool learns the server's limits with one
query of its own on its first backend there, shows them with SHOW BUDGET
and /metrics, and logs a WARNING when the fleet can exceed them (again
after a reload that changes the sums); --check prints this_process_max."""

import re
import subprocess

import psycopg
import pytest

from conftest import PgServer, _track, free_port, serve_pg, tidepool_bin, wait_until
from test_dns import dns  # noqa: F401  (fixture)
from test_http import http_get
from test_replication import databases as repl_databases, pg_repl  # noqa: F401  (fixture)

WARNING = "backend budget:"


@pytest.fixture
def small_pg(request):
    srv = PgServer(max_connections=20)
    _track(request, "_pg_servers", srv)
    yield from serve_pg(srv)


def databases(pg):
    return {"appdb": "host=127.0.0.1 port=%d dbname=appdb" % pg.port,
            "postgres": "host=127.0.0.1 port=%d dbname=postgres" % pg.port}


def budget_tp(tidepool, pg, **kw):
    kw.setdefault("pool_mode", "transaction")
    kw.setdefault("admin_users", "admin")
    kw.setdefault("default_pool_size", 5)
    kw.setdefault("reserve_pool_size", 1)
    return tidepool(pg_server=pg, databases=databases(pg), **kw)


def budget_rows(tp):
    with tp.connect(dbname="pgbouncer", user="admin") as adm:
        cur = adm.execute("SHOW BUDGET")
        names = [d.name for d in cur.description]
        return names, [dict(zip(names, r)) for r in cur.fetchall()]


def one_row(tp):
    rows = budget_rows(tp)[1]
    assert len(rows) == 1, rows
    return rows[0]


def test_show_budget_learns_the_server_and_warns(tidepool, small_pg):
    tp = budget_tp(tidepool, small_pg, expected_replicas=4, metrics_port=free_port())
    names, rows = budget_rows(tp)
    assert names == ["host", "port", "max_connections", "reserved", "this_process_max",
                     "replicas", "fleet_max", "headroom"]
    # nothing learned before the first server login: two entries, one pool
    # each of 5 + 1
    assert rows == [{"host": "127.0.0.1", "port": small_pg.port, "max_connections": None,
                     "reserved": None, "this_process_max": 12, "replicas": 4, "fleet_max": 48,
                     "headroom": None}]
    assert WARNING not in tp.log()

    with tp.connect() as c:
        assert c.execute("SELECT 41 + 1").fetchone() == (42,)
    row = one_row(tp)
    assert (row["max_connections"], row["reserved"]) == (20, 3)
    # appdb/app has a pool now (still 6), postgres counts one pool
    assert (row["this_process_max"], row["fleet_max"], row["headroom"]) == (12, 48, 17 - 48)
    assert wait_until(lambda: WARNING in tp.log(), timeout=5), tp.log()
    line = [l for l in tp.log().splitlines() if WARNING in l][0]
    assert "WARNING" in line and "48" in line and "allows 17" in line, line

    # the same figures on /metrics, a negative headroom included
    body = http_get(tp.main["metrics_port"], "/metrics")[2]
    labels = '{host="127.0.0.1",port="%d"}' % small_pg.port
    for family, value in (("max_connections", 20), ("reserved_connections", 3),
                          ("this_process_max", 12), ("fleet_max", 48), ("headroom", -31)):
        assert "tidepool_budget_%s%s %d\n" % (family, labels, value) in body, family
    assert "tidepool_budget_replicas 4\n" in body

    # one query learned it: the next logins ask nothing
    with tp.connect(dbname="postgres") as c:
        c.execute("SELECT 1")
    assert tp.log().count("server allows max_connections") == 1


def test_each_pool_counts_and_a_reload_warns_again(tidepool, small_pg, pg):
    tp = budget_tp(tidepool, small_pg, expected_replicas=1)
    with tp.connect() as c:
        c.execute("SELECT 1")
    # a second user of appdb gets its own pool: 3 pools of 6 = 18 > 17
    small_pg.sql("CREATE ROLE budget_u2 LOGIN")
    tp.write_config()   # trust admits the roles the default auth_file lists
    tp.reload()
    with tp.connect(user="budget_u2") as c:
        c.execute("SELECT 1")
    assert one_row(tp)["this_process_max"] == 18
    assert wait_until(lambda: tp.log().count(WARNING) == 1, timeout=5), tp.log()

    tp.write_config(reserve_pool_size=0)   # 3 x 5 = 15: fits, no warning
    tp.reload()
    assert wait_until(lambda: one_row(tp)["headroom"] == 2, timeout=5)
    tp.write_config(expected_replicas=3)   # 45 > 17: a new warning
    tp.reload()
    assert wait_until(lambda: tp.log().count(WARNING) == 2, timeout=5), tp.log()
    assert one_row(tp)["fleet_max"] == 45


def test_max_db_connections_caps_a_database(tidepool, small_pg):
    tp = budget_tp(tidepool, small_pg, max_db_connections=2)
    assert one_row(tp)["this_process_max"] == 4


def test_replicas_from_a_headless_service_name(tidepool, small_pg, dns):  # noqa: F811
    dns.set("tidepool-pods.tidepool.test", "10.0.0.1", "10.0.0.2", "10.0.0.3")
    tp = budget_tp(tidepool, small_pg, expected_replicas=1, resolv_conf=dns.resolv_conf,
                   replicas_dns_name="tidepool-pods.tidepool.test")
    assert wait_until(lambda: one_row(tp)["replicas"] == 3, timeout=10)
    assert one_row(tp)["fleet_max"] == 36
    dns.set("tidepool-pods.tidepool.test", "10.0.0.1", "10.0.0.2")   # scaled down
    assert wait_until(lambda: one_row(tp)["replicas"] == 2, timeout=10)


def test_check_prints_this_process_max_per_server(tmp_path):
    ini = tmp_path / "tidepool.ini"
    ini.write_text(
        "[tidepool]\nlisten_port = 6432\nauth_type = trust\n"
        "default_pool_size = 10\nreserve_pool_size = 2\nexpected_replicas = 3\n"
        "[databases]\n"
        "a = host=10.1.1.1 port=5432\n"
        "b = host=10.1.1.1 port=5432 pool_size=4\n"
        "c = host=10.1.1.2,10.1.1.3 port=5433\n")
    r = subprocess.run([tidepool_bin(), "--check", str(ini)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if l.startswith("budget:")]
    assert lines == [
        "budget: 10.1.1.1:5432 this_process_max 18, x expected_replicas 3 = fleet_max 54",
        "budget: 10.1.1.2:5433 this_process_max 12, x expected_replicas 3 = fleet_max 36",
        "budget: 10.1.1.3:5433 this_process_max 12, x expected_replicas 3 = fleet_max 36",
    ], r.stdout


def test_a_replication_login_first_does_not_spoil_learning(tidepool, pg_repl):  # noqa: F811
    # a physical walsender refuses SQL: the budget query must not go there,
    # and the next ordinary login still learns the server's limits
    tp = tidepool(pool_mode="transaction", pg_server=pg_repl, admin_users="admin",
                  databases=repl_databases(pg_repl))
    with psycopg.connect("host=%s port=%d user=postgres dbname=appdb replication=true"
                         % (tp.host, tp.port), autocommit=True) as c:
        res = c.pgconn.exec_(b"IDENTIFY_SYSTEM")
        assert res.ntuples == 1
    assert one_row(tp)["max_connections"] is None
    with tp.connect() as c:
        c.execute("SELECT 1")
    assert one_row(tp)["max_connections"] == 100
    assert "could not learn" not in tp.log()
