/*
 * Recognizes statements whose effect outlives the transaction (see pin.h):
 * a cheap first pass for every query string, and a precise reading of the
 * rare ones that change a setting.
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

/* strcmp for short keywords, inline: a call to libc's strcmp costs more
 * than comparing "select" byte by byte, and every SELECT asks. */
static inline bool is(const char *w, const char *kw)
{
	while (*w && *w == *kw)
		w++, kw++;
	return *w == *kw;
}

static bool temp_word(const char *w)
{
	return is(w, "temp") || is(w, "temporary");
}

static bool ident_byte(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == '$' ||
	       (ch >= '0' && ch <= '9') || (unsigned char)ch >= 0x80;
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

/* Does the word at p (len n, folded compare) stand alone? */
static bool word_at(const char *start, const char *p, const char *end, const char *w, size_t n)
{
	if ((size_t)(end - p) < n || (p > start && ident_byte(p[-1])))
		return false;
	for (size_t i = 0; i < n; i++)
		if (sql_lower(p[i]) != w[i])
			return false;
	return p + n == end || !ident_byte(p[n]);
}

/* SELECT ... INTO [LOCAL|GLOBAL] TEMP[ORARY] [TABLE] name: the word INTO
 * followed by a temp word. Two memchr for 'i' and 'I', each kept until
 * passed, so the statement is read about twice at memchr speed. */
static bool selects_into_temp(const char *q, const char *end)
{
	const char *lo = memchr(q, 'i', (size_t)(end - q)), *up = memchr(q, 'I', (size_t)(end - q));
	while (lo || up) {
		const char *hit = !lo ? up : !up ? lo : lo < up ? lo : up;
		if (word_at(q, hit, end, "into", 4)) {
			struct sql_scan sc = { hit + 4, end };
			char w[16];
			keyword(&sc, w, sizeof(w));
			if (is(w, "local") || is(w, "global"))
				keyword(&sc, w, sizeof(w));
			if (temp_word(w))
				return true;
		}
		if (hit == lo)
			lo = memchr(hit + 1, 'i', (size_t)(end - hit - 1));
		else
			up = memchr(hit + 1, 'I', (size_t)(end - hit - 1));
	}
	return false;
}

/* Looks at each '_': pg_[try_]advisory_lock[_shared] contain
 * "advisory_lock" (the transaction-scoped pg_advisory_xact_lock and the
 * unlock functions do not); set_config contains "set_config". memchr
 * finds the rare '_' quickly, so a query without one costs little. */
static void scan_underscores(const char *q, size_t len, struct pin_class *out)
{
	const char *p = q, *end = q + len;
	while ((p = memchr(p, '_', (size_t)(end - p))) != NULL) {
		size_t before = (size_t)(p - q), after = (size_t)(end - p - 1);
		if (before >= 8 && after >= 4 && word_at(p - 8, p - 8, p, "advisory", 8) &&
		    sql_lower(p[1]) == 'l' && sql_lower(p[2]) == 'o' && sql_lower(p[3]) == 'c' &&
		    sql_lower(p[4]) == 'k') {
			if (out->reason == PIN_NONE)
				out->reason = PIN_ADVISORY_LOCK;
		} else if (before >= 3 && after >= 6 && sql_lower(p[-3]) == 's' && sql_lower(p[-2]) == 'e' &&
			   sql_lower(p[-1]) == 't' && word_at(p + 1, p + 1, end, "config", 6)) {
			out->settings = true;
		} else if (before >= 3 && after >= 1 && after < 6 && sql_lower(p[-3]) == 's' && sql_lower(p[-2]) == 'e' &&
			   sql_lower(p[-1]) == 't' && sql_lower(p[1]) == 'c') {
			out->settings = true;   /* a prefix cut inside "set_config" */
		}
		p++;
	}
}

/* Can a statement whose first byte is ch matter? Its keyword starts with
 * l, p, c, d, s or r; blanks and comments come before it. */
static inline bool might_matter(char ch)
{
	char f = (char)(ch | 0x20);
	if (f == 'l' || f == 'p' || f == 'c' || f == 'd' || f == 's' || f == 'r')
		return true;
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v' ||
	       ch == '-' || ch == '/';
}

static enum pin_reason create_reason(struct sql_scan *sc)
{
	char w[16];
	keyword(sc, w, sizeof(w));
	if (is(w, "global") || is(w, "local"))
		keyword(sc, w, sizeof(w));
	return temp_word(w) ? PIN_TEMP_TABLE : PIN_NONE;
}

/* The statement's first word, folded, into w: what sql_read_word gives
 * for an unquoted keyword, "" for anything else (a quoted or too long
 * word, or one with digits, '_' or '$', which no keyword has). Every
 * SELECT takes this path, so it is a tight loop over letters. */
static void first_word(struct sql_scan *sc, char w[16])
{
	const char *p = sc->p;
	size_t n = 0;
	while (p < sc->end && n < 15) {
		char f = (char)(*p | 0x20);
		if (f < 'a' || f > 'z')
			break;
		w[n++] = f;
		p++;
	}
	w[n] = '\0';
	if (p < sc->end && (ident_byte(*p) || *p == '"')) {
		bool quoted;
		char rest[2];
		sc->p = n ? p : sc->p;
		if (n)
			while (sc->p < sc->end && ident_byte(*sc->p))
				sc->p++;
		else
			(void)sql_read_word(sc, rest, sizeof(rest), &quoted);
		w[0] = '\0';
		return;
	}
	sc->p = p;
}

/* The statement [q, end): its first keywords decide. */
static void statement_class(const char *q, const char *end, struct pin_class *out)
{
	struct sql_scan sc = { q, end };
	char w[16];
	enum pin_reason r = PIN_NONE;
	if (sc.p < sc.end && !might_matter(*sc.p))
		return;   /* most statements (INSERT, UPDATE, WITH ...) end here */
	sql_skip_blank(&sc);
	if (sc.p == sc.end || (*sc.p | 0x20) == 'd')
		out->may_deallocate = true;
	if (sc.p == sc.end || !might_matter(*sc.p))
		return;
	first_word(&sc, w);
	if (is(w, "select")) {
		if (selects_into_temp(sc.p, end))
			r = PIN_TEMP_TABLE;
	} else if (is(w, "set") || is(w, "reset") || is(w, "discard")) {
		out->settings = true;
	} else if (is(w, "listen")) {
		r = PIN_LISTEN;
	} else if (is(w, "load")) {
		r = PIN_LOAD;
	} else if (is(w, "prepare")) {
		keyword(&sc, w, sizeof(w));
		if (!is(w, "transaction"))   /* PREPARE TRANSACTION ends one instead */
			r = PIN_PREPARE;
	} else if (is(w, "create")) {
		r = create_reason(&sc);
	} else if (is(w, "declare")) {
		if (declares_hold_cursor(&sc))
			r = PIN_HOLD_CURSOR;
	}
	if (out->reason == PIN_NONE)
		out->reason = r;
}

/* Each statement of a multi-statement string starts after a ';'. A ';'
 * inside a literal or comment may start a false statement; at worst that
 * pins a client needlessly, or reads a string precisely for nothing. */
struct pin_class pin_classify(const char *q, size_t len)
{
	struct pin_class out = { PIN_NONE, false, false };
	/* A Query's text ends in its NUL terminator: not a statement, and
	 * without it "SELECT 1;" is one statement, not two (one memchr less
	 * per statement). */
	while (len > 0 && q[len - 1] == '\0')
		len--;
	const char *end = q + len, *p = q;
	do {
		const char *next = sql_statement_end(p, end);
		statement_class(p, next, &out);
		p = next;
	} while (p < end);
	scan_underscores(q, len, &out);
	return out;
}

enum pin_reason pin_reason_of_sql(const char *q, size_t len)
{
	return pin_classify(q, len).reason;
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
	case PIN_LOAD: return "LOAD";
	case PIN_UNREPLAYABLE: return "setting that cannot be replayed";
	case PIN_UNTRACKED: return "settings rolled back to a savepoint";
	}
	return "?";
}

/* ------------------------------------------------------------------
 * The precise reading: tokens with string literals, quoted names and
 * dollar quotes, statements split where PostgreSQL splits them. */

enum tok_kind { TK_END, TK_WORD, TK_QWORD, TK_STRING, TK_PARAM, TK_NUMBER, TK_PUNCT, TK_BAD };

struct tok {
	enum tok_kind kind;
	const char *start, *end;
	bool backslash;   /* a standard string with a backslash: read differently by scs */
};

/* The end of a '...' string at p (E: backslash escapes), or NULL. */
static const char *string_end(const char *p, const char *end, bool e_string, bool *backslash)
{
	for (p++; p < end; p++) {
		if (*p == '\\') {
			*backslash |= !e_string;
			if (e_string)
				p++;
		} else if (*p == '\'') {
			if (p + 1 < end && p[1] == '\'')
				p++;
			else
				return p + 1;
		}
	}
	return NULL;
}

/* A dollar quote $tag$...$tag$ at p, or NULL when p starts none. */
static const char *dollar_end(const char *p, const char *end, bool *bad)
{
	const char *t = p + 1;
	while (t < end && *t != '$' && ident_byte(*t) && !(t == p + 1 && *t >= '0' && *t <= '9'))
		t++;
	if (t >= end || *t != '$')
		return NULL;
	size_t taglen = (size_t)(t - p) + 1;
	for (const char *s = t + 1; s + taglen <= end; s++)
		if (*s == '$' && memcmp(s, p, taglen) == 0)
			return s + taglen;
	*bad = true;
	return NULL;
}

static struct tok tok_string(const char *start, const char *p, const char *end, bool e_string)
{
	struct tok t = { TK_STRING, start, NULL, false };
	t.end = string_end(p, end, e_string, &t.backslash);
	if (!t.end) {
		t.kind = TK_BAD;
		t.end = end;
	}
	return t;
}

static struct tok tok_word_or_number(const char *p, const char *end, bool number)
{
	struct tok t = { number ? TK_NUMBER : TK_WORD, p, p, false };
	while (t.end < end && (ident_byte(*t.end) || (number && *t.end == '.'))) {
		char f = sql_lower(*t.end);
		t.end++;
		if (number && f == 'e' && t.end + 1 < end && (*t.end == '+' || *t.end == '-') &&
		    t.end[1] >= '0' && t.end[1] <= '9')
			t.end++;
	}
	return t;
}

static struct tok next_tok(struct sql_scan *sc)
{
	sql_skip_blank(sc);
	const char *p = sc->p, *end = sc->end;
	struct tok t = { TK_END, p, p, false };
	if (p >= end)
		return t;
	char ch = *p, f = sql_lower(ch);
	if (ch == '\'') {
		t = tok_string(p, p, end, false);
	} else if ((f == 'e' || f == 'b' || f == 'x' || f == 'n') && p + 1 < end && p[1] == '\'') {
		t = tok_string(p, p + 1, end, f == 'e');
	} else if (f == 'u' && p + 2 < end && p[1] == '&' && p[2] == '\'') {
		t = tok_string(p, p + 2, end, false);
	} else if (ch == '"') {
		struct sql_scan w = { p, end };
		char buf[1];
		bool quoted;
		t.kind = sql_read_word(&w, buf, sizeof(buf), &quoted) ? TK_QWORD : TK_BAD;
		t.end = t.kind == TK_BAD ? end : w.p;
	} else if (ch == '$') {
		bool bad = false;
		const char *de = dollar_end(p, end, &bad);
		if (de) {
			t.kind = TK_STRING;
			t.end = de;
		} else if (bad) {
			t.kind = TK_BAD;
			t.end = end;
		} else {
			t = tok_word_or_number(p + 1, end, true);
			t.kind = TK_PARAM;
			t.start = p;
		}
	} else if ((ch >= '0' && ch <= '9') || (ch == '.' && p + 1 < end && p[1] >= '0' && p[1] <= '9')) {
		t = tok_word_or_number(p, end, true);
	} else if (ident_byte(ch)) {
		t = tok_word_or_number(p, end, false);
	} else {
		t.kind = TK_PUNCT;
		t.end = p + 1;
	}
	sc->p = t.end;
	return t;
}

static bool tok_is(const struct tok *t, const char *w)
{
	size_t n = strlen(w);
	if (t->kind != TK_WORD || (size_t)(t->end - t->start) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (sql_lower(t->start[i]) != w[i])
			return false;
	return true;
}

static bool tok_punct(const struct tok *t, char ch)
{
	return t->kind == TK_PUNCT && *t->start == ch;
}

/* The end of the statement at sc (just after its ';', or the end), and
 * whether it had any token. *unsure: a body (BEGIN ATOMIC) whose ';' do
 * not end the statement, or an unterminated quote. */
static const char *statement_split(struct sql_scan *sc, bool *empty, bool *unsure)
{
	int depth = 0;
	*empty = true;
	for (;;) {
		struct tok t = next_tok(sc);
		switch (t.kind) {
		case TK_END:
			return sc->p;
		case TK_BAD:
			*unsure = true;
			return sc->end;
		case TK_PUNCT:
			if (*t.start == ';' && depth == 0)
				return sc->p;
			depth += *t.start == '(' ? 1 : *t.start == ')' ? -1 : 0;
			break;
		case TK_WORD:
			if (tok_is(&t, "atomic"))
				*unsure = true;
			break;
		case TK_QWORD:
		case TK_STRING:
		case TK_PARAM:
		case TK_NUMBER:
			break;
		}
		*empty = false;
	}
}

/* ---- SET, RESET, DISCARD, set_config */

struct reader {
	struct sql_scan sc;          /* the statement, without its ';' */
	struct pin_change *out;
	size_t cap, n;
	unsigned stmt;
};

static void add_change(struct reader *r, enum pin_change_kind kind, const char *name, const char *v,
		       size_t vlen)
{
	if (r->n < r->cap) {
		struct pin_change *c = &r->out[r->n];
		c->stmt = r->stmt;
		c->kind = kind;
		size_t i = 0;
		for (; name[i] && i + 1 < sizeof(c->name); i++)
			c->name[i] = sql_lower(name[i]);
		c->name[i] = '\0';
		c->value = v;
		c->value_len = vlen;
	}
	r->n++;
}

/* A setting's name: words joined by '.', folded; only [a-z0-9_$.]. */
static bool read_name(struct sql_scan *sc, char *out, size_t cap)
{
	size_t n = 0;
	for (;;) {
		char w[PIN_NAME_MAX];
		bool quoted;
		if (!sql_read_word(sc, w, sizeof(w), &quoted) || !w[0])
			return false;
		for (const char *p = w; *p; p++) {
			char ch = sql_lower(*p);
			if (!ident_byte(ch) || (unsigned char)ch >= 0x80 || n + 2 >= cap)
				return false;
			out[n++] = ch;
		}
		sql_skip_blank(sc);
		if (sc->p >= sc->end || *sc->p != '.')
			break;
		sc->p++;
		out[n++] = '.';
	}
	out[n] = '\0';
	return true;
}

/* A value list (v [, v ...]) to the statement's end; its SQL text. */
static bool read_values(struct sql_scan *sc, const char **v, size_t *vlen)
{
	sql_skip_blank(sc);
	*v = sc->p;
	const char *last = sc->p;
	for (;;) {
		struct tok t = next_tok(sc);
		if (tok_punct(&t, '-') || tok_punct(&t, '+'))
			t = next_tok(sc);
		if (t.kind == TK_BAD || t.kind == TK_END || t.kind == TK_PUNCT || t.kind == TK_PARAM || t.backslash)
			return false;
		last = t.end;
		t = next_tok(sc);
		if (t.kind == TK_END)
			break;
		if (!tok_punct(&t, ','))
			return false;
	}
	*vlen = (size_t)(last - *v);
	return true;
}

/* The value of SET name TO|= ...: DEFAULT resets, FROM CURRENT is none. */
static void set_value(struct reader *r, const char *name, bool need_to)
{
	struct sql_scan save = r->sc;
	struct tok t = next_tok(&r->sc);
	if (need_to && !tok_is(&t, "to") && !tok_punct(&t, '=')) {
		if (tok_is(&t, "from"))
			return;   /* SET name FROM CURRENT: the value it already has */
		add_change(r, PIN_CANNOT_REPLAY, name, NULL, 0);
		return;
	}
	if (!need_to)
		r->sc = save;
	save = r->sc;
	t = next_tok(&r->sc);
	if ((tok_is(&t, "default") || (is(name, "role") && tok_is(&t, "none"))) &&
	    next_tok(&r->sc).kind == TK_END) {
		add_change(r, PIN_RESET, name, NULL, 0);
		return;
	}
	r->sc = save;
	const char *v;
	size_t vlen;
	if (read_values(&r->sc, &v, &vlen))
		add_change(r, PIN_SET, name, v, vlen);
	else
		add_change(r, PIN_CANNOT_REPLAY, name, NULL, 0);
}

/* The forms with keywords for names: ROLE, SESSION AUTHORIZATION, TIME
 * ZONE, NAMES, SCHEMA, XML OPTION. False: a plain name follows. */
static bool set_special(struct reader *r, const char *w)
{
	char w2[16];
	if (is(w, "role")) {
		set_value(r, "role", false);
	} else if (is(w, "names")) {
		set_value(r, "client_encoding", false);
	} else if (is(w, "schema")) {
		set_value(r, "search_path", false);
	} else if (is(w, "time") && keyword(&r->sc, w2, sizeof(w2)) && is(w2, "zone")) {
		struct sql_scan save = r->sc;
		if (keyword(&r->sc, w2, sizeof(w2)) && is(w2, "local"))
			add_change(r, PIN_RESET, "timezone", NULL, 0);
		else
			r->sc = save, set_value(r, "timezone", false);
	} else if (is(w, "xml") && keyword(&r->sc, w2, sizeof(w2)) && is(w2, "option")) {
		set_value(r, "xmloption", false);
	} else if (is(w, "authorization")) {   /* after SESSION */
		set_value(r, "session_authorization", false);
	} else {
		return false;
	}
	return true;
}

static void read_set(struct reader *r)
{
	struct sql_scan start = r->sc;
	char w[16], name[PIN_NAME_MAX];
	keyword(&r->sc, w, sizeof(w));
	if (is(w, "local") || is(w, "transaction") || is(w, "constraints"))
		return;   /* ends with the transaction */
	if (is(w, "session")) {
		start = r->sc;
		keyword(&r->sc, w, sizeof(w));
		if (is(w, "characteristics")) {
			add_change(r, PIN_CANNOT_REPLAY, "default_transaction_isolation", NULL, 0);
			return;
		}
	}
	if (w[0] && set_special(r, w))
		return;
	r->sc = start;
	if (!read_name(&r->sc, name, sizeof(name))) {
		add_change(r, PIN_CANNOT_REPLAY, "", NULL, 0);
		return;
	}
	set_value(r, name, true);
}

static void read_reset(struct reader *r)
{
	struct sql_scan start = r->sc;
	char w[16], name[PIN_NAME_MAX];
	keyword(&r->sc, w, sizeof(w));
	if (is(w, "all")) {
		add_change(r, PIN_RESET_ALL, "", NULL, 0);
		return;
	}
	if (is(w, "role")) {
		add_change(r, PIN_RESET, "role", NULL, 0);
		return;
	}
	if (is(w, "session") && keyword(&r->sc, w, sizeof(w)) && is(w, "authorization")) {
		add_change(r, PIN_RESET, "session_authorization", NULL, 0);
		return;
	}
	if (is(w, "time") && keyword(&r->sc, w, sizeof(w)) && is(w, "zone")) {
		add_change(r, PIN_RESET, "timezone", NULL, 0);
		return;
	}
	r->sc = start;
	if (read_name(&r->sc, name, sizeof(name)))
		add_change(r, PIN_RESET, name, NULL, 0);
	else
		add_change(r, PIN_CANNOT_REPLAY, "", NULL, 0);
}

/* A boolean literal: 1 true, 0 false, -1 not one. */
static int bool_literal(const struct tok *t)
{
	static const char *const yes[] = { "true", "t", "on", "yes", "y", "1" };
	static const char *const no[] = { "false", "f", "off", "no", "n", "0" };
	const char *p = t->start, *e = t->end;
	if (t->kind == TK_STRING && *p == '\'' && e - p >= 2)
		p++, e--;
	else if (t->kind != TK_WORD && t->kind != TK_NUMBER)
		return -1;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		for (int v = 0; v < 2; v++) {
			const char *w = v ? yes[i] : no[i];
			size_t n = strlen(w);
			if ((size_t)(e - p) != n)
				continue;
			size_t k = 0;
			while (k < n && sql_lower(p[k]) == w[k])
				k++;
			if (k == n)
				return v;
		}
	}
	return -1;
}

/* A plain '...' literal without escapes but '' : its text into out. */
static bool literal_text(const struct tok *t, char *out, size_t cap)
{
	if (t->kind != TK_STRING || *t->start != '\'' || t->backslash)
		return false;
	size_t n = 0;
	for (const char *p = t->start + 1; p < t->end - 1; p++) {
		if (*p == '\'')
			p++;
		if (n + 1 >= cap)
			return false;
		out[n++] = *p;
	}
	out[n] = '\0';
	return true;
}

/* set_config ( name , value , is_local ) after the word; strict: the
 * call is the whole select item, so it surely runs once. */
static void read_set_config(struct reader *r, bool strict)
{
	struct tok a[7];
	for (size_t i = 0; i < 7; i++)
		a[i] = next_tok(&r->sc);
	bool shape = tok_punct(&a[0], '(') && tok_punct(&a[2], ',') && tok_punct(&a[4], ',') &&
		     tok_punct(&a[6], ')');
	int local = shape ? bool_literal(&a[5]) : -1;
	if (local == 1)
		return;   /* set_config(..., true): ends with the transaction */
	char name[PIN_NAME_MAX];
	if (!strict || local != 0 || !literal_text(&a[1], name, sizeof(name)) || a[3].kind != TK_STRING ||
	    a[3].backslash) {
		add_change(r, PIN_CANNOT_REPLAY, "", NULL, 0);
		return;
	}
	struct sql_scan check = { name, name + strlen(name) };
	char folded[PIN_NAME_MAX];
	if (!read_name(&check, folded, sizeof(folded)) || check.p != check.end) {
		add_change(r, PIN_CANNOT_REPLAY, "", NULL, 0);
		return;
	}
	add_change(r, PIN_SET_CONFIG, folded, a[3].start, (size_t)(a[3].end - a[3].start));
}

/* After a set_config call: an optional alias ([AS] name). */
static void skip_alias(struct sql_scan *sc)
{
	struct sql_scan save = *sc;
	struct tok t = next_tok(sc);
	if (tok_is(&t, "as"))
		t = next_tok(sc);
	if (t.kind != TK_WORD && t.kind != TK_QWORD)
		*sc = save;
}

/* Is the statement, after SELECT, only [pg_catalog.]set_config(a, b, c)
 * [[AS] alias] items separated by commas? Then each call surely runs
 * exactly once. */
static bool only_calls(struct sql_scan sc)
{
	for (;;) {
		struct tok t = next_tok(&sc);
		if (tok_is(&t, "pg_catalog")) {
			t = next_tok(&sc);
			if (!tok_punct(&t, '.'))
				return false;
			t = next_tok(&sc);
		}
		if (!tok_is(&t, "set_config"))
			return false;
		for (int i = 0; i < 7; i++)
			if (next_tok(&sc).kind == TK_END)
				return false;
		skip_alias(&sc);
		t = next_tok(&sc);
		if (t.kind == TK_END)
			return true;
		if (!tok_punct(&t, ','))
			return false;
	}
}

/* Every set_config call of the statement. In a SELECT of only such calls
 * each is recorded; anywhere else a session-level one cannot be replayed
 * (it may run once, never, or once per row). */
static void read_statement_calls(struct reader *r, bool is_select)
{
	bool strict = is_select && only_calls(r->sc);
	for (;;) {
		struct tok t = next_tok(&r->sc);
		if (t.kind == TK_END || t.kind == TK_BAD)
			return;
		if (tok_is(&t, "set_config"))
			read_set_config(r, strict);
	}
}

static void read_statement(struct reader *r)
{
	struct sql_scan start = r->sc;
	char w[16];
	keyword(&r->sc, w, sizeof(w));
	if (is(w, "set")) {
		read_set(r);
	} else if (is(w, "reset")) {
		read_reset(r);
	} else if (is(w, "discard")) {
		if (keyword(&r->sc, w, sizeof(w)) && is(w, "all"))
			add_change(r, PIN_DISCARD_ALL, "", NULL, 0);
	} else {
		bool is_select = is(w, "select");
		if (!is_select)
			r->sc = start;
		read_statement_calls(r, is_select);
	}
}

size_t pin_settings(const char *q, size_t len, struct pin_change *out, size_t cap, unsigned *n_stmts)
{
	struct sql_scan sc = { q, q + len };
	struct reader r = { { q, q }, out, cap, 0, 0 };
	bool unsure = false;
	while (sc.p < sc.end) {
		const char *begin = sc.p;
		bool empty;
		const char *stop = statement_split(&sc, &empty, &unsure);
		if (empty)
			continue;
		const char *body_end = stop > begin && stop[-1] == ';' ? stop - 1 : stop;
		r.sc = (struct sql_scan){ begin, body_end };
		read_statement(&r);
		r.stmt++;
	}
	*n_stmts = r.stmt;
	if (unsure)
		for (size_t i = 0; i < r.n && i < cap; i++)
			out[i].kind = PIN_CANNOT_REPLAY;
	return r.n;
}
