/* Unit tests of proto, the pure PostgreSQL v3 wire codec: header reading,
 * startup packet parsing, the bounded reader, ErrorResponse field lookup,
 * every message builder (byte for byte against the protocol documentation),
 * writer overflow, SQL literal quoting, and a random-input loop meant to be
 * run under valgrind. Packets handed to parsers live in exactly-sized heap
 * blocks so that valgrind reports any read past their end. */
#include "unit.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "proto.h"

#define GUARD_BYTE 0xA5

/* Big-endian helpers for building expected bytes by hand. */
static size_t be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return 4;
}

static size_t cstr(uint8_t *p, const char *s)
{
	size_t n = strlen(s) + 1;
	memcpy(p, s, n);
	return n;
}

/* A heap copy of exactly n bytes (valgrind catches reads past it). */
static uint8_t *heap_copy(const void *p, size_t n)
{
	uint8_t *b = malloc(n ? n : 1);
	if (!b)
		abort();
	if (n)
		memcpy(b, p, n);
	return b;
}

/* Builds a startup-phase packet: length, code, then body bytes. */
static size_t make_packet(uint8_t *out, uint32_t code, const void *body, size_t body_len)
{
	size_t n = 8 + body_len;
	be32(out, (uint32_t)n);
	be32(out + 4, code);
	if (body_len)
		memcpy(out + 8, body, body_len);
	return n;
}

/* The exactly-sized copy parsed last; st's views point into it, so it lives
 * until the next parse_heap() (or parse_heap_release()). */
static uint8_t *parsed_copy;

static void parse_heap_release(void)
{
	free(parsed_copy);
	parsed_copy = NULL;
}

static enum proto_result parse_heap(const void *p, size_t n, struct proto_startup *st,
				    const char **why)
{
	parse_heap_release();
	parsed_copy = heap_copy(p, n);
	*why = NULL;
	return proto_parse_startup(parsed_copy, n, st, why);
}

static bool bytes_eq(const uint8_t *a, const uint8_t *b, size_t n)
{
	return memcmp(a, b, n) == 0;
}

static void dump_diff(const char *what, const uint8_t *got, size_t got_len, const uint8_t *exp,
		      size_t exp_len)
{
	fprintf(stderr, "%s: got %zu bytes:", what, got_len);
	for (size_t i = 0; i < got_len; i++)
		fprintf(stderr, " %02x", got[i]);
	fprintf(stderr, "\n%s: expected %zu bytes:", what, exp_len);
	for (size_t i = 0; i < exp_len; i++)
		fprintf(stderr, " %02x", exp[i]);
	fprintf(stderr, "\n");
}

/* Compares a writer's output with the expected bytes. */
#define CHECK_BYTES(w, exp, exp_len) do { \
	CHECK(!(w)->overflow); \
	CHECK_INT((w)->len, (exp_len)); \
	if ((w)->len == (exp_len) && !bytes_eq((w)->buf, (exp), (exp_len))) { \
		dump_diff(#exp, (w)->buf, (w)->len, (exp), (exp_len)); \
		CHECK(!"bytes differ"); \
	} \
} while (0)

/* ---------- header ---------- */

static void test_read_header(void)
{
	struct proto_header h;
	uint8_t b[8] = { 'Q', 0, 0, 0, 9, 's', 'e', 'l' };

	for (size_t n = 0; n < PROTO_HEADER_LEN; n++)
		CHECK_INT(proto_read_header(b, n, &h), PROTO_NEED_MORE);
	CHECK_INT(proto_read_header(NULL, 0, &h), PROTO_NEED_MORE);

	memset(&h, 0, sizeof(h));
	CHECK_INT(proto_read_header(b, 5, &h), PROTO_OK);
	CHECK_INT(h.type, 'Q');
	CHECK_INT(h.len, 9);
	CHECK_INT(proto_read_header(b, sizeof(b), &h), PROTO_OK);
	CHECK_INT(h.len, 9);

	/* length exactly 4 (empty body) is fine */
	uint8_t sync[5] = { 'S', 0, 0, 0, 4 };
	CHECK_INT(proto_read_header(sync, 5, &h), PROTO_OK);
	CHECK_INT(h.type, 'S');
	CHECK_INT(h.len, 4);

	/* below 4 is an error */
	for (uint8_t l = 0; l < 4; l++) {
		uint8_t bad[5] = { 'Q', 0, 0, 0, l };
		CHECK_INT(proto_read_header(bad, 5, &h), PROTO_ERROR);
	}

	/* big-endian, all four bytes */
	uint8_t big[5] = { 'd', 0x12, 0x34, 0x56, 0x78 };
	CHECK_INT(proto_read_header(big, 5, &h), PROTO_OK);
	CHECK_INT(h.type, 'd');
	CHECK_INT(h.len, 0x12345678u);
	uint8_t max[5] = { 'd', 0xff, 0xff, 0xff, 0xff };
	CHECK_INT(proto_read_header(max, 5, &h), PROTO_OK);
	CHECK_INT(h.len, 0xffffffffu);

	/* exactly-sized heap block: no read past 5 bytes */
	uint8_t *hp = heap_copy(sync, 5);
	CHECK_INT(proto_read_header(hp, 5, &h), PROTO_OK);
	free(hp);
}

static void test_frontend_max_len(void)
{
	const uint8_t large[] = { 'Q', 'P', 'B', 'F', 'd', 'f', 'p' };
	const uint8_t named[] = { 'D', 'E', 'C' };   /* statement and portal names of any length */
	const uint8_t small[] = { 'S', 'H', 'X', 'c', 0, 'Z', 0xff };

	for (size_t i = 0; i < sizeof(large); i++)
		CHECK_INT(proto_frontend_max_len(large[i]), PROTO_MAX_LARGE_LEN);
	for (size_t i = 0; i < sizeof(named); i++)
		CHECK_INT(proto_frontend_max_len(named[i]), PROTO_MAX_NAME_LEN);
	for (size_t i = 0; i < sizeof(small); i++)
		CHECK_INT(proto_frontend_max_len(small[i]), PROTO_MAX_SMALL_LEN);
	CHECK_INT(PROTO_MAX_LARGE_LEN, 0x3fffffff);
	CHECK_INT(PROTO_MAX_SMALL_LEN, 10000);
}

/* ---------- startup packets ---------- */

static void test_startup_valid(void)
{
	static const char body[] = "user\0alice\0database\0db1\0application_name\0psql\0";
	uint8_t pkt[128];
	size_t n = make_packet(pkt, PROTO_VERSION_3_0, body, sizeof(body)); /* includes final NUL */
	struct proto_startup st;
	const char *why = NULL;
	uint8_t *hp = heap_copy(pkt, n);

	CHECK_INT(n, 8 + 47);
	CHECK_INT(proto_parse_startup(hp, n, &st, &why), PROTO_OK);
	CHECK_INT(st.code, 196608);
	CHECK_INT(st.n_params, 3);
	CHECK_STR(st.names[0], "user");
	CHECK_STR(st.values[0], "alice");
	CHECK_STR(st.names[1], "database");
	CHECK_STR(st.values[1], "db1");
	CHECK_STR(st.names[2], "application_name");
	CHECK_STR(st.values[2], "psql");
	/* views point into the caller's buffer */
	CHECK(st.names[0] == (const char *)hp + 8);
	CHECK(st.values[2] >= (const char *)hp && st.values[2] < (const char *)hp + n);
	CHECK_INT(st.cancel_pid, 0);
	CHECK_INT(st.cancel_key, 0);

	CHECK_STR(proto_startup_get(&st, "user"), "alice");
	CHECK_STR(proto_startup_get(&st, "database"), "db1");
	CHECK_STR(proto_startup_get(&st, "application_name"), "psql");
	CHECK(proto_startup_get(&st, "options") == NULL);
	CHECK(proto_startup_get(&st, "User") == NULL);
	CHECK(proto_startup_get(&st, "") == NULL);
	CHECK(proto_startup_get(&st, "use") == NULL);
	free(hp);

	/* empty values are allowed */
	static const char body2[] = "user\0bob\0options\0\0";
	n = make_packet(pkt, PROTO_VERSION_3_0, body2, sizeof(body2));
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_OK);
	CHECK_INT(st.n_params, 2);
	CHECK_STR(proto_startup_get(&st, "options"), "");

	/* no parameters at all: just the terminator */
	n = make_packet(pkt, PROTO_VERSION_3_0, "", 1);
	CHECK_INT(n, 9);
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_OK);
	CHECK_INT(st.n_params, 0);
	CHECK(proto_startup_get(&st, "user") == NULL);

	/* duplicate name: first one wins in the lookup */
	static const char body3[] = "user\0a\0user\0b\0";
	n = make_packet(pkt, PROTO_VERSION_3_0, body3, sizeof(body3));
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_OK);
	CHECK_INT(st.n_params, 2);
	CHECK_STR(proto_startup_get(&st, "user"), "a");

	/* out is fully reset between parses */
	memset(&st, 0x5a, sizeof(st));
	n = make_packet(pkt, PROTO_VERSION_3_0, "", 1);
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_OK);
	CHECK_INT(st.n_params, 0);
	CHECK_INT(st.cancel_pid, 0);
}

static void test_startup_versions(void)
{
	static const char body[] = "user\0u\0";
	uint8_t pkt[64];
	struct proto_startup st;
	const char *why;
	size_t n;

	/* 3.1 and 3.2, any 3.x minor */
	n = make_packet(pkt, (3u << 16) | 1, body, sizeof(body));
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_OK);
	CHECK_INT(st.code, 196609);
	CHECK_STR(proto_startup_get(&st, "user"), "u");
	n = make_packet(pkt, (3u << 16) | 2, body, sizeof(body));
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_OK);
	n = make_packet(pkt, (3u << 16) | 0xffff, body, sizeof(body));
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_OK);

	/* 2.0, 4.0, 1.0, 0 and others are rejected with a message */
	const uint32_t bad[] = { 2u << 16, 4u << 16, 1u << 16, 0, (2u << 16) | 0xffff,
				 0xffffffffu, (1234u << 16) | 5677, (1234u << 16) | 5681 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = make_packet(pkt, bad[i], body, sizeof(body));
		why = NULL;
		CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_ERROR);
		CHECK(why != NULL && *why);
	}
}

static void test_startup_requests(void)
{
	uint8_t pkt[32];
	struct proto_startup st;
	const char *why;
	size_t n;

	CHECK_INT(PROTO_SSL_REQUEST, (1234 << 16) | 5679);
	CHECK_INT(PROTO_GSSENC_REQUEST, (1234 << 16) | 5680);
	CHECK_INT(PROTO_CANCEL_REQUEST, (1234 << 16) | 5678);

	/* SSLRequest: exactly 8 bytes */
	const uint8_t ssl[8] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };
	CHECK_INT(parse_heap(ssl, 8, &st, &why), PROTO_OK);
	CHECK_INT(st.code, 80877103);
	CHECK_INT(st.n_params, 0);

	/* GSSENCRequest */
	const uint8_t gss[8] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30 };
	CHECK_INT(parse_heap(gss, 8, &st, &why), PROTO_OK);
	CHECK_INT(st.code, 80877104);

	/* SSL/GSS with a body are wrong */
	n = make_packet(pkt, PROTO_SSL_REQUEST, "\0\0\0\0", 4);
	why = NULL;
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_ERROR);
	CHECK(why != NULL);
	n = make_packet(pkt, PROTO_GSSENC_REQUEST, "\0", 1);
	why = NULL;
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_ERROR);
	CHECK(why != NULL);

	/* CancelRequest: 16 bytes, pid then key */
	const uint8_t cancel[16] = { 0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e,
				     0x00, 0x00, 0x30, 0x39, 0xde, 0xad, 0xbe, 0xef };
	CHECK_INT(parse_heap(cancel, 16, &st, &why), PROTO_OK);
	CHECK_INT(st.code, 80877102);
	CHECK_INT(st.cancel_pid, 12345);
	CHECK_INT(st.cancel_key, 0xdeadbeefu);
	CHECK_INT(st.n_params, 0);

	/* CancelRequest with the wrong length */
	for (size_t body_len = 0; body_len <= 12; body_len++) {
		if (body_len == 8)
			continue;
		uint8_t zeros[12] = { 0 };
		n = make_packet(pkt, PROTO_CANCEL_REQUEST, zeros, body_len);
		why = NULL;
		CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_ERROR);
		CHECK(why != NULL);
	}
}

static void test_startup_bad_lengths(void)
{
	static const char body[] = "user\0u\0";
	uint8_t pkt[64];
	struct proto_startup st;
	const char *why;
	size_t n = make_packet(pkt, PROTO_VERSION_3_0, body, sizeof(body));

	/* shorter than 8 bytes (length field honest or not) */
	for (size_t k = 0; k < 8; k++) {
		uint8_t small[8] = { 0, 0, 0, (uint8_t)k, 0, 3, 0, 0 };
		why = NULL;
		CHECK_INT(parse_heap(small, k, &st, &why), PROTO_ERROR);
		CHECK(why != NULL);
	}

	/* length field larger or smaller than the buffer */
	be32(pkt, (uint32_t)n + 1);
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_ERROR);
	be32(pkt, (uint32_t)n - 1);
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_ERROR);
	be32(pkt, 0);
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_ERROR);
	be32(pkt, 0xffffffffu);
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_ERROR);
	/* honest length but the caller passes fewer bytes */
	be32(pkt, (uint32_t)n);
	CHECK_INT(parse_heap(pkt, n - 1, &st, &why), PROTO_ERROR);
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_OK);

	/* SSLRequest whose length field says 16 */
	const uint8_t ssl[8] = { 0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2f };
	CHECK_INT(parse_heap(ssl, 8, &st, &why), PROTO_ERROR);
}

static void test_startup_bad_layout(void)
{
	uint8_t pkt[64];
	struct proto_startup st;
	const char *why;
	size_t n;

	/* 3.0 with no body: missing terminator */
	n = make_packet(pkt, PROTO_VERSION_3_0, NULL, 0);
	why = NULL;
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_ERROR);
	CHECK(why != NULL);

	/* params without the final terminator */
	static const char noterm[] = "user\0u\0";
	n = make_packet(pkt, PROTO_VERSION_3_0, noterm, sizeof(noterm) - 1);
	why = NULL;
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_ERROR);
	CHECK(why != NULL);

	/* last string not NUL-terminated at all */
	n = make_packet(pkt, PROTO_VERSION_3_0, "user\0bob", 8);
	why = NULL;
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_ERROR);
	CHECK(why != NULL);
	n = make_packet(pkt, PROTO_VERSION_3_0, "user", 4);
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_ERROR);

	/* name without value */
	n = make_packet(pkt, PROTO_VERSION_3_0, "user\0", 5);
	why = NULL;
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_ERROR);
	CHECK(why != NULL);
	n = make_packet(pkt, PROTO_VERSION_3_0, "user\0\0", 6);
	/* "user" = "" and then no terminator */
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_ERROR);
	n = make_packet(pkt, PROTO_VERSION_3_0, "user\0u\0database\0", 17);
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_ERROR);

	/* empty name before more data */
	n = make_packet(pkt, PROTO_VERSION_3_0, "\0x\0\0", 4);
	why = NULL;
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_ERROR);
	CHECK(why != NULL);
	n = make_packet(pkt, PROTO_VERSION_3_0, "\0\0", 2);
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_ERROR);

	/* trailing garbage after the terminator */
	n = make_packet(pkt, PROTO_VERSION_3_0, "user\0u\0\0x", 9);
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_ERROR);
}

/* A 3.0 packet with `count` parameters p0=v0 ... */
static size_t many_params(uint8_t *out, size_t cap, size_t count)
{
	size_t pos = 8;
	for (size_t i = 0; i < count; i++) {
		char name[16], value[16];
		snprintf(name, sizeof(name), "p%zu", i);
		snprintf(value, sizeof(value), "v%zu", i);
		if (pos + strlen(name) + strlen(value) + 3 > cap)
			abort();
		pos += cstr(out + pos, name);
		pos += cstr(out + pos, value);
	}
	out[pos++] = 0;
	be32(out, (uint32_t)pos);
	be32(out + 4, PROTO_VERSION_3_0);
	return pos;
}

static void test_startup_too_many_params(void)
{
	static uint8_t pkt[2048];
	struct proto_startup st;
	const char *why;
	size_t n;

	n = many_params(pkt, sizeof(pkt), PROTO_MAX_STARTUP_PARAMS);
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_OK);
	CHECK_INT(st.n_params, PROTO_MAX_STARTUP_PARAMS);
	CHECK_STR(st.names[PROTO_MAX_STARTUP_PARAMS - 1], "p63");
	CHECK_STR(st.values[PROTO_MAX_STARTUP_PARAMS - 1], "v63");
	CHECK_STR(proto_startup_get(&st, "p0"), "v0");
	CHECK_STR(proto_startup_get(&st, "p63"), "v63");

	n = many_params(pkt, sizeof(pkt), PROTO_MAX_STARTUP_PARAMS + 1);
	why = NULL;
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_ERROR);
	CHECK(why != NULL && strstr(why, "too many") != NULL);
	CHECK(st.n_params <= PROTO_MAX_STARTUP_PARAMS);

	n = many_params(pkt, sizeof(pkt), 200);
	CHECK_INT(parse_heap(pkt, n, &st, &why), PROTO_ERROR);
}

/* ---------- reader ---------- */

static void test_reader(void)
{
	const uint8_t body[] = { 0x7f, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 'h', 'i', 0, 0, 1, 2, 3 };
	uint8_t *hp = heap_copy(body, sizeof(body));
	struct proto_reader r;

	proto_reader_init(&r, hp, sizeof(body));
	CHECK_INT(proto_remaining(&r), 14);
	CHECK_INT(proto_get_byte(&r), 0x7f);
	CHECK_INT(proto_get_int16(&r), 0x1234);
	CHECK_INT(proto_get_int32(&r), 0xdeadbeefu);
	CHECK_STR(proto_get_string(&r), "hi");
	CHECK_STR(proto_get_string(&r), "");
	CHECK_INT(proto_remaining(&r), 3);
	const uint8_t *b = proto_get_bytes(&r, 3);
	CHECK(b == hp + 11);
	CHECK(!r.err);
	CHECK_INT(proto_remaining(&r), 0);
	/* zero-length reads at the end are fine */
	CHECK(proto_get_bytes(&r, 0) != NULL);
	CHECK(!r.err);

	/* overruns: each sets err, returns 0/NULL, and err is sticky */
	CHECK_INT(proto_get_byte(&r), 0);
	CHECK(r.err);
	CHECK_INT(proto_remaining(&r), 0);

	proto_reader_init(&r, hp, 1);
	CHECK_INT(proto_get_int16(&r), 0);
	CHECK(r.err);
	CHECK_INT(proto_get_byte(&r), 0); /* would fit, but err is sticky */
	CHECK_INT(proto_remaining(&r), 0);

	proto_reader_init(&r, hp, 3);
	CHECK_INT(proto_get_int32(&r), 0);
	CHECK(r.err);
	CHECK_INT(r.pos, 0);

	proto_reader_init(&r, hp, 5);
	CHECK(proto_get_bytes(&r, 6) == NULL);
	CHECK(r.err);
	proto_reader_init(&r, hp, 5);
	CHECK(proto_get_bytes(&r, (size_t)-1) == NULL);
	CHECK(r.err);
	proto_reader_init(&r, hp, 5);
	CHECK(proto_get_bytes(&r, 5) == hp);
	CHECK(!r.err);

	/* string without NUL inside the length */
	proto_reader_init(&r, hp + 7, 2); /* "hi" without its NUL */
	CHECK(proto_get_string(&r) == NULL);
	CHECK(r.err);
	CHECK(proto_get_string(&r) == NULL);
	proto_reader_init(&r, hp, 0);
	CHECK(proto_get_string(&r) == NULL);
	CHECK(r.err);

	/* after err, string reads return NULL even if a NUL follows */
	proto_reader_init(&r, hp + 7, 3);
	CHECK_INT(proto_get_int32(&r), 0);
	CHECK(proto_get_string(&r) == NULL);

	/* int16 / int32 at the exact end */
	proto_reader_init(&r, hp + 1, 2);
	CHECK_INT(proto_get_int16(&r), 0x1234);
	CHECK(!r.err);
	proto_reader_init(&r, hp + 3, 4);
	CHECK_INT(proto_get_int32(&r), 0xdeadbeefu);
	CHECK(!r.err);
	CHECK_INT(proto_remaining(&r), 0);
	free(hp);
}

/* ---------- ErrorResponse fields ---------- */

static void test_error_field(void)
{
	static const char body[] = "SERROR\0VERROR\0C28P01\0Mpassword authentication failed\0\0";
	size_t len = sizeof(body) - 1; /* sizeof counts the literal's own NUL */
	uint8_t *hp = heap_copy(body, len);

	CHECK_STR(proto_error_field(hp, len, 'S'), "ERROR");
	CHECK_STR(proto_error_field(hp, len, 'V'), "ERROR");
	CHECK_STR(proto_error_field(hp, len, 'C'), "28P01");
	CHECK_STR(proto_error_field(hp, len, 'M'), "password authentication failed");
	CHECK(proto_error_field(hp, len, 'D') == NULL);
	CHECK(proto_error_field(hp, len, 'H') == NULL);
	CHECK(proto_error_field(hp, len, 0) == NULL);

	/* every truncation: no crash; fields wholly present are still found */
	for (size_t k = 0; k <= len; k++) {
		uint8_t *t = heap_copy(body, k);
		const char *s = proto_error_field(t, k, 'S');
		const char *m = proto_error_field(t, k, 'M');
		CHECK(proto_error_field(t, k, 'D') == NULL);
		if (k >= 7)
			CHECK_STR(s, "ERROR");
		else
			CHECK(s == NULL);
		if (k >= len - 1)
			CHECK_STR(m, "password authentication failed");
		else
			CHECK(m == NULL);
		free(t);
	}
	CHECK(proto_error_field(NULL, 0, 'M') == NULL);

	/* a field after the terminator is not seen */
	static const char early[] = "SFATAL\0\0Mhidden\0\0";
	CHECK(proto_error_field((const uint8_t *)early, sizeof(early) - 1, 'M') == NULL);
	CHECK_STR(proto_error_field((const uint8_t *)early, sizeof(early) - 1, 'S'), "FATAL");

	/* high-bit code bytes compare as bytes */
	static const char hi[] = "\xe9value\0\0";
	CHECK_STR(proto_error_field((const uint8_t *)hi, sizeof(hi) - 1, (char)0xe9), "value");
	free(hp);
}

/* ---------- writer: exact bytes ---------- */

static void test_write_ready(void)
{
	uint8_t buf[64];
	struct proto_writer w;
	const char st[] = { 'I', 'T', 'E' };

	for (size_t i = 0; i < 3; i++) {
		const uint8_t exp[] = { 'Z', 0, 0, 0, 5, (uint8_t)st[i] };
		proto_writer_init(&w, buf, sizeof(buf));
		proto_write_ready(&w, st[i]);
		CHECK_BYTES(&w, exp, sizeof(exp));
	}
}

static void test_write_error_notice(void)
{
	uint8_t buf[256], exp[256];
	struct proto_writer w;
	size_t n = 0;

	exp[n++] = 'E';
	n += 4;
	exp[n++] = 'S';
	n += cstr(exp + n, "FATAL");
	exp[n++] = 'V';
	n += cstr(exp + n, "FATAL");
	exp[n++] = 'C';
	n += cstr(exp + n, "28P01");
	exp[n++] = 'M';
	n += cstr(exp + n, "password authentication failed for user \"bob\"");
	exp[n++] = 0;
	be32(exp + 1, (uint32_t)(n - 1));

	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_error(&w, "FATAL", "28P01", "password authentication failed for user \"bob\"");
	CHECK_BYTES(&w, exp, n);
	/* the body reads back */
	CHECK_STR(proto_error_field(buf + 5, w.len - 5, 'C'), "28P01");
	CHECK_STR(proto_error_field(buf + 5, w.len - 5, 'S'), "FATAL");

	/* NoticeResponse: 'N', severity NOTICE */
	n = 0;
	exp[n++] = 'N';
	n += 4;
	exp[n++] = 'S';
	n += cstr(exp + n, "NOTICE");
	exp[n++] = 'V';
	n += cstr(exp + n, "NOTICE");
	exp[n++] = 'C';
	n += cstr(exp + n, "00000");
	exp[n++] = 'M';
	n += cstr(exp + n, "hello");
	exp[n++] = 0;
	be32(exp + 1, (uint32_t)(n - 1));
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_notice(&w, "00000", "hello");
	CHECK_BYTES(&w, exp, n);
	CHECK_INT(w.len, 1 + 4 + 8 + 8 + 7 + 7 + 1);
}

static void test_write_auth(void)
{
	uint8_t buf[128];
	struct proto_writer w;

	/* AuthenticationOk */
	const uint8_t ok[] = { 'R', 0, 0, 0, 8, 0, 0, 0, 0 };
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_auth(&w, PQ_AUTH_OK, NULL, 0);
	CHECK_BYTES(&w, ok, sizeof(ok));

	/* AuthenticationCleartextPassword */
	const uint8_t clear[] = { 'R', 0, 0, 0, 8, 0, 0, 0, 3 };
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_auth(&w, PQ_AUTH_CLEARTEXT, NULL, 0);
	CHECK_BYTES(&w, clear, sizeof(clear));

	/* AuthenticationMD5Password: code 5 + 4-byte salt, length 12 */
	const uint8_t salt[4] = { 0x01, 0xff, 0x80, 0x7f };
	const uint8_t md5[] = { 'R', 0, 0, 0, 12, 0, 0, 0, 5, 0x01, 0xff, 0x80, 0x7f };
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_auth(&w, PQ_AUTH_MD5, salt, 4);
	CHECK_BYTES(&w, md5, sizeof(md5));

	/* AuthenticationSASL: code 10, mechanism list "SCRAM-SHA-256\0\0" */
	static const char mechs[] = "SCRAM-SHA-256\0";  /* + literal NUL = two NULs */
	uint8_t exp[64];
	size_t n = 0;
	exp[n++] = 'R';
	n += be32(exp + n, 4 + 4 + sizeof(mechs));
	n += be32(exp + n, 10);
	memcpy(exp + n, mechs, sizeof(mechs));
	n += sizeof(mechs);
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_auth(&w, PQ_AUTH_SASL, mechs, sizeof(mechs));
	CHECK_BYTES(&w, exp, n);
	CHECK_INT(w.len, 1 + 4 + 4 + 15);

	/* AuthenticationSASLFinal: code 12 + data */
	const uint8_t fin[] = { 'R', 0, 0, 0, 11, 0, 0, 0, 12, 'v', '=', 'x' };
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_auth(&w, PQ_AUTH_SASL_FINAL, "v=x", 3);
	CHECK_BYTES(&w, fin, sizeof(fin));
}

static void test_write_backend_messages(void)
{
	uint8_t buf[128], exp[128];
	struct proto_writer w;
	size_t n;

	/* BackendKeyData: 'K', len 12, pid, key */
	const uint8_t key[] = { 'K', 0, 0, 0, 12, 0x00, 0x01, 0xe2, 0x40, 0xca, 0xfe, 0xba, 0xbe };
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_backend_key(&w, 123456, 0xcafebabeu);
	CHECK_BYTES(&w, key, sizeof(key));

	/* ParameterStatus: 'S', len, name\0 value\0 */
	n = 0;
	exp[n++] = 'S';
	n += 4;
	n += cstr(exp + n, "server_version");
	n += cstr(exp + n, "16.2");
	be32(exp + 1, (uint32_t)(n - 1));
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_parameter_status(&w, "server_version", "16.2");
	CHECK_BYTES(&w, exp, n);
	CHECK_INT(n, 1 + 4 + 15 + 5);

	/* empty value */
	const uint8_t empty[] = { 'S', 0, 0, 0, 7, 'a', 0, 0 };
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_parameter_status(&w, "a", "");
	CHECK_BYTES(&w, empty, sizeof(empty));

	/* NegotiateProtocolVersion: 'v', len, newest version (3 << 16 | minor as
	 * PostgreSQL sends it), count, names */
	n = 0;
	exp[n++] = 'v';
	n += 4;
	n += be32(exp + n, (3u << 16) | 0);
	n += be32(exp + n, 2);
	n += cstr(exp + n, "_pq_.foo");
	n += cstr(exp + n, "_pq_.bar");
	be32(exp + 1, (uint32_t)(n - 1));
	const char *const opts[] = { "_pq_.foo", "_pq_.bar" };
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_negotiate_version(&w, 0, opts, 2);
	CHECK_BYTES(&w, exp, n);

	const uint8_t nv[] = { 'v', 0, 0, 0, 12, 0, 3, 0, 2, 0, 0, 0, 0 };
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_negotiate_version(&w, 2, NULL, 0);
	CHECK_BYTES(&w, nv, sizeof(nv));
}

static void test_write_frontend_messages(void)
{
	uint8_t buf[256], exp[256];
	struct proto_writer w;
	size_t n;

	/* Query */
	n = 0;
	exp[n++] = 'Q';
	n += 4;
	n += cstr(exp + n, "SELECT 1;");
	be32(exp + 1, (uint32_t)(n - 1));
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_query(&w, "SELECT 1;");
	CHECK_BYTES(&w, exp, n);
	CHECK_INT(exp[4], 14);

	const uint8_t emptyq[] = { 'Q', 0, 0, 0, 5, 0 };
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_query(&w, "");
	CHECK_BYTES(&w, emptyq, sizeof(emptyq));

	/* Terminate */
	const uint8_t term[] = { 'X', 0, 0, 0, 4 };
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_terminate(&w);
	CHECK_BYTES(&w, term, sizeof(term));

	/* PasswordMessage: 'p', len, data as given (caller includes the NUL) */
	const uint8_t pw[] = { 'p', 0, 0, 0, 11, 's', 'e', 'c', 'r', 'e', 't', 0 };
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_password(&w, "secret", 7);
	CHECK_BYTES(&w, pw, sizeof(pw));

	/* SASLInitialResponse: 'p', len, mech\0, int32 data length, data */
	static const char first[] = "n,,n=,r=abc";
	n = 0;
	exp[n++] = 'p';
	n += 4;
	n += cstr(exp + n, "SCRAM-SHA-256");
	n += be32(exp + n, (uint32_t)strlen(first));
	memcpy(exp + n, first, strlen(first));
	n += strlen(first);
	be32(exp + 1, (uint32_t)(n - 1));
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_sasl_initial(&w, "SCRAM-SHA-256", first, strlen(first));
	CHECK_BYTES(&w, exp, n);
	CHECK_INT(n, 1 + 4 + 14 + 4 + 11);

	/* no initial data: length 0 (PostgreSQL uses -1 for "absent"; an empty
	 * response is length 0) */
	const uint8_t sasl0[] = { 'p', 0, 0, 0, 12, 'P', 'L', 'N', 0, 0, 0, 0, 0 };
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_sasl_initial(&w, "PLN", NULL, 0);
	CHECK_BYTES(&w, sasl0, sizeof(sasl0));

	/* CancelRequest: 16 bytes, no type byte, code 80877102 */
	const uint8_t cancel[] = { 0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e,
				   0x00, 0x00, 0x04, 0xd2, 0x01, 0x02, 0x03, 0x04 };
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_cancel_request(&w, 1234, 0x01020304);
	CHECK_BYTES(&w, cancel, sizeof(cancel));
	/* and it parses back */
	struct proto_startup st;
	const char *why;
	CHECK_INT(parse_heap(buf, w.len, &st, &why), PROTO_OK);
	CHECK_INT(st.code, PROTO_CANCEL_REQUEST);
	CHECK_INT(st.cancel_pid, 1234);
	CHECK_INT(st.cancel_key, 0x01020304);
}

static void test_write_startup(void)
{
	uint8_t buf[256], exp[256];
	struct proto_writer w;
	size_t n = 0;
	const char *const names[] = { "user", "database", "application_name" };
	const char *const values[] = { "alice", "db1", "tidepool" };

	n += 4;
	n += be32(exp + n, 196608);
	for (size_t i = 0; i < 3; i++) {
		n += cstr(exp + n, names[i]);
		n += cstr(exp + n, values[i]);
	}
	exp[n++] = 0;
	be32(exp, (uint32_t)n);

	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_startup(&w, names, values, 3);
	CHECK_BYTES(&w, exp, n);
	CHECK_INT(buf[w.len - 1], 0);
	CHECK_INT(buf[w.len - 2], 0);

	/* round trip */
	struct proto_startup st;
	const char *why;
	CHECK_INT(proto_parse_startup(buf, w.len, &st, &why), PROTO_OK);
	CHECK_INT(st.code, PROTO_VERSION_3_0);
	CHECK_INT(st.n_params, 3);
	CHECK_STR(proto_startup_get(&st, "application_name"), "tidepool");

	/* no params: length 9 */
	const uint8_t none[] = { 0, 0, 0, 9, 0, 3, 0, 0, 0 };
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_startup(&w, NULL, NULL, 0);
	CHECK_BYTES(&w, none, sizeof(none));
}

static void test_write_sequence(void)
{
	/* several messages in one buffer: each length is patched correctly */
	uint8_t buf[64];
	struct proto_writer w;
	const uint8_t exp[] = {
		'R', 0, 0, 0, 8, 0, 0, 0, 0,
		'K', 0, 0, 0, 12, 0, 0, 0, 7, 0, 0, 0, 9,
		'Z', 0, 0, 0, 5, 'I',
	};

	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_auth(&w, PQ_AUTH_OK, NULL, 0);
	proto_write_backend_key(&w, 7, 9);
	proto_write_ready(&w, 'I');
	CHECK_BYTES(&w, exp, sizeof(exp));

	/* primitives */
	const uint8_t prim[] = { 'x', 0, 0, 0, 16, 0xab, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef,
				 'o', 'k', 0, 0xff, 0x00 };
	proto_writer_init(&w, buf, sizeof(buf));
	proto_begin(&w, 'x');
	proto_put_byte(&w, 0xab);
	proto_put_int16(&w, 0x1234);
	proto_put_int32(&w, 0xdeadbeefu);
	proto_put_string(&w, "ok");
	proto_put_bytes(&w, "\xff\x00", 2);
	proto_put_bytes(&w, NULL, 0);
	proto_end(&w);
	CHECK_BYTES(&w, prim, sizeof(prim));
}

/* ---------- writer overflow ---------- */

typedef void (*write_fn)(struct proto_writer *w);

static void w_error(struct proto_writer *w) { proto_write_error(w, "ERROR", "42000", "some message"); }
static void w_notice(struct proto_writer *w) { proto_write_notice(w, "01000", "careful"); }
static void w_auth(struct proto_writer *w) { proto_write_auth(w, PQ_AUTH_MD5, "salt", 4); }
static void w_param(struct proto_writer *w) { proto_write_parameter_status(w, "TimeZone", "UTC"); }
static void w_key(struct proto_writer *w) { proto_write_backend_key(w, 1, 2); }
static void w_ready(struct proto_writer *w) { proto_write_ready(w, 'T'); }
static void w_query(struct proto_writer *w) { proto_write_query(w, "SELECT 42"); }
static void w_password(struct proto_writer *w) { proto_write_password(w, "pw\0", 3); }
static void w_sasl(struct proto_writer *w) { proto_write_sasl_initial(w, "SCRAM-SHA-256", "n,,n=,r=x", 9); }
static void w_term(struct proto_writer *w) { proto_write_terminate(w); }
static void w_cancel(struct proto_writer *w) { proto_write_cancel_request(w, 5, 6); }
static void w_negotiate(struct proto_writer *w)
{
	const char *const o[] = { "_pq_.a" };
	proto_write_negotiate_version(w, 0, o, 1);
}
static void w_startup(struct proto_writer *w)
{
	const char *const names[] = { "user", "database" };
	const char *const values[] = { "u", "d" };
	proto_write_startup(w, names, values, 2);
}

static void test_writer_overflow(void)
{
	const write_fn fns[] = { w_error, w_notice, w_auth, w_param, w_key, w_ready, w_query,
				 w_password, w_sasl, w_term, w_cancel, w_negotiate, w_startup };
	uint8_t ref[256], buf[256];
	struct proto_writer w;

	for (size_t f = 0; f < sizeof(fns) / sizeof(fns[0]); f++) {
		proto_writer_init(&w, ref, sizeof(ref));
		fns[f](&w);
		CHECK(!w.overflow);
		size_t full = w.len;
		CHECK(full > 0 && full < sizeof(ref));

		for (size_t cap = 0; cap <= full; cap++) {
			memset(buf, GUARD_BYTE, sizeof(buf));
			proto_writer_init(&w, buf, cap);
			fns[f](&w);
			if (cap < full) {
				CHECK(w.overflow);
				if (!w.overflow)
					fprintf(stderr, "  builder %zu cap %zu\n", f, cap);
			} else {
				CHECK(!w.overflow);
				CHECK_INT(w.len, full);
				CHECK(memcmp(buf, ref, full) == 0);
			}
			CHECK(w.len <= cap);
			bool intact = true;
			for (size_t i = cap; i < sizeof(buf); i++)
				if (buf[i] != GUARD_BYTE)
					intact = false;
			CHECK(intact);
			if (!intact)
				fprintf(stderr, "  builder %zu wrote past cap %zu\n", f, cap);
		}
	}

	/* overflow is sticky: a later small write that would fit is refused */
	memset(buf, GUARD_BYTE, sizeof(buf));
	proto_writer_init(&w, buf, 8);
	proto_put_bytes(&w, "0123456789", 10);
	CHECK(w.overflow);
	CHECK_INT(w.len, 0);
	proto_put_byte(&w, 'a');
	CHECK(w.overflow);
	CHECK_INT(w.len, 0);
	CHECK_INT(buf[0], GUARD_BYTE);

	/* a second message that does not fit after a first that does */
	memset(buf, GUARD_BYTE, sizeof(buf));
	proto_writer_init(&w, buf, 8);
	proto_write_ready(&w, 'I');
	CHECK(!w.overflow);
	proto_write_ready(&w, 'E');
	CHECK(w.overflow);
	CHECK(w.len <= 8);
	const uint8_t first[] = { 'Z', 0, 0, 0, 5, 'I' };
	CHECK(memcmp(buf, first, sizeof(first)) == 0);
	for (size_t i = 8; i < sizeof(buf); i++)
		CHECK_INT(buf[i], GUARD_BYTE);

	/* huge length requests don't wrap */
	proto_writer_init(&w, buf, 16);
	proto_put_bytes(&w, buf, (size_t)-1);
	CHECK(w.overflow);
	CHECK_INT(w.len, 0);
}

/* ---------- quoting ---------- */

static void test_quote_literal(void)
{
	char out[64];

	CHECK(proto_quote_literal("hello", out, sizeof(out)));
	CHECK_STR(out, "'hello'");
	CHECK(proto_quote_literal("", out, sizeof(out)));
	CHECK_STR(out, "''");
	CHECK(proto_quote_literal("it's", out, sizeof(out)));
	CHECK_STR(out, "'it''s'");
	CHECK(proto_quote_literal("''", out, sizeof(out)));
	CHECK_STR(out, "''''''");
	CHECK(proto_quote_literal("a\\b", out, sizeof(out)));
	CHECK_STR(out, "E'a\\\\b'");
	CHECK(proto_quote_literal("\\", out, sizeof(out)));
	CHECK_STR(out, "E'\\\\'");
	CHECK(proto_quote_literal("x'\\y", out, sizeof(out)));
	CHECK_STR(out, "E'x''\\\\y'");

	/* exact sizes: output length + NUL fits, one less does not, and
	 * nothing is written at or past cap */
	const char *const cases[] = { "hello", "", "it's", "a\\b", "'", "\\\\", "x'\\y" };
	const char *const want[] = { "'hello'", "''", "'it''s'", "E'a\\\\b'", "''''", "E'\\\\\\\\'",
				     "E'x''\\\\y'" };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t need = strlen(want[i]) + 1;
		for (size_t cap = 0; cap <= need; cap++) {
			memset(out, GUARD_BYTE, sizeof(out));
			bool ok = proto_quote_literal(cases[i], out, cap);
			CHECK_INT(ok, cap == need);
			if (ok)
				CHECK_STR(out, want[i]);
			bool intact = true;
			for (size_t j = cap; j < sizeof(out); j++)
				if ((uint8_t)out[j] != GUARD_BYTE)
					intact = false;
			CHECK(intact);
		}
	}
	CHECK(!proto_quote_literal("x", NULL, 0));
}

/* ---------- random input ---------- */

static void test_fuzz(void)
{
	struct proto_startup st;
	struct proto_header h;
	long parsed_ok = 0, with_params = 0, fields_found = 0;
	srand(1);

	for (int it = 0; it < 100000; it++) {
		size_t n = (size_t)(rand() % 80);
		uint8_t *b = malloc(n ? n : 1);
		if (!b)
			abort();
		/* mostly printable/NUL bytes so name/value lists do occur */
		for (size_t i = 0; i < n; i++) {
			int r = rand() % 8;
			b[i] = r == 0 ? 0 : r < 6 ? (uint8_t)('a' + rand() % 4) : (uint8_t)rand();
		}
		int mode = rand() % 4;
		if (n >= 4 && mode >= 1)
			be32(b, (uint32_t)n);            /* honest length */
		if (n >= 8 && mode >= 2) {
			static const uint32_t codes[] = { PROTO_VERSION_3_0, (3u << 16) | 1,
				PROTO_CANCEL_REQUEST, PROTO_SSL_REQUEST, PROTO_GSSENC_REQUEST, 2u << 16 };
			be32(b + 4, codes[(size_t)rand() % 6]);
		}
		if (mode == 3 && n >= 9)
			b[n - 1] = 0;

		const char *why = NULL;
		enum proto_result r = proto_parse_startup(b, n, &st, &why);
		CHECK(r == PROTO_OK || r == PROTO_ERROR);
		if (r == PROTO_ERROR) {
			CHECK(why != NULL);
		} else {
			CHECK(st.n_params <= PROTO_MAX_STARTUP_PARAMS);
			parsed_ok++;
			with_params += st.n_params > 0;
			for (size_t i = 0; i < st.n_params; i++) {
				const char *nm = st.names[i], *v = st.values[i];
				CHECK(nm >= (const char *)b && nm < (const char *)b + n);
				CHECK(v >= (const char *)b && v < (const char *)b + n);
				CHECK(*nm != '\0');
				CHECK(strlen(v) < (size_t)((const char *)b + n - v));
			}
			if (st.n_params)
				CHECK(proto_startup_get(&st, st.names[0]) == st.values[0]);
		}

		for (int c = 0; c < 3; c++) {
			char code = "SMC"[c];
			const char *v = proto_error_field(b, n, code);
			if (v) {
				fields_found++;
				CHECK(v >= (const char *)b + 1 && v < (const char *)b + n);
				CHECK(strlen(v) < (size_t)((const char *)b + n - v));
			}
		}
		r = proto_read_header(b, n, &h);
		CHECK_INT(r, n < 5 ? PROTO_NEED_MORE : h.len < 4 ? PROTO_ERROR : PROTO_OK);

		struct proto_reader rd;
		proto_reader_init(&rd, b, n);
		while (!rd.err) {
			switch (rand() % 5) {
			case 0: proto_get_byte(&rd); break;
			case 1: proto_get_int16(&rd); break;
			case 2: proto_get_int32(&rd); break;
			case 3: proto_get_string(&rd); break;
			default: proto_get_bytes(&rd, (size_t)(rand() % 6)); break;
			}
			CHECK(rd.pos <= rd.len);
		}
		free(b);
	}
	/* the generator reaches the interesting paths */
	CHECK(parsed_ok > 100);
	CHECK(with_params > 10);
	CHECK(fields_found > 100);
	printf("     fuzz: %ld startup ok (%ld with params), %ld error fields\n", parsed_ok,
	       with_params, fields_found);
}

/* ---------- result sets (admin console) ---------- */

static void test_write_result_set(void)
{
	uint8_t buf[256];
	struct proto_writer w;
	const struct proto_column cols[] = {
		{ "a", PROTO_OID_TEXT, -1 },
		{ "n", PROTO_OID_INT4, 4 },
	};
	const uint8_t exp_desc[] = {
		'T', 0, 0, 0, 46, 0, 2,
		'a', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 25, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0,
		'n', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 23, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0,
	};
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_row_description(&w, cols, 2);
	CHECK_BYTES(&w, exp_desc, sizeof(exp_desc));
	CHECK_INT(proto_row_description_size(cols, 2), sizeof(exp_desc));

	const char *const vals[] = { "xy", NULL, "" };
	const uint8_t exp_row[] = {
		'D', 0, 0, 0, 20, 0, 3,
		0, 0, 0, 2, 'x', 'y',
		0xff, 0xff, 0xff, 0xff,
		0, 0, 0, 0,
	};
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_data_row(&w, vals, 3);
	CHECK_BYTES(&w, exp_row, sizeof(exp_row));
	CHECK_INT(proto_data_row_size(vals, 3), sizeof(exp_row));

	const uint8_t exp_tail[] = { 'C', 0, 0, 0, 9, 'S', 'H', 'O', 'W', 0, 'I', 0, 0, 0, 4 };
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_command_complete(&w, "SHOW");
	proto_write_empty_query(&w);
	CHECK_BYTES(&w, exp_tail, sizeof(exp_tail));

	/* a row one byte short of room overflows and writes nothing past cap */
	proto_writer_init(&w, buf, sizeof(exp_row) - 1);
	proto_write_data_row(&w, vals, 3);
	CHECK(w.overflow);
}


/* The lookup request: Parse/Bind/Execute/Sync with the exact bytes
 * PostgreSQL expects, and DataRow columns read back with bounds checked. */
static void test_extended_writers_and_data_row(void)
{
	uint8_t buf[256];
	struct proto_writer w;
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_parse(&w, "SELECT $1", 1);
	static const uint8_t parse[] = { 'P', 0, 0, 0, 21, 0, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '$', '1', 0,
					 0, 1, 0, 0, 0, 0 };
	CHECK_INT(w.len, sizeof(parse));
	CHECK(memcmp(buf, parse, sizeof(parse)) == 0);

	proto_writer_init(&w, buf, sizeof(buf));
	const char *vals[] = { "x';", NULL };
	proto_write_bind_text(&w, vals, 2);
	static const uint8_t bind[] = { 'B', 0, 0, 0, 23, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3, 'x', '\'', ';',
					0xff, 0xff, 0xff, 0xff, 0, 0 };
	CHECK_INT(w.len, sizeof(bind));
	CHECK(memcmp(buf, bind, sizeof(bind)) == 0);

	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_execute(&w);
	proto_write_sync(&w);
	static const uint8_t exec_sync[] = { 'E', 0, 0, 0, 9, 0, 0, 0, 0, 0, 'S', 0, 0, 0, 4 };
	CHECK_INT(w.len, sizeof(exec_sync));
	CHECK(memcmp(buf, exec_sync, sizeof(exec_sync)) == 0);
	CHECK(!w.overflow);

	/* a row ("bob", NULL, "") */
	proto_writer_init(&w, buf, sizeof(buf));
	const char *row[] = { "bob", NULL, "" };
	proto_write_data_row(&w, row, 3);
	const uint8_t *body = buf + PROTO_HEADER_LEN, *v = NULL;
	size_t blen = w.len - PROTO_HEADER_LEN;
	uint32_t vlen = 99;
	CHECK_INT(proto_data_row_column(body, blen, 0, &v, &vlen), PROTO_OK);
	CHECK(v && vlen == 3 && memcmp(v, "bob", 3) == 0);
	CHECK_INT(proto_data_row_column(body, blen, 1, &v, &vlen), PROTO_OK);
	CHECK(v == NULL);
	CHECK_INT(proto_data_row_column(body, blen, 2, &v, &vlen), PROTO_OK);
	CHECK(v != NULL && vlen == 0);
	CHECK_INT(proto_data_row_column(body, blen, 3, &v, &vlen), PROTO_ERROR);
	/* truncated: the length of column 0 says more than is there */
	CHECK_INT(proto_data_row_column(body, 8, 0, &v, &vlen), PROTO_ERROR);
	CHECK_INT(proto_data_row_column(body, 1, 0, &v, &vlen), PROTO_ERROR);
	static const uint8_t huge[] = { 0, 1, 0x7f, 0xff, 0xff, 0xff, 'a' };
	CHECK_INT(proto_data_row_column(huge, sizeof(huge), 0, &v, &vlen), PROTO_ERROR);
}

int main(void)
{
	RUN(test_read_header);
	RUN(test_frontend_max_len);
	RUN(test_startup_valid);
	RUN(test_startup_versions);
	RUN(test_startup_requests);
	RUN(test_startup_bad_lengths);
	RUN(test_startup_bad_layout);
	RUN(test_startup_too_many_params);
	RUN(test_reader);
	RUN(test_error_field);
	RUN(test_write_ready);
	RUN(test_write_error_notice);
	RUN(test_write_auth);
	RUN(test_write_backend_messages);
	RUN(test_write_frontend_messages);
	RUN(test_write_startup);
	RUN(test_write_sequence);
	RUN(test_writer_overflow);
	RUN(test_quote_literal);
	RUN(test_write_result_set);
	RUN(test_extended_writers_and_data_row);
	RUN(test_fuzz);
	parse_heap_release();
	return UNIT_DONE();
}
