/* cancel: owns the cancel-key hash table and in-flight cancel forwards.
 * Keys are random, so a client cannot guess another client's key; a
 * CancelRequest reaches only the backend the key's owner is using now.
 *
 * Peering (PgBouncer's scheme, so mixed fleets interoperate): with
 * peer_id > 0, bytes 1 and 2 of the 8-byte wire key (bits 16..23 and
 * 8..15 of the "pid") carry the issuing process's peer id, and the two
 * low bits of the secret are a time-to-live, 3 when issued. A request
 * whose id is another peer's goes to that peer's [peers] address with the
 * TTL decremented; one whose TTL is spent is dropped, so a misconfigured
 * ring cannot bounce a request forever. */
#include "cancel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"
#include "config.h"
#include "crypto.h"
#include "dns.h"
#include "log.h"
#include "loop.h"
#include "proto.h"
#include "server.h"

#define CANCEL_BUCKETS 16384
#define CANCEL_TTL_MASK 0x3u
#define CANCEL_RESOLVE_RETRY_USEC 20000   /* a peer host name still being looked up */

static struct client *buckets[CANCEL_BUCKETS];

static size_t bucket_of(uint32_t pid)
{
	return (pid * 2654435761u) % CANCEL_BUCKETS;
}

int cancel_key_peer(uint32_t pid)
{
	return (int)(((pid >> 16) & 0xff) | (((pid >> 8) & 0xff) << 8));
}

uint32_t cancel_key_with_peer(uint32_t pid, int peer_id)
{
	return (pid & 0xff0000ffu) | ((uint32_t)(peer_id & 0xff) << 16) |
	       ((uint32_t)((peer_id >> 8) & 0xff) << 8);
}

struct client *cancel_find(uint32_t pid, uint32_t key)
{
	for (struct client *c = buckets[bucket_of(pid)]; c; c = c->key_next)
		if (c->cancel_pid == pid && c->cancel_key == key)
			return c;
	return NULL;
}

void cancel_register(struct client *c)
{
	if (c->cancel_pid)
		return;
	do {
		uint32_t r[2];   /* one getrandom per login */
		crypto_random(r, sizeof(r));
		memcpy(&c->cancel_pid, &r[0], sizeof(c->cancel_pid));
		memcpy(&c->cancel_key, &r[1], sizeof(c->cancel_key));
		c->cancel_pid &= 0x7fffffff;   /* a positive "process id" for clients that print it */
		int me = config_current()->peer_id;
		if (me > 0) {
			c->cancel_pid = cancel_key_with_peer(c->cancel_pid, me);
			c->cancel_key |= CANCEL_TTL_MASK;
		}
	} while (c->cancel_pid == 0 || cancel_find(c->cancel_pid, c->cancel_key));
	size_t b = bucket_of(c->cancel_pid);
	c->key_next = buckets[b];
	buckets[b] = c;
}

void cancel_unregister(struct client *c)
{
	if (!c->cancel_pid)
		return;
	struct client **pp = &buckets[bucket_of(c->cancel_pid)];
	while (*pp && *pp != c)
		pp = &(*pp)->key_next;
	if (*pp)
		*pp = c->key_next;
	c->key_next = NULL;
	c->cancel_pid = 0;
}

/* One CancelRequest on its way to a backend, or to the peer that issued
 * its key. A backend forward holds its server back from the pool
 * (cancels_in_flight) until PostgreSQL has delivered it: the postmaster
 * signals the backend and then closes the connection, so EOF here means
 * the signal was sent, and a cancel that lands while the backend is idle is
 * discarded by PostgreSQL. A peer forward ends the same way, when the peer
 * closes. */
enum forward_phase {
	FWD_QUEUED,      /* a peer's pool_size forwards are in flight already */
	FWD_RESOLVING,   /* the peer's host name is being looked up */
	FWD_SENDING,
	FWD_SENT,        /* waiting for the close */
};

struct cancel_forward {
	int fd;                        /* -1 until connecting */
	struct event *ev;
	struct server *s;              /* backend forwards; NULL once the server closed */
	int peer_id;                   /* peer forwards: the peer, else 0 */
	enum forward_phase phase;
	usec_t deadline;               /* a peer forward that has not started by then is dropped */
	struct cancel_forward *next;   /* all forwards, newest first */
	uint8_t pkt[16];
	size_t sent;
};

static struct cancel_forward *in_flight;

static void peer_start(struct cancel_forward *f);

/* The oldest forward queued for peer id, or NULL. */
static struct cancel_forward *oldest_queued(int id)
{
	struct cancel_forward *oldest = NULL;
	for (struct cancel_forward *f = in_flight; f; f = f->next)
		if (f->peer_id == id && f->phase == FWD_QUEUED)
			oldest = f;
	return oldest;
}

static void forward_done(struct cancel_forward *f)
{
	for (struct cancel_forward **pp = &in_flight; *pp; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	}
	if (f->ev)
		event_free(f->ev);
	if (f->fd >= 0)
		close(f->fd);
	struct server *s = f->s;
	int peer = f->phase == FWD_QUEUED ? 0 : f->peer_id;
	free(f);
	if (s && --s->cancels_in_flight == 0)
		server_cancels_delivered(s);
	struct cancel_forward *next = peer ? oldest_queued(peer) : NULL;
	if (next)
		peer_start(next);
}

void cancel_server_gone(struct server *s)
{
	for (struct cancel_forward *f = in_flight; f; f = f->next) {
		if (f->s == s) {
			f->s = NULL;
			s->cancels_in_flight--;
		}
	}
}

static void on_delivered(evutil_socket_t fd, short what, void *arg)
{
	struct cancel_forward *f = arg;
	if (what & EV_TIMEOUT) {
		log_warning("%s did not close a cancel connection in time (cancel_wait_timeout)",
			    f->peer_id ? "a peer" : "PostgreSQL");
		forward_done(f);
		return;
	}
	char buf[64];
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0)
		return;   /* nothing is sent back; wait for the close */
	forward_done(f);
}

/* Each step of a forward (sending, then waiting for the close) gets
 * cancel_wait_timeout. */
static void add_with_timeout(struct event *ev)
{
	usec_t t = config_current()->cancel_wait_timeout;
	struct timeval tv = { (time_t)(t / USEC_PER_SEC), (suseconds_t)(t % USEC_PER_SEC) };
	event_add(ev, t > 0 ? &tv : NULL);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct cancel_forward *f = arg;
	if (what & EV_TIMEOUT) {
		log_warning("cancel request timed out (cancel_wait_timeout)");
		forward_done(f);
		return;
	}
	ssize_t n = write(fd, f->pkt + f->sent, sizeof(f->pkt) - f->sent);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		log_warning("could not send cancel request: %s", strerror(errno));
		forward_done(f);
		return;
	}
	f->sent += (size_t)n;
	if (f->sent < sizeof(f->pkt))
		return;
	f->phase = FWD_SENT;
	event_del(f->ev);
	event_assign(f->ev, loop_base(), fd, EV_READ | EV_PERSIST, on_delivered, f);
	add_with_timeout(f->ev);
}

static struct cancel_forward *forward_new(struct server *s, int peer_id, uint32_t pid, uint32_t key)
{
	struct cancel_forward *f = xcalloc(1, sizeof(*f));
	f->fd = -1;
	f->s = s;
	f->peer_id = peer_id;
	f->next = in_flight;
	in_flight = f;
	struct proto_writer w;
	proto_writer_init(&w, f->pkt, sizeof(f->pkt));
	proto_write_cancel_request(&w, pid, key);
	return f;
}

/* Opens the connection and sends the packet once it is writable; false
 * (and f is done) if the connection could not even be started. */
static bool forward_connect(struct cancel_forward *f, const struct sockaddr_storage *ss, socklen_t len)
{
	f->fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (f->fd < 0 || (connect(f->fd, (const struct sockaddr *)ss, len) < 0 && errno != EINPROGRESS)) {
		log_warning("could not connect to send a cancel request%s: %s",
			    f->peer_id ? " to a peer" : "", strerror(errno));
		forward_done(f);
		return false;
	}
	f->phase = FWD_SENDING;
	if (f->ev)
		event_free(f->ev);
	f->ev = event_new(loop_base(), f->fd, EV_WRITE | EV_PERSIST, on_writable, f);
	add_with_timeout(f->ev);
	return true;
}

static const struct peer_config *find_peer(int id)
{
	const struct config *cfg = config_current();
	for (size_t i = 0; i < cfg->n_peers; i++)
		if (cfg->peers[i]->peer_id == id)
			return cfg->peers[i];
	return NULL;
}

/* A peer's address: "/dir" is its unix socket dir, "@name" a Linux
 * abstract unix socket dir (as PgBouncer's unix_socket_dir takes it; the
 * built-in workers use these), an IP literal is used as it is, a name goes
 * through the DNS cache. */
static enum dns_result peer_address(const struct peer_config *pc, struct sockaddr_storage *ss,
				    socklen_t *len, const char **err)
{
	memset(ss, 0, sizeof(*ss));
	if (pc->host[0] == '/' || pc->host[0] == '@') {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;
		un->sun_family = AF_UNIX;
		int n = snprintf(un->sun_path, sizeof(un->sun_path), "%s/.s.PGSQL.%d", pc->host, pc->port);
		*err = "unix socket path too long";
		if (n <= 0 || (size_t)n >= sizeof(un->sun_path))
			return DNS_FAILED;
		*len = sizeof(*un);
		if (pc->host[0] == '@') {   /* abstract: a leading NUL, and the length is exact */
			un->sun_path[0] = '\0';
			*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n);
		}
		return DNS_READY;
	}
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, pc->host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)pc->port);
		*len = sizeof(*in4);
		return DNS_READY;
	}
	if (inet_pton(AF_INET6, pc->host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)pc->port);
		*len = sizeof(*in6);
		return DNS_READY;
	}
	return dns_lookup(pc->host, pc->port, ss, len, err);
}

static void on_resolve_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	peer_start(arg);
}

/* Starts a peer forward: resolves the peer and connects, retrying a name
 * lookup in flight until the forward's deadline. */
static void peer_start(struct cancel_forward *f)
{
	const struct peer_config *pc = find_peer(f->peer_id);
	if (!pc || loop_now() > f->deadline) {
		log_warning("cancel request for peer %d dropped: %s", f->peer_id,
			    pc ? "its address could not be found in time" : "the peer left [peers]");
		forward_done(f);
		return;
	}
	f->phase = FWD_RESOLVING;
	struct sockaddr_storage ss;
	socklen_t len = 0;
	const char *err = NULL;
	switch (peer_address(pc, &ss, &len, &err)) {
	case DNS_READY:
		log_debug("forwarding a cancel request to peer %d", f->peer_id);
		(void)forward_connect(f, &ss, len);
		return;
	case DNS_PENDING: {
		struct timeval tv = { 0, CANCEL_RESOLVE_RETRY_USEC };
		if (!f->ev)
			f->ev = evtimer_new(loop_base(), on_resolve_retry, f);
		evtimer_add(f->ev, &tv);
		return;
	}
	case DNS_FAILED:
		log_warning("cancel request for peer %d dropped: %s: %s", f->peer_id, pc->host,
			    err ? err : "lookup failed");
		forward_done(f);
		return;
	}
}

static int peer_limit(int id)
{
	const struct peer_config *pc = find_peer(id);
	int n = pc && pc->pool_size >= 0 ? pc->pool_size : config_current()->default_pool_size;
	return n > 0 ? n : 1;
}

static void forward_to_peer(int id, uint32_t pid, uint32_t key)
{
	if ((key & CANCEL_TTL_MASK) == 0) {
		log_info("cancel request for peer %d dropped: it was forwarded too often (a loop in [peers]?)", id);
		return;
	}
	if (!find_peer(id)) {
		log_warning("cancel request for peer %d, which is not in [peers]: dropped", id);
		return;
	}
	struct cancel_peer_stats st;
	cancel_peer_stats(id, &st);
	struct cancel_forward *f = forward_new(NULL, id, pid, key - 1);   /* one hop less to live */
	usec_t wait = config_current()->cancel_wait_timeout;
	f->deadline = loop_now() + (wait > 0 ? wait : 10 * USEC_PER_SEC);
	if (st.sending + st.sent >= peer_limit(id))
		return;   /* FWD_QUEUED: started when one of them ends */
	peer_start(f);
}

void cancel_peer_stats(int peer_id, struct cancel_peer_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (struct cancel_forward *f = in_flight; f; f = f->next) {
		if (f->peer_id != peer_id)
			continue;
		switch (f->phase) {
		case FWD_QUEUED:
			st->queued++;
			break;
		case FWD_RESOLVING:
		case FWD_SENDING:
			st->sending++;
			break;
		case FWD_SENT:
			st->sent++;
			break;
		}
	}
}

void cancel_request(uint32_t pid, uint32_t key)
{
	int me = config_current()->peer_id;
	if (me > 0) {
		int id = cancel_key_peer(pid);
		if (id != me) {
			forward_to_peer(id, pid, key);
			return;
		}
		key |= CANCEL_TTL_MASK;   /* keys are issued with a full TTL */
	}
	struct client *c = cancel_find(pid, key);
	if (!c || !c->server || c->server->state != SV_ACTIVE) {
		log_debug("cancel request for an unknown key or an idle client ignored");
		return;
	}
	struct server *s = c->server;
	if (s->cancels_in_flight == UINT16_MAX)
		return;   /* sixty-five thousand on their way already: this one adds nothing */
	s->cancels_in_flight++;
	struct cancel_forward *f = forward_new(s, 0, s->backend_pid, s->backend_key);
	if (forward_connect(f, &s->connect_addr, s->connect_addrlen))
		server_log(LOG_LVL_INFO, s, "forwarding cancel request from C-%llu", (unsigned long long)c->id);
}

void cancel_free_all(void)
{
	memset(buckets, 0, sizeof(buckets));
}
