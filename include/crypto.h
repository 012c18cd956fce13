/* crypto: the OpenSSL primitives tidepool needs, behind plain C types.
 * The only module besides tls that includes OpenSSL headers. */
#ifndef TIDEPOOL_CRYPTO_H
#define TIDEPOOL_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void crypto_md5(const void *data, size_t len, uint8_t out[16]);
/* md5 over the concatenation of two buffers. */
void crypto_md5_2(const void *a, size_t alen, const void *b, size_t blen, uint8_t out[16]);
void crypto_sha256(const void *data, size_t len, uint8_t out[32]);
void crypto_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len, uint8_t out[32]);
bool crypto_pbkdf2_sha256(const char *password, size_t pwlen, const uint8_t *salt, size_t saltlen,
			  int iterations, uint8_t out[32]);
/* Cryptographically strong random bytes; aborts if the RNG fails. */
void crypto_random(void *buf, size_t len);
/* Base64 without line breaks. encode: out must hold 4*ceil(len/3)+1; returns length.
 * decode: returns decoded length, or -1 on bad input or if it does not fit outcap. */
size_t crypto_base64_encode(const uint8_t *in, size_t len, char *out);
long crypto_base64_decode(const char *in, size_t len, uint8_t *out, size_t outcap);
/* Lower-case hex of len bytes into out[2*len+1]. */
void crypto_hex(const uint8_t *in, size_t len, char *out);
/* Constant-time comparison. */
bool crypto_equal(const void *a, const void *b, size_t len);
/* Zeroes secret material in a way the compiler cannot optimize away. */
void crypto_wipe(void *p, size_t len);

#endif
