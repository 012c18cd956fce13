/* conn: a connection's socket, its two libevent events, its input buffer and
 * its queue of pooler-made output. The only code that calls read() and
 * write() on client and server sockets, and (through tls.c) SSL_read() and
 * SSL_write(): TLS is a property of the connection, the owners' state
 * machines read and forward the same way over either transport.
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
struct tls_conn;

/* Callbacks into the owner (client or server). */
struct conn_ops {
	void (*readable)(struct conn *c);          /* input may be read */
	void (*resume)(struct conn *c);            /* a blocked forward from c completed */
	void (*peer_gone)(struct conn *c, int err); /* a write to c failed */
	void (*connected)(struct conn *c);         /* a pending connect() finished */
	/* A TLS handshake started by conn_tls_accept/conn_tls_connect ended:
	 * err is NULL on success, else why it failed (the conn stays open). */
	void (*tls_ready)(struct conn *c, const char *err);
};

struct conn {
	int fd;
	socklen_t addrlen;        /* of addr (here to fill fd's padding) */
	const struct conn_ops *ops;
	struct tls_conn *tls;     /* NULL: plain socket */
	struct event rev, wev;
	struct iobuf *in;
	uint32_t fwd;             /* in->data[in->start, fwd) is ready to forward */
	uint32_t remain;          /* body bytes of a passing message still to come */
	struct iobuf *out;        /* pooler-made messages for this socket */
	struct conn *blocked_src; /* a source waiting for this socket to drain */
	bool reading;             /* the owner wants input (rev is added) */
	bool writing;             /* wev is added */
	bool blocked;             /* this conn's forward waits on its peer */
	bool eof;
	bool connecting;          /* wev waits for connect() to finish */
	bool never_suspend;       /* keeps reading while suspended (admin console) */
	bool parked;              /* its read event was taken away by SUSPEND */
	bool rev_lingers;         /* rev still added though not reading (see conn.c) */
	uint64_t bytes_in, bytes_out;
	/* Peer address of a TCP connection (AF_UNSPEC for unix sockets): sized
	 * for IPv6, not sockaddr_storage, to keep idle clients small. */
	union {
		struct sockaddr sa;
		struct sockaddr_in in4;
		struct sockaddr_in6 in6;
	} addr;
};

enum conn_io {
	CONN_IO_DONE,     /* everything written */
	CONN_IO_BLOCKED,  /* the rest waits for writability */
	CONN_IO_ERROR,    /* the socket failed; errno set */
};

void conn_init(struct conn *c, int fd, const struct conn_ops *ops);
/* Closes the socket, removes events and gives back buffers. Idempotent. */
void conn_close(struct conn *c);
/* As conn_close, after which the socket lingers: its write side is shut
 * (the peer reads what was sent, then end of file) and whatever the peer
 * still sends is read and dropped until it closes, or for
 * CONN_LINGER_SECONDS. A socket closed with unread input sends a reset,
 * which can destroy a last ErrorResponse still on its way; this one never
 * does. */
#define CONN_LINGER_SECONDS 2
void conn_close_lingering(struct conn *c);
/* Sockets lingering now; and closing all of them (at exit). */
int conn_lingering(void);
void conn_linger_free_all(void);
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
/* Starts a TLS handshake on the socket (as the server for a client, as
 * the client for a PostgreSQL server, host for SNI and verify-full);
 * ops->tls_ready reports the end. Nothing may be queued for output, and
 * nothing unread may sit in `in` (it would be plaintext). False and err
 * when the session cannot be created. direct: the client sent a
 * ClientHello without SSLRequest (ALPN "postgresql" required). */
bool conn_tls_accept(struct conn *c, bool direct, char *err, size_t errlen) MUST_CHECK;
bool conn_tls_connect(struct conn *c, const char *host, char *err, size_t errlen) MUST_CHECK;
/* True once the TLS handshake completed on this connection. */
bool conn_tls_active(const struct conn *c);
/* Protocol and cipher ("TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519"), ""
 * for a plain connection. */
void conn_tls_describe(const struct conn *c, char *buf, size_t len);
/* The common name of the peer's verified certificate; false when the
 * connection is plain or no verified certificate was presented. */
bool conn_tls_peer_cn(const struct conn *c, char *buf, size_t len);
/* strerror(err), or the TLS layer's reason for a TLS failure. */
const char *conn_strerror(const struct conn *c, int err);
/* The first byte waiting on the socket without consuming it: >0 one byte
 * in *b, 0 EOF, <0 error or nothing yet (errno). */
ssize_t conn_peek_byte(struct conn *c, uint8_t *b);
/* One best-effort write of p before closing (Terminate to a server). */
void conn_send_last(struct conn *c, const void *p, size_t n);

/* Formats the peer address as "addr:port" or "unix". */
void conn_peer_name(const struct conn *c, char *buf, size_t len, int *port);

#endif
