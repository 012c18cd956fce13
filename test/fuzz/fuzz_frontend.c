/* fuzz_frontend: the byte stream a client sends, through the real client
 * code (login.c, client.c, prepared.c, pin.c, the admin console) of an
 * in-process tidepool whose servers are a polite fake PostgreSQL (world.c).
 * The input is what the client sends from its first byte: a startup
 * packet, SSLRequest, GSSENCRequest or CancelRequest, then messages of any
 * type with any declared length. The first input byte sets how the stream
 * is cut into writes (1 to 256 bytes at a time, the loop turning between
 * them), so every message boundary is also seen split. */
#include "fuzz.h"
#include "world.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc; (void)argv;
	world_init(WORLD_BACKEND_POLITE);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size, 0 };
	size_t chunk = (size_t)fuzz_byte(&in) + 1;
	if (chunk > 200)
		chunk = size;   /* mostly: all at once */
	int fd = world_client();
	while (fuzz_left(&in) > 0) {
		size_t n = fuzz_left(&in) < chunk ? fuzz_left(&in) : chunk;
		world_write(fd, in.p + in.pos, n);
		in.pos += n;
		world_pump();
	}
	world_pump();
	world_end_run(fd);
	return 0;
}
