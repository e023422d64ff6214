/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One push provider (APNs, FCM, Huawei Push Kit, Xiaomi MiPush, webhook):
 * a struct of operations, one backend per file (provider_<name>.c), in the
 * manner of Redis' ae.c. A provider knows its credentials, the shape of its
 * request and the meaning of its answers; it does no I/O of its own except
 * fetching credentials in authorize() (through http.h), and it knows nothing
 * of queues, retries or the outbox (worker.c and push.c do).
 *
 * Threads: every operation but create/destroy runs on the provider's own
 * worker thread, so a provider that blocks (a token endpoint that stalls)
 * delays only its own pushes. create() runs on the broker thread at start;
 * destroy() after the worker has stopped.
 */
#ifndef PIGEON_PUSH_PROVIDER_H
#define PIGEON_PUSH_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"
#include "push_config.h"

#define PG_PUSH_MAX_HEADERS 12

/* A request a provider built: the worker sends it (POST, HTTP/2 when TLS). */
struct pg_push_request {
	char *url;                             /* malloc'd */
	char *headers[PG_PUSH_MAX_HEADERS];    /* malloc'd "Name: value" lines */
	size_t nheaders;
	char *body; /* malloc'd, body_len bytes */
	size_t body_len;
};

/* Frees what a request holds and zeroes it. */
void pg_push_request_clear(struct pg_push_request *req);
/* Appends a header "name: value" (printf-style); -1 if full or out of memory. */
int pg_push_request_header(struct pg_push_request *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* What came back for one request. */
struct pg_push_response {
	int transport_error;   /* 0: an HTTP answer came (status set); else a CURLcode */
	bool timed_out;        /* the request hit its timeout (stalled provider) */
	const char *error;     /* transport error text, or "" */
	long status;           /* HTTP status */
	const char *body;      /* NUL-terminated (the terminator is not counted) */
	size_t body_len;
	const char *retry_after; /* the Retry-After header's value, or NULL */
};

/* What the provider makes of an answer. */
enum pg_push_verdict {
	PG_PUSH_VERDICT_DONE,       /* result filled: outcome, reason, detail */
	PG_PUSH_VERDICT_REAUTHORIZE, /* credentials expired: authorize(force) once and resend */
};

struct pg_push_provider_ops {
	const char *name; /* "apns", ...: also the counter folder */
	enum pg_push_platform platform;
	/*
	 * True if the configuration enables this provider (its credentials or
	 * URL are set). A provider that is not enabled is not created.
	 */
	bool (*enabled)(const struct pg_push_config *cfg);
	/*
	 * Reads credentials (key files, service account) and checks settings.
	 * Returns the provider's state, or NULL with err set (a configuration
	 * error: the plugin refuses to start).
	 */
	void *(*create)(const struct pg_push_config *cfg, char *err, size_t errlen);
	void (*destroy)(void *state);
	/*
	 * Makes the credentials that build() uses ready: signs a provider JWT,
	 * fetches an OAuth2 access token (blocking, through http.h). Cached
	 * ones are kept unless force, or unless they are about to expire.
	 * 0, or -1 with err set (the worker retries the waiting pushes later).
	 */
	int (*authorize)(void *state, bool force, int64_t now_ms, char *err, size_t errlen);
	/*
	 * Builds the request for job into *req (zeroed by the caller). 0, or -1
	 * with err set: the push cannot be built (it fails for good).
	 */
	int (*build)(void *state, const struct pg_push_job *job, struct pg_push_request *req,
	             char *err, size_t errlen);
	/*
	 * Reads an HTTP answer (resp->transport_error == 0; the worker handles
	 * transport errors itself). Fills res->outcome, reason, detail and
	 * retry_after_ms (-1 when the answer gave none), or returns
	 * PG_PUSH_VERDICT_REAUTHORIZE.
	 */
	enum pg_push_verdict (*classify)(void *state, const struct pg_push_job *job,
	                                 const struct pg_push_response *resp,
	                                 struct pg_push_result *res);
};

extern const struct pg_push_provider_ops pg_push_apns;
extern const struct pg_push_provider_ops pg_push_fcm;
extern const struct pg_push_provider_ops pg_push_huawei;
extern const struct pg_push_provider_ops pg_push_xiaomi;
extern const struct pg_push_provider_ops pg_push_webhook;

/* The provider of a platform. */
const struct pg_push_provider_ops *pg_push_provider(enum pg_push_platform p);

/*
 * Shared by providers: Retry-After (delta-seconds or an HTTP date) in ms
 * from now_ms, or -1 if absent or unreadable.
 */
int64_t pg_push_retry_after_ms(const char *value, int64_t now_ms);

/*
 * Shared by providers (provider.c): small helpers every backend needs.
 * Pure functions unless said otherwise; any thread.
 */

/* Fills res's outcome, reason and detail (detail may be NULL; it is cut to
 * fit and its control characters become spaces, for the log). */
void pg_push_result_set(struct pg_push_result *res, enum pg_push_outcome outcome,
                        const char *reason, const char *detail);

/* The wall clock in ms since the epoch (JWT claims, Retry-After dates). */
int64_t pg_push_wall_ms(void);

/*
 * A stable 64-bit hash (FNV-1a) of s: collapse ids and notify ids derived
 * from a notification type must not change across restarts or versions.
 */
uint64_t pg_push_hash(const char *s);

/*
 * The whole file at path, malloc'd and NUL-terminated (*len without the
 * NUL), at most max bytes; NULL with err set ("<path>: <why>"). The caller
 * frees it (and cleanses it first if it holds a secret).
 */
char *pg_push_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen);

/*
 * An application/x-www-form-urlencoded body from npairs name/value pairs
 * (pairs[2i] = name, pairs[2i+1] = value; a NULL value skips the pair),
 * malloc'd and NUL-terminated; NULL if out of memory. The caller frees it.
 */
char *pg_push_form_encode(const char *const *pairs, size_t npairs);

/*
 * JSON payloads with a size limit (APNs, FCM: 4096 bytes). make builds the
 * payload for a title and body; pg_push_json_fit first replaces invalid
 * UTF-8 in title and body (U+FFFD), then shortens the body, and once it is
 * empty the title, on character boundaries, until the printed JSON is at
 * most limit bytes. Returns the printed JSON (malloc'd, *len bytes, freed
 * with free()), or NULL with err set (out of memory, or too long even
 * without title and body).
 */
struct cJSON;
typedef struct cJSON *(*pg_push_json_make_fn)(void *ctx, const char *title, const char *body);
char *pg_push_json_fit(pg_push_json_make_fn make, void *ctx, const char *title, const char *body,
                       size_t limit, size_t *len, char *err, size_t errlen);

/* Adds a number as an exact integer (cJSON's numbers are doubles: seq is 63 bits). */
int pg_push_json_add_u64(struct cJSON *obj, const char *name, uint64_t v);
/* Adds a number as a decimal string (FCM's data values are strings). */
int pg_push_json_add_u64_string(struct cJSON *obj, const char *name, uint64_t v);

/*
 * A malloc'd copy of the base URL url (def when url is NULL or empty)
 * without trailing slashes, so that the provider's path can be appended;
 * NULL if out of memory.
 */
char *pg_push_base_url(const char *url, const char *def);

/* s percent-encoded for a URL path segment (RFC 3986 unreserved kept), malloc'd;
 * NULL if out of memory. */
char *pg_push_url_escape(const char *s);

/* "chat" or "notify". */
const char *pg_push_kind_name(enum pg_push_kind kind);

/*
 * The custom data {"seq","from","kind","type","count","badge"} as JSON
 * text (malloc'd, freed with cJSON_free / free; NULL if out of memory), for
 * the providers that carry it as one string (Huawei's data, MiPush's
 * payload; MiPush has no badge field, Push Kit's badge stops at 99).
 */
char *pg_push_data_json(const struct pg_push_job *job);

#endif
