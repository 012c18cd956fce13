#!/usr/bin/python3
"""The sidecar's footprint: RSS of each pooler at start, with 100 idle
clients, and with 100 active clients, side by side.

Deterministic enough to run on a busy machine (RSS does not depend on
timing). Each pooler starts fresh in front of a throwaway PostgreSQL
(transaction mode, pool size 10, auth trust, no TLS toward clients,
server_tls_sslmode at its default `prefer` against a PostgreSQL without
TLS), then:

1. start: RSS one second after it listens;
2. idle: 100 clients log in and stay (startup packet, ReadyForQuery);
3. active: pgbench -S -c 100 -j 2 for a few seconds; RSS sampled while it
   runs (the maximum of the samples) and after it ends.

It also prints the largest mappings of the fresh process
(/proc/PID/smaps, RSS per library), which is where the fixed cost is.

    bench/footprint.py --pgbouncer "pgbouncer 1.25=/tmp/pgbouncer-perf/pgbouncer"

See bench/README.md and doc/performance.md ("The sidecar's footprint").
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def mappings_kb(pid):
    """RSS per mapped file (anonymous memory as [anon], [heap], [stack])."""
    rss, name = {}, None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            first = line.split()
            if "-" in first[0] and len(first) >= 5 and ":" in first[3]:
                name = os.path.basename(first[5]) if len(first) >= 6 else "[anon]"
            elif first[0] == "Rss:":
                rss[name] = rss.get(name, 0) + int(first[1])
    return rss


def active_rss(pooler, pg, clients, seconds, work):
    samples = []
    done = threading.Event()

    def sample():
        while not done.is_set():
            samples.append(pooler.rss_bytes())
            time.sleep(0.2)
    t = threading.Thread(target=sample)
    t.start()
    try:
        res = bench.run_pgbench(pg.bindir, pooler.port, "select-simple", clients, seconds, work)
    finally:
        done.set()
        t.join()
    if not res["ok"]:
        raise RuntimeError("pgbench failed: %s" % res.get("error"))
    return max(samples), pooler.rss_bytes(), res["tps"]


def measure(name, binary, section, pg, work, args):
    pooler = bench.Pooler(name, binary, work, pg, args.pool_size, section)
    try:
        time.sleep(1)
        r = {"start": pooler.rss_bytes(), "maps": mappings_kb(pooler.pid)}
        socks = bench.open_idle_clients(pooler.port, args.clients)
        time.sleep(1)
        r["idle"] = pooler.rss_bytes()
        for s in socks:
            s.close()
        time.sleep(0.5)
        r["active_max"], r["active_after"], r["tps"] = active_rss(pooler, pg, args.clients, args.seconds, work)
    finally:
        pooler.stop()
    bench.log("%s: start %.1f MiB, %d idle %.1f MiB, %d active %.1f MiB (max while running)" % (
        name, r["start"] / 2**20, args.clients, r["idle"] / 2**20, args.clients, r["active_max"] / 2**20))
    return r


def report(results, args):
    names = list(results)
    mib = lambda v: "%.1f MiB" % (v / 2**20)  # noqa: E731
    print("| RSS | " + " | ".join(names) + "".join(" | tidepool/%s" % n for n in names if n != "tidepool") + " |")
    print("|---" * (1 + len(names) + len(names) - 1) + "|")
    rows = [("at start", "start"), ("%d idle clients" % args.clients, "idle"),
            ("%d active clients (max while running)" % args.clients, "active_max"),
            ("after the active run", "active_after")]
    for label, key in rows:
        cells = [mib(results[n][key]) for n in names]
        cells += [bench.ratio(results["tidepool"][key], results[n][key]) for n in names if n != "tidepool"]
        print("| %s | %s |" % (label, " | ".join(cells)))
    for n in names:
        maps = sorted(results[n]["maps"].items(), key=lambda kv: -kv[1])
        print("\n%s at start, RSS by mapping: %s" % (n, ", ".join(
            "%s %d kB" % kv for kv in maps if kv[1] >= 40)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tidepool", default=os.path.join(bench.ROOT, "build/src/tidepool"))
    ap.add_argument("--pgbouncer", action="append", default=[], help="NAME=PATH of a PgBouncer binary (repeatable)")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=5, help="length of the active run")
    ap.add_argument("--pool-size", type=int, default=10)
    args = ap.parse_args()
    bench.raise_nofile(30000)
    work = tempfile.mkdtemp(prefix="tidepool-footprint-")
    os.chmod(work, 0o755)
    pg = bench.Postgres(work, 1)
    targets = [(n, p, "pgbouncer") for n, p in (x.split("=", 1) for x in args.pgbouncer)]
    targets.append(("tidepool", os.path.abspath(args.tidepool), "tidepool"))
    results = {}
    try:
        for name, path, section in targets:
            results[name] = measure(name, path, section, pg, work, args)
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(results, args)


if __name__ == "__main__":
    main()
