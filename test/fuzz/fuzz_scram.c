/* fuzz_scram: SCRAM-SHA-256 messages in both directions (auth.c).
 *
 * The first input byte picks the role:
 *   0  tidepool as client: the rest is server-first-message NUL
 *      server-final-message, answered to a client-first with the fixed
 *      nonce "fuzzclientnonce" (so inputs can echo it);
 *   1  tidepool as server (a verifier for "pencil"): client-first-message
 *      NUL client-final-message;
 *   2  a stored secret (auth_file, auth_query) for auth_scram_parse_secret;
 *   3  the md5 steps with the rest as response and secret.
 * Iteration counts above 256 are skipped: PBKDF2 is the point of them, not
 * the parser, and each would cost the campaign milliseconds. */
#include <assert.h>
#include <stdbool.h>
#include <stdio.h>

#include "auth.h"
#include "fuzz.h"

#define FUZZ_NONCE "fuzzclientnonce"

static char *verifier;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc; (void)argv;
	verifier = auth_scram_make_secret("pencil", 16);
	return verifier ? 0 : 1;
}

/* True if an "i=" attribute asks for more than 256 rounds. */
static bool too_many_rounds(const char *msg)
{
	for (const char *p = msg; (p = strstr(p, "i=")) != NULL; p += 2) {
		long v = 0;
		for (const char *d = p + 2; *d >= '0' && *d <= '9' && v <= 256; d++)
			v = v * 10 + (*d - '0');
		if (v > 256)
			return true;
	}
	return false;
}

static void as_client(struct fuzz_in *in)
{
	size_t n1, n2, len;
	char *first = fuzz_slice(in, '\0', &n1);
	char *final = fuzz_slice(in, '\0', &n2);
	struct scram_client sc;
	const char *err = NULL;
	if (!too_many_rounds(first) && scram_client_init(&sc, "pencil")) {
		char *cf = scram_client_first_with_nonce(&sc, "", FUZZ_NONCE, &len);
		assert(cf);
		free(cf);
		char *reply = scram_client_final(&sc, first, n1, &len, &err);
		if (reply) {
			assert(strlen(reply) == len);
			free(reply);
			(void)scram_client_verify(&sc, final, n2);
		} else {
			assert(err);
		}
		scram_client_free(&sc);
	}
	free(first);
	free(final);
}

static void as_server(struct fuzz_in *in)
{
	size_t n1, n2, len;
	char *first = fuzz_slice(in, '\0', &n1);
	char *final = fuzz_slice(in, '\0', &n2);
	struct scram_server ss;
	const char *err = NULL;
	if (scram_server_init(&ss, verifier, 16)) {
		char *reply = scram_server_first_err(&ss, first, n1, &len, &err);
		if (reply) {
			assert(strlen(reply) == len);
			free(reply);
			char *fin = scram_server_final(&ss, final, n2, &len, &err);
			free(fin);
		}
		scram_server_free(&ss);
	}
	free(first);
	free(final);
}

static void md5_steps(struct fuzz_in *in)
{
	char *resp = fuzz_slice(in, '\0', NULL);
	char *secret = fuzz_slice(in, '\0', NULL);
	const uint8_t salt[4] = { 1, 2, 3, 4 };
	char out[AUTH_MD5_LEN + 1];
	(void)auth_secret_kind(secret);
	(void)auth_md5_check("alice", secret, salt, resp);
	(void)auth_md5_response("alice", secret, salt, out);
	free(resp);
	free(secret);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size, 0 };
	switch (fuzz_byte(&in) & 3) {
	case 0:
		as_client(&in);
		break;
	case 1:
		as_server(&in);
		break;
	case 2: {
		char *s = fuzz_slice(&in, '\0', NULL);
		struct scram_secret sec;
		(void)auth_scram_parse_secret(s, &sec);
		free(s);
		break;
	}
	case 3:
		md5_steps(&in);
		break;
	}
	return 0;
}
