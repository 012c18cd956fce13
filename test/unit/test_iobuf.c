/* Unit tests of iobuf: the free list of default-size buffers (reuse, the
 * counters, the cache limit, changing the default size), compaction, and
 * iobuf_reserve (in place, by compaction, by growing into a buffer that is
 * freed rather than cached). Every test leaves no buffer in use and an empty
 * cache, so valgrind's leak check covers all of them. */
#include "unit.h"

#include <stdbool.h>
#include <stdint.h>

#include "iobuf.h"

/* Fills b->data[from..to) with a recognizable pattern. */
static void fill(struct iobuf *b, uint32_t from, uint32_t to)
{
	for (uint32_t i = from; i < to; i++)
		b->data[i] = (uint8_t)(i * 7 + 3);
}

static bool pattern_at(const uint8_t *p, uint32_t first, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (p[i] != (uint8_t)((first + i) * 7 + 3))
			return false;
	return true;
}

static void test_get_put_reuse(void)
{
	iobuf_free_cache();
	CHECK_INT(iobuf_used_count(), 0);
	CHECK_INT(iobuf_cached_count(), 0);
	CHECK_INT(iobuf_default_size(), 4096);

	struct iobuf *a = iobuf_get();
	CHECK(a != NULL);
	CHECK_INT(a->cap, 4096);
	CHECK_INT(a->start, 0);
	CHECK_INT(a->end, 0);
	CHECK_INT(iobuf_len(a), 0);
	CHECK(a->next_free == NULL);
	CHECK_INT(iobuf_used_count(), 1);
	CHECK_INT(iobuf_cached_count(), 0);

	/* the whole capacity is writable */
	fill(a, 0, a->cap);
	a->start = 10;
	a->end = 100;
	CHECK_INT(iobuf_len(a), 90);

	iobuf_put(a);
	CHECK_INT(iobuf_used_count(), 0);
	CHECK_INT(iobuf_cached_count(), 1);

	/* same pointer back, reset */
	struct iobuf *b = iobuf_get();
	CHECK(b == a);
	CHECK_INT(b->start, 0);
	CHECK_INT(b->end, 0);
	CHECK(b->next_free == NULL);
	CHECK_INT(b->cap, 4096);
	CHECK_INT(iobuf_used_count(), 1);
	CHECK_INT(iobuf_cached_count(), 0);

	/* LIFO: the last one put is the first one got */
	struct iobuf *c = iobuf_get(), *d = iobuf_get();
	CHECK(c != b && d != b && c != d);
	CHECK_INT(iobuf_used_count(), 3);
	iobuf_put(b);
	iobuf_put(c);
	iobuf_put(d);
	CHECK_INT(iobuf_used_count(), 0);
	CHECK_INT(iobuf_cached_count(), 3);
	CHECK(iobuf_get() == d);
	CHECK(iobuf_get() == c);
	CHECK(iobuf_get() == b);
	CHECK_INT(iobuf_cached_count(), 0);
	CHECK_INT(iobuf_used_count(), 3);
	/* an empty list allocates a fresh one */
	struct iobuf *e = iobuf_get();
	CHECK(e != b && e != c && e != d);
	CHECK_INT(iobuf_used_count(), 4);

	iobuf_put(NULL);   /* no-op */
	CHECK_INT(iobuf_used_count(), 4);
	CHECK_INT(iobuf_cached_count(), 0);

	iobuf_put(b);
	iobuf_put(c);
	iobuf_put(d);
	iobuf_put(e);
	CHECK_INT(iobuf_used_count(), 0);
	CHECK_INT(iobuf_cached_count(), 4);
	iobuf_free_cache();
	CHECK_INT(iobuf_cached_count(), 0);
	CHECK_INT(iobuf_used_count(), 0);
	iobuf_free_cache();   /* twice is harmless */
	CHECK_INT(iobuf_cached_count(), 0);
}

static void test_default_size(void)
{
	struct iobuf *old = iobuf_get();
	struct iobuf *cached = iobuf_get();
	iobuf_put(cached);
	CHECK_INT(iobuf_cached_count(), 1);

	/* same size: the cache is kept */
	iobuf_set_default_size(4096);
	CHECK_INT(iobuf_cached_count(), 1);

	/* new size: the cache is dropped, new buffers have the new size */
	iobuf_set_default_size(1024);
	CHECK_INT(iobuf_default_size(), 1024);
	CHECK_INT(iobuf_cached_count(), 0);
	CHECK_INT(iobuf_used_count(), 1);
	struct iobuf *n = iobuf_get();
	CHECK_INT(n->cap, 1024);
	CHECK_INT(iobuf_used_count(), 2);

	/* a buffer of the old size is freed on put, not cached */
	iobuf_put(old);
	CHECK_INT(iobuf_cached_count(), 0);
	CHECK_INT(iobuf_used_count(), 1);
	iobuf_put(n);
	CHECK_INT(iobuf_cached_count(), 1);
	CHECK_INT(iobuf_used_count(), 0);
	struct iobuf *again = iobuf_get();
	CHECK(again == n);
	CHECK_INT(again->cap, 1024);
	iobuf_put(again);

	iobuf_set_default_size(4096);
	CHECK_INT(iobuf_default_size(), 4096);
	CHECK_INT(iobuf_cached_count(), 0);
	CHECK_INT(iobuf_used_count(), 0);
}

static void test_cache_limit(void)
{
	/* small buffers so holding thousands is cheap */
	enum { N = IOBUF_CACHE_MAX + 4 };
	static struct iobuf *bufs[N];

	iobuf_set_default_size(16);
	for (int i = 0; i < N; i++)
		bufs[i] = iobuf_get();
	CHECK_INT(iobuf_used_count(), N);
	for (int i = 0; i < N; i++)
		iobuf_put(bufs[i]);
	CHECK_INT(iobuf_used_count(), 0);
	CHECK_INT(iobuf_cached_count(), IOBUF_CACHE_MAX);
	iobuf_free_cache();
	CHECK_INT(iobuf_cached_count(), 0);
	iobuf_set_default_size(4096);
}

static void test_compact(void)
{
	struct iobuf *b = iobuf_get();

	fill(b, 0, 64);
	b->start = 10;
	b->end = 64;
	iobuf_compact(b);
	CHECK_INT(b->start, 0);
	CHECK_INT(b->end, 54);
	CHECK_INT(iobuf_len(b), 54);
	CHECK(pattern_at(b->data, 10, 54));

	/* already at the front: unchanged */
	iobuf_compact(b);
	CHECK_INT(b->start, 0);
	CHECK_INT(b->end, 54);
	CHECK(pattern_at(b->data, 10, 54));

	/* overlapping move (start smaller than length) */
	fill(b, 0, 100);
	b->start = 3;
	b->end = 100;
	iobuf_compact(b);
	CHECK_INT(b->end, 97);
	CHECK(pattern_at(b->data, 3, 97));

	/* everything consumed */
	b->start = b->end = 40;
	iobuf_compact(b);
	CHECK_INT(b->start, 0);
	CHECK_INT(b->end, 0);

	/* data at the very end of the buffer */
	fill(b, 0, b->cap);
	b->start = b->cap - 5;
	b->end = b->cap;
	iobuf_compact(b);
	CHECK_INT(b->start, 0);
	CHECK_INT(b->end, 5);
	CHECK(pattern_at(b->data, b->cap - 5, 5));

	CHECK_INT(b->cap, 4096);
	iobuf_put(b);
	iobuf_free_cache();
}

static void test_reserve(void)
{
	struct iobuf *b = iobuf_get();
	fill(b, 0, 200);
	b->start = 100;
	b->end = 200;

	/* fits from start: same buffer, untouched */
	struct iobuf *r = iobuf_reserve(b, 4096 - 100);
	CHECK(r == b);
	CHECK_INT(r->start, 100);
	CHECK_INT(r->end, 200);

	/* fits only after compaction: same buffer, compacted */
	r = iobuf_reserve(b, 4096 - 50);
	CHECK(r == b);
	CHECK_INT(r->start, 0);
	CHECK_INT(r->end, 100);
	CHECK(pattern_at(r->data, 100, 100));
	r = iobuf_reserve(b, 4096);
	CHECK(r == b);
	CHECK_INT(iobuf_used_count(), 1);
	CHECK_INT(iobuf_cached_count(), 0);

	/* grows beyond the default size: new buffer, data kept, old one cached */
	b->start = 30;   /* unconsumed: [30, 100) */
	r = iobuf_reserve(b, 10000);
	CHECK(r != NULL);
	CHECK(r->cap >= 10000);
	CHECK_INT(r->start, 0);
	CHECK_INT(r->end, 70);
	CHECK_INT(iobuf_len(r), 70);
	CHECK(pattern_at(r->data, 130, 70));
	CHECK(r->next_free == NULL);
	CHECK_INT(iobuf_used_count(), 1);
	CHECK_INT(iobuf_cached_count(), r == b ? 0 : 1);

	/* the grown buffer is usable to its full capacity */
	fill(r, 70, 10000);
	r->end = 10000;

	/* growing a grown buffer again: the first grown one is freed */
	struct iobuf *r2 = iobuf_reserve(r, 20000);
	CHECK(r2->cap >= 20000);
	CHECK_INT(iobuf_len(r2), 10000);
	CHECK(pattern_at(r2->data + 70, 70, 10000 - 70));
	CHECK_INT(iobuf_used_count(), 1);
	CHECK_INT(iobuf_cached_count(), 1);

	/* putting the grown buffer frees it instead of caching it */
	iobuf_put(r2);
	CHECK_INT(iobuf_used_count(), 0);
	CHECK_INT(iobuf_cached_count(), 1);
	struct iobuf *g = iobuf_get();
	CHECK_INT(g->cap, 4096);
	CHECK_INT(iobuf_cached_count(), 0);

	/* empty buffer grown: nothing to copy */
	struct iobuf *r3 = iobuf_reserve(g, 5000);
	CHECK(r3->cap >= 5000);
	CHECK_INT(iobuf_len(r3), 0);
	CHECK_INT(iobuf_used_count(), 1);
	CHECK_INT(iobuf_cached_count(), 1);
	iobuf_put(r3);
	CHECK_INT(iobuf_used_count(), 0);
	CHECK_INT(iobuf_cached_count(), 1);

	iobuf_free_cache();
	CHECK_INT(iobuf_cached_count(), 0);
}

int main(void)
{
	RUN(test_get_put_reuse);
	RUN(test_default_size);
	RUN(test_cache_limit);
	RUN(test_compact);
	RUN(test_reserve);
	iobuf_free_cache();
	return UNIT_DONE();
}
