/* fuzz_pstmt: the prepared-statement tables (pstmt.c) under a random
 * sequence of Parse / Bind / Close / DEALLOCATE / eviction / DISCARD
 * operations, each checked against a simple model: which statement every
 * client name maps to, which statements the backend has and in what
 * least-recently-used order, and how many statements the registry holds.
 * AddressSanitizer's leak check catches a reference never released. */
#include <assert.h>
#include <stdbool.h>
#include <stdio.h>

#include "fuzz.h"
#include "pstmt.h"

#define N_NAMES 9        /* "" (unnamed) and s1..s8 */
#define N_KEYS 16        /* 8 query texts x 2 type lists */

static const char *const queries[8] = {
	"select 1", "select $1", "SELECT $1::int", "insert into t values ($1)",
	"select 1 ", "", "deallocate all", "select '\x01\xff'",
};
static const uint8_t int4[4] = { 0, 0, 0, 23 };

struct model {
	int name_key[N_NAMES];       /* key index, -1 when the name is free */
	int server[N_KEYS];          /* keys on the backend, most recent first */
	int n_server;
	struct pstmt *live[N_KEYS];  /* interned pointer while referenced */
};

static void name_of(int i, char *buf)
{
	if (i == 0)
		buf[0] = '\0';
	else
		snprintf(buf, 8, "s%d", i);
}

static struct pstmt *intern_key(struct pstmt_registry *reg, int key)
{
	const char *q = queries[key % 8];
	return pstmt_intern(reg, q, (uint32_t)strlen(q), key >= 8 ? int4 : NULL, key >= 8 ? 1 : 0);
}

static int key_of(const struct model *m, const struct pstmt *st)
{
	for (int k = 0; k < N_KEYS; k++)
		if (m->live[k] == st)
			return k;
	assert(!"statement not in the model");
	return -1;
}

static void server_model_touch(struct model *m, int key, bool add)
{
	int at = -1;
	for (int i = 0; i < m->n_server; i++)
		if (m->server[i] == key)
			at = i;
	assert(add ? at < 0 : at >= 0);
	if (add)
		at = m->n_server++;
	memmove(&m->server[1], &m->server[0], (size_t)at * sizeof(int));
	m->server[0] = key;
}

static void server_model_remove(struct model *m, int key)
{
	for (int i = 0; i < m->n_server; i++)
		if (m->server[i] == key) {
			memmove(&m->server[i], &m->server[i + 1], (size_t)(m->n_server - i - 1) * sizeof(int));
			m->n_server--;
			return;
		}
	assert(!"not on the server");
}

/* Drops live[] entries nobody references any more. */
static void model_forget_unused(struct model *m)
{
	for (int k = 0; k < N_KEYS; k++) {
		bool used = false;
		for (int i = 0; i < N_NAMES; i++)
			used |= m->name_key[i] == k;
		for (int i = 0; i < m->n_server; i++)
			used |= m->server[i] == k;
		if (!used)
			m->live[k] = NULL;
	}
}

static void op_parse(struct model *m, struct pstmt_registry *reg, struct pstmt_client_table *t, int name,
		     int key)
{
	char nm[8];
	name_of(name, nm);
	if (m->name_key[name] >= 0) {   /* the unnamed statement is replaced; a named one closed first */
		assert(pstmt_client_remove(t, nm));
		m->name_key[name] = -1;
		model_forget_unused(m);
	}
	struct pstmt *st = intern_key(reg, key);
	assert(m->live[key] == NULL || m->live[key] == st);
	m->live[key] = st;
	st->parse_count++;
	pstmt_client_add(t, nm, st);
	pstmt_unref(st);
	m->name_key[name] = key;
}

static void op_bind(struct model *m, struct pstmt_client_table *t, struct pstmt_server_cache *c, int name)
{
	char nm[8];
	name_of(name, nm);
	struct pstmt *st = pstmt_client_lookup(t, nm);
	if (m->name_key[name] < 0) {
		assert(st == NULL);
		return;
	}
	assert(st == m->live[m->name_key[name]]);
	int key = m->name_key[name];
	assert(st->query_len == strlen(queries[key % 8]));
	assert(st->n_types == (key >= 8 ? 1 : 0));
	if (pstmt_server_touch(c, st)) {
		server_model_touch(m, key, false);
	} else {
		pstmt_server_add(c, st);
		server_model_touch(m, key, true);
	}
}

static void op_close(struct model *m, struct pstmt_client_table *t, int name)
{
	char nm[8];
	name_of(name, nm);
	assert(pstmt_client_remove(t, nm) == (m->name_key[name] >= 0));
	m->name_key[name] = -1;
	model_forget_unused(m);
}

static void op_evict(struct model *m, struct pstmt_server_cache *c)
{
	struct pstmt *st = pstmt_server_oldest(c);
	if (m->n_server == 0) {
		assert(st == NULL);
		return;
	}
	assert(st == m->live[m->server[m->n_server - 1]]);
	int key = key_of(m, st);
	assert(pstmt_server_remove(c, st));
	assert(!pstmt_server_remove(c, m->live[key]) || !"removed twice");
	server_model_remove(m, key);
	model_forget_unused(m);
}

/* DEALLOCATE as SQL: the statement text comes from the input. */
static void op_sql(struct model *m, struct pstmt_client_table *t, struct fuzz_in *in)
{
	size_t n;
	char *q = fuzz_slice(in, '\0', &n);
	char name[64];
	switch (pstmt_parse_sql(q, n, name, sizeof(name))) {
	case PSTMT_SQL_DEALLOCATE:
		for (int i = 1; i < N_NAMES; i++) {
			char nm[8];
			name_of(i, nm);
			if (strcmp(nm, name) == 0) {
				op_close(m, t, i);
				break;
			}
		}
		break;
	case PSTMT_SQL_DEALLOCATE_ALL:
	case PSTMT_SQL_DISCARD_ALL:
		pstmt_client_clear(t);
		for (int i = 0; i < N_NAMES; i++)
			m->name_key[i] = -1;
		model_forget_unused(m);
		break;
	case PSTMT_SQL_OTHER:
		break;
	}
	free(q);
}

static void check(const struct model *m, const struct pstmt_registry *reg, const struct pstmt_client_table *t,
		  const struct pstmt_server_cache *c)
{
	size_t names = 0, live = 0;
	for (int i = 0; i < N_NAMES; i++)
		names += m->name_key[i] >= 0;
	for (int k = 0; k < N_KEYS; k++)
		live += m->live[k] != NULL;
	assert(t->count == names);
	assert(c->count == (size_t)m->n_server);
	assert(reg->count == live);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size, 0 };
	struct model m = { .n_server = 0 };
	for (int i = 0; i < N_NAMES; i++)
		m.name_key[i] = -1;
	struct pstmt_registry reg;
	pstmt_registry_init(&reg);
	struct pstmt_client_table *t = pstmt_client_table_new();
	struct pstmt_server_cache *c = pstmt_server_cache_new();
	while (fuzz_left(&in) > 0) {
		uint8_t op = fuzz_byte(&in);
		int name = (op >> 3) % N_NAMES;
		switch (op & 7) {
		case 0:
		case 1:
			op_parse(&m, &reg, t, name, fuzz_byte(&in) % N_KEYS);
			break;
		case 2:
		case 3:
			op_bind(&m, t, c, name);
			break;
		case 4:
			op_close(&m, t, name);
			break;
		case 5:
			op_evict(&m, c);
			break;
		case 6:
			pstmt_server_clear(c);
			m.n_server = 0;
			model_forget_unused(&m);
			break;
		case 7:
			op_sql(&m, t, &in);
			break;
		}
		check(&m, &reg, t, c);
	}
	pstmt_client_table_free(t);
	pstmt_server_cache_free(c);
	assert(reg.count == 0);
	pstmt_registry_free(&reg);
	return 0;
}
