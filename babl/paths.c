/* paths.c - default locations; see paths.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "paths.h"

static int
fit(int n, size_t cap)
{
	return n < 0 || (size_t)n >= cap ? BABL_ETOOBIG : 0;
}

int
paths_default_url(char *buf, size_t n)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");
	if (rt && *rt)
		return fit(snprintf(buf, n, "ipc://%s/babl/meshd.sock", rt), n);
	if (geteuid() == 0)
		return fit(snprintf(buf, n, "ipc:///run/babl/meshd.sock"), n);
	return fit(snprintf(buf, n, "ipc:///tmp/babl-%u/meshd.sock", (unsigned)geteuid()), n);
}

static int
xdg_dir(char *buf, size_t n, const char *var, const char *fallback)
{
	const char *x = getenv(var), *home = getenv("HOME");
	if (x && *x == '/')
		return fit(snprintf(buf, n, "%s/babl", x), n);
	if (!home || !*home)
		return BABL_EUSAGE;
	return fit(snprintf(buf, n, "%s/%s/babl", home, fallback), n);
}

int
paths_data_dir(char *buf, size_t n)
{
	return xdg_dir(buf, n, "XDG_DATA_HOME", ".local/share");
}

int
paths_config_dir(char *buf, size_t n)
{
	return xdg_dir(buf, n, "XDG_CONFIG_HOME", ".config");
}

int
paths_mkdirs(const char *path, unsigned mode)
{
	char tmp[4096];
	if (fit(snprintf(tmp, sizeof tmp, "%s", path), sizeof tmp))
		return BABL_ETOOBIG;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return BABL_EIO;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return BABL_EIO;
	return 0;
}
