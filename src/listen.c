/* listen: owns the listening sockets and their accept events; accepted
 * sockets go to the callback given to listen_start (main passes
 * client_accept), so this layer knows nothing of clients. */
#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "loop.h"

#define MAX_LISTENERS 16
#define ACCEPTS_PER_EVENT 64

struct listener {
	int fd;
	bool is_unix;
	bool private;      /* a worker's own address: stays open while it drains */
	struct event *ev;
};

static struct listener listeners[MAX_LISTENERS];
static int n_listeners;
static char unix_path[108];
static pid_t unix_path_owner;   /* the process that made unix_path removes it */
static listen_accept_fn on_accepted;
/* Sockets shared with other processes (workers): one accept per wake-up,
 * so that every worker woken for a burst of connections takes its turn
 * rather than the first one taking the whole queue. */
static int accepts_per_event = ACCEPTS_PER_EVENT;

void listen_tune_socket(int fd, const struct config *cfg)
{
	int on = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	if (cfg->tcp_socket_buffer > 0) {
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cfg->tcp_socket_buffer, sizeof(int));
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &cfg->tcp_socket_buffer, sizeof(int));
	}
	if (!cfg->tcp_keepalive)
		return;
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	if (cfg->tcp_keepidle > 0)
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &cfg->tcp_keepidle, sizeof(int));
	if (cfg->tcp_keepintvl > 0)
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &cfg->tcp_keepintvl, sizeof(int));
	if (cfg->tcp_keepcnt > 0)
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cfg->tcp_keepcnt, sizeof(int));
	if (cfg->tcp_user_timeout > 0) {
		unsigned int ms = (unsigned int)(cfg->tcp_user_timeout / 1000);
		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms));
	}
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;
	for (int i = 0; i < accepts_per_event; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int cfd = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
				log_warning("accept failed: %s", strerror(errno));
			return;
		}
		if (!l->is_unix)
			listen_tune_socket(cfd, config_current());
		on_accepted(cfd, (struct sockaddr *)&ss, len, l->is_unix);
	}
}

static bool add_listener(int fd, bool is_unix)
{
	if (n_listeners == MAX_LISTENERS) {
		close(fd);
		return false;
	}
	struct listener *l = &listeners[n_listeners++];
	l->fd = fd;
	l->is_unix = is_unix;
	l->private = false;
	l->ev = NULL;
	if (on_accepted) {   /* serving already: accept from now on */
		l->ev = event_new(loop_base(), fd, EV_READ | EV_PERSIST, on_accept, l);
		event_add(l->ev, NULL);
	}
	return true;
}

/* Once the loop runs, getaddrinfo would block it on a host name: only
 * numeric addresses (and "localhost") are accepted from then on. */
static bool numeric_only;

void listen_resolve_numeric_only(void)
{
	numeric_only = true;
}

bool listen_resolve(const char *what, const char *host, int port, struct addrinfo **res)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", port);
	const char *name = strcmp(host, "*") == 0 ? NULL : host;
	if (numeric_only) {
		hints.ai_flags |= AI_NUMERICHOST;
		if (name && strcmp(name, "localhost") == 0)
			name = "127.0.0.1";
	}
	int rc = getaddrinfo(name, portstr, &hints, res);
	if (rc != 0) {
		log_error("cannot resolve %s \"%s\": %s%s", what, host, gai_strerror(rc),
			  numeric_only && rc == EAI_NONAME ? " (while running, give an IP address)" : "");
		return false;
	}
	return true;
}

static bool listen_tcp(const char *host, int port, const struct config *cfg)
{
	struct addrinfo *res, *ai;
	if (!listen_resolve("listen_addr", host, port, &res))
		return false;
	bool any = false;
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		int on = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if (cfg->so_reuseport)
			setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
		if (cfg->tcp_defer_accept) {
			int secs = 45;   /* PgBouncer's fixed value */
			setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs));
		}
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, cfg->listen_backlog) < 0) {
			log_error("cannot listen on %s port %d: %s", host, port, strerror(errno));
			close(fd);
			continue;
		}
		any = add_listener(fd, false) || any;
	}
	freeaddrinfo(res);
	return any;
}

/* unix_socket_group: the socket file belongs to that group. */
static bool set_socket_group(const char *path, const char *group)
{
	struct group *gr = getgrnam(group);
	if (!gr) {
		log_error("unix_socket_group: no such group \"%s\"", group);
		return false;
	}
	if (chown(path, (uid_t)-1, gr->gr_gid) < 0) {
		log_error("unix_socket_group: cannot give %s to group %s: %s", path, group, strerror(errno));
		return false;
	}
	return true;
}

static bool listen_unix(const struct config *cfg)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	int n = snprintf(un.sun_path, sizeof(un.sun_path), "%s/.s.PGSQL.%d", cfg->unix_socket_dir,
			 cfg->listen_port);
	if (n < 0 || (size_t)n >= sizeof(un.sun_path)) {
		log_error("unix_socket_dir is too long");
		return false;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	unlink(un.sun_path);
	/* made with its mode at once: nobody sees it with the umask's mode */
	mode_t old_mask = umask(~(mode_t)cfg->unix_socket_mode & 0777);
	int bound = bind(fd, (struct sockaddr *)&un, sizeof(un));
	umask(old_mask);
	if (bound < 0 || listen(fd, cfg->listen_backlog) < 0) {
		log_error("cannot listen on unix socket %s: %s", un.sun_path, strerror(errno));
		close(fd);
		return false;
	}
	chmod(un.sun_path, (mode_t)cfg->unix_socket_mode);   /* bits a umask cannot give */
	if (cfg->unix_socket_group[0] && !set_socket_group(un.sun_path, cfg->unix_socket_group)) {
		close(fd);
		unlink(un.sun_path);
		return false;
	}
	strlcpy_safe(unix_path, un.sun_path, sizeof(unix_path));
	unix_path_owner = getpid();
	return add_listener(fd, true);
}

bool listen_start(const struct config *cfg, listen_accept_fn accept_fn)
{
	if (!listen_open(cfg))
		return false;
	listen_serve(accept_fn, false);
	return true;
}

void listen_serve(listen_accept_fn accept_fn, bool shared)
{
	on_accepted = accept_fn;
	accepts_per_event = shared ? 1 : ACCEPTS_PER_EVENT;
	for (int i = 0; i < n_listeners; i++) {
		struct listener *l = &listeners[i];
		if (!l->ev)
			l->ev = event_new(loop_base(), l->fd, EV_READ | EV_PERSIST, on_accept, l);
		event_add(l->ev, NULL);
	}
}

bool listen_add_abstract(const char *name, int backlog)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	size_t n = strlen(name);
	if (n + 1 > sizeof(un.sun_path)) {
		log_error("abstract socket name too long: %s", name);
		return false;
	}
	memcpy(un.sun_path + 1, name, n);   /* sun_path[0] = 0: Linux's abstract namespace */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	if (bind(fd, (struct sockaddr *)&un, len) < 0 || listen(fd, backlog) < 0) {
		log_error("cannot listen on abstract unix socket @%s: %s", name, strerror(errno));
		close(fd);
		return false;
	}
	if (!add_listener(fd, true))
		return false;
	listeners[n_listeners - 1].private = true;
	return true;
}

/* With so_reuseport, each process has its own accept queue, and the kernel
 * resets what is still queued on a socket that closes unless
 * net.ipv4.tcp_migrate_req moves it to the port's other sockets. */
static void note_migrate_req(const struct config *cfg)
{
	FILE *f = cfg->so_reuseport ? fopen("/proc/sys/net/ipv4/tcp_migrate_req", "r") : NULL;
	if (!f)
		return;
	int on = 1;
	if (fscanf(f, "%d", &on) == 1 && on == 0)
		log_info("so_reuseport: net.ipv4.tcp_migrate_req is 0, so connections still queued on this "
			 "process's socket when it stops are reset; set it to 1 for restarts that lose none "
			 "(see doc/scaling.md)");
	fclose(f);
}

bool listen_open(const struct config *cfg)
{
	note_migrate_req(cfg);
	char *addrs = xstrdup(cfg->listen_addr);
	bool ok = true;
	for (char *save = NULL, *tok = strtok_r(addrs, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (!listen_tcp(tok, cfg->listen_port, cfg))
			ok = false;
		else
			log_info("listening on %s:%d", tok, cfg->listen_port);
	}
	free(addrs);
	if (cfg->unix_socket_dir[0]) {
		if (listen_unix(cfg))
			log_info("listening on unix socket %s", unix_path);
		else
			ok = false;
	}
	if (n_listeners == 0) {
		log_error("no listening socket could be opened");
		return false;
	}
	return ok;
}

int listen_export(int *fds, bool *is_unix, int max)
{
	int n = 0;
	for (int i = 0; i < n_listeners && n < max; i++, n++) {
		fds[n] = listeners[i].fd;
		is_unix[n] = listeners[i].is_unix;
	}
	return n;
}

bool listen_adopt(int fd, bool is_unix, const struct config *cfg)
{
	if (is_unix && cfg->unix_socket_dir[0]) {
		snprintf(unix_path, sizeof(unix_path), "%s/.s.PGSQL.%d", cfg->unix_socket_dir, cfg->listen_port);
		unix_path_owner = getpid();
	}
	return add_listener(fd, is_unix);
}

void listen_disown(void)
{
	unix_path_owner = 0;
}

void listen_take_queued(void)
{
	int saved = accepts_per_event;
	accepts_per_event = 1 << 16;   /* bounded: a queue is at most listen_backlog long */
	for (int i = 0; i < n_listeners; i++)
		if (listeners[i].ev)
			on_accept(listeners[i].fd, EV_READ, &listeners[i]);
	accepts_per_event = saved;
}

void listen_pause(bool pause)
{
	for (int i = 0; i < n_listeners; i++) {
		if (!listeners[i].ev)
			continue;
		if (pause)
			event_del(listeners[i].ev);
		else
			event_add(listeners[i].ev, NULL);
	}
}

/* Closes the listeners close_it picks and keeps the others (a kept
 * listener's event argument is its slot, so a moved one is re-assigned). */
static void close_listeners(bool (*close_it)(const struct listener *))
{
	int kept = 0;
	for (int i = 0; i < n_listeners; i++) {
		struct listener *l = &listeners[i];
		if (close_it(l)) {
			if (l->ev)
				event_free(l->ev);
			close(l->fd);
			continue;
		}
		if (kept != i && l->ev) {
			event_del(l->ev);
			event_assign(l->ev, loop_base(), l->fd, EV_READ | EV_PERSIST, on_accept, &listeners[kept]);
			event_add(l->ev, NULL);
		}
		listeners[kept++] = *l;
	}
	n_listeners = kept;
}

static bool is_tcp(const struct listener *l)
{
	return !l->is_unix && !l->private;
}

static bool is_public(const struct listener *l)
{
	return !l->private;
}

void listen_close_tcp(void)
{
	close_listeners(is_tcp);
}

void listen_close_public(void)
{
	close_listeners(is_public);
	if (unix_path[0] && unix_path_owner == getpid())
		unlink(unix_path);
	unix_path[0] = '\0';
}

void listen_stop(void)
{
	for (int i = 0; i < n_listeners; i++) {
		if (listeners[i].ev)
			event_free(listeners[i].ev);
		close(listeners[i].fd);
	}
	n_listeners = 0;
	on_accepted = NULL;
	if (unix_path[0]) {
		if (unix_path_owner == getpid())   /* not a worker's inherited copy */
			unlink(unix_path);
		unix_path[0] = '\0';
	}
}
