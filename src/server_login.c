/* server_login: the login exchange with a backend (see server_login.h).
 * On success the pool gets the server through events_server_ready(); on
 * failure the server's own error goes to the clients waiting to log in.
 *
 * TLS (TCP backends, server_tls_sslmode other than disable): SSLRequest
 * first; 'S' starts the handshake and the startup packet follows over TLS;
 * 'N' continues in plaintext unless the mode requires TLS. allow behaves
 * like prefer (asking costs one round trip, never a failure). Bytes after
 * the 'S' were not protected by TLS and fail the login. */
#include "server_login.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "client.h"
#include "crypto.h"
#include "config.h"
#include "events.h"
#include "log.h"
#include "loop.h"
#include "params.h"
#include "proto.h"
#include "server.h"
#include "tls.h"

void server_login_free(struct server *s)
{
	for (size_t i = 0; i < s->n_login_params; i++) {
		free(s->login_params[i].name);
		free(s->login_params[i].value);
	}
	free(s->login_params);
	s->login_params = NULL;
	s->n_login_params = 0;
	if (s->scram) {
		scram_client_free(s->scram);
		free(s->scram);
		s->scram = NULL;
	}
}

static void send_or_close(struct server *s, const struct proto_writer *w)
{
	if (w->overflow) {
		server_close(s, "login message too large");
		return;
	}
	if (conn_send(&s->conn, w->buf, w->len) == CONN_IO_ERROR)
		server_close(s, "could not send to server");
}

/* A replication server is its client's own: it starts with the client's
 * settings (application_name and the rest, options -c for the others),
 * since nothing can be SET on a physical replication connection. The
 * client is the first one waiting for the pool, the one it will serve. */
static const struct client *replication_client(const struct pool *p)
{
	if (p->replication == REPL_NONE)
		return NULL;
	if (!list_empty(&p->clients[CL_WAITING]))
		return list_entry(list_first(&p->clients[CL_WAITING]), struct client, node);
	if (!list_empty(&p->clients[CL_WAIT_LOGIN]))
		return list_entry(list_first(&p->clients[CL_WAIT_LOGIN]), struct client, node);
	return NULL;
}

/* Appends " -c name=value" (blanks and backslashes escaped) to opts. */
static void options_add(char *opts, size_t cap, const char *name, const char *value)
{
	size_t n = strlen(opts);
	int w = snprintf(opts + n, cap - n, "%s-c %s=", n ? " " : "", name);
	if (w < 0 || (size_t)w >= cap - n)
		return;
	n += (size_t)w;
	for (const char *v = value; *v && n + 2 < cap; v++) {
		if (*v == ' ' || *v == '\\')
			opts[n++] = '\\';
		opts[n++] = *v;
	}
	opts[n] = '\0';
}

static void send_startup(struct server *s)
{
	struct pool *p = s->pool;
	const char *names[8 + PARAMS_MAX], *values[8 + PARAMS_MAX];
	char opts[2048] = "";
	size_t n = 0;
	names[n] = "user"; values[n++] = p->server_user;
	names[n] = "database"; values[n++] = p->server_dbname;
	if (p->startup_encoding) { names[n] = "client_encoding"; values[n++] = p->startup_encoding; }
	if (p->startup_datestyle) { names[n] = "datestyle"; values[n++] = p->startup_datestyle; }
	if (p->startup_timezone) { names[n] = "timezone"; values[n++] = p->startup_timezone; }
	if (p->startup_appname) { names[n] = "application_name"; values[n++] = p->startup_appname; }
	if (p->replication != REPL_NONE) {
		names[n] = "replication";
		values[n++] = p->replication == REPL_LOGICAL ? "database" : "true";
	}
	const struct client *c = replication_client(p);
	for (size_t i = 0; c && i < params_count(); i++) {
		if (!c->params.values[i])
			continue;
		if (params_is_reported(i) && n < ARRAY_SIZE(names) - 1) {
			size_t j = 0;
			while (j < n && strcasecmp(names[j], params_name(i)) != 0)
				j++;
			names[j] = params_name(i);   /* the client's value wins over the pool's */
			values[j] = c->params.values[i];
			n += j == n;
		} else if (!params_is_reported(i)) {
			options_add(opts, sizeof(opts), params_name(i), c->params.values[i]);
		}
	}
	if (opts[0]) { names[n] = "options"; values[n++] = opts; }
	uint8_t buf[4096];
	struct proto_writer w;
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_startup(&w, names, values, n);
	send_or_close(s, &w);
}

const char *server_login_secret(const struct pool *p)
{
	return p->server_password ? p->server_password : p->looked_up_secret;
}

static void login_fail(struct server *s, const char *sqlstate, const char *msg);

void server_login_start(struct server *s)
{
	if (tls_connect_mode() == TLS_DISABLE || s->connect_addr.ss_family == AF_UNIX) {
		send_startup(s);
		return;
	}
	uint8_t req[8];
	put_be32(req, sizeof(req));
	put_be32(req + 4, PROTO_SSL_REQUEST);
	s->ssl_requested = true;
	if (conn_send(&s->conn, req, sizeof(req)) == CONN_IO_ERROR)
		server_close(s, "could not send SSLRequest to server");
}

/* The one-byte answer to SSLRequest; true when login input may go on. */
static bool ssl_answer(struct server *s)
{
	struct iobuf *b = s->conn.in;
	char err[240];
	uint8_t a = b->data[b->start];
	s->ssl_requested = false;
	conn_consume(&s->conn, 1);
	if (a == 'N') {
		if (tls_connect_mode() >= TLS_REQUIRE) {
			snprintf(err, sizeof(err), "server does not support SSL, but server_tls_sslmode = %s",
				 tls_sslmode_name(tls_connect_mode()));
			login_fail(s, "08006", err);
			return false;
		}
		send_startup(s);
		return true;
	}
	if (a != 'S') {
		snprintf(err, sizeof(err), "unexpected answer to SSLRequest from server (byte 0x%02x)", a);
		login_fail(s, "08P01", err);
		return false;
	}
	if (iobuf_len(b) > 0) {
		login_fail(s, "08P01", "server sent unencrypted data after accepting SSL");
		return false;
	}
	conn_release_empty(&s->conn);
	/* the name this server was opened for (SNI, verify-full), not the list */
	struct pool *p = s->pool;
	const char *host = s->host_idx >= 0 && (size_t)s->host_idx < p->n_hosts ? p->hosts[s->host_idx] : NULL;
	if (!conn_tls_connect(&s->conn, host, err, sizeof(err)))
		login_fail(s, "08006", err);
	return false;   /* server_login_tls_ready goes on */
}

void server_login_tls_ready(struct server *s, const char *err)
{
	if (err) {
		char msg[300];
		snprintf(msg, sizeof(msg), "TLS handshake with server failed: %s", err);
		login_fail(s, "08006", msg);
		return;
	}
	if (log_enabled(LOG_LVL_DEBUG)) {
		char info[128];
		conn_tls_describe(&s->conn, info, sizeof(info));
		server_log(LOG_LVL_DEBUG, s, "TLS established: %s", info);
	}
	send_startup(s);
}

static void login_fail(struct server *s, const char *sqlstate, const char *msg)
{
	struct pool *p = s->pool;
	server_log(LOG_LVL_WARNING, s, "login failed: %s", msg);
	/* Recorded first, so closing does not start an immediate retry.
	 * PostgreSQL's own error or a login we cannot do: refused; a failed TLS
	 * handshake (08006) or "starting up" (57P03) is worth a retry. */
	s->login_settled = true;
	events_server_login_failed(p, strcmp(sqlstate, "08006") != 0 && strcmp(sqlstate, "57P03") != 0, sqlstate, msg);
	server_close(s, msg);
}

static void answer_sasl(struct server *s, const uint8_t *data, size_t n)
{
	const char *pw = server_login_secret(s->pool);
	bool has_scram = false;
	struct proto_reader r;
	proto_reader_init(&r, data, n);
	for (const char *mech; (mech = proto_get_string(&r)) && *mech;)
		if (strcmp(mech, "SCRAM-SHA-256") == 0)
			has_scram = true;
	if (!has_scram) {
		login_fail(s, "28000", "server offers no supported SASL mechanism");
		return;
	}
	if (s->scram) {   /* a second AuthenticationSASL (fuzz_backend: it leaked the first exchange) */
		login_fail(s, "08P01", "server started SCRAM authentication twice");
		return;
	}
	s->scram = xcalloc(1, sizeof(*s->scram));
	struct pool *p = s->pool;
	if (pw && auth_secret_kind(pw) == SECRET_SCRAM && p->have_scram_keys) {
		scram_client_init_keys(s->scram, p->scram_client_key, p->scram_server_key);
	} else if (!pw || auth_secret_kind(pw) != SECRET_PLAIN || !scram_client_init(s->scram, pw)) {
		login_fail(s, "28000", pw && auth_secret_kind(pw) == SECRET_SCRAM
			   ? "password is a SCRAM secret, but no client has authenticated with SCRAM yet to provide its keys"
			   : "SCRAM login to the server needs a plain-text password or SCRAM pass-through");
		return;
	}
	size_t len;
	char *first = scram_client_first(s->scram, &len);
	uint8_t buf[1024];
	struct proto_writer w;
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_sasl_initial(&w, "SCRAM-SHA-256", first, len);
	free(first);
	send_or_close(s, &w);
}

static void answer_sasl_continue(struct server *s, const uint8_t *data, size_t n)
{
	const char *err = "SCRAM exchange out of order";
	size_t len = 0;
	char *final = s->scram ? scram_client_final(s->scram, (const char *)data, n, &len, &err) : NULL;
	if (!final) {
		login_fail(s, "28000", err);
		return;
	}
	uint8_t buf[1024];
	struct proto_writer w;
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_password(&w, final, len);
	free(final);
	send_or_close(s, &w);
}

static void answer_password(struct server *s, uint32_t code, const uint8_t *data, size_t n)
{
	const char *pw = server_login_secret(s->pool);
	char md5[AUTH_MD5_LEN + 1];
	if (!pw) {
		login_fail(s, "28P01", "the server asks for a password, but none is configured for this user");
		return;
	}
	const char *answer = md5;
	size_t answer_len = sizeof(md5);
	if (code == PQ_AUTH_CLEARTEXT) {
		if (auth_secret_kind(pw) != SECRET_PLAIN) {
			login_fail(s, "28000", "the server asks for a cleartext password, but only a hash is configured");
			return;
		}
		answer = pw;
		answer_len = strlen(pw) + 1;
	} else if (n != 4 || !auth_md5_response(s->pool->server_user, pw, data, md5)) {
		login_fail(s, "28000", "cannot answer the server's md5 request with the configured secret");
		return;
	}
	/* Sized for the password (PgBouncer takes up to 65535 bytes), once per
	 * login, not per message. */
	size_t cap = answer_len + PROTO_HEADER_LEN;
	uint8_t *buf = xmalloc(cap);
	struct proto_writer w;
	proto_writer_init(&w, buf, cap);
	proto_write_password(&w, answer, answer_len);
	send_or_close(s, &w);
	crypto_wipe(buf, cap);
	free(buf);
}

static void handle_auth(struct server *s, const uint8_t *body, size_t len)
{
	if (len < 4) {
		login_fail(s, "08P01", "invalid authentication message from server");
		return;
	}
	uint32_t code = get_be32(body);
	const uint8_t *data = body + 4;
	size_t n = len - 4;
	switch (code) {
	case PQ_AUTH_OK:
		return;
	case PQ_AUTH_CLEARTEXT:
	case PQ_AUTH_MD5:
		answer_password(s, code, data, n);
		return;
	case PQ_AUTH_SASL:
		answer_sasl(s, data, n);
		return;
	case PQ_AUTH_SASL_CONTINUE:
		answer_sasl_continue(s, data, n);
		return;
	case PQ_AUTH_SASL_FINAL:
		if (!s->scram || !scram_client_verify(s->scram, (const char *)data, n))
			login_fail(s, "28000", "the server's SCRAM signature is wrong");
		return;
	default: {
		char msg[100];
		snprintf(msg, sizeof(msg), "unsupported authentication method %u requested by server", code);
		login_fail(s, "28000", msg);
		return;
	}
	}
}

static void keep_param(struct server *s, const uint8_t *body, size_t len)
{
	struct proto_reader r;
	proto_reader_init(&r, body, len);
	const char *name = proto_get_string(&r);
	const char *value = proto_get_string(&r);
	if (!name || !value)
		return;
	int idx = params_index(name);
	if (idx >= 0)
		param_set_put(&s->params, (size_t)idx, value);
	s->login_params = xrealloc(s->login_params, (s->n_login_params + 1) * sizeof(*s->login_params));
	s->login_params[s->n_login_params].name = xstrdup(name);
	s->login_params[s->n_login_params].value = xstrdup(value);
	s->n_login_params++;
}

static server_login_ready_fn ready_hook;

void server_login_set_ready_hook(server_login_ready_fn hook)
{
	ready_hook = hook;
}

/* Logged in: to the hook first, else straight to the pool. */
static void login_ready(struct server *s)
{
	if (ready_hook && ready_hook(s))
		return;
	events_server_ready(s);
}

static void connect_query_done(struct server *s, bool ok)
{
	if (!ok) {
		login_fail(s, "08P01", "connect_query failed");
		return;
	}
	login_ready(s);
}

static void login_complete(struct server *s, const uint8_t *body, size_t len)
{
	struct pool *p = s->pool;
	s->login_settled = true;
	s->tx_status = len >= 1 ? (char)body[0] : 'I';
	if (!p->have_welcome)
		events_server_welcome(p, s->login_params, s->n_login_params);
	server_login_free(s);
	char tls_info[128];
	conn_tls_describe(&s->conn, tls_info, sizeof(tls_info));
	server_log(LOG_LVL_INFO, s, "new server connection (backend pid %u%s%s)", s->backend_pid,
		   tls_info[0] ? ", TLS " : "", tls_info);
	p->last_connect_failure = 0;
	p->stats.server_logins++;
	if (p->connect_query && p->replication == REPL_NONE) {
		server_run_internal(s, p->connect_query, false, connect_query_done);
		return;
	}
	login_ready(s);
}

static bool login_message(struct server *s, uint8_t type, const uint8_t *body, size_t len)
{
	switch (type) {
	case PQ_MSG_AUTH:
		handle_auth(s, body, len);
		return true;
	case PQ_MSG_PARAMETER_STATUS:
		keep_param(s, body, len);
		return true;
	case PQ_MSG_BACKEND_KEY:
		if (len >= 8) {
			s->backend_pid = get_be32(body);
			s->backend_key = get_be32(body + 4);
		}
		return true;
	case PQ_MSG_NOTICE:
	case PQ_MSG_NEGOTIATE_VERSION:
		return true;
	case PQ_MSG_ERROR: {
		const char *m = proto_error_field(body, len, 'M');
		const char *code = proto_error_field(body, len, 'C');
		login_fail(s, code ? code : "08P01", m ? m : "server login failed");
		return false;
	}
	default:
		login_fail(s, "08P01", "unexpected message from server during login");
		return false;
	}
}

void server_login_input(struct server *s)
{
	if (s->ssl_requested && s->conn.in && iobuf_len(s->conn.in) > 0 && !ssl_answer(s))
		return;
	while (s->state == SV_LOGIN && !s->internal && s->conn.in) {
		struct iobuf *b = s->conn.in;
		struct proto_header h;
		enum proto_result r = proto_read_header(b->data + b->start, iobuf_len(b), &h);
		if (r == PROTO_NEED_MORE)
			break;
		if (r == PROTO_ERROR || h.len > PROTO_MAX_SMALL_LEN * 10) {
			login_fail(s, "08P01", "invalid message length from server during login");
			return;
		}
		if (iobuf_len(b) < h.len + 1) {
			conn_reserve(&s->conn, h.len + 1);
			break;
		}
		uint32_t total = h.len + 1;
		if (h.type == PQ_MSG_READY) {
			uint8_t status = h.len >= 5 ? b->data[b->start + PROTO_HEADER_LEN] : 'I';
			conn_consume(&s->conn, total);
			login_complete(s, &status, 1);
			break;
		}
		bool more = login_message(s, h.type, b->data + b->start + PROTO_HEADER_LEN, h.len - 4);
		if (s->state == SV_CLOSED)
			return;
		conn_consume(&s->conn, total);
		if (!more)
			break;
	}
	if (s->state != SV_CLOSED) {
		conn_release_empty(&s->conn);
		if (s->internal || s->state != SV_LOGIN)
			server_process(s);
	}
}
