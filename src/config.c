/* config: loads pgbouncer.ini-format files into an immutable struct config.
 *
 * Owns the declarative table of main-section keys (the only place a key's
 * type, default, bounds, reloadability, implementation status and help
 * live; SHOW CONFIG and doc/config.md follow it), the ini reader with
 * %include, the [databases], [users] and [peers] entry parsers, the
 * auth_file reader, the lookups over a snapshot, and the current snapshot
 * (config_current; reload.c decides when to swap in another).
 *
 * Invariants: a snapshot is never changed after config_load returns it and
 * owns every string it points to (db_config.file points into cfg->files).
 * config_load either returns a complete, validated snapshot or NULL with
 * every problem found, each as "file:line: message", in the caller's
 * config_errors: parsing goes on after an error so that one run shows all.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hba.h"
#include "pq.h"
#include "util.h"

#define MAX_INCLUDE_DEPTH 10
#define MAX_ERRORS 100
/* Longest duration accepted: far beyond any sane timeout, far from overflow. */
#define USEC_LIMIT ((int64_t)100 * 365 * 24 * 3600 * USEC_PER_SEC)

enum key_type {
	KT_STR,         /* string kept as written */
	KT_PATH,        /* file name; a relative one is taken from the directory of the file that sets it */
	KT_CHOICE,      /* string that must be one of key_def.choices (any case), kept in the table's spelling */
	KT_INT,         /* int */
	KT_INT64,       /* int64_t */
	KT_BOOL,        /* bool: 0/1, on/off, yes/no, true/false, or any integer */
	KT_USEC,        /* seconds, fraction allowed, kept as usec_t */
	KT_MSEC,        /* integer milliseconds, kept as usec_t; bounds in ms */
	KT_OCTAL,       /* int written in octal */
	KT_POOL_MODE,   /* enum pool_mode */
	KT_AUTH_TYPE,   /* enum auth_type */
};

/* One key: of the main section (all fields), or of a [databases], [users]
 * or [peers] entry (info.name, type, off, bounds, choices). */
struct key_def {
	struct config_key_info info;
	enum key_type type;
	size_t off;             /* offsetof into the struct being filled */
	int64_t min, max;       /* KT_INT, KT_INT64, KT_USEC (in usec), KT_MSEC (in ms), KT_OCTAL */
	const char *const *choices;  /* KT_CHOICE: NULL-terminated */
	bool alias;             /* another name for a field an earlier entry owns */
};

static const char *const pool_mode_names[] = {
	[POOL_MODE_SESSION] = "session",
	[POOL_MODE_TRANSACTION] = "transaction",
	[POOL_MODE_STATEMENT] = "statement",
	NULL,
};

static const char *const auth_type_names[] = {
	[AUTH_TYPE_TRUST] = "trust",
	[AUTH_TYPE_ANY] = "any",
	[AUTH_TYPE_PLAIN] = "plain",
	[AUTH_TYPE_MD5] = "md5",
	[AUTH_TYPE_SCRAM_SHA_256] = "scram-sha-256",
	[AUTH_TYPE_CERT] = "cert",
	[AUTH_TYPE_HBA] = "hba",
	[AUTH_TYPE_PAM] = "pam",
	[AUTH_TYPE_LDAP] = "ldap",
	NULL,
};

static const char *const sslmodes[] = {
	"disable", "allow", "prefer", "require", "verify-ca", "verify-full", NULL,
};
static const char *const shutdown_modes[] = { "drain", "wait_for_clients", NULL };
static const char *const syslog_facilities[] = {
	"auth", "authpriv", "daemon", "user", "local0", "local1", "local2",
	"local3", "local4", "local5", "local6", "local7", NULL,
};
static const char *const load_balance_modes[] = { "disable", "round-robin", NULL };
static const char *const session_state_modes[] = { "pin", "error", "allow", NULL };

#define RL true         /* a reload applies it */
#define NR false        /* needs a restart */
#define IM true         /* implemented */
#define RF false        /* not honoured: refused unless left at its default */

#define KEY(n, t, def, lo, hi, rl, im, help) \
	{ { #n, def, rl, im, help }, t, offsetof(struct config, n), lo, hi, NULL, false }
#define K_STR(n, def, rl, im, help) KEY(n, KT_STR, def, 0, 0, rl, im, help)
#define K_PATH(n, rl, im, help) KEY(n, KT_PATH, "", 0, 0, rl, im, help)
#define K_BOOL(n, def, rl, im, help) KEY(n, KT_BOOL, def, 0, 0, rl, im, help)
#define K_INT(n, def, lo, hi, rl, im, help) KEY(n, KT_INT, def, lo, hi, rl, im, help)
#define K_COUNT(n, def, rl, im, help) KEY(n, KT_INT, def, 0, INT_MAX, rl, im, help)
#define K_SECS(n, def, rl, im, help) KEY(n, KT_USEC, def, 0, USEC_LIMIT, rl, im, help)
#define K_CHOICE(n, ch, def, rl, im, help) \
	{ { #n, def, rl, im, help }, KT_CHOICE, offsetof(struct config, n), 0, 0, ch, false }
#define K_ALIAS(n, field, t, def, rl, im, help) \
	{ { #n, def, rl, im, help }, t, offsetof(struct config, field), 0, 0, NULL, true }

/* The main section, in alphabetical order (the order of SHOW CONFIG). */
static const struct key_def main_keys[] = {
	K_STR(admin_users, "", RL, IM,
	      "users allowed to run every admin console command (comma separated)"),
	K_BOOL(application_name_add_host, "0", RL, IM,
	       "append the client's address and port to application_name"),
	K_STR(auth_dbname, "", RL, IM, "database auth_query runs in"),
	K_PATH(auth_file, RL, IM, "userlist.txt-format file with user names and secrets"),
	K_PATH(auth_hba_file, RL, IM, "pg_hba.conf-format file used when auth_type = hba"),
	K_PATH(auth_ident_file, RL, IM, "pg_ident.conf-format user name map for hba"),
	K_STR(auth_ldap_options, "", RL, RF, "default LDAP options for hba ldap lines"),
	K_STR(auth_query, "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL "
	      "ELSE rolpassword END FROM pg_authid WHERE rolname=$1 AND rolcanlogin", RL, IM,
	      "query that looks up a user's secret on the server for users not in auth_file"),
	KEY(auth_type, KT_AUTH_TYPE, "md5", 0, 0, RL, IM, "how clients prove who they are"),
	K_STR(auth_user, "", RL, IM, "user that runs auth_query"),
	K_SECS(autodb_idle_timeout, "3600", RL, RF,
	       "seconds after which unused pools made from the \"*\" entry are dropped"),
	K_SECS(cancel_wait_timeout, "10", RL, IM,
	       "seconds a cancel request may wait for a server connection"),
	K_SECS(client_idle_timeout, "0", RL, IM,
	       "close client connections idle this many seconds (0: never)"),
	K_SECS(client_login_timeout, "60", RL, IM,
	       "close clients that have not finished logging in after this many seconds"),
	K_STR(client_tls13_ciphers, "", RL, IM, "TLS 1.3 cipher suites offered to clients"),
	K_PATH(client_tls_ca_file, RL, IM, "CA certificates for checking client certificates"),
	K_PATH(client_tls_cert_file, RL, IM, "certificate presented to clients"),
	K_STR(client_tls_ciphers, "default", RL, IM, "TLS 1.2 ciphers offered to clients"),
	K_STR(client_tls_dheparams, "auto", RL, IM, "Diffie-Hellman parameters for clients"),
	K_STR(client_tls_ecdhcurve, "auto", RL, IM, "elliptic curve for ECDH with clients"),
	K_PATH(client_tls_key_file, RL, IM, "private key for client_tls_cert_file"),
	K_STR(client_tls_protocols, "secure", RL, IM, "TLS versions allowed to clients"),
	K_CHOICE(client_tls_sslmode, sslmodes, "disable", RL, IM, "TLS policy towards clients"),
	K_STR(conffile, "", RL, IM, "the configuration file (default: the one given on the command line)"),
	K_COUNT(default_pool_size, "20", RL, IM,
		"server connections per database/user pair (0: no limit)"),
	K_BOOL(disable_pqexec, "0", NR, IM,
	       "refuse the simple query protocol, allowing only extended queries"),
	K_SECS(dns_max_ttl, "15", RL, IM, "seconds a DNS answer is cached at most (a shorter record TTL wins)"),
	K_SECS(dns_nxdomain_ttl, "15", RL, IM, "seconds a failed DNS lookup is cached"),
	K_SECS(dns_zone_check_period, "0", RL, IM, "seconds between DNS zone serial checks (0: off)"),
	K_INT(expected_replicas, "1", 1, 100000, RL, IM,
	      "tidepool processes sharing each PostgreSQL server (SHOW BUDGET), unless replicas_dns_name"),
	K_SECS(idle_transaction_timeout, "0", RL, IM,
	       "close clients idle inside a transaction this many seconds (0: never)"),
	K_STR(ignore_startup_parameters, "", RL, IM,
	      "startup parameters clients may send that tidepool does not track"),
	K_ALIAS(job_name, service_name, KT_STR, "tidepool", NR, IM, "another name for service_name"),
	K_STR(listen_addr, "", NR, IM,
	      "TCP addresses to listen on, comma separated; * for all; empty: no TCP"),
	K_INT(listen_backlog, "128", 1, INT_MAX, NR, IM, "backlog passed to listen()"),
	K_INT(listen_port, "6432", 1, 65535, NR, IM, "TCP port, also used in the unix socket's name"),
	K_BOOL(log_connections, "1", RL, IM, "log each client login"),
	K_BOOL(log_disconnections, "1", RL, IM, "log each client disconnection with its reason"),
	K_BOOL(log_pooler_errors, "1", RL, IM, "log errors tidepool sends to clients"),
	K_BOOL(log_stats, "1", RL, IM, "log a statistics line every stats_period"),
	K_PATH(logfile, RL, IM, "file the log is appended to (empty: standard error only)"),
	K_STR(login_notify_message, "", RL, IM, "notice sent to every client after login"),
	K_INT(max_client_conn, "100", 1, INT_MAX, RL, IM, "most client connections accepted"),
	K_COUNT(max_client_prepared_statements, "1000", RL, IM,
		"prepared statement names one client may hold (0: no limit)"),
	K_COUNT(max_db_client_connections, "0", RL, IM,
		"most client connections per database (0: no limit)"),
	K_COUNT(max_db_connections, "0", RL, IM,
		"most server connections per database (0: no limit)"),
	KEY(max_packet_size, KT_INT64, "2147483647", 1, 4294967295LL, RL, IM,
	    "largest protocol message accepted, in bytes"),
	K_COUNT(max_prepared_statements, "200", RL, IM,
		"prepared statements kept on one server connection"),
	K_COUNT(max_user_client_connections, "0", RL, IM,
		"most client connections per user (0: no limit)"),
	K_COUNT(max_user_connections, "0", RL, IM,
		"most server connections per user (0: no limit)"),
	K_STR(metrics_listen_addr, "127.0.0.1", RL, IM,
	      "address of the HTTP server for /metrics, /livez and /readyz"),
	K_INT(metrics_port, "9127", 0, 65535, RL, IM, "port of that HTTP server (0: off)"),
	K_COUNT(min_pool_size, "0", RL, IM, "server connections kept open per pool even when idle"),
	K_INT(peer_id, "0", 0, 65535, RL, IM, "this process's id among [peers]"),
	K_PATH(pidfile, NR, IM, "file the process id is written to"),
	K_BOOL(pin_session_state, "1", RL, IM,
	       "the older key: 0 turns session_state = pin into allow (PgBouncer's behaviour)"),
	K_INT(pkt_buf, "4096", 512, 16777216, NR, IM, "size of a connection's I/O buffer, in bytes"),
	K_SECS(pool_idle_timeout, "0", RL, RF, "drop pools unused this many seconds (0: never)"),
	KEY(pool_mode, KT_POOL_MODE, "session", 0, 0, RL, IM,
	    "when a server goes back to the pool: session, transaction or statement"),
	K_SECS(query_timeout, "0", RL, IM, "cancel queries running longer (0: never)"),
	K_COUNT(query_wait_notify, "5", RL, IM,
		"seconds a client waits for a server before it is told so (0: never)"),
	K_SECS(query_wait_timeout, "120", RL, IM,
	       "close clients that waited this long for a server (0: wait forever)"),
	K_BOOL(readyz_checks_backend, "0", RL, IM,
	       "/readyz also fails when no backend could be reached lately"),
	K_STR(replicas_dns_name, "", RL, IM,
	      "a name (headless Service) whose addresses count the tidepool replicas (SHOW BUDGET)"),
	K_COUNT(reserve_pool_size, "0", RL, IM, "extra server connections for pools under pressure"),
	K_SECS(reserve_pool_timeout, "5", RL, IM,
	       "seconds a client waits before the reserve pool is used"),
	K_PATH(resolv_conf, NR, IM, "resolv.conf-format file for the DNS resolver"),
	K_COUNT(sbuf_loopcnt, "5", RL, IM, "rounds of I/O on one connection before others get a turn"),
	K_INT(scram_iterations, "4096", 1, INT_MAX, RL, IM, "PBKDF2 iterations in SCRAM secrets tidepool makes"),
	K_SECS(server_check_delay, "30", RL, IM,
	       "seconds a server may sit idle before it is checked on reuse"),
	K_STR(server_check_query, "<empty>", RL, IM,
	      "query that checks a server; <empty>: send an empty query; empty: no check"),
	K_SECS(server_connect_timeout, "15", RL, IM, "seconds allowed to connect and log in to a server"),
	K_BOOL(server_fast_close, "0", RL, IM,
	       "during reconnect or pause, close session-mode servers as soon as possible"),
	K_SECS(server_idle_timeout, "600", RL, IM, "close servers idle this many seconds (0: never)"),
	K_SECS(server_lifetime, "3600", RL, IM,
	       "close servers older than this when they go back to the pool (0: after one use)"),
	K_SECS(server_login_retry, "15", RL, IM,
	       "seconds to wait before trying again after a failed server login"),
	K_STR(server_reset_query, "DISCARD ALL", RL, IM,
	      "query run when a session-mode server goes back to the pool"),
	K_BOOL(server_reset_query_always, "0", RL, IM,
	       "run server_reset_query in every pool mode, not only session"),
	K_BOOL(server_round_robin, "0", RL, IM, "reuse servers in turn instead of most recent first"),
	K_STR(server_tls13_ciphers, "", RL, IM, "TLS 1.3 cipher suites offered to servers"),
	K_PATH(server_tls_ca_file, RL, IM, "CA certificates for checking server certificates"),
	K_PATH(server_tls_cert_file, RL, IM, "client certificate presented to servers"),
	K_STR(server_tls_ciphers, "default", RL, IM, "TLS 1.2 ciphers offered to servers"),
	K_PATH(server_tls_key_file, RL, IM, "private key for server_tls_cert_file"),
	K_STR(server_tls_protocols, "secure", RL, IM, "TLS versions allowed to servers"),
	K_CHOICE(server_tls_sslmode, sslmodes, "prefer", RL, IM, "TLS policy towards servers"),
	K_STR(service_name, "tidepool", NR, IM, "name of the service (job_name is the same key)"),
	K_CHOICE(session_state, session_state_modes, "pin", RL, IM,
		 "in transaction and statement mode, what happens to session state that cannot follow "
		 "its client (LISTEN, session advisory locks, temporary tables, PREPARE, WITH HOLD cursors, "
		 "LOAD, unreplayable settings): pin, error or allow"),
	K_SECS(shutdown_delay, "0", RL, IM,
	       "seconds the listener stays open after SIGTERM while /readyz already fails"),
	K_CHOICE(shutdown_mode, shutdown_modes, "drain", RL, IM,
		 "SIGTERM behaviour: drain, or wait_for_clients as PgBouncer does"),
	K_SECS(shutdown_timeout, "30", RL, IM,
	       "seconds a graceful shutdown waits for transactions to end"),
	K_BOOL(so_reuseport, "0", NR, IM, "set SO_REUSEPORT so several processes share the port"),
	KEY(stats_period, KT_USEC, "60", USEC_PER_SEC, USEC_LIMIT, RL, IM,
	    "seconds between statistics updates and log lines"),
	K_STR(stats_users, "", RL, IM, "users allowed read-only admin console commands"),
	K_STR(stats_users_prefix, "", RL, IM,
	      "users whose names start with this are stats users too (Zalando's PgBouncer key)"),
	K_SECS(suspend_timeout, "10", RL, IM, "seconds to wait for buffers to drain on SUSPEND"),
	K_BOOL(syslog, "0", RL, IM, "also log to syslog"),
	K_CHOICE(syslog_facility, syslog_facilities, "daemon", RL, IM, "syslog facility"),
	K_STR(syslog_ident, "tidepool", RL, IM, "program name in syslog lines"),
	K_BOOL(tcp_defer_accept, "1", NR, IM, "wake up for a new client only once it sent data"),
	K_BOOL(tcp_keepalive, "1", RL, IM, "enable TCP keepalive on client and server sockets"),
	K_COUNT(tcp_keepcnt, "0", RL, IM, "keepalive probes before a peer is dead (0: OS default)"),
	K_COUNT(tcp_keepidle, "0", RL, IM, "idle seconds before the first probe (0: OS default)"),
	K_COUNT(tcp_keepintvl, "0", RL, IM, "seconds between probes (0: OS default)"),
	K_COUNT(tcp_socket_buffer, "0", RL, IM, "socket buffer size in bytes (0: OS default)"),
	KEY(tcp_user_timeout, KT_MSEC, "0", 0, INT_MAX, RL, IM,
	    "TCP_USER_TIMEOUT in milliseconds (0: OS default)"),
	K_STR(track_extra_parameters, "IntervalStyle", NR, IM,
	      "parameters, besides the standard ones, kept per client and restored on servers"),
	K_SECS(transaction_timeout, "0", RL, IM,
	       "close clients whose transaction runs longer (0: never)"),
	K_STR(unix_socket_dir, "/tmp", NR, IM, "directory for the unix socket (empty: none)"),
	K_STR(unix_socket_group, "", NR, IM, "group owning the unix socket"),
	KEY(unix_socket_mode, KT_OCTAL, "0777", 0, 0777, NR, IM, "permissions of the unix socket"),
	K_STR(user, "", NR, IM, "user to switch to after start"),
	K_INT(verbose, "0", 0, 100, RL, IM, "log detail: 1 debug, 2 and more noise"),
	K_STR(workers, "1", NR, IM,
	      "worker processes sharing the listening sockets, peered with each other: a number, or auto "
	      "for the CPUs the process may use"),
};

#define N_MAIN_KEYS ARRAY_SIZE(main_keys)

#define FIELD(st, n, t, lo, hi) \
	{ { #n, NULL, false, false, NULL }, t, offsetof(struct st, n), lo, hi, NULL, false }

static const struct key_def db_keys[] = {
	FIELD(db_config, host, KT_STR, 0, 0),
	FIELD(db_config, port, KT_INT, 1, 65535),
	FIELD(db_config, dbname, KT_STR, 0, 0),
	FIELD(db_config, user, KT_STR, 0, 0),
	FIELD(db_config, password, KT_STR, 0, 0),
	FIELD(db_config, auth_user, KT_STR, 0, 0),
	FIELD(db_config, auth_query, KT_STR, 0, 0),
	FIELD(db_config, auth_dbname, KT_STR, 0, 0),
	FIELD(db_config, pool_size, KT_INT, 0, INT_MAX),
	FIELD(db_config, min_pool_size, KT_INT, 0, INT_MAX),
	FIELD(db_config, reserve_pool_size, KT_INT, 0, INT_MAX),
	{ { "reserve_pool", NULL, false, false, NULL }, KT_INT,
	  offsetof(struct db_config, reserve_pool_size), 0, INT_MAX, NULL, true },
	FIELD(db_config, max_db_connections, KT_INT, 0, INT_MAX),
	FIELD(db_config, max_db_client_connections, KT_INT, 0, INT_MAX),
	FIELD(db_config, pool_mode, KT_POOL_MODE, 0, 0),
	FIELD(db_config, server_lifetime, KT_USEC, 0, USEC_LIMIT),
	FIELD(db_config, query_wait_timeout, KT_USEC, 0, USEC_LIMIT),
	FIELD(db_config, connect_query, KT_STR, 0, 0),
	FIELD(db_config, client_encoding, KT_STR, 0, 0),
	FIELD(db_config, datestyle, KT_STR, 0, 0),
	FIELD(db_config, timezone, KT_STR, 0, 0),
	FIELD(db_config, application_name, KT_STR, 0, 0),
	{ { "load_balance_hosts", NULL, false, false, NULL }, KT_CHOICE,
	  offsetof(struct db_config, load_balance_hosts), 0, 0, load_balance_modes, false },
	{ { "session_state", NULL, false, false, NULL }, KT_CHOICE,
	  offsetof(struct db_config, session_state), 0, 0, session_state_modes, false },
};

static const struct key_def user_keys[] = {
	FIELD(user_config, pool_mode, KT_POOL_MODE, 0, 0),
	FIELD(user_config, pool_size, KT_INT, 0, INT_MAX),
	FIELD(user_config, reserve_pool_size, KT_INT, 0, INT_MAX),
	FIELD(user_config, max_user_connections, KT_INT, 0, INT_MAX),
	FIELD(user_config, max_user_client_connections, KT_INT, 0, INT_MAX),
	FIELD(user_config, query_timeout, KT_USEC, 0, USEC_LIMIT),
	FIELD(user_config, idle_transaction_timeout, KT_USEC, 0, USEC_LIMIT),
	FIELD(user_config, transaction_timeout, KT_USEC, 0, USEC_LIMIT),
	FIELD(user_config, client_idle_timeout, KT_USEC, 0, USEC_LIMIT),
	FIELD(user_config, query_wait_timeout, KT_USEC, 0, USEC_LIMIT),
	{ { "session_state", NULL, false, false, NULL }, KT_CHOICE,
	  offsetof(struct user_config, session_state), 0, 0, session_state_modes, false },
};

static const struct key_def peer_keys[] = {
	FIELD(peer_config, host, KT_STR, 0, 0),
	FIELD(peer_config, port, KT_INT, 1, 65535),
	FIELD(peer_config, pool_size, KT_INT, 0, INT_MAX),
};

/* ---- values: parsing and formatting, driven by key_def ---- */

static int find_name(const char *const *names, const char *val)
{
	for (int i = 0; names[i]; i++) {
		if (strcasecmp(names[i], val) == 0)
			return i;
	}
	return -1;
}

/* "expected one of: a, b, c" for an error message. */
static char *expected_names(const char *const *names)
{
	char *s = xstrdup("expected one of:");

	for (int i = 0; names[i]; i++) {
		char *t = xasprintf("%s%s %s", s, i ? "," : "", names[i]);
		free(s);
		s = t;
	}
	return s;
}

static void set_string(char **field, char *val)
{
	free(*field);
	*field = val;
}

/* Relative file names are taken from the directory of the file naming them. */
static char *path_relative_to(const char *file, const char *path)
{
	const char *slash = file ? strrchr(file, '/') : NULL;

	if (!path[0] || path[0] == '/' || !slash)
		return xstrdup(path);
	return xasprintf("%.*s/%s", (int)(slash - file), file, path);
}

/* "15", "0.5", ".25" -> microseconds; digits past the sixth decimal are dropped. */
static bool parse_seconds(const char *s, usec_t *out)
{
	usec_t whole = 0, frac = 0, scale = USEC_PER_SEC;
	bool digits = false;
	const char *p = s;

	for (; isdigit((unsigned char)*p); p++, digits = true) {
		if (whole <= USEC_LIMIT / USEC_PER_SEC)
			whole = whole * 10 + (*p - '0');
	}
	if (*p == '.') {
		for (p++; isdigit((unsigned char)*p); p++, digits = true) {
			scale /= 10;
			frac += (*p - '0') * scale;
		}
	}
	if (!digits || *p)
		return false;
	*out = whole * USEC_PER_SEC + frac;
	return true;
}

static void format_seconds(char *buf, size_t len, usec_t v)
{
	long long whole = (long long)(v / USEC_PER_SEC), frac = (long long)(v % USEC_PER_SEC);
	size_t n;

	if (frac == 0 || v < 0) {
		snprintf(buf, len, "%lld", v < 0 ? -1LL : whole);
		return;
	}
	snprintf(buf, len, "%lld.%06lld", whole, frac);
	n = strlen(buf);
	while (n > 0 && buf[n - 1] == '0')
		buf[--n] = '\0';
}

static bool check_range(const struct key_def *k, int64_t v, char **why)
{
	char lo[32], hi[32];

	if (v >= k->min && v <= k->max)
		return true;
	if (k->type == KT_USEC) {
		format_seconds(lo, sizeof(lo), k->min);
		format_seconds(hi, sizeof(hi), k->max);
		*why = xasprintf("out of range %s..%s seconds", lo, hi);
	} else if (k->type == KT_OCTAL) {
		*why = xasprintf("out of range %04llo..%04llo", (long long)k->min, (long long)k->max);
	} else {
		*why = xasprintf("out of range %lld..%lld", (long long)k->min, (long long)k->max);
	}
	return false;
}

static bool parse_integer(const struct key_def *k, const char *val, int64_t *out, char **why)
{
	if (!parse_int64(val, INT64_MIN, INT64_MAX, out)) {
		*why = xstrdup("not an integer");
		return false;
	}
	return check_range(k, *out, why);
}

static bool parse_octal(const struct key_def *k, const char *val, int64_t *out, char **why)
{
	size_t n = strspn(val, "01234567");

	if (n == 0 || val[n] || n > 8) {
		*why = xstrdup("not an octal number");
		return false;
	}
	*out = strtoll(val, NULL, 8);
	return check_range(k, *out, why);
}

static bool parse_boolean(const char *val, bool *out, char **why)
{
	int64_t v;

	if (parse_bool(val, out))
		return true;
	/* PgBouncer keeps these keys as integers, so "2" must mean on. */
	if (parse_int64(val, INT64_MIN, INT64_MAX, &v)) {
		*out = v != 0;
		return true;
	}
	*why = xstrdup("not a boolean (use 0/1, on/off, yes/no or true/false)");
	return false;
}

static bool parse_duration(const struct key_def *k, const char *val, usec_t *out, char **why)
{
	int64_t ms;

	if (k->type == KT_MSEC) {
		if (!parse_integer(k, val, &ms, why))
			return false;
		*out = ms * 1000;
		return true;
	}
	if (!parse_seconds(val, out)) {
		*why = xstrdup("not a number of seconds");
		return false;
	}
	return check_range(k, *out, why);
}

static bool parse_name(const char *const *names, const char *val, int *out, char **why)
{
	*out = find_name(names, val);
	if (*out >= 0)
		return true;
	*why = expected_names(names);
	return false;
}

/* Stores val, parsed as k says, into base (a struct config or an entry).
 * file is where val was written, for relative paths. */
static bool set_value(const struct key_def *k, void *base, const char *val, const char *file,
		      char **why)
{
	void *p = (char *)base + k->off;
	int64_t v;
	int i;

	switch (k->type) {
	case KT_STR:
		set_string(p, xstrdup(val));
		return true;
	case KT_PATH:
		set_string(p, path_relative_to(file, val));
		return true;
	case KT_CHOICE:
		if (!parse_name(k->choices, val, &i, why))
			return false;
		set_string(p, xstrdup(k->choices[i]));
		return true;
	case KT_INT:
		if (!parse_integer(k, val, &v, why))
			return false;
		*(int *)p = (int)v;
		return true;
	case KT_INT64:
		return parse_integer(k, val, p, why);
	case KT_OCTAL:
		if (!parse_octal(k, val, &v, why))
			return false;
		*(int *)p = (int)v;
		return true;
	case KT_BOOL:
		return parse_boolean(val, p, why);
	case KT_USEC:
	case KT_MSEC:
		return parse_duration(k, val, p, why);
	case KT_POOL_MODE:
		if (!parse_name(pool_mode_names, val, &i, why))
			return false;
		*(enum pool_mode *)p = (enum pool_mode)i;
		return true;
	case KT_AUTH_TYPE:
		if (!parse_name(auth_type_names, val, &i, why))
			return false;
		*(enum auth_type *)p = (enum auth_type)i;
		return true;
	}
	return false;
}

static bool is_string_type(enum key_type t)
{
	switch (t) {
	case KT_STR:
	case KT_PATH:
	case KT_CHOICE:
		return true;
	case KT_INT:
	case KT_INT64:
	case KT_BOOL:
	case KT_USEC:
	case KT_MSEC:
	case KT_OCTAL:
	case KT_POOL_MODE:
	case KT_AUTH_TYPE:
		return false;
	}
	return false;
}

static const char *format_value(const struct key_def *k, const void *base, char *buf, size_t len)
{
	const void *p = (const char *)base + k->off;

	switch (k->type) {
	case KT_STR:
	case KT_PATH:
	case KT_CHOICE:
		return *(char *const *)p;
	case KT_INT:
		snprintf(buf, len, "%d", *(const int *)p);
		return buf;
	case KT_INT64:
		snprintf(buf, len, "%lld", (long long)*(const int64_t *)p);
		return buf;
	case KT_BOOL:
		return *(const bool *)p ? "1" : "0";
	case KT_USEC:
		format_seconds(buf, len, *(const usec_t *)p);
		return buf;
	case KT_MSEC:
		snprintf(buf, len, "%lld", (long long)(*(const usec_t *)p / 1000));
		return buf;
	case KT_OCTAL:
		snprintf(buf, len, "%04o", (unsigned)*(const int *)p);
		return buf;
	case KT_POOL_MODE:
		return config_pool_mode_name(*(const enum pool_mode *)p);
	case KT_AUTH_TYPE:
		return config_auth_type_name(*(const enum auth_type *)p);
	}
	return buf;
}

static const struct key_def *find_key(const struct key_def *defs, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcasecmp(defs[i].info.name, name) == 0)
			return &defs[i];
	}
	return NULL;
}

static void free_strings(const struct key_def *defs, size_t n, void *base)
{
	for (size_t i = 0; i < n; i++) {
		if (!defs[i].alias && is_string_type(defs[i].type))
			free(*(char **)((char *)base + defs[i].off));
	}
}

/* ---- the loader: state of one config_load ---- */

enum section {
	SECT_NONE,      /* before the first section header */
	SECT_MAIN,
	SECT_DATABASES,
	SECT_USERS,
	SECT_PEERS,
	SECT_UNKNOWN,   /* reported once at its header; its lines are skipped */
};

struct where {
	const char *file;
	int line;
};

struct loader {
	struct config *cfg;
	struct config_errors *errs;
	size_t n_errors;
	config_warn_fn warn;
	enum section sect;
	const char *top;        /* the file config_load was given */
	const char *file;       /* file being read (owned by cfg->files), NULL before the first */
	int line;
	char *stack[MAX_INCLUDE_DEPTH + 2];  /* real paths of the files being read */
	int depth;
	struct where set_at[N_MAIN_KEYS];    /* where each main key was last set */
};

#define PUSH(arr, n, item) do { \
	(arr) = xrealloc((arr), ((n) + 1) * sizeof(*(arr))); \
	(arr)[(n)++] = (item); \
} while (0)

static void error_at(struct loader *ld, const char *file, int line, const char *fmt, ...)
	PRINTF_LIKE(4, 5);

static void error_at(struct loader *ld, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	char msg[1024];

	if (++ld->n_errors > MAX_ERRORS + 1)
		return;
	if (ld->n_errors == MAX_ERRORS + 1) {
		PUSH(ld->errs->msgs, ld->errs->n, xstrdup("too many errors, the rest are not listed"));
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		PUSH(ld->errs->msgs, ld->errs->n, xasprintf("%s:%d: %s", file, line, msg));
	else
		PUSH(ld->errs->msgs, ld->errs->n, xasprintf("%s: %s", file, msg));
}

#define error_here(ld, ...) error_at((ld), (ld)->file, (ld)->line, __VA_ARGS__)

/* Where main key name was set, or the top file when it kept its default. */
static struct where key_where(const struct loader *ld, const char *name)
{
	const struct key_def *k = find_key(main_keys, N_MAIN_KEYS, name);
	struct where w = ld->set_at[k - main_keys];

	if (!w.file)
		w.file = ld->top;
	return w;
}

static const char *remember_file(struct config *cfg, const char *path)
{
	for (size_t i = 0; i < cfg->n_files; i++) {
		if (strcmp(cfg->files[i], path) == 0)
			return cfg->files[i];
	}
	PUSH(cfg->files, cfg->n_files, xstrdup(path));
	return cfg->files[cfg->n_files - 1];
}

/* ---- [databases], [users], [peers] ---- */

/* Applies "k=v k=v" from an entry of kind what ("database", ...) to base. */
static void apply_pairs(struct loader *ld, const char *what, const char *name, const char *val,
			const struct key_def *defs, size_t n_defs, void *base)
{
	struct pq_kv *kv;
	size_t n;
	char *msg, *why = NULL;

	if (!pq_parse_conninfo(val, &kv, &n, &msg)) {
		error_here(ld, "%s '%s': %s", what, name, msg);
		free(msg);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct key_def *k = find_key(defs, n_defs, kv[i].key);

		if (!k) {
			bool libpq = defs == db_keys && pq_is_libpq_keyword(kv[i].key);
			error_here(ld, "%s '%s': unknown parameter '%s'%s", what, name, kv[i].key,
				   libpq ? " (a libpq option tidepool does not take here)" : "");
		} else if (!set_value(k, base, kv[i].val, ld->file, &why)) {
			error_here(ld, "%s '%s': invalid value '%s' for %s: %s", what, name,
				   kv[i].val, kv[i].key, why);
			free(why);
			why = NULL;
		}
	}
	pq_kv_free(kv, n);
}

static struct db_config *db_new(const struct loader *ld, const char *name)
{
	struct db_config *db = xcalloc(1, sizeof(*db));

	db->name = xstrdup(name);
	db->port = 5432;
	db->pool_size = db->min_pool_size = db->reserve_pool_size = -1;
	db->max_db_connections = db->max_db_client_connections = -1;
	db->pool_mode = POOL_MODE_UNSET;
	db->server_lifetime = db->query_wait_timeout = -1;
	db->file = ld->file;
	db->line = ld->line;
	return db;
}

static void parse_database(struct loader *ld, const char *name, const char *val)
{
	const struct db_config *old = config_find_db(ld->cfg, name);
	struct db_config *db;

	if (!name[0]) {
		error_here(ld, "empty database name");
		return;
	}
	if (strcmp(name, "pgbouncer") == 0 || strcmp(name, "tidepool") == 0) {
		error_here(ld, "database name '%s' is reserved for the admin console", name);
		return;
	}
	if (old) {
		error_here(ld, "database '%s' is already defined at %s:%d", name, old->file, old->line);
		return;
	}
	db = db_new(ld, name);
	apply_pairs(ld, "database", name, val, db_keys, ARRAY_SIZE(db_keys), db);
	PUSH(ld->cfg->dbs, ld->cfg->n_dbs, db);
}

static void parse_user(struct loader *ld, const char *name, const char *val)
{
	const struct user_config *old = config_find_user(ld->cfg, name);
	struct user_config *u;

	if (!name[0]) {
		error_here(ld, "empty user name");
		return;
	}
	if (old) {
		error_here(ld, "user '%s' is already defined at %s:%d", name, old->file, old->line);
		return;
	}
	u = xcalloc(1, sizeof(*u));
	u->name = xstrdup(name);
	u->pool_mode = POOL_MODE_UNSET;
	u->pool_size = u->reserve_pool_size = -1;
	u->max_user_connections = u->max_user_client_connections = -1;
	u->query_timeout = u->idle_transaction_timeout = u->transaction_timeout = -1;
	u->client_idle_timeout = u->query_wait_timeout = -1;
	u->file = ld->file;
	u->line = ld->line;
	apply_pairs(ld, "user", name, val, user_keys, ARRAY_SIZE(user_keys), u);
	PUSH(ld->cfg->users, ld->cfg->n_users, u);
}

static void parse_peer(struct loader *ld, const char *name, const char *val)
{
	struct peer_config *peer;
	int64_t id;

	if (!parse_int64(name, 1, 65535, &id)) {
		error_here(ld, "peer id '%s' is not a number in 1..65535", name);
		return;
	}
	for (size_t i = 0; i < ld->cfg->n_peers; i++) {
		if (ld->cfg->peers[i]->peer_id == id) {
			error_here(ld, "peer %d is defined twice", (int)id);
			return;
		}
	}
	peer = xcalloc(1, sizeof(*peer));
	peer->peer_id = (int)id;
	peer->port = 6432;
	peer->pool_size = -1;
	apply_pairs(ld, "peer", name, val, peer_keys, ARRAY_SIZE(peer_keys), peer);
	if (!peer->host)
		error_here(ld, "peer %d has no host", peer->peer_id);
	PUSH(ld->cfg->peers, ld->cfg->n_peers, peer);
}

/* ---- the main section ---- */

int config_workers(const struct config *cfg)
{
	if (strcasecmp(cfg->workers, "auto") == 0)
		return usable_cpus();
	char *end;
	long n = strtol(cfg->workers, &end, 10);
	return end != cfg->workers && *end == '\0' && n >= 1 && n <= CONFIG_MAX_WORKERS ? (int)n : 0;
}

static struct config_worker worker;

void config_set_worker(const struct config_worker *w)
{
	worker = *w;
}

const struct config_worker *config_worker(void)
{
	return worker.id > 0 ? &worker : NULL;
}

static void add_worker_peers(struct config *cfg, const char *prefix, int gen, int n)
{
	for (int i = 1; i <= n; i++) {
		struct peer_config *pc = xcalloc(1, sizeof(*pc));
		char host[96];
		snprintf(host, sizeof(host), "@%s.%d", prefix, i);
		pc->peer_id = config_worker_peer_id(gen, i);
		pc->host = xstrdup(host);
		pc->port = cfg->listen_port;
		pc->pool_size = -1;
		PUSH(cfg->peers, cfg->n_peers, pc);
	}
}

void config_apply_worker(struct config *cfg)
{
	if (worker.id <= 0)
		return;
	for (size_t i = 0; i < cfg->n_peers; i++) {
		free(cfg->peers[i]->host);
		free(cfg->peers[i]);
	}
	free(cfg->peers);
	cfg->peers = NULL;
	cfg->n_peers = 0;
	add_worker_peers(cfg, worker.prefix, worker.gen, worker.n);
	add_worker_peers(cfg, worker.old_prefix, worker.old_gen, worker.old_n);
	cfg->peer_id = config_worker_peer_id(worker.gen, worker.id);
}

int config_worker_peer_id(int gen, int id)
{
	return gen * CONFIG_MAX_WORKERS + id;
}

static struct config *config_new(void);

/* A key tidepool does not honour may only be written with its default
 * value, which is what tidepool does anyway; anything else is refused so a
 * migrated file never loses a guard in silence. */
static bool refused_value(const struct key_def *k, const struct config *cfg, char **why)
{
	struct config *def;
	char a[64], b[64];
	bool same;

	if (k->info.implemented)
		return false;
	def = config_new();
	same = strcmp(format_value(k, cfg, a, sizeof(a)), format_value(k, def, b, sizeof(b))) == 0;
	config_free(def);
	if (same)
		return false;
	*why = xasprintf("%s is not supported by tidepool; remove it or leave it at its default (%s)",
			 k->info.name, k->info.default_value[0] ? k->info.default_value : "empty");
	return true;
}

static void parse_main_key(struct loader *ld, const char *key, const char *val)
{
	const struct key_def *k = find_key(main_keys, N_MAIN_KEYS, key);
	char *why = NULL;

	if (!k) {
		error_here(ld, "unknown configuration key '%s'", key);
		return;
	}
	if (!set_value(k, ld->cfg, val, ld->file, &why)) {
		error_here(ld, "invalid value '%s' for %s: %s", val, k->info.name, why);
		free(why);
		return;
	}
	ld->set_at[k - main_keys] = (struct where){ ld->file, ld->line };
	if (refused_value(k, ld->cfg, &why)) {
		error_here(ld, "%s", why);
		free(why);
	}
}

/* ---- the ini reader ---- */

static char *trim(char *s)
{
	size_t n;

	while (*s && isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

static char *read_whole_file(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t cap = 4096, len = 0, got;
	char *buf;
	int err;

	if (!f)
		return NULL;
	buf = xmalloc(cap);
	while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += got;
		if (len == cap - 1)
			buf = xrealloc(buf, cap *= 2);
	}
	err = ferror(f) ? (errno ? errno : EIO) : 0;
	fclose(f);
	if (err) {
		free(buf);
		errno = err;
		return NULL;
	}
	buf[len] = '\0';
	return buf;
}

static void parse_file(struct loader *ld, const char *path);

static void parse_directive(struct loader *ld, char *p)
{
	char *name, *path;

	if (strncmp(p, "%include", 8) != 0 || (p[8] && !isspace((unsigned char)p[8]))) {
		error_here(ld, "unknown directive '%s'", p);
		return;
	}
	name = trim(p + 8);
	if (!name[0]) {
		error_here(ld, "%%include needs a file name");
		return;
	}
	path = path_relative_to(ld->file, name);
	parse_file(ld, path);
	free(path);
}

static void parse_section(struct loader *ld, char *p)
{
	static const struct { const char *name; enum section sect; } sections[] = {
		{ "databases", SECT_DATABASES }, { "users", SECT_USERS }, { "peers", SECT_PEERS },
		{ "pgbouncer", SECT_MAIN }, { "tidepool", SECT_MAIN },
	};
	char *end = strchr(p, ']');
	char *name;

	ld->sect = SECT_UNKNOWN;
	if (end) {
		char *rest = trim(end + 1);

		if (*rest && *rest != ';' && *rest != '#')
			end = NULL;
	}
	if (!end) {
		error_here(ld, "malformed section header '%s'", p);
		return;
	}
	*end = '\0';
	name = trim(p + 1);
	for (size_t i = 0; i < ARRAY_SIZE(sections); i++) {
		if (strcasecmp(name, sections[i].name) == 0) {
			ld->sect = sections[i].sect;
			return;
		}
	}
	error_here(ld, "unknown section [%s]", name);
}

/* Reads a name quoted with q at p (on the opening quote), where qq stands
 * for one q; returns the byte after the closing quote or NULL. */
static const char *read_quoted_name(const char *p, char q, char **out)
{
	char *dst = *out = xmalloc(strlen(p) + 1);

	for (p++; *p; p++) {
		if (*p == q && p[1] != q) {
			*dst = '\0';
			return p + 1;
		}
		if (*p == q)
			p++;
		*dst++ = *p;
	}
	free(*out);
	*out = NULL;
	return NULL;
}

/* Splits "key = value"; the key may be quoted with " or '. */
static bool split_key_value(struct loader *ld, char *p, char **key, char **val)
{
	const char *q = p;

	if (*p == '"' || *p == '\'') {
		q = read_quoted_name(p, *p, key);
		if (!q) {
			error_here(ld, "unterminated quoted name");
			return false;
		}
	} else {
		while (*q && *q != '=' && !isspace((unsigned char)*q))
			q++;
		*key = xstrndup(p, (size_t)(q - p));
	}
	while (*q && isspace((unsigned char)*q))
		q++;
	if (*q != '=' || (!**key && *p != '"' && *p != '\'')) {
		error_here(ld, "syntax error, expected 'key = value'");
		free(*key);
		return false;
	}
	*val = trim((char *)q + 1);
	return true;
}

static void parse_key_value(struct loader *ld, char *p)
{
	char *key, *val;

	if (!split_key_value(ld, p, &key, &val))
		return;
	switch (ld->sect) {
	case SECT_NONE:
		error_here(ld, "'%s' is outside of any section", key);
		break;
	case SECT_UNKNOWN:
		break;
	case SECT_MAIN:
		parse_main_key(ld, key, val);
		break;
	case SECT_DATABASES:
		parse_database(ld, key, val);
		break;
	case SECT_USERS:
		parse_user(ld, key, val);
		break;
	case SECT_PEERS:
		parse_peer(ld, key, val);
		break;
	}
	free(key);
}

static void parse_lines(struct loader *ld, char *buf)
{
	char *p = buf, *nl;

	for (; *p; p = nl + 1) {
		char *line;

		nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		ld->line++;
		line = trim(p);
		if (*line == '%')
			parse_directive(ld, line);
		else if (*line == '[')
			parse_section(ld, line);
		else if (*line && *line != '#' && *line != ';')
			parse_key_value(ld, line);
		if (!nl)
			break;
	}
}

static bool check_include(struct loader *ld, const char *path, const char *real)
{
	for (int i = 0; i < ld->depth; i++) {
		if (strcmp(ld->stack[i], real) == 0) {
			error_here(ld, "%%include loop: %s is already being read", path);
			return false;
		}
	}
	if (ld->depth > MAX_INCLUDE_DEPTH) {
		error_here(ld, "%%include nested deeper than %d files", MAX_INCLUDE_DEPTH);
		return false;
	}
	return true;
}

/* Reads path and what it includes; errors point at the %include line. */
static void parse_file(struct loader *ld, const char *path)
{
	const char *saved_file = ld->file;
	int saved_line = ld->line;
	char *real = realpath(path, NULL);
	char *buf = real ? read_whole_file(real) : NULL;

	if (!buf) {
		if (ld->file)
			error_here(ld, "cannot read %s: %s", path, strerror(errno));
		else
			error_at(ld, path, 0, "cannot read: %s", strerror(errno));
		free(real);
		return;
	}
	if (check_include(ld, path, real)) {
		ld->stack[ld->depth++] = real;
		ld->file = remember_file(ld->cfg, path);
		ld->line = 0;
		parse_lines(ld, buf);
		ld->file = saved_file;
		ld->line = saved_line;
		real = ld->stack[--ld->depth];
	}
	free(real);
	free(buf);
}

/* ---- auth_file ---- */

/* Reads a "..." field at p where "" is a quote; returns the byte after it. */
static const char *read_auth_field(const char *p, char **out)
{
	*out = NULL;
	if (*p != '"')
		return NULL;
	return read_quoted_name(p, '"', out);
}

static void parse_auth_line(struct loader *ld, const char *file, int line, const char *p)
{
	char *user = NULL, *secret = NULL;
	struct auth_entry *e;

	while (isspace((unsigned char)*p))
		p++;
	if (!*p || *p == ';' || *p == '#')
		return;
	p = read_auth_field(p, &user);
	if (p && isspace((unsigned char)*p)) {
		while (isspace((unsigned char)*p))
			p++;
		p = read_auth_field(p, &secret);
	} else {
		p = NULL;
	}
	if (!p || (*p && !isspace((unsigned char)*p))) {
		error_at(ld, file, line, "expected \"user\" \"secret\"");
		free(user);
		free(secret);
		return;
	}
	e = xmalloc(sizeof(*e));
	e->user = user;
	e->secret = secret;
	PUSH(ld->cfg->auth, ld->cfg->n_auth, e);
}

struct auth_sort {
	struct auth_entry *e;
	size_t pos;
};

static int auth_sort_cmp(const void *a, const void *b)
{
	const struct auth_sort *x = a, *y = b;
	int c = strcmp(x->e->user, y->e->user);

	if (c)
		return c;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Sorts by user for bsearch; of repeated users the last line wins. */
static void sort_auth(struct config *cfg)
{
	struct auth_sort *s = xcalloc(cfg->n_auth, sizeof(*s));
	size_t n = 0;

	for (size_t i = 0; i < cfg->n_auth; i++)
		s[i] = (struct auth_sort){ cfg->auth[i], i };
	qsort(s, cfg->n_auth, sizeof(*s), auth_sort_cmp);
	for (size_t i = 0; i < cfg->n_auth; i++) {
		if (i + 1 < cfg->n_auth && strcmp(s[i].e->user, s[i + 1].e->user) == 0) {
			free(s[i].e->user);
			free(s[i].e->secret);
			free(s[i].e);
			continue;
		}
		cfg->auth[n++] = s[i].e;
	}
	cfg->n_auth = n;
	free(s);
}

static void load_auth_file(struct loader *ld)
{
	const char *file = ld->cfg->auth_file;
	struct where w = key_where(ld, "auth_file");
	char *buf, *p, *nl;
	int line = 0;

	if (!file[0])
		return;
	buf = read_whole_file(file);
	if (!buf) {
		error_at(ld, w.file, w.line, "cannot read auth_file %s: %s", file, strerror(errno));
		return;
	}
	for (p = buf; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		parse_auth_line(ld, file, ++line, p);
		if (!nl)
			break;
	}
	free(buf);
	sort_auth(ld->cfg);
}

/* ---- auth_hba_file ---- */

static void hba_error_cb(void *arg, const char *file, int line, const char *msg)
{
	error_at(arg, file, line, "%s", msg);
}

/* Only read when auth_type = hba, as PgBouncer does: a file that is not
 * used cannot keep tidepool from starting. */
static void load_hba_file(struct loader *ld)
{
	struct config *cfg = ld->cfg;

	if (cfg->auth_type != AUTH_TYPE_HBA || !cfg->auth_hba_file[0])
		return;
	cfg->hba = hba_load(cfg->auth_hba_file, hba_error_cb, ld);
	if (!cfg->hba)
		return;
	if (cfg->auth_ident_file[0]) {
		(void)!hba_load_ident(cfg->hba, cfg->auth_ident_file, hba_error_cb, ld);
	} else if (hba_uses_maps(cfg->hba)) {
		struct where w = key_where(ld, "auth_hba_file");
		error_at(ld, w.file, w.line, "auth_hba_file uses map= but auth_ident_file is not set");
	}
}

/* ---- snapshot life ---- */

/* Checks that span several keys, once everything is read. */
static void validate(struct loader *ld)
{
	const struct config *cfg = ld->cfg;
	struct where w;

	if (cfg->auth_type == AUTH_TYPE_HBA && !cfg->auth_hba_file[0]) {
		w = key_where(ld, "auth_type");
		error_at(ld, w.file, w.line, "auth_type = hba needs auth_hba_file");
	}
	if (cfg->auth_type == AUTH_TYPE_PAM || cfg->auth_type == AUTH_TYPE_LDAP) {
		w = key_where(ld, "auth_type");
		error_at(ld, w.file, w.line, "auth_type = %s is not supported by this build of tidepool",
			 config_auth_type_name(cfg->auth_type));
	}
	if (config_workers(cfg) < 1) {
		w = key_where(ld, "workers");
		error_at(ld, w.file, w.line, "workers must be a number from 1 to 1024, or auto");
	}
	if (strcmp(cfg->workers, "1") != 0 && (cfg->peer_id > 0 || cfg->n_peers > 0)) {
		w = key_where(ld, cfg->peer_id > 0 ? "peer_id" : "workers");
		error_at(ld, w.file, w.line,
			 "workers = %s peers its workers itself: leave out peer_id and [peers] "
			 "(or run separate processes with so_reuseport instead)", cfg->workers);
	}
	if (cfg->auth_type == AUTH_TYPE_CERT &&
	    (strcmp(cfg->client_tls_sslmode, "disable") == 0 || !cfg->client_tls_ca_file[0])) {
		w = key_where(ld, "auth_type");
		error_at(ld, w.file, w.line,
			 "auth_type = cert needs client_tls_sslmode (other than disable) and client_tls_ca_file");
	}
}

static struct config *config_new(void)
{
	struct config *cfg = xcalloc(1, sizeof(*cfg));

	for (size_t i = 0; i < N_MAIN_KEYS; i++) {
		const struct key_def *k = &main_keys[i];
		char *why = NULL;

		if (k->alias)
			continue;
		if (!set_value(k, cfg, k->info.default_value, NULL, &why)) {
			fprintf(stderr, "tidepool: bad default for %s: %s\n", k->info.name, why);
			abort();
		}
	}
	return cfg;
}

struct config *config_load(const char *path, struct config_errors *errs, config_warn_fn warn)
{
	struct config_errors ignored = { 0 };
	struct loader ld = { .errs = errs ? errs : &ignored, .warn = warn, .sect = SECT_NONE,
			     .top = path };

	ld.cfg = config_new();
	set_string(&ld.cfg->conffile, xstrdup(path));
	parse_file(&ld, path);
	if (ld.n_errors == 0)
		validate(&ld);
	load_auth_file(&ld);
	load_hba_file(&ld);
	config_errors_free(&ignored);
	if (ld.n_errors > 0) {
		config_free(ld.cfg);
		return NULL;
	}
	config_apply_worker(ld.cfg);
	return ld.cfg;
}

/* ---- copies and single-key changes (admin SET) ---- */

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void dup_strings(const struct key_def *defs, size_t n, void *base)
{
	for (size_t i = 0; i < n; i++) {
		if (!defs[i].alias && is_string_type(defs[i].type)) {
			char **f = (char **)((char *)base + defs[i].off);
			*f = dup_or_null(*f);
		}
	}
}

/* The copy's cfg->files entry for a file name of the original. */
static const char *dup_file_ref(const struct config *old, struct config *cfg, const char *file)
{
	for (size_t i = 0; i < old->n_files; i++) {
		if (old->files[i] == file)
			return cfg->files[i];
	}
	return file ? remember_file(cfg, file) : NULL;
}

static void dup_entries(const struct config *old, struct config *cfg)
{
	cfg->dbs = xcalloc(old->n_dbs ? old->n_dbs : 1, sizeof(*cfg->dbs));
	for (size_t i = 0; i < old->n_dbs; i++) {
		struct db_config *d = xmalloc(sizeof(*d));
		*d = *old->dbs[i];
		d->name = xstrdup(d->name);
		dup_strings(db_keys, ARRAY_SIZE(db_keys), d);
		d->file = dup_file_ref(old, cfg, d->file);
		cfg->dbs[i] = d;
	}
	cfg->users = xcalloc(old->n_users ? old->n_users : 1, sizeof(*cfg->users));
	for (size_t i = 0; i < old->n_users; i++) {
		struct user_config *u = xmalloc(sizeof(*u));
		*u = *old->users[i];
		u->name = xstrdup(u->name);
		u->file = dup_file_ref(old, cfg, u->file);
		cfg->users[i] = u;
	}
	cfg->peers = xcalloc(old->n_peers ? old->n_peers : 1, sizeof(*cfg->peers));
	for (size_t i = 0; i < old->n_peers; i++) {
		struct peer_config *pc = xmalloc(sizeof(*pc));
		*pc = *old->peers[i];
		pc->host = dup_or_null(pc->host);
		cfg->peers[i] = pc;
	}
	cfg->auth = xcalloc(old->n_auth ? old->n_auth : 1, sizeof(*cfg->auth));
	for (size_t i = 0; i < old->n_auth; i++) {
		struct auth_entry *e = xmalloc(sizeof(*e));
		e->user = xstrdup(old->auth[i]->user);
		e->secret = dup_or_null(old->auth[i]->secret);
		cfg->auth[i] = e;
	}
}

struct config *config_dup(const struct config *old)
{
	struct config *cfg = xmalloc(sizeof(*cfg));

	*cfg = *old;
	dup_strings(main_keys, N_MAIN_KEYS, cfg);
	cfg->files = NULL;
	cfg->n_files = 0;
	for (size_t i = 0; i < old->n_files; i++)
		PUSH(cfg->files, cfg->n_files, xstrdup(old->files[i]));
	dup_entries(old, cfg);
	cfg->hba = hba_ref(old->hba);
	return cfg;
}

/* Re-reads auth_file into cfg (after SET auth_file). */
static bool reload_auth_file(struct config *cfg, char **why)
{
	struct config_errors errs = { 0 };
	struct loader ld = { .cfg = cfg, .errs = &errs, .top = cfg->conffile };

	for (size_t i = 0; i < cfg->n_auth; i++) {
		free(cfg->auth[i]->user);
		free(cfg->auth[i]->secret);
		free(cfg->auth[i]);
	}
	cfg->n_auth = 0;
	load_auth_file(&ld);
	if (ld.n_errors == 0)
		validate(&ld);
	if (ld.n_errors > 0)
		*why = xstrdup(errs.msgs[0]);
	config_errors_free(&errs);
	return ld.n_errors == 0;
}

/* Checks that span keys, for a snapshot changed by SET. */
static bool validate_snapshot(struct config *cfg, char **why)
{
	struct config_errors errs = { 0 };
	struct loader ld = { .cfg = cfg, .errs = &errs, .top = cfg->conffile };

	validate(&ld);
	if (ld.n_errors > 0)
		*why = xstrdup(errs.msgs[0]);
	config_errors_free(&errs);
	return ld.n_errors == 0;
}

enum config_set_result config_set_key(const struct config *cur, const char *key, const char *value,
				      struct config **out, char **why)
{
	const struct key_def *k = find_key(main_keys, N_MAIN_KEYS, key);
	struct config *cfg;

	*out = NULL;
	*why = NULL;
	if (!k)
		return CONFIG_SET_UNKNOWN;
	if (!k->info.reloadable)
		return CONFIG_SET_NOT_CHANGEABLE;
	if (strpbrk(value, "\r\n")) {
		*why = xstrdup("a value must be one line");
		return CONFIG_SET_INVALID;
	}
	cfg = config_dup(cur);
	if (!set_value(k, cfg, value, cfg->conffile, why) || refused_value(k, cfg, why) ||
	    (strcmp(k->info.name, "auth_file") == 0 && !reload_auth_file(cfg, why)) ||
	    !validate_snapshot(cfg, why)) {
		config_free(cfg);
		return CONFIG_SET_INVALID;
	}
	*out = cfg;
	return CONFIG_SET_OK;
}

static struct config *current;

const struct config *config_current(void)
{
	return current;
}

struct config *config_swap(struct config *cfg)
{
	struct config *old = current;
	current = cfg;
	return old;
}

/* Copies the value of field k from src into dst (strings duplicated). */
static void copy_field(const struct key_def *k, struct config *dst, const struct config *src)
{
	void *d = (char *)dst + k->off;
	const void *v = (const char *)src + k->off;
	switch (k->type) {
	case KT_STR:
	case KT_PATH:
	case KT_CHOICE:
		set_string(d, xstrdup(*(char *const *)v));
		return;
	case KT_INT:
	case KT_OCTAL:
		*(int *)d = *(const int *)v;
		return;
	case KT_INT64:
		*(int64_t *)d = *(const int64_t *)v;
		return;
	case KT_BOOL:
		*(bool *)d = *(const bool *)v;
		return;
	case KT_USEC:
	case KT_MSEC:
		*(usec_t *)d = *(const usec_t *)v;
		return;
	case KT_POOL_MODE:
		*(enum pool_mode *)d = *(const enum pool_mode *)v;
		return;
	case KT_AUTH_TYPE:
		*(enum auth_type *)d = *(const enum auth_type *)v;
		return;
	}
}

void config_keep_restart_keys(struct config *cfg, const struct config *cur)
{
	if (!cur)
		return;
	for (size_t i = 0; i < N_MAIN_KEYS; i++)
		if (!main_keys[i].info.reloadable && !main_keys[i].alias)
			copy_field(&main_keys[i], cfg, cur);
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	free_strings(main_keys, N_MAIN_KEYS, cfg);
	for (size_t i = 0; i < cfg->n_dbs; i++) {
		free_strings(db_keys, ARRAY_SIZE(db_keys), cfg->dbs[i]);
		free(cfg->dbs[i]->name);
		free(cfg->dbs[i]);
	}
	for (size_t i = 0; i < cfg->n_users; i++) {
		free(cfg->users[i]->session_state);
		free(cfg->users[i]->name);
		free(cfg->users[i]);
	}
	for (size_t i = 0; i < cfg->n_peers; i++) {
		free(cfg->peers[i]->host);
		free(cfg->peers[i]);
	}
	for (size_t i = 0; i < cfg->n_auth; i++) {
		free(cfg->auth[i]->user);
		free(cfg->auth[i]->secret);
		free(cfg->auth[i]);
	}
	for (size_t i = 0; i < cfg->n_files; i++)
		free(cfg->files[i]);
	free(cfg->dbs);
	free(cfg->users);
	free(cfg->peers);
	free(cfg->auth);
	free(cfg->files);
	hba_free(cfg->hba);
	free(cfg);
}

void config_errors_free(struct config_errors *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n; i++)
		free(e->msgs[i]);
	free(e->msgs);
	e->msgs = NULL;
	e->n = 0;
}

/* ---- lookups ---- */

const struct db_config *config_find_db(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_dbs; i++) {
		if (strcmp(cfg->dbs[i]->name, name) == 0)
			return cfg->dbs[i];
	}
	return NULL;
}

const struct db_config *config_find_db_or_fallback(const struct config *cfg, const char *name)
{
	const struct db_config *db = config_find_db(cfg, name);

	return db ? db : config_find_db(cfg, "*");
}

const struct user_config *config_find_user(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_users; i++) {
		if (strcmp(cfg->users[i]->name, name) == 0)
			return cfg->users[i];
	}
	return NULL;
}

static int auth_find_cmp(const void *key, const void *elem)
{
	return strcmp(key, (*(struct auth_entry *const *)elem)->user);
}

const struct auth_entry *config_find_auth(const struct config *cfg, const char *user)
{
	struct auth_entry *const *e;

	if (!cfg->n_auth)
		return NULL;
	e = bsearch(user, cfg->auth, cfg->n_auth, sizeof(*cfg->auth), auth_find_cmp);
	return e ? *e : NULL;
}

bool config_list_contains(const char *list, const char *name)
{
	static const char seps[] = ", \t\r\n";
	size_t len = name ? strlen(name) : 0;

	if (!list || len == 0)
		return false;
	while (*list) {
		size_t n;

		list += strspn(list, seps);
		n = strcspn(list, seps);
		if (n == len && memcmp(list, name, n) == 0)
			return true;
		list += n;
	}
	return false;
}

size_t config_key_count(void)
{
	return N_MAIN_KEYS;
}

const struct config_key_info *config_key_at(size_t i)
{
	return i < N_MAIN_KEYS ? &main_keys[i].info : NULL;
}

const char *config_key_value(const struct config *cfg, size_t i, char *buf, size_t buflen)
{
	if (i >= N_MAIN_KEYS)
		return NULL;
	if (buflen)
		buf[0] = '\0';
	return format_value(&main_keys[i], cfg, buf, buflen);
}

const char *config_pool_mode_name(enum pool_mode m)
{
	switch (m) {
	case POOL_MODE_UNSET:
		return "";
	case POOL_MODE_SESSION:
	case POOL_MODE_TRANSACTION:
	case POOL_MODE_STATEMENT:
		return pool_mode_names[m];
	}
	return "";
}

const char *config_auth_type_name(enum auth_type t)
{
	switch (t) {
	case AUTH_TYPE_TRUST:
	case AUTH_TYPE_ANY:
	case AUTH_TYPE_PLAIN:
	case AUTH_TYPE_MD5:
	case AUTH_TYPE_SCRAM_SHA_256:
	case AUTH_TYPE_CERT:
	case AUTH_TYPE_HBA:
	case AUTH_TYPE_PAM:
	case AUTH_TYPE_LDAP:
		return auth_type_names[t];
	}
	return "";
}
