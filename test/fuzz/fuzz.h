/* fuzz: helpers shared by the libFuzzer targets of test/fuzz.
 *
 * A target gets one byte string per run; fuzz_in hands it out piece by
 * piece (a byte, an integer, a slice up to a separator) so one input can
 * drive several steps. Every slice is copied into its own malloc'd block,
 * NUL-terminated, so AddressSanitizer sees an overrun of exactly what the
 * parser was given. */
#ifndef TIDEPOOL_FUZZ_H
#define TIDEPOOL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct fuzz_in {
	const uint8_t *p;
	size_t len, pos;
};

static inline uint8_t fuzz_byte(struct fuzz_in *in)
{
	return in->pos < in->len ? in->p[in->pos++] : 0;
}

static inline uint32_t fuzz_u32(struct fuzz_in *in)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v = v << 8 | fuzz_byte(in);
	return v;
}

static inline size_t fuzz_left(const struct fuzz_in *in)
{
	return in->len - in->pos;
}

/* The bytes up to the next `sep` (or the end), as a fresh NUL-terminated
 * block of exactly *n + 1 bytes. */
static inline char *fuzz_slice(struct fuzz_in *in, uint8_t sep, size_t *n)
{
	size_t start = in->pos;
	while (in->pos < in->len && in->p[in->pos] != sep)
		in->pos++;
	size_t len = in->pos - start;
	if (in->pos < in->len)
		in->pos++;   /* the separator */
	char *s = malloc(len + 1);
	if (len)
		memcpy(s, in->p + start, len);
	s[len] = '\0';
	if (n)
		*n = len;
	return s;
}

/* The rest of the input as a fresh block (not NUL-terminated: exactly n bytes;
 * n == 0 still gives a valid pointer). */
static inline uint8_t *fuzz_rest(struct fuzz_in *in, size_t *n)
{
	*n = fuzz_left(in);
	uint8_t *b = malloc(*n ? *n : 1);
	if (*n)
		memcpy(b, in->p + in->pos, *n);
	in->pos = in->len;
	return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
