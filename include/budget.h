/* budget: the backend budget of a fleet of tidepool processes against each
 * PostgreSQL server's max_connections. For every server (host, port) of
 * the configuration it computes this process's most backends (the sum over
 * its pools of pool_size + reserve_pool_size, capped by
 * max_db_connections), multiplies it by the replica count (expected_replicas,
 * or the addresses of replicas_dns_name), and compares it with what the
 * server allows, learned with one internal query on the first backend this
 * process logs in to there. Logs a WARNING when the fleet can exceed it. */
#ifndef TIDEPOOL_BUDGET_H
#define TIDEPOOL_BUDGET_H

#include <stdbool.h>

struct config;

struct budget_row {
	const char *host;          /* as in [databases]; "" for the default unix socket */
	int port;
	int max_connections;       /* -1 until learned */
	int reserved;              /* superuser_reserved_connections; -1 until learned */
	long long this_process_max;
	int replicas;
	long long fleet_max;
	bool known;                /* max_connections and reserved were learned */
	long long headroom;        /* max_connections - reserved - fleet_max, when known */
};

typedef void (*budget_row_fn)(const struct budget_row *row, void *arg);

/* Hooks server logins (the first one per server learns its limits) and
 * recomputes once a second (janitor tick). */
void budget_init(void);
void budget_free(void);
/* Recomputes now from the current config and pools; warns as needed. */
void budget_update(void);
/* Every server of the current figures, in config order. */
void budget_for_each(budget_row_fn fn, void *arg);
/* For --check: prints "budget: HOST:PORT this_process_max N ..." per server
 * of cfg (no pools exist: one pool per [databases] entry). */
void budget_print_check(const struct config *cfg);

#endif
