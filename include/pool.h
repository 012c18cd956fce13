/* pool: one pool per (database, user) with its clients and servers kept in
 * one list per state, the scheduler that gives servers to waiting clients,
 * and the janitor that runs once a second for timeouts and pool upkeep. */
#ifndef TIDEPOOL_POOL_H
#define TIDEPOOL_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "pool_types.h"
#include "server.h"

struct client;

/* Registers the pool's handlers for what clients and servers report
 * (events.h). Called at start-up, before any connection (and by unit tests
 * after pool_free_all, to start over). */
void pool_init(void);

/* What the scheduler asks of clients and servers. The real functions by
 * default; unit tests put fakes here to run the scheduler without sockets
 * (NULL restores the real ones). */
struct pool_calls {
	enum server_launch_result (*launch)(struct pool *p, int host_idx, char *msg, size_t msglen);
	void (*link)(struct client *c, struct server *s);        /* both already CL_ACTIVE/SV_ACTIVE */
	void (*close_server)(struct server *s, const char *reason);
	void (*fail_client)(struct client *c, const char *sqlstate, const char *msg);
	void (*finish_login)(struct client *c);                  /* already CL_WAIT_LOGIN */
	void (*run_internal)(struct server *s, const char *sql, bool for_client, server_query_done_fn done);
};
void pool_set_calls(const struct pool_calls *calls);

/* The only writers of a client's or server's state: each moves the object
 * from the pool's list for its old state to the one for st (the tail;
 * SV_IDLE's head, so the most recently used server is reused first) and
 * keeps the per-state counts. */
void pool_client_change_state(struct client *c, enum client_state st);
void pool_server_change_state(struct server *s, enum server_state st);

/* Loads settings for new and existing pools from a config snapshot; a pool
 * whose server target (host, port, dbname, user, password, connect_query,
 * startup parameters) changed closes its servers at their next release. */
void pool_apply_config(const struct config *cfg);
/* Every pool's servers close at their next release (server TLS changed). */
void pool_close_all_at_release(const char *why);
/* The pool for (db, user), created on first use. NULL (and *sqlstate, *why)
 * when the database is unknown. */
struct pool *pool_get(const struct config *cfg, const char *db, const char *user, int replication,
		      const char **sqlstate, const char **why);
void pool_free_all(void);
/* The admin console's one pool (database and user "pgbouncer", as in
 * PgBouncer), created on first use. It never opens servers. */
struct pool *pool_get_console(void);

/* Scheduling. */
void pool_request_server(struct pool *p, struct client *c);  /* client now waits */
void pool_server_ready(struct pool *p, struct server *s);    /* s is free for work */
/* A server login failed. refused: PostgreSQL (or DNS) gave a definite no,
 * and clients waiting for a server get the error at once when none is left;
 * else (unreachable, timed out, TLS failed, starting up) they wait for the
 * next attempt, server_login_retry later. */
void pool_server_login_failed(struct pool *p, bool refused, const char *sqlstate, const char *msg);
void pool_server_gone(struct pool *p);                        /* a server closed */
void pool_welcome_ready(struct pool *p);                      /* login waiters may go on */
void pool_set_welcome(struct pool *p, const struct pool_param *params, size_t n);

/* w waits for a server of p (see struct pool_waiter); may call back at once. */
void pool_wait_for_server(struct pool *p, struct pool_waiter *w);
/* w no longer wants a server. */
void pool_cancel_wait(struct pool *p, struct pool_waiter *w);

/* Counts and walks for SHOW, metrics, limits. */
int pool_total_servers(const struct pool *p);
int pool_total_clients(void);
/* Logged-in clients of the pools of database db and/or user (NULL: any);
 * console clients count for the user they logged in as, and for the
 * database "pgbouncer", as in PgBouncer. */
int pool_count_clients(const char *db, const char *user);
struct list_node *pool_list(void);
/* Pool-less clients (still logging in). */
struct list_node *pool_login_clients(void);
int *pool_login_client_count(void);

/* Host lists. The index of the host a new server should use (-1: the
 * default unix socket), by load_balance_hosts, skipping hosts that refused
 * a connection less than server_login_retry ago. */
int pool_pick_host(struct pool *p);
/* A connection to hosts[idx] failed before login (refused, unreachable,
 * unresolvable). With other hosts still usable the host is skipped for
 * server_login_retry and true is returned (try again); otherwise the pool
 * fails as pool_server_login_failed does and false is returned. */
bool pool_host_failed(struct pool *p, int idx, bool refused, const char *sqlstate, const char *msg);
/* The DNS answer for host changed: servers whose address left it are marked
 * close_needed (idle ones close now, others when released). */
void pool_dns_changed(const char *host);
/* Re-resolves expired names the pool's servers use (janitor). */
void pool_refresh_dns(struct pool *p);

/* Opens one more server for p on the host pool_pick_host() chooses,
 * skipping refusing hosts of a list. False when none could start now (or
 * DNS must answer first). */
bool pool_launch(struct pool *p);

/* Re-runs the scheduler (after a limit changed or a retry delay passed). */
void pool_kick(struct pool *p);

/* Shutdown and pause support. */
bool pool_all_idle(void);
void pool_close_idle_servers(void);

/* Admin state that outlives pools (it applies to pools created later too).
 * PAUSE: a paused pool hands out no server and closes servers as they are
 * released. A pool is paused when its database's own flag (set here) or
 * the global one (held by lifecycle) is set. */
void pool_set_paused(const char *db, bool on);
bool pool_db_paused(const char *db);      /* the database's own flag */
bool pool_any_paused(void);               /* the global flag or any database's */
/* The global flag changed (lifecycle's action): pools re-derive theirs;
 * clearing it clears every database's flag too (RESUME without a database
 * undoes them all). */
void pool_global_pause_changed(bool on);
/* DISABLE: logins to db are refused. */
void pool_set_disabled(const char *db, bool on);
bool pool_db_disabled(const char *db);
/* SUSPEND (lifecycle_suspended): no pool hands out servers, and sockets
 * stop reading once they have input (conn_suspend); nothing is closed.
 * Called when it changed: on resume every pool is rescheduled. */
void pool_suspend_changed(bool on);
/* Closes the idle servers of one pool. */
void pool_close_idle(struct pool *p, const char *reason);
/* fn runs each time a server of any pool closes (inside server_close: it
 * must only schedule work); the admin console's PAUSE waits on it. */
void pool_set_server_gone_hook(void (*fn)(void));

#endif
