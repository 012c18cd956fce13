#!/usr/bin/python3
"""Instructions per transaction of each pooler, counted by callgrind.

Deterministic where wall-clock figures are not: every pooler runs under
`valgrind --tool=callgrind` in front of a throwaway PostgreSQL. For each
workload two pooler processes run: both get a warm-up pgbench run (fills the
pool, prepares statements), then one runs `pgbench -t W` and the other
`pgbench -t N`; each writes its instruction count (Ir) at exit. The
difference divided by the difference in transactions is the instructions
per transaction, with start-up, logins and shutdown cancelled out. User
space only: syscalls are counted separately with `--syscalls`, which runs
the same workloads under `strace -c`, without valgrind. (callgrind_control
would avoid the second process, but vgdb cannot reach a pooler running as
another user here.)

    bench/callgrind.py                                   # tidepool only
    bench/callgrind.py --pgbouncer pgbouncer125=/path/to/pgbouncer
    bench/callgrind.py --workloads select-prepared --keep /tmp/cg   # keep dumps for callgrind_annotate

See bench/README.md.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def pgbench(pg, pooler, workload, clients, per_client):
    cmd = [pg.bindir + "/pgbench", "-n", "-h", pooler.host, "-p", str(pooler.port), "-U", "postgres",
           "-c", str(clients), "-j", str(clients), "-t", str(per_client)] + bench.WORKLOADS[workload] + ["postgres"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    res = bench.parse_pgbench(p.stdout + p.stderr)
    if p.returncode != 0 or res["failed"] or not res["transactions"]:
        raise RuntimeError("pgbench %s failed: %s" % (workload, (p.stderr.strip() or p.stdout)[-300:]))
    return res["transactions"]


def callgrind_total(path):
    """Ir of one callgrind dump (its 'totals:' or 'summary:' line)."""
    with open(path) as f:
        for line in f:
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    raise RuntimeError("no totals in " + path)


def callgrind_run(name, binary, section, pg, work, args, out_dir, workload, counted):
    """Ir of one pooler process under callgrind, from start to exit: a
    warm-up run, then a run of `counted` transactions per client."""
    out = os.path.join(out_dir, "callgrind.%s.%s.%d" % (name, workload, counted))
    wrapper = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out]
    pooler = bench.Pooler("%s-%s-%d" % (name, workload, counted), binary, work, pg, args.pool_size,
                          section, wrapper, unix=args.unix)
    try:
        pgbench(pg, pooler, workload, args.clients, args.warmup)
        n = pgbench(pg, pooler, workload, args.clients, counted)
    finally:
        pooler.stop(timeout=120)   # the dump is written at exit
    return callgrind_total(out), n, out


def measure_callgrind(name, binary, section, pg, work, args, out_dir):
    """Instructions per transaction: two processes that differ only in the
    length of the counted run, so start-up, logins, warm-up and shutdown
    cancel out in the difference."""
    results = {}
    for w in args.workloads.split(","):
        try:
            ir_short, n_short, _ = callgrind_run(name, binary, section, pg, work, args, out_dir, w, args.warmup)
            ir_long, n_long, out = callgrind_run(name, binary, section, pg, work, args, out_dir, w,
                                                 args.transactions)
        except RuntimeError as e:   # e.g. -M prepared through PgBouncer 1.18: n/a, not a number
            bench.log("%s %s: n/a (%s)" % (name, w, str(e).splitlines()[-1][:120]))
            results[w] = None
            continue
        results[w] = (ir_long - ir_short) / (n_long - n_short)
        bench.log("%s %s: %d transactions, %.0f instructions each (profile: %s)" % (
            name, w, n_long - n_short, results[w], out))
    return results


def measure_syscalls(name, binary, section, pg, work, args):
    pooler = bench.Pooler(name + "-strace", binary, work, pg, args.pool_size, section, unix=args.unix)
    results = {}
    try:
        for w in args.workloads.split(","):
            try:
                pgbench(pg, pooler, w, args.clients, args.warmup)
            except RuntimeError:
                results[w] = None
                continue
            out = os.path.join(work, "strace.%s.%s" % (name, w))
            st = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p", str(pooler.pid)],
                                  stderr=subprocess.DEVNULL)
            time.sleep(1)
            n = pgbench(pg, pooler, w, args.clients, args.transactions)
            st.send_signal(signal.SIGINT)
            st.wait(30)
            calls = {}
            with open(out) as f:
                for line in f:
                    m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", line)
                    if m and m.group(2) != "total":
                        calls[m.group(2)] = int(m.group(1)) / n
            results[w] = calls
            bench.log("%s %s syscalls per transaction: %s" % (
                name, w, ", ".join("%s %.2f" % kv for kv in sorted(calls.items(), key=lambda kv: -kv[1]))))
    finally:
        pooler.stop()
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tidepool", default=os.path.join(bench.ROOT, "build/src/tidepool"))
    ap.add_argument("--pgbouncer", action="append", default=[], help="NAME=PATH of a PgBouncer binary (repeatable)")
    ap.add_argument("--workloads", default=",".join(bench.WORKLOADS))
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--pool-size", type=int, default=10)
    ap.add_argument("--transactions", type=int, default=1000, help="per client, after the warm-up")
    ap.add_argument("--warmup", type=int, default=50, help="transactions per client before counting")
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--syscalls", action="store_true", help="also count syscalls per transaction with strace -c")
    ap.add_argument("--unix", action="store_true",
                    help="clients connect over the pooler's unix socket instead of TCP 127.0.0.1 (the sidecar case)")
    ap.add_argument("--keep", help="directory to keep the callgrind dumps in (for callgrind_annotate)")
    args = ap.parse_args()
    bench.raise_nofile(30000)

    work = tempfile.mkdtemp(prefix="tidepool-callgrind-")
    os.chmod(work, 0o755)
    out_dir = args.keep or work
    if args.keep:
        os.makedirs(out_dir, exist_ok=True)
        os.chmod(out_dir, 0o777)
    elif bench.IS_ROOT:
        os.chmod(work, 0o777)   # the pooler (user postgres) writes its dumps here
    pg = bench.Postgres(work, args.scale)
    targets = [(n, p, "pgbouncer") for n, p in (x.split("=", 1) for x in args.pgbouncer)]
    targets.append(("tidepool", os.path.abspath(args.tidepool), "tidepool"))
    ir, sc = {}, {}
    try:
        for name, path, section in targets:
            ir[name] = measure_callgrind(name, path, section, pg, work, args, out_dir)
            if args.syscalls:
                sc[name] = measure_syscalls(name, path, section, pg, work, args)
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)   # with --keep the dumps live elsewhere
    others = [n for n, _, _ in targets if n != "tidepool"]
    print("| workload | " + " | ".join("%s instr/xact" % n for n, _, _ in targets) +
          "".join(" | tidepool/%s" % o for o in others) + " |")
    print("|---" * (1 + len(targets) + len(others)) + "|")
    for w in args.workloads.split(","):
        cells = ["n/a" if ir[n][w] is None else "%.0f" % ir[n][w] for n, _, _ in targets]
        cells += [bench.ratio(ir["tidepool"][w], ir[o][w]) for o in others]
        print("| %s | %s |" % (w, " | ".join(cells)))
    if sc:
        print("\n| workload | pooler | syscalls per transaction |\n|---|---|---|")
        for w in args.workloads.split(","):
            for n in sc:
                calls = sc[n][w]
                if calls is None:
                    print("| %s | %s | n/a |" % (w, n))
                    continue
                print("| %s | %s | %.2f (%s) |" % (w, n, sum(calls.values()), ", ".join(
                    "%s %.2f" % kv for kv in sorted(calls.items(), key=lambda kv: -kv[1]) if kv[1] >= 0.01)))


if __name__ == "__main__":
    main()
