/* login: the startup phase of a client (see login.h). Every packet is held
 * whole before it is parsed, and its declared length is checked against
 * PostgreSQL's limit before any buffer grows for it.
 *
 * Owns struct login_auth, a client's authentication state, allocated when
 * its startup packet is accepted and freed once it is authenticated (an
 * idle client carries none of it). The method comes from auth_type or, with
 * auth_type = hba, from the first matching line of auth_hba_file; the secret
 * is copied when the exchange starts, so a reload in the middle of it
 * cannot change what the password is checked against. A user without a
 * secret goes through the same exchange as any other and fails at the end
 * with the same error as a wrong password.
 *
 * TLS: an SSLRequest is answered 'S' when client TLS is configured (TCP
 * only), then the handshake runs on the loop and the startup packet comes
 * encrypted. Bytes that arrive together with the SSLRequest were sent
 * before the client could know the answer, so they are refused rather
 * than mixed into the encrypted stream. A ClientHello as the very first
 * bytes is PostgreSQL 17's direct TLS. */
#include "login.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "auth_query.h"
#include "cancel.h"
#include "client.h"
#include "config.h"
#include "crypto.h"
#include "events.h"
#include "hba.h"
#include "log.h"
#include "loop.h"
#include "proto.h"
#include "server_login.h"
#include "tls.h"

enum auth_phase {
	AUTH_PHASE_NONE,
	AUTH_PHASE_CLEARTEXT,
	AUTH_PHASE_MD5,
	AUTH_PHASE_SASL_INIT,
	AUTH_PHASE_SASL_CONT,
};

/* How a login is checked: from auth_type, or from the hba line. */
enum login_method {
	LOGIN_TRUST,
	LOGIN_PLAIN,
	LOGIN_MD5,
	LOGIN_SCRAM,
	LOGIN_PEER,
	LOGIN_CERT,
	LOGIN_REJECT,
};

struct login_auth {
	enum auth_phase phase;
	enum login_method method;
	const char *map;         /* hba map= of a peer or cert line (the snapshot's rules), or NULL */
	uint8_t md5_salt[4];
	bool have_scram;
	struct scram_server scram;
	char *secret;            /* what the password is checked against; NULL: no such user */
	bool secret_looked_up;   /* it came from auth_query */
	struct auth_query_wait *wait;  /* while auth_query runs for this login */
	/* No pool for the database asked for: said only after authentication,
	 * so an unauthenticated client learns no database names. */
	const char *no_db_sqlstate;
	char *no_db_msg;
	/* Settings of the startup packet not tracked yet ("name\0value\0"...):
	 * added to the tracked names only once the client is authenticated, so
	 * an unauthenticated client cannot fill that table. */
	char *pending;
	size_t pending_len;
};

/* The secret to check a user's password against, or NULL. */
static const char *user_secret(const struct config *cfg, const char *user)
{
	const struct auth_entry *e = config_find_auth(cfg, user);
	return e ? e->secret : NULL;
}

void login_free(struct client *c)
{
	struct login_auth *a = c->auth;
	if (!a)
		return;
	if (a->wait)
		auth_query_cancel(a->wait);
	if (a->have_scram)
		scram_server_free(&a->scram);
	if (a->secret) {
		crypto_wipe(a->secret, strlen(a->secret));
		free(a->secret);
	}
	free(a->no_db_msg);
	free(a->pending);
	crypto_wipe(a, sizeof(*a));
	free(a);
	c->auth = NULL;
}

static void send_auth(struct client *c, uint32_t code, const void *data, size_t n)
{
	uint8_t buf[512];
	struct proto_writer w;
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_auth(&w, code, data, n);
	if (!w.overflow)
		(void)conn_send(&c->conn, w.buf, w.len);
}

static void auth_failed(struct client *c)
{
	if (c->pool)
		c->pool->stats.client_login_failures++;
	client_fail(c, "28P01", "password authentication failed for user \"%s\"", c->user);
}

/* max_db_client_connections and max_user_client_connections, counted as
 * the client joins its pool (so concurrent logins cannot all slip in). */
static bool login_within_client_limits(struct client *c, const struct pool *p)
{
	int max_db = p->max_db_client_connections, max_user = p->max_user_client_connections;
	if (p->console) {   /* as PgBouncer: admin users are not limited on the console */
		const struct config *cfg = config_current();
		const struct user_config *u = config_find_user(cfg, c->user);
		if (config_list_contains(cfg->admin_users, c->user))
			return true;
		max_db = cfg->max_db_client_connections;
		max_user = u && u->max_user_client_connections >= 0 ? u->max_user_client_connections
								    : cfg->max_user_client_connections;
	}
	if (max_db > 0 && events_pool_client_count(p->db_name, NULL) >= max_db) {
		client_fail(c, "53300", "client connections exceeded (max_db_client_connections)");
		return false;
	}
	if (max_user > 0 && events_pool_client_count(NULL, c->user) >= max_user) {
		client_fail(c, "53300", "client connections exceeded (max_user_client_connections)");
		return false;
	}
	return true;
}

static bool take_pending(struct client *c);

/* Authentication passed: join the pool, or now tell what is wrong with
 * the database asked for. */
static void login_authenticated(struct client *c)
{
	struct login_auth *a = c->auth;
	if (a && a->no_db_msg) {
		client_fail(c, a->no_db_sqlstate, "%s", a->no_db_msg);
		return;
	}
	if (c->pool->disabled) {
		client_fail(c, "55000", "database \"%s\" does not allow connections (DISABLE)", c->dbname);
		return;
	}
	if (!take_pending(c))
		return;
	login_free(c);
	const struct config *cfg = config_current();
	if (cfg->log_connections)
		client_log(LOG_LVL_INFO, c, "login attempt: db=%s user=%s", c->dbname, c->user);
	struct pool *p = c->pool;
	p->stats.client_logins++;
	if (!login_within_client_limits(c, p))
		return;
	if (p->console) {
		client_console()->login(c);
		return;
	}
	/* Without the pool's parameters yet, the client waits for its first
	 * server's login and sends nothing meanwhile. */
	if (!p->have_welcome)
		conn_set_reading(&c->conn, false);
	events_client_authenticated(c);
}

/* Random per process: the salt of a made-up SCRAM verifier (see
 * scram_server_init_mock) stays the same for a user while tidepool runs. */
static const uint8_t *mock_key(void)
{
	static uint8_t key[SCRAM_KEY_LEN];
	static bool ready;
	if (!ready) {
		crypto_random(key, sizeof(key));
		ready = true;
	}
	return key;
}

/* secret NULL: no such user; the exchange runs against a made-up verifier. */
static void start_sasl(struct client *c, const char *secret, int iterations)
{
	struct login_auth *a = c->auth;
	if (secret && !scram_server_init(&a->scram, secret, iterations)) {
		client_log(LOG_LVL_INFO, c, "SCRAM authentication is not possible with this user's secret");
		secret = NULL;   /* fails at the end, like a wrong password */
	}
	if (!secret)
		scram_server_init_mock(&a->scram, c->user, mock_key(), iterations);
	a->have_scram = true;
	static const char mechs[] = "SCRAM-SHA-256\0";
	send_auth(c, PQ_AUTH_SASL, mechs, sizeof(mechs));
	a->phase = AUTH_PHASE_SASL_INIT;
}

/* The connection's encryption as PostgreSQL names it in hba errors. */
static const char *encryption(const struct client *c)
{
	return conn_tls_active(&c->conn) ? "SSL encryption" : "no encryption";
}

/* Host name as PostgreSQL prints it in hba errors. */
static const char *hba_host(const struct client *c)
{
	return c->is_unix ? "[local]" : c->addr;
}

/* The OS user (peer) or certificate name (cert) proven by the client may
 * log in as c->user: the same name, or allowed by the hba line's map=
 * through auth_ident_file. Checked at once, while the snapshot that holds
 * the map is current. */
static bool identity_allowed(const struct client *c, const char *who)
{
	if (!c->auth || !c->auth->map)
		return strcmp(who, c->user) == 0;
	return hba_ident_allows(config_current()->hba, c->auth->map, who, c->user);
}

/* Peer authentication: the OS user at the other end of the unix socket
 * must be the user asked for. getpwuid_r reads the local user database;
 * PostgreSQL does the same in its backends. */
static void check_peer(struct client *c)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct passwd pw, *found = NULL;
	char buf[1024];
	if (!c->is_unix || getsockopt(c->conn.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		client_fail(c, "28000", "peer authentication is only supported on local sockets");
		return;
	}
	if (getpwuid_r(cred.uid, &pw, buf, sizeof(buf), &found) != 0 || !found) {
		client_log(LOG_LVL_INFO, c, "peer authentication: no local user with uid %ld", (long)cred.uid);
		client_fail(c, "28000", "Peer authentication failed for user \"%s\"", c->user);
		return;
	}
	if (!identity_allowed(c, found->pw_name)) {
		client_log(LOG_LVL_INFO, c, "peer authentication: provided user name (%s) and authenticated user name (%s) do not match",
			   c->user, found->pw_name);
		client_fail(c, "28000", "Peer authentication failed for user \"%s\"", c->user);
		return;
	}
	login_authenticated(c);
}

/* The one place where a client certificate is checked (auth_type = cert,
 * or an hba "cert" line): the certificate verified against
 * client_tls_ca_file during the TLS handshake, whose common name must be
 * the user name. */
static void login_check_client_cert(struct client *c)
{
	char cn[256];
	if (!conn_tls_active(&c->conn)) {
		client_fail(c, "28000", "certificate authentication for user \"%s\" needs a TLS connection with a client certificate",
			    c->user);
		return;
	}
	if (!conn_tls_peer_cn(&c->conn, cn, sizeof(cn))) {
		client_fail(c, "28000", "connection requires a valid client certificate");
		return;
	}
	if (!identity_allowed(c, cn)) {
		client_log(LOG_LVL_INFO, c, "certificate common name \"%s\" is not the user name%s", cn,
			   c->auth && c->auth->map ? " nor mapped to it" : "");
		if (c->pool)
			c->pool->stats.client_login_failures++;
		client_fail(c, "28000", "certificate authentication failed for user \"%s\"", c->user);
		return;
	}
	login_authenticated(c);
}

/* Asks for the password the method wants; secret NULL means no such user. */
static void ask_password(struct client *c, const char *secret, const struct config *cfg)
{
	struct login_auth *a = c->auth;
	a->secret = secret ? xstrdup(secret) : NULL;
	switch (a->method) {
	case LOGIN_PLAIN:
		send_auth(c, PQ_AUTH_CLEARTEXT, NULL, 0);
		a->phase = AUTH_PHASE_CLEARTEXT;
		return;
	case LOGIN_MD5:
		/* As PostgreSQL: SCRAM for a SCRAM secret, and for a user without
		 * one too (the likelier kind since PostgreSQL 14), so the method
		 * asked for says nothing about whether the user exists. */
		if (!secret || auth_secret_kind(secret) == SECRET_SCRAM) {
			start_sasl(c, secret, cfg->scram_iterations);
			return;
		}
		crypto_random(a->md5_salt, sizeof(a->md5_salt));
		send_auth(c, PQ_AUTH_MD5, a->md5_salt, sizeof(a->md5_salt));
		a->phase = AUTH_PHASE_MD5;
		return;
	case LOGIN_SCRAM:
		/* As PostgreSQL: an md5 secret cannot pass SCRAM, and the client
		 * learns that only as a failed password, at the end. */
		if (secret && auth_secret_kind(secret) == SECRET_MD5) {
			client_log(LOG_LVL_INFO, c, "user has an md5 secret: SCRAM authentication cannot succeed");
			start_sasl(c, NULL, cfg->scram_iterations);
			return;
		}
		start_sasl(c, secret, cfg->scram_iterations);
		return;
	case LOGIN_TRUST:
	case LOGIN_PEER:
	case LOGIN_CERT:
	case LOGIN_REJECT:
		client_fail(c, "08P01", "internal error: no password for this method");
		return;
	}
}

static enum login_method method_of_hba(enum hba_method m)
{
	switch (m) {
	case HBA_TRUST: return LOGIN_TRUST;
	case HBA_REJECT: return LOGIN_REJECT;
	case HBA_MD5: return LOGIN_MD5;
	case HBA_SCRAM: return LOGIN_SCRAM;
	case HBA_PASSWORD: return LOGIN_PLAIN;
	case HBA_PEER: return LOGIN_PEER;
	case HBA_CERT: return LOGIN_CERT;
	}
	return LOGIN_REJECT;
}

/* The method for c from auth_hba_file; false after failing the client. */
static bool method_from_hba(struct client *c, const struct config *cfg, enum login_method *out)
{
	struct hba_request req = {
		.is_unix = c->is_unix,
		.addr = c->is_unix ? NULL : &c->conn.addr.sa,
		.tls = conn_tls_active(&c->conn),
		.database = c->dbname,
		.user = c->user,
		.physical_replication = c->replication == REPL_PHYSICAL,
	};
	struct hba_result r;
	if (!hba_match(cfg->hba, &req, &r)) {
		client_fail(c, "28000", "no pg_hba.conf entry for host \"%s\", user \"%s\", database \"%s\", %s",
			    hba_host(c), c->user, c->dbname, encryption(c));
		return false;
	}
	client_log(LOG_LVL_DEBUG, c, "%s:%d: hba method %s", r.file, r.line, hba_method_name(r.method));
	*out = method_of_hba(r.method);
	c->auth->map = r.map;
	return true;
}

/* The method for c from auth_type; false after failing the client. */
static bool method_from_auth_type(struct client *c, enum auth_type t, enum login_method *out)
{
	switch (t) {
	case AUTH_TYPE_TRUST:
	case AUTH_TYPE_ANY:
		*out = LOGIN_TRUST;
		return true;
	case AUTH_TYPE_PLAIN:
		*out = LOGIN_PLAIN;
		return true;
	case AUTH_TYPE_MD5:
		*out = LOGIN_MD5;
		return true;
	case AUTH_TYPE_SCRAM_SHA_256:
		*out = LOGIN_SCRAM;
		return true;
	case AUTH_TYPE_CERT:
		*out = LOGIN_CERT;
		return true;
	case AUTH_TYPE_HBA:
	case AUTH_TYPE_PAM:
	case AUTH_TYPE_LDAP:
		break;
	}
	client_fail(c, "28000", "auth_type %s is not supported yet", config_auth_type_name(t));
	return false;
}

/* Where auth_query runs for a client's database: its [databases] entry's
 * own auth_user/auth_query/auth_dbname, else the main section's. */
struct lookup_config {
	const char *user, *query, *dbname;
};

/* False when no lookup applies: no auth_user, no such database, or the
 * admin console, whose
 * admin users must be in auth_file. Its stats users (stats_users_prefix,
 * stats_users) may be looked up through the entry of the global
 * auth_dbname: Zalando's robot_ stats users live only in PostgreSQL. */
static bool lookup_config(const struct client *c, const struct config *cfg, struct lookup_config *out)
{
	bool stats_only = !config_list_contains(cfg->admin_users, c->user);
	if (!c->pool)
		return false;   /* no such database: no lookup (as PgBouncer) */
	const char *name = !c->pool->console ? c->dbname : stats_only ? cfg->auth_dbname : "";
	const struct db_config *db = name[0] ? config_find_db_or_fallback(cfg, name) : NULL;
	if (!db)
		return false;
	out->user = db->auth_user ? db->auth_user : cfg->auth_user;
	out->query = db->auth_query ? db->auth_query : cfg->auth_query;
	out->dbname = db->auth_dbname ? db->auth_dbname : cfg->auth_dbname;
	if (!out->dbname[0])
		out->dbname = c->dbname;
	return out->user[0] && out->query[0];
}

static void remember_server_secret(struct client *c);

/* auth_type trust admits only users it knows: in auth_file, or found by
 * auth_query (as PgBouncer). Saying so discloses nothing that admitting
 * known users does not. */
static void trust_failed(struct client *c)
{
	if (c->pool)
		c->pool->stats.client_login_failures++;
	client_fail(c, "28000", "\"trust\" authentication failed: no such user \"%s\"", c->user);
}

static void trust_found(struct client *c, const char *secret)
{
	c->auth->secret = xstrdup(secret);
	remember_server_secret(c);
	login_authenticated(c);
}

static void lookup_done(void *arg, enum auth_query_status st, const char *secret, const char *sqlstate,
			const char *msg)
{
	struct client *c = arg;
	if (c->state != CL_LOGIN || !c->auth)
		return;
	c->auth->wait = NULL;
	bool trust = c->auth->method == LOGIN_TRUST;
	switch (st) {
	case AUTH_QUERY_FOUND:
		c->auth->secret_looked_up = true;
		if (trust)
			trust_found(c, secret);
		else
			ask_password(c, secret, config_current());
		return;
	case AUTH_QUERY_NO_SECRET:
		if (trust) {   /* the user exists: trust asks no more (as PgBouncer) */
			login_authenticated(c);
			return;
		}
		/* fall through - no password can match */
	case AUTH_QUERY_NOT_FOUND:
		client_log(LOG_LVL_DEBUG, c, "auth_query found no secret");
		if (trust)
			trust_failed(c);
		else
			ask_password(c, NULL, config_current());
		return;
	case AUTH_QUERY_FAILED:
		client_fail(c, sqlstate, "%s", msg);
		return;
	}
}

static void start_lookup(struct client *c, const struct config *cfg, const struct lookup_config *lc)
{
	const char *sqlstate, *why;
	struct pool *ap = events_pool_for(cfg, lc->dbname, lc->user, REPL_NONE, &sqlstate, &why);
	if (!ap) {
		client_fail(c, sqlstate, "auth_query cannot run: %s", why);
		return;
	}
	struct auth_query_wait *w = auth_query_lookup(ap, lc->query, c->user, lookup_done, c);
	if (w)   /* NULL: the answer came at once, lookup_done ran */
		c->auth->wait = w;
}

/* The secret of a password method: auth_file's, or auth_query's for users
 * that have none there. */
static void find_secret(struct client *c, const struct config *cfg)
{
	const char *secret = user_secret(cfg, c->user);
	struct lookup_config lc;
	if ((!secret || !secret[0]) && lookup_config(c, cfg, &lc)) {
		start_lookup(c, cfg, &lc);
		return;
	}
	ask_password(c, secret, cfg);
}

/* Trust: the user must be known; with auth_type = any the name is not
 * looked at (the database's forced user logs in, see take_any_user). */
static void trust_login(struct client *c, const struct config *cfg)
{
	const struct auth_entry *e = config_find_auth(cfg, c->user);
	struct lookup_config lc;
	if (cfg->auth_type == AUTH_TYPE_ANY || e) {
		login_authenticated(c);
		return;
	}
	if (!e && lookup_config(c, cfg, &lc)) {
		start_lookup(c, cfg, &lc);
		return;
	}
	trust_failed(c);
}

static void start_auth(struct client *c, const struct config *cfg)
{
	if (c->pool && c->pool->console && client_console()->trusts_peer(c)) {
		login_authenticated(c);
		return;
	}
	enum login_method m;
	bool ok = cfg->auth_type == AUTH_TYPE_HBA ? method_from_hba(c, cfg, &m)
		  : method_from_auth_type(c, cfg->auth_type, &m);
	if (!ok)
		return;
	c->auth->method = m;
	switch (m) {
	case LOGIN_TRUST:
		trust_login(c, cfg);
		return;
	case LOGIN_REJECT:
		client_fail(c, "28000", "pg_hba.conf rejects connection for host \"%s\", user \"%s\", database \"%s\", %s",
			    hba_host(c), c->user, c->dbname, encryption(c));
		return;
	case LOGIN_PEER:
		check_peer(c);
		return;
	case LOGIN_CERT:
		login_check_client_cert(c);
		return;
	case LOGIN_PLAIN:
	case LOGIN_MD5:
	case LOGIN_SCRAM:
		find_secret(c, cfg);
		return;
	}
}

/* A cleartext password against a SCRAM verifier: derive the keys with the
 * verifier's salt and iterations and compare. */
static bool check_plain_scram(const char *secret, const char *given)
{
	struct scram_secret v;
	uint8_t salted[32], client_key[32], stored[32], server_key[32];
	if (!auth_scram_parse_secret(secret, &v))
		return false;
	if (!crypto_pbkdf2_sha256(given, strlen(given), v.salt, v.salt_len, v.iterations, salted))
		return false;
	crypto_hmac_sha256(salted, sizeof(salted), "Client Key", 10, client_key);
	crypto_sha256(client_key, sizeof(client_key), stored);
	crypto_hmac_sha256(salted, sizeof(salted), "Server Key", 10, server_key);
	return crypto_equal(stored, v.stored_key, 32) && crypto_equal(server_key, v.server_key, 32);
}

static bool check_plain(const char *user, const char *secret, const char *given)
{
	if (!secret)
		return false;
	switch (auth_secret_kind(secret)) {
	case SECRET_PLAIN:
		return strlen(secret) == strlen(given) && crypto_equal(secret, given, strlen(secret));
	case SECRET_MD5: {
		char md5[AUTH_MD5_LEN + 1];
		auth_md5_secret(user, given, md5);
		return crypto_equal(md5, secret, AUTH_MD5_LEN + 1);
	}
	case SECRET_SCRAM:
		return check_plain_scram(secret, given);
	}
	return false;
}

/* A secret auth_query gave for the user the pool logs in as is also the
 * pool's server secret, when the configuration gives none: the same rule
 * as for auth_file secrets. */
static void remember_server_secret(struct client *c)
{
	struct login_auth *a = c->auth;
	struct pool *p = c->pool;
	if (!p || !a->secret_looked_up || !a->secret || p->console || p->server_password ||
	    strcmp(p->server_user, c->user) != 0)
		return;   /* the console's pool has no servers (nor server_user) */
	if (p->looked_up_secret && strcmp(p->looked_up_secret, a->secret) == 0)
		return;
	if (p->looked_up_secret)
		crypto_wipe(p->looked_up_secret, strlen(p->looked_up_secret));
	free(p->looked_up_secret);
	p->looked_up_secret = xstrdup(a->secret);
	p->have_scram_keys = false;   /* they belonged to the old secret */
}

/* The client proved the verifier the pool logs in with: keep its keys so
 * server logins can use SCRAM pass-through (no plain password needed). */
static void remember_scram_keys(struct client *c)
{
	struct pool *p = c->pool;
	const char *secret = c->auth->secret;
	const char *server_secret = p ? server_login_secret(p) : NULL;
	if (!secret || !server_secret || strcmp(secret, server_secret) != 0)
		return;
	memcpy(p->scram_client_key, c->auth->scram.client_key, sizeof(p->scram_client_key));
	memcpy(p->scram_server_key, c->auth->scram.secret.server_key, sizeof(p->scram_server_key));
	p->have_scram_keys = true;
}

static void handle_sasl(struct client *c, const uint8_t *body, size_t len)
{
	struct login_auth *a = c->auth;
	struct proto_reader r;
	proto_reader_init(&r, body, len);
	size_t out_len = 0;
	char *out;
	const char *err = "malformed SCRAM message";
	if (a->phase == AUTH_PHASE_SASL_INIT) {
		const char *mech = proto_get_string(&r);
		uint32_t n = proto_get_int32(&r);
		const uint8_t *data = r.err || n > proto_remaining(&r) ? NULL : proto_get_bytes(&r, n);
		if (!mech || !data || strcmp(mech, "SCRAM-SHA-256") != 0) {
			client_fail(c, "08P01", "invalid SASL initial response");
			return;
		}
		out = scram_server_first(&a->scram, (const char *)data, n, &out_len);
		if (!out) {
			client_fail(c, "08P01", "malformed SCRAM client-first-message");
			return;
		}
		send_auth(c, PQ_AUTH_SASL_CONTINUE, out, out_len);
		free(out);
		a->phase = AUTH_PHASE_SASL_CONT;
		return;
	}
	out = scram_server_final(&a->scram, (const char *)body, len, &out_len, &err);
	if (!out) {
		client_log(LOG_LVL_INFO, c, "SCRAM authentication failed: %s%s", err,
			   a->secret ? "" : " (no secret for this user)");
		auth_failed(c);
		return;
	}
	send_auth(c, PQ_AUTH_SASL_FINAL, out, out_len);
	free(out);
	remember_server_secret(c);
	remember_scram_keys(c);
	login_authenticated(c);
}

static void handle_password(struct client *c, const uint8_t *body, size_t len)
{
	struct login_auth *a = c->auth;
	switch (a ? a->phase : AUTH_PHASE_NONE) {
	case AUTH_PHASE_CLEARTEXT:
	case AUTH_PHASE_MD5: {
		if (len == 0 || body[len - 1] != '\0' || memchr(body, '\0', len) != body + len - 1) {
			client_fail(c, "08P01", "invalid password packet");
			return;
		}
		const char *given = (const char *)body;
		bool ok = a->phase == AUTH_PHASE_MD5
			? a->secret && auth_md5_check(c->user, a->secret, a->md5_salt, given)
			: check_plain(c->user, a->secret, given);
		if (!ok) {
			if (!a->secret)
				client_log(LOG_LVL_INFO, c, "password authentication failed: no secret for this user");
			auth_failed(c);
			return;
		}
		remember_server_secret(c);
		login_authenticated(c);
		return;
	}
	case AUTH_PHASE_SASL_INIT:
	case AUTH_PHASE_SASL_CONT:
		handle_sasl(c, body, len);
		return;
	case AUTH_PHASE_NONE:
		client_fail(c, "08P01", "unexpected password packet");
		return;
	}
}

/* Next word of an `options` value as PostgreSQL splits it: blanks
 * separate words, a backslash takes the next character literally. */
static const char *options_word(const char *p, char *out, size_t cap, bool *too_long)
{
	size_t n = 0;
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (!*p)
		return NULL;
	for (; *p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r'; p++) {
		if (*p == '\\' && p[1])
			p++;
		if (n + 1 < cap)
			out[n++] = *p;
		else
			*too_long = true;
	}
	out[n] = '\0';
	return p;
}

/* A setting the client asked for at startup: a tracked one takes the value
 * at once; another valid name waits in the pending list until the client is
 * authenticated (take_pending). False for a name that is no setting. */
static bool take_named_setting(struct client *c, const char *name, const char *value)
{
	int idx = params_index(name);
	if (idx >= 0) {
		param_set_put(&c->params, (size_t)idx, value);
		return true;
	}
	if (!params_is_setting_name(name))
		return false;
	struct login_auth *a = c->auth;
	size_t n = strlen(name) + 1, v = strlen(value) + 1;
	a->pending = xrealloc(a->pending, a->pending_len + n + v);
	memcpy(a->pending + a->pending_len, name, n);
	memcpy(a->pending + a->pending_len + n, value, v);
	a->pending_len += n + v;
	return true;
}

/* The client is authenticated: its pending settings become tracked ones
 * (params_track). False after failing the client when the table is full. */
static bool take_pending(struct client *c)
{
	struct login_auth *a = c->auth;
	for (size_t off = 0; a && off < a->pending_len;) {
		const char *name = a->pending + off;
		const char *value = name + strlen(name) + 1;
		off = (size_t)(value - a->pending) + strlen(value) + 1;
		int idx = params_track(name);
		if (idx < 0) {
			client_fail(c, "08P01", "cannot track setting \"%s\" (too many different ones)", name);
			return false;
		}
		param_set_put(&c->params, (size_t)idx, value);
	}
	return true;
}

/* PgBouncer's words, which its users and tests look for. */
#define OPTIONS_ONLY_SETTINGS \
	"unsupported options startup parameter: only '-c config=val' and '--config=val' are allowed"

/* One "name=value" of `-c name=value` or `--name=value`: the client's own
 * setting, tracked like a startup parameter (params_track); a name in
 * ignore_startup_parameters is dropped, as PgBouncer does. */
static bool take_setting(struct client *c, char *pair)
{
	char *eq = strchr(pair, '=');
	if (!eq) {
		client_fail(c, "08P01", "%s", OPTIONS_ONLY_SETTINGS);
		return false;
	}
	*eq = '\0';
	for (char *q = pair; *q; q++)
		if (*q == '-')
			*q = '_';   /* --statement-timeout=... as PostgreSQL allows */
	if (config_list_contains(config_current()->ignore_startup_parameters, pair))
		return true;
	if (!take_named_setting(c, pair, eq + 1)) {
		client_fail(c, "08P01", "options: cannot track setting \"%s\" (not a setting name)", pair);
		return false;
	}
	return true;
}

/* The `options` startup parameter: -c name=value (or --name=value) words
 * become the client's settings, applied on every server it gets. */
static bool take_options(struct client *c, const char *value)
{
	char word[1024];
	bool too_long = false;
	const char *p = value;
	while ((p = options_word(p, word, sizeof(word), &too_long)) != NULL) {
		if (too_long) {
			client_fail(c, "08P01", "options: setting too long");
			return false;
		}
		if (strcmp(word, "-c") == 0) {
			p = options_word(p, word, sizeof(word), &too_long);
			if (!p || too_long) {
				client_fail(c, "08P01", "%s", OPTIONS_ONLY_SETTINGS);
				return false;
			}
			if (!take_setting(c, word))
				return false;
		} else if (strncmp(word, "-c", 2) == 0 || strncmp(word, "--", 2) == 0) {
			if (!take_setting(c, word + 2))
				return false;
		} else {
			client_fail(c, "08P01", "%s (not \"%s\")", OPTIONS_ONLY_SETTINGS, word);
			return false;
		}
	}
	return true;
}

/* Applies one startup parameter; false after failing the client. */
static bool take_param(struct client *c, const struct config *cfg, const char *name, const char *value)
{
	if (strcmp(name, "user") == 0 || strcmp(name, "database") == 0)
		return true;
	if (strncmp(name, "_pq_.", 5) == 0)
		return true;
	if (strcmp(name, "replication") == 0) {
		bool on;
		if (strcmp(value, "database") == 0) {
			c->replication = REPL_LOGICAL;
		} else if (parse_bool(value, &on)) {
			c->replication = on ? REPL_PHYSICAL : REPL_NONE;
		} else {
			client_fail(c, "08P01", "invalid value for parameter \"replication\": \"%s\"", value);
			return false;
		}
		return true;
	}
	int idx = params_index(name);
	if (idx >= 0) {
		param_set_put(&c->params, (size_t)idx, value);
		return true;
	}
	if (config_list_contains(cfg->ignore_startup_parameters, name))
		return true;
	if (strcmp(name, "options") == 0)
		return take_options(c, value);
	/* Any other name is a setting, as PostgreSQL takes it (drivers send
	 * statement_timeout or search_path this way): as `-c name=value`. */
	if (take_named_setting(c, name, value))
		return true;
	client_fail(c, "08P01", "unsupported startup parameter: %s", name);
	return false;
}

/* application_name_add_host: "<name> - <addr>:<port>" ("app" when the
 * client gave none), set once at login as PgBouncer does. */
static void add_host_to_appname(struct client *c)
{
	int idx = params_index("application_name");
	if (idx < 0)
		return;
	const char *name = c->params.values[idx] ? c->params.values[idx] : "app";
	char buf[400];
	if (c->is_unix)
		snprintf(buf, sizeof(buf), "%s - unix", name);
	else
		snprintf(buf, sizeof(buf), "%s - %s:%d", name, c->addr, c->port);
	param_set_put(&c->params, (size_t)idx, buf);
}

static void negotiate_version(struct client *c, const struct proto_startup *st)
{
	const char *unknown[PROTO_MAX_STARTUP_PARAMS];
	size_t n = 0;
	for (size_t i = 0; i < st->n_params; i++)
		if (strncmp(st->names[i], "_pq_.", 5) == 0)
			unknown[n++] = st->names[i];
	if ((st->code & 0xffff) == 0 && n == 0)
		return;
	uint8_t buf[2048];
	struct proto_writer w;
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_negotiate_version(&w, 0, unknown, n);
	if (!w.overflow)
		(void)conn_send(&c->conn, w.buf, w.len);
}

/* auth_type = any: the user name given is not looked at; the database's
 * forced user is the client's user (PgBouncer requires one). False after
 * failing the client; an unknown database is told after "login". */
static bool take_any_user(struct client *c, const struct config *cfg)
{
	const struct db_config *db = config_find_db_or_fallback(cfg, c->dbname);
	if (!db)
		return true;
	if (!db->user) {
		client_log(LOG_LVL_WARNING, c, "auth_type = any needs a forced user in [databases] %s", db->name);
		client_fail(c, "08P01", "bouncer config error: auth_type = any requires a forced user");
		return false;
	}
	free(c->user);
	c->user = xstrdup(db->user);
	return true;
}

static void handle_startup(struct client *c, const struct proto_startup *st)
{
	const struct config *cfg = config_current();
	const char *user = proto_startup_get(st, "user");
	if (!user || !*user) {
		client_fail(c, "28000", "no PostgreSQL user name specified in startup packet");
		return;
	}
	const char *db = proto_startup_get(st, "database");
	c->user = xstrdup(user);
	c->dbname = xstrdup(db && *db ? db : user);
	if (!c->is_unix && !conn_tls_active(&c->conn) && tls_accept_mode() >= TLS_REQUIRE) {
		client_fail(c, "28000", "SSL required: client_tls_sslmode = %s refuses unencrypted connections",
			    tls_sslmode_name(tls_accept_mode()));
		return;
	}
	c->auth = xcalloc(1, sizeof(*c->auth));
	for (size_t i = 0; i < st->n_params; i++)
		if (!take_param(c, cfg, st->names[i], st->values[i]))
			return;
	c->startup_done = true;
	if (cfg->application_name_add_host)
		add_host_to_appname(c);
	if (cfg->max_client_conn > 0 && events_client_count() > cfg->max_client_conn) {
		client_fail(c, "53300", "no more connections allowed (max_client_conn)");
		return;
	}
	bool console = client_console()->is_console_db(c->dbname);
	if (!console && client_shutting_down()) {
		client_fail(c, "57P01", "pooler is shutting down");   /* only the console still logs in */
		return;
	}
	if (!console && cfg->auth_type == AUTH_TYPE_ANY && !take_any_user(c, cfg))
		return;
	const char *sqlstate = NULL, *why = NULL;
	c->pool = console ? events_console_pool()
		  : events_pool_for(cfg, c->dbname, c->user, (int)c->replication, &sqlstate, &why);
	if (!c->pool) {
		c->auth->no_db_sqlstate = sqlstate;
		c->auth->no_db_msg = xstrdup(why);
	}
	negotiate_version(c, st);
	start_auth(c, cfg);
}

static void start_tls(struct client *c, bool direct)
{
	char err[200];
	conn_release_empty(&c->conn);
	if (!conn_tls_accept(&c->conn, direct, err, sizeof(err)))
		client_close(c, err);
}

/* SSLRequest: 'S' and the handshake when TLS is on offer, else 'N'. */
static bool answer_ssl_request(struct client *c)
{
	if (c->conn.tls) {
		client_fail(c, "08P01", "SSLRequest on an encrypted connection");
		return false;
	}
	if (c->is_unix || !tls_accept_available()) {
		(void)conn_send(&c->conn, "N", 1);
		return true;
	}
	if (c->conn.in && iobuf_len(c->conn.in) > 0) {
		client_fail(c, "08P01", "received unencrypted data after SSL request");
		return false;
	}
	if (conn_send(&c->conn, "S", 1) != CONN_IO_DONE) {
		client_close(c, "could not answer the SSLRequest");
		return false;
	}
	start_tls(c, false);
	return false;   /* the startup packet comes after the handshake */
}

bool login_try_direct_tls(struct client *c)
{
	uint8_t first;
	if (c->is_unix || c->conn.tls || !tls_accept_available() || conn_peek_byte(&c->conn, &first) != 1 ||
	    first != 0x16)   /* TLS handshake record */
		return false;
	client_log(LOG_LVL_DEBUG, c, "direct TLS connection");
	start_tls(c, true);
	return true;
}

void login_tls_ready(struct client *c, const char *err)
{
	if (err) {
		client_log(LOG_LVL_INFO, c, "TLS handshake failed: %s", err);
		client_close(c, "TLS handshake failed");
		return;
	}
	if (log_enabled(LOG_LVL_DEBUG)) {
		char info[128];
		conn_tls_describe(&c->conn, info, sizeof(info));
		client_log(LOG_LVL_DEBUG, c, "TLS established: %s", info);
	}
}

/* Startup-phase packets: int32 length, int32 code, body. */
static bool startup_packet(struct client *c)
{
	struct iobuf *b = c->conn.in;
	if (iobuf_len(b) < 4)
		return false;
	if (b->data[b->start] == PQ_MSG_TERMINATE && !c->startup_done) {
		/* A Terminate before any startup packet: the client changed its
		 * mind. PostgreSQL closes without a word; so do we. */
		if (iobuf_len(b) < PROTO_HEADER_LEN)
			return false;
		if (get_be32(b->data + b->start + 1) == 4) {
			client_close(c, "client sent Terminate before its startup packet");
			return false;
		}
	}
	uint32_t len = get_be32(b->data + b->start);
	if (len < 8 || len > PROTO_MAX_STARTUP_LEN) {
		client_fail(c, "08P01", "invalid length of startup packet: %u", len);
		return false;
	}
	if (iobuf_len(b) < len) {
		conn_reserve(&c->conn, len);
		return false;
	}
	struct proto_startup st;
	const char *why = NULL;
	if (proto_parse_startup(b->data + b->start, len, &st, &why) != PROTO_OK) {
		client_fail(c, "08P01", "%s", why);
		return false;
	}
	switch (st.code) {
	case PROTO_SSL_REQUEST:
		conn_consume(&c->conn, len);
		return answer_ssl_request(c);
	case PROTO_GSSENC_REQUEST:
		conn_consume(&c->conn, len);
		(void)conn_send(&c->conn, "N", 1);
		return true;
	case PROTO_CANCEL_REQUEST:
		cancel_request(st.cancel_pid, st.cancel_key);
		client_close(c, "cancel request handled");
		return false;
	default:
		/* Consumed first: login may finish and read on before this returns;
		 * st keeps pointing at the bytes, which stay in place meanwhile. */
		conn_consume(&c->conn, len);
		handle_startup(c, &st);
		return c->state == CL_LOGIN;
	}
}

/* Typed packets during authentication: only PasswordMessage is valid. */
static bool auth_packet(struct client *c)
{
	struct iobuf *b = c->conn.in;
	struct proto_header h;
	enum proto_result r = proto_read_header(b->data + b->start, iobuf_len(b), &h);
	if (r == PROTO_NEED_MORE)
		return false;
	if (r == PROTO_ERROR || h.type != PQ_MSG_PASSWORD || h.len > PROTO_MAX_PASSWORD_LEN) {
		client_fail(c, "08P01", "invalid authentication packet (type '%c', length %u)",
			    h.type >= 32 && h.type < 127 ? h.type : '?', h.len);
		return false;
	}
	if (iobuf_len(b) < h.len + 1) {
		conn_reserve(&c->conn, h.len + 1);
		return false;
	}
	const uint8_t *body = b->data + b->start + PROTO_HEADER_LEN;
	conn_consume(&c->conn, h.len + 1);
	handle_password(c, body, h.len - 4);
	return c->state == CL_LOGIN;
}

void login_input(struct client *c)
{
	while (c->state == CL_LOGIN && c->conn.in && iobuf_len(c->conn.in) > 0) {
		bool more = c->startup_done ? auth_packet(c) : startup_packet(c);
		if (!more)
			break;
	}
	if (c->state == CL_LOGIN)
		conn_release_empty(&c->conn);
}
