/* auth_query: secrets looked up in the database (see auth_query.h).
 *
 * Owns struct auth_lookup (one per user, query and auth pool while a lookup
 * is in flight) and struct auth_query_wait (one per login waiting for it).
 * A lookup is in the global list only until its answer is known: later
 * logins start a new one, so no answer outlives the logins it was made for.
 * A lookup whose logins all went away still finishes its query (the server
 * is busy with it) and then gives the server back.
 *
 * The request, sent in one write:
 *   Query  BEGIN; SET LOCAL search_path = pg_catalog, pg_temp
 *   Parse/Bind/Execute/Sync  auth_query with $1 = the user name, as text
 *   Query  COMMIT     (a ROLLBACK if the lookup failed: the server ends idle)
 * so three ReadyForQuery messages end it. SET LOCAL ends with the
 * transaction, so the server goes back to its pool as it came. */
#include "auth_query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "list.h"
#include "log.h"
#include "events.h"
#include "proto.h"
#include "server.h"

#define AUTH_QUERY_MAX_SECRET 4096   /* SCRAM verifiers are ~130 bytes */
#define AUTH_QUERY_READY_COUNT 3

static const char SAFE_SEARCH_PATH[] = "BEGIN; SET LOCAL search_path = pg_catalog, pg_temp";

struct auth_lookup {
	struct list_node node;          /* in lookups while joinable */
	struct pool_waiter waiter;      /* in the pool's waiters until a server is free */
	bool waiting;
	struct pool *pool;
	char *user, *query;
	struct server *server;          /* while the request runs */
	struct list_node waits;         /* struct auth_query_wait */
	bool starting;                  /* inside auth_query_lookup: it frees, not finish */
	bool finished;
	/* the answer */
	int rows;
	bool user_exists;               /* the row names the user (its secret may be NULL) */
	char *secret;
	const char *bad_row;            /* why the row is unusable, or NULL */
	char sqlstate[6];
	char *error;
};

struct auth_query_wait {
	struct list_node node;
	struct auth_lookup *lookup;
	auth_query_done_fn done;
	void *arg;
};

static struct list_node lookups = { &lookups, &lookups };

static void lookup_free(struct auth_lookup *l)
{
	if (l->secret)
		crypto_wipe(l->secret, strlen(l->secret));
	free(l->secret);
	free(l->error);
	free(l->user);
	free(l->query);
	free(l);
}

/* Gives the answer to every waiting login; frees l unless its creator is
 * still on the stack. */
static void lookup_finish(struct auth_lookup *l, enum auth_query_status st, const char *sqlstate,
			  const char *msg)
{
	list_del(&l->node);
	list_init(&l->node);
	l->finished = true;
	while (!list_empty(&l->waits)) {
		struct auth_query_wait *w = list_entry(list_first(&l->waits), struct auth_query_wait, node);
		auth_query_done_fn done = w->done;
		void *arg = w->arg;
		list_del(&w->node);
		free(w);
		done(arg, st, st == AUTH_QUERY_FOUND ? l->secret : NULL, sqlstate, msg);
	}
	if (!l->starting && !l->server && !l->waiting)
		lookup_free(l);
}

static void lookup_failed(struct auth_lookup *l, const char *sqlstate, const char *msg)
{
	log_warning("auth_query for user \"%s\" via %s/%s failed: %s", l->user, l->pool->db_name,
		    l->pool->user_name, msg);
	lookup_finish(l, AUTH_QUERY_FAILED, sqlstate, msg);
}

/* ---- the answer ---- */

static void on_row(void *arg, const uint8_t *body, size_t len)
{
	struct auth_lookup *l = arg;
	const uint8_t *val;
	uint32_t vlen;
	if (++l->rows > 1 || l->bad_row)
		return;
	const uint8_t *name;
	uint32_t name_len;
	if (proto_data_row_column(body, len, 0, &name, &name_len) != PROTO_OK ||
	    proto_data_row_column(body, len, 1, &val, &vlen) != PROTO_OK) {
		l->bad_row = "auth_query must return two columns (user name, secret)";
		return;
	}
	l->user_exists = name != NULL;   /* a NULL name: no such user */
	if (!val)
		return;   /* NULL: no usable password */
	if (vlen == 0 || vlen > AUTH_QUERY_MAX_SECRET || memchr(val, '\0', vlen)) {
		l->bad_row = "auth_query returned an unusable secret";
		return;
	}
	l->secret = xstrndup((const char *)val, vlen);
}

static void on_error(void *arg, const uint8_t *body, size_t len)
{
	struct auth_lookup *l = arg;
	const char *code = proto_error_field(body, len, 'C');
	const char *msg = proto_error_field(body, len, 'M');
	if (l->error)
		return;   /* the first error is the one that matters */
	strlcpy_safe(l->sqlstate, code && strlen(code) == 5 ? code : "08P01", sizeof(l->sqlstate));
	l->error = xstrdup(msg ? msg : "error from server");
}

/* The server's part is over: it goes back to its pool (or closes if the
 * request left it in a transaction), then the logins get the answer. */
static void on_done(struct server *s, void *arg)
{
	struct auth_lookup *l = arg;
	l->server = NULL;
	if (s->tx_status == 'I')
		events_server_ready(s);
	else
		server_close(s, "auth_query left a transaction open");
	if (l->finished) {
		lookup_free(l);   /* every login went away meanwhile */
		return;
	}
	if (l->error) {
		char msg[600];
		snprintf(msg, sizeof(msg), "auth_query failed: %s", l->error);
		lookup_failed(l, l->sqlstate, msg);
	} else if (l->bad_row) {
		lookup_failed(l, "08P01", l->bad_row);
	} else if (l->rows > 1) {
		lookup_failed(l, "08P01", "auth_query returned more than one row");
	} else {
		lookup_finish(l, l->secret ? AUTH_QUERY_FOUND : l->user_exists ? AUTH_QUERY_NO_SECRET : AUTH_QUERY_NOT_FOUND,
			      NULL, NULL);
	}
}

static void on_lost(void *arg, const char *why)
{
	struct auth_lookup *l = arg;
	char msg[400];
	l->server = NULL;
	if (l->finished) {
		lookup_free(l);
		return;
	}
	snprintf(msg, sizeof(msg), "auth_query: server connection lost: %s", why);
	lookup_failed(l, "08006", msg);
}

static const struct server_request_ops request_ops = {
	.row = on_row,
	.error = on_error,
	.done = on_done,
	.lost = on_lost,
};

/* ---- getting a server ---- */

static void got_server(struct pool_waiter *pw, struct server *s)
{
	struct auth_lookup *l = container_of(pw, struct auth_lookup, waiter);
	l->waiting = false;
	size_t cap = strlen(SAFE_SEARCH_PATH) + strlen(l->query) + strlen(l->user) + 128;
	uint8_t *buf = xmalloc(cap);
	struct proto_writer w;
	const char *params[] = { l->user };
	proto_writer_init(&w, buf, cap);
	proto_write_query(&w, SAFE_SEARCH_PATH);
	proto_write_parse(&w, l->query, 1);
	proto_write_bind_text(&w, params, 1);
	proto_write_execute(&w);
	proto_write_sync(&w);
	proto_write_query(&w, "COMMIT");
	if (w.overflow) {   /* cannot happen: cap counts every byte */
		free(buf);
		events_server_ready(s);
		lookup_failed(l, "08P01", "auth_query request too large");
		return;
	}
	l->server = s;
	server_run_request(s, buf, w.len, AUTH_QUERY_READY_COUNT, &request_ops, l);
	free(buf);
}

static void wait_failed(struct pool_waiter *pw, const char *sqlstate, const char *msg)
{
	struct auth_lookup *l = container_of(pw, struct auth_lookup, waiter);
	char text[600];
	l->waiting = false;
	snprintf(text, sizeof(text), "auth_query: could not log in to the server as auth_user: %s", msg);
	/* The auth user's login error is not the client's: a 28xxx code
	 * would read as "your password is wrong". */
	lookup_failed(l, strncmp(sqlstate, "28", 2) == 0 ? "08P01" : sqlstate, text);
}

static struct auth_lookup *lookup_find(const struct pool *p, const char *query, const char *user)
{
	struct list_node *n;
	for (n = lookups.next; n != &lookups; n = n->next) {
		struct auth_lookup *l = list_entry(n, struct auth_lookup, node);
		if (l->pool == p && strcmp(l->user, user) == 0 && strcmp(l->query, query) == 0)
			return l;
	}
	return NULL;
}

struct auth_query_wait *auth_query_lookup(struct pool *auth_pool, const char *query, const char *user,
					  auth_query_done_fn done, void *arg)
{
	struct auth_lookup *l = lookup_find(auth_pool, query, user);
	bool start = !l;
	if (start) {
		l = xcalloc(1, sizeof(*l));
		l->pool = auth_pool;
		l->user = xstrdup(user);
		l->query = xstrdup(query);
		l->waiter.got_server = got_server;
		l->waiter.failed = wait_failed;
		list_init(&l->waits);
		list_add_tail(&lookups, &l->node);
	}
	struct auth_query_wait *w = xcalloc(1, sizeof(*w));
	w->lookup = l;
	w->done = done;
	w->arg = arg;
	list_add_tail(&l->waits, &w->node);
	if (!start) {
		log_debug("auth_query for user \"%s\": shares the lookup in flight", user);
		return w;
	}
	log_debug("auth_query for user \"%s\": new lookup via %s/%s", user, auth_pool->db_name,
		  auth_pool->user_name);
	l->starting = true;
	l->waiting = true;
	events_wait_for_server(auth_pool, &l->waiter);
	l->starting = false;
	if (l->finished) {   /* answered at once: w is gone */
		if (!l->server && !l->waiting)
			lookup_free(l);
		return NULL;
	}
	return w;
}

void auth_query_cancel(struct auth_query_wait *w)
{
	struct auth_lookup *l = w->lookup;
	list_del(&w->node);
	free(w);
	if (!list_empty(&l->waits) || l->starting)
		return;
	/* Nobody waits any more. A lookup still queued for a server leaves the
	 * queue; one whose query runs finishes it first (on_done frees it). */
	list_del(&l->node);
	list_init(&l->node);
	l->finished = true;
	if (l->waiting) {
		events_cancel_wait(l->pool, &l->waiter);
		l->waiting = false;
	}
	if (!l->server)
		lookup_free(l);
}
