/* server: one PostgreSQL backend connection and its state machine
 * (connecting, login, idle, active, used, tested), and the server side of
 * forwarding, including the transaction-boundary release. */
#ifndef TIDEPOOL_SERVER_H
#define TIDEPOOL_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "list.h"
#include "params.h"
#include "pool_types.h"
#include "settings.h"

struct scram_client;
struct ps_server_state;
struct server;

typedef void (*server_query_done_fn)(struct server *s, bool ok);

/* A request the pooler makes for itself and reads the answer of (the
 * auth_query lookup, the budget's limits query). Rows and errors are shown
 * to the owner as they come; done runs at the last ReadyForQuery expected,
 * with the server still in SV_TESTED (or SV_LOGIN) for the owner to give
 * back (events_server_ready) or close; lost
 * runs instead if the server closes first. */
struct server_request_ops {
	void (*row)(void *arg, const uint8_t *body, size_t len);
	void (*error)(void *arg, const uint8_t *body, size_t len);
	void (*done)(struct server *s, void *arg);
	void (*lost)(void *arg, const char *why);
};

struct server {
	struct conn conn;
	struct list_node node;
	uint64_t id;
	enum server_state state;
	struct pool *pool;
	struct client *client;           /* linked client when SV_ACTIVE */
	uint32_t backend_pid, backend_key;
	struct param_set params;         /* tracked parameters as the backend reported */
	/* what the linked client still waits for */
	uint32_t pending_ready;          /* Query/Sync/FunctionCall sent, ReadyForQuery not yet seen */
	bool unsynced;                   /* extended-protocol messages sent since the last Sync */
	bool copy_in;                    /* in COPY FROM STDIN */
	bool fatal_forwarded;            /* the backend's own FATAL went to the client */
	bool login_settled;              /* login succeeded, or its pool knows why it failed */
	char tx_status;                  /* last ReadyForQuery status: I, T or E */
	bool release_after_flush;
	uint32_t sync_sent, sync_recv;   /* Sync/Query sent, ReadyForQuery seen: numbers the batches */
	struct ps_server_state *ps;      /* prepared statements on this backend, when any */
	usec_t query_start;              /* first request since the last ReadyForQuery */
	usec_t xact_start;               /* first request while the transaction was idle */
	usec_t ready_time;               /* last ReadyForQuery: idle in a transaction since */
	/* a query the pooler runs itself (reset, check, SET, connect_query) */
	bool internal;
	bool internal_for_client;        /* ParameterStatus updates go to the client's wants too */
	bool internal_failed;
	server_query_done_fn internal_done;
	const struct server_request_ops *request;  /* set while a request of the pooler runs */
	void *request_arg;
	unsigned request_ready_left;     /* ReadyForQuery messages still to come */
	/* login */
	bool ssl_requested;              /* SSLRequest sent, its one-byte answer pending */
	struct scram_client *scram;
	int auth_phase;
	struct pool_param *login_params;
	size_t n_login_params;
	usec_t connect_time, connect_wall, state_since, last_used;
	bool close_needed;
	bool session_state;              /* a client left state here: reset before reuse */
	uint32_t outcomes;               /* CommandComplete/ErrorResponse/... since the last ReadyForQuery */
	uint32_t n_exec;                 /* Executes sent since the last Sync */
	struct settings_list applied;    /* settings a client left on the backend (settings.h) */
	bool syncing_settings;           /* the SET running at link also applies those */
	uint16_t cancels_in_flight;      /* cancel requests forwarded to its backend, not yet delivered */
	char addr[64];
	int port;
	int host_idx;                    /* its pool's hosts[] entry; -1: the default unix socket */
	struct sockaddr_storage connect_addr;   /* where it connected (also for cancel requests) */
	socklen_t connect_addrlen;
};

enum server_launch_result {
	SERVER_LAUNCH_STARTED,
	SERVER_LAUNCH_PENDING,   /* waiting for DNS: the pool is kicked again when it answers */
	SERVER_LAUNCH_FAILED,    /* msg says why: cannot connect (worth a retry) */
	SERVER_LAUNCH_UNRESOLVED, /* msg says why: the name does not resolve (a definite no) */
};
/* Starts connecting a new server of p to hosts[host_idx] (-1: the default
 * unix socket). */
enum server_launch_result server_launch(struct pool *p, int host_idx, char *msg, size_t msglen);
/* Pairs s with client c (the pool has made it SV_ACTIVE); tracked
 * parameters are synced first, then client_linked(s, ok) is called. */
void server_link(struct server *s, struct client *c);
/* Every cancel forwarded to s's backend has been taken by PostgreSQL. */
void server_cancels_delivered(struct server *s);
/* The client is gone (or done): put s back to the pool if clean, else close. */
void server_release(struct server *s, bool client_left);
/* Runs sql as an internal query; done(s, ok) when its ReadyForQuery arrives. */
void server_run_internal(struct server *s, const char *sql, bool for_client, server_query_done_fn done);
/* Sends msgs (complete messages, expecting n_ready ReadyForQuery answers)
 * on an idle server of the caller's, which moves to SV_TESTED, or on one
 * that has just logged in (the login-ready hook), which stays in SV_LOGIN
 * so that its pool does not open another meanwhile; see struct
 * server_request_ops. */
void server_run_request(struct server *s, const void *msgs, size_t len, unsigned n_ready,
			const struct server_request_ops *ops, void *arg);
void server_close(struct server *s, const char *reason);
/* Continue processing buffered input. */
void server_process(struct server *s);
const char *server_name(const struct server *s, char *buf, size_t len);
const char *server_state_name(enum server_state st);
/* True when no query or transaction is in flight. */
bool server_is_clean(const struct server *s);

#define server_log(lvl, s, fmt, ...) do { \
	if (log_enabled(lvl)) { \
		char server_log_buf_[160]; \
		log_write(lvl, "%s " fmt, server_name((s), server_log_buf_, sizeof(server_log_buf_)), ##__VA_ARGS__); \
	} \
} while (0)

#endif
