/*
 * hostile.c - a program that misbehaves on request, to test confinement.
 *
 *   hostile socket | ptrace | forkbomb | fsize | mem | spin | sleep | x32 |
 *           kill SIGNUM | fds | env | id | writefs PATH | net | pid
 *
 * Each prints what happened and exits with a status of its own:
 * 0 the misbehaviour succeeded (or there was nothing to refuse), 2 usage,
 * 3 refused (socket, ptrace, x32), 4 out of memory, 5 fork failed,
 * 6 write failed, 7 cannot read, 8 still alive after raising a signal,
 * 9 writing the file was refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>

extern char **environ;

static const char *
ename(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "unknown errno";
}

static int
do_socket(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0) {
		printf("socket: refused (%s)\n", ename(errno));
		return 3;
	}
	printf("socket: allowed\n");
	return 0;
}

static int
do_ptrace(void)
{
	if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0) {
		printf("ptrace: refused (%s)\n", ename(errno));
		return 3;
	}
	printf("ptrace: allowed\n");
	return 0;
}

static void
sleep_forever(void)
{
	struct timespec ts = {3600, 0};
	for (;;)
		nanosleep(&ts, NULL);
}

static int
do_forkbomb(void)
{
	/* Bounded, so that an unconfined run does not take the machine down. */
	for (long n = 0; n < 20000; n++) {
		pid_t pid = fork();
		if (pid < 0) {
			printf("forkbomb: fork failed after %ld (%s)\n", n, ename(errno));
			return 5;
		}
		if (pid == 0)
			sleep_forever();
	}
	printf("forkbomb: not stopped\n");
	return 0;
}

static int
do_fsize(void)
{
	static char buf[1 << 16];
	int fd = open("fsize.out", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0) {
		printf("fsize: open: %s\n", ename(errno));
		return 6;
	}
	memset(buf, 'x', sizeof buf);
	/* Up to 1 GiB. */
	for (int i = 0; i < (1 << 14); i++) {
		if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) {
			printf("fsize: write failed after %d KiB (%s)\n", i * 64,
			       ename(errno));
			return 6;
		}
	}
	printf("fsize: wrote 1 GiB\n");
	return 0;
}

static int
do_mem(void)
{
	/* Up to 64 GiB, touching every page. */
	for (long mib = 0; mib < 65536; mib++) {
		char *p = malloc(1 << 20);
		if (!p) {
			printf("mem: malloc failed after %ld MiB\n", mib);
			return 4;
		}
		memset(p, 1, 1 << 20);
	}
	printf("mem: not stopped\n");
	return 0;
}

static int
do_x32(void)
{
	/* getpid in the x32 ABI: the x32 bit plus its number, 39. */
	long r = syscall(0x40000000L | 39);
	if (r < 0) {
		printf("x32: refused (%s)\n", ename(errno));
		return 3;
	}
	printf("x32: allowed, pid %ld\n", r);
	return 0;
}

static int
do_fds(void)
{
	printf("fds:");
	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			printf(" %d", fd);
	printf("\n");
	return 0;
}

static int
do_writefs(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		printf("writefs: %s: refused (%s)\n", path, ename(errno));
		return 9;
	}
	close(fd);
	printf("writefs: %s: written\n", path);
	return 0;
}

static int
do_net(void)
{
	/* /proc/self/net shows the network namespace of the reader. */
	char line[512];
	FILE *f = fopen("/proc/self/net/dev", "re");
	int n = 0;

	if (!f) {
		printf("net: cannot read /proc/self/net/dev (%s)\n", ename(errno));
		return 7;
	}
	while (fgets(line, sizeof line, f)) {
		char *colon = strchr(line, ':');
		char *name = line;
		if (++n <= 2 || !colon)
			continue;
		*colon = '\0';
		while (*name == ' ')
			name++;
		printf("%s\n", name);
	}
	fclose(f);
	return 0;
}

static int
usage(void)
{
	fprintf(stderr, "usage: hostile socket|ptrace|forkbomb|fsize|mem|spin|sleep|"
			"x32|kill SIGNUM|fds|env|id|writefs PATH|net|pid\n");
	return 2;
}

int
main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "";
	int r = 2;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(what, "socket"))
		r = do_socket();
	else if (!strcmp(what, "ptrace"))
		r = do_ptrace();
	else if (!strcmp(what, "forkbomb"))
		r = do_forkbomb();
	else if (!strcmp(what, "fsize"))
		r = do_fsize();
	else if (!strcmp(what, "mem"))
		r = do_mem();
	else if (!strcmp(what, "spin")) {
		for (volatile unsigned long i = 0;; i++)
			;
	} else if (!strcmp(what, "sleep"))
		sleep_forever();
	else if (!strcmp(what, "x32"))
		r = do_x32();
	else if (!strcmp(what, "kill") && argc > 2) {
		raise(atoi(argv[2]));
		printf("kill: still alive after signal %s\n", argv[2]);
		r = 8;
	} else if (!strcmp(what, "fds"))
		r = do_fds();
	else if (!strcmp(what, "env")) {
		for (char **e = environ; *e; e++)
			printf("%s\n", *e);
		r = 0;
	} else if (!strcmp(what, "id")) {
		printf("uid=%u gid=%u euid=%u egid=%u\n", (unsigned)getuid(),
		       (unsigned)getgid(), (unsigned)geteuid(), (unsigned)getegid());
		r = 0;
	} else if (!strcmp(what, "writefs") && argc > 2)
		r = do_writefs(argv[2]);
	else if (!strcmp(what, "net"))
		r = do_net();
	else if (!strcmp(what, "pid")) {
		printf("%ld\n", (long)getpid());
		r = 0;
	} else
		r = usage();
	fflush(stdout);
	return r;
}
