"""Client authentication to tidepool (auth_type). Issue 2 requires trust and
any; md5, scram-sha-256 and plain use the secrets in auth_file."""

import os
import re
import subprocess

import psycopg
import pytest

import pgraw
from conftest import Background, tidepool_bin


def test_auth_trust(tidepool):
    tp = tidepool(auth_type="trust")
    with tp.connect(user="app") as c:
        assert c.execute("select current_user").fetchone()[0] == "app"


def test_auth_any_ignores_user_name(tidepool, pg):
    tp = tidepool(auth_type="any",
                  databases={"appdb": "host=127.0.0.1 port=%d dbname=appdb user=app" % pg.port})
    with tp.connect(user="somebody_else") as c:
        assert c.execute("select current_user").fetchone()[0] == "app"


@pytest.mark.parametrize("auth_type", ["md5", "scram-sha-256", "plain"])
def test_auth_password_right(tidepool, auth_type):
    tp = tidepool(auth_type=auth_type, auth_file={"app": "app_secret"})
    with tp.connect(user="app", password="app_secret") as c:
        assert c.execute("select current_user").fetchone()[0] == "app"


@pytest.mark.parametrize("auth_type", ["md5", "scram-sha-256", "plain"])
def test_auth_password_wrong(tidepool, auth_type):
    tp = tidepool(auth_type=auth_type, auth_file={"app": "app_secret"})
    err = Background(lambda: tp.connect(user="app", password="not_it").close()).exception(20)
    assert isinstance(err, psycopg.OperationalError), err
    assert tp.alive()
    with tp.connect(user="app", password="app_secret") as c:
        assert c.execute("select 1").fetchone()[0] == 1


@pytest.mark.parametrize("auth_type", ["md5", "plain"])
def test_auth_password_wrong_sqlstate_28P01(tidepool, auth_type):
    tp = tidepool(auth_type=auth_type, auth_file={"app": "app_secret"})
    with tp.raw() as c:
        c.send(pgraw.startup_message(user="app", database="appdb"))
        with pytest.raises(pgraw.PgError) as ei:
            c.finish_startup(user="app", password="not_it")
        assert ei.value.sqlstate == "28P01", ei.value.fields


def test_auth_unknown_user_rejected(tidepool):
    tp = tidepool(auth_type="md5", auth_file={"app": "app_secret"})
    err = Background(lambda: tp.connect(user="nobody_here", password="x").close()).exception(20)
    assert isinstance(err, psycopg.OperationalError), err


def passwd_line(user, password):
    """`tidepool --passwd USER` with the password on stdin."""
    r = subprocess.run([tidepool_bin(), "--passwd", user], input=password + "\n",
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_passwd_helper_line_is_a_userlist_entry(tidepool, pg):
    line = passwd_line("app", "helper pw")
    m = re.fullmatch(r'"app" "(SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+)"\n', line)
    assert m, line
    # PostgreSQL itself takes the verifier: proof that it is well formed
    role = pg.create_role("pw")
    pg.sql("ALTER ROLE %s PASSWORD '%s'" % (role, m.group(1)))
    assert pg.sql("select rolpassword from pg_authid where rolname = %s", (role,))[0][0] == m.group(1)

    tp = tidepool(auth_type="scram-sha-256", auth_file=line)
    r = tp.psql("select current_user", password="helper pw")
    assert r.returncode == 0 and r.stdout.strip() == "app", r.stderr
    r = tp.psql("select current_user", password="helper pw2")
    assert r.returncode != 0 and 'password authentication failed for user "app"' in r.stderr, r.stderr


def test_passwd_helper_quotes_user_name(tidepool, pg):
    name = 'we"ird %d' % os.getpid()
    pg.sql('CREATE ROLE "%s" LOGIN' % name.replace('"', '""'))
    line = passwd_line(name, "q pw")
    assert line.startswith('"%s" "SCRAM-SHA-256$' % name.replace('"', '""')), line
    tp = tidepool(auth_type="md5", auth_file=line)
    with psycopg.connect(host=tp.host, port=tp.port, dbname="appdb", user=name, password="q pw",
                         connect_timeout=10, autocommit=True) as c:
        assert c.execute("select current_user").fetchone()[0] == name


def test_passwd_helper_refuses_empty_password():
    r = subprocess.run([tidepool_bin(), "--passwd", "app"], input="\n", capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1 and "empty password" in r.stderr


def test_auth_file_reloaded(tidepool):
    tp = tidepool(auth_type="md5", auth_file={"app": "old_pw"})
    with tp.connect(password="old_pw") as c:
        assert c.execute("select 1").fetchone()[0] == 1
    tp.write_config(auth_file={"app": "new_pw"})
    tp.reload()
    with pytest.raises(psycopg.OperationalError) as ei:
        tp.connect(password="old_pw")
    assert 'password authentication failed for user "app"' in str(ei.value)
    with tp.connect(password="new_pw") as c:
        assert c.execute("select 1").fetchone()[0] == 1
    # a broken auth_file on reload keeps the secrets in force
    tp.write_config(auth_file='"app" "unterminated\n')
    tp.reload()
    assert "reload failed" in tp.log()
    with tp.connect(password="new_pw") as c:
        assert c.execute("select 1").fetchone()[0] == 1
