/* pool: owns struct pool, the global pool list, the list of clients still
 * logging in, the scheduler and the janitor, and the per-database
 * PAUSE/DISABLE flags the scheduler obeys with lifecycle's global PAUSE and
 * SUSPEND (a paused pool hands out no server and closes servers as they
 * come back).
 *
 * Scheduling: a client that needs a server waits in its pool's CL_WAITING
 * list (FIFO). A server that becomes free goes to the first waiting client,
 * or to the head of SV_IDLE (so the most recently used is reused first). New
 * servers are opened only while every limit allows it. */
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <strings.h>

#include "client.h"
#include "config.h"
#include "crypto.h"
#include "dns.h"
#include "events.h"
#include "lifecycle.h"
#include "log.h"
#include "loop.h"
#include "server.h"

static struct list_node pools = { &pools, &pools };
static struct list_node login_clients = { &login_clients, &login_clients };
static int n_login_clients;
static bool exiting;   /* pool_free_all runs: schedule nothing */
static void (*server_gone_hook)(void);

/* Per-database admin flags (PAUSE db, DISABLE db); entries are never removed
 * while the process runs (a handful at most). */
struct db_flags {
	struct list_node node;
	char *name;
	bool paused, disabled;
};
static struct list_node db_flags_list = { &db_flags_list, &db_flags_list };

static void fail_client(struct client *c, const char *sqlstate, const char *msg)
{
	client_fail(c, sqlstate, "%s", msg);
}

static const struct pool_calls real_calls = {
	.launch = server_launch,
	.link = client_link,
	.close_server = server_close,
	.fail_client = fail_client,
	.finish_login = client_finish_login,
	.run_internal = server_run_internal,
};
static const struct pool_calls *calls = &real_calls;

void pool_set_calls(const struct pool_calls *c)
{
	calls = c ? c : &real_calls;
}

static struct list_node *client_list_for(struct client *c, enum client_state st, int **count)
{
	if (!c->pool || st == CL_LOGIN) {
		*count = &n_login_clients;
		return &login_clients;
	}
	*count = &c->pool->n_clients[st];
	return &c->pool->clients[st];
}

void pool_client_change_state(struct client *c, enum client_state st)
{
	int *count;
	if (c->state == CL_WAITING && c->pool->wait_notified_last == &c->node)
		c->pool->wait_notified_last = c->node.prev;
	if (c->state != CL_CLOSED) {
		client_list_for(c, c->state, &count);
		list_del(&c->node);
		(*count)--;
	}
	c->state = st;
	c->state_since = loop_now();
	if (st != CL_CLOSED) {
		struct list_node *l = client_list_for(c, st, &count);
		list_add_tail(l, &c->node);
		(*count)++;
	}
}

void pool_server_change_state(struct server *s, enum server_state st)
{
	struct pool *p = s->pool;
	if (s->state != SV_CLOSED) {
		list_del(&s->node);
		p->n_servers[s->state]--;
	}
	s->state = st;
	s->state_since = loop_now();
	if (st == SV_CLOSED)
		return;
	/* Idle servers are taken from the head: most recently used first, or
	 * with server_round_robin the one idle longest. */
	if (st == SV_IDLE && !p->round_robin)
		list_add_head(&p->servers[st], &s->node);
	else
		list_add_tail(&p->servers[st], &s->node);
	p->n_servers[st]++;
}

struct list_node *pool_list(void)
{
	return &pools;
}

struct list_node *pool_login_clients(void)
{
	return &login_clients;
}

int *pool_login_client_count(void)
{
	return &n_login_clients;
}

static void set_str(char **dst, const char *src)
{
	free(*dst);
	*dst = src && *src ? xstrdup(src) : NULL;
}

static int first_set(int a, int b, int c)
{
	return a >= 0 ? a : b >= 0 ? b : c;
}

static void hosts_clear(struct pool *p)
{
	for (size_t i = 0; i < p->n_hosts; i++)
		free(p->hosts[i]);
	free(p->hosts);
	free(p->host_down_until);
	p->hosts = NULL;
	p->host_down_until = NULL;
	p->n_hosts = p->host_next = 0;
}

/* Splits server_host at commas (spaces around names are dropped). */
static void hosts_load(struct pool *p)
{
	hosts_clear(p);
	const char *h = p->server_host;
	if (!h)
		return;
	size_t cap = 1;
	for (const char *c = h; *c; c++)
		cap += *c == ',';
	p->hosts = xcalloc(cap, sizeof(*p->hosts));
	p->host_down_until = xcalloc(cap, sizeof(*p->host_down_until));
	while (*h) {
		size_t n = strcspn(h, ",");
		const char *b = h, *e = h + n;
		while (b < e && (*b == ' ' || *b == '\t'))
			b++;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e > b)
			p->hosts[p->n_hosts++] = xstrndup(b, (size_t)(e - b));
		h += n + (h[n] == ',');
	}
}

static void fail_waiters(struct pool *p, const char *sqlstate, const char *msg);

static usec_t first_usec(usec_t a, usec_t b, usec_t c)
{
	return a >= 0 ? a : b >= 0 ? b : c;
}

/* The client-side timeouts and client counts of the pool's user and database. */
static void pool_load_client_limits(struct pool *p, const struct config *cfg, const struct db_config *db,
				    const struct user_config *u)
{
	p->query_timeout = first_usec(u ? u->query_timeout : -1, -1, cfg->query_timeout);
	p->query_wait_timeout = first_usec(u ? u->query_wait_timeout : -1, db->query_wait_timeout,
					   cfg->query_wait_timeout);
	p->idle_transaction_timeout = first_usec(u ? u->idle_transaction_timeout : -1, -1,
						 cfg->idle_transaction_timeout);
	p->transaction_timeout = first_usec(u ? u->transaction_timeout : -1, -1, cfg->transaction_timeout);
	p->client_idle_timeout = first_usec(u ? u->client_idle_timeout : -1, -1, cfg->client_idle_timeout);
	p->max_db_client_connections = first_set(db->max_db_client_connections,
						 cfg->max_db_client_connections, 0);
	p->max_user_client_connections = first_set(u ? u->max_user_client_connections : -1,
						   cfg->max_user_client_connections, 0);
}

/* Resolves the pool's settings from a snapshot: user > database > global. */
static enum session_state_policy pool_session_policy(const struct config *cfg, const struct db_config *db,
						     const struct user_config *u);

static void pool_load(struct pool *p, const struct config *cfg, const struct db_config *db)
{
	const struct user_config *u = config_find_user(cfg, p->user_name);
	const char *host = db->host && db->host[0] ? db->host : NULL;
	bool same_hosts = host ? p->server_host && strcmp(p->server_host, host) == 0 : !p->server_host;
	set_str(&p->server_host, host);
	if (!same_hosts)
		hosts_load(p);
	p->host_round_robin = !db->load_balance_hosts || strcmp(db->load_balance_hosts, "disable") != 0;
	p->server_port = db->port > 0 ? db->port : 5432;
	set_str(&p->server_dbname, db->dbname ? db->dbname : p->db_name);
	set_str(&p->server_user, db->user ? db->user : p->user_name);
	const char *pw = db->password;
	if (!pw) {
		const struct auth_entry *e = config_find_auth(cfg, p->server_user);
		pw = e ? e->secret : NULL;
	}
	set_str(&p->server_password, pw);
	set_str(&p->connect_query, db->connect_query);
	set_str(&p->startup_encoding, db->client_encoding);
	set_str(&p->startup_datestyle, db->datestyle);
	set_str(&p->startup_timezone, db->timezone);
	set_str(&p->startup_appname, db->application_name);
	/* The server side follows the user the servers log in as (a forced
	 * user's [users] entry, not the login user's: as PgBouncer); the client
	 * limits below follow the login user. */
	const struct user_config *su = db->user ? config_find_user(cfg, db->user) : u;
	enum pool_mode mode = su && su->pool_mode != POOL_MODE_UNSET ? su->pool_mode
			    : db->pool_mode != POOL_MODE_UNSET ? db->pool_mode : cfg->pool_mode;
	p->mode = mode;
	p->pool_size = first_set(su ? su->pool_size : -1, db->pool_size, cfg->default_pool_size);
	p->min_pool_size = first_set(db->min_pool_size, cfg->min_pool_size, 0);
	p->reserve_pool_size = first_set(su ? su->reserve_pool_size : -1, db->reserve_pool_size,
					 cfg->reserve_pool_size);
	p->max_db_connections = first_set(db->max_db_connections, cfg->max_db_connections, 0);
	p->max_user_connections = first_set(su ? su->max_user_connections : -1, cfg->max_user_connections, 0);
	p->server_lifetime = db->server_lifetime >= 0 ? db->server_lifetime : cfg->server_lifetime;
	pool_load_client_limits(p, cfg, db, u);
	if (p->replication != REPL_NONE) {   /* one server per client, never shared */
		p->mode = POOL_MODE_SESSION;
		p->min_pool_size = 0;
	}
	p->round_robin = cfg->server_round_robin;
	p->session_state = pool_session_policy(cfg, db, u);
}

/* session_state of the user, else the database, else the main section,
 * where pin_session_state = 0 turns the default pin into allow. */
static enum session_state_policy pool_session_policy(const struct config *cfg, const struct db_config *db,
						     const struct user_config *u)
{
	const char *v = u && u->session_state ? u->session_state : db->session_state;
	if (!v) {
		v = cfg->session_state;
		if (strcmp(v, "pin") == 0 && !cfg->pin_session_state)
			v = "allow";
	}
	return strcmp(v, "error") == 0 ? SESSION_STATE_ERROR
	     : strcmp(v, "allow") == 0 ? SESSION_STATE_ALLOW : SESSION_STATE_PIN;
}

static const struct db_config *find_db(const struct config *cfg, const char *name)
{
	return config_find_db_or_fallback(cfg, name);
}

static struct pool *pool_new(const char *db, const char *user)
{
	struct pool *p = xcalloc(1, sizeof(*p));
	p->db_name = xstrdup(db);
	p->user_name = xstrdup(user);
	for (int i = 0; i < CL_STATE_COUNT; i++)
		list_init(&p->clients[i]);
	p->wait_notified_last = &p->clients[CL_WAITING];
	for (int i = 0; i < SV_STATE_COUNT; i++)
		list_init(&p->servers[i]);
	list_init(&p->waiters);
	p->paused = lifecycle_paused() || pool_db_paused(db);
	p->disabled = pool_db_disabled(db);
	return p;
}

struct pool *pool_get(const struct config *cfg, const char *db, const char *user, int replication,
		      const char **sqlstate, const char **why)
{
	struct list_node *n;
	for (n = pools.next; n != &pools; n = n->next) {
		struct pool *p = list_entry(n, struct pool, node);
		if (!p->stale && (int)p->replication == replication && strcmp(p->db_name, db) == 0 &&
		    strcmp(p->user_name, user) == 0)
			return p;
	}
	const struct db_config *dbc = find_db(cfg, db);
	if (!dbc) {
		static char msg[200];
		snprintf(msg, sizeof(msg), "no such database: %s", db);
		*sqlstate = "3D000";
		*why = msg;
		return NULL;
	}
	struct pool *p = pool_new(db, user);
	p->replication = (enum pool_replication)replication;
	pool_load(p, cfg, dbc);
	list_add_tail(&pools, &p->node);
	log_debug("new pool %s/%s (mode %s, size %d)", db, user, config_pool_mode_name(p->mode), p->pool_size);
	return p;
}

/* Console clients of user: the console's one pool holds every user's. */
static int console_clients_of(const struct pool *p, const char *user)
{
	static const enum client_state states[] = { CL_WAIT_LOGIN, CL_IDLE, CL_WAITING, CL_ACTIVE };
	int n = 0;
	for (size_t i = 0; i < ARRAY_SIZE(states); i++) {
		const struct list_node *m;
		for (m = p->clients[states[i]].next; m != &p->clients[states[i]]; m = m->next)
			n += !user || strcmp(list_entry(m, struct client, node)->user, user) == 0;
	}
	return n;
}

int pool_count_clients(const char *db, const char *user)
{
	int n = 0;
	struct list_node *l;
	for (l = pools.next; l != &pools; l = l->next) {
		struct pool *p = list_entry(l, struct pool, node);
		if (db && strcmp(p->db_name, db) != 0)
			continue;
		if (p->console) {
			n += console_clients_of(p, user);
			continue;
		}
		if (user && strcmp(p->user_name, user) != 0)
			continue;
		n += p->n_clients[CL_WAIT_LOGIN] + p->n_clients[CL_IDLE] + p->n_clients[CL_WAITING] +
		     p->n_clients[CL_ACTIVE];
	}
	return n;
}

struct pool *pool_get_console(void)
{
	struct list_node *n;
	for (n = pools.next; n != &pools; n = n->next) {
		struct pool *p = list_entry(n, struct pool, node);
		if (p->console)
			return p;
	}
	struct pool *p = pool_new("pgbouncer", "pgbouncer");
	p->console = true;
	p->paused = p->disabled = false;
	p->mode = POOL_MODE_STATEMENT;
	p->have_welcome = true;   /* the console answers logins itself */
	list_add_tail(&pools, &p->node);
	return p;
}

/* What a server connection of p is made of: where it goes, as whom, and
 * what it is told at start. A change closes the pool's servers. */
static char *pool_target(const struct pool *p)
{
#define S(x) ((x) ? (x) : "")
	return xasprintf("%s\x1f%d\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s", S(p->server_host),
			 p->server_port, S(p->server_dbname), S(p->server_user), S(p->server_password),
			 S(p->connect_query), S(p->startup_encoding), S(p->startup_datestyle),
			 S(p->startup_timezone), S(p->startup_appname));
#undef S
}

/* Every server of p is closed at its next release (idle ones by the
 * scheduler and the janitor). */
static void pool_close_at_release(struct pool *p)
{
	for (int st = 0; st < SV_STATE_COUNT; st++) {
		struct list_node *m;
		for (m = p->servers[st].next; m != &p->servers[st]; m = m->next)
			list_entry(m, struct server, node)->close_needed = true;
	}
}

void pool_close_all_at_release(const char *why)
{
	struct list_node *n;
	for (n = pools.next; n != &pools; n = n->next) {
		struct pool *p = list_entry(n, struct pool, node);
		if (p->console || pool_total_servers(p) == 0)
			continue;
		log_info("pool %s/%s: servers close at their next release: %s", p->db_name, p->user_name, why);
		pool_close_at_release(p);
		pool_kick(p);
	}
}

void pool_apply_config(const struct config *cfg)
{
	struct list_node *n;
	for (n = pools.next; n != &pools; n = n->next) {
		struct pool *p = list_entry(n, struct pool, node);
		if (p->console)
			continue;
		const struct db_config *dbc = find_db(cfg, p->db_name);
		if (!dbc) {
			p->stale = true;
			fail_waiters(p, "08P01", "database configuration changed");
			continue;
		}
		/* the new settings may cure a failing login: try at once */
		p->last_connect_failure = 0;
		char *old_target = pool_target(p);
		pool_load(p, cfg, dbc);
		char *new_target = pool_target(p);
		if (strcmp(old_target, new_target) != 0)
			pool_close_at_release(p);   /* servers of the old target */
		free(old_target);
		free(new_target);
		pool_server_gone(p);   /* a bigger pool may serve waiting clients now */
	}
}

int pool_total_servers(const struct pool *p)
{
	int n = 0;
	for (int i = 0; i < SV_STATE_COUNT; i++)
		if (i != SV_CLOSED)
			n += p->n_servers[i];
	return n;
}

int pool_total_clients(void)
{
	int n = n_login_clients;
	struct list_node *l;
	for (l = pools.next; l != &pools; l = l->next) {
		struct pool *p = list_entry(l, struct pool, node);
		for (int i = 0; i < CL_STATE_COUNT; i++)
			if (i != CL_CLOSED && i != CL_LOGIN)
				n += p->n_clients[i];
	}
	return n;
}

/* Servers across every pool matching db (and user, if given). */
static int count_servers(const char *db, const char *user)
{
	int n = 0;
	struct list_node *l;
	for (l = pools.next; l != &pools; l = l->next) {
		struct pool *p = list_entry(l, struct pool, node);
		if (db && strcmp(p->db_name, db) != 0)
			continue;
		if (user && strcmp(p->user_name, user) != 0)
			continue;
		n += pool_total_servers(p);
	}
	return n;
}

enum launch_limit {
	LAUNCH_OK,
	LAUNCH_POOL_FULL,   /* pool_size (+ reserve) reached */
	LAUNCH_DB_FULL,     /* max_db_connections reached across the database's pools */
	LAUNCH_USER_FULL,   /* max_user_connections reached across the user's pools */
};

/* May the pool open one more server now, and if not, which limit says no? */
static enum launch_limit pool_may_launch(struct pool *p)
{
	int total = pool_total_servers(p);
	int limit = p->pool_size;
	if (p->reserve_pool_size > 0 && p->n_clients[CL_WAITING] > 0) {
		struct client *first = list_entry(list_first(&p->clients[CL_WAITING]), struct client, node);
		if (loop_now() - first->state_since >= config_current()->reserve_pool_timeout)
			limit += p->reserve_pool_size;
	}
	if (limit > 0 && total >= limit)
		return LAUNCH_POOL_FULL;
	if (p->max_db_connections > 0 && count_servers(p->db_name, NULL) >= p->max_db_connections)
		return LAUNCH_DB_FULL;
	if (p->max_user_connections > 0 && count_servers(NULL, p->user_name) >= p->max_user_connections)
		return LAUNCH_USER_FULL;
	return LAUNCH_OK;
}

/* max_db_connections or max_user_connections is reached and p has clients
 * waiting: close the longest-idle server of another pool of the same
 * database (or user) to make room, as PgBouncer does. False if there is
 * none. */
static bool evict_idle_server(struct pool *p, const char *db, const char *user)
{
	struct server *victim = NULL;
	struct list_node *l;
	for (l = pools.next; l != &pools; l = l->next) {
		struct pool *o = list_entry(l, struct pool, node);
		if (o == p || o->n_servers[SV_IDLE] == 0 || (db && strcmp(o->db_name, db) != 0) ||
		    (user && strcmp(o->user_name, user) != 0))
			continue;
		/* LIFO idle list: the tail has been idle longest */
		struct server *s = list_entry(o->round_robin ? o->servers[SV_IDLE].next : o->servers[SV_IDLE].prev,
					      struct server, node);
		if (!victim || s->state_since < victim->state_since)
			victim = s;
	}
	if (!victim)
		return false;
	calls->close_server(victim, db ? "evicted for another pool: max_db_connections reached"
				: "evicted for another pool: max_user_connections reached");
	return true;
}

/* Is a login in progress, or must we wait out server_login_retry? */
static bool pool_retry_wait(struct pool *p)
{
	if (!p->last_connect_failure)
		return false;
	return loop_now() - p->last_connect_failure < config_current()->server_login_retry;
}

/* Servers a waiting client may still get: connected, and not marked for
 * closing (after RECONNECT, say). */
static int usable_servers(struct pool *p)
{
	int n = 0;
	for (int st = SV_IDLE; st < SV_CLOSED; st++) {
		struct list_node *m;
		for (m = p->servers[st].next; m != &p->servers[st]; m = m->next)
			n += !list_entry(m, struct server, node)->close_needed;
	}
	return n;
}

/* Every client and pooler request waiting for a server of p. */
static void fail_all_waiting(struct pool *p, const char *sqlstate, const char *msg)
{
	fail_waiters(p, sqlstate, msg);
	struct list_node *n, *tmp;
	list_for_each_safe(n, tmp, &p->clients[CL_WAITING])
		calls->fail_client(list_entry(n, struct client, node), sqlstate, msg);
	if (p->have_welcome)
		return;
	list_for_each_safe(n, tmp, &p->clients[CL_WAIT_LOGIN])
		calls->fail_client(list_entry(n, struct client, node), sqlstate, msg);
}

/* Within server_login_retry of a login that PostgreSQL refused, with no
 * usable server: clients that need one get that error now (PgBouncer's
 * fast fail) rather than waiting out the retry. When PostgreSQL could not
 * be reached they wait for the retry instead (query_wait_timeout). */
static void fail_login_waiters(struct pool *p)
{
	if (!p->last_error || usable_servers(p) > 0)
		return;
	if (!p->last_failure_refused) {
		fail_waiters(p, p->last_sqlstate, p->last_error);   /* auth_query lookups */
		return;
	}
	char msg[1100];
	snprintf(msg, sizeof(msg), "server login has been failing, cached error: %s (server_login_retry)",
		 p->last_error);
	fail_all_waiting(p, p->last_sqlstate, msg);
}

/* Opens one server for p, on the host pool_pick_host() chooses; a host
 * that refuses is skipped for the next one of a list. False when none
 * could be started (or a DNS lookup must answer first). */
bool pool_launch(struct pool *p)
{
	size_t tries = p->n_hosts > 1 ? p->n_hosts : 1;
	for (size_t t = 0; t < tries; t++) {
		char msg[400];
		int idx = pool_pick_host(p);
		switch (calls->launch(p, idx, msg, sizeof(msg))) {
		case SERVER_LAUNCH_STARTED:
			return true;
		case SERVER_LAUNCH_PENDING:
			return false;
		case SERVER_LAUNCH_FAILED:
			if (!pool_host_failed(p, idx, false, "08006", msg))
				return false;
			break;
		case SERVER_LAUNCH_UNRESOLVED:
			if (!pool_host_failed(p, idx, true, "08006", msg))
				return false;
			break;
		}
	}
	return false;
}

/* Opens servers for waiting clients while limits allow. */
static void pool_launch_for_waiters(struct pool *p)
{
	if (p->console || p->paused || lifecycle_suspended())
		return;
	if (pool_retry_wait(p)) {
		fail_login_waiters(p);
		return;
	}
	int want = p->n_clients[CL_WAITING] + p->n_waiters +
		   (p->n_clients[CL_WAIT_LOGIN] && !p->have_welcome ? 1 : 0);
	int starting = p->n_servers[SV_CONNECTING] + p->n_servers[SV_LOGIN];
	while (starting < want && !pool_retry_wait(p)) {
		enum launch_limit why = pool_may_launch(p);
		if (why == LAUNCH_POOL_FULL ||
		    (why == LAUNCH_DB_FULL && !evict_idle_server(p, p->db_name, NULL)) ||
		    (why == LAUNCH_USER_FULL && !evict_idle_server(p, NULL, p->user_name)))
			return;
		if (why != LAUNCH_OK)
			continue;   /* room was made: check every limit again */
		if (!pool_launch(p))
			return;
		starting++;
	}
}

static bool server_needs_check(const struct server *s)
{
	const struct config *cfg = config_current();
	return cfg->server_check_query[0] && s->pool->replication == REPL_NONE &&
	       loop_now() - s->state_since > cfg->server_check_delay;
}

static void check_done(struct server *s, bool ok)
{
	if (!ok) {
		calls->close_server(s, "server check query failed");
		return;
	}
	pool_server_ready(s->pool, s);
}

/* Pairs the first waiting client with s: both become active, then the
 * client and the server start forwarding (client_link). */
static void pool_link(struct pool *p, struct client *c, struct server *s)
{
	struct stats_counters *st = &p->stats;
	usec_t waited = loop_now() - c->state_since;
	st->server_assignment_count++;
	st->wait_time += waited;
	stats_observe(&st->wait_hist, waited);
	pool_client_change_state(c, CL_ACTIVE);
	pool_server_change_state(s, SV_ACTIVE);
	calls->link(c, s);
}

/* Gives idle servers to waiting clients, then opens more if needed. */
static void pool_schedule(struct pool *p)
{
	if (exiting || p->console || p->paused || lifecycle_suspended())
		return;
	while (p->n_waiters > 0 && p->n_servers[SV_IDLE] > 0) {
		struct server *s = list_entry(list_first(&p->servers[SV_IDLE]), struct server, node);
		struct pool_waiter *w = list_entry(list_first(&p->waiters), struct pool_waiter, node);
		list_del(&w->node);
		p->n_waiters--;
		pool_server_change_state(s, SV_TESTED);
		w->got_server(w, s);
	}
	while (p->n_clients[CL_WAITING] > 0 && p->n_servers[SV_IDLE] > 0) {
		struct server *s = list_entry(list_first(&p->servers[SV_IDLE]), struct server, node);
		if (s->close_needed) {
			calls->close_server(s, "server marked for closing");
			continue;
		}
		if (server_needs_check(s)) {
			pool_server_change_state(s, SV_TESTED);
			const char *q = config_current()->server_check_query;
			/* "<empty>" asks for an empty query: the cheapest round trip. */
			calls->run_internal(s, strcmp(q, "<empty>") == 0 ? "" : q, false, check_done);
			continue;
		}
		struct client *c = list_entry(list_first(&p->clients[CL_WAITING]), struct client, node);
		pool_link(p, c, s);
	}
	if (p->n_clients[CL_WAITING] > 0 || p->n_waiters > 0 ||
	    (p->n_clients[CL_WAIT_LOGIN] > 0 && !p->have_welcome))
		pool_launch_for_waiters(p);
}

void pool_wait_for_server(struct pool *p, struct pool_waiter *w)
{
	/* Within server_login_retry of a failed login and nothing to use:
	 * say why now instead of leaving the waiter (a login's auth_query,
	 * bound by client_login_timeout) hanging until the retry. */
	if (pool_retry_wait(p) && p->last_error && usable_servers(p) == 0) {
		w->failed(w, p->last_sqlstate, p->last_error);
		return;
	}
	list_add_tail(&p->waiters, &w->node);
	p->n_waiters++;
	pool_schedule(p);
}

void pool_cancel_wait(struct pool *p, struct pool_waiter *w)
{
	list_del(&w->node);
	p->n_waiters--;
}


static void fail_waiters(struct pool *p, const char *sqlstate, const char *msg)
{
	while (!list_empty(&p->waiters)) {
		struct pool_waiter *w = list_entry(list_first(&p->waiters), struct pool_waiter, node);
		list_del(&w->node);
		p->n_waiters--;
		w->failed(w, sqlstate, msg);
	}
}

void pool_request_server(struct pool *p, struct client *c)
{
	pool_client_change_state(c, CL_WAITING);
	pool_schedule(p);
}

static bool server_expired(const struct server *s)
{
	usec_t life = s->pool->server_lifetime;
	return s->close_needed || (life > 0 && loop_now() - s->connect_time > life);
}

void pool_server_ready(struct pool *p, struct server *s)
{
	if (server_expired(s) || p->stale || p->paused) {
		calls->close_server(s, p->paused ? "database paused" : s->close_needed ? "server marked for closing"
			     : "server_lifetime reached");
		return;
	}
	if (s->cancels_in_flight > 0) {
		/* A cancel forwarded for its last client may not have reached the
		 * backend yet; handed out now, it could cancel the next client's
		 * query. cancel.c calls back here once PostgreSQL has taken it. */
		pool_server_change_state(s, SV_BEING_CANCELED);
		return;
	}
	pool_server_change_state(s, SV_IDLE);
	pool_schedule(p);
}

void pool_server_gone(struct pool *p)
{
	if (server_gone_hook)
		server_gone_hook();
	pool_schedule(p);
}

static void welcome_clear(struct pool *p)
{
	for (size_t i = 0; i < p->n_welcome; i++) {
		free(p->welcome[i].name);
		free(p->welcome[i].value);
	}
	free(p->welcome);
	p->welcome = NULL;
	p->n_welcome = 0;
}

void pool_set_welcome(struct pool *p, const struct pool_param *params, size_t n)
{
	welcome_clear(p);
	p->welcome = xcalloc(n ? n : 1, sizeof(*p->welcome));
	for (size_t i = 0; i < n; i++) {
		p->welcome[i].name = xstrdup(params[i].name);
		p->welcome[i].value = xstrdup(params[i].value);
	}
	p->n_welcome = n;
	p->have_welcome = true;
	pool_welcome_ready(p);
}

void pool_welcome_ready(struct pool *p)
{
	if (!p->have_welcome) {
		pool_launch_for_waiters(p);
		return;
	}
	struct list_node *n, *tmp;
	list_for_each_safe(n, tmp, &p->clients[CL_WAIT_LOGIN])
		calls->finish_login(list_entry(n, struct client, node));
}

void pool_server_login_failed(struct pool *p, bool refused, const char *sqlstate, const char *msg)
{
	p->stats.server_login_failures++;
	p->last_connect_failure = loop_now();
	free(p->last_error);
	p->last_error = xstrdup(msg);
	strlcpy_safe(p->last_sqlstate, sqlstate, sizeof(p->last_sqlstate));
	p->last_failure_refused = refused;
	/* Refused by PostgreSQL, with no usable server left: every client
	 * waiting for one gets PostgreSQL's error now (PgBouncer's
	 * kill_pool_logins). Unreachable: they wait for the next attempt. */
	if (usable_servers(p) > 0)
		return;
	if (refused)
		fail_all_waiting(p, sqlstate, msg);
	else
		fail_waiters(p, sqlstate, msg);   /* auth_query lookups: the login waits no longer */
}

bool pool_all_idle(void)
{
	struct list_node *l;
	for (l = pools.next; l != &pools; l = l->next) {
		struct pool *p = list_entry(l, struct pool, node);
		if (p->n_clients[CL_ACTIVE] || p->n_clients[CL_WAITING] || p->n_clients[CL_WAIT_LOGIN])
			return false;
	}
	return true;
}

void pool_close_idle_servers(void)
{
	struct list_node *l;
	for (l = pools.next; l != &pools; l = l->next) {
		struct pool *p = list_entry(l, struct pool, node);
		while (!list_empty(&p->servers[SV_IDLE]))
			calls->close_server(list_entry(list_first(&p->servers[SV_IDLE]), struct server, node),
					    "shutting down");
	}
}

void pool_kick(struct pool *p)
{
	pool_schedule(p);
}

int pool_pick_host(struct pool *p)
{
	if (p->n_hosts == 0)
		return -1;
	if (p->n_hosts == 1)
		return 0;
	usec_t now = loop_now();
	size_t pick = p->host_next % p->n_hosts, soonest = pick;
	bool found = false;
	for (size_t k = 0; k < p->n_hosts && !found; k++) {
		size_t i = (p->host_next + k) % p->n_hosts;
		if (p->host_down_until[i] <= now)
			pick = i, found = true;
		else if (p->host_down_until[i] < p->host_down_until[soonest])
			soonest = i;
	}
	if (!found)
		pick = soonest;   /* every host failed lately: the one that failed first */
	p->host_next = p->host_round_robin ? pick + 1 : pick;
	return (int)pick;
}

bool pool_host_failed(struct pool *p, int idx, bool refused, const char *sqlstate, const char *msg)
{
	if (p->n_hosts > 1 && idx >= 0 && (size_t)idx < p->n_hosts) {
		usec_t now = loop_now(), retry = config_current()->server_login_retry;
		p->host_down_until[idx] = now + (retry > 0 ? retry : USEC_PER_SEC);
		if (!p->host_round_robin && p->host_next == (size_t)idx)
			p->host_next = (size_t)idx + 1;
		bool other = false;
		for (size_t i = 0; i < p->n_hosts; i++)
			other = other || p->host_down_until[i] <= now;
		if (other) {
			log_warning("%s/%s: host %s skipped for %llds: %s", p->db_name, p->user_name,
				    p->hosts[idx], (long long)(retry / USEC_PER_SEC), msg);
			p->stats.server_login_failures++;
			return true;
		}
	}
	pool_server_login_failed(p, refused, sqlstate, msg);
	return false;
}

/* A host name (not an IP literal, not a socket directory) that DNS answers for. */
static bool host_is_name(const char *h)
{
	uint8_t buf[sizeof(struct in6_addr)];
	return h[0] != '/' && inet_pton(AF_INET, h, buf) != 1 && inet_pton(AF_INET6, h, buf) != 1;
}

void pool_refresh_dns(struct pool *p)
{
	if (p->console || p->stale || pool_total_servers(p) == 0)
		return;
	for (size_t i = 0; i < p->n_hosts; i++)
		if (host_is_name(p->hosts[i]))
			dns_refresh(p->hosts[i]);
}

/* Marks p's servers on hosts[idx] whose address left host's answer. */
static bool mark_moved(struct pool *p, size_t idx, const char *host)
{
	bool any = false;
	for (int st = 0; st < SV_STATE_COUNT; st++) {
		for (struct list_node *m = p->servers[st].next; st != SV_CLOSED && m != &p->servers[st]; m = m->next) {
			struct server *s = list_entry(m, struct server, node);
			if (s->host_idx != (int)idx || s->close_needed || dns_has_addr(host, &s->connect_addr))
				continue;
			s->close_needed = true;
			any = true;
			server_log(LOG_LVL_INFO, s, "address left the DNS answer for %s: closing it when released", host);
		}
	}
	return any;
}

static struct server *first_marked_idle(struct pool *p)
{
	for (struct list_node *m = p->servers[SV_IDLE].next; m != &p->servers[SV_IDLE]; m = m->next)
		if (list_entry(m, struct server, node)->close_needed)
			return list_entry(m, struct server, node);
	return NULL;
}

void pool_dns_changed(const char *host)
{
	struct list_node *n;
	for (n = pools.next; n != &pools; n = n->next) {
		struct pool *p = list_entry(n, struct pool, node);
		bool any = false;
		for (size_t i = 0; i < p->n_hosts && !p->console; i++)
			if (strcasecmp(p->hosts[i], host) == 0)
				any = mark_moved(p, i, host) || any;
		if (!any)
			continue;
		/* Closing one may hand others to waiting clients: look again each time. */
		struct server *s;
		while ((s = first_marked_idle(p)))
			calls->close_server(s, "its address left the DNS answer");
		pool_schedule(p);
	}
}

static struct db_flags *db_flags_find(const char *db, bool create)
{
	struct list_node *n;
	for (n = db_flags_list.next; n != &db_flags_list; n = n->next) {
		struct db_flags *f = list_entry(n, struct db_flags, node);
		if (strcmp(f->name, db) == 0)
			return f;
	}
	if (!create)
		return NULL;
	struct db_flags *f = xcalloc(1, sizeof(*f));
	f->name = xstrdup(db);
	list_add_tail(&db_flags_list, &f->node);
	return f;
}

bool pool_db_paused(const char *db)
{
	const struct db_flags *f = db_flags_find(db, false);
	return f && f->paused;
}

bool pool_db_disabled(const char *db)
{
	const struct db_flags *f = db_flags_find(db, false);
	return f && f->disabled;
}

/* Re-derives every pool's flags; pools that may work again are kicked. */
static void pool_refresh_flags(void)
{
	struct list_node *n;
	for (n = pools.next; n != &pools; n = n->next) {
		struct pool *p = list_entry(n, struct pool, node);
		if (p->console)
			continue;
		bool was = p->paused;
		p->paused = lifecycle_paused() || pool_db_paused(p->db_name);
		p->disabled = pool_db_disabled(p->db_name);
		if (p->paused)
			pool_close_idle(p, "database paused");
		else if (was)
			pool_schedule(p);
	}
}

bool pool_any_paused(void)
{
	struct list_node *n;
	for (n = db_flags_list.next; n != &db_flags_list; n = n->next)
		if (list_entry(n, struct db_flags, node)->paused)
			return true;
	return lifecycle_paused();
}

void pool_set_paused(const char *db, bool on)
{
	db_flags_find(db, true)->paused = on;
	pool_refresh_flags();
}

void pool_global_pause_changed(bool on)
{
	struct list_node *n;
	for (n = db_flags_list.next; !on && n != &db_flags_list; n = n->next)
		list_entry(n, struct db_flags, node)->paused = false;
	pool_refresh_flags();
}

void pool_set_disabled(const char *db, bool on)
{
	db_flags_find(db, true)->disabled = on;
	pool_refresh_flags();
}

void pool_suspend_changed(bool on)
{
	if (on)
		return;
	struct list_node *n;
	for (n = pools.next; n != &pools; n = n->next)
		pool_schedule(list_entry(n, struct pool, node));
}

void pool_close_idle(struct pool *p, const char *reason)
{
	while (!list_empty(&p->servers[SV_IDLE]))
		calls->close_server(list_entry(list_first(&p->servers[SV_IDLE]), struct server, node), reason);
}

void pool_set_server_gone_hook(void (*fn)(void))
{
	server_gone_hook = fn;
}

static void pool_free(struct pool *p)
{
	welcome_clear(p);
	pstmt_registry_free(&p->prepared);
	hosts_clear(p);
	free(p->db_name);
	free(p->user_name);
	free(p->server_host);
	free(p->server_dbname);
	free(p->server_user);
	free(p->server_password);
	free(p->connect_query);
	free(p->startup_encoding);
	free(p->startup_datestyle);
	free(p->startup_timezone);
	free(p->startup_appname);
	free(p->last_error);
	if (p->looked_up_secret)
		crypto_wipe(p->looked_up_secret, strlen(p->looked_up_secret));
	free(p->looked_up_secret);
	crypto_wipe(p->scram_client_key, sizeof(p->scram_client_key));
	free(p);
}

void pool_free_all(void)
{
	struct list_node *n, *tmp;
	exiting = true;
	list_for_each_safe(n, tmp, &login_clients)
		client_close(list_entry(n, struct client, node), "exiting");
	while (!list_empty(&db_flags_list)) {
		struct db_flags *f = list_entry(list_first(&db_flags_list), struct db_flags, node);
		list_del(&f->node);
		free(f->name);
		free(f);
	}
	while (!list_empty(&pools)) {
		struct pool *p = list_entry(list_first(&pools), struct pool, node);
		fail_waiters(p, "57P01", "tidepool is exiting");
		for (int st = 0; st < CL_STATE_COUNT; st++)
			while (!list_empty(&p->clients[st]))
				client_close(list_entry(list_first(&p->clients[st]), struct client, node), "exiting");
		for (int st = 0; st < SV_STATE_COUNT; st++)
			while (!list_empty(&p->servers[st]))
				calls->close_server(list_entry(list_first(&p->servers[st]), struct server, node), "exiting");
		list_del(&p->node);
		pool_free(p);
	}
}

/* ------------------------------------------------ events from layer 4 */

static void on_client_accepted(struct client *c)
{
	pool_client_change_state(c, CL_LOGIN);
}

static void on_client_authenticated(struct client *c)
{
	struct pool *p = c->pool;
	pool_client_change_state(c, CL_WAIT_LOGIN);
	if (p->have_welcome)
		calls->finish_login(c);
	else
		pool_welcome_ready(p);
}

static void on_client_idle(struct client *c)
{
	pool_client_change_state(c, CL_IDLE);
}

static void on_client_wants_server(struct client *c)
{
	pool_request_server(c->pool, c);
}

static void on_client_closed(struct client *c)
{
	pool_client_change_state(c, CL_CLOSED);
}

static void on_server_connecting(struct server *s)
{
	pool_server_change_state(s, SV_CONNECTING);
}

static void on_server_login_started(struct server *s)
{
	pool_server_change_state(s, SV_LOGIN);
}

static void on_server_ready(struct server *s)
{
	pool_server_ready(s->pool, s);
}

static void on_server_testing(struct server *s)
{
	pool_server_change_state(s, SV_TESTED);
}

static void on_server_closing(struct server *s)
{
	pool_server_change_state(s, SV_CLOSED);
}

static const struct events pool_events = {
	.client_accepted = on_client_accepted,
	.client_authenticated = on_client_authenticated,
	.client_idle = on_client_idle,
	.client_wants_server = on_client_wants_server,
	.client_closed = on_client_closed,
	.pool_for = pool_get,
	.console_pool = pool_get_console,
	.client_count = pool_total_clients,
	.pool_client_count = pool_count_clients,
	.server_connecting = on_server_connecting,
	.server_login_started = on_server_login_started,
	.server_ready = on_server_ready,
	.server_testing = on_server_testing,
	.server_closing = on_server_closing,
	.server_gone = pool_server_gone,
	.server_login_failed = pool_server_login_failed,
	.host_failed = pool_host_failed,
	.server_welcome = pool_set_welcome,
	.wait_for_server = pool_wait_for_server,
	.cancel_wait = pool_cancel_wait,
};

void pool_init(void)
{
	exiting = false;
	events_init(&pool_events);
}
