/* proto: the pure PostgreSQL v3 wire codec (see proto.h).
 * Invariant: no function reads past the length it is given, and no length
 * read from the wire is used before it has been checked. */
#include "proto.h"

#include <string.h>

#include "util.h"

/* A string of the packet's name/value list: must end with a NUL inside. */
static const char *startup_string(const uint8_t *p, size_t n, size_t *pos)
{
	const uint8_t *nul = memchr(p + *pos, '\0', n - *pos);
	if (!nul)
		return NULL;
	const char *s = (const char *)(p + *pos);
	*pos = (size_t)(nul - p) + 1;
	return s;
}

static enum proto_result parse_params(const uint8_t *p, size_t n, struct proto_startup *out,
				      const char **why)
{
	size_t pos = 8;
	for (;;) {
		if (pos >= n) {
			*why = "startup packet is missing its terminator";
			return PROTO_ERROR;
		}
		if (p[pos] == '\0' && pos == n - 1)
			return PROTO_OK;
		const char *name = startup_string(p, n, &pos);
		const char *value = name && pos < n ? startup_string(p, n, &pos) : NULL;
		if (!name || !value || !*name) {
			*why = "invalid startup packet layout: expected terminator as last byte";
			return PROTO_ERROR;
		}
		if (out->n_params == PROTO_MAX_STARTUP_PARAMS) {
			*why = "too many parameters in startup packet";
			return PROTO_ERROR;
		}
		out->names[out->n_params] = name;
		out->values[out->n_params] = value;
		out->n_params++;
	}
}

enum proto_result proto_parse_startup(const uint8_t *p, size_t n, struct proto_startup *out,
				      const char **why)
{
	memset(out, 0, sizeof(*out));
	if (n < 8 || get_be32(p) != n) {
		*why = "invalid length of startup packet";
		return PROTO_ERROR;
	}
	out->code = get_be32(p + 4);
	switch (out->code) {
	case PROTO_SSL_REQUEST:
	case PROTO_GSSENC_REQUEST:
		if (n != 8) {
			*why = "invalid length of encryption request packet";
			return PROTO_ERROR;
		}
		return PROTO_OK;
	case PROTO_CANCEL_REQUEST:
		if (n != 16) {
			*why = "invalid length of cancel request packet";
			return PROTO_ERROR;
		}
		out->cancel_pid = get_be32(p + 8);
		out->cancel_key = get_be32(p + 12);
		return PROTO_OK;
	default:
		break;
	}
	if (out->code >> 16 != 3) {
		*why = "unsupported frontend protocol: tidepool speaks protocol 3";
		return PROTO_ERROR;
	}
	return parse_params(p, n, out, why);
}

const char *proto_startup_get(const struct proto_startup *s, const char *name)
{
	for (size_t i = 0; i < s->n_params; i++)
		if (strcmp(s->names[i], name) == 0)
			return s->values[i];
	return NULL;
}

void proto_reader_init(struct proto_reader *r, const uint8_t *body, size_t len)
{
	r->p = body;
	r->len = len;
	r->pos = 0;
	r->err = false;
}

static bool reader_has(struct proto_reader *r, size_t n)
{
	if (r->err || r->len - r->pos < n) {
		r->err = true;
		return false;
	}
	return true;
}

uint8_t proto_get_byte(struct proto_reader *r)
{
	return reader_has(r, 1) ? r->p[r->pos++] : 0;
}

uint16_t proto_get_int16(struct proto_reader *r)
{
	if (!reader_has(r, 2))
		return 0;
	uint16_t v = get_be16(r->p + r->pos);
	r->pos += 2;
	return v;
}

uint32_t proto_get_int32(struct proto_reader *r)
{
	if (!reader_has(r, 4))
		return 0;
	uint32_t v = get_be32(r->p + r->pos);
	r->pos += 4;
	return v;
}

const char *proto_get_string(struct proto_reader *r)
{
	if (r->err)
		return NULL;
	const uint8_t *nul = memchr(r->p + r->pos, '\0', r->len - r->pos);
	if (!nul) {
		r->err = true;
		return NULL;
	}
	const char *s = (const char *)(r->p + r->pos);
	r->pos = (size_t)(nul - r->p) + 1;
	return s;
}

const uint8_t *proto_get_bytes(struct proto_reader *r, size_t n)
{
	if (!reader_has(r, n))
		return NULL;
	const uint8_t *b = r->p + r->pos;
	r->pos += n;
	return b;
}

size_t proto_remaining(const struct proto_reader *r)
{
	return r->err ? 0 : r->len - r->pos;
}

const char *proto_error_field(const uint8_t *body, size_t len, char code)
{
	struct proto_reader r;
	proto_reader_init(&r, body, len);
	for (;;) {
		uint8_t c = proto_get_byte(&r);
		if (r.err || c == 0)
			return NULL;
		const char *v = proto_get_string(&r);
		if (!v)
			return NULL;
		if (c == (uint8_t)code)
			return v;
	}
}

void proto_writer_init(struct proto_writer *w, uint8_t *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->msg_start = 0;
	w->overflow = false;
}

void proto_put_bytes(struct proto_writer *w, const void *p, size_t n)
{
	if (w->overflow || w->cap - w->len < n) {
		w->overflow = true;
		return;
	}
	if (n)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

void proto_put_byte(struct proto_writer *w, uint8_t v)
{
	proto_put_bytes(w, &v, 1);
}

void proto_put_int16(struct proto_writer *w, uint16_t v)
{
	uint8_t b[2];
	put_be16(b, v);
	proto_put_bytes(w, b, 2);
}

void proto_put_int32(struct proto_writer *w, uint32_t v)
{
	uint8_t b[4];
	put_be32(b, v);
	proto_put_bytes(w, b, 4);
}

void proto_put_string(struct proto_writer *w, const char *s)
{
	proto_put_bytes(w, s, strlen(s) + 1);
}

void proto_begin(struct proto_writer *w, uint8_t type)
{
	if (type)
		proto_put_byte(w, type);
	w->msg_start = w->len;
	proto_put_int32(w, 0);
}

void proto_end(struct proto_writer *w)
{
	if (w->overflow)
		return;
	put_be32(w->buf + w->msg_start, (uint32_t)(w->len - w->msg_start));
}

static void write_fields_hint(struct proto_writer *w, uint8_t type, const char *severity,
			      const char *sqlstate, const char *message, const char *hint)
{
	proto_begin(w, type);
	proto_put_byte(w, 'S');
	proto_put_string(w, severity);
	proto_put_byte(w, 'V');
	proto_put_string(w, severity);
	proto_put_byte(w, 'C');
	proto_put_string(w, sqlstate);
	proto_put_byte(w, 'M');
	proto_put_string(w, message);
	if (hint) {
		proto_put_byte(w, 'H');
		proto_put_string(w, hint);
	}
	proto_put_byte(w, 0);
	proto_end(w);
}

void proto_write_error_hint(struct proto_writer *w, const char *severity, const char *sqlstate,
			    const char *message, const char *hint)
{
	write_fields_hint(w, PQ_MSG_ERROR, severity, sqlstate, message, hint);
}

static void write_fields(struct proto_writer *w, uint8_t type, const char *severity,
			 const char *sqlstate, const char *message)
{
	proto_begin(w, type);
	proto_put_byte(w, 'S');
	proto_put_string(w, severity);
	proto_put_byte(w, 'V');
	proto_put_string(w, severity);
	proto_put_byte(w, 'C');
	proto_put_string(w, sqlstate);
	proto_put_byte(w, 'M');
	proto_put_string(w, message);
	proto_put_byte(w, 0);
	proto_end(w);
}

void proto_write_error(struct proto_writer *w, const char *severity, const char *sqlstate,
		       const char *message)
{
	write_fields(w, PQ_MSG_ERROR, severity, sqlstate, message);
}

void proto_write_notice(struct proto_writer *w, const char *sqlstate, const char *message)
{
	write_fields(w, PQ_MSG_NOTICE, "NOTICE", sqlstate, message);
}

void proto_write_auth(struct proto_writer *w, uint32_t code, const void *data, size_t n)
{
	proto_begin(w, PQ_MSG_AUTH);
	proto_put_int32(w, code);
	proto_put_bytes(w, data, n);
	proto_end(w);
}

void proto_write_parameter_status(struct proto_writer *w, const char *name, const char *value)
{
	proto_begin(w, PQ_MSG_PARAMETER_STATUS);
	proto_put_string(w, name);
	proto_put_string(w, value);
	proto_end(w);
}

void proto_write_backend_key(struct proto_writer *w, uint32_t pid, uint32_t key)
{
	proto_begin(w, PQ_MSG_BACKEND_KEY);
	proto_put_int32(w, pid);
	proto_put_int32(w, key);
	proto_end(w);
}

void proto_write_ready(struct proto_writer *w, char status)
{
	proto_begin(w, PQ_MSG_READY);
	proto_put_byte(w, (uint8_t)status);
	proto_end(w);
}

void proto_write_query(struct proto_writer *w, const char *sql)
{
	proto_begin(w, PQ_MSG_QUERY);
	proto_put_string(w, sql);
	proto_end(w);
}

void proto_write_parse(struct proto_writer *w, const char *sql, uint16_t n_params)
{
	proto_begin(w, PQ_MSG_PARSE);
	proto_put_string(w, "");
	proto_put_string(w, sql);
	proto_put_int16(w, n_params);
	for (uint16_t i = 0; i < n_params; i++)
		proto_put_int32(w, 0);   /* unspecified: the server infers it */
	proto_end(w);
}

/* Length-prefixed text values, as in Bind and DataRow; NULL is SQL NULL. */
static void put_text_values(struct proto_writer *w, const char *const *values, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!values[i]) {
			proto_put_int32(w, 0xffffffffu);
			continue;
		}
		size_t len = strlen(values[i]);
		proto_put_int32(w, (uint32_t)len);
		proto_put_bytes(w, values[i], len);
	}
}

void proto_write_bind_text(struct proto_writer *w, const char *const *values, uint16_t n)
{
	proto_begin(w, PQ_MSG_BIND);
	proto_put_string(w, "");
	proto_put_string(w, "");
	proto_put_int16(w, 0);       /* every parameter in text format */
	proto_put_int16(w, n);
	put_text_values(w, values, n);
	proto_put_int16(w, 0);       /* every result column in text format */
	proto_end(w);
}

void proto_write_execute(struct proto_writer *w)
{
	proto_begin(w, PQ_MSG_EXECUTE);
	proto_put_string(w, "");
	proto_put_int32(w, 0);       /* no row limit */
	proto_end(w);
}

void proto_write_sync(struct proto_writer *w)
{
	proto_begin(w, PQ_MSG_SYNC);
	proto_end(w);
}

void proto_write_password(struct proto_writer *w, const void *data, size_t n)
{
	proto_begin(w, PQ_MSG_PASSWORD);
	proto_put_bytes(w, data, n);
	proto_end(w);
}

void proto_write_sasl_initial(struct proto_writer *w, const char *mech, const void *data, size_t n)
{
	proto_begin(w, PQ_MSG_PASSWORD);
	proto_put_string(w, mech);
	proto_put_int32(w, (uint32_t)n);
	proto_put_bytes(w, data, n);
	proto_end(w);
}

void proto_write_terminate(struct proto_writer *w)
{
	proto_begin(w, PQ_MSG_TERMINATE);
	proto_end(w);
}

void proto_write_cancel_request(struct proto_writer *w, uint32_t pid, uint32_t key)
{
	proto_begin(w, 0);
	proto_put_int32(w, PROTO_CANCEL_REQUEST);
	proto_put_int32(w, pid);
	proto_put_int32(w, key);
	proto_end(w);
}

void proto_write_negotiate_version(struct proto_writer *w, uint32_t newest_minor,
				   const char *const *unknown_opts, size_t n_unknown)
{
	proto_begin(w, PQ_MSG_NEGOTIATE_VERSION);
	proto_put_int32(w, (3u << 16) | newest_minor);
	proto_put_int32(w, (uint32_t)n_unknown);
	for (size_t i = 0; i < n_unknown; i++)
		proto_put_string(w, unknown_opts[i]);
	proto_end(w);
}

void proto_write_startup(struct proto_writer *w, const char *const *names, const char *const *values,
			 size_t n)
{
	proto_begin(w, 0);
	proto_put_int32(w, PROTO_VERSION_3_0);
	for (size_t i = 0; i < n; i++) {
		proto_put_string(w, names[i]);
		proto_put_string(w, values[i]);
	}
	proto_put_byte(w, 0);
	proto_end(w);
}

bool proto_quote_literal(const char *value, char *out, size_t cap)
{
	bool backslash = strchr(value, '\\') != NULL;
	size_t o = 0;
	if (backslash) {
		if (o + 1 >= cap)
			return false;
		out[o++] = 'E';
	}
	if (o + 1 >= cap)
		return false;
	out[o++] = '\'';
	for (const char *p = value; *p; p++) {
		bool twice = *p == '\'' || *p == '\\';
		if (o + (twice ? 2 : 1) + 1 >= cap)
			return false;
		if (twice)
			out[o++] = *p;
		out[o++] = *p;
	}
	if (o + 2 > cap)
		return false;
	out[o++] = '\'';
	out[o] = '\0';
	return true;
}

size_t proto_row_description_size(const struct proto_column *cols, size_t n)
{
	size_t len = PROTO_HEADER_LEN + 2;
	for (size_t i = 0; i < n; i++)
		len += strlen(cols[i].name) + 1 + 18;
	return len;
}

void proto_write_row_description(struct proto_writer *w, const struct proto_column *cols, size_t n)
{
	proto_begin(w, PQ_MSG_ROW_DESCRIPTION);
	proto_put_int16(w, (uint16_t)n);
	for (size_t i = 0; i < n; i++) {
		proto_put_string(w, cols[i].name);
		proto_put_int32(w, 0);                        /* table oid */
		proto_put_int16(w, 0);                        /* column number */
		proto_put_int32(w, cols[i].type_oid);
		proto_put_int16(w, (uint16_t)cols[i].typlen);
		proto_put_int32(w, 0xffffffffu);              /* typmod -1 */
		proto_put_int16(w, 0);                        /* text format */
	}
	proto_end(w);
}

size_t proto_data_row_size(const char *const *values, size_t n)
{
	size_t len = PROTO_HEADER_LEN + 2;
	for (size_t i = 0; i < n; i++)
		len += 4 + (values[i] ? strlen(values[i]) : 0);
	return len;
}

void proto_write_data_row(struct proto_writer *w, const char *const *values, size_t n)
{
	proto_begin(w, PQ_MSG_DATA_ROW);
	proto_put_int16(w, (uint16_t)n);
	put_text_values(w, values, n);
	proto_end(w);
}

void proto_write_command_complete(struct proto_writer *w, const char *tag)
{
	proto_begin(w, PQ_MSG_COMMAND_COMPLETE);
	proto_put_string(w, tag);
	proto_end(w);
}

void proto_write_empty_query(struct proto_writer *w)
{
	proto_begin(w, PQ_MSG_EMPTY_QUERY);
	proto_end(w);
}

enum proto_result proto_data_row_column(const uint8_t *body, size_t len, uint16_t idx,
					const uint8_t **val, uint32_t *val_len)
{
	struct proto_reader r;
	proto_reader_init(&r, body, len);
	uint16_t n = proto_get_int16(&r);
	if (r.err || idx >= n)
		return PROTO_ERROR;
	for (uint16_t i = 0; i <= idx; i++) {
		uint32_t l = proto_get_int32(&r);
		if (r.err)
			return PROTO_ERROR;
		if (l == 0xffffffffu) {
			*val = NULL;
			*val_len = 0;
			continue;
		}
		if (l > proto_remaining(&r))
			return PROTO_ERROR;
		*val = proto_get_bytes(&r, l);
		*val_len = l;
	}
	return PROTO_OK;
}
