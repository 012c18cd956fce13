/* server: owns struct server and its state machine.
 *
 * SV_CONNECTING -> SV_LOGIN -> SV_IDLE <-> SV_ACTIVE -> (SV_USED -> SV_TESTED)
 *     -> (SV_BEING_CANCELED) -> SV_IDLE
 * The pool owns the lists: every state change is reported through
 * events.h, and the pool moves the server to its list for the new state. While active, bytes from the
 * backend are scanned by header only and forwarded to the linked client;
 * ReadyForQuery decides the release. Internal queries (reset, check, SET,
 * connect_query) are consumed here and never reach a client. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth.h"
#include "cancel.h"
#include "client.h"
#include "config.h"
#include "dns.h"
#include "events.h"
#include "listen.h"
#include "log.h"
#include "loop.h"
#include "prepared.h"
#include "proto.h"
#include "server_login.h"

/* Largest backend message tidepool holds whole outside of forwarding. */
#define SERVER_MAX_HELD_MSG (1u << 20)

static uint64_t next_server_id;

static void server_readable(struct conn *conn);
static void server_resume(struct conn *conn);
static void server_peer_gone(struct conn *conn, int err);
static void server_connected(struct conn *conn);
static void server_free(void *arg);
static void server_start(struct server *s, int fd, const struct sockaddr_storage *ss, socklen_t len);
static void server_tls_ready(struct conn *conn, const char *err);

static const struct conn_ops server_ops = {
	.readable = server_readable,
	.resume = server_resume,
	.peer_gone = server_peer_gone,
	.connected = server_connected,
	.tls_ready = server_tls_ready,
};

const char *server_state_name(enum server_state st)
{
	switch (st) {
	case SV_CONNECTING: return "new";
	case SV_LOGIN: return "login";
	case SV_IDLE: return "idle";
	case SV_ACTIVE: return "active";
	case SV_USED: return "used";
	case SV_TESTED: return "tested";
	case SV_BEING_CANCELED: return "being_canceled";
	case SV_CLOSED: return "closed";
	case SV_STATE_COUNT: break;
	}
	return "?";
}

const char *server_name(const struct server *s, char *buf, size_t len)
{
	snprintf(buf, len, "S-%llu %s/%s@%s:%d", (unsigned long long)s->id, s->pool->db_name,
		 s->pool->server_user, s->addr, s->port);
	return buf;
}

bool server_is_clean(const struct server *s)
{
	const struct conn *cn = &s->conn;
	return s->pending_ready == 0 && !s->unsynced && !s->copy_in && s->tx_status == 'I' &&
	       !s->internal && !cn->blocked && !cn->remain && !(cn->in && iobuf_len(cn->in)) &&
	       !(cn->out && iobuf_len(cn->out));
}

/* Fills the address of s's host (s->host_idx in pool p). 0 ready, 1
 * waiting for DNS, -1 failed (*err says why). */
static int server_address(struct server *s, const struct pool *p, struct sockaddr_storage *ss,
			  socklen_t *len, const char **err)
{
	memset(ss, 0, sizeof(*ss));
	const char *host = s->host_idx >= 0 ? p->hosts[s->host_idx] : NULL;
	s->port = p->server_port;
	if (!host || host[0] == '/') {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;
		un->sun_family = AF_UNIX;
		snprintf(un->sun_path, sizeof(un->sun_path), "%s/.s.PGSQL.%d",
			 host ? host : config_current()->unix_socket_dir, p->server_port);
		*len = sizeof(*un);
		strlcpy_safe(s->addr, "unix", sizeof(s->addr));
		return 0;
	}
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)p->server_port);
		*len = sizeof(*in4);
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)p->server_port);
		*len = sizeof(*in6);
	} else {
		switch (dns_lookup(host, p->server_port, ss, len, err)) {
		case DNS_READY:
			break;
		case DNS_PENDING:
			return 1;
		case DNS_FAILED:
			return -1;
		}
	}
	const void *ip = ss->ss_family == AF_INET ? (const void *)&in4->sin_addr : (const void *)&in6->sin6_addr;
	inet_ntop(ss->ss_family, ip, s->addr, sizeof(s->addr));
	return 0;
}

static int open_socket(struct server *s, const struct sockaddr_storage *ss, socklen_t len)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (ss->ss_family != AF_UNIX)
		listen_tune_socket(fd, config_current());
	if (connect(fd, (const struct sockaddr *)ss, len) < 0 && errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

enum server_launch_result server_launch(struct pool *p, int idx, char *msg, size_t msglen)
{
	struct server *s = xcalloc(1, sizeof(*s));
	s->id = ++next_server_id;
	s->pool = p;
	s->host_idx = idx;
	s->tx_status = 'I';
	s->connect_time = loop_now();
	s->connect_wall = loop_wall_now();
	list_init(&s->node);
	s->state = SV_CLOSED;
	struct sockaddr_storage ss;
	socklen_t len = 0;
	const char *err = NULL;
	int r = server_address(s, p, &ss, &len, &err);
	if (r == 1) {
		free(s);
		return SERVER_LAUNCH_PENDING;
	}
	int fd = r == 0 ? open_socket(s, &ss, len) : -1;
	if (fd < 0) {
		snprintf(msg, msglen, "could not connect to server %s:%d: %s",
			 idx >= 0 ? p->hosts[idx] : "(unix socket)", p->server_port,
			 err ? err : strerror(errno));
		log_warning("%s/%s: %s", p->db_name, p->server_user, msg);
		free(s);
		return err ? SERVER_LAUNCH_UNRESOLVED : SERVER_LAUNCH_FAILED;
	}
	server_start(s, fd, &ss, len);
	return SERVER_LAUNCH_STARTED;
}

static void server_start(struct server *s, int fd, const struct sockaddr_storage *ss, socklen_t len)
{
	conn_init(&s->conn, fd, &server_ops);
	memcpy(&s->connect_addr, ss, len);
	s->connect_addrlen = len;
	if (len <= sizeof(s->conn.addr)) {
		memcpy(&s->conn.addr, ss, len);
		s->conn.addrlen = len;
	}
	events_server_connecting(s);
	conn_wait_connect(&s->conn);
	server_log(LOG_LVL_DEBUG, s, "connecting");
}

static void server_connected(struct conn *conn)
{
	struct server *s = container_of(conn, struct server, conn);
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(conn->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		char msg[300];
		const struct pool *p = s->pool;
		/* The bound check: a reload may have changed the host list meanwhile. */
		const char *name = s->host_idx >= 0 && (size_t)s->host_idx < p->n_hosts ? p->hosts[s->host_idx] : NULL;
		if (name && strcmp(name, s->addr) != 0)
			snprintf(msg, sizeof(msg), "could not connect to server %s (%s):%d: %s", name, s->addr,
				 s->port, strerror(err));
		else
			snprintf(msg, sizeof(msg), "could not connect to server %s:%d: %s", s->addr, s->port,
				 strerror(err));
		server_log(LOG_LVL_WARNING, s, "%s", msg);
		/* Before the close, whose rescheduling then goes to another host of
		 * a list, or waits out server_login_retry. */
		s->login_settled = true;
		(void)events_host_failed(s->pool, s->host_idx, false, "08006", msg);
		server_close(s, msg);
		return;
	}
	events_server_login_started(s);
	conn_set_reading(conn, true);
	server_login_start(s);
}

void server_close(struct server *s, const char *reason)
{
	if (s->state == SV_CLOSED)
		return;
	server_log(LOG_LVL_INFO, s, "closing because: %s (age=%llds)", reason,
		   (long long)((loop_now() - s->connect_time) / USEC_PER_SEC));
	struct client *c = s->client;
	s->client = NULL;
	if (c)
		s->pool->stats.server_errors++;
	if (c) {
		conn_unblock(&c->conn);
		if (s->conn.blocked_src == &c->conn)
			s->conn.blocked_src = NULL;
		if (c->conn.blocked_src == &s->conn)
			c->conn.blocked_src = NULL;
	}
	if (s->conn.fd >= 0 && (s->state == SV_IDLE || s->state == SV_USED || s->state == SV_BEING_CANCELED)) {
		uint8_t term[5];
		struct proto_writer w;
		proto_writer_init(&w, term, sizeof(term));
		proto_write_terminate(&w);
		conn_send_last(&s->conn, term, w.len);
	}
	struct pool *p = s->pool;
	if ((s->state == SV_CONNECTING || s->state == SV_LOGIN) && !s->internal && !s->login_settled) {
		/* Any failed login counts: the next attempt (on this host) waits
		 * server_login_retry (no reconnect storm). */
		s->login_settled = true;
		(void)events_host_failed(p, s->host_idx, false, "08006", reason);
	}
	const struct server_request_ops *req = s->request;
	s->request = NULL;
	/* Part of a message already went to the client: an ErrorResponse now
	 * would land inside it (test_wire_faults: the client read "message
	 * type 'c', length 1819243365"). Its stream can only end there. */
	bool mid_message = c && s->conn.remain > 0;
	events_server_closing(s);
	cancel_server_gone(s);
	ps_server_free(s);
	conn_close(&s->conn);
	loop_defer(server_free, s);
	if (c && mid_message)
		client_close(c, "server connection lost in the middle of a message");
	else if (c && s->fatal_forwarded) {
		c->server = NULL;
		client_close(c, reason);   /* it has the server's own error: one is enough */
	} else if (c) {
		client_server_lost(c, reason);
	}
	if (req)
		req->lost(s->request_arg, reason);
	events_server_gone(p);
}

static void server_free(void *arg)
{
	struct server *s = arg;
	param_set_clear(&s->params);
	settings_list_clear(&s->applied);
	server_login_free(s);
	free(s);
}

static void server_peer_gone(struct conn *conn, int err)
{
	struct server *s = container_of(conn, struct server, conn);
	server_close(s, err ? conn_strerror(conn, err) : "write failed");
}

/* ParameterStatus: remember the backend's value, and the client's when the
 * change was made by or for the client. */
static void server_param_status(struct server *s, const uint8_t *body, size_t len, bool for_client)
{
	struct proto_reader r;
	proto_reader_init(&r, body, len);
	const char *name = proto_get_string(&r);
	const char *value = proto_get_string(&r);
	if (!name || !value)
		return;
	int idx = params_index(name);
	if (idx < 0)
		return;
	param_set_put(&s->params, (size_t)idx, value);
	if (for_client && s->client)
		param_set_put(&s->client->params, (size_t)idx, value);
}

/* Next whole message at the buffer's start: NEED_MORE, OK (h, body set) or
 * ERROR (server closed). */
static enum proto_result server_next_whole(struct server *s, struct proto_header *h, const uint8_t **body)
{
	struct iobuf *b = s->conn.in;
	if (!b)
		return PROTO_NEED_MORE;
	enum proto_result r = proto_read_header(b->data + b->start, iobuf_len(b), h);
	if (r == PROTO_NEED_MORE)
		return r;
	if (r == PROTO_ERROR || h->len > SERVER_MAX_HELD_MSG) {
		server_close(s, "invalid message length from server");
		return PROTO_ERROR;
	}
	if (iobuf_len(b) < h->len + 1) {
		conn_reserve(&s->conn, h->len + 1);
		return PROTO_NEED_MORE;
	}
	*body = s->conn.in->data + s->conn.in->start + PROTO_HEADER_LEN;
	return PROTO_OK;
}

void server_run_internal(struct server *s, const char *sql, bool for_client, server_query_done_fn done)
{
	uint8_t buf[4096];
	struct proto_writer w;
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_query(&w, sql);
	if (w.overflow) {
		done(s, false);
		return;
	}
	s->internal = true;
	s->internal_for_client = for_client;
	s->internal_failed = false;
	s->internal_done = done;
	server_log(LOG_LVL_NOISE, s, "internal query: %s", sql);
	if (conn_send(&s->conn, w.buf, w.len) == CONN_IO_ERROR)
		server_close(s, "could not send internal query");
}

/* A request of the pooler's (an auth_query lookup) never runs with a
 * client's settings (a SET ROLE could make it fail): the backend's are
 * reset in a Query sent first, whose ReadyForQuery the request also
 * waits for. */
static bool server_request_reset(struct server *s)
{
	static const struct client nobody;
	char sql[4096];
	size_t len = 0;
	bool overflow = false;
	if (!settings_sync_sql(s, &nobody, sql, sizeof(sql), &len, &overflow)) {
		if (overflow)
			server_close(s, "session settings left on it too long to reset");
		return !overflow;
	}
	uint8_t buf[4200];
	struct proto_writer w;
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_query(&w, sql);
	if (w.overflow || conn_send(&s->conn, w.buf, w.len) == CONN_IO_ERROR) {
		server_close(s, "could not send request");
		return false;
	}
	settings_synced(s, &nobody);
	s->request_ready_left++;
	return true;
}

void server_run_request(struct server *s, const void *msgs, size_t len, unsigned n_ready,
			const struct server_request_ops *ops, void *arg)
{
	if (s->state != SV_LOGIN)
		events_server_testing(s);
	s->internal = true;
	s->internal_for_client = false;
	s->internal_failed = false;
	s->internal_done = NULL;
	s->request = ops;
	s->request_arg = arg;
	s->request_ready_left = n_ready;
	if (s->applied.n && !server_request_reset(s))
		return;
	if (conn_send(&s->conn, msgs, len) == CONN_IO_ERROR)
		server_close(s, "could not send request");
}

/* The last answer of an internal query or request arrived. */
static void server_internal_finish(struct server *s)
{
	conn_release_empty(&s->conn);
	if (s->request) {
		const struct server_request_ops *ops = s->request;
		s->request = NULL;
		ops->done(s, s->request_arg);
		return;
	}
	server_query_done_fn done = s->internal_done;
	s->internal_done = NULL;
	done(s, !s->internal_failed && s->tx_status == 'I');
}

/* One message of the answer to an internal query or request. */
static void server_internal_message(struct server *s, uint8_t type, const uint8_t *body, uint32_t blen)
{
	switch (type) {
	case PQ_MSG_PARAMETER_STATUS:
		server_param_status(s, body, blen, s->internal_for_client);
		break;
	case PQ_MSG_DATA_ROW:
		if (s->request && s->request->row)
			s->request->row(s->request_arg, body, blen);
		break;
	case PQ_MSG_ERROR: {
		const char *m = proto_error_field(body, blen, 'M');
		server_log(LOG_LVL_WARNING, s, "internal query failed: %s", m ? m : "?");
		s->internal_failed = true;
		if (s->request && s->request->error)
			s->request->error(s->request_arg, body, blen);
		break;
	}
	case PQ_MSG_READY:
		s->tx_status = blen >= 1 ? (char)body[0] : 'I';
		if (!s->request || --s->request_ready_left == 0)
			s->internal = false;
		break;
	default:
		break;
	}
}

/* Consumes the answer to an internal query. */
static void server_internal_input(struct server *s)
{
	struct proto_header h;
	const uint8_t *body;
	while (s->internal && server_next_whole(s, &h, &body) == PROTO_OK) {
		server_internal_message(s, h.type, body, h.len - 4);
		conn_consume(&s->conn, h.len + 1);
		if (!s->internal) {
			server_internal_finish(s);
			return;
		}
	}
	if (s->state != SV_CLOSED)
		conn_release_empty(&s->conn);
}

/* Messages from a backend nobody uses: reports and notices are absorbed,
 * anything else means it is not usable. */
static void server_idle_input(struct server *s)
{
	struct proto_header h;
	const uint8_t *body;
	while (server_next_whole(s, &h, &body) == PROTO_OK) {
		switch (h.type) {
		case PQ_MSG_PARAMETER_STATUS:
			server_param_status(s, body, h.len - 4, false);
			break;
		case PQ_MSG_NOTICE:
		case PQ_MSG_NOTIFICATION:
			break;
		case PQ_MSG_ERROR: {
			const char *m = proto_error_field(body, h.len - 4, 'M');
			server_close(s, m ? m : "error from idle server");
			return;
		}
		default:
			server_close(s, "unexpected message from idle server");
			return;
		}
		conn_consume(&s->conn, h.len + 1);
	}
	if (s->state != SV_CLOSED)
		conn_release_empty(&s->conn);
}

static bool release_allowed(const struct server *s)
{
	if (s->pending_ready || s->unsynced || s->copy_in || s->tx_status != 'I')
		return false;
	/* server_fast_close: a session-mode server marked for closing leaves
	 * at the end of its transaction; the client gets a fresh one next. */
	if (s->pool->mode == POOL_MODE_SESSION)
		return s->close_needed && config_current()->server_fast_close;
	return !(s->client && s->client->pinned);
}

/* ReadyForQuery while forwarding; returns true to stop the scan. */
static bool server_on_ready(struct server *s, const uint8_t *body)
{
	struct stats_counters *st = &s->pool->stats;
	usec_t now = loop_now();
	st->query_count++;
	st->query_time += now - s->query_start;
	stats_observe(&st->query_hist, now - s->query_start);
	if (body[0] == 'I' && s->xact_start) {
		st->xact_count++;
		st->xact_time += now - s->xact_start;
		stats_observe(&st->xact_hist, now - s->xact_start);
		s->xact_start = 0;
	}
	s->tx_status = (char)body[0];
	s->ready_time = now;
	ps_server_batch_done(s);
	s->sync_recv++;
	s->outcomes = 0;
	if (s->pending_ready)
		s->pending_ready--;
	if (s->client->set && !settings_server_ready(s, s->tx_status))
		client_session_state(s->client, s, PIN_UNTRACKED);
	if (s->pool->mode == POOL_MODE_STATEMENT && s->tx_status != 'I' && !s->pending_ready) {
		s->release_after_flush = false;
		return false;
	}
	if (release_allowed(s)) {
		s->release_after_flush = true;
		return true;
	}
	return false;
}

/* A FATAL or PANIC ErrorResponse: the backend ends the session itself.
 * Looked at only when the whole message is in the buffer (it always is in
 * practice: PostgreSQL sends it alone, then closes). */
static bool error_is_fatal(const uint8_t *body, size_t len)
{
	const char *sev = proto_error_field(body, len, 'V');
	if (!sev)
		sev = proto_error_field(body, len, 'S');
	return sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0);
}

/* What server_scan does with one backend message (server_message). */
enum server_step {
	SERVER_FORWARD,    /* forward it by its length */
	SERVER_ADVANCED,   /* already forwarded, or dropped */
	SERVER_WAIT,       /* held whole and not complete yet: stop until more input */
	SERVER_RELEASE,    /* the ReadyForQuery that ends the transaction: stop */
	SERVER_FAILED,     /* the server was closed */
};

/* Messages the pooler reads are held whole in the buffer. False: not all
 * there yet (room was made for it), or too big (the server was closed,
 * *step says which). */
static bool server_whole(struct server *s, uint32_t total, uint32_t avail, enum server_step *step)
{
	struct conn *cn = &s->conn;
	if (total <= avail)
		return true;
	if (total > SERVER_MAX_HELD_MSG) {
		server_close(s, "oversized message from server");
		*step = SERVER_FAILED;
		return false;
	}
	conn_reserve(cn, (cn->fwd - cn->in->start) + total);
	*step = SERVER_WAIT;
	return false;
}

static enum server_step server_ps_step(enum ps_verdict v)
{
	return v == PS_FAILED ? SERVER_FAILED : v == PS_DONE ? SERVER_ADVANCED : SERVER_FORWARD;
}

/* The one place a backend message is handled on its way to the client:
 * each type's case runs the steps that type needs (the release decision,
 * tracked parameters, COPY state, the prepared-statement replies of
 * prepared.c). */
/* An answer to one statement (or Execute) of the batch: numbered for the
 * settings its client changes (settings.h). */
static inline void server_outcome(struct server *s, uint8_t type, const uint8_t *body, uint32_t len)
{
	if (s->client->set)
		settings_server_outcome(s, type, body, len, s->outcomes);
	s->outcomes++;
}

static enum server_step server_message(struct server *s, const struct proto_header *h, uint32_t avail)
{
	struct conn *cn = &s->conn;
	uint32_t total = h->len + 1;
	enum server_step step;
	switch (h->type) {
	case PQ_MSG_READY: {
		if (!server_whole(s, total, avail, &step))
			return step;
		const uint8_t *body = cn->in->data + cn->fwd + PROTO_HEADER_LEN;
		cn->fwd += total;
		return h->len >= 5 && server_on_ready(s, body) ? SERVER_RELEASE : SERVER_ADVANCED;
	}
	case PQ_MSG_PARAMETER_STATUS:
		if (!server_whole(s, total, avail, &step))
			return step;
		server_param_status(s, cn->in->data + cn->fwd + PROTO_HEADER_LEN, h->len - 4, true);
		return SERVER_FORWARD;
	case PQ_MSG_PARSE_COMPLETE:
		if (!ps_watches(s->ps, PQ_MSG_PARSE_COMPLETE, s->sync_recv))
			return SERVER_FORWARD;
		return server_whole(s, total, avail, &step) ? server_ps_step(ps_parse_complete(s, h)) : step;
	case PQ_MSG_CLOSE_COMPLETE:
		if (!ps_watches(s->ps, PQ_MSG_CLOSE_COMPLETE, s->sync_recv))
			return SERVER_FORWARD;
		return server_whole(s, total, avail, &step) ? server_ps_step(ps_close_complete(s, h)) : step;
	case PQ_MSG_ERROR:
		server_outcome(s, h->type, NULL, 0);
		if (ps_watches(s->ps, PQ_MSG_ERROR, s->sync_recv)) {
			if (!server_whole(s, total, avail, &step))
				return step;
			step = server_ps_step(ps_server_error(s, h));
			if (step != SERVER_FORWARD)
				return step;
		}
		s->copy_in = false;
		if (total <= avail && error_is_fatal(cn->in->data + cn->fwd + PROTO_HEADER_LEN, h->len - 4))
			s->fatal_forwarded = true;
		return SERVER_FORWARD;
	case PQ_MSG_COMMAND_COMPLETE:
		if (s->client->set) {   /* the tag says which change PostgreSQL completed */
			if (!server_whole(s, total, avail, &step))
				return step;
			server_outcome(s, h->type, cn->in->data + cn->fwd + PROTO_HEADER_LEN, h->len - 4);
		} else {
			s->outcomes++;
		}
		s->copy_in = false;
		return SERVER_FORWARD;
	case PQ_MSG_EMPTY_QUERY:
	case PQ_MSG_PORTAL_SUSPENDED:
		server_outcome(s, h->type, NULL, 0);
		return SERVER_FORWARD;
	case PQ_MSG_COPY_IN:
	case PQ_MSG_COPY_BOTH:
		s->copy_in = true;
		return SERVER_FORWARD;
	default:
		return SERVER_FORWARD;
	}
}

/* Scans the backend's bytes for the linked client; server_message decides
 * for each message, the rest pass by header. */
static bool server_scan(struct server *s)
{
	struct conn *cn = &s->conn;
	while (cn->fwd < cn->in->end) {
		struct iobuf *b = cn->in;
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
		if (r == PROTO_ERROR) {
			server_close(s, "invalid message length from server");
			return false;
		}
		switch (server_message(s, &h, avail)) {
		case SERVER_FORWARD:
			break;
		case SERVER_ADVANCED:
			continue;
		case SERVER_WAIT:
			return true;
		case SERVER_RELEASE:
			return true;
		case SERVER_FAILED:
			return false;
		}
		uint32_t total = h.len + 1;
		uint32_t n = MIN(total, avail);
		cn->fwd += n;
		cn->remain = total - n;
	}
	return true;
}

static void server_reset_or_ready(struct server *s, const struct config *cfg);

/* The transaction is over: the client goes idle, the server to the pool. */
static void server_finish_transaction(struct server *s)
{
	struct client *c = s->client;
	s->release_after_flush = false;
	s->client = NULL;
	server_idle_input(s);   /* absorb async messages that followed */
	if (s->state == SV_CLOSED) {
		if (c)
			client_unlink(c);
		return;
	}
	if (s->conn.in && iobuf_len(s->conn.in)) {
		server_close(s, "incomplete message after ReadyForQuery");
		if (c)
			client_unlink(c);
		return;
	}
	server_reset_or_ready(s, config_current());
	if (c)
		client_unlink(c);
}

static void server_forward(struct server *s)
{
	struct client *c = s->client;
	if (!s->conn.in)
		return;
	uint32_t before = s->conn.fwd - s->conn.in->start;
	if (!server_scan(s))
		return;
	if (s->conn.in)
		s->pool->stats.bytes_sent += s->conn.fwd - s->conn.in->start - before;
	enum conn_io r = conn_forward(&s->conn, &c->conn);
	if (r == CONN_IO_ERROR) {
		client_close(c, "write to client failed");
		return;
	}
	if (r == CONN_IO_BLOCKED)
		return;
	if (s->pool->mode == POOL_MODE_STATEMENT && s->tx_status != 'I' && !s->pending_ready) {
		client_fail(c, "08P01", "transaction blocks not allowed in statement pooling mode");
		return;
	}
	if (s->release_after_flush) {
		server_finish_transaction(s);
		return;
	}
	if (c->ps_hold && !c->conn.blocked && ps_server_settled(s)) {
		/* the client's DEALLOCATE or statement use waited for this */
		c->ps_hold = false;
		conn_set_reading(&c->conn, true);
		client_process(c);
		return;
	}
	if (s->conn.in && s->conn.in->start > 0 && s->conn.in->start == s->conn.fwd)
		iobuf_compact(s->conn.in), s->conn.fwd = s->conn.in->start;
}

void server_process(struct server *s)
{
	switch (s->state) {
	case SV_LOGIN:
		if (s->internal)
			server_internal_input(s);
		else
			server_login_input(s);
		return;
	case SV_ACTIVE:
		if (s->internal)
			server_internal_input(s);
		else
			server_forward(s);
		return;
	case SV_TESTED:
		server_internal_input(s);
		return;
	case SV_IDLE:
	case SV_USED:
	case SV_BEING_CANCELED:
		server_idle_input(s);
		return;
	case SV_CONNECTING:
	case SV_CLOSED:
		return;
	case SV_STATE_COUNT:
		return;
	}
}

static void server_readable(struct conn *conn)
{
	struct server *s = container_of(conn, struct server, conn);
	ssize_t n = conn_read(conn);
	if (n == 0) {
		server_close(s, "server closed the connection");
		return;
	}
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		server_close(s, conn_strerror(conn, errno));
		return;
	}
	server_process(s);
}

static void server_tls_ready(struct conn *conn, const char *err)
{
	server_login_tls_ready(container_of(conn, struct server, conn), err);
}

static void server_resume(struct conn *conn)
{
	struct server *s = container_of(conn, struct server, conn);
	if (s->state != SV_CLOSED)
		conn_set_reading(conn, true);
	server_process(s);
}

/* Builds "SET a = 'x'; SET b = 'y'" for the tracked parameters the client
 * wants and the backend does not have, and "RESET c" for a setting another
 * client left that this one did not choose (settings the server does not
 * report, see params_is_reported); then the client's recorded session
 * settings (settings.h). Returns false if nothing differs. */
static bool build_param_sync(const struct server *s, const struct client *c, char *sql, size_t cap,
			     bool *settings)
{
	size_t len = 0;
	bool overflow = false;
	*settings = false;
	sql[0] = '\0';
	bool settings_differ = s->applied.n || c->set;
	if (!settings_differ && !param_set_any_differs(&c->params, &s->params))
		return false;   /* the usual case, at every link */
	for (size_t i = 0, count = params_count(); i < count; i++) {
		int n;
		if (!c->params.values[i] && s->params.values[i] && !params_is_reported(i)) {
			n = snprintf(sql + len, cap - len, "RESET %s;", params_name(i));
		} else if (param_set_differs(&c->params, &s->params, i)) {
			char lit[600];
			if (!proto_quote_literal(c->params.values[i], lit, sizeof(lit)))
				continue;
			/* set_config takes the value as a startup parameter gives it
			 * (a list such as search_path stays a list) */
			if (params_is_reported(i))
				n = snprintf(sql + len, cap - len, "SET %s = %s;", params_name(i), lit);
			else
				n = snprintf(sql + len, cap - len, "SELECT pg_catalog.set_config('%s', %s, false);",
					     params_name(i), lit);
		} else {
			continue;
		}
		if (n < 0 || (size_t)n >= cap - len)
			break;
		len += (size_t)n;
	}
	if (settings_differ)
		*settings = settings_sync_sql(s, c, sql, cap, &len, &overflow);
	if (overflow) {
		client_log(LOG_LVL_WARNING, c, "session settings too long to replay");
		*settings = false;
	}
	return len > 0;
}

/* The SET for the client's parameters finished: the backend's values are now
 * the canonical form of what the client asked for; for settings the server
 * does not report, what was SET or RESET is remembered here. */
static void param_sync_done(struct server *s, bool ok)
{
	struct client *c = s->client;
	if (c && ok)
		for (size_t i = 0; i < params_count(); i++) {
			if (!params_is_reported(i))
				param_set_put(&s->params, i, c->params.values[i]);
			else if (c->params.values[i] && s->params.values[i])
				param_set_put(&c->params, i, s->params.values[i]);
		}
	if (c && ok && s->syncing_settings) {
		settings_synced(s, c);
		s->pool->stats.settings_replays++;
	}
	s->syncing_settings = false;
	client_linked(s, ok);
}

/* A server_reset_query with DISCARD ALL or RESET ALL ran: settings the
 * server does not report are back at their defaults. */
static void forget_unreported_params(struct server *s)
{
	for (size_t i = 0; i < params_count(); i++)
		if (!params_is_reported(i))
			param_set_put(&s->params, i, NULL);
}

void server_link(struct server *s, struct client *c)
{
	s->pending_ready = 0;
	s->unsynced = false;
	s->copy_in = false;
	s->release_after_flush = false;
	s->last_used = loop_now();
	char sql[8192];
	if (s->pool->replication == REPL_NONE && build_param_sync(s, c, sql, sizeof(sql), &s->syncing_settings)) {
		server_run_internal(s, sql, true, param_sync_done);
		return;
	}
	client_linked(s, true);
}

static void reset_done(struct server *s, bool ok)
{
	if (!ok) {
		server_close(s, "reset query failed");
		return;
	}
	const char *q = config_current()->server_reset_query;
	if (strcasestr(q, "discard all") || strcasestr(q, "reset all"))
		forget_unreported_params(s);
	events_server_ready(s);
}

void server_cancels_delivered(struct server *s)
{
	if (s->state == SV_BEING_CANCELED)
		events_server_ready(s);
}

/* A released server runs server_reset_query first when its pool's mode,
 * server_reset_query_always or session state left on it asks for it;
 * otherwise it is ready at once. */
static void server_reset_or_ready(struct server *s, const struct config *cfg)
{
	if (s->pool->mode == POOL_MODE_SESSION || cfg->server_reset_query_always || s->session_state) {
		s->session_state = false;
		if (cfg->server_reset_query[0]) {
			/* DISCARD ALL / DEALLOCATE ALL drop the backend's statements */
			if (strcasestr(cfg->server_reset_query, "discard all") ||
			    strcasestr(cfg->server_reset_query, "deallocate all"))
				ps_server_forget_all(s);
			if (strcasestr(cfg->server_reset_query, "discard all") ||
			    strcasestr(cfg->server_reset_query, "reset all"))
				settings_server_reset(s, !strcasestr(cfg->server_reset_query, "discard all"));
			events_server_testing(s);
			server_run_internal(s, cfg->server_reset_query, false, reset_done);
			return;
		}
	}
	events_server_ready(s);
}

void server_release(struct server *s, bool client_left)
{
	const struct config *cfg = config_current();
	s->client = NULL;
	if (!server_is_clean(s)) {
		server_close(s, client_left ? "client disconnected in the middle of a transaction"
					    : "released in an unclean state");
		return;
	}
	if (s->pool->replication != REPL_NONE) {
		server_close(s, "replication connection ended");
		return;
	}
	if (s->session_state && !cfg->server_reset_query[0]) {
		server_close(s, "a pinned client left session state and server_reset_query is empty");
		return;
	}
	server_reset_or_ready(s, cfg);
}
