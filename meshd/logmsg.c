/* logmsg.c - logging to stderr; see logmsg.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "logmsg.h"

int log_verbose;

static void
vlog(int prio, const char *fmt, va_list ap, const char *suffix)
{
	char line[2048];
	int n = vsnprintf(line, sizeof line, fmt, ap);
	if (n < 0)
		return;
	if (isatty(2)) {
		char ts[32];
		time_t t = time(NULL);
		struct tm tm;
		localtime_r(&t, &tm);
		strftime(ts, sizeof ts, "%H:%M:%S", &tm);
		fprintf(stderr, "%s meshd: %s%s%s\n", ts, line, suffix ? ": " : "",
		    suffix ? suffix : "");
	} else {
		fprintf(stderr, "<%d>meshd: %s%s%s\n", prio, line, suffix ? ": " : "",
		    suffix ? suffix : "");
	}
}

#define LOGFN(name, prio, cond)                 \
	void name(const char *fmt, ...)         \
	{                                       \
		va_list ap;                     \
		if (!(cond))                    \
			return;                 \
		va_start(ap, fmt);              \
		vlog(prio, fmt, ap, NULL);      \
		va_end(ap);                     \
	}
LOGFN(log_info, 6, 1)
LOGFN(log_warnx, 4, 1)
LOGFN(log_debug, 7, log_verbose)

void
log_warn(const char *fmt, ...)
{
	int e = errno;
	va_list ap;
	va_start(ap, fmt);
	vlog(4, fmt, ap, strerror(e));
	va_end(ap);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(2, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}
