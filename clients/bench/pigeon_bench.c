/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon-bench: load generators and micro-benchmarks for pigeon. Each
 * subcommand measures one thing and prints plain result lines whose first
 * four fields are fixed (what, label, figure, unit), followed by key=value
 * details, so that the scripts in bench/ can parse them with awk:
 *
 *   tokens HS256 412345 verify/s count=824690 seconds=2.000 cpu_s=2.000 ...
 *   connect pigeon 4567 connects/s count=10000 seconds=2.190 p50_us=210 ...
 *
 *   pigeon-bench tokens  [--seconds S]
 *   pigeon-bench connect --port P --count N [--host H]
 *                        [--secret-file F | --key-file PEM | --anonymous]
 *                        [--label NAME] [--time-limit S] [--mqtt 311|5]
 *
 * tokens mints one token per algorithm (HS256, ES256, EdDSA) with a key
 * generated on the spot and verifies it with pg_token_verify on this one
 * thread for S seconds. The figure is verifications per second of this
 * thread's CPU time, i.e. per core, and is not lowered if the thread was
 * preempted; seconds= is the wall time.
 *
 * connect runs N sequential connect -> CONNACK -> disconnect cycles against
 * a broker, each with its own client id "b<i>:bench" and, unless
 * --anonymous, username "b<i>" and a token minted for it beforehand (minting
 * is never inside the timed loop). It uses libmosquitto's synchronous calls,
 * the client of mosquitto_pub. Any refused or failed connect stops the run
 * with exit status 1; so does exceeding --time-limit. cpu_ms= is the CPU
 * time pigeon-bench itself used in the timed loop, so that a script can tell
 * how much of the machine other processes took meanwhile.
 *
 * The other subcommands live next to this file: bench_inbox.c (chat,
 * catchup, notify), bench_push.c (push-load, latency), bench_client.c
 * (client-catchup), and over the connection pool (pool.c: many connections
 * per thread, one epoll loop each) with the latency histogram (hist.c):
 * bench_open.c (open), bench_throughput.c (throughput), bench_idle.c (idle).
 * tokens.c mints the tokens they all use.
 *
 * Every loop is bounded both by a count and by a time limit. Exit status:
 * 0 measured, 1 a failure during the measurement, 2 a usage error.
 * New subcommands go into bench_commands[] at the bottom.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/resource.h>

#include <mosquitto.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "bench.h"
#include "stamp.h"
#include "jws.h"
#include "options.h"
#include "token.h"

#define BENCH_KEYFILE_MAX (1u << 20)
/* Bounds that hold whatever the options say. */
#define BENCH_SECONDS_MAX 600
#define BENCH_CONNECTS_MAX 1000000
#define BENCH_VERIFY_MAX 2000000000ULL
/* How long one connect may wait for its CONNACK. */
#define BENCH_CONNACK_TIMEOUT_S 5

static int bench_usage_error(const char *msg)
{
	fprintf(stderr, "pigeon-bench: %s (try pigeon-bench --help)\n", msg);
	return 2;
}

static double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of the calling thread, in seconds. */
static double bench_thread_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- tokens ---------------------------------------------------------- */

/* A PEM text (private or public) of pkey in a malloc'd string, or NULL. */
static char *bench_pem(EVP_PKEY *pkey, bool private_key, size_t *len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *copy = NULL;
	long n;
	int ok;

	if (bio == NULL) {
		return NULL;
	}
	ok = private_key ? PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL)
	                 : PEM_write_bio_PUBKEY(bio, pkey);
	n = BIO_get_mem_data(bio, &data);
	if (ok == 1 && n > 0 && (copy = malloc((size_t)n + 1)) != NULL) {
		memcpy(copy, data, (size_t)n);
		copy[n] = '\0';
		*len = (size_t)n;
	}
	BIO_free(bio);
	return copy;
}

/*
 * Generates a key for alg and fills kr with what verifies it. Returns the
 * signing key (the caller frees it), or NULL with a message on stderr.
 */
static struct pg_signkey *bench_keygen(unsigned alg, struct pg_keyring *kr)
{
	struct pg_signkey *key = NULL;
	EVP_PKEY *pkey = NULL;
	char err[256], *priv = NULL, *pub = NULL;
	size_t privlen = 0, publen = 0;

	if (alg == PG_ALG_HS256) {
		unsigned char secret[32];
		if (RAND_bytes(secret, sizeof(secret)) != 1 ||
		    pg_keyring_set_secret(kr, secret, sizeof(secret)) != 0) {
			fprintf(stderr, "pigeon-bench: cannot make an HS256 secret\n");
			return NULL;
		}
		return pg_signkey_from_secret(secret, sizeof(secret));
	}
	pkey = alg == PG_ALG_ES256 ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
	                           : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (pkey == NULL || (priv = bench_pem(pkey, true, &privlen)) == NULL ||
	    (pub = bench_pem(pkey, false, &publen)) == NULL) {
		fprintf(stderr, "pigeon-bench: cannot generate a %s key\n", pg_alg_name(alg));
		goto out;
	}
	key = pg_signkey_from_pem(priv, privlen, err, sizeof(err));
	if (key == NULL || pg_keyring_add_public_pem(kr, pub, publen, err, sizeof(err)) < 0) {
		fprintf(stderr, "pigeon-bench: %s key: %s\n", pg_alg_name(alg), err);
		pg_signkey_free(key);
		key = NULL;
	}
out:
	free(priv);
	free(pub);
	EVP_PKEY_free(pkey);
	return key;
}

/*
 * Verifies one freshly minted token of alg for `seconds` on this thread and
 * prints the rate. The token carries the claims a real one does (sub, dev,
 * jti, iat, exp). Returns 0, or 1 if anything fails to verify.
 */
static int bench_tokens_alg(unsigned alg, double seconds)
{
	struct pg_keyring *kr = pg_keyring_new();
	struct pg_token_policy policy = {.algs = alg, .skew_s = 30};
	struct pg_claims claims = {.sub = "bench", .dev = "phone", .jti = "bench-0001"};
	struct pg_signkey *key = NULL;
	enum pg_token_status st;
	const char *detail = "";
	char *tok = NULL;
	int64_t now = (int64_t)time(NULL);
	uint64_t n = 0;
	double t0, cpu0, elapsed, cpu;
	size_t len;
	int rc = 1, i;

	if (kr == NULL || (key = bench_keygen(alg, kr)) == NULL) {
		goto out;
	}
	claims.has_iat = true;
	claims.iat = now;
	claims.exp = now + 3600;
	tok = pg_token_mint(key, &claims);
	if (tok == NULL) {
		fprintf(stderr, "pigeon-bench: cannot mint a %s token\n", pg_alg_name(alg));
		goto out;
	}
	len = strlen(tok);
	cpu0 = bench_thread_cpu();
	t0 = bench_now();
	do {
		/* Batches keep the clock reads out of the figure. */
		for (i = 0; i < 32; i++) {
			st = pg_token_verify(kr, &policy, tok, len, now, &claims, &detail);
			if (st != PG_TOKEN_OK) {
				fprintf(stderr, "pigeon-bench: %s token does not verify: %s: %s\n",
				        pg_alg_name(alg), pg_token_status_name(st), detail);
				goto out;
			}
		}
		n += 32;
		elapsed = bench_now() - t0;
	} while (elapsed < seconds && n < BENCH_VERIFY_MAX);
	cpu = bench_thread_cpu() - cpu0;
	printf("tokens %s %.0f verify/s count=%llu seconds=%.3f cpu_s=%.3f ns_each=%.0f "
	       "token_bytes=%zu\n",
	       pg_alg_name(alg), (double)n / cpu, (unsigned long long)n, elapsed, cpu,
	       cpu * 1e9 / (double)n, len);
	fflush(stdout);
	rc = 0;
out:
	free(tok);
	pg_signkey_free(key);
	pg_keyring_free(kr);
	return rc;
}

static int bench_tokens(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"seconds", required_argument, NULL, 's'},
	    {NULL, 0, NULL, 0},
	};
	static const unsigned algs[] = {PG_ALG_HS256, PG_ALG_ES256, PG_ALG_EDDSA};
	double seconds = 2;
	size_t i;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 's') {
			return bench_usage_error("tokens takes [--seconds S]");
		}
		seconds = (double)bench_opt_uint("seconds", optarg, 1, BENCH_SECONDS_MAX);
	}
	if (optind < argc) {
		return bench_usage_error("tokens takes no arguments");
	}
	for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		if (bench_tokens_alg(algs[i], seconds) != 0) {
			return 1;
		}
	}
	return 0;
}

/* ---- connect --------------------------------------------------------- */

struct bench_connect_args {
	const char *host;
	const char *label;
	const char *secret_file;
	const char *key_file;
	bool anonymous;
	int port;
	int mqtt_version;
	unsigned count;
	double time_limit;
};

/* What the CONNACK said, written by bench_on_connect. */
struct bench_connack {
	bool received;
	int rc;
};

static void bench_on_connect(struct mosquitto *m, void *obj, int rc)
{
	struct bench_connack *ack = obj;

	ack->received = true;
	ack->rc = rc;
}

/* CPU time this process has used so far (user + system), in milliseconds. */
static double bench_cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static int bench_uint_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * One token per connect, minted before anything is timed: tokens[i] is for
 * uid "b<i>" on device "bench". Returns a malloc'd array of malloc'd tokens
 * (free with bench_tokens_free), or NULL with a message on stderr.
 */
static char **bench_mint_all(const struct bench_connect_args *a)
{
	struct pg_signkey *key;
	struct pg_claims claims = {.dev = "bench", .has_iat = true};
	char err[256], *buf, **toks;
	int64_t now = (int64_t)time(NULL);
	size_t len;
	unsigned i;

	if (pg_read_file(a->secret_file ? a->secret_file : a->key_file, BENCH_KEYFILE_MAX, &buf,
	                 &len, err, sizeof(err)) != 0) {
		fprintf(stderr, "pigeon-bench: %s\n", err);
		return NULL;
	}
	if (a->secret_file) {
		key = len ? pg_signkey_from_secret((unsigned char *)buf, len) : NULL;
		snprintf(err, sizeof(err), "the secret file is empty");
	} else {
		key = pg_signkey_from_pem(buf, len, err, sizeof(err));
	}
	free(buf);
	if (key == NULL) {
		fprintf(stderr, "pigeon-bench: %s\n", err);
		return NULL;
	}
	toks = calloc(a->count, sizeof(*toks));
	if (toks == NULL) {
		fprintf(stderr, "pigeon-bench: out of memory\n");
	}
	claims.iat = now;
	/* Valid for the whole run whatever its length. */
	claims.exp = now + (int64_t)a->time_limit + 3600;
	for (i = 0; toks != NULL && i < a->count; i++) {
		char *tok;
		snprintf(claims.sub, sizeof(claims.sub), "b%u", i);
		/* pg_token_mint returns a PG_TOKEN_MAX * 2 buffer; keep only the token. */
		tok = pg_token_mint(key, &claims);
		toks[i] = tok ? strdup(tok) : NULL;
		free(tok);
		if (toks[i] == NULL) {
			fprintf(stderr, "pigeon-bench: cannot mint token %u\n", i);
			while (i-- > 0) {
				free(toks[i]);
			}
			free(toks);
			toks = NULL;
		}
	}
	pg_signkey_free(key);
	return toks;
}

static void bench_tokens_free(char **toks, unsigned count)
{
	unsigned i;

	for (i = 0; toks && i < count; i++) {
		free(toks[i]);
	}
	free(toks);
}

/*
 * One connect -> CONNACK -> DISCONNECT cycle as client cid. Returns 0, or 1
 * with a message on stderr. The socket is closed when it returns.
 */
static int bench_connect_once(const struct bench_connect_args *a, unsigned i, const char *cid,
                              const char *user, const char *token)
{
	struct bench_connack ack = {0};
	struct mosquitto *m = mosquitto_new(cid, true, &ack);
	double deadline = bench_now() + BENCH_CONNACK_TIMEOUT_S;
	int rc = MOSQ_ERR_NOMEM, err;

	if (m == NULL) {
		goto fail;
	}
	mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, a->mqtt_version);
	mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_connect_callback_set(m, bench_on_connect);
	if (user && (rc = mosquitto_username_pw_set(m, user, token)) != MOSQ_ERR_SUCCESS) {
		goto fail;
	}
	rc = mosquitto_connect(m, a->host, a->port, 60);
	while (rc == MOSQ_ERR_SUCCESS && !ack.received) {
		if (bench_now() > deadline) {
			fprintf(stderr, "pigeon-bench: connect %u (%s): no CONNACK within %d s\n",
			        i, cid, BENCH_CONNACK_TIMEOUT_S);
			mosquitto_destroy(m);
			return 1;
		}
		rc = mosquitto_loop(m, 100, 1);
	}
	/* A refusal ends the loop with an error too, after the callback ran. */
	if (ack.received && ack.rc != 0) {
		fprintf(stderr, "pigeon-bench: connect %u (%s) refused: %s\n", i, cid,
		        a->mqtt_version == MQTT_PROTOCOL_V5 ? mosquitto_reason_string(ack.rc)
		                                            : mosquitto_connack_string(ack.rc));
		mosquitto_destroy(m);
		return 1;
	}
	if (rc != MOSQ_ERR_SUCCESS) {
		goto fail;
	}
	mosquitto_disconnect(m);
	mosquitto_destroy(m);
	return 0;
fail:
	err = errno;
	fprintf(stderr, "pigeon-bench: connect %u (%s) to %s:%d failed: %s\n", i, cid, a->host,
	        a->port, rc == MOSQ_ERR_ERRNO ? strerror(err) : mosquitto_strerror(rc));
	if (rc == MOSQ_ERR_ERRNO && err == EADDRNOTAVAIL) {
		fprintf(stderr, "pigeon-bench: no free local port: too many sockets in TIME_WAIT? "
		                "(see net.ipv4.tcp_tw_reuse and ip_local_port_range)\n");
	}
	mosquitto_destroy(m);
	return 1;
}

/* The timed storm; prints the result line. Returns 0, or 1 on any failure. */
static int bench_connect_storm(const struct bench_connect_args *a, char **toks)
{
	uint32_t *lat = calloc(a->count, sizeof(*lat));
	char cid[PG_CLIENT_ID_MAX], user[PG_IDENT_MAX + 1];
	double t0, t, elapsed, cpu0;
	unsigned i;

	if (lat == NULL) {
		fprintf(stderr, "pigeon-bench: out of memory\n");
		return 1;
	}
	cpu0 = bench_cpu_ms();
	t0 = bench_now();
	for (i = 0; i < a->count; i++) {
		snprintf(user, sizeof(user), "b%u", i);
		snprintf(cid, sizeof(cid), "b%u:bench", i);
		t = bench_now();
		if (t - t0 > a->time_limit) {
			fprintf(
			    stderr,
			    "pigeon-bench: time limit of %.0f s reached after %u of %u connects\n",
			    a->time_limit, i, a->count);
			free(lat);
			return 1;
		}
		if (bench_connect_once(a, i, cid, a->anonymous ? NULL : user,
		                       a->anonymous ? NULL : toks[i]) != 0) {
			free(lat);
			return 1;
		}
		lat[i] = (uint32_t)((bench_now() - t) * 1e6);
	}
	elapsed = bench_now() - t0;
	cpu0 = bench_cpu_ms() - cpu0;
	qsort(lat, a->count, sizeof(*lat), bench_uint_cmp);
	printf("connect %s %.0f connects/s count=%u seconds=%.3f p50_us=%u p99_us=%u max_us=%u "
	       "cpu_ms=%.0f\n",
	       a->label, (double)a->count / elapsed, a->count, elapsed, lat[a->count / 2],
	       lat[(size_t)a->count * 99 / 100], lat[a->count - 1], cpu0);
	fflush(stdout);
	free(lat);
	return 0;
}

static int bench_connect(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"host", required_argument, NULL, 'h'},
	    {"port", required_argument, NULL, 'p'},
	    {"count", required_argument, NULL, 'n'},
	    {"secret-file", required_argument, NULL, 's'},
	    {"key-file", required_argument, NULL, 'k'},
	    {"anonymous", no_argument, NULL, 'a'},
	    {"label", required_argument, NULL, 'l'},
	    {"time-limit", required_argument, NULL, 't'},
	    {"mqtt", required_argument, NULL, 'm'},
	    {NULL, 0, NULL, 0},
	};
	struct bench_connect_args a = {
	    .host = "127.0.0.1", .mqtt_version = MQTT_PROTOCOL_V5, .time_limit = 300};
	char **toks = NULL;
	int c, rc;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			a.host = optarg;
			break;
		case 'p':
			a.port = (int)bench_opt_uint("port", optarg, 1, 65535);
			break;
		case 'n':
			a.count = (unsigned)bench_opt_uint("count", optarg, 1, BENCH_CONNECTS_MAX);
			break;
		case 's':
			a.secret_file = optarg;
			break;
		case 'k':
			a.key_file = optarg;
			break;
		case 'a':
			a.anonymous = true;
			break;
		case 'l':
			a.label = optarg;
			break;
		case 't':
			a.time_limit =
			    (double)bench_opt_uint("time-limit", optarg, 1, BENCH_SECONDS_MAX);
			break;
		case 'm':
			if (strcmp(optarg, "5") == 0) {
				a.mqtt_version = MQTT_PROTOCOL_V5;
			} else if (strcmp(optarg, "311") == 0) {
				a.mqtt_version = MQTT_PROTOCOL_V311;
			} else {
				return bench_usage_error("--mqtt is 311 or 5");
			}
			break;
		default:
			return bench_usage_error("unknown option for connect");
		}
	}
	if (optind < argc) {
		return bench_usage_error("connect takes no arguments");
	}
	if (a.port == 0 || a.count == 0) {
		return bench_usage_error("connect needs --port and --count");
	}
	if ((a.secret_file != NULL) + (a.key_file != NULL) + a.anonymous != 1) {
		return bench_usage_error(
		    "connect needs exactly one of --secret-file, --key-file, --anonymous");
	}
	if (a.label == NULL) {
		a.label = a.anonymous ? "anonymous" : "pigeon";
	}
	if (!a.anonymous && (toks = bench_mint_all(&a)) == NULL) {
		return 1;
	}
	mosquitto_lib_init();
	rc = bench_connect_storm(&a, toks);
	mosquitto_lib_cleanup();
	bench_tokens_free(toks, a.count);
	return rc;
}

/* ---- dispatch -------------------------------------------------------- */

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage;
} bench_commands[] = {
    {"tokens", bench_tokens,
     "tokens  [--seconds S]\n"
     "        verifications/s on one core of an HS256, ES256 and EdDSA token\n"},
    {"connect", bench_connect,
     "connect --port P --count N [--host H (127.0.0.1)]\n"
     "        [--secret-file F | --key-file PEM | --anonymous] [--label NAME]\n"
     "        [--time-limit S (300)] [--mqtt 311|5 (5)]\n"
     "        N sequential connect/CONNACK/disconnect cycles, client id b<i>:bench,\n"
     "        username b<i> and a pre-minted token signed with F or PEM\n"},
    {"chat", bench_chat,
     "chat    --port P (--secret-file F | --anonymous) [--count N (100000)]\n"
     "        [--size B (256)] [--window W (500)] [--to UID (r0)] [--msg-id] [--label L]\n"
     "        one sender -> one online recipient, QoS 1, at most W not yet received\n"},
    {"catchup", bench_catchup,
     "catchup --port P --secret-file F --to UID [--count N] [--size B]\n"
     "        N stored for offline UID, then timed: connect, subscribe, sync all\n"},
    {"notify", bench_notify,
     "notify  --port P --secret-file F [--count N] [--users U (1000)] [--types T (10)]\n"
     "        [--to PREFIX (r0)] N notifications of T types to U offline users\n"},
    {"push-load", bench_push_load,
     "push-load --port P --secret-file F [--count N (100000)] [--users U (10000)]\n"
     "        [--to PREFIX (pu)] [--rate R (0: as fast as W allows)] [--window W (1000)]\n"
     "        [--size B (256)] N QoS 1 CHATs round-robin to PREFIX0..PREFIX<U-1>\n"},
    {"latency", bench_latency,
     "latency --port P --secret-file F [--to UID (lat0)] [--rate R (2000)]\n"
     "        [--count N (20000)] [--size B (256)] [--warmup N (0)] [--time-limit S]\n"
     "        publish -> delivery latency to UID:phone at R msg/s on a fixed schedule\n"},
    {"client-catchup", bench_client_catchup,
     "client-catchup --port P --secret-file F [--count N (10000)] [--to UID (cc0)]\n"
     "        N stored for UID, then timed: libpigeon-client from start to the N-th\n"
     "        message handed to the app (fresh state dir)\n"},
    {"open", bench_open,
     "open    --port P (--secret-file F | --anonymous) --rate R [--publishers N (1)]\n"
     "        [--subscribers M (1)] [--threads T (1)] [--seconds S (10)] [--warmup S (1)]\n"
     "        [--size B (256)] [--qos 0|1 (1)] [--to PREFIX (ol)] [--curve FILE]\n"
     "        [--label L] [--time-limit S (seconds + 30)] [--connect-window W (100)]\n"
     "        open loop: message k due at t0 + k/R from publisher <to>p<k%N> to\n"
     "        <to><k%M>; latency from the due time (HDR percentiles)\n"},
    {"throughput", bench_throughput,
     "throughput --port P (--secret-file F | --anonymous) [--pairs N (1)]\n"
     "        [--count C (100000 in all)] [--window W (100 per publisher)] [--size B (256)]\n"
     "        [--threads T (2)] [--to PREFIX (tp)] [--label L] [--time-limit S (120)]\n"
     "        closed loop: publisher <to>p<i> -> recipient <to><i>, W not yet received\n"},
    {"idle", bench_idle,
     "idle    --port P (--secret-file F | --anonymous) --count K [--threads T (2)]\n"
     "        [--prefix PREFIX (idle)] [--keepalive S (600)] [--hold S (0: until stdin\n"
     "        closes)] [--no-subscribe] [--label L] [--time-limit S (600)]\n"
     "        [--connect-window W (100)]  K connections held (connection scale)\n"},
};
#define BENCH_NCOMMANDS (sizeof(bench_commands) / sizeof(bench_commands[0]))

static void bench_usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: pigeon-bench COMMAND [OPTIONS]\n\n");
	for (i = 0; i < BENCH_NCOMMANDS; i++) {
		fprintf(out, "  %s", bench_commands[i].usage);
	}
	fprintf(out, "\nResult lines: <what> <label> <figure> <unit> [key=value...].\n"
	             "Exit status: 0 measured, 1 failure during the run, 2 usage error.\n");
}

int main(int argc, char **argv)
{
	size_t i;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		bench_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (i = 0; i < BENCH_NCOMMANDS; i++) {
		if (strcmp(argv[1], bench_commands[i].name) == 0) {
			/* getopt sees the command name as argv[0]. */
			return bench_commands[i].run(argc - 1, argv + 1);
		}
	}
	bench_usage(stderr);
	return 2;
}
