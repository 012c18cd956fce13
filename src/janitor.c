/* janitor: owns the once-a-second timer (see janitor.h). */
#include "janitor.h"

#include <event2/event.h>
#include <stdlib.h>

#include "client.h"
#include "config.h"
#include "dns.h"
#include "lifecycle.h"
#include "log.h"
#include "loop.h"
#include "pool.h"
#include "server.h"
#include "util.h"

static struct event *timer;
static janitor_tick_fn ticks[4];   /* registered from above, run in order after each pass */
static size_t n_ticks;

static bool expired(usec_t since, usec_t timeout, usec_t now)
{
	return timeout > 0 && now - since >= timeout;
}

static void check_login_clients(const struct config *cfg, usec_t now)
{
	struct list_node *n, *tmp;
	list_for_each_safe(n, tmp, pool_login_clients()) {
		struct client *c = list_entry(n, struct client, node);
		if (!expired(c->state_since, cfg->client_login_timeout, now))
			break;
		client_fail(c, "08P01", "client_login_timeout");
	}
}

/* query_wait_notify: one NOTICE to each client queued longer than it. The
 * list is in arrival order: the walk resumes after the last client told
 * (pool.wait_notified_last) and stops at the first one not due, so a tick
 * costs O(clients told + 1), not O(clients waiting). */
static void notify_waiting(struct pool *p, const struct config *cfg, usec_t now)
{
	struct list_node *head = &p->clients[CL_WAITING], *n, *next;
	if (cfg->query_wait_notify <= 0)
		return;
	for (n = p->wait_notified_last->next; n != head; n = next) {
		struct client *c = list_entry(n, struct client, node);
		if (!expired(c->state_since, (usec_t)cfg->query_wait_notify * USEC_PER_SEC, now))
			break;
		next = n->next;
		p->wait_notified_last = n;   /* moved back by pool.c if c leaves */
		if (c->wait_notified == c->state_since)
			continue;
		c->wait_notified = c->state_since;
		client_notice(c, "No server connection available in postgres backend, client being queued");
	}
}

static void check_waiting(struct pool *p, const struct config *cfg, usec_t now)
{
	struct list_node *n, *tmp;
	list_for_each_safe(n, tmp, &p->clients[CL_WAITING]) {
		struct client *c = list_entry(n, struct client, node);
		if (!expired(c->state_since, p->query_wait_timeout, now))
			break;
		p->stats.wait_timeouts++;
		client_fail(c, "08P01", "query_wait_timeout");
	}
	notify_waiting(p, cfg, now);
	list_for_each_safe(n, tmp, &p->clients[CL_WAIT_LOGIN]) {
		struct client *c = list_entry(n, struct client, node);
		if (!expired(c->state_since, p->query_wait_timeout, now))
			break;
		client_fail(c, p->last_error ? p->last_sqlstate : "08P01", "%s",
			    p->last_error ? p->last_error : "query_wait_timeout");
	}
}

static void check_idle_clients(struct pool *p, usec_t now)
{
	struct list_node *n, *tmp;
	list_for_each_safe(n, tmp, &p->clients[CL_IDLE]) {
		struct client *c = list_entry(n, struct client, node);
		if (!expired(c->state_since, p->client_idle_timeout, now))
			break;
		client_fail(c, "08P01", "client_idle_timeout");
	}
}

/* Active clients: transaction_timeout, idle_transaction_timeout (idle time
 * inside a transaction only) and query_timeout. Not ordered by activity, so this one is a full walk of the
 * (small) active list. */
static void check_active(struct pool *p, usec_t now)
{
	struct list_node *n, *tmp;
	list_for_each_safe(n, tmp, &p->clients[CL_ACTIVE]) {
		struct client *c = list_entry(n, struct client, node);
		struct server *s = c->server;
		if (!s || s->internal)
			continue;
		/* idle in a transaction: since its last ReadyForQuery, or since
		 * the client last sent something, whichever is later; the time a
		 * query runs does not count */
		usec_t idle_since = c->request_time > s->ready_time ? c->request_time : s->ready_time;
		if (s->xact_start && expired(s->xact_start, p->transaction_timeout, now))
			client_fail(c, "25P04", "transaction timeout");
		else if (s->pending_ready == 0 && s->tx_status != 'I' &&
			 expired(idle_since, p->idle_transaction_timeout, now))
			client_fail(c, "25P03", "idle transaction timeout");
		else if (s->pending_ready > 0 && expired(c->request_time, p->query_timeout, now)) {
			p->stats.query_timeouts++;
			client_fail(c, "57014", "query timeout");
		}
	}
}

/* server_fast_close: a session-mode server marked for closing (RECONNECT,
 * a changed target) whose client sits idle between transactions is closed
 * now, not when the client leaves; the client is told (as PgBouncer). */
static void check_fast_close(struct pool *p, const struct config *cfg)
{
	if (!cfg->server_fast_close || p->mode != POOL_MODE_SESSION)
		return;
	struct list_node *n, *tmp;
	list_for_each_safe(n, tmp, &p->servers[SV_ACTIVE]) {
		struct server *s = list_entry(n, struct server, node);
		if (s->close_needed && !s->internal && s->pending_ready == 0 && !s->unsynced && !s->copy_in &&
		    s->tx_status == 'I')
			server_close(s, "database configuration changed");
	}
}

static void check_servers(struct pool *p, const struct config *cfg, usec_t now)
{
	struct list_node *n, *tmp;
	/* Idle list: most recently used at the head, so walk from the tail. */
	for (n = p->servers[SV_IDLE].prev; n != &p->servers[SV_IDLE]; n = tmp) {
		tmp = n->prev;
		struct server *s = list_entry(n, struct server, node);
		bool too_many = pool_total_servers(p) > p->min_pool_size;
		if (too_many && expired(s->state_since, cfg->server_idle_timeout, now))
			server_close(s, "server_idle_timeout");
		else if (expired(s->connect_time, p->server_lifetime, now) || s->close_needed)
			server_close(s, s->close_needed ? "server marked for closing" : "server_lifetime");
		else if (!p->round_robin)   /* with round robin the list is not by idle time */
			break;
	}
	list_for_each_safe(n, tmp, &p->servers[SV_CONNECTING]) {
		struct server *s = list_entry(n, struct server, node);
		if (expired(s->state_since, cfg->server_connect_timeout, now)) {
			s->login_settled = true;
			(void)pool_host_failed(p, s->host_idx, false, "08006", "server_connect_timeout");
			server_close(s, "server_connect_timeout");
		}
	}
	list_for_each_safe(n, tmp, &p->servers[SV_LOGIN]) {
		struct server *s = list_entry(n, struct server, node);
		if (expired(s->state_since, cfg->server_connect_timeout, now)) {
			s->login_settled = true;
			pool_server_login_failed(p, false, "08006", "server login timed out");
			server_close(s, "server login timed out");
		}
	}
}

static void fill_min_pool(struct pool *p)
{
	if (p->min_pool_size <= 0 || !p->have_welcome || p->stale || p->paused || lifecycle_suspended())
		return;
	if (pool_total_servers(p) < p->min_pool_size && !p->last_connect_failure)
		(void)pool_launch(p);
}

void janitor_run(void)
{
	const struct config *cfg = config_current();
	usec_t now = loop_now();
	check_login_clients(cfg, now);
	struct list_node *l;
	for (l = pool_list()->next; l != pool_list(); l = l->next) {
		struct pool *p = list_entry(l, struct pool, node);
		check_waiting(p, cfg, now);
		check_idle_clients(p, now);
		check_active(p, now);
		check_servers(p, cfg, now);
		check_fast_close(p, cfg);
		fill_min_pool(p);
		pool_refresh_dns(p);
		pool_kick(p);
	}
	dns_tick();
	for (size_t i = 0; i < n_ticks; i++)
		ticks[i]();
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	janitor_run();
}

void janitor_add_tick(janitor_tick_fn fn)
{
	if (n_ticks == ARRAY_SIZE(ticks)) {
		log_fatal("janitor: more than %zu ticks registered", ARRAY_SIZE(ticks));
		abort();
	}
	ticks[n_ticks++] = fn;
}

void janitor_start(void)
{
	timer = event_new(loop_base(), -1, EV_PERSIST, on_tick, NULL);
	struct timeval tv = { 1, 0 };
	event_add(timer, &tv);
}

void janitor_stop(void)
{
	if (timer) {
		event_free(timer);
		timer = NULL;
	}
}
