/* config: one immutable snapshot of pgbouncer.ini-format configuration.
 *
 * config_load() parses a file (following %include) into a fresh snapshot;
 * on any error it returns NULL and every problem is listed, with file:line,
 * in the caller's config_errors.  A reload builds a new snapshot and swaps
 * it in only when it loaded cleanly, so a bad file never half-applies.
 * All keys live in one declarative table (name, type, default, bounds,
 * reloadable, implemented, help) from which the parser, SHOW CONFIG and
 * doc/config.md are derived. The current snapshot is held here too
 * (config_current); reload.c builds, swaps and applies new ones. */
#ifndef TIDEPOOL_CONFIG_H
#define TIDEPOOL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hba;

/* Durations are kept in microseconds. */
typedef int64_t usec_t;
#define USEC_PER_SEC ((usec_t)1000000)

enum pool_mode {
	POOL_MODE_UNSET = -1,
	POOL_MODE_SESSION = 0,
	POOL_MODE_TRANSACTION,
	POOL_MODE_STATEMENT,
};

/* What happens to session state that cannot follow its client. */
enum session_state_policy {
	SESSION_STATE_UNSET = -1,
	SESSION_STATE_PIN = 0,   /* the client keeps its backend until it disconnects */
	SESSION_STATE_ERROR,     /* the statement is refused (0A000) */
	SESSION_STATE_ALLOW,     /* PgBouncer's behaviour; the backend is reset at release */
};

enum auth_type {
	AUTH_TYPE_TRUST,
	AUTH_TYPE_ANY,
	AUTH_TYPE_PLAIN,
	AUTH_TYPE_MD5,
	AUTH_TYPE_SCRAM_SHA_256,
	AUTH_TYPE_CERT,
	AUTH_TYPE_HBA,
	AUTH_TYPE_PAM,
	AUTH_TYPE_LDAP,
};

/* One [databases] entry. Integer fields are -1 when not given. */
struct db_config {
	char *name;             /* the key; "*" is the fallback entry */
	char *host;             /* NULL: default unix socket dir; "/..." a socket dir; else name or IP */
	int port;               /* 5432 unless given */
	char *dbname;           /* NULL: same as name (for "*": the client's database) */
	char *user;             /* forced user, or NULL */
	char *password;         /* password for the forced user, or NULL */
	char *auth_user;
	char *auth_query;
	char *auth_dbname;
	int pool_size;
	int min_pool_size;
	int reserve_pool_size;
	int max_db_connections;
	int max_db_client_connections;
	enum pool_mode pool_mode;
	usec_t server_lifetime;  /* -1 when not given */
	char *connect_query;
	char *client_encoding;
	char *datestyle;
	char *timezone;
	char *application_name;
	char *load_balance_hosts;
	usec_t query_wait_timeout; /* -1 when not given (PgBouncer 1.26 key) */
	char *session_state;     /* pin, error, allow; NULL when not given */
	const char *file;        /* where it was defined, for messages */
	int line;
};

/* One [users] entry. Integer fields are -1 when not given. */
struct user_config {
	char *name;
	enum pool_mode pool_mode;
	int pool_size;
	int reserve_pool_size;
	int max_user_connections;
	int max_user_client_connections;
	usec_t query_timeout;
	usec_t idle_transaction_timeout;
	usec_t transaction_timeout;
	usec_t client_idle_timeout;
	usec_t query_wait_timeout; /* PgBouncer 1.26 key */
	char *session_state;     /* pin, error, allow; NULL when not given */
	const char *file;
	int line;
};

/* One [peers] entry. */
struct peer_config {
	int peer_id;
	char *host;
	int port;
	int pool_size;
};

/* One userlist.txt line: secret is plain text, "md5<32 hex>" or "SCRAM-SHA-256$...". */
struct auth_entry {
	char *user;
	char *secret;
};

/* The main section. Field names are the config key names. Strings are never
 * NULL (empty string when unset). */
struct config {
	char *conffile;

	/* general */
	char *logfile, *pidfile, *user;
	bool syslog;
	char *syslog_ident, *syslog_facility;
	bool log_connections, log_disconnections, log_pooler_errors, log_stats;
	int verbose;
	usec_t stats_period;

	/* listening */
	char *listen_addr;
	int listen_port;
	char *unix_socket_dir;
	int unix_socket_mode;   /* octal in the file */
	char *unix_socket_group;
	int listen_backlog;
	bool so_reuseport;
	bool tcp_defer_accept;
	int tcp_socket_buffer;
	bool tcp_keepalive;
	int tcp_keepcnt, tcp_keepidle, tcp_keepintvl;
	usec_t tcp_user_timeout;

	/* auth */
	enum auth_type auth_type;
	char *auth_file, *auth_hba_file, *auth_ident_file;
	char *auth_user, *auth_query, *auth_dbname;
	char *admin_users, *stats_users, *stats_users_prefix;
	int scram_iterations;
	char *auth_ldap_options;

	/* pooling */
	enum pool_mode pool_mode;
	int max_client_conn;
	int default_pool_size, min_pool_size, reserve_pool_size;
	usec_t reserve_pool_timeout;
	int max_db_connections, max_db_client_connections;
	int max_user_connections, max_user_client_connections;
	bool server_round_robin;
	char *ignore_startup_parameters;
	char *track_extra_parameters;
	bool disable_pqexec;
	bool application_name_add_host;
	int max_prepared_statements;
	int max_client_prepared_statements;
	bool pin_session_state;   /* 0: session_state = pin means allow (the older key) */
	char *session_state;

	/* server connections */
	char *server_reset_query;
	bool server_reset_query_always;
	usec_t server_check_delay;
	char *server_check_query;
	bool server_fast_close;
	usec_t server_lifetime, server_idle_timeout, server_connect_timeout, server_login_retry;

	/* client connections and timeouts */
	usec_t client_login_timeout, client_idle_timeout;
	usec_t query_timeout, query_wait_timeout, cancel_wait_timeout;
	usec_t idle_transaction_timeout, transaction_timeout, suspend_timeout;
	usec_t autodb_idle_timeout;
	usec_t pool_idle_timeout;
	int query_wait_notify;
	char *login_notify_message;

	/* low level */
	int pkt_buf;
	int64_t max_packet_size;
	int sbuf_loopcnt;

	/* dns */
	usec_t dns_max_ttl, dns_nxdomain_ttl, dns_zone_check_period;
	char *resolv_conf;

	/* tls: handed to the tls module by reload (tls_settings) */
	char *client_tls_sslmode, *client_tls_key_file, *client_tls_cert_file, *client_tls_ca_file;
	char *client_tls_protocols, *client_tls_ciphers, *client_tls13_ciphers;
	char *client_tls_ecdhcurve, *client_tls_dheparams;
	char *server_tls_sslmode, *server_tls_ca_file, *server_tls_key_file, *server_tls_cert_file;
	char *server_tls_protocols, *server_tls_ciphers, *server_tls13_ciphers;

	/* tidepool's own keys */
	char *metrics_listen_addr;
	int metrics_port;
	usec_t shutdown_delay, shutdown_timeout;
	char *shutdown_mode;
	bool readyz_checks_backend;

	int peer_id;
	char *service_name;
	char *workers;                /* "1".."1024" or "auto"; see config_workers */

	/* backend budget (budget.h) */
	int expected_replicas;
	char *replicas_dns_name;

	/* sections */
	struct db_config **dbs;       /* in file order; includes "*" if given */
	size_t n_dbs;
	struct user_config **users;
	size_t n_users;
	struct peer_config **peers;
	size_t n_peers;
	struct auth_entry **auth;     /* from auth_file, sorted by user for lookup */
	size_t n_auth;
	struct hba *hba;              /* auth_hba_file's rules when auth_type = hba, else NULL */

	/* owned copies of file names referenced by db/user entries */
	char **files;
	size_t n_files;
};

/* Errors collected while loading: "file:line: message" strings. */
struct config_errors {
	char **msgs;
	size_t n;
};
void config_errors_free(struct config_errors *e);

/* Warnings for keys accepted but not implemented yet are reported through
 * this callback once per key per process (may be NULL). */
typedef void (*config_warn_fn)(const char *file, int line, const char *msg);

/* Parses path and the files it names into a new snapshot. NULL on error,
 * with every problem appended to errs. */
struct config *config_load(const char *path, struct config_errors *errs, config_warn_fn warn);
/* The number of worker processes the workers key asks for (auto: the CPUs
 * the process may use, usable_cpus); 0 if the value is not valid. */
int config_workers(const struct config *cfg);
/* Who a worker process is. Its peer_id is config_worker_peer_id(gen, id):
 * each generation of workers (an in-place upgrade starts the next one) has
 * ids of its own, so cancel keys of the generation being replaced still
 * find their worker. */
#define CONFIG_MAX_WORKERS 1024
#define CONFIG_WORKER_GENERATIONS 60   /* 60 * 1024 + 1024 stays below 65536 */
struct config_worker {
	int id, n, gen;
	char prefix[48];          /* worker i's abstract unix socket dir is "@<prefix>.<i>" */
	int old_n, old_gen;       /* the generation being replaced (old_n = 0: none) */
	char old_prefix[48];
};
int config_worker_peer_id(int gen, int id);
/* In a worker process: every snapshot loaded from now on (and cfg) gets
 * its peer_id and one [peers] entry per worker of both generations. */
void config_set_worker(const struct config_worker *w);
/* This worker's identity, NULL in a process on its own. */
const struct config_worker *config_worker(void);
void config_apply_worker(struct config *cfg);
void config_free(struct config *cfg);
/* Gives cfg the values cur has for every key that needs a restart, so a
 * reloaded snapshot shows what is in force (cur NULL: nothing). */
void config_keep_restart_keys(struct config *cfg, const struct config *cur);

/* The current snapshot, the only way to reach settings; read-only for all
 * (NULL before start-up installs the first one). */
const struct config *config_current(void);
/* Makes cfg (may be NULL) the current snapshot and returns the previous
 * one, which the caller frees. Only start-up and reload call it. */
struct config *config_swap(struct config *cfg);
/* A deep copy of a snapshot (the copy owns all it points to). */
struct config *config_dup(const struct config *cfg);

enum config_set_result {
	CONFIG_SET_OK,             /* *out is a new snapshot with the key changed */
	CONFIG_SET_UNKNOWN,        /* no such main-section key */
	CONFIG_SET_NOT_CHANGEABLE, /* the key needs a restart */
	CONFIG_SET_INVALID,        /* *why (malloc'd) says what is wrong with value */
};
/* A copy of cur with main-section key set to value, parsed and checked as
 * the file loader would (relative paths are taken from cur->conffile's
 * directory). cur is never changed; on any error nothing is made. */
enum config_set_result config_set_key(const struct config *cur, const char *key, const char *value,
				      struct config **out, char **why);

/* Lookups in a snapshot. db: exact name, else NULL (callers fall back to "*"
 * themselves with config_find_db_or_fallback). */
const struct db_config *config_find_db(const struct config *cfg, const char *name);
const struct db_config *config_find_db_or_fallback(const struct config *cfg, const char *name);
const struct user_config *config_find_user(const struct config *cfg, const char *name);
const struct auth_entry *config_find_auth(const struct config *cfg, const char *user);

/* True if name appears in a comma/space separated list such as admin_users. */
bool config_list_contains(const char *list, const char *name);

/* The key table, for SHOW CONFIG and the documentation. */
struct config_key_info {
	const char *name;
	const char *default_value;
	bool reloadable;
	bool implemented;
	const char *help;
};
size_t config_key_count(void);
const struct config_key_info *config_key_at(size_t i);
/* Current value of key i in cfg, formatted into buf as SHOW CONFIG prints it.
 * Use the return value: string keys are returned from cfg itself, whole. */
const char *config_key_value(const struct config *cfg, size_t i, char *buf, size_t buflen);

/* "session", "transaction", "statement"; "" for POOL_MODE_UNSET. */
const char *config_pool_mode_name(enum pool_mode m);
/* The auth_type spelling of the file: "md5", "scram-sha-256", ... */
const char *config_auth_type_name(enum auth_type t);

#endif
