/* metrics: owns the /metrics page buffer and the /readyz verdict.
 *
 * The page is written into one growing buffer, recycled from scrape to
 * scrape, so a scrape in steady state allocates nothing: values are
 * appended with small hand-written formatters (no printf per line), and
 * each pool's label set is escaped once per scrape into a reused buffer. Every family is
 * written whole (HELP, TYPE, then all its samples), as the text format
 * requires. Values come straight from the pools' lists and counters; a
 * figure tidepool does not track is left out rather than shown as 0. */
#include "metrics.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "autoconf.h"
#include "budget.h"
#include "client.h"
#include "config.h"
#include "dns.h"
#include "lifecycle.h"
#include "loop.h"
#include "pool.h"
#include "server.h"
#include "stats.h"
#include "util.h"

/* A pool counts as unreachable when its last failed connect is this recent
 * and it has no working server. */
#define METRICS_BACKEND_WINDOW (60 * USEC_PER_SEC)

struct mbuf {
	char *data;
	size_t len, cap;
};

/* Pages kept for reuse: enough for a Prometheus pair scraping together. */
#define METRICS_PAGES_CACHED 2

static struct mbuf page;          /* the page being rendered */
static struct metrics_page *free_pages;
static int n_free_pages;
static size_t in_flight;          /* capacity of the pages handed out */
static struct mbuf labels;        /* database="..",user=".." of each pool, back to back */
static size_t *label_end;         /* label_end[i]: end of pool i's labels in `labels` */
static size_t label_cap;
static char le_text[STATS_BUCKETS][24];
static bool le_ready;

static void mb_grow(struct mbuf *b, size_t more)
{
	if (b->len + more <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 65536;
	while (cap < b->len + more)
		cap *= 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

static void mb_mem(struct mbuf *b, const char *s, size_t n)
{
	mb_grow(b, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
}

static void mb_str(struct mbuf *b, const char *s)
{
	mb_mem(b, s, strlen(s));
}

static void mb_u64(struct mbuf *b, uint64_t v)
{
	char tmp[24];
	size_t i = sizeof(tmp);
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	mb_mem(b, tmp + i, sizeof(tmp) - i);
}

/* Microseconds as decimal seconds, without trailing zeros: 1500 -> 0.0015. */
static size_t format_seconds(char *out, int64_t usec)
{
	size_t n = 0;
	if (usec < 0) {
		out[n++] = '-';
		usec = -usec;
	}
	char tmp[24];
	size_t i = sizeof(tmp);
	uint64_t whole = (uint64_t)(usec / USEC_PER_SEC);
	do {
		tmp[--i] = (char)('0' + whole % 10);
		whole /= 10;
	} while (whole);
	memcpy(out + n, tmp + i, sizeof(tmp) - i);
	n += sizeof(tmp) - i;
	int64_t frac = usec % USEC_PER_SEC;
	if (!frac)
		return n;
	char d[7];
	for (int k = 6; k >= 1; k--, frac /= 10)
		d[k] = (char)('0' + frac % 10);
	d[0] = '.';
	size_t dn = 7;
	while (d[dn - 1] == '0')
		dn--;
	memcpy(out + n, d, dn);
	return n + dn;
}

static void mb_seconds(struct mbuf *b, int64_t usec)
{
	char tmp[40];
	mb_mem(b, tmp, format_seconds(tmp, usec));
}

/* A label value: backslash, double quote and newline are escaped. */
static void mb_label_value(struct mbuf *b, const char *s)
{
	for (const char *p = s; *p; p++) {
		if (*p == '\\')
			mb_mem(b, "\\\\", 2);
		else if (*p == '"')
			mb_mem(b, "\\\"", 2);
		else if (*p == '\n')
			mb_mem(b, "\\n", 2);
		else
			mb_mem(b, p, 1);
	}
}

static void family(const char *name, const char *type, const char *help)
{
	mb_str(&page, "# HELP ");
	mb_str(&page, name);
	mb_mem(&page, " ", 1);
	mb_str(&page, help);
	mb_str(&page, "\n# TYPE ");
	mb_str(&page, name);
	mb_mem(&page, " ", 1);
	mb_str(&page, type);
	mb_mem(&page, "\n", 1);
}

/* "name{<labels of pool i>" with the closing brace left to the caller. */
static void sample_open(const char *name, const char *suffix, size_t i)
{
	size_t start = i ? label_end[i - 1] : 0;
	mb_str(&page, name);
	if (suffix)
		mb_str(&page, suffix);
	mb_mem(&page, "{", 1);
	mb_mem(&page, labels.data + start, label_end[i] - start);
}

static void sample_u64(const char *name, const char *suffix, size_t i, uint64_t v)
{
	sample_open(name, suffix, i);
	mb_mem(&page, "} ", 2);
	mb_u64(&page, v);
	mb_mem(&page, "\n", 1);
}

static void sample_seconds(const char *name, const char *suffix, size_t i, int64_t usec)
{
	sample_open(name, suffix, i);
	mb_mem(&page, "} ", 2);
	mb_seconds(&page, usec);
	mb_mem(&page, "\n", 1);
}

/* One unlabelled sample. */
static void plain_u64(const char *name, const char *type, const char *help, uint64_t v)
{
	family(name, type, help);
	mb_str(&page, name);
	mb_mem(&page, " ", 1);
	mb_u64(&page, v);
	mb_mem(&page, "\n", 1);
}

/* Escapes every pool's label set once; returns the number of pools. */
static size_t build_labels(void)
{
	size_t n = 0;
	labels.len = 0;
	for (struct list_node *l = pool_list()->next; l != pool_list(); l = l->next) {
		const struct pool *p = list_entry(l, struct pool, node);
		if (n == label_cap) {
			label_cap = label_cap ? label_cap * 2 : 64;
			label_end = xrealloc(label_end, label_cap * sizeof(*label_end));
		}
		mb_str(&labels, "database=\"");
		mb_label_value(&labels, p->db_name);
		mb_str(&labels, "\",user=\"");
		mb_label_value(&labels, p->user_name);
		mb_mem(&labels, "\"", 1);
		label_end[n++] = labels.len;
	}
	return n;
}

#define FOR_EACH_POOL(p, i) \
	for (struct list_node *l_ = ((i) = 0, pool_list()->next); \
	     l_ != pool_list() && ((p) = list_entry(l_, struct pool, node), 1); l_ = l_->next, (i)++)

/* ------------------------------------------------------------ pool gauges */

enum pool_gauge {
	PG_CL_ACTIVE,
	PG_CL_WAITING,
	PG_CL_IDLE,
	PG_SV_ACTIVE,
	PG_SV_IDLE,
	PG_SV_USED,
	PG_SV_TESTED,
	PG_SV_LOGIN,
	PG_POOL_SIZE,
	PG_PREPARED,
	PG_PINNED,
};

struct gauge_def {
	const char *name;
	const char *help;
	enum pool_gauge g;
};

static const struct gauge_def pool_gauges[] = {
	{ "tidepool_pools_client_active_connections",
	  "Client connections logged in and either linked to a server or idle between transactions (PgBouncer's cl_active)",
	  PG_CL_ACTIVE },
	{ "tidepool_pools_client_waiting_connections",
	  "Client connections waiting for a server connection (PgBouncer's cl_waiting)", PG_CL_WAITING },
	{ "tidepool_pools_client_idle_connections",
	  "Client connections between transactions holding no server (a subset of the active ones)", PG_CL_IDLE },
	{ "tidepool_pools_server_active_connections",
	  "Server connections linked to a client connection", PG_SV_ACTIVE },
	{ "tidepool_pools_server_idle_connections",
	  "Server connections idle and ready for a client", PG_SV_IDLE },
	{ "tidepool_pools_server_used_connections",
	  "Server connections released and waiting for a reset, a check or a cancel in flight before reuse", PG_SV_USED },
	{ "tidepool_pools_server_testing_connections",
	  "Server connections running server_reset_query or server_check_query", PG_SV_TESTED },
	{ "tidepool_pools_server_login_connections",
	  "Server connections connecting or logging in", PG_SV_LOGIN },
	{ "tidepool_pools_pool_size",
	  "Server connections the pool may open (pool_size in effect for this database and user)", PG_POOL_SIZE },
	{ "tidepool_pools_prepared_statements",
	  "Distinct protocol-level prepared statements interned for the pool (SHOW PREPARED_STATEMENTS)", PG_PREPARED },
	{ "tidepool_pools_pinned_clients",
	  "Client connections kept on their server because they left session state on it (session_state = pin)",
	  PG_PINNED },
};

static uint64_t pool_gauge_value(const struct pool *p, enum pool_gauge g)
{
	int v = 0;
	switch (g) {
	case PG_CL_ACTIVE: v = p->n_clients[CL_ACTIVE] + p->n_clients[CL_IDLE]; break;
	case PG_CL_WAITING: v = p->n_clients[CL_WAITING] + p->n_clients[CL_WAIT_LOGIN]; break;
	case PG_CL_IDLE: v = p->n_clients[CL_IDLE]; break;
	case PG_SV_ACTIVE: v = p->n_servers[SV_ACTIVE]; break;
	case PG_SV_IDLE: v = p->n_servers[SV_IDLE]; break;
	case PG_SV_USED: v = p->n_servers[SV_USED] + p->n_servers[SV_BEING_CANCELED]; break;
	case PG_SV_TESTED: v = p->n_servers[SV_TESTED]; break;
	case PG_SV_LOGIN: v = p->n_servers[SV_LOGIN] + p->n_servers[SV_CONNECTING]; break;
	case PG_POOL_SIZE: v = p->pool_size; break;
	case PG_PREPARED: return p->prepared.count;
	case PG_PINNED: v = p->n_pinned; break;
	}
	return v > 0 ? (uint64_t)v : 0;
}

/* Age of the oldest client waiting for a server (lists are in arrival order). */
static usec_t pool_maxwait(const struct pool *p, usec_t now)
{
	usec_t oldest = now;
	const struct list_node *lists[] = { &p->clients[CL_WAITING], &p->clients[CL_WAIT_LOGIN] };
	for (size_t k = 0; k < ARRAY_SIZE(lists); k++) {
		struct list_node *n = list_first(lists[k]);
		if (n && list_entry(n, struct client, node)->state_since < oldest)
			oldest = list_entry(n, struct client, node)->state_since;
	}
	return now - oldest;
}

static void render_pool_gauges(void)
{
	const struct pool *p;
	size_t i;
	for (size_t k = 0; k < ARRAY_SIZE(pool_gauges); k++) {
		family(pool_gauges[k].name, "gauge", pool_gauges[k].help);
		FOR_EACH_POOL(p, i)
			sample_u64(pool_gauges[k].name, NULL, i, pool_gauge_value(p, pool_gauges[k].g));
	}
	static const char maxwait[] = "tidepool_pools_client_maxwait_seconds";
	family(maxwait, "gauge", "Seconds the oldest client waiting for a server has waited");
	usec_t now = loop_now();
	FOR_EACH_POOL(p, i)
		sample_seconds(maxwait, NULL, i, pool_maxwait(p, now));
}

/* ---------------------------------------------------------- pool counters */

struct counter_def {
	const char *name;
	const char *help;
	size_t offset;       /* of a uint64_t or usec_t in struct stats_counters */
	bool seconds;        /* a usec_t total shown in seconds */
};

#define STAT(f) offsetof(struct stats_counters, f)

static const struct counter_def pool_counters[] = {
	{ "tidepool_stats_server_assignments_total", "Times a server connection was assigned to a client",
	  STAT(server_assignment_count), false },
	{ "tidepool_stats_sql_transactions_pooled_total", "SQL transactions pooled", STAT(xact_count), false },
	{ "tidepool_stats_queries_pooled_total", "SQL queries pooled", STAT(query_count), false },
	{ "tidepool_stats_received_bytes_total", "Bytes received from clients and forwarded to servers",
	  STAT(bytes_received), false },
	{ "tidepool_stats_sent_bytes_total", "Bytes received from servers and forwarded to clients",
	  STAT(bytes_sent), false },
	{ "tidepool_stats_client_wait_seconds_total", "Seconds clients spent waiting for a server",
	  STAT(wait_time), true },
	{ "tidepool_stats_queries_duration_seconds_total", "Seconds servers spent executing queries for clients",
	  STAT(query_time), true },
	{ "tidepool_stats_server_in_transaction_seconds_total",
	  "Seconds servers spent in a transaction for clients, idle in transaction included", STAT(xact_time), true },
	{ "tidepool_stats_client_parses_total", "Parse messages received from clients",
	  STAT(client_parse_count), false },
	{ "tidepool_stats_server_parses_total", "Parse messages sent to servers", STAT(server_parse_count), false },
	{ "tidepool_stats_binds_total", "Bind messages received from clients", STAT(bind_count), false },
	{ "tidepool_stats_session_state_refused_total",
	  "Statements refused because they would leave session state (session_state = error)",
	  STAT(state_refused), false },
	{ "tidepool_stats_session_state_allowed_total",
	  "Statements that left session state, let through and reset at release (session_state = allow)",
	  STAT(state_allowed), false },
	{ "tidepool_stats_settings_replays_total",
	  "Times a client's recorded session settings were applied on a backend it got",
	  STAT(settings_replays), false },
	{ "tidepool_stats_client_logins_total", "Client connections that logged in to this pool",
	  STAT(client_logins), false },
	{ "tidepool_stats_client_login_failures_total",
	  "Client logins to this pool refused for a wrong password or a failed SCRAM exchange",
	  STAT(client_login_failures), false },
	{ "tidepool_stats_server_logins_total", "Server connections opened and logged in",
	  STAT(server_logins), false },
	{ "tidepool_stats_server_login_failures_total",
	  "Server connections that could not be opened or logged in", STAT(server_login_failures), false },
	{ "tidepool_stats_query_timeouts_total", "Clients closed by query_timeout", STAT(query_timeouts), false },
	{ "tidepool_stats_wait_timeouts_total", "Clients closed by query_wait_timeout",
	  STAT(wait_timeouts), false },
	{ "tidepool_stats_server_errors_total",
	  "Server connections lost while linked to a client", STAT(server_errors), false },
};

static void render_pool_counters(void)
{
	const struct pool *p;
	size_t i;
	for (size_t k = 0; k < ARRAY_SIZE(pool_counters); k++) {
		const struct counter_def *d = &pool_counters[k];
		family(d->name, "counter", d->help);
		FOR_EACH_POOL(p, i) {
			uint64_t v;
			memcpy(&v, (const char *)&p->stats + d->offset, sizeof(v));
			if (d->seconds)
				sample_seconds(d->name, NULL, i, (int64_t)v);
			else
				sample_u64(d->name, NULL, i, v);
		}
	}
}

/* ------------------------------------------------------------- histograms */

struct histogram_def {
	const char *name;
	const char *help;
	size_t offset;       /* of a struct stats_histogram in struct stats_counters */
};

static const struct histogram_def pool_histograms[] = {
	{ "tidepool_client_wait_seconds", "Time a client waited for a server connection", STAT(wait_hist) },
	{ "tidepool_query_duration_seconds", "Time from a query's first message to its ReadyForQuery",
	  STAT(query_hist) },
	{ "tidepool_transaction_duration_seconds", "Time from a transaction's first message to its end",
	  STAT(xact_hist) },
};

static void init_le(void)
{
	if (le_ready)
		return;
	for (int b = 0; b < STATS_BUCKETS; b++) {
		usec_t bound = stats_bucket_bound(b);
		if (bound < 0)
			strlcpy_safe(le_text[b], "+Inf", sizeof(le_text[b]));
		else
			le_text[b][format_seconds(le_text[b], bound)] = '\0';
	}
	le_ready = true;
}

static void render_histogram(const struct histogram_def *d, const struct stats_histogram *h, size_t i)
{
	uint64_t cum = 0;
	for (int b = 0; b < STATS_BUCKETS; b++) {
		cum += h->buckets[b];
		sample_open(d->name, "_bucket", i);
		mb_str(&page, ",le=\"");
		mb_str(&page, le_text[b]);
		mb_mem(&page, "\"} ", 3);
		mb_u64(&page, cum);
		mb_mem(&page, "\n", 1);
	}
	sample_seconds(d->name, "_sum", i, h->sum);
	sample_u64(d->name, "_count", i, h->count);
}

static void render_histograms(void)
{
	const struct pool *p;
	size_t i;
	init_le();
	for (size_t k = 0; k < ARRAY_SIZE(pool_histograms); k++) {
		family(pool_histograms[k].name, "histogram", pool_histograms[k].help);
		FOR_EACH_POOL(p, i)
			render_histogram(&pool_histograms[k],
					 (const struct stats_histogram *)((const char *)&p->stats + pool_histograms[k].offset), i);
	}
}

/* ---------------------------------------------------------------- process */

static bool proc_open_fds(uint64_t *n)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return false;
	uint64_t count = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			count++;
	closedir(d);
	*n = count ? count - 1 : 0;   /* not the directory's own descriptor */
	return true;
}

static bool proc_rss(uint64_t *bytes)
{
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	char buf[128];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	char *end;
	(void)strtoull(buf, &end, 10);            /* total program size */
	unsigned long long resident = strtoull(end, NULL, 10);
	long pagesize = sysconf(_SC_PAGESIZE);
	*bytes = (uint64_t)resident * (uint64_t)(pagesize > 0 ? pagesize : 4096);
	return true;
}

static void render_totals(void)
{
	uint64_t servers = 0, pools = 0;
	for (struct list_node *l = pool_list()->next; l != pool_list(); l = l->next) {
		servers += (uint64_t)pool_total_servers(list_entry(l, struct pool, node));
		pools++;
	}
	plain_u64("tidepool_clients", "gauge", "Client connections, logging in or logged in",
		  (uint64_t)pool_total_clients());
	plain_u64("tidepool_servers", "gauge", "Server connections in every state", servers);
	plain_u64("tidepool_pools", "gauge", "Pools (one per database and user in use)", pools);
	struct dns_stats ds;
	dns_get_stats(&ds);
	plain_u64("tidepool_dns_names", "gauge", "Host names in the DNS cache", ds.names);
	plain_u64("tidepool_dns_zones", "gauge", "DNS zones whose serial is checked", ds.zones);
	plain_u64("tidepool_dns_pending", "gauge", "DNS lookups in flight", ds.pending);
	plain_u64("tidepool_dns_lookups_total", "counter", "Host name lookups started", ds.lookups);
	plain_u64("tidepool_dns_failures_total", "counter", "Host name lookups that failed", ds.failures);
	plain_u64("tidepool_dns_changes_total", "counter",
		  "Lookups whose answer changed a name's addresses", ds.changes);
	int max_conn = config_current()->max_client_conn;
	plain_u64("tidepool_max_client_conn", "gauge", "The max_client_conn setting",
		  max_conn > 0 ? (uint64_t)max_conn : 0);
}

static void render_process(void)
{
	char reason[256];
	plain_u64("tidepool_up", "gauge", "1 while tidepool answers", 1);
	family("tidepool_build_info", "gauge", "Always 1; the version in a label");
	mb_str(&page, "tidepool_build_info{version=\"");
	mb_label_value(&page, PACKAGE_VERSION);
	mb_str(&page, "\"} 1\n");
	family("tidepool_start_time_seconds", "gauge", "Start time of the process, seconds since the epoch");
	mb_str(&page, "tidepool_start_time_seconds ");
	mb_seconds(&page, lifecycle_start_time());
	mb_mem(&page, "\n", 1);
	plain_u64("tidepool_ready", "gauge", "1 when /readyz answers 200, else 0",
		  metrics_unready_reason(reason, sizeof(reason)) ? 0 : 1);
	plain_u64("tidepool_config_reloads_total", "counter", "Configuration reloads attempted (SIGHUP or RELOAD)",
		  lifecycle_reload_count());
	plain_u64("tidepool_config_last_reload_successful", "gauge",
		  "1 if the last reload applied (or none was tried), 0 if it failed", lifecycle_last_reload_ok());
	render_totals();
	uint64_t v;
	if (proc_open_fds(&v))
		plain_u64("tidepool_open_fds", "gauge", "Open file descriptors", v);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		plain_u64("tidepool_max_fds", "gauge", "Limit on open file descriptors (RLIMIT_NOFILE)",
			  (uint64_t)rl.rlim_cur);
	if (proc_rss(&v))
		plain_u64("tidepool_resident_memory_bytes", "gauge", "Resident memory size in bytes", v);
}

/* ---- backend budget (budget.h) ---- */

#define BUDGET_ROWS_MAX 64

struct budget_rows {
	struct budget_row r[BUDGET_ROWS_MAX];
	size_t n;
};

static void budget_collect(const struct budget_row *row, void *arg)
{
	struct budget_rows *rows = arg;
	if (rows->n < BUDGET_ROWS_MAX)
		rows->r[rows->n++] = *row;
}

enum budget_figure { BF_MAX, BF_RESERVED, BF_THIS, BF_FLEET, BF_HEADROOM };

static long long budget_value(const struct budget_row *b, enum budget_figure f)
{
	switch (f) {
	case BF_MAX: return b->max_connections;
	case BF_RESERVED: return b->reserved;
	case BF_THIS: return b->this_process_max;
	case BF_FLEET: return b->fleet_max;
	case BF_HEADROOM: return b->headroom;
	}
	return 0;
}

/* One family with a {host, port} sample per server; figures learned from
 * the server (only_known) are left out until they are. */
static void render_budget_family(const struct budget_rows *rows, const char *name, const char *help,
				 enum budget_figure f, bool only_known)
{
	family(name, "gauge", help);
	for (size_t i = 0; i < rows->n; i++) {
		const struct budget_row *b = &rows->r[i];
		if (only_known && !b->known)
			continue;
		long long v = budget_value(b, f);
		char port[16];
		snprintf(port, sizeof(port), "%d", b->port);
		mb_str(&page, name);
		mb_str(&page, "{host=\"");
		mb_label_value(&page, b->host[0] ? b->host : "(unix socket)");
		mb_str(&page, "\",port=\"");
		mb_str(&page, port);
		mb_str(&page, "\"} ");
		if (v < 0)
			mb_mem(&page, "-", 1);
		mb_u64(&page, (uint64_t)(v < 0 ? -v : v));
		mb_mem(&page, "\n", 1);
	}
}

static void render_budget(void)
{
	static struct budget_rows rows;
	rows.n = 0;
	budget_for_each(budget_collect, &rows);
	render_budget_family(&rows, "tidepool_budget_max_connections",
			     "The server's max_connections, learned at the first login", BF_MAX, true);
	render_budget_family(&rows, "tidepool_budget_reserved_connections",
			     "The server's superuser_reserved_connections", BF_RESERVED, true);
	render_budget_family(&rows, "tidepool_budget_this_process_max",
			     "Server connections this process may open to the server (pool_size + "
			     "reserve_pool_size over its pools)", BF_THIS, false);
	render_budget_family(&rows, "tidepool_budget_fleet_max",
			     "this_process_max times the replicas", BF_FLEET, false);
	render_budget_family(&rows, "tidepool_budget_headroom",
			     "max_connections - reserved - fleet_max (negative: the fleet can exceed the server)",
			     BF_HEADROOM, true);
	plain_u64("tidepool_budget_replicas", "gauge",
		  "tidepool processes counted (expected_replicas or the addresses of replicas_dns_name)",
		  (uint64_t)(rows.n ? rows.r[0].replicas : config_current()->expected_replicas));
}

struct metrics_page *metrics_page_render(void)
{
	struct metrics_page *pg = free_pages;
	if (pg) {
		free_pages = pg->next_free;
		n_free_pages--;
	} else {
		pg = xcalloc(1, sizeof(*pg));
	}
	page = (struct mbuf){ pg->data, 0, pg->cap };
	build_labels();
	render_process();
	render_pool_gauges();
	render_pool_counters();
	render_histograms();
	render_budget();
	pg->data = page.data;
	pg->len = page.len;
	pg->cap = page.cap;
	page = (struct mbuf){ 0 };
	in_flight += pg->cap;
	return pg;
}

void metrics_page_release(struct metrics_page *pg)
{
	in_flight -= pg->cap;
	if (n_free_pages >= METRICS_PAGES_CACHED) {
		free(pg->data);
		free(pg);
		return;
	}
	pg->next_free = free_pages;
	free_pages = pg;
	n_free_pages++;
}

size_t metrics_pages_in_flight(void)
{
	return in_flight;
}

/* ------------------------------------------------------------- readiness */

static bool pool_unreachable(const struct pool *p, usec_t now)
{
	if (p->stale || !p->last_connect_failure || now - p->last_connect_failure >= METRICS_BACKEND_WINDOW)
		return false;
	return p->n_servers[SV_IDLE] + p->n_servers[SV_ACTIVE] + p->n_servers[SV_USED] +
	       p->n_servers[SV_TESTED] + p->n_servers[SV_BEING_CANCELED] == 0;
}

/* The reason must stay one line: a server's error text may hold newlines. */
static const char *one_line(char *buf)
{
	for (char *c = buf; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	return buf;
}

const char *metrics_unready_reason(char *buf, size_t buflen)
{
	if (lifecycle_shutting_down())
		return "shutting down";
	if (lifecycle_suspended())
		return "suspended";
	if (lifecycle_paused())
		return "paused";
	const struct config *cfg = config_current();
	usec_t now = loop_now();
	for (struct list_node *l = pool_list()->next; l != pool_list(); l = l->next) {
		const struct pool *p = list_entry(l, struct pool, node);
		if (p->paused && !p->stale) {
			snprintf(buf, buflen, "database %s is paused", p->db_name);
			return one_line(buf);
		}
		if (cfg->readyz_checks_backend && pool_unreachable(p, now)) {
			snprintf(buf, buflen, "no server of database %s could be reached: %s", p->db_name,
				 p->last_error ? p->last_error : "connect failed");
			return one_line(buf);
		}
	}
	return NULL;
}

void metrics_free(void)
{
	while (free_pages) {
		struct metrics_page *pg = free_pages;
		free_pages = pg->next_free;
		free(pg->data);
		free(pg);
	}
	n_free_pages = 0;
	free(labels.data);
	free(label_end);
	labels = (struct mbuf){ 0 };
	label_end = NULL;
	label_cap = 0;
}
