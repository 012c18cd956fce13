"""A tiny raw PostgreSQL wire-protocol client for tests that need to send
what no well-behaved driver would: malformed startup packets, SSL/GSSENC
requests, cancel requests, garbage after login.

Only the standard library is used. Every socket has a timeout, so a hung
pooler makes a test fail instead of hanging.

    c = RawConn(host, port)
    c.send(startup_message(user="app", database="appdb"))
    typ, body = c.read_message()          # ('R', b'\\0\\0\\0\\0') ...
    params = c.finish_startup()           # up to ReadyForQuery
    rows, err, status = c.query("select 1")
    fields = parse_error(body)            # {'S': 'FATAL', 'C': '08P01', 'M': ...}
"""

import hashlib
import socket
import struct
import time

PROTOCOL_3_0 = (3 << 16) | 0
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102


class Closed(Exception):
    """The peer closed the connection (EOF or reset)."""


class PgError(Exception):
    """An ErrorResponse arrived where it was not expected."""

    def __init__(self, fields):
        self.fields = fields
        self.sqlstate = fields.get("C")
        super().__init__("%s %s: %s" % (fields.get("S"), fields.get("C"), fields.get("M")))


# ---------------------------------------------------------------- builders

def startup_message(user="app", database="appdb", protocol=(3, 0), **params):
    """A StartupMessage; extra keyword arguments become startup parameters."""
    body = b""
    if user is not None:
        body += b"user\0" + user.encode() + b"\0"
    if database is not None:
        body += b"database\0" + database.encode() + b"\0"
    for k, v in params.items():
        body += k.encode() + b"\0" + str(v).encode() + b"\0"
    body += b"\0"
    code = (protocol[0] << 16) | protocol[1]
    return struct.pack("!ii", 8 + len(body), code) + body


def raw_startup_header(length, code=PROTOCOL_3_0):
    """Just a startup-packet header with an arbitrary declared length."""
    return struct.pack("!iI", length, code)


def ssl_request():
    return struct.pack("!ii", 8, SSL_REQUEST_CODE)


def gssenc_request():
    return struct.pack("!ii", 8, GSSENC_REQUEST_CODE)


def cancel_request(pid, key):
    return struct.pack("!iiII", 16, CANCEL_REQUEST_CODE, pid & 0xFFFFFFFF, key & 0xFFFFFFFF)


def message(typ, body=b""):
    """A frontend message: type byte, int32 length (self-inclusive), body."""
    if isinstance(typ, str):
        typ = typ.encode()
    return typ + struct.pack("!i", 4 + len(body)) + body


def message_header(typ, length):
    """Only the 5-byte header, with an arbitrary declared length."""
    if isinstance(typ, str):
        typ = typ.encode()
    return typ + struct.pack("!I", length & 0xFFFFFFFF)


def query_message(sql):
    return message("Q", sql.encode() + b"\0")


def terminate_message():
    return message("X")


def password_message(password):
    return message("p", password.encode() + b"\0")


def md5_password(user, password, salt):
    inner = hashlib.md5((password + user).encode()).hexdigest()
    return "md5" + hashlib.md5(inner.encode() + salt).hexdigest()


# ------------------------------------------------------- extended protocol

def parse_message(name, sql, types=()):
    body = name.encode() + b"\0" + sql.encode() + b"\0" + struct.pack("!h", len(types))
    body += b"".join(struct.pack("!I", t) for t in types)
    return message("P", body)


def bind_message(stmt, params=(), portal=""):
    """Bind with text parameters (None is NULL) and text results."""
    body = portal.encode() + b"\0" + stmt.encode() + b"\0" + struct.pack("!h", 0)
    body += struct.pack("!h", len(params))
    for p in params:
        if p is None:
            body += struct.pack("!i", -1)
        else:
            v = str(p).encode()
            body += struct.pack("!i", len(v)) + v
    body += struct.pack("!h", 0)
    return message("B", body)


def describe_message(kind, name):
    return message("D", kind.encode() + name.encode() + b"\0")


def execute_message(portal="", max_rows=0):
    return message("E", portal.encode() + b"\0" + struct.pack("!i", max_rows))


def close_message(kind, name):
    return message("C", kind.encode() + name.encode() + b"\0")


def sync_message():
    return message("S")


def flush_message():
    return message("H")


# ----------------------------------------------------------------- parsers

def parse_error(body):
    """ErrorResponse / NoticeResponse body -> {field code: value}."""
    fields = {}
    for part in body.split(b"\0"):
        if not part:
            continue
        fields[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return fields


def parse_cstrings(body):
    return [p.decode("utf-8", "replace") for p in body.split(b"\0")[:-1]]


def parse_data_row(body):
    (n,) = struct.unpack_from("!h", body, 0)
    pos, out = 2, []
    for _ in range(n):
        (ln,) = struct.unpack_from("!i", body, pos)
        pos += 4
        if ln < 0:
            out.append(None)
        else:
            out.append(body[pos:pos + ln].decode("utf-8", "replace"))
            pos += ln
    return out


# -------------------------------------------------------------- connection

class RawConn:
    """A blocking socket with a timeout and message framing helpers.

    addr is (host, port) for TCP, or a path for a unix socket."""

    def __init__(self, host, port=None, timeout=10.0):
        self.timeout = timeout
        if port is None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(host)
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.backend_key = None
        self.params = {}

    # -- plumbing
    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        """Send bytes; a peer that already closed raises Closed."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise Closed(str(e))

    def send_quietly(self, data):
        """Send, ignoring a peer that already hung up (we read its answer next)."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError as e:
            raise Closed(str(e))
        if not chunk:
            raise Closed("EOF")
        self.buf += chunk

    def recv_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_byte(self):
        return self.recv_exact(1)

    def read_message(self):
        """-> (type as a 1-char str, body bytes). Raises Closed on EOF."""
        hdr = self.recv_exact(5)
        typ = chr(hdr[0])
        (ln,) = struct.unpack("!i", hdr[1:])
        if ln < 4:
            raise AssertionError("bad length %d in backend message %r" % (ln, typ))
        return typ, self.recv_exact(ln - 4)

    # -- higher level
    def finish_startup(self, user=None, password=None):
        """Read (after the StartupMessage was sent) up to ReadyForQuery.
        Handles trust, cleartext and md5 authentication. Returns the
        ParameterStatus values; raises PgError on an ErrorResponse."""
        while True:
            typ, body = self.read_message()
            if typ == "R":
                (code,) = struct.unpack_from("!i", body, 0)
                if code == 0:
                    continue
                if code == 3:
                    self.send(password_message(password or ""))
                    continue
                if code == 5:
                    self.send(password_message(md5_password(user, password or "", body[4:8])))
                    continue
                raise AssertionError("unsupported authentication request %d" % code)
            if typ == "S":
                k, v = parse_cstrings(body)[:2]
                self.params[k] = v
            elif typ == "K":
                self.backend_key = struct.unpack("!II", body[:8])
            elif typ == "E":
                raise PgError(parse_error(body))
            elif typ == "Z":
                return self.params
            # 'N' notices and anything else: ignore

    def startup(self, user="app", database="appdb", password=None, **params):
        self.send(startup_message(user=user, database=database, **params))
        return self.finish_startup(user=user, password=password)

    def query(self, sql):
        """Simple query -> (rows, error fields or None, transaction status)."""
        self.send(query_message(sql))
        return self.read_results()

    def read_results(self):
        rows, err = [], None
        while True:
            typ, body = self.read_message()
            if typ == "D":
                rows.append(parse_data_row(body))
            elif typ == "E":
                err = parse_error(body)
            elif typ == "Z":
                return rows, err, chr(body[0])

    def read_until_ready(self):
        """Messages up to and including ReadyForQuery, as (type, body) pairs,
        without ParameterStatus/Notice noise."""
        out = []
        while True:
            typ, body = self.read_message()
            if typ in ("S", "N"):
                continue
            out.append((typ, body))
            if typ == "Z":
                return out

    def expect_error(self):
        """Read until an ErrorResponse and return its fields. Other messages
        (notices, parameter status) are skipped. Raises Closed if the peer
        hangs up without one."""
        while True:
            typ, body = self.read_message()
            if typ == "E":
                return parse_error(body)

    def error_or_close(self):
        """Read until an ErrorResponse (-> fields) or EOF (-> None)."""
        try:
            return self.expect_error()
        except Closed:
            return None

    def wait_closed(self, timeout=None):
        """True once the peer closes the connection within timeout (data that
        arrives meanwhile is kept in self.buf); False on timeout."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        old = self.sock.gettimeout()
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.sock.settimeout(left)
                try:
                    self._fill()
                except Closed:
                    return True
                except (socket.timeout, TimeoutError):
                    return False
        finally:
            self.sock.settimeout(old)
