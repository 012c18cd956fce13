/* pq: splits connection strings into key/value pairs and knows libpq's
 * connection keywords.
 *
 * The pooler does not link libpq: it would only ask it for its keyword list,
 * and libpq's dependencies (Kerberos, LDAP, SASL, GnuTLS, p11-kit) took
 * about 3 MiB of a fresh process's RSS, a third of a sidecar's footprint.
 * The list below is a superset of libpq 15-18's; test_config (which links
 * libpq) checks that every keyword of the installed libpq is in it.
 *
 * Why our own splitter instead of handing the string to PQconninfoParse:
 * PQconninfoParse rejects every keyword libpq does not know, and much of what
 * a [databases] line says (pool_size, pool_mode, auth_user, connect_query,
 * reserve_pool, ...) is PgBouncer's, not libpq's; [users] and [peers] lines
 * hold no libpq keywords at all. Cutting those keys out before calling libpq
 * needs a tokenizer anyway, and the quoting dialects differ: PgBouncer
 * writes a quote inside a quoted value as '' (SQL style), which libpq
 * rejects, while libpq writes \' and \\. So one small tokenizer here is the
 * single authority for splitting; libpq is only asked which keywords it has,
 * so that an error can say "sslmode is a libpq option tidepool does not take
 * here" instead of just "unknown".
 *
 * Rules: a superset of PgBouncer's, and equal to libpq's on every string
 * that uses no backslash outside quotes:
 * - pairs are separated by whitespace; whitespace around '=' is allowed;
 * - an unquoted value runs to the next whitespace, backslashes in it are
 *   literal (as in PgBouncer; libpq would take them as escapes);
 * - a value in single quotes runs to the closing quote; '' and \' give a
 *   quote, \\ a backslash, any other backslash is kept as is;
 * - a closing quote must be followed by whitespace or the end;
 * - a value may not be empty (PgBouncer rejects that too).
 */
#include "pq.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

struct kv_vec {
	struct pq_kv *v;
	size_t n, cap;
};

static void kv_push(struct kv_vec *kv, char *key, char *val)
{
	if (kv->n == kv->cap) {
		kv->cap = kv->cap ? kv->cap * 2 : 8;
		kv->v = xrealloc(kv->v, kv->cap * sizeof(*kv->v));
	}
	kv->v[kv->n].key = key;
	kv->v[kv->n].val = val;
	kv->n++;
}

static bool is_space(char c)
{
	return isspace((unsigned char)c) != 0;
}

static const char *skip_ws(const char *p)
{
	while (*p && is_space(*p))
		p++;
	return p;
}

/* Reads "key =" at p into *key; returns the first byte of the value. */
static const char *read_key(const char *p, char **key, char **err)
{
	const char *start = p;

	while (*p && *p != '=' && !is_space(*p))
		p++;
	if (p == start) {
		*err = xstrdup("missing parameter name before \"=\"");
		return NULL;
	}
	*key = xstrndup(start, (size_t)(p - start));
	p = skip_ws(p);
	if (*p != '=') {
		*err = xasprintf("missing \"=\" after \"%s\"", *key);
		free(*key);
		return NULL;
	}
	return skip_ws(p + 1);
}

/* Copies the single-quoted value starting at the quote p into dst, unquoted;
 * returns the byte after the closing quote. */
static const char *read_quoted(const char *p, char *dst, const char *key, char **err)
{
	for (p++;; p++) {
		if (*p == '\0') {
			*err = xasprintf("unterminated quoted value for \"%s\"", key);
			return NULL;
		}
		if (*p == '\'' && p[1] == '\'')
			p++;
		else if (*p == '\'')
			break;
		else if (*p == '\\' && (p[1] == '\'' || p[1] == '\\'))
			p++;
		*dst++ = *p;
	}
	*dst = '\0';
	p++;
	if (*p && !is_space(*p)) {
		*err = xasprintf("unexpected \"%c\" after the quoted value of \"%s\"", *p, key);
		return NULL;
	}
	return p;
}

/* Reads one key=value pair at p; returns the byte after the value. */
static const char *read_pair(const char *p, char **key, char **val, char **err)
{
	const char *end;
	char *buf;

	p = read_key(p, key, err);
	if (!p)
		return NULL;
	buf = xmalloc(strlen(p) + 1);
	if (*p == '\'') {
		end = read_quoted(p, buf, *key, err);
	} else {
		for (end = p; *end && !is_space(*end); end++)
			;
		memcpy(buf, p, (size_t)(end - p));
		buf[end - p] = '\0';
	}
	if (end && buf[0] == '\0') {
		*err = xasprintf("empty value for \"%s\"", *key);
		end = NULL;
	}
	if (!end) {
		free(buf);
		free(*key);
		return NULL;
	}
	*val = buf;
	return end;
}

static bool is_uri(const char *s)
{
	return strncasecmp(s, "postgresql://", 13) == 0 || strncasecmp(s, "postgres://", 11) == 0;
}

bool pq_parse_conninfo(const char *s, struct pq_kv **out, size_t *n, char **errmsg)
{
	struct kv_vec kv = { 0 };
	const char *p = skip_ws(s);

	*out = NULL;
	*n = 0;
	*errmsg = NULL;
	if (is_uri(p)) {
		*errmsg = xstrdup("connection URIs are not accepted here, write key=value pairs");
		return false;
	}
	while (*p) {
		char *key, *val;

		p = read_pair(p, &key, &val, errmsg);
		if (!p) {
			pq_kv_free(kv.v, kv.n);
			return false;
		}
		kv_push(&kv, key, val);
		p = skip_ws(p);
	}
	*out = kv.v;
	*n = kv.n;
	return true;
}

void pq_kv_free(struct pq_kv *kv, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(kv[i].key);
		free(kv[i].val);
	}
	free(kv);
}

/* libpq's connection keywords (PQconninfoParse("") of libpq 15, plus those
 * that libpq 16-18 added), sorted for bsearch. */
static const char *const libpq_keywords[] = {
	"application_name", "channel_binding", "client_encoding", "connect_timeout", "dbname",
	"fallback_application_name", "gssdelegation", "gssencmode", "gsslib", "host", "hostaddr",
	"keepalives", "keepalives_count", "keepalives_idle", "keepalives_interval", "krbsrvname",
	"load_balance_hosts", "max_protocol_version", "min_protocol_version", "oauth_ca_file",
	"oauth_client_id", "oauth_client_secret", "oauth_issuer", "oauth_scope", "options",
	"passfile", "password", "port", "replication", "require_auth", "requirepeer",
	"scram_client_key", "scram_server_key", "service", "ssl_max_protocol_version",
	"ssl_min_protocol_version", "sslcert", "sslcertmode", "sslcompression", "sslcrl",
	"sslcrldir", "sslkey", "sslkeylogfile", "sslmode", "sslnegotiation", "sslpassword",
	"sslrootcert", "sslsni", "target_session_attrs", "tcp_user_timeout", "user",
};

static int cmp_keyword(const void *a, const void *b)
{
	return strcmp(a, *(const char *const *)b);
}

bool pq_is_libpq_keyword(const char *key)
{
	return bsearch(key, libpq_keywords, ARRAY_SIZE(libpq_keywords), sizeof(libpq_keywords[0]),
		       cmp_keyword) != NULL;
}
