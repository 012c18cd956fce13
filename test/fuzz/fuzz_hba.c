/* fuzz_hba: the pg_hba.conf-format parser (auth_hba_file), then a match of
 * a few fixed requests against whatever rules it accepted. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "hba.h"

static void ignore(void *arg, const char *file, int line, const char *msg)
{
	(void)arg; (void)file; (void)line; (void)msg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size, 0 };
	char *text = fuzz_slice(&in, '\0', NULL);
	/* a relative @file resolves under a directory that does not exist */
	struct hba *h = hba_parse(text, "/nonexistent/tidepool-fuzz/hba.conf", ignore, NULL);
	if (h) {
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(5000) };
		inet_pton(AF_INET, "10.1.2.3", &sin.sin_addr);
		struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
		inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
		struct hba_request reqs[] = {
			{ .is_unix = true, .database = "db", .user = "alice" },
			{ .addr = (struct sockaddr *)&sin, .database = "postgres", .user = "bob" },
			{ .addr = (struct sockaddr *)&sin6, .tls = true, .database = "replication", .user = "all" },
		};
		for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
			struct hba_result res;
			if (hba_match(h, &reqs[i], &res))
				(void)hba_method_name(res.method);
		}
		(void)hba_rule_count(h);
		hba_free(h);
	}
	free(text);
	return 0;
}
