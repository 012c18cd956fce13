/*
 * Recognizes statements whose effect outlives the transaction (see pin.h).
 */
#include "pin.h"

#include <stdbool.h>
#include <string.h>

#include "sqlscan.h"

/* The next unquoted word, folded ("" for a quoted one, one too long to be
 * a keyword, or none). False if the next token is not a word. */
static bool keyword(struct sql_scan *sc, char *out, size_t cap)
{
	bool quoted;
	bool found = sql_read_word(sc, out, cap, &quoted);
	if (!found || quoted)
		out[0] = '\0';
	return found;
}

static bool is(const char *w, const char *kw)
{
	return strcmp(w, kw) == 0;
}

static bool temp_word(const char *w)
{
	return is(w, "temp") || is(w, "temporary");
}

/* DECLARE name [BINARY] [ASENSITIVE|INSENSITIVE] [[NO] SCROLL] CURSOR
 * [WITH HOLD | WITHOUT HOLD] FOR query: HOLD right after WITH, before FOR. */
static bool declares_hold_cursor(struct sql_scan *sc)
{
	char w[16];
	bool after_with = false;
	while (keyword(sc, w, sizeof(w))) {
		if (is(w, "for"))
			return false;
		if (after_with && is(w, "hold"))
			return true;
		after_with = is(w, "with");
	}
	return false;
}

/* pg_advisory_lock, pg_advisory_lock_shared, pg_try_advisory_lock and
 * pg_try_advisory_lock_shared all contain "advisory_lock"; the
 * transaction-scoped pg_advisory_xact_lock and the unlock functions do not.
 * memchr finds the rare '_' quickly, so a query without one costs little. */
static bool calls_advisory_lock(const char *q, size_t len)
{
	static const char before[] = "advisory", after[] = "lock";
	const size_t nb = sizeof(before) - 1, na = sizeof(after) - 1;
	const char *p = q, *end = q + len;
	while ((p = memchr(p, '_', (size_t)(end - p))) != NULL) {
		if ((size_t)(p - q) >= nb && (size_t)(end - p - 1) >= na) {
			bool match = true;
			for (size_t i = 0; i < nb && match; i++)
				match = sql_lower(p[-(ptrdiff_t)nb + (ptrdiff_t)i]) == before[i];
			for (size_t i = 0; i < na && match; i++)
				match = sql_lower(p[1 + i]) == after[i];
			if (match)
				return true;
		}
		p++;
	}
	return false;
}

/* Can a statement whose first byte is ch pin? Its keyword starts with
 * l, p, c or d; blanks and comments come before it. */
static inline bool might_pin(char ch)
{
	char folded = (char)(ch | 0x20);
	if (folded == 'l' || folded == 'p' || folded == 'c' || folded == 'd')
		return true;
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v' ||
	       ch == '-' || ch == '/';
}

/* The statement starting at q: its first keywords decide. */
static enum pin_reason statement_reason(const char *q, const char *end)
{
	struct sql_scan sc = { q, end };
	char w[16];
	if (sc.p < sc.end && !might_pin(*sc.p))
		return PIN_NONE;   /* most statements (SELECT, INSERT, ...) end here */
	sql_skip_blank(&sc);
	if (sc.p == sc.end || !might_pin(*sc.p))
		return PIN_NONE;
	keyword(&sc, w, sizeof(w));
	if (is(w, "listen"))
		return PIN_LISTEN;
	if (is(w, "prepare")) {
		keyword(&sc, w, sizeof(w));
		if (!is(w, "transaction"))   /* PREPARE TRANSACTION ends one instead */
			return PIN_PREPARE;
	} else if (is(w, "create")) {
		keyword(&sc, w, sizeof(w));
		if (is(w, "global") || is(w, "local"))
			keyword(&sc, w, sizeof(w));
		if (temp_word(w))
			return PIN_TEMP_TABLE;
	} else if (is(w, "declare")) {
		if (declares_hold_cursor(&sc))
			return PIN_HOLD_CURSOR;
	}
	return PIN_NONE;
}

/* Each statement of a multi-statement string starts after a ';'. A ';'
 * inside a literal or comment may start a false statement; at worst that
 * pins a client needlessly, and scanning quotes would cost every query. */
enum pin_reason pin_reason_of_sql(const char *q, size_t len)
{
	const char *end = q + len, *p = q;
	do {
		enum pin_reason r = statement_reason(p, end);
		if (r != PIN_NONE)
			return r;
		p = sql_statement_end(p, end);
	} while (p < end);
	return calls_advisory_lock(q, len) ? PIN_ADVISORY_LOCK : PIN_NONE;
}

const char *pin_reason_name(enum pin_reason r)
{
	switch (r) {
	case PIN_NONE: return "none";
	case PIN_LISTEN: return "LISTEN";
	case PIN_ADVISORY_LOCK: return "session advisory lock";
	case PIN_TEMP_TABLE: return "temporary table";
	case PIN_PREPARE: return "SQL-level PREPARE";
	case PIN_HOLD_CURSOR: return "cursor WITH HOLD";
	}
	return "?";
}
