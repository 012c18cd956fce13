#!/usr/bin/python3
"""tidepool benchmark: the same pgbench workloads through a direct
connection, PgBouncer and tidepool, interleaved, on a throwaway PostgreSQL.

Reports TPS, average and p99 latency, the pooler's CPU microseconds per
transaction (utime+stime from /proc/PID/stat), and RSS per idle client, as
a markdown table with ratios and as JSON. See bench/README.md.
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
IS_ROOT = os.geteuid() == 0
PG_OS_USER = "postgres"

WORKLOADS = {
    "select-simple": ["-S", "-M", "simple"],
    "select-extended": ["-S", "-M", "extended"],
    "select-prepared": ["-S", "-M", "prepared"],
    "tpcb-simple": ["-M", "simple"],
}


def log(msg):
    print("==> " + msg, file=sys.stderr, flush=True)


def pg_bindir():
    for d in sorted(os.listdir("/usr/lib/postgresql"), key=lambda v: -int(v.split(".")[0])):
        b = "/usr/lib/postgresql/%s/bin" % d
        if os.path.exists(b + "/initdb"):
            return b
    sys.exit("bench: initdb not found; install postgresql")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def as_pg_user(cmd):
    # setpriv, not runuser: runuser's PAM session would reset RLIMIT_NOFILE,
    # and the poolers need room for 10 000 idle clients.
    return (["setpriv", "--reuid=" + PG_OS_USER, "--regid=" + PG_OS_USER, "--init-groups"] + cmd
            if IS_ROOT else cmd)


def wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("nothing listens on port %d" % port)


def raise_nofile(n=30000):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(n, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Postgres:
    def __init__(self, work, scale):
        self.bindir = pg_bindir()
        self.dir = os.path.join(work, "pg")
        os.makedirs(self.dir)
        if IS_ROOT:
            shutil.chown(work, PG_OS_USER)
            shutil.chown(self.dir, PG_OS_USER)
        self.port = free_port()
        data = os.path.join(self.dir, "data")
        subprocess.run(as_pg_user([self.bindir + "/initdb", "-D", data, "-U", "postgres", "-A", "trust"]),
                       check=True, stdout=subprocess.DEVNULL)
        opts = ("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off" % (self.port, self.dir))
        subprocess.run(as_pg_user([self.bindir + "/pg_ctl", "-D", data, "-o", opts, "-l",
                                   os.path.join(self.dir, "log"), "-w", "start"]),
                       check=True, stdout=subprocess.DEVNULL)
        self.data = data
        log("PostgreSQL on port %d; pgbench -i -s %d" % (self.port, scale))
        subprocess.run([self.bindir + "/pgbench", "-i", "-q", "-s", str(scale), "-h", "127.0.0.1",
                        "-p", str(self.port), "-U", "postgres", "postgres"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        subprocess.run(as_pg_user([self.bindir + "/pg_ctl", "-D", self.data, "-m", "immediate", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def supports_prepared(binary, section):
    """tidepool, and PgBouncer from 1.21 on, track prepared statements in
    transaction mode (max_prepared_statements); older PgBouncers do not
    know the key."""
    if section == "tidepool":
        return True
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"PgBouncer (\d+)\.(\d+)", out)
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= (1, 21)


class Pooler:
    """A pooler process in transaction mode with pool size 10."""

    def __init__(self, name, binary, work, pg, pool_size, section, wrapper=(), unix=False, extra=""):
        self.name = name
        self.port = free_port()
        d = os.path.join(work, name)
        os.makedirs(d)
        # unix: clients connect over a unix socket in d (pgbench -h d)
        self.host = d if unix else "127.0.0.1"
        users = os.path.join(d, "users.txt")
        with open(users, "w") as f:
            f.write('"postgres" ""\n')
        conf = os.path.join(d, "pooler.ini")
        with open(conf, "w") as f:
            f.write("[databases]\npostgres = host=127.0.0.1 port=%d dbname=postgres\n\n" % pg.port)
            f.write("[%s]\nlisten_addr = 127.0.0.1\nlisten_port = %d\nunix_socket_dir = %s\n"
                    "auth_type = trust\nauth_file = %s\npool_mode = transaction\n"
                    "default_pool_size = %d\nmax_client_conn = 12000\nlog_connections = 0\n"
                    "log_disconnections = 0\n" % (section, self.port, d if unix else "", users, pool_size))
            if name.startswith("tidepool"):
                f.write("metrics_port = 0\n")
            f.write(extra)
            if supports_prepared(binary, section):
                # protocol-level prepared statements in transaction mode
                f.write("max_prepared_statements = 200\n")
        if IS_ROOT:
            for p in (d, users, conf):
                shutil.chown(p, PG_OS_USER)
        self.log = open(os.path.join(d, "log"), "w")
        cmd = list(wrapper) + [binary, conf]
        self.proc = subprocess.Popen(as_pg_user(cmd), stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=lambda: raise_nofile(30000))
        wait_port(self.port, 60 if wrapper else 20)   # valgrind starts slowly
        self.pid = self._find_pid()

    def _find_pid(self):
        # runuser forks: find the child that listens
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        return int(out[0]) if out else self.proc.pid

    def pids(self):
        """The pooler process and its descendants (tidepool's workers)."""
        out, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            try:
                with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
                    todo += [int(x) for x in f.read().split()]
            except OSError:
                pass
        return out

    def cpu_seconds(self):
        """(user, system) CPU seconds of the pooler's processes so far."""
        user = system = 0.0
        for pid in self.pids():
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11]) / CLK_TCK
            system += int(fields[12]) / CLK_TCK
        return user, system

    def rss_bytes(self):
        total = 0
        for pid in self.pids():
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        return total

    def stop(self, timeout=10):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        subprocess.run(["pkill", "-9", "-P", str(self.proc.pid)], stderr=subprocess.DEVNULL)


def parse_pgbench(out):
    tps = re.search(r"tps = ([\d.]+) \(without initial", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    lat = re.search(r"latency average = ([\d.]+) ms", out)
    xacts = re.search(r"number of transactions actually processed: (\d+)", out)
    return {
        "tps": float(tps.group(1)) if tps else None,
        "latency_avg_ms": float(lat.group(1)) if lat else None,
        "transactions": int(xacts.group(1)) if xacts else 0,
        "failed": int(failed.group(1)) if failed else None,
    }


def p99_from_logs(prefix_dir):
    lat = []
    for name in os.listdir(prefix_dir):
        with open(os.path.join(prefix_dir, name)) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    lat.append(int(parts[2]))
    if not lat:
        return None
    lat.sort()
    return lat[int(len(lat) * 0.99) - 1] / 1000.0


def run_pgbench(bindir, port, workload, clients, seconds, work):
    args = WORKLOADS[workload]
    jobs = clients if "prepared" in args else 2
    logdir = tempfile.mkdtemp(dir=work, prefix="pgbench-log-")
    cmd = [bindir + "/pgbench", "-n", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
           "-c", str(clients), "-j", str(jobs), "-T", str(seconds), "-l",
           "--log-prefix", os.path.join(logdir, "tx")] + args + ["postgres"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 3 + 60)
    res = parse_pgbench(p.stdout + p.stderr)
    errors = [l for l in p.stderr.splitlines() if "error:" in l]
    res["ok"] = p.returncode == 0 and res["tps"] is not None and not res["failed"] and not errors
    if not res["ok"]:
        res["error"] = (errors or p.stderr.strip().splitlines() or ["pgbench failed"])[0][:120]
    res["latency_p99_ms"] = p99_from_logs(logdir) if res["ok"] else None
    shutil.rmtree(logdir, ignore_errors=True)
    return res


def startup_packet(user, db):
    body = struct.pack("!I", 196608) + b"user\0" + user.encode() + b"\0database\0" + db.encode() + b"\0\0"
    return struct.pack("!I", len(body) + 4) + body


def open_idle_clients(port, n):
    socks = []
    pkt = startup_packet("postgres", "postgres")
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), 10)
        s.sendall(pkt)
        socks.append(s)
    for s in socks:   # wait for ReadyForQuery on each
        buf = b""
        while not buf.endswith(b"Z\0\0\0\x05I"):
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("pooler closed an idle client during login")
            buf += chunk
    return socks


def idle_rss(pooler, n):
    before = pooler.rss_bytes()
    socks = open_idle_clients(pooler.port, n)
    time.sleep(1)
    after = pooler.rss_bytes()
    for s in socks:
        s.close()
    time.sleep(1)
    return {"clients": n, "rss_before": before, "rss_after": after,
            "rss_per_client": (after - before) / n}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, nd=1):
    return "n/a" if v is None else ("%.*f" % (nd, v))


def ratio(a, b):
    return "n/a" if a is None or b in (None, 0) else "%.2f" % (a / b)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tidepool", default=os.path.join(ROOT, "build/src/tidepool"))
    ap.add_argument("--pgbouncer", action="append", default=[],
                    help="NAME=PATH of a PgBouncer binary (repeatable); Debian's /usr/sbin/pgbouncer is always used")
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--pool-size", type=int, default=10)
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--idle", default="2000,10000", help="idle client counts, comma list ('' to skip)")
    ap.add_argument("--workers", default="",
                    help="also run tidepool with workers = N for each N of this comma list (e.g. 2)")
    ap.add_argument("--json", default=os.path.join(ROOT, "bench/results.json"))
    args = ap.parse_args()
    raise_nofile(30000)

    work = tempfile.mkdtemp(prefix="tidepool-bench-")
    os.chmod(work, 0o755)
    pg = Postgres(work, args.scale)
    targets = {"direct": None}
    poolers = {}
    try:
        bouncers = [tuple(x.split("=", 1)) for x in args.pgbouncer]
        if os.path.exists("/usr/sbin/pgbouncer"):
            bouncers.insert(0, ("pgbouncer", "/usr/sbin/pgbouncer"))
        else:
            log("Debian's PgBouncer is not installed (bench/run.sh installs it): not measured")
        for name, path in bouncers:
            poolers[name] = Pooler(name, path, work, pg, args.pool_size, "pgbouncer")
        poolers["tidepool"] = Pooler("tidepool", os.path.abspath(args.tidepool), work, pg, args.pool_size, "tidepool")
        for n in [int(x) for x in args.workers.split(",") if x]:
            # pool size per worker: the same backends in total as one process
            poolers["tidepool-w%d" % n] = Pooler("tidepool-w%d" % n, os.path.abspath(args.tidepool), work, pg,
                                                 max(1, args.pool_size // n), "tidepool",
                                                 extra="workers = %d\n" % n)
        targets.update({n: p for n, p in poolers.items()})
        results = {t: {w: [] for w in args.workloads.split(",")} for t in targets}
        for rep in range(args.repeat):
            for w in args.workloads.split(","):
                for t, pooler in targets.items():      # interleaved: A B C A B C
                    port = pooler.port if pooler else pg.port
                    cpu0 = pooler.cpu_seconds() if pooler else None
                    r = run_pgbench(pg.bindir, port, w, args.clients, args.seconds, work)
                    if pooler and r["transactions"]:
                        cpu1 = pooler.cpu_seconds()
                        user, system = ((b - a) * 1e6 / r["transactions"] for a, b in zip(cpu0, cpu1))
                        r.update(cpu_us_per_xact=user + system, user_us_per_xact=user, sys_us_per_xact=system)
                    log("%s %s run %d: tps=%s cpu/xact=%s us (user %s) %s" % (
                        t, w, rep + 1, fmt(r["tps"]), fmt(r.get("cpu_us_per_xact")),
                        fmt(r.get("user_us_per_xact"), 2), r.get("error", "")))
                    results[t][w].append(r)
        idle = {}
        for n in [int(x) for x in args.idle.split(",") if x]:
            for name, pooler in poolers.items():
                try:
                    idle.setdefault(name, []).append(idle_rss(pooler, n))
                except Exception as e:  # a pooler that cannot hold n clients is a result too
                    idle.setdefault(name, []).append({"clients": n, "error": str(e)[:200]})
                log("%s idle %d: %s" % (name, n, idle[name][-1]))
    finally:
        for p in poolers.values():
            p.stop()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(results, idle, args)


def summarize(runs):
    ok = [r for r in runs if r["ok"]]
    if not ok:
        return {"ok": False, "error": runs[0].get("error") if runs else "not run"}
    return {"ok": True, "tps": median([r["tps"] for r in ok]),
            "latency_avg_ms": median([r["latency_avg_ms"] for r in ok]),
            "latency_p99_ms": median([r["latency_p99_ms"] for r in ok]),
            "cpu_us_per_xact": median([r.get("cpu_us_per_xact") for r in ok]),
            "user_us_per_xact": median([r.get("user_us_per_xact") for r in ok]),
            "sys_us_per_xact": median([r.get("sys_us_per_xact") for r in ok])}


def report(results, idle, args):
    summary = {t: {w: summarize(runs) for w, runs in ws.items()} for t, ws in results.items()}
    bouncers = [t for t in summary if t != "direct" and not t.startswith("tidepool")]
    lines = ["| workload | target | TPS | avg ms | p99 ms | CPU µs/xact | user + sys | tidepool/this CPU "
             "| tidepool/this user CPU | tidepool/this p99 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for w in args.workloads.split(","):
        tp = summary["tidepool"][w]
        for t in summary:
            s = summary[t][w]
            if not s["ok"]:
                lines.append("| %s | %s | n/a (%s) | | | | | | | |" % (w, t, s["error"]))
                continue
            cpu_ratio = ratio(tp.get("cpu_us_per_xact"), s.get("cpu_us_per_xact")) if t in bouncers else ""
            user_ratio = ratio(tp.get("user_us_per_xact"), s.get("user_us_per_xact")) if t in bouncers else ""
            p99_ratio = ratio(tp.get("latency_p99_ms"), s.get("latency_p99_ms")) if t != "tidepool" else ""
            split = ("%s + %s" % (fmt(s["user_us_per_xact"], 2), fmt(s["sys_us_per_xact"], 2))
                     if s.get("user_us_per_xact") is not None else "")
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                w, t, fmt(s["tps"], 0), fmt(s["latency_avg_ms"], 3), fmt(s["latency_p99_ms"], 3),
                fmt(s.get("cpu_us_per_xact")), split, cpu_ratio, user_ratio, p99_ratio))
    lines += ["", "| pooler | idle clients | RSS before | RSS after | bytes per idle client |", "|---|---|---|---|---|"]
    for name, rows in idle.items():
        for r in rows:
            if "error" in r:
                lines.append("| %s | %d | n/a (%s) | | |" % (name, r["clients"], r["error"]))
            else:
                lines.append("| %s | %d | %.1f MB | %.1f MB | %.0f |" % (
                    name, r["clients"], r["rss_before"] / 1e6, r["rss_after"] / 1e6, r["rss_per_client"]))
    text = "\n".join(lines)
    print(text)
    with open(args.json, "w") as f:
        json.dump({"settings": vars(args), "summary": summary, "runs": results, "idle": idle}, f, indent=1)
    log("JSON written to %s" % args.json)


if __name__ == "__main__":
    main()
