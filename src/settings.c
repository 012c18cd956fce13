/* settings: session settings that follow their client (see settings.h).
 *
 * Owns struct settings_client: the client's recorded settings, the changes
 * of its open transaction (pending), the changes whose answer has not come
 * yet (expect, oldest first), and the prepared statements and portals of
 * the extended protocol that change a setting. Nothing here runs unless a
 * client changed a setting: a client without one has c->set == NULL. */
#include "settings.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"
#include "params.h"
#include "pin.h"
#include "proto.h"
#include "server.h"
#include "util.h"

#define SETTINGS_MAX_CHANGES 32   /* per query string; more: cannot replay */

struct change {
	enum pin_change_kind kind;
	char *name, *value;
};

struct expect {
	uint32_t batch, outcome;
	struct change ch;
};

struct named {   /* a prepared statement or portal that changes settings */
	char *name;
	struct change *ch;
	size_t n;
};

struct settings_client {
	struct settings_list recorded;
	struct change *pending;
	size_t n_pending, cap_pending;
	struct expect *expect;
	size_t n_expect, cap_expect;
	struct named *stmts, *portals;
	size_t n_stmts, n_portals;
	bool failed;        /* an error since the pending changes began */
	bool rolled_back;   /* a ROLLBACK tag since then */
	bool lost;          /* the pending changes cannot be followed */
};

/* ---- lists */

static int list_find(const struct settings_list *l, const char *name)
{
	for (uint32_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].name, name) == 0)
			return (int)i;
	return -1;
}

static void list_remove(struct settings_list *l, int i)
{
	free(l->v[i].name);
	free(l->v[i].value);
	memmove(&l->v[i], &l->v[i + 1], (l->n - (uint32_t)i - 1) * sizeof(l->v[0]));
	l->n--;
}

/* Sets name at the end of the list (the order of the last changes). */
static void list_put(struct settings_list *l, const char *name, const char *value, bool config)
{
	int i = list_find(l, name);
	if (i >= 0)
		list_remove(l, i);
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 4;
		l->v = xrealloc(l->v, l->cap * sizeof(l->v[0]));
	}
	l->v[l->n++] = (struct settings_entry){ xstrdup(name), xstrdup(value), config };
}

static bool is_role_name(const char *name)
{
	return strcmp(name, "role") == 0 || strcmp(name, "session_authorization") == 0;
}

/* RESET ALL keeps role and session authorization; DISCARD ALL does not. */
static void list_reset_all(struct settings_list *l, bool keep_role)
{
	for (uint32_t i = l->n; i-- > 0;)
		if (!keep_role || !is_role_name(l->v[i].name))
			list_remove(l, (int)i);
}

void settings_list_clear(struct settings_list *l)
{
	list_reset_all(l, false);
	free(l->v);
	l->v = NULL;
	l->cap = 0;
}

static void list_apply(struct settings_list *l, const struct change *ch)
{
	int i;
	switch (ch->kind) {
	case PIN_SET:
	case PIN_SET_CONFIG:
		list_put(l, ch->name, ch->value, ch->kind == PIN_SET_CONFIG);
		return;
	case PIN_RESET:
		if ((i = list_find(l, ch->name)) >= 0)
			list_remove(l, i);
		return;
	case PIN_RESET_ALL:
	case PIN_DISCARD_ALL:
		list_reset_all(l, ch->kind == PIN_RESET_ALL);
		return;
	case PIN_CANNOT_REPLAY:
		return;
	}
}

/* ---- the client's state */

static struct settings_client *state(struct client *c)
{
	if (!c->set)
		c->set = xcalloc(1, sizeof(*c->set));
	return c->set;
}

static void change_free(struct change *ch)
{
	free(ch->name);
	free(ch->value);
}

static void change_copy(struct change *to, const struct pin_change *from)
{
	to->kind = from->kind;
	to->name = xstrdup(from->name);
	to->value = from->value ? xstrndup(from->value, from->value_len) : NULL;
}

static void push_expect(struct settings_client *st, uint32_t batch, uint32_t outcome, const struct change *ch)
{
	if (st->n_expect == st->cap_expect) {
		st->cap_expect = st->cap_expect ? st->cap_expect * 2 : 4;
		st->expect = xrealloc(st->expect, st->cap_expect * sizeof(st->expect[0]));
	}
	struct expect *e = &st->expect[st->n_expect++];
	e->batch = batch;
	e->outcome = outcome;
	e->ch.kind = ch->kind;
	e->ch.name = xstrdup(ch->name);
	e->ch.value = ch->value ? xstrdup(ch->value) : NULL;
}

static void pop_expect(struct settings_client *st)
{
	change_free(&st->expect[0].ch);
	memmove(&st->expect[0], &st->expect[1], (st->n_expect - 1) * sizeof(st->expect[0]));
	st->n_expect--;
}

/* A change of a tracked parameter that PostgreSQL reports (it was among
 * the pool's ParameterStatus at login) is followed by its ParameterStatus
 * (params.h), not here. Tracked names it does not report (startup
 * options) and untracked ones are followed here. */
static bool reported(const struct pool *p, const char *name)
{
	if (!name[0] || params_index(name) < 0 || !p)
		return false;
	for (size_t i = 0; i < p->n_welcome; i++)
		if (strcasecmp(p->welcome[i].name, name) == 0)
			return true;
	return false;
}

static void named_drop(struct named *list, size_t *n, const char *name)
{
	for (size_t i = 0; i < *n; i++) {
		if (strcmp(list[i].name, name) != 0)
			continue;
		free(list[i].name);
		for (size_t k = 0; k < list[i].n; k++)
			change_free(&list[i].ch[k]);
		free(list[i].ch);
		list[i] = list[--*n];
		return;
	}
}

static struct named *named_find(struct named *list, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i].name, name) == 0)
			return &list[i];
	return NULL;
}

static struct named *named_add(struct named **list, size_t *n, const char *name)
{
	named_drop(*list, n, name);
	*list = xrealloc(*list, (*n + 1) * sizeof(**list));
	struct named *e = &(*list)[(*n)++];
	*e = (struct named){ xstrdup(name), NULL, 0 };
	return e;
}

bool settings_replayable(const struct pool *p, const char *q, size_t len)
{
	struct pin_change ch[SETTINGS_MAX_CHANGES];
	unsigned n_stmts;
	size_t n = pin_settings(q, len, ch, SETTINGS_MAX_CHANGES, &n_stmts);
	if (n > SETTINGS_MAX_CHANGES)
		return false;
	for (size_t i = 0; i < n; i++)
		if (ch[i].kind == PIN_CANNOT_REPLAY && !reported(p, ch[i].name))
			return false;
	return true;
}

bool settings_client_sql(struct client *c, struct server *s, const char *stmt, const char *q, size_t len)
{
	struct pin_change ch[SETTINGS_MAX_CHANGES];
	unsigned n_stmts = 0;
	size_t n = pin_settings(q, len, ch, SETTINGS_MAX_CHANGES, &n_stmts);
	if (n > SETTINGS_MAX_CHANGES)
		return false;
	bool ok = true;
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		if (reported(c->pool, ch[i].name))
			continue;
		if (ch[i].kind == PIN_CANNOT_REPLAY)
			ok = false;
		else
			ch[kept++] = ch[i];
	}
	if (stmt) {   /* Parse: the changes happen at each Execute of a portal of it */
		struct settings_client *st = c->set;
		if (st)
			named_drop(st->stmts, &st->n_stmts, stmt);
		if (!kept)
			return ok;
		st = state(c);
		struct named *e = named_add(&st->stmts, &st->n_stmts, stmt);
		e->ch = xcalloc(kept, sizeof(e->ch[0]));
		for (size_t i = 0; i < kept; i++)
			change_copy(&e->ch[i], &ch[i]);
		e->n = kept;
		return ok;
	}
	for (size_t i = 0; i < kept; i++) {
		struct change tmp;
		change_copy(&tmp, &ch[i]);
		push_expect(state(c), s->sync_sent + 1, ch[i].stmt, &tmp);
		change_free(&tmp);
	}
	return ok;
}

bool settings_client_extended(const struct client *c)
{
	return c->set && (c->set->n_stmts || c->set->n_portals);
}

void settings_client_bind(struct client *c, const char *portal, const char *stmt)
{
	struct settings_client *st = c->set;
	named_drop(st->portals, &st->n_portals, portal);
	struct named *from = named_find(st->stmts, st->n_stmts, stmt);
	if (!from)
		return;
	size_t n = from->n;
	struct change *copy = xcalloc(n, sizeof(*copy));
	for (size_t i = 0; i < n; i++) {
		copy[i].kind = from->ch[i].kind;
		copy[i].name = xstrdup(from->ch[i].name);
		copy[i].value = from->ch[i].value ? xstrdup(from->ch[i].value) : NULL;
	}
	struct named *e = named_add(&st->portals, &st->n_portals, portal);
	e->ch = copy;
	e->n = n;
}

void settings_client_execute(struct client *c, struct server *s, const char *portal)
{
	struct settings_client *st = c->set;
	struct named *p = named_find(st->portals, st->n_portals, portal);
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		push_expect(st, s->sync_sent + 1, s->n_exec, &p->ch[i]);
}

void settings_client_close(struct client *c, char kind, const char *name)
{
	struct settings_client *st = c->set;
	if (kind == 'S')
		named_drop(st->stmts, &st->n_stmts, name);
	else
		named_drop(st->portals, &st->n_portals, name);
}

static void drop_pending(struct settings_client *st)
{
	for (size_t i = 0; i < st->n_pending; i++)
		change_free(&st->pending[i]);
	st->n_pending = 0;
	st->failed = st->rolled_back = st->lost = false;
}

void settings_client_free(struct client *c)
{
	struct settings_client *st = c->set;
	if (!st)
		return;
	drop_pending(st);
	free(st->pending);
	while (st->n_expect)
		pop_expect(st);
	free(st->expect);
	while (st->n_stmts)
		named_drop(st->stmts, &st->n_stmts, st->stmts[0].name);
	while (st->n_portals)
		named_drop(st->portals, &st->n_portals, st->portals[0].name);
	free(st->stmts);
	free(st->portals);
	settings_list_clear(&st->recorded);
	free(st);
	c->set = NULL;
}

size_t settings_client_count(const struct client *c)
{
	return c->set ? c->set->recorded.n : 0;
}

/* ---- the backend's answers */

static bool tag_fits(enum pin_change_kind kind, const uint8_t *tag, uint32_t len)
{
	const char *t = (const char *)tag;
	size_t n = strnlen(t, len);
	switch (kind) {
	case PIN_SET:
	case PIN_RESET:
	case PIN_RESET_ALL:
		return (n == 3 && memcmp(t, "SET", 3) == 0) || (n == 5 && memcmp(t, "RESET", 5) == 0);
	case PIN_SET_CONFIG:
		return n > 7 && memcmp(t, "SELECT ", 7) == 0;
	case PIN_DISCARD_ALL:
		return n == 11 && memcmp(t, "DISCARD ALL", 11) == 0;
	case PIN_CANNOT_REPLAY:
		return false;
	}
	return false;
}

static void commit_pending(struct settings_client *st, struct server *s)
{
	for (size_t i = 0; i < st->n_pending; i++) {
		list_apply(&st->recorded, &st->pending[i]);
		list_apply(&s->applied, &st->pending[i]);
	}
	drop_pending(st);
}

static void add_pending(struct settings_client *st, struct change *ch)
{
	if (st->rolled_back)
		st->lost = true;   /* after a ROLLBACK TO, or in the next transaction: unclear */
	if (st->n_pending == st->cap_pending) {
		st->cap_pending = st->cap_pending ? st->cap_pending * 2 : 4;
		st->pending = xrealloc(st->pending, st->cap_pending * sizeof(st->pending[0]));
	}
	st->pending[st->n_pending++] = *ch;
	ch->name = ch->value = NULL;
}

static void outcome_tag(struct settings_client *st, struct server *s, const uint8_t *tag, uint32_t len)
{
	size_t n = strnlen((const char *)tag, len);
	if (!st->n_pending)
		return;
	if ((n == 6 && memcmp(tag, "COMMIT", 6) == 0) || (n == 19 && memcmp(tag, "PREPARE TRANSACTION", 19) == 0)) {
		if (st->rolled_back)
			st->lost = true;
		else
			commit_pending(st, s);
	} else if (n == 8 && memcmp(tag, "ROLLBACK", 8) == 0) {
		st->rolled_back = true;
	}
}

void settings_server_outcome(struct server *s, uint8_t type, const uint8_t *body, uint32_t len, uint32_t outcome)
{
	struct settings_client *st = s->client->set;
	uint32_t batch = s->sync_recv + 1;
	bool matched = false;
	while (st->n_expect && st->expect[0].batch == batch && st->expect[0].outcome == outcome) {
		struct expect *e = &st->expect[0];
		matched = true;
		if (type == PQ_MSG_COMMAND_COMPLETE && tag_fits(e->ch.kind, body, len))
			add_pending(st, &e->ch);
		else if (type != PQ_MSG_ERROR)
			st->lost = true;   /* not the answer a change gets: the count is off */
		pop_expect(st);
	}
	if (type == PQ_MSG_ERROR) {
		/* the rest of the batch is skipped */
		while (st->n_expect && st->expect[0].batch == batch)
			pop_expect(st);
		if (st->n_pending)
			st->failed = true;
	} else if (type == PQ_MSG_COMMAND_COMPLETE && !matched) {
		outcome_tag(st, s, body, len);
	}
}

bool settings_server_ready(struct server *s, char status)
{
	struct settings_client *st = s->client->set;
	uint32_t batch = s->sync_recv;   /* already counted: the batch that just ended */
	while (st->n_expect && st->expect[0].batch <= batch) {
		st->lost = true;   /* expected an answer that never came, without an error */
		pop_expect(st);
	}
	if (status == 'E' && st->n_pending)
		st->failed = true;
	if (status == 'T' && st->rolled_back)
		st->lost = true;   /* ROLLBACK TO SAVEPOINT (or AND CHAIN): which changes stay is unknown */
	bool ok = !st->lost;
	if (status == 'I') {
		if (st->lost)
			;
		else if (st->failed || st->rolled_back)
			drop_pending(st);
		else
			commit_pending(st, s);
		drop_pending(st);
		while (st->n_portals)
			named_drop(st->portals, &st->n_portals, st->portals[0].name);
	} else if (st->lost) {
		drop_pending(st);
	}
	return ok;
}

/* ---- applying the client's settings on a backend */

static bool append(char *sql, size_t cap, size_t *len, const char *fmt, const char *a, const char *b)
{
	int n = snprintf(sql + *len, cap - *len, fmt, a, b);
	if (n < 0 || (size_t)n >= cap - *len)
		return false;
	*len += (size_t)n;
	return true;
}

static bool append_reset(char *sql, size_t cap, size_t *len, const char *name)
{
	if (strcmp(name, "role") == 0)
		return append(sql, cap, len, "RESET ROLE;%s%s", "", "");
	if (strcmp(name, "session_authorization") == 0)
		return append(sql, cap, len, "RESET SESSION AUTHORIZATION;%s%s", "", "");
	return append(sql, cap, len, "RESET \"%s\";%s", name, "");
}

/* Back to what the client has when it never changed name: its startup
 * option for it (params.h, applied with set_config at link before this),
 * else the server's default. */
static bool append_default(const struct client *c, char *sql, size_t cap, size_t *len, const char *name)
{
	int i = params_index(name);
	const char *mine = i >= 0 ? c->params.values[i] : NULL;
	char lit[600];
	if (!mine || !proto_quote_literal(mine, lit, sizeof(lit)))
		return append_reset(sql, cap, len, name);
	return append(sql, cap, len, "SELECT pg_catalog.set_config('%s', %s, false);", name, lit);
}

static bool append_set(char *sql, size_t cap, size_t *len, const struct settings_entry *e)
{
	if (e->config) {
		char lit[PIN_NAME_MAX * 2 + 3];
		if (!proto_quote_literal(e->name, lit, sizeof(lit)))
			return false;
		return append(sql, cap, len, "SELECT pg_catalog.set_config(%s, %s, false);", lit, e->value);
	}
	if (strcmp(e->name, "role") == 0)
		return append(sql, cap, len, "SET ROLE %s;%s", e->value, "");
	if (strcmp(e->name, "session_authorization") == 0)
		return append(sql, cap, len, "SET SESSION AUTHORIZATION %s;%s", e->value, "");
	return append(sql, cap, len, "SET \"%s\" TO %s;", e->name, e->value);
}

static bool entry_same(const struct settings_entry *a, const struct settings_entry *b)
{
	return a->config == b->config && strcmp(a->value, b->value) == 0;
}

bool settings_sync_sql(const struct server *s, const struct client *c, char *sql, size_t cap, size_t *len,
		       bool *overflow)
{
	static const struct settings_list none;
	const struct settings_list *want = c->set ? &c->set->recorded : &none, *have = &s->applied;
	size_t start = *len;
	if (!want->n && !have->n)
		return false;
	/* resets first (the role last), then sets (session authorization first) */
	for (int pass = 0; pass < 2; pass++)
		for (uint32_t i = 0; i < have->n; i++)
			if (is_role_name(have->v[i].name) == (pass == 1) && list_find(want, have->v[i].name) < 0 &&
			    !append_default(c, sql, cap, len, have->v[i].name))
				goto full;
	for (int pass = 0; pass < 3; pass++) {
		for (uint32_t i = 0; i < want->n; i++) {
			const struct settings_entry *e = &want->v[i];
			int rank = strcmp(e->name, "session_authorization") == 0 ? 0 : strcmp(e->name, "role") == 0 ? 1 : 2;
			int j = list_find(have, e->name);
			if (rank != pass || (j >= 0 && entry_same(e, &have->v[j])))
				continue;
			if (!append_set(sql, cap, len, e))
				goto full;
		}
	}
	return *len > start;
full:
	*overflow = true;
	return false;
}

void settings_synced(struct server *s, const struct client *c)
{
	list_reset_all(&s->applied, false);
	if (!c->set)
		return;
	for (uint32_t i = 0; i < c->set->recorded.n; i++) {
		const struct settings_entry *e = &c->set->recorded.v[i];
		list_put(&s->applied, e->name, e->value, e->config);
	}
}

void settings_server_reset(struct server *s, bool keep_role)
{
	list_reset_all(&s->applied, keep_role);
}
