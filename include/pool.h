/* pool: one pool per (database, user) with its clients and servers kept in
 * one list per state, the scheduler that gives servers to waiting clients,
 * and the janitor that runs once a second for timeouts and pool upkeep. */
#ifndef TIDEPOOL_POOL_H
#define TIDEPOOL_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "list.h"
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
	SV_CLOSED,       /* closed, waiting to be freed */
	SV_STATE_COUNT
};

struct pool_param {
	char *name, *value;
};

struct pool {
	struct list_node node;         /* in the global pool list */
	char *db_name;                 /* as the client asked */
	char *user_name;               /* as the client logged in */
	/* resolved from the current config snapshot (refreshed on reload) */
	char *server_host;             /* NULL: unix socket dir */
	int server_port;
	char *server_dbname;
	char *server_user;
	char *server_password;         /* plain, md5 or SCRAM secret; NULL for none */
	char *connect_query;
	char *startup_encoding, *startup_datestyle, *startup_timezone, *startup_appname;
	enum pool_mode mode;
	int pool_size, min_pool_size, reserve_pool_size;
	int max_db_connections, max_user_connections;
	usec_t server_lifetime;
	bool stale;                    /* its database left the config */

	struct list_node clients[CL_STATE_COUNT];
	int n_clients[CL_STATE_COUNT];
	struct list_node servers[SV_STATE_COUNT];
	int n_servers[SV_STATE_COUNT];

	/* ParameterStatus values of the pool's first server, sent to clients at login */
	struct pool_param *welcome;
	size_t n_welcome;
	bool have_welcome;

	usec_t last_connect_failure;
	char *last_error;              /* the last server login error, for clients */
	char last_sqlstate[6];
	usec_t reserve_since;
	bool paused;                   /* admin PAUSE: no new server assignments */
	bool disabled;                 /* admin DISABLE: no new clients */

	struct stats_counters stats;
};

/* Loads settings for new and existing pools from a config snapshot. */
void pool_apply_config(const struct config *cfg);
/* The pool for (db, user), created on first use. NULL (and *sqlstate, *why)
 * when the database is unknown. */
struct pool *pool_get(const struct config *cfg, const char *db, const char *user,
		      const char **sqlstate, const char **why);
void pool_free_all(void);

/* Scheduling. */
void pool_request_server(struct pool *p, struct client *c);  /* client now waits */
void pool_server_ready(struct pool *p, struct server *s);    /* s is free for work */
void pool_server_login_failed(struct pool *p, const char *sqlstate, const char *msg);
void pool_server_gone(struct pool *p);                        /* a server closed */
void pool_welcome_ready(struct pool *p);                      /* login waiters may go on */
void pool_set_welcome(struct pool *p, const struct pool_param *params, size_t n);

/* Counts and walks for SHOW, metrics, limits. */
int pool_total_servers(const struct pool *p);
int pool_total_clients(void);
struct list_node *pool_list(void);
/* Pool-less clients (still logging in). */
struct list_node *pool_login_clients(void);
int *pool_login_client_count(void);

/* Re-runs the scheduler (after a limit changed or a retry delay passed). */
void pool_kick(struct pool *p);

/* Shutdown and pause support. */
bool pool_all_idle(void);
void pool_close_idle_servers(void);

#endif
