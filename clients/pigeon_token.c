/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon-token: mint and verify pigeon JWTs (docs/auth.md).
 *
 *   pigeon-token mint   (--secret-file F | --key-file PEM) --sub UID
 *                       [--dev DEVICE] [--role user|service] [--ttl SECONDS]
 *                       [--jti ID] [--nbf UNIX] [--no-iat]
 *   pigeon-token verify (--secret-file F | --public-key-file PEM)...
 *                       [--algs LIST] [--skew SECONDS] [TOKEN | -]
 *
 * mint prints the token; verify prints the claims as JSON and exits 0, or
 * prints why the token is invalid and exits 1. Usage errors exit 2.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "jws.h"
#include "options.h"
#include "token.h"

#define KEYFILE_MAX (1u << 20)

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: pigeon-token mint (--secret-file F | --key-file PEM) --sub UID\n"
	        "                         [--dev DEVICE] [--role user|service] [--ttl SECONDS]\n"
	        "                         [--jti ID] [--nbf UNIX] [--no-iat]\n"
	        "       pigeon-token verify (--secret-file F | --public-key-file PEM)...\n"
	        "                         [--algs LIST] [--skew SECONDS] [TOKEN | -]\n"
	        "\n"
	        "mint signs HS256 with a secret file (its raw bytes), ES256 with a P-256\n"
	        "PEM private key, EdDSA with an Ed25519 one. --ttl defaults to 3600.\n"
	        "verify prints the claims as JSON (exit 0) or the reason the token is\n"
	        "invalid (exit 1); TOKEN '-' or none reads it from standard input.\n");
}

static int die(const char *msg)
{
	fprintf(stderr, "pigeon-token: %s\n", msg);
	return 2;
}

/* The whole file at path (a secret is raw bytes, so its length is returned too). */
static char *read_or_die(const char *path, size_t *len)
{
	char err[512], *buf;

	if (pg_read_file(path, KEYFILE_MAX, &buf, len, err, sizeof(err)) != 0) {
		fprintf(stderr, "pigeon-token: %s\n", err);
		exit(2);
	}
	return buf;
}

enum {
	OPT_SECRET = 1000,
	OPT_KEY,
	OPT_PUBKEY,
	OPT_SUB,
	OPT_DEV,
	OPT_ROLE,
	OPT_TTL,
	OPT_JTI,
	OPT_NBF,
	OPT_NOIAT,
	OPT_ALGS,
	OPT_SKEW,
	OPT_HELP,
};

static const struct option long_opts[] = {
    {"secret-file", required_argument, NULL, OPT_SECRET},
    {"key-file", required_argument, NULL, OPT_KEY},
    {"public-key-file", required_argument, NULL, OPT_PUBKEY},
    {"sub", required_argument, NULL, OPT_SUB},
    {"dev", required_argument, NULL, OPT_DEV},
    {"role", required_argument, NULL, OPT_ROLE},
    {"ttl", required_argument, NULL, OPT_TTL},
    {"jti", required_argument, NULL, OPT_JTI},
    {"nbf", required_argument, NULL, OPT_NBF},
    {"no-iat", no_argument, NULL, OPT_NOIAT},
    {"algs", required_argument, NULL, OPT_ALGS},
    {"skew", required_argument, NULL, OPT_SKEW},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

struct args {
	const char *secret_file, *key_file, *pubkey_files[8], *algs;
	int npubkeys;
	struct pg_claims claims;
	uint64_t ttl, skew;
	bool no_iat;
};

static int parse_args(int argc, char **argv, struct args *a)
{
	char err[256];
	uint64_t v;
	int c;

	a->ttl = 3600;
	a->skew = 30;
	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_SECRET:
			a->secret_file = optarg;
			break;
		case OPT_KEY:
			a->key_file = optarg;
			break;
		case OPT_PUBKEY:
			if (a->npubkeys == 8) {
				return die("at most 8 --public-key-file");
			}
			a->pubkey_files[a->npubkeys++] = optarg;
			break;
		case OPT_SUB:
		case OPT_DEV:
			if (!pg_ident_valid_str(optarg)) {
				return die("--sub and --dev take 1-64 characters of A-Za-z0-9._-");
			}
			strcpy(c == OPT_SUB ? a->claims.sub : a->claims.dev, optarg);
			break;
		case OPT_ROLE:
			if (pg_role_parse(optarg, &a->claims.role) != 0) {
				return die("--role is user or service");
			}
			break;
		case OPT_TTL:
		case OPT_NBF:
		case OPT_SKEW:
			if (pg_opt_uint(optarg, 0, 253402300799ULL, &v, err, sizeof(err)) != 0) {
				return die(err);
			}
			if (c == OPT_TTL) {
				a->ttl = v;
			} else if (c == OPT_SKEW) {
				a->skew = v;
			} else {
				a->claims.nbf = (int64_t)v;
				a->claims.has_nbf = true;
			}
			break;
		case OPT_JTI:
			if (strlen(optarg) == 0 || strlen(optarg) > PG_JTI_MAX) {
				return die("--jti takes 1-128 characters");
			}
			strcpy(a->claims.jti, optarg);
			break;
		case OPT_NOIAT:
			a->no_iat = true;
			break;
		case OPT_ALGS:
			a->algs = optarg;
			break;
		case OPT_HELP:
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
	return 0;
}

static int cmd_mint(struct args *a)
{
	struct pg_signkey *key;
	char err[256], *buf, *tok;
	int64_t now = (int64_t)time(NULL);
	size_t len;

	if (a->claims.sub[0] == '\0') {
		return die("mint needs --sub");
	}
	if ((a->secret_file == NULL) == (a->key_file == NULL)) {
		return die("mint needs exactly one of --secret-file and --key-file");
	}
	buf = read_or_die(a->secret_file ? a->secret_file : a->key_file, &len);
	if (a->secret_file) {
		if (len == 0) {
			free(buf);
			return die("the secret file is empty");
		}
		key = pg_signkey_from_secret((unsigned char *)buf, len);
		snprintf(err, sizeof(err), "cannot use the secret");
	} else {
		key = pg_signkey_from_pem(buf, len, err, sizeof(err));
	}
	free(buf);
	if (key == NULL) {
		return die(err);
	}
	a->claims.has_iat = !a->no_iat;
	a->claims.iat = now;
	a->claims.exp = now + (int64_t)a->ttl;
	tok = pg_token_mint(key, &a->claims);
	pg_signkey_free(key);
	if (tok == NULL) {
		return die("signing failed");
	}
	printf("%s\n", tok);
	free(tok);
	return 0;
}

static void print_claims(const struct pg_claims *c)
{
	cJSON *o = cJSON_CreateObject();
	char *text;

	cJSON_AddStringToObject(o, "alg", pg_alg_name(c->alg));
	cJSON_AddStringToObject(o, "sub", c->sub);
	if (c->dev[0]) {
		cJSON_AddStringToObject(o, "dev", c->dev);
	}
	cJSON_AddStringToObject(o, "role", pg_role_name(c->role));
	if (c->jti[0]) {
		cJSON_AddStringToObject(o, "jti", c->jti);
	}
	if (c->has_iat) {
		cJSON_AddNumberToObject(o, "iat", (double)c->iat);
	}
	if (c->has_nbf) {
		cJSON_AddNumberToObject(o, "nbf", (double)c->nbf);
	}
	cJSON_AddNumberToObject(o, "exp", (double)c->exp);
	text = cJSON_PrintUnformatted(o);
	printf("%s\n", text ? text : "{}");
	cJSON_free(text);
	cJSON_Delete(o);
}

static char *read_token(int argc, char **argv)
{
	static char buf[PG_TOKEN_MAX * 4];
	size_t n;

	if (optind < argc && strcmp(argv[optind], "-") != 0) {
		return argv[optind];
	}
	n = fread(buf, 1, sizeof(buf) - 1, stdin);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) {
		buf[--n] = '\0';
	}
	return buf;
}

static int cmd_verify(struct args *a, int argc, char **argv)
{
	struct pg_keyring *kr = pg_keyring_new();
	struct pg_token_policy policy = {.skew_s = (int64_t)a->skew};
	struct pg_claims claims;
	enum pg_token_status st;
	char err[512], *buf, *tok;
	const char *detail;
	size_t len;
	int i;

	if (kr == NULL) {
		return die("out of memory");
	}
	if (a->secret_file) {
		buf = read_or_die(a->secret_file, &len);
		if (pg_keyring_set_secret(kr, (unsigned char *)buf, len) != 0) {
			free(buf);
			pg_keyring_free(kr);
			return die("the secret file is empty");
		}
		free(buf);
	}
	for (i = 0; i < a->npubkeys; i++) {
		buf = read_or_die(a->pubkey_files[i], &len);
		if (pg_keyring_add_public_pem(kr, buf, len, err, sizeof(err)) < 0) {
			free(buf);
			pg_keyring_free(kr);
			return die(err);
		}
		free(buf);
	}
	policy.algs = pg_keyring_algs(kr);
	if (policy.algs == 0) {
		pg_keyring_free(kr);
		return die("verify needs --secret-file or --public-key-file");
	}
	if (a->algs && pg_alg_parse_list(a->algs, &policy.algs, err, sizeof(err)) != 0) {
		pg_keyring_free(kr);
		return die(err);
	}
	tok = read_token(argc, argv);
	st = pg_token_verify(kr, &policy, tok, strlen(tok), (int64_t)time(NULL), &claims, &detail);
	pg_keyring_free(kr);
	if (st != PG_TOKEN_OK) {
		printf("invalid: %s: %s\n", pg_token_status_name(st), detail);
		return 1;
	}
	print_claims(&claims);
	return 0;
}

int main(int argc, char **argv)
{
	struct args a;
	const char *cmd;
	int rc;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	cmd = argv[1];
	memset(&a, 0, sizeof(a));
	rc = parse_args(argc - 1, argv + 1, &a);
	if (rc != 0) {
		return rc;
	}
	optind++; /* parse_args saw argv + 1 */
	if (strcmp(cmd, "mint") == 0) {
		return cmd_mint(&a);
	}
	if (strcmp(cmd, "verify") == 0) {
		return cmd_verify(&a, argc, argv);
	}
	usage(stderr);
	return 2;
}
