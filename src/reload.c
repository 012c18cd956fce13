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
	struct tls_settings t;
	char e1[400] = "", e2[400] = "";
	tls_settings_of(cfg, true, &t);
	bool ok1 = tls_configure_accept(&t, e1, sizeof(e1));
	tls_settings_of(cfg, false, &t);
	bool ok2 = tls_configure_connect(&t, e2, sizeof(e2));
	snprintf(err, errlen, "%s%s%s", e1, e1[0] && e2[0] ? "; " : "", e2);
	if (!startup && !ok1)
		log_error("client TLS settings not applied, keeping the previous ones (client_tls_sslmode = %s): %s",
			  tls_sslmode_name(tls_accept_mode()), e1);
	if (!startup && !ok2)
		log_error("server TLS settings not applied, keeping the previous ones (server_tls_sslmode = %s): %s",
			  tls_sslmode_name(tls_connect_mode()), e2);
	return ok1 && ok2;
}

void reload_swap(struct config *cfg)
{
	/* Restart-only settings keep their old values in the new snapshot. */
	const struct config *cur = config_current();
	cfg->listen_port = cur->listen_port;
	cfg->pkt_buf = cur->pkt_buf;
	struct config *old = config_swap(cfg);
	(void)!log_setup(cfg->logfile, cfg->syslog, cfg->syslog_ident, cfg->syslog_facility);
	pool_apply_config(cfg);
	char tls_err[800];
	(void)!reload_tls(cfg, false, tls_err, sizeof(tls_err));
	config_free(old);
}

bool reload_config(char **errors)
{
	struct config_errors errs = { 0 };
	const struct config *cur = config_current();
	struct config *cfg = config_load(cur->conffile, &errs, reload_warn);
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
	warn_restart_keys(cur, cfg);
	reload_swap(cfg);
	log_info("configuration reloaded");
	if (errors)
		*errors = NULL;
	return true;
}

void reload_free(void)
{
	tls_free_contexts();
	config_free(config_swap(NULL));
}
