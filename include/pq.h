/* pq: connection strings (no libpq: see pq.c).
 *
 * Splits the "key=value ..." strings of [databases], [users] and [peers]
 * into pairs, and answers whether a key is one of libpq's own connection
 * keywords (to make error messages helpful). */
#ifndef TIDEPOOL_PQ_H
#define TIDEPOOL_PQ_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

/* One pair, both strings owned by the array. */
struct pq_kv {
	char *key;
	char *val;
};

/* Splits s into key/value pairs in order of appearance (a repeated key
 * appears twice; callers let the last one win). Values may be single-quoted;
 * inside quotes '' and \' stand for a quote and \\ for a backslash. An empty
 * string gives *n == 0. On success *out is owned by the caller (free with
 * pq_kv_free, also when *n == 0). On failure returns false, *out is NULL and
 * *errmsg holds a message for the user (free with free()). */
bool pq_parse_conninfo(const char *s, struct pq_kv **out, size_t *n, char **errmsg) MUST_CHECK;
void pq_kv_free(struct pq_kv *kv, size_t n);

/* True if key is one of libpq's connection keywords (e.g. "sslmode"). */
bool pq_is_libpq_keyword(const char *key);

#endif
