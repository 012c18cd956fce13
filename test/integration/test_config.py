"""Issue 2: pgbouncer.ini-compatible configuration, --check, SIGHUP reload,
[databases] entries, daemon mode."""

import os
import re
import signal
import subprocess
import time

import psycopg
import pytest

from conftest import Background, port_open, tidepool_bin, wait_for_port, wait_until

# the main section's name ([pgbouncer] when the suite runs against PgBouncer)
SECTION = os.environ.get("TIDEPOOL_TEST_SECTION", "tidepool")


def run_check(path):
    r = subprocess.run([tidepool_bin(), "--check", path], capture_output=True, text=True,
                       timeout=20, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout + r.stderr


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def mentions_line(output, filename, line):
    """The output names filename:line (possibly with a directory in front)."""
    return re.search(r"%s:%d\b" % (re.escape(filename), line), output) is not None


# ---------------------------------------------------------------- --check

def test_check_good_config(tidepool):
    tp = tidepool(start=False, default_pool_size=7, max_client_conn=50)
    rc, out = run_check(tp.config_path)
    assert rc == 0, out


def test_example_config_in_etc_is_valid():
    """etc/tidepool.ini is the commented example users copy: it must load
    (its auth_file and paths are relative to it)."""
    example = os.path.join(os.path.dirname(__file__), "..", "..", "etc", "tidepool.ini")
    rc, out = run_check(os.path.abspath(example))
    assert rc == 0, out


def test_check_bad_config_lists_every_problem(tmp_path, pg):
    lines = [
        "[tidepool]",                                           # 1
        "listen_addr = 127.0.0.1",                              # 2
        "listen_port = 70000",                                  # 3  out of range
        "pool_mode = sideways",                                 # 4  bad enum
        "default_pool_size = lots",                             # 5  not a number
        "auth_type = trust",                                    # 6
        "%include /nonexistent/tidepool-extra.ini",             # 7  missing file
        "",                                                     # 8
        "[databases]",                                          # 9
        "appdb = host=127.0.0.1 port=%d dbname=appdb" % pg.port,  # 10
        "appdb = host=127.0.0.1 port=%d dbname=postgres" % pg.port,  # 11 duplicate
        "broken = this is not a connection string",             # 12 unparsable
    ]
    path = write(tmp_path / "bad.ini", "\n".join(lines) + "\n")
    rc, out = run_check(path)
    assert rc == 1, out
    for line in (3, 4, 5, 7, 11, 12):
        assert mentions_line(out, "bad.ini", line), "no problem reported for bad.ini:%d\n%s" % (line, out)


def test_check_reports_problem_in_included_file(tmp_path, pg):
    inc = write(tmp_path / "inc.ini", "; included\npool_mode = bogus\n")
    main = write(tmp_path / "main.ini",
                 "[tidepool]\nlisten_addr = 127.0.0.1\nauth_type = trust\n%%include %s\n"
                 "[databases]\nappdb = host=127.0.0.1 port=%d\n" % (inc, pg.port))
    rc, out = run_check(main)
    assert rc == 1, out
    assert mentions_line(out, "inc.ini", 2), out


def test_check_accepts_a_real_pgbouncer_ini(tmp_path, pg):
    """Every documented PgBouncer key loads (unimplemented ones with a warning)."""
    text = """\
;; a pgbouncer.ini as people write them
[databases]
appdb = host=127.0.0.1 port=%(port)d dbname=appdb pool_size=10 min_pool_size=0 reserve_pool=1 connect_query='SELECT 1' client_encoding=UTF8 datestyle=ISO timezone=UTC application_name=x
* = host=127.0.0.1 port=%(port)d

[users]
app = pool_mode=transaction max_user_connections=50

[pgbouncer]
logfile =
pidfile =
listen_addr = 127.0.0.1
listen_port = 6432
unix_socket_dir = /tmp
unix_socket_mode = 0777
unix_socket_group =
auth_type = trust
auth_file = %(userlist)s
auth_user =
auth_query = SELECT usename, passwd FROM pg_shadow WHERE usename=$1
admin_users = postgres
stats_users = stats
pool_mode = session
server_reset_query = DISCARD ALL
server_reset_query_always = 0
ignore_startup_parameters = extra_float_digits,options
server_check_query = select 1
server_check_delay = 30
max_client_conn = 100
default_pool_size = 20
min_pool_size = 0
reserve_pool_size = 0
reserve_pool_timeout = 5
max_db_connections = 0
max_user_connections = 0
server_round_robin = 0
syslog = 0
syslog_facility = daemon
syslog_ident = pgbouncer
log_connections = 1
log_disconnections = 1
log_pooler_errors = 1
log_stats = 1
stats_period = 60
verbose = 0
server_lifetime = 3600
server_idle_timeout = 600
server_connect_timeout = 15
server_login_retry = 15
query_timeout = 0
query_wait_timeout = 120
cancel_wait_timeout = 10
client_idle_timeout = 0
client_login_timeout = 60
autodb_idle_timeout = 3600
idle_transaction_timeout = 0
suspend_timeout = 10
pkt_buf = 4096
max_packet_size = 2147483647
listen_backlog = 128
sbuf_loopcnt = 5
so_reuseport = 0
tcp_defer_accept = 1
tcp_socket_buffer = 0
tcp_keepalive = 1
tcp_keepcnt = 0
tcp_keepidle = 0
tcp_keepintvl = 0
tcp_user_timeout = 0
dns_max_ttl = 15
dns_nxdomain_ttl = 15
dns_zone_check_period = 0
resolv_conf =
client_tls_sslmode = disable
client_tls_protocols = secure
client_tls_ciphers = default
client_tls_ecdhcurve = auto
client_tls_dheparams = auto
server_tls_sslmode = prefer
server_tls_protocols = secure
server_tls_ciphers = default
application_name_add_host = 0
track_extra_parameters = IntervalStyle
max_prepared_statements = 200
disable_pqexec = 0
server_fast_close = 0
""" % {"port": pg.port, "userlist": write(tmp_path / "userlist.txt", '"app" ""\n"stats" "x"\n')}
    path = write(tmp_path / "pgbouncer.ini", text)
    rc, out = run_check(path)
    assert rc == 0, out


def test_start_refuses_bad_config(tmp_path, pg):
    path = write(tmp_path / "refuse.ini",
                 "[%s]\nlisten_addr = 127.0.0.1\ndefault_pool_size = -3x\n"
                 "[databases]\nappdb = host=127.0.0.1 port=%d\n" % (SECTION, pg.port))
    r = subprocess.run([tidepool_bin(), path], capture_output=True, text=True, timeout=20,
                       stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert mentions_line(r.stdout + r.stderr, "refuse.ini", 3), r.stdout + r.stderr


def test_start_refuses_missing_config_file(tmp_path):
    r = subprocess.run([tidepool_bin(), str(tmp_path / "nope.ini")], capture_output=True,
                       text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert "nope.ini" in r.stdout + r.stderr


# ------------------------------------------------------- format details

def test_pgbouncer_section_name_accepted(tidepool):
    tp = tidepool(section="pgbouncer")
    with tp.connect() as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_comments_and_include(tidepool, tmp_path, pg):
    inc = write(tmp_path / "databases.ini",
                "# databases from an included file\n"
                "appdb = host=127.0.0.1 port=%d dbname=appdb\n" % pg.port)
    tp = tidepool(start=False)
    tp.write_config(
        "; leading comment\n"
        "# another comment\n"
        "[%s]\n"
        "listen_addr = 127.0.0.1   \n"
        "listen_port = %d\n"
        "unix_socket_dir = %s\n"
        "  auth_type   =   trust\n"
        "auth_file = %s\n"
        "\n"
        "[databases]\n"
        "%%include %s\n" % (SECTION, tp.port, tp.sockdir, tp.auth_file_path, inc))
    tp.start()
    with tp.connect() as c:
        assert c.execute("select current_database()").fetchone()[0] == "appdb"


def test_star_fallback_database(tidepool, pg):
    tp = tidepool(databases={"*": "host=127.0.0.1 port=%d" % pg.port})
    for db in ("appdb", "postgres"):
        with tp.connect(dbname=db) as c:
            assert c.execute("select current_database()").fetchone()[0] == db


def test_database_alias_dbname(tidepool, pg):
    tp = tidepool(databases={"aliasdb": "host=127.0.0.1 port=%d dbname=appdb" % pg.port})
    with tp.connect(dbname="aliasdb") as c:
        assert c.execute("select current_database()").fetchone()[0] == "appdb"


def test_database_host_is_unix_socket_dir(tidepool, pg):
    tp = tidepool(databases={"appdb": "host=%s port=%d dbname=appdb" % (pg.sockdir, pg.port)})
    with tp.connect() as c:
        assert c.execute("select inet_client_addr() is null").fetchone()[0] is True


def test_database_host_is_a_name(tidepool, pg):
    tp = tidepool(databases={"appdb": "host=localhost port=%d dbname=appdb" % pg.port})
    with tp.connect() as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_database_pool_size(tidepool, pg):
    tp = tidepool(databases={"appdb": "host=127.0.0.1 port=%d dbname=appdb pool_size=1" % pg.port})
    a = tp.connect()
    pid_a = a.execute("select pg_backend_pid()").fetchone()[0]

    def client_b():
        with tp.connect() as b:
            return b.execute("select pg_backend_pid()").fetchone()[0]

    bg = Background(client_b)
    assert not bg.wait(1.0), "pool_size=1 in [databases] was not applied"
    a.close()
    assert bg.result(10) == pid_a


def test_logfile(tidepool, tmp_path):
    logfile = tmp_path / "file.log"
    tp = tidepool(logfile=str(logfile))
    with tp.connect() as c:
        c.execute("select 1")
    assert wait_until(lambda: logfile.exists() and logfile.stat().st_size > 0, timeout=5), \
        "nothing was written to logfile"


def test_daemon_mode_with_pidfile(tidepool, tmp_path):
    pidfile = tmp_path / "tidepool.pid"
    tp = tidepool(start=False, pidfile=str(pidfile), logfile=str(tmp_path / "daemon.log"))
    r = subprocess.run([tidepool_bin(), "-d", tp.config_path], capture_output=True, text=True,
                       timeout=20, stdin=subprocess.DEVNULL)
    pid = None
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        assert wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=10)
        pid = int(pidfile.read_text().strip())
        assert wait_for_port(tp.host, tp.port, 10)
        with tp.connect() as c:
            assert c.execute("select 1").fetchone()[0] == 1
        os.kill(pid, signal.SIGTERM)

        def gone():
            try:
                os.kill(pid, 0)
                return False
            except ProcessLookupError:
                return True
        assert wait_until(gone, timeout=10), "daemon did not exit on SIGTERM"
        pid = None
        assert wait_until(lambda: not pidfile.exists(), timeout=5), "pidfile left behind"
    finally:
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# ------------------------------------------------------------------ reload

def test_reload_changes_pool_size(tidepool):
    tp = tidepool(default_pool_size=1)
    a = tp.connect()
    pid_a = a.execute("select pg_backend_pid()").fetchone()[0]

    def client_b():
        with tp.connect() as b:
            return b.execute("select pg_backend_pid()").fetchone()[0]

    bg = Background(client_b)
    assert not bg.wait(1.0), "client B got a server although default_pool_size=1 was in use"
    tp.write_config(default_pool_size=2)
    tp.reload(wait=0)
    pid_b = bg.result(10)
    assert pid_b != pid_a
    assert a.execute("select pg_backend_pid()").fetchone()[0] == pid_a   # A undisturbed
    a.close()


def test_reload_with_broken_config_keeps_old_one(tidepool):
    tp = tidepool(default_pool_size=1)
    good = open(tp.config_path).read()
    log_before = len(tp.log())
    # raise the pool size AND break a line: nothing of the new file may apply
    head = "[%s]\n" % tp.section
    broken = good.replace(head, head + "default_pool_size = 2\npool_mode = nonsense\n", 1)
    tp.write_config(broken)
    bad_line = broken.splitlines().index("pool_mode = nonsense") + 1
    tp.reload(wait=1.0)
    assert tp.alive(), tp.log()
    new_log = tp.log()[log_before:]
    assert mentions_line(new_log, os.path.basename(tp.config_path), bad_line), new_log

    a = tp.connect()
    pid_a = a.execute("select pg_backend_pid()").fetchone()[0]

    def client_b():
        with tp.connect() as b:
            return b.execute("select pg_backend_pid()").fetchone()[0]

    bg = Background(client_b)
    assert not bg.wait(1.0), "part of the broken config (default_pool_size = 2) was applied"
    a.close()
    assert bg.result(10) == pid_a

    # a fixed file reloads fine afterwards
    tp.write_config(good)
    tp.reload()
    with tp.connect() as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_reload_adds_database(tidepool, pg):
    tp = tidepool()
    with pytest.raises(psycopg.OperationalError):
        tp.connect(dbname="newdb")
    dbs = dict(tp.databases)
    dbs["newdb"] = "host=127.0.0.1 port=%d dbname=appdb" % pg.port
    tp.write_config(databases=dbs)
    tp.reload()
    with tp.connect(dbname="newdb") as c:
        assert c.execute("select current_database()").fetchone()[0] == "appdb"


def test_reload_keeps_existing_clients(tidepool):
    tp = tidepool()
    conns = [tp.connect() for _ in range(5)]
    pids = [c.execute("select pg_backend_pid()").fetchone()[0] for c in conns]
    tp.write_config(max_client_conn=50, server_idle_timeout=300)
    tp.reload()
    for c, pid in zip(conns, pids):
        assert c.execute("select pg_backend_pid()").fetchone()[0] == pid
        c.close()
    assert port_open(tp.host, tp.port)


def test_many_reloads_in_a_row(tidepool):
    tp = tidepool()
    with tp.connect() as c:
        for i in range(20):
            tp.send_signal(signal.SIGHUP)
            time.sleep(0.02)
        time.sleep(0.5)
        assert c.execute("select 1").fetchone()[0] == 1
    assert tp.alive()
