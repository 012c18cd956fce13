/* auth: the pure steps of PostgreSQL password authentication.
 *
 * MD5 and SCRAM-SHA-256 (RFC 5802 / RFC 7677, no channel binding), for both
 * roles: tidepool as a client logging in to a PostgreSQL server, and tidepool
 * as the server checking a client's password. Nothing here touches a socket;
 * callers pass message bodies in and get message bodies out. Secrets are
 * either plain text, "md5" + 32 hex digits (md5(password || user)), or a
 * SCRAM verifier "SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>". */
#ifndef TIDEPOOL_AUTH_H
#define TIDEPOOL_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_MD5_LEN 35   /* "md5" + 32 hex digits, without the NUL */
#define SCRAM_KEY_LEN 32
#define SCRAM_NONCE_LEN 24 /* raw random bytes before base64 */
/* Upper bound on the iteration count accepted from a server or for a new
 * verifier: PBKDF2 runs on the event loop, so a hostile count must not stall it. */
#define SCRAM_MAX_ITERATIONS 10000000
/* PostgreSQL's and PgBouncer's default for new verifiers. */
#define SCRAM_DEFAULT_ITERATIONS 4096

enum secret_kind { SECRET_PLAIN, SECRET_MD5, SECRET_SCRAM };
enum secret_kind auth_secret_kind(const char *secret);

/* "md5" + hex(md5(password || user)) into out[AUTH_MD5_LEN + 1]. */
void auth_md5_secret(const char *user, const char *password, char *out);

/* The PasswordMessage payload for AuthenticationMD5Password: from a plain
 * password or an md5 secret. out[AUTH_MD5_LEN + 1]. False for a SCRAM secret. */
bool auth_md5_response(const char *user, const char *secret, const uint8_t salt[4], char *out);

/* Checks a client's md5 response against a plain or md5 secret. */
bool auth_md5_check(const char *user, const char *secret, const uint8_t salt[4], const char *response);

/* Parsed SCRAM verifier. */
struct scram_secret {
	int iterations;
	uint8_t salt[64];
	size_t salt_len;
	uint8_t stored_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
};
bool auth_scram_parse_secret(const char *secret, struct scram_secret *out);
/* Builds a verifier string from a plain password (random salt); returns a
 * malloc'd string. */
char *auth_scram_make_secret(const char *password, int iterations);

/* tidepool as SCRAM client (logging in to a server). */
struct scram_client {
	char *password;           /* plain password (SASLprep is not applied, like libpq for ASCII) */
	bool have_keys;           /* client_key/server_key given directly instead of a password */
	uint8_t client_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
	char client_nonce[64];
	char *client_first_bare;  /* "n=,r=<nonce>" */
	char *server_first;
	uint8_t server_signature[SCRAM_KEY_LEN];
};
/* password: plain text. Returns false if it is not usable (e.g. an md5 secret). */
bool scram_client_init(struct scram_client *sc, const char *password);
/* Initializes from keys recovered during client authentication (pass-through). */
void scram_client_init_keys(struct scram_client *sc, const uint8_t client_key[SCRAM_KEY_LEN],
			    const uint8_t server_key[SCRAM_KEY_LEN]);
void scram_client_free(struct scram_client *sc);
/* The SASLInitialResponse data ("n,,n=,r=..."); malloc'd, length in *len. */
char *scram_client_first(struct scram_client *sc, size_t *len);
/* Same with a caller-chosen user name (escaped as a saslname) and nonce
 * (printable, no ',', shorter than client_nonce); scram_client_first is this
 * with user "" and a random nonce. NULL if the nonce is unusable or the
 * exchange has already started. */
char *scram_client_first_with_nonce(struct scram_client *sc, const char *user, const char *nonce,
				    size_t *len);
/* Consumes AuthenticationSASLContinue data; returns the SASLResponse data
 * (client-final-message), malloc'd, or NULL with *err set to a static message. */
char *scram_client_final(struct scram_client *sc, const char *server_first, size_t n, size_t *len,
			 const char **err);
/* Verifies AuthenticationSASLFinal data ("v=..."). */
bool scram_client_verify(struct scram_client *sc, const char *server_final, size_t n);

/* tidepool as SCRAM server (checking a client). */
struct scram_server {
	struct scram_secret secret;
	char *client_first_bare;
	char *server_first;
	char *nonce;              /* combined client+server nonce */
	char cbind_flag;          /* gs2 flag the client sent: 'n' or 'y' */
	/* After a successful proof: the client key, usable to log in to the server
	 * for the same user when the secrets are identical. */
	uint8_t client_key[SCRAM_KEY_LEN];
};
/* secret: plain password or SCRAM verifier. False if unusable (md5 secret). */
bool scram_server_init(struct scram_server *ss, const char *secret, int iterations);
/* A stand-in for a user without a secret (unknown, or no row from
 * auth_query), so the exchange looks like a real one: the salt is derived
 * from key and the user name, so it is the same on every attempt as a real
 * user's is, and the keys are random, so no proof ever matches. */
void scram_server_init_mock(struct scram_server *ss, const char *user, const uint8_t key[SCRAM_KEY_LEN],
			    int iterations);
void scram_server_free(struct scram_server *ss);
/* Consumes the SASLInitialResponse data (client-first-message); returns the
 * server-first-message, malloc'd, or NULL on a malformed message. */
char *scram_server_first(struct scram_server *ss, const char *client_first, size_t n, size_t *len);
/* Same, and on failure sets *err to a static message saying why (e.g. the
 * client demanded channel binding). */
char *scram_server_first_err(struct scram_server *ss, const char *client_first, size_t n, size_t *len,
			     const char **err);
/* Consumes the client-final-message; returns the server-final-message ("v=...")
 * if the proof is right, NULL (and *err) if not. */
char *scram_server_final(struct scram_server *ss, const char *client_final, size_t n, size_t *len,
			 const char **err);

#endif
