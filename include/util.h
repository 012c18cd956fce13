/* Small helpers with no project types: allocation that aborts on failure,
 * bounded string copies, number parsing. */
#ifndef TIDEPOOL_UTIL_H
#define TIDEPOOL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define UNUSED __attribute__((unused))
#define MUST_CHECK __attribute__((warn_unused_result))
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))

/* Allocation never returns NULL: out of memory aborts with a message. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* Copies at most dst_size-1 bytes and always terminates; returns strlen(src). */
/* The CPUs this process may run on: its affinity mask, bounded by its
 * cgroup's CPU quota (v2 cpu.max or v1 cfs_quota_us, rounded up). */
int usable_cpus(void);
size_t strlcpy_safe(char *dst, const char *src, size_t dst_size);

/* Strict parsers: the whole string must be a number in range. */
bool parse_int64(const char *s, int64_t min, int64_t max, int64_t *out) MUST_CHECK;
bool parse_bool(const char *s, bool *out) MUST_CHECK;

static inline uint32_t get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}
static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v;
}

#endif
