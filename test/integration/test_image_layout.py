"""Issue 19: the container image's runtime layout, tested without a
container engine (none can run on the CI machines: see doc/deployment.md).

The Dockerfile's runtime stage is: `make install-strip DESTDIR=` with
bindir /usr/bin, deploy/image/tidepool.ini at /etc/tidepool/tidepool.ini,
the Debian packages named in RUNTIME_PACKAGES, and `USER 65532:65532` with
the root filesystem read-only in Kubernetes. These tests build that tree
from the build under test, check that RUNTIME_PACKAGES provide every
library the binary links, and run the installed binary as UID/GID 65532
with no capabilities, no_new_privs, and every mount read-only except an
emptyDir-like tmpfs for the unix socket; a client then reaches the
fixture's PostgreSQL through it, over TCP and over the socket."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from conftest import (REPO, IS_ROOT, clean_env, free_port, pg_bin, tail, tidepool_bin,
                      wait_for_port)
from test_http import http_get

UID = 65532
DOCKERFILE = REPO / "Dockerfile"
IMAGE_INI = REPO / "deploy" / "image" / "tidepool.ini"


def build_dir():
    """The automake build tree of the binary under test, or None."""
    d = Path(tidepool_bin()).resolve().parent.parent
    return d if (d / "Makefile").is_file() else None


def runtime_packages():
    m = re.search(r'^ARG RUNTIME_PACKAGES="([^"]+)"', DOCKERFILE.read_text(), re.M)
    assert m, "Dockerfile has no ARG RUNTIME_PACKAGES line"
    return m.group(1).split()


def can_unshare_mounts():
    if not IS_ROOT:
        return False
    try:
        return subprocess.run(["unshare", "--mount", "true"], capture_output=True,
                              timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture
def image_root():
    """The Dockerfile's runtime tree (binary and default ini) in a temp dir
    every user can traverse."""
    bdir = build_dir()
    if bdir is None:
        pytest.skip("TIDEPOOL_BIN is not inside an automake build tree; nothing to install")
    root = Path(tempfile.mkdtemp(prefix="tp-image-", dir="/tmp"))
    os.chmod(root, 0o755)
    try:
        r = subprocess.run(["make", "-s", "-C", str(bdir), "install-strip", "DESTDIR=%s" % root,
                            "prefix=/usr", "bindir=/usr/bin", "sysconfdir=/etc"],
                           capture_output=True, text=True, timeout=300,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stdout + r.stderr
        (root / "etc" / "tidepool").mkdir(parents=True, exist_ok=True)
        shutil.copy(IMAGE_INI, root / "etc" / "tidepool" / "tidepool.ini")
        for d, _, _ in os.walk(root):
            os.chmod(d, 0o755)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def installed_files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_install_gives_the_image_layout(image_root):
    assert installed_files(image_root) == ["etc/tidepool/tidepool.ini", "usr/bin/tidepool"]
    r = subprocess.run([str(image_root / "usr/bin/tidepool"), "--check",
                        str(image_root / "etc/tidepool/tidepool.ini")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def needed_libraries(binary):
    """(soname, resolved path) for each DT_NEEDED entry of binary."""
    dyn = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=True)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn.stdout)
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    paths = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
    return [(lib, paths.get(lib)) for lib in needed]


def owning_package(path):
    for p in (path, os.path.realpath(path)):
        r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":")[0].strip()
    return None


@pytest.mark.skipif(shutil.which("dpkg") is None or shutil.which("readelf") is None,
                    reason="needs dpkg and readelf (Debian binutils) to map libraries to packages")
def test_runtime_packages_cover_every_linked_library(image_root):
    # libc6 is in debian:12-slim itself; sanitizer runtimes only in the
    # --enable-sanitizers build, which is never put in an image
    allowed = set(runtime_packages()) | {"libc6"}
    missing, used = [], set()
    for lib, path in needed_libraries(str(image_root / "usr/bin/tidepool")):
        if re.match(r"lib(asan|ubsan|lsan|tsan)\.", lib):
            continue
        assert path, "ldd cannot resolve %s" % lib
        pkg = owning_package(path)
        used.add(pkg)
        if pkg is None or pkg not in allowed:
            missing.append("%s (%s, package %s)" % (lib, path, pkg))
    assert not missing, "RUNTIME_PACKAGES in the Dockerfile lacks: %s" % ", ".join(missing)
    # and carries nothing the binary does not link (CA certificates aside)
    unused = set(runtime_packages()) - used - {"ca-certificates"}
    assert not unused, "RUNTIME_PACKAGES has packages tidepool does not link: %s" % unused


def read_only_run_cmd(binary, ini, sockdir):
    """A command that, in a private mount namespace, remounts every mount
    read-only, mounts a tmpfs owned by UID on sockdir (the emptyDir), drops
    to UID/GID with no capabilities and no_new_privs, and execs tidepool."""
    script = r"""
set -e
for m in $(awk '{print $2}' /proc/self/mounts); do
    mount -o remount,bind,ro "$m" 2>/dev/null || true
done
mount -t tmpfs -o uid=%(uid)d,gid=%(uid)d,mode=0700,size=1m tidepool-sock "$1"
exec setpriv --reuid=%(uid)d --regid=%(uid)d --clear-groups --no-new-privs \
    --inh-caps=-all --bounding-set=-all "$2" "$3"
""" % {"uid": UID}
    return ["unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", script, "sh", sockdir, binary, ini]


def status_fields(pid):
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.split()
    return fields


def mount_options_of(pid, path):
    """Options of the mount that holds path, seen by pid."""
    best = ("", "")
    with open("/proc/%d/mountinfo" % pid) as f:
        for line in f:
            parts = line.split()
            point, opts = parts[4], parts[5]
            if (path == point or path.startswith(point.rstrip("/") + "/")) \
                    and len(point) >= len(best[0]):
                best = (point, opts)
    return best[1].split(",")


@pytest.mark.skipif(not can_unshare_mounts(),
                    reason="needs root and mount namespaces (unshare --mount) to run the tree "
                           "read-only as UID 65532")
def test_runs_as_65532_with_a_read_only_root(pg, image_root):
    port, http_port = free_port(), free_port()
    sockdir = image_root / "var" / "run" / "tidepool"
    sockdir.mkdir(parents=True)
    ini = image_root / "etc" / "tidepool" / "tidepool.ini"
    # trust admits only the users auth_file lists (as PgBouncer)
    (ini.parent / "userlist.txt").write_text('"app" ""\n')
    # as the ConfigMap of deploy/sidecar would, with the fixture's server
    ini.write_text(
        "[tidepool]\n"
        "listen_addr = 127.0.0.1\nlisten_port = %d\n"
        "unix_socket_dir = %s\n"
        "auth_type = trust\nauth_file = userlist.txt\npool_mode = transaction\n"
        "metrics_listen_addr = 127.0.0.1\nmetrics_port = %d\n"
        "\n[databases]\nappdb = host=127.0.0.1 port=%d dbname=appdb\n"
        % (port, sockdir, http_port, pg.port))
    binary = str(image_root / "usr/bin/tidepool")
    logpath = image_root.parent / (image_root.name + ".log")
    with open(logpath, "wb") as log:
        proc = subprocess.Popen(read_only_run_cmd(binary, str(ini), str(sockdir)),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=clean_env(), cwd="/")
    try:
        assert wait_for_port("127.0.0.1", port, 15, proc), \
            "tidepool did not start:\n" + tail(logpath.read_text(errors="replace"))
        st = status_fields(proc.pid)
        assert st["Uid"] == [str(UID)] * 4 and st["Gid"] == [str(UID)] * 4, st
        assert st["Groups"] == [], st
        assert int(st["CapEff"][0], 16) == 0 and int(st["CapPrm"][0], 16) == 0
        assert int(st["CapBnd"][0], 16) == 0 and st["NoNewPrivs"] == ["1"]
        for path in ("/", str(image_root), str(ini), "/tmp"):
            assert "ro" in mount_options_of(proc.pid, path), path
        assert "rw" in mount_options_of(proc.pid, str(sockdir))

        with psycopg.connect(host="127.0.0.1", port=port, dbname="appdb", user="app",
                             autocommit=True, connect_timeout=10) as c:
            assert c.execute("SELECT current_user, 6 * 7").fetchone() == ("app", 42)
        # the socket, made by 65532 in the only writable directory, is seen
        # from inside the mount namespace (as an application container
        # sharing the emptyDir would)
        inside = ["nsenter", "--target", str(proc.pid), "--mount", "--"]
        r = subprocess.run(inside + ["stat", "-c", "%u", str(sockdir / (".s.PGSQL.%d" % port))],
                           capture_output=True, text=True, timeout=10)
        assert r.stdout.strip() == str(UID), r.stdout + r.stderr
        r = subprocess.run(inside + [pg_bin("psql"), "-X", "-h", str(sockdir), "-p", str(port),
                                     "-U", "app", "-d", "appdb", "-Atc", "SELECT 7"],
                           capture_output=True, text=True, timeout=30, env=clean_env(),
                           stdin=subprocess.DEVNULL)
        assert r.stdout.strip() == "7", r.stdout + r.stderr
        assert http_get(http_port, "/livez")[0] == 200
        assert http_get(http_port, "/readyz")[0] == 200

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = logpath.read_text(errors="replace")
    logpath.unlink()
    for word in ("Read-only file system", "Permission denied", "ERROR", "FATAL"):
        assert word not in text, text
