/*
 * Session state in transaction and statement mode.
 *
 * Some statements leave state on the backend that outlives the
 * transaction: a LISTEN, a session-level advisory lock, a temporary table,
 * an SQL-level PREPARE, a cursor WITH HOLD. Handing that backend to another
 * client afterwards is wrong twice over: this client loses the state (its
 * notifications, its lock) and the next one inherits it. tidepool instead
 * pins the client to its backend until it disconnects (pin_session_state,
 * on by default); the backend is reset before anyone else gets it.
 *
 * The recognizer is pure and cheap: it reads the first keywords of a query
 * string and looks for "advisory_lock" in it; it does not parse SQL.
 */
#ifndef TIDEPOOL_PIN_H
#define TIDEPOOL_PIN_H

#include <stddef.h>

enum pin_reason {
	PIN_NONE,
	PIN_LISTEN,          /* LISTEN channel */
	PIN_ADVISORY_LOCK,   /* pg_[try_]advisory_lock[_shared](...) */
	PIN_TEMP_TABLE,      /* CREATE [GLOBAL|LOCAL] TEMP[ORARY] ... */
	PIN_PREPARE,         /* SQL-level PREPARE name AS ... */
	PIN_HOLD_CURSOR,     /* DECLARE ... WITH HOLD */
};

/* What in query string q (len bytes, maybe a prefix of the whole string)
 * keeps state on the backend past the end of the transaction. */
enum pin_reason pin_reason_of_sql(const char *q, size_t len);
const char *pin_reason_name(enum pin_reason r);

#endif
