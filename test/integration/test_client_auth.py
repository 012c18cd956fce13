"""Client authentication to tidepool (auth_type). Issue 2 requires trust and
any; md5, scram-sha-256 and plain use the secrets in auth_file."""

import psycopg
import pytest

import pgraw
from conftest import Background


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
