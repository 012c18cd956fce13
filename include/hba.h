/* hba: auth_hba_file, in PostgreSQL's pg_hba.conf format.
 *
 * A pure module: hba_load() reads the file (and the @files it names) into
 * an immutable list of rules; hba_match() finds the first rule that applies
 * to a login. Nothing here touches a socket or the event loop.
 *
 * Supported: connection types local, host, hostssl, hostnossl; databases
 * all, sameuser, replication, names, comma lists, "quoted" names, @file;
 * users all, names, comma lists, quoted names, @file; addresses all,
 * IPv4/IPv6 with a /prefix or a separate mask; methods trust, reject, md5,
 * scram-sha-256, password, peer (local only) and cert (host/hostssl only).
 * Anything else (+group, regular expressions, host names, samehost,
 * samenet, other methods, options after the method) is a load error: a
 * rule tidepool cannot honour exactly must not be silently widened or
 * dropped. */
#ifndef TIDEPOOL_HBA_H
#define TIDEPOOL_HBA_H

#include <stdbool.h>
#include <sys/socket.h>

#include "util.h"

enum hba_method {
	HBA_TRUST,
	HBA_REJECT,
	HBA_MD5,            /* md5, or SCRAM when the stored secret is a SCRAM verifier */
	HBA_SCRAM,
	HBA_PASSWORD,       /* cleartext */
	HBA_PEER,           /* unix socket: the peer's OS user must be the requested user */
	HBA_CERT,           /* TLS client certificate */
};

/* What a login looks like to the rules. */
struct hba_request {
	bool is_unix;
	const struct sockaddr *addr;   /* client address of a TCP login (AF_INET/AF_INET6) */
	/* TLS in use on the client connection. Always false for now: the TLS
	 * work fills it in when it lands. */
	bool tls;
	const char *database;
	const char *user;
	/* A physical replication connection (replication=true): only the
	 * "replication" keyword matches its database, as in PostgreSQL. */
	bool physical_replication;
};

/* The rule that applies: its method, and where it was written. */
struct hba_result {
	enum hba_method method;
	const char *file;
	int line;
	const char *map;     /* map=NAME of a peer or cert line, else NULL (lives with the rules) */
};

struct hba;

/* Called once per problem; file and line say where. */
typedef void (*hba_error_fn)(void *arg, const char *file, int line, const char *msg);

/* Loads path. NULL if it cannot be read or any line is wrong; every problem
 * is reported through err (which may be NULL). */
struct hba *hba_load(const char *path, hba_error_fn err, void *arg);
/* Same from text in memory; path names it in messages and is the base for
 * relative @file names. */
struct hba *hba_parse(const char *text, const char *path, hba_error_fn err, void *arg);
/* One more owner of h (a copied config snapshot); hba_free drops one and
 * frees the rules with the last. NULL stays NULL. */
struct hba *hba_ref(struct hba *h);
void hba_free(struct hba *h);
size_t hba_rule_count(const struct hba *h);

/* The first rule matching req. False when none does (a rejection). */
bool hba_match(const struct hba *h, const struct hba_request *req, struct hba_result *out) MUST_CHECK;

/* Reads auth_ident_file (lines "MAP SYSTEM-USER DATABASE-USER", # comments)
 * into h; false (problems reported through err) if it cannot be read, a
 * line is wrong, or a rule's map= names a map the file lacks. */
bool hba_load_ident(struct hba *h, const char *path, hba_error_fn err, void *arg) MUST_CHECK;
/* May system_user log in as db_user through map? ("all" maps to anyone). */
bool hba_ident_allows(const struct hba *h, const char *map, const char *system_user, const char *db_user);
/* Does any rule have a map= option? */
bool hba_uses_maps(const struct hba *h);

/* The spelling used in the file: "trust", "scram-sha-256", ... */
const char *hba_method_name(enum hba_method m);

#endif
