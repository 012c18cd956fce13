/* fuzz_sql: the SQL recognizers that read client query strings: the
 * session-state check and the settings reader (pin.c), the DEALLOCATE / DISCARD recognizers
 * (pstmt.c) and the lexer under them (sqlscan.c). Query strings are not
 * NUL-terminated on the wire here, so the input is handed over as exactly
 * its bytes. */
#include <assert.h>
#include <stdbool.h>

#include "fuzz.h"
#include "pin.h"
#include "pstmt.h"
#include "sqlscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size, 0 };
	size_t n;
	uint8_t *q = fuzz_rest(&in, &n);
	const char *s = (const char *)q;

	(void)pin_reason_name(pin_reason_of_sql(s, n));
	(void)pin_classify(s, n);
	/* the settings reader: every value it points at lies inside q */
	struct pin_change ch[4];
	unsigned n_stmts = 0;
	size_t n_ch = pin_settings(s, n, ch, 4, &n_stmts);
	for (size_t i = 0; i < n_ch && i < 4; i++) {
		assert(strlen(ch[i].name) < PIN_NAME_MAX);
		if (ch[i].value)
			assert(ch[i].value >= s && ch[i].value + ch[i].value_len <= s + n);
	}
	char name[64];
	enum pstmt_sql k = pstmt_parse_sql(s, n, name, sizeof(name));
	if (k == PSTMT_SQL_DEALLOCATE)
		assert(strlen(name) < sizeof(name));
	(void)pstmt_sql_drops_all(s, n);
	/* a tiny name buffer: words that do not fit must not overrun it */
	char tiny[2];
	(void)pstmt_parse_sql(s, n, tiny, sizeof(tiny));

	struct sql_scan sc = { s, s + n };
	char word[32];
	bool quoted;
	for (int guard = 0; guard < 10000; guard++) {
		const char *before = sc.p;
		if (!sql_read_word(&sc, word, sizeof(word), &quoted)) {
			if (sc.p >= sc.end)
				break;
			sc.p = sql_statement_end(sc.p, sc.end);
			if (sc.p == before)
				sc.p++;
		}
		assert(sc.p >= before && sc.p <= sc.end);
		if (sc.p == sc.end)
			break;
	}
	sc = (struct sql_scan){ s, s + n };
	(void)sql_at_end(&sc);
	free(q);
	return 0;
}
