/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JWT verification and minting.
 *
 * Order of checks on verify: size, shape (three base64url parts), header
 * JSON and algorithm, signature over "header.payload", and only then the
 * claims: nothing in an unauthenticated payload is interpreted.
 */
#include "token.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "b64url.h"

static const char *const token_status_names[] = {
    [PG_TOKEN_OK] = "ok",
    [PG_TOKEN_MALFORMED] = "malformed",
    [PG_TOKEN_ALG_REFUSED] = "algorithm refused",
    [PG_TOKEN_BAD_SIGNATURE] = "bad signature",
    [PG_TOKEN_EXPIRED] = "expired",
    [PG_TOKEN_NOT_YET_VALID] = "not yet valid",
    [PG_TOKEN_BAD_CLAIMS] = "bad claims",
};

const char *pg_token_status_name(enum pg_token_status status)
{
	if ((unsigned)status < sizeof(token_status_names) / sizeof(token_status_names[0])) {
		return token_status_names[status];
	}
	return "unknown";
}

/* Decodes a base64url part and parses it as a JSON object; NULL if not. */
static cJSON *token_json_part(const char *part, size_t len)
{
	unsigned char buf[PG_B64URL_DECODED_MAX(PG_TOKEN_MAX)];
	const char *end = NULL;
	size_t n;
	cJSON *json;

	if (pg_b64url_decode(part, len, buf, sizeof(buf), &n) != 0) {
		return NULL;
	}
	json = cJSON_ParseWithLengthOpts((const char *)buf, n, &end, false);
	if (json == NULL) {
		return NULL;
	}
	/* cJSON stops after the first value: anything but whitespace after it is not JSON. */
	while (end < (const char *)buf + n &&
	       (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')) {
		end++;
	}
	if (!cJSON_IsObject(json) || end != (const char *)buf + n) {
		cJSON_Delete(json);
		return NULL;
	}
	return json;
}

/* Reads a NumericDate claim. 1: present and valid, 0: absent, -1: invalid. */
static int token_numeric_date(const cJSON *claims, const char *name, int64_t *out)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(claims, name);
	double v;

	if (item == NULL) {
		return 0;
	}
	if (!cJSON_IsNumber(item)) {
		return -1;
	}
	v = item->valuedouble;
	if (!isfinite(v) || v < 0 || v > 253402300799.0 /* year 9999 */) {
		return -1;
	}
	*out = (int64_t)floor(v);
	return 1;
}

/* Copies an optional string claim that must be an identifier. */
static int token_ident_claim(const cJSON *claims, const char *name, char *dst, bool required)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(claims, name);

	dst[0] = '\0';
	if (item == NULL) {
		return required ? -1 : 0;
	}
	if (!cJSON_IsString(item) || !pg_ident_valid_str(item->valuestring)) {
		return -1;
	}
	strcpy(dst, item->valuestring);
	return 0;
}

static enum pg_token_status token_check_claims(const cJSON *json,
                                               const struct pg_token_policy *policy, int64_t now_s,
                                               struct pg_claims *c, const char **detail)
{
	const cJSON *item;
	int r;

	if (cJSON_GetObjectItemCaseSensitive(json, "sub") == NULL) {
		*detail = "sub claim missing";
		return PG_TOKEN_BAD_CLAIMS;
	}
	if (token_ident_claim(json, "sub", c->sub, true) != 0) {
		*detail = "sub is not a valid uid (1-64 of A-Za-z0-9._-)";
		return PG_TOKEN_BAD_CLAIMS;
	}
	if (token_ident_claim(json, "dev", c->dev, false) != 0) {
		*detail = "dev is not a valid device id (1-64 of A-Za-z0-9._-)";
		return PG_TOKEN_BAD_CLAIMS;
	}
	r = token_numeric_date(json, "exp", &c->exp);
	if (r == 0) {
		*detail = "exp claim missing";
		return PG_TOKEN_BAD_CLAIMS;
	}
	if (r < 0) {
		*detail = "exp is not a NumericDate";
		return PG_TOKEN_BAD_CLAIMS;
	}
	r = token_numeric_date(json, "nbf", &c->nbf);
	if (r < 0) {
		*detail = "nbf is not a NumericDate";
		return PG_TOKEN_BAD_CLAIMS;
	}
	c->has_nbf = r == 1;
	r = token_numeric_date(json, "iat", &c->iat);
	if (r < 0) {
		*detail = "iat is not a NumericDate";
		return PG_TOKEN_BAD_CLAIMS;
	}
	c->has_iat = r == 1;
	c->role = PG_ROLE_USER;
	item = cJSON_GetObjectItemCaseSensitive(json, "role");
	if (item != NULL &&
	    (!cJSON_IsString(item) || pg_role_parse(item->valuestring, &c->role) != 0)) {
		*detail = "role is neither \"user\" nor \"service\"";
		return PG_TOKEN_BAD_CLAIMS;
	}
	item = cJSON_GetObjectItemCaseSensitive(json, "jti");
	if (item != NULL) {
		if (!cJSON_IsString(item) || item->valuestring[0] == '\0' ||
		    strlen(item->valuestring) > PG_JTI_MAX) {
			*detail = "jti is not a string of 1-128 characters";
			return PG_TOKEN_BAD_CLAIMS;
		}
		strcpy(c->jti, item->valuestring);
	}
	if (now_s > c->exp + policy->skew_s) {
		*detail = "token expired (exp is in the past)";
		return PG_TOKEN_EXPIRED;
	}
	if (c->has_nbf && c->nbf > now_s + policy->skew_s) {
		*detail = "token not valid yet (nbf is in the future)";
		return PG_TOKEN_NOT_YET_VALID;
	}
	if (c->has_iat && c->iat > now_s + policy->skew_s) {
		*detail = "token issued in the future (iat)";
		return PG_TOKEN_NOT_YET_VALID;
	}
	return PG_TOKEN_OK;
}

/* Checks the JOSE header; sets *alg to the algorithm it names. */
static enum pg_token_status token_check_header(const cJSON *hdr,
                                               const struct pg_token_policy *policy, unsigned *alg,
                                               const char **detail)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(hdr, "alg");

	if (!cJSON_IsString(item)) {
		*detail = "header has no alg";
		return PG_TOKEN_MALFORMED;
	}
	if (strcmp(item->valuestring, "none") == 0) {
		*detail = "alg \"none\" is refused";
		return PG_TOKEN_ALG_REFUSED;
	}
	*alg = pg_alg_from_name(item->valuestring, strlen(item->valuestring));
	if (*alg == 0) {
		*detail = "alg is not one pigeon knows (HS256, ES256, EdDSA)";
		return PG_TOKEN_ALG_REFUSED;
	}
	if ((policy->algs & *alg) == 0) {
		*detail = "alg is not among the configured jwt_algs";
		return PG_TOKEN_ALG_REFUSED;
	}
	if (cJSON_GetObjectItemCaseSensitive(hdr, "crit") != NULL) {
		*detail = "header has crit extensions, none is supported";
		return PG_TOKEN_MALFORMED;
	}
	return PG_TOKEN_OK;
}

enum pg_token_status pg_token_verify(const struct pg_keyring *kr,
                                     const struct pg_token_policy *policy, const char *token,
                                     size_t len, int64_t now_s, struct pg_claims *claims,
                                     const char **detail)
{
	unsigned char sig[PG_B64URL_DECODED_MAX(PG_TOKEN_MAX)];
	const char *dot1, *dot2, *dummy;
	cJSON *hdr = NULL, *payload = NULL;
	enum pg_token_status st;
	size_t siglen;
	unsigned alg = 0;
	int vr;

	if (detail == NULL) {
		detail = &dummy;
	}
	memset(claims, 0, sizeof(*claims));
	if (token == NULL || len == 0) {
		*detail = "no token (the MQTT password carries the token)";
		return PG_TOKEN_MALFORMED;
	}
	if (len > PG_TOKEN_MAX) {
		*detail = "token longer than 4096 bytes";
		return PG_TOKEN_MALFORMED;
	}
	dot1 = memchr(token, '.', len);
	dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
	if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL) {
		*detail = "not a compact JWS (header.payload.signature)";
		return PG_TOKEN_MALFORMED;
	}
	hdr = token_json_part(token, (size_t)(dot1 - token));
	if (hdr == NULL) {
		*detail = "header is not base64url JSON";
		st = PG_TOKEN_MALFORMED;
		goto out;
	}
	st = token_check_header(hdr, policy, &alg, detail);
	if (st != PG_TOKEN_OK) {
		goto out;
	}
	if (pg_b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), sig, sizeof(sig),
	                     &siglen) != 0) {
		*detail = "signature is not base64url";
		st = PG_TOKEN_MALFORMED;
		goto out;
	}
	vr = pg_jws_verify(kr, alg, (const unsigned char *)token, (size_t)(dot2 - token), sig,
	                   siglen);
	if (vr == -2) {
		*detail = "no key configured for the token's alg";
		st = PG_TOKEN_ALG_REFUSED;
		goto out;
	}
	if (vr != 0) {
		*detail = "signature does not verify";
		st = PG_TOKEN_BAD_SIGNATURE;
		goto out;
	}
	payload = token_json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	if (payload == NULL) {
		*detail = "claims are not a base64url JSON object";
		st = PG_TOKEN_MALFORMED;
		goto out;
	}
	st = token_check_claims(payload, policy, now_s, claims, detail);
	claims->alg = alg;
out:
	cJSON_Delete(hdr);
	cJSON_Delete(payload);
	if (st == PG_TOKEN_OK) {
		*detail = "ok";
	}
	return st;
}

/* base64url of a JSON object's compact text, appended at out (cap bytes). */
static int token_append_json(const cJSON *json, char *out, size_t cap)
{
	char *text = cJSON_PrintUnformatted(json);
	int n;

	if (text == NULL) {
		return -1;
	}
	n = pg_b64url_encode((const unsigned char *)text, strlen(text), out, cap);
	cJSON_free(text);
	return n;
}

char *pg_token_mint(const struct pg_signkey *key, const struct pg_claims *c)
{
	unsigned char sig[PG_JWS_SIG_MAX];
	cJSON *hdr = cJSON_CreateObject(), *pl = cJSON_CreateObject();
	char *tok = NULL;
	size_t siglen, cap = PG_TOKEN_MAX * 2, used;
	int n;

	if (hdr == NULL || pl == NULL) {
		goto fail;
	}
	cJSON_AddStringToObject(hdr, "alg", pg_alg_name(pg_signkey_alg(key)));
	cJSON_AddStringToObject(hdr, "typ", "JWT");
	cJSON_AddStringToObject(pl, "sub", c->sub);
	if (c->dev[0]) {
		cJSON_AddStringToObject(pl, "dev", c->dev);
	}
	if (c->role == PG_ROLE_SERVICE) {
		cJSON_AddStringToObject(pl, "role", "service");
	}
	if (c->jti[0]) {
		cJSON_AddStringToObject(pl, "jti", c->jti);
	}
	if (c->has_iat) {
		cJSON_AddNumberToObject(pl, "iat", (double)c->iat);
	}
	if (c->has_nbf) {
		cJSON_AddNumberToObject(pl, "nbf", (double)c->nbf);
	}
	cJSON_AddNumberToObject(pl, "exp", (double)c->exp);

	tok = malloc(cap);
	if (tok == NULL || (n = token_append_json(hdr, tok, cap)) < 0) {
		goto fail;
	}
	used = (size_t)n;
	tok[used++] = '.';
	if ((n = token_append_json(pl, tok + used, cap - used)) < 0) {
		goto fail;
	}
	used += (size_t)n;
	if (pg_jws_sign(key, (const unsigned char *)tok, used, sig, &siglen) != 0) {
		goto fail;
	}
	tok[used++] = '.';
	if (pg_b64url_encode(sig, siglen, tok + used, cap - used) < 0) {
		goto fail;
	}
	cJSON_Delete(hdr);
	cJSON_Delete(pl);
	return tok;
fail:
	free(tok);
	cJSON_Delete(hdr);
	cJSON_Delete(pl);
	return NULL;
}
