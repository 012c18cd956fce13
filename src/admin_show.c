/* admin_show: owns the console's result-set building (a growable reply of
 * RowDescription/DataRow/CommandComplete messages) and every SHOW command,
 * plus the stats_period window behind the averages of SHOW STATS.
 *
 * Columns, their order and their types follow PgBouncer 1.25 (see
 * doc/admin.md); each SHOW is one small function over the pool lists, so
 * the output is always a walk of the live state, never a cached copy.
 * Where a column has no meaning in tidepool yet it holds an honest zero,
 * empty or NULL value. */
#include "admin.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "autoconf.h"
#include "budget.h"
#include "cancel.h"
#include "client.h"
#include "config.h"
#include "dns.h"
#include "iobuf.h"
#include "lifecycle.h"
#include "log.h"
#include "reload.h"
#include "loop.h"
#include "params.h"
#include "pool.h"
#include "prepared.h"
#include "proto.h"
#include "server.h"
#include "settings.h"

#define COLS(a) (a), ARRAY_SIZE(a)

/* ---------------------------------------------------------------- reply */

static void reply_reserve(struct admin_reply *r, size_t need)
{
	if (r->cap - r->len >= need)
		return;
	size_t cap = r->cap ? r->cap : 4096;
	while (cap - r->len < need)
		cap *= 2;
	r->data = xrealloc(r->data, cap);
	r->cap = cap;
}

/* A writer over the free room of r, at least `need` bytes. */
static struct proto_writer reply_writer(struct admin_reply *r, size_t need)
{
	struct proto_writer w;
	reply_reserve(r, need);
	proto_writer_init(&w, r->data + r->len, r->cap - r->len);
	return w;
}

static void reply_commit(struct admin_reply *r, const struct proto_writer *w)
{
	if (w->overflow) {
		log_error("admin: reply message did not fit its reserved room");
		return;
	}
	r->len += w->len;
}

static struct proto_column type_column(const struct admin_col *c)
{
	switch (c->type) {
	case ADMIN_TEXT: return (struct proto_column){ c->name, PROTO_OID_TEXT, -1 };
	case ADMIN_INT4: return (struct proto_column){ c->name, PROTO_OID_INT4, 4 };
	case ADMIN_INT8: return (struct proto_column){ c->name, PROTO_OID_INT8, 8 };
	case ADMIN_NUMERIC: return (struct proto_column){ c->name, PROTO_OID_NUMERIC, -1 };
	case ADMIN_TIMESTAMPTZ: return (struct proto_column){ c->name, PROTO_OID_TIMESTAMPTZ, 8 };
	case ADMIN_BYTEA: return (struct proto_column){ c->name, PROTO_OID_BYTEA, -1 };
	}
	return (struct proto_column){ c->name, PROTO_OID_TEXT, -1 };
}

void admin_reply_columns(struct admin_reply *r, const struct admin_col *cols, size_t n)
{
	struct proto_column pc[ADMIN_MAX_COLS];
	n = MIN(n, (size_t)ADMIN_MAX_COLS);
	for (size_t i = 0; i < n; i++)
		pc[i] = type_column(&cols[i]);
	struct proto_writer w = reply_writer(r, proto_row_description_size(pc, n));
	proto_write_row_description(&w, pc, n);
	reply_commit(r, &w);
	r->ncols = n;
}

void admin_reply_row(struct admin_reply *r, const struct admin_row *row)
{
	if (row->n != r->ncols)
		log_error("admin: row has %zu values for %zu columns", row->n, r->ncols);
	struct proto_writer w = reply_writer(r, proto_data_row_size(row->val, row->n));
	proto_write_data_row(&w, row->val, row->n);
	reply_commit(r, &w);
}

void admin_reply_complete(struct admin_reply *r, const char *tag)
{
	struct proto_writer w = reply_writer(r, strlen(tag) + 16);
	proto_write_command_complete(&w, tag);
	reply_commit(r, &w);
}

void admin_reply_error(struct admin_reply *r, const char *sqlstate, const char *fmt, ...)
{
	char msg[2000];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct proto_writer w = reply_writer(r, strlen(msg) + 64);
	proto_write_error(&w, "ERROR", sqlstate, msg);
	reply_commit(r, &w);
}

void admin_reply_notice(struct admin_reply *r, const char *msg)
{
	struct proto_writer w = reply_writer(r, strlen(msg) + 64);
	proto_write_notice(&w, "00000", msg);
	reply_commit(r, &w);
}

void admin_reply_empty(struct admin_reply *r)
{
	struct proto_writer w = reply_writer(r, PROTO_HEADER_LEN);
	proto_write_empty_query(&w);
	reply_commit(r, &w);
}

void admin_reply_ready(struct admin_reply *r)
{
	struct proto_writer w = reply_writer(r, PROTO_HEADER_LEN + 1);
	proto_write_ready(&w, 'I');
	reply_commit(r, &w);
}

void admin_reply_free(struct admin_reply *r)
{
	free(r->data);
	r->data = NULL;
	r->len = r->cap = r->ncols = 0;
}

/* ------------------------------------------------------------------ rows */

void admin_row_init(struct admin_row *row)
{
	row->n = 0;
}

void admin_row_text(struct admin_row *row, const char *s)
{
	if (row->n < ADMIN_MAX_COLS)
		row->val[row->n++] = s;
}

void admin_row_int(struct admin_row *row, long long v)
{
	if (row->n >= ADMIN_MAX_COLS)
		return;
	snprintf(row->num[row->n], sizeof(row->num[0]), "%lld", v);
	row->val[row->n] = row->num[row->n];
	row->n++;
}

void admin_row_uint(struct admin_row *row, unsigned long long v)
{
	if (row->n >= ADMIN_MAX_COLS)
		return;
	snprintf(row->num[row->n], sizeof(row->num[0]), "%llu", v);
	row->val[row->n] = row->num[row->n];
	row->n++;
}

void admin_row_time(struct admin_row *row, usec_t wall)
{
	if (row->n >= ADMIN_MAX_COLS)
		return;
	if (wall <= 0) {
		row->val[row->n++] = NULL;
		return;
	}
	time_t t = (time_t)(wall / USEC_PER_SEC);
	struct tm tm;
	localtime_r(&t, &tm);
	/* PgBouncer's format: local time with the zone's abbreviation, sent as text */
	char *buf = row->num[row->n];
	strftime(buf, sizeof(row->num[0]), "%Y-%m-%d %H:%M:%S %Z", &tm);
	row->val[row->n] = row->num[row->n];
	row->n++;
}

static void reply_text_pair(struct admin_reply *r, const char *a, const char *b)
{
	struct admin_row row;
	admin_row_init(&row);
	admin_row_text(&row, a);
	admin_row_text(&row, b);
	admin_reply_row(r, &row);
}

static void reply_name_int(struct admin_reply *r, const char *name, long long v)
{
	struct admin_row row;
	admin_row_init(&row);
	admin_row_text(&row, name);
	admin_row_int(&row, v);
	admin_reply_row(r, &row);
}

/* --------------------------------------------------------------- helpers */

static struct pool *pool_at(const struct list_node *n)
{
	return list_entry(n, struct pool, node);
}

/* Clients in a pool's lists, not counting ones still logging in. */
static int pool_clients(const struct pool *p)
{
	return p->n_clients[CL_WAIT_LOGIN] + p->n_clients[CL_IDLE] + p->n_clients[CL_WAITING] +
	       p->n_clients[CL_ACTIVE];
}

/* Servers and clients of every (non-console) pool of db, or of user. */
static void count_conns(const char *db, const char *user, int *servers, int *clients)
{
	*servers = *clients = 0;
	for (struct list_node *n = pool_list()->next; n != pool_list(); n = n->next) {
		const struct pool *p = pool_at(n);
		if ((db && strcmp(p->db_name, db) != 0) || (user && strcmp(p->user_name, user) != 0))
			continue;
		if (db && p->console)
			continue;
		*servers += pool_total_servers(p);
		*clients += pool_clients(p);
	}
}

/* A monotonic time as wall-clock time. */
static usec_t mono_to_wall(usec_t mono)
{
	return mono ? loop_wall_now() - (loop_now() - mono) : 0;
}

static const char *param_value(const struct param_set *ps, const char *name)
{
	int i = params_index(name);
	return i >= 0 && ps->values[i] ? ps->values[i] : "";
}

/* ------------------------------------------------------ clients, servers */

static const struct admin_col socket_cols[] = {
	{ "type", ADMIN_TEXT }, { "user", ADMIN_TEXT }, { "database", ADMIN_TEXT },
	{ "replication", ADMIN_TEXT }, { "state", ADMIN_TEXT }, { "addr", ADMIN_TEXT },
	{ "port", ADMIN_INT4 }, { "local_addr", ADMIN_TEXT }, { "local_port", ADMIN_INT4 },
	{ "connect_time", ADMIN_TEXT }, { "request_time", ADMIN_TEXT },
	{ "wait", ADMIN_INT4 }, { "wait_us", ADMIN_INT4 }, { "close_needed", ADMIN_INT4 },
	{ "ptr", ADMIN_TEXT }, { "link", ADMIN_TEXT }, { "remote_pid", ADMIN_INT4 },
	{ "tls", ADMIN_TEXT }, { "application_name", ADMIN_TEXT },
	{ "prepared_statements", ADMIN_INT4 }, { "id", ADMIN_INT4 }, { "session_state", ADMIN_TEXT },
	/* SHOW SOCKETS and ACTIVE_SOCKETS only */
	{ "recv_pos", ADMIN_INT4 }, { "pkt_pos", ADMIN_INT4 }, { "pkt_remain", ADMIN_INT4 },
	{ "send_pos", ADMIN_INT4 }, { "send_remain", ADMIN_INT4 }, { "pkt_avail", ADMIN_INT4 },
	{ "send_avail", ADMIN_INT4 },
};
#define N_CLIENT_COLS 22

/* Per-socket strings a row points at until it is written. */
struct sock_text {
	char local_addr[64], ptr[32], link[32], tls[128];
};

/* local_addr/local_port of a socket ("unix" and listen_port for the unix socket). */
/* SHOW CLIENTS/SERVERS replication column: none, physical or logical. */
static const char *replication_name(const struct pool *p)
{
	if (!p)
		return "none";
	switch (p->replication) {
	case REPL_NONE: return "none";
	case REPL_PHYSICAL: return "physical";
	case REPL_LOGICAL: return "logical";
	}
	return "none";
}

static void local_name(int fd, bool is_unix, char *buf, size_t len, int *port)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	strlcpy_safe(buf, "unix", len);
	*port = config_current()->listen_port;
	if (is_unix || fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf, (socklen_t)len);
		*port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf, (socklen_t)len);
		*port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
}

/* The pid of a unix-socket peer, 0 when unknown. */
static int peer_pid(const struct client *c)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (!c->is_unix || c->conn.fd < 0 ||
	    getsockopt(c->conn.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return 0;
	return (int)cred.pid;
}

static void conn_positions(struct admin_row *row, const struct conn *cn)
{
	const struct iobuf *in = cn->in, *out = cn->out;
	admin_row_int(row, in ? in->end : 0);                    /* recv_pos */
	admin_row_int(row, in ? cn->fwd : 0);                    /* pkt_pos: scanned up to */
	admin_row_int(row, cn->remain);                          /* pkt_remain */
	admin_row_int(row, out ? out->start : 0);                /* send_pos */
	admin_row_int(row, out ? iobuf_len(out) : 0);            /* send_remain */
	admin_row_int(row, in ? in->end - cn->fwd : 0);          /* pkt_avail: not scanned */
	admin_row_int(row, in ? cn->fwd - in->start : 0);        /* send_avail: to forward */
}

static void client_row(struct admin_reply *r, const struct client *c, const char *state, bool sockets)
{
	struct admin_row row;
	struct sock_text t;
	int lport;
	bool waits = c->state == CL_WAITING || c->state == CL_WAIT_LOGIN;
	usec_t waited = waits ? loop_now() - c->state_since : 0;
	local_name(c->conn.fd, c->is_unix, t.local_addr, sizeof(t.local_addr), &lport);
	snprintf(t.ptr, sizeof(t.ptr), "C-%llu", (unsigned long long)c->id);
	if (c->server)
		snprintf(t.link, sizeof(t.link), "S-%llu", (unsigned long long)c->server->id);
	admin_row_init(&row);
	admin_row_text(&row, "C");
	admin_row_text(&row, c->user);
	admin_row_text(&row, c->pool ? c->pool->db_name : c->dbname);
	admin_row_text(&row, replication_name(c->pool));
	admin_row_text(&row, state);
	admin_row_text(&row, c->addr);
	admin_row_int(&row, c->port);
	admin_row_text(&row, t.local_addr);
	admin_row_int(&row, lport);
	admin_row_time(&row, c->connect_wall);
	admin_row_time(&row, mono_to_wall(c->request_time));
	admin_row_int(&row, waited / USEC_PER_SEC);
	admin_row_int(&row, waited % USEC_PER_SEC);
	admin_row_int(&row, 0);
	admin_row_text(&row, t.ptr);
	admin_row_text(&row, c->server ? t.link : NULL);
	admin_row_int(&row, peer_pid(c));
	conn_tls_describe(&c->conn, t.tls, sizeof(t.tls));
	admin_row_text(&row, t.tls);
	admin_row_text(&row, param_value(&c->params, "application_name"));
	admin_row_int(&row, ps_client_count(c));
	admin_row_uint(&row, c->id);
	char state_text[32] = "";
	if (c->pinned)
		strlcpy_safe(state_text, "pinned", sizeof(state_text));
	else if (settings_client_count(c))
		snprintf(state_text, sizeof(state_text), "settings=%zu", settings_client_count(c));
	admin_row_text(&row, state_text[0] ? state_text : NULL);
	if (sockets)
		conn_positions(&row, &c->conn);
	admin_reply_row(r, &row);
}

static void server_row(struct admin_reply *r, const struct server *s, const char *state, bool sockets)
{
	struct admin_row row;
	struct sock_text t;
	int lport;
	local_name(s->conn.fd, false, t.local_addr, sizeof(t.local_addr), &lport);
	snprintf(t.ptr, sizeof(t.ptr), "S-%llu", (unsigned long long)s->id);
	if (s->client)
		snprintf(t.link, sizeof(t.link), "C-%llu", (unsigned long long)s->client->id);
	admin_row_init(&row);
	admin_row_text(&row, "S");
	admin_row_text(&row, s->pool->server_user);
	admin_row_text(&row, s->pool->db_name);
	admin_row_text(&row, replication_name(s->pool));
	admin_row_text(&row, state);
	admin_row_text(&row, s->addr);
	admin_row_int(&row, s->port);
	admin_row_text(&row, t.local_addr);
	admin_row_int(&row, lport);
	admin_row_time(&row, s->connect_wall);
	admin_row_time(&row, mono_to_wall(s->last_used ? s->last_used : s->connect_time));
	admin_row_int(&row, 0);
	admin_row_int(&row, 0);
	admin_row_int(&row, s->close_needed);
	admin_row_text(&row, t.ptr);
	admin_row_text(&row, s->client ? t.link : NULL);
	admin_row_int(&row, (long long)s->backend_pid);
	conn_tls_describe(&s->conn, t.tls, sizeof(t.tls));
	admin_row_text(&row, t.tls);
	admin_row_text(&row, param_value(&s->params, "application_name"));
	admin_row_int(&row, ps_server_count(s));
	admin_row_uint(&row, s->id);
	char state_text[32] = "";
	if (s->session_state)
		strlcpy_safe(state_text, "pinned", sizeof(state_text));
	else if (s->applied.n)
		snprintf(state_text, sizeof(state_text), "settings=%u", (unsigned)s->applied.n);
	admin_row_text(&row, state_text[0] ? state_text : NULL);
	if (sockets)
		conn_positions(&row, &s->conn);
	admin_reply_row(r, &row);
}

/* SHOW CLIENTS words; NULL for clients SHOW CLIENTS leaves out. */
static const char *client_show_state(enum client_state st)
{
	switch (st) {
	case CL_ACTIVE: return "active";
	case CL_IDLE: return "idle";
	case CL_WAITING: return "waiting";
	case CL_WAIT_LOGIN: return "waiting";
	case CL_LOGIN: return NULL;
	case CL_CLOSED: return NULL;
	case CL_STATE_COUNT: return NULL;
	}
	return NULL;
}

static const char *client_socket_state(enum client_state st)
{
	switch (st) {
	case CL_ACTIVE: return "cl_active";
	case CL_IDLE: return "cl_active";
	case CL_WAITING: return "cl_waiting";
	case CL_WAIT_LOGIN: return "cl_waiting";
	case CL_LOGIN: return "cl_login";
	case CL_CLOSED: return NULL;
	case CL_STATE_COUNT: return NULL;
	}
	return NULL;
}

static const char *server_show_state(enum server_state st)
{
	switch (st) {
	case SV_ACTIVE: return "active";
	case SV_IDLE: return "idle";
	case SV_USED: return "used";
	case SV_TESTED: return "tested";
	case SV_BEING_CANCELED: return "being_canceled";
	case SV_CONNECTING: return "new";
	case SV_LOGIN: return "new";
	case SV_CLOSED: return NULL;
	case SV_STATE_COUNT: return NULL;
	}
	return NULL;
}

static const char *server_socket_state(enum server_state st)
{
	switch (st) {
	case SV_ACTIVE: return "sv_active";
	case SV_IDLE: return "sv_idle";
	case SV_USED: return "sv_used";
	case SV_TESTED: return "sv_tested";
	case SV_BEING_CANCELED: return "sv_being_canceled";
	case SV_CONNECTING: return "sv_login";
	case SV_LOGIN: return "sv_login";
	case SV_CLOSED: return NULL;
	case SV_STATE_COUNT: return NULL;
	}
	return NULL;
}

enum socket_filter {
	SOCK_ALL,
	SOCK_ACTIVE,   /* only sockets with buffered input or output */
};

static bool socket_busy(const struct conn *cn)
{
	return (cn->in && iobuf_len(cn->in)) || (cn->out && iobuf_len(cn->out)) || cn->remain;
}

static void client_list_rows(struct admin_reply *r, const struct list_node *l, bool sockets,
			     enum socket_filter f)
{
	for (const struct list_node *n = l->next; n != l; n = n->next) {
		const struct client *c = list_entry(n, struct client, node);
		const char *st = sockets ? client_socket_state(c->state) : client_show_state(c->state);
		if (st && (f == SOCK_ALL || socket_busy(&c->conn)))
			client_row(r, c, st, sockets);
	}
}

static void server_list_rows(struct admin_reply *r, const struct list_node *l, bool sockets,
			     enum socket_filter f)
{
	for (const struct list_node *n = l->next; n != l; n = n->next) {
		const struct server *s = list_entry(n, struct server, node);
		const char *st = sockets ? server_socket_state(s->state) : server_show_state(s->state);
		if (st && (f == SOCK_ALL || socket_busy(&s->conn)))
			server_row(r, s, st, sockets);
	}
}

static void show_clients(struct admin_reply *r)
{
	admin_reply_columns(r, socket_cols, N_CLIENT_COLS);
	for (struct list_node *n = pool_list()->next; n != pool_list(); n = n->next)
		for (int st = 0; st < CL_STATE_COUNT; st++)
			client_list_rows(r, &pool_at(n)->clients[st], false, SOCK_ALL);
}

static void show_servers(struct admin_reply *r)
{
	admin_reply_columns(r, socket_cols, N_CLIENT_COLS);
	for (struct list_node *n = pool_list()->next; n != pool_list(); n = n->next)
		for (int st = 0; st < SV_STATE_COUNT; st++)
			server_list_rows(r, &pool_at(n)->servers[st], false, SOCK_ALL);
}

static void sockets_rows(struct admin_reply *r, enum socket_filter f)
{
	admin_reply_columns(r, COLS(socket_cols));
	client_list_rows(r, pool_login_clients(), true, f);
	for (struct list_node *n = pool_list()->next; n != pool_list(); n = n->next) {
		for (int st = 0; st < CL_STATE_COUNT; st++)
			client_list_rows(r, &pool_at(n)->clients[st], true, f);
		for (int st = 0; st < SV_STATE_COUNT; st++)
			server_list_rows(r, &pool_at(n)->servers[st], true, f);
	}
}

static void show_sockets(struct admin_reply *r)
{
	sockets_rows(r, SOCK_ALL);
}

static void show_active_sockets(struct admin_reply *r)
{
	sockets_rows(r, SOCK_ACTIVE);
}

/* ------------------------------------------------------------------ pools */

static const struct admin_col pools_cols[] = {
	{ "database", ADMIN_TEXT }, { "user", ADMIN_TEXT }, { "cl_active", ADMIN_INT4 },
	{ "cl_waiting", ADMIN_INT4 }, { "cl_active_cancel_req", ADMIN_INT4 },
	{ "cl_waiting_cancel_req", ADMIN_INT4 }, { "sv_active", ADMIN_INT4 },
	{ "sv_active_cancel", ADMIN_INT4 }, { "sv_being_canceled", ADMIN_INT4 },
	{ "sv_idle", ADMIN_INT4 }, { "sv_used", ADMIN_INT4 }, { "sv_tested", ADMIN_INT4 },
	{ "sv_login", ADMIN_INT4 }, { "maxwait", ADMIN_INT4 }, { "maxwait_us", ADMIN_INT4 },
	{ "pool_mode", ADMIN_TEXT }, { "load_balance_hosts", ADMIN_TEXT },
	{ "session_state", ADMIN_TEXT }, { "cl_pinned", ADMIN_INT4 }, { "state_refused", ADMIN_INT8 },
	{ "state_allowed", ADMIN_INT8 }, { "settings_replays", ADMIN_INT8 },
};

/* How long the pool's longest-waiting client has waited. */
static usec_t pool_max_wait(const struct pool *p)
{
	usec_t oldest = 0;
	static const enum client_state waits[] = { CL_WAITING, CL_WAIT_LOGIN };
	for (size_t i = 0; i < ARRAY_SIZE(waits); i++) {
		const struct list_node *first = list_first(&p->clients[waits[i]]);
		if (!first)
			continue;
		usec_t since = list_entry(first, struct client, node)->state_since;
		if (!oldest || since < oldest)
			oldest = since;
	}
	return oldest ? loop_now() - oldest : 0;
}

/* load_balance_hosts means something only when host is a list. */
static const char *pool_load_balance(const struct pool *p)
{
	if (!p->server_host || !strchr(p->server_host, ','))
		return NULL;
	const struct db_config *db = config_find_db_or_fallback(config_current(), p->db_name);
	return db && db->load_balance_hosts ? db->load_balance_hosts : "round-robin";
}

static void show_pools(struct admin_reply *r)
{
	admin_reply_columns(r, COLS(pools_cols));
	for (struct list_node *n = pool_list()->next; n != pool_list(); n = n->next) {
		const struct pool *p = pool_at(n);
		usec_t wait = pool_max_wait(p);
		struct admin_row row;
		admin_row_init(&row);
		admin_row_text(&row, p->db_name);
		admin_row_text(&row, p->user_name);
		admin_row_int(&row, p->n_clients[CL_ACTIVE] + p->n_clients[CL_IDLE]);
		admin_row_int(&row, p->n_clients[CL_WAITING] + p->n_clients[CL_WAIT_LOGIN]);
		admin_row_int(&row, 0);
		admin_row_int(&row, 0);
		admin_row_int(&row, p->n_servers[SV_ACTIVE]);
		admin_row_int(&row, 0);
		admin_row_int(&row, p->n_servers[SV_BEING_CANCELED]);
		admin_row_int(&row, p->n_servers[SV_IDLE]);
		admin_row_int(&row, p->n_servers[SV_USED]);
		admin_row_int(&row, p->n_servers[SV_TESTED]);
		admin_row_int(&row, p->n_servers[SV_CONNECTING] + p->n_servers[SV_LOGIN]);
		admin_row_int(&row, wait / USEC_PER_SEC);
		admin_row_int(&row, wait % USEC_PER_SEC);
		admin_row_text(&row, config_pool_mode_name(p->mode));
		admin_row_text(&row, pool_load_balance(p));
		admin_row_text(&row, p->session_state == SESSION_STATE_ERROR   ? "error"
				     : p->session_state == SESSION_STATE_ALLOW ? "allow" : "pin");
		admin_row_int(&row, p->n_pinned);
		admin_row_uint(&row, p->stats.state_refused);
		admin_row_uint(&row, p->stats.state_allowed);
		admin_row_uint(&row, p->stats.settings_replays);
		admin_reply_row(r, &row);
	}
}

/* -------------------------------------------------------------- databases */

static const struct admin_col databases_cols[] = {
	{ "name", ADMIN_TEXT }, { "host", ADMIN_TEXT }, { "port", ADMIN_INT4 },
	{ "database", ADMIN_TEXT }, { "force_user", ADMIN_TEXT }, { "pool_size", ADMIN_INT4 },
	{ "min_pool_size", ADMIN_INT4 }, { "reserve_pool_size", ADMIN_INT4 },
	{ "server_lifetime", ADMIN_INT4 }, { "pool_mode", ADMIN_TEXT },
	{ "load_balance_hosts", ADMIN_TEXT }, { "max_connections", ADMIN_INT4 },
	{ "current_connections", ADMIN_INT4 }, { "max_client_connections", ADMIN_INT4 },
	{ "current_client_connections", ADMIN_INT4 }, { "paused", ADMIN_INT4 },
	{ "disabled", ADMIN_INT4 },
};

static int or_default(int v, int def)
{
	return v >= 0 ? v : def;
}

/* One row for database name, configured by d (its own entry or "*"). */
static void database_row(struct admin_reply *r, const char *name, const struct db_config *d)
{
	const struct config *cfg = config_current();
	int servers, clients;
	count_conns(name, NULL, &servers, &clients);
	bool list = d->host && strchr(d->host, ',');
	usec_t life = d->server_lifetime >= 0 ? d->server_lifetime : cfg->server_lifetime;
	struct admin_row row;
	admin_row_init(&row);
	admin_row_text(&row, name);
	admin_row_text(&row, d->host);
	admin_row_int(&row, d->port);
	admin_row_text(&row, d->dbname ? d->dbname : name);
	admin_row_text(&row, d->user);
	admin_row_int(&row, or_default(d->pool_size, cfg->default_pool_size));
	admin_row_int(&row, or_default(d->min_pool_size, cfg->min_pool_size));
	admin_row_int(&row, or_default(d->reserve_pool_size, cfg->reserve_pool_size));
	admin_row_int(&row, life / USEC_PER_SEC);
	admin_row_text(&row, d->pool_mode == POOL_MODE_UNSET ? NULL : config_pool_mode_name(d->pool_mode));
	admin_row_text(&row, list ? (d->load_balance_hosts ? d->load_balance_hosts : "round-robin") : NULL);
	admin_row_int(&row, or_default(d->max_db_connections, cfg->max_db_connections));
	admin_row_int(&row, servers);
	admin_row_int(&row, or_default(d->max_db_client_connections, cfg->max_db_client_connections));
	admin_row_int(&row, clients);
	admin_row_int(&row, lifecycle_paused() || pool_db_paused(name));
	admin_row_int(&row, pool_db_disabled(name));
	admin_reply_row(r, &row);
}

/* The console's own row, as PgBouncer lists its "pgbouncer" database. */
static void console_database_row(struct admin_reply *r)
{
	int clients = 0;
	for (struct list_node *n = pool_list()->next; n != pool_list(); n = n->next)
		if (pool_at(n)->console)
			clients += pool_clients(pool_at(n));
	struct admin_row row;
	admin_row_init(&row);
	admin_row_text(&row, "pgbouncer");
	admin_row_text(&row, NULL);
	admin_row_int(&row, config_current()->listen_port);
	admin_row_text(&row, "pgbouncer");
	admin_row_text(&row, "pgbouncer");
	for (int i = 0; i < 4; i++)   /* pool_size, min_pool_size, reserve_pool_size, server_lifetime */
		admin_row_int(&row, 0);
	admin_row_text(&row, "statement");
	admin_row_text(&row, NULL);
	admin_row_int(&row, 0);
	admin_row_int(&row, 0);
	admin_row_int(&row, config_current()->max_db_client_connections);
	admin_row_int(&row, clients);
	admin_row_int(&row, 0);
	admin_row_int(&row, 0);
	admin_reply_row(r, &row);
}

/* True if an earlier pool than `upto` has database db. */
static bool db_seen_before(const struct list_node *upto, const char *db)
{
	for (const struct list_node *n = pool_list()->next; n != upto; n = n->next)
		if (!pool_at(n)->console && strcmp(pool_at(n)->db_name, db) == 0)
			return true;
	return false;
}

/* Databases: every [databases] entry but "*", then the databases pools were
 * made for through "*", then the console. Returns the row count; with r
 * NULL only counts. */
static size_t each_database(struct admin_reply *r)
{
	const struct config *cfg = config_current();
	size_t count = 1;
	for (size_t i = 0; i < cfg->n_dbs; i++) {
		if (strcmp(cfg->dbs[i]->name, "*") == 0)
			continue;
		count++;
		if (r)
			database_row(r, cfg->dbs[i]->name, cfg->dbs[i]);
	}
	for (struct list_node *n = pool_list()->next; n != pool_list(); n = n->next) {
		const struct pool *p = pool_at(n);
		const struct db_config *d = config_find_db_or_fallback(cfg, p->db_name);
		if (p->console || config_find_db(cfg, p->db_name) || !d || db_seen_before(n, p->db_name))
			continue;
		count++;
		if (r)
			database_row(r, p->db_name, d);
	}
	if (r)
		console_database_row(r);
	return count;
}

static void show_databases(struct admin_reply *r)
{
	admin_reply_columns(r, COLS(databases_cols));
	(void)each_database(r);
}

/* ------------------------------------------------------------------ users */

static const struct admin_col users_cols[] = {
	{ "name", ADMIN_TEXT }, { "pool_size", ADMIN_TEXT }, { "reserve_pool_size", ADMIN_TEXT },
	{ "pool_mode", ADMIN_TEXT }, { "max_user_connections", ADMIN_INT4 },
	{ "current_connections", ADMIN_INT4 }, { "max_user_client_connections", ADMIN_INT4 },
	{ "current_client_connections", ADMIN_INT4 },
};

static void user_row(struct admin_reply *r, const char *name)
{
	const struct config *cfg = config_current();
	const struct user_config *u = config_find_user(cfg, name);
	int servers, clients;
	count_conns(NULL, name, &servers, &clients);
	struct admin_row row;
	admin_row_init(&row);
	admin_row_text(&row, name);
	/* text columns, as PgBouncer sends them: NULL when the user sets none */
	if (u && u->pool_size >= 0)
		admin_row_int(&row, u->pool_size);
	else
		admin_row_text(&row, NULL);
	if (u && u->reserve_pool_size >= 0)
		admin_row_int(&row, u->reserve_pool_size);
	else
		admin_row_text(&row, NULL);
	admin_row_text(&row, u && u->pool_mode != POOL_MODE_UNSET ? config_pool_mode_name(u->pool_mode) : NULL);
	admin_row_int(&row, or_default(u ? u->max_user_connections : -1, cfg->max_user_connections));
	admin_row_int(&row, servers);
	admin_row_int(&row, or_default(u ? u->max_user_client_connections : -1,
				       cfg->max_user_client_connections));
	admin_row_int(&row, pool_count_clients(NULL, name));   /* console logins too */
	admin_reply_row(r, &row);
}

static bool user_seen_before(const struct list_node *upto, const char *user)
{
	for (const struct list_node *n = pool_list()->next; n != upto; n = n->next)
		if (strcmp(pool_at(n)->user_name, user) == 0)
			return true;
	return false;
}

/* Users: [users] entries, auth_file users, then users of pools not listed
 * yet. Returns the row count; with r NULL only counts. */
static size_t each_user(struct admin_reply *r)
{
	const struct config *cfg = config_current();
	size_t count = 0;
	for (size_t i = 0; i < cfg->n_users; i++, count++)
		if (r)
			user_row(r, cfg->users[i]->name);
	for (size_t i = 0; i < cfg->n_auth; i++) {
		if (config_find_user(cfg, cfg->auth[i]->user))
			continue;
		count++;
		if (r)
			user_row(r, cfg->auth[i]->user);
	}
	for (struct list_node *n = pool_list()->next; n != pool_list(); n = n->next) {
		const char *u = pool_at(n)->user_name;
		if (config_find_user(cfg, u) || config_find_auth(cfg, u) || user_seen_before(n, u))
			continue;
		count++;
		if (r)
			user_row(r, u);
	}
	return count;
}

static void show_users(struct admin_reply *r)
{
	admin_reply_columns(r, COLS(users_cols));
	(void)each_user(r);
}

/* ------------------------------------------------------------------ stats */

enum stat_field {
	ST_ASSIGN, ST_XACT, ST_QUERY, ST_RECV, ST_SENT, ST_XACT_TIME, ST_QUERY_TIME,
	ST_WAIT_TIME, ST_CLIENT_PARSE, ST_SERVER_PARSE, ST_BIND, ST_COUNT
};

struct stat_values {
	uint64_t v[ST_COUNT];
};

/* Start of the current stats_period and length of the last complete one. */
static usec_t period_start, last_period;

static void stat_add(struct stat_values *sum, const struct stats_counters *s, int sign)
{
	const uint64_t v[ST_COUNT] = {
		s->server_assignment_count, s->xact_count, s->query_count, s->bytes_received,
		s->bytes_sent, (uint64_t)s->xact_time, (uint64_t)s->query_time, (uint64_t)s->wait_time,
		s->client_parse_count, s->server_parse_count, s->bind_count,
	};
	for (int i = 0; i < ST_COUNT; i++)
		sum->v[i] += sign > 0 ? v[i] : -v[i];
}

/* Totals and last-period deltas of the pools of db (every pool if NULL). */
static void stat_collect(const char *db, struct stat_values *total, struct stat_values *delta)
{
	memset(total, 0, sizeof(*total));
	memset(delta, 0, sizeof(*delta));
	for (struct list_node *n = pool_list()->next; n != pool_list(); n = n->next) {
		const struct pool *p = pool_at(n);
		if (db && strcmp(p->db_name, db) != 0)
			continue;
		stat_add(total, &p->stats, 1);
		stat_add(delta, &p->stats_start, 1);
		stat_add(delta, &p->stats_last, -1);
	}
}

/* PgBouncer's averages: counts and bytes per second over the last period;
 * times per transaction, per query and per server assignment. */
static struct stat_values stat_average(const struct stat_values *d)
{
	struct stat_values a = { { 0 } };
	if (last_period <= 0)
		return a;
	for (int i = 0; i < ST_COUNT; i++)
		a.v[i] = d->v[i] * (uint64_t)USEC_PER_SEC / (uint64_t)last_period;
	a.v[ST_XACT_TIME] = d->v[ST_XACT] ? d->v[ST_XACT_TIME] / d->v[ST_XACT] : 0;
	a.v[ST_QUERY_TIME] = d->v[ST_QUERY] ? d->v[ST_QUERY_TIME] / d->v[ST_QUERY] : 0;
	a.v[ST_WAIT_TIME] = d->v[ST_ASSIGN] ? d->v[ST_WAIT_TIME] / d->v[ST_ASSIGN] : 0;
	return a;
}

/* log_stats: PgBouncer's line of averages over the period just ended, for
 * all databases together. */
static void log_period_stats(void)
{
	struct stat_values total, delta, a;
	stat_collect(NULL, &total, &delta);
	a = stat_average(&delta);
	log_info("stats: %llu xacts/s, %llu queries/s, %llu client parses/s, %llu server parses/s, "
		 "%llu binds/s, in %llu B/s, out %llu B/s, xact %llu us, query %llu us, wait %llu us",
		 (unsigned long long)a.v[ST_XACT], (unsigned long long)a.v[ST_QUERY],
		 (unsigned long long)a.v[ST_CLIENT_PARSE], (unsigned long long)a.v[ST_SERVER_PARSE],
		 (unsigned long long)a.v[ST_BIND], (unsigned long long)a.v[ST_RECV],
		 (unsigned long long)a.v[ST_SENT], (unsigned long long)a.v[ST_XACT_TIME],
		 (unsigned long long)a.v[ST_QUERY_TIME], (unsigned long long)a.v[ST_WAIT_TIME]);
}

void admin_stats_tick(usec_t now)
{
	if (!period_start) {
		period_start = now;
		return;
	}
	if (now - period_start < config_current()->stats_period)
		return;
	for (struct list_node *n = pool_list()->next; n != pool_list(); n = n->next) {
		struct pool *p = pool_at(n);
		p->stats_last = p->stats_start;
		p->stats_start = p->stats;
	}
	last_period = now - period_start;
	period_start = now;
	if (config_current()->log_stats)
		log_period_stats();
}

static const char *const stat_names[ST_COUNT] = {
	"server_assignment_count", "xact_count", "query_count", "bytes_received", "bytes_sent",
	"xact_time", "query_time", "wait_time", "client_parse_count", "server_parse_count",
	"bind_count",
};

static const struct admin_col stats_cols[] = {
	{ "database", ADMIN_TEXT },
	{ "total_server_assignment_count", ADMIN_NUMERIC }, { "total_xact_count", ADMIN_NUMERIC },
	{ "total_query_count", ADMIN_NUMERIC }, { "total_received", ADMIN_NUMERIC },
	{ "total_sent", ADMIN_NUMERIC }, { "total_xact_time", ADMIN_NUMERIC },
	{ "total_query_time", ADMIN_NUMERIC }, { "total_wait_time", ADMIN_NUMERIC },
	{ "total_client_parse_count", ADMIN_NUMERIC }, { "total_server_parse_count", ADMIN_NUMERIC },
	{ "total_bind_count", ADMIN_NUMERIC },
	{ "avg_server_assignment_count", ADMIN_NUMERIC }, { "avg_xact_count", ADMIN_NUMERIC },
	{ "avg_query_count", ADMIN_NUMERIC }, { "avg_recv", ADMIN_NUMERIC },
	{ "avg_sent", ADMIN_NUMERIC }, { "avg_xact_time", ADMIN_NUMERIC },
	{ "avg_query_time", ADMIN_NUMERIC }, { "avg_wait_time", ADMIN_NUMERIC },
	{ "avg_client_parse_count", ADMIN_NUMERIC }, { "avg_server_parse_count", ADMIN_NUMERIC },
	{ "avg_bind_count", ADMIN_NUMERIC },
};

enum stats_kind {
	STATS_BOTH,       /* SHOW STATS */
	STATS_TOTALS,     /* SHOW STATS_TOTALS */
	STATS_AVERAGES,   /* SHOW STATS_AVERAGES */
};

static void stats_row(struct admin_reply *r, const char *db, enum stats_kind kind)
{
	struct stat_values total, delta;
	stat_collect(db, &total, &delta);
	struct stat_values avg = stat_average(&delta);
	struct admin_row row;
	admin_row_init(&row);
	admin_row_text(&row, db);
	for (int i = 0; kind != STATS_AVERAGES && i < ST_COUNT; i++)
		admin_row_uint(&row, total.v[i]);
	for (int i = 0; kind != STATS_TOTALS && i < ST_COUNT; i++)
		admin_row_uint(&row, avg.v[i]);
	admin_reply_row(r, &row);
}

/* One row per database that has pools, in the order pools were made. */
static void stats_rows(struct admin_reply *r, enum stats_kind kind)
{
	for (struct list_node *n = pool_list()->next; n != pool_list(); n = n->next) {
		const char *db = pool_at(n)->db_name;
		bool seen = false;
		for (struct list_node *m = pool_list()->next; m != n && !seen; m = m->next)
			seen = strcmp(pool_at(m)->db_name, db) == 0;
		if (!seen)
			stats_row(r, db, kind);
	}
}

static void show_stats(struct admin_reply *r)
{
	admin_reply_columns(r, COLS(stats_cols));
	stats_rows(r, STATS_BOTH);
}

static void show_stats_totals(struct admin_reply *r)
{
	struct admin_col cols[1 + ST_COUNT] = { { "database", ADMIN_TEXT } };
	for (int i = 0; i < ST_COUNT; i++)
		cols[1 + i] = (struct admin_col){ stat_names[i], ADMIN_NUMERIC };
	admin_reply_columns(r, COLS(cols));
	stats_rows(r, STATS_TOTALS);
}

static void show_stats_averages(struct admin_reply *r)
{
	struct admin_col cols[1 + ST_COUNT] = { { "database", ADMIN_TEXT } };
	for (int i = 0; i < ST_COUNT; i++)
		cols[1 + i] = (struct admin_col){ stat_names[i], ADMIN_NUMERIC };
	/* PgBouncer's names: the last three keep an avg_ prefix */
	cols[1 + ST_CLIENT_PARSE].name = "avg_client_parse_count";
	cols[1 + ST_SERVER_PARSE].name = "avg_server_parse_count";
	cols[1 + ST_BIND].name = "avg_bind_count";
	admin_reply_columns(r, COLS(cols));
	stats_rows(r, STATS_AVERAGES);
}

static void show_totals(struct admin_reply *r)
{
	static const char *const names[ST_COUNT] = {
		"server_assignment_count", "xact_count", "query_count", "client_bytes",
		"server_bytes", "xact_time", "query_time", "wait_time", "ps_client_parse_count",
		"ps_server_parse_count", "ps_bind_count",
	};
	static const struct admin_col cols[] = { { "name", ADMIN_TEXT }, { "value", ADMIN_NUMERIC } };
	struct stat_values total, delta;
	stat_collect(NULL, &total, &delta);
	struct stat_values avg = stat_average(&delta);
	admin_reply_columns(r, COLS(cols));
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < ST_COUNT; i++) {
			char name[64];
			struct admin_row row;
			snprintf(name, sizeof(name), "%s_%s", pass ? "avg" : "total", names[i]);
			admin_row_init(&row);
			admin_row_text(&row, name);
			admin_row_uint(&row, pass ? avg.v[i] : total.v[i]);
			admin_reply_row(r, &row);
		}
	}
}

/* ------------------------------------------------------- lists, mem, dns */

static void show_lists(struct admin_reply *r)
{
	static const struct admin_col cols[] = { { "list", ADMIN_TEXT }, { "items", ADMIN_INT4 } };
	int pools = 0, servers = 0;
	for (struct list_node *n = pool_list()->next; n != pool_list(); n = n->next, pools++)
		servers += pool_total_servers(pool_at(n));
	admin_reply_columns(r, COLS(cols));
	reply_name_int(r, "databases", (long long)each_database(NULL));
	reply_name_int(r, "users", (long long)each_user(NULL));
	reply_name_int(r, "peers", (long long)config_current()->n_peers);
	reply_name_int(r, "pools", pools);
	reply_name_int(r, "peer_pools", (long long)config_current()->n_peers);
	reply_name_int(r, "free_clients", 0);   /* clients are freed, not cached */
	reply_name_int(r, "used_clients", pool_total_clients());
	reply_name_int(r, "login_clients", *pool_login_client_count());
	reply_name_int(r, "free_servers", 0);
	reply_name_int(r, "used_servers", servers);
	struct dns_stats ds;
	dns_get_stats(&ds);
	reply_name_int(r, "dns_names", (long long)ds.names);
	reply_name_int(r, "dns_zones", (long long)ds.zones);
	reply_name_int(r, "dns_queries", (long long)ds.pending);
	reply_name_int(r, "dns_pending", (long long)ds.pending);
}

static void mem_row(struct admin_reply *r, const char *name, size_t size, long long used, long long free_n)
{
	struct admin_row row;
	admin_row_init(&row);
	admin_row_text(&row, name);
	admin_row_int(&row, (long long)size);
	admin_row_int(&row, used);
	admin_row_int(&row, free_n);
	admin_row_int(&row, (long long)size * (used + free_n));
	admin_reply_row(r, &row);
}

static void show_mem(struct admin_reply *r)
{
	static const struct admin_col cols[] = {
		{ "name", ADMIN_TEXT }, { "size", ADMIN_INT4 }, { "used", ADMIN_INT4 },
		{ "free", ADMIN_INT4 }, { "memtotal", ADMIN_INT4 },
	};
	int pools = 0, servers = 0;
	for (struct list_node *n = pool_list()->next; n != pool_list(); n = n->next, pools++)
		servers += pool_total_servers(pool_at(n));
	admin_reply_columns(r, COLS(cols));
	mem_row(r, "iobuf", iobuf_default_size(), iobuf_used_count(), iobuf_cached_count());
	mem_row(r, "client", sizeof(struct client), pool_total_clients(), 0);
	mem_row(r, "server", sizeof(struct server), servers, 0);
	mem_row(r, "pool", sizeof(struct pool), pools, 0);
}

static void dns_host_row(const char *host, long long ttl, const char *addrs, void *arg)
{
	struct admin_row row;
	admin_row_init(&row);
	admin_row_text(&row, host);
	admin_row_int(&row, ttl);
	admin_row_text(&row, addrs);
	admin_reply_row(arg, &row);
}

static void show_dns_hosts(struct admin_reply *r)
{
	static const struct admin_col cols[] = {
		{ "hostname", ADMIN_TEXT }, { "ttl", ADMIN_INT8 }, { "addrs", ADMIN_TEXT },
	};
	admin_reply_columns(r, COLS(cols));
	dns_for_each_host(dns_host_row, r);
}

static void dns_zone_row(const char *zone, uint32_t serial, int count, void *arg)
{
	struct admin_row row;
	admin_row_init(&row);
	admin_row_text(&row, zone);
	admin_row_int(&row, (long long)serial);
	admin_row_int(&row, count);
	admin_reply_row(arg, &row);
}

static void show_dns_zones(struct admin_reply *r)
{
	static const struct admin_col cols[] = {
		{ "zonename", ADMIN_TEXT }, { "serial", ADMIN_INT8 }, { "count", ADMIN_INT4 },
	};
	admin_reply_columns(r, COLS(cols));
	dns_for_each_zone(dns_zone_row, r);
}

/* ---------------------------------------------------------------- budget */

/* One server: what it allows (NULL until learned) and what the fleet may ask. */
static void budget_show_row(const struct budget_row *b, void *arg)
{
	struct admin_row row;
	admin_row_init(&row);
	admin_row_text(&row, b->host[0] ? b->host : "(unix socket)");
	admin_row_int(&row, b->port);
	if (b->known) {
		admin_row_int(&row, b->max_connections);
		admin_row_int(&row, b->reserved);
	} else {
		admin_row_text(&row, NULL);
		admin_row_text(&row, NULL);
	}
	admin_row_int(&row, b->this_process_max);
	admin_row_int(&row, b->replicas);
	admin_row_int(&row, b->fleet_max);
	if (b->known)
		admin_row_int(&row, b->headroom);
	else
		admin_row_text(&row, NULL);
	admin_reply_row(arg, &row);
}

static void show_budget(struct admin_reply *r)
{
	static const struct admin_col cols[] = {
		{ "host", ADMIN_TEXT }, { "port", ADMIN_INT4 }, { "max_connections", ADMIN_INT4 },
		{ "reserved", ADMIN_INT4 }, { "this_process_max", ADMIN_INT8 }, { "replicas", ADMIN_INT4 },
		{ "fleet_max", ADMIN_INT8 }, { "headroom", ADMIN_INT8 },
	};
	admin_reply_columns(r, COLS(cols));
	budget_for_each(budget_show_row, r);
}

/* ----------------------------------------------------- config and others */

static void show_config(struct admin_reply *r)
{
	static const struct admin_col cols[] = {
		{ "key", ADMIN_TEXT }, { "value", ADMIN_TEXT }, { "default", ADMIN_TEXT },
		{ "changeable", ADMIN_TEXT },
	};
	const struct config *cfg = config_current();
	admin_reply_columns(r, COLS(cols));
	for (size_t i = 0; i < config_key_count(); i++) {
		const struct config_key_info *k = config_key_at(i);
		char buf[512];
		struct admin_row row;
		admin_row_init(&row);
		admin_row_text(&row, k->name);
		admin_row_text(&row, config_key_value(cfg, i, buf, sizeof(buf)));
		admin_row_text(&row, k->default_value);
		admin_row_text(&row, k->reloadable ? "yes" : "no");
		admin_reply_row(r, &row);
	}
	for (size_t i = 0; i < config_key_count(); i++) {
		const char *next = reload_pending_value(i);
		char buf[512], msg[1200];
		if (!next)
			continue;
		snprintf(msg, sizeof(msg), "%s = \"%s\" is pending: it needs a restart (in force: \"%s\")",
			 config_key_at(i)->name, next, config_key_value(cfg, i, buf, sizeof(buf)));
		admin_reply_notice(r, msg);
	}
}

static void show_fds(struct admin_reply *r)
{
	static const struct admin_col cols[] = {
		{ "fd", ADMIN_INT4 }, { "task", ADMIN_TEXT }, { "user", ADMIN_TEXT },
		{ "database", ADMIN_TEXT }, { "addr", ADMIN_TEXT }, { "port", ADMIN_INT4 },
		{ "cancel", ADMIN_INT8 }, { "link", ADMIN_INT4 }, { "client_encoding", ADMIN_TEXT },
		{ "std_strings", ADMIN_TEXT }, { "datestyle", ADMIN_TEXT }, { "timezone", ADMIN_TEXT },
		{ "password", ADMIN_TEXT }, { "scram_client_key", ADMIN_BYTEA },
		{ "scram_server_key", ADMIN_BYTEA },
	};
	/* The socket hand-over of an online restart (-R) does not exist in
	 * tidepool: nothing to list. */
	admin_reply_columns(r, COLS(cols));
}

static void show_peers(struct admin_reply *r)
{
	static const struct admin_col cols[] = {
		{ "peer_id", ADMIN_INT4 }, { "host", ADMIN_TEXT }, { "port", ADMIN_INT4 },
		{ "pool_size", ADMIN_INT4 },
	};
	const struct config *cfg = config_current();
	admin_reply_columns(r, COLS(cols));
	for (size_t i = 0; i < cfg->n_peers; i++) {
		const struct peer_config *pc = cfg->peers[i];
		struct admin_row row;
		admin_row_init(&row);
		admin_row_int(&row, pc->peer_id);
		admin_row_text(&row, pc->host);
		admin_row_int(&row, pc->port);
		admin_row_int(&row, or_default(pc->pool_size, cfg->default_pool_size));
		admin_reply_row(r, &row);
	}
}

static void show_peer_pools(struct admin_reply *r)
{
	static const struct admin_col cols[] = {
		{ "peer_id", ADMIN_INT4 }, { "cl_active_cancel_req", ADMIN_INT4 },
		{ "cl_waiting_cancel_req", ADMIN_INT4 }, { "sv_active_cancel", ADMIN_INT4 },
		{ "sv_login", ADMIN_INT4 },
	};
	const struct config *cfg = config_current();
	admin_reply_columns(r, COLS(cols));
	for (size_t i = 0; i < cfg->n_peers; i++) {
		struct cancel_peer_stats st;
		struct admin_row row;
		cancel_peer_stats(cfg->peers[i]->peer_id, &st);
		admin_row_init(&row);
		admin_row_int(&row, cfg->peers[i]->peer_id);
		admin_row_int(&row, st.sent);       /* forwarded, the peer has not closed yet */
		admin_row_int(&row, st.queued);     /* waiting for one of the peer's pool_size slots */
		admin_row_int(&row, st.sent);       /* one connection carries each */
		admin_row_int(&row, st.sending);    /* connecting or sending */
		admin_reply_row(r, &row);
	}
}

static void show_state(struct admin_reply *r)
{
	static const struct admin_col cols[] = { { "key", ADMIN_TEXT }, { "value", ADMIN_TEXT } };
	bool paused = lifecycle_paused(), suspended = lifecycle_suspended();
	admin_reply_columns(r, COLS(cols));
	reply_text_pair(r, "active", !paused && !suspended ? "yes" : "no");
	reply_text_pair(r, "paused", paused ? "yes" : "no");
	reply_text_pair(r, "suspended", suspended ? "yes" : "no");
	const struct config_worker *w = config_worker();
	if (w) {   /* workers = N: which one answered, of how many, of which generation */
		char v[48];
		snprintf(v, sizeof(v), "%d of %d (generation %d)", w->id, w->n, w->gen);
		reply_text_pair(r, "worker", v);
	}
}

static void show_version(struct admin_reply *r)
{
	static const struct admin_col cols[] = { { "version", ADMIN_TEXT } };
	struct admin_row row;
	admin_reply_columns(r, COLS(cols));
	admin_row_init(&row);
	admin_row_text(&row, "tidepool " PACKAGE_VERSION);
	admin_reply_row(r, &row);
}

/* Longest query text SHOW PREPARED_STATEMENTS prints. */
#define SHOW_QUERY_MAX 1000

struct prepared_walk {
	struct admin_reply *r;
	const struct pool *p;
};

static void prepared_row(const struct pstmt *st, void *arg)
{
	struct prepared_walk *w = arg;
	struct admin_row row;
	char query[SHOW_QUERY_MAX + 4];
	strlcpy_safe(query, st->query, SHOW_QUERY_MAX + 1);
	if (st->query_len > SHOW_QUERY_MAX)
		strcpy(query + SHOW_QUERY_MAX, "...");
	admin_row_init(&row);
	admin_row_text(&row, w->p->db_name);
	admin_row_text(&row, w->p->user_name);
	admin_row_text(&row, st->server_name);
	admin_row_text(&row, query);
	admin_row_int(&row, st->n_types);
	admin_row_uint(&row, st->parse_count);
	admin_row_uint(&row, st->bind_count);
	admin_row_uint(&row, st->server_prepares);
	admin_reply_row(w->r, &row);
}

static void show_prepared_statements(struct admin_reply *r)
{
	static const struct admin_col cols[] = {
		{ "database", ADMIN_TEXT }, { "user", ADMIN_TEXT }, { "name", ADMIN_TEXT },
		{ "query", ADMIN_TEXT }, { "params", ADMIN_INT4 }, { "parse_count", ADMIN_INT8 },
		{ "use_count", ADMIN_INT8 }, { "server_prepares", ADMIN_INT8 },
	};
	admin_reply_columns(r, COLS(cols));
	for (struct list_node *n = pool_list()->next; n != pool_list(); n = n->next) {
		struct prepared_walk w = { r, pool_at(n) };
		pstmt_registry_walk(&w.p->prepared, prepared_row, &w);
	}
}

static const char admin_help[] =
	"Console usage\n"
	"\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION\n"
	"\tSHOW PEERS|PEER_POOLS\n"
	"\tSHOW FDS|SOCKETS|ACTIVE_SOCKETS|LISTS|MEM|STATE\n"
	"\tSHOW DNS_HOSTS|DNS_ZONES\n"
	"\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS\n"
	"\tSHOW PREPARED_STATEMENTS|BUDGET\n"
	"\tSET key = arg\n"
	"\tRELOAD\n"
	"\tPAUSE [<db>]\n"
	"\tRESUME [<db>]\n"
	"\tDISABLE <db>\n"
	"\tENABLE <db>\n"
	"\tRECONNECT [<db>]\n"
	"\tKILL [<db>]\n"
	"\tKILL_CLIENT <client_id>\n"
	"\tSUSPEND\n"
	"\tSHUTDOWN\n"
	"\tSHUTDOWN WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS\n"
	"\tWAIT_CLOSE [<db>]";

static void show_help(struct admin_reply *r)
{
	admin_reply_notice(r, admin_help);
}

/* ------------------------------------------------------------- dispatch */

/* The fixed answers drivers ask for; as PostgreSQL names the columns. */
static const struct {
	const char *name, *value;
} fake_settings[] = {
	{ "client_encoding", "UTF8" },
	{ "standard_conforming_strings", "on" },
	{ "DateStyle", "ISO" },
	{ "TimeZone", "GMT" },
	{ "default_transaction_isolation", "read committed" },
};

static bool show_fake(struct admin_reply *r, const char *what)
{
	for (size_t i = 0; i < ARRAY_SIZE(fake_settings); i++) {
		if (strcasecmp(what, fake_settings[i].name) != 0)
			continue;
		struct admin_col col = { fake_settings[i].name, ADMIN_TEXT };
		struct admin_row row;
		admin_reply_columns(r, &col, 1);
		admin_row_init(&row);
		admin_row_text(&row, fake_settings[i].value);
		admin_reply_row(r, &row);
		return true;
	}
	return false;
}

static const struct {
	const char *name;
	void (*fn)(struct admin_reply *r);
	bool admin_only;
} show_table[] = {
	{ "HELP", show_help, false },
	{ "CONFIG", show_config, false },
	{ "DATABASES", show_databases, false },
	{ "FDS", show_fds, true },
	{ "LISTS", show_lists, false },
	{ "PEERS", show_peers, false },
	{ "PEER_POOLS", show_peer_pools, false },
	{ "POOLS", show_pools, false },
	{ "SERVERS", show_servers, false },
	{ "CLIENTS", show_clients, false },
	{ "SOCKETS", show_sockets, false },
	{ "ACTIVE_SOCKETS", show_active_sockets, false },
	{ "STATS", show_stats, false },
	{ "STATS_TOTALS", show_stats_totals, false },
	{ "STATS_AVERAGES", show_stats_averages, false },
	{ "USERS", show_users, false },
	{ "VERSION", show_version, false },
	{ "TOTALS", show_totals, false },
	{ "MEM", show_mem, false },
	{ "DNS_HOSTS", show_dns_hosts, false },
	{ "BUDGET", show_budget, false },
	{ "DNS_ZONES", show_dns_zones, false },
	{ "STATE", show_state, false },
	{ "PREPARED_STATEMENTS", show_prepared_statements, false },
};

enum admin_show_result admin_show(struct admin_reply *r, const char *what, bool is_admin)
{
	for (size_t i = 0; i < ARRAY_SIZE(show_table); i++) {
		if (strcasecmp(what, show_table[i].name) != 0)
			continue;
		if (show_table[i].admin_only && !is_admin)
			return ADMIN_SHOW_DENIED;
		show_table[i].fn(r);
		admin_reply_complete(r, "SHOW");
		return ADMIN_SHOW_OK;
	}
	if (!show_fake(r, what))
		return ADMIN_SHOW_UNKNOWN;
	admin_reply_complete(r, "SHOW");
	return ADMIN_SHOW_OK;
}
