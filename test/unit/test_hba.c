/* Unit tests of hba: the pg_hba.conf parser (every supported form, every
 * refused one with its message and line) and the first-match matcher. */
#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hba.h"
#include "util.h"

static char tmpdir[] = "/tmp/tidepool-test-hba-XXXXXX";
static char *created[32];
static int n_created;

/* Collected problems of the last load. */
static char errors[4096];
static int n_errors;
static int last_error_line;

static void collect(void *arg, const char *file, int line, const char *msg)
{
	size_t len = strlen(errors);
	(void)arg;
	snprintf(errors + len, sizeof(errors) - len, "%s:%d: %s\n", file, line, msg);
	n_errors++;
	last_error_line = line;
}

static struct hba *parse(const char *text)
{
	errors[0] = '\0';
	n_errors = 0;
	last_error_line = 0;
	return hba_parse(text, "/etc/tidepool/hba.conf", collect, NULL);
}

static const char *write_file(const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
	created[n_created++] = path;
	return path;
}

static struct sockaddr_storage ss;

static const struct sockaddr *ip(const char *s)
{
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, s, &in4->sin_addr) == 1)
		in4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, s, &in6->sin6_addr) == 1)
		in6->sin6_family = AF_INET6;
	else
		abort();
	return (const struct sockaddr *)&ss;
}

/* The line of the rule matching a TCP login from addr, or 0 for none;
 * *method gets its method. */
static int tcp_line(const struct hba *h, const char *addr, const char *db, const char *user,
		    enum hba_method *method)
{
	struct hba_request req = { .is_unix = false, .addr = ip(addr), .database = db, .user = user };
	struct hba_result r;
	if (!hba_match(h, &req, &r))
		return 0;
	if (method)
		*method = r.method;
	return r.line;
}

static int unix_line(const struct hba *h, const char *db, const char *user)
{
	struct hba_request req = { .is_unix = true, .database = db, .user = user };
	struct hba_result r;
	return hba_match(h, &req, &r) ? r.line : 0;
}

static void test_basic_rules(void)
{
	struct hba *h = parse(
		"# comment line\n"
		"\n"
		"local   all         all                        peer\n"
		"host    appdb       app      127.0.0.1/32      scram-sha-256   # trailing comment\n"
		"host    all         all      10.0.0.0/8        reject\n"
		"hostnossl sameuser  all      192.168.1.0 255.255.255.0 md5\n"
		"host    all         all      ::1/128           trust\n"
		"host    all         all      all               password\n");
	CHECK(h != NULL);
	CHECK_INT(n_errors, 0);
	CHECK_INT(hba_rule_count(h), 6);
	enum hba_method m = HBA_TRUST;
	CHECK_INT(unix_line(h, "appdb", "app"), 3);
	CHECK_INT(tcp_line(h, "127.0.0.1", "appdb", "app", &m), 4);
	CHECK_INT(m, HBA_SCRAM);
	CHECK_INT(tcp_line(h, "127.0.0.1", "otherdb", "app", &m), 8);
	CHECK_INT(m, HBA_PASSWORD);
	CHECK_INT(tcp_line(h, "10.20.30.40", "appdb", "app", &m), 5);
	CHECK_INT(m, HBA_REJECT);
	/* sameuser: database named like the user */
	CHECK_INT(tcp_line(h, "192.168.1.77", "bob", "bob", &m), 6);
	CHECK_INT(m, HBA_MD5);
	CHECK_INT(tcp_line(h, "192.168.1.77", "alice", "bob", NULL), 8);
	CHECK_INT(tcp_line(h, "192.168.2.1", "bob", "bob", NULL), 8);
	CHECK_INT(tcp_line(h, "::1", "x", "y", &m), 7);
	CHECK_INT(m, HBA_TRUST);
	/* an IPv4 rule does not match IPv6, even an IPv4-mapped address */
	CHECK_INT(tcp_line(h, "::ffff:10.1.2.3", "x", "y", NULL), 8);
	hba_free(h);
}

static void test_no_match(void)
{
	struct hba *h = parse("host all app 127.0.0.1/32 trust\nlocal appdb all trust\n");
	CHECK(h != NULL);
	CHECK_INT(tcp_line(h, "127.0.0.2", "appdb", "app", NULL), 0);
	CHECK_INT(tcp_line(h, "127.0.0.1", "appdb", "other", NULL), 0);
	CHECK_INT(unix_line(h, "otherdb", "app"), 0);
	/* no rules at all: everything is rejected */
	struct hba *empty = parse("# nothing\n\n");
	CHECK(empty != NULL);
	CHECK_INT(hba_rule_count(empty), 0);
	CHECK_INT(tcp_line(empty, "127.0.0.1", "appdb", "app", NULL), 0);
	hba_free(empty);
	hba_free(h);
}

static void test_lists_and_quotes(void)
{
	struct hba *h = parse(
		"host db1,\"my db\",db3 u1,\"all\",\"we\"\"ird\" 0.0.0.0/0 md5\n"
		"host \"sameuser\" all 0.0.0.0/0 trust\n"
		"host replication all 0.0.0.0/0 trust\n");
	CHECK(h != NULL);
	CHECK_STR(errors, "");
	CHECK_INT(tcp_line(h, "1.2.3.4", "my db", "u1", NULL), 1);
	CHECK_INT(tcp_line(h, "1.2.3.4", "db3", "u1", NULL), 1);
	/* a quoted keyword is just a name */
	CHECK_INT(tcp_line(h, "1.2.3.4", "db1", "all", NULL), 1);
	CHECK_INT(tcp_line(h, "1.2.3.4", "db1", "u2", NULL), 0);
	CHECK_INT(tcp_line(h, "1.2.3.4", "db1", "we\"ird", NULL), 1);
	CHECK_INT(tcp_line(h, "1.2.3.4", "sameuser", "x", NULL), 2);
	CHECK_INT(tcp_line(h, "1.2.3.4", "x", "x", NULL), 0);
	/* replication matches no normal login */
	CHECK_INT(tcp_line(h, "1.2.3.4", "replication", "x", NULL), 0);
	/* names are case sensitive */
	CHECK_INT(tcp_line(h, "1.2.3.4", "DB1", "u1", NULL), 0);
	hba_free(h);
}

static void test_continuation_and_line_numbers(void)
{
	struct hba *h = parse("host all \\\n  all 1.2.3.4/32 \\\n  trust\nhost all all 0.0.0.0/0 reject\n");
	CHECK(h != NULL);
	CHECK_INT(tcp_line(h, "1.2.3.4", "d", "u", NULL), 1);
	CHECK_INT(tcp_line(h, "1.2.3.5", "d", "u", NULL), 4);
	hba_free(h);
}

static void test_cidr_edges(void)
{
	struct hba *h = parse(
		"host all a 10.1.2.3/0 trust\n"
		"host all b 10.1.2.3/32 trust\n"
		"host all c 10.1.2.255/23 trust\n"
		"host all d fe80::/10 trust\n"
		"host all e 2001:db8::1 ffff:ffff:: trust\n");
	CHECK(h != NULL);
	CHECK_STR(errors, "");
	CHECK_INT(tcp_line(h, "200.1.1.1", "x", "a", NULL), 1);
	CHECK_INT(tcp_line(h, "10.1.2.3", "x", "b", NULL), 2);
	CHECK_INT(tcp_line(h, "10.1.2.4", "x", "b", NULL), 0);
	CHECK_INT(tcp_line(h, "10.1.3.9", "x", "c", NULL), 3);
	CHECK_INT(tcp_line(h, "10.1.4.9", "x", "c", NULL), 0);
	CHECK_INT(tcp_line(h, "febf::1", "x", "d", NULL), 4);
	CHECK_INT(tcp_line(h, "fec0::1", "x", "d", NULL), 0);
	CHECK_INT(tcp_line(h, "2001:db8:1::5", "x", "e", NULL), 5);
	CHECK_INT(tcp_line(h, "2001:db9::5", "x", "e", NULL), 0);
	hba_free(h);
}

static void expect_error(const char *text, int line, const char *words)
{
	struct hba *h = parse(text);
	CHECK(h == NULL);
	if (!strstr(errors, words) || last_error_line != line)
		fprintf(stderr, "  for %s  got: %s  wanted line %d: %s\n", text, errors, line, words);
	CHECK(strstr(errors, words) != NULL);
	CHECK_INT(last_error_line, line);
	hba_free(h);
}

static void test_errors(void)
{
	expect_error("host all +admins 0.0.0.0/0 md5\n", 1, "group membership \"+admins\" is not supported");
	expect_error("\nhost all all example.com md5\n", 2, "host names are not supported");
	expect_error("host all all 10.0.0.0/33 md5\n", 1, "invalid CIDR mask");
	expect_error("host all all 10.0.0.0 md5\n", 1, "needs a /prefix or a netmask");
	expect_error("host all all 10.0.0.0 ffff:: md5\n", 1, "needs a /prefix or a netmask");
	expect_error("host all all samehost md5\n", 1, "\"samehost\" is not supported");
	expect_error("host all all 0.0.0.0/0 ldap\n", 1, "method \"ldap\" is not supported");
	expect_error("host all all 0.0.0.0/0 secret\n", 1, "invalid authentication method \"secret\"");
	expect_error("host all all 0.0.0.0/0 md5 map=x\n", 1, "option \"map=x\" after \"md5\" is not supported");
	expect_error("local all all peer clientcert=1\n", 1, "option \"clientcert=1\" after \"peer\" is not supported");
	expect_error("host all all 0.0.0.0/0 peer\n", 1, "peer authentication is only supported on local sockets");
	expect_error("local all all cert\n", 1, "cert authentication is only supported");
	expect_error("hots all all 0.0.0.0/0 md5\n", 1, "invalid connection type \"hots\"");
	expect_error("host all all\n", 1, "incomplete line");
	expect_error("local all all\n", 1, "incomplete line");
	expect_error("host \"unterminated all 0.0.0.0/0 md5\n", 1, "unterminated quoted string");
	expect_error("host a,,b all 0.0.0.0/0 md5\n", 1, "empty element");
	expect_error("host samerole all 0.0.0.0/0 md5\n", 1, "\"samerole\" is not supported");
	expect_error("host all /^x 0.0.0.0/0 md5\n", 1, "regular expression");
	/* every bad line is reported, not only the first */
	struct hba *h = parse("host all +g 0.0.0.0/0 md5\nhost all all 0.0.0.0/0 md5\nlocal all all ident\n");
	CHECK(h == NULL);
	CHECK_INT(n_errors, 2);
	CHECK(strstr(errors, "/etc/tidepool/hba.conf:1: ") != NULL);
	CHECK(strstr(errors, "/etc/tidepool/hba.conf:3: ") != NULL);
}

static void test_include_files(void)
{
	write_file("dbs.txt", "# databases\nappdb, reports\n\"odd name\"\n@more.txt\n");
	write_file("more.txt", "extra\n");
	write_file("users.txt", "alice bob\n");
	char *text = xasprintf("host @dbs.txt @users.txt 0.0.0.0/0 md5\n"
			       "host all @%s/users.txt 127.0.0.1/32 trust\n", tmpdir);
	const char *path = write_file("hba.conf", text);
	free(text);
	errors[0] = '\0';
	n_errors = 0;
	struct hba *h = hba_load(path, collect, NULL);
	CHECK(h != NULL);
	CHECK_STR(errors, "");
	CHECK_INT(tcp_line(h, "1.1.1.1", "reports", "bob", NULL), 1);
	CHECK_INT(tcp_line(h, "1.1.1.1", "odd name", "alice", NULL), 1);
	CHECK_INT(tcp_line(h, "1.1.1.1", "extra", "alice", NULL), 1);
	CHECK_INT(tcp_line(h, "1.1.1.1", "other", "alice", NULL), 0);
	CHECK_INT(tcp_line(h, "127.0.0.1", "other", "alice", NULL), 2);
	CHECK_INT(tcp_line(h, "1.1.1.1", "appdb", "carol", NULL), 0);
	hba_free(h);

	/* a missing @file and an unreadable hba file are errors */
	path = write_file("hba-missing.conf", "local @nope.txt all trust\n");
	errors[0] = '\0';
	h = hba_load(path, collect, NULL);
	CHECK(h == NULL);
	CHECK(strstr(errors, "cannot read @nope.txt") != NULL);
	errors[0] = '\0';
	h = hba_load("/nonexistent/hba.conf", collect, NULL);
	CHECK(h == NULL);
	CHECK(strstr(errors, "cannot read auth_hba_file") != NULL);

	/* an @file naming itself stops at the nesting limit */
	write_file("loop.txt", "@loop.txt\n");
	path = write_file("hba-loop.conf", "local @loop.txt all trust\n");
	errors[0] = '\0';
	h = hba_load(path, collect, NULL);
	CHECK(h == NULL);
	CHECK(strstr(errors, "too many nested") != NULL);
}

static void test_tls_types(void)
{
	struct hba *h = parse(
		"hostssl all all 0.0.0.0/0 cert\n"
		"hostgssenc all all 0.0.0.0/0 trust\n"
		"hostnossl all a 0.0.0.0/0 md5\n"
		"hostnogssenc all b 0.0.0.0/0 password\n"
		"host all c 0.0.0.0/0 cert\n");
	CHECK(h != NULL);
	CHECK_STR(errors, "");
	enum hba_method m;
	CHECK_INT(tcp_line(h, "1.2.3.4", "d", "a", &m), 3);
	CHECK_INT(m, HBA_MD5);
	CHECK_INT(tcp_line(h, "1.2.3.4", "d", "b", &m), 4);
	CHECK_INT(tcp_line(h, "1.2.3.4", "d", "c", &m), 5);
	CHECK_INT(m, HBA_CERT);
	CHECK_INT(tcp_line(h, "1.2.3.4", "d", "z", NULL), 0);
	struct hba_request req = { .is_unix = false, .addr = ip("1.2.3.4"), .tls = true,
				   .database = "d", .user = "a" };
	struct hba_result r;
	CHECK(hba_match(h, &req, &r));
	CHECK_INT(r.line, 1);
	CHECK_INT(r.method, HBA_CERT);
	CHECK_STR(hba_method_name(HBA_SCRAM), "scram-sha-256");
	hba_free(h);
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 2;
	}
	RUN(test_basic_rules);
	RUN(test_no_match);
	RUN(test_lists_and_quotes);
	RUN(test_continuation_and_line_numbers);
	RUN(test_cidr_edges);
	RUN(test_errors);
	RUN(test_include_files);
	RUN(test_tls_types);
	for (int i = n_created - 1; i >= 0; i--) {
		unlink(created[i]);
		free(created[i]);
	}
	rmdir(tmpdir);
	return UNIT_DONE();
}
