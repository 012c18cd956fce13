"""Issue 2: tidepool logs in to PostgreSQL with trust, cleartext, md5 and
SCRAM-SHA-256, with the password from [databases] or from auth_file.

The pg fixture's pg_hba.conf makes 127.0.0.1 logins of scram_user use
scram-sha-256, md5_user md5, plain_user password (cleartext)."""

import hashlib

import psycopg
import pytest

from conftest import Background

USERS = {"scram_user": "scram_pw", "md5_user": "md5_pw", "plain_user": "plain_pw"}


def md5_secret(user, password):
    return "md5" + hashlib.md5((password + user).encode()).hexdigest()


@pytest.mark.parametrize("user", list(USERS))
def test_server_login_with_password_in_databases(tidepool, pg, user):
    tp = tidepool(databases={
        "appdb": "host=127.0.0.1 port=%d dbname=appdb user=%s password=%s" % (pg.port, user, USERS[user])})
    # the client (trust) is app; the server login uses the forced user
    with tp.connect(user="app") as c:
        assert c.execute("select current_user").fetchone()[0] == user
    r = tp.psql("select current_user")
    assert r.returncode == 0 and r.stdout.strip() == user, r.stderr


@pytest.mark.parametrize("user", list(USERS))
def test_server_login_with_password_from_auth_file(tidepool, user):
    tp = tidepool(auth_file={user: USERS[user]})
    with tp.connect(user=user) as c:
        assert c.execute("select current_user, current_database()").fetchone() == (user, "appdb")


def test_server_login_md5_secret_from_auth_file(tidepool):
    tp = tidepool(auth_file={"md5_user": md5_secret("md5_user", "md5_pw")})
    with tp.connect(user="md5_user") as c:
        assert c.execute("select current_user").fetchone()[0] == "md5_user"


def test_server_login_trust_forced_user(tidepool, pg):
    tp = tidepool(databases={"appdb": "host=127.0.0.1 port=%d dbname=appdb user=app" % pg.port})
    with tp.connect(user="postgres") as c:
        assert c.execute("select current_user").fetchone()[0] == "app"


@pytest.mark.parametrize("user", list(USERS))
def test_server_login_wrong_password_fails_cleanly(tidepool, pg, user):
    tp = tidepool(databases={
        "appdb": "host=127.0.0.1 port=%d dbname=appdb user=%s password=wrong" % (pg.port, user),
        "postgres": "host=127.0.0.1 port=%d dbname=postgres" % pg.port,
    })

    def attempt():
        with tp.connect(user="app") as c:
            c.execute("select 1")

    err = Background(attempt).exception(30)
    assert isinstance(err, psycopg.Error), "login with a wrong server password succeeded: %r" % err
    # other pools are not affected
    with tp.connect(dbname="postgres") as c:
        assert c.execute("select 1").fetchone()[0] == 1
    assert tp.alive()


def test_two_pools_different_server_users(tidepool, pg):
    tp = tidepool(databases={
        "scramdb": "host=127.0.0.1 port=%d dbname=appdb user=scram_user password=scram_pw" % pg.port,
        "md5db": "host=127.0.0.1 port=%d dbname=appdb user=md5_user password=md5_pw" % pg.port,
    })
    a = tp.connect(dbname="scramdb")
    b = tp.connect(dbname="md5db")
    assert a.execute("select current_user").fetchone()[0] == "scram_user"
    assert b.execute("select current_user").fetchone()[0] == "md5_user"
    a.close()
    b.close()


@pytest.mark.parametrize("user,length", [("plain_user", 2047), ("plain_user", 60000), ("scram_user", 2047)])
def test_server_login_with_a_long_password(tidepool, pg, user, length):
    """Issue 16: PgBouncer takes server passwords up to 2047 bytes (65535 in
    its HEAD; PostgreSQL takes a PasswordMessage of up to 64 kB); tidepool
    failed with "login message too large"."""
    password = ("pw%d" % length) * (length // 6) + "x" * (length % 6)
    password = password[:length]
    assert len(password) == length
    pg.sql("SET password_encryption = 'scram-sha-256'; ALTER ROLE %s PASSWORD '%s'" % (user, password))
    try:
        tp = tidepool(databases={
            "appdb": "host=127.0.0.1 port=%d dbname=appdb user=%s password=%s" % (pg.port, user, password)})
        with tp.connect(user="app") as c:
            assert c.execute("select current_user").fetchone()[0] == user
    finally:
        pg.sql("SET password_encryption = 'scram-sha-256'; ALTER ROLE %s PASSWORD '%s'" % (user, USERS[user]))


def test_client_password_of_65535_bytes(tidepool):
    password = "p" * 65535
    tp = tidepool(auth_type="plain", auth_file={"app": password})
    with tp.connect(user="app", password=password) as c:
        assert c.execute("select 1").fetchone()[0] == 1
