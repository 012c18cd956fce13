/* pstmt: the bookkeeping behind protocol-level prepared statements in
 * transaction mode. Pure data structures, no I/O:
 *
 *  - a registry per pool interns each distinct statement (query text and
 *    parameter type OIDs) once, under a pooler-chosen server-side name;
 *  - a client table maps one client's statement names to interned
 *    statements, in recency order, with an optional bound;
 *  - a server cache remembers which interned statements one backend has
 *    prepared, least recently used first out.
 *
 * Interned statements are reference counted: every client name, server
 * cache entry and in-flight request holds one reference; the last release
 * unlinks the statement from its registry and frees it. */
#ifndef TIDEPOOL_PSTMT_H
#define TIDEPOOL_PSTMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "list.h"

struct pstmt_registry;

struct pstmt {
	struct pstmt *hnext;             /* registry hash chain */
	struct pstmt_registry *reg;
	uint32_t hash;
	uint32_t refs;
	uint64_t parse_count;            /* client Parses that resolved to it */
	uint64_t bind_count;             /* Binds that used it */
	uint64_t server_prepares;        /* times it was prepared on a backend */
	char server_name[24];            /* "tidepool_<hex id>" */
	uint32_t query_len;
	uint16_t n_types;
	uint8_t drops_all;               /* its query is DEALLOCATE ALL or DISCARD ALL: running it
					  * drops every statement of the backend (enum pstmt_sql) */
	uint8_t *types;                  /* n_types big-endian int32 OIDs, as on the wire */
	char *query;                     /* NUL-terminated */
};

struct pstmt_registry {
	struct pstmt **buckets;
	size_t n_buckets;
	size_t count;
};

void pstmt_registry_init(struct pstmt_registry *reg);
/* Frees the bucket array; the registry must be empty (every reference
 * released first). */
void pstmt_registry_free(struct pstmt_registry *reg);
/* The interned statement for (query, types), created on first use; the
 * caller gets a new reference. `types` is n_types * 4 bytes as on the wire. */
struct pstmt *pstmt_intern(struct pstmt_registry *reg, const char *query, uint32_t query_len,
			   const uint8_t *types, uint16_t n_types);
void pstmt_ref(struct pstmt *st);
void pstmt_unref(struct pstmt *st);
/* Walks the registry (for SHOW PREPARED_STATEMENTS). */
void pstmt_registry_walk(const struct pstmt_registry *reg, void (*fn)(const struct pstmt *, void *),
			 void *arg);

/* One client's names. */
struct pstmt_name {
	struct list_node lru;            /* most recently used at the head */
	struct pstmt_name *hnext;
	uint32_t hash;
	struct pstmt *st;                /* holds a reference */
	char name[];
};

struct pstmt_client_table {
	struct pstmt_name **buckets;
	size_t n_buckets;
	size_t count;
	struct list_node lru;
};

struct pstmt_client_table *pstmt_client_table_new(void);
void pstmt_client_table_free(struct pstmt_client_table *t);
struct pstmt *pstmt_client_lookup(struct pstmt_client_table *t, const char *name);
/* Adds name -> st (taking a new reference). The name must not be present. */
void pstmt_client_add(struct pstmt_client_table *t, const char *name, struct pstmt *st);
/* Removes name; false if it was not there. */
bool pstmt_client_remove(struct pstmt_client_table *t, const char *name);
void pstmt_client_clear(struct pstmt_client_table *t);

/* One backend's prepared statements. */
struct pstmt_cached {
	struct list_node lru;            /* most recently used at the head */
	struct pstmt_cached *hnext;
	struct pstmt *st;                /* holds a reference */
};

struct pstmt_server_cache {
	struct pstmt_cached **buckets;
	size_t n_buckets;
	size_t count;
	struct list_node lru;
};

struct pstmt_server_cache *pstmt_server_cache_new(void);
void pstmt_server_cache_free(struct pstmt_server_cache *c);
/* True if st is prepared on this backend; marks it most recently used. */
bool pstmt_server_touch(struct pstmt_server_cache *c, const struct pstmt *st);
/* Records st as prepared (taking a new reference). */
void pstmt_server_add(struct pstmt_server_cache *c, struct pstmt *st);
/* Forgets st; false if it was not there. */
bool pstmt_server_remove(struct pstmt_server_cache *c, const struct pstmt *st);
/* The least recently used statement, or NULL; stays in the cache. */
struct pstmt *pstmt_server_oldest(const struct pstmt_server_cache *c);
void pstmt_server_clear(struct pstmt_server_cache *c);

/* SQL-level statements that act on a client's prepared statements. */
enum pstmt_sql {
	PSTMT_SQL_OTHER,
	PSTMT_SQL_DEALLOCATE,        /* DEALLOCATE [PREPARE] name */
	PSTMT_SQL_DEALLOCATE_ALL,    /* DEALLOCATE [PREPARE] ALL */
	PSTMT_SQL_DISCARD_ALL,       /* DISCARD ALL */
};
/* Recognizes a query string that is exactly one of those statements
 * (whitespace and one trailing semicolon allowed). For DEALLOCATE name,
 * `name` receives the name: unquoted identifiers folded to lower case and
 * quoted ones unescaped, as PostgreSQL reads them. */
enum pstmt_sql pstmt_parse_sql(const char *q, size_t len, char *name, size_t cap);
/* A query string of several statements (split at every ';') one of which
 * is DEALLOCATE [PREPARE] ALL or DISCARD ALL: that kind, else OTHER. */
enum pstmt_sql pstmt_sql_drops_all(const char *q, size_t len);

#endif
