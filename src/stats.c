/* stats: histogram bucketing (see stats.h). */
#include "stats.h"

#define STATS_FIRST_BOUND 100   /* microseconds */

void stats_observe(struct stats_histogram *h, usec_t value)
{
	if (value < 0)
		value = 0;
	/* Bucket i holds values <= 100us * 2^i: find i from the bit length. */
	uint64_t q = (uint64_t)(value + STATS_FIRST_BOUND - 1) / STATS_FIRST_BOUND;
	int i = q <= 1 ? 0 : 64 - __builtin_clzll(q - 1);
	if (i >= STATS_BUCKETS)
		i = STATS_BUCKETS - 1;
	h->buckets[i]++;
	h->count++;
	h->sum += value;
}

usec_t stats_bucket_bound(int i)
{
	if (i >= STATS_BUCKETS - 1)
		return -1;
	return (usec_t)STATS_FIRST_BOUND << i;
}
