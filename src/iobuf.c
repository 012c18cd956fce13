/* iobuf: owns the free list of default-size buffers. */
#include "iobuf.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"


static uint32_t default_size = 4096;
static struct iobuf *free_list;
static uint32_t cached, used;

void iobuf_set_default_size(uint32_t size)
{
	if (size == default_size)
		return;
	iobuf_free_cache();
	default_size = size;
}

uint32_t iobuf_default_size(void)
{
	return default_size;
}

static struct iobuf *iobuf_alloc(uint32_t cap)
{
	struct iobuf *b = xmalloc(sizeof(*b) + cap);
	b->cap = cap;
	used++;
	return b;
}

struct iobuf *iobuf_get(void)
{
	struct iobuf *b = free_list;
	if (b) {
		free_list = b->next_free;
		cached--;
		used++;
	} else {
		b = iobuf_alloc(default_size);
	}
	b->start = b->end = 0;
	b->next_free = NULL;
	return b;
}

void iobuf_put(struct iobuf *b)
{
	if (!b)
		return;
	used--;
	if (b->cap != default_size || cached >= IOBUF_CACHE_MAX) {
		free(b);
		return;
	}
	b->next_free = free_list;
	free_list = b;
	cached++;
}

void iobuf_compact(struct iobuf *b)
{
	if (b->start == 0)
		return;
	uint32_t n = iobuf_len(b);
	if (n)
		memmove(b->data, b->data + b->start, n);
	b->start = 0;
	b->end = n;
}

struct iobuf *iobuf_reserve(struct iobuf *b, uint32_t need)
{
	if (b->cap - b->start >= need)
		return b;
	if (b->cap >= need) {
		iobuf_compact(b);
		return b;
	}
	struct iobuf *nb = iobuf_alloc(need);
	uint32_t n = iobuf_len(b);
	memcpy(nb->data, b->data + b->start, n);
	nb->start = 0;
	nb->end = n;
	nb->next_free = NULL;
	iobuf_put(b);
	return nb;
}

void iobuf_free_cache(void)
{
	while (free_list) {
		struct iobuf *b = free_list;
		free_list = b->next_free;
		free(b);
	}
	cached = 0;
}

uint32_t iobuf_cached_count(void)
{
	return cached;
}

uint32_t iobuf_used_count(void)
{
	return used;
}
