/* Unit tests of pstmt: interning (same text and types share one
 * statement, other types do not), reference counting down to the free,
 * client tables (lookup, LRU order, remove, clear), server caches (LRU
 * oldest, touch, remove, growth past the initial buckets), and the
 * DEALLOCATE / DISCARD ALL recognizer. Every test releases all references,
 * so the registry ends empty and valgrind/ASan see no leak. */
#include "unit.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "pstmt.h"

static const uint8_t int4_oid[4] = { 0, 0, 0, 23 };
static const uint8_t text_oid[4] = { 0, 0, 0, 25 };

static void test_intern_shares_and_frees(void)
{
	struct pstmt_registry reg;
	pstmt_registry_init(&reg);
	struct pstmt *a = pstmt_intern(&reg, "select $1", 9, int4_oid, 1);
	struct pstmt *b = pstmt_intern(&reg, "select $1", 9, int4_oid, 1);
	struct pstmt *c = pstmt_intern(&reg, "select $1", 9, text_oid, 1);
	struct pstmt *d = pstmt_intern(&reg, "select $1", 9, NULL, 0);
	CHECK(a == b);
	CHECK(a != c && a != d && c != d);
	CHECK_INT(a->refs, 2);
	CHECK_INT(reg.count, 3);
	CHECK_STR(a->query, "select $1");
	CHECK(strncmp(a->server_name, "tidepool_", 9) == 0);
	CHECK(strcmp(a->server_name, c->server_name) != 0);
	pstmt_unref(a);
	CHECK_INT(reg.count, 3);
	pstmt_unref(b);
	CHECK_INT(reg.count, 2);
	pstmt_unref(c);
	pstmt_unref(d);
	CHECK_INT(reg.count, 0);
	pstmt_registry_free(&reg);
}

static void test_registry_grows(void)
{
	struct pstmt_registry reg;
	pstmt_registry_init(&reg);
	struct pstmt *st[300];
	char q[32];
	for (int i = 0; i < 300; i++) {
		int n = snprintf(q, sizeof(q), "select %d", i);
		st[i] = pstmt_intern(&reg, q, (uint32_t)n, NULL, 0);
	}
	CHECK_INT(reg.count, 300);
	CHECK(reg.n_buckets >= 300);
	for (int i = 0; i < 300; i++) {
		int n = snprintf(q, sizeof(q), "select %d", i);
		struct pstmt *again = pstmt_intern(&reg, q, (uint32_t)n, NULL, 0);
		CHECK(again == st[i]);
		pstmt_unref(again);
	}
	for (int i = 0; i < 300; i++)
		pstmt_unref(st[i]);
	CHECK_INT(reg.count, 0);
	pstmt_registry_free(&reg);
}

static void test_client_table(void)
{
	struct pstmt_registry reg;
	pstmt_registry_init(&reg);
	struct pstmt *x = pstmt_intern(&reg, "x", 1, NULL, 0);
	struct pstmt *y = pstmt_intern(&reg, "y", 1, NULL, 0);
	struct pstmt_client_table *t = pstmt_client_table_new();
	CHECK(pstmt_client_lookup(t, "S_1") == NULL);
	pstmt_client_add(t, "S_1", x);
	pstmt_client_add(t, "S_2", y);
	pstmt_client_add(t, "s_1", y);   /* names are case-sensitive */
	CHECK_INT(t->count, 3);
	CHECK(pstmt_client_lookup(t, "S_1") == x);
	CHECK(pstmt_client_lookup(t, "s_1") == y);
	CHECK_INT(y->refs, 3);
	/* the most recently looked up name is first */
	CHECK_STR(list_entry(t->lru.next, struct pstmt_name, lru)->name, "s_1");
	CHECK(pstmt_client_remove(t, "S_2"));
	CHECK(!pstmt_client_remove(t, "S_2"));
	CHECK_INT(t->count, 2);
	CHECK_INT(y->refs, 2);
	for (int i = 0; i < 100; i++) {
		char name[16];
		snprintf(name, sizeof(name), "n%d", i);
		pstmt_client_add(t, name, x);
	}
	CHECK_INT(t->count, 102);
	CHECK(pstmt_client_lookup(t, "n57") == x);
	pstmt_client_clear(t);
	CHECK_INT(t->count, 0);
	CHECK(pstmt_client_lookup(t, "S_1") == NULL);
	CHECK_INT(x->refs, 1);
	pstmt_client_add(t, "again", x);
	pstmt_client_table_free(t);
	pstmt_unref(x);
	pstmt_unref(y);
	CHECK_INT(reg.count, 0);
	pstmt_registry_free(&reg);
}

static void test_server_cache_lru(void)
{
	struct pstmt_registry reg;
	pstmt_registry_init(&reg);
	struct pstmt *st[40];
	for (int i = 0; i < 40; i++) {
		char q[16];
		int n = snprintf(q, sizeof(q), "q%d", i);
		st[i] = pstmt_intern(&reg, q, (uint32_t)n, NULL, 0);
	}
	struct pstmt_server_cache *c = pstmt_server_cache_new();
	CHECK(pstmt_server_oldest(c) == NULL);
	for (int i = 0; i < 40; i++)
		pstmt_server_add(c, st[i]);
	CHECK_INT(c->count, 40);
	CHECK(pstmt_server_oldest(c) == st[0]);
	CHECK(pstmt_server_touch(c, st[0]));
	CHECK(pstmt_server_oldest(c) == st[1]);
	CHECK(pstmt_server_remove(c, st[1]));
	CHECK(!pstmt_server_touch(c, st[1]));
	CHECK(!pstmt_server_remove(c, st[1]));
	CHECK(pstmt_server_oldest(c) == st[2]);
	CHECK_INT(st[2]->refs, 2);
	CHECK_INT(st[2]->server_prepares, 1);
	pstmt_server_clear(c);
	CHECK_INT(c->count, 0);
	CHECK_INT(st[2]->refs, 1);
	pstmt_server_add(c, st[5]);
	pstmt_server_cache_free(c);
	for (int i = 0; i < 40; i++)
		pstmt_unref(st[i]);
	CHECK_INT(reg.count, 0);
	pstmt_registry_free(&reg);
}

static enum pstmt_sql sql(const char *q, char *name)
{
	return pstmt_parse_sql(q, strlen(q) + 1, name, 64);
}

static void test_parse_sql(void)
{
	char name[64];
	CHECK_INT(sql("DEALLOCATE ALL", name), PSTMT_SQL_DEALLOCATE_ALL);
	CHECK_INT(sql("  deallocate prepare all ; ", name), PSTMT_SQL_DEALLOCATE_ALL);
	CHECK_INT(sql("DISCARD ALL", name), PSTMT_SQL_DISCARD_ALL);
	CHECK_INT(sql("discard all;", name), PSTMT_SQL_DISCARD_ALL);
	CHECK_INT(sql("Deallocate S_1", name), PSTMT_SQL_DEALLOCATE);
	CHECK_STR(name, "s_1");   /* unquoted: folded like PostgreSQL */
	CHECK_INT(sql("DEALLOCATE \"S_1\"", name), PSTMT_SQL_DEALLOCATE);
	CHECK_STR(name, "S_1");
	CHECK_INT(sql("DEALLOCATE PREPARE \"a\"\"b\"", name), PSTMT_SQL_DEALLOCATE);
	CHECK_STR(name, "a\"b");
	CHECK_INT(sql("DEALLOCATE \"all\"", name), PSTMT_SQL_DEALLOCATE);
	CHECK_STR(name, "all");
	CHECK_INT(sql("DEALLOCATE prepare", name), PSTMT_SQL_DEALLOCATE);
	CHECK_STR(name, "prepare");
	/* anything more is the server's business */
	CHECK_INT(sql("DEALLOCATE ALL; SELECT 1", name), PSTMT_SQL_OTHER);
	CHECK_INT(sql("DISCARD PLANS", name), PSTMT_SQL_OTHER);
	CHECK_INT(sql("DISCARD", name), PSTMT_SQL_OTHER);
	CHECK_INT(sql("DEALLOCATE", name), PSTMT_SQL_OTHER);
	CHECK_INT(sql("DEALLOCATE a b", name), PSTMT_SQL_OTHER);
	CHECK_INT(sql("DEALLOCATE \"unterminated", name), PSTMT_SQL_OTHER);
	CHECK_INT(sql("select 1", name), PSTMT_SQL_OTHER);
	CHECK_INT(sql("", name), PSTMT_SQL_OTHER);
	CHECK_INT(pstmt_parse_sql("DEALLOCATE ALL", 10, name, 64), PSTMT_SQL_OTHER); /* cut short */
	/* a name longer than the buffer is not guessed at */
	char longq[200];
	snprintf(longq, sizeof(longq), "DEALLOCATE %0100d", 0);
	longq[11] = 'x';
	CHECK_INT(sql(longq, name), PSTMT_SQL_OTHER);
}

static void test_drops_all_in_multi_statement_strings(void)
{
	static const struct { const char *q; enum pstmt_sql want; } cases[] = {
		{ "SELECT 1; DEALLOCATE ALL; SELECT 2", PSTMT_SQL_DEALLOCATE_ALL },
		{ "select 1;deallocate prepare all", PSTMT_SQL_DEALLOCATE_ALL },
		{ "DISCARD ALL; SELECT 1", PSTMT_SQL_DISCARD_ALL },
		{ "DEALLOCATE ALL", PSTMT_SQL_DEALLOCATE_ALL },
		{ "SELECT 1; DEALLOCATE x; SELECT 2", PSTMT_SQL_OTHER },
		{ "SELECT 'DEALLOCATE ALL'; SELECT 2", PSTMT_SQL_OTHER },
		{ "SELECT 1; DEALLOCATE ALLX", PSTMT_SQL_OTHER },
		{ "", PSTMT_SQL_OTHER },
		{ ";;;", PSTMT_SQL_OTHER },
		{ "/* c */ DEALLOCATE /* all of them */ ALL -- done", PSTMT_SQL_DEALLOCATE_ALL },
		{ "SELECT 1; DEALLOCATE \"\"", PSTMT_SQL_OTHER },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_INT(pstmt_sql_drops_all(cases[i].q, strlen(cases[i].q)), cases[i].want);
}

int main(void)
{
	RUN(test_intern_shares_and_frees);
	RUN(test_registry_grows);
	RUN(test_client_table);
	RUN(test_server_cache_lru);
	RUN(test_parse_sql);
	RUN(test_drops_all_in_multi_statement_strings);
	return UNIT_DONE();
}
