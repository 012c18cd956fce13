/* janitor: one timer a second for every timeout (login, wait, idle,
 * transaction, query, server idle/lifetime), min_pool_size upkeep and
 * login retries. Lists are kept in state-entry order, so a walk stops at
 * the first entry that is not expired. */
#ifndef TIDEPOOL_JANITOR_H
#define TIDEPOOL_JANITOR_H

typedef void (*janitor_tick_fn)(void);

/* fn runs after each pass, after those added before it (the layers above
 * register theirs at start-up: the console's averages and waits, shutdown
 * progress). */
void janitor_add_tick(janitor_tick_fn fn);
void janitor_start(void);
void janitor_stop(void);
/* One pass now (also used by tests of timeouts). */
void janitor_run(void);

#endif
