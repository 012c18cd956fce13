/* janitor: one timer a second for every timeout (login, wait, idle,
 * transaction, query, server idle/lifetime), min_pool_size upkeep and
 * login retries. Lists are kept in state-entry order, so a walk stops at
 * the first entry that is not expired. */
#ifndef TIDEPOOL_JANITOR_H
#define TIDEPOOL_JANITOR_H

typedef void (*janitor_hook_fn)(void);

/* hook runs after each pass (shutdown progress). */
void janitor_start(janitor_hook_fn hook);
void janitor_stop(void);
/* One pass now (also used by tests of timeouts). */
void janitor_run(void);

#endif
