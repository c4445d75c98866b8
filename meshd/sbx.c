/*
 * sbx.c - confinement of service processes; see sbx.h.
 *
 * The seccomp filter is compiled once, here, with libseccomp and kept as a
 * raw BPF program in a sealed memfd.  Each spawn hands that memfd, the
 * program's fd and the stdio fds to the launcher meshd-sandbox through
 * posix_spawn file actions, and everything else on its command line, so the
 * launcher needs neither libseccomp nor anything from meshd.  The launcher
 * runs with an empty environment (the dynamic loader of a process that is
 * still root must not read LD_* from a service's environment); the program's
 * environment follows its arguments on the launcher's command line.
 *
 * With shared namespaces (sbx_open_run, root), the fds of the holder's
 * network, IPC, UTS and mount namespaces go to the launcher as fds 5..8
 * too; it setns()es into them instead of unsharing its own.  Measured on
 * a 2-core machine, creating an empty network namespace per call costs
 * more than everything else in a spawn; a pid namespace, a copy of the
 * (small) shared mount namespace and a /proc per call cost about 60-90 us.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "sbx.h"

/*
 * The fds the launcher finds its BPF program, the program's file and the
 * shared namespaces (net, ipc, uts, mnt: NS_FD..NS_FD+3) at.
 */
enum { BPF_FD = 3, EXE_FD = 4, NS_FD = 5, NS_COUNT = 4, FIRST_FREE_FD = 9 };

struct sbx {
	char *launcher;
	int bpf_fd;        /* sealed memfd holding struct sock_filter[] */
	int ns_fd[NS_COUNT]; /* the shared namespaces, or -1 */
	char *rundir;      /* the only writable place in the shared view */
	size_t rundir_len;
	unsigned layers;
	uid_t uid_base;
	char desc[224];
	pid_t sp_pid;      /* the spawner's holder, or 0 */
	int sp_fd;         /* its socket, or -1 */
	uint32_t sp_live[SBX_SLOTS / 32]; /* ids started and not yet reaped */
};

/*
 * System calls that ordinary Unix filters need.  Names unknown to the
 * native architecture (for example "open" on arm64) are skipped.
 */
static const char *const allow_calls[] = {
	/* Files and descriptors. */
	"read", "write", "readv", "writev", "pread64", "pwrite64", "preadv",
	"pwritev", "preadv2", "pwritev2", "open", "openat", "openat2", "creat",
	"close", "close_range", "lseek", "dup", "dup2", "dup3", "pipe", "pipe2",
	"fcntl", "flock", "fsync", "fdatasync", "sync_file_range", "truncate",
	"ftruncate", "fallocate", "fadvise64", "readahead", "stat", "fstat",
	"lstat", "newfstatat", "statx", "statfs", "fstatfs", "access",
	"faccessat", "faccessat2", "getdents", "getdents64", "getcwd", "chdir",
	"fchdir", "rename", "renameat", "renameat2", "mkdir", "mkdirat",
	"rmdir", "link", "linkat", "unlink", "unlinkat", "symlink", "symlinkat",
	"readlink", "readlinkat", "chmod", "fchmod", "fchmodat", "chown",
	"fchown", "lchown", "fchownat", "umask", "utime", "utimes", "futimesat",
	"utimensat", "mknod", "mknodat", "getxattr", "lgetxattr", "fgetxattr",
	"listxattr", "llistxattr", "flistxattr", "splice", "tee", "vmsplice",
	"sendfile", "copy_file_range", "memfd_create", "inotify_init",
	"inotify_init1", "inotify_add_watch", "inotify_rm_watch",
	/* Waiting for descriptors and events. */
	"poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1",
	"epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd",
	"eventfd2", "signalfd", "signalfd4", "timerfd_create",
	"timerfd_settime", "timerfd_gettime",
	/* Sockets that already exist (pipes may be socketpairs). */
	"socketpair", "sendmsg", "recvmsg", "sendto", "recvfrom", "shutdown",
	"getsockopt", "setsockopt", "getsockname", "getpeername",
	/* Memory. */
	"brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "msync",
	"mincore", "membarrier", "pkey_alloc", "pkey_free", "pkey_mprotect",
	/* Processes, threads and signals. */
	"fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4",
	"waitid", "kill", "tkill", "tgkill", "rt_sigaction", "rt_sigprocmask",
	"rt_sigreturn", "rt_sigpending", "rt_sigtimedwait", "rt_sigqueueinfo",
	"rt_tgsigqueueinfo", "rt_sigsuspend", "sigaltstack", "pause",
	"restart_syscall", "pidfd_open", "pidfd_send_signal", "getpid",
	"getppid", "gettid", "getpgrp", "getpgid", "getsid", "set_tid_address",
	"set_robust_list", "get_robust_list", "rseq", "arch_prctl", "futex",
	"futex_waitv", "seccomp", "capget", "map_shadow_stack",
	/* Identity: changing it is left to no_new_privs and the uid. */
	"getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid",
	"getgroups", "setuid", "setgid", "setreuid", "setregid", "setresuid",
	"setresgid", "setgroups", "setfsuid", "setfsgid",
	/* Scheduling, limits and time. */
	"sched_yield", "sched_getaffinity", "sched_setaffinity",
	"sched_getparam", "sched_setparam", "sched_getscheduler",
	"sched_setscheduler", "sched_get_priority_max",
	"sched_get_priority_min", "sched_rr_get_interval", "sched_getattr",
	"getpriority", "setpriority", "ioprio_get", "getrlimit", "setrlimit",
	"prlimit64", "ioctl", "getrusage", "times", "sysinfo", "uname", "getcpu",
	"getrandom", "time", "gettimeofday", "clock_gettime", "clock_getres",
	"clock_nanosleep", "nanosleep", "alarm", "getitimer", "setitimer",
	"timer_create", "timer_settime", "timer_gettime", "timer_getoverrun",
	"timer_delete",
};

/*
 * System calls refused with EPERM: the network, other processes' memory,
 * the kernel's own facilities, and everything that mounts or creates
 * namespaces.
 */
static const char *const refuse_calls[] = {
	"socket", "socketcall", "connect", "bind", "listen", "accept",
	"accept4", "io_uring_setup", "io_uring_enter", "io_uring_register",
	"ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
	"kcmp", "mount", "umount2", "pivot_root", "move_mount", "open_tree",
	"fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "unshare",
	"setns", "bpf", "perf_event_open", "keyctl", "add_key", "request_key",
	"kexec_load", "kexec_file_load", "init_module", "finit_module",
	"delete_module", "reboot", "swapon", "swapoff", "chroot", "acct",
	"userfaultfd", "open_by_handle_at", "name_to_handle_at",
};

/* The clone flags that would create namespaces. */
static const uint64_t ns_clone_flags[] = {
	CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWPID,
	CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP,
};

/* prctl options a program may use; the rest fall to the default. */
static const int prctl_ok[] = {
	PR_SET_NAME, PR_GET_NAME, PR_SET_PDEATHSIG, PR_GET_PDEATHSIG,
	PR_GET_DUMPABLE, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS,
	PR_GET_NO_NEW_PRIVS, PR_GET_SECCOMP, PR_SET_SECCOMP, PR_CAPBSET_READ,
	PR_GET_TIMERSLACK, PR_SET_TIMERSLACK, PR_SET_VMA,
};

static int
rule_by_name(scmp_filter_ctx ctx, uint32_t action, const char *name)
{
	int nr = seccomp_syscall_resolve_name(name);
	/* Unknown here, or multiplexed on other architectures only. */
	if (nr == __NR_SCMP_ERROR || nr < 0)
		return 0;
	return seccomp_rule_add(ctx, action, nr, 0);
}

static int
add_rules(scmp_filter_ctx ctx, unsigned layers)
{
	int r = 0;
	uint64_t all_ns = 0;

	for (size_t i = 0; i < sizeof allow_calls / sizeof *allow_calls; i++)
		r |= rule_by_name(ctx, SCMP_ACT_ALLOW, allow_calls[i]);
	for (size_t i = 0; i < sizeof refuse_calls / sizeof *refuse_calls; i++)
		r |= rule_by_name(ctx, SCMP_ACT_ERRNO(EPERM), refuse_calls[i]);

	/*
	 * clone is allowed for threads and processes, refused when it would
	 * create a namespace.  clone3 passes its flags in memory, which a
	 * filter cannot see: ENOSYS, the default action (libseccomp refuses a
	 * rule that repeats it), makes glibc fall back to clone.
	 */
	for (size_t i = 0; i < sizeof ns_clone_flags / sizeof *ns_clone_flags; i++)
		all_ns |= ns_clone_flags[i];
	r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
			      SCMP_A0(SCMP_CMP_MASKED_EQ, all_ns, 0));
	for (size_t i = 0; i < sizeof ns_clone_flags / sizeof *ns_clone_flags; i++)
		r |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
				      SCMP_A0(SCMP_CMP_MASKED_EQ, ns_clone_flags[i],
					      ns_clone_flags[i]));

	/* personality: the query and plain Linux only. */
	r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(personality), 1,
			      SCMP_A0(SCMP_CMP_EQ, 0xffffffffu));
	r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(personality), 1,
			      SCMP_A0(SCMP_CMP_EQ, 0));

	for (size_t i = 0; i < sizeof prctl_ok / sizeof *prctl_ok; i++)
		r |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
				      SCMP_A0(SCMP_CMP_EQ, (uint64_t)prctl_ok[i]));

	/*
	 * Without a pid namespace the process group is all that holds a
	 * service's processes together: they may not leave it.
	 */
	if (layers & SBX_PIDNS) {
		r |= rule_by_name(ctx, SCMP_ACT_ALLOW, "setpgid");
		r |= rule_by_name(ctx, SCMP_ACT_ALLOW, "setsid");
	} else {
		r |= rule_by_name(ctx, SCMP_ACT_ERRNO(EPERM), "setpgid");
		r |= rule_by_name(ctx, SCMP_ACT_ERRNO(EPERM), "setsid");
	}
	return r ? BABL_EINTERNAL : 0;
}

/*
 * Compile the filter for the layers in force and export it as BPF into a
 * sealed memfd.  Returns the fd or a negative BABL_E* code.
 */
static int
build_filter(unsigned layers)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(ENOSYS));
	struct stat st;
	int fd = -1, r;

	if (!ctx)
		return BABL_ENOMEM;
	/*
	 * A foreign architecture (i386 through int 0x80) kills the process.
	 * The x86_64 filter of libseccomp sends x32 numbers there too
	 * because the x32 ABI is not among the filter's architectures.
	 */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (r == 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (r == 0) {
		/* A binary tree of syscall numbers; older libseccomp lacks it. */
		(void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
		r = add_rules(ctx, layers);
	}
	if (r != 0) {
		r = BABL_EINTERNAL;
		goto out;
	}
	fd = memfd_create("meshd-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		r = errno == ENOMEM ? BABL_ENOMEM : BABL_EINTERNAL;
		goto out;
	}
	if (seccomp_export_bpf(ctx, fd) != 0 || fstat(fd, &st) != 0 ||
	    st.st_size <= 0 || st.st_size % 8 != 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
				       F_SEAL_SEAL) != 0) {
		r = BABL_EINTERNAL;
		goto out;
	}
	seccomp_release(ctx);
	/* Keep it clear of the fds the launcher is given it and others on. */
	if (fd < FIRST_FREE_FD) {
		int high = fcntl(fd, F_DUPFD_CLOEXEC, FIRST_FREE_FD);
		close(fd);
		return high >= 0 ? high : BABL_EINTERNAL;
	}
	return fd;
out:
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	return r;
}

/* Full signal reset and a new session and group, for every launcher. */
static int
spawn_attr(posix_spawnattr_t *at)
{
	sigset_t all, none;

	sigfillset(&all);
	sigdelset(&all, SIGKILL);
	sigdelset(&all, SIGSTOP);
	sigemptyset(&none);
	if (posix_spawnattr_init(at) != 0)
		return BABL_ENOMEM;
	/*
	 * A new session rather than only a new group: the launcher leads its
	 * group (kill(-pid) reaches it all) and has no controlling terminal,
	 * so no service can reach meshd's terminal.  Signals meshd ignores or
	 * blocks (SIGPIPE) must not be ignored or blocked in a service.
	 */
	if (posix_spawnattr_setflags(at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF |
					     POSIX_SPAWN_SETSIGMASK) != 0 ||
	    posix_spawnattr_setsigdefault(at, &all) != 0 ||
	    posix_spawnattr_setsigmask(at, &none) != 0) {
		posix_spawnattr_destroy(at);
		return BABL_EINTERNAL;
	}
	return 0;
}

/*
 * Ask the launcher which of the namespace and uid layers this kernel
 * grants, trying them in throwaway children.  Returns the bit set or a
 * negative BABL_E* code.
 */
static int
probe_layers(const char *launcher, int bpf_fd, unsigned want, uid_t base)
{
	char wantbuf[16], uidbuf[16], out[32];
	char *argv[] = {"meshd-sandbox", "-P", "-L", wantbuf, "-u", uidbuf, "-g",
			uidbuf, "-s", "3", NULL};
	char *envp[] = {NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	int p[2], r, st;
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	snprintf(wantbuf, sizeof wantbuf, "%u", want);
	snprintf(uidbuf, sizeof uidbuf, "%u", (unsigned)base);
	if (bpf_fd < 0)
		argv[8] = NULL;
	if (pipe2(p, O_CLOEXEC) != 0)
		return BABL_EINTERNAL;
	r = spawn_attr(&at);
	if (r != 0)
		goto close_pipe;
	if (posix_spawn_file_actions_init(&fa) != 0) {
		r = BABL_ENOMEM;
		goto destroy_attr;
	}
	if (posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) ||
	    posix_spawn_file_actions_adddup2(&fa, p[1], 1) ||
	    (bpf_fd >= 0 && posix_spawn_file_actions_adddup2(&fa, bpf_fd, BPF_FD)) ||
	    posix_spawn_file_actions_addclosefrom_np(&fa, BPF_FD + 1)) {
		r = BABL_EINTERNAL;
		goto destroy_fa;
	}
	r = posix_spawn(&pid, launcher, &fa, &at, argv, envp);
	if (r != 0) {
		r = r == ENOENT || r == EACCES ? BABL_ENOENT : BABL_EINTERNAL;
		goto destroy_fa;
	}
	close(p[1]);
	p[1] = -1;
	while (got < sizeof out - 1 &&
	       ((n = read(p[0], out + got, sizeof out - 1 - got)) > 0 ||
		(n < 0 && errno == EINTR)))
		got += n > 0 ? (size_t)n : 0;
	out[got] = '\0';
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || got == 0) {
		r = BABL_EINTERNAL;
		goto destroy_fa;
	}
	r = (int)(strtoul(out, NULL, 10) & 0xffff);
destroy_fa:
	posix_spawn_file_actions_destroy(&fa);
destroy_attr:
	posix_spawnattr_destroy(&at);
close_pipe:
	close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	return r;
}

static void
describe(struct sbx *s)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
		{SBX_SECCOMP, "seccomp"}, {SBX_RLIMITS, "rlimits"},
		{SBX_USERNS, "userns"},   {SBX_SETUID, NULL},
		{SBX_NETNS, "netns"},     {SBX_PIDNS, "pidns"},
		{SBX_MNTNS, "mntns(ro)"}, {SBX_IPCNS, "ipcns"},
		{SBX_SHARED, "net/ipc/uts/mnt ns shared"},
		{SBX_SPAWNER, "native calls: one pid ns, a spawner, /proc hidepid"},
	};
	size_t len = 0;

	s->desc[0] = '\0';
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		char one[48];
		if (!(s->layers & names[i].bit))
			continue;
		if (names[i].name)
			snprintf(one, sizeof one, "%s", names[i].name);
		else
			snprintf(one, sizeof one, "uid %u+slot", (unsigned)s->uid_base);
		len += snprintf(s->desc + len, sizeof s->desc - len, "%s%s",
				len ? ", " : "", one);
		if (len >= sizeof s->desc)
			break;
	}
	if (!(s->layers & (SBX_USERNS | SBX_SETUID | SBX_NETNS | SBX_PIDNS |
			   SBX_MNTNS | SBX_IPCNS)) &&
	    len < sizeof s->desc)
		snprintf(s->desc + len, sizeof s->desc - len, "%sno namespaces",
			 len ? ", " : "");
	if ((s->layers & (SBX_SHARED | SBX_SPAWNER)) == SBX_SHARED && len < sizeof s->desc)
		snprintf(s->desc + len, sizeof s->desc - len, ", pidns+/proc per call");
	if (s->layers == 0)
		snprintf(s->desc, sizeof s->desc, "none");
}

/*
 * Start the holder of the shared namespaces (meshd-sandbox -H), open its
 * /proc/PID/ns/{net,ipc,uts,mnt} into s->ns_fd and let it exit.  With
 * spawner, start it as the spawner (-S) instead, which stays: s->sp_pid
 * and s->sp_fd are set.
 * Returns 0, or a negative BABL_E* code with nothing left open or running.
 */
static int
start_holder(struct sbx *s, int spawner)
{
	static const char *const names[NS_COUNT] = {"net", "ipc", "uts", "mnt"};
	char lbuf[16], pbuf[24], got[8];
	char *argv[] = {"meshd-sandbox", spawner ? "-S" : "-H", "-L", lbuf, "-d", pbuf,
			"-w", s->rundir, "-s", "3", NULL};
	char *envp[] = {NULL};
	int to[2] = {-1, -1}, from[2] = {-1, -1}, r = BABL_EINTERNAL, st, bpf = -1;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	struct stat mine, theirs;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	snprintf(lbuf, sizeof lbuf, "%u", s->layers & ~SBX_SHARED);
	snprintf(pbuf, sizeof pbuf, "%ld", (long)getpid());
	if (spawner && s->bpf_fd >= 0)
		bpf = s->bpf_fd;
	if (bpf < 0)
		argv[8] = NULL;
	if ((spawner ? socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, to) :
		       pipe2(to, O_CLOEXEC)) != 0 ||
	    pipe2(from, O_CLOEXEC) != 0)
		goto close_pipes;
	if ((r = spawn_attr(&at)) != 0)
		goto close_pipes;
	if (posix_spawn_file_actions_init(&fa) != 0) {
		r = BABL_ENOMEM;
		goto destroy_attr;
	}
	/* Its stderr stays meshd's: a reason it fails is worth a line there. */
	if (posix_spawn_file_actions_adddup2(&fa, to[0], 0) ||
	    posix_spawn_file_actions_adddup2(&fa, from[1], 1) ||
	    (bpf >= 0 && posix_spawn_file_actions_adddup2(&fa, bpf, BPF_FD)) ||
	    posix_spawn_file_actions_addclosefrom_np(&fa, bpf >= 0 ? BPF_FD + 1 : 3)) {
		r = BABL_ENOMEM;
		goto destroy_fa;
	}
	if (posix_spawn(&pid, s->launcher, &fa, &at, argv, envp) != 0) {
		r = BABL_EINTERNAL;
		goto destroy_fa;
	}
	close(to[0]);
	close(from[1]);
	to[0] = from[1] = -1;
	/* "ok\n", or EOF if it failed (and said why on stderr). */
	while (len < sizeof got - 1 && (len == 0 || got[len - 1] != '\n') &&
	       ((n = read(from[0], got + len, sizeof got - 1 - len)) > 0 ||
		(n < 0 && errno == EINTR)))
		len += n > 0 ? (size_t)n : 0;
	got[len] = '\0';
	r = strcmp(got, "ok\n") == 0 ? 0 : BABL_EINTERNAL;
	for (int i = 0; i < NS_COUNT && r == 0; i++) {
		char path[64];
		int fd;
		snprintf(path, sizeof path, "/proc/%ld/ns/%s", (long)pid, names[i]);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && fd < FIRST_FREE_FD) {
			int high = fcntl(fd, F_DUPFD_CLOEXEC, FIRST_FREE_FD);
			close(fd);
			fd = high;
		}
		if (fd < 0) {
			r = BABL_EINTERNAL;
			break;
		}
		s->ns_fd[i] = fd;
	}
	/* A mount namespace of its own, for certain, and a network one if asked. */
	if (r == 0) {
		for (int i = 0; i < NS_COUNT && r == 0; i++) {
			char path[64];
			if (strcmp(names[i], "mnt") && (strcmp(names[i], "net") ||
							!(s->layers & SBX_NETNS)))
				continue;
			snprintf(path, sizeof path, "/proc/self/ns/%s", names[i]);
			if (stat(path, &mine) != 0 || fstat(s->ns_fd[i], &theirs) != 0 ||
			    (mine.st_ino == theirs.st_ino && mine.st_dev == theirs.st_dev))
				r = BABL_EINTERNAL;
		}
	}
	if (r == 0 && spawner) {
		/* Requests go out blocking; a deep queue is room, not a wait. */
		int big = 1 << 20;
		(void)setsockopt(to[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
		s->sp_fd = to[1] >= FIRST_FREE_FD ? to[1] :
			   fcntl(to[1], F_DUPFD_CLOEXEC, FIRST_FREE_FD);
		if (s->sp_fd >= 0) {
			if (s->sp_fd != to[1])
				close(to[1]);
			to[1] = -1;
			s->sp_pid = pid;
			goto destroy_fa;
		}
		r = BABL_EINTERNAL;
	}
	/* EOF on its fd 0 lets it exit; it dies anyway if something went wrong. */
	if (r != 0)
		kill(pid, SIGKILL);
	close(to[1]);
	to[1] = -1;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (r == 0 && (!WIFEXITED(st) || WEXITSTATUS(st) != 0))
		r = BABL_EINTERNAL;
	if (r != 0)
		for (int i = 0; i < NS_COUNT; i++) {
			if (s->ns_fd[i] >= 0)
				close(s->ns_fd[i]);
			s->ns_fd[i] = -1;
		}
destroy_fa:
	posix_spawn_file_actions_destroy(&fa);
destroy_attr:
	posix_spawnattr_destroy(&at);
close_pipes:
	for (int i = 0; i < 2; i++) {
		if (to[i] >= 0)
			close(to[i]);
		if (from[i] >= 0)
			close(from[i]);
	}
	return r;
}

int
sbx_open_run(struct sbx **out, const char *launcher, unsigned want, const char *rundir)
{
	struct sbx *s;
	struct stat st;
	int r;

	*out = NULL;
	if (!launcher || launcher[0] == '\0')
		return BABL_EUSAGE;
	if (rundir && (rundir[0] != '/' || stat(rundir, &st) != 0 || !S_ISDIR(st.st_mode)))
		return BABL_EUSAGE;
	if (access(launcher, X_OK) != 0)
		return BABL_ENOENT;
	s = calloc(1, sizeof *s);
	if (!s)
		return BABL_ENOMEM;
	s->bpf_fd = s->sp_fd = -1;
	for (int i = 0; i < NS_COUNT; i++)
		s->ns_fd[i] = -1;
	s->uid_base = SBX_UID_BASE;
	s->launcher = strdup(launcher);
	if (!s->launcher) {
		r = BABL_ENOMEM;
		goto fail;
	}
	if (rundir) {
		s->rundir = strdup(rundir);
		if (!s->rundir) {
			r = BABL_ENOMEM;
			goto fail;
		}
		s->rundir_len = strlen(s->rundir);
		while (s->rundir_len > 1 && s->rundir[s->rundir_len - 1] == '/')
			s->rundir[--s->rundir_len] = '\0';
	}
	/* setsid and setpgid depend on the pid namespace: build for it first. */
	if (want & SBX_SECCOMP) {
		s->bpf_fd = build_filter(want);
		if (s->bpf_fd < 0) {
			r = s->bpf_fd;
			goto fail;
		}
	}
	r = probe_layers(s->launcher, s->bpf_fd, want & ~SBX_SHARED, s->uid_base);
	if (r < 0)
		goto fail;
	s->layers = (unsigned)r & want & ~SBX_SHARED;
	if ((s->layers ^ want) & SBX_PIDNS && s->bpf_fd >= 0) {
		close(s->bpf_fd);
		s->bpf_fd = -1;
	}
	if ((s->layers & SBX_SECCOMP) && s->bpf_fd < 0) {
		s->bpf_fd = build_filter(s->layers);
		if (s->bpf_fd < 0) {
			r = s->bpf_fd;
			goto fail;
		}
	}
	if (!(s->layers & SBX_SECCOMP) && s->bpf_fd >= 0) {
		close(s->bpf_fd);
		s->bpf_fd = -1;
	}
	/*
	 * Shared namespaces: root only (the launcher's setuid keeps slots
	 * apart inside them), with a mount namespace to make the view
	 * read-only in, and a run dir that is not all of the filesystem.  If
	 * the holder cannot be started, every call unshares its own.
	 */
	if ((want & SBX_SHARED) && s->rundir && s->rundir_len > 1 && geteuid() == 0 &&
	    (s->layers & (SBX_SETUID | SBX_MNTNS)) == (SBX_SETUID | SBX_MNTNS) &&
	    !(s->layers & SBX_USERNS)) {
		if ((want & SBX_SPAWNER) && (s->layers & SBX_PIDNS) && start_holder(s, 1) == 0)
			s->layers |= SBX_SHARED | SBX_SPAWNER;
		else if (start_holder(s, 0) == 0)
			s->layers |= SBX_SHARED;
	}
	describe(s);
	*out = s;
	return 0;
fail:
	sbx_close(s);
	return r;
}

int
sbx_open(struct sbx **out, const char *launcher, unsigned want)
{
	return sbx_open_run(out, launcher, want, NULL);
}

void
sbx_close(struct sbx *s)
{
	if (!s)
		return;
	if (s->bpf_fd >= 0)
		close(s->bpf_fd);
	for (int i = 0; i < NS_COUNT; i++)
		if (s->ns_fd[i] >= 0)
			close(s->ns_fd[i]);
	/* The spawner's pid 1 ends on EOF, and every service with it. */
	if (s->sp_fd >= 0)
		close(s->sp_fd);
	if (s->sp_pid > 0) {
		kill(s->sp_pid, SIGKILL);
		while (waitpid(s->sp_pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	free(s->rundir);
	free(s->launcher);
	free(s);
}

unsigned
sbx_layers(const struct sbx *s)
{
	return s->layers;
}

const char *
sbx_describe(const struct sbx *s)
{
	return s->desc;
}

uid_t
sbx_slot_uid(const struct sbx *s, unsigned slot)
{
	return s->layers & SBX_SETUID ? s->uid_base + (slot % SBX_SLOTS) : geteuid();
}

gid_t
sbx_slot_gid(const struct sbx *s, unsigned slot)
{
	return s->layers & SBX_SETUID ? (gid_t)(s->uid_base + (slot % SBX_SLOTS)) : getegid();
}

/*
 * Make fd safe to dup2 onto one of the launcher's fixed fds: one that is
 * itself a fixed fd could be overwritten by an earlier dup2, so it is
 * copied above them first.  *tmp receives the copy to close afterwards.
 */
static int
lift_fd(int fd, int *tmp)
{
	if (fd >= FIRST_FREE_FD)
		return fd;
	*tmp = fcntl(fd, F_DUPFD_CLOEXEC, FIRST_FREE_FD);
	return *tmp;
}

/*
 * True if dir lies strictly under the run dir, where the shared view lets
 * it be written: "RUNDIR/x..." with no ".." anywhere after RUNDIR.
 */
static int
in_rundir(const struct sbx *s, const char *dir)
{
	return s->rundir && strncmp(dir, s->rundir, s->rundir_len) == 0 &&
	       dir[s->rundir_len] == '/' && dir[s->rundir_len + 1] != '\0' &&
	       strstr(dir + s->rundir_len, "/..") == NULL;
}

/* Room for the launcher's own options before the program's arguments. */
enum { OPT_SLOTS = 40, NUM_LEN = 24 };

int
sbx_spawn(struct sbx *s, const struct sbx_spec *spec, pid_t *pid)
{
	char nums[16][NUM_LEN];
	size_t nargs = 0, nenv = 0, i = 0, k = 0;
	int fds[4], tmp[4] = {-1, -1, -1, -1}, r, have_exe, shared;
	char *envp0[] = {NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	char **argv;

	if (!s || !spec || !pid || !spec->path || !spec->argv || !spec->argv[0] ||
	    !spec->workdir || spec->fd_in < 0 || spec->fd_out < 0 || spec->fd_err < 0)
		return BABL_EUSAGE;
	while (spec->argv[nargs])
		nargs++;
	while (spec->envp && spec->envp[nenv])
		nenv++;
	argv = calloc(OPT_SLOTS + nargs + nenv + 2, sizeof *argv);
	if (!argv)
		return BABL_ENOMEM;
	have_exe = spec->exe_fd >= 0;
	shared = (s->layers & SBX_SHARED) && in_rundir(s, spec->workdir);

#define NUM(fmt, v) (snprintf(nums[k], NUM_LEN, fmt, v), nums[k++])
	argv[i++] = "meshd-sandbox";
	argv[i++] = "-L";
	argv[i++] = NUM("%u", s->layers & ~SBX_SHARED);
	argv[i++] = "-d";
	argv[i++] = NUM("%ld", (long)getpid());
	if (s->layers & SBX_SETUID) {
		argv[i++] = "-u";
		argv[i++] = NUM("%u", (unsigned)sbx_slot_uid(s, spec->slot));
		argv[i++] = "-g";
		argv[i++] = NUM("%u", (unsigned)sbx_slot_gid(s, spec->slot));
	}
	argv[i++] = "-w";
	argv[i++] = (char *)spec->workdir;
	if (s->layers & SBX_RLIMITS) {
		argv[i++] = "-m";
		argv[i++] = NUM("%llu", (unsigned long long)spec->lim.mem_bytes);
		argv[i++] = "-c";
		argv[i++] = NUM("%u", spec->lim.cpu_secs);
		argv[i++] = "-f";
		argv[i++] = NUM("%llu", (unsigned long long)spec->lim.fsize);
		argv[i++] = "-p";
		argv[i++] = NUM("%u", spec->lim.nproc);
		argv[i++] = "-n";
		argv[i++] = NUM("%u", spec->lim.nofile);
	}
	if (s->bpf_fd >= 0) {
		argv[i++] = "-s";
		argv[i++] = NUM("%d", BPF_FD);
	}
	if (have_exe) {
		argv[i++] = "-x";
		argv[i++] = NUM("%d", EXE_FD);
	}
	if (shared) {
		argv[i++] = "-N";
		argv[i++] = NUM("%d", NS_FD);
	}
	argv[i++] = "-A";
	argv[i++] = NUM("%zu", nargs);
#undef NUM
	argv[i++] = "--";
	argv[i++] = (char *)spec->path;
	memcpy(argv + i, spec->argv, nargs * sizeof *argv);
	i += nargs;
	if (nenv)
		memcpy(argv + i, spec->envp, nenv * sizeof *argv);
	i += nenv;
	argv[i] = NULL;

	fds[0] = lift_fd(spec->fd_in, &tmp[0]);
	fds[1] = lift_fd(spec->fd_out, &tmp[1]);
	fds[2] = lift_fd(spec->fd_err, &tmp[2]);
	fds[3] = have_exe ? lift_fd(spec->exe_fd, &tmp[3]) : -1;
	if (fds[0] < 0 || fds[1] < 0 || fds[2] < 0 || (have_exe && fds[3] < 0)) {
		r = errno == EMFILE ? BABL_EBUSY : BABL_EINTERNAL;
		goto free_fds;
	}
	r = spawn_attr(&at);
	if (r != 0)
		goto free_fds;
	if (posix_spawn_file_actions_init(&fa) != 0) {
		r = BABL_ENOMEM;
		goto destroy_attr;
	}
	if (posix_spawn_file_actions_adddup2(&fa, fds[0], 0) ||
	    posix_spawn_file_actions_adddup2(&fa, fds[1], 1) ||
	    posix_spawn_file_actions_adddup2(&fa, fds[2], 2) ||
	    (s->bpf_fd >= 0 && posix_spawn_file_actions_adddup2(&fa, s->bpf_fd, BPF_FD)) ||
	    (have_exe && posix_spawn_file_actions_adddup2(&fa, fds[3], EXE_FD))) {
		r = BABL_ENOMEM;
		goto destroy_fa;
	}
	for (int j = 0; shared && j < NS_COUNT; j++)
		if (posix_spawn_file_actions_adddup2(&fa, s->ns_fd[j], NS_FD + j)) {
			r = BABL_ENOMEM;
			goto destroy_fa;
		}
	if (posix_spawn_file_actions_addclosefrom_np(&fa, shared ? NS_FD + NS_COUNT : NS_FD)) {
		r = BABL_ENOMEM;
		goto destroy_fa;
	}
	r = posix_spawn(pid, s->launcher, &fa, &at, argv, envp0);
	if (r != 0)
		r = r == ENOENT || r == EACCES ? BABL_ENOENT :
		    r == EAGAIN ? BABL_EBUSY : r == ENOMEM ? BABL_ENOMEM : BABL_EINTERNAL;
destroy_fa:
	posix_spawn_file_actions_destroy(&fa);
destroy_attr:
	posix_spawnattr_destroy(&at);
free_fds:
	for (int j = 0; j < 4; j++)
		if (tmp[j] >= 0)
			close(tmp[j]);
	free(argv);
	return r;
}

/* ---- the spawner ---- */

int
sbx_spawner(const struct sbx *s)
{
	return s && s->sp_fd >= 0;
}

int
sbx_fd(const struct sbx *s)
{
	return s ? s->sp_fd : -1;
}

static int
sp_live(const struct sbx *s, uint32_t id)
{
	return (s->sp_live[id / 32] >> (id % 32)) & 1;
}

static void
sp_mark(struct sbx *s, uint32_t id, int on)
{
	if (on)
		s->sp_live[id / 32] |= 1u << (id % 32);
	else
		s->sp_live[id / 32] &= ~(1u << (id % 32));
}

/* Send one message with fds (nfds may be 0); 0 or a BABL_E* code. */
static int
sp_send(struct sbx *s, const void *buf, size_t len, const int *fds, int nfds)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(4 * sizeof(int))];
	} cm;
	struct iovec iov = {(void *)buf, len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	if (nfds > 0) {
		memset(&cm, 0, sizeof cm);
		mh.msg_control = cm.b;
		mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	}
	while ((n = sendmsg(s->sp_fd, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	if (n == (ssize_t)len)
		return 0;
	return n < 0 && (errno == ENOMEM || errno == ENOBUFS) ? BABL_ENOMEM :
	       n < 0 && errno == EMSGSIZE ? BABL_ETOOBIG : BABL_EIO;
}

int
sbx_start(struct sbx *s, const struct sbx_spec *spec, uint32_t id)
{
	struct sbx_msg m = {.op = SBX_OP_START, .id = id};
	size_t nargs = 0, nenv = 0, len;
	int fds[4], r;
	char *buf, *p;

	if (!sbx_spawner(s) || !spec || !spec->path || !spec->argv || !spec->argv[0] ||
	    !spec->workdir || spec->fd_in < 0 || spec->fd_out < 0 || spec->fd_err < 0 ||
	    id >= SBX_SLOTS || sp_live(s, id) || !in_rundir(s, spec->workdir))
		return BABL_EUSAGE;
	len = sizeof m + strlen(spec->path) + 1 + strlen(spec->workdir) + 1;
	for (; spec->argv[nargs]; nargs++)
		len += strlen(spec->argv[nargs]) + 1;
	for (; spec->envp && spec->envp[nenv]; nenv++)
		len += strlen(spec->envp[nenv]) + 1;
	if (len > SBX_MSG_MAX)
		return BABL_ETOOBIG;
	m.uid = sbx_slot_uid(s, spec->slot);
	m.gid = sbx_slot_gid(s, spec->slot);
	m.nargs = (uint32_t)nargs;
	m.nenv = (uint32_t)nenv;
	m.have_exe = spec->exe_fd >= 0;
	if (s->layers & SBX_RLIMITS)
		m.lim = spec->lim;
	buf = malloc(len);
	if (!buf)
		return BABL_ENOMEM;
	memcpy(buf, &m, sizeof m);
	p = buf + sizeof m;
#define PUT(str) (p = stpcpy(p, (str)) + 1)
	PUT(spec->path);
	PUT(spec->workdir);
	for (size_t i = 0; i < nargs; i++)
		PUT(spec->argv[i]);
	for (size_t i = 0; i < nenv; i++)
		PUT(spec->envp[i]);
#undef PUT
	fds[0] = spec->fd_in;
	fds[1] = spec->fd_out;
	fds[2] = spec->fd_err;
	fds[3] = spec->exe_fd;
	r = sp_send(s, buf, len, fds, m.have_exe ? 4 : 3);
	free(buf);
	if (r == 0)
		sp_mark(s, id, 1);
	return r;
}

int
sbx_stop(struct sbx *s, uint32_t id)
{
	struct sbx_msg m = {.op = SBX_OP_KILL, .id = id};

	if (!sbx_spawner(s) || id >= SBX_SLOTS || !sp_live(s, id))
		return BABL_EUSAGE;
	return sp_send(s, &m, sizeof m, NULL, 0);
}

int
sbx_reaped(struct sbx *s, uint32_t *id, int *status, int *alone)
{
	struct sbx_msg m;
	ssize_t n;

	if (!sbx_spawner(s)) {
		/* Gone: what was under way ends here, one call at a time. */
		for (uint32_t i = 0; i < SBX_SLOTS; i++) {
			if (sp_live(s, i)) {
				sp_mark(s, i, 0);
				*id = i;
				*status = SIGKILL;
				*alone = 0;
				return 1;
			}
		}
		return 0;
	}
	for (;;) {
		n = recv(s->sp_fd, &m, sizeof m, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n != (ssize_t)sizeof m || m.op != SBX_OP_EXIT || m.id >= SBX_SLOTS) {
			/* Its holder exits with it and meshd reaps it: no kill
			 * by a pid that may be another process's by then. */
			close(s->sp_fd);
			s->sp_fd = -1;
			s->sp_pid = 0;
			s->layers &= ~SBX_SPAWNER;
			describe(s);
			return BABL_EIO;
		}
		if (!sp_live(s, m.id))
			continue;
		sp_mark(s, m.id, 0);
		*id = m.id;
		*status = m.status;
		*alone = m.alone != 0;
		return 1;
	}
}
