/* tls: TLS sessions over OpenSSL 3, behind plain C types, for the
 * connection layer (conn.c is the only caller of the session functions).
 *
 * Two contexts: the accept side (tidepool is the TLS server for clients,
 * client_tls_*) and the connect side (tidepool is the TLS client of
 * PostgreSQL, server_tls_*). Each is rebuilt from settings on start-up and
 * on every reload; a rebuild that fails keeps the previous context and mode
 * for that side. A session holds its own reference to the context it was
 * made from, so live connections keep their certificates across a reload. */
#ifndef TIDEPOOL_TLS_H
#define TIDEPOOL_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util.h"

enum tls_sslmode {
	TLS_DISABLE,
	TLS_ALLOW,
	TLS_PREFER,
	TLS_REQUIRE,
	TLS_VERIFY_CA,
	TLS_VERIFY_FULL,
};

/* One side's settings, as the config keys spell them. */
struct tls_settings {
	const char *sslmode;        /* disable ... verify-full */
	const char *key_file, *cert_file, *ca_file;
	const char *protocols;      /* secure, all, legacy, tlsv1.0 ... tlsv1.3, comma separated */
	const char *ciphers;        /* TLS 1.2 and older: an OpenSSL cipher list or default/secure/... */
	const char *tls13_ciphers;  /* TLS 1.3 suites; "" for OpenSSL's default */
	const char *ecdhcurve;      /* accept side only: auto, none or a group list */
	const char *dheparams;      /* accept side only: auto, legacy or none */
};

struct tls_conn;

/* "verify-full" -> TLS_VERIFY_FULL; unknown words give TLS_DISABLE. */
enum tls_sslmode tls_sslmode_parse(const char *s);
const char *tls_sslmode_name(enum tls_sslmode m);

/* Builds both contexts and puts them in force together, or neither: on
 * failure both sides keep their previous context and mode, err says why. */
bool tls_configure(const struct tls_settings *acc, const struct tls_settings *con, char *err,
		   size_t errlen) MUST_CHECK;
/* Builds the accept (client-facing) or connect (server-facing) context.
 * On failure the previous context and mode stay and err says why. */
bool tls_configure_accept(const struct tls_settings *s, char *err, size_t errlen) MUST_CHECK;
bool tls_configure_connect(const struct tls_settings *s, char *err, size_t errlen) MUST_CHECK;
/* The mode in force for each side (the one of the last successful build). */
enum tls_sslmode tls_accept_mode(void);
enum tls_sslmode tls_connect_mode(void);
/* True when clients may be offered TLS (a context exists, mode not disable). */
bool tls_accept_available(void);
/* Frees both contexts (sessions keep theirs until they close). */
void tls_free_contexts(void);

/* A session on a connected socket, handshake not started. direct: the
 * client opened with a ClientHello (PostgreSQL 17 direct TLS), so ALPN
 * "postgresql" is mandatory. host: the configured server host name or
 * address, for SNI and verify-full. NULL and err on failure. */
struct tls_conn *tls_accept_new(int fd, bool direct, char *err, size_t errlen);
struct tls_conn *tls_connect_new(int fd, const char *host, char *err, size_t errlen);

enum tls_step {
	TLS_STEP_DONE,         /* handshake complete */
	TLS_STEP_WANT_READ,    /* call again when the socket is readable */
	TLS_STEP_WANT_WRITE,   /* call again when the socket is writable */
	TLS_STEP_ERROR,        /* failed; err says why */
};
enum tls_step tls_handshake(struct tls_conn *t, char *err, size_t errlen);
bool tls_established(const struct tls_conn *t);

/* Like read(): >0 bytes, 0 end of stream, -1 with errno (EAGAIN when it
 * must wait; then tls_read_wants_write() tells for which event). */
ssize_t tls_read(struct tls_conn *t, void *buf, size_t n);
/* >0 bytes taken, 0 would block (retry with the same bytes first), -1 error
 * with errno. After 0, tls_write_wants_read() tells which event to wait for. */
ssize_t tls_write(struct tls_conn *t, const void *buf, size_t n);
bool tls_read_wants_write(const struct tls_conn *t);
bool tls_write_wants_read(const struct tls_conn *t);
/* Decrypted or buffered input OpenSSL holds that the socket will not
 * announce again. */
bool tls_pending(const struct tls_conn *t);
/* The last I/O error's description (after tls_read/tls_write gave -1). */
const char *tls_error(const struct tls_conn *t);

/* Sends close_notify when the session is healthy (best effort, never
 * blocks) and frees it. NULL is fine. */
void tls_close(struct tls_conn *t);

/* "TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519" (PgBouncer's format). */
void tls_describe(const struct tls_conn *t, char *buf, size_t len);
/* The common name of the peer's certificate when one was presented and
 * verified against the CA file; false otherwise. */
bool tls_peer_cn(const struct tls_conn *t, char *buf, size_t len);

#endif
