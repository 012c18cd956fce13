/* reload: owns the current config snapshot. A reload parses into a new
 * snapshot; only a clean one replaces the old, so a bad file never
 * half-applies. Pools re-read their settings from the new snapshot. */
#include "reload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iobuf.h"
#include "log.h"
#include "pool.h"

static struct config *current;

const struct config *config_current(void)
{
	return current;
}

void reload_install(struct config *cfg)
{
	current = cfg;
}

void reload_warn(const char *file, int line, const char *msg)
{
	log_warning("%s:%d: %s", file, line, msg);
}

static char *join_errors(const struct config_errors *errs)
{
	size_t len = 1;
	for (size_t i = 0; i < errs->n; i++)
		len += strlen(errs->msgs[i]) + 2;
	char *out = xmalloc(len);
	out[0] = '\0';
	size_t pos = 0;
	for (size_t i = 0; i < errs->n; i++)
		pos += (size_t)snprintf(out + pos, len - pos, "%s%s", i ? "; " : "", errs->msgs[i]);
	return out;
}

/* Keys that only take effect at start-up: say so when they change. */
static void warn_restart_keys(const struct config *old, const struct config *cfg)
{
	for (size_t i = 0; i < config_key_count(); i++) {
		const struct config_key_info *k = config_key_at(i);
		if (k->reloadable)
			continue;
		char a[512], b[512];
		const char *va = config_key_value(old, i, a, sizeof(a));
		const char *vb = config_key_value(cfg, i, b, sizeof(b));
		if (strcmp(va, vb) != 0)
			log_warning("%s changed from \"%s\" to \"%s\": needs a restart, keeping \"%s\"",
				    k->name, va, vb, va);
	}
}

void reload_swap(struct config *cfg)
{
	/* Restart-only settings keep their old values in the new snapshot. */
	cfg->listen_port = current->listen_port;
	cfg->pkt_buf = current->pkt_buf;
	struct config *old = current;
	current = cfg;
	(void)!log_setup(cfg->logfile, cfg->syslog, cfg->syslog_ident, cfg->syslog_facility);
	pool_apply_config(cfg);
	config_free(old);
}

bool reload_config(char **errors)
{
	struct config_errors errs = { 0 };
	struct config *cfg = config_load(current->conffile, &errs, reload_warn);
	if (!cfg) {
		char *msg = join_errors(&errs);
		log_error("reload failed, keeping the old configuration: %s", msg);
		if (errors)
			*errors = msg;
		else
			free(msg);
		config_errors_free(&errs);
		return false;
	}
	config_errors_free(&errs);
	warn_restart_keys(current, cfg);
	reload_swap(cfg);
	log_info("configuration reloaded");
	if (errors)
		*errors = NULL;
	return true;
}

void reload_free(void)
{
	config_free(current);
	current = NULL;
}
