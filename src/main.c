/* main: arguments, start-up order, signals, the actions behind the
 * lifecycle state (which lifecycle.c holds: shutdown phase, pause/suspend
 * flags, reload counts), exit.
 * Shutdown kinds: drain (SIGTERM by default) closes each client at its
 * transaction end and gives up after shutdown_timeout; wait for servers
 * (SIGINT) drains without delay or time limit; wait for clients
 * (shutdown_mode = wait_for_clients) only stops accepting. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "auth.h"
#include "budget.h"
#include "config.h"
#include "crypto.h"
#include "cancel.h"
#include "dns.h"
#include "http.h"
#include "iobuf.h"
#include "janitor.h"
#include "lifecycle.h"
#include "listen.h"
#include "log.h"
#include "conn.h"
#include "loop.h"
#include "metrics.h"
#include "params.h"
#include "pool.h"
#include "reload.h"
#include "server.h"
#include "workers.h"
#include "client.h"

#include "autoconf.h"

struct options {
	const char *config_path;
	const char *passwd_user;   /* --passwd USER */
	bool daemon, check, quiet, upgrade;
	const char *user;          /* -u: overrides the user key */
	int verbose;
};

/* Shutdown moves through three phases: accepting (during shutdown_delay,
 * /readyz already 503), closed (listener gone; in the drain kinds clients
 * are closed at their transaction boundaries), then exit. */
struct shutdown_state {
	bool listener_closed;
	usec_t closed_at;          /* when the listener closed (shutdown_timeout runs from here) */
	struct event *delay_timer;
};

static struct shutdown_state sd;

/* 1..n in a worker of `workers = n` (whose supervisor owns metrics_port and
 * the pidfile), 0 in a process on its own. */
static int worker_id;

/* lifecycle's actions: a reload, and a snapshot from admin SET. */
static bool reload_action(char **errors)
{
	bool ok = reload_config(errors);
	if (ok && !worker_id)
		http_apply_config(config_current());
	return ok;
}

static void install_action(struct config *cfg)
{
	reload_swap(cfg);
	if (!worker_id)
		http_apply_config(config_current());
}

/* SUSPEND: the listener stops, sockets park once they have input; RESUME
 * undoes both and reschedules the pools. */
static void suspend_action(bool on)
{
	if (on) {
		conn_suspend(true);
		listen_pause(true);
	} else {
		listen_pause(false);
		conn_suspend(false);
	}
	pool_suspend_changed(on);
}

static void usage(FILE *f)
{
	fprintf(f,
		"tidepool %s - a PostgreSQL connection pooler\n\n"
		"Usage: tidepool [OPTIONS] CONFIG\n\n"
		"  -d, --daemon    run in the background (needs pidfile)\n"
		"  -v, --verbose   more log output (repeat for more)\n"
		"  -q, --quiet     log nothing to standard error (logfile and syslog still get it)\n"
		"  -u, --user NAME switch to this user after start (as the user key)\n"
		"      --check     check the configuration, print every problem, exit 0 or 1\n"
		"      --upgrade   take over the listening sockets of the running tidepool (workers\n"
		"                  and pidfile needed), start new workers, then drain the old ones\n"
		"      --passwd USER  read a password from stdin and print a userlist.txt line\n"
		"                  for USER with a SCRAM-SHA-256 verifier (4096 iterations)\n"
		"  -V, --version   print the version and exit\n"
		"  -h, --help      this help\n",
		PACKAGE_VERSION);
}

static void parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "daemon", no_argument, NULL, 'd' }, { "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' }, { "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' }, { "check", no_argument, NULL, 'C' },
		{ "passwd", required_argument, NULL, 'P' },
		{ "reboot", no_argument, NULL, 'R' }, { "user", required_argument, NULL, 'u' },
		{ "upgrade", no_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "dvqVhRu:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd': o->daemon = true; break;
		case 'v': o->verbose++; break;
		case 'q': o->quiet = true; break;
		case 'C': o->check = true; break;
		case 'P': o->passwd_user = optarg; break;
		case 'U': o->upgrade = true; break;
		case 'V': printf("tidepool %s\n", PACKAGE_VERSION); exit(0);
		case 'h': usage(stdout); exit(0);
		case 'R':
			fprintf(stderr, "tidepool: -R/--reboot (online restart with socket hand-over) is a PgBouncer "
				"option tidepool does not have; with workers, --upgrade starts a new binary on the "
				"running one's sockets (doc/scaling.md)\n");
			exit(1);
		case 'u': o->user = optarg; break;
		default: usage(stderr); exit(1);
		}
	}
	if (o->passwd_user && optind == argc)
		return;
	if (optind != argc - 1) {
		usage(stderr);
		exit(1);
	}
	o->config_path = argv[optind];
}

/* --passwd: the password comes from stdin (one line; the newline is not
 * part of it) so it never shows in the process list or shell history. */
static int print_userlist_line(const char *user)
{
	char pw[1024];
	if (!fgets(pw, sizeof(pw), stdin)) {
		fprintf(stderr, "tidepool: --passwd: no password on standard input\n");
		return 1;
	}
	size_t n = strlen(pw);
	if (n == sizeof(pw) - 1 && pw[n - 1] != '\n') {
		fprintf(stderr, "tidepool: --passwd: password too long (at most %zu bytes)\n", sizeof(pw) - 2);
		return 1;
	}
	while (n > 0 && (pw[n - 1] == '\n' || pw[n - 1] == '\r'))
		pw[--n] = '\0';
	if (n == 0) {
		fprintf(stderr, "tidepool: --passwd: empty password\n");
		return 1;
	}
	char *secret = auth_scram_make_secret(pw, SCRAM_DEFAULT_ITERATIONS);
	crypto_wipe(pw, sizeof(pw));
	if (!secret) {
		fprintf(stderr, "tidepool: --passwd: could not compute the verifier\n");
		return 1;
	}
	putchar('"');
	for (const char *p = user; *p; p++) {
		if (*p == '"')
			putchar('"');   /* userlist.txt doubles quotes */
		putchar(*p);
	}
	printf("\" \"%s\"\n", secret);
	free(secret);
	return fflush(stdout) == 0 ? 0 : 1;
}

static void warn_cb(const char *file, int line, const char *msg)
{
	fprintf(stderr, "%s:%d: warning: %s\n", file, line, msg);
}

static struct config *load_or_exit(const struct options *o)
{
	struct config_errors errs = { 0 };
	struct config *cfg = config_load(o->config_path, &errs, o->check ? warn_cb : reload_warn);
	if (!cfg) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msgs[i]);
		config_errors_free(&errs);
		exit(1);
	}
	config_errors_free(&errs);
	return cfg;
}

/* Room for every client and server socket, as far as the hard limit allows. */
static void raise_fd_limit(const struct config *cfg)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	rlim_t want = (rlim_t)cfg->max_client_conn + 1000;
	for (size_t i = 0; i < cfg->n_dbs; i++)
		want += (rlim_t)(cfg->dbs[i]->pool_size > 0 ? cfg->dbs[i]->pool_size : cfg->default_pool_size);
	if (rl.rlim_cur >= want)
		return;
	rlim_t got = want <= rl.rlim_max ? want : rl.rlim_max;
	rl.rlim_cur = got;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || got < want)
		log_warning("open file limit is %llu, but max_client_conn and the pools need %llu",
			    (unsigned long long)got, (unsigned long long)want);
}

static void write_pidfile(const char *path)
{
	if (!path[0])
		return;
	FILE *f = fopen(path, "w");
	if (!f) {
		log_fatal("cannot write pidfile %s: %s", path, strerror(errno));
		exit(1);
	}
	fprintf(f, "%d\n", (int)getpid());
	fclose(f);
}

static void daemonize(const struct config *cfg)
{
	if (!cfg->pidfile[0]) {
		fprintf(stderr, "tidepool: --daemon needs pidfile in the configuration\n");
		exit(1);
	}
	if (daemon(0, 0) < 0) {
		perror("daemon");
		exit(1);
	}
}

static const char *shutdown_kind_name(enum shutdown_kind k)
{
	switch (k) {
	case SHUTDOWN_DRAIN: return "drain";
	case SHUTDOWN_WAIT_FOR_SERVERS: return "wait for servers";
	case SHUTDOWN_WAIT_FOR_CLIENTS: return "wait for clients";
	case SHUTDOWN_IMMEDIATE: return "immediate";
	}
	return "?";
}

/* One log line per phase, with what is left. */
static void log_phase(enum log_level lvl, const char *what)
{
	int linked = 0, servers = 0;
	struct list_node *l;
	for (l = pool_list()->next; l != pool_list(); l = l->next) {
		struct pool *p = list_entry(l, struct pool, node);
		linked += p->n_clients[CL_ACTIVE];
		servers += pool_total_servers(p);
	}
	log_at(lvl, "shutdown (%s): %s; %d clients left (%d linked to a server), %d servers",
	       shutdown_kind_name(lifecycle_shutdown_kind()), what, pool_total_clients(), linked, servers);
}

static void close_for_shutdown(struct client *c)
{
	client_fail(c, "57P01", "tidepool is shutting down");
}

/* A drain pass: clients outside a transaction are closed with 57P01 (idle
 * ones, and in session mode those linked to a server between
 * transactions). Bounded by shutdown_timeout, nothing that is already
 * under way is cut: a client still logging in finishes its login (cut off
 * halfway, a driver reports a failed connection instead of reconnecting);
 * one waiting for a server has sent its query, which runs. An idle client
 * is closed once it has been idle for DRAIN_IDLE_GRACE: one that just
 * logged in (the last connections taken from the queue) or just ended its
 * transaction is most likely about to send its next message (often
 * Terminate), and a transaction it sends after the drain began runs
 * (client.c refuses only a second one). That is what makes a rolling
 * restart fail no transaction of clients that connect per transaction. */
#define DRAIN_IDLE_GRACE USEC_PER_SEC
static void close_at_boundaries(void)
{
	struct list_node *l, *n, *tmp;
	for (l = pool_list()->next; l != pool_list(); l = l->next) {
		struct pool *p = list_entry(l, struct pool, node);
		list_for_each_safe(n, tmp, &p->clients[CL_IDLE]) {
			struct client *c = list_entry(n, struct client, node);
			if (loop_now() - c->state_since >= DRAIN_IDLE_GRACE)
				close_for_shutdown(c);
		}
		list_for_each_safe(n, tmp, &p->clients[CL_ACTIVE]) {
			struct client *c = list_entry(n, struct client, node);
			if (client_between_transactions(c))
				close_for_shutdown(c);
		}
	}
}

/* shutdown_timeout: whatever is left is closed, transactions or not. */
static void close_all_clients(void)
{
	struct list_node *l;
	while (!list_empty(pool_login_clients()))
		close_for_shutdown(list_entry(list_first(pool_login_clients()), struct client, node));
	for (l = pool_list()->next; l != pool_list(); l = l->next) {
		struct pool *p = list_entry(l, struct pool, node);
		for (int st = 0; st < CL_STATE_COUNT; st++)
			while (st != CL_CLOSED && !list_empty(&p->clients[st]))
				close_for_shutdown(list_entry(list_first(&p->clients[st]), struct client, node));
	}
}

/* Runs after every janitor pass and at each phase change: closes clients
 * at their boundaries and exits once none is left (or time is up). */
static void shutdown_progress(void)
{
	if (!lifecycle_shutting_down() || !sd.listener_closed)
		return;
	if (lifecycle_draining()) {
		close_at_boundaries();
		pool_close_idle_servers();
	}
	if (pool_total_clients() == 0 && conn_lingering() == 0) {
		log_phase(LOG_LVL_INFO, "no client left, exiting");
		loop_exit();
		return;
	}
	usec_t limit = config_current()->shutdown_timeout;
	if (lifecycle_shutdown_kind() == SHUTDOWN_DRAIN && limit > 0 && loop_now() - sd.closed_at >= limit) {
		log_phase(LOG_LVL_WARNING, "shutdown_timeout reached, closing the remaining clients and exiting");
		close_all_clients();
		loop_exit();
	}
}

/* SHUTDOWN WAIT_FOR_CLIENTS/WAIT_FOR_SERVERS (and their signals) after the
 * TCP listeners closed: the unix socket takes console logins only. */
static bool console_only(void)
{
	return lifecycle_shutting_down() && lifecycle_shutdown_kind() != SHUTDOWN_DRAIN && sd.listener_closed;
}

static void close_listener(void)
{
	if (!worker_id)   /* a worker's sockets stay open in its siblings */
		listen_take_queued();
	/* Waiting for clients or servers (PgBouncer 1.25): the unix socket
	 * stays open for the console; other logins there are refused. */
	if (lifecycle_shutdown_kind() != SHUTDOWN_DRAIN && !worker_id)
		listen_close_tcp();
	else
		listen_close_public();
	sd.listener_closed = true;
	sd.closed_at = loop_now();
	if (lifecycle_shutdown_kind() != SHUTDOWN_WAIT_FOR_CLIENTS)
		lifecycle_begin_draining();
	log_phase(LOG_LVL_INFO, lifecycle_draining() ? "listener closed, closing each client at its transaction end"
					    : "listener closed, waiting for clients to disconnect");
	shutdown_progress();
}

static void on_delay_over(evutil_socket_t fd, short what, void *arg)
{
	if (lifecycle_shutting_down() && !sd.listener_closed)
		close_listener();
}

static void begin_shutdown(enum shutdown_kind kind, const char *why)
{
	if (lifecycle_shutting_down()) {
		log_info("%s during shutdown: exiting now", why);
		loop_exit();
		return;
	}
	lifecycle_begin_shutdown(kind);
	log_info("%s: shutting down (%s); /readyz now answers 503", why, shutdown_kind_name(kind));
	usec_t delay = kind == SHUTDOWN_WAIT_FOR_SERVERS ? 0 : config_current()->shutdown_delay;
	if (delay <= 0) {
		close_listener();
		return;
	}
	log_phase(LOG_LVL_INFO, "still accepting new clients during shutdown_delay");
	struct timeval tv = { (time_t)(delay / USEC_PER_SEC), (suseconds_t)(delay % USEC_PER_SEC) };
	if (event_base_once(loop_base(), -1, EV_TIMEOUT, on_delay_over, NULL, &tv) < 0)
		close_listener();
}

static void kick_all_pools(void)
{
	struct list_node *l;
	for (l = pool_list()->next; l != pool_list(); l = l->next)
		pool_kick(list_entry(l, struct pool, node));
}

static enum shutdown_kind requested_kind;
static char requested_why[64];

static void deferred_shutdown(void *arg)
{
	begin_shutdown(requested_kind, requested_why);
}

/* From the admin console (lifecycle_shutdown): the drain starts after the
 * current callbacks, so the console's own reply is queued before its
 * client may be closed. */
static void shutdown_action(enum shutdown_kind kind, const char *why)
{
	if (kind == SHUTDOWN_IMMEDIATE) {
		log_info("%s: exiting now", why);
		loop_exit();
		return;
	}
	requested_kind = kind;
	strlcpy_safe(requested_why, why, sizeof(requested_why));
	loop_defer(deferred_shutdown, NULL);
}

/* SIGUSR1 / SIGUSR2: PgBouncer's PAUSE and RESUME (RESUME also ends a
 * SUSPEND), through the same calls as the admin console's commands. */
static void pause_signal(bool pause)
{
	log_info("%s: %s every pool", pause ? "SIGUSR1" : "SIGUSR2", pause ? "pausing" : "resuming");
	if (!pause && lifecycle_suspended())
		lifecycle_set_suspended(false);
	lifecycle_set_paused(pause);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	switch (sig) {
	case SIGHUP:
		log_info("SIGHUP: reloading configuration");
		(void)lifecycle_reload(NULL);
		return;
	case SIGTERM:
		begin_shutdown(strcmp(config_current()->shutdown_mode, "wait_for_clients") == 0
				       ? SHUTDOWN_WAIT_FOR_CLIENTS : SHUTDOWN_DRAIN, "SIGTERM");
		return;
	case SIGINT:
		begin_shutdown(SHUTDOWN_WAIT_FOR_SERVERS, "SIGINT");
		return;
	case SIGQUIT:
		log_info("SIGQUIT: exiting now");
		loop_exit();
		return;
	case SIGUSR1:
	case SIGUSR2:
		pause_signal(sig == SIGUSR1);
		return;
	default:
		return;
	}
}

static const int handled_signals[] = { SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2 };
static struct event *signal_events[ARRAY_SIZE(handled_signals)];

static void signals_start(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(handled_signals); i++) {
		signal_events[i] = evsignal_new(loop_base(), handled_signals[i], on_signal, NULL);
		event_add(signal_events[i], NULL);
	}
}

static void signals_stop(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(handled_signals); i++) {
		event_free(signal_events[i]);
		signal_events[i] = NULL;
	}
}

/* user: switch to that account once the sockets are open, as PgBouncer
 * does; only root can, or the account itself (nothing to do). */
static bool drop_privileges(const char *user)
{
	if (!user[0])
		return true;
	struct passwd *pw = getpwnam(user);
	if (!pw) {
		log_fatal("user: no such user \"%s\"", user);
		return false;
	}
	if (getuid() == pw->pw_uid)
		return true;
	if (getuid() != 0) {
		log_fatal("user = %s: only root can change to another user", user);
		return false;
	}
	if (setgid(pw->pw_gid) < 0 || initgroups(user, pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
		log_fatal("cannot change to user %s: %s", user, strerror(errno));
		return false;
	}
	log_info("running as user %s", user);
	return true;
}

/* --upgrade: the running supervisor is the pidfile's. */
static bool take_over(const struct config *cfg, int n_workers)
{
	if (n_workers < 2 || !cfg->pidfile[0]) {
		log_fatal("--upgrade needs workers (2 or more) and a pidfile: the running supervisor hands "
			  "over its sockets");
		return false;
	}
	FILE *f = fopen(cfg->pidfile, "r");
	long pid = 0;
	if (!f || fscanf(f, "%ld", &pid) != 1 || pid <= 0) {
		log_fatal("--upgrade: no process id in pidfile %s", cfg->pidfile);
		if (f)
			fclose(f);
		return false;
	}
	fclose(f);
	return workers_takeover(pid, cfg);
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	parse_args(argc, argv, &o);
	if (o.passwd_user)
		return print_userlist_line(o.passwd_user);
	struct config *cfg = load_or_exit(&o);
	char tls_err[800];
	if (o.check) {
		bool tls_ok = reload_tls(cfg, true, tls_err, sizeof(tls_err));
		config_free(config_swap(cfg));   /* the first snapshot: none before it */
		if (!tls_ok) {
			reload_free();
			fprintf(stderr, "%s: TLS: %s\n", o.config_path, tls_err);
			return 1;
		}
		printf("%s: configuration is valid\n", o.config_path);
		budget_print_check(cfg);
		budget_free();
		reload_free();
		return 0;
	}
	log_set_verbosity(o.verbose + cfg->verbose, o.quiet);
	if (!log_setup(cfg->logfile, cfg->syslog, cfg->syslog_ident, cfg->syslog_facility))
		return 1;
	config_free(config_swap(cfg));   /* the first snapshot: none before it */
	if (!reload_tls(cfg, true, tls_err, sizeof(tls_err))) {
		log_fatal("TLS: %s", tls_err);
		reload_free();
		return 1;
	}
	static const struct lifecycle_actions actions = {
		.paused_changed = pool_global_pause_changed, .suspended_changed = suspend_action,
		.shutdown = shutdown_action, .reload = reload_action, .install = install_action,
	};
	lifecycle_init(&actions);
	static const struct client_console_ops console = {
		.is_console_db = admin_is_console_db, .trusts_peer = admin_trusts_peer,
		.login = admin_login, .input = admin_input, .closed = admin_client_closed,
	};
	static const struct client_hooks client_hooks = { .draining = lifecycle_draining,
							  .shutting_down = console_only,
							  .console = &console };
	client_set_hooks(&client_hooks);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit(cfg);
	if (o.daemon)
		daemonize(cfg);
	int n_workers = config_workers(cfg);
	if (o.upgrade && !take_over(cfg, n_workers))
		return 1;
	write_pidfile(cfg->pidfile);
	if (n_workers > 1) {
		int code = 0;
		if ((!o.upgrade && !listen_open(cfg)) || !drop_privileges(o.user ? o.user : cfg->user))
			return 1;
		worker_id = workers_run(cfg, n_workers, &code);
		if (worker_id == 0) {
			if (cfg->pidfile[0] && !workers_handed_over())
				unlink(cfg->pidfile);
			reload_free();
			return code;
		}
		struct config_worker me;
		workers_identity(worker_id, &me);
		config_set_worker(&me);
		config_apply_worker(cfg);
	}
	params_set_tracked(cfg->track_extra_parameters);
	iobuf_set_default_size((uint32_t)cfg->pkt_buf);
	loop_init();
	pool_init();
	/* Before the listener opens: a signal sent as soon as the port answers
	 * must find its handler (it runs once the loop does), not kill us. */
	signals_start();
	if (worker_id) {
		char name[96];
		listen_serve(client_accept, true);
		snprintf(name, sizeof(name), "%s.%d/.s.PGSQL.%d", workers_prefix(), worker_id, cfg->listen_port);
		if (!listen_add_abstract(name, cfg->listen_backlog))
			return 1;
		snprintf(name, sizeof(name), "%s.%d/http", workers_prefix(), worker_id);
		if (!http_start_abstract(name))
			return 1;
		log_info("worker %d of %d", worker_id, n_workers);
	} else {
		/* the HTTP endpoint first: once the pooler's port answers, the
		 * probes do too */
		(void)http_start(cfg);
		if (!listen_start(cfg, client_accept))
			return 1;
		if (!drop_privileges(o.user ? o.user : cfg->user))
			return 1;
	}
	if (!dns_init(kick_all_pools, pool_dns_changed))
		log_warning("DNS resolution is not available: only IP addresses and unix sockets work");
	janitor_add_tick(admin_tick);
	janitor_add_tick(shutdown_progress);
	budget_init();
	janitor_start();
	listen_resolve_numeric_only();
	log_info("tidepool %s started (pid %d)", PACKAGE_VERSION, (int)getpid());
	loop_run();
	log_info("tidepool stopped");
	janitor_stop();
	listen_stop();
	http_stop();
	dns_free();
	signals_stop();
	if (config_current()->pidfile[0] && !worker_id)
		unlink(config_current()->pidfile);
	pool_free_all();
	conn_linger_free_all();
	budget_free();
	loop_free();
	iobuf_free_cache();
	metrics_free();
	reload_free();
	return 0;
}
