/* main: arguments, start-up order, signals, shutdown, exit. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "cancel.h"
#include "dns.h"
#include "iobuf.h"
#include "janitor.h"
#include "lifecycle.h"
#include "listen.h"
#include "log.h"
#include "loop.h"
#include "params.h"
#include "pool.h"
#include "reload.h"
#include "server.h"
#include "client.h"

#include "autoconf.h"

struct options {
	const char *config_path;
	bool daemon, check, quiet;
	int verbose;
};

static bool shutting_down;
static usec_t shutdown_started;
static bool paused, suspended;
static long long start_wall;
static unsigned reload_count;
static bool last_reload_ok = true;

void lifecycle_set_paused(bool on) { paused = on; }
bool lifecycle_paused(void) { return paused; }
void lifecycle_set_suspended(bool on) { suspended = on; }
bool lifecycle_suspended(void) { return suspended; }
bool lifecycle_shutting_down(void) { return shutting_down; }
long long lifecycle_start_time(void) { return start_wall; }
unsigned lifecycle_reload_count(void) { return reload_count; }
bool lifecycle_last_reload_ok(void) { return last_reload_ok; }

bool lifecycle_reload(char **errors)
{
	reload_count++;
	last_reload_ok = reload_config(errors);
	return last_reload_ok;
}

static void usage(FILE *f)
{
	fprintf(f,
		"tidepool %s - a PostgreSQL connection pooler\n\n"
		"Usage: tidepool [OPTIONS] CONFIG\n\n"
		"  -d, --daemon    run in the background (needs pidfile)\n"
		"  -v, --verbose   more log output (repeat for more)\n"
		"  -q, --quiet     only warnings and errors\n"
		"      --check     check the configuration, print every problem, exit 0 or 1\n"
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
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "dvqVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd': o->daemon = true; break;
		case 'v': o->verbose++; break;
		case 'q': o->quiet = true; break;
		case 'C': o->check = true; break;
		case 'V': printf("tidepool %s\n", PACKAGE_VERSION); exit(0);
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(1);
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		exit(1);
	}
	o->config_path = argv[optind];
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

static void close_idle_clients(void)
{
	struct list_node *l, *n, *tmp;
	for (l = pool_list()->next; l != pool_list(); l = l->next) {
		struct pool *p = list_entry(l, struct pool, node);
		list_for_each_safe(n, tmp, &p->clients[CL_IDLE])
			client_fail(list_entry(n, struct client, node), "57P01", "tidepool is shutting down");
	}
	list_for_each_safe(n, tmp, pool_login_clients())
		client_fail(list_entry(n, struct client, node), "57P01", "tidepool is shutting down");
}

/* Runs after every janitor pass: finishes a shutdown once nothing is active. */
static void shutdown_progress(void)
{
	if (!shutting_down)
		return;
	close_idle_clients();
	pool_close_idle_servers();
	usec_t limit = config_current()->shutdown_timeout;
	bool timed_out = limit > 0 && loop_now() - shutdown_started >= limit;
	if (pool_all_idle() || timed_out) {
		if (timed_out)
			log_warning("shutdown_timeout reached with transactions still open");
		loop_exit();
	}
}

static void begin_shutdown(const char *why)
{
	if (shutting_down) {
		log_info("%s again: exiting now", why);
		loop_exit();
		return;
	}
	log_info("%s: shutting down (new connections are refused)", why);
	shutting_down = true;
	shutdown_started = loop_now();
	listen_stop();
	shutdown_progress();
}

static void kick_all_pools(void)
{
	struct list_node *l;
	for (l = pool_list()->next; l != pool_list(); l = l->next)
		pool_kick(list_entry(l, struct pool, node));
}

void lifecycle_shutdown(enum shutdown_kind kind, const char *why)
{
	if (kind == SHUTDOWN_IMMEDIATE) {
		log_info("%s: exiting now", why);
		loop_exit();
		return;
	}
	/* The drain and wait modes share one path for now: stop accepting,
	 * close idle clients, exit once no transaction is open. */
	begin_shutdown(why);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	switch (sig) {
	case SIGHUP:
		log_info("SIGHUP: reloading configuration");
		(void)lifecycle_reload(NULL);
		return;
	case SIGTERM:
		begin_shutdown("SIGTERM");
		return;
	case SIGINT:
		begin_shutdown("SIGINT");
		return;
	case SIGQUIT:
		log_info("SIGQUIT: exiting now");
		loop_exit();
		return;
	default:
		return;
	}
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	parse_args(argc, argv, &o);
	struct config *cfg = load_or_exit(&o);
	if (o.check) {
		printf("%s: configuration is valid\n", o.config_path);
		config_free(cfg);
		return 0;
	}
	log_set_verbosity(o.verbose + cfg->verbose, o.quiet);
	if (!log_setup(cfg->logfile, cfg->syslog, cfg->syslog_ident, cfg->syslog_facility))
		return 1;
	reload_install(cfg);
	start_wall = loop_wall_now();
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit(cfg);
	if (o.daemon)
		daemonize(cfg);
	write_pidfile(cfg->pidfile);
	params_set_tracked(cfg->track_extra_parameters);
	iobuf_set_default_size((uint32_t)cfg->pkt_buf);
	loop_init();
	if (!listen_start(cfg))
		return 1;
	static const int sigs[] = { SIGHUP, SIGTERM, SIGINT, SIGQUIT };
	struct event *sigev[ARRAY_SIZE(sigs)];
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++) {
		sigev[i] = evsignal_new(loop_base(), sigs[i], on_signal, NULL);
		event_add(sigev[i], NULL);
	}
	if (!dns_init(kick_all_pools))
		log_warning("DNS resolution is not available: only IP addresses and unix sockets work");
	janitor_start(shutdown_progress);
	log_info("tidepool %s started (pid %d)", PACKAGE_VERSION, (int)getpid());
	loop_run();
	log_info("tidepool stopped");
	janitor_stop();
	listen_stop();
	dns_free();
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		event_free(sigev[i]);
	if (config_current()->pidfile[0])
		unlink(config_current()->pidfile);
	pool_free_all();
	loop_free();
	iobuf_free_cache();
	reload_free();
	return 0;
}
