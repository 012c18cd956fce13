/* conn: socket I/O and forwarding (see conn.h).
 * Invariants: `fwd` lies in [in->start, in->end]; a conn with `blocked` set
 * is not reading and its peer has blocked_src pointing back at it.
 *
 * TLS: with `tls` set, reads and writes go through tls.c and the same two
 * events also drive the handshake and OpenSSL's cross wants (a read that
 * must write first, a write that must read first). `reading` stays what the
 * owner asked for; rev may be added beyond it only while the TLS layer
 * itself needs input. Bytes OpenSSL already took off the socket are not
 * announced by the socket again, so after each read callback, and when
 * reading is turned back on, such input is handed over by activating rev.
 * A TLS write that returned "would block" is retried with the same bytes
 * first: output is queued behind a blocked forward only on the way to a
 * close (as for a plain socket, where it would break message framing). */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "list.h"
#include "log.h"
#include "loop.h"
#include "tls.h"

static void set_writing(struct conn *c, bool on);
static void write_ready(struct conn *dst);

static bool has_output(const struct conn *c)
{
	return c->out && iobuf_len(c->out);
}

/* rev stays added after the owner stops reading (rev_lingers) until the
 * socket actually becomes readable: a client that waits for a server and
 * sends nothing meanwhile, the common case, costs no epoll_ctl pair. */
static void rev_del(struct conn *c)
{
	event_del(&c->rev);
	c->rev_lingers = false;
}

/* rev is needed by the TLS layer itself, whatever the owner wants. */
static bool tls_needs_input(const struct conn *c)
{
	return !tls_established(c->tls) || tls_write_wants_read(c->tls);
}

/* Input OpenSSL holds is delivered as if the socket had announced it. */
static void tls_hand_over_pending(struct conn *c)
{
	if (c->tls && c->fd >= 0 && c->reading && tls_established(c->tls) && tls_pending(c->tls))
		event_active(&c->rev, EV_READ, 0);
}

static void handshake_step(struct conn *c)
{
	char err[200];
	switch (tls_handshake(c->tls, err, sizeof(err))) {
	case TLS_STEP_WANT_READ:
		event_add(&c->rev, NULL);
		if (c->writing && !has_output(c) && !c->blocked_src)
			set_writing(c, false);
		return;
	case TLS_STEP_WANT_WRITE:
		set_writing(c, true);
		return;
	case TLS_STEP_DONE:
		if (!c->reading)
			rev_del(c);
		if (c->writing && !has_output(c) && !c->blocked_src)
			set_writing(c, false);
		c->ops->tls_ready(c, NULL);
		tls_hand_over_pending(c);
		return;
	case TLS_STEP_ERROR:
		c->ops->tls_ready(c, err);
		return;
	}
}

static void on_read_tls(struct conn *c)
{
	if (!tls_established(c->tls)) {
		handshake_step(c);
		return;
	}
	if (tls_write_wants_read(c->tls)) {
		write_ready(c);
		if (c->fd < 0 || !c->tls)
			return;
		if (!c->reading && !tls_write_wants_read(c->tls))
			rev_del(c);
	}
	if (!c->reading)
		return;
	c->ops->readable(c);
	tls_hand_over_pending(c);
}

/* SUSPEND: connections parked so far (their read events removed). */
static bool suspended;
static struct conn **parked;
static size_t n_parked, cap_parked;

static void park(struct conn *c)
{
	rev_del(c);
	if (c->parked)
		return;
	c->parked = true;
	if (n_parked == cap_parked) {
		cap_parked = cap_parked ? cap_parked * 2 : 64;
		parked = xrealloc(parked, cap_parked * sizeof(*parked));
	}
	parked[n_parked++] = c;
}

static void unpark(struct conn *c)
{
	for (size_t i = 0; i < n_parked; i++) {
		if (parked[i] == c) {
			parked[i] = parked[--n_parked];
			break;
		}
	}
	c->parked = false;
}

void conn_suspend(bool on)
{
	suspended = on;
	if (on)
		return;
	for (size_t i = 0; i < n_parked; i++) {
		struct conn *c = parked[i];
		c->parked = false;
		if (c->fd >= 0 && (c->reading || (c->tls && tls_needs_input(c))))
			event_add(&c->rev, NULL);
		tls_hand_over_pending(c);
	}
	free(parked);
	parked = NULL;
	n_parked = cap_parked = 0;
}

bool conn_has_unsent(const struct conn *c)
{
	return c->fd >= 0 && ((c->out && iobuf_len(c->out) > 0) || c->blocked_src);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	/* Parked lazily, when it has something to read: no walk over every
	 * connection, and nothing to do for those that stay quiet. */
	if (suspended && !c->never_suspend) {
		park(c);
		return;
	}
	if (c->tls) {
		on_read_tls(c);
		return;
	}
	if (!c->reading) {
		rev_del(c);
		return;
	}
	c->ops->readable(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	struct conn *dst = arg;
	if (dst->connecting) {
		dst->connecting = false;
		event_del(&dst->wev);
		dst->writing = false;
		dst->ops->connected(dst);
		return;
	}
	if (dst->tls) {
		if (!tls_established(dst->tls)) {
			handshake_step(dst);
			return;
		}
		if (tls_read_wants_write(dst->tls) && dst->reading) {
			dst->ops->readable(dst);   /* the read that waited for writability */
			if (dst->fd < 0 || !dst->tls)
				return;
			tls_hand_over_pending(dst);
		}
	}
	write_ready(dst);
}

/* dst is writable: queued output, then a blocked forward into it. */
static void write_ready(struct conn *dst)
{
	enum conn_io r = conn_flush(dst);
	if (r == CONN_IO_ERROR) {
		dst->ops->peer_gone(dst, errno);
		return;
	}
	if (r == CONN_IO_BLOCKED)
		return;
	struct conn *src = dst->blocked_src;
	if (src) {
		r = conn_forward(src, dst);
		if (r == CONN_IO_ERROR) {
			dst->ops->peer_gone(dst, errno);
			return;
		}
		if (r == CONN_IO_BLOCKED)
			return;
	}
	if (dst->writing && !dst->blocked_src && !has_output(dst) &&
	    !(dst->tls && dst->reading && tls_read_wants_write(dst->tls))) {
		event_del(&dst->wev);
		dst->writing = false;
	}
	if (src && !src->blocked)
		src->ops->resume(src);
}

void conn_init(struct conn *c, int fd, const struct conn_ops *ops)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->ops = ops;
	event_assign(&c->rev, loop_base(), fd, EV_READ | EV_PERSIST, on_read, c);
	event_assign(&c->wev, loop_base(), fd, EV_WRITE | EV_PERSIST, on_write, c);
}

void conn_set_reading(struct conn *c, bool on)
{
	if (on == c->reading || c->fd < 0)
		return;
	c->reading = on;
	if (on) {
		if (c->rev_lingers)
			c->rev_lingers = false;
		else
			event_add(&c->rev, NULL);
		if (c->tls && tls_established(c->tls) && tls_read_wants_write(c->tls))
			set_writing(c, true);
		tls_hand_over_pending(c);
	} else if (!c->tls) {
		c->rev_lingers = true;
	} else if (!tls_needs_input(c)) {
		rev_del(c);
	}
}

static void set_writing(struct conn *c, bool on)
{
	if (on == c->writing || c->fd < 0)
		return;
	if (on)
		event_add(&c->wev, NULL);
	else
		event_del(&c->wev);
	c->writing = on;
}

void conn_wait_connect(struct conn *c)
{
	c->connecting = true;
	set_writing(c, true);
}

void conn_unblock(struct conn *src)
{
	if (!src->blocked)
		return;
	src->blocked = false;
}

/* Everything conn_close does but closing the socket, whose fd it returns
 * (-1 if it was closed already). */
static int conn_detach(struct conn *c)
{
	int fd = c->fd;
	if (c->parked)
		unpark(c);
	if (fd >= 0) {
		/* rev may be added for TLS while not reading; deleting is cheap */
		rev_del(c);
		event_del(&c->wev);
		c->reading = c->writing = false;
		tls_close(c->tls);   /* close_notify goes out before the socket closes */
		c->tls = NULL;
		c->fd = -1;
	}
	if (c->blocked_src) {
		c->blocked_src->blocked = false;
		c->blocked_src = NULL;
	}
	iobuf_put(c->in);
	iobuf_put(c->out);
	c->in = c->out = NULL;
	c->fwd = c->remain = 0;
	return fd;
}

void conn_close(struct conn *c)
{
	int fd = conn_detach(c);
	if (fd >= 0)
		close(fd);
}

/* A lingering socket; owned by this file, freed when it ends. */
struct lingerer {
	struct list_node node;
	struct event *ev;
	usec_t deadline;
};

#define LINGER_MAX 4096   /* more at once (a flood) close at once: no fd pile-up */

static struct list_node lingering = { &lingering, &lingering };
static int n_lingering;

static void linger_end(struct lingerer *l)
{
	close(event_get_fd(l->ev));
	event_free(l->ev);
	list_del(&l->node);
	free(l);
	n_lingering--;
}

static void linger_read(evutil_socket_t fd, short what, void *arg)
{
	struct lingerer *l = arg;
	char sink[4096];
	if ((what & EV_READ) && loop_now() < l->deadline) {
		ssize_t n = read(fd, sink, sizeof(sink));
		if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
			return;
	}
	linger_end(l);
}

void conn_close_lingering(struct conn *c)
{
	int fd = conn_detach(c);
	if (fd < 0)
		return;
	struct lingerer *l = n_lingering < LINGER_MAX && shutdown(fd, SHUT_WR) == 0 ? xcalloc(1, sizeof(*l)) : NULL;
	if (!l) {
		close(fd);
		return;
	}
	struct timeval tv = { CONN_LINGER_SECONDS, 0 };
	l->deadline = loop_now() + CONN_LINGER_SECONDS * USEC_PER_SEC;
	l->ev = event_new(loop_base(), fd, EV_READ | EV_PERSIST, linger_read, l);
	list_add_tail(&lingering, &l->node);
	n_lingering++;
	event_add(l->ev, &tv);
}

int conn_lingering(void)
{
	return n_lingering;
}

void conn_linger_free_all(void)
{
	while (!list_empty(&lingering))
		linger_end(list_entry(list_first(&lingering), struct lingerer, node));
}

static ssize_t tls_read_some(struct conn *c, void *p, size_t n)
{
	if (!tls_established(c->tls)) {
		errno = EAGAIN;
		return -1;
	}
	ssize_t r = tls_read(c->tls, p, n);
	if (r < 0 && errno == EAGAIN && tls_read_wants_write(c->tls))
		set_writing(c, true);
	return r;
}

ssize_t conn_read(struct conn *c)
{
	if (!c->in) {
		c->in = iobuf_get();
		c->fwd = 0;
	}
	struct iobuf *b = c->in;
	if (b->end == b->cap && b->start > 0) {
		c->fwd -= b->start;
		iobuf_compact(b);
	}
	if (b->end == b->cap) {
		errno = ENOBUFS;
		return -1;
	}
	ssize_t n = c->tls ? tls_read_some(c, b->data + b->end, b->cap - b->end)
			   : read(c->fd, b->data + b->end, b->cap - b->end);
	if (n > 0) {
		b->end += (uint32_t)n;
		c->bytes_in += (uint64_t)n;
	} else if (n == 0) {
		c->eof = true;
	}
	return n;
}

void conn_reserve(struct conn *c, uint32_t need)
{
	if (!c->in) {
		c->in = iobuf_get();
		c->fwd = 0;
	}
	uint32_t off = c->fwd - c->in->start;
	c->in = iobuf_reserve(c->in, need);
	c->fwd = c->in->start + off;
}

void conn_release_empty(struct conn *c)
{
	if (c->in && c->in->start == c->in->end) {
		iobuf_put(c->in);
		c->in = NULL;
		c->fwd = 0;
	}
}

void conn_consume(struct conn *c, uint32_t n)
{
	c->in->start += n;
	if (c->fwd < c->in->start)
		c->fwd = c->in->start;
}

static ssize_t tls_write_some(struct conn *c, const uint8_t *p, size_t n)
{
	if (!tls_established(c->tls)) {
		errno = ENOTCONN;   /* nothing goes out in plaintext once TLS started */
		return -1;
	}
	ssize_t w = tls_write(c->tls, p, n);
	if (w > 0)
		c->bytes_out += (uint64_t)w;
	return w;
}

/* A write blocked: wait for writability, or for input when OpenSSL must
 * read first (then wev would only spin). */
static void wait_to_write(struct conn *c)
{
	if (c->tls && tls_write_wants_read(c->tls)) {
		event_add(&c->rev, NULL);
		set_writing(c, false);
		return;
	}
	set_writing(c, true);
}

/* One write of a plain socket; returns bytes written, 0 on EAGAIN, -1 on
 * error. */
static ssize_t plain_write(struct conn *c, const struct iovec *iov, int iovcnt)
{
	for (;;) {
		ssize_t w = iovcnt == 1 ? write(c->fd, iov[0].iov_base, iov[0].iov_len)
					: writev(c->fd, iov, iovcnt);
		if (w >= 0) {
			c->bytes_out += (uint64_t)w;
			return w;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return -1;
	}
}

/* One write of p[0..n), as plain_write. */
static ssize_t write_some(struct conn *c, const uint8_t *p, size_t n)
{
	if (c->tls)
		return tls_write_some(c, p, n);
	struct iovec iov = { .iov_base = (void *)p, .iov_len = n };
	return plain_write(c, &iov, 1);
}

enum conn_io conn_flush(struct conn *c)
{
	struct iobuf *b = c->out;
	if (!b || b->start == b->end)
		return CONN_IO_DONE;
	if (c->fd < 0) {
		errno = EPIPE;
		return CONN_IO_ERROR;
	}
	ssize_t w = write_some(c, b->data + b->start, iobuf_len(b));
	if (w < 0)
		return CONN_IO_ERROR;
	b->start += (uint32_t)w;
	if (b->start == b->end) {
		iobuf_put(b);
		c->out = NULL;
		return CONN_IO_DONE;
	}
	wait_to_write(c);
	return CONN_IO_BLOCKED;
}

void conn_queue(struct conn *c, const void *p, size_t n)
{
	if (!c->out)
		c->out = iobuf_get();
	c->out = iobuf_reserve(c->out, iobuf_len(c->out) + (uint32_t)n);
	if (c->out->cap - c->out->end < n)
		iobuf_compact(c->out);
	memcpy(c->out->data + c->out->end, p, n);
	c->out->end += (uint32_t)n;
}

enum conn_io conn_send(struct conn *c, const void *p, size_t n)
{
	conn_queue(c, p, n);
	return conn_flush(c);
}

void conn_splice(struct conn *src, struct conn *dst)
{
	struct iobuf *b = src->in;
	if (!b || src->fwd == b->start)
		return;
	conn_queue(dst, b->data + b->start, src->fwd - b->start);
	b->start = src->fwd;
}

/* dst's own output and src's forwardable bytes in one writev (plain
 * sockets only), as plain_write. */
static ssize_t writev_some(struct conn *dst, struct iobuf *out, const uint8_t *p, size_t n)
{
	struct iovec iov[2] = {
		{ .iov_base = out->data + out->start, .iov_len = iobuf_len(out) },
		{ .iov_base = (void *)p, .iov_len = n },
	};
	return plain_write(dst, iov, 2);
}

enum conn_io conn_forward(struct conn *src, struct conn *dst)
{
	enum conn_io r;
	bool have_in = src->in && src->fwd > src->in->start;
	struct iobuf *out = dst->out;
	if (have_in && out && iobuf_len(out) && dst->fd >= 0 && !dst->tls) {
		/* Pooler-made bytes first, then the forwarded ones, one syscall
		 * (over TLS: one SSL_write each, in the same order). */
		size_t olen = iobuf_len(out);
		ssize_t w = writev_some(dst, out, src->in->data + src->in->start, src->fwd - src->in->start);
		if (w < 0)
			return CONN_IO_ERROR;
		if ((size_t)w >= olen) {
			iobuf_put(out);
			dst->out = NULL;
			src->in->start += (uint32_t)((size_t)w - olen);
			r = src->fwd > src->in->start ? CONN_IO_BLOCKED : CONN_IO_DONE;
		} else {
			out->start += (uint32_t)w;
			r = CONN_IO_BLOCKED;
		}
	} else {
		r = conn_flush(dst);
		if (r == CONN_IO_DONE && have_in) {
			ssize_t w = write_some(dst, src->in->data + src->in->start, src->fwd - src->in->start);
			if (w < 0)
				return CONN_IO_ERROR;
			src->in->start += (uint32_t)w;
			r = src->fwd > src->in->start ? CONN_IO_BLOCKED : CONN_IO_DONE;
		}
	}
	if (r == CONN_IO_ERROR)
		return r;
	if (r == CONN_IO_BLOCKED) {
		src->blocked = true;
		dst->blocked_src = src;
		conn_set_reading(src, false);
		wait_to_write(dst);
		return r;
	}
	if (dst->blocked_src == src)
		dst->blocked_src = NULL;
	src->blocked = false;
	if (src->in && src->in->start == src->in->end && src->remain == 0)
		conn_release_empty(src);
	return CONN_IO_DONE;
}

bool conn_tls_accept(struct conn *c, bool direct, char *err, size_t errlen)
{
	if (c->fd < 0 || c->tls || has_output(c) || (c->in && iobuf_len(c->in))) {
		snprintf(err, errlen, "cannot start TLS: %s", c->fd < 0 ? "connection closed"
			 : c->tls ? "TLS already started" : "unencrypted data is pending");
		return false;
	}
	c->tls = tls_accept_new(c->fd, direct, err, errlen);
	if (!c->tls)
		return false;
	if (c->rev_lingers)
		rev_del(c);   /* the TLS layer manages rev from here */
	event_add(&c->rev, NULL);   /* the ClientHello starts it */
	return true;
}

bool conn_tls_connect(struct conn *c, const char *host, char *err, size_t errlen)
{
	if (c->fd < 0 || c->tls || has_output(c) || (c->in && iobuf_len(c->in))) {
		snprintf(err, errlen, "cannot start TLS: %s", c->fd < 0 ? "connection closed"
			 : c->tls ? "TLS already started" : "unencrypted data is pending");
		return false;
	}
	c->tls = tls_connect_new(c->fd, host, err, errlen);
	if (!c->tls)
		return false;
	if (c->rev_lingers)
		rev_del(c);   /* the TLS layer manages rev from here */
	set_writing(c, true);       /* the ClientHello goes out from the loop */
	return true;
}

bool conn_tls_active(const struct conn *c)
{
	return c->tls && tls_established(c->tls);
}

void conn_tls_describe(const struct conn *c, char *buf, size_t len)
{
	if (c->tls)
		tls_describe(c->tls, buf, len);
	else if (len)
		buf[0] = '\0';
}

bool conn_tls_peer_cn(const struct conn *c, char *buf, size_t len)
{
	return c->tls && tls_peer_cn(c->tls, buf, len);
}

const char *conn_strerror(const struct conn *c, int err)
{
	if (c->tls && (err == EPROTO || err == ECONNRESET))
		return tls_error(c->tls);
	return strerror(err);
}

ssize_t conn_peek_byte(struct conn *c, uint8_t *b)
{
	for (;;) {
		ssize_t n = recv(c->fd, b, 1, MSG_PEEK);
		if (n >= 0 || errno != EINTR)
			return n;
	}
}

void conn_send_last(struct conn *c, const void *p, size_t n)
{
	if (c->fd >= 0 && !has_output(c))
		(void)write_some(c, p, n);
}

void conn_peer_name(const struct conn *c, char *buf, size_t len, int *port)
{
	*port = 0;
	switch (c->addr.sa.sa_family) {
	case AF_INET: {
		const struct sockaddr_in *a = &c->addr.in4;
		inet_ntop(AF_INET, &a->sin_addr, buf, (socklen_t)len);
		*port = ntohs(a->sin_port);
		return;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *a = &c->addr.in6;
		inet_ntop(AF_INET6, &a->sin6_addr, buf, (socklen_t)len);
		*port = ntohs(a->sin6_port);
		return;
	}
	default:
		strlcpy_safe(buf, "unix", len);
		return;
	}
}
