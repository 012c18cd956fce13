/* Unit tests of settings.c without sockets: a client's changes matched
 * against simulated answers of PostgreSQL (CommandComplete, ErrorResponse,
 * ReadyForQuery) by batch and statement number, committed or undone with
 * their transaction, and the SQL that gives a backend its client's
 * settings (RESET of another client's first, session authorization, role,
 * then the rest; nothing at all for two empty lists). */
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "params.h"
#include "pool.h"
#include "proto.h"
#include "server.h"
#include "settings.h"

static const char *sync_sql(const struct server *s, const struct client *c)
{
	static char sql[2048];
	size_t len = 0;
	bool overflow = false;
	sql[0] = '\0';
	if (!settings_sync_sql(s, c, sql, sizeof(sql), &len, &overflow))
		return overflow ? "(overflow)" : "(none)";
	return sql;
}

/* The client sends query q as the next batch on s. */
static void send_query(struct client *c, struct server *s, const char *q)
{
	settings_client_sql(c, s, NULL, q, strlen(q));
	s->sync_sent++;
	s->outcomes = 0;
}

static void answer(struct server *s, uint8_t type, const char *tag)
{
	settings_server_outcome(s, type, (const uint8_t *)tag, (uint32_t)strlen(tag) + 1, s->outcomes++);
}

static bool ready(struct server *s, char status)
{
	s->sync_recv++;
	s->outcomes = 0;
	return settings_server_ready(s, status);
}

static void test_commit_rollback_and_sync(void)
{
	params_set_tracked("");
	struct pool *p = calloc(1, sizeof(*p));
	struct client *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct server *s = calloc(1, sizeof(*s)), *s2 = calloc(1, sizeof(*s2));
	a->pool = b->pool = p;
	s->client = a;
	CHECK_STR(sync_sql(s, a), "(none)");
	send_query(a, s, "SET work_mem = '64MB'; SELECT set_config('myapp.t', 'it''s', false)");
	answer(s, PQ_MSG_COMMAND_COMPLETE, "SET");
	answer(s, PQ_MSG_COMMAND_COMPLETE, "SELECT 1");
	CHECK(ready(s, 'I'));
	CHECK_INT(settings_client_count(a), 2);
	CHECK_STR(sync_sql(s, a), "(none)");   /* the backend has them already */
	CHECK_STR(sync_sql(s2, a), "SET \"work_mem\" TO '64MB';"
				   "SELECT pg_catalog.set_config('myapp.t', 'it''s', false);");
	/* b has nothing: the backend goes back to the defaults */
	CHECK_STR(sync_sql(s, b), "RESET \"work_mem\";RESET \"myapp.t\";");

	/* BEGIN; SET ...; ROLLBACK: undone */
	send_query(a, s, "BEGIN; SET work_mem = '1MB'");
	answer(s, PQ_MSG_COMMAND_COMPLETE, "BEGIN");
	answer(s, PQ_MSG_COMMAND_COMPLETE, "SET");
	CHECK(ready(s, 'T'));
	send_query(a, s, "ROLLBACK");
	answer(s, PQ_MSG_COMMAND_COMPLETE, "ROLLBACK");
	CHECK(ready(s, 'I'));
	CHECK_STR(sync_sql(s2, a), "SET \"work_mem\" TO '64MB';"
				   "SELECT pg_catalog.set_config('myapp.t', 'it''s', false);");
	/* an error later in the same string: undone */
	send_query(a, s, "SET work_mem = '2MB'; SELECT 1/0");
	answer(s, PQ_MSG_COMMAND_COMPLETE, "SET");
	answer(s, PQ_MSG_ERROR, "");
	CHECK(ready(s, 'I'));
	/* the change's own error: nothing recorded */
	send_query(a, s, "SET work_mem = 'lots'");
	answer(s, PQ_MSG_ERROR, "");
	CHECK(ready(s, 'I'));
	/* SET LOCAL: not a change; RESET ALL keeps the role */
	send_query(a, s, "BEGIN; SET LOCAL work_mem = '3MB'; COMMIT");
	answer(s, PQ_MSG_COMMAND_COMPLETE, "BEGIN");
	answer(s, PQ_MSG_COMMAND_COMPLETE, "SET");
	answer(s, PQ_MSG_COMMAND_COMPLETE, "COMMIT");
	CHECK(ready(s, 'I'));
	CHECK_INT(settings_client_count(a), 2);
	send_query(a, s, "SET ROLE r1; SET SESSION AUTHORIZATION u1; RESET ALL");
	answer(s, PQ_MSG_COMMAND_COMPLETE, "SET");
	answer(s, PQ_MSG_COMMAND_COMPLETE, "SET");
	answer(s, PQ_MSG_COMMAND_COMPLETE, "RESET");
	CHECK(ready(s, 'I'));
	CHECK_INT(settings_client_count(a), 2);
	CHECK_STR(sync_sql(s2, a), "SET SESSION AUTHORIZATION u1;SET ROLE r1;");
	CHECK_STR(sync_sql(s, b), "RESET ROLE;RESET SESSION AUTHORIZATION;");
	/* a ROLLBACK TO SAVEPOINT over a change cannot be followed */
	send_query(a, s, "BEGIN; SET work_mem = '4MB'; SAVEPOINT x; ROLLBACK TO x");
	answer(s, PQ_MSG_COMMAND_COMPLETE, "BEGIN");
	answer(s, PQ_MSG_COMMAND_COMPLETE, "SET");
	answer(s, PQ_MSG_COMMAND_COMPLETE, "SAVEPOINT");
	answer(s, PQ_MSG_COMMAND_COMPLETE, "ROLLBACK");
	CHECK(!ready(s, 'T'));
	/* an answer that does not fit the change: the count is off */
	send_query(a, s, "SET work_mem = '5MB'");
	answer(s, PQ_MSG_COMMAND_COMPLETE, "SELECT 1");
	CHECK(!ready(s, 'I'));

	settings_client_free(a);
	settings_client_free(b);
	settings_list_clear(&s->applied);
	settings_list_clear(&s2->applied);
	free(a);
	free(b);
	free(s);
	free(s2);
	free(p);
}

int main(void)
{
	RUN(test_commit_rollback_and_sync);
	return UNIT_DONE();
}
