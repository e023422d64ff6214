/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Finds Paho's socket by its peer address among /proc/self/fd and sets
 * TCP_NODELAY on it (nodelay.h says why). Called on the client thread once
 * a connection won; costs one readdir of the process's descriptors.
 */
#include "nodelay.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct peer {
	unsigned port;
	bool numeric; /* addr holds the host's address */
	int family;
	unsigned char addr[16];
};

/* "tcp://host:port", "ssl://[v6]:port": the port and, when numeric, the address. */
static int parse_uri(const char *uri, struct peer *p)
{
	const char *h = strstr(uri, "://");
	char host[256];
	const char *colon;
	size_t n;

	h = h ? h + 3 : uri;
	if (*h == '[') {
		const char *end = strchr(h, ']');
		if (end == NULL || end[1] != ':') {
			return -1;
		}
		n = (size_t)(end - h - 1);
		if (n >= sizeof(host)) {
			return -1;
		}
		memcpy(host, h + 1, n);
		colon = end + 1;
	} else {
		colon = strrchr(h, ':');
		if (colon == NULL) {
			return -1;
		}
		n = (size_t)(colon - h);
		if (n >= sizeof(host)) {
			return -1;
		}
		memcpy(host, h, n);
	}
	host[n] = '\0';
	char *end;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (end == colon + 1 || port == 0 || port > 65535) {
		return -1;
	}
	p->port = (unsigned)port;
	p->numeric = false;
	if (inet_pton(AF_INET, host, p->addr) == 1) {
		p->numeric = true;
		p->family = AF_INET;
	} else if (inet_pton(AF_INET6, host, p->addr) == 1) {
		p->numeric = true;
		p->family = AF_INET6;
	}
	return 0;
}

static bool peer_matches(int fd, const struct peer *p)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int type = 0;
	socklen_t tlen = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 || type != SOCK_STREAM) {
		return false;
	}
	if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0) {
		return false;
	}
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
		return ntohs(in->sin_port) == p->port &&
		       (!p->numeric ||
		        (p->family == AF_INET && memcmp(&in->sin_addr, p->addr, 4) == 0));
	}
	if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
		return ntohs(in6->sin6_port) == p->port &&
		       (!p->numeric ||
		        (p->family == AF_INET6 && memcmp(&in6->sin6_addr, p->addr, 16) == 0));
	}
	return false;
}

int pgc_nodelay_for(const char *uri)
{
	struct peer p;
	DIR *d;
	struct dirent *e;
	int set = 0;
	int one = 1;

	if (uri == NULL || parse_uri(uri, &p) != 0) {
		return 0;
	}
	d = opendir("/proc/self/fd");
	if (d == NULL) {
		return 0;
	}
	while ((e = readdir(d)) != NULL) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);
		if (end == e->d_name || *end != '\0' || fd < 0 || fd == dirfd(d)) {
			continue;
		}
		if (peer_matches((int)fd, &p) &&
		    setsockopt((int)fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0) {
			set++;
		}
	}
	closedir(d);
	return set;
}
