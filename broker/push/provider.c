/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the providers share (provider.h): the request they fill, the table
 * from platform to backend, Retry-After, and the helpers every backend
 * needs (form encoding, exact integers in JSON, payloads shortened to a
 * size limit). No state: every function may run on any thread; requests
 * and payloads belong to the caller that receives them.
 */
#include "provider.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "utf8.h"

/* Retry-After beyond this is read as this: a provider's day-long ban is
 * still a "later", and the arithmetic stays far from overflow. */
#define RETRY_AFTER_MAX_S (7 * 86400)

void pg_push_request_clear(struct pg_push_request *req)
{
	size_t i;

	free(req->url);
	for (i = 0; i < req->nheaders; i++) {
		free(req->headers[i]);
	}
	free(req->body);
	memset(req, 0, sizeof(*req));
}

int pg_push_request_header(struct pg_push_request *req, const char *fmt, ...)
{
	va_list ap;
	char *line;
	int n;

	if (req->nheaders >= PG_PUSH_MAX_HEADERS) {
		return -1;
	}
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (line = malloc((size_t)n + 1)) == NULL) {
		return -1;
	}
	va_start(ap, fmt);
	vsnprintf(line, (size_t)n + 1, fmt, ap);
	va_end(ap);
	/* A value from outside (a token, an app id) must not start a header of
	 * its own: a line with CR or LF is refused, not sent. */
	if (strpbrk(line, "\r\n") != NULL) {
		free(line);
		return -1;
	}
	req->headers[req->nheaders++] = line;
	return 0;
}

const struct pg_push_provider_ops *pg_push_provider(enum pg_push_platform p)
{
	switch (p) {
	case PG_PUSH_APNS:
		return &pg_push_apns;
	case PG_PUSH_FCM:
		return &pg_push_fcm;
	case PG_PUSH_HUAWEI:
		return &pg_push_huawei;
	case PG_PUSH_XIAOMI:
		return &pg_push_xiaomi;
	case PG_PUSH_WEBHOOK:
		return &pg_push_webhook;
	default:
		return NULL;
	}
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* n digits at *p as a number (advancing p), or -1. */
static int read_digits(const char **p, int n)
{
	int v = 0;

	while (n-- > 0) {
		if (**p < '0' || **p > '9') {
			return -1;
		}
		v = v * 10 + (**p - '0');
		(*p)++;
	}
	return v;
}

/*
 * An IMF-fixdate (RFC 9110 §5.6.7: "Sun, 06 Nov 1994 08:49:37 GMT") in ms
 * since the epoch, or -1. Parsed by hand: strptime's %a/%b follow the
 * locale, and the broker's locale is not ours to choose.
 */
static int64_t imf_fixdate_ms(const char *s)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	static const char days[] = "MonTueWedThuFriSatSun";
	const char *p = s;
	int day, mon = -1, year, hh, mm, ss, i;

	for (i = 0; i < 7 && strncmp(p, days + 3 * i, 3) != 0; i++) {
	}
	if (i == 7 || strncmp(p + 3, ", ", 2) != 0) {
		return -1;
	}
	p += 5;
	if ((day = read_digits(&p, 2)) < 1 || day > 31 || *p++ != ' ') {
		return -1;
	}
	for (i = 0; i < 12; i++) {
		if (strncmp(p, months + 3 * i, 3) == 0) {
			mon = i + 1;
		}
	}
	if (mon < 0 || p[3] != ' ') {
		return -1;
	}
	p += 4;
	if ((year = read_digits(&p, 4)) < 0 || *p++ != ' ' || (hh = read_digits(&p, 2)) < 0 ||
	    hh > 23 || *p++ != ':' || (mm = read_digits(&p, 2)) < 0 || mm > 59 || *p++ != ':' ||
	    (ss = read_digits(&p, 2)) < 0 || ss > 60 || strcmp(p, " GMT") != 0) {
		return -1;
	}
	return ((days_from_civil(year, (unsigned)mon, (unsigned)day) * 24 + hh) * 60 + mm) * 60000 +
	       (int64_t)ss * 1000;
}

int64_t pg_push_retry_after_ms(const char *value, int64_t now_ms)
{
	const char *p;
	int64_t at;

	if (value == NULL) {
		return -1;
	}
	while (*value == ' ' || *value == '\t') {
		value++;
	}
	if (*value >= '0' && *value <= '9') {
		int64_t secs = 0;
		for (p = value; *p >= '0' && *p <= '9'; p++) {
			if (secs < RETRY_AFTER_MAX_S) {
				secs = secs * 10 + (*p - '0');
			}
		}
		while (*p == ' ' || *p == '\t') {
			p++;
		}
		if (*p != '\0') {
			return -1;
		}
		return (secs < RETRY_AFTER_MAX_S ? secs : RETRY_AFTER_MAX_S) * 1000;
	}
	at = imf_fixdate_ms(value);
	if (at < 0) {
		return -1;
	}
	/* a date already past means "now" */
	if (at <= now_ms) {
		return 0;
	}
	return at - now_ms < (int64_t)RETRY_AFTER_MAX_S * 1000 ? at - now_ms
	                                                       : (int64_t)RETRY_AFTER_MAX_S * 1000;
}

void pg_push_result_set(struct pg_push_result *res, enum pg_push_outcome outcome,
                        const char *reason, const char *detail)
{
	size_t i;

	size_t n;

	res->outcome = outcome;
	snprintf(res->reason, sizeof(res->reason), "%s", reason ? reason : "");
	/* the detail is the provider's words and goes into one log line: cut
	 * on a character boundary, control characters as spaces */
	detail = detail ? detail : "";
	n = pg_push_utf8_prefix_bytes(detail, strlen(detail), sizeof(res->detail) - 1);
	memcpy(res->detail, detail, n);
	res->detail[n] = '\0';
	for (i = 0; i < n; i++) {
		if ((unsigned char)res->detail[i] < 0x20 || res->detail[i] == 0x7f) {
			res->detail[i] = ' ';
		}
	}
}

int64_t pg_push_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t pg_push_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

char *pg_push_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	FILE *f;
	char *buf = NULL;
	size_t n;

	f = fopen(path, "rb");
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	n = fread(buf, 1, (size_t)st.st_size, f);
	if (n != (size_t)st.st_size || ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[n] = '\0';
	*len = n;
out:
	fclose(f);
	return buf;
}

/* Appends s percent-encoded (RFC 3986 unreserved kept, space as %20) at out. */
static size_t form_escape(char *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	return o;
}

char *pg_push_url_escape(const char *s)
{
	char *out = malloc(3 * strlen(s) + 1);

	if (out != NULL) {
		out[form_escape(out, s)] = '\0';
	}
	return out;
}

char *pg_push_base_url(const char *url, const char *def)
{
	const char *u = url && *url ? url : def;
	size_t n = strlen(u);
	char *out;

	while (n > 0 && u[n - 1] == '/') {
		n--;
	}
	out = malloc(n + 1);
	if (out != NULL) {
		memcpy(out, u, n);
		out[n] = '\0';
	}
	return out;
}

char *pg_push_form_encode(const char *const *pairs, size_t npairs)
{
	size_t cap = 1, i, o = 0;
	char *out;

	for (i = 0; i < npairs; i++) {
		if (pairs[2 * i + 1] != NULL) {
			cap += 3 * (strlen(pairs[2 * i]) + strlen(pairs[2 * i + 1])) + 2;
		}
	}
	out = malloc(cap);
	if (out == NULL) {
		return NULL;
	}
	for (i = 0; i < npairs; i++) {
		if (pairs[2 * i + 1] == NULL) {
			continue;
		}
		if (o > 0) {
			out[o++] = '&';
		}
		o += form_escape(out + o, pairs[2 * i]);
		out[o++] = '=';
		o += form_escape(out + o, pairs[2 * i + 1]);
	}
	out[o] = '\0';
	return out;
}

/* Bytes cJSON prints for the character at s (it escapes ASCII only). */
static size_t json_width(const char *s, size_t len, size_t *clen)
{
	unsigned char c = (unsigned char)*s;

	*clen = pg_push_utf8_char_len(s, len);
	if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' ||
	    c == '\t') {
		return 2;
	}
	return c < 0x20 ? 6 : *clen;
}

/*
 * The length of the longest prefix of the NUL-terminated field, on a
 * character boundary, whose printed width is at least excess less than
 * the whole field's (0 if no prefix is).
 */
static size_t json_cut(const char *field, size_t excess)
{
	size_t len = strlen(field), total = 0, i, clen, w, keep;

	for (i = 0; i < len; i += clen) {
		total += json_width(field + i, len - i, &clen);
	}
	if (total <= excess) {
		return 0;
	}
	keep = total - excess;
	for (i = 0, w = 0; i < len; i += clen) {
		size_t cw = json_width(field + i, len - i, &clen);
		if (w + cw > keep) {
			break;
		}
		w += cw;
	}
	return i;
}

char *pg_push_json_fit(pg_push_json_make_fn make, void *ctx, const char *title, const char *body,
                       size_t limit, size_t *len, char *err, size_t errlen)
{
	char *t = pg_push_utf8_clean(title, strlen(title), NULL);
	char *b = pg_push_utf8_clean(body, strlen(body), NULL);
	char *out = NULL;

	if (t == NULL || b == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	/*
	 * Each round cuts the body (once it is empty, the title) by the
	 * fewest whole characters whose printed width covers the excess, so
	 * the result is as long as fits. A maker that prints each field once
	 * fits after the body's round, or the body's and the title's; one
	 * that prints a field twice takes more rounds, each cutting at least
	 * one character, so the loop ends.
	 */
	for (;;) {
		cJSON *json = make(ctx, t, b);
		size_t n, excess;
		char *field;

		if (json == NULL) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		out = cJSON_PrintUnformatted(json);
		cJSON_Delete(json);
		if (out == NULL) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		n = strlen(out);
		if (n <= limit) {
			*len = n;
			goto out;
		}
		free(out);
		out = NULL;
		field = *b ? b : *t ? t : NULL;
		if (field == NULL) {
			snprintf(err, errlen,
			         "payload is %zu bytes without title and body (limit %zu)", n,
			         limit);
			goto out;
		}
		excess = n - limit;
		field[json_cut(field, excess)] = '\0';
	}
out:
	free(t);
	free(b);
	return out;
}

int pg_push_json_add_u64(cJSON *obj, const char *name, uint64_t v)
{
	char num[24];

	snprintf(num, sizeof(num), "%" PRIu64, v);
	return cJSON_AddRawToObject(obj, name, num) ? 0 : -1;
}

int pg_push_json_add_u64_string(cJSON *obj, const char *name, uint64_t v)
{
	char num[24];

	snprintf(num, sizeof(num), "%" PRIu64, v);
	return cJSON_AddStringToObject(obj, name, num) ? 0 : -1;
}

const char *pg_push_kind_name(enum pg_push_kind kind)
{
	return kind == PG_PUSH_KIND_NOTIFY ? "notify" : "chat";
}

/* provider.h */
char *pg_push_data_json(const struct pg_push_job *job)
{
	cJSON *d = cJSON_CreateObject();
	char *text = NULL;

	if (d != NULL && pg_push_json_add_u64(d, "seq", job->seq) == 0 &&
	    cJSON_AddStringToObject(d, "from", job->from) &&
	    cJSON_AddStringToObject(d, "kind", pg_push_kind_name(job->kind)) &&
	    cJSON_AddStringToObject(d, "type", job->type) &&
	    pg_push_json_add_u64(d, "count", job->count) == 0 &&
	    pg_push_json_add_u64(d, "badge", job->badge) == 0) {
		text = cJSON_PrintUnformatted(d);
	}
	cJSON_Delete(d);
	return text;
}
