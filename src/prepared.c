/* prepared: rewriting of named prepared statements between clients and
 * servers (see prepared.h).
 *
 * Rewritten and inserted messages go into the server's output queue; the
 * client's bytes scanned before them are moved there first (conn_splice),
 * so the order on the wire is the client's order. A Bind keeps its
 * parameters in the client's buffer: only its header and names are
 * rebuilt, the rest is forwarded as it is. */
#include "prepared.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "pin.h"
#include "proto.h"
#include "pstmt.h"
#include "server.h"

enum ps_request_kind {
	PSR_PARSE,            /* the client's Parse: ParseComplete goes to the client */
	PSR_PARSE_INSERTED,   /* the pooler's Parse: ParseComplete is dropped */
	PSR_PARSE_AS_CLOSE,   /* the client's Parse of a statement the backend has:
			       * a no-op Close went instead, its CloseComplete
			       * becomes the ParseComplete */
	PSR_CLOSE,            /* the client's Close of something untracked */
	PSR_CLOSE_NAMED,      /* the client's Close of its statement: a no-op Close */
	PSR_CLOSE_EVICT,      /* the pooler's Close of an evicted statement: dropped */
	PSR_ERROR,            /* a Describe of a missing statement, to fail the
			       * batch in order; its error is replaced */
};

/* Names no client statement maps to: closing it does nothing, describing
 * it fails. */
#define NOOP_NAME "tidepool_noop"
#define ERROR_NAME "tidepool_error"

/* Largest simple query looked at for DEALLOCATE / DISCARD ALL. */
#define SQL_CHECK_MAX 1024

/* ------------------------------------------------------------ queues */

static struct ps_server_state *server_state(struct server *s)
{
	if (!s->ps) {
		s->ps = xcalloc(1, sizeof(*s->ps));
		s->ps->cache = pstmt_server_cache_new();
	}
	return s->ps;
}

static struct pstmt_client_table *client_table(struct client *c)
{
	if (!c->ps)
		c->ps = pstmt_client_table_new();
	return c->ps;
}

static void push_request(struct server *s, uint8_t kind, struct pstmt *st, const char *client_name,
			 char *error)
{
	struct ps_server_state *ps = server_state(s);
	if (ps->count == ps->cap) {
		uint32_t ncap = ps->cap ? ps->cap * 2 : 16;
		struct ps_request *nq = xcalloc(ncap, sizeof(*nq));
		for (uint32_t i = 0; i < ps->count; i++)
			nq[i] = ps->queue[(ps->head + i) % ps->cap];
		free(ps->queue);
		ps->queue = nq;
		ps->cap = ncap;
		ps->head = 0;
	}
	struct ps_request *r = &ps->queue[(ps->head + ps->count) % ps->cap];
	r->kind = kind;
	r->batch = s->sync_sent;
	r->st = st;
	if (st)
		pstmt_ref(st);
	r->client_name = client_name ? xstrdup(client_name) : NULL;
	r->error = error;
	ps->count++;
}

static void request_clear(struct ps_request *r)
{
	if (r->st)
		pstmt_unref(r->st);
	free(r->client_name);
	free(r->error);
	memset(r, 0, sizeof(*r));
}

static void pop_request(struct ps_server_state *ps)
{
	request_clear(&ps->queue[ps->head]);
	ps->head = (ps->head + 1) % ps->cap;
	ps->count--;
}

/* True if st has a Parse or an eviction queued in an earlier Sync batch
 * than the one being sent: whether it is on the backend depends on whether
 * that batch fails, so the message waits for the answer. */
static bool unsettled(const struct server *s, const struct pstmt *st)
{
	const struct ps_server_state *ps = s->ps;
	if (!ps)
		return false;
	for (uint32_t i = 0; i < ps->count; i++) {
		const struct ps_request *r = &ps->queue[(ps->head + i) % ps->cap];
		if (r->st == st && r->batch != s->sync_sent)
			return true;
	}
	return false;
}

/* -------------------------------------------------------- writing */

static void queue_header(struct conn *cn, uint8_t type, uint32_t len)
{
	uint8_t h[5];
	h[0] = type;
	put_be32(h + 1, len);
	conn_queue(cn, h, sizeof(h));
}

static void queue_parse(struct server *s, const struct pstmt *st)
{
	size_t name_len = strlen(st->server_name) + 1;
	uint32_t len = (uint32_t)(4 + name_len + st->query_len + 1 + 2 + (size_t)st->n_types * 4);
	uint8_t n[2];
	queue_header(&s->conn, PQ_MSG_PARSE, len);
	conn_queue(&s->conn, st->server_name, name_len);
	conn_queue(&s->conn, st->query, (size_t)st->query_len + 1);
	put_be16(n, st->n_types);
	conn_queue(&s->conn, n, 2);
	if (st->n_types)
		conn_queue(&s->conn, st->types, (size_t)st->n_types * 4);
	s->pool->stats.server_parse_count++;
}

/* Describe or Close of a statement. */
static void queue_statement_msg(struct server *s, uint8_t type, const char *name)
{
	size_t name_len = strlen(name) + 1;
	queue_header(&s->conn, type, (uint32_t)(4 + 1 + name_len));
	conn_queue(&s->conn, "S", 1);
	conn_queue(&s->conn, name, name_len);
}

/* Closes least recently used statements until one more fits. */
static void make_room(struct server *s)
{
	struct ps_server_state *ps = server_state(s);
	int64_t max = config_current()->max_prepared_statements;
	if (max <= 0)
		max = 1;
	while ((int64_t)ps->cache->count >= max) {
		struct pstmt *old = pstmt_server_oldest(ps->cache);
		if (!old)
			break;
		queue_statement_msg(s, PQ_MSG_CLOSE, old->server_name);
		push_request(s, PSR_CLOSE_EVICT, old, NULL, NULL);
		pstmt_server_remove(ps->cache, old);
	}
}

/* Makes sure st is prepared on s before the next queued message. */
static void ensure_prepared(struct server *s, struct pstmt *st)
{
	struct ps_server_state *ps = server_state(s);
	if (pstmt_server_touch(ps->cache, st))
		return;
	make_room(s);
	queue_parse(s, st);
	push_request(s, PSR_PARSE_INSERTED, st, NULL, NULL);
	pstmt_server_add(ps->cache, st);
}

/* Drops the current message (whole in the buffer, after conn_splice). */
static void skip_client_message(struct conn *cn, uint32_t total)
{
	cn->in->start += total;
	cn->fwd = cn->in->start;
}

/* Fails the client's batch in order: the backend is made to fail a
 * Describe, and its error is replaced by this one. */
static void fail_in_order(struct client *c, struct server *s, uint32_t total, const char *sqlstate,
			  const char *msg)
{
	size_t sl = strlen(sqlstate), ml = strlen(msg);
	char *err = xmalloc(sl + 1 + ml + 1);
	memcpy(err, sqlstate, sl + 1);
	memcpy(err + sl + 1, msg, ml + 1);
	conn_splice(&c->conn, &s->conn);
	queue_statement_msg(s, PQ_MSG_DESCRIBE, ERROR_NAME);
	push_request(s, PSR_ERROR, NULL, NULL, err);
	skip_client_message(&c->conn, total);
}

/* ------------------------------------------------ client messages */

/* The whole message at the client's forwarding position, or NULL after
 * making room for it. */
static const uint8_t *whole_message(struct conn *cn, uint32_t total)
{
	uint32_t avail = cn->in->end - cn->fwd;
	if (avail >= total)
		return cn->in->data + cn->fwd + PROTO_HEADER_LEN;
	conn_reserve(cn, (cn->fwd - cn->in->start) + total);
	return NULL;
}

/* What a DEALLOCATE in a simple query means for this client: OTHER when
 * the server should run it. */
static enum pstmt_sql classify_query(struct client *c, const uint8_t *body, uint32_t blen, char *name,
				     size_t cap)
{
	enum pstmt_sql kind = pstmt_parse_sql((const char *)body, blen, name, cap);
	if (kind == PSTMT_SQL_DEALLOCATE && !(c->ps && pstmt_client_lookup(c->ps, name)))
		return PSTMT_SQL_OTHER;   /* maybe an SQL-level PREPARE: the server knows */
	return kind;
}

/* First non-blank byte of a query could start DEALLOCATE or DISCARD. */
static bool may_be_deallocate(const uint8_t *p, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		uint8_t ch = p[i];
		if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r')
			continue;
		return ch == 'd' || ch == 'D';
	}
	return true;   /* only blanks so far: need more to tell */
}

/* A later statement of a multi-statement query could be DEALLOCATE or
 * DISCARD: some ';' is followed (after blanks) by a 'd'. */
static bool may_hold_deallocate(const uint8_t *p, uint32_t n)
{
	const uint8_t *end = p + n;
	while (p < end && (p = memchr(p, ';', (size_t)(end - p))) != NULL) {
		for (p++; p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'); p++)
			;
		if (p < end && (*p == 'd' || *p == 'D'))
			return true;
	}
	return false;
}

static void apply_deallocate(struct client *c, enum pstmt_sql kind, const char *name)
{
	if (!c->ps)
		return;
	if (kind == PSTMT_SQL_DEALLOCATE)
		pstmt_client_remove(c->ps, name);
	else
		pstmt_client_clear(c->ps);
}

/* The current batch makes the backend drop statements: should it fail,
 * what the backend holds is no longer known (the server then closes at
 * release, see drop_batch). */
static void distrust_if_batch_fails(struct server *s)
{
	server_state(s)->forget_batch = s->sync_sent + 1;
}

/* The backend is about to drop every statement it has. */
static void backend_list_dropped(struct server *s)
{
	distrust_if_batch_fails(s);
	pstmt_server_clear(server_state(s)->cache);
}

/* The backend is about to run a DEALLOCATE ALL or DISCARD ALL: the client's
 * names and the backend's statements go with it. */
static void backend_drops_all(struct client *c, struct server *s, enum pstmt_sql kind)
{
	apply_deallocate(c, kind, NULL);
	backend_list_dropped(s);
}

/* A DEALLOCATE or DISCARD ALL that the backend runs itself, in stream
 * order (sent with the extended protocol, or inside a batch whose Sync has
 * not come): the client's names go now, and so do the backend's own
 * statements, which it drops with them. DEALLOCATE of one name is
 * rewritten to the pool's name for it, prepared first if this backend
 * lacks it, so the client gets the reply PostgreSQL would give. */
static enum ps_verdict backend_deallocate(struct client *c, struct server *s, enum pstmt_sql kind,
					  const char *name, uint8_t type, uint32_t total)
{
	if (kind != PSTMT_SQL_DEALLOCATE) {
		backend_drops_all(c, s, kind);
		if (type == PQ_MSG_PARSE) {
			push_request(s, PSR_PARSE, NULL, NULL, NULL);
			s->pool->stats.server_parse_count++;
		}
		return PS_PASS;
	}
	struct ps_server_state *ps = server_state(s);
	distrust_if_batch_fails(s);
	struct pstmt *st = pstmt_client_lookup(c->ps, name);
	pstmt_ref(st);
	pstmt_client_remove(c->ps, name);
	conn_splice(&c->conn, &s->conn);
	ensure_prepared(s, st);
	pstmt_server_remove(ps->cache, st);
	char sql[sizeof(st->server_name) + 16];
	snprintf(sql, sizeof(sql), "DEALLOCATE %s", st->server_name);
	size_t sql_len = strlen(sql) + 1;
	if (type == PQ_MSG_QUERY) {
		queue_header(&s->conn, PQ_MSG_QUERY, (uint32_t)(4 + sql_len));
		conn_queue(&s->conn, sql, sql_len);
	} else {
		queue_header(&s->conn, PQ_MSG_PARSE, (uint32_t)(4 + 1 + sql_len + 2));
		conn_queue(&s->conn, "\0", 1);
		conn_queue(&s->conn, sql, sql_len);
		conn_queue(&s->conn, "\0\0", 2);
		push_request(s, PSR_PARSE, NULL, NULL, NULL);
		s->pool->stats.server_parse_count++;
	}
	pstmt_unref(st);
	skip_client_message(&c->conn, total);
	return PS_DONE;
}

enum ps_verdict ps_parse(struct client *c, struct server *s, const struct proto_header *h)
{
	struct conn *cn = &c->conn;
	uint32_t total = h->len + 1;
	uint32_t avail = cn->in->end - cn->fwd;
	if (avail < PROTO_HEADER_LEN + 1 && total > avail)
		return PS_NEED_MORE;
	if (h->len == 4 || cn->in->data[cn->fwd + PROTO_HEADER_LEN] == '\0') {
		/* the unnamed statement passes through, unless it is a
		 * DEALLOCATE (psycopg sends those so in pipeline mode) */
		const uint8_t *q = cn->in->data + cn->fwd + PROTO_HEADER_LEN + 1;
		uint32_t seen = avail > PROTO_HEADER_LEN + 1 ? MIN(avail, total) - PROTO_HEADER_LEN - 1 : 0;
		if (h->len > 5 && total <= SQL_CHECK_MAX && c->ps && may_be_deallocate(q, seen)) {
			const uint8_t *body = whole_message(cn, total);
			if (!body)
				return PS_NEED_MORE;
			size_t qmax = h->len - 5;
			size_t qlen = strnlen((const char *)body + 1, qmax);
			char name[256];
			enum pstmt_sql kind = qlen < qmax ? classify_query(c, body + 1, (uint32_t)qlen, name, sizeof(name))
							  : PSTMT_SQL_OTHER;
			if (kind != PSTMT_SQL_OTHER)
				return backend_deallocate(c, s, kind, name, PQ_MSG_PARSE, total);
		}
		push_request(s, PSR_PARSE, NULL, NULL, NULL);
		s->pool->stats.server_parse_count++;
		return PS_PASS;
	}
	const uint8_t *body = whole_message(cn, total);
	if (!body)
		return PS_NEED_MORE;
	struct proto_reader r;
	proto_reader_init(&r, body, h->len - 4);
	const char *name = proto_get_string(&r);
	const char *query = proto_get_string(&r);
	uint16_t n_types = proto_get_int16(&r);
	const uint8_t *types = proto_get_bytes(&r, (size_t)n_types * 4);
	if (r.err || !name || !query || proto_remaining(&r) != 0) {
		/* malformed: PostgreSQL rejects it in its own words */
		push_request(s, PSR_PARSE, NULL, NULL, NULL);
		return PS_PASS;
	}
	struct pstmt_client_table *t = client_table(c);
	struct pstmt *existing = pstmt_client_lookup(t, name);
	if (existing && unsettled(s, existing))
		return PS_HOLD;
	char msg[400];
	if (existing) {
		snprintf(msg, sizeof(msg), "prepared statement \"%.200s\" already exists", name);
		fail_in_order(c, s, total, "42P05", msg);
		return PS_DONE;
	}
	int64_t max_client = config_current()->max_client_prepared_statements;
	if (max_client > 0 && (int64_t)t->count >= max_client) {
		snprintf(msg, sizeof(msg), "prepared statement \"%.200s\" refused: this connection already "
			 "holds %zu prepared statements (max_client_prepared_statements); close some first",
			 name, t->count);
		fail_in_order(c, s, total, "53400", msg);
		return PS_DONE;
	}
	struct pstmt *st = pstmt_intern(&s->pool->prepared, query, (uint32_t)strlen(query), types, n_types);
	if (unsettled(s, st)) {
		pstmt_unref(st);
		return PS_HOLD;
	}
	st->parse_count++;
	pstmt_client_add(t, name, st);
	pstmt_unref(st);   /* the client's name holds it now */
	conn_splice(cn, &s->conn);
	struct ps_server_state *ps = server_state(s);
	if (pstmt_server_touch(ps->cache, st)) {
		queue_statement_msg(s, PQ_MSG_CLOSE, NOOP_NAME);
		push_request(s, PSR_PARSE_AS_CLOSE, st, name, NULL);
	} else {
		make_room(s);
		queue_parse(s, st);
		push_request(s, PSR_PARSE, st, name, NULL);
		pstmt_server_add(ps->cache, st);
	}
	skip_client_message(cn, total);
	return PS_DONE;
}

enum ps_verdict ps_bind(struct client *c, struct server *s, const struct proto_header *h)
{
	struct conn *cn = &c->conn;
	uint32_t total = h->len + 1;
	uint32_t avail = cn->in->end - cn->fwd;
	const uint8_t *body = cn->in->data + cn->fwd + PROTO_HEADER_LEN;
	if (avail < PROTO_HEADER_LEN + 2) {
		if (total > avail)
			return PS_NEED_MORE;
		return PS_PASS;   /* too short to be valid: the server says so */
	}
	if (body[0] == '\0' && body[1] == '\0')
		return PS_PASS;   /* unnamed portal, unnamed statement: the common case */
	uint32_t lim = MIN(avail - PROTO_HEADER_LEN, h->len - 4);
	const uint8_t *portal_end = memchr(body, '\0', lim);
	const uint8_t *name_end = portal_end ? memchr(portal_end + 1, '\0', lim - (uint32_t)(portal_end + 1 - body)) : NULL;
	if (!name_end) {
		if (total > avail && whole_message(cn, total) == NULL)
			return PS_NEED_MORE;
		return PS_PASS;
	}
	const char *name = (const char *)portal_end + 1;
	if (!name[0] || !c->ps)
		return PS_PASS;
	struct pstmt *st = pstmt_client_lookup(c->ps, name);
	if (!st)
		return PS_PASS;   /* not the client's: PostgreSQL answers 26000 itself */
	if (unsettled(s, st))
		return PS_HOLD;
	st->bind_count++;
	conn_splice(cn, &s->conn);
	ensure_prepared(s, st);
	uint32_t portal_len = (uint32_t)(portal_end + 1 - body);
	uint32_t prefix = (uint32_t)(name_end + 1 - body);
	size_t sname_len = strlen(st->server_name) + 1;
	uint32_t new_len = (uint32_t)(h->len - (prefix - portal_len) + sname_len);
	uint8_t head[PROTO_HEADER_LEN + 64 + sizeof(st->server_name)];
	if (portal_len <= 64) {
		/* the usual unnamed or short portal: one copy into the queue */
		head[0] = PQ_MSG_BIND;
		put_be32(head + 1, new_len);
		memcpy(head + PROTO_HEADER_LEN, body, portal_len);
		memcpy(head + PROTO_HEADER_LEN + portal_len, st->server_name, sname_len);
		conn_queue(&s->conn, head, PROTO_HEADER_LEN + portal_len + sname_len);
	} else {
		queue_header(&s->conn, PQ_MSG_BIND, new_len);
		conn_queue(&s->conn, body, portal_len);
		conn_queue(&s->conn, st->server_name, sname_len);
	}
	/* the parameters stay in the client's buffer and are forwarded */
	cn->in->start += PROTO_HEADER_LEN + prefix;
	cn->fwd = cn->in->start;
	uint32_t rest = total - PROTO_HEADER_LEN - prefix;
	uint32_t n = MIN(rest, cn->in->end - cn->fwd);
	cn->fwd += n;
	cn->remain = rest - n;
	/* A named DEALLOCATE ALL or DISCARD ALL (psycopg with prepare_threshold
	 * 0 prepares those too) drops every statement of this backend when it
	 * runs; st may be freed here, so this comes last. */
	if (st->drops_all)
		backend_drops_all(c, s, (enum pstmt_sql)st->drops_all);
	return PS_DONE;
}

enum ps_verdict ps_describe(struct client *c, struct server *s, const struct proto_header *h)
{
	struct conn *cn = &c->conn;
	uint32_t total = h->len + 1;
	const uint8_t *body = whole_message(cn, total);
	if (!body)
		return PS_NEED_MORE;
	if (h->len < 6 || body[0] != 'S' || body[1] == '\0' || body[h->len - 5] != '\0' || !c->ps)
		return PS_PASS;
	const char *name = (const char *)body + 1;
	if (strlen(name) != h->len - 6)
		return PS_PASS;
	struct pstmt *st = pstmt_client_lookup(c->ps, name);
	if (!st)
		return PS_PASS;
	if (unsettled(s, st))
		return PS_HOLD;
	conn_splice(cn, &s->conn);
	ensure_prepared(s, st);
	queue_statement_msg(s, PQ_MSG_DESCRIBE, st->server_name);
	skip_client_message(cn, total);
	return PS_DONE;
}

enum ps_verdict ps_close(struct client *c, struct server *s, const struct proto_header *h)
{
	struct conn *cn = &c->conn;
	uint32_t total = h->len + 1;
	const uint8_t *body = whole_message(cn, total);
	if (!body)
		return PS_NEED_MORE;
	struct pstmt *st = NULL;
	const char *name = (const char *)body + 1;
	if (h->len >= 6 && body[0] == 'S' && body[1] != '\0' && body[h->len - 5] == '\0' &&
	    strlen(name) == h->len - 6 && c->ps)
		st = pstmt_client_lookup(c->ps, name);
	if (!st) {
		push_request(s, PSR_CLOSE, NULL, NULL, NULL);
		return PS_PASS;
	}
	if (unsettled(s, st))
		return PS_HOLD;
	/* Only the client's name goes: the backend keeps the statement for
	 * other clients, and answers a Close of nothing with CloseComplete. */
	conn_splice(cn, &s->conn);
	queue_statement_msg(s, PQ_MSG_CLOSE, NOOP_NAME);
	push_request(s, PSR_CLOSE_NAMED, st, name, NULL);
	pstmt_client_remove(c->ps, name);
	skip_client_message(cn, total);
	return PS_DONE;
}

/* Sends the pooler's own answer after everything the server sent before. */
static void answer_client(struct client *c, struct server *s, const uint8_t *buf, size_t len)
{
	if (s)
		conn_splice(&s->conn, &c->conn);
	conn_queue(&c->conn, buf, len);
}

static void answer_command(struct client *c, struct server *s, const char *tag, char tx_status)
{
	uint8_t buf[128];
	struct proto_writer w;
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_command_complete(&w, tag);
	proto_write_ready(&w, tx_status);
	answer_client(c, s, w.buf, w.len);
}

static void answer_error(struct client *c, struct server *s, const char *sqlstate, const char *msg,
			 char tx_status)
{
	uint8_t buf[700];
	struct proto_writer w;
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_error(&w, "ERROR", sqlstate, msg);
	proto_write_ready(&w, tx_status);
	if (!w.overflow)
		answer_client(c, s, w.buf, w.len);
}

enum ps_verdict ps_query(struct client *c, struct server *s, const struct proto_header *h,
			 const struct pin_class *cls)
{
	struct conn *cn = &c->conn;
	uint32_t total = h->len + 1;
	uint32_t avail = cn->in->end - cn->fwd;
	const uint8_t *body = cn->in->data + cn->fwd + PROTO_HEADER_LEN;
	uint32_t seen = avail > PROTO_HEADER_LEN ? MIN(avail - PROTO_HEADER_LEN, h->len - 4) : 0;
	if (total > SQL_CHECK_MAX)
		return PS_PASS;
	if (seen < h->len - 4 && whole_message(cn, total) == NULL)
		return PS_NEED_MORE;   /* a short query split by a read: decide on all of it */
	if (cls ? !cls->may_deallocate : !may_be_deallocate(body, seen) && !may_hold_deallocate(body, seen))
		return PS_PASS;
	body = whole_message(cn, total);
	if (!body)
		return PS_NEED_MORE;
	char name[256];
	enum pstmt_sql kind = classify_query(c, body, h->len - 4, name, sizeof(name));
	if (kind == PSTMT_SQL_OTHER) {
		/* DEALLOCATE ALL among other statements: the backend runs it and
		 * drops every statement it has, so its list is emptied (and
		 * re-prepared on use). The client keeps its names: the split at
		 * ';' may have been fooled by a literal, and a name kept too
		 * long only means a statement that still works. */
		if (pstmt_sql_drops_all((const char *)body, h->len - 4) != PSTMT_SQL_OTHER)
			backend_list_dropped(s);
		return PS_PASS;
	}
	if (s->unsynced) {
		/* inside an extended-protocol batch without its Sync the replies
		 * before it cannot be waited for: the backend runs it */
		return backend_deallocate(c, s, kind, name, PQ_MSG_QUERY, total);
	}
	if (!ps_server_settled(s))
		return PS_HOLD;
	if (kind == PSTMT_SQL_DISCARD_ALL) {
		/* Outside a transaction block the backend really discards
		 * everything; inside one it refuses, in its own words. */
		if (s->tx_status == 'I') {
			apply_deallocate(c, kind, name);
			ps_server_forget_all(s);
		}
		return PS_PASS;
	}
	if (s->tx_status == 'E') {
		answer_error(c, s, "25P02",
			     "current transaction is aborted, commands ignored until end of transaction block", 'E');
	} else {
		apply_deallocate(c, kind, name);
		answer_command(c, s, kind == PSTMT_SQL_DEALLOCATE ? "DEALLOCATE" : "DEALLOCATE ALL", s->tx_status);
	}
	cn->in->start = cn->fwd + total;   /* quiet: nothing scanned is unsent */
	cn->fwd = cn->in->start;
	return PS_ANSWERED;
}

bool ps_idle_query(struct client *c, const struct proto_header *h)
{
	struct conn *cn = &c->conn;
	if (!c->ps || h->len + 1 > SQL_CHECK_MAX)
		return false;
	uint32_t total = h->len + 1;
	if (iobuf_len(cn->in) < total)
		return false;
	const uint8_t *body = cn->in->data + cn->in->start + PROTO_HEADER_LEN;
	if (!may_be_deallocate(body, h->len - 4))
		return false;
	char name[256];
	enum pstmt_sql kind = classify_query(c, body, h->len - 4, name, sizeof(name));
	if (kind != PSTMT_SQL_DEALLOCATE && kind != PSTMT_SQL_DEALLOCATE_ALL)
		return false;
	apply_deallocate(c, kind, name);
	cn->in->start += total;
	cn->fwd = cn->in->start;
	answer_command(c, NULL, kind == PSTMT_SQL_DEALLOCATE ? "DEALLOCATE" : "DEALLOCATE ALL", 'I');
	return true;
}

/* ------------------------------------------------ server replies */

/* Takes back what a request the backend skipped (or failed) had recorded. */
static void undo_request(struct server *s, const struct ps_request *r)
{
	struct pstmt_server_cache *cache = s->ps->cache;
	struct client *c = s->client;
	switch ((enum ps_request_kind)r->kind) {
	case PSR_PARSE:
	case PSR_PARSE_AS_CLOSE:
		if (!r->st)
			return;
		if (r->kind == PSR_PARSE)
			pstmt_server_remove(cache, r->st);
		if (c && c->ps && r->client_name && pstmt_client_lookup(c->ps, r->client_name) == r->st)
			pstmt_client_remove(c->ps, r->client_name);
		return;
	case PSR_PARSE_INSERTED:
		pstmt_server_remove(cache, r->st);
		return;
	case PSR_CLOSE_EVICT:
		if (!pstmt_server_touch(cache, r->st))
			pstmt_server_add(cache, r->st);
		return;
	case PSR_CLOSE_NAMED:
		if (c && r->client_name && !pstmt_client_lookup(client_table(c), r->client_name))
			pstmt_client_add(c->ps, r->client_name, r->st);
		return;
	case PSR_CLOSE:
	case PSR_ERROR:
		return;
	}
}

/* An error aborted the current Sync batch: the backend skips the rest of
 * it, so its queued requests will get no reply. Undone newest first. */
static void drop_batch(struct server *s)
{
	struct ps_server_state *ps = s->ps;
	if (ps->forget_batch == s->sync_recv + 1 && !s->close_needed) {
		/* a DEALLOCATE the backend may have skipped: start afresh */
		server_log(LOG_LVL_INFO, s, "prepared statement lists uncertain after an error: closing at release");
		s->close_needed = true;
	}
	uint32_t k = 0;
	while (k < ps->count && ps->queue[(ps->head + k) % ps->cap].batch == s->sync_recv)
		k++;
	for (uint32_t i = k; i-- > 0;)
		undo_request(s, &ps->queue[(ps->head + i) % ps->cap]);
	while (k--)
		pop_request(ps);
}

/* Removes the whole message at the server's forwarding position from the
 * stream, keeping the scanned bytes before it. */
static void drop_server_message(struct conn *cn, uint32_t total)
{
	struct iobuf *b = cn->in;
	uint32_t pending = cn->fwd - b->start;
	if (pending)
		memmove(b->data + b->start + total, b->data + b->start, pending);
	b->start += total;
	cn->fwd += total;
}

static bool is_marker_error(const uint8_t *body, uint32_t blen)
{
	const char *code = proto_error_field(body, blen, 'C');
	const char *msg = proto_error_field(body, blen, 'M');
	return code && msg && strcmp(code, "26000") == 0 && strstr(msg, ERROR_NAME);
}

static enum ps_verdict lost_sync(struct server *s, uint8_t type)
{
	char why[96];
	snprintf(why, sizeof(why), "unexpected '%c' from server while prepared statements were in flight", type);
	server_close(s, why);
	return PS_FAILED;
}

enum ps_verdict ps_parse_complete(struct server *s, const struct proto_header *h)
{
	struct ps_server_state *ps = s->ps;
	struct conn *cn = &s->conn;
	const struct ps_request *r = &ps->queue[ps->head];
	if (r->kind == PSR_PARSE) {
		pop_request(ps);
		return PS_PASS;
	}
	if (r->kind == PSR_PARSE_INSERTED) {
		pop_request(ps);
		drop_server_message(cn, h->len + 1);
		return PS_DONE;
	}
	return lost_sync(s, h->type);
}

enum ps_verdict ps_close_complete(struct server *s, const struct proto_header *h)
{
	struct ps_server_state *ps = s->ps;
	struct conn *cn = &s->conn;
	switch (ps->queue[ps->head].kind) {
	case PSR_CLOSE:
	case PSR_CLOSE_NAMED:
		pop_request(ps);
		return PS_PASS;
	case PSR_CLOSE_EVICT:
		pop_request(ps);
		drop_server_message(cn, h->len + 1);
		return PS_DONE;
	case PSR_PARSE_AS_CLOSE:
		pop_request(ps);
		cn->in->data[cn->fwd] = PQ_MSG_PARSE_COMPLETE;
		return PS_PASS;
	default:
		return lost_sync(s, h->type);
	}
}

/* The pooler's own error (a request marked PSR_ERROR) replaces the
 * backend's marker error; the rest of the batch was skipped. */
static void replace_marker_error(struct server *s, const struct ps_request *r, uint32_t total)
{
	struct conn *cn = &s->conn;
	const char *sqlstate = r->error;
	const char *msg = r->error + strlen(r->error) + 1;
	uint8_t buf[800];
	struct proto_writer w;
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_error(&w, "ERROR", sqlstate, msg);
	if (s->client && !w.overflow) {
		conn_splice(cn, &s->client->conn);
		conn_queue(&s->client->conn, w.buf, w.len);
	}
	cn->in->start = cn->fwd + total;
	cn->fwd = cn->in->start;
}

enum ps_verdict ps_server_error(struct server *s, const struct proto_header *h)
{
	struct ps_server_state *ps = s->ps;
	struct conn *cn = &s->conn;
	if (ps->count == 0) {   /* an error in a batch that may have dropped statements */
		drop_batch(s);
		return PS_PASS;
	}
	const struct ps_request *r = &ps->queue[ps->head];
	const uint8_t *body = cn->in->data + cn->fwd + PROTO_HEADER_LEN;
	if (r->batch != s->sync_recv)
		return PS_PASS;   /* from a request the queue does not hold */
	if (r->kind == PSR_ERROR && is_marker_error(body, h->len - 4)) {
		replace_marker_error(s, r, h->len + 1);
		pop_request(ps);
		drop_batch(s);
		return PS_DONE;
	}
	drop_batch(s);
	return PS_PASS;
}

void ps_server_batch_done(struct server *s)
{
	if (s->ps && s->ps->count && s->ps->queue[s->ps->head].batch == s->sync_recv)
		drop_batch(s);
}

bool ps_server_settled(const struct server *s)
{
	const struct ps_server_state *ps = s->ps;
	return s->pending_ready == 0 &&
	       !(ps && ps->count && ps->queue[ps->head].batch != s->sync_sent);
}

void ps_server_forget_all(struct server *s)
{
	if (s->ps)
		pstmt_server_clear(s->ps->cache);
}

uint32_t ps_server_count(const struct server *s)
{
	return s->ps ? (uint32_t)s->ps->cache->count : 0;
}

uint32_t ps_client_count(const struct client *c)
{
	return c->ps ? (uint32_t)c->ps->count : 0;
}

void ps_server_free(struct server *s)
{
	struct ps_server_state *ps = s->ps;
	if (!ps)
		return;
	while (ps->count)
		pop_request(ps);
	free(ps->queue);
	pstmt_server_cache_free(ps->cache);
	free(ps);
	s->ps = NULL;
}

void ps_client_free(struct client *c)
{
	pstmt_client_table_free(c->ps);
	c->ps = NULL;
}
