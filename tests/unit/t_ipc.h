/*
 * t_ipc.h - for tests that use real nng sockets: a temporary directory for
 * their ipc:// URLs (removed by tmp_cleanup), and a monotonic clock.
 * Define T_TMP_PREFIX (e.g. "rtrans") before including it.
 */
#ifndef T_IPC_H
#define T_IPC_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char tmpdir[64];

static void
tmp_setup(void)
{
	if (tmpdir[0])
		return;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/%s.XXXXXX", T_TMP_PREFIX);
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		exit(1);
	}
}

static void
tmp_cleanup(void)
{
	if (!tmpdir[0])
		return;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
}

/* An ipc URL in the temporary directory, unique to the case and name. */
static void
ipc_url(char *buf, size_t n, const char *name)
{
	static unsigned seq;
	tmp_setup();
	snprintf(buf, n, "ipc://%s/%s.%u", tmpdir, name, ++seq);
}

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#endif
