/* fuzz_conninfo: pq_parse_conninfo, the splitter of [databases], [users]
 * and [peers] values. Every pair it returns must be non-empty keys with
 * values, and the input must be a NUL-free C string as config.c gives it. */
#include <assert.h>

#include "fuzz.h"
#include "pq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size, 0 };
	char *s = fuzz_slice(&in, '\0', NULL);
	struct pq_kv *kv = NULL;
	size_t n = 0;
	char *err = NULL;
	if (pq_parse_conninfo(s, &kv, &n, &err)) {
		for (size_t i = 0; i < n; i++) {
			assert(kv[i].key && kv[i].key[0]);
			assert(kv[i].val);
			assert(strlen(kv[i].key) <= strlen(s));
			assert(strlen(kv[i].val) <= strlen(s));
		}
		pq_kv_free(kv, n);
	} else {
		assert(kv == NULL && err != NULL);
		free(err);
	}
	free(s);
	return 0;
}
