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


# ------------------------------------------- issue 16: what trust admits,
# and what an unauthenticated client learns

def startup_error(tp, user, database="appdb", password=None):
    with tp.raw() as c:
        c.send(pgraw.startup_message(user=user, database=database))
        with pytest.raises(pgraw.PgError) as ei:
            c.finish_startup(user=user, password=password)
    return ei.value.fields


@pytest.mark.parametrize("database", ["appdb", "no_such_db"])
def test_trust_admits_only_users_in_auth_file(tidepool, database):
    tp = tidepool(auth_type="trust", auth_file={"app": ""})
    with tp.connect(user="app") as c:
        assert c.execute("select current_user").fetchone()[0] == "app"
    err = startup_error(tp, "postgres", database)   # a real role, not in auth_file
    assert err["C"] == "28000" and '"trust" authentication failed' in err["M"], err
    assert "no such database" not in err["M"]


def test_any_requires_a_forced_user(tidepool, pg):
    tp = tidepool(auth_type="any", auth_file={},
                  databases={"appdb": "host=127.0.0.1 port=%d dbname=appdb" % pg.port})
    err = startup_error(tp, "app")
    assert err["C"] == "08P01" and "forced user" in err["M"], err


@pytest.mark.parametrize("auth_type", ["md5", "plain", "scram-sha-256"])
def test_unknown_database_told_only_after_the_password(tidepool, auth_type):
    tp = tidepool(auth_type=auth_type, auth_file={"app": "app_secret"})
    for user, password in (("app", "not_it"), ("nobody_here", "x")):
        with pytest.raises(psycopg.OperationalError) as ei:
            tp.connect(dbname="no_such_db", user=user, password=password)
        assert "password authentication failed" in str(ei.value), ei.value
        assert "no_such_db" not in str(ei.value)
    with pytest.raises(psycopg.OperationalError) as ei:
        tp.connect(dbname="no_such_db", user="app", password="app_secret")
    assert "no such database: no_such_db" in str(ei.value)
    if auth_type != "scram-sha-256":   # pgraw speaks cleartext and md5
        assert startup_error(tp, "app", "no_such_db", "app_secret")["C"] == "3D000"


def test_scram_against_an_md5_secret_says_nothing_about_the_secret(tidepool):
    tp = tidepool(auth_type="scram-sha-256",
                  auth_file={"app": "md5" + __import__("hashlib").md5(b"app_secretapp").hexdigest()})
    for password in ("app_secret", "not_it"):
        with pytest.raises(psycopg.OperationalError) as ei:
            tp.connect(user="app", password=password)
        msg = str(ei.value)
        assert 'password authentication failed for user "app"' in msg and "md5" not in msg, msg
