/* cancel: owns the cancel-key hash table and in-flight cancel forwards.
 * Keys are random, so a client cannot guess another client's key; a
 * CancelRequest reaches only the backend the key's owner is using now. */
#include "cancel.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "config.h"
#include "crypto.h"
#include "log.h"
#include "loop.h"
#include "proto.h"
#include "server.h"

#define CANCEL_BUCKETS 16384

static struct client *buckets[CANCEL_BUCKETS];

static size_t bucket_of(uint32_t pid)
{
	return (pid * 2654435761u) % CANCEL_BUCKETS;
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

/* One CancelRequest on its way to a backend. It holds its server back from
 * the pool (cancels_in_flight) until PostgreSQL has delivered it: the
 * postmaster signals the backend and then closes the connection, so EOF
 * here means the signal was sent, and a cancel that lands while the
 * backend is idle is discarded by PostgreSQL. */
struct cancel_forward {
	int fd;
	struct event *ev;
	struct server *s;              /* NULL once the server closed */
	struct cancel_forward *next;   /* all forwards in flight */
	uint8_t pkt[16];
	size_t sent;
};

static struct cancel_forward *in_flight;

static void forward_done(struct cancel_forward *f)
{
	for (struct cancel_forward **pp = &in_flight; *pp; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	}
	event_free(f->ev);
	close(f->fd);
	struct server *s = f->s;
	free(f);
	if (s && --s->cancels_in_flight == 0)
		server_cancels_delivered(s);
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
		log_warning("PostgreSQL did not close a cancel connection in time (cancel_wait_timeout)");
		forward_done(f);
		return;
	}
	char buf[64];
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0)
		return;   /* PostgreSQL sends nothing back; wait for the close */
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
	event_del(f->ev);
	event_assign(f->ev, loop_base(), fd, EV_READ | EV_PERSIST, on_delivered, f);
	add_with_timeout(f->ev);
}

void cancel_request(uint32_t pid, uint32_t key)
{
	struct client *c = cancel_find(pid, key);
	if (!c || !c->server || c->server->state != SV_ACTIVE) {
		log_debug("cancel request for an unknown key or an idle client ignored");
		return;
	}
	struct server *s = c->server;
	int fd = socket(s->connect_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_warning("could not open a socket for a cancel request: %s", strerror(errno));
		return;
	}
	if (connect(fd, (struct sockaddr *)&s->connect_addr, s->connect_addrlen) < 0 && errno != EINPROGRESS) {
		log_warning("could not connect to send cancel request: %s", strerror(errno));
		close(fd);
		return;
	}
	if (s->cancels_in_flight == UINT16_MAX) {
		close(fd);   /* sixty-five thousand on their way already: this one adds nothing */
		return;
	}
	struct cancel_forward *f = xcalloc(1, sizeof(*f));
	f->fd = fd;
	f->s = s;
	s->cancels_in_flight++;
	f->next = in_flight;
	in_flight = f;
	struct proto_writer w;
	proto_writer_init(&w, f->pkt, sizeof(f->pkt));
	proto_write_cancel_request(&w, s->backend_pid, s->backend_key);
	f->ev = event_new(loop_base(), fd, EV_WRITE | EV_PERSIST, on_writable, f);
	add_with_timeout(f->ev);
	server_log(LOG_LVL_INFO, s, "forwarding cancel request from C-%llu", (unsigned long long)c->id);
}

void cancel_free_all(void)
{
	memset(buckets, 0, sizeof(buckets));
}
