"""The configuration shapes Kubernetes operators generate for PgBouncer
(issue 18), started unchanged with tidepool against a real PostgreSQL with
TLS: CloudNativePG's Pooler (pkg/management/pgbouncer/config: auth_type =
hba, auth_query through a security-definer public.user_search(), auth_dbname,
client and server TLS with verify-ca) and Zalando's postgres-operator
connection pooler image (pgbouncer.ini.tmpl: auth_user per database,
auth_query through pooler.user_lookup(), stats_users_prefix, TLS required
both ways). Each shape serves a client whose secret only PostgreSQL knows,
reloads on SIGHUP, and stops on SIGINT and SIGTERM as PgBouncer does there."""
import signal
import time

import psycopg
import pytest

from conftest import Background, wait_until
from test_tls import certs, pg_ssl  # noqa: F401  (module fixtures)

CNPG_FUNC = """
CREATE OR REPLACE FUNCTION public.user_search(uname TEXT)
  RETURNS TABLE (usename name, passwd text)
  LANGUAGE sql SECURITY DEFINER
  AS 'SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename=$1;';
REVOKE ALL ON FUNCTION public.user_search(text) FROM public;
GRANT EXECUTE ON FUNCTION public.user_search(text) TO cnpg_pooler_pgbouncer;
"""

ZALANDO_FUNC = """
CREATE SCHEMA IF NOT EXISTS pooler;
CREATE OR REPLACE FUNCTION pooler.user_lookup(in i_username text, out uname text, out phash text)
  RETURNS record AS $$
BEGIN
  SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename = i_username INTO uname, phash;
  RETURN;
END;
$$ LANGUAGE plpgsql SECURITY DEFINER;
REVOKE ALL ON FUNCTION pooler.user_lookup(text) FROM public;
GRANT USAGE ON SCHEMA pooler TO pooler;
GRANT EXECUTE ON FUNCTION pooler.user_lookup(text) TO pooler;
"""


@pytest.fixture(scope="module")
def operator_pg(pg_ssl):  # noqa: F811
    pg_ssl.sql("DO $$ BEGIN CREATE ROLE cnpg_pooler_pgbouncer LOGIN PASSWORD 'cnpg_pw'; "
               "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    pg_ssl.sql("DO $$ BEGIN CREATE ROLE pooler LOGIN PASSWORD 'pooler_pw'; "
               "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    pg_ssl.sql("DO $$ BEGIN CREATE ROLE robot_zmon LOGIN PASSWORD 'robot_pw'; "
               "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    for db in ("postgres", "appdb"):
        pg_ssl.sql(CNPG_FUNC, dbname=db)
        pg_ssl.sql(ZALANDO_FUNC, dbname=db)
    return pg_ssl


def serve_and_signal(tp, dsn_kw, stop_sig):
    """A user only PostgreSQL knows logs in (md5 over TLS), a reload keeps it
    working, and stop_sig lets its session finish, as PgBouncer does."""
    with tp.connect(user="md5_user", password="md5_pw", **dsn_kw) as c:
        assert c.execute("select current_user").fetchone()[0] == "md5_user"
        assert c.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone()[0]
    held = tp.connect(user="md5_user", password="md5_pw", **dsn_kw)
    held.execute("begin")
    tp.reload()
    assert tp.alive()
    with tp.connect(user="md5_user", password="md5_pw", **dsn_kw) as c:
        assert c.execute("select 2").fetchone()[0] == 2
    tp.send_signal(stop_sig)
    time.sleep(0.5)
    # the open transaction may still finish
    assert held.execute("select 3").fetchone()[0] == 3
    held.execute("commit")
    held.close()
    assert wait_until(lambda: not tp.alive(), 15), tp.log()[-2000:]


def test_cloudnativepg_pooler_shape(tidepool, operator_pg, certs, tmp_path):  # noqa: F811
    """The files CloudNativePG's Pooler controller writes, with its forced and
    default parameters; server_tls_sslmode stays verify-ca against the CA of
    the PostgreSQL certificate."""
    pg = operator_pg
    hba = tmp_path / "pg_hba.conf"
    hba.write_text("\nlocal pgbouncer pgbouncer peer\n\n\nhost all all 0.0.0.0/0 md5\n"
                   "host all all ::/0 md5\n")
    userlist = tmp_path / "userlist.txt"
    userlist.write_text('\n"cnpg_pooler_pgbouncer" "cnpg_pw"\n')
    params = {
        "admin_users": "pgbouncer", "auth_file": str(userlist), "auth_hba_file": str(hba),
        "auth_type": "hba", "client_tls_ca_file": certs.path("ca.crt"),
        "client_tls_cert_file": certs.path("server.crt"),
        "client_tls_key_file": certs.path("server.key"), "client_tls_sslmode": "prefer",
        "ignore_startup_parameters": "extra_float_digits,options", "listen_addr": "127.0.0.1",
        "log_stats": "0", "server_tls_ca_file": certs.path("ca.crt"),
        "server_tls_sslmode": "verify-ca",
    }
    tp = tidepool(start=False, pg_server=pg)
    text = ("\n[databases]\n* = host=127.0.0.1 port=%d\n\n[pgbouncer]\npool_mode = session\n"
            "auth_user = cnpg_pooler_pgbouncer\n"
            "auth_query = SELECT usename, passwd FROM public.user_search($1)\n"
            "auth_dbname = postgres\n\n" % pg.port)
    params.update({"listen_port": str(tp.port), "unix_socket_dir": tp.sockdir})
    text += "".join("%s = %s\n" % (k, params[k]) for k in sorted(params))
    tp.write_config(text=text)
    tp.start()
    serve_and_signal(tp, {"dbname": "appdb", "sslmode": "require"}, signal.SIGINT)


def test_zalando_pooler_shape(tidepool, operator_pg, certs, tmp_path):  # noqa: F811
    """The pgbouncer.ini that the entrypoint of Zalando's pooler image makes
    from its template with envsubst (TLS required on both sides, a robot_
    stats user)."""
    pg = operator_pg
    auth = tmp_path / "auth_file.txt"
    auth.write_text('"pooler" "pooler_pw"\n')
    tp = tidepool(start=False, pg_server=pg)
    text = """# vim: set ft=dosini:

[databases]
* = host=127.0.0.1 port=%(port)d auth_user=pooler
postgres = host=127.0.0.1 port=%(port)d auth_user=pooler

[pgbouncer]
pool_mode = transaction
listen_port = %(lport)d
listen_addr = 127.0.0.1
unix_socket_dir = %(sock)s
auth_type = md5
auth_file = %(auth)s
auth_dbname = postgres
admin_users = pooler
stats_users_prefix = robot_
auth_query = SELECT * FROM pooler.user_lookup($1)
logfile = %(log)s
pidfile = %(pid)s

server_tls_sslmode = require
server_tls_ca_file = %(ca)s
server_tls_protocols = secure
client_tls_sslmode = require
client_tls_key_file = %(key)s
client_tls_cert_file = %(crt)s

log_connections = 0
log_disconnections = 0

# How many server connections to allow per user/database pair.
default_pool_size = 10
# min_pool_size = 0
reserve_pool_size = 5
max_client_conn = 100
max_db_connections = 60
idle_transaction_timeout = 600
server_login_retry = 5
ignore_startup_parameters = extra_float_digits,options
""" % {"port": pg.port, "lport": tp.port, "sock": tp.sockdir, "auth": auth,
       "log": tmp_path / "pgbouncer.log", "pid": tmp_path / "pgbouncer.pid",
       "ca": certs.path("ca.crt"), "key": certs.path("server.key"), "crt": certs.path("server.crt")}
    tp.write_config(text=text)
    tp.start()
    # the stats user by prefix reads the console; it may not change anything
    with tp.connect(dbname="pgbouncer", user="robot_zmon", password="robot_pw", sslmode="require") as st:
        assert st.execute("SHOW POOLS").fetchall() is not None
        with pytest.raises(psycopg.Error):
            st.execute("PAUSE")
    # the admin user pauses and resumes (the operator's own commands)
    with tp.connect(dbname="pgbouncer", user="pooler", password="pooler_pw", sslmode="require") as adm:
        adm.execute("PAUSE")
        adm.execute("RESUME")
    # plaintext is refused (client_tls_sslmode = require)
    with pytest.raises(psycopg.OperationalError):
        tp.connect(user="md5_user", password="md5_pw", sslmode="disable")
    serve_and_signal(tp, {"dbname": "appdb", "sslmode": "require"}, signal.SIGTERM)
