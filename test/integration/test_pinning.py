"""Session state in transaction mode (pin_session_state, doc/pooling.md).

LISTEN, session advisory locks, temporary tables, SQL-level PREPARE and
WITH HOLD cursors outlive a transaction. tidepool keeps the client that
uses one on its backend until it disconnects, then resets that backend
(server_reset_query) before anyone else gets it. With the key off the
behaviour is PgBouncer's: the backend goes back to the pool, state and all.
"""

import asyncio

import psycopg
import pytest

import pgraw
from conftest import Background, free_port, wait_until
from test_http import scrape, value


def pid_of(conn):
    return conn.execute("select pg_backend_pid()").fetchone()[0]


def blocked_second_client(tp, role, why):
    """With a pool of one held by a pinned client, a second client's query
    waits: returns that client and its pending pid_of()."""
    b = tp.connect(user=role)
    waiting = Background(pid_of, b)
    assert not waiting.wait(1.0), why
    return b, waiting


def test_listen_pins_and_notifications_arrive(tidepool, role):
    tp = tidepool(pool_mode="transaction", default_pool_size=2)
    notifies = []
    with tp.connect(user=role) as listener, tp.connect(user=role) as other:
        listener.add_notify_handler(lambda n: notifies.append((n.channel, n.payload)))
        listener.execute("LISTEN tp_jobs")
        pinned_pid = pid_of(listener)
        # the other client runs many transactions: none of them on the listener's backend
        for _ in range(20):
            assert pid_of(other) != pinned_pid
        other.execute("NOTIFY tp_jobs, 'n5'")

        def got():
            listener.execute("select 1")
            return notifies
        assert wait_until(got, timeout=5) == [("tp_jobs", "n5")]
        assert pid_of(listener) == pinned_pid
    assert "pinned to its server until it disconnects: LISTEN" in tp.log()


def test_pinned_backend_is_reset_before_the_next_client(tidepool, role):
    tp = tidepool(pool_mode="transaction", default_pool_size=1)
    a = tp.connect(user=role)
    a.execute("LISTEN tp_reset")
    a.execute("select pg_advisory_lock(4711)")
    a.execute("CREATE TEMP TABLE tp_scratch (v int)")
    a.execute("insert into tp_scratch values (1)")
    pid_a = pid_of(a)
    # the only server stays with a between its transactions
    b, waiting = blocked_second_client(tp, role, "b got the pinned server while a was still connected")
    assert a.execute("select count(*) from tp_scratch").fetchone()[0] == 1
    assert a.execute("select pg_advisory_unlock(4711)").fetchone()[0] is True
    a.execute("select pg_advisory_lock(4711)")
    a.close()
    # a left: b gets the same backend, with nothing of a's session on it
    assert waiting.result(10) == pid_a
    assert b.execute("select count(*) from pg_listening_channels()").fetchone()[0] == 0
    assert b.execute("select count(*) from pg_locks where locktype = 'advisory'"
                     " and pid = pg_backend_pid()").fetchone()[0] == 0
    assert b.execute("select to_regclass('pg_temp.tp_scratch') is null").fetchone()[0] is True
    # b itself is not pinned: with pool size 1, a third client shares the backend
    c = tp.connect(user=role)
    assert pid_of(c) == pid_a
    b.close()
    c.close()


@pytest.mark.parametrize("statement", [
    "PREPARE tp_sql_prep AS SELECT 1",
    "BEGIN; DECLARE tp_cur CURSOR WITH HOLD FOR SELECT 1; COMMIT",
    "SELECT pg_try_advisory_lock(99)",
    "SELECT 1 AS v INTO TEMP tp_into",
    "CREATE TEMP TABLE tp_as AS SELECT 1 AS v",
    "LOAD 'auto_explain'",
])
def test_other_session_state_pins(tidepool, role, statement):
    tp = tidepool(pool_mode="transaction", default_pool_size=1)
    a = tp.connect(user=role)
    try:
        a.execute(statement)
    except psycopg.errors.InsufficientPrivilege:
        pass   # LOAD of a library outside plugins/ needs a superuser: it pins all the same
    b, waiting = blocked_second_client(tp, role, "%r did not pin the client" % statement)
    a.close()
    waiting.result(10)
    b.close()


def test_transaction_scoped_state_does_not_pin(tidepool, role):
    tp = tidepool(pool_mode="transaction", default_pool_size=1)
    a = tp.connect(user=role)
    a.execute("select pg_advisory_xact_lock(5)")
    a.execute("BEGIN; DECLARE tp_c CURSOR FOR SELECT 1; COMMIT")
    a.execute("select 'LISTEN inside a literal', pg_advisory_unlock_all()")
    a.execute("SET search_path = public")
    b = tp.connect(user=role)
    assert pid_of(b) == pid_of(a)   # shared: nothing pinned a
    a.close()
    b.close()
    assert "pinned" not in tp.log()


def test_listen_sent_with_the_extended_protocol_pins(tidepool, role):
    tp = tidepool(pool_mode="transaction", default_pool_size=1)
    with tp.raw() as r:
        r.startup(user=role)
        r.send(pgraw.parse_message("", "LISTEN tp_ext") + pgraw.bind_message("") +
               pgraw.execute_message("") + pgraw.sync_message())
        msgs = r.read_until_ready()
        assert [t for t, _ in msgs] == ["1", "2", "C", "Z"]
        b, waiting = blocked_second_client(tp, role, "LISTEN through Parse did not pin the client")
    waiting.result(10)
    b.close()


def test_pinning_off_behaves_like_pgbouncer(tidepool, role):
    tp = tidepool(pool_mode="transaction", default_pool_size=1, pin_session_state=0)
    a = tp.connect(user=role)
    a.execute("LISTEN tp_off")
    b = tp.connect(user=role)
    assert pid_of(b) == pid_of(a)   # the backend went back to the pool
    # and it still listens: the state leaked to whoever runs there next
    assert b.execute("select count(*) from pg_listening_channels()").fetchone()[0] == 1
    a.close()
    b.close()


def test_pinned_server_without_reset_query_is_closed(tidepool, pg, role):
    tp = tidepool(pool_mode="transaction", default_pool_size=1, server_reset_query="")
    a = tp.connect(user=role)
    a.execute("LISTEN tp_noreset")
    pid_a = pid_of(a)
    a.close()

    def gone():
        return pid_a not in [p for p, in pg.sql("select pid from pg_stat_activity")]
    assert wait_until(gone, timeout=5), "the pinned backend outlived its client without a reset"
    with tp.connect(user=role) as b:
        assert pid_of(b) != pid_a
        assert b.execute("select count(*) from pg_listening_channels()").fetchone()[0] == 0
    assert "server_reset_query is empty" in tp.log()


def test_session_mode_never_pins(tidepool, role):
    tp = tidepool(pool_mode="session", default_pool_size=1)
    with tp.connect(user=role) as a:
        a.execute("LISTEN tp_session")
    assert "pinned" not in tp.log()


def test_pinned_clients_metric(tidepool, role):
    mp = free_port()
    tp = tidepool(pool_mode="transaction", default_pool_size=2, metrics_port=mp)

    def pinned():
        return value(scrape(mp), "tidepool_pools_pinned_clients", database="appdb", user=role)
    a = tp.connect(user=role)
    a.execute("select 1")
    assert pinned() == 0
    a.execute("LISTEN tp_metric")
    assert pinned() == 1
    a.close()
    assert wait_until(lambda: pinned() == 0, timeout=5)


def test_statement_in_failed_transaction_still_pins_safely(tidepool, role):
    """A LISTEN that fails still pins (harmless); the client keeps working."""
    tp = tidepool(pool_mode="transaction", default_pool_size=1)
    with tp.connect(user=role) as a:
        a.execute("BEGIN")
        with pytest.raises(psycopg.errors.DivisionByZero):
            a.execute("select 1/0")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            a.execute("LISTEN tp_failed")
        a.execute("ROLLBACK")
        assert a.execute("select 41 + 1").fetchone()[0] == 42


def test_asyncpg_listener_in_transaction_mode(tidepool, role):
    """asyncpg's add_listener (LISTEN over its own connection) through a
    transaction pool: notifications arrive while other connections share
    the rest of the pool with prepared statements. (With the key off they
    never arrive: the LISTEN stays on a backend the listener left.)"""
    asyncpg = pytest.importorskip("asyncpg")
    tp = tidepool(pool_mode="transaction", default_pool_size=2, max_prepared_statements=50)

    async def main():
        listener = await asyncpg.connect(host=tp.host, port=tp.port, user=role, database="appdb")
        got = asyncio.Queue()
        await listener.add_listener("tp_async", lambda conn, pid, chan, payload: got.put_nowait(payload))
        others = [await asyncpg.connect(host=tp.host, port=tp.port, user=role, database="appdb")
                  for _ in range(4)]
        try:
            for i, conn in enumerate(others * 5):
                assert await conn.fetchval("select $1::int * 2", i) == i * 2
                if i % 5 == 0:
                    await conn.execute("select pg_notify('tp_async', $1)", "n%d" % i)
            payloads = [await asyncio.wait_for(got.get(), 10) for _ in range(4)]
            assert payloads == ["n0", "n5", "n10", "n15"]
        finally:
            for conn in others:
                await conn.close()
            await listener.close()

    asyncio.run(asyncio.wait_for(main(), 60))
