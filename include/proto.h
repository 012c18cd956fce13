/* proto: the pure PostgreSQL v3 wire codec.
 *
 * Readers turn bytes into views that point into the caller's buffer; writers
 * append messages to a caller-provided fixed buffer. Nothing here reads a
 * socket, allocates, or logs. Every length is checked against what is
 * present before it is used. */
#ifndef TIDEPOOL_PROTO_H
#define TIDEPOOL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_HEADER_LEN 5               /* type byte + int32 length */
#define PROTO_VERSION_3_0 196608         /* 3 << 16 */
#define PROTO_SSL_REQUEST 80877103
#define PROTO_GSSENC_REQUEST 80877104
#define PROTO_CANCEL_REQUEST 80877102
#define PROTO_MAX_STARTUP_LEN 10000      /* as PostgreSQL's MAX_STARTUP_PACKET_LENGTH */
#define PROTO_MAX_SMALL_LEN 10000        /* control messages */
#define PROTO_MAX_PASSWORD_LEN 65600     /* PasswordMessage: passwords up to 65535 bytes */
#define PROTO_MAX_LARGE_LEN 0x3fffffff   /* 1 GB - 1: Query, Parse, Bind, FunctionCall, CopyData */
#define PROTO_MAX_NAME_LEN 0x100000      /* Describe, Close, Execute: long statement names (PgBouncer takes them) */
#define PROTO_MAX_STARTUP_PARAMS 64

enum proto_result {
	PROTO_NEED_MORE,
	PROTO_OK,
	PROTO_ERROR,
};

/* Message type bytes used by the pooler. */
enum {
	/* frontend */
	PQ_MSG_QUERY = 'Q', PQ_MSG_PARSE = 'P', PQ_MSG_BIND = 'B', PQ_MSG_DESCRIBE = 'D',
	PQ_MSG_EXECUTE = 'E', PQ_MSG_CLOSE = 'C', PQ_MSG_SYNC = 'S', PQ_MSG_FLUSH = 'H',
	PQ_MSG_FUNCTION_CALL = 'F', PQ_MSG_TERMINATE = 'X', PQ_MSG_PASSWORD = 'p',
	PQ_MSG_COPY_DATA = 'd', PQ_MSG_COPY_DONE = 'c', PQ_MSG_COPY_FAIL = 'f',
	/* backend */
	PQ_MSG_AUTH = 'R', PQ_MSG_PARAMETER_STATUS = 'S', PQ_MSG_BACKEND_KEY = 'K',
	PQ_MSG_READY = 'Z', PQ_MSG_ERROR = 'E', PQ_MSG_NOTICE = 'N', PQ_MSG_NOTIFICATION = 'A',
	PQ_MSG_COPY_IN = 'G', PQ_MSG_COPY_OUT = 'H', PQ_MSG_COPY_BOTH = 'W',
	PQ_MSG_COMMAND_COMPLETE = 'C', PQ_MSG_EMPTY_QUERY = 'I', PQ_MSG_PORTAL_SUSPENDED = 's', PQ_MSG_ROW_DESCRIPTION = 'T',
	PQ_MSG_DATA_ROW = 'D', PQ_MSG_NEGOTIATE_VERSION = 'v', PQ_MSG_PARSE_COMPLETE = '1',
	PQ_MSG_CLOSE_COMPLETE = '3',
};

/* Authentication request codes. */
enum {
	PQ_AUTH_OK = 0, PQ_AUTH_CLEARTEXT = 3, PQ_AUTH_MD5 = 5,
	PQ_AUTH_SASL = 10, PQ_AUTH_SASL_CONTINUE = 11, PQ_AUTH_SASL_FINAL = 12,
};

/* A typed message header: type, and total length including the type byte. */
struct proto_header {
	uint8_t type;
	uint32_t len;   /* declared length field (includes itself, not the type byte) */
};

/* Reads a header from p[0..n). NEED_MORE if n < 5; ERROR if the declared
 * length is below 4. Inline: it runs for every message on the hot path. */
static inline enum proto_result proto_read_header(const uint8_t *p, size_t n, struct proto_header *h)
{
	if (n < PROTO_HEADER_LEN)
		return PROTO_NEED_MORE;
	h->type = p[0];
	h->len = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
	if (h->len < 4)
		return PROTO_ERROR;
	return PROTO_OK;
}

/* Largest length field PostgreSQL accepts for a frontend message type. */
static inline uint32_t proto_frontend_max_len(uint8_t type)
{
	switch (type) {
	case PQ_MSG_QUERY:
	case PQ_MSG_PARSE:
	case PQ_MSG_BIND:
	case PQ_MSG_FUNCTION_CALL:
	case PQ_MSG_COPY_DATA:
	case PQ_MSG_COPY_FAIL:
	case PQ_MSG_PASSWORD:   /* also SASL messages; PostgreSQL allows large ones */
		return PROTO_MAX_LARGE_LEN;
	case PQ_MSG_DESCRIBE:
	case PQ_MSG_CLOSE:
	case PQ_MSG_EXECUTE:
		return PROTO_MAX_NAME_LEN;
	default:
		return PROTO_MAX_SMALL_LEN;
	}
}

/* A parsed startup-phase packet (no type byte). Strings point into the buffer. */
struct proto_startup {
	uint32_t code;              /* protocol version or request code */
	uint32_t cancel_pid, cancel_key;
	size_t n_params;
	const char *names[PROTO_MAX_STARTUP_PARAMS];
	const char *values[PROTO_MAX_STARTUP_PARAMS];
};
/* Parses a complete startup packet p[0..n) whose int32 length equals n.
 * On ERROR, *why is a static message. */
enum proto_result proto_parse_startup(const uint8_t *p, size_t n, struct proto_startup *out,
				      const char **why);
/* Value of a startup parameter, or NULL. */
const char *proto_startup_get(const struct proto_startup *s, const char *name);

/* A bounded reader over a message body. Any overrun sets err and returns 0/NULL. */
struct proto_reader {
	const uint8_t *p;
	size_t len, pos;
	bool err;
};
void proto_reader_init(struct proto_reader *r, const uint8_t *body, size_t len);
uint8_t proto_get_byte(struct proto_reader *r);
uint16_t proto_get_int16(struct proto_reader *r);
uint32_t proto_get_int32(struct proto_reader *r);
/* A NUL-terminated string inside the body; NULL if none. */
const char *proto_get_string(struct proto_reader *r);
const uint8_t *proto_get_bytes(struct proto_reader *r, size_t n);
size_t proto_remaining(const struct proto_reader *r);

/* Field `code` ('C' SQLSTATE, 'M' message, 'S' severity ...) of an
 * ErrorResponse/NoticeResponse body, or NULL. */
const char *proto_error_field(const uint8_t *body, size_t len, char code);

/* A writer into a fixed buffer. Writing past cap sets overflow; callers check
 * it once at the end. */
struct proto_writer {
	uint8_t *buf;
	size_t cap, len;
	size_t msg_start;
	bool overflow;
};
void proto_writer_init(struct proto_writer *w, uint8_t *buf, size_t cap);
/* Starts a message; type 0 starts an untyped (startup-phase) packet. */
void proto_begin(struct proto_writer *w, uint8_t type);
void proto_put_byte(struct proto_writer *w, uint8_t v);
void proto_put_int16(struct proto_writer *w, uint16_t v);
void proto_put_int32(struct proto_writer *w, uint32_t v);
void proto_put_bytes(struct proto_writer *w, const void *p, size_t n);
void proto_put_string(struct proto_writer *w, const char *s);
/* Patches the length field of the message begun last. */
void proto_end(struct proto_writer *w);

/* Whole messages. */
/* The same with a HINT field. */
void proto_write_error_hint(struct proto_writer *w, const char *severity, const char *sqlstate,
			    const char *message, const char *hint);
void proto_write_error(struct proto_writer *w, const char *severity, const char *sqlstate,
		       const char *message);
void proto_write_notice(struct proto_writer *w, const char *sqlstate, const char *message);
void proto_write_auth(struct proto_writer *w, uint32_t code, const void *data, size_t n);
void proto_write_parameter_status(struct proto_writer *w, const char *name, const char *value);
void proto_write_backend_key(struct proto_writer *w, uint32_t pid, uint32_t key);
void proto_write_ready(struct proto_writer *w, char status);
void proto_write_query(struct proto_writer *w, const char *sql);
void proto_write_password(struct proto_writer *w, const void *data, size_t n);
void proto_write_sasl_initial(struct proto_writer *w, const char *mech, const void *data, size_t n);
void proto_write_terminate(struct proto_writer *w);
void proto_write_cancel_request(struct proto_writer *w, uint32_t pid, uint32_t key);
void proto_write_negotiate_version(struct proto_writer *w, uint32_t newest_minor,
				   const char *const *unknown_opts, size_t n_unknown);
/* Extended query protocol, as the pooler's own lookups use it: Parse of an
 * unnamed statement with parameter types left to the server, Bind of the
 * unnamed portal with text parameters (NULL values are SQL NULL) and text
 * results, Execute of all rows, Sync. */
void proto_write_parse(struct proto_writer *w, const char *sql, uint16_t n_params);
void proto_write_bind_text(struct proto_writer *w, const char *const *values, uint16_t n);
void proto_write_execute(struct proto_writer *w);
void proto_write_sync(struct proto_writer *w);
/* Startup packet with protocol 3.0 and NULL-terminated name/value arrays. */
void proto_write_startup(struct proto_writer *w, const char *const *names, const char *const *values,
			 size_t n);

/* Column idx of a DataRow body: OK with *val and *val_len set (*val NULL for SQL
 * NULL), ERROR if the row is malformed or has no such column. */
enum proto_result proto_data_row_column(const uint8_t *body, size_t len, uint16_t idx,
					const uint8_t **val, uint32_t *val_len);

/* Appends value as a SQL string literal ('...' with quotes doubled, E'...'
 * with backslashes doubled when it contains any) into out. False if it does
 * not fit. */
bool proto_quote_literal(const char *value, char *out, size_t cap);

/* Result sets (the admin console): column descriptions, rows of text values
 * and the command tag. Sizes let a caller reserve exact room first. */
#define PROTO_OID_BYTEA 17
#define PROTO_OID_INT8 20
#define PROTO_OID_INT4 23
#define PROTO_OID_TEXT 25
#define PROTO_OID_TIMESTAMPTZ 1184
#define PROTO_OID_NUMERIC 1700

struct proto_column {
	const char *name;
	uint32_t type_oid;
	int16_t typlen;     /* -1 for variable-length types, as PostgreSQL sends */
};
size_t proto_row_description_size(const struct proto_column *cols, size_t n);
void proto_write_row_description(struct proto_writer *w, const struct proto_column *cols, size_t n);
/* A DataRow of text values; a NULL value is SQL NULL (length -1). */
size_t proto_data_row_size(const char *const *values, size_t n);
void proto_write_data_row(struct proto_writer *w, const char *const *values, size_t n);
void proto_write_command_complete(struct proto_writer *w, const char *tag);
void proto_write_empty_query(struct proto_writer *w);

#endif
