/* crypto: hashing, HMAC, PBKDF2, randomness, base64 and hex over OpenSSL 3.
 *
 * Owns every OpenSSL call except TLS (random bytes come from getrandom). Callers see plain C types only.
 * Invariants: the OpenSSL error queue is cleared after every failure, so a
 * later TLS call never reports a stale error from here; a digest that cannot
 * be computed (e.g. MD5 refused by a FIPS provider) is a fatal
 * misconfiguration and aborts with a message rather than returning a wrong
 * hash. */
#include "crypto.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

/* Base64 work is done in pieces this big so lengths always fit OpenSSL's int. */
#define B64_CHUNK_IN (3 * 1024 * 1024)	/* multiple of 3 */
#define B64_CHUNK_QUADS (1024 * 1024)

static void crypto_fatal(const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "no OpenSSL error";
	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	fprintf(stderr, "tidepool: crypto: %s failed: %s\n", what, buf);
	abort();
}

static void crypto_digest2(const EVP_MD *md, const char *name, const void *a, size_t alen,
			   const void *b, size_t blen, uint8_t *out)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		crypto_fatal(name);
	bool ok = EVP_DigestInit_ex(ctx, md, NULL) == 1 &&
		  EVP_DigestUpdate(ctx, a, alen) == 1 &&
		  (blen == 0 || EVP_DigestUpdate(ctx, b, blen) == 1) &&
		  EVP_DigestFinal_ex(ctx, out, NULL) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		crypto_fatal(name);
}

void crypto_md5(const void *data, size_t len, uint8_t out[16])
{
	crypto_digest2(EVP_md5(), "md5", data, len, NULL, 0, out);
}

void crypto_md5_2(const void *a, size_t alen, const void *b, size_t blen, uint8_t out[16])
{
	crypto_digest2(EVP_md5(), "md5", a, alen, b, blen, out);
}

void crypto_sha256(const void *data, size_t len, uint8_t out[32])
{
	crypto_digest2(EVP_sha256(), "sha256", data, len, NULL, 0, out);
}

void crypto_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len, uint8_t out[32])
{
	/* HMAC() treats a NULL key specially; an empty key must still be a key. */
	static const uint8_t empty_key[1];
	unsigned int outlen = 0;
	if (keylen > INT_MAX)
		crypto_fatal("hmac-sha256 (key too long)");
	if (!HMAC(EVP_sha256(), key ? key : empty_key, (int)keylen, data ? data : empty_key, len,
		  out, &outlen) || outlen != 32)
		crypto_fatal("hmac-sha256");
}

bool crypto_pbkdf2_sha256(const char *password, size_t pwlen, const uint8_t *salt, size_t saltlen,
			  int iterations, uint8_t out[32])
{
	static const uint8_t empty[1];
	if (iterations < 1 || pwlen > INT_MAX || saltlen > INT_MAX)
		return false;
	if (PKCS5_PBKDF2_HMAC(password ? password : "", (int)pwlen, salt ? salt : empty, (int)saltlen,
			      iterations, EVP_sha256(), 32, out) != 1) {
		ERR_clear_error();
		return false;
	}
	return true;
}

/* The kernel's generator, not RAND_bytes: every login asks for a cancel key,
 * and OpenSSL's generator loads its providers and DRBG on first use (about
 * 1 MiB of RSS) in a pooler that may never need anything else of OpenSSL.
 * getrandom(2) is the source OpenSSL seeds from anyway; one call per
 * request, at login, never per message. */
void crypto_random(void *buf, size_t len)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "tidepool: crypto: getrandom failed: %s\n", strerror(errno));
			abort();
		}
		p += n;
		len -= (size_t)n;
	}
}

size_t crypto_base64_encode(const uint8_t *in, size_t len, char *out)
{
	size_t total = 0;
	while (len > 0) {
		size_t n = len > B64_CHUNK_IN ? B64_CHUNK_IN : len;
		int w = EVP_EncodeBlock((unsigned char *)out + total, in, (int)n);
		if (w < 0)
			crypto_fatal("base64 encode");
		total += (size_t)w;
		in += n;
		len -= n;
	}
	out[total] = '\0';
	return total;
}

/* The 6-bit value of a base64 character, or -1. */
static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	return c == '/' ? 63 : -1;
}

/* Strict syntax check: whole quads, alphabet only, '=' only as the last one
 * or two characters, and the bits the padding discards are zero (RFC 4648
 * 3.5), so each byte string has exactly one accepted encoding. Returns the
 * number of padding characters, or -1. */
static int b64_check(const char *in, size_t len)
{
	if (len % 4 != 0)
		return -1;
	int pad = 0;
	if (len > 0 && in[len - 1] == '=')
		pad = (len > 1 && in[len - 2] == '=') ? 2 : 1;
	for (size_t i = 0; i < len - (size_t)pad; i++) {
		if (b64_value((unsigned char)in[i]) < 0)
			return -1;
	}
	if (pad > 0 && (b64_value((unsigned char)in[len - 1 - (size_t)pad]) & (pad == 1 ? 0x3 : 0xf)))
		return -1;
	return pad;
}

/* EVP_DecodeBlock over whole quads, writing 3 bytes per quad into out. */
static bool b64_decode_quads(const char *in, size_t quads, uint8_t *out)
{
	while (quads > 0) {
		size_t q = quads > B64_CHUNK_QUADS ? B64_CHUNK_QUADS : quads;
		if (EVP_DecodeBlock(out, (const unsigned char *)in, (int)(q * 4)) != (int)(q * 3)) {
			ERR_clear_error();
			return false;
		}
		in += q * 4;
		out += q * 3;
		quads -= q;
	}
	return true;
}

long crypto_base64_decode(const char *in, size_t len, uint8_t *out, size_t outcap)
{
	int pad = b64_check(in, len);
	if (pad < 0 || len / 4 * 3 > LONG_MAX)
		return -1;
	if (len == 0)
		return 0;
	size_t quads = len / 4;
	size_t real = quads * 3 - (size_t)pad;
	if (real > outcap)
		return -1;
	/* All quads but the last go straight to out; the last one goes through
	 * a scratch buffer because DecodeBlock writes zeros for its padding. */
	uint8_t last[3];
	if (!b64_decode_quads(in, quads - 1, out) || !b64_decode_quads(in + len - 4, 1, last))
		return -1;
	memcpy(out + (quads - 1) * 3, last, 3 - (size_t)pad);
	return (long)real;
}

void crypto_hex(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * len] = '\0';
}

bool crypto_equal(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

void crypto_wipe(void *p, size_t len)
{
	if (p && len)
		OPENSSL_cleanse(p, len);
}
