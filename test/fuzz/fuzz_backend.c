/* fuzz_backend: the byte stream a PostgreSQL server sends, through the
 * real server code (server_login.c with cleartext, md5 and SCRAM password
 * requests, server.c, prepared.c's reply tracking, params.c) of an
 * in-process tidepool (world.c). A fixed client logs in and sends a simple
 * query, a named extended-protocol batch and a transaction; the fake
 * server answers its startup packet with the input, whole.
 *
 * The first input byte picks the database: even "db" (no server password),
 * odd "pwdb" (user bob, password pencil, so authentication requests are
 * answered); bit 1 picks session pooling. */
#include "fuzz.h"
#include "proto.h"
#include "world.h"

static size_t client_len[4];
static uint8_t scripts[4][2048];

static size_t build_client(uint8_t *buf, size_t cap, const char *db, const char *user)
{
	struct proto_writer w;
	proto_writer_init(&w, buf, cap);
	const char *names[] = { "user", "database", "application_name" };
	const char *values[] = { user, db, "fuzz" };
	proto_write_startup(&w, names, values, 3);
	proto_write_query(&w, "select 1");
	/* named statement: Parse, Bind, Describe, Execute, Sync */
	proto_begin(&w, 'P');
	proto_put_string(&w, "s1");
	proto_put_string(&w, "select $1::int");
	proto_put_int16(&w, 0);
	proto_end(&w);
	proto_begin(&w, 'B');
	proto_put_string(&w, "");
	proto_put_string(&w, "s1");
	proto_put_int16(&w, 0);
	proto_put_int16(&w, 1);
	proto_put_int32(&w, 1);
	proto_put_bytes(&w, "7", 1);
	proto_put_int16(&w, 0);
	proto_end(&w);
	proto_begin(&w, 'D');
	proto_put_byte(&w, 'P');
	proto_put_string(&w, "");
	proto_end(&w);
	proto_write_execute(&w);
	proto_write_sync(&w);
	proto_write_query(&w, "begin");
	proto_write_query(&w, "insert into t values (1)");
	proto_write_query(&w, "commit");
	return w.overflow ? 0 : w.len;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc; (void)argv;
	const char *dbs[4] = { "db", "pwdb", "sess", "sess" };
	const char *users[4] = { "alice", "bob", "alice", "alice" };
	for (int i = 0; i < 4; i++)
		client_len[i] = build_client(scripts[i], sizeof(scripts[i]), dbs[i], users[i]);
	world_init(WORLD_BACKEND_SCRIPT);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size, 0 };
	int which = fuzz_byte(&in) & 3;
	size_t n;
	uint8_t *rest = fuzz_rest(&in, &n);
	world_set_script(rest, n);
	int fd = world_client();
	world_write(fd, scripts[which], client_len[which]);
	world_pump();
	world_end_run(fd);
	world_set_script(NULL, 0);
	free(rest);
	return 0;
}
