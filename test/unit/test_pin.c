/* Unit tests of the session-state recognizer (pin.c): each statement kind
 * that outlives a transaction, its look-alikes that do not (PREPARE
 * TRANSACTION, transaction-scoped advisory locks, unlocks, cursors without
 * HOLD, ordinary tables), leading comments, case folding, and prefixes cut
 * anywhere (the recognizer may see only the first bytes of a message). */
#include "unit.h"

#include <string.h>

#include "pin.h"

static enum pin_reason of(const char *q)
{
	return pin_reason_of_sql(q, strlen(q));
}

static void test_listen(void)
{
	CHECK_INT(of("LISTEN jobs"), PIN_LISTEN);
	CHECK_INT(of("  listen \"Jobs\";"), PIN_LISTEN);
	CHECK_INT(of("/* app=web */ -- note\n Listen x"), PIN_LISTEN);
	CHECK_INT(of("/* outer /* nested */ still comment */ LISTEN x"), PIN_LISTEN);
	CHECK_INT(of("UNLISTEN *"), PIN_NONE);
	CHECK_INT(of("NOTIFY jobs, 'x'"), PIN_NONE);
	CHECK_INT(of("select 'listen'"), PIN_NONE);
	CHECK_INT(of("listener"), PIN_NONE);
}

static void test_advisory_locks(void)
{
	CHECK_INT(of("SELECT pg_advisory_lock(42)"), PIN_ADVISORY_LOCK);
	CHECK_INT(of("select pg_try_advisory_lock(1, 2)"), PIN_ADVISORY_LOCK);
	CHECK_INT(of("SELECT PG_ADVISORY_LOCK_SHARED($1)"), PIN_ADVISORY_LOCK);
	CHECK_INT(of("select x from t where pg_try_advisory_lock_shared(id)"), PIN_ADVISORY_LOCK);
	CHECK_INT(of("SELECT pg_advisory_xact_lock(42)"), PIN_NONE);
	CHECK_INT(of("SELECT pg_try_advisory_xact_lock_shared(42)"), PIN_NONE);
	CHECK_INT(of("SELECT pg_advisory_unlock(42)"), PIN_NONE);
	CHECK_INT(of("SELECT pg_advisory_unlock_all()"), PIN_NONE);
	CHECK_INT(of("select abalance from pgbench_accounts where aid = 1"), PIN_NONE);
	CHECK_INT(of("_lock"), PIN_NONE);
	CHECK_INT(of("advisory_"), PIN_NONE);
	CHECK_INT(of("advisory_loc"), PIN_NONE);
}

static void test_temp_tables(void)
{
	CHECK_INT(of("CREATE TEMP TABLE t (a int)"), PIN_TEMP_TABLE);
	CHECK_INT(of("create temporary table t as select 1"), PIN_TEMP_TABLE);
	CHECK_INT(of("CREATE LOCAL TEMPORARY TABLE t (a int)"), PIN_TEMP_TABLE);
	CHECK_INT(of("CREATE GLOBAL TEMP TABLE t (a int)"), PIN_TEMP_TABLE);
	CHECK_INT(of("CREATE TEMP SEQUENCE s"), PIN_TEMP_TABLE);
	CHECK_INT(of("CREATE TABLE temp (a int)"), PIN_NONE);
	CHECK_INT(of("CREATE UNLOGGED TABLE t (a int)"), PIN_NONE);
	CHECK_INT(of("create index on t (a)"), PIN_NONE);
}

static void test_prepare_and_cursors(void)
{
	CHECK_INT(of("PREPARE q(int) AS SELECT $1"), PIN_PREPARE);
	CHECK_INT(of("prepare q as select 1"), PIN_PREPARE);
	CHECK_INT(of("PREPARE TRANSACTION 'gid-1'"), PIN_NONE);
	CHECK_INT(of("DECLARE c CURSOR WITH HOLD FOR SELECT 1"), PIN_HOLD_CURSOR);
	CHECK_INT(of("declare \"My Cursor\" no scroll cursor with hold for select 1"), PIN_HOLD_CURSOR);
	CHECK_INT(of("DECLARE a_cursor_name_longer_than_sixteen CURSOR WITH HOLD FOR SELECT 1"), PIN_HOLD_CURSOR);
	CHECK_INT(of("DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1"), PIN_NONE);
	CHECK_INT(of("DECLARE c CURSOR FOR SELECT 'with hold'"), PIN_NONE);
	CHECK_INT(of("DECLARE c CURSOR FOR SELECT 1"), PIN_NONE);
	CHECK_INT(of("DECLARE \"unterminated"), PIN_NONE);
}

static void test_plain_statements_and_prefixes(void)
{
	CHECK_INT(of(""), PIN_NONE);
	CHECK_INT(of("   "), PIN_NONE);
	CHECK_INT(of("/* unterminated comment LISTEN x"), PIN_NONE);
	CHECK_INT(of("SET search_path = app"), PIN_NONE);
	CHECK_INT(of("-1"), PIN_NONE);
	CHECK_INT(of("/ 2"), PIN_NONE);
	CHECK_INT(of("\"listen\" x"), PIN_NONE);
	CHECK_INT(of("BEGIN; SELECT 1; COMMIT"), PIN_NONE);
	CHECK_INT(of("BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT 1; COMMIT"), PIN_HOLD_CURSOR);
	CHECK_INT(of("select 1;listen x"), PIN_LISTEN);
	CHECK_INT(of("SELECT 1; /* c */ CREATE TEMP TABLE t (a int);"), PIN_TEMP_TABLE);
	CHECK_INT(of("select 'a;b'; select 2;"), PIN_NONE);
	/* every prefix of every statement is safe to read, and a prefix never
	 * claims more than the whole does */
	static const char *const all[] = {
		"LISTEN jobs", "SELECT pg_advisory_lock(42)", "CREATE LOCAL TEMP TABLE t (a int)",
		"PREPARE TRANSACTION 'x'", "DECLARE \"c\" CURSOR WITH HOLD FOR SELECT 1",
		"/* a */ -- b\n select 1",
	};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		size_t n = strlen(all[i]);
		enum pin_reason whole = pin_reason_of_sql(all[i], n);
		for (size_t k = 0; k <= n; k++) {
			enum pin_reason r = pin_reason_of_sql(all[i], k);
			CHECK(r == PIN_NONE || r == whole || (whole == PIN_NONE && r == PIN_PREPARE));
		}
	}
	CHECK_STR(pin_reason_name(PIN_LISTEN), "LISTEN");
	CHECK_STR(pin_reason_name(PIN_ADVISORY_LOCK), "session advisory lock");
}

int main(void)
{
	RUN(test_listen);
	RUN(test_advisory_locks);
	RUN(test_temp_tables);
	RUN(test_prepare_and_cursors);
	RUN(test_plain_statements_and_prefixes);
	return UNIT_DONE();
}
