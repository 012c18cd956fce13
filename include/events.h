/* events: what clients and servers report to the pool that owns their
 * lists. Layer 4 (client, login, server, server_login, auth_query) never
 * calls the pool; it says what happened (a client wants a server, a server
 * is ready, a login failed ...) through this table, which pool_init()
 * registers at start-up, as dns_init() takes its callbacks. The pool then
 * moves the object to the list of its new state and schedules.
 *
 * Each call is one indirect call through a table set once: no allocation,
 * no lookup. */
#ifndef TIDEPOOL_EVENTS_H
#define TIDEPOOL_EVENTS_H

#include <stdbool.h>
#include <stddef.h>

#include "pool_types.h"

struct client;
struct server;

struct events {
	/* Clients. */
	void (*client_accepted)(struct client *c);          /* -> CL_LOGIN */
	void (*client_authenticated)(struct client *c);     /* -> CL_WAIT_LOGIN; CL_IDLE at once if the pool has its parameters */
	void (*client_idle)(struct client *c);              /* -> CL_IDLE: logged in, transaction over, console command done */
	void (*client_wants_server)(struct client *c);      /* -> CL_WAITING; may be linked before this returns */
	void (*client_closed)(struct client *c);            /* -> CL_CLOSED: leaves its list */
	/* The pool a logging-in client joins (NULL: *sqlstate, *why say why). */
	struct pool *(*pool_for)(const struct config *cfg, const char *db, const char *user, int replication,
				 const char **sqlstate, const char **why);
	struct pool *(*console_pool)(void);
	int (*client_count)(void);                          /* clients past their startup packet */
	/* Logged-in clients of the pools of database db and/or user (NULL: any). */
	int (*pool_client_count)(const char *db, const char *user);
	/* Servers. */
	void (*server_connecting)(struct server *s);        /* -> SV_CONNECTING (a new server) */
	void (*server_login_started)(struct server *s);     /* SV_CONNECTING -> SV_LOGIN */
	void (*server_ready)(struct server *s);             /* free for work: SV_IDLE, SV_BEING_CANCELED or closed */
	void (*server_testing)(struct server *s);           /* -> SV_TESTED: reset query, pooler request */
	void (*server_closing)(struct server *s);           /* -> SV_CLOSED: leaves its list */
	void (*server_gone)(struct pool *p);                /* a server of p closed (after its client was told) */
	/* refused: PostgreSQL (or DNS) said no, else it could not be reached
	 * (see pool_server_login_failed). */
	void (*server_login_failed)(struct pool *p, bool refused, const char *sqlstate, const char *msg);
	/* A connection to hosts[idx] failed before login; true: another host
	 * may be tried (see pool_host_failed). */
	bool (*host_failed)(struct pool *p, int idx, bool refused, const char *sqlstate, const char *msg);
	/* The first server's ParameterStatus values, for clients' logins. */
	void (*server_welcome)(struct pool *p, const struct pool_param *params, size_t n);
	/* Pooler requests (auth_query): see struct pool_waiter. */
	void (*wait_for_server)(struct pool *p, struct pool_waiter *w);
	void (*cancel_wait)(struct pool *p, struct pool_waiter *w);
};

/* The registered table; set once by events_init() before any connection. */
extern const struct events *events_table;

void events_init(const struct events *table);

static inline void events_client_accepted(struct client *c) { events_table->client_accepted(c); }
static inline void events_client_authenticated(struct client *c) { events_table->client_authenticated(c); }
static inline void events_client_idle(struct client *c) { events_table->client_idle(c); }
static inline void events_client_wants_server(struct client *c) { events_table->client_wants_server(c); }
static inline void events_client_closed(struct client *c) { events_table->client_closed(c); }
static inline void events_server_connecting(struct server *s) { events_table->server_connecting(s); }
static inline void events_server_login_started(struct server *s) { events_table->server_login_started(s); }
static inline void events_server_ready(struct server *s) { events_table->server_ready(s); }
static inline void events_server_testing(struct server *s) { events_table->server_testing(s); }
static inline void events_server_closing(struct server *s) { events_table->server_closing(s); }
static inline void events_server_gone(struct pool *p) { events_table->server_gone(p); }

static inline struct pool *events_pool_for(const struct config *cfg, const char *db, const char *user,
					   int replication, const char **sqlstate, const char **why)
{
	return events_table->pool_for(cfg, db, user, replication, sqlstate, why);
}
static inline struct pool *events_console_pool(void) { return events_table->console_pool(); }
static inline int events_client_count(void) { return events_table->client_count(); }
static inline int events_pool_client_count(const char *db, const char *user)
{
	return events_table->pool_client_count(db, user);
}
static inline void events_server_login_failed(struct pool *p, bool refused, const char *sqlstate,
					      const char *msg)
{
	events_table->server_login_failed(p, refused, sqlstate, msg);
}
static inline bool events_host_failed(struct pool *p, int idx, bool refused, const char *sqlstate,
				      const char *msg)
{
	return events_table->host_failed(p, idx, refused, sqlstate, msg);
}
static inline void events_server_welcome(struct pool *p, const struct pool_param *params, size_t n)
{
	events_table->server_welcome(p, params, n);
}
static inline void events_wait_for_server(struct pool *p, struct pool_waiter *w)
{
	events_table->wait_for_server(p, w);
}
static inline void events_cancel_wait(struct pool *p, struct pool_waiter *w)
{
	events_table->cancel_wait(p, w);
}

#endif
