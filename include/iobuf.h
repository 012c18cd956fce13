/* iobuf: a connection's byte buffer, taken from a free list when data
 * arrives and given back as soon as it is empty, so idle connections hold
 * none. Buffers grown past the default size (for messages that must be held
 * whole) are freed instead of being cached. */
#ifndef TIDEPOOL_IOBUF_H
#define TIDEPOOL_IOBUF_H

#include <stdint.h>

/* Buffers kept for reuse at most (2 MB at the default size): enough for the
 * connections active at once; a login storm's buffers are freed, not kept,
 * so idle clients cost no buffer memory. */
#define IOBUF_CACHE_MAX 512

struct iobuf {
	uint32_t start;          /* first byte not yet consumed */
	uint32_t end;            /* one past the last byte */
	uint32_t cap;
	struct iobuf *next_free;
	uint8_t data[];
};

/* Size of buffers handed out by iobuf_get (pkt_buf); applies to new buffers. */
void iobuf_set_default_size(uint32_t size);
uint32_t iobuf_default_size(void);
struct iobuf *iobuf_get(void);
void iobuf_put(struct iobuf *b);
/* Moves the unconsumed bytes to the front. */
void iobuf_compact(struct iobuf *b);
/* Returns a buffer (possibly b, possibly moved) that can hold `need` bytes
 * from its start; unconsumed bytes are kept. */
struct iobuf *iobuf_reserve(struct iobuf *b, uint32_t need);
/* Frees the cached buffers (at exit, for leak checkers). */
void iobuf_free_cache(void);
/* Counters for SHOW MEM / metrics. */
uint32_t iobuf_cached_count(void);
uint32_t iobuf_used_count(void);

static inline uint32_t iobuf_len(const struct iobuf *b)
{
	return b->end - b->start;
}

#endif
