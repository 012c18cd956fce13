/* admin: the admin console, PgBouncer's virtual database "pgbouncer" (alias
 * "tidepool"): who may use it, the simple-query loop of its clients, and
 * the SHOW and control commands, with PgBouncer's columns and types so that
 * tools written for PgBouncer work unchanged.
 *
 * admin.c owns console sessions, the command grammar and the control
 * commands; admin_show.c owns result-set building and every SHOW. */
#ifndef TIDEPOOL_ADMIN_H
#define TIDEPOOL_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "util.h"

struct client;

/* ---- the console handlers main registers with client_set_hooks, and the
 * janitor tick ---- */

/* True for the console's database names, "pgbouncer" and "tidepool". */
bool admin_is_console_db(const char *db);
/* PgBouncer's rule: user "pgbouncer" connecting over the unix socket from
 * the OS user running tidepool logs in to the console without a password. */
bool admin_trusts_peer(const struct client *c);
/* c passed authentication for the console: admin_users, stats_users or the
 * same OS user over the unix socket may stay (the login is answered);
 * anyone else is failed with 42501. */
void admin_login(struct client *c);
/* Processes the buffered input of a logged-in console client. */
void admin_input(struct client *c);
/* c is closing: its console session ends (a waiting command is dropped). */
void admin_client_closed(struct client *c);
/* Once a second (janitor): stats averages, waiting PAUSE/WAIT_CLOSE,
 * console clients throttled by unsent output. */
void admin_tick(void);

/* ---- shared by admin.c and admin_show.c ---- */

/* Column types as PgBouncer reports them (its type letters s i q N T b). */
enum admin_type {
	ADMIN_TEXT,
	ADMIN_INT4,
	ADMIN_INT8,
	ADMIN_NUMERIC,
	ADMIN_TIMESTAMPTZ,
	ADMIN_BYTEA,
};

struct admin_col {
	const char *name;
	enum admin_type type;
};

#define ADMIN_MAX_COLS 32

/* One DataRow being built. Values are text; NULL is SQL NULL. Numbers and
 * times are formatted into the row's own storage. */
struct admin_row {
	size_t n;
	const char *val[ADMIN_MAX_COLS];
	char num[ADMIN_MAX_COLS][40];
};

/* The answer to one query string: protocol messages built in memory (it can
 * be large: SHOW CLIENTS with thousands of clients) and sent at once. */
struct admin_reply {
	uint8_t *data;
	size_t len, cap;
	size_t ncols;   /* columns of the result set being written */
};

void admin_reply_columns(struct admin_reply *r, const struct admin_col *cols, size_t n);
void admin_reply_row(struct admin_reply *r, const struct admin_row *row);
void admin_reply_complete(struct admin_reply *r, const char *tag);
void admin_reply_error(struct admin_reply *r, const char *sqlstate, const char *fmt, ...)
	PRINTF_LIKE(3, 4);
void admin_reply_notice(struct admin_reply *r, const char *msg);
void admin_reply_empty(struct admin_reply *r);
void admin_reply_ready(struct admin_reply *r);
void admin_reply_free(struct admin_reply *r);

void admin_row_init(struct admin_row *row);
void admin_row_text(struct admin_row *row, const char *s);
void admin_row_int(struct admin_row *row, long long v);
void admin_row_uint(struct admin_row *row, unsigned long long v);
/* A wall-clock time in microseconds as PgBouncer's text, local time
 * "2026-12-07 23:26:44 UTC" (a text column, OID 25); 0 is NULL. */
void admin_row_time(struct admin_row *row, usec_t wall);

enum admin_show_result {
	ADMIN_SHOW_OK,        /* the result set is in the reply */
	ADMIN_SHOW_UNKNOWN,   /* no such SHOW; nothing written */
	ADMIN_SHOW_DENIED,    /* needs admin; nothing written */
};
/* SHOW what (case-insensitive) into r, for an admin or a stats user. */
enum admin_show_result admin_show(struct admin_reply *r, const char *what, bool is_admin);
/* Rolls the stats_period window for the averages of SHOW STATS. */
void admin_stats_tick(usec_t now);

#endif
