/* conn: a connection's socket, its two libevent events, its input buffer and
 * its queue of pooler-made output. The only code that calls read() and
 * write() on client and server sockets.
 *
 * Forwarding: the owner scans messages in `in` and advances `fwd` past the
 * bytes to pass to the peer; conn_forward() writes in[start, fwd) to the
 * peer with one write. If the peer cannot take it all, the source stops
 * reading and the peer's write event resumes the transfer (backpressure):
 * a connection never holds more than one buffer of unsent bytes. */
#ifndef TIDEPOOL_CONN_H
#define TIDEPOOL_CONN_H

#include <event2/event_struct.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <netinet/in.h>

#include "iobuf.h"
#include "util.h"

struct conn;

/* Callbacks into the owner (client or server). */
struct conn_ops {
	void (*readable)(struct conn *c);          /* input may be read */
	void (*resume)(struct conn *c);            /* a blocked forward from c completed */
	void (*peer_gone)(struct conn *c, int err); /* a write to c failed */
	void (*connected)(struct conn *c);         /* a pending connect() finished */
};

struct conn {
	int fd;
	const struct conn_ops *ops;
	struct event rev, wev;
	bool reading;             /* rev is added */
	bool writing;             /* wev is added */
	struct iobuf *in;
	uint32_t fwd;             /* in->data[in->start, fwd) is ready to forward */
	uint32_t remain;          /* body bytes of a passing message still to come */
	struct iobuf *out;        /* pooler-made messages for this socket */
	struct conn *blocked_src; /* a source waiting for this socket to drain */
	bool blocked;             /* this conn's forward waits on its peer */
	bool eof;
	bool connecting;          /* wev waits for connect() to finish */
	bool never_suspend;       /* keeps reading while suspended (admin console) */
	bool parked;              /* its read event was taken away by SUSPEND */
	uint64_t bytes_in, bytes_out;
	/* Peer address of a TCP connection (AF_UNSPEC for unix sockets): sized
	 * for IPv6, not sockaddr_storage, to keep idle clients small. */
	union {
		struct sockaddr sa;
		struct sockaddr_in in4;
		struct sockaddr_in6 in6;
	} addr;
	socklen_t addrlen;
};

enum conn_io {
	CONN_IO_DONE,     /* everything written */
	CONN_IO_BLOCKED,  /* the rest waits for writability */
	CONN_IO_ERROR,    /* the socket failed; errno set */
};

void conn_init(struct conn *c, int fd, const struct conn_ops *ops);
/* Closes the socket, removes events and gives back buffers. Idempotent. */
void conn_close(struct conn *c);
void conn_set_reading(struct conn *c, bool on);
/* Waits for a non-blocking connect(); ops->connected is called. */
void conn_wait_connect(struct conn *c);

/* One read() into `in`. >0 bytes read, 0 EOF (sets eof), <0 error or
 * EAGAIN (errno tells). */
ssize_t conn_read(struct conn *c);
/* Makes room so that `need` bytes from in->start fit (for messages held whole). */
void conn_reserve(struct conn *c, uint32_t need);
/* Gives `in` back to the free list when it holds nothing. */
void conn_release_empty(struct conn *c);
/* Drops n bytes at in->start (consumed by the pooler, not forwarded). */
void conn_consume(struct conn *c, uint32_t n);

/* Queues pooler-made bytes and tries to write them at once. */
enum conn_io conn_send(struct conn *c, const void *p, size_t n);
/* Queues pooler-made bytes without writing (they go out before the next
 * forwarded bytes). */
void conn_queue(struct conn *c, const void *p, size_t n);
/* Moves src's forwardable bytes in[start, fwd) to the end of dst's queue, so
 * that bytes queued next follow them (used to rewrite a message in place
 * in the stream). */
void conn_splice(struct conn *src, struct conn *dst);
/* Writes queued output. */
enum conn_io conn_flush(struct conn *c);
/* Writes src->in[start, fwd) to dst (after dst's own queued output). */
enum conn_io conn_forward(struct conn *src, struct conn *dst);
/* Forgets a pending blocked forward between src and dst (one side closes). */
void conn_unblock(struct conn *src);

/* SUSPEND: while on, a connection that becomes readable stops reading
 * (unless never_suspend) until conn_suspend(false); writes go on, so
 * buffers drain. */
void conn_suspend(bool on);
/* True while c has bytes it could not write yet (its own queue, or a peer's
 * bytes waiting for it). */
bool conn_has_unsent(const struct conn *c);

/* Formats the peer address as "addr:port" or "unix". */
void conn_peer_name(const struct conn *c, char *buf, size_t len, int *port);

#endif
