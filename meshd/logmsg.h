/*
 * logmsg.h - meshd's logging: one line per event on stderr, prefixed with a
 * systemd priority ("<4>") when stderr is not a terminal, else with a time.
 */
#ifndef MESHD_LOGMSG_H
#define MESHD_LOGMSG_H

extern int log_verbose;

void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* As log_warnx, with ": strerror(errno)" appended. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log and exit(1): for start-up failures and broken invariants only. */
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
