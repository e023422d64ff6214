/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pigeon-bench subcommands living outside pigeon_bench.c. Each takes the
 * subcommand's argv (argv[0] is its name) and returns the exit status:
 * 0 measured, 1 a failure during the measurement, 2 a usage error.
 */
#ifndef PIGEON_BENCH_H
#define PIGEON_BENCH_H

int bench_chat(int argc, char **argv);
int bench_catchup(int argc, char **argv);
int bench_notify(int argc, char **argv);
int bench_push_load(int argc, char **argv);
int bench_latency(int argc, char **argv);
int bench_client_catchup(int argc, char **argv);
int bench_open(int argc, char **argv);
int bench_throughput(int argc, char **argv);
int bench_idle(int argc, char **argv);

#endif
