"""Issue 22: a PostgreSQL server that misbehaves during login. A fake
server (a thread, not PostgreSQL) answers tidepool's startup packet with
scripted bytes; tidepool must fail the login with an ErrorResponse carrying
a SQLSTATE, stay up, and (under the ASan build) not leak. The cases are the
ones fuzz_backend found or PgBouncer shipped CVEs for."""

import socket
import struct
import threading
import time

import psycopg
import pytest

import pgraw
from conftest import free_port, wait_until


def msg(typ, body=b""):
    return typ + struct.pack("!I", len(body) + 4) + body


def auth(code, data=b""):
    return msg(b"R", struct.pack("!I", code) + data)


class FakePg:
    """Accepts connections; to each startup packet replies with script and
    records every message tidepool sends afterwards."""

    def __init__(self, script):
        self.script = script
        self.port = free_port()
        self.received = []          # (type byte, body) after the startup packet
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        conn.settimeout(5)
        try:
            while True:
                n = struct.unpack("!I", self._recv(conn, 4))[0]
                code = struct.unpack("!I", self._recv(conn, n - 4)[:4])[0]
                if code != pgraw.SSL_REQUEST_CODE:
                    break
                conn.sendall(b"N")
            conn.sendall(self.script)
            while True:
                typ = self._recv(conn, 1)
                n = struct.unpack("!I", self._recv(conn, 4))[0]
                self.received.append((typ, self._recv(conn, n - 4)))
        except (OSError, EOFError):
            pass
        finally:
            conn.close()

    @staticmethod
    def _recv(conn, n):
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def close(self):
        self.stopping = True
        self.sock.close()


@pytest.fixture
def fake_pg():
    made = []

    def make(script):
        f = FakePg(script)
        made.append(f)
        return f
    yield make
    for f in made:
        f.close()


def login_error(tp, fake):
    """Logs in through tidepool to the fake server; returns the error fields."""
    with pgraw.RawConn(tp.host, tp.port) as c:
        c.send(pgraw.startup_message(user="app", database="fake"))
        while True:
            typ, body = c.read_message()
            if typ == "E":
                return pgraw.parse_error(body)
            assert typ != "Z", "login succeeded against a hostile server"


def start(tidepool, fake, **kw):
    return tidepool(databases={"fake": "host=127.0.0.1 port=%d dbname=x user=u password=secret" % fake.port},
                    server_login_retry=0, **kw)


def assert_still_serves(tp, fake_pg):
    ok = fake_pg(auth(0) + msg(b"K", struct.pack("!II", 1, 2)) + msg(b"Z", b"I"))
    tp.write_config(databases={"fake": "host=127.0.0.1 port=%d dbname=x" % ok.port})
    tp.reload()
    with pgraw.RawConn(tp.host, tp.port) as c:
        c.send(pgraw.startup_message(user="app", database="fake"))
        c.finish_startup()
    assert tp.alive()


def test_sasl_requested_twice_fails_login(tidepool, fake_pg):
    # found by fuzz_backend: the second request leaked the first exchange
    sasl = auth(10, b"SCRAM-SHA-256\0\0")
    fake = fake_pg(sasl + sasl)
    tp = start(tidepool, fake)
    err = login_error(tp, fake)
    assert err.get("C") and err["C"] != "00000"
    # the fake server's thread records what it got a moment after the error
    wait_until(lambda: any(t == b"p" for t, b in fake.received), timeout=5)
    time.sleep(0.2)
    initial = [b for t, b in fake.received if t == b"p"]
    assert len(initial) == 1, "tidepool answered the second SASL request"
    assert_still_serves(tp, fake_pg)


def test_error_without_sqlstate_during_login(tidepool, fake_pg):
    # PgBouncer CVE-2025-12819's neighbour: an ErrorResponse with no 'C' field
    fake = fake_pg(msg(b"E", b"SFATAL\0Mno code here\0\0"))
    tp = start(tidepool, fake)
    err = login_error(tp, fake)
    assert len(err.get("C", "")) == 5
    assert_still_serves(tp, fake_pg)


def test_long_server_nonce(tidepool, fake_pg):
    # a 64 KB nonce in server-first-message (PgBouncer: a stack overflow)
    first = b"r=" + b"A" * 65536 + b",s=AQIDBAUGBwgJCgsMDQ4PEA==,i=4096"
    fake = fake_pg(auth(10, b"SCRAM-SHA-256\0\0") + auth(11, first))
    tp = start(tidepool, fake)
    err = login_error(tp, fake)
    assert len(err.get("C", "")) == 5
    assert_still_serves(tp, fake_pg)


def test_error_message_with_format_directives(tidepool, fake_pg):
    # the pool keeps a failed login's message and repeats it to waiting clients
    fake = fake_pg(msg(b"E", b"SFATAL\0C28P01\0Mpassword %s%s%s%n%n for %x\0\0"))
    tp = start(tidepool, fake)
    for _ in range(3):
        err = login_error(tp, fake)
        assert "%s%s%s%n%n" in err.get("M", "")
    assert_still_serves(tp, fake_pg)
