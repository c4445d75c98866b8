/*
 * spawn-bench.c - the baseline for small calls: start a confined `cat` per
 * request, pipe bytes through it and wait for it, in a tight loop.
 *
 *   spawn-bench [-c CONCURRENCY] [-d SECONDS] [--rounds N] [-s BYTES]
 *               [--no-filter] [--program PATH]
 *
 * A seccomp filter is built once in the parent: the architecture checked
 * (a foreign one kills the process), x32 numbers and the calls a service
 * must not make (socket, ptrace, mount, bpf, ...) refused with EPERM,
 * everything else allowed.  posix_spawn cannot install a filter, so each
 * iteration does what posix_spawn does underneath, a vfork(), and the child
 * sets no_new_privs, installs the filter, moves the pipes onto fds 0 and 1
 * and execs the program (default /bin/cat).  The parent writes BYTES
 * (default 64), closes, reads the output to its end, checks that it is
 * BYTES long and reaps the child.  CONCURRENCY threads do the same.
 *
 * It stops after SECONDS (default 10) or after N iterations per thread and
 * prints a human line, then one machine-readable line on stdout:
 *
 *   calls=N errors=E secs=S rate=R p50_us=X p99_us=Y
 *
 * the same shape as babl-load's, so that scripts/bench reads both alike.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "loadgen.h"

static const char usage_text[] =
    "usage: spawn-bench [-c CONCURRENCY] [-d SECONDS] [--rounds N] [-s BYTES]\n"
    "                   [--no-filter] [--program PATH]\n";

#if defined(__x86_64__)
#define BENCH_ARCH AUDIT_ARCH_X86_64
#define X32_BIT 0x40000000u
#elif defined(__aarch64__)
#define BENCH_ARCH AUDIT_ARCH_AARCH64
#elif defined(__i386__)
#define BENCH_ARCH AUDIT_ARCH_I386
#endif

/* The calls refused, those this architecture has. */
static const long refused[] = {
#ifdef SYS_socket
	SYS_socket,
#endif
#ifdef SYS_socketcall
	SYS_socketcall,
#endif
#ifdef SYS_connect
	SYS_connect,
#endif
#ifdef SYS_bind
	SYS_bind,
#endif
#ifdef SYS_listen
	SYS_listen,
#endif
#ifdef SYS_accept
	SYS_accept,
#endif
#ifdef SYS_accept4
	SYS_accept4,
#endif
#ifdef SYS_io_uring_setup
	SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register,
#endif
#ifdef SYS_ptrace
	SYS_ptrace,
#endif
#ifdef SYS_process_vm_readv
	SYS_process_vm_readv, SYS_process_vm_writev,
#endif
#ifdef SYS_mount
	SYS_mount,
#endif
#ifdef SYS_umount2
	SYS_umount2,
#endif
#ifdef SYS_pivot_root
	SYS_pivot_root,
#endif
#ifdef SYS_unshare
	SYS_unshare,
#endif
#ifdef SYS_setns
	SYS_setns,
#endif
#ifdef SYS_bpf
	SYS_bpf,
#endif
#ifdef SYS_perf_event_open
	SYS_perf_event_open,
#endif
#ifdef SYS_keyctl
	SYS_keyctl, SYS_add_key, SYS_request_key,
#endif
#ifdef SYS_kexec_load
	SYS_kexec_load,
#endif
#ifdef SYS_init_module
	SYS_init_module, SYS_finit_module, SYS_delete_module,
#endif
#ifdef SYS_reboot
	SYS_reboot,
#endif
#ifdef SYS_chroot
	SYS_chroot,
#endif
#ifdef SYS_acct
	SYS_acct,
#endif
#ifdef SYS_userfaultfd
	SYS_userfaultfd,
#endif
};
enum { NREFUSED = sizeof refused / sizeof *refused };

static struct sock_filter filter[NREFUSED + 8];
static struct sock_fprog prog;
static int use_filter = 1;

static int nthreads = 1;
static double duration = 10;
static int duration_set;
static long rounds;
static size_t nbytes = 64;
static const char *program = "/bin/cat";
static uint8_t *payload;
static struct timespec t_start;
static atomic_int errors_shown;

/* Assemble the filter once: see the layout in the comments. */
static void
build_filter(void)
{
	size_t n = 0;
#ifdef BENCH_ARCH
	filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	    offsetof(struct seccomp_data, arch));
	filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, BENCH_ARCH, 1, 0);
	filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
#endif
	filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	    offsetof(struct seccomp_data, nr));
#ifdef X32_BIT
	/* x32 numbers: jump over the list and the ALLOW to the refusal. */
	filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, X32_BIT,
	    (uint8_t)(NREFUSED + 1), 0);
#endif
	for (size_t i = 0; i < NREFUSED; i++)
		filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
		    (uint32_t)refused[i], (uint8_t)(NREFUSED - i), 0);
	filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
	    SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA));
	prog.len = (unsigned short)n;
	prog.filter = filter;
}

static void
fail(struct worker *w, const char *what, int err)
{
	w->errors++;
	if (atomic_fetch_add(&errors_shown, 1) < 5)
		fprintf(stderr, "spawn-bench: thread %d: %s%s%s\n", w->index, what,
		    err ? ": " : "", err ? strerror(err) : "");
}

/*
 * Start the program confined with in_r as stdin and out_w as stdout.
 * The child shares memory with this thread until it execs: it only makes
 * system calls, and leaves with _exit.
 */
static pid_t __attribute__((noinline))
start_child(int in_r, int out_w)
{
	static char *const envp[] = {"PATH=/usr/bin:/bin", NULL};
	char *argv[] = {(char *)program, NULL};
	pid_t pid = vfork();
	if (pid != 0)
		return pid;
	if (use_filter) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
			_exit(126);
	}
	if (dup2(in_r, 0) < 0 || dup2(out_w, 1) < 0)
		_exit(126);
	execve(program, argv, envp);
	_exit(127);
}

/* One iteration.  Returns 0 if the output came back whole and the child
 * exited 0. */
static int
one_run(struct worker *w)
{
	int in[2], out[2], st, result = -1;
	size_t sent = 0, got = 0;
	char buf[65536];

	if (pipe2(in, O_CLOEXEC) != 0) {
		fail(w, "pipe", errno);
		return -1;
	}
	if (pipe2(out, O_CLOEXEC) != 0) {
		fail(w, "pipe", errno);
		close(in[0]);
		close(in[1]);
		return -1;
	}
	pid_t pid = start_child(in[0], out[1]);
	int err = errno;
	close(in[0]);
	close(out[1]);
	if (pid < 0) {
		fail(w, "vfork", err);
		close(in[1]);
		close(out[0]);
		return -1;
	}
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	if (nbytes == 0) {
		close(in[1]);
		in[1] = -1;
	}
	/* Write and read at once, so that any size goes through. */
	for (;;) {
		struct pollfd p[2] = {{out[0], POLLIN, 0}, {in[1], POLLOUT, 0}};
		int np = in[1] >= 0 ? 2 : 1;
		if (poll(p, (nfds_t)np, 30000) <= 0) {
			fail(w, "no progress within 30 s", 0);
			kill(pid, SIGKILL);
			break;
		}
		if (np == 2 && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t n = write(in[1], payload + sent, nbytes - sent);
			if (n > 0)
				sent += (size_t)n;
			if ((n < 0 && errno != EAGAIN && errno != EINTR) || sent == nbytes) {
				close(in[1]);
				in[1] = -1;
			}
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(out[0], buf, sizeof buf);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			got += (size_t)n;
		}
	}
	if (in[1] >= 0)
		close(in[1]);
	close(out[0]);
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			fail(w, "waitpid", errno);
			return -1;
		}
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char what[64];
		if (WIFEXITED(st))
			snprintf(what, sizeof what, "%s exited %d", program, WEXITSTATUS(st));
		else
			snprintf(what, sizeof what, "%s killed by signal %d", program,
			    WIFSIGNALED(st) ? WTERMSIG(st) : 0);
		fail(w, what, 0);
	} else if (got != nbytes) {
		char what[96];
		snprintf(what, sizeof what, "output was %zu bytes, expected %zu", got, nbytes);
		fail(w, what, 0);
	} else {
		result = 0;
	}
	return result;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	for (long i = 0;; i++) {
		if (rounds && i >= rounds)
			break;
		if ((!rounds || duration_set) && now_since(&t_start) >= duration)
			break;
		struct timespec t0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (one_run(w) == 0)
			record(w, now_since(&t0));
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	lg_prog = "spawn-bench";
	enum { OPT_ROUNDS = 256, OPT_NOFILTER, OPT_PROGRAM };
	static const struct option opts[] = {
		{"concurrency", required_argument, NULL, 'c'},
		{"duration", required_argument, NULL, 'd'},
		{"size", required_argument, NULL, 's'},
		{"rounds", required_argument, NULL, OPT_ROUNDS},
		{"no-filter", no_argument, NULL, OPT_NOFILTER},
		{"program", required_argument, NULL, OPT_PROGRAM},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int o;

	while ((o = getopt_long(argc, argv, "c:d:s:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': nthreads = (int)number(optarg, "-c", 1, 4096); break;
		case 'd': {
			char *end;
			duration = strtod(optarg, &end);
			if (end == optarg || *end || !(duration > 0) || duration > 86400) {
				fprintf(stderr, "spawn-bench: -d: '%s' is not a number of seconds\n", optarg);
				return 64;
			}
			duration_set = 1;
			break;
		}
		case 's': nbytes = (size_t)number(optarg, "-s", 0, 1LL << 32); break;
		case OPT_ROUNDS: rounds = (long)number(optarg, "--rounds", 1, 1LL << 40); break;
		case OPT_NOFILTER: use_filter = 0; break;
		case OPT_PROGRAM: program = optarg; break;
		case 'h': fputs(usage_text, stdout); return 0;
		default: fputs(usage_text, stderr); return 64;
		}
	}
	if (optind != argc) {
		fputs(usage_text, stderr);
		return 64;
	}
	payload = malloc(nbytes ? nbytes : 1);
	if (!payload) {
		fprintf(stderr, "spawn-bench: out of memory\n");
		return 70;
	}
	for (size_t i = 0; i < nbytes; i++)
		payload[i] = (uint8_t)('a' + i % 26);
	signal(SIGPIPE, SIG_IGN);
	build_filter();

	struct worker *ws = calloc((size_t)nthreads, sizeof *ws);
	if (!ws) {
		fprintf(stderr, "spawn-bench: out of memory\n");
		return 70;
	}
	clock_gettime(CLOCK_MONOTONIC, &t_start);
	int started = 0;
	for (int i = 0; i < nthreads; i++) {
		ws[i].index = i;
		if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0) {
			fprintf(stderr, "spawn-bench: could start only %d threads\n", i);
			break;
		}
		started++;
	}
	struct lg_result r;
	if (lg_finish(ws, started, &t_start, &r))
		return 70;
	printf("spawn-bench: %s%s, %d thread%s, %zu B each: %zu runs, %ld errors in %.2f s: "
	    "%.0f runs/s, latency p50 %u us, p99 %u us\n",
	    program, use_filter ? " with a seccomp filter" : "", started, started == 1 ? "" : "s",
	    nbytes, r.total, r.errors, r.secs, r.rate, r.p50, r.p99);
	lg_print(&r);
	free(ws);
	free(payload);
	return r.total > 0 && r.errors == 0 ? 0 : 1;
}
