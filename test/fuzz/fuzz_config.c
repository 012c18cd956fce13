/* fuzz_config: the ini parser with %include, the [databases] / [users] /
 * [peers] entries, auth_file and auth_hba_file. The input is up to four
 * files separated by NUL bytes, written as tidepool.ini, a.ini, b.ini and
 * users.txt in a private temporary directory (relative names in the files,
 * "%include a.ini" or "auth_file = users.txt", resolve there). */
#include <assert.h>
#include <stdio.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

static char dir[64];
static const char *const names[] = { "tidepool.ini", "a.ini", "b.ini", "users.txt" };

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc; (void)argv;
	snprintf(dir, sizeof(dir), "/tmp/tidepool-fuzz-config.XXXXXX");
	if (!mkdtemp(dir))
		abort();
	return 0;
}

static void write_file(const char *name, const char *text, size_t n)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f)
		abort();
	if (n && fwrite(text, 1, n, f) != n)
		abort();
	fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a path into /dev or /proc could make one run read forever */
	if (memmem(data, size, "/dev", 4) || memmem(data, size, "/proc", 5) || memmem(data, size, "/sys", 4))
		return 0;
	struct fuzz_in in = { data, size, 0 };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t n;
		char *text = fuzz_slice(&in, '\0', &n);
		write_file(names[i], text, n);
		free(text);
	}
	char path[128];
	snprintf(path, sizeof(path), "%s/tidepool.ini", dir);
	struct config_errors errs = { 0 };
	struct config *cfg = config_load(path, &errs, NULL);
	if (cfg) {
		assert(errs.n == 0);
		/* what SHOW CONFIG and a reload's copy read */
		char buf[256];
		for (size_t i = 0; i < config_key_count(); i++)
			(void)config_key_value(cfg, i, buf, sizeof(buf));
		struct config *copy = config_dup(cfg);
		(void)config_find_db_or_fallback(copy, "postgres");
		(void)config_find_user(copy, "postgres");
		(void)config_find_auth(copy, "postgres");
		config_free(copy);
		config_free(cfg);
	} else {
		assert(errs.n > 0);
	}
	config_errors_free(&errs);
	return 0;
}
