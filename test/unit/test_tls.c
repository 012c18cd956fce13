/* Unit tests of tls's configuration side: sslmode names, building the
 * accept and connect contexts from settings, and that a build that fails
 * says why and keeps the previous mode. Handshakes and I/O are covered by
 * test/integration/test_tls.py with real clients and a real PostgreSQL. */
#include "unit.h"

#include <stdbool.h>

#include "tls.h"

static void test_sslmode_names(void)
{
	CHECK_INT(tls_sslmode_parse("disable"), TLS_DISABLE);
	CHECK_INT(tls_sslmode_parse("allow"), TLS_ALLOW);
	CHECK_INT(tls_sslmode_parse("prefer"), TLS_PREFER);
	CHECK_INT(tls_sslmode_parse("require"), TLS_REQUIRE);
	CHECK_INT(tls_sslmode_parse("Verify-CA"), TLS_VERIFY_CA);
	CHECK_INT(tls_sslmode_parse("verify-full"), TLS_VERIFY_FULL);
	CHECK_INT(tls_sslmode_parse("bogus"), TLS_DISABLE);
	CHECK_INT(tls_sslmode_parse(NULL), TLS_DISABLE);
	CHECK_STR(tls_sslmode_name(TLS_VERIFY_FULL), "verify-full");
	CHECK(TLS_REQUIRE > TLS_PREFER && TLS_VERIFY_CA > TLS_REQUIRE);
}

static struct tls_settings connect_settings(const char *mode, const char *protocols)
{
	return (struct tls_settings){ .sslmode = mode, .key_file = "", .cert_file = "", .ca_file = "",
				      .protocols = protocols, .ciphers = "default", .tls13_ciphers = "" };
}

static void test_connect_side(void)
{
	char err[400];
	struct tls_settings s = connect_settings("prefer", "secure");
	CHECK(tls_configure_connect(&s, err, sizeof(err)));
	CHECK_INT(tls_connect_mode(), TLS_PREFER);
	const char *good[] = { "all", "legacy", "tlsv1.2", "tlsv1.3", "TLSv1.2,TLSv1.3", "all,!tlsv1.0", "tlsv1.2 tlsv1.3" };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		s = connect_settings("require", good[i]);
		CHECK(tls_configure_connect(&s, err, sizeof(err)));
		CHECK_INT(tls_connect_mode(), TLS_REQUIRE);
	}
	/* failures keep the previous mode and say why */
	s = connect_settings("verify-full", "tlsv9");
	CHECK(!tls_configure_connect(&s, err, sizeof(err)));
	CHECK(strstr(err, "tlsv9") != NULL);
	CHECK_INT(tls_connect_mode(), TLS_REQUIRE);
	s = connect_settings("verify-full", "tlsv1.3,-tlsv1.3");
	CHECK(!tls_configure_connect(&s, err, sizeof(err)));
	CHECK(strstr(err, "no TLS protocol") != NULL);
	s = connect_settings("require", "secure");
	s.ciphers = "NOT-A-CIPHER";
	CHECK(!tls_configure_connect(&s, err, sizeof(err)));
	CHECK(strstr(err, "NOT-A-CIPHER") != NULL);
	s.ciphers = "default";
	s.tls13_ciphers = "TLS_NOPE";
	CHECK(!tls_configure_connect(&s, err, sizeof(err)));
	CHECK(strstr(err, "TLS_NOPE") != NULL);
	s = connect_settings("verify-ca", "secure");
	s.ca_file = "/nonexistent/ca.crt";
	CHECK(!tls_configure_connect(&s, err, sizeof(err)));
	CHECK(strstr(err, "server_tls_ca_file /nonexistent/ca.crt") != NULL);
	s = connect_settings("require", "secure");
	s.key_file = "/nonexistent/key";
	CHECK(!tls_configure_connect(&s, err, sizeof(err)));
	CHECK(strstr(err, "server_tls_cert_file") != NULL);
	CHECK_INT(tls_connect_mode(), TLS_REQUIRE);
	s = connect_settings("disable", "tlsv9");   /* nothing is built for disable */
	CHECK(tls_configure_connect(&s, err, sizeof(err)));
	CHECK_INT(tls_connect_mode(), TLS_DISABLE);
}

static void test_accept_side(void)
{
	char err[400];
	struct tls_settings s = { .sslmode = "disable" };
	CHECK(tls_configure_accept(&s, err, sizeof(err)));
	CHECK(!tls_accept_available());
	s = (struct tls_settings){ .sslmode = "require", .key_file = "", .cert_file = "", .ca_file = "",
				   .protocols = "secure", .ciphers = "default", .tls13_ciphers = "",
				   .ecdhcurve = "auto", .dheparams = "auto" };
	CHECK(!tls_configure_accept(&s, err, sizeof(err)));
	CHECK(strstr(err, "client_tls_key_file") != NULL);
	CHECK_INT(tls_accept_mode(), TLS_DISABLE);
	CHECK(!tls_accept_available());
	s.key_file = "/nonexistent/server.key";
	s.cert_file = "/nonexistent/server.crt";
	CHECK(!tls_configure_accept(&s, err, sizeof(err)));
	CHECK(strstr(err, "client_tls_cert_file /nonexistent/server.crt") != NULL);
	s.dheparams = "huge";
	CHECK(!tls_configure_accept(&s, err, sizeof(err)));
	CHECK(strstr(err, "client_tls_dheparams") != NULL);
	s.dheparams = "none";
	s.ecdhcurve = "no-such-curve";
	CHECK(!tls_configure_accept(&s, err, sizeof(err)));
	CHECK(strstr(err, "client_tls_ecdhcurve") != NULL);
	CHECK_INT(tls_accept_mode(), TLS_DISABLE);
	tls_free_contexts();
	CHECK_INT(tls_connect_mode(), TLS_DISABLE);
}

int main(void)
{
	RUN(test_sslmode_names);
	RUN(test_connect_side);
	RUN(test_accept_side);
	return UNIT_DONE();
}
