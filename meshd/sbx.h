/*
 * sbx.h - confinement of service processes.
 *
 * meshd never runs service code itself.  It starts the small launcher
 * program meshd-sandbox (meshd/sandbox-exec.c) with posix_spawn (or, for
 * native calls as root, has the spawner fork it: see sbx_start); the
 * launcher, single-threaded and before it execs the service program,
 * enters the namespaces the kernel allows (as root: the network, IPC, UTS
 * and read-only mount namespaces that sbx_open_run created once, and a pid
 * namespace with its own /proc created per call), drops to an unprivileged
 * uid when started as root, sets rlimits, chdirs into a fresh working
 * directory, closes every fd above 2, sets no_new_privs and installs the
 * seccomp filter that sbx_open() built once (passed to it as a BPF program
 * in a memfd).
 *
 * What a service gets, meshd running as root with every layer in force:
 * uid and gid SBX_UID_BASE + slot, no supplementary groups; no network
 * (a network namespace with only lo, down); its own pid space (it is pid 2,
 * pid 1 is the launcher's init, /proc shows that pid namespace only); the
 * whole filesystem read-only and nosuid except its work dir (and, with
 * shared namespaces, the run dir around it, which file modes close: see
 * sbx_open_run); the seccomp allowlist below; rlimits; and kill(-pid,
 * SIGKILL) or the end of pid 1 ends every process it started.
 *
 * Nothing here calls nng, so it is safe for the launcher; meshd calls
 * sbx_spawn() from its main thread only.
 */
#ifndef MESHD_SBX_H
#define MESHD_SBX_H

#include <stdint.h>
#include <sys/types.h>

struct sbx;

/* Confinement layers that can be in force, as a bit set. */
enum {
	SBX_SECCOMP = 1 << 0, /* seccomp allowlist, arch checked, no_new_privs */
	SBX_RLIMITS = 1 << 1, /* CPU, address space, file size, nproc, nofile, core 0 */
	SBX_USERNS = 1 << 2,  /* unprivileged user namespace */
	SBX_SETUID = 1 << 3,  /* root drops to a per-slot unprivileged uid/gid */
	SBX_NETNS = 1 << 4,   /* empty network namespace: no network at all */
	SBX_PIDNS = 1 << 5,   /* own pid space */
	SBX_MNTNS = 1 << 6,   /* read-only filesystem but for the work dir */
	SBX_IPCNS = 1 << 7,   /* own SysV IPC and POSIX mqueue space */
	SBX_SHARED = 1 << 8,  /* net, ipc, uts, mnt created once; see sbx_open_run */
	SBX_SPAWNER = 1 << 9, /* sbx_start: one pid namespace, forked by a server */
};

/* When root, slot n runs as uid and gid SBX_UID_BASE + n, n < SBX_SLOTS. */
enum { SBX_UID_BASE = 70000, SBX_SLOTS = 1024 };

/* A limit of 0 is not set: the launcher leaves meshd's own value. */
struct sbx_limits {
	uint64_t mem_bytes; /* RLIMIT_AS; 0 = no limit */
	uint32_t cpu_secs;  /* RLIMIT_CPU; 0 = no limit */
	uint64_t fsize;     /* RLIMIT_FSIZE; 0 = no limit */
	uint32_t nproc;     /* RLIMIT_NPROC (processes and threads) */
	uint32_t nofile;    /* RLIMIT_NOFILE */
};

struct sbx_spec {
	const char *path;       /* absolute path of the program to run */
	int exe_fd;             /* open fd of that program (hash already checked),
	                           or -1: executed with execveat when possible */
	char *const *argv;      /* argv[0] included, NULL-terminated */
	char *const *envp;      /* the complete, clean environment */
	const char *workdir;    /* existing, empty directory; removed by caller */
	unsigned slot;          /* 0..1023; selects the uid when root */
	struct sbx_limits lim;
	int fd_in, fd_out, fd_err; /* become the program's fds 0, 1, 2 */
};

/*
 * Build the seccomp filter and probe which layers the kernel allows.
 * launcher is the path of meshd-sandbox.  want is a bit set of layers the
 * operator allows (use ~0u for all).  On success *out is set and 0 returned;
 * on failure a negative BABL_E* code and nothing is allocated.
 *
 * sbx_open creates every namespace per call (slow: an empty network
 * namespace alone costs more than the rest of a spawn).  sbx_open_run,
 * which meshd should call with rundir = DATA/run, also starts the holder
 * (meshd-sandbox -H) when meshd is root, SBX_SHARED is in want and the
 * uid, mount and other namespace layers are in force: it creates ONE
 * network (empty: lo only, and down), IPC, UTS and mount namespace, in
 * which the whole filesystem is read-only and nosuid except rundir, with
 * an empty read-only tmpfs on /proc.  sbx_open_run keeps fds of those
 * namespaces and the holder exits; they last until sbx_close.  Each call
 * whose work dir lies under rundir then enters them with setns and creates
 * only its own pid namespace and a copy of that mount namespace with a
 * /proc of its pid namespace on it.  SBX_SHARED is then in sbx_layers.
 * If the holder cannot be set up, sbx_open_run still succeeds without
 * SBX_SHARED and every call gets namespaces of its own, as with sbx_open.
 *
 * What sharing changes, against namespaces per call:
 *   - rundir and everything under it is writable as far as file modes
 *     allow, not only the call's own work dir: rundir must be owned by
 *     root and not writable by others (meshd: 0711), and each work dir
 *     RUNDIR/N must be mode 0700 and owned by its slot's uid
 *     (sbx_slot_uid), so that a call can neither read nor write another
 *     call's work dir nor create anything in rundir itself.  rundir must
 *     exist, and stay the same directory (not be removed and re-created),
 *     while the sbx is open.
 *   - concurrent calls share one network namespace (nothing but a downed
 *     lo; note abstract unix sockets are per network namespace), one IPC
 *     namespace and one hostname; the seccomp filter refuses socket(),
 *     bind(), connect() and every SysV IPC and mqueue call, so with
 *     SBX_SECCOMP in force no call can reach another through them.
 *   - the filesystem view is that of when sbx_open_run ran: filesystems
 *     the host mounts or unmounts later are not seen (and those mounted
 *     then stay referenced until sbx_close).
 *   - the pid namespace, /proc, uid, rlimits, seccomp and the process
 *     group are per call as before.  (Without SBX_PIDNS a call sees an
 *     empty /proc instead of the host's.)
 * rundir NULL is sbx_open.  Returns BABL_EUSAGE if rundir is not an
 * existing directory given by an absolute path.
 */
int sbx_open(struct sbx **out, const char *launcher, unsigned want);
int sbx_open_run(struct sbx **out, const char *launcher, unsigned want,
		 const char *rundir);
void sbx_close(struct sbx *s);

/* The bit set of layers in force, and a human line such as
 * "seccomp, rlimits, uid 70000+slot, netns, pidns, mntns(ro)". */
unsigned sbx_layers(const struct sbx *s);
const char *sbx_describe(const struct sbx *s);

/* uid/gid a slot runs as when meshd runs as root (workdir must be chowned). */
uid_t sbx_slot_uid(const struct sbx *s, unsigned slot);
gid_t sbx_slot_gid(const struct sbx *s, unsigned slot);

/*
 * Start the program confined.  The launcher is its own process-group
 * leader (and session leader, without a controlling terminal):
 * kill(-*pid, SIGKILL) ends it and everything it started.  It also dies
 * when the thread that called sbx_spawn exits (PR_SET_PDEATHSIG), hence
 * the main thread only.  Its wait status is the program's own (a program
 * killed by signal N makes the launcher die of N).  If the launcher cannot set up confinement it writes
 * one line "meshd-sandbox: ..." to fd_err and exits 127 without running the
 * program.  Returns 0 and sets *pid, or a negative BABL_E* code.
 */
int sbx_spawn(struct sbx *s, const struct sbx_spec *spec, pid_t *pid);

/*
 * The spawner.  With SBX_SHARED, sbx_open_run starts the holder as a
 * spawner (meshd-sandbox -S): it stays, as pid 1 of one more namespace,
 * a pid namespace for the services, and forks each program started with
 * sbx_start from there.  This saves a launcher exec, a pid namespace, a
 * mount namespace and a /proc per call (64 B calls to cat at
 * concurrency 32 on 2 cores: about 1,000 calls/s through the launcher,
 * 1,500 through the spawner).  What a program then gets differs from
 * sbx_spawn's in three ways:
 *   - the pid space is shared by the calls that run at the same time, and
 *     /proc is mounted with hidepid=2 (invisible): a call sees its own
 *     processes only (each slot has its own uid), and can signal no
 *     other's (uid, and no ptrace in the filter).
 *   - the uid holds the call's processes together, not a pid namespace:
 *     when the program ends, or sbx_stop asks, the spawner kills its group
 *     and then every process of its uid (which needs SBX_SETUID: the
 *     spawner is started only as root).  At a normal end the uid is swept
 *     only when something is left: the spawner, as the namespace's pid 1,
 *     adopts every orphan, so it looks for a child that is no running
 *     program's (in /proc/self/task/PID/children).
 *   - the spawner installs the filter on itself once, and each program
 *     inherits it, already compiled (compiling it per call cost more than
 *     the fork).
 * Every other layer is the same: uid, rlimits, work dir, fds, the shared
 * read-only view, the network, no_new_privs and the filter.
 *
 * sbx_start sends the call to the spawner under id (meshd uses the slot;
 * ids of calls under way must differ) and returns 0 or a negative
 * BABL_E* code; the program's confinement errors reach its fd_err as
 * with sbx_spawn.  sbx_stop kills call id's group and every process of
 * its uid.  When sbx_fd is
 * readable, sbx_reaped returns 1 and sets *id and *status (a wait status)
 * for each call that ended, and *alone to 1 if nothing the program
 * started was left when it ended (so nothing of that call runs any more,
 * not even dying), 0 when none is left to read, and BABL_EIO if
 * the spawner is gone (every call under way then ended, killed; from then
 * sbx_spawner is false and sbx_spawn serves).  sbx_fd is -1 without one.
 */
int sbx_spawner(const struct sbx *s);
int sbx_start(struct sbx *s, const struct sbx_spec *spec, uint32_t id);
int sbx_stop(struct sbx *s, uint32_t id);
int sbx_fd(const struct sbx *s);
int sbx_reaped(struct sbx *s, uint32_t *id, int *status, int *alone);

/*
 * Between sbx.c and the spawner, over a SOCK_SEQPACKET socket: requests
 * (with the fds in, out, err and, if have_exe, exe, by SCM_RIGHTS)
 * followed by the NUL-terminated path, work dir, nargs arguments and nenv
 * environment strings; replies are SBX_OP_EXIT with the wait status and,
 * in alone, sbx_reaped's *alone.
 */
enum { SBX_OP_START = 1, SBX_OP_KILL = 2, SBX_OP_EXIT = 3, SBX_MSG_MAX = 1 << 20 };
struct sbx_msg {
	uint32_t op, id;
	int32_t status;
	uint32_t uid, gid, nargs, nenv, have_exe, alone;
	struct sbx_limits lim;
};

#endif
