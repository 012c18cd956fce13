/* util: allocation wrappers and strict number parsing. */
#include "util.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void *oom(size_t n)
{
	fprintf(stderr, "tidepool: out of memory allocating %zu bytes\n", n);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	return p ? p : oom(n);
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	return p ? p : oom(n * size);
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	return q ? q : oom(n);
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	char *p = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

size_t strlcpy_safe(char *dst, const char *src, size_t dst_size)
{
	size_t len = strlen(src);
	if (dst_size) {
		size_t n = len < dst_size - 1 ? len : dst_size - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

bool parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	if (!s || !*s)
		return false;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

bool parse_bool(const char *s, bool *out)
{
	static const char *yes[] = { "1", "on", "yes", "true" };
	static const char *no[] = { "0", "off", "no", "false" };
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) { *out = true; return true; }
		if (strcasecmp(s, no[i]) == 0) { *out = false; return true; }
	}
	return false;
}

/* The CPUs this process may run on, bounded by a cgroup v2 CPU quota
 * (cpu.max "quota period", rounded up). */
/* One number from a file, or -1. */
static long long read_number(const char *path)
{
	FILE *f = fopen(path, "r");
	long long v = -1;
	if (f) {
		if (fscanf(f, "%lld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* The CPU quota of the process's cgroup in whole CPUs (rounded up), or 0
 * without one: cgroup v2's cpu.max ("max" or "quota period"), else v1's
 * cfs_quota_us / cfs_period_us. */
static int cgroup_cpu_limit(void)
{
	long long quota = -1, period = -1;
	FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
	if (f) {
		char q[32];
		if (fscanf(f, "%31s %lld", q, &period) == 2 && strcmp(q, "max") != 0)
			quota = atoll(q);
		fclose(f);
	} else {
		quota = read_number("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
		period = read_number("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
	}
	return quota > 0 && period > 0 ? (int)((quota + period - 1) / period) : 0;
}

int usable_cpus(void)
{
	cpu_set_t set;
	int n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
	int limit = cgroup_cpu_limit();
	if (limit >= 1 && limit < n)
		n = limit;
	return n > 0 ? n : 1;
}
