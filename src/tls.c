/* tls: the only TLS code (see tls.h).
 *
 * Owns the two SSL_CTX (accept side for clients, connect side for servers)
 * and every SSL session. Invariants:
 * - The OpenSSL error queue is empty before and after every call made here:
 *   each SSL call is preceded by ERR_clear_error() and its errors are read
 *   (and cleared) at once, so one connection's failure never shows up on
 *   another's.
 * - A context is swapped only after it was built completely; sessions hold
 *   a reference (SSL_new), so freeing ours on reload never frees theirs.
 * - Renegotiation is refused and session tickets are off: after the
 *   handshake, SSL_write never needs to read; SSL_read may need to write
 *   (TLS 1.3 KeyUpdate), which the caller learns from tls_read_wants_write.
 * - Buffers are released while a session is idle (SSL_MODE_RELEASE_BUFFERS),
 *   so an idle TLS client does not hold OpenSSL's 2 x 16 kB. */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct tls_conn {
	SSL *ssl;
	bool established;
	bool direct;              /* direct TLS: ALPN "postgresql" required */
	bool failed;              /* fatal error seen: no close_notify */
	bool read_wants_write;
	bool write_wants_read;
	char err[160];
};

struct tls_side {
	SSL_CTX *ctx;
	enum tls_sslmode mode;
	/* Connect side with nothing that can fail to load (no files, no
	 * verification, cipher aliases only): the context is built at the first
	 * TLS connection, from these copies. Building one loads OpenSSL's
	 * providers and algorithm tables, 2.6 MiB of RSS that a pooler whose
	 * servers never accept TLS (a sidecar on a unix socket or loopback)
	 * need not pay. */
	bool lazy;
	char *lazy_protocols, *lazy_ciphers;
};

static struct tls_side accept_side, connect_side;

static const char *const mode_names[] = {
	[TLS_DISABLE] = "disable", [TLS_ALLOW] = "allow", [TLS_PREFER] = "prefer",
	[TLS_REQUIRE] = "require", [TLS_VERIFY_CA] = "verify-ca", [TLS_VERIFY_FULL] = "verify-full",
};

static const unsigned char alpn_postgresql[] = "\x0apostgresql";

enum tls_sslmode tls_sslmode_parse(const char *s)
{
	for (size_t i = 0; i < ARRAY_SIZE(mode_names); i++)
		if (s && strcasecmp(s, mode_names[i]) == 0)
			return (enum tls_sslmode)i;
	return TLS_DISABLE;
}

const char *tls_sslmode_name(enum tls_sslmode m)
{
	return (size_t)m < ARRAY_SIZE(mode_names) ? mode_names[m] : "?";
}

/* The oldest error of the queue as text (or fallback), queue cleared. */
static void take_error(char *err, size_t len, const char *fallback)
{
	unsigned long e = ERR_get_error();
	if (e) {
		char buf[200];
		ERR_error_string_n(e, buf, sizeof(buf));
		/* "error:0A000086:SSL routines::certificate verify failed": keep the reason */
		const char *reason = strrchr(buf, ':');
		snprintf(err, len, "%s", reason && reason[1] ? reason + 1 : buf);
	} else {
		snprintf(err, len, "%s", fallback);
	}
	ERR_clear_error();
}

/* err = "what (OpenSSL's reason)"; the queue is cleared. */
static void fail_with(char *err, size_t len, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void fail_with(char *err, size_t len, const char *fmt, ...)
{
	char what[300], reason[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	take_error(reason, sizeof(reason), "");
	snprintf(err, len, reason[0] ? "%s (%s)" : "%s", what, reason);
}

/* ------------------------------------------------------------ contexts */

#define PROTO_TLS10 1u
#define PROTO_TLS11 2u
#define PROTO_TLS12 4u
#define PROTO_TLS13 8u

static bool parse_protocols(const char *spec, unsigned *mask, char *err, size_t errlen)
{
	static const struct { const char *name; unsigned bits; } words[] = {
		{ "all", PROTO_TLS10 | PROTO_TLS11 | PROTO_TLS12 | PROTO_TLS13 },
		{ "legacy", PROTO_TLS10 | PROTO_TLS11 | PROTO_TLS12 | PROTO_TLS13 },
		{ "secure", PROTO_TLS12 | PROTO_TLS13 },
		{ "default", PROTO_TLS12 | PROTO_TLS13 },
		{ "tlsv1", PROTO_TLS10 }, { "tlsv1.0", PROTO_TLS10 }, { "tlsv1.1", PROTO_TLS11 },
		{ "tlsv1.2", PROTO_TLS12 }, { "tlsv1.3", PROTO_TLS13 },
	};
	*mask = 0;
	char *copy = xstrdup(spec && *spec ? spec : "secure"), *save = NULL;
	bool ok = true;
	for (char *w = strtok_r(copy, ", :\t", &save); w; w = strtok_r(NULL, ", :\t", &save)) {
		bool neg = *w == '!' || *w == '-';
		size_t i = 0;
		while (i < ARRAY_SIZE(words) && strcasecmp(w + neg, words[i].name) != 0)
			i++;
		if (i == ARRAY_SIZE(words)) {
			snprintf(err, errlen, "unknown TLS protocol \"%s\" (use secure, all, legacy or tlsv1.0 ... tlsv1.3)", w);
			ok = false;
			break;
		}
		*mask = neg ? *mask & ~words[i].bits : *mask | words[i].bits;
	}
	free(copy);
	if (ok && !*mask) {
		snprintf(err, errlen, "no TLS protocol version left in \"%s\"", spec);
		ok = false;
	}
	return ok;
}

static bool set_protocols(SSL_CTX *ctx, const char *spec, char *err, size_t errlen)
{
	static const struct { unsigned bit; int version; uint64_t no_opt; } v[] = {
		{ PROTO_TLS10, TLS1_VERSION, SSL_OP_NO_TLSv1 },
		{ PROTO_TLS11, TLS1_1_VERSION, SSL_OP_NO_TLSv1_1 },
		{ PROTO_TLS12, TLS1_2_VERSION, SSL_OP_NO_TLSv1_2 },
		{ PROTO_TLS13, TLS1_3_VERSION, SSL_OP_NO_TLSv1_3 },
	};
	unsigned mask;
	if (!parse_protocols(spec, &mask, err, errlen))
		return false;
	int lo = 0, hi = 0;
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		if (mask & v[i].bit) {
			if (!lo)
				lo = v[i].version;
			hi = v[i].version;
		} else {
			SSL_CTX_set_options(ctx, v[i].no_opt);   /* a gap inside [lo, hi] */
		}
	}
	if (!SSL_CTX_set_min_proto_version(ctx, lo) || !SSL_CTX_set_max_proto_version(ctx, hi)) {
		fail_with(err, errlen, "cannot set the TLS protocol range");
		return false;
	}
	return true;
}

/* PgBouncer's cipher aliases (from libtls) and OpenSSL cipher lists. */
static bool set_ciphers(SSL_CTX *ctx, const char *ciphers, const char *tls13, char *err, size_t errlen)
{
	static const char *const defaults[] = { "", "default", "secure", "fast", "normal", NULL };
	static const char *const wide[] = { "compat", "legacy", "insecure", "all", NULL };
	const char *list = ciphers ? ciphers : "";
	for (size_t i = 0; list && defaults[i]; i++)
		if (strcasecmp(list, defaults[i]) == 0)
			list = NULL;
	for (size_t i = 0; list && wide[i]; i++)
		if (strcasecmp(list, wide[i]) == 0)
			list = "ALL:!aNULL:!eNULL";
	if (list && !SSL_CTX_set_cipher_list(ctx, list)) {
		fail_with(err, errlen, "no usable cipher in \"%s\"", list);
		return false;
	}
	if (tls13 && *tls13 && !SSL_CTX_set_ciphersuites(ctx, tls13)) {
		fail_with(err, errlen, "no usable TLS 1.3 cipher suite in \"%s\"", tls13);
		return false;
	}
	return true;
}

static bool set_key_exchange(SSL_CTX *ctx, const struct tls_settings *s, char *err, size_t errlen)
{
	const char *curve = s->ecdhcurve && *s->ecdhcurve ? s->ecdhcurve : "auto";
	if (strcasecmp(curve, "auto") != 0 && strcasecmp(curve, "none") != 0 &&
	    !SSL_CTX_set1_groups_list(ctx, curve)) {
		fail_with(err, errlen, "client_tls_ecdhcurve = %s: unknown group", curve);
		return false;
	}
	const char *dh = s->dheparams && *s->dheparams ? s->dheparams : "auto";
	if (strcasecmp(dh, "auto") == 0 || strcasecmp(dh, "legacy") == 0) {
		SSL_CTX_set_dh_auto(ctx, 1);
	} else if (strcasecmp(dh, "none") != 0) {
		snprintf(err, errlen, "client_tls_dheparams must be auto, legacy or none, not \"%s\"", dh);
		return false;
	}
	return true;
}

/* Certificate and key; both or neither for the connect side. */
static bool load_cert(SSL_CTX *ctx, const char *prefix, const struct tls_settings *s, bool needed,
		      char *err, size_t errlen)
{
	bool has_key = s->key_file && *s->key_file, has_cert = s->cert_file && *s->cert_file;
	if (!has_key && !has_cert && !needed)
		return true;
	if (!has_key || !has_cert) {
		snprintf(err, errlen, "%s_tls_sslmode = %s needs both %s_tls_key_file and %s_tls_cert_file",
			 prefix, s->sslmode, prefix, prefix);
		return false;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, s->cert_file) != 1) {
		fail_with(err, errlen, "cannot load the certificate from %s_tls_cert_file %s", prefix, s->cert_file);
		return false;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, s->key_file, SSL_FILETYPE_PEM) != 1) {
		fail_with(err, errlen, "cannot load the private key from %s_tls_key_file %s", prefix, s->key_file);
		return false;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		fail_with(err, errlen, "%s_tls_key_file %s does not match %s_tls_cert_file %s", prefix,
			  s->key_file, prefix, s->cert_file);
		return false;
	}
	return true;
}

static bool load_ca(SSL_CTX *ctx, const char *prefix, const char *ca_file, char *err, size_t errlen)
{
	if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		fail_with(err, errlen, "cannot load CA certificates from %s_tls_ca_file %s", prefix, ca_file);
		return false;
	}
	return true;
}

/* Only "postgresql" is spoken; a client offering ALPN without it is refused. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned char *sel = NULL;
	if (SSL_select_next_proto(&sel, outlen, alpn_postgresql, sizeof(alpn_postgresql) - 1, in, inlen) ==
	    OPENSSL_NPN_NEGOTIATED) {
		*out = sel;
		return SSL_TLSEXT_ERR_OK;
	}
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static void ctx_common(SSL_CTX *ctx)
{
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF |
				 SSL_OP_NO_TICKET);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
			      SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
}

static SSL_CTX *build_accept(const struct tls_settings *s, enum tls_sslmode mode, char *err, size_t errlen)
{
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		fail_with(err, errlen, "cannot create a TLS context");
		return NULL;
	}
	ctx_common(ctx);
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_num_tickets(ctx, 0);
	static const unsigned char sid[] = "tidepool";
	SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
	SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
	bool ok = set_protocols(ctx, s->protocols, err, errlen) &&
		  set_ciphers(ctx, s->ciphers, s->tls13_ciphers, err, errlen) &&
		  set_key_exchange(ctx, s, err, errlen) &&
		  load_cert(ctx, "client", s, true, err, errlen);
	bool has_ca = s->ca_file && *s->ca_file;
	if (ok && mode >= TLS_VERIFY_CA && !has_ca) {
		snprintf(err, errlen, "client_tls_sslmode = %s needs client_tls_ca_file", s->sslmode);
		ok = false;
	}
	if (ok && has_ca) {
		ok = load_ca(ctx, "client", s->ca_file, err, errlen);
		STACK_OF(X509_NAME) *names = ok ? SSL_load_client_CA_file(s->ca_file) : NULL;
		if (names)
			SSL_CTX_set_client_CA_list(ctx, names);
		/* A presented certificate must verify; verify-ca/-full demand one. */
		int vm = SSL_VERIFY_PEER | (mode >= TLS_VERIFY_CA ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
		SSL_CTX_set_verify(ctx, vm, NULL);
	}
	ERR_clear_error();
	if (!ok) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static SSL_CTX *build_connect(const struct tls_settings *s, enum tls_sslmode mode, char *err, size_t errlen)
{
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		fail_with(err, errlen, "cannot create a TLS context");
		return NULL;
	}
	ctx_common(ctx);
	bool ok = set_protocols(ctx, s->protocols, err, errlen) &&
		  set_ciphers(ctx, s->ciphers, s->tls13_ciphers, err, errlen) &&
		  load_cert(ctx, "server", s, false, err, errlen);
	if (ok && mode >= TLS_VERIFY_CA) {
		if (s->ca_file && *s->ca_file)
			ok = load_ca(ctx, "server", s->ca_file, err, errlen);
		else if (SSL_CTX_set_default_verify_paths(ctx) != 1)
			fail_with(err, errlen, "cannot load the system CA store"), ok = false;
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	if (ok && SSL_CTX_set_alpn_protos(ctx, alpn_postgresql, sizeof(alpn_postgresql) - 1) != 0) {
		fail_with(err, errlen, "cannot set ALPN");
		ok = false;
	}
	ERR_clear_error();
	if (!ok) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static bool is_cipher_alias(const char *ciphers)
{
	static const char *const aliases[] = { "", "default", "secure", "fast", "normal",
					       "compat", "legacy", "insecure", "all" };
	for (size_t i = 0; i < ARRAY_SIZE(aliases); i++)
		if (strcasecmp(ciphers ? ciphers : "", aliases[i]) == 0)
			return true;
	return false;
}

/* True if building the connect context later cannot fail on the settings:
 * the protocol list parses, and nothing else needs OpenSSL to check. */
static bool connect_deferrable(const struct tls_settings *s, enum tls_sslmode mode)
{
	unsigned mask;
	char err[160];
	return mode < TLS_VERIFY_CA && !(s->key_file && *s->key_file) && !(s->cert_file && *s->cert_file) &&
	       !(s->ca_file && *s->ca_file) && !(s->tls13_ciphers && *s->tls13_ciphers) &&
	       is_cipher_alias(s->ciphers) && parse_protocols(s->protocols, &mask, err, sizeof(err));
}

static void side_set(struct tls_side *side, SSL_CTX *ctx, enum tls_sslmode mode, const struct tls_settings *lazy)
{
	SSL_CTX_free(side->ctx);
	free(side->lazy_protocols);
	free(side->lazy_ciphers);
	side->ctx = ctx;
	side->mode = mode;
	side->lazy = lazy != NULL;
	side->lazy_protocols = lazy && lazy->protocols ? xstrdup(lazy->protocols) : NULL;
	side->lazy_ciphers = lazy && lazy->ciphers ? xstrdup(lazy->ciphers) : NULL;
}

static bool configure(struct tls_side *side, const struct tls_settings *s, bool accept, char *err, size_t errlen)
{
	enum tls_sslmode mode = tls_sslmode_parse(s->sslmode);
	SSL_CTX *ctx = NULL;
	err[0] = '\0';
	if (mode != TLS_DISABLE && !accept && connect_deferrable(s, mode)) {
		side_set(side, NULL, mode, s);
		return true;
	}
	if (mode != TLS_DISABLE) {
		ctx = accept ? build_accept(s, mode, err, errlen) : build_connect(s, mode, err, errlen);
		if (!ctx)
			return false;
	}
	side_set(side, ctx, mode, NULL);
	return true;
}

/* The connect context, built now if it was deferred. */
static SSL_CTX *connect_ctx(char *err, size_t errlen)
{
	if (connect_side.mode == TLS_DISABLE)
		return NULL;
	if (!connect_side.ctx && connect_side.lazy) {
		struct tls_settings s = { .protocols = connect_side.lazy_protocols,
					  .ciphers = connect_side.lazy_ciphers };
		connect_side.ctx = build_connect(&s, connect_side.mode, err, errlen);
		connect_side.lazy = connect_side.ctx == NULL;
	}
	return connect_side.ctx;
}

bool tls_configure(const struct tls_settings *acc, const struct tls_settings *con, char *err, size_t errlen)
{
	enum tls_sslmode amode = tls_sslmode_parse(acc->sslmode), cmode = tls_sslmode_parse(con->sslmode);
	SSL_CTX *actx = NULL, *cctx = NULL;
	bool lazy = cmode != TLS_DISABLE && connect_deferrable(con, cmode);
	err[0] = '\0';
	if (amode != TLS_DISABLE && !(actx = build_accept(acc, amode, err, errlen)))
		return false;
	if (cmode != TLS_DISABLE && !lazy && !(cctx = build_connect(con, cmode, err, errlen))) {
		SSL_CTX_free(actx);
		return false;
	}
	side_set(&accept_side, actx, amode, NULL);
	side_set(&connect_side, cctx, cmode, lazy ? con : NULL);
	return true;
}

bool tls_configure_accept(const struct tls_settings *s, char *err, size_t errlen)
{
	return configure(&accept_side, s, true, err, errlen);
}

bool tls_configure_connect(const struct tls_settings *s, char *err, size_t errlen)
{
	return configure(&connect_side, s, false, err, errlen);
}

enum tls_sslmode tls_accept_mode(void) { return accept_side.mode; }
enum tls_sslmode tls_connect_mode(void) { return connect_side.mode; }

bool tls_accept_available(void)
{
	return accept_side.ctx && accept_side.mode != TLS_DISABLE;
}

void tls_free_contexts(void)
{
	side_set(&accept_side, NULL, TLS_DISABLE, NULL);
	side_set(&connect_side, NULL, TLS_DISABLE, NULL);
}

/* ------------------------------------------------------------ sessions */

static struct tls_conn *session_new(SSL_CTX *ctx, int fd, char *err, size_t errlen)
{
	if (!ctx) {
		snprintf(err, errlen, "TLS is not configured");
		return NULL;
	}
	ERR_clear_error();
	SSL *ssl = SSL_new(ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1) {
		fail_with(err, errlen, "cannot create a TLS session");
		SSL_free(ssl);
		return NULL;
	}
	struct tls_conn *t = xcalloc(1, sizeof(*t));
	t->ssl = ssl;
	return t;
}

struct tls_conn *tls_accept_new(int fd, bool direct, char *err, size_t errlen)
{
	struct tls_conn *t = session_new(accept_side.mode != TLS_DISABLE ? accept_side.ctx : NULL, fd, err, errlen);
	if (!t)
		return NULL;
	t->direct = direct;
	SSL_set_accept_state(t->ssl);
	return t;
}

/* SNI for names only (RFC 6066: no literal addresses); verify-full checks
 * the name or the address against the certificate. */
static bool set_peer_name(struct tls_conn *t, const char *host, char *err, size_t errlen)
{
	unsigned char ip[16];
	bool is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
	if (!is_ip && SSL_set_tlsext_host_name(t->ssl, host) != 1) {
		fail_with(err, errlen, "cannot set SNI");
		return false;
	}
	if (connect_side.mode != TLS_VERIFY_FULL)
		return true;
	X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
	X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	int r = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, host) : SSL_set1_host(t->ssl, host);
	if (r != 1) {
		fail_with(err, errlen, "cannot set the expected host name");
		return false;
	}
	return true;
}

struct tls_conn *tls_connect_new(int fd, const char *host, char *err, size_t errlen)
{
	SSL_CTX *ctx = connect_ctx(err, errlen);
	if (!ctx && connect_side.lazy)
		return NULL;   /* the deferred build failed: err says why */
	struct tls_conn *t = session_new(ctx, fd, err, errlen);
	if (!t)
		return NULL;
	SSL_set_connect_state(t->ssl);
	if (host && *host && host[0] != '/' && !set_peer_name(t, host, err, errlen)) {
		tls_close(t);
		return NULL;
	}
	ERR_clear_error();
	return t;
}

/* Describes a failed handshake: a certificate problem by its verify
 * result, else OpenSSL's reason, else the socket error. */
static void handshake_error(struct tls_conn *t, int r, int e, char *err, size_t errlen)
{
	long vr = SSL_get_verify_result(t->ssl);
	if (e == SSL_ERROR_SSL && vr != X509_V_OK) {
		snprintf(err, errlen, "certificate verify failed: %s", X509_verify_cert_error_string(vr));
		ERR_clear_error();
		return;
	}
	if (e == SSL_ERROR_SYSCALL && !ERR_peek_error()) {
		snprintf(err, errlen, "%s", r == 0 || errno == 0 ? "peer closed the connection" : strerror(errno));
		ERR_clear_error();
		return;
	}
	take_error(err, errlen, "protocol error");
}

enum tls_step tls_handshake(struct tls_conn *t, char *err, size_t errlen)
{
	ERR_clear_error();
	errno = 0;
	int r = SSL_do_handshake(t->ssl);
	if (r == 1) {
		ERR_clear_error();
		const unsigned char *proto = NULL;
		unsigned int plen = 0;
		SSL_get0_alpn_selected(t->ssl, &proto, &plen);
		if (t->direct && plen == 0) {
			snprintf(err, errlen, "direct TLS connection without ALPN \"postgresql\"");
			t->failed = true;
			return TLS_STEP_ERROR;
		}
		t->established = true;
		return TLS_STEP_DONE;
	}
	int e = SSL_get_error(t->ssl, r);
	switch (e) {
	case SSL_ERROR_WANT_READ:
		ERR_clear_error();
		return TLS_STEP_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		ERR_clear_error();
		return TLS_STEP_WANT_WRITE;
	default:
		t->failed = true;
		handshake_error(t, r, e, err, errlen);
		return TLS_STEP_ERROR;
	}
}

bool tls_established(const struct tls_conn *t)
{
	return t->established;
}

/* After an I/O call failed with e: errno and t->err set, -1. */
static ssize_t io_error(struct tls_conn *t, int ret, int e)
{
	int saved = errno;
	t->failed = true;
	if (e == SSL_ERROR_SYSCALL && !ERR_peek_error()) {
		snprintf(t->err, sizeof(t->err), "%s", saved ? strerror(saved) : "connection closed");
		errno = saved ? saved : ECONNRESET;
	} else {
		take_error(t->err, sizeof(t->err), "TLS protocol error");
		errno = EPROTO;
	}
	ERR_clear_error();
	return -1;
}

ssize_t tls_read(struct tls_conn *t, void *buf, size_t n)
{
	size_t got = 0;
	ERR_clear_error();
	errno = 0;
	int r = SSL_read_ex(t->ssl, buf, n, &got);
	if (r == 1) {
		t->read_wants_write = false;
		return (ssize_t)got;
	}
	int e = SSL_get_error(t->ssl, r);
	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		ERR_clear_error();
		t->read_wants_write = e == SSL_ERROR_WANT_WRITE;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		ERR_clear_error();
		return 0;
	default:
		return io_error(t, r, e);
	}
}

ssize_t tls_write(struct tls_conn *t, const void *buf, size_t n)
{
	size_t done = 0;
	if (n == 0)
		return 0;
	ERR_clear_error();
	errno = 0;
	int r = SSL_write_ex(t->ssl, buf, n, &done);
	if (r == 1) {
		t->write_wants_read = false;
		return (ssize_t)done;
	}
	int e = SSL_get_error(t->ssl, r);
	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		ERR_clear_error();
		t->write_wants_read = e == SSL_ERROR_WANT_READ;
		return 0;
	default:
		return io_error(t, r, e);
	}
}

bool tls_read_wants_write(const struct tls_conn *t) { return t->read_wants_write; }
bool tls_write_wants_read(const struct tls_conn *t) { return t->write_wants_read; }

bool tls_pending(const struct tls_conn *t)
{
	return SSL_has_pending(t->ssl) == 1;
}

const char *tls_error(const struct tls_conn *t)
{
	return t->err[0] ? t->err : "TLS error";
}

void tls_close(struct tls_conn *t)
{
	if (!t)
		return;
	if (t->established && !t->failed) {
		ERR_clear_error();
		(void)SSL_shutdown(t->ssl);   /* one try at close_notify; never waits */
		ERR_clear_error();
	}
	SSL_free(t->ssl);
	free(t);
}

void tls_describe(const struct tls_conn *t, char *buf, size_t len)
{
	if (!t || !t->established) {
		snprintf(buf, len, "%s", "");
		return;
	}
	char group[40] = "";
	int nid = SSL_get_negotiated_group(t->ssl);
	if (nid > 0 && !(nid & TLSEXT_nid_unknown)) {
		const char *sn = OBJ_nid2sn(nid);
		if (sn)
			snprintf(group, sizeof(group), "/ECDH=%s", sn);
	}
	snprintf(buf, len, "%s/%s%s", SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl), group);
	ERR_clear_error();
}

bool tls_peer_cn(const struct tls_conn *t, char *buf, size_t len)
{
	if (!t || !t->established || SSL_get_verify_result(t->ssl) != X509_V_OK)
		return false;
	X509 *cert = SSL_get0_peer_certificate(t->ssl);
	if (!cert)
		return false;
	int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, (int)len);
	ERR_clear_error();
	/* a name with an embedded NUL or one that did not fit is no name */
	return n > 0 && (size_t)n < len && strlen(buf) == (size_t)n;
}
