/* workers: `workers = N`. The first process opens the listening sockets
 * (listen_open), forks N workers that inherit them and run as ordinary
 * tidepool processes (peer_id i, and [peers] naming every worker's private
 * abstract unix socket, so a cancel request reaches its query whichever
 * worker the kernel hands it to), and stays on as their supervisor:
 * - the signals it gets (SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1,
 *   SIGUSR2) go to every worker;
 * - a worker that exits while no shutdown was asked for is logged and
 *   started again (at most once a second each); the others keep serving,
 *   and since the listening sockets are shared, no queued connection is
 *   lost with it;
 * - it serves /metrics, /livez and /readyz on metrics_port for the whole
 *   process group: /metrics merges the workers' pages, each series with a
 *   worker="i" label; /readyz is 200 only when every worker says so.
 * It exits once every worker has exited after a shutdown: status 0 when
 * they all did.
 *
 * In-place upgrade (`tidepool --upgrade CONFIG`, the new binary): the new
 * process asks the running supervisor, over its private control socket,
 * for the listening sockets (SCM_RIGHTS: the pooler's and metrics_port's),
 * starts its own workers on them (the next generation: other peer ids,
 * and peered with the old workers, so cancels of old clients still arrive)
 * and, once every new worker is ready, tells the old supervisor to drain.
 * The listening sockets are never closed, so no connection attempt fails;
 * the old workers finish their clients as in any drain, and the old
 * supervisor exits when they are done.
 *
 * The supervisor holds no pools and no clients: waiting a moment on a
 * worker's local socket while it builds a scrape is allowed here, never in
 * a worker. */
#include "workers.h"

#include <errno.h>
#include <event2/event.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "listen.h"
#include "log.h"
#include "loop.h"
#include "util.h"

#define WORKERS_FETCH_TIMEOUT_MS 2000
#define WORKERS_MAX_PAGE ((size_t)64 << 20)
#define WORKERS_RESTART_GAP_USEC USEC_PER_SEC

struct worker {
	int id;                    /* 1..n: its peer_id */
	pid_t pid;                 /* 0 while not running */
	usec_t started;
	unsigned restarts;
	struct event *restart_timer;
};

static struct worker *ws;
static int n_workers;
static char prefix[48];        /* "tidepool.<supervisor pid>" */
static bool stopping;
static int failed_exits;       /* workers that ended with a non-zero status during shutdown */
static int child_id;           /* set in a worker forked from inside the loop */
static int generation;         /* of these workers: peer ids config_worker_peer_id(generation, i) */
static struct config_worker replaced;   /* the generation an upgrade replaces (old_n 0: none) */

/* The in-place upgrade. Old side: the control socket, and the new
 * process's connection. New side: the connection to the old supervisor,
 * the metrics sockets it handed over, and the wait for readiness. */
#define WORKERS_MAX_FDS 20
#define WORKERS_READY_POLL_USEC 100000
#define WORKERS_READY_WAIT_USEC (30 * USEC_PER_SEC)
static int ctl_listen_fd = -1, ctl_peer_fd = -1;
static struct event *ctl_listen_ev, *ctl_peer_ev;
static bool handed_over;
static int upgrade_fd = -1;
static int taken_http[4], n_taken_http;
static struct event *ready_timer;
static usec_t ready_deadline;

static const int forwarded[] = { SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2 };
static struct event *sig_events[ARRAY_SIZE(forwarded) + 1];   /* + SIGCHLD */

/* --------------------------------------------------------- starting them */

static void after_fork_in_child(void);
static void ctl_stop(void);

/* Forks worker w. Returns its id in the child, 0 in the supervisor. */
static int spawn(struct worker *w)
{
	pid_t pid = fork();
	if (pid < 0) {
		log_error("cannot start worker %d: %s", w->id, strerror(errno));
		return 0;
	}
	if (pid == 0)
		return w->id;
	w->pid = pid;
	w->started = loop_base() ? loop_now() : 0;
	log_info("worker %d started (pid %d)", w->id, (int)pid);
	return 0;
}

static void on_restart_timer(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	if (stopping || w->pid)
		return;
	int id = spawn(w);
	if (id > 0) {
		child_id = id;
		loop_exit();
	}
}

static void schedule_restart(struct worker *w)
{
	usec_t ran = loop_now() - w->started;
	usec_t wait = ran >= WORKERS_RESTART_GAP_USEC ? 0 : WORKERS_RESTART_GAP_USEC - ran;
	struct timeval tv = { (time_t)(wait / USEC_PER_SEC), (suseconds_t)(wait % USEC_PER_SEC) };
	if (!w->restart_timer)
		w->restart_timer = evtimer_new(loop_base(), on_restart_timer, w);
	evtimer_add(w->restart_timer, &tv);
}

static struct worker *find_worker(pid_t pid)
{
	for (int i = 0; i < n_workers; i++)
		if (ws[i].pid == pid)
			return &ws[i];
	return NULL;
}

static int running(void)
{
	int n = 0;
	for (int i = 0; i < n_workers; i++)
		n += ws[i].pid != 0;
	return n;
}

static void reap(void)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct worker *w = find_worker(pid);
		if (!w)
			continue;
		w->pid = 0;
		char how[64];
		if (WIFSIGNALED(status))
			snprintf(how, sizeof(how), "was killed by signal %d", WTERMSIG(status));
		else
			snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
		bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
		if (stopping) {
			failed_exits += !clean;
			log_info("worker %d (pid %d) %s; %d left", w->id, (int)pid, how, running());
			continue;
		}
		w->restarts++;
		log_warning("worker %d (pid %d) %s; starting it again", w->id, (int)pid, how);
		schedule_restart(w);
	}
	if (stopping && running() == 0)
		loop_exit();
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	if (sig == SIGCHLD) {
		reap();
		return;
	}
	if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT) {
		if (!stopping)
			log_info("signal %d: stopping all %d workers", (int)sig, running());
		stopping = true;
	}
	for (int i = 0; i < n_workers; i++)
		if (ws[i].pid)
			kill(ws[i].pid, (int)sig);
	if (stopping && running() == 0)
		loop_exit();
}

/* ---------------------------------------------------------- their pages */

/* Fetches path from worker w's private endpoint; the body (malloc'd, NUL
 * ended) or NULL, and the HTTP status in *status. */
static char *fetch(const struct worker *w, const char *path, int *status)
{
	*status = 0;
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	int n = snprintf(un.sun_path + 1, sizeof(un.sun_path) - 1, "%s.%d/http", prefix, w->id);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	struct timeval tv = { WORKERS_FETCH_TIMEOUT_MS / 1000, (WORKERS_FETCH_TIMEOUT_MS % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	char req[128];
	int rl = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
	if (connect(fd, (struct sockaddr *)&un, len) < 0 || write(fd, req, (size_t)rl) != rl) {
		close(fd);
		return NULL;
	}
	size_t cap = 65536, used = 0;
	char *buf = xmalloc(cap);
	ssize_t r;
	while ((r = read(fd, buf + used, cap - used - 1)) > 0) {
		used += (size_t)r;
		if (cap - used < 2) {
			if (cap >= WORKERS_MAX_PAGE)
				break;
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
	}
	close(fd);
	buf[used] = '\0';
	char *body = strstr(buf, "\r\n\r\n");
	if (r < 0 || !body || sscanf(buf, "HTTP/%*d.%*d %d", status) != 1) {
		free(buf);
		return NULL;
	}
	memmove(buf, body + 4, strlen(body + 4) + 1);
	return buf;
}

/* A growing text buffer. */
struct text {
	char *p;
	size_t len, cap;
};

static void text_add(struct text *t, const char *s, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		t->cap = (t->len + n + 1) * 2;
		t->p = xrealloc(t->p, t->cap);
	}
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = '\0';
}

static void text_str(struct text *t, const char *s)
{
	text_add(t, s, strlen(s));
}

/* One metric family across the workers' pages, in first-seen order. */
struct family {
	char name[128];
	struct text help, type, samples;
};

struct merge {
	struct family *f;
	size_t n, cap;
};

static struct family *family(struct merge *m, const char *name, size_t len)
{
	for (size_t i = 0; i < m->n; i++)
		if (strlen(m->f[i].name) == len && memcmp(m->f[i].name, name, len) == 0)
			return &m->f[i];
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 64;
		m->f = xrealloc(m->f, m->cap * sizeof(*m->f));
	}
	struct family *f = &m->f[m->n++];
	memset(f, 0, sizeof(*f));
	snprintf(f->name, sizeof(f->name), "%.*s", (int)(len < 127 ? len : 127), name);
	return f;
}

static size_t name_len(const char *s)
{
	return strcspn(s, " {\n");
}

/* A sample line with worker="id" as its first label. */
static void add_sample(struct text *t, const char *line, size_t len, int id)
{
	size_t nl = name_len(line);
	char label[32];
	text_add(t, line, nl);
	if (nl < len && line[nl] == '{') {
		bool empty = nl + 1 < len && line[nl + 1] == '}';
		snprintf(label, sizeof(label), "{worker=\"%d\"%s", id, empty ? "" : ",");
		text_str(t, label);
		text_add(t, line + nl + 1, len - nl - 1);
	} else {
		snprintf(label, sizeof(label), "{worker=\"%d\"}", id);
		text_str(t, label);
		text_add(t, line + nl, len - nl);
	}
	text_str(t, "\n");
}

static void merge_page(struct merge *m, const char *page, int id)
{
	struct family *cur = NULL;
	for (const char *line = page; *line; ) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		bool help = strncmp(line, "# HELP ", 7) == 0, type = strncmp(line, "# TYPE ", 7) == 0;
		if (help || type) {
			cur = family(m, line + 7, name_len(line + 7));
			struct text *t = help ? &cur->help : &cur->type;
			if (!t->len) {
				text_add(t, line, len);
				text_str(t, "\n");
			}
		} else if (len > 0 && line[0] != '#') {
			size_t nl = name_len(line);
			/* histogram and summary samples carry suffixes of their family's name */
			if (!cur || strncmp(line, cur->name, strlen(cur->name)) != 0)
				cur = family(m, line, nl);
			add_sample(&cur->samples, line, len, id);
		}
		line = end ? end + 1 : line + len;
	}
}

static void own_series(struct merge *m)
{
	struct family *f = family(m, "tidepool_workers", strlen("tidepool_workers"));
	char line[160];
	text_str(&f->help, "# HELP tidepool_workers Worker processes running, of the workers configured.\n");
	text_str(&f->type, "# TYPE tidepool_workers gauge\n");
	snprintf(line, sizeof(line), "tidepool_workers{state=\"running\"} %d\ntidepool_workers{state=\"configured\"} %d\n",
		 running(), n_workers);
	text_str(&f->samples, line);
	f = family(m, "tidepool_worker_restarts_total", strlen("tidepool_worker_restarts_total"));
	text_str(&f->help, "# HELP tidepool_worker_restarts_total Workers started again after they exited unasked.\n");
	text_str(&f->type, "# TYPE tidepool_worker_restarts_total counter\n");
	for (int i = 0; i < n_workers; i++) {
		snprintf(line, sizeof(line), "tidepool_worker_restarts_total{worker=\"%d\"} %u\n", ws[i].id,
			 ws[i].restarts);
		text_str(&f->samples, line);
	}
}

static const char *all_metrics(size_t *len, void **handle)
{
	struct merge m = { 0 };
	own_series(&m);
	for (int i = 0; i < n_workers; i++) {
		int status;
		char *page = ws[i].pid ? fetch(&ws[i], "/metrics", &status) : NULL;
		if (page && status == 200)
			merge_page(&m, page, ws[i].id);
		else if (ws[i].pid)
			log_warning("worker %d did not answer a scrape", ws[i].id);
		free(page);
	}
	struct text out = { 0 };
	text_str(&out, "");
	for (size_t i = 0; i < m.n; i++) {
		struct family *f = &m.f[i];
		if (f->help.len)
			text_add(&out, f->help.p, f->help.len);
		if (f->type.len)
			text_add(&out, f->type.p, f->type.len);
		if (f->samples.len)
			text_add(&out, f->samples.p, f->samples.len);
		free(f->help.p);
		free(f->type.p);
		free(f->samples.p);
	}
	free(m.f);
	*len = out.len;
	*handle = out.p;
	return out.p;
}

static void all_release(void *handle)
{
	free(handle);
}

static const char *all_unready(char *buf, size_t len)
{
	if (stopping)
		return "shutting down";
	for (int i = 0; i < n_workers; i++) {
		int status = 0;
		char *body = ws[i].pid ? fetch(&ws[i], "/readyz", &status) : NULL;
		if (status != 200) {
			if (!ws[i].pid)
				snprintf(buf, len, "worker %d is starting again", ws[i].id);
			else
				snprintf(buf, len, "worker %d: %s", ws[i].id,
					 body ? strtok(body, "\n") ? body : "not ready" : "no answer");
			free(body);
			return buf;
		}
		free(body);
	}
	return NULL;
}

static const struct http_pages all_pages = {
	.unready_reason = all_unready, .metrics = all_metrics, .release = all_release,
};

/* ------------------------------------------------------------- the loop */

static void signals_start(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(sig_events); i++) {
		int sig = i < ARRAY_SIZE(forwarded) ? forwarded[i] : SIGCHLD;
		sig_events[i] = evsignal_new(loop_base(), sig, on_signal, NULL);
		event_add(sig_events[i], NULL);
	}
}

static void supervisor_free(void)
{
	http_stop();
	ctl_stop();
	if (ready_timer)
		event_free(ready_timer);
	ready_timer = NULL;
	if (upgrade_fd >= 0)
		close(upgrade_fd);
	upgrade_fd = -1;
	for (size_t i = 0; i < ARRAY_SIZE(sig_events); i++) {
		if (sig_events[i])
			event_free(sig_events[i]);
		sig_events[i] = NULL;
	}
	for (int i = 0; i < n_workers; i++)
		if (ws[i].restart_timer)
			event_free(ws[i].restart_timer);
	loop_free();
}

/* In a worker forked from inside the supervisor's loop: its copy of the
 * loop (whose epoll instance it shares with the supervisor until
 * event_reinit) and of the HTTP server go; the listening sockets stay. */
static void after_fork_in_child(void)
{
	event_reinit(loop_base());
	supervisor_free();
	http_set_pages(NULL);   /* a worker answers for itself */
	free(ws);
	ws = NULL;
}

const char *workers_prefix(void)
{
	return prefix;
}

void workers_identity(int id, struct config_worker *w)
{
	*w = replaced;
	w->id = id;
	w->n = n_workers;
	w->gen = generation;
	strlcpy_safe(w->prefix, prefix, sizeof(w->prefix));
}

bool workers_handed_over(void)
{
	return handed_over;
}

/* ------------------------------------------------ upgrade: the old side */

static socklen_t abstract_addr(struct sockaddr_un *un, const char *fmt, long arg)
{
	memset(un, 0, sizeof(*un));
	un->sun_family = AF_UNIX;
	int n = snprintf(un->sun_path + 1, sizeof(un->sun_path) - 1, fmt, arg);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* The reply to "takeover": what this generation is, and its sockets. */
static void send_sockets(int fd)
{
	int fds[WORKERS_MAX_FDS];
	bool is_unix[WORKERS_MAX_FDS];
	int nl = listen_export(fds, is_unix, WORKERS_MAX_FDS - 4);
	int nh = http_export(fds + nl, 4);
	unsigned mask = 0;
	for (int i = 0; i < nl; i++)
		mask |= is_unix[i] ? 1u << i : 0;
	char msg[200];
	int len = snprintf(msg, sizeof(msg), "gen=%d n=%d prefix=%s listen=%d http=%d unix=%u", generation,
			   n_workers, prefix, nl, nh, mask);
	union {
		char buf[CMSG_SPACE(sizeof(int) * WORKERS_MAX_FDS)];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct iovec iov = { msg, (size_t)len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)(nl + nh)) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)(nl + nh));
	memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)(nl + nh));
	if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0)
		log_warning("upgrade: could not hand over the sockets: %s", strerror(errno));
	else
		log_info("upgrade: handed %d listening sockets and %d metrics sockets to the new process", nl, nh);
}

static void ctl_peer_close(void)
{
	if (ctl_peer_ev)
		event_free(ctl_peer_ev);
	ctl_peer_ev = NULL;
	if (ctl_peer_fd >= 0)
		close(ctl_peer_fd);
	ctl_peer_fd = -1;
}

/* The new supervisor's workers are ready: they serve from now on. */
static void hand_over(void)
{
	log_info("upgrade: the new workers are ready; draining the %d old workers", running());
	handed_over = true;
	stopping = true;
	listen_disown();
	http_stop();   /* metrics_port is the new supervisor's now (it holds the socket too) */
	for (int i = 0; i < n_workers; i++)
		if (ws[i].pid)
			kill(ws[i].pid, SIGTERM);
	ctl_peer_close();
	if (running() == 0)
		loop_exit();
}

static void on_ctl_message(evutil_socket_t fd, short what, void *arg)
{
	char buf[64];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		log_warning("upgrade: the new process went away before taking over; serving on");
		ctl_peer_close();
		return;
	}
	buf[n] = '\0';
	if (strcmp(buf, "takeover") == 0)
		send_sockets((int)fd);
	else if (strcmp(buf, "drain") == 0)
		hand_over();
}

static void on_ctl_accept(evutil_socket_t fd, short what, void *arg)
{
	int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (c < 0)
		return;
	if (ctl_peer_fd >= 0 || stopping) {   /* one upgrade at a time, and none while stopping */
		close(c);
		return;
	}
	ctl_peer_fd = c;
	ctl_peer_ev = event_new(loop_base(), c, EV_READ | EV_PERSIST, on_ctl_message, NULL);
	event_add(ctl_peer_ev, NULL);
	log_info("upgrade: a new process asks for the sockets");
}

/* The control socket "@<prefix>/ctl", for a later --upgrade. */
static void ctl_start(void)
{
	struct sockaddr_un un;
	socklen_t len = abstract_addr(&un, "tidepool.%ld/ctl", (long)getpid());
	ctl_listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ctl_listen_fd < 0 || bind(ctl_listen_fd, (struct sockaddr *)&un, len) < 0 ||
	    listen(ctl_listen_fd, 1) < 0) {
		log_warning("no control socket for in-place upgrades: %s", strerror(errno));
		if (ctl_listen_fd >= 0)
			close(ctl_listen_fd);
		ctl_listen_fd = -1;
		return;
	}
	ctl_listen_ev = event_new(loop_base(), ctl_listen_fd, EV_READ | EV_PERSIST, on_ctl_accept, NULL);
	event_add(ctl_listen_ev, NULL);
}

static void ctl_stop(void)
{
	ctl_peer_close();
	if (ctl_listen_ev)
		event_free(ctl_listen_ev);
	ctl_listen_ev = NULL;
	if (ctl_listen_fd >= 0)
		close(ctl_listen_fd);
	ctl_listen_fd = -1;
}

/* ------------------------------------------------ upgrade: the new side */

static bool parse_reply(const char *msg, int *nl, int *nh, unsigned *mask)
{
	char old_prefix[48];
	if (sscanf(msg, "gen=%d n=%d prefix=%47s listen=%d http=%d unix=%u", &replaced.old_gen,
		   &replaced.old_n, old_prefix, nl, nh, mask) != 6 || *nl < 0 || *nh < 0 ||
	    *nl + *nh > WORKERS_MAX_FDS || *nh > 4)
		return false;
	strlcpy_safe(replaced.old_prefix, old_prefix, sizeof(replaced.old_prefix));
	generation = (replaced.old_gen + 1) % CONFIG_WORKER_GENERATIONS;
	return true;
}

bool workers_takeover(long old_pid, const struct config *cfg)
{
	struct sockaddr_un un;
	socklen_t len = abstract_addr(&un, "tidepool.%ld/ctl", old_pid);
	upgrade_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (upgrade_fd < 0 || connect(upgrade_fd, (struct sockaddr *)&un, len) < 0 ||
	    send(upgrade_fd, "takeover", 8, MSG_NOSIGNAL) != 8) {
		log_fatal("--upgrade: cannot reach the supervisor of pid %ld (%s); is it running with workers?",
			  old_pid, strerror(errno));
		return false;
	}
	char msg[256];
	union {
		char buf[CMSG_SPACE(sizeof(int) * WORKERS_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { msg, sizeof(msg) - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	ssize_t n = recvmsg(upgrade_fd, &mh, MSG_CMSG_CLOEXEC);
	struct cmsghdr *cm = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
	int nl = 0, nh = 0;
	unsigned mask = 0;
	if (n > 0)
		msg[n] = '\0';
	if (!cm || cm->cmsg_type != SCM_RIGHTS || !parse_reply(msg, &nl, &nh, &mask) ||
	    cm->cmsg_len != CMSG_LEN(sizeof(int) * (size_t)(nl + nh))) {
		log_fatal("--upgrade: the running supervisor did not hand over its sockets");
		return false;
	}
	int fds[WORKERS_MAX_FDS];
	memcpy(fds, CMSG_DATA(cm), sizeof(int) * (size_t)(nl + nh));
	for (int i = 0; i < nl; i++)
		if (!listen_adopt(fds[i], (mask >> i) & 1, cfg))
			return false;
	for (int i = 0; i < nh; i++)
		taken_http[n_taken_http++] = fds[nl + i];
	log_info("upgrade: took over %d listening sockets from pid %ld (its workers are generation %d)", nl,
		 old_pid, replaced.old_gen);
	return true;
}

static bool all_ready(void)
{
	for (int i = 0; i < n_workers; i++) {
		int status = 0;
		char *body = ws[i].pid ? fetch(&ws[i], "/readyz", &status) : NULL;
		free(body);
		if (status != 200)
			return false;
	}
	return true;
}

static void on_ready_poll(evutil_socket_t fd, short what, void *arg)
{
	if (upgrade_fd < 0)
		return;
	if (all_ready()) {
		if (send(upgrade_fd, "drain", 5, MSG_NOSIGNAL) == 5)
			log_info("upgrade: all %d new workers are ready; the old ones drain now", n_workers);
		else
			log_warning("upgrade: could not tell the old supervisor to drain: %s", strerror(errno));
		close(upgrade_fd);
		upgrade_fd = -1;
		return;
	}
	if (loop_now() > ready_deadline) {
		log_error("upgrade: the new workers were not ready within 30 s; the old process keeps serving");
		close(upgrade_fd);
		upgrade_fd = -1;
		failed_exits++;
		on_signal(SIGTERM, EV_SIGNAL, NULL);
		return;
	}
	struct timeval tv = { 0, WORKERS_READY_POLL_USEC };
	evtimer_add(ready_timer, &tv);
}

int workers_run(const struct config *cfg, int n, int *exit_code)
{
	snprintf(prefix, sizeof(prefix), "tidepool.%d", (int)getpid());
	n_workers = n;
	ws = xcalloc((size_t)n, sizeof(*ws));
	for (int i = 0; i < n; i++)
		ws[i].id = i + 1;
	for (int i = 0; i < n; i++) {
		int id = spawn(&ws[i]);
		if (id > 0) {   /* a worker: the upgrade's sockets are the supervisor's */
			if (upgrade_fd >= 0)
				close(upgrade_fd);
			upgrade_fd = -1;
			for (int k = 0; k < n_taken_http; k++)
				close(taken_http[k]);
			n_taken_http = 0;
			free(ws);
			ws = NULL;
			return id;
		}
	}
	loop_init();
	for (int i = 0; i < n; i++)
		ws[i].started = loop_now();
	signals_start();
	http_set_pages(&all_pages);
	if (n_taken_http > 0) {
		for (int i = 0; i < n_taken_http; i++)
			(void)http_adopt(cfg, taken_http[i]);
		n_taken_http = 0;
	} else {
		(void)http_start(cfg);
	}
	ctl_start();
	if (upgrade_fd >= 0) {
		ready_deadline = loop_now() + WORKERS_READY_WAIT_USEC;
		ready_timer = evtimer_new(loop_base(), on_ready_poll, NULL);
		on_ready_poll(-1, 0, NULL);
	}
	log_info("supervising %d workers (pid %d, generation %d)", n, (int)getpid(), generation);
	reap();   /* one may have died before SIGCHLD was watched */
	loop_run();
	if (child_id > 0) {
		after_fork_in_child();
		return child_id;
	}
	supervisor_free();
	listen_stop();
	free(ws);
	ws = NULL;
	log_info("all workers stopped; supervisor exiting");
	*exit_code = failed_exits ? 1 : 0;
	return 0;
}
