/* pstmt: interned statements, client name tables and server caches (see
 * pstmt.h). Three chained hash tables that double when their load passes
 * one entry per bucket; lookups on the Bind path cost one string hash. */
#include "pstmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlscan.h"
#include "util.h"

#define INITIAL_BUCKETS 16

static uint64_t next_pstmt_id;

/* FNV-1a: short keys, no need for anything stronger (the tables only
 * hold one pool's or one client's own names). */
static uint32_t hash_bytes(uint32_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 16777619u;
	}
	return h;
}

#define HASH_SEED 2166136261u

/* Grows a chained table to twice its buckets. `next_of` gives the chain
 * pointer's address and `hash_of` the stored hash of an entry. */
#define REHASH(tbl, type) do { \
	size_t nb_ = (tbl)->n_buckets ? (tbl)->n_buckets * 2 : INITIAL_BUCKETS; \
	type **nbk_ = xcalloc(nb_, sizeof(*nbk_)); \
	for (size_t i_ = 0; i_ < (tbl)->n_buckets; i_++) { \
		type *e_ = (tbl)->buckets[i_]; \
		while (e_) { \
			type *n_ = e_->hnext; \
			size_t b_ = e_->hash & (nb_ - 1); \
			e_->hnext = nbk_[b_]; \
			nbk_[b_] = e_; \
			e_ = n_; \
		} \
	} \
	free((tbl)->buckets); \
	(tbl)->buckets = nbk_; \
	(tbl)->n_buckets = nb_; \
} while (0)

/* ---- registry ---- */

void pstmt_registry_init(struct pstmt_registry *reg)
{
	memset(reg, 0, sizeof(*reg));
}

void pstmt_registry_free(struct pstmt_registry *reg)
{
	free(reg->buckets);
	memset(reg, 0, sizeof(*reg));
}

static uint32_t statement_hash(const char *query, uint32_t query_len, const uint8_t *types, uint16_t n_types)
{
	uint32_t h = hash_bytes(HASH_SEED, query, query_len);
	uint8_t n[2] = { (uint8_t)(n_types >> 8), (uint8_t)n_types };
	h = hash_bytes(h, n, 2);
	return hash_bytes(h, types, (size_t)n_types * 4);
}

struct pstmt *pstmt_intern(struct pstmt_registry *reg, const char *query, uint32_t query_len,
			   const uint8_t *types, uint16_t n_types)
{
	uint32_t h = statement_hash(query, query_len, types, n_types);
	if (reg->n_buckets) {
		for (struct pstmt *st = reg->buckets[h & (reg->n_buckets - 1)]; st; st = st->hnext) {
			if (st->hash == h && st->query_len == query_len && st->n_types == n_types &&
			    memcmp(st->query, query, query_len) == 0 &&
			    (n_types == 0 || memcmp(st->types, types, (size_t)n_types * 4) == 0)) {
				st->refs++;
				return st;
			}
		}
	}
	if (reg->count >= reg->n_buckets)
		REHASH(reg, struct pstmt);
	struct pstmt *st = xcalloc(1, sizeof(*st));
	st->reg = reg;
	st->hash = h;
	st->refs = 1;
	st->query_len = query_len;
	st->query = xmalloc((size_t)query_len + 1);
	memcpy(st->query, query, query_len);
	st->query[query_len] = '\0';
	st->n_types = n_types;
	if (n_types) {
		st->types = xmalloc((size_t)n_types * 4);
		memcpy(st->types, types, (size_t)n_types * 4);
	}
	char unused[8];
	enum pstmt_sql kind = pstmt_parse_sql(query, query_len, unused, sizeof(unused));
	if (kind == PSTMT_SQL_DEALLOCATE_ALL || kind == PSTMT_SQL_DISCARD_ALL)
		st->drops_all = (uint8_t)kind;
	snprintf(st->server_name, sizeof(st->server_name), "tidepool_%llx",
		 (unsigned long long)++next_pstmt_id);
	size_t b = h & (reg->n_buckets - 1);
	st->hnext = reg->buckets[b];
	reg->buckets[b] = st;
	reg->count++;
	return st;
}

void pstmt_ref(struct pstmt *st)
{
	st->refs++;
}

void pstmt_unref(struct pstmt *st)
{
	if (--st->refs > 0)
		return;
	struct pstmt_registry *reg = st->reg;
	struct pstmt **pp = &reg->buckets[st->hash & (reg->n_buckets - 1)];
	while (*pp != st)
		pp = &(*pp)->hnext;
	*pp = st->hnext;
	reg->count--;
	free(st->query);
	free(st->types);
	free(st);
}

void pstmt_registry_walk(const struct pstmt_registry *reg, void (*fn)(const struct pstmt *, void *),
			 void *arg)
{
	for (size_t i = 0; i < reg->n_buckets; i++)
		for (const struct pstmt *st = reg->buckets[i]; st; st = st->hnext)
			fn(st, arg);
}

/* ---- client table ---- */

struct pstmt_client_table *pstmt_client_table_new(void)
{
	struct pstmt_client_table *t = xcalloc(1, sizeof(*t));
	list_init(&t->lru);
	return t;
}

void pstmt_client_clear(struct pstmt_client_table *t)
{
	for (size_t i = 0; i < t->n_buckets; i++) {
		struct pstmt_name *e = t->buckets[i];
		while (e) {
			struct pstmt_name *n = e->hnext;
			pstmt_unref(e->st);
			free(e);
			e = n;
		}
		t->buckets[i] = NULL;
	}
	t->count = 0;
	list_init(&t->lru);
}

void pstmt_client_table_free(struct pstmt_client_table *t)
{
	if (!t)
		return;
	pstmt_client_clear(t);
	free(t->buckets);
	free(t);
}

static struct pstmt_name **client_slot(struct pstmt_client_table *t, const char *name, uint32_t h)
{
	if (!t->n_buckets)
		return NULL;
	struct pstmt_name **pp = &t->buckets[h & (t->n_buckets - 1)];
	while (*pp && !((*pp)->hash == h && strcmp((*pp)->name, name) == 0))
		pp = &(*pp)->hnext;
	return pp;
}

struct pstmt *pstmt_client_lookup(struct pstmt_client_table *t, const char *name)
{
	uint32_t h = hash_bytes(HASH_SEED, name, strlen(name));
	struct pstmt_name **pp = client_slot(t, name, h);
	if (!pp || !*pp)
		return NULL;
	struct pstmt_name *e = *pp;
	list_del(&e->lru);
	list_add_head(&t->lru, &e->lru);
	return e->st;
}

void pstmt_client_add(struct pstmt_client_table *t, const char *name, struct pstmt *st)
{
	if (t->count >= t->n_buckets)
		REHASH(t, struct pstmt_name);
	size_t len = strlen(name);
	struct pstmt_name *e = xmalloc(sizeof(*e) + len + 1);
	memcpy(e->name, name, len + 1);
	e->hash = hash_bytes(HASH_SEED, name, len);
	e->st = st;
	pstmt_ref(st);
	size_t b = e->hash & (t->n_buckets - 1);
	e->hnext = t->buckets[b];
	t->buckets[b] = e;
	list_add_head(&t->lru, &e->lru);
	t->count++;
}

bool pstmt_client_remove(struct pstmt_client_table *t, const char *name)
{
	uint32_t h = hash_bytes(HASH_SEED, name, strlen(name));
	struct pstmt_name **pp = client_slot(t, name, h);
	if (!pp || !*pp)
		return false;
	struct pstmt_name *e = *pp;
	*pp = e->hnext;
	list_del(&e->lru);
	t->count--;
	pstmt_unref(e->st);
	free(e);
	return true;
}

/* ---- server cache ---- */

static uint32_t pointer_hash(const struct pstmt *st)
{
	uintptr_t v = (uintptr_t)st;
	return (uint32_t)((v >> 4) ^ (v >> 20)) * 2654435761u;
}

struct pstmt_server_cache *pstmt_server_cache_new(void)
{
	struct pstmt_server_cache *c = xcalloc(1, sizeof(*c));
	list_init(&c->lru);
	return c;
}

void pstmt_server_clear(struct pstmt_server_cache *c)
{
	for (size_t i = 0; i < c->n_buckets; i++) {
		struct pstmt_cached *e = c->buckets[i];
		while (e) {
			struct pstmt_cached *n = e->hnext;
			pstmt_unref(e->st);
			free(e);
			e = n;
		}
		c->buckets[i] = NULL;
	}
	c->count = 0;
	list_init(&c->lru);
}

void pstmt_server_cache_free(struct pstmt_server_cache *c)
{
	if (!c)
		return;
	pstmt_server_clear(c);
	free(c->buckets);
	free(c);
}

static struct pstmt_cached **cache_slot(const struct pstmt_server_cache *c, const struct pstmt *st)
{
	if (!c->n_buckets)
		return NULL;
	struct pstmt_cached **pp = &c->buckets[pointer_hash(st) & (c->n_buckets - 1)];
	while (*pp && (*pp)->st != st)
		pp = &(*pp)->hnext;
	return pp;
}

bool pstmt_server_touch(struct pstmt_server_cache *c, const struct pstmt *st)
{
	struct pstmt_cached **pp = cache_slot(c, st);
	if (!pp || !*pp)
		return false;
	struct pstmt_cached *e = *pp;
	if (c->lru.next != &e->lru) {
		list_del(&e->lru);
		list_add_head(&c->lru, &e->lru);
	}
	return true;
}

/* The cache's entries have no stored hash field of their own: rehash by
 * pointer. */
static void cache_grow(struct pstmt_server_cache *c)
{
	size_t nb = c->n_buckets ? c->n_buckets * 2 : INITIAL_BUCKETS;
	struct pstmt_cached **nbk = xcalloc(nb, sizeof(*nbk));
	for (size_t i = 0; i < c->n_buckets; i++) {
		struct pstmt_cached *e = c->buckets[i];
		while (e) {
			struct pstmt_cached *n = e->hnext;
			size_t b = pointer_hash(e->st) & (nb - 1);
			e->hnext = nbk[b];
			nbk[b] = e;
			e = n;
		}
	}
	free(c->buckets);
	c->buckets = nbk;
	c->n_buckets = nb;
}

void pstmt_server_add(struct pstmt_server_cache *c, struct pstmt *st)
{
	if (c->count >= c->n_buckets)
		cache_grow(c);
	struct pstmt_cached *e = xmalloc(sizeof(*e));
	e->st = st;
	pstmt_ref(st);
	size_t b = pointer_hash(st) & (c->n_buckets - 1);
	e->hnext = c->buckets[b];
	c->buckets[b] = e;
	list_add_head(&c->lru, &e->lru);
	c->count++;
	st->server_prepares++;
}

bool pstmt_server_remove(struct pstmt_server_cache *c, const struct pstmt *st)
{
	struct pstmt_cached **pp = cache_slot(c, st);
	if (!pp || !*pp)
		return false;
	struct pstmt_cached *e = *pp;
	*pp = e->hnext;
	list_del(&e->lru);
	c->count--;
	pstmt_unref(e->st);
	free(e);
	return true;
}

struct pstmt *pstmt_server_oldest(const struct pstmt_server_cache *c)
{
	struct list_node *n = list_last(&c->lru);
	return n ? list_entry(n, struct pstmt_cached, lru)->st : NULL;
}

/* ---- SQL recognizer ---- */

/* A word that fits (too long is no name or keyword tidepool looks for). */
static bool word(struct sql_scan *sc, char *out, size_t cap, bool *quoted)
{
	return sql_read_word(sc, out, cap, quoted) && out[0];
}

enum pstmt_sql pstmt_parse_sql(const char *q, size_t len, char *name, size_t cap)
{
	struct sql_scan sc = { q, q + len };
	char kw[16];
	bool quoted;
	if (!word(&sc, kw, sizeof(kw), &quoted) || quoted)
		return PSTMT_SQL_OTHER;
	if (strcmp(kw, "discard") == 0) {
		if (word(&sc, kw, sizeof(kw), &quoted) && !quoted && strcmp(kw, "all") == 0 && sql_at_end(&sc))
			return PSTMT_SQL_DISCARD_ALL;
		return PSTMT_SQL_OTHER;
	}
	if (strcmp(kw, "deallocate") != 0)
		return PSTMT_SQL_OTHER;
	if (!word(&sc, name, cap, &quoted))
		return PSTMT_SQL_OTHER;
	if (!quoted && strcmp(name, "prepare") == 0) {
		struct sql_scan save = sc;
		/* "DEALLOCATE prepare" alone names a statement called prepare. */
		if (sql_at_end(&sc))
			return PSTMT_SQL_DEALLOCATE;
		sc = save;
		if (!word(&sc, name, cap, &quoted))
			return PSTMT_SQL_OTHER;
	}
	if (!sql_at_end(&sc))
		return PSTMT_SQL_OTHER;
	if (!quoted && strcmp(name, "all") == 0)
		return PSTMT_SQL_DEALLOCATE_ALL;
	return PSTMT_SQL_DEALLOCATE;
}

enum pstmt_sql pstmt_sql_drops_all(const char *q, size_t len)
{
	const char *end = q + len;
	char name[8];
	for (const char *p = q, *stop; p < end; p = stop) {
		stop = sql_statement_end(p, end);
		enum pstmt_sql kind = pstmt_parse_sql(p, (size_t)(stop - p), name, sizeof(name));
		if (kind == PSTMT_SQL_DEALLOCATE_ALL || kind == PSTMT_SQL_DISCARD_ALL)
			return kind;
	}
	return PSTMT_SQL_OTHER;
}
