/* Unit tests of config (pgbouncer.ini parsing, key table, lookups) and of
 * pq's connection string splitter. Every test writes its files into one
 * temporary directory that main() removes at the end. */
#include "unit.h"

#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "hba.h"
#include "pq.h"

#include <libpq-fe.h>
#include "util.h"

static char tmpdir[] = "/tmp/tidepool-test-config-XXXXXX";
static char *created[128];
static int n_created;

/* Writes text to tmpdir/name and returns the path (freed at exit). */
static const char *write_file(const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");

	if (!f) {
		perror(path);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
	if (n_created < (int)ARRAY_SIZE(created))
		created[n_created++] = path;
	return path;
}

static void make_subdir(const char *name)
{
	char *path = xasprintf("%s/%s", tmpdir, name);

	mkdir(path, 0700);
	free(path);
}

static void cleanup(void)
{
	for (int i = n_created - 1; i >= 0; i--) {
		unlink(created[i]);
		free(created[i]);
	}
	char *sub = xasprintf("%s/sub", tmpdir);
	rmdir(sub);
	free(sub);
	rmdir(tmpdir);
}

static void print_errors(const struct config_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		fprintf(stderr, "  config error: %s\n", e->msgs[i]);
}

/* Loads path expecting success; prints the errors otherwise. */
static struct config *load_ok(const char *path, config_warn_fn warn)
{
	struct config_errors errs = { 0 };
	struct config *cfg = config_load(path, &errs, warn);

	if (!cfg)
		print_errors(&errs);
	CHECK(cfg != NULL);
	CHECK_INT(errs.n, 0);
	config_errors_free(&errs);
	return cfg;
}

/* True if some message contains both a and b (b may be NULL). */
static bool has_error(const struct config_errors *e, const char *a, const char *b)
{
	for (size_t i = 0; i < e->n; i++) {
		if (strstr(e->msgs[i], a) && (!b || strstr(e->msgs[i], b)))
			return true;
	}
	return false;
}

/* "path:line:" for matching error messages; the last 4 results stay valid. */
static char *at(const char *path, int line)
{
	static char bufs[4][512];
	static int next;
	char *buf = bufs[next++ % 4];

	snprintf(buf, sizeof(bufs[0]), "%s:%d:", path, line);
	return buf;
}

static size_t key_index(const char *name)
{
	for (size_t i = 0; i < config_key_count(); i++) {
		if (strcmp(config_key_at(i)->name, name) == 0)
			return i;
	}
	fprintf(stderr, "no key %s\n", name);
	return (size_t)-1;
}

static const char *value_of(const struct config *cfg, const char *name)
{
	static char buf[256];

	return config_key_value(cfg, key_index(name), buf, sizeof(buf));
}

static void test_defaults(void)
{
	const char *path = write_file("defaults.ini", "[pgbouncer]\n");
	struct config *cfg = load_ok(path, NULL);

	if (!cfg)
		return;
	CHECK_INT(cfg->pool_mode, POOL_MODE_SESSION);
	CHECK_INT(cfg->max_client_conn, 100);
	CHECK_INT(cfg->default_pool_size, 20);
	CHECK_INT(cfg->listen_port, 6432);
	CHECK_STR(cfg->listen_addr, "");
	CHECK_STR(cfg->unix_socket_dir, "/tmp");
	CHECK_INT(cfg->unix_socket_mode, 0777);
	CHECK_INT(cfg->auth_type, AUTH_TYPE_MD5);
	CHECK_STR(cfg->auth_file, "");
	CHECK_STR(cfg->server_reset_query, "DISCARD ALL");
	CHECK_STR(cfg->server_check_query, "<empty>");
	CHECK_STR(cfg->track_extra_parameters, "IntervalStyle");
	CHECK_INT(cfg->pkt_buf, 4096);
	CHECK_INT(cfg->max_packet_size, 2147483647);
	CHECK_INT(cfg->query_wait_timeout, 120 * USEC_PER_SEC);
	CHECK_INT(cfg->client_login_timeout, 60 * USEC_PER_SEC);
	CHECK_INT(cfg->server_lifetime, 3600 * USEC_PER_SEC);
	CHECK_INT(cfg->server_idle_timeout, 600 * USEC_PER_SEC);
	CHECK_INT(cfg->server_connect_timeout, 15 * USEC_PER_SEC);
	CHECK_INT(cfg->server_login_retry, 15 * USEC_PER_SEC);
	CHECK_INT(cfg->server_check_delay, 30 * USEC_PER_SEC);
	CHECK_INT(cfg->reserve_pool_timeout, 5 * USEC_PER_SEC);
	CHECK_INT(cfg->cancel_wait_timeout, 10 * USEC_PER_SEC);
	CHECK_INT(cfg->stats_period, 60 * USEC_PER_SEC);
	CHECK_INT(cfg->query_timeout, 0);
	CHECK(cfg->tcp_keepalive);
	CHECK(cfg->log_connections && cfg->log_disconnections && cfg->log_pooler_errors);
	CHECK(!cfg->syslog);
	CHECK_STR(cfg->metrics_listen_addr, "127.0.0.1");
	CHECK_INT(cfg->metrics_port, 9127);
	CHECK_INT(cfg->shutdown_delay, 0);
	CHECK_INT(cfg->shutdown_timeout, 30 * USEC_PER_SEC);
	CHECK_STR(cfg->shutdown_mode, "drain");
	CHECK(!cfg->readyz_checks_backend);
	CHECK_INT(cfg->max_client_prepared_statements, 1000);
	CHECK_INT(cfg->max_prepared_statements, 200);
	CHECK_STR(cfg->client_tls_sslmode, "disable");
	CHECK_STR(cfg->server_tls_sslmode, "prefer");
	CHECK_STR(cfg->conffile, path);
	CHECK_INT(cfg->n_dbs + cfg->n_users + cfg->n_peers + cfg->n_auth, 0);
	/* The table's default column is what a fresh snapshot reports. */
	for (size_t i = 0; i < config_key_count(); i++) {
		const struct config_key_info *k = config_key_at(i);
		char buf[64];

		if (strcmp(k->name, "conffile") != 0)
			CHECK_STR(config_key_value(cfg, i, buf, sizeof(buf)), k->default_value);
	}
	config_free(cfg);
}

static void test_value_types(void)
{
	const char *path = write_file("types.ini",
		"[tidepool]\n"
		"listen_port = 7000\n"
		"LISTEN_ADDR = *\n"
		"pool_mode = Transaction\n"
		"auth_type = scram-sha-256\n"
		"server_idle_timeout = 0.5\n"
		"query_timeout = 15.0\n"
		"client_idle_timeout = 1.25\n"
		"idle_transaction_timeout = .000001\n"
		"tcp_keepalive = off\n"
		"log_connections = no\n"
		"syslog = yes\n"
		"server_fast_close = 2\n"
		"verbose = 2\n"
		"unix_socket_mode = 0660\n"
		"max_packet_size = 4294967295\n"
		"tcp_user_timeout = 1500\n"
		"server_tls_sslmode = VERIFY-FULL\n"
		"shutdown_mode = wait_for_clients\n"
		"logfile = logs/tidepool.log\n"
		"pidfile = /run/tidepool.pid\n"
		"server_reset_query = \n"
		"admin_users = alice, bob\n");
	struct config *cfg = load_ok(path, NULL);
	char *logfile;

	if (!cfg)
		return;
	CHECK_INT(cfg->listen_port, 7000);
	CHECK_STR(cfg->listen_addr, "*");
	CHECK_INT(cfg->pool_mode, POOL_MODE_TRANSACTION);
	CHECK_INT(cfg->auth_type, AUTH_TYPE_SCRAM_SHA_256);
	CHECK_INT(cfg->server_idle_timeout, 500000);
	CHECK_INT(cfg->query_timeout, 15 * USEC_PER_SEC);
	CHECK_INT(cfg->client_idle_timeout, 1250000);
	CHECK_INT(cfg->idle_transaction_timeout, 1);
	CHECK(!cfg->tcp_keepalive);
	CHECK(!cfg->log_connections);
	CHECK(cfg->syslog);
	CHECK(cfg->server_fast_close);
	CHECK_INT(cfg->verbose, 2);
	CHECK_INT(cfg->unix_socket_mode, 0660);
	CHECK_INT(cfg->max_packet_size, 4294967295LL);
	CHECK_INT(cfg->tcp_user_timeout, 1500 * 1000);
	CHECK_STR(cfg->server_tls_sslmode, "verify-full");
	CHECK_STR(cfg->shutdown_mode, "wait_for_clients");
	logfile = xasprintf("%s/logs/tidepool.log", tmpdir);
	CHECK_STR(cfg->logfile, logfile);
	free(logfile);
	CHECK_STR(cfg->pidfile, "/run/tidepool.pid");
	CHECK_STR(cfg->server_reset_query, "");
	/* SHOW CONFIG formatting */
	CHECK_STR(value_of(cfg, "server_idle_timeout"), "0.5");
	CHECK_STR(value_of(cfg, "query_timeout"), "15");
	CHECK_STR(value_of(cfg, "client_idle_timeout"), "1.25");
	CHECK_STR(value_of(cfg, "idle_transaction_timeout"), "0.000001");
	CHECK_STR(value_of(cfg, "unix_socket_mode"), "0660");
	CHECK_STR(value_of(cfg, "tcp_keepalive"), "0");
	CHECK_STR(value_of(cfg, "syslog"), "1");
	CHECK_STR(value_of(cfg, "pool_mode"), "transaction");
	CHECK_STR(value_of(cfg, "auth_type"), "scram-sha-256");
	CHECK_STR(value_of(cfg, "tcp_user_timeout"), "1500");
	CHECK_STR(value_of(cfg, "max_packet_size"), "4294967295");
	CHECK_STR(value_of(cfg, "listen_port"), "7000");
	CHECK_STR(value_of(cfg, "admin_users"), "alice, bob");
	CHECK(config_key_value(cfg, config_key_count(), NULL, 0) == NULL);
	config_free(cfg);
}

static void test_section_names(void)
{
	const char *a = write_file("sect-a.ini", "[pgbouncer]\nlisten_port = 1111\n");
	const char *b = write_file("sect-b.ini", "[TidePool]\nlisten_port = 2222\n"
				   "[ PgBouncer ]\nmax_client_conn = 5\n[DATABASES]\nx =\n");
	struct config *cfg = load_ok(a, NULL);

	if (cfg)
		CHECK_INT(cfg->listen_port, 1111);
	config_free(cfg);
	cfg = load_ok(b, NULL);
	if (cfg) {
		CHECK_INT(cfg->listen_port, 2222);
		CHECK_INT(cfg->max_client_conn, 5);
		CHECK_INT(cfg->n_dbs, 1);
	}
	config_free(cfg);
}

static void test_comments_and_whitespace(void)
{
	const char *path = write_file("comments.ini",
		"; a comment\n"
		"# another\n"
		"   ; indented comment\n"
		"\n"
		"[pgbouncer]   ; after a header\r\n"
		"listen_port = 6000   \r\n"
		"\t# tabbed comment\n"
		"   max_client_conn=7\n"
		"server_reset_query = DISCARD ALL ; not a comment here\n");
	struct config *cfg = load_ok(path, NULL);

	if (!cfg)
		return;
	CHECK_INT(cfg->listen_port, 6000);
	CHECK_INT(cfg->max_client_conn, 7);
	/* Like PgBouncer, only whole lines are comments. */
	CHECK_STR(cfg->server_reset_query, "DISCARD ALL ; not a comment here");
	config_free(cfg);
}

static void test_include(void)
{
	const char *main_ini, *dbs;
	struct config *cfg;
	const struct db_config *db;

	make_subdir("sub");
	dbs = write_file("sub/dbs.ini", "a = host=h1\n%include more.ini\n");
	write_file("sub/more.ini", "b = host=h2\n[pgbouncer]\nmax_client_conn = 9\n");
	main_ini = write_file("inc-main.ini",
			      "[databases]\n%include sub/dbs.ini\nlisten_port = 1234\n");
	cfg = load_ok(main_ini, NULL);
	if (!cfg)
		return;
	db = config_find_db(cfg, "a");
	CHECK(db != NULL);
	if (db) {
		CHECK_STR(db->host, "h1");
		CHECK_STR(db->file, dbs);
		CHECK_INT(db->line, 1);
	}
	db = config_find_db(cfg, "b");
	CHECK(db != NULL && strcmp(db->host, "h2") == 0);
	/* The section an included file switches to stays in force after it. */
	CHECK_INT(cfg->listen_port, 1234);
	CHECK_INT(cfg->max_client_conn, 9);
	config_free(cfg);
}

static void test_include_errors(void)
{
	struct config_errors errs = { 0 };
	const char *loop1 = write_file("loop1.ini", "[pgbouncer]\n%include loop2.ini\n");
	const char *loop2 = write_file("loop2.ini", "\n%include loop1.ini\n");
	const char *self = write_file("self.ini", "%include self.ini\n");
	const char *missing = write_file("missing-inc.ini", "[pgbouncer]\n\n%include nope.ini\n");
	char name[128], text[64];

	CHECK(config_load(loop1, &errs, NULL) == NULL);
	CHECK(has_error(&errs, at(loop2, 2), "loop"));
	config_errors_free(&errs);
	CHECK(config_load(self, &errs, NULL) == NULL);
	CHECK(has_error(&errs, at(self, 1), "loop"));
	config_errors_free(&errs);
	CHECK(config_load(missing, &errs, NULL) == NULL);
	CHECK(has_error(&errs, at(missing, 3), "nope.ini"));
	config_errors_free(&errs);
	/* A chain of 12 files: the 12th is one level too deep. */
	for (int i = 0; i < 12; i++) {
		snprintf(name, sizeof(name), "deep%d.ini", i);
		snprintf(text, sizeof(text), i < 11 ? "%%include deep%d.ini\n" : "[pgbouncer]\n", i + 1);
		write_file(name, text);
	}
	snprintf(name, sizeof(name), "%s/deep0.ini", tmpdir);
	CHECK(config_load(name, &errs, NULL) == NULL);
	CHECK(has_error(&errs, "deep10.ini:1:", "deeper"));
	config_errors_free(&errs);
	/* 11 files (the top one and 10 levels of %include) are fine. */
	snprintf(name, sizeof(name), "%s/deep1.ini", tmpdir);
	config_free(load_ok(name, NULL));
}

static void test_databases(void)
{
	const char *path = write_file("dbs.ini",
		"[databases]\n"
		"plain = host=db1 port=5433 dbname=real user=u password=p\n"
		"quoted = host='my host' password='it''s' application_name='a\\'b\\\\c' connect_query='SELECT 1'\n"
		"\"my db\" = dbname=x reserve_pool=3 pool_size=10 pool_mode=transaction "
		"server_lifetime=1.5 client_encoding=UTF8 datestyle=ISO timezone=UTC "
		"load_balance_hosts=Round-Robin auth_user=au auth_query='SELECT 2' auth_dbname=ad "
		"max_db_connections=7 max_db_client_connections=8 min_pool_size=2\n"
		"empty =\n"
		"spaced = host = h1   port = 1  reserve_pool_size=4\n"
		"'single q' = host=/var/run/postgresql\n"
		"* = host=fallback\n");
	struct config *cfg = load_ok(path, NULL);
	const struct db_config *db;

	if (!cfg)
		return;
	CHECK_INT(cfg->n_dbs, 7);
	db = config_find_db(cfg, "plain");
	CHECK(db && db->port == 5433 && db->line == 2);
	if (db) {
		CHECK_STR(db->host, "db1");
		CHECK_STR(db->dbname, "real");
		CHECK_STR(db->user, "u");
		CHECK_STR(db->password, "p");
		CHECK_STR(db->file, path);
	}
	db = config_find_db(cfg, "quoted");
	CHECK(db != NULL);
	if (db) {
		CHECK_STR(db->host, "my host");
		CHECK_STR(db->password, "it's");
		CHECK_STR(db->application_name, "a'b\\c");
		CHECK_STR(db->connect_query, "SELECT 1");
	}
	db = config_find_db(cfg, "my db");
	CHECK(db != NULL);
	if (db) {
		CHECK_STR(db->dbname, "x");
		CHECK_INT(db->reserve_pool_size, 3);
		CHECK_INT(db->pool_size, 10);
		CHECK_INT(db->pool_mode, POOL_MODE_TRANSACTION);
		CHECK_INT(db->server_lifetime, 1500000);
		CHECK_STR(db->client_encoding, "UTF8");
		CHECK_STR(db->datestyle, "ISO");
		CHECK_STR(db->timezone, "UTC");
		CHECK_STR(db->load_balance_hosts, "round-robin");
		CHECK_STR(db->auth_user, "au");
		CHECK_STR(db->auth_query, "SELECT 2");
		CHECK_STR(db->auth_dbname, "ad");
		CHECK_INT(db->max_db_connections, 7);
		CHECK_INT(db->max_db_client_connections, 8);
		CHECK_INT(db->min_pool_size, 2);
	}
	db = config_find_db(cfg, "empty");
	CHECK(db != NULL);
	if (db) {
		CHECK(db->host == NULL && db->dbname == NULL && db->user == NULL);
		CHECK_INT(db->port, 5432);
		CHECK_INT(db->pool_size, -1);
		CHECK_INT(db->server_lifetime, -1);
		CHECK_INT(db->pool_mode, POOL_MODE_UNSET);
	}
	db = config_find_db(cfg, "spaced");
	CHECK(db && strcmp(db->host, "h1") == 0 && db->port == 1 && db->reserve_pool_size == 4);
	db = config_find_db(cfg, "single q");
	CHECK(db && strcmp(db->host, "/var/run/postgresql") == 0);
	CHECK(config_find_db(cfg, "nope") == NULL);
	CHECK(config_find_db(cfg, "PLAIN") == NULL);
	db = config_find_db_or_fallback(cfg, "nope");
	CHECK(db && strcmp(db->name, "*") == 0 && strcmp(db->host, "fallback") == 0);
	db = config_find_db_or_fallback(cfg, "plain");
	CHECK(db && strcmp(db->name, "plain") == 0);
	config_free(cfg);
}

static void test_errors_all_reported(void)
{
	struct config_errors errs = { 0 };
	char prev[600];
	const char *path = write_file("bad.ini",
		"[pgbouncer]\n"
		"listen_port = 70000\n"                 /* 2 */
		"max_client_conn = abc\n"               /* 3 */
		"pool_mode = sometimes\n"               /* 4 */
		"log_connections = maybe\n"             /* 5 */
		"no_such_key = 1\n"                     /* 6 */
		"server_lifetime = -1\n"                /* 7 */
		"[databases]\n"
		"a = host=x\n"                          /* 9 */
		"a = host=y\n"                          /* 10 */
		"b = host=x frobnicate=1\n"             /* 11 */
		"c = host='unterminated\n"              /* 12 */
		"d = port=0 pool_mode=often\n"          /* 13 */
		"e = sslmode=require\n"                 /* 14 */
		"pgbouncer = host=x\n"                  /* 15 */
		"[nonsense]\n"                          /* 16 */
		"ignored = 1\n"                         /* 17 */
		"[pgbouncer]\n"
		"this line has no equals sign\n");      /* 19 */

	CHECK(config_load(path, &errs, NULL) == NULL);
	CHECK(has_error(&errs, at(path, 2), "listen_port"));
	CHECK(has_error(&errs, at(path, 2), "70000"));
	CHECK(has_error(&errs, at(path, 3), "'abc'"));
	CHECK(has_error(&errs, at(path, 4), "session, transaction, statement"));
	CHECK(has_error(&errs, at(path, 5), "log_connections"));
	CHECK(has_error(&errs, at(path, 6), "unknown configuration key 'no_such_key'"));
	CHECK(has_error(&errs, at(path, 7), "server_lifetime"));
	CHECK(has_error(&errs, at(path, 10), "already defined at"));
	snprintf(prev, sizeof(prev), "already defined at %s:9", path);
	CHECK(has_error(&errs, at(path, 10), prev));
	CHECK(has_error(&errs, at(path, 11), "unknown parameter 'frobnicate'"));
	CHECK(has_error(&errs, at(path, 12), "unterminated"));
	CHECK(has_error(&errs, at(path, 13), "port"));
	CHECK(has_error(&errs, at(path, 13), "pool_mode"));
	CHECK(has_error(&errs, at(path, 14), "libpq option"));
	CHECK(has_error(&errs, at(path, 15), "reserved"));
	CHECK(has_error(&errs, at(path, 16), "unknown section [nonsense]"));
	CHECK(has_error(&errs, at(path, 19), "syntax error"));
	if (errs.n != 15)
		print_errors(&errs);
	CHECK_INT(errs.n, 15);
	config_errors_free(&errs);
	CHECK(errs.n == 0 && errs.msgs == NULL);
	CHECK(config_load(path, NULL, NULL) == NULL);

	path = write_file("nosect.ini", "listen_port = 1\n");
	CHECK(config_load(path, &errs, NULL) == NULL);
	CHECK(has_error(&errs, at(path, 1), "outside of any section"));
	config_errors_free(&errs);

	CHECK(config_load("/nonexistent/tidepool.ini", &errs, NULL) == NULL);
	CHECK(has_error(&errs, "/nonexistent/tidepool.ini: cannot read", NULL));
	config_errors_free(&errs);
}

static void test_users_and_peers(void)
{
	struct config_errors errs = { 0 };
	const char *path = write_file("users.ini",
		"[users]\n"
		"alice = pool_mode=statement pool_size=3 reserve_pool_size=1 max_user_connections=4 "
		"max_user_client_connections=5 query_timeout=2.5 idle_transaction_timeout=6 "
		"transaction_timeout=7 client_idle_timeout=8\n"
		"bob =\n"
		"[peers]\n"
		"1 = host=10.0.0.1 port=6433 pool_size=4\n"
		"2 = host=/tmp\n");
	struct config *cfg = load_ok(path, NULL);
	const struct user_config *u;

	if (cfg) {
		u = config_find_user(cfg, "alice");
		CHECK(u != NULL);
		if (u) {
			CHECK_INT(u->pool_mode, POOL_MODE_STATEMENT);
			CHECK_INT(u->pool_size, 3);
			CHECK_INT(u->reserve_pool_size, 1);
			CHECK_INT(u->max_user_connections, 4);
			CHECK_INT(u->max_user_client_connections, 5);
			CHECK_INT(u->query_timeout, 2500000);
			CHECK_INT(u->idle_transaction_timeout, 6 * USEC_PER_SEC);
			CHECK_INT(u->transaction_timeout, 7 * USEC_PER_SEC);
			CHECK_INT(u->client_idle_timeout, 8 * USEC_PER_SEC);
			CHECK_INT(u->line, 2);
		}
		u = config_find_user(cfg, "bob");
		CHECK(u && u->pool_mode == POOL_MODE_UNSET && u->pool_size == -1 &&
		      u->query_timeout == -1);
		CHECK(config_find_user(cfg, "carol") == NULL);
		CHECK_INT(cfg->n_peers, 2);
		if (cfg->n_peers == 2) {
			CHECK_INT(cfg->peers[0]->peer_id, 1);
			CHECK_STR(cfg->peers[0]->host, "10.0.0.1");
			CHECK_INT(cfg->peers[0]->port, 6433);
			CHECK_INT(cfg->peers[0]->pool_size, 4);
			CHECK_INT(cfg->peers[1]->port, 6432);
			CHECK_INT(cfg->peers[1]->pool_size, -1);
		}
		config_free(cfg);
	}
	path = write_file("users-bad.ini",
		"[users]\n"
		"alice = pool_size=1 dbname=x\n"  /* 2 */
		"alice = pool_size=2\n"           /* 3 */
		"[peers]\n"
		"zero = host=x\n"                 /* 5 */
		"3 = port=1\n"                    /* 6 */
		"4 = host=a\n"
		"4 = host=b\n");                  /* 8 */
	CHECK(config_load(path, &errs, NULL) == NULL);
	CHECK(has_error(&errs, at(path, 2), "unknown parameter 'dbname'"));
	CHECK(has_error(&errs, at(path, 3), "already defined"));
	CHECK(has_error(&errs, at(path, 5), "peer id"));
	CHECK(has_error(&errs, at(path, 6), "no host"));
	CHECK(has_error(&errs, at(path, 8), "twice"));
	config_errors_free(&errs);
}

static void test_auth_file(void)
{
	const char *md5 = "md5a3556571e93b0d20722ba62be61e8c2d";
	const char *scram = "SCRAM-SHA-256$4096:c2FsdHNhbHQ=$c3RvcmVk:c2VydmVy";
	char *text = xasprintf(
		"; comment line\n"
		"\"alice\" \"%s\"\n"
		"\n"
		"\"bob \"\"the builder\"\"\" \"%s\" \"extra\" fields\n"
		"   \"carol\"\t\"plain pw\"\n"
		"# hash comment\n"
		"\"alice\" \"second\"\n"
		"\"\"\"\" \"q\"\n", md5, scram);
	const char *path;
	struct config *cfg;
	const struct auth_entry *e;

	write_file("userlist.txt", text);
	free(text);
	path = write_file("auth.ini", "[pgbouncer]\nauth_type = md5\nauth_file = userlist.txt\n");
	cfg = load_ok(path, NULL);
	if (!cfg)
		return;
	CHECK_INT(cfg->n_auth, 4);
	e = config_find_auth(cfg, "alice");
	CHECK(e && strcmp(e->secret, "second") == 0);
	e = config_find_auth(cfg, "bob \"the builder\"");
	CHECK(e && strcmp(e->secret, scram) == 0);
	e = config_find_auth(cfg, "carol");
	CHECK(e && strcmp(e->secret, "plain pw") == 0);
	e = config_find_auth(cfg, "\"");
	CHECK(e && strcmp(e->secret, "q") == 0);
	CHECK(config_find_auth(cfg, "dave") == NULL);
	CHECK(config_find_auth(cfg, "") == NULL);
	for (size_t i = 1; i < cfg->n_auth; i++)
		CHECK(strcmp(cfg->auth[i - 1]->user, cfg->auth[i]->user) < 0);
	config_free(cfg);

	/* an md5 secret is kept as written */
	path = write_file("userlist2.txt", "\"u\" \"md5a3556571e93b0d20722ba62be61e8c2d\"\n");
	text = xasprintf("[pgbouncer]\nauth_file = %s\n", path);
	cfg = load_ok(write_file("auth2.ini", text), NULL);
	free(text);
	if (cfg) {
		CHECK_STR(cfg->auth_file, path);
		e = config_find_auth(cfg, "u");
		CHECK(e && strcmp(e->secret, md5) == 0);
	}
	config_free(cfg);
}

static void test_auth_file_errors(void)
{
	struct config_errors errs = { 0 };
	const char *ul = write_file("broken-users.txt", "\"ok\" \"x\"\nbare words\n\"half\n\"a\"\"b\"\n");
	const char *path = write_file("auth-bad.ini",
				      "[pgbouncer]\n\nauth_file = broken-users.txt\n");

	CHECK(config_load(path, &errs, NULL) == NULL);
	CHECK(has_error(&errs, at(ul, 2), "\"user\" \"secret\""));
	CHECK(has_error(&errs, at(ul, 3), NULL));
	CHECK(has_error(&errs, at(ul, 4), NULL));
	CHECK(!has_error(&errs, at(ul, 1), NULL));
	config_errors_free(&errs);

	path = write_file("auth-missing.ini", "[pgbouncer]\n; x\nauth_file = /nonexistent/users.txt\n");
	CHECK(config_load(path, &errs, NULL) == NULL);
	CHECK(has_error(&errs, at(path, 3), "auth_file /nonexistent/users.txt"));
	config_errors_free(&errs);

	path = write_file("hba-missing.ini", "[pgbouncer]\nauth_type = hba\n");
	CHECK(config_load(path, &errs, NULL) == NULL);
	CHECK(has_error(&errs, at(path, 2), "auth_hba_file"));
	config_errors_free(&errs);
}

static void test_hba_file(void)
{
	struct config_errors errs = { 0 };
	struct config *cfg;
	const char *hba = write_file("good-hba.conf", "local all all trust\nhost all all 0.0.0.0/0 md5\n");
	const char *path = write_file("hba.ini", "[pgbouncer]\nauth_type = hba\nauth_hba_file = good-hba.conf\n");

	cfg = config_load(path, &errs, NULL);
	print_errors(&errs);
	CHECK(cfg != NULL);
	if (cfg) {
		CHECK(cfg->hba != NULL);
		CHECK_INT(hba_rule_count(cfg->hba), 2);
		CHECK_STR(cfg->auth_hba_file, hba);
		/* a copy (admin SET) shares the rules and outlives the original
		 * (fuzz_config found the copy freeing them a second time) */
		struct config *copy = config_dup(cfg);
		config_free(cfg);
		cfg = copy;
		CHECK_INT(hba_rule_count(cfg->hba), 2);
	}
	config_free(cfg);
	config_errors_free(&errs);

	/* not read unless auth_type = hba */
	path = write_file("hba-unused.ini", "[pgbouncer]\nauth_type = md5\nauth_hba_file = /nonexistent\n");
	cfg = config_load(path, &errs, NULL);
	CHECK(cfg != NULL && cfg->hba == NULL);
	config_free(cfg);
	config_errors_free(&errs);

	/* a bad line fails the whole load, with the hba file's name and line */
	hba = write_file("bad-hba.conf", "local all all trust\nhost all +grp 0.0.0.0/0 md5\n");
	path = write_file("hba-bad.ini", "[pgbouncer]\nauth_type = hba\nauth_hba_file = bad-hba.conf\n");
	CHECK(config_load(path, &errs, NULL) == NULL);
	CHECK(has_error(&errs, at(hba, 2), "group membership"));
	config_errors_free(&errs);

	path = write_file("hba-nofile.ini", "[pgbouncer]\nauth_type = hba\nauth_hba_file = /nonexistent/hba.conf\n");
	CHECK(config_load(path, &errs, NULL) == NULL);
	CHECK(has_error(&errs, "/nonexistent/hba.conf: ", "cannot read auth_hba_file"));
	config_errors_free(&errs);
}

/* A key tidepool does not honour is refused, with file:line, unless it is
 * left at its default; so are PAM and LDAP. */
static void test_refused_keys(void)
{
	struct config_errors errs = { 0 };
	struct config *cfg, *set = NULL;
	char *why = NULL;
	const char *path = write_file("refuse-ok.ini",
		"[pgbouncer]\n"
		"sbuf_loopcnt = 9\n"
		"autodb_idle_timeout = 3600\n"
		"auth_ident_file =\n"
		"pool_idle_timeout = 0\n");

	cfg = load_ok(path, NULL);
	if (cfg) {
		CHECK_INT(cfg->sbuf_loopcnt, 9);
		CHECK_INT(config_set_key(cfg, "pool_idle_timeout", "5", &set, &why), CONFIG_SET_INVALID);
		CHECK(set == NULL && why && strstr(why, "not supported"));
		free(why);
		CHECK_INT(config_set_key(cfg, "autodb_idle_timeout", "3600", &set, &why), CONFIG_SET_OK);
		config_free(set);
		config_free(cfg);
	}
	path = write_file("refuse.ini",
		"[pgbouncer]\n"
		"auth_ldap_options = y\n"          /* 2 */
		"listen_port = 6432\n"
		"auth_ldap_options = x\n"           /* 4 */
		"pool_idle_timeout = 60\n"          /* 5 */
		"autodb_idle_timeout = 10\n");      /* 6 */
	CHECK(config_load(path, &errs, NULL) == NULL);
	CHECK(has_error(&errs, at(path, 4), "auth_ldap_options is not supported"));
	CHECK(has_error(&errs, at(path, 5), "pool_idle_timeout is not supported"));
	CHECK(has_error(&errs, at(path, 6), "autodb_idle_timeout is not supported"));
	CHECK(has_error(&errs, at(path, 2), "auth_ldap_options is not supported"));
	CHECK_INT(errs.n, 4);
	config_errors_free(&errs);
	path = write_file("pam.ini", "[pgbouncer]\nlisten_port = 6432\nauth_type = pam\n");
	CHECK(config_load(path, &errs, NULL) == NULL);
	CHECK(has_error(&errs, at(path, 3), "auth_type = pam is not supported"));
	config_errors_free(&errs);
	path = write_file("ldap.ini", "[pgbouncer]\nauth_type = ldap\n");
	CHECK(config_load(path, &errs, NULL) == NULL);
	CHECK(has_error(&errs, at(path, 2), "auth_type = ldap is not supported"));
	config_errors_free(&errs);
}

/* config_dup copies everything; config_set_key changes one key of a copy. */
static void test_dup_and_set_key(void)
{
	const char *path;
	struct config *cfg, *copy, *set = NULL;
	char *why = NULL;

	write_file("set_users.txt", "\"alice\" \"pw1\"\n");
	write_file("set_users2.txt", "\"bob\" \"pw2\"\n");
	path = write_file("set.ini",
			  "[tidepool]\ndefault_pool_size = 7\nauth_file = set_users.txt\n"
			  "server_reset_query = DISCARD ALL\n"
			  "[databases]\nappdb = host=db.example port=5433 load_balance_hosts=disable\n"
			  "[users]\nalice = pool_size=3\n[peers]\n1 = host=10.0.0.1\n");
	cfg = load_ok(path, NULL);
	if (!cfg)
		return;
	copy = config_dup(cfg);
	CHECK(copy->server_reset_query != cfg->server_reset_query);
	CHECK_STR(copy->server_reset_query, "DISCARD ALL");
	CHECK_INT(copy->n_dbs, 1);
	CHECK(copy->dbs[0] != cfg->dbs[0] && copy->dbs[0]->host != cfg->dbs[0]->host);
	CHECK_STR(copy->dbs[0]->host, "db.example");
	CHECK_STR(copy->dbs[0]->load_balance_hosts, "disable");
	CHECK_STR(copy->dbs[0]->file, cfg->dbs[0]->file);
	CHECK(copy->dbs[0]->file != cfg->dbs[0]->file);
	CHECK_INT(config_find_user(copy, "alice")->pool_size, 3);
	CHECK_STR(copy->peers[0]->host, "10.0.0.1");
	CHECK(config_find_auth(copy, "alice") != NULL);
	config_free(copy);   /* the original must be intact: ASan checks */
	CHECK_STR(cfg->dbs[0]->host, "db.example");

	CHECK_INT(config_set_key(cfg, "default_pool_size", "3", &set, &why), CONFIG_SET_OK);
	if (set) {
		CHECK_INT(set->default_pool_size, 3);
		CHECK_INT(cfg->default_pool_size, 7);
		config_free(set);
	}
	CHECK_INT(config_set_key(cfg, "DEFAULT_POOL_SIZE", "many", &set, &why), CONFIG_SET_INVALID);
	CHECK(set == NULL && why && strstr(why, "not an integer"));
	free(why);
	CHECK_INT(config_set_key(cfg, "default_pool_size", "-1", &set, &why), CONFIG_SET_INVALID);
	free(why);
	CHECK_INT(config_set_key(cfg, "pool_mode", "bogus", &set, &why), CONFIG_SET_INVALID);
	free(why);
	CHECK_INT(config_set_key(cfg, "server_reset_query", "a\nb", &set, &why), CONFIG_SET_INVALID);
	free(why);
	CHECK_INT(config_set_key(cfg, "listen_port", "7000", &set, &why), CONFIG_SET_NOT_CHANGEABLE);
	CHECK_INT(config_set_key(cfg, "no_such_key", "1", &set, &why), CONFIG_SET_UNKNOWN);
	/* a cross-key check: hba needs auth_hba_file */
	CHECK_INT(config_set_key(cfg, "auth_type", "hba", &set, &why), CONFIG_SET_INVALID);
	CHECK(why && strstr(why, "auth_hba_file"));
	free(why);
	/* auth_file: relative to the config file, and read again */
	CHECK_INT(config_set_key(cfg, "auth_file", "set_users2.txt", &set, &why), CONFIG_SET_OK);
	if (set) {
		CHECK(config_find_auth(set, "bob") != NULL);
		CHECK(config_find_auth(set, "alice") == NULL);
		CHECK(strstr(set->auth_file, tmpdir) == set->auth_file);
		config_free(set);
	}
	CHECK_INT(config_set_key(cfg, "auth_file", "missing.txt", &set, &why), CONFIG_SET_INVALID);
	CHECK(why && strstr(why, "cannot read auth_file"));
	free(why);
	CHECK(config_find_auth(cfg, "alice") != NULL);
	config_free(cfg);
}

static void test_list_contains(void)
{
	CHECK(config_list_contains("alice", "alice"));
	CHECK(config_list_contains("alice, bob,carol  dave", "bob"));
	CHECK(config_list_contains("alice, bob,carol  dave", "carol"));
	CHECK(config_list_contains("alice, bob,carol  dave", "dave"));
	CHECK(!config_list_contains("alice, bob", "bo"));
	CHECK(!config_list_contains("alice, bob", "Bob"));
	CHECK(!config_list_contains("alice, bobby", "bob"));
	CHECK(!config_list_contains("*", "alice"));
	CHECK(config_list_contains("*", "*"));
	CHECK(!config_list_contains("", "alice"));
	CHECK(!config_list_contains(" , ", ""));
	CHECK(!config_list_contains(NULL, "alice"));
}

static void test_key_table(void)
{
	static const char *const reference[] = {
		"admin_users", "application_name_add_host", "auth_dbname", "auth_file",
		"auth_hba_file", "auth_ident_file", "auth_ldap_options", "auth_query", "auth_type",
		"auth_user", "autodb_idle_timeout", "cancel_wait_timeout", "client_idle_timeout",
		"client_login_timeout", "client_tls13_ciphers", "client_tls_ca_file",
		"client_tls_cert_file", "client_tls_ciphers", "client_tls_dheparams",
		"client_tls_ecdhcurve", "client_tls_key_file", "client_tls_protocols",
		"client_tls_sslmode", "conffile", "default_pool_size", "disable_pqexec", "dns_max_ttl",
		"dns_nxdomain_ttl", "dns_zone_check_period", "idle_transaction_timeout",
		"ignore_startup_parameters", "job_name", "listen_addr", "listen_backlog", "listen_port",
		"log_connections", "log_disconnections", "log_pooler_errors", "log_stats", "logfile",
		"login_notify_message", "max_client_conn", "max_db_client_connections",
		"max_db_connections", "max_packet_size", "max_prepared_statements",
		"max_user_client_connections", "max_user_connections", "min_pool_size", "peer_id",
		"pidfile", "pkt_buf", "pool_idle_timeout", "pool_mode", "query_timeout",
		"query_wait_notify", "query_wait_timeout", "reserve_pool_size", "reserve_pool_timeout",
		"resolv_conf", "sbuf_loopcnt", "scram_iterations", "server_check_delay",
		"server_check_query", "server_connect_timeout", "server_fast_close",
		"server_idle_timeout", "server_lifetime", "server_login_retry", "server_reset_query",
		"server_reset_query_always", "server_round_robin", "server_tls13_ciphers",
		"server_tls_ca_file", "server_tls_cert_file", "server_tls_ciphers",
		"server_tls_key_file", "server_tls_protocols", "server_tls_sslmode", "service_name",
		"so_reuseport", "stats_period", "stats_users", "stats_users_prefix", "suspend_timeout", "syslog",
		"syslog_facility", "syslog_ident", "tcp_defer_accept", "tcp_keepalive", "tcp_keepcnt",
		"tcp_keepidle", "tcp_keepintvl", "tcp_socket_buffer", "tcp_user_timeout",
		"track_extra_parameters", "transaction_timeout", "unix_socket_dir",
		"unix_socket_group", "unix_socket_mode", "user", "verbose",
		/* tidepool's own */
		"metrics_listen_addr", "metrics_port", "shutdown_delay", "shutdown_timeout",
		"shutdown_mode", "readyz_checks_backend", "max_client_prepared_statements",
		"pin_session_state", "expected_replicas", "replicas_dns_name", "workers", "session_state",
	};
	/* not honoured: refused unless left at their default */
	static const char *const refused =
		" auth_ldap_options autodb_idle_timeout pool_idle_timeout ";

	CHECK_INT(config_key_count(), ARRAY_SIZE(reference));
	for (size_t i = 0; i < ARRAY_SIZE(reference); i++)
		CHECK(key_index(reference[i]) != (size_t)-1);
	for (size_t i = 0; i < config_key_count(); i++) {
		const struct config_key_info *k = config_key_at(i);
		char word[64];

		snprintf(word, sizeof(word), " %s ", k->name);
		if (k->implemented != (strstr(refused, word) == NULL))
			fprintf(stderr, "implemented flag wrong for %s\n", k->name);
		CHECK(k->implemented == (strstr(refused, word) == NULL));
		CHECK(k->help && k->help[0] && k->default_value);
		if (i > 0)
			CHECK(strcmp(config_key_at(i - 1)->name, k->name) < 0);
	}
	CHECK(!config_key_at(key_index("listen_port"))->reloadable);
	CHECK(!config_key_at(key_index("pkt_buf"))->reloadable);
	CHECK(config_key_at(key_index("pool_mode"))->reloadable);
	CHECK(config_key_at(config_key_count()) == NULL);
	CHECK_STR(config_pool_mode_name(POOL_MODE_TRANSACTION), "transaction");
	CHECK_STR(config_pool_mode_name(POOL_MODE_UNSET), "");
	CHECK_STR(config_auth_type_name(AUTH_TYPE_SCRAM_SHA_256), "scram-sha-256");
}

/* doc/config.md must mention every key of the table. */
static void test_doc_lists_every_key(void)
{
	const char *me = __FILE__, *tail = strstr(me, "test/unit/test_config.c");
	char *path, *doc;
	FILE *f;
	long len;

	if (!tail)
		return;
	path = xasprintf("%.*sdoc/config.md", (int)(tail - me), me);
	f = fopen(path, "r");
	CHECK(f != NULL);
	if (!f) {
		fprintf(stderr, "cannot open %s\n", path);
		free(path);
		return;
	}
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	doc = xcalloc(1, (size_t)len + 1);
	CHECK_INT(fread(doc, 1, (size_t)len, f), len);
	fclose(f);
	for (size_t i = 0; i < config_key_count(); i++) {
		char *needle = xasprintf("`%s`", config_key_at(i)->name);

		if (!strstr(doc, needle))
			fprintf(stderr, "doc/config.md does not mention %s\n", needle);
		CHECK(strstr(doc, needle) != NULL);
		free(needle);
	}
	free(doc);
	free(path);
}

static void check_split(const char *s, size_t n, const char *const *expect)
{
	struct pq_kv *kv;
	size_t got;
	char *err;

	CHECK(pq_parse_conninfo(s, &kv, &got, &err));
	if (err)
		fprintf(stderr, "unexpected error for [%s]: %s\n", s, err);
	CHECK_INT(got, n);
	for (size_t i = 0; i < n && i < got; i++) {
		CHECK_STR(kv[i].key, expect[2 * i]);
		CHECK_STR(kv[i].val, expect[2 * i + 1]);
	}
	pq_kv_free(kv, got);
}

static void check_split_error(const char *s, const char *want)
{
	struct pq_kv *kv = (struct pq_kv *)1;
	size_t n = 99;
	char *err = NULL;

	CHECK(!pq_parse_conninfo(s, &kv, &n, &err));
	CHECK(kv == NULL && n == 0);
	CHECK(err && strstr(err, want));
	if (err && !strstr(err, want))
		fprintf(stderr, "error for [%s] was: %s\n", s, err);
	free(err);
}

static void test_pq_conninfo(void)
{
	check_split("", 0, NULL);
	check_split("   ", 0, NULL);
	check_split("host=a port=5", 2, (const char *const[]){ "host", "a", "port", "5" });
	check_split(" host = a\tport =5 ", 2, (const char *const[]){ "host", "a", "port", "5" });
	check_split("password='it''s'", 1, (const char *const[]){ "password", "it's" });
	check_split("password='it\\'s'", 1, (const char *const[]){ "password", "it's" });
	check_split("p='a\\\\b' q='c\\d'", 2, (const char *const[]){ "p", "a\\b", "q", "c\\d" });
	check_split("p=a\\b", 1, (const char *const[]){ "p", "a\\b" });
	check_split("q='SELECT 1; SELECT ''x'''", 1,
		    (const char *const[]){ "q", "SELECT 1; SELECT 'x'" });
	check_split("p=a=b x=1 x=2", 3, (const char *const[]){ "p", "a=b", "x", "1", "x", "2" });
	check_split_error("host", "missing \"=\" after \"host\"");
	check_split_error("=x", "missing parameter name");
	check_split_error("host=", "empty value for \"host\"");
	check_split_error("host=''", "empty value");
	check_split_error("host='abc", "unterminated");
	check_split_error("host='a'b", "after the quoted value");
	check_split_error("postgresql://u@h/db", "URI");
	CHECK(pq_is_libpq_keyword("sslmode"));
	CHECK(pq_is_libpq_keyword("host"));
	CHECK(!pq_is_libpq_keyword("pool_size"));
	CHECK(!pq_is_libpq_keyword("SSLMODE"));
	/* The pooler does not link libpq; its list must cover this libpq's. */
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse("", &err);
	CHECK(opts != NULL);
	for (const PQconninfoOption *o = opts; o && o->keyword; o++)
		if (!pq_is_libpq_keyword(o->keyword)) {
			fprintf(stderr, "libpq keyword %s missing from pq.c\n", o->keyword);
			CHECK(false);
		}
	PQconninfoFree(opts);
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 2;
	}
	RUN(test_defaults);
	RUN(test_value_types);
	RUN(test_section_names);
	RUN(test_comments_and_whitespace);
	RUN(test_include);
	RUN(test_include_errors);
	RUN(test_databases);
	RUN(test_errors_all_reported);
	RUN(test_users_and_peers);
	RUN(test_auth_file);
	RUN(test_auth_file_errors);
	RUN(test_hba_file);
	RUN(test_refused_keys);
	RUN(test_dup_and_set_key);
	RUN(test_list_contains);
	RUN(test_key_table);
	RUN(test_doc_lists_every_key);
	RUN(test_pq_conninfo);
	cleanup();
	return UNIT_DONE();
}
