/* Unit tests of the pool's scheduler (pool.c) without sockets: clients and
 * servers are plain structs that report what happens to them through the
 * events table pool_init() registers, as client.c and server.c do, and the
 * scheduler's calls down (launch, link, close ...) go to fakes installed
 * with pool_set_calls(). Covered: FIFO order of waiting clients, pool_size,
 * max_db_connections and max_user_connections (with the eviction of another
 * pool's idle server), the reserve pool and its timeout, and a released
 * server handed to the next waiting client or kept idle, most recently
 * used first. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "config.h"
#include "events.h"
#include "loop.h"
#include "pool.h"
#include "server.h"

#define MAX_FAKES 64

/* What the fakes saw, in order. */
static struct server *launched[MAX_FAKES];
static int n_launched;
static struct client *linked_clients[MAX_FAKES];
static struct server *linked_servers[MAX_FAKES];
static int n_linked;
static int n_closed;

static enum server_launch_result fake_launch(struct pool *p, int host_idx, char *msg, size_t msglen)
{
	(void)msg, (void)msglen;
	struct server *s = xcalloc(1, sizeof(*s));
	s->pool = p;
	s->host_idx = host_idx;
	s->tx_status = 'I';
	s->connect_time = loop_now();
	s->state = SV_CLOSED;
	list_init(&s->node);
	launched[n_launched++] = s;
	events_server_connecting(s);
	return SERVER_LAUNCH_STARTED;
}

static void fake_link(struct client *c, struct server *s)
{
	c->server = s;
	s->client = c;
	linked_clients[n_linked] = c;
	linked_servers[n_linked++] = s;
}

/* As server_close: leave the lists, then let the scheduler react. The
 * struct stays allocated (launched[] frees it at the end). */
static void fake_close_server(struct server *s, const char *reason)
{
	(void)reason;
	if (s->state == SV_CLOSED)
		return;
	struct client *c = s->client;
	s->client = NULL;
	if (c)
		c->server = NULL;
	events_server_closing(s);
	n_closed++;
	events_server_gone(s->pool);
}

static void fake_fail_client(struct client *c, const char *sqlstate, const char *msg)
{
	(void)sqlstate, (void)msg;
	events_client_closed(c);
}

static void fake_finish_login(struct client *c)
{
	events_client_idle(c);
}

static void fake_run_internal(struct server *s, const char *sql, bool for_client, server_query_done_fn done)
{
	(void)sql, (void)for_client;
	done(s, true);
}

static const struct pool_calls fakes = {
	.launch = fake_launch,
	.link = fake_link,
	.close_server = fake_close_server,
	.fail_client = fake_fail_client,
	.finish_login = fake_finish_login,
	.run_internal = fake_run_internal,
};

/* Installs a config snapshot made of main-section keys and [databases]. */
static void use_config(const char *main_keys, const char *databases)
{
	char path[] = "/tmp/tidepool-test-pool-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	FILE *f = fdopen(fd, "w");
	fprintf(f, "[databases]\n%s\n[tidepool]\npool_mode = transaction\nauth_type = trust\n%s\n",
		databases, main_keys);
	fclose(f);
	struct config_errors errs = { 0 };
	struct config *cfg = config_load(path, &errs, NULL);
	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "  config error: %s\n", errs.msgs[i]);
	CHECK(cfg != NULL);
	config_errors_free(&errs);
	unlink(path);
	config_free(config_swap(cfg));
}

static void reset(void)
{
	pool_free_all();
	for (int i = 0; i < n_launched; i++)
		free(launched[i]);
	n_launched = n_linked = n_closed = 0;
	pool_init();
	pool_set_calls(&fakes);
}

static struct pool *get_pool(const char *db, const char *user)
{
	const char *sqlstate = NULL, *why = NULL;
	struct pool *p = events_pool_for(config_current(), db, user, 0, &sqlstate, &why);
	CHECK(p != NULL);
	p->have_welcome = true;   /* no first-server login to wait for */
	return p;
}

/* A client that logged in to p (CL_IDLE), as client.c and login.c report it. */
static struct client *new_client(struct pool *p)
{
	struct client *c = xcalloc(1, sizeof(*c));
	c->state = CL_CLOSED;
	list_init(&c->node);
	events_client_accepted(c);
	c->pool = p;
	events_client_authenticated(c);
	CHECK_INT(c->state, CL_IDLE);
	return c;
}

/* A server that finished its login: it is free for work. */
static void server_up(struct server *s)
{
	events_server_login_started(s);
	events_server_ready(s);
}

/* The client's transaction ended: as server_finish_transaction does. */
static void transaction_done(struct client *c)
{
	struct server *s = c->server;
	CHECK(s != NULL);
	s->client = NULL;
	c->server = NULL;
	events_server_ready(s);
	events_client_idle(c);
}

static void free_clients(struct client **cs, int n)
{
	for (int i = 0; i < n; i++) {
		if (cs[i]->server)
			cs[i]->server->client = NULL;
		if (cs[i]->state != CL_CLOSED)
			events_client_closed(cs[i]);
		free(cs[i]);
	}
}

static void test_fifo_waiting(void)
{
	use_config("default_pool_size = 2", "appdb = host=127.0.0.1");
	reset();
	struct pool *p = get_pool("appdb", "app");
	struct client *c[5];
	for (int i = 0; i < 5; i++)
		c[i] = new_client(p);
	for (int i = 0; i < 5; i++)
		events_client_wants_server(c[i]);
	CHECK_INT(p->n_clients[CL_WAITING], 5);
	CHECK_INT(n_launched, 2);
	CHECK_INT(p->n_servers[SV_CONNECTING], 2);
	server_up(launched[1]);
	server_up(launched[0]);
	CHECK_INT(n_linked, 2);
	CHECK(linked_clients[0] == c[0] && linked_servers[0] == launched[1]);
	CHECK(linked_clients[1] == c[1] && linked_servers[1] == launched[0]);
	CHECK_INT(c[0]->state, CL_ACTIVE);
	CHECK_INT(p->n_servers[SV_ACTIVE], 2);
	/* c0 comes back at once: behind c2, c3, c4 */
	transaction_done(c[0]);
	events_client_wants_server(c[0]);
	transaction_done(c[1]);
	transaction_done(c[2]);
	transaction_done(c[3]);
	transaction_done(c[4]);
	CHECK_INT(n_linked, 6);
	CHECK(linked_clients[2] == c[2]);
	CHECK(linked_clients[3] == c[3]);
	CHECK(linked_clients[4] == c[4]);
	CHECK(linked_clients[5] == c[0]);
	CHECK_INT(n_launched, 2);   /* never more than pool_size */
	transaction_done(c[0]);
	CHECK_INT(p->n_servers[SV_IDLE], 2);
	CHECK_INT(p->n_clients[CL_IDLE], 5);
	CHECK_INT(p->n_clients[CL_WAITING], 0);
	free_clients(c, 5);
}

static void test_pool_size_and_a_closed_server(void)
{
	use_config("default_pool_size = 3", "appdb = host=127.0.0.1");
	reset();
	struct pool *p = get_pool("appdb", "app");
	struct client *c[10];
	for (int i = 0; i < 10; i++) {
		c[i] = new_client(p);
		events_client_wants_server(c[i]);
	}
	CHECK_INT(n_launched, 3);
	CHECK_INT(pool_total_servers(p), 3);
	for (int i = 0; i < 3; i++)
		server_up(launched[i]);
	CHECK_INT(n_linked, 3);
	/* A server dies under its client: a new one is opened for the rest. */
	fake_close_server(launched[0], "test");
	CHECK_INT(n_launched, 4);
	CHECK_INT(pool_total_servers(p), 3);
	CHECK_INT(p->n_servers[SV_CONNECTING], 1);
	free_clients(c, 10);
}

static void test_max_db_connections(void)
{
	use_config("default_pool_size = 5\nmax_db_connections = 2", "appdb = host=127.0.0.1");
	reset();
	struct pool *p1 = get_pool("appdb", "u1");
	struct pool *p2 = get_pool("appdb", "u2");
	struct client *c[3] = { new_client(p1), new_client(p1), new_client(p2) };
	events_client_wants_server(c[0]);
	events_client_wants_server(c[1]);
	CHECK_INT(n_launched, 2);
	events_client_wants_server(c[2]);
	CHECK_INT(n_launched, 2);   /* the database is full and nothing is idle */
	server_up(launched[0]);
	server_up(launched[1]);
	CHECK_INT(n_linked, 2);
	/* u1 finishes: its idle server is closed for u2's waiting client */
	transaction_done(c[0]);
	CHECK_INT(p1->n_servers[SV_IDLE], 1);
	pool_kick(p2);
	CHECK_INT(n_closed, 1);
	CHECK_INT(n_launched, 3);
	CHECK(launched[2]->pool == p2);
	CHECK_INT(pool_total_servers(p1) + pool_total_servers(p2), 2);
	free_clients(c, 3);
}

static void test_max_user_connections(void)
{
	use_config("default_pool_size = 5\nmax_user_connections = 1",
		   "db1 = host=127.0.0.1\ndb2 = host=127.0.0.1");
	reset();
	struct pool *p1 = get_pool("db1", "app");
	struct pool *p2 = get_pool("db2", "app");
	struct client *c[2] = { new_client(p1), new_client(p2) };
	events_client_wants_server(c[0]);
	events_client_wants_server(c[1]);
	CHECK_INT(n_launched, 1);
	CHECK(launched[0]->pool == p1);
	server_up(launched[0]);
	transaction_done(c[0]);
	pool_kick(p2);
	CHECK_INT(n_closed, 1);
	CHECK_INT(n_launched, 2);
	CHECK(launched[1]->pool == p2);
	free_clients(c, 2);
}

static void test_reserve_pool(void)
{
	use_config("default_pool_size = 1\nreserve_pool_size = 2\nreserve_pool_timeout = 5",
		   "appdb = host=127.0.0.1");
	reset();
	struct pool *p = get_pool("appdb", "app");
	struct client *c[4];
	for (int i = 0; i < 4; i++) {
		c[i] = new_client(p);
		events_client_wants_server(c[i]);
	}
	CHECK_INT(n_launched, 1);   /* the first client has not waited 5 s yet */
	c[0]->state_since -= 6 * USEC_PER_SEC;
	pool_kick(p);
	CHECK_INT(n_launched, 3);   /* pool_size + reserve_pool_size, not more */
	pool_kick(p);
	CHECK_INT(n_launched, 3);
	free_clients(c, 4);

	use_config("default_pool_size = 1\nreserve_pool_size = 1\nreserve_pool_timeout = 0",
		   "appdb = host=127.0.0.1");
	reset();
	p = get_pool("appdb", "app");
	for (int i = 0; i < 3; i++) {
		c[i] = new_client(p);
		events_client_wants_server(c[i]);
	}
	CHECK_INT(n_launched, 2);   /* timeout 0: the reserve is used at once */
	free_clients(c, 3);
}

static void test_release_and_hand_over(void)
{
	use_config("default_pool_size = 2", "appdb = host=127.0.0.1");
	reset();
	struct pool *p = get_pool("appdb", "app");
	struct client *c[3] = { new_client(p), new_client(p), new_client(p) };
	events_client_wants_server(c[0]);
	events_client_wants_server(c[1]);
	server_up(launched[0]);
	server_up(launched[1]);
	CHECK_INT(n_linked, 2);
	/* c2 waits; c0's release hands its server over without going idle */
	events_client_wants_server(c[2]);
	CHECK_INT(c[2]->state, CL_WAITING);
	struct server *s0 = c[0]->server;
	transaction_done(c[0]);
	CHECK(c[2]->server == s0);
	CHECK_INT(c[2]->state, CL_ACTIVE);
	CHECK_INT(p->n_servers[SV_IDLE], 0);
	/* Nobody waits: released servers go idle, the last one released is
	 * the next one used. */
	struct server *s1 = c[1]->server;
	transaction_done(c[1]);
	transaction_done(c[2]);
	CHECK_INT(p->n_servers[SV_IDLE], 2);
	events_client_wants_server(c[1]);
	CHECK(c[1]->server == s0);
	transaction_done(c[1]);
	CHECK(s1->state == SV_IDLE);
	/* A released server whose client had a cancel in flight waits. */
	events_client_wants_server(c[0]);
	struct server *s = c[0]->server;
	s->cancels_in_flight = 1;
	transaction_done(c[0]);
	CHECK_INT(s->state, SV_BEING_CANCELED);
	events_client_wants_server(c[1]);
	CHECK(c[1]->server != s);
	s->cancels_in_flight = 0;
	events_server_ready(s);
	CHECK_INT(s->state, SV_IDLE);
	free_clients(c, 3);
}

int main(void)
{
	RUN(test_fifo_waiting);
	RUN(test_pool_size_and_a_closed_server);
	RUN(test_max_db_connections);
	RUN(test_max_user_connections);
	RUN(test_reserve_pool);
	RUN(test_release_and_hand_over);
	pool_free_all();
	for (int i = 0; i < n_launched; i++)
		free(launched[i]);
	config_free(config_swap(NULL));
	return UNIT_DONE();
}
