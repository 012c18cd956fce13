"""Replication connections through tidepool (issue 18): replication=true
(physical) and replication=database (logical) clients each get a server of
their own, started with the same parameter, never pooled; the replication
protocol (CopyBoth) passes byte for byte. Checked with pg_receivewal and
pg_recvlogical against a PostgreSQL with wal_level = logical."""
import os
import signal
import subprocess
import time

import pytest

from conftest import PgServer, clean_env, pg_bin, serve_pg, wait_until


@pytest.fixture(scope="module")
def pg_repl():
    srv = PgServer(max_connections=100,
                   extra_conf="wal_level = logical\nmax_wal_senders = 10\nmax_replication_slots = 10\n")
    for s in serve_pg(srv):
        # the fixture's pg_hba.conf has no replication lines
        with open(os.path.join(s.datadir, "pg_hba.conf"), "a") as f:
            f.write("local replication all trust\nhost replication all 127.0.0.1/32 trust\n")
        s.sql("select pg_reload_conf()")
        yield s


def databases(pg):
    # pg_receivewal always asks for the database "replication" (PostgreSQL
    # ignores the name of a physical replication connection): a "*" entry,
    # or one named replication, lets it through
    return {"appdb": "host=127.0.0.1 port=%d dbname=appdb" % pg.port,
            "*": "host=127.0.0.1 port=%d" % pg.port}


def dsn(tp, dbname="appdb"):
    return "host=%s port=%d user=postgres dbname=%s" % (tp.host, tp.port, dbname)


def walsenders(pg):
    return pg.sql("select count(*) from pg_stat_replication")[0][0]


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_pg_receivewal_through_tidepool(tidepool, pg_repl, tmp_path, mode):
    tp = tidepool(pool_mode=mode, pg_server=pg_repl, admin_users="postgres", databases=databases(pg_repl))
    out = tmp_path / "wal"
    out.mkdir()
    proc = subprocess.Popen([pg_bin("pg_receivewal"), "-D", str(out), "-d", dsn(tp), "--no-loop",
                             "--no-password", "-v"], env=clean_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: walsenders(pg_repl) == 1 or proc.poll() is not None, 20)
        assert proc.poll() is None, proc.stdout.read()
        pg_repl.sql("create table if not exists walgen(x int)")
        pg_repl.sql("insert into walgen select generate_series(1, 1000)")
        pg_repl.sql("select pg_switch_wal()")
        pg_repl.sql("insert into walgen values (1)")
        # a whole segment arrives, then the next one is being written
        assert wait_until(lambda: any(len(n) == 24 for n in os.listdir(out)), 30), os.listdir(out)
        # the replication client shows up as such, and ordinary clients still work
        with tp.connect(dbname="pgbouncer", user="postgres") as adm:
            kinds = [r[3] for r in adm.execute("SHOW CLIENTS").fetchall()]
            assert "physical" in kinds, kinds
        with tp.connect(user="app") as c:
            assert c.execute("select 1").fetchone()[0] == 1
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    # its server was its own: it is gone with the client
    assert wait_until(lambda: walsenders(pg_repl) == 0, 10)


def test_pg_recvlogical_through_tidepool(tidepool, pg_repl, tmp_path):
    tp = tidepool(pool_mode="transaction", pg_server=pg_repl, databases=databases(pg_repl))
    recv = pg_bin("pg_recvlogical")
    base = [recv, "-d", dsn(tp), "--slot", "tp_slot", "--no-password"]
    r = subprocess.run(base + ["--create-slot", "-P", "test_decoding"], env=clean_env(),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    outfile = tmp_path / "changes.txt"
    proc = subprocess.Popen(base + ["--start", "-f", str(outfile), "-F", "1"], env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        pg_repl.sql("create table if not exists logi(x int)", dbname="appdb")
        pg_repl.sql("insert into logi values (4242)", dbname="appdb")
        assert wait_until(lambda: outfile.exists() and "4242" in outfile.read_text(), 30), \
            (outfile.read_text() if outfile.exists() else "", proc.poll())
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        subprocess.run(base + ["--drop-slot"], env=clean_env(), capture_output=True, timeout=30)
    assert "table public.logi: INSERT: x[integer]:4242" in outfile.read_text()


def test_replication_client_settings_reach_its_server(tidepool, pg_repl):
    """Nothing can be SET on a physical replication connection, so the
    client's startup settings (application_name, options -c ...) go into
    the startup packet of its own server, as PgBouncer does."""
    import psycopg
    tp = tidepool(pool_mode="transaction", pg_server=pg_repl, databases=databases(pg_repl))
    with psycopg.connect(host=tp.host, port=tp.port, user="postgres", dbname="appdb",
                         replication="database", application_name="abc",
                         options="-c enable_seqscan=off", autocommit=True, connect_timeout=10) as c:
        assert c.execute("SHOW application_name").fetchone()[0] == "abc"
        assert c.execute("SHOW enable_seqscan").fetchone()[0] == "off"
        assert len(c.execute("IDENTIFY_SYSTEM").fetchone()) == 4
    # an ordinary client of the same database and user is unaffected
    with tp.connect(user="postgres") as c:
        assert c.execute("SHOW enable_seqscan").fetchone()[0] == "on"
