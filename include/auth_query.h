/* auth_query: looking up a user's secret in the database (auth_user +
 * auth_query), on the event loop.
 *
 * A lookup borrows a server of the auth user's pool and runs auth_query
 * with the user name as a bound parameter ($1), inside a transaction whose
 * search_path is fixed to pg_catalog, pg_temp, so that neither the name nor
 * a search_path left by an earlier client can change what the query runs.
 * Logins of the same user that arrive while a lookup for it is in flight
 * share it; the answer goes to those logins only and is never cached, so a
 * password change takes effect at the next login. */
#ifndef TIDEPOOL_AUTH_QUERY_H
#define TIDEPOOL_AUTH_QUERY_H

struct pool;
struct auth_query_wait;

enum auth_query_status {
	AUTH_QUERY_FOUND,       /* secret set */
	AUTH_QUERY_NO_SECRET,   /* a row with a NULL secret (no password, expired): enough for trust */
	AUTH_QUERY_NOT_FOUND,   /* no row */
	AUTH_QUERY_FAILED,      /* sqlstate and msg say why */
};

/* Called once per waiting login; the wait handle is already gone. secret,
 * sqlstate and msg are valid during the call only. */
typedef void (*auth_query_done_fn)(void *arg, enum auth_query_status st, const char *secret,
				   const char *sqlstate, const char *msg);

/* Looks up user's secret with query through a server of auth_pool. Returns
 * a handle for auth_query_cancel(); done may already have run (and the
 * handle is then NULL) when the answer is known at once. */
struct auth_query_wait *auth_query_lookup(struct pool *auth_pool, const char *query, const char *user,
					  auth_query_done_fn done, void *arg);
/* The login no longer waits (its client closed); done will not run. */
void auth_query_cancel(struct auth_query_wait *w);

#endif
