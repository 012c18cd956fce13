"""Issue 20: a drain loses nothing a client needs to reconnect at once.
An idle client closed by a drain gets FATAL 57P01 and then end of file,
never a TCP reset, even if it keeps sending after the close (a socket
closed with unread input answers with a reset, which can destroy the
ErrorResponse still on its way); a client that connected just before the
drain finishes its login and is then told 57P01, instead of being cut off
halfway through it."""

import signal
import socket
import time

import pytest

import pgraw
from conftest import wait_until


def drain_with_one_transaction_open(tp):
    """SIGTERM while another client holds a transaction, so the process
    stays up (draining) while the test looks at the idle clients."""
    busy = tp.connect()
    tx = busy.transaction()
    tx.__enter__()
    busy.execute("select 1")
    tp.send_signal(signal.SIGTERM)
    return busy, tx


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_idle_client_gets_57P01_then_eof_never_a_reset(tidepool, mode):
    tp = tidepool(pool_mode=mode, shutdown_delay=0, shutdown_timeout=20)
    raws = []
    for _ in range(3):
        r = tp.raw()
        r.startup()
        raws.append(r)
    busy, tx = drain_with_one_transaction_open(tp)
    try:
        assert wait_until(lambda: tp.log().count("tidepool is shutting down") >= 3, 10), tp.log()
        for r in raws:
            # 6 MB after the close: more than the socket buffers hold, so
            # sendall only completes if tidepool keeps reading and dropping
            r.sock.sendall(pgraw.query_message("select 2") * 300000)
            data = b""
            while True:
                chunk = r.sock.recv(65536)   # ConnectionResetError here is the bug
                if not chunk:
                    break
                data += chunk
            err = pgraw.parse_error(data[5:]) if data[:1] == b"E" else None
            assert err and err.get("C") == "57P01", data
            r.close()
    finally:
        tx.__exit__(None, None, None)
        busy.close()
    assert tp.proc.wait(20) == 0


def test_client_logging_in_during_drain_finishes_login(tidepool):
    """A client whose startup packet arrives once the drain has begun (it
    connected before the listener closed) is logged in, then told 57P01."""
    # tcp_defer_accept off: the kernel hands tidepool the connection before
    # any byte arrives (with it on, a silent connection is not accepted yet
    # and is reset when the listener closes)
    tp = tidepool(pool_mode="transaction", shutdown_delay=0, shutdown_timeout=20,
                  tcp_defer_accept=0)
    early = socket.create_connection((tp.host, tp.port))   # accepted, says nothing yet
    time.sleep(0.3)
    busy, tx = drain_with_one_transaction_open(tp)
    try:
        assert wait_until(lambda: "listener closed" in tp.log(), 10), tp.log()
        time.sleep(1.5)   # at least one drain pass while the client has not logged in
        early.sendall(pgraw.startup_message())
        data = b""
        early.settimeout(10)
        while True:
            chunk = early.recv(65536)
            if not chunk:
                break
            data += chunk
        assert b"R\x00\x00\x00\x08\x00\x00\x00\x00" in data, "no AuthenticationOk: %r" % data
        assert b"Z\x00\x00\x00\x05I" in data, "login did not finish: %r" % data
        assert b"C57P01\x00" in data, data
    finally:
        early.close()
        tx.__exit__(None, None, None)
        busy.close()
    assert tp.proc.wait(20) == 0
