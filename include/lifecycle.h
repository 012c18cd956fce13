/* lifecycle: the process's run state, held here once and nowhere else:
 * the global PAUSE and SUSPEND flags, the shutdown phase (shutting down,
 * draining, its kind), the start time, and the reload count and result.
 * What goes with a change (pools re-deriving flags, sockets parking, the
 * listener, the drain, re-reading the file) is done by the actions main
 * registers with lifecycle_init: this module calls nothing above it. */
#ifndef TIDEPOOL_LIFECYCLE_H
#define TIDEPOOL_LIFECYCLE_H

#include <stdbool.h>

struct config;

enum shutdown_kind {
	SHUTDOWN_DRAIN,            /* SIGTERM default: close clients at transaction end */
	SHUTDOWN_WAIT_FOR_SERVERS, /* SIGINT / SHUTDOWN WAIT_FOR_SERVERS */
	SHUTDOWN_WAIT_FOR_CLIENTS, /* shutdown_mode = wait_for_clients / SHUTDOWN WAIT_FOR_CLIENTS */
	SHUTDOWN_IMMEDIATE,        /* SIGQUIT / admin SHUTDOWN */
};

struct lifecycle_actions {
	/* The global PAUSE flag changed (already stored): pools re-derive
	 * theirs; RESUME (off) also clears every database's own flag. */
	void (*paused_changed)(bool on);
	/* SUSPEND changed (already stored): sockets park or resume, the
	 * listener stops or starts, pools are rescheduled. */
	void (*suspended_changed)(bool on);
	/* Starts a shutdown (admin SHUTDOWN); it records it with
	 * lifecycle_begin_shutdown. */
	void (*shutdown)(enum shutdown_kind kind, const char *why);
	/* Re-reads the config file (SIGHUP / RELOAD); installs a snapshot made
	 * by admin SET. */
	bool (*reload)(char **errors);
	void (*install)(struct config *cfg);
};

/* Registers the actions (copied) and records the start time. */
void lifecycle_init(const struct lifecycle_actions *actions);

/* Global PAUSE / SUSPEND: each setter stores the flag, then runs its action. */
void lifecycle_set_paused(bool paused);
bool lifecycle_paused(void);
void lifecycle_set_suspended(bool suspended);
bool lifecycle_suspended(void);

/* Asks for a shutdown (runs the registered action). */
void lifecycle_shutdown(enum shutdown_kind kind, const char *why);
/* The shutdown action records its phases here: begun (of kind), then
 * draining once clients are closed at their transaction boundaries. */
void lifecycle_begin_shutdown(enum shutdown_kind kind);
void lifecycle_begin_draining(void);
bool lifecycle_shutting_down(void);
enum shutdown_kind lifecycle_shutdown_kind(void);
/* True once a drain closes clients at their transaction boundaries (after
 * shutdown_delay): a client going idle, or starting a new transaction on a
 * session-mode server, is closed with 57P01. */
bool lifecycle_draining(void);

/* Wall-clock start time in microseconds; reload count and last result. */
long long lifecycle_start_time(void);
unsigned lifecycle_reload_count(void);
bool lifecycle_last_reload_ok(void);
/* Reloads the configuration (SIGHUP / admin RELOAD), counting it. */
bool lifecycle_reload(char **errors);
/* Installs a snapshot made by admin SET, as a reload would. */
void lifecycle_install(struct config *cfg);

#endif
