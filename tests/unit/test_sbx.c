/*
 * test_sbx.c - confinement, tested by running real programs through
 * sbx_spawn and the launcher build/meshd-sandbox: the hostile helper
 * (build/tests/hostile) and ordinary Unix filters.  Cases that need root
 * (uids, namespaces) are skipped, with a note, otherwise.
 *
 * Work dirs are made the way meshd makes them: RUNDIR/N, mode 0700, owned
 * by the slot's uid, in a RUNDIR of mode 0711.  All cases run with
 * sbx_open_run(RUNDIR) (shared namespaces when root), then, as root, the
 * confinement properties run again through the spawner (sbx_start), and
 * then with sbx_open (every namespace per call).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "sbx.h"
/*
 * t_run keeps its counters in non-volatile locals across setjmp; with
 * this file's larger cases GCC warns that they might be clobbered.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wclobbered"
#include "t.h"
#pragma GCC diagnostic pop

static char launcher[PATH_MAX], hostile[PATH_MAX];
static char rundir[] = "/tmp/sbxrun.XXXXXX";
static struct sbx *S;
static int is_root, shared_pass, spawner_pass;
static unsigned next_slot = 1, next_dir = 1;

static char *env_plain[] = {"PATH=/usr/bin:/bin", "LC_ALL=C", NULL};

/*
 * In a sanitizer build the helper is instrumented too: LeakSanitizer needs
 * ptrace, which the filter refuses, and ASan would catch the signals the
 * tests raise.  The helper's environment then gets this line as well.
 */
#if defined(__SANITIZE_ADDRESS__)
#define ASAN_BUILD 1
#else
#define ASAN_BUILD 0
#endif
static char asan_env[] = "ASAN_OPTIONS=detect_leaks=0:handle_segv=0:handle_sigbus=0:"
			 "handle_sigfpe=0:handle_abort=0";

struct buf {
	char *p;
	size_t len, cap;
};

struct job {
	const char *path;
	char *const *argv;
	char *const *envp;     /* env_plain when NULL */
	struct sbx_limits lim;
	const char *in;
	size_t inlen;
	size_t close_out_after; /* stop reading stdout after this; 0 = never */
	int kill_after_ms;      /* kill(-pid, SIGKILL) after this; 0 = never */
	int no_exe_fd;          /* run by path only */
	int plain;              /* unconfined, for comparison */
	const char *check_file; /* set found if this exists in the work dir */
	int timeout_ms;         /* default 60 s */
	int outside;            /* work dir outside the run dir */
};

struct res {
	int status;
	int alone;      /* through the spawner: sbx_reaped's *alone */
	struct buf out, err;
	unsigned slot;
	uid_t uid;
	int found;
	double secs;
};

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
buf_add(struct buf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (!b->p)
			T_FAIL("out of memory");
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
res_free(struct res *r)
{
	free(r->out.p);
	free(r->err.p);
	memset(r, 0, sizeof *r);
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* The number of processes whose real uid is uid. */
static int
count_uid(uid_t uid)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[300], line[256];
		FILE *f;
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%s/status", e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof line, f)) {
			unsigned u;
			if (sscanf(line, "Uid: %u", &u) == 1) {
				n += u == uid;
				break;
			}
		}
		fclose(f);
	}
	closedir(d);
	return n;
}

/* The number of processes with an argument equal to arg. */
static int
count_arg(const char *arg)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[300], cmd[4096];
		size_t len;
		FILE *f;
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		len = fread(cmd, 1, sizeof cmd - 1, f);
		cmd[len] = '\0';
		for (size_t i = 0; i < len; i += strlen(cmd + i) + 1)
			if (!strcmp(cmd + i, arg))
				n++;
		fclose(f);
	}
	closedir(d);
	return n;
}

/* Wait up to ms for every process with the argument arg to be gone. */
static int
arg_gone(const char *arg, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		if (count_arg(arg) == 0)
			return 1;
		usleep(10000);
	}
	return count_arg(arg) == 0;
}

/* Wait up to ms for every process of uid to be gone. */
static int
uid_gone(uid_t uid, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		if (count_uid(uid) == 0)
			return 1;
		usleep(10000);
	}
	return count_uid(uid) == 0;
}

static pid_t
start_plain(const struct job *j, const char *dir, int in, int out, int err)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int r;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in, 0);
	posix_spawn_file_actions_adddup2(&fa, out, 1);
	posix_spawn_file_actions_adddup2(&fa, err, 2);
	posix_spawn_file_actions_addchdir_np(&fa, dir);
	r = posix_spawn(&pid, j->path, &fa, NULL, j->argv, j->envp ? j->envp : env_plain);
	posix_spawn_file_actions_destroy(&fa);
	return r == 0 ? pid : -1;
}

/* Kill a job's group: the launcher's, or through the spawner. */
static void
kill_job(pid_t pid, unsigned slot)
{
	if (pid > 0)
		kill(-pid, SIGKILL);
	else
		T_EQ_INT(sbx_stop(S, slot % SBX_SLOTS), 0);
}

/* True once the job has ended, its wait status in *status. */
static int
reap_job(pid_t pid, unsigned slot, int *status, int *alone, int block)
{
	uint32_t id;
	int r;

	if (pid > 0) {
		pid_t w;
		while ((w = waitpid(pid, status, block ? 0 : WNOHANG)) < 0 && errno == EINTR)
			;
		return w == pid;
	}
	for (int tries = 0; tries < 600; tries++) {
		struct pollfd p = {sbx_fd(S), POLLIN, 0};
		while ((r = sbx_reaped(S, &id, status, alone)) == 1)
			if (id == slot % SBX_SLOTS)
				return 1;
		T_EQ_INT(r, 0);
		if (!block)
			return 0;
		poll(&p, 1, 100);
	}
	return 0;
}

/* Run a job to its end, feeding its input and collecting its output. */
static void
run(const struct job *j, struct res *r)
{
	char dir[PATH_MAX];
	int in[2], out[2], err[2], exe = -1, killed = 0, reaped = 0;
	size_t off = 0, outn = 0;
	double t0 = now(), t_reaped = 0;
	int timeout = j->timeout_ms ? j->timeout_ms : 60000;
	pid_t pid;

	char *const *envp = j->envp ? j->envp : env_plain;
	char *env2[64];

	memset(r, 0, sizeof *r);
	r->slot = next_slot++;
	if (ASAN_BUILD && j->path == hostile) {
		size_t k = 0;
		while (envp[k] && k < 62) {
			env2[k] = envp[k];
			k++;
		}
		env2[k++] = asan_env;
		env2[k] = NULL;
		envp = env2;
	}
	if (j->outside) {
		strcpy(dir, "/tmp/sbxtest.XXXXXX");
		T_ASSERT(mkdtemp(dir) != NULL);
	} else {
		snprintf(dir, sizeof dir, "%s/%u", rundir, next_dir++);
		T_ASSERT(mkdir(dir, 0700) == 0);
	}
	if (!j->plain) {
		r->uid = sbx_slot_uid(S, r->slot);
		T_ASSERT(chown(dir, r->uid, sbx_slot_gid(S, r->slot)) == 0);
	}
	T_ASSERT(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0 &&
		 pipe2(err, O_CLOEXEC) == 0);
	if (j->plain) {
		pid = start_plain(j, dir, in[0], out[1], err[1]);
		T_ASSERT(pid > 0);
	} else {
		struct sbx_spec spec = {
			.path = j->path,
			.exe_fd = -1,
			.argv = j->argv,
			.envp = envp,
			.workdir = dir,
			.slot = r->slot,
			.lim = j->lim,
			.fd_in = in[0],
			.fd_out = out[1],
			.fd_err = err[1],
		};
		if (!j->no_exe_fd) {
			exe = open(j->path, O_PATH | O_CLOEXEC);
			T_ASSERT(exe >= 0);
			spec.exe_fd = exe;
		}
		if (spawner_pass) {
			T_EQ_INT(sbx_start(S, &spec, r->slot % SBX_SLOTS), 0);
			pid = 0;
		} else {
			T_EQ_INT(sbx_spawn(S, &spec, &pid), 0);
		}
		if (exe >= 0)
			close(exe);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	if (j->inlen == 0) {
		close(in[1]);
		in[1] = -1;
	} else {
		fcntl(in[1], F_SETFL, O_NONBLOCK);
	}
	/* Until both outputs end, or shortly after the process is gone. */
	while (out[0] >= 0 || err[0] >= 0) {
		struct pollfd p[3] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0},
				      {in[1], POLLOUT, 0}};
		char b[65536];
		double t = now();
		if (!killed && j->kill_after_ms && (t - t0) * 1000 > j->kill_after_ms) {
			kill_job(pid, r->slot);
			killed = 1;
		}
		if (!killed && (t - t0) * 1000 > timeout) {
			kill_job(pid, r->slot);
			killed = 1;
			fprintf(stderr, "  (timed out, killed)\n");
		}
		if (!reaped && reap_job(pid, r->slot, &r->status, &r->alone, 0)) {
			reaped = 1;
			t_reaped = t;
			r->secs = t - t0;
		}
		if (reaped && t - t_reaped > 2.0)
			break;
		if (poll(p, 3, 50) < 0 && errno != EINTR)
			T_FAIL("poll: %s", strerror(errno));
		for (int k = 0; k < 2; k++) {
			int *fd = k ? &err[0] : &out[0];
			ssize_t n;
			if (*fd < 0 || !(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(*fd, b, sizeof b);
			if (n > 0) {
				buf_add(k ? &r->err : &r->out, b, n);
				if (!k)
					outn += n;
			}
			if (n == 0 || (n < 0 && errno != EINTR) ||
			    (!k && j->close_out_after && outn >= j->close_out_after)) {
				close(*fd);
				*fd = -1;
			}
		}
		if (in[1] >= 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t n = write(in[1], j->in + off, j->inlen - off);
			if (n > 0)
				off += n;
			if ((n < 0 && errno != EAGAIN && errno != EINTR) || off == j->inlen) {
				close(in[1]);
				in[1] = -1;
			}
		}
	}
	if (out[0] >= 0)
		close(out[0]);
	if (err[0] >= 0)
		close(err[0]);
	if (in[1] >= 0)
		close(in[1]);
	if (!reaped) {
		T_ASSERT(reap_job(pid, r->slot, &r->status, &r->alone, 1));
		r->secs = now() - t0;
	}
	/* The launcher's own failures, to see why a case fails. */
	if (WIFEXITED(r->status) && WEXITSTATUS(r->status) == 127 && r->err.p &&
	    strncmp(r->err.p, "meshd-sandbox: ", 15) == 0)
		fprintf(stderr, "  (%.*s)\n", (int)strcspn(r->err.p, "\n"), r->err.p);
	/* Whatever is left of the group (nothing, with a pid namespace). */
	if (pid > 0)
		kill(-pid, SIGKILL);
	if (j->check_file) {
		char path[PATH_MAX];
		r->found = (size_t)snprintf(path, sizeof path, "%s/%s", dir, j->check_file) <
		    sizeof path && access(path, F_OK) == 0;
	}
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Run argv confined, check it exits 0, return its output in r. */
static void
run_hostile(struct res *r, const struct sbx_limits *lim, const char *a1, const char *a2)
{
	char *argv[] = {"hostile", (char *)a1, (char *)a2, NULL};
	struct job j = {.path = hostile, .argv = argv};
	if (lim)
		j.lim = *lim;
	run(&j, r);
}

/* Skip (as passed, with a note) unless the layers are in force. */
static int
skip_unless(unsigned layers, const char *why)
{
	if ((sbx_layers(S) & layers) == layers)
		return 0;
	fprintf(stderr, "  skip %s: that layer is not in force here\n", why);
	return 1;
}

static void
case_open(void)
{
	unsigned l = sbx_layers(S);
	fprintf(stderr, "  confinement: %s\n", sbx_describe(S));
	T_ASSERT(l & SBX_SECCOMP);
	T_ASSERT(l & SBX_RLIMITS);
	T_ASSERT(strstr(sbx_describe(S), "seccomp") != NULL);
	if (is_root) {
		T_ASSERT(l & SBX_SETUID);
		T_ASSERT(l & SBX_NETNS);
		T_ASSERT(l & SBX_PIDNS);
		T_ASSERT(l & SBX_MNTNS);
		T_ASSERT(!(l & SBX_USERNS));
		T_EQ_INT(sbx_slot_uid(S, 5), SBX_UID_BASE + 5);
		/* The holder must work here; the fallback is tested separately. */
		T_EQ_INT(!!(l & SBX_SHARED), shared_pass);
		T_EQ_INT(!!(l & SBX_SPAWNER), spawner_pass);
	} else {
		T_ASSERT(!(l & SBX_SHARED));
	}
}

static void
case_open_bad(void)
{
	struct sbx *s = (struct sbx *)1;
	T_EQ_INT(sbx_open(&s, "/nonexistent/meshd-sandbox", ~0u), BABL_ENOENT);
	T_ASSERT(s == NULL);
	/* Only what the operator allows. */
	T_EQ_INT(sbx_open(&s, launcher, SBX_SECCOMP | SBX_RLIMITS), 0);
	T_EQ_INT(sbx_layers(s), SBX_SECCOMP | SBX_RLIMITS);
	T_EQ_STR(sbx_describe(s), "seccomp, rlimits, no namespaces");
	sbx_close(s);
}

static void
case_cat_bytes(void)
{
	size_t n = 1 << 20;
	char *data = malloc(n);
	char *argv[] = {"cat", NULL};
	struct job j = {.path = "/bin/cat", .argv = argv, .in = data, .inlen = n};
	struct res r;
	uint32_t x = 12345;

	T_ASSERT(data);
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245 + 12345;
		data[i] = (char)(x >> 16);
	}
	run(&j, &r);
	T_ASSERT(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
	T_EQ_INT(r.out.len, n);
	T_EQ_MEM(r.out.p, data, n);
	T_EQ_INT(r.err.len, 0);
	res_free(&r);
	free(data);
}

static void
case_exit_status(void)
{
	char *argv[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
	struct job j = {.path = "/bin/sh", .argv = argv};
	struct res r;

	run(&j, &r);
	T_ASSERT(WIFEXITED(r.status));
	T_EQ_INT(WEXITSTATUS(r.status), 3);
	T_EQ_STR(r.out.p, "out\n");
	T_EQ_STR(r.err.p, "err\n");
	/* (meshd then knows the work dir stays as it leaves it) */
	if (spawner_pass)
		T_EQ_INT(r.alone, 1);
	res_free(&r);
}

static void
case_signal_segv(void)
{
	struct res r;
	run_hostile(&r, NULL, "kill", "11");
	if (!WIFSIGNALED(r.status))
		T_FAIL("status %#x, stderr: %s", r.status, r.err.p ? r.err.p : "");
	T_EQ_INT(WTERMSIG(r.status), SIGSEGV);
	T_ASSERT(!WCOREDUMP(r.status));
	res_free(&r);
}

static void
case_sigpipe(void)
{
	char *argv[] = {"yes", NULL};
	struct job j = {.path = "/usr/bin/yes", .argv = argv, .close_out_after = 4096};
	struct res r;

	/* Like yes | head; this process ignores SIGPIPE, the service must not. */
	run(&j, &r);
	T_ASSERT(WIFSIGNALED(r.status));
	T_EQ_INT(WTERMSIG(r.status), SIGPIPE);
	res_free(&r);
}

static void
case_socket(void)
{
	struct res r;
	run_hostile(&r, NULL, "socket", NULL);
	T_ASSERT(WIFEXITED(r.status));
	T_EQ_INT(WEXITSTATUS(r.status), 3);
	T_EQ_STR(r.out.p, "socket: refused (EPERM)\n");
	res_free(&r);
}

static void
case_ptrace(void)
{
	struct res r;
	run_hostile(&r, NULL, "ptrace", NULL);
	T_ASSERT(WIFEXITED(r.status));
	T_EQ_INT(WEXITSTATUS(r.status), 3);
	T_EQ_STR(r.out.p, "ptrace: refused (EPERM)\n");
	res_free(&r);
}

static void
case_x32(void)
{
	struct res r;
	run_hostile(&r, NULL, "x32", NULL);
	/* The filter kills on a foreign ABI; never does the call go through. */
	T_ASSERT(WIFSIGNALED(r.status));
	T_EQ_INT(WTERMSIG(r.status), SIGSYS);
	T_EQ_INT(r.out.len, 0);
	res_free(&r);
}

static void
case_forkbomb(void)
{
	struct sbx_limits lim = {.nproc = 32};
	struct res r;

	run_hostile(&r, &lim, "forkbomb", NULL);
	T_ASSERT(WIFEXITED(r.status));
	T_EQ_INT(WEXITSTATUS(r.status), 5);
	T_ASSERT(strstr(r.out.p, "forkbomb: fork failed after") != NULL);
	if (is_root)
		T_ASSERT(uid_gone(r.uid, 2000));
	res_free(&r);
}

static void
case_fsize(void)
{
	struct sbx_limits lim = {.fsize = 1 << 20};
	struct res r;

	run_hostile(&r, &lim, "fsize", NULL);
	T_ASSERT(WIFSIGNALED(r.status));
	T_EQ_INT(WTERMSIG(r.status), SIGXFSZ);
	res_free(&r);
}

static void
case_mem(void)
{
	struct sbx_limits lim = {.mem_bytes = 256 << 20};
	struct res r;

	/* ASan reserves terabytes of address space: no RLIMIT_AS for it. */
	if (ASAN_BUILD) {
		fprintf(stderr, "  skip mem: the helper is built with ASan\n");
		return;
	}
	run_hostile(&r, &lim, "mem", NULL);
	T_ASSERT(WIFEXITED(r.status));
	T_EQ_INT(WEXITSTATUS(r.status), 4);
	T_ASSERT(strstr(r.out.p, "mem: malloc failed") != NULL);
	res_free(&r);
}

static void
case_cpu(void)
{
	struct sbx_limits lim = {.cpu_secs = 1};
	struct res r;

	run_hostile(&r, &lim, "spin", NULL);
	T_ASSERT(WIFSIGNALED(r.status));
	T_ASSERT(WTERMSIG(r.status) == SIGXCPU || WTERMSIG(r.status) == SIGKILL);
	T_ASSERT(r.secs < 10);
	res_free(&r);
}

static void
case_fds(void)
{
	/* An inheritable fd in the parent must not reach the service. */
	int leak = dup(2);
	struct res r;

	T_ASSERT(leak > 2);
	run_hostile(&r, NULL, "fds", NULL);
	close(leak);
	T_ASSERT(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
	T_EQ_STR(r.out.p, "fds: 0 1 2\n");
	res_free(&r);
}

static void
case_env(void)
{
	char *argv[] = {"hostile", "env", NULL};
	char *envp[] = {"BABL_SERVICE=x", "B=two words", "C=", NULL};
	struct job j = {.path = hostile, .argv = argv, .envp = envp};
	struct res r;

	run(&j, &r);
	T_ASSERT(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
	if (ASAN_BUILD)
		T_ASSERT(strncmp(r.out.p, "BABL_SERVICE=x\nB=two words\nC=\nASAN_OPTIONS=", 43) == 0);
	else
		T_EQ_STR(r.out.p, "BABL_SERVICE=x\nB=two words\nC=\n");
	res_free(&r);
}

static void
case_env_empty(void)
{
	char *argv[] = {"hostile", "env", NULL};
	char *envp[] = {NULL};
	struct job j = {.path = hostile, .argv = argv, .envp = envp};
	struct res r;

	run(&j, &r);
	T_ASSERT(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
	T_EQ_INT(r.out.len, ASAN_BUILD ? sizeof asan_env : 0);
	res_free(&r);
}

static void
case_uid(void)
{
	char want[64];
	struct res r;

	if (skip_unless(SBX_SETUID, "uid"))
		return;
	run_hostile(&r, NULL, "id", NULL);
	T_ASSERT(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
	T_ASSERT(r.uid != 0);
	T_EQ_INT(r.uid, SBX_UID_BASE + r.slot);
	snprintf(want, sizeof want, "uid=%u gid=%u euid=%u egid=%u\n", r.uid, r.uid,
		 r.uid, r.uid);
	T_EQ_STR(r.out.p, want);
	res_free(&r);
}

static void
case_writefs(void)
{
	char *argv[] = {"hostile", "writefs", "inside", NULL};
	struct job j = {.path = hostile, .argv = argv, .check_file = "inside"};
	struct res r;

	run(&j, &r);
	T_ASSERT(WIFEXITED(r.status));
	T_EQ_INT(WEXITSTATUS(r.status), 0);
	T_ASSERT(r.found);
	res_free(&r);
	if (skip_unless(SBX_MNTNS, "writefs outside the work dir"))
		return;
	run_hostile(&r, NULL, "writefs", "/tmp/sbxtest-outside");
	T_EQ_INT(WEXITSTATUS(r.status), 9);
	T_EQ_STR(r.out.p, "writefs: /tmp/sbxtest-outside: refused (EROFS)\n");
	T_ASSERT(access("/tmp/sbxtest-outside", F_OK) != 0);
	res_free(&r);
	run_hostile(&r, NULL, "writefs", "/etc/sbxtest-outside");
	T_EQ_INT(WEXITSTATUS(r.status), 9);
	T_ASSERT(access("/etc/sbxtest-outside", F_OK) != 0);
	res_free(&r);
}

static void
case_net(void)
{
	struct res r;

	if (skip_unless(SBX_NETNS, "net"))
		return;
	run_hostile(&r, NULL, "net", NULL);
	T_ASSERT(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
	T_EQ_STR(r.out.p, "lo\n");
	res_free(&r);
}

static void
case_pid(void)
{
	struct res r;

	if (skip_unless(SBX_PIDNS, "pid"))
		return;
	if (spawner_pass) {
		fprintf(stderr, "  skip pid: the spawner's pid space is shared (see proc)\n");
		return;
	}
	/* pid 1 is the launcher's init; the program comes next. */
	run_hostile(&r, NULL, "pid", NULL);
	T_ASSERT(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
	T_EQ_STR(r.out.p, "2\n");
	res_free(&r);
}

/*
 * With the spawner: a pid namespace that is not ours, whose /proc shows the
 * call's own processes only (sh, ls and grep here) and not pid 1.
 */
static void
proc_spawner(void)
{
	char *argv[] = {"sh", "-c",
			"readlink /proc/self/ns/pid; ls /proc | grep -c '^[0-9]'; "
			"cat /proc/1/cmdline >/dev/null 2>&1 && echo shown || echo hidden",
			NULL};
	struct job j = {.path = "/bin/sh", .argv = argv};
	char mine[64] = "", want[80];
	struct res r;
	ssize_t n;

	T_ASSERT((n = readlink("/proc/self/ns/pid", mine, sizeof mine - 1)) > 0);
	mine[n] = '\0';
	run(&j, &r);
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0)
		T_FAIL("status %#x, stderr: %s", r.status, r.err.p ? r.err.p : "");
	T_ASSERT(r.out.p != NULL);
	snprintf(want, sizeof want, "%s\n", mine);
	T_ASSERT(strncmp(r.out.p, "pid:[", 5) == 0);
	T_ASSERT(strncmp(r.out.p, want, strlen(want)) != 0);
	const char *l2 = strchr(r.out.p, '\n') + 1;
	T_ASSERT(atoi(l2) >= 2 && atoi(l2) <= 4);
	T_ASSERT(strstr(l2, "\nhidden\n") != NULL);
	res_free(&r);
}

/*
 * /proc shows the call's own pid namespace: the program is pid 2, pid 1 is
 * the launcher's init, and nothing else of the machine is there.
 */
static void
case_proc(void)
{
	char *argv[] = {"sh", "-c",
			"echo $$; tr '\\0' ' ' </proc/1/cmdline; echo; ls /proc", NULL};
	struct job j = {.path = "/bin/sh", .argv = argv};
	struct res r;
	char *line, *save = NULL;
	int n = 0, pids = 0, self = 0;

	if (skip_unless(SBX_PIDNS | SBX_MNTNS, "proc"))
		return;
	if (spawner_pass) {
		proc_spawner();
		return;
	}
	run(&j, &r);
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0)
		T_FAIL("status %#x, stderr: %s", r.status, r.err.p ? r.err.p : "");
	T_ASSERT(r.out.p != NULL);
	for (line = strtok_r(r.out.p, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
		if (n == 0)
			T_EQ_STR(line, "2");
		else if (n == 1)
			T_ASSERT(strncmp(line, "meshd-sandbox ", 14) == 0);
		else if (line[0] >= '0' && line[0] <= '9') {
			T_ASSERT(atoi(line) >= 1 && atoi(line) < 10);
			pids++;
		} else
			self |= !strcmp(line, "self");
	}
	/* init, sh, and ls. */
	T_ASSERT(pids >= 3 && pids < 6);
	T_ASSERT(self);
	res_free(&r);
}

/*
 * Another slot's work dir can be neither read nor written, nor can the
 * run dir that holds them, nor anything outside it.
 */
static void
case_other_slot(void)
{
	char other[64], file[128], cmd[1024], path[256];
	char *argv[] = {"sh", "-c", cmd, NULL};
	struct job j = {.path = "/bin/sh", .argv = argv};
	struct res r;
	int fd;

	if (skip_unless(SBX_SETUID, "other_slot"))
		return;
	snprintf(other, sizeof other, "%s/other", rundir);
	snprintf(file, sizeof file, "%s/secret", other);
	T_ASSERT(mkdir(other, 0700) == 0);
	fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	T_ASSERT(fd >= 0);
	T_ASSERT(write(fd, "hidden words\n", 13) == 13);
	close(fd);
	T_ASSERT(chown(file, sbx_slot_uid(S, 999), sbx_slot_gid(S, 999)) == 0);
	T_ASSERT(chown(other, sbx_slot_uid(S, 999), sbx_slot_gid(S, 999)) == 0);
	snprintf(cmd, sizeof cmd,
		 "cat %s; ls %s; echo x >%s/new; echo x >%s/evil; echo x >%s/../sbxtest-evil2; "
		 "echo done", file, other, other, rundir, rundir);
	run(&j, &r);
	T_ASSERT(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
	T_EQ_STR(r.out.p, "done\n");
	T_ASSERT(r.err.p && !strstr(r.err.p, "hidden"));
	T_ASSERT(strstr(r.err.p, "Permission denied") != NULL);
	if (sbx_layers(S) & SBX_MNTNS)
		T_ASSERT(strstr(r.err.p, "Read-only file system") != NULL);
	res_free(&r);
	snprintf(path, sizeof path, "%s/new", other);
	T_ASSERT(access(path, F_OK) != 0);
	snprintf(path, sizeof path, "%s/evil", rundir);
	T_ASSERT(access(path, F_OK) != 0);
	snprintf(path, sizeof path, "%s/../sbxtest-evil2", rundir);
	T_ASSERT(access(path, F_OK) != 0);
	nftw(other, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A work dir outside the run dir: namespaces of its own, same confinement. */
static void
case_outside_rundir(void)
{
	char *argv[] = {"hostile", "writefs", "inside", NULL};
	struct job j = {.path = hostile, .argv = argv, .check_file = "inside", .outside = 1};
	struct res r;

	run(&j, &r);
	T_ASSERT(WIFEXITED(r.status));
	T_EQ_INT(WEXITSTATUS(r.status), 0);
	T_ASSERT(r.found);
	res_free(&r);
	if (skip_unless(SBX_MNTNS | SBX_PIDNS, "outside_rundir"))
		return;
	j.argv = (char *[]){"hostile", "writefs", "/tmp/sbxtest-outside", NULL};
	j.check_file = NULL;
	run(&j, &r);
	T_EQ_INT(WEXITSTATUS(r.status), 9);
	T_ASSERT(access("/tmp/sbxtest-outside", F_OK) != 0);
	res_free(&r);
	j.argv = (char *[]){"hostile", "pid", NULL};
	run(&j, &r);
	T_ASSERT(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
	T_EQ_STR(r.out.p, "2\n");
	res_free(&r);
}

static void
case_kill_group(void)
{
	char *argv[] = {"sh", "-c",
			"/bin/sleep 987651 & /bin/sleep 987651 & exec /bin/sleep 987651", NULL};
	struct job j = {.path = "/bin/sh", .argv = argv, .kill_after_ms = 300};
	struct res r;

	run(&j, &r);
	T_ASSERT(WIFSIGNALED(r.status));
	T_EQ_INT(WTERMSIG(r.status), SIGKILL);
	T_ASSERT(r.secs < 5);
	T_ASSERT(arg_gone("987651", 2000));
	res_free(&r);
}

static void
case_kill_escaped(void)
{
	/* A child that leaves the process group still dies with the rest. */
	char *argv[] = {"sh", "-c", "setsid /bin/sleep 987652 & exec /bin/sleep 987652", NULL};
	struct job j = {.path = "/bin/sh", .argv = argv, .kill_after_ms = 300};
	struct res r;

	if (skip_unless(SBX_PIDNS, "kill_escaped"))
		return;
	run(&j, &r);
	T_ASSERT(WIFSIGNALED(r.status));
	T_EQ_INT(WTERMSIG(r.status), SIGKILL);
	T_ASSERT(arg_gone("987652", 2000));
	res_free(&r);
}

/*
 * A program that ends normally: what it started, in its group or not, dies
 * with it (the launcher's pid 1, or the spawner's sweep of its uid).
 */
static void
case_exit_escaped(void)
{
	char *argv[] = {"sh", "-c",
			"/bin/sleep 987653 & setsid /bin/sleep 987653 & "
			"(setsid /bin/sleep 987653 & wait) & /bin/sleep 0.5; exit 0",
			NULL};
	struct job j = {.path = "/bin/sh", .argv = argv};
	struct res r;

	if (skip_unless(SBX_PIDNS, "exit_escaped"))
		return;
	run(&j, &r);
	T_ASSERT(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
	if (spawner_pass)
		T_EQ_INT(r.alone, 0);
	T_ASSERT(arg_gone("987653", 2000));
	res_free(&r);
}

/* Our child running meshd-sandbox -S (the spawner's holder), or 0. */
static pid_t
find_spawner(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = 0;

	while (d && (e = readdir(d)) && !found) {
		char path[300], b[256];
		long ppid = 0;
		FILE *f;
		size_t n;
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		if (fscanf(f, "%*d (%*[^)]) %*c %ld", &ppid) != 1)
			ppid = 0;
		fclose(f);
		if (ppid != getpid())
			continue;
		snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		n = fread(b, 1, sizeof b - 1, f);
		fclose(f);
		/* "meshd-sandbox\0-S\0..." */
		if (n > 17 && memcmp(b, "meshd-sandbox\0-S\0", 17) == 0)
			found = (pid_t)atol(e->d_name);
	}
	if (d)
		closedir(d);
	return found;
}

/*
 * The spawner dies (its holder is killed) while a call runs: that call
 * ends as killed, sbx_reaped says the spawner is gone, and later calls
 * start through the launcher.  Last in the spawner's pass.
 */
static void
case_spawner_gone(void)
{
	char *argv[] = {"sleep", "987654", NULL};
	char dir[PATH_MAX];
	int null = open("/dev/null", O_RDWR | O_CLOEXEC), r, st = 0, eio = 0, ended = 0, alone = 1;
	uint32_t id;
	pid_t h;

	if (!spawner_pass) {
		fprintf(stderr, "  skip spawner_gone: no spawner in this pass\n");
		close(null);
		return;
	}
	snprintf(dir, sizeof dir, "%s/%u", rundir, next_dir++);
	T_ASSERT(mkdir(dir, 0700) == 0);
	T_ASSERT(chown(dir, sbx_slot_uid(S, 777), sbx_slot_gid(S, 777)) == 0);
	struct sbx_spec spec = {.path = "/bin/sleep", .exe_fd = -1, .argv = argv,
				.envp = env_plain, .workdir = dir, .slot = 777,
				.fd_in = null, .fd_out = null, .fd_err = null};
	T_EQ_INT(sbx_start(S, &spec, 777), 0);
	close(null);
	/* It runs (the spawner starts it a little later). */
	for (int i = 0; i < 500 && count_arg("987654") == 0; i++)
		usleep(10000);
	T_ASSERT(count_arg("987654") > 0);
	h = find_spawner();
	T_ASSERT(h > 0);
	T_ASSERT(kill(h, SIGKILL) == 0);
	while (waitpid(h, NULL, 0) < 0 && errno == EINTR)
		;
	for (int tries = 0; tries < 100 && !ended; tries++) {
		struct pollfd p = {sbx_fd(S), POLLIN, 0};
		if (p.fd >= 0)
			poll(&p, 1, 100);
		while ((r = sbx_reaped(S, &id, &st, &alone)) != 0) {
			if (r == BABL_EIO) {
				eio++;
				continue;
			}
			T_EQ_INT(r, 1);
			T_EQ_INT(id, 777);
			T_EQ_INT(alone, 0);
			ended = 1;
		}
	}
	T_EQ_INT(eio, 1);
	T_ASSERT(ended);
	T_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	T_ASSERT(arg_gone("987654", 2000));
	T_ASSERT(!sbx_spawner(S));
	T_EQ_INT(sbx_fd(S), -1);
	T_ASSERT(strstr(sbx_describe(S), "spawner") == NULL);
	rmdir(dir);
	/* The launcher serves from now on. */
	spawner_pass = 0;
	case_cat_bytes();
	spawner_pass = 1;
}

static void
case_setup_failure(void)
{
	char *argv[] = {"nothing", NULL};
	struct job j = {.path = "/nonexistent/program", .argv = argv, .no_exe_fd = 1};
	struct res r;

	run(&j, &r);
	T_ASSERT(WIFEXITED(r.status));
	T_EQ_INT(WEXITSTATUS(r.status), 127);
	T_EQ_STR(r.err.p, "meshd-sandbox: /nonexistent/program: No such file or directory\n");
	T_EQ_INT(r.out.len, 0);
	res_free(&r);
}

static void
case_script(void)
{
	/* A #! script given by fd falls back to its path. */
	char path[] = "/tmp/sbxscript.XXXXXX";
	const char text[] = "#!/bin/sh\necho \"script $1\"\nexit 7\n";
	char *argv[] = {"script", "arg", NULL};
	struct job j = {.path = path, .argv = argv};
	struct res r;
	int fd = mkstemp(path);

	T_ASSERT(fd >= 0);
	T_ASSERT(write(fd, text, sizeof text - 1) == (ssize_t)sizeof text - 1);
	fchmod(fd, 0755);
	close(fd);
	run(&j, &r);
	unlink(path);
	T_ASSERT(WIFEXITED(r.status));
	T_EQ_INT(WEXITSTATUS(r.status), 7);
	T_EQ_STR(r.out.p, "script arg\n");
	res_free(&r);
}

/* Lines of pseudo-random words, about n bytes. */
static char *
make_lines(size_t n, size_t *len)
{
	char *p = malloc(n + 64);
	uint32_t x = 7;
	size_t i = 0;

	if (!p)
		T_FAIL("out of memory");
	while (i < n) {
		int w = 1 + (x >> 8) % 4;
		for (int k = 0; k < w; k++) {
			x = x * 1664525 + 1013904223;
			i += sprintf(p + i, "%s%c%c%x", k ? " " : "", 'a' + (x >> 24) % 26,
				     'a' + (x >> 16) % 26, (x >> 4) & 0xfff);
		}
		p[i++] = '\n';
	}
	*len = i;
	return p;
}

/* The same filter confined and plain must give the same bytes. */
static void
compare(const char *path, char *const *argv, const char *in, size_t inlen)
{
	struct job j = {.path = path, .argv = argv, .in = in, .inlen = inlen};
	struct res a, b;

	run(&j, &a);
	j.plain = 1;
	run(&j, &b);
	if (!WIFEXITED(a.status) || WEXITSTATUS(a.status) != 0)
		T_FAIL("%s confined: status %#x, stderr: %s", argv[0], a.status,
		       a.err.p ? a.err.p : "");
	T_ASSERT(WIFEXITED(b.status) && WEXITSTATUS(b.status) == 0);
	T_ASSERT(a.out.len > 0);
	T_EQ_INT(a.out.len, b.out.len);
	T_EQ_MEM(a.out.p, b.out.p, a.out.len);
	T_EQ_INT(a.err.len, 0);
	res_free(&a);
	res_free(&b);
}

static void
case_filters(void)
{
	size_t n;
	char *in = make_lines(1 << 20, &n);
	char *sort[] = {"sort", NULL};
	char *sort_par[] = {"sort", "--parallel=2", "-S", "64M", "-n", NULL};
	char *gzip[] = {"gzip", "-n", NULL};
	char *grep[] = {"grep", "-c", "ab", NULL};
	char *wc[] = {"wc", NULL};
	char *sha[] = {"sha256sum", NULL};
	char *tr[] = {"tr", "a-z", "A-Z", NULL};
	char *head[] = {"head", "-n", "5", NULL};
	char *sed[] = {"sed", "s/a/X/g", NULL};
	char *awk[] = {"awk", "{ n += NF } END { print n, NR }", NULL};
	char *sh[] = {"sh", "-c", "cat | sort | head -n 100", NULL};

	compare("/usr/bin/sort", sort, in, n);
	compare("/bin/gzip", gzip, in, n);
	compare("/bin/grep", grep, in, n);
	compare("/usr/bin/wc", wc, in, n);
	compare("/usr/bin/sha256sum", sha, in, n);
	compare("/usr/bin/tr", tr, in, n);
	compare("/usr/bin/head", head, in, n);
	compare("/bin/sed", sed, in, n);
	compare("/usr/bin/awk", awk, in, n);
	compare("/bin/sh", sh, in, n);
	free(in);
	/* Enough lines (over 128 Ki) that GNU sort starts a second thread. */
	in = malloc(300000 * 12);
	T_ASSERT(in);
	n = 0;
	for (uint32_t i = 0, x = 1; i < 300000; i++, x = x * 1664525 + 1013904223)
		n += sprintf(in + n, "%u\n", x % 1000000);
	compare("/usr/bin/sort", sort_par, in, n);
	free(in);
}

/* Spawns per second of /bin/true through s, or plain when s is NULL. */
static double
spawn_rate(struct sbx *s, int n)
{
	char dir[PATH_MAX];
	char *argv[] = {"true", NULL};
	int null = open("/dev/null", O_RDWR | O_CLOEXEC), exe = -1, st;
	double t;
	pid_t pid;

	snprintf(dir, sizeof dir, "%s/bench", rundir);
	T_ASSERT(null >= 0 && mkdir(dir, 0700) == 0);
	if (s) {
		T_ASSERT(chown(dir, sbx_slot_uid(s, 900), sbx_slot_gid(s, 900)) == 0);
		exe = open("/bin/true", O_PATH | O_CLOEXEC);
		T_ASSERT(exe >= 0);
	}
	t = now();
	for (int i = 0; i < n; i++) {
		if (s) {
			struct sbx_spec spec = {.path = "/bin/true", .exe_fd = exe,
						.argv = argv, .envp = env_plain,
						.workdir = dir, .slot = 900, .fd_in = null,
						.fd_out = null, .fd_err = null};
			T_EQ_INT(sbx_spawn(s, &spec, &pid), 0);
		} else {
			posix_spawn_file_actions_t fa;
			posix_spawn_file_actions_init(&fa);
			posix_spawn_file_actions_adddup2(&fa, null, 0);
			posix_spawn_file_actions_adddup2(&fa, null, 1);
			T_EQ_INT(posix_spawn(&pid, "/bin/true", &fa, NULL, argv, env_plain), 0);
			posix_spawn_file_actions_destroy(&fa);
		}
		if (waitpid(pid, &st, 0) != pid || st != 0)
			T_FAIL("spawn %d: status %#x", i, st);
	}
	t = n / (now() - t);
	if (exe >= 0)
		close(exe);
	close(null);
	rmdir(dir);
	return t;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/*
 * Every configuration in turn, ROUNDS times over, so that the noise of a
 * shared machine spreads over all of them alike; the median of each.
 */
static void
case_bench_spawn(void)
{
	enum { ROUNDS = 7, N = 100, NSETS = 7 };
	static const struct {
		unsigned want;
		int shared;
		const char *name;
	} sets[NSETS] = {
		{0, 0, "plain posix_spawn"},
		{~0u, 1, "all layers, shared ns (default)"},
		{~0u & ~SBX_SHARED, 0, "all layers, per call"},
		{~0u & ~SBX_SHARED & ~SBX_NETNS, 0, "all but netns, per call"},
		{SBX_SECCOMP | SBX_RLIMITS | SBX_SETUID | SBX_PIDNS | SBX_MNTNS, 0,
		 "pidns+mntns, per call"},
		{SBX_SECCOMP | SBX_RLIMITS | SBX_SETUID, 0, "no namespaces"},
		{SBX_SECCOMP | SBX_RLIMITS, 0, "seccomp+rlimits only"},
	};
	struct sbx *s[NSETS] = {0};
	double rate[NSETS][ROUNDS];

	for (int i = 1; i < NSETS; i++)
		T_EQ_INT(sbx_open_run(&s[i], launcher, sets[i].want,
				      sets[i].shared ? rundir : NULL), 0);
	for (int k = 0; k < ROUNDS; k++)
		for (int i = 0; i < NSETS; i++)
			rate[i][k] = spawn_rate(s[i], N);
	fprintf(stderr, "  spawn /bin/true, median of %d rounds of %d (min..max):\n", ROUNDS, N);
	for (int i = 0; i < NSETS; i++) {
		qsort(rate[i], ROUNDS, sizeof rate[i][0], cmp_double);
		fprintf(stderr, "  %-32s %5.0f/s (%4.0f..%4.0f) %.2fx  %s\n", sets[i].name,
			rate[i][ROUNDS / 2], rate[i][0], rate[i][ROUNDS - 1],
			rate[i][ROUNDS / 2] / rate[0][ROUNDS / 2],
			s[i] ? sbx_describe(s[i]) : "");
		if (i)
			sbx_close(s[i]);
	}
}

static const struct t_case cases[] = {
	{"open", case_open},
	{"open_bad", case_open_bad},
	{"cat_bytes", case_cat_bytes},
	{"exit_status", case_exit_status},
	{"signal_segv", case_signal_segv},
	{"sigpipe", case_sigpipe},
	{"socket", case_socket},
	{"ptrace", case_ptrace},
	{"x32", case_x32},
	{"forkbomb", case_forkbomb},
	{"fsize", case_fsize},
	{"mem", case_mem},
	{"cpu", case_cpu},
	{"fds", case_fds},
	{"env", case_env},
	{"env_empty", case_env_empty},
	{"uid", case_uid},
	{"writefs", case_writefs},
	{"net", case_net},
	{"pid", case_pid},
	{"proc", case_proc},
	{"other_slot", case_other_slot},
	{"outside_rundir", case_outside_rundir},
	{"kill_group", case_kill_group},
	{"kill_escaped", case_kill_escaped},
	{"exit_escaped", case_exit_escaped},
	{"setup_failure", case_setup_failure},
	{"script", case_script},
	{"filters", case_filters},
	{"bench_spawn", case_bench_spawn},
	{0},
};

/*
 * The confinement properties again: through the spawner (sbx_start, as
 * root), and with every namespace per call (sbx_open).
 */
static const struct t_case cases_again[] = {
	{"open", case_open},
	{"cat_bytes", case_cat_bytes},
	{"exit_status", case_exit_status},
	{"signal_segv", case_signal_segv},
	{"sigpipe", case_sigpipe},
	{"socket", case_socket},
	{"fds", case_fds},
	{"uid", case_uid},
	{"writefs", case_writefs},
	{"net", case_net},
	{"pid", case_pid},
	{"proc", case_proc},
	{"other_slot", case_other_slot},
	{"kill_group", case_kill_group},
	{"kill_escaped", case_kill_escaped},
	{"exit_escaped", case_exit_escaped},
	{"setup_failure", case_setup_failure},
	{"script", case_script},
	{"spawner_gone", case_spawner_gone},
	{0},
};

/* Find the launcher and the helper next to this binary; make the run dir. */
static int
setup(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

	if (n <= 0) {
		perror("readlink /proc/self/exe");
		return -1;
	}
	self[n] = '\0';
	/* This is build/tests/test_sbx: dirname once, then twice. */
	snprintf(hostile, sizeof hostile, "%s/hostile", dirname(self));
	snprintf(launcher, sizeof launcher, "%s/meshd-sandbox", dirname(self));
	is_root = geteuid() == 0;
	/* Writes to a service that has exited fail with EPIPE here. */
	signal(SIGPIPE, SIG_IGN);
	/* As meshd makes DATA/run: others may pass through, not look. */
	if (!mkdtemp(rundir) || chmod(rundir, 0711) != 0) {
		perror("run dir");
		return -1;
	}
	return 0;
}

static int
open_sbx(int shared, int spawner)
{
	int r;

	shared_pass = shared;
	spawner_pass = spawner;
	r = shared ? sbx_open_run(&S, launcher, spawner ? ~0u : ~0u & ~SBX_SPAWNER, rundir) :
		     sbx_open(&S, launcher, ~0u);
	if (r != 0)
		fprintf(stderr, "sbx_open(%s): %s\n", launcher, babl_strerror(r));
	return r;
}

int
main(int argc, char **argv)
{
	int r;

	if (setup() != 0)
		return 1;
	if (open_sbx(1, 0) != 0)
		return 1;
	fprintf(stderr, "  -- shared namespaces (sbx_open_run)\n");
	r = t_run(argc, argv, cases);
	sbx_close(S);
	if (is_root) {
		if (open_sbx(1, 1) != 0)
			return 1;
		fprintf(stderr, "  -- the spawner (sbx_open_run, sbx_start)\n");
		r |= t_run(argc, argv, cases_again);
		sbx_close(S);
	} else {
		fprintf(stderr, "  -- skip the spawner: it needs root\n");
	}
	if (open_sbx(0, 0) != 0)
		return 1;
	fprintf(stderr, "  -- namespaces per call (sbx_open)\n");
	r |= t_run(argc, argv, cases_again);
	sbx_close(S);
	nftw(rundir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return r;
}
