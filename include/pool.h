/* pool: one pool per (database, user) with its clients and servers kept in
 * one list per state, the scheduler that gives servers to waiting clients,
 * and the janitor that runs once a second for timeouts and pool upkeep. */
#ifndef TIDEPOOL_POOL_H
#define TIDEPOOL_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "list.h"
#include "pstmt.h"
#include "stats.h"

struct client;
struct server;

enum client_state {
	CL_LOGIN,        /* reading the startup packet, authenticating */
	CL_WAIT_LOGIN,   /* authenticated, waiting for the pool's first server parameters */
	CL_IDLE,         /* logged in, between transactions, no server */
	CL_WAITING,      /* has a request, waiting for a server */
	CL_ACTIVE,       /* linked to a server */
	CL_CLOSED,       /* closed, waiting to be freed */
	CL_STATE_COUNT
};

enum server_state {
	SV_CONNECTING,   /* non-blocking connect in progress */
	SV_LOGIN,        /* startup and authentication */
	SV_IDLE,         /* ready in the pool */
	SV_ACTIVE,       /* linked to a client */
	SV_USED,         /* released, needs reset or check before reuse */
	SV_TESTED,       /* running the reset or check query */
	SV_BEING_CANCELED, /* released while a cancel for its last client is in flight */
	SV_CLOSED,       /* closed, waiting to be freed */
	SV_STATE_COUNT
};

struct pool_param {
	char *name, *value;
};

/* Something other than a client that needs one of the pool's servers for a
 * moment (an auth_query lookup). It is served before waiting clients: it
 * stands for clients still logging in. got_server receives an idle server
 * already moved to SV_TESTED; the waiter gives it back with
 * pool_server_ready() or closes it. failed runs when no server could be
 * had (the server's login error). Either call ends the wait. */
struct pool_waiter {
	struct list_node node;
	void (*got_server)(struct pool_waiter *w, struct server *s);
	void (*failed)(struct pool_waiter *w, const char *sqlstate, const char *msg);
};

struct pool {
	struct list_node node;         /* in the global pool list */
	char *db_name;                 /* as the client asked */
	char *user_name;               /* as the client logged in */
	/* resolved from the current config snapshot (refreshed on reload) */
	char *server_host;             /* NULL: unix socket dir; may be a list "a,b,c" */
	int server_port;
	/* server_host split at commas: a new server goes to hosts[pool_pick_host()] */
	char **hosts;
	usec_t *host_down_until;       /* refused a connection: skipped until then */
	size_t n_hosts;
	size_t host_next;              /* round-robin: the next to try; disable: the one in use */
	bool host_round_robin;         /* load_balance_hosts */
	char *server_dbname;
	char *server_user;
	char *server_password;         /* plain, md5 or SCRAM secret; NULL for none */
	char *connect_query;
	char *startup_encoding, *startup_datestyle, *startup_timezone, *startup_appname;
	enum pool_mode mode;
	int pool_size, min_pool_size, reserve_pool_size;
	int max_db_connections, max_user_connections;
	usec_t server_lifetime;
	/* client timeouts and limits: user > database > global, as PgBouncer */
	usec_t query_timeout, query_wait_timeout, idle_transaction_timeout;
	usec_t transaction_timeout, client_idle_timeout;
	int max_db_client_connections, max_user_client_connections;
	bool round_robin;              /* server_round_robin: idle servers are used in turn */
	bool stale;                    /* its database left the config */
	bool console;                  /* the admin console's pool: never has servers */

	struct list_node clients[CL_STATE_COUNT];
	int n_clients[CL_STATE_COUNT];
	struct list_node servers[SV_STATE_COUNT];
	int n_servers[SV_STATE_COUNT];
	int n_pinned;                  /* clients pinned to their server (pin.h) */

	/* ParameterStatus values of the pool's first server, sent to clients at login */
	struct pool_param *welcome;
	size_t n_welcome;
	bool have_welcome;

	usec_t last_connect_failure;
	char *last_error;              /* the last server login error, for clients */
	char last_sqlstate[6];
	usec_t reserve_since;
	bool paused;                   /* admin PAUSE/KILL: no assignments, released servers close */
	bool disabled;                 /* admin DISABLE: no new clients (mirrors the database's flag) */

	struct list_node waiters;      /* struct pool_waiter, first come first served */
	int n_waiters;
	/* The secret of server_user that auth_query gave at a successful login,
	 * for server logins when the configuration has none (server_password
	 * wins). Kept across reloads: it came from the database, not the file. */
	char *looked_up_secret;

	/* SCRAM pass-through: keys proven by a client against the same verifier
	 * that the pool would log in with (server_password or looked_up_secret). */
	bool have_scram_keys;
	uint8_t scram_client_key[32], scram_server_key[32];

	/* protocol-level prepared statements interned for this pool */
	struct pstmt_registry prepared;

	struct stats_counters stats;
	/* For the admin console's averages: copies of the counters taken when
	 * the current stats_period began and when the previous one began. */
	struct stats_counters stats_start, stats_last;
};

/* Loads settings for new and existing pools from a config snapshot. */
void pool_apply_config(const struct config *cfg);
/* The pool for (db, user), created on first use. NULL (and *sqlstate, *why)
 * when the database is unknown. */
struct pool *pool_get(const struct config *cfg, const char *db, const char *user,
		      const char **sqlstate, const char **why);
void pool_free_all(void);
/* The admin console's one pool (database and user "pgbouncer", as in
 * PgBouncer), created on first use. It never opens servers. */
struct pool *pool_get_console(void);

/* Scheduling. */
void pool_request_server(struct pool *p, struct client *c);  /* client now waits */
void pool_server_ready(struct pool *p, struct server *s);    /* s is free for work */
void pool_server_login_failed(struct pool *p, const char *sqlstate, const char *msg);
void pool_server_gone(struct pool *p);                        /* a server closed */
void pool_welcome_ready(struct pool *p);                      /* login waiters may go on */
void pool_set_welcome(struct pool *p, const struct pool_param *params, size_t n);

/* w waits for a server of p (see struct pool_waiter); may call back at once. */
void pool_wait_for_server(struct pool *p, struct pool_waiter *w);
/* w no longer wants a server. */
void pool_cancel_wait(struct pool *p, struct pool_waiter *w);
/* The secret server logins of p use: server_password, else looked_up_secret. */
const char *pool_server_secret(const struct pool *p);

/* Counts and walks for SHOW, metrics, limits. */
int pool_total_servers(const struct pool *p);
int pool_total_clients(void);
/* Logged-in clients of the pools of database db and/or user (NULL: any). */
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
bool pool_host_failed(struct pool *p, int idx, const char *sqlstate, const char *msg);
/* The DNS answer for host changed: servers whose address left it are marked
 * close_needed (idle ones close now, others when released). */
void pool_dns_changed(const char *host);
/* Re-resolves expired names the pool's servers use (janitor). */
void pool_refresh_dns(struct pool *p);

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
