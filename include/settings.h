/* settings: session settings follow their client in transaction and
 * statement mode.
 *
 * A client's session-level changes (pin.h: SET, RESET, SET ROLE, SET
 * SESSION AUTHORIZATION, set_config(..., false), RESET ALL, DISCARD ALL)
 * become expectations matched against PostgreSQL's answers by batch and
 * statement number; a change PostgreSQL completed is pending until its
 * transaction commits (ReadyForQuery 'I' without an error or ROLLBACK in
 * between) and is then recorded for the client and for the backend. When
 * the client gets a backend, the difference between the backend's applied
 * settings and the client's recorded ones is sent with the tracked
 * parameters' SET (server_link: one internal query, none when both lists
 * are empty). Parameters PostgreSQL reports (params.h) are left to
 * ParameterStatus. A ROLLBACK TO SAVEPOINT over pending changes cannot be
 * followed: the caller treats the client by its session_state policy. */
#ifndef TIDEPOOL_SETTINGS_H
#define TIDEPOOL_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct client;
struct pool;
struct server;

struct settings_entry {
	char *name;     /* folded setting name */
	char *value;    /* SQL text: a value list (SET) or one string literal (set_config) */
	bool config;    /* replayed with set_config rather than SET */
};

/* Settings in the order they were made; one entry per name. */
struct settings_list {
	struct settings_entry *v;
	uint32_t n, cap;
};

struct settings_client;   /* per client, made at its first change */

void settings_list_clear(struct settings_list *l);

/* Can every session-level change in q be replayed? (Reported parameters
 * always can: ParameterStatus carries them.) */
bool settings_replayable(const struct pool *p, const char *q, size_t len);
/* Query (stmt NULL) or Parse (stmt: its statement name) with SQL q that
 * pin_classify() says may change a setting, sent on s in the batch being
 * scanned (outcome: the number of Executes already in it for a Parse).
 * False: some change cannot be replayed (policy applies). */
bool settings_client_sql(struct client *c, struct server *s, const char *stmt, const char *q, size_t len);
/* Bind (portal from stmt), Execute (portal), Close: only called when
 * settings_client_extended(c). */
bool settings_client_extended(const struct client *c);
void settings_client_bind(struct client *c, const char *portal, const char *stmt);
void settings_client_execute(struct client *c, struct server *s, const char *portal);
void settings_client_close(struct client *c, char kind, const char *name);
void settings_client_free(struct client *c);

/* How many settings the client has recorded (SHOW CLIENTS). */
size_t settings_client_count(const struct client *c);

/* The backend's answers while linked to a client with settings state:
 * CommandComplete (body: the tag), ErrorResponse, EmptyQueryResponse,
 * PortalSuspended; outcome is the answer's number in its batch. */
void settings_server_outcome(struct server *s, uint8_t type, const uint8_t *body, uint32_t len,
			     uint32_t outcome);
/* ReadyForQuery with status: commits or drops the pending changes. False:
 * changes were rolled back to a savepoint and cannot be followed. */
bool settings_server_ready(struct server *s, char status);

/* Appends to sql (of cap, *len used) the SQL that turns the backend's
 * settings into the client's. False if nothing differs (or it does not fit:
 * *overflow). */
bool settings_sync_sql(const struct server *s, const struct client *c, char *sql, size_t cap, size_t *len,
		       bool *overflow);
/* That SQL ran: the backend now has the client's settings. */
void settings_synced(struct server *s, const struct client *c);
/* The backend was reset (DISCARD ALL, RESET ALL). */
void settings_server_reset(struct server *s, bool keep_role);

#endif
