/*
 * Session state in transaction and statement mode: what a query string
 * leaves on the backend past the end of its transaction.
 *
 * Two kinds. Settings (SET, RESET, SET ROLE, SET SESSION AUTHORIZATION,
 * set_config(name, value, false), DISCARD ALL) can be replayed: tidepool
 * records them per client and applies them on every backend the client
 * gets (settings.c). Everything else cannot: a LISTEN, a session-level
 * advisory lock, a temporary table, an SQL-level PREPARE, a cursor WITH
 * HOLD, a LOADed library, or a setting whose value is not a literal.
 * For those the pool's session_state policy decides (pin, error, allow).
 *
 * Pure and cheap on the hot path: pin_classify() reads the first keyword
 * of each statement and runs one memchr for '_' (advisory_lock,
 * set_config); it does not parse SQL. Only a string that may change a
 * setting is then read precisely, with string literals, quoted names,
 * comments and dollar quotes, by pin_settings().
 */
#ifndef TIDEPOOL_PIN_H
#define TIDEPOOL_PIN_H

#include <stdbool.h>
#include <stddef.h>

enum pin_reason {
	PIN_NONE,
	PIN_LISTEN,          /* LISTEN channel */
	PIN_ADVISORY_LOCK,   /* pg_[try_]advisory_lock[_shared](...) */
	PIN_TEMP_TABLE,      /* CREATE [GLOBAL|LOCAL] TEMP[ORARY] ..., SELECT ... INTO TEMP */
	PIN_PREPARE,         /* SQL-level PREPARE name AS ... */
	PIN_HOLD_CURSOR,     /* DECLARE ... WITH HOLD */
	PIN_LOAD,            /* LOAD 'library' */
	PIN_UNREPLAYABLE,    /* a session setting whose value cannot be replayed */
	PIN_UNTRACKED,       /* settings tidepool lost track of (ROLLBACK TO SAVEPOINT) */
};

struct pin_class {
	enum pin_reason reason;   /* the first non-replayable state found, or PIN_NONE */
	bool settings;            /* may change a session setting: read it with pin_settings() */
	/* Some statement starts (after blanks and comments) with 'd' or is
	 * empty: it may be DEALLOCATE or DISCARD, which prepared.c reads
	 * precisely. The same scan serves both, so a Query's text is split
	 * at ';' once (issue 23: one scan per statement for all classifiers). */
	bool may_deallocate;
};

/* One scan of query string q (len bytes, maybe a prefix of the whole
 * string). */
struct pin_class pin_classify(const char *q, size_t len);
/* pin_classify(q, len).reason */
enum pin_reason pin_reason_of_sql(const char *q, size_t len);
const char *pin_reason_name(enum pin_reason r);

enum pin_change_kind {
	PIN_SET,             /* SET [SESSION] name TO value: value is the SQL text of the value list */
	PIN_SET_CONFIG,      /* set_config('name', value, false): value is the SQL string literal */
	PIN_RESET,           /* RESET name, SET name TO DEFAULT, SET ROLE NONE */
	PIN_RESET_ALL,       /* RESET ALL (role and session authorization stay) */
	PIN_DISCARD_ALL,     /* DISCARD ALL: everything, role and session authorization too */
	PIN_CANNOT_REPLAY,   /* a session-level change tidepool cannot replay */
};

#define PIN_NAME_MAX 64

/* One session-level change, in statement number stmt (counting the
 * statements that PostgreSQL answers with CommandComplete or
 * ErrorResponse; empty ones do not count). SET ROLE is the name "role",
 * SET SESSION AUTHORIZATION "session_authorization", SET TIME ZONE
 * "timezone", SET NAMES "client_encoding", SET SCHEMA "search_path";
 * names are folded to lower case. */
struct pin_change {
	unsigned stmt;
	enum pin_change_kind kind;
	char name[PIN_NAME_MAX];
	const char *value;        /* points into q */
	size_t value_len;
};

/* Reads whole query string q precisely and fills out[] (up to cap) with
 * its session-level setting changes in order; SET LOCAL, SET TRANSACTION
 * and set_config(..., true) are not changes. Returns how many changes
 * there are (more than cap: the caller treats the string as
 * unreplayable); *n_stmts gets the number of statements. */
size_t pin_settings(const char *q, size_t len, struct pin_change *out, size_t cap, unsigned *n_stmts);

#endif
