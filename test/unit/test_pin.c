/* Unit tests of the session-state recognizer (pin.c): each statement kind
 * that outlives a transaction, its look-alikes that do not (PREPARE
 * TRANSACTION, transaction-scoped advisory locks, unlocks, cursors without
 * HOLD, ordinary tables), leading comments, case folding, and prefixes cut
 * anywhere (the recognizer may see only the first bytes of a message). */
#include "unit.h"

#include <stdio.h>
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

static void test_more_state(void)
{
	CHECK_INT(of("SELECT * INTO TEMP t FROM x"), PIN_TEMP_TABLE);
	CHECK_INT(of("select a, b into temporary table t from x"), PIN_TEMP_TABLE);
	CHECK_INT(of("SELECT 1 INTO LOCAL TEMP t"), PIN_TEMP_TABLE);
	CHECK_INT(of("SELECT 1 Into /* c */ Temp t"), PIN_TEMP_TABLE);
	CHECK_INT(of("SELECT * INTO t FROM x"), PIN_NONE);
	CHECK_INT(of("SELECT pointo, into_temp FROM x"), PIN_NONE);
	CHECK_INT(of("INSERT INTO temp VALUES (1)"), PIN_NONE);
	CHECK_INT(of("CREATE TEMP TABLE t AS SELECT 1"), PIN_TEMP_TABLE);
	CHECK_INT(of("LOAD 'auto_explain'"), PIN_LOAD);
	CHECK_INT(of("load '$libdir/plugins/x'"), PIN_LOAD);
	CHECK_INT(of("SELECT 'load'"), PIN_NONE);
	CHECK_INT(of("SELECT pg_catalog.pg_advisory_lock(1)"), PIN_ADVISORY_LOCK);
	CHECK_INT(of("SELECT \"pg_advisory_lock\"(1, 2)"), PIN_ADVISORY_LOCK);
	CHECK_STR(pin_reason_name(PIN_LOAD), "LOAD");
}

static bool may_set(const char *q)
{
	return pin_classify(q, strlen(q)).settings;
}

static void test_settings_candidates(void)
{
	CHECK(may_set("SET search_path = a"));
	CHECK(may_set("  reset all"));
	CHECK(may_set("select 1; Set work_mem = '1MB'"));
	CHECK(may_set("SELECT set_config('a.b', 'x', false)"));
	CHECK(may_set("select pg_catalog.SET_CONFIG('a.b', 'x', false)"));
	CHECK(may_set("DISCARD ALL"));
	CHECK(!may_set("SELECT 1"));
	CHECK(!may_set("select abalance from pgbench_accounts where aid = $1"));
	CHECK(!may_set("UPDATE t SET a = 1"));
	CHECK(!may_set("SELECT my_set_configure()"));
	struct pin_class both = pin_classify("SET x.y = 1; LISTEN z", 21);
	CHECK(both.settings);
	CHECK_INT(both.reason, PIN_LISTEN);
}

/* The changes of q, each as "kind name=value" joined by " | ". */
static const char *changes(const char *q, unsigned *n_stmts)
{
	static char buf[1024];
	struct pin_change ch[8];
	unsigned stmts = 0;
	size_t n = pin_settings(q, strlen(q), ch, 8, &stmts);
	static const char *const kinds[] = { "SET", "CONFIG", "RESET", "RESET_ALL", "DISCARD_ALL", "CANNOT" };
	size_t len = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < n && i < 8; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%u:%s %s=%.*s", i ? " | " : "", ch[i].stmt,
				       kinds[ch[i].kind], ch[i].name, (int)ch[i].value_len,
				       ch[i].value ? ch[i].value : "");
	if (n_stmts)
		*n_stmts = stmts;
	return buf;
}

static void test_set_forms(void)
{
	unsigned n = 0;
	CHECK_STR(changes("SET search_path = tenant_42, public", &n), "0:SET search_path=tenant_42, public");
	CHECK_INT(n, 1);
	CHECK_STR(changes("set SESSION work_mem TO '64MB';", NULL), "0:SET work_mem='64MB'");
	CHECK_STR(changes("SET \"Statement_Timeout\" = 5000", NULL), "0:SET statement_timeout=5000");
	CHECK_STR(changes("SET myapp.tenant = 'a;b'", NULL), "0:SET myapp.tenant='a;b'");
	CHECK_STR(changes("SET search_path TO \"$user\", public /* c */ ;", NULL),
		  "0:SET search_path=\"$user\", public");
	CHECK_STR(changes("SET x.y = -1.5e-3", NULL), "0:SET x.y=-1.5e-3");
	CHECK_STR(changes("SET x.y = $$a'b$$", NULL), "0:SET x.y=$$a'b$$");
	CHECK_STR(changes("SET x.y = E'a\\'b'", NULL), "0:SET x.y=E'a\\'b'");
	CHECK_STR(changes("SET work_mem TO DEFAULT", NULL), "0:RESET work_mem=");
	CHECK_STR(changes("SET LOCAL work_mem = '1MB'", NULL), "");
	CHECK_STR(changes("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", NULL), "");
	CHECK_STR(changes("SET CONSTRAINTS ALL DEFERRED", NULL), "");
	CHECK_STR(changes("SET work_mem FROM CURRENT", NULL), "");
	CHECK_STR(changes("SET ROLE reporting", NULL), "0:SET role=reporting");
	CHECK_STR(changes("SET SESSION ROLE 'reporting'", NULL), "0:SET role='reporting'");
	CHECK_STR(changes("SET ROLE NONE", NULL), "0:RESET role=");
	CHECK_STR(changes("SET LOCAL ROLE x", NULL), "");
	CHECK_STR(changes("RESET ROLE", NULL), "0:RESET role=");
	CHECK_STR(changes("SET SESSION AUTHORIZATION app", NULL), "0:SET session_authorization=app");
	CHECK_STR(changes("SET SESSION AUTHORIZATION DEFAULT", NULL), "0:RESET session_authorization=");
	CHECK_STR(changes("RESET SESSION AUTHORIZATION", NULL), "0:RESET session_authorization=");
	CHECK_STR(changes("SET TIME ZONE 'UTC'", NULL), "0:SET timezone='UTC'");
	CHECK_STR(changes("SET TIME ZONE LOCAL", NULL), "0:RESET timezone=");
	CHECK_STR(changes("SET NAMES 'UTF8'", NULL), "0:SET client_encoding='UTF8'");
	CHECK_STR(changes("SET SCHEMA 'app'", NULL), "0:SET search_path='app'");
	CHECK_STR(changes("SET XML OPTION DOCUMENT", NULL), "0:SET xmloption=DOCUMENT");
	CHECK_STR(changes("RESET work_mem", NULL), "0:RESET work_mem=");
	CHECK_STR(changes("RESET ALL", NULL), "0:RESET_ALL =");
	CHECK_STR(changes("DISCARD ALL", NULL), "0:DISCARD_ALL =");
	CHECK_STR(changes("DISCARD PLANS", NULL), "");
	CHECK_STR(changes("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", NULL),
		  "0:CANNOT default_transaction_isolation=");
	CHECK_STR(changes("SET x.y = 'a\\b'", NULL), "0:CANNOT x.y=");   /* read by scs */
	CHECK_STR(changes("SET x.y = 'unterminated", NULL), "0:CANNOT x.y=");
}

static void test_set_config(void)
{
	CHECK_STR(changes("SELECT set_config('search_path', 'a, b', false)", NULL),
		  "0:CONFIG search_path='a, b'");
	CHECK_STR(changes("select pg_catalog.set_config('App.Tenant', 'it''s', 'f') AS x", NULL),
		  "0:CONFIG app.tenant='it''s'");
	CHECK_STR(changes("SELECT set_config('a.b', '1', false), set_config('a.c', '2', false)", NULL),
		  "0:CONFIG a.b='1' | 0:CONFIG a.c='2'");
	CHECK_STR(changes("SELECT set_config('a.b', '1', true)", NULL), "");
	CHECK_STR(changes("SELECT set_config('a.b', $1, true)", NULL), "");
	CHECK_STR(changes("SELECT set_config('a.b', $1, false)", NULL), "0:CANNOT =");
	CHECK_STR(changes("SELECT set_config($1, $2, $3)", NULL), "0:CANNOT =");
	CHECK_STR(changes("SELECT set_config('a.b', current_user, false)", NULL), "0:CANNOT =");
	CHECK_STR(changes("SELECT set_config('a.b', '1', false) FROM t WHERE false", NULL), "0:CANNOT =");
	CHECK_STR(changes("SELECT 'set_config(''a.b'', ''1'', false)'", NULL), "");
	CHECK_STR(changes("SELECT x FROM t WHERE set_config('a.b', '1', true) IS NOT NULL", NULL), "");
}

static void test_statement_numbers(void)
{
	unsigned n = 0;
	CHECK_STR(changes("SELECT ';SET a.b = 1'; SET c.d = 2", &n), "1:SET c.d=2");
	CHECK_INT(n, 2);
	CHECK_STR(changes("BEGIN;; SET a.b=1 ; ; COMMIT;", &n), "1:SET a.b=1");
	CHECK_INT(n, 3);
	CHECK_STR(changes("select $q$;$q$; /* ; */ -- ;\n reset a.b", &n), "1:RESET a.b=");
	CHECK_INT(n, 2);
	CHECK_STR(changes("CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2); SET a.b = 1", &n),
		  "1:SET a.b=1");
	CHECK_INT(n, 2);
	/* ';' inside BEGIN ATOMIC bodies: the numbers cannot be trusted */
	CHECK_STR(changes("CREATE FUNCTION f() RETURNS int BEGIN ATOMIC SELECT 1; END; SET a.b = 1", NULL),
		  "2:CANNOT a.b=1");
	/* more changes than room: the count says so */
	struct pin_change ch[1];
	unsigned stmts;
	CHECK_INT(pin_settings("SET a.b=1; SET a.c=2", 20, ch, 1, &stmts), 2);
	/* every prefix is safe to read */
	const char *q = "SET search_path = 'x', \"y\"; SELECT set_config('a.b', E'\\'', false)";
	for (size_t k = 0; k <= strlen(q); k++) {
		struct pin_change c8[8];
		(void)pin_settings(q, k, c8, 8, &stmts);
		(void)pin_classify(q, k);
	}
}

/* The first word is read by a fast path (first_word); it must agree with
 * the lexer on every edge: digits, '_', '$', quotes, long words. */
static void test_first_words(void)
{
	CHECK_INT(of("SeLeCt 1 INTO TEMP t"), PIN_TEMP_TABLE);
	CHECK_INT(of("select(1) into temp t"), PIN_TEMP_TABLE);
	CHECK_INT(of("select1 into temp t"), PIN_NONE);
	CHECK_INT(of("select_x into temp t"), PIN_NONE);
	CHECK_INT(of("select$1 into temp t"), PIN_NONE);
	CHECK_INT(of("\"select\" into temp t"), PIN_NONE);
	CHECK_INT(of("_select into temp t"), PIN_NONE);
	CHECK_INT(of("listenlistenlistenx"), PIN_NONE);
	CHECK_INT(of("Prepare p AS select 1"), PIN_PREPARE);
	CHECK_INT(of("prepare\ttransaction 'x'"), PIN_NONE);
	CHECK_INT(of("create\nglobal temporary table t (a int)"), PIN_TEMP_TABLE);
	CHECK_INT(of("LOAD 'auto_explain'"), PIN_LOAD);
	CHECK_INT(of("listen"), PIN_LISTEN);
	CHECK(pin_classify("reset all", 9).settings);
	CHECK(!pin_classify("resets", 6).settings);
}

/* One scan for both classifiers: may_deallocate is set when some
 * statement starts with 'd' (DEALLOCATE, DISCARD, and look-alikes such as
 * DELETE, which prepared.c then reads precisely) or is empty, never when
 * none does. */
static void test_may_deallocate(void)
{
	static const char *const yes[] = {
		"DEALLOCATE x", "deallocate all", "  /* c */ -- d\n Discard ALL", "select 1; deallocate p",
		"select 1;\n\tDEALLOCATE ALL", "DELETE FROM t", "", "  ", "select 1;  ",
	};
	static const char *const no[] = {
		"select 1", "select 1;", "SELECT 'deallocate'", "UPDATE t SET d = 1; INSERT INTO d VALUES (1)",
		"BEGIN; SELECT 1; END;",
	};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		CHECK(pin_classify(yes[i], strlen(yes[i])).may_deallocate);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		CHECK(!pin_classify(no[i], strlen(no[i])).may_deallocate);
	/* as a Query body arrives: the string and its terminating NUL */
	CHECK(!pin_classify("select 1;\0", 10).may_deallocate);
	CHECK(pin_classify("select 1;deallocate x\0", 22).may_deallocate);
}

int main(void)
{
	RUN(test_first_words);
	RUN(test_may_deallocate);
	RUN(test_listen);
	RUN(test_advisory_locks);
	RUN(test_temp_tables);
	RUN(test_prepare_and_cursors);
	RUN(test_plain_statements_and_prefixes);
	RUN(test_more_state);
	RUN(test_settings_candidates);
	RUN(test_set_forms);
	RUN(test_set_config);
	RUN(test_statement_numbers);
	return UNIT_DONE();
}
