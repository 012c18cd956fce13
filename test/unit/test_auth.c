/* Unit tests for crypto and auth: known-answer vectors (md5, sha256, HMAC,
 * PBKDF2, base64, RFC 7677 SCRAM), a verifier made by a real PostgreSQL 15,
 * full client<->server SCRAM exchanges, pass-through with recovered keys,
 * and hostile input on every parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "crypto.h"
#include "unit.h"
#include "util.h"

/* CREATE ROLE tp PASSWORD 'tidepool-pw' on PostgreSQL 15, from pg_authid. */
static const char PG_VERIFIER[] =
	"SCRAM-SHA-256$4096:1oys+yKYuDWPwXdwKSMjnA==$vY4O2Df4UdOJL1rS55wh9MgfOQa95tkhu6H3ZTbJpaI="
	":Gc260GwJB3kwWcUpGKwt0e5iBcu+wcmDFEI+UcLr5Pg=";
/* Same password, salt 01..10, computed with Python's hashlib/hmac. */
static const char PY_VERIFIER[] =
	"SCRAM-SHA-256$4096:AQIDBAUGBwgJCgsMDQ4PEA==$Omnc1J8soxq9hMS72937FBsk6WSbL+EM9NOvPqdOrCQ="
	":FbOXl00ZM48sATOaJLS//Nu+vwLfHhHmnrb6lRkDF0w=";

static const char RFC_SERVER_FIRST[] =
	"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
static const char RFC_CLIENT_FINAL[] =
	"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
	"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
static const char RFC_SERVER_FINAL[] = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

static void hex_of(const uint8_t *in, size_t len, char *out)
{
	crypto_hex(in, len, out);
}

/* ---- crypto ---- */

static void test_digests(void)
{
	uint8_t d[32];
	char hex[65];

	crypto_sha256("abc", 3, d);
	hex_of(d, 32, hex);
	CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	crypto_md5("postgrespostgres", 16, d);
	hex_of(d, 16, hex);
	CHECK_STR(hex, "3175bce1d3201d16594cebf9d7eb3f9d");
	crypto_md5_2("postgres", 8, "postgres", 8, d);
	hex_of(d, 16, hex);
	CHECK_STR(hex, "3175bce1d3201d16594cebf9d7eb3f9d");
	/* RFC 4231 test case 2 */
	crypto_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, d);
	hex_of(d, 32, hex);
	CHECK_STR(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	CHECK(crypto_pbkdf2_sha256("password", 8, (const uint8_t *)"salt", 4, 4096, d));
	hex_of(d, 32, hex);
	CHECK_STR(hex, "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a");
	CHECK(!crypto_pbkdf2_sha256("password", 8, (const uint8_t *)"salt", 4, 0, d));
	CHECK(crypto_equal("abc", "abc", 3));
	CHECK(!crypto_equal("abc", "abd", 3));
}

static void test_random(void)
{
	uint8_t a[32] = { 0 }, b[32] = { 0 }, zero[32] = { 0 };
	crypto_random(a, sizeof(a));
	crypto_random(b, sizeof(b));
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	CHECK(memcmp(a, zero, sizeof(a)) != 0);
}

static void test_base64_vectors(void)
{
	static const char *plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *enc[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	char out[16];
	uint8_t dec[16];

	for (size_t i = 0; i < 7; i++) {
		size_t n = strlen(plain[i]);
		CHECK_INT(crypto_base64_encode((const uint8_t *)plain[i], n, out), strlen(enc[i]));
		CHECK_STR(out, enc[i]);
		memset(dec, 0xAA, sizeof(dec));
		CHECK_INT(crypto_base64_decode(enc[i], strlen(enc[i]), dec, n), n);
		CHECK(memcmp(dec, plain[i], n) == 0);
		/* the real length, not 3 per quad: nothing written past it */
		CHECK_INT(dec[n], 0xAA);
		if (n > 0)
			CHECK_INT(crypto_base64_decode(enc[i], strlen(enc[i]), dec, n - 1), -1);
	}
}

static void test_base64_roundtrip(void)
{
	uint8_t in[64], dec[64];
	char enc[4 * 22 + 1];
	for (size_t n = 0; n <= sizeof(in); n++) {
		crypto_random(in, n);
		size_t el = crypto_base64_encode(in, n, enc);
		CHECK_INT(el, 4 * ((n + 2) / 3));
		CHECK_INT(strlen(enc), el);
		CHECK_INT(crypto_base64_decode(enc, el, dec, sizeof(dec)), n);
		CHECK(memcmp(in, dec, n) == 0);
	}
}

static void test_base64_invalid(void)
{
	static const char *bad[] = {
		"Zm9", "Zm9vY", "Zm9v!", "Zg=a", "Z===", "====", "Zm 9v", " Zm9v", "Zm9v\n",
		"Zg==Zg==", "=Zm9", "Zm9v====", "Zm-_", "Zm9\x80",
		/* non-canonical: the spare bits before the padding must be zero */
		"Zh==", "Zm9=",
	};
	uint8_t dec[16];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(crypto_base64_decode(bad[i], strlen(bad[i]), dec, sizeof(dec)), -1);
	/* embedded NUL */
	CHECK_INT(crypto_base64_decode("Zm\0v", 4, dec, sizeof(dec)), -1);
	/* the length given is honoured, not the NUL */
	CHECK_INT(crypto_base64_decode("Zm9vXXXX", 4, dec, sizeof(dec)), 3);
}

/* ---- md5 ---- */

static void test_md5_secret(void)
{
	char out[AUTH_MD5_LEN + 1];
	auth_md5_secret("postgres", "postgres", out);
	CHECK_STR(out, "md53175bce1d3201d16594cebf9d7eb3f9d");
	CHECK_INT(auth_secret_kind(out), SECRET_MD5);
	CHECK_INT(auth_secret_kind("postgres"), SECRET_PLAIN);
	CHECK_INT(auth_secret_kind(""), SECRET_PLAIN);
	CHECK_INT(auth_secret_kind("md53175BCE1d3201d16594cebf9d7eb3f9d"), SECRET_PLAIN);
	CHECK_INT(auth_secret_kind("md53175bce1d3201d16594cebf9d7eb3f9"), SECRET_PLAIN);
	CHECK_INT(auth_secret_kind("md53175bce1d3201d16594cebf9d7eb3f9dd"), SECRET_PLAIN);
	CHECK_INT(auth_secret_kind(PG_VERIFIER), SECRET_SCRAM);
	CHECK_INT(auth_secret_kind("SCRAM-SHA-256$4096:abc"), SECRET_PLAIN);
}

static void test_md5_response(void)
{
	const uint8_t salt[4] = { 1, 2, 3, 4 }, salt2[4] = { 1, 2, 3, 5 };
	char from_plain[AUTH_MD5_LEN + 1], from_md5[AUTH_MD5_LEN + 1];

	CHECK(auth_md5_response("postgres", "postgres", salt, from_plain));
	CHECK(auth_md5_response("postgres", "md53175bce1d3201d16594cebf9d7eb3f9d", salt, from_md5));
	/* md5("3175bce1d3201d16594cebf9d7eb3f9d" || 01 02 03 04), by Python */
	CHECK_STR(from_plain, "md568be9ed08db75f318087ab337aaea044");
	CHECK_STR(from_md5, from_plain);
	CHECK(!auth_md5_response("tp", PG_VERIFIER, salt, from_md5));

	CHECK(auth_md5_check("postgres", "postgres", salt, from_plain));
	CHECK(auth_md5_check("postgres", "md53175bce1d3201d16594cebf9d7eb3f9d", salt, from_plain));
	CHECK(!auth_md5_check("postgres", "postgres", salt2, from_plain));
	CHECK(!auth_md5_check("postgres", "wrong", salt, from_plain));
	CHECK(!auth_md5_check("other", "postgres", salt, from_plain));
	CHECK(!auth_md5_check("postgres", PG_VERIFIER, salt, from_plain));
	CHECK(!auth_md5_check("postgres", "postgres", salt, NULL));
	CHECK(!auth_md5_check("postgres", "postgres", salt, ""));
	CHECK(!auth_md5_check("postgres", "postgres", salt, "md568be9ed08db75f318087ab337aaea04"));
	CHECK(!auth_md5_check("postgres", "postgres", salt, "md568be9ed08db75f318087ab337aaea0444"));
}

/* ---- SCRAM verifiers ---- */

static void test_verifier_parse(void)
{
	struct scram_secret s;
	char hex[65];

	CHECK(auth_scram_parse_secret(PG_VERIFIER, &s));
	CHECK_INT(s.iterations, 4096);
	CHECK_INT(s.salt_len, 16);
	CHECK(auth_scram_parse_secret(PY_VERIFIER, &s));
	CHECK_INT(s.salt_len, 16);
	CHECK_INT(s.salt[0], 1);
	CHECK_INT(s.salt[15], 16);
	hex_of(s.server_key, 32, hex);
	CHECK_INT(strlen(hex), 64);

	static const char *bad[] = {
		"",
		"SCRAM-SHA-256",
		"SCRAM-SHA-256$",
		"SCRAM-SHA-1$4096:AQIDBAUGBwgJCgsMDQ4PEA==$Omnc1J8soxq9hMS72937FBsk6WSbL+EM9NOvPqdOrCQ=:FbOXl00ZM48sATOaJLS//Nu+vwLfHhHmnrb6lRkDF0w=",
		"SCRAM-SHA-256$0:AQIDBAUGBwgJCgsMDQ4PEA==$Omnc1J8soxq9hMS72937FBsk6WSbL+EM9NOvPqdOrCQ=:FbOXl00ZM48sATOaJLS//Nu+vwLfHhHmnrb6lRkDF0w=",
		"SCRAM-SHA-256$-1:AQIDBAUGBwgJCgsMDQ4PEA==$Omnc1J8soxq9hMS72937FBsk6WSbL+EM9NOvPqdOrCQ=:FbOXl00ZM48sATOaJLS//Nu+vwLfHhHmnrb6lRkDF0w=",
		"SCRAM-SHA-256$+4096:AQIDBAUGBwgJCgsMDQ4PEA==$Omnc1J8soxq9hMS72937FBsk6WSbL+EM9NOvPqdOrCQ=:FbOXl00ZM48sATOaJLS//Nu+vwLfHhHmnrb6lRkDF0w=",
		"SCRAM-SHA-256$ 4096:AQIDBAUGBwgJCgsMDQ4PEA==$Omnc1J8soxq9hMS72937FBsk6WSbL+EM9NOvPqdOrCQ=:FbOXl00ZM48sATOaJLS//Nu+vwLfHhHmnrb6lRkDF0w=",
		"SCRAM-SHA-256$99999999999:AQIDBAUGBwgJCgsMDQ4PEA==$Omnc1J8soxq9hMS72937FBsk6WSbL+EM9NOvPqdOrCQ=:FbOXl00ZM48sATOaJLS//Nu+vwLfHhHmnrb6lRkDF0w=",
		"SCRAM-SHA-256$4096x:AQIDBAUGBwgJCgsMDQ4PEA==$Omnc1J8soxq9hMS72937FBsk6WSbL+EM9NOvPqdOrCQ=:FbOXl00ZM48sATOaJLS//Nu+vwLfHhHmnrb6lRkDF0w=",
		"SCRAM-SHA-256$4096:$Omnc1J8soxq9hMS72937FBsk6WSbL+EM9NOvPqdOrCQ=:FbOXl00ZM48sATOaJLS//Nu+vwLfHhHmnrb6lRkDF0w=",
		"SCRAM-SHA-256$4096:AQIDBAUGBwgJCgsMDQ4PE!==$Omnc1J8soxq9hMS72937FBsk6WSbL+EM9NOvPqdOrCQ=:FbOXl00ZM48sATOaJLS//Nu+vwLfHhHmnrb6lRkDF0w=",
		"SCRAM-SHA-256$4096:AQIDBAUGBwgJCgsMDQ4PEA==$Omnc1J8soxq9hMS72937FBsk6WSbL+EM9NOvPqdOrA==:FbOXl00ZM48sATOaJLS//Nu+vwLfHhHmnrb6lRkDF0w=",
		"SCRAM-SHA-256$4096:AQIDBAUGBwgJCgsMDQ4PEA==$Omnc1J8soxq9hMS72937FBsk6WSbL+EM9NOvPqdOrCQ=:FbOXl00ZM48sATOaJLS//Nu+vwLfHhHmnrb6lRkDF0w=x",
		"SCRAM-SHA-256$4096:AQIDBAUGBwgJCgsMDQ4PEA==$Omnc1J8soxq9hMS72937FBsk6WSbL+EM9NOvPqdOrCQ=:FbOXl00ZM48sATOaJLS//Nu+vwLfHhHmnrb6lRkDF0w=:",
		"SCRAM-SHA-256$4096:AQIDBAUGBwgJCgsMDQ4PEA==$Omnc1J8soxq9hMS72937FBsk6WSbL+EM9NOvPqdOrCQ=$FbOXl00ZM48sATOaJLS//Nu+vwLfHhHmnrb6lRkDF0w=",
		"SCRAM-SHA-256$4096:AQIDBAUGBwgJCgsMDQ4PEA==$Omnc1J8soxq9hMS72937FBsk6WSbL+EM9NOvPqdOrCQ=",
		"SCRAM-SHA-256$4096:AQIDBAUGBwgJCgsMDQ4PEA==",
		/* 66-byte salt does not fit */
		"SCRAM-SHA-256$4096:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA$Omnc1J8soxq9hMS72937FBsk6WSbL+EM9NOvPqdOrCQ=:FbOXl00ZM48sATOaJLS//Nu+vwLfHhHmnrb6lRkDF0w=",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (auth_scram_parse_secret(bad[i], &s)) {
			fprintf(stderr, "accepted bad verifier #%zu\n", i);
			CHECK(false);
		}
	}
	CHECK(!auth_scram_parse_secret(NULL, &s));
}

static void test_verifier_make(void)
{
	struct scram_secret a, b;
	char *v1 = auth_scram_make_secret("pw", 4096);
	char *v2 = auth_scram_make_secret("pw", 4096);
	CHECK(v1 && v2);
	CHECK(strncmp(v1, "SCRAM-SHA-256$4096:", 19) == 0);
	CHECK(auth_scram_parse_secret(v1, &a));
	CHECK(auth_scram_parse_secret(v2, &b));
	CHECK_INT(a.iterations, 4096);
	CHECK_INT(a.salt_len, 16);
	/* random salt: same password, different verifiers */
	CHECK(strcmp(v1, v2) != 0);
	CHECK(memcmp(a.stored_key, b.stored_key, SCRAM_KEY_LEN) != 0);
	CHECK_INT(auth_secret_kind(v1), SECRET_SCRAM);
	free(v1);
	free(v2);
	CHECK(auth_scram_make_secret("pw", 0) == NULL);
	CHECK(auth_scram_make_secret("pw", SCRAM_MAX_ITERATIONS + 1) == NULL);
}

/* ---- SCRAM exchanges ---- */

static void test_scram_rfc7677_client(void)
{
	struct scram_client sc;
	size_t len = 0;
	const char *err = NULL;

	CHECK(scram_client_init(&sc, "pencil"));
	char *first = scram_client_first_with_nonce(&sc, "user", "rOprNGfwEbeRWgbNEkqO", &len);
	CHECK_STR(first, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
	CHECK_INT(len, strlen("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"));
	char *final = scram_client_final(&sc, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), &len, &err);
	CHECK_STR(final, RFC_CLIENT_FINAL);
	CHECK(err == NULL);
	CHECK_INT(len, strlen(RFC_CLIENT_FINAL));
	CHECK(!scram_client_verify(&sc, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G8=", 46));
	/* same bytes with a non-zero spare bit: non-canonical base64 is refused */
	CHECK(!scram_client_verify(&sc, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=", 46));
	CHECK(!scram_client_verify(&sc, "e=invalid-proof", 15));
	CHECK(scram_client_verify(&sc, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)));
	/* a second server-first is out of order */
	CHECK(scram_client_final(&sc, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), &len, &err) == NULL);
	CHECK(err != NULL);
	free(first);
	free(final);
	scram_client_free(&sc);
}

static void test_scram_client_first(void)
{
	struct scram_client sc;
	size_t len = 0;

	CHECK(scram_client_init(&sc, "pw"));
	char *first = scram_client_first(&sc, &len);
	CHECK(first && strncmp(first, "n,,n=,r=", 8) == 0);
	CHECK_INT(strlen(first), 8 + 32);
	CHECK_INT(len, strlen(first));
	CHECK_STR(sc.client_first_bare, first + 3);
	CHECK(scram_client_first(&sc, &len) == NULL); /* only once */
	free(first);
	scram_client_free(&sc);

	CHECK(scram_client_init(&sc, "pw"));
	first = scram_client_first_with_nonce(&sc, "a,b=c", "abc", &len);
	CHECK_STR(first, "n,,n=a=2Cb=3Dc,r=abc");
	free(first);
	scram_client_free(&sc);

	static const char *bad_nonces[] = { "", "ab,c", "ab c", "ab\x7f",
		"0123456789012345678901234567890123456789012345678901234567890123" };
	for (size_t i = 0; i < sizeof(bad_nonces) / sizeof(bad_nonces[0]); i++) {
		CHECK(scram_client_init(&sc, "pw"));
		CHECK(scram_client_first_with_nonce(&sc, "", bad_nonces[i], &len) == NULL);
		scram_client_free(&sc);
	}
	CHECK(!scram_client_init(&sc, "md53175bce1d3201d16594cebf9d7eb3f9d"));
	scram_client_free(&sc);
	CHECK(!scram_client_init(&sc, PG_VERIFIER));
	scram_client_free(&sc);
}

/* Runs a whole exchange; true when the server accepts the proof and the
 * client accepts the server's signature. */
static bool exchange(struct scram_client *sc, struct scram_server *ss)
{
	size_t l1 = 0, l2 = 0, l3 = 0, l4 = 0;
	const char *err = NULL;
	bool ok = false;
	char *cf = scram_client_first(sc, &l1);
	char *sf = cf ? scram_server_first(ss, cf, l1, &l2) : NULL;
	char *cfin = sf ? scram_client_final(sc, sf, l2, &l3, &err) : NULL;
	char *sfin = cfin ? scram_server_final(ss, cfin, l3, &l4, &err) : NULL;
	if (sfin)
		ok = scram_client_verify(sc, sfin, l4);
	free(cf);
	free(sf);
	free(cfin);
	free(sfin);
	return ok;
}

static bool exchange_password(const char *client_pw, const char *server_secret)
{
	struct scram_client sc;
	struct scram_server ss;
	bool ok = scram_client_init(&sc, client_pw) && scram_server_init(&ss, server_secret, 4096) &&
		  exchange(&sc, &ss);
	scram_client_free(&sc);
	scram_server_free(&ss);
	return ok;
}

static void test_scram_roundtrip(void)
{
	char *made = auth_scram_make_secret("s3cr3t,=pw", 4096);
	CHECK(exchange_password("s3cr3t,=pw", "s3cr3t,=pw"));
	CHECK(exchange_password("s3cr3t,=pw", made));
	CHECK(exchange_password("tidepool-pw", PG_VERIFIER));
	CHECK(exchange_password("tidepool-pw", PY_VERIFIER));
	CHECK(exchange_password("", ""));
	CHECK(!exchange_password("wrong", "s3cr3t,=pw"));
	CHECK(!exchange_password("wrong", made));
	CHECK(!exchange_password("tidepool-PW", PG_VERIFIER));
	free(made);

	struct scram_server ss;
	CHECK(!scram_server_init(&ss, "md53175bce1d3201d16594cebf9d7eb3f9d", 4096));
	scram_server_free(&ss);
	CHECK(!scram_server_init(&ss, "plain", 0));
	scram_server_free(&ss);
}

static void test_scram_passthrough(void)
{
	struct scram_client sc, sc2, sc3;
	struct scram_server ss, ss2, ss3;
	struct scram_secret sec;
	uint8_t bad_key[SCRAM_KEY_LEN];

	CHECK(auth_scram_parse_secret(PG_VERIFIER, &sec));
	CHECK(scram_client_init(&sc, "tidepool-pw"));
	CHECK(scram_server_init(&ss, PG_VERIFIER, 0));
	CHECK(exchange(&sc, &ss));
	/* what the client proved lets tidepool log in to the real server */
	scram_client_init_keys(&sc2, ss.client_key, sec.server_key);
	CHECK(sc2.have_keys);
	CHECK(scram_server_init(&ss2, PG_VERIFIER, 0));
	CHECK(exchange(&sc2, &ss2));
	/* a wrong ServerKey: the server accepts, but the client refuses it */
	memcpy(bad_key, sec.server_key, SCRAM_KEY_LEN);
	bad_key[0] ^= 1;
	scram_client_init_keys(&sc3, ss.client_key, bad_key);
	CHECK(scram_server_init(&ss3, PG_VERIFIER, 0));
	CHECK(!exchange(&sc3, &ss3));
	scram_client_free(&sc);
	scram_client_free(&sc2);
	scram_client_free(&sc3);
	scram_server_free(&ss);
	scram_server_free(&ss2);
	scram_server_free(&ss3);
}

static void test_scram_server_first_bad(void)
{
	static const char *bad[] = {
		"n", "n,", "n,,", "n,,n=", "n,,n=,", "n,,n=,r=", "n,,r=abc", "n,,n=,r=abc,",
		"n,,n=,r=a b", "n,,n=,r=abc,x", "n,,n=,r=abc,=x", "x,,n=,r=abc", "n,x,n=,r=abc",
		"n,a=admin,n=,r=abc", "n,,m=ext,n=,r=abc", "n,,n=,m=ext,r=abc", ",,n=,r=abc",
	};
	struct scram_server ss;
	size_t len;
	const char *err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(scram_server_init(&ss, PG_VERIFIER, 0));
		err = NULL;
		char *out = scram_server_first_err(&ss, bad[i], strlen(bad[i]), &len, &err);
		if (out || !err)
			fprintf(stderr, "accepted bad client-first \"%s\"\n", bad[i]);
		CHECK(out == NULL && err != NULL);
		free(out);
		scram_server_free(&ss);
	}
	CHECK(scram_server_init(&ss, PG_VERIFIER, 0));
	CHECK(scram_server_first_err(&ss, "p=tls-server-end-point,,n=,r=abc", 32, &len, &err) == NULL);
	CHECK(err && strstr(err, "channel binding"));
	CHECK(scram_server_first(&ss, "n,,n=,r=a\0c", 11, &len) == NULL);
	CHECK(scram_server_first(&ss, "", 0, &len) == NULL);
	CHECK(scram_server_first(&ss, NULL, 0, &len) == NULL);
	scram_server_free(&ss);

	static const char *good[] = { "n,,n=,r=abc", "y,,n=,r=abc", "n,,n=user,r=abc,x=ext,y=" };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		CHECK(scram_server_init(&ss, PG_VERIFIER, 0));
		char *out = scram_server_first(&ss, good[i], strlen(good[i]), &len);
		CHECK(out && strncmp(out, "r=abc", 5) == 0 && strstr(out, ",s=1oys+yKYuDWPwXdwKSMjnA==,i=4096"));
		CHECK(scram_server_first(&ss, good[i], strlen(good[i]), &len) == NULL); /* only once */
		free(out);
		scram_server_free(&ss);
	}
}

/* A server that has answered "n,,n=,r=<client nonce>"; returns the combined nonce. */
static const char *server_after_first(struct scram_server *ss, const char *first)
{
	size_t len;
	CHECK(scram_server_init(ss, "pw", 4096));
	char *out = scram_server_first(ss, first, strlen(first), &len);
	CHECK(out != NULL);
	free(out);
	return ss->nonce;
}

/* The client-final for password "pw" to a server in that state. */
static char *good_client_final(struct scram_server *ss, const char *client_first, size_t *len)
{
	struct scram_client sc;
	size_t l;
	const char *err;
	const char *bare = client_first + 3;
	CHECK(scram_client_init(&sc, "pw"));
	free(scram_client_first_with_nonce(&sc, "", strchr(bare, 'r') + 2, &l));
	char *fin = scram_client_final(&sc, ss->server_first, strlen(ss->server_first), len, &err);
	scram_client_free(&sc);
	return fin;
}

static bool server_final_ok(const char *first, const char *final, size_t n, const char **err)
{
	struct scram_server ss;
	size_t len;
	server_after_first(&ss, first);
	char *out = scram_server_final(&ss, final, n, &len, err);
	bool ok = out != NULL;
	free(out);
	scram_server_free(&ss);
	return ok;
}

static void test_scram_server_final_bad(void)
{
	struct scram_server ss;
	const char *err = NULL;
	size_t len, n;
	const char *nonce = server_after_first(&ss, "n,,n=,r=abc");
	char *fin = good_client_final(&ss, "n,,n=,r=abc", &n);
	char *out, *bad;

	CHECK(fin != NULL);
	/* every truncation is rejected */
	for (size_t cut = 0; cut < n; cut++) {
		CHECK((out = scram_server_final(&ss, fin, cut, &len, &err)) == NULL);
		free(out);
	}
	/* tampered nonce, channel binding, proof, extra data */
	const char *p = strstr(fin, ",p=");
	bad = xasprintf("c=biws,r=%sX%s", nonce, p);
	CHECK(!server_final_ok("n,,n=,r=abc", bad, strlen(bad), &err));
	free(bad);
	bad = xasprintf("c=eSws,r=%s%s", nonce, p);
	CHECK(!server_final_ok("n,,n=,r=abc", bad, strlen(bad), &err));
	free(bad);
	bad = xasprintf("c=biws,r=%s,p=AAAA", nonce);
	CHECK(!server_final_ok("n,,n=,r=abc", bad, strlen(bad), &err));
	free(bad);
	bad = xasprintf("c=biws,r=%s,p=!!!!", nonce);
	CHECK(!server_final_ok("n,,n=,r=abc", bad, strlen(bad), &err));
	free(bad);
	bad = xasprintf("c=biws,r=%s", nonce);
	CHECK(!server_final_ok("n,,n=,r=abc", bad, strlen(bad), &err));
	free(bad);
	bad = xasprintf("%s,x=1", fin);
	CHECK((out = scram_server_final(&ss, bad, strlen(bad), &len, &err)) == NULL);
	free(bad);
	bad = xasprintf("r=%s,c=biws%s", nonce, p);
	CHECK((out = scram_server_final(&ss, bad, strlen(bad), &len, &err)) == NULL);
	free(bad);
	/* the untouched message still works (the server kept no bad state) */
	out = scram_server_final(&ss, fin, n, &len, &err);
	CHECK(out && strncmp(out, "v=", 2) == 0);
	free(out);
	free(fin);
	scram_server_free(&ss);

	/* out of order: final before first */
	CHECK(scram_server_init(&ss, "pw", 4096));
	CHECK(scram_server_final(&ss, "c=biws,r=abc,p=AAAA", 19, &len, &err) == NULL);
	scram_server_free(&ss);
}

static void test_scram_y_flag_binding(void)
{
	struct scram_server ss;
	const char *err = NULL;
	size_t len, n;
	server_after_first(&ss, "y,,n=,r=abc");
	char *fin = good_client_final(&ss, "y,,n=,r=abc", &n);
	/* a 'y' client must echo "y,," (eSws), not "n,," (biws) */
	CHECK(scram_server_final(&ss, fin, n, &len, &err) == NULL);
	char *fixed = xasprintf("c=eSws%s", fin + 6);
	char *out = scram_server_final(&ss, fixed, strlen(fixed), &len, &err);
	/* the proof covers the c= value, so rewriting it breaks the proof */
	CHECK(out == NULL);
	CHECK(err && strstr(err, "proof"));
	free(out);
	free(fixed);
	free(fin);
	scram_server_free(&ss);
}

static char *client_final_for(const char *server_first, const char **err)
{
	struct scram_client sc;
	size_t len;
	CHECK(scram_client_init(&sc, "pencil"));
	free(scram_client_first_with_nonce(&sc, "user", "rOprNGfwEbeRWgbNEkqO", &len));
	char *out = scram_client_final(&sc, server_first, strlen(server_first), &len, err);
	scram_client_free(&sc);
	return out;
}

static void test_scram_client_final_bad(void)
{
	static const char *bad[] = {
		"",
		"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		"r=XOprNGfwEbeRWgbNEkqO%hvY,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		"r=rOprNGfwEbeRWgbNEkqO%h v,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		"r=rOprNGfwEbeRWgbNEkqO%hvY,i=4096",
		"r=rOprNGfwEbeRWgbNEkqO%hvY,s=W22ZaJ0SNY7soEsUEjb6gQ==",
		"r=rOprNGfwEbeRWgbNEkqO%hvY,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,x=1",
		"r=rOprNGfwEbeRWgbNEkqO%hvY,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,",
		"r=rOprNGfwEbeRWgbNEkqO%hvY,s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096",
		"r=rOprNGfwEbeRWgbNEkqO%hvY,s=W22Z!J0SNY7soEsUEjb6gQ==,i=4096",
		"r=rOprNGfwEbeRWgbNEkqO%hvY,s=,i=4096",
		"r=rOprNGfwEbeRWgbNEkqO%hvY,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",
		"r=rOprNGfwEbeRWgbNEkqO%hvY,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1",
		"r=rOprNGfwEbeRWgbNEkqO%hvY,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=10000001",
		"r=rOprNGfwEbeRWgbNEkqO%hvY,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999999999999",
		"r=rOprNGfwEbeRWgbNEkqO%hvY,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096x",
		"r=rOprNGfwEbeRWgbNEkqO%hvY,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=",
		"m=ext,r=rOprNGfwEbeRWgbNEkqO%hvY,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		"e=other-error",
		"s=W22ZaJ0SNY7soEsUEjb6gQ==,r=rOprNGfwEbeRWgbNEkqO%hvY,i=4096",
	};
	const char *err;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		char *out = client_final_for(bad[i], &err);
		if (out || !err)
			fprintf(stderr, "accepted bad server-first \"%s\"\n", bad[i]);
		CHECK(out == NULL && err != NULL);
		free(out);
	}
	/* every truncation of the RFC message is rejected, up to "i=" (a
	 * shorter count, "i=4", is a valid message) */
	for (size_t cut = 0; cut + 4 <= strlen(RFC_SERVER_FIRST); cut++) {
		struct scram_client sc;
		size_t len;
		CHECK(scram_client_init(&sc, "pencil"));
		free(scram_client_first_with_nonce(&sc, "user", "rOprNGfwEbeRWgbNEkqO", &len));
		char *out = scram_client_final(&sc, RFC_SERVER_FIRST, cut, &len, &err);
		CHECK(out == NULL);
		free(out);
		scram_client_free(&sc);
	}
	/* out of order: server-first before client-first */
	struct scram_client sc;
	size_t len;
	CHECK(scram_client_init(&sc, "pencil"));
	CHECK(scram_client_final(&sc, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), &len, &err) == NULL);
	CHECK(!scram_client_verify(&sc, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)));
	scram_client_free(&sc);
}

static void test_scram_verify_bad(void)
{
	static const char *bad[] = {
		"", "v=", "v", "e=invalid-proof", "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,x=1",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95A==",
		"x=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
	};
	struct scram_client sc;
	size_t len;
	const char *err;
	CHECK(scram_client_init(&sc, "pencil"));
	free(scram_client_first_with_nonce(&sc, "user", "rOprNGfwEbeRWgbNEkqO", &len));
	free(scram_client_final(&sc, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), &len, &err));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(!scram_client_verify(&sc, bad[i], strlen(bad[i])));
	for (size_t cut = 0; cut < strlen(RFC_SERVER_FINAL); cut++)
		CHECK(!scram_client_verify(&sc, RFC_SERVER_FINAL, cut));
	CHECK(scram_client_verify(&sc, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)));
	scram_client_free(&sc);
}

/* Deterministic byte-flip mutations of valid messages: nothing may crash
 * (valgrind watches), and a mutated proof must never pass. */
static uint32_t mut_next(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void test_scram_mutations(void)
{
	struct scram_server ss;
	uint32_t seed = 12345;
	size_t n, len;
	const char *err;
	server_after_first(&ss, "n,,n=,r=abc");
	char *fin = good_client_final(&ss, "n,,n=,r=abc", &n);
	for (int i = 0; i < 2000; i++) {
		char *m = xstrndup(fin, n);
		size_t pos = mut_next(&seed) % n;
		m[pos] = (char)(mut_next(&seed) & 0xff);
		char *out = scram_server_final(&ss, m, n, &len, &err);
		/* any change must fail (base64 is decoded canonically) */
		if (out && m[pos] != fin[pos])
			CHECK(false);
		free(out);
		free(m);
	}
	free(fin);
	scram_server_free(&ss);

	for (int i = 0; i < 200; i++) {
		char m[sizeof(RFC_SERVER_FIRST)];
		memcpy(m, RFC_SERVER_FIRST, sizeof(m));
		m[mut_next(&seed) % (sizeof(m) - 1)] = (char)(mut_next(&seed) & 0xff);
		struct scram_client sc;
		CHECK(scram_client_init(&sc, "pencil"));
		free(scram_client_first_with_nonce(&sc, "user", "rOprNGfwEbeRWgbNEkqO", &len));
		/* a one-byte change keeps i= at most 4 digits, so PBKDF2 stays cheap */
		free(scram_client_final(&sc, m, sizeof(m) - 1, &len, &err));
		scram_client_free(&sc);
	}
}

int main(void)
{
	RUN(test_digests);
	RUN(test_random);
	RUN(test_base64_vectors);
	RUN(test_base64_roundtrip);
	RUN(test_base64_invalid);
	RUN(test_md5_secret);
	RUN(test_md5_response);
	RUN(test_verifier_parse);
	RUN(test_verifier_make);
	RUN(test_scram_rfc7677_client);
	RUN(test_scram_client_first);
	RUN(test_scram_roundtrip);
	RUN(test_scram_passthrough);
	RUN(test_scram_server_first_bad);
	RUN(test_scram_server_final_bad);
	RUN(test_scram_y_flag_binding);
	RUN(test_scram_client_final_bad);
	RUN(test_scram_verify_bad);
	RUN(test_scram_mutations);
	return UNIT_DONE();
}
