/* fuzz_proto: the pure codec readers of proto.c on one packet: the
 * startup-phase parser (startup, SSLRequest, GSSENCRequest, CancelRequest),
 * the header reader, ErrorResponse/NoticeResponse fields and DataRow
 * columns. The first byte picks which; the packet is exactly the rest. */
#include <assert.h>

#include "fuzz.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size, 0 };
	uint8_t mode = fuzz_byte(&in);
	size_t n;
	uint8_t *p = fuzz_rest(&in, &n);
	switch (mode & 3) {
	case 0: {
		struct proto_startup st;
		const char *why = NULL;
		if (proto_parse_startup(p, n, &st, &why) == PROTO_OK) {
			assert(st.n_params <= PROTO_MAX_STARTUP_PARAMS);
			(void)proto_startup_get(&st, "user");
			(void)proto_startup_get(&st, "database");
		}
		break;
	}
	case 1: {
		struct proto_header h;
		if (proto_read_header(p, n, &h) == PROTO_OK)
			assert(h.len >= 4);
		(void)proto_frontend_max_len(n ? p[0] : 0);
		(void)proto_error_field(p, n, 'C');
		(void)proto_error_field(p, n, 'M');
		break;
	}
	case 2: {
		const uint8_t *val;
		uint32_t len;
		for (uint16_t i = 0; i < 4; i++)
			if (proto_data_row_column(p, n, i, &val, &len) == PROTO_OK && val)
				assert(val >= p && val + len <= p + n);
		break;
	}
	case 3: {
		struct proto_reader r;
		proto_reader_init(&r, p, n);
		while (!r.err && proto_remaining(&r) > 0) {
			(void)proto_get_string(&r);
			(void)proto_get_int16(&r);
			(void)proto_get_bytes(&r, proto_get_int32(&r) & 0xff);
		}
		char out[64];
		char *s = malloc(n + 1);
		memcpy(s, p, n);
		s[n] = '\0';
		(void)proto_quote_literal(s, out, sizeof(out));
		free(s);
		break;
	}
	}
	free(p);
	return 0;
}
