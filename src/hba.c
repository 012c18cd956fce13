/* hba: pg_hba.conf-format rules (see hba.h).
 *
 * Owns struct hba: an array of rules in file order, each with its own copies
 * of names, and the file names messages point to. Loading is all or nothing:
 * every line is checked (so one run lists every problem) and any problem
 * gives NULL, so a reload keeps the rules it had. Matching walks the rules in
 * order and stops at the first hit, as PostgreSQL does. Names are compared
 * exactly (pg_hba.conf does not fold case); a quoted keyword is a name. */
#include "hba.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HBA_MAX_FIELDS 32
#define HBA_MAX_INCLUDE_DEPTH 10
#define HBA_MAX_ERRORS 50

enum conn_type {
	CONN_LOCAL,
	CONN_HOST,
	CONN_HOSTSSL,
	CONN_HOSTNOSSL,
	CONN_HOSTGSSENC,     /* never matches: tidepool refuses GSS encryption */
	CONN_HOSTNOGSSENC,   /* every TCP login, for the same reason */
};

enum name_kind { NAME_ALL, NAME_SAMEUSER, NAME_REPLICATION, NAME_LITERAL };

struct hba_name {
	enum name_kind kind;
	char *name;          /* NAME_LITERAL */
};

struct hba_names {
	struct hba_name *v;
	size_t n;
};

struct hba_addr {
	bool all;
	int family;
	uint8_t addr[16];    /* already masked */
	uint8_t mask[16];
};

struct hba_rule {
	enum conn_type conn;
	struct hba_names dbs, users;
	struct hba_addr addr;
	enum hba_method method;
	char *map;           /* map=NAME (peer, cert): a map of auth_ident_file, or NULL */
	const char *file;    /* points into hba.files */
	int line;
};

/* One auth_ident_file line: MAP SYSTEM-USER DATABASE-USER ("all": any). */
struct hba_ident {
	char *map, *system_user, *db_user;
};

struct hba {
	unsigned refs;              /* config snapshots sharing these rules */
	struct hba_rule *rules;
	size_t n_rules;
	struct hba_ident *idents;   /* auth_ident_file */
	size_t n_idents;
	char **files;
	size_t n_files;
};

struct token {
	char *text;
	bool quoted;
};

struct field {
	struct token *tok;
	size_t n;
};

struct parser {
	struct hba *h;
	const char *file;    /* owned by h->files */
	int line;
	hba_error_fn err;
	void *arg;
	int n_errors;
};

static const char *const method_names[] = {
	[HBA_TRUST] = "trust",
	[HBA_REJECT] = "reject",
	[HBA_MD5] = "md5",
	[HBA_SCRAM] = "scram-sha-256",
	[HBA_PASSWORD] = "password",
	[HBA_PEER] = "peer",
	[HBA_CERT] = "cert",
};

const char *hba_method_name(enum hba_method m)
{
	return (size_t)m < ARRAY_SIZE(method_names) ? method_names[m] : "?";
}

static void hba_error(struct parser *ps, const char *fmt, ...) PRINTF_LIKE(2, 3);

static void hba_error(struct parser *ps, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (++ps->n_errors > HBA_MAX_ERRORS || !ps->err)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ps->err(ps->arg, ps->file, ps->line, msg);
}

static const char *remember_file(struct hba *h, const char *path)
{
	for (size_t i = 0; i < h->n_files; i++)
		if (strcmp(h->files[i], path) == 0)
			return h->files[i];
	h->files = xrealloc(h->files, (h->n_files + 1) * sizeof(*h->files));
	h->files[h->n_files] = xstrdup(path);
	return h->files[h->n_files++];
}

static char *read_text_file(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t cap = 4096, len = 0, got;
	if (!f)
		return NULL;
	char *buf = xmalloc(cap);
	while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += got;
		if (len == cap - 1)
			buf = xrealloc(buf, cap *= 2);
	}
	int err = ferror(f) ? EIO : 0;
	fclose(f);
	if (err) {
		free(buf);
		errno = err;
		return NULL;
	}
	buf[len] = '\0';
	return buf;
}

/* ---- tokens ---- */

static void fields_free(struct field *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < f[i].n; j++)
			free(f[i].tok[j].text);
		free(f[i].tok);
		f[i].tok = NULL;
		f[i].n = 0;
	}
}

static void field_push(struct field *f, char *text, bool quoted)
{
	f->tok = xrealloc(f->tok, (f->n + 1) * sizeof(*f->tok));
	f->tok[f->n++] = (struct token){ text, quoted };
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r';
}

/* Reads one token at *s: "quoted" ("" is a quote) or bare up to a blank,
 * ',' or '#'. NULL (after reporting) on a malformed token. */
static char *read_token(struct parser *ps, const char **s, bool *quoted)
{
	const char *p = *s;
	*quoted = *p == '"';
	if (*quoted) {
		char *out = xmalloc(strlen(p) + 1), *o = out;
		for (p++;; p++) {
			if (!*p) {
				hba_error(ps, "unterminated quoted string");
				free(out);
				return NULL;
			}
			if (*p == '"' && p[1] == '"')
				*o++ = *p++;
			else if (*p == '"')
				break;
			else
				*o++ = *p;
		}
		*o = '\0';
		*s = p + 1;
		return out;
	}
	size_t n = strcspn(p, " \t\r,#\"");
	if (p[n] == '"') {
		hba_error(ps, "unexpected quote inside \"%.*s\"", (int)n, p);
		return NULL;
	}
	*s = p + n;
	return xstrndup(p, n);
}

/* Splits a logical line into fields; a field is a comma list of tokens.
 * Stops at '#'. False (after reporting) on a malformed line. */
static bool split_fields(struct parser *ps, const char *s, struct field *fields, size_t *nf)
{
	*nf = 0;
	for (;;) {
		while (is_blank(*s))
			s++;
		if (!*s || *s == '#')
			return true;
		if (*nf == HBA_MAX_FIELDS) {
			hba_error(ps, "too many fields");
			return false;
		}
		struct field *f = &fields[(*nf)++];
		for (;;) {
			bool quoted;
			char *t = read_token(ps, &s, &quoted);
			if (!t)
				return false;
			if (!quoted && !*t) {
				hba_error(ps, "empty element in a comma-separated list");
				free(t);
				return false;
			}
			field_push(f, t, quoted);
			if (*s != ',')
				break;
			/* "a, b" is a list too, as PostgreSQL reads it */
			for (s++; is_blank(*s); s++)
				;
		}
		if (*s && !is_blank(*s) && *s != '#') {
			hba_error(ps, "unexpected character '%c'", *s);
			return false;
		}
	}
}

/* ---- @file lists ---- */

static char *resolve_path(const char *base_file, const char *name)
{
	if (name[0] == '/')
		return xstrdup(name);
	const char *slash = strrchr(base_file, '/');
	if (!slash)
		return xstrdup(name);
	return xasprintf("%.*s/%s", (int)(slash - base_file), base_file, name);
}

static void expand_tokens(struct parser *ps, const struct field *in, struct field *out, int depth);

/* Appends the tokens of an @file (names separated by blanks, commas or new
 * lines; # comments) to out. */
static void expand_include(struct parser *ps, const char *name, struct field *out, int depth)
{
	if (depth >= HBA_MAX_INCLUDE_DEPTH) {
		hba_error(ps, "@%s: too many nested @ files", name);
		return;
	}
	char *path = resolve_path(ps->file, name);
	char *text = read_text_file(path);
	if (!text) {
		hba_error(ps, "cannot read @%s (%s): %s", name, path, strerror(errno));
		free(path);
		return;
	}
	struct parser sub = *ps;
	sub.file = remember_file(ps->h, path);
	sub.line = 0;
	sub.n_errors = 0;
	char *line = text, *nl;
	for (; line; line = nl) {
		nl = strchr(line, '\n');
		if (nl)
			*nl++ = '\0';
		sub.line++;
		struct field fields[HBA_MAX_FIELDS] = { 0 };
		size_t nf = 0;
		if (split_fields(&sub, line, fields, &nf))
			for (size_t i = 0; i < nf; i++)
				expand_tokens(&sub, &fields[i], out, depth + 1);
		fields_free(fields, HBA_MAX_FIELDS);
	}
	ps->n_errors += sub.n_errors;
	free(text);
	free(path);
}

/* Copies in to out, replacing each bare @name by the tokens of that file. */
static void expand_tokens(struct parser *ps, const struct field *in, struct field *out, int depth)
{
	for (size_t i = 0; i < in->n; i++) {
		const struct token *t = &in->tok[i];
		if (!t->quoted && t->text[0] == '@')
			expand_include(ps, t->text + 1, out, depth);
		else
			field_push(out, xstrdup(t->text), t->quoted);
	}
}

/* ---- fields ---- */

static bool parse_conn_type(struct parser *ps, const struct field *f, enum conn_type *out)
{
	static const char *const names[] = {
		[CONN_LOCAL] = "local", [CONN_HOST] = "host", [CONN_HOSTSSL] = "hostssl",
		[CONN_HOSTNOSSL] = "hostnossl", [CONN_HOSTGSSENC] = "hostgssenc",
		[CONN_HOSTNOGSSENC] = "hostnogssenc",
	};
	if (f->n == 1 && !f->tok[0].quoted)
		for (size_t i = 0; i < ARRAY_SIZE(names); i++)
			if (strcmp(f->tok[0].text, names[i]) == 0) {
				*out = (enum conn_type)i;
				return true;
			}
	hba_error(ps, "invalid connection type \"%s\"", f->tok[0].text);
	return false;
}

static bool name_from_token(struct parser *ps, const struct token *t, bool is_db, struct hba_name *out)
{
	const char *s = t->text;
	*out = (struct hba_name){ NAME_LITERAL, NULL };
	if (!t->quoted) {
		if (strcmp(s, "all") == 0) {
			out->kind = NAME_ALL;
			return true;
		}
		if (is_db && strcmp(s, "sameuser") == 0) {
			out->kind = NAME_SAMEUSER;
			return true;
		}
		if (is_db && strcmp(s, "replication") == 0) {
			out->kind = NAME_REPLICATION;
			return true;
		}
		if (is_db && (strcmp(s, "samerole") == 0 || strcmp(s, "samegroup") == 0)) {
			hba_error(ps, "\"%s\" is not supported (tidepool does not know role membership)", s);
			return false;
		}
		if (!is_db && s[0] == '+') {
			hba_error(ps, "group membership \"%s\" is not supported; list the users by name or in an @file", s);
			return false;
		}
		if (s[0] == '/') {
			hba_error(ps, "regular expression \"%s\" is not supported", s);
			return false;
		}
	}
	out->name = xstrdup(s);
	return true;
}

static bool parse_names(struct parser *ps, const struct field *f, bool is_db, struct hba_names *out)
{
	struct field all = { 0 };
	int errors = ps->n_errors;
	bool ok = true;
	expand_tokens(ps, f, &all, 0);
	out->v = xcalloc(all.n, sizeof(*out->v));
	for (size_t i = 0; i < all.n && ok; i++) {
		ok = name_from_token(ps, &all.tok[i], is_db, &out->v[out->n]);
		out->n += ok;
	}
	if (ok && all.n == 0 && ps->n_errors == errors) {
		hba_error(ps, "empty %s list", is_db ? "database" : "user");
		ok = false;
	}
	fields_free(&all, 1);
	return ok && ps->n_errors == errors;
}

static void mask_from_prefix(int prefix, size_t len, uint8_t *mask)
{
	memset(mask, 0, 16);
	for (size_t i = 0; i < len && prefix > 0; i++, prefix -= 8)
		mask[i] = prefix >= 8 ? 0xff : (uint8_t)(0xff << (8 - prefix));
}

static int parse_ip(const char *s, uint8_t out[16])
{
	if (inet_pton(AF_INET, s, out) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, s, out) == 1)
		return AF_INET6;
	return 0;
}

/* Address at fields[*i], and a separate mask after it when there is no
 * "/prefix"; *i moves past what was used. */
static bool parse_address(struct parser *ps, const struct field *fields, size_t nf, size_t *i,
			  struct hba_addr *a)
{
	const struct field *f = &fields[*i];
	const char *s = f->tok[0].text;
	memset(a, 0, sizeof(*a));
	if (f->n != 1) {
		hba_error(ps, "an address field holds one address");
		return false;
	}
	(*i)++;
	if (!f->tok[0].quoted && strcmp(s, "all") == 0) {
		a->all = true;
		return true;
	}
	if (!f->tok[0].quoted && (strcmp(s, "samehost") == 0 || strcmp(s, "samenet") == 0)) {
		hba_error(ps, "\"%s\" is not supported; write the address and mask", s);
		return false;
	}
	char ip[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	size_t iplen = slash ? (size_t)(slash - s) : strlen(s);
	if (iplen >= sizeof(ip)) {
		hba_error(ps, "invalid IP address \"%s\" (host names are not supported)", s);
		return false;
	}
	memcpy(ip, s, iplen);
	ip[iplen] = '\0';
	a->family = parse_ip(ip, a->addr);
	if (!a->family) {
		hba_error(ps, "invalid IP address \"%s\" (host names are not supported)", ip);
		return false;
	}
	size_t len = a->family == AF_INET ? 4 : 16;
	if (slash) {
		int64_t prefix;
		if (!parse_int64(slash + 1, 0, (int64_t)len * 8, &prefix)) {
			hba_error(ps, "invalid CIDR mask in address \"%s\"", s);
			return false;
		}
		mask_from_prefix((int)prefix, len, a->mask);
	} else {
		if (*i >= nf || fields[*i].n != 1 || parse_ip(fields[*i].tok[0].text, a->mask) != a->family) {
			hba_error(ps, "address \"%s\" needs a /prefix or a netmask of the same family", s);
			return false;
		}
		(*i)++;
	}
	for (size_t k = 0; k < len; k++)
		a->addr[k] &= a->mask[k];
	return true;
}

static bool parse_method(struct parser *ps, const struct field *f, enum hba_method *out)
{
	static const char *const unsupported[] = {
		"ident", "ldap", "pam", "gss", "sspi", "radius", "bsd", "oauth", "crypt", "krb5",
	};
	const char *s = f->tok[0].text;
	if (f->n == 1 && !f->tok[0].quoted) {
		for (size_t i = 0; i < ARRAY_SIZE(method_names); i++)
			if (strcmp(s, method_names[i]) == 0) {
				*out = (enum hba_method)i;
				return true;
			}
		for (size_t i = 0; i < ARRAY_SIZE(unsupported); i++)
			if (strcmp(s, unsupported[i]) == 0) {
				hba_error(ps, "authentication method \"%s\" is not supported", s);
				return false;
			}
	}
	hba_error(ps, "invalid authentication method \"%s\"", s);
	return false;
}

/* ---- rules ---- */

static void names_free(struct hba_names *n)
{
	for (size_t i = 0; i < n->n; i++)
		free(n->v[i].name);
	free(n->v);
	n->v = NULL;
	n->n = 0;
}

/* Options after the method: only map=NAME, and only for peer and cert. */
static bool parse_options(struct parser *ps, struct hba_rule *r, struct field *opts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *s = opts[i].tok[0].text;
		if ((r->method != HBA_PEER && r->method != HBA_CERT) || strncmp(s, "map=", 4) != 0 ||
		    !s[4] || opts[i].n != 1 || r->map) {
			hba_error(ps, "authentication option \"%s\" after \"%s\" is not supported (only map= "
				  "with peer or cert)", s, hba_method_name(r->method));
			return false;
		}
		r->map = xstrdup(s + 4);
	}
	return true;
}

/* Checks that the method fits the connection type. */
static bool check_rule(struct parser *ps, const struct hba_rule *r)
{
	if (r->method == HBA_PEER && r->conn != CONN_LOCAL) {
		hba_error(ps, "peer authentication is only supported on local sockets");
		return false;
	}
	if (r->method == HBA_CERT && r->conn == CONN_LOCAL) {
		hba_error(ps, "cert authentication is only supported on host and hostssl lines");
		return false;
	}
	return true;
}

static void parse_rule(struct parser *ps, struct field *fields, size_t nf)
{
	struct hba_rule r = { .file = ps->file, .line = ps->line };
	size_t i = 1;
	if (!parse_conn_type(ps, &fields[0], &r.conn))
		return;
	size_t need = r.conn == CONN_LOCAL ? 4 : 5;
	if (nf < need) {
		hba_error(ps, "incomplete line: expected %s", r.conn == CONN_LOCAL
			  ? "local DATABASE USER METHOD" : "TYPE DATABASE USER ADDRESS METHOD");
		return;
	}
	bool ok = parse_names(ps, &fields[i++], true, &r.dbs);
	ok = parse_names(ps, &fields[i++], false, &r.users) && ok;
	if (ok && r.conn != CONN_LOCAL)
		ok = parse_address(ps, fields, nf, &i, &r.addr);
	if (ok && i >= nf) {
		hba_error(ps, "missing authentication method");
		ok = false;
	}
	ok = ok && parse_method(ps, &fields[i], &r.method) && check_rule(ps, &r) &&
	     parse_options(ps, &r, &fields[i + 1], nf - i - 1);
	if (!ok) {
		names_free(&r.dbs);
		names_free(&r.users);
		free(r.map);
		return;
	}
	struct hba *h = ps->h;
	h->rules = xrealloc(h->rules, (h->n_rules + 1) * sizeof(*h->rules));
	h->rules[h->n_rules++] = r;
}

/* Joins physical lines ending in a backslash; *lines counts those used. */
static char *next_logical_line(const char **text, int *lines)
{
	char *out = xstrdup("");
	size_t len = 0;
	*lines = 0;
	while (**text || *lines == 0) {
		const char *p = *text, *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		*text = nl ? nl + 1 : p + n;
		(*lines)++;
		while (n > 0 && p[n - 1] == '\r')
			n--;
		bool more = n > 0 && p[n - 1] == '\\' && nl;
		if (more)
			n--;
		out = xrealloc(out, len + n + 1);
		memcpy(out + len, p, n);
		out[len += n] = '\0';
		if (!more)
			break;
	}
	return out;
}

struct hba *hba_parse(const char *text, const char *path, hba_error_fn err, void *arg)
{
	struct hba *h = xcalloc(1, sizeof(*h));
	h->refs = 1;
	struct parser ps = { .h = h, .file = remember_file(h, path), .err = err, .arg = arg };
	int next_line = 1;
	while (*text) {
		int used;
		char *line = next_logical_line(&text, &used);
		struct field fields[HBA_MAX_FIELDS] = { 0 };
		size_t nf = 0;
		ps.line = next_line;
		next_line += used;
		if (split_fields(&ps, line, fields, &nf) && nf > 0)
			parse_rule(&ps, fields, nf);
		fields_free(fields, HBA_MAX_FIELDS);
		free(line);
	}
	if (ps.n_errors) {
		hba_free(h);
		return NULL;
	}
	return h;
}

struct hba *hba_load(const char *path, hba_error_fn err, void *arg)
{
	char *text = read_text_file(path);
	if (!text) {
		char msg[300];
		snprintf(msg, sizeof(msg), "cannot read auth_hba_file: %s", strerror(errno));
		if (err)
			err(arg, path, 0, msg);
		return NULL;
	}
	struct hba *h = hba_parse(text, path, err, arg);
	free(text);
	return h;
}

struct hba *hba_ref(struct hba *h)
{
	if (h)
		h->refs++;
	return h;
}

void hba_free(struct hba *h)
{
	if (!h || --h->refs > 0)
		return;
	for (size_t i = 0; i < h->n_rules; i++) {
		names_free(&h->rules[i].dbs);
		names_free(&h->rules[i].users);
		free(h->rules[i].map);
	}
	for (size_t i = 0; i < h->n_idents; i++) {
		free(h->idents[i].map);
		free(h->idents[i].system_user);
		free(h->idents[i].db_user);
	}
	free(h->idents);
	for (size_t i = 0; i < h->n_files; i++)
		free(h->files[i]);
	free(h->rules);
	free(h->files);
	free(h);
}

size_t hba_rule_count(const struct hba *h)
{
	return h ? h->n_rules : 0;
}

/* ---- matching ---- */

static bool conn_matches(enum conn_type t, const struct hba_request *q)
{
	switch (t) {
	case CONN_LOCAL:
		return q->is_unix;
	case CONN_HOST:
	case CONN_HOSTNOGSSENC:
		return !q->is_unix;
	case CONN_HOSTSSL:
		return !q->is_unix && q->tls;
	case CONN_HOSTNOSSL:
		return !q->is_unix && !q->tls;
	case CONN_HOSTGSSENC:
		return false;
	}
	return false;
}

static bool addr_matches(const struct hba_addr *a, const struct sockaddr *sa)
{
	const uint8_t *ip;
	size_t len;
	if (a->all)
		return true;
	if (!sa || sa->sa_family != a->family)
		return false;
	if (sa->sa_family == AF_INET) {
		ip = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		len = 4;
	} else {
		ip = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		len = 16;
	}
	for (size_t i = 0; i < len; i++)
		if ((ip[i] & a->mask[i]) != a->addr[i])
			return false;
	return true;
}

/* The database column: "replication" matches physical replication
 * connections only, and nothing else matches them; "all" matches every
 * other connection (a logical replication one names its database). */
static bool names_match(const struct hba_names *n, const char *name, const char *user, bool physical)
{
	for (size_t i = 0; i < n->n; i++) {
		const struct hba_name *e = &n->v[i];
		switch (e->kind) {
		case NAME_ALL:
			if (!physical)
				return true;
			break;
		case NAME_SAMEUSER:
			if (!physical && strcmp(name, user) == 0)
				return true;
			break;
		case NAME_REPLICATION:
			if (physical)
				return true;
			break;
		case NAME_LITERAL:
			if (!physical && strcmp(name, e->name) == 0)
				return true;
			break;
		}
	}
	return false;
}

bool hba_match(const struct hba *h, const struct hba_request *req, struct hba_result *out)
{
	for (size_t i = 0; h && i < h->n_rules; i++) {
		const struct hba_rule *r = &h->rules[i];
		if (!conn_matches(r->conn, req))
			continue;
		if (r->conn != CONN_LOCAL && !addr_matches(&r->addr, req->addr))
			continue;
		if (!names_match(&r->dbs, req->database, req->user, req->physical_replication) ||
		    !names_match(&r->users, req->user, req->user, false))
			continue;
		*out = (struct hba_result){ r->method, r->file, r->line, r->map };
		return true;
	}
	return false;
}

/* ---- auth_ident_file ---- */

static void ident_line(struct parser *ps, struct hba *h, char *line)
{
	char *save = NULL, *f[4];
	int n = 0;
	char *hash = strchr(line, '#');
	if (hash)
		*hash = '\0';
	for (char *t = strtok_r(line, " \t\r", &save); t && n < 4; t = strtok_r(NULL, " \t\r", &save))
		f[n++] = t;
	if (n == 0)
		return;
	if (n != 3) {
		hba_error(ps, "expected MAP-NAME SYSTEM-USERNAME DATABASE-USERNAME");
		return;
	}
	if (f[1][0] == '/' || f[2][0] == '/' || f[2][0] == '+') {
		hba_error(ps, "regular expressions and +groups are not supported in auth_ident_file");
		return;
	}
	h->idents = xrealloc(h->idents, (h->n_idents + 1) * sizeof(*h->idents));
	h->idents[h->n_idents++] = (struct hba_ident){ xstrdup(f[0]), xstrdup(f[1]), xstrdup(f[2]) };
}

bool hba_load_ident(struct hba *h, const char *path, hba_error_fn err, void *arg)
{
	char *text = read_text_file(path);
	if (!text) {
		char msg[300];
		snprintf(msg, sizeof(msg), "cannot read auth_ident_file: %s", strerror(errno));
		if (err)
			err(arg, path, 0, msg);
		return false;
	}
	struct parser ps = { .h = h, .file = remember_file(h, path), .err = err, .arg = arg };
	char *p = text, *nl;
	for (ps.line = 1; *p; p = nl + 1, ps.line++) {
		nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		ident_line(&ps, h, p);
		if (!nl)
			break;
	}
	free(text);
	/* every map= of the rules must name a map of the file */
	for (size_t i = 0; i < h->n_rules; i++) {
		bool found = !h->rules[i].map;
		for (size_t j = 0; j < h->n_idents && !found; j++)
			found = strcmp(h->idents[j].map, h->rules[i].map) == 0;
		if (!found) {
			ps.file = h->rules[i].file;
			ps.line = h->rules[i].line;
			hba_error(&ps, "map \"%s\" is not defined in auth_ident_file", h->rules[i].map);
		}
	}
	return ps.n_errors == 0;
}

bool hba_ident_allows(const struct hba *h, const char *map, const char *system_user, const char *db_user)
{
	for (size_t i = 0; h && i < h->n_idents; i++) {
		const struct hba_ident *e = &h->idents[i];
		if (strcmp(e->map, map) == 0 && strcmp(e->system_user, system_user) == 0 &&
		    (strcmp(e->db_user, "all") == 0 || strcmp(e->db_user, db_user) == 0))
			return true;
	}
	return false;
}

bool hba_uses_maps(const struct hba *h)
{
	for (size_t i = 0; h && i < h->n_rules; i++)
		if (h->rules[i].map)
			return true;
	return false;
}
