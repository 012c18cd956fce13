"""Issue 9 (TLS half): TLS towards clients (client_tls_*) and towards
PostgreSQL (server_tls_*).

The module fixture `certs` makes a CA, a server certificate for localhost
and 127.0.0.1, client certificates (CN=app, CN=intruder) and a second,
unrelated CA with the openssl command-line tool. `pg_ssl` is a PostgreSQL
of this module with ssl = on and that server certificate.
"""

import hashlib
import os
import pwd
import shutil
import ssl
import subprocess

import psycopg
import pytest

import pgraw
from conftest import (IS_ROOT, PG_OS_USER, Background, PgServer, clean_env, pg_bin, serve_pg,
                      tidepool_bin, wait_until)


# ------------------------------------------------------------- certificates

def _openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, "openssl %s failed:\n%s" % (" ".join(args), r.stderr)


def _make_ca(d, name):
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", name + ".key", "-out", name + ".crt", "-days", "30", "-subj", "/CN=" + name,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def _make_cert(d, name, cn, ca, san=None, serial=None):
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn, cwd=d)
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\n")
        if san:
            f.write("subjectAltName=%s\n" % san)
    _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
             "-set_serial", str(serial or abs(hash(name)) % 1000000 + 1), "-out", name + ".crt",
             "-days", "30", "-extfile", ext, cwd=d)
    os.chmod(os.path.join(d, name + ".key"), 0o600)


class Certs:
    def __init__(self, d):
        self.dir = d

    def path(self, name):
        return os.path.join(self.dir, name)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("certs"))
    _make_ca(d, "ca")
    _make_ca(d, "otherca")
    _make_cert(d, "server", "localhost", "ca", san="DNS:localhost,IP:127.0.0.1", serial=1001)
    _make_cert(d, "server2", "localhost", "ca", san="DNS:localhost,IP:127.0.0.1", serial=2002)
    _make_cert(d, "client_app", "app", "ca", serial=3003)
    _make_cert(d, "client_intruder", "intruder", "ca", serial=4004)
    _make_cert(d, "client_foreign", "app", "otherca", serial=5005)
    return Certs(d)


@pytest.fixture(scope="module")
def pg_ssl(certs):
    """A PostgreSQL with ssl = on, using the fixture's server certificate."""
    srv = PgServer(max_connections=100)
    for name in ("server.crt", "server.key", "ca.crt"):
        dst = os.path.join(srv.dir, name)
        shutil.copy(certs.path(name), dst)
        os.chmod(dst, 0o600)
        if IS_ROOT:
            pw = pwd.getpwnam(PG_OS_USER)
            os.chown(dst, pw.pw_uid, pw.pw_gid)
    srv.extra_conf = ("ssl = on\nssl_cert_file = '%s'\nssl_key_file = '%s'\nssl_ca_file = '%s'\n"
                      % tuple(os.path.join(srv.dir, n) for n in ("server.crt", "server.key", "ca.crt")))
    yield from serve_pg(srv)


def client_tls(certs, mode="require", **kw):
    keys = {"client_tls_sslmode": mode, "client_tls_key_file": certs.path("server.key"),
            "client_tls_cert_file": certs.path("server.crt")}
    keys.update(kw)
    return keys


def ssl_databases(pg):
    return {"appdb": "host=127.0.0.1 port=%d dbname=appdb" % pg.port,
            "postgres": "host=127.0.0.1 port=%d dbname=postgres" % pg.port}


def psql(tp, sql, env_extra=None, dbname="appdb", user="app", conninfo=""):
    env = clean_env(**(env_extra or {}))
    dsn = "host=%s port=%d dbname=%s user=%s %s" % (tp.host, tp.port, dbname, user, conninfo)
    return subprocess.run([pg_bin("psql"), "-X", "-v", "ON_ERROR_STOP=1", "-Atc", sql, dsn], env=env,
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def show(conn, what):
    cur = conn.execute("SHOW " + what)
    names = [d.name for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def libpq_major():
    return psycopg.pq.version() // 10000


# ------------------------------------------------------------ client side

def test_psycopg_and_psql_require_and_verify_full(tidepool, certs):
    tp = tidepool(**client_tls(certs))
    with tp.connect(sslmode="require") as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("select 'over tls'").fetchone() == ("over tls",)
    with tp.connect(sslmode="verify-full", sslrootcert=certs.path("ca.crt")) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("select 1 + 1").fetchone() == (2,)
    r = psql(tp, "select 'psql tls'",
             conninfo="sslmode=verify-full sslrootcert=%s" % certs.path("ca.crt"))
    assert r.returncode == 0 and r.stdout.strip() == "psql tls", r.stderr


def test_verify_full_client_rejects_a_foreign_ca(tidepool, certs):
    tp = tidepool(**client_tls(certs))
    with pytest.raises(psycopg.OperationalError) as ei:
        tp.connect(sslmode="verify-full", sslrootcert=certs.path("otherca.crt"))
    assert "certificate verify failed" in str(ei.value)
    with tp.connect(sslmode="require") as conn:    # the pooler is fine
        assert conn.execute("select 1").fetchone() == (1,)


def test_require_refuses_a_plain_client(tidepool, certs):
    tp = tidepool(**client_tls(certs))
    r = psql(tp, "select 1", conninfo="sslmode=disable")
    assert r.returncode != 0
    assert "SSL required" in r.stderr, r.stderr
    with tp.raw() as c:
        with pytest.raises(pgraw.PgError) as ei:
            c.startup(user="app", database="appdb")
    assert ei.value.sqlstate == "28000"
    assert "SSL required" in ei.value.fields["M"]
    # the unix socket is not TCP: no TLS there, and no refusal either
    r = psql(tp, "select 'unix ok'", conninfo="host=%s" % tp.sockdir)
    assert r.returncode == 0 and r.stdout.strip() == "unix ok", r.stderr


def test_prefer_serves_tls_and_plain_clients(tidepool, certs):
    tp = tidepool(**client_tls(certs, mode="prefer"))
    with tp.connect(sslmode="prefer") as conn:
        assert conn.pgconn.ssl_in_use
    with tp.connect(sslmode="disable") as conn:
        assert not conn.pgconn.ssl_in_use
        assert conn.execute("select 1").fetchone() == (1,)


def test_disable_answers_N(tidepool, certs):
    tp = tidepool(client_tls_sslmode="disable")
    with tp.connect(sslmode="prefer") as conn:
        assert not conn.pgconn.ssl_in_use
    with pytest.raises(psycopg.OperationalError):
        tp.connect(sslmode="require")


def test_garbage_instead_of_client_hello(tidepool, certs):
    tp = tidepool(**client_tls(certs))
    with tp.raw() as c:
        c.send(pgraw.ssl_request())
        assert c.read_byte() == b"S"
        c.send_quietly(b"this is not a TLS ClientHello\r\n" * 20)
        assert c.wait_closed(10)
    assert wait_until(lambda: "TLS handshake failed" in tp.log(), 5), tp.log()[-2000:]
    # a half-finished handshake that just goes away
    with tp.raw() as c:
        c.send(pgraw.ssl_request())
        assert c.read_byte() == b"S"
        c.send(b"\x16\x03\x01\x00\x05")
    assert tp.alive()
    with tp.connect(sslmode="require") as conn:
        assert conn.execute("select 'still serving'").fetchone() == ("still serving",)


def test_plaintext_pipelined_after_ssl_request_is_refused(tidepool, certs):
    """Bytes sent before the 'S' could be read were not protected by TLS
    (CVE-2021-23214 style injection): refused, not mixed in."""
    tp = tidepool(**client_tls(certs))
    with tp.raw() as c:
        c.send(pgraw.ssl_request() + pgraw.startup_message(user="app", database="appdb"))
        typ, body = c.read_message()
        assert typ == "E"
        fields = pgraw.parse_error(body)
        assert fields["C"] == "08P01" and "unencrypted data after SSL request" in fields["M"]
    with tp.connect(sslmode="require") as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def _direct_tls_conn(tp, certs, alpn=("postgresql",)):
    ctx = ssl.create_default_context(cafile=certs.path("ca.crt"))
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    c = tp.raw()
    c.sock = ctx.wrap_socket(c.sock, server_hostname="localhost")
    return c


def test_direct_tls_with_alpn(tidepool, certs):
    """PostgreSQL 17's sslnegotiation=direct: a ClientHello with ALPN
    "postgresql" as the very first bytes."""
    tp = tidepool(**client_tls(certs))
    if libpq_major() >= 17:
        with tp.connect(sslmode="require", sslnegotiation="direct") as conn:
            assert conn.pgconn.ssl_in_use
            assert conn.execute("select 'direct'").fetchone() == ("direct",)
    c = _direct_tls_conn(tp, certs)
    with c:
        assert c.sock.selected_alpn_protocol() == "postgresql"
        c.startup(user="app", database="appdb")
        rows, err, status = c.query("select 'direct tls'")
        assert err is None and rows == [["direct tls"]] and status == "I"


def test_direct_tls_without_alpn_or_with_another_protocol_is_refused(tidepool, certs):
    tp = tidepool(**client_tls(certs))
    with pytest.raises((ssl.SSLError, OSError, pgraw.Closed)):
        c = _direct_tls_conn(tp, certs, alpn=None)
        with c:
            c.startup(user="app", database="appdb")
    with pytest.raises((ssl.SSLError, OSError)):
        _direct_tls_conn(tp, certs, alpn=("http/1.1",))
    assert wait_until(lambda: "ALPN" in tp.log(), 5), tp.log()[-2000:]
    with tp.connect(sslmode="require") as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_show_clients_tls_column(tidepool, certs):
    tp = tidepool(admin_users="admin", **client_tls(certs, mode="prefer"))
    with tp.connect(sslmode="require") as tls_conn, tp.connect(sslmode="disable") as plain:
        tls_pid = tls_conn.execute("select 1").fetchone()
        plain.execute("select 1")
        with tp.connect(dbname="pgbouncer", user="admin", sslmode="disable") as adm:
            rows = [r for r in show(adm, "CLIENTS") if r["database"] == "appdb"]
    tls_values = sorted(r["tls"] for r in rows)
    assert len(rows) == 2, rows
    assert tls_values[0] == ""
    proto, cipher = tls_values[1].split("/")[:2]
    assert proto in ("TLSv1.2", "TLSv1.3") and cipher, tls_values
    assert tls_pid == (1,)


# ----------------------------------------------------------- auth_type cert

def _cert_dsn_kw(certs, name):
    return {"sslmode": "verify-full", "sslrootcert": certs.path("ca.crt"),
            "sslcert": certs.path(name + ".crt"), "sslkey": certs.path(name + ".key")}


def test_auth_type_cert(tidepool, certs):
    tp = tidepool(auth_type="cert", **client_tls(certs, mode="verify-full",
                                                 client_tls_ca_file=certs.path("ca.crt")))
    with tp.connect(**_cert_dsn_kw(certs, "client_app")) as conn:
        assert conn.execute("select current_user").fetchone() == ("app",)
    # a certificate for someone else
    with pytest.raises(psycopg.OperationalError) as ei:
        tp.connect(user="app", **_cert_dsn_kw(certs, "client_intruder"))
    assert 'certificate authentication failed for user "app"' in str(ei.value)
    # no certificate: verify-full demands one in the handshake
    with pytest.raises(psycopg.OperationalError):
        tp.connect(sslmode="require")
    # a certificate from another CA
    with pytest.raises(psycopg.OperationalError):
        tp.connect(**_cert_dsn_kw(certs, "client_foreign"))
    with tp.connect(**_cert_dsn_kw(certs, "client_app")) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_auth_type_cert_without_a_certificate_gets_a_clear_error(tidepool, certs):
    tp = tidepool(auth_type="cert", **client_tls(certs, mode="require",
                                                 client_tls_ca_file=certs.path("ca.crt")))
    with pytest.raises(psycopg.OperationalError) as ei:
        tp.connect(sslmode="require")
    assert "valid client certificate" in str(ei.value)
    with tp.connect(sslmode="require", sslcert=certs.path("client_app.crt"),
                    sslkey=certs.path("client_app.key")) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_hba_hostssl_hostnossl_and_cert_lines(tidepool, certs, tmp_path):
    """auth_type = hba sees whether the connection is encrypted: hostssl
    lines match TLS clients only, hostnossl plaintext ones only, and a
    cert line checks the client certificate."""
    hba = tmp_path / "hba.conf"
    hba.write_text("hostssl appdb all 127.0.0.1/32 cert\n"
                   "hostssl postgres all 127.0.0.1/32 trust\n"
                   "hostnossl all all 127.0.0.1/32 reject\n")
    tp = tidepool(auth_type="hba", auth_hba_file=str(hba), auth_file={"app": "app_pw"},
                  **client_tls(certs, mode="prefer", client_tls_ca_file=certs.path("ca.crt")))
    with tp.connect(dbname="postgres", sslmode="require") as conn:
        assert conn.execute("select 'hostssl'").fetchone() == ("hostssl",)
    with pytest.raises(psycopg.OperationalError) as ei:
        tp.connect(dbname="postgres", sslmode="disable")
    assert "rejects connection" in str(ei.value) and "no encryption" in str(ei.value)
    with tp.connect(sslmode="require", sslcert=certs.path("client_app.crt"),
                    sslkey=certs.path("client_app.key")) as conn:
        assert conn.execute("select current_user").fetchone() == ("app",)
    with pytest.raises(psycopg.OperationalError) as ei:
        tp.connect(sslmode="require")
    assert "valid client certificate" in str(ei.value)


# ------------------------------------------------------------ server side

def test_server_verify_full(tidepool, certs, pg_ssl):
    tp = tidepool(databases=ssl_databases(pg_ssl), admin_users="admin",
                  server_tls_sslmode="verify-full", server_tls_ca_file=certs.path("ca.crt"))
    with tp.connect() as conn:
        assert conn.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone() == (True,)
        with tp.connect(dbname="pgbouncer", user="admin") as adm:
            servers = [r for r in show(adm, "SERVERS") if r["database"] == "appdb"]
    assert servers and all(r["tls"].startswith("TLSv1.") for r in servers), servers
    assert "TLS" in tp.log()


def test_server_prefer_uses_tls_when_offered_and_plain_otherwise(tidepool, pg, pg_ssl):
    tp = tidepool(databases={"ssl": "host=127.0.0.1 port=%d dbname=appdb" % pg_ssl.port,
                             "plain": "host=127.0.0.1 port=%d dbname=appdb" % pg.port})
    q = "select coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false)"
    with tp.connect(dbname="ssl") as conn:
        assert conn.execute(q).fetchone() == (True,)
    with tp.connect(dbname="plain") as conn:
        assert conn.execute(q).fetchone() == (False,)


def test_server_disable_stays_plain(tidepool, pg_ssl):
    tp = tidepool(databases=ssl_databases(pg_ssl), server_tls_sslmode="disable")
    with tp.connect() as conn:
        assert conn.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone() == (False,)


def test_server_require_against_a_plain_server_fails_clearly(tidepool, pg):
    # the client waits for a retry (issue 16, as PgBouncer), then gets the
    # last error at query_wait_timeout
    tp = tidepool(server_tls_sslmode="require", query_wait_timeout=2)
    with pytest.raises(psycopg.OperationalError) as ei:
        tp.connect()
    assert "server does not support SSL" in str(ei.value)
    assert tp.alive()


def test_server_verify_full_with_the_wrong_ca_fails_clearly(tidepool, certs, pg_ssl):
    tp = tidepool(databases=ssl_databases(pg_ssl), server_tls_sslmode="verify-full",
                  server_tls_ca_file=certs.path("otherca.crt"), query_wait_timeout=2)
    with pytest.raises(psycopg.OperationalError) as ei:
        tp.connect()
    assert "certificate verify failed" in str(ei.value)
    # and a host name that is not in the certificate
    tp2 = tidepool(databases={"appdb": "host=127.0.0.2 port=%d dbname=appdb" % pg_ssl.port},
                   server_tls_sslmode="verify-full", server_tls_ca_file=certs.path("ca.crt"),
                   query_wait_timeout=2)
    with pytest.raises(psycopg.OperationalError) as ei:
        tp2.connect()
    assert "certificate" in str(ei.value) or "could not connect" in str(ei.value)


def test_server_client_certificate(tidepool, certs, pg_ssl):
    """server_tls_cert_file/key_file: the certificate tidepool shows to
    PostgreSQL (pg_stat_ssl.client_dn)."""
    tp = tidepool(databases=ssl_databases(pg_ssl), server_tls_sslmode="verify-ca",
                  server_tls_ca_file=certs.path("ca.crt"),
                  server_tls_cert_file=certs.path("client_app.crt"),
                  server_tls_key_file=certs.path("client_app.key"))
    with tp.connect() as conn:
        dn = conn.execute("select client_dn from pg_stat_ssl where pid = pg_backend_pid()").fetchone()[0]
    assert dn == "/CN=app"


@pytest.mark.hard_timeout(300)
def test_pgbench_through_tls_on_both_sides(tidepool, certs, pg_ssl):
    pgbench = pg_bin("pgbench")
    init = subprocess.run([pgbench, "-i", "-s", "1", "-q", "-h", pg_ssl.host, "-p", str(pg_ssl.port),
                           "-U", "app", "appdb"], env=clean_env(), capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert init.returncode == 0, init.stderr
    tp = tidepool(pool_mode="transaction", databases=ssl_databases(pg_ssl), default_pool_size=4,
                  server_tls_sslmode="verify-full", server_tls_ca_file=certs.path("ca.crt"),
                  admin_users="admin", **client_tls(certs))
    # prepared: tidepool's own Parse messages go into the TLS stream too
    # (one pgbench thread per client: see test_prepared.py on pgbench 15)
    for mode, clients, threads in (("extended", 12, 2), ("prepared", 6, 6)):
        r = subprocess.run([pgbench, "-h", tp.host, "-p", str(tp.port), "-U", "app", "-c", str(clients),
                            "-j", str(threads), "-t", "60", "-M", mode, "appdb"],
                           env=clean_env(PGSSLMODE="require"), capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stdout + r.stderr
        done = clients * 60
        assert "number of transactions actually processed: %d/%d" % (done, done) in r.stdout, r.stdout
        assert "number of failed transactions: 0" in r.stdout or "failed" not in r.stdout, r.stdout
    with tp.connect(dbname="pgbouncer", user="admin", sslmode="require") as adm:
        servers = [s for s in show(adm, "SERVERS") if s["database"] == "appdb"]
    assert servers and all(s["tls"] for s in servers)
    ssl_backends = pg_ssl.sql("select count(*) from pg_stat_ssl s join pg_stat_activity a using (pid) "
                              "where a.datname = 'appdb' and s.ssl")
    assert ssl_backends[0][0] >= len(servers)


@pytest.mark.hard_timeout(300)
def test_large_transfers_through_tls_on_both_sides(tidepool, certs, pg_ssl):
    """Records bigger than the pooler's buffers, partial TLS writes and
    backpressure: 10 MB COPY in and out, 1 MB rows and queries, with a
    second client working alongside."""
    tp = tidepool(pool_mode="transaction", databases=ssl_databases(pg_ssl), default_pool_size=2,
                  server_tls_sslmode="require", **client_tls(certs))
    pg_ssl.sql("DROP TABLE IF EXISTS tls_copy; CREATE TABLE tls_copy (id int, payload text); "
               "ALTER TABLE tls_copy OWNER TO app", dbname="appdb")
    rows = 100_000
    data = "".join("%d\t%s\n" % (i, (str(i) * 30)[:100]) for i in range(rows)).encode()
    stop = []

    def bystander():
        n = 0
        with tp.connect(sslmode="require") as c:
            while not stop:
                assert c.execute("select %s::int", (n,)).fetchone()[0] == n
                n += 1
        return n

    side = Background(bystander)
    with tp.connect(sslmode="require") as c:
        with c.cursor().copy("COPY tls_copy FROM STDIN") as cp:
            for off in range(0, len(data), 65536):
                cp.write(data[off:off + 65536])
        assert c.execute("select count(*) from tls_copy").fetchone()[0] == rows
        out = bytearray()
        with c.cursor().copy("COPY (SELECT * FROM tls_copy ORDER BY id) TO STDOUT") as cp:
            for chunk in cp:
                out += chunk
        big = "q" * (1 << 20)
        for _ in range(3):
            assert c.execute("select length(%s::text)", (big,)).fetchone()[0] == 1 << 20
            assert c.execute("select repeat('r', 1 << 20)").fetchone()[0] == "r" * (1 << 20)
    stop.append(True)
    assert side.result(60) > 0
    assert hashlib.sha256(bytes(out)).hexdigest() == hashlib.sha256(data).hexdigest()


def test_cancel_with_tls_on_both_sides(tidepool, certs, pg_ssl):
    """libpq sends its CancelRequest unencrypted (before 17) even with
    sslmode=require: accepted under client_tls_sslmode = require, and
    forwarded to the TLS backend as PostgreSQL accepts it, in plaintext."""
    tp = tidepool(pool_mode="transaction", databases=ssl_databases(pg_ssl),
                  server_tls_sslmode="verify-full", server_tls_ca_file=certs.path("ca.crt"),
                  **client_tls(certs))
    a = tp.connect(sslmode="require")
    ta = Background(a.execute, "select pg_sleep(30)")
    assert wait_until(lambda: any("pg_sleep(30)" in (r[3] or "") and r[2] == "active"
                                  for r in pg_ssl.backends()), timeout=10)
    a.cancel()
    err = ta.exception(15)
    assert isinstance(err, psycopg.errors.QueryCanceled), repr(err)
    assert a.execute("select 'usable'").fetchone() == ("usable",)
    a.close()


def test_ssl_request_on_the_unix_socket_is_answered_N(tidepool, certs):
    tp = tidepool(**client_tls(certs))
    with pgraw.RawConn(tp.unix_socket_path()) as c:
        c.send(pgraw.ssl_request())
        assert c.read_byte() == b"N"
        c.startup(user="app", database="appdb")
        rows, err, status = c.query("select 'unix'")
        assert err is None and rows == [["unix"]]


# ------------------------------------------------------------ reload, config

def _peer_serial(tp, certs):
    ctx = ssl.create_default_context(cafile=certs.path("ca.crt"))
    with tp.raw() as c:
        c.send(pgraw.ssl_request())
        assert c.read_byte() == b"S"
        s = ctx.wrap_socket(c.sock, server_hostname="localhost")
        serial = s.getpeercert()["serialNumber"]
        s.close()
    return int(serial, 16)


def test_reload_rereads_certificates_and_a_broken_key_keeps_the_old(tidepool, certs, tmp_path):
    key, crt = str(tmp_path / "live.key"), str(tmp_path / "live.crt")
    shutil.copy(certs.path("server.key"), key)
    shutil.copy(certs.path("server.crt"), crt)
    tp = tidepool(**client_tls(certs, client_tls_key_file=key, client_tls_cert_file=crt))
    assert _peer_serial(tp, certs) == 1001
    live = tp.connect(sslmode="require")
    # new files: new connections get the new certificate, the live one goes on
    shutil.copy(certs.path("server2.key"), key)
    shutil.copy(certs.path("server2.crt"), crt)
    tp.reload()
    assert wait_until(lambda: _peer_serial(tp, certs) == 2002, 5)
    assert live.execute("select 'kept'").fetchone() == ("kept",)
    # a broken key: the reload says why and the previous context keeps serving
    with open(key, "w") as f:
        f.write("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    tp.reload()
    assert wait_until(lambda: "reload failed, nothing applied" in tp.log(), 5), tp.log()[-2000:]
    assert _peer_serial(tp, certs) == 2002
    with tp.connect(sslmode="require") as conn:
        assert conn.execute("select 'after bad reload'").fetchone() == ("after bad reload",)
    assert live.execute("select 'still kept'").fetchone() == ("still kept",)
    live.close()


def _check(path):
    r = subprocess.run([tidepool_bin(), "--check", path], capture_output=True, text=True, timeout=30)
    assert "Sanitizer" not in r.stderr, r.stderr
    return r


def test_bad_tls_files_are_refused_at_start_and_by_check(tidepool, certs, tmp_path):
    tp = tidepool(start=False, **client_tls(certs, client_tls_key_file=str(tmp_path / "missing.key")))
    r = _check(tp.config_path)
    assert r.returncode == 1 and "client_tls_key_file" in r.stderr, r.stderr
    p = subprocess.run([tidepool_bin(), tp.config_path], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "client_tls_key_file" in p.stderr, p.stderr
    assert "Sanitizer" not in p.stderr, p.stderr
    tp2 = tidepool(start=False, client_tls_sslmode="require")
    r = _check(tp2.config_path)
    assert r.returncode == 1 and "client_tls_key_file" in r.stderr, r.stderr
    tp3 = tidepool(start=False, **client_tls(certs, client_tls_protocols="tlsv9"))
    r = _check(tp3.config_path)
    assert r.returncode == 1 and "tlsv9" in r.stderr, r.stderr
    tp4 = tidepool(start=False, auth_type="cert")
    r = _check(tp4.config_path)
    assert r.returncode == 1 and "auth_type = cert" in r.stderr, r.stderr
    tp5 = tidepool(start=False, server_tls_sslmode="verify-full",
                   server_tls_ca_file=str(tmp_path / "no-ca.crt"))
    r = _check(tp5.config_path)
    assert r.returncode == 1 and "server_tls_ca_file" in r.stderr, r.stderr
    tp6 = tidepool(start=False, **client_tls(certs, client_tls_key_file=certs.path("client_app.key")))
    r = _check(tp6.config_path)
    assert r.returncode == 1 and ("mismatch" in r.stderr or "does not match" in r.stderr), r.stderr
    assert _check(tidepool(start=False, **client_tls(certs)).config_path).returncode == 0


def _tls_session(tp, certs, **opts):
    """(protocol, cipher) of a TLS session through SSLRequest, Python's ssl
    as the client (libpq 15 does not report them through psycopg)."""
    ctx = ssl.create_default_context(cafile=certs.path("ca.crt"))
    if "max_version" in opts:
        ctx.maximum_version = opts["max_version"]
    with tp.raw() as c:
        c.send(pgraw.ssl_request())
        assert c.read_byte() == b"S"
        c.sock = ctx.wrap_socket(c.sock, server_hostname="localhost")
        c.startup(user="app", database="appdb")
        rows, err, status = c.query("select 'ok'")
        assert err is None and rows == [["ok"]]
        return c.sock.version(), c.sock.cipher()[0]


def test_protocols_and_ciphers(tidepool, certs):
    tp = tidepool(**client_tls(certs, client_tls_protocols="tlsv1.3"))
    assert _tls_session(tp, certs)[0] == "TLSv1.3"
    with pytest.raises(ssl.SSLError):
        _tls_session(tp, certs, max_version=ssl.TLSVersion.TLSv1_2)
    tp2 = tidepool(**client_tls(certs, client_tls_protocols="tlsv1.2",
                                client_tls_ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"))
    assert _tls_session(tp2, certs) == ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256")
    tp3 = tidepool(**client_tls(certs, client_tls13_ciphers="TLS_CHACHA20_POLY1305_SHA256"))
    assert _tls_session(tp3, certs) == ("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256")
    with tp3.connect(sslmode="require") as conn:
        assert conn.execute("select 1").fetchone() == (1,)
