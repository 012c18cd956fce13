"""quickstart.sh (issue 19: it starts tidepool in transaction mode): run it
with the binary under test on a free port, check the pool mode through the
admin console, then stop it with Ctrl-C (SIGINT) and check it cleaned up."""

import os
import signal
import subprocess
import tempfile

import psycopg
import pytest

from conftest import REPO, clean_env, free_port, tidepool_bin, wait_for_port


@pytest.mark.hard_timeout(240)
def test_quickstart_pools_transactions():
    port = free_port()
    env = clean_env(TIDEPOOL_BIN=tidepool_bin(), TIDEPOOL_PORT=str(port))
    # a copy of the script in its own directory, so that its .quickstart
    # never meets a developer's
    work = tempfile.mkdtemp(prefix="tp-qs-", dir="/tmp")
    os.chmod(work, 0o755)
    script = os.path.join(work, "quickstart.sh")
    with open(REPO / "quickstart.sh") as src, open(script, "w") as dst:
        dst.write(src.read())
    out = open(os.path.join(work, "out.log"), "wb")
    proc = subprocess.Popen(["bash", script], cwd=work, env=env, stdin=subprocess.DEVNULL,
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert wait_for_port("127.0.0.1", port, 180, proc), \
            open(os.path.join(work, "out.log")).read()
        with psycopg.connect(host="127.0.0.1", port=port, dbname="postgres", user="postgres",
                             autocommit=True, prepare_threshold=None) as c:
            assert c.execute("SELECT 1").fetchone() == (1,)
        with psycopg.connect(host="127.0.0.1", port=port, dbname="pgbouncer", user="postgres",
                             autocommit=True, prepare_threshold=None) as adm:
            modes = {r[0]: r[1] for r in adm.execute("SHOW CONFIG").fetchall()}
            assert modes["pool_mode"] == "transaction"
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 130
        assert not os.path.exists(os.path.join(work, ".quickstart"))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        out.close()
        subprocess.run(["rm", "-rf", work])
