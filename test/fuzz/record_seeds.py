#!/usr/bin/env python3
"""Records the stream targets' seeds from real traffic (corpus/*/rec-*).

Starts a throwaway PostgreSQL and a tidepool (the integration fixtures'
classes), puts the fault proxy of test/integration in recording mode on
both sides of tidepool, and runs real clients: psycopg (simple, extended,
pipeline, COPY, errors, prepared statements), psql, and the fixed client
script of fuzz_backend. Keeps:

  corpus/frontend/rec-*  what a client sent to tidepool, with its startup
                         packet's database renamed to the fuzz world's "db"
  corpus/backend/rec-*   what PostgreSQL sent to tidepool for the fixed
                         script (trust, and a server login with md5)

Run as root or as a user that can run initdb (like the integration tests):
    /usr/bin/python3 test/fuzz/record_seeds.py
"""

import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import psycopg  # noqa: E402

import pgraw  # noqa: E402
from conftest import PgServer, Tidepool, pg_bin, clean_env, wait_until  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402


def startup_packets(stream):
    """Splits off the leading startup-phase packets (SSLRequest ...)."""
    out, pos = [], 0
    while pos + 8 <= len(stream):
        n, code = struct.unpack("!II", stream[pos:pos + 8])
        out.append((pos, n, code))
        pos += n
        if code not in (pgraw.SSL_REQUEST_CODE, pgraw.GSSENC_REQUEST_CODE):
            break
    return out, pos


def rename_db(stream):
    """The client's stream with database=appdb in its startup packet
    turned into the fuzz world's "db" (lengths fixed)."""
    stream = bytes(stream)
    pkts, end = startup_packets(stream)
    if not pkts:
        return stream
    pos, n, code = pkts[-1]
    body = stream[pos + 8:pos + n].replace(b"database\0appdb\0", b"database\0db\0")
    body = body.replace(b"user\0md5_user\0", b"user\0alice\0")
    return stream[:pos] + struct.pack("!II", len(body) + 8, code) + body + stream[end:]


def backend_script(db):
    """fuzz_backend.c's fixed client, byte for byte but for the database."""
    m = pgraw.message
    out = pgraw.startup_message(user="app", database=db, application_name="fuzz")
    out += pgraw.query_message("select 1")
    out += m("P", b"s1\0select $1::int\0\0\0")
    out += m("B", b"\0s1\0\0\0\0\x01\0\0\0\x017\0\0")
    out += m("D", b"P\0")
    out += pgraw.execute_message()
    out += pgraw.sync_message()
    for q in ("begin", "insert into t values (1)", "commit"):
        out += pgraw.query_message(q)
    return out


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "rec-" + name), "wb") as f:
        f.write(data)


def client_traffic(tp, port):
    dsn = tp.dsn().replace("port=%d" % tp.port, "port=%d" % port)
    sessions = {}
    with psycopg.connect(dsn + " sslmode=disable", autocommit=True) as c:
        c.execute("select 1, 'a'::text, now()")
        c.execute("select %s::int + %s", (1, 2))
        try:
            c.execute("select 1/0")
        except psycopg.Error:
            pass
    sessions["psycopg-simple-extended"] = None
    with psycopg.connect(dsn, prepare_threshold=0) as c:      # SSLRequest first
        for i in range(3):
            c.execute("select %s::int", (i,))
        c.commit()
    sessions["psycopg-prepared"] = None
    with psycopg.connect(dsn + " sslmode=disable", autocommit=True) as c:
        with c.pipeline():
            for i in range(4):
                c.execute("select %s::text", (str(i),))
        with c.cursor() as cur:
            with cur.copy("copy t from stdin") as cp:
                cp.write_row((5,))
            with cur.copy("copy (select 1) to stdout") as cp:
                for _ in cp:
                    pass
        c.execute("listen chan")
        c.execute("deallocate all")
    sessions["psycopg-pipeline-copy"] = None
    subprocess.run([pg_bin("psql"), "-X", "-h", "127.0.0.1", "-p", str(port), "-U", "app", "-d", "appdb",
                    "-c", "select 1; begin; select 2; commit", "-c", "\\copy (select 1) to /dev/null"],
                   env=clean_env(PGSSLMODE="disable"), capture_output=True, timeout=30)
    sessions["psql"] = None
    return list(sessions)


def main():
    pg = PgServer().init()
    try:
        pg.sql("create table t (a int)", dbname="appdb")
        pg.sql("grant all on t to app", dbname="appdb")
        work = tempfile.mkdtemp(prefix="tidepool-seeds-")
        server_px = FaultProxy(pg.port, record=True)
        tp = Tidepool(pg, work, pool_mode="transaction", max_prepared_statements=10,
                      databases={"appdb": "host=127.0.0.1 port=%d dbname=appdb" % server_px.port,
                                 "pwdb": "host=127.0.0.1 port=%d dbname=appdb user=md5_user password=md5_pw"
                                 % server_px.port})
        tp.start()
        try:
            client_px = FaultProxy(tp.port, record=True)
            names = client_traffic(tp, client_px.port)
            wait_until(lambda: len(client_px.recordings) >= len(names))
            for i, rec in enumerate(client_px.recordings):
                write("frontend", "%d-%s" % (i, names[i] if i < len(names) else "x"),
                      b"\xff" + rename_db(rec["up"]))
            # the fixed script of fuzz_backend, trust and md5 server logins
            for prefix, db in ((0, "appdb"), (1, "pwdb")):
                before = len(server_px.recordings)
                server_px.reset_all()
                with pgraw.RawConn(tp.host, tp.port, timeout=2) as c:
                    c.send(backend_script(db))
                    for _ in range(30):
                        try:
                            c.read_message()
                        except Exception:
                            break
                wait_until(lambda: len(server_px.recordings) > before)
                rec = server_px.recordings[before]
                down = bytes(rec["down"])
                if down[:1] == b"N":      # tidepool's SSLRequest was refused
                    down = down[1:]
                write("backend", "%s" % ("trust" if prefix == 0 else "md5"), bytes([prefix]) + down)
        finally:
            tp.stop()
    finally:
        pg.cleanup()


if __name__ == "__main__":
    main()
