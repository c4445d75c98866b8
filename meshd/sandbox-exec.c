/*
 * sandbox-exec.c - meshd-sandbox, the launcher that confines one service
 * program; see sbx.h.  libc only, single-threaded.
 *
 *   meshd-sandbox -L LAYERS [-d PPID] [-u UID -g GID] [-w DIR] [-m MEM]
 *                 [-c CPU] [-f FSIZE] [-p NPROC] [-n NOFILE] [-s BPFFD]
 *                 [-x EXEFD] [-N NSFD] -A NARGS -- PATH ARG... ENV...
 *   meshd-sandbox -P -L LAYERS [-u UID -g GID] [-s BPFFD]
 *   meshd-sandbox -H -L LAYERS [-d PPID] -w RUNDIR
 *   meshd-sandbox -S -L LAYERS [-d PPID] [-s BPFFD] -w RUNDIR
 *
 * The first form runs PATH with the NARGS arguments that follow it (argv[0]
 * included) and the rest as its environment.  The second prints the subset
 * of LAYERS that this kernel grants, found by trying them in throwaway
 * children.  The third is the holder of the shared namespaces (root only):
 * it unshares the network, IPC, UTS and mount namespaces that LAYERS asks
 * for, makes its view of the filesystem read-only but for RUNDIR, mounts an
 * empty read-only tmpfs on /proc, writes "ok" to fd 1 and waits for EOF on
 * fd 0; meshd opens /proc/PID/ns/{net,ipc,uts,mnt} meanwhile and keeps the
 * namespaces alive through those fds, so the holder then simply exits.
 * The fourth is the holder as a spawner (see sbx.h): it also unshares a
 * pid namespace, whose pid 1 serves the requests that come on fd 0 and
 * says "ok" on fd 1 once it is ready; the holder waits for it and so stays.
 *
 * With -N, fds NSFD..NSFD+3 are those four namespaces: the launcher enters
 * them with setns() instead of creating its own, and unshares only a pid
 * namespace and a mount namespace (a copy of the shared, read-only one) in
 * which pid 1 mounts a /proc of the new pid namespace.  The work dir must
 * then lie under the holder's RUNDIR, the only writable place in its view.
 *
 * With a pid namespace there are three processes: this one (meshd's child
 * and the process-group leader), pid 1 of the new namespace, and the
 * program.  pid 1 is not the program because pid 1 ignores signals with a
 * default action, which would change how pipelines end.  pid 1 sends the
 * program's wait status up through a socket and this process dies the same
 * way.  When pid 1 exits, the kernel kills whatever the program left behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "sbx.h"

#ifndef __GLIBC__
/*
 * Built with musl where it is installed (see the Makefile: its static
 * start-up skips the CPU cache probing that costs a static glibc program
 * a few hundred microseconds here, once per call).  musl 1.2.3 has no
 * wrappers for these three system calls.
 */
#include <linux/mount.h>

static int
close_range(unsigned first, unsigned last, int flags)
{
	return (int)syscall(SYS_close_range, first, last, flags);
}

static int
execveat(int fd, const char *path, char *const argv[], char *const envp[], int flags)
{
	return (int)syscall(SYS_execveat, fd, path, argv, envp, flags);
}

static int
mount_setattr(int fd, const char *path, unsigned flags, struct mount_attr *a, size_t size)
{
	return (int)syscall(SYS_mount_setattr, fd, path, flags, a, size);
}
#endif

struct opts {
	unsigned layers;
	int probe, hold, spawner;
	pid_t ppid;
	uid_t uid;
	gid_t gid;
	int have_ids;
	const char *workdir;
	struct sbx_limits lim;
	int bpf_fd, exe_fd, ns_fd;
	const char *path;
	char **argv, **envp;
};

/* The BPF program, read from its memfd before anything forks. */
static struct sock_fprog filter;

static void __attribute__((noreturn))
die(const char *what)
{
	int e = errno;
	dprintf(2, "meshd-sandbox: %s: %s\n", what, strerror(e));
	_exit(127);
}

static void __attribute__((noreturn))
usage(const char *what)
{
	dprintf(2, "meshd-sandbox: bad arguments: %s\n", what);
	_exit(127);
}

static unsigned long long
number(const char *s, unsigned long long max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v > max)
		usage(s);
	return v;
}

static void
parse(int argc, char **argv, struct opts *o)
{
	long nargs = -1;
	int c;

	memset(o, 0, sizeof *o);
	o->bpf_fd = o->exe_fd = o->ns_fd = -1;
	while ((c = getopt(argc, argv, "+PHSL:d:u:g:w:m:c:f:p:n:s:x:N:A:")) != -1) {
		switch (c) {
		case 'P': o->probe = 1; break;
		case 'H': o->hold = 1; break;
		case 'S': o->hold = o->spawner = 1; break;
		case 'L': o->layers = number(optarg, UINT_MAX); break;
		case 'd': o->ppid = number(optarg, INT_MAX); break;
		case 'u': o->uid = number(optarg, UINT_MAX - 1); o->have_ids |= 1; break;
		case 'g': o->gid = number(optarg, UINT_MAX - 1); o->have_ids |= 2; break;
		case 'w': o->workdir = optarg; break;
		case 'm': o->lim.mem_bytes = number(optarg, ~0ULL); break;
		case 'c': o->lim.cpu_secs = number(optarg, UINT32_MAX); break;
		case 'f': o->lim.fsize = number(optarg, ~0ULL); break;
		case 'p': o->lim.nproc = number(optarg, UINT32_MAX); break;
		case 'n': o->lim.nofile = number(optarg, UINT32_MAX); break;
		case 's': o->bpf_fd = number(optarg, INT_MAX); break;
		case 'x': o->exe_fd = number(optarg, INT_MAX); break;
		case 'N': o->ns_fd = number(optarg, INT_MAX - 4); break;
		case 'A': nargs = number(optarg, INT_MAX); break;
		default: usage("unknown option");
		}
	}
	if (o->have_ids != 0 && o->have_ids != 3)
		usage("-u and -g go together");
	if (o->probe)
		return;
	if (o->hold) {
		if (!o->workdir || o->workdir[0] != '/')
			usage("-H and -S need -w RUNDIR, an absolute path");
		return;
	}
	if (nargs < 1 || argc - optind < nargs + 1)
		usage("missing program or arguments");
	/* PATH's slot goes to the arguments, leaving room for their NULL. */
	o->path = argv[optind];
	o->argv = argv + optind;
	memmove(o->argv, o->argv + 1, nargs * sizeof *o->argv);
	o->argv[nargs] = NULL;
	o->envp = o->argv + nargs + 1;
}

/* Read the BPF program from its fd into memory and close the fd. */
static void
load_filter(int fd)
{
	struct stat st;
	void *buf;

	if (fstat(fd, &st) != 0)
		die("seccomp program");
	if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) ||
	    st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS) {
		errno = EINVAL;
		die("seccomp program");
	}
	buf = malloc(st.st_size);
	if (!buf)
		die("seccomp program");
	if (pread(fd, buf, st.st_size, 0) != st.st_size)
		die("read seccomp program");
	close(fd);
	filter.len = st.st_size / sizeof(struct sock_filter);
	filter.filter = buf;
}

static void
install_filter(void)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		die("no_new_privs");
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &filter) != 0 &&
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filter, 0, 0) != 0)
		die("install seccomp filter");
}

static void
limit(int res, unsigned long long v, unsigned long long hard, const char *what)
{
	struct rlimit rl = {.rlim_cur = v, .rlim_max = hard};
	if (setrlimit(res, &rl) != 0)
		die(what);
}

static void
set_limits(const struct sbx_limits *l)
{
	limit(RLIMIT_CORE, 0, 0, "RLIMIT_CORE");
	if (l->mem_bytes)
		limit(RLIMIT_AS, l->mem_bytes, l->mem_bytes, "RLIMIT_AS");
	/* SIGXCPU at the limit, SIGKILL a second later if that is caught. */
	if (l->cpu_secs)
		limit(RLIMIT_CPU, l->cpu_secs, l->cpu_secs + 1ULL, "RLIMIT_CPU");
	if (l->fsize)
		limit(RLIMIT_FSIZE, l->fsize, l->fsize, "RLIMIT_FSIZE");
	if (l->nproc)
		limit(RLIMIT_NPROC, l->nproc, l->nproc, "RLIMIT_NPROC");
	if (l->nofile)
		limit(RLIMIT_NOFILE, l->nofile, l->nofile, "RLIMIT_NOFILE");
}

/* The last steps in the program's own process; does not return. */
static void __attribute__((noreturn))
confine_and_exec(const struct opts *o)
{
	if (o->layers & SBX_RLIMITS)
		set_limits(&o->lim);
	if (o->workdir && chdir(o->workdir) != 0)
		die("chdir to work dir");
	if ((o->layers & SBX_SETUID) && o->have_ids) {
		if (setgroups(0, NULL) != 0)
			die("setgroups");
		if (setgid(o->gid) != 0)
			die("setgid");
		if (setuid(o->uid) != 0)
			die("setuid");
	}
	/* The exe fd, if any, is 3 with FD_CLOEXEC: keep it for execveat. */
	if (close_range(o->exe_fd >= 0 ? 4 : 3, ~0U, 0) != 0)
		die("close fds");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		die("no_new_privs");
	if (filter.filter)
		install_filter();
	if (o->exe_fd >= 0) {
		execveat(o->exe_fd, "", o->argv, o->envp, AT_EMPTY_PATH);
		/* A #! script cannot run from a close-on-exec fd. */
		if (errno != ENOENT)
			die(o->path);
	}
	execve(o->path, o->argv, o->envp);
	die(o->path);
}

static void
write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t len = strlen(text);

	if (fd < 0 || write(fd, text, len) != len)
		die(path);
	close(fd);
}

/* The clone flags for the namespace layers. */
static int
ns_flags(unsigned layers)
{
	int f = 0;

	if (layers & SBX_NETNS)
		f |= CLONE_NEWNET;
	if (layers & SBX_PIDNS)
		f |= CLONE_NEWPID;
	if (layers & SBX_MNTNS)
		f |= CLONE_NEWNS;
	if (layers & SBX_IPCNS)
		f |= CLONE_NEWIPC;
	if (f)
		f |= CLONE_NEWUTS;
	return f;
}

/* Enter the new namespaces, as root or through a user namespace. */
static void
enter_namespaces(unsigned layers)
{
	int f = ns_flags(layers);
	uid_t uid = geteuid();
	gid_t gid = getegid();
	char map[64];

	if (!f && !(layers & SBX_USERNS))
		return;
	if (layers & SBX_USERNS)
		f |= CLONE_NEWUSER;
	if (unshare(f) != 0)
		die("unshare");
	if (!(layers & SBX_USERNS))
		return;
	/* Map only the caller's own ids; no setgroups. */
	snprintf(map, sizeof map, "%u %u 1\n", (unsigned)uid, (unsigned)uid);
	write_file("/proc/self/uid_map", map);
	write_file("/proc/self/setgroups", "deny");
	snprintf(map, sizeof map, "%u %u 1\n", (unsigned)gid, (unsigned)gid);
	write_file("/proc/self/gid_map", map);
}

/* Mount flags of every /proc this file mounts: read-only, nothing to run. */
#define PROC_FLAGS (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)

/*
 * A private, read-only view of the filesystem but for the directory dir
 * (the work dir, or the holder's run dir that holds all work dirs).  /proc
 * becomes, by proc: PROC_FRESH a /proc of the caller's new pid namespace
 * (if the kernel lets us; a failure there is ignored), PROC_EMPTY an empty
 * read-only tmpfs (a shared mount namespace outlives any pid namespace, so
 * it gets no /proc of its own; each call mounts its own on top), or
 * PROC_KEEP the one it had.
 */
enum { PROC_KEEP, PROC_FRESH, PROC_EMPTY };

static void
setup_mounts(const char *dir, int proc)
{
	struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID};
	struct mount_attr rw = {.attr_clr = MOUNT_ATTR_RDONLY};

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		die("make / private");
	if (dir && mount(dir, dir, NULL, MS_BIND | MS_REC, NULL) != 0)
		die("bind work dir");
	if (proc == PROC_FRESH)
		(void)mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	else if (proc == PROC_EMPTY &&
		 mount("none", "/proc", "tmpfs", PROC_FLAGS, "size=4k,nr_inodes=1,mode=555") != 0)
		die("hide /proc");
	if (mount_setattr(AT_FDCWD, "/", AT_RECURSIVE, &ro, sizeof ro) != 0)
		die("make / read-only");
	if (dir && mount_setattr(AT_FDCWD, dir, 0, &rw, sizeof rw) != 0)
		die("make work dir writable");
}

/*
 * Enter the shared namespaces at fds first..first+3 (net, ipc, uts, mnt),
 * close those fds, and unshare what stays per call: the pid namespace and,
 * for a /proc that shows it, a copy of the shared mount namespace.
 */
static void
enter_shared(int first, unsigned layers)
{
	static const int type[4] = {CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWNS};
	int f = 0;

	for (int i = 0; i < 4; i++) {
		if (setns(first + i, type[i]) != 0)
			die("enter the shared namespaces");
		close(first + i);
	}
	if (layers & SBX_PIDNS)
		f |= CLONE_NEWPID;
	if ((layers & (SBX_PIDNS | SBX_MNTNS)) == (SBX_PIDNS | SBX_MNTNS))
		f |= CLONE_NEWNS;
	if (f && unshare(f) != 0)
		die("unshare");
}

/* ---- the spawner (-S) ---- */

/* Where the spawner keeps its own fds, clear of what a request brings. */
enum { SP_SOCK = 100, SP_SIG = 101, SP_KIDS = 102 };

static pid_t sp_pid[SBX_SLOTS]; /* by call id: its program, or 0 */
static int sp_session;          /* the spawner leads a session of its own */
static uid_t sp_uid[SBX_SLOTS]; /* and the uid it runs as */

static void
sp_send_exit(uint32_t id, int status, int alone)
{
	struct sbx_msg m = {.op = SBX_OP_EXIT, .id = id, .status = status, .alone = (uint32_t)alone};

	/* meshd reads these as they come; if it is gone, so are we soon. */
	while (send(SP_SOCK, &m, sizeof m, MSG_NOSIGNAL) < 0 && errno == EINTR)
		;
}

/* Move fd to at least min (close-on-exec); -1 on failure. */
static int
sp_lift(int fd, int min)
{
	int high;

	if (fd >= min)
		return fd;
	high = fcntl(fd, F_DUPFD_CLOEXEC, min);
	close(fd);
	return high;
}

/*
 * Kill the process group grp and every process of uid (a slot's uid is
 * that call's alone; a process cannot leave it, as it can leave its
 * group): a helper takes the uid and sends SIGKILL to all it may signal,
 * which kill(-1) limits to this pid namespace.
 */
static void
sp_kill(pid_t grp, uid_t uid)
{
	pid_t h;

	kill(-grp, SIGKILL);
	if (uid == 0)
		return;
	h = vfork();
	if (h == 0) {
		if (setuid(uid) == 0)
			kill(-1, SIGKILL);
		_exit(0);
	}
	/* The helper is reaped with the orphans. */
}

/*
 * Whether the spawner has a child that is no running program's: as pid 1
 * of the services' namespace it adopts every orphan, so whatever a call
 * that ended left running hangs, directly or below such a child, off the
 * spawner (a process reaches pid 1 only through the dead).  Without one,
 * nothing of an ended call is left and the uid need not be swept, which
 * saves a fork per call.  Says yes when it cannot tell.
 */
static int
sp_strays(void)
{
	static char buf[8192];
	static int fd = -1;
	ssize_t len;
	char *p, *end;

	if (fd < 0) {
		char path[64];
		snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
		int f = open(path, O_RDONLY | O_CLOEXEC);
		if (f < 0)
			return 1;
		fd = dup3(f, SP_KIDS, O_CLOEXEC);
		close(f);
		if (fd < 0)
			return 1;
	}
	len = pread(fd, buf, sizeof buf - 1, 0);
	if (len < 0 || (size_t)len >= sizeof buf - 1)
		return 1;
	buf[len] = '\0';
	for (p = buf;; p = end) {
		long pid = strtol(p, &end, 10);
		uint32_t id;
		if (end == p)
			return 0;
		for (id = 0; id < SBX_SLOTS && sp_pid[id] != pid; id++)
			;
		if (id == SBX_SLOTS)
			return 1;
	}
}

/* The program's own process: what the launcher's run() and pid 1 do. */
static void __attribute__((noreturn))
sp_child(struct opts *o, const int fd[4])
{
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/*
	 * A group of its own, in the spawner's session, which has no
	 * terminal (a new session per call cost the kernel a scheduling
	 * group each); a session of its own if the spawner has none.
	 */
	if (sp_session ? setpgid(0, 0) < 0 : setsid() < 0)
		die("setsid");
	if (dup2(fd[0], 0) < 0 || dup2(fd[1], 1) < 0 || dup2(fd[2], 2) < 0)
		die("stdio");
	if (fd[3] >= 0 && dup3(fd[3], 3, O_CLOEXEC) < 0)
		die("exe fd");
	o->exe_fd = fd[3] >= 0 ? 3 : -1;
	confine_and_exec(o);
}

/*
 * vfork, as posix_spawn does (the spawner is small, but its parent waits
 * only until the exec), in a function of its own so that no caller's
 * variable lives across it.
 */
static pid_t __attribute__((noinline))
sp_fork(struct opts *o, const int fd[4])
{
	pid_t pid = vfork();

	if (pid == 0)
		sp_child(o, fd);
	return pid;
}

/* One request from meshd; its fds are closed before this returns. */
static void
sp_request(const struct opts *base, char *buf, size_t len, int *fds, int nfds)
{
	struct sbx_msg m;
	struct opts o = *base;
	char *p, *end = buf + len, *strs[2];
	char **vec = NULL;
	size_t want, i;
	pid_t pid;

	if (len < sizeof m)
		goto done;
	memcpy(&m, buf, sizeof m);
	if (m.id >= SBX_SLOTS)
		goto done;
	if (m.op == SBX_OP_KILL) {
		if (sp_pid[m.id] > 0)
			sp_kill(sp_pid[m.id], sp_uid[m.id]);
		goto done;
	}
	want = 3 + (m.have_exe ? 1 : 0);
	if (m.op != SBX_OP_START || (size_t)nfds != want || m.nargs < 1 ||
	    m.nargs > SBX_MSG_MAX / 2 || m.nenv > SBX_MSG_MAX / 2)
		goto refuse;
	vec = calloc((size_t)m.nargs + m.nenv + 2, sizeof *vec);
	if (!vec)
		goto refuse;
	/* path, work dir, arguments, environment: each NUL-terminated. */
	p = buf + sizeof m;
	for (i = 0; i < 2 + (size_t)m.nargs + m.nenv; i++) {
		char *z = memchr(p, '\0', (size_t)(end - p));
		if (p >= end || !z)
			goto refuse;
		if (i < 2)
			strs[i] = p;
		else if (i < 2 + (size_t)m.nargs)
			vec[i - 2] = p;
		else
			vec[i - 1] = p;
		p = z + 1;
	}
	if (sp_pid[m.id] > 0 || strs[0][0] != '/' || strs[1][0] != '/')
		goto refuse;
	o.path = strs[0];
	o.workdir = strs[1];
	o.argv = vec;
	vec[m.nargs] = NULL;
	o.envp = vec + m.nargs + 1;
	o.uid = m.uid;
	o.gid = m.gid;
	o.have_ids = (o.layers & SBX_SETUID) ? 3 : 0;
	o.lim = m.lim;
	/* The program's fds must not sit where it gets them (0..3). */
	for (i = 0; i < want; i++)
		if ((fds[i] = sp_lift(fds[i], 4)) < 0)
			goto refuse;
	if (want == 3)
		fds[3] = -1;
	pid = sp_fork(&o, fds);
	if (pid < 0) {
		dprintf(fds[2], "meshd-sandbox: fork: %s\n", strerror(errno));
		sp_send_exit(m.id, 127 << 8, 0);
	} else {
		sp_pid[m.id] = pid;
		sp_uid[m.id] = o.have_ids ? o.uid : 0;
	}
	goto done;
refuse:
	if (nfds >= 3 && fds[2] >= 0)
		dprintf(fds[2], "meshd-sandbox: a malformed request from meshd\n");
	if (len >= sizeof m && m.op == SBX_OP_START && m.id < SBX_SLOTS && sp_pid[m.id] <= 0)
		sp_send_exit(m.id, 127 << 8, 0);
done:
	free(vec);
	for (int j = 0; j < nfds; j++)
		if (fds[j] >= 0)
			close(fds[j]);
}

/* Reap every child (orphans of the namespace come here too). */
static void
sp_reap(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (uint32_t id = 0; id < SBX_SLOTS; id++) {
			if (sp_pid[id] != pid)
				continue;
			/* What it left running goes with it. */
			sp_pid[id] = 0;
			int strays = sp_strays();
			if (strays)
				sp_kill(pid, sp_uid[id]);
			sp_send_exit(id, status, !strays);
			break;
		}
	}
}

/* pid 1 of the services' pid namespace; ends when meshd closes fd 0. */
static void __attribute__((noreturn))
sp_serve(const struct opts *o)
{
	static char buf[SBX_MSG_MAX];
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(4 * sizeof(int))];
	} cm;
	struct pollfd pfd[2];
	sigset_t chld;
	int null;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
		die("PR_SET_PDEATHSIG");
	/* No terminal for the programs, whatever meshd's. */
	sp_session = setsid() >= 0 || getsid(0) == getpid();
	/* A /proc of this pid namespace, in a copy of the shared view. */
	if (unshare(CLONE_NEWNS) != 0)
		die("unshare");
	if (mount("proc", "/proc", "proc", PROC_FLAGS, "hidepid=2") != 0)
		die("mount /proc");
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &chld, NULL) != 0)
		die("sigprocmask");
	if (dup3(0, SP_SOCK, O_CLOEXEC) < 0)
		die("socket fd");
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0 || dup2(null, 0) < 0)
		die("/dev/null");
	int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0 || dup3(sfd, SP_SIG, O_CLOEXEC) < 0)
		die("signalfd");
	close(sfd);
	/*
	 * The spawner runs under the services' filter itself: each program
	 * then inherits it, already compiled, where installing it per call
	 * cost more than the fork.  Every call the spawner makes from here is
	 * one the filter allows.
	 */
	if (filter.filter) {
		install_filter();
		filter.filter = NULL;
	}
	if (write(1, "ok\n", 3) != 3)
		die("report");
	if (dup2(null, 1) < 0)
		die("/dev/null");
	if (null > 2)
		close(null);
	pfd[0] = (struct pollfd){.fd = SP_SOCK, .events = POLLIN};
	pfd[1] = (struct pollfd){.fd = SP_SIG, .events = POLLIN};
	for (;;) {
		struct signalfd_siginfo si;
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (pfd[1].revents) {
			while (read(SP_SIG, &si, sizeof si) > 0)
				;
			sp_reap();
		}
		if (pfd[0].revents) {
			struct iovec iov = {buf, sizeof buf};
			struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
					    .msg_control = cm.b, .msg_controllen = sizeof cm.b};
			int fds[4] = {-1, -1, -1, -1}, nfds = 0;
			ssize_t n = recvmsg(SP_SOCK, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
				_exit(0); /* meshd is gone: so is every service */
			if (n < 0)
				continue;
			for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
				if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
					continue;
				size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
				int *in = (int *)(void *)CMSG_DATA(c);
				for (size_t j = 0; j < k; j++) {
					if (nfds < 4)
						fds[nfds++] = in[j];
					else
						close(in[j]);
				}
			}
			if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
				for (int j = 0; j < nfds; j++)
					close(fds[j]);
				continue;
			}
			sp_request(o, buf, (size_t)n, fds, nfds);
		}
	}
}

/*
 * The holder as a spawner, after unshare and the mounts: fork pid 1 of
 * the new pid namespace (sp_serve), which says "ok" on fd 1; this process
 * keeps the namespaces and waits for it, and exits when it does.
 */
static void __attribute__((noreturn))
hold_spawner(const struct opts *o)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		die("fork");
	if (pid == 0)
		sp_serve(o);
	close(0);
	close(1);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			die("waitpid");
	_exit(0);
}

/*
 * The holder of the shared namespaces; see the top of this file.  Never
 * runs service code: it only sets up what every call then enters.
 */
static void __attribute__((noreturn))
hold(const struct opts *o)
{
	int f = ns_flags(o->layers & (SBX_NETNS | SBX_MNTNS | SBX_IPCNS));
	char c;
	ssize_t n;

	if (o->ppid && (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 ||
			getppid() != o->ppid))
		_exit(127);
	if (geteuid() != 0 || (o->layers & SBX_USERNS)) {
		errno = EPERM;
		die("shared namespaces need root");
	}
	if (!f || !(o->layers & SBX_MNTNS)) {
		errno = EINVAL;
		die("shared namespaces need a mount namespace");
	}
	if (o->spawner && o->bpf_fd >= 0)
		load_filter(o->bpf_fd);
	if (unshare(f | (o->spawner ? CLONE_NEWPID : 0)) != 0)
		die("unshare");
	setup_mounts(o->workdir, PROC_EMPTY);
	if (o->spawner)
		hold_spawner(o);
	if (write(1, "ok\n", 3) != 3)
		die("report");
	/* meshd opens our namespaces now, then closes its end of fd 0. */
	while ((n = read(0, &c, 1)) > 0 || (n < 0 && errno == EINTR))
		;
	_exit(0);
}

/* Die the way the program died, so that meshd's waitpid sees its status. */
static void __attribute__((noreturn))
reproduce(int status)
{
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		struct rlimit none = {0, 0};
		sigset_t set;

		setrlimit(RLIMIT_CORE, &none);
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
		signal(sig, SIG_DFL);
		sigemptyset(&set);
		sigaddset(&set, sig);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		kill(getpid(), sig);
		_exit(128 + sig);
	}
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 127);
}

/*
 * pid 1 of the new namespace: mounts, then the program in a child, whose
 * status goes up through sock.  Orphans are reaped on the way.
 */
static void __attribute__((noreturn))
init_main(const struct opts *o, int sock)
{
	struct pollfd pfd = {.fd = sock, .events = POLLIN};
	int status;
	pid_t prog, w;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
		die("PR_SET_PDEATHSIG");
	/* The launcher may have died before the line above took effect. */
	if (poll(&pfd, 1, 0) != 0)
		_exit(127);
	if (o->ns_fd >= 0) {
		/*
		 * A copy of the shared view, already read-only: only /proc.
		 * If this fails the program sees the holder's empty /proc.
		 */
		if (o->layers & SBX_MNTNS)
			(void)mount("proc", "/proc", "proc", PROC_FLAGS, NULL);
	} else if (o->layers & SBX_MNTNS) {
		setup_mounts(o->workdir, PROC_FRESH);
	}
	prog = fork();
	if (prog < 0)
		die("fork");
	if (prog == 0)
		confine_and_exec(o);
	for (;;) {
		w = waitpid(-1, &status, 0);
		if (w == prog)
			break;
		if (w < 0 && errno != EINTR)
			die("waitpid");
	}
	if (write(sock, &status, sizeof status) != sizeof status)
		die("report status");
	_exit(0);
}

static void __attribute__((noreturn))
run(struct opts *o)
{
	int sv[2], status, pst;
	ssize_t n;
	pid_t init;

	/* Die with meshd; PPID guards against meshd having died already. */
	if (o->ppid && (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 ||
			getppid() != o->ppid))
		_exit(127);
	if (o->bpf_fd >= 0)
		load_filter(o->bpf_fd);
	if (o->exe_fd >= 0) {
		if (o->exe_fd != 3 && dup3(o->exe_fd, 3, O_CLOEXEC) < 0)
			die("exe fd");
		if (o->exe_fd != 3)
			close(o->exe_fd);
		else if (fcntl(3, F_SETFD, FD_CLOEXEC) != 0)
			die("exe fd");
		o->exe_fd = 3;
	}
	if (o->ns_fd >= 0)
		enter_shared(o->ns_fd, o->layers);
	else
		enter_namespaces(o->layers);
	if (!(o->layers & SBX_PIDNS)) {
		if ((o->layers & SBX_MNTNS) && o->ns_fd < 0)
			setup_mounts(o->workdir, PROC_KEEP);
		confine_and_exec(o);
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		die("socketpair");
	init = fork();
	if (init < 0)
		die("fork");
	if (init == 0) {
		close(sv[0]);
		init_main(o, sv[1]);
	}
	close(sv[1]);
	while ((n = read(sv[0], &status, sizeof status)) < 0 && errno == EINTR)
		;
	while (waitpid(init, &pst, 0) < 0)
		if (errno != EINTR)
			die("waitpid");
	/* No status: pid 1 failed (and said why) or was killed. */
	reproduce(n == sizeof status ? status : pst);
}

/* Run fn in a throwaway child; true if it exits 0. */
static int
try_child(void (*fn)(const struct opts *), const struct opts *o)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return 0;
	if (pid == 0) {
		/* Failures are expected here: keep stderr quiet. */
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (null >= 0)
			dup2(null, 2);
		fn(o);
		_exit(0);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 0;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void
probe_ns(const struct opts *o)
{
	enter_namespaces(o->layers);
	if (o->layers & SBX_MNTNS)
		setup_mounts(NULL, PROC_KEEP);
}

static void
probe_setuid(const struct opts *o)
{
	if (setgroups(0, NULL) != 0 || setgid(o->gid) != 0 || setuid(o->uid) != 0)
		_exit(1);
}

static void
probe_seccomp(const struct opts *o)
{
	(void)o;
	install_filter();
	if (getppid() <= 0)
		_exit(1);
}

static void __attribute__((noreturn))
probe(struct opts *o)
{
	unsigned want = o->layers, got = want & SBX_RLIMITS;
	unsigned ns_bits[] = {SBX_NETNS, SBX_PIDNS, SBX_MNTNS, SBX_IPCNS};
	unsigned base = 0;
	struct opts t = *o;

	if (o->bpf_fd >= 0 && (want & SBX_SECCOMP)) {
		load_filter(o->bpf_fd);
		if (try_child(probe_seccomp, o))
			got |= SBX_SECCOMP;
	}
	if (geteuid() == 0) {
		if ((want & SBX_SETUID) && o->have_ids && try_child(probe_setuid, o))
			got |= SBX_SETUID;
	} else if (want & SBX_USERNS) {
		t.layers = SBX_USERNS;
		if (try_child(probe_ns, &t))
			base = got |= SBX_USERNS;
	}
	if (geteuid() == 0 || (got & SBX_USERNS)) {
		/* Each namespace on its own, so one refusal costs only itself. */
		for (size_t i = 0; i < sizeof ns_bits / sizeof *ns_bits; i++) {
			if (!(want & ns_bits[i]))
				continue;
			t.layers = (base & SBX_USERNS) | ns_bits[i];
			if (try_child(probe_ns, &t))
				got |= ns_bits[i];
		}
	}
	printf("%u\n", got);
	fflush(stdout);
	_exit(ferror(stdout) ? 127 : 0);
}

int
main(int argc, char **argv)
{
	struct opts o;

	parse(argc, argv, &o);
	if (o.probe)
		probe(&o);
	if (o.hold)
		hold(&o);
	run(&o);
}
