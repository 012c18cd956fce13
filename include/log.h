/* log: leveled log lines to stderr, a log file or syslog.
 * Each line: timestamp, pid, level, then the message (which, for
 * connections, starts with the connection's prefix "C-12 db/user@addr:port").
 * A disabled level costs one comparison. */
#ifndef TIDEPOOL_LOG_H
#define TIDEPOOL_LOG_H

#include <stdbool.h>
#include "util.h"

enum log_level {
	LOG_LVL_FATAL = 0,
	LOG_LVL_ERROR,
	LOG_LVL_WARNING,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
	LOG_LVL_NOISE,
};

extern enum log_level log_level_max;

/* Points logging at its destination. logfile "" means stderr. Returns false
 * (and keeps the old destination) if the file cannot be opened. */
bool log_setup(const char *logfile, bool use_syslog, const char *ident, const char *facility) MUST_CHECK;
/* verbose: 0 = info, 1 = debug, 2+ = noise; quiet: no line goes to standard
 * error (a logfile and syslog still get them), as PgBouncer's -q. */
void log_set_verbosity(int verbose, bool quiet);
/* Reopens the log file (after rotation). */
void log_reopen(void);

void log_write(enum log_level lvl, const char *fmt, ...) PRINTF_LIKE(2, 3);

#define log_enabled(lvl) ((lvl) <= log_level_max)
#define log_at(lvl, ...) do { if (log_enabled(lvl)) log_write(lvl, __VA_ARGS__); } while (0)
#define log_fatal(...) log_at(LOG_LVL_FATAL, __VA_ARGS__)
#define log_error(...) log_at(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warning(...) log_at(LOG_LVL_WARNING, __VA_ARGS__)
#define log_info(...) log_at(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_noise(...) log_at(LOG_LVL_NOISE, __VA_ARGS__)

#endif
