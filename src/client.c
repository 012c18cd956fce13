/* client: owns struct client and its state machine.
 *
 * CL_LOGIN -> (CL_WAIT_LOGIN) -> CL_IDLE <-> CL_WAITING -> CL_ACTIVE -> CL_IDLE ...
 * The pool owns the lists: every state change is reported through
 * events.h, and the pool moves the client to its list for the new state. A client is freed only from the
 * deferred queue, never inside its own callback. */
#include "client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "cancel.h"
#include "config.h"
#include "events.h"
#include "login.h"
#include "log.h"
#include "loop.h"
#include "pin.h"
#include "prepared.h"
#include "proto.h"
#include "server.h"
#include "settings.h"
#include "stats.h"

static uint64_t next_client_id;

static bool client_idle_refusal(struct client *c, const struct proto_header *h, bool *wait);

static bool never(void)
{
	return false;
}

static bool no_console_db(const char *db)
{
	return false;
}

static const struct client_console_ops no_console = { .is_console_db = no_console_db };
static struct client_hooks hooks = { .draining = never, .console = &no_console };

void client_set_hooks(const struct client_hooks *h)
{
	hooks = *h;
	if (!hooks.console)
		hooks.console = &no_console;
}

const struct client_console_ops *client_console(void)
{
	return hooks.console;
}

bool client_shutting_down(void)
{
	return hooks.shutting_down && hooks.shutting_down();
}

static void client_readable(struct conn *conn);
static void client_resume(struct conn *conn);
static void client_peer_gone(struct conn *conn, int err);
static void client_free(void *arg);
static void client_tls_ready(struct conn *conn, const char *err);

static const struct conn_ops client_ops = {
	.readable = client_readable,
	.resume = client_resume,
	.peer_gone = client_peer_gone,
	.tls_ready = client_tls_ready,
};

const char *client_state_name(enum client_state st)
{
	switch (st) {
	case CL_LOGIN: return "login";
	case CL_WAIT_LOGIN: return "waiting";
	case CL_IDLE: return "idle";
	case CL_WAITING: return "waiting";
	case CL_ACTIVE: return "active";
	case CL_CLOSED: return "closed";
	case CL_STATE_COUNT: break;
	}
	return "?";
}

const char *client_name(const struct client *c, char *buf, size_t len)
{
	snprintf(buf, len, "C-%llu %s/%s@%s:%d", (unsigned long long)c->id,
		 c->dbname ? c->dbname : "(nodb)", c->user ? c->user : "(nouser)", c->addr, c->port);
	return buf;
}

void client_accept(int fd, const struct sockaddr *addr, socklen_t addrlen, bool is_unix)
{
	struct client *c = xcalloc(1, sizeof(*c));
	c->id = ++next_client_id;
	conn_init(&c->conn, fd, &client_ops);
	if (addrlen <= sizeof(c->conn.addr)) {
		memcpy(&c->conn.addr, addr, addrlen);
		c->conn.addrlen = addrlen;
	}
	c->is_unix = is_unix;
	conn_peer_name(&c->conn, c->addr, sizeof(c->addr), &c->port);
	c->connect_time = loop_now();
	c->connect_wall = loop_wall_now();
	c->request_time = c->connect_time;
	c->state = CL_CLOSED;   /* not in any list yet */
	list_init(&c->node);
	events_client_accepted(c);
	conn_set_reading(&c->conn, true);
	client_log(LOG_LVL_DEBUG, c, "accepted connection");
}

static void client_send_error(struct client *c, const char *severity, const char *sqlstate,
			      const char *msg);

/* With sqlstate, the client is told reason as a FATAL error first (after
 * the log line, so that whoever reads the log once the client has its
 * error finds the line, as with PgBouncer), and the socket lingers (see
 * conn_close_lingering). */
static void close_client(struct client *c, const char *reason, const char *sqlstate)
{
	if (c->state == CL_CLOSED)
		return;
	const struct config *cfg = config_current();
	if (c->startup_done && cfg->log_disconnections)
		client_log(LOG_LVL_INFO, c, "closing because: %s (age=%llds)", reason,
			   (long long)((loop_now() - c->connect_time) / USEC_PER_SEC));
	else
		client_log(LOG_LVL_DEBUG, c, "closing because: %s", reason);
	if (sqlstate)
		client_send_error(c, "FATAL", sqlstate, reason);
	struct server *s = c->server;
	c->server = NULL;
	if (c->pool && c->pool->console)
		hooks.console->closed(c);
	events_client_closed(c);
	login_free(c);   /* also stops waiting for an auth_query answer */
	if (s) {
		s->client = NULL;
		conn_unblock(&s->conn);
		conn_unblock(&c->conn);
		if (c->conn.blocked_src == &s->conn)
			c->conn.blocked_src = NULL;
		if (s->conn.blocked_src == &c->conn)
			s->conn.blocked_src = NULL;
		server_release(s, true);
	}
	if (c->pinned)
		c->pool->n_pinned--;
	cancel_unregister(c);
	settings_client_free(c);
	ps_client_free(c);   /* now: the pool's registry may go before the deferred free */
	if (sqlstate)
		conn_close_lingering(&c->conn);
	else
		conn_close(&c->conn);
	loop_defer(client_free, c);
}

void client_close(struct client *c, const char *reason)
{
	close_client(c, reason, NULL);
}

static void client_free(void *arg)
{
	struct client *c = arg;
	param_set_clear(&c->params);
	login_free(c);
	free(c->user);
	free(c->dbname);
	free(c);
}

static void client_send_error(struct client *c, const char *severity, const char *sqlstate,
			      const char *msg)
{
	uint8_t buf[1200];
	struct proto_writer w;
	proto_writer_init(&w, buf, sizeof(buf));
	char trimmed[1000];
	strlcpy_safe(trimmed, msg, sizeof(trimmed));
	proto_write_error(&w, severity, sqlstate, trimmed);
	if (c->conn.fd >= 0)
		(void)conn_send(&c->conn, w.buf, w.len);
}

void client_fail(struct client *c, const char *sqlstate, const char *fmt, ...)
{
	if (c->state == CL_CLOSED)
		return;
	char msg[1000];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	const struct config *cfg = config_current();
	if (cfg->log_pooler_errors)
		client_log(LOG_LVL_WARNING, c, "pooler error: %s", msg);
	close_client(c, msg, sqlstate);
}

void client_server_lost(struct client *c, const char *why)
{
	c->server = NULL;
	client_fail(c, "08006", "server connection closed unexpectedly: %s", why);
}

static void client_peer_gone(struct conn *conn, int err)
{
	struct client *c = container_of(conn, struct client, conn);
	client_close(c, err ? conn_strerror(conn, err) : "write failed");
}


/* Sends AuthenticationOk, the pool's parameters (with the client's own
 * values for tracked ones), the cancel key and ReadyForQuery. */
void client_notice(struct client *c, const char *msg)
{
	uint8_t buf[1024];
	struct proto_writer w;
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_notice(&w, "00000", msg);
	if (!w.overflow && conn_send(&c->conn, w.buf, w.len) == CONN_IO_ERROR)
		client_close(c, "write to client failed");
}

void client_finish_login(struct client *c)
{
	struct pool *p = c->pool;
	uint8_t buf[8192];
	struct proto_writer w;
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_auth(&w, PQ_AUTH_OK, NULL, 0);
	for (size_t i = 0; i < p->n_welcome; i++) {
		const char *value = p->welcome[i].value;
		int idx = params_index(p->welcome[i].name);
		/* A tracked parameter the client did not choose takes the pool's
		 * default, so it is restored on servers another client changed. */
		if (idx >= 0 && !c->params.values[idx])
			param_set_put(&c->params, (size_t)idx, value);
		if (idx >= 0)
			value = c->params.values[idx];
		proto_write_parameter_status(&w, p->welcome[i].name, value);
	}
	cancel_register(c);
	proto_write_backend_key(&w, c->cancel_pid, c->cancel_key);
	const char *hello = config_current()->login_notify_message;
	if (hello[0])
		proto_write_notice(&w, "00000", hello);
	proto_write_ready(&w, 'I');
	if (w.overflow) {
		client_fail(c, "08P01", "server parameters too large");
		return;
	}
	events_client_idle(c);
	c->ps_track = config_current()->max_prepared_statements > 0;
	if (conn_send(&c->conn, w.buf, w.len) == CONN_IO_ERROR) {
		client_close(c, "could not send login response");
		return;
	}
	conn_set_reading(&c->conn, true);
	client_process(c);
}

/* Checks a frontend header against max_packet_size (the caller reads the
 * config once per batch, not per message); fails the client on a bad
 * length. */
static bool client_check_header(struct client *c, const struct proto_header *h, enum proto_result r,
				int64_t max_packet_size)
{
	if (r == PROTO_ERROR) {
		client_fail(c, "08P01", "invalid message length %u", h->len);
		return false;
	}
	if (h->len > proto_frontend_max_len(h->type) || (int64_t)h->len + 1 > max_packet_size) {
		client_fail(c, "08P01", "message of type '%c' too long (%u bytes)",
			    h->type >= 32 && h->type < 127 ? h->type : '?', h->len);
		return false;
	}
	return true;
}

/* A logged-in client without a server sent something. */
static void client_idle_input(struct client *c)
{
	struct iobuf *b = c->conn.in;
	if (!b || iobuf_len(b) == 0) {
		conn_release_empty(&c->conn);
		return;
	}
	struct proto_header h;
	enum proto_result r = proto_read_header(b->data + b->start, iobuf_len(b), &h);
	if (r == PROTO_NEED_MORE)
		return;
	if (!client_check_header(c, &h, r, config_current()->max_packet_size))
		return;
	if (h.type == PQ_MSG_TERMINATE) {
		client_close(c, "client sent Terminate");
		return;
	}
	if (c->pool->console) {
		hooks.console->input(c);
		return;
	}
	if (h.type == PQ_MSG_QUERY && c->ps_track && ps_idle_query(c, &h)) {
		/* answered without a server (DEALLOCATE): go on with the rest */
		if (conn_flush(&c->conn) == CONN_IO_ERROR) {
			client_close(c, "write to client failed");
			return;
		}
		client_idle_input(c);
		return;
	}
	if (__builtin_expect(c->skip_to_sync || c->pool->session_state == SESSION_STATE_ERROR, 0)) {
		bool wait = false;
		if ((c->skip_to_sync ||
		     (c->pool->mode != POOL_MODE_SESSION && (h.type == PQ_MSG_QUERY || h.type == PQ_MSG_PARSE))) &&
		    client_idle_refusal(c, &h, &wait)) {
			if (conn_flush(&c->conn) == CONN_IO_ERROR) {
				client_close(c, "write to client failed");
				return;
			}
			client_idle_input(c);
			return;
		}
		if (wait || c->state == CL_CLOSED)
			return;
	}
	if (c->pool->stale || c->terminate_seen) {
		client_fail(c, "57P01", "database configuration changed; please reconnect");
		return;
	}
	if (c->drain_served && hooks.draining()) {
		client_fail(c, "57P01", "tidepool is shutting down");
		return;
	}
	events_client_wants_server(c);
	/* Reading stops only while the client really waits: a server handed
	 * out at once keeps the read event registered, which saves an
	 * epoll_ctl pair per transaction. */
	if (c->state == CL_WAITING)
		conn_set_reading(&c->conn, false);
}

/* A request goes to s: the first since its last ReadyForQuery starts the
 * query (and, outside a transaction, the transaction) clock. */
static inline void client_note_start(struct server *s)
{
	if (s->pending_ready == 0 && !s->unsynced) {
		s->query_start = loop_now();
		if (s->tx_status == 'I')
			s->xact_start = s->query_start;
	}
}

/* Query, FunctionCall or a Sync outside COPY: one more ReadyForQuery to
 * wait for before the server may be released. */
static inline void client_note_ready_expected(struct server *s)
{
	s->pending_ready++;
	s->sync_sent++;
	s->n_exec = 0;
}

static inline bool client_sent(enum ps_verdict v)
{
	return v == PS_PASS || v == PS_DONE;
}

void client_session_state(struct client *c, struct server *s, enum pin_reason why)
{
	if (c->pool->session_state == SESSION_STATE_ALLOW) {
		c->pool->stats.state_allowed++;   /* PgBouncer's behaviour: the state stays on the backend */
		client_log(LOG_LVL_DEBUG, c, "session state allowed: %s (session_state = allow)", pin_reason_name(why));
		return;
	}
	if (why == PIN_LOAD)
		s->close_needed = true;   /* no reset unloads a library: the backend goes when the client does */
	if (c->pinned)
		return;
	c->pinned = true;
	c->pool->n_pinned++;
	s->session_state = true;
	client_log(LOG_LVL_INFO, c, "pinned to its server until it disconnects: %s (session_state)",
		   pin_reason_name(why));
}

/* Sends ErrorResponse 0A000 naming session_state, then ReadyForQuery. */
static bool client_refuse(struct client *c, enum pin_reason why, char status, bool ready)
{
	uint8_t buf[600];
	char msg[200];
	struct proto_writer w;
	proto_writer_init(&w, buf, sizeof(buf));
	snprintf(msg, sizeof(msg), "%s would outlive the transaction on a pooled connection",
		 pin_reason_name(why));
	proto_write_error_hint(&w, "ERROR", "0A000", msg,
			       "tidepool refuses it because session_state = error for this pool; "
			       "use session_state = pin, or a session-mode pool");
	if (ready)
		proto_write_ready(&w, status);
	c->pool->stats.state_refused++;
	client_log(LOG_LVL_INFO, c, "refused: %s (session_state = error)", pin_reason_name(why));
	return !w.overflow && conn_send(&c->conn, w.buf, w.len) != CONN_IO_ERROR;
}

enum state_verdict { STATE_PASS, STATE_NEED_MORE, STATE_REFUSED, STATE_FAILED };

#define STATE_WHOLE_MAX 65536u   /* longer strings are judged by their first bytes */

/* Why the Query or Parse at the scan position leaves state that cannot
 * follow the client (PIN_NONE: it can); its SQL (q, qlen) and a Parse's
 * statement name. The cheap scan reads the bytes at hand (a Parse's
 * parameter types after its SQL do no harm there); only a string that may
 * change a setting is read whole and exactly. NEED_MORE: conn_reserve done. */
static enum state_verdict client_state_of(struct client *c, const struct proto_header *h, struct pin_class *cls,
					  enum pin_reason *why, const char **stmt, const char **q, size_t *qlen)
{
	struct conn *cn = &c->conn;
	uint32_t avail = cn->in->end - cn->fwd, total = h->len + 1;
	const uint8_t *body = cn->in->data + cn->fwd + PROTO_HEADER_LEN;
	uint32_t have = MIN(avail, total) - PROTO_HEADER_LEN;
	*stmt = NULL;
	*q = (const char *)body;
	*qlen = have - (avail >= total);   /* a whole Query's last byte is its NUL */
	if (h->type == PQ_MSG_PARSE) {   /* statement name, NUL, query, NUL, types */
		const uint8_t *nul = memchr(body, 0, have);
		*stmt = (const char *)body;
		*q = nul ? (const char *)nul + 1 : (const char *)body + have;
		*qlen = have - (uint32_t)((const uint8_t *)*q - body);
	}
	*cls = pin_classify(*q, *qlen);
	*why = cls->reason;
	if (!cls->settings)
		return STATE_PASS;
	if (avail < total && total <= STATE_WHOLE_MAX) {
		conn_reserve(cn, (cn->fwd - cn->in->start) + total);
		return STATE_NEED_MORE;
	}
	*qlen = strnlen(*q, *qlen);
	if (*why == PIN_NONE && !settings_replayable(c->pool, *q, *qlen))
		*why = PIN_UNREPLAYABLE;
	return STATE_PASS;
}

/* Session state in a Query or Parse on s: refused (session_state =
 * error, when the answer can go straight back), the client pinned, or
 * its settings recorded to follow it. */
static enum state_verdict client_check_state_slow(struct client *c, struct server *s, const struct proto_header *h,
						   struct pin_class *cls);

/* The usual case first, inline: a Query or Parse whose text leaves no
 * state and changes no setting (and no settings of the client's to keep
 * up with the extended protocol). */
static inline enum state_verdict client_check_state(struct client *c, struct server *s, const struct proto_header *h,
						    struct pin_class *cls)
{
	const struct conn *cn = &c->conn;
	uint32_t avail = cn->in->end - cn->fwd, total = h->len + 1;
	const char *body = (const char *)cn->in->data + cn->fwd + PROTO_HEADER_LEN;
	uint32_t have = MIN(avail, total) - PROTO_HEADER_LEN;
	const char *q = body;
	if (h->type == PQ_MSG_PARSE) {
		if (c->set)
			return client_check_state_slow(c, s, h, cls);
		const char *nul = memchr(body, 0, have);
		q = nul ? nul + 1 : body + have;
	}
	*cls = pin_classify(q, have - (uint32_t)(q - body) - (h->type == PQ_MSG_QUERY && avail >= total));
	if (cls->reason == PIN_NONE && !cls->settings)
		return STATE_PASS;
	return client_check_state_slow(c, s, h, cls);
}

static enum state_verdict client_check_state_slow(struct client *c, struct server *s, const struct proto_header *h,
						   struct pin_class *cls)
{
	struct conn *cn = &c->conn;
	enum pin_reason why;
	const char *stmt, *q;
	size_t qlen;
	enum state_verdict v = client_state_of(c, h, cls, &why, &stmt, &q, &qlen);
	if (v != STATE_PASS)
		return v;
	if (why != PIN_NONE && c->pool->session_state == SESSION_STATE_ERROR && h->type == PQ_MSG_QUERY &&
	    s->tx_status != 'I' && ps_server_settled(s) && !s->unsynced && cn->fwd == cn->in->start &&
	    cn->in->end - cn->fwd >= h->len + 1) {
		conn_consume(cn, h->len + 1);
		cn->fwd = cn->in->start;
		if (client_refuse(c, why, s->tx_status, true))
			return STATE_REFUSED;
		client_close(c, "write to client failed");
		return STATE_FAILED;
	}
	if (why != PIN_NONE)
		client_session_state(c, s, why);   /* error where it cannot answer at once: pinned */
	if (cls->settings && !c->pinned)
		settings_client_sql(c, s, stmt, q, qlen);
	else if (stmt && settings_client_extended(c))
		settings_client_close(c, 'S', stmt);   /* the name now holds another statement */
	return STATE_PASS;
}

/* session_state = error, a client without a server: a Query or Parse
 * that would leave state is answered here (a Parse's batch is dropped up
 * to its Sync, as PostgreSQL skips it after an error). True when the
 * message at the buffer's start was consumed; *wait when more must be
 * read first. */
static bool client_idle_refusal(struct client *c, const struct proto_header *h, bool *wait)
{
	struct conn *cn = &c->conn;
	uint32_t total = h->len + 1;
	if (iobuf_len(cn->in) < total) {
		conn_reserve(cn, total);
		*wait = true;
		return false;
	}
	if (c->skip_to_sync) {
		conn_consume(cn, total);
		cn->fwd = cn->in ? cn->in->start : 0;
		if (h->type != PQ_MSG_SYNC)
			return true;
		c->skip_to_sync = false;
		uint8_t z[6];
		struct proto_writer w;
		proto_writer_init(&w, z, sizeof(z));
		proto_write_ready(&w, 'I');
		return conn_send(cn, w.buf, w.len) != CONN_IO_ERROR;
	}
	cn->fwd = cn->in->start;
	enum pin_reason why;
	struct pin_class cls;
	const char *stmt, *q;
	size_t qlen;
	if (client_state_of(c, h, &cls, &why, &stmt, &q, &qlen) == STATE_NEED_MORE) {
		*wait = true;
		return false;
	}
	if (why == PIN_NONE)
		return false;
	bool query = h->type == PQ_MSG_QUERY;
	conn_consume(cn, total);
	cn->fwd = cn->in ? cn->in->start : 0;
	c->skip_to_sync = !query;
	return client_refuse(c, why, 'I', query);
}

/* Bind, Execute and Close of statements and portals that change settings. */
static bool client_check_extended(struct client *c, struct server *s, const struct proto_header *h)
{
	struct conn *cn = &c->conn;
	uint32_t avail = cn->in->end - cn->fwd, total = h->len + 1;
	const char *body = (const char *)cn->in->data + cn->fwd + PROTO_HEADER_LEN;
	size_t blen = MIN(avail, total) - PROTO_HEADER_LEN;   /* the names come first */
	const char *a = body, *end = body + blen;
	const char *a_end = memchr(a, 0, blen);
	if (!a_end || (h->type == PQ_MSG_BIND && !memchr(a_end + 1, 0, (size_t)(end - a_end - 1)))) {
		if (avail >= total || total > STATE_WHOLE_MAX)
			return true;   /* malformed or huge: PostgreSQL will say */
		conn_reserve(cn, (cn->fwd - cn->in->start) + total);
		return false;
	}
	switch (h->type) {
	case PQ_MSG_BIND:   /* portal, NUL, statement, NUL, ... */
		settings_client_bind(c, a, a_end + 1);
		return true;
	case PQ_MSG_EXECUTE:
		settings_client_execute(c, s, a);
		return true;
	case PQ_MSG_CLOSE:   /* 'S' or 'P', name */
		if (blen >= 2)
			settings_client_close(c, body[0], body + 1);
		return true;
	default:
		return true;
	}
}

/* What a scan of the client's buffer knows for all its messages. */
struct client_scan {
	const struct config *cfg;
	bool pin_check;                 /* Query and Parse are checked for session state */
};

/* The session-state step of a Query or Parse at the forwarding position
 * (client_check_state): PS_PASS to go on, with *cls what pin_classify
 * found when *classified (a Query's text is then not scanned again for
 * DEALLOCATE); PS_DONE when it was refused and answered here;
 * PS_NEED_MORE, PS_FAILED. */
static enum ps_verdict client_state_step(struct client *c, struct server *s, const struct proto_header *h,
					 struct client_scan *x, struct pin_class *cls, bool *classified)
{
	*classified = false;
	if (!x->pin_check)
		return PS_PASS;
	switch (client_check_state(c, s, h, cls)) {
	case STATE_PASS:
		*classified = true;
		x->pin_check = !c->pinned;
		return PS_PASS;
	case STATE_NEED_MORE:
		return PS_NEED_MORE;
	case STATE_REFUSED:
		return PS_DONE;
	case STATE_FAILED:
		return PS_FAILED;
	}
	return PS_PASS;
}

/* Bind, Execute, Close of statements and portals that change settings. */
static inline bool client_settings_step(struct client *c, struct server *s, const struct proto_header *h)
{
	if (!c->set || c->pinned || !settings_client_extended(c))
		return true;
	return client_check_extended(c, s, h);
}

/* Parse, Bind, Describe, Close: the prepared-statement step when tracking
 * is on; then the message belongs to an unsynced extended batch. */
static enum ps_verdict client_extended(struct server *s, enum ps_verdict v)
{
	if (!client_sent(v))
		return v;
	client_note_start(s);
	s->unsynced = true;
	return v;
}

/* The one place a client message is handled on its way to the server:
 * each type's case runs the steps that type needs (session-state pinning,
 * pin.c; prepared statements, prepared.c; the counting that decides the
 * release) and returns what the scan does with it: PS_PASS forward it by
 * its length, PS_DONE already forwarded or queued, PS_ANSWERED answered
 * here, PS_NEED_MORE stop until more input (also after Terminate: nothing
 * after it matters), PS_HOLD stop until the server has answered, PS_FAILED
 * the client was failed. */
static enum ps_verdict client_message(struct client *c, struct server *s, const struct proto_header *h,
				      struct client_scan *x)
{
	struct stats_counters *st = &s->pool->stats;
	struct pin_class cls;
	enum ps_verdict v;
	switch (h->type) {
	case PQ_MSG_QUERY: {
		if (x->cfg->disable_pqexec) {
			client_fail(c, "08P01", "PQexec disallowed (disable_pqexec)");
			return PS_FAILED;
		}
		bool classified;
		v = client_state_step(c, s, h, x, &cls, &classified);
		if (v != PS_PASS)
			return v;
		v = c->ps_track ? ps_query(c, s, h, classified ? &cls : NULL) : PS_PASS;
		if (client_sent(v)) {
			client_note_start(s);
			client_note_ready_expected(s);
		}
		return v;
	}
	case PQ_MSG_PARSE: {
		bool classified;
		v = client_state_step(c, s, h, x, &cls, &classified);
		if (v != PS_PASS)
			return v;
		if (c->ps_track) {
			v = ps_parse(c, s, h);
		} else {
			v = PS_PASS;
			st->server_parse_count++;
		}
		if (client_sent(v))
			st->client_parse_count++;
		return client_extended(s, v);
	}
	case PQ_MSG_BIND:
		if (!client_settings_step(c, s, h))
			return PS_NEED_MORE;
		v = c->ps_track ? ps_bind(c, s, h) : PS_PASS;
		if (client_sent(v))
			st->bind_count++;
		return client_extended(s, v);
	case PQ_MSG_DESCRIBE:
		return client_extended(s, c->ps_track ? ps_describe(c, s, h) : PS_PASS);
	case PQ_MSG_CLOSE:
		if (!client_settings_step(c, s, h))
			return PS_NEED_MORE;
		return client_extended(s, c->ps_track ? ps_close(c, s, h) : PS_PASS);
	case PQ_MSG_EXECUTE:
		if (!client_settings_step(c, s, h))
			return PS_NEED_MORE;
		s->n_exec++;   /* after the step: it numbers this Execute's answer from 0 */
		return client_extended(s, PS_PASS);
	case PQ_MSG_SYNC:
		client_note_start(s);
		if (!s->copy_in)
			client_note_ready_expected(s);
		s->unsynced = false;
		return PS_PASS;
	case PQ_MSG_FUNCTION_CALL:
		client_note_start(s);
		client_note_ready_expected(s);
		return PS_PASS;
	case PQ_MSG_COPY_DATA:
		return PS_PASS;
	case PQ_MSG_COPY_DONE:
	case PQ_MSG_COPY_FAIL:
		client_note_start(s);
		s->copy_in = false;
		return PS_PASS;
	case PQ_MSG_TERMINATE:
		c->terminate_seen = true;
		c->conn.in->end = c->conn.fwd;   /* nothing after Terminate matters */
		return PS_NEED_MORE;
	default:
		client_note_start(s);
		return PS_PASS;
	}
}

/* Scans complete headers in the client's buffer and marks the bytes to
 * forward; client_message decides for each. Returns false if the client
 * was failed. */
static bool client_scan(struct client *c, struct server *s)
{
	struct conn *cn = &c->conn;
	struct iobuf *b = cn->in;
	struct client_scan x;
	x.cfg = config_current();
	x.pin_check = !c->pinned && s->pool->mode != POOL_MODE_SESSION;
	int64_t max_packet_size = x.cfg->max_packet_size;
	while (cn->fwd < b->end) {
		uint32_t avail = b->end - cn->fwd;
		if (cn->remain) {
			uint32_t n = MIN(cn->remain, avail);
			cn->fwd += n;
			cn->remain -= n;
			continue;
		}
		struct proto_header h;
		enum proto_result r = proto_read_header(b->data + cn->fwd, avail, &h);
		if (r == PROTO_NEED_MORE)
			break;
		if (!client_check_header(c, &h, r, max_packet_size))
			return false;
		switch (client_message(c, s, &h, &x)) {
		case PS_PASS:
			break;
		case PS_DONE:
			b = cn->in;
			continue;
		case PS_ANSWERED:
			if (conn_flush(cn) == CONN_IO_ERROR) {
				client_close(c, "write to client failed");
				return false;
			}
			b = cn->in;
			continue;
		case PS_NEED_MORE:
			return true;
		case PS_HOLD:
			/* resumed by the server once it has answered everything */
			c->ps_hold = true;
			conn_set_reading(cn, false);
			return true;
		case PS_FAILED:
			return false;
		}
		b = cn->in;
		uint32_t total = h.len + 1;
		uint32_t n = MIN(total, avail);
		cn->fwd += n;
		cn->remain = total - n;
	}
	return true;
}

bool client_between_transactions(const struct client *c)
{
	/* In transaction mode a linked client is inside a transaction, or about
	 * to start the one it was given the server for, unless it is pinned. */
	return c->server && server_is_clean(c->server) &&
	       (c->pool->mode == POOL_MODE_SESSION || c->pinned);
}

static void client_forward(struct client *c)
{
	struct server *s = c->server;
	if (!c->conn.in || s->internal)
		return;
	/* Draining: new input on a server kept between transactions (session
	 * mode, a pinned client) would start a transaction; the client
	 * reconnects elsewhere instead. */
	if (hooks.draining() && c->conn.fwd < c->conn.in->end && client_between_transactions(c)) {
		client_fail(c, "57P01", "tidepool is shutting down");
		return;
	}
	uint32_t before = c->conn.fwd - c->conn.in->start;
	if (!client_scan(c, s))
		return;
	c->pool->stats.bytes_received += c->conn.fwd - c->conn.in->start - before;
	enum conn_io r = conn_forward(&c->conn, &s->conn);
	if (r == CONN_IO_ERROR) {
		server_close(s, "write to server failed");
		return;
	}
	if (r == CONN_IO_BLOCKED)
		return;
	if (c->terminate_seen) {
		client_close(c, "client sent Terminate");
		return;
	}
	if (c->conn.in && c->conn.in->start > 0 && c->conn.in->start == c->conn.fwd)
		iobuf_compact(c->conn.in), c->conn.fwd = c->conn.in->start;
}

void client_linked(struct server *s, bool ok)
{
	struct client *c = s->client;
	if (!c)
		return;
	if (!ok) {
		client_fail(c, "22023", "could not apply the client's session parameters on the server");
		return;
	}
	conn_set_reading(&c->conn, true);
	client_process(c);
}

void client_link(struct client *c, struct server *s)
{
	c->server = s;
	s->client = c;
	server_link(s, c);
	/* The server first runs SET for the client's parameters: the client's
	 * input waits in the socket meanwhile (client_linked resumes it). */
	if (c->state == CL_ACTIVE && c->server == s && s->internal)
		conn_set_reading(&c->conn, false);
}

void client_unlink(struct client *c)
{
	c->server = NULL;
	c->ps_hold = false;
	events_client_idle(c);
	if (config_current() && c->pool && c->terminate_seen) {
		client_close(c, "client sent Terminate");
		return;
	}
	/* Draining: the transaction is over. The client is not closed right
	 * behind its ReadyForQuery (libpq would read the FATAL with it and
	 * report the committed transaction as failed): one that connected for
	 * this transaction closes by itself; otherwise the drain closes it once
	 * idle, and a next transaction sent before that is refused. */
	if (hooks.draining())
		c->drain_served = true;
	conn_set_reading(&c->conn, true);
	client_process(c);
}

static void client_tls_ready(struct conn *conn, const char *err)
{
	struct client *c = container_of(conn, struct client, conn);
	login_tls_ready(c, err);
}

static void client_readable(struct conn *conn)
{
	struct client *c = container_of(conn, struct client, conn);
	if (c->state == CL_LOGIN && conn->bytes_in == 0 && login_try_direct_tls(c))
		return;
	ssize_t n = conn_read(conn);
	if (n == 0) {
		client_close(c, "client closed the connection");
		return;
	}
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		client_close(c, conn_strerror(conn, errno));
		return;
	}
	c->request_time = loop_now();
	client_process(c);
}

static void client_resume(struct conn *conn)
{
	struct client *c = container_of(conn, struct client, conn);
	if (c->state == CL_ACTIVE)
		conn_set_reading(conn, true);
	client_process(c);
}

void client_process(struct client *c)
{
	switch (c->state) {
	case CL_LOGIN:
		login_input(c);
		return;
	case CL_IDLE:
		client_idle_input(c);
		return;
	case CL_ACTIVE:
		client_forward(c);
		return;
	case CL_WAIT_LOGIN:
	case CL_WAITING:
	case CL_CLOSED:
		return;
	case CL_STATE_COUNT:
		return;
	}
}

struct client *client_find_by_key(uint32_t pid, uint32_t key)
{
	return cancel_find(pid, key);
}
