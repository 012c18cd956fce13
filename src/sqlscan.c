/* sqlscan: blanks, words and statement ends in SQL text (see sqlscan.h). */
#include "sqlscan.h"

#include <string.h>

void sql_skip_blank(struct sql_scan *sc)
{
	while (sc->p < sc->end) {
		char ch = *sc->p;
		if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v') {
			sc->p++;
		} else if (ch == '-' && sc->p + 1 < sc->end && sc->p[1] == '-') {
			while (sc->p < sc->end && *sc->p != '\n')
				sc->p++;
		} else if (ch == '/' && sc->p + 1 < sc->end && sc->p[1] == '*') {
			int depth = 0;
			while (sc->p + 1 < sc->end) {
				if (sc->p[0] == '/' && sc->p[1] == '*') {
					depth++;
					sc->p += 2;
				} else if (sc->p[0] == '*' && sc->p[1] == '/') {
					sc->p += 2;
					if (--depth == 0)
						break;
				} else {
					sc->p++;
				}
			}
			if (depth > 0)
				sc->p = sc->end;
		} else {
			return;
		}
	}
}

static bool ident_char(char ch, bool first)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
	       (unsigned char)ch >= 0x80 || (!first && ((ch >= '0' && ch <= '9') || ch == '$'));
}

bool sql_read_word(struct sql_scan *sc, char *out, size_t cap, bool *quoted)
{
	size_t n = 0;
	sql_skip_blank(sc);
	*quoted = false;
	if (sc->p < sc->end && *sc->p == '"') {
		const char *p = sc->p + 1;
		for (;;) {
			if (p >= sc->end)
				return false;
			char ch = *p++;
			if (ch == '"') {
				if (p < sc->end && *p == '"')
					p++;
				else
					break;
			}
			if (n + 1 < cap)
				out[n] = ch;
			n++;
		}
		*quoted = true;
		sc->p = p;
	} else {
		if (sc->p >= sc->end || !ident_char(*sc->p, true))
			return false;
		while (sc->p < sc->end && ident_char(*sc->p, false)) {
			if (n + 1 < cap)
				out[n] = sql_lower(*sc->p);
			n++;
			sc->p++;
		}
	}
	if (cap)
		out[n < cap ? n : 0] = '\0';
	return true;
}

bool sql_at_end(struct sql_scan *sc)
{
	sql_skip_blank(sc);
	if (sc->p < sc->end && *sc->p == ';') {
		sc->p++;
		sql_skip_blank(sc);
	}
	while (sc->p < sc->end && *sc->p == '\0')
		sc->p++;
	return sc->p == sc->end;
}

const char *sql_statement_end(const char *p, const char *end)
{
	const char *semi = memchr(p, ';', (size_t)(end - p));
	return semi ? semi + 1 : end;
}
