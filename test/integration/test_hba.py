"""Issue 4: auth_type = hba with auth_hba_file in pg_hba.conf format. Clients
reach tidepool over 127.0.0.1 and its unix socket; rules for other networks
(10.0.0.0/8) stand for the rejected side."""

import os
import pwd

import psycopg
import pytest

import pgraw


def hba_tidepool(tidepool, tmp_path, rules, **kw):
    path = tmp_path / "hba.conf"
    path.write_text(rules)
    kw.setdefault("auth_file", {"app": "app_pw", "scram_user": "scram_pw", "blocked": "x"})
    return tidepool(auth_type="hba", auth_hba_file=str(path), **kw), path


def raw_error(tp, user="app", database="appdb", password=None):
    """The ErrorResponse fields a raw login gets (None if it succeeds)."""
    with tp.raw() as c:
        c.send(pgraw.startup_message(user=user, database=database))
        try:
            c.finish_startup(user=user, password=password)
        except pgraw.PgError as e:
            return e.fields
    return None


def test_hba_allowed_and_rejected_network(tidepool, tmp_path):
    tp, path = hba_tidepool(tidepool, tmp_path, "host all all 10.0.0.0/8 trust\n")
    err = raw_error(tp)
    assert err["C"] == "28000", err
    assert err["M"] == ('no pg_hba.conf entry for host "127.0.0.1", user "app", '
                        'database "appdb", no encryption'), err
    with pytest.raises(psycopg.OperationalError) as ei:
        tp.connect(password="app_pw")
    assert "no pg_hba.conf entry" in str(ei.value)

    # the 127.0.0.0/8 network with md5: a password is needed and checked
    path.write_text("host all all 10.0.0.0/8 trust\nhost all all 127.0.0.0/8 md5\n")
    tp.reload()
    with tp.connect(password="app_pw") as c:
        assert c.execute("select current_user").fetchone()[0] == "app"
    err = raw_error(tp, password="wrong")
    assert err["C"] == "28P01", err
    assert tp.alive()


def test_hba_local_line_for_unix_socket_only(tidepool, tmp_path):
    tp, _ = hba_tidepool(tidepool, tmp_path, "local all all trust\nhost all all 10.0.0.0/8 trust\n")
    with tp.connect(host=tp.sockdir) as c:
        assert c.execute("select current_user").fetchone()[0] == "app"
    err = raw_error(tp)
    assert err["C"] == "28000" and "no pg_hba.conf entry" in err["M"], err


def test_hba_reject_line(tidepool, tmp_path):
    rules = ("# blocked is refused whatever its password\n"
             "host all blocked 127.0.0.1/32 reject\n"
             "host all all 127.0.0.1/32 trust\n")
    tp, _ = hba_tidepool(tidepool, tmp_path, rules)
    err = raw_error(tp, user="blocked")
    assert err["C"] == "28000", err
    assert err["M"] == ('pg_hba.conf rejects connection for host "127.0.0.1", user "blocked", '
                        'database "appdb", no encryption'), err
    with tp.connect(user="app") as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_hba_sameuser(tidepool, tmp_path, pg):
    databases = {
        "app": "host=127.0.0.1 port=%d dbname=appdb" % pg.port,
        "appdb": "host=127.0.0.1 port=%d dbname=appdb" % pg.port,
    }
    tp, _ = hba_tidepool(tidepool, tmp_path, "host sameuser all 127.0.0.1/32 trust\n",
                         databases=databases)
    with tp.connect(dbname="app", user="app") as c:
        assert c.execute("select current_database()").fetchone()[0] == "appdb"
    err = raw_error(tp, user="app", database="appdb")
    assert err["C"] == "28000" and 'database "appdb"' in err["M"], err


def test_hba_methods_per_line(tidepool, tmp_path, pg):
    secret = pg.sql("select rolpassword from pg_authid where rolname = 'scram_user'")[0][0]
    rules = ("host all scram_user 127.0.0.1/32 scram-sha-256\n"
             "host all app 127.0.0.1/32 password\n"
             "host all all 127.0.0.1/32 md5\n")
    tp, _ = hba_tidepool(tidepool, tmp_path, rules,
                         auth_file={"app": "app_pw", "scram_user": secret})
    # scram line, with SCRAM pass-through to PostgreSQL (which wants SCRAM)
    with tp.connect(user="scram_user", password="scram_pw") as c:
        assert c.execute("select current_user").fetchone()[0] == "scram_user"
    with pytest.raises(psycopg.OperationalError) as ei:
        tp.connect(user="scram_user", password="nope")
    assert 'password authentication failed for user "scram_user"' in str(ei.value)
    # password line: cleartext, which the raw client answers
    with tp.raw() as c:
        c.startup(user="app", password="app_pw")
        rows, err, _ = c.query("select 1")
        assert err is None and rows == [["1"]]
    err = raw_error(tp, user="app", password="bad")
    assert err["C"] == "28P01", err
    # md5 line: an unknown user gets the same answer as a wrong password
    with pytest.raises(psycopg.OperationalError) as unknown:
        tp.connect(user="nobody_here", password="x")
    assert 'password authentication failed for user "nobody_here"' in str(unknown.value)


def test_hba_peer(tidepool, tmp_path, pg):
    me = pwd.getpwuid(os.geteuid()).pw_name
    databases = {"appdb": "host=127.0.0.1 port=%d dbname=appdb user=app" % pg.port}
    tp, _ = hba_tidepool(tidepool, tmp_path, "local all all peer\n", databases=databases)
    # the OS user running the test is the user asked for: accepted
    with tp.connect(host=tp.sockdir, user=me) as c:
        assert c.execute("select current_user").fetchone()[0] == "app"
    with pytest.raises(psycopg.OperationalError) as ei:
        tp.connect(host=tp.sockdir, user="someone_else_%d" % os.getpid())
    assert "Peer authentication failed" in str(ei.value)


def test_hba_cert_line_without_tls(tidepool, tmp_path):
    tp, _ = hba_tidepool(tidepool, tmp_path, "hostssl all all 0.0.0.0/0 trust\nhost all all 127.0.0.1/32 cert\n")
    err = raw_error(tp)
    assert err["C"] == "28000", err
    assert "certificate" in err["M"] and "TLS" in err["M"], err
    assert tp.alive()


def test_hba_bad_file_on_reload_keeps_old_rules(tidepool, tmp_path):
    tp, path = hba_tidepool(tidepool, tmp_path, "host all all 127.0.0.1/32 trust\n")
    with tp.connect() as c:
        assert c.execute("select 1").fetchone()[0] == 1
    path.write_text("host all +admins 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 reject\n")
    tp.reload()
    log = tp.log()
    assert "reload failed" in log and "group membership" in log and "hba.conf:1" in log, log
    with tp.connect() as c:   # the old rules still apply
        assert c.execute("select 1").fetchone()[0] == 1
    # a good file is taken on the next reload
    path.write_text("host all all 127.0.0.1/32 reject\n")
    tp.reload()
    err = raw_error(tp)
    assert err["C"] == "28000" and "rejects connection" in err["M"], err


def test_hba_bad_file_at_start_refused(tidepool, tmp_path):
    path = tmp_path / "hba.conf"
    path.write_text("host all all example.com trust\n")
    tp = tidepool(auth_type="hba", auth_hba_file=str(path), start=False)
    import subprocess
    from conftest import tidepool_bin
    r = subprocess.run([tidepool_bin(), "--check", tp.config_path], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1
    assert "%s:1: " % path in r.stderr and "host names are not supported" in r.stderr, r.stderr
