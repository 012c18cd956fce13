/* conn: socket I/O and forwarding (see conn.h).
 * Invariants: `fwd` lies in [in->start, in->end]; a conn with `blocked` set
 * is not reading and its peer has blocked_src pointing back at it. */
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

#include "log.h"
#include "loop.h"

/* SUSPEND: connections parked so far (their read events removed). */
static bool suspended;
static struct conn **parked;
static size_t n_parked, cap_parked;

static void park(struct conn *c)
{
	event_del(&c->rev);
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
		if (c->reading && c->fd >= 0)
			event_add(&c->rev, NULL);
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
	if (dst->writing && !dst->blocked_src && !(dst->out && iobuf_len(dst->out))) {
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
	if (on)
		event_add(&c->rev, NULL);
	else
		event_del(&c->rev);
	c->reading = on;
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

void conn_close(struct conn *c)
{
	if (c->parked)
		unpark(c);
	if (c->fd >= 0) {
		if (c->reading)
			event_del(&c->rev);
		if (c->writing)
			event_del(&c->wev);
		c->reading = c->writing = false;
		close(c->fd);
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
	ssize_t n = read(c->fd, b->data + b->end, b->cap - b->end);
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

/* One write of p[0..n); returns bytes written, 0 on EAGAIN, -1 on error. */
static ssize_t write_some(struct conn *c, const uint8_t *p, size_t n)
{
	for (;;) {
		ssize_t w = write(c->fd, p, n);
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
	set_writing(c, true);
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

/* dst's own output and src's forwardable bytes in one writev: returns bytes
 * written, 0 on EAGAIN, -1 on error. */
static ssize_t writev_some(struct conn *dst, struct iobuf *out, const uint8_t *p, size_t n)
{
	struct iovec iov[2] = {
		{ .iov_base = out->data + out->start, .iov_len = iobuf_len(out) },
		{ .iov_base = (void *)p, .iov_len = n },
	};
	for (;;) {
		ssize_t w = writev(dst->fd, iov, 2);
		if (w >= 0) {
			dst->bytes_out += (uint64_t)w;
			return w;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return -1;
	}
}

enum conn_io conn_forward(struct conn *src, struct conn *dst)
{
	enum conn_io r;
	bool have_in = src->in && src->fwd > src->in->start;
	struct iobuf *out = dst->out;
	if (have_in && out && iobuf_len(out) && dst->fd >= 0) {
		/* Pooler-made bytes first, then the forwarded ones, one syscall. */
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
		set_writing(dst, true);
		return r;
	}
	if (dst->blocked_src == src)
		dst->blocked_src = NULL;
	src->blocked = false;
	if (src->in && src->in->start == src->in->end && src->remain == 0)
		conn_release_empty(src);
	return CONN_IO_DONE;
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
