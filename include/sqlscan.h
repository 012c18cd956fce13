/*
 * sqlscan: the little SQL lexing tidepool needs to recognize a few
 * statements (pstmt.c: DEALLOCATE and DISCARD; pin.c: statements that leave
 * session state). Pure: no I/O, no allocation. Blanks include comments,
 * read as PostgreSQL reads them; identifiers fold to lower case unless
 * quoted. It does not know string literals: callers say what a ';' inside
 * one may cost them.
 */
#ifndef TIDEPOOL_SQLSCAN_H
#define TIDEPOOL_SQLSCAN_H

#include <stdbool.h>
#include <stddef.h>

struct sql_scan {
	const char *p, *end;
};

static inline char sql_lower(char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* Skips whitespace, "-- ..." to the end of the line and nested C-style
 * comments (an unterminated one runs to the end). */
void sql_skip_blank(struct sql_scan *sc);
/* Reads the next identifier or keyword after blanks into out: folded to
 * lower case, or unescaped when quoted (*quoted tells which). out is ""
 * when the word does not fit in cap. False, with nothing consumed but the
 * blanks, when the next token is not a word (or is an unterminated quoted
 * one). */
bool sql_read_word(struct sql_scan *sc, char *out, size_t cap, bool *quoted);
/* Only blanks, at most one ';' and NUL terminators are left. */
bool sql_at_end(struct sql_scan *sc);
/* Where the statement starting at p ends: just after its ';', or end. */
const char *sql_statement_end(const char *p, const char *end);

#endif
