/* admin: owns the console sessions (one per logged-in console client), the
 * console's login answer, its simple-query loop and command grammar, and
 * the control commands (PAUSE, RESUME, SUSPEND, DISABLE, ENABLE, RECONNECT,
 * KILL, KILL_CLIENT, RELOAD, WAIT_CLOSE, SHUTDOWN, SET). SHOW lives in
 * admin_show.c.
 *
 * A query string is run statement by statement; its whole answer is built
 * in the session's reply and sent once. PAUSE and WAIT_CLOSE may have to
 * wait: the session then keeps the rest of the query string, stops reading
 * from its client, and is continued from the deferred queue when a server
 * closes (pool's server-gone hook) or on the janitor's tick.
 * Invariant: a session is in `sessions` exactly while its client is open;
 * it is freed from the deferred queue, so code holding a session pointer
 * checks s->client after anything that may close a client. */
#include "admin.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "autoconf.h"
#include "cancel.h"
#include "client.h"
#include "config.h"
#include "lifecycle.h"
#include "list.h"
#include "log.h"
#include "loop.h"
#include "pool.h"
#include "proto.h"
#include "server.h"

/* Largest message a console client may send (a query string). */
#define ADMIN_MAX_MESSAGE (64 * 1024)
#define ADMIN_MAX_WORDS 8

enum admin_wait {
	ADMIN_WAIT_NONE,
	ADMIN_WAIT_PAUSE,   /* until every server of the paused pools is closed */
	ADMIN_WAIT_CLOSE,   /* until no server is marked close_needed */
	ADMIN_WAIT_SUSPEND, /* until every socket's output is written (or suspend_timeout) */
};

struct admin_session {
	struct list_node node;        /* in `sessions` */
	struct client *client;        /* NULL once the client closed */
	bool is_admin;                /* else a stats_users member */
	bool skip_to_sync;            /* extended-protocol message seen: ignore up to Sync */
	bool throttled;               /* not reading: earlier output is still unsent */
	char *sql;                    /* the query string being run, or NULL */
	size_t pos;                   /* where its next statement starts */
	bool ran_any;                 /* a statement of it ran (else EmptyQueryResponse) */
	enum admin_wait wait;
	char *wait_db;                /* NULL: every database */
	const char *wait_tag;         /* command tag to send when the wait ends */
	usec_t wait_deadline;         /* SUSPEND: when suspend_timeout runs out */
	struct admin_reply reply;
};

static struct list_node sessions = { &sessions, &sessions };
static bool check_scheduled;

/* One statement of a query string, split into words. */
struct admin_stmt {
	size_t n;                     /* words seen (may exceed ADMIN_MAX_WORDS) */
	char *word[ADMIN_MAX_WORDS];
	bool quoted[ADMIN_MAX_WORDS];
	const char *text;             /* the statement in the query string */
	size_t text_len;
};

enum exec_result {
	EXEC_DONE,     /* answered; go on with the next statement */
	EXEC_FAILED,   /* an ErrorResponse is in the reply; the rest is skipped */
	EXEC_WAIT,     /* the command waits; the session continues later */
	EXEC_STOP,     /* the query is over (client closed, or answered and shutting down) */
};

static void admin_run(struct admin_session *s);
static void admin_poke(void);

/* -------------------------------------------------------------- sessions */

static struct admin_session *session_of(const struct client *c)
{
	for (struct list_node *n = sessions.next; n != &sessions; n = n->next) {
		struct admin_session *s = list_entry(n, struct admin_session, node);
		if (s->client == c)
			return s;
	}
	return NULL;
}

static void session_free(void *arg)
{
	struct admin_session *s = arg;
	free(s->sql);
	free(s->wait_db);
	admin_reply_free(&s->reply);
	free(s);
}

void admin_client_closed(struct client *c)
{
	struct admin_session *s = session_of(c);
	if (!s)
		return;
	list_del(&s->node);
	s->client = NULL;
	loop_defer(session_free, s);
}

/* Sends what the reply holds. False if the client is gone. */
static bool admin_flush(struct admin_session *s)
{
	struct client *c = s->client;
	if (!c)
		return false;
	if (s->reply.len == 0)
		return true;
	enum conn_io r = conn_send(&c->conn, s->reply.data, s->reply.len);
	admin_reply_free(&s->reply);
	if (r == CONN_IO_ERROR) {
		client_close(c, "could not write to console client");
		return false;
	}
	return true;
}

static bool output_pending(const struct client *c)
{
	return c->conn.out && iobuf_len(c->conn.out) > 0;
}

/* ----------------------------------------------------------------- login */

bool admin_is_console_db(const char *db)
{
	return strcmp(db, "pgbouncer") == 0 || strcmp(db, "tidepool") == 0;
}

/* Is c a unix-socket peer running as the same OS user as tidepool? */
static bool peer_is_self(const struct client *c)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (!c->is_unix || c->conn.fd < 0)
		return false;
	if (getsockopt(c->conn.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	return cred.uid == geteuid();
}

bool admin_trusts_peer(const struct client *c)
{
	return c->user && strcmp(c->user, "pgbouncer") == 0 && peer_is_self(c);
}

/* AuthenticationOk, the parameters drivers look at, the cancel key and
 * ReadyForQuery. */
static bool send_welcome(struct client *c)
{
	int app = params_index("application_name");
	const char *appname = app >= 0 && c->params.values[app] ? c->params.values[app] : "";
	const char *const params[][2] = {
		{ "server_version", "15.0 (tidepool " PACKAGE_VERSION ")" },
		{ "server_encoding", "UTF8" }, { "client_encoding", "UTF8" },
		{ "DateStyle", "ISO" }, { "TimeZone", "GMT" },
		{ "standard_conforming_strings", "on" }, { "integer_datetimes", "on" },
		{ "application_name", appname },
	};
	uint8_t buf[2048];
	struct proto_writer w;
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_auth(&w, PQ_AUTH_OK, NULL, 0);
	for (size_t i = 0; i < ARRAY_SIZE(params); i++)
		proto_write_parameter_status(&w, params[i][0], params[i][1]);
	cancel_register(c);
	proto_write_backend_key(&w, c->cancel_pid, c->cancel_key);
	proto_write_ready(&w, 'I');
	if (w.overflow) {
		client_fail(c, "08P01", "application_name too long for the admin console");
		return false;
	}
	if (conn_send(&c->conn, w.buf, w.len) == CONN_IO_ERROR) {
		client_close(c, "could not send login response");
		return false;
	}
	return true;
}

void admin_login(struct client *c)
{
	const struct config *cfg = config_current();
	bool is_admin = config_list_contains(cfg->admin_users, c->user) || peer_is_self(c);
	bool by_prefix = cfg->stats_users_prefix[0] &&
			 strncmp(c->user, cfg->stats_users_prefix, strlen(cfg->stats_users_prefix)) == 0;
	if (!is_admin && !by_prefix && !config_list_contains(cfg->stats_users, c->user)) {
		client_fail(c, "42501", "not allowed");
		return;
	}
	pool_set_server_gone_hook(admin_poke);
	c->conn.never_suspend = true;   /* RESUME must get through */
	struct admin_session *s = xcalloc(1, sizeof(*s));
	s->client = c;
	s->is_admin = is_admin;
	list_add_tail(&sessions, &s->node);
	pool_client_change_state(c, CL_IDLE);
	if (!send_welcome(c))
		return;
	client_log(LOG_LVL_INFO, c, "admin console login (%s)", is_admin ? "admin" : "stats user");
	conn_set_reading(&c->conn, true);
	client_process(c);
}

/* ----------------------------------------------------------------- input */

static void send_error_ready(struct admin_session *s, const char *sqlstate, const char *msg, bool ready)
{
	admin_reply_error(&s->reply, sqlstate, "%s", msg);
	if (ready)
		admin_reply_ready(&s->reply);
	(void)admin_flush(s);
}

/* A Query message: the whole string is kept and run. False to stop reading
 * input for now. */
static bool take_query(struct admin_session *s, const uint8_t *body, uint32_t len)
{
	struct client *c = s->client;
	if (len == 0 || body[len - 1] != '\0' || memchr(body, '\0', len) != body + len - 1) {
		client_fail(c, "08P01", "invalid Query message");
		return false;
	}
	s->sql = xstrdup((const char *)body);
	s->pos = 0;
	pool_client_change_state(c, CL_IDLE);   /* restarts client_idle_timeout, keeps the list in order */
	s->ran_any = false;
	conn_consume(&c->conn, len + PROTO_HEADER_LEN);
	admin_run(s);
	return s->client && !s->sql;
}

/* Handles one whole message at the start of the buffer. */
static bool take_message(struct admin_session *s, const struct proto_header *h, const uint8_t *body)
{
	struct client *c = s->client;
	uint32_t blen = h->len - 4;
	switch (h->type) {
	case PQ_MSG_QUERY:
		return take_query(s, body, blen);
	case PQ_MSG_TERMINATE:
		client_close(c, "client sent Terminate");
		return false;
	case PQ_MSG_SYNC:
		conn_consume(&c->conn, h->len + 1);
		s->skip_to_sync = false;
		admin_reply_ready(&s->reply);
		return admin_flush(s);
	case PQ_MSG_FLUSH:
		conn_consume(&c->conn, h->len + 1);
		return true;
	case PQ_MSG_PARSE:
	case PQ_MSG_BIND:
	case PQ_MSG_DESCRIBE:
	case PQ_MSG_EXECUTE:
	case PQ_MSG_CLOSE:
		/* As PostgreSQL after an error: skip to the Sync, then ReadyForQuery. */
		conn_consume(&c->conn, h->len + 1);
		if (!s->skip_to_sync)
			send_error_ready(s, "0A000", "admin console supports only the simple query protocol", false);
		s->skip_to_sync = true;
		return s->client != NULL;
	default:
		conn_consume(&c->conn, h->len + 1);
		send_error_ready(s, "0A000", "admin console supports only the simple query protocol", true);
		return s->client != NULL;
	}
}

/* Reads the next whole message; false when there is none (or c failed). */
static bool next_message(struct admin_session *s)
{
	struct client *c = s->client;
	struct iobuf *b = c->conn.in;
	struct proto_header h;
	enum proto_result r = proto_read_header(b->data + b->start, iobuf_len(b), &h);
	if (r == PROTO_NEED_MORE)
		return false;
	if (r == PROTO_ERROR || h.len > ADMIN_MAX_MESSAGE) {
		client_fail(c, "08P01", "invalid message for the admin console (type '%c', length %u; at most %u)",
			    h.type >= 32 && h.type < 127 ? h.type : '?', h.len, ADMIN_MAX_MESSAGE);
		return false;
	}
	if (iobuf_len(b) < h.len + 1) {
		conn_reserve(&c->conn, h.len + 1);
		return false;
	}
	if (h.type == PQ_MSG_QUERY && output_pending(c)) {
		/* The last answer is not sent yet: read on once it is. */
		s->throttled = true;
		conn_set_reading(&c->conn, false);
		return false;
	}
	return take_message(s, &h, b->data + b->start + PROTO_HEADER_LEN);
}

void admin_input(struct client *c)
{
	struct admin_session *s = session_of(c);
	if (!s) {
		client_fail(c, "08P01", "admin console session not found");
		return;
	}
	while (s->client && !s->sql && !s->throttled && c->conn.in && iobuf_len(c->conn.in) > 0)
		if (!next_message(s))
			break;
	if (s->client && c->state == CL_IDLE)
		conn_release_empty(&c->conn);
}

/* ---------------------------------------------------------------- parser */

static void stmt_free(struct admin_stmt *st)
{
	for (size_t i = 0; i < MIN(st->n, (size_t)ADMIN_MAX_WORDS); i++)
		free(st->word[i]);
	st->n = 0;
}

/* A '...' string or "..." identifier starting at sql[*i]; a doubled quote
 * stands for one. NULL if it is not closed. */
static char *read_quoted(const char *sql, size_t *i)
{
	char q = sql[*i];
	size_t j = *i + 1, o = 0;
	char *out = xmalloc(strlen(sql + j) + 1);
	for (; sql[j]; j++) {
		if (sql[j] == q && sql[j + 1] != q)
			break;
		if (sql[j] == q)
			j++;
		out[o++] = sql[j];
	}
	if (!sql[j]) {
		free(out);
		return NULL;
	}
	out[o] = '\0';
	*i = j + 1;
	return out;
}

static void stmt_add(struct admin_stmt *st, char *word, bool quoted)
{
	if (st->n < ADMIN_MAX_WORDS) {
		st->word[st->n] = word;
		st->quoted[st->n] = quoted;
	} else {
		free(word);
	}
	st->n++;
}

/* Splits the statement at sql[*pos] (up to ';' or the end) into words:
 * bare words, quoted words and "=". False (with *err) on a quote left open. */
static bool admin_lex(const char *sql, size_t *pos, struct admin_stmt *st, const char **err)
{
	size_t i = *pos;
	memset(st, 0, sizeof(*st));
	while (isspace((unsigned char)sql[i]))
		i++;
	st->text = sql + i;
	for (;;) {
		while (isspace((unsigned char)sql[i]))
			i++;
		char ch = sql[i];
		if (ch == '\0' || ch == ';')
			break;
		if (ch == '\'' || ch == '"') {
			char *w = read_quoted(sql, &i);
			if (!w) {
				*err = "unterminated quoted string";
				*pos = i + strlen(sql + i);
				return false;
			}
			stmt_add(st, w, true);
		} else if (ch == '=') {
			stmt_add(st, xstrdup("="), false);
			i++;
		} else {
			size_t b = i;
			while (sql[i] && !isspace((unsigned char)sql[i]) && !strchr(";='\"", sql[i]))
				i++;
			stmt_add(st, xstrndup(sql + b, i - b), false);
		}
	}
	st->text_len = (size_t)(sql + i - st->text);
	*pos = sql[i] == ';' ? i + 1 : i;
	return true;
}

static enum exec_result syntax_error(struct admin_session *s, const struct admin_stmt *st)
{
	int len = (int)MIN(st->text_len, (size_t)80);
	admin_reply_error(&s->reply, "42601", "invalid command \"%.*s%s\", use SHOW HELP;", len,
			  st->text, st->text_len > 80 ? "..." : "");
	return EXEC_FAILED;
}

static enum exec_result need_admin(struct admin_session *s)
{
	admin_reply_error(&s->reply, "42501", "admin access needed");
	return EXEC_FAILED;
}

/* ------------------------------------------------------------ databases */

static bool db_exists(const char *db)
{
	if (strcmp(db, "*") != 0 && config_find_db(config_current(), db))
		return true;
	for (struct list_node *n = pool_list()->next; n != pool_list(); n = n->next) {
		const struct pool *p = list_entry(n, struct pool, node);
		if (!p->console && strcmp(p->db_name, db) == 0)
			return true;
	}
	return false;
}

/* A database argument: known, and not the console. */
static bool check_db(struct admin_session *s, const char *db, const char *verb)
{
	if (admin_is_console_db(db)) {
		admin_reply_error(&s->reply, "55000", "%s is not possible on the admin console", verb);
		return false;
	}
	if (!db_exists(db)) {
		admin_reply_error(&s->reply, "3D000", "no such database: %s", db);
		return false;
	}
	return true;
}

static bool pool_matches(const struct pool *p, const char *db)
{
	return !p->console && (!db || strcmp(p->db_name, db) == 0);
}

/* ------------------------------------------------------------- waiting */

enum wait_state {
	WAIT_PENDING,
	WAIT_DONE,
	WAIT_CANCELLED,   /* a RESUME undid the PAUSE being waited for */
};

static bool pool_has_close_needed(const struct pool *p)
{
	for (int st = 0; st < SV_STATE_COUNT; st++)
		for (const struct list_node *m = p->servers[st].next; m != &p->servers[st]; m = m->next)
			if (list_entry(m, struct server, node)->close_needed)
				return true;
	return false;
}

/* Calls fn for every client and server connection except console clients
 * (they keep working while suspended). */
static void each_data_conn(void (*fn)(struct conn *cn, bool is_client, void *arg), void *arg)
{
	for (struct list_node *n = pool_login_clients()->next; n != pool_login_clients(); n = n->next)
		fn(&list_entry(n, struct client, node)->conn, true, arg);
	for (struct list_node *n = pool_list()->next; n != pool_list(); n = n->next) {
		struct pool *p = list_entry(n, struct pool, node);
		for (int st = 0; st < CL_STATE_COUNT && !p->console; st++)
			for (struct list_node *m = p->clients[st].next; m != &p->clients[st]; m = m->next)
				fn(&list_entry(m, struct client, node)->conn, true, arg);
		for (int st = 0; st < SV_STATE_COUNT; st++)
			for (struct list_node *m = p->servers[st].next; m != &p->servers[st]; m = m->next)
				fn(&list_entry(m, struct server, node)->conn, false, arg);
	}
}

static void count_unsent(struct conn *cn, bool is_client, void *arg)
{
	*(int *)arg += conn_has_unsent(cn);
}

static int unsent_conns(void)
{
	int n = 0;
	each_data_conn(count_unsent, &n);
	return n;
}

static enum wait_state suspend_wait_state(const struct admin_session *s)
{
	if (!lifecycle_suspended())
		return WAIT_CANCELLED;
	if (unsent_conns() == 0 || loop_now() >= s->wait_deadline)
		return WAIT_DONE;
	return WAIT_PENDING;
}

static enum wait_state wait_state(const struct admin_session *s)
{
	const char *db = s->wait_db;
	if (s->wait == ADMIN_WAIT_SUSPEND)
		return suspend_wait_state(s);
	if (s->wait == ADMIN_WAIT_PAUSE && !lifecycle_paused() && !(db && pool_db_paused(db)))
		return WAIT_CANCELLED;
	for (struct list_node *n = pool_list()->next; n != pool_list(); n = n->next) {
		const struct pool *p = list_entry(n, struct pool, node);
		if (!pool_matches(p, db))
			continue;
		if (s->wait == ADMIN_WAIT_PAUSE && pool_total_servers(p) > 0)
			return WAIT_PENDING;
		if (s->wait == ADMIN_WAIT_CLOSE && pool_has_close_needed(p))
			return WAIT_PENDING;
	}
	return WAIT_DONE;
}

/* The first connection found with unsent output (a list walk cannot go on
 * after closing one: the lists change). */
static void find_unsent(struct conn *cn, bool is_client, void *arg)
{
	struct conn **found = arg;
	if (!found[0] && conn_has_unsent(cn)) {
		found[0] = cn;
		found[1] = is_client ? cn : NULL;
	}
}

/* suspend_timeout ran out: connections that could not flush are dropped,
 * as in PgBouncer, so that SUSPEND never waits on a stuck peer forever. */
static void drop_unflushed(void)
{
	for (;;) {
		struct conn *found[2] = { NULL, NULL };
		each_data_conn(find_unsent, found);
		if (!found[0])
			return;
		if (found[1])
			client_close(container_of(found[0], struct client, conn),
				     "SUSPEND: output not flushed within suspend_timeout");
		else
			server_close(container_of(found[0], struct server, conn),
				     "SUSPEND: output not flushed within suspend_timeout");
	}
}

/* Starts waiting; answers at once when there is nothing to wait for. */
static enum exec_result wait_for(struct admin_session *s, enum admin_wait kind, const char *db,
				 const char *tag)
{
	s->wait = kind;
	s->wait_db = db ? xstrdup(db) : NULL;
	s->wait_tag = tag;
	if (wait_state(s) == WAIT_PENDING)
		return EXEC_WAIT;
	if (kind == ADMIN_WAIT_SUSPEND)
		drop_unflushed();   /* suspend_timeout = 0: no wait at all */
	s->wait = ADMIN_WAIT_NONE;
	free(s->wait_db);
	s->wait_db = NULL;
	admin_reply_complete(&s->reply, tag);
	return EXEC_DONE;
}

/* Ends s's wait (done or cancelled) and runs the rest of its query. */
static void finish_wait(struct admin_session *s, enum wait_state ws)
{
	const char *tag = s->wait_tag;
	if (s->wait == ADMIN_WAIT_SUSPEND && ws == WAIT_DONE) {
		drop_unflushed();
		if (!s->client)
			return;
	}
	s->wait = ADMIN_WAIT_NONE;
	free(s->wait_db);
	s->wait_db = NULL;
	if (ws == WAIT_CANCELLED) {
		admin_reply_error(&s->reply, "57014", "%s was cancelled by RESUME", tag);
		s->pos = strlen(s->sql);   /* the rest of the query string is skipped */
	} else {
		admin_reply_complete(&s->reply, tag);
	}
	conn_set_reading(&s->client->conn, true);
	admin_run(s);
	if (s->client && !s->sql)
		admin_input(s->client);
}

static bool session_can_go_on(const struct admin_session *s)
{
	if (s->wait != ADMIN_WAIT_NONE)
		return wait_state(s) != WAIT_PENDING;
	return s->throttled && !output_pending(s->client);
}

/* Continues every session whose wait is over. Any of them may close
 * clients (KILL ...), so the walk starts over after each. */
static void check_sessions(void *arg)
{
	check_scheduled = false;
	bool again = true;
	while (again) {
		again = false;
		for (struct list_node *n = sessions.next; n != &sessions; n = n->next) {
			struct admin_session *s = list_entry(n, struct admin_session, node);
			if (!session_can_go_on(s))
				continue;
			if (s->wait != ADMIN_WAIT_NONE) {
				finish_wait(s, wait_state(s));
			} else {
				s->throttled = false;
				conn_set_reading(&s->client->conn, true);
				admin_input(s->client);
			}
			again = true;
			break;
		}
	}
}

/* Something changed (a server closed): look at waiting sessions after the
 * current callback. */
static void admin_poke(void)
{
	if (check_scheduled || list_empty(&sessions))
		return;
	check_scheduled = true;
	loop_defer(check_sessions, NULL);
}

void admin_tick(void)
{
	admin_stats_tick(loop_now());
	admin_poke();
}

/* ------------------------------------------------------ control commands */

static enum exec_result cmd_pause(struct admin_session *s, const char *db)
{
	if (db && !check_db(s, db, "PAUSE"))
		return EXEC_FAILED;
	if (db ? pool_db_paused(db) : lifecycle_paused()) {
		admin_reply_error(&s->reply, "55000", "%s%s is already paused", db ? "database " : "tidepool",
				  db ? db : "");
		return EXEC_FAILED;
	}
	log_info("admin: PAUSE %s", db ? db : "(all databases)");
	if (db)
		pool_set_paused(db, true);
	else
		lifecycle_set_paused(true);
	return wait_for(s, ADMIN_WAIT_PAUSE, db, "PAUSE");
}

static enum exec_result cmd_resume(struct admin_session *s, const char *db)
{
	if (db) {
		if (!check_db(s, db, "RESUME"))
			return EXEC_FAILED;
		if (!pool_db_paused(db)) {
			admin_reply_error(&s->reply, "55000", "database %s is not paused", db);
			return EXEC_FAILED;
		}
	} else if (!pool_any_paused() && !lifecycle_suspended()) {
		admin_reply_error(&s->reply, "55000", "tidepool is not paused or suspended");
		return EXEC_FAILED;
	}
	log_info("admin: RESUME %s", db ? db : "(all databases)");
	if (!db && lifecycle_suspended())
		lifecycle_set_suspended(false);
	if (db)
		pool_set_paused(db, false);
	else
		lifecycle_set_paused(false);
	admin_poke();   /* a PAUSE waiting for these pools is cancelled */
	admin_reply_complete(&s->reply, "RESUME");
	return EXEC_DONE;
}

static enum exec_result cmd_suspend(struct admin_session *s, const char *arg)
{
	if (lifecycle_suspended()) {
		admin_reply_error(&s->reply, "55000", "tidepool is already suspended");
		return EXEC_FAILED;
	}
	log_info("admin: SUSPEND (no new connections, no reading, no server assignments until RESUME)");
	lifecycle_set_suspended(true);
	s->wait_deadline = loop_now() + config_current()->suspend_timeout;
	return wait_for(s, ADMIN_WAIT_SUSPEND, NULL, "SUSPEND");
}

static enum exec_result set_disabled(struct admin_session *s, const char *db, bool on)
{
	if (!check_db(s, db, on ? "DISABLE" : "ENABLE"))
		return EXEC_FAILED;
	log_info("admin: %s %s", on ? "DISABLE" : "ENABLE", db);
	pool_set_disabled(db, on);
	admin_reply_complete(&s->reply, on ? "DISABLE" : "ENABLE");
	return EXEC_DONE;
}

static enum exec_result cmd_disable(struct admin_session *s, const char *db)
{
	return set_disabled(s, db, true);
}

static enum exec_result cmd_enable(struct admin_session *s, const char *db)
{
	return set_disabled(s, db, false);
}

static enum exec_result cmd_reconnect(struct admin_session *s, const char *db)
{
	if (db && !check_db(s, db, "RECONNECT"))
		return EXEC_FAILED;
	log_info("admin: RECONNECT %s", db ? db : "(all databases)");
	for (struct list_node *n = pool_list()->next; n != pool_list(); n = n->next) {
		struct pool *p = list_entry(n, struct pool, node);
		if (!pool_matches(p, db))
			continue;
		for (int st = 0; st < SV_STATE_COUNT; st++)
			for (struct list_node *m = p->servers[st].next; m != &p->servers[st]; m = m->next)
				list_entry(m, struct server, node)->close_needed = true;
		pool_close_idle(p, "RECONNECT");
	}
	admin_reply_complete(&s->reply, "RECONNECT");
	return EXEC_DONE;
}

static enum exec_result cmd_wait_close(struct admin_session *s, const char *db)
{
	if (db && !check_db(s, db, "WAIT_CLOSE"))
		return EXEC_FAILED;
	return wait_for(s, ADMIN_WAIT_CLOSE, db, "WAIT_CLOSE");
}

/* Closes every client and server of p (KILL). */
static void kill_pool(struct pool *p)
{
	for (int st = 0; st < CL_STATE_COUNT; st++)
		while (st != CL_CLOSED && !list_empty(&p->clients[st]))
			client_fail(list_entry(list_first(&p->clients[st]), struct client, node), "57P01",
				    "database \"%s\" was closed by the administrator (KILL); it is paused until RESUME",
				    p->db_name);
	for (int st = 0; st < SV_STATE_COUNT; st++)
		while (st != SV_CLOSED && !list_empty(&p->servers[st]))
			server_close(list_entry(list_first(&p->servers[st]), struct server, node), "KILL");
}

static enum exec_result cmd_kill(struct admin_session *s, const char *db)
{
	if (db && !check_db(s, db, "KILL"))
		return EXEC_FAILED;
	log_info("admin: KILL %s", db ? db : "(all databases)");
	if (db)
		pool_set_paused(db, true);
	else
		lifecycle_set_paused(true);
	for (struct list_node *n = pool_list()->next; n != pool_list(); n = n->next) {
		struct pool *p = list_entry(n, struct pool, node);
		if (pool_matches(p, db))
			kill_pool(p);
	}
	admin_reply_complete(&s->reply, "KILL");
	return EXEC_DONE;
}

static struct client *find_in(struct list_node *l, uint64_t id)
{
	for (struct list_node *n = l->next; n != l; n = n->next)
		if (list_entry(n, struct client, node)->id == id)
			return list_entry(n, struct client, node);
	return NULL;
}

static struct client *find_client(uint64_t id)
{
	struct client *c = find_in(pool_login_clients(), id);
	for (struct list_node *n = pool_list()->next; !c && n != pool_list(); n = n->next)
		for (int st = 0; !c && st < CL_STATE_COUNT; st++)
			c = find_in(&list_entry(n, struct pool, node)->clients[st], id);
	return c;
}

static enum exec_result cmd_kill_client(struct admin_session *s, const char *arg)
{
	int64_t id;
	if (!parse_int64(arg, 1, INT64_MAX, &id)) {
		admin_reply_error(&s->reply, "22023", "KILL_CLIENT needs a client id (the id column of SHOW CLIENTS), not \"%s\"", arg);
		return EXEC_FAILED;
	}
	struct client *c = find_client((uint64_t)id);
	if (!c) {
		admin_reply_error(&s->reply, "42704", "no client with id %lld", (long long)id);
		return EXEC_FAILED;
	}
	log_info("admin: KILL_CLIENT %lld", (long long)id);
	bool self = c == s->client;
	client_fail(c, "57P01", "connection closed by the administrator (KILL_CLIENT)");
	if (self)
		return EXEC_STOP;
	admin_reply_complete(&s->reply, "KILL_CLIENT");
	return EXEC_DONE;
}

static enum exec_result cmd_reload(struct admin_session *s, const char *arg)
{
	char *errors = NULL;
	log_info("admin: RELOAD");
	bool ok = lifecycle_reload(&errors);
	if (!ok)
		admin_reply_error(&s->reply, "F0000", "RELOAD failed, see logs for additional details; the old configuration stays in effect: %s",
				  errors ? errors : "unknown error");
	else
		admin_reply_complete(&s->reply, "RELOAD");
	free(errors);
	return ok ? EXEC_DONE : EXEC_FAILED;
}

static void admin_finish_query(struct admin_session *s);

static enum exec_result cmd_shutdown(struct admin_session *s, const char *arg)
{
	enum shutdown_kind kind = SHUTDOWN_IMMEDIATE;
	if (arg && strcasecmp(arg, "WAIT_FOR_SERVERS") == 0) {
		kind = SHUTDOWN_WAIT_FOR_SERVERS;
	} else if (arg && strcasecmp(arg, "WAIT_FOR_CLIENTS") == 0) {
		kind = SHUTDOWN_WAIT_FOR_CLIENTS;
	} else if (arg) {
		admin_reply_error(&s->reply, "42601", "SHUTDOWN takes WAIT_FOR_SERVERS or WAIT_FOR_CLIENTS, not \"%s\"", arg);
		return EXEC_FAILED;
	}
	/* Answered first: the shutdown may close this very client. */
	admin_reply_complete(&s->reply, "SHUTDOWN");
	admin_finish_query(s);
	lifecycle_shutdown(kind, "admin console SHUTDOWN");
	return EXEC_STOP;
}

/* -------------------------------------------------------------------- SET */

/* SET key = value: a copy of the current snapshot with the key changed
 * (parsed and checked by the key table) replaces it, as a reload would. A
 * refused value changes nothing. RELOAD re-reads the file, so values set
 * here last until the next reload (as in PgBouncer). */
static enum exec_result admin_set(struct admin_session *s, const char *key, const char *value)
{
	struct config *cfg = NULL;
	char *why = NULL;
	switch (config_set_key(config_current(), key, value, &cfg, &why)) {
	case CONFIG_SET_OK:
		break;
	case CONFIG_SET_UNKNOWN:
		admin_reply_error(&s->reply, "42704", "unknown configuration key: %s", key);
		return EXEC_FAILED;
	case CONFIG_SET_NOT_CHANGEABLE:
		admin_reply_error(&s->reply, "55P02", "%s cannot be changed while tidepool runs (it needs a restart)", key);
		return EXEC_FAILED;
	case CONFIG_SET_INVALID:
		admin_reply_error(&s->reply, "22023", "cannot set %s to \"%s\": %s", key, value,
				  why ? why : "invalid value");
		free(why);
		return EXEC_FAILED;
	}
	lifecycle_install(cfg);
	log_info("admin: SET %s = %s", key, value);
	admin_reply_complete(&s->reply, "SET");
	return EXEC_DONE;
}

static enum exec_result exec_set(struct admin_session *s, const struct admin_stmt *st)
{
	if (!s->is_admin)
		return need_admin(s);
	if (st->n != 4 || (strcmp(st->word[2], "=") != 0 && strcasecmp(st->word[2], "TO") != 0) ||
	    st->quoted[2]) {
		admin_reply_error(&s->reply, "42601", "SET needs a key and a value: SET key = value");
		return EXEC_FAILED;
	}
	return admin_set(s, st->word[1], st->word[3]);
}

/* --------------------------------------------------------------- dispatch */

enum arg_rule {
	ARG_NONE,
	ARG_OPTIONAL,
	ARG_REQUIRED,
};

static const struct {
	const char *name;
	enum arg_rule arg;
	enum exec_result (*fn)(struct admin_session *s, const char *arg);
} commands[] = {
	{ "PAUSE", ARG_OPTIONAL, cmd_pause },
	{ "RESUME", ARG_OPTIONAL, cmd_resume },
	{ "SUSPEND", ARG_NONE, cmd_suspend },
	{ "DISABLE", ARG_REQUIRED, cmd_disable },
	{ "ENABLE", ARG_REQUIRED, cmd_enable },
	{ "RECONNECT", ARG_OPTIONAL, cmd_reconnect },
	{ "KILL", ARG_OPTIONAL, cmd_kill },
	{ "KILL_CLIENT", ARG_REQUIRED, cmd_kill_client },
	{ "RELOAD", ARG_NONE, cmd_reload },
	{ "WAIT_CLOSE", ARG_OPTIONAL, cmd_wait_close },
	{ "SHUTDOWN", ARG_OPTIONAL, cmd_shutdown },
};

static enum exec_result exec_show(struct admin_session *s, const struct admin_stmt *st)
{
	if (st->n != 2)
		return syntax_error(s, st);
	switch (admin_show(&s->reply, st->word[1], s->is_admin)) {
	case ADMIN_SHOW_OK:
		return EXEC_DONE;
	case ADMIN_SHOW_DENIED:
		return need_admin(s);
	case ADMIN_SHOW_UNKNOWN:
		admin_reply_error(&s->reply, "42704", "unknown SHOW item \"%s\", use SHOW HELP;", st->word[1]);
		return EXEC_FAILED;
	}
	return EXEC_FAILED;
}

static enum exec_result admin_exec(struct admin_session *s, const struct admin_stmt *st)
{
	const char *cmd = st->word[0];
	if (st->quoted[0])
		return syntax_error(s, st);
	if (strcasecmp(cmd, "SHOW") == 0 || strcasecmp(cmd, "SELECT") == 0)
		return exec_show(s, st);
	if (strcasecmp(cmd, "SET") == 0)
		return exec_set(s, st);
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (strcasecmp(cmd, commands[i].name) != 0)
			continue;
		bool has_arg = st->n == 2;
		if (st->n > 2 || (has_arg && commands[i].arg == ARG_NONE) ||
		    (!has_arg && commands[i].arg == ARG_REQUIRED))
			return syntax_error(s, st);
		if (!s->is_admin)
			return need_admin(s);
		return commands[i].fn(s, has_arg ? st->word[1] : NULL);
	}
	return syntax_error(s, st);
}

/* ------------------------------------------------------------------ runner */

static void admin_finish_query(struct admin_session *s)
{
	if (!s->ran_any)
		admin_reply_empty(&s->reply);
	admin_reply_ready(&s->reply);
	free(s->sql);
	s->sql = NULL;
	s->pos = 0;
	s->ran_any = false;
	(void)admin_flush(s);
}

/* Runs the statements of s->sql from s->pos until the end, an error or a
 * command that waits. */
static void admin_run(struct admin_session *s)
{
	for (;;) {
		struct admin_stmt st;
		const char *err = NULL;
		if (!s->sql[s->pos])
			break;
		if (!admin_lex(s->sql, &s->pos, &st, &err)) {
			stmt_free(&st);
			admin_reply_error(&s->reply, "42601", "%s", err);
			break;
		}
		if (st.n == 0)
			continue;
		s->ran_any = true;
		enum exec_result r = admin_exec(s, &st);
		stmt_free(&st);
		switch (r) {
		case EXEC_DONE:
			continue;
		case EXEC_FAILED:
			s->pos = strlen(s->sql);
			continue;
		case EXEC_WAIT:
			conn_set_reading(&s->client->conn, false);
			(void)admin_flush(s);
			return;
		case EXEC_STOP:
			return;
		}
	}
	admin_finish_query(s);
}
