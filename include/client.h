/* client: one application connection and its state machine (login, idle,
 * waiting, active), and the client side of forwarding. */
#ifndef TIDEPOOL_CLIENT_H
#define TIDEPOOL_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "list.h"
#include "params.h"
#include "pool_types.h"
#include "pin.h"

struct login_auth;

struct client {
	struct conn conn;
	struct list_node node;          /* in its pool's list for its state */
	struct client *key_next;        /* cancel key hash chain */
	uint64_t id;
	enum client_state state;
	struct pool *pool;
	struct server *server;          /* linked server when CL_ACTIVE */
	char *user, *dbname;
	struct param_set params;        /* tracked parameters as the client wants them */
	uint32_t cancel_pid, cancel_key;
	usec_t connect_time;            /* monotonic */
	usec_t connect_wall;            /* wall clock, for SHOW */
	usec_t state_since;             /* monotonic time it entered its state */
	usec_t request_time;            /* last time it sent something */
	usec_t wait_notified;           /* state_since of the wait query_wait_notify told it about */
	char addr[48];                  /* INET6_ADDRSTRLEN fits */
	int port;
	bool is_unix;
	bool closing;
	bool terminate_seen;            /* Terminate received: close when flushed */
	bool ps_track;                  /* named prepared statements are rewritten */
	bool ps_hold;                   /* scanning waits for the server to answer everything */
	bool pinned;                    /* keeps its server until it leaves (pin.h) */
	bool drain_served;              /* ended a transaction during a drain: the next one is refused */
	struct pstmt_client_table *ps;  /* its prepared statement names, when it has any */
	struct settings_client *set;    /* its session settings, once it changed one (settings.h) */
	bool skip_to_sync;              /* a refused Parse: its batch is dropped up to Sync */
	struct login_auth *auth;        /* authentication in progress (login.c), else NULL */
	bool startup_done;
	int replication;                /* enum pool_replication asked for at startup */
};

/* The admin console's handlers. A console client is a client whose pool
 * is the console pool: its login, input and close go to these instead of
 * a server (client.c and login.c call them; admin.c implements them). */
struct client_console_ops {
	/* True for the console's database names. */
	bool (*is_console_db)(const char *db);
	/* The peer may use the console without a password. */
	bool (*trusts_peer)(const struct client *c);
	/* c passed authentication for the console. */
	void (*login)(struct client *c);
	/* Processes the buffered input of a logged-in console client. */
	void (*input)(struct client *c);
	/* c is closing: its console session ends. */
	void (*closed)(struct client *c);
};

/* What clients need from the layers above, registered once at start-up
 * (by main): nothing here calls up. */
struct client_hooks {
	/* True once a shutdown closes clients at their transaction
	 * boundaries (lifecycle_draining). */
	bool (*draining)(void);
	/* True while SHUTDOWN WAIT_FOR_CLIENTS/WAIT_FOR_SERVERS waits with the
	 * TCP listeners closed: the unix socket still takes console logins,
	 * and only those. NULL: never. */
	bool (*shutting_down)(void);
	const struct client_console_ops *console;   /* NULL: no console */
};
void client_set_hooks(const struct client_hooks *hooks);
/* The registered console handlers (never NULL: without a console no
 * database is the console's). */
const struct client_console_ops *client_console(void);
/* The shutting_down hook's answer (false when none is registered). */
bool client_shutting_down(void);

/* c keeps a server between transactions (session mode, or pinned) and is
 * between two of them now: a drain may close it. */
bool client_between_transactions(const struct client *c);
/* Takes ownership of an accepted socket. */
void client_accept(int fd, const struct sockaddr *addr, socklen_t addrlen, bool is_unix);
/* Sends an ErrorResponse (FATAL) with sqlstate and closes the client. */
void client_fail(struct client *c, const char *sqlstate, const char *fmt, ...) PRINTF_LIKE(3, 4);
/* Queues a NoticeResponse (severity NOTICE, SQLSTATE 00000) to c. */
void client_notice(struct client *c, const char *msg);
/* Closes without a message. */
void client_close(struct client *c, const char *reason);
/* The scheduler gives c its server (both already active); forwarding starts. */
void client_link(struct client *c, struct server *s);
/* The linked server is ready for c's input (parameters synced, or not: ok). */
void client_linked(struct server *s, bool ok);
/* The server finished the transaction: c goes back to idle. */
void client_unlink(struct client *c);
/* The pool's welcome parameters arrived (CL_WAIT_LOGIN -> CL_IDLE). */
void client_finish_login(struct client *c);
/* Continue processing buffered input (after waiting or being blocked). */
void client_process(struct client *c);
/* The linked server died; the client is told and closed. */
void client_server_lost(struct client *c, const char *why);
/* The client's session state on s could not be followed or kept: the
 * pool's session_state policy decides (pin, or PgBouncer's allow). */
void client_session_state(struct client *c, struct server *s, enum pin_reason why);
/* Log prefix "C-<id> db/user@addr:port". */
const char *client_name(const struct client *c, char *buf, size_t len);
struct client *client_find_by_key(uint32_t pid, uint32_t key);
const char *client_state_name(enum client_state st);

#define client_log(lvl, c, fmt, ...) do { \
	if (log_enabled(lvl)) { \
		char client_log_buf_[160]; \
		log_write(lvl, "%s " fmt, client_name((c), client_log_buf_, sizeof(client_log_buf_)), ##__VA_ARGS__); \
	} \
} while (0)

#endif
