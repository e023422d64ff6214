/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the fuzz targets share: FUZZ_CHECK, an assertion that stays on in
 * every build type and aborts (libFuzzer then saves the input as a crash),
 * and a private temporary directory for the targets that need files (the
 * store and its journal), emptied between inputs.
 */
#ifndef PIGEON_FUZZ_CHECK_H
#define PIGEON_FUZZ_CHECK_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__,      \
			        #cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/*
 * Creates a private directory under $TMPDIR (or /dev/shm, else /tmp: tmpfs
 * keeps the store's fsyncs cheap) and writes its path into dir. Aborts if it
 * cannot: a target without its directory would test nothing.
 */
static inline void fuzz_tmpdir_new(char *dir, size_t cap, const char *name)
{
	const char *base = getenv("TMPDIR");

	if (base == NULL || base[0] == '\0') {
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	}
	snprintf(dir, cap, "%s/pigeon-%s-XXXXXX", base, name);
	FUZZ_CHECK(mkdtemp(dir) != NULL);
}

/* Removes every file in dir (the targets create no subdirectories). */
static inline void fuzz_tmpdir_clear(const char *dir)
{
	char path[4096];
	struct dirent *de;
	DIR *d = opendir(dir);

	FUZZ_CHECK(d != NULL);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
}

#endif
