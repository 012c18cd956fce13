/* lifecycle: process-wide run state, implemented in main.c: shutdown
 * (graceful drain, PgBouncer's wait-for-clients/servers), and what /readyz
 * and the admin console report. */
#ifndef TIDEPOOL_LIFECYCLE_H
#define TIDEPOOL_LIFECYCLE_H

#include <stdbool.h>

enum shutdown_kind {
	SHUTDOWN_DRAIN,            /* SIGTERM default: close clients at transaction end */
	SHUTDOWN_WAIT_FOR_SERVERS, /* SIGINT / SHUTDOWN WAIT_FOR_SERVERS */
	SHUTDOWN_WAIT_FOR_CLIENTS, /* shutdown_mode = wait_for_clients / SHUTDOWN WAIT_FOR_CLIENTS */
	SHUTDOWN_IMMEDIATE,        /* SIGQUIT / admin SHUTDOWN */
};

void lifecycle_shutdown(enum shutdown_kind kind, const char *why);
bool lifecycle_shutting_down(void);
/* True once a drain closes clients at their transaction boundaries (after
 * shutdown_delay): a client going idle, or starting a new transaction on a
 * session-mode server, is closed with 57P01. */
bool lifecycle_draining(void);
/* Global PAUSE / SUSPEND as set by the admin console (for /readyz). */
void lifecycle_set_paused(bool paused);
bool lifecycle_paused(void);
void lifecycle_set_suspended(bool suspended);
bool lifecycle_suspended(void);
/* Wall-clock start time in microseconds; reload count and last result. */
long long lifecycle_start_time(void);
unsigned lifecycle_reload_count(void);
bool lifecycle_last_reload_ok(void);
/* Reloads the configuration (SIGHUP / admin RELOAD). */
bool lifecycle_reload(char **errors);
/* Installs a snapshot made by admin SET, as a reload would. */
void lifecycle_install(struct config *cfg);

#endif
