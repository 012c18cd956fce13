/* pool_types: the pool's data, types only (no functions): struct pool with
 * its clients and servers kept in one list per state, the two state enums,
 * and struct pool_waiter. Owned by pool (pool.c is the only writer of the
 * lists, the counts and the state fields); in a header of its own so that
 * clients and servers (layer 4) can hold a pointer to their pool and read
 * its settings and counters without including the scheduler (layer 5). */
#ifndef TIDEPOOL_POOL_TYPES_H
#define TIDEPOOL_POOL_TYPES_H

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
 * events_server_ready() or closes it. failed runs when no server could be
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
	/* A pool of replication clients (replication=true: physical, =database:
	 * logical). Each client gets a server of its own, started with that
	 * replication parameter, never shared and closed when the client
	 * leaves; no SET, check, reset or connect_query is ever sent to it. */
	enum pool_replication { REPL_NONE, REPL_PHYSICAL, REPL_LOGICAL } replication;

	struct list_node clients[CL_STATE_COUNT];
	int n_clients[CL_STATE_COUNT];
	/* query_wait_notify: the last CL_WAITING client the janitor has told
	 * it is queued (the list head when none). The list is in arrival
	 * order, so every client before it has been told and the janitor
	 * resumes after it: no walk over clients already told, each tick. */
	struct list_node *wait_notified_last;
	struct list_node servers[SV_STATE_COUNT];
	int n_servers[SV_STATE_COUNT];
	int n_pinned;                  /* clients pinned to their server (pin.h) */
	enum session_state_policy session_state;

	/* ParameterStatus values of the pool's first server, sent to clients at login */
	struct pool_param *welcome;
	size_t n_welcome;
	bool have_welcome;

	usec_t last_connect_failure;
	char *last_error;              /* the last server login error, for clients */
	char last_sqlstate[6];
	bool last_failure_refused;     /* PostgreSQL (or DNS) said no; else unreachable */
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

#endif
