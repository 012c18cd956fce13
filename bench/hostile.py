#!/usr/bin/python3
"""Ten thousand hostile connections at once (issue 22).

Starts a throwaway PostgreSQL and a tidepool (the integration fixtures'
classes; TIDEPOOL_BIN or build/src/tidepool) with TLS on the client side,
max_client_conn and client_login_timeout set, then opens --count
connections at once, split evenly among:

  half-open   a startup packet cut after 6 bytes, then nothing
  garbage     64 random bytes, then nothing
  huge        a startup length of 0x7fffffff, then a trickle of bytes
  tls-stall   SSLRequest, then 3 bytes of a TLS record, then nothing
  vanish      connect, then close at once (repeated for the whole run)

while a normal client keeps running `select 1` on one connection and
logging in anew every 50 queries. It prints the normal client's latency
(p50, p99, max) before, during and after the storm; tidepool's RSS before,
at its peak and after the hostile sockets are gone; how many hostile
connections tidepool closed and when (client_login_timeout holds); and how
many were refused for max_client_conn (53300).

    /usr/bin/python3 bench/hostile.py [--count 10000] [--max-client-conn 6000]
        [--login-timeout 5] [--seconds 20] [--rounds 2]

Needs RLIMIT_NOFILE above count + a few hundred (it raises its soft limit
to the hard one). A wall-clock run: say how loaded the machine was.
"""

import argparse
import asyncio
import os
import random
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "integration"))

from conftest import PgServer, Tidepool  # noqa: E402

KINDS = ["half-open", "garbage", "huge", "tls-stall", "vanish"]
ONLY = set(KINDS)   # --kinds


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def n_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


NORMAL_CLIENT = r"""
import sys, time, psycopg
dsn = sys.argv[1]
out = open(sys.argv[2], "w", buffering=1)
while True:
    try:
        with psycopg.connect(dsn, autocommit=True) as c:
            for _ in range(50):
                t0 = time.monotonic()
                c.execute("select 1").fetchone()
                out.write("%f %f\n" % (time.time(), time.monotonic() - t0))
                time.sleep(0.01)
    except psycopg.Error as e:
        out.write("error %f %s\n" % (time.time(), str(e)[:80].replace("\n", " ")))
        time.sleep(0.1)
"""


class Normal:
    """The well-behaved client, in its own process (its descriptors stay
    below 1024, where libpq's select() works): latencies with wall times."""

    def __init__(self, tp, path):
        self.path = path
        self.proc = subprocess.Popen([sys.executable, "-c", NORMAL_CLIENT, tp.dsn(), path])

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)

    def phases(self, marks):
        """{phase: [latency]} and errors, split at the (name, wall time) marks."""
        samples, errors = {}, []
        with open(self.path) as f:
            for line in f:
                parts = line.split()
                if parts[0] == "error":
                    errors.append(line.strip())
                    continue
                t, lat = float(parts[0]), float(parts[1])
                phase = None
                for name, start in marks:
                    if t >= start:
                        phase = name
                if phase:
                    samples.setdefault(phase, []).append(lat)
        return samples, errors


async def hostile(kind, port, results, hold):
    t0 = time.monotonic()
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
    except OSError as e:
        results.append((kind, "connect failed: %s" % e.strerror, 0))
        return
    try:
        if kind == "vanish":
            w.close()
            results.append((kind, "vanished", 0))
            return
        if kind == "half-open":
            w.write(struct.pack("!II", 40, 196608)[:6])
        elif kind == "garbage":
            w.write(bytes(random.getrandbits(8) for _ in range(64)))
        elif kind == "huge":
            w.write(struct.pack("!II", 0x7FFFFFFF, 196608))
        elif kind == "tls-stall":
            w.write(struct.pack("!II", 8, 80877103))
        await w.drain()
        if kind == "tls-stall":
            answer = await asyncio.wait_for(r.read(1), hold)
            if answer == b"S":
                w.write(b"\x16\x03\x01")       # a TLS record header, then silence
                await w.drain()
        # wait for tidepool to close (or refuse) us; trickle for "huge"
        first = b""
        end = time.monotonic() + hold
        while time.monotonic() < end:
            try:
                data = await asyncio.wait_for(r.read(4096), 0.5)
            except asyncio.TimeoutError:
                if kind == "huge":
                    w.write(b"x")
                    await w.drain()
                continue
            if not data:
                break
            first = first or data
        else:
            results.append((kind, "still open", time.monotonic() - t0))
            return
        why = "closed"
        if first[:1] == b"E":
            fields = dict((f[:1], f[1:]) for f in first[5:].split(b"\0") if f)
            why = "error %s" % fields.get(b"C", b"?").decode(errors="replace")
        results.append((kind, why, time.monotonic() - t0))
    except (OSError, asyncio.TimeoutError) as e:
        results.append((kind, "reset" if isinstance(e, ConnectionResetError) else type(e).__name__,
                        time.monotonic() - t0))
    finally:
        w.close()


async def storm(port, count, hold, vanish_until):
    results = []
    tasks = []
    per_kind = count // len(KINDS)
    for kind in [k for k in KINDS[:-1] if k in ONLY]:
        for _ in range(per_kind):
            tasks.append(asyncio.ensure_future(hostile(kind, port, results, hold)))
            if len(tasks) % 500 == 0:
                await asyncio.sleep(0)

    async def vanishers():
        n = 0
        while time.monotonic() < vanish_until:
            await asyncio.gather(*(hostile("vanish", port, results, hold) for _ in range(100)))
            n += 100
            await asyncio.sleep(0.05)
        return n
    tasks.append(asyncio.ensure_future(vanishers()))
    await asyncio.gather(*tasks, return_exceptions=True)
    return results


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] * 1000 if xs else float("nan")


def make_cert(d):
    key, crt = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True)
    return key, crt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--max-client-conn", type=int, default=3000)
    ap.add_argument("--login-timeout", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--kinds", default=",".join(KINDS), help="a subset of " + ",".join(KINDS))
    a = ap.parse_args()
    ONLY.intersection_update(a.kinds.split(","))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    pg = PgServer().init()
    work = tempfile.mkdtemp(prefix="tidepool-hostile-")
    key, crt = make_cert(work)
    tp = Tidepool(pg, work, pool_mode="transaction", max_client_conn=a.max_client_conn,
                  client_login_timeout=a.login_timeout, client_tls_sslmode="allow",
                  client_tls_key_file=key, client_tls_cert_file=crt, metrics_port=0)
    tp.start()
    marks = []
    rounds = []
    try:
        normal = Normal(tp, os.path.join(work, "normal.txt"))
        time.sleep(3)
        marks.append(("before", time.time() - 3))
        rss_before, fds_before = rss_kb(tp.pid), n_fds(tp.pid)
        for rnd in range(a.rounds):
            peak = [rss_kb(tp.pid), n_fds(tp.pid)]
            done = threading.Event()

            def sample():
                while not done.is_set():
                    try:
                        peak[0] = max(peak[0], rss_kb(tp.pid))
                        peak[1] = max(peak[1], n_fds(tp.pid))
                    except OSError:
                        pass
                    time.sleep(0.2)
            threading.Thread(target=sample, daemon=True).start()
            marks.append(("during %d" % (rnd + 1), time.time()))
            t0 = time.monotonic()
            hold = a.login_timeout * 3 + 10
            results = asyncio.run(storm(tp.port, a.count, hold, t0 + a.seconds))
            storm_s = time.monotonic() - t0
            done.set()
            marks.append(("after %d" % (rnd + 1), time.time()))
            time.sleep(3)
            rounds.append((results, storm_s, peak, rss_kb(tp.pid), n_fds(tp.pid)))
        normal.stop()
        alive = tp.alive()
    finally:
        tp.stop()
        pg.cleanup()
    samples, errors = normal.phases(marks)

    print("hostile connections: %d at once (+ connect-and-vanish for %.0f s), %d round(s), max_client_conn %d, "
          "client_login_timeout %d s; tidepool alive after: %s" % (
              a.count - a.count // len(KINDS), a.seconds, a.rounds, a.max_client_conn, a.login_timeout, alive))
    for rnd, (results, storm_s, peak, rss_after, fds_after) in enumerate(rounds):
        print(" round %d: storm lasted %.1f s" % (rnd + 1, storm_s))
        by = {}
        for kind, why, secs in results:
            by.setdefault((kind, why), []).append(secs)
        for (kind, why), secs in sorted(by.items()):
            print("  %-10s %-18s %6d   time to close: median %.1f s, max %.1f s" % (
                kind, why, len(secs), statistics.median(secs), max(secs)))
        print("  tidepool RSS kB: before %d, peak %d, 3 s after %d; descriptors: before %d, peak %d, after %d" % (
            rss_before, peak[0], rss_after, fds_before, peak[1], fds_after))
    for phase, _ in marks:
        xs = samples.get(phase, [])
        print("  normal client %-9s %5d queries  p50 %.2f ms  p99 %.2f ms  max %.2f ms" % (
            phase, len(xs), pct(xs, 0.5), pct(xs, 0.99), max(xs or [0]) * 1000))
    print("  normal client errors: %d %s" % (len(errors), errors[:3]))


if __name__ == "__main__":
    main()
