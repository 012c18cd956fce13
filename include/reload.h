/* reload: swaps in a new config snapshot (config.c holds the current one)
 * on SIGHUP or RELOAD, only when the new file loaded cleanly, and applies
 * it to logging, pools and TLS. */
#ifndef TIDEPOOL_RELOAD_H
#define TIDEPOOL_RELOAD_H

#include <stdbool.h>
#include <stddef.h>
#include "config.h"
#include "util.h"

/* Re-reads the config file. On failure the old snapshot stays and *errors
 * (malloc'd, may be NULL) says why. */
bool reload_config(char **errors);
/* Makes cfg (a complete snapshot: from a reload or admin SET) the current
 * one and applies it to TLS, logging and pools; the old snapshot is freed.
 * TLS files that do not load leave everything as it was (cfg is freed). */
void reload_swap(struct config *cfg);
/* The value in the file of restart-only key i (config_key_at) when it
 * differs from the one in force, else NULL. */
const char *reload_pending_value(size_t i);
void reload_free(void);
/* Builds the TLS contexts from cfg (on start-up, for --check, and on each
 * reload), both or neither. False when one failed (err says why); the old
 * contexts then stay, and on a reload the failure is logged here. */
bool reload_tls(const struct config *cfg, bool startup, char *err, size_t errlen) MUST_CHECK;
/* Logs "not supported yet" warnings (the config_warn_fn for config_load). */
void reload_warn(const char *file, int line, const char *msg);

#endif
