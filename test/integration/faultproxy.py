"""A fault-injecting TCP proxy owned by the test suite (issue 22).

Put it between tidepool and PostgreSQL (tidepool's [databases] entry points
at the proxy's port) or between clients and tidepool (clients connect to
the proxy). Each accepted connection gets one upstream connection and two
pump threads, one per direction:

    "up"    from the accepting side to the target (client -> tidepool, or
            tidepool -> PostgreSQL)
    "down"  from the target back

Faults, all changeable while traffic flows (they apply to the next chunk):

    latency          seconds slept before forwarding each chunk
    bandwidth        bytes per second per direction per connection (0: no limit)
    chunk            forward at most this many bytes per send (1: every byte
                     boundary is a TCP segment boundary; 0: as read)
    cut_at           {direction: k}: for connections accepted from now on,
                     split that direction's stream once at byte offset k
                     (a short pause between the two halves)
    reset_after      {direction: n}: reset (RST both sides) a connection once
                     n bytes went that way on it (mid-message for most n)
    stall()/resume() stop forwarding (and reading) in both directions
    reset_all()      RST every open connection now
    half_close_all(direction)
                     shut down the write side toward the receiver of that
                     direction (it reads EOF; the other direction still flows)

record=True keeps every connection's bytes per direction in .recordings
(a list of {"up": bytearray, "down": bytearray}, in accept order).
"""

import socket
import struct
import threading
import time

DIRECTIONS = ("up", "down")


class _Conn:
    def __init__(self, proxy, down_sock, up_sock, cut_at, reset_after):
        self.proxy = proxy
        self.socks = {"up": up_sock, "down": down_sock}   # where each direction writes
        self.cut_at = dict(cut_at)
        self.reset_after = dict(reset_after)
        self.sent = {"up": 0, "down": 0}
        self.closed = False
        self.lock = threading.Lock()
        self.rec = {"up": bytearray(), "down": bytearray()} if proxy.record else None

    def reset(self):
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.proxy.resets_done += 1
            # A pump thread may be blocked in recv() on these sockets, which
            # keeps the kernel's file open past close(): SHUT_RD wakes it, and
            # the last close, with a zero linger, sends the RST.
            for s in self.socks.values():
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    s.shutdown(socket.SHUT_RD)
                except OSError:
                    pass
                try:
                    s.close()
                except OSError:
                    pass

    def half_close(self, direction):
        try:
            self.socks[direction].shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _pieces(self, direction, data):
        """data split for sending: at the cut offset, then in chunks."""
        start = self.sent[direction]
        cut = self.cut_at.get(direction)
        parts = [data]
        if cut is not None and start < cut < start + len(data):
            parts = [data[:cut - start], None, data[cut - start:]]   # None: pause here
        chunk = self.proxy.chunk
        out = []
        for p in parts:
            if p is None or not chunk:
                out.append(p)
            else:
                out += [p[i:i + chunk] for i in range(0, len(p), chunk)]
        return out

    def _send(self, direction, piece):
        p = self.proxy
        limit = self.reset_after.get(direction)
        if limit is not None and self.sent[direction] + len(piece) >= limit:
            keep = limit - self.sent[direction]
            if keep > 0:
                self.socks[direction].sendall(piece[:keep])
            time.sleep(0.05)
            self.reset()
            raise OSError("reset by the fault proxy")
        if p.bandwidth:
            time.sleep(len(piece) / p.bandwidth)
        self.socks[direction].sendall(piece)
        self.sent[direction] += len(piece)
        if p.chunk == 1:
            time.sleep(0.0002)

    def pump(self, direction, src):
        p = self.proxy
        try:
            while True:
                while p._stalled.is_set() and not self.closed:
                    time.sleep(0.01)
                data = src.recv(65536)
                if not data:
                    if not self.closed:   # not woken by reset(): pass the EOF on
                        self.half_close(direction)
                    break
                if self.rec is not None:
                    self.rec[direction] += data
                if p.latency:
                    time.sleep(p.latency)
                for piece in self._pieces(direction, data):
                    if piece is None:
                        time.sleep(0.02)
                        continue
                    while p._stalled.is_set() and not self.closed:
                        time.sleep(0.01)
                    self._send(direction, piece)
        except OSError:
            pass
        with self.lock:
            self.proxy._finish(self, direction)


class FaultProxy:
    def __init__(self, target_port, target_host="127.0.0.1", record=False):
        self.target = (target_host, target_port)
        self.record = record
        self.recordings = []
        self.latency = 0.0
        self.bandwidth = 0
        self.chunk = 0
        self.cut_at = {}
        self.reset_after = {}
        self.resets_done = 0
        self.accepted = 0
        self._stalled = threading.Event()
        self._conns = []
        self._lock = threading.Lock()
        self._done = {}
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    # -- faults
    def stall(self):
        self._stalled.set()

    def resume(self):
        self._stalled.clear()

    def open_connections(self):
        with self._lock:
            return [c for c in self._conns if not c.closed]

    def reset_all(self):
        for c in self.open_connections():
            c.reset()

    def reset_one(self, index=0):
        conns = self.open_connections()
        if conns:
            conns[index % len(conns)].reset()
            return True
        return False

    def half_close_all(self, direction):
        for c in self.open_connections():
            c.half_close(direction)

    def close(self):
        self._closing = True
        try:
            self.sock.close()
        except OSError:
            pass
        self.resume()
        self.reset_all()

    # -- machinery
    def _accept(self):
        while not self._closing:
            try:
                down, _ = self.sock.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(self.target, timeout=10)
                up.settimeout(None)
            except OSError:
                down.close()
                continue
            for s in (up, down):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = _Conn(self, down, up, self.cut_at, self.reset_after)
            with self._lock:
                self._conns.append(c)
                self.accepted += 1
                if c.rec is not None:
                    self.recordings.append(c.rec)
            threading.Thread(target=c.pump, args=("up", down), daemon=True).start()
            threading.Thread(target=c.pump, args=("down", up), daemon=True).start()

    def _finish(self, conn, direction):
        """Both pumps done: close the sockets and forget the connection."""
        key = id(conn)
        self._done[key] = self._done.get(key, 0) + 1
        if self._done[key] < 2:
            return
        del self._done[key]
        if not conn.closed:
            conn.closed = True
            for s in conn.socks.values():
                try:
                    s.close()
                except OSError:
                    pass
        with self._lock:
            if conn in self._conns:
                self._conns.remove(conn)
