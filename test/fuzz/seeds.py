#!/usr/bin/env python3
"""Writes the hand-made seeds of the pure fuzz targets into corpus/<target>/
(file names seed-*). The stream targets' seeds are recorded from real
traffic by record_seeds.py. Run from anywhere; rerunning rewrites the same
files."""

import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def startup(code=196608, **kw):
    body = struct.pack("!I", code)
    if kw:
        body += b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in kw.items()) + b"\0"
    return struct.pack("!I", len(body) + 4) + body


def msg(t, body=b""):
    return t + struct.pack("!I", len(body) + 4) + body


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def main():
    pg_verifier = (b"SCRAM-SHA-256$4096:AQIDBAUGBwgJCgsMDQ4PEA==$Omnc1J8soxq9hMS72937FBsk6WSbL+EM9NOvPqdOrCQ="
                   b":FbOXl00ZM48sATOaJLS//Nu+vwLfHhHmnrb6lRkDF0w=")
    # frontend: chunking byte, then what a client sends
    login = startup(user="alice", database="db", application_name="fuzz")
    q = lambda sql: msg(b"Q", sql + b"\0")
    write("frontend", "simple", b"\xff" + login + q(b"select 1") + msg(b"X"))
    write("frontend", "simple-split", b"\x00" + login + q(b"begin") + q(b"select 1") + q(b"commit") + msg(b"X"))
    ext = (msg(b"P", b"s1\0select $1::int\0\0\x01\0\0\0\x17") +
           msg(b"B", b"\0s1\0\0\0\0\x01\0\0\0\x017\0\0") + msg(b"D", b"P\0") +
           msg(b"E", b"\0\0\0\0\0") + msg(b"C", b"Ss1\0") + msg(b"S"))
    write("frontend", "extended", b"\xff" + login + ext + q(b"DEALLOCATE ALL") + msg(b"X"))
    write("frontend", "session", b"\x10" + startup(user="alice", database="sess") + q(b"LISTEN x") + ext)
    write("frontend", "ssl", b"\xff" + startup(80877103) + login + q(b"select 1"))
    write("frontend", "gssenc", b"\xff" + startup(80877104) + login)
    write("frontend", "cancel", b"\xff" + struct.pack("!III", 16, 80877102, 4242) + struct.pack("!I", 1234))
    write("frontend", "copy", b"\xff" + login + q(b"copy t from stdin") + msg(b"d", b"1\n") + msg(b"c") +
          msg(b"f", b"oops\0") + msg(b"F", b"\0\0\0\x01\0\0\0\0\0\0") + msg(b"H"))
    write("frontend", "lying-length", b"\xff" + login + b"Q\x7f\xff\xff\xffselect")
    write("frontend", "pinning", b"\xff" + login + q(b"select pg_advisory_lock(1)") + q(b"PREPARE p AS select 1") +
          q(b"select 1; DISCARD ALL"))
    # backend: database byte, then what a server sends after the startup packet
    ok = (msg(b"R", struct.pack("!I", 0)) + msg(b"S", b"server_version\x0016.0\0") +
          msg(b"S", b"client_encoding\0UTF8\0") + msg(b"K", struct.pack("!II", 77, 88)) + msg(b"Z", b"I"))
    sel = (msg(b"T", b"\0\x01?column?\0\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0") +
           msg(b"D", b"\0\x01\0\0\0\x011") + msg(b"C", b"SELECT 1\0") + msg(b"Z", b"I"))
    extr = (msg(b"1") + msg(b"2") + msg(b"T", b"\0\0") + msg(b"D", b"\0\x01\0\0\0\x017") +
            msg(b"C", b"SELECT 1\0") + msg(b"Z", b"I"))
    txn = (msg(b"C", b"BEGIN\0") + msg(b"Z", b"T") + msg(b"C", b"INSERT 0 1\0") + msg(b"Z", b"T") +
           msg(b"C", b"COMMIT\0") + msg(b"Z", b"I"))
    err = msg(b"E", b"SERROR\0C42P01\0Mrelation \"t\" does not exist\0\0") + msg(b"Z", b"E")
    write("backend", "trust", b"\0" + ok + sel + extr + txn)
    write("backend", "md5", b"\x01" + msg(b"R", struct.pack("!I", 5) + b"\x01\x02\x03\x04") + ok + sel)
    write("backend", "cleartext", b"\x01" + msg(b"R", struct.pack("!I", 3)) + ok + sel + extr)
    write("backend", "sasl", b"\x01" + msg(b"R", struct.pack("!I", 10) + b"SCRAM-SHA-256\0\0") +
          msg(b"R", struct.pack("!I", 11) + b"r=abc,s=AQIDBAUGBwgJCgsMDQ4PEA==,i=16") + ok)
    write("backend", "errors", b"\x02" + ok + err + msg(b"N", b"SWARNING\0C01000\0Mhm\0\0") +
          msg(b"A", b"\0\0\0\x01chan\0payload\0") + sel)
    write("backend", "no-sqlstate", b"\0" + ok + msg(b"E", b"SERROR\0Mno code\0\0") + msg(b"Z", b"I"))
    write("backend", "login-error", b"\0" + msg(b"E", b"SFATAL\0C28P01\0Mpassword %s%n failed\0\0"))

    # scram: 0 client role, 1 server role, 2 secret, 3 md5
    write("scram", "client", b"\0r=fuzzclientnonceSERVERPART,s=AQIDBAUGBwgJCgsMDQ4PEA==,i=16\0"
          b"v=Omnc1J8soxq9hMS72937FBsk6WSbL+EM9NOvPqdOrCQ=")
    write("scram", "client-error", b"\0r=fuzzclientnonceX,s=AQID,i=16\0e=invalid-proof")
    write("scram", "server", b"\x01n,,n=,r=abcdefghijklmnop\0c=biws,r=abcdefghijklmnopXYZ,"
          b"p=Omnc1J8soxq9hMS72937FBsk6WSbL+EM9NOvPqdOrCQ=")
    write("scram", "server-cbind", b"\x01p=tls-server-end-point,,n=,r=abc\0")
    write("scram", "server-ext", b"\x01y,a=alice,n=alice,r=abc,ext=1\0c=eSws,r=abcXYZ,x=1,p=AAAA")
    write("scram", "secret", b"\x02" + pg_verifier)
    write("scram", "md5", b"\x03md5" + b"0" * 32 + b"\0md5" + b"1" * 32)
    # proto: 0 startup, 1 header/error fields, 2 DataRow, 3 reader/quote
    write("proto", "startup", b"\0" + startup(user="alice", database="db", options="-c a=b")[4:])
    write("proto", "ssl", b"\0" + struct.pack("!I", 80877103))
    write("proto", "gssenc", b"\0" + struct.pack("!I", 80877104))
    write("proto", "cancel", b"\0" + struct.pack("!III", 80877102, 4242, 1234))
    write("proto", "error", b"\x01SERROR\0C42P01\0Mrelation does not exist\0\0")
    write("proto", "datarow", b"\x02" + struct.pack("!H", 3) + struct.pack("!i", 1) + b"7"
          + struct.pack("!i", -1) + struct.pack("!i", 3) + b"abc")
    write("proto", "quote", b"\x03it's a \\ backslash")
    # pstmt: op byte, low 3 bits the operation, the rest the name
    write("pstmt", "ops", bytes([0, 3, 2, 0x08, 5, 0x0a, 4, 5, 6, 0x11, 9, 0x13, 5]))
    write("pstmt", "sql", bytes([0x08, 1, 0x0a, 7]) + b"DEALLOCATE s1\0" + bytes([7]) + b"deallocate all\0")
    # sql
    for i, q in enumerate([b"DEALLOCATE PREPARE \"S_1\";", b"deallocate all", b"DISCARD ALL",
                           b"LISTEN chan", b"select pg_advisory_lock(1)", b"CREATE TEMP TABLE x (a int)",
                           b"PREPARE p AS select 1", b"DECLARE c CURSOR WITH HOLD FOR select 1",
                           b"/* c /* nested */ */ -- line\n deallocate \"a\"\"b\";",
                           b"select 1; DEALLOCATE ALL; select 2", b"U&\"d\\0061t\" x",
                           b"SET search_path TO a, 'b'; RESET ALL; SET LOCAL x = 1",
                           b"select set_config('work_mem', $$64MB$$, false); SET ROLE NONE",
                           b"SET SESSION AUTHORIZATION DEFAULT; SET TIME ZONE 'UTC'; SET NAMES 'UTF8'"]):
        write("sql", "q%d" % i, q)
    # conninfo
    for i, s in enumerate([b"host=127.0.0.1 port=5432 dbname=appdb",
                           b"user='it''s' password='a\\'b\\\\c' application_name = x",
                           b"host=/tmp port=5999 pool_size=20 pool_mode=transaction",
                           b"dbname='unterminated", b"=novalue", b"key"]):
        write("conninfo", "c%d" % i, s)
    # hba
    write("hba", "rules", b"# comment\nlocal all all trust\n"
          b"host all all 127.0.0.1/32 md5\n"
          b"hostssl appdb alice,bob 10.0.0.0/8 scram-sha-256\n"
          b"hostnossl \"db\" +group ::1/128 password\n"
          b"host all all 192.168.0.1 255.255.255.0 reject\n"
          b"host sameuser all all cert\n"
          b"host @dbs.txt all samenet peer\n")
    # config: tidepool.ini NUL a.ini NUL b.ini NUL users.txt
    with open(os.path.join(ROOT, "etc", "tidepool.ini"), "rb") as f:
        ini = f.read()
    write("config", "etc-tidepool-ini", ini.replace(b"\0", b"") + b"\0\0\0")
    write("config", "include", b"[pgbouncer]\nlisten_port = 6432\nauth_file = users.txt\n%include a.ini\n"
          b"[databases]\n* = host=localhost\n\0"
          b"[databases]\nappdb = host=127.0.0.1 port=5432 dbname=appdb pool_size=5\n%include b.ini\n\0"
          b"[users]\nalice = pool_mode=session max_user_connections=3\n"
          b"[peers]\n1 = host=/tmp port=6433\n\0"
          b"\"alice\" \"md5" + b"a" * 32 + b"\"\n\"bob\" \"" + pg_verifier + b"\"\n")
    write("config", "loop", b"%include a.ini\n\0%include tidepool.ini\n\0\0")
    write("config", "hba", b"[pgbouncer]\nauth_type = hba\nauth_hba_file = b.ini\n\0\0"
          b"local all all trust\nhost all all 0.0.0.0/0 md5\n\0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
