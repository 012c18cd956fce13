#!/usr/bin/python3
"""Many concurrent clients: 1 000, 5 000 and 10 000 pgbench clients through
each pooler (transaction mode, pool 20 by default), side by side in one run.

For each size and each pooler (interleaved, so drift hits all alike) it runs
`pgbench -S -M simple -c N -j J -T S` with per-transaction logs and reports
TPS, p99 and p99.9 latency, the pooler's CPU µs per transaction and its RSS
at the end of the run. Every client is connected for the whole run and
all of them compete for the pool's 20 backends, so this measures the
scheduler, the wait queue and the per-client bookkeeping, not PostgreSQL.

File descriptors: each client costs pgbench one and the pooler one. The
script raises its own soft RLIMIT_NOFILE (and that of pgbench and the
poolers, which inherit it) to the hard limit, up to 30 000; if the hard
limit is lower, raise it first (`ulimit -Hn 65536` as root, `LimitNOFILE=`
in a systemd unit, `nofile` in /etc/security/limits.conf, or the
container runtime's `--ulimit nofile=65536:65536`). tidepool raises its
own soft limit to max_client_conn + pool sizes + 1000 at start (and warns
if the hard limit is too low); PgBouncer does the same.

This is a wall-clock benchmark: run it on a quiet machine (load average
well below 1 on two cores) and say so next to its figures.

    bench/manyclients.py --pgbouncer "pgbouncer 1.25=/path/to/pgbouncer" \\
        [--sizes 1000,5000,10000] [--seconds 20] [--jobs 8] [--pool-size 20]

See bench/README.md and doc/performance.md ("Ten thousand clients").
"""
import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def percentiles(logdir, qs):
    lat = []
    for name in os.listdir(logdir):
        with open(os.path.join(logdir, name)) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    lat.append(int(parts[2]))
    if not lat:
        return [None] * len(qs)
    lat.sort()
    return [lat[max(0, int(len(lat) * q) - 1)] / 1000.0 for q in qs]


def run(pg, pooler, clients, jobs, seconds, work):
    logdir = tempfile.mkdtemp(dir=work, prefix="pgbench-log-")
    cmd = [pg.bindir + "/pgbench", "-n", "-h", pooler.host, "-p", str(pooler.port), "-U", "postgres",
           "-c", str(clients), "-j", str(jobs), "-T", str(seconds), "-l", "--log-prefix",
           os.path.join(logdir, "tx"), "-S", "-M", "simple", "postgres"]
    cpu0 = pooler.cpu_seconds()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 10 + 600)
    cpu1 = pooler.cpu_seconds()
    res = bench.parse_pgbench(p.stdout + p.stderr)
    errors = [line for line in p.stderr.splitlines() if "error" in line.lower()]
    res["ok"] = p.returncode == 0 and bool(res["transactions"]) and not res["failed"]
    res["error"] = None if res["ok"] else (errors or ["pgbench failed"])[0][:160]
    res["p99"], res["p999"] = percentiles(logdir, (0.99, 0.999)) if res["ok"] else (None, None)
    cpu = (cpu1[0] - cpu0[0]) + (cpu1[1] - cpu0[1])
    res["cpu_us"] = cpu * 1e6 / res["transactions"] if res["transactions"] else None
    res["rss"] = pooler.rss_bytes()
    shutil.rmtree(logdir, ignore_errors=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tidepool", default=os.path.join(bench.ROOT, "build/src/tidepool"))
    ap.add_argument("--pgbouncer", action="append", default=[], help="NAME=PATH of a PgBouncer binary (repeatable)")
    ap.add_argument("--sizes", default="1000,5000,10000")
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=8, help="pgbench threads (-j); each handles clients/jobs sockets")
    ap.add_argument("--pool-size", type=int, default=20)
    ap.add_argument("--scale", type=int, default=10)
    args = ap.parse_args()
    bench.raise_nofile(30000)
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    sizes = [int(x) for x in args.sizes.split(",")]
    if soft < max(sizes) + 1000:
        sys.exit("manyclients: RLIMIT_NOFILE is %d; raise the hard limit above %d first (see --help)" % (
            soft, max(sizes) + 1000))
    work = tempfile.mkdtemp(prefix="tidepool-many-")
    os.chmod(work, 0o755)
    pg = bench.Postgres(work, args.scale)
    targets = [(n, p, "pgbouncer") for n, p in (x.split("=", 1) for x in args.pgbouncer)]
    targets.append(("tidepool", os.path.abspath(args.tidepool), "tidepool"))
    results = {}
    try:
        poolers = {n: bench.Pooler(n, p, work, pg, args.pool_size, s) for n, p, s in targets}
        for n in sizes:
            for name, _, _ in targets:
                bench.log("%s: %d clients, -j %d, %d s" % (name, n, args.jobs, args.seconds))
                results[(name, n)] = run(pg, poolers[name], n, args.jobs, args.seconds, work)
                time.sleep(2)   # let the clients' sockets close before the next run
        for p in poolers.values():
            p.stop()
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("| clients | pooler | TPS | p99 ms | p99.9 ms | CPU µs/xact | RSS | tidepool/this TPS | p99 | p99.9 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        tp = results[("tidepool", n)]
        for name, _, _ in targets:
            r = results[(name, n)]
            if not r["ok"]:
                print("| %d | %s | n/a (%s) | | | | | | | |" % (n, name, r["error"]))
                continue
            rel = ["", "", ""] if name == "tidepool" else [
                bench.ratio(tp["tps"], r["tps"]), bench.ratio(tp["p99"], r["p99"]), bench.ratio(tp["p999"], r["p999"])]
            print("| %d | %s | %.0f | %s | %s | %s | %.1f MiB | %s |" % (
                n, name, r["tps"], bench.fmt(r["p99"], 2), bench.fmt(r["p999"], 2), bench.fmt(r["cpu_us"]),
                r["rss"] / 2**20, " | ".join(rel)))


if __name__ == "__main__":
    main()
