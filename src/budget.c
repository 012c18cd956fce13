/* budget: see budget.h. Owns the table of PostgreSQL servers (host, port)
 * with the limits learned from each; entries are never removed while the
 * process runs (a server that leaves the config is only hidden), so an
 * index into the table stays valid for a query in flight. The figures are
 * recomputed from the config snapshot and the pool list once a second and
 * whenever something they depend on arrives; a handful of servers, so
 * plain array walks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "budget.h"
#include "config.h"
#include "dns.h"
#include "janitor.h"
#include "log.h"
#include "pool.h"
#include "proto.h"
#include "server.h"
#include "server_login.h"
#include "util.h"

#define BUDGET_QUERY "SELECT current_setting('max_connections'), " \
		     "current_setting('superuser_reserved_connections')"

struct budget_target {
	char *host;
	int port;
	int max_connections, reserved;   /* -1 until learned */
	bool learning;                   /* the query is in flight */
	bool failed;                     /* it failed: not retried until a reload */
	bool present;                    /* in the current config */
	long long this_process_max;
	long long warned_fleet, warned_cap;   /* figures last warned about; 0: not over */
};

static struct budget_target *targets;
static size_t n_targets;
static int dns_replicas = -1;          /* addresses of replicas_dns_name, -1 unknown */
static const struct config *last_cfg;  /* a reload clears the failed marks */

static int workers_per_replica = 1;   /* workers = N: each worker has pools of its own */

static long long fleet_of(const struct budget_target *t, int replicas)
{
	return t->this_process_max * workers_per_replica * replicas;
}

static struct budget_target *target_get(const char *host, int port)
{
	for (size_t i = 0; i < n_targets; i++)
		if (targets[i].port == port && strcmp(targets[i].host, host) == 0)
			return &targets[i];
	targets = xrealloc(targets, (n_targets + 1) * sizeof(*targets));
	struct budget_target *t = &targets[n_targets++];
	memset(t, 0, sizeof(*t));
	t->host = xstrdup(host);
	t->port = port;
	t->max_connections = t->reserved = -1;
	return t;
}

/* Adds n backends to every host of a [databases] host list ("a,b,c"). */
static void add_to_hosts(const struct db_config *d, long long n)
{
	const char *list = d->host ? d->host : "";
	do {
		const char *comma = strchr(list, ',');
		size_t len = comma ? (size_t)(comma - list) : strlen(list);
		char host[256];
		while (len > 0 && (*list == ' ' || *list == '\t'))
			list++, len--;
		while (len > 0 && (list[len - 1] == ' ' || list[len - 1] == '\t'))
			len--;
		snprintf(host, sizeof(host), "%.*s", (int)len, list);
		struct budget_target *t = target_get(host, d->port);
		t->present = true;
		t->this_process_max += n;
		list = comma ? comma + 1 : NULL;
	} while (list);
}

static long long pool_most(long long size, long long reserve, const struct config *cfg)
{
	return (size > 0 ? size : cfg->max_client_conn) + reserve;   /* 0: no limit */
}

static int first_set(int a, int b)
{
	return a >= 0 ? a : b;
}

/* The backends the pools of entry d may open: each pool's pool_size +
 * reserve_pool_size (one pool with the entry's sizes when none exists
 * yet), at most max_db_connections. "*" counts the pools of databases
 * that have no entry of their own. */
static long long entry_most(const struct config *cfg, const struct db_config *d)
{
	bool fallback = strcmp(d->name, "*") == 0;
	long long sum = 0;
	int pools = 0;
	struct list_node *head = pool_list();
	for (struct list_node *n = head->next; n != head; n = n->next) {
		struct pool *p = container_of(n, struct pool, node);
		if (p->console || p->stale)
			continue;
		if (fallback ? config_find_db(cfg, p->db_name) != NULL : strcmp(p->db_name, d->name) != 0)
			continue;
		sum += pool_most(p->pool_size, p->reserve_pool_size, cfg);
		pools++;
	}
	if (pools == 0)
		sum = pool_most(first_set(d->pool_size, cfg->default_pool_size),
				first_set(d->reserve_pool_size, cfg->reserve_pool_size), cfg);
	int max_db = first_set(d->max_db_connections, cfg->max_db_connections);
	return max_db > 0 && !fallback && sum > max_db ? max_db : sum;
}

static void compute(const struct config *cfg)
{
	workers_per_replica = config_workers(cfg) > 1 ? config_workers(cfg) : 1;
	for (size_t i = 0; i < n_targets; i++) {
		targets[i].present = false;
		targets[i].this_process_max = 0;
	}
	for (size_t i = 0; i < cfg->n_dbs; i++)
		add_to_hosts(cfg->dbs[i], entry_most(cfg, cfg->dbs[i]));
}

/* ---- replicas ---- */

struct addr_count {
	const char *name;
	int count;
};

static void count_addrs(const char *host, long long ttl, const char *addrs, void *arg)
{
	struct addr_count *c = arg;
	(void)ttl;
	if (strcasecmp(host, c->name) != 0 || !addrs[0])
		return;
	c->count = 1;
	for (const char *p = addrs; *p; p++)
		c->count += *p == ',';
}

/* replicas_dns_name's address count (looked up and kept fresh through the
 * DNS cache), else expected_replicas; also while the name is unresolved. */
static int replicas(const struct config *cfg)
{
	const char *name = cfg->replicas_dns_name;
	if (!name || !name[0])
		return cfg->expected_replicas;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	const char *err = NULL;
	dns_refresh(name);
	if (dns_lookup(name, 0, &ss, &len, &err) == DNS_READY) {
		struct addr_count c = { name, 0 };
		dns_for_each_host(count_addrs, &c);
		if (c.count > 0)
			dns_replicas = c.count;
	}
	return dns_replicas > 0 ? dns_replicas : cfg->expected_replicas;
}

/* ---- the warning ---- */

static void check_target(struct budget_target *t, int n)
{
	if (t->max_connections < 0 || !t->present)
		return;
	long long cap = (long long)t->max_connections - t->reserved;
	long long fleet = fleet_of(t, n);
	if (fleet <= cap) {
		t->warned_fleet = t->warned_cap = 0;
		return;
	}
	if (fleet == t->warned_fleet && cap == t->warned_cap)
		return;
	t->warned_fleet = fleet;
	t->warned_cap = cap;
	log_warning("backend budget: %d tidepool process(es) x %lld server connections each = %lld "
		    "for %s:%d, which allows %lld (max_connections %d - superuser_reserved_connections %d); "
		    "lower pool_size/reserve_pool_size or raise max_connections (SHOW BUDGET)",
		    n, t->this_process_max, fleet, t->host[0] ? t->host : "(unix socket)", t->port, cap,
		    t->max_connections, t->reserved);
}

void budget_update(void)
{
	const struct config *cfg = config_current();
	if (!cfg)
		return;
	if (cfg != last_cfg) {   /* a reload: servers that failed get another try */
		for (size_t i = 0; i < n_targets; i++)
			targets[i].failed = false;
		last_cfg = cfg;
	}
	compute(cfg);
	int n = replicas(cfg);
	for (size_t i = 0; i < n_targets; i++)
		check_target(&targets[i], n);
}

/* ---- learning a server's limits ---- */

struct budget_learn {
	size_t idx;              /* into targets[] (never removed) */
	int values[2];
	int got;
	bool error;
};

static void learn_row(void *arg, const uint8_t *body, size_t len)
{
	struct budget_learn *l = arg;
	for (uint16_t col = 0; col < 2; col++) {
		const uint8_t *val;
		uint32_t vlen;
		char buf[16];
		if (proto_data_row_column(body, len, col, &val, &vlen) != PROTO_OK || !val ||
		    vlen == 0 || vlen >= sizeof(buf))
			return;
		memcpy(buf, val, vlen);
		buf[vlen] = '\0';
		char *end;
		long v = strtol(buf, &end, 10);
		if (*end || v < 0 || v > 1000000)
			return;
		l->values[col] = (int)v;
	}
	l->got++;
}

static void learn_error(void *arg, const uint8_t *body, size_t len)
{
	struct budget_learn *l = arg;
	(void)body;
	(void)len;
	l->error = true;
}

static void learn_done(struct server *s, void *arg)
{
	struct budget_learn *l = arg;
	struct budget_target *t = &targets[l->idx];
	t->learning = false;
	if (l->error || l->got != 1) {
		t->failed = true;
		server_log(LOG_LVL_WARNING, s, "could not learn max_connections for SHOW BUDGET");
	} else {
		t->max_connections = l->values[0];
		t->reserved = l->values[1];
		server_log(LOG_LVL_INFO, s, "server allows max_connections %d, superuser_reserved_connections %d",
			   t->max_connections, t->reserved);
	}
	free(l);
	if (s->tx_status == 'I')
		pool_server_ready(s->pool, s);
	else
		server_close(s, "the budget query left a transaction open");
	budget_update();
}

static void learn_lost(void *arg, const char *why)
{
	struct budget_learn *l = arg;
	(void)why;
	targets[l->idx].learning = false;
	free(l);
}

static const struct server_request_ops learn_ops = {
	.row = learn_row,
	.error = learn_error,
	.done = learn_done,
	.lost = learn_lost,
};

/* A server just logged in: the first one to a server whose limits are not
 * known yet runs the query before it joins its pool. Never a replication
 * connection (a physical walsender refuses SQL; neither gets our queries). */
static bool learn_on_login(struct server *s)
{
	struct pool *p = s->pool;
	if (p->replication != REPL_NONE)
		return false;
	const char *host = s->host_idx >= 0 && (size_t)s->host_idx < p->n_hosts ? p->hosts[s->host_idx] : "";
	struct budget_target *t = target_get(host, p->server_port);
	if (t->learning || t->failed || t->max_connections >= 0)
		return false;
	uint8_t buf[256];
	struct proto_writer w;
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_query(&w, BUDGET_QUERY);
	struct budget_learn *l = xcalloc(1, sizeof(*l));
	l->idx = (size_t)(t - targets);
	t->learning = true;
	server_run_request(s, w.buf, w.len, 1, &learn_ops, l);
	return true;
}

/* ---- views ---- */

static void fill_row(const struct budget_target *t, int n, struct budget_row *row)
{
	row->host = t->host;
	row->port = t->port;
	row->max_connections = t->max_connections;
	row->reserved = t->reserved;
	row->this_process_max = t->this_process_max;
	row->replicas = n;
	row->fleet_max = fleet_of(t, n);
	row->known = t->max_connections >= 0;
	row->headroom = row->known ? (long long)t->max_connections - t->reserved - row->fleet_max : 0;
}

void budget_for_each(budget_row_fn fn, void *arg)
{
	const struct config *cfg = config_current();
	compute(cfg);
	int n = replicas(cfg);
	for (size_t i = 0; i < n_targets; i++) {
		if (!targets[i].present)
			continue;
		struct budget_row row;
		fill_row(&targets[i], n, &row);
		fn(&row, arg);
	}
}

void budget_print_check(const struct config *cfg)
{
	compute(cfg);
	for (size_t i = 0; i < n_targets; i++) {
		const struct budget_target *t = &targets[i];
		if (!t->present)
			continue;
		char per_replica[32] = "";
		if (workers_per_replica > 1)
			snprintf(per_replica, sizeof(per_replica), " x workers %d", workers_per_replica);
		printf("budget: %s:%d this_process_max %lld,%s x expected_replicas %d = fleet_max %lld%s%s%s\n",
		       t->host[0] ? t->host : "(unix socket)", t->port, t->this_process_max, per_replica,
		       cfg->expected_replicas, fleet_of(t, cfg->expected_replicas),
		       cfg->replicas_dns_name[0] ? " (until replicas_dns_name " : "",
		       cfg->replicas_dns_name, cfg->replicas_dns_name[0] ? " resolves)" : "");
	}
}

void budget_init(void)
{
	server_login_set_ready_hook(learn_on_login);
	janitor_add_tick(budget_update);
}

void budget_free(void)
{
	for (size_t i = 0; i < n_targets; i++)
		free(targets[i].host);
	free(targets);
	targets = NULL;
	n_targets = 0;
}
