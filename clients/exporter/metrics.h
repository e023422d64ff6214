/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon-exporter's one mapping table: every metric family it can export,
 * with its type, HELP text and the $SYS leaf it comes from (docs/operations.md,
 * the issue 12 contract). A leaf pattern is a path under `$SYS/broker/` in
 * which `{name=a|b|c}` is a label taking one of the listed values from that
 * topic level and `{name}` a label taking any short word
 * ([A-Za-z0-9_.-], 1-40 characters). Rows without a leaf are the
 * exporter's own metrics.
 *
 * The table is constant data: any thread may read it.
 */
#ifndef PIGEON_EXPORTER_METRICS_H
#define PIGEON_EXPORTER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payload.h"

enum exp_type {
	EXP_COUNTER,
	EXP_GAUGE,
	EXP_HISTOGRAM,
};

/* How a leaf's payload is read (payload.h). */
enum exp_kind {
	EXP_KIND_UINT,      /* a decimal unsigned integer */
	EXP_KIND_UPTIME,    /* "<n> seconds" */
	EXP_KIND_VERSION,   /* "mosquitto version <v>": value 1, label version="<v>" */
	EXP_KIND_HISTOGRAM, /* the histogram payload */
	EXP_KIND_OWN,       /* the exporter's own: no leaf */
};

struct exp_metric {
	const char *name;
	enum exp_type type;
	enum exp_kind kind;
	const char *leaf; /* pattern under $SYS/broker/, NULL for EXP_KIND_OWN */
	const char *help;
};

#define EXP_LABELS_MAX 2
#define EXP_LABEL_NAME_MAX 16
#define EXP_LABEL_VALUE_MAX 48

struct exp_label {
	char name[EXP_LABEL_NAME_MAX];
	char value[EXP_LABEL_VALUE_MAX];
};

/* A leaf's latest value, as the renderer shows it. */
struct exp_value {
	int row; /* index in exp_metrics */
	unsigned nlabels;
	struct exp_label labels[EXP_LABELS_MAX];
	uint64_t number;       /* every kind but EXP_KIND_HISTOGRAM */
	struct exp_hist *hist; /* EXP_KIND_HISTOGRAM: owned by whoever owns the value */
};

extern const struct exp_metric exp_metrics[];
extern const size_t exp_metrics_count;

/* The rows of the exporter's own metrics (looked up once by name). */
int exp_metric_row(const char *name);

/*
 * Matches leaf (a topic with `$SYS/broker/` removed, n bytes, not
 * NUL-terminated) against the table: the row, with v->row and v->labels
 * filled from the topic, or -1 for a leaf the exporter does not know.
 */
int exp_metric_match(const char *leaf, size_t n, struct exp_value *v);

#endif
