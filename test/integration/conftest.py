"""Fixtures for tidepool's integration tests: a real PostgreSQL started from
scratch (initdb in a temp dir, a free port) and real tidepool processes in
front of it. See test/README.md.

Fixtures
  pg           session-scoped PgServer shared by all tests
  pg_private   function-scoped PgServer, for tests that stop/restart it
  tidepool     function-scoped factory: tidepool(**opts) -> Tidepool (started)
  role         function-scoped: a fresh LOGIN role (its own pool, countable backends)
  pgbench_db   session-scoped: appdb initialised with `pgbench -i -s 1`
  raise_nofile raises this process's RLIMIT_NOFILE to the hard limit

Helpers (import them with `from conftest import ...`)
  free_port(), wait_for_port(), wait_until(), Background, pg_bin(), clean_env(),
  tidepool_bin()
"""

import glob
import re
import itertools
import os
import pwd
import random
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import weakref
import threading
import time
from pathlib import Path

import psycopg
import pytest

REPO = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0
PG_OS_USER = "postgres"          # the Debian system user, used when we are root
SUPERUSER = "postgres"           # the database superuser name (initdb -U)
DEFAULT_TEST_TIMEOUT = float(os.environ.get("TIDEPOOL_TEST_TIMEOUT", "180"))
CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGILL,
                 signal.SIGFPE, signal.SIGSYS, signal.SIGTRAP}
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                     "ThreadSanitizer", "MemorySanitizer")


_START_CWD = os.getcwd()


def tidepool_bin():
    """TIDEPOOL_BIN (relative to where pytest was started) or build/src/tidepool."""
    env = os.environ.get("TIDEPOOL_BIN")
    if env:
        return os.path.join(_START_CWD, env) if os.sep in env else env
    return str(REPO / "build" / "src" / "tidepool")


# --------------------------------------------------------------- utilities

_ports_given = set()
_ports_lock = threading.Lock()


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host="127.0.0.1"):
    """A TCP port nobody uses now (and not handed out before). Taken below
    the kernel's ephemeral range, so that no outgoing connection (tidepool's
    to PostgreSQL, thousands of test clients) can be holding it when the
    server binds it."""
    hi = min(_ephemeral_low(), 65536) - 1
    lo = max(1024, hi - 12000)
    for _ in range(200):
        port = random.randint(lo, hi)
        with _ports_lock:
            if port in _ports_given:
                continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        with _ports_lock:
            _ports_given.add(port)
        return port
    raise RuntimeError("no free port found")


def port_open(host, port, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host, port, timeout=10.0, proc=None):
    """Wait until host:port accepts TCP connections. Returns True, or False
    on timeout or when proc (a Popen) exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if port_open(host, port):
            return True
        time.sleep(0.05)
    return False


def wait_until(pred, timeout=10.0, interval=0.05):
    """Poll pred() until it returns something truthy; return that or None."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def clean_env(**extra):
    """os.environ without PG* variables (they would change what clients send)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "10"
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Background:
    """Run fn(*args) in a daemon thread (a hung pooler must never keep the
    test process alive). result(timeout) re-raises the thread's exception
    and raises TimeoutError if it has not finished."""

    def __init__(self, fn, *args, **kwargs):
        self.value = None
        self.error = None
        self.started = time.monotonic()
        self.finished = None

        def run():
            try:
                self.value = fn(*args, **kwargs)
            except BaseException as e:  # noqa: B902 - reported to the caller
                self.error = e
            finally:
                self.finished = time.monotonic()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def done(self):
        return not self.thread.is_alive()

    def wait(self, timeout):
        self.thread.join(timeout)
        return self.done()

    def result(self, timeout):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise TimeoutError("background call still running after %.1fs" % timeout)
        if self.error is not None:
            raise self.error
        return self.value

    def exception(self, timeout):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise TimeoutError("background call still running after %.1fs" % timeout)
        return self.error

    @property
    def elapsed(self):
        return (self.finished or time.monotonic()) - self.started


def pg_bindir():
    """Directory with initdb, pg_ctl, postgres, psql, pgbench."""
    env = os.environ.get("PG_BINDIR")
    if env:
        return env
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                   key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
                   reverse=True)
    for c in cands:
        if os.path.exists(os.path.join(c, "initdb")):
            return c
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
        if out and os.path.exists(os.path.join(out, "initdb")):
            return out
    except (OSError, subprocess.SubprocessError):
        pass
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(initdb)
    raise RuntimeError("cannot find PostgreSQL server binaries (initdb); install postgresql")


def pg_bin(name):
    return os.path.join(pg_bindir(), name)


def tail(text, lines=80):
    return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------- hooks

def pytest_configure(config):
    config.addinivalue_line(
        "markers", "hard_timeout(seconds): fail the test (SIGALRM) after this many "
        "seconds instead of the default %d" % DEFAULT_TEST_TIMEOUT)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """A per-test wall-clock limit so a hung pooler fails the test."""
    m = item.get_closest_marker("hard_timeout")
    limit = float(m.args[0]) if m else DEFAULT_TEST_TIMEOUT

    def on_alarm(signum, frame):
        raise TimeoutError("test exceeded its hard timeout of %.0f s" % limit)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the path and tail of every tidepool log (and of the
    PostgreSQL log) the test used."""
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    for tp in getattr(item, "_tidepools", []):
        rep.sections.append(("tidepool log %s" % tp.log_path,
                             tail(tp.log(), 80) or "(empty)"))
    for srv in getattr(item, "_pg_servers", []):
        rep.sections.append(("postgres log %s" % srv.logfile, tail(srv.log(), 30)))


# ------------------------------------------------------------- PostgreSQL

class PgServer:
    """A throwaway PostgreSQL cluster. When this process is root, initdb,
    pg_ctl and postgres run as the Debian `postgres` user via runuser."""

    host = "127.0.0.1"
    superuser = SUPERUSER

    def __init__(self, max_connections=300, extra_conf=""):
        self.extra_conf = extra_conf     # appended to postgresql.conf (e.g. ssl = on)
        self.bindir = pg_bindir()
        self.dir = tempfile.mkdtemp(prefix="tidepool-pg-", dir="/tmp")
        self.datadir = os.path.join(self.dir, "data")
        self.sockdir = self.dir
        self.logfile = os.path.join(self.dir, "postgres.log")
        self.port = free_port()
        self.max_connections = max_connections
        if IS_ROOT:
            pw = pwd.getpwnam(PG_OS_USER)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o700)

    # -- process control
    def _cmd(self, args):
        if IS_ROOT:
            return ["runuser", "-u", PG_OS_USER, "--"] + args
        return args

    def _run(self, args, timeout=120, check=True):
        r = subprocess.run(self._cmd(args), cwd=self.dir, env=clean_env(LC_ALL="C"),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("%s failed (%d):\n%s\n%s\n%s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr, tail(self.log(), 30)))
        return r

    def init(self):
        self._run([os.path.join(self.bindir, "initdb"), "-D", self.datadir, "-U", SUPERUSER,
                   "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        conf = (
            "\n# added by tidepool's test fixture\n"
            "listen_addresses = '127.0.0.1'\n"
            "port = %d\n"
            "unix_socket_directories = '%s'\n"
            "max_connections = %d\n"
            "fsync = off\n"
            "synchronous_commit = off\n"
            "full_page_writes = off\n"
            "log_min_messages = warning\n"
            "log_line_prefix = '%%m [%%p] %%u@%%d '\n"
        ) % (self.port, self.sockdir, self.max_connections)
        conf += self.extra_conf
        hba = (
            "local all all trust\n"
            "host all scram_user 127.0.0.1/32 scram-sha-256\n"
            "host all md5_user 127.0.0.1/32 md5\n"
            "host all plain_user 127.0.0.1/32 password\n"
            "host all authq_scram 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n"
        )
        self._write(os.path.join(self.datadir, "postgresql.conf"), conf, append=True)
        self._write(os.path.join(self.datadir, "pg_hba.conf"), hba)
        self.start()
        self.sql("SET password_encryption = 'scram-sha-256';"
                 "CREATE ROLE scram_user LOGIN PASSWORD 'scram_pw'")
        self.sql("SET password_encryption = 'md5';"
                 "CREATE ROLE md5_user LOGIN PASSWORD 'md5_pw'")
        self.sql("CREATE ROLE plain_user LOGIN PASSWORD 'plain_pw'")
        # in no auth_file: its secret comes from auth_query (test_auth_query.py)
        self.sql("SET password_encryption = 'scram-sha-256';"
                 "CREATE ROLE authq_scram LOGIN PASSWORD 'authq_pw'")
        self.sql("CREATE ROLE app LOGIN")
        self.sql("CREATE DATABASE appdb OWNER app")
        # sanity: the password kinds are what the tests think they are
        kinds = dict(self.sql("SELECT rolname, left(rolpassword, 3) FROM pg_authid "
                              "WHERE rolname IN ('scram_user', 'md5_user')"))
        assert kinds == {"scram_user": "SCR", "md5_user": "md5"}, kinds
        return self

    def _write(self, path, text, append=False):
        with open(path, "a" if append else "w") as f:
            f.write(text)
        if IS_ROOT:
            pw = pwd.getpwnam(PG_OS_USER)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def start(self):
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, "-l", self.logfile,
                   "-w", "-t", "60", "start"])

    def stop(self, mode="fast"):
        return self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, "-m", mode,
                          "-w", "-t", "60", "stop"], check=False)

    def restart(self, mode="fast"):
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, "-l", self.logfile,
                   "-m", mode, "-w", "-t", "60", "restart"])

    def cleanup(self):
        if os.path.exists(os.path.join(self.datadir, "postmaster.pid")):
            self.stop("immediate")
        if not os.environ.get("TIDEPOOL_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # -- clients (direct, bypassing tidepool)
    def dsn(self, dbname="postgres", user=SUPERUSER, unix=True):
        host = self.sockdir if unix else self.host
        return "host=%s port=%d dbname=%s user=%s connect_timeout=10" % (host, self.port, dbname, user)

    def connect(self, dbname="postgres", user=SUPERUSER, unix=True, **kw):
        kw.setdefault("autocommit", True)
        return psycopg.connect(self.dsn(dbname, user, unix), **kw)

    def sql(self, query, params=None, dbname="postgres"):
        """Run one statement as the superuser over the unix socket; returns
        fetchall() for statements with a result, else None."""
        with self.connect(dbname) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description is not None else None

    def create_role(self, prefix="u"):
        """A new LOGIN role with a unique name (trust auth over TCP): gives a
        test a pool of its own, and backends it can count in pg_stat_activity."""
        name = "%s_%d_%d" % (prefix, os.getpid(), next(_role_counter))
        self.sql("CREATE ROLE %s LOGIN" % name)
        Tidepool.role_created(self)
        return name

    def backends(self, dbname="appdb", user=None):
        """pg_stat_activity rows (pid, usename, state, query) of client backends."""
        q = ("SELECT pid, usename, state, query FROM pg_stat_activity "
             "WHERE backend_type = 'client backend' AND datname = %s AND pid <> pg_backend_pid()")
        args = [dbname]
        if user:
            q += " AND usename = %s"
            args.append(user)
        return self.sql(q, args)


_role_counter = itertools.count(1)


def _track(request, attr, obj):
    lst = getattr(request.node, attr, None)
    if lst is None:
        lst = []
        setattr(request.node, attr, lst)
    lst.append(obj)


def serve_pg(srv):
    """Generator body for fixtures: initialise and start srv, yield it, and
    remove it afterwards (also when start-up fails)."""
    try:
        srv.init()
    except Exception:
        srv.cleanup()
        raise
    yield srv
    srv.cleanup()


@pytest.fixture(scope="session")
def pg():
    yield from serve_pg(PgServer())


@pytest.fixture
def pg_private(request):
    """A PostgreSQL of the test's own, which it may stop and restart."""
    srv = PgServer(max_connections=100)
    _track(request, "_pg_servers", srv)
    yield from serve_pg(srv)


@pytest.fixture(scope="session")
def pgbench_db(pg):
    """appdb initialised for pgbench (scale 1), tables owned by `app`.
    Returns the pgbench binary path."""
    pgbench = pg_bin("pgbench")
    r = subprocess.run([pgbench, "-i", "-s", "1", "-q", "-h", pg.host, "-p", str(pg.port),
                        "-U", "app", "appdb"], env=clean_env(), capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, "pgbench -i failed:\n%s\n%s" % (r.stdout, r.stderr)
    return pgbench


@pytest.fixture
def role(pg):
    """A fresh LOGIN role (see PgServer.create_role)."""
    return pg.create_role()


@pytest.fixture
def raise_nofile():
    """Raise RLIMIT_NOFILE of the test process to its hard limit; restore after.
    Returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = hard if hard != resource.RLIM_INFINITY else 1 << 20
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    yield new
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# ---------------------------------------------------------------- tidepool

class Tidepool:
    """One tidepool process with its own config file, log and socket dir."""

    host = "127.0.0.1"

    def __init__(self, pg, workdir, pool_mode="session", databases=None, users=None,
                 auth_file=None, extra="", section=None, **main):
        self.pg = pg
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        # a short path: unix socket paths are limited to 107 bytes
        self.sockdir = tempfile.mkdtemp(prefix="tp-sock-", dir="/tmp")
        self.config_path = str(self.workdir / "tidepool.ini")
        self.auth_file_path = str(self.workdir / "userlist.txt")
        self.log_path = str(self.workdir / "tidepool.log")
        # TIDEPOOL_TEST_SECTION=pgbouncer runs the suite against PgBouncer
        self.section = section or os.environ.get("TIDEPOOL_TEST_SECTION", "tidepool")
        self.port = free_port()
        self.main = {
            "listen_addr": "127.0.0.1",
            "listen_port": self.port,
            "unix_socket_dir": self.sockdir,
            "auth_type": "trust",
            "pool_mode": pool_mode,
        }
        if databases is None:
            databases = {
                "appdb": "host=127.0.0.1 port=%d dbname=appdb" % pg.port,
                "postgres": "host=127.0.0.1 port=%d dbname=postgres" % pg.port,
            }
        self.databases = dict(databases)
        self.users = dict(users or {})
        self.auth_file = auth_file
        self.extra = extra
        # TIDEPOOL_TEST_EXTRA="key=value;key=value": more main-section defaults
        # (e.g. auth_user=postgres when running the suite against PgBouncer)
        for item in filter(None, os.environ.get("TIDEPOOL_TEST_EXTRA", "").split(";")):
            k, _, v = item.partition("=")
            self.main[k.strip()] = v.strip()
        self.main.update(main)
        self.proc = None
        self._logf = None
        self.write_config()

    # -- config
    @staticmethod
    def _value(v):
        if v is True:
            return "1"
        if v is False:
            return "0"
        return str(v)

    def render(self):
        out = ["; written by tidepool's test fixture", "[%s]" % self.section]
        for k, v in self.main.items():
            if v is not None:
                out.append("%s = %s" % (k, self._value(v)))
        out += ["", "[databases]"]
        out += ["%s = %s" % (k, v) for k, v in self.databases.items()]
        if self.users:
            out += ["", "[users]"]
            out += ["%s = %s" % (k, v) for k, v in self.users.items()]
        if self.extra:
            out += ["", self.extra]
        return "\n".join(out) + "\n"

    def write_config(self, text=None, databases=None, users=None, auth_file=None, **main):
        """Rewrite the config file. With text, write it verbatim. Otherwise
        merge main-section keys (None removes a key) and replace databases,
        users or the auth_file content when given. Does not reload."""
        if text is not None:
            with open(self.config_path, "w") as f:
                f.write(text)
            return self.config_path
        self.main.update(main)
        if databases is not None:
            self.databases = dict(databases)
        if users is not None:
            self.users = dict(users)
        if auth_file is not None:
            self.auth_file = auth_file
        content = self.auth_file
        self.auto_auth_file = content is None and self.main.get("auth_type") in ("trust", "any") and \
            self.main.get("auth_file") in (None, self.auth_file_path)
        if self.auto_auth_file:
            content = self.known_users()
            Tidepool.live.add(self)
        if content is not None:
            if isinstance(content, dict):
                content = "".join('"%s" "%s"\n' % (k.replace('"', '""'), v) for k, v in content.items())
            with open(self.auth_file_path, "w") as f:
                f.write(content)
            self.main.setdefault("auth_file", self.auth_file_path)
        with open(self.config_path, "w") as f:
            f.write(self.render())
        return self.config_path

    live = weakref.WeakSet()   # instances whose auth_file lists PostgreSQL's roles

    @classmethod
    def role_created(cls, pg):
        """A role made while tidepools run joins their default auth_file."""
        for tp in list(cls.live):
            if tp.pg is pg and tp.auto_auth_file and tp.alive():
                tp.write_config()
                tp.reload(wait=0.3)

    def known_users(self):
        """auth_type trust admits only users in auth_file (as PgBouncer): the
        default auth_file lists PostgreSQL's login roles, without secrets,
        and the console users. Rewritten by each write_config, so roles made
        since are added by the next write_config and reload."""
        names = [r[0] for r in self.pg.sql("SELECT rolname FROM pg_roles WHERE rolcanlogin")]
        return {n: "" for n in names + ["admin", "stats", "pgbouncer"]}

    # -- process
    def start(self, args=(), wait=True, nofile_soft=None, timeout=10.0):
        self._logf = open(self.log_path, "ab")
        preexec = None
        if nofile_soft is not None:
            def preexec():
                hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile_soft, hard))
        self.proc = subprocess.Popen([tidepool_bin(), "-v", *args, self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=self._logf,
                                     stderr=subprocess.STDOUT, cwd=str(self.workdir),
                                     preexec_fn=preexec)
        if wait and not wait_for_port(self.host, self.port, timeout, self.proc):
            rc = self.proc.poll()
            pytest.fail("tidepool did not accept connections on %s:%d within %.0fs (%s)\n"
                        "log %s:\n%s" % (self.host, self.port, timeout,
                                         "exited with %s" % rc if rc is not None else "still running",
                                         self.log_path, tail(self.log(), 60)), pytrace=False)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self, wait=0.5):
        """SIGHUP, then give the loop a moment to apply it."""
        self.proc.send_signal(signal.SIGHUP)
        time.sleep(wait)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Send sig (SIGTERM) and wait for the exit; returns the exit status
        (negative = killed by that signal). Raises TimeoutError if it does not
        exit in time (the fixture still kills it at teardown)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError("tidepool did not exit within %.0fs after %s" % (timeout, sig))

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # -- clients
    def dsn(self, dbname="appdb", user="app", password=None, host=None, **extra):
        parts = ["host=%s" % (host or self.host), "port=%d" % self.port,
                 "dbname=%s" % dbname, "user=%s" % user, "connect_timeout=10"]
        if password is not None:
            parts.append("password=%s" % password)
        parts += ["%s=%s" % kv for kv in extra.items()]
        return " ".join(parts)

    def connect(self, dbname="appdb", user="app", password=None, host=None, **kw):
        """A psycopg connection through tidepool. autocommit defaults to True
        and prepare_threshold to None (no server-side prepared statements,
        which transaction pooling does not track yet)."""
        kw.setdefault("autocommit", True)
        kw.setdefault("prepare_threshold", None)
        return psycopg.connect(self.dsn(dbname, user, password, host), **kw)

    def psql(self, sql, dbname="appdb", user="app", host=None, password=None, timeout=30):
        """Run psql -Atc sql through tidepool; returns CompletedProcess."""
        env = clean_env(PGPASSWORD=password) if password is not None else clean_env()
        return subprocess.run([pg_bin("psql"), "-X", "-h", host or self.host, "-p", str(self.port),
                               "-U", user, "-d", dbname, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
                              env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def raw(self, timeout=10.0):
        """A pgraw.RawConn to tidepool's TCP port (nothing sent yet)."""
        import pgraw
        return pgraw.RawConn(self.host, self.port, timeout=timeout)

    def unix_socket_path(self):
        return os.path.join(self.sockdir, ".s.PGSQL.%d" % self.port)

    # -- teardown
    def finish(self):
        """Stop the process; return a failure message if it crashed or a
        sanitizer reported something, else None."""
        problems = []
        if self.proc is not None:
            rc = self.proc.poll()
            if rc is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    rc = self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
                    rc = None  # killed by us: not the program's fault
            if rc is not None and rc < 0 and -rc in CRASH_SIGNALS:
                problems.append("tidepool died with signal %s" % signal.Signals(-rc).name)
        if self._logf:
            self._logf.close()
        text = self.log()
        for marker in SANITIZER_MARKERS:
            if marker in text:
                problems.append("tidepool log contains %r" % marker)
        shutil.rmtree(self.sockdir, ignore_errors=True)
        if problems:
            return "%s\nlog %s:\n%s" % ("; ".join(problems), self.log_path, tail(text, 120))
        return None


@pytest.fixture
def tidepool(pg, request, tmp_path):
    """Factory: tidepool(pool_mode='session', databases=None, users=None,
    auth_file=None, extra='', section=None, pg_server=None, start=True,
    args=(), nofile_soft=None, **main_section_keys) -> a started Tidepool."""
    made = []
    counter = [0]

    def factory(pool_mode="session", databases=None, users=None, auth_file=None, extra="",
                section=None, pg_server=None, start=True, args=(), nofile_soft=None,
                **main):
        counter[0] += 1
        tp = Tidepool(pg_server or pg, tmp_path / ("tidepool%d" % counter[0]),
                      pool_mode=pool_mode, databases=databases, users=users,
                      auth_file=auth_file, extra=extra, section=section, **main)
        made.append(tp)
        _track(request, "_tidepools", tp)
        if start:
            tp.start(args=args, nofile_soft=nofile_soft)
        return tp

    yield factory

    failures = [msg for msg in (tp.finish() for tp in made) if msg]
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


def run_pgbench(pgbench, tp, *args, timeout=180):
    """pgbench through tidepool as `app` on appdb; asserts it ran transactions
    and none failed. Returns its output."""
    r = subprocess.run([pgbench, *args, "-h", tp.host, "-p", str(tp.port), "-U", "app", "appdb"],
                       env=clean_env(), capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    m = re.search(r"number of failed transactions: (\d+)", out)
    if m:
        assert m.group(1) == "0", out
    m = re.search(r"number of transactions actually processed: (\d+)(?:/(\d+))?", out)
    assert m, out
    if m.group(2):
        assert m.group(1) == m.group(2), out
    assert int(m.group(1)) > 0
    return out
