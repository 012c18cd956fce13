/* world: see world.h. Set up as main.c does, except that the lifecycle
 * actions (admin SHUTDOWN, SUSPEND, RELOAD, SET) do nothing, so one run
 * cannot stop the next from reaching the pools. */
#include "world.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin.h"
#include "budget.h"
#include "client.h"
#include "config.h"
#include "iobuf.h"
#include "lifecycle.h"
#include "log.h"
#include "loop.h"
#include "params.h"
#include "pool.h"
#include "pool.h"
#include "proto.h"
#include "reload.h"

#define FAKE_PORT 5999
#define MAX_FAKES 64

static char dir[64];
static enum world_backend backend_mode;
static const uint8_t *script;
static size_t script_len;
static bool script_sent;
static unsigned long moved;   /* bytes the harness moved; unchanged = quiet */

struct fake {
	int fd;
	struct event *ev;
	uint8_t in[65536];
	size_t in_len;
	bool started;
	bool scripted;   /* sent the run's script; otherwise polite */
};
static struct fake *fakes[MAX_FAKES];
static int client_fd = -1;   /* the test's end of the current client */

/* ---- lifecycle actions: nothing global changes between runs ---- */
static void no_flag(bool on) { (void)on; }
static void no_shutdown(enum shutdown_kind kind, const char *why) { (void)kind; (void)why; }
static bool no_reload(char **errors) { if (errors) *errors = NULL; return true; }
static void drop_snapshot(struct config *cfg) { config_free(cfg); }

/* ---- the fake PostgreSQL ---- */
static void fake_send(struct fake *f, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(f->fd, p, n);
		if (w <= 0)
			return;   /* full or gone: a fuzz run does not wait */
		p += w;
		n -= (size_t)w;
		moved += (size_t)w;
	}
}

static void fake_msg(struct fake *f, uint8_t type, const void *body, size_t n)
{
	uint8_t buf[512];
	struct proto_writer w;
	proto_writer_init(&w, buf, sizeof(buf));
	proto_begin(&w, type);
	proto_put_bytes(&w, body, n);
	proto_end(&w);
	fake_send(f, buf, w.len);
}

static void fake_login(struct fake *f)
{
	uint8_t buf[512];
	struct proto_writer w;
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_auth(&w, PQ_AUTH_OK, NULL, 0);
	proto_write_parameter_status(&w, "server_version", "16.0");
	proto_write_parameter_status(&w, "client_encoding", "UTF8");
	proto_write_parameter_status(&w, "standard_conforming_strings", "on");
	proto_write_backend_key(&w, 4242, 1234);
	proto_write_ready(&w, 'I');
	fake_send(f, buf, w.len);
}

/* Answers one message as PostgreSQL would, closely enough for tidepool. */
static void fake_answer(struct fake *f, uint8_t type)
{
	switch (type) {
	case 'Q':
		fake_msg(f, 'C', "SELECT 0", 9);
		fake_msg(f, 'Z', "I", 1);
		break;
	case 'P': fake_msg(f, '1', NULL, 0); break;
	case 'B': fake_msg(f, '2', NULL, 0); break;
	case 'D': fake_msg(f, 'n', NULL, 0); break;
	case 'E': fake_msg(f, 'C', "SELECT 0", 9); break;
	case 'C': fake_msg(f, '3', NULL, 0); break;
	case 'S': fake_msg(f, 'Z', "I", 1); break;
	case 'F': fake_msg(f, 'V', "\xff\xff\xff\xff", 4); fake_msg(f, 'Z', "I", 1); break;
	default: break;   /* Flush, CopyData/Done/Fail, Terminate */
	}
}

static void fake_close(struct fake *f)
{
	for (int i = 0; i < MAX_FAKES; i++)
		if (fakes[i] == f)
			fakes[i] = NULL;
	event_free(f->ev);
	close(f->fd);
	free(f);
}

/* The startup packet (or SSLRequest / CancelRequest) at the head of in. */
static bool fake_startup(struct fake *f, uint32_t len)
{
	uint32_t code = len >= 8 ? (uint32_t)f->in[4] << 24 | (uint32_t)f->in[5] << 16 | (uint32_t)f->in[6] << 8 | f->in[7] : 0;
	if (code == PROTO_SSL_REQUEST || code == PROTO_GSSENC_REQUEST) {
		fake_send(f, (const uint8_t *)"N", 1);
		return true;
	}
	if (code == PROTO_CANCEL_REQUEST)
		return false;
	f->started = true;
	/* The script goes to the first server of a run; later ones (a retry
	 * after the scripted login failed) log in politely, so a failing script
	 * does not make the pool reconnect for ever (server_login_retry = 0). */
	f->scripted = backend_mode == WORLD_BACKEND_SCRIPT && !script_sent;
	if (f->scripted) {
		script_sent = true;
		fake_send(f, script, script_len);
	} else {
		fake_login(f);
	}
	return true;
}

/* Consumes whole messages from in; false when the connection should go. */
static bool fake_consume(struct fake *f)
{
	size_t pos = 0;
	for (;;) {
		size_t left = f->in_len - pos;
		const uint8_t *p = f->in + pos;
		uint32_t len;
		if (!f->started) {
			if (left < 4)
				break;
			len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
			if (len < 8 || len > sizeof(f->in))
				return false;
			if (left < len)
				break;
			memmove(f->in, p, left);   /* fake_startup reads from in[0] */
			f->in_len = left;
			pos = 0;
			if (!fake_startup(f, len))
				return false;
			pos = len;
			continue;
		}
		struct proto_header h;
		if (proto_read_header(p, left, &h) != PROTO_OK)
			break;
		if (h.len + 1 > sizeof(f->in))
			return false;
		if (left < h.len + 1)
			break;
		if (h.type == 'X')
			return false;
		if (!f->scripted)
			fake_answer(f, h.type);
		pos += h.len + 1;
	}
	memmove(f->in, f->in + pos, f->in_len - pos);
	f->in_len -= pos;
	return true;
}

static void on_fake_read(evutil_socket_t fd, short what, void *arg)
{
	struct fake *f = arg;
	ssize_t r = read(fd, f->in + f->in_len, sizeof(f->in) - f->in_len);
	if (r <= 0) {
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		fake_close(f);
		return;
	}
	moved += (size_t)r;
	f->in_len += (size_t)r;
	if (!fake_consume(f))
		fake_close(f);
}

static void on_fake_accept(evutil_socket_t lfd, short what, void *arg)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	int slot = -1;
	for (int i = 0; i < MAX_FAKES && slot < 0; i++)
		if (!fakes[i])
			slot = i;
	if (slot < 0) {
		close(fd);
		return;
	}
	struct fake *f = calloc(1, sizeof(*f));
	f->fd = fd;
	f->ev = event_new(loop_base(), fd, EV_READ | EV_PERSIST, on_fake_read, f);
	event_add(f->ev, NULL);
	fakes[slot] = f;
	moved++;
}

static void fake_listen(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/.s.PGSQL.%d", dir, FAKE_PORT);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 64) < 0)
		abort();
	struct event *ev = event_new(loop_base(), fd, EV_READ | EV_PERSIST, on_fake_accept, NULL);
	event_add(ev, NULL);
}

/* ---- the world ---- */
static void write_config(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		abort();
	fprintf(f,
		"[databases]\n"
		"db = host=%s port=%d dbname=db\n"
		"pwdb = host=%s port=%d dbname=db user=bob password=pencil\n"
		"sess = host=%s port=%d dbname=db pool_mode=session\n"
		"[pgbouncer]\n"
		"auth_type = trust\n"
		"pool_mode = transaction\n"
		"max_prepared_statements = 8\n"
		"server_login_retry = 0\n"
		"default_pool_size = 4\n"
		"server_round_robin = 0\n",
		dir, FAKE_PORT, dir, FAKE_PORT, dir, FAKE_PORT);
	fclose(f);
}

void world_init(enum world_backend mode)
{
	backend_mode = mode;
	snprintf(dir, sizeof(dir), "/tmp/tidepool-fuzz-world.XXXXXX");
	if (!mkdtemp(dir))
		abort();
	char path[128];
	snprintf(path, sizeof(path), "%s/tidepool.ini", dir);
	write_config(path);
	struct config_errors errs = { 0 };
	struct config *cfg = config_load(path, &errs, NULL);
	if (!cfg) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msgs[i]);
		abort();
	}
	log_set_verbosity(0, getenv("WORLD_LOG") == NULL);
	config_free(config_swap(cfg));
	static const struct lifecycle_actions actions = {
		.paused_changed = no_flag, .suspended_changed = no_flag, .shutdown = no_shutdown,
		.reload = no_reload, .install = drop_snapshot,
	};
	lifecycle_init(&actions);
	static const struct client_console_ops console = {
		.is_console_db = admin_is_console_db, .trusts_peer = admin_trusts_peer,
		.login = admin_login, .input = admin_input, .closed = admin_client_closed,
	};
	static const struct client_hooks hooks = { .draining = lifecycle_draining, .console = &console };
	client_set_hooks(&hooks);
	signal(SIGPIPE, SIG_IGN);
	params_set_tracked(cfg->track_extra_parameters);
	iobuf_set_default_size((uint32_t)cfg->pkt_buf);
	loop_init();
	pool_init();
	fake_listen();
}

void world_set_script(const uint8_t *p, size_t n)
{
	script = p;
	script_len = n;
	script_sent = false;
}

int world_client(void)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	client_accept(sv[0], (struct sockaddr *)&sun, sizeof(sun), true);
	client_fd = sv[1];
	return sv[1];
}

void world_write(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
		moved += (size_t)w;
	}
}

static void drain_client(void)
{
	uint8_t buf[65536];
	ssize_t r;
	while (client_fd >= 0 && (r = read(client_fd, buf, sizeof(buf))) > 0)
		moved += (size_t)r;
}

void world_pump(void)
{
	int quiet = 0;
	for (int i = 0; i < 400 && quiet < 4; i++) {
		unsigned long before = moved;
		event_base_loop(loop_base(), EVLOOP_NONBLOCK);
		drain_client();
		quiet = moved == before ? quiet + 1 : 0;
	}
}

void world_end_run(int fd)
{
	close(fd);
	client_fd = -1;
	world_pump();
	for (int i = 0; i < MAX_FAKES; i++)
		if (fakes[i])
			fake_close(fakes[i]);
	world_pump();
}
