"""Issue 4 (part): SCRAM pass-through. The auth_file holds only the SCRAM
verifier PostgreSQL stores for scram_user (no plain password anywhere in the
configuration); the pg fixture's pg_hba.conf requires scram-sha-256 for that
user over TCP. tidepool checks the client's proof against the verifier and
logs in to PostgreSQL with the keys the proof revealed."""

import psycopg
import pytest


def verifier(pg, user):
    return pg.sql("select rolpassword from pg_authid where rolname = %s", (user,))[0][0]


@pytest.mark.parametrize("auth_type", ["scram-sha-256", "md5"])
def test_scram_pass_through_with_verifier_only(tidepool, pg, auth_type):
    secret = verifier(pg, "scram_user")
    assert secret.startswith("SCRAM-SHA-256$")
    tp = tidepool(auth_type=auth_type, auth_file={"scram_user": secret}, pool_mode="transaction")
    for _ in range(3):
        with tp.connect(user="scram_user", password="scram_pw") as c:
            assert c.execute("select current_user").fetchone()[0] == "scram_user"


def test_scram_pass_through_wrong_password_rejected(tidepool, pg):
    tp = tidepool(auth_type="scram-sha-256", auth_file={"scram_user": verifier(pg, "scram_user")})
    with pytest.raises(psycopg.OperationalError) as e:
        tp.connect(user="scram_user", password="wrong")
    assert "password authentication failed" in str(e.value)
    # a later right password still works, and reaches the server
    with tp.connect(user="scram_user", password="scram_pw") as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_verifier_without_scram_client_gives_clear_error(tidepool, pg):
    # trust on the client side: no proof, so no keys to log in with
    tp = tidepool(auth_type="trust", auth_file={"scram_user": verifier(pg, "scram_user")})
    with pytest.raises(psycopg.OperationalError) as e:
        with tp.connect(user="scram_user") as c:
            c.execute("select 1")
    assert "SCRAM" in str(e.value)


def test_scram_pass_through_to_forced_user_with_the_same_verifier(tidepool, pg):
    # the database forces user=scram_user; a client logging in as another
    # name with the very same verifier proves the keys of that verifier
    secret = verifier(pg, "scram_user")
    databases = {"appdb": "host=127.0.0.1 port=%d dbname=appdb user=scram_user" % pg.port}
    tp = tidepool(auth_type="scram-sha-256", databases=databases,
                  auth_file={"scram_user": secret, "team_login": secret})
    with tp.connect(user="team_login", password="scram_pw") as c:
        assert c.execute("select current_user").fetchone()[0] == "scram_user"
