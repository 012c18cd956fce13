/* reload: builds, swaps and applies config snapshots (the current one is
 * held by config.c). A reload parses into a new snapshot; only a clean one
 * replaces the old, so a bad file never half-applies. Pools re-read their
 * settings from the new snapshot, and the TLS contexts are rebuilt from it
 * (certificates and keys re-read); a side whose files do not load keeps
 * its previous context and mode. */
#include "reload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iobuf.h"
#include "log.h"
#include "pool.h"
#include "tls.h"

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

/* Restart-only keys whose file value differs from the one in force:
 * pending[i] is the value waiting for a restart (NULL: none). */
static char *pending[256];

/* Keys that only take effect at start-up: the snapshot keeps the value in
 * force (config_keep_restart_keys) and the new one is pending; say so in
 * the log whenever that changes. */
static void remember_pending(const struct config *old, const struct config *cfg)
{
	if (!old)
		return;
	for (size_t i = 0; i < config_key_count() && i < ARRAY_SIZE(pending); i++) {
		const struct config_key_info *k = config_key_at(i);
		if (k->reloadable)
			continue;
		char a[512], b[512];
		const char *va = config_key_value(old, i, a, sizeof(a));
		const char *vb = config_key_value(cfg, i, b, sizeof(b));
		bool differs = strcmp(va, vb) != 0;
		if (differs && (!pending[i] || strcmp(pending[i], vb) != 0))
			log_warning("%s = \"%s\" is pending: it needs a restart; \"%s\" stays in force",
				    k->name, vb, va);
		free(pending[i]);
		pending[i] = differs ? xstrdup(vb) : NULL;
	}
}

const char *reload_pending_value(size_t i)
{
	return i < ARRAY_SIZE(pending) ? pending[i] : NULL;
}

static void tls_settings_of(const struct config *cfg, bool client_side, struct tls_settings *t)
{
	if (client_side) {
		*t = (struct tls_settings){
			.sslmode = cfg->client_tls_sslmode, .key_file = cfg->client_tls_key_file,
			.cert_file = cfg->client_tls_cert_file, .ca_file = cfg->client_tls_ca_file,
			.protocols = cfg->client_tls_protocols, .ciphers = cfg->client_tls_ciphers,
			.tls13_ciphers = cfg->client_tls13_ciphers, .ecdhcurve = cfg->client_tls_ecdhcurve,
			.dheparams = cfg->client_tls_dheparams,
		};
	} else {
		*t = (struct tls_settings){
			.sslmode = cfg->server_tls_sslmode, .key_file = cfg->server_tls_key_file,
			.cert_file = cfg->server_tls_cert_file, .ca_file = cfg->server_tls_ca_file,
			.protocols = cfg->server_tls_protocols, .ciphers = cfg->server_tls_ciphers,
			.tls13_ciphers = cfg->server_tls13_ciphers,
		};
	}
}

bool reload_tls(const struct config *cfg, bool startup, char *err, size_t errlen)
{
	struct tls_settings a, c;
	tls_settings_of(cfg, true, &a);
	tls_settings_of(cfg, false, &c);
	if (tls_configure(&a, &c, err, errlen))
		return true;
	if (!startup)
		log_error("TLS settings not applied: %s", err);
	return false;
}

/* Did anything that shapes a server connection's TLS change? Servers made
 * with the old settings are then closed at their next release. */
static bool server_tls_changed(const struct config *a, const struct config *b)
{
	const char *const pairs[][2] = {
		{ a->server_tls_sslmode, b->server_tls_sslmode }, { a->server_tls_ca_file, b->server_tls_ca_file },
		{ a->server_tls_key_file, b->server_tls_key_file },
		{ a->server_tls_cert_file, b->server_tls_cert_file },
		{ a->server_tls_protocols, b->server_tls_protocols },
		{ a->server_tls_ciphers, b->server_tls_ciphers },
		{ a->server_tls13_ciphers, b->server_tls13_ciphers },
	};
	for (size_t i = 0; i < ARRAY_SIZE(pairs); i++)
		if (strcmp(pairs[i][0], pairs[i][1]) != 0)
			return true;
	return false;
}

/* Puts cfg in force; its TLS files are loaded first, and if they do not
 * load nothing changes (cfg is freed) and false is returned with *errors. */
static bool apply_snapshot(struct config *cfg, char **errors)
{
	char tls_err[800];
	const struct config *cur = config_current();
	if (!reload_tls(cfg, false, tls_err, sizeof(tls_err))) {
		if (errors)
			*errors = xasprintf("TLS: %s", tls_err);
		config_free(cfg);
		return false;
	}
	bool tls_moved = cur && server_tls_changed(cur, cfg);
	remember_pending(cur, cfg);
	config_keep_restart_keys(cfg, cur);
	struct config *old = config_swap(cfg);
	(void)!log_setup(cfg->logfile, cfg->syslog, cfg->syslog_ident, cfg->syslog_facility);
	pool_apply_config(cfg);
	if (tls_moved)
		pool_close_all_at_release("server TLS settings changed");
	config_free(old);
	return true;
}

void reload_swap(struct config *cfg)
{
	(void)apply_snapshot(cfg, NULL);
}

bool reload_config(char **errors)
{
	struct config_errors errs = { 0 };
	const struct config *cur = config_current();
	struct config *cfg = config_load(cur->conffile, &errs, reload_warn);
	char *msg = NULL;
	if (!cfg)
		msg = join_errors(&errs);
	config_errors_free(&errs);
	if (cfg && !apply_snapshot(cfg, &msg))
		cfg = NULL;
	if (!cfg) {
		log_error("reload failed, nothing applied, keeping the old configuration: %s", msg);
		if (errors)
			*errors = msg;
		else
			free(msg);
		return false;
	}
	log_info("configuration reloaded");
	if (errors)
		*errors = NULL;
	return true;
}

void reload_free(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(pending); i++) {
		free(pending[i]);
		pending[i] = NULL;
	}
	tls_free_contexts();
	config_free(config_swap(NULL));
}
