/* log: owns the log destination (stderr, file or syslog) and the level. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum log_level log_level_max = LOG_LVL_INFO;

static FILE *log_file;          /* NULL: stderr */
static char log_path[4096];
static bool log_syslog;

static const char *const level_names[] = {
	[LOG_LVL_FATAL] = "FATAL", [LOG_LVL_ERROR] = "ERROR", [LOG_LVL_WARNING] = "WARNING",
	[LOG_LVL_INFO] = "LOG", [LOG_LVL_DEBUG] = "DEBUG", [LOG_LVL_NOISE] = "NOISE",
};

static int syslog_priority(enum log_level lvl)
{
	switch (lvl) {
	case LOG_LVL_FATAL: return LOG_CRIT;
	case LOG_LVL_ERROR: return LOG_ERR;
	case LOG_LVL_WARNING: return LOG_WARNING;
	case LOG_LVL_INFO: return LOG_INFO;
	case LOG_LVL_DEBUG: return LOG_DEBUG;
	case LOG_LVL_NOISE: return LOG_DEBUG;
	}
	return LOG_INFO;
}

static int syslog_facility_code(const char *name)
{
	static const struct { const char *name; int code; } map[] = {
		{ "auth", LOG_AUTH }, { "authpriv", LOG_AUTHPRIV }, { "daemon", LOG_DAEMON },
		{ "user", LOG_USER }, { "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 },
		{ "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 }, { "local4", LOG_LOCAL4 },
		{ "local5", LOG_LOCAL5 }, { "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(map); i++)
		if (strcasecmp(name, map[i].name) == 0)
			return map[i].code;
	return LOG_DAEMON;
}

bool log_setup(const char *logfile, bool use_syslog, const char *ident, const char *facility)
{
	FILE *f = NULL;
	if (logfile && *logfile) {
		f = fopen(logfile, "a");
		if (!f) {
			log_error("could not open log file \"%s\": %s", logfile, strerror(errno));
			return false;
		}
		setvbuf(f, NULL, _IOLBF, 0);
	}
	if (log_file)
		fclose(log_file);
	log_file = f;
	strlcpy_safe(log_path, logfile ? logfile : "", sizeof(log_path));
	if (log_syslog)
		closelog();
	log_syslog = use_syslog;
	if (use_syslog)
		openlog(ident && *ident ? ident : "tidepool", LOG_PID, syslog_facility_code(facility ? facility : "daemon"));
	return true;
}

static bool no_stderr;   /* -q: nothing goes to standard error */

void log_set_verbosity(int verbose, bool quiet)
{
	no_stderr = quiet;
	if (verbose <= 0)
		log_level_max = LOG_LVL_INFO;
	else if (verbose == 1)
		log_level_max = LOG_LVL_DEBUG;
	else
		log_level_max = LOG_LVL_NOISE;
}

void log_reopen(void)
{
	if (!log_path[0])
		return;
	char path[sizeof(log_path)];
	strlcpy_safe(path, log_path, sizeof(path));
	if (!log_setup(path, log_syslog, NULL, NULL))
		log_error("keeping the old log file");
}

void log_write(enum log_level lvl, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	if (log_syslog)
		syslog(syslog_priority(lvl), "%s %s", level_names[lvl], msg);
	if (!log_file && no_stderr)
		return;

	struct timeval tv;
	struct tm tm;
	char ts[64];
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	size_t n = strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03d", (int)(tv.tv_usec / 1000));
	fprintf(log_file ? log_file : stderr, "%s [%d] %s %s\n", ts, (int)getpid(), level_names[lvl], msg);
}
