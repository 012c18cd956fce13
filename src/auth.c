/* auth: MD5 and SCRAM-SHA-256 password authentication, as pure steps.
 *
 * Owns secret classification, md5 hashing, SCRAM verifier parsing/building
 * and both SCRAM roles (RFC 5802 / RFC 7677 as PostgreSQL speaks them: gs2
 * header "n,,", empty user name, no channel binding). No sockets, no global
 * state: every exchange lives in its scram_client / scram_server.
 *
 * Invariants: every message from the peer is treated as hostile. It is
 * copied into a NUL-terminated scratch buffer (embedded NULs and oversized
 * messages are rejected), parsed attribute by attribute in the order the RFC
 * fixes, and every base64 field is decoded into a buffer of known capacity.
 * Secret comparisons are constant time. A step called out of order fails
 * instead of reusing stale state. Key material is wiped when freed. */
#include "auth.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "util.h"

#define SCRAM_PREFIX "SCRAM-SHA-256$"
#define SCRAM_SALT_LEN 16        /* what PostgreSQL uses for new verifiers */
#define SCRAM_MAX_MESSAGE 8192   /* real messages are ~100-200 bytes */
#define B64_LEN(n) (4 * (((n) + 2) / 3) + 1)

static const char MALFORMED[] = "malformed SCRAM message";

/* ---- secrets and md5 ---- */

static bool auth_is_md5_secret(const char *s)
{
	if (strncmp(s, "md5", 3) != 0 || strlen(s) != AUTH_MD5_LEN)
		return false;
	return strspn(s + 3, "0123456789abcdef") == AUTH_MD5_LEN - 3;
}

enum secret_kind auth_secret_kind(const char *secret)
{
	struct scram_secret parsed;
	if (auth_is_md5_secret(secret))
		return SECRET_MD5;
	if (auth_scram_parse_secret(secret, &parsed))
		return SECRET_SCRAM;
	return SECRET_PLAIN;
}

void auth_md5_secret(const char *user, const char *password, char *out)
{
	uint8_t digest[16];
	crypto_md5_2(password, strlen(password), user, strlen(user), digest);
	memcpy(out, "md5", 3);
	crypto_hex(digest, sizeof(digest), out + 3);
}

bool auth_md5_response(const char *user, const char *secret, const uint8_t salt[4], char *out)
{
	char md5_secret[AUTH_MD5_LEN + 1];
	uint8_t digest[16];

	switch (auth_secret_kind(secret)) {
	case SECRET_SCRAM:
		return false;
	case SECRET_MD5:
		strlcpy_safe(md5_secret, secret, sizeof(md5_secret));
		break;
	case SECRET_PLAIN:
		auth_md5_secret(user, secret, md5_secret);
		break;
	}
	crypto_md5_2(md5_secret + 3, AUTH_MD5_LEN - 3, salt, 4, digest);
	memcpy(out, "md5", 3);
	crypto_hex(digest, sizeof(digest), out + 3);
	crypto_wipe(md5_secret, sizeof(md5_secret));
	return true;
}

bool auth_md5_check(const char *user, const char *secret, const uint8_t salt[4], const char *response)
{
	char expected[AUTH_MD5_LEN + 1];
	if (!response || strlen(response) != AUTH_MD5_LEN)
		return false;
	if (!auth_md5_response(user, secret, salt, expected))
		return false;
	bool ok = crypto_equal(expected, response, AUTH_MD5_LEN);
	crypto_wipe(expected, sizeof(expected));
	return ok;
}

/* ---- SCRAM verifiers ---- */

static void scram_keys_from_salted(const uint8_t salted[SCRAM_KEY_LEN], uint8_t client_key[SCRAM_KEY_LEN],
				   uint8_t server_key[SCRAM_KEY_LEN])
{
	crypto_hmac_sha256(salted, SCRAM_KEY_LEN, "Client Key", 10, client_key);
	crypto_hmac_sha256(salted, SCRAM_KEY_LEN, "Server Key", 10, server_key);
}

/* Decimal digits only (no sign, no blanks), value in [1, max]. */
static bool scram_parse_count(const char *s, size_t len, int64_t max, int *out)
{
	int64_t v = 0;
	if (len == 0 || len > 10)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > max)
		return false;
	*out = (int)v;
	return true;
}

/* Decodes exactly want bytes (or, with want 0, 1..cap bytes) of base64. */
static bool scram_b64_field(const char *s, size_t len, uint8_t *out, size_t cap, size_t want, size_t *got)
{
	long n = crypto_base64_decode(s, len, out, cap);
	if (n < 1 || (want && (size_t)n != want))
		return false;
	if (got)
		*got = (size_t)n;
	return true;
}

bool auth_scram_parse_secret(const char *secret, struct scram_secret *out)
{
	struct scram_secret s = { 0 };
	size_t plen = strlen(SCRAM_PREFIX);
	if (!secret || strncmp(secret, SCRAM_PREFIX, plen) != 0)
		return false;
	/* Base64 has no ':' or '$', so the separators are unambiguous; stray
	 * ones end up inside a field and fail its decode. */
	const char *iter = secret + plen;
	const char *colon = strchr(iter, ':');
	const char *dollar = colon ? strchr(colon + 1, '$') : NULL;
	const char *colon2 = dollar ? strchr(dollar + 1, ':') : NULL;
	if (!colon2)
		return false;
	const char *end = colon2 + strlen(colon2);
	bool ok = scram_parse_count(iter, (size_t)(colon - iter), INT_MAX, &s.iterations) &&
		  scram_b64_field(colon + 1, (size_t)(dollar - colon - 1), s.salt, sizeof(s.salt), 0,
				  &s.salt_len) &&
		  scram_b64_field(dollar + 1, (size_t)(colon2 - dollar - 1), s.stored_key, SCRAM_KEY_LEN,
				  SCRAM_KEY_LEN, NULL) &&
		  scram_b64_field(colon2 + 1, (size_t)(end - colon2 - 1), s.server_key, SCRAM_KEY_LEN,
				  SCRAM_KEY_LEN, NULL);
	if (ok)
		*out = s;
	crypto_wipe(&s, sizeof(s));
	return ok;
}

static bool scram_secret_from_password(const char *password, int iterations, struct scram_secret *out)
{
	uint8_t salted[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN];
	if (!password || iterations < 1 || iterations > SCRAM_MAX_ITERATIONS)
		return false;
	memset(out, 0, sizeof(*out));
	out->iterations = iterations;
	out->salt_len = SCRAM_SALT_LEN;
	crypto_random(out->salt, out->salt_len);
	if (!crypto_pbkdf2_sha256(password, strlen(password), out->salt, out->salt_len, iterations, salted))
		return false;
	scram_keys_from_salted(salted, client_key, out->server_key);
	crypto_sha256(client_key, SCRAM_KEY_LEN, out->stored_key);
	crypto_wipe(salted, sizeof(salted));
	crypto_wipe(client_key, sizeof(client_key));
	return true;
}

char *auth_scram_make_secret(const char *password, int iterations)
{
	struct scram_secret s;
	char salt[B64_LEN(sizeof(s.salt))], stored[B64_LEN(SCRAM_KEY_LEN)], server[B64_LEN(SCRAM_KEY_LEN)];
	if (!scram_secret_from_password(password, iterations, &s))
		return NULL;
	crypto_base64_encode(s.salt, s.salt_len, salt);
	crypto_base64_encode(s.stored_key, SCRAM_KEY_LEN, stored);
	crypto_base64_encode(s.server_key, SCRAM_KEY_LEN, server);
	crypto_wipe(&s, sizeof(s));
	return xasprintf(SCRAM_PREFIX "%d:%s$%s:%s", iterations, salt, stored, server);
}

/* ---- SCRAM message parsing ---- */

/* A NUL-terminated scratch copy of a peer message; NULL if it holds a NUL
 * or is implausibly large. */
static char *scram_copy_msg(const char *msg, size_t n)
{
	if (!msg || n == 0 || n > SCRAM_MAX_MESSAGE || memchr(msg, '\0', n))
		return NULL;
	return xstrndup(msg, n);
}

/* Reads "<attr>=<value>" at the cursor, NUL-terminates the value in place
 * and moves the cursor past the next ',' (or to NULL at the end of the
 * message). NULL if the attribute is not next, so a trailing ',' fails the
 * next read while "cursor is NULL" means the message ended cleanly. */
static char *scram_read_attr(char **cur, char attr)
{
	char *s = *cur;
	if (!s || s[0] != attr || s[1] != '=')
		return NULL;
	char *comma = strchr(s + 2, ',');
	if (comma) {
		*comma = '\0';
		*cur = comma + 1;
	} else {
		*cur = NULL;
	}
	return s + 2;
}

/* Like scram_read_attr for any ALPHA attribute; its letter goes to *attr. */
static char *scram_read_any_attr(char **cur, char *attr)
{
	char *s = *cur;
	if (!s || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return NULL;
	*attr = s[0];
	return scram_read_attr(cur, s[0]);
}

/* RFC 5802 "printable": 0x21..0x7e except ','. */
static bool scram_nonce_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < 0x21 || *s > 0x7e || *s == ',')
			return false;
	}
	return true;
}

static char *scram_b64_dup(const uint8_t *in, size_t len)
{
	char *out = xmalloc(B64_LEN(len));
	crypto_base64_encode(in, len, out);
	return out;
}

/* ClientSignature (under StoredKey) or ServerSignature (under ServerKey):
 * HMAC(key, client-first-bare "," server-first "," client-final-without-proof). */
static void scram_signature(const uint8_t key[SCRAM_KEY_LEN], const char *client_first_bare,
			    const char *server_first, const char *final_wo_proof, size_t final_len,
			    uint8_t out[SCRAM_KEY_LEN])
{
	char *msg = xasprintf("%s,%s,%.*s", client_first_bare, server_first, (int)final_len, final_wo_proof);
	crypto_hmac_sha256(key, SCRAM_KEY_LEN, msg, strlen(msg), out);
	free(msg);
}

/* ---- SCRAM client ---- */

bool scram_client_init(struct scram_client *sc, const char *password)
{
	memset(sc, 0, sizeof(*sc));
	if (!password || auth_secret_kind(password) != SECRET_PLAIN)
		return false;
	sc->password = xstrdup(password);
	return true;
}

void scram_client_init_keys(struct scram_client *sc, const uint8_t client_key[SCRAM_KEY_LEN],
			    const uint8_t server_key[SCRAM_KEY_LEN])
{
	memset(sc, 0, sizeof(*sc));
	sc->have_keys = true;
	memcpy(sc->client_key, client_key, SCRAM_KEY_LEN);
	memcpy(sc->server_key, server_key, SCRAM_KEY_LEN);
}

void scram_client_free(struct scram_client *sc)
{
	if (sc->password)
		crypto_wipe(sc->password, strlen(sc->password));
	free(sc->password);
	free(sc->client_first_bare);
	free(sc->server_first);
	crypto_wipe(sc, sizeof(*sc));
}

/* saslname: ',' and '=' are escaped as "=2C" and "=3D". */
static char *scram_escape_name(const char *user)
{
	char *out = xmalloc(strlen(user) * 3 + 1), *o = out;
	for (const char *s = user; *s; s++) {
		if (*s == ',' || *s == '=') {
			memcpy(o, *s == ',' ? "=2C" : "=3D", 3);
			o += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
	return out;
}

char *scram_client_first_with_nonce(struct scram_client *sc, const char *user, const char *nonce,
				    size_t *len)
{
	if (sc->client_first_bare || strlen(nonce) >= sizeof(sc->client_nonce) || !scram_nonce_ok(nonce))
		return NULL;
	strlcpy_safe(sc->client_nonce, nonce, sizeof(sc->client_nonce));
	char *name = scram_escape_name(user ? user : "");
	sc->client_first_bare = xasprintf("n=%s,r=%s", name, nonce);
	free(name);
	char *msg = xasprintf("n,,%s", sc->client_first_bare);
	*len = strlen(msg);
	return msg;
}

char *scram_client_first(struct scram_client *sc, size_t *len)
{
	uint8_t raw[SCRAM_NONCE_LEN];
	char nonce[B64_LEN(SCRAM_NONCE_LEN)];
	crypto_random(raw, sizeof(raw));
	crypto_base64_encode(raw, sizeof(raw), nonce);
	return scram_client_first_with_nonce(sc, "", nonce, len);
}

struct scram_server_first_msg {
	char *nonce;
	uint8_t *salt;
	size_t salt_len;
	int iterations;
};

/* Parses server-first-message "r=<nonce>,s=<salt>,i=<count>" in place. */
static const char *scram_parse_server_first(char *msg, const char *client_nonce,
					    struct scram_server_first_msg *out)
{
	char *cur = msg;
	if (msg[0] == 'm' && msg[1] == '=')
		return "server requires an unsupported SCRAM extension";
	if (msg[0] == 'e' && msg[1] == '=')
		return "server reported a SCRAM error";
	out->nonce = scram_read_attr(&cur, 'r');
	if (!out->nonce || !scram_nonce_ok(out->nonce) ||
	    strlen(out->nonce) <= strlen(client_nonce) ||
	    strncmp(out->nonce, client_nonce, strlen(client_nonce)) != 0)
		return "invalid SCRAM server nonce";
	char *salt = scram_read_attr(&cur, 's');
	if (!salt)
		return MALFORMED;
	out->salt = xmalloc(strlen(salt) / 4 * 3 + 1);
	if (!scram_b64_field(salt, strlen(salt), out->salt, strlen(salt) / 4 * 3, 0, &out->salt_len))
		return "invalid SCRAM salt";
	char *iter = scram_read_attr(&cur, 'i');
	if (!iter || !scram_parse_count(iter, strlen(iter), SCRAM_MAX_ITERATIONS, &out->iterations))
		return "invalid SCRAM iteration count";
	if (cur)
		return MALFORMED;
	return NULL;
}

static bool scram_client_keys(struct scram_client *sc, const struct scram_server_first_msg *m)
{
	uint8_t salted[SCRAM_KEY_LEN];
	if (sc->have_keys)
		return true;
	if (!sc->password ||
	    !crypto_pbkdf2_sha256(sc->password, strlen(sc->password), m->salt, m->salt_len, m->iterations,
				  salted))
		return false;
	scram_keys_from_salted(salted, sc->client_key, sc->server_key);
	crypto_wipe(salted, sizeof(salted));
	return true;
}

/* Computes the proof and the expected server signature; returns the
 * client-final-message. */
static char *scram_client_build_final(struct scram_client *sc, const char *server_first, const char *nonce)
{
	uint8_t stored[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN], proof[SCRAM_KEY_LEN];
	char proof64[B64_LEN(SCRAM_KEY_LEN)];
	char *wo_proof = xasprintf("c=biws,r=%s", nonce);

	crypto_sha256(sc->client_key, SCRAM_KEY_LEN, stored);
	scram_signature(stored, sc->client_first_bare, server_first, wo_proof, strlen(wo_proof), sig);
	for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
		proof[i] = sc->client_key[i] ^ sig[i];
	scram_signature(sc->server_key, sc->client_first_bare, server_first, wo_proof, strlen(wo_proof),
			sc->server_signature);
	crypto_base64_encode(proof, SCRAM_KEY_LEN, proof64);
	char *msg = xasprintf("%s,p=%s", wo_proof, proof64);
	free(wo_proof);
	crypto_wipe(sig, sizeof(sig));
	return msg;
}

char *scram_client_final(struct scram_client *sc, const char *server_first, size_t n, size_t *len,
			 const char **err)
{
	struct scram_server_first_msg m = { 0 };
	char *msg = NULL;

	if (!sc->client_first_bare || sc->server_first) {
		*err = "unexpected SCRAM server-first-message";
		return NULL;
	}
	char *copy = scram_copy_msg(server_first, n);
	*err = copy ? scram_parse_server_first(copy, sc->client_nonce, &m) : MALFORMED;
	if (!*err && !scram_client_keys(sc, &m))
		*err = "SCRAM key derivation failed";
	if (!*err) {
		sc->server_first = xstrndup(server_first, n);
		msg = scram_client_build_final(sc, sc->server_first, m.nonce);
		*len = strlen(msg);
	}
	free(m.salt);
	free(copy);
	return msg;
}

bool scram_client_verify(struct scram_client *sc, const char *server_final, size_t n)
{
	uint8_t sig[SCRAM_KEY_LEN];
	bool ok = false;
	if (!sc->server_first)
		return false;
	char *copy = scram_copy_msg(server_final, n);
	char *cur = copy;
	/* "e=..." is the server refusing; it fails the read of "v=". */
	char *v = copy ? scram_read_attr(&cur, 'v') : NULL;
	if (v && !cur && scram_b64_field(v, strlen(v), sig, sizeof(sig), SCRAM_KEY_LEN, NULL))
		ok = crypto_equal(sig, sc->server_signature, SCRAM_KEY_LEN);
	free(copy);
	return ok;
}

/* ---- SCRAM server ---- */

bool scram_server_init(struct scram_server *ss, const char *secret, int iterations)
{
	memset(ss, 0, sizeof(*ss));
	if (!secret)
		return false;
	switch (auth_secret_kind(secret)) {
	case SECRET_SCRAM:
		return auth_scram_parse_secret(secret, &ss->secret);
	case SECRET_MD5:
		return false;
	case SECRET_PLAIN:
		return scram_secret_from_password(secret, iterations, &ss->secret);
	}
	return false;
}

void scram_server_init_mock(struct scram_server *ss, const char *user, const uint8_t key[SCRAM_KEY_LEN],
			    int iterations)
{
	uint8_t mac[SCRAM_KEY_LEN];
	memset(ss, 0, sizeof(*ss));
	ss->secret.iterations = iterations >= 1 && iterations <= SCRAM_MAX_ITERATIONS ? iterations : 4096;
	crypto_hmac_sha256(key, SCRAM_KEY_LEN, user, strlen(user), mac);
	memcpy(ss->secret.salt, mac, SCRAM_SALT_LEN);
	ss->secret.salt_len = SCRAM_SALT_LEN;
	crypto_random(ss->secret.stored_key, SCRAM_KEY_LEN);
	crypto_random(ss->secret.server_key, SCRAM_KEY_LEN);
}

void scram_server_free(struct scram_server *ss)
{
	free(ss->client_first_bare);
	free(ss->server_first);
	free(ss->nonce);
	crypto_wipe(ss, sizeof(*ss));
}

/* Parses client-first-message "<gs2 header><client-first-bare>" in place;
 * *bare is the offset of client-first-bare. */
static const char *scram_parse_client_first(char *msg, char *flag, size_t *bare, char **nonce)
{
	char *cur = msg;
	if (msg[0] == 'p')
		return "SCRAM channel binding is not supported (client sent gs2 flag 'p')";
	if ((msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',')
		return "malformed SCRAM message (invalid gs2 header)";
	*flag = msg[0];
	if (msg[2] == 'a')
		return "SCRAM authorization identity is not supported";
	if (msg[2] != ',')
		return "malformed SCRAM message (invalid gs2 header)";
	cur = msg + 3;
	*bare = 3;
	if (cur[0] == 'm' && cur[1] == '=')
		return "SCRAM mandatory extensions are not supported";
	/* The user name is ignored: PostgreSQL uses the startup packet's. */
	if (!scram_read_attr(&cur, 'n'))
		return "malformed SCRAM message (expected user name)";
	*nonce = scram_read_attr(&cur, 'r');
	if (!*nonce || !scram_nonce_ok(*nonce))
		return "malformed SCRAM message (invalid client nonce)";
	while (cur) {
		char attr;
		if (!scram_read_any_attr(&cur, &attr))
			return "malformed SCRAM message (invalid extension)";
	}
	return NULL;
}

char *scram_server_first_err(struct scram_server *ss, const char *client_first, size_t n, size_t *len,
			     const char **err)
{
	uint8_t raw[SCRAM_NONCE_LEN];
	char server_nonce[B64_LEN(SCRAM_NONCE_LEN)], salt[B64_LEN(sizeof(ss->secret.salt))];
	char *client_nonce = NULL, flag = 0;
	size_t bare = 0;

	if (ss->client_first_bare) {
		*err = "unexpected SCRAM client-first-message";
		return NULL;
	}
	char *copy = scram_copy_msg(client_first, n);
	*err = copy ? scram_parse_client_first(copy, &flag, &bare, &client_nonce) : MALFORMED;
	if (*err) {
		free(copy);
		return NULL;
	}
	crypto_random(raw, sizeof(raw));
	crypto_base64_encode(raw, sizeof(raw), server_nonce);
	crypto_base64_encode(ss->secret.salt, ss->secret.salt_len, salt);
	ss->cbind_flag = flag;
	ss->client_first_bare = xstrndup(client_first + bare, n - bare);
	ss->nonce = xasprintf("%s%s", client_nonce, server_nonce);
	ss->server_first = xasprintf("r=%s,s=%s,i=%d", ss->nonce, salt, ss->secret.iterations);
	free(copy);
	*len = strlen(ss->server_first);
	return xstrdup(ss->server_first);
}

char *scram_server_first(struct scram_server *ss, const char *client_first, size_t n, size_t *len)
{
	const char *err;
	return scram_server_first_err(ss, client_first, n, len, &err);
}

/* Parses client-final-message "c=<cb>,r=<nonce>[,ext...],p=<proof>" in
 * place; *wo_proof_len is the length of the part before ",p=". */
static const char *scram_parse_client_final(struct scram_server *ss, char *msg, size_t *wo_proof_len,
					    uint8_t proof[SCRAM_KEY_LEN])
{
	const char gs2[3] = { ss->cbind_flag, ',', ',' };
	uint8_t cb[8];
	size_t cb_len = 0;
	char *cur = msg, *attr_start, *value, attr = 0;

	value = scram_read_attr(&cur, 'c');
	if (!value || !scram_b64_field(value, strlen(value), cb, sizeof(cb), 0, &cb_len) ||
	    cb_len != sizeof(gs2) || memcmp(cb, gs2, sizeof(gs2)) != 0)
		return "SCRAM channel binding data does not match";
	value = scram_read_attr(&cur, 'r');
	if (!value || strcmp(value, ss->nonce) != 0)
		return "SCRAM nonce does not match";
	do {
		attr_start = cur;
		value = scram_read_any_attr(&cur, &attr);
		if (!value)
			return "malformed SCRAM message (expected proof)";
	} while (attr != 'p');
	if (cur)
		return "malformed SCRAM message (data after proof)";
	if (!scram_b64_field(value, strlen(value), proof, SCRAM_KEY_LEN, SCRAM_KEY_LEN, NULL))
		return "malformed SCRAM message (invalid proof)";
	*wo_proof_len = (size_t)(attr_start - msg) - 1;
	return NULL;
}

/* ClientKey = proof XOR HMAC(StoredKey, AuthMessage); accepted when
 * SHA256(ClientKey) is StoredKey. Keeps ClientKey for pass-through. */
static bool scram_server_check_proof(struct scram_server *ss, const char *final_wo_proof, size_t wo_len,
				     const uint8_t proof[SCRAM_KEY_LEN])
{
	uint8_t sig[SCRAM_KEY_LEN], key[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN];
	scram_signature(ss->secret.stored_key, ss->client_first_bare, ss->server_first, final_wo_proof,
			wo_len, sig);
	for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
		key[i] = proof[i] ^ sig[i];
	crypto_sha256(key, SCRAM_KEY_LEN, stored);
	bool ok = crypto_equal(stored, ss->secret.stored_key, SCRAM_KEY_LEN);
	if (ok)
		memcpy(ss->client_key, key, SCRAM_KEY_LEN);
	crypto_wipe(key, sizeof(key));
	crypto_wipe(sig, sizeof(sig));
	return ok;
}

char *scram_server_final(struct scram_server *ss, const char *client_final, size_t n, size_t *len,
			 const char **err)
{
	uint8_t proof[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN];
	size_t wo_len = 0;
	char *out = NULL;

	if (!ss->server_first || !ss->nonce) {
		*err = "unexpected SCRAM client-final-message";
		return NULL;
	}
	char *copy = scram_copy_msg(client_final, n);
	*err = copy ? scram_parse_client_final(ss, copy, &wo_len, proof) : MALFORMED;
	if (!*err && !scram_server_check_proof(ss, client_final, wo_len, proof))
		*err = "password authentication failed (SCRAM proof does not match)";
	if (!*err) {
		scram_signature(ss->secret.server_key, ss->client_first_bare, ss->server_first, client_final,
				wo_len, sig);
		char *sig64 = scram_b64_dup(sig, sizeof(sig));
		out = xasprintf("v=%s", sig64);
		free(sig64);
		*len = strlen(out);
	}
	free(copy);
	return out;
}
