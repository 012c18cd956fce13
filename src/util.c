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
int usable_cpus(void)
{
	cpu_set_t set;
	int n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
	FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
	if (f) {
		char quota[32];
		long long period = 0;
		if (fscanf(f, "%31s %lld", quota, &period) == 2 && strcmp(quota, "max") != 0 && period > 0) {
			long long q = atoll(quota);
			int limit = (int)((q + period - 1) / period);
			if (limit >= 1 && limit < n)
				n = limit;
		}
		fclose(f);
	}
	return n > 0 ? n : 1;
}
