/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon-exporter's options (opts.h), in the tools' conventions
 * (clients/pigeon_send.c): getopt_long, -h/-p for the broker as in every
 * pigeon tool (so --help is long only), "pigeon-exporter: <reason> (try
 * pigeon-exporter --help)" and exit status 2 on a usage error.
 */
#include "opts.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ident.h"
#include "options.h"

#define DEFAULT_LISTEN "127.0.0.1:9883"
#define DEFAULT_UID "pigeon-exporter"
#define DEFAULT_DEVICE "exporter"
/* --check logs in as another device, so that it never kicks a running exporter off. */
#define DEFAULT_CHECK_DEVICE "exporter-check"

static void usage(FILE *f)
{
	fputs(
	    "usage: pigeon-exporter [options]\n"
	    "Serves the broker's $SYS counters (Mosquitto's and pigeon's) as Prometheus\n"
	    "metrics over HTTP; it reads them as a service subscribed to $SYS/#.\n"
	    "\n"
	    "  -h, --host HOST          broker host ($PIGEON_HOST, else 127.0.0.1)\n"
	    "  -p, --port PORT          broker port ($PIGEON_PORT, else 1883)\n"
	    "      --cafile F           TLS to the broker, trusting the CA certificate(s) in F\n"
	    "      --listen ADDR:PORT   the HTTP endpoint (default " DEFAULT_LISTEN "; [::1]:PORT\n"
	    "                           for IPv6; port 0 takes a free one, printed on stderr)\n"
	    "      --uid UID            login uid (default: the token's sub, else " DEFAULT_UID
	    ")\n"
	    "      --device DEV         login device (default: the token's dev, "
	    "else " DEFAULT_DEVICE ",\n"
	    "                           " DEFAULT_CHECK_DEVICE " with --check)\n"
	    "      --token T            a service's JWT (else --token-file, else $PIGEON_TOKEN)\n"
	    "      --token-file F       the JWT from the first line of F, re-read at every "
	    "connect\n"
	    "      --secret-file F      mint an HS256 service token (1 h) for UID:DEV with F, the\n"
	    "                           broker's plugin_opt_jwt_secret_file, at every connect\n"
	    "      --stale-after S      pigeon_up and liveness need a $SYS message within S\n"
	    "                           seconds (default 30)\n"
	    "      --push-stuck-after S readiness fails when the oldest push has waited more than\n"
	    "                           S seconds (default 300)\n"
	    "      --check live|ready   check once, without HTTP, print one line per check and\n"
	    "                           exit 0 healthy or 1 unhealthy (broker unreachable too)\n"
	    "      --timeout S          how long --check waits for the broker (default 5)\n"
	    "      --list-metrics       print every metric family name it can export, and exit\n"
	    "  -v, --verbose            log each ignored $SYS leaf (once)\n"
	    "      --help               this text\n"
	    "\n"
	    "HTTP (GET and HEAD): /metrics (text format 0.0.4), /health/live and\n"
	    "/health/ready (200 healthy, else 503; one line per check). While the MQTT\n"
	    "session is down or $SYS is stale only the exporter's own metrics are served,\n"
	    "with pigeon_up 0.\n"
	    "\n"
	    "Exit status: 0 stopped by SIGTERM or SIGINT (--check: healthy), 1 a runtime\n"
	    "error (--check: unhealthy), 2 usage error.\n",
	    f);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("pigeon-exporter: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (try pigeon-exporter --help)\n", stderr);
	return 2;
}

/* ADDR:PORT (IPv4) or [ADDR]:PORT (IPv6), numeric only, port 0-65535. */
static int parse_listen(const char *s, struct exp_opts *o)
{
	char host[64], err[128];
	const char *colon, *h = s;
	size_t hlen;
	uint64_t port;

	colon = strrchr(s, ':');
	if (colon == NULL || colon == s) {
		return -1;
	}
	hlen = (size_t)(colon - s);
	if (s[0] == '[') {
		if (hlen < 3 || s[hlen - 1] != ']') {
			return -1;
		}
		h = s + 1;
		hlen -= 2;
	}
	if (hlen >= sizeof(host) ||
	    pg_opt_uint(colon + 1, 0, 65535, &port, err, sizeof(err)) != 0) {
		return -1;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	memset(&o->listen, 0, sizeof(o->listen));
	if (s[0] != '[') {
		struct sockaddr_in *in = (struct sockaddr_in *)&o->listen;

		if (inet_pton(AF_INET, host, &in->sin_addr) != 1) {
			return -1;
		}
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		o->listen_len = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&o->listen;

		if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) {
			return -1;
		}
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		o->listen_len = sizeof(*in6);
	}
	snprintf(o->listen_text, sizeof(o->listen_text), "%s", s);
	return 0;
}

enum {
	OPT_CAFILE = 256,
	OPT_LISTEN,
	OPT_UID,
	OPT_DEVICE,
	OPT_TOKEN,
	OPT_TOKEN_FILE,
	OPT_SECRET_FILE,
	OPT_STALE_AFTER,
	OPT_PUSH_STUCK,
	OPT_CHECK,
	OPT_TIMEOUT,
	OPT_LIST,
	OPT_HELP,
};

/* The uid and device from a given token's claims, where not given (0, or 2 printed). */
static int identity_from_token(struct exp_opts *o, bool uid_given, bool device_given)
{
	char err[256], sub[EXP_ID_MAX + 1], dev[EXP_ID_MAX + 1], *tok;

	if (pgcli_token_load(o->token.token, o->token.token_file, &tok, err, sizeof(err)) != 0) {
		return usage_error("%s", err);
	}
	if (pgcli_token_claims(tok, sub, sizeof(sub), dev, sizeof(dev), err, sizeof(err)) != 0) {
		free(tok);
		return usage_error("bad token: %s", err);
	}
	free(tok);
	if (!uid_given) {
		if (!pg_ident_valid_str(sub)) {
			return usage_error("%s", "bad token: its sub is not a uid");
		}
		snprintf(o->uid, sizeof(o->uid), "%s", sub);
	}
	if (!device_given && dev[0] != '\0') {
		if (!pg_ident_valid_str(dev)) {
			return usage_error("%s", "bad token: its dev is not a device name");
		}
		snprintf(o->device, sizeof(o->device), "%s", dev);
	}
	return 0;
}

int exp_opts_parse(int argc, char **argv, struct exp_opts *o)
{
	static const struct option opts[] = {
	    {"host", required_argument, NULL, 'h'},
	    {"port", required_argument, NULL, 'p'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"cafile", required_argument, NULL, OPT_CAFILE},
	    {"listen", required_argument, NULL, OPT_LISTEN},
	    {"uid", required_argument, NULL, OPT_UID},
	    {"device", required_argument, NULL, OPT_DEVICE},
	    {"token", required_argument, NULL, OPT_TOKEN},
	    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
	    {"secret-file", required_argument, NULL, OPT_SECRET_FILE},
	    {"stale-after", required_argument, NULL, OPT_STALE_AFTER},
	    {"push-stuck-after", required_argument, NULL, OPT_PUSH_STUCK},
	    {"check", required_argument, NULL, OPT_CHECK},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"list-metrics", no_argument, NULL, OPT_LIST},
	    {"help", no_argument, NULL, OPT_HELP},
	    {NULL, 0, NULL, 0},
	};
	bool uid_given = false, device_given = false, list = false, check = false;
	char err[256];
	uint64_t v;
	int c, sources;

	memset(o, 0, sizeof(*o));
	pgcli_broker_defaults(&o->broker);
	parse_listen(DEFAULT_LISTEN, o);
	snprintf(o->uid, sizeof(o->uid), "%s", DEFAULT_UID);
	o->limits.stale_after_s = 30;
	o->limits.push_stuck_after_s = 300;
	o->timeout_s = 5;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h:p:v", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			if (optarg[0] == '\0') {
				return usage_error("%s", "bad --host '' (a host name or address)");
			}
			o->broker.host = optarg;
			break;
		case 'p':
			if (pgcli_parse_port(optarg, &o->broker.port, err, sizeof(err)) != 0) {
				return usage_error("%s", err);
			}
			break;
		case 'v':
			o->verbose = true;
			break;
		case OPT_CAFILE:
			o->cafile = optarg;
			break;
		case OPT_LISTEN:
			if (parse_listen(optarg, o) != 0) {
				return usage_error(
				    "bad --listen '%s' (ADDR:PORT with a numeric address, "
				    "e.g. 127.0.0.1:9883 or [::1]:9883)",
				    optarg);
			}
			break;
		case OPT_UID:
		case OPT_DEVICE:
			if (!pg_ident_valid_str(optarg)) {
				return usage_error("bad %s '%s' (1 to 64 of A-Za-z0-9._-)",
				                   c == OPT_UID ? "--uid" : "--device", optarg);
			}
			snprintf(c == OPT_UID ? o->uid : o->device, EXP_ID_MAX + 1, "%s", optarg);
			*(c == OPT_UID ? &uid_given : &device_given) = true;
			break;
		case OPT_TOKEN:
			o->token.token = optarg;
			break;
		case OPT_TOKEN_FILE:
			o->token.token_file = optarg;
			break;
		case OPT_SECRET_FILE:
			o->token.secret_file = optarg;
			break;
		case OPT_STALE_AFTER:
		case OPT_TIMEOUT:
			if (pg_opt_uint(optarg, 1, 86400, &v, err, sizeof(err)) != 0) {
				return usage_error("bad %s '%s' (1 to 86400 seconds)",
				                   c == OPT_TIMEOUT ? "--timeout" : "--stale-after",
				                   optarg);
			}
			*(c == OPT_TIMEOUT ? &o->timeout_s : &o->limits.stale_after_s) = (double)v;
			break;
		case OPT_PUSH_STUCK:
			if (pg_opt_uint(optarg, 0, 315360000, &v, err, sizeof(err)) != 0) {
				return usage_error("bad --push-stuck-after '%s' (seconds)", optarg);
			}
			o->limits.push_stuck_after_s = v;
			break;
		case OPT_CHECK:
			if (strcmp(optarg, "live") == 0) {
				o->check = EXP_CHECK_LIVE;
			} else if (strcmp(optarg, "ready") == 0) {
				o->check = EXP_CHECK_READY;
			} else {
				return usage_error("bad --check '%s' (live or ready)", optarg);
			}
			check = true;
			break;
		case OPT_LIST:
			list = true;
			break;
		case OPT_HELP:
			usage(stdout);
			return 1;
		case ':':
			return usage_error("%s needs a value", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc) {
		return usage_error("unexpected argument '%s'", argv[optind]);
	}
	if (list && check) {
		return usage_error("%s", "give one of --check and --list-metrics");
	}
	o->mode = list ? EXP_MODE_LIST : check ? EXP_MODE_CHECK : EXP_MODE_SERVE;
	if (o->mode == EXP_MODE_LIST) {
		return 0;
	}
	if (!device_given) {
		snprintf(o->device, sizeof(o->device), "%s",
		         check ? DEFAULT_CHECK_DEVICE : DEFAULT_DEVICE);
	}
	sources = (o->token.token != NULL) + (o->token.token_file != NULL) +
	          (o->token.secret_file != NULL);
	if (sources > 1) {
		return usage_error("%s", "give one of --token, --token-file and --secret-file");
	}
	if (sources == 0) {
		const char *env = getenv("PIGEON_TOKEN");

		if (env == NULL || env[0] == '\0') {
			return usage_error("%s", "no token: give --token, --token-file or "
			                         "--secret-file, or set PIGEON_TOKEN");
		}
	}
	o->token.uid = o->uid;
	o->token.device = o->device;
	if (o->token.secret_file == NULL) {
		return identity_from_token(o, uid_given, device_given);
	}
	return 0;
}

void exp_opts_client_id(const struct exp_opts *o, char *buf, size_t len)
{
	snprintf(buf, len, "%s:%s", o->uid, o->device);
}
